/* safetensors.c: strict reader and atomic writer (huggingface/safetensors
 * safetensors/src/tensor.rs rules; see doc/pth-format.md).
 *
 * The header is parsed by a small JSON parser that accepts exactly the shape
 * safetensors uses: one object whose members are tensor entries
 * {"dtype","shape","data_offsets"} or "__metadata__" (string -> string).
 * Anything else (floats, negatives, duplicate keys, unknown fields, trailing
 * bytes other than whitespace) is an error, so a file has one meaning only. */
#include "safetensors.h"
#include "growbuf.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define ST_MAX_HEADER  100000000ull   /* MAX_HEADER_SIZE of the reference crate */
#define ST_MAX_TENSORS 65536
#define ST_MAX_NAME    1024
#define ST_MAX_META    (ST_MAX_TENSORS * 2 + 1024)
#define JSON_MAX_INT   (1ull << 53)
#define CKSUM_PREFIX   "xxh3:"

/* ---------------- minimal strict JSON scanner ---------------- */

typedef struct {
    const unsigned char *p, *end;
    Error *e;
} Json;

static void skip_ws(Json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static long at(const Json *j, const unsigned char *base) { return (long)(j->p - base); }

static int expect(Json *j, char c, const char *what)
{
    skip_ws(j);
    if (j->p >= j->end) return fail(j->e, "header: unexpected end, expected %s", what);
    if (*j->p != (unsigned char)c) return fail(j->e, "header: expected %s", what);
    j->p++;
    return 0;
}

/* 1 and consume if next non-space byte is c */
static int accept(Json *j, char c)
{
    skip_ws(j);
    if (j->p < j->end && *j->p == (unsigned char)c) { j->p++; return 1; }
    return 0;
}

static int hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* Parse a JSON string into a malloc'd NUL-terminated UTF-8 string.
 * Embedded NULs are rejected (names are C strings). */
static char *parse_string(Json *j, size_t max_len)
{
    if (expect(j, '"', "a string")) return NULL;
    const unsigned char *s = j->p;
    /* output is never longer than the input */
    size_t cap = 0;
    while (s + cap < j->end && s[cap] != '"') cap += (s[cap] == '\\' && s + cap + 1 < j->end) ? 2 : 1;
    if (s + cap >= j->end) { fail(j->e, "header: unterminated string"); return NULL; }
    if (cap > max_len * 6 + 16) { fail(j->e, "header: string longer than %zu bytes", max_len); return NULL; }
    char *out = malloc(cap + 1);
    if (!out) { fail(j->e, "out of memory"); return NULL; }
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned c = *j->p;
        if (c < 0x20) { fail(j->e, "header: control character in string"); goto bad; }
        if (c == '\\') {
            if (j->end - j->p < 2) { fail(j->e, "header: bad escape"); goto bad; }
            unsigned x = j->p[1];
            j->p += 2;
            switch (x) {
            case '"': out[n++] = '"'; break;
            case '\\': out[n++] = '\\'; break;
            case '/': out[n++] = '/'; break;
            case 'b': out[n++] = '\b'; break;
            case 'f': out[n++] = '\f'; break;
            case 'n': out[n++] = '\n'; break;
            case 'r': out[n++] = '\r'; break;
            case 't': out[n++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (j->end - j->p < 4 || hex4(j->p, &cp)) { fail(j->e, "header: bad \\u escape"); goto bad; }
                j->p += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff) { fail(j->e, "header: lone surrogate in string"); goto bad; }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff) {
                        fail(j->e, "header: lone surrogate in string");
                        goto bad;
                    }
                    j->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp == 0) { fail(j->e, "header: NUL character in string"); goto bad; }
                n += (size_t)utf8_encode((uint8_t *)out + n, cp);   /* 6+ input bytes -> at most 4 output bytes */
                break;
            }
            default: fail(j->e, "header: bad escape \\%c", x < 0x80 && x >= 0x20 ? (char)x : '?'); goto bad;
            }
        } else {
            uint32_t decoded;
            size_t k = (size_t)utf8_decode(j->p, (size_t)(j->end - j->p), &decoded);
            if (!k) { fail(j->e, "header: invalid UTF-8"); goto bad; }
            memcpy(out + n, j->p, k);
            n += k;
            j->p += k;
        }
    }
    if (j->p >= j->end) { fail(j->e, "header: unterminated string"); goto bad; }
    j->p++;
    out[n] = 0;
    if (n > max_len) { fail(j->e, "header: string longer than %zu bytes", max_len); goto bad; }
    return out;
