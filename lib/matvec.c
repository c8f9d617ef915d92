/* matvec.c: the decode mode's matrix-vector products (matvec.h).
 *
 * Each variant multiplies a block of rows; every one keeps 32 fp32 lanes per
 * row (lane j sums W[r][c] x[c] for c % 32 == j, by fused multiply-add, in
 * column order), adds lane pairs 2i, 2i+1, then sums the 16 pair sums by the
 * same fixed tree (lane_sum), so all variants, fp32 and bf16 alike, give the
 * same bits (bf16 weights: the same as fp32 on the rounded weights).  The
 * pairs suit bf16: one 512-bit load of 32 bf16 values gives the even columns
 * by a shift and the odd ones by a mask, cheaper than widening 16 values
 * (+13-25% measured), with x split into even and odd columns once per call
 * (split_x).  The SIMD variants do several rows at once
 * to hide the FMA latency; the scalar one is their reference twin. */
#include "matvec.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <sys/mman.h>

#define LANES 16
/* bf16 rows are prefetched this many columns (4 KiB) ahead: the hardware
 * prefetcher alone left the bf16 product at 8 GB/s on one core, 11 with it
 * (measured on the 65536 x 768 head; fp32 gained nothing) */
#define BF16_PREFETCH 2048
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

/* the 32 lanes t (from column c on, W[c] x[c] goes to t[c % 32]) pairwise into 16, then the tree */
static inline float f32_row_end(float *t, const float *w, const float *x, size_t c, size_t cols)
{
    float s[LANES];
    for (; c < cols; c++) t[c % 32] = fmaf(w[c], x[c], t[c % 32]);
    for (int i = 0; i < LANES; i++) s[i] = t[2 * i] + t[2 * i + 1];
    return lane_sum(s);
}
static void rows_f32_scalar(float *y, const float *W, const float *x, size_t lo, size_t hi, size_t cols, float beta)
{
    for (size_t r = lo; r < hi; r++) {
        float t[32] = { 0 };
        y[r] = finish(f32_row_end(t, W + r * cols, x, 0, cols), y[r], beta);
    }
}
/* bf16: the 32 lanes t (from c on, columns go to t[c % 32]) pairwise into 16, then the tree */
static inline float bf16_row_end(float *t, const uint16_t *w, const float *x, size_t c, size_t cols)
{
    float s[LANES];
    for (; c < cols; c++) t[c % 32] = fmaf(bf16_to_f32(w[c]), x[c], t[c % 32]);
    for (int i = 0; i < LANES; i++) s[i] = t[2 * i] + t[2 * i + 1];
    return lane_sum(s);
}
static void rows_bf16_scalar(float *y, const uint16_t *W, const float *x, const float *xeo, size_t lo, size_t hi,
                             size_t cols, float beta)
{
    for (size_t r = lo; r < hi; r++) {
        float t[32] = { 0 };
        y[r] = finish(bf16_row_end(t, W + r * cols, x, 0, cols), y[r], beta);
    }
}

/* ---- AVX2 + FMA: the 16 lanes as two 8-float registers, 2 rows at a time ---- */

#define AVX2 __attribute__((target("avx2,fma")))
/* fp32, one row at a time: four 8-lane registers hold lanes 0..31 */
AVX2 static void rows_f32_avx2(float *y, const float *W, const float *x, size_t lo, size_t hi, size_t cols, float beta)
{
    size_t full = cols / 32 * 32;
    for (size_t r = lo; r < hi; r++) {
        const float *w = W + r * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t c = 0; c < full; c += 32) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(x + c), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 8), _mm256_loadu_ps(x + c + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 16), _mm256_loadu_ps(x + c + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 24), _mm256_loadu_ps(x + c + 24), a3);
        }
        float t[32];
        _mm256_storeu_ps(t, a0);
        _mm256_storeu_ps(t + 8, a1);
        _mm256_storeu_ps(t + 16, a2);
        _mm256_storeu_ps(t + 24, a3);
        y[r] = finish(f32_row_end(t, w, x, full, cols), y[r], beta);
    }
}

/* bf16, one row at a time: per 32 columns, even and odd lanes 0-7 (columns
 * 0..15) and 8-15 (columns 16..31); xeo as split_x leaves it */
