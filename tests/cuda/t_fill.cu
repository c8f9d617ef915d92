// cuda/fill.cu against plain loops: the row broadcasts (bf16 and fp32 rows), bf16 rounding of
// the masters (ties to even, NaN and infinities kept), and the non-finite count (a running sum
// over several calls, sizes across the block and grid edges).
#include "emu.h"
#include "twin.h"
#include "fill.cuh"

int main() {
    check_device();
    const size_t rows = 37;
    const int C = 70;
    Vec vec = rand_bf16(C, 3, -2, 2);
    bf16 *d_vec = dev_bf16(vec);
    bf16 *d_out = dev_alloc<bf16>(rows * C);
    float *d_out32 = dev_alloc<float>(rows * C);
    CUDA_OK(fill_rows_cuda(d_out, d_vec, rows, C, 0));
    CUDA_OK(fill_rows_cuda(d_out32, d_vec, rows, C, 0));
    Vec got = get(d_out, rows * C), got32 = get(d_out32, rows * C);
    int bad = 0;
    for (size_t n = 0; n < rows; n++)
        for (int c = 0; c < C; c++) bad += got[n * C + c] != vec[c] || got32[n * C + c] != vec[c];
    CHECK(bad == 0, "fill_rows: %d elements differ from the vector", bad);
    CHECK(fill_rows_cuda(d_out, d_vec, rows, 0, 0) == cudaErrorInvalidValue, "C = 0 refused");

    // rounding: ties to even, the edges of bf16, NaN and infinities
    Vec in = {1.0f, 1.00390625f /* tie: to even (1.0) */, 1.01171875f /* tie: up to 1.015625 */, -3.3f, 1e-40f,
              3.4e38f, INFINITY, -INFINITY, NAN, 0.0f, -0.0f};
    for (int i = 0; i < 3000; i++) in.push_back((float)i * 0.37f - 500.0f);
    float *d_in = dev_f32(in);
    bf16 *d_bf = dev_alloc<bf16>(in.size());
    CUDA_OK(round_bf16_cuda(d_bf, d_in, in.size(), 0));
    std::vector<unsigned char> bytes;
    get_bytes(bytes, d_bf, in.size());
    bad = 0;
    for (size_t i = 0; i < in.size(); i++) {
        bf16 ref = __float2bfloat16_rn(in[i]);
        bad += memcmp(&ref, &bytes[i * 2], 2) != 0;
    }
    CHECK(bad == 0, "round_bf16: %d values differ from __float2bfloat16_rn", bad);

    // the non-finite count, accumulated over two calls, across block and grid edges
    size_t n = 300000;
    Vec big(n, 1.0f);
    big[0] = NAN;
    big[255] = INFINITY;
    big[256] = -INFINITY;
    big[n - 1] = NAN;
    big[123457] = 3.4e38f;   // finite
    float *d_big = dev_f32(big);
    unsigned long long *d_count = dev_alloc<unsigned long long>(1), count = 0;
    CUDA_OK(cudaMemset(d_count, 0, sizeof count));
    CUDA_OK(count_nonfinite_cuda(d_count, d_big, n, 0));
    CUDA_OK(count_nonfinite_cuda(d_count, d_big, 200, 0));
    CUDA_OK(cudaMemcpy(&count, d_count, sizeof count, cudaMemcpyDeviceToHost));
    CHECK(count == 5, "count_nonfinite: %llu (want 4 + 1)", count);
    return check_finish("t_fill");
}
