#!/usr/bin/env python3
"""x060.py: an independent PyTorch implementation of the RWKV-6 x060 model,
written from /work/shared/spec/rwkv6-reference.md and the sources it cites
(RWKV-LM RWKV-v5/src/model.py RWKV_Tmix_x060, RWKV_CMix_x060, Block, RWKV,
L2Wrap), in plain float64 autograd, used to check the C x060 model.

  x060.py OUTDIR --layers L --embd C --vocab V [--ranks Dm,Dd] [--ffn F]
          [--ln0 0|1] [--batch B] [--ctx T] [--seed S] [--tokens "ID ..."]
          [--bf16] [--no-grad]

Builds a tiny x060 model with random weights (the init formulas perturbed, and
random matrices and LoRAs, so decays, bonuses and mixes vary), random tokens,
and writes to OUTDIR (the conventions of tests/ref/x070.py):
  config.txt   "L C V H Dm Dd F ln0 B T"
  weights.f32  every parameter, float32, in state-dict (= file) order
  names.txt    the parameter names, one a line, in that order
  x.i32 y.i32  B*T int32 inputs and targets
  logits.f32   B*T*V float32
  loss.txt     mean cross entropy (float64, %.17g)
  grad.f32     d(loss + L2Wrap)/d(param), float32, state-dict order
  model.safetensors  the weights (F32, or BF16 with --bf16; official key names
               and shapes, metadata model_type=x060)
  model.pth    with --pth: the same, by torch.save (a plain dict, as the trainer saves)
With --tokens, B is 1 and x is those ids (y: x shifted, last 0).
With --bf16 the weights are rounded to bf16 first (file and computation).
--ln0 0 leaves out blocks.0.ln0.* (and the LayerNorm it applies).
L2Wrap (+1e-4*max/R at each row's argmax logit) is produced by adding
1e-4/(2R) * sum(max(z)^2) to the loss before backward; loss.txt excludes it.
The helpers (param_list, forward, the safetensors reader/writer) are imported
by the other tests/ref/x060_*.py scripts.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

DT = torch.float64
N = 64  # head size


def dim_ffn(C):
    """train.py: int((n_embd * 3.5) // 32 * 32), rounded down."""
    return int((C * 3.5) // 32 * 32)


def param_list(L, C, V, Dm=32, Dd=64, F=None, ln0=True):
    """(name, shape) in RWKV-LM's state_dict order (spec 1.3)."""
    F = dim_ffn(C) if F is None else F
    H = C // N
    out = [("emb.weight", (V, C))]
    for l in range(L):
        p = f"blocks.{l}."
        out += [(p + "ln1.weight", (C,)), (p + "ln1.bias", (C,)),
                (p + "ln2.weight", (C,)), (p + "ln2.bias", (C,))]
        if l == 0 and ln0:
            out += [(p + "ln0.weight", (C,)), (p + "ln0.bias", (C,))]
        a = p + "att."
        out += [(a + "time_maa_" + m, (1, 1, C)) for m in ("x", "w", "k", "v", "r", "g")]
        out += [(a + "time_maa_w1", (C, 5 * Dm)), (a + "time_maa_w2", (5, Dm, C)),
                (a + "time_decay", (1, 1, C)), (a + "time_decay_w1", (C, Dd)), (a + "time_decay_w2", (Dd, C)),
                (a + "time_faaaa", (H, N))]
        out += [(a + m + ".weight", (C, C)) for m in ("receptance", "key", "value", "output", "gate")]
        out += [(a + "ln_x.weight", (C,)), (a + "ln_x.bias", (C,))]
        f = p + "ffn."
        out += [(f + "time_maa_k", (1, 1, C)), (f + "time_maa_r", (1, 1, C)),
                (f + "key.weight", (F, C)), (f + "receptance.weight", (C, C)), (f + "value.weight", (C, F))]
    out += [("ln_out.weight", (C,)), ("ln_out.bias", (C,)), ("head.weight", (V, C))]
    return out


def make_weights(plist, L, C, gen):
    """Init-like vectors (RWKV_Tmix_x060.__init__) perturbed, random matrices of unit-ish gain."""
    def rn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float32)

    n = torch.arange(C, dtype=torch.float64)
    ddd = n / C
    W = {}
    for name, shape in plist:
        l = int(name.split(".")[1]) if name.startswith("blocks.") else -1
        key = name.split(".", 2)[2] if l >= 0 else name
        r01 = l / (L - 1) if l >= 0 else 0.0
        r1 = 1 - l / L if l >= 0 else 0.0
        if key.endswith(".weight") and len(shape) == 1:      # LayerNorm / GroupNorm gains
            base = ((1 + l) / L) ** 0.7 if "ln_x" in key else 1.0
            t = base + 0.2 * rn(*shape)
        elif key.endswith(".bias"):
            t = 0.2 * rn(*shape)
        elif "time_maa_" in key and len(shape) == 3 and shape[:2] == (1, 1):
            e = {"att.time_maa_r": 0.5 * r1, "att.time_maa_g": 0.5 * r1}.get(key, r1)
            if key.startswith("ffn."):
                e = r1 ** 3
            v = 1 - ddd ** e - (0.3 * r01 if key == "att.time_maa_v" else 0)
            t = (v.float() + 0.2 * rn(C)).clamp(-0.2, 1.2).reshape(shape)
        elif key == "att.time_decay":
            d = -6 + 5 * (n / (C - 1)) ** (0.7 + 1.3 * r01)
            t = (d.float() + 0.5 * rn(C)).reshape(shape)
        elif key == "att.time_faaaa":
            u = r01 * (1 - n / (C - 1)) + 0.1 * (((n + 1) % 3) - 1)
            t = (u.float() + 0.3 * rn(C)).reshape(shape)
        elif key == "emb.weight":
            t = rn(*shape)
        elif key == "att.time_maa_w1":
            t = rn(*shape) / math.sqrt(shape[0]) * 2.0
        elif key == "att.time_maa_w2":
            t = rn(*shape) / math.sqrt(shape[1]) * 0.5
        elif key == "att.time_decay_w1":
            t = rn(*shape) / math.sqrt(shape[0]) * 2.0
        elif key == "att.time_decay_w2":
            t = rn(*shape) / math.sqrt(shape[0]) * 0.5
        else:                                                # [out, in] matrices: x @ W^T
            t = rn(*shape) / math.sqrt(shape[1])
        W[name] = t.contiguous()
    return W


def layernorm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def shift(h):
    """h_prev[t] = h[t-1], zero at t = 0 (nn.ZeroPad2d((0, 0, 1, -1)))."""
    return torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)


