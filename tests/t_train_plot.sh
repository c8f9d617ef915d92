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

# Degenerate ranges must neither hang nor flood the output: one huge value (the
# +-0.5 padding is lost to rounding), steps past 2^53, spans that overflow a
# double, non-finite and null values, a negative learning rate.
cat >svgok.py <<'P'
import sys, math, xml.dom.minidom as m
d = m.parse(sys.argv[1])
for l in d.getElementsByTagName("polyline"):
    for p in l.getAttribute("points").split():
        x, y = map(float, p.split(","))
        assert math.isfinite(x) and math.isfinite(y) and 0 <= x <= 900 and 0 <= y <= 620, p
for l in d.getElementsByTagName("line"):
    for a in "x1", "y1", "x2", "y2":
        v = float(l.getAttribute(a))
        assert math.isfinite(v) and -1 <= v <= 621 + 300, (a, v)
labels = [t.firstChild.data for t in d.getElementsByTagName("text")
          if t.firstChild and t.getAttribute("text-anchor") in ("end", "middle") and not t.getAttribute("transform")]
ticks = [t for t in labels if t not in ("step",) and "steps" not in t and "loss," not in t]
assert 2 <= len(ticks) <= 150, len(ticks)
P
plot_degenerate() {  # NAME JSONL-TEXT
    printf '%s\n' "$2" >"$1.jsonl"
    timeout 20 metrics-plot "$1.jsonl" 2>"$1.err" | head -c 1000000 >"$1.svg"
    size=$(wc -c <"$1.svg")
    if [ "$size" -ge 200000 ]; then bad "$1: $size bytes of SVG"; return; fi
    check "$1: sane SVG" "$PYTHON" svgok.py "$1.svg"
}
plot_degenerate "one loss of 1e20" '{"step":0,"loss":1e20,"lr":0.1}'
plot_degenerate "every step 1e17" '{"step":100000000000000000,"loss":1,"lr":0.1}
{"step":100000000000000000,"loss":2,"lr":0.1}'
plot_degenerate "steps 16 apart past 2^53" '{"step":100000000000000000,"loss":1,"lr":0.1}
{"step":100000000000000016,"loss":2,"lr":0.2}'
plot_degenerate "spans past the double range" '{"step":0,"loss":1e308,"lr":1e308}
{"step":1,"loss":-1e308,"lr":1e-300}
{"step":2,"loss":1.7e308,"lr":0}'
plot_degenerate "null and overflowing values" '{"step":0,"loss":null,"lr":null}
{"step":1,"loss":1e999,"lr":null}
{"step":2,"loss":-1e999,"lr":1e999}'
plot_degenerate "tiny equal values" '{"step":0,"loss":1e-300,"lr":1e-300}
{"step":5,"loss":1e-300,"lr":1e-300}'
plot_degenerate "negative learning rate" '{"step":0,"loss":1,"lr":-0.5}
{"step":1,"loss":2,"lr":0.5}'
# the y labels of a huge constant loss are distinct numbers, not all "1e+20"
printf '{"step":0,"loss":1e20,"lr":0.1}\n' >c.jsonl
timeout 20 metrics-plot c.jsonl 2>/dev/null | head -c 1000000 >c.svg
n_all=$(grep -c 'text-anchor="end">[-0-9]' c.svg)
n_uniq=$(grep 'text-anchor="end">[-0-9]' c.svg | sed 's/.*>\(.*\)<.*/\1/' | sort -u | wc -l)
eq "distinct tick labels" "$n_uniq" "$n_all"
# a narrow but real range (a converged loss) still fills the panel: it is not widened
printf '{"step":0,"loss":3.2001,"lr":0.1}\n{"step":1,"loss":3.2009,"lr":0.1}\n{"step":2,"loss":3.2005,"lr":0.1}\n' >n.jsonl
metrics-plot -s 1 n.jsonl >n.svg
check "narrow loss range fills the panel" "$PYTHON" -c '
import sys, xml.dom.minidom as m
raw = m.parse("n.svg").getElementsByTagName("polyline")[0].getAttribute("points").split()
ys = [float(p.split(",")[1]) for p in raw]
assert max(ys) - min(ys) > 250, ys'
: >empty.jsonl
expect_fail "empty file" "empty.jsonl: no records" metrics-plot empty.jsonl
finish
