/* rwkv-generate: continue a prompt with an x070 checkpoint.  The prompt is
 * read in parallel mode (model_prefill), the continuation one token at a time
 * (model_step); tokens are printed as they come. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logit_sample.h"
#include "model.h"
#include "tokenizer.h"
#include "util.h"
#include "vocab.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: rwkv-generate -m MODEL [--prompt TEXT] [-n N] [OPTION]...\n"
        "       rwkv-generate -m MODEL --chat [--prompt TEXT] [OPTION]...\n"
        "Print the continuation of TEXT (default: all of standard input) by an RWKV-7\n"
        "x070 checkpoint (safetensors or .pth; bf16, f16 or fp32).  Generation stops\n"
        "after N tokens, at token 0, or once the --stop string has been printed.\n"
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
        "      --vocab FILE       vocabulary (default: the installed %s)\n"
        "  -h, --help             show this help\n"
        "  -V, --version          show the version\n"
        "\n"
        "Exit status: 0 success, 1 error (bad checkpoint, unreadable input), 2 usage.\n",
        DEFAULT_VOCAB);
}

typedef struct {
    const Model *m;
    const Vocab *v;
    ModelState *st;
    LogitSampler smp;
    float *logits, *prob;
    int32_t *idx;
    char *out;                 /* text generated in this turn, for the stop string */
    size_t out_len, out_cap;
} Gen;

/* Tokens of text; an empty text becomes token 0 (the document separator). */
static int32_t *encode(const Tokenizer *tok, const char *text, size_t len, int V, int *n, Error *e)
{
    uint32_t *ids = malloc((len ? len : 1) * sizeof *ids);
    if (!ids) { fail(e, "out of memory"); return NULL; }
    size_t k = len ? tokenizer_encode(tok, (const uint8_t *)text, len, ids) : 0;
    if (k == 0) ids[k++] = 0;
    for (size_t i = 0; i < k; i++)
        if (ids[i] >= (uint32_t)V) {
            fail(e, "prompt token %u is outside the model's vocabulary (size %d)", ids[i], V);
            free(ids);
            return NULL;
        }
    *n = (int)k;
    return (int32_t *)ids;
}

/* Sample up to n tokens from g->logits, printing each.  Returns the last token
 * sampled but not yet fed to the state (-1 if none). */
static int32_t generate(Gen *g, int n, const char *stop)
{
    size_t stop_len = stop ? strlen(stop) : 0;
    g->out_len = 0;
    for (int i = 0; i < n; i++) {
        int32_t t = logit_sample(&g->smp, g->logits, g->m->cfg.vocab_size, g->prob, g->idx);
        if (t == 0) return -1;
        if ((uint32_t)t <= g->v->n) {
            size_t len = vocab_token_len(g->v, (uint32_t)t);
            fwrite(vocab_token(g->v, (uint32_t)t), 1, len, stdout);
            if (fflush(stdout) != 0) {   /* full disk, closed pipe: stop now, not after n tokens */
                int err = errno;
                if (err != EPIPE) tool_warn("write error on standard output: %s", strerror(err));
                exit(1);
            }
            if (g->out_len + len + 1 > g->out_cap) {
                g->out_cap = (g->out_len + len + 1) * 2;
                g->out = realloc(g->out, g->out_cap);
                if (!g->out) { tool_warn("out of memory"); exit(1); }
            }
            memcpy(g->out + g->out_len, vocab_token(g->v, (uint32_t)t), len);
            g->out_len += len;
            if (stop_len && g->out_len >= stop_len) {
                size_t from = g->out_len > stop_len + len ? g->out_len - stop_len - len : 0;
                if (memmem(g->out + from, g->out_len - from, stop, stop_len)) return t;
            }
        }
        if (i + 1 == n) return t;
        model_step(g->m, g->st, t, g->logits);
    }
    return -1;
}

static int write_logits(const char *path, const float *logits, int V, Error *e)
{
    AtomicFile f;
    if (atomic_open(&f, path, 1, e)) return -1;
    if (fwrite(logits, sizeof(float), (size_t)V, f.fp) != (size_t)V) {   /* x86/ARM: little-endian */
        int err = errno;   /* atomic_abort's unlink may change errno */
        atomic_abort(&f);
        return fail(e, "%s: write failed: %s", path, strerror(err));
    }
    return atomic_commit(&f, e);
}

