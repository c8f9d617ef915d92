#include "layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lora_rank(double k, int n_embd)
{
    double r = rint(k * sqrt((double)n_embd) / 32.0) * 32.0;   /* rint: round half to even, like Python */
    return r < 32 ? 32 : (int)r;
}

const char *config_type_name(const ModelConfig *c) { return config_is_x060(c) ? "x060" : "x070"; }

static int config_validate_x060(const ModelConfig *c, Error *e)
{
    if (c->d_mix <= 0 || c->d_decay <= 0) return fail(e, "x060 LoRA ranks must be positive (mix %d, decay %d)", c->d_mix, c->d_decay);
    if (c->dim_ffn <= 0) return fail(e, "x060 dim_ffn must be positive, got %d", c->dim_ffn);
    if (c->d_aaa || c->d_mv || c->d_gate || c->layer0_v) return fail(e, "x060 has no x070 LoRAs (aaa, mv, gate, layer-0 v)");
    return 0;
}

int config_validate(const ModelConfig *c, Error *e)
{
    if (c->model_type != 0 && c->model_type != MODEL_X070 && c->model_type != MODEL_X060)
        return fail(e, "model_type must be 6 (x060) or 7 (x070), got %d", c->model_type);
    if (c->n_layer < 2) return fail(e, "n_layer must be >= 2 (the init divides by n_layer-1), got %d", c->n_layer);
    if (c->head_size != 64) return fail(e, "head_size must be 64, got %d", c->head_size);
    if (c->n_embd <= 0 || c->n_embd % 64) return fail(e, "n_embd must be a positive multiple of 64, got %d", c->n_embd);
    if (c->n_head * c->head_size != c->n_embd) return fail(e, "n_head*head_size != n_embd");
    if (c->vocab_size <= 0) return fail(e, "vocab_size must be positive, got %d", c->vocab_size);
    if (config_is_x060(c)) return config_validate_x060(c, e);
    if (c->d_mix || c->dim_ffn || c->no_ln0) return fail(e, "x070 has no d_mix, dim_ffn or no_ln0 (x060 only)");
    if (c->d_decay <= 0 || c->d_aaa <= 0 || c->d_mv <= 0 || c->d_gate <= 0) return fail(e, "LoRA ranks must be positive");
    return 0;
}

int config_default(ModelConfig *c, int n_layer, int n_embd, int vocab_size, int head_size, Error *e)
{
    memset(c, 0, sizeof *c);
    c->n_layer = n_layer;
    c->n_embd = n_embd;
    c->vocab_size = vocab_size;
    c->head_size = head_size;
    c->n_head = head_size > 0 ? n_embd / head_size : 0;
    c->d_decay = lora_rank(2.5, n_embd);
    c->d_aaa = lora_rank(2.5, n_embd);
    c->d_mv = lora_rank(1.7, n_embd);
    c->d_gate = lora_rank(5.0, n_embd);
    c->layer0_v = 1;
    return config_validate(c, e);
}

int config_default_x060(ModelConfig *c, int n_layer, int n_embd, int vocab_size, int head_size, Error *e)
{
    memset(c, 0, sizeof *c);
    c->model_type = MODEL_X060;
    c->n_layer = n_layer;
    c->n_embd = n_embd;
    c->vocab_size = vocab_size;
    c->head_size = head_size;
    c->n_head = head_size > 0 ? n_embd / head_size : 0;
    c->d_mix = 32;      /* D_MIX_LORA, RWKV_Tmix_x060.__init__ */
    c->d_decay = 64;    /* D_DECAY_LORA */
    c->dim_ffn = (int)((int64_t)n_embd * 7 / 2 / 32 * 32);   /* int((n_embd*3.5)//32*32), train.py */
    return config_validate(c, e);
}

static int add(Layout *l, int layer, const char *name, int ndim, int64_t a, int64_t b, int64_t cc, Error *e)
{
    ParamInfo *p = &l->p[l->n++];
    memset(p, 0, sizeof *p);
    if (layer >= 0) snprintf(p->name, sizeof p->name, "blocks.%d.%s", layer, name);
    else snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = a; p->shape[1] = b; p->shape[2] = cc;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) p->numel *= (size_t)p->shape[i];
    p->offset = l->total;
    p->layer = layer;
    l->total += p->numel;
    return 0;
}

