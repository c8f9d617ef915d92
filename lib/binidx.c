#include "binidx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "growbuf.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "binidx.c assumes a little-endian host (the file format is little-endian)"
#endif

static uint64_t load_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t load_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }

const char *binidx_dtype_name(int dtype)
{
    switch (dtype) {
    case 1: return "uint8";
    case 2: return "int8";
    case 3: return "int16";
    case 4: return "int32";
    case 5: return "int64";
    case 6: return "float64";
    case 7: return "float32/float64";
    case 8: return "uint16";
    default: return "unknown";
    }
}

uint32_t binidx_size(const BinidxIndex *ix, uint64_t i) { return load_u32(ix->sizes + 4 * i); }
uint64_t binidx_pointer(const BinidxIndex *ix, uint64_t i) { return load_u64(ix->pointers + 8 * i); }
uint64_t binidx_doc_idx(const BinidxIndex *ix, uint64_t i) { return load_u64(ix->doc_idx + 8 * i); }

/* ---- reader ---- */

int binidx_parse_index(const void *buf, size_t len, const char *name, BinidxIndex *ix, Error *e)
{
    const unsigned char *p = buf;
    memset(ix, 0, sizeof *ix);
    if (len < BINIDX_HEADER_BYTES)
        return fail(e, "%s: %zu bytes, too short for the %d-byte MMIDIDX header (truncated?)",
                    name, len, BINIDX_HEADER_BYTES);
    if (memcmp(p, BINIDX_MAGIC, 9) != 0)
        return fail(e, "%s: bad magic (not a Megatron MMIDIDX index file)", name);
    uint64_t version = load_u64(p + 9);
    if (version != 1)
        return fail(e, "%s: unsupported version %llu (expected 1)", name, (unsigned long long)version);
    int dtype = p[17];
    if (dtype != BINIDX_UINT16 && dtype != BINIDX_INT32)
        return fail(e, "%s: dtype code %d (%s) is not a token type; expected 8 (uint16) or 4 (int32)",
                    name, dtype, binidx_dtype_name(dtype));
    uint64_t S = load_u64(p + 18), D = load_u64(p + 26);
    if (S > BINIDX_MAX_SEQUENCES)
        return fail(e, "%s: %llu sequences is more than the format allows (corrupt header?)",
                    name, (unsigned long long)S);
    if (D < 1)
        return fail(e, "%s: document index count is 0 (it holds at least the leading 0)", name);
    /* S < 2^31, so 12*S cannot overflow; compare D against what is left. */
    uint64_t arrays = 12 * S;
    uint64_t rest = len - BINIDX_HEADER_BYTES;
    if (rest < arrays || (rest - arrays) / 8 < D || (rest - arrays) != 8 * D) {
        char need[64] = "more than any file holds";
        if (D < (1ull << 58))
            snprintf(need, sizeof need, "%llu", (unsigned long long)(BINIDX_HEADER_BYTES + arrays + 8 * D));
        return fail(e, "%s: %zu bytes, but its header (%llu sequences, %llu document-index entries) "
                       "needs %s (truncated or corrupt index)", name, len,
                    (unsigned long long)S, (unsigned long long)D, need);
    }
    ix->dtype = dtype;
    ix->itemsize = dtype == BINIDX_UINT16 ? 2 : 4;
    ix->sequences = S;
    ix->doc_idx_len = D;
    ix->sizes = p + BINIDX_HEADER_BYTES;
    ix->pointers = ix->sizes + 4 * S;
    ix->doc_idx = ix->pointers + 8 * S;

    uint64_t offset = 0;
    for (uint64_t i = 0; i < S; i++) {
        int32_t size = (int32_t)binidx_size(ix, i);
        uint64_t ptr = binidx_pointer(ix, i);
        if (size < 0)
            return fail(e, "%s: sizes[%llu] = %d is negative", name, (unsigned long long)i, size);
        if (ptr != offset)
            return fail(e, "%s: pointers[%llu] = %llu, but the sizes before it put it at %llu "
                           "(sizes and pointers disagree)", name, (unsigned long long)i,
                        (unsigned long long)ptr, (unsigned long long)offset);
        offset += (uint64_t)size * ix->itemsize;   /* < 2^31 * 2^31 * 4: no overflow */
    }
    ix->bin_bytes = offset;

    uint64_t prev = binidx_doc_idx(ix, 0);
    if (prev != 0)
        return fail(e, "%s: doc_idx[0] = %llu, expected 0", name, (unsigned long long)prev);
    for (uint64_t i = 1; i < D; i++) {
        uint64_t v = binidx_doc_idx(ix, i);
        if (v < prev || v > S)
            return fail(e, "%s: doc_idx[%llu] = %lld is out of order or past the %llu sequences",
                        name, (unsigned long long)i, (long long)v, (unsigned long long)S);
        prev = v;
    }
    if (prev != S)
        return fail(e, "%s: the document index ends at %llu, not at the sequence count %llu",
                    name, (unsigned long long)prev, (unsigned long long)S);
    return 0;
}

