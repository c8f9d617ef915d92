/* zip.c: strict stored-ZIP reader and miniz-compatible writer (see zip.h). */
#include "zip.h"
#include "growbuf.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL   0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_DESC    0x08074b50u
#define SIG_EOCD    0x06054b50u
#define SIG_Z64EOCD 0x06064b50u
#define SIG_Z64LOC  0x07064b50u
#define U32MAX      0xffffffffu
#define FLAG_DESC   0x0008u
#define FLAG_UTF8   0x0800u

/* ---- CRC-32 (IEEE, reflected), slicing by 8 ---- */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t crc32_update(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint32_t lo = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        lo ^= c;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
            crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
            crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* ---- reader ---- */
void zip_close(ZipArchive *z)
{
    if (!z) return;
    for (int i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    free(z->byname);
    memset(z, 0, sizeof *z);
}

/* A name a .pth may carry: no NUL/control bytes, no backslash, not absolute,
 * no empty, "." or ".." components. */
static const char *bad_name(const char *s, size_t n)
{
    if (n == 0) return "empty name";
    if (s[0] == '/') return "absolute path";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) return "NUL byte in name";
        if (c < 0x20 || c == 0x7f) return "control character in name";
        if (c == '\\') return "backslash in name";
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            size_t len = i - start;
            if (len == 0) return i == n ? "name ends with '/' (a folder entry)" : "empty path component";
            if ((len == 1 && s[start] == '.') || (len == 2 && s[start] == '.' && s[start + 1] == '.'))
                return "'.' or '..' path component";
            start = i + 1;
        }
    }
    return NULL;
}

/* Walk an extra field; require the blocks to tile it exactly and find the Zip64 block. */
static int walk_extra(const uint8_t *x, size_t xlen, const uint8_t **z64, size_t *z64len)
{
    *z64 = NULL;
    *z64len = 0;
    size_t p = 0;
    while (p < xlen) {
        if (xlen - p < 4) return -1;
        uint16_t id = load_le16(x + p), sz = load_le16(x + p + 2);
        if (sz > xlen - p - 4) return -1;
        if (id == 0x0001) {
            if (*z64) return -1;
            *z64 = x + p + 4;
            *z64len = sz;
        }
        p += 4 + (size_t)sz;
    }
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const ZipEntry *const *)a)->name, (*(const ZipEntry *const *)b)->name);
}
static int cmp_lho(const void *a, const void *b)
{
    uint64_t x = (*(const ZipEntry *const *)a)->lho, y = (*(const ZipEntry *const *)b)->lho;
    return x < y ? -1 : x > y;
}

/* Check the data descriptor after en's data; set en->end. */
static int read_descriptor(const ZipArchive *z, ZipEntry *en, uint64_t limit, Error *e)
{
    uint64_t p = en->data + en->size;
    const uint8_t *b = z->buf;
    int has_sig = limit - p >= 4 && load_le32(b + p) == SIG_DESC;
    uint64_t q = p + (has_sig ? 4 : 0);
    /* 4-byte sizes (16 bytes with signature), then 8-byte sizes (24). */
    if (limit - q >= 12 && load_le32(b + q) == en->crc && load_le32(b + q + 4) == en->size && load_le32(b + q + 8) == en->size) {
        en->end = q + 12;
        return 0;
    }
    if (limit - q >= 20 && load_le32(b + q) == en->crc && load_le64(b + q + 4) == en->size && load_le64(b + q + 12) == en->size) {
        en->end = q + 20;
        return 0;
    }
    if (limit - p < 12) return fail(e, "%s: truncated (data descriptor missing)", en->name);
    return fail(e, "%s: data descriptor disagrees with the central directory", en->name);
}

/* Where the central directory lies, from the end records. */
typedef struct { uint64_t off, size, n; } CentralDir;

