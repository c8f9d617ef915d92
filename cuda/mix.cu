// cuda/mix.cu: the elementwise x070 ops (mix.cuh).  Elementwise kernels are grid-stride loops;
// key prep takes one warp per (token, head) like norm.cu's GroupNorm; the per-channel parameter
// gradients go through colsum_acc_cuda (norm.cuh).
#include "mix.cuh"
#include "grid.cuh"
#include "norm.cuh"

typedef __nv_bfloat16 bf16;

namespace {

const int THREADS = GRID_THREADS;
const int HEADS_PER_BLOCK = 8;      // warps per block in the key prep kernels
const int HS = 64;                  // OPS_HEAD_SIZE
const int EMB_COLS = 32;            // embedding backward: columns per block (one per lane)
const int EMB_OWNERS_Y = 8;         // token owners per block ...
const int EMB_OWNER_BLOCKS = 16;    // ... times blocks per column strip: 128 owners per column

unsigned blocks_for(size_t n) { return grid_blocks(n); }

struct MixPtrs {
    bf16 *out[SHIFT_MIX_MAX];
    const bf16 *in[SHIFT_MIX_MAX];   // dout in the backward
    const bf16 *mu[SHIFT_MIX_MAX];
};

__global__ void __launch_bounds__(THREADS)
    shift_mix_fwd_kernel(MixPtrs p, const bf16 *h, const bf16 *init, int nmu, int T, int C, size_t n) {
    FOR_EACH(idx, n) {
        int c = (int)(idx % C), t = (int)((idx / C) % T);
        bf16 hv = h[idx], prev = t ? h[idx - C] : init ? init[c] : tobf(0.0f);
        bf16 xx = __hsub_rn(prev, hv);
        for (int i = 0; i < nmu; i++) p.out[i][idx] = __hadd_rn(hv, __hmul_rn(xx, p.mu[i][c]));
    }
}

__global__ void __launch_bounds__(THREADS)
    shift_mix_bwd_kernel(bf16 *dh, float *scratch, MixPtrs p, const bf16 *h, int nmu, int T, int C, size_t n) {
    FOR_EACH(idx, n) {
        int c = (int)(idx % C), t = (int)((idx / C) % T);
        const bf16 one = tobf(1.0f);
        bf16 s = tobf(0.0f);
        for (int i = 0; i < nmu; i++) s = __hadd_rn(s, __hmul_rn(p.in[i][idx], __hsub_rn(one, p.mu[i][c])));
        if (t + 1 < T)
            for (int i = 0; i < nmu; i++) s = __hadd_rn(s, __hmul_rn(p.in[i][idx + C], p.mu[i][c]));
        dh[idx] = s;
        scratch[idx] = (t ? tof(h[idx - C]) : 0.0f) - tof(h[idx]);
    }
}

__global__ void __launch_bounds__(THREADS) tanh_fwd_kernel(bf16 *x, size_t n) {
    FOR_EACH(i, n) x[i] = tobf(tanhf(tof(x[i])));
}
__global__ void __launch_bounds__(THREADS) tanh_bwd_kernel(bf16 *dx, const bf16 *y, size_t n) {
    FOR_EACH(i, n) {
        float yv = tof(y[i]);
        dx[i] = tobf(tof(dx[i]) * (1.0f - yv * yv));
    }
}
__global__ void __launch_bounds__(THREADS) sigmoid_fwd_kernel(bf16 *x, size_t n) {
    FOR_EACH(i, n) x[i] = tobf(1.0f / (1.0f + expf(-tof(x[i]))));
}
__global__ void __launch_bounds__(THREADS) sigmoid_bwd_kernel(bf16 *dx, const bf16 *y, size_t n) {
    FOR_EACH(i, n) {
        float yv = tof(y[i]);
        dx[i] = tobf(tof(dx[i]) * yv * (1.0f - yv));
    }
}
__global__ void __launch_bounds__(THREADS) relu_sq_fwd_kernel(bf16 *x, size_t n) {
    FOR_EACH(i, n) {
        float p = fmaxf(tof(x[i]), 0.0f);
        x[i] = tobf(p * p);
    }
}
__global__ void __launch_bounds__(THREADS) relu_sq_bwd_kernel(bf16 *dx, const bf16 *act, size_t n) {
    FOR_EACH(i, n) dx[i] = tobf(tof(dx[i]) * 2.0f * sqrtf(fmaxf(tof(act[i]), 0.0f)));
}

__global__ void __launch_bounds__(THREADS)
    vres_fwd_kernel(bf16 *vm, float *gate, const bf16 *v, const bf16 *vfirst, size_t n) {
    FOR_EACH(i, n) {
        float gt = 1.0f / (1.0f + __expf(-gate[i])), vv = tof(v[i]);
        gate[i] = gt;
        vm[i] = tobf(vv + (tof(vfirst[i]) - vv) * gt);
    }
}
__global__ void __launch_bounds__(THREADS)
    vres_bwd_kernel(bf16 *dv, bf16 *dvfirst, bf16 *dpre, const bf16 *dvm, const float *gate, const bf16 *v,
                    const bf16 *vfirst, size_t n) {
    FOR_EACH(i, n) {
        float gt = gate[i], g = tof(dvm[i]);
        dv[i] = tobf(g - g * gt);
        dvfirst[i] = __hadd_rn(dvfirst[i], tobf(g * gt));
        dpre[i] = tobf(g * (tof(vfirst[i]) - tof(v[i])) * gt * (1.0f - gt));
    }
}
__global__ void __launch_bounds__(THREADS)
    vfirst_bwd_kernel(bf16 *dv, const bf16 *dvm, const bf16 *dvfirst, size_t n) {
    FOR_EACH(i, n) dv[i] = __hadd_rn(dvm[i], dvfirst[i]);
}

// One warp per (token, head); lane l holds channels l and l + 32.
__global__ void __launch_bounds__(HEADS_PER_BLOCK * 32)
    keyprep_fwd_kernel(bf16 *kk, bf16 *kp, float *inv, const bf16 *k, const bf16 *a, const bf16 *k_k,
                       const bf16 *k_a, size_t NH, int H) {
    size_t nh = (size_t)blockIdx.x * HEADS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (nh >= NH) return;   // the whole warp
    size_t base = (nh / H) * (size_t)H * HS + (nh % H) * HS;
    int c0 = (int)(nh % H) * HS;
    float u[2], ss = 0.0f;
    for (int q = 0; q < 2; q++) {
        int j = lane + 32 * q;
        u[q] = tof(k[base + j]) * tof(k_k[c0 + j]);
        ss += u[q] * u[q];
    }
    float iv = 1.0f / fmaxf(sqrtf(warp_sum(ss)), 1e-12f);
    if (lane == 0) inv[nh] = iv;
    for (int q = 0; q < 2; q++) {
        int j = lane + 32 * q;
        size_t i = base + j;
        float ka = tof(k_a[c0 + j]);
        kk[i] = tobf(u[q] * iv);
        kp[i] = tobf(tof(k[i]) * fmaf(tof(a[i]), ka, 1.0f - ka));
    }
}

__global__ void __launch_bounds__(HEADS_PER_BLOCK * 32)
    keyprep_bwd_kernel(bf16 *dk, bf16 *da, float *scratch1, float *scratch2, const bf16 *dkk, const bf16 *dkp,
                       const bf16 *k, const bf16 *a, const bf16 *kk, const float *inv, const bf16 *k_k,
                       const bf16 *k_a, size_t NH, int H) {
    size_t nh = (size_t)blockIdx.x * HEADS_PER_BLOCK + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (nh >= NH) return;
    size_t base = (nh / H) * (size_t)H * HS + (nh % H) * HS;
    int c0 = (int)(nh % H) * HS;
    float iv = inv[nh];
    float dot = warp_sum(tof(dkk[base + lane]) * tof(kk[base + lane]) +
                         tof(dkk[base + lane + 32]) * tof(kk[base + lane + 32]));
    for (int q = 0; q < 2; q++) {
        int j = lane + 32 * q;
        size_t i = base + j;
        float gkk = tof(dkk[i]), kj = tof(k[i]), aj = tof(a[i]), gkp = tof(dkp[i]);
        float kkw = tof(k_k[c0 + j]), ka = tof(k_a[c0 + j]);
        float gu = iv < 1e12f ? (gkk - tof(kk[i]) * dot) * iv : gkk * iv;   // F.normalize's clamp
        dk[i] = tobf(gkp * (1.0f + (aj - 1.0f) * ka) + gu * kkw);
        da[i] = tobf(tof(da[i]) + gkp * kj * ka);
        scratch1[i] = gu * kj;
        scratch2[i] = gkp * kj * (aj - 1.0f);
    }
}

__global__ void __launch_bounds__(THREADS)
    embedding_fwd_kernel(bf16 *out, const int32_t *tokens, const bf16 *emb, size_t N, int C) {
    FOR_EACH(idx, N * C) out[idx] = emb[(size_t)tokens[idx / C] * C + idx % C];
}

// Thread (x, y) of block (bx, by) owns column bx*32 + x of the tokens t with
// t % owners == by*EMB_OWNERS_Y + y, and adds their rows in row order.
__global__ void __launch_bounds__(EMB_COLS *EMB_OWNERS_Y)
    embedding_bwd_kernel(float *demb, const bf16 *dout, const int32_t *tokens, size_t N, int C) {
    int c = blockIdx.x * EMB_COLS + threadIdx.x;
    unsigned owners = EMB_OWNERS_Y * gridDim.y, me = blockIdx.y * EMB_OWNERS_Y + threadIdx.y;
    if (c >= C) return;
    for (size_t n = 0; n < N; n++) {
        unsigned t = (unsigned)tokens[n];
        if (t % owners == me) demb[(size_t)t * C + c] += tof(dout[n * C + c]);
    }
}

cudaError_t pack(MixPtrs *p, bf16 *const *out, const bf16 *const *in, const bf16 *const *mu, int nmu) {
    if (nmu < 1 || nmu > SHIFT_MIX_MAX) return cudaErrorInvalidValue;
    *p = MixPtrs();
    for (int i = 0; i < nmu; i++) {
        if (out) p->out[i] = out[i];
        if (in) p->in[i] = in[i];
        p->mu[i] = mu[i];
    }
    return cudaSuccess;
}

} // namespace

