/* tokpipe.c: the rwkv-tokenize pipeline (see tokpipe.h). */
#include "tokpipe.h"
#include "growbuf.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "input.h"
#include "jsonl.h"
#include "tokstream.h"

typedef TokpipeOptions Options;
typedef TokpipeCounts Counts;

/* ---- encoding: lines are read in chunks, tokenized in parallel, written in order ---- */

enum { LINE_OK, LINE_BLANK, LINE_BAD };

typedef struct {
    const char *name;    /* the file the lines come from (for messages) */
    char name_buf[512];
    char *text;          /* the chunk's raw lines, back to back */
    size_t text_len, text_cap;
    size_t *off, *len;   /* per line: where it sits in text */
    uint64_t *lineno;
    size_t lines, lines_cap;
    char *decoded;       /* per line: decoded field, at the line's offset */
    uint32_t *ids;       /* per line: ids, at the line's offset + line index (room for the eod) */
    size_t *n_ids;
    unsigned char *status;
    JsonError *err;
} Chunk;

#define CHUNK_BYTES (2u << 20)
#define CHUNK_LINES 16384u

static int chunk_reserve(Chunk *c, size_t bytes, Error *e)
{
    if (c->text_len + bytes <= c->text_cap && c->lines < c->lines_cap) return 0;
    size_t tcap = c->text_cap ? c->text_cap : CHUNK_BYTES;
    while (tcap < c->text_len + bytes) tcap *= 2;
    size_t lcap = c->lines_cap ? c->lines_cap : CHUNK_LINES;
    if (c->lines >= lcap) lcap *= 2;
    if (tcap != c->text_cap) {
        char *t = realloc(c->text, tcap), *d = realloc(c->decoded, tcap + 64);   /* +64: tokenizer_encode_many reads past the end */
        uint32_t *ids = realloc(c->ids, (tcap + lcap) * sizeof *ids);
        if (t) c->text = t;
        if (d) c->decoded = d;
        if (ids) c->ids = ids;
        if (!t || !d || !ids) return fail(e, "out of memory");
        c->text_cap = tcap;
    }
    if (lcap != c->lines_cap) {
        size_t *off = realloc(c->off, lcap * sizeof *off), *len = realloc(c->len, lcap * sizeof *len);
        uint64_t *ln = realloc(c->lineno, lcap * sizeof *ln);
        size_t *n = realloc(c->n_ids, lcap * sizeof *n);
        unsigned char *st = realloc(c->status, lcap);
        JsonError *er = realloc(c->err, lcap * sizeof *er);
        uint32_t *ids = realloc(c->ids, (c->text_cap + lcap) * sizeof *ids);
        if (off) c->off = off;
        if (len) c->len = len;
        if (ln) c->lineno = ln;
        if (n) c->n_ids = n;
        if (st) c->status = st;
        if (er) c->err = er;
        if (ids) c->ids = ids;
        if (!off || !len || !ln || !n || !st || !er || !ids) return fail(e, "out of memory");
        c->lines_cap = lcap;
    }
    return 0;
}

static void chunk_free(Chunk *c)
{
    free(c->text); free(c->off); free(c->len); free(c->lineno); free(c->decoded);
    free(c->ids); free(c->n_ids); free(c->status); free(c->err);
}

/* Validate and extract lines [first, first + n), then encode their texts together. */
static void tokenize_lines(Chunk *c, size_t first, size_t n, const Options *o)
{
    enum { BATCH = 256 };
    uint32_t off[BATCH], len[BATCH], out_off[BATCH], n_ids[BATCH];
    size_t line_of[BATCH];
    while (n) {
        size_t take = n < BATCH ? n : BATCH, k = 0;
        for (size_t i = first; i < first + take; i++) {
            const char *line = c->text + c->off[i];
            if (jsonl_is_blank(line, c->len[i])) { c->status[i] = LINE_BLANK; continue; }
            long got = jsonl_extract(line, c->len[i], o->field, o->field_len, c->decoded + c->off[i], &c->err[i]);
            if (got < 0) { c->status[i] = LINE_BAD; continue; }
            c->status[i] = LINE_OK;
            off[k] = (uint32_t)c->off[i];
            len[k] = (uint32_t)got;
            out_off[k] = (uint32_t)(c->off[i] + i);
            line_of[k++] = i;
        }
        tokenizer_encode_many(o->tok, (const uint8_t *)c->decoded, k, off, len, c->ids, out_off, n_ids);
        for (size_t j = 0; j < k; j++) {
            size_t i = line_of[j], m = n_ids[j];
            if (o->eod) c->ids[out_off[j] + m++] = 0;
            c->n_ids[i] = m;
        }
        first += take;
        n -= take;
    }
}

