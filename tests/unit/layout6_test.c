/* layout6_test: the x060 layout (lib/layout.c) and optimizer groups (lib/optim.c).
 *  - parameter counts of the official sizes (rwkv6-reference 1.2, V = 65536);
 *  - the official 1B6 World file's tensors (names and shapes as released, typed
 *    here from the spec, [1,1,C] vectors) give L24 C2048 H32 F7168 and pass
 *    the strict layout check; one missing or reshaped tensor does not;
 *  - the default config (3.5 C rounded down to 32; LoRA 32/64) and validation;
 *  - configure_optimizers' groups for x060 names (time_decay 2x, its LoRA 1x)
 *    while x070's stay as they were. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "layout.h"
#include "optim.h"

static uint64_t count(int L, int C, int dm, int dd)
{
    ModelConfig c;
    Error e;
    if (config_default_x060(&c, L, C, 65536, 64, &e)) { printf("config: %s\n", e.msg); return 0; }
    if (dm) c.d_mix = dm;
    if (dd) c.d_decay = dd;
    return config_param_count(&c);
}

static char dummy[16];
static void add(TensorSet *ts, const char *name, int ndim, int64_t a, int64_t b, int64_t c)
{
    int64_t shape[3] = { a, b, c };
    Error e;
    if (!ts_add(ts, name, DT_BF16, ndim, shape, dummy, 0, 0, &e)) printf("ts_add %s: %s\n", name, e.msg);
}

/* RWKV-x060-World-1B6-v2.1-20240328-ctx4096.pth as rwkv6-reference 5.1 lists it */
static void official_1b6(TensorSet *ts, const char *skip, const char *flat)
{
    const int64_t C = 2048, F = 7168, V = 65536;
    char n[64];
    ts_init(ts);
    add(ts, "emb.weight", 2, V, C, 0);
    for (int l = 0; l < 24; l++) {
#define T(suffix, nd, a, b, c) do { snprintf(n, sizeof n, "blocks.%d." suffix, l); \
        if (skip && !strcmp(n, skip)) break; \
        if (flat && !strcmp(n, flat)) add(ts, n, 1, (int64_t)(a) * (b) * ((nd) == 3 ? (c) : 1), 0, 0); \
        else add(ts, n, nd, a, b, c); } while (0)
        T("ln1.weight", 1, C, 0, 0); T("ln1.bias", 1, C, 0, 0); T("ln2.weight", 1, C, 0, 0); T("ln2.bias", 1, C, 0, 0);
        if (l == 0) { T("ln0.weight", 1, C, 0, 0); T("ln0.bias", 1, C, 0, 0); }
        T("att.time_maa_x", 3, 1, 1, C); T("att.time_maa_w", 3, 1, 1, C); T("att.time_maa_k", 3, 1, 1, C);
        T("att.time_maa_v", 3, 1, 1, C); T("att.time_maa_r", 3, 1, 1, C); T("att.time_maa_g", 3, 1, 1, C);
        T("att.time_maa_w1", 2, C, 160, 0); T("att.time_maa_w2", 3, 5, 32, C);
        T("att.time_decay", 3, 1, 1, C); T("att.time_decay_w1", 2, C, 64, 0); T("att.time_decay_w2", 2, 64, C, 0);
        T("att.time_faaaa", 2, 32, 64, 0);
        T("att.receptance.weight", 2, C, C, 0); T("att.key.weight", 2, C, C, 0); T("att.value.weight", 2, C, C, 0);
        T("att.output.weight", 2, C, C, 0); T("att.gate.weight", 2, C, C, 0);
        T("att.ln_x.weight", 1, C, 0, 0); T("att.ln_x.bias", 1, C, 0, 0);
        T("ffn.time_maa_k", 3, 1, 1, C); T("ffn.time_maa_r", 3, 1, 1, C);
        T("ffn.key.weight", 2, F, C, 0); T("ffn.receptance.weight", 2, C, C, 0); T("ffn.value.weight", 2, C, F, 0);
#undef T
    }
    add(ts, "ln_out.weight", 1, C, 0, 0);
    add(ts, "ln_out.bias", 1, C, 0, 0);
    add(ts, "head.weight", 2, V, C, 0);
}

