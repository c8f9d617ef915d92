/* extshuf.h: shuffle the lines of an input, in memory or, above a memory
 * budget, through temporary files (external shuffle).
 *
 * Feed lines with extshuf_add(), then extshuf_write() writes `copies`
 * shuffled copies.  While the lines fit in the budget they stay in memory and
 * every copy is Python's random.shuffle applied again to the same list, so a
 * seeded run matches `random.seed(S); for _ in range(N): random.shuffle(lines)`.
 * Above the budget, lines are spooled to a temporary file and each copy is an
 * external shuffle (bucket scatter, then in-memory shuffles): uniform and
 * reproducible for a seed, but not Python's order.
 *
 * Temporary files are unlinked as soon as they are created (only the open
 * descriptor keeps them), so nothing is left behind however the process ends. */
#ifndef RWKV7C_EXTSHUF_H
#define RWKV7C_EXTSHUF_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "shuffle.h"
#include "util.h"

typedef struct ExtShuf ExtShuf;

/* memory_budget: bytes of line data plus 16 bytes per line to hold in memory.
 * tmpdir: directory for temporary files (NULL: $TMPDIR, else /tmp). */
ExtShuf *extshuf_new(uint64_t memory_budget, const char *tmpdir, Error *e);
void      extshuf_free(ExtShuf *s);

/* Append one line (without its terminator; it must not contain '\n'). */
int extshuf_add(ExtShuf *s, const char *line, size_t len, Error *e);

/* Write `copies` independent shuffles, each line followed by "\n".
 * out_name is used in messages about write errors. */
int extshuf_write(ExtShuf *s, Mt19937 *rng, uint64_t copies, FILE *out,
                   const char *out_name, Error *e);

uint64_t extshuf_count(const ExtShuf *s);     /* lines added */
uint64_t extshuf_bytes(const ExtShuf *s);     /* their bytes, with "\n" */
int      extshuf_external(const ExtShuf *s);  /* 1 once spooled to disk */

#endif
