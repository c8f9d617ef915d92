/* ops6.h: the x060 computations other than matrix products, kernel-shaped as
 * lib/ops.h (same conventions: outputs first, then scratch, then inputs, then
 * dimensions; rows n = b*T + t; parameter gradients ACCUMULATED per channel in
 * double, in row order; activation gradients written unless "+=").  lib/model6.c
 * composes them with BLAS and the shared ops of ops.h (layernorm, shift_mix for
 * the ChannelMix lerps, tanh, sigmoid, relu², cross entropy, embedding, Adam).
 * Upstream: RWKV-LM RWKV-v5/src/model.py (RWKV_Tmix_x060, RWKV_CMix_x060) and
 * RWKV-v5/cuda/wkv6_cuda.cu; math in doc/model6.md.  CUDA twins would take the
 * same names with a `_cuda` suffix. */
#ifndef RWKV7C_OPS6_H
#define RWKV7C_OPS6_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- TimeMix token shift: xx = h[t-1] - h[t], xxx = h + xx * maa_x ----
 * xx, xxx, h are (B*T,C); h[-1] = init (C) or 0 when init is NULL; maa_x (C) */
void shift_diff6_fwd(float *xx, float *xxx, const float *h, const float *init, const float *maa_x,
                     int B, int T, int C);
// dh is (B*T,C) +=: the gradient through xx (zero initial shift) and xxx; dmaa_x (C) +=;
// dxx (B*T,C) is d(xx) and is only read; dxxx (B*T,C) is d(xxx)
void shift_diff6_bwd(float *dh, float *dmaa_x, const float *dxx, const float *dxxx, const float *xx,
                     const float *maa_x, int B, int T, int C);

/* ---- data-dependent lerps: out_f = h + xx * (maa_f + m_f), f = w, k, v, r, g ----
 * out[f], m[f] are (N,C) (m_f = the LoRA's chunk f); maa[f] are (C) */
void ddlerp6_fwd(float *const *out, const float *h, const float *xx, const float *const *maa,
                 const float *const *m, int nf, size_t N, int C);
// dh +=, dxx += (both (N,C)); dm[f] (N,C) written (it may be dout[f]: each element is
// read before it is written); dmaa[f] (C) +=; dout[f] (N,C) read
void ddlerp6_bwd(float *dh, float *dxx, float *const *dm, float *const *dmaa, const float *const *dout,
                 const float *xx, const float *const *maa, const float *const *m, int nf, size_t N, int C);

/* ---- silu(x) = x sigmoid(x) ---- */
// y, x are (n)
void silu_fwd(float *y, const float *x, size_t n);
// dx (n) written from dy and the pre-activation x
void silu_bwd(float *dx, const float *dy, const float *x, size_t n);

/* ---- WKV6 recurrence (per batch b, head h; S is 64x64 fp32, S[i][j]: i value, j key) ----
 * d = exp(-exp(w)); y_t = (S + v_t (u*k_t)^T) r_t, then S = S diag(d_t) + v_t k_t^T.
 * y, r, k, v, w are (B*T,C), w the raw decay logit; u is (H,64) = (C).
 * state (B == 1 only, may be NULL) is (H,64,64): the initial state, replaced by the final one. */
void wkv6_fwd(float *y, float *state, const float *r, const float *k, const float *v, const float *w,
              const float *u, int B, int T, int H);
// From zero initial state; no states saved (each gradient rebuilt by its own sweep, as
// wkv6_cuda.cu's backward).  dr, dk, dv, dw (raw w) written, (B*T,C); du (C) +=.
// scratch is wkv6_bwd_scratch_floats(T, nthreads); the loop uses at most nthreads threads.
void wkv6_bwd(float *dr, float *dk, float *dv, float *dw, float *du, float *scratch, const float *dy,
              const float *r, const float *k, const float *v, const float *w, const float *u,
              int B, int T, int H, int nthreads);
size_t wkv6_bwd_scratch_floats(int B, int T, int H, int nthreads);

/* ---- GroupNorm(H, eps 64e-5) then times the gate: out = GN(y) * g ---- */
// out, y, g are (N,C); mean, rstd are (N,H); lnx_w, lnx_b are (C)
void gn_gate6_fwd(float *out, float *mean, float *rstd, const float *y, const float *g,
                  const float *lnx_w, const float *lnx_b, size_t N, int H);
// dy, dg written (N,C); dlnx_w, dlnx_b (C) +=; dout (N,C) read; scratch1, scratch2 are (N,C)
void gn_gate6_bwd(float *dy, float *dg, float *dlnx_w, float *dlnx_b, float *scratch1, float *scratch2, const float *dout,
                  const float *y, const float *g, const float *mean, const float *rstd,
                  const float *lnx_w, const float *lnx_b, size_t N, int H);

/* ---- ChannelMix output: out += sigmoid(rpre) * kv ---- */
// out (n) +=; rs (n) receives sigmoid(rpre) (kept for the backward; rs may be rpre); rpre, kv are (n)
void cmix_gate6_fwd(float *out, float *rs, const float *rpre, const float *kv, size_t n);
// drpre, dkv written (n) from dout
void cmix_gate6_bwd(float *drpre, float *dkv, const float *dout, const float *rs, const float *kv, size_t n);
#ifdef __cplusplus
}
#endif
#endif
