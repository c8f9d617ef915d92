/* model6_test: the x060 model on the CPU (lib/model6.c through model.h).
 *  - every parameter tensor's gradient against a central finite difference
 *    of the loss along a random direction in that tensor (fp32, so a few
 *    percent; a wrong term in any backward formula is off by far more),
 *    T = 7 (not a multiple of 16), with and without ln0;
 *  - grad_cp (recomputed blocks) gives bitwise the same loss and gradient;
 *  - recurrent steps and a chunked prefill give the parallel logits;
 *  - model_state_reset, and the state layout model6_state_tensors reports. */
#define CHECK_VERBOSE
#include "check.h"
#include "model_test.h"
#include "model6.h"
#include "ops.h"
#include <omp.h>

static void randomize6(Model *m, uint64_t seed)
{
    tm_rng = seed * 0x2545F4914F6CDD1Dull + 1;
    for (int i = 0; i < m->layout.n; i++) {
        const ParamInfo *p = &m->layout.p[i];
        float *w = m->w + p->offset;
        const char *nm = p->name;
        int is_vec = p->ndim == 1 || (p->ndim == 3 && p->shape[0] == 1);
        double fan = p->ndim >= 2 ? (double)p->shape[p->ndim - 1] : 1;
        if (strstr(nm, "_w2")) fan = (double)p->shape[p->ndim - 2];
        for (size_t j = 0; j < p->numel; j++) {
            double u = tm_uniform();
            float v;
            if (strstr(nm, "emb.weight")) v = (float)(1.7 * u);
            else if (strstr(nm, "time_decay") && is_vec) v = (float)(-1.0 + 1.5 * u);
            else if (strstr(nm, "time_faaaa")) v = (float)(0.5 * u);
            else if (strstr(nm, "time_maa") && is_vec) v = (float)(0.5 + 0.5 * u);
            else if (is_vec && strstr(nm, ".weight")) v = (float)(1.0 + 0.3 * u);
            else if (is_vec && strstr(nm, ".bias")) v = (float)(0.3 * u);
            else v = (float)(1.7 * u / sqrt(fan));
            w[j] = v;
        }
    }
}

static int new6(Model *m, int no_ln0, uint64_t seed)
{
    ModelConfig c;
    Error e;
    if (config_default_x060(&c, 2, 128, 29, 64, &e)) { printf("config: %s\n", e.msg); return -1; }
    c.d_mix = 4;
    c.d_decay = 8;
    c.dim_ffn = 96;
    c.no_ln0 = no_ln0;
    if (tm_new(m, &c)) return -1;
    randomize6(m, seed);
    return 0;
}

static void tokens(int32_t *x, int32_t *y, int n, int V, uint64_t seed)
{
    tm_rng = seed;
    for (int i = 0; i < n; i++) {
        x[i] = (int32_t)((tm_uniform() + 1) * 0.5 * V) % V;
        y[i] = (int32_t)((tm_uniform() + 1) * 0.5 * V) % V;
    }
}

/* The function the backward differentiates, in double from the fp32 logits:
 * mean cross entropy plus L2Wrap's 1e-4/R times each row's max logit (its
 * gradient is what L2Wrap adds at the argmax). */
static double objective(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y, int R, float *logits)
{
    int V = m->cfg.vocab_size;
    model_forward_logits(m, w, x, logits);
    double J = 0;
    for (int n = 0; n < R; n++) {
        const float *z = logits + (size_t)n * V;
        double mx = z[0], s = 0;
        for (int c = 1; c < V; c++) mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < V; c++) s += exp(z[c] - mx);
        J += (log(s) + mx - z[y[n]]) / R + 1e-4 / R * mx;
    }
    return J;
}

