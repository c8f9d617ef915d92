/* cpugemm.c: the CPU models' matrix products, threads and output head (cpugemm.h). */
#include "cpugemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matvec.h"
#include "ops.h"

/* Threads.  OpenBLAS's own threads and OpenMP's spin-waiting threads fight
 * over the cores (5-10x slower, measured on 2 shared cores), so BLAS runs
 * single-threaded inside our OpenMP threads: each multiplies a block of rows
 * (or columns) of the output.  On a machine already busy with other jobs,
 * spinning OpenMP threads that wait for descheduled ones lose as much again,
 * so unless OMP_NUM_THREADS, OMP_DYNAMIC or OMP_WAIT_POLICY is set, a work
 * area takes only the cores that other processes leave free when it is
 * created (the runnable count of /proc/loadavg, median of a few samples; not
 * the load average, which would count our own past work).  Results do not
 * depend on the thread count (checked bitwise).  cpu_threads_enter/leave
 * bracket every public entry point of a model and restore the caller's settings. */
int cpu_pick_threads(void)
{
    int n = omp_get_max_threads();
    if (getenv("OMP_NUM_THREADS") || getenv("OMP_DYNAMIC") || getenv("OMP_WAIT_POLICY")) return n;
    int others[5], k = 0;
    for (int i = 0; i < 5; i++) {
        FILE *f = fopen("/proc/loadavg", "r");
        double a, b, c;
        int running, total;
        if (!f) return n;
        if (fscanf(f, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) == 5) {
            int o = running - 1;                      /* not counting this thread */
            int j = k++;
            while (j > 0 && others[j - 1] > o) { others[j] = others[j - 1]; j--; }
            others[j] = o;
        }
        fclose(f);
        if (i < 4) {
            struct timespec ts = { 0, 2000000 };
            nanosleep(&ts, NULL);
        }
    }
    if (k == 0) return n;
    int free_cores = omp_get_num_procs() - others[k / 2];
    if (free_cores < n) n = free_cores < 1 ? 1 : free_cores;
    return n;
}

CpuThreads cpu_threads_enter(int nthreads)
{
    CpuThreads s = { openblas_get_num_threads(), omp_get_max_threads() };
    if (s.blas != 1) openblas_set_num_threads(1);
    if (s.omp != nthreads) omp_set_num_threads(nthreads);
    return s;
}

void cpu_threads_leave(CpuThreads s)
{
    if (s.blas != 1) openblas_set_num_threads(s.blas);
    if (omp_get_max_threads() != s.omp) omp_set_num_threads(s.omp);
}

void cpu_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *Bm, int ldb, float *Cm,
              int ldc, float beta)
{
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    int nt = omp_get_max_threads();
    if (M == 1 && !ta && tb && ldb == K) {
        /* one row (recurrent mode) by a Linear's weight: the memory-bound
         * product of matvec.c (faster here than OpenBLAS's sgemv, measured) */
        matvec_f32(Cm, Bm, A, (size_t)N, (size_t)K, beta);
        return;
    }
    if (M == 1 && !ta) {
        /* one row (recurrent mode): a matrix-vector product reads the weights
         * once, where sgemm would first copy (pack) them */
        if (nt > (N + 63) / 64) nt = (N + 63) / 64;
        if (nt < 1 || omp_in_parallel()) nt = 1;
#pragma omp parallel num_threads(nt)
        {
            int id = omp_get_thread_num(), n = omp_get_num_threads();
            int per = ((N + n - 1) / n + 15) / 16 * 16;
            int lo = id * per, hi = lo + per < N ? lo + per : N;
            if (lo < hi) {
                if (tb)   /* y[N] = B[N,K] a */
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, hi - lo, K, 1.0f, Bm + (size_t)lo * ldb, ldb, A, 1, beta, Cm + lo, 1);
                else      /* y[N] = B[K,N]^T a */
                    cblas_sgemv(CblasRowMajor, CblasTrans, K, hi - lo, 1.0f, Bm + lo, ldb, A, 1, beta, Cm + lo, 1);
            }
        }
        return;
    }
    if (nt < 2 || (double)M * N * K < 2e6 || omp_in_parallel()) {
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, 1.0f, A, lda, Bm, ldb, beta, Cm, ldc);
        return;
    }
    int split_m = M >= N;
    int dim = split_m ? M : N;
    if (nt > (dim + 15) / 16) nt = (dim + 15) / 16;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), n = omp_get_num_threads();
        int per = ((dim + n - 1) / n + 15) / 16 * 16;     /* 16-aligned blocks */
        int lo = id * per, hi = lo + per < dim ? lo + per : dim;
        if (lo < hi) {
            if (split_m)
                cblas_sgemm(CblasRowMajor, TA, TB, hi - lo, N, K, 1.0f, ta ? A + lo : A + (size_t)lo * lda, lda,
                            Bm, ldb, beta, Cm + (size_t)lo * ldc, ldc);
            else
                cblas_sgemm(CblasRowMajor, TA, TB, M, hi - lo, K, 1.0f, A, lda,
                            tb ? Bm + (size_t)lo * ldb : Bm + lo, ldb, beta, Cm + lo, ldc);
        }
    }
}
void cpu_gemm_nt(int M, int N, int K, const float *A, const float *B, float *C, float beta)
{
    cpu_gemm(0, 1, M, N, K, A, K, B, K, C, N, beta);
}

void cpu_gemm_nn(int M, int N, int K, const float *A, const float *B, float *C, float beta)
{
    cpu_gemm(0, 0, M, N, K, A, K, B, N, C, N, beta);
}

void cpu_gemm_tn(int M, int N, int K, const float *A, const float *B, float *C, float beta)
{
    cpu_gemm(1, 0, M, N, K, A, M, B, N, C, N, beta);
}

void cpu_fill_rows(float *out, const float *vec, size_t rows, int C)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) memcpy(out + n * C, vec, (size_t)C * sizeof *out);
}

float cpu_head_loss(const CpuHead *h, const int32_t *y, const CpuHeadGrad *g)
{
    size_t BT = h->BT;
    int C = h->C, V = h->V;
    layernorm_fwd(h->hf, h->ln_mean, h->ln_rstd, h->x, h->ln_w, h->ln_b, BT, C, 1e-5f);
    for (size_t r0 = 0; r0 < BT; r0 += h->head_rows) {
        int rows = BT - r0 < (size_t)h->head_rows ? (int)(BT - r0) : h->head_rows;
        cpu_gemm_nt(rows, V, C, h->hf + r0 * C, h->head, h->logits, 0);
        if (g) {
            xent_l2wrap_fwdbwd(h->logits, h->row_loss + r0, y + r0, rows, BT, V);   /* logits -> d logits */
            cpu_gemm_tn(V, C, rows, h->logits, h->hf + r0 * C, g->g_head, 1);
            cpu_gemm_nn(rows, C, V, h->logits, h->head, g->dh + r0 * C, 0);
        } else {
            xent_l2wrap_fwd(h->row_loss + r0, h->logits, y + r0, rows, V);
        }
    }
    if (g)
        layernorm_bwd(g->dx, g->g_ln_w, g->g_ln_b, g->tmp, g->dh, h->x, h->ln_w, h->ln_mean, h->ln_rstd, BT, C, 0);
    double loss = 0;
    for (size_t n = 0; n < BT; n++) loss += h->row_loss[n];
    return (float)(loss / (double)BT);
}
