/* rwkv-generate: continue a prompt with an x070 or x060 checkpoint, or chat.  The
 * prompt is read in parallel mode (model_prefill), the continuation one token
 * at a time (model_step); tokens are printed as they come.  main() parses the
 * options and dispatches to generate() or chat(), as llama2.c's run.c does;
 * every build_ has a free_. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "growbuf.h"
#include "logit_sample.h"
#include "model.h"
#include "gpu_decode.h"
#include "model_io.h"
#include "tokenizer.h"
#include "util.h"
#include "vocab.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: rwkv-generate -m MODEL [--prompt TEXT] [-n N] [OPTION]...\n"
        "       rwkv-generate -m MODEL --chat [--prompt TEXT] [OPTION]...\n"
        "Print the continuation of TEXT (default: all of standard input) by an RWKV-7\n"
        "(x070) or RWKV-6 (x060) checkpoint (safetensors or .pth; bf16, f16 or\n"
        "fp32).  Generation stops after N tokens, at token 0, or once the --stop\n"
        "string has been printed.\n"
        "With --chat, each line of standard input is a user turn, sent as\n"
        "\"User: LINE\\n\\nAssistant:\"; the reply ends at a blank line (\"\\n\\n\").\n"
        "\n"
        "  -m, --model FILE       checkpoint (required)\n"
        "  -p, --prompt TEXT      prompt (with --chat: text fed before the first turn)\n"
        "  -n, --tokens N         generate at most N tokens (default 200; 0: only read\n"
        "                         the prompt, e.g. for --logits-out)\n"
        "      --temperature T    sampling temperature (default 1.0; 0: greedy), applied\n"
        "                         after the top-p/top-k cut as in the rwkv pip package\n"
        "      --top-p P          nucleus sampling: keep the most likely tokens up to\n"
        "                         total probability P at T=1 (default 0.85; 1: off)\n"
        "      --top-k K          keep only the K most likely tokens (default 0: off)\n"
        "  -s, --seed N           random seed (default 0): same seed, same output\n"
        "      --stop STRING      stop once STRING has been generated\n"
        "      --chat             chat mode (see above)\n"
        "      --logits-out FILE  write the logits that predict the token after the\n"
        "                         prompt (--chat: the first turn without --prompt):\n"
        "                         vocab_size float32 values, little-endian\n"
        "  -f, --force            overwrite an existing --logits-out FILE\n"
        "      --dtype bf16|fp32  weights of the token-by-token decode (default: bf16\n"
        "                         when the checkpoint's weights are bf16, else fp32);\n"
        "                         bf16 reads half the bytes, accumulates in fp32\n"
        "      --accelerator cpu|gpu  where to run (default cpu); gpu: the CUDA build\n"
        "                         (build/cuda/bin), bf16 weights and activations\n"
        "      --vocab FILE       vocabulary (default: the installed %s)\n"
        "  -h, --help             show this help\n"
        "  -V, --version          show the version\n"
        "\n"
        "Non-finite logits (a checkpoint whose weights overflow) stop the run with an\n"
        "error naming the checkpoint and the step.\n"
        "Exit status: 0 success, 1 error (bad checkpoint, unreadable input, non-finite\n"
        "logits, failed write), 2 usage.\n",
        DEFAULT_VOCAB);
}

/* The command line. */
typedef struct {
    const char *model_path, *prompt, *stop, *logits_path, *vocab_path;
    uint64_t n_tokens, seed, top_k;
    double temperature, top_p;
    int chat, force, gpu;                                 /* gpu: --accelerator gpu */
    enum { DTYPE_AUTO, DTYPE_BF16, DTYPE_FP32 } dtype;   /* decode weights (--dtype) */
} Options;

