// cuda/adam.cu against its CPU twins: adam_update (lib/ops.h; AdamW and L2, with and without
// the bf16 copy, the gradient scale from the host or from the device) and the gradient norm and
// clip scale (grad_global_norm, grad_clip_scale in lib/optim.h).  n is not a multiple of the
// 256-thread blocks.
//
// The kernel does the twin's IEEE operations in the same order without FMA contraction, so it
// must equal, bit for bit, a reference written here the same way (this file is ISO C++: g++
// does not contract it).  Against the twin itself (built -march=native in GNU C, where the
// compiler may fuse a*b+c) the tolerance is k = 1/4096 of a bf16 ulp (16 fp32 ulps) at the
// scale of the terms (m = beta1 m + (1 - beta1) g cancels: an FMA changes it relative to the
// terms, not to the result).
// The norm (double sums in another order): relative 1e-12.
#include "emu.h"
#include "twin.h"
#include "adam.cuh"
#include "ops.h"

extern "C" double grad_global_norm(const float *g, size_t n);   // lib/optim.h
extern "C" float grad_clip_scale(double norm, double clip);

struct Hyper {
    float lr, beta1, beta2, eps, bc1, bc2, wd;
};

static void adam_exact(Vec &w, Vec &m, Vec &v, Vec *wb, const Vec &g, float scale, const Hyper &h, bool adamw) {
    for (size_t i = 0; i < w.size(); i++) {
        float gi = g[i] * scale, wi = w[i];
        if (!adamw) gi = gi + h.wd * wi;
        float t1 = h.beta1 * m[i], t2 = (1 - h.beta1) * gi, mi = t1 + t2;
        float u1 = h.beta2 * v[i], u2 = (1 - h.beta2) * gi, u3 = u2 * gi, vi = u1 + u3;
        float q = vi / h.bc2, denom = sqrtf(q) + h.eps;
        float update = (mi / h.bc1) / denom;
        if (adamw) {
            float d = h.wd * wi;
            update = update + d;
        }
        float step = h.lr * update;
        w[i] = wi - step;
        m[i] = mi;
        v[i] = vi;
        if (wb) (*wb)[i] = round_bf16(w[i]);
    }
}

static void test_adam(bool adamw, bool copy, bool devscale, size_t n = 1003) {
    printf("adam n=%zu %s%s%s\n", n, adamw ? "AdamW" : "L2", copy ? ", bf16 copy" : "", devscale ? ", device scale" : "");
    Hyper h = {1e-3f, 0.9f, 0.99f, 1e-8f, 0, 0, adamw ? 0.1f : 0.0f};
    h.bc1 = (float)(1.0 - pow((double)h.beta1, 3.0));   // step 3, as optim.c computes them
    h.bc2 = (float)(1.0 - pow((double)h.beta2, 3.0));
    const float scale = 0.5f;
    Vec w(n), m(n), v(n), g(n);
    unsigned s = 130;
    for (size_t i = 0; i < n; i++) {
        w[i] = check_random(&s), m[i] = 0.01f * check_random(&s);
        v[i] = 1e-4f * fabsf(check_random(&s)), g[i] = 0.1f * check_random(&s);
    }
    Vec tw = w, tm = m, tv = v, tb(n), ew = w, em = m, ev = v, eb(n);
    adam_update(tw.data(), tm.data(), tv.data(), copy ? tb.data() : nullptr, g.data(), n, scale, h.lr, h.beta1,
                h.beta2, h.eps, h.bc1, h.bc2, h.wd, adamw);
    adam_exact(ew, em, ev, copy ? &eb : nullptr, g, scale, h, adamw);
    float *d_w = dev_f32(w), *d_m = dev_f32(m), *d_v = dev_f32(v), *d_g = dev_f32(g), *d_s = dev_f32(Vec{scale});
    bf16 *d_b = copy ? dev_alloc<bf16>(n) : nullptr;
    if (devscale)
        CUDA_OK(adam_update_devscale_cuda(d_w, d_m, d_v, d_b, d_g, n, d_s, h.lr, h.beta1, h.beta2, h.eps, h.bc1, h.bc2,
                                          h.wd, adamw, 0));
    else
        CUDA_OK(adam_update_cuda(d_w, d_m, d_v, d_b, d_g, n, scale, h.lr, h.beta1, h.beta2, h.eps, h.bc1, h.bc2, h.wd,
                                 adamw, 0));
    Vec gw = get(d_w, n), gm = get(d_m, n), gv = get(d_v, n);
    compare("w (exact)", gw, ew, 0, 0);
    compare("m (exact)", gm, em, 0, 0);
    compare("v (exact)", gv, ev, 0, 0);
    compare("w vs twin", gw, tw, 1.0 / 4096, 0);
    Vec mscale(n);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * scale + (adamw ? 0.0f : h.wd * w[i]);
        mscale[i] = fabsf(h.beta1 * m[i]) + fabsf((1 - h.beta1) * gi);
    }
    compare("m vs twin", gm, tm, 1.0 / 4096, 0, &mscale);
    compare("v vs twin", gv, tv, 1.0 / 4096, 0);
    if (copy) {
        compare("w_bf16 (exact)", get(d_b, n), eb, 0, 0);
        compare("w_bf16 vs twin", get(d_b, n), tb, 1, 0);   // at most one rounding step apart
    }
    cudaFree(d_w), cudaFree(d_m), cudaFree(d_v), cudaFree(d_g), cudaFree(d_s), cudaFree(d_b);
}

