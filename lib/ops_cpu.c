/* ops_cpu.c: the CPU twins of the x070 kernels (ops.h), in fp32.
 *
 * Each op names the upstream code it follows (RWKV-LM-V7 = RWKV-Vibe/RWKV-LM-V7
 * at 665472d; its kernels equal BlinkDL/RWKV-LM RWKV-v7/train_temp's).  The
 * upstream kernels work in bf16 between ops; these keep fp32 throughout, which
 * is the reference the bf16 backends are measured against (doc/model.md).
 * Elementwise work and the WKV recurrence are parallel over rows or
 * (batch, head) with OpenMP; per-channel sums run column by column in row
 * order (colsum_acc), so results do not depend on the thread count. */
#include "ops.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define HS OPS_HEAD_SIZE
#define W_SCALE (-0.60653065971263342f)   /* -exp(-0.5): the decay's clamp, upstream's w_scale */

static inline float sigmoid1(float z) { return 1.0f / (1.0f + expf(-z)); }

/* ------------------------------------------------------------ reductions */

void colsum_acc(float *dvec, const float *a, const float *b, size_t N, int C)
{
    int nblk = (C + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * 16, nc = C - c0 < 16 ? C - c0 : 16;
        double acc[16] = { 0 };
        for (size_t n = 0; n < N; n++) {
            const float *ar = a + n * C + c0;
            if (b) {
                const float *br = b + n * C + c0;
                for (int c = 0; c < nc; c++) acc[c] += (double)ar[c] * br[c];
            } else {
                for (int c = 0; c < nc; c++) acc[c] += ar[c];
            }
        }
        for (int c = 0; c < nc; c++) dvec[c0 + c] += (float)acc[c];
    }
}

/* ------------------------------------------------------------ embedding */

/* src/model.py RWKV.forward: self.emb(idx) */
void embedding_fwd(float *out, const int32_t *tokens, const float *emb, size_t N, int C)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) memcpy(out + n * C, emb + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
}

/* Columns are split among threads and rows walked in order: no float atomics,
 * so repeated tokens add up in the same order every run. */
void embedding_bwd(float *demb, const float *dout, const int32_t *tokens, size_t N, int C)
{
    int nblk = (C + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * 16, nc = C - c0 < 16 ? C - c0 : 16;
        for (size_t n = 0; n < N; n++) {
            float *g = demb + (size_t)tokens[n] * C + c0;
            const float *d = dout + n * C + c0;
            for (int cc = 0; cc < nc; cc++) g[cc] += d[cc];
        }
    }
}

/* ------------------------------------------------------------ LayerNorm */

/* torch.nn.LayerNorm (ln0, ln1, ln2, ln_out in src/model.py) */
void layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                   const float *bias, size_t N, int C, float eps)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *xr = inp + n * C;
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++) s += xr[c];
        double mu = s / C;
        for (int c = 0; c < C; c++) { double d = xr[c] - mu; ss += d * d; }
        float m = (float)mu, rs = (float)(1.0 / sqrt(ss / C + eps));
        mean[n] = m;
        rstd[n] = rs;
        float *yr = out + n * C;
        for (int c = 0; c < C; c++) yr[c] = (xr[c] - m) * rs * weight[c] + bias[c];
    }
}

void layernorm_bwd(float *dinp, float *dweight, float *dbias, float *scratch, const float *dout,
                   const float *inp, const float *weight, const float *mean, const float *rstd,
                   size_t N, int C, int accumulate)
{
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *xr = inp + n * C, *dyr = dout + n * C;
        float *dxr = dinp + n * C, *tr = scratch + n * C;
        float m = mean[n], rs = rstd[n];
        double m1 = 0, m2 = 0;
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - m) * rs, dxh = dyr[c] * weight[c];
            m1 += dxh;
            m2 += (double)dxh * xh;
            tr[c] = dyr[c] * xh;
        }
        float f1 = (float)(m1 / C), f2 = (float)(m2 / C);
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - m) * rs, dxh = dyr[c] * weight[c];
            float v = (dxh - f1 - xh * f2) * rs;
            dxr[c] = accumulate ? dxr[c] + v : v;
        }
    }
    colsum_acc(dweight, scratch, NULL, N, C);
    colsum_acc(dbias, dout, NULL, N, C);
}

/* ------------------------------------------------------------ token shift */

/* cuda kernels rwkv7_tmix_mix6_bf16_v5 (TimeMix, six mu) and the lerp of
 * rwkv7_cmix_bf16_v5 (ChannelMix, one mu) */