/* End of central directory (and the Zip64 end records when present). */
static int read_end_records(const uint8_t *b, size_t len, CentralDir *cd, Error *e)
{
    /* The last record whose comment ends exactly at EOF. */
    size_t eocd = (size_t)-1;
    size_t lowest = len - 22 > 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lowest;) {
        if (load_le32(b + i) == SIG_EOCD && i + 22 + load_le16(b + i + 20) == len) { eocd = i; break; }
    }
    if (eocd == (size_t)-1)
        return fail(e, "no zip end-of-central-directory record at the end (truncated file, e.g. an interrupted torch.save?)");
    if (load_le16(b + eocd + 4) != 0 || load_le16(b + eocd + 6) != 0) return fail(e, "multi-disk zip archives are not supported");
    uint64_t n_disk = load_le16(b + eocd + 8), n_total = load_le16(b + eocd + 10);
    uint64_t cd_size = load_le32(b + eocd + 12), cd_off = load_le32(b + eocd + 16);
    if (n_disk != n_total) return fail(e, "multi-disk zip archives are not supported");
    uint64_t records_end = eocd;   /* where the central directory must end */

    int saturated = n_total == 0xffff || cd_size == U32MAX || cd_off == U32MAX;
    if (eocd >= 20 && load_le32(b + eocd - 20) == SIG_Z64LOC) {
        const uint8_t *loc = b + eocd - 20;
        uint64_t z64 = load_le64(loc + 8);
        if (load_le32(loc + 4) != 0 || load_le32(loc + 16) != 1) return fail(e, "multi-disk zip archives are not supported");
        if (z64 > eocd - 20 || eocd - 20 - z64 < 56 || load_le32(b + z64) != SIG_Z64EOCD)
            return fail(e, "bad Zip64 end-of-central-directory locator");
        const uint8_t *r = b + z64;
        if (load_le64(r + 4) != eocd - 20 - z64 - 12) return fail(e, "Zip64 end record size disagrees with its position");
        if (load_le32(r + 16) != 0 || load_le32(r + 20) != 0 || load_le64(r + 24) != load_le64(r + 32))
            return fail(e, "multi-disk zip archives are not supported");
        uint64_t n64 = load_le64(r + 32), size64 = load_le64(r + 40), off64 = load_le64(r + 48);
        if ((n_total != 0xffff && n_total != n64) || (cd_size != U32MAX && cd_size != size64) ||
            (cd_off != U32MAX && cd_off != off64))
            return fail(e, "Zip64 end record disagrees with the classic end record");
        n_total = n64;
        cd_size = size64;
        cd_off = off64;
        records_end = z64;
    } else if (saturated) {
        return fail(e, "Zip64 end-of-central-directory record missing");
    }
    if (cd_off > records_end || cd_size != records_end - cd_off)
        return fail(e, "central directory (offset %llu, %llu bytes) does not end where the end record begins (%llu): truncated or padded file",
                    (unsigned long long)cd_off, (unsigned long long)cd_size, (unsigned long long)records_end);
    if (n_total == 0) return fail(e, "empty zip archive");
    if (n_total > ZIP_MAX_ENTRIES || n_total > cd_size / 46)
        return fail(e, "implausible entry count %llu", (unsigned long long)n_total);
    *cd = (CentralDir){ cd_off, cd_size, n_total };
    return 0;
}

/* Entry k's name, checked for path tricks, copied into en->name. */
static int read_name(ZipEntry *en, uint64_t k, const char *nm, size_t nlen, Error *e)
{
    const char *why = nlen > ZIP_MAX_NAME ? "name too long" : bad_name(nm, nlen);
    if (why) {
        char shown[201];   /* never echo control bytes to a terminal */
        size_t sl = nlen > 200 ? 200 : nlen;
        for (size_t q = 0; q < sl; q++) shown[q] = nm[q] < 0x20 || nm[q] == 0x7f ? '?' : nm[q];
        shown[sl] = 0;
        return fail(e, "entry %llu '%s': %s (path tricks are refused)", (unsigned long long)k, shown, why);
    }
    en->name = malloc(nlen + 1);
    if (!en->name) return fail(e, "out of memory");
    memcpy(en->name, nm, nlen);
    en->name[nlen] = 0;
    return 0;
}

