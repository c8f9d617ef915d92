// cuda/wkv7.cu: the WKV7 recurrence (cuda/wkv7.cuh), shaped as the official "clampw" kernels
// (RWKV-LM-V7 cuda/rwkv7_clampw.cu, kernels forward/backward, and BlinkDL/RWKV-LM RWKV-v7/train_temp/cuda/rwkv7_clampw_v3_for_h100.cu): one
// block per (head, batch), the 64x64 fp32 state in registers (forward: thread i holds row i;
// backward: a pair of threads per row, see wkv7_backward), each step's r, decay, k, a, b staged
// in shared memory between barriers, bf16 in and out, fp32 inside, the official rounding points
// (bf16 inputs widened once, every output rounded once).  Twins: lib/ops_cpu.c wkv7_fwd /
// wkv7_bwd, which differ in one place: their backward replays each chunk forward from its
// checkpoint, where this one (as the official kernel) divides by the decay.
#include "emu.h"
#include "wkv7.cuh"
#include <cuda_bf16.h>
#include "grid.cuh"

typedef __nv_bfloat16 bf16;
static constexpr int N = OPS_HEAD_SIZE;
static constexpr int CHUNK = WKV7_CHUNK;
static constexpr float W_SCALE = -0.6065306597f; // -exp(-0.5): decay in [0.545, 1), the clamp

// Approximate divisions (2 ulp), as the official kernels' --use_fast_math makes theirs: an IEEE
// division or reciprocal has a called slow path, around which a kernel that holds its state in
// registers spills.
static __device__ __forceinline__ float sigmoid_of(float w) { return __fdividef(1.0f, 1.0f + __expf(-w)); }
// The official kernel's d = exp(W_SCALE / (1 + exp(-w))).
static __device__ __forceinline__ float decay_of(float w) { return __expf(W_SCALE * sigmoid_of(w)); }

// One state row <-> 64 contiguous floats (16-byte aligned: rows start at multiples of 256 B).
static __device__ __forceinline__ void load_row(float (&row)[N], const float *src) {
#pragma unroll
    for (int j = 0; j < N; j += 4) {
        float4 q = *reinterpret_cast<const float4 *>(src + j);
        row[j] = q.x, row[j + 1] = q.y, row[j + 2] = q.z, row[j + 3] = q.w;
    }
}
static __device__ __forceinline__ void store_row(float *dst, const float (&row)[N]) {
#pragma unroll
    for (int j = 0; j < N; j += 4) {
        float4 q;
        q.x = row[j], q.y = row[j + 1], q.z = row[j + 2], q.w = row[j + 3];
        *reinterpret_cast<float4 *>(dst + j) = q;
    }
}

// Half of a dot product over j of a thread's half row (element jj is j = 2 jj + odd) with a
// shared vector, completed by the pair's other half.
static __device__ __forceinline__ float dot_half(const float (&part)[N / 2], const float *vec, int odd) {
    float sum = 0.0f;
#pragma unroll
    for (int jj = 0; jj < N / 2; jj++) sum += part[jj] * vec[2 * jj + odd];
    return sum + __shfl_xor_sync(0xffffffffu, sum, 1);
}

// The state before every CHUNK-th step goes to ckpt (row i by thread i) for the backward; with
// state_io (B == 1) the state starts from and ends in it.
template <class A>
__global__ void __launch_bounds__(N, 2)
wkv7_forward(int T, int H, const A *__restrict__ r_, const A *__restrict__ w_, const A *__restrict__ k_,
             const A *__restrict__ v_, const A *__restrict__ kk_, const A *__restrict__ a_,
             A *__restrict__ y_, float *__restrict__ ckpt, float *__restrict__ state_io) {
    SHARED(float, r, [N]);
    SHARED(float, d, [N]);
    SHARED(float, k, [N]);
    SHARED(float, a, [N]);
    SHARED(float, b, [N]);
    const int h = blockIdx.x, bi = blockIdx.y, i = threadIdx.x, C = H * N, nch = T / CHUNK;
    const size_t bh = (size_t)bi * H + h;
    float state[N];
    if (state_io) load_row(state, state_io + ((size_t)h * N + i) * N);
    else {
#pragma unroll
        for (int j = 0; j < N; j++) state[j] = 0.0f;
    }
    for (int t = 0; t < T; t++) {
        if (ckpt && t % CHUNK == 0) store_row(ckpt + ((bh * nch + t / CHUNK) * N + i) * N, state);
        const size_t idx = ((size_t)bi * T + t) * C + (size_t)h * N + i;
        __syncthreads(); // everyone is done with the previous step's r, d, k, a, b
        r[i] = tof(r_[idx]);
        d[i] = decay_of(tof(w_[idx]));
        k[i] = tof(k_[idx]);
        const float kki = tof(kk_[idx]);
        a[i] = -kki;                       // the official kernel's a = -kk, b = kk * a_gate
        b[i] = kki * tof(a_[idx]);
        __syncthreads();
        const float vi = tof(v_[idx]);
        float sa = 0.0f, y = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j++) sa += state[j] * a[j];
#pragma unroll
        for (int j = 0; j < N; j++) {
            const float s = state[j] * d[j] + (sa * b[j] + k[j] * vi);
            y += s * r[j];
            state[j] = s;
        }
        put(y_[idx], y);
    }
    if (state_io) store_row(state_io + ((size_t)h * N + i) * N, state);
}

