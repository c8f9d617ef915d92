#!/bin/sh
# metrics-plot: metrics.jsonl -> SVG with the loss (raw + smoothed) and LR curves.
. "$TOP/tests/lib.sh"
cat >m.jsonl <<'J'
{"step":0,"loss":4.0,"lr":0.0001,"grad_norm":1.5,"tokens":128,"tokens_per_s":1000.0,"time":1.0}
{"step":1,"loss":3.0,"lr":0.0002,"grad_norm":1.2,"tokens":256,"tokens_per_s":1000.0,"time":2.0}
{"step":2,"loss":null,"lr":0.0003,"grad_norm":null,"tokens":384,"tokens_per_s":1000.0,"time":3.0,"skipped":true}
{"step":3,"loss":2.0,"lr":0.0003,"grad_norm":0.9,"tokens":512,"tokens_per_s":1000.0,"time":4.0}
{"step":4,"loss":1.0,"lr":0.0001,"grad_norm":0.7,"tokens":640,"tokens_per_s":1000.0,"time":5.0}
J
check "plot to a file" metrics-plot -s 2 -t 'run <1>' -o p.svg m.jsonl
check "stdin to stdout" sh -c 'metrics-plot -s 2 -t "run <1>" <m.jsonl >q.svg'
check "same output" cmp p.svg q.svg
cat >check.py <<'P'
import sys, xml.dom.minidom as m
d = m.parse(sys.argv[1])
lines = d.getElementsByTagName("polyline")
assert len(lines) == 3, len(lines)
raw, avg, lr = [[tuple(map(float, p.split(","))) for p in l.getAttribute("points").split()] for l in lines]
assert len(raw) == 4 and len(avg) == 5 and len(lr) == 5, (len(raw), len(avg), len(lr))
# loss falls -> y grows down the page; x grows with the step
assert [p[1] for p in raw] == sorted(p[1] for p in raw), raw
assert [p[0] for p in lr] == sorted(p[0] for p in lr)
# LR peak is the highest point of the LR curve (smallest y), at steps 2 and 3
ys = [p[1] for p in lr]
assert ys[2] == ys[3] == min(ys), ys
texts = " ".join(t.firstChild.data for t in d.getElementsByTagName("text") if t.firstChild)
assert "run <1>" in texts and "5 steps" in texts, texts
print("svg ok")
P
check "SVG structure" "$PYTHON" check.py p.svg
check "refuses to overwrite" sh -c '! metrics-plot -o p.svg m.jsonl 2>/dev/null'
echo '{"step":0,"lr":1}' >bad.jsonl
expect_fail "record without loss" "bad.jsonl:1: not a metrics record" metrics-plot bad.jsonl
expect_fail "empty input" "no records" metrics-plot /dev/null
check "--help" metrics-plot --help
finish
