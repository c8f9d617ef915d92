/* arith-gen: seeded documents that teach addition, subtraction and solving
 * one-unknown linear equations (a + x = c ...), in English and Chinese
 * phrasings, with negative numbers, several digit lengths and full-width
 * digits, as JSONL for rwkv-tokenize.
 *
 * Every document is PROMPT ANSWER: the answer is the last thing in it, so a
 * model answers by continuing the prompt and ends the answer with token 0
 * (the end-of-document separator rwkv-tokenize appends).
 *
 * The held-out problems are a fixed part of the problem space: a problem (kind,
 * operation, position of x, operands; not phrasing or digit style) is held out
 * when a hash of that key falls in the first HOLDOUT_PERMILLE of 1000.
 * Training documents come only from the rest, evaluation documents (--eval)
 * only from that part, so the two never share a problem, whatever the seeds. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define HOLDOUT_PERMILLE 100
#define MAX_DIGITS 9
#define DOC_MAX 512

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: arith-gen [-n N] [-s SEED] [-d DIGITS] [--eval] [OPTION]...\n"
        "       arith-gen --vocab\n"
        "Write N arithmetic documents as JSONL ({\"text\": ...}) on standard output:\n"
        "additions, subtractions and equations such as \"Solve for x: 12 - x = 5. x = 7\"\n"
        "or \"3加-5等于多少？答案：-2\", the answer last.  Operands have 1 to DIGITS digits.\n"
        "\n"
        "  -n, --count N        documents to write (default 1000)\n"
        "  -s, --seed S         random seed (default 1): same seed, same documents\n"
        "  -d, --max-digits D   most digits of an operand, 1 to %d (default 2)\n"
        "  -k, --kinds LIST     comma-separated kinds among add, sub, solve (default all)\n"
        "      --negative P     probability that an operand is negative (default 0.25)\n"
        "      --eval           held-out problems (never in training documents), each\n"
        "                       once, with fields prompt, answer, kind and digits\n"
        "      --vocab          print the small vocabulary these documents are meant\n"
        "                       to be tokenized with (every byte, plus each non-ASCII\n"
        "                       character of the phrasings as one token) and exit\n"
        "  -h, --help           show this help\n"
        "  -V, --version        show the version\n"
        "\n"
        "Exit status: 0 success, 1 error, 2 usage.\n", MAX_DIGITS);
}

/* ---- random numbers: splitmix64, enough for choosing problems ---- */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t rng_below(uint64_t n) { return rng_next() % n; }   /* n is small: the bias is negligible */
static double rng_unit(void) { return (double)(rng_next() >> 11) / 9007199254740992.0; }

/* ---- problems ---- */
enum { ADD, SUB, SOLVE, N_KINDS };
static const char *const kind_names[N_KINDS] = { "add", "sub", "solve" };

/* p OP q = r; for SOLVE, x stands for p (x_pos 0) or q (x_pos 1). */
typedef struct {
    int kind, x_pos;
    char op;              /* '+' or '-' */
    int64_t p, q, r;
    int digits;           /* most digits among p and q */
} Problem;

static int64_t pow10i(int n) { int64_t v = 1; while (n-- > 0) v *= 10; return v; }

static int64_t draw_operand(int max_digits, double negative, int *digits)
{
    int d = 1 + (int)rng_below((uint64_t)max_digits);
    int64_t lo = d == 1 ? 0 : pow10i(d - 1), hi = pow10i(d) - 1;
    int64_t v = lo + (int64_t)rng_below((uint64_t)(hi - lo + 1));
    if (v != 0 && rng_unit() < negative) v = -v;
    *digits = d;
    return v;
}

static Problem draw_problem(const int *kinds, int n_kinds, int max_digits, double negative)
{
    Problem pb = { .kind = kinds[rng_below((uint64_t)n_kinds)] };
    int dp, dq;
    pb.p = draw_operand(max_digits, negative, &dp);
    pb.q = draw_operand(max_digits, negative, &dq);
    pb.digits = dp > dq ? dp : dq;
    pb.op = pb.kind == ADD ? '+' : pb.kind == SUB ? '-' : (rng_below(2) ? '-' : '+');
    pb.x_pos = pb.kind == SOLVE ? (int)rng_below(2) : 0;
    pb.r = pb.op == '+' ? pb.p + pb.q : pb.p - pb.q;
    return pb;
}

/* The problem's identity: what the documents state, minus phrasing and digit style. */
static uint64_t problem_key(const Problem *pb)
{
    char key[96];
    int n = snprintf(key, sizeof key, "%s %c %d %" PRId64 " %" PRId64, kind_names[pb->kind], pb->op,
                     pb->kind == SOLVE ? pb->x_pos : 0, pb->p, pb->q);
    uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a */
    for (int i = 0; i < n; i++) h = (h ^ (uint8_t)key[i]) * 0x100000001b3ull;
    return h;
}
static int held_out(uint64_t key) { return key % 1000 < HOLDOUT_PERMILLE; }

