// The CUDA backend's data-parallel step (cuda/backend_cuda.cu step_dp, BackendConfig.comm) on 2
// ranks against one rank with the whole batch, for ddp, deepspeed_stage_1 and
// deepspeed_stage_2 in bf16 and ddp in fp32: each rank takes half of the 4 samples (micro_bsz 2),
// the reference all 4 (micro_bsz 4), both on the CUDA backend in the same precision, for 3 steps:
//  - the loss (the mean over ranks) and the gradient norm per step agree within fp32 noise: the
//    gradient is the same sum in another order (per rank, then across ranks);
//  - the updated masters and moments (get_state, gathered from the shards) agree with the
//    reference's, and the strategies agree with each other;
//  - set_state then get_state gives back the same bits (the shards split and gathered again);
//  - a sharded strategy in fp32 is refused, on every rank, before any collective.
// The ranks: this program started without arguments runs itself once per strategy ("dp NAME");
// that process starts its second rank with launch_spawn (as rwkv-train --devices 2) and they
// talk over TCP (lib/comm_tcp.c); under the emulation the device buffers are host memory and
// the backend's device collectives use that communicator.  Built with nvcc it needs two
// devices (skipped otherwise).
#include "emu.h"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#define RWKV7C_CUDA 1
extern "C" {
#include "backend.h"
#include "comm.h"
#include "launch.h"
#include "model.h"
#include "../unit/model_test.h"
}

static const int L = 2, C = 64, V = 97, T = 16, STEPS = 3;
// the strategies, then ddp in fp32 (the sharded ones keep bf16 weights: fp32 refuses them)
static const char *NAMES[] = {"ddp", "deepspeed_stage_1", "deepspeed_stage_2", "ddp_fp32"};
static const int NRUNS = 4;

struct Run {
    std::vector<float> loss, norm, w, m, v;
};

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

// STEPS steps on samples [first, first + B) of the 4; the state gathered at the end.
static int train(const ModelConfig *mc, const float *w0, int B, int first, Comm *comm, int strategy, int bf16,
                 const std::vector<int32_t> &x, const std::vector<int32_t> &y, Run *out) {
    Error e;
    BackendConfig bc = {};
    bc.B = B; bc.T = T; bc.bf16 = bf16;
    bc.adam = {0.9, 0.99, 1e-18, 0.01, 1.0};
    bc.comm = comm;
    bc.world = comm ? comm_size(comm) : 1;
    bc.strategy = strategy;
    Backend *b = NULL;
    if (backend_cuda_open(mc, w0, &bc, &b, &e)) { CHECK(0, "backend_cuda_open: %s", e.msg); return -1; }
    for (int s = 0; s < STEPS; s++) {
        StepArgs a = {(uint64_t)s + 1, 1e-3, 0};
        StepResult r;
        if (b->step(b, x.data() + (size_t)first * T, y.data() + (size_t)first * T, &a, &r, &e)) {
            CHECK(0, "step %d: %s", s + 1, e.msg);
            b->free(b);
            return -1;
        }
        CHECK(r.applied, "step %d applied", s + 1);
        out->loss.push_back(r.loss);
        out->norm.push_back((float)r.grad_norm);
    }
    size_t P = config_param_count(mc);
    out->w.resize(P); out->m.resize(P); out->v.resize(P);
    int rc = b->get_state(b, out->w.data(), out->m.data(), out->v.data(), &e);
    if (rc) CHECK(0, "get_state: %s", e.msg);
    // the state split into shards and gathered again: the same bits
    std::vector<float> w2(P), m2(P), v2(P);
    if (!rc && (b->set_state(b, out->w.data(), out->m.data(), out->v.data(), &e) ||
                b->get_state(b, w2.data(), m2.data(), v2.data(), &e))) {
        CHECK(0, "set_state/get_state: %s", e.msg);
        rc = -1;
    }
    if (!rc)
        CHECK(!memcmp(w2.data(), out->w.data(), P * 4) && !memcmp(m2.data(), out->m.data(), P * 4) &&
              !memcmp(v2.data(), out->v.data(), P * 4), "set_state then get_state gives the same bits");
    b->free(b);
    return rc;
}

// Relative L2 distance of two updates from w0.
static double update_distance(const std::vector<float> &a, const std::vector<float> &b, const float *w0) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        double da = (double)a[i] - w0[i], db = (double)b[i] - w0[i];
        num += (da - db) * (da - db);
        den += db * db;
    }
    return sqrt(num / fmax(den, 1e-300));
}

static double max_rel_diff(const std::vector<float> &a, const std::vector<float> &b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / fmax(den, 1e-300);
}

