/* ops.h: the x070 computations other than matrix products, as kernel-shaped
 * CPU functions: pointers and dimensions only, no Model.  lib/model.c composes
 * them (with BLAS for the GEMMs) in the block order of RWKV-LM-V7 src/model.py;
 * a CUDA backend gives each the same name with a `_cuda` suffix and the same
 * arguments (plus a stream), and checks itself against these.
 *
 * Conventions (as llm.c):
 *  - outputs first, then scratch, then inputs, then dimensions;
 *  - activations are row-major, one row per token n = b*T + t: "(N,C)" means
 *    N rows of C floats; N = B*T;
 *  - H heads of OPS_HEAD_SIZE channels, C = H * OPS_HEAD_SIZE;
 *  - parameter gradients (dweight, dbias, dmu, ...) are ACCUMULATED (+=):
 *    they are per-channel sums over rows, done column by column in row order
 *    in double, so the bits never depend on the thread count;
 *  - activation gradients are written (=) unless the contract says "+=".
 * Each function runs on the calling OpenMP team's threads.  The upstream
 * kernel each one twins is named in ops_cpu.c; the math is in doc/model.md. */
#ifndef RWKV7C_OPS_H
#define RWKV7C_OPS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OPS_HEAD_SIZE 64     /* the only head size the reference kernels build (_N_=64) */
#define WKV7_CHUNK 16        /* the WKV state is kept every 16 steps for the backward */

/* ---- per-channel reductions ---- */
// dvec is (C); a, b are (N,C) (b NULL: 1): dvec[c] += sum_n a[n][c] * b[n][c]
void colsum_acc(float *dvec, const float *a, const float *b, size_t N, int C);

/* ---- embedding ---- */
// out is (N,C); emb is (V,C); tokens (N) must lie in [0, V)
void embedding_fwd(float *out, const int32_t *tokens, const float *emb, size_t N, int C);
// demb is (V,C) +=; dout is (N,C)
void embedding_bwd(float *demb, const float *dout, const int32_t *tokens, size_t N, int C);

/* ---- LayerNorm (biased variance, fp32 stats accumulated in double) ---- */
// out, inp are (N,C); mean, rstd are (N); weight, bias are (C)
void layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                   const float *bias, size_t N, int C, float eps);
// dinp (N,C) is written, or added to when accumulate (the residual branch's
// gradient already there); dweight, dbias (C) +=; scratch is (N,C)
void layernorm_bwd(float *dinp, float *dweight, float *dbias, float *scratch, const float *dout,
                   const float *inp, const float *weight, const float *mean, const float *rstd,
                   size_t N, int C, int accumulate);

/* ---- token shift + lerps ---- */
// out[i] (nmu of them) are (B*T,C): out_i[t] = h[t] + (h[t-1] - h[t]) * mu_i,
// h[-1] = init (C) or 0 when init is NULL (no carry across samples); mu[i] are (C)
void shift_mix_fwd(float *const *out, const float *h, const float *init, const float *const *mu,
                   int nmu, int B, int T, int C);
// dh is (B*T,C); dmu[i] (C) +=; scratch is (B*T,C); dout[i] (B*T,C) are only read.  Zero initial shift.
void shift_mix_bwd(float *dh, float *const *dmu, float *scratch, float *const *dout,
                   const float *h, const float *const *mu, int nmu, int B, int T, int C);

/* ---- LoRA activations, in place (the inner/outer nonlinearity of w, a, g) ---- */
// x is (n): x = tanh(x)
void tanh_fwd(float *x, size_t n);
// dx is (n): dx *= 1 - y^2, y = tanh output
void tanh_bwd(float *dx, const float *y, size_t n);
// x is (n): x = sigmoid(x)
void sigmoid_fwd(float *x, size_t n);
// dx is (n): dx *= y (1 - y), y = sigmoid output
void sigmoid_bwd(float *dx, const float *y, size_t n);

/* ---- value residual (layers > 0; layer 0's v is v_first unchanged) ---- */
// vm, gate, v, vfirst are (n): gate holds v0 + xv v1 v2 on entry, sigmoid of it
// on return; vm = v + (vfirst - v) * gate
void value_residual_fwd(float *vm, float *gate, const float *v, const float *vfirst, size_t n);
// dv written, dvfirst +=, dpre (the gradient of the gate's pre-activation) written; all (n)
void value_residual_bwd(float *dv, float *dvfirst, float *dpre, const float *dvm, const float *gate,
                        const float *v, const float *vfirst, size_t n);
// layer 0: dv = dvm + dvfirst (v_first is v); all (n)
void value_first_bwd(float *dv, const float *dvm, const float *dvfirst, size_t n);

/* ---- key prep: kk = normalize(k * k_k) per head, k' = k * (1 + (a-1) * k_a) ---- */
// kk, kp, k, a are (N,C); inv (N,H) = 1/max(|k*k_k|, 1e-12) per head; k_k, k_a are (C)
void keyprep_fwd(float *kk, float *kp, float *inv, const float *k, const float *a, const float *k_k,
                 const float *k_a, size_t N, int H);
