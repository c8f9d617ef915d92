// cuda/mix6.cu against its CPU twins (lib/ops6_cpu.c): shift_diff6 (with and without an initial
// shift, T = 1), ddlerp6 (five lerps; one lerp with dm in place of dout), silu, gn_gate6 (with a
// constant head: zero variance), cmix_gate6 (rs separate and in place of rpre).  Inputs are random,
// rounded to bf16; the twins run in fp32 on the same values.  Sizes are not multiples of the
// 256-thread blocks or of the 8 heads a GroupNorm block takes.  Every op's outputs repeat bit for
// bit (three emulation orders; two runs on a GPU); refused shapes write nothing.
//
// Tolerances (twin.h compare: |got - ref| <= k ulp_bf16(max(|ref|, scale)) + floor):
//  - a bf16 output rounded once from fp32 math on the same inputs: k = 1 (half an ulp for the
//    rounding, the rest for summation order, FMA contraction and expf), at the scale of the sum
//    of the absolute terms where they cancel (the twin's value is itself an fp32 sum of them);
//  - where the kernel uses a value it stores rounded (xxx from the bf16 xx, out from the bf16 rs):
//    k = 2 at that scale (a second half ulp);
//  - fp32 statistics and per-channel sums: k = 1/16 (2^-12 relative) at the scale of the sum of
//    the absolute terms, as t_norm.cu argues.
#include "emu.h"
#include "twin.h"
#include "mix6.cuh"
#include "ops6.h"
#include "ops.h"

static const int HS = OPS_HEAD_SIZE;
static const double K_ONE = 1, K_STORED = 2, K_SUM = 1.0 / 16;

// Per-column sums of |a b| (b may be null: 1): the scale of a colsum.
static Vec colabs(const Vec &a, const Vec *b, size_t N, int C) {
    Vec s(C, 0.0f);
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) s[c] += fabsf(a[n * C + c] * (b ? (*b)[n * C + c] : 1.0f));
    return s;
}

static void test_shift_diff6(int B, int T, int C, bool with_init) {
    printf("shift_diff6 B=%d T=%d C=%d%s\n", B, T, C, with_init ? " (initial shift)" : "");
    size_t rows = (size_t)B * T, n = rows * C;
    Vec h = rand_bf16(n, 1, -2, 2), init = rand_bf16(C, 2, -2, 2), maa = rand_bf16(C, 3, 0, 1);
    Vec xx(n), xxx(n);
    shift_diff6_fwd(xx.data(), xxx.data(), h.data(), with_init ? init.data() : nullptr, maa.data(), B, T, C);
    bf16 *d_h = dev_bf16(h), *d_init = dev_bf16(init), *d_maa = dev_bf16(maa);
    bf16 *d_xx = dev_alloc<bf16>(n), *d_xxx = dev_alloc<bf16>(n);
    CUDA_OK(shift_diff6_fwd_cuda(d_xx, d_xxx, d_h, with_init ? d_init : nullptr, d_maa, B, T, C, 0));
    Vec g_xx = get(d_xx, n), sc(n);
    compare("shift_diff6 xx", g_xx, xx, K_ONE, 0);
    for (size_t i = 0; i < n; i++) sc[i] = fabsf(h[i]) + fabsf(xx[i] * maa[i % C]);
    compare("shift_diff6 xxx", get(d_xxx, n), xxx, K_STORED, 0, &sc);

    // The backward, from the kernel's (bf16) xx on both sides.
    Vec dxx = rand_bf16(n, 4, -1, 1), dxxx = rand_bf16(n, 5, -1, 1), dh0 = rand_bf16(n, 6, -1, 1);
    Vec dmaa0 = rand_bf16(C, 7, -1, 1), dh = dh0, dmaa = dmaa0;
    shift_diff6_bwd(dh.data(), dmaa.data(), dxx.data(), dxxx.data(), g_xx.data(), maa.data(), B, T, C);
    bf16 *d_dxx = dev_bf16(dxx), *d_dxxx = dev_bf16(dxxx), *d_dh = dev_alloc<bf16>(n);
    float *d_dmaa = dev_alloc<float>(C);
    auto bwd = [&]() {
        put(d_dh, dh0);
        put(d_dmaa, dmaa0);
        CUDA_OK(shift_diff6_bwd_cuda(d_dh, d_dmaa, d_dxx, d_dxxx, d_xx, d_maa, B, T, C, 0));
        std::vector<unsigned char> b;
        get_bytes(b, d_dh, n);
        get_bytes(b, d_dmaa, C);
        return b;
    };
    check_bits_repeat("shift_diff6_bwd", bwd);
    for (size_t i = 0; i < n; i++) {
        int t = (int)((i / C) % T);
        float m = maa[i % C];
        sc[i] = fabsf(dh0[i]) + fabsf(dxxx[i]) * (1 + m) + fabsf(dxx[i]);
        if (t + 1 < T) sc[i] += fabsf(dxx[i + C]) + fabsf(dxxx[i + C] * m);
    }
    compare("shift_diff6 dh", get(d_dh, n), dh, K_ONE, 0, &sc);
    Vec cs = colabs(dxxx, &g_xx, rows, C);
    for (int c = 0; c < C; c++) cs[c] += fabsf(dmaa0[c]);
    compare("shift_diff6 dmaa_x", get(d_dmaa, C), dmaa, K_SUM, 1e-6, &cs);
    for (bf16 *p : {d_h, d_init, d_maa, d_xx, d_xxx, d_dxx, d_dxxx, d_dh}) CUDA_OK(cudaFree(p));
    CUDA_OK(cudaFree(d_dmaa));
}

