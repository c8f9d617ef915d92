/* model.c: the x070 compute on the CPU in fp32 (RWKV-LM-V7 src/model.py,
 * RWKV.forward with RWKV_Tmix_x070 and RWKV_CMix_x070; doc/model.md): the
 * parallel (sequence) forward, its backward, and the recurrent mode.
 *
 * Rows are tokens, n = b*T + t; every activation is a row-major [B*T, width]
 * matrix.  Matrix products go to BLAS (cblas_sgemm); everything else is an op
 * of ops.h (kernel-shaped, the CPU twins of the CUDA kernels), so this file
 * holds the parameter offsets, the work area, and the order of the steps.
 * Results do not depend on the thread count.
 *
 * The recurrent mode reuses the parallel code with T = 1 (or a prefill chunk),
 * carrying the token-shift inputs and the WKV state between calls, so both
 * modes share one implementation of every formula. */
#include "model.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpugemm.h"
#include "matvec.h"
#include "model6.h"
#include "ops.h"

#define HS OPS_HEAD_SIZE            /* head size (layout.c enforces 64) */
#define PREFILL_CHUNK 128           /* tokens per parallel-mode pass in model_prefill */
#define HEAD_CHUNK_FLOATS (32u << 20) /* logits held at once in training (128 MiB): rows per head pass */
#define NONE ((size_t)-1)

enum { MIX_R, MIX_W, MIX_K, MIX_V, MIX_A, MIX_G, NMIX };
enum { MODE_TRAIN, MODE_TRAIN_CP, MODE_INFER };

/* Parameter offsets into Model.w (and into a gradient with the same layout),
 * looked up once per work/state so the hot paths never search by name. */
typedef struct {
    size_t ln1_w, ln1_b, ln2_w, ln2_b, ln0_w, ln0_b;
    size_t mix[NMIX];
    size_t w1, w2, w0, a1, a2, a0, v1, v2, v0, g1, g2, k_k, k_a, r_k;
    size_t Wr, Wk, Wv, Wo, lnx_w, lnx_b, fx_k, Fk, Fv;
} LayerOff;

typedef struct {
    size_t emb, lnout_w, lnout_b, head;
    LayerOff *l;
} Offsets;

/* Activations of one block, kept for its backward. */
typedef struct {
    float *ln1_mean, *ln1_rstd, *h1;
    float *mix[NMIX];
    float *r, *k, *v, *tw, *w, *vh, *vgate, *ah, *a, *gh, *g;
    float *kk, *inv, *kp, *vm;
    float *ckpt;                    /* WKV state at the start of each chunk [B*H][nchunk][64*64] */
    float *y, *gn_mean, *gn_rstd, *bonus, *out;
    float *xmid, *ln2_mean, *ln2_rstd, *h2, *cmix, *act;   /* act = relu(cmix Kw^T)^2 */
} LayerAct;

struct ModelWork {
    ModelConfig cfg;
    int B, T, mode, nthreads;
    Offsets off;
    int nact;
    LayerAct *act;
    float *x_emb, *ln0_mean, *ln0_rstd;
    float **xin;                    /* n_layer+1 block inputs; xin[L] is the last block's output */
    float *vfirst;
    float *lnf_mean, *lnf_rstd, *hf, *logits;   /* logits: head_rows x V, one chunk of rows */
    int head_rows;
    double *row_loss;
    /* backward scratch */
    float *dx, *dh, *dmix[NMIX], *dr, *dk, *dv, *dw, *da, *dg, *dkk, *dkp, *dvm, *dy, *dout;
    float *tmp, *tmp2, *dlora, *dact, *dvfirst, *wkv_scratch;
    float *arena;
};

struct ModelState {
    ModelConfig cfg;
    float *att_shift, *ffn_shift, *wkv;   /* [L][C], [L][C], [L][H][64*64] (S[i][j]: i value, j key) */
    ModelWork *w;
};

/* ------------------------------------------------------------------ helpers */

/* Threads and matrix products: lib/cpugemm.c (shared with the x060 model). */
static CpuThreads threads_enter(const ModelWork *W) { return cpu_threads_enter(W->nthreads); }
#define threads_leave cpu_threads_leave
#define pick_threads cpu_pick_threads
#define gemm_nt cpu_gemm_nt
#define gemm_nn cpu_gemm_nn
#define gemm_tn cpu_gemm_tn
#define fill_rows cpu_fill_rows

/* gemm_nt by the parameter at offset off: one row (decode) from the bf16
 * copies when the model has them (model_use_bf16), else fp32. */
