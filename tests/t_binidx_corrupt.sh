#!/bin/sh
# binidx-info and the strict reader: each corruption of .idx/.bin (every check the MMIDIDX
# format allows; NVIDIA/Megatron-LM megatron/core/datasets/indexed_dataset.py checks fewer)
# gives a clear error naming the file; a FIFO is refused at once; --check is quiet; info fields.
. "$TOP/tests/lib.sh"
helper=$TOP/build/tests/binidx_test
field() { awk -v k="$1:" '$1 == k { print $2 }' "$2"; }
# 3 documents: [5 6 0] [7 0] [65535 0]
printf '5 6 0\n7 0\n65535 0\n' | "$helper" --stream | binidx-write -q good
binidx-info good > info.txt; eq "info exits 0" $? 0
eq "documents" "$(field documents info.txt)" 3
eq "tokens" "$(field tokens info.txt)" 7
eq "max_id" "$(field max_id info.txt)" 65535
eq "bin_bytes" "$(field bin_bytes info.txt)" 14
eq "idx_bytes" "$(field idx_bytes info.txt)" 102
check "xxh3 fields are 16 hex digits" sh -c "grep -Eq '^bin_xxh3_64: [0-9a-f]{16}$' info.txt && grep -Eq '^idx_xxh3_64: [0-9a-f]{16}$' info.txt"
binidx-info --check good > check.txt 2>&1; eq "--check on a good dataset: exit 0" $? 0
eq "--check prints nothing" "$(cat check.txt)" ""
check "--vocab-size 65536 accepts" binidx-info --check --vocab-size 65536 good
expect_fail "--vocab-size 65535 rejects id 65535" "outside the vocabulary" binidx-info --check --vocab-size 65535 good

# patch NAME OFFSET BYTE... : copy good.* to NAME.* and overwrite bytes of NAME.idx
patch() {
    name=$1; off=$2; shift 2
    cp good.bin "$name.bin"; cp good.idx "$name.idx"
    "$PYTHON" -c 'import sys
p, off, vals = sys.argv[1], int(sys.argv[2]), [int(v) for v in sys.argv[3:]]
b = bytearray(open(p, "rb").read()); b[off:off+len(vals)] = bytes(vals); open(p, "wb").write(b)' "$name.idx" "$off" "$@"
}
patch magic 0 88;        expect_fail "bad magic" "magic.idx: bad magic" binidx-info magic
patch version 9 2;       expect_fail "bad version" "version.idx: unsupported version 2" binidx-info version
patch dtype7 17 7;       expect_fail "float dtype" "dtype7.idx: dtype code 7" binidx-info dtype7
patch dtype99 17 99;     expect_fail "unknown dtype" "dtype code 99 (unknown)" binidx-info dtype99
patch count 18 4;        expect_fail "sequence count vs length" "count.idx: 102 bytes, but its header" binidx-info count
patch negsize 37 128;    expect_fail "negative size" "sizes[0] = " binidx-info negsize
patch sizes 38 3;        expect_fail "sizes/pointers mismatch" "pointers[2] = 10, but the sizes before it put it at 12" binidx-info sizes
patch ptr 54 2;          expect_fail "pointer moved" "pointers[1] = 2" binidx-info ptr
patch docidx 70 9;       expect_fail "doc_idx out of range" "doc_idx[0] = 9" binidx-info docidx
cp good.bin trunc.bin; head -c 90 good.idx > trunc.idx
expect_fail "truncated .idx" "trunc.idx: 90 bytes" binidx-info trunc
head -c 12 good.bin > shortbin.bin; cp good.idx shortbin.idx
expect_fail "truncated .bin" "shortbin.bin: 12 bytes, but shortbin.idx describes 14" binidx-info shortbin
cp good.bin long.bin; printf 'xx' >> long.bin; cp good.idx long.idx
expect_fail "over-long .bin" "long.bin: 16 bytes" binidx-info long
cp good.idx trail.idx; cp good.bin trail.bin; printf 'z' >> trail.idx
expect_fail "trailing bytes in .idx" "trail.idx: 103 bytes" binidx-info trail
cp good.idx nobin.idx
expect_fail "missing .bin" "nobin.bin: No such file" binidx-info nobin
: > empty.idx; cp good.bin empty.bin
expect_fail "empty .idx" "empty.idx: 0 bytes, too short" binidx-info empty
# A document whose last token is not 0 (the .bin was edited).
cp good.idx noeod.idx; "$PYTHON" -c 'b=bytearray(open("good.bin","rb").read()); b[4]=1; open("noeod.bin","wb").write(b)'
expect_fail "document without token 0" "1 of 3 documents do not end with token 0" binidx-info --check noeod
check "--allow-no-eod accepts it" binidx-info --check --allow-no-eod noeod
binidx-info --check good magic > /dev/null 2>&1; eq "one bad of two: exit 1" $? 1
binidx-info --check good good.idx; eq "all good: exit 0" $? 0
binidx-info 2>/dev/null; eq "no arguments: exit 2" $? 2

# D11: a FIFO (or device) as .idx or .bin is refused at once, never waited on.
mkfifo fifo.idx; cp good.bin fifo.bin
expect_fail "FIFO .idx: binidx-info refuses" "fifo.idx: not a regular file" timeout 10 binidx-info fifo
if [ -x "$BIN/magic-prime" ]; then
    expect_fail "FIFO .idx: magic-prime -c refuses" "fifo.idx: not a regular file" timeout 10 magic-prime -c 4 fifo
fi
cp good.idx fifob.idx; mkfifo fifob.bin
expect_fail "FIFO .bin: binidx-info refuses" "fifob.bin: not a regular file" timeout 10 binidx-info fifob
expect_fail "FIFO input: binidx-merge refuses" "fifo.idx: not a regular file" timeout 10 binidx-merge -o m good fifo
check "...writes nothing" sh -c '! ls m.* >/dev/null 2>&1'

# CLI voice.
expect_fail "bad --vocab-size: the one phrasing" "invalid value 'x' for --vocab-size" binidx-info --vocab-size x good
binidx-info --vocab-size 0 good 2>/dev/null; eq "--vocab-size 0: exit 2" $? 2
eq "--version" "$(binidx-info --version)" "binidx-info (rwkv7c) 0.1.0"
eq "-V is --version" "$(binidx-info -V)" "binidx-info (rwkv7c) 0.1.0"
finish
