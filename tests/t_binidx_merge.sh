#!/bin/sh
# binidx-merge: shards merged in argument order give the bytes of one run over the
# concatenated input (the golden demo bytes); atomic (-f failing at commit keeps the old
# dataset; directories made for a failed run go again); -f; dtype promotion; CLI voice.
. "$TOP/tests/lib.sh"
vocab=$TOP/share/rwkv7c/rwkv_vocab_v20230424.txt
demo=$TOP/examples/demo.jsonl
helper=$TOP/build/tests/binidx_test
sha() { sha256sum "$1" | cut -d' ' -f1; }
GOLD_BIN=2ee88ff54143f5fa5581988d265d407aac594997f29ab74b1e63bb3b2f86e796
GOLD_IDX=15d4d0632042887f98398f15ea7b2da85c87c5f21d65c15561fdd7d602fdcd62
none_left() { ! ls -d "$1".bin "$1".idx "$1".*.tmp.* "$(dirname "$1")/.$(basename "$1")".* >/dev/null 2>&1; }
no_temps() { ! ls -d "$1".*.tmp.* "$(dirname "$1")/.$(basename "$1")".* >/dev/null 2>&1; }
tokenize() {   # JSONL -> token stream, with rwkv-tokenize when built
    if [ -x "$BIN/rwkv-tokenize" ]; then rwkv-tokenize "$1"
    else "$PYTHON" "$TOP/tests/ref/trie_tokenizer.py" "$vocab" jsonl < "$1" | "$helper" --stream; fi
}
# Three shards of 60 / 1 / 121 documents.
sed -n '1,60p' "$demo" > a.jsonl; sed -n '61p' "$demo" > b.jsonl; sed -n '62,$p' "$demo" > c.jsonl
for s in a b c; do tokenize $s.jsonl | binidx-write -q $s; done
binidx-merge -o all a b c 2> merge.err; eq "merge exits 0" $? 0
eq "merged .bin = golden single run" "$(sha all.bin)" $GOLD_BIN
eq "merged .idx = golden single run" "$(sha all.idx)" $GOLD_IDX
check "summary" grep -q "3 datasets, 182 documents, 66833 tokens (uint16)" merge.err
binidx-merge -q -o cab c a b
check "order follows the arguments" sh -c 'cat c.bin a.bin b.bin | cmp -s - cab.bin'
binidx-merge -q -o one a.bin
check "a single input is copied" sh -c 'cmp -s a.bin one.bin && cmp -s a.idx one.idx'
# An empty dataset merges as nothing.
"$helper" --stream < /dev/null | binidx-write -q empty
binidx-merge -q -o withempty empty a empty b c empty
eq "empty inputs change nothing (.idx)" "$(sha withempty.idx)" $GOLD_IDX

expect_fail "refuses to overwrite" "all.bin: exists" binidx-merge -o all a b c
check "-f replaces" binidx-merge -q -f -o all c
check "...with the new contents" cmp -s all.bin c.bin
# A bad input: error naming it, no output.
head -c 100 b.bin > bad.bin; cp b.idx bad.idx
expect_fail "truncated input" "bad.bin: 100 bytes" binidx-merge -o out a bad c
check "...no output" none_left out
expect_fail "missing input" "missing.idx" binidx-merge -o out a missing
check "...no output" none_left out
# uint16 + int32 -> int32, every token kept.
printf '1 70000 0\n' | "$helper" --stream | binidx-write -q wide
printf '3 4 0\n' | "$helper" --stream | binidx-write -q narrow
binidx-merge -q -o mixed narrow wide narrow
eq "mixed dtype code" "$(od -An -tu1 -j17 -N1 mixed.idx | tr -d ' ')" 4
eq "mixed tokens" "$(od -An -tu4 -v mixed.bin | tr -s ' \n' '  ' | sed 's/^ //; s/ $//')" "3 4 0 1 70000 0 3 4 0"
printf '3 4 0\n1 70000 0\n3 4 0\n' | "$helper" --stream | binidx-write -q mixed1
check "mixed merge = one run" sh -c 'cmp -s mixed.bin mixed1.bin && cmp -s mixed.idx mixed1.idx'
expect_fail "empty output prefix refused" "names no file" binidx-merge -o "" a
check "...no hidden .bin/.idx" sh -c '! test -e .bin && ! test -e .idx'
expect_fail "directory output prefix refused" "names no file" binidx-merge -o newdir/ a
check "...no directory made" sh -c '! test -e newdir'
# D2: -f whose merged files do not fit (ulimit -f, as a full disk) keeps the old dataset.
binidx-merge -q -o old b
sha256sum old.bin old.idx > old.sum
"$PYTHON" -c 'print("1 2 3 0\n" * 1000, end="")' | "$helper" --stream | binidx-write -q k1000
for blocks in 1 20 32 60 78; do   # merged .bin 16000 bytes, .idx 40042: fails in either
    expect_fail "-f over a dataset, ulimit -f $blocks" "write failed: File too large" \
        sh -c "ulimit -f $blocks; exec binidx-merge -f -q -o old k1000 k1000"
    check "...old .bin and .idx intact" sha256sum -c --quiet old.sum
    check "...no temporaries" no_temps old
done
# O6: directories made for the output go again when the run fails.
expect_fail "write error under new directories" "write failed" \
    sh -c 'ulimit -f 1; exec binidx-merge -q -o made1/made2/m a b c'
check "...the directories it made are removed" test ! -e made1

binidx-merge a b 2>/dev/null; eq "no -o: exit 2" $? 2
binidx-merge -o x 2>/dev/null; eq "no inputs: exit 2" $? 2
expect_fail "no -o: says so" "missing -o OUT" binidx-merge a b
eq "--version" "$(binidx-merge --version)" "binidx-merge (rwkv7c) 0.1.0"
eq "-V is --version" "$(binidx-merge -V)" "binidx-merge (rwkv7c) 0.1.0"
finish
