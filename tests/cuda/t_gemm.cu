// cuda/gemm.cu (gemm.cuh) against a double-precision product of the same bf16 inputs, in the
// three forms of the model (forward y = x W^T, input gradient dx = dy W, weight gradient
// dW += dy^T x) on a layer's shapes (T = 48 tokens, C = 64, out = 64 and 256) and the head's
// (T = 16, C = 64, V = 65536 rows), the weight gradient accumulated twice into fp32 with beta = 1
// (as gradients accumulate over micro-batches), a bf16 output with beta = 1, beta = 0 on a D
// full of NaN, an operand not 256-byte aligned, the descriptor cache (a key seen again is a hit),
// arguments refused, and the bits repeating (three orders under the emulation, twice on a GPU).
//
// Tolerances (u = 2^-24, fp32's unit roundoff): a product of two bf16 values (8-bit significands)
// is exact in fp32, so the only fp32 error is the summation's; any order of summing K terms plus
// beta*D0 (K + 1 additions) stays within (K + 1) u / (1 - (K + 1) u) * (sum |a b| + |beta D0|)
// (Higham, Accuracy and Stability, §3.1), taken as (K + 2) u (sum |a b| + |beta D0|), summed over
// the calls that accumulated.  A bf16 output then rounds to nearest-even: half a bf16 ulp of the
// fp32 value, at most one bf16 ulp of the exact value.  That bound is loose for the head's
// K = 65536, so bf16 outputs are also held to being the exact value correctly rounded in all but
// 2% of the elements (partial sums rounded to bf16 would break that; the fp32 sums do not).
#include "emu.h"
#include "twin.h"
#include "gemm.cuh"

static GemmContext *ctx;
static void *workspace;

// A dense row-major operand as op() reads it: ta ? X[K,M] : X[M,K], element (m, k).
static inline double at(const Vec &x, int t, int M, int K, int m, int k) {
    return t ? x[(size_t)k * M + m] : x[(size_t)m * K + k];
}

// ref = op(A) op(B) * calls + beta D0 in double, and the error bound above for each element.
static void reference(int ta, int tb, int M, int N, int K, const Vec &A, const Vec &B, const Vec *D0, float beta,
                      int calls, bool bf16_out, std::vector<double> &ref, std::vector<double> &tol) {
    ref.assign((size_t)M * N, 0);
    tol.assign((size_t)M * N, 0);
    const double u = 0x1p-24;
    std::vector<double> arow(K);
    for (int m = 0; m < M; m++) {
        for (int k = 0; k < K; k++) arow[k] = at(A, ta, M, K, m, k);
        for (int n = 0; n < N; n++) {
            double s = 0, sabs = 0;
            for (int k = 0; k < K; k++) {
                double p = arow[k] * at(B, !tb, N, K, n, k);   // B[K,N] is op^T of an [N,K] view
                s += p;
                sabs += fabs(p);
            }
            double d0 = D0 ? beta * (*D0)[(size_t)m * N + n] : 0;
            double r = calls * s + d0;
            double t = (K + 2) * u * (calls * sabs + fabs(d0));
            if (bf16_out) t += ulp_bf16(r);
            ref[(size_t)m * N + n] = r;
            tol[(size_t)m * N + n] = t;
        }
    }
}

static void compare_ref(const char *what, const Vec &got, const std::vector<double> &ref,
                        const std::vector<double> &tol, bool bf16_out) {
    double worst_abs = 0, worst_frac = 0;
    int bad = 0;
    size_t misrounded = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        double err = fabs(got[i] - ref[i]);
        if (bf16_out && got[i] != round_bf16((float)ref[i])) misrounded++;
        if (!(err <= tol[i])) {   // NaN fails too
            if (bad++ < 3) CHECK(false, "%s[%zu]: %.9g, exact %.9g (tolerance %.3g)", what, i, got[i], ref[i], tol[i]);
            continue;
        }
        if (err > worst_abs) worst_abs = err;
        if (tol[i] > 0 && err / tol[i] > worst_frac) worst_frac = err / tol[i];
    }
    printf("  %-34s n=%-8zu worst abs %.3g, %.3f of the tolerance", what, ref.size(), worst_abs, worst_frac);
    if (bf16_out) printf(", %.4f%% not the exact value rounded", 100.0 * misrounded / ref.size());
    printf("%s\n", bad ? "  FAILED" : "");
    // The bound above is loose for a long sum (K = 65536: 2^-8 of sum |a b|), too loose to see
    // partial sums rounded to bf16.  An fp32 sum is off by far less than a bf16 ulp, so its
    // rounding differs from the exact value's only where that value lies within the fp32 error
    // of a rounding boundary: a small fraction.  A bf16 split-K moves a large fraction.
    CHECK(misrounded <= ref.size() / 50, "%s: %zu of %zu bf16 outputs are not the exact value rounded", what,
          misrounded, ref.size());
}

