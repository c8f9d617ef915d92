// cuda/adam.cu's check mode (adam_check_devscale_cuda) against its twin: adam_update (lib/ops.h)
// run on copies, then the new weights, m and v counted as the trainer counts them (not finite;
// v also below 0).  Planted: a gradient whose square overflows fp32 (v = inf, as with
// --grad_clip 0 and huge weights), a weight pushed past FLT_MAX by a huge LR, a NaN moment; the
// counts must be equal and the check must write nothing (the bits of w, m, v unchanged).
#include "emu.h"
#include "twin.h"
#include "adam.cuh"
#include "ops.h"

static void twin_counts(const Vec &w0, const Vec &m0, const Vec &v0, const Vec &g, float scale, float lr, bool adamw,
                        unsigned long long want[3]) {
    Vec w = w0, m = m0, v = v0;
    adam_update(w.data(), m.data(), v.data(), NULL, g.data(), w.size(), scale, lr, 0.9f, 0.99f, 1e-18f, 0.1f,
                0.0199f, 0.01f, adamw);
    want[0] = want[1] = want[2] = 0;
    for (size_t i = 0; i < w.size(); i++) {
        want[0] += !std::isfinite(w[i]);
        want[1] += !std::isfinite(m[i]);
        want[2] += !std::isfinite(v[i]) || !(v[i] >= 0);
    }
}

static void run(const char *name, Vec w, Vec m, Vec v, Vec g, float scale, float lr, bool adamw) {
    unsigned long long want[3], got[3];
    twin_counts(w, m, v, g, scale, lr, adamw, want);
    size_t n = w.size();
    float *dw = dev_f32(w), *dm = dev_f32(m), *dv = dev_f32(v), *dg = dev_f32(g), *ds = dev_f32(Vec{scale});
    unsigned long long *dc = dev_alloc<unsigned long long>(3);
    CUDA_OK(cudaMemset(dc, 0, 3 * sizeof *dc));
    CUDA_OK(adam_check_devscale_cuda(dc, dw, dm, dv, dg, n, ds, lr, 0.9f, 0.99f, 1e-18f, 0.1f, 0.0199f, 0.01f, adamw, 0));
    CUDA_OK(cudaMemcpy(got, dc, sizeof got, cudaMemcpyDeviceToHost));
    printf("%s: w %llu m %llu v %llu (twin %llu %llu %llu)\n", name, got[0], got[1], got[2], want[0], want[1], want[2]);
    CHECK(got[0] == want[0] && got[1] == want[1] && got[2] == want[2], "%s: counts equal the twin's", name);
    Vec w2 = get(dw, n), m2 = get(dm, n), v2 = get(dv, n);
    CHECK(!memcmp(w2.data(), w.data(), n * 4) && !memcmp(m2.data(), m.data(), n * 4) && !memcmp(v2.data(), v.data(), n * 4),
          "%s: nothing written", name);
    CHECK(adam_check_devscale_cuda(nullptr, dw, dm, dv, dg, n, ds, lr, 0.9f, 0.99f, 1e-18f, 0.1f, 0.0199f, 0.01f, adamw,
                                   0) == cudaErrorInvalidValue, "%s: no counter refused", name);
}

int main() {
    check_device();
    size_t n = 70001;   // not a multiple of the blocks
    Vec w = rand_bf16(n, 1, -1, 1), m = rand_bf16(n, 2, -0.1f, 0.1f), v = rand_bf16(n, 3, 0, 0.01f),
        g = rand_bf16(n, 4, -1, 1);
    run("finite update", w, m, v, g, 1.0f, 1e-3f, true);
    Vec g2 = g;
    g2[5] = 3e38f;          // g^2 overflows: v = inf
    g2[65536] = -2e20f;     // and again past a block boundary
    run("g^2 overflows (adamw)", w, m, v, g2, 1.0f, 1e-3f, true);
    run("g^2 overflows (L2)", w, m, v, g2, 1.0f, 1e-3f, false);
    Vec w3 = w;
    w3[100] = 3.4e38f;      // with L2 decay the gradient, then g^2, overflows
    run("L2 decay of a huge weight", w3, m, v, g, 1.0f, 1e-3f, false);
    run("weights pushed past FLT_MAX by the LR", w, m, v, g, 1.0f, 3e38f, true);
    Vec m4 = m;
    m4[n - 1] = NAN;
    run("a NaN moment", w, m4, v, g, 1.0f, 1e-3f, true);
    return check_finish("t_adam_check");
}