/* One central-directory record at c (room bytes left); sets *used to its length. */
static int read_central_entry(ZipArchive *z, uint64_t k, const uint8_t *c, uint64_t room, uint64_t *used, Error *e)
{
    if (room < 46 || load_le32(c) != SIG_CENTRAL)
        return fail(e, "central directory entry %llu is damaged", (unsigned long long)k);
    uint16_t fl = load_le16(c + 8), method = load_le16(c + 10);
    uint32_t crc = load_le32(c + 16);
    uint64_t csize = load_le32(c + 20), usize = load_le32(c + 24);
    size_t nlen = load_le16(c + 28), xlen = load_le16(c + 30), clen = load_le16(c + 32);
    uint64_t disk = load_le16(c + 34), lho = load_le32(c + 42);
    if (room - 46 < nlen + xlen + clen)
        return fail(e, "central directory entry %llu runs past the directory", (unsigned long long)k);
    ZipEntry *en = &z->e[z->n];
    if (read_name(en, k, (const char *)c + 46, nlen, e)) return -1;
    z->n++;
    const uint8_t *x64;
    size_t x64len;
    if (walk_extra(c + 46 + nlen, xlen, &x64, &x64len))
        return fail(e, "%s: malformed extra field in the central directory", en->name);
    size_t need = (usize == U32MAX) + (csize == U32MAX) + (lho == U32MAX) + (disk == 0xffff);
    if (need) {
        if (!x64 || x64len < need * 8) return fail(e, "%s: Zip64 extra field missing or short", en->name);
        size_t q = 0;
        if (usize == U32MAX) { usize = load_le64(x64 + q); q += 8; }
        if (csize == U32MAX) { csize = load_le64(x64 + q); q += 8; }
        if (lho == U32MAX) { lho = load_le64(x64 + q); q += 8; }
        if (disk == 0xffff) { disk = load_le32(x64 + q); }
    }
    if (fl & 0x0041) return fail(e, "%s: encrypted record refused", en->name);
    if (method != 0)
        return fail(e, "%s: compressed record (method %u) refused: .pth records are stored, and inflating untrusted data is a zip-bomb risk",
                    en->name, method);
    if (fl & ~(FLAG_DESC | FLAG_UTF8)) return fail(e, "%s: unsupported zip flags 0x%04x", en->name, fl);
    if (csize != usize)
        return fail(e, "%s: stored record with compressed size %llu != size %llu", en->name,
                    (unsigned long long)csize, (unsigned long long)usize);
    if (disk != 0) return fail(e, "multi-disk zip archives are not supported");
    en->lho = lho;
    en->size = usize;
    en->crc = crc;
    en->flags = fl;
    *used = 46 + nlen + xlen + clen;
    return 0;
}

static int read_central_dir(ZipArchive *z, const CentralDir *cd, Error *e)
{
    z->e = calloc(cd->n, sizeof *z->e);
    if (!z->e) return fail(e, "out of memory");
    uint64_t p = cd->off, cd_end = cd->off + cd->size, used = 0;
    for (uint64_t k = 0; k < cd->n; k++, p += used)
        if (read_central_entry(z, k, z->buf + p, cd_end - p, &used, e)) return -1;
    if (p != cd_end) return fail(e, "central directory has %llu trailing bytes", (unsigned long long)(cd_end - p));
    return 0;
}

/* One top folder holds everything; it becomes z->prefix. */
static int check_folder(ZipArchive *z, Error *e)
{
    const char *slash = strchr(z->e[0].name, '/');
    if (!slash) return fail(e, "first entry '%s' is not in a folder (not a torch .pth archive)", z->e[0].name);
    size_t plen = (size_t)(slash - z->e[0].name);
    memcpy(z->prefix, z->e[0].name, plen);
    z->prefix[plen] = 0;
    for (int i = 0; i < z->n; i++)
        if (strncmp(z->e[i].name, z->prefix, plen) || z->e[i].name[plen] != '/')
            return fail(e, "entry '%s' lies outside the archive folder '%s/'", z->e[i].name, z->prefix);
    return 0;
}

/* Refuse duplicate names and build z->byname; *v gets the entries sorted by name. */
static int index_names(ZipArchive *z, ZipEntry ***v_out, Error *e)
{
    ZipEntry **v = *v_out = malloc(z->n * sizeof *v);
    if (!v) return fail(e, "out of memory");
    for (int i = 0; i < z->n; i++) v[i] = &z->e[i];
    qsort(v, z->n, sizeof *v, cmp_name);
    for (int i = 1; i < z->n; i++)
        if (!strcmp(v[i]->name, v[i - 1]->name))
            return fail(e, "duplicate entry '%s' (different readers could pick different copies)", v[i]->name);
    z->byname = malloc(z->n * sizeof *z->byname);
    if (!z->byname) return fail(e, "out of memory");
    for (int i = 0; i < z->n; i++) z->byname[i] = (int)(v[i] - z->e);
    return 0;
}