/* Map a whole regular file read-only; an empty file maps to NULL.  A FIFO or
 * device is refused at once (open_regular never waits for a FIFO's writer). */
static int map_file(const char *path, void **map, size_t *len, Error *e)
{
    *map = NULL;
    *len = 0;
    int fd = open_regular(path, e);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) { int r = fail(e, "%s: %s", path, strerror(errno)); close(fd); return r; }
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) { int r = fail(e, "%s: mmap: %s", path, strerror(errno)); close(fd); return r; }
        *map = m;
        *len = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

char *binidx_prefix(const char *arg)
{
    size_t n = strlen(arg);
    char *p = strdup(arg);
    if (p && n > 4 && (strcmp(arg + n - 4, ".bin") == 0 || strcmp(arg + n - 4, ".idx") == 0))
        p[n - 4] = 0;
    return p;
}

static char *with_ext(const char *prefix, const char *ext)
{
    size_t n = strlen(prefix) + strlen(ext) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", prefix, ext);
    return s;
}

/* Writers of a dataset hold an exclusive flock(2) on the directory that holds
 * it while they put both files in place, readers a shared one while they open
 * both: a reader never pairs the .bin of one writer with the .idx of another,
 * and concurrent writers publish whole pairs in turn (the last one wins).  A
 * lock on the directory itself leaves no file behind.  Returns the locked
 * descriptor, or -1 where the directory cannot be opened or locked (NFS locks
 * only files open for writing): then the caller goes ahead unlocked. */
static int lock_dataset_dir(const char *file, int op)
{
    char *copy = strdup(file);
    int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(copy);
    if (fd < 0) return -1;
    while (flock(fd, op) != 0)
        if (errno != EINTR) { close(fd); return -1; }
    return fd;
}

static void unlock_dataset_dir(int fd)
{
    if (fd >= 0) close(fd);   /* closing the only descriptor releases the flock */
}

void binidx_close(BinidxDataset *ds)
{
    if (ds->idx_map) munmap(ds->idx_map, ds->idx_len);
    if (ds->bin_map) munmap(ds->bin_map, ds->bin_len);
    free(ds->bin_path);
    free(ds->idx_path);
    memset(ds, 0, sizeof *ds);
}

int binidx_open(const char *prefix_arg, BinidxDataset *ds, Error *e)
{
    memset(ds, 0, sizeof *ds);
    char *prefix = binidx_prefix(prefix_arg);
    if (prefix) {
        ds->idx_path = with_ext(prefix, ".idx");
        ds->bin_path = with_ext(prefix, ".bin");
    }
    free(prefix);
    if (!ds->idx_path || !ds->bin_path) { binidx_close(ds); return fail(e, "out of memory"); }
    int lock = lock_dataset_dir(ds->idx_path, LOCK_SH);
    int bad = map_file(ds->idx_path, &ds->idx_map, &ds->idx_len, e) ||
              binidx_parse_index(ds->idx_map, ds->idx_len, ds->idx_path, &ds->index, e) ||
              map_file(ds->bin_path, &ds->bin_map, &ds->bin_len, e);
    unlock_dataset_dir(lock);
    if (bad) {
        binidx_close(ds);
        return -1;
    }
    if (ds->bin_len != ds->index.bin_bytes) {
        int r = fail(e, "%s: %zu bytes, but %s describes %llu (a truncated .bin, or files from "
                        "different datasets)", ds->bin_path, ds->bin_len, ds->idx_path,
                     (unsigned long long)ds->index.bin_bytes);
        binidx_close(ds);
        return r;
    }
    ds->tokens = ds->bin_map;
    ds->token_count = ds->bin_len / ds->index.itemsize;
    ds->documents = ds->index.doc_idx_len - 1;
    return 0;
}

