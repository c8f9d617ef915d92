/* tokenizer_test: vocabulary loader, JSON line parser and tokenizer, checked
 * against fixed vectors and against a naive longest-match encoder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "tokenizer.h"
#include "vocab.h"

#include "check.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)(rng >> 11); }

/* Naive greedy longest match: every length, longest first, looked up in a hash table. */
#include <xxhash.h>
static uint32_t *naive_table;
static uint32_t naive_mask;
static void naive_build(const Vocab *v)
{
    naive_mask = (1u << 18) - 1;
    naive_table = calloc(naive_mask + 1, sizeof *naive_table);
    for (uint32_t id = 1; id <= v->n; id++) {
        uint32_t h = (uint32_t)XXH3_64bits(vocab_token(v, id), vocab_token_len(v, id)) & naive_mask;
        while (naive_table[h]) h = (h + 1) & naive_mask;
        naive_table[h] = id;
    }
}
static uint32_t naive_find(const Vocab *v, const uint8_t *s, size_t l)
{
    for (uint32_t h = (uint32_t)XXH3_64bits(s, l) & naive_mask; naive_table[h]; h = (h + 1) & naive_mask) {
        uint32_t id = naive_table[h];
        if (vocab_token_len(v, id) == l && !memcmp(vocab_token(v, id), s, l)) return id;
    }
    return 0;
}
static size_t naive_encode(const Vocab *v, const uint8_t *s, size_t n, uint32_t *out)
{
    size_t k = 0;
    while (n) {
        size_t l = n < v->max_len ? n : v->max_len;
        uint32_t id = 0;
        for (; l && !(id = naive_find(v, s, l)); l--) {}
        if (!id) return 0;
        out[k++] = id;
        s += l;
        n -= l;
    }
    return k;
}

static void test_vectors(const Tokenizer *t)
{
    struct { const char *text; uint32_t ids[12]; size_t n; } vec[] = {
        { "Hello world, \xe4\xbd\xa0\xe5\xa5\xbd", { 33155, 40213, 45, 33, 10464, 11685 }, 6 },
        { "The Eiffel tower is in the city of", { 6699, 304, 25740, 109, 39990, 4600, 4596, 22590, 30449, 4706 }, 10 },
        { "\n\n", { 261 }, 1 },
        { "aa", { 1733 }, 1 },
        { "bb", { 1760 }, 1 },
        { "", { 0 }, 0 },
        { "\xff", { 256 }, 1 },
    };
    for (size_t i = 0; i < sizeof vec / sizeof *vec; i++) {
        uint32_t out[64];
        size_t n = tokenizer_encode(t, (const uint8_t *)vec[i].text, strlen(vec[i].text), out);
        CHECK(n == vec[i].n && !memcmp(out, vec[i].ids, n * 4), "vector %zu: got %zu ids", i, n);
    }
}

static void test_roundtrip_all_ids(const Vocab *v, const Tokenizer *t)
{
    size_t bad = 0;
    for (uint32_t id = 1; id <= v->n; id++) {
        uint32_t out[256];
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        Error e;
        if (tokenizer_decode(v, &id, 1, &buf, &len, &cap, NULL, &e)) { bad++; continue; }
        size_t n = tokenizer_encode(t, buf, len, out);
        if (n != 1 || out[0] != id) bad++;
        free(buf);
    }
    CHECK_EQ(v->n, 65529);   /* ids in the vocabulary */
    CHECK(bad == 0, "%zu of %u ids do not round-trip", bad, v->n);
}