AVX2 static void rows_bf16_avx2(float *y, const uint16_t *W, const float *x, const float *xeo, size_t lo, size_t hi,
                                size_t cols, float beta)
{
    size_t full = cols / 32 * 32, groups = (cols + 31) / 32;
    const float *xe = xeo, *xo = xeo + groups * 16;
    const __m256i odd = _mm256_set1_epi32((int)0xffff0000);
    for (size_t r = lo; r < hi; r++) {
        const uint16_t *w = W + r * cols;
        __m256 e0 = _mm256_setzero_ps(), o0 = e0, e1 = e0, o1 = e0;
        for (size_t c = 0; c < full; c += 32) {
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(w + c)), v1 = _mm256_loadu_si256((const __m256i *)(w + c + 16));
            const float *pe = xe + c / 2, *po = xo + c / 2;
            e0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), _mm256_loadu_ps(pe), e0);
            o0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v0, odd)), _mm256_loadu_ps(po), o0);
            e1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), _mm256_loadu_ps(pe + 8), e1);
            o1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v1, odd)), _mm256_loadu_ps(po + 8), o1);
        }
        float e[16], o[16], t[32];
        _mm256_storeu_ps(e, e0);
        _mm256_storeu_ps(e + 8, e1);
        _mm256_storeu_ps(o, o0);
        _mm256_storeu_ps(o + 8, o1);
        for (int i = 0; i < 16; i++) { t[2 * i] = e[i]; t[2 * i + 1] = o[i]; }
        y[r] = finish(bf16_row_end(t, w, x, full, cols), y[r], beta);
    }
}

/* ---- AVX-512: one 16-float register per row, 4 rows at a time; the tail by a
 * masked load (zeros add nothing).  The 4 rows of a step are a quarter of the
 * block apart (rows g, g+q, g+2q, g+3q): four streams in different pages keep
 * more of the hardware prefetcher busy than one (which stops at each 4 KiB
 * page): one-thread decode +10-15% (bench/b_decode.sh; each row's sum is
 * unchanged) ---- */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
/* lane_sum's tree ([i] += [i+8], [i+4], [i+2], [i+1]) in registers: the same
 * additions, so the same bits, without a store and 15 dependent scalar adds
 * per row (half the compute of a 768-column row, measured) */
AVX512 static inline float row_end_512(__m512 a)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}
/* lanes 0..15 in lo, 16..31 in hi -> the 16 pair sums t[2i] + t[2i+1] */
AVX512 static inline __m512 pairs_512(__m512 lo, __m512 hi)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_add_ps(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
}
/* fp32: two registers per row (lanes 0-15, 16-31), 4 rows a quarter apart at a time; the
 * tail by masked loads (zeros add nothing) */
AVX512 static void rows_f32_avx512(float *y, const float *W, const float *x, size_t lo, size_t hi, size_t cols, float beta)
{
    size_t full = cols / 32 * 32, q = (hi - lo) / 4, r;
    __mmask32 tail = (__mmask32)((1ull << (cols - full)) - 1);
#define F2(w, c, ml, mh, a, b) do {                                                               \
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(ml, (w) + (c)), xl, a);                        \
        b = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mh, (w) + (c) + 16), xh, b);                   \
    } while (0)
    for (size_t g = 0; g < q; g++) {
        size_t r0 = lo + g, r1 = r0 + q, r2 = r1 + q, r3 = r2 + q;
        const float *w0 = W + r0 * cols, *w1 = W + r1 * cols, *w2 = W + r2 * cols, *w3 = W + r3 * cols;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (size_t c = 0; c < cols; c += 32) {
            __mmask32 m = c < full ? ~(__mmask32)0 : tail;
            __mmask16 ml = (__mmask16)m, mh = (__mmask16)(m >> 16);
            __m512 xl = _mm512_maskz_loadu_ps(ml, x + c), xh = _mm512_maskz_loadu_ps(mh, x + c + 16);
            F2(w0, c, ml, mh, a0, b0);
            F2(w1, c, ml, mh, a1, b1);
            F2(w2, c, ml, mh, a2, b2);
            F2(w3, c, ml, mh, a3, b3);
        }
        y[r0] = finish(row_end_512(pairs_512(a0, b0)), y[r0], beta);
        y[r1] = finish(row_end_512(pairs_512(a1, b1)), y[r1], beta);
        y[r2] = finish(row_end_512(pairs_512(a2, b2)), y[r2], beta);
        y[r3] = finish(row_end_512(pairs_512(a3, b3)), y[r3], beta);
    }
    for (r = lo + 4 * q; r < hi; r++) {
        const float *w0 = W + r * cols;
        __m512 a0 = _mm512_setzero_ps(), b0 = a0;
        for (size_t c = 0; c < cols; c += 32) {
            __mmask32 m = c < full ? ~(__mmask32)0 : tail;
            __mmask16 ml = (__mmask16)m, mh = (__mmask16)(m >> 16);
            __m512 xl = _mm512_maskz_loadu_ps(ml, x + c), xh = _mm512_maskz_loadu_ps(mh, x + c + 16);
            F2(w0, c, ml, mh, a0, b0);
        }
        y[r] = finish(row_end_512(pairs_512(a0, b0)), y[r], beta);
    }
#undef F2
}

/* bf16: 32 columns per 512-bit load, even lanes by a shift, odd by a mask;
 * 4 rows a quarter apart at a time; the tail by a masked load (xeo is zero-padded) */
