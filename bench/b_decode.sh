#!/bin/sh
# Decode (one token at a time, logits every step) tokens/s of lib/model.c on
# L12-D768 (V 65536), fp32 and bf16 weights, at 1 and 2 threads, with the
# weight bytes read per second as a share of the copy (and read) bandwidth
# measured in the same run (bench/decode_bench.c).  Targets (issue 13): >= 48
# tokens/s on one thread; weight bytes/s >= 70% of copy bandwidth; >= 5x the
# rwkv pip package, timed here side by side when it is unpacked in build/pip
# (make deps) or RWKV_PIP_DIR, on the same shape (rwkv-init + pth-convert).
# rwkv7.c (the plain-C RWKV-7 inference program, github.com/KevlarKanou/rwkv7.c)
# side by side when RWKV7C_PEER_RWKV7C names its binary (built outside this tree,
# e.g. clang -O3 -mavx -mfma -DAVX src/rwkv7.c -lm): the same shape written in
# its fp32 model.bin format, random weights with a head that makes token 'a'
# the argmax, greedy with no penalties, one thread; its tokens/s are timed from
# its output stream (one byte per token), its own decode loop (a qsort of the
# logits per token included) as it runs it.
# Prefill: model_prefill (rwkv-generate's prompt path: parallel mode in chunks)
# over a prompt of PREFILL_TOKENS tokens (default 512) from a fresh state, fp32
# and bf16, at 1 and 2 threads, beside the pip package's forward of the whole
# prompt at once (its forward_seq, cpu fp32) in the same run, with the ratios.
# Best and median of DECODE_REPEATS runs (default 5): the machine may be shared.
# Usage: bench/b_decode.sh   (DECODE_BENCH_QUICK=1: L2-D256 V8192, 64-token prefill, no pip, no rwkv7.c)
top=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
db="$top/build/bench/decode_bench"
[ -x "$db" ] || { echo "build first: make bench"; exit 1; }
reps=${DECODE_REPEATS:-5}
npre=${PREFILL_TOKENS:-512}
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${DECODE_BENCH_QUICK:-}" ]; then
    "$db" 2 256 8192 16 1 "$reps" 64
    exit
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/b_decode.XXXXXX") && trap 'rm -rf "$tmp"' EXIT INT TERM || exit 1
# kept for the ratios against pip; the exit status through the pipe by a file (sh has no pipefail)
{ "$db" 12 768 65536 64 1,2 "$reps" "$npre"; echo $? >"$tmp/rc"; } | tee "$tmp/ours"
[ "$(cat "$tmp/rc")" = 0 ] || exit 1
peer=${RWKV7C_PEER_RWKV7C:-}
py=${PYTHON:-/usr/bin/python3}
if [ -n "$peer" ] && [ -x "$peer" ]; then
    ptmp=$(mktemp -d "${TMPDIR:-/tmp}/b_decode_peer.XXXXXX") || exit 1
    "$py" - "$peer" "$ptmp/model.bin" "$reps" <<'PY'
import os, select, statistics, struct, subprocess, sys, time
import numpy as np
peer, path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
L, C, V, HS = 12, 768, 65536, 64
Dw, Da, Dg, Dv = 64, 64, 128, 32          # rwkv-init's LoRA ranks for C = 768
rng = np.random.default_rng(1)
def rnd(*shape): return (rng.random(shape, dtype=np.float32) - 0.5) * 0.02
ones, zeros = np.ones(C, np.float32), np.zeros(C, np.float32)
with open(path, "wb") as f:   # rwkv7.c's format: packed header, then fp32 tensors in its order
    f.write(struct.pack("<Qiiiiiiiii", 0x00632E37766B7772, 0, HS, C, L, V, Dw, Da, Dg, Dv))
    w = lambda a: f.write(np.ascontiguousarray(a, np.float32).tobytes())
    w(rnd(V, C)); w(ones); w(zeros)
    for i in range(L):
        for a in (ones, zeros, ones, zeros): w(a)
        for _ in range(8): w(rnd(C))                        # x_r x_w x_k x_v x_a x_g w0 r_k
        w(rnd(C, Dw)); w(rnd(Dw, C)); w(rnd(C, Da)); w(rnd(Da, C)); w(rnd(C)); w(rnd(C, Dg)); w(rnd(Dg, C))
        if i: w(rnd(Dv, C)); w(rnd(C, Dv)); w(rnd(C))
        w(rnd(C)); w(rnd(C))                                # k_k k_a
        for _ in range(4): w(rnd(C, C))                     # receptance key value output
        w(ones); w(zeros); w(rnd(C)); w(rnd(4 * C, C)); w(rnd(C, 4 * C))
    head = rnd(V, C); head[98] = 1.0                        # ln_out gives its bias: 'a' wins
    w(zeros); w(ones); w(head)
