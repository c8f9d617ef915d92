/* model6_ref_test: the x060 model (lib/model6.c through model.h) against the
 * independent float64 PyTorch implementation tests/ref/x060.py on tiny random
 * models of several shapes (T not a multiple of 16, with and without ln0,
 * non-default LoRA ranks and dim_ffn): logits, loss and the gradient of every
 * parameter, each as max|c - ref| / max|ref| per tensor, bounded by 1e-4; and
 * the recurrent path (model_step token by token, model_prefill) against the
 * same logits.  Exit 77 when the build has no x060 model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "model_test.h"
#include "check.h"

#define TOL 1e-4

#ifndef MODEL_X060
int main(void)
{
    printf("this build has no x060 model (MODEL_X060 undefined)\n");
    return 77;
}
#else
static int not_built;   /* the x060 compute says it is not implemented: skip */

static void *slurp(const char *path, size_t want)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return NULL; }
    void *buf = malloc(want ? want : 1);
    size_t got = fread(buf, 1, want, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != want || extra) { fprintf(stderr, "%s: size mismatch (want %zu bytes)\n", path, want); free(buf); return NULL; }
    return buf;
}

/* Recurrent inference of sample 0 against the reference logits: every
 * position token by token, then a prefill of the whole sequence (last row). */
static void check_recurrent(const Model *m, int idx, const int32_t *x, const float *zref, int T)
{
    Error e;
    size_t V = m->cfg.vocab_size;
    ModelState *s = model_state_new(m, &e);
    if (!CHECK(s != NULL, "case %d: state: %s", idx, e.msg)) return;
    float *z = malloc(V * 4);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        model_step(m, s, x[t], z);
        double er = tm_relerr(z, zref + (size_t)t * V, V);
        if (!(er <= worst)) worst = er;
    }
    printf("case %d: model_step, %d tokens: worst logits rel err %.2e\n", idx, T, worst);
    CHECK(worst <= TOL, "case %d: model_step logits rel err %.2e", idx, worst);
    model_state_reset(s);
    int rc = model_prefill(m, s, x, T, z, &e);
    if (CHECK(rc == 0, "case %d: prefill: %s", idx, e.msg)) {
        double er = tm_relerr(z, zref + (size_t)(T - 1) * V, V);
        printf("case %d: model_prefill of %d tokens: last logits rel err %.2e\n", idx, T, er);
        CHECK(er <= TOL, "case %d: prefill logits rel err %.2e", idx, er);
        /* the state it leaves continues as model_step's would: one more token */
        float *z2 = malloc(V * 4);
        ModelState *s2 = model_state_new(m, &e);
        if (s2) {
            for (int t = 0; t < T; t++) model_step(m, s2, x[t], NULL);
            model_step(m, s2, x[0], z2);
            model_step(m, s, x[0], z);
            double ec = tm_relerr(z, z2, V);
            printf("case %d: one step after prefill vs after steps: rel err %.2e\n", idx, ec);
            CHECK(ec <= TOL, "case %d: state after prefill differs (%.2e)", idx, ec);
            model_state_free(s2);
        }
        free(z2);
    }
    free(z);
    model_state_free(s);
}

