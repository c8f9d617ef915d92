/* model_io.c: a Model's checkpoint I/O (model_io.h): tensors in and out, files by content. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "model_io.h"
#include "pth.h"
#include "safetensors.h"

int model_from_tensors(Model *m, const TensorSet *ts, Error *e)
{
    ModelConfig c;
    memset(m, 0, sizeof *m);
    if (config_from_tensors(ts, &c, e)) return -1;
    if (model_alloc(m, &c, e)) return -1;
    if (layout_check_tensors(&m->layout, ts, e)) goto bad;
    for (int i = 0; i < m->layout.n; i++) {
        const ParamInfo *p = &m->layout.p[i];
        const Tensor *t = ts_find(ts, p->name);
        float *dst = m->w + p->offset;
        if (tensor_to_f32(t, dst, e)) goto bad;
        for (size_t k = 0; k < p->numel; k++)
            if (!isfinite(dst[k])) {
                fail(e, "tensor %s has a non-finite value (%s) at element %zu", p->name,
                     isnan(dst[k]) ? "NaN" : "Inf", k);
                goto bad;
            }
    }
    return 0;
bad:
    model_free(m);
    return -1;
}

int model_to_tensors(const Model *m, TensorSet *ts, DType dt, Error *e)
{
    if (dt != DT_F32 && dt != DT_BF16 && dt != DT_F16)
        return fail(e, "cannot store parameters as %s (use F32, BF16 or F16)", dtype_name(dt));
    for (int i = 0; i < m->layout.n; i++) {
        const ParamInfo *p = &m->layout.p[i];
        void *buf = malloc(p->numel * dtype_size(dt) + 1);
        if (!buf) return fail(e, "out of memory");
        f32_convert(m->w + p->offset, buf, p->numel, dt);
        if (!ts_add(ts, p->name, dt, p->ndim, p->shape, buf, 0, 1, e)) { free(buf); return -1; }
    }
    const ModelConfig *c = &m->cfg;
    char v[32];
    if (config_is_x060(c)) {
        struct { const char *k; int v; } dims6[] = {
            { "n_layer", c->n_layer }, { "n_embd", c->n_embd }, { "vocab_size", c->vocab_size },
            { "head_size", c->head_size }, { "d_mix_lora", c->d_mix }, { "d_decay_lora", c->d_decay },
            { "dim_ffn", c->dim_ffn },
        };
        if (ts_set_meta(ts, "format", "pt", e) || ts_set_meta(ts, "model_type", "x060", e)) return -1;
        for (size_t i = 0; i < sizeof dims6 / sizeof dims6[0]; i++) {
            snprintf(v, sizeof v, "%d", dims6[i].v);
            if (ts_set_meta(ts, dims6[i].k, v, e)) return -1;
        }
        return 0;
    }
    struct { const char *k; int v; } dims[] = {
        { "n_layer", c->n_layer }, { "n_embd", c->n_embd }, { "vocab_size", c->vocab_size },
        { "head_size", c->head_size }, { "d_decay_lora", c->d_decay }, { "d_aaa_lora", c->d_aaa },
        { "d_mv_lora", c->d_mv }, { "d_gate_lora", c->d_gate },
    };
    if (ts_set_meta(ts, "format", "pt", e) || ts_set_meta(ts, "model_type", "x070", e)) return -1;
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        snprintf(v, sizeof v, "%d", dims[i].v);
        if (ts_set_meta(ts, dims[i].k, v, e)) return -1;
    }
    return 0;
}

int model_load(Model *m, const char *path, Error *e)
{
    TensorSet ts;
    memset(m, 0, sizeof *m);
    if (ckpt_read(path, &ts, e)) return -1;
    const char *type = ts_get_meta(&ts, "model_type");
    if (type && strcmp(type, "x070") != 0 && strcmp(type, "x060") != 0) {
        fail(e, "%s: model_type is \"%.32s\", expected x070 or x060", path, type);
        ts_free(&ts);
        return -1;
    }
    int rc = model_from_tensors(m, &ts, e);
    /* the type comes from the tensors; a tag saying otherwise means a damaged or mislabelled file */
    if (!rc && type && strcmp(type, config_type_name(&m->cfg)) != 0) {
        fail(e, "model_type says %.32s but the tensors are %s", type, config_type_name(&m->cfg));
        model_free(m);
        rc = -1;
    }
    ts_free(&ts);
    if (rc) return fail_prefix(e, "%s", path);
    return 0;
}

int model_save(const Model *m, const char *path, DType dt, int overwrite, Error *e)
{
    TensorSet ts;
    ts_init(&ts);
    int rc = model_to_tensors(m, &ts, dt, e);
    size_t n = strlen(path);
    int pth = n >= 4 && !strcmp(path + n - 4, ".pth");   /* torch.save format for PyTorch users */
    if (rc == 0) rc = pth ? pth_write(path, &ts, overwrite, e) : st_write(path, &ts, overwrite, e);
    else fail_prefix(e, "%s", path);
    ts_free(&ts);
    return rc;
}
