// cuda/mix6.cuh: the elementwise x060 ops of lib/ops6.h on the GPU (the `_cuda` twins of
// shift_diff6, ddlerp6, silu, gn_gate6, cmix_gate6; the recurrence is in wkv6.cuh), tested in
// tests/cuda/t_mix6.cu.
//
// Same arguments as the CPU twin, in the same order, plus a trailing stream; every entry point
// returns cudaSuccess, cudaErrorInvalidValue for a shape it does not take, or the launch's error.
// Activations and their gradients are bf16, each output rounded once from fp32 math on the bf16
// inputs (the official trainer runs these as PyTorch bf16 ops, which round after every op: e.g.
// its xxx is bf(h + bf(xx maa_x)); one rounding is closer to the fp32 twin); GroupNorm's saved
// statistics, the scratch and the parameter gradients (+=, summed per column in a fixed order by
// colsum_acc_cuda) are fp32; parameters are read as their bf16 copies.  Arrays of per-lerp
// pointers are host arrays of device pointers.
#ifndef RWKV7C_CUDA_MIX6_CUH
#define RWKV7C_CUDA_MIX6_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>

#define DDLERP6_MAX 5   // w, k, v, r, g

// xx = bf(h_prev - h) (h_prev = init, or 0 without one, at t = 0); xxx = bf(h + xx maa_x) from
// the rounded xx, as it is stored.
cudaError_t shift_diff6_fwd_cuda(__nv_bfloat16 *xx, __nv_bfloat16 *xxx, const __nv_bfloat16 *h,
                                 const __nv_bfloat16 *init, const __nv_bfloat16 *maa_x, int B, int T, int C,
                                 cudaStream_t stream);
// dh = bf(dh + the gradient through xx and xxx); dmaa_x (C) fp32 += sum dxxx xx.
cudaError_t shift_diff6_bwd_cuda(__nv_bfloat16 *dh, float *dmaa_x, const __nv_bfloat16 *dxx,
                                 const __nv_bfloat16 *dxxx, const __nv_bfloat16 *xx, const __nv_bfloat16 *maa_x,
                                 int B, int T, int C, cudaStream_t stream);

// out_f = bf(h + xx (maa_f + m_f)), f < nf <= DDLERP6_MAX.
cudaError_t ddlerp6_fwd_cuda(__nv_bfloat16 *const *out, const __nv_bfloat16 *h, const __nv_bfloat16 *xx,
                             const __nv_bfloat16 *const *maa, const __nv_bfloat16 *const *m, int nf, size_t N, int C,
                             cudaStream_t stream);
// dh = bf(dh + sum_f dout_f), dxx = bf(dxx + sum_f dout_f (maa_f + m_f)), dm_f = bf(dout_f xx)
// (dm_f may be dout_f); dmaa_f (C) fp32 += sum dout_f xx, summed before dm_f is written.
cudaError_t ddlerp6_bwd_cuda(__nv_bfloat16 *dh, __nv_bfloat16 *dxx, __nv_bfloat16 *const *dm, float *const *dmaa,
                             const __nv_bfloat16 *const *dout, const __nv_bfloat16 *xx,
                             const __nv_bfloat16 *const *maa, const __nv_bfloat16 *const *m, int nf, size_t N, int C,
                             cudaStream_t stream);

// y = bf(x sigmoid(x)); dx = bf(dy (s + x s (1 - s))) from the pre-activation x.
cudaError_t silu_fwd_cuda(__nv_bfloat16 *y, const __nv_bfloat16 *x, size_t n, cudaStream_t stream);
cudaError_t silu_bwd_cuda(__nv_bfloat16 *dx, const __nv_bfloat16 *dy, const __nv_bfloat16 *x, size_t n,
                          cudaStream_t stream);

// GroupNorm(H, eps 64e-5) times the gate: one warp per (row, head), fp32 statistics (two-pass
// variance), out = bf((y - mean) rstd lnx_w + lnx_b) g).  mean, rstd (N,H) fp32.
cudaError_t gn_gate6_fwd_cuda(__nv_bfloat16 *out, float *mean, float *rstd, const __nv_bfloat16 *y,
                              const __nv_bfloat16 *g, const __nv_bfloat16 *lnx_w, const __nv_bfloat16 *lnx_b,
                              size_t N, int H, cudaStream_t stream);
// dy, dg written (bf16); dlnx_w, dlnx_b (C) fp32 +=; scratch1, scratch2 (N,C) fp32.
cudaError_t gn_gate6_bwd_cuda(__nv_bfloat16 *dy, __nv_bfloat16 *dg, float *dlnx_w, float *dlnx_b, float *scratch1,
                              float *scratch2, const __nv_bfloat16 *dout, const __nv_bfloat16 *y,
                              const __nv_bfloat16 *g, const float *mean, const float *rstd,
                              const __nv_bfloat16 *lnx_w, const __nv_bfloat16 *lnx_b, size_t N, int H,
                              cudaStream_t stream);

// rs = bf(sigmoid(rpre)) (bf16, as autograd saves torch.sigmoid's bf16 result; rs may be rpre);
// out = bf(out + rs kv) from the rounded rs.
cudaError_t cmix_gate6_fwd_cuda(__nv_bfloat16 *out, __nv_bfloat16 *rs, const __nv_bfloat16 *rpre,
                                const __nv_bfloat16 *kv, size_t n, cudaStream_t stream);
// dkv = bf(dout rs), drpre = bf(dout kv rs (1 - rs)) from the saved bf16 rs.
cudaError_t cmix_gate6_bwd_cuda(__nv_bfloat16 *drpre, __nv_bfloat16 *dkv, const __nv_bfloat16 *dout,
                                const __nv_bfloat16 *rs, const __nv_bfloat16 *kv, size_t n, cudaStream_t stream);
#endif
