/* rwkv-train: pre-train an RWKV-7 (x070) model on a binidx data set with the
 * reference's sampling, optimizer and schedule (rwkv7-reference §1.5, §5),
 * saving checkpoints and a resumable state that continues bit-identically. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "binidx.h"
#include "checkpoint.h"
#include "model.h"
#include "optim.h"
#include "sampler.h"
#include "schedule.h"
#include "trainstate.h"
#include "util.h"

#define EXIT_SIGNAL 75      /* EX_TEMPFAIL: stopped on a signal, state saved, resumable */
#define EXIT_NONFINITE 4    /* too many non-finite steps in a row */

/* ---------------------------------------------------------------- options */
enum {
    O_LOAD_MODEL = 1000, O_WANDB, O_PROJ_DIR, O_RANDOM_SEED, O_DATA_FILE, O_DATA_TYPE, O_VOCAB_SIZE,
    O_CTX_LEN, O_EPOCH_STEPS, O_EPOCH_COUNT, O_EPOCH_BEGIN, O_EPOCH_SAVE, O_MICRO_BSZ, O_N_LAYER,
    O_N_EMBD, O_DIM_ATT, O_DIM_FFN, O_LR_INIT, O_LR_FINAL, O_WARMUP_STEPS, O_BETA1, O_BETA2,
    O_ADAM_EPS, O_GRAD_CP, O_WEIGHT_DECAY, O_GRAD_CLIP, O_TRAIN_STAGE, O_DS_BUCKET_MB, O_HEAD_SIZE,
    O_HEAD_CHUNK, O_LOAD_PARTIAL, O_MAGIC_PRIME, O_MY_TESTING, O_KERNEL, O_MY_EXIT_TOKENS,
    O_ACCELERATOR, O_DEVICES, O_NUM_NODES, O_PRECISION, O_STRATEGY, O_PROGRESS_BAR,
    O_SAVE_STEPS, O_SAVE_MINUTES, O_KEEP, O_RESUME, O_FORCE, O_DRY_RUN, O_SEED, O_MAX_BAD,
    O_EXIT_AFTER, O_MAX_MINUTES, O_ALLOW_REPEAT, O_TIMING, O_HELP, O_VERSION, O_END
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
    OPT2("timing", "timing", 0, O_TIMING),
    OPT2("help", "help", 0, O_HELP), OPT2("version", "version", 0, O_VERSION),
    { 0, 0, 0, 0 }
};

typedef struct {
    const char *load_model, *proj_dir, *data_file, *accelerator, *precision, *resume;
    int64_t vocab_size, n_layer, n_embd, head_size, dim_att, dim_ffn;
    uint64_t ctx_len, micro_bsz, devices, num_nodes, epoch_save, epoch_begin;
    uint64_t magic_prime, exit_tokens;
    double lr_init, lr_final, beta1, beta2, adam_eps, weight_decay, grad_clip;
    int64_t warmup_steps;
    int grad_cp, force, dry_run, allow_repeat, progress_bar, timing;
    uint64_t save_steps, keep, max_bad, exit_after, seed;
    double save_minutes, max_minutes;
    char given[O_END - O_LOAD_MODEL];
} Args;
#define GIVEN(a, o) ((a)->given[(o) - O_LOAD_MODEL])

static void usage(FILE *fp)
{
    fprintf(fp,
"usage: rwkv-train --data_file PREFIX [--proj_dir DIR] [options]\n"
"Pre-train an RWKV-7 (x070) model on PREFIX.bin/.idx (binidx) with the reference\n"
"trainer's sampling, Adam and LR schedule.  Starts from the newest complete\n"
"training state in DIR, else --load_model FILE, else DIR/rwkv-N.safetensors,\n"
"else DIR/rwkv-init.safetensors.  Every option also has a dash spelling\n"
"(--proj-dir = --proj_dir).\n"
"\n"
"data and model:\n"
"  --proj_dir DIR          project directory (out)\n"
"  --data_file PREFIX      binidx data set (required)\n"
"  --load_model FILE       starting weights (safetensors or .pth; \"0\" = none)\n"
"  --ctx_len N             tokens per sample (1024)\n"
"  --micro_bsz N           samples per step and device (12); real_bsz must divide 40320\n"
"  --vocab_size --n_layer --n_embd --head_size --dim_att --dim_ffn N\n"
"                          checked against the checkpoint (dimensions come from it)\n"
"  --magic_prime P         default: computed from the data; a given value is checked\n"
"  --my_exit_tokens N      stop after N tokens (default: the data size)\n"
"  --allow_repeat          accept --my_exit_tokens above the data size\n"
"optimizer and schedule:\n"
"  --lr_init X (6e-4)  --lr_final X (1e-5)  --warmup_steps N (-1 = none)\n"
"  --beta1 X (0.9)  --beta2 X (0.99)  --adam_eps X (1e-18)\n"
"  --weight_decay X (0)  --grad_clip X (1.0)\n"
"  --precision bf16|fp32|tf32 (bf16: forward on bf16 copies of fp32 masters)\n"
"  --grad_cp 0|1           recompute blocks in the backward (less memory)\n"
"  --accelerator cpu       (gpu/cuda: not built yet)  --devices 1  --num_nodes 1\n"
"saving and stopping:\n"
"  --epoch_save N          rwkv-E.safetensors every N miniepochs (5)\n"
"  --save_steps N          also save the training state every N steps (0 = off)\n"
"  --save_minutes M        ... and every M minutes (30; 0 = off)\n"
"  --keep K                training states to keep (2)\n"
"  --resume auto|never     never: start fresh; refuses a used DIR unless --force\n"
"  --force                 with --resume never: remove old states and metrics\n"
"  --exit_after_steps N    stop after N steps of this run (state saved, exit 0)\n"
"  --max_minutes M         stop after M minutes of this run (state saved, exit 0)\n"
"  --max_bad_steps K       stop after K non-finite steps in a row (3)\n"
"  --seed N                recorded in the state (training itself uses no randomness)\n"
"  --dry-run               print the plan and exit\n"
"  --timing                at the end, print where the step time went\n"
"  --help, --version\n"
"Accepted for script compatibility: --wandb \"\" --data_type binidx --my_testing x070\n"
"--train_stage --epoch_steps --epoch_count --epoch_begin --strategy --kernel --head_chunk\n"
"--ds_bucket_mb --load_partial 0 --random_seed --enable_progress_bar.\n"
"Exit status: 0 done or stopped at a requested limit, 1 error, 2 usage,\n"
"4 too many non-finite steps, 75 stopped by SIGINT/SIGTERM (state saved, resumable).\n");
}