/* Everything a run holds.  All zero is a valid "nothing built yet" for free_generator. */
typedef struct {
    const char *model_path;    /* for messages */
    Vocab vocab;
    Tokenizer *tok;
    Model model;
    ModelState *st;
    GpuDecoder *gpu;           /* --accelerator gpu: the state and the weights live there instead */
    LogitSampler smp;
    float *logits, *prob;      /* logits of the next token; sampler scratch */
    int32_t *idx;
    char *out;                 /* text generated in this reply, for the stop string */
    size_t out_len, out_cap;
} Generator;

static void free_generator(Generator *g)
{
    model_state_free(g->st);
    gpu_decoder_free(g->gpu);
    model_free(&g->model);
    tokenizer_free(g->tok);
    vocab_free(&g->vocab);
    free(g->logits);
    free(g->prob);
    free(g->idx);
    free(g->out);
    memset(g, 0, sizeof *g);
}

/* Vocabulary, tokenizer, checkpoint, state and sampler.  On failure what was
 * built is freed. */
static int build_generator(Generator *g, const Options *o, Error *e)
{
    memset(g, 0, sizeof *g);
    g->model_path = o->model_path;
    if (vocab_load_default(&g->vocab, o->vocab_path, e) || !(g->tok = tokenizer_new(&g->vocab, e)) ||
        model_load(&g->model, o->model_path, e) ||
        (o->gpu ? gpu_decoder_open(&g->model, &g->gpu, e)
                : model_use_bf16(&g->model, o->dtype == DTYPE_BF16 || (o->dtype == DTYPE_AUTO && model_weights_bf16_exact(&g->model)), e) ||
                  !(g->st = model_state_new(&g->model, e))))
        goto fail;
    size_t V = (size_t)g->model.cfg.vocab_size;
    g->logits = malloc(V * sizeof *g->logits);
    g->prob = malloc(V * sizeof *g->prob);
    g->idx = malloc(V * sizeof *g->idx);
    if (!g->logits || !g->prob || !g->idx) { fail(e, "out of memory"); goto fail; }
    g->smp.temperature = (float)o->temperature;
    g->smp.top_p = (float)o->top_p;
    g->smp.top_k = (int)o->top_k;
    logit_sample_seed(&g->smp, o->seed);
    return 0;
fail:
    free_generator(g);
    return -1;
}

/* Feed n tokens to the state (CPU or GPU); logits of the next token if non-NULL. */
static int advance(Generator *g, const int32_t *tokens, int n, float *logits, Error *e)
{
    if (g->gpu) return gpu_decoder_feed(g->gpu, tokens, n, logits, e);
    if (n == 1) {
        model_step(&g->model, g->st, tokens[0], logits);
        return 0;
    }
    return model_prefill(&g->model, g->st, tokens, n, logits, e);
}

/* A checkpoint whose weights overflow in fp32 gives NaN or inf logits; the
 * sampler would then print nothing (or garbage) and exit 0, so say so and stop. */
static int check_logits(const Generator *g, const char *when, Error *e)
{
    int V = g->model.cfg.vocab_size;
    for (int i = 0; i < V; i++)
        if (!isfinite(g->logits[i]))
            return fail(e, "%s: the logits %s are not finite (%s for token %d): the weights overflow "
                        "in fp32, so the output would be garbage", g->model_path, when,
                        isnan(g->logits[i]) ? "NaN" : "inf", i);
    return 0;
}

/* Feed text (an empty text is token 0, the document separator) and leave the
 * logits of the next token.  line: the chat line it comes from, 0 for the prompt. */
static int feed(Generator *g, const char *text, size_t len, uint64_t line, Error *e)
{
    int V = g->model.cfg.vocab_size;
    uint32_t *ids = malloc((len ? len : 1) * sizeof *ids);
    if (!ids) return fail(e, "out of memory");
    size_t n = len ? tokenizer_encode(g->tok, (const uint8_t *)text, len, ids) : 0;
    if (n == 0) ids[n++] = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (ids[i] >= (uint32_t)V) {
            if (line) rc = fail(e, "%s: token %u of chat line %llu is outside the model's vocabulary (size %d)",
                                g->model_path, ids[i], (unsigned long long)line, V);
            else rc = fail(e, "%s: prompt token %u is outside the model's vocabulary (size %d)", g->model_path, ids[i], V);
        }
    if (!rc) rc = g->gpu ? advance(g, (const int32_t *)ids, (int)n, g->logits, e)
                         : model_prefill(&g->model, g->st, (const int32_t *)ids, (int)n, g->logits, e);
    free(ids);
    if (rc) return -1;
    char when[64];
    if (line) snprintf(when, sizeof when, "after chat line %llu", (unsigned long long)line);
    else snprintf(when, sizeof when, "after the prompt");
    return check_logits(g, when, e);
}

