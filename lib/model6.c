/* model6.c: the x060 compute on the CPU in fp32 (model6.h; RWKV-LM
 * RWKV-v5/src/model.py: RWKV.forward, Block, RWKV_Tmix_x060, RWKV_CMix_x060;
 * doc/model6.md): the parallel (sequence) forward, its backward, and the
 * recurrent mode, composed of the ops of ops.h/ops6.h with BLAS products.
 *
 * Same structure as model.c (rows n = b*T + t; the recurrent mode reuses the
 * parallel code with T = 1 or a prefill chunk, carrying the token-shift inputs
 * and the WKV state); the thread policy and the GEMM wrapper repeat model.c's
 * (static there), so both models use the cores the same way. */
#include "model6.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpugemm.h"
#include "matvec.h"
#include "ops.h"
#include "ops6.h"

#define HS OPS_HEAD_SIZE
#define PREFILL_CHUNK 128
#define HEAD_CHUNK_FLOATS (32u << 20)
#define NONE ((size_t)-1)

/* LoRA chunk order of time_maa_w1/_w2 (jit_func: mw, mk, mv, mr, mg) */
enum { F_W, F_K, F_V, F_R, F_G, NF };
enum { MODE_TRAIN, MODE_TRAIN_CP, MODE_INFER };

typedef struct {
    size_t ln1_w, ln1_b, ln2_w, ln2_b, ln0_w, ln0_b;
    size_t maa_x, maa[NF], maa_w1, maa_w2, decay, decay_w1, decay_w2, faaaa;
    size_t Wr, Wk, Wv, Wo, Wg, lnx_w, lnx_b, fmaa_k, fmaa_r, Fk, Fr, Fv;
} LayerOff6;

typedef struct {
    size_t emb, lnout_w, lnout_b, head;
    LayerOff6 *l;
} Offsets6;

typedef struct {
    float *ln1_mean, *ln1_rstd, *h1, *xx, *xxx, *zmix;
    float *m[NF], *xm[NF];
    float *r, *k, *v, *gpre, *g, *zdec, *w;
    float *y, *gn_mean, *gn_rstd, *out;
    float *xmid, *ln2_mean, *ln2_rstd, *h2, *cmk, *cmr, *act, *rs, *kv;
} LayerAct6;

typedef struct {
    ModelConfig cfg;                /* first: model6_owns reads it */
    int B, T, mode, nthreads;
    Offsets6 off;
    int nact;
    LayerAct6 *act;
    float *x_emb, *ln0_mean, *ln0_rstd;
    float **xin;
    float *lnf_mean, *lnf_rstd, *hf, *logits;
    int head_rows;
    double *row_loss;
    float *dx, *dh, *dxx, *dxxx, *dxm[NF], *dr, *dk, *dv, *dw, *dg, *dgpre, *dy, *dout;
    float *tmp, *tmp2, *dzmix, *dzdec, *dact, *wkv_scratch;
    float *arena;
} Work6;

typedef struct {
    ModelConfig cfg;                /* first: model6_owns reads it */
    float *att_shift, *ffn_shift, *wkv;   /* [L][C], [L][C], [L][H][64*64] (S[i][j]: i value, j key) */
    Work6 *w;
    int ln0_bf16;                   /* round LN0(emb) to bf16, as rwkv pip folds ln0 into a bf16 file's emb */
} State6;

/* ------------------------------------------------------------------ threads, GEMM */

/* Threads and matrix products: lib/cpugemm.c, as the x070 model. */
static CpuThreads threads_enter(const Work6 *W) { return cpu_threads_enter(W->nthreads); }
#define threads_leave cpu_threads_leave
#define pick_threads cpu_pick_threads
#define gemm_ld cpu_gemm
#define gemm_nt cpu_gemm_nt
#define gemm_nn cpu_gemm_nn
#define gemm_tn cpu_gemm_tn
#define fill_rows cpu_fill_rows

/* A Linear by the parameter at off: one row from the bf16 copies when the
 * model has them (model_use_bf16), else fp32. */
static void linear(const Model *m, int M, int N, int K, const float *A, size_t off, float *Cm, float beta)
{
    if (M == 1 && m->w_bf16) matvec_bf16(Cm, m->w_bf16 + off, A, (size_t)N, (size_t)K, beta);
    else gemm_nt(M, N, K, A, m->w + off, Cm, beta);
}

