// cuda/wkv6.cuh: the WKV6 recurrence (x060) on a GPU, twins of lib/ops6.h's wkv6_fwd / wkv6_bwd
// (same argument order, bf16 activations, a trailing stream; the backward's scratch is sized by
// wkv6_bwd_cuda_scratch_floats, and the CPU's thread count has no counterpart).
//
// Layouts as the twins: r, k, v, w, y and their gradients are (B*T, H*64) bf16, w the raw decay
// logit (d = exp(-exp(w)), any w); u (time_faaaa) is (H*64) bf16, the parameter's bf16 copy;
// state is (H,64,64) fp32, S[i][j] row-major (i value, j key).
//
// Any T >= 1, forward and backward: the official kernel keeps the backward's per-step gw terms
// in a local array of ctx_len - 2 floats (so T <= ctx_len, compiled in); here they go to scratch,
// so nothing bounds T but memory.  Errors are returned, never fatal: cudaErrorInvalidValue, with
// nothing written, for T, B or H < 1, a missing pointer, or a state with B != 1; otherwise the
// launch's own error (cudaGetLastError).  The work is queued on `stream`.
#ifndef RWKV7C_CUDA_WKV6_CUH
#define RWKV7C_CUDA_WKV6_CUH
#include "emu.h"
#include <cuda_bf16.h>
#include <stddef.h>

// y written (bf16); state (may be NULL; B == 1 only): the initial state on entry, the final one
// on return (16-byte aligned: rows move as float4).  Without a state the recurrence starts from zero.
cudaError_t wkv6_fwd_cuda(__nv_bfloat16 *y, float *state, const __nv_bfloat16 *r, const __nv_bfloat16 *k,
                          const __nv_bfloat16 *v, const __nv_bfloat16 *w, const __nv_bfloat16 *u, int B, int T,
                          int H, cudaStream_t stream);

// From zero initial state, no states saved: each gradient is rebuilt by its own sweep, as the
// official backward.  dr, dk, dv, dw (raw w) written, bf16, each rounded once from fp32 (dw is
// exactly 0 at t = 0 and t = T-1); du (C) fp32 += the sum over the batch (in batch order).
// scratch (device, wkv6_bwd_cuda_scratch_floats) holds gw's per-step terms and the per-batch gu.
cudaError_t wkv6_bwd_cuda(__nv_bfloat16 *dr, __nv_bfloat16 *dk, __nv_bfloat16 *dv, __nv_bfloat16 *dw, float *du,
                          float *scratch, const __nv_bfloat16 *dy, const __nv_bfloat16 *r, const __nv_bfloat16 *k,
                          const __nv_bfloat16 *v, const __nv_bfloat16 *w, const __nv_bfloat16 *u, int B, int T, int H,
                          cudaStream_t stream);
// B*T*H*64 + B*H*64 floats
size_t wkv6_bwd_cuda_scratch_floats(int B, int T, int H);
#endif
