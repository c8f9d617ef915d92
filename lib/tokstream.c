#include "tokstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "growbuf.h"

/* ids read per fread while a document arrives (1 MiB) */
#define TOKR_CHUNK_IDS ((size_t)1 << 18)

struct TokWriter {
    FILE *fp;
    XXH3_state_t *hash;
    uint64_t docs, tokens;
};

static int put_u32(FILE *fp, uint32_t v)
{
    unsigned char b[4] = { v, v >> 8, v >> 16, v >> 24 };
    return fwrite(b, 1, 4, fp) == 4 ? 0 : -1;
}
static int put_u64(FILE *fp, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    return fwrite(b, 1, 8, fp) == 8 ? 0 : -1;
}
static uint32_t get_u32(const unsigned char *b)
{
    return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static int write_err(Error *e)
{
    if (errno == EPIPE) return fail(e, "token stream: reader went away (broken pipe)");
    return fail(e, "token stream: write failed: %s", strerror(errno));
}

TokWriter *tokw_open(FILE *fp, Error *e)
{
    TokWriter *w = calloc(1, sizeof *w);
    if (!w || !(w->hash = XXH3_createState())) { free(w); fail(e, "out of memory"); return NULL; }
    XXH3_64bits_reset(w->hash);
    w->fp = fp;
    if (fwrite(TOKSTREAM_MAGIC, 1, 8, fp) != 8) { write_err(e); tokw_free(w); return NULL; }
    return w;
}

int tokw_doc(TokWriter *w, const uint32_t *ids, size_t n, Error *e)
{
    if (n > TOKSTREAM_MAX_DOC) return fail(e, "document of %zu tokens is too long", n);
    if (put_u32(w->fp, (uint32_t)n)) return write_err(e);
    /* ids are host order; this project targets little-endian hosts (checked in tokw tests). */
    if (n && fwrite(ids, 4, n, w->fp) != n) return write_err(e);
    XXH3_64bits_update(w->hash, ids, n * 4);
    w->docs++;
    w->tokens += n;
    return 0;
}

int tokw_close(TokWriter *w, Error *e)
{
    int rc = 0;
    if (put_u32(w->fp, TOKSTREAM_END) || put_u64(w->fp, w->docs) || put_u64(w->fp, w->tokens) ||
        put_u64(w->fp, XXH3_64bits_digest(w->hash)) || fflush(w->fp))
        rc = write_err(e);
    tokw_free(w);
    return rc;
}

void tokw_free(TokWriter *w)
{
    if (!w) return;
    XXH3_freeState(w->hash);
    free(w);
}

struct TokReader {
    FILE *fp;
    char *name;
    XXH3_state_t *hash;
    uint64_t docs, tokens;
    uint32_t *ids;
    size_t cap;
    int done;
};

TokReader *tokr_open(FILE *fp, const char *name, Error *e)
{
    TokReader *r = calloc(1, sizeof *r);
    if (!r || !(r->hash = XXH3_createState()) || !(r->name = strdup(name))) {
        tokr_free(r);
        fail(e, "out of memory");
        return NULL;
    }
    XXH3_64bits_reset(r->hash);
    r->fp = fp;
    unsigned char magic[8];
    size_t got = fread(magic, 1, 8, fp);
    if (ferror(fp)) {   /* e.g. a directory: say why, not "not a token stream" */
        fail(e, "%s: read error: %s", name, strerror(errno));
        tokr_free(r);
        return NULL;
    }
    if (got == 0) {
        fail(e, "%s: empty token stream (did the producer fail?)", name);
        tokr_free(r);
        return NULL;
    }
    if (got != 8 || memcmp(magic, TOKSTREAM_MAGIC, 8) != 0) {
        fail(e, "%s: not a token stream (expected rwkv-tokenize output)", name);
        tokr_free(r);
        return NULL;
    }
    return r;
}

static int cut_short(TokReader *r, Error *e)
{
    if (ferror(r->fp)) return fail(e, "%s: read error: %s", r->name, strerror(errno));
    return fail(e, "%s: token stream ended without its closing record after %llu documents "
                   "(the producer failed or was interrupted); nothing written",
                r->name, (unsigned long long)r->docs);
}

int tokr_next(TokReader *r, const uint32_t **ids, size_t *n, Error *e)
{
    if (r->done) return 0;
    unsigned char b[24];
    if (fread(b, 1, 4, r->fp) != 4) return cut_short(r, e);
    uint32_t len = get_u32(b);
    if (len == TOKSTREAM_END) {
        if (fread(b, 1, 24, r->fp) != 24) return cut_short(r, e);
        uint64_t docs = get_u64(b), toks = get_u64(b + 8), sum = get_u64(b + 16);
        if (docs != r->docs || toks != r->tokens)
            return fail(e, "%s: closing record says %llu documents / %llu tokens, stream had %llu / %llu",
                        r->name, (unsigned long long)docs, (unsigned long long)toks,
                        (unsigned long long)r->docs, (unsigned long long)r->tokens);
        if (sum != XXH3_64bits_digest(r->hash))
            return fail(e, "%s: token stream checksum mismatch (corrupted stream)", r->name);
        if (fgetc(r->fp) != EOF)
            return fail(e, "%s: data after the closing record", r->name);
        r->done = 1;
        return 0;
    }
    if (len > TOKSTREAM_MAX_DOC)
        return fail(e, "%s: bad document length %u (corrupted stream)", r->name, len);
    /* The buffer grows as the ids arrive, not to the claimed length up front:
     * a few corrupt bytes may claim 16 GiB, and must read as a cut stream. */
    for (size_t have = 0; have < len;) {
        size_t chunk = len - have < TOKR_CHUNK_IDS ? len - have : TOKR_CHUNK_IDS;
        if (grow(&r->ids, &r->cap, have + chunk)) return fail(e, "out of memory");
        if (fread(r->ids + have, 4, chunk, r->fp) != chunk) return cut_short(r, e);
        have += chunk;
    }
    XXH3_64bits_update(r->hash, r->ids, (size_t)len * 4);
    r->docs++;
    r->tokens += len;
    *ids = r->ids;
    *n = len;
    return 1;
}

uint64_t tokr_documents(const TokReader *r) { return r->docs; }
uint64_t tokr_tokens(const TokReader *r) { return r->tokens; }

void tokr_free(TokReader *r)
{
    if (!r) return;
    if (r->hash) XXH3_freeState(r->hash);
    free(r->ids);
    free(r->name);
    free(r);
}
