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

template <class A> struct MixPtrs {
    A *out[SHIFT_MIX_MAX];
    const A *in[SHIFT_MIX_MAX];   // dout in the backward
    const A *mu[SHIFT_MIX_MAX];
};

template <class A>
__global__ void __launch_bounds__(THREADS)
    shift_mix_fwd_kernel(MixPtrs<A> p, const A *h, const A *init, int nmu, int T, int C, size_t n) {
    FOR_EACH(idx, n) {
        int c = (int)(idx % C), t = (int)((idx / C) % T);
        A zero, hv = h[idx];
        put(zero, 0.0f);
        A prev = t ? h[idx - C] : init ? init[c] : zero;
        A xx = hsub(prev, hv);
        for (int i = 0; i < nmu; i++) p.out[i][idx] = hadd(hv, hmul(xx, p.mu[i][c]));
    }
}

template <class A>
__global__ void __launch_bounds__(THREADS)
    shift_mix_bwd_kernel(A *dh, float *scratch, MixPtrs<A> p, const A *h, int nmu, int T, int C, size_t n) {
    FOR_EACH(idx, n) {
        int c = (int)(idx % C), t = (int)((idx / C) % T);
        A one, s;
        put(one, 1.0f);
        put(s, 0.0f);
        for (int i = 0; i < nmu; i++) s = hadd(s, hmul(p.in[i][idx], hsub(one, p.mu[i][c])));
        if (t + 1 < T)
            for (int i = 0; i < nmu; i++) s = hadd(s, hmul(p.in[i][idx + C], p.mu[i][c]));
        dh[idx] = s;
        scratch[idx] = (t ? tof(h[idx - C]) : 0.0f) - tof(h[idx]);
    }
}

template <class A>
__global__ void __launch_bounds__(THREADS) tanh_fwd_kernel(A *x, size_t n) {
    FOR_EACH(i, n) put(x[i], tanhf(tof(x[i])));
}
template <class A>
__global__ void __launch_bounds__(THREADS) tanh_bwd_kernel(A *dx, const A *y, size_t n) {
    FOR_EACH(i, n) {
        float yv = tof(y[i]);
        put(dx[i], tof(dx[i]) * (1.0f - yv * yv));
    }
}
template <class A>
__global__ void __launch_bounds__(THREADS) sigmoid_fwd_kernel(A *x, size_t n) {
    FOR_EACH(i, n) put(x[i], 1.0f / (1.0f + expf(-tof(x[i]))));
}
template <class A>
__global__ void __launch_bounds__(THREADS) sigmoid_bwd_kernel(A *dx, const A *y, size_t n) {
    FOR_EACH(i, n) {
        float yv = tof(y[i]);
        put(dx[i], tof(dx[i]) * yv * (1.0f - yv));
    }
}
template <class A>
__global__ void __launch_bounds__(THREADS) relu_sq_fwd_kernel(A *x, size_t n) {
    FOR_EACH(i, n) {
        float p = fmaxf(tof(x[i]), 0.0f);
        put(x[i], p * p);
    }
}
template <class A>
__global__ void __launch_bounds__(THREADS) relu_sq_bwd_kernel(A *dx, const A *act, size_t n) {
    FOR_EACH(i, n) put(dx[i], tof(dx[i]) * 2.0f * sqrtf(fmaxf(tof(act[i]), 0.0f)));
}

template <class A>
__global__ void __launch_bounds__(THREADS)
    vres_fwd_kernel(A *vm, float *gate, const A *v, const A *vfirst, size_t n) {
    FOR_EACH(i, n) {
        float gt = 1.0f / (1.0f + __expf(-gate[i])), vv = tof(v[i]);
        gate[i] = gt;
        put(vm[i], vv + (tof(vfirst[i]) - vv) * gt);
    }
}
template <class A>
__global__ void __launch_bounds__(THREADS)
    vres_bwd_kernel(A *dv, A *dvfirst, A *dpre, const A *dvm, const float *gate, const A *v,
                    const A *vfirst, size_t n) {
    FOR_EACH(i, n) {
        float gt = gate[i], g = tof(dvm[i]);
        put(dv[i], g - g * gt);
        dvfirst[i] = hadd(dvfirst[i], stored<A>(g * gt));
        put(dpre[i], g * (tof(vfirst[i]) - tof(v[i])) * gt * (1.0f - gt));
    }
}
template <class A>
__global__ void __launch_bounds__(THREADS)
    vfirst_bwd_kernel(A *dv, const A *dvm, const A *dvfirst, size_t n) {
    FOR_EACH(i, n) dv[i] = hadd(dvm[i], dvfirst[i]);
}