static int bad_value(const char *opt, const char *v)
{
    fprintf(stderr, "%s: invalid value '%s' for --%s\n", tool_name, v, opt);
    return 2;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "1") || !strcasecmp(s, "true")) { *out = 1; return 0; }
    if (!strcasecmp(s, "0") || !strcasecmp(s, "false")) { *out = 0; return 0; }
    return -1;
}

static int parse_args(int argc, char **argv, Args *a)
{
    memset(a, 0, sizeof *a);
    a->proj_dir = "out"; a->accelerator = "cpu"; a->precision = "bf16"; a->resume = "auto";
    a->ctx_len = 1024; a->micro_bsz = 12; a->devices = 1; a->num_nodes = 1; a->epoch_save = 5;
    a->lr_init = 6e-4; a->lr_final = 1e-5; a->warmup_steps = -1; a->beta1 = 0.9; a->beta2 = 0.99;
    a->adam_eps = 1e-18; a->grad_clip = 1.0; a->save_minutes = 30; a->keep = 2; a->max_bad = 3;
    a->progress_bar = 1;
    int c, idx;
    while ((c = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
        if (c == '?') { usage(stderr); return 2; }
        const char *v = optarg, *name = long_opts[idx].name;
        if (c >= O_LOAD_MODEL && c < O_END) a->given[c - O_LOAD_MODEL] = 1;
        int64_t i64; uint64_t u64; double d;
        switch (c) {
        case O_HELP: usage(stdout); exit(close_stdout());
        case O_VERSION: printf("rwkv-train (rwkv7c) %s\n", RWKV7C_VERSION); exit(close_stdout());
        case O_LOAD_MODEL: a->load_model = (!strcmp(v, "") || !strcmp(v, "0")) ? NULL : v; break;
        case O_PROJ_DIR: a->proj_dir = v; break;
        case O_DATA_FILE: a->data_file = v; break;
        case O_ACCELERATOR: a->accelerator = v; break;
        case O_RESUME:
            if (strcmp(v, "auto") && strcmp(v, "never")) return bad_value(name, v);
            a->resume = v; break;
        case O_PRECISION:
            if (!strcmp(v, "bf16") || !strcmp(v, "fp32") || !strcmp(v, "tf32")) { a->precision = v; break; }
            if (!strcmp(v, "fp16")) { fprintf(stderr, "%s: --precision fp16 is not supported (use bf16 or fp32)\n", tool_name); return 2; }
            return bad_value(name, v);
        case O_WANDB:
            if (*v) fprintf(stderr, "%s: note: --wandb is not supported; metrics go to PROJ_DIR/metrics.jsonl\n", tool_name);
            break;
        case O_DATA_TYPE:
            if (strcmp(v, "binidx")) { fprintf(stderr, "%s: --data_type %s: only binidx is supported\n", tool_name, v); return 2; }
            break;
        case O_MY_TESTING:
            if (strcmp(v, "x070")) { fprintf(stderr, "%s: --my_testing %s: only x070 (RWKV-7) is supported\n", tool_name, v); return 2; }
            break;
        case O_TRAIN_STAGE:
            if (parse_i64(v, &i64)) return bad_value(name, v);
            if (i64 == 1) { fprintf(stderr, "%s: --train_stage 1 builds the initial model: use rwkv-init\n", tool_name); return 2; }
            break;
        case O_LOAD_PARTIAL:
            if (strcmp(v, "0")) { fprintf(stderr, "%s: --load_partial is not supported (checkpoints must be complete)\n", tool_name); return 2; }
            break;
        case O_STRATEGY: case O_KERNEL: case O_HEAD_CHUNK: case O_DS_BUCKET_MB: case O_EPOCH_STEPS: case O_EPOCH_COUNT:
            break;   /* GPU/DeepSpeed tuning, or values the reference overwrites */
        case O_PROGRESS_BAR: if (parse_bool(v, &a->progress_bar)) return bad_value(name, v); break;
        case O_FORCE: a->force = 1; break;
        case O_DRY_RUN: a->dry_run = 1; break;
        case O_ALLOW_REPEAT: a->allow_repeat = 1; break;
        case O_TIMING: a->timing = 1; break;
        case O_VOCAB_SIZE: case O_N_LAYER: case O_N_EMBD: case O_HEAD_SIZE: case O_DIM_ATT: case O_DIM_FFN:
            if (parse_i64(v, &i64) || i64 < 0 || i64 > (1 << 30)) return bad_value(name, v);
            *(c == O_VOCAB_SIZE ? &a->vocab_size : c == O_N_LAYER ? &a->n_layer : c == O_N_EMBD ? &a->n_embd
              : c == O_HEAD_SIZE ? &a->head_size : c == O_DIM_ATT ? &a->dim_att : &a->dim_ffn) = i64;
            break;
        case O_WARMUP_STEPS:
            if (parse_i64(v, &a->warmup_steps) || a->warmup_steps < -1) return bad_value(name, v);
            break;
        case O_GRAD_CP:
            if (parse_u64(v, &u64) || u64 > 1) return bad_value(name, v);
            a->grad_cp = (int)u64; break;
        case O_RANDOM_SEED: case O_SEED:
            if (parse_i64(v, &i64)) return bad_value(name, v);
            a->seed = (uint64_t)i64; a->given[O_SEED - O_LOAD_MODEL] = 1; break;
        case O_CTX_LEN: case O_MICRO_BSZ: case O_DEVICES: case O_NUM_NODES: case O_EPOCH_SAVE: case O_EPOCH_BEGIN:
        case O_MAGIC_PRIME: case O_MY_EXIT_TOKENS: case O_SAVE_STEPS: case O_KEEP: case O_MAX_BAD: case O_EXIT_AFTER: {
            if (parse_u64(v, &u64)) return bad_value(name, v);
            uint64_t *dst = c == O_CTX_LEN ? &a->ctx_len : c == O_MICRO_BSZ ? &a->micro_bsz : c == O_DEVICES ? &a->devices
                : c == O_NUM_NODES ? &a->num_nodes : c == O_EPOCH_SAVE ? &a->epoch_save : c == O_EPOCH_BEGIN ? &a->epoch_begin
                : c == O_MAGIC_PRIME ? &a->magic_prime : c == O_MY_EXIT_TOKENS ? &a->exit_tokens
                : c == O_SAVE_STEPS ? &a->save_steps : c == O_KEEP ? &a->keep : c == O_MAX_BAD ? &a->max_bad : &a->exit_after;
            *dst = u64;
            break;
        }
        case O_LR_INIT: case O_LR_FINAL: case O_BETA1: case O_BETA2: case O_ADAM_EPS: case O_WEIGHT_DECAY:
        case O_GRAD_CLIP: case O_SAVE_MINUTES: case O_MAX_MINUTES: {
            if (parse_double(v, &d) || !isfinite(d) || d < 0) return bad_value(name, v);
            double *dst = c == O_LR_INIT ? &a->lr_init : c == O_LR_FINAL ? &a->lr_final : c == O_BETA1 ? &a->beta1
                : c == O_BETA2 ? &a->beta2 : c == O_ADAM_EPS ? &a->adam_eps : c == O_WEIGHT_DECAY ? &a->weight_decay
                : c == O_GRAD_CLIP ? &a->grad_clip : c == O_SAVE_MINUTES ? &a->save_minutes : &a->max_minutes;
            *dst = d;
            break;
        }
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) { fprintf(stderr, "%s: unexpected argument '%s'\n", tool_name, argv[optind]); usage(stderr); return 2; }
    if (!a->data_file) { fprintf(stderr, "%s: --data_file PREFIX is required\n", tool_name); usage(stderr); return 2; }
    if (a->ctx_len == 0 || a->micro_bsz == 0) { fprintf(stderr, "%s: --ctx_len and --micro_bsz must be positive\n", tool_name); return 2; }
    if (a->ctx_len > (1u << 24) || a->micro_bsz > 40320) { fprintf(stderr, "%s: --ctx_len or --micro_bsz too large\n", tool_name); return 2; }
    if (a->epoch_save == 0) { fprintf(stderr, "%s: --epoch_save must be positive\n", tool_name); return 2; }
    if (a->keep == 0) { fprintf(stderr, "%s: --keep must be at least 1\n", tool_name); return 2; }
    if (a->max_bad == 0) { fprintf(stderr, "%s: --max_bad_steps must be at least 1\n", tool_name); return 2; }
    if (!(a->beta1 < 1) || !(a->beta2 < 1)) { fprintf(stderr, "%s: --beta1 and --beta2 must be below 1\n", tool_name); return 2; }
    if (GIVEN(a, O_FORCE) && strcmp(a->resume, "never")) { fprintf(stderr, "%s: --force only applies with --resume never\n", tool_name); return 2; }
    return 0;
}

/* ---------------------------------------------------------------- signals */
static volatile sig_atomic_t stop_signal;
static struct sigaction old_int, old_term;

static void on_stop_signal(int sig)
{
    if (stop_signal) {   /* second signal: give up now; the cleanup handler unlinks temporaries */
        struct sigaction *old = sig == SIGINT ? &old_int : &old_term;
        sigaction(sig, old, NULL);
        raise(sig);
        return;
    }
    stop_signal = sig;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal(SIGXFSZ, SIG_IGN);   /* a file-size limit becomes a write error we report, not a crash */
}

/* ---------------------------------------------------------------- project directory */
typedef struct { uint64_t num; char *path; } Found;

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int cmp_found_desc(const void *x, const void *y)
{
    const Found *a = x, *b = y;
    return a->num < b->num ? 1 : a->num > b->num ? -1 : 0;
}

/* Files "PREFIX<digits>.safetensors" in dir, newest (largest number) first. */
static int list_numbered(const char *dir, const char *prefix, Found **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *de;
    size_t pl = strlen(prefix);
    while ((de = readdir(d))) {
        const char *s = de->d_name;
        if (strncmp(s, prefix, pl)) continue;
        const char *p = s + pl;
        if (!isdigit((unsigned char)*p)) continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || strcmp(end, ".safetensors")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            Found *nf = realloc(*out, (size_t)cap * sizeof **out);
            if (!nf) break;
            *out = nf;
        }
        (*out)[n].num = v;
        (*out)[n].path = path_join(dir, s);
        n++;
    }
    closedir(d);
    if (n) qsort(*out, (size_t)n, sizeof **out, cmp_found_desc);
    return n;
}

static void free_found(Found *f, int n)
{
    for (int i = 0; i < n; i++) free(f[i].path);
    free(f);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A run killed with SIGKILL leaves "NAME.tmp.PID" behind (never renamed, so
 * never used); remove those of our files whose writer is gone. */
static void remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *s = de->d_name, *t = strstr(s, ".safetensors.tmp.");
        if (!t || (strncmp(s, "train-state-", 12) && strncmp(s, "rwkv-", 5))) continue;
        char *end;
        long pid = strtol(t + 17, &end, 10);
        if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        char *p = path_join(dir, s);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
}

static char *state_path(const char *dir, uint64_t step)
{
    char name[64];
    snprintf(name, sizeof name, "train-state-%08" PRIu64 ".safetensors", step);
    return path_join(dir, name);
}

/* ---------------------------------------------------------------- run */
typedef struct {
    Args *a;
    ModelConfig cfg;
    Layout layout;
    BinidxDataset ds;
    Sampler smp;
    LrSchedule sched;
    AdamConfig adam;
    TrainCounters c;
    Backend *be;
    Model host;            /* host copy of the masters for saving */
    float *m, *v;
    uint64_t data_xxh3, exit_step;
    double last_save_time;
    const char *precision;
    FILE *metrics;
    char *metrics_path, *log_path;
} Run;

static void fmt_double(char *b, size_t n, double v) { snprintf(b, n, "%a", v); }

/* Run configuration stored in the state, checked or inherited on resume. */
static int save_state(Run *r, Error *e)
{
    if (r->be->get_state(r->be, r->host.w, r->m, r->v, e)) return -1;
    char v[16][64];
    snprintf(v[0], 64, "%" PRIu64, r->smp.ctx_len);
    snprintf(v[1], 64, "%" PRIu64, r->smp.micro_bsz);
    snprintf(v[2], 64, "%" PRIu64, r->smp.world);
    snprintf(v[3], 64, "%" PRIu64, r->smp.magic_prime);
    snprintf(v[4], 64, "%" PRIu64, r->sched.exit_tokens);
    fmt_double(v[5], 64, r->sched.lr_init);
    fmt_double(v[6], 64, r->sched.lr_final);
    snprintf(v[7], 64, "%" PRId64, r->sched.warmup_steps);
    fmt_double(v[8], 64, r->adam.beta1);
    fmt_double(v[9], 64, r->adam.beta2);
    fmt_double(v[10], 64, r->adam.eps);
    fmt_double(v[11], 64, r->adam.weight_decay);
    fmt_double(v[12], 64, r->adam.grad_clip);
    snprintf(v[13], 64, "%" PRIu64, r->ds.token_count);
    snprintf(v[14], 64, "%016" PRIx64, r->data_xxh3);
    snprintf(v[15], 64, "%" PRIu64, r->a->epoch_save);
    const char *kv[] = { "ctx_len", v[0], "micro_bsz", v[1], "world", v[2], "magic_prime", v[3],
                         "my_exit_tokens", v[4], "lr_init", v[5], "lr_final", v[6], "warmup_steps", v[7],
                         "beta1", v[8], "beta2", v[9], "adam_eps", v[10], "weight_decay", v[11],
                         "grad_clip", v[12], "data_tokens", v[13], "data_xxh3", v[14], "epoch_save", v[15],
                         "precision", r->precision, NULL };
    char *path = state_path(r->a->proj_dir, r->c.step);
    if (!path) return fail(e, "out of memory");
    int rc = trainstate_write(path, &r->cfg, &r->c, r->host.w, r->m, r->v, kv, e);
    if (rc == 0) {
        r->last_save_time = now_seconds();
        /* Keep the newest K states; older ones go only after the new one is committed. */
        Found *f;
        int n = list_numbered(r->a->proj_dir, "train-state-", &f);
        for (int i = (int)r->a->keep; i < n; i++)
            if (unlink(f[i].path)) warnx_("warning: cannot remove %s: %s", f[i].path, strerror(errno));
        free_found(f, n);
    }
    free(path);
    return rc;
}

static int save_weights(Run *r, const char *name, Error *e)
{
    if (r->be->get_state(r->be, r->host.w, NULL, NULL, e)) return -1;
    for (size_t i = 0; i < r->layout.total; i++)
        if (!isfinite(r->host.w[i])) return fail(e, "refusing to save non-finite weights to %s", name);
    char *path = path_join(r->a->proj_dir, name);
    if (!path) return fail(e, "out of memory");
    int rc = model_save(&r->host, path, DT_BF16, 1, e);
    free(path);
    return rc;
}

static void now_string(char *b, size_t n)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(b, n, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(b + k, n - k, ".%06ld", (long)tv.tv_usec);
}

static void append_log(Run *r, const char *line)
{
    FILE *fp = fopen(r->log_path, "a");
    if (!fp) { warnx_("warning: cannot append to %s: %s", r->log_path, strerror(errno)); return; }
    fputs(line, fp);
    if (fclose(fp)) warnx_("warning: cannot write %s: %s", r->log_path, strerror(errno));
}

static void fmt_count(char *b, size_t n, double v)
{
    if (v < 1e3) snprintf(b, n, "%.0f", v);
    else if (v < 1e6) snprintf(b, n, "%.1fk", v / 1e3);
    else if (v < 1e9) snprintf(b, n, "%.2fM", v / 1e6);
    else snprintf(b, n, "%.2fG", v / 1e9);
}

static void fmt_duration(char *b, size_t n, double s)
{
    if (!isfinite(s) || s < 0) { snprintf(b, n, "?"); return; }
    long t = (long)s;
    if (t >= 3600) snprintf(b, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(b, n, "%ldm%02lds", t / 60, t % 60);
}

/* Rewrite metrics.jsonl without records of steps >= from (they are redone after a resume). */
static int trim_metrics(const char *path, uint64_t from, Error *e)
{
    FILE *in = fopen(path, "r");
    if (!in) return 0;
    AtomicFile f;
    if (atomic_open(&f, path, 1, e)) { fclose(in); return -1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, in)) > 0) {
        const char *s = strstr(line, "\"step\":");
        unsigned long long st;
        if (!s || sscanf(s + 7, "%llu", &st) != 1 || st >= from || line[len - 1] != '\n') continue;
        fputs(line, f.fp);
    }
    free(line);
    fclose(in);
    return atomic_commit(&f, e);
}

