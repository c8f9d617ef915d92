/* backend_test: the accelerator dispatch of lib/backend.c: "cpu" opens and
 * trains a step; "gpu"/"cuda" say this build has no CUDA backend (in a build
 * without RWKV7C_CUDA); unknown names are refused; nothing is returned on
 * failure; the memory estimate is dispatched by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "init.h"
#include "model.h"
#define CHECK_VERBOSE   /* the log shows the loss and the memory estimate */
#include "check.h"

int main(void)
{
    Error e;
    ModelConfig c;
    if (config_default(&c, 2, 64, 16, 64, &e)) { printf("FAIL config: %s\n", e.msg); return 1; }
    BackendConfig bc = { .B = 1, .T = 4, .adam = { 0.9, 0.99, 1e-8, 0, 1.0 } };
    Model m;
    if (model_alloc(&m, &c, &e) || init_model(&m, 1, &e)) { printf("FAIL model: %s\n", e.msg); return 1; }
    size_t P = m.layout.total;
    const float *w = m.w;

    CHECK(backend_check("cpu", &e) == 0, "cpu is available");
    Backend *b = NULL;
    CHECK(backend_open("cpu", &c, w, &bc, &b, &e) == 0 && b && !strcmp(b->name, "cpu"), "cpu opens");
    if (b) {
        int32_t x[4] = { 1, 2, 3, 4 }, y[4] = { 2, 3, 4, 5 };
        StepArgs a = { .adam_step = 1, .lr = 1e-3 };
        StepResult r;
        CHECK(b->step(b, x, y, &a, &r, &e) == 0 && r.applied && isfinite(r.loss), "cpu trains a step (loss %g)", r.loss);
        b->free(b);
    }
#ifndef RWKV7C_CUDA
    const char *gpus[] = { "gpu", "cuda" };
    for (int i = 0; i < 2; i++) {
        b = (Backend *)&e;   /* must be reset to NULL */
        CHECK(backend_check(gpus[i], &e) != 0 && strstr(e.msg, "this build has no CUDA backend"), "%s: %s", gpus[i], e.msg);
        CHECK(backend_open(gpus[i], &c, w, &bc, &b, &e) != 0 && !b && strstr(e.msg, "no CUDA backend"),
              "%s: backend_open fails, no backend returned", gpus[i]);
    }
#endif
    b = (Backend *)&e;
    CHECK(backend_check("tpu", &e) != 0 && strstr(e.msg, "unknown --accelerator 'tpu'"), "tpu: %s", e.msg);
    CHECK(backend_open("tpu", &c, w, &bc, &b, &e) != 0 && !b, "tpu: backend_open fails, no backend returned");
    uint64_t mc = backend_memory_estimate("cpu", &c, &bc);
    CHECK(mc == backend_cpu_memory_estimate(&c, &bc) && mc > P * 4 * 4, "cpu memory estimate %.2f MiB", mc / 1048576.0);
    model_free(&m);
    return check_done();
}
