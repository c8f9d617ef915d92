#!/bin/sh
# safetensors interop with an independent pure-Python reader/writer
# (tests/ref/init_ref.py) and model_load's errors on bad checkpoints: each names
# the file and the tensor.  Driver: build/tests/safetensors_test dump|load FILE.
. "$TOP/tests/lib.sh"
need_torch
ref="$PYTHON $TOP/tests/ref/init_ref.py"
drv="$TOP/build/tests/safetensors_test"
pyrun() { "$PYTHON" -c "import sys; sys.path.insert(0, '$TOP/tests/ref'); from init_ref import *
$1"; }

rwkv-init -q -L 2 -C 64 --vocab-size 96 --seed 1 --dtype fp32 -o good.st
check "good checkpoint loads" sh -c "$drv load good.st | grep -q 'loaded 2 layers, C=64, V=96'"

# HF writer layout (sorted by dtype alignment then name, every dtype, empty, scalar,
# escaped UTF-8 name) -> our reader: same names, dtypes, shapes and values.
$ref write-hf hf.st >/dev/null
$ref read hf.st | grep -v '^ok$' > hf.py.txt
"$drv" dump hf.st > hf.c.txt
check "HF-layout file read alike by C and Python" cmp -s hf.py.txt hf.c.txt
# our writer -> Python reader -> HF layout -> our reader: identical tensors
pyrun "
items, meta = st_load('good.st')
st_save_hf('good_hf.st', dict(items), {k: v for k, v in meta.items() if not k.startswith('xxh3:')})"
"$drv" dump good.st > a.txt; "$drv" dump good_hf.st > b.txt
ntens=$(pyrun "print(len(state_dict_shapes(2, 64, 96)))")
eq "tensors in good.st" "$(grep -c -v '^meta' a.txt)" "$ntens"
check "C -> Python -> HF layout -> C: same tensors" sh -c "grep -v '^meta' a.txt | sort > a1; grep -v '^meta' b.txt | sort > b1; cmp -s a1 b1"
check "re-ordered file still loads" sh -c "$drv load good_hf.st >/dev/null"
check "header is 8-byte aligned, JSON, starts with metadata" "$PYTHON" -c "
import struct, json
b = open('good.st', 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
assert n % 8 == 0 and b[8:9] == b'{'
h = json.loads(b[8:8+n]); keys = list(h)
assert keys[0] == '__metadata__' and keys[1] == 'emb.weight' and keys[-1] == 'head.weight', keys[:3]
m = h['__metadata__']
assert m['model_type'] == 'x070' and m['n_layer'] == '2' and len([k for k in m if k.startswith('xxh3:')]) == len(h) - 1
assert all(isinstance(v, str) for v in m.values())"

# bad checkpoints, made from good.st
pyrun "
import struct, json
items, meta = st_load('good.st')
meta = {k: v for k, v in meta.items() if not k.startswith('xxh3:')}
d = dict(items)
def save(name, t): st_save_hf(name, t, meta)
x = dict(d); x['blocks.1.att.w1'] = torch.zeros(64, 64); save('shape.st', x)
x = dict(d); del x['blocks.1.ffn.x_k']; save('missing.st', x)
x = dict(d); x['blocks.1.att.a0'] = d['blocks.1.att.a0'].clone(); x['blocks.1.att.a0'][0, 0, 3] = float('nan'); save('nan.st', x)
x = {k: v.bfloat16() for k, v in d.items()}; x['head.weight'][5, 7] = float('inf'); save('inf.st', x)
x = dict(d); x['blocks.1.att.extra'] = torch.zeros(3); save('extra.st', x)
x = dict(d); x['blocks.0.att.k_a'] = torch.zeros(1, 1, 64, dtype=torch.int32); save('intdtype.st', x)
raw = open('good.st', 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8+n])
open('trunc.st', 'wb').write(raw[:-100])
open('trunc_hdr.st', 'wb').write(raw[:50])
b, e = h['blocks.0.att.w0']['data_offsets']
c = bytearray(raw); c[8 + n + b + 5] ^= 1; open('corrupt.st', 'wb').write(c)
def with_header(name, hd):
    j = json.dumps(hd).encode(); j += b' ' * (-len(j) % 8)
    open(name, 'wb').write(struct.pack('<Q', len(j)) + j + raw[8+n:])
g = json.loads(raw[8:8+n]); g['blocks.1.ln1.bias']['data_offsets'] = g['blocks.1.ln1.weight']['data_offsets']; with_header('overlap.st', g)
g = json.loads(raw[8:8+n]); g['blocks.0.att.x_r']['dtype'] = 'F8_E4M3'; with_header('dtype.st', g)
g = json.loads(raw[8:8+n]); g['ln_out.bias']['shape'] = [65]; with_header('span.st', g)
open('badjson.st', 'wb').write(struct.pack('<Q', 16) + b'{\"a\": nul}      ')
open('hugehdr.st', 'wb').write(struct.pack('<Q', 1 << 40) + b'{' + b' ' * 100)
open('junk.st', 'wb').write(b'hello, this is not a model')
open('zip.st', 'wb').write(b'PK\x03\x04' + bytes(100))
open('empty.st', 'wb').write(b'')
"
load() { "$drv" load "$@"; }
expect_fail "wrong shape names the tensor" "shape.st: tensor blocks.1.att.w1 has shape [64,64], expected [64,32]" load shape.st
expect_fail "missing tensor" "missing.st: checkpoint has no tensor blocks.1.ffn.x_k" load missing.st
expect_fail "NaN" "nan.st: tensor blocks.1.att.a0 has a non-finite value (NaN) at element 3" load nan.st
expect_fail "Inf in bf16" "inf.st: tensor head.weight has a non-finite value (Inf) at element 327" load inf.st
expect_fail "unexpected tensor" "unexpected tensor blocks.1.att.extra" load extra.st
expect_fail "integer dtype" "tensor blocks.0.att.k_a has dtype I32" load intdtype.st
expect_fail "truncated data" "trunc.st: tensor head.weight: truncated" load trunc.st
expect_fail "truncated header" "trunc_hdr.st: truncated: header length" load trunc_hdr.st
expect_fail "corrupted data (checksum)" "corrupt.st: tensor blocks.0.att.w0: checksum mismatch" load corrupt.st
expect_fail "overlapping offsets" "tensor blocks.1.ln1.bias: data overlaps" load overlap.st
expect_fail "unknown dtype" "tensor blocks.0.att.x_r: unknown or unsupported dtype \"F8_E4M3\"" load dtype.st
expect_fail "shape vs offsets" "tensor ln_out.bias: data_offsets span 256 bytes but dtype F32 and shape need 260" load span.st
expect_fail "bad JSON" "badjson.st: tensor a: header: expected '{'" load badjson.st
expect_fail "header over 100 MB" "exceeds the 100000000-byte limit" load hugehdr.st
expect_fail "not a checkpoint" "junk.st: not a checkpoint" load junk.st
expect_fail "empty file" "empty.st" load empty.st
expect_fail "zip is not read here (yet)" "zip.st" load zip.st
expect_fail "missing file" "nope.st: No such file" load nope.st
finish