static void json_num(char *b, size_t n, double v, const char *fmt)
{
    if (isfinite(v)) snprintf(b, n, fmt, v);
    else snprintf(b, n, "null");
}

/* Parse "K" or "K,N" from RWKV7C_TRAIN_POISON: poison the gradient at steps K..K+N-1. */
static int poisoned(uint64_t step)
{
    static int init;
    static unsigned long long k, n;
    if (!init) {
        init = 1;
        const char *s = getenv("RWKV7C_TRAIN_POISON");
        n = 0;
        if (s && *s) { n = 1; if (sscanf(s, "%llu,%llu", &k, &n) < 1) n = 0; }
    }
    return n && step >= k && step - k < n;
}

static double get_meta_f64(const TrainState *st, const char *key, double dflt)
{
    const char *s = trainstate_get(st, key);
    return s ? strtod(s, NULL) : dflt;
}

static uint64_t get_meta_u64(const TrainState *st, const char *key, uint64_t dflt)
{
    const char *s = trainstate_get(st, key);
    uint64_t v;
    return s && !parse_u64(s, &v) ? v : dflt;
}

/* Inherit a hyperparameter from the state unless given; note a changed one. */
static void inherit_f64(const Args *a, int opt, const char *name, double *val, const TrainState *st)
{
    const char *s = trainstate_get(st, name);
    if (!s) return;
    double saved = strtod(s, NULL);
    if (!GIVEN(a, opt)) *val = saved;
    else if (*val != saved)
        warnx_("note: --%s %g differs from the resumed run's %g; the run is no longer identical to an uninterrupted one",
               name, *val, saved);
}