// One warp per (token, head); lane l holds channels l and l + 32.
template <class A>
__global__ void __launch_bounds__(HEADS_PER_BLOCK * 32)
    keyprep_fwd_kernel(A *kk, A *kp, float *inv, const A *k, const A *a, const A *k_k,
                       const A *k_a, size_t NH, int H) {
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
        put(kk[i], u[q] * iv);
        put(kp[i], tof(k[i]) * fmaf(tof(a[i]), ka, 1.0f - ka));
    }
}

template <class A>
__global__ void __launch_bounds__(HEADS_PER_BLOCK * 32)
    keyprep_bwd_kernel(A *dk, A *da, float *scratch1, float *scratch2, const A *dkk, const A *dkp,
                       const A *k, const A *a, const A *kk, const float *inv, const A *k_k,
                       const A *k_a, size_t NH, int H) {
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
        put(dk[i], gkp * (1.0f + (aj - 1.0f) * ka) + gu * kkw);
        put(da[i], tof(da[i]) + gkp * kj * ka);
        scratch1[i] = gu * kj;
        scratch2[i] = gkp * kj * (aj - 1.0f);
    }
}

template <class A>
__global__ void __launch_bounds__(THREADS)
    embedding_fwd_kernel(A *out, const int32_t *tokens, const A *emb, size_t N, int C) {
    FOR_EACH(idx, N * C) out[idx] = emb[(size_t)tokens[idx / C] * C + idx % C];
}

// Thread (x, y) of block (bx, by) owns column bx*32 + x of the tokens t with
// t % owners == by*EMB_OWNERS_Y + y, and adds their rows in row order.
template <class A>
__global__ void __launch_bounds__(EMB_COLS *EMB_OWNERS_Y)
    embedding_bwd_kernel(float *demb, const A *dout, const int32_t *tokens, size_t N, int C) {
    int c = blockIdx.x * EMB_COLS + threadIdx.x;
    unsigned owners = EMB_OWNERS_Y * gridDim.y, me = blockIdx.y * EMB_OWNERS_Y + threadIdx.y;
    if (c >= C) return;
    for (size_t n = 0; n < N; n++) {
        unsigned t = (unsigned)tokens[n];
        if (t % owners == me) demb[(size_t)t * C + c] += tof(dout[n * C + c]);
    }
}

template <class A> cudaError_t pack(MixPtrs<A> *p, A *const *out, const A *const *in, const A *const *mu, int nmu) {
    if (nmu < 1 || nmu > SHIFT_MIX_MAX) return cudaErrorInvalidValue;
    *p = MixPtrs<A>();
    for (int i = 0; i < nmu; i++) {
        if (out) p->out[i] = out[i];
        if (in) p->in[i] = in[i];
        p->mu[i] = mu[i];
    }
    return cudaSuccess;
}

} // namespace

template <class A>
cudaError_t shift_mix_fwd_cuda(A *const *out, const A *h, const typename NoDeduce<A>::type *init, const A *const *mu, int nmu,
                               int B, int T, int C, cudaStream_t stream) {
    MixPtrs<A> p;
    if (B < 0 || T <= 0 || C <= 0 || pack<A>(&p, out, nullptr, mu, nmu) != cudaSuccess) return cudaErrorInvalidValue;
    size_t n = (size_t)B * T * C;
    if (n == 0) return cudaSuccess;
    LAUNCH(shift_mix_fwd_kernel<A>, blocks_for(n), THREADS, 0, stream)(p, h, init, nmu, T, C, n);
    return cudaGetLastError();
}

