// The fp32 variants of the kernels (--precision fp32/tf32: A = float, activations, their
// gradients and the parameters fp32) against their CPU twins (lib/ops_cpu.c), family by family
// on the edge shapes of the bf16 twin tests (t_mix, t_norm, t_wkv7, t_xent, t_gemm, t_fill):
// shift_mix with and without an initial shift, the activations, value residual, keyprep with a
// zero head (F.normalize's clamp), embedding with repeated tokens, LayerNorm (+ residual, +
// accumulate) with a mean far from 0, GroupNorm + bonus + gate, WKV7 at T = 16 and 32 with
// decays at the clamp, T = 24 refused, the CE head at V = 65536 with a tie at the max, the three
// GEMM forms in fp32 and tf32, bias rows.  Inputs use the full fp32 mantissa (not rounded to
// bf16), so an fp32 kernel that rounds anything to bf16 fails by 2^-9 relative.
//
// Tolerances (cmp: |got - ref| <= k * FLT_EPSILON * max(|ref|, scale) + floor; FLT_EPSILON =
// 2^-23; bf16's tests allow k ulps of 2^-8 relative, 32768 times more per unit of k):
//  - elementwise math (a few fp32 operations; __expf, tanhf, rsqrtf on the GPU err by up to
//    a few ulps for the arguments here): k = 32, at the scale of the terms where they cancel;
//  - sums over a row or a column in another order (fp32 on the GPU, fp32 or double on the
//    CPU; up to 1000 terms): k = 64 at the scale of the sum of the absolute terms (the sum of n
//    terms in any order errs by at most (n-1) eps of that scale; random signs give about
//    sqrt(n), and the measured margins are printed);
//  - WKV7: the state is a 64-term dot product per step, carried over T steps; the backward walks
//    each chunk back by dividing by the decay (>= 0.545), which can grow an fp32 error by up to
//    0.545^-15 = 9e3 at the clamp: outputs compared by relative L2 over the tensor, 1e-5 for the
//    forward, 1e-4 for the backward with random decays (measured 6e-6), 1e-3 with every decay
//    at the clamp (measured 2.4e-4 on dkk; 9e3 eps = 1.1e-3); bf16's tests allow 8 bf16 ulps
//    per element, about 3e-2;
//  - the CE head: the loss within 2e-5 absolute of the twin's double (fp32 sums of 65536
//    exponentials in a fixed order, about 1e-6 relative), its gradient k = 64 + 1e-12;
//  - GEMM fp32: against a double product, K * eps at the scale sum |a||b| (the deterministic
//    bound for a K-term fp32 dot product); tf32: under the emulation, the same bound against
//    the double product of the inputs rounded to TF32 to nearest-even (it must be exactly that
//    rounding), and everywhere against the fp32 product within 2^-10 of sum |a||b| (each
//    input off by at most 2^-11 relative) plus the fp32 bound.
#include "emu.h"
#include "twin.h"
#include "fill.cuh"
#include "gemm.cuh"
#include "mix.cuh"
#include "norm.cuh"
#include "wkv7.cuh"
#include "xent.cuh"
#include "ops.h"

#include <cfloat>

static const int HS = OPS_HEAD_SIZE;

// n values uniform in [lo, hi), full fp32 mantissas.
static Vec rand_f32(size_t n, unsigned seed, float lo, float hi) {
    Vec v(n);
    unsigned s = seed * 2246822519u + 977u;
    for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * 0.5f * (check_random(&s) + 1.0f);
    return v;
}

static void cmp(const char *what, const Vec &got, const Vec &ref, double k, double floor, const Vec *scale = nullptr) {
    double worst = 0, worst_units = 0;
    int bad = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        double r = ref[i], g = got[i];
        if (std::isnan(r) || std::isnan(g)) {
            if (!(std::isnan(r) && std::isnan(g)) && bad++ < 3) CHECK(false, "%s[%zu]: %g, twin %g", what, i, g, r);
            continue;
        }
        double mag = fabs(r);
        if (scale && fabs((*scale)[i]) > mag) mag = fabs((*scale)[i]);
        double err = fabs(g - r), tol = k * FLT_EPSILON * mag + floor;
        if (err > worst) worst = err;
        if (mag > 0 && err / (FLT_EPSILON * mag) > worst_units) worst_units = err / (FLT_EPSILON * mag);
        if (err > tol && bad++ < 3) CHECK(false, "%s[%zu]: %.9g, twin %.9g (tolerance %.3g)", what, i, g, r, tol);
    }
    printf("  %-30s n=%-7zu worst abs %.3g = %.1f eps of its scale (k %g)%s\n", what, ref.size(), worst, worst_units,
           k, bad ? "  FAILED" : "");
}

static void cmp_l2(const char *what, const Vec &got, const Vec &ref, double bound) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    double r = sqrt(num / fmax(den, 1e-300));
    printf("  %-30s n=%-7zu relative L2 %.3g (bound %g)\n", what, ref.size(), r, bound);
    CHECK(r <= bound, "%s: relative L2 %.3g over %g", what, r, bound);
}

// ------------------------------------------------------------------ mix.cu

