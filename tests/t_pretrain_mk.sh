#!/bin/sh
# pipelines/pretrain.mk on the shipped demo corpus, on the CPU, with a tiny model
# (L2-D64, ctx 32, 20 steps): every output appears; a second make touches nothing;
# a new LR_INIT retrains without re-tokenizing; a new COPIES re-tokenizes and
# retrains; SIGKILL of the whole make during training, then make again, resumes
# and ends bit-identical to an uninterrupted run; a failed shuffle leaves no
# dataset; bad settings get clear errors.  Also BINIDX, LOAD_MODEL, the
# tutorial's two scripts and make demo's script, all built on pretrain.mk.
. "$TOP/tests/lib.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
data="$TOP/examples/demo.jsonl"
[ -f "$data" ] || { echo "no examples/demo.jsonl"; exit 77; }
command -v setsid >/dev/null || { echo "setsid missing"; exit 77; }
mkfile="$TOP/pipelines/pretrain.mk"

# pm OUT [VAR=value ...]: the pipeline with the test's tiny settings; output appended to OUT.log.
pm() {
    o=$1; shift
    make -f "$mkfile" DATA="$data" OUT="$o" COPIES=1 N_LAYER=2 N_EMBD=64 CTX_LEN=32 M_BSZ=4 \
        MY_EXIT_TOKENS=2560 TRAIN_ARGS='--save_steps 5' SAMPLE_TOKENS=8 "$@" >>"$o.log" 2>&1
}
# Every file under a directory with its size and nanosecond mtime.
snap() { find "$1" -type f -printf '%p %s %T@\n' | sort; }
mtime() { stat -c %y "$1"; }
steps() { grep -c '"step"' "$1"; }

if command -v man >/dev/null; then
    MANWIDTH=80 man -l --warnings "$TOP/man/rwkv-pretrain.7" >man.txt 2>man.err
    check "man page renders without warnings" test -s man.txt -a ! -s man.err
fi

check "first run" pm o
for f in data.bin data.idx magic-prime.txt rwkv-init.safetensors rwkv-final.safetensors \
         metrics.jsonl train_log.txt curves.svg sample.txt; do
    check "output $f" test -s o/$f
done
eq "20 training steps" "$(steps o/metrics.jsonl)" 20
check "sample starts with the prompt" grep -q '^The' o/sample.txt
check "no temporaries left" sh -c '! find o -name "*.tmp*" | grep -q .'

snap o >before
check "second run" pm o
snap o >after
check "second run touches nothing" cmp -s before after
check "a monitor alone (TENSORBOARD) is no training variable" pm o TENSORBOARD="$PWD/tb"
snap o >after
check "...it re-runs nothing" cmp -s before after

bin=$(mtime o/data.bin); init=$(mtime o/rwkv-init.safetensors); final=$(mtime o/rwkv-final.safetensors)
mv o.log o.log.1   # each check below reads the log of its own make
echo run-1 >o/wandb-run-id   # as rwkv-train --wandb leaves it
check "LR_INIT=1e-3" pm o LR_INIT=1e-3 TENSORBOARD="$PWD/tb"
check "LR_INIT: TENSORBOARD reached rwkv-train" sh -c 'ls tb/events.out.tfevents.* >/dev/null'
eq "LR_INIT: data.bin not rewritten" "$(mtime o/data.bin)" "$bin"
eq "LR_INIT: rwkv-init not rewritten" "$(mtime o/rwkv-init.safetensors)" "$init"
check "LR_INIT: retrained" test "$(mtime o/rwkv-final.safetensors)" != "$final"
check "LR_INIT: a new run, from step 0" grep -q 'starting from o/rwkv-init.safetensors (step 0' o.log
check "LR_INIT: the new rate in the log" grep -q "'lr_init': 0.001," o/train_log.txt
eq "LR_INIT: 20 steps, none left from the old run" "$(steps o/metrics.jsonl)" 20
check "LR_INIT: old run kept in previous-run/" test -s o/previous-run/rwkv-final.safetensors
check "LR_INIT: a new wandb run" test ! -e o/wandb-run-id -a -s o/previous-run/wandb-run-id