p = subprocess.Popen([peer, path, "-i", "a", "--temperature", "0", "--presence_penalty", "0",
                      "--frequency_penalty", "0", "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
out, seen, marks, window = b"", 0, [], 16
start = None
deadline = time.time() + 300
while len(marks) < reps + 2 and time.time() < deadline and p.poll() is None:
    if not select.select([p.stdout], [], [], 1)[0]: continue
    chunk = os.read(p.stdout.fileno(), 65536)
    if not chunk: break
    now = time.perf_counter()
    if start is None:
        out += chunk
        marker = b"Tokenizer loaded!\n\n"
        i = out.find(marker)
        if i < 0: continue
        start, chunk = now, out[i + len(marker):]
    seen += chunk.count(b"a")
    while seen >= (len(marks) + 1) * window: marks.append(now)   # first window: the prefill and warm-up
p.kill(); p.wait()
rates = [window / (b - a) for a, b in zip(marks[1:], marks[2:])]
if not rates: sys.exit("rwkv7.c: no decode timing (did it run? %s)" % peer)
print("rwkv7.c %s (fp32, 1 thread): %.1f tokens/s best, %.1f median (%d windows of %d tokens)"
      % (os.path.basename(peer), max(rates), statistics.median(rates), len(rates), window))
PY
    rm -rf "$ptmp"
elif [ -n "$peer" ]; then
    echo "RWKV7C_PEER_RWKV7C=$peer is not an executable: no rwkv7.c figure"
fi
pip=${RWKV_PIP_DIR:-$top/build/pip}
if [ -d "$pip/rwkv" ] && "$py" -c 'import torch' 2>/dev/null; then
    "$top/build/bin/rwkv-init" -q -L 12 -C 768 -s 1 -o "$tmp/m.st" && "$top/build/bin/pth-convert" "$tmp/m.st" "$tmp/m.pth" >/dev/null || exit 1
    for nt in 1 2; do
        PYTHONPATH="$pip" RWKV_V7_ON=1 "$py" - "$tmp/m" "$nt" "$reps" "$npre" <<'PY' | grep '^rwkv pip' | tee "$tmp/pip"
import inspect, os, statistics, sys, time
import torch
if "mmap" not in inspect.signature(torch.load).parameters:   # torch 1.13 (as tests/ref/rwkv_pip_logits.py)
    _load = torch.load
    torch.load = lambda *a, mmap=None, **k: _load(*a, **k)
torch.set_num_threads(int(sys.argv[2]))
from rwkv.model import RWKV
m = RWKV(model=sys.argv[1], strategy="cpu fp32")
out, st = m.forward([1], None)
rates = []
for r in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    for i in range(16):
        out, st = m.forward([(i * 7919 + 13) % 65536], st)
    rates.append(16 / (time.perf_counter() - t0))
print("rwkv pip %s (torch %s, cpu fp32), %s thread(s): %.1f tokens/s best, %.1f median"
      % (__import__("rwkv").__version__ if hasattr(__import__("rwkv"), "__version__") else "0.8.32",
         torch.__version__, sys.argv[2], max(rates), statistics.median(rates)))
n, t = int(sys.argv[4]), 1
prompt = []
for i in range(n):   # decode_bench's prompt
    prompt.append(t)
    t = (t * 7919 + 13) % 65536
rates = []
for r in range(-1, int(sys.argv[3])):   # r = -1: warm-up, as decode_bench
    t0 = time.perf_counter()
    out, st = m.forward(prompt, None)   # the whole prompt at once: forward_seq, last position's logits
    if r >= 0: rates.append(n / (time.perf_counter() - t0))
print("rwkv pip prefill %d tokens, %s thread(s): %.1f tokens/s best, %.1f median"
      % (n, sys.argv[2], max(rates), statistics.median(rates)))
PY
        # ours / pip, best against best, from this run's lines
        awk -v nt="$nt" '
            FNR == NR && /^[0-9]+ thread\(s\):/ { cur = $1 + 0; next }
            FNR == NR && cur == nt && /^  (fp32|bf16):/ { dec[substr($1, 1, 4)] = $2; next }
            FNR == NR && cur == nt && /^  prefill/ { pre[substr($4, 1, 4)] = $5; n = $2; next }
            FNR == NR { next }
            /^rwkv pip/ { for (i = 1; i < NF; i++) if ($(i + 1) == "tokens/s") { if ($3 == "prefill") pp = $i; else pd = $i } }
            END {
                if (pd > 0) printf "%d thread(s), decode: ours / pip %.2fx fp32, %.2fx bf16\n", nt, dec["fp32"] / pd, dec["bf16"] / pd
                if (pp > 0) printf "%d thread(s), prefill %d tokens: ours / pip %.2fx fp32, %.2fx bf16\n", nt, n, pre["fp32"] / pp, pre["bf16"] / pp
            }' "$tmp/ours" "$tmp/pip"
    done
else
    echo "rwkv pip package not found (make deps, or RWKV_PIP_DIR): no side-by-side figure"
fi
