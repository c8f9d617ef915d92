/* trainer.h: one rwkv-train run — the host side shared by every backend.
 *
 * trainer_open checks the options against the data and the starting
 * checkpoint: it finds the starting point in the project directory (the newest
 * complete training state, else --load_model, else the newest rwkv-N, else
 * rwkv-init), inherits or checks the run configuration of a resumed state, and
 * derives magic_prime, my_exit_tokens, the sampler, the LR schedule and the
 * Adam settings.  trainer_print_plan prints the --dry-run plan.  trainer_run
 * opens the backend and runs the step loop (RWKV-LM-V7 train.py and
 * src/trainer.py train_callback; state format and resume: doc/training-state.md): it
 * writes metrics.jsonl and train_log.txt, saves rwkv-E / rwkv-final weights
 * and the resumable training state, shows a progress line, and finishes the
 * current step and saves on SIGINT/SIGTERM/SIGHUP/SIGPIPE.  Monitors, which
 * never stop the run: TensorBoard event files (tbevents.h) and a wandb bridge
 * process (bin/rwkv-wandb-bridge) that follows metrics.jsonl.
 *
 * Library code: errors come back in an Error; warnings and notes go to
 * opt->message (one line, without the tool name), the progress line to
 * opt->progress. */
#ifndef RWKV7C_TRAINER_H
#define RWKV7C_TRAINER_H
#include <stdint.h>
#include <stdio.h>
#include "util.h"

/* trainer_run's exit statuses besides 0 (done, or stopped at a requested limit) and 1 (error) */
#define TRAIN_EXIT_USAGE     2    /* the options cannot work here (a batch too large for memory) */
#define TRAIN_EXIT_NONFINITE 4    /* --max_bad_steps non-finite steps in a row */
#define TRAIN_EXIT_SIGNAL   75    /* EX_TEMPFAIL: stopped on SIGINT/SIGTERM/SIGHUP/SIGPIPE, state saved, resumable */

/* Which weight files rwkv-E / rwkv-final are written as. */
enum { SAVE_SAFETENSORS = 1, SAVE_PTH = 2, SAVE_BOTH = 3 };

/* Options given explicitly (a resumed run inherits the others from its state). */
typedef struct {
    int ctx_len, micro_bsz, magic_prime, exit_tokens, epoch_save, precision;
    int lr_init, lr_final, warmup_steps, beta1, beta2, adam_eps, weight_decay, grad_clip;
} TrainGiven;

typedef struct {
    const char *load_model;          /* NULL: find the start in proj_dir */
    const char *proj_dir, *data_file, *accelerator;
    const char *precision;           /* "bf16", "fp32" or "tf32" */
    int resume_never, force, dry_run, allow_repeat, grad_cp, timing;
    int save_format;                 /* SAVE_* */
    int64_t vocab_size, n_layer, n_embd, head_size, dim_att, dim_ffn;   /* 0: from the checkpoint */
    uint64_t ctx_len, micro_bsz, devices, num_nodes, epoch_save, epoch_begin;
    uint64_t magic_prime, exit_tokens;   /* 0: computed from the data */
    double lr_init, lr_final, beta1, beta2, adam_eps, weight_decay, grad_clip;
    int64_t warmup_steps;            /* -1: none */
    uint64_t save_steps, keep, max_bad, exit_after, seed;
    double save_minutes, max_minutes;
    const char *tensorboard_dir;     /* TensorBoard event files go there; NULL or "": off */
    const char *wandb_project;       /* wandb project the bridge logs to; NULL or "": off */
    const char *my_testing;          /* "x060"/"x070" from --my_testing, or NULL: the checkpoint's type must match */
    TrainGiven given;
    /* Data parallel (doc/comm.md): the communicator of this launch (NULL: one rank, or a
     * --dry-run planning devices x num_nodes ranks), this process's rank in it, and the
     * --strategy (DpStrategy, backend.h) and --ds_bucket_mb (bytes).  Rank 0 alone writes
     * logs, checkpoints and states and locks proj_dir; the others only say what fails. */
    struct Comm *comm;
    int rank, strategy;
    uint64_t bucket_bytes;
    const char *init_file;           /* --init_file: the GPU backend's NCCL id rendezvous (NULL: over comm) */
    FILE *progress;                  /* progress line ("\r..."), or NULL */
    void (*message)(const char *line);   /* warnings and notes, or NULL */
} TrainOptions;

/* The reference trainer's defaults (rwkv-train(1)). */
void train_options_default(TrainOptions *o);

typedef struct Trainer Trainer;

/* o is used (and updated with the values in effect) until trainer_close. */
int  trainer_open(TrainOptions *o, Trainer **out, Error *e);
void trainer_print_plan(const Trainer *tr, FILE *fp);
/* Returns 0, 1 (error, already passed to o->message), TRAIN_EXIT_USAGE,
 * TRAIN_EXIT_NONFINITE or TRAIN_EXIT_SIGNAL.  Every stop after the backend
 * opened saves the training state (the newest state whose values are all finite). */
int  trainer_run(Trainer *tr);
void trainer_close(Trainer *tr);
#endif
