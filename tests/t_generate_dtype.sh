#!/bin/sh
# rwkv-generate --dtype: the decode path with bf16 weights (lib/matvec.c) against fp32.
# - fp32 checkpoint with random weights (tests/ref/x070.py: every matrix random, the
#   output ones included, not a fresh init where they are zero), a one-token prompt
#   (so its logits come from the decode path): fp32 matches the PyTorch reference,
#   bf16 is within the documented tolerance (rwkv-generate(1): max |diff| <= 1/64 of
#   the largest |logit|), and the default for an fp32 checkpoint is fp32.
# - bf16 checkpoint: the bf16 copies are the weights themselves, and matvec sums the
#   same products in the same order, so bf16 and fp32 logits and greedy text are equal.
. "$TOP/tests/lib.sh"
need_torch
ref="$TOP/tests/ref/x070.py"
# "Hello" is one token (33155) of the RWKV World vocabulary
diff_rel() {  # A B [REF] -> max|A-B| / max|B| printed; fails above $4 (default 1/64)
    "$PYTHON" - "$@" <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], "<f4")
b = np.fromfile(sys.argv[2], "<f4")
if sys.argv[2].endswith("logits.f32"): b = b.reshape(-1, 65536)[-1]
bound = float(sys.argv[3])
err = np.abs(a - b).max() / np.abs(b).max() if a.shape == b.shape else float("inf")
print("max |diff| / max |logit| = %.2e (bound %.2e)" % (err, bound))
sys.exit(0 if err <= bound else 1)
PY
}
for L in 2 3; do
    check "random fp32 model L$L" "$PYTHON" "$ref" f$L --layers $L --embd 128 --vocab 65536 --ranks 32,32,32,32 \
        --tokens 33155 --seed $((20 + L)) --no-grad
    for dt in fp32 bf16; do
        check "L$L --dtype $dt --logits-out" rwkv-generate -m f$L/model.safetensors --prompt Hello -n 0 --dtype $dt --logits-out l$L.$dt
    done
    check "L$L fp32 decode = PyTorch reference" diff_rel l$L.fp32 f$L/logits.f32 1e-4
    check "L$L bf16 decode within 1/64 of fp32" diff_rel l$L.bf16 l$L.fp32 0.015625
    check "L$L bf16 differs from fp32 (the weights were rounded)" sh -c "! cmp -s l$L.bf16 l$L.fp32"
done
check "default dtype of an fp32 checkpoint: fp32" sh -c 'rwkv-generate -m f2/model.safetensors --prompt Hello -n 0 --logits-out ld && cmp ld l2.fp32'
check "random bf16 model" "$PYTHON" "$ref" b --layers 2 --embd 128 --vocab 65536 --ranks 32,32,32,32 --tokens 33155 --seed 7 --bf16 --no-grad
for dt in fp32 bf16; do
    check "bf16 checkpoint --dtype $dt" rwkv-generate -m b/model.safetensors --prompt Hello -n 0 --dtype $dt --logits-out lb.$dt
done
check "bf16 checkpoint: bf16 logits = fp32 logits" cmp lb.bf16 lb.fp32
g32=$(rwkv-generate -m b/model.safetensors --prompt Hello -n 16 --temperature 0 --dtype fp32)
g16=$(rwkv-generate -m b/model.safetensors --prompt Hello -n 16 --temperature 0 --dtype bf16)
eq "bf16 checkpoint: greedy text the same in both dtypes" "$g16" "$g32"
[ -n "$g16" ] && ok "greedy text not empty" || bad "greedy text empty"
expect_fail "--dtype f16 refused" "invalid value 'f16' for --dtype" rwkv-generate -m b/model.safetensors --dtype f16
rwkv-generate -m b/model.safetensors --dtype x >/dev/null 2>&1; eq "bad --dtype: exit 2" $? 2
finish
