/* pth.h: PyTorch .pth checkpoints (torch.save zip format) in and out, safely.
 *
 * Reading = zip.h's strict container pass + pickle.h's recogniser + per-tensor
 * checks: every referenced data/<key> record exists and holds exactly
 * numel × itemsize bytes, every view (offset, size, stride) lies inside its
 * storage, `byteorder` (if present) is "little", `version` is present.
 * Tensors come out contiguous and row-major: borrowed from the mapping when
 * the view already is (and aligned), copied out otherwise (transposed views,
 * offsets into shared storages).  A `_forward_module.` name prefix (Lightning/
 * DeepSpeed wrappers) is stripped.  Nothing in the file is ever executed.
 *
 * Writing emits the torch 2.x layout byte-for-byte as miniz would (prefix
 * "archive/"; data.pkl, .format_version, .storage_alignment, byteorder,
 * data/0..n-1, version; 64-byte aligned records; CRC-32; Zip64 past 4 GiB),
 * atomically.  The output loads with torch.load(weights_only=True) and
 * torch.load(mmap=True). */
#ifndef RWKV7C_PTH_H
#define RWKV7C_PTH_H
#include <stddef.h>
#include "tensors.h"
#include "util.h"

enum { PTH_NO_CRC = 1 };   /* skip CRC-32 checks (files saved with compute_crc32=False) */

/* mmap path; ts must be empty (ts_init).  On failure ts stays empty. */
int pth_read(const char *path, TensorSet *ts, int flags, Error *e);
/* Parse a whole .pth held in memory; tensors may borrow from buf. */
int pth_parse(const void *buf, size_t len, TensorSet *ts, int flags, Error *e);
/* Write ts as a .pth atomically (temporary, fsync, rename). */
int pth_write(const char *path, const TensorSet *ts, int overwrite, Error *e);
/* 1 if the file starts with a zip local header ("PK\3\4"). */
int pth_sniff(const char *path);
#endif
