/* trainstate.c: the resumable training state, as one checksummed safetensors file. */
#include "trainstate.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "safetensors.h"

#define META_SUM_KEY "meta_xxh3"
#define TENSOR_SUM_PREFIX "xxh3:"

static int set_u64(TensorSet *ts, const char *k, uint64_t v, Error *e)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    return ts_set_meta(ts, k, b, e);
}

static int set_f64(TensorSet *ts, const char *k, double v, Error *e)
{
    char b[64];
    snprintf(b, sizeof b, "%a", v);   /* hex float: exact round trip */
    return ts_set_meta(ts, k, b, e);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* XXH3 of the metadata in a canonical form: the keys in byte order, each
 * "key\0value\0", leaving out the checksum itself and the per-tensor
 * checksums (st_read verifies those).  Returns -1 on out of memory. */
static int meta_checksum(const TensorSet *ts, uint64_t *out)
{
    char **keys = malloc((size_t)(ts->nmeta ? ts->nmeta : 1) * sizeof *keys);
    XXH3_state_t *h = XXH3_createState();
    if (!keys || !h) { free(keys); XXH3_freeState(h); return -1; }
    int n = 0;
    for (int i = 0; i < ts->nmeta; i++)
        if (strcmp(ts->meta_key[i], META_SUM_KEY) && strncmp(ts->meta_key[i], TENSOR_SUM_PREFIX, strlen(TENSOR_SUM_PREFIX)))
            keys[n++] = ts->meta_key[i];
    qsort(keys, (size_t)n, sizeof *keys, cmp_str);
    XXH3_64bits_reset(h);
    for (int i = 0; i < n; i++) {
        const char *v = ts_get_meta(ts, keys[i]);
        XXH3_64bits_update(h, keys[i], strlen(keys[i]) + 1);
        XXH3_64bits_update(h, v, strlen(v) + 1);
    }
    *out = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    free(keys);
    return 0;
}

/* The first non-finite value of a state (or a negative second moment), as
 * "adam_v element 17", or NULL: a state holding one is useless on resume. */
static const char *first_bad_value(const float *w, const float *m, const float *v, size_t n, size_t *at)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(w[i])) { *at = i; return "master"; }
        if (!isfinite(m[i])) { *at = i; return "adam_m"; }
        if (!isfinite(v[i]) || !(v[i] >= 0)) { *at = i; return "adam_v"; }
    }
    return NULL;
}

int trainstate_write(const char *path, const ModelConfig *cfg, const TrainCounters *c,
                     const float *w, const float *m, const float *v, const char *const *kv, Error *e)
{
    Layout l;
    if (layout_build(cfg, &l, e)) return -1;
    int64_t shape[1] = { (int64_t)l.total };
    size_t n = l.total;
    layout_free(&l);
    size_t at;
    const char *bad = first_bad_value(w, m, v, n, &at);
    if (bad) return fail(e, "%s: refusing to save a non-finite value (%s element %zu)", path, bad, at);
    TensorSet ts;
    ts_init(&ts);
    int rc = -1;
    if (!ts_add(&ts, "master", DT_F32, 1, shape, (void *)w, 0, 0, e)
        || !ts_add(&ts, "adam_m", DT_F32, 1, shape, (void *)m, 0, 0, e)
        || !ts_add(&ts, "adam_v", DT_F32, 1, shape, (void *)v, 0, 0, e))
        goto out;
    if (ts_set_meta(&ts, "format", TRAINSTATE_FORMAT, e) || set_u64(&ts, "version", TRAINSTATE_VERSION, e)
        || set_u64(&ts, "n_layer", (uint64_t)cfg->n_layer, e) || set_u64(&ts, "n_embd", (uint64_t)cfg->n_embd, e)
        || set_u64(&ts, "vocab_size", (uint64_t)cfg->vocab_size, e) || set_u64(&ts, "head_size", (uint64_t)cfg->head_size, e)
        || set_u64(&ts, "d_decay_lora", (uint64_t)cfg->d_decay, e) || set_u64(&ts, "d_aaa_lora", (uint64_t)cfg->d_aaa, e)
        || set_u64(&ts, "d_mv_lora", (uint64_t)cfg->d_mv, e) || set_u64(&ts, "d_gate_lora", (uint64_t)cfg->d_gate, e)
        || set_u64(&ts, "layer0_v", (uint64_t)cfg->layer0_v, e)
        /* x060 only, so x070 states keep their exact metadata */
        || (config_is_x060(cfg) && (ts_set_meta(&ts, "model_type", "x060", e) || set_u64(&ts, "d_mix_lora", (uint64_t)cfg->d_mix, e)
                                    || set_u64(&ts, "dim_ffn", (uint64_t)cfg->dim_ffn, e) || set_u64(&ts, "no_ln0", (uint64_t)cfg->no_ln0, e)))
        || set_u64(&ts, "step", c->step, e) || set_u64(&ts, "adam_step", c->adam_step, e)
        || set_u64(&ts, "warm_step", c->warm_step, e) || set_u64(&ts, "epoch_begin", c->epoch_begin, e)
        || set_f64(&ts, "epoch_loss_sum", c->epoch_loss_sum, e) || set_u64(&ts, "epoch_loss_n", c->epoch_loss_n, e)
        || set_u64(&ts, "bad_in_row", c->bad_in_row, e) || set_u64(&ts, "bad_total", c->bad_total, e)
        || set_u64(&ts, "seed", c->seed, e) || set_f64(&ts, "elapsed", c->elapsed, e))
        goto out;
    for (int i = 0; kv && kv[i] && kv[i + 1]; i += 2)
        if (ts_set_meta(&ts, kv[i], kv[i + 1], e)) goto out;
    uint64_t sum;
    char hex[17];
    if (meta_checksum(&ts, &sum)) { fail(e, "%s: out of memory", path); goto out; }
    snprintf(hex, sizeof hex, "%016" PRIx64, sum);
    if (ts_set_meta(&ts, META_SUM_KEY, hex, e)) goto out;
    rc = st_write(path, &ts, 1, e);
out:
    ts_free(&ts);
    return rc;
}

