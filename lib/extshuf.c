/* extshuf.c: in-memory and external line shuffles (see extshuf.h).
 *
 * Why the external shuffle is uniform: give every line an independent label
 * drawn uniformly from K buckets, then order the lines by bucket and, inside
 * a bucket, by an independent uniform shuffle.  This is the same as giving
 * every line an i.i.d. continuous key U (bucket = floor(K*U), order within a
 * bucket by U) and sorting by U, which yields every permutation with equal
 * probability: given which lines landed in which bucket, the order inside each
 * bucket is uniform and independent of the rest, so replacing "sort by U"
 * with any uniform shuffle of the bucket (in memory, or this same procedure
 * again for a bucket still over budget) keeps the distribution. */
#define _GNU_SOURCE
#include "extshuf.h"
#include "growbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define PER_LINE_COST 16   /* bytes of index per line: its offset + a permutation slot */
#define MAX_DEPTH 4        /* bucket levels before falling back to an index shuffle */
#define COPY_CHUNK (1 << 16)

struct ExtShuf {
    uint64_t budget;
    char *tmpdir;
    int max_buckets;
    uint64_t n, bytes;            /* lines added and their bytes including "\n" */
    /* in memory: lines back to back, each ending in '\n' */
    char *arena;
    size_t arena_len, arena_cap;
    uint64_t *starts;             /* starts[i]: offset of line i in arena */
    size_t starts_cap;
    uint64_t *perm;               /* the list that every copy shuffles again */
    /* external: the spool file and its write buffer */
    int spool_fd;
    char *wbuf;
    size_t wlen, wcap;
    /* Bucket files, kept open per level and rewritten from offset 0 each time
     * (creating and deleting files per copy costs more than the shuffle). */
    int *pool[MAX_DEPTH];
    int pool_n[MAX_DEPTH];
};

/* ---- helpers ---- */

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* An anonymous temporary file in tmpdir: it has no name (O_TMPFILE), or its
 * name is unlinked at once, with signals held so none lands in between. */
static int temp_file(const ExtShuf *s, Error *e)
{
    int fd = open(s->tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    size_t n = strlen(s->tmpdir) + 32;
    char *path = malloc(n);
    if (!path) return fail(e, "out of memory");
    snprintf(path, n, "%s/rwkv7c-shuf.XXXXXX", s->tmpdir);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT); sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP); sigaddset(&block, SIGPIPE);
    sigprocmask(SIG_BLOCK, &block, &old);
    fd = mkostemp(path, O_CLOEXEC);
    int err = errno;
    if (fd >= 0) unlink(path);
    sigprocmask(SIG_SETMASK, &old, NULL);
    free(path);
    if (fd < 0) return fail(e, "%s: cannot create temporary file: %s", s->tmpdir, strerror(err));
    return fd;
}

static int write_all(int fd, const char *p, size_t n, const ExtShuf *s, Error *e)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return fail(e, "%s: writing temporary file: %s", s->tmpdir, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int pwrite_all(int fd, const char *p, size_t n, uint64_t off, const ExtShuf *s, Error *e)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return fail(e, "%s: writing temporary file: %s", s->tmpdir, strerror(errno));
        }
        p += w; off += (uint64_t)w; n -= (size_t)w;
    }
    return 0;
}

static int pread_all(int fd, char *p, size_t n, uint64_t off, const ExtShuf *s, Error *e)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(e, "%s: reading temporary file: %s", s->tmpdir, strerror(errno));
        if (r == 0) return fail(e, "%s: temporary file shorter than written", s->tmpdir);
        p += r; off += (uint64_t)r; n -= (size_t)r;
    }
    return 0;
}

static int out_error(const char *out_name, Error *e)
{
    return fail(e, "%s: write failed: %s", out_name, errno ? strerror(errno) : "I/O error");
}

/* Copy bytes [off, off+len) of fd to out. */
static int copy_range(const ExtShuf *s, int fd, uint64_t off, uint64_t len, FILE *out, Error *e)
{
    char buf[COPY_CHUNK];
    while (len) {
        size_t k = len < sizeof buf ? (size_t)len : sizeof buf;
        if (pread_all(fd, buf, k, off, s, e)) return -1;
        fwrite_unlocked(buf, 1, k, out);
        off += k;
        len -= k;
    }
    return 0;
}

/* ---- construction ---- */

