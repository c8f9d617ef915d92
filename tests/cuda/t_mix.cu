// cuda/mix.cu against its CPU twins (lib/ops_cpu.c): shift_mix (six lerps with an initial shift,
// one lerp without), tanh, sigmoid, relu_sq, value_residual, value_first_bwd, keyprep (with a
// head of zeros: F.normalize's clamp), embedding.  Inputs are random, rounded to bf16; the twins
// run in fp32 on the same values.  Sizes are not multiples of the 256-thread blocks, the 8 heads
// a block takes, or the 32 columns of the embedding backward.
//
// Tolerances (twin.h compare: |got - ref| <= k ulp_bf16(max(|ref|, scale)) + floor):
//  - one rounding of fp32 math: k = 1 (half an ulp, plus libm/__expf and FMA differences);
//  - the token shift in bf16 arithmetic: bit for bit against the same bf16 operations on the
//    host (cuda_bf16.h), and against the fp32 twin forward k = 2 at the scale |h| + |h_prev| (three
//    roundings, each at most half an ulp of that scale); backward k = 12 at the scale of the sum
//    of the absolute terms (12 products, 11 sums and 1 - mu each rounded: a worst-case bound);
//  - bf16 additions to a bf16 accumulator (dvfirst): k = 2 (two roundings);
//  - fp32 per-channel sums: k = 1/16 as in t_norm.cu.
#include "emu.h"
#include "twin.h"
#include "mix.cuh"
#include "ops.h"

static const int HS = OPS_HEAD_SIZE;

// The official kernel's bf16 arithmetic, on the host (cuda_bf16.h rounds as the device does).
static void shift_mix_bf16_ops(std::vector<Vec> &out, Vec &dh, const Vec &h, const Vec *init, const std::vector<Vec> &mu,
                               const std::vector<Vec> &dout, int T, int C) {
    size_t n = h.size();
    bf16 one = __float2bfloat16_rn(1.0f);
    for (size_t i = 0; i < n; i++) {
        int t = (int)((i / C) % T), c = (int)(i % C);
        bf16 hv = __float2bfloat16_rn(h[i]);
        bf16 prev = __float2bfloat16_rn(t ? h[i - C] : init ? (*init)[c] : 0.0f);
        bf16 xx = __hsub_rn(prev, hv), s = __float2bfloat16_rn(0.0f);
        for (size_t m = 0; m < mu.size(); m++) {
            bf16 mc = __float2bfloat16_rn(mu[m][c]);
            out[m][i] = __bfloat162float(__hadd_rn(hv, __hmul_rn(xx, mc)));
            s = __hadd_rn(s, __hmul_rn(__float2bfloat16_rn(dout[m][i]), __hsub_rn(one, mc)));
        }
        if (t + 1 < T)
            for (size_t m = 0; m < mu.size(); m++)
                s = __hadd_rn(s, __hmul_rn(__float2bfloat16_rn(dout[m][i + C]), __float2bfloat16_rn(mu[m][c])));
        dh[i] = __bfloat162float(s);
    }
}

