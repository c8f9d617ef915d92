/* vocab.h: the RWKV World vocabulary file (rwkv_vocab_v20230424.txt).
 *
 * Each line is "<id> <python literal> <byte_length>": a str literal ('...' or
 * "...", UTF-8 encoded) or a bytes literal (b'...').  Ids must run 1, 2, 3, ...
 * in file order; id 0 is the end-of-document separator and is not in the file.
 * The parser is strict: anything Python's literal syntax would not accept, a
 * length that does not match, or a repeated byte string is an error reported
 * as "FILE:LINE: reason". */
#ifndef RWKV7C_VOCAB_H
#define RWKV7C_VOCAB_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define VOCAB_MAX_ID 65535u       /* ids must fit the training vocab_size 65536 */
#define VOCAB_MAX_TOKEN_LEN 255u  /* bytes per token (the shipped file has at most 128) */

typedef struct {
    uint32_t n;          /* highest id; ids 1..n exist */
    uint32_t *offset;    /* token id's bytes are bytes[offset[id] .. offset[id+1]) ; n+2 entries */
    uint8_t *bytes;
    uint32_t max_len;    /* longest token, bytes */
} Vocab;

/* Parse a whole vocabulary held in memory; name is used in messages. */
int  vocab_parse(Vocab *v, const char *text, size_t len, const char *name, Error *e);
/* Read and parse a file (plain or zstd, "-" = stdin). */
int  vocab_load(Vocab *v, const char *path, Error *e);
/* vocab_load of path, or of the shipped vocabulary (find_data_file) when path is NULL. */
int  vocab_load_default(Vocab *v, const char *path, Error *e);
void vocab_free(Vocab *v);

static inline size_t vocab_token_len(const Vocab *v, uint32_t id) { return v->offset[id + 1] - v->offset[id]; }
static inline const uint8_t *vocab_token(const Vocab *v, uint32_t id) { return v->bytes + v->offset[id]; }
#endif