static void test_against_naive(const Vocab *v, const Tokenizer *t)
{
    /* random bytes, random picks of vocabulary tokens glued together, long runs */
    enum { N = 4000 };
    uint8_t s[N];
    uint32_t a[N + 1], b[N + 1];
    naive_build(v);
    for (int round = 0; round < 300; round++) {
        size_t n = 0;
        int kind = round % 3;
        while (n < N) {
            if (kind == 0) s[n++] = (uint8_t)rnd();
            else if (kind == 1) {
                uint32_t id = 1 + rnd() % v->n;
                size_t l = vocab_token_len(v, id);
                if (n + l > N) break;
                memcpy(s + n, vocab_token(v, id), l);
                n += l;
            } else {
                uint8_t c = " a\n\xe4"[rnd() % 4];
                size_t run = rnd() % 200;
                while (run-- && n < N) s[n++] = c;
            }
        }
        size_t na = tokenizer_encode(t, s, n, a), nb = naive_encode(v, s, n, b);
        CHECK(na == nb && !memcmp(a, b, na * 4), "round %d (kind %d): encoder differs from naive", round, kind);
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        Error e;
        CHECK(!tokenizer_decode(v, a, na, &buf, &len, &cap, NULL, &e) && len == n && !memcmp(buf, s, n),
              "round %d: decode(encode(x)) != x", round);
        free(buf);
    }
    free(naive_table);
}

/* Long texts take the speculative split path (segments walked side by side,
 * then spliced): it must equal the naive encoder, also where segments never
 * resynchronise (long runs, periodic text) and where they always do. */
static void test_long(const Vocab *v, const Tokenizer *t)
{
    enum { N = 70000 };
    uint8_t *s = malloc(N);
    uint32_t *a = malloc((N + 1) * 4), *b = malloc((N + 1) * 4);
    naive_build(v);
    for (int round = 0; round < 20; round++) {
        size_t n = 8000 + rnd() % (N - 8000), k = 0;
        int kind = round % 5;
        size_t period = 1 + rnd() % 7;
        while (k < n) {
            if (kind == 0) s[k++] = (uint8_t)rnd();
            else if (kind == 1) {
                uint32_t id = 1 + rnd() % v->n;
                size_t l = vocab_token_len(v, id);
                if (k + l > n) l = n - k;
                memcpy(s + k, vocab_token(v, id), l);
                k += l;
            } else if (kind == 2) {
                uint8_t c = " a\n\xe4="[rnd() % 5];
                size_t run = rnd() % 5000;
                while (run-- && k < n) s[k++] = c;
            } else if (kind == 3) {
                s[k] = (uint8_t)"ab c\n"[k % period % 5];
                k++;
            } else {
                static const char *words[] = { "the ", "of ", "tokenizer", " ", "\n", "    ", "return x", ", ", "def f(a, b):\n" };
                const char *w = words[rnd() % 9];
                for (; *w && k < n; w++) s[k++] = (uint8_t)*w;
            }
        }
        size_t na = tokenizer_encode(t, s, n, a), nb = naive_encode(v, s, n, b);
        CHECK(na == nb && !memcmp(a, b, na * 4), "long round %d (kind %d, %zu bytes): encoder differs from naive",
              round, kind, n);
    }
    free(naive_table);
    free(s); free(a); free(b);
}

/* tokenizer_encode_many (16 texts at a time on AVX-512; long ones split) must equal tokenizer_encode. */
static void test_many(const Vocab *v, const Tokenizer *t)
{
    enum { TEXTS = 700 };
    uint32_t off[TEXTS], len[TEXTS], out_off[TEXTS], n_many[TEXTS];
    size_t total = 0;
    for (int d = 0; d < TEXTS; d++) {
        len[d] = d % 37 == 0 ? (uint32_t)(rnd() % 3) : d % 97 == 1 ? (uint32_t)(rnd() % 40000) : (uint32_t)(rnd() % 3000);
        off[d] = out_off[d] = (uint32_t)total;
        total += len[d];
    }
    uint8_t *text = malloc(total + 64);
    uint32_t *a = malloc((total + 1) * 4), *b = malloc((total + 1) * 4);
    for (size_t k = 0; k < total;) {   /* glued vocabulary tokens and random bytes */
        if (rnd() % 4) {
            uint32_t id = 1 + rnd() % v->n;
            size_t l = vocab_token_len(v, id);
            if (k + l > total) l = total - k;
            memcpy(text + k, vocab_token(v, id), l);
            k += l;
        } else {
            text[k++] = (uint8_t)rnd();
        }
    }
    memset(text + total, 0xAB, 64);
    tokenizer_encode_many(t, text, TEXTS, off, len, b, out_off, n_many);
    size_t bad = 0;
    for (int d = 0; d < TEXTS; d++) {
        size_t n = tokenizer_encode(t, text + off[d], len[d], a + off[d]);
        if (n != n_many[d] || memcmp(a + off[d], b + off[d], n * 4)) bad++;
    }
    CHECK(bad == 0, "tokenizer_encode_many differs from tokenizer_encode on %zu of %d texts", bad, TEXTS);
    free(text); free(a); free(b);
}

