// cuda/mix6.cu: the elementwise x060 ops (mix6.cuh).  Elementwise kernels are grid-stride loops;
// the GroupNorm takes one warp per (row, head) like norm.cu's; the per-channel parameter
// gradients go through colsum_acc_cuda (norm.cuh).
#include "mix6.cuh"
#include "grid.cuh"
#include "norm.cuh"

typedef __nv_bfloat16 bf16;

namespace {

const int THREADS = GRID_THREADS;
const int HEADS_PER_BLOCK = 8;    // warps per block in the GroupNorm kernels
const int HS = 64;                // OPS_HEAD_SIZE
const float GN_EPS = 64e-5f;      // 1e-5 * head_size_divisor^2

__device__ __forceinline__ float sigmoid1(float z) { return 1.0f / (1.0f + expf(-z)); }

unsigned blocks_for(size_t n) { return grid_blocks(n); }

struct LerpPtrs {
    bf16 *out[DDLERP6_MAX]; // out (forward), dm (backward)
    const bf16 *in[DDLERP6_MAX]; // m (forward), dout (backward)
    const bf16 *m[DDLERP6_MAX];  // backward
    const bf16 *maa[DDLERP6_MAX];
};

__global__ void __launch_bounds__(THREADS)
    shift_diff6_fwd_kernel(bf16 *xx, bf16 *xxx, const bf16 *h, const bf16 *init, const bf16 *maa_x, int T, int C,
                           size_t n) {
    FOR_EACH(i, n) {
        int c = (int)(i % C), t = (int)((i / C) % T);
        float hv = tof(h[i]), prev = t ? tof(h[i - C]) : init ? tof(init[c]) : 0.0f;
        bf16 d = tobf(prev - hv);
        xx[i] = d;
        xxx[i] = tobf(hv + tof(d) * tof(maa_x[c]));
    }
}

__global__ void __launch_bounds__(THREADS)
    shift_diff6_bwd_kernel(bf16 *dh, const bf16 *dxx, const bf16 *dxxx, const bf16 *maa_x, int T, int C, size_t n) {
    FOR_EACH(i, n) {
        int c = (int)(i % C), t = (int)((i / C) % T);
        float mx = tof(maa_x[c]), gx = tof(dxxx[i]);
        float g = gx - (tof(dxx[i]) + gx * mx); // h[t]: directly, and -1 through xx[t]
        if (t + 1 < T) g += tof(dxx[i + C]) + tof(dxxx[i + C]) * mx; // h[t] is h_prev of t+1
        dh[i] = tobf(tof(dh[i]) + g);
    }
}

__global__ void __launch_bounds__(THREADS)
    ddlerp6_fwd_kernel(LerpPtrs p, const bf16 *h, const bf16 *xx, int nf, int C, size_t n) {
    FOR_EACH(i, n) {
        int c = (int)(i % C);
        float hv = tof(h[i]), x = tof(xx[i]);
        for (int f = 0; f < nf; f++) p.out[f][i] = tobf(hv + x * (tof(p.maa[f][c]) + tof(p.in[f][i])));
    }
}

__global__ void __launch_bounds__(THREADS)
    ddlerp6_bwd_kernel(bf16 *dh, bf16 *dxx, LerpPtrs p, const bf16 *xx, int nf, int C, size_t n) {
    FOR_EACH(i, n) {
        int c = (int)(i % C);
        float x = tof(xx[i]), sh = 0.0f, sx = 0.0f;
        for (int f = 0; f < nf; f++) {
            float g = tof(p.in[f][i]); // read before dm_f (which may be dout_f) is written
            sh += g;
            sx += g * (tof(p.maa[f][c]) + tof(p.m[f][i]));
            p.out[f][i] = tobf(g * x);
        }
        dh[i] = tobf(tof(dh[i]) + sh);
        dxx[i] = tobf(tof(dxx[i]) + sx);
    }
}

__global__ void __launch_bounds__(THREADS) silu_fwd_kernel(bf16 *y, const bf16 *x, size_t n) {
    FOR_EACH(i, n) {
        float v = tof(x[i]);
        y[i] = tobf(v * sigmoid1(v));
    }
}
__global__ void __launch_bounds__(THREADS) silu_bwd_kernel(bf16 *dx, const bf16 *dy, const bf16 *x, size_t n) {
    FOR_EACH(i, n) {
        float v = tof(x[i]), s = sigmoid1(v);
        dx[i] = tobf(tof(dy[i]) * (s + v * s * (1.0f - s)));
    }
}

__global__ void __launch_bounds__(THREADS)
    cmix_gate6_fwd_kernel(bf16 *out, bf16 *rs, const bf16 *rpre, const bf16 *kv, size_t n) {
    FOR_EACH(i, n) {
        bf16 s = tobf(sigmoid1(tof(rpre[i])));
        rs[i] = s;
        out[i] = tobf(tof(out[i]) + tof(s) * tof(kv[i]));
    }
}
__global__ void __launch_bounds__(THREADS)
    cmix_gate6_bwd_kernel(bf16 *drpre, bf16 *dkv, const bf16 *dout, const bf16 *rs, const bf16 *kv, size_t n) {
    FOR_EACH(i, n) {
        float s = tof(rs[i]), g = tof(dout[i]);
        dkv[i] = tobf(g * s);
        drpre[i] = tobf(g * tof(kv[i]) * s * (1.0f - s));
    }
}

// One warp per (row, head); lane l holds channels l and l + 32.
__global__ void __launch_bounds__(HEADS_PER_BLOCK * 32)
    gn_gate6_fwd_kernel(bf16 *out, float *mean, float *rstd, const bf16 *y, const bf16 *g, const bf16 *lnx_w,
                        const bf16 *lnx_b, size_t NH, int H) {
    size_t nh = (size_t)blockIdx.x * HEADS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (nh >= NH) return; // the whole warp
    size_t base = (nh / H) * (size_t)H * HS + (nh % H) * HS;
    int c0 = (int)(nh % H) * HS;
    float yv[2] = {tof(y[base + lane]), tof(y[base + lane + 32])};
    float mu = warp_sum(yv[0] + yv[1]) / HS;
    float d0 = yv[0] - mu, d1 = yv[1] - mu;
    float rs = 1.0f / sqrtf(warp_sum(d0 * d0 + d1 * d1) / HS + GN_EPS);
    if (lane == 0) mean[nh] = mu, rstd[nh] = rs;
    for (int q = 0; q < 2; q++) {
        int j = lane + 32 * q;
        size_t i = base + j;
        out[i] = tobf(((yv[q] - mu) * rs * tof(lnx_w[c0 + j]) + tof(lnx_b[c0 + j])) * tof(g[i]));
    }
}

__global__ void __launch_bounds__(HEADS_PER_BLOCK * 32)
    gn_gate6_bwd_kernel(bf16 *dy, bf16 *dg, float *scratch1, float *scratch2, const bf16 *dout, const bf16 *y,
                        const bf16 *g, const float *mean, const float *rstd, const bf16 *lnx_w, const bf16 *lnx_b,
                        size_t NH, int H) {
    size_t nh = (size_t)blockIdx.x * HEADS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (nh >= NH) return;
    size_t base = (nh / H) * (size_t)H * HS + (nh % H) * HS;
    int c0 = (int)(nh % H) * HS;
    float mu = mean[nh], rs = rstd[nh], xh[2], dxh[2], m1 = 0.0f, m2 = 0.0f;
    for (int q = 0; q < 2; q++) {
        int j = lane + 32 * q;
        size_t i = base + j;
        float lw = tof(lnx_w[c0 + j]), dO = tof(dout[i]), gy = dO * tof(g[i]);
        xh[q] = (tof(y[i]) - mu) * rs;
        dg[i] = tobf(dO * (xh[q] * lw + tof(lnx_b[c0 + j])));
        scratch1[i] = gy * xh[q];
        scratch2[i] = gy;
        dxh[q] = gy * lw;
        m1 += dxh[q];
        m2 += dxh[q] * xh[q];
    }
    float f1 = warp_sum(m1) / HS, f2 = warp_sum(m2) / HS;
    for (int q = 0; q < 2; q++) dy[base + lane + 32 * q] = tobf((dxh[q] - f1 - xh[q] * f2) * rs);
}

cudaError_t pack(LerpPtrs *p, bf16 *const *out, const bf16 *const *in, const bf16 *const *m,
                 const bf16 *const *maa, int nf) {
    if (nf < 1 || nf > DDLERP6_MAX || !out || !in || !maa) return cudaErrorInvalidValue;
    *p = LerpPtrs();
    for (int f = 0; f < nf; f++) {
        p->out[f] = out[f], p->in[f] = in[f], p->maa[f] = maa[f];
        if (m) p->m[f] = m[f];
    }
    return cudaSuccess;
}

unsigned head_blocks(size_t nh) { return (unsigned)((nh + HEADS_PER_BLOCK - 1) / HEADS_PER_BLOCK); }

} // namespace

