#!/bin/sh
# rwkv-init --model-type x060 against tests/ref/x060_init.py (torch, written from
# rwkv6-reference.md 1.2-1.3 and RWKV-LM RWKV-v5/src/model.py RWKV_Tmix_x060 /
# RWKV_CMix_x060 / generate_init_weight): names, shapes and state-dict order;
# every deterministic tensor bit-exact (bf16: torch's float32 formula then
# .bfloat16(); fp32: the float32 formula); zeros/ones exact; emb and the LoRA
# w2 uniform by range and statistics; orthogonal matrices by W W^T = gain^2 I;
# the spec's sanity values at L12-D768; parameter counts of the official sizes;
# the ChannelMix init variants; LoRA ranks and dim_ffn from the options and
# back from the tensors.  Skipped when rwkv-init has no x060.
. "$TOP/tests/lib.sh"
need_torch
ref="$PYTHON $TOP/tests/ref/x060_init.py"
rwkv-init -q --model-type x060 -L 2 -C 64 --vocab-size 64 -s 1 -o probe.st 2>probe.err ||
    { echo "rwkv-init has no --model-type x060 (exit $?)"; exit 77; }

# the reference itself: official parameter counts and the spec's bf16 sanity values
check "official parameter counts (spec 1.2), dim_ffn" $ref counts
check "formulas give the spec's sanity values (L12-D768)" $ref sanity

# fp32 and bf16, V > C (head gain 0.5*sqrt(V/C)); V < C with 3 heads; fp16
rwkv-init --model-type x060 -L 3 -C 256 --vocab-size 1000 --seed 5 --dtype fp32 -o f32.st > f32.txt
eq "fp32 init exit" $? 0
check "fp32: formulas exact, orthogonal, zeros, uniform" $ref check f32.st 3 256 1000
rwkv-init -q --model-type x060 -L 3 -C 256 --vocab-size 1000 --seed 5 -o bf16.st
check "bf16 (default): formulas bit-exact vs torch .bfloat16()" $ref check bf16.st 3 256 1000
rwkv-init -q --model-type x060 -L 2 -C 192 --vocab-size 128 --seed 9 --dtype fp32 -o small.st
check "V < C, C=192 (3 heads)" $ref check small.st 2 192 128
rwkv-init -q --model-type x060 -L 2 -C 128 --vocab-size 300 --seed 9 --dtype fp16 -o f16.st
check "fp16" $ref check f16.st 2 128 300

# the default ChannelMix init is RWKV-LM HEAD's (r1^3); --cmix-init 2024 is the released models' (r1)
$ref check f32.st 3 256 1000 --cmix 2024 > cm.txt
eq "the default is not the 2024 ChannelMix init" $? 1
check "  ... it differs in ffn.time_maa_k" grep -q "ffn.time_maa_k" cm.txt
rwkv-init -q --model-type x060 -L 3 -C 256 --vocab-size 1000 --seed 5 --cmix-init 2024 -o c24.st
check "--cmix-init 2024: 1 - ddd^r1, bit-exact" $ref check c24.st 3 256 1000 --cmix 2024

# L12-D768 (the tutorial's size, small vocabulary): the spec's sanity values, parameter count
rwkv-init --model-type x060 -L 12 -C 768 --vocab-size 64 --seed 2 -o l12.st > l12.txt
check "L12-D768 bf16: every check" $ref check l12.st 12 768 64
check "L12-D768 bf16: the spec's sanity values (1.3)" $ref sanity l12.st
want=$("$PYTHON" -c "
import sys, math; sys.path.insert(0, '$TOP/tests/ref'); import x060
print(sum(math.prod(s) for _, s in x060.param_list(12, 768, 64)))")
eq "L12-D768: model params line" "$(grep '^model params' l12.txt)" "model params $want"
# the official L12-D768 count: the V=64 count above plus the two [V,C] matrices at V = 65536
eq "L12-D768, V=65536: the spec's 196,955,136" "$((want + 2 * (65536 - 64) * 768))" 196955136

# LoRA ranks (7B/14B use 64/128) and dim_ffn: written, and read back from the shapes
rwkv-init -q --model-type x060 -L 2 -C 128 --vocab-size 200 --seed 1 --dtype fp32 --lora-mix 64 --lora-decay 128 --dim-ffn 320 -o ov.st
check "--lora-mix 64 --lora-decay 128 --dim-ffn 320" $ref check ov.st 2 128 200 --ranks 64,128 --ffn 320
pth-convert --info ov.st > ov.txt 2>&1
check "pth-convert --info reads the ranks from the tensors" grep -q "mix 64, decay 128" ov.txt
check "pth-convert --info reads dim_ffn from the tensors" grep -q "^ffn: *320" ov.txt
check "pth-convert --info: x060" grep -q "x060" ov.txt

# reproducibility: only the random tensors depend on the seed
rwkv-init -q --model-type x060 -L 2 -C 128 --vocab-size 300 --seed 42 -o s42a.st
rwkv-init -q --model-type x060 -L 2 -C 128 --vocab-size 300 --seed 42 -o s42b.st
rwkv-init -q --model-type x060 -L 2 -C 128 --vocab-size 300 --seed 43 -o s43.st
check "same seed -> identical file" cmp -s s42a.st s42b.st
"$PYTHON" -c "
import sys; sys.path.insert(0, '$TOP/tests/ref'); import x060, x060_init, torch
a = dict(x060.st_read('s42a.st')[0]); b = dict(x060.st_read('s43.st')[0])
diff = sorted(n for n in a if not torch.equal(a[n], b[n]))
kinds = {x060_init.kind_of(n, 128, 300)[0] for n in diff}
assert kinds == {'ortho', 'uniform'}, kinds
assert len(diff) == 2 + 2 * 7, diff     # emb, head; per layer 5 orthogonal, 2 LoRA w2
" 2>err.txt
eq "only the random tensors depend on the seed" $? 0

# x060-only and x070-only options
expect_fail "bad --model-type: the one phrasing" "rwkv-init: invalid value 'x052' for --model-type" \
    rwkv-init --model-type x052 -L 2 -C 64 -o x.st
rwkv-init --model-type x060 -L 2 -C 64 --lora-aaa 32 -o x.st 2>/dev/null; eq "x070 option with x060: exit 2" $? 2
rwkv-init -L 2 -C 64 --lora-mix 32 -o x.st 2>/dev/null; eq "x060 option with x070: exit 2" $? 2
rwkv-init --model-type x060 -L 1 -C 64 -o x.st 2>/dev/null; eq "x060 n_layer 1: exit 2 (r01 divides by L-1)" $? 2
check "no output after usage errors" test ! -e x.st
finish