// The backward's first pass, all chunks at once (grid (H, B, T/16)): from each checkpoint, the
// chunk's 16 steps forward again, as wkv7_forward without y, saving each step's S a (what the
// official forward saves as `sa`; the twin's interface has no room for it), and after the last
// chunk the final state, which no checkpoint holds.
template <class A>
__global__ void __launch_bounds__(N, 2)
wkv7_backward_sa(int T, int H, const A *__restrict__ w_, const A *__restrict__ k_, const A *__restrict__ v_,
                 const A *__restrict__ kk_, const A *__restrict__ a_, const float *__restrict__ ckpt,
                 float *__restrict__ sa_, float *__restrict__ final_state) {
    SHARED(float, d, [N]);
    SHARED(float, k, [N]);
    SHARED(float, a, [N]);
    SHARED(float, b, [N]);
    const int h = blockIdx.x, bi = blockIdx.y, c = blockIdx.z, i = threadIdx.x, C = H * N, nch = T / CHUNK;
    const size_t bh = (size_t)bi * H + h;
    float state[N];
    load_row(state, ckpt + ((bh * nch + c) * N + i) * N);
    for (int t = c * CHUNK; t < (c + 1) * CHUNK; t++) {
        const size_t idx = ((size_t)bi * T + t) * C + (size_t)h * N + i;
        __syncthreads();
        d[i] = decay_of(tof(w_[idx]));
        k[i] = tof(k_[idx]);
        const float kki = tof(kk_[idx]);
        a[i] = -kki;
        b[i] = kki * tof(a_[idx]);
        __syncthreads();
        const float vi = tof(v_[idx]);
        float sa = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j++) sa += state[j] * a[j];
        sa_[idx] = sa;
#pragma unroll
        for (int j = 0; j < N; j++) state[j] = state[j] * d[j] + (sa * b[j] + k[j] * vi);
    }
    if (c == nch - 1) store_row(final_state + (bh * N + i) * N, state);
}

// The official backward (v3's tiling: a chunk's inputs staged in shared memory at once), chunks in
// reverse, but with each row and column split over two threads.  One thread per row, as the
// official kernel, holds three arrays of 64 floats and spills: nvcc 13 without --use_fast_math
// spills 40-144 bytes of the official v3 backward on sm_80..sm_90 (even with __fdividef), and
// 20-600 bytes of the variants of this one tried on sm_90.  Thread pair (2i, 2i+1) owns row i
// of the state gradient (dstate), column i of it (dstateT) and column i of the state (stateT),
// the pair's two threads the even and the odd j (adjacent words: no bank conflicts on the shared
// vectors); each sum over j is two half sums of 32 terms added by one shuffle.  Each chunk
// starts from the state after it (the next checkpoint, or the final state); within the chunk
// S_{t-1} comes from S_t by dividing by the decay.
constexpr int BWD_THREADS = 2 * N, HALF = N / 2;

static __device__ __forceinline__ float pair_sum(float part) { return part + __shfl_xor_sync(0xffffffffu, part, 1); }