static int checks_file(const char *skip, const char *flat, char *msg, size_t n)
{
    TensorSet ts;
    official_1b6(&ts, skip, flat);
    ModelConfig c;
    Layout l = { 0 };
    Error e = { "" };
    int rc = config_from_tensors(&ts, &c, &e) || layout_build(&c, &l, &e) || layout_check_tensors(&l, &ts, &e);
    snprintf(msg, n, "%s", e.msg);
    if (l.p) layout_free(&l);
    ts_free(&ts);
    return rc ? -1 : 0;
}

static ParamGroup group(const char *name, int ndim, int64_t a, int64_t b, int64_t c, double wd)
{
    ParamInfo p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    p.ndim = ndim;
    p.shape[0] = a; p.shape[1] = b; p.shape[2] = c;
    return param_group(&p, wd);
}

int main(void)
{
    /* rwkv6-reference 1.2 */
    CHECK_EQ(count(12, 768, 0, 0), 196955136ull);
    CHECK_EQ(count(24, 2048, 0, 0), 1599873024ull);
    CHECK_EQ(count(32, 2560, 0, 0), 3099863040ull);
    CHECK_EQ(count(32, 4096, 64, 128), 7635746816ull);
    CHECK_EQ(count(61, 4096, 64, 128), 14069088256ull);

    ModelConfig c;
    Error e;
    CHECK(config_default_x060(&c, 12, 768, 65536, 64, &e) == 0, "default");
    CHECK(c.model_type == MODEL_X060 && c.d_mix == 32 && c.d_decay == 64 && c.dim_ffn == 2688 && !c.no_ln0,
          "L12-D768 defaults: mix %d decay %d ffn %d", c.d_mix, c.d_decay, c.dim_ffn);
    CHECK(config_default_x060(&c, 2, 1024, 16, 64, &e) == 0 && c.dim_ffn == 3584, "1024 -> ffn 3584 (%d)", c.dim_ffn);
    CHECK(config_default_x060(&c, 2, 2560, 16, 64, &e) == 0 && c.dim_ffn == 8960, "2560 -> ffn 8960 (%d)", c.dim_ffn);
    CHECK(config_default_x060(&c, 2, 4096, 16, 64, &e) == 0 && c.dim_ffn == 14336, "4096 -> ffn 14336 (%d)", c.dim_ffn);
    CHECK(!strcmp(config_type_name(&c), "x060"), "type name x060");
    ModelConfig bad = c;
    bad.d_gate = 32;
    CHECK(config_validate(&bad, &e) != 0, "x060 with an x070 LoRA rank refused: %s", e.msg);
    bad = c;
    bad.d_mix = 0;
    CHECK(config_validate(&bad, &e) != 0, "x060 without a mix rank refused: %s", e.msg);
    bad = c;
    bad.model_type = 5;
    CHECK(config_validate(&bad, &e) != 0, "model_type 5 refused: %s", e.msg);
    ModelConfig seven;
    CHECK(config_default(&seven, 2, 64, 16, 64, &e) == 0 && !config_is_x060(&seven) && !strcmp(config_type_name(&seven), "x070"),
          "x070 default stays x070 (model_type %d)", seven.model_type);
    seven.dim_ffn = 256;
    CHECK(config_validate(&seven, &e) != 0, "x070 with a dim_ffn refused: %s", e.msg);

    /* the official 1B6 file */
    TensorSet ts;
    official_1b6(&ts, NULL, NULL);
    CHECK(config_from_tensors(&ts, &c, &e) == 0, "1B6 config: %s", e.msg);
    CHECK(c.model_type == MODEL_X060 && c.n_layer == 24 && c.n_embd == 2048 && c.n_head == 32 && c.head_size == 64
          && c.dim_ffn == 7168 && c.vocab_size == 65536 && c.d_mix == 32 && c.d_decay == 64 && !c.no_ln0,
          "1B6: x060 L%d C%d H%d N%d F%d V%d mix %d decay %d", c.n_layer, c.n_embd, c.n_head, c.head_size, c.dim_ffn,
          c.vocab_size, c.d_mix, c.d_decay);
    Layout l;
    CHECK(layout_build(&c, &l, &e) == 0 && layout_check_tensors(&l, &ts, &e) == 0, "1B6 passes the layout check: %s", e.msg);
    uint64_t n = 0;
    for (int i = 0; i < ts.n; i++) n += (uint64_t)tensor_numel(&ts.t[i]);
    CHECK_EQ(l.total, n);
    CHECK_EQ(l.n, ts.n);
    int same_order = 1;
    for (int i = 0; i < l.n; i++) same_order &= !strcmp(l.p[i].name, ts.t[i].name);
    CHECK(same_order, "layout order = the file's (state-dict) order");
    layout_free(&l);
    ts_free(&ts);
    char msg[256];
    CHECK(checks_file("blocks.7.att.gate.weight", NULL, msg, sizeof msg) != 0 && strstr(msg, "blocks.7.att.gate.weight"),
          "a missing gate is named: %s", msg);
    CHECK(checks_file(NULL, "blocks.3.att.time_maa_w2", msg, sizeof msg) != 0 && strstr(msg, "time_maa_w2"),
          "time_maa_w2 flattened to 1-D refused: %s", msg);
    CHECK(checks_file(NULL, "blocks.3.att.time_maa_k", msg, sizeof msg) == 0, "[1,1,C] stored as [C] accepted");
    CHECK(checks_file("blocks.0.ln0.weight", NULL, msg, sizeof msg) != 0, "half of ln0 refused: %s", msg);

    /* optimizer groups (configure_optimizers, layerwise_lr 1) */
    CHECK_EQ(group("blocks.3.att.time_decay", 3, 1, 1, 2048, 0.001), GROUP_LR_2X);
    CHECK_EQ(group("blocks.3.att.time_decay_w1", 2, 2048, 64, 0, 0.001), GROUP_LR_1X);
    CHECK_EQ(group("blocks.3.att.time_decay_w2", 2, 64, 2048, 0, 0.001), GROUP_LR_1X);
    CHECK_EQ(group("blocks.3.att.time_maa_w1", 2, 2048, 160, 0, 0.001), GROUP_LR_1X);
    CHECK_EQ(group("blocks.3.att.time_maa_w2", 3, 5, 32, 2048, 0.001), GROUP_LR_1X);
    CHECK_EQ(group("blocks.3.att.time_maa_x", 3, 1, 1, 2048, 0.001), GROUP_LR_1X);
    CHECK_EQ(group("blocks.3.ffn.time_maa_k", 3, 1, 1, 2048, 0.001), GROUP_LR_1X);
    CHECK_EQ(group("blocks.3.att.time_faaaa", 2, 32, 64, 0, 0.001), GROUP_LR_1X);
    CHECK_EQ(group("blocks.3.att.key.weight", 2, 2048, 2048, 0, 0.001), GROUP_DECAY);
    CHECK_EQ(group("blocks.3.att.gate.weight", 2, 2048, 2048, 0, 0.001), GROUP_DECAY);
    CHECK_EQ(group("blocks.3.att.gate.weight", 2, 2048, 2048, 0, 0), GROUP_LR_1X);
    CHECK_EQ(group("blocks.3.att.ln_x.weight", 1, 2048, 0, 0, 0.001), GROUP_LR_1X);
    CHECK_EQ(group("emb.weight", 2, 65536, 2048, 0, 0.001), GROUP_DECAY);
    CHECK_EQ(group("blocks.3.att.w0", 3, 1, 1, 2048, 0.001), GROUP_LR_2X);   /* x070 unchanged */
    CHECK_EQ(group("blocks.3.att.w1", 2, 2048, 96, 0, 0.001), GROUP_LR_1X);
    return check_done();
}
