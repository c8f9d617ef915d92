#!/bin/sh
# Runs each libFuzzer target briefly over its seed corpus (tests/fuzz/corpus/NAME).
secs=${1:-10}
top=$(cd "$(dirname "$0")/.." && pwd)
rc=0 pass=0 failn=0
for f in "$top"/build/fuzz/*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus="$top/tests/fuzz/corpus/$name"
    work=$(mktemp -d); [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if "$f" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 "$work" >"$work.log" 2>&1; then
        echo "PASS fuzz $name ($(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work.log") runs in ${secs}s)"; pass=$((pass+1))
    else
        echo "FAIL fuzz $name"; tail -n 30 "$work.log"; rc=1; failn=$((failn+1))
    fi
    rm -rf "$work" "$work.log"
done
echo "fuzz: $pass passed, $failn failed"
exit $rc
