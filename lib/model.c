/* model.c: the x070 compute on the CPU in fp32 (rwkv7-reference §3, §4.2):
 * the parallel (sequence) forward, its backward, and the recurrent mode.
 *
 * Rows are tokens, n = b*T + t; every activation is a row-major [B*T, width]
 * matrix.  Matrix products go to BLAS (cblas_sgemm); elementwise work and the
 * WKV recurrence are parallel over rows / (batch, head) with OpenMP.
 * Reductions over rows (the gradients of per-channel vectors) run sequentially
 * per column, so results do not depend on the thread count.
 *
 * The recurrent mode reuses the parallel code with T = 1 (or a prefill chunk),
 * carrying the token-shift inputs and the WKV state between calls, so both
 * modes share one implementation of every formula. */
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HS 64                       /* head size (layout.c enforces 64) */
#define WKV_CHUNK 16                /* state kept every 16 steps for the backward */
#define W_SCALE (-0.60653065971263342f)   /* -exp(-0.5) */
#define PREFILL_CHUNK 128           /* tokens per parallel-mode pass in model_prefill */
#define HEAD_CHUNK_FLOATS (32u << 20) /* logits held at once in training (128 MiB): rows per head pass */
#define NONE ((size_t)-1)

enum { MIX_R, MIX_W, MIX_K, MIX_V, MIX_A, MIX_G, NMIX };
enum { MODE_TRAIN, MODE_TRAIN_CP, MODE_INFER };

/* Parameter offsets into Model.w (and into a gradient with the same layout),
 * looked up once per work/state so the hot paths never search by name. */
typedef struct {
    size_t ln1_w, ln1_b, ln2_w, ln2_b, ln0_w, ln0_b;
    size_t mix[NMIX];
    size_t w1, w2, w0, a1, a2, a0, v1, v2, v0, g1, g2, k_k, k_a, r_k;
    size_t Wr, Wk, Wv, Wo, lnx_w, lnx_b, fx_k, Fk, Fv;
} LayerOff;

typedef struct {
    size_t emb, lnout_w, lnout_b, head;
    LayerOff *l;
} Offsets;

/* Activations of one block, kept for its backward. */
typedef struct {
    float *ln1_mean, *ln1_rstd, *h1;
    float *mix[NMIX];
    float *r, *k, *v, *tw, *w, *vh, *vgate, *ah, *a, *gh, *g;
    float *kk, *inv, *kp, *vm;
    float *ckpt;                    /* WKV state at the start of each chunk [B*H][nchunk][64*64] */
    float *y, *gn_mean, *gn_rstd, *bonus, *out;
    float *xmid, *ln2_mean, *ln2_rstd, *h2, *cmix, *act;   /* act = relu(cmix Kw^T)^2 */
} LayerAct;

struct ModelWork {
    ModelConfig cfg;
    int B, T, mode, nthreads;
    Offsets off;
    int nact;
    LayerAct *act;
    float *x_emb, *ln0_mean, *ln0_rstd;
    float **xin;                    /* n_layer+1 block inputs; xin[L] is the last block's output */
    float *vfirst;
    float *lnf_mean, *lnf_rstd, *hf, *logits;   /* logits: head_rows x V, one chunk of rows */
    int head_rows;
    double *row_loss;
    /* backward scratch */
    float *dx, *dh, *dmix[NMIX], *dr, *dk, *dv, *dw, *da, *dg, *dkk, *dkp, *dvm, *dy, *dout;
    float *tmp, *tmp2, *dlora, *dact, *dvfirst, *wkv_scratch;
    float *arena;
};

struct ModelState {
    ModelConfig cfg;
    float *att_shift, *ffn_shift, *wkv;   /* [L][C], [L][C], [L][H][64*64] (S[i][j]: i value, j key) */
    ModelWork *w;
};

/* ------------------------------------------------------------------ helpers */

static inline float sigmoidf_(float z) { return 1.0f / (1.0f + expf(-z)); }

/* Threads.  OpenBLAS's own threads and OpenMP's spin-waiting threads fight
 * over the cores (5-10x slower, measured on 2 shared cores), so BLAS runs
 * single-threaded inside our OpenMP threads: each multiplies a block of rows
 * (or columns) of the output.  On a machine already busy with other jobs,
 * spinning OpenMP threads that wait for descheduled ones lose as much again,
 * so unless OMP_NUM_THREADS, OMP_DYNAMIC or OMP_WAIT_POLICY is set, a work
 * area takes only the cores that other processes leave free when it is
 * created (the runnable count of /proc/loadavg, median of a few samples; not
 * the load average, which would count our own past work).  Results do not
 * depend on the thread count (checked bitwise).  threads_enter/threads_leave
 * bracket every public entry point and restore the caller's settings. */
static int pick_threads(void)
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

typedef struct { int blas, omp; } ThreadSave;
static ThreadSave threads_enter(const ModelWork *W)
{
    ThreadSave s = { openblas_get_num_threads(), omp_get_max_threads() };
    if (s.blas != 1) openblas_set_num_threads(1);
    if (s.omp != W->nthreads) omp_set_num_threads(W->nthreads);
    return s;
}
static void threads_leave(ThreadSave s)
{
    if (s.blas != 1) openblas_set_num_threads(s.blas);
    if (omp_get_max_threads() != s.omp) omp_set_num_threads(s.omp);
}

/* C[M,N] = op(A) op(B) + beta C, row-major; op(A) is [M,K], op(B) is [K,N]. */
static void gemm(int ta, int tb, int M, int N, int K, const float *A, const float *Bm, float *Cm, float beta)
{
    int lda = ta ? M : K, ldb = tb ? K : N;
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    int nt = omp_get_max_threads();
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
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, 1.0f, A, lda, Bm, ldb, beta, Cm, N);
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
                            Bm, ldb, beta, Cm + (size_t)lo * N, N);
            else
                cblas_sgemm(CblasRowMajor, TA, TB, M, hi - lo, K, 1.0f, A, lda,
                            tb ? Bm + (size_t)lo * ldb : Bm + lo, ldb, beta, Cm + lo, N);
        }
    }
}
/* C[M,N] = A[M,K] B[N,K]^T + beta C  (a Linear layer with W [out,in]) */
static void gemm_nt(int M, int N, int K, const float *A, const float *Bm, float *Cm, float beta)
{
    gemm(0, 1, M, N, K, A, Bm, Cm, beta);
}
/* C[M,N] = A[M,K] B[K,N] + beta C */
static void gemm_nn(int M, int N, int K, const float *A, const float *Bm, float *Cm, float beta)
{
    gemm(0, 0, M, N, K, A, Bm, Cm, beta);
}
/* C[M,N] = A[K,M]^T B[K,N] + beta C  (weight gradients: sums over rows) */
static void gemm_tn(int M, int N, int K, const float *A, const float *Bm, float *Cm, float beta)
{
    gemm(1, 0, M, N, K, A, Bm, Cm, beta);
}

/* g[c] += sum_n A[n][c] * Bm[n][c] (Bm NULL: 1).  Each column is summed in row
 * order in double, so the bits do not depend on the number of threads. */
