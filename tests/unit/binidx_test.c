/* binidx_test: unit tests for lib/binidx (writer, reader, append, the index checks).
 *
 * Also a helper for the shell tests:
 *   binidx_test --stream [--no-close] < ids.txt > stream
 * turns one document per line (token ids separated by spaces) into a token
 * stream (lib/tokstream.h); --no-close omits the closing record, as a
 * producer that died would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binidx.h"
#include "tokstream.h"
#include "util.h"

#include "check.h"

static int stream_main(int no_close)
{
    Error e;
    TokWriter *w = tokw_open(stdout, &e);
    if (!w) return report(&e);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint32_t *ids = NULL;
    size_t n = 0, idcap = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        n = 0;
        char *p = line, *end;
        for (;;) {
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p) break;
            if (n == idcap) { idcap = idcap ? 2 * idcap : 1024; ids = realloc(ids, idcap * 4); }
            ids[n++] = (uint32_t)v;
            p = end;
        }
        if (tokw_doc(w, ids, n, &e)) return report(&e);
    }
    free(line);
    free(ids);
    if (no_close) { tokw_free(w); fflush(stdout); return 0; }
    if (tokw_close(w, &e)) return report(&e);
    return 0;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) { *len = 0; return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n ? (size_t)n : 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static int write_docs(const char *prefix, const uint32_t *const *docs, const size_t *lens, size_t ndocs, Error *e)
{
    BinidxWriter *w = binidx_writer_open(prefix, 1, e);
    if (!w) return -1;
    for (size_t i = 0; i < ndocs; i++)
        if (binidx_writer_add(w, docs[i], lens[i], e)) { binidx_writer_abort(w); return -1; }
    return binidx_writer_commit(w, e);
}

static void test_example_bytes(void)
{
    /* Documents [5,6,0] and [7,0] as uint16, laid out as Megatron-LM's MMIDIDX writer
     * does (megatron/core/datasets/indexed_dataset.py; RWKV-LM-V7 src/binidx.py reads it). */
    static const unsigned char want_idx[82] = {
        'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8,
        2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
        3, 0, 0, 0, 2, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
    };
    static const unsigned char want_bin[10] = { 5, 0, 6, 0, 0, 0, 7, 0, 0, 0 };
    uint32_t a[] = { 5, 6, 0 }, b[] = { 7, 0 };
    const uint32_t *docs[] = { a, b };
    size_t lens[] = { 3, 2 };
    Error e;
    CHECK(write_docs("ex", docs, lens, 2, &e) == 0, "write: %s", e.msg);
    size_t n;
    unsigned char *idx = slurp("ex.idx", &n);
    CHECK(idx && n == 82 && memcmp(idx, want_idx, 82) == 0, "example .idx bytes (%zu bytes)", n);
    free(idx);
    unsigned char *bin = slurp("ex.bin", &n);
    CHECK(bin && n == 10 && memcmp(bin, want_bin, 10) == 0, "example .bin bytes");
    free(bin);

    BinidxDataset ds;
    CHECK(binidx_open("ex.bin", &ds, &e) == 0, "open ex.bin: %s", e.msg);
    if (!ds.idx_map) return;
    CHECK(ds.documents == 2 && ds.token_count == 5 && ds.index.dtype == 8, "ex: docs/tokens/dtype");
    CHECK(binidx_token(&ds, 3) == 7 && binidx_size(&ds.index, 1) == 2 && binidx_pointer(&ds.index, 1) == 6,
          "ex: token/size/pointer");
    BinidxStats st;
    CHECK(binidx_scan(&ds, &st, &e) == 0 && st.max_id == 7 && st.without_eod == 0, "ex: scan");
    binidx_close(&ds);

    /* Empty dataset: a valid 42-byte .idx and an empty .bin. */
    CHECK(write_docs("empty", NULL, NULL, 0, &e) == 0, "write empty: %s", e.msg);
    CHECK(binidx_open("empty", &ds, &e) == 0 && ds.documents == 0 && ds.token_count == 0 && ds.idx_len == 42,
          "open empty: %s", e.msg);
    binidx_close(&ds);
}

