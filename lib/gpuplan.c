/* gpuplan.c: the CUDA backend's device buffers, sized and carved (gpuplan.h). */
#include "gpuplan.h"

#include <stdlib.h>
#include <string.h>
#include "ops.h"

#define ALIGN 256   /* cuBLASLt picks algorithms by pointer alignment: keep every buffer 256-aligned */

/* Hands out aligned pieces of one arena; with base NULL it only counts. */
typedef struct { char *base; size_t used; } Carver;
static void *take(Carver *cv, size_t bytes)
{
    void *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    return p;
}
#define TAKE_A(cv, n)  take(cv, (size_t)(n) * ab)   /* an activation buffer: ab bytes each */
#define TAKE_F(cv, n)  ((float *)take(cv, (size_t)(n) * 4))

static int max_rank(const ModelConfig *c)
{
    int d = c->d_decay;
    if (c->d_aaa > d) d = c->d_aaa;
    if (c->d_mv > d) d = c->d_mv;
    if (c->d_gate > d) d = c->d_gate;
    return d;
}

size_t gpu_act_bytes(const BackendConfig *bc) { return bc->bf16 ? 2 : 4; }

static int head_rows_for(const ModelConfig *c, const BackendConfig *bc)
{
    size_t BT = (size_t)bc->B * bc->T;
    size_t rows = GPU_HEAD_CHUNK_BYTES / ((size_t)c->vocab_size * gpu_act_bytes(bc)) / 16 * 16;
    if (rows < 16) rows = 16;
    if (rows > BT) rows = BT;
    return (int)rows;
}

/* The carve itself: acts holds the activations then the head; work the scratch then the
 * GEMM workspace.  *head_off: where the head starts in acts. */
static void carve(GpuWork *w, const ModelConfig *c, const BackendConfig *bc, Carver *acts, Carver *work,
                  size_t *head_off)
{
    size_t BT = (size_t)bc->B * bc->T, C = (size_t)c->n_embd, H = (size_t)c->n_head, ab = gpu_act_bytes(bc);
    for (int l = 0; l < w->nact; l++) {
        GpuLayerAct *A = &w->act[l];
        A->ln1_mean = TAKE_F(acts, BT); A->ln1_rstd = TAKE_F(acts, BT); A->h1 = TAKE_A(acts, BT * C);
        for (int i = 0; i < GPU_NMIX; i++) A->mix[i] = TAKE_A(acts, BT * C);
        A->r = TAKE_A(acts, BT * C); A->k = TAKE_A(acts, BT * C); A->v = TAKE_A(acts, BT * C);
        A->tw = TAKE_A(acts, BT * c->d_decay); A->w = TAKE_A(acts, BT * C);
        A->vh = TAKE_A(acts, BT * c->d_mv); A->vgate = TAKE_F(acts, BT * C);
        A->ah = TAKE_A(acts, BT * c->d_aaa); A->a = TAKE_A(acts, BT * C);
        A->gh = TAKE_A(acts, BT * c->d_gate); A->g = TAKE_A(acts, BT * C);
        A->kk = TAKE_A(acts, BT * C); A->inv = TAKE_F(acts, BT * H); A->kp = TAKE_A(acts, BT * C);
        A->vm = TAKE_A(acts, BT * C);
        A->ckpt = TAKE_F(acts, wkv7_ckpt_floats(bc->B, bc->T, (int)H));
        A->y = TAKE_A(acts, BT * C); A->gn_mean = TAKE_F(acts, BT * H); A->gn_rstd = TAKE_F(acts, BT * H);
        A->bonus = TAKE_F(acts, BT * H); A->out = TAKE_A(acts, BT * C);
        A->xmid = TAKE_A(acts, BT * C); A->ln2_mean = TAKE_F(acts, BT); A->ln2_rstd = TAKE_F(acts, BT);
        A->h2 = TAKE_A(acts, BT * C); A->cmix = TAKE_A(acts, BT * C); A->act = TAKE_A(acts, BT * 4 * C);
    }
    w->x_emb = TAKE_A(acts, BT * C); w->ln0_mean = TAKE_F(acts, BT); w->ln0_rstd = TAKE_F(acts, BT);
    for (int l = 0; l <= c->n_layer; l++) w->xin[l] = TAKE_A(acts, BT * C);
    w->vfirst = TAKE_A(acts, BT * C);
    w->lnf_mean = TAKE_F(acts, BT); w->lnf_rstd = TAKE_F(acts, BT); w->hf = TAKE_A(acts, BT * C);
    *head_off = acts->used;
    w->head_rows = head_rows_for(c, bc);
    w->logits = TAKE_A(acts, (size_t)w->head_rows * c->vocab_size);
    w->row_loss = TAKE_F(acts, BT);

    w->tokens = (int32_t *)take(work, 2 * BT * sizeof(int32_t));
    gact **bufs[] = { &w->dx, &w->dh, &w->dr, &w->dk, &w->dv, &w->dw, &w->da, &w->dg, &w->dkk, &w->dkp,
                       &w->dvm, &w->dy, &w->dout, &w->dvfirst, &w->dpre };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) *bufs[i] = TAKE_A(work, BT * C);
    for (int i = 0; i < GPU_NMIX; i++) w->dmix[i] = TAKE_A(work, BT * C);
    w->dlora = TAKE_A(work, BT * (size_t)max_rank(c));
    w->dact = TAKE_A(work, BT * 4 * C);
    w->tmp = TAKE_F(work, BT * C); w->tmp2 = TAKE_F(work, BT * C);
    /* cuda/wkv7.cuh wkv7_bwd_cuda_scratch_floats: B*T*H*64 + B*H*64*64 (the backend checks) */
    w->wkv_scratch = TAKE_F(work, BT * H * 64 + (size_t)bc->B * H * 64 * 64);
    w->sumsq = (double *)take(work, sizeof(double));
    w->norm = (double *)take(work, sizeof(double));
    w->sumsq_scratch = (double *)take(work, 256 * sizeof(double));   /* adam.cuh SUMSQ_BLOCKS */
    w->clip_scale = TAKE_F(work, 1);
    w->update_bad = (unsigned long long *)take(work, 3 * sizeof(unsigned long long));
    w->gemm_workspace = take(work, GPU_GEMM_WORKSPACE_BYTES);
}

