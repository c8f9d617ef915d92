// cuda/wkv6.cu: the WKV6 recurrence (cuda/wkv6.cuh), shaped as the official kernels (BlinkDL/RWKV-LM
// RWKV-v5/cuda/wkv6_cuda.cu: kernel_forward, kernel_backward_111 (gr, gu, gk, gv) and
// kernel_backward_222 (gw); the state of wkv6state_cuda.cu's forward): one block of 64 threads per
// (head, batch), each thread one row or column of a 64x64 fp32 state in registers, each step's
// shared vectors staged in shared memory between barriers, bf16 in and out, fp32 inside, every
// output rounded once.  Twins: lib/ops6_cpu.c wkv6_fwd / wkv6_bwd (the same sweeps, vectorised
// over the key index instead of one thread per index).
#include "emu.h"
#include "wkv6.cuh"
#include "norm.cuh"
#include "ops.h"

typedef __nv_bfloat16 bf16;
static constexpr int N = OPS_HEAD_SIZE;

static __device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
// The official kernel's w = __expf(-__expf(w)): d in [0, 1), 0 once exp(w) passes ~104 (w > 4.6).
static __device__ __forceinline__ float decay_of(float w) { return __expf(-__expf(w)); }

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

// kernel_forward: thread i owns row i of S; y_i = sum_j r_j (u_j k_j v_i + S[i][j]), then
// S[i][j] = S[i][j] d_j + k_j v_i, j in order.  With state_io (B == 1) the state starts from and
// ends in it (wkv6state's _s, in fp32).  Six blocks per SM caps it at 168 registers: without the
// cap nvcc 13 takes 170-180 (it hoists the shared loads), with it nothing spills.
__global__ void __launch_bounds__(N, 6)
wkv6_forward(int T, int H, const bf16 *__restrict__ r_, const bf16 *__restrict__ k_, const bf16 *__restrict__ v_,
             const bf16 *__restrict__ w_, const bf16 *__restrict__ u_, bf16 *__restrict__ y_,
             float *__restrict__ state_io) {
    SHARED(float, r, [N]);
    SHARED(float, k, [N]);
    SHARED(float, d, [N]);
    SHARED(float, u, [N]);
    const int h = blockIdx.x, bi = blockIdx.y, i = threadIdx.x, C = H * N;
    u[i] = to_float(u_[h * N + i]); // read after the loop's first pair of barriers
    float state[N];
    if (state_io) load_row(state, state_io + ((size_t)h * N + i) * N);
    else {
#pragma unroll
        for (int j = 0; j < N; j++) state[j] = 0.0f;
    }
    for (int t = 0; t < T; t++) {
        const size_t idx = ((size_t)bi * T + t) * C + (size_t)h * N + i;
        __syncthreads(); // everyone is done with the previous step's r, k, d
        r[i] = to_float(r_[idx]);
        k[i] = to_float(k_[idx]);
        d[i] = decay_of(to_float(w_[idx]));
        __syncthreads();
        const float vi = to_float(v_[idx]);
        float y = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j += 4) { // float4 reads of the shared vectors, as the official kernel
            const float4 r4 = *reinterpret_cast<const float4 *>(&r[j]), k4 = *reinterpret_cast<const float4 *>(&k[j]);
            const float4 u4 = *reinterpret_cast<const float4 *>(&u[j]), d4 = *reinterpret_cast<const float4 *>(&d[j]);
            const float rq[4] = {r4.x, r4.y, r4.z, r4.w}, kq[4] = {k4.x, k4.y, k4.z, k4.w};
            const float uq[4] = {u4.x, u4.y, u4.z, u4.w}, dq[4] = {d4.x, d4.y, d4.z, d4.w};
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const float x = kq[q] * vi;
                y += rq[q] * (uq[q] * x + state[j + q]);
                state[j + q] = state[j + q] * dq[q] + x;
            }
        }
        y_[idx] = __float2bfloat16_rn(y);
    }
    if (state_io) store_row(state_io + ((size_t)h * N + i) * N, state);
}