int binidx_scan(const BinidxDataset *ds, BinidxStats *st, Error *e)
{
    memset(st, 0, sizeof *st);
    const BinidxIndex *ix = &ds->index;
    st->idx_xxh3 = XXH3_64bits(ds->idx_map, ds->idx_len);
    XXH3_state_t *h = XXH3_createState();
    if (!h) return fail(e, "out of memory");
    XXH3_64bits_reset(h);
    /* Chunked, so the hash and the range check share one pass through memory. */
    const size_t chunk = 1 << 20;
    const unsigned char *bytes = ds->tokens;
    uint64_t max_id = 0, negative = 0;
    for (size_t off = 0; off < ds->bin_len; off += chunk) {
        size_t len = ds->bin_len - off < chunk ? ds->bin_len - off : chunk;
        XXH3_64bits_update(h, bytes + off, len);
        if (ix->itemsize == 2) {
            const uint16_t *t = (const uint16_t *)(bytes + off);
            uint16_t m = 0;
            for (size_t i = 0; i < len / 2; i++) m = t[i] > m ? t[i] : m;
            if (m > max_id) max_id = m;
        } else {
            const int32_t *t = (const int32_t *)(bytes + off);
            int32_t m = 0;
            uint64_t neg = 0;
            for (size_t i = 0; i < len / 4; i++) {
                m = t[i] > m ? t[i] : m;
                neg += t[i] < 0;
            }
            if ((uint64_t)m > max_id) max_id = (uint64_t)m;
            negative += neg;
        }
    }
    st->bin_xxh3 = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    for (uint64_t i = 0; i < ix->sequences; i++) {
        uint32_t size = binidx_size(ix, i);
        uint64_t last = binidx_pointer(ix, i) / ix->itemsize + size - 1;
        if (size == 0 || binidx_token(ds, last) != 0) st->without_eod++;
    }
    st->max_id = max_id;
    st->negative_ids = negative;
    return 0;
}

/* ---- writer ---- */

#define OUTBUF_ITEMS (1u << 18)

struct BinidxWriter {
    AtomicFile bin, idx;
    char *bin_path;                  /* PREFIX.bin as given: the lock's directory */
    char *source;                    /* names the input in messages about the ids; may be NULL */
    int bin_open, idx_open;
    int dtype;
    unsigned itemsize;
    uint64_t tokens;                 /* tokens written to .bin (buffered included) */
    uint32_t *sizes;                 /* per sequence */
    uint64_t nsizes;
    size_t cap_sizes;
    uint64_t *doc_idx;               /* starts with 0; NULL while it is 0, 1, ..., ndoc-1 */
    uint64_t ndoc;                   /* (the RWKV case, kept implicit to save 8 bytes a document) */
    size_t cap_doc;
    unsigned char *buf;              /* pending .bin bytes */
    size_t nbuf;                     /* bytes pending */
};

uint64_t binidx_writer_documents(const BinidxWriter *w) { return w->ndoc - 1; }
uint64_t binidx_writer_tokens(const BinidxWriter *w) { return w->tokens; }
int binidx_writer_dtype(const BinidxWriter *w) { return w->dtype; }

