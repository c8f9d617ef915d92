// cuda/xent.cu: cross entropy + L2Wrap, one block per row (xent.cuh).  Three passes over the
// row (max, sum, gradient), each thread taking the columns tid, tid + 512, ...; the block
// reductions combine warps in a fixed order, so the result does not depend on the schedule.
#include "xent.cuh"

#include <math.h>

typedef __nv_bfloat16 bf16;

namespace {

const int THREADS = 512;            // as the official kernel
const int WARPS = THREADS / 32;
const unsigned FULL = 0xffffffffu;

__device__ __forceinline__ float tof(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float tof(float x) { return x; }
__device__ __forceinline__ void put(bf16 &dst, float x) { dst = __float2bfloat16_rn(x); }
__device__ __forceinline__ void put(float &dst, float x) { dst = x; }

// (m, i) beats (m2, i2) when larger, or equal at a lower index: a total order on the non-NaN
// values, so every lane of a butterfly ends with the same winner.
__device__ __forceinline__ void argmax_merge(float &m, int &i, float m2, int i2) {
    if (m2 > m || (m2 == m && i2 < i)) {
        m = m2;
        i = i2;
    }
}

template <bool GRAD, class L>
__global__ void __launch_bounds__(THREADS)
    xent_kernel(L *logits, float *row_loss, const int32_t *targets, int V, float inv_r) {
    SHARED(float, warp_max, [WARPS]);
    SHARED(int, warp_arg, [WARPS]);
    SHARED(float, warp_sum, [WARPS]);
    L *z = logits + (size_t)blockIdx.x * V;
    int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    int target = targets[blockIdx.x];
    float zt = tof(z[target]);   // before any thread writes its gradient

    float m = -INFINITY;
    int am = V;   // past the end: a thread without a (non-NaN) value never wins a tie
    for (int c = tid; c < V; c += THREADS) {
        float v = tof(z[c]);
        if (v > m) m = v, am = c;   // ascending c: the first of equal values stays
    }
    for (int o = 16; o > 0; o >>= 1) argmax_merge(m, am, __shfl_xor_sync(FULL, m, o), __shfl_xor_sync(FULL, am, o));
    if (lane == 0) warp_max[warp] = m, warp_arg[warp] = am;
    __syncthreads();
    m = warp_max[0], am = warp_arg[0];
    for (int w = 1; w < WARPS; w++) argmax_merge(m, am, warp_max[w], warp_arg[w]);

    float s = 0.0f;
    for (int c = tid; c < V; c += THREADS) s += __expf(tof(z[c]) - m);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(FULL, s, o);
    if (lane == 0) warp_sum[warp] = s;
    __syncthreads();
    s = 0.0f;
    for (int w = 0; w < WARPS; w++) s += warp_sum[w];
    float lse = logf(s) + m;
    if (tid == 0) row_loss[blockIdx.x] = lse - zt;
    if (!GRAD) return;

    float l2 = m * (1e-4f * inv_r);
    for (int c = tid; c < V; c += THREADS) {
        float g = __expf(tof(z[c]) - lse) * inv_r;
        if (c == target) g -= inv_r;
        if (c == am) g += l2;
        put(z[c], g);
    }
}

} // namespace

template <class L>
cudaError_t xent_l2wrap_fwd_cuda(float *row_loss, const L *logits, const int32_t *targets, size_t N, int V,
                                 cudaStream_t stream) {
    if (V < 1 || N > 0x7fffffffu) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    auto *k = xent_kernel<false, L>;   // reads only: the cast lets one kernel serve both
    LAUNCH(k, (unsigned)N, THREADS, 0, stream)(const_cast<L *>(logits), row_loss, targets, V, 0.0f);
    return cudaGetLastError();
}

template <class L>
cudaError_t xent_l2wrap_fwdbwd_cuda(L *logits, float *row_loss, const int32_t *targets, size_t N, size_t R, int V,
                                    cudaStream_t stream) {
    if (V < 1 || R < N || R == 0 || N > 0x7fffffffu) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    auto *k = xent_kernel<true, L>;
    LAUNCH(k, (unsigned)N, THREADS, 0, stream)(logits, row_loss, targets, V, (float)(1.0 / (double)R));
    return cudaGetLastError();
}

// bf16 logits (--precision bf16) and fp32 (fp32/tf32).
template cudaError_t xent_l2wrap_fwd_cuda(float *, const bf16 *, const int32_t *, size_t, int, cudaStream_t);
template cudaError_t xent_l2wrap_fwd_cuda(float *, const float *, const int32_t *, size_t, int, cudaStream_t);
template cudaError_t xent_l2wrap_fwdbwd_cuda(bf16 *, float *, const int32_t *, size_t, size_t, int, cudaStream_t);
template cudaError_t xent_l2wrap_fwdbwd_cuda(float *, float *, const int32_t *, size_t, size_t, int, cudaStream_t);
