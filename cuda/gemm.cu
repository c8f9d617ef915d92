// cuda/gemm.cu: the matrix products (gemm.cuh): cuBLASLt on the GPU, OpenBLAS under the emulation.
#include "gemm.cuh"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if CUDA_EMU
#include <cblas.h>
#include <vector>
#else
#include <cublasLt.h>
#endif

typedef __nv_bfloat16 bf16;

namespace {

// What decides the algorithm: the heuristic's answer depends on all of it, and an algorithm
// chosen for 256-byte aligned pointers or a larger workspace may not run with less.
struct GemmKey {
    int ta, tb, M, N, K, d_f32;
    int in_f32, tf32;   // fp32 A and B (then D is fp32 too); with tf32, CUBLAS_COMPUTE_32F_FAST_TF32
    unsigned align_a, align_b, align_d;
    size_t workspace_bytes;
};

bool same_key(const GemmKey &x, const GemmKey &y) {
    return x.ta == y.ta && x.tb == y.tb && x.M == y.M && x.N == y.N && x.K == y.K && x.d_f32 == y.d_f32 &&
           x.in_f32 == y.in_f32 && x.tf32 == y.tf32 &&
           x.align_a == y.align_a && x.align_b == y.align_b && x.align_d == y.align_d &&
           x.workspace_bytes == y.workspace_bytes;
}

// The largest power of two dividing the address, up to the 256 bytes cuBLASLt assumes by default.
unsigned alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    if (a == 0) return 256;
    uintptr_t low = a & (~a + 1);
    return low >= 256 ? 256 : (unsigned)low;
}

struct GemmEntry {
    GemmKey key;
#if !CUDA_EMU
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
#endif
};

}  // namespace

struct GemmContext {
#if !CUDA_EMU
    cublasLtHandle_t handle;
#endif
    GemmEntry entries[GEMM_CACHE_SIZE];
    int used, next_victim;
    long hits, misses;
    char error[200];
};

namespace {

#if !CUDA_EMU
cudaError_t to_cuda_error(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return cudaSuccess;
    case CUBLAS_STATUS_INVALID_VALUE: return cudaErrorInvalidValue;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH: return cudaErrorNotSupported;
    case CUBLAS_STATUS_ALLOC_FAILED: return cudaErrorMemoryAllocation;
    case CUBLAS_STATUS_EXECUTION_FAILED: return cudaErrorLaunchFailure;
    default: return cudaErrorUnknown;
    }
}

// Records which call failed with which status (gemm_error) and returns its cudaError_t.
cudaError_t failed(GemmContext *ctx, const char *call, cublasStatus_t s, const GemmKey &k) {
    snprintf(ctx->error, sizeof ctx->error, "%s: %s (M=%d N=%d K=%d ta=%d tb=%d %s inputs, %s output)", call,
             cublasLtGetStatusString(s), k.M, k.N, k.K, k.ta, k.tb, k.in_f32 ? (k.tf32 ? "tf32" : "fp32") : "bf16",
             k.d_f32 ? "fp32" : "bf16");
    return to_cuda_error(s);
}

void release(GemmEntry &e) {
    if (e.op) cublasLtMatmulDescDestroy(e.op);
    if (e.a) cublasLtMatrixLayoutDestroy(e.a);
    if (e.b) cublasLtMatrixLayoutDestroy(e.b);
    if (e.d) cublasLtMatrixLayoutDestroy(e.d);
    e.op = NULL;
    e.a = e.b = e.d = NULL;
}

