/* ops6_cpu.c: the CPU twins of the x060 ops (ops6.h), in fp32.
 *
 * Upstream: RWKV-LM (BlinkDL/RWKV-LM at 524481d) RWKV-v5/src/model.py
 * (RWKV_Tmix_x060.jit_func / jit_func_2, RWKV_CMix_x060.forward) and
 * RWKV-v5/cuda/wkv6_cuda.cu.  The trainer runs these as bf16 PyTorch ops; here
 * everything stays fp32 (the reference the bf16 backends are measured
 * against, as for x070).  Per-channel sums go through colsum_acc (ops.h), so
 * results do not depend on the thread count. */
#include "ops6.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops.h"

#define HS OPS_HEAD_SIZE

static inline float sigmoid1(float z) { return 1.0f / (1.0f + expf(-z)); }

/* ------------------------------------------------------------ token shift */

/* jit_func: xx = self.time_shift(x) - x; xxx = x + xx * self.time_maa_x */
void shift_diff6_fwd(float *xx, float *xxx, const float *h, const float *init, const float *maa_x,
                     int B, int T, int C)
{
    size_t rows = (size_t)B * T;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) {
        int t = (int)(n % T);
        const float *hr = h + n * C;
        const float *prev = t ? hr - C : init;
        for (int c = 0; c < C; c++) {
            float d = (prev ? prev[c] : 0.0f) - hr[c];
            xx[n * C + c] = d;
            xxx[n * C + c] = hr[c] + d * maa_x[c];
        }
    }
}

void shift_diff6_bwd(float *dh, float *dmaa_x, const float *dxx, const float *dxxx, const float *xx,
                     const float *maa_x, int B, int T, int C)
{
    size_t rows = (size_t)B * T;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) {
        int t = (int)(n % T);
        for (int c = 0; c < C; c++) {
            size_t i = n * C + c;
            float g = dxxx[i] - (dxx[i] + dxxx[i] * maa_x[c]);      /* h[t]: directly, and -1 through xx[t] */
            if (t + 1 < T) g += dxx[i + C] + dxxx[i + C] * maa_x[c];   /* h[t] is h_prev of t+1 */
            dh[i] += g;
        }
    }
    colsum_acc(dmaa_x, dxxx, xx, rows, C);
}

/* ------------------------------------------------------------ data-dependent lerps */

/* jit_func: x_f = x + xx * (self.time_maa_f + m_f), f = w, k, v, r, g */
void ddlerp6_fwd(float *const *out, const float *h, const float *xx, const float *const *maa,
                 const float *const *m, int nf, size_t N, int C)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int f = 0; f < nf; f++)
            for (int c = 0; c < C; c++) {
                size_t i = n * C + c;
                out[f][i] = h[i] + xx[i] * (maa[f][c] + m[f][i]);
            }
}

void ddlerp6_bwd(float *dh, float *dxx, float *const *dm, float *const *dmaa, const float *const *dout,
                 const float *xx, const float *const *maa, const float *const *m, int nf, size_t N, int C)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t i = n * C + c;
            float sh = 0, sx = 0;
            for (int f = 0; f < nf; f++) {
                float g = dout[f][i];
                sh += g;
                sx += g * (maa[f][c] + m[f][i]);
                dm[f][i] = g * xx[i];
            }
            dh[i] += sh;
            dxx[i] += sx;
        }
    for (int f = 0; f < nf; f++) colsum_acc(dmaa[f], dm[f], NULL, N, C);   /* d maa_f = sum of dout_f * xx = dm_f */
}

/* ------------------------------------------------------------ silu */

/* F.silu(self.gate(xg)) */
void silu_fwd(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * sigmoid1(x[i]);
}

void silu_bwd(float *dx, const float *dy, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoid1(x[i]);
        dx[i] = dy[i] * (s + x[i] * s * (1.0f - s));
    }
}

/* ------------------------------------------------------------ WKV6 */

