/* cpugemm.h: the CPU models' matrix products and their thread set-up, shared by lib/model.c
 * (x070) and lib/model6.c (x060).  Row-major, BLAS (OpenBLAS) single-threaded inside our OpenMP
 * threads; results do not depend on the thread count. */
#ifndef RWKV7C_CPUGEMM_H
#define RWKV7C_CPUGEMM_H
#include <stddef.h>

/* The threads a work area should use: the cores other processes leave free (see cpugemm.c),
 * or OpenMP's own choice when OMP_NUM_THREADS, OMP_DYNAMIC or OMP_WAIT_POLICY is set. */
int cpu_pick_threads(void);

/* Around every public entry point of a model: BLAS single-threaded, OpenMP at nthreads;
 * cpu_threads_leave restores the caller's settings. */
typedef struct { int blas, omp; } CpuThreads;
CpuThreads cpu_threads_enter(int nthreads);
void       cpu_threads_leave(CpuThreads s);

/* C[M,N] (row stride ldc) = op(A) op(B) + beta C; op(A) is [M,K] (A[K,M]^T when ta), op(B)
 * is [K,N] (B[N,K]^T when tb); lda, ldb the row strides of A and B as stored.  One row (M = 1,
 * the recurrent mode) goes through a matrix-vector product. */
void cpu_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
              int ldc, float beta);
/* The dense forms: a Linear (C = A B^T, B [N,K]), C = A B (B [K,N]), and weight gradients
 * (C = A^T B, A [K,M]). */
void cpu_gemm_nt(int M, int N, int K, const float *A, const float *B, float *C, float beta);
void cpu_gemm_nn(int M, int N, int K, const float *A, const float *B, float *C, float beta);
void cpu_gemm_tn(int M, int N, int K, const float *A, const float *B, float *C, float beta);

/* out[n][c] = vec[c] for every row (a bias broadcast before a beta = 1 GEMM). */
void cpu_fill_rows(float *out, const float *vec, size_t rows, int C);
#endif