static void test_ddlerp6(int nf, size_t N, int C, bool in_place) {
    printf("ddlerp6 nf=%d N=%zu C=%d%s\n", nf, N, C, in_place ? " (dm in place of dout)" : "");
    size_t n = N * C;
    Vec h = rand_bf16(n, 10, -2, 2), xx = rand_bf16(n, 11, -2, 2), dh0 = rand_bf16(n, 12, -1, 1),
        dxx0 = rand_bf16(n, 13, -1, 1);
    std::vector<Vec> maa(nf), m(nf), out(nf, Vec(n)), dout(nf), dm(nf, Vec(n)), dmaa0(nf), dmaa(nf);
    std::vector<float *> maap(nf), mp(nf), outp(nf), doutp(nf), dmp(nf), dmaap(nf);
    std::vector<bf16 *> d_maa(nf), d_m(nf), d_out(nf), d_dout(nf), d_dm(nf);
    std::vector<float *> d_dmaa(nf);
    for (int f = 0; f < nf; f++) {
        maa[f] = rand_bf16(C, 20 + f, 0, 1);
        m[f] = rand_bf16(n, 30 + f, -0.5f, 0.5f);
        dout[f] = rand_bf16(n, 40 + f, -1, 1);
        dmaa0[f] = dmaa[f] = rand_bf16(C, 50 + f, -1, 1);
        maap[f] = maa[f].data(), mp[f] = m[f].data(), outp[f] = out[f].data(), doutp[f] = dout[f].data();
        dmp[f] = dm[f].data(), dmaap[f] = dmaa[f].data();
        d_maa[f] = dev_bf16(maa[f]), d_m[f] = dev_bf16(m[f]), d_out[f] = dev_alloc<bf16>(n);
        d_dout[f] = dev_bf16(dout[f]), d_dm[f] = in_place ? d_dout[f] : dev_alloc<bf16>(n);
        d_dmaa[f] = dev_alloc<float>(C);
    }
    ddlerp6_fwd(outp.data(), h.data(), xx.data(), maap.data(), mp.data(), nf, N, C);
    bf16 *d_h = dev_bf16(h), *d_xx = dev_bf16(xx), *d_dh = dev_alloc<bf16>(n), *d_dxx = dev_alloc<bf16>(n);
    CUDA_OK(ddlerp6_fwd_cuda(d_out.data(), d_h, d_xx, d_maa.data(), d_m.data(), nf, N, C, 0));
    Vec sc(n);
    for (int f = 0; f < nf; f++) {
        for (size_t i = 0; i < n; i++) sc[i] = fabsf(h[i]) + fabsf(xx[i]) * (fabsf(maa[f][i % C]) + fabsf(m[f][i]));
        compare("ddlerp6 out", get(d_out[f], n), out[f], K_ONE, 0, &sc);
    }

    Vec dh = dh0, dxx = dxx0;
    ddlerp6_bwd(dh.data(), dxx.data(), dmp.data(), dmaap.data(), doutp.data(), xx.data(), maap.data(), mp.data(), nf,
                N, C);
    auto bwd = [&]() {
        put(d_dh, dh0);
        put(d_dxx, dxx0);
        for (int f = 0; f < nf; f++) put(d_dmaa[f], dmaa0[f]), put(d_dout[f], dout[f]);
        CUDA_OK(ddlerp6_bwd_cuda(d_dh, d_dxx, d_dm.data(), d_dmaa.data(), d_dout.data(), d_xx, d_maa.data(),
                                 d_m.data(), nf, N, C, 0));
        std::vector<unsigned char> b;
        get_bytes(b, d_dh, n);
        get_bytes(b, d_dxx, n);
        for (int f = 0; f < nf; f++) get_bytes(b, d_dm[f], n), get_bytes(b, d_dmaa[f], C);
        return b;
    };
    check_bits_repeat("ddlerp6_bwd", bwd);
    Vec sx(n);
    for (size_t i = 0; i < n; i++) {
        sc[i] = fabsf(dh0[i]), sx[i] = fabsf(dxx0[i]);
        for (int f = 0; f < nf; f++) {
            sc[i] += fabsf(dout[f][i]);
            sx[i] += fabsf(dout[f][i]) * (fabsf(maa[f][i % C]) + fabsf(m[f][i]));
        }
    }
    compare("ddlerp6 dh", get(d_dh, n), dh, K_ONE, 0, &sc);
    compare("ddlerp6 dxx", get(d_dxx, n), dxx, K_ONE, 0, &sx);
    for (int f = 0; f < nf; f++) {
        compare("ddlerp6 dm", get(d_dm[f], n), dm[f], K_ONE, 0);
        Vec cs = colabs(dout[f], &xx, N, C);
        for (int c = 0; c < C; c++) cs[c] += fabsf(dmaa0[f][c]);
        compare("ddlerp6 dmaa", get(d_dmaa[f], C), dmaa[f], K_SUM, 1e-6, &cs);
    }
    for (int f = 0; f < nf; f++) {
        for (bf16 *p : {d_maa[f], d_m[f], d_out[f], d_dout[f]}) CUDA_OK(cudaFree(p));
        if (!in_place) CUDA_OK(cudaFree(d_dm[f]));
        CUDA_OK(cudaFree(d_dmaa[f]));
    }
    for (bf16 *p : {d_h, d_xx, d_dh, d_dxx}) CUDA_OK(cudaFree(p));
}

