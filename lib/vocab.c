/* vocab.c: strict parser for the RWKV World vocabulary file (see vocab.h). */
#include "vocab.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "growbuf.h"
#include "input.h"

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parse the Python literal s[0..n) completely into out (capacity >= 4*n).
 * Returns the byte length, or -1 with why set. */
static long parse_literal(const uint8_t *s, size_t n, uint8_t *out, const char **why)
{
    size_t i = 0;
    int is_bytes = 0;
    if (i < n && (s[i] == 'b' || s[i] == 'B')) { is_bytes = 1; i++; }
    else if (i < n && (s[i] == 'u' || s[i] == 'U')) i++;
    if (i >= n || (s[i] != '\'' && s[i] != '"')) {
        *why = (i < n && (s[i] == 'r' || s[i] == 'R' || s[i] == 'f' || s[i] == 'F'))
                   ? "unsupported string prefix" : "expected a quoted str or bytes literal";
        return -1;
    }
    uint8_t quote = s[i++];
    if (n - i >= 2 && s[i] == quote && s[i + 1] == quote) { *why = "triple-quoted literals are not supported"; return -1; }
    long o = 0;
    for (;;) {
        if (i >= n) { *why = "unterminated literal"; return -1; }
        uint8_t c = s[i];
        if (c == quote) { i++; break; }
        if (c == '\\') {
            if (i + 1 >= n) { *why = "unterminated literal"; return -1; }
            uint8_t d = s[i + 1];
            i += 2;
            uint32_t cp;
            switch (d) {
            case '\\': cp = '\\'; break;
            case '\'': cp = '\''; break;
            case '"': cp = '"'; break;
            case 'a': cp = 7; break;
            case 'b': cp = 8; break;
            case 'f': cp = 12; break;
            case 'n': cp = 10; break;
            case 'r': cp = 13; break;
            case 't': cp = 9; break;
            case 'v': cp = 11; break;
            case 'x': {
                int h1 = i < n ? hexval(s[i]) : -1, h2 = i + 1 < n ? hexval(s[i + 1]) : -1;
                if (h1 < 0 || h2 < 0) { *why = "truncated \\xXX escape"; return -1; }
                cp = (uint32_t)(h1 << 4 | h2);
                i += 2;
                break;
            }
            case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
                cp = d - '0';
                for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++) cp = cp * 8 + (s[i++] - '0');
                if (is_bytes && cp > 0xFF) { *why = "octal escape out of range for bytes"; return -1; }
                break;
            }
            case 'u': case 'U': case 'N':
                if (is_bytes) {   /* not escapes in bytes: Python keeps the backslash */
                    out[o++] = '\\';
                    out[o++] = d;
                    continue;
                }
                if (d == 'N') { *why = "\\N{...} escapes are not supported"; return -1; }
                {
                    int digits = d == 'u' ? 4 : 8;
                    cp = 0;
                    for (int k = 0; k < digits; k++) {
                        int h = i < n ? hexval(s[i]) : -1;
                        if (h < 0) { *why = d == 'u' ? "truncated \\uXXXX escape" : "truncated \\UXXXXXXXX escape"; return -1; }
                        cp = cp << 4 | (uint32_t)h;
                        i++;
                    }
                    if (cp > 0x10FFFF) { *why = "escape beyond U+10FFFF"; return -1; }
                    if (cp >= 0xD800 && cp <= 0xDFFF) { *why = "surrogate code point cannot be UTF-8 encoded"; return -1; }
                }
                break;
            default:
                /* Python keeps unknown escapes verbatim (backslash included). */
                out[o++] = '\\';
                i--;        /* d is copied as an ordinary character next round */
                continue;
            }
            if (is_bytes) out[o++] = (uint8_t)cp;
            else o += utf8_encode(out + o, cp);
            continue;
        }
        if (c == '\n' || c == '\r') { *why = "line break inside literal"; return -1; }
        if (is_bytes) {
            if (c >= 0x80) { *why = "non-ASCII character in bytes literal"; return -1; }
            out[o++] = c;
            i++;
        } else {
            uint32_t cp;
            int len = utf8_decode(s + i, n - i, &cp);
            if (!len) { *why = "invalid UTF-8"; return -1; }
            memcpy(out + o, s + i, (size_t)len);
            o += len;
            i += (size_t)len;
        }
    }
    if (i != n) { *why = "text after the closing quote"; return -1; }
    return o;
}

