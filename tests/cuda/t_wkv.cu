// A WKV7-style recurrence shaped like the official forward kernel (RWKV-LM-V7 cuda/rwkv7_clampw.cu): one
// block per (head, batch), one thread per row of the 64x64 fp32 state held in registers, the
// step's r, decay, k, a, b staged in shared memory between two barriers, bf16 in and out.
// Checked against a plain C++ loop.  Its name starts with "wkv", so `make cuda` holds it to the
// register/spill budget in cuda/ptxas-budget.txt.
#include "emu.h"
#include "check.h"

#include <vector>

typedef __nv_bfloat16 bf16;
const float W_SCALE = -0.6065306597f; // -exp(-0.5): the decay exp(W_SCALE*sigmoid(w)) lies in [0.545, 1)

template <int N>
__global__ void __launch_bounds__(N, 2) wkv_forward_test(int T, int H, const bf16 *r_, const bf16 *w_, const bf16 *k_, const bf16 *v_,
                                                       const bf16 *a_, const bf16 *b_, bf16 *y_) {
    int bb = blockIdx.y, hh = blockIdx.x, i = threadIdx.x;
    SHARED(float, r, [N]);
    SHARED(float, w, [N]);
    SHARED(float, k, [N]);
    SHARED(float, a, [N]);
    SHARED(float, b, [N]);
    float state[N];
#pragma unroll
    for (int j = 0; j < N; j++) state[j] = 0.0f;
    for (int t = 0; t < T; t++) {
        int idx = ((bb * T + t) * H + hh) * N + i;
        __syncthreads();
        r[i] = __bfloat162float(r_[idx]);
        w[i] = __expf(W_SCALE / (1.0f + __expf(-__bfloat162float(w_[idx]))));
        k[i] = __bfloat162float(k_[idx]);
        a[i] = __bfloat162float(a_[idx]);
        b[i] = __bfloat162float(b_[idx]);
        __syncthreads();
        float vi = __bfloat162float(v_[idx]), sa = 0.0f, y = 0.0f;
#pragma unroll
        for (int j = 0; j < N; j++) sa += state[j] * a[j];
#pragma unroll
        for (int j = 0; j < N; j++) {
            float s = state[j] * w[j] + (sa * b[j] + k[j] * vi);
            y += s * r[j];
            state[j] = s;
        }
        y_[idx] = __float2bfloat16_rn(y);
    }
}

// Usage: t_wkv [B H T] (default 2 3 32); larger shapes measure the emulation's speed.
int main(int argc, char **argv) {
    check_device();
    const int N = 64;
    const int B = argc > 3 ? atoi(argv[1]) : 2, H = argc > 3 ? atoi(argv[2]) : 3, T = argc > 3 ? atoi(argv[3]) : 32;
    const int n = B * T * H * N;
    unsigned seed = 7;
    // Inputs as the model makes them: a = -kk, b = kk*a_gate with kk a unit vector per head, so
    // the state stays bounded.
    std::vector<bf16> r(n), w(n), k(n), v(n), a(n), b(n), y(n);
    std::vector<float> kk(N);
    for (int bt = 0; bt < B * T * H; bt++) {
        float norm = 0.0f;
        for (int i = 0; i < N; i++) norm += (kk[i] = check_random(&seed)) * kk[i];
        for (int i = 0; i < N; i++) {
            int idx = bt * N + i;
            float unit = kk[i] / sqrtf(norm);
            r[idx] = __float2bfloat16_rn(check_random(&seed));
            w[idx] = __float2bfloat16_rn(3.0f * check_random(&seed));
            k[idx] = __float2bfloat16_rn(0.5f * check_random(&seed));
            v[idx] = __float2bfloat16_rn(check_random(&seed));
            a[idx] = __float2bfloat16_rn(-unit);
            b[idx] = __float2bfloat16_rn(unit * (0.5f + 0.5f * check_random(&seed)));
        }
    }
    bf16 *d[7];
    const std::vector<bf16> *host[6] = {&r, &w, &k, &v, &a, &b};
    for (int i = 0; i < 7; i++) CUDA_OK(cudaMalloc(&d[i], n * sizeof(bf16)));
    for (int i = 0; i < 6; i++) CUDA_OK(cudaMemcpy(d[i], host[i]->data(), n * sizeof(bf16), cudaMemcpyHostToDevice));
    cudaEvent_t start, stop;
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreate(&stop));
    CUDA_OK(cudaEventRecord(start, 0));
    LAUNCH(wkv_forward_test<N>, dim3(H, B), N, 0, 0)(T, H, d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaEventRecord(stop, 0));
    CUDA_OK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
    printf("B %d H %d T %d: kernel %.1f ms\n", B, H, T, ms);
    CUDA_OK(cudaMemcpy(y.data(), d[6], n * sizeof(bf16), cudaMemcpyDeviceToHost));

    // The reference: the same recurrence as plain loops over the whole state matrix.
    double worst = 0.0;
    int bad = 0;
    std::vector<float> S(N * N);
    for (int bb = 0; bb < B; bb++)
        for (int hh = 0; hh < H; hh++) {
            std::fill(S.begin(), S.end(), 0.0f);
            for (int t = 0; t < T; t++) {
                const int base = ((bb * T + t) * H + hh) * N;
                for (int i = 0; i < N; i++) {
                    float vi = __bfloat162float(v[base + i]), sa = 0.0f, want = 0.0f;
                    for (int j = 0; j < N; j++) sa += S[i * N + j] * __bfloat162float(a[base + j]);
                    for (int j = 0; j < N; j++) {
                        float decay = expf(W_SCALE / (1.0f + expf(-__bfloat162float(w[base + j]))));
                        float s = S[i * N + j] * decay + (sa * __bfloat162float(b[base + j]) + __bfloat162float(k[base + j]) * vi);
                        want += s * __bfloat162float(r[base + j]);
                        S[i * N + j] = s;
                    }
                    float got = __bfloat162float(y[base + i]);
                    double err = fabs(got - want) / (fabs(want) + 0.05); // bf16 output: 2^-8 relative
                    if (!(err <= worst)) worst = err; // NaN too
                    if (!(err < 1e-2) && bad++ < 5) printf("b %d h %d t %d row %d: y %g, want %g\n", bb, hh, t, i, got, want);
                }
            }
        }
    printf("worst relative error %.2e\n", worst);
    CHECK(bad == 0, "%d of %d outputs off by more than 1e-2 relative", bad, n);
    for (int i = 0; i < 7; i++) CUDA_OK(cudaFree(d[i]));
    return check_finish("t_wkv");
}
