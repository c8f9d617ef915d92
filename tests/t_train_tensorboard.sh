#!/bin/sh
# rwkv-train --tensorboard DIR: the event files, read back by the real
# tensorboard package (tests/ref/tb_check.py: EventAccumulator, which checks
# every record's CRCs), hold loss, lr, grad_norm and tokens_per_s with the
# same steps, values (float32 of metrics.jsonl's; null = NaN) and wall times
# as metrics.jsonl: after a first run, after a second run killed with SIGKILL
# (what it logged is there), and after the resume that redoes the killed
# run's last steps (one file per run; TensorBoard keeps the redone values).
# A failed event-file write is one warning and training goes on; a DIR that
# cannot be created is an error before any step; --tensorboard "" is off.
# With the wandb package there too, wandb's own TensorBoard reader imports the
# files with the same values (tests/ref/wandb_tb_import.py).
# Skips (77) without the tensorboard package: `make deps` fetches it into
# build/pip-tb (or set TB_PIP_DIR).
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
TB_PIP=${TB_PIP_DIR:-$TOP/build/pip-tb}
PYTHONPATH="$TB_PIP" "$PYTHON" -c 'from tensorboard.backend.event_processing import event_accumulator' 2>/dev/null ||
    { echo "tensorboard Python package not in $TB_PIP (make deps fetches it)"; exit 77; }
tbcheck() { PYTHONPATH="$TB_PIP" "$PYTHON" "$TOP/tests/ref/tb_check.py" "$@"; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy d 3000 7 || exit 1     # ~260 steps of 128 tokens
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
mkdir p
cp init.safetensors p/rwkv-init.safetensors
T="rwkv-train --proj_dir p --data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0 --save_steps 10"

# A first run, with two non-finite gradients (grad_norm null in metrics.jsonl, NaN in the events).
RWKV7C_TRAIN_POISON=3,2 $T --exit_after_steps 30 --tensorboard tb 2>a.err
eq "first run exit status" $? 0
eq "one event file" "$(ls tb | grep -c '^events\.out\.tfevents\.')" 1
check "events = metrics.jsonl after the first run" tbcheck tb p/metrics.jsonl

# A second run killed with SIGKILL mid-run: every step it logged is in its file.
$T --tensorboard tb 2>b.err &
pid=$!
i=0
while [ "$(cat p/metrics.jsonl | wc -l)" -lt 75 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid
wait $pid
eq "second run killed mid-run" $? 137
logged=$(wc -l < p/metrics.jsonl)
echo "killed after $logged records"
check "events = metrics.jsonl after SIGKILL ($logged steps)" tbcheck tb p/metrics.jsonl

# The resume redoes the steps after the last state; the merged events match the trimmed metrics.jsonl.
$T --tensorboard tb 2>c.err
eq "resumed run exit status" $? 0
check "resumed from a state before the kill" grep -q 'resuming from p/train-state-' c.err
eq "one event file per run" "$(ls tb | grep -c '^events\.out\.tfevents\.')" 3
last=$(sed -n 's/.*finished at step \([0-9]*\).*/\1/p' c.err)
steps=$(sed 's/.*"step":\([0-9]*\).*/\1/' p/metrics.jsonl | tr '\n' ' ')
eq "metrics.jsonl has each step once" "$steps" "$(seq 0 $((last - 1)) | tr '\n' ' ')"
check "events = metrics.jsonl after the resume (redone steps have the new values)" tbcheck tb p/metrics.jsonl

# A failed write (test hook: /dev/full replaces the event file from step 5 on) is one warning; training goes on.
mkdir q
cp init.safetensors q/rwkv-init.safetensors
RWKV7C_TRAIN_TB_FAIL=5 rwkv-train --proj_dir q --data_file d --ctx_len 32 --micro_bsz 4 --exit_after_steps 12 --tensorboard tbq 2>q.err
eq "a failed event write: exit status 0" $? 0
check "... one warning saying why" test "$(grep -c 'tfevents.*write failed: No space left on device; TensorBoard logging stopped, training goes on' q.err)" -eq 1
eq "... metrics.jsonl has every step" "$(wc -l < q/metrics.jsonl)" 12
check "... the events hold steps 0..4" tbcheck tbq q/metrics.jsonl 0 4

# A DIR that cannot be created: an error before any step.
mkdir r
cp init.safetensors r/rwkv-init.safetensors
: > afile
expect_fail "--tensorboard under a regular file" "afile/tb" rwkv-train --proj_dir r --data_file d --ctx_len 32 --micro_bsz 4 --exit_after_steps 3 --tensorboard afile/tb
check "... no step trained" test ! -s r/metrics.jsonl
# "" (the value an empty make variable gives) is off.
rwkv-train --proj_dir r --data_file d --ctx_len 32 --micro_bsz 4 --exit_after_steps 3 --tensorboard "" 2>/dev/null
eq "--tensorboard \"\": exit status" $? 0
check "... writes no event file" test -z "$(find . -name 'events.out.tfevents.*' -newer afile)"
rwkv-train --proj_dir r --data_file d --ctx_len 32 --micro_bsz 4 --dry-run --tensorboard tbd --wandb proj >plan.txt 2>/dev/null
check "--dry-run names the monitors" grep -q '^monitors     TensorBoard events in tbd, wandb project proj$' plan.txt
check "... and creates no event directory" test ! -e tbd

# wandb's own TensorBoard reader (wandb-core, behind sync_tensorboard) imports
# the files with the same values; optional: needs the wandb package (build/pip-wandb).
WANDB_PIP=${WANDB_PIP_DIR:-$TOP/build/pip-wandb}
if PYTHONPATH="$WANDB_PIP" "$PYTHON" -c 'import wandb' 2>/dev/null; then
    mkdir w
    cp init.safetensors w/rwkv-init.safetensors
    WANDB_MODE=offline WANDB_CONFIG_DIR="$PWD/wb-config" WANDB_CACHE_DIR="$PWD/wb-cache" WANDB_DATA_DIR="$PWD/wb-data" \
        PYTHONPATH="$WANDB_PIP" "$PYTHON" "$TOP/tests/ref/wandb_tb_import.py" wb tbw \
        rwkv-train --proj_dir w --data_file d --ctx_len 32 --micro_bsz 4 --exit_after_steps 20 --tensorboard tbw >w.log 2>&1
    rc=$?
    if [ $rc -eq 77 ]; then echo "skipped: $(tail -n 1 w.log)"; else
        eq "wandb TensorBoard import: exit status" $rc 0
        check "... imported every step with metrics.jsonl's values" sh -c '
            PYTHONPATH="$1" "$2" "$3/tests/ref/wandb_history.py" wb/wandb/offline-run-*/run-*.wandb > wh.json &&
            "$2" - wh.json w/metrics.jsonl <<"PY"
import json, struct, sys
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
rows = json.load(open(sys.argv[1]))["rows"]
recs = [json.loads(l) for l in open(sys.argv[2])]
assert [r["global_step"] for r in rows] == [r["step"] for r in recs], [r.get("global_step") for r in rows]
for row, rec in zip(rows, recs):
    for k in ("loss", "lr", "grad_norm", "tokens_per_s"):
        assert f32(row[k]) == f32(rec[k]), (rec["step"], k, row[k], rec[k])
print("wandb imported %d steps" % len(rows))
PY' - "$WANDB_PIP" "$PYTHON" "$TOP"
    fi
else
    echo "wandb Python package not in $WANDB_PIP: its TensorBoard import not checked"
fi
finish
