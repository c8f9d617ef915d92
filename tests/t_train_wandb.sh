#!/bin/sh
# rwkv-train --wandb PROJECT: rwkv-wandb-bridge logs metrics.jsonl with the
# real wandb SDK (WANDB_MODE=offline).  What the SDK wrote is read back from
# each offline run's .wandb transaction log (tests/ref/wandb_history.py, with
# wandb's own protobuf classes): every step of the run with the values of
# metrics.jsonl, the run configuration, and one run id (PROJ_DIR/wandb-run-id)
# shared by a first run, a resumed run stopped by SIGINT sent to its process
# group (the bridge, in a group of its own, still sends every record) and a
# resumed run killed with SIGKILL (the bridge sees the trainer gone, sends the
# rest and finishes).  Without the wandb module, without python3, or when the
# bridge dies, one line says so and training goes on; a bridge slow to finish
# gets a note, and an interrupt ends the wait for it; --wandb "" is off.
# The SDK checks skip (77) without the wandb package: `make deps` fetches it
# into build/pip-wandb (or set WANDB_PIP_DIR).
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
WANDB_PIP=${WANDB_PIP_DIR:-$TOP/build/pip-wandb}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# The bridge runs `python3` from PATH: make that the interpreter the package was installed for.
mkdir pybin
ln -s "$(command -v "$PYTHON")" pybin/python3
PATH="$PWD/pybin:$PATH"
# wandb keeps settings and caches under HOME by default: keep them here.
export WANDB_MODE=offline WANDB_CONFIG_DIR="$PWD/wb-config" WANDB_CACHE_DIR="$PWD/wb-cache" WANDB_DATA_DIR="$PWD/wb-data"
$U copy d 3000 7 || exit 1     # ~260 steps of 128 tokens
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
newdir() { mkdir "$1" && cp init.safetensors "$1/rwkv-init.safetensors"; }
short="--data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0 --exit_after_steps 12"

# ---- without the SDK: one warning each, training goes on
newdir n1
mkdir fakewandb
echo 'raise ImportError("no wandb here (test)")' > fakewandb/wandb.py
PYTHONPATH="$PWD/fakewandb" rwkv-train --proj_dir n1 $short --wandb proj 2>n1.err
eq "wandb module missing: exit status" $? 0
eq "... one warning with the install hint" "$(grep -c 'warning: --wandb: the wandb Python module is not installed (install it with `pip install wandb`)' n1.err)" 1
eq "... nothing else about wandb" "$(grep -c wandb n1.err)" 1
eq "... every step trained" "$(wc -l < n1/metrics.jsonl)" 12
newdir n2
PATH="$BIN" "$BIN/rwkv-train" --proj_dir n2 $short --wandb proj 2>n2.err
eq "python3 missing: exit status" $? 0
check "... one warning" test "$(grep -c 'warning: --wandb: the wandb bridge cannot start: python3 not found (see n2/wandb-bridge.log)' n2.err)" -eq 1
eq "... every step trained" "$(wc -l < n2/metrics.jsonl)" 12
# A bridge that dies mid-run is noted once; the run goes on.
newdir n3
printf '#!/bin/sh\nsleep 0.2\nkill -9 $$\n' > dying-bridge
chmod +x dying-bridge
RWKV7C_WANDB_BRIDGE="$PWD/dying-bridge" rwkv-train --proj_dir n3 $short --exit_after_steps 60 --wandb proj 2>n3.err
eq "bridge killed mid-run: exit status" $? 0
eq "... one note" "$(grep -c 'note: the wandb bridge was killed by signal 9 (see n3/wandb-bridge.log); training goes on without wandb' n3.err)" 1
eq "... every step trained" "$(wc -l < n3/metrics.jsonl)" 60
# A bridge slow to finish: after a few seconds one note; an interrupt then
# ends the wait (the run's exit status stays 0) and leaves the bridge running.
newdir n5
printf '#!/bin/sh\nexec sleep 60\n' > slow-bridge
chmod +x slow-bridge
RWKV7C_WANDB_BRIDGE="$PWD/slow-bridge" rwkv-train --proj_dir n5 $short --wandb proj 2>n5.err &
pid=$!
i=0
while ! grep -q 'note: waiting up to 60 s for the wandb bridge' n5.err && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
kill -INT $pid
wait $pid
eq "slow bridge, wait interrupted: the run's exit status" $? 0
check "... says the bridge goes on alone" grep -q 'note: the wandb bridge (pid [0-9]*) is still sending; it finishes on its own (log: n5/wandb-bridge.log)' n5.err
bridge=$(sed -n 's/.*the wandb bridge (pid \([0-9]*\)).*/\1/p' n5.err)
[ -n "$bridge" ] && kill "$bridge" 2>/dev/null
newdir n4
rwkv-train --proj_dir n4 $short --wandb "" 2>n4.err
eq "--wandb \"\": exit status" $? 0
check "... starts no bridge" test ! -e n4/wandb-bridge.log

