// cuda/norm.cuh: the normalisations and per-channel sums of lib/ops.h on the GPU (the `_cuda`
// twins of colsum_acc, layernorm_fwd/bwd, gn_bonus_gate_fwd/bwd), tested in tests/cuda/t_norm.cu.
//
// Same arguments as the CPU twin, in the same order, plus a trailing stream; every entry point
// returns cudaSuccess, cudaErrorInvalidValue for a shape it does not take, or the launch's error.
// Dtypes (as the official bf16 trainer: RWKV-LM-V7 src/model.py with its fused kernels): activations and their gradients bf16; the saved statistics
// (mean, rstd, bonus) and the scratch fp32; parameters are read as their bf16 copies; parameter
// gradients are fp32 accumulators (+=), summed per column in a fixed order (colsum_acc_cuda) so
// that the bits never depend on the schedule.  The LayerNorm and GroupNorm entry points also
// exist with A = float (--precision fp32/tf32): activations, their gradients and the parameters
// (the fp32 masters) fp32, the same math without the roundings.
#ifndef RWKV7C_CUDA_NORM_CUH
#define RWKV7C_CUDA_NORM_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>

#ifndef RWKV7C_NO_DEDUCE
#define RWKV7C_NO_DEDUCE
// For an argument that may be nullptr: its type follows the others' A instead of deducing it.
template <class T> struct NoDeduce { typedef T type; };
#endif

// dvec (C) += sum_n a[n][c] * b[n][c] (b NULL: 1), each column in fp32 in a fixed order.
cudaError_t colsum_acc_cuda(float *dvec, const float *a, const float *b, size_t N, int C, cudaStream_t stream);
cudaError_t colsum_acc_cuda(float *dvec, const __nv_bfloat16 *a, const __nv_bfloat16 *b, size_t N, int C,
                            cudaStream_t stream);
cudaError_t colsum_acc_cuda(float *dvec, const __nv_bfloat16 *a, const float *b, size_t N, int C, cudaStream_t stream);

// PyTorch's LayerNorm in bf16: fp32 statistics (two-pass variance), one rounding of the output.
template <class A>
cudaError_t layernorm_fwd_cuda(A *out, float *mean, float *rstd, const A *inp,
                               const A *weight, const A *bias, size_t N, int C, float eps,
                               cudaStream_t stream);
// The residual add fused in front (the block's x = x + att(ln1(x)) of RWKV-LM-V7 src/model.py): resid_out = bf(resid + branch), the
// residual stream rounded as the reference's x = x + att, then the LayerNorm of it.  resid_out
// may be resid (in place).
template <class A>
cudaError_t residual_layernorm_fwd_cuda(A *resid_out, A *out, float *mean, float *rstd,
                                        const A *resid, const typename NoDeduce<A>::type *branch,
                                        const A *weight, const A *bias, size_t N, int C,
                                        float eps, cudaStream_t stream);
// dinp = bf(d), or with accumulate dinp = bf(dinp + d) (the residual branch's gradient, added in
// bf16 as autograd does); scratch (N,C) fp32 holds dout * xhat for dweight.
template <class A>
cudaError_t layernorm_bwd_cuda(A *dinp, float *dweight, float *dbias, float *scratch,
                               const A *dout, const A *inp, const A *weight,
                               const float *mean, const float *rstd, size_t N, int C, int accumulate,
                               cudaStream_t stream);

// Kernel rwkv7_tmix_lnx_rkvres_xg_bf16_v1: fp32 inside, one rounding of out.
template <class A>
cudaError_t gn_bonus_gate_fwd_cuda(A *out, float *mean, float *rstd, float *bonus,
                                   const A *y, const A *r, const A *kp,
                                   const A *vm, const A *g, const A *lnx_w,
                                   const A *lnx_b, const A *r_k, size_t N, int H,
                                   cudaStream_t stream);
// As the twin, except that dout is only read (the twin leaves d(pre-gate) there for its dlnx_b
// sum; here dlnx_b sums dout * g directly).  scratch1, scratch2 (N,C) fp32.
template <class A>
cudaError_t gn_bonus_gate_bwd_cuda(A *dy, A *dr, A *dkp, A *dvm,
                                   A *dg, float *dlnx_w, float *dlnx_b, float *dr_k,
                                   const A *dout, float *scratch1, float *scratch2,
                                   const A *y, const A *r, const A *kp,
                                   const A *vm, const A *g, const float *mean,
                                   const float *rstd, const float *bonus, const A *lnx_w,
                                   const A *lnx_b, const A *r_k, size_t N, int H,
                                   cudaStream_t stream);
#endif