/* RWKV-LM RWKV-v5/src/model.py: Block (ln1, ln2, ln0), RWKV_Tmix_x060, RWKV_CMix_x060, in module order. */
static int layout_build_x060(const ModelConfig *c, Layout *l, Error *e)
{
    l->p = calloc((size_t)c->n_layer * 32 + 8, sizeof *l->p);
    if (!l->p) return fail(e, "out of memory");
    int64_t C = c->n_embd, V = c->vocab_size, H = c->n_head, N = c->head_size, F = c->dim_ffn;
    add(l, -1, "emb.weight", 2, V, C, 0, e);
    for (int i = 0; i < c->n_layer; i++) {
        add(l, i, "ln1.weight", 1, C, 0, 0, e);
        add(l, i, "ln1.bias", 1, C, 0, 0, e);
        add(l, i, "ln2.weight", 1, C, 0, 0, e);
        add(l, i, "ln2.bias", 1, C, 0, 0, e);
        if (i == 0 && !c->no_ln0) {
            add(l, i, "ln0.weight", 1, C, 0, 0, e);
            add(l, i, "ln0.bias", 1, C, 0, 0, e);
        }
        static const char *maa[] = { "att.time_maa_x", "att.time_maa_w", "att.time_maa_k",
                                     "att.time_maa_v", "att.time_maa_r", "att.time_maa_g" };
        for (int k = 0; k < 6; k++) add(l, i, maa[k], 3, 1, 1, C, e);
        add(l, i, "att.time_maa_w1", 2, C, 5 * (int64_t)c->d_mix, 0, e);
        add(l, i, "att.time_maa_w2", 3, 5, c->d_mix, C, e);
        add(l, i, "att.time_decay", 3, 1, 1, C, e);
        add(l, i, "att.time_decay_w1", 2, C, c->d_decay, 0, e);
        add(l, i, "att.time_decay_w2", 2, c->d_decay, C, 0, e);
        add(l, i, "att.time_faaaa", 2, H, N, 0, e);
        add(l, i, "att.receptance.weight", 2, C, C, 0, e);
        add(l, i, "att.key.weight", 2, C, C, 0, e);
        add(l, i, "att.value.weight", 2, C, C, 0, e);
        add(l, i, "att.output.weight", 2, C, C, 0, e);
        add(l, i, "att.gate.weight", 2, C, C, 0, e);
        add(l, i, "att.ln_x.weight", 1, C, 0, 0, e);
        add(l, i, "att.ln_x.bias", 1, C, 0, 0, e);
        add(l, i, "ffn.time_maa_k", 3, 1, 1, C, e);
        add(l, i, "ffn.time_maa_r", 3, 1, 1, C, e);
        add(l, i, "ffn.key.weight", 2, F, C, 0, e);
        add(l, i, "ffn.receptance.weight", 2, C, C, 0, e);
        add(l, i, "ffn.value.weight", 2, C, F, 0, e);
    }
    add(l, -1, "ln_out.weight", 1, C, 0, 0, e);
    add(l, -1, "ln_out.bias", 1, C, 0, 0, e);
    add(l, -1, "head.weight", 2, V, C, 0, e);
    return 0;
}

