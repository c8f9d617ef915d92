#!/bin/sh
# The README pipeline end to end: jsonl-shuf | rwkv-tokenize | binidx-write && magic-prime,
# byte-identical to make_data.py (tests/ref/make_data.py) for the same seed.
. "$TOP/tests/lib.sh"
for t in jsonl-shuf rwkv-tokenize binidx-write magic-prime; do
    [ -x "$BIN/$t" ] || { echo "$t not built"; exit 77; }
done
demo=$TOP/examples/demo.jsonl
sha() { sha256sum "$1" | cut -d' ' -f1; }
none_left() { ! ls -d "$1".bin "$1".idx "$1".*.tmp.* "$(dirname "$1")/.$(basename "$1")".* >/dev/null 2>&1; }

# 3 shuffled copies, seed 42: the same bytes and the same flags as make_data.py with random.seed(42).
jsonl-shuf -n 3 --seed 42 "$demo" | rwkv-tokenize | binidx-write -q d3
"$PYTHON" "$TOP/tests/ref/make_data.py" --seed 42 --quiet --out ref3 "$demo" 3 4096 > ref3.log
eq "seeded 3-copy .bin = make_data.py" "$(sha d3.bin)" "$(sha ref3.bin)"
eq "seeded 3-copy .idx = make_data.py" "$(sha d3.idx)" "$(sha ref3.idx)"
eq "magic-prime = make_data.py's line" "$(magic-prime -c 4096 d3 | tail -n 1)" "$(grep -e '^--my_exit_tokens' ref3.log)"
eq "3 copies: 200499 tokens, magic_prime 47" "$(magic-prime -c 4096 d3 | tail -n 1)" \
   "--my_exit_tokens 200499 --magic_prime 47 --ctx_len 4096"
check "3 copies: 546 documents" sh -c 'binidx-info d3 | grep -qx "documents: 546"'
check "copies differ in order" sh -c '[ "$(head -c 133666 d3.bin | sha256sum)" != "$(tail -c 133666 d3.bin | sha256sum)" ]'
# Two tokenizer threads: the same bytes.
jsonl-shuf -n 3 --seed 42 "$demo" | rwkv-tokenize -j 2 | binidx-write -q d3j
check "-j 2 gives the same dataset" sh -c 'cmp -s d3.bin d3j.bin && cmp -s d3.idx d3j.idx'

# The README's command, 30 copies.
mkdir data
jsonl-shuf -n 30 --seed 7 "$demo" 2>/dev/null | rwkv-tokenize | binidx-write -q data/demo && \
    magic-prime -c 4096 data/demo > flags.txt
eq "30 copies: flags" "$(tail -n 1 flags.txt)" "--my_exit_tokens 2004990 --magic_prime 479 --ctx_len 4096"
check "30 copies: valid" binidx-info --check --vocab-size 65536 data/demo

# A producer that fails mid-way never becomes a dataset.
{ head -n 100 "$demo"; echo '{"text": "unterminated'; tail -n 5 "$demo"; } > bad.jsonl
rwkv-tokenize bad.jsonl 2> tok.err | binidx-write bad 2> write.err
rc=$?
check "bad line: binidx-write exits non-zero" test $rc -ne 0
check "bad line: tokenizer names FILE:LINE" grep -q "bad.jsonl:101" tok.err
check "bad line: writer says the stream was cut short" grep -q "closing record" write.err
check "bad line: no output" none_left bad
finish
