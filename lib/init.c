/* init.c: x070 initialisation (init.h; RWKV-LM-V7 src/model.py, doc/model.md "Initialisation"). */
#include "init.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Each float32 step must round on its own, as torch's separate tensor ops do:
 * no fused multiply-add contraction (GCC contracts by default with -march=native). */
#ifdef __clang__
#pragma clang fp contract(off)
#else
#pragma GCC optimize("fp-contract=off")
#endif

/* ---------------- random numbers ---------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s[4]; } Rng;

static void rng_seed(Rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(Rng *r)   /* xoshiro256** */
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform double in [0, 1) with 53 random bits */
static inline double rng_unit(Rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t init_tensor_seed(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;           /* FNV-1a of the name */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    uint64_t s = seed ^ splitmix64(&h);
    return splitmix64(&s);
}

#define CHUNK ((size_t)1 << 16)

static void chunk_rng(Rng *r, uint64_t seed, size_t chunk)
{
    uint64_t s = seed + chunk * 0xd1b54a32d192ed03ull;
    rng_seed(r, splitmix64(&s));
}

void init_normal(float *w, size_t n, uint64_t seed)
{
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        Rng r;
        chunk_rng(&r, seed, c);
        size_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (size_t i = c * CHUNK; i < end; i += 2) {
            /* Box-Muller in double: u1 in (0,1] so the log is finite */
            double u1 = 1.0 - rng_unit(&r), u2 = rng_unit(&r);
            double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
            w[i] = (float)(rad * cos(th));
            if (i + 1 < end) w[i + 1] = (float)(rad * sin(th));
        }
    }
}

void init_uniform(float *w, size_t n, float lo, float hi, uint64_t seed)
{
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        Rng r;
        chunk_rng(&r, seed, c);
        size_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        /* like torch uniform_: from + (to - from) * U[0,1), in float */
        for (size_t i = c * CHUNK; i < end; i++)
            w[i] = lo + (hi - lo) * (float)((rng_next(&r) >> 40) * 0x1.0p-24);
    }
}

int init_orthogonal(float *w, int64_t rows, int64_t cols, double gain, uint64_t seed, Error *e)
{
    /* torch.nn.init.orthogonal_: QR of the tall (m x n, m >= n) normal matrix.
     * The column-major m x n buffer read row-major is its transpose, which is
     * exactly the wide (rows < cols) result, so only the tall case transposes. */
    int64_t m = rows > cols ? rows : cols, n = rows > cols ? cols : rows;
    if (m > INT32_MAX || m * n > (int64_t)1 << 40) return fail(e, "orthogonal init: %lldx%lld too large", (long long)rows, (long long)cols);
    if (n == 0) return 0;
    float *a = malloc((size_t)(m * n) * sizeof *a);
    float *tau = malloc((size_t)n * sizeof *tau);
    float *sign = malloc((size_t)n * sizeof *sign);
    if (!a || !tau || !sign) { free(a); free(tau); free(sign); return fail(e, "out of memory"); }
    init_normal(a, (size_t)(m * n), seed);
    lapack_int info = LAPACKE_sgeqrf(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)n, a, (lapack_int)m, tau);
    if (info == 0) {
        for (int64_t j = 0; j < n; j++) {
            float d = a[j + j * m];
            sign[j] = (float)((d > 0) - (d < 0)) * (float)gain;   /* torch: q *= sign(diag(r)) */
        }
        info = LAPACKE_sorgqr(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)n, (lapack_int)n, a, (lapack_int)m, tau);
    }
    if (info != 0) {
        free(a); free(tau); free(sign);
        return fail(e, "orthogonal init: LAPACK QR failed (info %d)", (int)info);
    }
    if (rows < cols) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++) w[i * m + j] = a[i * m + j] * sign[i];
    } else {
        const int64_t B = 64;   /* blocked transpose */
#pragma omp parallel for schedule(static)
        for (int64_t i0 = 0; i0 < m; i0 += B)
            for (int64_t j0 = 0; j0 < n; j0 += B)
                for (int64_t i = i0; i < i0 + B && i < m; i++)
                    for (int64_t j = j0; j < j0 + B && j < n; j++) w[i * n + j] = a[i + j * m] * sign[j];
    }
    free(a); free(tau); free(sign);
    return 0;
}