static void linear(const Model *m, int M, int N, int K, const float *A, size_t off, float *Cm, float beta)
{
    if (M == 1 && m->w_bf16) matvec_bf16(Cm, m->w_bf16 + off, A, (size_t)N, (size_t)K, beta);
    else gemm_nt(M, N, K, A, m->w + off, Cm, beta);
}

/* ------------------------------------------------------------- parameters */

int model_alloc(Model *m, const ModelConfig *c, Error *e)
{
    memset(m, 0, sizeof *m);
    if (layout_build(c, &m->layout, e)) return -1;
    m->cfg = *c;
    size_t bytes = (m->layout.total ? m->layout.total : 1) * sizeof *m->w;
    m->w = matvec_weights_alloc(bytes);   /* huge pages: the fp32 decode streams them */
    if (m->w) memset(m->w, 0, bytes);
    if (!m->w) {
        size_t total = m->layout.total;
        layout_free(&m->layout);
        return fail(e, "out of memory for %zu parameters", total);
    }
    return 0;
}

void model_free(Model *m)
{
    if (!m) return;
    free(m->w);
    free(m->w_bf16);
    layout_free(&m->layout);
    memset(m, 0, sizeof *m);
}

float *model_param(const Model *m, const char *name)
{
    const ParamInfo *p = layout_find(&m->layout, name);
    return p ? m->w + p->offset : NULL;
}

int model_use_bf16(Model *m, int on, Error *e)
{
    free(m->w_bf16);
    m->w_bf16 = NULL;
    if (!on) return 0;
    size_t n = m->layout.total;
    m->w_bf16 = matvec_weights_alloc((n ? n : 1) * sizeof *m->w_bf16);
    if (!m->w_bf16) return fail(e, "out of memory for the bf16 copy of %zu parameters", n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) m->w_bf16[i] = f32_to_bf16(m->w[i]);
    return 0;
}

int model_weights_bf16_exact(const Model *m)
{
    const uint32_t *u = (const uint32_t *)m->w;   /* bf16 = the top 16 bits of an fp32 */
    for (size_t i = 0; i < m->layout.total; i++)
        if (u[i] & 0xffffu) return 0;
    return 1;
}

/* ------------------------------------------------------------- setup */

static size_t off_of(const Layout *L, int layer, const char *name)
{
    char full[64];
    if (layer >= 0) snprintf(full, sizeof full, "blocks.%d.%s", layer, name);
    else snprintf(full, sizeof full, "%s", name);
    const ParamInfo *p = layout_find(L, full);
    return p ? p->offset : NONE;
}

static int offsets_build(const Model *m, Offsets *o, Error *e)
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
    static const char *mixn[NMIX] = { "att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g" };
    for (int l = 0; l < nl; l++) {
        LayerOff *lo = &o->l[l];
        struct { size_t *dst; const char *name; int optional; } tab[] = {
            { &lo->ln1_w, "ln1.weight", 0 }, { &lo->ln1_b, "ln1.bias", 0 },
            { &lo->ln2_w, "ln2.weight", 0 }, { &lo->ln2_b, "ln2.bias", 0 },
            { &lo->ln0_w, "ln0.weight", l > 0 }, { &lo->ln0_b, "ln0.bias", l > 0 },
            { &lo->w1, "att.w1", 0 }, { &lo->w2, "att.w2", 0 }, { &lo->w0, "att.w0", 0 },
            { &lo->a1, "att.a1", 0 }, { &lo->a2, "att.a2", 0 }, { &lo->a0, "att.a0", 0 },
            { &lo->v1, "att.v1", l == 0 }, { &lo->v2, "att.v2", l == 0 }, { &lo->v0, "att.v0", l == 0 },
            { &lo->g1, "att.g1", 0 }, { &lo->g2, "att.g2", 0 },
            { &lo->k_k, "att.k_k", 0 }, { &lo->k_a, "att.k_a", 0 }, { &lo->r_k, "att.r_k", 0 },
            { &lo->Wr, "att.receptance.weight", 0 }, { &lo->Wk, "att.key.weight", 0 },
            { &lo->Wv, "att.value.weight", 0 }, { &lo->Wo, "att.output.weight", 0 },
            { &lo->lnx_w, "att.ln_x.weight", 0 }, { &lo->lnx_b, "att.ln_x.bias", 0 },
            { &lo->fx_k, "ffn.x_k", 0 }, { &lo->Fk, "ffn.key.weight", 0 }, { &lo->Fv, "ffn.value.weight", 0 },
        };
        for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
            *tab[i].dst = off_of(L, l, tab[i].name);
            if (*tab[i].dst == NONE && !tab[i].optional)
                return fail(e, "model layout lacks blocks.%d.%s", l, tab[i].name);
        }
        for (int i = 0; i < NMIX; i++) {
            lo->mix[i] = off_of(L, l, mixn[i]);
            if (lo->mix[i] == NONE) return fail(e, "model layout lacks blocks.%d.%s", l, mixn[i]);
        }
    }
    return 0;
}

