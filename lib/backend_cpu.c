/* backend_cpu.c: the training backend on the CPU, over lib/model.h. */
#include "backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

typedef struct {
    BackendConfig cfg;
    Model master;        /* fp32 masters */
    Model fwd;           /* bf16-rounded copy used by forward/backward (aliases master in fp32) */
    ModelWork *work;
    float *grad, *m, *v;
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
    r->grad_norm = grad_global_norm(c->grad, n);
    r->applied = 0;
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

static int cpu_get_state(Backend *b, float *w, float *m, float *v, Error *e)
{
    Cpu *c = b->impl;
    size_t bytes = c->master.layout.total * sizeof(float);
    if (w) memcpy(w, c->master.w, bytes);
    if (m) memcpy(m, c->m, bytes);
    if (v) memcpy(v, c->v, bytes);
    return 0;
}

static int cpu_set_state(Backend *b, const float *w, const float *m, const float *v, Error *e)
{
    Cpu *c = b->impl;
    size_t bytes = c->master.layout.total * sizeof(float);
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
        free(c);
    }
    free(b);
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
    c->grad = malloc(n * sizeof(float));
    c->m = calloc(n, sizeof(float));
    c->v = calloc(n, sizeof(float));
    if (!c->grad || !c->m || !c->v) { cpu_free(b); return fail(e, "out of memory for %zu parameters", n); }
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
