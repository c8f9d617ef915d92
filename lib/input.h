/* input.h: read a file or stdin ("-"), plain or zstd-compressed (detected by
 * magic), as bytes or as numbered lines. */
#ifndef RWKV7C_INPUT_H
#define RWKV7C_INPUT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util.h"

typedef struct Input Input;

/* path "-" or NULL means stdin.  The name used in messages is "-" → "<stdin>".
 * zstd is recognised by its frame or skippable-frame magic (RFC 8878); gzip is
 * refused with a hint, the rest is plain.  A named FIFO or device is read as a
 * stream (so `<(zstdcat f)` works). */
Input *input_open(const char *path, Error *e);
/* The same, but a named path must be a regular file (open_regular): for inputs
 * such as the vocabulary, where a FIFO is a mistake that would hang the tool. */
Input *input_open_regular(const char *path, Error *e);
void   input_close(Input *in);
const char *input_name(const Input *in);

/* Read up to n decompressed bytes.  Returns bytes read, 0 at end, -1 on error. */
ssize_t input_read(Input *in, void *buf, size_t n, Error *e);

/* Next line without its "\n" (a "\r" before it is removed too, and a UTF-8
 * byte order mark at the start of the input); *line stays
 * valid until the next call.  The last line may lack "\n".  Returns 1 for a
 * line, 0 at end, -1 on error (e.g. a line longer than 1 GiB).
 * input_lineno() is the 1-based number of the line just returned. */
int input_getline(Input *in, char **line, size_t *len, Error *e);
uint64_t input_lineno(const Input *in);
#endif
