/* cpugemm.h: the CPU models' matrix products, their thread set-up and the chunked output
 * head + loss, shared by lib/model.c (x070) and lib/model6.c (x060).  Row-major, BLAS (OpenBLAS) single-threaded inside our OpenMP
 * threads; results do not depend on the thread count. */
#ifndef RWKV7C_CPUGEMM_H
#define RWKV7C_CPUGEMM_H
#include <stddef.h>
#include <stdint.h>

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

/* The output head and its loss over BT rows: hf = ln_out(x), then, head_rows rows at a time
 * (so the logits never need BT*V floats), logits = hf head^T and cross-entropy + L2Wrap per
 * row into row_loss. */
typedef struct {
    const float *x, *ln_w, *ln_b, *head;                  /* last block output [BT,C], ln_out, head [V,C] */
    float *hf, *ln_mean, *ln_rstd, *logits;               /* work: hf [BT,C], logits [head_rows,V] */
    double *row_loss;                                     /* [BT] */
    size_t BT;
    int C, V, head_rows;
} CpuHead;
/* With the gradient: head.weight and ln_out gradients accumulated (+=), d(loss)/d(x) into dx;
 * dh [BT,C] and tmp are scratch. */
typedef struct { float *dx, *dh, *tmp, *g_head, *g_ln_w, *g_ln_b; } CpuHeadGrad;
/* Returns the mean loss; g NULL: the loss only. */
float cpu_head_loss(const CpuHead *h, const int32_t *y, const CpuHeadGrad *g);
#endif
