/* tbevents.c: TensorBoard event files (tbevents.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "tbevents.h"

/* ---------------------------------------------------------------- CRC-32C */
static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;   /* reflected Castagnoli polynomial */
        crc_table[i] = c;
    }
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t n)
{
    if (!crc_table[1]) crc_init();   /* a racing second init writes the same values */
    const unsigned char *p = buf;
    crc = ~crc;
    while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* TFRecord stores CRCs masked, so that a CRC of data holding CRCs stays useful. */
static uint32_t masked_crc(const void *buf, size_t n)
{
    uint32_t c = crc32c(0, buf, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---------------------------------------------------------------- protobuf encoding */
/* A bounded output buffer; overflow is remembered and checked once at the end. */
typedef struct { unsigned char *p; size_t len, cap; int overflow; } Buf;

static void put_bytes(Buf *b, const void *src, size_t n)
{
    if (b->overflow || n > b->cap - b->len) { b->overflow = 1; return; }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_le(Buf *b, uint64_t v, int nbytes)
{
    unsigned char t[8];
    for (int i = 0; i < nbytes; i++) t[i] = (unsigned char)(v >> (8 * i));
    put_bytes(b, t, (size_t)nbytes);
}

static void put_varint(Buf *b, uint64_t v)
{
    unsigned char t[10];
    int n = 0;
    do {
        t[n++] = (unsigned char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put_bytes(b, t, (size_t)n);
}

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void put_key(Buf *b, int field, int wire) { put_varint(b, (uint64_t)(field << 3 | wire)); }

static void put_len_field(Buf *b, int field, const void *data, size_t n)
{
    put_key(b, field, WIRE_LEN);
    put_varint(b, n);
    put_bytes(b, data, n);
}

static void put_double_field(Buf *b, int field, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_key(b, field, WIRE_FIXED64);
    put_le(b, u, 8);
}

static void put_float_field(Buf *b, int field, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_key(b, field, WIRE_FIXED32);
    put_le(b, u, 4);
}

/* tensorflow.Event field numbers */
enum { EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5, EVENT_SESSION_LOG = 7 };
/* SessionLog.status = 1, with START = 1 */
enum { SESSION_LOG_STATUS = 1, SESSION_LOG_START = 1 };
/* Summary.value = 1; Summary.Value.tag = 1, .simple_value = 2 */
enum { SUMMARY_VALUE = 1, VALUE_TAG = 1, VALUE_SIMPLE = 2 };

/* ---------------------------------------------------------------- records */
/* Frame an Event as one TFRecord and write it with one write(). */
static int write_record(TbWriter *w, const unsigned char *data, size_t n, Error *e)
{
    if (w->fd < 0) return fail(e, "%s: not open", w->path ? w->path : "event file");
    unsigned char rec[16 + 2048];
    if (n > sizeof rec - 16) return fail(e, "%s: event of %zu bytes too large", w->path, n);
    Buf b = { rec, 0, sizeof rec, 0 };
    put_le(&b, n, 8);
    put_le(&b, masked_crc(rec, 8), 4);
    put_bytes(&b, data, n);
    put_le(&b, masked_crc(data, n), 4);
    size_t done = 0;
    while (done < b.len) {
        ssize_t k = write(w->fd, rec + done, b.len - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return fail(e, "%s: write failed: %s", w->path, k < 0 ? strerror(errno) : "wrote nothing");
        done += (size_t)k;
    }
    return 0;
}

static double wall_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

int tb_open(TbWriter *w, const char *dir, int64_t start_step, Error *e)
{
    w->fd = -1;
    w->path = NULL;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) || !*host) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *s = host; *s; s++) if (*s == '/') *s = '_';
    size_t n = strlen(dir) + strlen(host) + 96;
    if (!(w->path = malloc(n))) return fail(e, "out of memory");
    snprintf(w->path, n, "%s/events.out.tfevents.%010lld.%s.%06ld.%ld", dir, (long long)tv.tv_sec, host,
             (long)tv.tv_usec, (long)getpid());
    if (make_parent_dirs(w->path, NULL, e)) { free(w->path); w->path = NULL; return fail_prefix(e, "--tensorboard %s", dir); }
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        fail(e, "cannot create %s: %s", w->path, strerror(errno));
        free(w->path);
        w->path = NULL;
        return -1;
    }
    unsigned char ev[64];
    Buf b = { ev, 0, sizeof ev, 0 };
    put_double_field(&b, EVENT_WALL_TIME, wall_now());
    put_len_field(&b, EVENT_FILE_VERSION, "brain.Event:2", 13);
    if (write_record(w, ev, b.len, e)) { tb_close(w, NULL); return -1; }
    unsigned char start[2] = { SESSION_LOG_STATUS << 3 | WIRE_VARINT, SESSION_LOG_START };
    b.len = 0;
    put_double_field(&b, EVENT_WALL_TIME, wall_now());
    put_key(&b, EVENT_STEP, WIRE_VARINT);
    put_varint(&b, (uint64_t)start_step);
    put_len_field(&b, EVENT_SESSION_LOG, start, sizeof start);
    if (write_record(w, ev, b.len, e)) { tb_close(w, NULL); return -1; }
    return 0;
}

int tb_scalars(TbWriter *w, int64_t step, double wall_time, const char *const *tags, const float *values, int n,
               Error *e)
{
    unsigned char summary[1536], value[256], ev[2048];
    Buf s = { summary, 0, sizeof summary, 0 };
    for (int i = 0; i < n; i++) {
        Buf v = { value, 0, sizeof value, 0 };
        put_len_field(&v, VALUE_TAG, tags[i], strlen(tags[i]));
        put_float_field(&v, VALUE_SIMPLE, values[i]);
        if (v.overflow) return fail(e, "tag '%.40s' too long for an event", tags[i]);
        put_len_field(&s, SUMMARY_VALUE, value, v.len);
    }
    Buf b = { ev, 0, sizeof ev, 0 };
    put_double_field(&b, EVENT_WALL_TIME, wall_time);
    put_key(&b, EVENT_STEP, WIRE_VARINT);
    put_varint(&b, (uint64_t)step);   /* int64: a negative step takes 10 bytes, as in protobuf */
    put_len_field(&b, EVENT_SUMMARY, summary, s.len);
    if (s.overflow || b.overflow) return fail(e, "%d scalars too many for one event", n);
    return write_record(w, ev, b.len, e);
}

int tb_close(TbWriter *w, Error *e)
{
    int rc = 0;
    if (w->fd >= 0 && close(w->fd) && e) rc = fail(e, "%s: close failed: %s", w->path, strerror(errno));
    w->fd = -1;
    free(w->path);
    w->path = NULL;
    return rc;
}
