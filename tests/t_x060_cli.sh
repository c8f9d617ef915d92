#!/bin/sh
# RWKV-6 (x060) through the tools: rwkv-init --model-type x060 (official names,
# shapes and order; deterministic; --cmix-init), pth-convert --info and both
# conversions, rwkv-train (--my_testing, the plan line, a few steps, resume
# bit-identical to an uninterrupted run), rwkv-generate; the type comes from
# the tensors, never the file name; bad model types and bad files are errors.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# ---- rwkv-init
rwkv-init --model-type x060 -L 2 -C 64 --vocab-size 16 -s 3 -o small.st >table.txt || { cat table.txt; bad "rwkv-init x060"; finish; }
# the official state-dict order of block 0 (RWKV-LM RWKV-v5 src/model.py)
awk '$1 ~ /^blocks\.0\./ { sub(/^blocks\.0\./, "", $1); printf "%s ", $1 }' table.txt >order.txt
eq "block 0 names in state-dict order" "$(cat order.txt)" \
"ln1.weight ln1.bias ln2.weight ln2.bias ln0.weight ln0.bias att.time_maa_x att.time_maa_w att.time_maa_k att.time_maa_v att.time_maa_r att.time_maa_g att.time_maa_w1 att.time_maa_w2 att.time_decay att.time_decay_w1 att.time_decay_w2 att.time_faaaa att.receptance.weight att.key.weight att.value.weight att.output.weight att.gate.weight att.ln_x.weight att.ln_x.bias ffn.time_maa_k ffn.time_maa_r ffn.key.weight ffn.receptance.weight ffn.value.weight "
eq "time_maa_w2 is [5, 32, C]" "$(awk '$1 == "blocks.0.att.time_maa_w2" { print $2 $3 $4 $5 $6 }' table.txt)" "5x32x64"
eq "time_faaaa is [H, 64]" "$(awk '$1 == "blocks.1.att.time_faaaa" { print $2 $3 $4 }' table.txt)" "1x64"
eq "ffn.key is [224, 64] (int(3.5 C) // 32 * 32)" "$(awk '$1 == "blocks.1.ffn.key.weight" { print $2 $3 $4 }' table.txt)" "224x64"
eq "inits: output, ffn.value, ffn.receptance zero; key, gate gain 0.1; w2 uniform" \
    "$(awk '$1 ~ /^blocks\.1\.(att\.output|ffn\.value|ffn\.receptance|att\.key|att\.gate|att\.time_maa_w2|att\.time_decay_w1)/ { $2 = $3 = $4 = ""; if ($1 ~ /w2$/) $0 = $0; print }' table.txt | tr -s ' ' | tr '\n' ';')" \
    "blocks.1.att.time_maa_w2 x 64 uniform +-0.01;blocks.1.att.time_decay_w1 zeros;blocks.1.att.key.weight orthogonal gain 0.1;blocks.1.att.output.weight zeros;blocks.1.att.gate.weight orthogonal gain 0.1;blocks.1.ffn.receptance.weight zeros;blocks.1.ffn.value.weight zeros;"
rwkv-init --model-type x060 -L 2 -C 64 --vocab-size 16 -s 3 -q -o again.st
check "a seed gives the same file" cmp small.st again.st
rwkv-init --model-type x060 -L 2 -C 64 --vocab-size 16 -s 3 -q --cmix-init 2024 -o old.st
check "--cmix-init 2024 gives another file" sh -c '! cmp -s small.st old.st'
check "...differing only in ffn.time_maa_k/_r (1 - ddd^r1 instead of ddd^(r1^3))" "$PYTHON" - small.st old.st <<'PY'
import json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
diff = sorted(k for k in a if a[k] != b[k])
want = ["blocks.1.ffn.time_maa_k", "blocks.1.ffn.time_maa_r"]   # layer 0: r1 = 1, both forms agree
sys.exit(0 if diff == want else print(diff) or 1)
PY
expect_fail "--model-type x050: usage error" "invalid value 'x050' for --model-type (want x070 or x060)" \
    rwkv-init --model-type x050 -L 2 -C 64 -o bad.st
expect_fail "--lora-mix without x060: usage error" "--lora-mix, --dim-ffn and --cmix-init are for --model-type x060" \
    rwkv-init -L 2 -C 64 --lora-mix 16 -o bad.st
expect_fail "--lora-gate with x060: usage error" "are for x070" \
    rwkv-init --model-type x060 -L 2 -C 64 --lora-gate 16 -o bad.st
expect_fail "--cmix-init bad value" "invalid value 'now' for --cmix-init (want head or 2024)" \
    rwkv-init --model-type x060 -L 2 -C 64 --cmix-init now -o bad.st
check "...no output left behind" test ! -e bad.st