/* ---- phrasings ---- */
typedef struct {
    char buf[DOC_MAX];
    size_t len;
    int fullwidth;
} Text;

static void put(Text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n < sizeof t->buf) { memcpy(t->buf + t->len, s, n); t->len += n; t->buf[t->len] = 0; }
}

/* A number; full-width digits and sign (U+FF10.., U+FF0D) in the full-width variant. */
static void put_num(Text *t, int64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%" PRId64, v);
    if (!t->fullwidth) { put(t, s); return; }
    for (const char *c = s; *c; c++) {
        char fw[4] = { (char)0xEF, (char)0xBC, (char)(*c == '-' ? 0x8D : 0x90 + (*c - '0')), 0 };
        put(t, fw);
    }
}

/* An operand after an operator is bracketed when negative: "3 - (-5)". */
static void put_operand(Text *t, int64_t v, int bracket)
{
    if (bracket && v < 0) { put(t, "("); put_num(t, v); put(t, ")"); }
    else put_num(t, v);
}

/* "p OP q = r", with x in place of p or q for equations. */
static void put_equation(Text *t, const Problem *pb)
{
    int x_p = pb->kind == SOLVE && pb->x_pos == 0, x_q = pb->kind == SOLVE && pb->x_pos == 1;
    if (x_p) put(t, "x"); else put_operand(t, pb->p, 0);
    put(t, pb->op == '+' ? " + " : " - ");
    if (x_q) put(t, "x"); else put_operand(t, pb->q, 1);
    put(t, " = ");
    put_num(t, pb->r);
}

/* Phrasings: English 0-1, Chinese 2-3.  Each ends with the answer's lead-in;
 * the answer follows directly.  Keep in step with tests/ref/arith_check.py. */
#define N_PHRASINGS 4
static void put_prompt(Text *t, const Problem *pb, int phrasing)
{
    if (pb->kind == SOLVE) {
        switch (phrasing) {
        case 0: put(t, "Solve for x: "); put_equation(t, pb); put(t, ". x = "); break;
        case 1: put(t, "If "); put_equation(t, pb); put(t, ", what is x? Answer: "); break;
        case 2: put(t, "解方程："); put_equation(t, pb); put(t, "，x = "); break;
        default: put(t, "已知"); put_equation(t, pb); put(t, "，求x。答案："); break;
        }
        return;
    }
    static const char *const word[2][2] = { { " plus ", " minus " }, { "加", "减" } };
    int sub = pb->op == '-';
    switch (phrasing) {
    case 0: case 3:
        if (phrasing == 3) put(t, "计算：");
        put_operand(t, pb->p, 0); put(t, sub ? " - " : " + "); put_operand(t, pb->q, 1); put(t, " = ");
        break;
    case 1:
        put(t, "What is "); put_num(t, pb->p); put(t, word[0][sub]); put_num(t, pb->q); put(t, "? Answer: ");
        break;
    default:
        put_num(t, pb->p); put(t, word[1][sub]); put_num(t, pb->q); put(t, "等于多少？答案：");
        break;
    }
}

static int64_t answer_of(const Problem *pb)
{
    if (pb->kind != SOLVE) return pb->r;
    return pb->x_pos == 0 ? pb->p : pb->q;
}

/* ---- the vocabulary ---- */
/* Every string a document can contain beyond ASCII. */
static const char *const non_ascii_text[] = {
    "解方程：，已知求x。答案：加减等于多少？计算",
    "０１２３４５６７８９－",
};

/* The RWKV vocabulary format (lib/vocab.h): ids 1..256 are the bytes, as in the
 * World vocabulary; then each non-ASCII character once, so that a Chinese
 * character or a full-width digit is one token and a model of a few hundred
 * logits can read every document. */
static int print_vocab(void)
{
    int id = 1;
    for (int b = 0; b < 256; b++)
        printf("%d %s'\\x%02x' 1\n", id++, b < 0x80 ? "" : "b", b);
    char seen[64][5];
    int n_seen = 0;
    for (size_t i = 0; i < sizeof non_ascii_text / sizeof *non_ascii_text; i++) {
        const unsigned char *s = (const unsigned char *)non_ascii_text[i];
        while (*s) {
            int len = *s < 0x80 ? 1 : *s < 0xE0 ? 2 : *s < 0xF0 ? 3 : 4;
            if (len > 1) {
                char ch[5] = { 0 };
                memcpy(ch, s, (size_t)len);
                int dup = 0;
                for (int j = 0; j < n_seen && !dup; j++) dup = !strcmp(seen[j], ch);
                if (!dup && n_seen < 64) {
                    strcpy(seen[n_seen++], ch);
                    printf("%d '%s' %d\n", id++, ch, len);
                }
            }
            s += len;
        }
    }
    return close_stdout();
}

/* ---- held-out set bookkeeping: keys already written (open addressing) ---- */
typedef struct { uint64_t *slot; size_t cap; } KeySet;

