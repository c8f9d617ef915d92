# pipelines/pretrain.mk: JSONL corpus -> trained RWKV-7 model, with make's dependency tracking.
#
#   make -f pipelines/pretrain.mk DATA='a.jsonl b.jsonl.zst' OUT=DIR [VAR=value ...] [TARGET]
#
# Stages: shuffled copies | tokenize | binidx -> magic prime -> init -> train -> plot, sample.
# A second run does nothing; a changed variable re-runs the stages that use it and those after
# them; a killed run continues where it stopped.  Variables, targets and files: man 7 rwkv-pretrain
# (man/rwkv-pretrain.7).
#
# How changes are tracked: each stage has a stamp OUT/.pretrain/STAGE.vars listing its variables,
# rewritten only when that list changes (the GIT-CFLAGS technique), so its mtime tells make whether
# the stage's settings changed since its outputs were made.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:

# The tools: the build beside this file when there is one, else $PATH (an installed rwkv7c).
pretrain_top := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
ifneq ($(wildcard $(pretrain_top)/build/bin/rwkv-train),)
export PATH := $(pretrain_top)/build/bin:$(PATH)
endif

# --- variables (defaults: the tutorial's demo-training-run.sh where it has one) ---------------
DATA ?=
BINIDX ?=
OUT ?=
COPIES ?= 3
SEED ?= 42
MODEL_TYPE ?= x070
N_LAYER ?= 12
N_EMBD ?= 768
CTX_LEN ?= 512
M_BSZ ?= 16
LR_INIT ?= 6e-4
LR_FINAL ?= 6e-5
WARMUP_STEPS ?= 10
GRAD_CP ?= 1
EPOCH_SAVE ?= 10
MY_EXIT_TOKENS ?=
ACCELERATOR ?= cpu
N_NODE ?= 1
GPU_PER_NODE ?= 1
DS_BUCKET_MB ?= 2
STRATEGY ?= deepspeed_stage_2
TRAIN_ARGS ?=
LOAD_MODEL ?=
SAMPLE_PROMPT ?= The
SAMPLE_TOKENS ?= 100
# Monitors (empty: off).  Not training variables: changing them neither restarts nor re-runs training.
TENSORBOARD ?=
WANDB ?=

# The variables each stage depends on.  Changing one re-runs that stage and those that use its
# outputs (the init does not use the data: DATA and COPIES leave it alone).
data_vars   := DATA COPIES SEED
init_vars   := MODEL_TYPE N_LAYER N_EMBD SEED
magic_vars  := CTX_LEN
train_vars  := MODEL_TYPE CTX_LEN M_BSZ LR_INIT LR_FINAL WARMUP_STEPS GRAD_CP EPOCH_SAVE \
               MY_EXIT_TOKENS ACCELERATOR N_NODE GPU_PER_NODE DS_BUCKET_MB STRATEGY TRAIN_ARGS LOAD_MODEL
sample_vars := SAMPLE_PROMPT SAMPLE_TOKENS SEED

# --- checks made before anything runs -------------------------------------------------------
S := $(OUT)/.pretrain

ifeq ($(filter help,$(MAKECMDGOALS)),)
ifeq ($(strip $(OUT)),)
$(error OUT is not set: make -f pipelines/pretrain.mk DATA=FILE.jsonl OUT=DIR (see man 7 rwkv-pretrain))
endif
ifneq ($(words $(OUT)),1)
$(error OUT '$(OUT)' contains a space: make cannot handle such names)
endif
ifeq ($(strip $(DATA)$(BINIDX)),)
$(error DATA is not set: give the JSONL files (plain or zstd) as DATA='a.jsonl b.jsonl.zst', or an existing dataset as BINIDX=PREFIX)
endif
ifneq ($(and $(strip $(DATA)),$(strip $(BINIDX))),)
$(error give DATA (JSONL to tokenize) or BINIDX (an existing dataset), not both)
endif
$(foreach f,$(DATA),$(if $(wildcard $f),,$(error DATA: $f: no such file)))
ifeq ($(filter x070 x060,$(MODEL_TYPE)),)
$(error MODEL_TYPE $(MODEL_TYPE): x070 (RWKV-7) or x060 (RWKV-6))
endif
ifeq ($(shell PATH='$(PATH)' command -v rwkv-train),)
$(error rwkv-train not found: build rwkv7c first (make), or put its build/bin on PATH)
endif
endif

