/* checkpoint.c: dispatch on the file's content (checkpoint.h). */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "pth.h"
#include "safetensors.h"

CkptFormat ckpt_format(const char *path)
{
    unsigned char b[4];
    FILE *fp = fopen(path, "rb");
    if (!fp) return CKPT_UNKNOWN;
    size_t n = fread(b, 1, sizeof b, fp);
    fclose(fp);
    if (n == 4 && memcmp(b, "PK\x03\x04", 4) == 0) return CKPT_PTH_ZIP;
    if (st_sniff(path)) return CKPT_SAFETENSORS;
    return CKPT_UNKNOWN;
}

/* 9th byte '{' : a safetensors file st_sniff rejected (e.g. a huge header length). */
static int looks_like_safetensors(const char *path)
{
    unsigned char b[9];
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t n = fread(b, 1, sizeof b, fp);
    fclose(fp);
    return n == 9 && b[8] == '{';
}

int ckpt_read(const char *path, TensorSet *ts, Error *e)
{
    ts_init(ts);
    FILE *fp = fopen(path, "rb");
    if (!fp) return fail(e, "%s: %s", path, strerror(errno));
    /* sniffing a pipe would eat its first bytes; the readers need a regular file anyway */
    struct stat sb;
    int regular = fstat(fileno(fp), &sb) == 0 && S_ISREG(sb.st_mode);
    fclose(fp);
    if (!regular) return fail(e, "%s: not a regular file", path);
    switch (ckpt_format(path)) {
    case CKPT_SAFETENSORS:
        return st_read(path, ts, e);
    case CKPT_PTH_ZIP:
        return pth_read(path, ts, 0, e);
    default:
        if (looks_like_safetensors(path)) return st_read(path, ts, e);   /* for its precise error */
        return fail(e, "%s: not a checkpoint (neither safetensors nor a PyTorch zip)", path);
    }
}