static void colsum(float *g, const float *A, const float *Bm, size_t rows, int C)
{
    int nblk = (C + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * 16, nc = C - c0 < 16 ? C - c0 : 16;
        double acc[16] = { 0 };
        for (size_t n = 0; n < rows; n++) {
            const float *a = A + n * C + c0;
            if (Bm) {
                const float *b = Bm + n * C + c0;
                for (int c = 0; c < nc; c++) acc[c] += (double)a[c] * b[c];
            } else {
                for (int c = 0; c < nc; c++) acc[c] += a[c];
            }
        }
        for (int c = 0; c < nc; c++) g[c0 + c] += (float)acc[c];
    }
}

/* out[n][c] = vec[c] for every row (bias broadcast before a beta=1 GEMM) */
static void fill_rows(float *out, const float *vec, size_t rows, int C)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) memcpy(out + n * C, vec, (size_t)C * sizeof *out);
}

static void layernorm_fwd(const float *x, float *y, float *mean, float *rstd, const float *gamma,
                          const float *beta, size_t rows, int C, float eps)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) {
        const float *xr = x + n * C;
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++) s += xr[c];
        double mu = s / C;
        for (int c = 0; c < C; c++) { double d = xr[c] - mu; ss += d * d; }
        float m = (float)mu, rs = (float)(1.0 / sqrt(ss / C + eps));
        mean[n] = m;
        rstd[n] = rs;
        float *yr = y + n * C;
        for (int c = 0; c < C; c++) yr[c] = (xr[c] - m) * rs * gamma[c] + beta[c];
    }
}

/* dx (+)= d LayerNorm / dx . dy; ggamma/gbeta += parameter grads.  tmp: rows*C scratch. */
static void layernorm_bwd(const float *x, const float *mean, const float *rstd, const float *gamma,
                          const float *dy, float *dx, int accumulate, float *ggamma, float *gbeta,
                          float *tmp, size_t rows, int C)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) {
        const float *xr = x + n * C, *dyr = dy + n * C;
        float *dxr = dx + n * C, *tr = tmp + n * C;
        float m = mean[n], rs = rstd[n];
        double m1 = 0, m2 = 0;
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - m) * rs, dxh = dyr[c] * gamma[c];
            m1 += dxh;
            m2 += (double)dxh * xh;
            tr[c] = dyr[c] * xh;
        }
        float f1 = (float)(m1 / C), f2 = (float)(m2 / C);
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - m) * rs, dxh = dyr[c] * gamma[c];
            float v = (dxh - f1 - xh * f2) * rs;
            dxr[c] = accumulate ? dxr[c] + v : v;
        }
    }
    colsum(ggamma, tmp, NULL, rows, C);
    colsum(gbeta, dy, NULL, rows, C);
}

/* Token shift + lerps: out_i[t] = h[t] + (h[t-1] - h[t]) * mu_i, h[-1] = init (or 0). */
static void shift_mix_fwd(const float *h, const float *init, int B, int T, int C,
                          const float *const *mu, float *const *out, int nmu)
{
    size_t rows = (size_t)B * T;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) {
        int t = (int)(n % T);
        const float *hr = h + n * C;
        const float *prev = t ? hr - C : init;
        for (int c = 0; c < C; c++) {
            float xx = (prev ? prev[c] : 0.0f) - hr[c];
            for (int i = 0; i < nmu; i++) out[i][n * C + c] = hr[c] + xx * mu[i][c];
        }
    }
}

/* Backward of shift_mix_fwd with a zero initial shift (training). dh = d h;
 * gmu_i += sum_n dout_i * (h_prev - h).  tmp: rows*C scratch. */
static void shift_mix_bwd(const float *h, int B, int T, int C, const float *const *mu,
                          float *const *dout, int nmu, float *dh, float *const *gmu, float *tmp)
{
    size_t rows = (size_t)B * T;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) {
        int t = (int)(n % T);
        const float *hr = h + n * C;
        float *dhr = dh + n * C, *xx = tmp + n * C;
        for (int c = 0; c < C; c++) {
            float s = 0;
            for (int i = 0; i < nmu; i++) s += dout[i][n * C + c] * (1.0f - mu[i][c]);
            if (t + 1 < T)
                for (int i = 0; i < nmu; i++) s += dout[i][(n + 1) * C + c] * mu[i][c];
            dhr[c] = s;
            xx[c] = (t ? hr[c - C] : 0.0f) - hr[c];
        }
    }
    for (int i = 0; i < nmu; i++) colsum(gmu[i], dout[i], tmp, rows, C);
}

/* ------------------------------------------------------------- WKV7 (§3.5) */

/* S = S diag(d) + (S a) b^T + v k^T;  y = S r;  a = -kk, b = kk*a_icl.
 * ckpt (optional): the state before steps 0, 16, 32, ...
 * state (optional, B == 1): the initial state of every head, replaced by the final one. */
static void wkv_forward(int B, int T, int H, const float *r, const float *w, const float *k,
                        const float *v, const float *kk, const float *aicl, float *y,
                        float *ckpt, float *state)
{
    int C = H * HS, nch = (T + WKV_CHUNK - 1) / WKV_CHUNK;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float S[HS * HS], d[HS], aa[HS], bb[HS];
        if (state) memcpy(S, state + (size_t)h * HS * HS, sizeof S);
        else memset(S, 0, sizeof S);
        for (int t = 0; t < T; t++) {
            if (ckpt && t % WKV_CHUNK == 0)
                memcpy(ckpt + ((size_t)bh * nch + t / WKV_CHUNK) * HS * HS, S, sizeof S);
            size_t base = ((size_t)b * T + t) * C + (size_t)h * HS;
            const float *rt = r + base, *wt = w + base, *kt = k + base, *vt = v + base;
            for (int j = 0; j < HS; j++) {
                d[j] = expf(W_SCALE * sigmoidf_(wt[j]));
                aa[j] = -kk[base + j];
                bb[j] = kk[base + j] * aicl[base + j];
            }
            for (int i = 0; i < HS; i++) {
                float *Si = S + i * HS;
                float sa = 0, yi = 0, vi = vt[i];
#pragma omp simd reduction(+:sa)
                for (int j = 0; j < HS; j++) sa += Si[j] * aa[j];
#pragma omp simd reduction(+:yi)
                for (int j = 0; j < HS; j++) {
                    float s = Si[j] * d[j] + (sa * bb[j] + vi * kt[j]);
                    Si[j] = s;
                    yi += s * rt[j];
                }
                y[base + i] = yi;
            }
        }
        if (state) memcpy(state + (size_t)h * HS * HS, S, sizeof S);
    }
}

/* Backward of wkv_forward from zero initial state.  Each 16-step chunk is
 * recomputed forward from its checkpoint (exact states, no division by the
 * decay), then walked backward.  dr, dk, dv are accumulated (+=); dw (raw w),
 * dkk and da_icl are written.  scratch: per thread (WKV_CHUNK+1)*64*64 + WKV_CHUNK*64. */