static char *put_u32_text(char *p, uint32_t v)
{
    char tmp[10];
    int k = 0;
    do { tmp[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k) *p++ = tmp[--k];
    return p;
}

static int write_text_doc(FILE *out, const uint32_t *ids, size_t n, Error *e)
{
    char buf[1 << 16];
    char *p = buf;
    for (size_t i = 0; i < n; i++) {
        if (p - buf > (long)sizeof buf - 16) {
            if (fwrite(buf, 1, (size_t)(p - buf), out) != (size_t)(p - buf)) return fail(e, "write failed");
            p = buf;
        }
        if (i) *p++ = ' ';
        p = put_u32_text(p, ids[i]);
    }
    *p++ = '\n';
    if (fwrite(buf, 1, (size_t)(p - buf), out) != (size_t)(p - buf)) return fail(e, "write failed");
    return 0;
}

/* Write the chunk's documents in order.  Stops at the first bad line unless --skip-bad. */
static int write_chunk(Chunk *c, const Options *o, FILE *out, TokWriter *w, Counts *cnt, Error *e)
{
    for (size_t i = 0; i < c->lines; i++) {
        if (c->status[i] == LINE_BLANK) continue;
        if (c->status[i] == LINE_BAD) {
            if (!o->skip_bad) return fail(e, "%s:%llu: %s", c->name, (unsigned long long)c->lineno[i], c->err[i].msg);
            cnt->bad++;
            if (o->on_bad) o->on_bad(o->ctx, c->name, c->lineno[i], c->err[i].msg, cnt->bad);
            continue;
        }
        const uint32_t *ids = c->ids + c->off[i] + i;
        if (o->text ? write_text_doc(out, ids, c->n_ids[i], e) : tokw_doc(w, ids, c->n_ids[i], e)) return -1;
        cnt->docs++;
        cnt->tokens += c->n_ids[i];
    }
    return 0;
}

/* The input files, read as a sequence of chunks.  A chunk never spans two files. */
typedef struct {
    char **files;
    int nfiles, next;
    Input *in;
} Reader;

/* Fill c with the next lines.  Returns 1 with lines, 0 at the end of all input, -1 on error. */
static int read_chunk(Reader *r, Chunk *c, Counts *cnt, Error *e)
{
    c->lines = 0;
    c->text_len = 0;
    for (;;) {
        if (!r->in) {
            if (r->next >= (r->nfiles ? r->nfiles : 1)) return 0;
            if (!(r->in = input_open(r->nfiles ? r->files[r->next] : "-", e))) return -1;
            r->next++;
        }
        if (!c->lines) {   /* a copy: the Input may be closed before the chunk is written */
            snprintf(c->name_buf, sizeof c->name_buf, "%s", input_name(r->in));
            c->name = c->name_buf;
        }
        char *line;
        size_t len;
        int got;
        while ((got = input_getline(r->in, &line, &len, e)) == 1) {
            if (chunk_reserve(c, len + 1, e)) return -1;
            memcpy(c->text + c->text_len, line, len);
            c->off[c->lines] = c->text_len;
            c->len[c->lines] = len;
            c->lineno[c->lines] = input_lineno(r->in);
            c->lines++;
            c->text_len += len + 1;   /* +1: room for the line's eod id in ids[] */
            cnt->bytes += len + 1;
            if (c->text_len >= CHUNK_BYTES || c->lines >= CHUNK_LINES) return 1;
        }
        if (got < 0) return -1;
        input_close(r->in);
        r->in = NULL;
        if (c->lines) return 1;
    }
}

/* Worker threads tokenize the lines of the submitted chunk; they sleep
 * (rather than spin) between chunks, because the machine may be busy. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    Chunk *chunk;
    const Options *o;
    size_t next_line;
    unsigned generation;
    int running, quit;
} Pool;

static void *worker(void *arg)
{
    Pool *p = arg;
    unsigned seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->work, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        Chunk *c = p->chunk;
        for (;;) {
            /* claim up to 64 lines or 64 KB: long documents (source files)
             * would otherwise leave one worker idle at the end of a chunk */
            size_t first = p->next_line, n = 0, bytes = 0;
            while (first + n < c->lines && n < 64 && bytes < (64u << 10)) bytes += c->len[first + n++];
            p->next_line += n;
            if (!n) break;
            pthread_mutex_unlock(&p->mu);
            tokenize_lines(c, first, n, p->o);
            pthread_mutex_lock(&p->mu);
        }
        if (--p->running == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_submit(Pool *p, Chunk *c, int threads)
{
    pthread_mutex_lock(&p->mu);
    p->chunk = c;
    p->next_line = 0;
    p->running = threads;
    p->generation++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
}

static void pool_wait(Pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->running) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* Every named input is readable, so a missing file (usually a typo) stops the
 * run before the first byte of output: stdout may be a pipe, with nothing to
 * remove afterwards.  access() rather than opening: a FIFO or /dev/fd/N from
 * process substitution must not lose the bytes a zstd probe would read. */
static int check_inputs(char **files, int n, Error *e)
{
    for (int i = 0; i < n; i++)
        if (strcmp(files[i], "-") && access(files[i], R_OK)) return fail(e, "%s: %s", files[i], strerror(errno));
    return 0;
}

/* Single thread: read, tokenize, write.  With -j N, N workers tokenize one
 * chunk while this thread reads the next and writes the previous one. */
int tokpipe_encode(char **files, int nfiles, const Options *o, FILE *out, Counts *counts, Error *e)
{
    /* the first input is open before the stream header is written */
    if (check_inputs(files, nfiles, e)) return -1;
    Reader r = { files, nfiles, 1, input_open(nfiles ? files[0] : "-", e) };
    if (!r.in) return -1;
    TokWriter *w = NULL;
    if (!o->text && !(w = tokw_open(out, e))) { input_close(r.in); return -1; }
    Chunk chunks[2] = { { 0 }, { 0 } };
    Chunk *cur = &chunks[0], *nxt = &chunks[1];
    Counts cnt = { 0 };
    Pool pool = { .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
                  .done = PTHREAD_COND_INITIALIZER, .o = o };
    pthread_t tid[1024];
    int started = 0, rc = 0, got;
    if (o->threads > 1)
        for (; started < o->threads; started++)
            if (pthread_create(&tid[started], NULL, worker, &pool)) { rc = fail(e, "cannot start threads"); break; }

    if (!rc && (got = read_chunk(&r, cur, &cnt, e)) < 0) rc = -1;
    if (!rc && got && started) pool_submit(&pool, cur, started);
    while (!rc && cur->lines) {
        if (!started) {
            tokenize_lines(cur, 0, cur->lines, o);
            if (read_chunk(&r, nxt, &cnt, e) < 0) rc = -1;
        } else {
            if (read_chunk(&r, nxt, &cnt, e) < 0) { rc = -1; nxt->lines = 0; }
            pool_wait(&pool);
            if (!rc && nxt->lines) pool_submit(&pool, nxt, started);
        }
        if (!rc) rc = write_chunk(cur, o, out, w, &cnt, e);
        if (rc && started && nxt->lines) pool_wait(&pool);   /* let the workers finish before freeing */
        if (!rc && o->on_progress) o->on_progress(o->ctx, &cnt);
        Chunk *t = cur; cur = nxt; nxt = t;
    }
    if (started) {
        pthread_mutex_lock(&pool.mu);
        pool.quit = 1;
        pthread_cond_broadcast(&pool.work);
        pthread_mutex_unlock(&pool.mu);
        for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    }
    if (r.in) input_close(r.in);
    chunk_free(&chunks[0]);
    chunk_free(&chunks[1]);
    if (counts) *counts = cnt;
    if (rc) { tokw_free(w); return -1; }   /* no closing record: the stream stays incomplete */
    if (w && tokw_close(w, e)) return -1;
    return 0;
}

/* ---- decoding ---- */

/* Decoding state: the output and a reusable byte buffer. */
typedef struct {
    FILE *out;
    uint8_t *buf;
    size_t cap;
} Decoder;

static int emit_decoded(Decoder *d, const Vocab *v, const uint32_t *ids, size_t n, const char *where, Error *e)
{
    size_t len = 0, bad;
    if (tokenizer_decode(v, ids, n, &d->buf, &len, &d->cap, &bad, e)) return fail_prefix(e, "%s", where);
    if ((len && fwrite(d->buf, 1, len, d->out) != len) || putc('\n', d->out) == EOF) return fail(e, "write failed");
    return 0;
}

static int read_full(Input *in, void *buf, size_t n, Error *e)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = input_read(in, (char *)buf + got, n - got, e);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (int)(got == n) ;
}

