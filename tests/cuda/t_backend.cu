// The whole CUDA backend (cuda/backend_cuda.cu) against the CPU backend (lib/backend_cpu.c) in
// its bf16 mode, on tiny random models (tests/unit/model_test.h weights, so decays, gates and
// learning rates vary; the output matrices are not zero as after a fresh init):
//  - one step: the loss, the gradient norm and the updated weights agree within bf16 noise
//    (the CPU keeps activations in fp32, the GPU in bf16: tolerances below, measured margins in
//    the log);
//  - determinism: the same step from the same state gives the same bits; grad_cp 1 gives the
//    same bits as grad_cp 0 (the recompute is exact); get_state/set_state round-trip;
//  - a poisoned gradient is not applied and leaves the state untouched;
//  - --precision fp32 and tf32 (activations fp32, the forward and backward on the fp32 masters)
//    against the CPU backend's fp32 mode on the same cases: one step's loss, gradient norm and
//    every tensor's updated weights (tolerances at fp32_vs_cpu);
//  - what it refuses: T not a multiple of 16 (several ranks: t_backend_dp.cu);
//  - the memory plan of lib/gpuplan.c is what the backend allocates.
// Runs through the emulation in CI (tests/t_cuda_emu.sh) and on a GPU from the bundle.
#include "emu.h"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "check.h"
#define RWKV7C_CUDA 1   // backend.h then declares backend_cuda_open
extern "C" {
#include "backend.h"
#include "gpuplan.h"
#include "model.h"
#include "../unit/model_test.h"
}

struct Case {
    const char *name;
    int L, C, V, B, T;
};

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

static Backend *open_cuda(const ModelConfig *mc, const float *w, const BackendConfig *bc) {
    Error e;
    Backend *b = NULL;
    if (backend_cuda_open(mc, w, bc, &b, &e)) {
        CHECK(0, "backend_cuda_open: %s", e.msg);
        return NULL;
    }
    return b;
}

static int step(Backend *b, const std::vector<int32_t> &x, const std::vector<int32_t> &y, uint64_t n, double lr,
                StepResult *r, int poison = 0) {
    Error e;
    StepArgs a = {n, lr, poison};
    if (b->step(b, x.data(), y.data(), &a, r, &e)) {
        CHECK(0, "%s step: %s", b->name, e.msg);
        return -1;
    }
    return 0;
}

// The same seeded tokens for every case's runs: x and y of B*T ids below V.
static void random_tokens(const Case &k, std::vector<int32_t> *x, std::vector<int32_t> *y) {
    size_t BT = (size_t)k.B * k.T;
    x->resize(BT);
    y->resize(BT);
    unsigned seed = 11;
    for (size_t i = 0; i < BT; i++) {
        (*x)[i] = (int32_t)((check_random(&seed) + 1) * 0.5f * k.V) % k.V;
        (*y)[i] = (int32_t)((check_random(&seed) + 1) * 0.5f * k.V) % k.V;
    }
}

