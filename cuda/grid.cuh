// cuda/grid.cuh: what the elementwise and row kernels share: the grid-stride loop, the grid size
// for it, bf16 <-> fp32 for the fp32-inside math, and a warp sum whose xor butterfly gives every
// lane the same bits whatever the schedule.  Include after emu.h and cuda_bf16.h.
#ifndef RWKV7C_CUDA_GRID_CUH
#define RWKV7C_CUDA_GRID_CUH
#include <stddef.h>

#define GRID_THREADS 256u      // threads per block of the grid-stride kernels
#define GRID_MAX_BLOCKS 8192u  // beyond: the loop strides; enough blocks to fill any GPU

// for (i over [0, n), strided by the whole grid)
#define FOR_EACH(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// Blocks of GRID_THREADS for n elements, at most GRID_MAX_BLOCKS.
static inline unsigned grid_blocks(size_t n) {
    size_t b = (n + GRID_THREADS - 1) / GRID_THREADS;
    return b < GRID_MAX_BLOCKS ? (unsigned)b : GRID_MAX_BLOCKS;
}

// The body of an elementwise entry point: nothing for n = 0, else kernel(args..., n) over the
// grid-stride grid on `stream`, and the launch's error.
#define ELEMENTWISE(kernel, n, ...)                                                    \
    do {                                                                               \
        if ((n) == 0) return cudaSuccess;                                              \
        LAUNCH(kernel, grid_blocks(n), GRID_THREADS, 0, stream)(__VA_ARGS__, (n));     \
        return cudaGetLastError();                                                     \
    } while (0)

static __device__ __forceinline__ float tof(float x) { return x; }
static __device__ __forceinline__ float tof(__nv_bfloat16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ __nv_bfloat16 tobf(float x) { return __float2bfloat16_rn(x); }

// Kernels templated on their activation type A (__nv_bfloat16 for --precision bf16, float for
// fp32/tf32): put(dst, x) stores fp32 math into an activation, rounding once where it is bf16;
// hadd/hsub/hmul are the official kernels' bf16 arithmetic (each result rounded) and plain fp32
// operations on floats.
static __device__ __forceinline__ void put(__nv_bfloat16 &dst, float x) { dst = __float2bfloat16_rn(x); }
static __device__ __forceinline__ void put(float &dst, float x) { dst = x; }
static __device__ __forceinline__ __nv_bfloat16 hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return __hadd_rn(a, b); }
static __device__ __forceinline__ __nv_bfloat16 hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return __hsub_rn(a, b); }
static __device__ __forceinline__ __nv_bfloat16 hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return __hmul_rn(a, b); }
static __device__ __forceinline__ float hadd(float a, float b) { return a + b; }
static __device__ __forceinline__ float hsub(float a, float b) { return a - b; }
static __device__ __forceinline__ float hmul(float a, float b) { return a * b; }
template <class A> static __device__ __forceinline__ A stored(float x) {
    A r;
    put(r, x);
    return r;
}

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
#endif