int binidx_prefix_check(const char *prefix_arg, Error *e)
{
    char *prefix = binidx_prefix(prefix_arg);
    if (!prefix) return fail(e, "out of memory");
    size_t n = strlen(prefix);
    int bad = n == 0 || prefix[n - 1] == '/';
    free(prefix);
    if (bad)
        return fail(e, "'%s': the output prefix names no file (want e.g. data/demo for "
                       "data/demo.bin + data/demo.idx)", prefix_arg);
    return 0;
}

BinidxWriter *binidx_writer_open(const char *prefix_arg, int overwrite, Error *e)
{
    if (binidx_prefix_check(prefix_arg, e)) return NULL;
    BinidxWriter *w = calloc(1, sizeof *w);
    char *prefix = binidx_prefix(prefix_arg);
    char *bin = prefix ? with_ext(prefix, ".bin") : NULL;
    char *idx = prefix ? with_ext(prefix, ".idx") : NULL;
    free(prefix);
    if (!w || !bin || !idx || !(w->buf = malloc(OUTBUF_ITEMS * 4))) {
        fail(e, "out of memory");
        goto fail;
    }
    /* Both must be regular files: the .bin is re-read when it widens to int32,
     * and a pair is only a dataset when both names hold it. */
    int flags = ATOMIC_REGULAR_ONLY | (overwrite ? ATOMIC_OVERWRITE : 0);
    if (atomic_open(&w->bin, bin, flags, e)) goto fail;
    w->bin_open = 1;
    if (atomic_open(&w->idx, idx, flags, e)) goto fail;
    w->idx_open = 1;
    w->bin_path = bin;
    free(idx);
    w->dtype = BINIDX_UINT16;
    w->itemsize = 2;
    w->ndoc = 1;
    return w;
fail:
    free(bin);
    free(idx);
    if (w) binidx_writer_abort(w);
    return NULL;
}

int binidx_writer_set_source(BinidxWriter *w, const char *name, Error *e)
{
    free(w->source);
    w->source = name ? strdup(name) : NULL;
    return name && !w->source ? fail(e, "out of memory") : 0;
}

/* "SOURCE: document N: " before a message about the ids being added. */
static int fail_input(BinidxWriter *w, Error *e)
{
    if (w->source) fail_prefix(e, "%s: document %llu", w->source, (unsigned long long)w->nsizes);
    return -1;
}

void binidx_writer_abort(BinidxWriter *w)
{
    if (!w) return;
    if (w->bin_open) atomic_abort(&w->bin);
    if (w->idx_open) atomic_abort(&w->idx);
    free(w->sizes);
    free(w->doc_idx);
    free(w->buf);
    free(w->bin_path);
    free(w->source);
    free(w);
}

static int flush_buf(BinidxWriter *w, Error *e)
{
    if (w->nbuf && fwrite(w->buf, 1, w->nbuf, w->bin.fp) != w->nbuf)
        return fail(e, "%s: write failed: %s", w->bin.path, strerror(errno));
    w->nbuf = 0;
    return 0;
}

/* Rewrite the uint16 tokens written so far as int32, in place.  Working from
 * the end keeps every source byte unread-over: item i moves from 2i to 4i. */
static int widen_to_int32(BinidxWriter *w, Error *e)
{
    if (flush_buf(w, e)) return -1;
    if (fflush(w->bin.fp) != 0) return fail(e, "%s: write failed: %s", w->bin.path, strerror(errno));
    /* The temporary is open read-write (a regular file: binidx_writer_open refuses
     * devices and FIFOs); stdio's buffer is empty now, so pread/pwrite are safe. */
    int fd = fileno(w->bin.fp);
    const uint64_t step = OUTBUF_ITEMS / 2;        /* items per round: 4*step bytes out */
    uint16_t *in = (uint16_t *)w->buf;
    int32_t *out = (int32_t *)(w->buf + 2 * step);
    uint64_t end = w->tokens;
    while (end > 0) {
        uint64_t n = end > step ? step : end, start = end - n;
        if (pread(fd, in, 2 * n, (off_t)(2 * start)) != (ssize_t)(2 * n))
            return fail(e, "%s: re-reading to widen to int32 failed: %s", w->bin.path, strerror(errno));
        for (uint64_t i = n; i-- > 0;) out[i] = in[i];
        if (pwrite(fd, out, 4 * n, (off_t)(4 * start)) != (ssize_t)(4 * n))
            return fail(e, "%s: widening to int32 failed: %s", w->bin.path, strerror(errno));
        end = start;
    }
    if (fseeko(w->bin.fp, (off_t)(4 * w->tokens), SEEK_SET) != 0)
        return fail(e, "%s: seek failed: %s", w->bin.path, strerror(errno));
    w->dtype = BINIDX_INT32;
    w->itemsize = 4;
    return 0;
}