// The poison of fresh emulated memory, on the GPU too: beta = 0 must not read D.
template <class T> static T *dev_nan(size_t n) {
    T *d = dev_alloc<T>(n);
    CUDA_OK(cudaMemset(d, 0xFF, n * sizeof(T)));
    return d;
}

// One product D = op(A) op(B) (+ beta D0), `calls` times with beta = 1 after the first when
// accumulating; checked against the double reference.  a_offset shifts A by elements (alignment).
template <class T>
static void product(const char *what, int ta, int tb, int M, int N, int K, unsigned seed, float beta, int calls,
                    size_t a_offset = 0) {
    const bool bf16_out = sizeof(T) == sizeof(bf16);
    Vec A = rand_bf16((size_t)M * K + a_offset, seed, -1, 1), B = rand_bf16((size_t)K * N, seed + 1, -1, 1);
    Vec D0 = rand_bf16((size_t)M * N, seed + 2, -4, 4);
    bf16 *dA = dev_bf16(A), *dB = dev_bf16(B);
    T *dD;
    if (beta != 0) {
        dD = dev_alloc<T>(D0.size());
        put(dD, D0);
    } else
        dD = dev_nan<T>(D0.size());
    for (int c = 0; c < calls; c++) {
        cudaError_t err = gemm_cuda(ctx, ta, tb, M, N, K, dA + a_offset, dB, dD, c ? 1.0f : beta, workspace,
                                    GEMM_WORKSPACE_BYTES, 0);
        CHECK(err == cudaSuccess, "%s: %s (%s)", what, cudaGetErrorString(err), gemm_error(ctx));
    }
    CUDA_OK(cudaDeviceSynchronize());
    Vec Aused(A.begin() + a_offset, A.end());
    std::vector<double> ref, tol;
    // calls > 1 accumulates the same product again: op(A) op(B) * calls + beta D0
    reference(ta, tb, M, N, K, Aused, B, beta != 0 ? &D0 : nullptr, beta, calls, bf16_out, ref, tol);
    compare_ref(what, get(dD, D0.size()), ref, tol, bf16_out);
    CUDA_OK(cudaFree(dA));
    CUDA_OK(cudaFree(dB));
    CUDA_OK(cudaFree(dD));
}

static void cache_and_errors(void) {
    const int M = 48, N = 64, K = 64;
    bf16 *dx = dev_bf16(rand_bf16((size_t)M * K, 5, -1, 1)), *dw = dev_bf16(rand_bf16((size_t)N * K, 6, -1, 1));
    bf16 *dy = dev_alloc<bf16>((size_t)M * N);
    GemmContext *c;
    CUDA_OK(gemm_create(&c));
    long hits, misses;
    CUDA_OK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, 0));
    gemm_cache_stats(c, &hits, &misses);
    CHECK(hits == 0 && misses == 1, "first call: %ld hits %ld misses, want 0 and 1", hits, misses);
    std::vector<unsigned char> first, again;
    get_bytes(first, dy, (size_t)M * N);
    CUDA_OK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, 0));
    gemm_cache_stats(c, &hits, &misses);
    CHECK(hits == 1 && misses == 1, "the same key again: %ld hits %ld misses, want 1 and 1", hits, misses);
    get_bytes(again, dy, (size_t)M * N);
    CHECK(again == first, "the cached algorithm gave other bits");
    // another transpose, another alignment, another workspace size: each its own key
    CUDA_OK(gemm_cuda(c, 0, 0, M, N, K, dx, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, 0));
    CUDA_OK(gemm_cuda(c, 0, 1, M - 1, N, K, dx + K, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, 0));
    CUDA_OK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, NULL, 0, 0));
    gemm_cache_stats(c, &hits, &misses);
    CHECK(hits == 1 && misses == 4, "three new keys: %ld hits %ld misses, want 1 and 4", hits, misses);
    // more keys than the cache holds: the oldest are replaced, and a replaced key is built again
    for (int i = 1; i <= GEMM_CACHE_SIZE + 6; i++)
        CUDA_OK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, workspace, (size_t)i << 10, 0));
    CUDA_OK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, workspace, (size_t)1 << 10, 0));
    gemm_cache_stats(c, &hits, &misses);
    CHECK(hits == 1 && misses == 4 + GEMM_CACHE_SIZE + 7, "past the cache's size: %ld hits %ld misses, want 1 and %d",
          hits, misses, 4 + GEMM_CACHE_SIZE + 7);
    CUDA_OK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, workspace, (size_t)(GEMM_CACHE_SIZE + 6) << 10, 0));
    gemm_cache_stats(c, &hits, &misses);
    CHECK(hits == 2, "the newest key was not kept: %ld hits", hits);
    // (another workspace size may choose another algorithm: the values, not the bits, must agree)
    Vec y1 = get(dy, (size_t)M * N);
    CUDA_OK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, 0));
    Vec y0 = get(dy, (size_t)M * N);
    for (size_t i = 0; i < y0.size(); i++)
        if (fabs(y1[i] - y0[i]) > 2 * ulp_bf16(y0[i])) {
            CHECK(false, "after the cache turned over, y[%zu] = %g, was %g", i, y1[i], y0[i]);
            break;
        }
    printf("  cache: %ld hit(s), %ld miss(es)\n", hits, misses);

    CHECK(gemm_cuda(c, 0, 1, 0, N, K, dx, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, 0) == cudaErrorInvalidValue,
          "M = 0 accepted");
    CHECK(*gemm_error(c), "M = 0 refused without a message");
    CHECK(gemm_cuda(c, 2, 1, M, N, K, dx, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, 0) == cudaErrorInvalidValue,
          "ta = 2 accepted");
    CHECK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, NULL, 1024, 0) == cudaErrorInvalidValue,
          "a workspace size without a workspace accepted");
    CHECK(gemm_cuda(NULL, 0, 1, M, N, K, dx, dw, dy, 0, NULL, 0, 0) == cudaErrorInvalidValue, "no context accepted");