static void wkv_backward(int B, int T, int H, const float *r, const float *w, const float *k,
                         const float *v, const float *kk, const float *aicl, const float *ckpt,
                         const float *dy, float *dr, float *dw, float *dk, float *dv, float *dkk,
                         float *daicl, float *scratch, int nthreads)
{
    int C = H * HS, nch = (T + WKV_CHUNK - 1) / WKV_CHUNK;
    size_t stride = (size_t)(WKV_CHUNK + 1) * HS * HS + WKV_CHUNK * HS;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *Ss = scratch + (size_t)omp_get_thread_num() * stride;
        float *sas = Ss + (size_t)(WKV_CHUNK + 1) * HS * HS;
        float dS[HS * HS], d[HS], aa[HS], bb[HS], sig[HS];
        memset(dS, 0, sizeof dS);
        for (int c = nch - 1; c >= 0; c--) {
            int t0 = c * WKV_CHUNK, nt = T - t0 < WKV_CHUNK ? T - t0 : WKV_CHUNK;
            memcpy(Ss, ckpt + ((size_t)bh * nch + c) * HS * HS, sizeof(float) * HS * HS);
            for (int tt = 0; tt < nt; tt++) {
                size_t base = ((size_t)b * T + t0 + tt) * C + (size_t)h * HS;
                const float *kt = k + base, *vt = v + base;
                for (int j = 0; j < HS; j++) {
                    d[j] = expf(W_SCALE * sigmoidf_(w[base + j]));
                    aa[j] = -kk[base + j];
                    bb[j] = kk[base + j] * aicl[base + j];
                }
                const float *P = Ss + (size_t)tt * HS * HS;
                float *N = Ss + (size_t)(tt + 1) * HS * HS;
                for (int i = 0; i < HS; i++) {
                    const float *Pi = P + i * HS;
                    float *Ni = N + i * HS;
                    float sa = 0, vi = vt[i];
#pragma omp simd reduction(+:sa)
                    for (int j = 0; j < HS; j++) sa += Pi[j] * aa[j];
                    sas[tt * HS + i] = sa;
#pragma omp simd
                    for (int j = 0; j < HS; j++) Ni[j] = Pi[j] * d[j] + (sa * bb[j] + vi * kt[j]);
                }
            }
            for (int tt = nt - 1; tt >= 0; tt--) {
                size_t base = ((size_t)b * T + t0 + tt) * C + (size_t)h * HS;
                const float *rt = r + base, *kt = k + base, *vt = v + base, *dyt = dy + base;
                for (int j = 0; j < HS; j++) {
                    sig[j] = sigmoidf_(w[base + j]);
                    d[j] = expf(W_SCALE * sig[j]);
                    aa[j] = -kk[base + j];
                    bb[j] = kk[base + j] * aicl[base + j];
                }
                const float *P = Ss + (size_t)tt * HS * HS, *N = Ss + (size_t)(tt + 1) * HS * HS;
                const float *sa = sas + tt * HS;
                float drv[HS] = { 0 }, ddv[HS] = { 0 }, dkv[HS] = { 0 }, dbv[HS] = { 0 }, dav[HS] = { 0 };
                /* y_t = S_t r_t:  dS += dy r^T,  dr = S_t^T dy */
                for (int i = 0; i < HS; i++) {
                    float dyi = dyt[i];
                    float *dSi = dS + i * HS;
                    const float *Ni = N + i * HS;
#pragma omp simd
                    for (int j = 0; j < HS; j++) {
                        dSi[j] += dyi * rt[j];
                        drv[j] += Ni[j] * dyi;
                    }
                }
                /* S_t = P diag(d) + (P a) b^T + v k^T */
                for (int i = 0; i < HS; i++) {
                    float *dSi = dS + i * HS;
                    const float *Pi = P + i * HS;
                    float dvi = 0, dsai = 0, vi = vt[i], sai = sa[i];
#pragma omp simd reduction(+:dvi, dsai)
                    for (int j = 0; j < HS; j++) {
                        dvi += dSi[j] * kt[j];
                        dsai += dSi[j] * bb[j];
                    }
#pragma omp simd
                    for (int j = 0; j < HS; j++) {
                        ddv[j] += dSi[j] * Pi[j];
                        dkv[j] += dSi[j] * vi;
                        dbv[j] += dSi[j] * sai;
                        dav[j] += Pi[j] * dsai;
                        dSi[j] = dSi[j] * d[j] + dsai * aa[j];
                    }
                    dv[base + i] += dvi;
                }
                for (int j = 0; j < HS; j++) {
                    float ai = aicl[base + j], kkj = kk[base + j];
                    dr[base + j] += drv[j];
                    dk[base + j] += dkv[j];
                    dw[base + j] = ddv[j] * d[j] * W_SCALE * sig[j] * (1.0f - sig[j]);
                    dkk[base + j] = -dav[j] + dbv[j] * ai;
                    daicl[base + j] = dbv[j] * kkj;
                }
            }
        }
    }
}

/* ------------------------------------------------------------- setup */

static size_t off_of(const Layout *L, int layer, const char *name)
{
    char full[64];
    if (layer >= 0) snprintf(full, sizeof full, "blocks.%d.%s", layer, name);
    else snprintf(full, sizeof full, "%s", name);
    const ParamInfo *p = layout_find(L, full);
    return p ? p->offset : NONE;
}

static int offsets_build(const Model *m, Offsets *o, Error *e)
{
    const Layout *L = &m->layout;
    int nl = m->cfg.n_layer;
    o->l = calloc((size_t)nl, sizeof *o->l);
    if (!o->l) return fail(e, "out of memory");
    o->emb = off_of(L, -1, "emb.weight");
    o->lnout_w = off_of(L, -1, "ln_out.weight");
    o->lnout_b = off_of(L, -1, "ln_out.bias");
    o->head = off_of(L, -1, "head.weight");
    if (o->emb == NONE || o->lnout_w == NONE || o->lnout_b == NONE || o->head == NONE)
        return fail(e, "model layout lacks emb/ln_out/head");
    static const char *mixn[NMIX] = { "att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g" };
    for (int l = 0; l < nl; l++) {
        LayerOff *lo = &o->l[l];
        struct { size_t *dst; const char *name; int optional; } tab[] = {
            { &lo->ln1_w, "ln1.weight", 0 }, { &lo->ln1_b, "ln1.bias", 0 },
            { &lo->ln2_w, "ln2.weight", 0 }, { &lo->ln2_b, "ln2.bias", 0 },
            { &lo->ln0_w, "ln0.weight", l > 0 }, { &lo->ln0_b, "ln0.bias", l > 0 },
            { &lo->w1, "att.w1", 0 }, { &lo->w2, "att.w2", 0 }, { &lo->w0, "att.w0", 0 },
            { &lo->a1, "att.a1", 0 }, { &lo->a2, "att.a2", 0 }, { &lo->a0, "att.a0", 0 },
            { &lo->v1, "att.v1", l == 0 }, { &lo->v2, "att.v2", l == 0 }, { &lo->v0, "att.v0", l == 0 },
            { &lo->g1, "att.g1", 0 }, { &lo->g2, "att.g2", 0 },
            { &lo->k_k, "att.k_k", 0 }, { &lo->k_a, "att.k_a", 0 }, { &lo->r_k, "att.r_k", 0 },
            { &lo->Wr, "att.receptance.weight", 0 }, { &lo->Wk, "att.key.weight", 0 },
            { &lo->Wv, "att.value.weight", 0 }, { &lo->Wo, "att.output.weight", 0 },
            { &lo->lnx_w, "att.ln_x.weight", 0 }, { &lo->lnx_b, "att.ln_x.bias", 0 },
            { &lo->fx_k, "ffn.x_k", 0 }, { &lo->Fk, "ffn.key.weight", 0 }, { &lo->Fv, "ffn.value.weight", 0 },
        };
        for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
            *tab[i].dst = off_of(L, l, tab[i].name);
            if (*tab[i].dst == NONE && !tab[i].optional)
                return fail(e, "model layout lacks blocks.%d.%s", l, tab[i].name);
        }
        for (int i = 0; i < NMIX; i++) {
            lo->mix[i] = off_of(L, l, mixn[i]);
            if (lo->mix[i] == NONE) return fail(e, "model layout lacks blocks.%d.%s", l, mixn[i]);
        }
    }
    return 0;
}