void shift_mix_fwd(float *const *out, const float *h, const float *init, const float *const *mu,
                   int nmu, int B, int T, int C)
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

void shift_mix_bwd(float *dh, float *const *dmu, float *scratch, float *const *dout,
                   const float *h, const float *const *mu, int nmu, int B, int T, int C)
{
    size_t rows = (size_t)B * T;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < rows; n++) {
        int t = (int)(n % T);
        const float *hr = h + n * C;
        float *dhr = dh + n * C, *xx = scratch + n * C;
        for (int c = 0; c < C; c++) {
            float s = 0;
            for (int i = 0; i < nmu; i++) s += dout[i][n * C + c] * (1.0f - mu[i][c]);
            if (t + 1 < T)
                for (int i = 0; i < nmu; i++) s += dout[i][(n + 1) * C + c] * mu[i][c];
            dhr[c] = s;
            xx[c] = (t ? hr[c - C] : 0.0f) - hr[c];
        }
    }
    for (int i = 0; i < nmu; i++) colsum_acc(dmu[i], dout[i], scratch, rows, C);
}

/* ------------------------------------------------------------ LoRA activations */

/* src/model.py RWKV_Tmix_x070.forward: torch.tanh(xw @ self.w1) */
void tanh_fwd(float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

void tanh_bwd(float *dx, const float *y, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] *= 1.0f - y[i] * y[i];
}

/* torch.sigmoid(xg @ self.g1) and kernel rwkv7_tmix_a_gate_bf16 (a = sigmoid(a0 + xa a1 a2)) */
void sigmoid_fwd(float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = sigmoid1(x[i]);
}

void sigmoid_bwd(float *dx, const float *y, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] *= y[i] * (1.0f - y[i]);
}

/* ------------------------------------------------------------ value residual */

/* kernel rwkv7_tmix_vres_gate_bf16_v1 */
void value_residual_fwd(float *vm, float *gate, const float *v, const float *vfirst, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gt = sigmoid1(gate[i]);
        gate[i] = gt;
        vm[i] = v[i] + (vfirst[i] - v[i]) * gt;
    }
}

void value_residual_bwd(float *dv, float *dvfirst, float *dpre, const float *dvm, const float *gate,
                        const float *v, const float *vfirst, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gt = gate[i], g = dvm[i];
        dv[i] = g * (1.0f - gt);
        dvfirst[i] += g * gt;
        dpre[i] = g * (vfirst[i] - v[i]) * gt * (1.0f - gt);
    }
}

void value_first_bwd(float *dv, const float *dvm, const float *dvfirst, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dv[i] = dvm[i] + dvfirst[i];
}

/* ------------------------------------------------------------ key prep */

/* kernel rwkv7_tmix_kk_pre_bf16_v5 (upstream emits -kk and kk*a; the WKV here takes kk and a) */
void keyprep_fwd(float *kk, float *kp, float *inv, const float *k, const float *a, const float *k_k,
                 const float *k_a, size_t N, int H)
{
    int C = H * HS;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < N * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        double ss = 0;
        for (int j = 0; j < HS; j++) { float u = k[base + j] * k_k[c0 + j]; ss += (double)u * u; }
        float norm = (float)sqrt(ss);
        float iv = 1.0f / (norm > 1e-12f ? norm : 1e-12f);
        inv[nh] = iv;
        for (int j = 0; j < HS; j++) {
            float kj = k[base + j];
            kk[base + j] = kj * k_k[c0 + j] * iv;
            kp[base + j] = kj * (1.0f + (a[base + j] - 1.0f) * k_a[c0 + j]);
        }
    }
}

void keyprep_bwd(float *dk, float *da, float *dk_k, float *dk_a, float *scratch1, float *scratch2,
                 const float *dkk, const float *dkp, const float *k, const float *a, const float *kk,
                 const float *inv, const float *k_k, const float *k_a, size_t N, int H)
{
    int C = H * HS;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < N * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        float iv = inv[nh];
        double dot = 0;
        for (int j = 0; j < HS; j++) dot += (double)dkk[base + j] * kk[base + j];
        float fd = (float)dot;
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            float gkk = dkk[i];
            float gu = iv < 1e12f ? (gkk - kk[i] * fd) * iv : gkk * iv;   /* F.normalize's clamp */
            float kj = k[i], aj = a[i], gkp = dkp[i];
            dk[i] = gkp * (1.0f + (aj - 1.0f) * k_a[c0 + j]) + gu * k_k[c0 + j];
            da[i] += gkp * kj * k_a[c0 + j];
            scratch1[i] = gu * kj;
            scratch2[i] = gkp * kj * (aj - 1.0f);
        }
    }
    colsum_acc(dk_k, scratch1, NULL, N, C);
    colsum_acc(dk_a, scratch2, NULL, N, C);
}