cudaError_t shift_diff6_fwd_cuda(bf16 *xx, bf16 *xxx, const bf16 *h, const bf16 *init, const bf16 *maa_x, int B,
                                 int T, int C, cudaStream_t stream) {
    if (B < 0 || T <= 0 || C <= 0) return cudaErrorInvalidValue;
    ELEMENTWISE(shift_diff6_fwd_kernel, (size_t)B * T * C, xx, xxx, h, init, maa_x, T, C);
}

cudaError_t shift_diff6_bwd_cuda(bf16 *dh, float *dmaa_x, const bf16 *dxx, const bf16 *dxxx, const bf16 *xx,
                                 const bf16 *maa_x, int B, int T, int C, cudaStream_t stream) {
    if (B < 0 || T <= 0 || C <= 0) return cudaErrorInvalidValue;
    size_t rows = (size_t)B * T, n = rows * C;
    if (n == 0) return cudaSuccess;
    LAUNCH(shift_diff6_bwd_kernel, blocks_for(n), THREADS, 0, stream)(dh, dxx, dxxx, maa_x, T, C, n);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = colsum_acc_cuda(dmaa_x, dxxx, xx, rows, C, stream);
    return e;
}

cudaError_t ddlerp6_fwd_cuda(bf16 *const *out, const bf16 *h, const bf16 *xx, const bf16 *const *maa,
                             const bf16 *const *m, int nf, size_t N, int C, cudaStream_t stream) {
    LerpPtrs p;
    if (C <= 0 || !m || pack(&p, out, m, nullptr, maa, nf) != cudaSuccess) return cudaErrorInvalidValue;
    ELEMENTWISE(ddlerp6_fwd_kernel, N * C, p, h, xx, nf, C);
}

