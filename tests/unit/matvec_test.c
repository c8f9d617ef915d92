/* matvec_test: lib/matvec.c.  Every variant the CPU has (AVX-512, AVX2) gives
 * the same bits as the scalar twin, on shapes with and without a column tail
 * and a row remainder, with beta 0 and 1, on 1 and 3 threads; the scalar
 * results are within the fp32 summation bound of a double reference:
 *   |y - ref| <= gamma_n * sum_c |W[r][c] x[c]|,  gamma_n = n u / (1 - n u),
 *   n = cols/16 + 6 (more than the longest lane chain cols/32, the pair add,
 *   the 4-level lane tree and beta),
 *   u = 2^-24;
 * the bf16 product is exactly the fp32 product of the bf16-rounded weights,
 * and within 2^-8 sum|W x| (bf16's relative rounding, 2^-9, plus the sums)
 * of the fp32-weight reference.  The weights allocator (matvec_weights_alloc)
 * gives 2 MiB-aligned huge pages and the same products. */
#define CHECK_VERBOSE
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "matvec.h"

static uint64_t rng = 99;
static float uni(void)   /* splitmix64 -> [-1, 1) */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(2.0 * ((double)(z >> 11) / 9007199254740992.0) - 1.0);
}

static void one_shape(size_t rows, size_t cols, MatvecIsa best)
{
    float *W = malloc(rows * cols * sizeof *W), *x = malloc(cols * sizeof *x), *y0 = malloc(rows * sizeof *y0);
    float *Wb = malloc(rows * cols * sizeof *Wb), *want = malloc(rows * sizeof *want), *got = malloc(rows * sizeof *got);
    uint16_t *Wh = malloc(rows * cols * sizeof *Wh);
    for (size_t i = 0; i < rows * cols; i++) {
        W[i] = uni() * (i % 7 == 0 ? 8.0f : 1.0f);   /* a spread of magnitudes */
        Wh[i] = f32_to_bf16(W[i]);
        Wb[i] = bf16_to_f32(Wh[i]);
    }
    for (size_t c = 0; c < cols; c++) x[c] = uni();
    for (size_t r = 0; r < rows; r++) y0[r] = uni();
    double u = ldexp(1, -24), n = (double)(cols / 16 + 6), gamma = n * u / (1 - n * u);
    for (int beta = 0; beta <= 1; beta++) {
        /* scalar vs double */
        double worst = 0, worst_bf = 0;
        int in_bound = 1, in_bound_bf = 1;
        memcpy(want, y0, rows * sizeof *want);
        matvec_set_isa(MATVEC_SCALAR);
        matvec_f32(want, W, x, rows, cols, (float)beta);
        memcpy(got, y0, rows * sizeof *got);
        matvec_bf16(got, Wh, x, rows, cols, (float)beta);
        for (size_t r = 0; r < rows; r++) {
            double ref = beta ? y0[r] : 0, mag = beta ? fabs(y0[r]) : 0;
            for (size_t c = 0; c < cols; c++) { ref += (double)W[r * cols + c] * x[c]; mag += fabs((double)W[r * cols + c] * x[c]); }
            double err = fabs(want[r] - ref) / mag, err_bf = fabs(got[r] - ref) / mag;
            if (err > worst) worst = err;
            if (err_bf > worst_bf) worst_bf = err_bf;
            in_bound &= err <= gamma;
            in_bound_bf &= err_bf <= ldexp(1, -8);
        }
        CHECK(in_bound, "%zux%zu beta %d: scalar fp32 vs double: worst |err|/sum|Wx| %.2e <= %.2e", rows, cols, beta, worst, gamma);
        CHECK(in_bound_bf, "%zux%zu beta %d: scalar bf16 vs double (fp32 weights): worst %.2e <= %.2e",
              rows, cols, beta, worst_bf, ldexp(1, -8));
        /* bf16 = fp32 on the rounded weights, exactly */
        float *fb = malloc(rows * sizeof *fb);
        memcpy(fb, y0, rows * sizeof *fb);
        matvec_f32(fb, Wb, x, rows, cols, (float)beta);
        CHECK(!memcmp(fb, got, rows * sizeof *fb), "%zux%zu beta %d: bf16 product = fp32 product of the rounded weights", rows, cols, beta);
        free(fb);
        /* every variant, 1 and 3 threads, equals the scalar twin bitwise */
        for (MatvecIsa isa = MATVEC_AVX2; isa <= best; isa++)
            for (int nt = 1; nt <= 3; nt += 2) {
                omp_set_num_threads(nt);
                matvec_set_isa(isa);
                float *a = malloc(rows * sizeof *a), *b = malloc(rows * sizeof *b);
                memcpy(a, y0, rows * sizeof *a);
                memcpy(b, y0, rows * sizeof *b);
                matvec_f32(a, W, x, rows, cols, (float)beta);
                matvec_bf16(b, Wh, x, rows, cols, (float)beta);
                CHECK(!memcmp(a, want, rows * sizeof *a), "%zux%zu beta %d %s %d thr: fp32 = scalar twin", rows, cols, beta, matvec_isa_name(isa), nt);
                CHECK(!memcmp(b, got, rows * sizeof *b), "%zux%zu beta %d %s %d thr: bf16 = scalar twin", rows, cols, beta, matvec_isa_name(isa), nt);
                free(a);
                free(b);
            }
        omp_set_num_threads(1);
    }
    free(W); free(x); free(y0); free(Wb); free(want); free(got); free(Wh);
}

