#!/usr/bin/env python3
"""x060_init.py: the x060 initialisation, in torch, from the spec
(rwkv6-reference.md 1.2-1.3) and RWKV-LM RWKV-v5/src/model.py
(RWKV_Tmix_x060.__init__, RWKV_CMix_x060.__init__, generate_init_weight),
sharing no code with the C side.

usage:
  x060_init.py write FILE L C V [--ranks Dm,Dd] [--ffn F] [--cmix head|2024] [--dtype fp32|bf16]
      the deterministic tensors (formulas, ones, zeros) with the reference's
      torch float32 ops, in state-dict order, as safetensors (random ones left out)
  x060_init.py check FILE L C V [--ranks Dm,Dd] [--ffn F] [--cmix head|2024] [--no-ln0]
      an rwkv-init --model-type x060 output: names, shapes, order; every
      deterministic tensor bit-exact (bf16: the torch formula then .bfloat16();
      fp32: the float32 formula with a correctly rounded pow, and within 1 ulp of
      torch.pow's); zeros and ones exact; emb U(+-1e-4) and the LoRA w2 U(+-0.01)
      by range, mean, spread and histogram; orthogonal matrices by W W^T = gain^2 I
  x060_init.py sanity [FILE]
      the formulas at L12-D768 (or FILE, an L12-D768 bf16 init), rounded to
      bf16, against the spec's table (1.3)
  x060_init.py counts
      parameter counts of the official sizes (spec 1.2) from the state-dict shapes
Exit status 0 when every check passes; each failure is printed.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import x060  # noqa: E402

FAILS = []


def bad(msg):
    FAILS.append(msg)
    print("FAIL:", msg)


def opt(argv, name, default):
    return argv[argv.index(name) + 1] if name in argv else default


def layer_formulas(L, C, l, cmix="head", pow_fn=torch.pow):
    """The constructor tensors of layer l in float32, with the reference's torch ops
    (RWKV_Tmix_x060 / RWKV_CMix_x060 __init__; ln_x.weight from generate_init_weight).
    pow_fn swaps torch.pow (vectorised, within 1 ulp) for a correctly rounded one."""
    r01 = l / (L - 1)
    r1 = 1.0 - (l / L)
    ddd = torch.ones(1, 1, C)
    for i in range(C):
        ddd[0, 0, i] = i / C
    f = {}
    f["att.time_maa_x"] = 1.0 - pow_fn(ddd, r1)
    f["att.time_maa_w"] = 1.0 - pow_fn(ddd, r1)
    f["att.time_maa_k"] = 1.0 - pow_fn(ddd, r1)
    f["att.time_maa_v"] = 1.0 - (pow_fn(ddd, r1) + 0.3 * r01)
    f["att.time_maa_r"] = 1.0 - pow_fn(ddd, 0.5 * r1)
    f["att.time_maa_g"] = 1.0 - pow_fn(ddd, 0.5 * r1)
    decay_speed = torch.ones(C)
    for n in range(C):
        decay_speed[n] = -6 + 5 * (n / (C - 1)) ** (0.7 + 1.3 * r01)     # Python double, stored float32
    f["att.time_decay"] = decay_speed.reshape(1, 1, C)
    tmp = torch.zeros(C)
    for n in range(C):
        zigzag = ((n + 1) % 3 - 1) * 0.1
        tmp[n] = r01 * (1 - (n / (C - 1))) + zigzag
    f["att.time_faaaa"] = tmp.reshape(C // x060.N, x060.N)
    p = torch.ones(C)
    f["att.ln_x.weight"] = (p * 0.0) + (((1 + l) / L) ** 0.7)
    e = r1 ** 3 if cmix == "head" else r1          # b44816c (Nov 2024) changed r1 -> r1^3
    f["ffn.time_maa_k"] = 1.0 - pow_fn(ddd, e)
    f["ffn.time_maa_r"] = 1.0 - pow_fn(ddd, e)
    return f


def pow_correct(x, e):
    """float32 pow rounded once from float64 (the exponent first rounded to float32, as torch does)."""
    e32 = float(torch.tensor(e, dtype=torch.float32))
    return torch.pow(x.double(), e32).float()


def kind_of(name, C, V):
    """(kind, gain) by generate_init_weight's rules (spec 1.3)."""
    if name == "emb.weight":
        return "uniform", 1e-4
    if name == "head.weight":
        return "ortho", (0.5 * math.sqrt(V / C) if V > C else 0.5)
    if "ln_x.weight" in name:
        return "formula", None
    if "ln_" in name or ".ln" in name:
        return ("ones" if name.endswith(".weight") else "zeros"), None
    if name.endswith("_w1"):
        return "zeros", None
    if name.endswith("_w2"):
        return "uniform", 0.01
    if "time_" in name:
        return "formula", None
    if ".att.output." in name or ".ffn.value." in name or ".ffn.receptance." in name:
        return "zeros", None
    if ".att.key." in name or ".att.gate." in name:
        return "ortho", 0.1
    return "ortho", 1.0


def spacing(x):
    a = x.abs().float()
    return torch.nextafter(a, torch.full_like(a, math.inf)) - a


