#!/bin/sh
# pipelines/demo.sh's loss summary (`demo.sh summary`) averages only numeric
# losses: a step skipped as non-finite is logged as "loss":null and must not
# count as a zero.  The means are compared with Python's over the same records.
. "$TOP/tests/lib.sh"
mkdir -p d/run
m=d/run/metrics.jsonl
i=0
while [ $i -lt 25 ]; do
    case $i in
        1|4|22) printf '{"step":%d,"loss":null,"lr":0.001,"grad_norm":null,"skipped":true}\n' $i ;;
        7)      printf '{"step":%d,"loss":1.25e+01,"lr":0.001,"grad_norm":3.5}\n' $i ;;
        *)      printf '{"step":%d,"loss":%d.%03d,"lr":0.001,"grad_norm":1.5}\n' $i $((11 - i / 3)) $((i * 37 % 1000)) ;;
    esac
    i=$((i + 1))
done >$m
want=$("$PYTHON" -c '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
def mean(rs):
    v = [r["loss"] for r in rs if r["loss"] is not None]
    return "%.3f" % (sum(v) / len(v))
print("mean loss: first 10 steps %s, last 10 steps %s (3 skipped non-finite steps not counted)" % (mean(recs[:10]), mean(recs[-10:])))
' $m)
got=$(DEMO_DIR=$PWD/d sh "$TOP/pipelines/demo.sh" summary 2>&1)
eq "summary with null losses" "$got" "$want"

# Without skipped steps the summary has no note.
grep -v null $m >d/run/m2 && mv d/run/m2 $m
want=$("$PYTHON" -c '
import json, sys
v = [json.loads(l)["loss"] for l in open(sys.argv[1])]
print("mean loss: first 10 steps %.3f, last 10 steps %.3f" % (sum(v[:10]) / 10, sum(v[-10:]) / 10))
' $m)
got=$(DEMO_DIR=$PWD/d sh "$TOP/pipelines/demo.sh" summary 2>&1)
eq "summary without null losses" "$got" "$want"
finish