static int tokens_ok(const int32_t *x, size_t n, int V)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] < 0 || x[i] >= V) return 0;
    return 1;
}

/* ------------------------------------------------------------------ setup */

static size_t off_of(const Layout *L, int layer, const char *name)
{
    char full[64];
    if (layer >= 0) snprintf(full, sizeof full, "blocks.%d.%s", layer, name);
    else snprintf(full, sizeof full, "%s", name);
    const ParamInfo *p = layout_find(L, full);
    return p ? p->offset : NONE;
}

static int offsets_build(const Model *m, Offsets6 *o, Error *e)
{
    const Layout *L = &m->layout;
    int nl = m->cfg.n_layer;
    o->l = calloc((size_t)nl, sizeof *o->l);
    if (!o->l) return fail(e, "out of memory");
    o->emb = off_of(L, -1, "emb.weight");
    o->lnout_w = off_of(L, -1, "ln_out.weight");
    o->lnout_b = off_of(L, -1, "ln_out.bias");
    o->head = off_of(L, -1, "head.weight");
    if (o->emb == NONE || o->lnout_w == NONE || o->lnout_b == NONE || o->head == NONE)
        return fail(e, "model layout lacks emb/ln_out/head");
    for (int l = 0; l < nl; l++) {
        LayerOff6 *lo = &o->l[l];
        int no_ln0 = l > 0 || m->cfg.no_ln0;
        struct { size_t *dst; const char *name; int optional; } tab[] = {
            { &lo->ln1_w, "ln1.weight", 0 }, { &lo->ln1_b, "ln1.bias", 0 },
            { &lo->ln2_w, "ln2.weight", 0 }, { &lo->ln2_b, "ln2.bias", 0 },
            { &lo->ln0_w, "ln0.weight", no_ln0 }, { &lo->ln0_b, "ln0.bias", no_ln0 },
            { &lo->maa_x, "att.time_maa_x", 0 }, { &lo->maa[F_W], "att.time_maa_w", 0 },
            { &lo->maa[F_K], "att.time_maa_k", 0 }, { &lo->maa[F_V], "att.time_maa_v", 0 },
            { &lo->maa[F_R], "att.time_maa_r", 0 }, { &lo->maa[F_G], "att.time_maa_g", 0 },
            { &lo->maa_w1, "att.time_maa_w1", 0 }, { &lo->maa_w2, "att.time_maa_w2", 0 },
            { &lo->decay, "att.time_decay", 0 }, { &lo->decay_w1, "att.time_decay_w1", 0 },
            { &lo->decay_w2, "att.time_decay_w2", 0 }, { &lo->faaaa, "att.time_faaaa", 0 },
            { &lo->Wr, "att.receptance.weight", 0 }, { &lo->Wk, "att.key.weight", 0 },
            { &lo->Wv, "att.value.weight", 0 }, { &lo->Wo, "att.output.weight", 0 },
            { &lo->Wg, "att.gate.weight", 0 }, { &lo->lnx_w, "att.ln_x.weight", 0 },
            { &lo->lnx_b, "att.ln_x.bias", 0 }, { &lo->fmaa_k, "ffn.time_maa_k", 0 },
            { &lo->fmaa_r, "ffn.time_maa_r", 0 }, { &lo->Fk, "ffn.key.weight", 0 },
            { &lo->Fr, "ffn.receptance.weight", 0 }, { &lo->Fv, "ffn.value.weight", 0 },
        };
        for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
            *tab[i].dst = off_of(L, l, tab[i].name);
            if (*tab[i].dst == NONE && !tab[i].optional)
                return fail(e, "model layout lacks blocks.%d.%s", l, tab[i].name);
        }
    }
    return 0;
}

typedef struct { float *base; size_t used; } Carver;
static float *take(Carver *cv, size_t n)
{
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (n + 15) & ~(size_t)15;
    return p;
}

