#!/bin/sh
# pth-convert interop with torch 1.13: torch.save files in, our .pth loaded by
# torch.load(weights_only=True), bit-exact round trips, --dtype, torch 2.x layouts.
. "$TOP/tests/lib.sh"
need_torch
REF="$PYTHON $TOP/tests/ref/pth_fixtures.py"
$REF good g >gen.log 2>&1 || { cat gen.log; bad "generate fixtures"; finish; }

pairs_in="" pairs_out="" ours=""
for f in g/*.pth; do
    b=$(basename "$f" .pth)
    check "$b: torch.save -> safetensors" pth-convert "$f" "$b.st"
    check "$b: safetensors -> pth" pth-convert "$b.st" "$b.pth"
    check "$b: pth -> safetensors again" pth-convert "$b.pth" "$b.2.st"
    check "$b: safetensors -> pth -> safetensors is bit-exact" cmp "$b.st" "$b.2.st"
    check "$b: pth -> safetensors -> pth is bit-exact" sh -c "pth-convert '$b.2.st' '$b.2.pth' && cmp '$b.pth' '$b.2.pth'"
    pairs_in="$pairs_in $f $b.st" pairs_out="$pairs_out $b.st $b.pth" ours="$ours $b.pth"
done
# shellcheck disable=SC2086
check "torch.save files: tensors equal to torch.load (bits, dtype, shape)" $REF same_st $pairs_in
check "our .pth files load with weights_only=True, equal" $REF load_pth $pairs_out
check "our .pth layout: order, stored, 64-aligned, CRC-32, Zip64 end" $REF layout $ours

# what the fixtures exercise must really be there
grep -q '_metadata' g/module_fp16.pth && ok "module fixture carries _metadata" || bad "module fixture lacks _metadata"
grep -q 'serialization_id' g/layout2x.pth && ok "2.x fixture carries .data/serialization_id" || bad "2.x fixture incomplete"
eq "forward prefix stripped" "$(pth-convert --info -v g/forward_prefix.pth | grep -c '^  emb.weight\|^  head.weight')" 2
# Zip64 without 4 GiB: the fixtures must really carry Zip64 extra fields (ID 0x0001) in every
# local header, Zip64 (8-byte) data descriptors in the streamed one, saturated central fields
cat >z64.py <<'P'
import struct, sys, zipfile
def local_extras(raw, z):
    for i in z.infolist():
        nlen, xlen = struct.unpack("<HH", raw[i.header_offset + 26:i.header_offset + 30])
        x = raw[i.header_offset + 30 + nlen:i.header_offset + 30 + nlen + xlen]
        ids = []
        while x:
            ids.append(struct.unpack("<H", x[:2])[0]); x = x[4 + struct.unpack("<H", x[2:4])[0]:]
        yield i, ids
for f in sys.argv[1:]:
    raw = open(f, "rb").read(); z = zipfile.ZipFile(f)
    assert all(1 in ids for _, ids in local_extras(raw, z)), f + ": a local header without a Zip64 extra"
    if "stream" in f or "extras" in f:
        for i in z.infolist():
            assert i.flag_bits & 8, f
            nlen, xlen = struct.unpack("<HH", raw[i.header_offset + 26:i.header_offset + 30])
            d = i.header_offset + 30 + nlen + xlen + i.file_size
            sig, crc, cs, us = struct.unpack("<IIQQ", raw[d:d + 24])
            assert sig == 0x08074b50 and crc == i.CRC and cs == us == i.file_size, (f, i.filename)
    if "extras" in f:
        assert raw.count(struct.pack("<HHQQQ", 1, 24, 0, 0, 0)[:4]) == len(z.infolist()), f
        assert raw[-22:].endswith(b"\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00"), f
print("zip64 fixtures ok")
P
check "Zip64 fixtures carry Zip64 extras and descriptors" "$PYTHON" z64.py g/pyzip64.pth g/pyzip64_stream.pth g/zip64_extras.pth
for b in pyzip64 pyzip64_stream zip64_extras; do
    eq "$b: 2 tensors" "$(pth-convert --info g/$b.pth | sed -n 's/^tensors: *//p')" 2
done
eq "views: 10 tensors" "$(pth-convert --info g/views.pth | sed -n 's/^tensors: *//p')" 10
eq "1001 tensors" "$(pth-convert --info many.st | sed -n 's/^tensors: *//p')" 1001

for dt in bf16 fp16 fp32; do
    cast=""
    for b in views module_fp16 ordered_bf16; do
        check "--dtype $dt $b" pth-convert --dtype $dt "g/$b.pth" "$b.$dt.st"
        cast="$cast g/$b.pth $b.$dt.st"
    done
    check "--dtype $dt equals torch's cast" $REF same_cast $dt $cast
done
check "--dtype bf16 to .pth" sh -c "pth-convert --dtype bf16 views.st vb.pth && pth-convert vb.pth vb.st && cmp vb.st views.bf16.st"
check "--to pth rewrites a .pth" sh -c "pth-convert --to pth --dtype fp32 g/ordered_bf16.pth o32.pth && pth-convert o32.pth o32.st && cmp o32.st ordered_bf16.fp32.st"

# safety of the output file and the command line
expect_fail "refuses to overwrite without -f" "exists" pth-convert g/views.pth views.st
check "overwrites with -f" pth-convert -f g/views.pth views.st
check "stdin input (.pth)" sh -c "pth-convert - stdin.st < g/ordered_bf16.pth && cmp stdin.st ordered_bf16.st"
check "stdin input (safetensors)" sh -c "pth-convert - stdin.pth < ordered_bf16.st && cmp stdin.pth ordered_bf16.pth"
eq "--info dtype" "$(pth-convert --info ordered_bf16.pth | sed -n 's/^dtype: *//p')" "BF16"
pth-convert >/dev/null 2>&1; eq "no arguments: exit 2" $? 2
pth-convert --dtype int8 a b >/dev/null 2>&1; eq "bad --dtype: exit 2" $? 2
check "--help on stdout" sh -c "pth-convert --help | grep -q Usage:"
check "--version" sh -c "pth-convert --version | grep -q pth-convert"
eq "no temporaries left" "$(ls -A | grep -c '\.tmp\.')" 0
finish
