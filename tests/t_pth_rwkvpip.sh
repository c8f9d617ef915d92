#!/bin/sh
# Our .pth runs in the `rwkv` pip package (RWKV_V7_ON=1, cpu fp32) with the same
# logits as our CPU model.  Skipped unless the package is importable by $PYTHON
# (pip install rwkv, or RWKV_PIP_DIR=unpacked wheel).  torch 1.13 lacks
# torch.load(mmap=True); tests/ref/rwkv_pip_logits.py drops that keyword.
. "$TOP/tests/lib.sh"
need_torch
[ -n "${RWKV_PIP_DIR:-}" ] && export PYTHONPATH="$RWKV_PIP_DIR${PYTHONPATH:+:$PYTHONPATH}"
RWKV_V7_ON=1 $PYTHON -c 'import rwkv.model' >/dev/null 2>&1 || { echo "rwkv pip package not importable"; exit 77; }
[ -f "$TOP/build/librwkv7c.a" ] || { echo "library not built"; exit 77; }
${CC:-cc} -O2 -fopenmp -I"$TOP/lib" "$TOP/tests/ref/pth_logits.c" "$TOP/build/librwkv7c.a" \
    -lzstd -lxxhash -llapacke -lopenblas -lm -lpthread -o pth_logits || { bad "build pth_logits"; finish; }
# an initialised model (logits of order 1), and an official-shaped one (no layer-0 v0/v1/v2)
check "rwkv-init -> our .pth" sh -c 'rwkv-init -q -L 2 -C 128 -s 1 -o m.st && pth-convert m.st ours.pth'
$PYTHON "$TOP/tests/ref/pth_fixtures.py" official torch.pth 128 2 >/dev/null
check "torch.save -> safetensors -> our .pth (official shape)" sh -c 'pth-convert torch.pth o.st && pth-convert o.st ours_off.pth'
toks="510,33,4000,65535,0,11"
for m in ours ours_off; do
    check "$m: our model's logits" ./pth_logits $m.pth $m.bin $(echo $toks | tr , ' ')
    check "$m: rwkv pip runs our .pth with the same logits" $PYTHON "$TOP/tests/ref/rwkv_pip_logits.py" $m "$toks" $m.bin
done
finish
