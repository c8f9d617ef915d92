/* backend_cpu.c: the training backend on the CPU, over lib/model.h.
 *
 * Data parallel (BackendConfig.comm with more than one rank; doc/comm.md): every rank runs
 * forward and backward on its own micro-batch, then inside step():
 *   ddp      the gradient is all-reduced and scaled by 1/W; every rank updates everything.
 *   stage 1  the gradient is reduce-scattered: rank r gets the sum of shard r
 *            ([r*shard, (r+1)*shard) of the flat Layout order), scales it by 1/W and updates
 *            that shard of the Adam moments, which is all it keeps of them; the new weights
 *            are all-gathered.
 *   stage 2  stage 1 with the reduce-scatter in buckets of bucket_bytes.  The backward here
 *            writes a whole gradient, so the buckets save no gradient memory on the CPU.
 * The fp32 masters stay whole on every rank: the CPU forward reads them (or their bf16
 * copy).  Every sum is in rank order (comm.h), so the three strategies reduce the gradient
 * to the same bits.  The update is computed into scratch first and committed only when every
 * rank found its part finite (checks_update). */
#include "backend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "comm.h"
#include "model.h"

typedef struct {
    BackendConfig cfg;
    Model master;        /* fp32 masters */
    Model fwd;           /* bf16-rounded copy used by forward/backward (aliases master in fp32) */
    ModelWork *work;
    float *grad, *m, *v; /* with W > 1 sharded: m, v hold this rank's [lo, hi) only */
    /* data parallel (W > 1) */
    struct Comm *comm;
    int W, rank, sharded;
    size_t shard, lo, hi;        /* shard = ceil(n / W); this rank updates [lo, hi) */
    float *gshard;               /* sharded: this rank's reduced gradient (shard floats) */
    float *tw, *tm, *tv;         /* the update of [lo, hi), checked before it is committed */
    float *gather;               /* W * shard floats: all-gather target */
    float *pack;                 /* stage 2: one bucket's send blocks */
    size_t bucket;               /* stage 2: floats per rank in one bucket */
} Cpu;

static void refresh_forward_copy(Cpu *c)
{
    if (!c->cfg.bf16) return;
    size_t n = c->master.layout.total;
    const float *src = c->master.w;
    float *dst = c->fwd.w;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
}

/* The first element of w, m, v [0, count) that is not finite (or v < 0), as
 * 3 * (lo + i) + (0 weight, 1 adam_m, 2 adam_v); UINT64_MAX when all are. */
static uint64_t first_bad(const float *w, const float *m, const float *v, size_t count, size_t lo)
{
    size_t first = count;
    #pragma omp parallel for reduction(min:first) schedule(static)
    for (size_t i = 0; i < count; i++)
        if (!isfinite(w[i]) || !isfinite(m[i]) || !isfinite(v[i]) || !(v[i] >= 0)) first = i < first ? i : first;
    if (first == count) return UINT64_MAX;
    int kind = !isfinite(w[first]) ? 0 : !isfinite(m[first]) ? 1 : 2;
    return 3 * (uint64_t)(lo + first) + (uint64_t)kind;
}

/* The sum over ranks of the gradient, scaled by 1/W: the whole of it (ddp) or this rank's
 * shard, into gshard (stage 1 in one call, stage 2 bucket by bucket). */
static int reduce_gradient(Cpu *c, Error *e)
{
    size_t n = c->master.layout.total;
    const float inv = 1.0f / (float)c->W;
    float *g;
    size_t len;
    if (!c->sharded) {
        if (comm_all_reduce(c->comm, c->grad, n, COMM_F32, e)) return -1;
        g = c->grad;
        len = n;
    } else if (c->cfg.strategy == DP_STAGE1) {
        if (comm_reduce_scatter(c->comm, c->grad, c->gshard, c->shard, COMM_F32, e)) return -1;
        g = c->gshard;
        len = c->shard;
    } else {
        for (size_t a = 0; a < c->shard; a += c->bucket) {
            size_t k = c->shard - a < c->bucket ? c->shard - a : c->bucket;
            for (int r = 0; r < c->W; r++)
                memcpy(c->pack + (size_t)r * k, c->grad + (size_t)r * c->shard + a, k * sizeof(float));
            if (comm_reduce_scatter(c->comm, c->pack, c->gshard + a, k, COMM_F32, e)) return -1;
        }
        g = c->gshard;
        len = c->shard;
    }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < len; i++) g[i] *= inv;
    return 0;
}