static void test_norm(void) {
    printf("gradient norm and clip\n");
    const size_t n1 = 100003, n2 = 517;
    Vec g(n1 + n2);
    unsigned s = 140;
    for (float &x : g) x = 0.01f * check_random(&s);
    g[7] = 3.0f;
    double ref = grad_global_norm(g.data(), g.size());
    float *d_g = dev_f32(g);
    double *d_acc = dev_alloc<double>(1), *d_scratch = dev_alloc<double>(SUMSQ_BLOCKS), *d_norm = dev_alloc<double>(1);
    float *d_scale = dev_alloc<float>(1);
    auto run = [&] {
        CUDA_OK(cudaMemset(d_acc, 0, sizeof(double)));
        CUDA_OK(sumsq_acc_cuda(d_acc, d_scratch, d_g, n1, 0));        // two tensors, in a fixed order
        CUDA_OK(sumsq_acc_cuda(d_acc, d_scratch, d_g + n1, n2, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d_acc, 1);
        return bytes;
    };
    run();
    double got;
    for (double clip : {1.0, 0.0, 1e6}) {
        CUDA_OK(clip_scale_cuda(d_scale, d_norm, d_acc, clip, 0));
        CUDA_OK(cudaMemcpy(&got, d_norm, sizeof got, cudaMemcpyDeviceToHost));
        CHECK(fabs(got - ref) <= 1e-12 * ref, "norm %.17g, twin %.17g", got, ref);
        float sc = get(d_scale, 1)[0], want = grad_clip_scale(ref, clip);
        CHECK(fabsf(sc - want) <= 1e-6f * want, "clip %g: scale %.9g, twin %.9g", clip, sc, want);
        printf("  clip %-8g norm %.17g (twin %.17g) scale %.9g (twin %.9g)\n", clip, got, ref, sc, want);
    }
    check_bits_repeat("sum of squares", run);
    CHECK(clip_scale_cuda(nullptr, d_norm, d_acc, 1.0, 0) == cudaErrorInvalidValue, "a NULL scale accepted");
    CHECK(adam_update_devscale_cuda(nullptr, nullptr, nullptr, nullptr, nullptr, 5, nullptr, 0, 0, 0, 0, 1, 1, 0, 1,
                                    0) == cudaErrorInvalidValue,
          "a NULL device scale accepted");
    cudaFree(d_g), cudaFree(d_acc), cudaFree(d_scratch), cudaFree(d_norm), cudaFree(d_scale);
}

int main() {
    check_device();
    test_adam(true, true, false);
    test_adam(true, false, true);
    test_adam(false, true, true);
    test_adam(false, false, false);
#if !CUDA_EMU   // a parameter-sized span, past the grid-stride's 8192 blocks
    test_adam(true, true, true, (size_t)5 << 20);
#endif
    test_norm();
    return check_finish("t_adam");
}
