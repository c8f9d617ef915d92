#!/bin/sh
# rwkv-train never writes a training state holding a non-finite value, whatever
# the flags (review D3, D9): an update that would overflow (huge head weights,
# --grad_clip 0, so g^2 overflows fp32 in Adam's v) is skipped with the weights
# and moments kept, K in a row stop the run with exit 4 and a finite state that
# the next run resumes from; --adam_eps 0 is refused at start (exit 2).
. "$TOP/tests/lib.sh"
need_torch
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy d 3000 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
mkdir q
$U scale init.safetensors q/rwkv-init.safetensors head.weight 1e15 || exit 1
T="rwkv-train --proj_dir q --data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0 --grad_clip 0"

$T --exit_after_steps 3 2>err.txt
eq "overflowing updates stop the run with exit 4" $? 4
check "... each one skipped, naming what would overflow" grep -q 'step 0: the update would make adam_v of .* non-finite .*update skipped, weights and moments kept' err.txt
check "... the message points at --grad_clip 0" grep -q -- '--grad_clip 0 turns clipping off' err.txt
check "... the stop says the updates were not applied" grep -q 'stopping: 3 non-finite steps in a row (last at step 2); their updates were not applied' err.txt
check "... and where the state is" grep -q 'state saved as q/train-state-00000003.safetensors (step 3)' err.txt
check "... no claim about an older state" test "$(grep -c 'newest training state' err.txt)" -eq 0
check "the saved state is finite" $U finite q/train-state-00000003.safetensors
$T --exit_after_steps 1 2>err2.txt
check "the next run resumes from it (no silent restart)" grep -q 'resuming from q/train-state-00000003.safetensors (step 3' err2.txt
check "... and does not skip it" test "$(grep -c 'skipping' err2.txt)" -eq 0

# With clipping (the default) the same weights train normally.
mkdir c
cp q/rwkv-init.safetensors c/
rwkv-train --proj_dir c --data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0 --exit_after_steps 3 2>/dev/null
eq "--grad_clip 1 control exits 0" $? 0
check "... with a finite state" $U finite c/train-state-00000003.safetensors

# --adam_eps 0 would divide 0 by 0: refused before anything is written.
mkdir nf
cp init.safetensors nf/rwkv-init.safetensors
rwkv-train --proj_dir nf --data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0 --adam_eps 0 --exit_after_steps 20 2>err.txt
eq "--adam_eps 0 exits 2" $? 2
check "... saying why" grep -q "invalid value '0' for --adam_eps (want a number > 0 .*divides 0 by 0" err.txt
check "... nothing written" test "$(ls nf)" = rwkv-init.safetensors
rwkv-train --proj_dir nf --data_file d --ctx_len 32 --micro_bsz 4 --adam_eps 1e-50 --dry-run >/dev/null 2>err.txt
eq "--adam_eps 1e-50 (0 in fp32) exits 2" $? 2
finish
