/* libFuzzer target: the vocabulary loader must reject or accept any bytes
 * without crashing; an accepted vocabulary that covers all bytes must give a
 * tokenizer whose encode/decode round-trips its own input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    memcpy(text, data, size);
    Vocab v;
    Error e;
    if (vocab_parse(&v, text, size, "fuzz", &e) == 0) {
        Tokenizer *t = tokenizer_new(&v, &e);
        if (t) {
            uint32_t *ids = malloc((size + 1) * sizeof *ids);
            uint8_t *buf = NULL;
            size_t len = 0, cap = 0;
            size_t n = tokenizer_encode(t, data, size, ids);
            if (tokenizer_decode(&v, ids, n, &buf, &len, &cap, NULL, &e) || len != size || (size && memcmp(buf, data, size)))
                abort();
            free(buf);
            free(ids);
            tokenizer_free(t);
        }
        vocab_free(&v);
    } else if (!strstr(e.msg, "fuzz")) {
        abort();   /* messages name the file */
    }
    free(text);
    return 0;
}
