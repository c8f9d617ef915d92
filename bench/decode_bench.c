/* decode_bench: tokens/s of the recurrent decode (model_step with logits) of
 * lib/model.c, fp32 and bf16 weights (model_use_bf16), and the weight bytes
 * read per second, beside this machine's copy and read bandwidth measured in
 * the same run (STREAM-like: copy counts the bytes read plus written); with
 * PREFILL > 0, also the tokens/s of model_prefill over a prompt of PREFILL
 * tokens from a fresh state with the last position's logits (what
 * rwkv-generate does with its prompt).
 *   decode_bench L C V TOKENS THREADS1[,THREADS2..] [REPEATS [PREFILL]]
 * Weights are random (speed does not depend on their values).  Each figure
 * is the best and the median of REPEATS runs of TOKENS tokens (after 4
 * warm-up tokens; a prefill after one warm-up prefill), since the machine is
 * shared. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "matvec.h"
#include "model.h"
#include "tensors.h"

#define BW_BYTES (512u << 20)       /* per array: well beyond the caches' share */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static void best_median(double *v, int n, double *best, double *median)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *best = v[n - 1];
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* bf16 sum of w[lo..hi) read as four streams a quarter apart, with the loads,
 * conversions and prefetch distance of the AVX-512 matvec: the most a
 * one-thread decode could stream */
#ifdef __AVX512BW__
static float sum_quarters(const uint16_t *w, size_t lo, size_t hi)
{
    size_t q = (hi - lo) / 4;
    const __m512i odd = _mm512_set1_epi32((int)0xffff0000);
    __m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps() };
    for (size_t i = 0; i + 32 <= q; i += 32)
        for (int k = 0; k < 4; k++) {
            const uint16_t *p = w + lo + (size_t)k * q + i;
            _mm_prefetch((const char *)(p + 2048), _MM_HINT_T0);
            __m512i v = _mm512_loadu_si512(p);
            acc[k] = _mm512_add_ps(acc[k], _mm512_add_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)),
                                                         _mm512_castsi512_ps(_mm512_and_si512(v, odd))));
        }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}
#else
static float sum_quarters(const uint16_t *w, size_t lo, size_t hi)
{
    size_t q = (hi - lo) / 4;
    const uint16_t *a = w + lo, *b = a + q, *c = b + q, *d = c + q;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (size_t i = 0; i < q; i++) {
        s0 += bf16_to_f32(a[i]);
        s1 += bf16_to_f32(b[i]);
        s2 += bf16_to_f32(c[i]);
        s3 += bf16_to_f32(d[i]);
    }
    return s0 + s1 + s2 + s3;
}
#endif

/* GB/s, best of repeats, nt threads: copy a = b (2 x BW_BYTES moved, malloc'd
 * arrays: the reference figure), a read of b (fp32 sum), and a read of a bf16
 * array in 4 streams per thread, in ordinary pages (malloc) and in huge pages
 * (matvec_weights_alloc, as the decode weights) */
static void bandwidth(int nt, int repeats, double *copy, double *read, double *read16, double *read16_huge)
{
    size_t n = BW_BYTES / sizeof(float), n16 = BW_BYTES / sizeof(uint16_t);
    float *a = malloc(BW_BYTES), *b = malloc(BW_BYTES);
    uint16_t *h = matvec_weights_alloc(BW_BYTES);
    double cv[16], rv[16], hv[16], pv[16], sink = 0, med;
    if (repeats > 16) repeats = 16;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) { a[i] = 0; b[i] = (float)(i & 255); }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n16; i++) h[i] = (uint16_t)(0x3f80 + (i & 63));
    for (int r = 0; r < repeats; r++) {
        double t0 = now_seconds();
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i];
        cv[r] = 2.0 * BW_BYTES / (now_seconds() - t0) / 1e9;
        t0 = now_seconds();
        float s = 0;   /* float and simd: the sum must not be a latency-bound chain */
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += b[i];
        rv[r] = BW_BYTES / (now_seconds() - t0) / 1e9;
        for (int huge = 0; huge <= 1; huge++) {
            const uint16_t *w = huge ? h : (const uint16_t *)b;
            t0 = now_seconds();
#pragma omp parallel num_threads(nt) reduction(+ : s)
            {
                size_t per = n16 / (size_t)omp_get_num_threads(), lo = per * (size_t)omp_get_thread_num();
                s += sum_quarters(w, lo, lo + per);
            }
            (huge ? hv : pv)[r] = BW_BYTES / (now_seconds() - t0) / 1e9;
        }
        sink += s + a[r];
    }
    best_median(cv, repeats, copy, &med);
    best_median(rv, repeats, read, &med);
    best_median(pv, repeats, read16, &med);
    best_median(hv, repeats, read16_huge, &med);
    if (sink == -1) printf("%g", sink);   /* keeps the loops */
    free(a);
    free(b);
    free(h);
}

/* Prefill of more than one token multiplies by the fp32 weights whatever
 * model_use_bf16 says; with bf16 only the head of the last position (one
 * row: lib/model.c's linear) reads the bf16 copy, so both are timed. */
