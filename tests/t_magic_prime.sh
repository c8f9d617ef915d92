#!/bin/sh
# magic-prime: the golden table (RWKV-LM-V7 data/make_data.py; shared/golden/README.md),
# the < 3 x ctx_len error, dataset mode with validation, usage.
. "$TOP/tests/lib.sh"
helper=$TOP/build/tests/binidx_test
last() { "$@" 2>/dev/null | tail -n 1; }
for row in "66833 512 113" "200499 4096 47" "1498226207 512 2926181" "1498226207 4096 365759" \
           "332115325534 4096 81082817" "12288 4096 2" "18446744073709551615 1 18446744073709551557"; do
    set -- $row
    eq "tokens $1 ctx $2" "$(last magic-prime -c $2 -t $1)" "--my_exit_tokens $1 --magic_prime $3 --ctx_len $2"
done
expect_fail "fewer than 3 x ctx_len" "fewer than 3 x ctx_len" magic-prime -c 4096 -t 12287
expect_fail "no tokens at all" "fewer than 3 x ctx_len" magic-prime -c 1 -t 0
expect_fail "-c 0 is a usage error" "invalid value '0' for --ctx-len (want a positive integer)" magic-prime -c 0 -t 100
check "--version in the one format" sh -c 'test "$(magic-prime --version)" = "magic-prime (rwkv7c) 0.1.0"'
magic-prime -c x -t 100 2>/dev/null; eq "bad -c: exit 2" $? 2
magic-prime -t 100 2>/dev/null; eq "missing -c: exit 2" $? 2
magic-prime -c 10 2>/dev/null; eq "neither -t nor PREFIX: exit 2" $? 2
magic-prime -c 10 -t 100 extra 2>/dev/null; eq "-t and PREFIX: exit 2" $? 2
magic-prime -c 10 -t -5 2>/dev/null; eq "negative tokens: exit 2" $? 2
magic-prime --help | grep -q "Usage: magic-prime"; eq "--help on stdout, exit 0" $? 0

# Dataset mode: 7 documents of 4096 tokens each (28672 tokens) -> 28672/4096-1 = 6 -> 5.
"$PYTHON" -c '
for d in range(7): print(" ".join(["7"] * 4095 + ["0"]))' | "$helper" --stream | binidx-write -q d
eq "dataset: last line" "$(last magic-prime -c 4096 d)" "--my_exit_tokens 28672 --magic_prime 5 --ctx_len 4096"
eq "dataset given as d.bin" "$(last magic-prime -c 4096 d.bin)" "--my_exit_tokens 28672 --magic_prime 5 --ctx_len 4096"
check "dataset summary line" sh -c 'magic-prime -c 4096 d | grep -q "has 28672 tokens, 7 items. Dtype uint16"'
expect_fail "dataset too small for ctx" "fewer than 3 x ctx_len" magic-prime -c 16384 d
# The .idx is validated against the .bin.
head -c 1000 d.bin > t.bin; cp d.idx t.idx
expect_fail "truncated .bin" "t.bin: 1000 bytes, but t.idx describes 57344" magic-prime -c 512 t
expect_fail "missing dataset" "nope.idx: No such file" magic-prime -c 512 nope
finish