/* ---------------- which init each parameter gets ---------------- */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* x060 (RWKV-LM RWKV-v5/src/model.py generate_init_weight at HEAD): names with
 * ln_/.ln/time_ or ending in _w1/_w2 keep their constructor values (LoRA w1 0,
 * w2 U(+-0.01); ln_x.weight the layer constant), the rest are re-created. */
static InitKind init_kind_x060(const char *name, double *gain)
{
    if (ends_with(name, "att.ln_x.weight")) return INIT_FORMULA;
    if (strstr(name, ".ln") || strstr(name, "ln_"))
        return ends_with(name, ".weight") ? INIT_ONES : INIT_ZEROS;
    if (ends_with(name, "_w1")) return INIT_ZEROS;
    if (ends_with(name, "_w2")) { *gain = 0.01; return INIT_UNIFORM; }
    if (strstr(name, "time_")) return INIT_FORMULA;
    if (ends_with(name, "att.output.weight") || ends_with(name, "ffn.value.weight") || ends_with(name, "ffn.receptance.weight"))
        return INIT_ZEROS;
    if (ends_with(name, "att.key.weight") || ends_with(name, "att.gate.weight")) { *gain = 0.1; return INIT_ORTHOGONAL; }
    *gain = 1.0;
    return INIT_ORTHOGONAL;   /* receptance, value, ffn.key */
}

InitKind init_kind(const ModelConfig *c, const char *name, double *gain)
{
    *gain = 0;
    if (strcmp(name, "emb.weight") == 0) { *gain = 1e-4; return INIT_UNIFORM; }
    if (strcmp(name, "head.weight") == 0) {
        *gain = c->vocab_size > c->n_embd ? 0.5 * sqrt((double)c->vocab_size / c->n_embd) : 0.5;
        return INIT_ORTHOGONAL;
    }
    if (config_is_x060(c)) return init_kind_x060(name, gain);
    /* LayerNorm / GroupNorm: weight 1, bias 0 (ln_x.weight has its own formula) */
    if (ends_with(name, "att.ln_x.weight")) return INIT_FORMULA;
    if (strstr(name, ".ln") || strstr(name, "ln_"))
        return ends_with(name, ".weight") ? INIT_ONES : INIT_ZEROS;
    if (ends_with(name, "att.w1") || ends_with(name, "att.a1") || ends_with(name, "att.v1") || ends_with(name, "att.g1"))
        return INIT_ZEROS;
    if (ends_with(name, "att.w2") || ends_with(name, "att.a2") || ends_with(name, "att.v2") || ends_with(name, "att.g2")) {
        /* ortho_init(x, 0.1) of [D, C]: extra gain sqrt(D/C) only when D > C */
        int d = ends_with(name, "w2") ? c->d_decay : ends_with(name, "a2") ? c->d_aaa : ends_with(name, "v2") ? c->d_mv : c->d_gate;
        *gain = (d > c->n_embd ? sqrt((double)d / c->n_embd) : 1.0) * 0.1;
        return INIT_ORTHOGONAL;
    }
    if (ends_with(name, "att.output.weight") || ends_with(name, "ffn.value.weight")) return INIT_ZEROS;
    if (ends_with(name, "att.key.weight")) { *gain = 0.1; return INIT_ORTHOGONAL; }
    if (ends_with(name, ".weight")) { *gain = 1.0; return INIT_ORTHOGONAL; }   /* receptance, value, ffn.key */
    return INIT_FORMULA;
}

