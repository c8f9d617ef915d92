#!/bin/sh
# metrics-plot reads each line as one strict JSON object (lib/jsonl.h): torn,
# spliced or non-object lines are refused with FILE:LINE; null losses, other
# members, spacing and blank lines are accepted.  CLI voice: -V, bad option values.
. "$TOP/tests/lib.sh"
good='{"step":0,"loss":3,"lr":0.001}'
refused() {  # DESCRIPTION EXPECTED-MESSAGE LINE
    rm -f r.svg; printf '%s\n%s\n' "$good" "$3" >r.jsonl
    expect_fail "$1" "metrics-plot: r.jsonl:2: $2" metrics-plot -o r.svg r.jsonl
    check "$1: no output file" test ! -e r.svg
}
refused "line without its closing brace" "invalid JSON at column 26" '{"step":1,"loss":2,"lr":1'
refused "two spliced records" "invalid JSON at column 27" '{"step":65,"loss":2.39,"{"step":114,"loss":2.1,"lr":1}'
refused "two records on one line" "invalid JSON at column 28: text after the JSON value" '{"step":1,"loss":2,"lr":1} {"step":2,"loss":2,"lr":1}'
refused "text around the members" "invalid JSON at column 1" 'xx "step":1,"loss":2,"lr":1 yy'
refused "an array" "record is not a JSON object" '[1,2,3]'
refused "a number" "record is not a JSON object" '7'
refused "NaN is not JSON" "invalid JSON at column 18: NaN and Infinity are not JSON" '{"step":1,"loss":NaN,"lr":1}'
refused "bare inf is not JSON" "invalid JSON" '{"step":1,"loss":inf,"lr":1}'
refused "a string loss" '"loss" is not a number or null' '{"step":1,"loss":"2","lr":1}'
refused "a null step" '"step" is not a number' '{"step":null,"loss":2,"lr":1}'
refused "an overflowing step" '"step" is not a finite number' '{"step":1e999,"loss":2,"lr":1}'
refused "no lr" 'not a metrics record (needs "step", "loss" and "lr")' '{"step":1,"loss":2}'
# a "step" inside a nested object is not the record's step
refused "nested step only" 'not a metrics record' '{"x":{"step":1},"loss":2,"lr":1}'
refused "invalid UTF-8" "invalid UTF-8" "$(printf '{"step":1,"loss":2,"lr":1,"n":"\377"}')"

# accepted: null loss and lr, other members of any type, spacing, blank lines, a repeated key (the last wins)
cat >ok.jsonl <<'J'

{"step":0,"loss":4.0,"lr":1e-4,"grad_norm":null,"skipped":false,"note":"a \"b\" {c}","v":[1,{"step":9}]}
  { "step" : 1 , "loss" : null , "lr" : null }

{"step":2,"loss":2.5e0,"lr":-0.0,"step":3}
J
check "valid records accepted" metrics-plot -s 1 -o ok.svg ok.jsonl
check "...3 records, last loss 2.5" grep -q "3 steps, last loss 2.5000" ok.svg
check "...the repeated key's last value is the step" "$PYTHON" -c '
import xml.dom.minidom as m
raw = m.parse("ok.svg").getElementsByTagName("polyline")[0].getAttribute("points").split()
xs = [float(p.split(",")[0]) for p in raw]
assert len(xs) == 2 and xs[1] == 870.0, xs'

# one CLI voice
eq "-V is --version" "$(metrics-plot -V)" "metrics-plot (rwkv7c) 0.1.0"
expect_fail "-s 0 refused" "metrics-plot: invalid value '0' for --smooth" metrics-plot -s 0 ok.jsonl
expect_fail "two inputs refused" "Try 'metrics-plot --help'" metrics-plot ok.jsonl ok.jsonl
check "--help starts with Usage:" sh -c 'metrics-plot --help | head -n 1 | grep -q "^Usage: metrics-plot"'
finish
