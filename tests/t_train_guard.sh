#!/bin/sh
# rwkv-train refuses runs that could not do what they claim: a fresh start at
# or past the exit step (--epoch_begin), a second trainer on a locked project
# directory; a resumed run that is already complete says so.  The reference's
# own --dim_ffn is accepted (x070 ignores it), and a --dry-run plan for a
# configuration this build cannot run (--accelerator gpu) says so; gpu with 2 ranks is refused
# before any rank starts (t_train_dp_cuda_emu.sh runs them in the emulated CUDA build).
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy data 3000 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
mkdir p q
cp init.safetensors p/rwkv-init.safetensors
cp init.safetensors q/rwkv-init.safetensors
T="rwkv-train --proj_dir p --data_file data --ctx_len 32 --micro_bsz 4 --save_minutes 0"

# 1. --epoch_begin past the end: 3 miniepochs = step 30240, the run ends at step 258.
expect_fail "--epoch_begin past the exit step" "nothing to train: starting from p/rwkv-init.safetensors at miniepoch 3 means step 30240, but the run ends at step 258" $T --epoch_begin 3
check "... no rwkv-final written" test ! -f p/rwkv-final.safetensors
check "... no metrics written" test ! -f p/metrics.jsonl
expect_fail "--dry-run --epoch_begin past the exit step" "nothing to train" $T --epoch_begin 3 --dry-run
check "--epoch_begin 0 still plans" sh -c "$T --epoch_begin 0 --dry-run >/dev/null"

# A resumed run that is already complete says so instead of "finished".
check "a short complete run" $T --my_exit_tokens 1280 2>/dev/null
check "rerun of the complete run exits 0" $T --my_exit_tokens 1280 2>err.txt
check "... says already complete" grep -q 'already complete: p/train-state-00000010.safetensors is at step 10' err.txt
check "... does not claim to have trained" test "$(grep -c 'finished at step' err.txt)" -eq 0
$T --my_exit_tokens 1280 --dry-run >plan.txt 2>/dev/null
check "... the plan says so" grep -q 'status       already complete' plan.txt

# 3. One trainer per project directory.
flock -o q/.rwkv-train.lock sleep 30 &
holder=$!
i=0
while [ $i -lt 50 ] && flock -n q/.rwkv-train.lock true; do sleep 0.1; i=$((i + 1)); done
expect_fail "a locked --proj_dir is refused" "--proj_dir q is in use by another rwkv-train" rwkv-train --proj_dir q --data_file data --ctx_len 32 --micro_bsz 4 --exit_after_steps 2
check "... nothing written there" test ! -f q/metrics.jsonl
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
check "free again after the holder exits" rwkv-train --proj_dir q --data_file data --ctx_len 32 --micro_bsz 4 --exit_after_steps 2 --save_minutes 0 2>/dev/null
# Two real trainers: the second one started while the first runs is refused, the first finishes.
rm -rf q && mkdir q && cp init.safetensors q/rwkv-init.safetensors
rwkv-train --proj_dir q --data_file data --ctx_len 32 --micro_bsz 4 --my_exit_tokens 100000 --allow_repeat --save_minutes 0 2>q1.err &
first=$!
i=0
while [ $i -lt 100 ] && [ ! -s q/metrics.jsonl ]; do sleep 0.1; i=$((i + 1)); done
rwkv-train --proj_dir q --data_file data --ctx_len 32 --micro_bsz 4 --my_exit_tokens 100000 --allow_repeat --save_minutes 0 >/dev/null 2>q2.err
eq "second trainer on the same --proj_dir exits 1" $? 1
check "... naming the first one's pid" grep -q "in use by another rwkv-train, pid $first " q2.err
kill -TERM "$first" 2>/dev/null
wait "$first"
eq "the first one stops normally on SIGTERM" $? 75

mkdir r
cp init.safetensors r/rwkv-init.safetensors
T="rwkv-train --proj_dir r --data_file data --ctx_len 32 --micro_bsz 4 --save_minutes 0"

# 4. The reference's default --dim_ffn (int(3.5*64)//32*32 = 224) is accepted with a note.
check "--dim_ffn 224 accepted" sh -c "$T --dim_ffn 224 --dry-run >/dev/null 2>err.txt"
check "... with a note" grep -q 'note: --dim_ffn 224 ignored: x070.s FFN is 4 x n_embd = 256' err.txt
check "--dim_ffn 256 accepted silently" sh -c "$T --dim_ffn 256 --dry-run >/dev/null 2>err.txt"
check "... no note" test ! -s err.txt

# 5. A plan this build cannot run says so (exit 0: planning for another machine is useful).
$T --accelerator gpu --dry-run >plan.txt 2>err.txt
eq "--dry-run --accelerator gpu exits 0" $? 0
check "... the plan says it cannot run" grep -q 'status       CANNOT RUN with this build: --accelerator gpu: this build has no CUDA backend' plan.txt
check "... and a warning on stderr" grep -q 'warning: the plan is for a configuration this build cannot run' err.txt
$T --devices 2 --dry-run >plan.txt 2>/dev/null
check "--dry-run --devices 2 (data parallel on the CPU) has no status line" test "$(grep -c '^status' plan.txt)" -eq 0
expect_fail "--accelerator gpu --devices 2 is refused in this build" "this build has no CUDA backend" $T --accelerator gpu --devices 2
$T --dry-run >plan.txt 2>err.txt
check "a runnable plan has no status line" test "$(grep -c '^status' plan.txt)" -eq 0
finish
