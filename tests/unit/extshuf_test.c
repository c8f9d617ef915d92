/* Unit test: lib/extshuf.c helpers (sizes, blank lines, strip) and the
 * ExtShuf API in memory and external, writing into memory streams. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "extshuf.h"
#include "utf8.h"

#include "check.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Shuffle n numbered lines in `copies` copies under `budget`; check each copy is a permutation. */
static void run(uint64_t budget, int n, int copies, int want_external, const char *what)
{
    Error e;
    ExtShuf *s = extshuf_new(budget, NULL, &e);
    CHECK(s != NULL, "%s: extshuf_new: %s", what, e.msg);
    if (!s) return;
    char line[64];
    for (int i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "line %06d %.*s", i, i % 40, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        CHECK(extshuf_add(s, line, (size_t)len, &e) == 0, "%s: add: %s", what, e.msg);
    }
    CHECK(extshuf_external(s) == want_external, "%s: external=%d", what, extshuf_external(s));
    CHECK(extshuf_count(s) == (uint64_t)n, "%s: count", what);
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    Mt19937 r;
    mt_seed_u64(&r, 5);
    CHECK(extshuf_write(s, &r, (uint64_t)copies, out, "mem", &e) == 0, "%s: write: %s", what, e.msg);
    fclose(out);
    CHECK(size == (size_t)copies * extshuf_bytes(s), "%s: %zu bytes out", what, size);
    char **rows = malloc((size_t)n * copies * sizeof *rows);
    int k = 0;
    for (char *p = strtok(buf, "\n"); p && k < n * copies; p = strtok(NULL, "\n")) rows[k++] = p;
    CHECK(k == n * copies, "%s: %d lines out", what, k);
    int in_order = 1;
    for (int c = 0; c < copies && k == n * copies; c++) {
        char **copy = rows + (size_t)c * n;
        for (int i = 0; i < n && in_order; i++)
            if (atoi(copy[i] + 5) != i) in_order = 0;
        qsort(copy, (size_t)n, sizeof *copy, cmp_str);
        for (int i = 0; i < n; i++)
            if (atoi(copy[i] + 5) != i) { CHECK(0, "%s: copy %d is not a permutation", what, c); break; }
    }
    CHECK(n < 10 || !in_order, "%s: output in input order", what);
    free(rows);
    free(buf);
    extshuf_free(s);
}

int main(void)
{
    uint64_t v = 0;
    CHECK(parse_size("123", &v) == 0 && v == 123, "123");
    CHECK(parse_size("1K", &v) == 0 && v == 1024, "1K");
    CHECK(parse_size("2k", &v) == 0 && v == 2048, "2k");
    CHECK(parse_size("3M", &v) == 0 && v == 3u << 20, "3M");
    CHECK(parse_size("1G", &v) == 0 && v == 1u << 30, "1G");
    CHECK(parse_size("2T", &v) == 0 && v == 2ULL << 40, "2T");
    CHECK(parse_size("1KiB", &v) == 0 && v == 1024, "1KiB");
    CHECK(parse_size("1KB", &v) == 0 && v == 1024, "1KB");
    CHECK(parse_size("", &v) < 0, "empty");
    CHECK(parse_size("K", &v) < 0, "K");
    CHECK(parse_size("1X", &v) < 0, "1X");
    CHECK(parse_size("1K2", &v) < 0, "1K2");
    CHECK(parse_size("-1", &v) < 0, "-1");
    CHECK(parse_size("99999999999T", &v) < 0, "overflow");
    CHECK(parse_size("99999999999999999999", &v) < 0, "overflow decimal");

    CHECK(py_is_blank("", 0), "empty blank");
    CHECK(py_is_blank(" \t\v\f\r\x1c\x1f", 7), "ascii blank");
    static const char uspaces[] = "\xc2\x85\xc2\xa0\xe1\x9a\x80\xe2\x80\x80\xe2\x80\x8a\xe2\x80\xa8"
                                  "\xe2\x80\xa9\xe2\x80\xaf\xe2\x81\x9f\xe3\x80\x80";
    CHECK(py_is_blank(uspaces, sizeof uspaces - 1), "unicode blank");
    CHECK(!py_is_blank(" x ", 3), "x not blank");
    CHECK(!py_is_blank("\xe2\x80\x8b", 3), "U+200B is not whitespace in Python");
    CHECK(!py_is_blank("\xc2", 1), "truncated UTF-8 not blank");
    CHECK(!py_is_blank("\0", 1), "NUL not blank");
    const char *t = "\xe3\x80\x80 a\xc2\xa0" "b \xe2\x80\xa9\t";
    size_t len = strlen(t);
    py_strip(&t, &len);
    CHECK(len == 4 && memcmp(t, "a\xc2\xa0" "b", 4) == 0, "strip unicode ends (len %zu)", len);
    t = " \xe3\x80\x80 ";
    len = strlen(t);
    py_strip(&t, &len);
    CHECK(len == 0, "strip to empty");
    t = "\x80\x80";   /* continuation bytes alone are not spaces */
    len = 2;
    py_strip(&t, &len);
    CHECK(len == 2, "strip keeps stray continuation bytes");

    run(1 << 30, 1000, 3, 0, "in memory");
    run(4096, 1000, 3, 1, "external, 2 levels");
    run(200, 300, 2, 1, "external, deep");
    run(1, 50, 2, 1, "external, 1-byte budget");
    run(4096, 0, 2, 0, "empty");
    run(10, 1, 3, 1, "one line over budget");
    return check_done();
}
