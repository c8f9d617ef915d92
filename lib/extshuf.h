/* extshuf.h: shuffle the lines of an input, in memory or, above a memory
 * budget, through temporary files (external shuffle).
 *
 * Feed lines with lineshuf_add(), then lineshuf_write() writes `copies`
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

typedef struct LineShuf LineShuf;

/* memory_budget: bytes of line data plus 16 bytes per line to hold in memory.
 * tmpdir: directory for temporary files (NULL: $TMPDIR, else /tmp). */
LineShuf *lineshuf_new(uint64_t memory_budget, const char *tmpdir, Error *e);
void      lineshuf_free(LineShuf *s);

/* Append one line (without its terminator; it must not contain '\n'). */
int lineshuf_add(LineShuf *s, const char *line, size_t len, Error *e);

/* Write `copies` independent shuffles, each line followed by "\n".
 * out_name is used in messages about write errors. */
int lineshuf_write(LineShuf *s, Mt19937 *rng, uint64_t copies, FILE *out,
                   const char *out_name, Error *e);

uint64_t lineshuf_count(const LineShuf *s);     /* lines added */
uint64_t lineshuf_bytes(const LineShuf *s);     /* their bytes, with "\n" */
int      lineshuf_external(const LineShuf *s);  /* 1 once spooled to disk */

/* 1 when the line holds only whitespace as Python's str.isspace() sees it
 * (ASCII spaces and controls \t\n\v\f\r\x1c-\x1f, and the Unicode spaces
 * U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000 in UTF-8), or is empty.  make_data.py drops exactly these lines. */
int line_is_blank(const char *line, size_t len);
/* Remove that whitespace from both ends, as Python's str.strip() does. */
void line_strip(const char **line, size_t *len);

#endif
