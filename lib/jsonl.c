/* jsonl.c: strict one-line JSON validation and string-member extraction (see jsonl.h). */
#include "jsonl.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 1000   /* Python's json gives up near its recursion limit too */

typedef struct {
    const uint8_t *start, *p, *end;
    JsonError *err;
} Parser;

/* Where decoded string bytes go: copied to dst, and/or compared against cmp. */
typedef struct {
    uint8_t *dst;
    const uint8_t *cmp;
    size_t cmp_len, len;
    int mismatch;
    size_t lone_column;   /* column of the first lone surrogate, 0 if none */
} Sink;

static int utf8_next(const uint8_t *s, const uint8_t *end, uint32_t *cp);
static int error_at(Parser *ps, const uint8_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int error_at(Parser *ps, const uint8_t *at, const char *fmt, ...)
{
    uint32_t cp;
    if (at < ps->end && *at >= 0x80 && !utf8_next(at, ps->end, &cp)) {
        ps->err->column = (size_t)(at - ps->start) + 1;
        snprintf(ps->err->msg, sizeof ps->err->msg, "invalid UTF-8 at column %zu", ps->err->column);
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    ps->err->column = (size_t)(at - ps->start) + 1;
    int k = snprintf(ps->err->msg, sizeof ps->err->msg, "invalid JSON at column %zu: ", ps->err->column);
    if (k > 0 && (size_t)k < sizeof ps->err->msg) vsnprintf(ps->err->msg + k, sizeof ps->err->msg - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

/* UTF-8 of [s, end), strict (utf8.h). */
static int utf8_next(const uint8_t *s, const uint8_t *end, uint32_t *cp)
{
    return utf8_decode(s, (size_t)(end - s), cp);
}

static int utf8_error(Parser *ps, const uint8_t *at)
{
    ps->err->column = (size_t)(at - ps->start) + 1;
    snprintf(ps->err->msg, sizeof ps->err->msg, "invalid UTF-8 at column %zu", ps->err->column);
    return -1;
}

static inline void sink_put(Sink *k, const uint8_t *b, size_t n)
{
    if (k->dst) memcpy(k->dst + k->len, b, n);
    if (k->cmp && !k->mismatch && (k->len + n > k->cmp_len || memcmp(k->cmp + k->len, b, n))) k->mismatch = 1;
    k->len += n;
}

static void sink_cp(Sink *k, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (uint8_t)cp; n = 1; }
    else if (cp < 0x800) { b[0] = 0xC0 | cp >> 6; b[1] = 0x80 | (cp & 0x3F); n = 2; }
    else if (cp < 0x10000) { b[0] = 0xE0 | cp >> 12; b[1] = 0x80 | (cp >> 6 & 0x3F); b[2] = 0x80 | (cp & 0x3F); n = 3; }
    else { b[0] = 0xF0 | cp >> 18; b[1] = 0x80 | (cp >> 12 & 0x3F); b[2] = 0x80 | (cp >> 6 & 0x3F); b[3] = 0x80 | (cp & 0x3F); n = 4; }
    sink_put(k, b, n);
}

static int hex4(const uint8_t *s, const uint8_t *end, uint32_t *v)
{
    if (end - s < 4) return -1;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = s[i];
        int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (h < 0) return -1;
        x = x << 4 | (uint32_t)h;
    }
    *v = x;
    return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Nonzero if some byte of v is '"', '\\', a control character or non-ASCII. */
static inline uint64_t special_bytes(uint64_t v)
{
    uint64_t q = v ^ (ONES * '"'), b = v ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((v - ONES * 0x20) & ~v) | v) & HIGHS;
}

/* p points after the opening quote.  Decodes into k; leaves ps->p after the closing quote. */
static int parse_string(Parser *ps, Sink *k)
{
    const uint8_t *p = ps->p, *end = ps->end;
    for (;;) {
        const uint8_t *run = p;
        while (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            if (special_bytes(v)) break;
            p += 8;
        }
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
        if (p > run) sink_put(k, run, (size_t)(p - run));
        if (p >= end) return error_at(ps, p, "unterminated string");
        uint8_t c = *p;
        if (c == '"') { ps->p = p + 1; return 0; }
        if (c < 0x20) return error_at(ps, p, "control character 0x%02X in a string (must be escaped)", c);
        if (c >= 0x80) {
            uint32_t cp;
            int len = utf8_next(p, end, &cp);
            if (!len) return utf8_error(ps, p);
            sink_put(k, p, (size_t)len);
            p += len;
            continue;
        }
        /* backslash */
        if (end - p < 2) return error_at(ps, p, "unterminated string");
        const uint8_t *esc = p;
        uint8_t d = p[1];
        p += 2;
        uint8_t ch;
        switch (d) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t u;
            if (hex4(p, end, &u)) return error_at(ps, esc, "bad \\u escape (need 4 hex digits)");
            p += 4;
            if (u >= 0xD800 && u <= 0xDBFF) {
                uint32_t lo;
                if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && !hex4(p + 2, end, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    p += 6;
                    sink_cp(k, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                    continue;
                }
                if (!k->lone_column) k->lone_column = (size_t)(esc - ps->start) + 1;
                continue;
            }
            if (u >= 0xDC00 && u <= 0xDFFF) {
                if (!k->lone_column) k->lone_column = (size_t)(esc - ps->start) + 1;
                continue;
            }
            sink_cp(k, u);
            continue;
        }
        default:
            return error_at(ps, esc, "unknown escape '\\%c'", d >= 0x20 && d < 0x7F ? d : '?');
        }
        sink_put(k, &ch, 1);
    }
}

static void skip_ws(Parser *ps)
{
    const uint8_t *p = ps->p;
    while (p < ps->end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    ps->p = p;
}

static int parse_number(Parser *ps)
{
    const uint8_t *p = ps->p, *end = ps->end, *start = p;
    if (p < end && *p == '-') p++;
    if (p >= end || *p < '0' || *p > '9') return error_at(ps, start, "invalid number");
    if (*p == '0') p++;
    else while (p < end && *p >= '0' && *p <= '9') p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return error_at(ps, p, "digit expected after '.'");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return error_at(ps, p, "digit expected in exponent");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    ps->p = p;
    return 0;
}

static const char *type_name(uint8_t c)
{
    switch (c) {
    case '{': return "an object";
    case '[': return "an array";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* Field search state for the top-level object. */
typedef struct {
    const uint8_t *field;
    size_t field_len;
    uint8_t *out;
    long value_len;          /* -1: not found yet */
    const char *bad_type;    /* last value of the field was not a string */
    size_t lone_column;
    const uint8_t *raw;      /* JSON text of the field's last value (jsonl_member) */
    size_t raw_len;
} Target;

static int parse_value(Parser *ps, int depth, Target *tg);

static int parse_literal(Parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
        return error_at(ps, ps->p, "unexpected %s", *ps->p >= 0x20 && *ps->p < 0x7F ? "character" : "byte");
    ps->p += n;
    return 0;
}

static int parse_object(Parser *ps, int depth, Target *tg)
{
    ps->p++;   /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') { ps->p++; return 0; }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') return error_at(ps, ps->p, "expected a string key");
        ps->p++;
        Sink key = { NULL, tg ? tg->field : NULL, tg ? tg->field_len : 0, 0, 0, 0 };
        if (parse_string(ps, &key)) return -1;
        int is_target = tg && !key.mismatch && key.len == tg->field_len && !key.lone_column;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') return error_at(ps, ps->p, "expected ':' after a key");
        ps->p++;
        skip_ws(ps);
        const uint8_t *value_start = ps->p;
        if (is_target && ps->p < ps->end && *ps->p == '"') {
            ps->p++;
            Sink val = { (uint8_t *)tg->out, NULL, 0, 0, 0, 0 };
            if (parse_string(ps, &val)) return -1;
            tg->value_len = (long)val.len;
            tg->bad_type = NULL;
            tg->lone_column = val.lone_column;
        } else {
            if (is_target) {
                tg->bad_type = ps->p < ps->end ? type_name(*ps->p) : "nothing";
                tg->value_len = -1;
            }
            if (parse_value(ps, depth + 1, NULL)) return -1;
        }
        if (is_target) { tg->raw = value_start; tg->raw_len = (size_t)(ps->p - value_start); }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == '}') { ps->p++; return 0; }
        return error_at(ps, ps->p, "expected ',' or '}'");
    }
}

static int parse_array(Parser *ps, int depth)
{
    ps->p++;   /* '[' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 0; }
    for (;;) {
        skip_ws(ps);
        if (parse_value(ps, depth + 1, NULL)) return -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 0; }
        return error_at(ps, ps->p, "expected ',' or ']'");
    }
}

static int parse_value(Parser *ps, int depth, Target *tg)
{
    if (depth > MAX_DEPTH) return error_at(ps, ps->p, "nested deeper than %d levels", MAX_DEPTH);
    if (ps->p >= ps->end) return error_at(ps, ps->p, "value expected");
    uint8_t c = *ps->p;
    switch (c) {
    case '{': return parse_object(ps, depth, tg);
    case '[': return parse_array(ps, depth);
    case '"': {
        ps->p++;
        Sink none = { 0 };
        return parse_string(ps, &none);
    }
    case 't': return parse_literal(ps, "true");
    case 'f': return parse_literal(ps, "false");
    case 'n': return parse_literal(ps, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps);
        if (c >= 0x80) {
            uint32_t cp;
            if (!utf8_next(ps->p, ps->end, &cp)) return utf8_error(ps, ps->p);
        }
        if (c == 'N' || c == 'I') return error_at(ps, ps->p, "NaN and Infinity are not JSON");
        return error_at(ps, ps->p, "unexpected %s", c >= 0x20 && c < 0x7F ? "character" : "byte");
    }
}

int jsonl_is_blank(const char *line, size_t n) { return py_is_blank(line, n); }

/* Validate the whole record on line[0..n) and find tg's field in it. */
static int parse_record(const char *line, size_t n, Target *tg, JsonError *err)
{
    Parser ps = { (const uint8_t *)line, (const uint8_t *)line, (const uint8_t *)line + n, err };
    err->column = 0;
    err->msg[0] = 0;
    int k;   /* Python's json.loads(line) after make_data.py's line.strip() */
    while (ps.p < ps.end && (k = py_space_at(ps.p, ps.end))) ps.p += k;
    while (ps.end > ps.p && (k = py_space_before(ps.p, ps.end))) ps.end -= k;
    if (ps.p >= ps.end) { snprintf(err->msg, sizeof err->msg, "empty record"); return -1; }
    int is_object = *ps.p == '{';
    if (parse_value(&ps, 0, is_object ? tg : NULL)) return -1;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        if (*ps.p >= 0x80 && !utf8_next(ps.p, ps.end, &(uint32_t){0})) return utf8_error(&ps, ps.p);
        return error_at(&ps, ps.p, "text after the JSON value");
    }
    if (!is_object) { snprintf(err->msg, sizeof err->msg, "record is not a JSON object"); return -1; }
    return 0;
}

long jsonl_extract(const char *line, size_t n, const char *field, size_t field_len,
                   char *out, JsonError *err)
{
    Target tg = { (const uint8_t *)field, field_len, (uint8_t *)out, -1, NULL, 0, NULL, 0 };
    if (parse_record(line, n, &tg, err)) return -1;
    if (tg.bad_type) {
        snprintf(err->msg, sizeof err->msg, "field \"%.*s\" is %s, not a string", (int)(field_len > 40 ? 40 : field_len), field, tg.bad_type);
        return -1;
    }
    if (tg.value_len < 0) {
        snprintf(err->msg, sizeof err->msg, "no \"%.*s\" field", (int)(field_len > 40 ? 40 : field_len), field);
        return -1;
    }
    if (tg.lone_column) {
        err->column = tg.lone_column;
        snprintf(err->msg, sizeof err->msg, "lone surrogate escape at column %zu (not encodable as UTF-8)", tg.lone_column);
        return -1;
    }
    return tg.value_len;
}

long jsonl_member(const char *line, size_t n, const char *field, size_t field_len,
                  const char **value, JsonError *err)
{
    Target tg = { (const uint8_t *)field, field_len, NULL, -1, NULL, 0, NULL, 0 };
    *value = NULL;
    if (parse_record(line, n, &tg, err)) return -1;
    if (!tg.raw) return 0;
    *value = (const char *)tg.raw;
    return (long)tg.raw_len;
}