static int parse_uint(const uint8_t *s, size_t n, uint32_t max, uint32_t *out)
{
    if (n == 0 || n > 10) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Open-addressing set of token ids keyed by their bytes, to reject repeats. */
typedef struct { uint32_t *slot; uint32_t mask; } IdSet;

void vocab_free(Vocab *v)
{
    free(v->offset);
    free(v->bytes);
    memset(v, 0, sizeof *v);
}

int vocab_parse(Vocab *v, const char *text, size_t len, const char *name, Error *e)
{
    memset(v, 0, sizeof *v);
    const uint8_t *p = (const uint8_t *)text, *end = p + len;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += p[i] == '\n';
    lines += len && p[len - 1] != '\n';
    if (lines == 0) return fail(e, "%s: empty vocabulary", name);
    if (lines > VOCAB_MAX_ID) return fail(e, "%s:%u: more than %u tokens", name, VOCAB_MAX_ID + 1, VOCAB_MAX_ID);
    v->offset = calloc(lines + 2, sizeof *v->offset);
    /* A token's bytes never exceed 4x its literal's length (\uXXXX -> 3 bytes, \U -> 4). */
    size_t bytes_cap = len + 16;
    v->bytes = malloc(bytes_cap);
    size_t set_cap = 1;
    while (set_cap < lines * 2) set_cap <<= 1;
    IdSet set = { calloc(set_cap, sizeof(uint32_t)), (uint32_t)set_cap - 1 };
    uint8_t *tmp = malloc(4 * VOCAB_MAX_TOKEN_LEN + 64);
    if (!v->offset || !v->bytes || !set.slot || !tmp) { fail(e, "out of memory"); goto bad; }

    uint32_t id = 0;
    size_t used = 0;
    for (size_t lineno = 1; p < end; lineno++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = nl ? nl : end;
        const uint8_t *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r') le--;
        size_t n = (size_t)(le - p);
        if (n == 0) { fail(e, "%s:%zu: empty line", name, lineno); goto bad; }
        const uint8_t *sp1 = NULL, *sp2 = NULL;
        for (size_t k = 0; k < n; k++) if (p[k] == ' ') { sp1 = p + k; break; }
        for (size_t k = n; k > 0; k--) if (p[k - 1] == ' ') { sp2 = p + k - 1; break; }
        if (!sp1 || sp1 == sp2) { fail(e, "%s:%zu: expected '<id> <literal> <byte_length>'", name, lineno); goto bad; }
        uint32_t got_id, blen;
        if (parse_uint(p, (size_t)(sp1 - p), VOCAB_MAX_ID, &got_id)) { fail(e, "%s:%zu: bad token id", name, lineno); goto bad; }
        if (got_id != id + 1) { fail(e, "%s:%zu: token id %u, expected %u (ids must run 1, 2, 3, ...)", name, lineno, got_id, id + 1); goto bad; }
        if (parse_uint(sp2 + 1, (size_t)(le - sp2 - 1), 0xFFFFFFFFu, &blen)) { fail(e, "%s:%zu: bad byte length", name, lineno); goto bad; }
        size_t lit_len = (size_t)(sp2 - sp1 - 1);
        if (lit_len > 4 * VOCAB_MAX_TOKEN_LEN + 16) { fail(e, "%s:%zu: literal too long", name, lineno); goto bad; }
        const char *why = NULL;
        long got = parse_literal(sp1 + 1, lit_len, tmp, &why);
        if (got < 0) { fail(e, "%s:%zu: %s", name, lineno, why); goto bad; }
        if ((uint32_t)got != blen) { fail(e, "%s:%zu: literal has %ld bytes, line says %u", name, lineno, got, blen); goto bad; }
        if (got == 0) { fail(e, "%s:%zu: empty token", name, lineno); goto bad; }
        if (got > (long)VOCAB_MAX_TOKEN_LEN) { fail(e, "%s:%zu: token longer than %u bytes", name, lineno, VOCAB_MAX_TOKEN_LEN); goto bad; }
        if (grow(&v->bytes, &bytes_cap, used + (size_t)got)) { fail(e, "out of memory"); goto bad; }
        memcpy(v->bytes + used, tmp, (size_t)got);
        id = got_id;
        v->offset[id] = (uint32_t)used;
        used += (size_t)got;
        v->offset[id + 1] = (uint32_t)used;
        if ((uint32_t)got > v->max_len) v->max_len = (uint32_t)got;
        /* repeated byte strings would make the encoding ambiguous */
        uint32_t h = (uint32_t)XXH3_64bits(tmp, (size_t)got) & set.mask;
        for (;; h = (h + 1) & set.mask) {
            uint32_t other = set.slot[h];
            if (!other) { set.slot[h] = id; break; }
            if (vocab_token_len(v, other) == (size_t)got && !memcmp(vocab_token(v, other), tmp, (size_t)got)) {
                fail(e, "%s:%zu: token %u repeats the bytes of token %u", name, lineno, id, other);
                goto bad;
            }
        }
        p = next;
    }
    v->n = id;
    free(set.slot);
    free(tmp);
    return 0;
bad:
    free(set.slot);
    free(tmp);
    vocab_free(v);
    return -1;
}

int vocab_load(Vocab *v, const char *path, Error *e)
{
    memset(v, 0, sizeof *v);
    /* a vocabulary is a file, never a FIFO: opening one would wait for a writer forever */
    Input *in = input_open_regular(path, e);
    if (!in) return -1;
    size_t cap = 0, len = 0;
    char *buf = NULL;
    for (;;) {
        if (grow(&buf, &cap, len + (1 << 16))) { free(buf); input_close(in); return fail(e, "out of memory"); }
        ssize_t r = input_read(in, buf + len, cap - len, e);
        if (r < 0) { free(buf); input_close(in); return -1; }
        if (r == 0) break;
        len += (size_t)r;
        if (len > (64u << 20)) { free(buf); input_close(in); return fail(e, "%s: too large for a vocabulary", path); }
    }
    int rc = vocab_parse(v, buf, len, input_name(in), e);
    free(buf);
    input_close(in);
    return rc;
}

int vocab_load_default(Vocab *v, const char *path, Error *e)
{
    char *found = NULL;
    if (!path && !(path = found = find_data_file(DEFAULT_VOCAB, e))) return -1;
    int rc = vocab_load(v, path, e);
    free(found);
    return rc;
}
