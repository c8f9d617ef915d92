/* libFuzzer target: the MMIDIDX .idx parser (lib/binidx.c) and, for indexes it
 * accepts, a token scan over a .bin of the size the index describes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "binidx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so reads past the end are caught by ASan. */
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    BinidxIndex ix;
    Error e;
    e.msg[0] = 0;
    if (binidx_parse_index(buf, size, "fuzz.idx", &ix, &e) == 0) {
        /* Everything the parser accepted must be internally consistent. */
        uint64_t off = 0;
        for (uint64_t i = 0; i < ix.sequences; i++) {
            if (binidx_pointer(&ix, i) != off) abort();
            off += (uint64_t)binidx_size(&ix, i) * ix.itemsize;
        }
        if (off != ix.bin_bytes) abort();
        if (ix.doc_idx_len < 1 || binidx_doc_idx(&ix, ix.doc_idx_len - 1) != ix.sequences) abort();
        if (ix.bin_bytes <= (1u << 20)) {
            BinidxDataset ds;
            memset(&ds, 0, sizeof ds);
            ds.index = ix;
            ds.idx_map = buf;
            ds.idx_len = size;
            ds.bin_len = ix.bin_bytes;
            ds.bin_map = calloc(1, ix.bin_bytes ? ix.bin_bytes : 1);
            ds.tokens = ds.bin_map;
            ds.token_count = ix.bin_bytes / ix.itemsize;
            BinidxStats st;
            if (ds.bin_map && binidx_scan(&ds, &st, &e) == 0 && st.max_id != 0) abort();
            free(ds.bin_map);
        }
    } else if (!e.msg[0]) {
        abort();   /* every rejection says why */
    }
    free(buf);
    return 0;
}
