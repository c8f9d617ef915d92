#!/bin/sh
# jsonl-shuf: statistical sanity of uniformity, in memory and external.
# Seeds are fixed, so results are deterministic (never flaky); the bounds are
# chi-square quantiles at about 1e-6 (upper: biased; lower: too regular).
. "$TOP/tests/lib.sh"

# chi2 CELLS LO HI: reads CELLS counts (one per line, all with the same expected
# value) and prints "ok" when LO < chi-square < HI.
chi2() {
    awk -v cells="$1" -v lo="$2" -v hi="$3" '
        { c[NR] = $1; total += $1 }
        END {
            if (NR != cells) { print "cells " NR " != " cells; exit }
            e = total / NR
            for (i = 1; i <= NR; i++) x += (c[i] - e) ^ 2 / e
            if (x > lo && x < hi) print "ok"; else print "chi2 " x " not in (" lo ", " hi ")"
        }'
}
# perm_counts LINES_PER_COPY: count of every distinct copy (as one joined key)
perm_counts() {
    awk -v k="$1" '{ key = key $0 "|" } NR % k == 0 { n[key]++; key = "" }
                   END { for (p in n) print n[p] }'
}
# pos_counts LINES_PER_COPY LINE: how often LINE sits at each position 1..k
pos_counts() {
    awk -v k="$1" -v want="$2" '{ pos = (NR - 1) % k + 1 } $0 == want { n[pos]++ }
                                END { for (i = 1; i <= k; i++) print n[i] + 0 }'
}

printf 'a\nb\nc\nd\n' >four.txt
# All 24 orders of 4 lines over 24000 copies (expected 1000 each), in memory ...
jsonl-shuf -n 24000 --seed 1 four.txt >mem4.out
eq "in memory: all 24 permutations uniform" "$(perm_counts 4 <mem4.out | chi2 24 5 70)" ok
# ... and through the external shuffle (a 40-byte budget forces 2 levels of buckets)
jsonl-shuf -v -n 24000 --seed 1 -m 40 four.txt >ext4.out 2>ext4.err
check "tiny budget goes external" grep -q "temporary files" ext4.err
eq "external: all 24 permutations uniform" "$(perm_counts 4 <ext4.out | chi2 24 5 70)" ok

# Position of the first and last line among 10, external, 5000 copies
seq 0 9 | sed 's/^/l/' >ten.txt
jsonl-shuf -n 5000 --seed 2 -m 64 ten.txt >ext10.out
eq "external: position of l0 uniform" "$(pos_counts 10 l0 <ext10.out | chi2 10 0.5 50)" ok
eq "external: position of l9 uniform" "$(pos_counts 10 l9 <ext10.out | chi2 10 0.5 50)" ok
# The whole 10x10 line-by-position table ((10-1)*(10-1) = 81 degrees of freedom)
tab=$(awk '{ n[$0 " " (NR - 1) % 10]++ } END { for (k in n) print n[k] }' ext10.out)
eq "external: line-by-position table uniform" "$(echo "$tab" | chi2 100 30 160)" ok

# Over many seeds: the first copy of 3 lines for seeds 1..600 (expected 100 per order)
printf 'x\ny\nz\n' >three.txt
s=1
while [ $s -le 600 ]; do jsonl-shuf --seed $s three.txt; s=$((s + 1)); done >seeds.out
eq "over 600 seeds: the 6 orders uniform" "$(perm_counts 3 <seeds.out | chi2 6 0.05 40)" ok

# The bounds can fail: a biased table is rejected.
eq "chi2 helper rejects a biased table" "$(printf '1100\n900\n1000\n1000\n' | chi2 4 0.01 20)" "chi2 20 not in (0.01, 20)"
finish