static void test_widening(void)
{
    /* 600000 small ids (more than the writer's buffer), then one above 65535. */
    size_t n1 = 600000;
    uint32_t *a = malloc(n1 * 4);
    for (size_t i = 0; i < n1; i++) a[i] = (uint32_t)((i * 7919) % 65536);
    a[n1 - 1] = 0;
    uint32_t b[] = { 1, 65535, 65536, 2000000000u, 0 };
    uint32_t c[] = { 9, 0 };
    const uint32_t *docs[] = { a, b, c };
    size_t lens[] = { n1, 5, 2 };
    Error e;
    CHECK(write_docs("wide", docs, lens, 3, &e) == 0, "write wide: %s", e.msg);
    BinidxDataset ds;
    if (binidx_open("wide", &ds, &e) != 0) { CHECK(0, "open wide: %s", e.msg); free(a); return; }
    CHECK(ds.index.dtype == BINIDX_INT32 && ds.token_count == n1 + 7, "wide: int32, %llu tokens",
          (unsigned long long)ds.token_count);
    int same = 1;
    for (size_t i = 0; i < n1; i++) same &= binidx_token(&ds, i) == a[i];
    for (size_t i = 0; i < 5; i++) same &= binidx_token(&ds, n1 + i) == b[i];
    same &= binidx_token(&ds, n1 + 5) == 9;
    CHECK(same, "wide: every token survives widening");
    CHECK_EQ(binidx_pointer(&ds.index, 1), 4 * n1);   /* pointers count int32 bytes */
    binidx_close(&ds);

    uint32_t too_big[] = { 3000000000u, 0 };
    const uint32_t *docs2[] = { too_big };
    size_t lens2[] = { 2 };
    CHECK(write_docs("huge", docs2, lens2, 1, &e) == -1 && access("huge.bin", F_OK) != 0 && access("huge.idx", F_OK) != 0,
          "ids above INT32_MAX fail and leave nothing");

    /* Merge (append) equals one run over all documents. */
    const uint32_t *first[] = { a }, *rest[] = { b, c };
    size_t lf[] = { n1 }, lr[] = { 5, 2 };
    CHECK(write_docs("part1", first, lf, 1, &e) == 0 && write_docs("part2", rest, lr, 2, &e) == 0, "parts");
    BinidxDataset p1, p2;
    CHECK(binidx_open("part1", &p1, &e) == 0 && binidx_open("part2", &p2, &e) == 0, "open parts: %s", e.msg);
    CHECK(p1.index.dtype == BINIDX_UINT16 && p2.index.dtype == BINIDX_INT32, "part dtypes");
    BinidxWriter *w = binidx_writer_open("merged", 1, &e);
    CHECK(w && binidx_writer_append(w, &p1, &e) == 0 && binidx_writer_append(w, &p2, &e) == 0 &&
          binidx_writer_commit(w, &e) == 0, "merge: %s", e.msg);
    binidx_close(&p1);
    binidx_close(&p2);
    size_t l1, l2, l3, l4;
    unsigned char *x1 = slurp("wide.bin", &l1), *x2 = slurp("merged.bin", &l2);
    unsigned char *x3 = slurp("wide.idx", &l3), *x4 = slurp("merged.idx", &l4);
    CHECK(x1 && x2 && l1 == l2 && memcmp(x1, x2, l1) == 0, "merged .bin == single run");
    CHECK(x3 && x4 && l3 == l4 && memcmp(x3, x4, l3) == 0, "merged .idx == single run");
    free(x1); free(x2); free(x3); free(x4);
    free(a);
}

/* Megatron datasets may have several sequences per document (doc_idx not 0..S):
 * appending one shifts its document index by the sequences before it. */
static void test_multi_sequence_documents(void)
{
    unsigned char idx[34 + 12 * 3 + 8 * 3];
    uint64_t one = 1, S = 3, D = 3, ptrs[3] = { 0, 4, 6 }, docs[3] = { 0, 2, 3 };
    uint32_t sizes[3] = { 2, 1, 2 };
    memcpy(idx, BINIDX_MAGIC, 9);
    memcpy(idx + 9, &one, 8);
    idx[17] = 8;
    memcpy(idx + 18, &S, 8);
    memcpy(idx + 26, &D, 8);
    memcpy(idx + 34, sizes, 12);
    memcpy(idx + 46, ptrs, 24);
    memcpy(idx + 70, docs, 24);
    spit("multi.idx", idx, sizeof idx);
    spit("multi.bin", "\1\0\2\0\3\0\4\0\0\0", 10);
    uint32_t a[] = { 9, 0 };
    const uint32_t *d1[] = { a };
    size_t l1[] = { 2 };
    Error e;
    BinidxDataset m, t;
    CHECK(write_docs("single", d1, l1, 1, &e) == 0, "write single");
    CHECK(binidx_open("multi", &m, &e) == 0 && m.documents == 2 && m.index.sequences == 3, "open multi: %s", e.msg);
    CHECK(binidx_open("single", &t, &e) == 0, "open single");
    BinidxWriter *w = binidx_writer_open("joined", 1, &e);
    CHECK(w && binidx_writer_append(w, &t, &e) == 0 && binidx_writer_append(w, &m, &e) == 0 &&
          binidx_writer_append(w, &t, &e) == 0 && binidx_writer_commit(w, &e) == 0, "join: %s", e.msg);
    binidx_close(&m);
    binidx_close(&t);
    BinidxDataset j;
    CHECK(binidx_open("joined", &j, &e) == 0, "open joined: %s", e.msg);
    if (!j.idx_map) return;
    CHECK(j.index.sequences == 5 && j.documents == 4 && j.token_count == 9, "joined counts");
    uint64_t want[5] = { 0, 1, 3, 4, 5 };
    int same = j.index.doc_idx_len == 5;
    for (int i = 0; same && i < 5; i++) same = binidx_doc_idx(&j.index, i) == want[i];
    CHECK(same, "joined doc_idx = 0 1 3 4 5");
    CHECK(binidx_pointer(&j.index, 4) == 14 && binidx_token(&j, 7) == 9, "joined pointers and tokens");
    binidx_close(&j);
}

