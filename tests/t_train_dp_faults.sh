#!/bin/sh
# rwkv-train data parallel, failures and resumes (CPU backend, --devices 2 and mpirun -np 2):
# SIGKILL of either rank mid-run ends every rank within seconds, non-zero, naming the rank;
# a resume ends bit-identical to an uninterrupted 2-rank run; SIGTERM to rank 1 stops both
# ranks at the same step with the state saved (exit 75); a 2-rank state resumed on 1 rank
# (micro_bsz 4 inherited) continues the same data order; a real_bsz change is refused without
# --force; --devices/--num_nodes against the launcher's world, deepspeed_stage_3, offload and
# --accelerator gpu in a build without CUDA are refused; errors of rank 1 say "rank 1:"; non-finite
# steps (a gradient poisoned on one rank, an update that would overflow on a shard) and a failed
# log write on rank 0 stop or skip on every rank together.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
need_mpirun
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# ~33k tokens: 258 steps of 2 x 2 x 32 tokens, a few seconds
$U copy data 3000 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
common="--data_file data --ctx_len 32 --lr_init 2e-3 --lr_final 1e-4 --warmup_steps 5 --weight_decay 0.01 --save_steps 3 --save_minutes 0 --precision fp32"
two="$common --micro_bsz 2 --devices 2 --ds_bucket_mb 0.1"
fresh() { rm -rf "$1"; mkdir "$1"; cp init.safetensors "$1/rwkv-init.safetensors"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# at_step DIR N: wait (60 s at most) until rank 0 has logged step N, so that a kill lands
# mid-run whatever the machine's load
at_step() {
    k=0
    while [ $k -lt 1200 ]; do
        last=$(tail -n 1 "$1/metrics.jsonl" 2>/dev/null | sed -n 's/^{"step":\([0-9]*\),.*/\1/p')
        [ -n "$last" ] && [ "$last" -ge "$2" ] && return 0
        sleep 0.05; k=$((k + 1))
    done
    echo "step $2 not reached in $1"
}
fresh a
t0=$(now)
check "uninterrupted 2-rank run" rwkv-train --proj_dir a $two 2>a.err
run_time=$(since "$t0")
echo "uninterrupted run: $run_time s"
exit_step=$(sed -n 's/.*finished at step \([0-9]*\).*/\1/p' a.err)
[ -n "$exit_step" ] || { bad "no 'finished at step' in: $(cat a.err)"; finish; }
final=$(printf 'train-state-%08d.safetensors' "$exit_step")

# SIGKILL of rank 1 (rank 0's child): rank 0 notices at its next collective and stops
fresh b
rwkv-train --proj_dir b $two 2>b1.err &
pid=$!
at_step b 60
kid=$(pgrep -P "$pid" | head -1)
[ -n "$kid" ] && kill -9 "$kid"
t0=$(now)
wait "$pid"
rc=$?
took=$(since "$t0")
echo "rank 0 exited $rc, $took s after rank 1 was killed"
check "SIGKILL of rank 1: rank 0 exits non-zero" test "$rc" -ne 0 -a "$rc" -ne 75
check "... within 10 s ($took s)" awk -v t="$took" 'BEGIN { exit !(t < 10) }'
check "... naming rank 1" grep -q 'rank 1' b1.err
# SIGKILL of rank 0: rank 1 dies with it (PR_SET_PDEATHSIG)
rwkv-train --proj_dir b $two 2>b2.err &
pid=$!
at_step b 120
kid=$(pgrep -P "$pid" | head -1)
kill -9 "$pid"
wait "$pid"
sleep 2
check "SIGKILL of rank 0: rank 1 is gone within 2 s" sh -c "[ -n '$kid' ] && ! kill -0 $kid 2>/dev/null"
check "resume after the kills" rwkv-train --proj_dir b $two 2>b3.err
check "... resumed from a state mid-run" grep -q 'resuming from b/train-state-' b3.err
check "... final state bit-identical to the uninterrupted run" $U cmpstate "a/$final" "b/$final"
check "... rwkv-final bit-identical" cmp a/rwkv-final.safetensors b/rwkv-final.safetensors

# mpirun: a killed rank ends the job in seconds
fresh m
$MPIRUN -np 2 rwkv-train --proj_dir m $two 2>m.err &
pid=$!
at_step m 60
kid=$(pgrep -P "$pid" | tail -1)
[ -n "$kid" ] && kill -9 "$kid"
t0=$(now)
wait "$pid"
rc=$?
took=$(since "$t0")
echo "mpirun exited $rc, $took s after a rank was killed"
check "mpirun: SIGKILL of a rank ends the job non-zero" test "$rc" -ne 0
check "... within 15 s ($took s)" awk -v t="$took" 'BEGIN { exit !(t < 15) }'

# SIGTERM to rank 1 only: both ranks stop after the same step, the state saved
fresh c
rwkv-train --proj_dir c $two 2>c.err &
pid=$!
at_step c 60
kid=$(pgrep -P "$pid" | head -1)
[ -n "$kid" ] && kill -TERM "$kid"
wait "$pid"
eq "SIGTERM to rank 1: rank 0's exit status" "$?" 75
check "... rank 0 says another rank was signalled" grep -q 'stopped by a signal to another rank after step' c.err
st=$(sed -n 's/.*stopped by a signal to another rank after step \([0-9]*\).*/\1/p' c.err)
check "... state saved at that step" test -f "c/$(printf 'train-state-%08d.safetensors' "${st:-0}")"
check "... resume" rwkv-train --proj_dir c $two 2>>c.err
check "... final state bit-identical to the uninterrupted run" $U cmpstate "a/$final" "c/$final"

# Another world size, the same real_bsz: 2 ranks to step 100, then 1 rank (micro_bsz 4 is
# inherited) for 20 steps, against the uninterrupted 2-rank run's state at step 120
fresh d; fresh e
rwkv-train --proj_dir e $two --exit_after_steps 120 2>e.err
rwkv-train --proj_dir d $two --exit_after_steps 100 2>d.err
expect_fail "resume on 1 rank with micro_bsz 2 (real_bsz 2, was 4) refused" \
    "real_bsz 2 (micro_bsz 2 x 1 ranks) differs from the run being resumed (real_bsz 4 = micro_bsz 2 x 2 ranks" \
    rwkv-train --proj_dir d $common --micro_bsz 2
check "... accepted with --force (dry run)" sh -c "rwkv-train --proj_dir d $common --micro_bsz 2 --force --dry-run >/dev/null 2>&1"
check "... 1 rank inherits micro_bsz 4" sh -c "rwkv-train --proj_dir d $common --dry-run | grep -q 'micro_bsz 4 x 1 devices'"
check "resume on 1 rank with real_bsz 4" rwkv-train --proj_dir d $common --exit_after_steps 20 2>>d.err
check "... the same data order: losses within 1e-5 over 120 steps" $U nearloss e/metrics.jsonl d/metrics.jsonl 1e-5 120
check "... state within fp32 noise at step 120" $U nearstate e/train-state-00000120.safetensors d/train-state-00000120.safetensors 1e-4

# Non-finite steps are decided together.  A gradient poisoned on rank 1 only (mpirun's MPMD
# form) makes the reduced gradient non-finite on both: both skip the step and go on.
fresh p
$MPIRUN -np 1 env RWKV7C_TRAIN_POISON=2 rwkv-train --proj_dir p $two --exit_after_steps 5 : \
    -np 1 env RWKV7C_TRAIN_POISON=2 rwkv-train --proj_dir p $two --exit_after_steps 5 >/dev/null 2>p.err
eq "poison on both ranks: exit 0" "$?" 0
fresh p
$MPIRUN -np 1 rwkv-train --proj_dir p $two --exit_after_steps 5 : \
    -np 1 env RWKV7C_TRAIN_POISON=2 rwkv-train --proj_dir p $two --exit_after_steps 5 >/dev/null 2>p.err
eq "gradient poisoned on rank 1 only: exit 0 (no rank waits for the other)" "$?" 0
check "... rank 0 skips that step too" grep -q 'step 2: non-finite gradient norm (loss [0-9.]*, grad norm nan): update skipped' p.err
check "... and only that one" test "$(grep -c 'update skipped' p.err)" -eq 1
# An update that would overflow (huge head weights, --grad_clip 0): the sharded ranks check
# their parts and refuse it together; 3 in a row stop both with exit 4 and a finite state.
mkdir q
$U scale init.safetensors q/rwkv-init.safetensors head.weight 1e15 || exit 1
rwkv-train --proj_dir q $two --strategy deepspeed_stage_1 --grad_clip 0 --exit_after_steps 3 2>q.err
eq "overflowing updates on 2 ranks: exit 4" "$?" 4
check "... each refused, naming what would overflow" grep -q 'step 0: the update would make adam_v of [a-z0-9.]* non-finite' q.err
check "... the state saved is finite" $U finite q/train-state-00000003.safetensors
# A failed write of rank 0's metrics.jsonl: rank 0 stops, and rank 1 with it
fresh l
rwkv-train --proj_dir l $two --exit_after_steps 5 2>/dev/null || exit 1
$PYTHON -c 'import json; open("l/metrics.jsonl", "a").write(json.dumps({"step": 0, "pad": "x" * 2000000}) + "\n")'
size=$(stat -c %s l/metrics.jsonl)
$PYTHON -c 'import os, resource, sys
n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); os.execvp(sys.argv[2], sys.argv[2:])' \
    $((size + 1000)) rwkv-train --proj_dir l $two --exit_after_steps 50 2>l.err
