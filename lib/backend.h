/* backend.h: what the training loop needs from a compute device.  The host
 * loop (lib/trainer.c) owns data sampling, the LR schedule, logging and
 * checkpoints; a backend owns the weights, the fp32 masters and the Adam
 * moments, and does forward + backward + clip + update in one call, so a
 * GPU backend can keep everything on the device and fuse the update.
 * The CPU backend (backend_cpu.c) runs lib/model.h; the CUDA backend
 * (cuda/backend_cuda.cu, built with RWKV7C_CUDA) implements the same struct;
 * backend.c picks one by its --accelerator name. */
#ifndef RWKV7C_BACKEND_H
#define RWKV7C_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "layout.h"
#include "optim.h"
#include "util.h"

/* --strategy, as the reference names them (data parallel over BackendConfig.comm). */
typedef enum {
    DP_DDP    = 0,   /* "ddp": gradients all-reduced, the whole optimizer on every rank */
    DP_STAGE1 = 1,   /* "deepspeed_stage_1": fp32 masters and Adam moments sharded, gradients reduce-scattered */
    DP_STAGE2 = 2    /* "deepspeed_stage_2": stage 1, and gradients sharded in buckets of bucket_bytes */
} DpStrategy;
/* backend.c: the --strategy name of s ("ddp", "deepspeed_stage_1", "deepspeed_stage_2"), and
 * back: 0, or -1 with the reason in e (stage 3 and the offload variants are out of scope). */
const char *dp_strategy_name(int s);
int dp_strategy_parse(const char *name, int *out, Error *e);

struct Comm;
typedef struct {
    int B, T;            /* micro_bsz, ctx_len */
    int grad_cp;         /* recompute each block in the backward */
    int bf16;            /* --precision bf16: forward/backward on bf16 copies of the fp32 masters */
    int tf32;            /* --precision tf32: fp32 activations, GEMM inputs rounded to TF32 (GPU) */
    AdamConfig adam;
    /* Data parallel (lib/comm.h): NULL or a world of one is a single rank.  Every rank opens
     * the backend with the same initial state and calls step, get_state and set_state
     * together (they are collective); step's StepResult (loss, grad_norm, applied, refused)
     * is the same on every rank: the loss is the mean over ranks. */
    struct Comm *comm;
    int world;           /* ranks: comm_size(comm), or the planned count when comm is NULL (--dry-run); 0 = 1 */
    int strategy;        /* DpStrategy */
    size_t bucket_bytes; /* --ds_bucket_mb, DP_STAGE2 */
    const char *init_file; /* --init_file: the GPU backend's NCCL id through this file on a shared
                            * file system; NULL: over comm */
} BackendConfig;

typedef struct {
    uint64_t adam_step;  /* 1, 2, ... since the optimizer started (bias correction) */
    double   lr;         /* base LR; groups scale it (att.w0 x2) */
    int      poison;     /* test hook: make the gradient non-finite before the norm */
} StepArgs;

typedef struct {
    float  loss;         /* mean cross-entropy over B*T tokens */
    double grad_norm;    /* global L2 norm before clipping */
    int    applied;      /* 0: loss or norm not finite, weights and moments untouched */
    double t_model;      /* seconds in forward + backward */
    double t_update;     /* seconds in norm, clipping, Adam and the weight copy */
    /* From a backend that checks its own updates (Backend.checks_update): when it refused
     * one that would have left a value non-finite, what ("adam_v of head.weight"); else "". */
    char   refused[96];
} StepResult;

typedef struct Backend Backend;
struct Backend {
    const char *name;
    void       *impl;
    /* x, y: B*T token ids.  Returns -1 only on a device failure. */
    int  (*step)(Backend *b, const int32_t *x, const int32_t *y, const StepArgs *a, StepResult *r, Error *e);
    /* Copy fp32 masters and Adam moments (layout.total floats each) to or from the host.
     * With several ranks: collective; get_state gives the whole state on every rank (sharded
     * parts gathered), set_state takes the whole state and each rank keeps its part. */
    int  (*get_state)(Backend *b, float *w, float *m, float *v, Error *e);
    int  (*set_state)(Backend *b, const float *w, const float *m, const float *v, Error *e);
    void (*free)(Backend *b);
    /* Device memory in use at its highest so far (bytes, the device's used memory as
     * cudaMemGetInfo sees it); NULL for backends without a device. */
    uint64_t (*device_peak)(const Backend *b);
    /* 1: step() applies an update only when every new weight and moment is finite (it
     * checks on the device first), so the trainer need not copy the state back after each
     * step to test it; it fetches the state only to save it.  0: the trainer checks. */
    int checks_update;
};

/* backend.c: the accelerator names, dispatched to the backends this build has. */
/* 0 if this build can open `accelerator` ("cpu"; "gpu"/"cuda" once built with
 * RWKV7C_CUDA), else -1 with the reason and the alternative in e. */
int backend_check(const char *accelerator, Error *e);
/* w: initial fp32 weights in Layout order; moments start at zero. */
int backend_open(const char *accelerator, const ModelConfig *c, const float *w, const BackendConfig *bc,
                 Backend **out, Error *e);
/* Bytes one device needs (weights, masters, moments, gradients, activations): for the CPU
 * also the host's fp32 staging copies used for saving; for a GPU (in any build: backend_check
 * says why a build cannot run it) lib/gpuplan.c's plan and the CUDA context. */
uint64_t backend_memory_estimate(const char *accelerator, const ModelConfig *c, const BackendConfig *bc);
/* 1 for the names of the CUDA backend ("gpu", "cuda"), built or not. */
int backend_is_gpu(const char *accelerator);
/* The device's free and total memory: 0, or -1 when this build has no CUDA backend or
 * no device answers. */
int backend_device_memory(uint64_t *free_bytes, uint64_t *total_bytes);

/* backend_cpu.c */
int backend_cpu_open(const ModelConfig *c, const float *w, const BackendConfig *bc, Backend **out, Error *e);
uint64_t backend_cpu_memory_estimate(const ModelConfig *c, const BackendConfig *bc);
#ifdef RWKV7C_CUDA
/* cuda/backend_cuda.cu */
int backend_cuda_open(const ModelConfig *c, const float *w, const BackendConfig *bc, Backend **out, Error *e);
int backend_cuda_device_memory(uint64_t *free_bytes, uint64_t *total_bytes);
#endif
#endif