bad:
    free(out);
    return NULL;
}

/* Non-negative integer <= 2^53, no sign, fraction, exponent or leading zeros. */
static int parse_uint(Json *j, uint64_t *out, const char *what)
{
    skip_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return fail(j->e, "%s: expected a non-negative integer", what);
    if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
        return fail(j->e, "%s: leading zero in integer", what);
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        v = v * 10 + (uint64_t)(*j->p - '0');
        if (v > JSON_MAX_INT) return fail(j->e, "%s: integer too large", what);
        j->p++;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return fail(j->e, "%s: expected an integer, found a fraction or exponent", what);
    *out = v;
    return 0;
}

/* ---------------- header model ---------------- */

typedef struct {
    char    *name;
    int      dtype;
    int      ndim;
    int64_t  shape[TENSOR_MAX_DIM];
    uint64_t begin, end;
    int      index;     /* order in the header, for stable sorting */
} Entry;

typedef struct {
    Entry *v;
    int n;
    size_t cap;
    char **mk, **mv;
    int nmeta;
    size_t mk_cap, mv_cap;
    int have_meta;
} Header;

static void header_free(Header *h)
{
    for (int i = 0; i < h->n; i++) free(h->v[i].name);
    for (int i = 0; i < h->nmeta; i++) { free(h->mk[i]); free(h->mv[i]); }
    free(h->v); free(h->mk); free(h->mv);
    memset(h, 0, sizeof *h);
}

static int parse_entry(Json *j, Entry *t)
{
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (expect(j, '{', "'{' for the tensor entry")) return -1;
    if (!accept(j, '}')) {
        do {
            char *key = parse_string(j, 64);
            if (!key) return -1;
            if (expect(j, ':', "':'")) { free(key); return -1; }
            if (strcmp(key, "dtype") == 0) {
                free(key);
                if (have_dtype++) return fail(j->e, "duplicate field dtype");
                char *d = parse_string(j, 64);
                if (!d) return -1;
                t->dtype = dtype_from_name(d);
                if (t->dtype < 0) {
                    fail(j->e, "unknown or unsupported dtype \"%s\"", d);
                    free(d);
                    return -1;
                }
                free(d);
            } else if (strcmp(key, "shape") == 0) {
                free(key);
                if (have_shape++) return fail(j->e, "duplicate field shape");
                if (expect(j, '[', "'[' for shape")) return -1;
                t->ndim = 0;
                if (!accept(j, ']')) {
                    do {
                        uint64_t v;
                        if (t->ndim == TENSOR_MAX_DIM) return fail(j->e, "more than %d dimensions", TENSOR_MAX_DIM);
                        if (parse_uint(j, &v, "shape")) return -1;
                        t->shape[t->ndim++] = (int64_t)v;
                    } while (accept(j, ','));
                    if (expect(j, ']', "']' after shape")) return -1;
                }
            } else if (strcmp(key, "data_offsets") == 0) {
                free(key);
                if (have_off++) return fail(j->e, "duplicate field data_offsets");
                if (expect(j, '[', "'[' for data_offsets")) return -1;
                if (parse_uint(j, &t->begin, "data_offsets")) return -1;
                if (expect(j, ',', "two data_offsets")) return -1;
                if (parse_uint(j, &t->end, "data_offsets")) return -1;
                if (expect(j, ']', "']' after the two data_offsets")) return -1;
            } else {
                fail(j->e, "unknown field \"%.64s\"", key);
                free(key);
                return -1;
            }
        } while (accept(j, ','));
        if (expect(j, '}', "'}' after the tensor entry")) return -1;
    }
    if (!have_dtype) return fail(j->e, "no dtype");
    if (!have_shape) return fail(j->e, "no shape");
    if (!have_off) return fail(j->e, "no data_offsets");
    return 0;
}

