/* init_test: parameter counts and LoRA ranks (RWKV-LM-V7 src/model.py,
 * RWKV_Tmix_x070.__init__) through the layout, and the
 * orthogonal/uniform/normal building blocks of lib/init.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"
#include "layout.h"

#include "check.h"

/* max |W W^T / g^2 - I| (wide) or |W^T W / g^2 - I| (tall), in double */
static double ortho_error(const float *w, int r, int c, double g)
{
    int n = r < c ? r : c;
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            if (r <= c) for (int k = 0; k < c; k++) s += (double)w[i * c + k] * w[j * c + k];
            else for (int k = 0; k < r; k++) s += (double)w[k * c + i] * w[k * c + j];
            double d = fabs(s / (g * g) - (i == j));
            if (d > worst) worst = d;
        }
    return worst;
}

int main(void)
{
    Error e = { "" };
    struct { int L, C; unsigned long long want; } counts[] = {
        { 12, 768, 191084544ull }, { 24, 1024, 453980160ull }, { 24, 2048, 1530814464ull },
    };
    for (int i = 0; i < 3; i++) {
        ModelConfig c;
        CHECK(config_default(&c, counts[i].L, counts[i].C, 65536, 64, &e) == 0, "%s", e.msg);
        unsigned long long got = config_param_count(&c);
        CHECK(got == counts[i].want, "L%d-D%d: %llu params, want %llu", counts[i].L, counts[i].C, got, counts[i].want);
        printf("L%d-D%d-V65536: %llu parameters\n", counts[i].L, counts[i].C, got);
    }
    int ranks[][5] = { { 256, 32, 32, 32, 64 }, { 512, 64, 64, 32, 128 }, { 768, 64, 64, 32, 128 },
                       { 1024, 64, 64, 64, 160 }, { 2048, 128, 128, 64, 224 }, { 2560, 128, 128, 96, 256 },
                       { 4096, 160, 160, 96, 320 } };
    for (int i = 0; i < 7; i++) {
        ModelConfig c;
        config_default(&c, 2, ranks[i][0], 65536, 64, &e);
        CHECK(c.d_decay == ranks[i][1] && c.d_aaa == ranks[i][2] && c.d_mv == ranks[i][3] && c.d_gate == ranks[i][4],
              "C=%d ranks %d,%d,%d,%d", ranks[i][0], c.d_decay, c.d_aaa, c.d_mv, c.d_gate);
    }

    /* orthogonal: wide, square, tall, with gains; signs random, not identity */
    int shapes[][2] = { { 32, 128 }, { 128, 128 }, { 512, 128 }, { 1, 7 }, { 7, 1 }, { 300, 64 } };
    double gains[] = { 0.1, 1.0, 4.6188, 0.5, 1.0, 2.0 };
    for (int s = 0; s < 6; s++) {
        int r = shapes[s][0], c = shapes[s][1];
        float *w = malloc((size_t)r * c * sizeof *w);
        CHECK(init_orthogonal(w, r, c, gains[s], 1234 + s, &e) == 0, "%s", e.msg);
        double err = ortho_error(w, r, c, gains[s]);
        CHECK(err < 1e-5, "%dx%d gain %g: orthogonality error %g", r, c, gains[s], err);
        int diag_like = 0;
        for (int i = 0; i < (r < c ? r : c); i++) diag_like += fabs(fabs(w[i * c + i]) - gains[s]) < 1e-6;
        CHECK(r * c < 8 || diag_like < (r < c ? r : c) / 2, "%dx%d looks like an identity", r, c);
        float *w2 = malloc((size_t)r * c * sizeof *w2);
        init_orthogonal(w2, r, c, gains[s], 1234 + s, &e);
        CHECK(memcmp(w, w2, (size_t)r * c * sizeof *w) == 0, "%dx%d not reproducible", r, c);
        init_orthogonal(w2, r, c, gains[s], 999, &e);
        CHECK(memcmp(w, w2, (size_t)r * c * sizeof *w) != 0, "%dx%d ignores the seed", r, c);
        free(w); free(w2);
    }

    /* normal and uniform moments */
    size_t n = 1 << 20;
    float *x = malloc(n * sizeof *x);
    init_normal(x, n, 77);
    double m1 = 0, m2 = 0, m4 = 0;
    for (size_t i = 0; i < n; i++) { m1 += x[i]; m2 += (double)x[i] * x[i]; m4 += pow(x[i], 4); }
    m1 /= n; m2 /= n; m4 /= n;
    CHECK_NEAR(m1, 0, 0.005);   /* moments of the standard normal: mean 0, variance 1, kurtosis 3 */
    CHECK_NEAR(m2, 1, 0.01);
    CHECK_NEAR(m4, 3, 0.05);
    init_uniform(x, n, -1e-4f, 1e-4f, 78);
    double lo = 1, hi = -1, s1 = 0;
    for (size_t i = 0; i < n; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i]; s1 += x[i]; }
    CHECK(lo >= -1e-4 && hi <= 1e-4 && lo < -0.999e-4 && hi > 0.999e-4 && fabs(s1 / n) < 2e-7, "uniform %g %g %g", lo, hi, s1 / n);
    free(x);
    CHECK(init_tensor_seed(1, "a") != init_tensor_seed(1, "b") && init_tensor_seed(1, "a") != init_tensor_seed(2, "a"), "seeds");

    return check_done();
}