def wkv6(r, k, v, w, u, H):
    """Spec 3.1, per head, S[i][j] with i the value index and j the key index:
    y_t,i = sum_j r_t,j (S[i][j] + u_j k_t,j v_t,i);  then S[i][j] = S[i][j] d_t,j + v_t,i k_t,j,
    d = exp(-exp(w)).  The decay of token t first acts on the output at t+1."""
    B, T, C = r.shape
    view = lambda z: z.reshape(B, T, H, N)
    r, k, v, w = map(view, (r, k, v, w))
    u = u.reshape(H, N)
    d = torch.exp(-torch.exp(w))
    S = torch.zeros(B, H, N, N, dtype=r.dtype)
    ys = []
    for t in range(T):
        kv = v[:, t, :, :, None] * k[:, t, :, None, :]                    # [B,H,i,j] = v_i k_j
        ys.append(((S + u[None, :, None, :] * kv) * r[:, t, :, None, :]).sum(-1))
        S = S * d[:, t, :, None, :] + kv
    return torch.stack(ys, dim=1).reshape(B, T, C)


def block_dims(W, L):
    """(C, H, Dm) from the tensors: the LoRA rank is time_maa_w2.shape[1] (spec 1.2)."""
    C = W["emb.weight"].shape[1]
    return C, C // N, W["blocks.0.att.time_maa_w2"].shape[1]