/* wkv6_cuda.cu kernel_forward: thread i owns row i of S; per step
 * y_i += r_j (u_j k_j v_i + S[i][j]) over j, then S[i][j] = S[i][j] d_j + k_j v_i,
 * with d = exp(-exp(w)) in fp32 (the kernel's __expf(-__expf(w))). */
void wkv6_fwd(float *y, float *state, const float *r, const float *k, const float *v, const float *w,
              const float *u, int B, int T, int H)
{
    int C = H * HS;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float S[HS * HS], d[HS];
        const float *uh = u + (size_t)h * HS;
        if (state) memcpy(S, state + (size_t)h * HS * HS, sizeof S);
        else memset(S, 0, sizeof S);
        for (int t = 0; t < T; t++) {
            size_t base = ((size_t)b * T + t) * C + (size_t)h * HS;
            const float *rt = r + base, *kt = k + base, *vt = v + base, *wt = w + base;
            for (int j = 0; j < HS; j++) d[j] = expf(-expf(wt[j]));
            for (int i = 0; i < HS; i++) {
                float *Si = S + i * HS, vi = vt[i], yi = 0;
#pragma omp simd reduction(+:yi)
                for (int j = 0; j < HS; j++) {
                    float x = kt[j] * vi;
                    yi += rt[j] * (uh[j] * x + Si[j]);
                    Si[j] = Si[j] * d[j] + x;
                }
                y[base + i] = yi;
            }
        }
        if (state) memcpy(state + (size_t)h * HS * HS, S, sizeof S);
    }
}

/* Per thread: S, R, P, Q (64x64 each), sb and sub (T x 64); plus gu per batch element (B x C). */
size_t wkv6_bwd_scratch_floats(int B, int T, int H, int nthreads)
{
    return (size_t)nthreads * (4 * HS * HS + 2 * (size_t)T * HS) + (size_t)B * H * HS;
}

/* wkv6_cuda.cu kernel_backward_101/102/103/201, one (batch, head) at a time and
 * vectorised over the key index j instead of one thread per j; no states are
 * saved by the forward, each gradient rebuilds its own by a sweep:
 *  - forward sweep (101): S = S_{t-1}; gr_t = sum_i gy_i (S[i][.] + u k_t v_i);
 *    gu += r_t k_t sum_i v_i gy_i; and for gw the state without its newest
 *    term, R_t = S_{t-2} d_{t-1}: sub_t = r_t sum_i gy_i R_t[i][.];
 *  - backward sweep (102, 103): P = dL/dS_t (P = 0 after the last step);
 *    gk_t = sum_i v_i (P[i][.] + u r_t gy_i), gv_t,i = sum_j k_j (P[i][j] + u_j r_j gy_i),
 *    then P = r_t gy_t + P d_t; and for gw Q_t = P_t - r_{t+1} gy_{t+1}:
 *    sb_t = k_t sum_i v_i Q_t[i][.];
 *  - 201: G_0 = 0, G_t = G_{t-1} + sb_{t-1} - sub_t (the gradient with respect
 *    to log d_t: all pairs s < t < tau), gw_t = -exp(w_t) G_t. */