#define LT(call) \
    do { \
        cublasStatus_t s_ = (call); \
        if (s_ != CUBLAS_STATUS_SUCCESS) return failed(ctx, #call, s_, e.key); \
    } while (0)

// Builds the descriptors of e.key and asks the heuristic once for its algorithm.
// cuBLASLt is column-major: a row-major D[M,N] is a column-major D^T[N,M] with the same leading
// dimension, so it computes D^T = op(B)^T op(A)^T, B's memory as its first operand.
cudaError_t build(GemmContext *ctx, GemmEntry &e) {
    const GemmKey &k = e.key;
    cublasOperation_t opa = k.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = k.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType_t dtype = k.d_f32 ? CUDA_R_32F : CUDA_R_16BF, itype = k.in_f32 ? CUDA_R_32F : CUDA_R_16BF;
    LT(cublasLtMatmulDescCreate(&e.op, k.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(e.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT(cublasLtMatmulDescSetAttribute(e.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    // first operand: B as stored, column-major [N,K] (tb = 0, ld N) or [K,N] (tb = 1, ld K)
    LT(cublasLtMatrixLayoutCreate(&e.a, itype, k.tb ? k.K : k.N, k.tb ? k.N : k.K, k.tb ? k.K : k.N));
    // second: A as stored, column-major [K,M] (ta = 0, ld K) or [M,K] (ta = 1, ld M)
    LT(cublasLtMatrixLayoutCreate(&e.b, itype, k.ta ? k.M : k.K, k.ta ? k.K : k.M, k.ta ? k.M : k.K));
    LT(cublasLtMatrixLayoutCreate(&e.d, dtype, k.N, k.M, k.N));

    cublasLtMatmulPreference_t pref = NULL;
    cublasStatus_t s = cublasLtMatmulPreferenceCreate(&pref);
    if (s != CUBLAS_STATUS_SUCCESS) return failed(ctx, "cublasLtMatmulPreferenceCreate", s, k);
    // Split-K reductions allowed at all: into fp32 through the workspace in a separate step,
    // only for an fp32 output (where output type = compute type); never in place.
    uint32_t schemes = k.d_f32 ? CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE
                               : CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    uint64_t ws = k.workspace_bytes;
    uint32_t al_a = k.align_b, al_b = k.align_a, al_d = k.align_d;   // cuBLASLt's A is our B
    const int WANT = 16;
    cublasLtMatmulHeuristicResult_t results[WANT];
    int found = 0;
    s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                 sizeof schemes);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d);
    if (s != CUBLAS_STATUS_SUCCESS) {
        cublasLtMatmulPreferenceDestroy(pref);
        return failed(ctx, "cublasLtMatmulPreferenceSetAttribute", s, k);
    }
    s = cublasLtMatmulAlgoGetHeuristic(ctx->handle, e.op, e.a, e.b, e.d, e.d, pref, WANT, results, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS) return failed(ctx, "cublasLtMatmulAlgoGetHeuristic", s, k);
    // The heuristic's best that keeps the rules (the mask is a filter; checked again here, and
    // for a bf16 output no split-K whatever its reduction).
    for (int i = 0; i < found; i++) {
        if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
        int32_t splitk = 1;
        uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
        size_t got;
        if (cublasLtMatmulAlgoConfigGetAttribute(&results[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk,
                                                 sizeof splitk, &got) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulAlgoConfigGetAttribute(&results[i].algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                                 sizeof scheme, &got) != CUBLAS_STATUS_SUCCESS)
            continue;
        if (splitk <= 1 || scheme == CUBLASLT_REDUCTION_SCHEME_NONE || (k.d_f32 && (scheme & ~schemes) == 0)) {
            e.algo = results[i].algo;
            return cudaSuccess;
        }
    }
    // Every answer splits K (a long K with a small output: the head's dx): the best of them with
    // its split-K turned off, if cuBLASLt says that configuration runs within the workspace.
    for (int i = 0; i < found; i++) {
        if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
        cublasLtMatmulAlgo_t algo = results[i].algo;
        int32_t one = 1;
        uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
        cublasLtMatmulHeuristicResult_t check;
        if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof one) ==
                CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none, sizeof none) ==
                CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulAlgoCheck(ctx->handle, e.op, e.a, e.b, e.d, e.d, &algo, &check) == CUBLAS_STATUS_SUCCESS &&
            check.workspaceSize <= k.workspace_bytes) {
            e.algo = algo;
            return cudaSuccess;
        }
    }
    return failed(ctx, "cublasLtMatmulAlgoGetHeuristic (no algorithm without a forbidden split-K)",
                  CUBLAS_STATUS_NOT_SUPPORTED, k);
}
#undef LT

#else   // CUDA_EMU

cudaError_t build(GemmContext *, GemmEntry &) { return cudaSuccess; }
void release(GemmEntry &) {}

#endif

// The entry of key, built on the first call with it.
cudaError_t lookup(GemmContext *ctx, const GemmKey &key, GemmEntry **out) {
    for (int i = 0; i < ctx->used; i++)
        if (same_key(ctx->entries[i].key, key)) {
            ctx->hits++;
            *out = &ctx->entries[i];
            return cudaSuccess;
        }
    int slot = ctx->used;
    if (slot == GEMM_CACHE_SIZE) {   // full: replace the oldest
        slot = ctx->next_victim;
        ctx->next_victim = (slot + 1) % GEMM_CACHE_SIZE;
        release(ctx->entries[slot]);
    }
    GemmEntry &e = ctx->entries[slot];
    memset(&e, 0, sizeof e);
    e.key = key;
    cudaError_t err = build(ctx, e);
    if (err != cudaSuccess) {
        // not kept (M = 0 matches no key): the next call with this key tries again
        release(e);
        memset(&e, 0, sizeof e);
        return err;
    }
    if (slot == ctx->used) ctx->used++;
    ctx->misses++;
    *out = &e;
    return cudaSuccess;
}

#if CUDA_EMU
// x rounded to TF32 (8 exponent bits, 10 explicit mantissa bits), to nearest, ties to even; NaN
// and infinities unchanged.  The emulation's model of what the tensor cores read under
// CUBLAS_COMPUTE_32F_FAST_TF32.  The cuBLAS documentation says only that this compute type
// "allows the library to use Tensor Cores with TF32 compute" for 32-bit inputs and outputs; it
// does not say how inputs are reduced to TF32.  The instruction it would use, PTX's
// cvt.rna.tf32.f32, rounds to nearest with ties away from zero, and a kernel may also feed fp32
// bits whose low 13 the tensor core ignores (truncation; PyTorch's note: "only the first 10 bits
// of the input mantissa are read").  Either differs from this rounding by at most one TF32 ulp
// on an input, within the tolerances the tests give tf32.
float round_tf32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    u += 0x0fffu + ((u >> 13) & 1u);
    u &= 0xffffe000u;
    memcpy(&x, &u, sizeof x);
    return x;
}
float widen(bf16 x, int) { return __bfloat162float(x); }
float widen(float x, int tf32) { return tf32 ? round_tf32(x) : x; }
#endif

template <class TI>
cudaError_t gemm(GemmContext *ctx, int ta, int tb, int M, int N, int K, const TI *A, const TI *B, void *D,
                 int d_f32, int tf32, float beta, void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    const int in_f32 = sizeof(TI) == sizeof(float);
    if (!ctx) return cudaErrorInvalidValue;
    ctx->error[0] = 0;
    if (M <= 0 || N <= 0 || K <= 0 || !A || !B || !D || (ta != 0 && ta != 1) || (tb != 0 && tb != 1) ||
        (workspace_bytes && !workspace)) {
        snprintf(ctx->error, sizeof ctx->error, "gemm_cuda: bad arguments (M=%d N=%d K=%d ta=%d tb=%d)", M, N, K,
                 ta, tb);
        return cudaErrorInvalidValue;
    }
    GemmKey key = {ta, tb, M, N, K, d_f32, in_f32, tf32, alignment(A), alignment(B), alignment(D), workspace_bytes};
    GemmEntry *e;
    cudaError_t err = lookup(ctx, key, &e);
    if (err != cudaSuccess) return err;
#if !CUDA_EMU
    const float alpha = 1.0f;
    cublasStatus_t s = cublasLtMatmul(ctx->handle, e->op, &alpha, B, e->a, A, e->b, &beta, D, e->d, D, e->d,
                                      &e->algo, workspace, workspace_bytes, stream);
    if (s != CUBLAS_STATUS_SUCCESS) return failed(ctx, "cublasLtMatmul", s, key);
    return cudaGetLastError();
#else
    (void)e;
    (void)in_f32;
    // a stream that is no stream, or a device that has faulted, fails here as on a GPU
    if ((err = cudaStreamQuery(stream)) != cudaSuccess) return err;
    // The same bf16 values widened to fp32 (exact), or the fp32 values (rounded to TF32 with tf32),
    // one fp32 sgemm, rounded to nearest-even where D is bf16: what the GPU computes, up to the
    // order of the fp32 sums.
    std::vector<float> a((size_t)M * K), b((size_t)K * N);
    for (size_t i = 0; i < a.size(); i++) a[i] = widen(A[i], tf32);
    for (size_t i = 0; i < b.size(); i++) b[i] = widen(B[i], tf32);
    size_t nd = (size_t)M * N;
    std::vector<float> d_wide;
    float *d = d_f32 ? (float *)D : (d_wide.resize(nd), d_wide.data());
    if (beta == 0) memset(d, 0, nd * sizeof(float));   // D is not read: NaN there stays out
    else if (!d_f32)
        for (size_t i = 0; i < nd; i++) d[i] = __bfloat162float(((bf16 *)D)[i]);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                a.data(), ta ? M : K, b.data(), tb ? K : N, beta, d, N);
    if (!d_f32)
        for (size_t i = 0; i < nd; i++) ((bf16 *)D)[i] = __float2bfloat16_rn(d[i]);
    return cudaSuccess;
#endif
}

}  // namespace