const char *init_kind_name(InitKind k)
{
    static const char *names[] = { "formula", "zeros", "ones", "uniform", "orthogonal" };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* ------- the formulas of RWKV_Tmix_x070/RWKV_CMix_x070.__init__, in float32 steps ------- */

/* float32 pow as the reference's torch.pow(float tensor, scalar): correctly
 * rounded here (torch's vectorised powf is within 1 ulp of this; the bf16
 * values agree). */
static float pow32(float x, double ex) { return (float)pow((double)x, (double)(float)ex); }

static int formula(const ModelConfig *c, int l, const char *what, float *out, size_t numel, Error *e)
{
    const int C = c->n_embd, N = c->head_size, L = c->n_layer;
    const double r01 = (double)l / (L - 1), r1 = 1.0 - (double)l / L;
    if (strcmp(what, "att.ln_x.weight") == 0) {
        float v = (float)pow((double)(1 + l) / L, 0.7);
        for (size_t i = 0; i < numel; i++) out[i] = v;
        return 0;
    }
    if (strcmp(what, "att.k_a") == 0) { for (int n = 0; n < C; n++) out[n] = 1.02f; return 0; }
    if (strcmp(what, "att.r_k") == 0) { for (size_t i = 0; i < numel; i++) out[i] = -0.04f; return 0; }
    double ex = -1;
    if (strcmp(what, "att.x_r") == 0 || strcmp(what, "att.x_g") == 0) ex = 0.2 * r1;
    else if (strcmp(what, "att.x_w") == 0 || strcmp(what, "att.x_a") == 0) ex = 0.9 * r1;
    else if (strcmp(what, "att.x_k") == 0 || strcmp(what, "att.x_v") == 0) ex = 0.7 * r1;
    else if (strcmp(what, "ffn.x_k") == 0) ex = pow(r1, 4.0);
    if (ex >= 0) {
        for (int n = 0; n < C; n++) {
            float ddd = (float)((double)n / C);
            out[n] = 1.0f - pow32(ddd, ex);
        }
        return 0;
    }
    for (int n = 0; n < C; n++) {
        float linear = (float)((double)n / (C - 1) - 0.5);
        float zz = (float)(((double)(n % N) - (N - 1) / 2.0) / ((N - 1) / 2.0));
        zz = zz * fabsf(zz);
        if (strcmp(what, "att.w0") == 0) {
            float www = (float)(-6.0 + 6.0 * pow((double)n / (C - 1), 1.0 + pow(r01, 0.3)));
            out[n] = (www + 0.5f) + zz * 2.5f;
        } else if (strcmp(what, "att.a0") == 0) {
            out[n] = ((0.0f - 0.19f) + zz * 0.3f) + linear * 0.4f;
        } else if (strcmp(what, "att.v0") == 0) {
            out[n] = (0.0f + 0.73f) - linear * 0.4f;
        } else if (strcmp(what, "att.k_k") == 0) {
            out[n] = (0.0f + 0.71f) - linear * 0.1f;
        } else {
            return fail(e, "no init formula for %s", what);
        }
    }
    return 0;
}

/* RWKV_Tmix_x060 / RWKV_CMix_x060.__init__: time_decay and time_faaaa are
 * Python double expressions stored as float32; the maa use float32 tensors. */
static int formula_x060(const ModelConfig *c, int l, const char *what, float *out, X060CmixInit cmix, Error *e)
{
    const int C = c->n_embd, L = c->n_layer;
    const double r01 = (double)l / (L - 1), r1 = 1.0 - (double)l / L;
    if (strcmp(what, "att.ln_x.weight") == 0) {
        float v = (float)pow((double)(1 + l) / L, 0.7);
        for (int n = 0; n < C; n++) out[n] = v;
        return 0;
    }
    if (strcmp(what, "att.time_decay") == 0) {
        for (int n = 0; n < C; n++) out[n] = (float)(-6 + 5 * pow((double)n / (C - 1), 0.7 + 1.3 * r01));
        return 0;
    }
    if (strcmp(what, "att.time_faaaa") == 0) {
        for (int n = 0; n < C; n++) {
            double zigzag = ((n + 1) % 3 - 1) * 0.1;
            out[n] = (float)(r01 * (1 - (double)n / (C - 1)) + zigzag);
        }
        return 0;
    }
    double ex = -1;
    float add = 0;   /* time_maa_v: 1 - (ddd^r1 + 0.3 r01) */
    if (!strcmp(what, "att.time_maa_x") || !strcmp(what, "att.time_maa_w") || !strcmp(what, "att.time_maa_k")) ex = r1;
    else if (!strcmp(what, "att.time_maa_v")) { ex = r1; add = (float)(0.3 * r01); }
    else if (!strcmp(what, "att.time_maa_r") || !strcmp(what, "att.time_maa_g")) ex = 0.5 * r1;
    else if (!strcmp(what, "ffn.time_maa_k") || !strcmp(what, "ffn.time_maa_r")) ex = cmix == X060_CMIX_2024 ? r1 : pow(r1, 3.0);
    if (ex < 0) return fail(e, "no init formula for %s", what);
    for (int n = 0; n < C; n++) {
        float ddd = (float)((double)n / C);
        out[n] = add != 0 ? 1.0f - (pow32(ddd, ex) + add) : 1.0f - pow32(ddd, ex);
    }
    return 0;
}

int init_model(Model *m, uint64_t seed, Error *e)
{
    return init_model_x060(m, seed, X060_CMIX_HEAD, e);
}

int init_model_x060(Model *m, uint64_t seed, X060CmixInit cmix, Error *e)
{
    const ModelConfig *c = &m->cfg;
    int *jobs = malloc((size_t)m->layout.n * sizeof *jobs);
    if (!jobs) return fail(e, "out of memory");
    int njobs = 0;
    for (int i = 0; i < m->layout.n; i++) {
        const ParamInfo *p = &m->layout.p[i];
        float *w = m->w + p->offset;
        double gain;
        uint64_t ts = init_tensor_seed(seed, p->name);
        switch (init_kind(c, p->name, &gain)) {
        case INIT_ZEROS: memset(w, 0, p->numel * sizeof *w); break;
        case INIT_ONES: for (size_t k = 0; k < p->numel; k++) w[k] = 1.0f; break;
        case INIT_UNIFORM: init_uniform(w, p->numel, (float)-gain, (float)gain, ts); break;
        case INIT_ORTHOGONAL: jobs[njobs++] = i; break;
        case INIT_FORMULA: {
            const char *what = p->name;
            if (p->layer >= 0) what = strchr(strchr(p->name, '.') + 1, '.') + 1;   /* after "blocks.N." */
            if (config_is_x060(c) ? formula_x060(c, p->layer, what, w, cmix, e) : formula(c, p->layer, what, w, p->numel, e)) {
                free(jobs);
                return -1;
            }
            break;
        }
        }
    }
    /* QRs run one per thread with single-threaded BLAS: a multithreaded QR
     * rounds differently for different thread counts, and a seed must give
     * the same file however many cores there are.  Largest first. */
    for (int a = 1; a < njobs; a++)
        for (int b = a; b > 0 && m->layout.p[jobs[b]].numel > m->layout.p[jobs[b - 1]].numel; b--) {
            int t = jobs[b]; jobs[b] = jobs[b - 1]; jobs[b - 1] = t;
        }
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    int failed = -1;
    Error err1 = { "" };
#pragma omp parallel for schedule(dynamic, 1)
    for (int j = 0; j < njobs; j++) {
        const ParamInfo *p = &m->layout.p[jobs[j]];
        double gain;
        Error ej;
        init_kind(c, p->name, &gain);
        if (init_orthogonal(m->w + p->offset, p->shape[0], p->shape[1], gain, init_tensor_seed(seed, p->name), &ej)) {
#pragma omp critical
            if (failed < 0) { failed = jobs[j]; err1 = ej; }
        }
    }
    openblas_set_num_threads(blas_threads);
    free(jobs);
    if (failed >= 0) {
        *e = err1;
        return fail_prefix(e, "%s", m->layout.p[failed].name);
    }
    return 0;
}
