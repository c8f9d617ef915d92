// cuda/wkv7.cu against its CPU twins lib/ops_cpu.c wkv7_fwd / wkv7_bwd: random inputs (seeded)
// rounded to bf16, the twin in fp32 on the same rounded values, every output compared with a
// tolerance in bf16 ulps (see `compare`).  Shapes: T = 16, 32, 48 (one, two, three chunks),
// decays at and beyond both ends of the clamp, a carried state, and shapes the kernels refuse.
//
// Usage: t_wkv7                  the checks
//        t_wkv7 --time B H T     milliseconds of forward and backward (meaningful on a GPU only)
#include "emu.h"
#include "check.h"
#include "wkv7.cuh"

#include <algorithm>
#include <cstring>
#include <vector>

typedef __nv_bfloat16 bf16;
static const int N = OPS_HEAD_SIZE;

static float bf_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// The spacing of bf16 numbers around |x| (8 significant bits).
static float ulp_bf16(float x) {
    int e;
    frexpf(fabsf(x), &e); // |x| in [2^(e-1), 2^e)
    return ldexpf(1.0f, std::max(e, -125) - 8);
}

// How w is drawn: the decay d = exp(-exp(-0.5) sigmoid(w)) lies in [0.545, 1).
enum WMode {
    W_TYPICAL, // uniform in [-4, 4)
    W_FAST,    // +30: sigmoid 1, d = 0.545 at the clamp; the backward divides by it 15 times
    W_SLOW,    // -30: d = 1.0f exactly in fp32, nothing decays
    W_EXTREME, // a mix of +-30, +-88 and +-10000 (exp overflows: sigmoid exactly 0 or 1) and 0
};

struct Case {
    const char *name;
    int B, T, H;
    WMode wmode;
    bool carry; // B == 1: a random initial state in, the final state out
};

struct Inputs {
    std::vector<float> r, w, k, v, kk, a, dy, dr0, dk0, dv0, state0;
};

static Inputs make_inputs(const Case &cs, unsigned seed) {
    const size_t n = (size_t)cs.B * cs.T * cs.H * N;
    Inputs in;
    for (auto *x : {&in.r, &in.w, &in.k, &in.v, &in.kk, &in.a, &in.dy, &in.dr0, &in.dk0, &in.dv0}) x->resize(n);
    static const float extremes[] = {-10000.0f, -88.0f, -30.0f, 0.0f, 30.0f, 88.0f, 10000.0f};
    for (size_t row = 0; row < n / N; row++) {
        float u[N], norm = 0.0f; // kk: a unit vector per head, as keyprep makes it
        for (int j = 0; j < N; j++) {
            u[j] = check_random(&seed);
            norm += u[j] * u[j];
        }
        for (int j = 0; j < N; j++) {
            const size_t e = row * N + j;
            in.kk[e] = bf_round(u[j] / sqrtf(norm));
            in.r[e] = bf_round(check_random(&seed));
            in.k[e] = bf_round(0.5f * check_random(&seed));
            in.v[e] = bf_round(check_random(&seed));
            in.a[e] = bf_round(0.5f + 0.5f * check_random(&seed)); // the in-context rate, a sigmoid
            in.dy[e] = bf_round(check_random(&seed));
            in.dr0[e] = bf_round(check_random(&seed)); // dr, dk, dv are accumulated into
            in.dk0[e] = bf_round(check_random(&seed));
            in.dv0[e] = bf_round(check_random(&seed));
            const float u01 = 0.5f + 0.5f * check_random(&seed);
            in.w[e] = cs.wmode == W_TYPICAL ? bf_round(8.0f * u01 - 4.0f)
                    : cs.wmode == W_FAST    ? 30.0f
                    : cs.wmode == W_SLOW    ? -30.0f
                                            : bf_round(extremes[std::min(6, (int)(u01 * 7.0f))]);
        }
    }
    if (cs.carry) {
        in.state0.resize((size_t)cs.H * N * N);
        for (float &x : in.state0) x = 2.0f * check_random(&seed);
    }
    return in;
}