/* Carve buffers out of one arena.  Run once with base NULL to size it. */
typedef struct { float *base; size_t used; } Carver;
static float *take(Carver *cv, size_t n)
{
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (n + 15) & ~(size_t)15;    /* 64-byte aligned offsets */
    return p;
}

static void carve_all(ModelWork *W, Carver *cv)
{
    const ModelConfig *c = &W->cfg;
    size_t C = c->n_embd, H = c->n_head, V = c->vocab_size, BT = (size_t)W->B * W->T;
    int train = W->mode != MODE_INFER;
    size_t maxD = c->d_decay;
    if ((size_t)c->d_aaa > maxD) maxD = c->d_aaa;
    if ((size_t)c->d_mv > maxD) maxD = c->d_mv;
    if ((size_t)c->d_gate > maxD) maxD = c->d_gate;
    for (int l = 0; l < W->nact; l++) {
        LayerAct *A = &W->act[l];
        A->ln1_mean = take(cv, BT); A->ln1_rstd = take(cv, BT); A->h1 = take(cv, BT * C);
        for (int i = 0; i < NMIX; i++) A->mix[i] = take(cv, BT * C);
        A->r = take(cv, BT * C); A->k = take(cv, BT * C); A->v = take(cv, BT * C);
        A->tw = take(cv, BT * c->d_decay); A->w = take(cv, BT * C);
        A->vh = take(cv, BT * c->d_mv); A->vgate = take(cv, BT * C);
        A->ah = take(cv, BT * c->d_aaa); A->a = take(cv, BT * C);
        A->gh = take(cv, BT * c->d_gate); A->g = take(cv, BT * C);
        A->kk = take(cv, BT * C); A->inv = take(cv, BT * H); A->kp = take(cv, BT * C); A->vm = take(cv, BT * C);
        A->ckpt = train ? take(cv, wkv7_ckpt_floats(W->B, W->T, (int)H)) : NULL;
        A->y = take(cv, BT * C); A->gn_mean = take(cv, BT * H); A->gn_rstd = take(cv, BT * H);
        A->bonus = take(cv, BT * H); A->out = take(cv, BT * C);
        A->xmid = take(cv, BT * C); A->ln2_mean = take(cv, BT); A->ln2_rstd = take(cv, BT);
        A->h2 = take(cv, BT * C); A->cmix = take(cv, BT * C);
        A->act = take(cv, BT * 4 * C);
    }
    W->x_emb = take(cv, BT * C); W->ln0_mean = take(cv, BT); W->ln0_rstd = take(cv, BT);
    for (int l = 0; l <= c->n_layer; l++) W->xin[l] = take(cv, BT * C);
    W->vfirst = take(cv, BT * C);
    W->lnf_mean = take(cv, BT); W->lnf_rstd = take(cv, BT); W->hf = take(cv, BT * C);
    if (!train) return;
    W->head_rows = (int)(HEAD_CHUNK_FLOATS / V);
    if (W->head_rows < 16) W->head_rows = 16;
    if ((size_t)W->head_rows > BT) W->head_rows = (int)BT;
    W->logits = take(cv, (size_t)W->head_rows * V);
    W->row_loss = (double *)take(cv, 2 * BT);
    float **bufs[] = { &W->dx, &W->dh, &W->dr, &W->dk, &W->dv, &W->dw, &W->da, &W->dg, &W->dkk,
                       &W->dkp, &W->dvm, &W->dy, &W->dout, &W->tmp, &W->tmp2, &W->dvfirst };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) *bufs[i] = take(cv, BT * C);
    for (int i = 0; i < NMIX; i++) W->dmix[i] = take(cv, BT * C);
    W->dlora = take(cv, BT * maxD);
    W->dact = take(cv, BT * 4 * C);
    W->wkv_scratch = take(cv, wkv7_bwd_scratch_floats(W->nthreads));
}

