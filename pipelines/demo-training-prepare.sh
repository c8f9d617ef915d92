#!/bin/sh
# The tutorial's demo-training-prepare.sh (RWKV-LM, RWKV-v7/train_temp), as a thin wrapper of
# pipelines/pretrain.mk: checks the binidx dataset DATA_FILE (and computes its magic prime for
# CTX_LEN), then writes the initial model PROJ_DIR/rwkv-init.safetensors.  Run
# demo-training-run.sh with the same variables next.
#
# The tutorial's variables and defaults; set any of them in the environment to change it:
#   MODEL_TYPE=x070 N_LAYER=12 N_EMBD=768 CTX_LEN=512 PROJ_DIR=out/L12-D768-x070
# and, where the tutorial hard-codes them: DATA_FILE=data/minipile (a binidx prefix), SEED=42.
# Get minipile as the tutorial does:
#   mkdir -p data
#   wget --continue -O data/minipile.idx https://huggingface.co/datasets/BlinkDL/minipile-tokenized/resolve/main/rwkv_vocab_v20230424/minipile.idx
#   wget --continue -O data/minipile.bin https://huggingface.co/datasets/BlinkDL/minipile-tokenized/resolve/main/rwkv_vocab_v20230424/minipile.bin
# or make your own dataset from JSONL with `make -f pipelines/pretrain.mk DATA=... OUT=... data`
# (see man 7 rwkv-pretrain).
set -eu
MODEL_TYPE=${MODEL_TYPE:-x070}
N_LAYER=${N_LAYER:-12}
N_EMBD=${N_EMBD:-768}
CTX_LEN=${CTX_LEN:-512}
PROJ_DIR=${PROJ_DIR:-out/L$N_LAYER-D$N_EMBD-$MODEL_TYPE}
DATA_FILE=${DATA_FILE:-data/minipile}
SEED=${SEED:-42}

# The caller's make variables must not leak into the pipeline's.
unset MAKEFLAGS MFLAGS MAKELEVEL
exec make -f "$(dirname "$0")/pretrain.mk" DATA= BINIDX="$DATA_FILE" OUT="$PROJ_DIR" \
    MODEL_TYPE="$MODEL_TYPE" N_LAYER="$N_LAYER" N_EMBD="$N_EMBD" CTX_LEN="$CTX_LEN" SEED="$SEED" \
    magic init
