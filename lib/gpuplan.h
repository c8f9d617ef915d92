/* gpuplan.h: the device memory of the CUDA backend (cuda/backend_cuda.cu), as
 * plain C so that every build can print the plan (rwkv-train --dry-run) and
 * refuse a run that cannot fit before it starts.  One function carves every
 * device buffer out of a few arenas: run with NULL bases it only sizes them
 * (the plan); the backend then allocates those sizes and runs it again with
 * the real bases, so the plan and the allocation cannot disagree.
 *
 * Dtypes as the kernels take them (cuda/README.md): activations and their
 * gradients bf16 with --precision bf16 (__nv_bfloat16 in the .cu), fp32 with
 * fp32/tf32 (gact: either, as bc says; gpu_act_bytes); saved statistics, scratch
 * and parameter gradients fp32.  fp32/tf32 keep no bf16 weight copies: the
 * kernels read the fp32 masters. */
#ifndef RWKV7C_GPUPLAN_H
#define RWKV7C_GPUPLAN_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "backend.h"

#define GPU_NMIX 6
/* Logits held at once by the head: rows per pass = this / (V * gpu_act_bytes), a multiple of 16. */
#define GPU_HEAD_CHUNK_BYTES ((size_t)256 << 20)
/* cuBLASLt's workspace (cuda/gemm.cuh GEMM_WORKSPACE_BYTES). */
#define GPU_GEMM_WORKSPACE_BYTES ((size_t)32 << 20)

typedef void gact;   /* an activation on the device: bf16 or fp32 (gpu_act_bytes) */
/* Bytes of an activation element: 2 (bf16) with bc->bf16, else 4 (fp32). */
size_t gpu_act_bytes(const BackendConfig *bc);

/* One block's activations kept for its backward (model.c LayerAct). */
typedef struct {
    float *ln1_mean, *ln1_rstd;
    gact *h1, *mix[GPU_NMIX], *r, *k, *v, *tw, *w, *vh, *ah, *a, *gh, *g, *kk, *kp, *vm;
    float *vgate, *inv, *ckpt;
    gact *y, *out, *xmid, *h2, *cmix, *act;
    float *gn_mean, *gn_rstd, *bonus, *ln2_mean, *ln2_rstd;
} GpuLayerAct;

typedef struct {
    int nact;                 /* n_layer, or 1 with grad_cp */
    GpuLayerAct *act;         /* host array of nact */
    gact **xin;              /* host array of n_layer + 1 block inputs (device pointers) */
    gact *x_emb, *vfirst, *hf, *logits;
    float *ln0_mean, *ln0_rstd, *lnf_mean, *lnf_rstd, *row_loss;
    int32_t *tokens;          /* x then y, 2 B T */
    int head_rows;
    /* backward */
    gact *dx, *dh, *dr, *dk, *dv, *dw, *da, *dg, *dkk, *dkp, *dvm, *dy, *dout, *dvfirst, *dpre;
    gact *dmix[GPU_NMIX], *dlora, *dact;
    float *tmp, *tmp2, *wkv_scratch;
    /* optimizer: the global norm's sums and the clip scale */
    double *sumsq, *norm, *sumsq_scratch;
    float *clip_scale;
    unsigned long long *update_bad;   /* 3 counters: new weights, m, v that would be non-finite */
    void *gemm_workspace;
} GpuWork;

/* Bytes by purpose, as --dry-run prints them. */
typedef struct {
    uint64_t weights;       /* bf16 copies used by forward and backward (0 in fp32/tf32) */
    uint64_t masters;       /* fp32 */
    uint64_t moments;       /* Adam m and v, fp32 */
    uint64_t gradients;     /* fp32, one per parameter */
    uint64_t activations;   /* kept for the backward (all blocks, or block inputs + one block with grad_cp) */
    uint64_t head;          /* one chunk of logits (bf16 or fp32) and the row losses */
    uint64_t scratch;       /* backward scratch, WKV backward scratch, tokens, norm sums */
    uint64_t workspace;     /* cuBLASLt */
    uint64_t total;
    uint64_t context;       /* not allocated by us: the CUDA context and cuBLASLt's own, an estimate */
    int head_rows;
    int act_bytes;          /* 2: bf16 activations; 4: fp32 */
    int world, strategy;    /* as bc: the plan is one rank's */
} GpuPlan;

/* Data parallel (BackendConfig.world, .strategy): which part of the flat parameter vector
 * (Layout order) a rank updates.  ddp: all of it, on every rank.  The sharded strategies: rank r
 * owns [r*shard, r*shard + n), shard = ceil(P / world) rounded up to 128 elements (256-byte
 * aligned bf16 blocks), n clipped at P; its fp32 masters and Adam moments hold just that, and
 * the bf16 weights and the gradient are padded to world*shard for the all-gather and the
 * reduce-scatter, both in place. */
typedef struct {
    int world, rank, sharded;
    size_t P, shard, lo, n;     /* n: the elements this rank owns (0 for a rank past the end) */
    size_t padded;              /* world*shard when sharded, else P */
} GpuShard;
void gpu_shard(const ModelConfig *c, const BackendConfig *bc, int rank, GpuShard *s);

/* The parameter arena carved (gpu_arena_sizes' params bytes at base), 256-aligned, in this
 * order: bf16 weights (bc->bf16 only, else NULL: the kernels read the masters), masters, m, v,
 * gradient; w and grad padded, master, m and v this rank's shard (GpuShard). */
typedef struct {
    uint16_t *w;              /* bf16 */
    float *master, *m, *v, *grad;
} GpuParams;
void gpu_params_carve(const ModelConfig *c, const BackendConfig *bc, void *base, GpuParams *p);

/* The plan for c and bc (sizes only; rank 0's share when sharded). */
void gpu_plan(const ModelConfig *c, const BackendConfig *bc, GpuPlan *p);
/* Sizes of the three arenas the backend allocates: params (weights + masters + moments +
 * gradients), acts (activations + head), work (scratch + workspace). */
typedef struct { size_t params, acts, work; } GpuArenaSizes;
void gpu_arena_sizes(const ModelConfig *c, const BackendConfig *bc, GpuArenaSizes *s);
/* Point every buffer of w into the arenas (host arrays act, xin allocated here; free them
 * with gpu_work_free_host).  The parameter arena is carved by the backend (Layout order). */
int  gpu_work_carve(GpuWork *w, const ModelConfig *c, const BackendConfig *bc, void *acts, void *work, Error *e);
void gpu_work_free_host(GpuWork *w);
/* The plan as lines "  weights      123.4 MiB  bf16 copies ...", and the total with the device's free
 * memory when known (free_bytes 0: unknown). */
void gpu_plan_print(const GpuPlan *p, FILE *fp, uint64_t free_bytes, uint64_t total_bytes);
#endif