/* Carve buffers out of one arena.  Run once with base NULL to size it. */
typedef struct { float *base; size_t used; } Carver;
static float *take(Carver *cv, size_t n)
{
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (n + 15) & ~(size_t)15;    /* 64-byte aligned offsets */
    return p;
}

static void carve_all(ModelWork *W, Carver *cv)
{
    const ModelConfig *c = &W->cfg;
    size_t C = c->n_embd, H = c->n_head, V = c->vocab_size, BT = (size_t)W->B * W->T;
    int train = W->mode != MODE_INFER;
    int nch = (W->T + WKV_CHUNK - 1) / WKV_CHUNK;
    size_t maxD = c->d_decay;
    if ((size_t)c->d_aaa > maxD) maxD = c->d_aaa;
    if ((size_t)c->d_mv > maxD) maxD = c->d_mv;
    if ((size_t)c->d_gate > maxD) maxD = c->d_gate;
    for (int l = 0; l < W->nact; l++) {
        LayerAct *A = &W->act[l];
        A->ln1_mean = take(cv, BT); A->ln1_rstd = take(cv, BT); A->h1 = take(cv, BT * C);
        for (int i = 0; i < NMIX; i++) A->mix[i] = take(cv, BT * C);
        A->r = take(cv, BT * C); A->k = take(cv, BT * C); A->v = take(cv, BT * C);
        A->tw = take(cv, BT * c->d_decay); A->w = take(cv, BT * C);
        A->vh = take(cv, BT * c->d_mv); A->vgate = take(cv, BT * C);
        A->ah = take(cv, BT * c->d_aaa); A->a = take(cv, BT * C);
        A->gh = take(cv, BT * c->d_gate); A->g = take(cv, BT * C);
        A->kk = take(cv, BT * C); A->inv = take(cv, BT * H); A->kp = take(cv, BT * C); A->vm = take(cv, BT * C);
        A->ckpt = train ? take(cv, (size_t)W->B * H * nch * HS * HS) : NULL;
        A->y = take(cv, BT * C); A->gn_mean = take(cv, BT * H); A->gn_rstd = take(cv, BT * H);
        A->bonus = take(cv, BT * H); A->out = take(cv, BT * C);
        A->xmid = take(cv, BT * C); A->ln2_mean = take(cv, BT); A->ln2_rstd = take(cv, BT);
        A->h2 = take(cv, BT * C); A->cmix = take(cv, BT * C);
        A->act = take(cv, BT * 4 * C);
    }
    W->x_emb = take(cv, BT * C); W->ln0_mean = take(cv, BT); W->ln0_rstd = take(cv, BT);
    for (int l = 0; l <= c->n_layer; l++) W->xin[l] = take(cv, BT * C);
    W->vfirst = take(cv, BT * C);
    W->lnf_mean = take(cv, BT); W->lnf_rstd = take(cv, BT); W->hf = take(cv, BT * C);
    if (!train) return;
    W->head_rows = (int)(HEAD_CHUNK_FLOATS / V);
    if (W->head_rows < 16) W->head_rows = 16;
    if ((size_t)W->head_rows > BT) W->head_rows = (int)BT;
    W->logits = take(cv, (size_t)W->head_rows * V);
    W->row_loss = (double *)take(cv, 2 * BT);
    float **bufs[] = { &W->dx, &W->dh, &W->dr, &W->dk, &W->dv, &W->dw, &W->da, &W->dg, &W->dkk,
                       &W->dkp, &W->dvm, &W->dy, &W->dout, &W->tmp, &W->tmp2, &W->dvfirst };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) *bufs[i] = take(cv, BT * C);
    for (int i = 0; i < NMIX; i++) W->dmix[i] = take(cv, BT * C);
    W->dlora = take(cv, BT * maxD);
    W->dact = take(cv, BT * 4 * C);
    W->wkv_scratch = take(cv, (size_t)W->nthreads * ((WKV_CHUNK + 1) * HS * HS + WKV_CHUNK * HS));
}

static ModelWork *work_new(const Model *m, int B, int T, int mode, Error *e)
{
    if (B < 1 || T < 1) { fail(e, "batch size and context length must be >= 1 (got B=%d T=%d)", B, T); return NULL; }
    if (m->cfg.head_size != HS) { fail(e, "head size must be %d", HS); return NULL; }
    ModelWork *W = calloc(1, sizeof *W);
    if (!W) { fail(e, "out of memory"); return NULL; }
    W->cfg = m->cfg;
    W->B = B;
    W->T = T;
    W->mode = mode;
    W->nthreads = pick_threads();
    W->nact = mode == MODE_TRAIN ? m->cfg.n_layer : 1;
    W->act = calloc((size_t)W->nact, sizeof *W->act);
    W->xin = calloc((size_t)m->cfg.n_layer + 1, sizeof *W->xin);
    if (!W->act || !W->xin) { fail(e, "out of memory"); model_work_free(W); return NULL; }
    if (offsets_build(m, &W->off, e)) { model_work_free(W); return NULL; }
    Carver cv = { NULL, 0 };
    carve_all(W, &cv);
    W->arena = calloc(cv.used, sizeof(float));
    if (!W->arena) {
        fail(e, "out of memory: activations for B=%d T=%d need %.1f MiB", B, T, cv.used * 4.0 / 1048576);
        model_work_free(W);
        return NULL;
    }
    cv.base = W->arena;
    cv.used = 0;
    carve_all(W, &cv);
    return W;
}

ModelWork *model_work_new(const Model *m, int B, int T, int grad_cp, Error *e)
{
    return work_new(m, B, T, grad_cp ? MODE_TRAIN_CP : MODE_TRAIN, e);
}