static int decode_binary(Decoder *d, Input *in, const Vocab *v, Error *e)
{
    const char *name = input_name(in);
    uint32_t *ids = NULL;
    size_t cap = 0;
    uint64_t docs = 0, tokens = 0;
    XXH3_state_t *h = XXH3_createState();
    int rc = -1;
    if (!h) { fail(e, "out of memory"); goto out; }
    XXH3_64bits_reset(h);
    for (;;) {
        uint32_t n;
        int r = read_full(in, &n, 4, e);
        if (r < 0) goto out;
        if (r == 0) { fail(e, "%s: token stream has no closing record (its producer failed or was cut short)", name); goto out; }
        if (n == TOKSTREAM_END) {
            uint64_t tail[3];
            if ((r = read_full(in, tail, sizeof tail, e)) <= 0) { if (!r) fail(e, "%s: truncated closing record", name); goto out; }
            if (tail[0] != docs || tail[1] != tokens || tail[2] != XXH3_64bits_digest(h)) {
                fail(e, "%s: closing record does not match the stream (corrupt)", name);
                goto out;
            }
            char extra;
            if ((r = read_full(in, &extra, 1, e)) != 0) { if (r > 0) fail(e, "%s: data after the closing record", name); goto out; }
            rc = 0;
            goto out;
        }
        if (n > TOKSTREAM_MAX_DOC) { fail(e, "%s: document %llu: bad length %u", name, (unsigned long long)docs + 1, n); goto out; }
        if (n > cap) {
            uint32_t *nb = realloc(ids, (size_t)n * sizeof *ids);
            if (!nb) { fail(e, "out of memory"); goto out; }
            ids = nb;
            cap = n;
        }
        if ((r = read_full(in, ids, (size_t)n * 4, e)) <= 0) { if (!r) fail(e, "%s: truncated document %llu", name, (unsigned long long)docs + 1); goto out; }
        XXH3_64bits_update(h, ids, (size_t)n * 4);
        docs++;
        tokens += n;
        char where[512];
        snprintf(where, sizeof where, "%.400s: document %llu", name, (unsigned long long)docs);
        if (emit_decoded(d, v, ids, n, where, e)) goto out;
    }
out:
    XXH3_freeState(h);
    free(ids);
    return rc;
}