template <class A>
__global__ void __launch_bounds__(BWD_THREADS, 3)
wkv7_backward(int T, int H, const A *__restrict__ dy_, const A *__restrict__ r_, const A *__restrict__ w_,
              const A *__restrict__ k_, const A *__restrict__ v_, const A *__restrict__ kk_,
              const A *__restrict__ a_, const float *__restrict__ ckpt, const float *__restrict__ sa_,
              const float *__restrict__ final_state, A *__restrict__ dr_, A *__restrict__ dw_,
              A *__restrict__ dk_, A *__restrict__ dv_, A *__restrict__ dkk_, A *__restrict__ da_) {
    SHARED(float, r, [CHUNK][N]);
    SHARED(float, d, [CHUNK][N]);
    SHARED(float, sig, [CHUNK][N]); // sigmoid(w), for dw
    SHARED(float, k, [CHUNK][N]);
    SHARED(float, v, [CHUNK][N]);
    SHARED(float, a, [CHUNK][N]);
    SHARED(float, b, [CHUNK][N]);
    SHARED(float, gate, [CHUNK][N]); // the a_ input, for dkk
    SHARED(float, dy, [CHUNK][N]);
    SHARED(float, sa, [CHUNK][N]);
    SHARED(float, dsa, [N]); // d(S a), one per row, of the current step
    const int h = blockIdx.x, bi = blockIdx.y, tid = threadIdx.x, i = tid >> 1, odd = tid & 1;
    const int C = H * N, nch = T / CHUNK;
    const size_t bh = (size_t)bi * H + h;
    float stateT[HALF], dstate[HALF], dstateT[HALF]; // element jj: j = 2 jj + odd
#pragma unroll
    for (int jj = 0; jj < HALF; jj++) dstate[jj] = dstateT[jj] = 0.0f;
    for (int c = nch - 1; c >= 0; c--) {
        const int t0 = c * CHUNK;
        const float *after = c == nch - 1 ? final_state + bh * N * N : ckpt + (bh * nch + c + 1) * N * N;
#pragma unroll
        for (int jj = 0; jj < HALF; jj++) stateT[jj] = after[(2 * jj + odd) * N + i];
        __syncthreads(); // everyone is done with the previous chunk's inputs
        for (int e = tid; e < CHUNK * N; e += BWD_THREADS) {
            const int tt = e / N, col = e % N;
            const size_t idx = ((size_t)bi * T + t0 + tt) * C + (size_t)h * N + col;
            r[tt][col] = tof(r_[idx]);
            const float s = sigmoid_of(tof(w_[idx]));
            sig[tt][col] = s;
            d[tt][col] = __expf(W_SCALE * s);
            k[tt][col] = tof(k_[idx]);
            v[tt][col] = tof(v_[idx]);
            const float kkv = tof(kk_[idx]), g = tof(a_[idx]);
            a[tt][col] = -kkv;
            b[tt][col] = kkv * g;
            gate[tt][col] = g;
            dy[tt][col] = tof(dy_[idx]);
            sa[tt][col] = sa_[idx];
        }
        __syncthreads();
        for (int tt = CHUNK - 1; tt >= 0; tt--) {
            const float g_r = dot_half(stateT, dy[tt], odd); // y_t = S_t r_t
            { // S_t = S_{t-1} diag(d) + (S_{t-1} a) b^T + v k^T, column i, solved for S_{t-1}
                const float inv_d = __fdividef(1.0f, d[tt][i]), ki = k[tt][i], bi_ = b[tt][i];
                const float ri = r[tt][i], dyi = dy[tt][i];
#pragma unroll
                for (int jj = 0; jj < HALF; jj++) {
                    const int j = 2 * jj + odd;
                    stateT[jj] = (stateT[jj] - ki * v[tt][j] - bi_ * sa[tt][j]) * inv_d;
                    dstate[jj] += dyi * r[tt][j];
                    dstateT[jj] += ri * dy[tt][j];
                }
            }
            float g_d = 0.0f, g_k = 0.0f, g_v = 0.0f, g_sa = 0.0f, g_b = 0.0f;
#pragma unroll
            for (int jj = 0; jj < HALF; jj++) {
                const int j = 2 * jj + odd;
                g_d += dstateT[jj] * stateT[jj];
                g_k += dstateT[jj] * v[tt][j];
                g_v += dstate[jj] * k[tt][j];
                g_sa += dstate[jj] * b[tt][j];
                g_b += dstateT[jj] * sa[tt][j];
            }
            g_d = pair_sum(g_d), g_k = pair_sum(g_k), g_v = pair_sum(g_v), g_sa = pair_sum(g_sa), g_b = pair_sum(g_b);
            __syncthreads(); // everyone has read the previous step's dsa
            if (!odd) dsa[i] = g_sa;
            __syncthreads();
            const float g_a = dot_half(stateT, dsa, odd);
            {
                const float di = d[tt][i], ai = a[tt][i];
#pragma unroll
                for (int jj = 0; jj < HALF; jj++) {
                    const int j = 2 * jj + odd;
                    dstate[jj] = dstate[jj] * d[tt][j] + g_sa * a[tt][j];
                    dstateT[jj] = dstateT[jj] * di + ai * dsa[j];
                }
            }
            if (!odd) {
                const size_t idx = ((size_t)bi * T + t0 + tt) * C + (size_t)h * N + i;
                const float s = sig[tt][i];
                put(dr_[idx], tof(dr_[idx]) + g_r);
                put(dk_[idx], tof(dk_[idx]) + g_k);
                put(dv_[idx], tof(dv_[idx]) + g_v);
                put(dw_[idx], g_d * d[tt][i] * W_SCALE * s * (1.0f - s));
                put(dkk_[idx], -g_a + g_b * gate[tt][i]);
                put(da_[idx], -g_b * a[tt][i]); // g_b * kk
            }
        }
    }
}