static void grad_check(int no_ln0)
{
    enum { B = 2, T = 7 };
    Model m;
    Error e;
    if (new6(&m, no_ln0, 11 + no_ln0)) { CHECK(0, "model"); return; }
    int32_t x[B * T], y[B * T];
    tokens(x, y, B * T, m.cfg.vocab_size, 5);
    ModelWork *w = model_work_new(&m, B, T, 0, &e);
    CHECK(w != NULL, "work: %s", w ? "" : e.msg);
    if (!w) { tm_free(&m); return; }
    float *g = malloc(m.layout.total * sizeof *g), *dir = malloc(m.layout.total * sizeof *dir);
    float *logits = malloc((size_t)B * T * m.cfg.vocab_size * sizeof *logits);
    float loss = model_forward_backward(&m, w, x, y, g);
    CHECK(isfinite(loss), "no_ln0=%d loss %g finite", no_ln0, loss);
    int bad = 0;
    for (int i = 0; i < m.layout.n; i++) {
        const ParamInfo *p = &m.layout.p[i];
        float *wp = m.w + p->offset;
        double an = 0;
        for (size_t j = 0; j < p->numel; j++) {
            dir[j] = tm_uniform() > 0 ? 1.0f : -1.0f;
            an += (double)g[p->offset + j] * dir[j];
        }
        /* central differences at h and h/2, Richardson-combined: the h^2
         * curvature term cancels, so h can stay large enough for fp32 noise */
        float *save = malloc(p->numel * sizeof *save);
        memcpy(save, wp, p->numel * sizeof *save);
        double D[2];
        for (int k = 0; k < 2; k++) {
            double h = (k ? 0.5 : 1.0) * (p->numel > 1024 ? 4e-4 : 2e-3);
            for (size_t j = 0; j < p->numel; j++) wp[j] = save[j] + (float)h * dir[j];
            double lp = objective(&m, w, x, y, B * T, logits);
            for (size_t j = 0; j < p->numel; j++) wp[j] = save[j] - (float)h * dir[j];
            double lm = objective(&m, w, x, y, B * T, logits);
            D[k] = (lp - lm) / (2 * h);
        }
        memcpy(wp, save, p->numel * sizeof *save);
        free(save);
        double fd = (4 * D[1] - D[0]) / 3;
        int ok = fabs(fd - an) <= 0.025 * fabs(an) + 2e-4;
        if (!ok || strstr(p->name, "blocks.1.") == NULL)
            CHECK(ok, "no_ln0=%d %-28s analytic %+.6e finite-difference %+.6e", no_ln0, p->name, an, fd);
        bad += !ok;
    }
    CHECK(bad == 0, "no_ln0=%d: %d tensors off", no_ln0, bad);

    /* grad_cp: the same bits */
    ModelWork *wc = model_work_new(&m, B, T, 1, &e);
    float *g2 = malloc(m.layout.total * sizeof *g2);
    float loss2 = model_forward_backward(&m, wc, x, y, g2);
    CHECK(loss2 == loss && memcmp(g, g2, m.layout.total * sizeof *g) == 0, "no_ln0=%d grad_cp bitwise equal", no_ln0);
    model_work_free(wc);
    free(g2);
    free(logits);
    free(g);
    free(dir);
    model_work_free(w);
    tm_free(&m);
}

static void recurrent(int no_ln0)
{
    enum { T = 133 };   /* more than one prefill chunk (128) */
    Model m;
    Error e;
    if (new6(&m, no_ln0, 21)) { CHECK(0, "model"); return; }
    int V = m.cfg.vocab_size;
    int32_t x[T], y[T];
    tokens(x, y, T, V, 9);
    ModelWork *w = model_work_new(&m, 1, T, 0, &e);
    float *par = malloc((size_t)T * V * sizeof *par), *lg = malloc((size_t)V * sizeof *lg);
    model_forward_logits(&m, w, x, par);
    ModelState *s = model_state_new(&m, &e);
    CHECK(s != NULL && model6_owns(s), "x060 state");
    double worst = 0;
    for (int t = 0; t < T; t++) {
        model_step(&m, s, x[t], lg);
        double r = tm_relerr(lg, par + (size_t)t * V, V);
        if (!(r <= worst)) worst = r;
    }
    CHECK(worst < 1e-5, "no_ln0=%d step logits vs parallel: rel err %.3g", no_ln0, worst);
    /* the state after T steps vs after a prefill */
    float *a1, *f1, *s1, *a2, *f2, *s2;
    model6_state_tensors(s, &a1, &f1, &s1);
    size_t LC = (size_t)m.cfg.n_layer * m.cfg.n_embd;
    float *copy = malloc(LC * (2 + 64) * sizeof *copy);
    memcpy(copy, a1, LC * sizeof *copy);
    memcpy(copy + LC, f1, LC * sizeof *copy);
    memcpy(copy + 2 * LC, s1, LC * 64 * sizeof *copy);
    model_state_reset(s);
    CHECK(a1[0] == 0 && s1[5] == 0, "reset zeroes the state");
    CHECK(model_prefill(&m, s, x, T, lg, &e) == 0, "prefill");
    CHECK(tm_relerr(lg, par + (size_t)(T - 1) * V, V) < 1e-5, "no_ln0=%d prefill logits: rel err %.3g", no_ln0,
          tm_relerr(lg, par + (size_t)(T - 1) * V, V));
    model6_state_tensors(s, &a2, &f2, &s2);
    CHECK(tm_relerr(a2, copy, LC) < 1e-5 && tm_relerr(f2, copy + LC, LC) < 1e-5 && tm_relerr(s2, copy + 2 * LC, LC * 64) < 1e-4,
          "no_ln0=%d prefill state = stepped state (wkv rel err %.3g)", no_ln0, tm_relerr(s2, copy + 2 * LC, LC * 64));
    /* att x_prev is the ln1 output of the last token: equal to the last row the parallel pass normalised */
    CHECK(fabsf(a2[0]) > 0, "att shift holds the last ln1 output");
    free(copy);
    model_state_free(s);
    free(par);
    free(lg);
    model_work_free(w);
    tm_free(&m);
}

