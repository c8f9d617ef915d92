// cuda/fill.cuh: the small copies the backend needs between the kernels of lib/ops.h, tested in
// tests/cuda/t_fill.cu against plain loops (the CPU model does them with memcpy, lib/model.c
// fill_rows, and bf16_round in lib/backend_cpu.c).
#ifndef RWKV7C_CUDA_FILL_CUH
#define RWKV7C_CUDA_FILL_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>

// out[n][c] = vec[c] for every row n < rows: a bias broadcast before a GEMM with beta 1.
cudaError_t fill_rows_cuda(__nv_bfloat16 *out, const __nv_bfloat16 *vec, size_t rows, int C, cudaStream_t stream);
// The same into fp32 rows (the value gate's pre-activation is summed in fp32).
cudaError_t fill_rows_cuda(float *out, const __nv_bfloat16 *vec, size_t rows, int C, cudaStream_t stream);
// fp32 rows from an fp32 vector (--precision fp32/tf32: the masters are the weights).
cudaError_t fill_rows_cuda(float *out, const float *vec, size_t rows, int C, cudaStream_t stream);
// out = in rounded to the nearest bf16, ties to even (the bf16 copies of the fp32 masters).
cudaError_t round_bf16_cuda(__nv_bfloat16 *out, const float *in, size_t n, cudaStream_t stream);
// *count += the number of elements of x that are not finite (NaN or +-inf).
cudaError_t count_nonfinite_cuda(unsigned long long *count, const float *x, size_t n, cudaStream_t stream);
#endif