static void carve_all(Work6 *W, Carver *cv)
{
    const ModelConfig *c = &W->cfg;
    size_t C = c->n_embd, H = c->n_head, V = c->vocab_size, F = c->dim_ffn, BT = (size_t)W->B * W->T;
    size_t Dm5 = 5 * (size_t)c->d_mix, Dd = c->d_decay;
    int train = W->mode != MODE_INFER;
    for (int l = 0; l < W->nact; l++) {
        LayerAct6 *A = &W->act[l];
        A->ln1_mean = take(cv, BT); A->ln1_rstd = take(cv, BT); A->h1 = take(cv, BT * C);
        A->xx = take(cv, BT * C); A->xxx = take(cv, BT * C); A->zmix = take(cv, BT * Dm5);
        for (int f = 0; f < NF; f++) { A->m[f] = take(cv, BT * C); A->xm[f] = take(cv, BT * C); }
        A->r = take(cv, BT * C); A->k = take(cv, BT * C); A->v = take(cv, BT * C);
        A->gpre = take(cv, BT * C); A->g = take(cv, BT * C); A->zdec = take(cv, BT * Dd); A->w = take(cv, BT * C);
        A->y = take(cv, BT * C); A->gn_mean = take(cv, BT * H); A->gn_rstd = take(cv, BT * H); A->out = take(cv, BT * C);
        A->xmid = take(cv, BT * C); A->ln2_mean = take(cv, BT); A->ln2_rstd = take(cv, BT); A->h2 = take(cv, BT * C);
        A->cmk = take(cv, BT * C); A->cmr = take(cv, BT * C); A->act = take(cv, BT * F);
        A->rs = take(cv, BT * C); A->kv = take(cv, BT * C);
    }
    W->x_emb = take(cv, BT * C); W->ln0_mean = take(cv, BT); W->ln0_rstd = take(cv, BT);
    for (int l = 0; l <= c->n_layer; l++) W->xin[l] = take(cv, BT * C);
    W->lnf_mean = take(cv, BT); W->lnf_rstd = take(cv, BT); W->hf = take(cv, BT * C);
    if (!train) return;
    W->head_rows = (int)(HEAD_CHUNK_FLOATS / V);
    if (W->head_rows < 16) W->head_rows = 16;
    if ((size_t)W->head_rows > BT) W->head_rows = (int)BT;
    W->logits = take(cv, (size_t)W->head_rows * V);
    W->row_loss = (double *)take(cv, 2 * BT);
    float **bufs[] = { &W->dx, &W->dh, &W->dxx, &W->dxxx, &W->dr, &W->dk, &W->dv, &W->dw, &W->dg, &W->dgpre,
                       &W->dy, &W->dout, &W->tmp, &W->tmp2 };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) *bufs[i] = take(cv, BT * C);
    for (int f = 0; f < NF; f++) W->dxm[f] = take(cv, BT * C);
    W->dzmix = take(cv, BT * Dm5);
    W->dzdec = take(cv, BT * Dd);
    W->dact = take(cv, BT * (F > C ? F : C));
    W->wkv_scratch = take(cv, wkv6_bwd_scratch_floats(W->B, W->T, (int)H, W->nthreads));
}

static void work_free(Work6 *W)
{
    if (!W) return;
    free(W->arena);
    free(W->off.l);
    free(W->act);
    free(W->xin);
    free(W);
}

static Work6 *work_new(const Model *m, int B, int T, int mode, Error *e)
{
    if (B < 1 || T < 1) { fail(e, "batch size and context length must be >= 1 (got B=%d T=%d)", B, T); return NULL; }
    if (m->cfg.head_size != HS) { fail(e, "head size must be %d", HS); return NULL; }
    Work6 *W = calloc(1, sizeof *W);
    if (!W) { fail(e, "out of memory"); return NULL; }
    W->cfg = m->cfg;
    W->B = B;
    W->T = T;
    W->mode = mode;
    W->nthreads = pick_threads();
    W->nact = mode == MODE_TRAIN ? m->cfg.n_layer : 1;
    W->act = calloc((size_t)W->nact, sizeof *W->act);
    W->xin = calloc((size_t)m->cfg.n_layer + 1, sizeof *W->xin);
    if (!W->act || !W->xin) { fail(e, "out of memory"); work_free(W); return NULL; }
    if (offsets_build(m, &W->off, e)) { work_free(W); return NULL; }
    Carver cv = { NULL, 0 };
    carve_all(W, &cv);
    W->arena = calloc(cv.used, sizeof(float));
    if (!W->arena) {
        fail(e, "out of memory: activations for B=%d T=%d need %.1f MiB", B, T, cv.used * 4.0 / 1048576);
        work_free(W);
        return NULL;
    }
    cv.base = W->arena;
    cv.used = 0;
    carve_all(W, &cv);
    return W;
}

ModelWork *model6_work_new(const Model *m, int B, int T, int grad_cp, Error *e)
{
    return (ModelWork *)work_new(m, B, T, grad_cp ? MODE_TRAIN_CP : MODE_TRAIN, e);
}