/* Ids as text, one document per line.  The first plen bytes were already read
 * (to look for the binary magic), so lines are split here rather than by
 * input_getline. */
static int decode_text_line(Decoder *d, const char *line, size_t len, uint32_t **ids, size_t *cap, const char *where,
                            const Vocab *v, Error *e)
{
    size_t n = 0;
    if (len && line[len - 1] == '\r') len--;
    for (size_t i = 0; i < len;) {
        if (line[i] == ' ' || line[i] == '\t') { i++; continue; }
        uint64_t id = 0;
        size_t j = i;
        while (j < len && line[j] >= '0' && line[j] <= '9' && id <= 0xFFFFFFFFu) id = id * 10 + (uint64_t)(line[j++] - '0');
        if (j == i || (j < len && line[j] != ' ' && line[j] != '\t') || id > 0xFFFFFFFFu)
            return fail(e, "%s: not a token id at column %zu", where, i + 1);
        if (grow(ids, cap, n + 1)) return fail(e, "out of memory");
        (*ids)[n++] = (uint32_t)id;
        i = j;
    }
    return emit_decoded(d, v, *ids, n, where, e);
}

static int decode_text(Decoder *d, Input *in, const char *prefix, size_t plen, const Vocab *v, Error *e)
{
    const char *name = input_name(in);
    uint32_t *ids = NULL;
    /* buf[start..blen) is unprocessed; it is moved to the front only before a
     * read, so each byte moves at most once per read (not once per line). */
    size_t cap = 0, bcap = 1 << 16, blen = plen, start = 0;
    char *buf = malloc(bcap);
    uint64_t lineno = 0;
    int rc = 0, eof = 0;
    if (!buf) return fail(e, "out of memory");
    memcpy(buf, prefix, plen);
    while (!rc) {
        char *line = buf + start;
        size_t avail = blen - start;
        char *nl = memchr(line, '\n', avail);
        if (!nl && !eof) {
            if (start) {
                memmove(buf, line, avail);
                blen = avail;
                start = 0;
            }
            if (grow(&buf, &bcap, blen + 1)) { rc = fail(e, "out of memory"); break; }
            ssize_t r = input_read(in, buf + blen, bcap - blen, e);
            if (r < 0) { rc = -1; break; }
            if (r == 0) eof = 1;
            blen += (size_t)r;
            continue;
        }
        if (!nl && !avail) break;
        size_t len = nl ? (size_t)(nl - line) : avail;
        char where[512];
        snprintf(where, sizeof where, "%.400s:%llu", name, (unsigned long long)++lineno);
        rc = decode_text_line(d, line, len, &ids, &cap, where, v, e);
        start += nl ? len + 1 : len;
    }
    free(buf);
    free(ids);
    return rc;
}

