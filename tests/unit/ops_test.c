/* ops_test: every op of lib/ops.h against a straightforward scalar
 * computation in double on tiny shapes: forwards against a reference
 * forward, backwards against central differences of sum(R * out) taken on
 * that reference (on a sample of elements), the rest elementwise.  These are
 * the twin checks a `_cuda` op will reuse.  Also: cross entropy with NaN and
 * +Inf logits gives NaN without undefined behaviour (D14: run it in the
 * UBSan build), and argmax ties go to the lowest index. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#define CHECK_VERBOSE   /* the log shows each measured error against its bound */
#include "check.h"

#define HS OPS_HEAD_SIZE

/* ------------------------------------------------------------ helpers */

static uint64_t rng = 12345;
static double uni(double lo, double hi)   /* splitmix64 -> [lo, hi) */
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * ((double)(z >> 11) / 9007199254740992.0);
}
static float *rnd(size_t n, double lo, double hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)uni(lo, hi);
    return p;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static double *dbl(const float *f, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    return d;
}

/* max |a - b| / max(max |b|, 1e-30) */
static double relerr_fd(const float *a, const double *b, size_t n)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (isnan(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > 1e-30 ? mb : 1e-30);
}

/* The loss sum(R * out) of a reference forward, as a function of its double inputs. */
typedef double (*LossFn)(void *ctx);

/* Central differences of loss() along up to `samples` elements of x (n doubles,
 * perturbed in place), compared with the op's gradient g: max |g - fd| over the
 * sample relative to max |fd|. */
