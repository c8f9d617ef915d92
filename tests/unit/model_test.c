/* model_test: self-consistency of lib/model.c on tiny random models, no
 * Python needed:
 *  - finite differences (double-sided) of loss+L2Wrap against the analytic
 *    gradient, along the gradient direction of whole tensors and on single
 *    elements;
 *  - recurrent mode (model_step) against the parallel forward, batch rows
 *    independent, model_prefill (several chunks) + model_step continuing;
 *  - grad_cp=1 gives bitwise the same loss and gradient as grad_cp=0;
 *  - repeat runs are bitwise identical; bad token ids are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "model_test.h"

#define CHECK_VERBOSE
#include "check.h"

/* loss + the L2Wrap potential 1e-4/(2R) * sum max^2, whose gradient is the L2Wrap term */
static double objective(const Model *m, ModelWork *W, const int32_t *x, const int32_t *y, size_t R, float *z)
{
    int V = m->cfg.vocab_size;
    model_forward_logits(m, W, x, z);
    double tot = 0;
    for (size_t n = 0; n < R; n++) {
        const float *zr = z + n * V;
        double M = zr[0], s = 0;
        for (int c = 1; c < V; c++) if (zr[c] > M) M = zr[c];
        for (int c = 0; c < V; c++) s += exp(zr[c] - M);
        tot += log(s) + M - zr[y[n]] + 1e-4 / 2 * M * M;
    }
    return tot / (double)R;
}

static void fd_checks(Model *m, ModelWork *W, const int32_t *x, const int32_t *y, size_t R,
                      const char *const *names, size_t nnames)
{
    size_t P = m->layout.total;
    float *g = malloc(P * 4), *z = malloc(R * m->cfg.vocab_size * 4), *save = malloc(P * 4);
    model_forward_backward(m, W, x, y, g);
    memcpy(save, m->w, P * 4);
    for (size_t t = 0; t < nnames; t++) {
        const ParamInfo *p = layout_find(&m->layout, names[t]);
        if (!p) { CHECK(0, "no parameter %s", names[t]); continue; }
        float *w = m->w + p->offset, *gp = g + p->offset;
        double norm = 0;
        size_t imax = 0;
        for (size_t j = 0; j < p->numel; j++) {
            norm += (double)gp[j] * gp[j];
            if (fabs(gp[j]) > fabs(gp[imax])) imax = j;
        }
        norm = sqrt(norm);
        /* directional derivative along g/|g| must equal |g| */
        double h = 1e-2, fp, fm;
        for (size_t j = 0; j < p->numel; j++) w[j] = (float)(save[p->offset + j] + h * gp[j] / norm);
        fp = objective(m, W, x, y, R, z);
        for (size_t j = 0; j < p->numel; j++) w[j] = (float)(save[p->offset + j] - h * gp[j] / norm);
        fm = objective(m, W, x, y, R, z);
        memcpy(w, save + p->offset, p->numel * 4);
        double fd = (fp - fm) / (2 * h), rel = fabs(fd - norm) / norm;
        CHECK(rel < 1e-2 && norm > 0, "%-26s directional: fd %.6e analytic %.6e rel %.1e", names[t], fd, norm, rel);
        /* the single element with the largest gradient */
        double he = 1e-2 * fmax(1.0, fabs(save[p->offset + imax]));
        w[imax] = (float)(save[p->offset + imax] + he);
        double hp = (double)w[imax] - save[p->offset + imax];
        fp = objective(m, W, x, y, R, z);
        w[imax] = (float)(save[p->offset + imax] - he);
        double hm = save[p->offset + imax] - (double)w[imax];
        fm = objective(m, W, x, y, R, z);
        w[imax] = save[p->offset + imax];
        fd = (fp - fm) / (hp + hm);
        rel = fabs(fd - gp[imax]) / fabs(gp[imax]);
        CHECK(rel < 3e-2, "%-26s element %zu: fd %.6e analytic %.6e rel %.1e", names[t], imax, fd, gp[imax], rel);
    }
    free(g); free(z); free(save);
}