/* Append tokens to .bin (not to the index). */
static int put_tokens(BinidxWriter *w, const uint32_t *ids, size_t n, Error *e)
{
    size_t i = 0;
    while (i < n) {
        size_t room = (OUTBUF_ITEMS * 4 - w->nbuf) / w->itemsize;
        if (room == 0) {
            if (flush_buf(w, e)) return -1;
            continue;
        }
        size_t take = n - i < room ? n - i : room, done = 0;
        if (w->itemsize == 2) {
            uint16_t *o = (uint16_t *)(w->buf + w->nbuf);
            uint32_t over = 0;
            for (size_t k = 0; k < take; k++) { o[k] = (uint16_t)ids[i + k]; over |= ids[i + k]; }
            if (over <= 0xFFFF) done = take;
            else {   /* find the first wide id; keep what precedes it, widen, retry the rest */
                while (ids[i + done] <= 0xFFFF) done++;
            }
            w->nbuf += 2 * done;
            w->tokens += done;
            i += done;
            if (done < take && widen_to_int32(w, e)) return -1;
        } else {
            int32_t *o = (int32_t *)(w->buf + w->nbuf);
            for (size_t k = 0; k < take; k++) {
                if (ids[i + k] > INT32_MAX) {
                    fail(e, "token id %u does not fit the int32 binidx format (ids above %d)",
                         ids[i + k], INT32_MAX);
                    return fail_input(w, e);
                }
                o[k] = (int32_t)ids[i + k];
            }
            w->nbuf += 4 * take;
            w->tokens += take;
            i += take;
        }
    }
    return 0;
}

static int add_sequence(BinidxWriter *w, uint64_t n, Error *e)
{
    if (n > INT32_MAX) {
        fail(e, "%llu tokens is too long for binidx (int32 sizes)", (unsigned long long)n);
        return fail_input(w, e);
    }
    if (w->nsizes >= BINIDX_MAX_SEQUENCES)
        return fail(e, "%s: more than 2^31-1 documents in one dataset", w->bin_path);
    if (grow(&w->sizes, &w->cap_sizes, w->nsizes + 1)) return fail(e, "out of memory");
    w->sizes[w->nsizes++] = (uint32_t)n;
    return 0;
}

static int end_document(BinidxWriter *w, uint64_t seq_end, Error *e)
{
    if (!w->doc_idx && seq_end == w->ndoc) {   /* still 0, 1, 2, ... */
        w->ndoc++;
        return 0;
    }
    int implicit = !w->doc_idx;
    if (grow(&w->doc_idx, &w->cap_doc, w->ndoc + 1)) return fail(e, "out of memory");
    if (implicit)
        for (uint64_t i = 0; i < w->ndoc; i++) w->doc_idx[i] = i;
    w->doc_idx[w->ndoc++] = seq_end;
    return 0;
}

int binidx_writer_add(BinidxWriter *w, const uint32_t *ids, size_t n, Error *e)
{
    if (add_sequence(w, n, e) || put_tokens(w, ids, n, e)) return -1;
    return end_document(w, w->nsizes, e);
}

