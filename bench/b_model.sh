#!/bin/sh
# Forward+backward tokens/s of the CPU model (lib/model.c), with the GFLOP/s
# achieved as a share of this machine's own sgemm GFLOP/s (OpenBLAS, all
# threads) measured in the same run: the peer.  Target: >= 40% for L4-D256,
# V 65536, ctx 256.  FLOPs/token = 6 * matmul params + 32*L*C*64 (WKV).
# Usage: bench/b_model.sh   (MODEL_BENCH_QUICK=1: one short configuration)
top=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
mb="$top/build/bench/model_bench"
[ -x "$mb" ] || { echo "build first: make bench"; exit 1; }
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (the sgemm peer is measured before each configuration)"
if [ -n "${MODEL_BENCH_QUICK:-}" ]; then
    "$mb" 4 256 65536 256 1 1
    exit
fi
"$mb" 4 256 65536 256 1,2,4 2
"$mb" 4 256 65536 256 4 2 1      # grad_cp=1: blocks recomputed in the backward
"$mb" 4 256 8192 256 1,4 2       # smaller vocabulary: the blocks dominate