void wkv6_bwd(float *dr, float *dk, float *dv, float *dw, float *du, float *scratch, const float *dy,
              const float *r, const float *k, const float *v, const float *w, const float *u,
              int B, int T, int H, int nthreads)
{
    int C = H * HS;
    size_t stride = 4 * HS * HS + 2 * (size_t)T * HS;
    float *gu_b = scratch + (size_t)nthreads * stride;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *S = scratch + (size_t)omp_get_thread_num() * stride;
        float *R = S + HS * HS, *P = R + HS * HS, *Q = P + HS * HS;
        float *sb = Q + HS * HS, *sub = sb + (size_t)T * HS;
        const float *uh = u + (size_t)h * HS;
        float d[HS] = { 0 }, dp[HS], acc[HS];
        double gu[HS] = { 0 };
        memset(S, 0, sizeof(float) * 2 * HS * HS);   /* S and R */
#define AT(a, t) ((a) + ((size_t)b * T + (t)) * C + (size_t)h * HS)
        for (int t = 0; t < T; t++) {
            const float *rt = AT(r, t), *kt = AT(k, t), *vt = AT(v, t), *wt = AT(w, t), *gy = AT(dy, t);
            memcpy(dp, d, sizeof dp);   /* d_{t-1} (unused at t = 0) */
            for (int j = 0; j < HS; j++) d[j] = expf(-expf(wt[j]));
            if (t >= 2) {   /* R_t = (R_{t-1} + v_{t-2} k_{t-2}^T) diag(d_{t-1}) */
                const float *kp = AT(k, t - 2), *vp = AT(v, t - 2);
                for (int i = 0; i < HS; i++) {
                    float *Ri = R + i * HS, vi = vp[i];
#pragma omp simd
                    for (int j = 0; j < HS; j++) Ri[j] = (Ri[j] + vi * kp[j]) * dp[j];
                }
            }
            double vg = 0;
            for (int i = 0; i < HS; i++) vg += (double)vt[i] * gy[i];
            float fvg = (float)vg;
            memset(acc, 0, sizeof acc);
            float sacc[HS];
            memset(sacc, 0, sizeof sacc);
            for (int i = 0; i < HS; i++) {
                const float *Si = S + i * HS, *Ri = R + i * HS;
                float gi = gy[i];
#pragma omp simd
                for (int j = 0; j < HS; j++) { acc[j] += gi * Si[j]; sacc[j] += gi * Ri[j]; }
            }
            float *grt = AT(dr, t);
            for (int j = 0; j < HS; j++) {
                grt[j] = acc[j] + uh[j] * kt[j] * fvg;
                gu[j] += (double)rt[j] * kt[j] * fvg;
                sub[(size_t)t * HS + j] = rt[j] * sacc[j];
            }
            for (int i = 0; i < HS; i++) {   /* S_t = S_{t-1} diag(d_t) + v_t k_t^T */
                float *Si = S + i * HS, vi = vt[i];
#pragma omp simd
                for (int j = 0; j < HS; j++) Si[j] = Si[j] * d[j] + vi * kt[j];
            }
        }
        for (int j = 0; j < HS; j++) gu_b[(size_t)b * C + (size_t)h * HS + j] = (float)gu[j];

        memset(P, 0, sizeof(float) * 2 * HS * HS);   /* P and Q */
        for (int t = T - 1; t >= 0; t--) {
            const float *rt = AT(r, t), *kt = AT(k, t), *vt = AT(v, t), *wt = AT(w, t), *gy = AT(dy, t);
            for (int j = 0; j < HS; j++) d[j] = expf(-expf(wt[j]));
            double vg = 0, kur = 0;
            for (int i = 0; i < HS; i++) vg += (double)vt[i] * gy[i];
            for (int j = 0; j < HS; j++) kur += (double)kt[j] * uh[j] * rt[j];
            float fvg = (float)vg, fkur = (float)kur;
            float qacc[HS];
            memset(acc, 0, sizeof acc);
            memset(qacc, 0, sizeof qacc);
            float *gvt = AT(dv, t);
            for (int i = 0; i < HS; i++) {
                const float *Pi = P + i * HS, *Qi = Q + i * HS;
                float vi = vt[i], s = 0;
#pragma omp simd reduction(+:s)
                for (int j = 0; j < HS; j++) {
                    acc[j] += vi * Pi[j];
                    qacc[j] += vi * Qi[j];
                    s += kt[j] * Pi[j];
                }
                gvt[i] = s + gy[i] * fkur;
            }
            float *gkt = AT(dk, t);
            for (int j = 0; j < HS; j++) {
                gkt[j] = acc[j] + uh[j] * rt[j] * fvg;
                sb[(size_t)t * HS + j] = kt[j] * qacc[j];
            }
            /* Q_{t-1} = (r_{t+1} gy_{t+1} + Q_t) diag(d_t), with no term past the end */
            const float *rn = t + 1 < T ? AT(r, t + 1) : NULL, *gn = t + 1 < T ? AT(dy, t + 1) : NULL;
            for (int i = 0; i < HS; i++) {
                float *Pi = P + i * HS, *Qi = Q + i * HS, gi = gy[i], gni = gn ? gn[i] : 0.0f;
#pragma omp simd
                for (int j = 0; j < HS; j++) {
                    Qi[j] = ((rn ? rn[j] * gni : 0.0f) + Qi[j]) * d[j];
                    Pi[j] = rt[j] * gi + Pi[j] * d[j];
                }
            }
        }
        float G[HS];
        memset(G, 0, sizeof G);
        float *gw0 = AT(dw, 0);
        for (int j = 0; j < HS; j++) gw0[j] = 0;
        for (int t = 1; t < T; t++) {
            const float *wt = AT(w, t);
            float *gwt = AT(dw, t);
            for (int j = 0; j < HS; j++) {
                G[j] += sb[(size_t)(t - 1) * HS + j] - sub[(size_t)t * HS + j];
                gwt[j] = -expf(wt[j]) * G[j];
            }
        }
#undef AT
    }
    /* gu summed over the batch in order (the wrapper's torch.sum(gu, 0)) */
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int b = 0; b < B; b++) s += gu_b[(size_t)b * C + c];
        du[c] += (float)s;
    }
}