static void run_case(const Case &k) {
    printf("%s: L=%d C=%d V=%d B=%d T=%d\n", k.name, k.L, k.C, k.V, k.B, k.T);
    Error e;
    ModelConfig mc;
    if (config_default(&mc, k.L, k.C, k.V, 64, &e)) { CHECK(0, "config: %s", e.msg); return; }
    Model m;
    if (model_alloc(&m, &mc, &e)) { CHECK(0, "model: %s", e.msg); return; }
    tm_randomize(&m, 7);
    size_t P = m.layout.total;
    std::vector<int32_t> x, y;
    random_tokens(k, &x, &y);
    const double lr = 1e-3;
    BackendConfig bc = {};
    bc.B = k.B; bc.T = k.T; bc.bf16 = 1; bc.grad_cp = 0;
    bc.adam = {0.9, 0.99, 1e-18, 0.01, 1.0};

    // --- one step, CPU bf16 mode vs CUDA
    Backend *cpu = NULL;
    if (backend_cpu_open(&mc, m.w, &bc, &cpu, &e)) { CHECK(0, "cpu open: %s", e.msg); model_free(&m); return; }
    Backend *gpu = open_cuda(&mc, m.w, &bc);
    if (!gpu) { cpu->free(cpu); model_free(&m); return; }
    StepResult rc, rg;
    if (step(cpu, x, y, 1, lr, &rc) || step(gpu, x, y, 1, lr, &rg)) goto out;
    {
        printf("  loss cpu %.6f gpu %.6f (rel %.2e); grad norm cpu %.6g gpu %.6g (rel %.2e)\n", rc.loss, rg.loss,
               rel(rg.loss, rc.loss), rc.grad_norm, rg.grad_norm, rel(rg.grad_norm, rc.grad_norm));
        CHECK(rg.applied && rc.applied, "both steps applied");
        CHECK(rel(rg.loss, rc.loss) < 5e-3, "loss within 5e-3 relative");
        CHECK(rel(rg.grad_norm, rc.grad_norm) < 3e-2, "gradient norm within 3e-2 relative");
        std::vector<float> wc(P), wg(P), mg(P), vg(P);
        if (cpu->get_state(cpu, wc.data(), NULL, NULL, &e) || gpu->get_state(gpu, wg.data(), mg.data(), vg.data(), &e)) {
            CHECK(0, "get_state: %s", e.msg);
            goto out;
        }
        // the first Adam step moves each weight by about lr (2 lr for att.w0) times the sign of
        // its gradient; where a gradient is tiny its sign is noise, so compare the updates as a
        // whole: ||dw_gpu - dw_cpu|| / ||dw_cpu||, and no weight moved by more than 2 lr + decay
        double num = 0, den = 0, worst = 0;
        for (size_t i = 0; i < P; i++) {
            double dc = (double)wc[i] - m.w[i], dg = (double)wg[i] - m.w[i];
            num += (dg - dc) * (dg - dc);
            den += dc * dc;
            worst = fmax(worst, fabs(dg));
        }
        double upd = sqrt(num / fmax(den, 1e-300));
        printf("  updated weights: ||dw_gpu - dw_cpu|| / ||dw_cpu|| = %.3f, largest |dw_gpu| = %.3g\n", upd, worst);
        CHECK(upd < 0.35, "updates agree (relative L2 %.3f < 0.35)", upd);
        CHECK(worst < 2 * lr * 1.05 + 1e-6, "no weight moved more than 2 lr");
        // ... and tensor by tensor, so that a small tensor whose gradient is missing (its update
        // then only the weight decay, a relative error near 1) cannot hide in the total: each
        // tensor's relative L2 below 0.6, and where the CPU moved a weight by more than lr/2
        // (a gradient well above noise), the same direction for at least 80% of them
        double worst_rel = 0, worst_sign = 1;
        const char *worst_rel_name = "", *worst_sign_name = "";
        for (int t = 0; t < m.layout.n; t++) {
            const ParamInfo *p = &m.layout.p[t];
            double tn = 0, td = 0;
            size_t moved = 0, agree = 0;
            for (size_t i = p->offset; i < p->offset + p->numel; i++) {
                double dc = (double)wc[i] - m.w[i], dg = (double)wg[i] - m.w[i];
                tn += (dg - dc) * (dg - dc);
                td += dc * dc;
                if (fabs(dc) > 0.5 * lr) { moved++; agree += (dc > 0) == (dg > 0); }
            }
            double r = td > 0 ? sqrt(tn / td) : sqrt(tn);
            double sa = moved ? (double)agree / moved : 1;
            if (r > worst_rel) { worst_rel = r; worst_rel_name = p->name; }
            if (sa < worst_sign) { worst_sign = sa; worst_sign_name = p->name; }
        }
        printf("  per tensor: worst relative L2 %.3f (%s), worst direction agreement %.3f (%s)\n", worst_rel,
               worst_rel_name, worst_sign, worst_sign_name);
        CHECK(worst_rel < 0.6, "every tensor's update agrees (worst %s: %.3f)", worst_rel_name, worst_rel);
        CHECK(worst_sign >= 0.8, "every tensor moves the same way (worst %s: %.3f)", worst_sign_name, worst_sign);

        // --- determinism: the same step again from the same start gives the same bits
        std::vector<float> w2(P);
        Backend *again = open_cuda(&mc, m.w, &bc);
        if (!again) goto out;
        StepResult r2;
        if (!step(again, x, y, 1, lr, &r2) && !again->get_state(again, w2.data(), NULL, NULL, &e))
            CHECK(!memcmp(w2.data(), wg.data(), P * sizeof(float)) && r2.loss == rg.loss && r2.grad_norm == rg.grad_norm,
                  "a repeated step gives the same bits");
        again->free(again);

        // --- grad_cp 1: the same bits over two steps
        BackendConfig cp = bc;
        cp.grad_cp = 1;
        Backend *gcp = open_cuda(&mc, m.w, &cp);
        if (!gcp) goto out;
        StepResult r3;
        std::vector<float> w3(P), w4(P);
        if (!step(gcp, x, y, 1, lr, &r3) && !step(gcp, y, x, 2, lr, &r3) && !gcp->get_state(gcp, w3.data(), NULL, NULL, &e) &&
            !step(gpu, y, x, 2, lr, &rg) && !gpu->get_state(gpu, w4.data(), NULL, NULL, &e))
            CHECK(!memcmp(w3.data(), w4.data(), P * sizeof(float)), "grad_cp 1 and 0 give the same bits after 2 steps");
        gcp->free(gcp);

        // --- set_state / get_state round trip, then a poisoned step changes nothing
        std::vector<float> sw(P), sm(P), sv(P), gw(P), gm(P), gv(P);
        for (size_t i = 0; i < P; i++) {
            sw[i] = m.w[i] * 0.5f;
            sm[i] = (float)i * 1e-7f;
            sv[i] = (float)i * 1e-9f;
        }
        if (gpu->set_state(gpu, sw.data(), sm.data(), sv.data(), &e) ||
            gpu->get_state(gpu, gw.data(), gm.data(), gv.data(), &e)) {
            CHECK(0, "set/get state: %s", e.msg);
            goto out;
        }
        CHECK(gw == sw && gm == sm && gv == sv, "set_state then get_state returns the same bits");
        StepResult rp;
        if (!step(gpu, x, y, 3, lr, &rp, 1) && !gpu->get_state(gpu, gw.data(), gm.data(), gv.data(), &e))
            CHECK(!rp.applied && gw == sw && gm == sm && gv == sv, "a poisoned gradient is not applied (norm %g)",
                  rp.grad_norm);
        uint64_t peak = gpu->device_peak ? gpu->device_peak(gpu) : 0;
        GpuArenaSizes sz;
        gpu_arena_sizes(&mc, &bc, &sz);
        GpuPlan plan;
        gpu_plan(&mc, &bc, &plan);
        CHECK(plan.total == sz.params + sz.acts + sz.work, "the plan's total is what the backend allocates (%llu)",
              (unsigned long long)plan.total);
        printf("  device memory high-water %.1f MiB, plan %.1f MiB\n", peak / 1048576.0, plan.total / 1048576.0);
    }
out:
    cpu->free(cpu);
    gpu->free(gpu);
    model_free(&m);
}

