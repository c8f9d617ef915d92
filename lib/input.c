#include "input.h"
#include "growbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define RAW_CHUNK (1 << 20)
#define MAX_LINE ((size_t)1 << 30)   /* longer lines are an error, not an out-of-memory */

struct Input {
    FILE *fp;
    int is_stdin;
    char *name;
    /* raw (compressed) buffer */
    unsigned char *raw;
    size_t raw_len, raw_pos;
    int raw_eof;
    ZSTD_DStream *zs;       /* NULL for plain input */
    int zs_frame_open;
    /* line buffer */
    char *buf;
    size_t buf_cap, buf_start, buf_end;
    int eof;
    uint64_t lineno;
};

static int fill_raw(Input *in, Error *e)
{
    if (in->raw_eof) return 0;
    if (in->raw_pos < in->raw_len) {
        memmove(in->raw, in->raw + in->raw_pos, in->raw_len - in->raw_pos);
        in->raw_len -= in->raw_pos;
    } else {
        in->raw_len = 0;
    }
    in->raw_pos = 0;
    size_t n = fread(in->raw + in->raw_len, 1, RAW_CHUNK - in->raw_len, in->fp);
    if (n == 0) {
        if (ferror(in->fp)) return fail(e, "%s: read error: %s", in->name, strerror(errno));
        in->raw_eof = 1;
        return 0;
    }
    in->raw_len += n;
    return 1;
}

/* RFC 8878: a zstd frame (28 B5 2F FD), or a skippable frame (5? 2A 4D 18), which
 * pzstd writes before every frame; libzstd's stream decoder skips the latter. */
static int is_zstd(const unsigned char *b, size_t n)
{
    if (n < 4) return 0;
    uint32_t magic = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return magic == 0xFD2FB528u || (magic & 0xFFFFFFF0u) == 0x184D2A50u;
}

static int is_gzip(const unsigned char *b, size_t n) { return n >= 2 && b[0] == 0x1F && b[1] == 0x8B; }

static Input *open_common(const char *path, int regular_only, Error *e)
{
    Input *in = calloc(1, sizeof *in);
    if (!in) { fail(e, "out of memory"); return NULL; }
    if (!path || strcmp(path, "-") == 0) {
        in->fp = stdin;
        in->is_stdin = 1;
        in->name = strdup("<stdin>");
    } else {
        in->name = strdup(path);
        int fd = regular_only ? open_regular(path, e) : open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && !regular_only) fail(e, "%s: %s", path, strerror(errno));
        if (fd >= 0 && !(in->fp = fdopen(fd, "rb"))) { close(fd); fail(e, "%s: %s", path, strerror(errno)); }
        if (!in->fp) { input_close(in); return NULL; }
    }
    in->raw = malloc(RAW_CHUNK);
    if (!in->name || !in->raw) { fail(e, "out of memory"); input_close(in); return NULL; }
    if (fill_raw(in, e) < 0) { input_close(in); return NULL; }
    if (is_gzip(in->raw, in->raw_len)) {
        fail(e, "%s: gzip input is not supported (decompress it first: zcat FILE | ...)", in->name);
        input_close(in);
        return NULL;
    }
    if (is_zstd(in->raw, in->raw_len)) {
        in->zs = ZSTD_createDStream();
        if (!in->zs) { fail(e, "out of memory"); input_close(in); return NULL; }
        ZSTD_initDStream(in->zs);
    }
    return in;
}

Input *input_open(const char *path, Error *e) { return open_common(path, 0, e); }
Input *input_open_regular(const char *path, Error *e) { return open_common(path, 1, e); }

void input_close(Input *in)
{
    if (!in) return;
    if (in->fp && !in->is_stdin) fclose(in->fp);
    if (in->zs) ZSTD_freeDStream(in->zs);
    free(in->raw);
    free(in->buf);
    free(in->name);
    free(in);
}

const char *input_name(const Input *in) { return in->name; }
uint64_t input_lineno(const Input *in) { return in->lineno; }

ssize_t input_read(Input *in, void *buf, size_t n, Error *e)
{
    if (n == 0) return 0;
    if (!in->zs) {
        for (;;) {
            if (in->raw_pos < in->raw_len) {
                size_t k = in->raw_len - in->raw_pos;
                if (k > n) k = n;
                memcpy(buf, in->raw + in->raw_pos, k);
                in->raw_pos += k;
                return (ssize_t)k;
            }
            int r = fill_raw(in, e);
            if (r <= 0) return r;
        }
    }
    ZSTD_outBuffer out = { buf, n, 0 };
    while (out.pos == 0) {
        if (in->raw_pos == in->raw_len) {
            int r = fill_raw(in, e);
            if (r < 0) return -1;
            if (r == 0) {
                if (in->zs_frame_open)
                    return fail(e, "%s: truncated zstd stream", in->name);
                return 0;
            }
        }
        ZSTD_inBuffer inb = { in->raw, in->raw_len, in->raw_pos };
        size_t rc = ZSTD_decompressStream(in->zs, &out, &inb);
        in->raw_pos = inb.pos;
        if (ZSTD_isError(rc))
            return fail(e, "%s: zstd: %s", in->name, ZSTD_getErrorName(rc));
        in->zs_frame_open = rc != 0;
    }
    return (ssize_t)out.pos;
}

int input_getline(Input *in, char **line, size_t *len, Error *e)
{
    for (;;) {
        size_t avail = in->buf_end - in->buf_start;
        char *start = in->buf ? in->buf + in->buf_start : NULL;   /* NULL + 0 is UB */
        char *nl = avail ? memchr(start, '\n', avail) : NULL;
        if (nl || (in->eof && avail)) {
            size_t n = nl ? (size_t)(nl - start) : avail;
            in->buf_start += nl ? n + 1 : n;
            if (n && start[n - 1] == '\r') n--;
            start[n] = 0;   /* safe: there is a '\n' or spare byte there */
            /* A UTF-8 byte order mark opens the file, it is not part of line 1
             * (RFC 8259 8.1); kept, it would end up mid-file after a shuffle. */
            if (in->lineno == 0 && n >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0) {
                start += 3;
                n -= 3;
            }
            in->lineno++;
            *line = start;
            *len = n;
            return 1;
        }
        if (in->eof) return 0;
        if (avail > MAX_LINE)
            return fail(e, "%s:%llu: line longer than %zu bytes", in->name,
                        (unsigned long long)in->lineno + 1, MAX_LINE);
        /* compact, grow, refill */
        if (in->buf_start) {
            memmove(in->buf, start, avail);
            in->buf_start = 0;
            in->buf_end = avail;
        }
        if (grow(&in->buf, &in->buf_cap, in->buf_end + RAW_CHUNK + 1)) return fail(e, "out of memory");
        ssize_t r = input_read(in, in->buf + in->buf_end, in->buf_cap - in->buf_end - 1, e);
        if (r < 0) return -1;
        if (r == 0) in->eof = 1;
        in->buf_end += (size_t)r;
    }
}
