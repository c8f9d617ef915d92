#!/usr/bin/env python3
"""x070.py: an independent PyTorch implementation of the RWKV-7 x070 forward,
written from RWKV-LM-V7 src/model.py (RWKV_Tmix_x070, RWKV_CMix_x070; doc/model.md)
in plain autograd, float64, used to check lib/model.c.

  x070.py OUTDIR --layers L --embd C --vocab V --ranks Dw,Da,Dv,Dg
          [--layer0-v 0|1] [--batch B] [--ctx T] [--seed S]

Builds a tiny model with random weights (init-like vectors plus random
matrices, so decays, gates and learning rates vary), random tokens, and writes
to OUTDIR:
  config.txt   "L C V H Dw Da Dv Dg layer0_v B T"
  weights.f32  every parameter, float32, in state-dict (= Layout) order
  x.i32 y.i32  B*T int32 inputs and targets
  logits.f32   B*T*V float32
  loss.txt     mean cross entropy (float64, %.17g)
  grad.f32     d(loss + L2Wrap)/d(param), float32, Layout order
  model.safetensors  the weights as a checkpoint (F32, or BF16 with --bf16),
               with metadata model_type=x070
With --tokens "ID ID ...", B is 1 and x is those ids (y: x shifted, last 0).
With --bf16 the weights are rounded to bf16 first (file and computation).
The L2Wrap gradient (+1e-4*max/R at the argmax) is produced by adding
1e-4/(2R) * sum(max(z)^2) to the loss before backward; loss.txt excludes it.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

DT = torch.float64
N = 64  # head size


def param_list(L, C, V, Dw, Da, Dv, Dg, layer0_v):
    """(name, shape) in RWKV-LM state_dict order (doc/model.md "Parameter order")."""
    H = C // N
    out = [("emb.weight", (V, C))]
    for l in range(L):
        p = f"blocks.{l}."
        out += [(p + "ln1.weight", (C,)), (p + "ln1.bias", (C,)),
                (p + "ln2.weight", (C,)), (p + "ln2.bias", (C,))]
        if l == 0:
            out += [(p + "ln0.weight", (C,)), (p + "ln0.bias", (C,))]
        for m in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"):
            out.append((p + "att." + m, (1, 1, C)))
        out += [(p + "att.w1", (C, Dw)), (p + "att.w2", (Dw, C)), (p + "att.w0", (1, 1, C)),
                (p + "att.a1", (C, Da)), (p + "att.a2", (Da, C)), (p + "att.a0", (1, 1, C))]
        if l > 0 or layer0_v:
            out += [(p + "att.v1", (C, Dv)), (p + "att.v2", (Dv, C)), (p + "att.v0", (1, 1, C))]
        out += [(p + "att.g1", (C, Dg)), (p + "att.g2", (Dg, C)),
                (p + "att.k_k", (1, 1, C)), (p + "att.k_a", (1, 1, C)), (p + "att.r_k", (H, N)),
                (p + "att.receptance.weight", (C, C)), (p + "att.key.weight", (C, C)),
                (p + "att.value.weight", (C, C)), (p + "att.output.weight", (C, C)),
                (p + "att.ln_x.weight", (C,)), (p + "att.ln_x.bias", (C,)),
                (p + "ffn.x_k", (1, 1, C)), (p + "ffn.key.weight", (4 * C, C)),
                (p + "ffn.value.weight", (C, 4 * C))]
    out += [("ln_out.weight", (C,)), ("ln_out.bias", (C,)), ("head.weight", (V, C))]
    return out


def make_weights(plist, L, C, gen):
    """Init-like deterministic vectors (RWKV_Tmix_x070.__init__) perturbed, random matrices of unit-ish gain."""
    def rn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float32)

    n = torch.arange(C, dtype=torch.float64)
    ddd = n / C
    linear = n / (C - 1) - 0.5
    zig = ((n % N) - (N - 1) / 2) / ((N - 1) / 2)
    zig = zig * zig.abs()
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
        elif key.startswith("att.x_") or key == "ffn.x_k":
            e = {"att.x_r": 0.2, "att.x_w": 0.9, "att.x_k": 0.7, "att.x_v": 0.7,
                 "att.x_a": 0.9, "att.x_g": 0.2}.get(key)
            v = 1 - ddd ** (e * r1) if e else 1 - ddd ** (r1 ** 4)
            t = (v.float() + 0.2 * rn(C)).clamp(0, 1).reshape(shape)
        elif key == "att.w0":
            www = -6 + 6 * (n / (C - 1)) ** (1 + r01 ** 0.3)
            t = ((www + 0.5 + zig * 2.5).float() + 0.5 * rn(C)).reshape(shape)
        elif key == "att.a0":
            t = ((-0.19 + zig * 0.3 + linear * 0.4).float() + 0.5 * rn(C)).reshape(shape)
        elif key == "att.v0":
            t = ((0.73 - linear * 0.4).float() + 0.5 * rn(C)).reshape(shape)
        elif key == "att.k_k":
            t = ((0.71 - linear * 0.1).float() + 0.2 * rn(C)).reshape(shape)
        elif key == "att.k_a":
            t = (1.02 + 0.2 * rn(C)).reshape(shape)
        elif key == "att.r_k":
            t = -0.04 + 0.3 * rn(*shape)
        elif key == "emb.weight":
            t = rn(*shape)
        else:                                                # matrices: x @ M or x @ M^T
            fan_in = shape[0] if key.split(".")[-1] in ("w1", "a1", "v1", "g1", "w2", "a2", "v2", "g2") else shape[1]
            t = rn(*shape) / math.sqrt(fan_in)
            if key in ("att.w2",):
                t = t * 2.0
        W[name] = t.contiguous()
    return W


def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def shift(h):
    """h_prev[t] = h[t-1], zero at t = 0."""
    return torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)


def wkv7(r, w, k, v, a, b, H):
    """cuda/rwkv7_clampw.cu: S_t = S diag(d) + (S a) b^T + v k^T, y = S r; S[i][j], i value, j key."""
    B, T, C = r.shape
    view = lambda z: z.reshape(B, T, H, N)
    r, w, k, v, a, b = map(view, (r, w, k, v, a, b))
    d = torch.exp(-math.exp(-0.5) * torch.sigmoid(w))
    S = torch.zeros(B, H, N, N, dtype=r.dtype)
    ys = []
    for t in range(T):
        sa = S @ a[:, t, :, :, None]                              # [B,H,N,1]
        S = S * d[:, t, :, None, :] + sa @ b[:, t, :, None, :] + v[:, t, :, :, None] @ k[:, t, :, None, :]
        ys.append((S @ r[:, t, :, :, None])[..., 0])
    return torch.stack(ys, dim=1).reshape(B, T, C)


def forward(W, idx, L, C, H):
    x = W["emb.weight"][idx]
    v_first = None
    for l in range(L):
        p = f"blocks.{l}."
        g = lambda s: W[p + s]
        if l == 0:
            x = layernorm(x, g("ln0.weight"), g("ln0.bias"), 1e-5)
        # TimeMix
        h = layernorm(x, g("ln1.weight"), g("ln1.bias"), 1e-5)
        xx = shift(h) - h
        xr, xw, xk, xv, xa, xg = (h + xx * g("att." + m).reshape(C) for m in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"))
        r = xr @ g("att.receptance.weight").T
        k = xk @ g("att.key.weight").T
        v = xv @ g("att.value.weight").T
        w = g("att.w0").reshape(C) + torch.tanh(xw @ g("att.w1")) @ g("att.w2")
        if l == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(g("att.v0").reshape(C) + (xv @ g("att.v1")) @ g("att.v2"))
        a = torch.sigmoid(g("att.a0").reshape(C) + (xa @ g("att.a1")) @ g("att.a2"))
        gate = torch.sigmoid(xg @ g("att.g1")) @ g("att.g2")
        kk = k * g("att.k_k").reshape(C)
        kk4 = kk.reshape(*kk.shape[:2], H, N)
        kk = (kk4 / kk4.norm(dim=-1, keepdim=True).clamp_min(1e-12)).reshape(kk.shape)
        k = k * (1 + (a - 1) * g("att.k_a").reshape(C))
        y = wkv7(r, w, k, v, -kk, kk * a, H)
        B_, T_ = y.shape[:2]
        y4 = y.reshape(B_, T_, H, N)
        mu = y4.mean(-1, keepdim=True)
        var = ((y4 - mu) ** 2).mean(-1, keepdim=True)
        yn = ((y4 - mu) / torch.sqrt(var + 64e-5)).reshape(B_, T_, C) * g("att.ln_x.weight") + g("att.ln_x.bias")
        bonus = (r * k * g("att.r_k").reshape(C)).reshape(B_, T_, H, N).sum(-1, keepdim=True) * v.reshape(B_, T_, H, N)
        out = (yn + bonus.reshape(B_, T_, C)) * gate
        x = x + out @ g("att.output.weight").T
        # ChannelMix
        h = layernorm(x, g("ln2.weight"), g("ln2.bias"), 1e-5)
        mixed = h + (shift(h) - h) * g("ffn.x_k").reshape(C)
        act = torch.relu(mixed @ g("ffn.key.weight").T) ** 2
        x = x + act @ g("ffn.value.weight").T
    x = layernorm(x, W["ln_out.weight"], W["ln_out.bias"], 1e-5)
    return x @ W["head.weight"].T


def write_safetensors(path, plist, W32, bf16):
    """The safetensors layout written out by hand (no extra package needed)."""
    import json
    header, blobs, off = {}, [], 0
    for name, shape in plist:
        a = W32[name].numpy().astype("<f4")
        if bf16:
            a = (a.view("<u4") >> 16).astype("<u2")   # exact: values are already bf16
        b = a.tobytes()
        header[name] = {"dtype": "BF16" if bf16 else "F32", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt", "model_type": "x070"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=100)
    ap.add_argument("--ranks", default="32,32,32,64")
    ap.add_argument("--layer0-v", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tokens", default=None)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--no-grad", action="store_true", help="skip the backward (grad.f32 not written)")
    o = ap.parse_args()
    L, C, V = o.layers, o.embd, o.vocab
    Dw, Da, Dv, Dg = (int(s) for s in o.ranks.split(","))
    H = C // N
    gen = torch.Generator().manual_seed(o.seed)
    plist = param_list(L, C, V, Dw, Da, Dv, Dg, o.layer0_v)
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
    z = forward(W, x, L, C, H)
    R = o.batch * o.ctx
    ce = torch.nn.functional.cross_entropy(z.reshape(R, V), y.reshape(R))
    l2wrap = 1e-4 / (2 * R) * (z.reshape(R, V).max(dim=-1).values ** 2).sum()
    if not o.no_grad:
        (ce + l2wrap).backward()

    os.makedirs(o.outdir, exist_ok=True)
    j = lambda f: os.path.join(o.outdir, f)
    with open(j("config.txt"), "w") as f:
        f.write(f"{L} {C} {V} {H} {Dw} {Da} {Dv} {Dg} {o.layer0_v} {o.batch} {o.ctx}\n")
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
    write_safetensors(j("model.safetensors"), plist, W32, o.bf16)
    with open(j("names.txt"), "w") as f:
        for n, shape in plist:
            f.write(n + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