/* ------------------------------------------------------------ WKV7 */

size_t wkv7_ckpt_floats(int B, int T, int H)
{
    return (size_t)B * H * ((T + WKV7_CHUNK - 1) / WKV7_CHUNK) * HS * HS;
}

size_t wkv7_bwd_scratch_floats(int nthreads)
{
    return (size_t)nthreads * ((WKV7_CHUNK + 1) * HS * HS + WKV7_CHUNK * HS);
}

/* cuda/rwkv7_clampw.cu forward (and _v3_for_h100): one fp32 state per
 * (batch, head), row i updated with its own sa_i.  Upstream stores the state
 * after every 16th step; here the state before it (the same checkpoints,
 * shifted by one chunk), which the backward replays forward. */
void wkv7_fwd(float *y, float *ckpt, float *state, const float *r, const float *w, const float *k,
              const float *v, const float *kk, const float *a, int B, int T, int H)
{
    int C = H * HS, nch = (T + WKV7_CHUNK - 1) / WKV7_CHUNK;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float S[HS * HS], d[HS], aa[HS], bb[HS];
        if (state) memcpy(S, state + (size_t)h * HS * HS, sizeof S);
        else memset(S, 0, sizeof S);
        for (int t = 0; t < T; t++) {
            if (ckpt && t % WKV7_CHUNK == 0)
                memcpy(ckpt + ((size_t)bh * nch + t / WKV7_CHUNK) * HS * HS, S, sizeof S);
            size_t base = ((size_t)b * T + t) * C + (size_t)h * HS;
            const float *rt = r + base, *wt = w + base, *kt = k + base, *vt = v + base;
            for (int j = 0; j < HS; j++) {
                d[j] = expf(W_SCALE * sigmoid1(wt[j]));
                aa[j] = -kk[base + j];
                bb[j] = kk[base + j] * a[base + j];
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

/* cuda/rwkv7_clampw.cu backward, same gradients.  Upstream walks back by
 * dividing by the decay (hence the clamp); here each 16-step chunk is
 * recomputed forward from its checkpoint (exact states), then walked backward. */
void wkv7_bwd(float *dr, float *dw, float *dk, float *dv, float *dkk, float *da, float *scratch,
              const float *dy, const float *r, const float *w, const float *k, const float *v,
              const float *kk, const float *a, const float *ckpt, int B, int T, int H, int nthreads)
{
    int C = H * HS, nch = (T + WKV7_CHUNK - 1) / WKV7_CHUNK;
    size_t stride = wkv7_bwd_scratch_floats(1);
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *Ss = scratch + (size_t)omp_get_thread_num() * stride;
        float *sas = Ss + (size_t)(WKV7_CHUNK + 1) * HS * HS;
        float dS[HS * HS], d[HS], aa[HS], bb[HS], sig[HS];
        memset(dS, 0, sizeof dS);
        for (int c = nch - 1; c >= 0; c--) {
            int t0 = c * WKV7_CHUNK, nt = T - t0 < WKV7_CHUNK ? T - t0 : WKV7_CHUNK;
            memcpy(Ss, ckpt + ((size_t)bh * nch + c) * HS * HS, sizeof(float) * HS * HS);
            for (int tt = 0; tt < nt; tt++) {
                size_t base = ((size_t)b * T + t0 + tt) * C + (size_t)h * HS;
                const float *kt = k + base, *vt = v + base;
                for (int j = 0; j < HS; j++) {
                    d[j] = expf(W_SCALE * sigmoid1(w[base + j]));
                    aa[j] = -kk[base + j];
                    bb[j] = kk[base + j] * a[base + j];
                }
                const float *P = Ss + (size_t)tt * HS * HS;
                float *Nx = Ss + (size_t)(tt + 1) * HS * HS;
                for (int i = 0; i < HS; i++) {
                    const float *Pi = P + i * HS;
                    float *Ni = Nx + i * HS;
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
                    sig[j] = sigmoid1(w[base + j]);
                    d[j] = expf(W_SCALE * sig[j]);
                    aa[j] = -kk[base + j];
                    bb[j] = kk[base + j] * a[base + j];
                }
                const float *P = Ss + (size_t)tt * HS * HS, *Nx = Ss + (size_t)(tt + 1) * HS * HS;
                const float *sa = sas + tt * HS;
                float drv[HS] = { 0 }, ddv[HS] = { 0 }, dkv[HS] = { 0 }, dbv[HS] = { 0 }, dav[HS] = { 0 };
                /* y_t = S_t r_t:  dS += dy r^T,  dr = S_t^T dy */
                for (int i = 0; i < HS; i++) {
                    float dyi = dyt[i];
                    float *dSi = dS + i * HS;
                    const float *Ni = Nx + i * HS;
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
                    float ai = a[base + j], kkj = kk[base + j];
                    dr[base + j] += drv[j];
                    dk[base + j] += dkv[j];
                    dw[base + j] = ddv[j] * d[j] * W_SCALE * sig[j] * (1.0f - sig[j]);
                    dkk[base + j] = -dav[j] + dbv[j] * ai;
                    da[base + j] = dbv[j] * kkj;
                }
            }
        }
    }
}

/* ------------------------------------------------------------ GroupNorm + bonus + gate */

/* kernel rwkv7_tmix_lnx_rkvres_xg_bf16_v1 */
void gn_bonus_gate_fwd(float *out, float *mean, float *rstd, float *bonus, const float *y,
                       const float *r, const float *kp, const float *vm, const float *g,
                       const float *lnx_w, const float *lnx_b, const float *r_k, size_t N, int H)
{
    int C = H * HS;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < N * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        const float *yv = y + base;
        double s1 = 0, s2 = 0, sb = 0;
        for (int j = 0; j < HS; j++) s1 += yv[j];
        double mu = s1 / HS;
        for (int j = 0; j < HS; j++) { double dd = yv[j] - mu; s2 += dd * dd; }
        for (int j = 0; j < HS; j++) sb += (double)r[base + j] * kp[base + j] * r_k[c0 + j];
        float fm = (float)mu, rs = (float)(1.0 / sqrt(s2 / HS + 64e-5)), s = (float)sb;
        mean[nh] = fm;
        rstd[nh] = rs;
        bonus[nh] = s;
        for (int j = 0; j < HS; j++)
            out[base + j] = ((yv[j] - fm) * rs * lnx_w[c0 + j] + lnx_b[c0 + j] + s * vm[base + j]) * g[base + j];
    }
}

void gn_bonus_gate_bwd(float *dy, float *dr, float *dkp, float *dvm, float *dg, float *dlnx_w,
                       float *dlnx_b, float *dr_k, float *dout, float *scratch1, float *scratch2,
                       const float *y, const float *r, const float *kp, const float *vm, const float *g,
                       const float *mean, const float *rstd, const float *bonus, const float *lnx_w,
                       const float *lnx_b, const float *r_k, size_t N, int H)
{
    int C = H * HS;
#pragma omp parallel for schedule(static)
    for (size_t nh = 0; nh < N * H; nh++) {
        size_t base = (nh / H) * C + (nh % H) * HS;
        int c0 = (int)(nh % H) * HS;
        float fm = mean[nh], rs = rstd[nh], s = bonus[nh];
        double m1 = 0, m2 = 0, q = 0;
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            float xh = (y[i] - fm) * rs, dO = dout[i];
            float gy = dO * g[i];
            dg[i] = dO * (xh * lnx_w[c0 + j] + lnx_b[c0 + j] + s * vm[i]);
            dout[i] = gy;                          /* now holds d(pre-gate) */
            scratch1[i] = gy * xh;
            float dxh = gy * lnx_w[c0 + j];
            m1 += dxh;
            m2 += (double)dxh * xh;
            q += (double)gy * vm[i];
        }
        float f1 = (float)(m1 / HS), f2 = (float)(m2 / HS), fq = (float)q;
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            float xh = (y[i] - fm) * rs, gy = dout[i];
            dy[i] = (gy * lnx_w[c0 + j] - f1 - xh * f2) * rs;
            dvm[i] = gy * s;
            dr[i] = fq * kp[i] * r_k[c0 + j];
            dkp[i] = fq * r[i] * r_k[c0 + j];
            scratch2[i] = fq * r[i] * kp[i];
        }
    }
    colsum_acc(dlnx_w, scratch1, NULL, N, C);
    colsum_acc(dlnx_b, dout, NULL, N, C);
    colsum_acc(dr_k, scratch2, NULL, N, C);
}

