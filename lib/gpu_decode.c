/* gpu_decode.c: the GPU decoder's names (gpu_decode.h); the work is in cuda/backend_cuda.cu,
 * compiled in with RWKV7C_CUDA (make cuda, make cuda-emu). */
#include "gpu_decode.h"

int gpu_decoder_check(Error *e)
{
#ifdef RWKV7C_CUDA
    (void)e;
    return 0;
#else
    return fail(e, "--accelerator gpu: this build has no CUDA backend (build it with `make cuda`: "
                "build/cuda/bin/rwkv-generate; or use --accelerator cpu)");
#endif
}

int gpu_decoder_open(const Model *m, GpuDecoder **out, Error *e)
{
    *out = NULL;
    if (gpu_decoder_check(e)) return -1;
#ifdef RWKV7C_CUDA
    return gpu_decoder_cuda_open(m, out, e);
#else
    (void)m;
    return -1;
#endif
}

int gpu_decoder_feed(GpuDecoder *d, const int32_t *tokens, int n, float *logits, Error *e)
{
#ifdef RWKV7C_CUDA
    return gpu_decoder_cuda_feed(d, tokens, n, logits, e);
#else
    (void)d; (void)tokens; (void)n; (void)logits;
    return gpu_decoder_check(e);
#endif
}

int gpu_decoder_reset(GpuDecoder *d, Error *e)
{
#ifdef RWKV7C_CUDA
    return gpu_decoder_cuda_reset(d, e);
#else
    (void)d;
    return gpu_decoder_check(e);
#endif
}

void gpu_decoder_free(GpuDecoder *d)
{
#ifdef RWKV7C_CUDA
    gpu_decoder_cuda_free(d);
#else
    (void)d;
#endif
}
