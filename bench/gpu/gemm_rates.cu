// bench/gpu/gemm_rates.cu: the rate of gemm_cuda (cuda/gemm.cuh, cuBLASLt on a GPU) at the matrix
// products of training L12-D768 (C = 768, V = 65536) at ctx 4096, micro_bsz 1 and 8 (T = 4096 and
// 32768 rows), in the model's three forms:
//     fwd  y  = x W^T     (bf16 out)     dx  dx = dy W   (bf16 out)     dW  dW += dy^T x  (fp32, beta 1)
// for the weights C->C (r, k, v, o), C->4C (FFN key), 4C->C (FFN value) and the head C->V, whose
// rows go in chunks of HEAD_CHUNK_BYTES of bf16 logits as the backend does (lib/gpuplan.h), so
// its T is the chunk's rows.  The LoRA products (C x 32..128) are left out: small.
//
// Each line: one call to warm up (cuBLASLt's heuristic, the cache), then --reps calls between two
// events; TFLOP/s = 2 M N K / mean time.  Then 16 entries of every result are checked against a
// double-precision product of the same bf16 inputs, so a rate is never that of a wrong result.
// The last lines estimate the GEMM time of one training step from these rates.
//
// Usage: gemm_rates [--tiny] [--reps N]
//   --tiny   C = 64, V = 512, T = 32 and 64: what the emulation (make cuda-emu) can run in
//            seconds; tests/t_gpu_bundle.sh runs it so CI exercises this program.
// Exit 0; 1 on a CUDA error or a wrong entry; 77 without a device (nvcc build); 2 on bad usage.
#include "emu.h"
#include "gemm.cuh"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define HEAD_CHUNK_BYTES ((size_t)256 << 20)
typedef __nv_bfloat16 bf16;

#define CUDA_TRY(call) \
    do { \
        cudaError_t e_ = (call); \
        if (e_ != cudaSuccess) { \
            fprintf(stderr, "gemm_rates: %s:%d: %s: %s%s%s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_), \
                    ctx && *gemm_error(ctx) ? ": " : "", ctx ? gemm_error(ctx) : ""); \
            exit(1); \
        } \
    } while (0)

static GemmContext *ctx;

struct Weight {
    const char *name;
    int in, out;
    int head;   // the head: rows in chunks
};

// Inputs on the host (for the check) and the device.
struct Operand {
    std::vector<bf16> host;
    bf16 *dev;
};

static void make_operand(Operand *o, size_t n, unsigned seed) {
    o->host.resize(n);
    unsigned s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        o->host[i] = __float2bfloat16_rn((float)(s >> 8) / 8388608.0f - 1.0f);
    }
    CUDA_TRY(cudaMalloc(&o->dev, n * sizeof(bf16)));
    CUDA_TRY(cudaMemcpy(o->dev, o->host.data(), n * sizeof(bf16), cudaMemcpyHostToDevice));
}

// Element (m, k) of op(X) for a dense row-major X: t ? X[K,M] : X[M,K].
static inline double op_at(const std::vector<bf16> &x, int t, int M, int K, int m, int k) {
    return __bfloat162float(t ? x[(size_t)k * M + m] : x[(size_t)m * K + k]);
}

// 16 entries of D = calls * op(A) op(B) against double precision: fp32 summation's bound plus,
// for a bf16 output, a bf16 rounding (2^-8 relative).
static int check(const char *what, int ta, int tb, int M, int N, int K, const std::vector<bf16> &A,
                 const std::vector<bf16> &B, const void *D, bool f32_out, int calls) {
    unsigned s = 12345;
    int bad = 0;
    for (int i = 0; i < 16; i++) {
        s = s * 1664525u + 1013904223u;
        int m = (int)((s >> 8) % (unsigned)M);
        s = s * 1664525u + 1013904223u;
        int n = (int)((s >> 8) % (unsigned)N);
        double ref = 0, sabs = 0;
        for (int k = 0; k < K; k++) {
            double p = op_at(A, ta, M, K, m, k) * op_at(B, !tb, N, K, n, k);
            ref += p;
            sabs += fabs(p);
        }
        ref *= calls;
        double tol = (K + 2) * 0x1p-24 * sabs * calls, got;
        if (f32_out) {
            float v;
            CUDA_TRY(cudaMemcpy(&v, (const float *)D + (size_t)m * N + n, sizeof v, cudaMemcpyDeviceToHost));
            got = v;
        } else {
            bf16 v;
            CUDA_TRY(cudaMemcpy(&v, (const bf16 *)D + (size_t)m * N + n, sizeof v, cudaMemcpyDeviceToHost));
            got = __bfloat162float(v);
            tol += fabs(ref) * 0x1p-8;
        }
        if (!(fabs(got - ref) <= tol + 1e-30)) {
            if (!bad) fprintf(stderr, "gemm_rates: %s: D[%d,%d] = %.9g, want %.9g (tolerance %.3g)\n", what, m, n, got, ref, tol);
            bad++;
        }
    }
    return bad;
}

int main(int argc, char **argv) {
    bool tiny = false;
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tiny")) tiny = true;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc && atoi(argv[i + 1]) > 0) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gemm_rates [--tiny] [--reps N]\n");
            return 2;
        }
    }
#if !CUDA_EMU
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("no CUDA device\n");
        return 77;
    }
