// cuda/emu.h: lets one .cu source compile with nvcc for a GPU and with g++/clang++ for the CPU.
//
// Under nvcc it only defines the three macros project kernels use in place of CUDA syntax that
// is not C++: LAUNCH (for <<<>>>), SHARED and DYN_SHARED (for __shared__).  Under a host
// compiler it is a CPU SIMT emulation: one fiber per CUDA thread, barriers and warp operations
// as rendezvous among fibers, the runtime API (memory, streams, events, errors) as host calls.
// It checks what a GPU would not forgive (divergent barriers, launch limits, shared memory
// sizes), runs threads and blocks in more than one order and poisons fresh memory so a missing
// barrier shows.  Rules and limits: cuda/README.md.
#ifndef RWKV7C_CUDA_EMU_H
#define RWKV7C_CUDA_EMU_H

#ifdef __CUDACC__

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#define CUDA_EMU 0
#define LAUNCH(kernel, grid, block, shmem, stream) kernel<<<(grid), (block), (shmem), (stream)>>>
#define SHARED(T, name, dims) __shared__ T name dims
#define DYN_SHARED(T, name) \
    extern __shared__ __align__(16) unsigned char emu_dyn_##name[]; \
    T *name = reinterpret_cast<T *>(emu_dyn_##name)

#else // ---------------------------------------------------------------- host emulation

#define CUDA_EMU 1
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

// The toolkit's headers compile in host C++: cuda_bf16.h has host implementations of the bf16
// conversions and arithmetic (round-to-nearest-even, as on the device) and brings in
// vector_types.h (dim3, float4), driver_types.h (cudaError_t, cudaDeviceProp, ...) and
// cuda_runtime_api.h, whose functions emu.cpp defines.
#if !__has_include(<cuda_bf16.h>)
#error "cuda/emu.h needs the CUDA toolkit's headers: add -I$(CUDA_HOME)/include"
#endif
#include <cuda_bf16.h>
// cuda_runtime.h's host templates would clash with the emulation's: make including it a no-op.
#define __CUDA_RUNTIME_H__

// host_defines.h already makes __global__/__device__/__host__ empty for a host compiler.
#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif
#ifndef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
#endif
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __constant__
#define __constant__
// Plain __shared__ cannot be made per block and poisoned: say what to write instead.
#undef __shared__
#define __shared__ static_assert(false, "cuda/emu.h: write SHARED(T, name, dims) or DYN_SHARED(T, name), not __shared__");

// The emulated device's limits.
#define CUDA_EMU_MAX_THREADS 1024
#define CUDA_EMU_SHARED_DEFAULT 49152     // per block without the opt-in attribute
#define CUDA_EMU_SHARED_OPTIN 232448      // per block with cudaFuncAttributeMaxDynamicSharedMemorySize (sm_90)
#define CUDA_EMU_POISON 0xFF              // fresh shared and device bytes: NaN as float, bf16, double

constexpr int warpSize = 32;

namespace emu {

// What one CUDA thread sees; the scheduler points `cur` at the running fiber's copy.
struct ThreadView {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
};
extern thread_local const ThreadView *cur;

enum WarpOpKind { WARP_SYNC, SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, VOTE_BALLOT, VOTE_ANY, VOTE_ALL };

int syncthreads(const char *file, int line, int predicate); // returns how many threads passed a nonzero predicate
uint64_t warp_op(WarpOpKind kind, unsigned mask, uint64_t value, int param, int width, const char *file, int line);
void *shared_static(const void *site, size_t bytes, const char *file, int line);
void *shared_dynamic();
cudaError_t launch(const char *name, const void *func, dim3 grid, dim3 block, size_t shmem,
                   cudaStream_t stream, const std::function<void()> &body);
bool is_device_range(const void *p, size_t bytes);

template <class T> inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp exchange of a type wider than 8 bytes");
    uint64_t u = 0;
    std::memcpy(&u, &v, sizeof v);
    return u;
}
template <class T> inline T from_bits(uint64_t u) {
    T v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}
template <class T> inline T shfl(WarpOpKind kind, unsigned mask, T v, int param, int width, const char *file, int line) {
    return from_bits<T>(warp_op(kind, mask, to_bits(v), param, width, file, line));
}

// LAUNCH(k, ...)(args...): the call operator runs the whole grid before it returns.
template <class F> struct Launcher {
    const char *name;
    F *func;
    dim3 grid, block;
    size_t shmem;
    cudaStream_t stream;
    template <class... A> void operator()(A &&...args) const {
        F *f = func;
        launch(name, reinterpret_cast<const void *>(f), grid, block, shmem, stream, [&] { f(args...); });
    }
};
template <class F> Launcher<F> make_launcher(const char *name, F *func, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream) {
    return Launcher<F>{name, func, grid, block, shmem, stream};
}

} // namespace emu

