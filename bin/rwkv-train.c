/* rwkv-train: pre-train an RWKV-7 (x070) model on a binidx data set with the
 * reference's sampling, optimizer and schedule (RWKV-LM-V7 train.py,
 * src/dataset.py, src/trainer.py),
 * saving checkpoints and a resumable state that continues bit-identically.
 * This file parses the options; the run itself is lib/trainer.h. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "comm.h"
#include "launch.h"
#include "trainer.h"
#include "util.h"


/* ---------------------------------------------------------------- options */
enum {
    O_LOAD_MODEL = 1000, O_WANDB, O_PROJ_DIR, O_RANDOM_SEED, O_DATA_FILE, O_DATA_TYPE, O_VOCAB_SIZE,
    O_CTX_LEN, O_EPOCH_STEPS, O_EPOCH_COUNT, O_EPOCH_BEGIN, O_EPOCH_SAVE, O_MICRO_BSZ, O_N_LAYER,
    O_N_EMBD, O_DIM_ATT, O_DIM_FFN, O_LR_INIT, O_LR_FINAL, O_WARMUP_STEPS, O_BETA1, O_BETA2,
    O_ADAM_EPS, O_GRAD_CP, O_WEIGHT_DECAY, O_GRAD_CLIP, O_TRAIN_STAGE, O_DS_BUCKET_MB, O_HEAD_SIZE,
    O_HEAD_CHUNK, O_LOAD_PARTIAL, O_MAGIC_PRIME, O_MY_TESTING, O_KERNEL, O_MY_EXIT_TOKENS,
    O_ACCELERATOR, O_DEVICES, O_NUM_NODES, O_PRECISION, O_STRATEGY, O_PROGRESS_BAR,
    O_SAVE_STEPS, O_SAVE_MINUTES, O_KEEP, O_RESUME, O_FORCE, O_DRY_RUN, O_SEED, O_MAX_BAD,
    O_EXIT_AFTER, O_MAX_MINUTES, O_ALLOW_REPEAT, O_TIMING, O_SAVE_FORMAT, O_TENSORBOARD, O_COMM_TIMEOUT, O_INIT_FILE, O_HELP, O_VERSION, O_END
};