static void test_vocab_errors(void)
{
    struct { const char *text; const char *want; } cases[] = {
        { "1 'a' 1\n3 'b' 1\n", "v.txt:2: token id 3, expected 2" },
        { "1 'a' 2\n", "v.txt:1: literal has 1 bytes, line says 2" },
        { "1 'a 1\n", "v.txt:1: unterminated literal" },
        { "1 'a' 1\n2 'a' 1\n", "v.txt:2: token 2 repeats the bytes of token 1" },
        { "1 'a' 1\n\n2 'b' 1\n", "v.txt:2: empty line" },
        { "1 b'\xc3\xa9' 2\n", "v.txt:1: non-ASCII character in bytes literal" },
        { "1 '\\x8' 1\n", "v.txt:1: truncated \\xXX escape" },
        { "1 '\\ud800' 3\n", "v.txt:1: surrogate" },
        { "1 'a'x 1\n", "v.txt:1: text after the closing quote" },
        { "x 'a' 1\n", "v.txt:1: bad token id" },
        { "1 'a' one\n", "v.txt:1: bad byte length" },
        { "1 '\xff' 1\n", "v.txt:1: invalid UTF-8" },
        { "1 r'a' 1\n", "v.txt:1: unsupported string prefix" },
        { "1 '' 0\n", "v.txt:1: empty token" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Vocab v;
        Error e;
        int rc = vocab_parse(&v, cases[i].text, strlen(cases[i].text), "v.txt", &e);
        CHECK(rc == -1 && strstr(e.msg, cases[i].want), "vocab case %zu: rc %d, msg '%s'", i, rc, rc ? e.msg : "");
        if (!rc) vocab_free(&v);
    }
    /* literal forms that Python accepts */
    const char *good = "1 'a' 1\n2 \"'\" 1\n3 '\\x80' 2\n4 b'\\x80' 1\n5 '\\u4f60' 3\n6 '\\\\' 1\n7 ' ' 1\r\n8 '\\t\\n' 2\n";
    Vocab v;
    Error e;
    int rc = vocab_parse(&v, good, strlen(good), "good", &e);
    CHECK(rc == 0, "good vocabulary rejected: %s", e.msg);
    if (!rc) {
        CHECK(v.n == 8, "good vocabulary: n = %u", v.n);
        CHECK(vocab_token_len(&v, 3) == 2 && !memcmp(vocab_token(&v, 3), "\xc2\x80", 2), "'\\x80' is U+0080 in a str");
        CHECK(vocab_token_len(&v, 4) == 1 && vocab_token(&v, 4)[0] == 0x80, "b'\\x80' is one byte");
        CHECK(vocab_token_len(&v, 5) == 3 && !memcmp(vocab_token(&v, 5), "\xe4\xbd\xa0", 3), "\\u4f60");
        Tokenizer *t = tokenizer_new(&v, &e);
        CHECK(!t && strstr(e.msg, "lacks the single byte"), "a vocabulary without every byte is refused");
        tokenizer_free(t);
        vocab_free(&v);
    }
}

static void test_jsonl(void)
{
    struct { const char *line; const char *want; const char *err; } cases[] = {
        { "{\"text\": \"hi\"}", "hi", NULL },
        { "  {\"text\":\"a\\\"b\\\\c\\/d\\n\"}  ", "a\"b\\c/d\n", NULL },
        { "{\"meta\": {\"text\": 1}, \"text\": \"x\"}", "x", NULL },
        { "{\"text\": \"\\u00e9\\ud83d\\ude00\"}", "\xc3\xa9\xf0\x9f\x98\x80", NULL },
        { "{\"te\\u0078t\": \"esc key\"}", "esc key", NULL },
        { "{\"text\": \"a\", \"text\": \"b\"}", "b", NULL },
        { "{\"text\": \"\"}", "", NULL },
        { "{\"a\": [1, -2.5e+3, true, false, null, {}], \"text\": \"z\"}", "z", NULL },
        { "\xc2\xa0{\"text\": \"nbsp around\"}\xe3\x80\x80", "nbsp around", NULL },
        { "{\"text\": \"x\\ud800\"}", NULL, "lone surrogate escape at column 12" },
        { "{\"text\": \"\\udc00\"}", NULL, "lone surrogate" },
        { "{\"text\": \"\xff\"}", NULL, "invalid UTF-8 at column 11" },
        { "{\"text\": \"\xed\xa0\x80\"}", NULL, "invalid UTF-8" },
        { "{\"text\": \"\xc0\xaf\"}", NULL, "invalid UTF-8" },
        { "{\"text\": 5}", NULL, "field \"text\" is a number, not a string" },
        { "{\"text\": null}", NULL, "is null, not a string" },
        { "{\"other\": \"x\"}", NULL, "no \"text\" field" },
        { "[\"text\"]", NULL, "not a JSON object" },
        { "\"text\"", NULL, "not a JSON object" },
        { "{\"text\": \"a\",}", NULL, "invalid JSON at column 14" },
        { "{\"text\": \"a\"", NULL, "invalid JSON at column 13: expected ',' or '}'" },
        { "{\"text\": \"a\"} x", NULL, "text after the JSON value" },
        { "{\"text\": \"a\tb\"}", NULL, "control character" },
        { "{\"text\": \"\\x41\"}", NULL, "unknown escape" },
        { "{\"text\": \"\\u12\"}", NULL, "bad \\u escape" },
        { "{\"n\": NaN, \"text\": \"a\"}", NULL, "NaN and Infinity" },
        { "{\"n\": 01, \"text\": \"a\"}", NULL, "invalid JSON" },
        { "{\"n\": 1., \"text\": \"a\"}", NULL, "digit expected" },
        { "{'text': 'a'}", NULL, "expected a string key" },
        { "{\"text\" \"a\"}", NULL, "expected ':'" },
        { "{\"text\": tru}", NULL, "invalid JSON" },
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        JsonError err;
        long n = jsonl_extract(cases[i].line, strlen(cases[i].line), "text", 4, out, &err);
        if (cases[i].want)
            CHECK(n == (long)strlen(cases[i].want) && !memcmp(out, cases[i].want, (size_t)n), "json case %zu: n=%ld %s", i, n, n < 0 ? err.msg : "");
        else
            CHECK(n < 0 && strstr(err.msg, cases[i].err), "json case %zu: n=%ld msg '%s', want '%s'", i, n, n < 0 ? err.msg : "", cases[i].err);
    }
    char deep[3000];
    size_t k = 0;
    k += (size_t)sprintf(deep, "{\"text\": \"a\", \"d\": ");
    while (k < 2500) deep[k++] = '[';
    JsonError err;
    CHECK(jsonl_extract(deep, k, "text", 4, out, &err) < 0 && strstr(err.msg, "nested deeper"), "deep nesting: %s", err.msg);
    CHECK(jsonl_is_blank(" \t\xc2\xa0\xe3\x80\x80\x0b", 8), "python whitespace is blank");
    CHECK(!jsonl_is_blank(" x ", 3), "text is not blank");
    CHECK(jsonl_is_blank("", 0), "empty is blank");
}

int main(void)
{
    const char *top = getenv("TOP");
    char path[4096];
    snprintf(path, sizeof path, "%s/share/rwkv7c/rwkv_vocab_v20230424.txt", top ? top : ".");
    Vocab v;
    Error e;
    test_vocab_errors();
    test_jsonl();
    if (vocab_load(&v, path, &e)) { printf("FAIL cannot load %s: %s\n", path, e.msg); return 1; }
    Tokenizer *t = tokenizer_new(&v, &e);
    if (!t) { printf("FAIL tokenizer_new: %s\n", e.msg); return 1; }
    test_vectors(t);
    test_roundtrip_all_ids(&v, t);
    test_against_naive(&v, t);
    test_long(&v, t);
    test_many(&v, t);
    tokenizer_free(t);
    vocab_free(&v);
    return check_done();
}