eq "rank 0's metrics write fails: exit 1" "$?" 1
check "... rank 0 says why" grep -q 'l/metrics.jsonl: write failed: File too large; stopping all ranks' l.err
check "... rank 1 stops with it" grep -q 'rank 1: stopping: rank 0 failed' l.err

# refusals
expect_fail "launcher world 3 vs --devices 2" "--devices 2 x --num_nodes 1 = 2 ranks, but the launcher (torchrun) started 3 (WORLD_SIZE=3)" \
    env RANK=0 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 rwkv-train --proj_dir a $two --dry-run
expect_fail "mpirun -np 2 without --devices 2" "--devices 1 x --num_nodes 1 = 1 ranks, but the launcher (OpenMPI) started 2" \
    $MPIRUN -np 2 rwkv-train --proj_dir a $common --micro_bsz 2
expect_fail "--num_nodes 2 without a launcher" "--num_nodes 2 needs a launcher on each node" \
    rwkv-train --proj_dir a $common --num_nodes 2
expect_fail "deepspeed_stage_3 refused" "--strategy deepspeed_stage_3 is out of scope" \
    rwkv-train --proj_dir a $two --strategy deepspeed_stage_3
expect_fail "offload refused" "--strategy deepspeed_stage_2_offload is out of scope" \
    rwkv-train --proj_dir a $two --strategy deepspeed_stage_2_offload
eq "... exit status 2" "$(rwkv-train --proj_dir a $two --strategy deepspeed_stage_3 2>/dev/null; echo $?)" 2
expect_fail "an unknown strategy" "invalid value 'fsdp' for --strategy (want ddp, deepspeed_stage_1 or deepspeed_stage_2)" \
    rwkv-train --proj_dir a $two --strategy fsdp
expect_fail "--accelerator gpu with 2 ranks refused in a CPU build" "this build has no CUDA backend" \
    rwkv-train --proj_dir a $two --accelerator gpu
expect_fail "an error on rank 1 says rank 1" "rwkv-train: rank 1: " \
    $MPIRUN -np 2 rwkv-train --proj_dir a $two --data_file nosuch
finish