/* ------------------------------------------------------------ ChannelMix activation */

/* kernel rwkv7_cmix_bf16_v5: act = relu(mixed Kw^T)^2 */
void relu_sq_fwd(float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float p = x[i] > 0 ? x[i] : 0.0f;
        x[i] = p * p;
    }
}

void relu_sq_bwd(float *dx, const float *act, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] *= 2.0f * sqrtf(act[i]);
}

/* ------------------------------------------------------------ cross entropy + L2Wrap */

/* expf for x <= 0 that vectorizes (Cephes polynomial, about 1 ulp); glibc's
 * expf is scalar without -ffast-math and took ~10% of a training step.
 * A NaN x gives NaN.  n is clamped before the integer conversion, so that
 * NaN (and x > 88) never reach (int32_t) or a negative left shift (D14);
 * for x in [-87, 0], n lies in [-126, 0] and the clamp changes nothing. */
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
    float e = n > -127.0f ? n : -127.0f;   /* false for NaN: -127 */
    e = e < 127.0f ? e : 127.0f;
    union { int32_t i; float f; } sc = { .i = ((int32_t)e + 127) << 23 };
    return yv * sc.f;
}

/* kernel rwkv7_l2wrap_ce_bf16_v2 (src/model.py L2Wrap): one pass per row */
static void xent_rows(float *z, double *row_loss, const int32_t *y, size_t rows, size_t R, int V, int grad)
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

