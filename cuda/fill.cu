// cuda/fill.cu: broadcasts, rounding and a finiteness count (fill.cuh).  Grid-stride loops.
#include "fill.cuh"
#include "grid.cuh"

typedef __nv_bfloat16 bf16;

namespace {

const int THREADS = GRID_THREADS;
unsigned blocks_for(size_t n) { return grid_blocks(n); }

__global__ void __launch_bounds__(THREADS) fill_rows_bf16_kernel(bf16 *out, const bf16 *vec, int C, size_t n) {
    FOR_EACH(i, n) out[i] = vec[i % C];
}
__global__ void __launch_bounds__(THREADS) fill_rows_f32_kernel(float *out, const bf16 *vec, int C, size_t n) {
    FOR_EACH(i, n) out[i] = __bfloat162float(vec[i % C]);
}
__global__ void __launch_bounds__(THREADS) fill_rows_f32_f32_kernel(float *out, const float *vec, int C, size_t n) {
    FOR_EACH(i, n) out[i] = vec[i % C];
}
__global__ void __launch_bounds__(THREADS) round_bf16_kernel(bf16 *out, const float *in, size_t n) {
    FOR_EACH(i, n) out[i] = __float2bfloat16_rn(in[i]);
}
// One atomic per block after a block-wide count: an integer sum, so the order cannot matter.
__global__ void __launch_bounds__(THREADS) count_nonfinite_kernel(unsigned long long *count, const float *x, size_t n) {
    SHARED(unsigned, block_count, );
    if (threadIdx.x == 0) block_count = 0;
    __syncthreads();
    unsigned mine = 0;
    FOR_EACH(i, n) mine += (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u;   // exponent all ones: inf or NaN
    if (mine) atomicAdd(&block_count, mine);
    __syncthreads();
    if (threadIdx.x == 0 && block_count) atomicAdd(count, (unsigned long long)block_count);
}

} // namespace

cudaError_t fill_rows_cuda(bf16 *out, const bf16 *vec, size_t rows, int C, cudaStream_t stream) {
    if (C < 1) return cudaErrorInvalidValue;
    size_t n = rows * (size_t)C;
    if (n == 0) return cudaSuccess;
    LAUNCH(fill_rows_bf16_kernel, blocks_for(n), THREADS, 0, stream)(out, vec, C, n);
    return cudaGetLastError();
}
cudaError_t fill_rows_cuda(float *out, const bf16 *vec, size_t rows, int C, cudaStream_t stream) {
    if (C < 1) return cudaErrorInvalidValue;
    size_t n = rows * (size_t)C;
    if (n == 0) return cudaSuccess;
    LAUNCH(fill_rows_f32_kernel, blocks_for(n), THREADS, 0, stream)(out, vec, C, n);
    return cudaGetLastError();
}
cudaError_t fill_rows_cuda(float *out, const float *vec, size_t rows, int C, cudaStream_t stream) {
    if (C < 1) return cudaErrorInvalidValue;
    size_t n = rows * (size_t)C;
    if (n == 0) return cudaSuccess;
    LAUNCH(fill_rows_f32_f32_kernel, blocks_for(n), THREADS, 0, stream)(out, vec, C, n);
    return cudaGetLastError();
}
cudaError_t round_bf16_cuda(bf16 *out, const float *in, size_t n, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    LAUNCH(round_bf16_kernel, blocks_for(n), THREADS, 0, stream)(out, in, n);
    return cudaGetLastError();
}
cudaError_t count_nonfinite_cuda(unsigned long long *count, const float *x, size_t n, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    LAUNCH(count_nonfinite_kernel, blocks_for(n), THREADS, 0, stream)(count, x, n);
    return cudaGetLastError();
}