static void test_silu(size_t n) {
    printf("silu n=%zu\n", n);
    Vec x = rand_bf16(n, 60, -10, 10), dy = rand_bf16(n, 61, -1, 1), y(n), dx(n);
    silu_fwd(y.data(), x.data(), n);
    silu_bwd(dx.data(), dy.data(), x.data(), n);
    bf16 *d_x = dev_bf16(x), *d_dy = dev_bf16(dy), *d_y = dev_alloc<bf16>(n), *d_dx = dev_alloc<bf16>(n);
    check_bits_repeat("silu", [&]() {
        CUDA_OK(silu_fwd_cuda(d_y, d_x, n, 0));
        CUDA_OK(silu_bwd_cuda(d_dx, d_dy, d_x, n, 0));
        std::vector<unsigned char> b;
        get_bytes(b, d_y, n);
        get_bytes(b, d_dx, n);
        return b;
    });
    compare("silu y", get(d_y, n), y, K_ONE, 0);
    Vec sc(n); // s + x s (1 - s) cancels near x = -1.28
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        sc[i] = fabsf(dy[i]) * (s + fabsf(x[i]) * s * (1 - s));
    }
    compare("silu dx", get(d_dx, n), dx, K_ONE, 0, &sc);
    for (bf16 *p : {d_x, d_dy, d_y, d_dx}) CUDA_OK(cudaFree(p));
}