/* en's local header must agree with its central-directory record; sets en->data and en->end. */
static int check_local_header(const ZipArchive *z, ZipEntry *en, uint64_t cd_off, Error *e)
{
    const uint8_t *b = z->buf;
    if (en->lho > cd_off || cd_off - en->lho < 30 || load_le32(b + en->lho) != SIG_LOCAL)
        return fail(e, "%s: no local header at offset %llu", en->name, (unsigned long long)en->lho);
    const uint8_t *l = b + en->lho;
    size_t nlen = load_le16(l + 26), xlen = load_le16(l + 28);
    if (load_le16(l + 6) != en->flags || load_le16(l + 8) != 0)
        return fail(e, "%s: local header disagrees with the central directory (flags/method)", en->name);
    if (nlen != strlen(en->name) || cd_off - en->lho - 30 < nlen + xlen || memcmp(l + 30, en->name, nlen))
        return fail(e, "%s: local header name disagrees with the central directory", en->name);
    const uint8_t *x64;
    size_t x64len;
    if (walk_extra(l + 30 + nlen, xlen, &x64, &x64len)) return fail(e, "%s: malformed local extra field", en->name);
    en->data = en->lho + 30 + nlen + xlen;
    if (en->size > cd_off - en->data)
        return fail(e, "%s: record (%llu bytes at %llu) runs past the central directory: truncated or corrupt", en->name,
                    (unsigned long long)en->size, (unsigned long long)en->data);
    uint32_t lcrc = load_le32(l + 14);
    uint64_t lcs = load_le32(l + 18), lus = load_le32(l + 22);
    if (en->flags & FLAG_DESC) {
        if (!((lcrc == 0 && lcs == 0 && lus == 0) || (lcrc == en->crc && lcs == en->size && lus == en->size)) &&
            !(lcs == U32MAX && lus == U32MAX))
            return fail(e, "%s: local header disagrees with the central directory (sizes)", en->name);
        return read_descriptor(z, en, cd_off, e);
    }
    if (lus == U32MAX && lcs == U32MAX && x64 && x64len >= 16) {
        lus = load_le64(x64);
        lcs = load_le64(x64 + 8);
    }
    if (lcrc != en->crc || lcs != en->size || lus != en->size)
        return fail(e, "%s: local header disagrees with the central directory (CRC/sizes)", en->name);
    en->end = en->data + en->size;
    return 0;
}

/* Records tile [0, cd_off) exactly: no overlap, no hidden bytes.  Reorders v. */
static int check_tiling(const ZipArchive *z, ZipEntry **v, uint64_t cd_off, Error *e)
{
    qsort(v, z->n, sizeof *v, cmp_lho);
    uint64_t at = 0;
    for (int i = 0; i < z->n; i++) {
        if (v[i]->lho < at)
            return fail(e, "%s: overlaps the previous entry (overlapping entries are a zip-bomb trick)", v[i]->name);
        if (v[i]->lho > at)
            return fail(e, "%llu unaccounted bytes before entry %s", (unsigned long long)(v[i]->lho - at), v[i]->name);
        at = v[i]->end;
    }
    if (at != cd_off) return fail(e, "%llu unaccounted bytes before the central directory", (unsigned long long)(cd_off - at));
    return 0;
}

static int check_crcs(const ZipArchive *z, Error *e)
{
    for (int i = 0; i < z->n; i++) {
        const ZipEntry *en = &z->e[i];
        uint32_t got = crc32_update(0, z->buf + en->data, en->size);
        if (got != en->crc)
            return fail(e, "%s: CRC-32 mismatch (stored %08x, data %08x): the file is corrupt", en->name, en->crc, got);
    }
    return 0;
}