#define OPT2(name, dash, has, code) { name, has, 0, code }, { dash, has, 0, code }
static const struct option long_opts[] = {
    OPT2("load_model", "load-model", 1, O_LOAD_MODEL), OPT2("wandb", "wandb", 1, O_WANDB),
    OPT2("proj_dir", "proj-dir", 1, O_PROJ_DIR), OPT2("random_seed", "random-seed", 1, O_RANDOM_SEED),
    OPT2("data_file", "data-file", 1, O_DATA_FILE), OPT2("data_type", "data-type", 1, O_DATA_TYPE),
    OPT2("vocab_size", "vocab-size", 1, O_VOCAB_SIZE), OPT2("ctx_len", "ctx-len", 1, O_CTX_LEN),
    OPT2("epoch_steps", "epoch-steps", 1, O_EPOCH_STEPS), OPT2("epoch_count", "epoch-count", 1, O_EPOCH_COUNT),
    OPT2("epoch_begin", "epoch-begin", 1, O_EPOCH_BEGIN), OPT2("epoch_save", "epoch-save", 1, O_EPOCH_SAVE),
    OPT2("micro_bsz", "micro-bsz", 1, O_MICRO_BSZ), OPT2("n_layer", "n-layer", 1, O_N_LAYER),
    OPT2("n_embd", "n-embd", 1, O_N_EMBD), OPT2("dim_att", "dim-att", 1, O_DIM_ATT),
    OPT2("dim_ffn", "dim-ffn", 1, O_DIM_FFN), OPT2("lr_init", "lr-init", 1, O_LR_INIT),
    OPT2("lr_final", "lr-final", 1, O_LR_FINAL), OPT2("warmup_steps", "warmup-steps", 1, O_WARMUP_STEPS),
    OPT2("beta1", "beta-1", 1, O_BETA1), OPT2("beta2", "beta-2", 1, O_BETA2),
    OPT2("adam_eps", "adam-eps", 1, O_ADAM_EPS), OPT2("grad_cp", "grad-cp", 1, O_GRAD_CP),
    OPT2("weight_decay", "weight-decay", 1, O_WEIGHT_DECAY), OPT2("grad_clip", "grad-clip", 1, O_GRAD_CLIP),
    OPT2("train_stage", "train-stage", 1, O_TRAIN_STAGE), OPT2("ds_bucket_mb", "ds-bucket-mb", 1, O_DS_BUCKET_MB),
    OPT2("head_size", "head-size", 1, O_HEAD_SIZE), OPT2("head_chunk", "head-chunk", 1, O_HEAD_CHUNK),
    OPT2("load_partial", "load-partial", 1, O_LOAD_PARTIAL), OPT2("magic_prime", "magic-prime", 1, O_MAGIC_PRIME),
    OPT2("my_testing", "my-testing", 1, O_MY_TESTING), OPT2("kernel", "kernel", 1, O_KERNEL),
    OPT2("my_exit_tokens", "my-exit-tokens", 1, O_MY_EXIT_TOKENS),
    OPT2("accelerator", "accelerator", 1, O_ACCELERATOR), OPT2("devices", "devices", 1, O_DEVICES),
    OPT2("num_nodes", "num-nodes", 1, O_NUM_NODES), OPT2("precision", "precision", 1, O_PRECISION),
    OPT2("strategy", "strategy", 1, O_STRATEGY), OPT2("enable_progress_bar", "enable-progress-bar", 1, O_PROGRESS_BAR),
    OPT2("save_steps", "save-steps", 1, O_SAVE_STEPS), OPT2("save_minutes", "save-minutes", 1, O_SAVE_MINUTES),
    OPT2("keep", "keep", 1, O_KEEP), OPT2("resume", "resume", 1, O_RESUME), OPT2("force", "force", 0, O_FORCE),
    OPT2("dry_run", "dry-run", 0, O_DRY_RUN), OPT2("seed", "seed", 1, O_SEED),
    OPT2("max_bad_steps", "max-bad-steps", 1, O_MAX_BAD), OPT2("exit_after_steps", "exit-after-steps", 1, O_EXIT_AFTER),
    OPT2("max_minutes", "max-minutes", 1, O_MAX_MINUTES), OPT2("allow_repeat", "allow-repeat", 0, O_ALLOW_REPEAT),
    OPT2("timing", "timing", 0, O_TIMING), OPT2("save_format", "save-format", 1, O_SAVE_FORMAT),
    OPT2("tensorboard", "tensorboard", 1, O_TENSORBOARD),
    OPT2("comm_timeout", "comm-timeout", 1, O_COMM_TIMEOUT), OPT2("init_file", "init-file", 1, O_INIT_FILE),
    OPT2("help", "help", 0, O_HELP), OPT2("version", "version", 0, O_VERSION),
    { 0, 0, 0, 0 }
};