static void test_gn_gate6(size_t N, int H) {
    printf("gn_gate6 N=%zu H=%d\n", N, H);
    int C = H * HS;
    size_t n = N * C, nh = N * H;
    Vec y = rand_bf16(n, 70, -2, 2), g = rand_bf16(n, 71, -2, 2), w = rand_bf16(C, 72, 0.5f, 1.5f),
        b = rand_bf16(C, 73, -0.5f, 0.5f), dout = rand_bf16(n, 74, -1, 1);
    for (int j = 0; j < HS; j++) y[C + HS + j] = 0.75f; // row 1, head 1: zero variance
    Vec out(n), mean(nh), rstd(nh), dy(n), dg(n), s1(n), s2(n);
    Vec dw0 = rand_bf16(C, 75, -1, 1), db0 = rand_bf16(C, 76, -1, 1), dw = dw0, db = db0;
    gn_gate6_fwd(out.data(), mean.data(), rstd.data(), y.data(), g.data(), w.data(), b.data(), N, H);
    gn_gate6_bwd(dy.data(), dg.data(), dw.data(), db.data(), s1.data(), s2.data(), dout.data(), y.data(), g.data(),
                 mean.data(), rstd.data(), w.data(), b.data(), N, H);
    bf16 *d_y = dev_bf16(y), *d_g = dev_bf16(g), *d_w = dev_bf16(w), *d_b = dev_bf16(b), *d_dout = dev_bf16(dout);
    bf16 *d_out = dev_alloc<bf16>(n), *d_dy = dev_alloc<bf16>(n), *d_dg = dev_alloc<bf16>(n);
    float *d_mean = dev_alloc<float>(nh), *d_rstd = dev_alloc<float>(nh), *d_dw = dev_alloc<float>(C);
    float *d_db = dev_alloc<float>(C), *d_s1 = dev_alloc<float>(n), *d_s2 = dev_alloc<float>(n);
    check_bits_repeat("gn_gate6", [&]() {
        put(d_dw, dw0);
        put(d_db, db0);
        CUDA_OK(gn_gate6_fwd_cuda(d_out, d_mean, d_rstd, d_y, d_g, d_w, d_b, N, H, 0));
        CUDA_OK(gn_gate6_bwd_cuda(d_dy, d_dg, d_dw, d_db, d_s1, d_s2, d_dout, d_y, d_g, d_mean, d_rstd, d_w, d_b, N, H,
                                  0));
        std::vector<unsigned char> bytes;
        for (bf16 *p : {d_out, d_dy, d_dg}) get_bytes(bytes, p, n);
        for (float *p : {d_mean, d_rstd}) get_bytes(bytes, p, nh);
        for (float *p : {d_dw, d_db}) get_bytes(bytes, p, C);
        return bytes;
    });
    Vec sm(nh), so(n), sy(n), sg(n);
    for (size_t r = 0; r < nh; r++) {
        size_t base = (r / H) * C + (r % H) * HS;
        sm[r] = 0;
        for (int j = 0; j < HS; j++) sm[r] += fabsf(y[base + j]) / HS;
    }
    compare("gn_gate6 mean", get(d_mean, nh), mean, K_SUM, 1e-6, &sm);
    compare("gn_gate6 rstd", get(d_rstd, nh), rstd, K_SUM, 0);
    for (size_t r = 0; r < nh; r++) {
        size_t base = (r / H) * C + (r % H) * HS;
        int c0 = (int)(r % H) * HS;
        double m1 = 0, m2 = 0;
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            double xh = (y[i] - mean[r]) * rstd[r], dxh = (double)dout[i] * g[i] * w[c0 + j];
            so[i] = (float)((fabs(xh * w[c0 + j]) + fabs(b[c0 + j])) * fabs(g[i]));
            sg[i] = (float)(fabs(dout[i]) * (fabs(xh * w[c0 + j]) + fabs(b[c0 + j])));
            m1 += fabs(dxh) / HS, m2 += fabs(dxh * xh) / HS;
        }
        for (int j = 0; j < HS; j++) {
            size_t i = base + j;
            double xh = (y[i] - mean[r]) * rstd[r], dxh = (double)dout[i] * g[i] * w[c0 + j];
            sy[i] = (float)((fabs(dxh) + m1 + fabs(xh) * m2) * rstd[r]);
        }
    }
    compare("gn_gate6 out", get(d_out, n), out, K_ONE, 0, &so);
    compare("gn_gate6 dy", get(d_dy, n), dy, K_ONE, 0, &sy);
    compare("gn_gate6 dg", get(d_dg, n), dg, K_ONE, 0, &sg);
    Vec cw = colabs(s1, nullptr, N, C), cb = colabs(s2, nullptr, N, C);
    for (int c = 0; c < C; c++) cw[c] += fabsf(dw0[c]), cb[c] += fabsf(db0[c]);
    compare("gn_gate6 dlnx_w", get(d_dw, C), dw, K_SUM, 1e-6, &cw);
    compare("gn_gate6 dlnx_b", get(d_db, C), db, K_SUM, 1e-6, &cb);
    for (bf16 *p : {d_y, d_g, d_w, d_b, d_dout, d_out, d_dy, d_dg}) CUDA_OK(cudaFree(p));
    for (float *p : {d_mean, d_rstd, d_dw, d_db, d_s1, d_s2}) CUDA_OK(cudaFree(p));
}

