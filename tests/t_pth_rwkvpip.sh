#!/bin/sh
# Our .pth runs in the `rwkv` pip package (RWKV_V7_ON=1, cpu fp32) with the same
# logits as rwkv-generate.  Skipped unless the package is importable by $PYTHON
# (pip install rwkv, or RWKV_PIP_DIR=unpacked wheel).  torch 1.13 lacks
# torch.load(mmap=True); tests/ref/rwkv_pip_logits.py drops that keyword there.
. "$TOP/tests/lib.sh"
need_torch
[ -n "${RWKV_PIP_DIR:-}" ] && export PYTHONPATH="$RWKV_PIP_DIR${PYTHONPATH:+:$PYTHONPATH}"
RWKV_V7_ON=1 $PYTHON -c 'import rwkv.model' >/dev/null 2>&1 || { echo "rwkv pip package not importable"; exit 77; }
[ -x "$BIN/rwkv-generate" ] && [ -x "$BIN/rwkv-init" ] || { echo "rwkv-generate/rwkv-init not built"; exit 77; }
# an initialised model (logits of order 1), and an official-shaped one (no layer-0 v0/v1/v2)
check "rwkv-init -> our .pth" sh -c 'rwkv-init -q -L 2 -C 128 -s 1 -o m.st && pth-convert m.st ours.pth'
$PYTHON "$TOP/tests/ref/pth_fixtures.py" official torch.pth 128 2 >/dev/null
check "torch.save -> safetensors -> our .pth (official shape)" sh -c 'pth-convert torch.pth o.st && pth-convert o.st ours_off.pth'
prompt="The quick brown fox jumps over the lazy dog. 中文"
for m in ours ours_off; do
    check "$m: rwkv-generate logits" rwkv-generate -m $m.pth --prompt "$prompt" -n 0 --logits-out $m.bin
    check "$m: rwkv pip runs our .pth with the same logits" $PYTHON "$TOP/tests/ref/rwkv_pip_logits.py" $m "$prompt" $m.bin
done
finish