static int write_logits(const Generator *g, const char *path, int force, Error *e)
{
    size_t V = (size_t)g->model.cfg.vocab_size;
    AtomicFile f;
    if (atomic_open(&f, path, force, e)) return -1;
    if (fwrite(g->logits, sizeof(float), V, f.fp) != V) {   /* x86/ARM: little-endian */
        int err = errno;   /* atomic_abort's unlink may change errno */
        atomic_abort(&f);
        return fail(e, "%s: write failed: %s", path, strerror(err));
    }
    return atomic_commit(&f, e);
}

/* Print token t and keep its text for the stop string.  A failed write (full
 * disk, closed pipe) stops the run now, not after n tokens; a closed pipe
 * needs no message (e->msg left empty). */
static int emit(Generator *g, int32_t t, Error *e)
{
    if ((uint32_t)t > g->vocab.n) return 0;   /* the model's vocabulary may be larger than the file's */
    size_t len = vocab_token_len(&g->vocab, (uint32_t)t);
    const uint8_t *bytes = vocab_token(&g->vocab, (uint32_t)t);
    fwrite(bytes, 1, len, stdout);
    if (fflush(stdout) != 0) {
        int err = errno;
        if (err == EPIPE) { e->msg[0] = 0; return -1; }
        return fail(e, "write error on standard output: %s", strerror(err));
    }
    if (grow(&g->out, &g->out_cap, g->out_len + len + 1)) return fail(e, "out of memory");
    memcpy(g->out + g->out_len, bytes, len);
    g->out_len += len;
    return 0;
}

/* Whether the text of this reply now ends in a stop string that the last
 * token (of len bytes) completed. */
static int stopped(const Generator *g, const char *stop, size_t stop_len, size_t last_len)
{
    if (!stop_len || g->out_len < stop_len) return 0;
    size_t from = g->out_len > stop_len + last_len ? g->out_len - stop_len - last_len : 0;
    return memmem(g->out + from, g->out_len - from, stop, stop_len) != NULL;
}

/* Sample up to n tokens from g->logits, printing each, until token 0 or the
 * stop string.  *last: the last token sampled but not yet fed to the state
 * (-1 if none). */
static int sample_reply(Generator *g, int n, const char *stop, int32_t *last, Error *e)
{
    size_t stop_len = stop ? strlen(stop) : 0;
    int V = g->model.cfg.vocab_size;
    g->out_len = 0;
    *last = -1;
    for (int i = 0; i < n; i++) {
        int32_t t = logit_sample(&g->smp, g->logits, V, g->prob, g->idx);
        if (t == 0) return 0;
        size_t before = g->out_len;
        if (emit(g, t, e)) return -1;
        if (i + 1 == n || stopped(g, stop, stop_len, g->out_len - before)) { *last = t; return 0; }
        if (advance(g, &t, 1, g->logits, e)) return -1;
        char when[64];
        snprintf(when, sizeof when, "after generated token %d", i + 1);
        if (check_logits(g, when, e)) return -1;
    }
    return 0;
}

static char *read_all(FILE *fp, size_t *len)
{
    size_t cap = 0, n = 0, k;
    char *buf = NULL;
    do {
        if (grow(&buf, &cap, n + 4096)) { free(buf); return NULL; }
        k = fread(buf + n, 1, cap - n, fp);
        n += k;
    } while (k > 0);
    if (ferror(fp)) { free(buf); return NULL; }
    *len = n;
    return buf;
}