cudaError_t shift_mix_fwd_cuda(bf16 *const *out, const bf16 *h, const bf16 *init, const bf16 *const *mu, int nmu,
                               int B, int T, int C, cudaStream_t stream) {
    MixPtrs p;
    if (B < 0 || T <= 0 || C <= 0 || pack(&p, out, nullptr, mu, nmu) != cudaSuccess) return cudaErrorInvalidValue;
    size_t n = (size_t)B * T * C;
    if (n == 0) return cudaSuccess;
    LAUNCH(shift_mix_fwd_kernel, blocks_for(n), THREADS, 0, stream)(p, h, init, nmu, T, C, n);
    return cudaGetLastError();
}

cudaError_t shift_mix_bwd_cuda(bf16 *dh, float *const *dmu, float *scratch, const bf16 *const *dout, const bf16 *h,
                               const bf16 *const *mu, int nmu, int B, int T, int C, cudaStream_t stream) {
    MixPtrs p;
    if (B < 0 || T <= 0 || C <= 0 || pack(&p, nullptr, dout, mu, nmu) != cudaSuccess) return cudaErrorInvalidValue;
    size_t rows = (size_t)B * T, n = rows * C;
    if (n == 0) return cudaSuccess;
    LAUNCH(shift_mix_bwd_kernel, blocks_for(n), THREADS, 0, stream)(dh, scratch, p, h, nmu, T, C, n);
    cudaError_t e = cudaGetLastError();
    for (int i = 0; i < nmu && e == cudaSuccess; i++) e = colsum_acc_cuda(dmu[i], dout[i], scratch, rows, C, stream);
    return e;
}