/* ------------------------------------------------------------ GroupNorm, gate */

/* jit_func_2: self.ln_x(x) (GroupNorm(H, eps 1e-5 * head_size_divisor^2 = 64e-5)), then * g */
void gn_gate6_fwd(float *out, float *mean, float *rstd, const float *y, const float *g,
                  const float *lnx_w, const float *lnx_b, size_t N, int H)
{
    int C = H * HS;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < N * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        const float *yv = y + base;
        double s1 = 0, s2 = 0;
        for (int j = 0; j < HS; j++) s1 += yv[j];
        double mu = s1 / HS;
        for (int j = 0; j < HS; j++) { double dd = yv[j] - mu; s2 += dd * dd; }
        float fm = (float)mu, rs = (float)(1.0 / sqrt(s2 / HS + 64e-5));
        mean[nh] = fm;
        rstd[nh] = rs;
        for (int j = 0; j < HS; j++)
            out[base + j] = ((yv[j] - fm) * rs * lnx_w[c0 + j] + lnx_b[c0 + j]) * g[base + j];
    }
}

void gn_gate6_bwd(float *dy, float *dg, float *dlnx_w, float *dlnx_b, float *scratch1, float *scratch2, const float *dout,
                  const float *y, const float *g, const float *mean, const float *rstd,
                  const float *lnx_w, const float *lnx_b, size_t N, int H)
{
    int C = H * HS;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < N * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        float fm = mean[nh], rs = rstd[nh];
        double m1 = 0, m2 = 0;
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            float xh = (y[i] - fm) * rs, dO = dout[i];
            float gy = dO * g[i];
            dg[i] = dO * (xh * lnx_w[c0 + j] + lnx_b[c0 + j]);
            scratch1[i] = gy * xh;
            scratch2[i] = gy;
            float dxh = gy * lnx_w[c0 + j];
            m1 += dxh;
            m2 += (double)dxh * xh;
        }
        float f1 = (float)(m1 / HS), f2 = (float)(m2 / HS);
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            float xh = (y[i] - fm) * rs;
            dy[i] = (scratch2[i] * lnx_w[c0 + j] - f1 - xh * f2) * rs;
        }
    }
    colsum_acc(dlnx_w, scratch1, NULL, N, C);
    colsum_acc(dlnx_b, scratch2, NULL, N, C);
}

/* RWKV_CMix_x060.forward: torch.sigmoid(self.receptance(xr)) * kv */
void cmix_gate6_fwd(float *out, float *rs, const float *rpre, const float *kv, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = sigmoid1(rpre[i]);
        rs[i] = s;
        out[i] += s * kv[i];
    }
}

void cmix_gate6_bwd(float *drpre, float *dkv, const float *dout, const float *rs, const float *kv, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = rs[i];
        dkv[i] = dout[i] * s;
        drpre[i] = dout[i] * kv[i] * s * (1.0f - s);
    }
}
