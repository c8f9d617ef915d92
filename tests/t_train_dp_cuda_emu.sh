#!/bin/sh
# rwkv-train data parallel on the CUDA backend, through the emulation (build/cuda-emu: each rank
# emulates a device of its own and the backend's device collectives use the ranks' host
# communicator, where a GPU build uses NCCL): --devices 2 of micro_bsz 2 against 1 rank of
# micro_bsz 4, bf16, for ddp and deepspeed_stage_1 (the first 4 steps' losses within 1e-6, all 8
# within 1e-3: masters that differ in their last bits, from the order of the gradient's sum,
# round to other bf16 weights now and then, as in t_train_dp's bf16 run; the two strategies
# bit-identical: the same rank-order sums); a
# stage-1 run stopped and resumed bit-identical to an uninterrupted one (the sharded moments
# gathered into the state and split again); that 2-rank state resumed on 1 rank of micro_bsz 4
# continues the same data; a poisoned gradient is skipped on both ranks; deepspeed_stage_1 in fp32
# is refused (ddp runs); --dry-run prints one rank's device memory plan.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
gpu="$TOP/build/cuda-emu/bin/rwkv-train"
[ -x "$gpu" ] || { echo "emulated CUDA trainer not built (make cuda-emu needs the CUDA toolkit's headers)"; exit 77; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy data 300 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
common="--accelerator gpu --data_file data --ctx_len 16 --lr_init 2e-3 --lr_final 1e-4 --warmup_steps 5 --weight_decay 0.01 --save_minutes 0"
fresh() { rm -rf "$1"; mkdir "$1"; cp init.safetensors "$1/rwkv-init.safetensors"; }
S=train-state-00000008.safetensors

fresh one
check "emulated GPU, 1 rank, micro_bsz 4" "$gpu" --proj_dir one $common --micro_bsz 4 --exit_after_steps 8 2>one.err
for s in ddp deepspeed_stage_1; do
    fresh $s
    check "emulated GPU, --devices 2 --strategy $s, micro_bsz 2" \
        "$gpu" --proj_dir $s $common --micro_bsz 2 --devices 2 --strategy $s --exit_after_steps 8 2>$s.err
    check "... $s: losses of steps 1-4 within 1e-6 of 1 rank x micro_bsz 4" $U nearloss one/metrics.jsonl $s/metrics.jsonl 1e-6 4
    check "... $s: losses of steps 1-8 within 1e-3 (bf16 weights)" $U nearloss one/metrics.jsonl $s/metrics.jsonl 1e-3 8
done
check "ddp and deepspeed_stage_1 bit-identical" $U cmpweights ddp/$S deepspeed_stage_1/$S

# stopped after 4 steps and resumed: the same bits as the uninterrupted stage-1 run
fresh r
check "stage 1, steps 0-3" "$gpu" --proj_dir r $common --micro_bsz 2 --devices 2 --strategy deepspeed_stage_1 --exit_after_steps 4 2>r.err
check "stage 1, resumed, steps 4-7" "$gpu" --proj_dir r $common --micro_bsz 2 --devices 2 --strategy deepspeed_stage_1 --exit_after_steps 4 2>>r.err
check "... the resumed run's final state bit-identical to the uninterrupted one" $U cmpstate deepspeed_stage_1/$S r/$S

# the 2-rank state at step 4 on 1 rank of micro_bsz 4: the same windows per step
rm -rf w1; mkdir w1; cp r/train-state-00000004.safetensors r/metrics.jsonl w1/
check "1 rank of micro_bsz 4 resumes the 2-rank state" "$gpu" --proj_dir w1 $common --exit_after_steps 4 2>w1.err
check "... resumed at step 4 with micro_bsz 4" grep -q 'resuming from w1/train-state-00000004.safetensors (step 4' w1.err
check "... steps 5-8 within 1e-3 of the 2-rank run (the same windows)" $U nearloss deepspeed_stage_1/metrics.jsonl w1/metrics.jsonl 1e-3 8

# a poisoned gradient (both ranks) is skipped on both; a sharded fp32 run is refused before any
# rank starts, and its plan says it cannot run
fresh pz
RWKV7C_TRAIN_POISON=2 "$gpu" --proj_dir pz $common --micro_bsz 2 --devices 2 --strategy deepspeed_stage_1 --exit_after_steps 4 2>pz.err
eq "2 ranks, a poisoned gradient: the run goes on" $? 0
check "... the step is skipped as non-finite" grep -q 'step 2: non-finite gradient norm' pz.err
check "... and the state after it is finite" $U finite pz/train-state-00000004.safetensors
fresh f32
expect_fail "stage 1 in fp32 refused" "the CUDA backend shards bf16 runs only" \
    "$gpu" --proj_dir f32 $common --micro_bsz 2 --devices 2 --precision fp32 --exit_after_steps 1
check "... its plan says CANNOT RUN" sh -c "'$gpu' --proj_dir f32 $common --micro_bsz 2 --devices 2 --precision fp32 --dry-run 2>/dev/null | grep -q 'CANNOT RUN.*shards bf16 runs only'"
check "... ddp in fp32 runs" "$gpu" --proj_dir f32 $common --micro_bsz 2 --devices 2 --precision fp32 --strategy ddp --exit_after_steps 2

fresh p
"$gpu" --proj_dir p $common --micro_bsz 2 --devices 4 --strategy deepspeed_stage_1 --dry-run >plan.txt 2>plan.err
eq "--dry-run --devices 4 exit status" "$?" 0
check "... one rank's plan" grep -q '^device memory plan (CUDA backend), per device: 4 ranks, deepspeed_stage_1' plan.txt
check "... masters and moments sharded" grep -q "^  moments .*this rank's shard" plan.txt
finish
