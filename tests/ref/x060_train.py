#!/usr/bin/env python3
"""x060_train.py: a float64 PyTorch trainer of x060, written from the specs
(rwkv6-reference.md 1.4 optimizer groups; rwkv7-reference.md 1.4-1.5 sampling,
5.4 clipping and FusedAdam, 5.5 LR schedule) and RWKV-LM RWKV-v5
(src/dataset.py, src/trainer.py, src/model.py configure_optimizers), used to
check rwkv-train on x060 step by step.

  x060_train.py INIT DATA --ctx_len T --micro_bsz B --steps N [--lr_init X]
        [--lr_final X] [--warmup_steps N] [--beta1 X] [--beta2 X] [--adam_eps X]
        [--weight_decay X] [--grad_clip X] [--metrics FILE] [--tol X] [--plan]
        [--states DIR] [--update_tol X] [--x070] [--bf16]

INIT: the starting checkpoint (safetensors or .pth); DATA: a binidx prefix.
magic_prime and my_exit_tokens are the reference's defaults for DATA (the
largest prime p = 2 mod 3 with p <= tokens // T - 1; all tokens).  Each step:
the reference's sample windows, forward, mean cross entropy, backward with
L2Wrap, the global gradient norm and clip ((norm + 1e-6) / clip), then
FusedAdam (bias correction, eps after the sqrt, AdamW when weight_decay > 0)
in float64 over the x060 groups: names with _w1/_w2 -> 1x; time_maa -> 1x;
time_decay -> 2x; time_faaaa -> 1x; other >= 2-D ".weight" -> weight decay
(when > 0); the rest 1x.  Prints "step loss grad_norm lr" per step.
--states DIR (rwkv-train run with --save_steps 1 and enough --keep): anchored
mode, each step starts from rwkv-train's own state of that step (fp32 masters
and moments), so fp32/float64 differences cannot accumulate; the loss must
agree as above and every tensor's update within --update_tol (default 1e-3)
relative, ||w_C - w_ref|| / ||w_ref - w_before|| (less one fp32 ulp per
element, the finest step an fp32 master can take), e.g. a wrong LR group, weight
decay or clip shows at once.
--bf16: the forward runs on bf16 copies of the masters (rwkv-train --precision
bf16), the gradient with respect to them updates the float64 masters; best
anchored, where both sides round the same fp32 masters.
--plan prints "magic_prime P my_exit_tokens X" and exits.  --x070 swaps in the
x070 forward (tests/ref/x070.py): the same trainer, checked against x070's rwkv-train.
With --metrics (rwkv-train's metrics.jsonl) each step's loss must agree within
--tol relative (default 1e-5) and the LR within 1e-7; exit 1 otherwise.  The
grad norm is reported, not bounded: a norm spike amplifies the fp32/float64
difference of the two runs (x070, lr 3e-3: 1e-6 before, 3e-3 during a spike).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import x060  # noqa: E402

MINIEPOCH = 40320
IDX_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 8: np.uint16}


def read_tokens(prefix):
    """All tokens of PREFIX.bin, by the dtype the MMIDIDX header names."""
    with open(prefix + ".idx", "rb") as f:
        head = f.read(18)
    assert head[:9] == b"MMIDIDX\x00\x00", "not an MMIDIDX index"
    return np.fromfile(prefix + ".bin", dtype=IDX_DTYPES[head[17]]).astype(np.int64)


def is_prime(n):
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def magic_prime(data_size, ctx_len):
    p = data_size // ctx_len - 1
    while p > 1 and not (p % 3 == 2 and is_prime(p)):
        p -= 1
    return p


def sample_pos(step, m, micro_bsz, ctx_len, prime):
    """src/dataset.py MyDataset.__getitem__ for rank 0 of 1, dataset index step*B+m of its miniepoch."""
    epoch_steps = MINIEPOCH // micro_bsz
    e, s = divmod(step, epoch_steps)
    ii = 1 + e * MINIEPOCH + (s * micro_bsz + m)
    factor = int(prime * ((math.sqrt(5) - 1) / 2))
    return ((factor * ii * ii * ii) % prime) * ctx_len


def lr_at(step, warm_step, o, tokens_per_step, exit_tokens):
    """train_callback.on_train_batch_start (rwkv7-reference 5.5)."""
    w = o.warmup_steps
    progress = (step * tokens_per_step - w * tokens_per_step) / (exit_tokens - w * tokens_per_step)
    progress = min(1.0, max(0.0, progress))
    f = o.lr_final / o.lr_init
    lr = o.lr_init * ((0.5 + f / 2) + (0.5 - f / 2) * math.cos(math.pi * progress))
    if warm_step < w:
        lr = lr * (0.01 + 0.99 * warm_step / w)
    return lr


def group_of(name, shape, wd):
    """(lr scale, weight decay) by RWKV.configure_optimizers, layerwise_lr 1, my_pile_stage != 2."""
    if "_w1" in name or "_w2" in name:
        return 1.0, 0.0
    if "time_mix" in name or "time_maa" in name:
        return 1.0, 0.0
    if "time_decay" in name or "time_daaaa" in name or "att.w0" in name:
        return 2.0, 0.0
    if "time_faaaa" in name:
        return 1.0, 0.0
    if "time_first" in name:
        return 3.0, 0.0
    if sum(d > 1 for d in shape) >= 2 and wd > 0 and ".weight" in name:
        return 1.0, wd
    return 1.0, 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("init")
    ap.add_argument("data")
    ap.add_argument("--ctx_len", type=int, required=True)
    ap.add_argument("--micro_bsz", type=int, required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr_init", type=float, default=6e-4)
    ap.add_argument("--lr_final", type=float, default=1e-5)
    ap.add_argument("--warmup_steps", type=int, default=-1)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--adam_eps", type=float, default=1e-18)
    ap.add_argument("--weight_decay", type=float, default=0.0)
    ap.add_argument("--grad_clip", type=float, default=1.0)
    ap.add_argument("--metrics", default=None)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--plan", action="store_true")
    ap.add_argument("--states", default=None, help="rwkv-train's project dir saved every step: anchored mode")
    ap.add_argument("--update_tol", type=float, default=1e-3)
    ap.add_argument("--bf16", action="store_true", help="forward on bf16 copies of the masters (--precision bf16)")
    ap.add_argument("--x070", action="store_true", help="the x070 forward of tests/ref/x070.py instead: checks "
                    "this trainer's sampling, schedule, clipping and Adam against the x070 rwkv-train")
    o = ap.parse_args()
    tokens = read_tokens(o.data)
    T, B = o.ctx_len, o.micro_bsz
    prime, exit_tokens = magic_prime(len(tokens), T), len(tokens)
    if o.plan:
        print(f"magic_prime {prime} my_exit_tokens {exit_tokens}")
        return 0
    sd = x060.load_checkpoint(o.init)
    names = list(sd)
    L = 1 + max(int(k.split(".")[1]) for k in names if k.startswith("blocks."))
    W = {k: sd[k].to(torch.float64).requires_grad_(True) for k in names}
    forward = x060.forward
    if o.x070:
        import x070
        C = W["emb.weight"].shape[1]
        forward = lambda W, x, L: x070.forward(W, x, L, C, C // x070.N)
    groups = {k: group_of(k, tuple(W[k].shape), o.weight_decay) for k in names}
    m1 = {k: torch.zeros_like(W[k]) for k in names}
    m2 = {k: torch.zeros_like(W[k]) for k in names}
    c_rows = []
    if o.metrics:
        with open(o.metrics) as f:
            c_rows = [json.loads(line) for line in f]
    tps = T * B
    worst = 0.0
    fails = 0
    print(f"magic_prime {prime} my_exit_tokens {exit_tokens}; "
          f"2x: {sorted(k for k in names if groups[k][0] == 2.0)[:2]}...; "
          f"decay: {sum(1 for k in names if groups[k][1] > 0)} tensors")
    offsets, o_ = {}, 0
    for k in names:
        offsets[k] = (o_, W[k].numel())
        o_ += W[k].numel()
    worst_upd = (0.0, "")

    def load_state(step):
        """masters and moments of rwkv-train's state after `step` steps (flat, Layout = state-dict order)."""
        t = dict(x060.st_read(os.path.join(o.states, "train-state-%08d.safetensors" % step))[0])
        return {key: {k: t[key][a:a + n].reshape(W[k].shape).to(torch.float64) for k, (a, n) in offsets.items()}
                for key in ("master", "adam_m", "adam_v")}

    for step in range(o.steps):
        if o.states:    # anchored: start each step from rwkv-train's own state, compare the step it took
            if step > 0:
                st = load_state(step)
                with torch.no_grad():
                    for k in names:
                        W[k].copy_(st["master"][k])
                        m1[k].copy_(st["adam_m"][k])
                        m2[k].copy_(st["adam_v"][k])
            before = {k: W[k].detach().clone() for k in names}
        lr = lr_at(step, step, o, tps, exit_tokens)
        xs, ys = [], []
        for m in range(B):
            pos = sample_pos(step, m, B, T, prime)
            xs.append(tokens[pos:pos + T])
            ys.append(tokens[pos + 1:pos + T + 1])
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys))
        for k in names:
            W[k].grad = None
        Wf = W
        if o.bf16:      # the weights the forward sees; their gradient updates the masters
            Wf = {k: W[k].detach().float().bfloat16().double().requires_grad_(True) for k in names}
        z = forward(Wf, x, L)
        ce, l2 = x060.loss_and_l2wrap(z, y)
        (ce + l2).backward()
        with torch.no_grad():
            for k in names:
                if Wf[k].grad is None:     # a parameter the loss does not reach (x070's layer-0 v0/v1/v2)
                    Wf[k].grad = torch.zeros_like(W[k])
                W[k].grad = Wf[k].grad
            norm = math.sqrt(sum(float((W[k].grad ** 2).sum()) for k in names))
            c = (norm + 1e-6) / o.grad_clip if o.grad_clip > 0 else 0
            scale = 1 / c if c > 1 else 1.0
            t = step + 1
            bc1, bc2 = 1 - o.beta1 ** t, 1 - o.beta2 ** t
            for k in names:
                g = W[k].grad * scale
                lr_s, wd = groups[k]
                m1[k].mul_(o.beta1).add_((1 - o.beta1) * g)
                m2[k].mul_(o.beta2).add_((1 - o.beta2) * g * g)
                upd = (m1[k] / bc1) / (torch.sqrt(m2[k] / bc2) + o.adam_eps) + wd * W[k]
                W[k] -= lr * lr_s * upd
        loss = ce.item()
        line = f"{step} {loss:.9f} {norm:.9g} {lr:.9g}"
        if o.states:
            # each tensor's update against rwkv-train's: ||w_C - w_ref|| / ||w_ref - w_before||, less
            # one fp32 ulp per element (the fp32 master cannot hold a finer update: at warmup a
            # weight-decay-only update is ~20 ulps)
            after = load_state(step + 1)["master"]
            e_step, k_step = 0.0, ""
            for k in names:
                w_ref = W[k].detach()
                du = float((w_ref - before[k]).norm())
                ulp = (torch.nextafter(w_ref.float().abs(), torch.tensor(math.inf)) - w_ref.float().abs()).double()
                excess = ((after[k] - w_ref).abs() - ulp).clamp(min=0)
                if du == 0:
                    e = float((after[k] - before[k]).norm())     # no update: rwkv-train must not move it either
                else:
                    e = float(excess.norm()) / du
                if not e <= e_step:
                    e_step, k_step = e, k
            ok_u = e_step <= o.update_tol
            fails += not ok_u
            if not e_step <= worst_upd[0]:
                worst_upd = (e_step, k_step)
            line += f"   update rel {e_step:.1e} ({k_step}){'' if ok_u else '  <-- FAIL'}"
        if c_rows:
            if step >= len(c_rows):
                print(line, "  <-- no rwkv-train record")
                fails += 1
                continue
            r = c_rows[step]
            el = abs(r["loss"] - loss) / abs(loss)
            eg = abs(r["grad_norm"] - norm) / norm
            elr = abs(r["lr"] - lr) / lr
            worst = max(worst, el)
            ok = r["step"] == step and el <= o.tol and elr <= 1e-7
            fails += not ok
            line += f"   rwkv-train {r['loss']:.6f} {r['grad_norm']:.6g} {r['lr']:.8g}: loss rel {el:.1e}, " \
                    f"grad_norm rel {eg:.1e}, lr rel {elr:.1e}{'' if ok else '  <-- FAIL'}"
        print(line, flush=True)
    if c_rows:
        print(f"worst loss rel err {worst:.2e} over {o.steps} steps (bound {o.tol:g}); {fails} step(s) failed")
        if o.states:
            print(f"worst update rel err {worst_upd[0]:.2e} ({worst_upd[1]}; bound {o.update_tol:g})")
        return 1 if fails else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
