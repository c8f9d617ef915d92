/* pth_test: lib/zip, lib/pickle and lib/pth without Python.
 *
 * - torch 1.13 and 2.15 files kept in the fuzz seed corpus are read: views with
 *   offsets, transposed and strided views, shared storages, a Parameter and an
 *   expand() come out equal to the slices of the base tensor they view;
 * - pth_write -> pth_read round-trips every dtype, 0-dim and empty tensors,
 *   bit for bit, with torch's record order and 64-byte aligned data;
 * - offsets past 4 GiB (Zip64 extras in local and central headers, Zip64 end
 *   records) in a sparse file: a record after a 4 GiB hole is found and read;
 * - bad files from the corpus and hand-made pickles are refused, with the reason. */
#define _GNU_SOURCE   /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pickle.h"
#include "pth.h"
#include "tensors.h"
#include "util.h"
#include "zip.h"

#include "check.h"

static char corpus[4096];

static const float *f32(const TensorSet *ts, const char *name, int64_t numel)
{
    const Tensor *t = ts_find(ts, name);
    if (!t || t->dtype != DT_F32 || tensor_numel(t) != numel) { fails++; printf("FAIL: tensor %s\n", name); return NULL; }
    return t->data;
}

/* views/module fixtures of tests/ref/pth_fixtures.py, as saved by one torch version */
static void test_torch_views(const char *views, const char *module)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", corpus, views);
    TensorSet ts;
    ts_init(&ts);
    Error e;
    if (pth_read(path, &ts, 0, &e)) { fails++; printf("FAIL: %s\n", e.msg); return; }
    CHECK(ts.n == 10, "views: %d tensors", ts.n);
    const float *base = f32(&ts, "base", 48), *row2 = f32(&ts, "row2", 8), *tail = f32(&ts, "tail", 24),
                *col = f32(&ts, "col", 6), *tr = f32(&ts, "t", 48), *st = f32(&ts, "strided", 9),
                *ex = f32(&ts, "expand", 12);
    if (base && row2 && tail && col && tr && st && ex) {
        for (int j = 0; j < 8; j++) CHECK(row2[j] == base[2 * 8 + j], "row2[%d]", j);
        for (int k = 0; k < 24; k++) CHECK(tail[k] == base[24 + k], "tail[%d]", k);
        for (int i = 0; i < 6; i++) CHECK(col[i] == base[i * 8 + 5], "col[%d]", i);
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 6; j++) CHECK(tr[i * 6 + j] == base[j * 8 + i], "t[%d][%d]", i, j);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) CHECK(st[i * 3 + j] == base[(2 * i) * 8 + 1 + 3 * j], "strided[%d][%d]", i, j);
        for (int k = 0; k < 12; k++) CHECK(ex[k] == 1.0f, "expand[%d]", k);
    }
    const Tensor *a = ts_find(&ts, "tied_a"), *b = ts_find(&ts, "tied_b"), *t = ts_find(&ts, "t");
    CHECK(a && b && a->dtype == DT_BF16 && a->nbytes == 40 && b->nbytes == 40 && !memcmp(a->data, b->data, 40), "tied");
    CHECK(t && t->ndim == 2 && t->shape[0] == 8 && t->shape[1] == 6, "t shape");
    const Tensor *p = ts_find(&ts, "param");
    CHECK(p && p->ndim == 2 && p->shape[0] == 4 && p->shape[1] == 2, "param");
    CHECK(ts.map != NULL, "pth_read keeps the mapping");
    ts_free(&ts);

    /* a module state_dict with _metadata (fp16) and the forward prefix */
    snprintf(path, sizeof path, "%s/%s", corpus, module);
    ts_init(&ts);
    CHECK(pth_read(path, &ts, 0, &e) == 0, "module: %s", e.msg);
    const Tensor *w = ts_find(&ts, "lin.weight");
    CHECK(w && w->dtype == DT_F16 && w->shape[0] == 3 && w->shape[1] == 4, "module lin.weight");
    CHECK(ts_find(&ts, "blocks.1.weight") != NULL, "module blocks.1.weight");
    ts_free(&ts);
    snprintf(path, sizeof path, "%s/good_forward_prefix.pth", corpus);
    ts_init(&ts);
    CHECK(pth_read(path, &ts, 0, &e) == 0, "prefix: %s", e.msg);
    CHECK(ts_find(&ts, "emb.weight") && ts_find(&ts, "head.weight"), "_forward_module. stripped");
    ts_free(&ts);
}