int zip_open(ZipArchive *z, const void *buf, size_t len, int flags, Error *e)
{
    memset(z, 0, sizeof *z);
    z->buf = buf;
    z->len = len;
    if (len < 22) return fail(e, "not a zip archive (%zu bytes, truncated?)", len);
    CentralDir cd = { 0 };
    if (read_end_records(buf, len, &cd, e)) return -1;
    ZipEntry **v = NULL;   /* entries by name, then by offset */
    if (read_central_dir(z, &cd, e) || check_folder(z, e) || index_names(z, &v, e)) goto bad;
    for (int i = 0; i < z->n; i++)
        if (check_local_header(z, &z->e[i], cd.off, e)) goto bad;
    if (check_tiling(z, v, cd.off, e)) goto bad;
    if (!(flags & ZIP_NO_CRC) && check_crcs(z, e)) goto bad;
    free(v);
    return 0;
bad:   /* e is already formatted: closing z may free the names it quoted */
    free(v);
    zip_close(z);
    return -1;
}

const ZipEntry *zip_find(const ZipArchive *z, const char *rel)
{
    size_t plen = strlen(z->prefix), rlen = strlen(rel);
    if (rlen > ZIP_MAX_NAME) return NULL;
    char full[2 * ZIP_MAX_NAME + 2];
    memcpy(full, z->prefix, plen);
    full[plen] = '/';
    memcpy(full + plen + 1, rel, rlen + 1);
    int lo = 0, hi = z->n - 1;
    while (lo <= hi) {   /* binary search over the names */
        int mid = lo + (hi - lo) / 2, c = strcmp(z->e[z->byname[mid]].name, full);
        if (c == 0) return &z->e[z->byname[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* ---- writer ---- */
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t sat32(uint64_t v) { return v >= U32MAX ? U32MAX : (uint32_t)v; }

void zip_writer_init(ZipWriter *w, FILE *fp)
{
    memset(w, 0, sizeof *w);
    w->fp = fp;
}

void zip_writer_free(ZipWriter *w)
{
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    w->e = NULL;
    w->n = w->cap = 0;
}

static int out(ZipWriter *w, const void *p, size_t n, Error *e)
{
    if (n && fwrite(p, 1, n, w->fp) != n) return fail(e, "write failed: %s", strerror(errno));
    w->pos += n;
    return 0;
}

int zip_begin(ZipWriter *w, const char *name, uint64_t size, Error *e)
{
    if (w->open) return fail(e, "zip: record still open");
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > ZIP_MAX_NAME) return fail(e, "zip: bad record name");
    if (grow(&w->e, &w->cap, (size_t)w->n + 1)) return fail(e, "out of memory");
    uint64_t cursor = w->pos;
    int big = size >= U32MAX, far = cursor >= U32MAX;
    /* Same arithmetic as torch's detail::getPadding, so data lands where miniz puts it. */
    uint64_t start = cursor + 30 + nlen + 4;
    size_t z64len = 0;
    if (big || far) z64len = (big ? 16 : 0) + (far ? 8 : 0);
    if (z64len) start += 4 + z64len;
    size_t pad = (size_t)((ZIP_ALIGN - start % ZIP_ALIGN) % ZIP_ALIGN);
    uint16_t fl = size ? (FLAG_DESC | FLAG_UTF8) : FLAG_UTF8;
    size_t xlen = (z64len ? 4 + z64len : 0) + 4 + pad;
    uint8_t h[30 + 4 + 24 + 4 + ZIP_ALIGN];
    memset(h, 0, sizeof h);
    put32(h, SIG_LOCAL);
    put16(h + 6, fl);
    put16(h + 26, (uint16_t)nlen);
    put16(h + 28, (uint16_t)xlen);
    if (out(w, h, 30, e) || out(w, name, nlen, e)) return -1;
    uint8_t *x = h;
    size_t q = 0;
    if (z64len) {
        put16(x, 1);
        put16(x + 2, (uint16_t)z64len);
        q = 4;
        if (big) { put64(x + q, size); put64(x + q + 8, 0); q += 16; }   /* miniz: compressed size 0 */
        if (far) { put64(x + q, cursor); q += 8; }
    }
    x[q] = 'F'; x[q + 1] = 'B';
    put16(x + q + 2, (uint16_t)pad);
    memset(x + q + 4, 'Z', pad);
    if (out(w, x, q + 4 + pad, e)) return -1;
    ZipOutEntry *en = &w->e[w->n];
    en->name = strdup(name);
    if (!en->name) return fail(e, "out of memory");
    en->lho = cursor;
    en->size = size;
    en->crc = 0;
    en->flags = fl;
    w->n++;
    w->open = 1;
    w->written = 0;
    w->crc = 0;
    return 0;
}

int zip_append(ZipWriter *w, const void *data, size_t n, Error *e)
{
    if (!w->open) return fail(e, "zip: no open record");
    if (n > w->e[w->n - 1].size - w->written) return fail(e, "zip: record %s longer than declared", w->e[w->n - 1].name);
    w->crc = crc32_update(w->crc, data, n);
    w->written += n;
    return out(w, data, n, e);
}

int zip_end(ZipWriter *w, Error *e)
{
    if (!w->open) return fail(e, "zip: no open record");
    ZipOutEntry *en = &w->e[w->n - 1];
    if (w->written != en->size) return fail(e, "zip: record %s shorter than declared", en->name);
    en->crc = w->crc;
    w->open = 0;
    if (!en->size) return 0;
    uint8_t d[24];
    put32(d, SIG_DESC);
    put32(d + 4, en->crc);
    if (en->size >= U32MAX || en->lho >= U32MAX) {
        put64(d + 8, en->size);
        put64(d + 16, en->size);
        return out(w, d, 24, e);
    }
    put32(d + 8, (uint32_t)en->size);
    put32(d + 12, (uint32_t)en->size);
    return out(w, d, 16, e);
}

int zip_add(ZipWriter *w, const char *name, const void *data, uint64_t size, Error *e)
{
    if (zip_begin(w, name, size, e)) return -1;
    if (size && zip_append(w, data, (size_t)size, e)) return -1;
    return zip_end(w, e);
}

int zip_finish(ZipWriter *w, Error *e)
{
    if (w->open) { zip_writer_free(w); return fail(e, "zip: record still open"); }
    uint64_t cd_off = w->pos;
    int rc = 0;
    for (int i = 0; i < w->n && !rc; i++) {
        const ZipOutEntry *en = &w->e[i];
        size_t nlen = strlen(en->name);
        int big = en->size >= U32MAX, far = en->lho >= U32MAX;
        size_t z64len = (big ? 16 : 0) + (far ? 8 : 0);
        uint8_t c[46 + 4 + 24];
        memset(c, 0, sizeof c);
        put32(c, SIG_CENTRAL);
        put16(c + 8, en->flags);
        put32(c + 16, en->crc);
        put32(c + 20, sat32(en->size));
        put32(c + 24, sat32(en->size));
        put16(c + 28, (uint16_t)nlen);
        put16(c + 30, (uint16_t)(z64len ? 4 + z64len : 0));
        put32(c + 42, sat32(en->lho));
        rc = out(w, c, 46, e) || out(w, en->name, nlen, e);
        if (!rc && z64len) {
            uint8_t *x = c + 46;
            size_t q = 4;
            put16(x, 1);
            put16(x + 2, (uint16_t)z64len);
            if (big) { put64(x + q, en->size); put64(x + q + 8, en->size); q += 16; }
            if (far) { put64(x + q, en->lho); q += 8; }
            rc = out(w, x, q, e);
        }
    }
    if (!rc) {
        uint64_t cd_size = w->pos - cd_off, z64 = w->pos, n = (uint64_t)w->n;
        uint8_t r[56 + 20 + 22];
        memset(r, 0, sizeof r);
        put32(r, SIG_Z64EOCD);
        put64(r + 4, 44);
        put16(r + 12, 0x031e);
        put16(r + 14, 45);
        put64(r + 24, n);
        put64(r + 32, n);
        put64(r + 40, cd_size);
        put64(r + 48, cd_off);
        uint8_t *l = r + 56;
        put32(l, SIG_Z64LOC);
        put64(l + 8, z64);
        put32(l + 16, 1);
        uint8_t *d = l + 20;
        put32(d, SIG_EOCD);
        put16(d + 8, n >= 0xffff ? 0xffff : (uint16_t)n);
        put16(d + 10, n >= 0xffff ? 0xffff : (uint16_t)n);
        put32(d + 12, sat32(cd_size));
        put32(d + 16, sat32(cd_off));
        rc = out(w, r, sizeof r, e);
    }
    zip_writer_free(w);
    return rc;
}
