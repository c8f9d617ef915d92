#!/bin/sh
# Runs each libFuzzer target briefly over its seed corpus (tests/fuzz/corpus/NAME).
secs=${1:-10}
top=$(cd "$(dirname "$0")/.." && pwd)
rc=0
for f in "$top"/build/fuzz/*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus="$top/tests/fuzz/corpus/$name"
    work=$(mktemp -d); [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if "$f" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 "$work" >"$work.log" 2>&1; then
        echo "PASS fuzz $name ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$work.log" | grep -o '[0-9]*$') runs)"
    else
        echo "FAIL fuzz $name"; tail -n 30 "$work.log"; rc=1
    fi
    rm -rf "$work" "$work.log"
done
exit $rc
