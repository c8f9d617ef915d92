/* arith-eval: exact-match accuracy of a checkpoint on held-out arithmetic
 * problems (arith-gen --eval).  Each prompt is fed after token 0, as a
 * document follows the previous one's separator in training; the answer is
 * the greedy continuation up to token 0 (the end of the document, where every
 * training answer ends) or a newline, at most -n tokens. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonl.h"
#include "model.h"
#include "model_io.h"
#include "tokenizer.h"
#include "util.h"
#include "vocab.h"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: arith-eval -m MODEL [--vocab FILE] [OPTION]... [EVAL.jsonl]\n"
        "Run a checkpoint greedily over held-out arithmetic problems (arith-gen --eval;\n"
        "default: standard input) and print the exact-match accuracy by kind and digit\n"
        "count, ending with the line\n"
        "  exact-match accuracy: A on N held-out problems\n"
        "\n"
        "  -m, --model FILE     checkpoint (required)\n"
        "      --vocab FILE     vocabulary the model was trained with (default: the\n"
        "                       installed %s; arith-gen --vocab for the small one)\n"
        "  -n, --tokens N       most tokens of an answer (default 16)\n"
        "  -e, --errors N       print the first N wrong answers to standard error\n"
        "  -h, --help           show this help\n"
        "  -V, --version        show the version\n"
        "\n"
        "Exit status: 0 success, 1 error, 2 usage.\n", DEFAULT_VOCAB);
}

#define MAX_DIGITS 9
enum { N_KINDS = 3 };
static const char *const kind_names[N_KINDS] = { "add", "sub", "solve" };

typedef struct { uint64_t right, total; } Tally;

typedef struct {
    Vocab vocab;
    Tokenizer *tok;
    Model model;
    ModelState *st;
    float *logits;
    uint32_t *ids;
    size_t ids_cap;
    uint8_t *out;
    size_t out_len, out_cap;
} Evaluator;

static void free_evaluator(Evaluator *ev)
{
    model_state_free(ev->st);
    model_free(&ev->model);
    tokenizer_free(ev->tok);
    vocab_free(&ev->vocab);
    free(ev->logits);
    free(ev->ids);
    free(ev->out);
}

static int build_evaluator(Evaluator *ev, const char *model_path, const char *vocab_path, Error *e)
{
    memset(ev, 0, sizeof *ev);
    if (vocab_load_default(&ev->vocab, vocab_path, e) || !(ev->tok = tokenizer_new(&ev->vocab, e)) ||
        model_load(&ev->model, model_path, e) || !(ev->st = model_state_new(&ev->model, e)))
        return -1;
    if (!(ev->logits = malloc((size_t)ev->model.cfg.vocab_size * sizeof *ev->logits)))
        return fail(e, "out of memory");
    return 0;
}

/* Token ids of 0 followed by text, in ev->ids; returns their number, 0 on failure. */
static size_t encode(Evaluator *ev, const char *text, size_t len, Error *e)
{
    if (ev->ids_cap < len + 1) {
        uint32_t *grown = realloc(ev->ids, (len + 1) * sizeof *grown);
        if (!grown) { fail(e, "out of memory"); return 0; }
        ev->ids = grown;
        ev->ids_cap = len + 1;
    }
    ev->ids[0] = 0;
    return 1 + tokenizer_encode(ev->tok, (const uint8_t *)text, len, ev->ids + 1);
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The greedy answer to prompt, in ev->out[0 .. ev->out_len). */
static int answer(Evaluator *ev, const char *prompt, size_t len, int max_tokens, Error *e)
{
    int V = ev->model.cfg.vocab_size;
    size_t n = encode(ev, prompt, len, e);
    if (!n) return -1;
    for (size_t i = 0; i < n; i++)
        if (ev->ids[i] >= (uint32_t)V)
            return fail(e, "prompt token %u is outside the model's vocabulary (size %d): wrong --vocab?",
                        ev->ids[i], V);
    model_state_reset(ev->st);
    if (model_prefill(&ev->model, ev->st, (const int32_t *)ev->ids, (int)n, ev->logits, e)) return -1;
    ev->out_len = 0;
    for (int i = 0; i < max_tokens; i++) {
        int32_t t = argmax(ev->logits, V);
        if (t == 0 || (uint32_t)t > ev->vocab.n) break;   /* end of document, or no text */
        size_t tl = vocab_token_len(&ev->vocab, (uint32_t)t);
        const uint8_t *tb = vocab_token(&ev->vocab, (uint32_t)t);
        const uint8_t *nl = memchr(tb, '\n', tl);
        if (nl) tl = (size_t)(nl - tb);
        if (ev->out_len + tl + 1 > ev->out_cap) {
            size_t cap = (ev->out_len + tl + 1) * 2;
            uint8_t *grown = realloc(ev->out, cap);
            if (!grown) return fail(e, "out of memory");
            ev->out = grown;
            ev->out_cap = cap;
        }
        memcpy(ev->out + ev->out_len, tb, tl);
        ev->out_len += tl;
        if (nl) break;
        model_step(&ev->model, ev->st, t, ev->logits);
    }
    ev->out[ev->out_len] = 0;
    return 0;
}

/* Whether the tokens of prompt are a prefix of those of the whole document, as
 * the model saw it in training (not so when a token spans the boundary). */
static int prompt_is_token_prefix(Evaluator *ev, const char *prompt, size_t plen, const char *text, size_t tlen,
                                  Error *e)
{
    size_t n = encode(ev, text, tlen, e);
    if (!n) return -1;
    uint32_t *whole = malloc(n * sizeof *whole);
    if (!whole) return fail(e, "out of memory");
    memcpy(whole, ev->ids, n * sizeof *whole);
    size_t m = encode(ev, prompt, plen, e);
    int prefix = m && m <= n && !memcmp(whole, ev->ids, m * sizeof *whole);
    free(whole);
    return m ? prefix : -1;
}

/* A string member of a record, into buf (which holds n + 1 bytes); its length or -1. */
static long member(const char *line, size_t n, const char *field, char *buf, const char *path, uint64_t lineno,
                   Error *e)
{
    JsonError je;
    long len = jsonl_extract(line, n, field, strlen(field), buf, &je);
    if (len < 0) return fail(e, "%s:%llu: %s: %s", path, (unsigned long long)lineno, field, je.msg);
    buf[len] = 0;
    return len;
}

static void print_table(Tally t[N_KINDS + 1][MAX_DIGITS + 2], int max_digits)
{
    printf("%-7s", "kind");
    for (int d = 1; d <= max_digits; d++) {
        char head[32];
        snprintf(head, sizeof head, "%d digit%s", d, d > 1 ? "s" : "");
        printf("  %-16s", head);
    }
    printf("  all\n");
    for (int k = 0; k <= N_KINDS; k++) {
        printf("%-7s", k < N_KINDS ? kind_names[k] : "all");
        for (int d = 1; d <= max_digits + 1; d++) {
            int col = d <= max_digits ? d : 0;
            const Tally *c = &t[k][col];
            if (c->total) printf("  %.3f (%5llu)   ", (double)c->right / c->total, (unsigned long long)c->total);
            else printf("  %-16s", "-");
        }
        printf("\n");
    }
}

static int evaluate(Evaluator *ev, FILE *in, const char *path, int max_tokens, uint64_t show_errors, Error *e)
{
    Tally t[N_KINDS + 1][MAX_DIGITS + 2];   /* [kind or all][digits, 0 = all] */
    memset(t, 0, sizeof t);
    char *line = NULL, *text = NULL, *prompt = NULL, *want = NULL, *kind = NULL;
    size_t cap = 0, buf_cap = 0;
    ssize_t n;
    uint64_t lineno = 0, not_prefix = 0, shown = 0;
    int rc = 0, max_digits = 0;
    while (!rc && (n = getline(&line, &cap, in)) > 0) {
        lineno++;
        if (jsonl_is_blank(line, (size_t)n)) continue;
        if (buf_cap < (size_t)n + 1) {
            buf_cap = (size_t)n + 1;
            char *a = realloc(text, buf_cap), *b = a ? realloc(prompt, buf_cap) : NULL;
            if (a) text = a;
            if (b) prompt = b;
            char *c = b ? realloc(want, buf_cap) : NULL, *d = c ? realloc(kind, buf_cap) : NULL;
            if (c) want = c;
            if (d) kind = d;
            if (!d) { rc = fail(e, "out of memory"); break; }
        }
        long tl, pl, al;
        if ((tl = member(line, (size_t)n, "text", text, path, lineno, e)) < 0 ||
            (pl = member(line, (size_t)n, "prompt", prompt, path, lineno, e)) < 0 ||
            (al = member(line, (size_t)n, "answer", want, path, lineno, e)) < 0 ||
            member(line, (size_t)n, "kind", kind, path, lineno, e) < 0) { rc = -1; break; }
        int k = 0;
        while (k < N_KINDS && strcmp(kind, kind_names[k])) k++;
        const char *dv;
        JsonError je;
        long dl = jsonl_member(line, (size_t)n, "digits", 6, &dv, &je);
        int digits = dl == 1 && dv[0] >= '1' && dv[0] <= '9' ? dv[0] - '0' : 0;
        if (k == N_KINDS || !digits || pl + al != tl || memcmp(text, prompt, (size_t)pl) || strcmp(text + pl, want)) {
            rc = fail(e, "%s:%llu: not an arith-gen --eval record (kind add/sub/solve, digits 1-9, "
                      "text = prompt + answer)", path, (unsigned long long)lineno);
            break;
        }
        int prefix = prompt_is_token_prefix(ev, prompt, (size_t)pl, text, (size_t)tl, e);
        if (prefix < 0 || answer(ev, prompt, (size_t)pl, max_tokens, e)) {
            fail_prefix(e, "%s:%llu: ", path, (unsigned long long)lineno);
            rc = -1;
            break;
        }
        not_prefix += !prefix;
        int right = ev->out_len == (size_t)al && !memcmp(ev->out, want, (size_t)al);
        if (!right && shown < show_errors) {
            shown++;
            fprintf(stderr, "%s:%llu: %s  want %s  got %s\n", path, (unsigned long long)lineno, prompt, want,
                    (const char *)ev->out);
        }
        if (digits > max_digits) max_digits = digits;
        int cells[2][2] = { { k, digits }, { N_KINDS, digits } };
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                Tally *c = &t[cells[i][0]][j ? cells[i][1] : 0];
                c->total++;
                c->right += (uint64_t)right;
            }
    }
    if (!rc && ferror(in)) rc = fail(e, "%s: read error", path);
    free(line); free(text); free(prompt); free(want); free(kind);
    if (rc) return -1;
    if (!t[N_KINDS][0].total) return fail(e, "%s: no problems", path);
    if (not_prefix)
        tool_warn("%llu prompts end inside a token of their document, so the model never saw them as a "
                  "prefix: use the vocabulary of arith-gen --vocab", (unsigned long long)not_prefix);
    print_table(t, max_digits);
    printf("exact-match accuracy: %.3f on %llu held-out problems\n",
           (double)t[N_KINDS][0].right / t[N_KINDS][0].total, (unsigned long long)t[N_KINDS][0].total);
    return 0;
}