#if CUDA_EMU
    // (on a GPU a bad stream handle is undefined behaviour, not an error to test)
    CHECK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, (cudaStream_t)&c) ==
              cudaErrorInvalidResourceHandle,
          "a bad stream accepted");
    cudaGetLastError();
#endif
    CUDA_OK(gemm_cuda(c, 0, 1, M, N, K, dx, dw, dy, 0, workspace, GEMM_WORKSPACE_BYTES, 0));
    CHECK(!*gemm_error(c), "a good call after a refused one left the message: %s", gemm_error(c));
    gemm_destroy(c);
    CUDA_OK(cudaFree(dx));
    CUDA_OK(cudaFree(dw));
    CUDA_OK(cudaFree(dy));
}

int main() {
    check_device();
    CUDA_OK(gemm_create(&ctx));
    workspace = dev_alloc<unsigned char>(GEMM_WORKSPACE_BYTES);
    const int T = 48, C = 64, V = 65536, TH = 16;
    for (int out : {64, 256}) {
        char what[64];
        snprintf(what, sizeof what, "y = x W^T (out %d)", out);
        product<bf16>(what, 0, 1, T, out, C, 10 + out, 0, 1);
        snprintf(what, sizeof what, "dx = dy W (out %d)", out);
        product<bf16>(what, 0, 0, T, C, out, 20 + out, 0, 1);
        snprintf(what, sizeof what, "dW += dy^T x, twice (out %d)", out);
        product<float>(what, 1, 0, out, C, T, 30 + out, 1, 2);
    }
    // a LoRA's thin products (C -> 16 -> C): the down, its input gradient, the up's weight gradient
    product<bf16>("LoRA down x A^T (64 -> 16)", 0, 1, T, 16, C, 43, 0, 1);
    product<bf16>("LoRA dx = dh A (16 -> 64)", 0, 0, T, C, 16, 44, 0, 1);
    product<float>("LoRA dB += dy^T h (16 -> 64)", 1, 0, C, 16, T, 45, 1, 1);
    product<float>("y = x W^T, fp32 out", 0, 1, T, 64, C, 40, 0, 1);
    product<bf16>("y += x W^T, bf16 out, beta 1", 0, 1, T, 64, C, 41, 1, 1);
    product<bf16>("y = x W^T, A 2-byte aligned", 0, 1, T - 1, 64, C, 42, 0, 1, 1);
    product<bf16>("head logits = x E^T", 0, 1, TH, V, C, 50, 0, 1);
    product<bf16>("head dx = dlogits E", 0, 0, TH, C, V, 51, 0, 1);
    product<float>("head dE += dlogits^T x, twice", 1, 0, V, C, TH, 52, 1, 2);
    cache_and_errors();

    // The bits of the head's forward product and weight gradient repeat.
    Vec x = rand_bf16((size_t)TH * C, 60, -1, 1), E = rand_bf16((size_t)V * C, 61, -1, 1);
    bf16 *dx = dev_bf16(x), *dE = dev_bf16(E), *logits = dev_alloc<bf16>((size_t)TH * V);
    float *dEgrad = dev_alloc<float>((size_t)V * C);
    check_bits_repeat("head forward and gradient", [&]() {
        CUDA_OK(cudaMemset(dEgrad, 0, (size_t)V * C * sizeof(float)));
        CUDA_OK(gemm_cuda(ctx, 0, 1, TH, V, C, dx, dE, logits, 0, workspace, GEMM_WORKSPACE_BYTES, 0));
        CUDA_OK(gemm_cuda(ctx, 1, 0, V, C, TH, logits, dx, dEgrad, 1, workspace, GEMM_WORKSPACE_BYTES, 0));
        std::vector<unsigned char> b;
        get_bytes(b, logits, (size_t)TH * V);
        get_bytes(b, dEgrad, (size_t)V * C);
        return b;
    });
    CUDA_OK(cudaFree(dx));
    CUDA_OK(cudaFree(dE));
    CUDA_OK(cudaFree(logits));
    CUDA_OK(cudaFree(dEgrad));
    CUDA_OK(cudaFree(workspace));
    gemm_destroy(ctx);
    return check_finish("t_gemm");
}
