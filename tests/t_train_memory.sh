#!/bin/sh
# rwkv-train's memory figure (--dry-run "memory" line, and the refusal of a
# batch that cannot fit) covers what a CPU run really uses: the backend's
# weights, moments, gradient and activations, and the trainer's 7 host fp32
# copies (last good and new state for the non-finite rollback, the weights it
# saves) with the bf16 checkpoint it saves.  Measured: the peak resident size
# of short runs that save every step, fresh and resumed, stays under the plan.
. "$TOP/tests/lib.sh"
# A sanitizer build's shadow memory and quarantine are not the program's.
case "${ASAN_OPTIONS:-}" in *log_path=*) echo "sanitizer build: resident size is not comparable"; exit 77 ;; esac
U="$PYTHON $TOP/tests/train_util.py"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
$U copy d 3000 7 || exit 1
mkdir p
# 13.8 M parameters: the weight-sized buffers dominate the activations (ctx 32 x 2).
rwkv-init -L 4 -C 512 --vocab-size 16 -s 1 -q -o p/rwkv-init.safetensors || exit 1
T="rwkv-train --proj_dir p --data_file d --ctx_len 32 --micro_bsz 2 --save_minutes 0 --save_steps 1"
# MiB the plan gives, and the peak resident MiB of a run (its children's ru_maxrss).
planned() { $T --dry-run 2>/dev/null | awk '$1 == "memory" { print int($3) }'; }
peak() {
    "$PYTHON" -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:], stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024 if rc == 0 else -1)' $T "$@"
}
plan=$(planned)
check "the plan has a memory figure ($plan MiB)" test -n "$plan"
fresh=$(peak --exit_after_steps 2)
check "a fresh run of 2 steps: peak ${fresh} MiB <= plan ${plan} MiB" test "$fresh" -ge 0 -a "$fresh" -le "${plan:-0}"
resumed=$(peak --exit_after_steps 1)
check "a resumed run: peak ${resumed} MiB <= plan ${plan} MiB" test "$resumed" -ge 0 -a "$resumed" -le "${plan:-0}"
# Not a blanket overestimate either: within a third of the measured peak.
check "the plan is within 4/3 of the peak" test $((plan * 3)) -le $((fresh * 4))
finish