static double fd_check(LossFn loss, void *ctx, double *x, size_t n, const float *g, int samples)
{
    double md = 0, mf = 0;
    int all = (size_t)samples >= n;
    for (int s = 0; s < (all ? (int)n : samples); s++) {
        size_t i = all ? (size_t)s : (size_t)uni(0, (double)n);
        double x0 = x[i], h = 1e-6 * (fabs(x0) > 1 ? fabs(x0) : 1);
        x[i] = x0 + h; double lp = loss(ctx);
        x[i] = x0 - h; double lm = loss(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h);
        double d = fabs(g[i] - fd);
        if (isnan(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs(fd) > mf) mf = fabs(fd);
    }
    return md / (mf > 1e-30 ? mf : 1e-30);
}

#define TOL_FWD 2e-5
#define TOL_BWD 2e-4

/* ------------------------------------------------------------ colsum, embedding */

static void test_colsum_embedding(void)
{
    size_t N = 5; int C = 20, V = 7;
    float *a = rnd(N * C, -1, 1), *b = rnd(N * C, -1, 1), *g = rnd(C, -1, 1), *g0 = malloc(C * sizeof *g0);
    memcpy(g0, g, C * sizeof *g);
    colsum_acc(g, a, b, N, C);
    double md = 0;
    for (int c = 0; c < C; c++) {
        double s = g0[c];
        for (size_t n = 0; n < N; n++) s += (double)a[n * C + c] * b[n * C + c];
        md = fmax(md, fabs(g[c] - s));
    }
    CHECK(md < 1e-5, "colsum_acc: sum of products added to dvec (max err %.2e)", md);

    int32_t tok[5] = { 3, 0, 3, 6, 3 };
    float *emb = rnd((size_t)V * C, -1, 1), *out = zeros(N * C), *demb = zeros((size_t)V * C);
    embedding_fwd(out, tok, emb, N, C);
    int same = 1;
    for (size_t n = 0; n < N; n++) same &= !memcmp(out + n * C, emb + (size_t)tok[n] * C, C * sizeof(float));
    CHECK(same, "embedding_fwd copies the token rows");
    embedding_bwd(demb, a, tok, N, C);
    md = 0;
    for (int v = 0; v < V; v++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (size_t n = 0; n < N; n++) if (tok[n] == v) s += a[n * C + c];
            md = fmax(md, fabs(demb[(size_t)v * C + c] - s));
        }
    CHECK(md < 1e-6, "embedding_bwd adds d out into the rows of repeated tokens (max err %.2e)", md);
    free(a); free(b); free(g); free(g0); free(emb); free(out); free(demb);
}

/* ------------------------------------------------------------ layernorm */

typedef struct { size_t N; int C; double *x, *w, *b, *R; float *out_f; } LnCtx;
static double ln_ref(LnCtx *k, double *out)
{
    double L = 0;
    for (size_t n = 0; n < k->N; n++) {
        const double *x = k->x + n * k->C;
        double mu = 0, var = 0;
        for (int c = 0; c < k->C; c++) mu += x[c];
        mu /= k->C;
        for (int c = 0; c < k->C; c++) var += (x[c] - mu) * (x[c] - mu);
        var /= k->C;
        for (int c = 0; c < k->C; c++) {
            double y = (x[c] - mu) / sqrt(var + 1e-5) * k->w[c] + k->b[c];
            if (out) out[n * k->C + c] = y;
            L += k->R[n * k->C + c] * y;
        }
    }
    return L;
}
static double ln_loss(void *c) { return ln_ref(c, NULL); }

static void test_layernorm(void)
{
    size_t N = 6; int C = 20;
    float *x = rnd(N * C, -2, 2), *w = rnd(C, 0.5, 1.5), *b = rnd(C, -0.3, 0.3), *R = rnd(N * C, -1, 1);
    float *out = zeros(N * C), *mean = zeros(N), *rstd = zeros(N), *dx = zeros(N * C), *scr = zeros(N * C);
    float *dw = zeros(C), *db = zeros(C);
    LnCtx k = { N, C, dbl(x, N * C), dbl(w, C), dbl(b, C), dbl(R, N * C), NULL };
    double *ref = malloc(N * C * sizeof *ref);
    ln_ref(&k, ref);
    layernorm_fwd(out, mean, rstd, x, w, b, N, C, 1e-5f);
    CHECK(relerr_fd(out, ref, N * C) < TOL_FWD, "layernorm_fwd vs double (rel err %.2e)", relerr_fd(out, ref, N * C));
    layernorm_bwd(dx, dw, db, scr, R, x, w, mean, rstd, N, C, 0);
    double ex = fd_check(ln_loss, &k, k.x, N * C, dx, 1000), ew = fd_check(ln_loss, &k, k.w, C, dw, 1000),
           eb = fd_check(ln_loss, &k, k.b, C, db, 1000);
    CHECK(ex < TOL_BWD && ew < TOL_BWD && eb < TOL_BWD, "layernorm_bwd vs central differences (dx %.2e, dw %.2e, db %.2e)",
          ex, ew, eb);
    /* accumulate: the residual's gradient already in dinp is kept */
    float *dx2 = malloc(N * C * sizeof *dx2);
    for (size_t i = 0; i < N * C; i++) dx2[i] = 1.0f;
    layernorm_bwd(dx2, dw, db, scr, R, x, w, mean, rstd, N, C, 1);
    int okacc = 1;
    for (size_t i = 0; i < N * C; i++) okacc &= dx2[i] == 1.0f + dx[i];
    CHECK(okacc, "layernorm_bwd accumulate adds to dinp");
    free(x); free(w); free(b); free(R); free(out); free(mean); free(rstd); free(dx); free(scr); free(dw); free(db);
    free(dx2); free(k.x); free(k.w); free(k.b); free(k.R); free(ref);
}

/* ------------------------------------------------------------ shift mix */

typedef struct { int B, T, C; double *h, *mu[2], *R[2], *init; } SmCtx;
static double sm_ref(SmCtx *k, double *out0)
{
    double L = 0;
    for (int b = 0; b < k->B; b++)
        for (int t = 0; t < k->T; t++)
            for (int c = 0; c < k->C; c++) {
                size_t n = ((size_t)b * k->T + t) * k->C + c;
                double prev = t ? k->h[n - k->C] : (k->init ? k->init[c] : 0);
                for (int i = 0; i < 2; i++) {
                    double o = k->h[n] + (prev - k->h[n]) * k->mu[i][c];
                    if (out0 && i == 0) out0[n] = o;
                    L += k->R[i][n] * o;
                }
            }
    return L;
}
static double sm_loss(void *c) { return sm_ref(c, NULL); }

static void test_shift_mix(void)
{
    int B = 2, T = 3, C = 20;
    size_t n = (size_t)B * T * C;
    float *h = rnd(n, -1, 1), *mu0 = rnd(C, 0, 1), *mu1 = rnd(C, 0, 1), *init = rnd(C, -1, 1);
    float *R0 = rnd(n, -1, 1), *R1 = rnd(n, -1, 1), *o0 = zeros(n), *o1 = zeros(n);
    float *dh = zeros(n), *dmu0 = zeros(C), *dmu1 = zeros(C), *scr = zeros(n);
    const float *mu[2] = { mu0, mu1 };
    float *out[2] = { o0, o1 }, *dout[2] = { R0, R1 }, *dmu[2] = { dmu0, dmu1 };
    SmCtx k = { B, T, C, dbl(h, n), { dbl(mu0, C), dbl(mu1, C) }, { dbl(R0, n), dbl(R1, n) }, NULL };
    double *ref = malloc(n * sizeof *ref);
    shift_mix_fwd(out, h, NULL, mu, 2, B, T, C);
    sm_ref(&k, ref);
    CHECK(relerr_fd(o0, ref, n) < TOL_FWD, "shift_mix_fwd, zero initial shift (rel err %.2e)", relerr_fd(o0, ref, n));
    shift_mix_bwd(dh, dmu, scr, dout, h, mu, 2, B, T, C);
    double eh = fd_check(sm_loss, &k, k.h, n, dh, 1000), e0 = fd_check(sm_loss, &k, k.mu[0], C, dmu0, 100),
           e1 = fd_check(sm_loss, &k, k.mu[1], C, dmu1, 100);
    CHECK(eh < TOL_BWD && e0 < TOL_BWD && e1 < TOL_BWD, "shift_mix_bwd vs central differences (dh %.2e, dmu %.2e %.2e)",
          eh, e0, e1);
    k.init = dbl(init, C);
    shift_mix_fwd(out, h, init, mu, 2, 1, T, C);   /* B == 1 with a carried shift (recurrent mode) */
    k.B = 1;
    sm_ref(&k, ref);
    CHECK(relerr_fd(o0, ref, (size_t)T * C) < TOL_FWD, "shift_mix_fwd with an initial shift");
    free(h); free(mu0); free(mu1); free(init); free(R0); free(R1); free(o0); free(o1); free(dh); free(dmu0);
    free(dmu1); free(scr); free(k.h); free(k.mu[0]); free(k.mu[1]); free(k.R[0]); free(k.R[1]); free(k.init); free(ref);
}

/* ------------------------------------------------------------ elementwise activations */

static void test_activations(void)
{
    size_t n = 37;
    float *x = rnd(n, -4, 4), *y = malloc(n * sizeof *y), *d = rnd(n, -1, 1), *d2 = malloc(n * sizeof *d2);
    double e1 = 0, e2 = 0, e3 = 0, e4 = 0, e5 = 0, e6 = 0;
    memcpy(y, x, n * sizeof *y); tanh_fwd(y, n);
    for (size_t i = 0; i < n; i++) e1 = fmax(e1, fabs(y[i] - tanh((double)x[i])));
    memcpy(d2, d, n * sizeof *d); tanh_bwd(d2, y, n);
    for (size_t i = 0; i < n; i++) e2 = fmax(e2, fabs(d2[i] - d[i] * (1 - tanh((double)x[i]) * tanh((double)x[i]))));
    memcpy(y, x, n * sizeof *y); sigmoid_fwd(y, n);
    for (size_t i = 0; i < n; i++) e3 = fmax(e3, fabs(y[i] - 1 / (1 + exp(-(double)x[i]))));
    memcpy(d2, d, n * sizeof *d); sigmoid_bwd(d2, y, n);
    for (size_t i = 0; i < n; i++) { double s = 1 / (1 + exp(-(double)x[i])); e4 = fmax(e4, fabs(d2[i] - d[i] * s * (1 - s))); }
    memcpy(y, x, n * sizeof *y); relu_sq_fwd(y, n);
    for (size_t i = 0; i < n; i++) { double r = x[i] > 0 ? x[i] : 0; e5 = fmax(e5, fabs(y[i] - r * r) / 16); }
    memcpy(d2, d, n * sizeof *d); relu_sq_bwd(d2, y, n);
    for (size_t i = 0; i < n; i++) e6 = fmax(e6, fabs(d2[i] - d[i] * 2 * (x[i] > 0 ? x[i] : 0)));
    CHECK(e1 < 1e-6 && e2 < 1e-6, "tanh_fwd/bwd (%.2e, %.2e)", e1, e2);
    CHECK(e3 < 1e-6 && e4 < 1e-6, "sigmoid_fwd/bwd (%.2e, %.2e)", e3, e4);
    CHECK(e5 < 1e-6 && e6 < 1e-5, "relu_sq_fwd/bwd (%.2e, %.2e)", e5, e6);
    free(x); free(y); free(d); free(d2);
}

/* ------------------------------------------------------------ value residual */

typedef struct { size_t n; double *pre, *v, *vf, *R; } VrCtx;
static double vr_ref(VrCtx *k, double *vm)
{
    double L = 0;
    for (size_t i = 0; i < k->n; i++) {
        double g = 1 / (1 + exp(-k->pre[i])), o = k->v[i] + (k->vf[i] - k->v[i]) * g;
        if (vm) vm[i] = o;
        L += k->R[i] * o;
    }
    return L;
}
static double vr_loss(void *c) { return vr_ref(c, NULL); }

static void test_value_residual(void)
{
    size_t n = 50;
    float *pre = rnd(n, -3, 3), *v = rnd(n, -1, 1), *vf = rnd(n, -1, 1), *R = rnd(n, -1, 1);
    float *gate = malloc(n * sizeof *gate), *vm = zeros(n), *dv = zeros(n), *dvf = zeros(n), *dpre = zeros(n);
    memcpy(gate, pre, n * sizeof *gate);
    VrCtx k = { n, dbl(pre, n), dbl(v, n), dbl(vf, n), dbl(R, n) };
    double *ref = malloc(n * sizeof *ref);
    vr_ref(&k, ref);
    value_residual_fwd(vm, gate, v, vf, n);
    CHECK(relerr_fd(vm, ref, n) < TOL_FWD, "value_residual_fwd (rel err %.2e)", relerr_fd(vm, ref, n));
    value_residual_bwd(dv, dvf, dpre, R, gate, v, vf, n);
    double e1 = fd_check(vr_loss, &k, k.v, n, dv, 100), e2 = fd_check(vr_loss, &k, k.vf, n, dvf, 100),
           e3 = fd_check(vr_loss, &k, k.pre, n, dpre, 100);
    CHECK(e1 < TOL_BWD && e2 < TOL_BWD && e3 < TOL_BWD, "value_residual_bwd vs central differences (%.2e %.2e %.2e)",
          e1, e2, e3);
    value_first_bwd(dv, R, dvf, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= dv[i] == R[i] + dvf[i];
    CHECK(ok, "value_first_bwd: dv = dvm + dvfirst");
    free(pre); free(v); free(vf); free(R); free(gate); free(vm); free(dv); free(dvf); free(dpre);
    free(k.pre); free(k.v); free(k.vf); free(k.R); free(ref);
}

/* ------------------------------------------------------------ key prep */

typedef struct { size_t N; int H; double *k, *a, *kk_w, *ka_w, *R1, *R2; } KpCtx;
static double kp_ref(KpCtx *c, double *kk, double *kp)
{
    double L = 0;
    int C = c->H * HS;
    for (size_t n = 0; n < c->N; n++)
        for (int h = 0; h < c->H; h++) {
            size_t base = n * C + (size_t)h * HS;
            double ss = 0;
            for (int j = 0; j < HS; j++) { double u = c->k[base + j] * c->kk_w[h * HS + j]; ss += u * u; }
            double inv = 1 / fmax(sqrt(ss), 1e-12);
            for (int j = 0; j < HS; j++) {
                size_t i = base + j;
                double q = c->k[i] * c->kk_w[h * HS + j] * inv, p = c->k[i] * (1 + (c->a[i] - 1) * c->ka_w[h * HS + j]);
                if (kk) { kk[i] = q; kp[i] = p; }
                L += c->R1[i] * q + c->R2[i] * p;
            }
        }
    return L;
}
static double kp_loss(void *c) { return kp_ref(c, NULL, NULL); }

static void test_keyprep(void)
{
    size_t N = 3; int H = 2, C = H * HS;
    size_t n = N * C;
    float *k = rnd(n, -1, 1), *a = rnd(n, 0, 1), *kkw = rnd(C, 0.4, 1), *kaw = rnd(C, 0.7, 1.3);
    float *R1 = rnd(n, -1, 1), *R2 = rnd(n, -1, 1), *kk = zeros(n), *kp = zeros(n), *inv = zeros(N * H);
    float *dk = zeros(n), *da = zeros(n), *dkkw = zeros(C), *dkaw = zeros(C), *s1 = zeros(n), *s2 = zeros(n);
    KpCtx c = { N, H, dbl(k, n), dbl(a, n), dbl(kkw, C), dbl(kaw, C), dbl(R1, n), dbl(R2, n) };
    double *rkk = malloc(n * sizeof *rkk), *rkp = malloc(n * sizeof *rkp);
    kp_ref(&c, rkk, rkp);
    keyprep_fwd(kk, kp, inv, k, a, kkw, kaw, N, H);
    CHECK(relerr_fd(kk, rkk, n) < TOL_FWD && relerr_fd(kp, rkp, n) < TOL_FWD, "keyprep_fwd (kk %.2e, k' %.2e)",
          relerr_fd(kk, rkk, n), relerr_fd(kp, rkp, n));
    keyprep_bwd(dk, da, dkkw, dkaw, s1, s2, R1, R2, k, a, kk, inv, kkw, kaw, N, H);
    double e1 = fd_check(kp_loss, &c, c.k, n, dk, 200), e2 = fd_check(kp_loss, &c, c.a, n, da, 200),
           e3 = fd_check(kp_loss, &c, c.kk_w, C, dkkw, 200), e4 = fd_check(kp_loss, &c, c.ka_w, C, dkaw, 200);
    CHECK(e1 < TOL_BWD && e2 < TOL_BWD && e3 < TOL_BWD && e4 < TOL_BWD,
          "keyprep_bwd vs central differences (dk %.2e, da %.2e, dk_k %.2e, dk_a %.2e)", e1, e2, e3, e4);
    free(k); free(a); free(kkw); free(kaw); free(R1); free(R2); free(kk); free(kp); free(inv); free(dk); free(da);
    free(dkkw); free(dkaw); free(s1); free(s2); free(c.k); free(c.a); free(c.kk_w); free(c.ka_w); free(c.R1); free(c.R2);
    free(rkk); free(rkp);
}

/* ------------------------------------------------------------ WKV7 */

typedef struct { int B, T, H; double *r, *w, *k, *v, *kk, *a, *R; } WkvCtx;
static double wkv_ref(WkvCtx *c, double *y)
{
    int C = c->H * HS;
    double L = 0, S[HS][HS];
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++) {
            memset(S, 0, sizeof S);
            for (int t = 0; t < c->T; t++) {
                size_t base = ((size_t)b * c->T + t) * C + (size_t)h * HS;
                double d[HS];
                for (int j = 0; j < HS; j++) d[j] = exp(-exp(-0.5) / (1 + exp(-c->w[base + j])));
                for (int i = 0; i < HS; i++) {
                    double sa = 0, yi = 0;
                    for (int j = 0; j < HS; j++) sa += S[i][j] * -c->kk[base + j];
                    for (int j = 0; j < HS; j++) {
                        S[i][j] = S[i][j] * d[j] + sa * c->kk[base + j] * c->a[base + j] + c->v[base + i] * c->k[base + j];
                        yi += S[i][j] * c->r[base + j];
                    }
                    if (y) y[base + i] = yi;
                    L += c->R[base + i] * yi;
                }
            }
        }
    return L;
}
static double wkv_loss(void *c) { return wkv_ref(c, NULL); }

static void test_wkv7(void)
{
    int B = 2, T = 19, H = 1, C = H * HS;   /* T crosses a 16-step chunk and ends mid-chunk */
    size_t n = (size_t)B * T * C;
    float *r = rnd(n, -1, 1), *w = rnd(n, -4, 3), *k = rnd(n, -0.5, 0.5), *v = rnd(n, -1, 1), *a = rnd(n, 0, 1);
    float *kk = zeros(n), *R = rnd(n, -1, 1), *y = zeros(n);
    for (size_t row = 0; row < (size_t)B * T * H; row++) {   /* kk: unit vectors per head, as key prep makes */
        float *p = kk + row * HS;
        double s = 0;
        for (int j = 0; j < HS; j++) { p[j] = (float)uni(-1, 1); s += (double)p[j] * p[j]; }
        for (int j = 0; j < HS; j++) p[j] = (float)(p[j] / sqrt(s));
    }
    WkvCtx c = { B, T, H, dbl(r, n), dbl(w, n), dbl(k, n), dbl(v, n), dbl(kk, n), dbl(a, n), dbl(R, n) };
    double *ref = malloc(n * sizeof *ref);
    wkv_ref(&c, ref);
    float *ckpt = zeros(wkv7_ckpt_floats(B, T, H));
    wkv7_fwd(y, ckpt, NULL, r, w, k, v, kk, a, B, T, H);
    CHECK(relerr_fd(y, ref, n) < TOL_FWD, "wkv7_fwd vs double recurrence (rel err %.2e)", relerr_fd(y, ref, n));

    float *dr = zeros(n), *dw = zeros(n), *dk = zeros(n), *dv = zeros(n), *dkk = zeros(n), *da = zeros(n);
    float *scr = zeros(wkv7_bwd_scratch_floats(2));
    wkv7_bwd(dr, dw, dk, dv, dkk, da, scr, R, r, w, k, v, kk, a, ckpt, B, T, H, 2);
    double e[6] = { fd_check(wkv_loss, &c, c.r, n, dr, 60), fd_check(wkv_loss, &c, c.w, n, dw, 60),
                    fd_check(wkv_loss, &c, c.k, n, dk, 60), fd_check(wkv_loss, &c, c.v, n, dv, 60),
                    fd_check(wkv_loss, &c, c.kk, n, dkk, 60), fd_check(wkv_loss, &c, c.a, n, da, 60) };
    double em = 0;
    for (int i = 0; i < 6; i++) em = fmax(em, e[i]);
    CHECK(em < TOL_BWD, "wkv7_bwd vs central differences (r %.1e w %.1e k %.1e v %.1e kk %.1e a %.1e)",
          e[0], e[1], e[2], e[3], e[4], e[5]);

    /* the recurrent mode: two calls carrying the state give the one-call result */
    float *st = zeros((size_t)H * HS * HS), *y2 = zeros((size_t)T * C);
    int T1 = 7;
    wkv7_fwd(y2, NULL, st, r, w, k, v, kk, a, 1, T1, H);
    size_t off = (size_t)T1 * C;
    wkv7_fwd(y2 + off, NULL, st, r + off, w + off, k + off, v + off, kk + off, a + off, 1, T - T1, H);
    CHECK(relerr_fd(y2, ref, (size_t)T * C) < TOL_FWD, "wkv7_fwd: state carried across calls (rel err %.2e)",
          relerr_fd(y2, ref, (size_t)T * C));
    free(r); free(w); free(k); free(v); free(a); free(kk); free(R); free(y); free(ckpt); free(dr); free(dw); free(dk);
    free(dv); free(dkk); free(da); free(scr); free(st); free(y2); free(ref);
    free(c.r); free(c.w); free(c.k); free(c.v); free(c.kk); free(c.a); free(c.R);
}

/* ------------------------------------------------------------ GroupNorm + bonus + gate */

typedef struct { size_t N; int H; double *y, *r, *kp, *vm, *g, *lw, *lb, *rk, *R; } GnCtx;
static double gn_ref(GnCtx *c, double *out)
{
    int C = c->H * HS;
    double L = 0;
    for (size_t n = 0; n < c->N; n++)
        for (int h = 0; h < c->H; h++) {
            size_t base = n * C + (size_t)h * HS;
            double mu = 0, var = 0, s = 0;
            for (int j = 0; j < HS; j++) mu += c->y[base + j];
            mu /= HS;
            for (int j = 0; j < HS; j++) var += (c->y[base + j] - mu) * (c->y[base + j] - mu);
            var /= HS;
            for (int j = 0; j < HS; j++) s += c->r[base + j] * c->kp[base + j] * c->rk[h * HS + j];
            for (int j = 0; j < HS; j++) {
                size_t i = base + j;
                int ch = h * HS + j;
                double o = ((c->y[i] - mu) / sqrt(var + 64e-5) * c->lw[ch] + c->lb[ch] + s * c->vm[i]) * c->g[i];
                if (out) out[i] = o;
                L += c->R[i] * o;
            }
        }
    return L;
}
static double gn_loss(void *c) { return gn_ref(c, NULL); }

static void test_gn_bonus_gate(void)
{
    size_t N = 3; int H = 2, C = H * HS;
    size_t n = N * C;
    float *y = rnd(n, -1, 1), *r = rnd(n, -1, 1), *kp = rnd(n, -1, 1), *vm = rnd(n, -1, 1), *g = rnd(n, -1, 1);
    float *lw = rnd(C, 0.5, 1.5), *lb = rnd(C, -0.3, 0.3), *rk = rnd(C, -0.5, 0.5), *R = rnd(n, -1, 1);
    float *out = zeros(n), *mean = zeros(N * H), *rstd = zeros(N * H), *bonus = zeros(N * H);
    float *dy = zeros(n), *dr = zeros(n), *dkp = zeros(n), *dvm = zeros(n), *dg = zeros(n);
    float *dlw = zeros(C), *dlb = zeros(C), *drk = zeros(C), *s1 = zeros(n), *s2 = zeros(n), *dout = malloc(n * sizeof *dout);
    GnCtx c = { N, H, dbl(y, n), dbl(r, n), dbl(kp, n), dbl(vm, n), dbl(g, n), dbl(lw, C), dbl(lb, C), dbl(rk, C),
                dbl(R, n) };
    double *ref = malloc(n * sizeof *ref);
    gn_ref(&c, ref);
    gn_bonus_gate_fwd(out, mean, rstd, bonus, y, r, kp, vm, g, lw, lb, rk, N, H);
    CHECK(relerr_fd(out, ref, n) < TOL_FWD, "gn_bonus_gate_fwd (rel err %.2e)", relerr_fd(out, ref, n));
    memcpy(dout, R, n * sizeof *dout);
    gn_bonus_gate_bwd(dy, dr, dkp, dvm, dg, dlw, dlb, drk, dout, s1, s2, y, r, kp, vm, g, mean, rstd, bonus,
                      lw, lb, rk, N, H);
    double e[8] = { fd_check(gn_loss, &c, c.y, n, dy, 200), fd_check(gn_loss, &c, c.r, n, dr, 200),
                    fd_check(gn_loss, &c, c.kp, n, dkp, 200), fd_check(gn_loss, &c, c.vm, n, dvm, 200),
                    fd_check(gn_loss, &c, c.g, n, dg, 200), fd_check(gn_loss, &c, c.lw, C, dlw, 200),
                    fd_check(gn_loss, &c, c.lb, C, dlb, 200), fd_check(gn_loss, &c, c.rk, C, drk, 200) };
    double em = 0;
    for (int i = 0; i < 8; i++) em = fmax(em, e[i]);
    CHECK(em < TOL_BWD, "gn_bonus_gate_bwd vs central differences (worst %.2e)", em);
    free(y); free(r); free(kp); free(vm); free(g); free(lw); free(lb); free(rk); free(R); free(out); free(mean);
    free(rstd); free(bonus); free(dy); free(dr); free(dkp); free(dvm); free(dg); free(dlw); free(dlb); free(drk);
    free(s1); free(s2); free(dout); free(ref);
    free(c.y); free(c.r); free(c.kp); free(c.vm); free(c.g); free(c.lw); free(c.lb); free(c.rk); free(c.R);
}

/* ------------------------------------------------------------ cross entropy + L2Wrap */

static void test_xent(void)
{
    size_t N = 4, R = 9; int V = 50;
    float *z = rnd(N * V, -6, 6), *zg = malloc(N * V * sizeof *zg);
    int32_t y[4] = { 3, 49, 0, 17 };
    z[2 * V + 10] = z[2 * V + 30] = 9.0f;   /* row 2: a tie at the maximum */
    memcpy(zg, z, N * V * sizeof *zg);
    double loss[4], loss2[4], el = 0, eg = 0;
    xent_l2wrap_fwd(loss, z, y, N, V);
    xent_l2wrap_fwdbwd(zg, loss2, y, N, R, V);
    for (size_t n = 0; n < N; n++) {
        const float *zr = z + n * V;
        double M = zr[0], s = 0;
        int am = 0;
        for (int c = 1; c < V; c++) if (zr[c] > M) { M = zr[c]; am = c; }
        for (int c = 0; c < V; c++) s += exp(zr[c] - M);
        double lse = log(s) + M;
        el = fmax(el, fabs(loss[n] - (lse - zr[y[n]])) + fabs(loss2[n] - loss[n]));
        for (int c = 0; c < V; c++) {
            double gr = exp(zr[c] - lse) / R - (c == y[n] ? 1.0 / R : 0) + (c == am ? M * 1e-4 / R : 0);
            eg = fmax(eg, fabs(zg[n * V + c] - gr));
        }
    }
    CHECK(el < 1e-5, "xent_l2wrap_fwd/fwdbwd loss vs double (max err %.2e)", el);
    CHECK(eg < 1e-7, "xent_l2wrap_fwdbwd gradient: softmax - onehot, + L2Wrap at the first argmax (max err %.2e)", eg);
    double tie_gap = zg[2 * V + 10] - zg[2 * V + 30];
    CHECK(fabs(tie_gap - 9.0 * 1e-4 / R) < 1e-7, "argmax tie: L2Wrap term at the lowest index only");

    /* D14: a NaN or +Inf logit reaches exp_neg as NaN; the row's loss is NaN,
     * with no float-to-int conversion of NaN (UBSan flags that) */
    float bad[2 * 50];
    for (int c = 0; c < 2 * V; c++) bad[c] = (float)(c % 7) * 0.1f;
    bad[5] = NAN;
    bad[V + 9] = INFINITY;
    int32_t yb[2] = { 1, 2 };
    double lb[2];
    xent_l2wrap_fwd(lb, bad, yb, 2, V);
    CHECK(isnan(lb[0]) && isnan(lb[1]), "NaN / +Inf logits give a NaN loss (%g, %g)", lb[0], lb[1]);
    xent_l2wrap_fwdbwd(bad, lb, yb, 2, 2, V);
    CHECK(isnan(lb[0]) && isnan(lb[1]), "... also with the gradient");
    /* very negative gaps underflow to 0 without UB (exponent clamped at -87) */
    float far[3] = { 0.0f, -200.0f, -1e30f };
    int32_t yf[1] = { 0 };
    double lf[1];
    xent_l2wrap_fwd(lf, far, yf, 1, 3);
    CHECK(fabs(lf[0]) < 1e-30, "exp of very negative logits is 0 (loss %g)", lf[0]);
    free(z); free(zg);
}

/* ------------------------------------------------------------ Adam */

static void test_adam(void)
{
    size_t n = 70001;   /* above the threaded split (65536), with a tail of the vector path */
    float *w = rnd(n, -1, 1), *m = rnd(n, -0.01, 0.01), *v = rnd(n, 0, 1e-4), *g = rnd(n, -1, 1);
    float *w0 = malloc(n * 4), *m0 = malloc(n * 4), *v0 = malloc(n * 4), *wb = zeros(n);
    memcpy(w0, w, n * 4); memcpy(m0, m, n * 4); memcpy(v0, v, n * 4);
    const float gs = 0.5f, lr = 1e-3f, b1 = 0.9f, b2 = 0.99f, eps = 1e-8f, wd = 0.01f;
    const float bc1 = (float)(1 - pow(0.9, 3)), bc2 = (float)(1 - pow(0.99, 3));
    double ew = 0, emv = 0, eb = 0;
    adam_update(w, m, v, wb, g, n, gs, lr, b1, b2, eps, bc1, bc2, wd, 1);
    for (size_t i = 0; i < n; i++) {
        double gi = (double)g[i] * gs, mi = b1 * (double)m0[i] + (1 - (double)b1) * gi;
        double vi = b2 * (double)v0[i] + (1 - (double)b2) * gi * gi;
        double up = mi / bc1 / (sqrt(vi / bc2) + eps) + wd * (double)w0[i];
        double nw = w0[i] - lr * up;
        ew = fmax(ew, fabs(w[i] - nw));
        emv = fmax(emv, fabs(m[i] - mi) + fabs(v[i] - vi) * 1e3);
        eb = fmax(eb, fabs(wb[i] - w[i]) / fmax(fabs(w[i]), 1e-30));
    }
    CHECK(ew < 1e-6 && emv < 1e-6, "adam_update (AdamW) vs double (w %.2e, m/v %.2e)", ew, emv);
    CHECK(eb <= 1.0 / 256, "adam_update: the bf16 copy is the new weight rounded (rel %.2e)", eb);
    free(w); free(m); free(v); free(g); free(w0); free(m0); free(v0); free(wb);
}

int main(void)
{
    test_colsum_embedding();
    test_layernorm();
    test_shift_mix();
    test_activations();
    test_value_residual();
    test_keyprep();
    test_wkv7();
    test_gn_bonus_gate();
    test_xent();
    test_adam();
    return check_done();
}