int main(int argc, char **argv)
{
    tool_init("arith-eval");
    static const struct option opts[] = {
        { "model", required_argument, 0, 'm' }, { "vocab", required_argument, 0, 'v' },
        { "tokens", required_argument, 0, 'n' }, { "errors", required_argument, 0, 'e' },
        { "help", no_argument, 0, 'h' },         { "version", no_argument, 0, 'V' },
        { 0, 0, 0, 0 },
    };
    const char *model_path = NULL, *vocab_path = NULL;
    uint64_t max_tokens = 16, show_errors = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:n:e:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'v': vocab_path = optarg; break;
        case 'n':
            if (parse_u64(optarg, &max_tokens) || max_tokens < 1 || max_tokens > 1000)
                return bad_option("tokens", optarg, "a whole number from 1 to 1000");
            break;
        case 'e':
            if (parse_u64(optarg, &show_errors)) return bad_option("errors", optarg, "a whole number");
            break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 < argc) return usage_error("unexpected argument '%s'", argv[optind + 1]);
    if (!model_path) return usage_error("a checkpoint is required: -m MODEL");
    const char *path = optind < argc ? argv[optind] : "-";
    FILE *in = stdin;
    Error e = { "" };
    if (strcmp(path, "-")) {
        int fd = open_regular(path, &e);
        if (fd < 0) return report(&e);
        if (!(in = fdopen(fd, "r"))) {
            fail(&e, "%s: %s", path, strerror(errno));
            close(fd);
            return report(&e);
        }
    } else path = "<stdin>";
    Evaluator ev;
    int rc = build_evaluator(&ev, model_path, vocab_path, &e) ||
             evaluate(&ev, in, path, (int)max_tokens, show_errors, &e);
    free_evaluator(&ev);
    if (in != stdin) fclose(in);
    if (rc) return report(&e);
    return close_stdout();
}