cudaError_t ddlerp6_bwd_cuda(bf16 *dh, bf16 *dxx, bf16 *const *dm, float *const *dmaa, const bf16 *const *dout,
                             const bf16 *xx, const bf16 *const *maa, const bf16 *const *m, int nf, size_t N, int C,
                             cudaStream_t stream) {
    LerpPtrs p;
    if (C <= 0 || !m || !dmaa || pack(&p, dm, dout, m, maa, nf) != cudaSuccess) return cudaErrorInvalidValue;
    size_t n = N * C;
    if (n == 0) return cudaSuccess;
    cudaError_t e = cudaSuccess;
    // Before the kernel: dm_f may be dout_f, which it overwrites.
    for (int f = 0; f < nf && e == cudaSuccess; f++) e = colsum_acc_cuda(dmaa[f], dout[f], xx, N, C, stream);
    if (e != cudaSuccess) return e;
    LAUNCH(ddlerp6_bwd_kernel, blocks_for(n), THREADS, 0, stream)(dh, dxx, p, xx, nf, C, n);
    return cudaGetLastError();
}

cudaError_t silu_fwd_cuda(bf16 *y, const bf16 *x, size_t n, cudaStream_t stream) {
    ELEMENTWISE(silu_fwd_kernel, n, y, x);
}
cudaError_t silu_bwd_cuda(bf16 *dx, const bf16 *dy, const bf16 *x, size_t n, cudaStream_t stream) {
    ELEMENTWISE(silu_bwd_kernel, n, dx, dy, x);
}

cudaError_t gn_gate6_fwd_cuda(bf16 *out, float *mean, float *rstd, const bf16 *y, const bf16 *g, const bf16 *lnx_w,
                              const bf16 *lnx_b, size_t N, int H, cudaStream_t stream) {
    if (H <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(gn_gate6_fwd_kernel, head_blocks(N * H), HEADS_PER_BLOCK * 32, 0, stream)
    (out, mean, rstd, y, g, lnx_w, lnx_b, N * H, H);
    return cudaGetLastError();
}

cudaError_t gn_gate6_bwd_cuda(bf16 *dy, bf16 *dg, float *dlnx_w, float *dlnx_b, float *scratch1, float *scratch2,
                              const bf16 *dout, const bf16 *y, const bf16 *g, const float *mean, const float *rstd,
                              const bf16 *lnx_w, const bf16 *lnx_b, size_t N, int H, cudaStream_t stream) {
    if (H <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(gn_gate6_bwd_kernel, head_blocks(N * H), HEADS_PER_BLOCK * 32, 0, stream)
    (dy, dg, scratch1, scratch2, dout, y, g, mean, rstd, lnx_w, lnx_b, N * H, H);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = colsum_acc_cuda(dlnx_w, scratch1, (const float *)nullptr, N, H * HS, stream);
    if (e == cudaSuccess) e = colsum_acc_cuda(dlnx_b, scratch2, (const float *)nullptr, N, H * HS, stream);
    return e;
}

cudaError_t cmix_gate6_fwd_cuda(bf16 *out, bf16 *rs, const bf16 *rpre, const bf16 *kv, size_t n,
                                cudaStream_t stream) {
    ELEMENTWISE(cmix_gate6_fwd_kernel, n, out, rs, rpre, kv);
}
cudaError_t cmix_gate6_bwd_cuda(bf16 *drpre, bf16 *dkv, const bf16 *dout, const bf16 *rs, const bf16 *kv, size_t n,
                                cudaStream_t stream) {
    ELEMENTWISE(cmix_gate6_bwd_kernel, n, drpre, dkv, dout, rs, kv);
}