final=$(mtime o/rwkv-final.safetensors)
size1=$(stat -c %s o/data.bin)
mv o.log o.log.2
check "COPIES=2" pm o LR_INIT=1e-3 COPIES=2
check "COPIES: data.bin rewritten" test "$(mtime o/data.bin)" != "$bin"
eq "COPIES: twice the tokens" "$(stat -c %s o/data.bin)" $((2 * size1))
check "COPIES: retrained" test "$(mtime o/rwkv-final.safetensors)" != "$final"
check "COPIES: a new run, from step 0" grep -q 'starting from o/rwkv-init.safetensors (step 0' o.log

# The same settings in a fresh directory, killed (make and all its children, as a
# crash would) once a training state exists, then run again.
: >o2.log
setsid make -f "$mkfile" DATA="$data" OUT=o2 COPIES=2 N_LAYER=2 N_EMBD=64 CTX_LEN=32 M_BSZ=4 \
    MY_EXIT_TOKENS=2560 TRAIN_ARGS='--save_steps 5' SAMPLE_TOKENS=8 LR_INIT=1e-3 >>o2.log 2>&1 &
pid=$!
i=0
while [ $i -lt 1200 ] && ! ls o2/train-state-*.safetensors >/dev/null 2>&1; do sleep 0.05; i=$((i + 1)); done
kill -KILL -$pid 2>/dev/null
wait $pid 2>/dev/null
sleep 0.2
check "killed during training" test ! -e o2/rwkv-final.safetensors
check "a training state survived" sh -c 'ls o2/train-state-*.safetensors >/dev/null 2>&1'
check "make after the kill" pm o2 LR_INIT=1e-3 COPIES=2
check "after the kill: continued the same run" grep -q 'continuing the run in o2' o2.log
check "after the kill: resumed from a state" grep -q 'resuming from o2/train-state-' o2.log
check "after the kill: not re-tokenized" sh -c '[ $(grep -c "== data" o2.log) -eq 1 ]'
check "resumed run equals the uninterrupted one" cmp o/rwkv-final.safetensors o2/rwkv-final.safetensors
eq "resumed run: 20 records of 20 distinct steps" \
    "$(steps o2/metrics.jsonl) $(sed 's/.*"step":\([0-9]*\).*/\1/' o2/metrics.jsonl | sort -un | wc -l)" "20 20"
check "after the kill: plot and sample" test -s o2/curves.svg -a -s o2/sample.txt

# An existing dataset (BINIDX) and a given starting model (LOAD_MODEL): no data or init stage.
check "BINIDX + LOAD_MODEL" pm o5 DATA= BINIDX=o/data LOAD_MODEL=o/rwkv-init.safetensors \
    MY_EXIT_TOKENS=1280 WARMUP_STEPS=2 train
check "LOAD_MODEL: trained from it" grep -q 'starting from o/rwkv-init.safetensors (step 0' o5.log
check "BINIDX, LOAD_MODEL: no dataset, no init in OUT" \
    test ! -e o5/data.idx -a ! -e o5/rwkv-init.safetensors -a -s o5/rwkv-final.safetensors

# The tutorial's scripts (their variables from the environment), on that dataset.
check "demo-training-prepare.sh" sh -c 'N_LAYER=2 N_EMBD=64 CTX_LEN=32 DATA_FILE=o/data \
    sh "$TOP/pipelines/demo-training-prepare.sh" >prep.log 2>&1'
