#!/bin/sh
# How a run ends besides finishing: SIGHUP and SIGPIPE (stderr's reader gone)
# stop it like SIGTERM (state saved, exit 75; review O1); a .bin truncated
# under it is reported by name, with the state saved (D13); --exit_after_steps
# 0 means no limit, as documented (D16); a batch too large for the machine's
# memory is a usage error naming the flags (exit 2; D18).
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy d 3000 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
for x in a b c e m; do mkdir $x; cp init.safetensors $x/rwkv-init.safetensors; done
common="--data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0"
long="--my_exit_tokens 10000000 --allow_repeat"
wait_steps() {   # wait_steps DIR N: until DIR/metrics.jsonl has N records (at most 30 s)
    i=0
    while [ $i -lt 300 ] && [ "$(cat "$1/metrics.jsonl" 2>/dev/null | wc -l)" -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done
}

# SIGPIPE: stderr is a pipe nobody reads; the first message raises it.
rc=$($U closedstderr rwkv-train --proj_dir a $common --exit_after_steps 50)
eq "stderr closed: exit 75 (was killed by SIGPIPE)" "$rc" 75
check "... state saved" test -f a/train-state-00000000.safetensors
check "... and the run resumes from it" rwkv-train --proj_dir a $common --exit_after_steps 2 2>err.txt
check "... at step 0" grep -q 'resuming from a/train-state-00000000.safetensors (step 0' err.txt

# SIGHUP
rwkv-train --proj_dir b $common $long 2>b.err &
pid=$!
wait_steps b 3
kill -HUP $pid
wait $pid
eq "SIGHUP: exit 75" $? 75
check "... says so" grep -q 'stopped by SIGHUP after step [0-9]*; state saved' b.err
step=$(sed -n 's/.*stopped by SIGHUP after step \([0-9]*\);.*/\1/p' b.err)
check "... state of step $step saved" test -f "b/train-state-$(printf %08d "$step").safetensors"

# The data truncated in place while training.
cp d.bin c.bin
cp d.idx c.idx
rwkv-train --proj_dir c --data_file c --ctx_len 32 --micro_bsz 4 --save_minutes 0 $long 2>c.err &
pid=$!
wait_steps c 3
truncate -s 0 c.bin
wait $pid
eq "truncated data: exit 1 (was SIGBUS)" $? 1
check "... named" grep -q 'rwkv-train: c.bin: truncated while training (now 0 bytes, was 66024); stopping' c.err
check "... state saved" grep -q 'state saved as c/train-state-[0-9]*.safetensors' c.err

# --exit_after_steps 0: no limit (the run ends at --my_exit_tokens 1280 = step 10).
rwkv-train --proj_dir e $common --my_exit_tokens 1280 --exit_after_steps 0 2>err.txt
eq "--exit_after_steps 0 exits 0" $? 0
check "... and trains to the end" grep -q 'finished at step 10' err.txt
check "... as --help says" sh -c 'rwkv-train --help | grep -q "exit_after_steps N .*0 = no limit"'

# A batch far beyond this machine's memory (terabytes of activations).
rwkv-train --proj_dir m --data_file d --ctx_len 1024 --micro_bsz 40320 --save_minutes 0 2>err.txt
eq "a batch too large for memory: exit 2" $? 2
check "... naming the flags" grep -q -- '--micro_bsz 40320 x --ctx_len 1024 needs about .* GiB .*more than this machine.s .* GiB: lower --micro_bsz or --ctx_len' err.txt
check "... nothing written" test "$(ls m | grep -c 'train-state\|metrics')" -eq 0
finish
