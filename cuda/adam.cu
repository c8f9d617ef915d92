// cuda/adam.cu: FusedAdam, the global gradient norm and the clip scale (adam.cuh).
#include "adam.cuh"

#include <math.h>

typedef __nv_bfloat16 bf16;

namespace {

const int THREADS = 256;
const unsigned MAX_BLOCKS = 8192;

struct AdamArgs {
    float lr, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, bc1, bc2, wd;
};

// The twin's scalar loop, operation for operation; __fmul_rn/__fadd_rn keep nvcc from fusing a
// product and a sum into an FMA, which would round once where the twin rounds twice.
// CHECK: compute the same values but write nothing; count[0..2] += how many new weights, m and v
// would be non-finite (v also when negative), the trainer's test of an update (lib/trainer.c).
__device__ __forceinline__ bool nonfinite(float x) { return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u; }

template <bool ADAMW, bool CHECK>
__global__ void __launch_bounds__(THREADS)
    adam_kernel(float *w, float *m, float *v, bf16 *w_bf16, const float *g, size_t n, float scale,
                const float *dscale, AdamArgs a, unsigned long long *count) {
    SHARED(unsigned, bad, [3]);
    if (CHECK) {
        if (threadIdx.x < 3) bad[threadIdx.x] = 0;
        __syncthreads();
    }
    if (dscale) scale = *dscale;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = __fmul_rn(g[i], scale), wi = w[i];
        if (!ADAMW) gi = __fadd_rn(gi, __fmul_rn(a.wd, wi));
        float mi = __fadd_rn(__fmul_rn(a.beta1, m[i]), __fmul_rn(a.one_minus_beta1, gi));
        float vi = __fadd_rn(__fmul_rn(a.beta2, v[i]), __fmul_rn(__fmul_rn(a.one_minus_beta2, gi), gi));
        float denom = __fadd_rn(sqrtf(vi / a.bc2), a.eps);   // IEEE division and sqrt (nvcc's default)
        float update = (mi / a.bc1) / denom;
        if (ADAMW) update = __fadd_rn(update, __fmul_rn(a.wd, wi));
        float nw = __fadd_rn(wi, -__fmul_rn(a.lr, update));
        if (CHECK) {
            if (nonfinite(nw)) atomicAdd(&bad[0], 1u);
            if (nonfinite(mi)) atomicAdd(&bad[1], 1u);
            if (nonfinite(vi) || !(vi >= 0)) atomicAdd(&bad[2], 1u);
            continue;
        }
        w[i] = nw;
        m[i] = mi;
        v[i] = vi;
        if (w_bf16) w_bf16[i] = __float2bfloat16_rn(nw);
    }
    if (CHECK) {   // integer sums: the order cannot change them
        __syncthreads();
        if (threadIdx.x < 3 && bad[threadIdx.x]) atomicAdd(&count[threadIdx.x], (unsigned long long)bad[threadIdx.x]);
    }
}

cudaError_t adam(float *w, float *m, float *v, bf16 *w_bf16, const float *g, size_t n, float grad_scale,
                 const float *dscale, float lr, float beta1, float beta2, float eps, float bc1, float bc2, float wd,
                 int adamw, cudaStream_t stream, unsigned long long *count = nullptr) {
    if (n == 0) return cudaSuccess;
    // 1 - beta as the twin computes it: float arithmetic on the host
    AdamArgs a = {lr, beta1, beta2, 1 - beta1, 1 - beta2, eps, bc1, bc2, wd};
    size_t b = (n + THREADS - 1) / THREADS;
    unsigned blocks = b < MAX_BLOCKS ? (unsigned)b : MAX_BLOCKS;
    // a template with two arguments holds a comma LAUNCH would split: take the kernel first
    auto *kernel = count ? (adamw ? adam_kernel<true, true> : adam_kernel<false, true>)
                         : (adamw ? adam_kernel<true, false> : adam_kernel<false, false>);
    LAUNCH(kernel, blocks, THREADS, 0, stream)(w, m, v, w_bf16, g, n, grad_scale, dscale, a, count);
    return cudaGetLastError();
}