/* Continue the prompt (--prompt, or all of standard input). */
static int generate(Generator *g, const Options *o, size_t *n_out, Error *e)
{
    char *text = NULL;
    size_t len = 0;
    if (o->prompt) len = strlen(o->prompt);
    else if (!(text = read_all(stdin, &len))) return fail(e, "<stdin>: cannot read the prompt: %s", strerror(errno));
    int rc = feed(g, o->prompt ? o->prompt : text, len, 0, e);
    free(text);
    if (!rc && o->logits_path) rc = write_logits(g, o->logits_path, o->force, e);
    int32_t last;
    if (!rc && o->n_tokens > 0) rc = sample_reply(g, (int)o->n_tokens, o->stop, &last, e);
    *n_out = g->out_len;
    return rc;
}

/* Each non-empty line of standard input is a user turn; the reply ends at a
 * blank line (or --stop).  The state carries over from turn to turn. */
static int chat(Generator *g, const Options *o, size_t *n_out, Error *e)
{
    size_t prompt_len = o->prompt ? strlen(o->prompt) : 0;
    if (prompt_len > 0) {
        if (feed(g, o->prompt, prompt_len, 0, e)) return -1;
        if (o->logits_path && write_logits(g, o->logits_path, o->force, e)) return -1;
    }
    /* a turn starts after a blank line, as in the RWKV chat demos */
    int ended_blank = prompt_len == 0 || (prompt_len >= 2 && !strcmp(o->prompt + prompt_len - 2, "\n\n"));
    char *line = NULL, *turn = NULL;
    size_t line_cap = 0, turn_cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    int rc = 0, turns = 0;
    *n_out = 0;
    while (!rc && (len = getline(&line, &line_cap, stdin)) > 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (grow(&turn, &turn_cap, (size_t)len + 32)) { rc = fail(e, "out of memory"); break; }
        int tl = snprintf(turn, turn_cap, "%sUser: %s\n\nAssistant:", ended_blank ? "" : "\n\n", line);
        if ((rc = feed(g, turn, (size_t)tl, lineno, e))) break;
        /* without --prompt, the first turn is the prompt whose logits are wanted */
        if (o->logits_path && prompt_len == 0 && turns++ == 0 && (rc = write_logits(g, o->logits_path, o->force, e))) break;
        int32_t last = -1;
        g->out_len = 0;
        /* -n 0: only read the turns (e.g. for --logits-out), as without --chat */
        if (o->n_tokens > 0 && (rc = sample_reply(g, (int)o->n_tokens, o->stop ? o->stop : "\n\n", &last, e))) break;
        if (last > 0 && (rc = advance(g, &last, 1, NULL, e))) break;   /* the state includes the whole reply */
        ended_blank = g->out_len >= 2 && !memcmp(g->out + g->out_len - 2, "\n\n", 2);
        if (!ended_blank) fputs("\n\n", stdout);
        fflush(stdout);
        *n_out += g->out_len;
    }
    if (!rc && ferror(stdin)) rc = fail(e, "<stdin>: read error: %s", strerror(errno));
    free(line);
    free(turn);
    return rc;
}