void model6_work_free(ModelWork *w) { work_free((Work6 *)w); }

/* ------------------------------------------------------------------ forward */

/* One block (Block.forward): x += TimeMix(LN1 x), then x += ChannelMix(LN2 x).
 * st (B == 1 only): recurrent state, read as the initial token shifts and WKV
 * state and replaced by the final ones. */
static void block_forward(const Model *m, Work6 *W, int l, LayerAct6 *A, int B, int T,
                          const float *xin, float *xout, State6 *st)
{
    const ModelConfig *c = &m->cfg;
    const LayerOff6 *o = &W->off.l[l];
    const float *P = m->w;
    int C = c->n_embd, H = c->n_head, F = c->dim_ffn, Dm = c->d_mix, Dd = c->d_decay, BTi = B * T;
    size_t BT = (size_t)B * T;

    layernorm_fwd(A->h1, A->ln1_mean, A->ln1_rstd, xin, P + o->ln1_w, P + o->ln1_b, BT, C, 1e-5f);
    /* xx = h_prev - h, xxx = h + xx maa_x (the recurrent mode carries h[T-1]) */
    float *att_shift = st ? st->att_shift + (size_t)l * C : NULL;
    shift_diff6_fwd(A->xx, A->xxx, A->h1, att_shift, P + o->maa_x, B, T, C);
    if (st) memcpy(att_shift, A->h1 + (size_t)(T - 1) * C, (size_t)C * sizeof(float));

    /* the 5-way LoRA: z = tanh(xxx w1) [BT, 5 Dm]; m_f = z_f w2[f] */
    gemm_nn(BTi, 5 * Dm, C, A->xxx, P + o->maa_w1, A->zmix, 0);
    tanh_fwd(A->zmix, BT * 5 * Dm);
    for (int f = 0; f < NF; f++)
        gemm_ld(0, 0, BTi, C, Dm, A->zmix + (size_t)f * Dm, 5 * Dm, P + o->maa_w2 + (size_t)f * Dm * C, C, A->m[f], C, 0);
    const float *maa[NF], *mm[NF];
    for (int f = 0; f < NF; f++) { maa[f] = P + o->maa[f]; mm[f] = A->m[f]; }
    ddlerp6_fwd(A->xm, A->h1, A->xx, maa, mm, NF, BT, C);

    linear(m, BTi, C, C, A->xm[F_R], o->Wr, A->r, 0);
    linear(m, BTi, C, C, A->xm[F_K], o->Wk, A->k, 0);
    linear(m, BTi, C, C, A->xm[F_V], o->Wv, A->v, 0);
    linear(m, BTi, C, C, A->xm[F_G], o->Wg, A->gpre, 0);
    silu_fwd(A->g, A->gpre, BT * C);

    /* w = time_decay + tanh(x_w decay_w1) decay_w2 (raw; WKV6 takes exp(-exp(w))) */
    gemm_nn(BTi, Dd, C, A->xm[F_W], P + o->decay_w1, A->zdec, 0);
    tanh_fwd(A->zdec, BT * Dd);
    fill_rows(A->w, P + o->decay, BT, C);
    gemm_nn(BTi, C, Dd, A->zdec, P + o->decay_w2, A->w, 1);

    wkv6_fwd(A->y, st ? st->wkv + (size_t)l * H * HS * HS : NULL, A->r, A->k, A->v, A->w, P + o->faaaa, B, T, H);
    gn_gate6_fwd(A->out, A->gn_mean, A->gn_rstd, A->y, A->g, P + o->lnx_w, P + o->lnx_b, BT, H);
    memcpy(A->xmid, xin, BT * C * sizeof(float));
    linear(m, BTi, C, C, A->out, o->Wo, A->xmid, 1);

    /* ChannelMix: xk, xr lerps of h2 with its shift; sigmoid(xr Rw^T) * (relu(xk Kw^T)^2 Vw^T) */
    layernorm_fwd(A->h2, A->ln2_mean, A->ln2_rstd, A->xmid, P + o->ln2_w, P + o->ln2_b, BT, C, 1e-5f);
    const float *fmu[2] = { P + o->fmaa_k, P + o->fmaa_r };
    float *fout[2] = { A->cmk, A->cmr };
    float *ffn_shift = st ? st->ffn_shift + (size_t)l * C : NULL;
    shift_mix_fwd(fout, A->h2, ffn_shift, fmu, 2, B, T, C);
    if (st) memcpy(ffn_shift, A->h2 + (size_t)(T - 1) * C, (size_t)C * sizeof(float));
    linear(m, BTi, F, C, A->cmk, o->Fk, A->act, 0);
    relu_sq_fwd(A->act, BT * F);
    linear(m, BTi, C, F, A->act, o->Fv, A->kv, 0);
    linear(m, BTi, C, C, A->cmr, o->Fr, A->rs, 0);
    memcpy(xout, A->xmid, BT * C * sizeof(float));
    cmix_gate6_fwd(xout, A->rs, A->rs, A->kv, BT * C);
}

