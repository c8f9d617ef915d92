/* checkpoint.c: dispatch on the file's content (checkpoint.h). */
#include "checkpoint.h"

#include <string.h>
#include <unistd.h>

#include "pth.h"
#include "safetensors.h"

/* First n bytes of a regular file; -1 (e set) when it cannot be opened or is not a
 * regular file (sniffing a FIFO would hang, or eat its first bytes). */
static ssize_t read_head(const char *path, unsigned char *b, size_t n, Error *e)
{
    int fd = open_regular(path, e);
    if (fd < 0) return -1;
    ssize_t got = pread(fd, b, n, 0);
    close(fd);
    return got < 0 ? 0 : got;
}

static CkptFormat format_of(const unsigned char *b, ssize_t n)
{
    if (n >= 4 && memcmp(b, "PK\x03\x04", 4) == 0) return CKPT_PTH_ZIP;
    if (n > 0 && st_sniff_head(b, (size_t)n)) return CKPT_SAFETENSORS;
    return CKPT_UNKNOWN;
}

int ckpt_read(const char *path, TensorSet *ts, Error *e)
{
    ts_init(ts);
    unsigned char b[9];
    ssize_t n = read_head(path, b, sizeof b, e);
    if (n < 0) return -1;
    switch (format_of(b, n)) {
    case CKPT_SAFETENSORS:
        return st_read(path, ts, e);
    case CKPT_PTH_ZIP:
        return pth_read(path, ts, 0, e);
    default:
        /* 9th byte '{': a safetensors file with a bad header length; st_read says precisely what is wrong */
        if (n == 9 && b[8] == '{') return st_read(path, ts, e);
        return fail(e, "%s: not a checkpoint (neither safetensors nor a PyTorch zip)", path);
    }
}