static void recurrent_checks(Model *m)
{
    Error e;
    int V = m->cfg.vocab_size, T = 150, B = 2;
    int32_t *x = malloc((size_t)B * T * 4);
    for (int i = 0; i < B * T; i++) x[i] = (int32_t)((i * 7919u + 13) % (unsigned)V);
    ModelWork *W = model_work_new(m, B, T, 0, &e);
    float *zp = malloc((size_t)B * T * V * 4), *zs = malloc((size_t)T * V * 4), *zl = malloc((size_t)V * 4);
    model_forward_logits(m, W, x, zp);
    ModelState *s = model_state_new(m, &e);
    if (!W || !s) { CHECK(0, "alloc: %s", e.msg); return; }
    /* both batch rows, stepped one token at a time */
    for (int b = 0; b < B; b++) {
        model_state_reset(s);
        for (int t = 0; t < T; t++) model_step(m, s, x[b * T + t], zs + (size_t)t * V);
        double er = tm_relerr(zs, zp + (size_t)b * T * V, (size_t)T * V);
        CHECK(er < 2e-5, "recurrent vs parallel logits, sample %d, %d steps: rel err %.2e", b, T, er);
    }
    /* prefill of 140 tokens (two parallel chunks) then steps; vs stepping all */
    model_state_reset(s);
    int n1 = 140;
    if (model_prefill(m, s, x, n1, zl, &e)) CHECK(0, "prefill: %s", e.msg);
    double er = tm_relerr(zl, zp + (size_t)(n1 - 1) * V, V);
    CHECK(er < 2e-5, "prefill(%d) last logits vs parallel: rel err %.2e", n1, er);
    double worst = 0;
    for (int t = n1; t < T; t++) {
        model_step(m, s, x[t], zl);
        worst = fmax(worst, tm_relerr(zl, zp + (size_t)t * V, V));
    }
    CHECK(worst < 2e-5, "prefill + %d steps vs parallel: rel err %.2e", T - n1, worst);
    /* prefill on top of an existing state continues it: 30 steps, then prefill 50 more */
    model_state_reset(s);
    for (int t = 0; t < 30; t++) model_step(m, s, x[t], NULL);
    model_prefill(m, s, x + 30, 50, zl, &e);
    er = tm_relerr(zl, zp + (size_t)79 * V, V);
    CHECK(er < 2e-5, "steps(30) + prefill(50) vs parallel: rel err %.2e", er);
    int32_t bad = V;
    CHECK(model_prefill(m, s, &bad, 1, zl, &e) == -1 && strstr(e.msg, "vocabulary"), "prefill refuses token %d: %s", V, e.msg);
    model_step(m, s, -1, zl);
    CHECK(isnan(zl[0]), "model_step gives NaN logits for token -1");
    model_state_free(s);
    model_work_free(W);
    free(x); free(zp); free(zs); free(zl);
}

/* A vocabulary so large that the training head runs in several row chunks
 * (lib/model.c keeps at most 32M logits): loss and gradients must not notice. */
static void big_vocab_checks(void)
{
    Error e;
    ModelConfig c;
    int V = 300000, B = 2, T = 100;
    if (config_default(&c, 2, 64, V, 64, &e)) { CHECK(0, "config: %s", e.msg); return; }
    c.d_decay = c.d_aaa = c.d_mv = c.d_gate = 16;
    Model m;
    if (tm_new(&m, &c)) { CHECK(0, "alloc"); return; }
    tm_randomize(&m, 11);
    size_t R = (size_t)B * T;
    int32_t *x = malloc(R * 4), *y = malloc(R * 4);
    for (size_t i = 0; i < R; i++) { x[i] = (int32_t)((tm_uniform() + 1) * 0.5 * V); y[i] = (int32_t)((tm_uniform() + 1) * 0.5 * V); }
    ModelWork *W = model_work_new(&m, B, T, 0, &e);
    float *g = malloc(m.layout.total * 4), *z = malloc(R * V * 4);
    if (!W || !g || !z) { CHECK(0, "alloc"); return; }
    float loss = model_forward_backward(&m, W, x, y, g);
    model_forward_logits(&m, W, x, z);
    double ce = 0;
    for (size_t n = 0; n < R; n++) {
        const float *zr = z + n * V;
        double M = zr[0], s = 0;
        for (int k = 1; k < V; k++) if (zr[k] > M) M = zr[k];
        for (int k = 0; k < V; k++) s += exp(zr[k] - M);
        ce += log(s) + M - zr[y[n]];
    }
    ce /= (double)R;
    CHECK(fabs(loss - ce) / ce < 1e-6, "V=%d, %zu rows: chunked training loss %.7f = loss from full logits %.7f", V, R, loss, ce);
    free(g); free(z);
    static const char *names[] = { "head.weight", "ln_out.bias", "blocks.1.ffn.value.weight", "emb.weight" };
    fd_checks(&m, W, x, y, R, names, sizeof names / sizeof names[0]);
    model_work_free(W);
    free(x); free(y);
    tm_free(&m);
}