static void test_shift_mix(int nmu, int B, int T, int C, bool with_init) {
    printf("shift_mix fp32 nmu=%d B=%d T=%d C=%d%s\n", nmu, B, T, C, with_init ? " (initial shift)" : "");
    size_t rows = (size_t)B * T, n = rows * C;
    Vec h = rand_f32(n, 40, -2, 2), init = rand_f32(C, 41, -2, 2), scale(n), dh(n), scratch(n);
    std::vector<Vec> mu(nmu), out(nmu, Vec(n)), dout(nmu), dmu0(nmu), dmu(nmu);
    std::vector<float *> mup(nmu), outp(nmu), doutp(nmu), dmup(nmu), d_mu(nmu), d_out(nmu), d_dout(nmu), d_dmu(nmu);
    for (int i = 0; i < nmu; i++) {
        mu[i] = rand_f32(C, 42 + i, 0, 1);
        dout[i] = rand_f32(n, 50 + i, -1, 1);
        dmu0[i] = dmu[i] = rand_f32(C, 60 + i, -1, 1);
        mup[i] = mu[i].data(), outp[i] = out[i].data(), doutp[i] = dout[i].data(), dmup[i] = dmu[i].data();
        d_mu[i] = dev_f32(mu[i]), d_out[i] = dev_alloc<float>(n), d_dout[i] = dev_f32(dout[i]), d_dmu[i] = dev_f32(dmu0[i]);
    }
    shift_mix_fwd(outp.data(), h.data(), with_init ? init.data() : nullptr, mup.data(), nmu, B, T, C);
    float *d_h = dev_f32(h), *d_init = dev_f32(init), *d_dh = dev_alloc<float>(n), *d_scratch = dev_alloc<float>(n);
    CUDA_OK(shift_mix_fwd_cuda(d_out.data(), d_h, with_init ? d_init : nullptr, d_mu.data(), nmu, B, T, C, 0));
    for (size_t i = 0; i < n; i++) {
        int t = (int)((i / C) % T);
        scale[i] = fabsf(h[i]) + fabsf(t ? h[i - C] : with_init ? init[i % C] : 0.0f);
    }
    for (int i = 0; i < nmu; i++) cmp("shift_mix out", get(d_out[i], n), out[i], 32, 0, &scale);
    shift_mix_bwd(dh.data(), dmup.data(), scratch.data(), doutp.data(), h.data(), mup.data(), nmu, B, T, C);
    for (size_t i = 0; i < n; i++) {
        int t = (int)((i / C) % T), c = (int)(i % C);
        scale[i] = 0;
        for (int m = 0; m < nmu; m++)
            scale[i] += fabsf(dout[m][i] * (1 - mu[m][c])) + (t + 1 < T ? fabsf(dout[m][i + C] * mu[m][c]) : 0.0f);
    }
    auto run = [&] {
        for (int i = 0; i < nmu; i++) put(d_dmu[i], dmu0[i]);
        CUDA_OK(shift_mix_bwd_cuda(d_dh, d_dmu.data(), d_scratch, (const float *const *)d_dout.data(), d_h,
                                   (const float *const *)d_mu.data(), nmu, B, T, C, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d_dh, n);
        for (int i = 0; i < nmu; i++) get_bytes(bytes, d_dmu[i], C);
        return bytes;
    };
    run();
    cmp("shift_mix dh", get(d_dh, n), dh, 32, 0, &scale);
    Vec dmu_scale(C, 0.0f);
    for (size_t i = 0; i < n; i++) dmu_scale[i % C] += 4.0f;   // |dout| <= 1, |h_prev - h| <= 4
    for (int i = 0; i < nmu; i++) cmp("shift_mix dmu", get(d_dmu[i], C), dmu[i], 64, 0, &dmu_scale);
    check_bits_repeat("shift_mix bwd fp32", run);
    for (int i = 0; i < nmu; i++) cudaFree(d_mu[i]), cudaFree(d_out[i]), cudaFree(d_dout[i]), cudaFree(d_dmu[i]);
    cudaFree(d_h), cudaFree(d_init), cudaFree(d_dh), cudaFree(d_scratch);
}

static void test_elementwise(void) {
    printf("activations, value residual fp32\n");
    const size_t n = 1000;
    Vec x = rand_f32(n, 70, -4, 4), dx = rand_f32(n, 71, -1, 1);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = -1.0f;
    struct {
        const char *name;
        void (*cf)(float *, size_t);
        void (*cb)(float *, const float *, size_t);
        cudaError_t (*gf)(float *, size_t, cudaStream_t);
        cudaError_t (*gb)(float *, const float *, size_t, cudaStream_t);
    } acts[] = {{"tanh", tanh_fwd, tanh_bwd, tanh_fwd_cuda, tanh_bwd_cuda},
                {"sigmoid", sigmoid_fwd, sigmoid_bwd, sigmoid_fwd_cuda, sigmoid_bwd_cuda},
                {"relu_sq", relu_sq_fwd, relu_sq_bwd, relu_sq_fwd_cuda, relu_sq_bwd_cuda}};
    for (auto &a : acts) {
        Vec y = x, g = dx;
        a.cf(y.data(), n);
        a.cb(g.data(), y.data(), n);
        float *dy = dev_f32(x), *dg = dev_f32(dx);
        CUDA_OK(a.gf(dy, n, 0));
        CUDA_OK(a.gb(dg, dy, n, 0));
        char what[64];
        snprintf(what, sizeof what, "%s fwd", a.name);
        cmp(what, get(dy, n), y, 32, 1e-30);
        snprintf(what, sizeof what, "%s bwd", a.name);
        Vec sc(n);   // tanh's 1 - y^2 cancels near |y| = 1: the error is relative to |dx| (1 + y^2)
        for (size_t i = 0; i < n; i++) sc[i] = fabsf(dx[i]) * (1.0f + y[i] * y[i]);
        cmp(what, get(dg, n), g, 32, 1e-30, &sc);
        cudaFree(dy), cudaFree(dg);
    }
    Vec v = rand_f32(n, 80, -2, 2), vf = rand_f32(n, 81, -2, 2), gate = rand_f32(n, 82, -6, 6), dvm = rand_f32(n, 83, -1, 1);
    Vec dvf0 = rand_f32(n, 84, -1, 1), vm(n), gt = gate, dv(n), dvf = dvf0, dpre(n), sc(n);
    value_residual_fwd(vm.data(), gt.data(), v.data(), vf.data(), n);
    value_residual_bwd(dv.data(), dvf.data(), dpre.data(), dvm.data(), gt.data(), v.data(), vf.data(), n);
    float *d_v = dev_f32(v), *d_vf = dev_f32(vf), *d_gate = dev_f32(gate), *d_dvm = dev_f32(dvm), *d_dvf = dev_f32(dvf0);
    float *d_vm = dev_alloc<float>(n), *d_dv = dev_alloc<float>(n), *d_dpre = dev_alloc<float>(n);
    CUDA_OK(value_residual_fwd_cuda(d_vm, d_gate, d_v, d_vf, n, 0));
    for (size_t i = 0; i < n; i++) sc[i] = fabsf(v[i]) + fabsf(vf[i]);
    cmp("value_residual vm", get(d_vm, n), vm, 32, 0, &sc);
    cmp("value_residual gate", get(d_gate, n), gt, 32, 0);
    CUDA_OK(value_residual_bwd_cuda(d_dv, d_dvf, d_dpre, d_dvm, d_gate, d_v, d_vf, n, 0));
    for (size_t i = 0; i < n; i++) sc[i] = fabsf(dvm[i]) + fabsf(dvf0[i]);
    cmp("value_residual dv", get(d_dv, n), dv, 32, 0, &sc);
    cmp("value_residual dvfirst", get(d_dvf, n), dvf, 32, 0, &sc);
    for (size_t i = 0; i < n; i++) sc[i] = fabsf(dvm[i]) * (fabsf(v[i]) + fabsf(vf[i]));
    cmp("value_residual dpre", get(d_dpre, n), dpre, 32, 0, &sc);
    Vec dv1(n);
    value_first_bwd(dv1.data(), dvm.data(), dvf0.data(), n);
    put(d_dvf, dvf0);
    CUDA_OK(value_first_bwd_cuda(d_dv, d_dvm, d_dvf, n, 0));
    for (size_t i = 0; i < n; i++) sc[i] = fabsf(dvm[i]) + fabsf(dvf0[i]);
    cmp("value_first dv", get(d_dv, n), dv1, 1, 0, &sc);
    cudaFree(d_v), cudaFree(d_vf), cudaFree(d_gate), cudaFree(d_dvm), cudaFree(d_dvf), cudaFree(d_vm), cudaFree(d_dv),
        cudaFree(d_dpre);
}

static void test_keyprep(size_t N, int H) {
    printf("keyprep fp32 N=%zu H=%d (head 0 of token 0 all zero)\n", N, H);
    int C = H * HS;
    size_t n = N * C;
    Vec k = rand_f32(n, 90, -2, 2), a = rand_f32(n, 91, 0, 1), kkw = rand_f32(C, 92, 0.5f, 1.5f);
    Vec ka = rand_f32(C, 93, 0, 1), dkk = rand_f32(n, 94, -1, 1), dkp = rand_f32(n, 95, -1, 1), da0 = rand_f32(n, 96, -1, 1);
    for (int j = 0; j < HS; j++) k[j] = 0.0f;
    Vec kk(n), kp(n), inv(N * H), dk(n), da = da0, dk_k(C, 0.0f), dk_a(C, 0.0f), s1(n), s2(n);
    keyprep_fwd(kk.data(), kp.data(), inv.data(), k.data(), a.data(), kkw.data(), ka.data(), N, H);
    keyprep_bwd(dk.data(), da.data(), dk_k.data(), dk_a.data(), s1.data(), s2.data(), dkk.data(), dkp.data(), k.data(),
                a.data(), kk.data(), inv.data(), kkw.data(), ka.data(), N, H);
    float *d_k = dev_f32(k), *d_a = dev_f32(a), *d_kkw = dev_f32(kkw), *d_ka = dev_f32(ka), *d_dkk = dev_f32(dkk);
    float *d_dkp = dev_f32(dkp), *d_da = dev_f32(da0), *d_kk = dev_alloc<float>(n), *d_kp = dev_alloc<float>(n);
    float *d_inv = dev_alloc<float>(N * H), *d_dk = dev_alloc<float>(n), *d_s1 = dev_alloc<float>(n), *d_s2 = dev_alloc<float>(n);
    Vec zc(C, 0.0f);
    float *d_dk_k = dev_f32(zc), *d_dk_a = dev_f32(zc);
    CUDA_OK(keyprep_fwd_cuda(d_kk, d_kp, d_inv, d_k, d_a, d_kkw, d_ka, N, H, 0));
    cmp("keyprep kk", get(d_kk, n), kk, 64, 0);
    cmp("keyprep kp", get(d_kp, n), kp, 32, 0);
    cmp("keyprep inv", get(d_inv, N * H), inv, 64, 0);
    CUDA_OK(keyprep_bwd_cuda(d_dk, d_da, d_dk_k, d_dk_a, d_s1, d_s2, d_dkk, d_dkp, d_k, d_a, d_kk, d_inv, d_kkw, d_ka, N,
                             H, 0));
    // dk sums 64 products per head (the dot with kk); the rest elementwise
    Vec sc(n);
    for (size_t i = 0; i < n; i++) sc[i] = 4.0f * (fabsf(dkk[i]) + fabsf(dkp[i])) + 1.0f;
    cmp("keyprep dk", get(d_dk, n), dk, 64, 0, &sc);
    cmp("keyprep da", get(d_da, n), da, 32, 0, &sc);
    Vec csc(C, 4.0f * N);
    cmp("keyprep dk_k", get(d_dk_k, C), dk_k, 64, 0, &csc);
    cmp("keyprep dk_a", get(d_dk_a, C), dk_a, 64, 0, &csc);
    for (float *p : {d_k, d_a, d_kkw, d_ka, d_dkk, d_dkp, d_da, d_kk, d_kp, d_inv, d_dk, d_s1, d_s2, d_dk_k, d_dk_a}) cudaFree(p);
}

static void test_embedding(int V, size_t N, int C) {
    printf("embedding fp32 V=%d N=%zu C=%d (repeated tokens)\n", V, N, C);
    Vec emb = rand_f32((size_t)V * C, 100, -1, 1), dout = rand_f32(N * C, 101, -1, 1), out(N * C);
    std::vector<int32_t> tok(N);
    for (size_t i = 0; i < N; i++) tok[i] = (int32_t)((i * 7919u) % 37u);   // few tokens, many repeats
    embedding_fwd(out.data(), tok.data(), emb.data(), N, C);
    Vec demb((size_t)V * C, 0.0f);
    embedding_bwd(demb.data(), dout.data(), tok.data(), N, C);
    float *d_emb = dev_f32(emb), *d_out = dev_alloc<float>(N * C), *d_dout = dev_f32(dout), *d_demb = dev_f32(Vec((size_t)V * C, 0.0f));
    int32_t *d_tok = dev_alloc<int32_t>(N);
    CUDA_OK(cudaMemcpy(d_tok, tok.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice));
    CUDA_OK(embedding_fwd_cuda(d_out, d_tok, d_emb, N, C, 0));
    cmp("embedding out (a copy)", get(d_out, N * C), out, 0, 0);
    CUDA_OK(embedding_bwd_cuda(d_demb, d_dout, d_tok, N, C, 0));
    Vec sc((size_t)V * C, (float)N / 37 + 1);   // each sums at most N/37 + 1 rows of |dout| <= 1
    cmp("embedding demb", get(d_demb, (size_t)V * C), demb, 64, 0, &sc);
    cudaFree(d_emb), cudaFree(d_out), cudaFree(d_dout), cudaFree(d_demb), cudaFree(d_tok);
}

// ------------------------------------------------------------------ norm.cu

static void test_layernorm(size_t N, int C) {
    printf("layernorm fp32 N=%zu C=%d\n", N, C);
    Vec x = rand_f32(N * C, 10, -2, 2), w = rand_f32(C, 11, 0.5f, 1.5f), b = rand_f32(C, 12, -0.5f, 0.5f);
    for (size_t n = 0; n < N; n++)   // a mean far from 0: the two-pass variance matters
        for (int c = 0; c < C; c++) x[n * C + c] += 3.0f * (float)(n % 3);
    Vec out(N * C), mean(N), rstd(N), sc(N * C);
    layernorm_fwd(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    float *dx = dev_f32(x), *dw = dev_f32(w), *db = dev_f32(b), *dout = dev_alloc<float>(N * C);
    float *dmean = dev_alloc<float>(N), *drstd = dev_alloc<float>(N);
    CUDA_OK(layernorm_fwd_cuda(dout, dmean, drstd, dx, dw, db, N, C, 1e-5f, 0));
    // out = xhat w + b: xhat carries the statistics' sums (C terms at the scale of |x|)
    for (size_t i = 0; i < N * C; i++) sc[i] = 4.0f * (fabsf(out[i]) + 1.0f);
    cmp("layernorm out", get(dout, N * C), out, 64, 0, &sc);
    Vec msc(N, 8.0f);
    cmp("layernorm mean", get(dmean, N), mean, 64, 0, &msc);
    cmp("layernorm rstd", get(drstd, N), rstd, 64, 0);

    Vec resid0 = rand_f32(N * C, 17, -2, 2), branch = rand_f32(N * C, 18, -2, 2), sum(N * C), fout(N * C), fm(N), fr(N);
    for (size_t i = 0; i < N * C; i++) sum[i] = resid0[i] + branch[i];
    layernorm_fwd(fout.data(), fm.data(), fr.data(), sum.data(), w.data(), b.data(), N, C, 1e-5f);
    float *dres = dev_f32(resid0), *dbr = dev_f32(branch);
    CUDA_OK(residual_layernorm_fwd_cuda(dres, dout, dmean, drstd, dres, dbr, dw, db, N, C, 1e-5f, 0));
    cmp("residual (+ fused)", get(dres, N * C), sum, 0, 0);
    for (size_t i = 0; i < N * C; i++) sc[i] = 4.0f * (fabsf(fout[i]) + 1.0f);
    cmp("layernorm out (+ fused)", get(dout, N * C), fout, 64, 0, &sc);
    cudaFree(dres), cudaFree(dbr);
    CUDA_OK(layernorm_fwd_cuda(dout, dmean, drstd, dx, dw, db, N, C, 1e-5f, 0));

    Vec dy = rand_f32(N * C, 13, -1, 1), resid = rand_f32(N * C, 14, -1, 1), gw0 = rand_f32(C, 15, -1, 1), gb0 = rand_f32(C, 16, -1, 1);
    float *ddy = dev_f32(dy), *ddin = dev_alloc<float>(N * C), *dgw = dev_f32(gw0), *dgb = dev_f32(gb0);
    float *scratch = dev_alloc<float>(N * C);
    for (int acc = 0; acc <= 1; acc++) {
        Vec din = resid, gw = gw0, gb = gb0, cs(N * C);
        layernorm_bwd(din.data(), gw.data(), gb.data(), cs.data(), dy.data(), x.data(), w.data(), mean.data(),
                      rstd.data(), N, C, acc);
        auto run = [&] {
            put(ddin, resid), put(dgw, gw0), put(dgb, gb0);
            CUDA_OK(layernorm_bwd_cuda(ddin, dgw, dgb, scratch, ddy, dx, dw, dmean, drstd, N, C, acc, 0));
            std::vector<unsigned char> bytes;
            get_bytes(bytes, ddin, N * C), get_bytes(bytes, dgw, C), get_bytes(bytes, dgb, C);
            return bytes;
        };
        run();
        // (dxh - mean(dxh) - xh mean(dxh xh)) rstd cancels: scale the terms' size times rstd
        for (size_t i = 0; i < N * C; i++) sc[i] = 4.0f * rstd[i / C] * 2.0f + (acc ? fabsf(resid[i]) : 0.0f);
        cmp(acc ? "layernorm dinp (+=)" : "layernorm dinp", get(ddin, N * C), din, 64, 0, &sc);
        Vec csc(C, 4.0f * N);
        cmp("layernorm dweight", get(dgw, C), gw, 64, 0, &csc);
        cmp("layernorm dbias", get(dgb, C), gb, 64, 0, &csc);
        check_bits_repeat(acc ? "layernorm bwd fp32 (+=)" : "layernorm bwd fp32", run);
    }
    for (float *p : {dx, dw, db, dout, dmean, drstd, ddy, ddin, dgw, dgb, scratch}) cudaFree(p);
}

static void test_gn(size_t N, int H) {
    printf("gn_bonus_gate fp32 N=%zu H=%d\n", N, H);
    int C = H * HS;
    size_t NC = N * C;
    Vec y = rand_f32(NC, 20, -3, 3), r = rand_f32(NC, 21, -1, 1), kp = rand_f32(NC, 22, -1, 1);
    Vec vm = rand_f32(NC, 23, -1, 1), g = rand_f32(NC, 24, -1, 1);
    for (int j = 0; j < HS; j++) y[C + HS + j] *= 0.01f;   // a variance below eps
    Vec lw = rand_f32(C, 25, 0.5f, 1.5f), lb = rand_f32(C, 26, -0.5f, 0.5f), rk = rand_f32(C, 27, -1, 1);
    Vec out(NC), mean(N * H), rstd(N * H), bonus(N * H), sc(NC);
    gn_bonus_gate_fwd(out.data(), mean.data(), rstd.data(), bonus.data(), y.data(), r.data(), kp.data(), vm.data(),
                      g.data(), lw.data(), lb.data(), rk.data(), N, H);
    float *d_y = dev_f32(y), *d_r = dev_f32(r), *d_kp = dev_f32(kp), *d_vm = dev_f32(vm), *d_g = dev_f32(g);
    float *d_lw = dev_f32(lw), *d_lb = dev_f32(lb), *d_rk = dev_f32(rk), *d_out = dev_alloc<float>(NC);
    float *d_mean = dev_alloc<float>(N * H), *d_rstd = dev_alloc<float>(N * H), *d_bonus = dev_alloc<float>(N * H);
    CUDA_OK(gn_bonus_gate_fwd_cuda(d_out, d_mean, d_rstd, d_bonus, d_y, d_r, d_kp, d_vm, d_g, d_lw, d_lb, d_rk, N, H, 0));
    for (size_t i = 0; i < NC; i++) sc[i] = 4.0f * (fabsf(out[i]) + 64.0f);   // the bonus sums 64 terms
    cmp("gn out", get(d_out, NC), out, 64, 0, &sc);
    Vec hsc(N * H, 64.0f), msc(N * H, 3.0f);
    cmp("gn mean", get(d_mean, N * H), mean, 64, 0, &msc);
    cmp("gn rstd", get(d_rstd, N * H), rstd, 64, 0);
    cmp("gn bonus", get(d_bonus, N * H), bonus, 64, 0, &hsc);

    Vec dout = rand_f32(NC, 28, -1, 1), gw0 = rand_f32(C, 29, -1, 1), gb0 = rand_f32(C, 30, -1, 1), grk0 = rand_f32(C, 31, -1, 1);
    Vec dy(NC), dr(NC), dkp(NC), dvm(NC), dg(NC), s1(NC), s2(NC), dpre = dout, gw = gw0, gb = gb0, grk = grk0;
    gn_bonus_gate_bwd(dy.data(), dr.data(), dkp.data(), dvm.data(), dg.data(), gw.data(), gb.data(), grk.data(),
                      dpre.data(), s1.data(), s2.data(), y.data(), r.data(), kp.data(), vm.data(), g.data(),
                      mean.data(), rstd.data(), bonus.data(), lw.data(), lb.data(), rk.data(), N, H);
    float *d_dout = dev_f32(dout), *d_dy = dev_alloc<float>(NC), *d_dr = dev_alloc<float>(NC), *d_dkp = dev_alloc<float>(NC);
    float *d_dvm = dev_alloc<float>(NC), *d_dg = dev_alloc<float>(NC), *d_gw = dev_f32(gw0), *d_gb = dev_f32(gb0);
    float *d_grk = dev_f32(grk0), *d_s1 = dev_alloc<float>(NC), *d_s2 = dev_alloc<float>(NC);
    auto run = [&] {
        put(d_gw, gw0), put(d_gb, gb0), put(d_grk, grk0);
        CUDA_OK(gn_bonus_gate_bwd_cuda(d_dy, d_dr, d_dkp, d_dvm, d_dg, d_gw, d_gb, d_grk, d_dout, d_s1, d_s2, d_y, d_r,
                                       d_kp, d_vm, d_g, d_mean, d_rstd, d_bonus, d_lw, d_lb, d_rk, N, H, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d_dy, NC), get_bytes(bytes, d_dr, NC), get_bytes(bytes, d_dkp, NC);
        get_bytes(bytes, d_dvm, NC), get_bytes(bytes, d_dg, NC);
        get_bytes(bytes, d_gw, C), get_bytes(bytes, d_gb, C), get_bytes(bytes, d_grk, C);
        return bytes;
    };
    run();
    for (size_t i = 0; i < NC; i++) sc[i] = 4.0f * rstd[i / HS] * 2.0f;
    cmp("gn dy", get(d_dy, NC), dy, 64, 0, &sc);
    for (size_t i = 0; i < NC; i++) sc[i] = 64.0f;   // the 64-term sum q, times |r|, |kp|, |rk| <= 1
    cmp("gn dr", get(d_dr, NC), dr, 64, 0, &sc);
    cmp("gn dkp", get(d_dkp, NC), dkp, 64, 0, &sc);
    cmp("gn dvm", get(d_dvm, NC), dvm, 64, 0, &sc);
    for (size_t i = 0; i < NC; i++) sc[i] = 4.0f * 3.0f + 64.0f;
    cmp("gn dg", get(d_dg, NC), dg, 64, 0, &sc);
    Vec csc(C, 64.0f * N);
    cmp("gn dlnx_w", get(d_gw, C), gw, 64, 0, &csc);
    cmp("gn dlnx_b", get(d_gb, C), gb, 64, 0, &csc);
    cmp("gn dr_k", get(d_grk, C), grk, 64, 0, &csc);
    check_bits_repeat("gn bwd fp32", run);
    for (float *p : {d_y, d_r, d_kp, d_vm, d_g, d_lw, d_lb, d_rk, d_out, d_mean, d_rstd, d_bonus, d_dout, d_dy, d_dr,
                     d_dkp, d_dvm, d_dg, d_gw, d_gb, d_grk, d_s1, d_s2})
        cudaFree(p);
}

// ------------------------------------------------------------------ wkv7.cu

// fast: every w at +30, the decay at the clamp (0.545): the backward divides by it 15 times a chunk.
static void test_wkv7(int B, int T, int H, bool fast) {
    printf("wkv7 fp32 B=%d T=%d H=%d%s\n", B, T, H, fast ? " (decays at the clamp)" : "");
    size_t n = (size_t)B * T * H * HS, nck = wkv7_ckpt_floats(B, T, H);
    unsigned seed = 300 + T;
    Vec r = rand_f32(n, seed++, -1, 1), w = rand_f32(n, seed++, -4, 4), k = rand_f32(n, seed++, -1, 1);
    Vec v = rand_f32(n, seed++, -1, 1), kk = rand_f32(n, seed++, -1, 1), a = rand_f32(n, seed++, 0, 1);
    Vec dy = rand_f32(n, seed++, -1, 1), dr0 = rand_f32(n, seed++, -1, 1), dk0 = rand_f32(n, seed++, -1, 1);
    Vec dv0 = rand_f32(n, seed++, -1, 1);
    if (fast)
        for (auto &x : w) x = 30.0f;
    // kk is a unit vector per head (F.normalize), as the model feeds it: the state stays bounded
    for (size_t h0 = 0; h0 < n; h0 += HS) {
        double ss = 0;
        for (int j = 0; j < HS; j++) ss += (double)kk[h0 + j] * kk[h0 + j];
        for (int j = 0; j < HS; j++) kk[h0 + j] = (float)(kk[h0 + j] / sqrt(ss));
    }
    Vec y(n), ck(nck), dr = dr0, dk = dk0, dv = dv0, dw(n), dkk(n), da(n), scratch(wkv7_bwd_scratch_floats(1));
    wkv7_fwd(y.data(), ck.data(), NULL, r.data(), w.data(), k.data(), v.data(), kk.data(), a.data(), B, T, H);
    wkv7_bwd(dr.data(), dw.data(), dk.data(), dv.data(), dkk.data(), da.data(), scratch.data(), dy.data(), r.data(),
             w.data(), k.data(), v.data(), kk.data(), a.data(), ck.data(), B, T, H, 1);
    float *d_r = dev_f32(r), *d_w = dev_f32(w), *d_k = dev_f32(k), *d_v = dev_f32(v), *d_kk = dev_f32(kk), *d_a = dev_f32(a);
    float *d_dy = dev_f32(dy), *d_y = dev_alloc<float>(n), *d_ck = dev_alloc<float>(nck), *d_dr = dev_f32(dr0);
    float *d_dk = dev_f32(dk0), *d_dv = dev_f32(dv0), *d_dw = dev_alloc<float>(n), *d_dkk = dev_alloc<float>(n);
    float *d_da = dev_alloc<float>(n), *d_scr = dev_alloc<float>(wkv7_bwd_cuda_scratch_floats(B, T, H));
    CUDA_OK(wkv7_fwd_cuda(d_y, d_ck, NULL, d_r, d_w, d_k, d_v, d_kk, d_a, B, T, H, 0));
    cmp_l2("y", get(d_y, n), y, 1e-5);
    cmp_l2("ckpt", get(d_ck, nck), ck, 1e-5);
    auto run = [&] {
        put(d_dr, dr0), put(d_dk, dk0), put(d_dv, dv0);
        CUDA_OK(wkv7_bwd_cuda(d_dr, d_dw, d_dk, d_dv, d_dkk, d_da, d_scr, d_dy, d_r, d_w, d_k, d_v, d_kk, d_a, d_ck, B,
                              T, H, 0));
        std::vector<unsigned char> bytes;
        for (float *p : {d_dr, d_dw, d_dk, d_dv, d_dkk, d_da}) get_bytes(bytes, p, n);
        return bytes;
    };
    run();
    const double bwd = fast ? 1e-3 : 1e-4;
    cmp_l2("dr", get(d_dr, n), dr, bwd);
    cmp_l2("dw", get(d_dw, n), dw, bwd);
    cmp_l2("dk", get(d_dk, n), dk, bwd);
    cmp_l2("dv", get(d_dv, n), dv, bwd);
    cmp_l2("dkk", get(d_dkk, n), dkk, bwd);
    cmp_l2("da", get(d_da, n), da, bwd);
    check_bits_repeat("wkv7 bwd fp32", run);
    if (T == 16) {
        CHECK(wkv7_fwd_cuda(d_y, d_ck, NULL, d_r, d_w, d_k, d_v, d_kk, d_a, B, 24, H, 0) == cudaErrorInvalidValue,
              "fp32: T = 24 accepted with checkpoints");
        CHECK(wkv7_bwd_cuda(d_dr, d_dw, d_dk, d_dv, d_dkk, d_da, d_scr, d_dy, d_r, d_w, d_k, d_v, d_kk, d_a, d_ck, B, 24,
                            H, 0) == cudaErrorInvalidValue,
              "fp32: T = 24 accepted by the backward");
    }
    for (float *p : {d_r, d_w, d_k, d_v, d_kk, d_a, d_dy, d_y, d_ck, d_dr, d_dk, d_dv, d_dw, d_dkk, d_da, d_scr}) cudaFree(p);
}

// ------------------------------------------------------------------ xent.cu

static void test_xent(size_t N, size_t R, int V) {
    printf("xent fp32 N=%zu R=%zu V=%d (row 0: a tie at the max, the target on it)\n", N, R, V);
    size_t n = N * (size_t)V;
    Vec z = rand_f32(n, 200 + V, -8, 8);
    std::vector<int32_t> tgt(N);
    for (size_t i = 0; i < N; i++) tgt[i] = (int32_t)((i * 7u + 3u) % (unsigned)V);
    z[5] = z[(size_t)V - 2] = 9.5f;   // the tie: index 5 must get L2Wrap's term
    tgt[0] = 5;
    Vec grad = z, sc(n);
    std::vector<double> loss(N);
    xent_l2wrap_fwdbwd(grad.data(), loss.data(), tgt.data(), N, R, V);
    float inv_r = (float)(1.0 / (double)R);
    for (size_t i = 0; i < n; i++) sc[i] = fabsf(grad[i]) + inv_r;
    Vec ref_loss(N);
    for (size_t i = 0; i < N; i++) ref_loss[i] = (float)loss[i];
    int32_t *d_t = dev_alloc<int32_t>(N);
    CUDA_OK(cudaMemcpy(d_t, tgt.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice));
    float *d_z = dev_f32(z), *d_loss = dev_alloc<float>(N);
    CUDA_OK(xent_l2wrap_fwd_cuda(d_loss, d_z, d_t, N, V, 0));
    cmp("row loss (fwd)", get(d_loss, N), ref_loss, 0, 2e-5);
    auto run = [&] {
        put(d_z, z);
        CUDA_OK(xent_l2wrap_fwdbwd_cuda(d_z, d_loss, d_t, N, R, V, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d_z, n), get_bytes(bytes, d_loss, N);
        return bytes;
    };
    run();
    cmp("row loss", get(d_loss, N), ref_loss, 0, 2e-5);
    cmp("d logits", get(d_z, n), grad, 64, 1e-12, &sc);
    if (V <= 1000) check_bits_repeat("xent fwdbwd fp32", run);
    cudaFree(d_t), cudaFree(d_z), cudaFree(d_loss);
}

// ------------------------------------------------------------------ gemm.cu, fill.cu

#if CUDA_EMU
static float tf32_rne(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x0fffu + ((u >> 13) & 1u)) & 0xffffe000u;
    memcpy(&x, &u, 4);
    return x;
}
#endif

// D = op(A) op(B) + beta D0 in double, and sum |a||b| (+ |beta D0|) per element.
static void gemm_ref(int ta, int tb, int M, int N, int K, const Vec &A, const Vec &B, const Vec &D0, float beta,
                     Vec &D, Vec &scale) {
    D.assign((size_t)M * N, 0.0f), scale.assign((size_t)M * N, 0.0f);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = beta ? (double)beta * D0[(size_t)i * N + j] : 0, a = fabs(s);
            for (int k = 0; k < K; k++) {
                double x = ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k], y = tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j];
                s += x * y, a += fabs(x * y);
            }
            D[(size_t)i * N + j] = (float)s, scale[(size_t)i * N + j] = (float)a;
        }
}

