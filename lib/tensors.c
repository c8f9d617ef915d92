#include "tensors.h"
#include "growbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const struct { const char *name; size_t size; } dtypes[DT_COUNT] = {
    [DT_F32] = { "F32", 4 },  [DT_F16] = { "F16", 2 }, [DT_BF16] = { "BF16", 2 },
    [DT_F64] = { "F64", 8 },  [DT_I64] = { "I64", 8 }, [DT_I32] = { "I32", 4 },
    [DT_I16] = { "I16", 2 },  [DT_I8] = { "I8", 1 },   [DT_U8] = { "U8", 1 },
    [DT_BOOL] = { "BOOL", 1 },
};

size_t dtype_size(DType t) { return (unsigned)t < DT_COUNT ? dtypes[t].size : 0; }
const char *dtype_name(DType t) { return (unsigned)t < DT_COUNT ? dtypes[t].name : "?"; }

int dtype_from_name(const char *s)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) return i;
    return -1;
}

void ts_init(TensorSet *s) { memset(s, 0, sizeof *s); }

void ts_free(TensorSet *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->t[i].name);
        if (s->t[i].owned) free(s->t[i].data);
    }
    for (int i = 0; i < s->nmeta; i++) { free(s->meta_key[i]); free(s->meta_val[i]); }
    free(s->t); free(s->meta_key); free(s->meta_val);
    if (s->map) {
        munmap(s->map, s->map_len);
    }
    memset(s, 0, sizeof *s);
}

int64_t tensor_numel(const Tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

Tensor *ts_find(const TensorSet *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0) return &s->t[i];
    return NULL;
}

Tensor *ts_add(TensorSet *s, const char *name, DType dt, int ndim, const int64_t *shape,
               void *data, int copy, int owned, Error *e)
{
    if ((unsigned)dt >= DT_COUNT) { fail(e, "%s: bad dtype", name); return NULL; }
    if (ndim < 0 || ndim > TENSOR_MAX_DIM) { fail(e, "%s: %d dimensions", name, ndim); return NULL; }
    if (ts_find(s, name)) { fail(e, "duplicate tensor %s", name); return NULL; }
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || mul_overflow_u64(numel, (uint64_t)shape[i], &numel)) {
            fail(e, "%s: bad shape", name);
            return NULL;
        }
    }
    uint64_t nbytes;
    if (mul_overflow_u64(numel, dtype_size(dt), &nbytes)) { fail(e, "%s: too large", name); return NULL; }
    if (grow(&s->t, &s->cap, (size_t)s->n + 1)) { fail(e, "out of memory"); return NULL; }
    Tensor *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) { fail(e, "out of memory"); return NULL; }
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = nbytes;
    if (copy) {
        t->data = malloc(nbytes ? nbytes : 1);
        if (!t->data) { free(t->name); fail(e, "out of memory"); return NULL; }
        if (data) memcpy(t->data, data, nbytes);
        else memset(t->data, 0, nbytes);
        t->owned = 1;
    } else {
        t->data = data;
        t->owned = owned;
    }
    s->n++;
    return t;
}

int ts_set_meta(TensorSet *s, const char *key, const char *val, Error *e)
{
    for (int i = 0; i < s->nmeta; i++)
        if (strcmp(s->meta_key[i], key) == 0) {
            char *v = strdup(val);
            if (!v) return fail(e, "out of memory");
            free(s->meta_val[i]);
            s->meta_val[i] = v;
            return 0;
        }
    char **k = realloc(s->meta_key, (s->nmeta + 1) * sizeof *k);
    if (!k) return fail(e, "out of memory");
    s->meta_key = k;
    char **v = realloc(s->meta_val, (s->nmeta + 1) * sizeof *v);
    if (!v) return fail(e, "out of memory");
    s->meta_val = v;
    s->meta_key[s->nmeta] = strdup(key);
    s->meta_val[s->nmeta] = strdup(val);
    if (!s->meta_key[s->nmeta] || !s->meta_val[s->nmeta]) return fail(e, "out of memory");
    s->nmeta++;
    return 0;
}

const char *ts_get_meta(const TensorSet *s, const char *key)
{
    for (int i = 0; i < s->nmeta; i++)
        if (strcmp(s->meta_key[i], key) == 0) return s->meta_val[i];
    return NULL;
}

uint16_t f32_to_f16(float f)
{
    union { float f; uint32_t u; } v = { f };
    uint32_t sign = (v.u >> 16) & 0x8000u;
    uint32_t a = v.u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          /* overflow → inf */
    if (a < 0x38800000u) {                                            /* subnormal or zero */
        union { uint32_t u; float f; } h = { a };
        float scaled = h.f * 16777216.0f;                             /* 2^24: units of 2^-24 */
        return (uint16_t)(sign | (uint32_t)nearbyintf(scaled));
    }
    uint32_t r = a - 0x38000000u;                                     /* rebias exponent */
    r = (r + 0xfffu + ((r >> 13) & 1)) >> 13;                         /* round to nearest even */
    return (uint16_t)(sign | r);
}

float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31) v.u = sign | 0x7f800000u | (man << 13);
    else v.u = sign | ((exp + 112) << 23) | (man << 13);
    return v.f;
}

int tensor_to_f32(const Tensor *t, float *out, Error *e)
{
    int64_t n = tensor_numel(t);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case DT_F32: memcpy(out, p, n * 4); return 0;
    case DT_BF16: for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = bf16_to_f32(h); } return 0;
    case DT_F16: for (int64_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = f16_to_f32(h); } return 0;
    case DT_F64: for (int64_t i = 0; i < n; i++) { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; } return 0;
    default: return fail(e, "%s: dtype %s is not a float type", t->name, dtype_name(t->dtype));
    }
}

size_t f32_convert(const float *in, void *out, size_t n, DType dt)
{
    unsigned char *p = out;
    if (dt == DT_F32) { memcpy(out, in, n * 4); return 0; }
    uint16_t inf = dt == DT_BF16 ? 0x7F80 : 0x7C00;
    size_t overflowed = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = dt == DT_BF16 ? f32_to_bf16(in[i]) : f32_to_f16(in[i]);
        overflowed += (h & 0x7FFF) == inf && isfinite(in[i]);
        memcpy(p + 2 * i, &h, 2);
    }
    return overflowed;
}
