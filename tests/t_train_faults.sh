#!/bin/sh
# rwkv-train fault handling: an injected non-finite gradient skips the update
# (test hook RWKV7C_TRAIN_POISON=STEP[,COUNT]); K in a row stop the run with
# exit 4 and a finite state; a failing disk write (RLIMIT_FSIZE) leaves the
# previous state intact and usable.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy data 3000 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
for d in a b c f; do mkdir $d; cp init.safetensors $d/rwkv-init.safetensors; done
common="--data_file data --ctx_len 32 --micro_bsz 4 --save_minutes 0"

# One poisoned step: skipped, reported, and the weights equal a run without that step.
check "clean 5 steps" rwkv-train --proj_dir a $common --exit_after_steps 5 2>/dev/null
RWKV7C_TRAIN_POISON=5 rwkv-train --proj_dir b $common --exit_after_steps 6 2>b.err
eq "poisoned run exits 0" $? 0
check "skip reported" grep -q 'step 5: non-finite gradient norm (loss [0-9.]*, grad norm nan): update skipped' b.err
check "metrics marks the step" grep -q '"step":5,.*"grad_norm":null.*"skipped":true' b/metrics.jsonl
check "skipped update left weights and moments untouched" \
    $U cmpweights a/train-state-00000005.safetensors b/train-state-00000006.safetensors

# Three in a row stop the run (exit 4) with a finite state saved; resuming continues.
RWKV7C_TRAIN_POISON=2,10 rwkv-train --proj_dir c $common --exit_after_steps 20 2>c.err
eq "3 non-finite steps in a row exit 4" $? 4
check "stop message names the step" grep -q 'stopping: 3 non-finite steps in a row (last at step 4)' c.err
check "finite state saved" test -f c/train-state-00000005.safetensors
check "resume after the stop" rwkv-train --proj_dir c $common --exit_after_steps 2 2>/dev/null

# A failing disk write: 2 good steps saved, then every state write fails (file size limit).
check "steps 0-3 with states at 2 and 4" rwkv-train --proj_dir f $common --save_steps 2 --exit_after_steps 4 2>/dev/null
cp f/train-state-00000004.safetensors saved4.safetensors
(ulimit -f 1000; exec rwkv-train --proj_dir f $common --save_steps 2 --exit_after_steps 3) 2>f.err
rc=$?
check "failed final save exits non-zero (got $rc)" test $rc -ne 0 -a $rc -ne 75
check "periodic save failure is a warning" grep -q 'state not saved (training continues):.*write failed' f.err
check "final save failure reported" grep -q 'training state not saved:.*write failed' f.err
check "no state beyond step 4" test "$(ls f | grep -c '^train-state-.*07')" -eq 0
check "no temporaries left" test -z "$(ls -A f | grep '\.tmp\.')"
check "previous state intact" cmp f/train-state-00000004.safetensors saved4.safetensors
check "resume from it works" rwkv-train --proj_dir f $common --exit_after_steps 1 2>f2.err
check "... from step 4" grep -q 'resuming from f/train-state-00000004.safetensors (step 4' f2.err
# A temporary left by a killed trainer (dead PID), in AtomicFile's hidden spelling and the
# old visible one, is removed when the next run starts; a live writer's is kept.
mkdir g; cp init.safetensors g/rwkv-init.safetensors
for n in .train-state-00000003.safetensors.tmp.999999999 .rwkv-final.pth.tmp.999999999 \
         train-state-00000002.safetensors.tmp.999999999 .train-state-00000009.safetensors.tmp.$$; do
    echo stale > "g/$n"
done
check "run with stale temporaries" rwkv-train --proj_dir g $common --exit_after_steps 1 2>/dev/null
eq "dead writers' temporaries removed, the live one kept" "$(ls -A g | grep '\.tmp\.' | tr '\n' ' ')" \
    ".train-state-00000009.safetensors.tmp.$$ "
finish
