// cuda/wkv7.cuh: the WKV7 recurrence on a GPU, twins of lib/ops.h's wkv7_fwd / wkv7_bwd
// (same argument order, bf16 activations, a trailing stream; the backward's scratch is sized by
// wkv7_bwd_cuda_scratch_floats, and the CPU's thread count has no counterpart).  Include
// cuda/emu.h first.
//
// Layouts as the twins: r, w, k, v, kk, a, y and the gradients are (B*T, H*64) bf16, w raw (the
// decay is exp(-exp(-0.5) sigmoid(w))); ckpt is wkv7_ckpt_floats(B,T,H) fp32, the state before
// steps 0, 16, 32, ... of each (batch, head), S[i][j] row-major (i value, j key).
//
// A is __nv_bfloat16 (--precision bf16) or float (fp32/tf32: every input and output fp32, the
// same fp32 math inside without the roundings).
//
// Errors are returned, never fatal: cudaErrorInvalidValue, with nothing written, for T not a
// positive multiple of WKV7_CHUNK (16) (the forward without checkpoints takes any T >= 1), B or H < 1, a missing pointer, or a state with B != 1;
// otherwise the launch's own error (cudaGetLastError).  The work is queued on `stream`.
#ifndef RWKV7C_CUDA_WKV7_CUH
#define RWKV7C_CUDA_WKV7_CUH
#include "ops.h"

#ifndef RWKV7C_NO_DEDUCE
#define RWKV7C_NO_DEDUCE
// For an argument that may be nullptr: its type follows the others' A instead of deducing it.
template <class T> struct NoDeduce { typedef T type; };
#endif

// y written (bf16); ckpt (may be NULL: inference) written; state (may be NULL; B == 1 only) is
// (H,64,64) fp32: the initial state on entry, the final one on return.
template <class A>
cudaError_t wkv7_fwd_cuda(typename NoDeduce<A>::type *y, float *ckpt, float *state, const A *r,
                          const A *w, const A *k, const A *v,
                          const A *kk, const A *a, int B, int T, int H,
                          cudaStream_t stream);

// From the checkpoints of wkv7_fwd_cuda (whatever state ckpt[0] holds; no gradient for it).
// dr, dk, dv += (bf16(old + new)); dw (raw w), dkk, da written; all bf16, each rounded once from
// its fp32 sum.  scratch (device, wkv7_bwd_cuda_scratch_floats) receives each step's S a (the
// official forward saves it as `sa`) recomputed from the checkpoints, and the final states; the
// backward then walks each chunk back from the state after it by dividing by the decay, as the
// official clampw kernel does.
template <class A>
cudaError_t wkv7_bwd_cuda(A *dr, A *dw, A *dk, A *dv,
                          A *dkk, A *da, float *scratch, const A *dy,
                          const A *r, const A *w, const A *k,
                          const A *v, const A *kk, const A *a,
                          const float *ckpt, int B, int T, int H, cudaStream_t stream);
// B*T*H*64 + B*H*64*64 floats
size_t wkv7_bwd_cuda_scratch_floats(int B, int T, int H);
#endif
