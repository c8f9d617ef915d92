/* pth-convert: PyTorch .pth <-> safetensors, and --info on either. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "growbuf.h"
#include "layout.h"
#include "pth.h"
#include "safetensors.h"
#include "tensors.h"
#include "util.h"

enum { FMT_UNKNOWN, FMT_PTH, FMT_ST };

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: pth-convert [-f] [--dtype bf16|fp16|fp32] [--to pth|safetensors] IN OUT\n"
            "       pth-convert --info [-v] FILE\n"
            "Convert a checkpoint between PyTorch .pth (torch.save zip) and safetensors.\n"
            "The input format is detected from its contents; the output is the other one.\n"
            "IN may be - (stdin).\n"
            "  -d, --dtype T       store float tensors as bf16, fp16 or fp32 (default: keep)\n"
            "  -t, --to FMT        output format pth or safetensors (default: not the input's)\n"
            "  -f, --force         overwrite OUT if it exists\n"
            "  -i, --info          print the detected model instead of converting\n"
            "  -v, --verbose       with --info, also list every tensor\n"
            "      --no-verify-crc accept .pth records whose CRC-32 is wrong or 0\n"
            "  -h, --help          this help\n"
            "  -V, --version       print the version\n");
}

/* Read IN (a file, or stdin for "-") and detect its format from the first bytes. */
static int load(const char *path, TensorSet *ts, int pth_flags, void **mem, int *fmt, Error *e)
{
    *mem = NULL;
    unsigned char head[9] = { 0 };
    size_t n = 0, len = 0;
    if (strcmp(path, "-") == 0) {
        size_t cap = 0;
        unsigned char *buf = NULL;
        do {
            if (grow(&buf, &cap, len + (1 << 20))) { free(buf); return fail(e, "out of memory"); }
            len += (n = fread(buf + len, 1, cap - len, stdin));
        } while (n > 0);
        if (ferror(stdin)) { free(buf); return fail(e, "stdin: read error"); }
        memcpy(head, buf, len < 9 ? len : 9);
        n = len;
        *mem = buf;
    } else {
        /* a FIFO or device would hang the sniff, and the readers mmap anyway */
        int fd = open_regular(path, e);
        if (fd < 0) return -1;
        ssize_t got = read(fd, head, sizeof head);
        close(fd);
        n = got > 0 ? (size_t)got : 0;
    }
    const char *name = strcmp(path, "-") ? path : "stdin";
    if (n >= 4 && !memcmp(head, "PK\x03\x04", 4)) *fmt = FMT_PTH;
    else if (n >= 9 && head[8] == '{') *fmt = FMT_ST;
    else return fail(e, "%s: neither a PyTorch .pth (zip) nor a safetensors file", name);
    if (*mem) {
        int rc = *fmt == FMT_PTH ? pth_parse(*mem, len, ts, pth_flags, e) : st_parse(*mem, len, ts, e);
        return rc ? fail_prefix(e, "%s", name) : 0;
    }
    return *fmt == FMT_PTH ? pth_read(path, ts, pth_flags, e) : st_read(path, ts, e);
}

static int is_float(DType t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16 || t == DT_F64; }

/* out = in with every float tensor stored as dt (others shared by reference). */
static int convert_dtype(const TensorSet *in, TensorSet *out, DType dt, Error *e)
{
    for (int i = 0; i < in->nmeta; i++)
        if (ts_set_meta(out, in->meta_key[i], in->meta_val[i], e)) return -1;
    for (int i = 0; i < in->n; i++) {
        const Tensor *t = &in->t[i];
        if (!is_float(t->dtype) || t->dtype == dt) {
            if (!ts_add(out, t->name, t->dtype, t->ndim, t->shape, t->data, 0, 0, e)) return -1;
            continue;
        }
        size_t n = (size_t)tensor_numel(t);
        float *f = malloc(n * sizeof *f + 1);
        Tensor *o = f ? ts_add(out, t->name, dt, t->ndim, t->shape, NULL, 1, 1, e) : NULL;
        if (!o) { free(f); return f ? -1 : fail(e, "out of memory"); }
        int rc = tensor_to_f32(t, f, e);
        size_t overflowed = rc ? 0 : f32_convert(f, o->data, n, dt);
        if (overflowed)
            tool_warn("%s: %zu finite value%s out of the %s range became infinite", t->name, overflowed,
                      overflowed == 1 ? "" : "s", dtype_name(dt));
        free(f);
        if (rc) return -1;
    }
    return 0;
}