int layout_build(const ModelConfig *c, Layout *l, Error *e)
{
    memset(l, 0, sizeof *l);
    if (config_validate(c, e)) return -1;
    if (config_is_x060(c)) return layout_build_x060(c, l, e);
    l->p = calloc((size_t)c->n_layer * 40 + 8, sizeof *l->p);
    if (!l->p) return fail(e, "out of memory");
    int64_t C = c->n_embd, V = c->vocab_size, H = c->n_head, N = c->head_size;
    add(l, -1, "emb.weight", 2, V, C, 0, e);
    for (int i = 0; i < c->n_layer; i++) {
        add(l, i, "ln1.weight", 1, C, 0, 0, e);
        add(l, i, "ln1.bias", 1, C, 0, 0, e);
        add(l, i, "ln2.weight", 1, C, 0, 0, e);
        add(l, i, "ln2.bias", 1, C, 0, 0, e);
        if (i == 0) {
            add(l, i, "ln0.weight", 1, C, 0, 0, e);
            add(l, i, "ln0.bias", 1, C, 0, 0, e);
        }
        static const char *mix[] = { "att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g" };
        for (int k = 0; k < 6; k++) add(l, i, mix[k], 3, 1, 1, C, e);
        add(l, i, "att.w1", 2, C, c->d_decay, 0, e);
        add(l, i, "att.w2", 2, c->d_decay, C, 0, e);
        add(l, i, "att.w0", 3, 1, 1, C, e);
        add(l, i, "att.a1", 2, C, c->d_aaa, 0, e);
        add(l, i, "att.a2", 2, c->d_aaa, C, 0, e);
        add(l, i, "att.a0", 3, 1, 1, C, e);
        if (i > 0 || c->layer0_v) {
            add(l, i, "att.v1", 2, C, c->d_mv, 0, e);
            add(l, i, "att.v2", 2, c->d_mv, C, 0, e);
            add(l, i, "att.v0", 3, 1, 1, C, e);
        }
        add(l, i, "att.g1", 2, C, c->d_gate, 0, e);
        add(l, i, "att.g2", 2, c->d_gate, C, 0, e);
        add(l, i, "att.k_k", 3, 1, 1, C, e);
        add(l, i, "att.k_a", 3, 1, 1, C, e);
        add(l, i, "att.r_k", 2, H, N, 0, e);
        add(l, i, "att.receptance.weight", 2, C, C, 0, e);
        add(l, i, "att.key.weight", 2, C, C, 0, e);
        add(l, i, "att.value.weight", 2, C, C, 0, e);
        add(l, i, "att.output.weight", 2, C, C, 0, e);
        add(l, i, "att.ln_x.weight", 1, C, 0, 0, e);
        add(l, i, "att.ln_x.bias", 1, C, 0, 0, e);
        add(l, i, "ffn.x_k", 3, 1, 1, C, e);
        add(l, i, "ffn.key.weight", 2, 4 * C, C, 0, e);
        add(l, i, "ffn.value.weight", 2, C, 4 * C, 0, e);
    }
    add(l, -1, "ln_out.weight", 1, C, 0, 0, e);
    add(l, -1, "ln_out.bias", 1, C, 0, 0, e);
    add(l, -1, "head.weight", 2, V, C, 0, e);
    return 0;
}

void layout_free(Layout *l)
{
    free(l->p);
    memset(l, 0, sizeof *l);
}

const ParamInfo *layout_find(const Layout *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->p[i].name, name) == 0) return &l->p[i];
    return NULL;
}

uint64_t config_param_count(const ModelConfig *c)
{
    Layout l;
    if (layout_build(c, &l, NULL)) return 0;
    uint64_t n = l.total;
    layout_free(&l);
    return n;
}

static const Tensor *need(const TensorSet *ts, const char *name, int ndim, Error *e)
{
    const Tensor *t = ts_find(ts, name);
    if (!t) { fail(e, "checkpoint has no tensor %s", name); return NULL; }
    if (t->ndim != ndim) {
        fail(e, "tensor %s has %d dimensions, expected %d", name, t->ndim, ndim);
        return NULL;
    }
    return t;
}

/* x060: dimensions from the shapes of the official tensors (RWKV-LM RWKV-v5, rwkv pip's loader). */
static int config_from_tensors_x060(const TensorSet *ts, ModelConfig *c, Error *e)
{
    c->model_type = MODEL_X060;
    const Tensor *t;
    if (!(t = need(ts, "blocks.0.att.time_faaaa", 2, e))) return -1;   /* [H,N]; flat [C] would mean head size 1 */
    c->n_head = (int)t->shape[0];
    c->head_size = (int)t->shape[1];
    if (!(t = need(ts, "blocks.0.att.time_maa_w2", 3, e))) return -1;
    c->d_mix = (int)t->shape[1];
    if (!(t = need(ts, "blocks.0.att.time_decay_w1", 2, e))) return -1;
    c->d_decay = (int)t->shape[1];
    if (!(t = need(ts, "blocks.0.ffn.key.weight", 2, e))) return -1;
    c->dim_ffn = (int)t->shape[0];
    c->no_ln0 = ts_find(ts, "blocks.0.ln0.weight") == NULL && ts_find(ts, "blocks.0.ln0.bias") == NULL;
    if (config_validate(c, e)) return fail_prefix(e, "checkpoint dimensions");
    return 0;
}

