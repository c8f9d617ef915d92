/* TensorBoard event files (lib/tbevents.c): the CRC-32C check value, and the
 * bytes of a scalar event against an encoding worked out by hand from the
 * protobuf and TFRecord specifications (the Python test reads whole files
 * back with the tensorboard package). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tbevents.h"
#include "check.h"

static uint32_t masked(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }
static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

int main(void)
{
    CHECK(crc32c(0, "123456789", 9) == 0xe3069283u, "crc32c check value %08x", crc32c(0, "123456789", 9));
    CHECK(crc32c(0, "", 0) == 0, "crc32c of nothing");
    CHECK(crc32c(crc32c(0, "1234", 4), "56789", 5) == 0xe3069283u, "crc32c continued");

    char dir[] = "/tmp/tbevents_test.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char sub[64];
    snprintf(sub, sizeof sub, "%s/a/b", dir);   /* parents are created */
    TbWriter w;
    Error e;
    CHECK(tb_open(&w, sub, 300, &e) == 0, "tb_open: %s", e.msg);
    CHECK(strstr(w.path, "/a/b/events.out.tfevents.") != NULL, "name %s", w.path);
    off_t head = lseek(w.fd, 0, SEEK_END);
    const char *tags[] = { "lr" };
    float v[] = { 1.0f };
    CHECK(tb_scalars(&w, 300, 2.0, tags, v, 1, &e) == 0, "tb_scalars: %s", e.msg);
    char path[256];
    snprintf(path, sizeof path, "%s", w.path);
    CHECK(tb_close(&w, &e) == 0, "tb_close: %s", e.msg);

    /* Event{wall_time 2.0, step 300, summary{value{tag "lr", simple_value 1.0}}} */
    static const unsigned char event[] = {
        0x09, 0, 0, 0, 0, 0, 0, 0, 0x40,             /* 1: wall_time, fixed64 double 2.0 */
        0x10, 0xac, 0x02,                            /* 2: step, varint 300 */
        0x2a, 0x0b, 0x0a, 0x09,                      /* 5: summary (11 bytes) { 1: value (9 bytes) { */
        0x0a, 0x02, 'l', 'r',                        /*   1: tag "lr" */
        0x15, 0x00, 0x00, 0x80, 0x3f,                /*   2: simple_value, fixed32 float 1.0 } } */
    };
    unsigned char buf[256];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf, head) : -1;
    if (fd >= 0) close(fd);
    CHECK(n == (ssize_t)(12 + sizeof event + 4), "record of %zd bytes, want %zu", n, 12 + sizeof event + 4);
    if (n == (ssize_t)(12 + sizeof event + 4)) {
        CHECK(buf[0] == sizeof event && !memcmp(buf + 1, "\0\0\0\0\0\0\0", 7), "length field");
        CHECK(le32(buf + 8) == masked(crc32c(0, buf, 8)), "length CRC");
        CHECK(!memcmp(buf + 12, event, sizeof event), "event bytes");
        CHECK(le32(buf + 12 + sizeof event) == masked(crc32c(0, event, sizeof event)), "data CRC");
    }
    /* A directory that cannot be made is an error, with the path in it. */
    char bad[128];
    snprintf(bad, sizeof bad, "%s/file", dir);
    fclose(fopen(bad, "w"));
    snprintf(sub, sizeof sub, "%s/file/tb", dir);
    CHECK(tb_open(&w, sub, 0, &e) != 0 && strstr(e.msg, "file/tb"), "tb_open under a file: %s", e.msg);
    tb_close(&w, NULL);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) { /* a leftover temp directory is harmless */ }
    return check_done();
}
