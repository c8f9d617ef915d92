// cuda/backend_cuda.cu: the training backend on one CUDA device (lib/backend.h), composing the
// kernels of cuda/*.cuh in the block order of lib/model.c (RWKV-LM-V7 src/model.py): the same
// steps, each CPU op replaced by its `_cuda` twin and each BLAS call by gemm_cuda.
//
// Numerics with --precision bf16 as the reference's bf16 trainer: activations and their gradients
// bf16, statistics, scratch and parameter gradients fp32, fp32 masters and Adam moments (DeepSpeed
// FusedAdam), the bf16 weight copy rounded to nearest-even in the same pass as the update.  With
// fp32/tf32 the same steps are instantiated on float (template parameter Act): activations and
// their gradients fp32, the forward and backward reading the fp32 masters (no bf16 copy), GEMMs
// in fp32, or TF32 on the tensor cores, as lib/backend_cpu.c's fp32 mode.  Every kernel sums in
// a fixed order and every GEMM key keeps its algorithm (gemm.cuh), so a step repeats bit for bit:
// a resumed run equals an uninterrupted one.
//
// Memory: every device buffer comes from three arenas sized by lib/gpuplan.c (the plan
// `rwkv-train --dry-run` prints), allocated once at open; a plan larger than the device's free
// memory is refused there with the numbers.  grad_cp keeps the block inputs only and recomputes
// each block before its backward.
//
// The same source runs on the CPU through cuda/emu.h (build/cuda-emu/bin/rwkv-train), which is
// how CI tests it against the CPU backend.
#include "emu.h"
#include <cuda_bf16.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "adam.cuh"
#include "fill.cuh"
#include "gemm.cuh"
#include "mix.cuh"
#include "norm.cuh"
#include "wkv7.cuh"
#include "xent.cuh"
#include "comm_nccl.cuh"

extern "C" {
#include "backend.h"
#include "comm.h"
#include "gpu_decode.h"
#include "gpuplan.h"
#include "launch.h"
#include "model.h"
#include "optim.h"
#include "tensors.h"
}
#include "ops.h"

typedef __nv_bfloat16 bf16;

