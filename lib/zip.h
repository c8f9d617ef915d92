/* zip.h: a strict reader and a torch-compatible writer for *stored* ZIP
 * archives, the container of PyTorch .pth files (pytorch/pytorch
 * caffe2/serialize/inline_container.cc; see doc/pth-format.md).
 *
 * The reader never inflates and never extracts.  It works on a buffer (the
 * mmap of a file) and refuses anything a .pth does not need: compressed or
 * encrypted records, multi-disk archives, duplicate names, names with path
 * tricks ("..", "/x", "\\", control bytes), entries outside the archive's one
 * top folder, local headers that disagree with the central directory,
 * overlapping records, bytes not accounted for by any record (polyglots,
 * hidden archives), truncation, and wrong CRC-32s.  Zip64 is supported.
 *
 * The writer emits exactly what torch's PyTorchStreamWriter (miniz) does:
 * flags 0x0808 with data descriptors, record data 64-byte aligned through an
 * "FB" (0x4246) extra field, real CRC-32s, Zip64 fields past 4 GiB and the
 * Zip64 end records always. */
#ifndef RWKV7C_ZIP_H
#define RWKV7C_ZIP_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "util.h"

#define ZIP_MAX_ENTRIES 1000000
#define ZIP_MAX_NAME    4096
#define ZIP_ALIGN       64

typedef struct {
    char    *name;       /* full name, NUL-terminated ("archive/data/0") */
    uint64_t lho;        /* local header offset */
    uint64_t data;       /* offset of the first data byte */
    uint64_t size;       /* stored = uncompressed size */
    uint64_t end;        /* one past the record, data descriptor included */
    uint32_t crc;
    uint16_t flags;
} ZipEntry;

typedef struct {
    const uint8_t *buf;
    size_t         len;
    ZipEntry      *e;       /* in central-directory order */
    int            n;
    int           *byname;  /* entry indices sorted by name, for zip_find */
    char           prefix[ZIP_MAX_NAME + 1];   /* top folder, without the '/' */
} ZipArchive;

enum { ZIP_NO_CRC = 1 };   /* skip CRC-32 checks (files saved with compute_crc32=False) */

/* Parse and validate buf[0..len).  Entries borrow nothing from buf except
 * through offsets; z->buf is kept for zip_data.  Returns 0 or -1 with e set. */
int  zip_open(ZipArchive *z, const void *buf, size_t len, int flags, Error *e);
void zip_close(ZipArchive *z);
/* Find "prefix/rel" (rel without the top folder), or NULL. */
const ZipEntry *zip_find(const ZipArchive *z, const char *rel);
static inline const uint8_t *zip_data(const ZipArchive *z, const ZipEntry *en) { return z->buf + en->data; }

uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);   /* start with 0 */

/* ---- writer ---- */
typedef struct {
    char    *name;
    uint64_t lho, size;
    uint32_t crc;
    uint16_t flags;
} ZipOutEntry;

typedef struct {
    FILE        *fp;
    uint64_t     pos;
    ZipOutEntry *e;
    int          n;
    size_t       cap;
    int          open;        /* a record is begun and not yet ended */
    uint64_t     written;     /* bytes appended to the open record */
    uint32_t     crc;         /* running CRC-32 of the open record */
} ZipWriter;

/* fp must be positioned at 0 (a fresh file); pos counts bytes from there. */
void zip_writer_init(ZipWriter *w, FILE *fp);
/* Begin a record of known size: local header, FB padding (and Zip64 extra). */
int  zip_begin(ZipWriter *w, const char *name, uint64_t size, Error *e);
/* Append data to the open record (CRC computed as it goes). */
int  zip_append(ZipWriter *w, const void *data, size_t n, Error *e);
/* Close the open record: checks the size, writes the data descriptor. */
int  zip_end(ZipWriter *w, Error *e);
/* One-shot record. */
int  zip_add(ZipWriter *w, const char *name, const void *data, uint64_t size, Error *e);
/* Central directory, Zip64 end record and locator, end record.  Frees w. */
int  zip_finish(ZipWriter *w, Error *e);
void zip_writer_free(ZipWriter *w);
#endif
