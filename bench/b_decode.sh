#!/bin/sh
# Decode (one token at a time, logits every step) tokens/s of lib/model.c on
# L12-D768 (V 65536), fp32 and bf16 weights, at 1 and 2 threads, with the
# weight bytes read per second as a share of the copy (and read) bandwidth
# measured in the same run (bench/decode_bench.c).  Targets (issue 13): >= 48
# tokens/s on one thread; weight bytes/s >= 70% of copy bandwidth; >= 5x the
# rwkv pip package, timed here side by side when it is unpacked in build/pip
# (make deps) or RWKV_PIP_DIR, on the same shape (rwkv-init + pth-convert).
# Best and median of DECODE_REPEATS runs (default 5): the machine may be shared.
# Usage: bench/b_decode.sh   (DECODE_BENCH_QUICK=1: L2-D256 V8192, no pip)
top=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
db="$top/build/bench/decode_bench"
[ -x "$db" ] || { echo "build first: make bench"; exit 1; }
reps=${DECODE_REPEATS:-5}
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${DECODE_BENCH_QUICK:-}" ]; then
    "$db" 2 256 8192 16 1 "$reps"
    exit
fi
"$db" 12 768 65536 64 1,2 "$reps" || exit 1
pip=${RWKV_PIP_DIR:-$top/build/pip}
py=${PYTHON:-/usr/bin/python3}
if [ -d "$pip/rwkv" ] && "$py" -c 'import torch' 2>/dev/null; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/b_decode.XXXXXX") && trap 'rm -rf "$tmp"' EXIT INT TERM
    "$top/build/bin/rwkv-init" -q -L 12 -C 768 -s 1 -o "$tmp/m.st" && "$top/build/bin/pth-convert" "$tmp/m.st" "$tmp/m.pth" >/dev/null || exit 1
    for nt in 1 2; do
        PYTHONPATH="$pip" RWKV_V7_ON=1 "$py" - "$tmp/m" "$nt" "$reps" <<'PY' | grep '^rwkv pip'
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
PY
    done
else
    echo "rwkv pip package not found (make deps, or RWKV_PIP_DIR): no side-by-side figure"
fi