static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: rwkv-train --data_file PREFIX [--proj_dir DIR] [options]\n"
"Pre-train an RWKV-7 (x070) or RWKV-6 (x060) model (the type comes from the\n"
"checkpoint) on PREFIX.bin/.idx (binidx) with the reference\n"
"trainer's sampling, Adam and LR schedule.  Starts from the newest complete\n"
"training state in DIR, else --load_model FILE, else the newest DIR/rwkv-N\n"
"(.safetensors or .pth), else DIR/rwkv-init.safetensors (or .pth).  Every option\n"
"also has a dash spelling (--proj-dir = --proj_dir).\n"
"\n"
"data and model:\n"
"  --proj_dir DIR          project directory (out)\n"
"  --data_file PREFIX      binidx data set (required)\n"
"  --load_model FILE       starting weights (safetensors or .pth; \"0\" = none)\n"
"  --ctx_len N             tokens per sample (1024)\n"
"  --micro_bsz N           samples per step and device (12); real_bsz must divide 40320\n"
"  --vocab_size --n_layer --n_embd --head_size --dim_att N\n"
"                          checked against the checkpoint (dimensions come from it)\n"
"  --dim_ffn N             x070: ignored (its FFN is 4 x n_embd), with a note;\n"
"                          x060: checked against the checkpoint\n"
"  --my_testing x070|x060  the model type the checkpoint must have (the tutorial's\n"
"                          MODEL_TYPE); a mismatch is an error naming both\n"
"  --magic_prime P         default: computed from the data; a given value is checked\n"
"  --my_exit_tokens N      stop after N tokens (default: the data size)\n"
"  --allow_repeat          accept --my_exit_tokens above the data size\n"
"optimizer and schedule:\n"
"  --lr_init X (6e-4)  --lr_final X (1e-5)  --warmup_steps N (-1 = none)\n"
"  --beta1 X (0.9)  --beta2 X (0.99)  --adam_eps X (1e-18, must be > 0)\n"
"  --weight_decay X (0)  --grad_clip X (1.0; 0 = no clipping)\n"
"  --precision bf16|fp32|tf32 (bf16: forward on bf16 copies of fp32 masters; tf32: GPU GEMMs)\n"
"  --grad_cp 0|1           recompute blocks in the backward (less memory; default 1 on a GPU)\n"
"  --accelerator cpu|gpu   (gpu: the CUDA build, build/cuda/bin)\n"
"data parallel (CPU, or one GPU per rank; see DATA PARALLEL in rwkv-train(1)):\n"
"  --devices N             ranks per node (1); without a launcher, N > 1 starts N ranks here\n"
"  --num_nodes N           nodes (1); devices x num_nodes must be the launcher's world size\n"
"  --strategy S            ddp, deepspeed_stage_1 or deepspeed_stage_2 (the default)\n"
"  --ds_bucket_mb N        deepspeed_stage_2's reduce-scatter bucket, 1e6 bytes (200)\n"
"  --comm_timeout SECONDS  how long a rank waits for the others in one collective (600)\n"
"  --init_file PATH        rendezvous file on a shared file system (GPU/NCCL id)\n"
"saving and stopping:\n"
"  --epoch_save N          rwkv-E.safetensors every N miniepochs (5)\n"
"  --save_format F         rwkv-E/rwkv-final as safetensors (default), pth or both\n"
"  --save_steps N          also save the training state every N steps (0 = off)\n"
"  --save_minutes M        ... and every M minutes (30; 0 = off)\n"
"  --keep K                training states to keep (2)\n"
"  --resume auto|never     never: start fresh; refuses a used DIR unless --force\n"
"  --force                 with --resume never: remove old states and metrics; on\n"
"                          resume: accept a changed real_bsz (micro_bsz x ranks)\n"
"  --exit_after_steps N    stop after N steps of this run (state saved, exit 0; 0 = no limit)\n"
"  --max_minutes M         stop after M minutes of this run (state saved, exit 0; 0 = no limit)\n"
"  --max_bad_steps K       stop after K non-finite steps in a row (3)\n"
"  --seed N                recorded in the state (training itself uses no randomness)\n"
"  --dry-run               print the plan and exit (it says if this build cannot run it)\n"
"  --timing                at the end, print where the step time went\n"
"  -h, --help, -V, --version\n"
"monitoring (metrics.jsonl and train_log.txt are always written):\n"
"  --tensorboard DIR       also write TensorBoard event files (loss, lr, grad_norm,\n"
"                          tokens_per_s) into DIR (\"\" = off)\n"
"  --wandb PROJECT         also log live to wandb project PROJECT through\n"
"                          rwkv-wandb-bridge (needs `pip install wandb`; \"\" = off)\n"
"Accepted for script compatibility: --data_type binidx\n"
"--train_stage --epoch_steps --epoch_count --epoch_begin --kernel --head_chunk\n"
"--load_partial 0 --random_seed --enable_progress_bar.\n"
"Exit status: 0 done or stopped at a requested limit, 1 error, 2 usage (also a\n"
"batch too large for this machine's memory), 4 too many non-finite steps in a row,\n"
"75 stopped by SIGINT/SIGTERM/SIGHUP/SIGPIPE (state saved, resumable).\n");
}


static int parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true")) { *out = 1; return 0; }
    if (!strcasecmp(s, "0") || !strcasecmp(s, "false")) { *out = 0; return 0; }
    return -1;
}

/* Fill o from the command line; 0, or the exit status of a usage error (or of --help). */
/* Data parallel options that stay here (the launch is this file's business). */
static double comm_timeout = COMM_TIMEOUT_DEFAULT;
static const char *init_file;