#endif
    const int C = tiny ? 64 : 768, V = tiny ? 512 : 65536, L = 12;
    const int Ts[2] = {tiny ? 32 : 4096, tiny ? 64 : 32768};
    if (tiny && reps > 2) reps = 2;
    int head_rows = (int)(HEAD_CHUNK_BYTES / ((size_t)V * sizeof(bf16)) / 16 * 16);
    const Weight weights[] = {{"C->C", C, C, 0}, {"C->4C", C, 4 * C, 0}, {"4C->C", 4 * C, C, 0}, {"C->V", C, V, 1}};
    cudaDeviceProp prop;
    CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
    printf("# gemm_rates: %s, C %d, V %d, head chunk %d rows, %d timed calls each\n", prop.name, C, V, head_rows, reps);

    // Buffers for the largest shape of each role.
    size_t rows_max = (size_t)Ts[1], act = rows_max * 4 * C;
    if ((size_t)head_rows * V > act) act = (size_t)head_rows * V;
    Operand x, dy, W;
    make_operand(&x, rows_max * 4 * C, 1);
    make_operand(&dy, act, 2);
    make_operand(&W, (size_t)V * C > (size_t)16 * C * C ? (size_t)V * C : (size_t)16 * C * C, 3);
    bf16 *out;
    float *dW;
    void *ws;
    CUDA_TRY(cudaMalloc(&out, act * sizeof(bf16)));
    CUDA_TRY(cudaMalloc(&dW, (size_t)V * C * sizeof(float)));
    CUDA_TRY(cudaMalloc(&ws, GEMM_WORKSPACE_BYTES));
    CUDA_TRY(gemm_create(&ctx));
    cudaEvent_t e0, e1;
    CUDA_TRY(cudaEventCreate(&e0));
    CUDA_TRY(cudaEventCreate(&e1));

    printf("# %-6s %-6s %-4s %6s %6s %6s %10s %9s\n", "T", "weight", "form", "M", "N", "K", "ms", "TFLOP/s");
    int bad = 0;
    for (int ti = 0; ti < 2; ti++) {
        double step_ms = 0;   // the GEMMs of one step, estimated from the lines below
        for (const Weight &w : weights) {
            int T = w.head && head_rows < Ts[ti] ? head_rows : Ts[ti];
            double ms3[3];
            for (int form = 0; form < 3; form++) {
                static const char *const names[] = {"fwd", "dx", "dW"};
                int ta = form == 2, tb = form == 0;
                int M = form == 2 ? w.out : T, N = form == 2 ? w.in : form == 0 ? w.out : w.in;
                int K = form == 0 ? w.in : form == 1 ? w.out : T;
                const bf16 *A = form == 0 ? x.dev : dy.dev, *B = form == 2 ? x.dev : W.dev;
                const std::vector<bf16> &Ah = form == 0 ? x.host : dy.host, &Bh = form == 2 ? x.host : W.host;
                if (form == 2) CUDA_TRY(cudaMemset(dW, 0, (size_t)M * N * sizeof(float)));
                for (int r = 0; r <= reps; r++) {   // r == 0 warms up, untimed
                    if (r == 1) CUDA_TRY(cudaEventRecord(e0, 0));
                    if (form == 2) CUDA_TRY(gemm_cuda(ctx, ta, tb, M, N, K, A, B, dW, 1.0f, ws, GEMM_WORKSPACE_BYTES, 0));
                    else CUDA_TRY(gemm_cuda(ctx, ta, tb, M, N, K, A, B, out, 0.0f, ws, GEMM_WORKSPACE_BYTES, 0));
                }
                CUDA_TRY(cudaEventRecord(e1, 0));
                CUDA_TRY(cudaEventSynchronize(e1));
                float ms;
                CUDA_TRY(cudaEventElapsedTime(&ms, e0, e1));
                ms /= reps;
                char what[64];
                snprintf(what, sizeof what, "T %d %s %s", Ts[ti], w.name, names[form]);
                int b = check(what, ta, tb, M, N, K, Ah, Bh, form == 2 ? (const void *)dW : (const void *)out, form == 2,
                              form == 2 ? reps + 1 : 1);
                bad += b;
                ms3[form] = ms;
                printf("  %-6d %-6s %-4s %6d %6d %6d %10.4f %9.2f%s\n", Ts[ti], w.name, names[form], M, N, K, ms,
                       ms > 0 ? 2.0 * M * N * K / (ms * 1e-3) / 1e12 : 0.0, b ? "  WRONG" : "");
            }
            // Per step: 4 C->C and one of each FFN product per layer, the head over all chunks; the
            // forward twice (grad_cp recomputes it in the backward).
            double per = 2 * ms3[0] + ms3[1] + ms3[2];
            if (w.head) step_ms += per * ((Ts[ti] + T - 1) / T);
            else step_ms += per * L * (w.out == w.in ? 4 : 1);
        }
        printf("# T %d: the step's large GEMMs (L %d, grad_cp forward twice) take about %.2f ms: at most %.0f tokens/s "
               "from them alone\n", Ts[ti], L, step_ms, step_ms > 0 ? Ts[ti] / (step_ms * 1e-3) : 0.0);
    }
    long hits, misses;
    gemm_cache_stats(ctx, &hits, &misses);
    printf("# descriptor cache: %ld hits, %ld keys\n", hits, misses);
    gemm_destroy(ctx);
    ctx = nullptr;
    for (void *p : {(void *)x.dev, (void *)dy.dev, (void *)W.dev, (void *)out, (void *)dW, ws}) CUDA_TRY(cudaFree(p));
    if (bad) {
        printf("gemm_rates: %d wrong entries\n", bad);
        return 1;
    }
    printf("gemm_rates: all results checked\n");
    return 0;
}
