// wkv7_fwd_cuda without checkpoints (inference: prefill and decode), any T: against the twin
// wkv7_fwd with a carried state at T = 1, 5 and 37 (not multiples of 16), and one call over T
// steps against T calls of one step each (the same bits: the state stays fp32 between calls).
// Tolerances as tests/cuda/t_wkv7.cu: y within one bf16 ulp (floor 2^-10), the state within
// 2^-16 absolute (fp32 sums of 64 products in another order).
#include "emu.h"
#include "twin.h"
#include "wkv7.cuh"

static const int N = OPS_HEAD_SIZE;

static void run(int T, int H, unsigned seed) {
    const size_t n = (size_t)T * H * N, ns = (size_t)H * N * N;
    Vec r = rand_bf16(n, seed, -1, 1), k = rand_bf16(n, seed + 1, -0.5f, 0.5f), v = rand_bf16(n, seed + 2, -1, 1);
    Vec w = rand_bf16(n, seed + 3, -4, 4), a = rand_bf16(n, seed + 4, 0, 1), kk(n);
    Vec u = rand_bf16(n, seed + 5, -1, 1);
    for (size_t row = 0; row < n / N; row++) {   // kk: a unit vector per head, as keyprep makes it
        float s = 0;
        for (int j = 0; j < N; j++) s += u[row * N + j] * u[row * N + j];
        for (int j = 0; j < N; j++) kk[row * N + j] = round_bf16(u[row * N + j] / sqrtf(s));
    }
    Vec state0 = rand_bf16(ns, seed + 6, -2, 2);
    Vec y_ref(n), st_ref = state0;
    wkv7_fwd(y_ref.data(), NULL, st_ref.data(), r.data(), w.data(), k.data(), v.data(), kk.data(), a.data(), 1, T, H);

    bf16 *dr = dev_bf16(r), *dw = dev_bf16(w), *dk = dev_bf16(k), *dv = dev_bf16(v), *dkk = dev_bf16(kk), *da = dev_bf16(a);
    bf16 *dy = dev_alloc<bf16>(n);
    float *st = dev_f32(state0);
    CUDA_OK(wkv7_fwd_cuda(dy, NULL, st, dr, dw, dk, dv, dkk, da, 1, T, H, 0));
    Vec y = get(dy, n), s1 = get(st, ns);
    char what[64];
    snprintf(what, sizeof what, "y, T=%d", T);
    compare(what, y, y_ref, 1.0, 1.0 / 1024);
    snprintf(what, sizeof what, "state, T=%d", T);
    compare(what, s1, st_ref, 0.0, 1.0 / 65536);

    // T calls of one step each: the same bits
    put(st, state0);
    int same = 1;
    for (int t = 0; t < T; t++) {
        size_t o = (size_t)t * H * N;
        CUDA_OK(wkv7_fwd_cuda(dy + o, NULL, st, dr + o, dw + o, dk + o, dv + o, dkk + o, da + o, 1, 1, H, 0));
    }
    Vec y1 = get(dy, n), s2 = get(st, ns);
    same = !memcmp(y1.data(), y.data(), n * 4) && !memcmp(s2.data(), s1.data(), ns * 4);
    CHECK(same, "T=%d: one step at a time gives the same bits as one call", T);
    CHECK(wkv7_fwd_cuda(dy, NULL, st, dr, dw, dk, dv, dkk, da, 1, 0, H, 0) == cudaErrorInvalidValue, "T = 0 refused");
    for (bf16 *p : {dr, dw, dk, dv, dkk, da, dy}) CUDA_OK(cudaFree(p));
    CUDA_OK(cudaFree(st));
}

int main() {
    check_device();
    run(1, 2, 3);
    run(5, 1, 7);
    run(37, 3, 11);
    return check_finish("t_wkv7_step");
}