/* Embedding, ln0 (unless absent) and every block; the last block's output in xin[L]. */
static void forward_blocks(const Model *m, Work6 *W, int B, int T, const int32_t *x, State6 *st)
{
    const ModelConfig *c = &m->cfg;
    int C = c->n_embd;
    size_t BT = (size_t)B * T;
    const LayerOff6 *o0 = &W->off.l[0];
    if (c->no_ln0) {
        embedding_fwd(W->xin[0], x, m->w + W->off.emb, BT, C);
    } else {
        embedding_fwd(W->x_emb, x, m->w + W->off.emb, BT, C);
        layernorm_fwd(W->xin[0], W->ln0_mean, W->ln0_rstd, W->x_emb, m->w + o0->ln0_w, m->w + o0->ln0_b, BT, C, 1e-5f);
        if (st && st->ln0_bf16)
            for (size_t i = 0; i < BT * C; i++) W->xin[0][i] = bf16_round(W->xin[0][i]);
    }
    for (int l = 0; l < c->n_layer; l++)
        block_forward(m, W, l, &W->act[W->nact == 1 ? 0 : l], B, T, W->xin[l], W->xin[l + 1], st);
}

static void head_forward(const Model *m, Work6 *W, int B, int T, float *logits, int last_only)
{
    int C = m->cfg.n_embd, V = m->cfg.vocab_size, L = m->cfg.n_layer;
    const float *gw = m->w + W->off.lnout_w, *gb = m->w + W->off.lnout_b, *head = m->w + W->off.head;
    if (!last_only) {
        size_t BT = (size_t)B * T;
        layernorm_fwd(W->hf, W->lnf_mean, W->lnf_rstd, W->xin[L], gw, gb, BT, C, 1e-5f);
        gemm_nt((int)BT, V, C, W->hf, head, logits, 0);
        return;
    }
    for (int b = 0; b < B; b++) {
        size_t n = (size_t)b * T + T - 1;
        layernorm_fwd(W->hf + (size_t)b * C, W->lnf_mean + b, W->lnf_rstd + b, W->xin[L] + n * C, gw, gb, 1, C, 1e-5f);
    }
    linear(m, B, V, C, W->hf, W->off.head, logits, 0);
}

/* ln_out, head and the loss in chunks of head_rows rows (as model.c); with G:
 * the head and ln_out gradients, and d(loss)/d(last block output) in W->dx. */
static float head_loss(const Model *m, Work6 *W, const int32_t *y, float *G)
{
    int L = m->cfg.n_layer;
    CpuHead h = { W->xin[L], m->w + W->off.lnout_w, m->w + W->off.lnout_b, m->w + W->off.head,
                  W->hf, W->lnf_mean, W->lnf_rstd, W->logits, W->row_loss,
                  (size_t)W->B * W->T, m->cfg.n_embd, m->cfg.vocab_size, W->head_rows };
    if (!G) return cpu_head_loss(&h, y, NULL);
    CpuHeadGrad g = { W->dx, W->dh, W->tmp, G + W->off.head, G + W->off.lnout_w, G + W->off.lnout_b };
    return cpu_head_loss(&h, y, &g);
}

/* ------------------------------------------------------------------ backward */

/* W->dx: d(loss)/d(block output) on entry, d(loss)/d(block input) on return;
 * block_forward's steps in reverse, parameter gradients into G. */
