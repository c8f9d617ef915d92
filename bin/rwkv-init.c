/* rwkv-init: write a freshly initialised RWKV-7 (x070) model as safetensors. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "init.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

static void usage(FILE *fp)
{
    fprintf(fp,
        "usage: rwkv-init --n-layer L --n-embd C [options]\n"
        "Write a freshly initialised RWKV-7 (x070) model, as RWKV-LM's rwkv-init.pth, in safetensors.\n"
        "\n"
        "  -L, --n-layer L        number of layers (>= 2)\n"
        "  -C, --n-embd C         embedding size (a multiple of 64)\n"
        "  -V, --vocab-size V     vocabulary size (default 65536)\n"
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
        "  -q, --quiet            do not print the seed, table and parameter count\n"
        "  -h, --help             show this help\n"
        "      --version          show the version\n");
}

static int parse_int_opt(const char *opt, const char *s, int *out)
{
    uint64_t v;
    if (parse_u64(s, &v) || v == 0 || v > 1u << 30) {
        tool_warn("%s: not a valid count (want 1 or more): '%s'", opt, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    tool_init("rwkv-init");
    enum { O_HEAD = 256, O_DTYPE, O_LD, O_LA, O_LM, O_LG, O_NOV0, O_VERSION };
    static const struct option opts[] = {
        { "n-layer", required_argument, 0, 'L' }, { "n-embd", required_argument, 0, 'C' },
        { "vocab-size", required_argument, 0, 'V' }, { "head-size", required_argument, 0, O_HEAD },
        { "seed", required_argument, 0, 's' }, { "output", required_argument, 0, 'o' },
        { "force", no_argument, 0, 'f' }, { "dtype", required_argument, 0, O_DTYPE },
        { "lora-decay", required_argument, 0, O_LD }, { "lora-aaa", required_argument, 0, O_LA },
        { "lora-mv", required_argument, 0, O_LM }, { "lora-gate", required_argument, 0, O_LG },
        { "no-layer0-v", no_argument, 0, O_NOV0 }, { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' }, { "version", no_argument, 0, O_VERSION }, { 0, 0, 0, 0 },
    };
    int n_layer = -1, n_embd = -1, vocab = 65536, head = 64, force = 0, quiet = 0, no_v0 = 0;
    int ld = 0, la = 0, lm = 0, lg = 0, have_seed = 0;
    uint64_t seed = 0;
    const char *out = "rwkv-init.safetensors";
    DType dt = DT_BF16;
    int c;
    while ((c = getopt_long(argc, argv, "L:C:V:s:o:fqh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'L': bad = parse_int_opt("--n-layer", optarg, &n_layer); break;
        case 'C': bad = parse_int_opt("--n-embd", optarg, &n_embd); break;
        case 'V': bad = parse_int_opt("--vocab-size", optarg, &vocab); break;
        case O_HEAD: bad = parse_int_opt("--head-size", optarg, &head); break;
        case O_LD: bad = parse_int_opt("--lora-decay", optarg, &ld); break;
        case O_LA: bad = parse_int_opt("--lora-aaa", optarg, &la); break;
        case O_LM: bad = parse_int_opt("--lora-mv", optarg, &lm); break;
        case O_LG: bad = parse_int_opt("--lora-gate", optarg, &lg); break;
        case 's':
            if (parse_u64(optarg, &seed)) { tool_warn("--seed: not a valid number: '%s'", optarg); bad = 1; }
            have_seed = 1;
            break;
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        case 'q': quiet = 1; break;
        case O_NOV0: no_v0 = 1; break;
        case O_DTYPE:
            if (strcmp(optarg, "bf16") == 0) dt = DT_BF16;
            else if (strcmp(optarg, "fp32") == 0) dt = DT_F32;
            else if (strcmp(optarg, "fp16") == 0) dt = DT_F16;
            else { tool_warn("--dtype: expected bf16, fp32 or fp16, got '%s'", optarg); bad = 1; }
            break;
        case 'h': usage(stdout); return close_stdout();
        case O_VERSION: printf("rwkv-init %s\n", RWKV7C_VERSION); return close_stdout();
        default: usage(stderr); return 2;
        }
        if (bad) return 2;
    }
    if (optind < argc) { tool_warn("unexpected argument '%s'", argv[optind]); usage(stderr); return 2; }
    if (n_layer < 0 || n_embd < 0) { tool_warn("--n-layer and --n-embd are required"); usage(stderr); return 2; }
    if (strcmp(out, "-") == 0) { tool_warn("-o: a checkpoint is written atomically to a file, not to stdout"); return 2; }

    Error e = { "" };
    ModelConfig cfg;
    if (config_default(&cfg, n_layer, n_embd, vocab, head, &e)) { tool_warn("%s", e.msg); return 2; }
    if (ld) cfg.d_decay = ld;
    if (la) cfg.d_aaa = la;
    if (lm) cfg.d_mv = lm;
    if (lg) cfg.d_gate = lg;
    if (no_v0) cfg.layer0_v = 0;
    if (!have_seed) {
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) seed = (uint64_t)time(NULL) ^ (uint64_t)clock();
        seed >>= 1;   /* stays printable and re-usable as a signed 64-bit number too */
    }

    Model m;
    if (model_alloc(&m, &cfg, &e)) return report(&e);
    double t0 = now_seconds();
    if (init_model(&m, seed, &e)) { model_free(&m); return report(&e); }
    double t1 = now_seconds();
    if (!quiet) {
        printf("seed %llu\n", (unsigned long long)seed);
        for (int i = 0; i < m.layout.n; i++) {
            const ParamInfo *p = &m.layout.p[i];
            char shape[64];
            int n = 0;
            for (int k = 0; k < p->ndim; k++) n += snprintf(shape + n, sizeof shape - n, "%s%lld", k ? " x " : "", (long long)p->shape[k]);
            double gain;
            InitKind kind = init_kind(&cfg, p->name, &gain);
            printf("%-34s %-16s %s", p->name, shape, init_kind_name(kind));
            if (kind == INIT_ORTHOGONAL) printf(" gain %.6g", gain);
            if (kind == INIT_UNIFORM) printf(" +-%g", gain);
            printf("\n");
        }
        printf("model params %zu\n", m.layout.total);
    }
    if (progress_wanted()) fprintf(stderr, "rwkv-init: initialised in %.2f s, writing %s\n", t1 - t0, out);

    char sbuf[32];
    snprintf(sbuf, sizeof sbuf, "%llu", (unsigned long long)seed);
    TensorSet ts;
    ts_init(&ts);
    int rc = model_to_tensors(&m, &ts, dt, &e);
    if (!rc) rc = ts_set_meta(&ts, "init_seed", sbuf, &e);
    if (!rc) rc = ts_set_meta(&ts, "creator", "rwkv-init " RWKV7C_VERSION, &e);
    if (!rc) rc = st_write(out, &ts, force, &e);
    ts_free(&ts);
    model_free(&m);
    if (rc) return report(&e);
    return close_stdout();
}