static ModelWork *work_new(const Model *m, int B, int T, int mode, Error *e)
{
    if (B < 1 || T < 1) { fail(e, "batch size and context length must be >= 1 (got B=%d T=%d)", B, T); return NULL; }
    if (m->cfg.head_size != HS) { fail(e, "head size must be %d", HS); return NULL; }
    ModelWork *W = calloc(1, sizeof *W);
    if (!W) { fail(e, "out of memory"); return NULL; }
    W->cfg = m->cfg;
    W->B = B;
    W->T = T;
    W->mode = mode;
    W->nthreads = pick_threads();
    W->nact = mode == MODE_TRAIN ? m->cfg.n_layer : 1;
    W->act = calloc((size_t)W->nact, sizeof *W->act);
    W->xin = calloc((size_t)m->cfg.n_layer + 1, sizeof *W->xin);
    if (!W->act || !W->xin) { fail(e, "out of memory"); model_work_free(W); return NULL; }
    if (offsets_build(m, &W->off, e)) { model_work_free(W); return NULL; }
    Carver cv = { NULL, 0 };
    carve_all(W, &cv);
    W->arena = calloc(cv.used, sizeof(float));
    if (!W->arena) {
        fail(e, "out of memory: activations for B=%d T=%d need %.1f MiB", B, T, cv.used * 4.0 / 1048576);
        model_work_free(W);
        return NULL;
    }
    cv.base = W->arena;
    cv.used = 0;
    carve_all(W, &cv);
    return W;
}

ModelWork *model_work_new(const Model *m, int B, int T, int grad_cp, Error *e)
{
    if (config_is_x060(&m->cfg)) return model6_work_new(m, B, T, grad_cp, e);
    return work_new(m, B, T, grad_cp ? MODE_TRAIN_CP : MODE_TRAIN, e);
}

void model_work_free(ModelWork *W)
{
    _Static_assert(offsetof(ModelWork, cfg) == 0, "model6_owns reads the leading ModelConfig");
    if (model6_owns(W)) { model6_work_free(W); return; }
    if (!W) return;
    free(W->arena);
    free(W->off.l);
    free(W->act);
    free(W->xin);
    free(W);
}

/* ------------------------------------------------------------- forward */

/* One block: xout = xin + TimeMix(LN1 xin) then + ChannelMix(LN2 .)
 * (src/model.py Block.forward, RWKV_Tmix_x070.forward, RWKV_CMix_x070.forward).
 * st (B == 1 only): recurrent state read as the initial token shifts and WKV
 * state, and replaced by the final ones. */
