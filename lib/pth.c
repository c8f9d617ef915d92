/* pth.c: .pth reader and writer (see pth.h). */
#include "pth.h"
#include "pickle.h"
#include "zip.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pth.c assumes a little-endian host (torch stores native, here little-endian, bytes)"
#endif

#define FORWARD_PREFIX "_forward_module."
/* A view may repeat storage elements (stride 0, expand()); cap what that can make us allocate. */
#define MAX_EXPANDED_BYTES (16u << 20)

static int digits(const uint8_t *s, size_t n, size_t max)
{
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++) if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* The small text records torch writes beside the tensors. */
static int check_records(const ZipArchive *z, Error *e)
{
    const ZipEntry *v = zip_find(z, "version");
    if (!v) v = zip_find(z, ".data/version");
    if (!v) return fail(e, "no 'version' record (not a torch.save archive, or damaged)");
    size_t n = v->size;
    const uint8_t *s = zip_data(z, v);
    if (n && s[n - 1] == '\n') n--;
    if (!digits(s, n, 3)) return fail(e, "bad 'version' record");
    const ZipEntry *bo = zip_find(z, "byteorder");
    if (bo) {
        if (bo->size == 3 && !memcmp(zip_data(z, bo), "big", 3)) return fail(e, "big-endian .pth files are not supported");
        if (bo->size != 6 || memcmp(zip_data(z, bo), "little", 6)) return fail(e, "bad 'byteorder' record (expected \"little\")");
    }
    const char *numeric[] = { ".format_version", ".storage_alignment" };
    for (int i = 0; i < 2; i++) {
        const ZipEntry *r = zip_find(z, numeric[i]);
        if (r && !digits(zip_data(z, r), r->size, 8)) return fail(e, "bad '%s' record", numeric[i]);
    }
    size_t plen = strlen(z->prefix) + 1;
    for (int i = 0; i < z->n; i++) {
        const char *rel = z->e[i].name + plen;
        if (!strcmp(rel, "data.pkl") || !strcmp(rel, "version") || !strcmp(rel, "byteorder") ||
            !strcmp(rel, ".format_version") || !strcmp(rel, ".storage_alignment") || !strncmp(rel, ".data/", 6))
            continue;
        if (!strncmp(rel, "data/", 5) && digits((const uint8_t *)rel + 5, strlen(rel + 5), 9)) continue;
        if (!strcmp(rel, "constants.pkl") || !strncmp(rel, "code/", 5))
            return fail(e, "this is a TorchScript archive (torch.jit.save), not a torch.save state dict");
        return fail(e, "unexpected record '%s' (torch.save does not write it)", z->e[i].name);
    }
    return 0;
}

/* Copy a strided view into a contiguous row-major buffer. */
static void gather(uint8_t *dst, const uint8_t *src, size_t isz, const PickleTensor *t)
{
    int64_t idx[TENSOR_MAX_DIM] = { 0 };
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->size[d];
    uint64_t off = t->offset;
    for (uint64_t k = 0; k < n; k++) {
        memcpy(dst + k * isz, src + off * isz, isz);
        for (int d = t->ndim - 1; d >= 0; d--) {   /* odometer increment */
            off += (uint64_t)t->stride[d];
            if (++idx[d] < t->size[d]) break;
            off -= (uint64_t)t->stride[d] * (uint64_t)t->size[d];
            idx[d] = 0;
        }
    }
}

static int contiguous(const PickleTensor *t)
{
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->size[d] == 0) return 1;
        if (t->size[d] != 1 && t->stride[d] != want) return 0;
        want *= t->size[d];
    }
    return 1;
}