# ---- the real SDK
if ! PYTHONPATH="$WANDB_PIP" "$PYTHON" -c 'import wandb' 2>/dev/null; then
    echo "wandb Python package not in $WANDB_PIP (make deps fetches it): SDK checks skipped"
    [ $fails -eq 0 ] && exit 77
    finish
fi
export PYTHONPATH="$WANDB_PIP"
T="rwkv-train --proj_dir p --data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0 --save_steps 10 --wandb rwkv7c-test"
newdir p
# history ORDINAL FIRST LAST: the ORDINAL-th offline run (by start time) logged
# exactly metrics.jsonl's records FIRST..LAST, with their values, and its run id is id.txt's.
history() {
    f=$(ls -d p/wandb/offline-run-* | sort | sed -n "${1}p")
    [ -n "$f" ] || { echo "no offline run $1"; return 1; }
    "$PYTHON" "$TOP/tests/ref/wandb_history.py" "$f"/run-*.wandb > "hist$1.json" || return 1
    "$PYTHON" - "hist$1.json" p/metrics.jsonl "$2" "$3" "$(cat p/wandb-run-id)" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
lo, hi, rid = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
recs = [r for r in map(json.loads, open(sys.argv[2])) if lo <= r["step"] <= hi]
rows = h["rows"]
assert h["run_id"] == rid, "run id %s, wandb-run-id %s" % (h["run_id"], rid)
assert [r["_step"] for r in rows] == [r["step"] for r in recs], \
    "steps %s..%s (%d), want %d..%d" % (rows[0]["_step"] if rows else None, rows[-1]["_step"] if rows else None, len(rows), lo, hi)
for row, rec in zip(rows, recs):
    for k in ("loss", "lr", "grad_norm", "tokens", "tokens_per_s"):
        if rec[k] is not None:
            assert row[k] == rec[k], "step %d %s: wandb %r, metrics.jsonl %r" % (rec["step"], k, row[k], rec[k])
        else:
            assert k not in row, "step %d %s: null in metrics.jsonl, %r in wandb" % (rec["step"], k, row[k])
print("run %s: steps %d..%d, values as in metrics.jsonl" % (rid, lo, hi))
PY
}
RWKV7C_TRAIN_POISON=3 $T --exit_after_steps 30 2>p1.err
eq "first run: exit status" $? 0
# (but for the end-of-run note, printed when the bridge needs over 3 s to finish: machine load)
eq "... says nothing about wandb" "$(grep -i wandb p1.err | grep -vc 'note: waiting up to 60 s for the wandb bridge')" 0
check "... wandb-run-id kept in PROJ_DIR" test -s p/wandb-run-id
check "... the offline run has steps 0..29 as in metrics.jsonl" history 1 0 29
check "... run config = the run's settings" "$PYTHON" -c '
import json, sys; c = json.load(open("hist1.json"))["config"]
assert (c["ctx_len"], c["micro_bsz"], c["data_file"], c["resume_step"]) == (32, 4, "d", 0), c'

# Resumed, then SIGINT to the trainer's process group (what Ctrl-C does).
setsid $T 2>p2.err &
pid=$!
i=0
while [ "$(wc -l < p/metrics.jsonl)" -lt 70 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
kill -INT -$pid
wait $pid
eq "resumed run stopped by SIGINT to its group: exit status" $? 75
stop=$(sed -n 's/.*stopped by SIGINT after step \([0-9]*\).*/\1/p' p2.err)
echo "stopped after step $stop"
check "... the same wandb run continued, with every step up to the stop" history 2 30 $((stop - 1))
check "... the config says where it resumed" "$PYTHON" -c '
import json; assert json.load(open("hist2.json"))["config"]["resume_step"] == 30'

# Resumed, then SIGKILL: the bridge sends what the trainer logged and finishes alone.
$T 2>p3.err &
pid=$!
i=0
while [ "$(wc -l < p/metrics.jsonl)" -lt $((stop + 40)) ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid
wait $pid
eq "resumed run killed with SIGKILL" $? 137
i=0
while [ "$(grep -c 'rwkv-wandb-bridge: sent' p/wandb-bridge.log)" -lt 3 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
last=$(tail -n 1 p/metrics.jsonl | sed 's/.*"step":\([0-9]*\).*/\1/')
check "... the bridge finished on its own, and the run has every step up to $last" history 3 "$stop" "$last"
eq "three offline runs, one run id" "$(ls -d p/wandb/offline-run-*-"$(cat p/wandb-run-id)" | wc -l)" 3
# Starting over (--resume never --force) starts a new wandb run.
old_id=$(cat p/wandb-run-id)
$T --resume never --force --exit_after_steps 3 2>p4.err
eq "--resume never --force: exit status" $? 0
check "... a new wandb run id" test -s p/wandb-run-id -a "$(cat p/wandb-run-id)" != "$old_id"
check "... its offline run has steps 0..2" history 4 0 2
finish