cudaError_t tanh_fwd_cuda(bf16 *x, size_t n, cudaStream_t stream) { ELEMENTWISE(tanh_fwd_kernel, n, x); }
cudaError_t tanh_bwd_cuda(bf16 *dx, const bf16 *y, size_t n, cudaStream_t stream) {
    ELEMENTWISE(tanh_bwd_kernel, n, dx, y);
}
cudaError_t sigmoid_fwd_cuda(bf16 *x, size_t n, cudaStream_t stream) { ELEMENTWISE(sigmoid_fwd_kernel, n, x); }
cudaError_t sigmoid_bwd_cuda(bf16 *dx, const bf16 *y, size_t n, cudaStream_t stream) {
    ELEMENTWISE(sigmoid_bwd_kernel, n, dx, y);
}
cudaError_t relu_sq_fwd_cuda(bf16 *x, size_t n, cudaStream_t stream) { ELEMENTWISE(relu_sq_fwd_kernel, n, x); }
cudaError_t relu_sq_bwd_cuda(bf16 *dx, const bf16 *act, size_t n, cudaStream_t stream) {
    ELEMENTWISE(relu_sq_bwd_kernel, n, dx, act);
}
cudaError_t value_residual_fwd_cuda(bf16 *vm, float *gate, const bf16 *v, const bf16 *vfirst, size_t n,
                                    cudaStream_t stream) {
    ELEMENTWISE(vres_fwd_kernel, n, vm, gate, v, vfirst);
}
cudaError_t value_residual_bwd_cuda(bf16 *dv, bf16 *dvfirst, bf16 *dpre, const bf16 *dvm, const float *gate,
                                    const bf16 *v, const bf16 *vfirst, size_t n, cudaStream_t stream) {
    ELEMENTWISE(vres_bwd_kernel, n, dv, dvfirst, dpre, dvm, gate, v, vfirst);
}
cudaError_t value_first_bwd_cuda(bf16 *dv, const bf16 *dvm, const bf16 *dvfirst, size_t n, cudaStream_t stream) {
    ELEMENTWISE(vfirst_bwd_kernel, n, dv, dvm, dvfirst);
}