ExtShuf *extshuf_new(uint64_t memory_budget, const char *tmpdir, Error *e)
{
    ExtShuf *s = calloc(1, sizeof *s);
    if (!s) { fail(e, "out of memory"); return NULL; }
    s->budget = memory_budget ? memory_budget : 1;
    s->spool_fd = -1;
    if (!tmpdir || !*tmpdir) tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir) tmpdir = "/tmp";
    s->tmpdir = strdup(tmpdir);
    if (!s->tmpdir) { free(s); fail(e, "out of memory"); return NULL; }
    /* Every level of buckets keeps its files open while the next one works. */
    struct rlimit rl;
    uint64_t fds = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) fds = rl.rlim_cur;
    s->max_buckets = (int)clamp_u64(fds > 64 ? (fds - 64) / MAX_DEPTH : 2, 2, 1024);
    return s;
}

void extshuf_free(ExtShuf *s)
{
    if (!s) return;
    if (s->spool_fd >= 0) close(s->spool_fd);
    for (int d = 0; d < MAX_DEPTH; d++) {
        for (int i = 0; i < s->pool_n[d]; i++) close(s->pool[d][i]);
        free(s->pool[d]);
    }
    free(s->arena); free(s->starts); free(s->perm); free(s->wbuf); free(s->tmpdir);
    free(s);
}

uint64_t extshuf_count(const ExtShuf *s) { return s->n; }
uint64_t extshuf_bytes(const ExtShuf *s) { return s->bytes; }
int extshuf_external(const ExtShuf *s) { return s->spool_fd >= 0; }

/* ---- adding lines ---- */

static int spool_flush(ExtShuf *s, Error *e)
{
    if (s->wlen && write_all(s->spool_fd, s->wbuf, s->wlen, s, e)) return -1;
    s->wlen = 0;
    return 0;
}

/* Over budget: move what is in memory to the spool file; later lines go there too. */
static int spill(ExtShuf *s, Error *e)
{
    int fd = temp_file(s, e);
    if (fd < 0) return -1;
    s->spool_fd = fd;
    s->wcap = (size_t)clamp_u64(s->budget / 4, 1 << 16, 1 << 22);
    s->wbuf = malloc(s->wcap);
    if (!s->wbuf) return fail(e, "out of memory");
    if (write_all(fd, s->arena, s->arena_len, s, e)) return -1;
    free(s->arena); free(s->starts); free(s->perm);
    s->arena = NULL; s->starts = NULL; s->perm = NULL;
    s->arena_len = s->arena_cap = s->starts_cap = 0;
    return 0;
}

int extshuf_add(ExtShuf *s, const char *line, size_t len, Error *e)
{
    if (s->spool_fd < 0) {
        uint64_t need = s->arena_len + len + 1 + PER_LINE_COST * (s->n + 1);
        if (need > s->budget) {
            if (spill(s, e)) return -1;
        } else {
            if (s->arena_len + len + 1 > s->arena_cap) {
                /* Double, but never past the budget, so the budget is what we hold. */
                size_t want = s->arena_len + len + 1;
                uint64_t cap = s->arena_cap * 2 > 4096 ? s->arena_cap * 2 : 4096;
                if (cap > s->budget) cap = s->budget;
                if (cap < want) cap = want;
                char *p = realloc(s->arena, cap);
                if (!p) return fail(e, "out of memory");
                s->arena = p;
                s->arena_cap = cap;
            }
            if (grow(&s->starts, &s->starts_cap, s->n + 1)) return fail(e, "out of memory");
            s->starts[s->n] = s->arena_len;
            memcpy(s->arena + s->arena_len, line, len);
            s->arena[s->arena_len + len] = '\n';
            s->arena_len += len + 1;
            s->n++;
            s->bytes += len + 1;
            return 0;
        }
    }
    if (s->wlen + len + 1 > s->wcap) {
        if (spool_flush(s, e)) return -1;
        if (len + 1 > s->wcap) {   /* a line longer than the buffer goes straight out */
            if (write_all(s->spool_fd, line, len, s, e) || write_all(s->spool_fd, "\n", 1, s, e))
                return -1;
            s->n++;
            s->bytes += len + 1;
            return 0;
        }
    }
    memcpy(s->wbuf + s->wlen, line, len);
    s->wbuf[s->wlen + len] = '\n';
    s->wlen += len + 1;
    s->n++;
    s->bytes += len + 1;
    return 0;
}

/* ---- external shuffle of one file of '\n'-terminated lines ---- */

static int shuffle_file(ExtShuf *s, int fd, uint64_t bytes, uint64_t lines, int depth,
                        Mt19937 *rng, FILE *out, Error *e);

