#!/usr/bin/python3
"""Independent checks of rwkv-init output, in PyTorch.

Written from RWKV-LM-V7 src/model.py (RWKV_Tmix_x070, RWKV_CMix_x070, RWKV)
and src/trainer.py (generate_init_weight), sharing no code with the C side:
a pure-Python safetensors reader/writer (struct + json + torch.frombuffer),
the state-dict names, shapes and order (model.state_dict()), the LoRA rank
formula of RWKV_Tmix_x070.__init__, and the deterministic init computed with
the same torch float32 ops as RWKV_Tmix_x070 / RWKV_CMix_x070 /
generate_init_weight.

usage:
  init_ref.py check FILE L C V [--no-layer0-v] [--ranks Dw,Da,Dv,Dg]
  init_ref.py sanity FILE          (FILE: an L12-D768 bf16 init, fixed values)
  init_ref.py counts               (parameter counts and rank table)
  init_ref.py write-hf FILE        (a safetensors file laid out as the HF writer does)
  init_ref.py read FILE            (print name dtype shape sum, one per line)
Exit status 0 when every check passes; each failure is printed.
"""
import json
import math
import struct
import sys

import torch

FAILS = []


def bad(msg):
    FAILS.append(msg)
    print("FAIL:", msg)


# ---------------- safetensors in pure Python ----------------
DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


