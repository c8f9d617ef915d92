/* matvec.c: the decode mode's matrix-vector products (matvec.h).
 *
 * Each variant multiplies a block of rows; every one keeps 16 fp32 lanes per
 * row (lane i sums W[r][c] x[c] for c % 16 == i, by fused multiply-add, in
 * column order), then sums the lanes by the same fixed tree (lane_sum), so
 * all variants give the same bits.  The SIMD variants do several rows at once
 * to hide the FMA latency; the scalar one is their reference twin. */
#include "matvec.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>

#define LANES 16
#define MIN_ROWS_PER_THREAD 64      /* below this a thread costs more than it saves */

/* lanes 0..15 -> one sum, pairwise: [i] += [i+8], [i+4], [i+2], [i+1] */
static inline float lane_sum(float *s)
{
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) s[i] += s[i + w];
    return s[0];
}
static inline float finish(float sum, float y, float beta)
{
    return beta != 0 ? fmaf(beta, y, sum) : sum;
}

/* ---- scalar (the twin every other variant must equal) ---- */

static void rows_f32_scalar(float *y, const float *W, const float *x, size_t lo, size_t hi, size_t cols, float beta)
{
    for (size_t r = lo; r < hi; r++) {
        const float *w = W + r * cols;
        float s[LANES] = { 0 };
        for (size_t c = 0; c < cols; c++) s[c % LANES] = fmaf(w[c], x[c], s[c % LANES]);
        y[r] = finish(lane_sum(s), y[r], beta);
    }
}
static void rows_bf16_scalar(float *y, const uint16_t *W, const float *x, size_t lo, size_t hi, size_t cols, float beta)
{
    for (size_t r = lo; r < hi; r++) {
        const uint16_t *w = W + r * cols;
        float s[LANES] = { 0 };
        for (size_t c = 0; c < cols; c++) s[c % LANES] = fmaf(bf16_to_f32(w[c]), x[c], s[c % LANES]);
        y[r] = finish(lane_sum(s), y[r], beta);
    }
}

/* ---- AVX2 + FMA: the 16 lanes as two 8-float registers, 2 rows at a time ---- */