static int prefill_rate(Model *m, int bf16, int nt, const int32_t *prompt, int n, float *logits, int repeats, Error *e)
{
    if (model_use_bf16(m, bf16, e)) return -1;
    omp_set_num_threads(nt);
    ModelState *st = model_state_new(m, e);
    if (!st) return -1;
    double tps[64], best, median;
    for (int r = -1; r < repeats; r++) {   /* r = -1: warm-up (first touch of the work buffers) */
        model_state_reset(st);
        double t0 = now_seconds();
        if (model_prefill(m, st, prompt, n, logits, e)) { model_state_free(st); return -1; }
        if (r >= 0) tps[r] = n / (now_seconds() - t0);
    }
    best_median(tps, repeats, &best, &median);
    printf("  prefill %d tokens, %s: %.1f tokens/s best, %.1f median\n", n, bf16 ? "bf16" : "fp32", best, median);
    model_state_free(st);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6) { fprintf(stderr, "usage: decode_bench L C V TOKENS THREADS1[,THREADS2..] [REPEATS [PREFILL]]\n"); return 2; }
    int L = atoi(argv[1]), C = atoi(argv[2]), V = atoi(argv[3]), ntok = atoi(argv[4]);
    int repeats = argc > 6 ? atoi(argv[6]) : 5, nprefill = argc > 7 ? atoi(argv[7]) : 0;
    if (repeats < 1 || repeats > 64 || ntok < 1 || nprefill < 0) { fprintf(stderr, "bad TOKENS, REPEATS or PREFILL\n"); return 2; }
    setenv("OMP_NUM_THREADS", "1", 0);   /* the model then takes omp_set_num_threads's count as given */
    Error e;
    Model m;
    memset(&m, 0, sizeof m);
    if (config_default(&m.cfg, L, C, V, 64, &e) || layout_build(&m.cfg, &m.layout, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    m.w = matvec_weights_alloc(m.layout.total * 4);   /* as model_alloc */
    uint64_t s = 1;
    for (size_t i = 0; i < m.layout.total; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        m.w[i] = ((float)(s >> 40) / 16777216.0f - 0.5f) * 0.1f;
    }
    /* bytes read per token: every parameter but the embedding (one row of it);
     * with bf16, the Linear weights ("*.weight" matrices) at 2 bytes */
    double bytes32 = (double)C * 4, bytes16 = bytes32;
    for (int i = 0; i < m.layout.n; i++) {
        const ParamInfo *p = &m.layout.p[i];
        if (!strcmp(p->name, "emb.weight")) continue;
        size_t nl = strlen(p->name);
        int big = p->ndim == 2 && nl > 7 && !strcmp(p->name + nl - 7, ".weight");
        bytes32 += 4.0 * p->numel;
        bytes16 += (big ? 2.0 : 4.0) * p->numel;
    }
    printf("decode L%d-D%d V%d: %.1f M params; weights read per token: fp32 %.0f MB, bf16 %.0f MB; matvec %s\n",
           L, C, V, m.layout.total / 1e6, bytes32 / 1e6, bytes16 / 1e6, matvec_isa_name(matvec_set_isa(MATVEC_AUTO)));
    float *logits = malloc((size_t)V * sizeof *logits);
    int32_t *prompt = malloc((size_t)(nprefill ? nprefill : 1) * sizeof *prompt);
    for (int i = 0, t = 1; i < nprefill; i++, t = (int)(((int64_t)t * 7919 + 13) % V)) prompt[i] = t;   /* as b_decode.sh's pip run */
    for (char *tok = strtok(argv[5], ","); tok; tok = strtok(NULL, ",")) {
        int nt = atoi(tok);
        double copy, read, read16, read16_huge;
        bandwidth(nt, repeats, &copy, &read, &read16, &read16_huge);
        printf("%d thread(s): copy %.1f GB/s, read %.1f GB/s; bf16 read in 4 streams %.1f GB/s, in huge pages %.1f GB/s"
               " (best of %d)\n", nt, copy, read, read16, read16_huge, repeats);
        for (int bf16 = 0; bf16 <= 1; bf16++) {
            if (model_use_bf16(&m, bf16, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
            omp_set_num_threads(nt);
            ModelState *st = model_state_new(&m, &e);
            if (!st) { fprintf(stderr, "%s\n", e.msg); return 1; }
            double tps[64], best, median;
            int32_t t = 1;
            for (int i = 0; i < 4; i++) model_step(&m, st, t, logits);
            for (int r = 0; r < repeats; r++) {
                double t0 = now_seconds();
                for (int i = 0; i < ntok; i++) {
                    model_step(&m, st, t, logits);
                    t = (int32_t)((t * 7919 + 13) % V);
                }
                tps[r] = ntok / (now_seconds() - t0);
            }
            best_median(tps, repeats, &best, &median);
            double bytes = bf16 ? bytes16 : bytes32;
            printf("  %s: %.1f tokens/s best, %.1f median; %.1f GB/s of weights = %.0f%% of copy, %.0f%% of the huge-page read\n",
                   bf16 ? "bf16" : "fp32", best, median, best * bytes / 1e9, 100 * best * bytes / 1e9 / copy,
                   100 * best * bytes / 1e9 / read16_huge);
            model_state_free(st);
        }
        for (int bf16 = 0; nprefill && bf16 <= 1; bf16++)
            if (prefill_rate(&m, bf16, nt, prompt, nprefill, logits, repeats, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    }
    free(prompt);
    free(logits);
    model_free(&m);
    return 0;
}