def st_load(path):
    """Returns (list of (name, tensor) in data-offset order, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n <= 100_000_000 and 8 + n <= len(raw), "bad header length"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"])
    pos = 0
    out = []
    for name, info in items:
        b, e = info["data_offsets"]
        assert b == pos, f"{name}: offset {b} != {pos}"
        dt = DTYPES[info["dtype"]]
        shape = info["shape"]
        numel = math.prod(shape)
        assert e - b == numel * torch.tensor([], dtype=dt).element_size(), f"{name}: size"
        buf = bytearray(data[b:e])
        t = torch.frombuffer(buf, dtype=dt) if numel else torch.empty(0, dtype=dt)
        out.append((name, t.reshape(shape)))
        pos = e
    assert pos == len(data), "uncovered bytes at the end"
    return out, meta


def st_save_hf(path, tensors, metadata):
    """Layout of huggingface safetensors' writer: sorted by descending dtype
    alignment then name, header padded with spaces to a multiple of 8."""
    order = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header = {"__metadata__": metadata}
    off = 0
    blobs = []
    for name, t in order:
        b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---------------- sizes, names and shapes (model.py) ----------------
def lora_ranks(C):
    r = lambda k: max(32, int(round(k * C ** 0.5 / 32) * 32))  # Python round = half to even
    return r(2.5), r(2.5), r(1.7), r(5.0)


def state_dict_shapes(L, C, V, ranks=None, layer0_v=True, N=64):
    Dw, Da, Dv, Dg = ranks or lora_ranks(C)
    H = C // N
    out = [("emb.weight", [V, C])]
    for l in range(L):
        p = f"blocks.{l}."
        out += [(p + "ln1.weight", [C]), (p + "ln1.bias", [C]), (p + "ln2.weight", [C]), (p + "ln2.bias", [C])]
        if l == 0:
            out += [(p + "ln0.weight", [C]), (p + "ln0.bias", [C])]
        out += [(p + "att." + x, [1, 1, C]) for x in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g")]
        out += [(p + "att.w1", [C, Dw]), (p + "att.w2", [Dw, C]), (p + "att.w0", [1, 1, C])]
        out += [(p + "att.a1", [C, Da]), (p + "att.a2", [Da, C]), (p + "att.a0", [1, 1, C])]
        if l > 0 or layer0_v:
            out += [(p + "att.v1", [C, Dv]), (p + "att.v2", [Dv, C]), (p + "att.v0", [1, 1, C])]
        out += [(p + "att.g1", [C, Dg]), (p + "att.g2", [Dg, C])]
        out += [(p + "att.k_k", [1, 1, C]), (p + "att.k_a", [1, 1, C]), (p + "att.r_k", [H, N])]
        out += [(p + "att." + x + ".weight", [C, C]) for x in ("receptance", "key", "value", "output")]
        out += [(p + "att.ln_x.weight", [C]), (p + "att.ln_x.bias", [C])]
        out += [(p + "ffn.x_k", [1, 1, C]), (p + "ffn.key.weight", [4 * C, C]), (p + "ffn.value.weight", [C, 4 * C])]
    out += [("ln_out.weight", [C]), ("ln_out.bias", [C]), ("head.weight", [V, C])]
    return out


# ---------------- deterministic init, as model.py computes it ----------------
def layer_formulas(L, C, l, N=64, pow_fn=torch.pow):
    """The step-A tensors of layer l in float32, with the reference's torch ops.
    pow_fn lets the caller swap torch.pow (vectorised, within 1 ulp) for a
    correctly rounded float32 pow."""
    r01 = l / (L - 1)
    r1 = 1.0 - (l / L)
    ddd = torch.ones(1, 1, C)
    for i in range(C):
        ddd[0, 0, i] = i / C
    f = {}
    f["att.x_r"] = 1.0 - pow_fn(ddd, 0.2 * r1)
    f["att.x_w"] = 1.0 - pow_fn(ddd, 0.9 * r1)
    f["att.x_k"] = 1.0 - pow_fn(ddd, 0.7 * r1)
    f["att.x_v"] = 1.0 - pow_fn(ddd, 0.7 * r1)
    f["att.x_a"] = 1.0 - pow_fn(ddd, 0.9 * r1)
    f["att.x_g"] = 1.0 - pow_fn(ddd, 0.2 * r1)
    www = torch.zeros(C)
    zigzag = torch.zeros(C)
    linear = torch.zeros(C)
    for n in range(C):
        linear[n] = n / (C - 1) - 0.5
        zigzag[n] = ((n % N) - ((N - 1) / 2)) / ((N - 1) / 2)
        zigzag[n] = zigzag[n] * abs(zigzag[n])
        www[n] = -6 + 6 * (n / (C - 1)) ** (1 + 1 * r01 ** 0.3)
    f["att.w0"] = www.reshape(1, 1, C) + 0.5 + zigzag * 2.5
    f["att.a0"] = torch.zeros(1, 1, C) - 0.19 + zigzag * 0.3 + linear * 0.4
    f["att.v0"] = torch.zeros(1, 1, C) + 0.73 - linear * 0.4
    f["att.k_k"] = torch.zeros(1, 1, C) + 0.71 - linear * 0.1
    f["att.k_a"] = torch.zeros(1, 1, C) + 1.02
    f["att.r_k"] = torch.zeros(C // N, N) - 0.04
    f["att.ln_x.weight"] = (torch.ones(C) * 0.0) + (((1 + l) / L) ** 0.7)
    ddd2 = torch.ones(1, 1, C)
    for i in range(C):
        ddd2[0, 0, i] = i / C
    f["ffn.x_k"] = 1.0 - pow_fn(ddd2, r1 ** 4)
    return f


def pow_correct(x, e):
    """float32 pow rounded once from float64 (exponent first rounded to float32, as torch does)."""
    e32 = float(torch.tensor(e, dtype=torch.float32))
    return torch.pow(x.double(), e32).float()


def ulp_diff(a, b):
    ia = a.contiguous().view(torch.int32).long()
    ib = b.contiguous().view(torch.int32).long()
    return int((ia - ib).abs().max()) if a.numel() else 0


def spacing(x):
    a = x.abs().float()
    return torch.nextafter(a, torch.full_like(a, math.inf)) - a


def kind_of(name, C, V, ranks):
    """(kind, gain) from generate_init_weight's rules."""
    Dw, Da, Dv, Dg = ranks
    if name == "emb.weight":
        return "uniform", 1e-4
    if name == "head.weight":
        return "ortho", (0.5 * math.sqrt(V / C) if V > C else 0.5)
    if "att.ln_x.weight" in name:
        return "formula", None
    if "ln_" in name or ".ln" in name:
        return ("ones" if name.endswith(".weight") else "zeros"), None
    last = name.split(".")[-1]
    if last in ("w1", "a1", "v1", "g1"):
        return "zeros", None
    if last in ("w2", "a2", "v2", "g2"):
        D = {"w2": Dw, "a2": Da, "v2": Dv, "g2": Dg}[last]
        return "ortho", (math.sqrt(D / C) if D > C else 1.0) * 0.1
    if ".weight" not in name:
        return "formula", None
    if ".att.output." in name or ".ffn.value." in name:
        return "zeros", None
    if ".att.key." in name:
        return "ortho", 0.1
    return "ortho", 1.0