static int get_u64(const TensorSet *ts, const char *path, const char *k, uint64_t *v, Error *e)
{
    const char *s = ts_get_meta(ts, k);
    if (!s) return fail(e, "%s: incomplete training state: no \"%s\"", path, k);
    if (parse_u64(s, v)) return fail(e, "%s: training state key \"%s\" = \"%.40s\" is not a number", path, k, s);
    return 0;
}

static int get_int(const TensorSet *ts, const char *path, const char *k, int *v, Error *e)
{
    uint64_t u;
    if (get_u64(ts, path, k, &u, e)) return -1;
    if (u > 1u << 30) return fail(e, "%s: training state key \"%s\" out of range", path, k);
    *v = (int)u;
    return 0;
}

static int get_f64(const TensorSet *ts, const char *path, const char *k, double *v, Error *e)
{
    const char *s = ts_get_meta(ts, k);
    if (!s) return fail(e, "%s: incomplete training state: no \"%s\"", path, k);
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    if (errno || *end || !*s || !isfinite(*v))
        return fail(e, "%s: training state key \"%s\" = \"%.40s\" is not a finite number", path, k, s);
    return 0;
}

int trainstate_read(const char *path, TrainState *st, Error *e)
{
    memset(st, 0, sizeof *st);
    ts_init(&st->meta);
    TensorSet ts;
    if (st_read(path, &ts, e)) return -1;   /* verifies every tensor's checksum */
    int rc = -1;
    const char *fmt = ts_get_meta(&ts, "format");
    uint64_t ver;
    if (!fmt || strcmp(fmt, TRAINSTATE_FORMAT)) { fail(e, "%s: not a training state (format \"%s\")", path, fmt ? fmt : "none"); goto out; }
    if (get_u64(&ts, path, "version", &ver, e)) goto out;
    if (ver != 1 && ver != TRAINSTATE_VERSION) {
        fail(e, "%s: training state version %" PRIu64 " (this build reads 1 and %d)", path, ver, TRAINSTATE_VERSION);
        goto out;
    }
    /* Every tensor must have carried its checksum (a damaged key name would
     * otherwise leave a tensor unverified). */
    const char *names[3] = { "master", "adam_m", "adam_v" };
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, TENSOR_SUM_PREFIX "%s", names[i]);
        if (!ts_get_meta(&ts, key)) { fail(e, "%s: damaged training state: no checksum for tensor %s", path, names[i]); goto out; }
    }
    if (ver == 1)   /* written before version 2 added the metadata checksum */
        st->meta_unverified = 1;
    else {
        const char *stored = ts_get_meta(&ts, META_SUM_KEY);
        uint64_t sum;
        char hex[17];
        if (meta_checksum(&ts, &sum)) { fail(e, "%s: out of memory", path); goto out; }
        snprintf(hex, sizeof hex, "%016" PRIx64, sum);
        if (!stored || strcmp(stored, hex)) {
            fail(e, "%s: damaged training state: metadata checksum %s, computed %s", path, stored ? stored : "missing", hex);
            goto out;
        }
    }
    ModelConfig *c = &st->cfg;
    if (get_int(&ts, path, "n_layer", &c->n_layer, e) || get_int(&ts, path, "n_embd", &c->n_embd, e)
        || get_int(&ts, path, "vocab_size", &c->vocab_size, e) || get_int(&ts, path, "head_size", &c->head_size, e)
        || get_int(&ts, path, "d_decay_lora", &c->d_decay, e) || get_int(&ts, path, "d_aaa_lora", &c->d_aaa, e)
        || get_int(&ts, path, "d_mv_lora", &c->d_mv, e) || get_int(&ts, path, "d_gate_lora", &c->d_gate, e)
        || get_int(&ts, path, "layer0_v", &c->layer0_v, e))
        goto out;
    const char *type = ts_get_meta(&ts, "model_type");   /* absent: x070 (every state before x060) */
    if (type && strcmp(type, "x060")) { fail(e, "%s: training state model_type \"%.32s\" (this build reads x060, or none for x070)", path, type); goto out; }
    if (type && (c->model_type = MODEL_X060, get_int(&ts, path, "d_mix_lora", &c->d_mix, e) || get_int(&ts, path, "dim_ffn", &c->dim_ffn, e)
                 || get_int(&ts, path, "no_ln0", &c->no_ln0, e)))
        goto out;
    if (c->head_size > 0) c->n_head = c->n_embd / c->head_size;
    if (config_validate(c, e)) { fail_prefix(e, "%s", path); goto out; }
    TrainCounters *k = &st->c;
    if (get_u64(&ts, path, "step", &k->step, e) || get_u64(&ts, path, "adam_step", &k->adam_step, e)
        || get_u64(&ts, path, "warm_step", &k->warm_step, e) || get_u64(&ts, path, "epoch_begin", &k->epoch_begin, e)
        || get_f64(&ts, path, "epoch_loss_sum", &k->epoch_loss_sum, e) || get_u64(&ts, path, "epoch_loss_n", &k->epoch_loss_n, e)
        || get_u64(&ts, path, "bad_in_row", &k->bad_in_row, e) || get_u64(&ts, path, "bad_total", &k->bad_total, e)
        || get_u64(&ts, path, "seed", &k->seed, e) || get_f64(&ts, path, "elapsed", &k->elapsed, e))
        goto out;
    Layout l;
    if (layout_build(c, &l, e)) { fail_prefix(e, "%s", path); goto out; }
    st->n = l.total;
    layout_free(&l);
    float **dst[3] = { &st->w, &st->m, &st->v };
    for (int i = 0; i < 3; i++) {
        const Tensor *t = ts_find(&ts, names[i]);
        if (!t) { fail(e, "%s: incomplete training state: no tensor %s", path, names[i]); goto out; }
        if (t->dtype != DT_F32 || t->ndim != 1 || (uint64_t)t->shape[0] != st->n) {
            fail(e, "%s: tensor %s should be F32 [%zu] for this model", path, names[i], st->n);
            goto out;
        }
        *dst[i] = malloc(st->n * sizeof(float) + 1);
        if (!*dst[i]) { fail(e, "%s: out of memory", path); goto out; }
        memcpy(*dst[i], t->data, st->n * sizeof(float));
    }
    size_t at;
    const char *bad = first_bad_value(st->w, st->m, st->v, st->n, &at);
    if (bad) { fail(e, "%s: non-finite value in the training state (%s element %zu)", path, bad, at); goto out; }
    for (int i = 0; i < ts.nmeta; i++)
        if (strncmp(ts.meta_key[i], TENSOR_SUM_PREFIX, strlen(TENSOR_SUM_PREFIX)) && ts_set_meta(&st->meta, ts.meta_key[i], ts.meta_val[i], e)) goto out;
    rc = 0;
out:
    ts_free(&ts);
    if (rc) trainstate_free(st);
    return rc;
}

void trainstate_free(TrainState *st)
{
    free(st->w); free(st->m); free(st->v);
    st->w = st->m = st->v = NULL;
    ts_free(&st->meta);
}

const char *trainstate_get(const TrainState *st, const char *key) { return ts_get_meta(&st->meta, key); }