ifneq ($(strip $(BINIDX)),)
dataset := $(patsubst %.bin,%,$(patsubst %.idx,%,$(strip $(BINIDX))))
ifeq ($(filter help,$(MAKECMDGOALS)),)
$(if $(wildcard $(dataset).bin),,$(error BINIDX: $(dataset).bin: no such file))
$(if $(wildcard $(dataset).idx),,$(error BINIDX: $(dataset).idx: no such file))
endif
else
dataset := $(OUT)/data
endif

ifneq ($(strip $(LOAD_MODEL)),)
ifeq ($(filter help,$(MAKECMDGOALS)),)
$(if $(wildcard $(LOAD_MODEL)),,$(error LOAD_MODEL: $(LOAD_MODEL): no such file))
endif
start_model := $(strip $(LOAD_MODEL))
else
start_model := $(OUT)/rwkv-init.safetensors
endif
final := $(OUT)/rwkv-final.safetensors

# --- targets --------------------------------------------------------------------------------
.PHONY: all data magic init train plot sample help FORCE
all: plot sample
data: $(dataset).idx
magic: $(OUT)/magic-prime.txt
init: $(start_model)
train: $(final)
plot: $(OUT)/curves.svg
sample: $(OUT)/sample.txt

help:
	@echo 'make -f pipelines/pretrain.mk DATA=FILES OUT=DIR [VAR=value ...] [all|data|magic|init|train|plot|sample]'
	@echo 'variables: $(sort $(data_vars) $(init_vars) $(train_vars) $(sample_vars) BINIDX OUT)'
	@echo 'see man 7 rwkv-pretrain'

# A stage's stamp: rewritten only when its variables' values change, so that only then does
# its mtime move and make re-run the stage.
$(S)/%.vars: FORCE
	@mkdir -p $(@D)
	@printf '%s\n' $(foreach v,$($*_vars),'$(subst ','\'',$v=$($v))') >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
FORCE:

# Shuffle, tokenize and write the dataset under a temporary prefix, then rename: binidx-write
# alone cannot see that jsonl-shuf failed (pipefail can), and OUT/data.idx, the target, must
# appear only for a complete dataset.  The old .idx goes first so that it never pairs with a
# new .bin.  No shuffled JSONL is stored: it would take COPIES times the corpus on disk.
$(OUT)/data.idx: $(DATA) $(S)/data.vars
	@echo '== data: $(COPIES) shuffled copies -> $(OUT)/data.bin/.idx' >&2
	jsonl-shuf -n $(COPIES) -s $(SEED) $(DATA) | rwkv-tokenize | binidx-write -f $(S)/data-tmp
	rm -f $(OUT)/data.idx
	mv -f $(S)/data-tmp.bin $(OUT)/data.bin
	mv -f $(S)/data-tmp.idx $(OUT)/data.idx

# magic-prime validates the dataset and computes the trainer's --magic_prime and --my_exit_tokens.
$(OUT)/magic-prime.txt: $(dataset).idx $(S)/magic.vars
	@echo '== magic prime for ctx_len $(CTX_LEN)' >&2
	magic-prime -c $(CTX_LEN) $(dataset) >$@.tmp
	mv -f $@.tmp $@
	tail -n 1 $@ >&2

# (With LOAD_MODEL there is no init stage: that file is the user's, never overwritten.)
ifeq ($(strip $(LOAD_MODEL)),)
$(OUT)/rwkv-init.safetensors: $(S)/init.vars
	@echo '== init: L$(N_LAYER)-D$(N_EMBD) $(MODEL_TYPE) seed $(SEED)' >&2
	rwkv-init --model-type $(MODEL_TYPE) --n-layer $(N_LAYER) --n-embd $(N_EMBD) --seed $(SEED) -q -f -o $@
endif

# With ACCELERATOR=gpu, the CUDA build of the trainer beside this file (make cuda:
# build/cuda/bin/rwkv-train) when it is there, else rwkv-train from PATH.
ifeq ($(filter gpu cuda,$(ACCELERATOR)),)
RWKV_TRAIN ?= rwkv-train
else
RWKV_TRAIN ?= $(or $(wildcard $(pretrain_top)/build/cuda/bin/rwkv-train),rwkv-train)
endif