void xent_l2wrap_fwd(double *row_loss, const float *logits, const int32_t *targets, size_t N, int V)
{
    xent_rows((float *)logits, row_loss, targets, N, N, V, 0);   /* grad 0: logits only read */
}

void xent_l2wrap_fwdbwd(float *logits, double *row_loss, const int32_t *targets, size_t N, size_t R, int V)
{
    xent_rows(logits, row_loss, targets, N, R, V, 1);
}

/* ------------------------------------------------------------ Adam */

/* DeepSpeed FusedAdam (csrc/adam/multi_tensor_adam.cu), element by element,
 * over [lo, hi), one function per (AdamW, bf16 copy) variant so the loop body
 * has no run-time flags.  With AVX2 the bulk runs 8 lanes at a time with the
 * same IEEE operations in the same order (sqrt and division are correctly
 * rounded in both); which elements take the vector path depends only on the
 * index, so runs repeat bit for bit.  (The compiler does not vectorise the
 * scalar loop itself: sqrtf's errno path needs -fno-math-errno, which the
 * Makefile does not pass.) */
typedef struct {
    float *pw, *pm, *pv, *pb;
    const float *pg;
    float grad_scale, beta1, beta2, eps, bc1, bc2, lr_g, wd;
} AdamArgs;

#ifdef __AVX2__
#include <immintrin.h>
#define ADAM_VECTOR(ADAMW, COPY)                                                            \
    {                                                                                       \
        const __m256 vs = _mm256_set1_ps(grad_scale), vb1 = _mm256_set1_ps(beta1);          \
        const __m256 vb2 = _mm256_set1_ps(beta2), v1b1 = _mm256_set1_ps(1 - beta1);         \
        const __m256 v1b2 = _mm256_set1_ps(1 - beta2), vbc1 = _mm256_set1_ps(bc1);          \
        const __m256 vbc2 = _mm256_set1_ps(bc2), veps = _mm256_set1_ps(eps);                \
        const __m256 vlr = _mm256_set1_ps(lr_g), vwd = _mm256_set1_ps(wd);                  \
        for (; i + 8 <= hi; i += 8) {                                                       \
            __m256 g = _mm256_mul_ps(_mm256_loadu_ps(pg + i), vs), w = _mm256_loadu_ps(pw + i); \
            if (!(ADAMW)) g = _mm256_add_ps(g, _mm256_mul_ps(vwd, w));                      \
            __m256 m = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(pm + i)), _mm256_mul_ps(v1b1, g)); \
            __m256 v = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(pv + i)),          \
                                     _mm256_mul_ps(_mm256_mul_ps(v1b2, g), g));            \
            __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_div_ps(v, vbc2)), veps);       \
            __m256 up = _mm256_div_ps(_mm256_div_ps(m, vbc1), den);                         \
            if (ADAMW) up = _mm256_add_ps(up, _mm256_mul_ps(vwd, w));                       \
            __m256 nw = _mm256_sub_ps(w, _mm256_mul_ps(vlr, up));                           \
            _mm256_storeu_ps(pw + i, nw);                                                   \
            _mm256_storeu_ps(pm + i, m);                                                    \
            _mm256_storeu_ps(pv + i, v);                                                    \
            if (COPY) {   /* bf16 round-to-nearest-even, NaN kept quiet (f32_to_bf16) */    \
                __m256i u = _mm256_castps_si256(nw), hi16 = _mm256_srli_epi32(u, 16);       \
                __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), \
                                              _mm256_and_si256(hi16, _mm256_set1_epi32(1))), 16); \
                __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), \
                                                 _mm256_set1_epi32(0x7f800000));            \
                __m256i q = _mm256_blendv_epi8(r, _mm256_or_si256(hi16, _mm256_set1_epi32(0x40)), nan); \
                _mm256_storeu_ps(pb + i, _mm256_castsi256_ps(_mm256_slli_epi32(q, 16)));    \
            }                                                                               \
        }                                                                                   \
    }