void model_work_free(ModelWork *W)
{
    if (!W) return;
    free(W->arena);
    free(W->off.l);
    free(W->act);
    free(W->xin);
    free(W);
}

/* ------------------------------------------------------------- forward */

/* One block: xout = xin + TimeMix(LN1 xin) then + ChannelMix(LN2 .).
 * st (B == 1 only): recurrent state read as the initial token shifts and WKV
 * state, and replaced by the final ones. */
static void block_forward(const Model *m, ModelWork *W, int l, LayerAct *A, int B, int T,
                          const float *xin, float *xout, ModelState *st)
{
    const ModelConfig *c = &m->cfg;
    const LayerOff *o = &W->off.l[l];
    const float *P = m->w;
    int C = c->n_embd, H = c->n_head;
    size_t BT = (size_t)B * T;
    int Dw = c->d_decay, Da = c->d_aaa, Dv = c->d_mv, Dg = c->d_gate;

    layernorm_fwd(xin, A->h1, A->ln1_mean, A->ln1_rstd, P + o->ln1_w, P + o->ln1_b, BT, C, 1e-5f);
    const float *mu[NMIX];
    for (int i = 0; i < NMIX; i++) mu[i] = P + o->mix[i];
    float *att_shift = st ? st->att_shift + (size_t)l * C : NULL;
    shift_mix_fwd(A->h1, att_shift, B, T, C, mu, A->mix, NMIX);
    if (st) memcpy(att_shift, A->h1 + (size_t)(T - 1) * C, (size_t)C * sizeof(float));

    gemm_nt((int)BT, C, C, A->mix[MIX_R], P + o->Wr, A->r, 0);
    gemm_nt((int)BT, C, C, A->mix[MIX_K], P + o->Wk, A->k, 0);
    gemm_nt((int)BT, C, C, A->mix[MIX_V], P + o->Wv, A->v, 0);

    /* decay: w = w0 + tanh(xw w1) w2 (raw; the WKV turns it into exp(-e^-0.5 sigmoid(w))) */
    gemm_nn((int)BT, Dw, C, A->mix[MIX_W], P + o->w1, A->tw, 0);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * Dw; i++) A->tw[i] = tanhf(A->tw[i]);
    fill_rows(A->w, P + o->w0, BT, C);
    gemm_nn((int)BT, C, Dw, A->tw, P + o->w2, A->w, 1);

    /* value residual: layer 0 defines v_first, later layers mix toward it */
    if (l == 0) {
        memcpy(W->vfirst, A->v, BT * C * sizeof(float));
        memcpy(A->vm, A->v, BT * C * sizeof(float));
    } else {
        gemm_nn((int)BT, Dv, C, A->mix[MIX_V], P + o->v1, A->vh, 0);
        fill_rows(A->vgate, P + o->v0, BT, C);
        gemm_nn((int)BT, C, Dv, A->vh, P + o->v2, A->vgate, 1);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < BT * C; i++) {
            float gt = sigmoidf_(A->vgate[i]);
            A->vgate[i] = gt;
            A->vm[i] = A->v[i] + (W->vfirst[i] - A->v[i]) * gt;
        }
    }

    /* in-context learning rate a = sigmoid(a0 + xa a1 a2) */
    gemm_nn((int)BT, Da, C, A->mix[MIX_A], P + o->a1, A->ah, 0);
    fill_rows(A->a, P + o->a0, BT, C);
    gemm_nn((int)BT, C, Da, A->ah, P + o->a2, A->a, 1);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * C; i++) A->a[i] = sigmoidf_(A->a[i]);

    /* gate g = sigmoid(xg g1) g2 */
    gemm_nn((int)BT, Dg, C, A->mix[MIX_G], P + o->g1, A->gh, 0);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * Dg; i++) A->gh[i] = sigmoidf_(A->gh[i]);
    gemm_nn((int)BT, C, Dg, A->gh, P + o->g2, A->g, 0);

    /* key prep per head: kk = normalize(k*k_k), k' = k*(1 + (a-1)*k_a) */
    const float *k_k = P + o->k_k, *k_a = P + o->k_a;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < BT * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        double ss = 0;
        for (int j = 0; j < HS; j++) { float u = A->k[base + j] * k_k[c0 + j]; ss += (double)u * u; }
        float norm = (float)sqrt(ss);
        float inv = 1.0f / (norm > 1e-12f ? norm : 1e-12f);
        A->inv[nh] = inv;
        for (int j = 0; j < HS; j++) {
            float kj = A->k[base + j];
            A->kk[base + j] = kj * k_k[c0 + j] * inv;
            A->kp[base + j] = kj * (1.0f + (A->a[base + j] - 1.0f) * k_a[c0 + j]);
        }
    }

    wkv_forward(B, T, H, A->r, A->w, A->kp, A->vm, A->kk, A->a, A->y, A->ckpt,
                st ? st->wkv + (size_t)l * H * HS * HS : NULL);

    /* GroupNorm(H, eps 64e-5) + bonus (sum r k' r_k) v, times the gate */
    const float *lw = P + o->lnx_w, *lb = P + o->lnx_b, *rk = P + o->r_k;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < BT * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        const float *yv = A->y + base;
        double s1 = 0, s2 = 0, sb = 0;
        for (int j = 0; j < HS; j++) s1 += yv[j];
        double mean = s1 / HS;
        for (int j = 0; j < HS; j++) { double dd = yv[j] - mean; s2 += dd * dd; }
        for (int j = 0; j < HS; j++) sb += (double)A->r[base + j] * A->kp[base + j] * rk[c0 + j];
        float fm = (float)mean, rs = (float)(1.0 / sqrt(s2 / HS + 64e-5)), s = (float)sb;
        A->gn_mean[nh] = fm;
        A->gn_rstd[nh] = rs;
        A->bonus[nh] = s;
        for (int j = 0; j < HS; j++)
            A->out[base + j] = ((yv[j] - fm) * rs * lw[c0 + j] + lb[c0 + j] + s * A->vm[base + j]) * A->g[base + j];
    }
    memcpy(A->xmid, xin, BT * C * sizeof(float));
    gemm_nt((int)BT, C, C, A->out, P + o->Wo, A->xmid, 1);

    /* ChannelMix: relu(lerp(h, h_prev, x_k) Kw^T)^2 Vw^T */
    layernorm_fwd(A->xmid, A->h2, A->ln2_mean, A->ln2_rstd, P + o->ln2_w, P + o->ln2_b, BT, C, 1e-5f);
    const float *fmu[1] = { P + o->fx_k };
    float *fout[1] = { A->cmix };
    float *ffn_shift = st ? st->ffn_shift + (size_t)l * C : NULL;
    shift_mix_fwd(A->h2, ffn_shift, B, T, C, fmu, fout, 1);
    if (st) memcpy(ffn_shift, A->h2 + (size_t)(T - 1) * C, (size_t)C * sizeof(float));
    gemm_nt((int)BT, 4 * C, C, A->cmix, P + o->Fk, A->act, 0);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * 4 * C; i++) {
        float p = A->act[i] > 0 ? A->act[i] : 0.0f;
        A->act[i] = p * p;
    }
    memcpy(xout, A->xmid, BT * C * sizeof(float));
    gemm_nt((int)BT, C, 4 * C, A->act, P + o->Fv, xout, 1);
}

