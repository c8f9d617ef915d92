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
// Every entry point also exists with A = float (--precision fp32/tf32): activations, their
// gradients and the parameters (the fp32 masters themselves) fp32, the same math without the
// roundings (the bf16 arithmetic of the token shift becomes fp32 arithmetic, as the CPU twin's).
#ifndef RWKV7C_CUDA_MIX_CUH
#define RWKV7C_CUDA_MIX_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

#define SHIFT_MIX_MAX 6   // TimeMix's six lerps; ChannelMix has one

#ifndef RWKV7C_NO_DEDUCE
#define RWKV7C_NO_DEDUCE
// For an argument that may be nullptr: its type follows the others' A instead of deducing it.
template <class T> struct NoDeduce { typedef T type; };
#endif

// Kernel rwkv7_tmix_mix6_bf16_v5 / the lerp of rwkv7_cmix_bf16_v5, in bf16 arithmetic:
// xx = bf(h_prev - h), out_i = bf(h + bf(xx * mu_i)).
template <class A>
cudaError_t shift_mix_fwd_cuda(A *const *out, const A *h, const typename NoDeduce<A>::type *init,
                               const A *const *mu, int nmu, int B, int T, int C, cudaStream_t stream);
// dh = the bf16 chain of the official backward (current step's terms in mu order, then the next
// step's); dmu_i += sum dout_i * (h_prev - h) in fp32; scratch (B*T,C) fp32.
template <class A>
cudaError_t shift_mix_bwd_cuda(A *dh, float *const *dmu, float *scratch,
                               const A *const *dout, const A *h,
                               const A *const *mu, int nmu, int B, int T, int C, cudaStream_t stream);

// In place, PyTorch's bf16 ops: fp32 math, one rounding.
template <class A>
cudaError_t tanh_fwd_cuda(A *x, size_t n, cudaStream_t stream);
template <class A>
cudaError_t tanh_bwd_cuda(A *dx, const A *y, size_t n, cudaStream_t stream);
template <class A>
cudaError_t sigmoid_fwd_cuda(A *x, size_t n, cudaStream_t stream);
template <class A>
cudaError_t sigmoid_bwd_cuda(A *dx, const A *y, size_t n, cudaStream_t stream);

// Kernel rwkv7_tmix_vres_gate_bf16_v1.  gate is fp32: the pre-activation v0 + v12 summed in fp32
// on entry (as the kernel sums them), the sigmoid on return, kept in fp32 for the backward.
template <class A>
cudaError_t value_residual_fwd_cuda(A *vm, float *gate, const A *v,
                                    const A *vfirst, size_t n, cudaStream_t stream);
// dv = bf(g - g gate); dvfirst = bf(dvfirst + bf(g gate)) (v_first's gradient accumulates across
// layers in bf16, as autograd does); dpre = bf(g (vfirst - v) gate (1 - gate)).
template <class A>
cudaError_t value_residual_bwd_cuda(A *dv, A *dvfirst, A *dpre,
                                    const A *dvm, const float *gate, const A *v,
                                    const A *vfirst, size_t n, cudaStream_t stream);
// dv = bf(dvm + dvfirst)
template <class A>
cudaError_t value_first_bwd_cuda(A *dv, const A *dvm, const A *dvfirst,
                                 size_t n, cudaStream_t stream);

// Kernel rwkv7_tmix_kk_pre_bf16_v5: fp32 per head, kk = bf(k k_k inv), kp = bf(k (1 + (a-1) k_a)).
template <class A>
cudaError_t keyprep_fwd_cuda(A *kk, A *kp, float *inv, const A *k,
                             const A *a, const A *k_k, const A *k_a, size_t N,
                             int H, cudaStream_t stream);
// dk = bf(...); da = bf(da + ...); dk_k, dk_a (C) +=; scratch1, scratch2 (N,C) fp32.
template <class A>
cudaError_t keyprep_bwd_cuda(A *dk, A *da, float *dk_k, float *dk_a, float *scratch1,
                             float *scratch2, const A *dkk, const A *dkp,
                             const A *k, const A *a, const A *kk,
                             const float *inv, const A *k_k, const A *k_a, size_t N, int H,
                             cudaStream_t stream);

// act = bf(max(x, 0)^2); dx = bf(dx 2 sqrt(max(act, 0))) (the derivative from the stored act).
template <class A>
cudaError_t relu_sq_fwd_cuda(A *x, size_t n, cudaStream_t stream);
template <class A>
cudaError_t relu_sq_bwd_cuda(A *dx, const A *act, size_t n, cudaStream_t stream);

// out (N,C) = emb[tokens] (bf16 gather).
template <class A>
cudaError_t embedding_fwd_cuda(A *out, const int32_t *tokens, const A *emb, size_t N, int C,
                               cudaStream_t stream);
// demb (V,C) fp32 += dout: each (token, column) is owned by one thread, which adds the rows in
// order, so repeated tokens sum in the same order every run (no atomics).
template <class A>
cudaError_t embedding_bwd_cuda(float *demb, const A *dout, const int32_t *tokens, size_t N, int C,
                               cudaStream_t stream);
#endif
