// tests/cuda/twin.h: what the tests holding a CUDA kernel to its CPU twin (lib/ops.h) share:
// bf16-rounded random inputs, device copies, a comparison with a tolerance in bf16 ulps that
// prints the worst errors, and a check that the outputs' bits do not depend on the schedule.
#ifndef RWKV7C_TESTS_CUDA_TWIN_H
#define RWKV7C_TESTS_CUDA_TWIN_H
#include "emu.h"
#include "check.h"

#include <cuda_bf16.h>
#include <cstdint>
#include <cstring>
#include <vector>

typedef __nv_bfloat16 bf16;
typedef std::vector<float> Vec;

static inline float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// The spacing of bf16 values at |x|: 2^(e-8) for |x| in [2^(e-1), 2^e); subnormals below 2^-126.
static inline double ulp_bf16(double x) {
    x = fabs(x);
    if (!(x >= 0x1p-126)) return 0x1p-133;
    int e;
    frexp(x, &e);
    return ldexp(1.0, e - 8);
}

// n values uniform in [lo, hi), rounded to bf16 (the CPU twin gets exactly what the kernel gets).
static inline Vec rand_bf16(size_t n, unsigned seed, float lo, float hi) {
    Vec v(n);
    unsigned s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) v[i] = round_bf16(lo + (hi - lo) * 0.5f * (check_random(&s) + 1.0f));
    return v;
}

static inline bf16 *dev_bf16(const Vec &h) {
    std::vector<bf16> b(h.size());
    for (size_t i = 0; i < h.size(); i++) b[i] = __float2bfloat16_rn(h[i]);
    bf16 *d;
    CUDA_OK(cudaMalloc(&d, b.size() * sizeof(bf16) + 1));
    CUDA_OK(cudaMemcpy(d, b.data(), b.size() * sizeof(bf16), cudaMemcpyHostToDevice));
    return d;
}
static inline float *dev_f32(const Vec &h) {
    float *d;
    CUDA_OK(cudaMalloc(&d, h.size() * sizeof(float) + 1));
    CUDA_OK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}
template <class T> static inline T *dev_alloc(size_t n) {
    T *d;
    CUDA_OK(cudaMalloc(&d, n * sizeof(T) + 1));
    return d;
}
static inline void put(bf16 *d, const Vec &h) {
    std::vector<bf16> b(h.size());
    for (size_t i = 0; i < h.size(); i++) b[i] = __float2bfloat16_rn(h[i]);
    CUDA_OK(cudaMemcpy(d, b.data(), b.size() * sizeof(bf16), cudaMemcpyHostToDevice));
}
static inline void put(float *d, const Vec &h) {
    CUDA_OK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
}
static inline Vec get(const bf16 *d, size_t n) {
    std::vector<bf16> b(n);
    CUDA_OK(cudaMemcpy(b.data(), d, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    Vec h(n);
    for (size_t i = 0; i < n; i++) h[i] = __bfloat162float(b[i]);
    return h;
}
static inline Vec get(const float *d, size_t n) {
    Vec h(n);
    CUDA_OK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}
template <class T> static inline void get_bytes(std::vector<unsigned char> &out, const T *d, size_t n) {
    size_t o = out.size();
    out.resize(o + n * sizeof(T));
    CUDA_OK(cudaMemcpy(out.data() + o, d, n * sizeof(T), cudaMemcpyDeviceToHost));
}

// got against the twin's ref: |got - ref| <= k * ulp_bf16(max(|ref|, scale)) + floor, where
// scale (optional) is the size of the terms that cancelled into ref.  NaN must match NaN.
// Prints the worst absolute and relative errors.
static inline void compare(const char *what, const Vec &got, const Vec &ref, double k, double floor,
                           const Vec *scale = nullptr) {
    double worst_abs = 0, worst_rel = 0;
    int bad = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        double r = ref[i], g = got[i];
        if (std::isnan(r) || std::isnan(g)) {
            if (!(std::isnan(r) && std::isnan(g)) && bad++ < 3)
                CHECK(false, "%s[%zu]: %g, twin %g", what, i, g, r);
            continue;
        }
        double err = fabs(g - r), mag = fabs(r);
        if (scale && fabs((*scale)[i]) > mag) mag = fabs((*scale)[i]);
        double tol = k * ulp_bf16(mag) + floor;
        if (err > worst_abs) worst_abs = err;
        if (fabs(r) > 0 && err / fabs(r) > worst_rel) worst_rel = err / fabs(r);
        if (err > tol && bad++ < 3) CHECK(false, "%s[%zu]: %.9g, twin %.9g (tolerance %.3g)", what, i, g, r, tol);
    }
    printf("  %-28s n=%-7zu worst abs %.3g rel %.3g%s\n", what, ref.size(), worst_abs, worst_rel,
           bad ? "  FAILED" : "");
}

static inline unsigned long long fnv1a(const std::vector<unsigned char> &b) {
    unsigned long long h = 1469598103934665603ull;
    for (unsigned char c : b) h = (h ^ c) * 1099511628211ull;
    return h;
}

// op() resets the outputs, runs the kernels and returns the outputs' bytes.  Under the emulation
// it runs in three thread/block orders, on a GPU twice; the bytes must not change.
template <class F> static inline void check_bits_repeat(const char *what, F op) {
#if CUDA_EMU
    const char *orders[] = {"forward", "reverse", "shuffle:11"};
    std::vector<unsigned char> first;
    for (const char *o : orders) {
        CUDA_OK(cudaEmuSetOrder(o));
        std::vector<unsigned char> b = op();
        if (first.empty()) first = b;
        else CHECK(b == first, "%s: the bits differ in %s order", what, o);
    }
    const char *env = getenv("CUDA_EMU_ORDER");
    CUDA_OK(cudaEmuSetOrder(env && *env ? env : "forward"));
#else
    std::vector<unsigned char> first = op(), again = op();
    CHECK(again == first, "%s: the bits differ between two runs", what);
#endif
    printf("  %-28s bits %016llx\n", what, fnv1a(first));
}
#endif