static void test_cmix_gate6(size_t n) {
    printf("cmix_gate6 n=%zu\n", n);
    Vec rpre = rand_bf16(n, 80, -8, 8), kv = rand_bf16(n, 81, -2, 2), out0 = rand_bf16(n, 82, -1, 1);
    Vec dout = rand_bf16(n, 83, -1, 1), out = out0, rs(n);
    cmix_gate6_fwd(out.data(), rs.data(), rpre.data(), kv.data(), n);
    bf16 *d_rpre = dev_bf16(rpre), *d_kv = dev_bf16(kv), *d_out = dev_alloc<bf16>(n), *d_rs = dev_alloc<bf16>(n);
    bf16 *d_dout = dev_bf16(dout), *d_drpre = dev_alloc<bf16>(n), *d_dkv = dev_alloc<bf16>(n);
    check_bits_repeat("cmix_gate6", [&]() {
        put(d_out, out0);
        CUDA_OK(cmix_gate6_fwd_cuda(d_out, d_rs, d_rpre, d_kv, n, 0));
        CUDA_OK(cmix_gate6_bwd_cuda(d_drpre, d_dkv, d_dout, d_rs, d_kv, n, 0));
        std::vector<unsigned char> b;
        for (bf16 *p : {d_out, d_rs, d_drpre, d_dkv}) get_bytes(b, p, n);
        return b;
    });
    Vec g_rs = get(d_rs, n), g_out = get(d_out, n), sc(n);
    compare("cmix_gate6 rs", g_rs, rs, K_ONE, 0);
    for (size_t i = 0; i < n; i++) sc[i] = fabsf(out0[i]) + fabsf(rs[i] * kv[i]);
    compare("cmix_gate6 out", g_out, out, K_STORED, 0, &sc);
    // The backward from the saved bf16 rs on both sides.
    Vec drpre(n), dkv(n);
    cmix_gate6_bwd(drpre.data(), dkv.data(), dout.data(), g_rs.data(), kv.data(), n);
    compare("cmix_gate6 drpre", get(d_drpre, n), drpre, K_ONE, 0);
    compare("cmix_gate6 dkv", get(d_dkv, n), dkv, K_ONE, 0);
    // rs in place of rpre: the same bits.
    put(d_out, out0);
    CUDA_OK(cmix_gate6_fwd_cuda(d_out, d_rpre, d_rpre, d_kv, n, 0));
    CHECK(get(d_rpre, n) == g_rs && get(d_out, n) == g_out, "cmix_gate6 with rs = rpre: other values");
    for (bf16 *p : {d_rpre, d_kv, d_out, d_rs, d_dout, d_drpre, d_dkv}) CUDA_OK(cudaFree(p));
}