def check(path, L, C, V, layer0_v=True, ranks=None):
    ranks = ranks or lora_ranks(C)
    items, meta = st_load(path)
    want = state_dict_shapes(L, C, V, ranks, layer0_v)
    names = [n for n, _ in items]
    if names != [n for n, _ in want]:
        bad(f"names/order differ from model.state_dict(): first difference at "
            f"{next((i for i, (a, b) in enumerate(zip(names, [n for n, _ in want])) if a != b), min(len(names), len(want)))}")
        return
    for (n, t), (_, shape) in zip(items, want):
        if list(t.shape) != shape:
            bad(f"{n}: shape {list(t.shape)} != {shape}")
    if meta.get("model_type") != "x070":
        bad(f"metadata model_type = {meta.get('model_type')!r}")
    dtypes = {t.dtype for _, t in items}
    if len(dtypes) != 1:
        bad(f"mixed dtypes {dtypes}")
    dt = dtypes.pop()
    total = sum(t.numel() for _, t in items)
    print(f"tensors {len(items)} params {total} dtype {dt}")
    formulas = {}
    stats = {"formula": 0, "ortho": 0, "zeros": 0, "ones": 0, "uniform": 0}
    worst_orth = 0.0
    for n, t in items:
        kind, gain = kind_of(n, C, V, ranks)
        stats[kind] += 1
        x = t.float()
        if kind == "zeros":
            if t.abs().max() != 0 or torch.signbit(t.float()).any():
                bad(f"{n}: not all +0")
        elif kind == "ones":
            if (x != 1).any():
                bad(f"{n}: not all 1")
        elif kind == "uniform":
            bound = torch.tensor(1e-4).to(dt).float()   # the bound as stored (bf16(1e-4) > 1e-4)
            if x.abs().max() > bound:
                bad(f"{n}: |x| max {x.abs().max():g} > 1e-4")
            if t.numel() >= 10000:
                mean, std = x.double().mean().item(), x.double().std().item()
                sd_u = 2e-4 / math.sqrt(12)
                if abs(mean) > 5 * sd_u / math.sqrt(t.numel()) or abs(std / sd_u - 1) > 0.02:
                    bad(f"{n}: mean {mean:g} std {std:g} not uniform(-1e-4,1e-4)")
                hist = torch.histc(x.double(), bins=10, min=-1e-4, max=1e-4)
                expct = t.numel() / 10
                if ((hist - expct).abs() > 6 * math.sqrt(expct)).any():
                    bad(f"{n}: histogram {hist.tolist()} not flat")
        elif kind == "ortho":
            W = x.double()
            if W.shape[0] > W.shape[1]:
                G = W.T @ W
            else:
                G = W @ W.T
            err = (G / gain ** 2 - torch.eye(G.shape[0], dtype=torch.float64)).abs().max().item()
            worst_orth = max(worst_orth, err if dt == torch.float32 else 0)
            tol = 1e-5 if dt == torch.float32 else 3e-2
            if err > tol:
                bad(f"{n}: |G/gain^2 - I| = {err:.3g} > {tol:g} (gain {gain:g})")
            # not a structured matrix: entries spread like a random rotation
            frac_small = (W.abs() < 1e-3 * gain).double().mean().item()
            if frac_small > 0.1:
                bad(f"{n}: {frac_small:.2f} of the entries are ~0")
        else:
            l = int(n.split(".")[1])
            if l not in formulas:
                formulas[l] = (layer_formulas(L, C, l), layer_formulas(L, C, l, pow_fn=pow_correct))
            key = n.split(".", 2)[2]
            ref_torch, ref_cr = formulas[l][0][key], formulas[l][1][key]
            if dt == torch.bfloat16:
                # the reference's stored values: fp32 ops then .bfloat16()
                if not torch.equal(t.view(torch.int16), ref_torch.bfloat16().view(torch.int16)):
                    i = int((t.float() != ref_torch.bfloat16().float()).reshape(-1).nonzero()[0])
                    bad(f"{n}: bf16 differs from the reference at {i}: {t.reshape(-1)[i].item()} vs {ref_torch.reshape(-1)[i].item()}")
            elif dt == torch.float32:
                if not torch.equal(t.view(torch.int32), ref_cr.view(torch.int32)):
                    bad(f"{n}: fp32 differs from the float32 formula (max {ulp_diff(t, ref_cr)} ulp)")
                # torch.pow (vectorised) is within 1 ulp of the pow term; 1 - pow may round once more
                pw = (1.0 - ref_torch.double()).abs().float()
                tol = spacing(pw).double() + spacing(ref_torch).double()
                if ((t.double() - ref_torch.double()).abs() > tol).any():
                    bad(f"{n}: fp32 further from torch.pow's value than 1 ulp of the pow term")
            else:
                if not torch.equal(t.view(torch.int16), ref_torch.half().view(torch.int16)):
                    bad(f"{n}: fp16 differs from the reference")
    print("kinds", stats, f"worst orthogonality error (fp32) {worst_orth:.3g}")
    return total