static void block_backward(const Model *m, Work6 *W, int l, const LayerAct6 *A, int B, int T,
                           const float *xin, float *G)
{
    const ModelConfig *c = &m->cfg;
    const LayerOff6 *o = &W->off.l[l];
    const float *P = m->w;
    int C = c->n_embd, H = c->n_head, F = c->dim_ffn, Dm = c->d_mix, Dd = c->d_decay, BTi = B * T;
    size_t BT = (size_t)B * T;
    float *dx = W->dx;

    /* ChannelMix: xout = xmid + rs * (act Vw^T), rs = sigmoid(cmr Rw^T), act = relu(cmk Kw^T)^2 */
    cmix_gate6_bwd(W->tmp, W->tmp2, dx, A->rs, A->kv, BT * C);          /* tmp = d rpre, tmp2 = d kv */
    gemm_tn(C, F, BTi, W->tmp2, A->act, G + o->Fv, 1);
    gemm_nn(BTi, F, C, W->tmp2, P + o->Fv, W->dact, 0);
    relu_sq_bwd(W->dact, A->act, BT * F);
    gemm_tn(F, C, BTi, W->dact, A->cmk, G + o->Fk, 1);
    gemm_nn(BTi, C, F, W->dact, P + o->Fk, W->dxm[0], 0);                 /* d cmk */
    gemm_tn(C, C, BTi, W->tmp, A->cmr, G + o->Fr, 1);
    gemm_nn(BTi, C, C, W->tmp, P + o->Fr, W->dxm[1], 0);                  /* d cmr */
    {
        const float *fmu[2] = { P + o->fmaa_k, P + o->fmaa_r };
        float *dcm[2] = { W->dxm[0], W->dxm[1] };
        float *gmu[2] = { G + o->fmaa_k, G + o->fmaa_r };
        shift_mix_bwd(W->dy, gmu, W->tmp, dcm, A->h2, fmu, 2, B, T, C);    /* dy = d h2 */
    }
    layernorm_bwd(dx, G + o->ln2_w, G + o->ln2_b, W->tmp, W->dy, A->xmid, P + o->ln2_w,
                  A->ln2_mean, A->ln2_rstd, BT, C, 1);

    /* TimeMix: xmid = xin + out Wo^T, out = GN(y) * g */
    gemm_tn(C, C, BTi, dx, A->out, G + o->Wo, 1);
    gemm_nn(BTi, C, C, dx, P + o->Wo, W->dout, 0);
    gn_gate6_bwd(W->dy, W->dg, G + o->lnx_w, G + o->lnx_b, W->tmp, W->tmp2, W->dout, A->y, A->g,
                 A->gn_mean, A->gn_rstd, P + o->lnx_w, P + o->lnx_b, BT, H);
    wkv6_bwd(W->dr, W->dk, W->dv, W->dw, G + o->faaaa, W->wkv_scratch, W->dy, A->r, A->k, A->v, A->w,
             P + o->faaaa, B, T, H, W->nthreads);

    /* decay: w = time_decay + tanh(x_w dw1) dw2 */
    colsum_acc(G + o->decay, W->dw, NULL, BT, C);
    gemm_tn(Dd, C, BTi, A->zdec, W->dw, G + o->decay_w2, 1);
    gemm_nt(BTi, Dd, C, W->dw, P + o->decay_w2, W->dzdec, 0);
    tanh_bwd(W->dzdec, A->zdec, BT * Dd);
    gemm_tn(C, Dd, BTi, A->xm[F_W], W->dzdec, G + o->decay_w1, 1);
    gemm_nt(BTi, C, Dd, W->dzdec, P + o->decay_w1, W->dxm[F_W], 0);

    /* gate g = silu(x_g Wg^T); r, k, v */
    silu_bwd(W->dgpre, W->dg, A->gpre, BT * C);
    gemm_tn(C, C, BTi, W->dgpre, A->xm[F_G], G + o->Wg, 1);
    gemm_nn(BTi, C, C, W->dgpre, P + o->Wg, W->dxm[F_G], 0);
    gemm_tn(C, C, BTi, W->dr, A->xm[F_R], G + o->Wr, 1);
    gemm_nn(BTi, C, C, W->dr, P + o->Wr, W->dxm[F_R], 0);
    gemm_tn(C, C, BTi, W->dk, A->xm[F_K], G + o->Wk, 1);
    gemm_nn(BTi, C, C, W->dk, P + o->Wk, W->dxm[F_K], 0);
    gemm_tn(C, C, BTi, W->dv, A->xm[F_V], G + o->Wv, 1);
    gemm_nn(BTi, C, C, W->dv, P + o->Wv, W->dxm[F_V], 0);

    /* the lerps x_f = h + xx (maa_f + m_f): dh, dxx, and d m_f in place of d x_f */
    memset(W->dh, 0, BT * C * sizeof(float));
    memset(W->dxx, 0, BT * C * sizeof(float));
    {
        const float *maa[NF], *mm[NF], *dxm[NF];
        float *gmaa[NF];
        for (int f = 0; f < NF; f++) { maa[f] = P + o->maa[f]; mm[f] = A->m[f]; dxm[f] = W->dxm[f]; gmaa[f] = G + o->maa[f]; }
        ddlerp6_bwd(W->dh, W->dxx, W->dxm, gmaa, dxm, A->xx, maa, mm, NF, BT, C);
    }
    /* m_f = z_f w2[f], z = tanh(xxx w1) */
    for (int f = 0; f < NF; f++) {
        gemm_ld(1, 0, Dm, C, BTi, A->zmix + (size_t)f * Dm, 5 * Dm, W->dxm[f], C, G + o->maa_w2 + (size_t)f * Dm * C, C, 1);
        gemm_ld(0, 1, BTi, Dm, C, W->dxm[f], C, P + o->maa_w2 + (size_t)f * Dm * C, C, W->dzmix + (size_t)f * Dm, 5 * Dm, 0);
    }
    tanh_bwd(W->dzmix, A->zmix, BT * 5 * Dm);
    gemm_tn(C, 5 * Dm, BTi, A->xxx, W->dzmix, G + o->maa_w1, 1);
    gemm_nt(BTi, C, 5 * Dm, W->dzmix, P + o->maa_w1, W->dxxx, 0);
    shift_diff6_bwd(W->dh, G + o->maa_x, W->dxx, W->dxxx, A->xx, P + o->maa_x, B, T, C);
    layernorm_bwd(dx, G + o->ln1_w, G + o->ln1_b, W->tmp, W->dh, xin, P + o->ln1_w,
                  A->ln1_mean, A->ln1_rstd, BT, C, 1);
}

