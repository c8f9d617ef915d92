/* safetensors.h: the project's checkpoint format (huggingface/safetensors
 * README.md "Format"; see doc/pth-format.md).
 *
 * Reading is strict: header size bounded, JSON parsed fully, dtypes known,
 * offsets contiguous from 0, non-overlapping, checked multiplication, the
 * file exactly covered.  Writing is atomic (temporary, fsync, rename).
 *
 * Integrity: st_write stores an XXH3-64 checksum of every tensor's bytes in
 * the metadata (key "xxh3:<tensor name>", 16 lowercase hex digits); st_read
 * verifies every checksum present and fails naming the tensor on mismatch. */
#ifndef RWKV7C_SAFETENSORS_H
#define RWKV7C_SAFETENSORS_H
#include <stddef.h>
#include "tensors.h"
#include "util.h"

/* mmap path read-only; tensors borrow from the mapping (ts->map). */
int st_read(const char *path, TensorSet *ts, Error *e);
/* Parse from memory (used by st_read and the fuzz target); tensors borrow from buf. */
int st_parse(const void *buf, size_t len, TensorSet *ts, Error *e);
/* Write ts (with its string metadata, plus checksums) atomically. */
int st_write(const char *path, const TensorSet *ts, int overwrite, Error *e);
/* 1 if the first n bytes of a file start like a safetensors file (8-byte length then '{'). */
int st_sniff_head(const unsigned char *b, size_t n);
#endif