cudaError_t gemm_create(GemmContext **out) {
    if (!out) return cudaErrorInvalidValue;
    *out = NULL;
    GemmContext *ctx = (GemmContext *)calloc(1, sizeof *ctx);
    if (!ctx) return cudaErrorMemoryAllocation;
#if !CUDA_EMU
    cublasStatus_t s = cublasLtCreate(&ctx->handle);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(ctx);
        return to_cuda_error(s);
    }
#endif
    *out = ctx;
    return cudaSuccess;
}

void gemm_destroy(GemmContext *ctx) {
    if (!ctx) return;
    for (int i = 0; i < ctx->used; i++) release(ctx->entries[i]);
#if !CUDA_EMU
    cublasLtDestroy(ctx->handle);
#endif
    free(ctx);
}

cudaError_t gemm_cuda(GemmContext *ctx, int ta, int tb, int M, int N, int K, const bf16 *A, const bf16 *B, bf16 *D,
                      float beta, void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    return gemm(ctx, ta, tb, M, N, K, A, B, D, 0, 0, beta, workspace, workspace_bytes, stream);
}

cudaError_t gemm_cuda(GemmContext *ctx, int ta, int tb, int M, int N, int K, const bf16 *A, const bf16 *B, float *D,
                      float beta, void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    return gemm(ctx, ta, tb, M, N, K, A, B, D, 1, 0, beta, workspace, workspace_bytes, stream);
}

cudaError_t gemm_cuda(GemmContext *ctx, int ta, int tb, int M, int N, int K, const float *A, const float *B, float *D,
                      float beta, int tf32, void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    return gemm(ctx, ta, tb, M, N, K, A, B, D, 1, tf32 ? 1 : 0, beta, workspace, workspace_bytes, stream);
}

const char *gemm_error(const GemmContext *ctx) { return ctx ? ctx->error : "no gemm context"; }

void gemm_cache_stats(const GemmContext *ctx, long *hits, long *misses) {
    *hits = ctx->hits;
    *misses = ctx->misses;
}
