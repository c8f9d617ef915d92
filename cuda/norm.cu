// cuda/norm.cu: LayerNorm, the GroupNorm + bonus + gate of TimeMix, and the per-channel sums
// (norm.cuh).  One warp per normalised row (a token's C channels, or a head's 64): the
// statistics are warp reductions by xor butterfly, which give every lane the same bits whatever
// the schedule; the per-channel parameter gradients go through colsum_acc_cuda.
#include "norm.cuh"
#include "grid.cuh"

typedef __nv_bfloat16 bf16;

namespace {

const int ROWS_PER_BLOCK = 8;       // warps per block in the row kernels
const int COLSUM_COLS = 32;         // columns per colsum block, one per lane (coalesced rows)
const int COLSUM_LANES = 32;        // row strides per column; summed in lane order at the end
const int HS = 64;                  // OPS_HEAD_SIZE


// Column c is summed by COLSUM_LANES threads, thread y taking rows y, y + COLSUM_LANES, ...
// in order; their partial sums are then added in y order.  No atomics: the same bits every run.
template <class TA, class TB>
__global__ void __launch_bounds__(COLSUM_COLS *COLSUM_LANES)
    colsum_kernel(float *dvec, const TA *a, const TB *b, size_t N, int C) {
    SHARED(float, part, [COLSUM_LANES][COLSUM_COLS + 1]);
    int c = blockIdx.x * COLSUM_COLS + threadIdx.x;
    float acc = 0.0f;
    if (c < C) {
#pragma unroll 4   // several loads in flight; the additions stay in row order
        for (size_t n = threadIdx.y; n < N; n += COLSUM_LANES) {
            size_t i = n * C + c;
            acc += b ? tof(a[i]) * tof(b[i]) : tof(a[i]);
        }
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float s = 0.0f;
        for (int y = 0; y < COLSUM_LANES; y++) s += part[y][threadIdx.x];
        dvec[c] += s;
    }
}

template <class TA, class TB>
cudaError_t colsum(float *dvec, const TA *a, const TB *b, size_t N, int C, cudaStream_t stream) {
    if (C <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    auto *k = colsum_kernel<TA, TB>;
    LAUNCH(k, (C + COLSUM_COLS - 1) / COLSUM_COLS, dim3(COLSUM_COLS, COLSUM_LANES), 0, stream)(dvec, a, b, N, C);
    return cudaGetLastError();
}

unsigned row_blocks(size_t rows) { return (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

template <class A>
__global__ void __launch_bounds__(ROWS_PER_BLOCK * 32)
    layernorm_fwd_kernel(A *resid_out, A *out, float *mean, float *rstd, const A *inp, const A *branch,
                         const A *weight, const A *bias, size_t N, int C, float eps) {
    size_t row = (size_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= N) return;   // the whole warp: no barrier below
    const A *x = inp + row * C;
    if (branch) {   // each lane reads back only the columns it wrote: no barrier needed
        for (int c = lane; c < C; c += 32) resid_out[row * C + c] = hadd(x[c], branch[row * C + c]);
        x = resid_out + row * C;
    }
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += tof(x[c]);
    float m = warp_sum(s) / C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = tof(x[c]) - m;
        ss += d * d;
    }
    float rs = rsqrtf(warp_sum(ss) / C + eps);
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = rs;
    }
    for (int c = lane; c < C; c += 32)
        put(out[row * C + c], (tof(x[c]) - m) * rs * tof(weight[c]) + tof(bias[c]));
}

template <class A>
__global__ void __launch_bounds__(ROWS_PER_BLOCK * 32)
    layernorm_bwd_kernel(A *dinp, float *scratch, const A *dout, const A *inp, const A *weight,
                         const float *mean, const float *rstd, size_t N, int C, int accumulate) {
    size_t row = (size_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= N) return;
    const A *x = inp + row * C, *dy = dout + row * C;
    float m = mean[row], rs = rstd[row], m1 = 0.0f, m2 = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float xh = (tof(x[c]) - m) * rs, dxh = tof(dy[c]) * tof(weight[c]);
        m1 += dxh;
        m2 += dxh * xh;
        scratch[row * C + c] = tof(dy[c]) * xh;
    }
    float f1 = warp_sum(m1) / C, f2 = warp_sum(m2) / C;
    for (int c = lane; c < C; c += 32) {
        float xh = (tof(x[c]) - m) * rs, dxh = tof(dy[c]) * tof(weight[c]);
        float v = (dxh - f1 - xh * f2) * rs;
        A *d = dinp + row * C + c;
        put(*d, accumulate ? tof(*d) + v : v);
    }
}

// One warp per (token, head); lane l holds channels l and l + 32 of the head.
template <class A>
__global__ void __launch_bounds__(ROWS_PER_BLOCK * 32)
    gn_fwd_kernel(A *out, float *mean, float *rstd, float *bonus, const A *y, const A *r, const A *kp,
                  const A *vm, const A *g, const A *lnx_w, const A *lnx_b, const A *r_k, size_t NH,
                  int H) {
    size_t nh = (size_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (nh >= NH) return;
    size_t base = (nh / H) * (size_t)H * HS + (nh % H) * HS;
    int c0 = (int)(nh % H) * HS;
    float yv[2], sb = 0.0f;
    for (int k = 0; k < 2; k++) {
        int j = lane + 32 * k;
        yv[k] = tof(y[base + j]);
        sb += tof(r[base + j]) * tof(kp[base + j]) * tof(r_k[c0 + j]);
    }
    float mu = warp_sum(yv[0] + yv[1]) / HS;
    float d0 = yv[0] - mu, d1 = yv[1] - mu;
    float rs = rsqrtf(warp_sum(d0 * d0 + d1 * d1) / HS + 64e-5f);
    float s = warp_sum(sb);
    if (lane == 0) {
        mean[nh] = mu;
        rstd[nh] = rs;
        bonus[nh] = s;
    }
    for (int k = 0; k < 2; k++) {
        int j = lane + 32 * k;
        size_t i = base + j;
        float o = ((yv[k] - mu) * rs * tof(lnx_w[c0 + j]) + tof(lnx_b[c0 + j]) + s * tof(vm[i])) * tof(g[i]);
        put(out[i], o);
    }
}

template <class A>
__global__ void __launch_bounds__(ROWS_PER_BLOCK * 32)
    gn_bwd_kernel(A *dy, A *dr, A *dkp, A *dvm, A *dg, const A *dout, float *scratch1,
                  float *scratch2, const A *y, const A *r, const A *kp, const A *vm, const A *g,
                  const float *mean, const float *rstd, const float *bonus, const A *lnx_w, const A *lnx_b,
                  const A *r_k, size_t NH, int H) {
    size_t nh = (size_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (nh >= NH) return;
    size_t base = (nh / H) * (size_t)H * HS + (nh % H) * HS;
    int c0 = (int)(nh % H) * HS;
    float fm = mean[nh], rs = rstd[nh], s = bonus[nh];
    float xh[2], gy[2], m1 = 0.0f, m2 = 0.0f, q = 0.0f;
    for (int k = 0; k < 2; k++) {
        int j = lane + 32 * k;
        size_t i = base + j;
        float dO = tof(dout[i]), w = tof(lnx_w[c0 + j]), v = tof(vm[i]);
        xh[k] = (tof(y[i]) - fm) * rs;
        gy[k] = dO * tof(g[i]);
        put(dg[i], dO * (xh[k] * w + tof(lnx_b[c0 + j]) + s * v));
        scratch1[i] = gy[k] * xh[k];
        float dxh = gy[k] * w;
        m1 += dxh;
        m2 += dxh * xh[k];
        q += gy[k] * v;
    }
    float f1 = warp_sum(m1) / HS, f2 = warp_sum(m2) / HS;
    q = warp_sum(q);
    for (int k = 0; k < 2; k++) {
        int j = lane + 32 * k;
        size_t i = base + j;
        float rv = tof(r[i]), kv = tof(kp[i]), rk = tof(r_k[c0 + j]);
        put(dy[i], (gy[k] * tof(lnx_w[c0 + j]) - f1 - xh[k] * f2) * rs);
        put(dvm[i], gy[k] * s);
        put(dr[i], q * kv * rk);
        put(dkp[i], q * rv * rk);
        scratch2[i] = q * rv * kv;
    }
}

} // namespace

cudaError_t colsum_acc_cuda(float *dvec, const float *a, const float *b, size_t N, int C, cudaStream_t stream) {
    return colsum(dvec, a, b, N, C, stream);
}
cudaError_t colsum_acc_cuda(float *dvec, const bf16 *a, const bf16 *b, size_t N, int C, cudaStream_t stream) {
    return colsum(dvec, a, b, N, C, stream);
}
cudaError_t colsum_acc_cuda(float *dvec, const bf16 *a, const float *b, size_t N, int C, cudaStream_t stream) {
    return colsum(dvec, a, b, N, C, stream);
}

template <class A>
cudaError_t layernorm_fwd_cuda(A *out, float *mean, float *rstd, const A *inp, const A *weight,
                               const A *bias, size_t N, int C, float eps, cudaStream_t stream) {
    if (C <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(layernorm_fwd_kernel<A>, row_blocks(N), ROWS_PER_BLOCK * 32, 0, stream)
    (nullptr, out, mean, rstd, inp, nullptr, weight, bias, N, C, eps);
    return cudaGetLastError();
}

template <class A>
cudaError_t residual_layernorm_fwd_cuda(A *resid_out, A *out, float *mean, float *rstd, const A *resid,
                                        const typename NoDeduce<A>::type *branch, const A *weight, const A *bias, size_t N, int C,
                                        float eps, cudaStream_t stream) {
    if (C <= 0 || !branch || !resid_out) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(layernorm_fwd_kernel<A>, row_blocks(N), ROWS_PER_BLOCK * 32, 0, stream)
    (resid_out, out, mean, rstd, resid, branch, weight, bias, N, C, eps);
    return cudaGetLastError();
}

template <class A>
cudaError_t layernorm_bwd_cuda(A *dinp, float *dweight, float *dbias, float *scratch, const A *dout,
                               const A *inp, const A *weight, const float *mean, const float *rstd, size_t N,
                               int C, int accumulate, cudaStream_t stream) {
    if (C <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(layernorm_bwd_kernel<A>, row_blocks(N), ROWS_PER_BLOCK * 32, 0, stream)
    (dinp, scratch, dout, inp, weight, mean, rstd, N, C, accumulate);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = colsum(dweight, scratch, (const float *)nullptr, N, C, stream);
    if (e == cudaSuccess) e = colsum(dbias, dout, (const A *)nullptr, N, C, stream);
    return e;
}

template <class A>
cudaError_t gn_bonus_gate_fwd_cuda(A *out, float *mean, float *rstd, float *bonus, const A *y, const A *r,
                                   const A *kp, const A *vm, const A *g, const A *lnx_w,
                                   const A *lnx_b, const A *r_k, size_t N, int H, cudaStream_t stream) {
    if (H <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(gn_fwd_kernel<A>, row_blocks(N * H), ROWS_PER_BLOCK * 32, 0, stream)
    (out, mean, rstd, bonus, y, r, kp, vm, g, lnx_w, lnx_b, r_k, N * H, H);
    return cudaGetLastError();
}

template <class A>
cudaError_t gn_bonus_gate_bwd_cuda(A *dy, A *dr, A *dkp, A *dvm, A *dg, float *dlnx_w, float *dlnx_b,
                                   float *dr_k, const A *dout, float *scratch1, float *scratch2, const A *y,
                                   const A *r, const A *kp, const A *vm, const A *g, const float *mean,
                                   const float *rstd, const float *bonus, const A *lnx_w, const A *lnx_b,
                                   const A *r_k, size_t N, int H, cudaStream_t stream) {
    if (H <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    int C = H * HS;
    LAUNCH(gn_bwd_kernel<A>, row_blocks(N * H), ROWS_PER_BLOCK * 32, 0, stream)
    (dy, dr, dkp, dvm, dg, dout, scratch1, scratch2, y, r, kp, vm, g, mean, rstd, bonus, lnx_w, lnx_b, r_k, N * H, H);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = colsum(dlnx_w, scratch1, (const float *)nullptr, N, C, stream);
    if (e == cudaSuccess) e = colsum(dlnx_b, dout, g, N, C, stream);
    if (e == cudaSuccess) e = colsum(dr_k, scratch2, (const float *)nullptr, N, C, stream);
    return e;
}

// The two activation types the backend runs with (norm.cuh).
#define INSTANTIATE(A)                                                                                             \
    template cudaError_t layernorm_fwd_cuda(A *, float *, float *, const A *, const A *, const A *, size_t, int,   \
                                            float, cudaStream_t);                                                  \
    template cudaError_t residual_layernorm_fwd_cuda(A *, A *, float *, float *, const A *, const A *, const A *,  \
                                                     const A *, size_t, int, float, cudaStream_t);                 \
    template cudaError_t layernorm_bwd_cuda(A *, float *, float *, float *, const A *, const A *, const A *,       \
                                            const float *, const float *, size_t, int, int, cudaStream_t);         \
    template cudaError_t gn_bonus_gate_fwd_cuda(A *, float *, float *, float *, const A *, const A *, const A *,   \
                                                const A *, const A *, const A *, const A *, const A *, size_t,     \
                                                int, cudaStream_t);                                                \
    template cudaError_t gn_bonus_gate_bwd_cuda(A *, A *, A *, A *, A *, float *, float *, float *, const A *,     \
                                                float *, float *, const A *, const A *, const A *, const A *,      \
                                                const A *, const float *, const float *, const float *, const A *, \
                                                const A *, const A *, size_t, int, cudaStream_t);
INSTANTIATE(bf16)
INSTANTIATE(float)
