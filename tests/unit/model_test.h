/* model_test.h: helpers shared by the tests/unit/model_*.c programs. */
#ifndef RWKV7C_MODEL_TEST_H
#define RWKV7C_MODEL_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

/* A Model with zero weights (model_alloc), the error printed. */
__attribute__((unused)) static int tm_new(Model *m, const ModelConfig *c)
{
    Error e;
    if (model_alloc(m, c, &e)) { fprintf(stderr, "model_alloc: %s\n", e.msg); return -1; }
    return 0;
}

__attribute__((unused)) static void tm_free(Model *m) { model_free(m); }

/* Deterministic pseudo-random numbers (splitmix64), uniform in [-1, 1). */
static uint64_t tm_rng = 0x9e3779b97f4a7c15ull;
static double tm_uniform(void)
{
    uint64_t z = (tm_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* Random weights of reasonable scale: gains near 1, mixes in [0,1], decays
 * spread over their range, matrices ~ 1/sqrt(fan_in). */
__attribute__((unused)) static void tm_randomize(Model *m, uint64_t seed)
{
    tm_rng = seed * 0x2545F4914F6CDD1Dull + 1;
    for (int i = 0; i < m->layout.n; i++) {
        const ParamInfo *p = &m->layout.p[i];
        float *w = m->w + p->offset;
        const char *nm = strrchr(p->name, '.') ? p->name : p->name;
        int is_vec = p->ndim == 1 || p->ndim == 3;
        double fan = p->ndim == 2 ? (double)p->shape[1] : 1;
        if (strstr(nm, "att.w1") || strstr(nm, "att.a1") || strstr(nm, "att.v1") || strstr(nm, "att.g1") ||
            strstr(nm, "att.w2") || strstr(nm, "att.a2") || strstr(nm, "att.v2") || strstr(nm, "att.g2"))
            fan = (double)p->shape[0];
        for (size_t j = 0; j < p->numel; j++) {
            double u = tm_uniform();
            float v;
            if (strstr(nm, "emb.weight")) v = (float)(1.7 * u);
            else if (strstr(nm, "r_k")) v = (float)(-0.04 + 0.5 * u);
            else if (is_vec && strstr(nm, ".weight")) v = (float)(1.0 + 0.3 * u);
            else if (is_vec && strstr(nm, ".bias")) v = (float)(0.3 * u);
            else if (strstr(nm, ".x_")) v = (float)(0.5 + 0.5 * u);
            else if (strstr(nm, "att.w0")) v = (float)(-3.0 + 5.0 * u);
            else if (strstr(nm, "att.a0") || strstr(nm, "att.v0")) v = (float)(1.0 * u);
            else if (strstr(nm, "att.k_k")) v = (float)(0.7 + 0.3 * u);
            else if (strstr(nm, "att.k_a")) v = (float)(1.0 + 0.3 * u);
            else v = (float)(1.7 * u / sqrt(fan));
            w[j] = v;
        }
    }
}

/* max |a-b| / max |b| over n values (0/0 = 0). */
__attribute__((unused)) static double tm_relerr(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (isnan(d)) return NAN;
        if (d > md) md = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return mb > 0 ? md / mb : md;
}
#endif
