// Kernel bugs the emulation must catch: a missing __syncthreads (through poisoned shared memory
// and through the thread order), barriers some threads never reach, warp operations a lane
// never joins, too much static shared memory.  Each fault must end the launch with an error
// (cudaErrorLaunchFailure, sticky until cudaDeviceReset, as a device fault is), never a hang.
// Emulation only: on a GPU these kernels are undefined behaviour.
#include "emu.h"
#include "check.h"

#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

const int N = 64;

// y[i] = x[i+1]: the neighbour's value must be in shared memory before it is read.
__global__ void shift_racy(const float *x, float *y) {
    SHARED(float, buf, [N]);
    buf[threadIdx.x] = x[threadIdx.x];
    y[threadIdx.x] = buf[(threadIdx.x + 1) % N]; // BUG: no __syncthreads() before the read
}
__global__ void shift_ok(const float *x, float *y) {
    SHARED(float, buf, [N]);
    buf[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    y[threadIdx.x] = buf[(threadIdx.x + 1) % N];
}

// y[i] = x[i-1]: in index order the lower neighbour has always written before it is read, so
// only another order shows the missing barrier.
__global__ void shift_lower_racy(const float *x, float *y) {
    SHARED(float, buf, [N]);
    buf[threadIdx.x] = x[threadIdx.x];
    y[threadIdx.x] = threadIdx.x > 0 ? buf[threadIdx.x - 1] : 0.0f; // BUG: no __syncthreads() before the read
}

// acc[i] = sum over t of x[t][i+1]: the buffer is refilled every step, so the step's reads must
// finish before the next step's writes.  Poison cannot show this one; the order does.
__global__ void steps_racy(const float *x, float *acc, int steps) {
    SHARED(float, buf, [N]);
    float a = 0.0f;
    for (int t = 0; t < steps; t++) {
        buf[threadIdx.x] = x[t * N + threadIdx.x];
        __syncthreads();
        a += buf[(threadIdx.x + 1) % N];
        // BUG: no __syncthreads() here, before the next step overwrites buf
    }
    acc[threadIdx.x] = a;
}

__global__ void divergent_barrier(float *y) {
    if (threadIdx.x < 32) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    y[threadIdx.x] = 1.0f;
}

__global__ void barrier_skipped(float *y) {
    if (threadIdx.x >= 40) return; // BUG: these threads never reach the barrier below
    __syncthreads();
    y[threadIdx.x] = 1.0f;
}

__global__ void shuffle_with_exited_lane(float *y) {
    float v = (float)threadIdx.x;
    if (threadIdx.x % 32 == 31) return; // BUG: the full mask names this lane
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    y[threadIdx.x] = v;
}

__global__ void shuffle_meets_barrier(float *y) {
    float v = (float)threadIdx.x;
    if (threadIdx.x == 0) __syncthreads(); // BUG: lane 0 waits here, its warp at the shuffle
    else v += __shfl_down_sync(0xffffffffu, v, 1);
    y[threadIdx.x] = v;
}

// Writes one element past its shared array: ASan must stop it (tests/t_cuda_emu.sh).
__global__ void shared_overflow(float *y) {
    SHARED(float, buf, [N]);
    float *p = buf; // through a pointer, past UBSan's bounds check: this is ASan's catch
    p[threadIdx.x + 1] = 1.0f; // BUG: thread N-1 writes buf[N]
    __syncthreads();
    y[threadIdx.x] = buf[threadIdx.x];
}

// Recursion deep enough to overflow a 64 KiB fiber stack: the guard page must stop it with a
// message (tests/t_cuda_emu.sh).
__device__ int deep(int depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    return depth == 0 ? frame[0] : deep(depth - 1) + frame[0];
}
__global__ void stack_overflow(int *y) { y[threadIdx.x] = deep(100000); }

#if CUDA_EMU // ptxas refuses it at build time
__global__ void too_much_static_shared(float *y) {
    SHARED(float, big, [13000]); // 52000 bytes: over the 48 KiB static limit
    big[threadIdx.x] = 1.0f;
    __syncthreads();
    y[threadIdx.x] = big[threadIdx.x];
}

// Launches a faulty kernel; checks the error, the message and the stickiness, then resets.
#define EXPECT_FAULT(want, kernel, ...) \
    do { \
        LAUNCH(kernel, 1, N, 0, 0)(__VA_ARGS__); \
        cudaError_t got_ = cudaGetLastError(); \
        std::string fault_ = cudaEmuLastFault(); \
        CHECK(got_ == cudaErrorLaunchFailure, "%s: launch returned %s", #kernel, cudaGetErrorName(got_)); \
        CHECK(fault_.find("'" #kernel "'") != std::string::npos && fault_.find(want) != std::string::npos, \
              "%s: fault message '%s' lacks '%s'", #kernel, fault_.c_str(), want); \
        void *p_; \
        CHECK(cudaMalloc(&p_, 4) == cudaErrorLaunchFailure, "%s: the fault is not sticky", #kernel); \
        CUDA_OK(cudaDeviceReset()); \
    } while (0)

static int count_nans(const std::vector<float> &v) {
    int n = 0;
    for (float f : v) n += std::isnan(f);
    return n;
}

int main(int argc, char **argv) {
    alarm(60); // a hang is a failure too
    if (argc > 1 && !strcmp(argv[1], "shared-overflow")) { // under ASan: must not return
        float *y;
        CUDA_OK(cudaMalloc(&y, N * sizeof(float)));
        LAUNCH(shared_overflow, 1, N, 0, 0)(y);
        printf("shared_overflow ran to the end\n");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "stack-overflow")) { // must die with a message
        int *y;
        CUDA_OK(cudaMalloc(&y, N * sizeof(int)));
        LAUNCH(stack_overflow, 1, N, 0, 0)(y);
        printf("stack_overflow ran to the end\n");
        return 0;
    }
    const int steps = 4;
    std::vector<float> x(steps * N), y(N);
    for (int i = 0; i < steps * N; i++) x[i] = (float)(i % 97) + 1.0f;
    // In index order shift_lower_racy happens to work; the reverse order must expose it.
    int lower_nans = 0;
    const char *orders[] = {"forward", "reverse", "shuffle:1"};
    for (const char *order : orders) {
        CUDA_OK(cudaEmuSetOrder(order));
        float *dx, *dy;
        CUDA_OK(cudaMalloc(&dx, x.size() * sizeof(float)));
        CUDA_OK(cudaMalloc(&dy, N * sizeof(float)));
        CUDA_OK(cudaMemcpy(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));

        LAUNCH(shift_ok, 1, N, 0, 0)(dx, dy);
        CUDA_OK(cudaGetLastError());
        CUDA_OK(cudaMemcpy(y.data(), dy, N * sizeof(float), cudaMemcpyDeviceToHost));
        int wrong = 0;
        for (int i = 0; i < N; i++) wrong += y[i] != x[(i + 1) % N];
        CHECK(wrong == 0, "%s: shift_ok has %d wrong values", order, wrong);

        LAUNCH(shift_racy, 1, N, 0, 0)(dx, dy);
        CUDA_OK(cudaGetLastError());
        CUDA_OK(cudaMemcpy(y.data(), dy, N * sizeof(float), cudaMemcpyDeviceToHost));
        CHECK(count_nans(y) > 0, "%s: the missing barrier in shift_racy read no poisoned shared memory", order);

        LAUNCH(shift_lower_racy, 1, N, 0, 0)(dx, dy);
        CUDA_OK(cudaGetLastError());
        CUDA_OK(cudaMemcpy(y.data(), dy, N * sizeof(float), cudaMemcpyDeviceToHost));
        printf("%s order: shift_lower_racy reads %d poisoned values\n", order, count_nans(y));
        CHECK(strcmp(order, "reverse") != 0 || count_nans(y) > 0, "reverse order: the missing barrier in shift_lower_racy went unnoticed");
        if (strcmp(order, "forward") != 0) lower_nans += count_nans(y);

        LAUNCH(steps_racy, 1, N, 0, 0)(dx, dy, steps);
        CUDA_OK(cudaGetLastError());
        CUDA_OK(cudaMemcpy(y.data(), dy, N * sizeof(float), cudaMemcpyDeviceToHost));
        wrong = 0;
        for (int i = 0; i < N; i++) {
            float want = 0.0f;
            for (int t = 0; t < steps; t++) want += x[t * N + (i + 1) % N];
            wrong += y[i] != want;
        }
        CHECK(wrong > 0, "%s: the missing barrier in steps_racy went unnoticed", order);
        CUDA_OK(cudaFree(dx));
        CUDA_OK(cudaFree(dy));
    }

    CHECK(lower_nans > 0, "the missing barrier in shift_lower_racy went unnoticed in the reverse and shuffled orders");

    CUDA_OK(cudaEmuSetOrder("forward"));
    float *dy;
    CUDA_OK(cudaMalloc(&dy, N * sizeof(float)));
    EXPECT_FAULT("divergent __syncthreads", divergent_barrier, dy);
    CUDA_OK(cudaMalloc(&dy, N * sizeof(float))); // the reset freed it
    EXPECT_FAULT("exited without reaching it", barrier_skipped, dy);
    CUDA_OK(cudaMalloc(&dy, N * sizeof(float)));
    EXPECT_FAULT("exited", shuffle_with_exited_lane, dy);
    CUDA_OK(cudaMalloc(&dy, N * sizeof(float)));
    EXPECT_FAULT("__syncthreads", shuffle_meets_barrier, dy);
    CUDA_OK(cudaMalloc(&dy, N * sizeof(float)));
    EXPECT_FAULT("shared memory limit", too_much_static_shared, dy);

    CHECK(cudaEmuSetOrder("backwards") == cudaErrorInvalidValue, "a bad order accepted");
    return check_finish("t_faults");
}
#else
int main() {
    printf("t_faults checks the CPU emulation only\n");
    return 77;
}
#endif
