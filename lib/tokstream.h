/* tokstream.h: the token stream that rwkv-tokenize writes and binidx-write reads.
 *
 * Binary, little-endian:
 *   header   8 bytes  "RWKVTOK" 0x01
 *   document u32 n (n <= TOKSTREAM_MAX_DOC), then n u32 token ids
 *   ...
 *   closing  u32 0xFFFFFFFF, u64 documents, u64 tokens, u64 XXH3-64 of every
 *            id written (their little-endian u32 bytes, in order)
 * Only a producer that finished cleanly writes the closing record, so a
 * consumer on the other end of a pipe can tell a complete stream from one cut
 * short by a failing or killed producer, whose exit status it cannot see. */
#ifndef RWKV7C_TOKSTREAM_H
#define RWKV7C_TOKSTREAM_H
#include <stdint.h>
#include <stdio.h>
#include "util.h"

#define TOKSTREAM_MAGIC "RWKVTOK\x01"
#define TOKSTREAM_END 0xFFFFFFFFu
#define TOKSTREAM_MAX_DOC 0xFFFFFF00u

typedef struct TokWriter TokWriter;
TokWriter *tokw_open(FILE *fp, Error *e);            /* writes the header */
int  tokw_doc(TokWriter *w, const uint32_t *ids, size_t n, Error *e);
int  tokw_close(TokWriter *w, Error *e);             /* writes the closing record, flushes */
void tokw_free(TokWriter *w);                        /* frees without closing (failure path) */

typedef struct TokReader TokReader;
/* name is used in messages. */
TokReader *tokr_open(FILE *fp, const char *name, Error *e);
/* Next document: 1 with *ids and *n set (valid until the next call), 0 after a
 * verified closing record, -1 on error (including a missing closing record). */
int  tokr_next(TokReader *r, const uint32_t **ids, size_t *n, Error *e);
uint64_t tokr_documents(const TokReader *r);
uint64_t tokr_tokens(const TokReader *r);
void tokr_free(TokReader *r);
#endif