// dk written, da +=; dk_k, dk_a (C) +=; scratch1, scratch2 are (N,C); dkk, dkp are (N,C)
void keyprep_bwd(float *dk, float *da, float *dk_k, float *dk_a, float *scratch1, float *scratch2,
                 const float *dkk, const float *dkp, const float *k, const float *a, const float *kk,
                 const float *inv, const float *k_k, const float *k_a, size_t N, int H);

/* ---- WKV7 recurrence (per batch b, head h; S is 64x64, S[i][j]: i value, j key) ----
 * d = exp(-exp(-0.5) sigmoid(w)) in (0.545, 1) (the clamped decay);
 * S = S diag(d) + (S (-kk)) (kk*a)^T + v k^T;  y = S r */
// y, r, w, k, v, kk, a are (B*T,C), w raw; ckpt (may be NULL) is wkv7_ckpt_floats(B,T,H):
// the state before steps 0, 16, 32, ...; state (B == 1 only, may be NULL) is (H,64,64):
// the initial state, replaced by the final one
void wkv7_fwd(float *y, float *ckpt, float *state, const float *r, const float *w, const float *k,
              const float *v, const float *kk, const float *a, int B, int T, int H);
size_t wkv7_ckpt_floats(int B, int T, int H);
// From zero initial state.  dr, dk, dv +=; dw (raw w), dkk, da written; all (B*T,C).
// scratch is wkv7_bwd_scratch_floats(nthreads); the loop uses at most nthreads threads.
void wkv7_bwd(float *dr, float *dw, float *dk, float *dv, float *dkk, float *da, float *scratch,
              const float *dy, const float *r, const float *w, const float *k, const float *v,
              const float *kk, const float *a, const float *ckpt, int B, int T, int H, int nthreads);
size_t wkv7_bwd_scratch_floats(int nthreads);

/* ---- GroupNorm(H, eps 64e-5) of y + bonus (sum_head r k' r_k) v, times the gate g ---- */
// out, y, r, kp, vm, g are (N,C); mean, rstd, bonus are (N,H); lnx_w, lnx_b, r_k are (C)
void gn_bonus_gate_fwd(float *out, float *mean, float *rstd, float *bonus, const float *y,
                       const float *r, const float *kp, const float *vm, const float *g,
                       const float *lnx_w, const float *lnx_b, const float *r_k, size_t N, int H);
// dy, dr, dkp, dvm, dg written; dlnx_w, dlnx_b, dr_k (C) +=; dout (N,C) is d(out) on entry
// and d(pre-gate) on return; scratch1, scratch2 are (N,C)
void gn_bonus_gate_bwd(float *dy, float *dr, float *dkp, float *dvm, float *dg, float *dlnx_w,
                       float *dlnx_b, float *dr_k, float *dout, float *scratch1, float *scratch2,
                       const float *y, const float *r, const float *kp, const float *vm, const float *g,
                       const float *mean, const float *rstd, const float *bonus, const float *lnx_w,
                       const float *lnx_b, const float *r_k, size_t N, int H);

/* ---- ChannelMix activation relu(x)^2, in place ---- */
// x is (n)
void relu_sq_fwd(float *x, size_t n);
// dx is (n): dx *= 2 sqrt(act), act = relu_sq output (relu' recovered from act, as upstream)
void relu_sq_bwd(float *dx, const float *act, size_t n);

/* ---- cross entropy + L2Wrap ---- */
// logits is (N,V); row_loss (N) = logsumexp - logits[target]; targets in [0, V)
void xent_l2wrap_fwd(double *row_loss, const float *logits, const int32_t *targets, size_t N, int V);
// As xent_l2wrap_fwd, and logits is replaced by d(loss)/d(logits) for a mean over R rows in
// all (R >= N when the rows come in chunks), plus L2Wrap's +1e-4 * max / R at the
// lowest-index argmax of each row.  A NaN logit makes the row's loss NaN.
void xent_l2wrap_fwdbwd(float *logits, double *row_loss, const int32_t *targets, size_t N, size_t R, int V);

/* ---- Adam (DeepSpeed FusedAdam, fp32) on one span of one parameter group ---- */
// w, m, v, g are (n); w_bf16 (n, may be NULL) receives the new w rounded to bf16 (as fp32).
// g is multiplied by grad_scale first; adamw: decoupled weight decay wd, else L2 (wd added
// to the gradient); bc1, bc2 are the bias corrections 1 - beta^step.
void adam_update(float *w, float *m, float *v, float *w_bf16, const float *g, size_t n, float grad_scale,
                 float lr, float beta1, float beta2, float eps, float bc1, float bc2, float wd, int adamw);
#ifdef __cplusplus
}
#endif
#endif
