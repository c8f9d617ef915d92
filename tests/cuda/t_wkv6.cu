// cuda/wkv6.cu against its CPU twins lib/ops6_cpu.c wkv6_fwd / wkv6_bwd: random inputs (seeded)
// rounded to bf16, the twin in fp32 on the same rounded values, every output compared with a
// tolerance in bf16 ulps (see `compare`).  Shapes: T = 1, 2, 3 (the backward's edge cases: dw is 0
// at t = 0 and T-1), T not a multiple of 16, several heads, B > 1, decays at and beyond both ends
// of exp(-exp(w)) (1.0f exactly, 0 exactly, exp(w) up to 1e13), a carried state; a second run
// bit-identical (three emulation orders); the shapes the kernels refuse.
//
// Usage: t_wkv6                  the checks
//        t_wkv6 --time B H T     milliseconds of forward and backward (meaningful on a GPU only)
#include "emu.h"
#include "twin.h"
#include "wkv6.cuh"
#include "ops6.h"
#include "ops.h"

#include <algorithm>
#include <cstring>

static const int N = OPS_HEAD_SIZE;

enum WMode {
    W_TYPICAL, // uniform in [-6, 1): d from 0.9975 down to 0.066, the trained range
    W_EXTREME, // a mix of -30, -20 (d = 1.0f exactly), -8, 0, 2, 4.6 (d subnormal), 5, 10, 30
               // (d = 0, exp(w) up to 1e13: dw large where G is not 0)
};

struct Case {
    const char *name;
    int B, T, H;
    WMode wmode;
    bool carry; // B == 1: a random initial state in, the final state out (forward)
};

struct Inputs {
    Vec r, k, v, w, u, dy, du0, state0;
};

static Inputs make_inputs(const Case &cs, unsigned seed) {
    const size_t n = (size_t)cs.B * cs.T * cs.H * N, C = (size_t)cs.H * N;
    Inputs in;
    in.r = rand_bf16(n, seed + 1, -1, 1);
    in.k = rand_bf16(n, seed + 2, -0.5f, 0.5f);
    in.v = rand_bf16(n, seed + 3, -1, 1);
    in.dy = rand_bf16(n, seed + 4, -1, 1);
    in.u = rand_bf16(C, seed + 5, -1, 1);
    in.du0 = rand_bf16(C, seed + 6, -1, 1); // du is accumulated into
    if (cs.wmode == W_TYPICAL) in.w = rand_bf16(n, seed + 7, -6, 1);
    else {
        static const float extremes[] = {-30, -20, -8, 0, 2, 4.6f, 5, 10, 30};
        Vec pick = rand_bf16(n, seed + 7, 0, 9);
        in.w.resize(n);
        for (size_t e = 0; e < n; e++) in.w[e] = round_bf16(extremes[std::min(8, (int)pick[e])]);
    }
    if (cs.carry) in.state0 = rand_bf16((size_t)cs.H * N * N, seed + 8, -2, 2);
    return in;
}

// got passes where |got - want| <= ulps * ulp_bf16(want) + floor[e].
//  - bf16 outputs: ulps = 1.  Rounding the kernel's fp32 value to bf16 costs half an ulp; the
//    other half covers the fp32 differences (summation order, FMA contraction, __expf) that can
//    move the value across a rounding boundary.  floor = 2^-12 max|want|: each output is a sum
//    of up to 64 T terms with cancellation, so its fp32 error is relative to the terms, not to
//    itself; nothing here divides by a decay (unlike wkv7's backward), so no error is amplified.
//  - dw = -exp(w_t) G_t: G_t is a running sum over t of differences of such sums (the floor as
//    above, but relative to max|G|), multiplied by exp(w_t), which reaches 1e13 in the extreme
//    case: floor[e] = 2^-12 max|G| exp(w_e).
//  - fp32 outputs (the carried state, du): ulps = 0, floor = 2^-16 max|want|: fp32 sums of at
//    most 64 terms along a recurrence of at most 64 steps (du: a sum over B of such sums), against
//    a twin whose order differs (and sums du in double).
static void compare_to(const char *what, const Case &cs, const Vec &got, const Vec &want, double ulps,
                       const Vec &floor) {
    CHECK(got.size() == want.size(), "%s %s: %zu values, want %zu", cs.name, what, got.size(), want.size());
    double worst_abs = 0, worst_ratio = 0;
    size_t bad = 0;
    for (size_t e = 0; e < want.size(); e++) {
        const double err = fabs((double)got[e] - want[e]), allowed = ulps * ulp_bf16(want[e]) + floor[e];
        const double ratio = err == 0 ? 0 : err / allowed;
        if (!(ratio <= worst_ratio)) worst_ratio = ratio; // NaN sticks
        if (!(err <= worst_abs)) worst_abs = err;
        if (!(err <= allowed) && bad++ < 3)
            printf("  %s %s [%zu]: got %.8g, want %.8g (allowed %.3g)\n", cs.name, what, e, got[e], want[e], allowed);
    }
    printf("%-12s %-5s worst abs %-9.2g used %.2f of the tolerance\n", cs.name, what, worst_abs, worst_ratio);
    CHECK(bad == 0, "%s %s: %zu of %zu values outside the tolerance", cs.name, what, bad, want.size());
}
static void compare_rel(const char *what, const Case &cs, const Vec &got, const Vec &want, double ulps,
                        double floor_rel) {
    double scale = 0;
    for (float x : want) scale = std::max(scale, (double)fabsf(x));
    compare_to(what, cs, got, want, ulps, Vec(want.size(), (float)(floor_rel * scale)));
}