static int decode_input(Decoder *d, const char *path, const Vocab *v, Error *e)
{
    Input *in = input_open(path, e);
    if (!in) return -1;
    char magic[8];
    size_t got = 0;
    int rc = 0;
    while (got < 8) {
        ssize_t r = input_read(in, magic + got, 8 - got, e);
        if (r < 0) { rc = -1; break; }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (!rc) rc = got == 8 && !memcmp(magic, TOKSTREAM_MAGIC, 8) ? decode_binary(d, in, v, e)
                                                                 : decode_text(d, in, magic, got, v, e);
    input_close(in);
    return rc;
}

static int all_numeric(char **args, int n)
{
    for (int i = 0; i < n; i++) {
        if (!*args[i]) return 0;
        for (const char *p = args[i]; *p; p++) if (!isdigit((unsigned char)*p)) return 0;
    }
    return n > 0;
}

int tokpipe_decode(char **args, int n, const Vocab *v, FILE *out, Error *e)
{
    Decoder d = { out, NULL, 0 };
    int rc = 0;
    if (all_numeric(args, n)) {
        uint32_t *ids = malloc((size_t)n * sizeof *ids);
        if (!ids) return fail(e, "out of memory");
        for (int i = 0; i < n && !rc; i++) {
            uint64_t id;
            if (parse_u64(args[i], &id) || id > 0xFFFFFFFFu) rc = fail(e, "bad token id '%s'", args[i]);
            else ids[i] = (uint32_t)id;
        }
        if (!rc) rc = emit_decoded(&d, v, ids, (size_t)n, "arguments", e);
        free(ids);
    } else {
        rc = check_inputs(args, n, e);
        for (int i = 0; i < (n ? n : 1) && !rc; i++) rc = decode_input(&d, n ? args[i] : "-", v, e);
    }
    free(d.buf);
    return rc;
}