static char *read_all(FILE *fp, size_t *len)
{
    size_t cap = 4096, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
    }
    if (buf && ferror(fp)) { free(buf); return NULL; }
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    tool_init("rwkv-generate");
    enum { O_TEMP = 256, O_TOPP, O_TOPK, O_STOP, O_CHAT, O_LOGITS, O_VOCAB };
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' },      { "prompt", required_argument, 0, 'p' },
        { "tokens", required_argument, 0, 'n' },     { "temperature", required_argument, 0, O_TEMP },
        { "top-p", required_argument, 0, O_TOPP },   { "top-k", required_argument, 0, O_TOPK },
        { "seed", required_argument, 0, 's' },       { "stop", required_argument, 0, O_STOP },
        { "chat", no_argument, 0, O_CHAT },          { "logits-out", required_argument, 0, O_LOGITS },
        { "vocab", required_argument, 0, O_VOCAB },  { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },          { 0, 0, 0, 0 },
    };
    const char *model_path = NULL, *prompt = NULL, *stop = NULL, *logits_path = NULL, *vocab_path = NULL;
    uint64_t n_tokens = 200, seed = 0, top_k = 0;
    double temperature = 1.0, top_p = 0.85;
    int chat = 0, c;
    while ((c = getopt_long(argc, argv, "m:p:n:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n':
            if (parse_u64(optarg, &n_tokens) || n_tokens > 100000000) { tool_warn("bad --tokens '%s'", optarg); return 2; }
            break;
        case 's':
            if (parse_u64(optarg, &seed)) { tool_warn("bad --seed '%s'", optarg); return 2; }
            break;
        case O_TEMP:
            if (parse_double(optarg, &temperature) || !(temperature >= 0 && temperature <= 100)) {
                tool_warn("bad --temperature '%s' (0 to 100)", optarg);
                return 2;
            }
            break;
        case O_TOPP:
            if (parse_double(optarg, &top_p) || !(top_p > 0 && top_p <= 1)) { tool_warn("bad --top-p '%s' (0 < P <= 1)", optarg); return 2; }
            break;
        case O_TOPK:
            if (parse_u64(optarg, &top_k) || top_k > 1u << 30) { tool_warn("bad --top-k '%s'", optarg); return 2; }
            break;
        case O_STOP:
            if (!*optarg) { tool_warn("--stop needs a non-empty string"); return 2; }
            stop = optarg;
            break;
        case O_CHAT: chat = 1; break;
        case O_LOGITS:
            /* a binary file, written atomically; on stdout it would mix with the text */
            if (!strcmp(optarg, "-")) { tool_warn("--logits-out: needs a file, not standard output"); return 2; }
            logits_path = optarg;
            break;
        case O_VOCAB: vocab_path = optarg; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': printf("rwkv-generate %s\n", RWKV7C_VERSION); return close_stdout();
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !model_path) { usage(stderr); return 2; }

    Error e;
    Vocab v;
    if (vocab_load_default(&v, vocab_path, &e)) return report(&e);
    Tokenizer *tok = tokenizer_new(&v, &e);
    if (!tok) return report(&e);
    Model m;
    if (model_load(&m, model_path, &e)) return report(&e);
    int V = m.cfg.vocab_size;
    Gen g = { .m = &m, .v = &v };
    g.smp.temperature = (float)temperature;
    g.smp.top_p = (float)top_p;
    g.smp.top_k = (int)top_k;
    logit_sample_seed(&g.smp, seed);
    g.logits = malloc((size_t)V * sizeof(float));
    g.prob = malloc((size_t)V * sizeof(float));
    g.idx = malloc((size_t)V * sizeof(int32_t));
    if (!g.logits || !g.prob || !g.idx) { tool_warn("out of memory"); return 1; }
    if (!(g.st = model_state_new(&m, &e))) return report(&e);

    char *text = NULL;
    size_t text_len = 0;
    if (prompt) text_len = strlen(prompt);
    else if (!chat && !(text = read_all(stdin, &text_len))) { tool_warn("cannot read the prompt from standard input"); return 1; }
    const char *ptext = prompt ? prompt : text;
    double t0 = now_seconds();
    int n = 0, n_gen = 0;
    if (!chat || text_len > 0) {
        int32_t *ids = encode(tok, ptext ? ptext : "", text_len, V, &n, &e);
        if (!ids || model_prefill(&m, g.st, ids, n, g.logits, &e)) return report(&e);
        free(ids);
        if (logits_path && write_logits(logits_path, g.logits, V, &e)) return report(&e);
    }
    if (!chat) {
        if (n_tokens > 0) generate(&g, (int)n_tokens, stop);
        n_gen = (int)g.out_len;
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int turns = 0;
        int ended_blank = text_len == 0 || (text_len >= 2 && !strcmp(ptext + text_len - 2, "\n\n"));
        while ((len = getline(&line, &cap, stdin)) > 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
            if (len == 0) continue;
            size_t tl = (size_t)len + 32;
            char *turn = malloc(tl);
            if (!turn) { fail(&e, "out of memory"); return report(&e); }
            snprintf(turn, tl, "%sUser: %s\n\nAssistant:", ended_blank ? "" : "\n\n", line);
            int32_t *ids = encode(tok, turn, strlen(turn), V, &n, &e);
            free(turn);
            if (!ids || model_prefill(&m, g.st, ids, n, g.logits, &e)) return report(&e);
            free(ids);
            /* without --prompt, the first turn is the prompt whose logits are wanted */
            if (logits_path && text_len == 0 && turns++ == 0 && write_logits(logits_path, g.logits, V, &e)) return report(&e);
            /* -n 0: only read the turns (e.g. for --logits-out), as without --chat */
            int32_t last = n_tokens > 0 ? generate(&g, (int)n_tokens, stop ? stop : "\n\n") : -1;
            if (n_tokens == 0) g.out_len = 0;
            if (last > 0) model_step(&m, g.st, last, NULL);      /* the state includes the whole reply */
            ended_blank = g.out_len >= 2 && !memcmp(g.out + g.out_len - 2, "\n\n", 2);
            if (!ended_blank) fputs("\n\n", stdout);
            fflush(stdout);
            n_gen += (int)g.out_len;
        }
        free(line);
    }
    if (progress_wanted())
        fprintf(stderr, "\n%s: %d prompt tokens, %d bytes generated in %.2f s\n", tool_name, n, n_gen, now_seconds() - t0);
    model_state_free(g.st);
    model_free(&m);
    tokenizer_free(tok);
    vocab_free(&v);
    free(g.logits); free(g.prob); free(g.idx); free(g.out); free(text);
    return close_stdout();
}
