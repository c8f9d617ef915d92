/* model_bench: forward+backward throughput of lib/model.c on the CPU, as a
 * share of this machine's own sgemm GFLOP/s measured in the same run.
 *   model_bench L C V T B1[,B2,...] [ITERS] [GRAD_CP]
 * FLOPs per token = 6 * (parameters used in matrix products: forward 2,
 * backward 4, the embedding lookup excluded, as llm.c counts) + 32*L*C*64 for
 * the WKV7 recurrence (about 9 N^2 per head forward, 23 N^2 backward). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

static double sgemm_gflops(int n)
{
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = now_seconds() - t0;
        if (t < best) best = t;
    }
    free(a); free(b); free(c);
    return 2.0 * n * n * (double)n / best / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 6) { fprintf(stderr, "usage: model_bench L C V T B1[,B2..] [ITERS] [GRAD_CP]\n"); return 2; }
    int L = atoi(argv[1]), C = atoi(argv[2]), V = atoi(argv[3]), T = atoi(argv[4]);
    int iters = argc > 6 ? atoi(argv[6]) : 2, cp = argc > 7 ? atoi(argv[7]) : 0;
    Error e;
    Model m;
    memset(&m, 0, sizeof m);
    if (config_default(&m.cfg, L, C, V, 64, &e) || layout_build(&m.cfg, &m.layout, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    m.w = malloc(m.layout.total * 4);
    uint64_t s = 1;
    for (size_t i = 0; i < m.layout.total; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        m.w[i] = ((float)(s >> 40) / 16777216.0f - 0.5f) * 0.1f;
    }
    double nmat = 0;
    for (int i = 0; i < m.layout.n; i++) {
        const ParamInfo *p = &m.layout.p[i];
        if (p->ndim != 2 || !strcmp(p->name, "emb.weight") || strstr(p->name, "att.r_k")) continue;
        if (p->layer == 0 && (strstr(p->name, "att.v1") || strstr(p->name, "att.v2"))) continue;
        nmat += (double)p->numel;
    }
    double flop_tok = 6 * nmat + 32.0 * L * C * 64;
    double peak = fmax(sgemm_gflops(1024), sgemm_gflops(2048));
    printf("sgemm peer: %.1f GFLOP/s (best of 1024^3 and 2048^3)\n", peak);
    printf("model L%d-D%d V%d ctx %d: %.1f M params, %.1f M in matmuls, %.3f GFLOP/token (fwd+bwd)%s\n",
           L, C, V, T, m.layout.total / 1e6, nmat / 1e6, flop_tok / 1e9, cp ? ", grad_cp" : "");
    float *grad = malloc(m.layout.total * 4);
    for (char *tok = strtok(argv[5], ","); tok; tok = strtok(NULL, ",")) {
        int B = atoi(tok);
        ModelWork *W = model_work_new(&m, B, T, cp, &e);
        if (!W) { fprintf(stderr, "%s\n", e.msg); return 1; }
        int32_t *x = malloc((size_t)B * T * 4), *y = malloc((size_t)B * T * 4);
        for (int i = 0; i < B * T; i++) { x[i] = (i * 7919) % V; y[i] = (i * 104729 + 1) % V; }
        float loss = model_forward_backward(&m, W, x, y, grad);     /* warm-up */
        double best = 1e30;
        for (int it = 0; it < iters; it++) {
            double t0 = now_seconds();
            loss = model_forward_backward(&m, W, x, y, grad);
            double t = now_seconds() - t0;
            if (t < best) best = t;
        }
        double tps = B * T / best, gf = tps * flop_tok / 1e9;
        printf("B=%d: %.0f tokens/s, %.1f GFLOP/s = %.0f%% of sgemm (step %.3f s, loss %.4f)\n",
               B, tps, gf, 100 * gf / peak, best, loss);
        fflush(stdout);
        free(x); free(y);
        model_work_free(W);
    }
    free(grad);
    free(m.w);
    layout_free(&m.layout);
    return 0;
}