def forward(W, idx, L, ln0_round=None):
    """Logits [B,T,V] (spec 2).  ln0_round, when given, is applied to LN0(emb)
    (the rwkv pip package folds ln0 into emb in the file's dtype, spec 5.2 step 3)."""
    C, H, Dm = block_dims(W, L)
    x = W["emb.weight"][idx]
    B, T = idx.shape
    for l in range(L):
        p = f"blocks.{l}."
        g = lambda s: W[p + s]
        if l == 0 and (p + "ln0.weight") in W:
            x = layernorm(x, g("ln0.weight"), g("ln0.bias"))
            if ln0_round is not None:
                x = ln0_round(x)
        # TimeMix (RWKV_Tmix_x060.forward)
        h = layernorm(x, g("ln1.weight"), g("ln1.bias"))
        xx = shift(h) - h
        xxx = h + xx * g("att.time_maa_x").reshape(C)
        z = torch.tanh(xxx @ g("att.time_maa_w1"))                          # [B,T,5*Dm]
        z = z.reshape(B * T, 5, Dm).transpose(0, 1)                          # chunks w, k, v, r, g
        m = torch.bmm(z, g("att.time_maa_w2")).reshape(5, B, T, C)
        mw, mk, mv, mr, mg = m.unbind(0)
        xw = h + xx * (g("att.time_maa_w").reshape(C) + mw)
        xk = h + xx * (g("att.time_maa_k").reshape(C) + mk)
        xv = h + xx * (g("att.time_maa_v").reshape(C) + mv)
        xr = h + xx * (g("att.time_maa_r").reshape(C) + mr)
        xg = h + xx * (g("att.time_maa_g").reshape(C) + mg)
        r = xr @ g("att.receptance.weight").T
        k = xk @ g("att.key.weight").T
        v = xv @ g("att.value.weight").T
        gate = torch.nn.functional.silu(xg @ g("att.gate.weight").T)
        w = g("att.time_decay").reshape(C) + torch.tanh(xw @ g("att.time_decay_w1")) @ g("att.time_decay_w2")
        y = wkv6(r, k, v, w, g("att.time_faaaa"), H)
        y4 = y.reshape(B, T, H, N)                                           # GroupNorm, H groups, eps 64e-5
        mu = y4.mean(-1, keepdim=True)
        var = ((y4 - mu) ** 2).mean(-1, keepdim=True)
        yn = ((y4 - mu) / torch.sqrt(var + 64e-5)).reshape(B, T, C) * g("att.ln_x.weight") + g("att.ln_x.bias")
        x = x + (yn * gate) @ g("att.output.weight").T
        # ChannelMix (RWKV_CMix_x060.forward)
        h = layernorm(x, g("ln2.weight"), g("ln2.bias"))
        xx = shift(h) - h
        xk = h + xx * g("ffn.time_maa_k").reshape(C)
        xr = h + xx * g("ffn.time_maa_r").reshape(C)
        kk = torch.relu(xk @ g("ffn.key.weight").T) ** 2
        x = x + torch.sigmoid(xr @ g("ffn.receptance.weight").T) * (kk @ g("ffn.value.weight").T)
    x = layernorm(x, W["ln_out.weight"], W["ln_out.bias"])
    return x @ W["head.weight"].T


def loss_and_l2wrap(z, y):
    """Mean cross entropy, and the term whose gradient is L2Wrap's (spec 2.1)."""
    R, V = y.numel(), z.shape[-1]
    ce = torch.nn.functional.cross_entropy(z.reshape(R, V), y.reshape(R))
    l2 = 1e-4 / (2 * R) * (z.reshape(R, V).max(dim=-1).values ** 2).sum()
    return ce, l2


# ---------------- safetensors in pure Python ----------------
ST_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}