static double sum_squares(const float *g, size_t n)
{
    double s = 0;
    #pragma omp parallel for reduction(+:s) schedule(static)
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

static int dp_step(Cpu *c, const StepArgs *a, StepResult *r, Error *e)
{
    size_t n = c->master.layout.total, cnt = c->hi - c->lo;
    if (reduce_gradient(c, e)) return -1;
    const float *g = c->sharded ? c->gshard : c->grad + c->lo;
    /* The loss summed (the mean over ranks: each rank's mean is over the same B*T tokens) and
     * the squared norm: ddp from rank 0's whole gradient (every rank uses the same bits,
     * whatever its thread count), sharded from each rank's shard; both in one call. */
    double buf[2] = { r->loss, c->sharded ? sum_squares(g, cnt) : c->rank == 0 ? sum_squares(c->grad, n) : 0 };
    if (comm_all_reduce(c->comm, buf, 2, COMM_F64, e)) return -1;
    r->loss = (float)(buf[0] / c->W);
    r->grad_norm = sqrt(buf[1]);
    if (!isfinite(r->loss) || !isfinite(r->grad_norm)) return 0;   /* every rank sees the same sums */
    float scale = grad_clip_scale(r->grad_norm, c->cfg.adam.grad_clip);
    const float *m0 = c->sharded ? c->m : c->m + c->lo, *v0 = c->sharded ? c->v : c->v + c->lo;
    memcpy(c->tw, c->master.w + c->lo, cnt * sizeof(float));
    memcpy(c->tm, m0, cnt * sizeof(float));
    memcpy(c->tv, v0, cnt * sizeof(float));
    adam_step_range(&c->master.layout, &c->cfg.adam, a->adam_step, a->lr, scale, c->lo, c->hi, c->tw, c->tm, c->tv, g);
    /* Commit only if no rank's part became non-finite: the first bad element over all ranks. */
    uint64_t mine = first_bad(c->tw, c->tm, c->tv, cnt, c->lo), *all = (uint64_t *)c->gather, worst = UINT64_MAX;
    if (comm_all_gather(c->comm, &mine, all, sizeof mine, e)) return -1;
    for (int k = 0; k < c->W; k++) worst = all[k] < worst ? all[k] : worst;
    if (worst != UINT64_MAX) {
        size_t at = (size_t)(worst / 3);
        const char *name = "?";
        for (int k = 0; k < c->master.layout.n; k++) {
            const ParamInfo *p = &c->master.layout.p[k];
            if (at >= p->offset && at - p->offset < p->numel) name = p->name;
        }
        static const char *const what[] = { "the weight", "adam_m", "adam_v" };
        snprintf(r->refused, sizeof r->refused, "%s of %s", what[worst % 3], name);
        return 0;
    }
    memcpy(c->sharded ? c->m : c->m + c->lo, c->tm, cnt * sizeof(float));
    memcpy(c->sharded ? c->v : c->v + c->lo, c->tv, cnt * sizeof(float));
    if (c->sharded) {   /* tw is shard floats, zero past cnt: every rank sends the same size */
        if (comm_all_gather(c->comm, c->tw, c->gather, c->shard * sizeof(float), e)) return -1;
        memcpy(c->master.w, c->gather, n * sizeof(float));
    } else
        memcpy(c->master.w, c->tw, n * sizeof(float));
    refresh_forward_copy(c);
    r->applied = 1;
    return 0;
}

static int cpu_step(Backend *b, const int32_t *x, const int32_t *y, const StepArgs *a, StepResult *r, Error *e)
{
    Cpu *c = b->impl;
    const Model *fm = c->cfg.bf16 ? &c->fwd : &c->master;
    size_t n = c->master.layout.total;
    double t0 = now_seconds();
    r->loss = model_forward_backward(fm, c->work, x, y, c->grad);
    double t1 = now_seconds();
    r->t_model = t1 - t0;
    r->t_update = 0;
    r->refused[0] = 0;
    if (a->poison) c->grad[n / 2] = NAN;
    r->applied = 0;
    if (c->W > 1) {
        int rc = dp_step(c, a, r, e);
        r->t_update = now_seconds() - t1;
        return rc;
    }
    r->grad_norm = grad_global_norm(c->grad, n);
    if (!isfinite(r->loss) || !isfinite(r->grad_norm)) {   /* skip: the caller reports it */
        r->t_update = now_seconds() - t1;
        return 0;
    }
    float scale = grad_clip_scale(r->grad_norm, c->cfg.adam.grad_clip);
    adam_step(&c->master.layout, &c->cfg.adam, a->adam_step, a->lr, scale, c->master.w, c->m, c->v, c->grad,
              c->cfg.bf16 ? c->fwd.w : NULL);
    r->applied = 1;
    r->t_update = now_seconds() - t1;
    return 0;
}

/* dst[0..n) = the whole of a sharded moment (collective). */
static int gather_moment(Cpu *c, const float *part, float *dst, Error *e)
{
    size_t cnt = c->hi - c->lo;
    memcpy(c->tm, part, cnt * sizeof(float));
    memset(c->tm + cnt, 0, (c->shard - cnt) * sizeof(float));
    if (comm_all_gather(c->comm, c->tm, c->gather, c->shard * sizeof(float), e)) return -1;
    memcpy(dst, c->gather, c->master.layout.total * sizeof(float));
    return 0;
}

static int cpu_get_state(Backend *b, float *w, float *m, float *v, Error *e)
{
    Cpu *c = b->impl;
    size_t bytes = c->master.layout.total * sizeof(float);
    if (c->sharded) {
        if (w) memcpy(w, c->master.w, bytes);
        if (m && gather_moment(c, c->m, m, e)) return -1;
        if (v && gather_moment(c, c->v, v, e)) return -1;
        return 0;
    }
    if (w) memcpy(w, c->master.w, bytes);
    if (m) memcpy(m, c->m, bytes);
    if (v) memcpy(v, c->v, bytes);
    return 0;
}

static int cpu_set_state(Backend *b, const float *w, const float *m, const float *v, Error *e)
{
    Cpu *c = b->impl;
    size_t bytes = c->master.layout.total * sizeof(float);
    if (c->sharded) {   /* the whole state in, this rank's shard of the moments kept */
        size_t part = (c->hi - c->lo) * sizeof(float);
        if (w) memcpy(c->master.w, w, bytes);
        if (m) memcpy(c->m, m + c->lo, part); else memset(c->m, 0, part);
        if (v) memcpy(c->v, v + c->lo, part); else memset(c->v, 0, part);
        refresh_forward_copy(c);
        return 0;
    }
    if (w) memcpy(c->master.w, w, bytes);
    if (m) memcpy(c->m, m, bytes); else memset(c->m, 0, bytes);
    if (v) memcpy(c->v, v, bytes); else memset(c->v, 0, bytes);
    refresh_forward_copy(c);
    return 0;
}

static void cpu_free(Backend *b)
{
    if (!b) return;
    Cpu *c = b->impl;
    if (c) {
        if (c->work) model_work_free(c->work);
        model_free(&c->master);
        if (c->cfg.bf16) model_free(&c->fwd);
        free(c->grad); free(c->m); free(c->v);
        free(c->gshard); free(c->tw); free(c->tm); free(c->tv); free(c->gather); free(c->pack);
        free(c);
    }
    free(b);
}

/* The data-parallel buffers (c->master allocated). */
static int dp_alloc(Cpu *c, const BackendConfig *bc, Error *e)
{
    size_t n = c->master.layout.total, W = (size_t)c->W;
    c->comm = bc->comm;
    c->rank = comm_rank(bc->comm);
    c->sharded = bc->strategy == DP_STAGE1 || bc->strategy == DP_STAGE2;
    if (!c->sharded && bc->strategy != DP_DDP) return fail(e, "data parallel strategy %d: not one of ddp, stage 1, stage 2", bc->strategy);
    c->shard = c->sharded ? (n + W - 1) / W : n;
    c->lo = c->sharded ? (size_t)c->rank * c->shard : 0;
    c->hi = c->sharded ? c->lo + c->shard : n;
    if (c->lo > n) c->lo = n;
    if (c->hi > n) c->hi = n;
    size_t mlen = c->sharded ? c->shard : n;
    /* the padded gradient: reduce-scatter sends W whole blocks (the tail stays 0) */
    c->grad = calloc(c->sharded ? W * c->shard : n, sizeof(float));
    c->m = calloc(mlen, sizeof(float));
    c->v = calloc(mlen, sizeof(float));
    c->tw = calloc(mlen, sizeof(float));
    c->tm = calloc(mlen, sizeof(float));
    c->tv = calloc(mlen, sizeof(float));
    /* all-gather target: W shards, or W step flags */
    c->gather = calloc(c->sharded && c->shard > 2 ? W * c->shard : W * 2, sizeof(float));
    if (c->sharded) c->gshard = calloc(c->shard, sizeof(float));
    if (bc->strategy == DP_STAGE2) {
        size_t bb = bc->bucket_bytes ? bc->bucket_bytes : 200u * 1000 * 1000;
        c->bucket = bb / sizeof(float) / W;
        if (c->bucket == 0) c->bucket = 1;
        if (c->bucket > c->shard) c->bucket = c->shard;
        c->pack = malloc(W * c->bucket * sizeof(float));
    }
    if (!c->grad || !c->m || !c->v || !c->tw || !c->tm || !c->tv || !c->gather || (c->sharded && !c->gshard)
        || (bc->strategy == DP_STAGE2 && !c->pack))
        return fail(e, "out of memory for %zu parameters", n);
    return 0;
}

int backend_cpu_open(const ModelConfig *mc, const float *w, const BackendConfig *bc, Backend **out, Error *e)
{
    *out = NULL;
    Backend *b = calloc(1, sizeof *b);
    Cpu *c = calloc(1, sizeof *c);
    if (!b || !c) { free(b); free(c); return fail(e, "out of memory"); }
    b->name = "cpu";
    b->impl = c;
    b->step = cpu_step;
    b->get_state = cpu_get_state;
    b->set_state = cpu_set_state;
    b->free = cpu_free;
    c->cfg = *bc;
    if (model_alloc(&c->master, mc, e)) { free(c); free(b); return -1; }
    if (bc->bf16 && model_alloc(&c->fwd, mc, e)) { model_free(&c->master); free(c); free(b); return -1; }
    size_t n = c->master.layout.total;
    c->W = bc->comm ? comm_size(bc->comm) : 1;
    if (c->W > 1 && dp_alloc(c, bc, e)) { cpu_free(b); return -1; }
    if (c->W <= 1) {
        c->grad = malloc(n * sizeof(float));
        c->m = calloc(n, sizeof(float));
        c->v = calloc(n, sizeof(float));
    }
    if (!c->grad || !c->m || !c->v) { cpu_free(b); return fail(e, "out of memory for %zu parameters", n); }
    b->checks_update = c->W > 1;
    memcpy(c->master.w, w, n * sizeof(float));
    refresh_forward_copy(c);
    c->work = model_work_new(bc->bf16 ? &c->fwd : &c->master, bc->B, bc->T, bc->grad_cp, e);
    if (!c->work) { cpu_free(b); return -1; }
    *out = b;
    return 0;
}

uint64_t backend_cpu_memory_estimate(const ModelConfig *c, const BackendConfig *bc)
{
    uint64_t P = config_param_count(c), BT = (uint64_t)bc->B * bc->T;
    uint64_t L = (uint64_t)c->n_layer, C = (uint64_t)c->n_embd, V = (uint64_t)c->vocab_size;
    /* masters + Adam m, v + gradient (fp32), plus the bf16-rounded forward copy */
    uint64_t weights = P * 4 * 4 + (bc->bf16 ? P * 4 : 0);
    uint64_t W = bc->world > 1 ? (uint64_t)bc->world : 1;
    if (W > 1) {
        /* masters and gradient whole; moments and the checked update (3 scratch copies) of
         * this rank's part; sharded: its reduced gradient and the all-gather target too */
        int sharded = bc->strategy != DP_DDP;
        uint64_t part = sharded ? (P + W - 1) / W : P;
        weights = P * 4 * 2 + part * 4 * 5 + (sharded ? part * 4 + W * part * 4 : 0) + (bc->bf16 ? P * 4 : 0);
    }
    /* The trainer's host copies (lib/trainer.c open_backend): fp32 last good and
     * new masters, m and v (6, for the non-finite rollback) and the weights it
     * saves from (1), plus the bf16 checkpoint made from those when saving.  The
     * state it resumes from (3 fp32) is freed before most of these are first
     * written, so it does not raise the peak. */
    uint64_t host = P * 4 * 7 + P * 2;
    /* Activations: about 40 C-sized fp32 vectors per token and layer kept for the
     * backward, WKV state checkpoints included (one layer's worth plus the
     * block inputs with grad_cp), and the logits. */
    uint64_t per_layer = 40 * C * 4;
    uint64_t acts = bc->grad_cp ? BT * (L * C * 4 + per_layer) : BT * L * per_layer;
    /* logits: the CPU model holds at most 128 MiB of them at once (row chunks) */
    uint64_t logits = BT * V * 4;
    acts += logits < (128u << 20) ? logits : (128u << 20);
    return weights + host + acts;
}
