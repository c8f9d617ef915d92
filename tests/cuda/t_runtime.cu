// The runtime API around kernels: memcpy round trips, memset, streams and events, launch limits
// (reported by cudaGetLastError, as on a GPU), the dynamic shared memory opt-in.  The launch
// limit checks hold on a real device too; the poison checks only in the emulation.
#include "emu.h"
#include "check.h"

#include <cstring>
#include <vector>

__constant__ float offsets[2];

__global__ void scale(float *x, int n, float by) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= by;
}

__global__ void add_offsets(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += offsets[i % 2];
}

// Touches every byte of its dynamic shared memory.
__global__ void fill_shared(float *out, int n) {
    DYN_SHARED(float, buf);
    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = (float)i;
    __syncthreads();
    if (threadIdx.x == 0) out[0] = buf[n - 1];
}

int main() {
    check_device();
    const int n = 777;
    std::vector<float> h(n), back(n, 0.0f);
    for (int i = 0; i < n; i++) h[i] = (float)i - 100.0f;
    float *a, *b;
    CUDA_OK(cudaMalloc(&a, n * sizeof(float)));
    CUDA_OK(cudaMalloc(&b, n * sizeof(float)));
#if CUDA_EMU
    // Fresh device memory is poisoned: a kernel that reads what nobody wrote sees NaN.
    CUDA_OK(cudaMemcpy(back.data(), a, n * sizeof(float), cudaMemcpyDeviceToHost));
    int nans = 0;
    for (float f : back) nans += std::isnan(f);
    CHECK(nans == n, "fresh cudaMalloc memory: %d of %d floats are NaN", nans, n);
#endif
    // Round trip host -> device -> device -> host, through a kernel and on a stream.
    cudaStream_t s;
    cudaEvent_t t0, t1;
    CUDA_OK(cudaStreamCreate(&s));
    CUDA_OK(cudaEventCreate(&t0));
    CUDA_OK(cudaEventCreate(&t1));
    CUDA_OK(cudaEventRecord(t0, s));
    CUDA_OK(cudaMemcpyAsync(a, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, s));
    CUDA_OK(cudaMemcpyAsync(b, a, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
    LAUNCH(scale, (n + 127) / 128, 128, 0, s)(b, n, 2.0f);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpyAsync(back.data(), b, n * sizeof(float), cudaMemcpyDeviceToHost, s));
    CUDA_OK(cudaEventRecord(t1, s));
    CUDA_OK(cudaStreamSynchronize(s));
    float ms = -1.0f;
    CUDA_OK(cudaEventElapsedTime(&ms, t0, t1));
    CHECK(ms >= 0.0f, "elapsed time %g ms", ms);
    int wrong = 0;
    for (int i = 0; i < n; i++) wrong += back[i] != 2.0f * h[i];
    CHECK(wrong == 0, "round trip: %d of %d values wrong", wrong, n);
    // Constant memory.
    const float offs[2] = {0.5f, -0.25f};
    CUDA_OK(cudaMemcpyToSymbol(offsets, offs, sizeof offs));
    LAUNCH(add_offsets, (n + 127) / 128, 128, 0, 0)(b, n);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaMemcpy(back.data(), b, n * sizeof(float), cudaMemcpyDeviceToHost));
    wrong = 0;
    for (int i = 0; i < n; i++) wrong += back[i] != 2.0f * h[i] + offs[i % 2];
    CHECK(wrong == 0, "constant memory: %d of %d values wrong", wrong, n);
    CUDA_OK(cudaMemset(b, 0, n * sizeof(float)));
    CUDA_OK(cudaMemcpy(back.data(), b, n * sizeof(float), cudaMemcpyDeviceToHost));
    wrong = 0;
    for (float f : back) wrong += f != 0.0f;
    CHECK(wrong == 0, "memset: %d values not zero", wrong);

    // Launch limits: each bad launch is an error for cudaGetLastError, and is not sticky.
    CHECK(cudaGetLastError() == cudaSuccess, "no error pending before the limit checks");
    LAUNCH(scale, 1, 1025, 0, 0)(a, n, 1.0f);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads per block accepted");
    LAUNCH(scale, 1, dim3(32, 33), 0, 0)(a, n, 1.0f);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "32x33 threads per block accepted");
    LAUNCH(scale, 1, dim3(32, 1, 65), 0, 0)(a, n, 1.0f);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "blockDim.z 65 accepted");
    LAUNCH(scale, dim3(1, 65536), 32, 0, 0)(a, n, 1.0f);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "gridDim.y 65536 accepted");
    LAUNCH(scale, 0, 32, 0, 0)(a, n, 1.0f);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "an empty grid accepted");
    const int big = 64 * 1024;
    LAUNCH(fill_shared, 1, 256, big, 0)(a, big / 4);
    CHECK(cudaGetLastError() != cudaSuccess, "64 KiB of dynamic shared memory accepted without the opt-in");
    CUDA_OK(cudaFuncSetAttribute(fill_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, big));
    LAUNCH(fill_shared, 1, 256, big, 0)(a, big / 4);
    CUDA_OK(cudaGetLastError());
    float last = 0.0f;
    CUDA_OK(cudaMemcpy(&last, a, sizeof last, cudaMemcpyDeviceToHost));
    CHECK(last == (float)(big / 4 - 1), "opt-in shared memory: got %g", last);
    LAUNCH(scale, 1, 1024, 0, 0)(a, n, 1.0f);
    CUDA_OK(cudaGetLastError()); // the limits are not sticky: a good launch still works

#if CUDA_EMU
    // Misuse the emulation can see: a host pointer where a device pointer must be; a pointer
    // cudaMalloc did not return; a copy past the end of an allocation.
    CHECK(cudaMemcpy(h.data(), back.data(), 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "host pointer as device");
    CHECK(cudaFree(h.data()) == cudaErrorInvalidValue, "cudaFree of a host pointer");
    CHECK(cudaMemcpy(back.data(), a + 1, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue, "copy past the end");
    CHECK(cudaGetLastError() == cudaErrorInvalidValue, "last error");
    CHECK(cudaGetLastError() == cudaSuccess, "cudaGetLastError resets");
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    CHECK(prop.maxThreadsPerBlock == 1024 && prop.warpSize == 32 && prop.sharedMemPerBlock == 48 * 1024,
          "device properties %d %d %zu", prop.maxThreadsPerBlock, prop.warpSize, prop.sharedMemPerBlock);
#endif
    CUDA_OK(cudaEventDestroy(t0));
    CUDA_OK(cudaEventDestroy(t1));
    CUDA_OK(cudaStreamDestroy(s));
    CUDA_OK(cudaFree(a));
    CUDA_OK(cudaFree(b));
    return check_finish("t_runtime");
}
