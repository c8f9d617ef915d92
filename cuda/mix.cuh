// cuda/mix.cuh: the elementwise x070 ops of lib/ops.h on the GPU (the `_cuda` twins of
// shift_mix, tanh, sigmoid, value_residual, value_first_bwd, keyprep, relu_sq, embedding),
// tested in tests/cuda/t_mix.cu.
//
// Same arguments as the CPU twin, in the same order, plus a trailing stream; every entry point
// returns cudaSuccess, cudaErrorInvalidValue for a shape it does not take, or the launch's error.
// Activations and their gradients are bf16, each output rounded once from fp32 math, except
// where the official kernel works in bf16 arithmetic (the token shift, below); saved statistics,
// scratch and parameter gradients (+=, summed per column in a fixed order) are fp32; parameters
// are read as their bf16 copies.  Arrays of per-mu pointers are host arrays of device pointers.
#ifndef RWKV7C_CUDA_MIX_CUH
#define RWKV7C_CUDA_MIX_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

#define SHIFT_MIX_MAX 6   // TimeMix's six lerps; ChannelMix has one

// Kernel rwkv7_tmix_mix6_bf16_v5 / the lerp of rwkv7_cmix_bf16_v5, in bf16 arithmetic:
// xx = bf(h_prev - h), out_i = bf(h + bf(xx * mu_i)).
cudaError_t shift_mix_fwd_cuda(__nv_bfloat16 *const *out, const __nv_bfloat16 *h, const __nv_bfloat16 *init,
                               const __nv_bfloat16 *const *mu, int nmu, int B, int T, int C, cudaStream_t stream);
// dh = the bf16 chain of the official backward (current step's terms in mu order, then the next
// step's); dmu_i += sum dout_i * (h_prev - h) in fp32; scratch (B*T,C) fp32.
cudaError_t shift_mix_bwd_cuda(__nv_bfloat16 *dh, float *const *dmu, float *scratch,
                               const __nv_bfloat16 *const *dout, const __nv_bfloat16 *h,
                               const __nv_bfloat16 *const *mu, int nmu, int B, int T, int C, cudaStream_t stream);

// In place, PyTorch's bf16 ops: fp32 math, one rounding.
cudaError_t tanh_fwd_cuda(__nv_bfloat16 *x, size_t n, cudaStream_t stream);
cudaError_t tanh_bwd_cuda(__nv_bfloat16 *dx, const __nv_bfloat16 *y, size_t n, cudaStream_t stream);
cudaError_t sigmoid_fwd_cuda(__nv_bfloat16 *x, size_t n, cudaStream_t stream);
cudaError_t sigmoid_bwd_cuda(__nv_bfloat16 *dx, const __nv_bfloat16 *y, size_t n, cudaStream_t stream);

// Kernel rwkv7_tmix_vres_gate_bf16_v1.  gate is fp32: the pre-activation v0 + v12 summed in fp32
// on entry (as the kernel sums them), the sigmoid on return, kept in fp32 for the backward.
cudaError_t value_residual_fwd_cuda(__nv_bfloat16 *vm, float *gate, const __nv_bfloat16 *v,
                                    const __nv_bfloat16 *vfirst, size_t n, cudaStream_t stream);
// dv = bf(g - g gate); dvfirst = bf(dvfirst + bf(g gate)) (v_first's gradient accumulates across
// layers in bf16, as autograd does); dpre = bf(g (vfirst - v) gate (1 - gate)).
cudaError_t value_residual_bwd_cuda(__nv_bfloat16 *dv, __nv_bfloat16 *dvfirst, __nv_bfloat16 *dpre,
                                    const __nv_bfloat16 *dvm, const float *gate, const __nv_bfloat16 *v,
                                    const __nv_bfloat16 *vfirst, size_t n, cudaStream_t stream);
// dv = bf(dvm + dvfirst)
cudaError_t value_first_bwd_cuda(__nv_bfloat16 *dv, const __nv_bfloat16 *dvm, const __nv_bfloat16 *dvfirst,
                                 size_t n, cudaStream_t stream);

// Kernel rwkv7_tmix_kk_pre_bf16_v5: fp32 per head, kk = bf(k k_k inv), kp = bf(k (1 + (a-1) k_a)).
cudaError_t keyprep_fwd_cuda(__nv_bfloat16 *kk, __nv_bfloat16 *kp, float *inv, const __nv_bfloat16 *k,
                             const __nv_bfloat16 *a, const __nv_bfloat16 *k_k, const __nv_bfloat16 *k_a, size_t N,
                             int H, cudaStream_t stream);
// dk = bf(...); da = bf(da + ...); dk_k, dk_a (C) +=; scratch1, scratch2 (N,C) fp32.
cudaError_t keyprep_bwd_cuda(__nv_bfloat16 *dk, __nv_bfloat16 *da, float *dk_k, float *dk_a, float *scratch1,
                             float *scratch2, const __nv_bfloat16 *dkk, const __nv_bfloat16 *dkp,
                             const __nv_bfloat16 *k, const __nv_bfloat16 *a, const __nv_bfloat16 *kk,
                             const float *inv, const __nv_bfloat16 *k_k, const __nv_bfloat16 *k_a, size_t N, int H,
                             cudaStream_t stream);

// act = bf(max(x, 0)^2); dx = bf(dx 2 sqrt(max(act, 0))) (the derivative from the stored act).
cudaError_t relu_sq_fwd_cuda(__nv_bfloat16 *x, size_t n, cudaStream_t stream);
cudaError_t relu_sq_bwd_cuda(__nv_bfloat16 *dx, const __nv_bfloat16 *act, size_t n, cudaStream_t stream);

// out (N,C) = emb[tokens] (bf16 gather).
cudaError_t embedding_fwd_cuda(__nv_bfloat16 *out, const int32_t *tokens, const __nv_bfloat16 *emb, size_t N, int C,
                               cudaStream_t stream);
// demb (V,C) fp32 += dout: each (token, column) is owned by one thread, which adds the rows in
// order, so repeated tokens sum in the same order every run (no atomics).
cudaError_t embedding_bwd_cuda(float *demb, const __nv_bfloat16 *dout, const int32_t *tokens, size_t N, int C,
                               cudaStream_t stream);
#endif
