/* optim.c: the parameter groups, clipping and DeepSpeed FusedAdam (csrc/adam/multi_tensor_adam.cu) over them; the per-element update is adam_update (ops.h). */
#include "optim.h"

#include <math.h>
#include <string.h>

#include "ops.h"

/* configure_optimizers (RWKV-LM-V7 and RWKV-LM RWKV-v5 src/model.py, layerwise_lr 1,
 * my_pile_stage != 2): the first matching rule wins.  x070 names only meet the
 * att.w0 and ".weight" rules; the x060 rules come first so that time_decay_w1/_w2
 * stay 1x while time_decay is 2x. */
ParamGroup param_group(const ParamInfo *p, double weight_decay)
{
    if (strstr(p->name, "_w1") || strstr(p->name, "_w2")) return GROUP_LR_1X;
    if (strstr(p->name, "time_mix") || strstr(p->name, "time_maa")) return GROUP_LR_1X;
    if (strstr(p->name, "time_decay") || strstr(p->name, "time_daaaa") || strstr(p->name, "att.w0")) return GROUP_LR_2X;
    if (strstr(p->name, "time_faaaa")) return GROUP_LR_1X;
    int dims = 0;   /* p.squeeze().dim(): count dimensions larger than 1 */
    for (int i = 0; i < p->ndim; i++) dims += p->shape[i] != 1;
    if (dims >= 2 && weight_decay > 0 && strstr(p->name, ".weight")) return GROUP_DECAY;
    return GROUP_LR_1X;
}

const char *param_group_name(ParamGroup g)
{
    return g == GROUP_LR_2X ? "lr_2x" : g == GROUP_DECAY ? "decay" : "lr_1x";
}

double param_group_lr_scale(ParamGroup g) { return g == GROUP_LR_2X ? 2.0 : 1.0; }

double grad_global_norm(const float *g, size_t n)
{
    double s = 0;
    #pragma omp parallel for reduction(+:s) schedule(static)
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

float grad_clip_scale(double norm, double clip)
{
    if (!(clip > 0)) return 1.0f;
    double c = (norm + 1e-6) / clip;
    return c > 1 ? (float)(1.0 / c) : 1.0f;
}

void adam_step(const Layout *l, const AdamConfig *c, uint64_t step, double lr, float grad_scale,
               float *w, float *m, float *v, const float *g, float *w_bf16)
{
    /* The host passes these to the kernel as float, as DeepSpeed does. */
    const float beta1 = (float)c->beta1, beta2 = (float)c->beta2, eps = (float)c->eps;
    /* std::pow(float beta, int step) promotes to double; the result is stored as float. */
    const float bc1 = (float)(1.0 - pow((double)beta1, (double)step));
    const float bc2 = (float)(1.0 - pow((double)beta2, (double)step));
    const int adamw = c->weight_decay > 0;
    for (int k = 0; k < l->n; k++) {
        const ParamInfo *p = &l->p[k];
        ParamGroup grp = param_group(p, c->weight_decay);
        const float lr_g = (float)(lr * param_group_lr_scale(grp));
        const float wd = grp == GROUP_DECAY ? (float)c->weight_decay : 0.0f;
        const size_t o = p->offset;
        adam_update(w + o, m + o, v + o, w_bf16 ? w_bf16 + o : NULL, g + o, p->numel, grad_scale,
                    lr_g, beta1, beta2, eps, bc1, bc2, wd, adamw);
    }
}

/* The Adam arguments of one tensor for update_piece. */
typedef struct {
    float grad_scale, lr_g, beta1, beta2, eps, bc1, bc2, wd;
    int adamw;
} AdamLane;

/* adam_update over [a, b) of the tensor [base, base + numel), each element in the lane it has
 * when adam_step updates the whole tensor at once: ops_cpu.c's 8-wide vector body and its
 * scalar tail round differently (the scalar C is FMA-contracted), so a shard boundary must
 * not move an element from one to the other.  Partial 8-blocks go through a zero-padded
 * block (lanes are independent; the padding's results are dropped).  w, m, v, g point at a. */
static void update_piece(const AdamLane *q, size_t base, size_t numel, size_t a, size_t b, float *w, float *m, float *v,
                         const float *g)
{
    size_t vend = base + numel / 8 * 8, i = a;
    while (i < b) {
        size_t o = i - a;
        if (i >= vend) {   /* the tensor's scalar tail (< 8 elements) */
            adam_update(w + o, m + o, v + o, NULL, g + o, b - i, q->grad_scale, q->lr_g, q->beta1, q->beta2, q->eps,
                        q->bc1, q->bc2, q->wd, q->adamw);
            return;
        }
        size_t blk = base + (i - base) / 8 * 8, stop = b < vend ? b : vend;
        if (i == blk && stop - i >= 8) {   /* whole blocks, in place */
            size_t k = (stop - i) / 8 * 8;
            adam_update(w + o, m + o, v + o, NULL, g + o, k, q->grad_scale, q->lr_g, q->beta1, q->beta2, q->eps, q->bc1,
                        q->bc2, q->wd, q->adamw);
            i += k;
            continue;
        }
        size_t end = blk + 8 < stop ? blk + 8 : stop, k = end - i, lane = i - blk;
        float tw[8] = { 0 }, tm[8] = { 0 }, tv[8] = { 0 }, tg[8] = { 0 };
        memcpy(tw + lane, w + o, k * sizeof(float));
        memcpy(tm + lane, m + o, k * sizeof(float));
        memcpy(tv + lane, v + o, k * sizeof(float));
        memcpy(tg + lane, g + o, k * sizeof(float));
        adam_update(tw, tm, tv, NULL, tg, 8, q->grad_scale, q->lr_g, q->beta1, q->beta2, q->eps, q->bc1, q->bc2, q->wd,
                    q->adamw);
        memcpy(w + o, tw + lane, k * sizeof(float));
        memcpy(m + o, tm + lane, k * sizeof(float));
        memcpy(v + o, tv + lane, k * sizeof(float));
        i = end;
    }
}

void adam_step_range(const Layout *l, const AdamConfig *c, uint64_t step, double lr, float grad_scale, size_t lo,
                     size_t hi, float *w, float *m, float *v, const float *g)
{
    AdamLane q = { .grad_scale = grad_scale, .beta1 = (float)c->beta1, .beta2 = (float)c->beta2, .eps = (float)c->eps,
                   .adamw = c->weight_decay > 0 };
    q.bc1 = (float)(1.0 - pow((double)q.beta1, (double)step));
    q.bc2 = (float)(1.0 - pow((double)q.beta2, (double)step));
    for (int k = 0; k < l->n; k++) {
        const ParamInfo *p = &l->p[k];
        size_t a = p->offset > lo ? p->offset : lo, b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a >= b) continue;
        ParamGroup grp = param_group(p, c->weight_decay);
        q.lr_g = (float)(lr * param_group_lr_scale(grp));
        q.wd = grp == GROUP_DECAY ? (float)c->weight_decay : 0.0f;
        const size_t o = a - lo;
        update_piece(&q, p->offset, p->numel, a, b, w + o, m + o, v + o, g + o);
    }
}