#define threadIdx (::emu::cur->thread_idx)
#define blockIdx (::emu::cur->block_idx)
#define blockDim (::emu::cur->block_dim)
#define gridDim (::emu::cur->grid_dim)

#define LAUNCH(kernel, grid, block, shmem, stream) \
    ::emu::make_launcher(#kernel, kernel, dim3(grid), dim3(block), (shmem), (stream))
// One allocation per declaration site per block, fresh and poisoned for every block.  The
// declaration must run in every thread that uses the variable (declare at the top of the kernel).
#define SHARED(T, name, dims) \
    static const char emu_site_##name = 0; \
    using emu_type_##name = T dims; \
    emu_type_##name &name = *reinterpret_cast<emu_type_##name *>( \
        ::emu::shared_static(&emu_site_##name, sizeof(emu_type_##name), __FILE__, __LINE__))
#define DYN_SHARED(T, name) T *name = reinterpret_cast<T *>(::emu::shared_dynamic())

// ------------------------------------------------------------------------- synchronisation
#define __syncthreads() ((void)::emu::syncthreads(__FILE__, __LINE__, 0))
#define __syncthreads_count(pred) ::emu::syncthreads(__FILE__, __LINE__, (pred) ? 1 : 0)
#define __syncthreads_and(pred) (::emu::syncthreads(__FILE__, __LINE__, (pred) ? 1 : 0) == (int)(blockDim.x * blockDim.y * blockDim.z))
#define __syncthreads_or(pred) (::emu::syncthreads(__FILE__, __LINE__, (pred) ? 1 : 0) != 0)
#define __syncwarp(...) ((void)::emu::warp_op(::emu::WARP_SYNC, emu_mask_or_all(__VA_ARGS__), 0, 0, 32, __FILE__, __LINE__))
inline unsigned emu_mask_or_all(unsigned mask = 0xffffffffu) { return mask; }
#define __shfl_sync(mask, v, src, ...) ::emu::shfl(::emu::SHFL_IDX, (mask), (v), (src), emu_width(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_up_sync(mask, v, delta, ...) ::emu::shfl(::emu::SHFL_UP, (mask), (v), (int)(delta), emu_width(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_down_sync(mask, v, delta, ...) ::emu::shfl(::emu::SHFL_DOWN, (mask), (v), (int)(delta), emu_width(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_xor_sync(mask, v, lanes, ...) ::emu::shfl(::emu::SHFL_XOR, (mask), (v), (lanes), emu_width(__VA_ARGS__), __FILE__, __LINE__)
inline int emu_width(int width = 32) { return width; }
#define __ballot_sync(mask, pred) ((unsigned)::emu::warp_op(::emu::VOTE_BALLOT, (mask), (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __any_sync(mask, pred) ((int)::emu::warp_op(::emu::VOTE_ANY, (mask), (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __all_sync(mask, pred) ((int)::emu::warp_op(::emu::VOTE_ALL, (mask), (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__))
// Fibers switch only at barriers and warp operations, so a fence has nothing to order.
inline void __threadfence() {}
inline void __threadfence_block() {}

// ------------------------------------------------------------------------- atomics
// Real atomics, so blocks may one day run on several OS threads.
template <class T> inline T emu_atomic_update(T *p, T (*op)(T, T), T v) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomic on a 4- or 8-byte type");
    typedef typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type U;
    U *u = reinterpret_cast<U *>(p);
    U old = __atomic_load_n(u, __ATOMIC_RELAXED), want;
    do {
        want = emu::to_bits(op(emu::from_bits<T>(old), v));
    } while (!__atomic_compare_exchange_n(u, &old, want, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return emu::from_bits<T>(old);
}
template <class T> inline T emu_add(T a, T b) { return a + b; }
template <class T> inline T emu_max(T a, T b) { return a > b ? a : b; }
template <class T> inline T emu_min(T a, T b) { return a < b ? a : b; }
inline float atomicAdd(float *p, float v) { return emu_atomic_update<float>(p, emu_add<float>, v); }
inline double atomicAdd(double *p, double v) { return emu_atomic_update<double>(p, emu_add<double>, v); }
inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline int atomicSub(int *p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicSub(unsigned *p, unsigned v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
inline int atomicMax(int *p, int v) { return emu_atomic_update<int>(p, emu_max<int>, v); }
inline unsigned atomicMax(unsigned *p, unsigned v) { return emu_atomic_update<unsigned>(p, emu_max<unsigned>, v); }
inline int atomicMin(int *p, int v) { return emu_atomic_update<int>(p, emu_min<int>, v); }
inline unsigned atomicMin(unsigned *p, unsigned v) { return emu_atomic_update<unsigned>(p, emu_min<unsigned>, v); }
inline int atomicExch(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicExch(unsigned *p, unsigned v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
inline float atomicExch(float *p, float v) {
    return emu::from_bits<float>(__atomic_exchange_n(reinterpret_cast<uint32_t *>(p), (uint32_t)emu::to_bits(v), __ATOMIC_SEQ_CST));
}
template <class T> inline T emu_cas(T *p, T expected, T desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected; // the old value, whether or not it matched
}
inline int atomicCAS(int *p, int e, int d) { return emu_cas(p, e, d); }
inline unsigned atomicCAS(unsigned *p, unsigned e, unsigned d) { return emu_cas(p, e, d); }
inline unsigned long long atomicCAS(unsigned long long *p, unsigned long long e, unsigned long long d) { return emu_cas(p, e, d); }

// ------------------------------------------------------------------------- intrinsics
// Host libm stands in for the device's approximate versions: results agree to a few ulps, not
// bit for bit (compare emulated kernels with tolerances).
template <class T> inline T __ldg(const T *p) { return *p; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline int __float_as_int(float x) { return emu::from_bits<int>(emu::to_bits(x)); }
inline unsigned __float_as_uint(float x) { return emu::from_bits<unsigned>(emu::to_bits(x)); }
inline float __int_as_float(int x) { return emu::from_bits<float>(emu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return emu::from_bits<float>(emu::to_bits(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

// ------------------------------------------------------------------------- runtime API
// The runtime API: cuda_runtime_api.h declares the functions (emu.cpp defines the ones the
// project uses); these are the C++ conveniences cuda_runtime.h would add.
template <class T> inline cudaError_t cudaMalloc(T **ptr, size_t bytes) { return cudaMalloc(reinterpret_cast<void **>(ptr), bytes); }
template <class T> inline cudaError_t cudaMallocHost(T **ptr, size_t bytes) { return cudaMallocHost(reinterpret_cast<void **>(ptr), bytes); }
template <class T> inline cudaError_t cudaFuncSetAttribute(T *func, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void *>(func), attr, value);
}
template <class T> inline cudaError_t cudaMemcpyToSymbol(T &symbol, const void *src, size_t bytes, size_t offset = 0, cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
    if (offset + bytes > sizeof symbol || (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDefault)) return cudaErrorInvalidValue;
    std::memcpy(reinterpret_cast<char *>(&symbol) + offset, src, bytes);
    return cudaSuccess;
}

// Emulation only (guard calls with `#if CUDA_EMU`).
// Order of blocks and of threads within a block: "forward", "reverse" or "shuffle:SEED".  The
// environment variable CUDA_EMU_ORDER sets it at start-up.  Returns cudaErrorInvalidValue for
// anything else.
extern "C" cudaError_t cudaEmuSetOrder(const char *order);
// The last kernel fault's message ("" when none), also printed to stderr when it happened.
extern "C" const char *cudaEmuLastFault(void);

#endif // __CUDACC__
#endif // RWKV7C_CUDA_EMU_H
