/* adam_step_range (a data-parallel rank's shard of the update): over any split of the
 * parameters into ranges, crossing tensor boundaries, with each tensor's group (2x LR,
 * AdamW decay), it gives the bits adam_step gives on the whole. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "layout.h"
#include "optim.h"
#include "tensors.h"

#include "check.h"

static float uniform(void) { return (float)((double)rand() / RAND_MAX); }

int main(void)
{
    Error e;
    ModelConfig c;
    Layout l;
    if (config_default(&c, 2, 64, 100, 64, &e) || layout_build(&c, &l, &e)) { printf("FAIL layout: %s\n", e.msg); return 1; }
    size_t n = l.total;
    float *w = malloc(n * sizeof *w), *m = malloc(n * sizeof *m), *v = malloc(n * sizeof *v), *g = malloc(n * sizeof *g);
    float *w2 = malloc(n * sizeof *w), *m2 = malloc(n * sizeof *m), *v2 = malloc(n * sizeof *v);
    float *tw = malloc(n * sizeof *w), *tm = malloc(n * sizeof *m), *tv = malloc(n * sizeof *v);
    if (!w || !m || !v || !g || !w2 || !m2 || !v2 || !tw || !tm || !tv) { printf("FAIL out of memory\n"); return 1; }
    srand(7);
    for (size_t i = 0; i < n; i++) {
        w[i] = uniform() - 0.5f;
        g[i] = (uniform() - 0.5f) * 1e-2f;
        m[i] = (uniform() - 0.5f) * 1e-3f;
        v[i] = uniform() * 1e-5f;
    }
    AdamConfig ac = { .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-18, .weight_decay = 0.01, .grad_clip = 1.0 };
    memcpy(w2, w, n * sizeof *w); memcpy(m2, m, n * sizeof *m); memcpy(v2, v, n * sizeof *v);
    adam_step(&l, &ac, 3, 6e-4, 0.75f, w2, m2, v2, g, NULL);
    /* W ranks of ceil(n/W) elements (the CPU backend's split), and an odd split */
    for (size_t W = 1; W <= 7; W += 2) {
        size_t shard = (n + W - 1) / W;
        int same = 1;
        for (size_t r = 0; r < W; r++) {
            size_t lo = r * shard < n ? r * shard : n, hi = lo + shard < n ? lo + shard : n, k = hi - lo;
            memcpy(tw, w + lo, k * sizeof *w); memcpy(tm, m + lo, k * sizeof *m); memcpy(tv, v + lo, k * sizeof *v);
            adam_step_range(&l, &ac, 3, 6e-4, 0.75f, lo, hi, tw, tm, tv, g + lo);
            same &= !memcmp(tw, w2 + lo, k * sizeof *w) && !memcmp(tm, m2 + lo, k * sizeof *m)
                    && !memcmp(tv, v2 + lo, k * sizeof *v);
        }
        CHECK(same, "%zu ranges of %zu: the bits of adam_step", W, shard);
    }
    /* one element inside att.w0 (2x LR) and one in a decayed matrix */
    const ParamInfo *w0 = layout_find(&l, "blocks.1.att.w0"), *key = layout_find(&l, "blocks.0.att.key.weight");
    const ParamInfo *pick[] = { w0, key };
    for (int i = 0; i < 2; i++) {
        size_t at = pick[i]->offset + pick[i]->numel / 2;
        tw[0] = w[at]; tm[0] = m[at]; tv[0] = v[at];
        adam_step_range(&l, &ac, 3, 6e-4, 0.75f, at, at + 1, tw, tm, tv, g + at);
        CHECK(tw[0] == w2[at] && tm[0] == m2[at] && tv[0] == v2[at], "single element of %s", pick[i]->name);
    }
    free(w); free(m); free(v); free(g); free(w2); free(m2); free(v2); free(tw); free(tm); free(tv);
    layout_free(&l);
    return check_done();
}