int main(void)
{
    Error e;
    ModelConfig c;
    if (config_default(&c, 2, 64, 97, 64, &e)) { printf("config: %s\n", e.msg); return 1; }
    c.d_decay = 8; c.d_aaa = 16; c.d_mv = 12; c.d_gate = 20;
    Model m;
    if (tm_new(&m, &c)) return 1;
    tm_randomize(&m, 7);
    int B = 2, T = 21;
    size_t R = (size_t)B * T, P = m.layout.total;
    int32_t *x = malloc(R * 4), *y = malloc(R * 4);
    for (size_t i = 0; i < R; i++) { x[i] = (int32_t)(tm_uniform() * 48 + 48); y[i] = (int32_t)(tm_uniform() * 48 + 48); }
    ModelWork *W0 = model_work_new(&m, B, T, 0, &e), *W1 = model_work_new(&m, B, T, 1, &e);
    if (!W0 || !W1) { printf("work: %s\n", e.msg); return 1; }

    static const char *names[] = { "emb.weight", "blocks.0.ln0.weight", "blocks.0.att.x_k", "blocks.0.att.w0",
                                   "blocks.0.att.w1", "blocks.1.att.a2", "blocks.1.att.v0", "blocks.1.att.v1",
                                   "blocks.0.att.g1", "blocks.1.att.k_k", "blocks.0.att.k_a", "blocks.1.att.r_k",
                                   "blocks.0.att.key.weight", "blocks.1.att.ln_x.bias", "blocks.1.ffn.x_k",
                                   "blocks.0.ffn.key.weight", "ln_out.weight", "head.weight" };
    fd_checks(&m, W0, x, y, R, names, sizeof names / sizeof names[0]);

    float *g0 = malloc(P * 4), *g1 = malloc(P * 4), *g2 = malloc(P * 4);
    float l0 = model_forward_backward(&m, W0, x, y, g0);
    float l1 = model_forward_backward(&m, W1, x, y, g1);
    CHECK(l0 == l1 && memcmp(g0, g1, P * 4) == 0, "grad_cp=1 bitwise equal to grad_cp=0 (loss %.7f)", l0);
    float l2 = model_forward_backward(&m, W0, x, y, g2);
    CHECK(l2 == l0 && memcmp(g0, g2, P * 4) == 0, "repeat run bitwise identical");
    float lf = model_forward_loss(&m, W0, x, y);
    CHECK(lf == l0, "model_forward_loss %.7f == forward_backward loss %.7f", lf, l0);
    const ParamInfo *v1 = layout_find(&m.layout, "blocks.0.att.v1");
    int zero = 1;
    for (size_t j = 0; v1 && j < v1->numel; j++) zero &= g0[v1->offset + j] == 0;
    CHECK(v1 && zero, "layer-0 v1 gradient is zero");
    y[3] = c.vocab_size;
    CHECK(isnan(model_forward_loss(&m, W0, x, y)), "target id %d out of range gives NaN", c.vocab_size);

    recurrent_checks(&m);
    big_vocab_checks();
    model_work_free(W0);
    model_work_free(W1);
    free(g0); free(g1); free(g2); free(x); free(y);
    tm_free(&m);
    return check_done();
}
