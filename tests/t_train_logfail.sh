#!/bin/sh
# A failed write to metrics.jsonl or train_log.txt stops the run (review D5):
# reported, exit 1, the state saved as of the step before the one whose record
# failed, no partial or spliced record left, and the next run redoes that step
# so metrics.jsonl has every step once.  The failure comes from a file-size
# limit (RLIMIT_FSIZE, with SIGXFSZ ignored) just above metrics.jsonl's size:
# metrics.jsonl is padded to be larger than a training state, so the states
# still fit.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy d 3000 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
mkdir p
cp init.safetensors p/rwkv-init.safetensors
T="rwkv-train --proj_dir p --data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0"
limited() {   # limited BYTES CMD...: run CMD with a file-size limit
    n=$1; shift
    $PYTHON -c 'import os, resource, sys
n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); os.execvp(sys.argv[2], sys.argv[2:])' "$n" "$@"
}
$T --exit_after_steps 5 2>/dev/null || exit 1
# a record of step 0 padded to 2 MB (states are 1.6 MB); kept by the resume's trim
$PYTHON -c 'import json; open("p/metrics.jsonl", "a").write(json.dumps({"step": 0, "pad": "x" * 2000000}) + "\n")'
size=$(stat -c %s p/metrics.jsonl)
limited $((size + 1000)) $T --exit_after_steps 50 2>err.txt
eq "a failed metrics write exits 1" $? 1
check "... reported" grep -q 'p/metrics.jsonl: write failed: File too large; stopping (step [0-9]* is not counted: the next run redoes it)' err.txt
stopped=$(sed -n 's/.*stopping (step \([0-9]*\) is not counted.*/\1/p' err.txt)
check "... state saved at that step ($stopped)" grep -q "state saved as p/train-state-000000$stopped.safetensors (step $stopped)" err.txt
check "... every metrics line is whole JSON" $PYTHON -c '
import json, sys
for l in open("p/metrics.jsonl"):
    assert l.endswith("\n") and isinstance(json.loads(l), dict), l[:80]'
check "... no record of step $stopped" test "$(grep -c "\"step\":$stopped," p/metrics.jsonl)" -eq 0
$T --exit_after_steps 3 2>err2.txt
check "the next run redoes step $stopped" grep -q "resuming from p/train-state-000000$stopped.safetensors (step $stopped" err2.txt
check "... metrics has each step once" $PYTHON -c '
import json
steps = [json.loads(l)["step"] for l in open("p/metrics.jsonl")][1:]   # the padded line is step 0 again
steps = [s for s in steps]
assert sorted(steps) == list(range(len(steps))) and len(steps) == '"$stopped"' + 3, steps'

# train_log.txt: the run's header line cannot be written: nothing trains.
mkdir g
cp init.safetensors g/rwkv-init.safetensors
$PYTHON -c 'open("g/train_log.txt", "w").write("x" * 4000 + "\n")'
limited 4200 rwkv-train --proj_dir g --data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0 --exit_after_steps 3 2>err.txt
eq "a failed train_log write at the start exits 1" $? 1
check "... reported" grep -q 'g/train_log.txt: write failed: File too large' err.txt
check "... nothing trained" test "$(ls g | grep -c train-state)" -eq 0
finish