/* kB of AnonHugePages in the mapping that holds p (/proc/self/smaps), -1 if not found */
static long huge_kb_at(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    long kb = -1;
    int in = 0;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, v;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && sscanf(line, "AnonHugePages: %lu kB", &v) == 1) kb = (long)v;
    }
    fclose(f);
    return kb;
}

/* matvec_weights_alloc: 2 MiB-aligned, backed by huge pages when THP is not
 * "never", and a product over it has the same bits as over malloc'd weights */
static void weights_alloc(void)
{
    size_t rows = 4096, cols = 768, bytes = rows * cols * sizeof(uint16_t);   /* 6 MiB */
    uint16_t *h = matvec_weights_alloc(bytes), *p = malloc(bytes);
    float *x = malloc(cols * sizeof *x), *yh = malloc(rows * sizeof *yh), *yp = malloc(rows * sizeof *yp);
    CHECK(h && !((uintptr_t)h & ((2u << 20) - 1)), "weights buffer 2 MiB-aligned");
    for (size_t i = 0; i < rows * cols; i++) h[i] = p[i] = f32_to_bf16(uni());
    for (size_t c = 0; c < cols; c++) x[c] = uni();
    matvec_set_isa(MATVEC_AUTO);
    matvec_bf16(yh, h, x, rows, cols, 0);
    matvec_bf16(yp, p, x, rows, cols, 0);
    CHECK(!memcmp(yh, yp, rows * sizeof *yh), "product over the huge-page buffer = over malloc'd weights");
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) { if (!fgets(mode, sizeof mode, f)) mode[0] = 0; fclose(f); }
    if (!mode[0] || strstr(mode, "[never]")) printf("transparent huge pages off here (%s): backing not checked\n", mode[0] ? "never" : "no sysfs");
    else {
        long kb = huge_kb_at(h);
        CHECK(kb >= 2048, "weights buffer backed by huge pages: AnonHugePages %ld kB of its mapping (THP %.*s)", kb,
              (int)strcspn(mode, "\n"), mode);
    }
    free(h); free(p); free(x); free(yh); free(yp);
}

int main(void)
{
    MatvecIsa best = matvec_set_isa(MATVEC_AUTO);
    printf("best variant on this CPU: %s\n", matvec_isa_name(best));
    static const size_t shapes[][2] = { { 1, 1 }, { 3, 7 }, { 5, 16 }, { 7, 33 }, { 130, 768 }, { 257, 100 }, { 64, 3072 } };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) one_shape(shapes[i][0], shapes[i][1], best);
    weights_alloc();
    return check_done();
}
