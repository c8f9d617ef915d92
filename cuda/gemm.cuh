// cuda/gemm.cuh: every matrix product of the model through one wrapper, tested in
// tests/cuda/t_gemm.cu.  On the GPU it is cuBLASLt (bf16 A and B, fp32 compute, bf16 or fp32 D;
// or fp32 A, B and D with fp32 or TF32 compute);
// under the emulation (CUDA_EMU) OpenBLAS's cblas_sgemm on fp32 copies of the same bf16 inputs,
// the output rounded to nearest-even where it is bf16, so the backend runs on the CPU.
//
// Row-major, as lib/model.c's gemm(ta, tb, M, N, K, A, B, C, beta), dense (lda = ta ? M : K,
// ldb = tb ? K : N, ldd = N):
//     D[M,N] = op(A) op(B) + beta D,  op(A) = ta ? A[K,M]^T : A[M,K],  op(B) = tb ? B[N,K]^T : B[K,N]
// The three forms of the model:
//     forward      y  = x W^T        gemm_cuda(ctx, 0, 1, T, out, in, x,  W, y,  0, ...)  (bf16 y)
//     input grad   dx = dy W         gemm_cuda(ctx, 0, 0, T, in, out, dy, W, dx, 0, ...)  (bf16 dx)
//     weight grad  dW += dy^T x      gemm_cuda(ctx, 1, 0, out, in, T, dy, x, dW, 1, ...)  (fp32 dW)
//
// Determinism: an algorithm is chosen once per key (shape, transposes, output type, pointer
// alignments, workspace size) by cublasLtMatmulAlgoGetHeuristic and kept in the context's cache,
// so every later call with that key runs the same algorithm; cuBLASLt then gives the same bits on
// the same GPU and library as long as no reduction depends on timing.  Split-K algorithms that
// reduce in place (in the output's type, ordered by counters) are never taken; for a bf16 output
// no split-K at all (no partial sums rounded to bf16, one fp32 accumulation rounded once); for an
// fp32 output split-K only with its partial sums reduced in fp32 by a separate, fixed-order step.
//
// Errors are returned as a cudaError_t: cudaErrorInvalidValue for an argument it does not take,
// cudaErrorNotSupported when cuBLASLt has no algorithm within those rules, cudaErrorMemoryAllocation,
// cudaErrorLaunchFailure, or cudaErrorUnknown for the rest; gemm_error(ctx) says which cuBLASLt
// call failed with which status, for the backend's message.  Nothing exits or prints.
#ifndef RWKV7C_CUDA_GEMM_CUH
#define RWKV7C_CUDA_GEMM_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>

// The workspace the backend should give every call: NVIDIA's recommendation for Hopper.
#define GEMM_WORKSPACE_BYTES ((size_t)32 << 20)
// Distinct keys kept; the model has about a dozen.  Past that the oldest entry is replaced.
#define GEMM_CACHE_SIZE 64

struct GemmContext;

// A context per device (it holds the cuBLASLt handle and the cache); one host thread at a time.
cudaError_t gemm_create(GemmContext **ctx);
void gemm_destroy(GemmContext *ctx);

// D = op(A) op(B) + beta D (see above).  beta 0: D is not read (it may hold anything, NaN too).
// workspace: device memory of workspace_bytes (NULL with 0 is allowed: fewer algorithms), 256-byte
// aligned, not used by another stream at the same time.  Asynchronous on stream, like a kernel.
cudaError_t gemm_cuda(GemmContext *ctx, int ta, int tb, int M, int N, int K, const __nv_bfloat16 *A,
                      const __nv_bfloat16 *B, __nv_bfloat16 *D, float beta, void *workspace,
                      size_t workspace_bytes, cudaStream_t stream);
cudaError_t gemm_cuda(GemmContext *ctx, int ta, int tb, int M, int N, int K, const __nv_bfloat16 *A,
                      const __nv_bfloat16 *B, float *D, float beta, void *workspace, size_t workspace_bytes,
                      cudaStream_t stream);
// fp32 A, B and D (--precision fp32/tf32): compute CUBLAS_COMPUTE_32F, or with tf32
// CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores on inputs reduced to TF32's 10-bit mantissa; the
// emulation rounds them to nearest-even); split-K only as for an fp32 output above.
cudaError_t gemm_cuda(GemmContext *ctx, int ta, int tb, int M, int N, int K, const float *A, const float *B, float *D,
                      float beta, int tf32, void *workspace, size_t workspace_bytes, cudaStream_t stream);

// The last failure, e.g. "cublasLtMatmul: CUBLAS_STATUS_EXECUTION_FAILED (M=48 N=64 K=64)"; "" if none.
const char *gemm_error(const GemmContext *ctx);
// Calls that found their key in the cache, and keys added (each one heuristic query).
void gemm_cache_stats(const GemmContext *ctx, long *hits, long *misses);
#endif