static int host_arrays(GpuWork *w, const ModelConfig *c, const BackendConfig *bc)
{
    memset(w, 0, sizeof *w);
    w->nact = bc->grad_cp ? 1 : c->n_layer;
    w->act = calloc((size_t)w->nact, sizeof *w->act);
    w->xin = calloc((size_t)c->n_layer + 1, sizeof *w->xin);
    return w->act && w->xin ? 0 : -1;
}

void gpu_work_free_host(GpuWork *w)
{
    free(w->act);
    free(w->xin);
    w->act = NULL;
    w->xin = NULL;
}

void gpu_shard(const ModelConfig *c, const BackendConfig *bc, int rank, GpuShard *s)
{
    memset(s, 0, sizeof *s);
    s->P = (size_t)config_param_count(c);
    s->world = bc->world > 1 ? bc->world : 1;
    s->rank = rank;
    s->sharded = s->world > 1 && bc->strategy != DP_DDP;
    if (!s->sharded) {
        s->shard = s->n = s->padded = s->P;
        return;
    }
    s->shard = ((s->P + (size_t)s->world - 1) / (size_t)s->world + 127) / 128 * 128;
    s->padded = s->shard * (size_t)s->world;
    s->lo = s->shard * (size_t)rank;
    s->n = s->lo >= s->P ? 0 : s->P - s->lo < s->shard ? s->P - s->lo : s->shard;
}

/* The parameter arena in the backend's order: bf16 weights (padded), then fp32 masters, m and
 * v (this rank's shard), the gradient (padded).  The collectives work in place (comm.h): the
 * reduced shard is the rank's block of the gradient, the all-gather sends its block of the
 * weights.  Returns the arena's size. */
enum { PA_W, PA_MASTER, PA_M, PA_V, PA_GRAD, PA_N };
static size_t params_carve(const ModelConfig *c, const BackendConfig *bc, size_t off[PA_N], size_t bytes[PA_N])
{
    GpuShard sh;
    gpu_shard(c, bc, 0, &sh);
    size_t own = sh.sharded ? sh.shard : sh.P;
    /* fp32/tf32 keep no bf16 copies: the kernels read the masters */
    size_t b[PA_N] = { bc->bf16 ? sh.padded * 2 : 0, own * 4, own * 4, own * 4, sh.padded * 4 };
    Carver cv = { NULL, 0 };
    for (int i = 0; i < PA_N; i++) {
        off[i] = cv.used;
        bytes[i] = b[i];
        take(&cv, b[i]);
    }
    return cv.used;
}

static size_t params_bytes(const ModelConfig *c, const BackendConfig *bc)
{
    size_t off[PA_N], bytes[PA_N];
    return params_carve(c, bc, off, bytes);
}

void gpu_params_carve(const ModelConfig *c, const BackendConfig *bc, void *base, GpuParams *p)
{
    size_t off[PA_N], bytes[PA_N];
    params_carve(c, bc, off, bytes);
    void *at[PA_N];
    for (int i = 0; i < PA_N; i++) at[i] = bytes[i] ? (char *)base + off[i] : NULL;
    p->w = at[PA_W];
    p->master = at[PA_MASTER];
    p->m = at[PA_M];
    p->v = at[PA_V];
    p->grad = at[PA_GRAD];
}

