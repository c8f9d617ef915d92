// cuda/xent.cuh: the head's cross entropy + L2Wrap (kernel rwkv7_l2wrap_ce_bf16_v2), the `_cuda`
// twins of xent_l2wrap_fwd/fwdbwd in lib/ops.h, tested in tests/cuda/t_xent.cu.
//
// One block per row of bf16 logits, any V (65536 included): fp32 max and argmax (the lowest index
// on ties), lse = logf(sum __expf(z - max)) + max, row loss = lse - z[target] in fp32 (as the
// official kernel; the twin's is double), and for fwdbwd the gradient of the mean over R rows
// written over the logits as bf16, rounded once:
//   bf(exp(z - lse)/R - [target]/R + [argmax] max 1e-4/R).
// Returns cudaSuccess, cudaErrorInvalidValue for V < 1 or R < N, or the launch's error.
// targets must lie in [0, V).  A NaN logit makes the row's loss (and gradient) NaN.
// L is __nv_bfloat16, or float for --precision fp32/tf32 (the gradient then not rounded).
#ifndef RWKV7C_CUDA_XENT_CUH
#define RWKV7C_CUDA_XENT_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

template <class L>
cudaError_t xent_l2wrap_fwd_cuda(float *row_loss, const L *logits, const int32_t *targets, size_t N, int V,
                                 cudaStream_t stream);
template <class L>
cudaError_t xent_l2wrap_fwdbwd_cuda(L *logits, float *row_loss, const int32_t *targets, size_t N, size_t R,
                                    int V, cudaStream_t stream);
#endif