#else
#define ADAM_VECTOR(ADAMW, COPY)
#endif

#define ADAM_KERNEL(NAME, ADAMW, COPY)                                                      \
static void NAME(const AdamArgs *A, size_t lo, size_t hi)                                   \
{                                                                                           \
    float *restrict pw = A->pw, *restrict pm = A->pm, *restrict pv = A->pv, *restrict pb = A->pb; \
    const float *restrict pg = A->pg;                                                       \
    const float grad_scale = A->grad_scale, beta1 = A->beta1, beta2 = A->beta2, eps = A->eps; \
    const float bc1 = A->bc1, bc2 = A->bc2, lr_g = A->lr_g, wd = A->wd;                     \
    size_t i = lo;                                                                          \
    ADAM_VECTOR(ADAMW, COPY)                                                                \
    for (; i < hi; i++) {                                                                   \
        float gi = pg[i] * grad_scale, wi = pw[i];                                          \
        if (!(ADAMW)) gi = gi + wd * wi;   /* L2 mode: wd is 0, kept for the formula */     \
        float mi = beta1 * pm[i] + (1 - beta1) * gi;                                        \
        float vi = beta2 * pv[i] + (1 - beta2) * gi * gi;                                   \
        float denom = sqrtf(vi / bc2) + eps;                                                \
        float update = (mi / bc1) / denom;                                                  \
        if (ADAMW) update = update + wd * wi;                                               \
        float nw = wi - lr_g * update;                                                      \
        pw[i] = nw;                                                                         \
        pm[i] = mi;                                                                         \
        pv[i] = vi;                                                                         \
        if (COPY) {   /* bf16 round-to-nearest-even as f32_to_bf16, NaN kept */             \
            union { float f; uint32_t u; } bb = { nw };                                     \
            uint32_t r = (bb.u + 0x7fffu + ((bb.u >> 16) & 1)) >> 16;                       \
            uint32_t q = (bb.u & 0x7fffffffu) > 0x7f800000u ? ((bb.u >> 16) | 0x40) : r;     \
            bb.u = q << 16;                                                                 \
            pb[i] = bb.f;                                                                   \
        }                                                                                   \
    }                                                                                       \
}
ADAM_KERNEL(adam_l2, 0, 0)
ADAM_KERNEL(adam_l2_copy, 0, 1)
ADAM_KERNEL(adam_w, 1, 0)
ADAM_KERNEL(adam_w_copy, 1, 1)

void adam_update(float *w, float *m, float *v, float *w_bf16, const float *g, size_t n, float grad_scale,
                 float lr, float beta1, float beta2, float eps, float bc1, float bc2, float wd, int adamw)
{
    AdamArgs A = { w, m, v, w_bf16, g, grad_scale, beta1, beta2, eps, bc1, bc2, lr, wd };
    void (*kern)(const AdamArgs *, size_t, size_t) =
        adamw ? (w_bf16 ? adam_w_copy : adam_w) : (w_bf16 ? adam_l2_copy : adam_l2);
    if (n <= 65536) { kern(&A, 0, n); return; }
    /* Element-wise, so the split does not change any result. */
    #pragma omp parallel
    {
        size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        size_t chunk = (n / nt + 15) & ~(size_t)15;
        size_t lo = t * chunk < n ? t * chunk : n, hi = lo + chunk < n ? lo + chunk : n;
        if (t == nt - 1) hi = n;
        kern(&A, lo, hi);
    }
}