/* The file fits the budget: read it, shuffle its line offsets, write. */
static int shuffle_loaded(const ExtShuf *s, int fd, uint64_t bytes, uint64_t lines,
                          Mt19937 *rng, FILE *out, Error *e)
{
    char *buf = malloc(bytes ? bytes : 1);
    uint64_t *starts = malloc(lines * sizeof *starts);
    int rc = -1;
    if (!buf || !starts) { fail(e, "out of memory"); goto done; }
    if (pread_all(fd, buf, bytes, 0, s, e)) goto done;
    uint64_t n = 0;
    for (char *p = buf, *end = buf + bytes; p < end && n < lines; n++) {
        starts[n] = (uint64_t)(p - buf);
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        p = nl + 1;
    }
    if (n != lines || buf[bytes - 1] != '\n') {
        fail(e, "%s: temporary file does not hold the lines written", s->tmpdir);
        goto done;
    }
    mt_shuffle(rng, starts, lines);
    for (uint64_t i = 0; i < lines; i++) {
        const char *p = buf + starts[i];
        const char *nl = rawmemchr(p, '\n');
        fwrite_unlocked(p, 1, (size_t)(nl - p) + 1, out);
    }
    rc = 0;
done:
    free(buf);
    free(starts);
    return rc;
}

/* Last resort for buckets that stay over budget (a few very long lines):
 * shuffle an index of (offset, length) and copy each line from the file. */
static int shuffle_by_index(const ExtShuf *s, int fd, uint64_t bytes, uint64_t lines,
                            Mt19937 *rng, FILE *out, Error *e)
{
    uint64_t *starts = malloc((lines + 1) * sizeof *starts);
    uint64_t *perm = malloc(lines * sizeof *perm);
    char *buf = malloc(COPY_CHUNK);
    int rc = -1;
    if (!starts || !perm || !buf) { fail(e, "out of memory"); goto done; }
    uint64_t n = 0, off = 0;
    int at_line_start = 1;
    while (off < bytes) {
        size_t k = bytes - off < COPY_CHUNK ? (size_t)(bytes - off) : COPY_CHUNK;
        if (pread_all(fd, buf, k, off, s, e)) goto done;
        for (size_t i = 0; i < k; i++) {
            if (at_line_start) {
                if (n == lines) { fail(e, "%s: temporary file holds too many lines", s->tmpdir); goto done; }
                starts[n++] = off + i;
            }
            at_line_start = buf[i] == '\n';
        }
        off += k;
    }
    if (n != lines) { fail(e, "%s: temporary file does not hold the lines written", s->tmpdir); goto done; }
    starts[lines] = bytes;
    for (uint64_t i = 0; i < lines; i++) perm[i] = i;
    mt_shuffle(rng, perm, lines);
    for (uint64_t i = 0; i < lines; i++) {
        uint64_t l = perm[i];
        if (copy_range(s, fd, starts[l], starts[l + 1] - starts[l], out, e)) goto done;
    }
    rc = 0;
done:
    free(starts); free(perm); free(buf);
    return rc;
}

typedef struct {
    int fd;
    char *buf;
    size_t len;              /* buffered, not yet written at offset bytes - len */
    uint64_t bytes, lines;
} Bucket;

static int bucket_flush(const ExtShuf *s, Bucket *b, Error *e)
{
    if (b->len && pwrite_all(b->fd, b->buf, b->len, b->bytes - b->len, s, e)) return -1;
    b->len = 0;
    return 0;
}