static void test_roundtrip(void)
{
    TensorSet ts, back;
    ts_init(&ts);
    ts_init(&back);
    Error e;
    int64_t s23[] = { 2, 3 }, s0[] = { 0, 4 }, s5[] = { 5 }, s111[] = { 1, 1, 3 }, s4d[] = { 2, 1, 2, 2 };
    DType dts[] = { DT_F32, DT_F16, DT_BF16, DT_F64, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8, DT_BOOL };
    char name[32];
    for (size_t k = 0; k < sizeof dts / sizeof *dts; k++) {
        snprintf(name, sizeof name, "t.%s", dtype_name(dts[k]));
        Tensor *t = ts_add(&ts, name, dts[k], 2, s23, NULL, 1, 1, &e);
        for (size_t i = 0; t && i < t->nbytes; i++) ((uint8_t *)t->data)[i] = (uint8_t)(i * 37 + k);
        if (dts[k] == DT_BOOL) for (size_t i = 0; t && i < t->nbytes; i++) ((uint8_t *)t->data)[i] &= 1;
    }
    float one = 1.5f;
    ts_add(&ts, "scalar", DT_F32, 0, NULL, &one, 1, 1, &e);
    ts_add(&ts, "empty", DT_BF16, 2, s0, NULL, 1, 1, &e);
    ts_add(&ts, "vec", DT_F32, 1, s5, NULL, 1, 1, &e);
    ts_add(&ts, "x_r", DT_BF16, 3, s111, NULL, 1, 1, &e);
    ts_add(&ts, "four.d", DT_F32, 4, s4d, NULL, 1, 1, &e);
    CHECK(ts.n == 15, "built %d", ts.n);
    char path[] = "rt.pth";
    unlink(path);
    CHECK(pth_write(path, &ts, 0, &e) == 0, "write: %s", e.msg);
    CHECK(pth_write(path, &ts, 0, &e) == -1 && strstr(e.msg, "exists"), "no overwrite without the flag");
    CHECK(pth_sniff(path) == 1, "sniff");
    CHECK(pth_read(path, &back, 0, &e) == 0, "read: %s", e.msg);
    CHECK(back.n == ts.n, "count %d", back.n);
    for (int i = 0; i < ts.n && i < back.n; i++) {
        const Tensor *x = &ts.t[i], *y = &back.t[i];
        CHECK(!strcmp(x->name, y->name) && x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes &&
                  !memcmp(x->shape, y->shape, sizeof x->shape[0] * x->ndim) && !memcmp(x->data, y->data, x->nbytes),
              "tensor %s differs", x->name);
    }
    ts_free(&back);

    /* torch's layout: record order, 64-byte aligned data, Zip64 end records */
    FILE *f = fopen(path, "rb");
    static uint8_t buf[1 << 16];
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    ZipArchive z;
    CHECK(zip_open(&z, buf, len, 0, &e) == 0, "zip_open: %s", e.msg);
    const char *want[] = { "archive/data.pkl", "archive/.format_version", "archive/.storage_alignment", "archive/byteorder" };
    for (int i = 0; i < 4 && i < z.n; i++) CHECK(!strcmp(z.e[i].name, want[i]), "record %d is %s", i, z.e[i].name);
    for (int i = 0; i < z.n; i++) {
        CHECK(z.e[i].data % 64 == 0, "%s data at %llu", z.e[i].name, (unsigned long long)z.e[i].data);
        if (i >= 4 && i < z.n - 1) {
            char nm[40];
            snprintf(nm, sizeof nm, "archive/data/%d", i - 4);
            CHECK(!strcmp(z.e[i].name, nm), "record %d is %s", i, z.e[i].name);
        }
    }
    CHECK(z.n == 4 + ts.n + 1 && !strcmp(z.e[z.n - 1].name, "archive/version"), "last record");
    CHECK(memmem(buf + len - 98, 98, "PK\x06\x06", 4) && memmem(buf + len - 42, 42, "PK\x06\x07", 4), "Zip64 end records");
    zip_close(&z);
    /* a flipped data byte is caught by the CRC, and accepted on request */
    buf[len / 2] ^= 1;
    TensorSet bad;
    ts_init(&bad);
    int rc = pth_parse(buf, len, &bad, 0, &e);
    CHECK(rc == -1, "corruption at %zu not detected", len / 2);
    ts_free(&bad);
    ts_free(&ts);
    unlink(path);
}