static const double BF16_ULPS = 1, BF16_FLOOR = 1.0 / 4096, F32_FLOOR = 1.0 / 65536;

static void run_case(const Case &cs) {
    const int B = cs.B, T = cs.T, H = cs.H, C = H * N;
    const size_t n = (size_t)B * T * C, nstate = (size_t)H * N * N;
    Inputs in = make_inputs(cs, 1000u * B + 10u * T + H);

    // The twin, in fp32 on the same bf16-rounded values.
    Vec y_ref(n), state_ref = in.state0;
    wkv6_fwd(y_ref.data(), cs.carry ? state_ref.data() : nullptr, in.r.data(), in.k.data(), in.v.data(), in.w.data(),
             in.u.data(), B, T, H);
    Vec dr_ref(n), dk_ref(n), dv_ref(n), dw_ref(n), du_ref = in.du0;
    Vec scratch(wkv6_bwd_scratch_floats(B, T, H, 1));
    wkv6_bwd(dr_ref.data(), dk_ref.data(), dv_ref.data(), dw_ref.data(), du_ref.data(), scratch.data(), in.dy.data(),
             in.r.data(), in.k.data(), in.v.data(), in.w.data(), in.u.data(), B, T, H, 1);

    bf16 *r = dev_bf16(in.r), *k = dev_bf16(in.k), *v = dev_bf16(in.v), *w = dev_bf16(in.w), *u = dev_bf16(in.u);
    bf16 *dy = dev_bf16(in.dy), *y = dev_alloc<bf16>(n), *dr = dev_alloc<bf16>(n), *dk = dev_alloc<bf16>(n);
    bf16 *dv = dev_alloc<bf16>(n), *dw = dev_alloc<bf16>(n);
    float *du = dev_alloc<float>(C), *scr = dev_alloc<float>(wkv6_bwd_cuda_scratch_floats(B, T, H));
    float *state = cs.carry ? dev_alloc<float>(nstate) : nullptr;
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreate(&stream));
    auto op = [&]() {
        put(du, in.du0);
        if (cs.carry) put(state, in.state0);
        CUDA_OK(wkv6_fwd_cuda(y, state, r, k, v, w, u, B, T, H, stream));
        CUDA_OK(wkv6_bwd_cuda(dr, dk, dv, dw, du, scr, dy, r, k, v, w, u, B, T, H, stream));
        CUDA_OK(cudaStreamSynchronize(stream));
        std::vector<unsigned char> bytes;
        for (bf16 *p : {y, dr, dk, dv, dw}) get_bytes(bytes, p, n);
        get_bytes(bytes, du, C);
        if (cs.carry) get_bytes(bytes, state, nstate);
        return bytes;
    };
    // The same bits in every order and run: no atomics, no order-dependent sums.
    check_bits_repeat(cs.name, op);

    compare_rel("y", cs, get(y, n), y_ref, BF16_ULPS, BF16_FLOOR);
    if (cs.carry) compare_rel("state", cs, get(state, nstate), state_ref, 0, F32_FLOOR);
    compare_rel("dr", cs, get(dr, n), dr_ref, BF16_ULPS, BF16_FLOOR);
    compare_rel("dk", cs, get(dk, n), dk_ref, BF16_ULPS, BF16_FLOOR);
    compare_rel("dv", cs, get(dv, n), dv_ref, BF16_ULPS, BF16_FLOOR);
    { // dw: the floor relative to max|G| = max|dw / exp(w)|, times exp(w) of the element
        double gmax = 0;
        for (size_t e = 0; e < n; e++) gmax = std::max(gmax, fabs(dw_ref[e] / exp((double)in.w[e])));
        Vec floor(n);
        for (size_t e = 0; e < n; e++) floor[e] = (float)(BF16_FLOOR * gmax * exp((double)in.w[e]));
        Vec got = get(dw, n);
        compare_to("dw", cs, got, dw_ref, BF16_ULPS, floor);
        for (int b = 0; b < B; b++) // exactly 0 where no pair s < t < tau exists
            for (int c = 0; c < C; c++)
                CHECK(got[(size_t)b * T * C + c] == 0 && got[((size_t)b * T + T - 1) * C + c] == 0,
                      "%s: dw not 0 at t = 0 or T-1 (b %d, c %d)", cs.name, b, c);
    }
    compare_rel("du", cs, get(du, C), du_ref, 0, F32_FLOOR);

    // Inference from zero: the same y without a state.
    if (cs.carry) {
        Vec y0(n);
        wkv6_fwd(y0.data(), nullptr, in.r.data(), in.k.data(), in.v.data(), in.w.data(), in.u.data(), B, T, H);
        CUDA_OK(wkv6_fwd_cuda(y, nullptr, r, k, v, w, u, B, T, H, stream));
        CUDA_OK(cudaStreamSynchronize(stream));
        compare_rel("y/zero", cs, get(y, n), y0, BF16_ULPS, BF16_FLOOR);
    }
    CUDA_OK(cudaStreamDestroy(stream));
    for (bf16 *p : {r, k, v, w, u, dy, y, dr, dk, dv, dw}) CUDA_OK(cudaFree(p));
    for (float *p : {du, scr}) CUDA_OK(cudaFree(p));
    if (state) CUDA_OK(cudaFree(state));
}