static int bucket_put(const ExtShuf *s, Bucket *b, size_t cap, const char *p, size_t n, Error *e)
{
    if (b->len + n > cap) {
        if (bucket_flush(s, b, e)) return -1;
        if (n > cap) {
            if (pwrite_all(b->fd, p, n, b->bytes, s, e)) return -1;
            b->bytes += n;
            return 0;
        }
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    b->bytes += n;
    return 0;
}

/* Over budget: scatter the lines into K bucket files, each line to a bucket
 * drawn uniformly, then shuffle every bucket in turn (see the top comment). */
static int scatter(ExtShuf *s, int fd, uint64_t bytes, uint64_t lines, int depth,
                   Mt19937 *rng, FILE *out, Error *e)
{
    uint64_t cost = bytes + PER_LINE_COST * lines;
    /* Aim at half the budget per bucket, so that most buckets fit. */
    uint64_t most = lines < (uint64_t)s->max_buckets ? lines : (uint64_t)s->max_buckets;
    int k = (int)clamp_u64(cost / (s->budget / 2 + 1) + 1, 2, most);   /* no more buckets than lines */
    size_t cap = (size_t)clamp_u64(s->budget / (2 * (uint64_t)k), 4096, 1 << 20);
    size_t chunk = (size_t)clamp_u64(s->budget / 4, 1 << 16, 1 << 22);
    Bucket *b = calloc((size_t)k, sizeof *b);
    char *in = malloc(chunk);
    int rc = -1;
    if (!b || !in) { fail(e, "out of memory"); goto done; }
    if (k > s->pool_n[depth]) {
        int *p = realloc(s->pool[depth], (size_t)k * sizeof *p);
        if (!p) { fail(e, "out of memory"); goto done; }
        s->pool[depth] = p;
        while (s->pool_n[depth] < k) {
            int tfd = temp_file(s, e);
            if (tfd < 0) goto done;
            s->pool[depth][s->pool_n[depth]++] = tfd;
        }
    }
    for (int i = 0; i < k; i++) {
        b[i].fd = s->pool[depth][i];
        if (!(b[i].buf = malloc(cap))) { fail(e, "out of memory"); goto done; }
    }
    Bucket *cur = NULL;   /* bucket of the line in progress, NULL at a line start */
    for (uint64_t off = 0; off < bytes;) {
        size_t n = bytes - off < chunk ? (size_t)(bytes - off) : chunk;
        if (pread_all(fd, in, n, off, s, e)) goto done;
        off += n;
        for (const char *p = in, *end = in + n; p < end;) {
            if (!cur) { cur = &b[mt_randbelow(rng, (uint64_t)k)]; cur->lines++; }
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl + 1 : end;
            if (bucket_put(s, cur, cap, p, (size_t)(stop - p), e)) goto done;
            if (nl) cur = NULL;
            p = stop;
        }
    }
    for (int i = 0; i < k; i++) {
        if (bucket_flush(s, &b[i], e)) goto done;
        free(b[i].buf);
        b[i].buf = NULL;
    }
    free(in);
    in = NULL;
    for (int i = 0; i < k; i++)
        if (shuffle_file(s, b[i].fd, b[i].bytes, b[i].lines, depth + 1, rng, out, e)) goto done;
    rc = 0;
done:
    if (b)
        for (int i = 0; i < k; i++) free(b[i].buf);
    free(b);
    free(in);
    return rc;
}

static int shuffle_file(ExtShuf *s, int fd, uint64_t bytes, uint64_t lines, int depth,
                        Mt19937 *rng, FILE *out, Error *e)
{
    if (lines == 0) return 0;
    if (lines == 1) return copy_range(s, fd, 0, bytes, out, e);
    if (bytes + PER_LINE_COST * lines <= s->budget) return shuffle_loaded(s, fd, bytes, lines, rng, out, e);
    if (depth >= MAX_DEPTH) return shuffle_by_index(s, fd, bytes, lines, rng, out, e);
    return scatter(s, fd, bytes, lines, depth, rng, out, e);
}

/* ---- output ---- */

int extshuf_write(ExtShuf *s, Mt19937 *rng, uint64_t copies, FILE *out,
                   const char *out_name, Error *e)
{
    if (s->n == 0) return 0;   /* nothing to write, however many copies */
    if (s->spool_fd >= 0) {
        if (spool_flush(s, e)) return -1;
        for (uint64_t c = 0; c < copies; c++) {
            if (shuffle_file(s, s->spool_fd, s->bytes, s->n, 0, rng, out, e)) return -1;
            if (ferror(out)) return out_error(out_name, e);
        }
        return 0;
    }
    if (!s->perm && s->n) {
        s->perm = malloc(s->n * sizeof *s->perm);
        if (!s->perm) return fail(e, "out of memory");
        for (uint64_t i = 0; i < s->n; i++) s->perm[i] = i;
    }
    for (uint64_t c = 0; c < copies; c++) {
        mt_shuffle(rng, s->perm, s->n);   /* in place, copy after copy, as make_data.py */
        for (uint64_t i = 0; i < s->n; i++) {
            uint64_t l = s->perm[i];
            uint64_t end = l + 1 < s->n ? s->starts[l + 1] : s->arena_len;
            fwrite_unlocked(s->arena + s->starts[l], 1, (size_t)(end - s->starts[l]), out);
        }
        if (ferror(out)) return out_error(out_name, e);
    }
    return 0;
}
