/* rwkv-init: write a freshly initialised RWKV-7 (x070) or RWKV-6 (x060) model as safetensors. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "init.h"
#include "model.h"
#include "model_io.h"
#include "safetensors.h"
#include "util.h"

static void usage(FILE *fp)
{
    fprintf(fp,
        "Usage: rwkv-init -L LAYERS -C EMBD [--vocab-size V] [-s SEED] [-o FILE] [OPTION]...\n"
        "Write a freshly initialised RWKV-7 (x070) or RWKV-6 (x060) model, as RWKV-LM's\n"
        "rwkv-init.pth, in safetensors.\n"
        "\n"
        "      --model-type T     x070 (RWKV-7, default) or x060 (RWKV-6)\n"
        "  -L, --n-layer L        number of layers (>= 2)\n"
        "  -C, --n-embd C         embedding size (a multiple of 64)\n"
        "      --vocab-size V     vocabulary size (default 65536)\n"
        "      --head-size N      head size (default 64; the kernels need 64)\n"
        "  -s, --seed S           random seed (default: picked at random and printed)\n"
        "  -o, --output FILE      output file (default rwkv-init.safetensors)\n"
        "  -f, --force            overwrite FILE if it exists\n"
        "      --dtype T          bf16 (default), fp32 or fp16\n"
        "      --lora-decay D     LoRA ranks (default: the reference formula of C)\n"
        "      --lora-aaa D\n"
        "      --lora-mv D\n"
        "      --lora-gate D\n"
        "      --no-layer0-v      omit blocks.0.att.v0/v1/v2 (unused; absent in released models)\n"
        "x060 only:\n"
        "      --lora-mix D       time-mix LoRA rank (TIME_MIX_EXTRA_DIM, default 32)\n"
        "      --lora-decay D     x060: time-decay LoRA rank (TIME_DECAY_EXTRA_DIM, default 64)\n"
        "      --dim-ffn F        ChannelMix width (default int(3.5 C) rounded down to a multiple of 32)\n"
        "      --cmix-init V      head (default): ffn.time_maa_k/_r = 1 - ddd^(r1^3), RWKV-LM since\n"
        "                         Nov 2024; 2024: 1 - ddd^r1, the code of the released RWKV-6 models\n"
        "  -q, --quiet            do not print the seed, table and parameter count\n"
        "  -h, --help             show this help\n"
        "  -V, --version          show the version\n");
}

/* A count option: 1 to 2^30.  Returns 0, or the usage exit status. */
static int parse_count(const char *opt, const char *s, int *out)
{
    uint64_t v;
    if (parse_u64(s, &v) || v == 0 || v > 1u << 30) return bad_option(opt, s, "a whole number from 1 to 1073741824");
    *out = (int)v;
    return 0;
}

/* The seed, every tensor with its shape and initialisation, the parameter count. */
static void print_table(const Model *m, uint64_t seed)
{
    printf("seed %llu\n", (unsigned long long)seed);
    for (int i = 0; i < m->layout.n; i++) {
        const ParamInfo *p = &m->layout.p[i];
        char shape[64];
        int n = 0;
        for (int k = 0; k < p->ndim; k++) n += snprintf(shape + n, sizeof shape - n, "%s%lld", k ? " x " : "", (long long)p->shape[k]);
        double gain;
        InitKind kind = init_kind(&m->cfg, p->name, &gain);
        printf("%-34s %-16s %s", p->name, shape, init_kind_name(kind));
        if (kind == INIT_ORTHOGONAL) printf(" gain %.6g", gain);
        if (kind == INIT_UNIFORM) printf(" +-%g", gain);
        printf("\n");
    }
    printf("model params %zu\n", m->layout.total);
}

/* m as safetensors in dt, with the seed in the metadata, atomically. */
static int write_model(const Model *m, uint64_t seed, DType dt, const char *path, int force, Error *e)
{
    char sbuf[32];
    snprintf(sbuf, sizeof sbuf, "%llu", (unsigned long long)seed);
    TensorSet ts;
    ts_init(&ts);
    int rc = model_to_tensors(m, &ts, dt, e);
    if (!rc) rc = ts_set_meta(&ts, "init_seed", sbuf, e);
    if (!rc) rc = ts_set_meta(&ts, "creator", "rwkv-init " RWKV7C_VERSION, e);
    if (!rc) rc = st_write(path, &ts, force, e);
    ts_free(&ts);
    return rc;
}