static int check_dims(const Args *a, const ModelConfig *c, const char *src, Error *e)
{
    struct { const char *n; int64_t given; int64_t have; } d[] = {
        { "n_layer", a->n_layer, c->n_layer }, { "n_embd", a->n_embd, c->n_embd },
        { "vocab_size", a->vocab_size, c->vocab_size }, { "head_size", a->head_size, c->head_size },
        { "dim_att", a->dim_att, c->n_embd }, { "dim_ffn", a->dim_ffn, 4 * (int64_t)c->n_embd },
    };
    for (size_t i = 0; i < sizeof d / sizeof *d; i++)
        if (d[i].given && d[i].given != d[i].have)
            return fail(e, "--%s %" PRId64 " contradicts the checkpoint %s (%s %" PRId64 "); dimensions come from the checkpoint",
                        d[i].n, d[i].given, src, d[i].n, d[i].have);
    return 0;
}

static int load_weights(const char *path, Model *m, Error *e)
{
    if (model_load(m, path, e)) return -1;
    return 0;
}

int main(int argc, char **argv)
{
    tool_init("rwkv-train");
    Args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    Error e;
    Run r;
    memset(&r, 0, sizeof r);
    r.a = &a;
    r.precision = a.precision;
    uint64_t world = a.devices * a.num_nodes;

    /* ---- data ---- */
    if (binidx_open(a.data_file, &r.ds, &e)) return report(&e);
    BinidxStats bst;
    if (binidx_scan(&r.ds, &bst, &e)) return report(&e);
    if (bst.negative_ids) { fail(&e, "%s: %" PRIu64 " negative token ids", r.ds.bin_path, bst.negative_ids); return report(&e); }
    r.data_xxh3 = bst.bin_xxh3;

    /* ---- starting point ---- */
    if (!a.dry_run && mkdir(a.proj_dir, 0777) && errno != EEXIST) {
        fail(&e, "cannot create --proj_dir %s: %s", a.proj_dir, strerror(errno));
        return report(&e);
    }
    if (!a.dry_run) remove_stale_temps(a.proj_dir);
    Found *states = NULL, *epochs = NULL;
    int nstates_all = list_numbered(a.proj_dir, "train-state-", &states), nstates = nstates_all;
    int nepochs = list_numbered(a.proj_dir, "rwkv-", &epochs);
    r.metrics_path = path_join(a.proj_dir, "metrics.jsonl");
    r.log_path = path_join(a.proj_dir, "train_log.txt");
    char *final_path = path_join(a.proj_dir, "rwkv-final.safetensors");
    char *init_path = path_join(a.proj_dir, "rwkv-init.safetensors");
    int fresh = !strcmp(a.resume, "never");
    if (fresh) {
        int used = nstates || nepochs || file_exists(final_path) || file_exists(r.metrics_path) || file_exists(r.log_path);
        if (used && !a.force) {
            fail(&e, "--resume never: %s already holds a run (training states, rwkv-N, rwkv-final, metrics.jsonl or "
                 "train_log.txt); use --force to start over there, or another --proj_dir", a.proj_dir);
            return report(&e);
        }
        if (used && !a.dry_run) {
            for (int i = 0; i < nstates; i++) unlink(states[i].path);
            unlink(r.metrics_path);
        }
        nstates = 0;
    }
    TrainState st;
    int resumed = 0;
    const char *source = NULL;
    Model start;
    memset(&start, 0, sizeof start);
    for (int i = 0; i < nstates && !resumed; i++) {
        if (trainstate_read(states[i].path, &st, &e) == 0) { resumed = 1; source = states[i].path; break; }
        warnx_("warning: skipping %s: %s", states[i].path, e.msg);
    }
    r.c.seed = a.seed;
    if (resumed) {
        if (a.load_model) warnx_("note: --load_model %s ignored: resuming from %s", a.load_model, source);
        r.cfg = st.cfg;
        r.c = st.c;
    } else {
        if (a.load_model) {
            if (load_weights(a.load_model, &start, &e)) return report(&e);
            source = a.load_model;
            r.c.epoch_begin = a.epoch_begin;
        } else {
            for (int i = 0; i < nepochs && !source; i++) {
                if (load_weights(epochs[i].path, &start, &e) == 0) {
                    source = epochs[i].path;
                    r.c.epoch_begin = epochs[i].num + 1;      /* the reference's auto-resume */
                    if (a.warmup_steps < 0) a.warmup_steps = 10;
                } else
                    warnx_("warning: skipping %s: %s", epochs[i].path, e.msg);
            }
            if (!source) {
                if (!file_exists(init_path)) {
                    fail(&e, "no starting checkpoint: %s has no training state, rwkv-N.safetensors or rwkv-init.safetensors "
                         "(create one with `rwkv-init -o %s ...`, or give --load_model FILE)", a.proj_dir, init_path);
                    return report(&e);
                }
                if (load_weights(init_path, &start, &e)) return report(&e);
                source = init_path;
                r.c.epoch_begin = a.epoch_begin;
            }
        }
        r.cfg = start.cfg;
    }
    if (check_dims(&a, &r.cfg, source, &e)) return report(&e);
    if (layout_build(&r.cfg, &r.layout, &e)) return report(&e);
    if (bst.max_id >= (uint64_t)r.cfg.vocab_size) {
        fail(&e, "%s holds token id %" PRIu64 " but the model's vocab_size is %d (data made with another tokenizer?)",
             r.ds.bin_path, bst.max_id, r.cfg.vocab_size);
        return report(&e);
    }

    /* ---- run configuration (inherited from the state when resuming) ---- */
    if (resumed) {
        struct { int opt; const char *name; uint64_t *val; } fixed[] = {
            { O_CTX_LEN, "ctx_len", &a.ctx_len }, { O_MICRO_BSZ, "micro_bsz", &a.micro_bsz },
            { O_MAGIC_PRIME, "magic_prime", &a.magic_prime },
        };
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
            uint64_t saved = get_meta_u64(&st, fixed[i].name, 0);
            if (!GIVEN(&a, fixed[i].opt)) *fixed[i].val = saved;
            else if (*fixed[i].val != saved && !a.force) {
                fail(&e, "--%s %" PRIu64 " differs from the run being resumed (%" PRIu64 " in %s): the data order would change; "
                     "use a new --proj_dir (or --resume never --force)", fixed[i].name, *fixed[i].val, saved, source);
                return report(&e);
            }
        }
        if (get_meta_u64(&st, "world", 1) != world) {
            fail(&e, "the run being resumed used %" PRIu64 " devices, this one %" PRIu64, get_meta_u64(&st, "world", 1), world);
            return report(&e);
        }
        const char *dx = trainstate_get(&st, "data_xxh3");
        char have[32];
        snprintf(have, sizeof have, "%016" PRIx64, r.data_xxh3);
        if (dx && strcmp(dx, have)) {
            fail(&e, "%s is not the data the run in %s was trained on (%s tokens then, %" PRIu64 " now; checksums differ)",
                 r.ds.bin_path, a.proj_dir, trainstate_get(&st, "data_tokens") ? trainstate_get(&st, "data_tokens") : "?",
                 r.ds.token_count);
            return report(&e);
        }
        if (!GIVEN(&a, O_MY_EXIT_TOKENS)) {
            a.exit_tokens = get_meta_u64(&st, "my_exit_tokens", 0);
            a.allow_repeat = 1;   /* validated when the run began */
        }
        if (!GIVEN(&a, O_EPOCH_SAVE)) a.epoch_save = get_meta_u64(&st, "epoch_save", a.epoch_save);
        double wu = (double)a.warmup_steps;
        inherit_f64(&a, O_LR_INIT, "lr_init", &a.lr_init, &st);
        inherit_f64(&a, O_LR_FINAL, "lr_final", &a.lr_final, &st);
        inherit_f64(&a, O_WARMUP_STEPS, "warmup_steps", &wu, &st);
        a.warmup_steps = (int64_t)wu;
        inherit_f64(&a, O_BETA1, "beta1", &a.beta1, &st);
        inherit_f64(&a, O_BETA2, "beta2", &a.beta2, &st);
        inherit_f64(&a, O_ADAM_EPS, "adam_eps", &a.adam_eps, &st);
        inherit_f64(&a, O_WEIGHT_DECAY, "weight_decay", &a.weight_decay, &st);
        inherit_f64(&a, O_GRAD_CLIP, "grad_clip", &a.grad_clip, &st);
        const char *pr = trainstate_get(&st, "precision");
        if (pr && !GIVEN(&a, O_PRECISION)) r.precision = !strcmp(pr, "fp32") ? "fp32" : !strcmp(pr, "tf32") ? "tf32" : "bf16";
        (void)get_meta_f64;
    }
    uint64_t data_tokens = r.ds.token_count;
    if (!a.magic_prime) {
        a.magic_prime = magic_prime_for(data_tokens, a.ctx_len);
        if (!a.magic_prime) {
            fail(&e, "%s has %" PRIu64 " tokens: too few for --ctx_len %" PRIu64 " (at least %" PRIu64 " needed)",
                 r.ds.bin_path, data_tokens, a.ctx_len, 3 * a.ctx_len);
            return report(&e);
        }
    } else if (sampler_check_magic(data_tokens, a.ctx_len, a.magic_prime, &e)) {
        fail_prefix(&e, "%s", r.ds.bin_path);
        return report(&e);
    }
    if (!a.exit_tokens) a.exit_tokens = data_tokens;
    else if (a.exit_tokens > data_tokens && !a.allow_repeat) {
        fail(&e, "--my_exit_tokens %" PRIu64 " exceeds the %" PRIu64 " tokens in %s: the run would pass over the data %.1f times "
             "(were the numbers copied from another data set?); leave it out to train one pass, or add --allow_repeat",
             a.exit_tokens, data_tokens, r.ds.bin_path, (double)a.exit_tokens / (double)data_tokens);
        return report(&e);
    }
    if (sampler_init(&r.smp, a.magic_prime, a.ctx_len, a.micro_bsz, world, &e)) return report(&e);
    r.sched = (LrSchedule){ .lr_init = a.lr_init, .lr_final = a.lr_final, .warmup_steps = a.warmup_steps,
                            .tokens_per_step = a.ctx_len * r.smp.real_bsz, .exit_tokens = a.exit_tokens };
    if (lr_schedule_check(&r.sched, &e)) return report(&e);
    r.adam = (AdamConfig){ .beta1 = a.beta1, .beta2 = a.beta2, .eps = a.adam_eps, .weight_decay = a.weight_decay,
                           .grad_clip = a.grad_clip };
    if (!resumed) r.c.step = r.c.epoch_begin * r.smp.epoch_steps;
    r.exit_step = lr_exit_step(&r.sched);
    BackendConfig bc = { .B = (int)a.micro_bsz, .T = (int)a.ctx_len, .grad_cp = a.grad_cp,
                         .bf16 = !strcmp(r.precision, "bf16"), .adam = r.adam };

    if (a.dry_run) {
        uint64_t mem = backend_memory_estimate(a.accelerator, &r.cfg, &bc);
        uint64_t todo = r.exit_step > r.c.step ? r.exit_step - r.c.step : 0;
        printf("start        %s%s\n", source, resumed ? " (training state)" : "");
        printf("model        x070 L%d D%d, vocab %d, head_size %d: %" PRIu64 " parameters (%.1f MB in bf16)\n",
               r.cfg.n_layer, r.cfg.n_embd, r.cfg.vocab_size, r.cfg.head_size, (uint64_t)r.layout.total,
               r.layout.total * 2 / 1e6);
        printf("data         %s: %" PRIu64 " tokens, %" PRIu64 " documents, %s, max id %" PRIu64 "\n", r.ds.bin_path,
               data_tokens, r.ds.documents, binidx_dtype_name(r.ds.index.dtype), bst.max_id);
        printf("batch        ctx_len %" PRIu64 " x micro_bsz %" PRIu64 " x %" PRIu64 " devices = %" PRIu64 " tokens/step\n",
               a.ctx_len, a.micro_bsz, world, r.sched.tokens_per_step);
        printf("miniepoch    %" PRIu64 " steps (40320 samples, %" PRIu64 " tokens); epoch_count %" PRIu64 "\n",
               r.smp.epoch_steps, 40320 * a.ctx_len, r.smp.epoch_count);
        printf("sampling     --magic_prime %" PRIu64 " --my_exit_tokens %" PRIu64 "\n", a.magic_prime, a.exit_tokens);
        printf("schedule     lr %g -> %g, warmup %" PRId64 ", Adam betas (%g, %g) eps %g, weight_decay %g, grad_clip %g, %s\n",
               a.lr_init, a.lr_final, a.warmup_steps, a.beta1, a.beta2, a.adam_eps, a.weight_decay, a.grad_clip, r.precision);
        printf("steps        start at step %" PRIu64 " (miniepoch %" PRIu64 "), exit at step %" PRIu64 ": %" PRIu64
               " steps, %" PRIu64 " tokens\n", r.c.step, r.c.step / r.smp.epoch_steps, r.exit_step, todo,
               todo * r.sched.tokens_per_step);
        printf("memory       about %.1f MiB per device (%s, grad_cp %d)\n", mem / 1048576.0, a.accelerator, a.grad_cp);
        return close_stdout();
    }
    if (world != 1 && !strcmp(a.accelerator, "cpu")) {
        fail(&e, "--devices %" PRIu64 " --num_nodes %" PRIu64 ": the CPU backend trains on one device", a.devices, a.num_nodes);
        return report(&e);
    }

    /* ---- backend ---- */
    if (model_alloc(&r.host, &r.cfg, &e)) return report(&e);
    r.m = calloc(r.layout.total, sizeof(float));
    r.v = calloc(r.layout.total, sizeof(float));
    if (!r.m || !r.v) { fail(&e, "out of memory"); return report(&e); }
    if (backend_open(a.accelerator, &r.cfg, resumed ? st.w : start.w, &bc, &r.be, &e)) return report(&e);
    if (resumed && r.be->set_state(r.be, st.w, st.m, st.v, &e)) return report(&e);
    if (resumed) trainstate_free(&st);
    model_free(&start);
    fprintf(stderr, "%s: %s %s (step %" PRIu64 ", miniepoch %" PRIu64 ")\n", tool_name,
            resumed ? "resuming from" : "starting from", source, r.c.step, r.c.step / r.smp.epoch_steps);

    /* ---- logs ---- */
    if (trim_metrics(r.metrics_path, r.c.step, &e)) return report(&e);
    r.metrics = fopen(r.metrics_path, "a");
    if (!r.metrics) { fail(&e, "cannot open %s: %s", r.metrics_path, strerror(errno)); return report(&e); }
    {
        char ts[64], line[2048];
        now_string(ts, sizeof ts);
        snprintf(line, sizeof line, "NEW RUN %s\n{'load_model': '%s', 'proj_dir': '%s', 'data_file': '%s', 'ctx_len': %" PRIu64
                 ", 'micro_bsz': %" PRIu64 ", 'n_layer': %d, 'n_embd': %d, 'vocab_size': %d, 'head_size': %d, 'lr_init': %g, "
                 "'lr_final': %g, 'warmup_steps': %" PRId64 ", 'beta1': %g, 'beta2': %g, 'adam_eps': %g, 'weight_decay': %g, "
                 "'grad_clip': %g, 'grad_cp': %d, 'epoch_save': %" PRIu64 ", 'epoch_begin': %" PRIu64 ", 'epoch_steps': %" PRIu64
                 ", 'epoch_count': %" PRIu64 ", 'real_bsz': %" PRIu64 ", 'magic_prime': %" PRIu64 ", 'my_exit_tokens': %" PRIu64
                 ", 'precision': '%s', 'accelerator': '%s', 'resume_step': %" PRIu64 "}\n",
                 ts, source, a.proj_dir, a.data_file, a.ctx_len, a.micro_bsz, r.cfg.n_layer, r.cfg.n_embd, r.cfg.vocab_size,
                 r.cfg.head_size, a.lr_init, a.lr_final, a.warmup_steps, a.beta1, a.beta2, a.adam_eps, a.weight_decay,
                 a.grad_clip, a.grad_cp, a.epoch_save, r.c.step / r.smp.epoch_steps, r.smp.epoch_steps, r.smp.epoch_count,
                 r.smp.real_bsz, a.magic_prime, a.exit_tokens, r.precision, a.accelerator, r.c.step);
        append_log(&r, line);
    }

    /* ---- the loop ---- */
    install_signals();
    size_t BT = (size_t)a.micro_bsz * a.ctx_len;
    int32_t *x = malloc(BT * sizeof *x), *y = malloc(BT * sizeof *y);
    if (!x || !y) { fail(&e, "out of memory"); return report(&e); }
    int progress = a.progress_bar && progress_wanted();
    double run_start = now_seconds(), last_end = run_start, time0 = r.c.elapsed;
    r.last_save_time = run_start;
    uint64_t run_steps = 0, run_start_step = r.c.step;
    int status = 0, finished = 0, save_failed = 0;
    double lr = 0;
    double t_sample = 0, t_model = 0, t_update = 0, t_log = 0, t_save = 0, loop_start = now_seconds();
    for (;;) {
        if (stop_signal) { status = EXIT_SIGNAL; break; }
        int done;
        lr = lr_at(&r.sched, r.c.step, r.c.warm_step, &done);
        if (done) { finished = 1; break; }
        if (a.exit_after && run_steps >= a.exit_after) break;
        if (a.max_minutes > 0 && now_seconds() - run_start >= a.max_minutes * 60) break;
        double ts0 = now_seconds();
        for (uint64_t m = 0; m < a.micro_bsz; m++) {
            uint64_t pos = sampler_step_pos(&r.smp, r.c.step, 0, m);
            for (uint64_t t = 0; t < a.ctx_len; t++) {
                x[m * a.ctx_len + t] = (int32_t)binidx_token(&r.ds, pos + t);
                y[m * a.ctx_len + t] = (int32_t)binidx_token(&r.ds, pos + t + 1);
            }
        }
        t_sample += now_seconds() - ts0;
        StepArgs sa = { .adam_step = r.c.adam_step + 1, .lr = lr, .poison = poisoned(r.c.step) };
        StepResult res;
        if (r.be->step(r.be, x, y, &sa, &res, &e)) { status = report(&e); break; }
        t_model += res.t_model;
        t_update += res.t_update;
        uint64_t step_done = r.c.step;
        r.c.step++;
        r.c.warm_step++;
        run_steps++;
        double t_end = now_seconds(), dt = t_end - last_end;
        last_end = t_end;
        r.c.elapsed = time0 + (t_end - run_start);
        if (res.applied) {
            r.c.adam_step++;
            r.c.bad_in_row = 0;
            r.c.epoch_loss_sum += res.loss;
            r.c.epoch_loss_n++;
        } else {
            r.c.bad_in_row++;
            r.c.bad_total++;
            if (progress) fputc('\n', stderr);
            warnx_("step %" PRIu64 ": non-finite %s (loss %g, grad norm %g): update skipped (%" PRIu64 " in a row, %" PRIu64 " in all)",
                   step_done, isfinite(res.loss) ? "gradient norm" : "loss", res.loss, res.grad_norm, r.c.bad_in_row, r.c.bad_total);
        }
        double tl0 = now_seconds();
        char sl[32], sg[32];
        json_num(sl, sizeof sl, res.loss, "%.6f");
        json_num(sg, sizeof sg, res.grad_norm, "%.6g");
        struct timeval tv;
        gettimeofday(&tv, NULL);
        double tokens_per_s = dt > 0 ? (double)r.sched.tokens_per_step / dt : 0;
        fprintf(r.metrics, "{\"step\":%" PRIu64 ",\"loss\":%s,\"lr\":%.8g,\"grad_norm\":%s,\"tokens\":%" PRIu64
                ",\"tokens_per_s\":%.1f,\"time\":%.3f%s}\n", step_done, sl, lr, sg, r.c.step * r.sched.tokens_per_step,
                tokens_per_s, (double)tv.tv_sec + tv.tv_usec / 1e6, res.applied ? "" : ",\"skipped\":true");
        fflush(r.metrics);
        if (r.c.bad_in_row >= a.max_bad) {
            if (progress) fputc('\n', stderr);
            warnx_("stopping: %" PRIu64 " non-finite steps in a row (last at step %" PRIu64 "); the weights were not updated "
                   "by them; the newest training state in %s is finite", r.c.bad_in_row, step_done, a.proj_dir);
            status = EXIT_NONFINITE;
            break;
        }
        if (progress) {
            double avg = r.c.epoch_loss_n ? r.c.epoch_loss_sum / (double)r.c.epoch_loss_n : NAN;
            double per_step = (t_end - run_start) / (double)run_steps;
            char eta[32], done_tok[32];
            fmt_duration(eta, sizeof eta, per_step * (double)(r.exit_step - r.c.step));
            fmt_count(done_tok, sizeof done_tok, (double)(r.c.step * r.sched.tokens_per_step));
            fprintf(stderr, "\rstep %" PRIu64 "/%" PRIu64 "  loss %.4f  lr %.3e  %.2f kt/s  %s tokens  ETA %s   ",
                    r.c.step, r.exit_step, avg, lr, tokens_per_s / 1e3, done_tok, eta);
        }
        double tl1 = now_seconds();
        t_log += tl1 - tl0;
        /* Miniepoch end: train_log line, rwkv-E (absolute epoch numbering, see the man page). */
        int saved_state = 0;
        if (r.c.step % r.smp.epoch_steps == 0) {
            uint64_t ep = r.c.step / r.smp.epoch_steps - 1;
            double avg = r.c.epoch_loss_n ? r.c.epoch_loss_sum / (double)r.c.epoch_loss_n : NAN;
            char ts[64], line[256];
            now_string(ts, sizeof ts);
            snprintf(line, sizeof line, "%" PRIu64 " %.6f %.4f %.8f %s %" PRIu64 "\n", ep, avg, exp(avg), lr, ts,
                     ep - run_start_step / r.smp.epoch_steps);
            append_log(&r, line);
            r.c.epoch_loss_sum = 0;
            r.c.epoch_loss_n = 0;
            if (ep % a.epoch_save == 0 || ep + 1 == r.smp.epoch_count) {
                char name[64];
                snprintf(name, sizeof name, "rwkv-%" PRIu64 ".safetensors", ep);
                if (save_weights(&r, name, &e)) { warnx_("warning: %s", e.msg); save_failed = 1; }
                if (save_state(&r, &e)) { warnx_("warning: state not saved: %s", e.msg); save_failed = 1; }
                else saved_state = 1;
            }
        }
        if (!saved_state && ((a.save_steps && r.c.step % a.save_steps == 0)
                             || (a.save_minutes > 0 && now_seconds() - r.last_save_time >= a.save_minutes * 60))) {
            if (save_state(&r, &e)) { warnx_("warning: state not saved (training continues): %s", e.msg); save_failed = 1; }
        }
        t_save += now_seconds() - tl1;
    }
    double loop_time = now_seconds() - loop_start;
    if (progress) fputc('\n', stderr);
    if (status == 0 || status == EXIT_SIGNAL || status == EXIT_NONFINITE) {
        if (finished && save_weights(&r, "rwkv-final.safetensors", &e)) { warnx_("%s", e.msg); status = 1; }
        if (save_state(&r, &e)) { warnx_("training state not saved: %s", e.msg); status = 1; }
        else if (status == EXIT_SIGNAL)
            warnx_("stopped by %s after step %" PRIu64 "; state saved, resume by running the same command",
                   stop_signal == SIGINT ? "SIGINT" : "SIGTERM", r.c.step);
    }
    if (finished && status == 0)
        fprintf(stderr, "%s: finished at step %" PRIu64 " (%" PRIu64 " tokens); wrote %s\n", tool_name, r.c.step,
                r.c.step * r.sched.tokens_per_step, final_path);
    if (a.timing && run_steps) {
        double T = loop_time > 0 ? loop_time : 1;
        fprintf(stderr, "%s: timing: %" PRIu64 " steps, %" PRIu64 " tokens in %.3f s: %.1f tokens/s; "
                "model forward+backward %.2f%%, optimizer (norm, clip, Adam, bf16 copy) %.2f%%, data sampling %.2f%%, "
                "metrics/progress %.2f%%, saving %.2f%%, other %.2f%%\n", tool_name, run_steps,
                run_steps * r.sched.tokens_per_step, loop_time, (double)(run_steps * r.sched.tokens_per_step) / T,
                100 * t_model / T, 100 * t_update / T, 100 * t_sample / T, 100 * t_log / T, 100 * t_save / T,
                100 * (T - t_model - t_update - t_sample - t_log - t_save) / T);
    }
    if (status == 0 && save_failed) warnx_("note: some periodic saves failed (see above)");
    if (fclose(r.metrics)) { warnx_("cannot write %s", r.metrics_path); if (!status) status = 1; }
    r.be->free(r.be);
    model_free(&r.host);
    free(r.m); free(r.v); free(x); free(y);
    free_found(states, nstates_all);
    free_found(epochs, nepochs);
    layout_free(&r.layout);
    binidx_close(&r.ds);
    free(final_path); free(init_path); free(r.metrics_path); free(r.log_path);
    return status;
}