/* Each corruption of the example .idx must be rejected with a telling message. */
static void test_corrupt(void)
{
    size_t n;
    unsigned char *good = slurp("ex.idx", &n);
    if (!good || n != 82) { CHECK(0, "no ex.idx"); free(good); return; }
    unsigned char buf[128];
    BinidxIndex ix;
    Error e;
    struct { size_t off; unsigned char val; size_t len; const char *want; } cases[] = {
        { 0, 'X', 82, "bad magic" },
        { 9, 2, 82, "version 2" },
        { 17, 7, 82, "dtype code 7" },
        { 17, 1, 82, "dtype code 1" },
        { 18, 3, 82, "needs" },                 /* S = 3: sizes disagree with the length */
        { 26, 4, 82, "needs" },                 /* D = 4 */
        { 26, 0, 82, "document index count is 0" },
        { 25, 0x80, 82, "more than the format allows" },
        { 0, 'M', 81, "needs" },                /* truncated */
        { 0, 'M', 30, "too short" },
        { 37, 0x80, 82, "negative" },           /* sizes[0] < 0 */
        { 42, 1, 82, "pointers[0]" },           /* pointers[0] = 1 */
        { 50, 7, 82, "pointers[1]" },           /* pointers[1] = 7 */
        { 58, 1, 82, "doc_idx[0]" },
        { 66, 3, 82, "doc_idx[1]" },
        { 74, 1, 82, "ends at 1" },             /* doc_idx[2] = 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(buf, good, 82);
        buf[cases[i].off] = cases[i].val;
        int rc = binidx_parse_index(buf, cases[i].len, "x.idx", &ix, &e);
        CHECK(rc == -1 && strstr(e.msg, cases[i].want), "case %zu: rc %d, message '%s', want '%s'", i, rc,
              rc ? e.msg : "", cases[i].want);
    }
    CHECK(binidx_parse_index(good, 82, "x.idx", &ix, &e) == 0 && ix.bin_bytes == 10, "good index parses");
    /* A mismatched .bin fails at open. */
    spit("bad.idx", good, 82);
    spit("bad.bin", "\5\0\6\0\0\0\7\0", 8);
    BinidxDataset ds;
    CHECK(binidx_open("bad", &ds, &e) == -1 && strstr(e.msg, "bad.bin: 8 bytes, but bad.idx describes 10"),
          "short .bin: %s", e.msg);
    unlink("bad.bin");
    CHECK(binidx_open("bad", &ds, &e) == -1 && strstr(e.msg, "bad.bin"), "missing .bin: %s", e.msg);
    free(good);
}

static void test_refuse_overwrite(void)
{
    Error e;
    spit("keep.idx", "old", 3);
    BinidxWriter *w = binidx_writer_open("keep", 0, &e);
    CHECK(!w && strstr(e.msg, "keep.idx: exists"), "refuses to overwrite: %s", w ? "opened" : e.msg);
    CHECK(access("keep.bin", F_OK) != 0, "refusal creates nothing");
    w = binidx_writer_open("keep", 0, &e);
    if (w) binidx_writer_abort(w);
    w = binidx_writer_open("aborted", 0, &e);
    uint32_t d[] = { 1, 0 };
    CHECK(w && binidx_writer_add(w, d, 2, &e) == 0, "add");
    binidx_writer_abort(w);
    CHECK(access("aborted.bin", F_OK) != 0 && access("aborted.idx", F_OK) != 0, "abort leaves nothing");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--stream") == 0)
        return stream_main(argc >= 3 && strcmp(argv[2], "--no-close") == 0);
    char dir[] = "/tmp/binidx_test.XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0) { perror("tmpdir"); return 1; }
    test_example_bytes();
    test_widening();
    test_multi_sequence_documents();
    test_corrupt();
    test_refuse_overwrite();
    if (system("rm -rf -- \"$PWD\"") != 0) { /* best effort */ }
    return check_done();
}
