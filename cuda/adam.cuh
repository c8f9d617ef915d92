// cuda/adam.cuh: the optimizer step on the GPU, tested in tests/cuda/t_adam.cu:
//  - adam_update_cuda, the `_cuda` twin of adam_update (lib/ops.h): DeepSpeed FusedAdam on fp32
//    masters and moments, the same IEEE operations in the same order as the twin's scalar loop
//    (no FMA contraction: __fmul_rn/__fadd_rn), and the bf16 copy (w_bf16 may be NULL) rounded
//    to nearest-even as DeepSpeed's copy_ (no stochastic rounding);
//  - the global gradient norm as DeepSpeed's get_grad_norm_direct (squares summed in double),
//    in a fixed order: sumsq_acc_cuda per tensor (two passes), then clip_scale_cuda, the twin of
//    grad_global_norm + grad_clip_scale (lib/optim.h), which leaves the scale on the device for
//    adam_update_devscale_cuda, so a step needs no copy back to the host.
// Each returns cudaSuccess, cudaErrorInvalidValue for an argument it does not take, or the
// launch's error.
#ifndef RWKV7C_CUDA_ADAM_CUH
#define RWKV7C_CUDA_ADAM_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>

#define SUMSQ_BLOCKS 256   // doubles of scratch sumsq_acc_cuda needs

cudaError_t adam_update_cuda(float *w, float *m, float *v, __nv_bfloat16 *w_bf16, const float *g, size_t n,
                             float grad_scale, float lr, float beta1, float beta2, float eps, float bc1, float bc2,
                             float wd, int adamw, cudaStream_t stream);
// As adam_update_cuda, with the gradient scale read from the device (clip_scale_cuda's output).
cudaError_t adam_update_devscale_cuda(float *w, float *m, float *v, __nv_bfloat16 *w_bf16, const float *g, size_t n,
                                      const float *grad_scale, float lr, float beta1, float beta2, float eps,
                                      float bc1, float bc2, float wd, int adamw, cudaStream_t stream);

// What adam_update_devscale_cuda would do, computed the same way but not written: count[0], [1],
// [2] += how many of the new weights, m and v would be non-finite (v also when below 0).  A
// backend runs it first so that an update it applies is known to be finite (the trainer's
// check, without copying the state to the host).
cudaError_t adam_check_devscale_cuda(unsigned long long *count, const float *w, const float *m, const float *v,
                                     const float *g, size_t n, const float *grad_scale, float lr, float beta1,
                                     float beta2, float eps, float bc1, float bc2, float wd, int adamw,
                                     cudaStream_t stream);

// *acc += sum g[i]^2 in double; scratch holds SUMSQ_BLOCKS doubles.  The order of the sum depends
// on n only, so the bits repeat; call it for each tensor in a fixed order.
cudaError_t sumsq_acc_cuda(double *acc, double *scratch, const float *g, size_t n, cudaStream_t stream);
// *norm = sqrt(*sumsq) (norm may be NULL); *scale = 1 / ((norm + 1e-6) / clip) when that
// quotient is over 1, else 1 (and 1 when clip <= 0: no clipping).
cudaError_t clip_scale_cuda(float *scale, double *norm, const double *sumsq, double clip, cudaStream_t stream);
#endif