def st_write(path, items, metadata):
    """items: (name, tensor) in file order."""
    header, blobs, off = {}, [], 0
    names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
    for name, t in items:
        b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_read(path):
    """(list of (name, tensor) in data order, metadata)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, e = info["data_offsets"]
        buf = bytearray(data[b:e])
        dt = ST_DTYPES[info["dtype"]]
        t = torch.frombuffer(buf, dtype=dt) if e > b else torch.empty(0, dtype=dt)
        out.append((name, t.reshape(info["shape"])))
    return out, meta


def load_checkpoint(path):
    """{name: tensor} from a safetensors file or a .pth (torch.load)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"PK":
        return dict(torch.load(path, map_location="cpu"))
    return dict(st_read(path)[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=100)
    ap.add_argument("--ranks", default="32,64", help="Dm,Dd: time_maa and time_decay LoRA ranks")
    ap.add_argument("--ffn", type=int, default=0, help="dim_ffn (0: int(3.5C) rounded down to 32)")
    ap.add_argument("--ln0", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tokens", default=None)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--no-grad", action="store_true", help="skip the backward (grad.f32 not written)")
    ap.add_argument("--pth", action="store_true", help="also model.pth, written by torch.save as the trainer saves")
    o = ap.parse_args()
    L, C, V = o.layers, o.embd, o.vocab
    Dm, Dd = (int(s) for s in o.ranks.split(","))
    F = o.ffn or dim_ffn(C)
    H = C // N
    gen = torch.Generator().manual_seed(o.seed)
    plist = param_list(L, C, V, Dm, Dd, F, bool(o.ln0))
    W32 = make_weights(plist, L, C, gen)
    if o.bf16:
        W32 = {k: t.to(torch.bfloat16).to(torch.float32) for k, t in W32.items()}
    idx = torch.randint(0, V, (o.batch, o.ctx + 1), generator=gen)
    if o.tokens is not None:
        ids = [int(t) for t in o.tokens.split()]
        idx = torch.tensor([ids + [0]], dtype=torch.int64)
        o.batch, o.ctx = 1, len(ids)
    x, y = idx[:, :-1].contiguous(), idx[:, 1:].contiguous()

    W = {k: t.to(DT).requires_grad_(True) for k, t in W32.items()}
    z = forward(W, x, L)
    ce, l2 = loss_and_l2wrap(z, y)
    if not o.no_grad:
        (ce + l2).backward()

    os.makedirs(o.outdir, exist_ok=True)
    j = lambda f: os.path.join(o.outdir, f)
    with open(j("config.txt"), "w") as f:
        f.write(f"{L} {C} {V} {H} {Dm} {Dd} {F} {o.ln0} {o.batch} {o.ctx}\n")
    np.concatenate([W32[n].reshape(-1).numpy() for n, _ in plist]).astype("<f4").tofile(j("weights.f32"))
    x.numpy().astype("<i4").tofile(j("x.i32"))
    y.numpy().astype("<i4").tofile(j("y.i32"))
    z.detach().numpy().astype("<f4").tofile(j("logits.f32"))
    with open(j("loss.txt"), "w") as f:
        f.write("%.17g\n" % ce.item())
    if not o.no_grad:
        grads = []
        for n, shape in plist:
            gr = W[n].grad
            grads.append((gr if gr is not None else torch.zeros(shape, dtype=DT)).reshape(-1).numpy())
        np.concatenate(grads).astype("<f4").tofile(j("grad.f32"))
    dt = torch.bfloat16 if o.bf16 else torch.float32
    st_write(j("model.safetensors"), [(n, W32[n].to(dt)) for n, _ in plist], {"format": "pt", "model_type": "x060"})
    if o.pth:   # a plain dict in state-dict order, as RWKV-LM's trainer saves (spec 5.1)
        torch.save({n: W32[n].to(dt).contiguous() for n, _ in plist}, j("model.pth"))
    with open(j("names.txt"), "w") as f:
        for n, _ in plist:
            f.write(n + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
