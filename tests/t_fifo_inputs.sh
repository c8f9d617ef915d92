#!/bin/sh
# A FIFO among the named inputs that are mmap'd or sniffed (checkpoints, train
# states, .pth/safetensors, the vocabulary) is refused at once with "not a
# regular file" instead of blocking in open() for a writer that never comes (D11).
# Each command runs under timeout 10: exit 124 means it hung.
. "$TOP/tests/lib.sh"
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkfifo fifo || { echo "mkfifo unavailable"; exit 77; }

# refused NAME COMMAND...: exit 1 within 10 s, "not a regular file" on stderr
refused() {
    d=$1; shift
    timeout 10 "$@" >out.txt 2>err.txt; rc=$?
    if [ $rc -eq 124 ]; then bad "$d: hung (killed by timeout)"; return; fi
    eq "$d: exit status" "$rc" 1
    if grep -qF "not a regular file" err.txt; then ok "$d: message"; else bad "$d: message: $(head -c 300 err.txt)"; fi
}

refused "pth-convert --info FIFO" pth-convert --info fifo
refused "pth-convert FIFO OUT" pth-convert fifo out.safetensors
check "pth-convert FIFO OUT leaves no output" test ! -e out.safetensors
refused "rwkv-tokenize --vocab FIFO" rwkv-tokenize --vocab fifo -t /dev/null
refused "rwkv-generate -m FIFO" rwkv-generate -m fifo -p hello -n 1

rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o init.safetensors || exit 1
$U copy data 3000 7 || exit 1
T="rwkv-train --data_file data --ctx_len 32 --micro_bsz 4 --epoch_count 1 --epoch_steps 1"

# a FIFO where discovery looks for the starting checkpoint
mkdir p1 && mkfifo p1/rwkv-init.safetensors
refused "rwkv-train: FIFO rwkv-init.safetensors in --proj_dir" $T --proj_dir p1

# a FIFO named like a train state beside a good starting checkpoint: it must not
# hang discovery; it is either refused or passed over with a warning
mkdir p2 && cp init.safetensors p2/rwkv-init.safetensors && mkfifo p2/train-state-00000100.safetensors
timeout 10 $T --proj_dir p2 >out.txt 2>err.txt; rc=$?
if [ $rc -eq 124 ]; then bad "rwkv-train: FIFO train-state in --proj_dir: hung"
else check "rwkv-train: FIFO train-state named on stderr" grep -qF "not a regular file" err.txt; fi

# stdin ('-') keeps working where it worked
rwkv-init -L 2 -C 64 --vocab-size 16 -s 3 -q -o small.safetensors || exit 1
check "pth-convert - still reads stdin" sh -c 'pth-convert - small.pth < small.safetensors'
check "pth-convert FIFO via stdin still works" sh -c 'cat small.safetensors | pth-convert --info - | grep -q safetensors'
finish
