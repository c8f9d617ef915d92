/* tokenizer.h: the RWKV World tokenizer: greedy longest-prefix match over the
 * UTF-8 bytes (what the reference TRIE_TOKENIZER does), and its inverse.
 *
 * The vocabulary's byte strings are compiled into a double-array trie whose
 * first two levels are replaced by one dense 64K-entry table, so a typical
 * token costs one table load plus a few 8-byte node loads. */
#ifndef RWKV7C_TOKENIZER_H
#define RWKV7C_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"
#include "vocab.h"

typedef struct Tokenizer Tokenizer;

/* Compile v (which must outlive the tokenizer).  Every single byte must be a
 * token, so that any input can be encoded. */
Tokenizer *tokenizer_new(const Vocab *v, Error *e);
void tokenizer_free(Tokenizer *t);

/* Encode n bytes into out, which must hold n ids (each id covers >= 1 byte).
 * Returns the number of ids.  Never fails. */
size_t tokenizer_encode(const Tokenizer *t, const uint8_t *s, size_t n, uint32_t *out);

/* Encode count texts that live in one buffer: text d is base[off[d] ..
 * off[d] + len[d]), its ids go to out[out_off[d] ...] (room for len[d] ids)
 * and their number to n_out[d].  At least 4 bytes after the end of every text
 * must be readable (the caller pads its buffer).  The same ids as
 * tokenizer_encode on each text; much faster for many texts on CPUs with
 * AVX-512, where 16 texts are walked at once. */
void tokenizer_encode_many(const Tokenizer *t, const uint8_t *base, size_t count, const uint32_t *off,
                           const uint32_t *len, uint32_t *out, const uint32_t *out_off, uint32_t *n_out);

/* Bytes of ids[0..n) appended to *buf (realloc-ed; *len and *cap updated).  Id 0
 * (the document separator) decodes to nothing.  Returns 0, or -1 for an id
 * outside the vocabulary (*bad_index set to its position) or no memory. */
int tokenizer_decode(const Vocab *v, const uint32_t *ids, size_t n,
                     uint8_t **buf, size_t *len, size_t *cap, size_t *bad_index, Error *e);
#endif