int main(int argc, char **argv)
{
    tool_init("rwkv-init");
    enum { O_VOCAB = 256, O_HEAD, O_DTYPE, O_LD, O_LA, O_LM, O_LG, O_NOV0, O_TYPE, O_LMIX, O_FFN, O_CMIX };
    static const struct option opts[] = {
        { "n-layer", required_argument, 0, 'L' }, { "n-embd", required_argument, 0, 'C' },
        { "vocab-size", required_argument, 0, O_VOCAB }, { "head-size", required_argument, 0, O_HEAD },
        { "seed", required_argument, 0, 's' }, { "output", required_argument, 0, 'o' },
        { "force", no_argument, 0, 'f' }, { "dtype", required_argument, 0, O_DTYPE },
        { "lora-decay", required_argument, 0, O_LD }, { "lora-aaa", required_argument, 0, O_LA },
        { "lora-mv", required_argument, 0, O_LM }, { "lora-gate", required_argument, 0, O_LG },
        { "no-layer0-v", no_argument, 0, O_NOV0 }, { "quiet", no_argument, 0, 'q' },
        { "model-type", required_argument, 0, O_TYPE }, { "lora-mix", required_argument, 0, O_LMIX },
        { "dim-ffn", required_argument, 0, O_FFN }, { "cmix-init", required_argument, 0, O_CMIX },
        { "help", no_argument, 0, 'h' }, { "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 },
    };
    int n_layer = -1, n_embd = -1, vocab = 65536, head = 64, force = 0, quiet = 0, no_v0 = 0;
    int ld = 0, la = 0, lm = 0, lg = 0, have_seed = 0, version = 0;
    int x060 = 0, lmix = 0, ffn = 0, cmix_given = 0;
    X060CmixInit cmix = X060_CMIX_HEAD;
    uint64_t seed = 0;
    const char *out = "rwkv-init.safetensors";
    DType dt = DT_BF16;
    int c;
    while ((c = getopt_long(argc, argv, "L:C:s:o:fqhV", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'L': bad = parse_count("n-layer", optarg, &n_layer); break;
        case 'C': bad = parse_count("n-embd", optarg, &n_embd); break;
        case O_VOCAB: bad = parse_count("vocab-size", optarg, &vocab); break;
        case O_HEAD: bad = parse_count("head-size", optarg, &head); break;
        case O_LD: bad = parse_count("lora-decay", optarg, &ld); break;
        case O_LA: bad = parse_count("lora-aaa", optarg, &la); break;
        case O_LM: bad = parse_count("lora-mv", optarg, &lm); break;
        case O_LG: bad = parse_count("lora-gate", optarg, &lg); break;
        case 's':
            if (parse_u64(optarg, &seed)) bad = bad_option("seed", optarg, "a whole number from 0 to 2^64-1");
            have_seed = 1;
            break;
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        case 'q': quiet = 1; break;
        case O_NOV0: no_v0 = 1; break;
        case O_TYPE:
            if (!strcmp(optarg, "x060")) x060 = 1;
            else if (!strcmp(optarg, "x070")) x060 = 0;
            else bad = bad_option("model-type", optarg, "x070 or x060");
            break;
        case O_LMIX: bad = parse_count("lora-mix", optarg, &lmix); break;
        case O_FFN: bad = parse_count("dim-ffn", optarg, &ffn); break;
        case O_CMIX:
            if (!strcmp(optarg, "head")) cmix = X060_CMIX_HEAD;
            else if (!strcmp(optarg, "2024")) cmix = X060_CMIX_2024;
            else bad = bad_option("cmix-init", optarg, "head or 2024");
            cmix_given = 1;
            break;
        case O_DTYPE:
            if (strcmp(optarg, "bf16") == 0) dt = DT_BF16;
            else if (strcmp(optarg, "fp32") == 0) dt = DT_F32;
            else if (strcmp(optarg, "fp16") == 0) dt = DT_F16;
            else bad = bad_option("dtype", optarg, "bf16, fp32 or fp16");
            break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': version = 1; break;
        default: usage(stderr); return 2;
        }
        if (bad) return bad;
    }
    /* -V used to mean --vocab-size: an old "-V 16" must not print the version and exit 0 */
    if (version && optind < argc)
        return usage_error("unexpected argument '%s' (-V is --version; the vocabulary size is --vocab-size)", argv[optind]);
    if (version) return tool_version();
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (n_layer < 0 || n_embd < 0) return usage_error("--n-layer (-L) and --n-embd (-C) are required");
    if (strcmp(out, "-") == 0) return bad_option("output", out, "a file: a checkpoint is written atomically, not to standard output");

    Error e = { "" };
    ModelConfig cfg;
    if (x060) {
        if (la || lm || lg || no_v0) return usage_error("--lora-aaa, --lora-mv, --lora-gate and --no-layer0-v are for x070");
        if (config_default_x060(&cfg, n_layer, n_embd, vocab, head, &e)) return usage_error("%s", e.msg);
        if (lmix) cfg.d_mix = lmix;
        if (ld) cfg.d_decay = ld;
        if (ffn) cfg.dim_ffn = ffn;
    } else {
        if (lmix || ffn || cmix_given) return usage_error("--lora-mix, --dim-ffn and --cmix-init are for --model-type x060");
        if (config_default(&cfg, n_layer, n_embd, vocab, head, &e)) return usage_error("%s", e.msg);
        if (ld) cfg.d_decay = ld;
        if (la) cfg.d_aaa = la;
        if (lm) cfg.d_mv = lm;
        if (lg) cfg.d_gate = lg;
        if (no_v0) cfg.layer0_v = 0;
    }
    if (!have_seed) {
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) seed = (uint64_t)time(NULL) ^ (uint64_t)clock();
        seed >>= 1;   /* stays printable and re-usable as a signed 64-bit number too */
    }

    Model m;
    if (model_alloc(&m, &cfg, &e)) return report(&e);
    double t0 = now_seconds();
    if (init_model_x060(&m, seed, cmix, &e)) { model_free(&m); return report(&e); }
    double t1 = now_seconds();
    if (!quiet) print_table(&m, seed);
    if (progress_wanted()) fprintf(stderr, "rwkv-init: initialised in %.2f s, writing %s\n", t1 - t0, out);
    int rc = write_model(&m, seed, dt, out, force, &e);
    model_free(&m);
    if (rc) return report(&e);
    return close_stdout();
}