/* Options into o; returns -1 to go on, or the exit status (help, version, usage error). */
static int parse_options(int argc, char **argv, Options *o)
{
    enum { O_TEMP = 256, O_TOPP, O_TOPK, O_STOP, O_CHAT, O_LOGITS, O_VOCAB, O_DTYPE, O_ACCEL };
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' },      { "prompt", required_argument, 0, 'p' },
        { "tokens", required_argument, 0, 'n' },     { "temperature", required_argument, 0, O_TEMP },
        { "top-p", required_argument, 0, O_TOPP },   { "top-k", required_argument, 0, O_TOPK },
        { "seed", required_argument, 0, 's' },       { "stop", required_argument, 0, O_STOP },
        { "chat", no_argument, 0, O_CHAT },          { "logits-out", required_argument, 0, O_LOGITS },
        { "force", no_argument, 0, 'f' },            { "vocab", required_argument, 0, O_VOCAB },
        { "dtype", required_argument, 0, O_DTYPE },   { "accelerator", required_argument, 0, O_ACCEL },
        { "help", no_argument, 0, 'h' },             { "version", no_argument, 0, 'V' },
        { 0, 0, 0, 0 },
    };
    *o = (Options){ .n_tokens = 200, .temperature = 1.0, .top_p = 0.85 };
    int c;
    while ((c = getopt_long(argc, argv, "m:p:n:s:fhV", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model_path = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'n':
            if (parse_u64(optarg, &o->n_tokens) || o->n_tokens > 100000000)
                return bad_option("tokens", optarg, "a whole number from 0 to 100000000");
            break;
        case 's':
            if (parse_u64(optarg, &o->seed)) return bad_option("seed", optarg, "a whole number from 0 to 2^64-1");
            break;
        case O_TEMP:
            if (parse_double(optarg, &o->temperature) || !(o->temperature >= 0 && o->temperature <= 100))
                return bad_option("temperature", optarg, "a number from 0 to 100");
            break;
        case O_TOPP:
            if (parse_double(optarg, &o->top_p) || !(o->top_p > 0 && o->top_p <= 1))
                return bad_option("top-p", optarg, "a number P with 0 < P <= 1");
            break;
        case O_TOPK:
            if (parse_u64(optarg, &o->top_k) || o->top_k > 1u << 30)
                return bad_option("top-k", optarg, "a whole number from 0 to 1073741824");
            break;
        case O_STOP:
            if (!*optarg) return bad_option("stop", optarg, "a non-empty string");
            o->stop = optarg;
            break;
        case O_CHAT: o->chat = 1; break;
        case O_LOGITS:
            /* binary logits on the stdout the text goes to would be mixed with it */
            if (!strcmp(optarg, "-"))
                return bad_option("logits-out", optarg, "a file: the generated text is on standard output");
            o->logits_path = optarg;
            break;
        case 'f': o->force = 1; break;
        case O_VOCAB: o->vocab_path = optarg; break;
        case O_DTYPE:
            if (!strcmp(optarg, "bf16")) o->dtype = DTYPE_BF16;
            else if (!strcmp(optarg, "fp32")) o->dtype = DTYPE_FP32;
            else return bad_option("dtype", optarg, "bf16 or fp32");
            break;
        case O_ACCEL:
            if (!strcmp(optarg, "cpu")) o->gpu = 0;
            else if (!strcmp(optarg, "gpu") || !strcmp(optarg, "cuda")) o->gpu = 1;
            else return bad_option("accelerator", optarg, "cpu or gpu");
            break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->model_path) return usage_error("a checkpoint is required: -m MODEL");
    if (o->gpu) {
        Error e;
        if (gpu_decoder_check(&e)) return usage_error("%s", e.msg);
        if (o->dtype == DTYPE_FP32) return usage_error("--dtype fp32: the GPU decoder holds the weights in bf16");
    }
    return -1;
}

int main(int argc, char **argv)
{
    tool_init("rwkv-generate");
    Options o;
    int status = parse_options(argc, argv, &o);
    if (status >= 0) return status;

    Error e = { "" };
    Generator g;
    if (build_generator(&g, &o, &e)) return report(&e);
    double t0 = now_seconds();
    size_t n_out = 0;
    int rc = o.chat ? chat(&g, &o, &n_out, &e) : generate(&g, &o, &n_out, &e);
    if (!rc && progress_wanted())
        fprintf(stderr, "\n%s: %zu bytes generated in %.2f s\n", tool_name, n_out, now_seconds() - t0);
    free_generator(&g);
    if (rc) {
        if (e.msg[0]) report(&e);
        fclose(stdout);   /* the error has been said; a second one about stdout would only repeat it */
        return 1;
    }
    return close_stdout();
}