static int run_strategy(int run, char **argv) {
    const int strategy = run == 3 ? DP_DDP : run, bf16 = run != 3;
    Error e;
    LaunchEnv env;
    LaunchChildren *kids = NULL;
    if (launch_from_env(&env, &e)) { printf("FAIL launch_from_env: %s\n", e.msg); return 1; }
    if (env.size == 1) {
        kids = launch_spawn(2, argv, &e);
        if (!kids || launch_from_env(&env, &e)) { printf("FAIL launch_spawn: %s\n", e.msg); return 1; }
    }
    ModelConfig mc;
    Model m;
    if (config_default(&mc, L, C, V, 64, &e) || model_alloc(&m, &mc, &e)) { printf("FAIL model: %s\n", e.msg); return 1; }
    tm_randomize(&m, 5);
    std::vector<int32_t> x(4 * T), y(4 * T);
    unsigned seed = 3;
    for (int i = 0; i < 4 * T; i++) {
        x[i] = (int32_t)((check_random(&seed) + 1) * 0.5f * V) % V;
        y[i] = (int32_t)((check_random(&seed) + 1) * 0.5f * V) % V;
    }
    Run ref, dp;
    // rank 0 first trains alone on all 4 samples (before the others need it in a collective)
    if (env.rank == 0 && train(&mc, m.w, 4, 0, NULL, DP_DDP, bf16, x, y, &ref)) return 1;
    Comm *comm = launch_open_comm(&env, kids, 120.0, &e);
    if (!comm) { printf("FAIL rank %d: launch_open_comm: %s\n", env.rank, e.msg); return 1; }
    if (!bf16) {   // every rank refuses a sharded fp32 run by itself: none waits in a collective
        BackendConfig bc = {};
        bc.B = 2; bc.T = T; bc.comm = comm; bc.world = 2; bc.strategy = DP_STAGE1;
        Backend *b = NULL;
        CHECK(backend_cuda_open(&mc, m.w, &bc, &b, &e) && !b && strstr(e.msg, "shards bf16 runs only"),
              "deepspeed_stage_1 in fp32 refused: %s", e.msg);
    }
    int rc = train(&mc, m.w, 2, 2 * env.rank, comm, strategy, bf16, x, y, &dp);
    comm_close(comm);
    if (env.rank == 0 && !rc) {
        printf("%s, 2 ranks x micro_bsz 2 vs 1 rank x micro_bsz 4:\n", NAMES[run]);
        double worst_loss = 0, worst_norm = 0;
        for (int s = 0; s < STEPS; s++) {
            printf("  step %d: loss %.7f vs %.7f, norm %.6g vs %.6g\n", s + 1, dp.loss[s], ref.loss[s], dp.norm[s],
                   ref.norm[s]);
            worst_loss = fmax(worst_loss, rel(dp.loss[s], ref.loss[s]));
            worst_norm = fmax(worst_norm, rel(dp.norm[s], ref.norm[s]));
        }
        double dw = update_distance(dp.w, ref.w, m.w), dm = max_rel_diff(dp.m, ref.m), dv = max_rel_diff(dp.v, ref.v);
        printf("  worst loss rel %.2e, norm rel %.2e; weights: update distance %.2e; m %.2e, v %.2e (of the largest)\n",
               worst_loss, worst_norm, dw, dm, dv);
        // bf16 activations: the same per-sample values; the sums differ in order only
        CHECK(worst_loss < 1e-5, "loss per step within 1e-5 relative (%.2e)", worst_loss);
        CHECK(worst_norm < 1e-4, "gradient norm per step within 1e-4 relative (%.2e)", worst_norm);
        // Adam moves a weight by ~lr times the sign of its gradient: where a gradient is noise
        // its sign may flip with the order of the sum; the update as a whole must agree
        CHECK(dw < 2e-2, "updates agree (relative L2 %.2e < 2e-2)", dw);
        CHECK(dm < 1e-3 && dv < 1e-3, "moments agree (%.2e, %.2e < 1e-3 of the largest)", dm, dv);
        // the whole state, for the comparison across strategies (the parent reads it)
        char path[64];
        snprintf(path, sizeof path, "t_backend_dp.%s.state", NAMES[run]);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(dp.w.data(), 4, dp.w.size(), f) != dp.w.size()) CHECK(0, "cannot write %s", path);
        if (f) fclose(f);
    }
    if (kids) {
        if (launch_children_wait(kids, 60.0, &e)) CHECK(0, "rank 1: %s", e.msg);
        launch_children_free(kids);
    }
    model_free(&m);
    return rc ? 1 : check_finish(NAMES[run]);
}

int main(int argc, char **argv) {
    check_device();
#if !CUDA_EMU
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 2) {
        printf("needs two CUDA devices\n");
        return 77;
    }
#endif
    if (argc == 3 && !strcmp(argv[1], "dp")) {
        for (int s = 0; s < NRUNS; s++)
            if (!strcmp(argv[2], NAMES[s])) return run_strategy(s, argv);
        return 2;
    }
    // each strategy in a process of its own (launch_spawn sets this process's environment)
    std::vector<std::vector<float>> w(NRUNS);
    for (int s = 0; s < NRUNS; s++) {
        std::string cmd = std::string("'") + argv[0] + "' dp " + NAMES[s];
        fflush(stdout);
        CHECK(system(cmd.c_str()) == 0, "%s: 2 ranks against 1", NAMES[s]);
        std::string path = std::string("t_backend_dp.") + NAMES[s] + ".state";
        FILE *f = fopen(path.c_str(), "rb");
        if (!f) continue;
        float buf[4096];
        size_t n;
        while ((n = fread(buf, 4, 4096, f)) > 0) w[s].insert(w[s].end(), buf, buf + n);
        fclose(f);
        remove(path.c_str());
    }
    // the strategies sum the gradient in the same order; the norm's sum of squares differs in
    // order only (whole vs shards), so the weights agree to the last bits
    for (int s = 1; s < 3; s++)
        if (!w[0].empty() && w[s].size() == w[0].size()) {
            double d = max_rel_diff(w[s], w[0]);
            printf("%s vs ddp: weights differ by %.2e of the largest\n", NAMES[s], d);
            CHECK(d < 1e-6, "%s agrees with ddp (%.2e)", NAMES[s], d);
        }
    return check_finish("t_backend_dp");
}
