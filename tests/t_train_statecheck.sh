#!/bin/sh
# A damaged training state is never used (review D4): its metadata carries a
# checksum and its step must match its file name.  One-bit flips across the
# header of the newest state (every 7th byte): each one either makes the run
# fall back to the older state with a warning naming the damage, or changes
# nothing (the resumed step gives the undamaged result); never a silent
# divergence, never a refusal to start while the intact older state exists.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy d 3000 7 || exit 1
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
mkdir p
cp init.safetensors p/rwkv-init.safetensors
T="rwkv-train --proj_dir p --data_file d --ctx_len 32 --micro_bsz 4 --save_minutes 0 --save_steps 1"
$T --exit_after_steps 10 2>/dev/null || exit 1
check "two states kept" test -f p/train-state-00000009.safetensors -a -f p/train-state-00000010.safetensors
# the undamaged resume, for comparison
cp -p p/train-state-00000009.safetensors s9
cp -p p/train-state-00000010.safetensors s10
$T --exit_after_steps 1 2>/dev/null || exit 1
cp p/train-state-00000011.safetensors want11
rm p/train-state-00000011.safetensors
cp -p s9 p/train-state-00000009.safetensors
cp -p s10 p/train-state-00000010.safetensors

# The reproduction of the review: "step" 100 -> 110 in the header.
$PYTHON - <<'PY'
p = 'p/train-state-00000010.safetensors'
b = bytearray(open(p, 'rb').read())
i = b.index(b'"step":"10"') + 9
b[i] ^= 2    # '1' -> '3': step 30
open(p, 'wb').write(b)
PY
$T --exit_after_steps 1 2>err.txt
eq "a damaged step exits 0" $? 0
check "... warns, naming the damage" grep -q 'warning: skipping p/train-state-00000010.safetensors: .*damaged training state: metadata checksum' err.txt
check "... resumes from the older state" grep -q 'resuming from p/train-state-00000009.safetensors (step 9' err.txt
check "... and writes no state beyond step 11" test -z "$(ls p | grep -v 'train-state-0000001[01]\|train-state-00000009\|rwkv-init\|metrics\|train_log')"
rm -f p/train-state-0000001[01].safetensors
cp -p s9 p/train-state-00000009.safetensors
cp -p s10 p/train-state-00000010.safetensors

# A state renamed to another step: the name and the header disagree.
mv p/train-state-00000010.safetensors p/train-state-00000012.safetensors
$T --exit_after_steps 1 2>err.txt
check "a state whose name says another step is skipped" grep -q 'skipping p/train-state-00000012.safetensors: damaged training state: its header says step 10, its name step 12' err.txt
rm -f p/train-state-000000*.safetensors
cp -p s9 p/train-state-00000009.safetensors
cp -p s10 p/train-state-00000010.safetensors

# The sweep (also flips the length prefix and the tensor checksums).
$U flipsweep p/train-state-00000010.safetensors 7 want11 p/train-state-00000009.safetensors,p/train-state-00000010.safetensors \
    "$T --exit_after_steps 1" >sweep.txt
rc=$?
cat sweep.txt
eq "every header flip falls back with a warning or changes nothing" $rc 0
finish