/* ------------------------------------------------------------------ public */

float model6_forward_loss(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y)
{
    Work6 *W = (Work6 *)w;
    size_t BT = (size_t)W->B * W->T;
    int V = m->cfg.vocab_size;
    if (!tokens_ok(x, BT, V) || !tokens_ok(y, BT, V)) return NAN;
    CpuThreads nb = threads_enter(W);
    forward_blocks(m, W, W->B, W->T, x, NULL);
    float loss = head_loss(m, W, y, NULL);
    threads_leave(nb);
    return loss;
}

void model6_forward_logits(const Model *m, ModelWork *w, const int32_t *x, float *logits)
{
    Work6 *W = (Work6 *)w;
    size_t BT = (size_t)W->B * W->T;
    int V = m->cfg.vocab_size;
    if (!tokens_ok(x, BT, V)) {
        for (size_t i = 0; i < BT * V; i++) logits[i] = NAN;
        return;
    }
    CpuThreads nb = threads_enter(W);
    forward_blocks(m, W, W->B, W->T, x, NULL);
    head_forward(m, W, W->B, W->T, logits, 0);
    threads_leave(nb);
}

float model6_forward_backward(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y, float *grad)
{
    Work6 *W = (Work6 *)w;
    const ModelConfig *c = &m->cfg;
    int B = W->B, T = W->T, C = c->n_embd, V = c->vocab_size, L = c->n_layer;
    size_t BT = (size_t)B * T;
    memset(grad, 0, m->layout.total * sizeof(float));
    if (!tokens_ok(x, BT, V) || !tokens_ok(y, BT, V)) return NAN;
    CpuThreads nb = threads_enter(W);
    forward_blocks(m, W, B, T, x, NULL);
    float loss = head_loss(m, W, y, grad);
    for (int l = L - 1; l >= 0; l--) {
        LayerAct6 *A = &W->act[W->nact == 1 ? 0 : l];
        if (W->mode == MODE_TRAIN_CP)
            block_forward(m, W, l, A, B, T, W->xin[l], W->xin[l + 1], NULL);
        block_backward(m, W, l, A, B, T, W->xin[l], grad);
    }
    if (c->no_ln0) {
        embedding_bwd(grad + W->off.emb, W->dx, x, BT, C);
    } else {
        const LayerOff6 *o0 = &W->off.l[0];
        layernorm_bwd(W->dh, grad + o0->ln0_w, grad + o0->ln0_b, W->tmp, W->dx, W->x_emb, m->w + o0->ln0_w,
                      W->ln0_mean, W->ln0_rstd, BT, C, 0);
        embedding_bwd(grad + W->off.emb, W->dh, x, BT, C);
    }
    threads_leave(nb);
    return loss;
}

