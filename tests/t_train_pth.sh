#!/bin/sh
# rwkv-train --save_format pth|both: rwkv-E.pth / rwkv-final.pth load with
# torch.load(weights_only=True) and equal the safetensors weights bit for bit;
# rwkv-generate gives the same logits from either; a start from the newest
# rwkv-N.pth or rwkv-init.pth follows the reference (no training state), and
# .pth files never disturb the training-state resume.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
need_torch
$U copy data 3000 7 || exit 1
mkdir p q r s t
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
cp init.safetensors p/rwkv-init.safetensors
# ctx_len 2 x micro_bsz 96: a miniepoch is 420 steps; exit at step 430.
common="--data_file data --ctx_len 2 --micro_bsz 96 --my_exit_tokens 82560 --allow_repeat --epoch_save 1 --save_minutes 0"

rwkv-train --save_format bogus --proj_dir p $common >/dev/null 2>err.txt; eq "--save_format bogus exits 2" $? 2
check "... names the value" grep -q "invalid value 'bogus' for --save_format" err.txt
check "--save_format both" rwkv-train --proj_dir p $common --save_format both 2>err.txt
check "... says it wrote both finals" grep -q 'wrote p/rwkv-final.safetensors and p/rwkv-final.pth' err.txt
for f in rwkv-0 rwkv-final; do
    check "$f.pth and $f.safetensors written" test -f p/$f.pth -a -f p/$f.safetensors
    check "$f.pth: torch.load(weights_only=True) equals $f.safetensors" $U cmppth p/$f.pth p/$f.safetensors
done
check "the comparison can fail (rwkv-0.pth vs rwkv-final)" sh -c "! $U cmppth p/rwkv-0.pth p/rwkv-final.safetensors >/dev/null 2>&1"
# Prompt: a tab (token 10, inside the 16-token vocabulary).
tab=$(printf '\t')
check "rwkv-generate runs rwkv-final.pth" rwkv-generate -m p/rwkv-final.pth -p "$tab" -n 8 --temperature 0 --logits-out pth.logits
check "rwkv-generate runs rwkv-final.safetensors" rwkv-generate -m p/rwkv-final.safetensors -p "$tab" -n 8 --temperature 0 --logits-out st.logits
check "same logits from .pth and .safetensors" cmp pth.logits st.logits
check "logits written (16 floats)" test "$(wc -c <pth.logits)" -eq 64

# --save_format pth: only .pth weights; training states stay safetensors and resume as before.
cp init.safetensors q/rwkv-init.safetensors
check "--save_format pth, stopped at step 5" rwkv-train --proj_dir q $common --save_format pth --exit_after_steps 5 2>/dev/null
check "resume beside .pth files" rwkv-train --proj_dir q $common --save_format pth 2>err.txt
check "... from the training state" grep -q 'resuming from q/train-state-00000005.safetensors (step 5' err.txt
check "... wrote rwkv-final.pth" grep -q 'wrote q/rwkv-final.pth$' err.txt
check "no safetensors weights" test ! -f q/rwkv-0.safetensors -a ! -f q/rwkv-final.safetensors
check "rwkv-0.pth and rwkv-final.pth" test -f q/rwkv-0.pth -a -f q/rwkv-final.pth
check "same weights as --save_format both" cmp q/rwkv-final.pth p/rwkv-final.pth
check "same final state" $U cmpstate p/train-state-00000430.safetensors q/train-state-00000430.safetensors
expect_fail "--resume never sees rwkv-final.pth" "already holds a run" \
    sh -c 'rm q/train-state-* q/metrics.jsonl q/train_log.txt q/rwkv-0.pth; rwkv-train --proj_dir q '"$common"' --resume never'

# The reference's start without a training state: the newest rwkv-N, .pth included.
cp p/rwkv-0.pth r/
rwkv-train --proj_dir r $common --exit_after_steps 2 2>err.txt
check "starts from rwkv-0.pth at miniepoch 1" grep -q 'starting from r/rwkv-0.pth (step 420, miniepoch 1)' err.txt
cp p/rwkv-0.safetensors s/
rwkv-train --proj_dir s $common --exit_after_steps 2 2>/dev/null
check "... same weights as from rwkv-0.safetensors" $U cmpstate r/train-state-00000422.safetensors s/train-state-00000422.safetensors
cp p/rwkv-0.safetensors t/rwkv-0.safetensors
printf 'PK\003\004 damaged' >t/rwkv-1.pth
rwkv-train --proj_dir t $common --exit_after_steps 1 2>err.txt
check "a damaged newer rwkv-1.pth is skipped" grep -q 'warning: skipping t/rwkv-1.pth' err.txt
check "... the warning names it once" test "$(grep -o 't/rwkv-1.pth' err.txt | wc -l)" -eq 1
check "... and rwkv-0.safetensors used" grep -q 'starting from t/rwkv-0.safetensors (step 420' err.txt
mkdir u
pth-convert init.safetensors u/rwkv-init.pth 2>/dev/null || exit 1
rwkv-train --proj_dir u $common --exit_after_steps 1 2>err.txt
check "rwkv-init.pth is a starting point too" grep -q 'starting from u/rwkv-init.pth (step 0' err.txt
finish
