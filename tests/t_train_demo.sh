#!/bin/sh
# Loss falls on the shipped demo data: the real tokenizer and vocabulary,
# a 2-layer 64-wide model, 30 steps of 256 tokens from rwkv-init; the mean
# loss of the last 5 steps is at least 1.5 nats below that of the first 5
# (it starts near ln(65536) = 11.1).
. "$TOP/tests/lib.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
data="$TOP/examples/demo.jsonl"
[ -f "$data" ] || { echo "no examples/demo.jsonl"; exit 77; }
command -v rwkv-tokenize >/dev/null || { echo "rwkv-tokenize not built"; exit 77; }
rwkv-tokenize "$data" | binidx-write -q demo || exit 1
mkdir p
rwkv-init -L 2 -C 64 -s 1 -q -o p/rwkv-init.safetensors || exit 1
check "train 30 steps" rwkv-train --proj_dir p --data_file demo --ctx_len 64 --micro_bsz 4 \
    --lr_init 3e-3 --lr_final 1e-3 --warmup_steps 3 --exit_after_steps 30 --save_minutes 0
first=$(head -n 5 p/metrics.jsonl | sed 's/.*"loss":\([0-9.]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
last=$(tail -n 5 p/metrics.jsonl | sed 's/.*"loss":\([0-9.]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
echo "mean loss: first 5 steps $first, last 5 steps $last"
check "first losses near ln(65536)" awk -v a="$first" 'BEGIN { exit !(a > 10 && a < 12) }'
check "loss falls by >= 1.5 nats" awk -v a="$first" -v b="$last" 'BEGIN { exit !(a - b >= 1.5) }'
check "plan of the demo run" sh -c 'rwkv-train --proj_dir p --data_file demo --ctx_len 64 --micro_bsz 4 --dry-run | grep -q "magic_prime 1031 --my_exit_tokens 66833"'
finish