// Shapes the entry points refuse: cudaErrorInvalidValue, nothing written.
static void test_refusals(void) {
    const int C = 64;
    Vec ones(C * 4, 1.0f);
    bf16 *x = dev_bf16(ones), *o = dev_bf16(ones);
    float *f = dev_f32(ones);
    bf16 *os[DDLERP6_MAX + 1] = {o, o, o, o, o, o};
    float *fs[DDLERP6_MAX + 1] = {f, f, f, f, f, f};
    const bf16 *cx[DDLERP6_MAX + 1] = {x, x, x, x, x, x};
    struct { cudaError_t e; const char *what; } r[] = {
        {shift_diff6_fwd_cuda(o, o, x, nullptr, x, 1, 0, C, 0), "shift_diff6_fwd T = 0"},
        {shift_diff6_fwd_cuda(o, o, x, nullptr, x, -1, 2, C, 0), "shift_diff6_fwd B = -1"},
        {shift_diff6_fwd_cuda(o, o, x, nullptr, x, 1, 2, 0, 0), "shift_diff6_fwd C = 0"},
        {shift_diff6_bwd_cuda(o, f, x, x, x, x, 1, 0, C, 0), "shift_diff6_bwd T = 0"},
        {ddlerp6_fwd_cuda(os, x, x, cx, cx, 0, 2, C, 0), "ddlerp6_fwd nf = 0"},
        {ddlerp6_fwd_cuda(os, x, x, cx, cx, DDLERP6_MAX + 1, 2, C, 0), "ddlerp6_fwd nf = 6"},
        {ddlerp6_fwd_cuda(os, x, x, cx, cx, 1, 2, 0, 0), "ddlerp6_fwd C = 0"},
        {ddlerp6_bwd_cuda(o, o, os, fs, cx, x, cx, cx, DDLERP6_MAX + 1, 2, C, 0), "ddlerp6_bwd nf = 6"},
        {ddlerp6_bwd_cuda(o, o, os, nullptr, cx, x, cx, cx, 1, 2, C, 0), "ddlerp6_bwd without dmaa"},
        {gn_gate6_fwd_cuda(o, f, f, x, x, x, x, 2, 0, 0), "gn_gate6_fwd H = 0"},
        {gn_gate6_bwd_cuda(o, o, f, f, f, f, x, x, x, f, f, x, x, 2, 0, 0), "gn_gate6_bwd H = 0"},
    };
    for (const auto &c : r) CHECK(c.e == cudaErrorInvalidValue, "%s: %s, want cudaErrorInvalidValue", c.what,
                                  cudaGetErrorName(c.e));
    CHECK(get(o, ones.size()) == ones && get(f, ones.size()) == ones, "a refused call wrote its output");
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaGetLastError());
    for (bf16 *p : {x, o}) CUDA_OK(cudaFree(p));
    CUDA_OK(cudaFree(f));
    printf("refusals checked\n");
}

int main(void) {
    check_device();
    test_shift_diff6(2, 5, 192, true);
    test_shift_diff6(3, 1, 64, false);
    test_ddlerp6(5, 37, 128, false);
    test_ddlerp6(1, 19, 64, true);
    test_silu(1001);
    test_gn_gate6(19, 3);
    test_cmix_gate6(777);
    test_refusals();
    return check_finish("t_mix6");
}
