// cuda/norm.cu against its CPU twins (lib/ops_cpu.c): colsum_acc, layernorm_fwd/bwd (with and
// without the residual accumulate; the forward also fused with the residual add), gn_bonus_gate_fwd/bwd.  Inputs are random, rounded to bf16;
// the twins run in fp32 on the same values.  Shapes are odd on purpose: rows not a multiple of
// the 8 rows a block takes, C not a multiple of the 32 lanes or of the colsum's 32 columns.
//
// Tolerances (twin.h compare: |got - ref| <= k ulp_bf16(max(|ref|, scale)) + floor):
//  - a bf16 output rounded once from fp32 math: k = 1 (half an ulp for the rounding, the rest
//    for the fp32-vs-double statistics), floor 1e-4 for values that cancel to about 0;
//  - fp32 statistics and per-channel sums (fp32 on the GPU, double on the CPU): k = 1/16
//    (2^-12 relative: fp32 summation of a few hundred terms errs below 2^-16), scale = the sum
//    of the absolute terms where they cancel.
#include "emu.h"
#include "twin.h"
#include "norm.cuh"
#include "ops.h"

static const int HS = OPS_HEAD_SIZE;

static Vec colsum_cpu(const Vec &a, const Vec *b, size_t N, int C, const Vec &init, Vec *abs_scale) {
    Vec out = init;
    colsum_acc(out.data(), a.data(), b ? b->data() : nullptr, N, C);
    if (abs_scale) {
        abs_scale->assign(C, 0.0f);
        for (size_t n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                (*abs_scale)[c] += fabsf(a[n * C + c] * (b ? (*b)[n * C + c] : 1.0f));
    }
    return out;
}

static void test_colsum(void) {
    printf("colsum_acc_cuda\n");
    const size_t N = 77;
    const int C = 100;
    Vec a = rand_bf16(N * C, 1, -1, 1), b = rand_bf16(N * C, 2, -2, 2), init = rand_bf16(C, 3, -1, 1), sc;
    float *d = dev_f32(init), *af = dev_f32(a), *bfl = dev_f32(b);
    bf16 *ab = dev_bf16(a), *bb = dev_bf16(b);
    Vec ref = colsum_cpu(a, nullptr, N, C, init, &sc);
    CUDA_OK(colsum_acc_cuda(d, af, (const float *)nullptr, N, C, 0));
    compare("colsum f32", get(d, C), ref, 1.0 / 16, 1e-6, &sc);
    put(d, init);
    CUDA_OK(colsum_acc_cuda(d, ab, (const bf16 *)nullptr, N, C, 0));
    compare("colsum bf16", get(d, C), ref, 1.0 / 16, 1e-6, &sc);
    ref = colsum_cpu(a, &b, N, C, init, &sc);
    put(d, init);
    CUDA_OK(colsum_acc_cuda(d, af, bfl, N, C, 0));
    compare("colsum f32*f32", get(d, C), ref, 1.0 / 16, 1e-6, &sc);
    put(d, init);
    CUDA_OK(colsum_acc_cuda(d, ab, bb, N, C, 0));
    compare("colsum bf16*bf16", get(d, C), ref, 1.0 / 16, 1e-6, &sc);
    put(d, init);
    CUDA_OK(colsum_acc_cuda(d, ab, bfl, N, C, 0));
    compare("colsum bf16*f32", get(d, C), ref, 1.0 / 16, 1e-6, &sc);
    // A long column: rows well past the 32 per-column lanes, and one block's worth of columns.
    const size_t N2 = 1000;
    Vec a2 = rand_bf16(N2 * 32, 4, -1, 1), z(32, 0.0f);
    float *d2 = dev_f32(z), *a2d = dev_f32(a2);
    ref = colsum_cpu(a2, nullptr, N2, 32, z, &sc);
    CUDA_OK(colsum_acc_cuda(d2, a2d, (const float *)nullptr, N2, 32, 0));
    compare("colsum 1000 rows", get(d2, 32), ref, 1.0 / 16, 1e-6, &sc);
    check_bits_repeat("colsum 1000 rows", [&] {
        put(d2, z);
        CUDA_OK(colsum_acc_cuda(d2, a2d, (const float *)nullptr, N2, 32, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d2, 32);
        return bytes;
    });
    CHECK(colsum_acc_cuda(d, af, (const float *)nullptr, N, 0, 0) == cudaErrorInvalidValue, "C = 0 accepted");
    CHECK(colsum_acc_cuda(d, af, (const float *)nullptr, 0, C, 0) == cudaSuccess, "N = 0 refused");
    cudaFree(d), cudaFree(af), cudaFree(bfl), cudaFree(ab), cudaFree(bb), cudaFree(d2), cudaFree(a2d);
}

static void test_layernorm(size_t N, int C) {
    printf("layernorm N=%zu C=%d\n", N, C);
    Vec x = rand_bf16(N * C, 10, -2, 2), w = rand_bf16(C, 11, 0.5f, 1.5f), b = rand_bf16(C, 12, -0.5f, 0.5f);
    for (size_t n = 0; n < N; n++)   // a mean far from 0: the two-pass variance matters
        for (int c = 0; c < C; c++) x[n * C + c] = round_bf16(x[n * C + c] + 3.0f * (float)(n % 3));
    for (int c = 0; c < C; c++) x[C + c] = round_bf16(1.0f + 1e-3f * x[C + c]);   // a variance below eps
    Vec out(N * C), mean(N), rstd(N);
    layernorm_fwd(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    bf16 *dx = dev_bf16(x), *dw = dev_bf16(w), *db = dev_bf16(b), *dout = dev_alloc<bf16>(N * C);
    float *dmean = dev_alloc<float>(N), *drstd = dev_alloc<float>(N);
    CUDA_OK(layernorm_fwd_cuda(dout, dmean, drstd, dx, dw, db, N, C, 1e-5f, 0));
    compare("layernorm out", get(dout, N * C), out, 1, 1e-4);
    compare("layernorm mean", get(dmean, N), mean, 1.0 / 16, 1e-6);
    compare("layernorm rstd", get(drstd, N), rstd, 1.0 / 16, 1e-6);

    // Fused with the residual add: x = bf(resid + branch) (in place), then the same LayerNorm.
    Vec resid0 = rand_bf16(N * C, 17, -2, 2), branch(N * C);
    for (size_t i = 0; i < N * C; i++) branch[i] = round_bf16(x[i] - resid0[i]);
    Vec sum(N * C), fout(N * C), fmean(N), frstd(N);
    for (size_t i = 0; i < N * C; i++) sum[i] = round_bf16(resid0[i] + branch[i]);
    layernorm_fwd(fout.data(), fmean.data(), frstd.data(), sum.data(), w.data(), b.data(), N, C, 1e-5f);
    bf16 *dres = dev_bf16(resid0), *dbr = dev_bf16(branch);
    CUDA_OK(residual_layernorm_fwd_cuda(dres, dout, dmean, drstd, dres, dbr, dw, db, N, C, 1e-5f, 0));
    compare("residual (+ fused)", get(dres, N * C), sum, 0, 0);
    compare("layernorm out (+ fused)", get(dout, N * C), fout, 1, 1e-4);
    compare("layernorm rstd (+ fused)", get(drstd, N), frstd, 1.0 / 16, 1e-6);
    CHECK(residual_layernorm_fwd_cuda(dres, dout, dmean, drstd, dres, nullptr, dw, db, N, C, 1e-5f, 0) ==
              cudaErrorInvalidValue,
          "a NULL branch accepted");
    cudaFree(dres), cudaFree(dbr);
    CUDA_OK(layernorm_fwd_cuda(dout, dmean, drstd, dx, dw, db, N, C, 1e-5f, 0));   // the backward's inputs

    Vec dy = rand_bf16(N * C, 13, -1, 1), resid = rand_bf16(N * C, 14, -1, 1);
    Vec gw0 = rand_bf16(C, 15, -1, 1), gb0 = rand_bf16(C, 16, -1, 1);
    bf16 *ddy = dev_bf16(dy), *ddin = dev_alloc<bf16>(N * C);
    float *dgw = dev_f32(gw0), *dgb = dev_f32(gb0), *scratch = dev_alloc<float>(N * C);
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
        // the fp32 cancellation in (dxh - mean(dxh) - xh mean(dxh xh)) rstd: floor 1e-3
        compare(acc ? "layernorm dinp (+=)" : "layernorm dinp", get(ddin, N * C), din, 1, 1e-3);
        compare("layernorm dweight", get(dgw, C), gw, 1.0 / 16, 1e-4);
        compare("layernorm dbias", get(dgb, C), gb, 1.0 / 16, 1e-4);
        check_bits_repeat(acc ? "layernorm bwd (+=)" : "layernorm bwd", run);
    }
    CHECK(layernorm_fwd_cuda(dout, dmean, drstd, dx, dw, db, N, 0, 1e-5f, 0) == cudaErrorInvalidValue,
          "C = 0 accepted");
    cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dout), cudaFree(dmean), cudaFree(drstd);
    cudaFree(ddy), cudaFree(ddin), cudaFree(dgw), cudaFree(dgb), cudaFree(scratch);
}

static void test_gn(size_t N, int H) {
    printf("gn_bonus_gate N=%zu H=%d\n", N, H);
    int C = H * HS;
    size_t NC = N * C;
    Vec y = rand_bf16(NC, 20, -3, 3), r = rand_bf16(NC, 21, -1, 1), kp = rand_bf16(NC, 22, -1, 1);
    Vec vm = rand_bf16(NC, 23, -1, 1), g = rand_bf16(NC, 24, -1, 1);
    for (int j = 0; j < HS; j++) y[C + HS + j] = round_bf16(0.01f * y[C + HS + j]);   // a variance below eps
    Vec lw = rand_bf16(C, 25, 0.5f, 1.5f), lb = rand_bf16(C, 26, -0.5f, 0.5f), rk = rand_bf16(C, 27, -1, 1);
    Vec out(NC), mean(N * H), rstd(N * H), bonus(N * H);
    gn_bonus_gate_fwd(out.data(), mean.data(), rstd.data(), bonus.data(), y.data(), r.data(), kp.data(), vm.data(),
                      g.data(), lw.data(), lb.data(), rk.data(), N, H);
    bf16 *d_y = dev_bf16(y), *d_r = dev_bf16(r), *d_kp = dev_bf16(kp), *d_vm = dev_bf16(vm), *d_g = dev_bf16(g);
    bf16 *d_lw = dev_bf16(lw), *d_lb = dev_bf16(lb), *d_rk = dev_bf16(rk), *d_out = dev_alloc<bf16>(NC);
    float *d_mean = dev_alloc<float>(N * H), *d_rstd = dev_alloc<float>(N * H), *d_bonus = dev_alloc<float>(N * H);
    CUDA_OK(gn_bonus_gate_fwd_cuda(d_out, d_mean, d_rstd, d_bonus, d_y, d_r, d_kp, d_vm, d_g, d_lw, d_lb, d_rk, N,
                                   H, 0));
    compare("gn out", get(d_out, NC), out, 1, 1e-4);
    compare("gn mean", get(d_mean, N * H), mean, 1.0 / 16, 1e-6);
    compare("gn rstd", get(d_rstd, N * H), rstd, 1.0 / 16, 1e-6);
    compare("gn bonus", get(d_bonus, N * H), bonus, 1.0 / 16, 1e-5);

    Vec dout = rand_bf16(NC, 28, -1, 1), gw0 = rand_bf16(C, 29, -1, 1), gb0 = rand_bf16(C, 30, -1, 1);
    Vec grk0 = rand_bf16(C, 31, -1, 1);
    Vec dy(NC), dr(NC), dkp(NC), dvm(NC), dg(NC), s1(NC), s2(NC), dpre = dout, gw = gw0, gb = gb0, grk = grk0;
    gn_bonus_gate_bwd(dy.data(), dr.data(), dkp.data(), dvm.data(), dg.data(), gw.data(), gb.data(), grk.data(),
                      dpre.data(), s1.data(), s2.data(), y.data(), r.data(), kp.data(), vm.data(), g.data(),
                      mean.data(), rstd.data(), bonus.data(), lw.data(), lb.data(), rk.data(), N, H);
    bf16 *d_dout = dev_bf16(dout), *d_dy = dev_alloc<bf16>(NC), *d_dr = dev_alloc<bf16>(NC);
    bf16 *d_dkp = dev_alloc<bf16>(NC), *d_dvm = dev_alloc<bf16>(NC), *d_dg = dev_alloc<bf16>(NC);
    float *d_gw = dev_f32(gw0), *d_gb = dev_f32(gb0), *d_grk = dev_f32(grk0);
    float *d_s1 = dev_alloc<float>(NC), *d_s2 = dev_alloc<float>(NC);
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
    compare("gn dy", get(d_dy, NC), dy, 1, 1e-3);
    compare("gn dr", get(d_dr, NC), dr, 1, 1e-4);
    compare("gn dkp", get(d_dkp, NC), dkp, 1, 1e-4);
    compare("gn dvm", get(d_dvm, NC), dvm, 1, 1e-4);
    compare("gn dg", get(d_dg, NC), dg, 1, 1e-4);
    compare("gn dlnx_w", get(d_gw, C), gw, 1.0 / 16, 1e-4);
    compare("gn dlnx_b", get(d_gb, C), gb, 1.0 / 16, 1e-4);
    compare("gn dr_k", get(d_grk, C), grk, 1.0 / 16, 1e-4);
    check_bits_repeat("gn bwd", run);
    CHECK(gn_bonus_gate_fwd_cuda(d_out, d_mean, d_rstd, d_bonus, d_y, d_r, d_kp, d_vm, d_g, d_lw, d_lb, d_rk, N, 0,
                                 0) == cudaErrorInvalidValue,
          "H = 0 accepted");
    for (bf16 *p : {d_y, d_r, d_kp, d_vm, d_g, d_lw, d_lb, d_rk, d_out, d_dout, d_dy, d_dr, d_dkp, d_dvm, d_dg})
        cudaFree(p);
    for (float *p : {d_mean, d_rstd, d_bonus, d_gw, d_gb, d_grk, d_s1, d_s2}) cudaFree(p);
}

int main() {
    check_device();
    test_colsum();
    test_layernorm(37, 200);
    test_layernorm(5, 16);
    test_gn(19, 3);
#if !CUDA_EMU   // a training-sized shape, only where a GPU runs it quickly
    test_layernorm(4096, 768);
    test_gn(4096, 12);
#endif
    return check_finish("t_norm");
}
