// tests/cuda/check.h: the few helpers the CUDA tests share (they compile with nvcc and, through
// cuda/emu.h, with a host C++ compiler).
#ifndef RWKV7C_TESTS_CUDA_CHECK_H
#define RWKV7C_TESTS_CUDA_CHECK_H
#include <cmath>
#include <cstdio>
#include <cstdlib>

static int check_failures;
#define CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            check_failures++; \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__); \
            printf("\n"); \
        } \
    } while (0)
// A CUDA call that must succeed; the test cannot go on without it.
#define CUDA_OK(call) \
    do { \
        cudaError_t e_ = (call); \
        if (e_ != cudaSuccess) { \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1); \
        } \
    } while (0)

// Built by nvcc, a test needs a device; without one it is skipped (exit 77).
static inline void check_device(void) {
#if !CUDA_EMU
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("no CUDA device\n");
        exit(77);
    }
#endif
}

static inline int check_finish(const char *name) {
    if (check_failures) {
        printf("%s: %d failure(s)\n", name, check_failures);
        return 1;
    }
    printf("%s: all ok\n", name);
    return 0;
}

// Deterministic inputs in [-1, 1).
static inline float check_random(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / 8388608.0f - 1.0f;
}
#endif