int binidx_writer_append(BinidxWriter *w, const BinidxDataset *ds, Error *e)
{
    const BinidxIndex *ix = &ds->index;
    uint64_t base = w->nsizes;
    if (base + ix->sequences > BINIDX_MAX_SEQUENCES)
        return fail(e, "%s: more than 2^31-1 documents in one dataset", w->bin_path);
    for (uint64_t i = 0; i < ix->sequences; i++)
        if (add_sequence(w, binidx_size(ix, i), e)) return -1;
    for (uint64_t i = 1; i < ix->doc_idx_len; i++)
        if (end_document(w, base + binidx_doc_idx(ix, i), e)) return -1;
    /* Tokens: copy uint16 into uint16 directly; otherwise go through put_tokens,
     * which widens or narrows-by-checking as needed. */
    if (ix->itemsize == 2 && w->itemsize == 2) {
        if (flush_buf(w, e)) return -1;
        if (ds->bin_len && fwrite(ds->tokens, 1, ds->bin_len, w->bin.fp) != ds->bin_len)
            return fail(e, "%s: write failed: %s", w->bin.path, strerror(errno));
        w->tokens += ds->token_count;
        return 0;
    }
    uint32_t tmp[4096];
    for (uint64_t i = 0; i < ds->token_count;) {
        size_t n = ds->token_count - i < 4096 ? (size_t)(ds->token_count - i) : 4096;
        for (size_t k = 0; k < n; k++) {
            uint32_t t = binidx_token(ds, i + k);
            if (ix->itemsize == 4 && t > INT32_MAX)
                return fail(e, "%s: token %llu is negative (%d)", ds->bin_path,
                            (unsigned long long)(i + k), (int32_t)t);
            tmp[k] = t;
        }
        if (put_tokens(w, tmp, n, e)) return -1;
        i += n;
    }
    return 0;
}

static int write_index(BinidxWriter *w, Error *e)
{
    FILE *f = w->idx.fp;
    unsigned char hdr[BINIDX_HEADER_BYTES];
    uint64_t one = 1, S = w->nsizes, D = w->ndoc;
    memcpy(hdr, BINIDX_MAGIC, 9);
    memcpy(hdr + 9, &one, 8);
    hdr[17] = (unsigned char)w->dtype;
    memcpy(hdr + 18, &S, 8);
    memcpy(hdr + 26, &D, 8);
    int ok = fwrite(hdr, 1, sizeof hdr, f) == sizeof hdr;
    ok = ok && (S == 0 || fwrite(w->sizes, 4, S, f) == S);
    uint64_t ptr = 0, block[1024];
    for (uint64_t i = 0; ok && i < S;) {
        size_t n = 0;
        for (; n < 1024 && i < S; n++, i++) {
            block[n] = ptr;
            ptr += (uint64_t)w->sizes[i] * w->itemsize;
        }
        ok = fwrite(block, 8, n, f) == n;
    }
    if (w->doc_idx) {
        ok = ok && fwrite(w->doc_idx, 8, D, f) == D;
    } else {
        for (uint64_t i = 0; ok && i < D;) {
            size_t n = 0;
            for (; n < 1024 && i < D; n++, i++) block[n] = i;
            ok = fwrite(block, 8, n, f) == n;
        }
    }
    if (!ok) return fail(e, "%s: write failed: %s", w->idx.path, strerror(errno));
    return 0;
}

int binidx_writer_commit(BinidxWriter *w, Error *e)
{
    /* Both files complete and on disk before either old name is touched, so a
     * full disk or a size limit leaves an old dataset as it was. */
    if (flush_buf(w, e) || write_index(w, e) || atomic_sync(&w->bin, e) || atomic_sync(&w->idx, e)) {
        w->bin_open = w->bin.fp != NULL;   /* atomic_sync aborts what it fails on */
        w->idx_open = w->idx.fp != NULL;
        binidx_writer_abort(w);
        return -1;
    }
    int lock = lock_dataset_dir(w->bin_path, LOCK_EX);
    AtomicFile *pair[2] = { &w->bin, &w->idx };   /* .bin first: an .idx in place means its .bin is */
    int rc = atomic_commit_all(pair, 2, e);
    unlock_dataset_dir(lock);
    w->bin_open = w->idx_open = 0;   /* committed or aborted */
    binidx_writer_abort(w);          /* frees */
    return rc;
}