static int parse_metadata(Json *j, Header *h)
{
    if (h->have_meta++) return fail(j->e, "header: duplicate __metadata__");
    if (expect(j, '{', "'{' for __metadata__")) return -1;
    if (accept(j, '}')) return 0;
    do {
        if (h->nmeta == ST_MAX_META) return fail(j->e, "header: more than %d metadata entries", ST_MAX_META);
        if (grow(&h->mk, &h->mk_cap, (size_t)h->nmeta + 1) ||
            grow(&h->mv, &h->mv_cap, (size_t)h->nmeta + 1))
            return fail(j->e, "out of memory");
        char *key = parse_string(j, ST_MAX_NAME + 16);
        if (!key) return fail_prefix(j->e, "__metadata__");
        if (expect(j, ':', "':'")) { free(key); return -1; }
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"') {
            fail(j->e, "__metadata__ value of \"%.64s\" is not a string", key);
            free(key);
            return -1;
        }
        char *val = parse_string(j, 1 << 20);
        if (!val) { free(key); return fail_prefix(j->e, "__metadata__"); }
        h->mk[h->nmeta] = key;
        h->mv[h->nmeta] = val;
        h->nmeta++;
    } while (accept(j, ','));
    return expect(j, '}', "'}' after __metadata__");
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const Entry *const *)a)->name, (*(const Entry *const *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index - y->index;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_header(const unsigned char *p, size_t n, Header *h, Error *e)
{
    Json j = { p, p + n, e };
    if (n == 0 || p[0] != '{') return fail(e, "header does not start with '{'");
    j.p++;
    if (!accept(&j, '}')) {
        do {
            char *key = parse_string(&j, ST_MAX_NAME);
            if (!key) return -1;
            if (expect(&j, ':', "':' after a tensor name")) { free(key); return -1; }
            if (strcmp(key, "__metadata__") == 0) {
                free(key);
                if (parse_metadata(&j, h)) return -1;
                continue;
            }
            if (h->n == ST_MAX_TENSORS) { free(key); return fail(e, "header: more than %d tensors", ST_MAX_TENSORS); }
            if (grow(&h->v, &h->cap, (size_t)h->n + 1)) { free(key); return fail(e, "out of memory"); }
            Entry *t = &h->v[h->n++];
            memset(t, 0, sizeof *t);
            t->name = key;
            t->index = h->n - 1;
            if (parse_entry(&j, t)) return fail_prefix(e, "tensor %s", key);
        } while (accept(&j, ','));
        if (expect(&j, '}', "',' or '}' after a header entry")) return -1;
    }
    skip_ws(&j);
    if (j.p != j.end) return fail(e, "header: unexpected bytes after the JSON object (at byte %ld)", at(&j, p));
    /* duplicate names: sort pointers by name */
    if (h->n > 1) {
        Entry **byname = malloc(h->n * sizeof *byname);
        if (!byname) return fail(e, "out of memory");
        for (int i = 0; i < h->n; i++) byname[i] = &h->v[i];
        qsort(byname, h->n, sizeof *byname, cmp_name);
        for (int i = 1; i < h->n; i++)
            if (strcmp(byname[i - 1]->name, byname[i]->name) == 0) {
                fail(e, "duplicate tensor %s", byname[i]->name);
                free(byname);
                return -1;
            }
        free(byname);
    }
    if (h->nmeta > 1) {
        char **keys = malloc(h->nmeta * sizeof *keys);
        if (!keys) return fail(e, "out of memory");
        memcpy(keys, h->mk, h->nmeta * sizeof *keys);
        qsort(keys, h->nmeta, sizeof *keys, cmp_str);
        for (int i = 1; i < h->nmeta; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                fail(e, "duplicate __metadata__ key \"%.64s\"", keys[i]);
                free(keys);
                return -1;
            }
        free(keys);
    }
    return 0;
}

static int verify_checksums(const TensorSet *ts, Error *e)
{
    size_t plen = strlen(CKSUM_PREFIX);
    for (int i = 0; i < ts->nmeta; i++) {
        const char *k = ts->meta_key[i];
        if (strncmp(k, CKSUM_PREFIX, plen) != 0) continue;
        const Tensor *t = ts_find(ts, k + plen);
        if (!t) return fail(e, "checksum for a tensor not in the file: %.100s", k + plen);
        const char *v = ts->meta_val[i];
        uint64_t want = 0;
        if (strlen(v) != 16) return fail(e, "tensor %s: malformed checksum \"%.32s\"", t->name, v);
        for (int c = 0; c < 16; c++) {
            unsigned d;
            if (v[c] >= '0' && v[c] <= '9') d = (unsigned)(v[c] - '0');
            else if (v[c] >= 'a' && v[c] <= 'f') d = (unsigned)(v[c] - 'a' + 10);
            else return fail(e, "tensor %s: malformed checksum \"%.32s\"", t->name, v);
            want = want << 4 | d;
        }
        uint64_t got = XXH3_64bits(t->data, t->nbytes);
        if (got != want)
            return fail(e, "tensor %s: checksum mismatch (data corrupted): stored %016llx, computed %016llx",
                        t->name, (unsigned long long)want, (unsigned long long)got);
    }
    return 0;
}

int st_parse(const void *buf, size_t len, TensorSet *ts, Error *e)
{
    const unsigned char *b = buf;
    ts_init(ts);
    if (len < 8) return fail(e, "too short for a safetensors file (%zu bytes)", len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | b[i];
    if (n > ST_MAX_HEADER) return fail(e, "header length %llu exceeds the %llu-byte limit", (unsigned long long)n, ST_MAX_HEADER);
    if (n > len - 8) return fail(e, "truncated: header length %llu but only %zu bytes follow", (unsigned long long)n, len - 8);
    size_t data_len = len - 8 - (size_t)n;
    const unsigned char *data = b + 8 + n;

    Header h = { 0 };
    if (parse_header(b + 8, (size_t)n, &h, e)) { header_free(&h); return -1; }

    /* Offsets must tile the data buffer exactly: sorted, contiguous from 0, no holes. */
    if (h.n) qsort(h.v, h.n, sizeof *h.v, cmp_offset);
    uint64_t pos = 0;
    for (int i = 0; i < h.n; i++) {
        Entry *t = &h.v[i];
        uint64_t numel = 1, nbytes;
        for (int k = 0; k < t->ndim; k++)
            if (mul_overflow_u64(numel, (uint64_t)t->shape[k], &numel)) { fail(e, "tensor %s: shape overflows", t->name); goto bad; }
        if (mul_overflow_u64(numel, dtype_size(t->dtype), &nbytes)) { fail(e, "tensor %s: size overflows", t->name); goto bad; }
        if (t->end < t->begin) { fail(e, "tensor %s: data_offsets end before begin", t->name); goto bad; }
        if (t->begin != pos) {
            if (t->begin < pos) fail(e, "tensor %s: data overlaps the previous tensor (offset %llu < %llu)", t->name,
                                     (unsigned long long)t->begin, (unsigned long long)pos);
            else fail(e, "tensor %s: gap before its data (offset %llu, expected %llu)", t->name,
                      (unsigned long long)t->begin, (unsigned long long)pos);
            goto bad;
        }
        if (t->end - t->begin != nbytes) {
            fail(e, "tensor %s: data_offsets span %llu bytes but dtype %s and shape need %llu", t->name,
                 (unsigned long long)(t->end - t->begin), dtype_name(t->dtype), (unsigned long long)nbytes);
            goto bad;
        }
        if (t->end > data_len) {
            fail(e, "tensor %s: truncated (data ends at byte %llu of a %zu-byte buffer)", t->name,
                 (unsigned long long)t->end, data_len);
            goto bad;
        }
        pos = t->end;
    }
    if (pos != data_len) {
        fail(e, "%llu bytes after the last tensor are not covered by any tensor", (unsigned long long)(data_len - pos));
        goto bad;
    }

    /* Fill the set directly (names are already known unique). */
    ts->t = calloc(h.n ? h.n : 1, sizeof *ts->t);
    if (!ts->t) { fail(e, "out of memory"); goto bad; }
    ts->cap = h.n ? h.n : 1;
    for (int i = 0; i < h.n; i++) {
        Entry *s = &h.v[i];
        Tensor *t = &ts->t[ts->n++];
        t->name = s->name;
        s->name = NULL;
        t->dtype = (DType)s->dtype;
        t->ndim = s->ndim;
        memcpy(t->shape, s->shape, sizeof t->shape);
        t->nbytes = (size_t)(s->end - s->begin);
        t->data = (void *)(data + s->begin);
        t->owned = 0;
    }
    ts->meta_key = h.mk;
    ts->meta_val = h.mv;
    ts->nmeta = h.nmeta;
    h.mk = h.mv = NULL;
    h.nmeta = 0;
    header_free(&h);
    if (verify_checksums(ts, e)) { ts_free(ts); return -1; }
    return 0;
bad:
    header_free(&h);
    ts_free(ts);
    return -1;
}

int st_read(const char *path, TensorSet *ts, Error *e)
{
    ts_init(ts);
    int fd = open_regular(path, e);
    if (fd < 0) return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0) { int err = errno; close(fd); return fail(e, "%s: %s", path, strerror(err)); }
    size_t len = (size_t)sb.st_size;
    if (len < 8) { close(fd); return fail(e, "%s: too short for a safetensors file (%zu bytes)", path, len); }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED) return fail(e, "%s: mmap failed: %s", path, strerror(err));
    if (st_parse(map, len, ts, e)) {
        munmap(map, len);
        return fail_prefix(e, "%s", path);
    }
    ts->map = map;
    ts->map_len = len;
    return 0;
}

/* ---------------- writer ---------------- */

typedef struct { char *s; size_t n, cap; int oom; } Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (grow(&b->s, &b->cap, b->n + n + 1)) { b->oom = 1; return; }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_json_string(Buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; buf_put(b, esc, 2); }
        else if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); buf_put(b, esc, 6); }
        else buf_put(b, (const char *)p, 1);
    }
    buf_put(b, "\"", 1);
}