/* Embedding, ln0 and every block; leaves the last block's output in xin[L]. */
static void forward_blocks(const Model *m, ModelWork *W, int B, int T, const int32_t *x, ModelState *st)
{
    const ModelConfig *c = &m->cfg;
    int C = c->n_embd;
    size_t BT = (size_t)B * T;
    const float *emb = m->w + W->off.emb;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < BT; n++) memcpy(W->x_emb + n * C, emb + (size_t)x[n] * C, (size_t)C * sizeof(float));
    const LayerOff *o0 = &W->off.l[0];
    layernorm_fwd(W->x_emb, W->xin[0], W->ln0_mean, W->ln0_rstd, m->w + o0->ln0_w, m->w + o0->ln0_b, BT, C, 1e-5f);
    for (int l = 0; l < c->n_layer; l++)
        block_forward(m, W, l, &W->act[W->nact == 1 ? 0 : l], B, T, W->xin[l], W->xin[l + 1], st);
}

/* ln_out + head for every row (logits [B*T, V]) or only each sample's last row ([B, V]). */
static void head_forward(const Model *m, ModelWork *W, int B, int T, float *logits, int last_only)
{
    int C = m->cfg.n_embd, V = m->cfg.vocab_size, L = m->cfg.n_layer;
    const float *gw = m->w + W->off.lnout_w, *gb = m->w + W->off.lnout_b, *head = m->w + W->off.head;
    if (!last_only) {
        size_t BT = (size_t)B * T;
        layernorm_fwd(W->xin[L], W->hf, W->lnf_mean, W->lnf_rstd, gw, gb, BT, C, 1e-5f);
        gemm_nt((int)BT, V, C, W->hf, head, logits, 0);
        return;
    }
    for (int b = 0; b < B; b++) {
        size_t n = (size_t)b * T + T - 1;
        layernorm_fwd(W->xin[L] + n * C, W->hf + (size_t)b * C, W->lnf_mean + b, W->lnf_rstd + b, gw, gb, 1, C, 1e-5f);
    }
    gemm_nt(B, V, C, W->hf, head, logits, 0);
}

/* expf for x <= 0 that vectorizes (Cephes polynomial, about 1 ulp); glibc's
 * expf is scalar without -ffast-math and took ~10% of a training step. */
static inline float exp_neg(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float n = rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float yv = p * r * r + r + 1.0f;
    union { int32_t i; float f; } sc = { .i = ((int32_t)n + 127) << 23 };
    return yv * sc.f;
}

/* Cross entropy of each of `rows` rows into row_loss.  With grad, z is replaced
 * by d(loss)/dz for the mean over R rows in all, plus the L2Wrap term:
 * +1e-4 * max / R at the (lowest-index) argmax (§3.6). */
static void cross_entropy(float *z, const int32_t *y, size_t rows, size_t R, int V, double *row_loss, int grad)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) {
        float *zr = z + n * V;
        float M = zr[0];
        for (int c = 0; c < V; c++) M = zr[c] > M ? zr[c] : M;
        int am = 0;
        while (am < V - 1 && zr[am] != M) am++;     /* bounded: NaN logits never match */
        float zt = zr[y[n]];
        double s = 0;
        if (grad) {
#pragma omp simd reduction(+:s)
            for (int c = 0; c < V; c++) { float ev = exp_neg(zr[c] - M); zr[c] = ev; s += ev; }
        } else {
#pragma omp simd reduction(+:s)
            for (int c = 0; c < V; c++) s += exp_neg(zr[c] - M);
        }
        double lse = log(s) + M;
        row_loss[n] = lse - zt;
        if (grad) {
            float scale = (float)(1.0 / (s * (double)R));
#pragma omp simd
            for (int c = 0; c < V; c++) zr[c] *= scale;
            zr[y[n]] -= (float)(1.0 / R);
            zr[am] += M * (float)(1e-4 / R);
        }
    }
}

/* ln_out, head and the loss, in chunks of head_rows rows so the logits never
 * need B*T*V floats.  With grad: head.weight and ln_out gradients into G and
 * d(loss)/d(last block output) into W->dx.  Returns the mean loss. */
static float head_loss(const Model *m, ModelWork *W, const int32_t *y, float *G)
{
    int C = m->cfg.n_embd, V = m->cfg.vocab_size, L = m->cfg.n_layer;
    size_t BT = (size_t)W->B * W->T;
    const float *head = m->w + W->off.head;
    layernorm_fwd(W->xin[L], W->hf, W->lnf_mean, W->lnf_rstd, m->w + W->off.lnout_w, m->w + W->off.lnout_b, BT, C, 1e-5f);
    for (size_t r0 = 0; r0 < BT; r0 += W->head_rows) {
        int rows = BT - r0 < (size_t)W->head_rows ? (int)(BT - r0) : W->head_rows;
        gemm_nt(rows, V, C, W->hf + r0 * C, head, W->logits, 0);
        cross_entropy(W->logits, y + r0, rows, BT, V, W->row_loss + r0, G != NULL);
        if (G) {
            gemm_tn(V, C, rows, W->logits, W->hf + r0 * C, G + W->off.head, 1);
            gemm_nn(rows, C, V, W->logits, head, W->dh + r0 * C, 0);
        }
    }
    if (G)
        layernorm_bwd(W->xin[L], W->lnf_mean, W->lnf_rstd, m->w + W->off.lnout_w, W->dh, W->dx, 0,
                      G + W->off.lnout_w, G + W->off.lnout_b, W->tmp, BT, C);
    double loss = 0;
    for (size_t n = 0; n < BT; n++) loss += W->row_loss[n];
    return (float)(loss / (double)BT);
}

static int tokens_ok(const int32_t *x, size_t n, int V)
{
    for (size_t i = 0; i < n; i++)
        if (x[i] < 0 || x[i] >= V) return 0;
    return 1;
}

/* ------------------------------------------------------------- backward */

