#!/bin/sh
# pth-convert --dtype: finite values that overflow the target type become +-inf
# (as torch's .to() does) and are reported once per tensor with the count (O4);
# option errors use the one phrasing; -V is --version.
. "$TOP/tests/lib.sh"
# F32 safetensors written by hand: "big" holds 4 values beyond fp16's 65504, "ok" none
"$PYTHON" - <<'PY' || exit 1
import json, struct
big = [1e6, 70000.0, -1e30, 3.4e38, 1.0, 65504.0, float("inf")]
ok = [1.0, -2.0, 65504.0]
data = struct.pack("<%df" % len(big), *big) + struct.pack("<%df" % len(ok), *ok)
hdr = {"big": {"dtype": "F32", "shape": [len(big)], "data_offsets": [0, 4 * len(big)]},
       "ok": {"dtype": "F32", "shape": [len(ok)], "data_offsets": [4 * len(big), len(data)]}}
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
open("wide.st", "wb").write(struct.pack("<Q", len(h)) + h + data)
PY
pth-convert --dtype fp16 wide.st half.st 2>err.txt; eq "fp16 overflow: still converts (exit 0)" $? 0
check "fp16 overflow: one warning naming the tensor and the count" \
    grep -qxF "pth-convert: big: 4 finite values out of the F16 range became infinite" err.txt
eq "fp16 overflow: one line per tensor, none for 'ok'" "$(wc -l <err.txt)" 1
pth-convert --dtype bf16 wide.st b16.st 2>err.txt; eq "bf16: exit 0" $? 0
check "bf16: 3.4e38 rounds past bf16's max" grep -qF "big: 1 finite value out of the BF16 range" err.txt
pth-convert --dtype fp32 wide.st f32.st 2>err.txt
check "fp32: no warning" test ! -s err.txt

# the CLI voice
pth-convert --dtype int8 a b >/dev/null 2>err.txt; eq "bad --dtype: exit 2" $? 2
check "bad --dtype: the one phrasing" grep -qxF "pth-convert: invalid value 'int8' for --dtype (want bf16, fp16 or fp32)" err.txt
pth-convert --to zip a b >/dev/null 2>err.txt; eq "bad --to: exit 2" $? 2
check "bad --to: the one phrasing" grep -qF "invalid value 'zip' for --to" err.txt
eq "-V is --version" "$(pth-convert -V)" "pth-convert (rwkv7c) 0.1.0"
check "--help starts with Usage:" sh -c 'pth-convert --help | head -n 1 | grep -q "^Usage: pth-convert"'
eq "rwkv-tokenize -V" "$(rwkv-tokenize -V)" "rwkv-tokenize (rwkv7c) 0.1.0"
eq "jsonl-shuf -V" "$(jsonl-shuf -V)" "jsonl-shuf (rwkv7c) 0.1.0"
finish
