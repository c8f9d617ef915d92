/* fuzz_safetensors: st_parse on arbitrary bytes must fail cleanly or yield a
 * set whose every tensor lies inside the buffer (touched byte by byte), and
 * whatever parses must write out and parse back the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    TensorSet ts;
    Error e;
    if (st_parse(data, size, &ts, &e)) return 0;
    volatile unsigned sum = 0;
    for (int i = 0; i < ts.n; i++) {
        const Tensor *t = &ts.t[i];
        if ((const uint8_t *)t->data < data || (const uint8_t *)t->data + t->nbytes > data + size) abort();
        if ((uint64_t)tensor_numel(t) * dtype_size(t->dtype) != t->nbytes) abort();
        for (size_t k = 0; k < t->nbytes; k++) sum += ((const uint8_t *)t->data)[k];
    }
    (void)sum;
    /* round trip through the writer (small sets only, to keep the fuzzer fast) */
    if (size < 4096) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/fuzz_st_%d.safetensors", (int)getpid());
        if (st_write(path, &ts, 1, &e) == 0) {
            TensorSet back;
            if (st_read(path, &back, &e)) abort();
            if (back.n != ts.n) abort();
            for (int i = 0; i < ts.n; i++) {
                const Tensor *b = ts_find(&back, ts.t[i].name);
                if (!b || b->dtype != ts.t[i].dtype || b->nbytes != ts.t[i].nbytes || b->ndim != ts.t[i].ndim ||
                    memcmp(b->data, ts.t[i].data, b->nbytes))
                    abort();
            }
            ts_free(&back);
        }
        unlink(path);
    }
    ts_free(&ts);
    return 0;
}
