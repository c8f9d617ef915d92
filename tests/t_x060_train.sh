#!/bin/sh
# rwkv-train on x060.  (1) 30 steps on real text (examples/demo.jsonl through the
# real tokenizer, V = 65536) in fp32 agree with tests/ref/x060_train.py, an
# independent float64 PyTorch trainer (the reference's sampling, LR schedule,
# clipping, FusedAdam and the x060 optimizer groups: time_decay at 2x LR, weight
# decay on the matrices), within 1e-5 relative in the loss of every step; and,
# each step started from rwkv-train's own saved state, every tensor's update
# within 1e-3 of the float64 one, in fp32 and in bf16 (forward on bf16 copies of
# the masters); and the x060 run learns.  (2) Runs killed with SIGKILL at random points and
# resumed, and one stopped by SIGTERM, end bit-identical to an uninterrupted
# run (weights, Adam moments, counters).  Skipped when rwkv-init has no x060.
. "$TOP/tests/lib.sh"
need_torch
U="$PYTHON $TOP/tests/train_util.py"
REF="$PYTHON $TOP/tests/ref/x060_train.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
rwkv-init -q --model-type x060 -L 2 -C 64 -s 1 -o init.st 2>/dev/null ||
    { echo "rwkv-init has no --model-type x060"; exit 77; }
data="$TOP/examples/demo.jsonl"
[ -f "$data" ] || { echo "no examples/demo.jsonl"; exit 77; }

# (1) 30 steps against the float64 trainer.  T = 45 (not a multiple of 16), B = 2,
# weight decay on, warmup, and an LR high enough that the groups matter.
rwkv-tokenize "$data" | binidx-write -q demo || exit 1
mkdir p
cp init.st p/rwkv-init.safetensors
args="--ctx_len 45 --micro_bsz 2 --lr_init 2e-3 --lr_final 1e-3 --warmup_steps 3 --weight_decay 0.1"
plan=$($REF init.st demo $args --plan)
check "rwkv-train's plan is the reference's ($plan)" sh -c \
    "rwkv-train --proj_dir p --data_file demo $args --dry-run | grep -q -- '--magic_prime $(echo $plan | cut -d' ' -f2) --my_exit_tokens $(echo $plan | cut -d' ' -f4)'"
check "rwkv-train --my_testing x060, 30 steps, fp32" rwkv-train --proj_dir p --data_file demo $args --precision fp32 \
    --my_testing x060 --exit_after_steps 30 --save_minutes 0 2>p.err
