#!/bin/sh
# jsonl-shuf on inputs larger than its memory budget (external shuffle):
# permutations per copy, reproducible, temporary files in -T DIR and gone after,
# also when killed; lines longer than the budget; errors.
. "$TOP/tests/lib.sh"
mkdir tmpd
"$PYTHON" - <<'EOF'
import random
r = random.Random(7)
with open("big.jsonl", "w") as f:        # about 20 MB, 200k distinct lines
    for i in range(200000):
        f.write('{"text": "line %d %s"}\n' % (i, "x" * r.randrange(150)))
with open("huge_lines.txt", "w") as f:   # lines far over a 64K budget among short ones
    for i in range(3000):
        f.write("short %d\n" % i)
        if i % 150 == 0:
            f.write("L%d " % i + "y" * r.randrange(100000, 300000) + "\n")
EOF
lines=$(wc -l <big.jsonl)
sort big.jsonl >big.sorted

# ---- 20 MB under -m 1M ----
jsonl-shuf -v -n 2 --seed 21 -m 1M -T tmpd big.jsonl >ext.out 2>ext.err
check "over budget: shuffled through temporary files" grep -q "through temporary files" ext.err
eq "2 copies: line count" "$(wc -l <ext.out)" $((2 * lines))
head -n "$lines" ext.out >c0; tail -n "$lines" ext.out >c1
check "copy 1 is a permutation" sh -c 'sort c0 | cmp -s - big.sorted'
check "copy 2 is a permutation" sh -c 'sort c1 | cmp -s - big.sorted'
check "copies differ" sh -c '! cmp -s c0 c1'
check "copies are shuffled" sh -c '! cmp -s c0 big.jsonl'
eq "temporary directory empty afterwards" "$(ls -A tmpd | wc -l)" 0
jsonl-shuf -n 2 --seed 21 -m 1M -T tmpd -o ext2.out big.jsonl
check "external mode: same seed, same bytes (-o)" cmp -s ext.out ext2.out
jsonl-shuf -n 2 --seed 22 -m 1M -T tmpd big.jsonl >ext3.out
check "external mode: other seed, other bytes" sh -c '! cmp -s ext.out ext3.out'
zstd -q -c big.jsonl >big.jsonl.zst
TMPDIR=tmpd jsonl-shuf -n 2 --seed 21 -m 1M <big.jsonl.zst >extz.out
check "external mode from zstd on stdin (TMPDIR)" cmp -s ext.out extz.out
jsonl-shuf -v -n 1 --seed 21 big.jsonl >mem.out 2>mem.err
check "default budget (1 GiB) keeps 20 MB in memory" grep -q "in memory" mem.err
eq "temporary directory still empty" "$(ls -A tmpd | wc -l)" 0

# ---- lines longer than the whole budget ----
jsonl-shuf -v -n 2 --seed 5 -m 64K -T tmpd huge_lines.txt >hl.out 2>hl.err
hl=$(wc -l <huge_lines.txt)
sort huge_lines.txt >hl.sorted
check "long lines over budget: copy 1 is a permutation" sh -c "head -n $hl hl.out | sort | cmp -s - hl.sorted"
check "long lines over budget: copy 2 is a permutation" sh -c "tail -n $hl hl.out | sort | cmp -s - hl.sorted"

# ---- errors ----
expect_fail "missing -T directory" "jsonl-shuf: nodir: cannot create temporary file" \
    jsonl-shuf --seed 1 -m 1M -T nodir -o fail.out big.jsonl
check "no output left after a temporary-file error" test ! -e fail.out
check "nothing matching fail.out* left" sh -c '! ls fail.out* 2>/dev/null | grep -q .'

# ---- killed while reading (spool open) and while writing ----
mkfifo feed
jsonl-shuf --seed 1 -m 1M -T tmpd -o killed.out <feed &
pid=$!
exec 3>feed
cat big.jsonl >&3     # the input stays open: the tool waits for more, its spool open
sleep 0.5
check "the spool lives in -T DIR (unlinked)" sh -c "ls -l /proc/$pid/fd | grep -q '$(pwd)/tmpd/.*(deleted)'"
kill -TERM $pid
wait $pid; rc=$?
exec 3>&-
eq "killed while reading: exit by SIGTERM" $rc 143
eq "killed while reading: temporary directory empty" "$(ls -A tmpd | wc -l)" 0
check "killed while reading: no output" sh -c '! ls killed.out* 2>/dev/null | grep -q .'
jsonl-shuf --seed 1 -n 40 -m 1M -T tmpd -o killed2.out big.jsonl &
pid=$!
sleep 0.5
if kill -TERM $pid 2>/dev/null; then
    wait $pid; rc=$?
    eq "killed while writing: exit by SIGTERM" $rc 143
    check "killed while writing: no output, no partial temp" sh -c '! ls killed2.out* 2>/dev/null | grep -q .'
else
    wait $pid
    echo "note: the run finished before the signal; kill check skipped"
fi
eq "temporary directory empty at the end" "$(ls -A tmpd | wc -l)" 0
finish
