#!/bin/sh
# make arith-demo: teach a small RWKV-7 to add, subtract and solve a ± x = c
# on the CPU, then measure it on held-out problems:
#   arith-gen (training documents) -> rwkv-tokenize (small vocabulary) -> binidx-write
#   -> rwkv-init -> rwkv-train -> arith-eval on arith-gen --eval
# The last line is "exact-match accuracy: A on N held-out problems".
# Environment (defaults in brackets): ARITH_DIR [out/arith], ARITH_DIGITS [2],
# ARITH_KINDS [add,sub], ARITH_DOCS training documents [1000000],
# ARITH_TOKENS training tokens [6184960: 635 CPU-seconds measured, so under 11
# minutes on an otherwise idle 2-core machine], or ARITH_MINUTES: train that many
# minutes of this machine instead (its rate measured by a 40-step probe),
# ARITH_LAYERS [2], ARITH_EMBD [128], ARITH_CTX [128], ARITH_BSZ [8],
# ARITH_LR_INIT [6e-3], ARITH_LR_FINAL [2e-4], ARITH_EVAL held-out problems [500],
# OMP_NUM_THREADS (CPU threads).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
PATH="$top/build/examples:$top/build/bin:$PATH"
out=${ARITH_DIR:-$top/out/arith}
digits=${ARITH_DIGITS:-2}
kinds=${ARITH_KINDS:-add,sub}
docs=${ARITH_DOCS:-1000000}
layers=${ARITH_LAYERS:-2}
embd=${ARITH_EMBD:-128}
ctx=${ARITH_CTX:-128}
bsz=${ARITH_BSZ:-8}
lr_init=${ARITH_LR_INIT:-6e-3}
lr_final=${ARITH_LR_FINAL:-2e-4}
n_eval=${ARITH_EVAL:-500}
step() { printf '\n== %s\n' "$*" >&2; }
t0=$(date +%s)

mkdir -p "$out"
step "1/3 $docs training documents and $n_eval held-out problems (1-$digits digits: $kinds)"
arith-gen --vocab >"$out/vocab.txt"
vocab_size=$(($(wc -l <"$out/vocab.txt") + 1))
arith-gen -n "$docs" -s 1 -d "$digits" -k "$kinds" | rwkv-tokenize --vocab "$out/vocab.txt" |
    binidx-write -q -f "$out/train"
arith-gen --eval -n "$n_eval" -s 1 -d "$digits" -k "$kinds" >"$out/eval.jsonl"
sed -n '1p;2p;3p' "$out/eval.jsonl" | sed 's/","prompt".*//; s/^{"text":"/  e.g. /' >&2

# Tokens: a fixed budget, or what this machine trains in ARITH_MINUTES, from a
# short timed run (the LR schedule needs the total in advance).
rm -rf "$out/run"
mkdir -p "$out/run"
rwkv-init -L "$layers" -C "$embd" --vocab-size "$vocab_size" -s 1 -q -o "$out/run/rwkv-init.safetensors"
set -- --proj_dir "$out/run" --data_file "$out/train" --ctx_len "$ctx" --micro_bsz "$bsz" \
    --lr_init "$lr_init" --lr_final "$lr_final" --warmup_steps 20 --save_minutes 0 --allow_repeat
if [ -z "${ARITH_MINUTES:-}" ]; then
    tokens=${ARITH_TOKENS:-6184960}
else
    minutes=$ARITH_MINUTES
    mkdir -p "$out/probe"
    cp "$out/run/rwkv-init.safetensors" "$out/probe/"
    rwkv-train "$@" --proj_dir "$out/probe" --warmup_steps 0 --my_exit_tokens $((ctx * bsz * 40)) --timing 2>"$out/probe/log.txt"
    rate=$(sed -n 's/.* tokens in .* s: \([0-9.]*\) tokens\/s.*/\1/p' "$out/probe/log.txt")
    rm -rf "$out/probe"
    tokens=$(awk -v r="$rate" -v m="$minutes" -v s=$((ctx * bsz)) 'BEGIN { printf "%d", int(r * m * 60 / s) * s }')
fi
step "2/3 train an L$layers-D$embd model (vocabulary $vocab_size) on $tokens tokens on the CPU"
t1=$(date +%s)
rwkv-train "$@" --my_exit_tokens "$tokens"
t2=$(date +%s)
tail -n 1 "$out/run/metrics.jsonl" >&2

step "3/3 exact-match accuracy on the held-out problems (greedy, answer ends at the end of the document)"
arith-eval -m "$out/run/rwkv-final.safetensors" --vocab "$out/vocab.txt" -e 5 "$out/eval.jsonl" >"$out/accuracy.txt"
t3=$(date +%s)
echo "arith-demo: $out (train.bin/idx, eval.jsonl, vocab.txt, run/rwkv-final.safetensors); training $((t2 - t1)) s, all $((t3 - t0)) s wall" >&2
cat "$out/accuracy.txt"
