#!/bin/sh
# make demo: the whole pipeline on the shipped examples, on the CPU, in a few minutes:
#   examples/demo.jsonl -> jsonl-shuf (3 copies) -> rwkv-tokenize -> binidx-write
#   -> rwkv-init (a small model) -> rwkv-train -> metrics-plot -> rwkv-generate.
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
step() { printf '\n== %s\n' "$*" >&2; }

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

mkdir -p "$out"
step "1/5 shuffle 3 copies of $(basename "$data"), tokenize, write binidx ($out/demo.bin/.idx)"
jsonl-shuf -n 3 -s 42 "$data" | rwkv-tokenize | binidx-write -f "$out/demo"
magic-prime -c 128 "$out/demo" | tail -n 1 >&2

step "2/5 initialise an L$layers-D$embd model"
rm -rf "$out/run"
mkdir -p "$out/run"
rwkv-init -L "$layers" -C "$embd" -s 1 -q -o "$out/run/rwkv-init.safetensors"

step "3/5 train on the CPU ($tokens tokens; progress below when stderr is a terminal)"
set -- --proj_dir "$out/run" --data_file "$out/demo" --ctx_len 128 --micro_bsz 4 \
    --lr_init 2e-3 --lr_final 2e-4 --warmup_steps 10 --my_exit_tokens "$tokens" --save_steps 50
rwkv-train "$@" --dry-run >&2
rwkv-train "$@"
tail -n 1 "$out/run/metrics.jsonl" >&2

step "4/5 plot the loss and LR curves ($out/run/curves.svg)"
metrics-plot -f -t "make demo: L$layers-D$embd" -o "$out/run/curves.svg" "$out/run/metrics.jsonl"
loss_summary

step "5/5 generate a sample"
if command -v rwkv-generate >/dev/null 2>&1; then
    rwkv-generate -m "$out/run/rwkv-final.safetensors" -p "The" -n 60 --temperature 0.8 -s 1
    echo
else
    echo "(rwkv-generate is not built yet: skipping the sample)" >&2
fi
echo "demo done: $out/run (rwkv-final.safetensors, train_log.txt, metrics.jsonl, curves.svg)" >&2
