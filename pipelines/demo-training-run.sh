#!/bin/sh
# The tutorial's demo-training-run.sh (RWKV-LM, RWKV-v7/train_temp), as a thin wrapper of
# pipelines/pretrain.mk: trains on the binidx dataset DATA_FILE in PROJ_DIR with the tutorial's
# flags, then plots the curves and writes a sample.  Run demo-training-prepare.sh first (or not:
# the model is initialised when missing).
#
# The tutorial's variables and defaults; set any of them in the environment to change it:
#   MODEL_TYPE=x070 N_LAYER=12 N_EMBD=768 CTX_LEN=512 PROJ_DIR=out/L12-D768-x070
#   M_BSZ=16 LR_INIT=6e-4 LR_FINAL=6e-5 GRAD_CP=1 EPOCH_SAVE=10
#   N_NODE=1 GPU_PER_NODE=1 DS_BUCKET_MB=2
# and, where the tutorial hard-codes them: DATA_FILE=data/minipile (a binidx prefix),
# WARMUP_STEPS=10, SEED=42, ACCELERATOR=cpu (the tutorial's gpu needs the CUDA backend), and
# MY_EXIT_TOKENS (default: the dataset's size; --magic_prime is always computed from the data,
# for minipile at ctx_len 512 the tutorial's 1498226207 and 2926181).
#
# Unlike the tutorial, nothing is deleted by hand first: run again after an interruption and
# training continues from PROJ_DIR's last training state; run again after changing a variable
# and a new run starts, the previous run's files moved to PROJ_DIR/previous-run/; run again
# after it finished and nothing is done.
set -eu
MODEL_TYPE=${MODEL_TYPE:-x070}
N_LAYER=${N_LAYER:-12}
N_EMBD=${N_EMBD:-768}
CTX_LEN=${CTX_LEN:-512}
PROJ_DIR=${PROJ_DIR:-out/L$N_LAYER-D$N_EMBD-$MODEL_TYPE}
M_BSZ=${M_BSZ:-16}
LR_INIT=${LR_INIT:-6e-4}
LR_FINAL=${LR_FINAL:-6e-5}
GRAD_CP=${GRAD_CP:-1}
EPOCH_SAVE=${EPOCH_SAVE:-10}
N_NODE=${N_NODE:-1}
GPU_PER_NODE=${GPU_PER_NODE:-1}
DS_BUCKET_MB=${DS_BUCKET_MB:-2}
DATA_FILE=${DATA_FILE:-data/minipile}
WARMUP_STEPS=${WARMUP_STEPS:-10}
SEED=${SEED:-42}
ACCELERATOR=${ACCELERATOR:-cpu}
MY_EXIT_TOKENS=${MY_EXIT_TOKENS:-}

# The caller's make variables must not leak into the pipeline's.
unset MAKEFLAGS MFLAGS MAKELEVEL
exec make -f "$(dirname "$0")/pretrain.mk" DATA= BINIDX="$DATA_FILE" OUT="$PROJ_DIR" \
    MODEL_TYPE="$MODEL_TYPE" N_LAYER="$N_LAYER" N_EMBD="$N_EMBD" CTX_LEN="$CTX_LEN" SEED="$SEED" \
    M_BSZ="$M_BSZ" LR_INIT="$LR_INIT" LR_FINAL="$LR_FINAL" GRAD_CP="$GRAD_CP" \
    EPOCH_SAVE="$EPOCH_SAVE" N_NODE="$N_NODE" GPU_PER_NODE="$GPU_PER_NODE" \
    DS_BUCKET_MB="$DS_BUCKET_MB" WARMUP_STEPS="$WARMUP_STEPS" ACCELERATOR="$ACCELERATOR" \
    MY_EXIT_TOKENS="$MY_EXIT_TOKENS" all