/* 1 if key was new (and is now in the set); the table is sized for all keys up front. */
static int keyset_add(KeySet *s, uint64_t key)
{
    key |= 1;   /* 0 marks an empty slot */
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull >> 7) % s->cap;
    for (; s->slot[i]; i = (i + 1) % s->cap)
        if (s->slot[i] == key) return 0;
    s->slot[i] = key;
    return 1;
}

static int parse_kinds(const char *arg, int *kinds, int *n)
{
    *n = 0;
    const char *s = arg;
    while (*s) {
        size_t len = strcspn(s, ",");
        int k = -1;
        for (int i = 0; i < N_KINDS; i++)
            if (strlen(kind_names[i]) == len && !strncmp(s, kind_names[i], len)) k = i;
        if (k < 0) return -1;
        int dup = 0;
        for (int i = 0; i < *n; i++) dup |= kinds[i] == k;
        if (!dup) kinds[(*n)++] = k;
        s += len;
        if (*s == ',') s++;
    }
    return *n ? 0 : -1;
}

int main(int argc, char **argv)
{
    tool_init("arith-gen");
    static const struct option opts[] = {
        { "count", required_argument, 0, 'n' },    { "seed", required_argument, 0, 's' },
        { "max-digits", required_argument, 0, 'd' }, { "kinds", required_argument, 0, 'k' },
        { "negative", required_argument, 0, 'N' }, { "eval", no_argument, 0, 'E' },
        { "vocab", no_argument, 0, 'W' },          { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' },        { 0, 0, 0, 0 },
    };
    uint64_t count = 1000, seed = 1, max_digits = 2;
    double negative = 0.25;
    int kinds[N_KINDS] = { ADD, SUB, SOLVE }, n_kinds = N_KINDS, eval = 0, vocab = 0, c;
    while ((c = getopt_long(argc, argv, "n:s:d:k:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_u64(optarg, &count) || count > 100000000000ull)
                return bad_option("count", optarg, "a whole number from 0 to 10^11");
            break;
        case 's':
            if (parse_u64(optarg, &seed)) return bad_option("seed", optarg, "a whole number from 0 to 2^64-1");
            break;
        case 'd':
            if (parse_u64(optarg, &max_digits) || max_digits < 1 || max_digits > MAX_DIGITS)
                return bad_option("max-digits", optarg, "a whole number from 1 to 9");
            break;
        case 'k':
            if (parse_kinds(optarg, kinds, &n_kinds))
                return bad_option("kinds", optarg, "a comma-separated list of add, sub, solve");
            break;
        case 'N':
            if (parse_double(optarg, &negative) || !(negative >= 0 && negative <= 1))
                return bad_option("negative", optarg, "a number from 0 to 1");
            break;
        case 'E': eval = 1; break;
        case 'W': vocab = 1; break;
        case 'h': usage(stdout); return close_stdout();
        case 'V': return tool_version();
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (vocab) return print_vocab();

    rng_state = seed * 2 + eval;   /* training and held-out draws are different streams */
    KeySet seen = { 0 };
    if (eval) {
        if (count > 10000000) return usage_error("--eval writes at most 10000000 problems");
        seen.cap = (size_t)count * 2 + 1;
        if (!(seen.slot = calloc(seen.cap, sizeof *seen.slot))) { tool_warn("out of memory"); return 1; }
    }
    for (uint64_t i = 0; i < count; i++) {
        Problem pb;
        uint64_t key, tries = 0;
        /* Rejection: a held-out problem never trains; a held-out problem is written once. */
        for (;;) {
            pb = draw_problem(kinds, n_kinds, (int)max_digits, negative);
            key = problem_key(&pb);
            if (held_out(key) == eval && (!eval || keyset_add(&seen, key))) break;
            if (++tries > 1000000) {
                tool_warn("only %" PRIu64 " distinct held-out problems found with these settings; "
                          "ask for fewer or allow more digits", i);
                free(seen.slot);
                return 1;
            }
        }
        int phrasing = (int)rng_below(N_PHRASINGS);
        Text prompt = { .len = 0 }, answer = { .len = 0 };
        prompt.fullwidth = answer.fullwidth = phrasing >= 2 && rng_below(3) == 0;   /* Chinese phrasings only */
        put_prompt(&prompt, &pb, phrasing);
        put_num(&answer, answer_of(&pb));
        /* the texts hold no character JSON must escape */
        if (eval)
            printf("{\"text\":\"%s%s\",\"prompt\":\"%s\",\"answer\":\"%s\",\"kind\":\"%s\",\"digits\":%d}\n",
                   prompt.buf, answer.buf, prompt.buf, answer.buf, kind_names[pb.kind], pb.digits);
        else
            printf("{\"text\":\"%s%s\"}\n", prompt.buf, answer.buf);
    }
    free(seen.slot);
    return close_stdout();
}