static int parse_args(int argc, char **argv, TrainOptions *a)
{
    train_options_default(a);
    a->strategy = DP_STAGE2;                   /* RWKV-LM-V7 train.py: --strategy deepspeed_stage_2 */
    a->bucket_bytes = 200u * 1000 * 1000;      /* --ds_bucket_mb 200 */
    char given[O_END - O_LOAD_MODEL] = { 0 };
#define GIVEN(o) given[(o) - O_LOAD_MODEL]
    const char *resume = "auto";
    int progress_bar = 1;
    int c, idx;
    while ((c = getopt_long(argc, argv, "hV", long_opts, &idx)) != -1) {
        if (c == '?') return usage_error("unknown option or missing value (see above)");
        const char *v = optarg, *name = long_opts[idx].name;
        if (c >= O_LOAD_MODEL && c < O_END) GIVEN(c) = 1;
        int64_t i64; uint64_t u64; double d;
        switch (c) {
        case 'h': case O_HELP: usage(stdout); exit(close_stdout());
        case 'V': case O_VERSION: exit(tool_version());
        case O_LOAD_MODEL: a->load_model = (!strcmp(v, "") || !strcmp(v, "0")) ? NULL : v; break;
        case O_PROJ_DIR: a->proj_dir = v; break;
        case O_DATA_FILE: a->data_file = v; break;
        case O_ACCELERATOR: a->accelerator = v; break;
        case O_RESUME:
            if (strcmp(v, "auto") && strcmp(v, "never")) return bad_option(name, v, "auto or never");
            resume = v; break;
        case O_SAVE_FORMAT:
            if (!strcmp(v, "safetensors")) a->save_format = SAVE_SAFETENSORS;
            else if (!strcmp(v, "pth")) a->save_format = SAVE_PTH;
            else if (!strcmp(v, "both")) a->save_format = SAVE_BOTH;
            else return bad_option(name, v, "safetensors, pth or both");
            break;
        case O_PRECISION:
            if (!strcmp(v, "bf16") || !strcmp(v, "fp32") || !strcmp(v, "tf32")) { a->precision = v; break; }
            return bad_option(name, v, !strcmp(v, "fp16") ? "bf16, fp32 or tf32; fp16 is not supported" : "bf16, fp32 or tf32");
        case O_WANDB: a->wandb_project = v; break;
        case O_TENSORBOARD: a->tensorboard_dir = v; break;
        case O_DATA_TYPE:
            if (strcmp(v, "binidx")) return bad_option(name, v, "binidx, the only supported type");
            break;
        case O_MY_TESTING:
            if (strcmp(v, "x070") && strcmp(v, "x060")) return bad_option(name, v, "x070 (RWKV-7) or x060 (RWKV-6)");
            a->my_testing = v;
            break;
        case O_TRAIN_STAGE:
            if (parse_i64(v, &i64)) return bad_option(name, v, "an integer");
            if (i64 == 1) return bad_option(name, v, "not 1: stage 1 builds the initial model, use rwkv-init");
            break;
        case O_LOAD_PARTIAL:
            if (strcmp(v, "0")) return bad_option(name, v, "0: partial loading is not supported, checkpoints must be complete");
            break;
        case O_STRATEGY: {
            Error se;
            if (dp_strategy_parse(v, &a->strategy, &se) == 0) break;
            if (!strstr(se.msg, "out of scope")) return bad_option(name, v, "ddp, deepspeed_stage_1 or deepspeed_stage_2");
            tool_warn("%s", se.msg);   /* a real DeepSpeed strategy: say that it is not implemented */
            return 2;
            break;
        }
        case O_DS_BUCKET_MB:   /* fractions too: small models need small buckets to have several */
            if (parse_double(v, &d) || !(d * 1e6 >= 4) || !(d <= 1e6)) return bad_option(name, v, "a size in MB from 4e-6 to 1e6");
            a->bucket_bytes = (uint64_t)(d * 1000 * 1000);   /* the reference: ds_bucket_mb * 1000 * 1000 */
            break;
        case O_COMM_TIMEOUT:
            if (parse_double(v, &d) || !(d > 0) || !isfinite(d)) return bad_option(name, v, "a number of seconds > 0");
            comm_timeout = d;
            break;
        case O_INIT_FILE: init_file = v; break;
        case O_KERNEL: case O_HEAD_CHUNK: case O_EPOCH_STEPS: case O_EPOCH_COUNT:
            break;   /* GPU tuning, or values the reference overwrites */
        case O_PROGRESS_BAR: if (parse_bool(v, &progress_bar)) return bad_option(name, v, "0, 1, true or false"); break;
        case O_FORCE: a->force = 1; break;
        case O_DRY_RUN: a->dry_run = 1; break;
        case O_ALLOW_REPEAT: a->allow_repeat = 1; break;
        case O_TIMING: a->timing = 1; break;
        case O_VOCAB_SIZE: case O_N_LAYER: case O_N_EMBD: case O_HEAD_SIZE: case O_DIM_ATT: case O_DIM_FFN:
            if (parse_i64(v, &i64) || i64 < 0 || i64 > (1 << 30)) return bad_option(name, v, "an integer from 0 to 2^30");
            *(c == O_VOCAB_SIZE ? &a->vocab_size : c == O_N_LAYER ? &a->n_layer : c == O_N_EMBD ? &a->n_embd
              : c == O_HEAD_SIZE ? &a->head_size : c == O_DIM_ATT ? &a->dim_att : &a->dim_ffn) = i64;
            break;
        case O_WARMUP_STEPS:
            if (parse_i64(v, &a->warmup_steps) || a->warmup_steps < -1) return bad_option(name, v, "-1 (none) or a step count");
            break;
        case O_GRAD_CP:
            if (parse_u64(v, &u64) || u64 > 1) return bad_option(name, v, "0 or 1");
            a->grad_cp = (int)u64; break;
        case O_RANDOM_SEED: case O_SEED:
            if (parse_i64(v, &i64)) return bad_option(name, v, "an integer");
            a->seed = (uint64_t)i64; break;
        case O_CTX_LEN: case O_MICRO_BSZ: case O_DEVICES: case O_NUM_NODES: case O_EPOCH_SAVE: case O_EPOCH_BEGIN:
        case O_MAGIC_PRIME: case O_MY_EXIT_TOKENS: case O_SAVE_STEPS: case O_KEEP: case O_MAX_BAD: case O_EXIT_AFTER: {
            if (parse_u64(v, &u64)) return bad_option(name, v, "a non-negative integer");
            uint64_t *dst = c == O_CTX_LEN ? &a->ctx_len : c == O_MICRO_BSZ ? &a->micro_bsz : c == O_DEVICES ? &a->devices
                : c == O_NUM_NODES ? &a->num_nodes : c == O_EPOCH_SAVE ? &a->epoch_save : c == O_EPOCH_BEGIN ? &a->epoch_begin
                : c == O_MAGIC_PRIME ? &a->magic_prime : c == O_MY_EXIT_TOKENS ? &a->exit_tokens
                : c == O_SAVE_STEPS ? &a->save_steps : c == O_KEEP ? &a->keep : c == O_MAX_BAD ? &a->max_bad : &a->exit_after;
            *dst = u64;
            break;
        }
        case O_LR_INIT: case O_LR_FINAL: case O_BETA1: case O_BETA2: case O_ADAM_EPS: case O_WEIGHT_DECAY:
        case O_GRAD_CLIP: case O_SAVE_MINUTES: case O_MAX_MINUTES: {
            if (parse_double(v, &d) || !isfinite(d) || d < 0) return bad_option(name, v, "a finite number >= 0");
            /* With eps 0 Adam divides 0 by 0 for every weight whose gradient
             * is 0 (e.g. embedding rows of tokens absent from a batch). */
            if (c == O_ADAM_EPS && !((float)d > 0))
                return bad_option(name, v, "a number > 0 that is not 0 in fp32; with 0 Adam divides 0 by 0 where a gradient is 0");
            double *dst = c == O_LR_INIT ? &a->lr_init : c == O_LR_FINAL ? &a->lr_final : c == O_BETA1 ? &a->beta1
                : c == O_BETA2 ? &a->beta2 : c == O_ADAM_EPS ? &a->adam_eps : c == O_WEIGHT_DECAY ? &a->weight_decay
                : c == O_GRAD_CLIP ? &a->grad_clip : c == O_SAVE_MINUTES ? &a->save_minutes : &a->max_minutes;
            *dst = d;
            break;
        }
        default: return usage_error("unknown option");
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!a->data_file) return usage_error("--data_file PREFIX is required");
    if (a->ctx_len == 0 || a->ctx_len > (1u << 24)) return usage_error("--ctx_len must be from 1 to 2^24");
    if (a->micro_bsz == 0 || a->micro_bsz > 40320) return usage_error("--micro_bsz must be from 1 to 40320");
    if (a->epoch_save == 0) return usage_error("--epoch_save must be positive");
    if (a->keep == 0) return usage_error("--keep must be at least 1");
    if (a->max_bad == 0) return usage_error("--max_bad_steps must be at least 1");
    if (!(a->beta1 < 1) || !(a->beta2 < 1)) return usage_error("--beta1 and --beta2 must be below 1");
    a->resume_never = !strcmp(resume, "never");
    /* GPUs hold far less than the host: recompute blocks there unless told otherwise */
    if (!GIVEN(O_GRAD_CP) && backend_is_gpu(a->accelerator)) a->grad_cp = 1;
    a->progress = progress_bar && progress_wanted() ? stderr : NULL;
    a->given = (TrainGiven){
        .ctx_len = GIVEN(O_CTX_LEN), .micro_bsz = GIVEN(O_MICRO_BSZ), .magic_prime = GIVEN(O_MAGIC_PRIME),
        .exit_tokens = GIVEN(O_MY_EXIT_TOKENS), .epoch_save = GIVEN(O_EPOCH_SAVE), .precision = GIVEN(O_PRECISION),
        .lr_init = GIVEN(O_LR_INIT), .lr_final = GIVEN(O_LR_FINAL), .warmup_steps = GIVEN(O_WARMUP_STEPS),
        .beta1 = GIVEN(O_BETA1), .beta2 = GIVEN(O_BETA2), .adam_eps = GIVEN(O_ADAM_EPS),
        .weight_decay = GIVEN(O_WEIGHT_DECAY), .grad_clip = GIVEN(O_GRAD_CLIP),
    };
    return 0;
#undef GIVEN
}

static int my_rank;   /* messages from ranks other than 0 say "rank N:" */

static void print_message(const char *line)
{
    if (my_rank) tool_warn("rank %d: %s", my_rank, line);
    else tool_warn("%s", line);
}

static int report_rank(Error *e)
{
    print_message(e->msg);
    return 1;
}

/* A rank that fails must not wait in an orderly shutdown of the communicator (its peers may
 * be inside a collective that will never complete): mark it broken, so that comm_close only
 * frees it and the launcher (mpirun, or rank 0 of --devices N) sees this exit and stops the
 * others. */
static void close_comm(Comm *c, int failed)
{
    if (!c) return;
    if (failed) c->broken = 1;
    comm_close(c);
}

int main(int argc, char **argv)
{
    tool_init("rwkv-train");
    TrainOptions o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    o.message = print_message;
    Error e;
    /* ---- who am I: the launcher's variables, or --devices N started here ---- */
    LaunchEnv le;
    if (launch_from_env(&le, &e)) return report(&e);
    int devices = o.devices > 4096 ? 4096 : (int)o.devices, nodes = o.num_nodes > 4096 ? 4096 : (int)o.num_nodes;
    int spawn = launch_check_world(&le, devices, nodes, &e);
    if (spawn < 0) { tool_warn("%s", e.msg); return 2; }
    my_rank = le.rank;
    LaunchChildren *kids = NULL;
    Comm *comm = NULL;
    if (!o.dry_run && (spawn == 1 || le.size > 1)) {
        /* before any rank starts: an accelerator this build lacks fails once, here */
        if (backend_check(o.accelerator, &e)) return report(&e);
        /* early: the other ranks inherit no descriptors this run opens */
        if (spawn == 1 && (!(kids = launch_spawn(devices, argv, &e)) || launch_from_env(&le, &e)))
            { launch_children_free(kids); return report(&e); }
        my_rank = le.rank;
        if (!(comm = launch_open_comm(&le, kids, comm_timeout, &e))) { launch_children_free(kids); return report_rank(&e); }
        o.comm = comm;
        o.rank = comm_rank(comm);
        if (o.rank) o.progress = NULL;   /* rank 0 shows the progress */
    } else if (o.dry_run && le.rank != 0)
        return 0;   /* under a launcher, rank 0 prints the plan */
    o.init_file = init_file;   /* the NCCL id's rendezvous (GPU backend); the host ranks connect by comm.h */
    Trainer *tr;
    if (trainer_open(&o, &tr, &e)) {
        trainer_close(tr);
        rc = report_rank(&e);
    } else if (o.dry_run) {
        trainer_print_plan(tr, stdout);
        trainer_close(tr);
        return close_stdout();
    } else {
        rc = trainer_run(tr);
        trainer_close(tr);
    }
    close_comm(comm, rc == 1 || rc == TRAIN_EXIT_USAGE);
    if (kids) {
        /* rank 0 of --devices N: the others have finished their last collective by now */
        if (rc == 0 && launch_children_wait(kids, comm_timeout, &e)) rc = report_rank(&e);
        launch_children_free(kids);
    }
    return rc;
}