// A fixed tree over the block's THREADS values: the same order whatever the schedule.
__device__ double block_sum(double x, double *red) {
    red[threadIdx.x] = x;
    __syncthreads();
    for (int s = THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    return red[0];
}

// Pass 1: SUMSQ_BLOCKS blocks whatever n is, so element i always lands in the same partial sum.
__global__ void __launch_bounds__(THREADS) sumsq_partial_kernel(double *partial, const float *g, size_t n) {
    SHARED(double, red, [THREADS]);
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (size_t)SUMSQ_BLOCKS * THREADS) {
        double x = g[i];
        s += x * x;
    }
    s = block_sum(s, red);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void __launch_bounds__(THREADS) sumsq_final_kernel(double *acc, const double *partial) {
    SHARED(double, red, [THREADS]);
    double s = 0.0;
    for (int i = threadIdx.x; i < SUMSQ_BLOCKS; i += THREADS) s += partial[i];
    s = block_sum(s, red);
    if (threadIdx.x == 0) *acc += s;
}

__global__ void clip_scale_kernel(float *scale, double *norm, const double *sumsq, double clip) {
    double nrm = sqrt(*sumsq);
    if (norm) *norm = nrm;
    float sc = 1.0f;
    if (clip > 0) {
        double c = (nrm + 1e-6) / clip;
        if (c > 1) sc = (float)(1.0 / c);
    }
    *scale = sc;
}

} // namespace

cudaError_t adam_update_cuda(float *w, float *m, float *v, bf16 *w_bf16, const float *g, size_t n, float grad_scale,
                             float lr, float beta1, float beta2, float eps, float bc1, float bc2, float wd, int adamw,
                             cudaStream_t stream) {
    return adam(w, m, v, w_bf16, g, n, grad_scale, nullptr, lr, beta1, beta2, eps, bc1, bc2, wd, adamw, stream);
}

cudaError_t adam_update_devscale_cuda(float *w, float *m, float *v, bf16 *w_bf16, const float *g, size_t n,
                                      const float *grad_scale, float lr, float beta1, float beta2, float eps,
                                      float bc1, float bc2, float wd, int adamw, cudaStream_t stream) {
    if (!grad_scale) return cudaErrorInvalidValue;
    return adam(w, m, v, w_bf16, g, n, 1.0f, grad_scale, lr, beta1, beta2, eps, bc1, bc2, wd, adamw, stream);
}

cudaError_t adam_check_devscale_cuda(unsigned long long *count, const float *w, const float *m, const float *v,
                                     const float *g, size_t n, const float *grad_scale, float lr, float beta1,
                                     float beta2, float eps, float bc1, float bc2, float wd, int adamw,
                                     cudaStream_t stream) {
    if (!grad_scale || !count) return cudaErrorInvalidValue;
    // the kernel writes nothing in CHECK mode: the casts only share its signature
    return adam((float *)w, (float *)m, (float *)v, nullptr, g, n, 1.0f, grad_scale, lr, beta1, beta2, eps, bc1, bc2,
                wd, adamw, stream, count);
}

cudaError_t sumsq_acc_cuda(double *acc, double *scratch, const float *g, size_t n, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    LAUNCH(sumsq_partial_kernel, SUMSQ_BLOCKS, THREADS, 0, stream)(scratch, g, n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    LAUNCH(sumsq_final_kernel, 1, THREADS, 0, stream)(acc, scratch);
    return cudaGetLastError();
}

cudaError_t clip_scale_cuda(float *scale, double *norm, const double *sumsq, double clip, cudaStream_t stream) {
    if (!scale || !sumsq) return cudaErrorInvalidValue;
    LAUNCH(clip_scale_kernel, 1, 1, 0, stream)(scale, norm, sumsq, clip);
    return cudaGetLastError();
}