static bool bad_shape(int B, int T, int H) { return B < 1 || H < 1 || T < CHUNK || T % CHUNK != 0; }

template <class A>
cudaError_t wkv7_fwd_cuda(typename NoDeduce<A>::type *y, float *ckpt, float *state, const A *r, const A *w, const A *k,
                          const A *v, const A *kk, const A *a, int B, int T, int H, cudaStream_t stream) {
    // without checkpoints (inference) any T: one token at a time when decoding
    bool bad = ckpt ? bad_shape(B, T, H) : B < 1 || H < 1 || T < 1;
    if (bad || !y || !r || !w || !k || !v || !kk || !a || (state && B != 1))
        return cudaErrorInvalidValue;
    LAUNCH(wkv7_forward<A>, dim3(H, B), N, 0, stream)(T, H, r, w, k, v, kk, a, y, ckpt, state);
    return cudaGetLastError();
}

size_t wkv7_bwd_cuda_scratch_floats(int B, int T, int H) {
    return (size_t)B * T * H * N + (size_t)B * H * N * N; // sa, then the final states
}

template <class A>
cudaError_t wkv7_bwd_cuda(A *dr, A *dw, A *dk, A *dv, A *dkk, A *da, float *scratch,
                          const A *dy, const A *r, const A *w, const A *k, const A *v,
                          const A *kk, const A *a, const float *ckpt, int B, int T, int H,
                          cudaStream_t stream) {
    if (bad_shape(B, T, H) || !dr || !dw || !dk || !dv || !dkk || !da || !scratch || !dy || !r || !w || !k ||
        !v || !kk || !a || !ckpt)
        return cudaErrorInvalidValue;
    float *sa = scratch, *final_state = scratch + (size_t)B * T * H * N;
    LAUNCH(wkv7_backward_sa<A>, dim3(H, B, T / CHUNK), N, 0, stream)(T, H, w, k, v, kk, a, ckpt, sa, final_state);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    LAUNCH(wkv7_backward<A>, dim3(H, B), BWD_THREADS, 0, stream)(T, H, dy, r, w, k, v, kk, a, ckpt, sa, final_state, dr, dw,
                                                     dk, dv, dkk, da);
    return cudaGetLastError();
}

// bf16 activations (--precision bf16) and fp32 (fp32/tf32).
#define INSTANTIATE(A)                                                                                         \
    template cudaError_t wkv7_fwd_cuda(A *, float *, float *, const A *, const A *, const A *, const A *,       \
                                       const A *, const A *, int, int, int, cudaStream_t);                     \
    template cudaError_t wkv7_bwd_cuda(A *, A *, A *, A *, A *, A *, float *, const A *, const A *, const A *,  \
                                       const A *, const A *, const A *, const A *, const float *, int, int, int, \
                                       cudaStream_t);
INSTANTIATE(bf16)
INSTANTIATE(float)