// One step of the CUDA backend in fp32 (tf32 0) or tf32 against the CPU backend in fp32, and
// its repeat from the same state bit for bit.
// Tolerances.  fp32: both sides compute the same fp32 math on the same fp32 weights, differing
// only in the order of sums (BLAS blocking, warp butterflies, the GPU's WKV backward dividing by
// the decay where the CPU replays the chunk), __expf/rsqrtf against libm, FMA contraction: a few
// ulps per op, some 1e-6 relative after the depth of the model; measured here (emulation)
// loss 0 to 3e-7 relative, gradient norm below 1e-6: bounds 1e-5 and 1e-4.  The updates: the
// first Adam step moves each weight by lr times the sign of its gradient, so compare per tensor
// (relative L2 of the change against the CPU's change): a weight whose gradient is at the noise
// level may flip its sign (measured: one of blocks.0.ln0.weight's 128).  So Adam's eps is 1
// here: the first update is lr g / (|g| + 1), smooth in g, and the per-tensor relative L2 of the
// updates measures the gradients themselves (lr 1 keeps the change far above the weights' own
// ulp).  fp32: the GPU's WKV backward walks each 16-step chunk back by dividing the state by the
// decay (>= 0.545, as the official kernel), which can grow an fp32 rounding by up to
// 0.545^-16 = 1.6e4 where the CPU replays the chunk forward: measured 3.5e-4 on the decay's
// path (att.x_w), 1e-6 elsewhere; bound 2e-3.
// tf32: every GEMM input rounded to 10 mantissa bits (relative 2^-11 = 4.9e-4 each): the loss
// within 1e-3 (measured 4e-5), the gradient norm within 1e-2 (7e-4), every tensor's update
// within 3e-2 (1e-2, att.x_a); and the loss must differ from fp32's, or tf32 was not applied.
static void fp32_vs_cpu(const Case &k, int tf32) {
    const char *mode = tf32 ? "tf32" : "fp32";
    printf("%s, %s vs CPU fp32: L=%d C=%d V=%d B=%d T=%d\n", k.name, mode, k.L, k.C, k.V, k.B, k.T);
    Error e;
    ModelConfig mc;
    if (config_default(&mc, k.L, k.C, k.V, 64, &e)) { CHECK(0, "config: %s", e.msg); return; }
    Model m;
    if (model_alloc(&m, &mc, &e)) { CHECK(0, "model: %s", e.msg); return; }
    tm_randomize(&m, 7);
    size_t P = m.layout.total;
    std::vector<int32_t> x, y;
    random_tokens(k, &x, &y);
    // lr 1: the change of a weight is then well above its fp32 ulp, which the difference
    // new - old would otherwise add to the comparison (at lr 1e-3, 1e-3 relative)
    const double lr = 1.0;
    BackendConfig bc = {};
    bc.B = k.B; bc.T = k.T; bc.bf16 = 0; bc.grad_cp = 0;
    bc.adam = {0.9, 0.99, 1.0, 0.01, 1.0};   // eps 1: the update follows the gradient (above)
    Backend *cpu = NULL;
    if (backend_cpu_open(&mc, m.w, &bc, &cpu, &e)) { CHECK(0, "cpu open: %s", e.msg); model_free(&m); return; }
    bc.tf32 = tf32;
    Backend *gpu = open_cuda(&mc, m.w, &bc);
    if (!gpu) { cpu->free(cpu); model_free(&m); return; }
    const double loss_tol = tf32 ? 1e-3 : 1e-5, norm_tol = tf32 ? 1e-2 : 1e-4, upd_tol = tf32 ? 3e-2 : 2e-3;
    StepResult rc, rg;
    if (!step(cpu, x, y, 1, lr, &rc) && !step(gpu, x, y, 1, lr, &rg)) {
        printf("  loss cpu %.7f gpu %.7f (rel %.2e); grad norm cpu %.7g gpu %.7g (rel %.2e)\n", rc.loss, rg.loss,
               rel(rg.loss, rc.loss), rc.grad_norm, rg.grad_norm, rel(rg.grad_norm, rc.grad_norm));
        CHECK(rg.applied && rc.applied, "both steps applied");
        CHECK(rel(rg.loss, rc.loss) < loss_tol, "%s loss within %g relative", mode, loss_tol);
        CHECK(rel(rg.grad_norm, rc.grad_norm) < norm_tol, "%s gradient norm within %g relative", mode, norm_tol);
        if (tf32) CHECK(rg.loss != rc.loss, "tf32's loss differs from fp32's (the inputs are rounded)");
        std::vector<float> wc(P), wg(P);
        if (cpu->get_state(cpu, wc.data(), NULL, NULL, &e) || gpu->get_state(gpu, wg.data(), NULL, NULL, &e)) {
            CHECK(0, "get_state: %s", e.msg);
        } else {
            double worst = 0;
            const char *worst_name = "";
            for (int t = 0; t < m.layout.n; t++) {
                const ParamInfo *p = &m.layout.p[t];
                double tn = 0, td = 0;
                for (size_t i = p->offset; i < p->offset + p->numel; i++) {
                    double dc = (double)wc[i] - m.w[i], dg = (double)wg[i] - m.w[i];
                    tn += (dg - dc) * (dg - dc);
                    td += dc * dc;
                }
                double r = td > 0 ? sqrt(tn / td) : sqrt(tn);
                if (r > worst) { worst = r; worst_name = p->name; }
            }
            printf("  per tensor: worst relative L2 of the update %.2e (%s)\n", worst, worst_name);
            CHECK(worst < upd_tol, "%s: every tensor's update within %g of the CPU's (worst %s: %.3g)", mode, upd_tol,
                  worst_name, worst);
            std::vector<float> w2(P);
            Backend *again = open_cuda(&mc, m.w, &bc);
            StepResult r2;
            if (again && !step(again, x, y, 1, lr, &r2) && !again->get_state(again, w2.data(), NULL, NULL, &e))
                CHECK(!memcmp(w2.data(), wg.data(), P * sizeof(float)) && r2.loss == rg.loss &&
                          r2.grad_norm == rg.grad_norm,
                      "%s: a repeated step gives the same bits", mode);
            if (again) again->free(again);
        }
        GpuArenaSizes sz;
        gpu_arena_sizes(&mc, &bc, &sz);
        GpuPlan plan;
        gpu_plan(&mc, &bc, &plan);
        CHECK(plan.total == sz.params + sz.acts + sz.work && plan.weights == 0 && plan.act_bytes == 4,
              "%s plan: no bf16 weights, fp32 activations, the total allocated", mode);
    }
    cpu->free(cpu);
    gpu->free(gpu);
    model_free(&m);
}

static void refusals(void) {
    Error e;
    ModelConfig mc;
    if (config_default(&mc, 2, 64, 32, 64, &e)) { CHECK(0, "config: %s", e.msg); return; }
    Model m;
    if (model_alloc(&m, &mc, &e)) return;
    BackendConfig bc = {};
    bc.B = 1; bc.T = 24; bc.bf16 = 1;
    bc.adam = {0.9, 0.99, 1e-18, 0, 1.0};
    Backend *b = (Backend *)&e;
    CHECK(backend_cuda_open(&mc, m.w, &bc, &b, &e) && !b && strstr(e.msg, "multiple of 16"), "T=24 refused: %s", e.msg);
    model_free(&m);
}

int main() {
    check_device();
    run_case({"two layers, odd vocabulary", 2, 128, 333, 2, 32});
    run_case({"three layers, one sample, T=16", 3, 64, 64, 1, 16});
    for (int tf32 = 0; tf32 <= 1; tf32++) {
        fp32_vs_cpu({"two layers, odd vocabulary", 2, 128, 333, 2, 32}, tf32);
        fp32_vs_cpu({"three layers, one sample, T=16", 3, 64, 64, 1, 16}, tf32);
    }
    refusals();
    return check_finish("t_backend");
}