def sanity(path):
    """Fixed values of an L12-D768 N=64 bf16 init: model.py's init formulas
    evaluated step by step in float32, then rounded to bf16."""
    t = dict(st_load(path)[0])
    def at(name, idx):
        return [float(t[name].reshape(-1)[i]) for i in idx]
    idx = [0, 1, 63, 64, 383, 767]
    exp = {
        "blocks.0.att.w0": [-8.0, -7.84375, -2.5, -7.5, -0.00390625, 3.0],
        "blocks.0.att.a0": [-0.691406, -0.671875, -0.057129, -0.65625, 0.109863, 0.310547],
        "blocks.0.att.x_r": [1.0, 0.734375, 0.392578, 0.392578, 0.129883, 0.000261],
        "blocks.11.att.w0": [-8.0, -7.84375, -2.953125, -7.96875, -1.507812, 3.0],
    }
    for name, want in exp.items():
        got = at(name, idx)
        for i, g, w in zip(idx, got, want):
            if abs(g - w) > 1e-6 * max(1, abs(w)) + 5e-7:
                bad(f"sanity value {name}[{i}] = {g} want {w}")
    for name, i, w in [("blocks.0.att.v0", 0, 0.929688), ("blocks.0.att.v0", 767, 0.53125),
                       ("blocks.0.att.k_k", 0, 0.761719), ("blocks.0.att.k_k", 767, 0.660156),
                       ("blocks.0.att.k_a", 0, 1.0234375), ("blocks.0.att.r_k", 0, -0.0400390625),
                       ("blocks.0.att.ln_x.weight", 0, 0.17578125), ("blocks.11.att.ln_x.weight", 0, 1.0)]:
        g = at(name, [i])[0]
        if abs(g - w) > 1e-6:
            bad(f"sanity value {name}[{i}] = {g} want {w}")
    print("sanity values checked")


def counts():
    for (L, C, want) in [(12, 768, 191_084_544), (24, 1024, 453_980_160), (24, 2048, 1_530_814_464)]:
        got = sum(math.prod(s) for _, s in state_dict_shapes(L, C, 65536))
        print(f"L{L}-D{C}: {got}")
        if got != want:
            bad(f"L{L}-D{C}: {got} != {want}")
    table = {256: (32, 32, 32, 64), 512: (64, 64, 32, 128), 768: (64, 64, 32, 128), 1024: (64, 64, 64, 160),
             2048: (128, 128, 64, 224), 2560: (128, 128, 96, 256), 4096: (160, 160, 96, 320)}
    for C, want in table.items():
        if lora_ranks(C) != want:
            bad(f"ranks C={C}: {lora_ranks(C)} != {want}")


def write_hf(path):
    g = torch.Generator().manual_seed(7)
    t = {
        "b.bf16": torch.randn(3, 5, generator=g).bfloat16(),
        "a.f32": torch.randn(4, generator=g),
        "c.f16": torch.randn(2, 2, 2, generator=g).half(),
        "d.i64": torch.arange(6, dtype=torch.int64).reshape(2, 3) - 3,
        "e.u8": torch.arange(7, dtype=torch.uint8),
        "f.empty": torch.zeros(0, 4),
        "g.scalar": torch.tensor(2.5, dtype=torch.float64),
        "nämé \"q\"": torch.ones(1, dtype=torch.int32),
    }
    st_save_hf(path, t, {"format": "pt", "note": "hf layout"})


def read(path):
    items, meta = st_load(path)
    for n, t in items:
        s = float(t.double().sum()) if t.numel() else 0.0
        print(n, DTYPE_NAMES[t.dtype], "x".join(map(str, t.shape)) or "scalar", "%.17g" % s)
    for k in sorted(meta):
        if not k.startswith("xxh3:"):
            print("meta", k, meta[k])


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd = argv[1]
    if cmd == "check":
        path, L, C, V = argv[2], int(argv[3]), int(argv[4]), int(argv[5])
        ranks = None
        if "--ranks" in argv:
            ranks = tuple(int(x) for x in argv[argv.index("--ranks") + 1].split(","))
        check(path, L, C, V, layer0_v="--no-layer0-v" not in argv, ranks=ranks)
    elif cmd == "sanity":
        sanity(argv[2])
    elif cmd == "counts":
        counts()
    elif cmd == "write-hf":
        write_hf(argv[2])
    elif cmd == "read":
        read(argv[2])
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
