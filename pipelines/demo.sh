#!/bin/sh
# make demo: the whole pipeline on the shipped examples, on the CPU, in a few minutes:
#   examples/demo.jsonl -> jsonl-shuf (3 copies) -> rwkv-tokenize -> binidx-write
#   -> rwkv-init (a small model) -> rwkv-train -> metrics-plot -> rwkv-generate,
# run by pipelines/pretrain.mk (man 7 rwkv-pretrain) in DEMO_DIR/run.
# Environment: DEMO_DIR (out/demo), DEMO_TOKENS (training tokens, 98304),
# DEMO_LAYERS (2), DEMO_EMBD (128), OMP_NUM_THREADS (CPU threads).
# `demo.sh summary` only prints the loss summary of the run in DEMO_DIR.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
PATH="$top/build/bin:$PATH"
out=${DEMO_DIR:-$top/out/demo}
tokens=${DEMO_TOKENS:-98304}
layers=${DEMO_LAYERS:-2}
embd=${DEMO_EMBD:-128}
data="$top/examples/demo.jsonl"
[ -f "$data" ] || data="$top/../shared/data/demo.jsonl"

# Mean of the numeric losses among metrics.jsonl records on stdin: a skipped
# non-finite step is logged as "loss":null and must not count as a zero.
mean_loss() {
    sed -n 's/.*"loss":\([0-9.eE+-][0-9.eE+-]*\)[,}].*/\1/p' |
        awk '{ s += $1; n++ } END { if (n) printf "%.3f", s / n; else printf "n/a" }'
}
loss_summary() {
    m="$out/run/metrics.jsonl"
    first=$(head -n 10 "$m" | mean_loss)
    last=$(tail -n 10 "$m" | mean_loss)
    skipped=$(grep -c '"loss":null' "$m" || true)
    note=""
    [ "$skipped" -gt 0 ] && note=" ($skipped skipped non-finite steps not counted)"
    echo "mean loss: first 10 steps $first, last 10 steps $last$note" >&2
}
if [ "${1:-}" = summary ]; then loss_summary; exit 0; fi

# The run itself is pipelines/pretrain.mk, so a second `make demo` only prints the summary,
# and an interrupted one continues where it stopped.  The caller's make variables (make demo
# CC=...) must not leak into the pipeline's.
unset MAKEFLAGS MFLAGS MAKELEVEL
make -f "$top/pipelines/pretrain.mk" DATA="$data" OUT="$out/run" COPIES=3 SEED=42 \
    N_LAYER="$layers" N_EMBD="$embd" CTX_LEN=128 M_BSZ=4 LR_INIT=2e-3 LR_FINAL=2e-4 \
    WARMUP_STEPS=10 MY_EXIT_TOKENS="$tokens" TRAIN_ARGS='--save_steps 50' SAMPLE_TOKENS=60
tail -n 1 "$out/run/metrics.jsonl" >&2
loss_summary
echo "demo done: $out/run (rwkv-final.safetensors, train_log.txt, metrics.jsonl, curves.svg, sample.txt)" >&2