/* ---- a sparse archive with a record past 4 GiB ---- */
static void le(uint8_t *p, uint64_t v, int n) { for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static int pwrite_all(int fd, const uint8_t *b, size_t n, uint64_t at)
{
    return pwrite(fd, b, n, (off_t)at) == (ssize_t)n ? 0 : -1;
}

/* archive/big: 4 GiB + 4 KiB of zeros (a hole), sizes only in its Zip64 extras;
 * archive/small after it, its offset only in the central Zip64 extra; the
 * central directory and the Zip64 end records past 4 GiB too.  central_lho_delta
 * moves the small record's central offset (0: the right one). */
static int write_sparse_zip(const char *path, int64_t central_lho_delta, uint64_t *small_lho)
{
    static const char big[] = "archive/big", small[] = "archive/small", text[] = "past four GiB";
    const uint64_t S = (4ull << 30) + 4096, ns = sizeof text - 1;
    uint32_t crc_small = crc32_update(0, text, ns);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    uint8_t h[256];
    int rc = 0;
    /* local header of big: version 45, sizes 0xffffffff, Zip64 extra (usize, csize) */
    memset(h, 0, sizeof h);
    size_t nb = sizeof big - 1;
    le(h, 0x04034b50, 4); le(h + 4, 45, 2); le(h + 14, 0, 4);   /* CRC of the zeros: not checked (ZIP_NO_CRC) */
    le(h + 18, 0xffffffff, 4); le(h + 22, 0xffffffff, 4); le(h + 26, nb, 2); le(h + 28, 20, 2);
    memcpy(h + 30, big, nb);
    uint8_t *x = h + 30 + nb;
    le(x, 1, 2); le(x + 2, 16, 2); le(x + 4, S, 8); le(x + 12, S, 8);
    uint64_t big_data = 30 + nb + 20, at = big_data + S;
    rc |= pwrite_all(fd, h, (size_t)(big_data), 0);
    /* local header of small, beyond the hole: ordinary 32-bit sizes */
    *small_lho = at;
    memset(h, 0, sizeof h);
    size_t nsm = sizeof small - 1;
    le(h, 0x04034b50, 4); le(h + 4, 45, 2); le(h + 14, crc_small, 4); le(h + 18, ns, 4); le(h + 22, ns, 4);
    le(h + 26, nsm, 2); le(h + 28, 0, 2);
    memcpy(h + 30, small, nsm);
    memcpy(h + 30 + nsm, text, ns);
    rc |= pwrite_all(fd, h, 30 + nsm + ns, at);
    at += 30 + nsm + ns;
    /* central directory: big with saturated sizes, small with a saturated offset */
    uint64_t cd_off = at;
    memset(h, 0, sizeof h);
    le(h, 0x02014b50, 4); le(h + 4, 45, 2); le(h + 6, 45, 2);
    le(h + 20, 0xffffffff, 4); le(h + 24, 0xffffffff, 4); le(h + 28, nb, 2); le(h + 30, 20, 2); le(h + 42, 0, 4);
    memcpy(h + 46, big, nb);
    x = h + 46 + nb;
    le(x, 1, 2); le(x + 2, 16, 2); le(x + 4, S, 8); le(x + 12, S, 8);
    rc |= pwrite_all(fd, h, 46 + nb + 20, at);
    at += 46 + nb + 20;
    memset(h, 0, sizeof h);
    le(h, 0x02014b50, 4); le(h + 4, 45, 2); le(h + 6, 45, 2); le(h + 16, crc_small, 4);
    le(h + 20, ns, 4); le(h + 24, ns, 4); le(h + 28, nsm, 2); le(h + 30, 12, 2); le(h + 42, 0xffffffff, 4);
    memcpy(h + 46, small, nsm);
    x = h + 46 + nsm;
    le(x, 1, 2); le(x + 2, 8, 2); le(x + 4, *small_lho + (uint64_t)central_lho_delta, 8);
    rc |= pwrite_all(fd, h, 46 + nsm + 12, at);
    at += 46 + nsm + 12;
    uint64_t cd_size = at - cd_off, z64 = at;
    /* Zip64 end record, locator, classic end record (all saturated) */
    memset(h, 0, sizeof h);
    le(h, 0x06064b50, 4); le(h + 4, 44, 8); le(h + 12, 45, 2); le(h + 14, 45, 2);
    le(h + 24, 2, 8); le(h + 32, 2, 8); le(h + 40, cd_size, 8); le(h + 48, cd_off, 8);
    le(h + 56, 0x07064b50, 4); le(h + 64, z64, 8); le(h + 72, 1, 4);
    le(h + 76, 0x06054b50, 4); le(h + 84, 0xffff, 2); le(h + 86, 0xffff, 2);
    le(h + 88, 0xffffffff, 4); le(h + 92, 0xffffffff, 4);
    rc |= pwrite_all(fd, h, 98, at);
    if (close(fd)) rc = -1;
    return rc;
}

static void test_sparse_zip64(void)
{
    const char *path = "sparse64.zip";
    uint64_t small_lho = 0;
    if (write_sparse_zip(path, 0, &small_lho)) { printf("skip: cannot write a sparse file here\n"); unlink(path); return; }
    struct stat st;
    if (stat(path, &st) || (uint64_t)st.st_blocks * 512 > (1u << 20)) {   /* no holes on this file system */
        printf("skip: the file system does not keep sparse files sparse\n");
        unlink(path);
        return;
    }
    int fd = open(path, O_RDONLY);
    void *map = fd < 0 ? MAP_FAILED : mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (fd >= 0) close(fd);
    CHECK(map != MAP_FAILED, "mmap of the sparse file");
    if (map == MAP_FAILED) { unlink(path); return; }
    ZipArchive z;
    Error e;
    int rc = zip_open(&z, map, (size_t)st.st_size, ZIP_NO_CRC, &e);   /* CRC of 4 GiB of zeros: too slow for a unit test */
    CHECK(rc == 0, "sparse Zip64 archive: %s", rc ? e.msg : "");
    if (!rc) {
        const ZipEntry *b = zip_find(&z, "big"), *s = zip_find(&z, "small");
        CHECK(b && b->size == (4ull << 30) + 4096 && b->lho == 0, "big record: Zip64 sizes");
        CHECK(s && s->lho == small_lho && s->lho > (4ull << 30) && s->size == 13 &&
                  !memcmp(zip_data(&z, s), "past four GiB", 13) && crc32_update(0, zip_data(&z, s), 13) == s->crc,
              "small record past 4 GiB: offset %llu", s ? (unsigned long long)s->lho : 0ull);
        if (s) printf("sparse Zip64 archive of %lld bytes: record at offset %llu read\n", (long long)st.st_size,
                      (unsigned long long)s->lho);
        zip_close(&z);
    }
    munmap(map, (size_t)st.st_size);
    /* the small record's central offset 4 GiB short (a 32-bit truncation) is refused */
    if (!write_sparse_zip(path, -(int64_t)(4ull << 30), &small_lho) && !stat(path, &st)) {
        fd = open(path, O_RDONLY);
        map = fd < 0 ? MAP_FAILED : mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (fd >= 0) close(fd);
        if (map != MAP_FAILED) {
            rc = zip_open(&z, map, (size_t)st.st_size, ZIP_NO_CRC, &e);
            CHECK(rc == -1 && strstr(e.msg, "archive/small: no local header"), "offset 4 GiB short: rc %d '%s'", rc,
                  rc ? e.msg : "");
            if (!rc) zip_close(&z);
            munmap(map, (size_t)st.st_size);
        }
    }
    unlink(path);
}

static void expect_refused(const char *file, const char *want)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", corpus, file);
    TensorSet ts;
    ts_init(&ts);
    Error e;
    int rc = pth_read(path, &ts, 0, &e);
    CHECK(rc == -1 && strstr(e.msg, want) && ts.n == 0, "%s: rc %d, message '%s' (want '%s')", file, rc, rc ? e.msg : "", want);
    ts_free(&ts);
}