static void test_gemm(GemmContext *ctx, void *ws, int ta, int tb, int M, int N, int K, float beta) {
    printf("gemm fp32/tf32 ta=%d tb=%d M=%d N=%d K=%d beta=%g\n", ta, tb, M, N, K, beta);
    Vec A = rand_f32((size_t)M * K, 400 + M, -1, 1), B = rand_f32((size_t)K * N, 401 + N, -1, 1);
    Vec D0 = rand_f32((size_t)M * N, 402, -1, 1), ref, scale;
    gemm_ref(ta, tb, M, N, K, A, B, D0, beta, ref, scale);
    float *dA = dev_f32(A), *dB = dev_f32(B), *dD = dev_f32(D0);
    CUDA_OK(gemm_cuda(ctx, ta, tb, M, N, K, dA, dB, dD, beta, 0, ws, GEMM_WORKSPACE_BYTES, 0));
    cmp("fp32", get(dD, (size_t)M * N), ref, K, 0, &scale);
    put(dD, D0);
    CUDA_OK(gemm_cuda(ctx, ta, tb, M, N, K, dA, dB, dD, beta, 1, ws, GEMM_WORKSPACE_BYTES, 0));
    Vec t = get(dD, (size_t)M * N);
    // each product's inputs off by at most 2^-11 relative each: 2^-10 of sum |a||b|, i.e. 8192 eps
    cmp("tf32 vs the fp32 product", t, ref, 8192 + K, 0, &scale);
#if CUDA_EMU
    Vec At = A, Bt = B, reft, sct;
    for (auto &x : At) x = tf32_rne(x);
    for (auto &x : Bt) x = tf32_rne(x);
    gemm_ref(ta, tb, M, N, K, At, Bt, D0, beta, reft, sct);
    cmp("tf32 = the product of TF32 inputs", t, reft, K, 0, &sct);
#endif
    cudaFree(dA), cudaFree(dB), cudaFree(dD);
}