// kernel_backward_111, without the state gradient: three sweeps, each with its own 64 floats.
//  1. forward, thread = key j, s[i] = S_{t-1}[i][j]: gr_j = sum_i gy_i (u_j k_j v_i + s[i]);
//     gu_j += r_j sum_i k_j v_i gy_i (to gu_b, one row per batch element);
//  2. backward, thread = key j, s[i] = dL/dS_t[i][j]: gk_j = sum_i v_i (u_j r_j gy_i + s[i]),
//     then s[i] = r_j gy_i + s[i] d_j;
//  3. backward, thread = value i, s[j] = dL/dS_t[i][j]: gv_i = sum_j k_j (u_j r_j gy_i + s[j]),
//     then s[j] = r_j gy_i + s[j] d_j.
__global__ void __launch_bounds__(N, 2)
wkv6_backward(int T, int H, const bf16 *__restrict__ dy_, const bf16 *__restrict__ r_, const bf16 *__restrict__ k_,
              const bf16 *__restrict__ v_, const bf16 *__restrict__ w_, const bf16 *__restrict__ u_,
              bf16 *__restrict__ dr_, bf16 *__restrict__ dk_, bf16 *__restrict__ dv_, float *__restrict__ gu_b) {
    SHARED(float, u, [N]);
    SHARED(float, a, [N]); // sweeps 1, 2: v; sweep 3: r
    SHARED(float, b, [N]); // sweeps 1, 2: gy; sweep 3: k
    SHARED(float, d, [N]); // sweep 3
    const int h = blockIdx.x, bi = blockIdx.y, i = threadIdx.x, C = H * N;
    const size_t at0 = (size_t)bi * T * C + (size_t)h * N + i; // element i of step 0
    u[i] = to_float(u_[h * N + i]);
    const float ui = u[i]; // written by this thread: no barrier needed to read it back
    float gu = 0.0f;
    {
        float s[N];
#pragma unroll
        for (int j = 0; j < N; j++) s[j] = 0.0f;
        for (int t = 0; t < T; t++) {
            const size_t idx = at0 + (size_t)t * C;
            __syncthreads();
            a[i] = to_float(v_[idx]);
            b[i] = to_float(dy_[idx]);
            __syncthreads();
            const float kk = to_float(k_[idx]), dd = decay_of(to_float(w_[idx]));
            float gr = 0.0f, gu_t = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j++) {
                const float x = kk * a[j];
                gr += (ui * x + s[j]) * b[j];
                gu_t += x * b[j];
                s[j] = s[j] * dd + x;
            }
            dr_[idx] = __float2bfloat16_rn(gr);
            gu += to_float(r_[idx]) * gu_t;
        }
    }
    gu_b[(size_t)bi * C + (size_t)h * N + i] = gu;
    {
        float s[N];
#pragma unroll
        for (int j = 0; j < N; j++) s[j] = 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            const size_t idx = at0 + (size_t)t * C;
            __syncthreads();
            a[i] = to_float(v_[idx]);
            b[i] = to_float(dy_[idx]);
            __syncthreads();
            const float rr = to_float(r_[idx]), dd = decay_of(to_float(w_[idx]));
            float gk = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j++) {
                const float x = rr * b[j];
                gk += (ui * x + s[j]) * a[j];
                s[j] = x + s[j] * dd;
            }
            dk_[idx] = __float2bfloat16_rn(gk);
        }
    }
    {
        float s[N];
#pragma unroll
        for (int j = 0; j < N; j++) s[j] = 0.0f;
        for (int t = T - 1; t >= 0; t--) {
            const size_t idx = at0 + (size_t)t * C;
            __syncthreads(); // also: u complete before its first read below
            a[i] = to_float(r_[idx]);
            b[i] = to_float(k_[idx]);
            d[i] = decay_of(to_float(w_[idx]));
            __syncthreads();
            const float gyy = to_float(dy_[idx]);
            float gv = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j++) {
                const float x = gyy * a[j];
                gv += (u[j] * x + s[j]) * b[j];
                s[j] = x + s[j] * d[j];
            }
            dv_[idx] = __float2bfloat16_rn(gv);
        }
    }
}

