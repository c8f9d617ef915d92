/* libFuzzer target: the token-stream reader (lib/tokstream.c), which
 * binidx-write runs on whatever arrives on its stdin.  It must never crash or
 * read out of bounds, every refusal must say why, the counts must match the
 * documents it returned, and a stream it verifies must be exactly the bytes
 * the writer makes from those documents (nothing before, inside or after the
 * closing record is ignored). */
#define _GNU_SOURCE   /* fmemopen, open_memstream */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so reads past the end are caught by ASan; fmemopen
     * refuses a 0-byte buffer, an empty file stands in for it. */
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    FILE *in = size ? fmemopen(buf, size, "rb") : fopen("/dev/null", "rb");
    if (!in) { free(buf); return 0; }

    Error e;
    e.msg[0] = 0;
    TokReader *r = tokr_open(in, "fuzz.tok", &e);
    if (!r) {
        if (!e.msg[0]) abort();   /* every rejection says why */
        fclose(in);
        free(buf);
        return 0;
    }
    char *copy = NULL;
    size_t copy_len = 0;
    FILE *out = open_memstream(&copy, &copy_len);
    TokWriter *w = out ? tokw_open(out, &e) : NULL;
    if (!w) abort();

    uint64_t docs = 0, tokens = 0;
    const uint32_t *ids;
    size_t n;
    int rc;
    while ((rc = tokr_next(r, &ids, &n, &e)) == 1) {
        if (n > TOKSTREAM_MAX_DOC) abort();
        if (tokw_doc(w, ids, n, &e)) abort();   /* also reads every id: ASan checks the buffer */
        docs++;
        tokens += n;
        if (tokr_documents(r) != docs || tokr_tokens(r) != tokens) abort();
    }
    if (rc == -1) {
        if (!e.msg[0]) abort();
        tokw_free(w);
    } else {
        if (rc != 0 || tokr_next(r, &ids, &n, &e) != 0) abort();   /* the end stays the end */
        if (tokw_close(w, &e)) abort();
        fflush(out);
        if (copy_len != size || memcmp(copy, buf, size) != 0) abort();
    }
    fclose(out);
    free(copy);
    tokr_free(r);
    fclose(in);
    free(buf);
    return 0;
}