static void test_fill(void) {
    printf("fill_rows fp32\n");
    Vec vec = rand_f32(70, 500, -1, 1), want(13 * 70);
    for (size_t i = 0; i < want.size(); i++) want[i] = vec[i % 70];
    float *dv = dev_f32(vec), *dout = dev_alloc<float>(want.size());
    CUDA_OK(fill_rows_cuda(dout, dv, 13, 70, 0));
    cmp("fill_rows f32 <- f32", get(dout, want.size()), want, 0, 0);
    CHECK(fill_rows_cuda(dout, dv, 13, 0, 0) == cudaErrorInvalidValue, "fp32 fill_rows: C = 0 accepted");
    cudaFree(dv), cudaFree(dout);
}

int main() {
    check_device();
    test_shift_mix(6, 2, 5, 70, true);
    test_shift_mix(1, 3, 16, 40, false);
    test_elementwise();
    test_keyprep(13, 2);
    test_embedding(300, 500, 70);
    test_layernorm(37, 200);
    test_layernorm(5, 16);
    test_gn(19, 3);
    test_wkv7(2, 16, 2, false);
    test_wkv7(1, 32, 2, false);
    test_wkv7(1, 32, 1, true);
    test_xent(8, 20, 1000);
    test_xent(2, 2, 65536);
    GemmContext *ctx = NULL;
    void *ws = NULL;
    CUDA_OK(gemm_create(&ctx));
    CUDA_OK(cudaMalloc(&ws, GEMM_WORKSPACE_BYTES));
    test_gemm(ctx, ws, 0, 1, 48, 64, 80, 0.0f);    // forward    y = x W^T
    test_gemm(ctx, ws, 0, 0, 48, 80, 64, 0.0f);    // input grad dx = dy W
    test_gemm(ctx, ws, 1, 0, 64, 80, 48, 1.0f);    // weight grad dW += dy^T x
    test_gemm(ctx, ws, 0, 1, 33, 333, 17, 1.0f);   // odd sizes, beta 1
    cudaFree(ws);
    gemm_destroy(ctx);
    test_fill();
    return check_finish("t_fp32");
}