namespace {

enum { MIX_R, MIX_W, MIX_K, MIX_V, MIX_A, MIX_G, NMIX };
const size_t NONE = (size_t)-1;

// Parameter offsets (floats = bf16 elements: both copies share Layout order).
struct LayerOff {
    size_t ln1_w, ln1_b, ln2_w, ln2_b, ln0_w, ln0_b, mix[NMIX];
    size_t w1, w2, w0, a1, a2, a0, v1, v2, v0, g1, g2, k_k, k_a, r_k;
    size_t Wr, Wk, Wv, Wo, lnx_w, lnx_b, fx_k, Fk, Fv;
};

struct Cuda {
    BackendConfig cfg;
    ModelConfig mc;
    Layout layout;
    LayerOff *off;
    size_t emb, lnout_w, lnout_b, head;
    size_t P;                      // parameters
    int dev;
    cudaStream_t s;
    GemmContext *gemm;
    void *params, *acts, *work;    // the three arenas
    bf16 *w;                       // bf16 weights
    float *master, *m, *v, *grad;
    GpuWork W;
    float *host_loss;              // B*T row losses
    uint64_t peak_used;
    // data parallel (BackendConfig.comm): host for the small sums and the state, dev for the
    // gradient and the weights (NCCL on a GPU; the host communicator itself under the
    // emulation, whose device memory is host memory)
    GpuShard sh;
    Comm *host_comm, *dev_comm;
    int dev_comm_owned;
    float *grad_shard;             // this rank's reduced gradient: its block of grad (in place)
    float *state_mine, *state_all; // host staging of get_state_sharded: 3 shards, then world shards
};

// --------------------------------------------------------------------------- errors

int cuda_fail(Error *e, cudaError_t err, const char *call, const char *file, int line) {
    return fail(e, "%s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString(err), cudaGetErrorName(err));
}
#define CK(call)                                                                     \
    do {                                                                             \
        cudaError_t err_ = (call);                                                   \
        if (err_ != cudaSuccess) return cuda_fail(e, err_, #call, __FILE__, __LINE__); \
    } while (0)

// --------------------------------------------------------------------------- setup

size_t off_of(const Layout *L, int layer, const char *name) {
    char full[64];
    if (layer >= 0) snprintf(full, sizeof full, "blocks.%d.%s", layer, name);
    else snprintf(full, sizeof full, "%s", name);
    const ParamInfo *p = layout_find(L, full);
    return p ? p->offset : NONE;
}

int offsets_build(Cuda *c, Error *e) {
    const Layout *L = &c->layout;
    int nl = c->mc.n_layer;
    c->off = (LayerOff *)calloc((size_t)nl, sizeof *c->off);
    if (!c->off) return fail(e, "out of memory");
    c->emb = off_of(L, -1, "emb.weight");
    c->lnout_w = off_of(L, -1, "ln_out.weight");
    c->lnout_b = off_of(L, -1, "ln_out.bias");
    c->head = off_of(L, -1, "head.weight");
    if (c->emb == NONE || c->lnout_w == NONE || c->lnout_b == NONE || c->head == NONE)
        return fail(e, "model layout lacks emb/ln_out/head");
    static const char *mixn[NMIX] = {"att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g"};
    for (int l = 0; l < nl; l++) {
        LayerOff *o = &c->off[l];
        struct { size_t *dst; const char *name; int optional; } tab[] = {
            {&o->ln1_w, "ln1.weight", 0}, {&o->ln1_b, "ln1.bias", 0}, {&o->ln2_w, "ln2.weight", 0},
            {&o->ln2_b, "ln2.bias", 0}, {&o->ln0_w, "ln0.weight", l > 0}, {&o->ln0_b, "ln0.bias", l > 0},
            {&o->w1, "att.w1", 0}, {&o->w2, "att.w2", 0}, {&o->w0, "att.w0", 0},
            {&o->a1, "att.a1", 0}, {&o->a2, "att.a2", 0}, {&o->a0, "att.a0", 0},
            {&o->v1, "att.v1", l == 0}, {&o->v2, "att.v2", l == 0}, {&o->v0, "att.v0", l == 0},
            {&o->g1, "att.g1", 0}, {&o->g2, "att.g2", 0},
            {&o->k_k, "att.k_k", 0}, {&o->k_a, "att.k_a", 0}, {&o->r_k, "att.r_k", 0},
            {&o->Wr, "att.receptance.weight", 0}, {&o->Wk, "att.key.weight", 0},
            {&o->Wv, "att.value.weight", 0}, {&o->Wo, "att.output.weight", 0},
            {&o->lnx_w, "att.ln_x.weight", 0}, {&o->lnx_b, "att.ln_x.bias", 0},
            {&o->fx_k, "ffn.x_k", 0}, {&o->Fk, "ffn.key.weight", 0}, {&o->Fv, "ffn.value.weight", 0},
        };
        for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
            *tab[i].dst = off_of(L, l, tab[i].name);
            if (*tab[i].dst == NONE && !tab[i].optional) return fail(e, "model layout lacks blocks.%d.%s", l, tab[i].name);
        }
        for (int i = 0; i < NMIX; i++) {
            o->mix[i] = off_of(L, l, mixn[i]);
            if (o->mix[i] == NONE) return fail(e, "model layout lacks blocks.%d.%s", l, mixn[i]);
        }
    }
    return 0;
}

// --------------------------------------------------------------------------- GEMM

// The activations' type decides the product: bf16 inputs (bf16 or fp32 output), or fp32 inputs and
// output with fp32 or, with --precision tf32, TF32 compute (gemm.cuh).
cudaError_t run_gemm(Cuda *c, int ta, int tb, int M, int N, int K, const bf16 *A, const bf16 *B, bf16 *D, float beta) {
    return gemm_cuda(c->gemm, ta, tb, M, N, K, A, B, D, beta, c->W.gemm_workspace, GPU_GEMM_WORKSPACE_BYTES, c->s);
}
cudaError_t run_gemm(Cuda *c, int ta, int tb, int M, int N, int K, const bf16 *A, const bf16 *B, float *D, float beta) {
    return gemm_cuda(c->gemm, ta, tb, M, N, K, A, B, D, beta, c->W.gemm_workspace, GPU_GEMM_WORKSPACE_BYTES, c->s);
}
cudaError_t run_gemm(Cuda *c, int ta, int tb, int M, int N, int K, const float *A, const float *B, float *D,
                     float beta) {
    return gemm_cuda(c->gemm, ta, tb, M, N, K, A, B, D, beta, c->cfg.tf32, c->W.gemm_workspace,
                     GPU_GEMM_WORKSPACE_BYTES, c->s);
}

// D = op(A) op(B) + beta D, as lib/model.c's gemm (gemm.cuh); a failure names the cuBLASLt call.
template <class TI, class TD>
int gemm(Cuda *c, int ta, int tb, int M, int N, int K, const TI *A, const TI *B, TD *D, float beta, Error *e,
         int line) {
    cudaError_t err = run_gemm(c, ta, tb, M, N, K, A, B, D, beta);
    if (err == cudaSuccess) return 0;
    return fail(e, "%s:%d: gemm_cuda(%d, %d, M=%d, N=%d, K=%d): %s (%s)", __FILE__, line, ta, tb, M, N, K,
                cudaGetErrorString(err), gemm_error(c->gemm));
}
#define GEMM(ta, tb, M, N, K, A, B, D, beta)                                   \
    do {                                                                       \
        if (gemm(c, ta, tb, M, N, K, A, B, D, beta, e, __LINE__)) return -1;   \
    } while (0)

// What the forward and backward read as the weights: the bf16 copies, or in fp32/tf32 the fp32
// masters themselves (lib/backend_cpu.c does the same).
template <class Act> const Act *weights(const Cuda *c);
template <> const bf16 *weights<bf16>(const Cuda *c) { return c->w; }
template <> const float *weights<float>(const Cuda *c) { return c->master; }

// --------------------------------------------------------------------------- forward

// The recurrent state of one layer (B == 1): the token-shift inputs and the WKV state, read as
// the starting point and replaced by the final one (lib/model.c ModelState); NULL in training.
template <class Act> struct LayerStateT {
    Act *att_shift, *ffn_shift;    // C each
    float *wkv;                    // H * 64 * 64
};
typedef LayerStateT<bf16> LayerState;   // decoding runs in bf16

// xout = xin + TimeMix(LN1 xin), then + ChannelMix(LN2 .)   (lib/model.c block_forward)
template <class Act>
int block_forward(Cuda *c, int l, GpuLayerAct *A, const Act *xin, Act *xout, const LayerStateT<Act> *st, Error *e) {
    const ModelConfig *mc = &c->mc;
    const LayerOff *o = &c->off[l];
    const Act *P = weights<Act>(c);
    GpuWork *W = &c->W;
    cudaStream_t s = c->s;
    int B = c->cfg.B, T = c->cfg.T, C = mc->n_embd, H = mc->n_head, BTi = B * T;
    size_t BT = (size_t)B * T;
    int Dw = mc->d_decay, Da = mc->d_aaa, Dv = mc->d_mv, Dg = mc->d_gate;
    Act *mix[NMIX];
    const Act *mu[NMIX];
    for (int i = 0; i < NMIX; i++) { mix[i] = (Act *)A->mix[i]; mu[i] = P + o->mix[i]; }
    Act *h1 = (Act *)A->h1, *r = (Act *)A->r, *k = (Act *)A->k, *v = (Act *)A->v, *tw = (Act *)A->tw;
    Act *w = (Act *)A->w, *vh = (Act *)A->vh, *ah = (Act *)A->ah, *a = (Act *)A->a, *gh = (Act *)A->gh;
    Act *g = (Act *)A->g, *kk = (Act *)A->kk, *kp = (Act *)A->kp, *vm = (Act *)A->vm, *y = (Act *)A->y;
    Act *out = (Act *)A->out, *xmid = (Act *)A->xmid, *h2 = (Act *)A->h2, *cmix = (Act *)A->cmix;
    Act *act = (Act *)A->act, *vfirst = (Act *)W->vfirst;

    CK(layernorm_fwd_cuda(h1, A->ln1_mean, A->ln1_rstd, xin, P + o->ln1_w, P + o->ln1_b, BT, C, 1e-5f, s));
    CK(shift_mix_fwd_cuda(mix, h1, st ? st->att_shift : NULL, mu, NMIX, B, T, C, s));
    if (st) CK(cudaMemcpyAsync(st->att_shift, h1 + (size_t)(T - 1) * C, C * sizeof(Act), cudaMemcpyDeviceToDevice, s));
    GEMM(0, 1, BTi, C, C, mix[MIX_R], P + o->Wr, r, 0.0f);
    GEMM(0, 1, BTi, C, C, mix[MIX_K], P + o->Wk, k, 0.0f);
    GEMM(0, 1, BTi, C, C, mix[MIX_V], P + o->Wv, v, 0.0f);
    // decay w = w0 + tanh(xw w1) w2 (raw)
    GEMM(0, 0, BTi, Dw, C, mix[MIX_W], P + o->w1, tw, 0.0f);
    CK(tanh_fwd_cuda(tw, BT * Dw, s));
    CK(fill_rows_cuda(w, P + o->w0, BT, C, s));
    GEMM(0, 0, BTi, C, Dw, tw, P + o->w2, w, 1.0f);
    // value residual
    if (l == 0) {
        CK(cudaMemcpyAsync(vfirst, v, BT * C * sizeof(Act), cudaMemcpyDeviceToDevice, s));
        CK(cudaMemcpyAsync(vm, v, BT * C * sizeof(Act), cudaMemcpyDeviceToDevice, s));
    } else {
        GEMM(0, 0, BTi, Dv, C, mix[MIX_V], P + o->v1, vh, 0.0f);
        CK(fill_rows_cuda(A->vgate, P + o->v0, BT, C, s));     // pre-activation summed in fp32
        GEMM(0, 0, BTi, C, Dv, vh, P + o->v2, A->vgate, 1.0f);
        CK(value_residual_fwd_cuda(vm, A->vgate, v, vfirst, BT * C, s));
    }
    // a = sigmoid(a0 + xa a1 a2)
    GEMM(0, 0, BTi, Da, C, mix[MIX_A], P + o->a1, ah, 0.0f);
    CK(fill_rows_cuda(a, P + o->a0, BT, C, s));
    GEMM(0, 0, BTi, C, Da, ah, P + o->a2, a, 1.0f);
    CK(sigmoid_fwd_cuda(a, BT * C, s));
    // g = sigmoid(xg g1) g2
    GEMM(0, 0, BTi, Dg, C, mix[MIX_G], P + o->g1, gh, 0.0f);
    CK(sigmoid_fwd_cuda(gh, BT * Dg, s));
    GEMM(0, 0, BTi, C, Dg, gh, P + o->g2, g, 0.0f);
    CK(keyprep_fwd_cuda(kk, kp, A->inv, k, a, P + o->k_k, P + o->k_a, BT, H, s));
    CK(wkv7_fwd_cuda(y, st ? NULL : A->ckpt, st ? st->wkv : NULL, r, w, kp, vm, kk, a, B, T, H, s));
    CK(gn_bonus_gate_fwd_cuda(out, A->gn_mean, A->gn_rstd, A->bonus, y, r, kp, vm, g, P + o->lnx_w, P + o->lnx_b,
                              P + o->r_k, BT, H, s));
    // xmid = x + out Wo^T (one rounding of the fp32 sum)
    CK(cudaMemcpyAsync(xmid, xin, BT * C * sizeof(Act), cudaMemcpyDeviceToDevice, s));
    GEMM(0, 1, BTi, C, C, out, P + o->Wo, xmid, 1.0f);
    // ChannelMix
    CK(layernorm_fwd_cuda(h2, A->ln2_mean, A->ln2_rstd, xmid, P + o->ln2_w, P + o->ln2_b, BT, C, 1e-5f, s));
    Act *fout[1] = {cmix};
    const Act *fmu[1] = {P + o->fx_k};
    CK(shift_mix_fwd_cuda(fout, h2, st ? st->ffn_shift : NULL, fmu, 1, B, T, C, s));
    if (st) CK(cudaMemcpyAsync(st->ffn_shift, h2 + (size_t)(T - 1) * C, C * sizeof(Act), cudaMemcpyDeviceToDevice, s));
    GEMM(0, 1, BTi, 4 * C, C, cmix, P + o->Fk, act, 0.0f);
    CK(relu_sq_fwd_cuda(act, BT * 4 * C, s));
    CK(cudaMemcpyAsync(xout, xmid, BT * C * sizeof(Act), cudaMemcpyDeviceToDevice, s));
    GEMM(0, 1, BTi, C, 4 * C, act, P + o->Fv, xout, 1.0f);
    return 0;
}

GpuLayerAct *layer_act(Cuda *c, int l) { return &c->W.act[c->W.nact == 1 ? 0 : l]; }

// st: n_layer states (inference), or NULL.
template <class Act>
int forward_blocks(Cuda *c, const LayerStateT<Act> *st, Error *e) {
    GpuWork *W = &c->W;
    size_t BT = (size_t)c->cfg.B * c->cfg.T;
    int C = c->mc.n_embd;
    const LayerOff *o0 = &c->off[0];
    CK(embedding_fwd_cuda((Act *)W->x_emb, W->tokens, weights<Act>(c) + c->emb, BT, C, c->s));
    CK(layernorm_fwd_cuda((Act *)W->xin[0], W->ln0_mean, W->ln0_rstd, (Act *)W->x_emb, weights<Act>(c) + o0->ln0_w,
                          weights<Act>(c) + o0->ln0_b, BT, C, 1e-5f, c->s));
    for (int l = 0; l < c->mc.n_layer; l++)
        if (block_forward<Act>(c, l, layer_act(c, l), (Act *)W->xin[l], (Act *)W->xin[l + 1], st ? &st[l] : NULL, e))
            return -1;
    return 0;
}

// ln_out, the head in row chunks, the fused CE + L2Wrap: head and ln_out gradients into c->grad,
// d(loss)/d(last block output) into W->dx; row losses left in W->row_loss.
template <class Act>
int head_loss(Cuda *c, Error *e) {
    GpuWork *W = &c->W;
    cudaStream_t s = c->s;
    int C = c->mc.n_embd, V = c->mc.vocab_size, L = c->mc.n_layer;
    size_t BT = (size_t)c->cfg.B * c->cfg.T;
    const Act *head = weights<Act>(c) + c->head;
    Act *hf = (Act *)W->hf, *logits = (Act *)W->logits, *dh = (Act *)W->dh;
    const int32_t *y = W->tokens + BT;
    CK(layernorm_fwd_cuda(hf, W->lnf_mean, W->lnf_rstd, (Act *)W->xin[L], weights<Act>(c) + c->lnout_w, weights<Act>(c) + c->lnout_b, BT,
                          C, 1e-5f, s));
    for (size_t r0 = 0; r0 < BT; r0 += W->head_rows) {
        int rows = BT - r0 < (size_t)W->head_rows ? (int)(BT - r0) : W->head_rows;
        GEMM(0, 1, rows, V, C, hf + r0 * C, head, logits, 0.0f);
        CK(xent_l2wrap_fwdbwd_cuda(logits, W->row_loss + r0, y + r0, rows, BT, V, s));   // logits -> d logits
        GEMM(1, 0, V, C, rows, logits, hf + r0 * C, c->grad + c->head, 1.0f);             // fp32 head gradient
        GEMM(0, 0, rows, C, V, logits, head, dh + r0 * C, 0.0f);
    }
    CK(layernorm_bwd_cuda((Act *)W->dx, c->grad + c->lnout_w, c->grad + c->lnout_b, W->tmp, dh, (Act *)W->xin[L],
                          weights<Act>(c) + c->lnout_w, W->lnf_mean, W->lnf_rstd, BT, C, 0, s));
    return 0;
}

// --------------------------------------------------------------------------- backward

// On entry W->dx = d(loss)/d(block output); on return d(loss)/d(block input).  (model.c block_backward)
template <class Act>
int block_backward(Cuda *c, int l, const GpuLayerAct *A, const Act *xin, Error *e) {
    const ModelConfig *mc = &c->mc;
    const LayerOff *o = &c->off[l];
    const Act *P = weights<Act>(c);
    float *G = c->grad;
    GpuWork *W = &c->W;
    cudaStream_t s = c->s;
    int B = c->cfg.B, T = c->cfg.T, C = mc->n_embd, H = mc->n_head, BTi = B * T;
    size_t BT = (size_t)B * T;
    int Dw = mc->d_decay, Da = mc->d_aaa, Dv = mc->d_mv, Dg = mc->d_gate;
    Act *dx = (Act *)W->dx, *dh = (Act *)W->dh, *dy = (Act *)W->dy, *dact = (Act *)W->dact;
    Act *dout = (Act *)W->dout, *dr = (Act *)W->dr, *dkp = (Act *)W->dkp, *dvm = (Act *)W->dvm;
    Act *dg = (Act *)W->dg, *dw = (Act *)W->dw, *dkk = (Act *)W->dkk, *da = (Act *)W->da, *dk = (Act *)W->dk;
    Act *dv = (Act *)W->dv, *dlora = (Act *)W->dlora, *dpre = (Act *)W->dpre, *dvfirst = (Act *)W->dvfirst;
    const Act *act = (const Act *)A->act, *cmix = (const Act *)A->cmix, *h2 = (const Act *)A->h2;
    const Act *xmid = (const Act *)A->xmid, *out = (const Act *)A->out, *y = (const Act *)A->y;
    const Act *r = (const Act *)A->r, *kp = (const Act *)A->kp, *vm = (const Act *)A->vm, *g = (const Act *)A->g;
    const Act *w = (const Act *)A->w, *kk = (const Act *)A->kk, *a = (const Act *)A->a, *k = (const Act *)A->k;
    const Act *v = (const Act *)A->v, *vh = (const Act *)A->vh, *tw = (const Act *)A->tw;
    const Act *ah = (const Act *)A->ah, *gh = (const Act *)A->gh, *h1 = (const Act *)A->h1;
    const Act *vfirst = (const Act *)W->vfirst;
    const Act *mix[NMIX], *mu[NMIX];
    Act *dmix[NMIX];
    float *gmu[NMIX];
    for (int i = 0; i < NMIX; i++) {
        mix[i] = (const Act *)A->mix[i];
        mu[i] = P + o->mix[i];
        dmix[i] = (Act *)W->dmix[i];
        gmu[i] = G + o->mix[i];
    }
    const Act *no_act = NULL;

    // ChannelMix: xout = xmid + relu(cmix Kw^T)^2 Vw^T
    GEMM(1, 0, C, 4 * C, BTi, dx, act, G + o->Fv, 1.0f);
    GEMM(0, 0, BTi, 4 * C, C, dx, P + o->Fv, dact, 0.0f);
    CK(relu_sq_bwd_cuda(dact, act, BT * 4 * C, s));
    GEMM(1, 0, 4 * C, C, BTi, dact, cmix, G + o->Fk, 1.0f);
    GEMM(0, 0, BTi, C, 4 * C, dact, P + o->Fk, dh, 0.0f);   // d cmix
    {
        const Act *fmu[1] = {P + o->fx_k};
        const Act *dcm[1] = {dh};
        float *fg[1] = {G + o->fx_k};
        CK(shift_mix_bwd_cuda(dy, fg, W->tmp, dcm, h2, fmu, 1, B, T, C, s));   // dy = d h2
    }
    CK(layernorm_bwd_cuda(dx, G + o->ln2_w, G + o->ln2_b, W->tmp, dy, xmid, P + o->ln2_w, A->ln2_mean, A->ln2_rstd,
                          BT, C, 1, s));
    // output projection
    GEMM(1, 0, C, C, BTi, dx, out, G + o->Wo, 1.0f);
    GEMM(0, 0, BTi, C, C, dx, P + o->Wo, dout, 0.0f);
    CK(gn_bonus_gate_bwd_cuda(dy, dr, dkp, dvm, dg, G + o->lnx_w, G + o->lnx_b, G + o->r_k, dout, W->tmp, W->tmp2, y, r,
                              kp, vm, g, A->gn_mean, A->gn_rstd, A->bonus, P + o->lnx_w, P + o->lnx_b, P + o->r_k, BT,
                              H, s));
    CK(wkv7_bwd_cuda(dr, dw, dkp, dvm, dkk, da, W->wkv_scratch, dy, r, w, kp, vm, kk, a, A->ckpt, B, T, H, s));
    CK(keyprep_bwd_cuda(dk, da, G + o->k_k, G + o->k_a, W->tmp, W->tmp2, dkk, dkp, k, a, kk, A->inv, P + o->k_k,
                        P + o->k_a, BT, H, s));
    // a = sigmoid(a0 + xa a1 a2)
    CK(sigmoid_bwd_cuda(da, a, BT * C, s));
    CK(colsum_acc_cuda(G + o->a0, da, no_act, BT, C, s));
    GEMM(1, 0, Da, C, BTi, ah, da, G + o->a2, 1.0f);
    GEMM(0, 1, BTi, Da, C, da, P + o->a2, dlora, 0.0f);
    GEMM(1, 0, C, Da, BTi, mix[MIX_A], dlora, G + o->a1, 1.0f);
    GEMM(0, 1, BTi, C, Da, dlora, P + o->a1, dmix[MIX_A], 0.0f);
    // value residual
    float vbeta = 0;
    if (l > 0) {
        CK(value_residual_bwd_cuda(dv, dvfirst, dpre, dvm, A->vgate, v, vfirst, BT * C, s));
        CK(colsum_acc_cuda(G + o->v0, dpre, no_act, BT, C, s));
        GEMM(1, 0, Dv, C, BTi, vh, dpre, G + o->v2, 1.0f);
        GEMM(0, 1, BTi, Dv, C, dpre, P + o->v2, dlora, 0.0f);
        GEMM(1, 0, C, Dv, BTi, mix[MIX_V], dlora, G + o->v1, 1.0f);
        GEMM(0, 1, BTi, C, Dv, dlora, P + o->v1, dmix[MIX_V], 0.0f);
        vbeta = 1;
    } else {
        CK(value_first_bwd_cuda(dv, dvm, dvfirst, BT * C, s));
    }
    // decay w = w0 + tanh(xw w1) w2
    CK(colsum_acc_cuda(G + o->w0, dw, no_act, BT, C, s));
    GEMM(1, 0, Dw, C, BTi, tw, dw, G + o->w2, 1.0f);
    GEMM(0, 1, BTi, Dw, C, dw, P + o->w2, dlora, 0.0f);
    CK(tanh_bwd_cuda(dlora, tw, BT * Dw, s));
    GEMM(1, 0, C, Dw, BTi, mix[MIX_W], dlora, G + o->w1, 1.0f);
    GEMM(0, 1, BTi, C, Dw, dlora, P + o->w1, dmix[MIX_W], 0.0f);
    // gate g = sigmoid(xg g1) g2
    GEMM(1, 0, Dg, C, BTi, gh, dg, G + o->g2, 1.0f);
    GEMM(0, 1, BTi, Dg, C, dg, P + o->g2, dlora, 0.0f);
    CK(sigmoid_bwd_cuda(dlora, gh, BT * Dg, s));
    GEMM(1, 0, C, Dg, BTi, mix[MIX_G], dlora, G + o->g1, 1.0f);
    GEMM(0, 1, BTi, C, Dg, dlora, P + o->g1, dmix[MIX_G], 0.0f);
    // r, k, v projections
    GEMM(1, 0, C, C, BTi, dr, mix[MIX_R], G + o->Wr, 1.0f);
    GEMM(0, 0, BTi, C, C, dr, P + o->Wr, dmix[MIX_R], 0.0f);
    GEMM(1, 0, C, C, BTi, dk, mix[MIX_K], G + o->Wk, 1.0f);
    GEMM(0, 0, BTi, C, C, dk, P + o->Wk, dmix[MIX_K], 0.0f);
    GEMM(1, 0, C, C, BTi, dv, mix[MIX_V], G + o->Wv, 1.0f);
    GEMM(0, 0, BTi, C, C, dv, P + o->Wv, dmix[MIX_V], vbeta);
    // token shift + lerps, then LN1: dx += d xin
    const Act *cdmix[NMIX];
    for (int i = 0; i < NMIX; i++) cdmix[i] = dmix[i];
    CK(shift_mix_bwd_cuda(dh, gmu, W->tmp, cdmix, h1, mu, NMIX, B, T, C, s));
    CK(layernorm_bwd_cuda(dx, G + o->ln1_w, G + o->ln1_b, W->tmp, dh, xin, P + o->ln1_w, A->ln1_mean, A->ln1_rstd, BT,
                          C, 1, s));
    return 0;
}

// Forward, loss, backward: c->grad = d(loss)/d(w); *loss = mean over B*T (NaN for bad tokens).
template <class Act>
int forward_backward(Cuda *c, const int32_t *x, const int32_t *yv, float *loss, Error *e) {
    GpuWork *W = &c->W;
    size_t BT = (size_t)c->cfg.B * c->cfg.T;
    int C = c->mc.n_embd, V = c->mc.vocab_size, L = c->mc.n_layer;
    for (size_t i = 0; i < BT; i++)
        if (x[i] < 0 || x[i] >= V || yv[i] < 0 || yv[i] >= V) { *loss = NAN; return 0; }
    CK(cudaMemcpyAsync(W->tokens, x, BT * sizeof(int32_t), cudaMemcpyHostToDevice, c->s));
    CK(cudaMemcpyAsync(W->tokens + BT, yv, BT * sizeof(int32_t), cudaMemcpyHostToDevice, c->s));
    CK(cudaMemsetAsync(c->grad, 0, c->sh.padded * sizeof(float), c->s));   // the padding too: it is reduce-scattered
    if (forward_blocks<Act>(c, NULL, e) || head_loss<Act>(c, e)) return -1;
    CK(cudaMemsetAsync(W->dvfirst, 0, BT * C * sizeof(Act), c->s));
    for (int l = L - 1; l >= 0; l--) {
        GpuLayerAct *A = layer_act(c, l);
        if (c->cfg.grad_cp && block_forward<Act>(c, l, A, (Act *)W->xin[l], (Act *)W->xin[l + 1], NULL, e)) return -1;
        if (block_backward<Act>(c, l, A, (Act *)W->xin[l], e)) return -1;
    }
    const LayerOff *o0 = &c->off[0];
    CK(layernorm_bwd_cuda((Act *)W->dh, c->grad + o0->ln0_w, c->grad + o0->ln0_b, W->tmp, (Act *)W->dx,
                          (Act *)W->x_emb, weights<Act>(c) + o0->ln0_w, W->ln0_mean, W->ln0_rstd, BT, C, 0, c->s));
    CK(embedding_bwd_cuda(c->grad + c->emb, (Act *)W->dh, W->tokens, BT, C, c->s));
    CK(cudaMemcpyAsync(c->host_loss, W->row_loss, BT * sizeof(float), cudaMemcpyDeviceToHost, c->s));
    CK(cudaStreamSynchronize(c->s));
    double sum = 0;
    for (size_t i = 0; i < BT; i++) sum += c->host_loss[i];
    *loss = (float)(sum / (double)BT);
    return 0;
}

void note_memory(Cuda *c) {
#if CUDA_EMU
    // the emulation's "device" is the host: report what the backend allocated
    GpuArenaSizes sz;
    gpu_arena_sizes(&c->mc, &c->cfg, &sz);
    c->peak_used = sz.params + sz.acts + sz.work;
    return;
#endif
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && total_b >= free_b && total_b - free_b > c->peak_used)
        c->peak_used = total_b - free_b;
}

// --------------------------------------------------------------------------- Backend

// FusedAdam over the parameters this rank updates (all of them, or its shard; only parameter
// `only` when >= 0), each with its group's LR and decay (lib/optim.c adam_step); with `bad`,
// the check that writes nothing and counts.  Masters, moments and the gradient hold elements
// [lo, lo + n) of the flat vector (the whole of it unless sharded); the bf16 copy all of them.
int adam_all(Cuda *c, const StepArgs *a, unsigned long long *bad, int only, Error *e) {
    const size_t lo = c->sh.sharded ? c->sh.lo : 0, hi = lo + c->sh.n;
    const float *g = c->sh.sharded ? c->grad_shard : c->grad;
    const AdamConfig *ac = &c->cfg.adam;
    const float beta1 = (float)ac->beta1, beta2 = (float)ac->beta2, eps = (float)ac->eps;
    const float bc1 = (float)(1.0 - pow((double)beta1, (double)a->adam_step));
    const float bc2 = (float)(1.0 - pow((double)beta2, (double)a->adam_step));
    const int adamw = ac->weight_decay > 0;
    for (int k = only >= 0 ? only : 0; k < (only >= 0 ? only + 1 : c->layout.n); k++) {
        const ParamInfo *p = &c->layout.p[k];
        ParamGroup grp = param_group(p, ac->weight_decay);
        const float lr_g = (float)(a->lr * param_group_lr_scale(grp));
        const float wd = grp == GROUP_DECAY ? (float)ac->weight_decay : 0.0f;
        size_t a0 = p->offset > lo ? p->offset : lo, a1 = p->offset + p->numel < hi ? p->offset + p->numel : hi;
        if (a0 >= a1) continue;
        size_t o = a0 - lo, n = a1 - a0;
        if (bad)
            CK(adam_check_devscale_cuda(bad, c->master + o, c->m + o, c->v + o, g + o, n, c->W.clip_scale,
                                        lr_g, beta1, beta2, eps, bc1, bc2, wd, adamw, c->s));
        else
            CK(adam_update_devscale_cuda(c->master + o, c->m + o, c->v + o, c->w ? c->w + a0 : NULL, g + o, n,
                                         c->W.clip_scale, lr_g, beta1, beta2, eps, bc1, bc2, wd, adamw, c->s));
    }
    return 0;
}

// The first parameter whose update would be non-finite, named as lib/trainer.c names it
// ("adam_v of head.weight"); only after a step was refused, so one sync per tensor is fine.
int name_refused(Cuda *c, const StepArgs *a, char *out, size_t n, Error *e) {
    snprintf(out, n, "a weight or moment");
    for (int k = 0; k < c->layout.n; k++) {
        unsigned long long bad[3] = {0, 0, 0};
        CK(cudaMemsetAsync(c->W.update_bad, 0, sizeof bad, c->s));
        if (adam_all(c, a, c->W.update_bad, k, e)) return -1;
        CK(cudaMemcpyAsync(bad, c->W.update_bad, sizeof bad, cudaMemcpyDeviceToHost, c->s));
        CK(cudaStreamSynchronize(c->s));
        if (bad[0] || bad[1] || bad[2]) {
            snprintf(out, n, "%s of %s", bad[0] ? "the weight" : bad[1] ? "adam_m" : "adam_v", c->layout.p[k].name);
            break;
        }
    }
    return 0;
}

// Several ranks (lib/backend.h: collective, the same result on every rank): the gradient
// summed over ranks (all-reduce, or reduce-scatter in place to each rank's shard), the loss and the
// norm's sum of squares summed on the host communicator, this rank's part updated, then
// (sharded) the bf16 weights all-gathered.  The clip scale also divides by the world size: the
// update uses the mean gradient, as one rank with micro_bsz x W would.  Every rank makes every
// collective, whatever its own loss, so that none waits for a call another skipped.
int step_dp(Cuda *c, const StepArgs *a, StepResult *r, double t1, Error *e) {
    GpuWork *W = &c->W;
    cudaStream_t s = c->s;
    const GpuShard *sh = &c->sh;
    const double world = sh->world;
    if (a->poison) {
        const float nan = NAN;
        CK(cudaMemcpyAsync(c->grad + c->P / 2, &nan, sizeof nan, cudaMemcpyHostToDevice, s));
    }
    CK(cudaStreamSynchronize(s));   // the collectives start from finished buffers
    if (sh->sharded ? comm_reduce_scatter(c->dev_comm, c->grad, c->grad_shard, sh->shard, COMM_F32, e)
                    : comm_all_reduce(c->dev_comm, c->grad, sh->P, COMM_F32, e))
        return -1;
    double sums[2] = { r->loss, 0.0 };   // loss, sum of squares of the summed gradient
    CK(cudaMemsetAsync(W->sumsq, 0, sizeof(double), s));
    if (sh->n) CK(sumsq_acc_cuda(W->sumsq, W->sumsq_scratch, sh->sharded ? c->grad_shard : c->grad, sh->n, s));
    CK(cudaMemcpyAsync(&sums[1], W->sumsq, sizeof(double), cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    if (!sh->sharded && sh->rank != 0) sums[1] = 0;   // ddp: every rank has the whole sum; count it once
    if (comm_all_reduce(c->host_comm, sums, 2, COMM_F64, e)) return -1;
    r->loss = (float)(sums[0] / world);
    if (!std::isfinite(r->loss)) { r->t_update = now_seconds() - t1; return 0; }
    r->grad_norm = std::sqrt(sums[1]) / world;
    if (!std::isfinite(r->grad_norm)) { r->t_update = now_seconds() - t1; return 0; }
    const float scale = (float)(grad_clip_scale(r->grad_norm, c->cfg.adam.grad_clip) / world);
    CK(cudaMemcpyAsync(W->clip_scale, &scale, sizeof scale, cudaMemcpyHostToDevice, s));
    CK(cudaMemsetAsync(W->update_bad, 0, 3 * sizeof(unsigned long long), s));
    if (adam_all(c, a, W->update_bad, -1, e)) return -1;
    unsigned long long bad[3] = {0, 0, 0};
    CK(cudaMemcpyAsync(bad, W->update_bad, sizeof bad, cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    double nbad[3] = { (double)bad[0], (double)bad[1], (double)bad[2] };
    if (comm_all_reduce(c->host_comm, nbad, 3, COMM_F64, e)) return -1;
    if (nbad[0] || nbad[1] || nbad[2]) {   // named where this rank's part holds it
        if (name_refused(c, a, r->refused, sizeof r->refused, e)) return -1;
        r->t_update = now_seconds() - t1;
        return 0;
    }
    if (adam_all(c, a, NULL, -1, e)) return -1;
    if (sh->sharded) {   // in place: this rank's block of the weights to every rank
        CK(cudaStreamSynchronize(s));
        if (comm_all_gather(c->dev_comm, c->w + sh->lo, c->w, sh->shard * sizeof(bf16), e)) return -1;
    }
    CK(cudaStreamSynchronize(s));
    note_memory(c);
    r->applied = 1;
    r->t_update = now_seconds() - t1;
    return 0;
}

int cuda_step_once(Cuda *c, const int32_t *x, const int32_t *y, const StepArgs *a, StepResult *r, Error *e) {
    GpuWork *W = &c->W;
    cudaStream_t s = c->s;
    double t0 = now_seconds();
    if (c->cfg.bf16 ? forward_backward<bf16>(c, x, y, &r->loss, e) : forward_backward<float>(c, x, y, &r->loss, e))
        return -1;
    double t1 = now_seconds();
    r->t_model = t1 - t0;
    r->applied = 0;
    r->grad_norm = NAN;
    r->refused[0] = 0;
    if (c->sh.world > 1) return step_dp(c, a, r, t1, e);
    if (!std::isfinite(r->loss)) { r->t_update = 0; return 0; }
    if (a->poison) {
        const float nan = NAN;
        CK(cudaMemcpyAsync(c->grad + c->P / 2, &nan, sizeof nan, cudaMemcpyHostToDevice, s));
    }
    // global norm in double, one fixed-order pass over the whole flat gradient, then the clip scale
    CK(cudaMemsetAsync(W->sumsq, 0, sizeof(double), s));
    CK(sumsq_acc_cuda(W->sumsq, W->sumsq_scratch, c->grad, c->P, s));
    CK(clip_scale_cuda(W->clip_scale, W->norm, W->sumsq, c->cfg.adam.grad_clip, s));
    // the update computed once without writing: applied only if every new value is finite
    CK(cudaMemsetAsync(W->update_bad, 0, 3 * sizeof(unsigned long long), s));
    if (adam_all(c, a, W->update_bad, -1, e)) return -1;
    double norm = NAN;
    unsigned long long bad[3] = {0, 0, 0};
    CK(cudaMemcpyAsync(&norm, W->norm, sizeof norm, cudaMemcpyDeviceToHost, s));
    CK(cudaMemcpyAsync(bad, W->update_bad, sizeof bad, cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    r->grad_norm = norm;
    if (!std::isfinite(norm)) { r->t_update = now_seconds() - t1; return 0; }
    if (bad[0] || bad[1] || bad[2]) {
        if (name_refused(c, a, r->refused, sizeof r->refused, e)) return -1;
        r->t_update = now_seconds() - t1;
        return 0;
    }
    if (adam_all(c, a, NULL, -1, e)) return -1;
    CK(cudaStreamSynchronize(s));
    note_memory(c);
    r->applied = 1;
    r->t_update = now_seconds() - t1;
    return 0;
}

// A step that failed on this rank leaves its peers in, or on their way to, a collective: the
// device communicator is then broken, so that freeing it aborts instead of finalizing in an
// orderly way (which would wait for them until the timeout).
int cuda_step(Backend *b, const int32_t *x, const int32_t *y, const StepArgs *a, StepResult *r, Error *e) {
    Cuda *c = (Cuda *)b->impl;
    int rc = cuda_step_once(c, x, y, a, r, e);
    if (rc && c->dev_comm_owned) c->dev_comm->broken = 1;
    return rc;
}

// Sharded: each rank's part of masters, m and v through the host, all-gathered on the host
// communicator.  Every rank makes every call whatever it asked for or what failed on it: a
// failed copy is agreed on first (one all-reduce), so that all ranks fail the save together and
// none is left in a gather the others skipped.  The staging buffers are allocated at open.
int get_state_sharded(Cuda *c, float *w, float *m, float *v, Error *e) {
    const GpuShard *sh = &c->sh;
    float *dst[3] = { w, m, v };
    const float *src[3] = { c->master, c->m, c->v };
    cudaError_t err = cudaSuccess;
    for (int i = 0; i < 3 && sh->n && err == cudaSuccess; i++)
        err = cudaMemcpyAsync(c->state_mine + (size_t)i * sh->shard, src[i], sh->n * sizeof(float),
                              cudaMemcpyDeviceToHost, c->s);
    if (err == cudaSuccess) err = cudaStreamSynchronize(c->s);
    double failed = err != cudaSuccess;
    if (comm_all_reduce(c->host_comm, &failed, 1, COMM_F64, e)) return -1;
    if (err != cudaSuccess) return cuda_fail(e, err, "cudaMemcpyAsync (state shard)", __FILE__, __LINE__);
    if (failed) return fail(e, "another rank could not copy its part of the training state");
    for (int i = 0; i < 3; i++) {
        if (comm_all_gather(c->host_comm, c->state_mine + (size_t)i * sh->shard, c->state_all,
                            sh->shard * sizeof(float), e))
            return -1;
        if (dst[i]) memcpy(dst[i], c->state_all, c->P * sizeof(float));
    }
    return 0;
}

// Sharded: the whole fp32 weights staged through the (padded, whole) gradient buffer to make
// the bf16 copies of all of them; this rank keeps its part of the masters and moments.
int set_state_sharded(Cuda *c, const float *w, const float *m, const float *v, Error *e) {
    const GpuShard *sh = &c->sh;
    if (w) {
        CK(cudaMemcpyAsync(c->grad, w, c->P * sizeof(float), cudaMemcpyHostToDevice, c->s));
        CK(round_bf16_cuda(c->w, c->grad, c->P, c->s));
        if (sh->n) CK(cudaMemcpyAsync(c->master, c->grad + sh->lo, sh->n * sizeof(float), cudaMemcpyDeviceToDevice, c->s));
    }
    float *dst[2] = { c->m, c->v };
    const float *src[2] = { m, v };
    for (int i = 0; i < 2 && sh->n; i++) {
        if (src[i]) CK(cudaMemcpyAsync(dst[i], src[i] + sh->lo, sh->n * sizeof(float), cudaMemcpyHostToDevice, c->s));
        else CK(cudaMemsetAsync(dst[i], 0, sh->n * sizeof(float), c->s));
    }
    CK(cudaStreamSynchronize(c->s));
    return 0;
}

int cuda_get_state(Backend *b, float *w, float *m, float *v, Error *e) {
    Cuda *c = (Cuda *)b->impl;
    if (c->sh.sharded) return get_state_sharded(c, w, m, v, e);
    size_t bytes = c->P * sizeof(float);
    // every transfer on the backend's stream: it is non-blocking, so it does not wait for the
    // legacy default stream that plain cudaMemcpy/cudaMemset would use
    if (w) CK(cudaMemcpyAsync(w, c->master, bytes, cudaMemcpyDeviceToHost, c->s));
    if (m) CK(cudaMemcpyAsync(m, c->m, bytes, cudaMemcpyDeviceToHost, c->s));
    if (v) CK(cudaMemcpyAsync(v, c->v, bytes, cudaMemcpyDeviceToHost, c->s));
    CK(cudaStreamSynchronize(c->s));
    return 0;
}

int cuda_set_state(Backend *b, const float *w, const float *m, const float *v, Error *e) {
    Cuda *c = (Cuda *)b->impl;
    if (c->sh.sharded) return set_state_sharded(c, w, m, v, e);
    size_t bytes = c->P * sizeof(float);
    if (w) CK(cudaMemcpyAsync(c->master, w, bytes, cudaMemcpyHostToDevice, c->s));
    if (m) CK(cudaMemcpyAsync(c->m, m, bytes, cudaMemcpyHostToDevice, c->s));
    else CK(cudaMemsetAsync(c->m, 0, bytes, c->s));
    if (v) CK(cudaMemcpyAsync(c->v, v, bytes, cudaMemcpyHostToDevice, c->s));
    else CK(cudaMemsetAsync(c->v, 0, bytes, c->s));
    if (c->w) CK(round_bf16_cuda(c->w, c->master, c->P, c->s));
    CK(cudaStreamSynchronize(c->s));
    return 0;
}

void cuda_free(Backend *b) {
    if (!b) return;
    Cuda *c = (Cuda *)b->impl;
    if (c) {
        if (c->dev_comm_owned) comm_close(c->dev_comm);
        if (c->gemm) gemm_destroy(c->gemm);
        cudaFree(c->params);
        cudaFree(c->acts);
        cudaFree(c->work);
        if (c->s) cudaStreamDestroy(c->s);
        gpu_work_free_host(&c->W);
        free(c->host_loss);
        free(c->state_mine);
        free(c->state_all);
        free(c->off);
        layout_free(&c->layout);
        free(c);
    }
    free(b);
}

uint64_t cuda_peak(const Backend *b) { return ((const Cuda *)b->impl)->peak_used; }

int open_device(Cuda *c, const float *w0, Error *e) {
    const BackendConfig *bc = &c->cfg;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
        return fail(e, "--accelerator gpu: no CUDA device (%s)", err != cudaSuccess ? cudaGetErrorString(err) : "none found");
    // one device per rank on its machine: the launcher's local rank picks it
    int local = c->host_comm ? comm_local_rank(c->host_comm) : 0;
    if (local < 0) local = c->host_comm ? comm_rank(c->host_comm) : 0;
    if (CUDA_EMU || count == 1) local = 0;   // a device of its own (emulated, or the one a scheduler left visible)
    if (local >= count)
        return fail(e, "--accelerator gpu: rank %d is local rank %d on its machine, which has %d CUDA device%s "
                       "(--devices is per machine and must not exceed them)",
                    c->host_comm ? comm_rank(c->host_comm) : 0, local, count, count == 1 ? "" : "s");
    c->dev = local;
    CK(cudaSetDevice(local));
    if (c->sh.sharded && !bc->bf16)
        return fail(e, "--strategy %s with --precision fp32/tf32: the CUDA backend shards bf16 runs only "
                       "(use --strategy ddp, or --precision bf16)",
                    bc->strategy == DP_STAGE1 ? "deepspeed_stage_1" : "deepspeed_stage_2");
    if (bc->T % WKV7_CHUNK)
        return fail(e, "--ctx_len %d: the CUDA WKV kernel needs a multiple of %d (as the reference's CHUNK_LEN)", bc->T,
                    WKV7_CHUNK);
    if (c->mc.head_size != OPS_HEAD_SIZE) return fail(e, "head size must be %d", OPS_HEAD_SIZE);
    if (wkv7_bwd_cuda_scratch_floats(bc->B, bc->T, c->mc.n_head) * sizeof(float) >
        (size_t)bc->B * bc->T * c->mc.n_head * 64 * 4 + (size_t)bc->B * c->mc.n_head * 64 * 64 * 4)
        return fail(e, "internal: lib/gpuplan.c sizes the WKV backward scratch smaller than cuda/wkv7.cu needs");
    GpuArenaSizes sz;
    gpu_arena_sizes(&c->mc, bc, &sz);
    size_t free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b));
    size_t need = sz.params + sz.acts + sz.work;
    if (need > free_b)
        return fail(e, "out of memory: the plan needs %.1f MiB of device memory (parameters and optimizer %.1f, "
                       "activations and head %.1f, scratch %.1f) and the device has %.1f MiB free of %.1f: lower "
                       "--micro_bsz or --ctx_len, or use --grad_cp 1 (rwkv-train --dry-run prints the plan)",
                    need / 1048576.0, sz.params / 1048576.0, sz.acts / 1048576.0, sz.work / 1048576.0,
                    free_b / 1048576.0, total_b / 1048576.0);
    CK(cudaStreamCreateWithFlags(&c->s, cudaStreamNonBlocking));
    CK(cudaMalloc(&c->params, sz.params));
    CK(cudaMalloc(&c->acts, sz.acts));
    CK(cudaMalloc(&c->work, sz.work));
    if (gpu_work_carve(&c->W, &c->mc, bc, c->acts, c->work, e)) return -1;
    // the parameter arena in gpuplan.c's order (sharded: this rank's masters and moments)
    GpuParams gp;
    gpu_params_carve(&c->mc, bc, c->params, &gp);
    c->w = (bf16 *)gp.w;   // NULL in fp32/tf32: the kernels read the masters
    c->master = gp.master;
    c->m = gp.m;
    c->v = gp.v;
    c->grad = gp.grad;
    c->grad_shard = gp.grad + c->sh.lo;
    size_t P = c->P;
    c->host_loss = (float *)malloc((size_t)bc->B * bc->T * sizeof(float));
    if (!c->host_loss) return fail(e, "out of memory");
    if (c->sh.sharded) {   // tail of a short last shard: zeros, gathered into the padding
        c->state_mine = (float *)calloc(3 * c->sh.shard, sizeof(float));
        c->state_all = (float *)malloc(c->sh.padded * sizeof(float));
        if (!c->state_mine || !c->state_all)
            return fail(e, "out of memory for the host staging of the sharded training state (%.1f MiB)",
                        (3 * c->sh.shard + c->sh.padded) * 4 / 1048576.0);
    }
    err = gemm_create(&c->gemm);
    if (err != cudaSuccess) return cuda_fail(e, err, "gemm_create", __FILE__, __LINE__);
    if (c->sh.sharded) {
        if (set_state_sharded(c, w0, NULL, NULL, e)) return -1;
        note_memory(c);
        return 0;
    }
    // on c->s, ordered before the rounding below (see cuda_get_state)
    CK(cudaMemcpyAsync(c->master, w0, P * sizeof(float), cudaMemcpyHostToDevice, c->s));
    CK(cudaMemsetAsync(c->m, 0, P * sizeof(float), c->s));
    CK(cudaMemsetAsync(c->v, 0, P * sizeof(float), c->s));
    if (c->w) CK(round_bf16_cuda(c->w, c->master, P, c->s));
    CK(cudaStreamSynchronize(c->s));
    note_memory(c);
    return 0;
}

// The gradient's and the weights' communicator: NCCL between the devices, its id from rank 0
// through --init_file (a shared file system) or over the host communicator; under the
// emulation the host communicator itself (the "device" buffers are host memory there, and
// NCCL needs a GPU).
int open_device_comm(Cuda *c, Error *e) {
#if CUDA_EMU
    (void)e;
    c->dev_comm = c->host_comm;
    return 0;
#else
    // the id and, last, whether rank 0 could make one: the others then stop instead of waiting
    unsigned char id[COMM_NCCL_ID_BYTES + 1] = {0};
    int rank = comm_rank(c->host_comm);
    Error idfail = {};
    if (rank == 0 && comm_nccl_unique_id(id, &idfail)) id[COMM_NCCL_ID_BYTES] = 1;
    if (c->cfg.init_file ? launch_share_id_file(c->cfg.init_file, rank, comm_size(c->host_comm), id, sizeof id,
                                                c->host_comm->timeout, e)
                         : comm_broadcast(c->host_comm, id, sizeof id, 0, e))
        return -1;
    if (id[COMM_NCCL_ID_BYTES])
        return rank == 0 ? fail(e, "%s", idfail.msg) : fail(e, "rank 0 could not make the NCCL id");
    c->dev_comm = comm_nccl_open(rank, comm_size(c->host_comm), comm_local_rank(c->host_comm), c->dev, id,
                                 c->host_comm->timeout, c->s, e);
    if (!c->dev_comm) return -1;
    c->dev_comm_owned = 1;
    // a dead rank of --devices N ends NCCL's waits too, not only the host's
    comm_set_abort_check(c->dev_comm, c->host_comm->abort_check, c->host_comm->abort_arg);
    return 0;
#endif
}

// --------------------------------------------------------------------------- decoding

const int DECODE_CHUNK = 128;   // tokens per parallel pass of a prefill (lib/model.c PREFILL_CHUNK)

struct Decoder {
    Cuda c;                 // weights (bf16 only: c.params), work arenas for B = 1, T = DECODE_CHUNK
    LayerState *st;         // host array of n_layer, pointing into state_mem
    void *state_mem;        // token shifts (bf16) then WKV states (fp32)
    size_t state_bytes;
    float *logits;          // V fp32 on the device
};

int decoder_reset(Decoder *d, Error *e) {
    Cuda *c = &d->c;
    CK(cudaMemsetAsync(d->state_mem, 0, d->state_bytes, c->s));
    CK(cudaStreamSynchronize(c->s));
    return 0;
}

int decoder_open(Decoder *d, const Model *m, Error *e) {
    Cuda *c = &d->c;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0)
        return fail(e, "--accelerator gpu: no CUDA device (%s)", err != cudaSuccess ? cudaGetErrorString(err) : "none found");
    CK(cudaSetDevice(0));
    c->mc = m->cfg;
    if (config_is_x060(&c->mc))
        return fail(e, "--accelerator gpu: x060 (RWKV-6) models run on the CPU only for now (use --accelerator cpu)");
    if (c->mc.head_size != OPS_HEAD_SIZE) return fail(e, "head size must be %d", OPS_HEAD_SIZE);
    c->cfg.B = 1;
    c->cfg.T = DECODE_CHUNK;
    c->cfg.grad_cp = 1;   // one block's activations
    c->cfg.bf16 = 1;
    if (layout_build(&c->mc, &c->layout, e)) return -1;
    c->P = c->layout.total;
    if (offsets_build(c, e)) return -1;
    GpuArenaSizes sz;
    gpu_arena_sizes(&c->mc, &c->cfg, &sz);
    int L = c->mc.n_layer, C = c->mc.n_embd, H = c->mc.n_head;
    size_t shift_bytes = (size_t)L * C * sizeof(bf16), wkv_bytes = (size_t)L * H * 64 * 64 * sizeof(float);
    d->state_bytes = 2 * shift_bytes + wkv_bytes;
    size_t need = c->P * 2 + sz.acts + sz.work + d->state_bytes + (size_t)c->mc.vocab_size * 4, free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b));
    if (need > free_b)
        return fail(e, "out of memory: decoding needs %.1f MiB of device memory and the device has %.1f MiB free of %.1f",
                    need / 1048576.0, free_b / 1048576.0, total_b / 1048576.0);
    CK(cudaStreamCreateWithFlags(&c->s, cudaStreamNonBlocking));
    CK(cudaMalloc(&c->params, c->P * sizeof(bf16)));
    CK(cudaMalloc(&c->acts, sz.acts));
    CK(cudaMalloc(&c->work, sz.work));
    CK(cudaMalloc(&d->state_mem, d->state_bytes));
    CK(cudaMalloc(&d->logits, (size_t)c->mc.vocab_size * sizeof(float)));
    if (gpu_work_carve(&c->W, &c->mc, &c->cfg, c->acts, c->work, e)) return -1;
    c->w = (bf16 *)c->params;
    d->st = (LayerState *)calloc((size_t)L, sizeof *d->st);
    if (!d->st) return fail(e, "out of memory");
    char *sm = (char *)d->state_mem;
    for (int l = 0; l < L; l++) {
        d->st[l].att_shift = (bf16 *)(sm + (size_t)l * C * sizeof(bf16));
        d->st[l].ffn_shift = (bf16 *)(sm + shift_bytes + (size_t)l * C * sizeof(bf16));
        d->st[l].wkv = (float *)(sm + 2 * shift_bytes + (size_t)l * H * 64 * 64 * sizeof(float));
    }
    err = gemm_create(&c->gemm);
    if (err != cudaSuccess) return cuda_fail(e, err, "gemm_create", __FILE__, __LINE__);
    // the weights rounded to bf16 on the host (round to nearest even, as round_bf16_cuda)
    uint16_t *host = (uint16_t *)malloc(c->P * sizeof(uint16_t));
    if (!host) return fail(e, "out of memory for the bf16 copy of %zu parameters", c->P);
    for (size_t i = 0; i < c->P; i++) host[i] = f32_to_bf16(m->w[i]);
    err = cudaMemcpyAsync(c->w, host, c->P * sizeof(uint16_t), cudaMemcpyHostToDevice, c->s);
    if (err == cudaSuccess) err = cudaStreamSynchronize(c->s);   // before host is freed, and before any kernel
    free(host);
    if (err != cudaSuccess) return cuda_fail(e, err, "cudaMemcpyAsync(weights)", __FILE__, __LINE__);
    return decoder_reset(d, e);
}

int decoder_feed(Decoder *d, const int32_t *tokens, int n, float *logits, Error *e) {
    Cuda *c = &d->c;
    GpuWork *W = &c->W;
    int C = c->mc.n_embd, V = c->mc.vocab_size, L = c->mc.n_layer;
    if (n < 1) return fail(e, "nothing to feed");
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return fail(e, "token %d at position %d is outside the vocabulary (size %d)", tokens[i], i, V);
    for (int done = 0; done < n;) {
        int T = n - done < DECODE_CHUNK ? n - done : DECODE_CHUNK;
        c->cfg.T = T;
        CK(cudaMemcpyAsync(W->tokens, tokens + done, T * sizeof(int32_t), cudaMemcpyHostToDevice, c->s));
        if (forward_blocks<bf16>(c, d->st, e)) return -1;
        done += T;
        if (done == n && logits) {   // ln_out and the head on the last row only, logits in fp32
            bf16 *last = (bf16 *)W->xin[L] + (size_t)(T - 1) * C;
            CK(layernorm_fwd_cuda((bf16 *)W->hf, W->lnf_mean, W->lnf_rstd, last, c->w + c->lnout_w, c->w + c->lnout_b,
                                  1, C, 1e-5f, c->s));
            GEMM(0, 1, 1, V, C, (bf16 *)W->hf, c->w + c->head, d->logits, 0.0f);
            CK(cudaMemcpyAsync(logits, d->logits, (size_t)V * sizeof(float), cudaMemcpyDeviceToHost, c->s));
        }
    }
    c->cfg.T = DECODE_CHUNK;
    CK(cudaStreamSynchronize(c->s));
    return 0;
}

void decoder_free(Decoder *d) {
    if (!d) return;
    Cuda *c = &d->c;
    if (c->gemm) gemm_destroy(c->gemm);
    cudaFree(c->params);
    cudaFree(c->acts);
    cudaFree(c->work);
    cudaFree(d->state_mem);
    cudaFree(d->logits);
    if (c->s) cudaStreamDestroy(c->s);
    gpu_work_free_host(&c->W);
    free(c->off);
    free(d->st);
    layout_free(&c->layout);
    free(d);
}

} // namespace

struct GpuDecoder {
    Decoder d;
};

extern "C" int gpu_decoder_cuda_open(const Model *m, GpuDecoder **out, Error *e) {
    *out = NULL;
    GpuDecoder *g = (GpuDecoder *)calloc(1, sizeof *g);
    if (!g) return fail(e, "out of memory");
    if (decoder_open(&g->d, m, e)) { decoder_free(&g->d); return -1; }
    *out = g;
    return 0;
}
extern "C" int gpu_decoder_cuda_feed(GpuDecoder *g, const int32_t *tokens, int n, float *logits, Error *e) {
    return decoder_feed(&g->d, tokens, n, logits, e);
}
extern "C" int gpu_decoder_cuda_reset(GpuDecoder *g, Error *e) { return decoder_reset(&g->d, e); }
extern "C" void gpu_decoder_cuda_free(GpuDecoder *g) {
    if (g) decoder_free(&g->d);   // g is its first member's storage
}

extern "C" int backend_cuda_open(const ModelConfig *mc, const float *w, const BackendConfig *bc, Backend **out,
                                 Error *e) {
    *out = NULL;
    Backend *b = (Backend *)calloc(1, sizeof *b);
    Cuda *c = (Cuda *)calloc(1, sizeof *c);
    if (!b || !c) { free(b); free(c); return fail(e, "out of memory"); }
    b->name = "cuda";
    b->impl = c;
    b->step = cuda_step;
    b->get_state = cuda_get_state;
    b->set_state = cuda_set_state;
    b->free = cuda_free;
    b->device_peak = cuda_peak;
    b->checks_update = 1;
    c->cfg = *bc;
    c->mc = *mc;
    if (config_is_x060(mc)) {
        free(c); free(b);
        return fail(e, "--accelerator gpu: x060 (RWKV-6) models train on the CPU only for now (use --accelerator cpu)");
    }
    if (layout_build(mc, &c->layout, e)) { free(c); free(b); return -1; }
    c->P = c->layout.total;
    c->host_comm = bc->comm;
    c->cfg.world = bc->comm ? comm_size(bc->comm) : 1;
    gpu_shard(mc, &c->cfg, bc->comm ? comm_rank(bc->comm) : 0, &c->sh);
    if (offsets_build(c, e) || open_device(c, w, e) || (c->sh.world > 1 && open_device_comm(c, e))) {
        cuda_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

extern "C" int backend_cuda_device_memory(uint64_t *free_bytes, uint64_t *total_bytes) {
    size_t f = 0, t = 0;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0 || cudaMemGetInfo(&f, &t) != cudaSuccess) return -1;
    *free_bytes = f;
    *total_bytes = t;
    return 0;
}