def parse_dims(argv):
    Dm, Dd = (int(v) for v in opt(argv, "--ranks", "32,64").split(","))
    C = int(argv[4])
    F = int(opt(argv, "--ffn", x060.dim_ffn(C)))
    return Dm, Dd, F, opt(argv, "--cmix", "head"), "--no-ln0" not in argv


def write(path, L, C, V, Dm, Dd, F, cmix, dtype):
    items = []
    forms = {}
    for n, shape in x060.param_list(L, C, V, Dm, Dd, F):
        kind, _ = kind_of(n, C, V)
        if kind == "formula":
            l = int(n.split(".")[1])
            forms.setdefault(l, layer_formulas(L, C, l, cmix))
            t = forms[l][n.split(".", 2)[2]]
        elif kind == "zeros":
            t = torch.zeros(shape)
        elif kind == "ones":
            t = torch.ones(shape)
        else:
            continue
        items.append((n, t.reshape(shape).to(dtype)))
    x060.st_write(path, items, {"format": "pt", "model_type": "x060", "note": "deterministic init tensors only"})
    print(f"wrote {len(items)} deterministic tensors to {path}")


def uniform_check(n, t, bound, dt):
    x = t.float()
    b = torch.tensor(bound).to(dt).float()      # the bound as stored (bf16(1e-4) > 1e-4)
    if x.abs().max() > b:
        bad(f"{n}: |x| max {x.abs().max():g} > {bound:g}")
    if t.numel() >= 4000:
        mean, std = x.double().mean().item(), x.double().std().item()
        sd_u = 2 * bound / math.sqrt(12)
        if abs(mean) > 5 * sd_u / math.sqrt(t.numel()) or abs(std / sd_u - 1) > 6 / math.sqrt(t.numel()) + 0.01:
            bad(f"{n}: mean {mean:g} std {std:g}: not uniform(-{bound:g}, {bound:g})")
        hist = torch.histc(x.double(), bins=10, min=-bound, max=bound)
        expct = t.numel() / 10
        if ((hist - expct).abs() > 6 * math.sqrt(expct)).any():
            bad(f"{n}: histogram {hist.tolist()} not flat")


def check(path, L, C, V, Dm, Dd, F, cmix, ln0):
    items, meta = x060.st_read(path)
    want = x060.param_list(L, C, V, Dm, Dd, F, ln0)
    names = [n for n, _ in items]
    if names != [n for n, _ in want]:
        i = next((i for i, (a, b) in enumerate(zip(names, [n for n, _ in want])) if a != b), min(len(names), len(want)))
        bad(f"names/order differ from the state_dict at {i}: {names[i:i + 1]} vs {[n for n, _ in want][i:i + 1]}")
        return
    for (n, t), (_, shape) in zip(items, want):
        if list(t.shape) != list(shape):
            bad(f"{n}: shape {list(t.shape)} != {list(shape)}")
    if meta.get("model_type") != "x060":
        bad(f"metadata model_type = {meta.get('model_type')!r}")
    dtypes = {t.dtype for _, t in items}
    if len(dtypes) != 1:
        bad(f"mixed dtypes {dtypes}")
    dt = dtypes.pop()
    total = sum(t.numel() for _, t in items)
    print(f"tensors {len(items)} params {total} dtype {dt}")
    forms = {}
    stats = {"formula": 0, "ortho": 0, "zeros": 0, "ones": 0, "uniform": 0}
    worst_orth = 0.0
    for n, t in items:
        kind, gain = kind_of(n, C, V)
        stats[kind] += 1
        x = t.float()
        if kind == "zeros":
            if t.abs().max() != 0 or torch.signbit(x).any():
                bad(f"{n}: not all +0")
        elif kind == "ones":
            if (x != 1).any():
                bad(f"{n}: not all 1")
        elif kind == "uniform":
            uniform_check(n, t, gain, dt)
        elif kind == "ortho":
            W = x.double()
            G = W.T @ W if W.shape[0] > W.shape[1] else W @ W.T
            err = (G / gain ** 2 - torch.eye(G.shape[0], dtype=torch.float64)).abs().max().item()
            worst_orth = max(worst_orth, err if dt == torch.float32 else 0)
            tol = 1e-5 if dt == torch.float32 else 3e-2
            if err > tol:
                bad(f"{n}: |G/gain^2 - I| = {err:.3g} > {tol:g} (gain {gain:g})")
            if (W.abs() < 1e-3 * gain).double().mean().item() > 0.1:
                bad(f"{n}: too many entries ~0 for a random rotation")
        else:
            l = int(n.split(".")[1])
            if l not in forms:
                forms[l] = (layer_formulas(L, C, l, cmix), layer_formulas(L, C, l, cmix, pow_fn=pow_correct))
            key = n.split(".", 2)[2]
            ref_torch, ref_cr = forms[l][0][key].reshape(t.shape), forms[l][1][key].reshape(t.shape)
            if dt == torch.bfloat16:
                want_b = ref_torch.bfloat16()
                if not torch.equal(t.view(torch.int16), want_b.view(torch.int16)):
                    i = int((x != want_b.float()).reshape(-1).nonzero()[0])
                    bad(f"{n}: bf16 differs from torch's at {i}: {t.reshape(-1)[i].item()} vs {want_b.reshape(-1)[i].item()}")
            elif dt == torch.float32:
                if not torch.equal(t.view(torch.int32), ref_cr.view(torch.int32)):
                    i = int((t != ref_cr).reshape(-1).nonzero()[0])
                    bad(f"{n}: fp32 differs from the float32 formula at {i}: {t.reshape(-1)[i].item()!r} vs "
                        f"{ref_cr.reshape(-1)[i].item()!r}")
                # torch.pow is within 1 ulp of the pow term; the adds after it may round again
                pw = (1.0 - ref_torch.double()).abs().float()
                tol = 2 * spacing(pw).double() + spacing(ref_torch).double()   # time_maa_v: one more add
                if ((t.double() - ref_torch.double()).abs() > tol).any():
                    bad(f"{n}: fp32 further from torch.pow's value than 1 ulp of the pow term")
            else:
                if not torch.equal(t.view(torch.int16), ref_torch.half().view(torch.int16)):
                    bad(f"{n}: fp16 differs from the reference")
    print("kinds", stats, f"worst orthogonality error (fp32) {worst_orth:.3g}")