/* A bf16 checkpoint (emb and ln0 bf16 values): the recurrent mode rounds
 * LN0(emb) to bf16, as the rwkv pip package folds ln0 into a bf16 file's
 * emb; so its logits equal those of the same model without ln0 whose emb is
 * bf16(LN0(emb)), and differ from the unrounded parallel logits. */
static void ln0_fold_bf16(void)
{
    enum { T = 9 };
    Model m, f;
    Error e;
    if (new6(&m, 0, 31) || new6(&f, 1, 31)) { CHECK(0, "models"); return; }
    float *emb = model_param(&m, "emb.weight"), *lw = model_param(&m, "blocks.0.ln0.weight"), *lb = model_param(&m, "blocks.0.ln0.bias");
    int V = m.cfg.vocab_size, C = m.cfg.n_embd;
    for (int i = 0; i < m.layout.n; i++) {   /* same weights in both, ln0 aside */
        const ParamInfo *p = &m.layout.p[i];
        float *dst = model_param(&f, p->name);
        if (dst) memcpy(dst, m.w + p->offset, p->numel * sizeof *dst);
    }
    for (size_t i = 0; i < (size_t)V * C; i++) emb[i] = bf16_round(emb[i]);
    for (int i = 0; i < C; i++) { lw[i] = bf16_round(lw[i]); lb[i] = bf16_round(lb[i]); }
    float *mean = malloc((size_t)V * sizeof *mean), *rstd = malloc((size_t)V * sizeof *rstd);
    float *femb = model_param(&f, "emb.weight");
    layernorm_fwd(femb, mean, rstd, emb, lw, lb, (size_t)V, C, 1e-5f);
    for (size_t i = 0; i < (size_t)V * C; i++) femb[i] = bf16_round(femb[i]);
    int32_t x[T], y[T];
    tokens(x, y, T, V, 3);
    float *lm = malloc((size_t)V * sizeof *lm), *lf = malloc((size_t)T * V * sizeof *lf), *lp = malloc((size_t)T * V * sizeof *lp);
    ModelState *s = model_state_new(&m, &e);
    CHECK(model_prefill(&m, s, x, T, lm, &e) == 0, "prefill");
    ModelWork *wf = model_work_new(&f, 1, T, 0, &e), *wm = model_work_new(&m, 1, T, 0, &e);
    model_forward_logits(&f, wf, x, lf);
    model_forward_logits(&m, wm, x, lp);
    double folded = tm_relerr(lm, lf + (size_t)(T - 1) * V, V), plain = tm_relerr(lm, lp + (size_t)(T - 1) * V, V);
    CHECK(folded < 1e-5, "bf16 checkpoint: prefill logits = emb folded with ln0 in bf16 (rel err %.3g)", folded);
    CHECK(plain > 1e-4, "...which differ from the fp32 LN0 of the parallel mode (rel err %.3g)", plain);
    /* ln0 not a bf16 value: no rounding */
    lw[0] += 1e-4f;
    model_state_free(s);
    s = model_state_new(&m, &e);
    model_prefill(&m, s, x, T, lm, &e);
    model_forward_logits(&m, wm, x, lp);
    CHECK(tm_relerr(lm, lp + (size_t)(T - 1) * V, V) < 1e-5, "fp32 weights: no rounding (rel err %.3g)",
          tm_relerr(lm, lp + (size_t)(T - 1) * V, V));
    model_state_free(s);
    model_work_free(wf);
    model_work_free(wm);
    free(mean); free(rstd); free(lm); free(lf); free(lp);
    tm_free(&m);
    tm_free(&f);
}

/* The bits do not depend on the thread count (per-(batch, head) WKV, per-channel
 * sums in row order, GEMM blocks of whole rows or columns). */
static void threads(void)
{
    enum { B = 3, T = 21 };
    Model m;
    Error e;
    if (new6(&m, 0, 41)) { CHECK(0, "model"); return; }
    int32_t x[B * T], y[B * T];
    tokens(x, y, B * T, m.cfg.vocab_size, 13);
    float *g[2];
    float loss[2];
    setenv("OMP_NUM_THREADS", "1", 1);   /* taken as given by the work area's thread pick */
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k ? 3 : 1);
        ModelWork *w = model_work_new(&m, B, T, 0, &e);
        g[k] = malloc(m.layout.total * sizeof *g[k]);
        loss[k] = model_forward_backward(&m, w, x, y, g[k]);
        model_work_free(w);
    }
    CHECK(loss[0] == loss[1] && memcmp(g[0], g[1], m.layout.total * sizeof *g[0]) == 0,
          "1 and 3 threads: bitwise equal loss and gradient");
    free(g[0]);
    free(g[1]);
    tm_free(&m);
}

int main(void)
{
    threads();
    ln0_fold_bf16();
    grad_check(0);
    grad_check(1);
    recurrent(0);
    recurrent(1);
    return check_done();
}