template <class A>
cudaError_t shift_mix_bwd_cuda(A *dh, float *const *dmu, float *scratch, const A *const *dout, const A *h,
                               const A *const *mu, int nmu, int B, int T, int C, cudaStream_t stream) {
    MixPtrs<A> p;
    if (B < 0 || T <= 0 || C <= 0 || pack<A>(&p, nullptr, dout, mu, nmu) != cudaSuccess) return cudaErrorInvalidValue;
    size_t rows = (size_t)B * T, n = rows * C;
    if (n == 0) return cudaSuccess;
    LAUNCH(shift_mix_bwd_kernel<A>, blocks_for(n), THREADS, 0, stream)(dh, scratch, p, h, nmu, T, C, n);
    cudaError_t e = cudaGetLastError();
    for (int i = 0; i < nmu && e == cudaSuccess; i++) e = colsum_acc_cuda(dmu[i], dout[i], scratch, rows, C, stream);
    return e;
}

template <class A>
cudaError_t tanh_fwd_cuda(A *x, size_t n, cudaStream_t stream) { ELEMENTWISE(tanh_fwd_kernel<A>, n, x); }
template <class A>
cudaError_t tanh_bwd_cuda(A *dx, const A *y, size_t n, cudaStream_t stream) {
    ELEMENTWISE(tanh_bwd_kernel<A>, n, dx, y);
}
template <class A>
cudaError_t sigmoid_fwd_cuda(A *x, size_t n, cudaStream_t stream) { ELEMENTWISE(sigmoid_fwd_kernel<A>, n, x); }
template <class A>
cudaError_t sigmoid_bwd_cuda(A *dx, const A *y, size_t n, cudaStream_t stream) {
    ELEMENTWISE(sigmoid_bwd_kernel<A>, n, dx, y);
}
template <class A>
cudaError_t relu_sq_fwd_cuda(A *x, size_t n, cudaStream_t stream) { ELEMENTWISE(relu_sq_fwd_kernel<A>, n, x); }
template <class A>
cudaError_t relu_sq_bwd_cuda(A *dx, const A *act, size_t n, cudaStream_t stream) {
    ELEMENTWISE(relu_sq_bwd_kernel<A>, n, dx, act);
}
template <class A>
cudaError_t value_residual_fwd_cuda(A *vm, float *gate, const A *v, const A *vfirst, size_t n,
                                    cudaStream_t stream) {
    ELEMENTWISE(vres_fwd_kernel<A>, n, vm, gate, v, vfirst);
}
template <class A>
cudaError_t value_residual_bwd_cuda(A *dv, A *dvfirst, A *dpre, const A *dvm, const float *gate,
                                    const A *v, const A *vfirst, size_t n, cudaStream_t stream) {
    ELEMENTWISE(vres_bwd_kernel<A>, n, dv, dvfirst, dpre, dvm, gate, v, vfirst);
}
template <class A>
cudaError_t value_first_bwd_cuda(A *dv, const A *dvm, const A *dvfirst, size_t n, cudaStream_t stream) {
    ELEMENTWISE(vfirst_bwd_kernel<A>, n, dv, dvm, dvfirst);
}

static unsigned head_blocks(size_t nh) { return (unsigned)((nh + HEADS_PER_BLOCK - 1) / HEADS_PER_BLOCK); }

