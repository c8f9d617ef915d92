#!/bin/sh
# rwkv-train data parallel on the CPU backend: 2 ranks of micro_bsz 2 train on the same samples
# per step as 1 rank of micro_bsz 4 (losses within 1e-5 for 20 steps in fp32, final masters and
# moments within fp32 noise) for ddp, deepspeed_stage_1 and deepspeed_stage_2 under mpirun, and
# for --devices 2 started without a launcher; the strategies agree with each other (stage 1 and
# stage 2 bit for bit: the same rank-order sums, in one call or in buckets; MPI and TCP too);
# bf16 refreshes the forward copy after the gather; rank 0 alone writes the logs.  --dry-run
# prints world, strategy, real_bsz and each rank's shard.  Skips without mpirun.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
need_mpirun
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy data 300 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
common="--data_file data --ctx_len 16 --lr_init 2e-3 --lr_final 1e-4 --warmup_steps 5 --weight_decay 0.01 --save_minutes 0 --exit_after_steps 20"
fp32="$common --precision fp32"
fresh() { rm -rf "$1"; mkdir "$1"; cp init.safetensors "$1/rwkv-init.safetensors"; }
S=train-state-00000020.safetensors

fresh one
check "1 rank, micro_bsz 4" rwkv-train --proj_dir one $fp32 --micro_bsz 4 2>one.err
for s in ddp deepspeed_stage_1 deepspeed_stage_2; do
    fresh $s
    # 0.1 MB buckets: the stage 2 reduce-scatter of this model's 68k-float shards takes 6 calls
    # (few: an MPI wait that sleeps on a loaded machine loses its core for a while)
    check "mpirun -np 2 --strategy $s, micro_bsz 2" \
        $MPIRUN -np 2 rwkv-train --proj_dir $s $fp32 --micro_bsz 2 --devices 2 --strategy $s --ds_bucket_mb 0.1 2>$s.err
    check "... $s: losses within 1e-5 of 1 rank x micro_bsz 4 for 20 steps" $U nearloss one/metrics.jsonl $s/metrics.jsonl 1e-5 20
    check "... $s: final masters and moments within fp32 noise" $U nearstate one/$S $s/$S 1e-4
done
check "ddp and deepspeed_stage_1 agree" $U nearstate ddp/$S deepspeed_stage_1/$S 1e-5
check "deepspeed_stage_1 and _2 (buckets) bit-identical" $U cmpweights deepspeed_stage_1/$S deepspeed_stage_2/$S
check "state records world and strategy" grep -q '"world":"2".*"strategy":"deepspeed_stage_1"\|"strategy":"deepspeed_stage_1".*"world":"2"' deepspeed_stage_1/$S

# --devices 2 without a launcher: rank 0 starts rank 1 (TCP); the default strategy is stage 2,
# here in 55 buckets
fresh dev
check "--devices 2 without a launcher" rwkv-train --proj_dir dev $fp32 --micro_bsz 2 --devices 2 --ds_bucket_mb 0.01 2>dev.err
check "... losses within 1e-5 of 1 rank" $U nearloss one/metrics.jsonl dev/metrics.jsonl 1e-5 20
check "... state within fp32 noise of 1 rank" $U nearstate one/$S dev/$S 1e-4
check "... bit-identical to mpirun's deepspeed_stage_2 (TCP and MPI sum alike)" $U cmpweights deepspeed_stage_2/$S dev/$S
check "... default strategy deepspeed_stage_2 recorded" grep -q '"strategy":"deepspeed_stage_2"' dev/$S
eq "... rank 0 alone writes metrics.jsonl (20 records)" "$(wc -l <dev/metrics.jsonl)" 20
eq "... one NEW RUN in train_log.txt" "$(grep -c 'NEW RUN' dev/train_log.txt)" 1
eq "... rank 1 says nothing on success" "$(grep -c 'rank 1' dev.err)" 0

# bf16: the forward copy is refreshed after the all-gather (a stale copy would train on the
# initial weights; the losses would part by far more)
fresh b1; fresh b2
check "bf16, 1 rank" rwkv-train --proj_dir b1 $common --micro_bsz 4 2>b1.err
check "bf16, --devices 2 deepspeed_stage_1" rwkv-train --proj_dir b2 $common --micro_bsz 2 --devices 2 --strategy deepspeed_stage_1 2>b2.err
check "... losses within 1e-3 (bf16 rounding of masters that differ in the last bits)" $U nearloss b1/metrics.jsonl b2/metrics.jsonl 1e-3 20

# --dry-run plans the ranks without starting them
rwkv-train --proj_dir one $fp32 --micro_bsz 2 --devices 2 --strategy deepspeed_stage_1 --dry-run >plan.txt 2>plan.err
eq "--dry-run --devices 2 exit status" "$?" 0
check "... world, strategy and real_bsz" grep -q '^parallel     2 ranks (--devices 2 x --num_nodes 1), --strategy deepspeed_stage_1, real_bsz 4 = micro_bsz 2 x 2' plan.txt
check "... what each rank holds" grep -q '^rank 1       Adam moments of parameters \[67904, 135808)' plan.txt
check "... ddp: every rank holds everything" sh -c "rwkv-train --proj_dir one $fp32 --micro_bsz 2 --devices 2 --strategy ddp --dry-run | grep -q '^each rank    the whole fp32 weights, gradient and Adam moments'"
check "... no rank was started (no child process left a log)" test "$(wc -l <one/metrics.jsonl)" -eq 20
finish