static bf16 *to_device(const std::vector<float> &x) {
    std::vector<bf16> h(x.size());
    for (size_t e = 0; e < x.size(); e++) h[e] = __float2bfloat16_rn(x[e]);
    bf16 *d;
    CUDA_OK(cudaMalloc(&d, h.size() * sizeof(bf16)));
    CUDA_OK(cudaMemcpy(d, h.data(), h.size() * sizeof(bf16), cudaMemcpyHostToDevice));
    return d;
}

static std::vector<float> from_device(const bf16 *d, size_t n) {
    std::vector<bf16> h(n);
    CUDA_OK(cudaMemcpy(h.data(), d, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    std::vector<float> x(n);
    for (size_t e = 0; e < n; e++) x[e] = __bfloat162float(h[e]);
    return x;
}

static std::vector<float> from_device(const float *d, size_t n) {
    std::vector<float> x(n);
    CUDA_OK(cudaMemcpy(x.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return x;
}

// got passes where |got - want| <= ulps * ulp_bf16(want) + floor * max|want|.
//  - bf16 outputs: ulps = 1.  Rounding the kernel's fp32 value to bf16 costs half an ulp; the
//    other half covers the fp32 differences (summation order, FMA contraction, __expf,
//    __fdividef) that can move the value across a rounding boundary.  floor = 2^-10: a value that
//    is a sum of terms up to max|want| in size, with cancellation, carries an absolute fp32 error
//    relative to the terms rather than to itself; in the backward the state is rebuilt by
//    dividing by the decay, up to 15 times (d = 0.545 at the clamp), which multiplies fp32
//    rounding errors by up to 0.545^-15 = 9e3 (9e3 x 2^-24 = 2^-11).  Measured worst: see the
//    printed ratios (the fraction of the allowance used) and excesses (the fp32 part).
//  - fp32 outputs (checkpoints, the carried state): ulps = 0, floor = 2^-16: fp32 sums of 64
//    terms along a recurrence of at most 48 steps, against a twin whose order differs.
static void compare(const char *what, const Case &cs, const std::vector<float> &got, const std::vector<float> &want,
                    float ulps, float floor) {
    CHECK(got.size() == want.size(), "%s %s: %zu values, want %zu", cs.name, what, got.size(), want.size());
    float scale = 0.0f;
    for (float x : want) scale = std::max(scale, fabsf(x));
    // excess: the error beyond the half ulp that rounding to bf16 costs (all of it for fp32
    // outputs), relative to max|want|: the fp32 part of the difference.
    double worst_abs = 0.0, worst_rel = 0.0, worst_ratio = 0.0, worst_excess = 0.0;
    size_t bad = 0;
    for (size_t e = 0; e < want.size(); e++) {
        const double err = fabs((double)got[e] - want[e]);
        const double allowed = ulps * ulp_bf16(want[e]) + floor * scale;
        const double ratio = err == 0.0 ? 0.0 : err / allowed;
        if (!(ratio <= worst_ratio)) worst_ratio = ratio; // NaN sticks
        if (!(err <= worst_abs)) worst_abs = err;
        if (fabsf(want[e]) > 1e-3f * scale) worst_rel = std::max(worst_rel, err / fabs(want[e]));
        if (scale > 0.0f)
            worst_excess = std::max(worst_excess, (err - (ulps > 0.0f ? 0.5 * ulp_bf16(want[e]) : 0.0)) / scale);
        if (!(err <= allowed) && bad++ < 3)
            printf("  %s %s [%zu]: got %.8g, want %.8g (allowed %.3g)\n", cs.name, what, e, got[e], want[e], allowed);
    }
    printf("%-10s %-5s max|want| %-9.3g worst abs %-9.2g rel %-9.2g excess %-9.2g used %.2f of the tolerance\n", cs.name,
           what, scale, worst_abs, worst_rel, worst_excess, worst_ratio);
    CHECK(bad == 0, "%s %s: %zu of %zu values outside the tolerance", cs.name, what, bad, want.size());
}

static const float BF16_ULPS = 1.0f, BF16_FLOOR = 1.0f / 1024, F32_FLOOR = 1.0f / 65536;

static void run_case(const Case &cs) {
    const int B = cs.B, T = cs.T, H = cs.H;
    const size_t n = (size_t)B * T * H * N, nck = wkv7_ckpt_floats(B, T, H), nstate = (size_t)H * N * N;
    Inputs in = make_inputs(cs, 12345u + (unsigned)(B * 1000 + T * 10 + H));

    // The twin, in fp32 on the same bf16-rounded values.
    std::vector<float> y_ref(n), ck_ref(nck), state_ref = in.state0;
    wkv7_fwd(y_ref.data(), ck_ref.data(), cs.carry ? state_ref.data() : NULL, in.r.data(), in.w.data(), in.k.data(),
             in.v.data(), in.kk.data(), in.a.data(), B, T, H);
    std::vector<float> dr_ref = in.dr0, dk_ref = in.dk0, dv_ref = in.dv0, dw_ref(n), dkk_ref(n), da_ref(n);
    std::vector<float> scratch(wkv7_bwd_scratch_floats(1));
    wkv7_bwd(dr_ref.data(), dw_ref.data(), dk_ref.data(), dv_ref.data(), dkk_ref.data(), da_ref.data(), scratch.data(),
             in.dy.data(), in.r.data(), in.w.data(), in.k.data(), in.v.data(), in.kk.data(), in.a.data(),
             ck_ref.data(), B, T, H, 1);

    bf16 *r = to_device(in.r), *w = to_device(in.w), *k = to_device(in.k), *v = to_device(in.v);
    bf16 *kk = to_device(in.kk), *a = to_device(in.a), *dy = to_device(in.dy), *y = to_device(std::vector<float>(n));
    bf16 *dr = to_device(in.dr0), *dk = to_device(in.dk0), *dv = to_device(in.dv0);
    bf16 *dw, *dkk, *da;
    float *ck, *state = NULL, *scr;
    CUDA_OK(cudaMalloc(&dw, n * sizeof(bf16)));
    CUDA_OK(cudaMalloc(&dkk, n * sizeof(bf16)));
    CUDA_OK(cudaMalloc(&da, n * sizeof(bf16)));
    CUDA_OK(cudaMalloc(&ck, nck * sizeof(float)));
    CUDA_OK(cudaMalloc(&scr, wkv7_bwd_cuda_scratch_floats(B, T, H) * sizeof(float)));
    if (cs.carry) {
        CUDA_OK(cudaMalloc(&state, nstate * sizeof(float)));
        CUDA_OK(cudaMemcpy(state, in.state0.data(), nstate * sizeof(float), cudaMemcpyHostToDevice));
    }
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreate(&stream));
    CUDA_OK(wkv7_fwd_cuda(y, ck, state, r, w, k, v, kk, a, B, T, H, stream));
    CUDA_OK(wkv7_bwd_cuda(dr, dw, dk, dv, dkk, da, scr, dy, r, w, k, v, kk, a, ck, B, T, H, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    // The same bits again: no atomics, no order-dependent sums (a resumed run is bit-identical).
    {
        std::vector<float> y1 = from_device(y, n), dr1 = from_device(dr, n), dw1 = from_device(dw, n);
        bf16 *y2 = to_device(std::vector<float>(n)), *dr2 = to_device(in.dr0), *dk2 = to_device(in.dk0);
        bf16 *dv2 = to_device(in.dv0), *dw2 = to_device(std::vector<float>(n)), *dkk2 = to_device(std::vector<float>(n));
        bf16 *da2 = to_device(std::vector<float>(n));
        float *ck2;
        CUDA_OK(cudaMalloc(&ck2, nck * sizeof(float)));
        if (cs.carry) CUDA_OK(cudaMemcpy(state, in.state0.data(), nstate * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_OK(wkv7_fwd_cuda(y2, ck2, state, r, w, k, v, kk, a, B, T, H, stream));
        CUDA_OK(wkv7_bwd_cuda(dr2, dw2, dk2, dv2, dkk2, da2, scr, dy, r, w, k, v, kk, a, ck2, B, T, H, stream));
        CUDA_OK(cudaStreamSynchronize(stream));
        CHECK(from_device(y2, n) == y1 && from_device(dr2, n) == dr1 && from_device(dw2, n) == dw1 &&
                  from_device(ck2, nck) == from_device(ck, nck),
              "%s: a second run gave other bits", cs.name);
        for (bf16 *p : {y2, dr2, dk2, dv2, dw2, dkk2, da2}) CUDA_OK(cudaFree(p));
        CUDA_OK(cudaFree(ck2));
    }

    compare("y", cs, from_device(y, n), y_ref, BF16_ULPS, BF16_FLOOR);
    compare("ckpt", cs, from_device(ck, nck), ck_ref, 0.0f, F32_FLOOR);
    if (cs.carry) compare("state", cs, from_device(state, nstate), state_ref, 0.0f, F32_FLOOR);
    compare("dr", cs, from_device(dr, n), dr_ref, BF16_ULPS, BF16_FLOOR);
    compare("dw", cs, from_device(dw, n), dw_ref, BF16_ULPS, BF16_FLOOR);
    compare("dk", cs, from_device(dk, n), dk_ref, BF16_ULPS, BF16_FLOOR);
    compare("dv", cs, from_device(dv, n), dv_ref, BF16_ULPS, BF16_FLOOR);
    compare("dkk", cs, from_device(dkk, n), dkk_ref, BF16_ULPS, BF16_FLOOR);
    compare("da", cs, from_device(da, n), da_ref, BF16_ULPS, BF16_FLOOR);

    // Inference: no checkpoints, the same y.
    if (!cs.carry) {
        CUDA_OK(wkv7_fwd_cuda(y, NULL, NULL, r, w, k, v, kk, a, B, T, H, stream));
        CUDA_OK(cudaStreamSynchronize(stream));
        compare("y/inf", cs, from_device(y, n), y_ref, BF16_ULPS, BF16_FLOOR);
    }
    CUDA_OK(cudaStreamDestroy(stream));
    for (bf16 *p : {r, w, k, v, kk, a, dy, y, dr, dk, dv, dw, dkk, da}) CUDA_OK(cudaFree(p));
    CUDA_OK(cudaFree(ck));
    CUDA_OK(cudaFree(scr));
    if (state) CUDA_OK(cudaFree(state));
}

// Shapes and arguments the entry points refuse: cudaErrorInvalidValue, nothing written.
static void check_refusals(void) {
    const int H = 1, Tmax = 48;
    const size_t n = (size_t)2 * Tmax * H * N;
    std::vector<float> ones(n, 1.0f);
    bf16 *x = to_device(ones), *y = to_device(ones), *g = to_device(ones);
    float *ck, *scr;
    CUDA_OK(cudaMalloc(&ck, wkv7_ckpt_floats(2, Tmax, H) * sizeof(float)));
    CUDA_OK(cudaMalloc(&scr, wkv7_bwd_cuda_scratch_floats(2, Tmax, H) * sizeof(float)));
    float *state;
    CUDA_OK(cudaMalloc(&state, (size_t)H * N * N * sizeof(float)));
    struct { int B, T, H; bool state; const char *why; } bad[] = {
        {1, 24, H, false, "T = 24, not a multiple of 16"},
        {1, 8, H, false, "T = 8"},
        {1, 0, H, false, "T = 0"},
        {1, -16, H, false, "T = -16"},
        {0, 16, H, false, "B = 0"},
        {1, 16, 0, false, "H = 0"},
        {2, 16, H, true, "a carried state with B = 2"},
    };
    for (const auto &c : bad) {
        cudaError_t e = wkv7_fwd_cuda(y, ck, c.state ? state : NULL, x, x, x, x, x, x, c.B, c.T, c.H, 0);
        CHECK(e == cudaErrorInvalidValue, "forward with %s: %s, want cudaErrorInvalidValue", c.why, cudaGetErrorName(e));
        if (c.state) continue;
        e = wkv7_bwd_cuda(g, g, g, g, g, g, scr, x, x, x, x, x, x, x, ck, c.B, c.T, c.H, 0);
        CHECK(e == cudaErrorInvalidValue, "backward with %s: %s, want cudaErrorInvalidValue", c.why, cudaGetErrorName(e));
    }
    cudaError_t e = wkv7_fwd_cuda(NULL, ck, NULL, x, x, x, x, x, x, 1, 16, H, 0);
    CHECK(e == cudaErrorInvalidValue, "forward without y: %s", cudaGetErrorName(e));
    e = wkv7_bwd_cuda(g, g, g, g, g, g, scr, x, x, x, x, x, x, x, NULL, 1, 16, H, 0);
    CHECK(e == cudaErrorInvalidValue, "backward without checkpoints: %s", cudaGetErrorName(e));
    e = wkv7_bwd_cuda(g, g, g, g, g, g, NULL, x, x, x, x, x, x, x, ck, 1, 16, H, 0);
    CHECK(e == cudaErrorInvalidValue, "backward without scratch: %s", cudaGetErrorName(e));
    std::vector<float> after = from_device(y, n), after_g = from_device(g, n);
    CHECK(after == ones && after_g == ones, "a refused call wrote its output");
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaGetLastError());
    for (bf16 *p : {x, y, g}) CUDA_OK(cudaFree(p));
    CUDA_OK(cudaFree(ck));
    CUDA_OK(cudaFree(scr));
    CUDA_OK(cudaFree(state));
    printf("refusals checked\n");
}

// --time B H T: the mean of 5 runs after one warm-up, forward (with checkpoints) and backward.
static int time_shapes(int B, int H, int T) {
    Case cs = {"time", B, T, H, W_TYPICAL, false};
    const size_t n = (size_t)B * T * H * N;
    if (B < 1 || H < 1 || T < 16 || T % 16) {
        fprintf(stderr, "t_wkv7: --time B H T: positive B, H; T a positive multiple of 16\n");
        return 2;
    }
    Inputs in = make_inputs(cs, 1);
    bf16 *r = to_device(in.r), *w = to_device(in.w), *k = to_device(in.k), *v = to_device(in.v);
    bf16 *kk = to_device(in.kk), *a = to_device(in.a), *dy = to_device(in.dy), *y = to_device(in.dr0);
    bf16 *dr = to_device(in.dr0), *dk = to_device(in.dk0), *dv = to_device(in.dv0);
    bf16 *dw = to_device(in.dr0), *dkk = to_device(in.dr0), *da = to_device(in.dr0);
    float *ck, *scr;
    CUDA_OK(cudaMalloc(&ck, wkv7_ckpt_floats(B, T, H) * sizeof(float)));
    CUDA_OK(cudaMalloc(&scr, wkv7_bwd_cuda_scratch_floats(B, T, H) * sizeof(float)));
    cudaEvent_t e0, e1, e2;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    CUDA_OK(cudaEventCreate(&e2));
    const int reps = 5;
    float fwd_ms = 0.0f, bwd_ms = 0.0f;
    for (int rep = 0; rep <= reps; rep++) {
        CUDA_OK(cudaEventRecord(e0, 0));
        CUDA_OK(wkv7_fwd_cuda(y, ck, NULL, r, w, k, v, kk, a, B, T, H, 0));
        CUDA_OK(cudaEventRecord(e1, 0));
        CUDA_OK(wkv7_bwd_cuda(dr, dw, dk, dv, dkk, da, scr, dy, r, w, k, v, kk, a, ck, B, T, H, 0));
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
        fprintf(stderr, "usage: t_wkv7 [--time B H T]\n");
        return 2;
    }
    const Case cases[] = {
        {"typical", 2, 48, 2, W_TYPICAL, false},
        {"one-chunk", 1, 16, 3, W_TYPICAL, false},
        {"clamp-fast", 1, 32, 2, W_FAST, false},
        {"clamp-slow", 2, 32, 1, W_SLOW, false},
        {"extreme-w", 1, 48, 2, W_EXTREME, false},
        {"carry", 1, 32, 2, W_TYPICAL, true},
        {"8-chunks", 2, 128, 3, W_TYPICAL, false},
#if !CUDA_EMU
        {"gpu-large", 4, 1024, 12, W_TYPICAL, false}, // 48 blocks, 64 chunks: too slow emulated
#endif
    };
    for (const Case &cs : cases) run_case(cs);
    check_refusals();
    return check_finish("t_wkv7");
}