static void block_forward(const Model *m, ModelWork *W, int l, LayerAct *A, int B, int T,
                          const float *xin, float *xout, ModelState *st)
{
    const ModelConfig *c = &m->cfg;
    const LayerOff *o = &W->off.l[l];
    const float *P = m->w;
    int C = c->n_embd, H = c->n_head;
    size_t BT = (size_t)B * T;
    int Dw = c->d_decay, Da = c->d_aaa, Dv = c->d_mv, Dg = c->d_gate;

    /* h1 = LN1(x) */
    layernorm_fwd(A->h1, A->ln1_mean, A->ln1_rstd, xin, P + o->ln1_w, P + o->ln1_b, BT, C, 1e-5f);
    /* token shift and the six lerps x_r .. x_g (the recurrent mode carries h[T-1]) */
    const float *mu[NMIX];
    for (int i = 0; i < NMIX; i++) mu[i] = P + o->mix[i];
    float *att_shift = st ? st->att_shift + (size_t)l * C : NULL;
    shift_mix_fwd(A->mix, A->h1, att_shift, mu, NMIX, B, T, C);
    if (st) memcpy(att_shift, A->h1 + (size_t)(T - 1) * C, (size_t)C * sizeof(float));

    /* r, k, v projections */
    linear(m, (int)BT, C, C, A->mix[MIX_R], o->Wr, A->r, 0);
    linear(m, (int)BT, C, C, A->mix[MIX_K], o->Wk, A->k, 0);
    linear(m, (int)BT, C, C, A->mix[MIX_V], o->Wv, A->v, 0);

    /* decay: w = w0 + tanh(xw w1) w2 (raw; the WKV turns it into exp(-e^-0.5 sigmoid(w))) */
    gemm_nn((int)BT, Dw, C, A->mix[MIX_W], P + o->w1, A->tw, 0);
    tanh_fwd(A->tw, BT * Dw);
    fill_rows(A->w, P + o->w0, BT, C);
    gemm_nn((int)BT, C, Dw, A->tw, P + o->w2, A->w, 1);

    /* value residual: layer 0 defines v_first, later layers mix toward it */
    if (l == 0) {
        memcpy(W->vfirst, A->v, BT * C * sizeof(float));
        memcpy(A->vm, A->v, BT * C * sizeof(float));
    } else {
        gemm_nn((int)BT, Dv, C, A->mix[MIX_V], P + o->v1, A->vh, 0);
        fill_rows(A->vgate, P + o->v0, BT, C);
        gemm_nn((int)BT, C, Dv, A->vh, P + o->v2, A->vgate, 1);
        value_residual_fwd(A->vm, A->vgate, A->v, W->vfirst, BT * C);
    }

    /* in-context learning rate a = sigmoid(a0 + xa a1 a2) */
    gemm_nn((int)BT, Da, C, A->mix[MIX_A], P + o->a1, A->ah, 0);
    fill_rows(A->a, P + o->a0, BT, C);
    gemm_nn((int)BT, C, Da, A->ah, P + o->a2, A->a, 1);
    sigmoid_fwd(A->a, BT * C);

    /* gate g = sigmoid(xg g1) g2 */
    gemm_nn((int)BT, Dg, C, A->mix[MIX_G], P + o->g1, A->gh, 0);
    sigmoid_fwd(A->gh, BT * Dg);
    gemm_nn((int)BT, C, Dg, A->gh, P + o->g2, A->g, 0);

    /* key prep per head: kk = normalize(k*k_k), k' = k*(1 + (a-1)*k_a) */
    keyprep_fwd(A->kk, A->kp, A->inv, A->k, A->a, P + o->k_k, P + o->k_a, BT, H);

    /* WKV7 recurrence: y = S r, with the state kept every 16 steps for the backward */
    wkv7_fwd(A->y, A->ckpt, st ? st->wkv + (size_t)l * H * HS * HS : NULL,
             A->r, A->w, A->kp, A->vm, A->kk, A->a, B, T, H);

    /* GroupNorm(H, eps 64e-5) + bonus (sum r k' r_k) v, times the gate */
    gn_bonus_gate_fwd(A->out, A->gn_mean, A->gn_rstd, A->bonus, A->y, A->r, A->kp, A->vm, A->g,
                      P + o->lnx_w, P + o->lnx_b, P + o->r_k, BT, H);
    /* xmid = x + out Wo^T */
    memcpy(A->xmid, xin, BT * C * sizeof(float));
    linear(m, (int)BT, C, C, A->out, o->Wo, A->xmid, 1);

    /* ChannelMix: h2 = LN2(xmid), cmix = lerp(h2, h2_prev, x_k) */
    layernorm_fwd(A->h2, A->ln2_mean, A->ln2_rstd, A->xmid, P + o->ln2_w, P + o->ln2_b, BT, C, 1e-5f);
    const float *fmu[1] = { P + o->fx_k };
    float *fout[1] = { A->cmix };
    float *ffn_shift = st ? st->ffn_shift + (size_t)l * C : NULL;
    shift_mix_fwd(fout, A->h2, ffn_shift, fmu, 1, B, T, C);
    if (st) memcpy(ffn_shift, A->h2 + (size_t)(T - 1) * C, (size_t)C * sizeof(float));
    /* act = relu(cmix Kw^T)^2;  xout = xmid + act Vw^T */
    linear(m, (int)BT, 4 * C, C, A->cmix, o->Fk, A->act, 0);
    relu_sq_fwd(A->act, BT * 4 * C);
    memcpy(xout, A->xmid, BT * C * sizeof(float));
    linear(m, (int)BT, C, 4 * C, A->act, o->Fv, xout, 1);
}

/* Embedding, ln0 and every block; leaves the last block's output in xin[L]. */
static void forward_blocks(const Model *m, ModelWork *W, int B, int T, const int32_t *x, ModelState *st)
{
    const ModelConfig *c = &m->cfg;
    int C = c->n_embd;
    size_t BT = (size_t)B * T;
    embedding_fwd(W->x_emb, x, m->w + W->off.emb, BT, C);
    const LayerOff *o0 = &W->off.l[0];
    layernorm_fwd(W->xin[0], W->ln0_mean, W->ln0_rstd, W->x_emb, m->w + o0->ln0_w, m->w + o0->ln0_b, BT, C, 1e-5f);
    for (int l = 0; l < c->n_layer; l++)
        block_forward(m, W, l, &W->act[W->nact == 1 ? 0 : l], B, T, W->xin[l], W->xin[l + 1], st);
}

/* ln_out + head for every row (logits [B*T, V]) or only each sample's last row ([B, V]). */
static void head_forward(const Model *m, ModelWork *W, int B, int T, float *logits, int last_only)
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