template <class A>
cudaError_t keyprep_fwd_cuda(A *kk, A *kp, float *inv, const A *k, const A *a, const A *k_k,
                             const A *k_a, size_t N, int H, cudaStream_t stream) {
    if (H <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(keyprep_fwd_kernel<A>, head_blocks(N * H), HEADS_PER_BLOCK * 32, 0, stream)
    (kk, kp, inv, k, a, k_k, k_a, N * H, H);
    return cudaGetLastError();
}

template <class A>
cudaError_t keyprep_bwd_cuda(A *dk, A *da, float *dk_k, float *dk_a, float *scratch1, float *scratch2,
                             const A *dkk, const A *dkp, const A *k, const A *a, const A *kk,
                             const float *inv, const A *k_k, const A *k_a, size_t N, int H,
                             cudaStream_t stream) {
    if (H <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    LAUNCH(keyprep_bwd_kernel<A>, head_blocks(N * H), HEADS_PER_BLOCK * 32, 0, stream)
    (dk, da, scratch1, scratch2, dkk, dkp, k, a, kk, inv, k_k, k_a, N * H, H);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = colsum_acc_cuda(dk_k, scratch1, (const float *)nullptr, N, H * HS, stream);
    if (e == cudaSuccess) e = colsum_acc_cuda(dk_a, scratch2, (const float *)nullptr, N, H * HS, stream);
    return e;
}

template <class A>
cudaError_t embedding_fwd_cuda(A *out, const int32_t *tokens, const A *emb, size_t N, int C,
                               cudaStream_t stream) {
    if (C <= 0) return cudaErrorInvalidValue;
    size_t n = N * C;
    if (n == 0) return cudaSuccess;
    LAUNCH(embedding_fwd_kernel<A>, blocks_for(n), THREADS, 0, stream)(out, tokens, emb, N, C);
    return cudaGetLastError();
}

template <class A>
cudaError_t embedding_bwd_cuda(float *demb, const A *dout, const int32_t *tokens, size_t N, int C,
                               cudaStream_t stream) {
    if (C <= 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    dim3 grid((C + EMB_COLS - 1) / EMB_COLS, EMB_OWNER_BLOCKS), block(EMB_COLS, EMB_OWNERS_Y);
    LAUNCH(embedding_bwd_kernel<A>, grid, block, 0, stream)(demb, dout, tokens, N, C);
    return cudaGetLastError();
}

// The two activation types the backend runs with (mix.cuh).
#define INSTANTIATE(A)                                                                                            \
    template cudaError_t shift_mix_fwd_cuda(A *const *, const A *, const A *, const A *const *, int, int, int, int,  \
                                            cudaStream_t);                                                        \
    template cudaError_t shift_mix_bwd_cuda(A *, float *const *, float *, const A *const *, const A *,             \
                                            const A *const *, int, int, int, int, cudaStream_t);                  \
    template cudaError_t tanh_fwd_cuda(A *, size_t, cudaStream_t);                                                \
    template cudaError_t tanh_bwd_cuda(A *, const A *, size_t, cudaStream_t);                                     \
    template cudaError_t sigmoid_fwd_cuda(A *, size_t, cudaStream_t);                                             \
    template cudaError_t sigmoid_bwd_cuda(A *, const A *, size_t, cudaStream_t);                                  \
    template cudaError_t relu_sq_fwd_cuda(A *, size_t, cudaStream_t);                                             \
    template cudaError_t relu_sq_bwd_cuda(A *, const A *, size_t, cudaStream_t);                                  \
    template cudaError_t value_residual_fwd_cuda(A *, float *, const A *, const A *, size_t, cudaStream_t);       \
    template cudaError_t value_residual_bwd_cuda(A *, A *, A *, const A *, const float *, const A *, const A *,    \
                                                 size_t, cudaStream_t);                                           \
    template cudaError_t value_first_bwd_cuda(A *, const A *, const A *, size_t, cudaStream_t);                   \
    template cudaError_t keyprep_fwd_cuda(A *, A *, float *, const A *, const A *, const A *, const A *, size_t,   \
                                          int, cudaStream_t);                                                     \
    template cudaError_t keyprep_bwd_cuda(A *, A *, float *, float *, float *, float *, const A *, const A *,      \
                                          const A *, const A *, const A *, const float *, const A *, const A *,   \
                                          size_t, int, cudaStream_t);                                             \
    template cudaError_t embedding_fwd_cuda(A *, const int32_t *, const A *, size_t, int, cudaStream_t);          \
    template cudaError_t embedding_bwd_cuda(float *, const A *, const int32_t *, size_t, int, cudaStream_t);
INSTANTIATE(bf16)
INSTANTIATE(float)
