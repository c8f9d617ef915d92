#!/bin/sh
# Forward+backward tokens/s of the CPU model (lib/model.c), with the GFLOP/s
# achieved as a share of this machine's own sgemm GFLOP/s measured in the same
# run (the peer).  Target: >= 40% for L4-D256, V 65536, ctx 256.
# Usage: bench/b_model.sh   (MODEL_BENCH_QUICK=1 for a short run)
top=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/b_model.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
[ -f "$top/build/librwkv7c.a" ] || { echo "build first: make"; exit 1; }
${CC:-cc} -std=gnu11 -O2 -march=native -fopenmp -I"$top/lib" "$top/bench/model_bench.c" "$top/build/librwkv7c.a" \
    -lzstd -lxxhash -llapacke -lopenblas -lm -lpthread -o "$tmp/model_bench" || exit 1
if [ -n "${MODEL_BENCH_QUICK:-}" ]; then
    "$tmp/model_bench" 4 256 65536 256 1 1
    exit
fi
"$tmp/model_bench" 4 256 65536 256 1,2,4 2
"$tmp/model_bench" 4 256 65536 256 4 2 1          # grad_cp=1: recompute blocks in the backward
"$tmp/model_bench" 4 256 8192 256 1,4 2           # smaller vocabulary: the blocks dominate