/* ln_out, head and the loss, in chunks of head_rows rows so the logits never
 * need B*T*V floats.  With grad: head.weight and ln_out gradients into G and
 * d(loss)/d(last block output) into W->dx.  Returns the mean loss. */
static float head_loss(const Model *m, ModelWork *W, const int32_t *y, float *G)
{
    int L = m->cfg.n_layer;
    CpuHead h = { W->xin[L], m->w + W->off.lnout_w, m->w + W->off.lnout_b, m->w + W->off.head,
                  W->hf, W->lnf_mean, W->lnf_rstd, W->logits, W->row_loss,
                  (size_t)W->B * W->T, m->cfg.n_embd, m->cfg.vocab_size, W->head_rows };
    if (!G) return cpu_head_loss(&h, y, NULL);
    CpuHeadGrad g = { W->dx, W->dh, W->tmp, G + W->off.head, G + W->off.lnout_w, G + W->off.lnout_b };
    return cpu_head_loss(&h, y, &g);
}

static int tokens_ok(const int32_t *x, size_t n, int V)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] < 0 || x[i] >= V) return 0;
    return 1;
}

/* ------------------------------------------------------------- backward */

/* On entry W->dx = d(loss)/d(block output); on return d(loss)/d(block input).
 * The steps of block_forward in reverse; parameter gradients go into G. */
