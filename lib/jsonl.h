/* jsonl.h: strict parser for one JSON Lines record.
 *
 * The whole line is validated (RFC 8259: no NaN/Infinity, no trailing commas,
 * no control characters in strings, valid UTF-8, valid escapes) and one string
 * member of the top-level object is extracted as UTF-8 bytes, with \uXXXX
 * escapes decoded and surrogate pairs combined.  Like Python's json.loads, a
 * repeated key takes its last value and whitespace that Python's str.strip()
 * removes may surround the record. */
#ifndef RWKV7C_JSONL_H
#define RWKV7C_JSONL_H
#include <stddef.h>

typedef struct {
    size_t column;      /* 1-based byte column of the problem, 0 if none applies */
    char msg[160];      /* what is wrong, e.g. "invalid JSON at column 7: expected ':'" */
} JsonError;

/* Extract string member `field` (field_len bytes) of the object on line[0..n).
 * out must hold n bytes (a decoded value is never longer than its source).
 * Returns the value's length, or -1 with err filled: bad JSON, bad UTF-8,
 * not an object, member missing or not a string, or a lone surrogate in it. */
long jsonl_extract(const char *line, size_t n, const char *field, size_t field_len,
                   char *out, JsonError *err);

/* The same validation as jsonl_extract; then *value points at the JSON text of
 * member `field` of the top-level object inside line (a number, "string",
 * literal, object or array, as written) and its length (> 0) is returned.
 * A member that is absent returns 0 with *value NULL; -1 with err filled for
 * a line that is not one valid JSON object. */
long jsonl_member(const char *line, size_t n, const char *field, size_t field_len,
                  const char **value, JsonError *err);

/* 1 if line[0..n) is empty or only whitespace by Python's str.isspace()
 * (make_data.py skips such lines), else 0. */
int jsonl_is_blank(const char *line, size_t n);
#endif