static int valid_utf8(const char *s) { return utf8_valid((const uint8_t *)s, strlen(s)); }

int st_write(const char *path, const TensorSet *ts, int overwrite, Error *e)
{
    Buf b = { 0 };
    char tmp[128];
    size_t plen = strlen(CKSUM_PREFIX);
    buf_str(&b, "{\"__metadata__\":{");
    int first = 1;
    for (int i = 0; i < ts->nmeta; i++) {
        if (strncmp(ts->meta_key[i], CKSUM_PREFIX, plen) == 0) continue;   /* recomputed below */
        if (!valid_utf8(ts->meta_key[i]) || !valid_utf8(ts->meta_val[i])) {
            free(b.s);
            return fail(e, "%s: metadata \"%.64s\" is not valid UTF-8", path, ts->meta_key[i]);
        }
        if (!first) buf_str(&b, ",");
        first = 0;
        buf_json_string(&b, ts->meta_key[i]);
        buf_str(&b, ":");
        buf_json_string(&b, ts->meta_val[i]);
    }
    for (int i = 0; i < ts->n; i++) {
        const Tensor *t = &ts->t[i];
        if (!valid_utf8(t->name) || strlen(t->name) > ST_MAX_NAME || strcmp(t->name, "__metadata__") == 0) {
            free(b.s);
            return fail(e, "%s: tensor name \"%.64s\" cannot be stored", path, t->name);
        }
        if (!first) buf_str(&b, ",");
        first = 0;
        char *key = malloc(plen + strlen(t->name) + 1);
        if (!key) { free(b.s); return fail(e, "%s: out of memory", path); }
        memcpy(key, CKSUM_PREFIX, plen);
        strcpy(key + plen, t->name);
        buf_json_string(&b, key);
        free(key);
        snprintf(tmp, sizeof tmp, ":\"%016llx\"", (unsigned long long)XXH3_64bits(t->data, t->nbytes));
        buf_str(&b, tmp);
    }
    buf_str(&b, "}");
    uint64_t off = 0;
    for (int i = 0; i < ts->n; i++) {
        const Tensor *t = &ts->t[i];
        buf_str(&b, ",");
        buf_json_string(&b, t->name);
        snprintf(tmp, sizeof tmp, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(t->dtype));
        buf_str(&b, tmp);
        for (int k = 0; k < t->ndim; k++) {
            snprintf(tmp, sizeof tmp, "%s%lld", k ? "," : "", (long long)t->shape[k]);
            buf_str(&b, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + t->nbytes));
        buf_str(&b, tmp);
        off += t->nbytes;
    }
    buf_str(&b, "}");
    while (b.n % 8) buf_str(&b, " ");   /* data then starts 8-byte aligned */
    if (b.oom) { free(b.s); return fail(e, "%s: out of memory", path); }
    if (b.n > ST_MAX_HEADER) { free(b.s); return fail(e, "%s: header too large", path); }

    AtomicFile f;
    if (atomic_open(&f, path, overwrite, e)) { free(b.s); return -1; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)b.n >> (8 * i));
    int ok = fwrite(len8, 1, 8, f.fp) == 8 && fwrite(b.s, 1, b.n, f.fp) == b.n;
    free(b.s);
    for (int i = 0; ok && i < ts->n; i++)
        if (ts->t[i].nbytes) ok = fwrite(ts->t[i].data, 1, ts->t[i].nbytes, f.fp) == ts->t[i].nbytes;
    if (!ok) {
        int err = errno;
        atomic_abort(&f);
        return fail(e, "%s: write failed: %s", path, strerror(err));
    }
    return atomic_commit(&f, e);
}

int st_sniff_head(const unsigned char *b, size_t n)
{
    if (n < 9) return 0;
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | b[i];
    return len >= 2 && len <= ST_MAX_HEADER && b[8] == '{';
}