static void expect_pickle_refused(const char *pkl, size_t len, const char *want)
{
    PickleDict d;
    Error e;
    int rc = pickle_parse(pkl, len, &d, &e);
    CHECK(rc == -1 && strstr(e.msg, want), "pickle: rc %d, message '%s' (want '%s')", rc, rc ? e.msg : "", want);
    if (!rc) pickle_free(&d);
}

int main(void)
{
    const char *top = getenv("TOP");
    snprintf(corpus, sizeof corpus, "%s/tests/fuzz/corpus/fuzz_pth", top ? top : ".");
    if (access(corpus, R_OK)) { printf("no corpus at %s\n", corpus); return 77; }
    test_torch_views("good_views.pth", "good_module_fp16.pth");                  /* torch 1.13 */
    test_torch_views("good_views_torch2.pth", "good_module_fp16_torch2.pth");    /* torch 2.15 layout */
    test_roundtrip();
    test_sparse_zip64();
    expect_refused("bad_evil_reduce_posix.pth", "GLOBAL posix.system refused");
    expect_refused("bad_overlap.pth", "overlaps");
    expect_refused("bad_short_storage.pth", "truncated storage");
    expect_refused("bad_bomb_deflate.pth", "compressed record (method 8) refused");
    expect_refused("bad_duplicate_name.pth", "duplicate entry");
    expect_refused("bad_view_out_of_bounds.pth", "lies outside its storage");
    expect_refused("bad_huge_numel.pth", "implausible");
    static const char os_system[] = "\x80\x02" "cos\nsystem\nX\x04\x00\x00\x00true\x85R.";
    expect_pickle_refused(os_system, sizeof os_system - 1, "GLOBAL os.system refused");
    static const char nested[] = "\x80\x02" "((((((((((((((((((((((((((((((((((((.";
    expect_pickle_refused(nested, sizeof nested - 1, "MARKs nested too deeply");
    static const char build_evil[] = "\x80\x02" "ccollections\nOrderedDict\n)R}X\x03\x00\x00\x00" "abcK\x01sb.";
    expect_pickle_refused(build_evil, sizeof build_evil - 1, "BUILD state with a key other than _metadata");
    static const char stop_early[] = "\x80\x02}";
    expect_pickle_refused(stop_early, sizeof stop_early - 1, "truncated pickle");
    return check_done();
}
