#!/bin/sh
# rwkv-generate --accelerator gpu through the CPU emulation (build/cuda-emu/bin/rwkv-generate: the
# CUDA decoder of cuda/backend_cuda.cu, every kernel run on the CPU):
#  - a random fp32 model (tests/ref/x070.py: every matrix random, the output ones too): the
#    logits after a prompt within 1/32 of the largest |logit| of the CPU's fp32 logits (the GPU
#    keeps weights and activations in bf16; measured ~0.008) and the same most likely token;
#  - a prompt longer than one prefill chunk (128 tokens): the same bound;
#  - greedy decoding and --chat run, the state carried from turn to turn;
#  - what it refuses: --dtype fp32 on the GPU, a build without CUDA, an unknown accelerator.
. "$TOP/tests/lib.sh"
need_torch
gen="$TOP/build/cuda-emu/bin/rwkv-generate"
[ -x "$gen" ] || { echo "no emulated CUDA rwkv-generate (make cuda-emu needs the CUDA toolkit's headers)"; exit 77; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
close() {  # A B BOUND: max|A-B| / max|B| <= BOUND and the same argmax
    "$PYTHON" - "$@" <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], "<f4"); b = np.fromfile(sys.argv[2], "<f4")
err = np.abs(a - b).max() / np.abs(b).max() if a.shape == b.shape else float("inf")
print("max |gpu - cpu| / max |logit| = %.2e (bound %s); argmax gpu %d cpu %d" % (err, sys.argv[3], a.argmax(), b.argmax()))
sys.exit(0 if err <= float(sys.argv[3]) and a.argmax() == b.argmax() else 1)
PY
}
check "random fp32 model" "$PYTHON" "$TOP/tests/ref/x070.py" m --layers 2 --embd 128 --vocab 65536 --ranks 32,32,32,32 \
    --tokens 33155 --seed 22 --no-grad
P="The quick brown fox jumps over the lazy dog, and then it"
check "CPU fp32 logits" rwkv-generate -m m/model.safetensors --prompt "$P" -n 0 --dtype fp32 --logits-out cpu.f32
check "GPU logits" "$gen" -m m/model.safetensors --prompt "$P" -n 0 --accelerator gpu --logits-out gpu.f32
check "GPU within 1/32 of the CPU in fp32" close gpu.f32 cpu.f32 0.03125
long=$("$PYTHON" -c 'print(" ".join("word%d" % i for i in range(120)))')
check "long prompt, CPU" rwkv-generate -m m/model.safetensors --prompt "$long" -n 0 --dtype fp32 --logits-out cpu-long.f32
check "long prompt (several prefill chunks), GPU" "$gen" -m m/model.safetensors --prompt "$long" -n 0 --accelerator gpu --logits-out gpu-long.f32
check "long prompt: GPU within 1/32 of the CPU" close gpu-long.f32 cpu-long.f32 0.03125
out=$("$gen" -m m/model.safetensors --prompt "$P" -n 12 --temperature 0 --accelerator gpu)
eq "greedy decoding on the GPU exits 0" $? 0
[ -n "$out" ] && ok "... and prints text" || bad "... no text"
printf 'hello\nand again\n' | "$gen" -m m/model.safetensors --chat -n 6 --temperature 0 --accelerator gpu >chat.txt
eq "--chat on the GPU exits 0" $? 0
expect_fail "--dtype fp32 on the GPU refused" "the GPU decoder holds the weights in bf16" \
    "$gen" -m m/model.safetensors --prompt x --accelerator gpu --dtype fp32
expect_fail "a build without CUDA says how to get one" "this build has no CUDA backend (build it with \`make cuda\`" \
    rwkv-generate -m m/model.safetensors --prompt x --accelerator gpu
rwkv-generate -m m/model.safetensors --prompt x --accelerator tpu >/dev/null 2>err.txt
eq "an unknown accelerator: exit 2" $? 2
finish