/* On entry W->dx = d(loss)/d(block output); on return d(loss)/d(block input). */
static void block_backward(const Model *m, ModelWork *W, int l, const LayerAct *A, int B, int T,
                           const float *xin, float *G)
{
    const ModelConfig *c = &m->cfg;
    const LayerOff *o = &W->off.l[l];
    const float *P = m->w;
    int C = c->n_embd, H = c->n_head, BTi = B * T;
    size_t BT = (size_t)B * T;
    int Dw = c->d_decay, Da = c->d_aaa, Dv = c->d_mv, Dg = c->d_gate;
    float *dx = W->dx;

    /* ---- ChannelMix ---- */
    gemm_tn(C, 4 * C, BTi, dx, A->act, G + o->Fv, 1);
    gemm_nn(BTi, 4 * C, C, dx, P + o->Fv, W->dact, 0);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * 4 * C; i++) W->dact[i] *= 2.0f * sqrtf(A->act[i]);   /* relu' from act, as the reference kernel */
    gemm_tn(4 * C, C, BTi, W->dact, A->cmix, G + o->Fk, 1);
    gemm_nn(BTi, C, 4 * C, W->dact, P + o->Fk, W->dh, 0);          /* d cmix */
    {
        const float *fmu[1] = { P + o->fx_k };
        float *dcm[1] = { W->dh };
        float *gmu[1] = { G + o->fx_k };
        shift_mix_bwd(A->h2, B, T, C, fmu, dcm, 1, W->dy, gmu, W->tmp);   /* dy = d h2 */
    }
    layernorm_bwd(A->xmid, A->ln2_mean, A->ln2_rstd, P + o->ln2_w, W->dy, dx, 1,
                  G + o->ln2_w, G + o->ln2_b, W->tmp, BT, C);             /* dx = d xmid */

    /* ---- TimeMix output projection ---- */
    gemm_tn(C, C, BTi, dx, A->out, G + o->Wo, 1);
    gemm_nn(BTi, C, C, dx, P + o->Wo, W->dout, 0);

    /* ---- GroupNorm + bonus + gate ---- */
    const float *lw = P + o->lnx_w, *lb = P + o->lnx_b, *rk = P + o->r_k;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < BT * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        float fm = A->gn_mean[nh], rs = A->gn_rstd[nh], s = A->bonus[nh];
        double m1 = 0, m2 = 0, q = 0;
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            float xh = (A->y[i] - fm) * rs, dO = W->dout[i];
            float gy = dO * A->g[i];
            W->dg[i] = dO * (xh * lw[c0 + j] + lb[c0 + j] + s * A->vm[i]);
            W->dout[i] = gy;                          /* now holds d(pre-gate) */
            W->tmp[i] = gy * xh;
            float dxh = gy * lw[c0 + j];
            m1 += dxh;
            m2 += (double)dxh * xh;
            q += (double)gy * A->vm[i];
        }
        float f1 = (float)(m1 / HS), f2 = (float)(m2 / HS), fq = (float)q;
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            float xh = (A->y[i] - fm) * rs, gy = W->dout[i];
            W->dy[i] = (gy * lw[c0 + j] - f1 - xh * f2) * rs;
            W->dvm[i] = gy * s;
            W->dr[i] = fq * A->kp[i] * rk[c0 + j];
            W->dkp[i] = fq * A->r[i] * rk[c0 + j];
            W->tmp2[i] = fq * A->r[i] * A->kp[i];
        }
    }
    colsum(G + o->lnx_w, W->tmp, NULL, BT, C);
    colsum(G + o->lnx_b, W->dout, NULL, BT, C);
    colsum(G + o->r_k, W->tmp2, NULL, BT, C);

    /* ---- WKV ---- */
    wkv_backward(B, T, H, A->r, A->w, A->kp, A->vm, A->kk, A->a, A->ckpt, W->dy,
                 W->dr, W->dw, W->dkp, W->dvm, W->dkk, W->da, W->wkv_scratch, W->nthreads);

    /* ---- key prep ---- */
    const float *k_k = P + o->k_k, *k_a = P + o->k_a;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < BT * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        float inv = A->inv[nh];
        double dot = 0;
        for (int j = 0; j < HS; j++) dot += (double)W->dkk[base + j] * A->kk[base + j];
        float fd = (float)dot;
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            float gkk = W->dkk[i];
            float gu = inv < 1e12f ? (gkk - A->kk[i] * fd) * inv : gkk * inv;
            float kj = A->k[i], aj = A->a[i], dkp = W->dkp[i];
            W->dk[i] = dkp * (1.0f + (aj - 1.0f) * k_a[c0 + j]) + gu * k_k[c0 + j];
            W->da[i] += dkp * kj * k_a[c0 + j];
            W->tmp[i] = gu * kj;
            W->tmp2[i] = dkp * kj * (aj - 1.0f);
        }
    }
    colsum(G + o->k_k, W->tmp, NULL, BT, C);
    colsum(G + o->k_a, W->tmp2, NULL, BT, C);

    /* ---- a = sigmoid(a0 + xa a1 a2) ---- */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * C; i++) W->da[i] *= A->a[i] * (1.0f - A->a[i]);
    colsum(G + o->a0, W->da, NULL, BT, C);
    gemm_tn(Da, C, BTi, A->ah, W->da, G + o->a2, 1);
    gemm_nt(BTi, Da, C, W->da, P + o->a2, W->dlora, 0);
    gemm_tn(C, Da, BTi, A->mix[MIX_A], W->dlora, G + o->a1, 1);
    gemm_nt(BTi, C, Da, W->dlora, P + o->a1, W->dmix[MIX_A], 0);

    /* ---- value residual ---- */
    float vbeta = 0;
    if (l > 0) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < BT * C; i++) {
            float gt = A->vgate[i], dvm = W->dvm[i];
            W->dv[i] = dvm * (1.0f - gt);
            W->dvfirst[i] += dvm * gt;
            W->tmp[i] = dvm * (W->vfirst[i] - A->v[i]) * gt * (1.0f - gt);
        }
        colsum(G + o->v0, W->tmp, NULL, BT, C);
        gemm_tn(Dv, C, BTi, A->vh, W->tmp, G + o->v2, 1);
        gemm_nt(BTi, Dv, C, W->tmp, P + o->v2, W->dlora, 0);
        gemm_tn(C, Dv, BTi, A->mix[MIX_V], W->dlora, G + o->v1, 1);
        gemm_nt(BTi, C, Dv, W->dlora, P + o->v1, W->dmix[MIX_V], 0);
        vbeta = 1;
    } else {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < BT * C; i++) W->dv[i] = W->dvm[i] + W->dvfirst[i];
    }

    /* ---- decay w = w0 + tanh(xw w1) w2 ---- */
    colsum(G + o->w0, W->dw, NULL, BT, C);
    gemm_tn(Dw, C, BTi, A->tw, W->dw, G + o->w2, 1);
    gemm_nt(BTi, Dw, C, W->dw, P + o->w2, W->dlora, 0);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * Dw; i++) W->dlora[i] *= 1.0f - A->tw[i] * A->tw[i];
    gemm_tn(C, Dw, BTi, A->mix[MIX_W], W->dlora, G + o->w1, 1);
    gemm_nt(BTi, C, Dw, W->dlora, P + o->w1, W->dmix[MIX_W], 0);

    /* ---- gate g = sigmoid(xg g1) g2 ---- */
    gemm_tn(Dg, C, BTi, A->gh, W->dg, G + o->g2, 1);
    gemm_nt(BTi, Dg, C, W->dg, P + o->g2, W->dlora, 0);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < BT * Dg; i++) W->dlora[i] *= A->gh[i] * (1.0f - A->gh[i]);
    gemm_tn(C, Dg, BTi, A->mix[MIX_G], W->dlora, G + o->g1, 1);
    gemm_nt(BTi, C, Dg, W->dlora, P + o->g1, W->dmix[MIX_G], 0);

    /* ---- r, k, v projections ---- */
    gemm_tn(C, C, BTi, W->dr, A->mix[MIX_R], G + o->Wr, 1);
    gemm_nn(BTi, C, C, W->dr, P + o->Wr, W->dmix[MIX_R], 0);
    gemm_tn(C, C, BTi, W->dk, A->mix[MIX_K], G + o->Wk, 1);
    gemm_nn(BTi, C, C, W->dk, P + o->Wk, W->dmix[MIX_K], 0);
    gemm_tn(C, C, BTi, W->dv, A->mix[MIX_V], G + o->Wv, 1);
    gemm_nn(BTi, C, C, W->dv, P + o->Wv, W->dmix[MIX_V], vbeta);

    /* ---- token shift + lerps, LN1 ---- */
    const float *mu[NMIX];
    float *gmu[NMIX];
    for (int i = 0; i < NMIX; i++) { mu[i] = P + o->mix[i]; gmu[i] = G + o->mix[i]; }
    shift_mix_bwd(A->h1, B, T, C, mu, W->dmix, NMIX, W->dh, gmu, W->tmp);
    layernorm_bwd(xin, A->ln1_mean, A->ln1_rstd, P + o->ln1_w, W->dh, dx, 1,
                  G + o->ln1_w, G + o->ln1_b, W->tmp, BT, C);
}