AVX512 static void rows_bf16_avx512(float *y, const uint16_t *W, const float *x, const float *xeo, size_t lo, size_t hi,
                                    size_t cols, float beta)
{
    size_t full = cols / 32 * 32, groups = (cols + 31) / 32;
    const float *xe = xeo, *xo = xeo + groups * 16;
    const __m512i odd = _mm512_set1_epi32((int)0xffff0000);
    __mmask32 tail = (__mmask32)((1ull << (cols - full)) - 1);
    size_t q = (hi - lo) / 4, r;
#define EO(w, c, m, e, o) do {                                                                   \
        __m512i v = _mm512_maskz_loadu_epi16(m, (w) + (c));                                     \
        e = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), xev, e);             \
        o = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, odd)), xov, o);             \
    } while (0)
    for (size_t g = 0; g < q; g++) {
        size_t r0 = lo + g, r1 = r0 + q, r2 = r1 + q, r3 = r2 + q;
        const uint16_t *w0 = W + r0 * cols, *w1 = W + r1 * cols, *w2 = W + r2 * cols, *w3 = W + r3 * cols;
        __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
        for (size_t c = 0; c < cols; c += 32) {
            __mmask32 m = c < full ? ~(__mmask32)0 : tail;
            __m512 xev = _mm512_loadu_ps(xe + c / 2), xov = _mm512_loadu_ps(xo + c / 2);
            _mm_prefetch((const char *)(w0 + c + BF16_PREFETCH), _MM_HINT_T0);
            _mm_prefetch((const char *)(w1 + c + BF16_PREFETCH), _MM_HINT_T0);
            _mm_prefetch((const char *)(w2 + c + BF16_PREFETCH), _MM_HINT_T0);
            _mm_prefetch((const char *)(w3 + c + BF16_PREFETCH), _MM_HINT_T0);
            EO(w0, c, m, e0, o0);
            EO(w1, c, m, e1, o1);
            EO(w2, c, m, e2, o2);
            EO(w3, c, m, e3, o3);
        }
        y[r0] = finish(row_end_512(_mm512_add_ps(e0, o0)), y[r0], beta);
        y[r1] = finish(row_end_512(_mm512_add_ps(e1, o1)), y[r1], beta);
        y[r2] = finish(row_end_512(_mm512_add_ps(e2, o2)), y[r2], beta);
        y[r3] = finish(row_end_512(_mm512_add_ps(e3, o3)), y[r3], beta);
    }
    for (r = lo + 4 * q; r < hi; r++) {
        const uint16_t *w0 = W + r * cols;
        __m512 e0 = _mm512_setzero_ps(), o0 = e0;
        for (size_t c = 0; c < cols; c += 32) {
            __mmask32 m = c < full ? ~(__mmask32)0 : tail;
            __m512 xev = _mm512_loadu_ps(xe + c / 2), xov = _mm512_loadu_ps(xo + c / 2);
            EO(w0, c, m, e0, o0);
        }
        y[r] = finish(row_end_512(_mm512_add_ps(e0, o0)), y[r], beta);
    }
#undef EO
}

/* ---- dispatch ---- */

typedef void RowsF32(float *, const float *, const float *, size_t, size_t, size_t, float);
typedef void RowsBf16(float *, const uint16_t *, const float *, const float *, size_t, size_t, size_t, float);
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

/* x's even columns of each 32, then its odd ones, 16 per group, zero-padded */
static void split_x(float *xeo, const float *x, size_t cols)
{
    size_t groups = (cols + 31) / 32;
    float *xe = xeo, *xo = xeo + groups * 16;
    for (size_t c = 0; c < groups * 32; c++) (c % 2 ? xo : xe)[c / 2] = c < cols ? x[c] : 0;
}

#define XEO_STACK 8192              /* columns split on the stack; wider ones in the heap */
void matvec_bf16(float *y, const uint16_t *W, const float *x, size_t rows, size_t cols, float beta)
{
    MatvecIsa isa = current_isa();
    float stack[XEO_STACK], *xeo = stack;
    if (cols > XEO_STACK - 32 && !(xeo = malloc((cols + 32) * sizeof *xeo))) isa = MATVEC_SCALAR;   /* same bits */
    if (isa != MATVEC_SCALAR) split_x(xeo, x, cols);
    RowsBf16 *f = isa == MATVEC_AVX512 ? rows_bf16_avx512 : isa == MATVEC_AVX2 ? rows_bf16_avx2 : rows_bf16_scalar;
    SPLIT_ROWS(f(y, W, x, xeo, lo, hi, cols, beta));
    if (xeo != stack) free(xeo);
}

#define HUGE_PAGE ((size_t)2 << 20)
void *matvec_weights_alloc(size_t bytes)
{
    size_t whole = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p;
    if (posix_memalign(&p, HUGE_PAGE, whole ? whole : HUGE_PAGE)) return NULL;
    /* before the first touch, so the pages are faulted in huge; a refusal
     * (THP "never", an old kernel) leaves ordinary pages, same contents */
    if (whole) madvise(p, whole, MADV_HUGEPAGE);
    return p;
}