static int load_tensors(const ZipArchive *z, const PickleDict *d, TensorSet *ts, Error *e)
{
    const ZipEntry **rec = calloc((size_t)d->nstorage + 1, sizeof *rec);
    if (!rec) return fail(e, "out of memory");
    int rc = 0;
    for (int i = 0; i < d->nstorage && !rc; i++) {
        const PickleStorage *s = &d->storage[i];
        char rel[32];
        snprintf(rel, sizeof rel, "data/%s", s->key);
        rec[i] = zip_find(z, rel);
        uint64_t want = s->numel * dtype_size(s->dtype);   /* bounded by pickle.c */
        if (!rec[i]) rc = fail(e, "storage record %s/%s is missing", z->prefix, rel);
        else if (rec[i]->size != want)
            rc = fail(e, "storage record %s/%s holds %llu bytes, but the pickle declares %llu elements of %s (%llu bytes)%s",
                      z->prefix, rel, (unsigned long long)rec[i]->size, (unsigned long long)s->numel, dtype_name(s->dtype),
                      (unsigned long long)want, rec[i]->size < want ? ": truncated storage" : "");
    }
    for (int i = 0; i < d->ntensor && !rc; i++) {
        const PickleTensor *t = &d->tensor[i];
        const PickleStorage *s = &d->storage[t->storage];
        size_t isz = dtype_size(s->dtype);
        const uint8_t *base = zip_data(z, rec[t->storage]);
        const char *name = t->name;
        if (!strncmp(name, FORWARD_PREFIX, strlen(FORWARD_PREFIX)) && name[strlen(FORWARD_PREFIX)]) name += strlen(FORWARD_PREFIX);
        uint64_t numel = 1;
        for (int k = 0; k < t->ndim; k++) numel *= (uint64_t)t->size[k];   /* checked in pickle.c */
        if (numel > s->numel && numel * isz > MAX_EXPANDED_BYTES) {
            rc = fail(e, "%s: view repeats storage elements into %llu elements; refused", t->name, (unsigned long long)numel);
            break;
        }
        Tensor *out;
        if (contiguous(t)) {
            const uint8_t *p = base + t->offset * isz;
            int aligned = ((uintptr_t)p % isz) == 0;
            out = ts_add(ts, name, s->dtype, t->ndim, t->size, (void *)p, !aligned, 0, e);
        } else {
            out = ts_add(ts, name, s->dtype, t->ndim, t->size, NULL, 1, 1, e);
            if (out) gather(out->data, base, isz, t);
        }
        if (!out) rc = -1;
    }
    free(rec);
    return rc;
}

int pth_parse(const void *buf, size_t len, TensorSet *ts, int flags, Error *e)
{
    if (ts->n || ts->map) return fail(e, "pth_parse: tensor set not empty");
    ZipArchive z;
    if (zip_open(&z, buf, len, (flags & PTH_NO_CRC) ? ZIP_NO_CRC : 0, e)) return -1;
    int rc = check_records(&z, e);
    const ZipEntry *pkl = rc ? NULL : zip_find(&z, "data.pkl");
    if (!rc && !pkl) rc = fail(e, "no 'data.pkl' record (not a torch.save archive)");
    PickleDict d;
    memset(&d, 0, sizeof d);
    if (!rc) rc = pickle_parse(zip_data(&z, pkl), pkl->size, &d, e);
    TensorSet tmp;
    ts_init(&tmp);
    if (!rc) rc = load_tensors(&z, &d, &tmp, e);
    if (rc) ts_free(&tmp);
    else *ts = tmp;
    pickle_free(&d);
    zip_close(&z);
    return rc;
}

int pth_read(const char *path, TensorSet *ts, int flags, Error *e)
{
    if (ts->n || ts->map) return fail(e, "%s: pth_read: tensor set not empty", path);
    int fd = open_regular(path, e);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st)) {
        int err = errno;
        close(fd);
        return fail(e, "%s: %s", path, strerror(err));
    }
    if (st.st_size < 22) {
        close(fd);
        return fail(e, "%s: not a .pth file (%lld bytes, truncated?)", path, (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return fail(e, "%s: mmap: %s", path, strerror(errno));
    if (pth_parse(map, len, ts, flags, e)) {
        munmap(map, len);
        return fail_prefix(e, "%s", path);
    }
    ts->map = map;
    ts->map_len = len;
    return 0;
}

int pth_sniff(const char *path)
{
    Error ignore;
    int fd = open_regular(path, &ignore);
    if (fd < 0) return 0;
    unsigned char b[4];
    int ok = pread(fd, b, 4, 0) == 4 && !memcmp(b, "PK\x03\x04", 4);
    close(fd);
    return ok;
}

int pth_write(const char *path, const TensorSet *ts, int overwrite, Error *e)
{
    uint8_t *pkl;
    size_t pkl_len;
    if (pickle_write_dict(ts, &pkl, &pkl_len, e)) return fail_prefix(e, "%s", path);
    AtomicFile f;
    if (atomic_open(&f, path, overwrite, e)) { free(pkl); return -1; }
    ZipWriter w;
    zip_writer_init(&w, f.fp);
    int rc = zip_add(&w, "archive/data.pkl", pkl, pkl_len, e) ||
             zip_add(&w, "archive/.format_version", "1", 1, e) ||
             zip_add(&w, "archive/.storage_alignment", "64", 2, e) ||
             zip_add(&w, "archive/byteorder", "little", 6, e);
    free(pkl);
    for (int i = 0; i < ts->n && !rc; i++) {
        char name[40];
        snprintf(name, sizeof name, "archive/data/%d", i);
        rc = zip_add(&w, name, ts->t[i].data, ts->t[i].nbytes, e);
    }
    if (!rc) rc = zip_add(&w, "archive/version", "3\n", 2, e);
    if (!rc) rc = zip_finish(&w, e);
    else zip_writer_free(&w);
    if (rc) {
        atomic_abort(&f);
        return fail_prefix(e, "%s", path);
    }
    if (atomic_commit(&f, e)) return -1;
    return 0;
}