static unsigned head_blocks(size_t nh) { return (unsigned)((nh + HEADS_PER_BLOCK - 1) / HEADS_PER_BLOCK); }

cudaError_t keyprep_fwd_cuda(bf16 *kk, bf16 *kp, float *inv, const bf16 *k, const bf16 *a, const bf16 *k_k,
                             const bf16 *k_a, size_t N, int H, cudaStream_t stream) {
    if (H <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(keyprep_fwd_kernel, head_blocks(N * H), HEADS_PER_BLOCK * 32, 0, stream)
    (kk, kp, inv, k, a, k_k, k_a, N * H, H);
    return cudaGetLastError();
}

cudaError_t keyprep_bwd_cuda(bf16 *dk, bf16 *da, float *dk_k, float *dk_a, float *scratch1, float *scratch2,
                             const bf16 *dkk, const bf16 *dkp, const bf16 *k, const bf16 *a, const bf16 *kk,
                             const float *inv, const bf16 *k_k, const bf16 *k_a, size_t N, int H,
                             cudaStream_t stream) {
    if (H <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(keyprep_bwd_kernel, head_blocks(N * H), HEADS_PER_BLOCK * 32, 0, stream)
    (dk, da, scratch1, scratch2, dkk, dkp, k, a, kk, inv, k_k, k_a, N * H, H);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = colsum_acc_cuda(dk_k, scratch1, (const float *)nullptr, N, H * HS, stream);
    if (e == cudaSuccess) e = colsum_acc_cuda(dk_a, scratch2, (const float *)nullptr, N, H * HS, stream);
    return e;
}

cudaError_t embedding_fwd_cuda(bf16 *out, const int32_t *tokens, const bf16 *emb, size_t N, int C,
                               cudaStream_t stream) {
    if (C <= 0) return cudaErrorInvalidValue;
    size_t n = N * C;
    if (n == 0) return cudaSuccess;
    LAUNCH(embedding_fwd_kernel, blocks_for(n), THREADS, 0, stream)(out, tokens, emb, N, C);
    return cudaGetLastError();
}

cudaError_t embedding_bwd_cuda(float *demb, const bf16 *dout, const int32_t *tokens, size_t N, int C,
                               cudaStream_t stream) {
    if (C <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    dim3 grid((C + EMB_COLS - 1) / EMB_COLS, EMB_OWNER_BLOCKS), block(EMB_COLS, EMB_OWNERS_Y);
    LAUNCH(embedding_bwd_kernel, grid, block, 0, stream)(demb, dout, tokens, N, C);
    return cudaGetLastError();
}