/* ------------------------------------------------------------- public API */

float model_forward_loss(const Model *m, ModelWork *W, const int32_t *x, const int32_t *y)
{
    size_t BT = (size_t)W->B * W->T;
    int V = m->cfg.vocab_size;
    if (!tokens_ok(x, BT, V) || !tokens_ok(y, BT, V)) return NAN;
    ThreadSave nb = threads_enter(W);
    forward_blocks(m, W, W->B, W->T, x, NULL);
    float loss = head_loss(m, W, y, NULL);
    threads_leave(nb);
    return loss;
}

void model_forward_logits(const Model *m, ModelWork *W, const int32_t *x, float *logits)
{
    size_t BT = (size_t)W->B * W->T;
    int V = m->cfg.vocab_size;
    if (!tokens_ok(x, BT, V)) {
        for (size_t i = 0; i < BT * V; i++) logits[i] = NAN;
        return;
    }
    ThreadSave nb = threads_enter(W);
    forward_blocks(m, W, W->B, W->T, x, NULL);
    head_forward(m, W, W->B, W->T, logits, 0);
    threads_leave(nb);
}

float model_forward_backward(const Model *m, ModelWork *W, const int32_t *x, const int32_t *y, float *grad)
{
    const ModelConfig *c = &m->cfg;
    int B = W->B, T = W->T, C = c->n_embd, V = c->vocab_size, L = c->n_layer;
    size_t BT = (size_t)B * T;
    memset(grad, 0, m->layout.total * sizeof(float));
    if (!tokens_ok(x, BT, V) || !tokens_ok(y, BT, V)) return NAN;

    ThreadSave nb = threads_enter(W);
    forward_blocks(m, W, B, T, x, NULL);
    float loss = head_loss(m, W, y, grad);

    memset(W->dvfirst, 0, BT * C * sizeof(float));
    for (int l = L - 1; l >= 0; l--) {
        LayerAct *A = &W->act[W->nact == 1 ? 0 : l];
        if (W->mode == MODE_TRAIN_CP)   /* recompute this block's activations from its stored input */
            block_forward(m, W, l, A, B, T, W->xin[l], W->xin[l + 1], NULL);
        block_backward(m, W, l, A, B, T, W->xin[l], grad);
    }

    /* ln0 and the embedding rows */
    const LayerOff *o0 = &W->off.l[0];
    layernorm_bwd(W->x_emb, W->ln0_mean, W->ln0_rstd, m->w + o0->ln0_w, W->dx, W->dh, 0,
                  grad + o0->ln0_w, grad + o0->ln0_b, W->tmp, BT, C);
    float *gemb = grad + W->off.emb;
    int nblk = (C + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * 16, nc = C - c0 < 16 ? C - c0 : 16;
        for (size_t n = 0; n < BT; n++) {
            float *g = gemb + (size_t)x[n] * C + c0;
            const float *d = W->dh + n * C + c0;
            for (int cc = 0; cc < nc; cc++) g[cc] += d[cc];
        }
    }
    threads_leave(nb);
    return loss;
}

/* ---- recurrent mode ---- */

ModelState *model_state_new(const Model *m, Error *e)
{
    const ModelConfig *c = &m->cfg;
    ModelState *s = calloc(1, sizeof *s);
    if (!s) { fail(e, "out of memory"); return NULL; }
    s->cfg = *c;
    size_t LC = (size_t)c->n_layer * c->n_embd;
    s->att_shift = calloc(LC, sizeof(float));
    s->ffn_shift = calloc(LC, sizeof(float));
    s->wkv = calloc(LC * HS, sizeof(float));     /* L * H * 64 * 64 = L * C * 64 */
    if (!s->att_shift || !s->ffn_shift || !s->wkv) {
        fail(e, "out of memory");
        model_state_free(s);
        return NULL;
    }
    s->w = work_new(m, 1, PREFILL_CHUNK, MODE_INFER, e);
    if (!s->w) { model_state_free(s); return NULL; }
    return s;
}

void model_state_reset(ModelState *s)
{
    size_t LC = (size_t)s->cfg.n_layer * s->cfg.n_embd;
    memset(s->att_shift, 0, LC * sizeof(float));
    memset(s->ffn_shift, 0, LC * sizeof(float));
    memset(s->wkv, 0, LC * HS * sizeof(float));
}

void model_state_free(ModelState *s)
{
    if (!s) return;
    free(s->att_shift);
    free(s->ffn_shift);
    free(s->wkv);
    model_work_free(s->w);
    free(s);
}

void model_step(const Model *m, ModelState *s, int32_t token, float *logits)
{
    if (token < 0 || token >= m->cfg.vocab_size) {
        if (logits)
            for (int i = 0; i < m->cfg.vocab_size; i++) logits[i] = NAN;
        return;
    }
    ThreadSave nb = threads_enter(s->w);
    forward_blocks(m, s->w, 1, 1, &token, s);
    if (logits) head_forward(m, s->w, 1, 1, logits, 1);
    threads_leave(nb);
}

int model_prefill(const Model *m, ModelState *s, const int32_t *tokens, int n, float *logits, Error *e)
{
    if (n < 1) return fail(e, "prefill needs at least one token");
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab_size)
            return fail(e, "token %d at position %d is outside the vocabulary (size %d)",
                        tokens[i], i, m->cfg.vocab_size);
    ThreadSave nb = threads_enter(s->w);
    for (int done = 0; done < n; done += PREFILL_CHUNK) {
        int T = n - done < PREFILL_CHUNK ? n - done : PREFILL_CHUNK;
        forward_blocks(m, s->w, 1, T, tokens + done, s);
        if (logits && done + T == n) head_forward(m, s->w, 1, T, logits, 1);
    }
    threads_leave(nb);
    return 0;
}