static void block_backward(const Model *m, ModelWork *W, int l, const LayerAct *A, int B, int T,
                           const float *xin, float *G)
{
    const ModelConfig *c = &m->cfg;
    const LayerOff *o = &W->off.l[l];
    const float *P = m->w;
    int C = c->n_embd, H = c->n_head, BTi = B * T;
    size_t BT = (size_t)B * T;
    int Dw = c->d_decay, Da = c->d_aaa, Dv = c->d_mv, Dg = c->d_gate;
    float *dx = W->dx;

    /* ChannelMix: xout = xmid + relu(cmix Kw^T)^2 Vw^T */
    gemm_tn(C, 4 * C, BTi, dx, A->act, G + o->Fv, 1);
    gemm_nn(BTi, 4 * C, C, dx, P + o->Fv, W->dact, 0);
    relu_sq_bwd(W->dact, A->act, BT * 4 * C);
    gemm_tn(4 * C, C, BTi, W->dact, A->cmix, G + o->Fk, 1);
    gemm_nn(BTi, C, 4 * C, W->dact, P + o->Fk, W->dh, 0);          /* d cmix */
    {
        const float *fmu[1] = { P + o->fx_k };
        float *dcm[1] = { W->dh };
        float *gmu[1] = { G + o->fx_k };
        shift_mix_bwd(W->dy, gmu, W->tmp, dcm, A->h2, fmu, 1, B, T, C);   /* dy = d h2 */
    }
    /* h2 = LN2(xmid): dx += d xmid through the norm (the residual path is already in dx) */
    layernorm_bwd(dx, G + o->ln2_w, G + o->ln2_b, W->tmp, W->dy, A->xmid, P + o->ln2_w,
                  A->ln2_mean, A->ln2_rstd, BT, C, 1);

    /* TimeMix output projection: xmid = xin + out Wo^T */
    gemm_tn(C, C, BTi, dx, A->out, G + o->Wo, 1);
    gemm_nn(BTi, C, C, dx, P + o->Wo, W->dout, 0);

    /* GroupNorm + bonus + gate: d y, and the bonus's share of d r, d k', d v */
    gn_bonus_gate_bwd(W->dy, W->dr, W->dkp, W->dvm, W->dg, G + o->lnx_w, G + o->lnx_b, G + o->r_k,
                      W->dout, W->tmp, W->tmp2, A->y, A->r, A->kp, A->vm, A->g, A->gn_mean, A->gn_rstd,
                      A->bonus, P + o->lnx_w, P + o->lnx_b, P + o->r_k, BT, H);

    /* WKV7: adds to d r, d k', d v; writes d w (raw), d kk, d a */
    wkv7_bwd(W->dr, W->dw, W->dkp, W->dvm, W->dkk, W->da, W->wkv_scratch, W->dy,
             A->r, A->w, A->kp, A->vm, A->kk, A->a, A->ckpt, B, T, H, W->nthreads);

    /* key prep: d k, and k's share of d a */
    keyprep_bwd(W->dk, W->da, G + o->k_k, G + o->k_a, W->tmp, W->tmp2, W->dkk, W->dkp,
                A->k, A->a, A->kk, A->inv, P + o->k_k, P + o->k_a, BT, H);

    /* a = sigmoid(a0 + xa a1 a2) */
    sigmoid_bwd(W->da, A->a, BT * C);
    colsum_acc(G + o->a0, W->da, NULL, BT, C);
    gemm_tn(Da, C, BTi, A->ah, W->da, G + o->a2, 1);
    gemm_nt(BTi, Da, C, W->da, P + o->a2, W->dlora, 0);
    gemm_tn(C, Da, BTi, A->mix[MIX_A], W->dlora, G + o->a1, 1);
    gemm_nt(BTi, C, Da, W->dlora, P + o->a1, W->dmix[MIX_A], 0);

    /* value residual: later layers through the gate (tmp = d pre-gate); layer 0 collects d v_first */
    float vbeta = 0;
    if (l > 0) {
        value_residual_bwd(W->dv, W->dvfirst, W->tmp, W->dvm, A->vgate, A->v, W->vfirst, BT * C);
        colsum_acc(G + o->v0, W->tmp, NULL, BT, C);
        gemm_tn(Dv, C, BTi, A->vh, W->tmp, G + o->v2, 1);
        gemm_nt(BTi, Dv, C, W->tmp, P + o->v2, W->dlora, 0);
        gemm_tn(C, Dv, BTi, A->mix[MIX_V], W->dlora, G + o->v1, 1);
        gemm_nt(BTi, C, Dv, W->dlora, P + o->v1, W->dmix[MIX_V], 0);
        vbeta = 1;
    } else {
        value_first_bwd(W->dv, W->dvm, W->dvfirst, BT * C);
    }

    /* decay w = w0 + tanh(xw w1) w2 */
    colsum_acc(G + o->w0, W->dw, NULL, BT, C);
    gemm_tn(Dw, C, BTi, A->tw, W->dw, G + o->w2, 1);
    gemm_nt(BTi, Dw, C, W->dw, P + o->w2, W->dlora, 0);
    tanh_bwd(W->dlora, A->tw, BT * Dw);
    gemm_tn(C, Dw, BTi, A->mix[MIX_W], W->dlora, G + o->w1, 1);
    gemm_nt(BTi, C, Dw, W->dlora, P + o->w1, W->dmix[MIX_W], 0);

    /* gate g = sigmoid(xg g1) g2 */
    gemm_tn(Dg, C, BTi, A->gh, W->dg, G + o->g2, 1);
    gemm_nt(BTi, Dg, C, W->dg, P + o->g2, W->dlora, 0);
    sigmoid_bwd(W->dlora, A->gh, BT * Dg);
    gemm_tn(C, Dg, BTi, A->mix[MIX_G], W->dlora, G + o->g1, 1);
    gemm_nt(BTi, C, Dg, W->dlora, P + o->g1, W->dmix[MIX_G], 0);

    /* r, k, v projections (d x_v adds to the value LoRA's share when l > 0) */
    gemm_tn(C, C, BTi, W->dr, A->mix[MIX_R], G + o->Wr, 1);
    gemm_nn(BTi, C, C, W->dr, P + o->Wr, W->dmix[MIX_R], 0);
    gemm_tn(C, C, BTi, W->dk, A->mix[MIX_K], G + o->Wk, 1);
    gemm_nn(BTi, C, C, W->dk, P + o->Wk, W->dmix[MIX_K], 0);
    gemm_tn(C, C, BTi, W->dv, A->mix[MIX_V], G + o->Wv, 1);
    gemm_nn(BTi, C, C, W->dv, P + o->Wv, W->dmix[MIX_V], vbeta);

    /* token shift + lerps, then h1 = LN1(xin): dx += d xin */
    const float *mu[NMIX];
    float *gmu[NMIX];
    for (int i = 0; i < NMIX; i++) { mu[i] = P + o->mix[i]; gmu[i] = G + o->mix[i]; }
    shift_mix_bwd(W->dh, gmu, W->tmp, W->dmix, A->h1, mu, NMIX, B, T, C);
    layernorm_bwd(dx, G + o->ln1_w, G + o->ln1_b, W->tmp, W->dh, xin, P + o->ln1_w,
                  A->ln1_mean, A->ln1_rstd, BT, C, 1);
}

/* ------------------------------------------------------------- public API */