// Shapes and arguments the entry points refuse: cudaErrorInvalidValue, nothing written.
static void check_refusals(void) {
    const int H = 1, Tmax = 4;
    const size_t n = (size_t)2 * Tmax * H * N;
    Vec ones(n, 1.0f);
    bf16 *x = dev_bf16(ones), *y = dev_bf16(ones), *g = dev_bf16(ones);
    float *du = dev_f32(Vec(H * N, 1.0f)), *scr = dev_alloc<float>(wkv6_bwd_cuda_scratch_floats(2, Tmax, H));
    float *state = dev_f32(Vec((size_t)H * N * N, 1.0f));
    struct { int B, T, H; bool state; const char *why; } bad[] = {
        {1, 0, H, false, "T = 0"},
        {1, -1, H, false, "T = -1"},
        {0, 2, H, false, "B = 0"},
        {1, 2, 0, false, "H = 0"},
        {2, 2, H, true, "a carried state with B = 2"},
    };
    for (const auto &c : bad) {
        cudaError_t e = wkv6_fwd_cuda(y, c.state ? state : nullptr, x, x, x, x, x, c.B, c.T, c.H, 0);
        CHECK(e == cudaErrorInvalidValue, "forward with %s: %s, want cudaErrorInvalidValue", c.why, cudaGetErrorName(e));
        if (c.state) continue;
        e = wkv6_bwd_cuda(g, g, g, g, du, scr, x, x, x, x, x, x, c.B, c.T, c.H, 0);
        CHECK(e == cudaErrorInvalidValue, "backward with %s: %s, want cudaErrorInvalidValue", c.why, cudaGetErrorName(e));
    }
    cudaError_t e = wkv6_fwd_cuda(nullptr, nullptr, x, x, x, x, x, 1, 2, H, 0);
    CHECK(e == cudaErrorInvalidValue, "forward without y: %s", cudaGetErrorName(e));
    e = wkv6_fwd_cuda(y, nullptr, x, x, x, x, nullptr, 1, 2, H, 0);
    CHECK(e == cudaErrorInvalidValue, "forward without u: %s", cudaGetErrorName(e));
    e = wkv6_bwd_cuda(g, g, g, g, du, nullptr, x, x, x, x, x, x, 1, 2, H, 0);
    CHECK(e == cudaErrorInvalidValue, "backward without scratch: %s", cudaGetErrorName(e));
    e = wkv6_bwd_cuda(g, g, g, g, nullptr, scr, x, x, x, x, x, x, 1, 2, H, 0);
    CHECK(e == cudaErrorInvalidValue, "backward without du: %s", cudaGetErrorName(e));
    CHECK(get(y, n) == ones && get(g, n) == ones && get(du, H * N) == Vec(H * N, 1.0f) &&
              get(state, (size_t)H * N * N) == Vec((size_t)H * N * N, 1.0f),
          "a refused call wrote its output");
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaGetLastError());
    for (bf16 *p : {x, y, g}) CUDA_OK(cudaFree(p));
    for (float *p : {du, scr, state}) CUDA_OK(cudaFree(p));
    printf("refusals checked\n");
}

