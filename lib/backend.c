/* backend.c: --accelerator names to backends (backend.h).  The CUDA backend
 * is compiled in only with RWKV7C_CUDA (make cuda, make cuda-emu); elsewhere
 * "gpu" and "cuda" are known names that this build cannot open. */
#include "backend.h"
#include "gpuplan.h"

#include <string.h>

int backend_is_gpu(const char *accelerator)
{
    return !strcmp(accelerator, "gpu") || !strcmp(accelerator, "cuda");
}
#define is_gpu backend_is_gpu

int backend_check(const char *accelerator, Error *e)
{
    if (!strcmp(accelerator, "cpu")) return 0;
#ifdef RWKV7C_CUDA
    if (is_gpu(accelerator)) return 0;
#else
    if (is_gpu(accelerator))
        return fail(e, "--accelerator %s: this build has no CUDA backend (build it with `make cuda`: "
                    "build/cuda/bin/rwkv-train; or use --accelerator cpu)", accelerator);
#endif
    return fail(e, "unknown --accelerator '%s' (use cpu)", accelerator);
}

int backend_open(const char *accelerator, const ModelConfig *c, const float *w, const BackendConfig *bc,
                 Backend **out, Error *e)
{
    *out = NULL;
    if (backend_check(accelerator, e)) return -1;
#ifdef RWKV7C_CUDA
    if (is_gpu(accelerator)) return backend_cuda_open(c, w, bc, out, e);
#endif
    return backend_cpu_open(c, w, bc, out, e);
}

uint64_t backend_memory_estimate(const char *accelerator, const ModelConfig *c, const BackendConfig *bc)
{
    if (is_gpu(accelerator)) {   /* the device plan, in any build (a --dry-run for another machine) */
        GpuPlan p;
        gpu_plan(c, bc, &p);
        return p.total + p.context;
    }
    return backend_cpu_memory_estimate(c, bc);
}

int backend_device_memory(uint64_t *free_bytes, uint64_t *total_bytes)
{
#ifdef RWKV7C_CUDA
    return backend_cuda_device_memory(free_bytes, total_bytes);
#else
    (void)free_bytes; (void)total_bytes;
    return -1;
#endif
}

const char *dp_strategy_name(int s)
{
    return s == DP_DDP ? "ddp" : s == DP_STAGE1 ? "deepspeed_stage_1" : "deepspeed_stage_2";
}

int dp_strategy_parse(const char *name, int *out, Error *e)
{
    static const char *const names[] = { "ddp", "deepspeed_stage_1", "deepspeed_stage_2" };
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) { *out = i; return 0; }
    if (strstr(name, "stage_3") || strstr(name, "offload"))
        return fail(e, "--strategy %s is out of scope: rwkv-train does ddp, deepspeed_stage_1 and deepspeed_stage_2 "
                    "(ZeRO stage 3 and CPU/NVMe offload are not implemented)", name);
    return fail(e, "--strategy %s: want ddp, deepspeed_stage_1 or deepspeed_stage_2", name);
}