static void test_shift_mix(int nmu, int B, int T, int C, bool with_init) {
    printf("shift_mix nmu=%d B=%d T=%d C=%d%s\n", nmu, B, T, C, with_init ? " (initial shift)" : "");
    size_t rows = (size_t)B * T, n = rows * C;
    Vec h = rand_bf16(n, 40, -2, 2), init = rand_bf16(C, 41, -2, 2);
    std::vector<Vec> mu(nmu), out(nmu, Vec(n)), dout(nmu), dmu0(nmu), dmu(nmu);
    std::vector<float *> mup(nmu), outp(nmu), doutp(nmu), dmup(nmu);
    std::vector<bf16 *> d_mu(nmu), d_out(nmu), d_dout(nmu);
    std::vector<float *> d_dmu(nmu);
    for (int i = 0; i < nmu; i++) {
        mu[i] = rand_bf16(C, 42 + i, 0, 1);
        dout[i] = rand_bf16(n, 50 + i, -1, 1);
        dmu0[i] = dmu[i] = rand_bf16(C, 60 + i, -1, 1);
        mup[i] = mu[i].data(), outp[i] = out[i].data(), doutp[i] = dout[i].data(), dmup[i] = dmu[i].data();
        d_mu[i] = dev_bf16(mu[i]), d_out[i] = dev_alloc<bf16>(n), d_dout[i] = dev_bf16(dout[i]);
        d_dmu[i] = dev_f32(dmu0[i]);
    }
    shift_mix_fwd(outp.data(), h.data(), with_init ? init.data() : nullptr, mup.data(), nmu, B, T, C);
    bf16 *d_h = dev_bf16(h), *d_init = dev_bf16(init);
    CUDA_OK(shift_mix_fwd_cuda(d_out.data(), d_h, with_init ? d_init : nullptr, d_mu.data(), nmu, B, T, C, 0));
    Vec scale(n);
    for (size_t i = 0; i < n; i++) {
        int t = (int)((i / C) % T);
        float prev = t ? h[i - C] : with_init ? init[i % C] : 0.0f;
        scale[i] = fabsf(h[i]) + fabsf(prev);
    }
    for (int i = 0; i < nmu; i++) compare("shift_mix out", get(d_out[i], n), out[i], 2, 0, &scale);
    std::vector<Vec> exact_out(nmu, Vec(n));
    Vec exact_dh(n);
    shift_mix_bf16_ops(exact_out, exact_dh, h, with_init ? &init : nullptr, mu, dout, T, C);
    for (int i = 0; i < nmu; i++) compare("shift_mix out (bf16 ops)", get(d_out[i], n), exact_out[i], 0, 0);

    Vec dh(n), scratch(n);
    shift_mix_bwd(dh.data(), dmup.data(), scratch.data(), doutp.data(), h.data(), mup.data(), nmu, B, T, C);
    for (size_t i = 0; i < n; i++) {
        int t = (int)((i / C) % T), c = (int)(i % C);
        scale[i] = 0;
        for (int m = 0; m < nmu; m++) {
            scale[i] += fabsf(dout[m][i] * (1 - mu[m][c]));
            if (t + 1 < T) scale[i] += fabsf(dout[m][i + C] * mu[m][c]);
        }
    }
    bf16 *d_dh = dev_alloc<bf16>(n);
    float *d_scratch = dev_alloc<float>(n);
    auto run = [&] {
        for (int i = 0; i < nmu; i++) put(d_dmu[i], dmu0[i]);
        CUDA_OK(shift_mix_bwd_cuda(d_dh, d_dmu.data(), d_scratch, d_dout.data(), d_h, d_mu.data(), nmu, B, T, C, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d_dh, n);
        for (int i = 0; i < nmu; i++) get_bytes(bytes, d_dmu[i], C);
        return bytes;
    };
    run();
    compare("shift_mix dh", get(d_dh, n), dh, 12, 0, &scale);
    compare("shift_mix dh (bf16 ops)", get(d_dh, n), exact_dh, 0, 0);
    for (int i = 0; i < nmu; i++) compare("shift_mix dmu", get(d_dmu[i], C), dmu[i], 1.0 / 16, 1e-4);
    check_bits_repeat("shift_mix bwd", run);
    CHECK(shift_mix_fwd_cuda(d_out.data(), d_h, nullptr, d_mu.data(), 0, B, T, C, 0) == cudaErrorInvalidValue,
          "nmu = 0 accepted");
    CHECK(shift_mix_fwd_cuda(d_out.data(), d_h, nullptr, d_mu.data(), SHIFT_MIX_MAX + 1, B, T, C, 0) ==
              cudaErrorInvalidValue,
          "nmu = %d accepted", SHIFT_MIX_MAX + 1);
    for (int i = 0; i < nmu; i++) cudaFree(d_mu[i]), cudaFree(d_out[i]), cudaFree(d_dout[i]), cudaFree(d_dmu[i]);
    cudaFree(d_h), cudaFree(d_init), cudaFree(d_dh), cudaFree(d_scratch);
}

typedef void (*CpuFwd)(float *, size_t);
typedef void (*CpuBwd)(float *, const float *, size_t);
typedef cudaError_t (*GpuFwd)(bf16 *, size_t, cudaStream_t);
typedef cudaError_t (*GpuBwd)(bf16 *, const bf16 *, size_t, cudaStream_t);

// An in-place activation and its backward (which reads the activation's bf16 output, as the
// backend stores it).
static void test_activation(const char *name, CpuFwd cf, CpuBwd cb, GpuFwd gf, GpuBwd gb) {
    const size_t n = 1000;
    Vec x = rand_bf16(n, 70, -4, 4), dx = rand_bf16(n, 71, -1, 1);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = -1.0f;
    Vec y = x;
    cf(y.data(), n);
    bf16 *d_x = dev_bf16(x), *d_dx = dev_bf16(dx);
    CUDA_OK(gf(d_x, n, 0));
    Vec gy = get(d_x, n);
    char what[64];
    snprintf(what, sizeof what, "%s fwd", name);
    compare(what, gy, y, 1, 1e-6);
    Vec ref = dx;   // the twin's backward from the same bf16 activation
    cb(ref.data(), gy.data(), n);
    CUDA_OK(gb(d_dx, d_x, n, 0));
    snprintf(what, sizeof what, "%s bwd", name);
    compare(what, get(d_dx, n), ref, 1, 1e-6);
    cudaFree(d_x), cudaFree(d_dx);
}

static void test_value_residual(void) {
    printf("value_residual\n");
    const size_t n = 1000;
    Vec v = rand_bf16(n, 80, -2, 2), vf = rand_bf16(n, 81, -2, 2), pre(n), dvm = rand_bf16(n, 83, -1, 1);
    Vec dvf0 = rand_bf16(n, 84, -1, 1);
    unsigned s = 82;
    for (size_t i = 0; i < n; i++) pre[i] = 4.0f * check_random(&s);   // fp32: v0 + v12 summed in fp32
    Vec vm(n), gate = pre;
    value_residual_fwd(vm.data(), gate.data(), v.data(), vf.data(), n);
    bf16 *d_v = dev_bf16(v), *d_vf = dev_bf16(vf), *d_vm = dev_alloc<bf16>(n);
    float *d_gate = dev_f32(pre);
    CUDA_OK(value_residual_fwd_cuda(d_vm, d_gate, d_v, d_vf, n, 0));
    compare("value_residual vm", get(d_vm, n), vm, 1, 1e-6);
    compare("value_residual gate", get(d_gate, n), gate, 1.0 / 64, 1e-7);   // fp32: a few fp32 ulps

    Vec dv(n), dvf = dvf0, dpre(n), scale(n);
    value_residual_bwd(dv.data(), dvf.data(), dpre.data(), dvm.data(), gate.data(), v.data(), vf.data(), n);
    for (size_t i = 0; i < n; i++) scale[i] = fabsf(dvf0[i]) + fabsf(dvm[i] * gate[i]);
    bf16 *d_dvm = dev_bf16(dvm), *d_dv = dev_alloc<bf16>(n), *d_dvf = dev_bf16(dvf0), *d_dpre = dev_alloc<bf16>(n);
    put(d_gate, gate);
    CUDA_OK(value_residual_bwd_cuda(d_dv, d_dvf, d_dpre, d_dvm, d_gate, d_v, d_vf, n, 0));
    compare("value_residual dv", get(d_dv, n), dv, 1, 1e-6);
    compare("value_residual dvfirst (+=)", get(d_dvf, n), dvf, 2, 0, &scale);
    compare("value_residual dpre", get(d_dpre, n), dpre, 1, 1e-6);

    Vec dv1(n);
    value_first_bwd(dv1.data(), dvm.data(), dvf0.data(), n);
    bf16 *d_dvf0 = dev_bf16(dvf0);
    CUDA_OK(value_first_bwd_cuda(d_dv, d_dvm, d_dvf0, n, 0));
    compare("value_first_bwd dv", get(d_dv, n), dv1, 1, 0);
    for (bf16 *p : {d_v, d_vf, d_vm, d_dvm, d_dv, d_dvf, d_dpre, d_dvf0}) cudaFree(p);
    cudaFree(d_gate);
}

static void test_keyprep(size_t N, int H) {
    printf("keyprep N=%zu H=%d\n", N, H);
    int C = H * HS;
    size_t NC = N * C;
    Vec k = rand_bf16(NC, 90, -2, 2), a = rand_bf16(NC, 91, 0, 1);
    Vec kw = rand_bf16(C, 92, 0.5f, 1.5f), ka = rand_bf16(C, 93, 0, 1);
    for (int j = 0; j < HS; j++) k[(N / 2) * C + HS + j] = 0.0f;   // a zero head: the norm's clamp
    Vec kk(NC), kp(NC), inv(N * H);
    keyprep_fwd(kk.data(), kp.data(), inv.data(), k.data(), a.data(), kw.data(), ka.data(), N, H);
    bf16 *d_k = dev_bf16(k), *d_a = dev_bf16(a), *d_kw = dev_bf16(kw), *d_ka = dev_bf16(ka);
    bf16 *d_kk = dev_alloc<bf16>(NC), *d_kp = dev_alloc<bf16>(NC);
    float *d_inv = dev_alloc<float>(N * H);
    CUDA_OK(keyprep_fwd_cuda(d_kk, d_kp, d_inv, d_k, d_a, d_kw, d_ka, N, H, 0));
    Vec gkk = get(d_kk, NC);
    compare("keyprep kk", gkk, kk, 1, 1e-6);
    compare("keyprep kp", get(d_kp, NC), kp, 1, 1e-6);
    compare("keyprep inv", get(d_inv, N * H), inv, 1.0 / 16, 0);

    // The backward reads the stored bf16 kk: the twin gets the same values.
    Vec dkk = rand_bf16(NC, 94, -1, 1), dkp = rand_bf16(NC, 95, -1, 1), da0 = rand_bf16(NC, 96, -1, 1);
    Vec dkw0 = rand_bf16(C, 97, -1, 1), dka0 = rand_bf16(C, 98, -1, 1);
    Vec dk(NC), da = da0, dkw = dkw0, dka = dka0, s1(NC), s2(NC);
    keyprep_bwd(dk.data(), da.data(), dkw.data(), dka.data(), s1.data(), s2.data(), dkk.data(), dkp.data(), k.data(),
                a.data(), gkk.data(), inv.data(), kw.data(), ka.data(), N, H);
    bf16 *d_dkk = dev_bf16(dkk), *d_dkp = dev_bf16(dkp), *d_dk = dev_alloc<bf16>(NC), *d_da = dev_bf16(da0);
    float *d_dkw = dev_f32(dkw0), *d_dka = dev_f32(dka0), *d_s1 = dev_alloc<float>(NC), *d_s2 = dev_alloc<float>(NC);
    auto run = [&] {
        put(d_da, da0), put(d_dkw, dkw0), put(d_dka, dka0);
        CUDA_OK(keyprep_bwd_cuda(d_dk, d_da, d_dkw, d_dka, d_s1, d_s2, d_dkk, d_dkp, d_k, d_a, d_kk, d_inv, d_kw, d_ka, N,
                                 H, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d_dk, NC), get_bytes(bytes, d_da, NC), get_bytes(bytes, d_dkw, C), get_bytes(bytes, d_dka, C);
        return bytes;
    };
    run();
    compare("keyprep dk", get(d_dk, NC), dk, 1, 1e-3);
    compare("keyprep da (+=)", get(d_da, NC), da, 1, 1e-4);
    // dk_k sums gu k, which is about 1e12 in the zero head's columns (and k = 0 there): relative
    compare("keyprep dk_k", get(d_dkw, C), dkw, 1.0 / 16, 1e-4);
    compare("keyprep dk_a", get(d_dka, C), dka, 1.0 / 16, 1e-4);
    check_bits_repeat("keyprep bwd", run);
    CHECK(keyprep_fwd_cuda(d_kk, d_kp, d_inv, d_k, d_a, d_kw, d_ka, N, 0, 0) == cudaErrorInvalidValue, "H = 0 accepted");
    for (bf16 *p : {d_k, d_a, d_kw, d_ka, d_kk, d_kp, d_dkk, d_dkp, d_dk, d_da}) cudaFree(p);
    for (float *p : {d_inv, d_dkw, d_dka, d_s1, d_s2}) cudaFree(p);
}

static void test_embedding(int V, size_t N, int C) {
    printf("embedding V=%d N=%zu C=%d\n", V, N, C);
    Vec emb = rand_bf16((size_t)V * C, 100, -1, 1), dout = rand_bf16(N * C, 101, -1, 1);
    Vec demb0 = rand_bf16((size_t)V * C, 102, -1, 1);
    std::vector<int32_t> tok(N);
    unsigned s = 103;
    for (size_t n = 0; n < N; n++) tok[n] = (int32_t)((check_random(&s) + 1.0f) * 0.5f * (V / 4));   // many repeats
    tok[N - 1] = V - 1;
    Vec out(N * C), demb = demb0;
    embedding_fwd(out.data(), tok.data(), emb.data(), N, C);
    embedding_bwd(demb.data(), dout.data(), tok.data(), N, C);
    int32_t *d_tok;
    CUDA_OK(cudaMalloc(&d_tok, N * sizeof(int32_t)));
    CUDA_OK(cudaMemcpy(d_tok, tok.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice));
    bf16 *d_emb = dev_bf16(emb), *d_out = dev_alloc<bf16>(N * C), *d_dout = dev_bf16(dout);
    float *d_demb = dev_f32(demb0);
    CUDA_OK(embedding_fwd_cuda(d_out, d_tok, d_emb, N, C, 0));
    compare("embedding out", get(d_out, N * C), out, 0, 0);   // a copy: exact
    auto run = [&] {
        put(d_demb, demb0);
        CUDA_OK(embedding_bwd_cuda(d_demb, d_dout, d_tok, N, C, 0));
        std::vector<unsigned char> bytes;
        get_bytes(bytes, d_demb, (size_t)V * C);
        return bytes;
    };
    run();
    compare("embedding demb", get(d_demb, (size_t)V * C), demb, 1.0 / 16, 1e-5);
    check_bits_repeat("embedding bwd", run);
    cudaFree(d_tok), cudaFree(d_emb), cudaFree(d_out), cudaFree(d_dout), cudaFree(d_demb);
}

int main() {
    check_device();
    test_shift_mix(6, 2, 5, 70, true);
    test_shift_mix(1, 3, 16, 40, false);
    printf("activations\n");
    test_activation("tanh", tanh_fwd, tanh_bwd, tanh_fwd_cuda, tanh_bwd_cuda);
    test_activation("sigmoid", sigmoid_fwd, sigmoid_bwd, sigmoid_fwd_cuda, sigmoid_bwd_cuda);
    test_activation("relu_sq", relu_sq_fwd, relu_sq_bwd, relu_sq_fwd_cuda, relu_sq_bwd_cuda);
    test_value_residual();
    test_keyprep(13, 2);
    test_embedding(300, 500, 70);
#if !CUDA_EMU   // training-sized shapes, only where a GPU runs them quickly
    test_shift_mix(6, 4, 512, 768, false);
    test_keyprep(4096, 12);
    test_embedding(65536, 8192, 768);
#endif
    return check_finish("t_mix");
}
