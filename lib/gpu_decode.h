/* gpu_decode.h: rwkv-generate's prefill and decode on a CUDA device (rwkv-generate
 * --accelerator gpu): the training backend's forward (cuda/backend_cuda.cu, the same
 * kernels) with a recurrent state, B = 1.  Weights are held in bf16 on the device,
 * activations bf16 with fp32 math inside each kernel, the WKV state fp32, the logits
 * fp32 (the head's GEMM writes them in fp32).  gpu_decode.c dispatches: a build
 * without RWKV7C_CUDA has the names and refuses. */
#ifndef RWKV7C_GPU_DECODE_H
#define RWKV7C_GPU_DECODE_H
#include <stdint.h>
#include "model.h"
#include "util.h"

typedef struct GpuDecoder GpuDecoder;

/* 0 if this build can decode on a GPU, else -1 with the reason and the alternative. */
int  gpu_decoder_check(Error *e);
/* The model's weights go to device 0 as bf16; the state starts at zero. */
int  gpu_decoder_open(const Model *m, GpuDecoder **out, Error *e);
/* Feed n >= 1 tokens (prefill in chunks; one token = a decode step); logits (V floats) of
 * the last one if non-NULL.  Tokens outside the vocabulary are an error. */
int  gpu_decoder_feed(GpuDecoder *d, const int32_t *tokens, int n, float *logits, Error *e);
int  gpu_decoder_reset(GpuDecoder *d, Error *e);
void gpu_decoder_free(GpuDecoder *d);

#ifdef RWKV7C_CUDA
/* cuda/backend_cuda.cu */
int  gpu_decoder_cuda_open(const Model *m, GpuDecoder **out, Error *e);
int  gpu_decoder_cuda_feed(GpuDecoder *d, const int32_t *tokens, int n, float *logits, Error *e);
int  gpu_decoder_cuda_reset(GpuDecoder *d, Error *e);
void gpu_decoder_cuda_free(GpuDecoder *d);
#endif
#endif