float model_forward_loss(const Model *m, ModelWork *W, const int32_t *x, const int32_t *y)
{
    if (config_is_x060(&m->cfg)) return model6_forward_loss(m, W, x, y);
    size_t BT = (size_t)W->B * W->T;
    int V = m->cfg.vocab_size;
    if (!tokens_ok(x, BT, V) || !tokens_ok(y, BT, V)) return NAN;
    CpuThreads nb = threads_enter(W);
    forward_blocks(m, W, W->B, W->T, x, NULL);
    float loss = head_loss(m, W, y, NULL);
    threads_leave(nb);
    return loss;
}

void model_forward_logits(const Model *m, ModelWork *W, const int32_t *x, float *logits)
{
    if (config_is_x060(&m->cfg)) { model6_forward_logits(m, W, x, logits); return; }
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

float model_forward_backward(const Model *m, ModelWork *W, const int32_t *x, const int32_t *y, float *grad)
{
    if (config_is_x060(&m->cfg)) return model6_forward_backward(m, W, x, y, grad);
    const ModelConfig *c = &m->cfg;
    int B = W->B, T = W->T, C = c->n_embd, V = c->vocab_size, L = c->n_layer;
    size_t BT = (size_t)B * T;
    memset(grad, 0, m->layout.total * sizeof(float));
    if (!tokens_ok(x, BT, V) || !tokens_ok(y, BT, V)) return NAN;

    CpuThreads nb = threads_enter(W);
    forward_blocks(m, W, B, T, x, NULL);
    float loss = head_loss(m, W, y, grad);

    memset(W->dvfirst, 0, BT * C * sizeof(float));
    for (int l = L - 1; l >= 0; l--) {
        LayerAct *A = &W->act[W->nact == 1 ? 0 : l];
        if (W->mode == MODE_TRAIN_CP)   /* recompute this block's activations from its stored input */
            block_forward(m, W, l, A, B, T, W->xin[l], W->xin[l + 1], NULL);
        block_backward(m, W, l, A, B, T, W->xin[l], grad);
    }

    /* ln0 and the embedding rows */
    const LayerOff *o0 = &W->off.l[0];
    layernorm_bwd(W->dh, grad + o0->ln0_w, grad + o0->ln0_b, W->tmp, W->dx, W->x_emb, m->w + o0->ln0_w,
                  W->ln0_mean, W->ln0_rstd, BT, C, 0);
    embedding_bwd(grad + W->off.emb, W->dh, x, BT, C);
    threads_leave(nb);
    return loss;
}

/* ---- recurrent mode ---- */

ModelState *model_state_new(const Model *m, Error *e)
{
    if (config_is_x060(&m->cfg)) return model6_state_new(m, e);
    const ModelConfig *c = &m->cfg;
    ModelState *s = calloc(1, sizeof *s);
    if (!s) { fail(e, "out of memory"); return NULL; }
    s->cfg = *c;
    size_t LC = (size_t)c->n_layer * c->n_embd;
    s->att_shift = calloc(LC, sizeof(float));
    s->ffn_shift = calloc(LC, sizeof(float));
    s->wkv = calloc(LC * HS, sizeof(float));     /* L * H * 64 * 64 = L * C * 64 */
    if (!s->att_shift || !s->ffn_shift || !s->wkv) {
        fail(e, "out of memory");
        model_state_free(s);
        return NULL;
    }
    s->w = work_new(m, 1, PREFILL_CHUNK, MODE_INFER, e);
    if (!s->w) { model_state_free(s); return NULL; }
    return s;
}

void model_state_reset(ModelState *s)
{
    if (model6_owns(s)) { model6_state_reset(s); return; }
    size_t LC = (size_t)s->cfg.n_layer * s->cfg.n_embd;
    memset(s->att_shift, 0, LC * sizeof(float));
    memset(s->ffn_shift, 0, LC * sizeof(float));
    memset(s->wkv, 0, LC * HS * sizeof(float));
}

void model_state_free(ModelState *s)
{
    _Static_assert(offsetof(ModelState, cfg) == 0, "model6_owns reads the leading ModelConfig");
    if (model6_owns(s)) { model6_state_free(s); return; }
    if (!s) return;
    free(s->att_shift);
    free(s->ffn_shift);
    free(s->wkv);
    model_work_free(s->w);
    free(s);
}

void model_step(const Model *m, ModelState *s, int32_t token, float *logits)
{
    if (config_is_x060(&m->cfg)) { model6_step(m, s, token, logits); return; }
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

int model_prefill(const Model *m, ModelState *s, const int32_t *tokens, int n, float *logits, Error *e)
{
    if (config_is_x060(&m->cfg)) return model6_prefill(m, s, tokens, n, logits, e);
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
