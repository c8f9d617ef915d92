/* tensors.h: a named set of tensors in memory — the common currency of the
 * checkpoint readers and writers (safetensors.h, pth.h) and the model (model.h).
 * Tensors are kept in insertion order (= RWKV-LM state-dict order when written
 * by this project). */
#ifndef RWKV7C_TENSORS_H
#define RWKV7C_TENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

typedef enum { DT_F32, DT_F16, DT_BF16, DT_F64, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8, DT_BOOL, DT_COUNT } DType;

size_t      dtype_size(DType t);
const char *dtype_name(DType t);              /* safetensors spelling: "F32", "BF16", ... */
int         dtype_from_name(const char *s);   /* -1 if unknown */

#define TENSOR_MAX_DIM 8
typedef struct {
    char   *name;
    DType   dtype;
    int     ndim;
    int64_t shape[TENSOR_MAX_DIM];
    size_t  nbytes;
    void   *data;      /* little-endian elements, row-major, contiguous */
    int     owned;     /* data is malloc'd and freed with the set */
} Tensor;

typedef struct {
    Tensor *t;
    int     n;
    size_t  cap;
    char  **meta_key, **meta_val;   /* string metadata (safetensors __metadata__) */
    int     nmeta;
    void   *map;                    /* optional backing mmap, released by ts_free */
    size_t  map_len;
} TensorSet;

void    ts_init(TensorSet *s);
void    ts_free(TensorSet *s);
/* Add a tensor.  If copy, data is copied; else the set takes ownership when
 * owned is set, or borrows (e.g. from the mmap).  Returns the tensor or NULL. */
Tensor *ts_add(TensorSet *s, const char *name, DType dt, int ndim, const int64_t *shape,
               void *data, int copy, int owned, Error *e);
Tensor *ts_find(const TensorSet *s, const char *name);
int     ts_set_meta(TensorSet *s, const char *key, const char *val, Error *e);
const char *ts_get_meta(const TensorSet *s, const char *key);
int64_t tensor_numel(const Tensor *t);

/* Convert any float tensor to fp32 into out (numel floats).  -1 for non-float dtypes. */
int  tensor_to_f32(const Tensor *t, float *out, Error *e);
/* Convert fp32 values to dtype (DT_F32, DT_BF16 or DT_F16) into out.  Returns how
 * many finite values overflowed to +-inf (fp16 tops out at 65504), as torch's
 * .to() does silently; callers decide whether to warn. */
size_t f32_convert(const float *in, void *out, size_t n, DType dt);

/* bf16 round-to-nearest-even, as torch .bfloat16() and __float2bfloat16_rn (NaN stays NaN). */
static inline uint16_t f32_to_bf16(float f)
{
    union { float f; uint32_t u; } v = { f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1)) >> 16);
}
static inline float bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}
static inline float bf16_round(float f) { return bf16_to_f32(f32_to_bf16(f)); }
uint16_t f32_to_f16(float f);
float    f16_to_f32(uint16_t h);
#endif