// kernel_backward_222: gw_t = -exp(w_t) G_t with G_t the gradient with respect to log d_t, all
// pairs s < t < tau.  Thread = key j.  A backward sweep keeps A[i] = sum over tau >= t of
// r_tau gy_tau,i times the decays between, and stores sb[s] = k_s sum_i v_s,i A_{s+2}[i] (the
// pairs (s, tau >= s + 2)) in scratch, row s; a forward sweep keeps B[i] = the state without its
// newest term (S_{t-2} d_{t-1}) and walks G_1 = sb[0], G_t = G_{t-1} + sb[t-1] - r_t sum_i gy_t,i B[i].
__global__ void __launch_bounds__(N, 2)
wkv6_backward_w(int T, int H, const bf16 *__restrict__ dy_, const bf16 *__restrict__ r_, const bf16 *__restrict__ k_,
                const bf16 *__restrict__ v_, const bf16 *__restrict__ w_, bf16 *__restrict__ dw_,
                float *__restrict__ sb) {
    SHARED(float, v, [N]);
    SHARED(float, gy, [N]);
    const int h = blockIdx.x, bi = blockIdx.y, i = threadIdx.x, C = H * N;
    const size_t at0 = (size_t)bi * T * C + (size_t)h * N + i;
    {
        float s[N];
#pragma unroll
        for (int j = 0; j < N; j++) s[j] = 0.0f;
        for (int t = T - 1; t >= 2; t--) {
            const size_t idx = at0 + (size_t)t * C;
            __syncthreads();
            gy[i] = to_float(dy_[idx]);
            v[i] = to_float(v_[idx - 2 * C]);
            __syncthreads();
            const float rr = to_float(r_[idx]), dd = decay_of(to_float(w_[idx - C]));
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j++) {
                s[j] = (s[j] + rr * gy[j]) * dd;
                sum += s[j] * v[j];
            }
            sb[idx - 2 * C] = sum * to_float(k_[idx - 2 * C]);
        }
    }
    dw_[at0] = __float2bfloat16_rn(0.0f);
    if (T < 2) return; // uniform across the block: no barrier is left waiting
    float G = 0.0f;
    {
        float s[N];
#pragma unroll
        for (int j = 0; j < N; j++) s[j] = 0.0f;
        for (int t = 1; t < T - 1; t++) {
            const size_t idx = at0 + (size_t)t * C;
            if (t == 1) G = sb[at0];
            else {
                __syncthreads();
                gy[i] = to_float(dy_[idx]);
                v[i] = to_float(v_[idx - 2 * C]);
                __syncthreads();
                const float kk = to_float(k_[idx - 2 * C]), dd = decay_of(to_float(w_[idx - C]));
                float sum = 0.0f;
#pragma unroll
                for (int j = 0; j < N; j++) {
                    s[j] = (s[j] + kk * v[j]) * dd;
                    sum += s[j] * gy[j];
                }
                G += sb[idx - C] - sum * to_float(r_[idx]);
            }
            dw_[idx] = __float2bfloat16_rn(G * -__expf(to_float(w_[idx])));
        }
    }
    dw_[at0 + (size_t)(T - 1) * C] = __float2bfloat16_rn(0.0f);
}

static bool bad_shape(int B, int T, int H) { return B < 1 || H < 1 || T < 1; }

cudaError_t wkv6_fwd_cuda(bf16 *y, float *state, const bf16 *r, const bf16 *k, const bf16 *v, const bf16 *w,
                          const bf16 *u, int B, int T, int H, cudaStream_t stream) {
    if (bad_shape(B, T, H) || !y || !r || !k || !v || !w || !u || (state && B != 1)) return cudaErrorInvalidValue;
    LAUNCH(wkv6_forward, dim3(H, B), N, 0, stream)(T, H, r, k, v, w, u, y, state);
    return cudaGetLastError();
}

size_t wkv6_bwd_cuda_scratch_floats(int B, int T, int H) {
    return (size_t)B * T * H * N + (size_t)B * H * N; // sb, then gu per batch element
}

cudaError_t wkv6_bwd_cuda(bf16 *dr, bf16 *dk, bf16 *dv, bf16 *dw, float *du, float *scratch, const bf16 *dy,
                          const bf16 *r, const bf16 *k, const bf16 *v, const bf16 *w, const bf16 *u, int B, int T,
                          int H, cudaStream_t stream) {
    if (bad_shape(B, T, H) || !dr || !dk || !dv || !dw || !du || !scratch || !dy || !r || !k || !v || !w || !u)
        return cudaErrorInvalidValue;
    const int C = H * N;
    float *sb = scratch, *gu_b = scratch + (size_t)B * T * C;
    LAUNCH(wkv6_backward, dim3(H, B), N, 0, stream)(T, H, dy, r, k, v, w, u, dr, dk, dv, gu_b);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    LAUNCH(wkv6_backward_w, dim3(H, B), N, 0, stream)(T, H, dy, r, k, v, w, dw, sb);
    e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    // The wrapper's torch.sum(gu, 0): over the batch, in batch order, in fp32 here.
    return colsum_acc_cuda(du, gu_b, (const float *)nullptr, (size_t)B, C, stream);
}