void gpu_arena_sizes(const ModelConfig *c, const BackendConfig *bc, GpuArenaSizes *s)
{
    GpuWork w;
    Carver acts = { NULL, 0 }, work = { NULL, 0 };
    size_t head_off;
    memset(s, 0, sizeof *s);
    if (host_arrays(&w, c, bc)) { gpu_work_free_host(&w); return; }
    carve(&w, c, bc, &acts, &work, &head_off);
    gpu_work_free_host(&w);
    s->params = params_bytes(c, bc);
    s->acts = acts.used;
    s->work = work.used;
}

int gpu_work_carve(GpuWork *w, const ModelConfig *c, const BackendConfig *bc, void *acts, void *work, Error *e)
{
    if (host_arrays(w, c, bc)) { gpu_work_free_host(w); return fail(e, "out of memory"); }
    Carver a = { acts, 0 }, k = { work, 0 };
    size_t head_off;
    carve(w, c, bc, &a, &k, &head_off);
    return 0;
}

void gpu_plan(const ModelConfig *c, const BackendConfig *bc, GpuPlan *p)
{
    memset(p, 0, sizeof *p);
    GpuWork w;
    Carver acts = { NULL, 0 }, work = { NULL, 0 };
    size_t head_off = 0;
    if (!host_arrays(&w, c, bc)) carve(&w, c, bc, &acts, &work, &head_off);
    p->head_rows = w.head_rows;
    gpu_work_free_host(&w);
    size_t off[PA_N], bytes[PA_N];
    params_carve(c, bc, off, bytes);
    p->weights = bytes[PA_W];
    p->masters = bytes[PA_MASTER];
    p->moments = bytes[PA_M] + bytes[PA_V];
    p->gradients = bytes[PA_GRAD];
    p->world = bc->world > 1 ? bc->world : 1;
    p->strategy = bc->strategy;
    p->act_bytes = (int)gpu_act_bytes(bc);
    p->activations = head_off;
    p->head = acts.used - head_off;
    p->workspace = GPU_GEMM_WORKSPACE_BYTES;
    p->scratch = work.used - GPU_GEMM_WORKSPACE_BYTES;
    p->total = params_bytes(c, bc) + acts.used + work.used;
    /* The CUDA context, cuBLASLt's handle and module images: a few hundred MiB on
     * current GPUs (measured figures in cuda/README.md when a GPU was lent). */
    p->context = (uint64_t)600 << 20;
}

void gpu_plan_print(const GpuPlan *p, FILE *fp, uint64_t free_bytes, uint64_t total_bytes)
{
    const double MiB = 1048576.0;
    static const char *strategy[] = { "ddp", "deepspeed_stage_1", "deepspeed_stage_2" };
    int sharded = p->world > 1 && p->strategy != DP_DDP;
    const char *act = p->act_bytes == 2 ? "bf16" : "fp32";
    if (p->world > 1)
        fprintf(fp, "device memory plan (CUDA backend), per device: %d ranks, %s\n", p->world,
                p->strategy >= 0 && p->strategy <= DP_STAGE2 ? strategy[p->strategy] : "?");
    else
        fprintf(fp, "device memory plan (CUDA backend)\n");
    if (p->act_bytes == 2)
        fprintf(fp, "  weights      %10.1f MiB  bf16 copies used by forward and backward%s\n", p->weights / MiB,
                sharded ? " (all of them, gathered)" : "");
    else
        fprintf(fp, "  weights      %10.1f MiB  none: fp32 forward and backward read the masters\n", p->weights / MiB);
    fprintf(fp, "  masters      %10.1f MiB  fp32%s\n", p->masters / MiB, sharded ? ", this rank's shard" : "");
    fprintf(fp, "  moments      %10.1f MiB  Adam m and v, fp32%s\n", p->moments / MiB, sharded ? ", this rank's shard" : "");
    fprintf(fp, "  gradients    %10.1f MiB  fp32%s\n", p->gradients / MiB,
            sharded ? ", the whole (this rank's part reduced in place)" : "");
    if (p->world > 1 && p->strategy == DP_STAGE2)
        fprintf(fp, "  (deepspeed_stage_2 shards as stage 1 does on the CUDA backend: the whole gradient is\n"
                    "   kept until the reduce-scatter after the backward)\n");
    fprintf(fp, "  activations  %10.1f MiB  kept for the backward, %s\n", p->activations / MiB, act);
    fprintf(fp, "  head chunk   %10.1f MiB  %d rows of %s logits at a time, row losses\n", p->head / MiB, p->head_rows, act);
    fprintf(fp, "  scratch      %10.1f MiB  backward buffers, WKV backward scratch, tokens\n", p->scratch / MiB);
    fprintf(fp, "  workspace    %10.1f MiB  cuBLASLt\n", p->workspace / MiB);
    fprintf(fp, "  total        %10.1f MiB  (%.2f GB), plus about %.0f MiB for the CUDA context and libraries\n",
            p->total / MiB, p->total / 1e9, p->context / MiB);
    if (total_bytes)
        fprintf(fp, "  device       %10.1f MiB free of %.1f MiB\n", free_bytes / MiB, total_bytes / MiB);
}
