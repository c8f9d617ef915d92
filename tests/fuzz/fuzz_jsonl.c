/* libFuzzer target: the JSON line parser must never crash, never write past
 * its output buffer, and on success give valid UTF-8 no longer than the line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"

static int valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!len || i + len > n) return 0;
        uint32_t v = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            v = v << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1), *out = malloc(size + 1);
    if (!line || !out) { free(line); free(out); return 0; }
    memcpy(line, data, size);   /* exact-size copy: ASan catches reads past the end */
    JsonError err;
    long n = jsonl_extract(line, size, "text", 4, out, &err);
    if (n >= 0) {
        if ((size_t)n > size || !valid_utf8((const uint8_t *)out, (size_t)n)) abort();
        if (jsonl_is_blank(line, size)) abort();
    } else if (!err.msg[0]) {
        abort();   /* every failure explains itself */
    }
    free(line);
    free(out);
    return 0;
}