# ---- pth-convert: --info and both directions
pth-convert --info small.st >info.txt
eq "--info: model line" "$(sed -n 's/^model: *//p' info.txt)" "RWKV-6 x060"
eq "--info: ffn" "$(sed -n 's/^ffn: *//p' info.txt)" "224 (default for width 64: 224)"
eq "--info: lora" "$(sed -n 's/^lora: *//p' info.txt)" "mix 32, decay 64 (trainer defaults 32, 64)"
check "safetensors -> pth" pth-convert small.st small.pth
check "pth -> safetensors" pth-convert small.pth back.st
check "back to pth: bit-exact" sh -c 'pth-convert back.st back.pth && cmp small.pth back.pth'
eq "the converted file is tagged x060" "$("$PYTHON" -c "
import json, struct, sys
b = open('back.st', 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
print(json.loads(b[8:8 + n])['__metadata__'].get('model_type'))")" "x060"
eq "--info on the .pth" "$(pth-convert --info small.pth | sed -n 's/^model: *//p')" "RWKV-6 x060"
# the type comes from the tensors: an x060 file named like an x070 one, and the reverse
cp small.pth RWKV-x070-World-0.1B.pth
eq "x060 tensors under an x070 name: x060" "$(pth-convert --info RWKV-x070-World-0.1B.pth | sed -n 's/^model: *//p')" "RWKV-6 x060"
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o seven.st
pth-convert seven.st RWKV-x060-World-1B6-v2.1-20240328-ctx4096.pth
eq "x070 tensors under an x060 name: x070" \
    "$(pth-convert --info RWKV-x060-World-1B6-v2.1-20240328-ctx4096.pth | sed -n 's/^model: *//p')" "RWKV-7 x070"

# ---- damaged x060 files
cat >edit.py <<'PY'
import json, struct, sys
src, dst, what = sys.argv[1:4]
b = open(src, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
h["__metadata__"] = {k: v for k, v in h["__metadata__"].items() if not k.startswith("xxh3:") and k != "model_type"}
out, parts, off = {"__metadata__": h["__metadata__"]}, [], 0
for k, v in h.items():
    if k == "__metadata__": continue
    lo, hi = v["data_offsets"]
    if what == "no_ln0" and ".ln0." in k: continue
    if what == "flat_u" and k.endswith("time_faaaa"): v = dict(v, shape=[v["shape"][0] * v["shape"][1]])
    if what == "flat_w2" and k.endswith("time_maa_w2"): v = dict(v, shape=[v["shape"][0] * v["shape"][1], v["shape"][2]])
    out[k] = dict(v, data_offsets=[off, off + hi - lo]); parts.append(data[lo:hi]); off += hi - lo
hb = json.dumps(out).encode(); hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(parts))
PY
"$PYTHON" edit.py small.st flat_u.st flat_u
expect_fail "time_faaaa flattened to [C]: refused (rwkv pip would silently use head size 1)" \
    "tensor blocks.0.att.time_faaaa has 1 dimensions, expected 2" rwkv-generate -m flat_u.st -n 0 --prompt x
"$PYTHON" edit.py small.st flat_w2.st flat_w2
expect_fail "time_maa_w2 as [5*D, C]: refused" "tensor blocks.0.att.time_maa_w2 has 2 dimensions, expected 3" \
    rwkv-generate -m flat_w2.st -n 0 --prompt x
"$PYTHON" edit.py small.st no_ln0.st no_ln0
eq "no ln0: --info says so" "$(pth-convert --info no_ln0.st | sed -n 's/^ln0: *//p')" \
    "missing (the rwkv pip package cannot load such a file)"

check "no ln0: rwkv-generate runs it (the embedding feeds block 0)" rwkv-generate -m no_ln0.st -n 0 --prompt "" --logits-out no_ln0.f32
# a torch.save'd state dict with the official key order and shapes (as RWKV-LM writes
# rwkv-*.pth: plain dict, bf16, [1,1,C] vectors) reads as x060 with the same logits
if "$PYTHON" -c 'import torch' 2>/dev/null; then
    "$PYTHON" - <<'PY' || bad "torch.save an official-shaped x060 file"
import json, struct, torch
b = open("small.st", "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
sd = {}
for k, v in h.items():
    if k == "__metadata__": continue
    lo, hi = v["data_offsets"]
    raw = torch.frombuffer(bytearray(b[8 + n + lo:8 + n + hi]), dtype=torch.int16)
    sd[k] = raw.view(torch.bfloat16).reshape(v["shape"]).clone()
assert list(sd)[:3] == ["emb.weight", "blocks.0.ln1.weight", "blocks.0.ln1.bias"]
assert tuple(sd["blocks.0.att.time_maa_x"].shape) == (1, 1, 64) and tuple(sd["blocks.0.att.time_faaaa"].shape) == (1, 64)
torch.save(sd, "torch.pth")
PY
    eq "torch.save'd x060: --info" "$(pth-convert --info torch.pth | sed -n 's/^model: *//p')" "RWKV-6 x060"
    check "torch.save'd x060 -> safetensors -> pth: tensors as ours" sh -c 'pth-convert torch.pth t.st && pth-convert t.st t.pth && cmp t.pth small.pth'
else
    echo "no torch: torch.save check skipped"
fi

# ---- rwkv-train
$U copy data 600 7 || exit 1
common="--data_file data --ctx_len 32 --micro_bsz 4 --lr_init 2e-3 --lr_final 1e-4 --warmup_steps 5 --weight_decay 0.01 --save_minutes 0 --my_exit_tokens 3840 --allow_repeat"
mkdir a b c
cp small.st a/rwkv-init.safetensors
cp small.st b/rwkv-init.safetensors
cp seven.st c/rwkv-init.safetensors
rwkv-train --proj_dir a $common --my_testing x060 --dry-run >plan.txt 2>plan.err
check "--dry-run: plan line says x060" grep -q "^model        x060 L2 D64, vocab 16" plan.txt
expect_fail "--my_testing x070 with an x060 checkpoint: names both" \
    "--my_testing x070, but a/rwkv-init.safetensors is an x060 model" rwkv-train --proj_dir a $common --my_testing x070
expect_fail "--my_testing x060 with an x070 checkpoint: names both" \
    "--my_testing x060, but c/rwkv-init.safetensors is an x070 model" rwkv-train --proj_dir c $common --my_testing x060
expect_fail "--my_testing x052: usage error" "invalid value 'x052' for --my_testing (want x070 (RWKV-7) or x060 (RWKV-6))" \
    rwkv-train --proj_dir c $common --my_testing x052
expect_fail "--dim_ffn contradicting an x060 checkpoint: error" "--dim_ffn 256 contradicts the checkpoint" \
    rwkv-train --proj_dir a $common --dim_ffn 256
check "train 30 steps" rwkv-train --proj_dir a $common --my_testing x060 --dim_ffn 224 2>a.err
first=$(sed -n '1p' a/metrics.jsonl | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(tail -n 1 a/metrics.jsonl | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
check "the loss falls ($first -> $last)" awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.3) }'
eq "rwkv-final is x060" "$(pth-convert --info a/rwkv-final.safetensors | sed -n 's/^model: *//p')" "RWKV-6 x060"
# interrupted after 12 steps, resumed: the same final state bit for bit
check "train 12 steps, stop" rwkv-train --proj_dir b $common --exit_after_steps 12 2>b.err
check "resume to the end" rwkv-train --proj_dir b $common 2>>b.err
check "...resumed from the state" grep -q "resuming from b/train-state-00000012.safetensors" b.err
st=$(cd a && ls train-state-*.safetensors | tail -n 1)
check "resumed final state = uninterrupted one ($st)" $U cmpstate "a/$st" "b/$st"
check "resumed rwkv-final = uninterrupted one" cmp a/rwkv-final.safetensors b/rwkv-final.safetensors

# ---- rwkv-generate
rwkv-init --model-type x060 -L 2 -C 64 -s 4 -q -o big.st
check "generate" sh -c 'rwkv-generate -m big.st --prompt "The Eiffel tower is in the city of" -n 8 --temperature 0 >gen.txt'
check "...printed a continuation" test -s gen.txt
rwkv-generate -m big.st --prompt "The Eiffel tower" -n 0 --logits-out st.f32
pth-convert big.st big.pth
rwkv-generate -m big.pth --prompt "The Eiffel tower" -n 0 --logits-out pth.f32
eq "--logits-out: vocab_size floats" "$(wc -c <st.f32)" $((65536 * 4))
check "the same logits from the .pth" cmp st.f32 pth.f32
# greedy decoding token by token equals the prefill of the longer prompt
rwkv-generate -m big.st --prompt "The Eiffel tower" -n 3 --temperature 0 --dtype fp32 >three.txt
rwkv-generate -m big.st --prompt "The Eiffel tower$(cat three.txt)" -n 0 --logits-out long.f32 --dtype fp32
rwkv-generate -m big.st --prompt "The Eiffel tower" -n 4 --temperature 0 --dtype fp32 >four.txt
check "greedy continuation is stable across prefill/decode" sh -c 'case "$(cat four.txt)" in "$(cat three.txt)"*) exit 0 ;; *) exit 1 ;; esac'
# one-token decode from the bf16 copies equals fp32 on a bf16 checkpoint (as for x070)
rwkv-generate -m big.st --prompt "The" -n 0 --logits-out d16.f32 --dtype bf16
rwkv-generate -m big.st --prompt "The" -n 0 --logits-out d32.f32 --dtype fp32
check "--dtype bf16 decode = fp32 on a bf16 checkpoint" cmp d16.f32 d32.f32
finish