# Training.  rwkv-train resumes from the newest training state in OUT by itself; that is right
# only for the same run.  A run is identified by its variables and the exact dataset and init
# files (size and nanosecond mtime), recorded in OUT/.pretrain/train.run when it starts.  When
# they differ, the new run starts afresh: the old training states are deleted and the old run's
# weights, logs, curves and sample are moved to OUT/previous-run/ (replacing the one before), and
# so is wandb-run-id, so that with WANDB set the new run is a new wandb run.
train_flags = --load_model $(start_model) --wandb '$(WANDB)' --tensorboard '$(TENSORBOARD)' --proj_dir $(OUT) \
    --my_testing $(MODEL_TYPE) --ctx_len $(CTX_LEN) --train_stage 3 --epoch_count 999999 \
    --epoch_begin 0 --data_file $(dataset) --num_nodes $(N_NODE) --micro_bsz $(M_BSZ) \
    --n_layer $(N_LAYER) --n_embd $(N_EMBD) --lr_init $(LR_INIT) --lr_final $(LR_FINAL) \
    --warmup_steps $(WARMUP_STEPS) --beta1 0.9 --beta2 0.99 --adam_eps 1e-18 --data_type binidx \
    --vocab_size 65536 --weight_decay 0.001 --epoch_save $(EPOCH_SAVE) --head_size 64 \
    --accelerator $(ACCELERATOR) --devices $(GPU_PER_NODE) --precision bf16 \
    --strategy $(STRATEGY) --grad_cp $(GRAD_CP) --ds_bucket_mb $(DS_BUCKET_MB) $(TRAIN_ARGS)

$(final): $(dataset).idx $(OUT)/magic-prime.txt $(start_model) $(S)/train.vars
	@run_id=$$(cat $(S)/train.vars; stat -c '%n %s %y' $(dataset).bin $(dataset).idx $(start_model)); \
	if [ -f $(S)/train.run ] && [ "$$run_id" = "$$(cat $(S)/train.run)" ]; then \
	    echo '== train: continuing the run in $(OUT)' >&2; \
	else \
	    echo '== train: a new run in $(OUT)' >&2; \
	    ( cd $(OUT); shopt -s nullglob; \
	    rm -f train-state-*.safetensors; \
	    old=(); for f in rwkv-[0-9]*.safetensors rwkv-[0-9]*.pth rwkv-final.* metrics.jsonl train_log.txt \
	                     curves.svg sample.txt wandb-run-id wandb-bridge.log; do [ ! -e "$$f" ] || old+=("$$f"); done; \
	    if [ $${#old[@]} -gt 0 ]; then \
	        mkdir -p previous-run.tmp; mv -f "$${old[@]}" previous-run.tmp/; \
	        rm -rf previous-run; mv previous-run.tmp previous-run; \
	        echo "(the previous run's files are in $(OUT)/previous-run/)" >&2; \
	    fi ); \
	    printf '%s\n' "$$run_id" >$(S)/train.run.tmp; mv -f $(S)/train.run.tmp $(S)/train.run; \
	fi
	set -- $$(tail -n 1 $(OUT)/magic-prime.txt); \
	$(RWKV_TRAIN) $(train_flags) --magic_prime $$4 --my_exit_tokens $(or $(MY_EXIT_TOKENS),$$2)
	@test -f $@ || { echo "rwkv-train stopped before the end; run make again to continue" >&2; exit 1; }

$(OUT)/curves.svg: $(final)
	@echo '== plot: $(OUT)/curves.svg' >&2
	metrics-plot -f -t '$(OUT): L$(N_LAYER)-D$(N_EMBD) ctx $(CTX_LEN) lr $(LR_INIT)-$(LR_FINAL)' \
	    -o $@ $(OUT)/metrics.jsonl

sample_prompt = '$(subst ','\'',$(SAMPLE_PROMPT))'
$(OUT)/sample.txt: $(final) $(S)/sample.vars
	@echo '== sample: $(OUT)/sample.txt' >&2
	{ printf '%s' $(sample_prompt); \
	  rwkv-generate -m $(final) -p $(sample_prompt) -n $(SAMPLE_TOKENS) --temperature 0.8 -s $(SEED); \
	  echo; } >$@.tmp
	mv -f $@.tmp $@
	cat $@ >&2