check "prepare: rwkv-init in the tutorial's PROJ_DIR" test -s out/L2-D64-x070/rwkv-init.safetensors
check "prepare: the magic prime, no training" test -s out/L2-D64-x070/magic-prime.txt -a ! -e out/L2-D64-x070/metrics.jsonl
check "demo-training-run.sh" sh -c 'N_LAYER=2 N_EMBD=64 CTX_LEN=32 DATA_FILE=o/data M_BSZ=4 WARMUP_STEPS=2 \
    MY_EXIT_TOKENS=1280 sh "$TOP/pipelines/demo-training-run.sh" >run.log 2>&1'
check "run: trained, plotted, sampled" test -s out/L2-D64-x070/rwkv-final.safetensors -a -s out/L2-D64-x070/curves.svg \
    -a -s out/L2-D64-x070/sample.txt
check "run: the tutorial's flags" grep -q -- '--micro_bsz 4 .*--lr_init 6e-4 --lr_final 6e-5 .*--adam_eps 1e-18 .*--weight_decay 0.001 --epoch_save 10 .*--accelerator cpu --devices 1 --precision bf16 --strategy deepspeed_stage_2 --grad_cp 1 --ds_bucket_mb 2' run.log
check "run: not re-initialised" sh -c '! grep -q "^rwkv-init " run.log'

# make demo's script runs on pretrain.mk: a second run trains nothing and still summarises.
check "demo.sh" sh -c 'DEMO_DIR=$PWD/dm DEMO_TOKENS=6144 DEMO_EMBD=64 sh "$TOP/pipelines/demo.sh" >demo.log 2>&1'
check "demo.sh: trained and sampled" test -s dm/run/rwkv-final.safetensors -a -s dm/run/sample.txt -a -s dm/run/curves.svg
final=$(mtime dm/run/rwkv-final.safetensors)
check "demo.sh again" sh -c 'DEMO_DIR=$PWD/dm DEMO_TOKENS=6144 DEMO_EMBD=64 sh "$TOP/pipelines/demo.sh" >demo2.log 2>&1'
eq "demo.sh again: not retrained" "$(mtime dm/run/rwkv-final.safetensors)" "$final"
check "demo.sh again: the summary" grep -q '^mean loss: first 10 steps' demo2.log

# A failed shuffle (truncated zstd input) leaves no dataset: pipefail sees it.
if command -v zstd >/dev/null; then
    zstd -q -c "$data" | head -c 5000 >bad.jsonl.zst
    if make -f "$mkfile" DATA=bad.jsonl.zst OUT=o3 COPIES=1 data >o3.log 2>&1; then
        bad "truncated zstd DATA: make exited 0"
    else
        ok "truncated zstd DATA: make fails"
    fi
    check "truncated zstd DATA: no data.idx" test ! -e o3/data.idx
    check "truncated zstd DATA: no data.bin" test ! -e o3/data.bin
fi

expect_fail "MODEL_TYPE x050 refused" "x070 (RWKV-7) or x060 (RWKV-6)" make -f "$mkfile" DATA="$data" OUT=o4 MODEL_TYPE=x050
check "MODEL_TYPE x060: the init stage makes an x060 model" sh -c "make -f '$mkfile' DATA='$data' OUT=o6 MODEL_TYPE=x060 N_LAYER=2 N_EMBD=64 o6/rwkv-init.safetensors >/dev/null 2>&1 && pth-convert --info o6/rwkv-init.safetensors | grep -q x060"
expect_fail "no OUT" "OUT is not set" make -f "$mkfile" DATA="$data"
expect_fail "missing DATA file" "DATA: nosuch.jsonl: no such file" make -f "$mkfile" DATA=nosuch.jsonl OUT=o4
mv o.log o.log.3
# (GPU_PER_NODE=N trains N CPU ranks now; several nodes need a launcher on each)
if pm o LR_INIT=1e-3 COPIES=2 MY_EXIT_TOKENS=40960 N_NODE=2; then bad "N_NODE=2: make exited 0"; else ok "N_NODE=2: make fails"; fi
check "N_NODE=2: rwkv-train's own error" grep -q "num_nodes 2 needs a launcher on each node" o.log
finish