int config_from_tensors(const TensorSet *ts, ModelConfig *c, Error *e)
{
    memset(c, 0, sizeof *c);
    const Tensor *emb = need(ts, "emb.weight", 2, e);
    if (!emb) return -1;
    c->vocab_size = (int)emb->shape[0];
    c->n_embd = (int)emb->shape[1];
    int max_layer = -1;
    for (int i = 0; i < ts->n; i++) {
        int k;
        if (sscanf(ts->t[i].name, "blocks.%d.", &k) == 1 && k > max_layer) max_layer = k;
    }
    if (ts_find(ts, "blocks.0.att.time_faaaa")) {
        c->n_layer = max_layer + 1;
        return config_from_tensors_x060(ts, c, e);
    }
    const Tensor *rk = need(ts, "blocks.0.att.r_k", 2, e);
    if (!rk) return -1;
    c->n_head = (int)rk->shape[0];
    c->head_size = (int)rk->shape[1];
    c->n_layer = max_layer + 1;
    const Tensor *t;
    if (!(t = need(ts, "blocks.0.att.w1", 2, e))) return -1;
    c->d_decay = (int)t->shape[1];
    if (!(t = need(ts, "blocks.0.att.a1", 2, e))) return -1;
    c->d_aaa = (int)t->shape[1];
    if (!(t = need(ts, "blocks.0.att.g1", 2, e))) return -1;
    c->d_gate = (int)t->shape[1];
    const char *vname = c->n_layer > 1 ? "blocks.1.att.v1" : "blocks.0.att.v1";
    if (!(t = need(ts, vname, 2, e))) return -1;
    c->d_mv = (int)t->shape[1];
    c->layer0_v = ts_find(ts, "blocks.0.att.v1") != NULL;
    if (config_validate(c, e)) return fail_prefix(e, "checkpoint dimensions");
    return 0;
}

int layout_check_tensors(const Layout *l, const TensorSet *ts, Error *e)
{
    for (int i = 0; i < l->n; i++) {
        const ParamInfo *p = &l->p[i];
        const Tensor *t = ts_find(ts, p->name);
        if (!t) return fail(e, "checkpoint has no tensor %s", p->name);
        if (t->dtype != DT_F32 && t->dtype != DT_BF16 && t->dtype != DT_F16)
            return fail(e, "tensor %s has dtype %s, expected a float type", p->name, dtype_name(t->dtype));
        int ok = (size_t)tensor_numel(t) == p->numel;
        /* [1,1,C] vectors may be stored squeezed as [C] (not x060's [5,D,C] time_maa_w2) */
        if (ok && !(p->ndim == 3 && p->shape[0] == 1 && p->shape[1] == 1 && t->ndim == 1)) {
            ok = t->ndim == p->ndim;
            for (int k = 0; ok && k < p->ndim; k++) ok = t->shape[k] == p->shape[k];
        }
        if (!ok) {
            char want[64], got[64];
            int n = 0;
            for (int k = 0; k < p->ndim; k++) n += snprintf(want + n, sizeof want - n, "%s%lld", k ? "," : "", (long long)p->shape[k]);
            n = 0;
            got[0] = 0;
            for (int k = 0; k < t->ndim; k++) n += snprintf(got + n, sizeof got - n, "%s%lld", k ? "," : "", (long long)t->shape[k]);
            return fail(e, "tensor %s has shape [%s], expected [%s]", p->name, got, want);
        }
    }
    for (int i = 0; i < ts->n; i++)
        if (!layout_find(l, ts->t[i].name))
            return fail(e, "unexpected tensor %s in checkpoint", ts->t[i].name);
    return 0;
}
