/* Parameter groups (RWKV-LM-V7 src/model.py configure_optimizers), one and two Adam steps against a
 * hand computation, AdamW decay, and global-norm clipping. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "layout.h"
#include "optim.h"
#include "tensors.h"

#include "check.h"

static int ends_with(const char *s, const char *t)
{
    size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

int main(void)
{
    Error e;
    ModelConfig c;
    Layout l;
    if (config_default(&c, 2, 64, 100, 64, &e) || layout_build(&c, &l, &e)) { printf("FAIL layout: %s\n", e.msg); return 1; }
    /* The decay group with wd > 0 is exactly emb, head, att.receptance/key/value/output, ffn.key/value. */
    const char *decay_suffix[] = { "att.receptance.weight", "att.key.weight", "att.value.weight",
                                   "att.output.weight", "ffn.key.weight", "ffn.value.weight" };
    int n2x = 0, ndecay = 0;
    for (int i = 0; i < l.n; i++) {
        const char *n = l.p[i].name;
        int want_decay = !strcmp(n, "emb.weight") || !strcmp(n, "head.weight");
        for (size_t k = 0; k < sizeof decay_suffix / sizeof *decay_suffix; k++) want_decay |= ends_with(n, decay_suffix[k]);
        ParamGroup g = param_group(&l.p[i], 0.001), g0 = param_group(&l.p[i], 0);
        if (ends_with(n, "att.w0")) {
            n2x++;
            CHECK(g == GROUP_LR_2X && g0 == GROUP_LR_2X, "%s should be lr_2x", n);
        } else if (want_decay) {
            ndecay++;
            CHECK(g == GROUP_DECAY, "%s should be decay", n);
            CHECK(g0 == GROUP_LR_1X, "%s with wd 0 should be lr_1x", n);
        } else
            CHECK(g == GROUP_LR_1X && g0 == GROUP_LR_1X, "%s should be lr_1x (got %s)", n, param_group_name(g));
    }
    CHECK(n2x == 2 && ndecay == 2 + 6 * 2, "group sizes 2x %d decay %d", n2x, ndecay);
    const ParamInfo *lnx = layout_find(&l, "blocks.0.ln1.weight"), *w1 = layout_find(&l, "blocks.0.att.w1");
    CHECK(lnx && param_group(lnx, 0.1) == GROUP_LR_1X, "1-D ln weight is lr_1x");
    CHECK(w1 && param_group(w1, 0.1) == GROUP_LR_1X, "LoRA w1 is lr_1x");
    CHECK(param_group_lr_scale(GROUP_LR_2X) == 2.0 && param_group_lr_scale(GROUP_DECAY) == 1.0, "scales");

    /* One Adam step by hand on a two-parameter layout: emb [2,1]... use a
     * hand-made layout: "blocks.0.att.w0" (2x) and "emb.weight" [2,2]. */
    ParamInfo ps[2] = {
        { .name = "blocks.0.att.w0", .ndim = 3, .shape = { 1, 1, 2 }, .numel = 2, .offset = 0, .layer = 0 },
        { .name = "emb.weight", .ndim = 2, .shape = { 2, 2 }, .numel = 4, .offset = 2, .layer = -1 },
    };
    Layout hl = { .p = ps, .n = 2, .total = 6 };
    float w[6] = { 0.5f, -0.25f, 1.0f, 2.0f, -3.0f, 0.125f };
    float g[6] = { 0.1f, -0.2f, 0.3f, 0.0f, -1e-3f, 4.0f };
    float m[6] = { 0 }, v[6] = { 0 };
    AdamConfig ac = { .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0, .grad_clip = 1.0 };
    double lr = 1e-3;
    float w_before[6];
    memcpy(w_before, w, sizeof w);
    adam_step(&hl, &ac, 1, lr, 1.0f, w, m, v, g, NULL);
    /* Step 1: m̂ = g, v̂ = g², so the step is lr_g * g/(|g| + eps), sign(g) * lr_g when g != 0. */
    for (int i = 0; i < 6; i++) {
        double lr_g = i < 2 ? 2 * lr : lr;
        double want = w_before[i] - (g[i] == 0 ? 0 : lr_g * g[i] / (fabs(g[i]) + 1e-8));
        CHECK(fabs(w[i] - want) <= 1e-7 * fmax(1, fabs(want)), "step1 w[%d] %.9g want %.9g", i, w[i], want);
        CHECK(fabsf(m[i] - 0.1f * g[i]) <= 1e-6f * fabsf(g[i]) && fabsf(v[i] - 0.01f * g[i] * g[i]) <= 1e-6f * g[i] * g[i], "moments %d", i);
    }
    /* Step 2 with a new gradient, by hand in double. */
    float g2[6] = { -0.05f, 0.3f, 0.3f, 1.0f, 0.0f, -4.0f };
    float w1s[6];
    memcpy(w1s, w, sizeof w);
    adam_step(&hl, &ac, 2, lr, 1.0f, w, m, v, g2, NULL);
    for (int i = 0; i < 6; i++) {
        double m1 = 0.1 * g[i], v1 = 0.01 * (double)g[i] * g[i];
        double m2 = 0.9 * m1 + 0.1 * g2[i], v2 = 0.99 * v1 + 0.01 * (double)g2[i] * g2[i];
        double mh = m2 / (1 - 0.81), vh = v2 / (1 - 0.9801);
        double lr_g = i < 2 ? 2 * lr : lr;
        double want = w1s[i] - lr_g * mh / (sqrt(vh) + 1e-8);
        CHECK(fabs(w[i] - want) <= 2e-7 * fmax(1, fabs(want)), "step2 w[%d] %.9g want %.9g", i, w[i], want);
    }
    /* AdamW: decay applies to emb.weight only, p -= lr*(update + wd*p). */
    float wd_w[6] = { 1, 1, 1, 1, 1, 1 }, zero_g[6] = { 0 }, m3[6] = { 0 }, v3[6] = { 0 };
    ac.weight_decay = 0.1;
    adam_step(&hl, &ac, 1, lr, 1.0f, wd_w, m3, v3, zero_g, NULL);
    CHECK(wd_w[0] == 1.0f && wd_w[1] == 1.0f, "no decay on att.w0");
    for (int i = 2; i < 6; i++) CHECK(fabsf(wd_w[i] - (float)(1 - lr * 0.1)) < 1e-7f, "decay on emb.weight: %.9g", wd_w[i]);

    /* A long tensor (vector path + scalar tail), both modes, with the bf16 copy:
     * against a plain float reference, and the copy exactly bf16_round(w). */
    {
        enum { N = 1003 };
        ParamInfo pl = { .name = "blocks.0.att.key.weight", .ndim = 2, .shape = { 17, 59 }, .numel = N, .offset = 0, .layer = 0 };
        Layout ll = { .p = &pl, .n = 1, .total = N };
        static float W[N], M[N], Vv[N], G[N], Bc[N], rw[N], rm[N], rv[N];
        for (int mode = 0; mode < 2; mode++) {
            AdamConfig a2 = { .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = mode ? 0.1 : 0, .grad_clip = 1 };
            for (int i = 0; i < N; i++) {
                W[i] = rw[i] = sinf((float)i) * 0.3f;
                M[i] = rm[i] = cosf((float)i) * 1e-3f;
                Vv[i] = rv[i] = 1e-6f * (float)(i % 11);
                G[i] = sinf(0.37f * (float)i) * 0.05f;
            }
            adam_step(&ll, &a2, 3, 1e-3, 0.5f, W, M, Vv, G, Bc);
            float bc1 = (float)(1.0 - pow((double)0.9f, 3.0)), bc2 = (float)(1.0 - pow((double)0.99f, 3.0));
            int bad_ref = 0, bad_copy = 0;
            for (int i = 0; i < N; i++) {
                double g1 = (double)G[i] * 0.5;   /* the betas as the float values the kernel uses */
                double m1 = (double)0.9f * rm[i] + (double)(1 - 0.9f) * g1, v1 = (double)0.99f * rv[i] + (double)(1 - 0.99f) * g1 * g1;
                double up = (m1 / bc1) / (sqrt(v1 / bc2) + 1e-8) + (mode ? 0.1 * rw[i] : 0);
                double want = rw[i] - 1e-3 * up;
                if (fabs(W[i] - want) > 1e-6 * fmax(1, fabs(want)) || fabs(M[i] - m1) > 1e-6 * (fabs(0.9 * rm[i]) + fabs(0.1 * g1))) { if (bad_ref++ < 3) printf("  i %d w %.9g want %.9g m %.9g want %.9g\n", i, W[i], want, M[i], m1); }
                if (Bc[i] != bf16_round(W[i])) bad_copy++;
            }
            CHECK(bad_ref == 0, "mode %d: %d elements differ from the reference", mode, bad_ref);
            CHECK(bad_copy == 0, "mode %d: %d bf16 copies differ from bf16_round", mode, bad_copy);
        }
    }

    /* Clipping: (norm + 1e-6)/clip > 1 scales by its inverse. */
    float gg[3] = { 3, 4, 0 };
    double nrm = grad_global_norm(gg, 3);
    CHECK(nrm == 5.0, "norm %g", nrm);
    CHECK(grad_clip_scale(5.0, 1.0) == (float)(1.0 / 5.000001), "clip scale %.9g", grad_clip_scale(5.0, 1.0));
    CHECK(grad_clip_scale(0.5, 1.0) == 1.0f, "no clip below 1");
    CHECK(grad_clip_scale(0.9999995, 1.0) == (float)(1.0 / 1.0000005), "clip kicks in at norm+1e-6 > 1");
    CHECK(grad_clip_scale(100, 0) == 1.0f, "clip 0 disables");
    layout_free(&l);
    return check_done();
}
