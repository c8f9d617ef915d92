#!/bin/sh
# rwkv-train: usage errors, contradicting flags, mismatched data, --resume never,
# and the --dry-run plan.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy data 3000 7 || exit 1
$U random big 70000 300 5 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
mkdir p
cp init.safetensors p/rwkv-init.safetensors
T="rwkv-train --proj_dir p --data_file data --ctx_len 32 --micro_bsz 4"

rwkv-train --help >help.txt; eq "--help exits 0" $? 0
check "--help names the reference flags" grep -q -- '--my_exit_tokens' help.txt
check "--version" rwkv-train --version
rwkv-train --bogus >/dev/null 2>&1; eq "unknown flag exits 2" $? 2
rwkv-train --proj_dir p >/dev/null 2>err.txt; eq "missing --data_file exits 2" $? 2
check "missing --data_file message" grep -q 'data_file PREFIX is required' err.txt
$T --lr_init abc >/dev/null 2>err.txt; eq "bad number exits 2" $? 2
check "bad number message" grep -q "invalid value 'abc' for --lr_init" err.txt
$T --precision fp16 >/dev/null 2>&1; eq "fp16 exits 2" $? 2
$T --data_type utf-8 >/dev/null 2>&1; eq "data_type utf-8 exits 2" $? 2
$T --train_stage 1 >/dev/null 2>err.txt; eq "train_stage 1 exits 2" $? 2
check "train_stage 1 points to rwkv-init" grep -q 'rwkv-init' err.txt
# --force also lets a resume change real_bsz (t_train_dp_faults.sh), so it is accepted alone
$T --force --dry-run >/dev/null 2>&1; eq "--force without --resume never is accepted" $? 0

expect_fail "real_bsz must divide 40320" "must divide 40320" $T --micro_bsz 11
expect_fail "--n_layer contradicts the checkpoint" "--n_layer 12 contradicts the checkpoint" $T --n_layer 12
expect_fail "--n_embd contradicts the checkpoint" "--n_embd 768 contradicts" $T --n_embd 768
expect_fail "--vocab_size contradicts the checkpoint" "--vocab_size 65536 contradicts" $T --vocab_size 65536
check "matching dims accepted" $T --n_layer 2 --n_embd 64 --vocab_size 16 --head_size 64 --dry-run
expect_fail "minipile magic_prime on small data" "calls for --magic_prime" $T --magic_prime 2926181
expect_fail "minipile my_exit_tokens on small data" "exceeds the 33" $T --my_exit_tokens 1498226207
expect_fail "non-prime magic_prime" "is not prime" $T --magic_prime 1023
expect_fail "token ids beyond the vocabulary" "vocab_size is 16" rwkv-train --proj_dir p --data_file big --ctx_len 32 --micro_bsz 4
expect_fail "missing data" "nodata" $T --data_file nodata
expect_fail "data too small for ctx_len" "too few for --ctx_len 16384" $T --ctx_len 16384
expect_fail "gpu backend" "this build has no CUDA backend" $T --accelerator gpu
expect_fail "no starting checkpoint" "no starting checkpoint" rwkv-train --proj_dir empty --data_file data --ctx_len 32 --micro_bsz 4

# The plan (dash spellings work too)
rwkv-train --proj-dir p --data-file data --ctx-len 32 --micro-bsz 4 --dry-run >plan.txt
eq "--dry-run exits 0" $? 0
check "plan: parameters" grep -q '135808 parameters' plan.txt
check "plan: tokens/step" grep -q '= 128 tokens/step' plan.txt
check "plan: miniepoch" grep -q 'miniepoch    10080 steps' plan.txt
check "plan: magic prime from the data" grep -q -- '--magic_prime 1019 --my_exit_tokens 33012' plan.txt
check "plan: exit step" grep -q 'exit at step 258: 258 steps' plan.txt
check "plan: memory" grep -q 'MiB per device' plan.txt
check "--dry-run writes nothing" test "$(ls p)" = rwkv-init.safetensors