$REF init.st demo $args --steps 30 --metrics p/metrics.jsonl > cmp.txt
rc=$?
cat cmp.txt
eq "every step's loss within 1e-5 of the float64 trainer" $rc 0
first=$(head -n 5 p/metrics.jsonl | sed 's/.*"loss":\([0-9.]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
last=$(tail -n 5 p/metrics.jsonl | sed 's/.*"loss":\([0-9.]*\).*/\1/' | awk '{s += $1} END {print s / NR}')
echo "mean loss: first 5 steps $first, last 5 steps $last"
check "x060 learns: loss falls by >= 1 nat in 30 steps" awk -v a="$first" -v b="$last" 'BEGIN { exit !(a - b >= 1) }'

# (1b) Anchored: each reference step starts from rwkv-train's saved state of that
# step, so every tensor's update is compared (groups, weight decay, clip, Adam)
# without drift.  A state is saved every step, so a small vocabulary (the digit-copy
# data of tests/train_util.py) keeps them small.
$U copy data 3000 7 || exit 1
rwkv-init -q --model-type x060 -L 2 -C 64 --vocab-size 16 -s 3 -o init16.st || exit 1
mkdir q
cp init16.st q/rwkv-init.safetensors
qargs="--ctx_len 27 --micro_bsz 4 --lr_init 3e-3 --lr_final 1e-3 --warmup_steps 3 --weight_decay 0.1"
check "rwkv-train x060, 30 steps, fp32, a state every step" rwkv-train --proj_dir q --data_file data $qargs \
    --precision fp32 --exit_after_steps 30 --save_minutes 0 --save_steps 1 --keep 40 2>q.err
$REF init16.st data $qargs --steps 30 --metrics q/metrics.jsonl --states q > anchored.txt
rc=$?
grep -E "worst|FAIL" anchored.txt
eq "anchored: every tensor's update of every step within 1e-3" $rc 0
# --precision bf16: the forward on bf16 copies of the fp32 masters
mkdir qb
cp init16.st qb/rwkv-init.safetensors
check "rwkv-train x060 --precision bf16, 30 steps, a state every step" rwkv-train --proj_dir qb --data_file data \
    $qargs --precision bf16 --exit_after_steps 30 --save_minutes 0 --save_steps 1 --keep 40 2>qb.err
$REF init16.st data $qargs --steps 30 --metrics qb/metrics.jsonl --states qb --bf16 > anchored_bf16.txt
rc=$?
grep -E "worst|FAIL" anchored_bf16.txt
eq "anchored, bf16 weights: every loss within 1e-5, every update within 1e-3" $rc 0

# The float64 trainer itself, with x070's forward, against the x070 rwkv-train: when
# an x060 comparison fails, this tells the trainer from the model.
mkdir q7
rwkv-init -q -L 2 -C 64 --vocab-size 16 -s 3 -o init7.st || exit 1
cp init7.st q7/rwkv-init.safetensors
check "rwkv-train x070, 30 steps, a state every step" rwkv-train --proj_dir q7 --data_file data $qargs \
    --precision fp32 --exit_after_steps 30 --save_minutes 0 --save_steps 1 --keep 40 2>q7.err
$REF init7.st data $qargs --steps 30 --metrics q7/metrics.jsonl --states q7 --x070 > anchored7.txt
rc=$?
grep -E "worst|FAIL" anchored7.txt
eq "the float64 trainer = the x070 rwkv-train (anchored)" $rc 0

# (2) SIGKILL and SIGTERM, then resume: bit-identical to an uninterrupted run.
common="--data_file data --ctx_len 32 --micro_bsz 4 --lr_init 2e-3 --lr_final 1e-4 --warmup_steps 5 --weight_decay 0.01 --save_steps 3 --save_minutes 0"
for d in a b c; do mkdir $d; cp init16.st $d/rwkv-init.safetensors; done
t0=$(date +%s.%N)
check "uninterrupted run" rwkv-train --proj_dir a $common 2>a.err
run_time=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
exit_step=$(sed -n 's/.*finished at step \([0-9]*\).*/\1/p' a.err)
echo "uninterrupted run: $run_time s, $exit_step steps"
[ -n "$exit_step" ] || { bad "no 'finished at step' in: $(cat a.err)"; finish; }
final=$(printf 'train-state-%08d.safetensors' "$exit_step")
seed=${KILL_SEED:-$(date +%s)}
echo "kill seed $seed"
killed_mid=0
for i in 1 2 3 4 5; do
    rwkv-train --proj_dir b $common 2>>b.err &
    pid=$!
    delay=$(awk -v s="$seed" -v i="$i" -v t="$run_time" 'BEGIN { srand(s + i); printf "%.3f", t * (0.05 + rand() * 0.15) }')
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    echo "run $i: killed after $delay s, exit status $rc"
    [ $rc -eq 137 ] && killed_mid=$((killed_mid + 1))
done
check "at least 3 of 5 runs were killed mid-run ($killed_mid)" test $killed_mid -ge 3
resume_steps=$(sed -n 's/.*resuming from b\/train-state-[0-9]*\.safetensors (step \([0-9]*\).*/\1/p' b.err | tr '\n' ' ')
echo "resumed at steps: $resume_steps"
mid=0
for s in $resume_steps; do [ "$s" -gt 0 ] && [ "$s" -lt "$exit_step" ] && mid=1; done
check "a killed run was resumed from a state before the exit step" test $mid -eq 1
check "resumed run finishes" rwkv-train --proj_dir b $common 2>>b.err
check "final state bit-identical after SIGKILLs" $U cmpstate "a/$final" "b/$final"
check "rwkv-final bit-identical after SIGKILLs" cmp a/rwkv-final.safetensors b/rwkv-final.safetensors
steps=$(sed 's/.*"step":\([0-9]*\).*/\1/' b/metrics.jsonl | tr '\n' ' ')
eq "metrics.jsonl has each step once" "$steps" "$(seq 0 $((exit_step - 1)) | tr '\n' ' ')"
"$PYTHON" -c "
import sys; sys.path.insert(0, '$TOP/tests/ref'); import x060
t, meta = x060.st_read('a/rwkv-final.safetensors')
assert meta.get('model_type') == 'x060', meta
assert any(n.endswith('att.time_faaaa') for n, _ in t)
" 2>err.txt
eq "rwkv-final is an x060 checkpoint" $? 0

rwkv-train --proj_dir c $common 2>c.err &
pid=$!
i=0
while [ $i -lt 300 ] && [ "$(cat c/metrics.jsonl 2>/dev/null | wc -l)" -lt 5 ]; do sleep 0.1; i=$((i + 1)); done
kill -TERM "$pid"
wait "$pid"
eq "SIGTERM: exit 75" $? 75
check "resume after SIGTERM" rwkv-train --proj_dir c $common 2>>c.err
check "final state bit-identical after SIGTERM" $U cmpstate "a/$final" "c/$final"
finish
