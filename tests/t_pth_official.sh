#!/bin/sh
# A checkpoint shaped like the official RWKV-7 0.1B release (L12 C768 V65536,
# LoRA 64/64/32/128, no layer-0 v0/v1/v2, bf16, random values) written by
# torch.save: --info detects it, it converts to safetensors with equal tensors
# and back bit-exactly, and rwkv-generate runs it directly.  rwkv-train continues from a same-structure narrow
# model (L2 C128) given as .pth directly, with the same losses as from the
# converted safetensors.
. "$TOP/tests/lib.sh"
need_torch
REF="$PYTHON $TOP/tests/ref/pth_fixtures.py"
eq "0.1B-shaped checkpoint written by torch.save" "$($REF official off.pth 2>&1)" 191034624
pth-convert --info off.pth >info.txt 2>&1; cat info.txt
field() { sed -n "s/^$1: *//p" info.txt; }
eq "model" "$(field model)" "RWKV-7 x070"
eq "layers" "$(field layers)" 12
eq "width" "$(field width)" 768
eq "heads" "$(field heads)" "12 x 64"
eq "vocab" "$(field vocab)" 65536
eq "LoRA ranks" "$(field lora)" "decay 64, aaa 64, mv 32, gate 128 (formula for width 768: 64 64 32 128)"
eq "layer-0 v0/v1/v2" "$(field 'layer-0 v0\/v1\/v2')" "missing (as in official releases)"
eq "dtype" "$(field dtype)" BF16
eq "parameters (191,084,544 minus layer-0 v0/v1/v2)" "$(field parameters)" 191034624
check "converts to safetensors" pth-convert off.pth off.st
check "tensors equal to torch.load" $REF same_st off.pth off.st
check "safetensors -> pth -> safetensors bit-exact" sh -c 'pth-convert off.st back.pth && pth-convert back.pth back.st && cmp off.st back.st'
if [ -x "$BIN/rwkv-generate" ]; then
    for m in off.pth off.st; do
        check "rwkv-generate runs $m" sh -c "rwkv-generate -m $m --prompt 'Hello' -n 8 --temperature 0 --logits-out $m.logits >gen_$m.txt 2>gen_$m.err"
    done
    check "same logits and text from .pth and converted safetensors" sh -c 'cmp off.pth.logits off.st.logits && cmp gen_off.pth.txt gen_off.st.txt'
else
    echo "rwkv-generate not built: generation not checked"
fi
rm -f off.pth back.pth back.st

if [ -x "$BIN/rwkv-train" ] && [ -x "$BIN/rwkv-tokenize" ] && [ -x "$BIN/binidx-write" ]; then
    $REF official small.pth 128 2 >/dev/null
    check "narrow official-shaped model converts" pth-convert small.pth small.st
    rwkv-tokenize "$TOP/examples/demo.jsonl" 2>/dev/null | binidx-write -q demo 2>/dev/null
    for m in small.pth small.st; do
        check "rwkv-train continues from $m" sh -c "rwkv-train --data_file demo --proj_dir p_$m --load_model $m \
            --ctx_len 16 --micro_bsz 2 --exit_after_steps 3 --save_minutes 0 >train_$m.log 2>&1"
    done
    eq "3 steps logged" "$(grep -c loss p_small.pth/metrics.jsonl)" 3
    eq "same losses from .pth and converted safetensors" \
        "$(sed 's/.*"loss":\([^,]*\).*/\1/' p_small.pth/metrics.jsonl | tr '\n' ' ')" \
        "$(sed 's/.*"loss":\([^,]*\).*/\1/' p_small.st/metrics.jsonl | tr '\n' ' ')"
else
    echo "rwkv-train not built: training continuation not checked"
fi
finish