static void info(const char *path, int fmt, const TensorSet *ts, int verbose)
{
    printf("file:       %s\n", path);
    printf("format:     %s\n", fmt == FMT_PTH ? "PyTorch .pth (torch.save zip)" : "safetensors");
    uint64_t count[DT_COUNT] = { 0 }, params = 0;
    for (int i = 0; i < ts->n; i++) {
        count[ts->t[i].dtype]++;
        params += (uint64_t)tensor_numel(&ts->t[i]);
    }
    printf("tensors:    %d\n", ts->n);
    printf("dtype:     ");
    for (int d = 0; d < DT_COUNT; d++)
        if (count[d]) printf(" %s%s", dtype_name(d), count[d] == (uint64_t)ts->n ? "" : "(some)");
    printf("\nparameters: %llu\n", (unsigned long long)params);
    ModelConfig c;
    Error e;
    if (config_from_tensors(ts, &c, &e)) {
        printf("model:      not an RWKV-7 x070 or RWKV-6 x060 checkpoint (%s)\n", e.msg);
    } else {
        Layout l = { 0 };
        int ok = layout_build(&c, &l, &e) == 0 && layout_check_tensors(&l, ts, &e) == 0;
        if (l.p) layout_free(&l);
        printf("model:      RWKV-%s %s%s%s\n", config_is_x060(&c) ? "6" : "7", config_type_name(&c), ok ? "" : ", but ", ok ? "" : e.msg);
        printf("layers:     %d\n", c.n_layer);
        printf("width:      %d\n", c.n_embd);
        printf("heads:      %d x %d\n", c.n_head, c.head_size);
        printf("vocab:      %d\n", c.vocab_size);
        if (config_is_x060(&c)) {
            printf("ffn:        %d (default for width %d: %d)\n", c.dim_ffn, c.n_embd, c.n_embd * 7 / 2 / 32 * 32);
            printf("lora:       mix %d, decay %d (trainer defaults 32, 64)\n", c.d_mix, c.d_decay);
            printf("ln0:        %s\n", c.no_ln0 ? "missing (the rwkv pip package cannot load such a file)" : "present");
        } else {
            printf("lora:       decay %d, aaa %d, mv %d, gate %d (formula for width %d: %d %d %d %d)\n", c.d_decay,
                   c.d_aaa, c.d_mv, c.d_gate, c.n_embd, lora_rank(2.5, c.n_embd), lora_rank(2.5, c.n_embd),
                   lora_rank(1.7, c.n_embd), lora_rank(5.0, c.n_embd));
            printf("layer-0 v0/v1/v2: %s\n", c.layer0_v ? "present (training checkpoint)" : "missing (as in official releases)");
        }
    }
    if (verbose)
        for (int i = 0; i < ts->n; i++) {
            const Tensor *t = &ts->t[i];
            printf("  %-36s %-4s [", t->name, dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? "," : "", (long long)t->shape[d]);
            printf("]\n");
        }
}

int main(int argc, char **argv)
{
    tool_init("pth-convert");
    static const struct option opts[] = {
        { "dtype", required_argument, 0, 'd' }, { "to", required_argument, 0, 't' },
        { "force", no_argument, 0, 'f' },       { "info", no_argument, 0, 'i' },
        { "verbose", no_argument, 0, 'v' },     { "no-verify-crc", no_argument, 0, 'C' },
        { "help", no_argument, 0, 'h' },        { "version", no_argument, 0, 'V' },
        { 0, 0, 0, 0 },
    };
    int force = 0, do_info = 0, verbose = 0, pth_flags = 0, to = FMT_UNKNOWN, dt = -1, c;
    while ((c = getopt_long(argc, argv, "d:t:fivhV", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dt = !strcmp(optarg, "bf16") ? DT_BF16 : !strcmp(optarg, "fp16") ? DT_F16 : !strcmp(optarg, "fp32") ? DT_F32 : -2;
            if (dt == -2) return bad_option("dtype", optarg, "bf16, fp16 or fp32");
            break;
        case 't':
            to = !strcmp(optarg, "pth") ? FMT_PTH : !strcmp(optarg, "safetensors") ? FMT_ST : -1;
            if (to < 0) return bad_option("to", optarg, "pth or safetensors");
            break;
        case 'f': force = 1; break;
        case 'i': do_info = 1; break;
        case 'v': verbose = 1; break;
        case 'C': pth_flags |= PTH_NO_CRC; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != (do_info ? 1 : 2)) { usage(stderr); return 2; }
    const char *in = argv[optind], *out = do_info ? NULL : argv[optind + 1];
    if (out && !strcmp(out, "-")) return usage_error("OUT must be a file (it is written atomically)");

    Error e;
    TensorSet ts, conv;
    ts_init(&ts);
    ts_init(&conv);
    void *mem = NULL;
    int fmt = FMT_UNKNOWN, rc = load(in, &ts, pth_flags, &mem, &fmt, &e);
    if (!rc && do_info) {
        info(strcmp(in, "-") ? in : "stdin", fmt, &ts, verbose);
        rc = close_stdout() ? -1 : 0;
        ts_free(&ts);
        free(mem);
        return rc ? 1 : 0;
    }
    const TensorSet *src = &ts;
    if (!rc && dt >= 0) {
        rc = convert_dtype(&ts, &conv, (DType)dt, &e);
        src = &conv;
    }
    if (!rc) {
        if (to == FMT_UNKNOWN) to = fmt == FMT_PTH ? FMT_ST : FMT_PTH;
        if (to == FMT_PTH) {
            rc = pth_write(out, src, force, &e);
        } else {
            /* Name the source format; tag RWKV-7 checkpoints as model_io.c does. */
            ModelConfig mc;
            Error ignore;
            TensorSet *w = src == &ts ? &ts : &conv;
            if (!ts_get_meta(w, "format")) rc = ts_set_meta(w, "format", "pt", &e);
            if (!rc && !ts_get_meta(w, "model_type") && config_from_tensors(w, &mc, &ignore) == 0)
                rc = ts_set_meta(w, "model_type", config_type_name(&mc), &e);
            if (!rc) rc = st_write(out, w, force, &e);
        }
    }
    ts_free(&conv);
    ts_free(&ts);
    free(mem);
    return rc ? report(&e) : 0;
}