SANITY = {  # spec 1.3, bf16, L12-D768, channels 0 / 1 / 63 / 64 / 383 / 767
    (0, "att.time_decay"): [-6, -5.9375, -5.125, -5.125, -2.92188, -1],
    (0, "att.time_faaaa"): [0, 0.100098, 0, 0.100098, -0.100098, -0.100098],
    (0, "att.time_maa_r"): [1, 0.964844, 0.714844, 0.710938, 0.292969, 0.000652],
    (11, "att.time_decay"): [-6, -6, -5.96875, -5.96875, -4.75, -1],
    (11, "att.time_faaaa"): [1, 1.10156, 0.917969, 1.01562, 0.400391, -0.100098],
    (11, "att.time_maa_v"): [0.699219, 0.125, -0.111816, -0.112793, -0.244141, -0.300781],
    (11, "ffn.time_maa_k"): [1, 0.00383, 0.00145, 0.00143, 0.000402, 7.75e-7],
}


def sanity(path=None):
    """The formulas (or, with path, an L12-D768 bf16 file) against the spec's values."""
    idx = [0, 1, 63, 64, 383, 767]
    forms = {l: layer_formulas(12, 768, l) for l in (0, 11)}
    if path:
        t = dict(x060.st_read(path)[0])
        forms = {l: {k.split(".", 2)[2]: v for k, v in t.items() if k.startswith(f"blocks.{l}.")} for l in (0, 11)}
    for (l, key), want in SANITY.items():
        got = forms[l][key].reshape(-1).bfloat16().float()
        for i, w in zip(idx, want):
            g = got[i].item()
            if abs(g - w) > 5e-3 * abs(w) + 1e-9:
                bad(f"sanity {l} {key}[{i}] = {g} want {w}")
    lx = forms[0]["att.ln_x.weight"].bfloat16().float()[0].item()
    if abs(lx - 0.175781) > 1e-6:
        bad(f"sanity ln_x.weight layer 0 = {lx}")
    print("sanity values checked")


OFFICIAL = [  # (name, L, C, Dm, Dd, params with V = 65536), spec 1.2
    ("L12-D768", 12, 768, 32, 64, 196_955_136),
    ("L24-D2048 (1B6)", 24, 2048, 32, 64, 1_599_873_024),
    ("L32-D2560 (3B)", 32, 2560, 32, 64, 3_099_863_040),
    ("L32-D4096 (7B)", 32, 4096, 64, 128, 7_635_746_816),
    ("L61-D4096 (14B)", 61, 4096, 64, 128, 14_069_088_256),
]


def counts():
    for name, L, C, Dm, Dd, want in OFFICIAL:
        got = sum(math.prod(s) for _, s in x060.param_list(L, C, 65536, Dm, Dd))
        print(f"{name}: {got} (dim_ffn {x060.dim_ffn(C)})")
        if got != want:
            bad(f"{name}: {got} != {want}")
    for C, F in ((768, 2688), (1024, 3584), (2048, 7168), (2560, 8960), (4096, 14336)):
        if x060.dim_ffn(C) != F:
            bad(f"dim_ffn({C}) = {x060.dim_ffn(C)} != {F}")


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd = argv[1]
    if cmd in ("write", "check"):
        L, C, V = int(argv[3]), int(argv[4]), int(argv[5])
        Dm, Dd, F, cmix, ln0 = parse_dims(argv)
        if cmd == "write":
            dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[opt(argv, "--dtype", "fp32")]
            write(argv[2], L, C, V, Dm, Dd, F, cmix, dt)
        else:
            check(argv[2], L, C, V, Dm, Dd, F, cmix, ln0)
    elif cmd == "sanity":
        sanity(argv[2] if len(argv) > 2 else None)
    elif cmd == "counts":
        counts()
    else:
        print(__doc__)
        return 2
    if FAILS:
        print(f"{len(FAILS)} failure(s)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