# --resume never refuses a used directory unless --force
check "short run" $T --exit_after_steps 4 2>/dev/null
expect_fail "--resume never refuses a used directory" "already holds a run" $T --resume never --exit_after_steps 2
check "--resume never --force starts over" $T --resume never --force --exit_after_steps 2 2>err.txt
check "... from rwkv-init" grep -q 'starting from p/rwkv-init.safetensors (step 0' err.txt
eq "... with a fresh metrics.jsonl" "$(wc -l <p/metrics.jsonl)" 2
# resume: a changed ctx_len or other data is refused
expect_fail "resume with another ctx_len" "differs from the run being resumed" $T --ctx_len 64
$U copy other 3000 8
expect_fail "resume on other data" "is not the data the run" $T --data_file other
check "resume says which state" $T --exit_after_steps 1 2>err.txt
check "... message" grep -q 'resuming from p/train-state-00000002.safetensors (step 2' err.txt
# A corrupt newest state is skipped with a warning; the older one is used.
check "one more step" $T --exit_after_steps 1 2>/dev/null
printf 'garbage' | dd of=p/train-state-00000004.safetensors bs=1 seek=200 conv=notrunc 2>/dev/null
check "corrupt state skipped" $T --exit_after_steps 1 2>err.txt
check "... warning names it" grep -q 'skipping p/train-state-00000004.safetensors' err.txt
check "... once" test "$(grep -o 'p/train-state-00000004' err.txt | wc -l)" -eq 1
check "... resumed from the previous one" grep -q 'resuming from p/train-state-00000003' err.txt

# demo-training-run.sh's flag line, unchanged except the numbers that depend on the data and model.
check "the reference flag set parses" sh -c 'rwkv-train --load_model "0" --wandb "" --proj_dir p --my_testing x070 \
    --data_file data --ctx_len 32 --train_stage 3 --epoch_count 999999 --epoch_begin 0 \
    --my_exit_tokens 33012 --magic_prime 1019 --num_nodes 1 --micro_bsz 4 --n_layer 2 --n_embd 64 \
    --kernel @rwkv3 --lr_init 6e-4 --lr_final 6e-5 --warmup_steps 10 --beta1 0.9 --beta2 0.99 --adam_eps 1e-18 \
    --data_type binidx --vocab_size 16 --weight_decay 0.001 --epoch_save 10 --head_size 64 --head_chunk 0 \
    --accelerator gpu --devices 1 --precision bf16 --strategy deepspeed_stage_2 --grad_cp 1 \
    --enable_progress_bar True --dry-run >ref_plan.txt'
check "... and plans for a GPU" grep -q 'memory       about .* MiB per device (gpu, grad_cp 1)' ref_plan.txt

# --allow_repeat is part of the saved run: a resume does not need it again.
mkdir rp
cp init.safetensors rp/rwkv-init.safetensors
check "run past one pass with --allow_repeat" rwkv-train --proj_dir rp --data_file data --ctx_len 32 --micro_bsz 4 --my_exit_tokens 100000 --allow_repeat --exit_after_steps 2 2>/dev/null
check "resume keeps its my_exit_tokens" sh -c 'rwkv-train --proj_dir rp --data_file data --ctx_len 32 --micro_bsz 4 --dry-run | grep -q "exit at step 782"'

# The progress line appears on a terminal (script(1) provides one), not in a pipe.
if command -v script >/dev/null 2>&1; then
    script -qc "rwkv-train --proj_dir p --data_file data --ctx_len 32 --micro_bsz 4 --exit_after_steps 3" /dev/null </dev/null >tty.txt 2>&1
    check "progress line on a terminal" grep -q 'step 7/258  loss [0-9.]*  lr [0-9.e-]*  [0-9.]* kt/s  896 tokens  ETA' tty.txt
    rwkv-train --proj_dir p --data_file data --ctx_len 32 --micro_bsz 4 --exit_after_steps 1 2>pipe.txt
    check "no progress line in a pipe" test "$(grep -c 'ETA' pipe.txt)" -eq 0
fi
finish
