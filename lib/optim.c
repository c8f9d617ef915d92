/* optim.c: DeepSpeed FusedAdam (csrc/adam/multi_tensor_adam.cu) in fp32, element by element. */
#include "optim.h"

#include <math.h>
#include <omp.h>
#include <string.h>

ParamGroup param_group(const ParamInfo *p, double weight_decay)
{
    if (strstr(p->name, "att.w0")) return GROUP_LR_2X;
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

/* The update of elements [lo, hi) of one tensor, one function per
 * (AdamW, bf16 copy) variant so the loop body has no run-time flags.  With
 * AVX2 the bulk runs 8 lanes at a time with the same IEEE operations in the
 * same order (sqrt and division are correctly rounded in both); which
 * elements take the vector path depends only on the index, so runs repeat
 * bit for bit.  (The compiler does not vectorise the scalar loop itself:
 * sqrtf's errno path needs -fno-math-errno, which the Makefile does not pass.) */
typedef struct {
    float *pw, *pm, *pv, *pb;
    const float *pg;
    float grad_scale, beta1, beta2, eps, bc1, bc2, lr_g, wd;
} AdamArgs;

#ifdef __AVX2__
#include <immintrin.h>
#define ADAM_VECTOR(ADAMW, COPY)                                                            \
    {                                                                                       \
        const __m256 vs = _mm256_set1_ps(grad_scale), vb1 = _mm256_set1_ps(beta1);          \
        const __m256 vb2 = _mm256_set1_ps(beta2), v1b1 = _mm256_set1_ps(1 - beta1);         \
        const __m256 v1b2 = _mm256_set1_ps(1 - beta2), vbc1 = _mm256_set1_ps(bc1);          \
        const __m256 vbc2 = _mm256_set1_ps(bc2), veps = _mm256_set1_ps(eps);                \
        const __m256 vlr = _mm256_set1_ps(lr_g), vwd = _mm256_set1_ps(wd);                  \
        for (; i + 8 <= hi; i += 8) {                                                       \
            __m256 g = _mm256_mul_ps(_mm256_loadu_ps(pg + i), vs), w = _mm256_loadu_ps(pw + i); \
            if (!(ADAMW)) g = _mm256_add_ps(g, _mm256_mul_ps(vwd, w));                      \
            __m256 m = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(pm + i)), _mm256_mul_ps(v1b1, g)); \
            __m256 v = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(pv + i)),          \
                                     _mm256_mul_ps(_mm256_mul_ps(v1b2, g), g));            \
            __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(v, vbc2)), veps);       \
            __m256 up = _mm256_div_ps(_mm256_div_ps(m, vbc1), den);                         \
            if (ADAMW) up = _mm256_add_ps(up, _mm256_mul_ps(vwd, w));                       \
            __m256 nw = _mm256_sub_ps(w, _mm256_mul_ps(vlr, up));                           \
            _mm256_storeu_ps(pw + i, nw);                                                   \
            _mm256_storeu_ps(pm + i, m);                                                    \
            _mm256_storeu_ps(pv + i, v);                                                    \
            if (COPY) {   /* bf16 round-to-nearest-even, NaN kept quiet (f32_to_bf16) */    \
                __m256i u = _mm256_castps_si256(nw), hi16 = _mm256_srli_epi32(u, 16);       \
                __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), \
                                              _mm256_and_si256(hi16, _mm256_set1_epi32(1))), 16); \
                __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), \
                                                 _mm256_set1_epi32(0x7f800000));            \
                __m256i q = _mm256_blendv_epi8(r, _mm256_or_si256(hi16, _mm256_set1_epi32(0x40)), nan); \
                _mm256_storeu_ps(pb + i, _mm256_castsi256_ps(_mm256_slli_epi32(q, 16)));    \
            }                                                                               \
        }                                                                                   \
    }
#else
#define ADAM_VECTOR(ADAMW, COPY)
#endif

#define ADAM_KERNEL(NAME, ADAMW, COPY)                                                      \
static void NAME(const AdamArgs *A, size_t lo, size_t hi)                                   \
{                                                                                           \
    float *restrict pw = A->pw, *restrict pm = A->pm, *restrict pv = A->pv, *restrict pb = A->pb; \
    const float *restrict pg = A->pg;                                                       \
    const float grad_scale = A->grad_scale, beta1 = A->beta1, beta2 = A->beta2, eps = A->eps; \
    const float bc1 = A->bc1, bc2 = A->bc2, lr_g = A->lr_g, wd = A->wd;                     \
    size_t i = lo;                                                                          \
    ADAM_VECTOR(ADAMW, COPY)                                                                \
    for (; i < hi; i++) {                                                                   \
        float gi = pg[i] * grad_scale, wi = pw[i];                                          \
        if (!(ADAMW)) gi = gi + wd * wi;   /* L2 mode: wd is 0, kept for the formula */     \
        float mi = beta1 * pm[i] + (1 - beta1) * gi;                                        \
        float vi = beta2 * pv[i] + (1 - beta2) * gi * gi;                                   \
        float denom = sqrtf(vi / bc2) + eps;                                                \
        float update = (mi / bc1) / denom;                                                  \
        if (ADAMW) update = update + wd * wi;                                               \
        float nw = wi - lr_g * update;                                                      \
        pw[i] = nw;                                                                         \
        pm[i] = mi;                                                                         \
        pv[i] = vi;                                                                         \
        if (COPY) {   /* bf16 round-to-nearest-even as f32_to_bf16, NaN kept */             \
            union { float f; uint32_t u; } bb = { nw };                                     \
            uint32_t r = (bb.u + 0x7fffu + ((bb.u >> 16) & 1)) >> 16;                       \
            uint32_t q = (bb.u & 0x7fffffffu) > 0x7f800000u ? ((bb.u >> 16) | 0x40) : r;     \
            bb.u = q << 16;                                                                 \
            pb[i] = bb.f;                                                                   \
        }                                                                                   \
    }                                                                                       \
}
ADAM_KERNEL(adam_l2, 0, 0)
ADAM_KERNEL(adam_l2_copy, 0, 1)
ADAM_KERNEL(adam_w, 1, 0)
ADAM_KERNEL(adam_w_copy, 1, 1)

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
        const size_t o = p->offset, n = p->numel;
        AdamArgs A = { w + o, m + o, v + o, w_bf16 ? w_bf16 + o : NULL, g + o,
                       grad_scale, beta1, beta2, eps, bc1, bc2, lr_g, wd };
        void (*kern)(const AdamArgs *, size_t, size_t) =
            adamw ? (A.pb ? adam_w_copy : adam_w) : (A.pb ? adam_l2_copy : adam_l2);
        if (n <= 65536) { kern(&A, 0, n); continue; }
        /* Element-wise, so the split does not change any result. */
        #pragma omp parallel
        {
            size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
            size_t chunk = (n / nt + 15) & ~(size_t)15;
            size_t lo = t * chunk < n ? t * chunk : n, hi = lo + chunk < n ? lo + chunk : n;
            if (t == nt - 1) hi = n;
            kern(&A, lo, hi);
        }
    }
}
