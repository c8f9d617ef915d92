/* binidx.h: Megatron MMIDIDX v1 datasets (PREFIX.bin + PREFIX.idx), as
 * RWKV-LM's make_data.py writes them and its trainer reads them (the format:
 * RWKV-Vibe/RWKV-LM-V7 src/binidx.py and make_data.py; dtype codes and the
 * reference loaders' checks: NVIDIA/Megatron-LM
 * megatron/core/datasets/indexed_dataset.py).
 *
 *   .bin  every sequence's tokens, concatenated; no header, no padding
 *   .idx  "MMIDIDX\0\0", u64 version 1, u8 dtype code (8 uint16, 4 int32),
 *         u64 S, u64 D, int32 sizes[S], int64 pointers[S] (byte offsets
 *         into .bin), int64 doc_idx[D]; little-endian, unaligned.
 * For RWKV data one sequence is one document, each ending with token 0, and
 * doc_idx = 0..S.
 *
 * The reader validates everything the format allows to be checked (the
 * reference loaders check only magic, version and dtype): exact .idx length, magic, version, dtype, sizes/pointers consistency, .bin
 * length, doc_idx), so a truncated or mismatched pair fails at open with a
 * message naming the file.  The writer streams: tokens go to a temporary
 * .bin, only the index sizes (4 bytes per document) stay in memory, and both
 * files appear (.bin first, .idx last) only when commit succeeds.
 *
 * Commit and open serialise on a flock(2) of the directory holding PREFIX
 * (exclusive while a writer puts the pair in place, shared while a reader
 * opens it), so concurrent writers leave one writer's whole pair and a reader
 * never mixes two; the lock leaves no file behind. */
#ifndef RWKV7C_BINIDX_H
#define RWKV7C_BINIDX_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define BINIDX_MAGIC "MMIDIDX\0\0"
#define BINIDX_HEADER_BYTES 34
#define BINIDX_UINT16 8          /* dtype codes (Megatron and RWKV agree on these two) */
#define BINIDX_INT32 4
#define BINIDX_MAX_SEQUENCES 0x7FFFFFFFull   /* sizes are int32, and so is S in practice */

/* A parsed, validated .idx (pointers into the caller's buffer). */
typedef struct {
    int dtype;                   /* BINIDX_UINT16 or BINIDX_INT32 */
    unsigned itemsize;           /* 2 or 4 */
    uint64_t sequences;          /* S */
    uint64_t doc_idx_len;        /* D = documents + 1 */
    const unsigned char *sizes;      /* int32[S], unaligned */
    const unsigned char *pointers;   /* int64[S], unaligned */
    const unsigned char *doc_idx;    /* int64[D], unaligned */
    uint64_t bin_bytes;          /* the .bin length this index describes */
} BinidxIndex;

/* Parse and validate an .idx held in memory; name is used in messages. */
int binidx_parse_index(const void *buf, size_t len, const char *name, BinidxIndex *ix, Error *e);
uint32_t binidx_size(const BinidxIndex *ix, uint64_t i);      /* tokens in sequence i */
uint64_t binidx_pointer(const BinidxIndex *ix, uint64_t i);   /* byte offset in .bin */
uint64_t binidx_doc_idx(const BinidxIndex *ix, uint64_t i);
const char *binidx_dtype_name(int dtype);                     /* "uint16", "int32" */

/* An open dataset: both files mapped read-only. */
typedef struct {
    BinidxIndex index;
    char *bin_path, *idx_path;
    const void *tokens;          /* .bin contents (page aligned); NULL when empty */
    uint64_t token_count;        /* = .bin bytes / itemsize: make_data's data_size */
    uint64_t documents;          /* D - 1 */
    void *idx_map, *bin_map;
    size_t idx_len, bin_len;
} BinidxDataset;

/* PREFIX may also be given as PREFIX.bin or PREFIX.idx.  Validates the .idx
 * against the .bin; on failure ds is left closed.  Both must be regular files
 * (a FIFO is refused at once, never waited on). */
int  binidx_open(const char *prefix, BinidxDataset *ds, Error *e);
void binidx_close(BinidxDataset *ds);

static inline uint32_t binidx_token(const BinidxDataset *ds, uint64_t i)
{
    return ds->index.itemsize == 2 ? ((const uint16_t *)ds->tokens)[i]
                                   : (uint32_t)((const int32_t *)ds->tokens)[i];
}

/* One streaming pass over the tokens. */
typedef struct {
    uint64_t max_id;             /* largest token id (0 when empty) */
    uint64_t without_eod;        /* sequences that do not end with token 0 */
    uint64_t negative_ids;       /* int32 datasets only */
    uint64_t bin_xxh3, idx_xxh3; /* XXH3-64 of each whole file */
} BinidxStats;
int binidx_scan(const BinidxDataset *ds, BinidxStats *st, Error *e);

/* "x/demo.bin" -> "x/demo" (also .idx); other names are kept.  Malloc'd. */
char *binidx_prefix(const char *arg);

/* ---- streaming writer ---- */
typedef struct BinidxWriter BinidxWriter;

/* An output prefix must name files: not empty and not ending in '/' (after a
 * .bin/.idx suffix is dropped), or the dataset would be hidden ".bin"/".idx". */
int binidx_prefix_check(const char *prefix, Error *e);

/* Fails at once if PREFIX.bin or PREFIX.idx exists and overwrite is 0, or if
 * either is not a regular file (a device, FIFO or descriptor: a dataset is two
 * regular files, and the .bin is re-read when it widens); a symlink to a
 * regular file is followed (the file is replaced, the link stays). */
BinidxWriter *binidx_writer_open(const char *prefix, int overwrite, Error *e);
/* Name the input in messages about the ids added ("NAME: document N: ..."). */
int  binidx_writer_set_source(BinidxWriter *w, const char *name, Error *e);
/* One document (its tokens, normally ending with 0).  The dataset is uint16
 * until an id above 65535 arrives; the tokens so far are then widened to
 * int32 in place.  Ids above INT32_MAX are an error. */
int  binidx_writer_add(BinidxWriter *w, const uint32_t *ids, size_t n, Error *e);
/* Every sequence and document of an open dataset, in order (for merging). */
int  binidx_writer_append(BinidxWriter *w, const BinidxDataset *ds, Error *e);
/* Write the .idx and fsync both; only then, under the directory lock, put
 * .bin then .idx in place (util.h atomic_commit_all): if the second cannot be,
 * the first is put back, so an old dataset survives any failure.  Frees w.
 * On failure nothing new is left behind. */
int  binidx_writer_commit(BinidxWriter *w, Error *e);
/* Discard everything written; frees w. */
void binidx_writer_abort(BinidxWriter *w);
uint64_t binidx_writer_documents(const BinidxWriter *w);
uint64_t binidx_writer_tokens(const BinidxWriter *w);
int      binidx_writer_dtype(const BinidxWriter *w);
#endif