// --time B H T: the mean of 5 runs after one warm-up, forward and backward.
static int time_shapes(int B, int H, int T) {
    if (B < 1 || H < 1 || T < 1) {
        fprintf(stderr, "t_wkv6: --time B H T: positive B, H, T\n");
        return 2;
    }
    Case cs = {"time", B, T, H, W_TYPICAL, false};
    const size_t n = (size_t)B * T * H * N;
    Inputs in = make_inputs(cs, 1);
    bf16 *r = dev_bf16(in.r), *k = dev_bf16(in.k), *v = dev_bf16(in.v), *w = dev_bf16(in.w), *u = dev_bf16(in.u);
    bf16 *dy = dev_bf16(in.dy), *y = dev_alloc<bf16>(n), *dr = dev_alloc<bf16>(n), *dk = dev_alloc<bf16>(n);
    bf16 *dv = dev_alloc<bf16>(n), *dw = dev_alloc<bf16>(n);
    float *du = dev_f32(in.du0), *scr = dev_alloc<float>(wkv6_bwd_cuda_scratch_floats(B, T, H));
    cudaEvent_t e0, e1, e2;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    CUDA_OK(cudaEventCreate(&e2));
    const int reps = 5;
    float fwd_ms = 0, bwd_ms = 0;
    for (int rep = 0; rep <= reps; rep++) {
        CUDA_OK(cudaEventRecord(e0, 0));
        CUDA_OK(wkv6_fwd_cuda(y, nullptr, r, k, v, w, u, B, T, H, 0));
        CUDA_OK(cudaEventRecord(e1, 0));
        CUDA_OK(wkv6_bwd_cuda(dr, dk, dv, dw, du, scr, dy, r, k, v, w, u, B, T, H, 0));
        CUDA_OK(cudaEventRecord(e2, 0));
        CUDA_OK(cudaEventSynchronize(e2));
        float f, b;
        CUDA_OK(cudaEventElapsedTime(&f, e0, e1));
        CUDA_OK(cudaEventElapsedTime(&b, e1, e2));
        if (rep > 0) fwd_ms += f / reps, bwd_ms += b / reps; // rep 0 warms up
    }
    printf("B %d H %d T %d: fwd %.3f ms, bwd %.3f ms (%zu tokens x heads)\n", B, H, T, fwd_ms, bwd_ms, n / N);
    return 0;
}

int main(int argc, char **argv) {
    check_device();
    if (argc == 5 && !strcmp(argv[1], "--time")) return time_shapes(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (argc != 1) {
        fprintf(stderr, "usage: t_wkv6 [--time B H T]\n");
        return 2;
    }
    const Case cases[] = {
        {"typical", 2, 37, 2, W_TYPICAL, false},
        {"T=1", 2, 1, 2, W_TYPICAL, false},
        {"T=2", 1, 2, 1, W_TYPICAL, false},
        {"T=3", 2, 3, 1, W_TYPICAL, false},
        {"one-head", 1, 16, 1, W_TYPICAL, false},
        {"extreme-w", 1, 41, 2, W_EXTREME, false},
        {"carry", 1, 23, 2, W_TYPICAL, true},
        {"B3-H3", 3, 50, 3, W_TYPICAL, false},
#if !CUDA_EMU
        {"gpu-large", 4, 1000, 12, W_TYPICAL, false}, // 48 blocks: too slow emulated
#endif
    };
    for (const Case &cs : cases) run_case(cs);
    check_refusals();
    return check_finish("t_wkv6");
}
