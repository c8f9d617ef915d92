#!/bin/sh
# The whole training loop on a task with a known answer: a 2-layer, 64-wide
# model learns to copy digit strings (d1..dk = d1..dk, k = 3..6) in one pass
# over 20000 examples (430 steps, about 10 CPU seconds).  Stated accuracy: at
# least 95% of the tokens after '=' predicted correctly on held-out examples
# (chance is about 10%); the loss falls by more than 1 nat.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy train 20000 11 || exit 1
$U copy test 500 12 || exit 1
mkdir p
rwkv-init -L 2 -C 64 --vocab-size 16 -s 1 -q -o p/rwkv-init.safetensors || exit 1
EVAL=$TOP/build/helpers/train_copy_eval
before=$($EVAL p/rwkv-init.safetensors test 64 | awk '{print $2}')
check "train one pass" rwkv-train --proj_dir p --data_file train --ctx_len 64 --micro_bsz 8 \
    --lr_init 3e-3 --lr_final 3e-4 --warmup_steps 10 --grad_cp 1
after=$($EVAL p/rwkv-final.safetensors test 64 | awk '{print $2}')
echo "copy accuracy: before $before, after $after"
check "accuracy before training is near chance" awk -v a="$before" 'BEGIN { exit !(a < 0.3) }'
check "accuracy after training >= 0.95" awk -v a="$after" 'BEGIN { exit !(a >= 0.95) }'
first=$(head -n 20 p/metrics.jsonl | sed 's/.*"loss":\([0-9.]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
last=$(tail -n 20 p/metrics.jsonl | sed 's/.*"loss":\([0-9.]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
echo "mean loss of the first 20 steps $first, last 20 steps $last"
check "loss falls by more than 1 nat" awk -v a="$first" -v b="$last" 'BEGIN { exit !(a - b > 1) }'
eq "one metrics record per step" "$(wc -l <p/metrics.jsonl)" 430
check "metrics fields" grep -q '^{"step":429,"loss":[0-9.]*,"lr":[0-9.e-]*,"grad_norm":[0-9.e-]*,"tokens":220160,"tokens_per_s":[0-9.]*,"time":[0-9.]*}$' p/metrics.jsonl
finish
