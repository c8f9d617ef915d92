#!/bin/sh
# Miniepochs: with ctx_len 2 and micro_bsz 96 a miniepoch (40320 samples) is
# 420 steps, so a short run crosses two of them: train_log.txt gets the
# reference's per-miniepoch lines (src/trainer.py
# train_callback.on_train_epoch_end), rwkv-0/rwkv-1 are written
# (--epoch_save 1), then rwkv-final.  Starting from an rwkv-N file without a
# training state follows the reference: epoch_begin = N+1, warmup 10.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy data 3000 7 || exit 1
mkdir p r
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o p/rwkv-init.safetensors || exit 1
common="--data_file data --ctx_len 2 --micro_bsz 96 --my_exit_tokens 201600 --allow_repeat --epoch_save 1 --save_minutes 0"
check "2.5 miniepochs" rwkv-train --proj_dir p $common 2>err.txt
check "finished at step 1050" grep -q 'finished at step 1050 (201600 tokens)' err.txt
for f in rwkv-0 rwkv-1 rwkv-final; do check "$f written" test -f p/$f.safetensors; done
check "no rwkv-2 (miniepoch 2 incomplete)" test ! -f p/rwkv-2.safetensors
check "rwkv-1 loads as a model" rwkv-train --load_model p/rwkv-1.safetensors --proj_dir r --data_file data --ctx_len 2 --micro_bsz 96 --dry-run
lines=$(grep -cE '^[0-9]+ [0-9]+\.[0-9]{6} [0-9]+\.[0-9]{4} [0-9]\.[0-9]{8} [0-9-]{10} [0-9:]{8}\.[0-9]{6} [0-9]+$' p/train_log.txt)
eq "two miniepoch lines in train_log.txt" "$lines" 2
# The line's average loss is the mean of that miniepoch's step losses; its lr is the last step's.
avg0=$(awk '/^0 /{print $2}' p/train_log.txt)
mean0=$(head -n 420 p/metrics.jsonl | sed 's/.*"loss":\([0-9.]*\).*/\1/' | awk '{s += $1} END {printf "%.6f", s / NR}')
check "epoch 0 average ($avg0) = mean of steps 0-419 ($mean0)" awk -v a="$avg0" -v b="$mean0" 'BEGIN { d = a - b; exit !(d < 2e-6 && d > -2e-6) }'
lr0=$(awk '/^0 /{print $4}' p/train_log.txt)
lr419=$(sed -n '420p' p/metrics.jsonl | sed 's/.*"lr":\([0-9.e-]*\).*/\1/')
check "epoch 0 lr ($lr0) = lr of step 419 ($lr419)" awk -v a="$lr0" -v b="$lr419" 'BEGIN { exit !(a - b < 1e-8 && b - a < 1e-8) }'
check "exp column" awk '/^0 /{ d = exp($2) - $3; exit !(d < 1e-3 && d > -1e-3) }' p/train_log.txt

# Reference-style start from rwkv-0 without a training state
cp p/rwkv-0.safetensors r/
rwkv-train --proj_dir r $common --exit_after_steps 12 2>err.txt
check "starts from rwkv-0 at miniepoch 1" grep -q 'starting from r/rwkv-0.safetensors (step 420, miniepoch 1)' err.txt
first_step=$(head -n 1 r/metrics.jsonl | sed 's/.*"step":\([0-9]*\).*/\1/')
eq "first step is 420" "$first_step" 420
lr_a=$(sed -n 1p r/metrics.jsonl | sed 's/.*"lr":\([0-9.e-]*\).*/\1/')
lr_b=$(sed -n 11p r/metrics.jsonl | sed 's/.*"lr":\([0-9.e-]*\).*/\1/')
check "warmup 10 after an rwkv-N start ($lr_a then $lr_b)" awk -v a="$lr_a" -v b="$lr_b" 'BEGIN { r = a / b; exit !(r > 0.009 && r < 0.011) }'
finish