static void run_case(const char *py, const char *top, int idx, const char *args)
{
    char dir[64], cmd[1024], path[128];
    snprintf(dir, sizeof dir, "case%d", idx);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/ref/x060.py' %s %s", py, top, dir, args);
    if (!CHECK(system(cmd) == 0, "case %d: reference run failed: %s", idx, cmd)) return;

    ModelConfig c;
    memset(&c, 0, sizeof c);
    int B, T, ln0;
    snprintf(path, sizeof path, "%s/config.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "%d %d %d %d %d %d %d %d %d %d", &c.n_layer, &c.n_embd, &c.vocab_size, &c.n_head,
                     &c.d_mix, &c.d_decay, &c.dim_ffn, &ln0, &B, &T) != 10) {
        CHECK(0, "case %d: bad config", idx);
        if (f) fclose(f);
        return;
    }
    fclose(f);
    c.model_type = MODEL_X060;
    c.head_size = 64;
    c.no_ln0 = !ln0;
    Model m;
    if (!CHECK(tm_new(&m, &c) == 0, "case %d: alloc", idx)) return;
    /* the reference's parameter order (RWKV-LM's state_dict) must be the Layout order */
    snprintf(path, sizeof path, "%s/names.txt", dir);
    f = fopen(path, "r");
    char line[128];
    for (int i = 0; i < m.layout.n; i++) {
        if (!CHECK(f && fgets(line, sizeof line, f), "case %d: names.txt short", idx)) break;
        line[strcspn(line, "\n")] = 0;
        if (!CHECK(!strcmp(line, m.layout.p[i].name), "param %d is %s in the reference, %s in Layout", i, line, m.layout.p[i].name)) break;
    }
    CHECK(f && !fgets(line, sizeof line, f), "case %d: the reference has more parameters than Layout (%d)", idx, m.layout.n);
    if (f) fclose(f);

    size_t BT = (size_t)B * T, V = c.vocab_size, P = m.layout.total;
    snprintf(path, sizeof path, "%s/weights.f32", dir);
    float *w = slurp(path, P * 4);
    snprintf(path, sizeof path, "%s/x.i32", dir);
    int32_t *x = slurp(path, BT * 4);
    snprintf(path, sizeof path, "%s/y.i32", dir);
    int32_t *y = slurp(path, BT * 4);
    snprintf(path, sizeof path, "%s/logits.f32", dir);
    float *zref = slurp(path, BT * V * 4);
    snprintf(path, sizeof path, "%s/grad.f32", dir);
    float *gref = slurp(path, P * 4);
    double lref = NAN;
    snprintf(path, sizeof path, "%s/loss.txt", dir);
    f = fopen(path, "r");
    CHECK(f && fscanf(f, "%lf", &lref) == 1, "case %d: no loss.txt", idx);
    if (f) fclose(f);
    if (!CHECK(w && x && y && zref && gref, "case %d: reference outputs missing", idx)) goto out;
    memcpy(m.w, w, P * 4);

    Error e;
    ModelWork *W = model_work_new(&m, B, T, 0, &e);
    if (!W && strstr(e.msg, "not implemented")) { printf("%s\n", e.msg); not_built = 1; goto out; }
    if (!CHECK(W != NULL, "work: %s", e.msg)) goto out;
    float *z = malloc(BT * V * 4), *g = malloc(P * 4);
    model_forward_logits(&m, W, x, z);
    double el = tm_relerr(z, zref, BT * V);
    float loss = model_forward_backward(&m, W, x, y, g);
    double eloss = fabs(loss - lref) / fabs(lref);
    printf("case %d (%s): logits rel err %.2e, loss %.7f vs %.7f (rel %.2e)\n", idx, args, el, loss, lref, eloss);
    CHECK(el <= TOL, "case %d: logits rel err %.2e", idx, el);
    CHECK(eloss <= 1e-5, "case %d: loss rel err %.2e", idx, eloss);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.layout.n; i++) {
        const ParamInfo *p = &m.layout.p[i];
        double er = tm_relerr(g + p->offset, gref + p->offset, p->numel);
        double mx = 0;
        for (size_t j = 0; j < p->numel; j++) mx = fmax(mx, fabs(gref[p->offset + j]));
        /* The decay of token t first acts on y[t+1] through S[t], so with T <= 2
         * no decay reaches the loss (spec 3.3: gw is 0 at t = 0 and t = T-1). */
        size_t nl = strlen(p->name);
        int zero_ok = T <= 2 && (strstr(p->name, "time_decay") ||
                                 (nl >= 10 && !strcmp(p->name + nl - 10, "time_maa_w")));
        CHECK(zero_ok || mx != 0, "reference grad of %s is all zero (test too weak)", p->name);
        /* With T = 1, y = v (r.(u*k)) per head and the GroupNorm cancels that
         * scale up to its eps: r, k and u get a gradient ~1e-3 of the others'
         * made of cancelling terms.  torch's own fp32 autograd is 1.5e-3 off
         * there (measured on case 5), so those tensors get 1e-3. */
        double tol = TOL;
        if (T == 1 && (strstr(p->name, "att.receptance.") || strstr(p->name, "att.key.") ||
                       strstr(p->name, "att.time_maa_k") || strstr(p->name, "att.time_maa_r") ||
                       strstr(p->name, "att.time_faaaa")))
            tol = 1e-3;
        printf("  %-32s max|ref| %.3e  rel err %.2e%s\n", p->name, mx, er, er <= tol ? "" : "  <-- FAIL");
        CHECK(er <= tol, "case %d: gradient of %s rel err %.2e", idx, p->name, er);
        if (!(er <= worst)) { worst = er; worst_name = p->name; }
    }
    printf("case %d: worst gradient rel err %.2e (%s)\n", idx, worst, worst_name);
    model_work_free(W);
    check_recurrent(&m, idx, x, zref, T);
    free(z); free(g);
out:
    free(w); free(x); free(y); free(zref); free(gref);
    tm_free(&m);
}

int main(void)
{
    const char *py = getenv("PYTHON"), *top = getenv("TOP");
    if (!py) py = "/usr/bin/python3";
    if (!top) top = ".";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch, numpy' 2>/dev/null", py);
    if (system(cmd) != 0) { printf("python3-torch missing under %s\n", py); return 77; }
    static const char *cases[] = {
        "--layers 2 --embd 64 --vocab 100 --batch 2 --ctx 23 --seed 1",
        "--layers 3 --embd 128 --vocab 257 --ranks 16,24 --ln0 0 --batch 1 --ctx 37 --seed 2",
        "--layers 2 --embd 128 --vocab 300 --ranks 8,40 --ffn 192 --batch 2 --ctx 32 --seed 3",
        "--layers 2 --embd 64 --vocab 150 --ln0 0 --batch 3 --ctx 2 --seed 4",
        "--layers 2 --embd 64 --vocab 120 --ranks 64,128 --batch 1 --ctx 75 --seed 5",
        "--layers 2 --embd 64 --vocab 90 --batch 2 --ctx 1 --seed 6",
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]) && !not_built; i++) run_case(py, top, i, cases[i]);
    if (not_built) { printf("x060 compute not built: skipped\n"); return 77; }
    return check_done();
}
#endif