#define AVX2 __attribute__((target("avx2,fma")))
AVX2 static inline __m256 bf16x8_avx2(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
/* finish a row whose full 16-column groups are in lo/hi: the tail columns
 * from c on go to their lanes in scalar code, as in the scalar twin */
AVX2 static inline float row_end_avx2(__m256 lo, __m256 hi, const float *wf, const uint16_t *wh,
                                      const float *x, size_t c, size_t cols)
{
    float s[LANES];
    _mm256_storeu_ps(s, lo);
    _mm256_storeu_ps(s + 8, hi);
    for (; c < cols; c++) s[c % LANES] = fmaf(wf ? wf[c] : bf16_to_f32(wh[c]), x[c], s[c % LANES]);
    return lane_sum(s);
}
#define ROWS_AVX2(NAME, T, LOAD, WF, WH)                                                              \
AVX2 static void NAME(float *y, const T *W, const float *x, size_t lo, size_t hi, size_t cols, float beta) \
{                                                                                                     \
    size_t r = lo, full = cols / LANES * LANES;                                                       \
    for (; r + 2 <= hi; r += 2) {                                                                     \
        const T *w0 = W + r * cols, *w1 = w0 + cols;                                                  \
        __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0;                                   \
        for (size_t c = 0; c < full; c += LANES) {                                                    \
            __m256 xa = _mm256_loadu_ps(x + c), xb = _mm256_loadu_ps(x + c + 8);                      \
            a0 = _mm256_fmadd_ps(LOAD(w0 + c), xa, a0);                                               \
            b0 = _mm256_fmadd_ps(LOAD(w0 + c + 8), xb, b0);                                           \
            a1 = _mm256_fmadd_ps(LOAD(w1 + c), xa, a1);                                               \
            b1 = _mm256_fmadd_ps(LOAD(w1 + c + 8), xb, b1);                                           \
        }                                                                                             \
        y[r] = finish(row_end_avx2(a0, b0, WF(w0), WH(w0), x, full, cols), y[r], beta);               \
        y[r + 1] = finish(row_end_avx2(a1, b1, WF(w1), WH(w1), x, full, cols), y[r + 1], beta);       \
    }                                                                                                 \
    for (; r < hi; r++) {                                                                             \
        const T *w0 = W + r * cols;                                                                   \
        __m256 a0 = _mm256_setzero_ps(), b0 = a0;                                                     \
        for (size_t c = 0; c < full; c += LANES) {                                                    \
            a0 = _mm256_fmadd_ps(LOAD(w0 + c), _mm256_loadu_ps(x + c), a0);                           \
            b0 = _mm256_fmadd_ps(LOAD(w0 + c + 8), _mm256_loadu_ps(x + c + 8), b0);                   \
        }                                                                                             \
        y[r] = finish(row_end_avx2(a0, b0, WF(w0), WH(w0), x, full, cols), y[r], beta);               \
    }                                                                                                 \
}
#define AS_F32(p) (p)
#define NO_F32(p) ((const float *)0)
#define AS_BF16(p) (p)
#define NO_BF16(p) ((const uint16_t *)0)
ROWS_AVX2(rows_f32_avx2, float, _mm256_loadu_ps, AS_F32, NO_BF16)
ROWS_AVX2(rows_bf16_avx2, uint16_t, bf16x8_avx2, NO_F32, AS_BF16)

/* ---- AVX-512: one 16-float register per row, 4 rows at a time; the tail by a
 * masked load (zeros add nothing) ---- */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
AVX512 static inline __m512 f32x16_512(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
AVX512 static inline __m512 bf16x16_512(const uint16_t *p, __mmask16 m)
{
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
AVX512 static inline float row_end_512(__m512 a)
{
    float s[LANES];
    _mm512_storeu_ps(s, a);
    return lane_sum(s);
}
#define ROWS_512(NAME, T, LOAD)                                                                       \
AVX512 static void NAME(float *y, const T *W, const float *x, size_t lo, size_t hi, size_t cols, float beta) \
{                                                                                                     \
    size_t r = lo, full = cols / LANES * LANES;                                                       \
    __mmask16 all = 0xffff, tail = (__mmask16)((1u << (cols - full)) - 1);                            \
    for (; r + 4 <= hi; r += 4) {                                                                     \
        const T *w0 = W + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;               \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                   \
        for (size_t c = 0; c < full; c += LANES) {                                                    \
            __m512 xv = _mm512_loadu_ps(x + c);                                                       \
            a0 = _mm512_fmadd_ps(LOAD(w0 + c, all), xv, a0);                                          \
            a1 = _mm512_fmadd_ps(LOAD(w1 + c, all), xv, a1);                                          \
            a2 = _mm512_fmadd_ps(LOAD(w2 + c, all), xv, a2);                                          \
            a3 = _mm512_fmadd_ps(LOAD(w3 + c, all), xv, a3);                                          \
        }                                                                                             \
        if (tail) {                                                                                   \
            __m512 xv = _mm512_maskz_loadu_ps(tail, x + full);                                        \
            a0 = _mm512_fmadd_ps(LOAD(w0 + full, tail), xv, a0);                                      \
            a1 = _mm512_fmadd_ps(LOAD(w1 + full, tail), xv, a1);                                      \
            a2 = _mm512_fmadd_ps(LOAD(w2 + full, tail), xv, a2);                                      \
            a3 = _mm512_fmadd_ps(LOAD(w3 + full, tail), xv, a3);                                      \
        }                                                                                             \
        y[r] = finish(row_end_512(a0), y[r], beta);                                                   \
        y[r + 1] = finish(row_end_512(a1), y[r + 1], beta);                                           \
        y[r + 2] = finish(row_end_512(a2), y[r + 2], beta);                                           \
        y[r + 3] = finish(row_end_512(a3), y[r + 3], beta);                                           \
    }                                                                                                 \
    for (; r < hi; r++) {                                                                             \
        const T *w0 = W + r * cols;                                                                   \
        __m512 a0 = _mm512_setzero_ps();                                                              \
        for (size_t c = 0; c < full; c += LANES) a0 = _mm512_fmadd_ps(LOAD(w0 + c, all), _mm512_loadu_ps(x + c), a0); \
        if (tail) a0 = _mm512_fmadd_ps(LOAD(w0 + full, tail), _mm512_maskz_loadu_ps(tail, x + full), a0); \
        y[r] = finish(row_end_512(a0), y[r], beta);                                                   \
    }                                                                                                 \
}
ROWS_512(rows_f32_avx512, float, f32x16_512)
ROWS_512(rows_bf16_avx512, uint16_t, bf16x16_512)

/* ---- dispatch ---- */

typedef void RowsF32(float *, const float *, const float *, size_t, size_t, size_t, float);
typedef void RowsBf16(float *, const uint16_t *, const float *, size_t, size_t, size_t, float);
static MatvecIsa isa_in_use;        /* MATVEC_AUTO until the first call */

static MatvecIsa best_isa(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return MATVEC_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MATVEC_AVX2;
    return MATVEC_SCALAR;
}

MatvecIsa matvec_set_isa(MatvecIsa isa)
{
    MatvecIsa best = best_isa();
    if (isa == MATVEC_AUTO || isa > best) isa = isa == MATVEC_AUTO ? best : MATVEC_SCALAR;
    __atomic_store_n(&isa_in_use, isa, __ATOMIC_RELAXED);
    return isa;
}

const char *matvec_isa_name(MatvecIsa isa)
{
    static const char *names[] = { "auto", "scalar", "avx2", "avx512" };
    return names[isa];
}

static MatvecIsa current_isa(void)
{
    MatvecIsa isa = __atomic_load_n(&isa_in_use, __ATOMIC_RELAXED);
    return isa != MATVEC_AUTO ? isa : matvec_set_isa(MATVEC_AUTO);
}

/* Threads, each a contiguous block of rows (a multiple of 4, so no thread
 * splits a 4-row group: not needed for the result, which is per row, but
 * it keeps the groups whole). */
static int threads_for(size_t rows)
{
    if (omp_in_parallel()) return 1;
    size_t nt = (size_t)omp_get_max_threads(), most = rows / MIN_ROWS_PER_THREAD;
    if (nt > most) nt = most;
    return nt < 1 ? 1 : (int)nt;
}
#define SPLIT_ROWS(CALL)                                                                 \
    do {                                                                                 \
        int nt_ = threads_for(rows);                                                     \
        if (nt_ == 1) { size_t lo = 0, hi = rows; CALL; break; }                         \
        _Pragma("omp parallel num_threads(nt_)")                                         \
        {                                                                                \
            size_t n_ = (size_t)omp_get_num_threads(), id_ = (size_t)omp_get_thread_num(); \
            size_t per_ = ((rows + n_ - 1) / n_ + 3) / 4 * 4;                            \
            size_t lo = id_ * per_, hi = lo + per_ < rows ? lo + per_ : rows;            \
            if (lo < hi) CALL;                                                           \
        }                                                                                \
    } while (0)

void matvec_f32(float *y, const float *W, const float *x, size_t rows, size_t cols, float beta)
{
    MatvecIsa isa = current_isa();
    RowsF32 *f = isa == MATVEC_AVX512 ? rows_f32_avx512 : isa == MATVEC_AVX2 ? rows_f32_avx2 : rows_f32_scalar;
    SPLIT_ROWS(f(y, W, x, lo, hi, cols, beta));
}

void matvec_bf16(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols, float beta)
{
    MatvecIsa isa = current_isa();
    RowsBf16 *f = isa == MATVEC_AVX512 ? rows_bf16_avx512 : isa == MATVEC_AVX2 ? rows_bf16_avx2 : rows_bf16_scalar;
    SPLIT_ROWS(f(y, W, x, lo, hi, cols, beta));
}
