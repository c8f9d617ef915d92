/* utf8.h: strict UTF-8 decoding, as Python's strict codec: no overlongs, no
 * surrogates, nothing above U+10FFFF.  The one decoder and encoder of the
 * project: JSON, vocabulary, pickle and safetensors parsers all use these. */
#ifndef RWKV7C_UTF8_H
#define RWKV7C_UTF8_H
#include <stddef.h>
#include <stdint.h>

/* Decode one sequence at s (n bytes available, n >= 1).  Returns its length
 * and sets *cp, or 0 when invalid. */
static inline int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* 1 when s[0..n) is entirely valid UTF-8 (utf8_decode's rules). */
static inline int utf8_valid(const uint8_t *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) { i++; continue; }
        int k = utf8_decode(s + i, n - i, &cp);
        if (!k) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* Encode code point cp (<= 0x10FFFF) into out (room for 4 bytes).  Returns its length. */
static inline int utf8_encode(uint8_t *out, uint32_t cp)
{
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { out[0] = (uint8_t)(0xC0 | cp >> 6); out[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12); out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18); out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- Python's whitespace (the one home of these rules) ----
 * str.isspace() for one code point: what str.strip() removes and what makes a
 * line blank for make_data.py.  ASCII \t\n\v\f\r, \x1c-\x1f and space, plus
 * the Unicode spaces U+0085 U+00A0 U+1680 U+2000-200A U+2028 U+2029 U+202F
 * U+205F U+3000 (not U+200B, which Python does not count). */
static inline int py_isspace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Byte length of the whitespace character at s (before end), or 0. */
static inline int py_space_at(const uint8_t *s, const uint8_t *end)
{
    uint32_t cp = 0;
    if (*s < 0x80) return py_isspace(*s);
    int len = utf8_decode(s, (size_t)(end - s), &cp);
    return len && py_isspace(cp) ? len : 0;
}

/* Byte length of the whitespace character that ends at end (after start), or 0. */
static inline int py_space_before(const uint8_t *start, const uint8_t *end)
{
    if (end[-1] < 0x80) return py_isspace(end[-1]);
    const uint8_t *s = end - 1;
    while (s > start && end - s < 4 && (*s & 0xC0) == 0x80) s--;
    uint32_t cp = 0;
    int len = utf8_decode(s, (size_t)(end - s), &cp);
    return len == end - s && py_isspace(cp) ? len : 0;
}

/* 1 when s[0..n) is empty or only whitespace (Python: not s.strip()). */
static inline int py_is_blank(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s, *end = p + n;
    int k;
    while (p < end && (k = py_space_at(p, end))) p += k;
    return p == end;
}

/* Narrow [*s, *s + *n) to s.strip(). */
static inline void py_strip(const char **s, size_t *n)
{
    const uint8_t *p = (const uint8_t *)*s, *end = p + *n;
    int k;
    while (p < end && (k = py_space_at(p, end))) p += k;
    while (end > p && (k = py_space_before(p, end))) end -= k;
    *s = (const char *)p;
    *n = (size_t)(end - p);
}
#endif