static int bf16_exact(const float *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bf16_round(w[i]) != w[i]) return 0;
    return 1;
}

/* The rwkv pip package (RWKV.__init__) replaces emb by LN0(emb) when it loads
 * an RWKV-6 file, in the file's dtype, so a bf16 file runs with that product
 * rounded to bf16 (rwkv6-reference 5.2 step 3; 1.6e-2 apart otherwise).  The
 * recurrent mode does the same when emb and ln0 are bf16 values (a bf16
 * checkpoint), so rwkv-generate matches pip; training and model_forward_logits
 * keep the fp32 LN0 output. */
ModelState *model6_state_new(const Model *m, Error *e)
{
    const ModelConfig *c = &m->cfg;
    State6 *s = calloc(1, sizeof *s);
    if (!s) { fail(e, "out of memory"); return NULL; }
    s->cfg = *c;
    size_t LC = (size_t)c->n_layer * c->n_embd;
    s->att_shift = calloc(LC, sizeof(float));
    s->ffn_shift = calloc(LC, sizeof(float));
    s->wkv = calloc(LC * HS, sizeof(float));
    if (!s->att_shift || !s->ffn_shift || !s->wkv) {
        fail(e, "out of memory");
        model6_state_free((ModelState *)s);
        return NULL;
    }
    s->w = work_new(m, 1, PREFILL_CHUNK, MODE_INFER, e);
    if (!s->w) { model6_state_free((ModelState *)s); return NULL; }
    s->ln0_bf16 = !c->no_ln0 && bf16_exact(m->w + s->w->off.emb, (size_t)c->vocab_size * c->n_embd)
                  && bf16_exact(m->w + s->w->off.l[0].ln0_w, (size_t)c->n_embd)
                  && bf16_exact(m->w + s->w->off.l[0].ln0_b, (size_t)c->n_embd);
    return (ModelState *)s;
}

void model6_state_reset(ModelState *st)
{
    State6 *s = (State6 *)st;
    size_t LC = (size_t)s->cfg.n_layer * s->cfg.n_embd;
    memset(s->att_shift, 0, LC * sizeof(float));
    memset(s->ffn_shift, 0, LC * sizeof(float));
    memset(s->wkv, 0, LC * HS * sizeof(float));
}

void model6_state_free(ModelState *st)
{
    State6 *s = (State6 *)st;
    if (!s) return;
    free(s->att_shift);
    free(s->ffn_shift);
    free(s->wkv);
    work_free(s->w);
    free(s);
}

void model6_state_tensors(ModelState *st, float **att_shift, float **ffn_shift, float **wkv)
{
    State6 *s = (State6 *)st;
    *att_shift = s->att_shift;
    *ffn_shift = s->ffn_shift;
    *wkv = s->wkv;
}

void model6_step(const Model *m, ModelState *st, int32_t token, float *logits)
{
    State6 *s = (State6 *)st;
    if (token < 0 || token >= m->cfg.vocab_size) {
        if (logits)
            for (int i = 0; i < m->cfg.vocab_size; i++) logits[i] = NAN;
        return;
    }
    CpuThreads nb = threads_enter(s->w);
    forward_blocks(m, s->w, 1, 1, &token, s);
    if (logits) head_forward(m, s->w, 1, 1, logits, 1);
    threads_leave(nb);
}

int model6_prefill(const Model *m, ModelState *st, const int32_t *tokens, int n, float *logits, Error *e)
{
    State6 *s = (State6 *)st;
    if (n < 1) return fail(e, "prefill needs at least one token");
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab_size)
            return fail(e, "token %d at position %d is outside the vocabulary (size %d)",
                        tokens[i], i, m->cfg.vocab_size);
    CpuThreads nb = threads_enter(s->w);
    for (int done = 0; done < n; done += PREFILL_CHUNK) {
        int T = n - done < PREFILL_CHUNK ? n - done : PREFILL_CHUNK;
        forward_blocks(m, s->w, 1, T, tokens + done, s);
        if (logits && done + T == n) head_forward(m, s->w, 1, T, logits, 1);
    }
    threads_leave(nb);
    return 0;
}
