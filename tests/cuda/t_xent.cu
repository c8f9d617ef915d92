// cuda/xent.cu against its CPU twin xent_l2wrap_fwdbwd (lib/ops_cpu.c): bf16 logits (random,
// rounded), V not a multiple of the 512-thread block and V = 65536, rows in a chunk of R > N,
// ties at the maximum (the lowest index must get L2Wrap's term, within one thread, across
// threads, and with the lower index in the higher warp), the target at the argmax, a NaN row.
//
// Tolerances (twin.h compare):
//  - row loss: fp32 on the GPU against the twin's double: k = 1/16 bf16 ulp (2^-12 relative),
//    far above fp32 summation error over 65536 terms (about 2^-17 relative);
//  - gradient: one bf16 rounding of fp32 math: k = 1 at the scale of the terms that cancel
//    (exp(z - lse)/R, the target's 1/R, the argmax's max 1e-4/R).
#include "emu.h"
#include "twin.h"
#include "xent.cuh"
#include "ops.h"

struct Rows {
    size_t N, R;
    int V;
    Vec z;                       // bf16-rounded logits
    std::vector<int32_t> tgt;
};

static void run_case(const char *name, const Rows &r, bool check_bits) {
    printf("%s: N=%zu R=%zu V=%d\n", name, r.N, r.R, r.V);
    size_t n = r.N * (size_t)r.V;
    Vec grad = r.z;
    std::vector<double> loss(r.N);
    xent_l2wrap_fwdbwd(grad.data(), loss.data(), r.tgt.data(), r.N, r.R, r.V);
    // scale: the largest term that went into each gradient element
    Vec scale(n);
    float inv_r = (float)(1.0 / (double)r.R);
    for (size_t i = 0; i < r.N; i++) {
        float m = -INFINITY;
        for (int c = 0; c < r.V; c++) m = fmaxf(m, r.z[i * r.V + c]);
        for (int c = 0; c < r.V; c++) {
            size_t k = i * r.V + c;
            scale[k] = fabsf(grad[k]);
            if (c == r.tgt[i]) scale[k] += inv_r;
            if (r.z[k] == m) scale[k] += fabsf(m) * 1e-4f * inv_r;
        }
    }
    int32_t *d_t;
    CUDA_OK(cudaMalloc(&d_t, r.N * sizeof(int32_t)));
    CUDA_OK(cudaMemcpy(d_t, r.tgt.data(), r.N * sizeof(int32_t), cudaMemcpyHostToDevice));
    bf16 *d_z = dev_bf16(r.z);
    float *d_loss = dev_alloc<float>(r.N);

    // forward only: the loss, and the logits left as they were
    CUDA_OK(xent_l2wrap_fwd_cuda(d_loss, d_z, d_t, r.N, r.V, 0));
    Vec ref_loss(r.N);
    for (size_t i = 0; i < r.N; i++) ref_loss[i] = (float)loss[i];
    compare("row loss (fwd)", get(d_loss, r.N), ref_loss, 1.0 / 16, 1e-6);
    compare("logits unchanged", get(d_z, n), r.z, 0, 0);

    auto run = [&] {
        put(d_z, r.z);
        CUDA_OK(xent_l2wrap_fwdbwd_cuda(d_z, d_loss, d_t, r.N, r.R, r.V, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d_z, n), get_bytes(bytes, d_loss, r.N);
        return bytes;
    };
    run();
    compare("row loss", get(d_loss, r.N), ref_loss, 1.0 / 16, 1e-6);
    Vec g = get(d_z, n);
    compare("dlogits", g, grad, 1, 0, &scale);
    if (check_bits) check_bits_repeat(name, run);
    cudaFree(d_t), cudaFree(d_z), cudaFree(d_loss);
}

// L2Wrap's term (max 1e-4/R, of the max's sign) went to index lo, not to hi (equal logits, so
// equal softmax terms).
static void check_tie(const char *name, const Rows &r, size_t row, int lo, int hi) {
    Vec z = r.z;
    std::vector<double> loss(r.N);
    int32_t *d_t;
    CUDA_OK(cudaMalloc(&d_t, r.N * sizeof(int32_t)));
    CUDA_OK(cudaMemcpy(d_t, r.tgt.data(), r.N * sizeof(int32_t), cudaMemcpyHostToDevice));
    bf16 *d_z = dev_bf16(r.z);
    float *d_loss = dev_alloc<float>(r.N);
    CUDA_OK(xent_l2wrap_fwdbwd_cuda(d_z, d_loss, d_t, r.N, r.R, r.V, 0));
    Vec g = get(d_z, r.N * (size_t)r.V);
    float a = g[row * r.V + lo], b = g[row * r.V + hi], m = r.z[row * r.V + lo];
    CHECK(m > 0 ? a > b : a < b,
          "%s: tie at the max %g between %d and %d: gradients %g, %g (the lower index should get max 1e-4/R)", name, m,
          lo, hi, a, b);
    printf("  tie %-24s max %g: d[%d] = %g, d[%d] = %g\n", name, m, lo, a, hi, b);
    cudaFree(d_t), cudaFree(d_z), cudaFree(d_loss);
}

static Rows make_rows(size_t N, size_t R, int V, unsigned seed) {
    Rows r{N, R, V, rand_bf16(N * (size_t)V, seed, -8, 8), std::vector<int32_t>(N)};
    unsigned s = seed + 1;
    for (size_t i = 0; i < N; i++) r.tgt[i] = (int32_t)((check_random(&s) + 1.0f) * 0.5f * (V - 1));
    return r;
}

int main() {
    check_device();
    Rows r = make_rows(8, 20, 1000, 110);
    r.z[1 * 1000 + 5] = r.z[1 * 1000 + 700] = 9.0f;     // tie across threads (5 and 188)
    r.z[2 * 1000 + 100] = r.z[2 * 1000 + 520] = 9.0f;   // the lower index in the higher warp (100 vs 8)
    r.z[3 * 1000 + 7] = r.z[3 * 1000 + 519] = 9.0f;     // one thread's two columns
    r.z[4 * 1000 + 42] = 10.0f, r.tgt[4] = 42;          // the target is the argmax
    r.z[5 * 1000 + 3] = NAN;                            // a NaN row
    for (int c = 0; c < 1000; c++) r.z[6 * 1000 + c] = -2.0f;   // all tied: index 0
    r.z[7 * 1000 + 999] = 12.0f;                        // the max in the last column
    run_case("V=1000, chunk of 8 rows of 20", r, true);
    check_tie("across threads", r, 1, 5, 700);
    check_tie("lower index, higher warp", r, 2, 100, 520);
    check_tie("within a thread", r, 3, 7, 519);
    check_tie("a constant row", r, 6, 0, 1);

    Rows big = make_rows(3, 3, 65536, 120);
    big.z[1 * 65536 + 40000] = big.z[1 * 65536 + 300] = 9.5f;
    run_case("V=65536", big, true);
    check_tie("V=65536", big, 1, 300, 40000);

#if !CUDA_EMU   // a chunk of rows of the real head, only where a GPU runs it quickly
    run_case("V=65536, 256 rows of 4096", make_rows(256, 4096, 65536, 150), true);
#endif
    float *d_loss = dev_alloc<float>(4);
    CHECK(xent_l2wrap_fwdbwd_cuda((bf16 *)nullptr, d_loss, nullptr, 4, 3, 10, 0) == cudaErrorInvalidValue, "R < N accepted");
    CHECK(xent_l2wrap_fwdbwd_cuda((bf16 *)nullptr, d_loss, nullptr, 4, 4, 0, 0) == cudaErrorInvalidValue, "V = 0 accepted");
    CHECK(xent_l2wrap_fwd_cuda(d_loss, (const bf16 *)nullptr, nullptr, 0, 10, 0) == cudaSuccess, "N = 0 refused");
    cudaFree(d_loss);
    return check_finish("t_xent");
}
