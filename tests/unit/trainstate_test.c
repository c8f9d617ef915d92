/* Training state round trip (bit-exact), checksum and completeness checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "layout.h"
#include "trainstate.h"

#include "check.h"

int main(void)
{
    Error e;
    ModelConfig c;
    Layout l;
    if (config_default(&c, 2, 64, 50, 64, &e) || layout_build(&c, &l, &e)) { printf("FAIL %s\n", e.msg); return 1; }
    size_t n = l.total;
    float *w = malloc(n * 4), *m = malloc(n * 4), *v = malloc(n * 4);
    for (size_t i = 0; i < n; i++) { w[i] = sinf((float)i); m[i] = (float)i * 1e-7f; v[i] = 1e-9f * (float)(i % 7); }
    TrainCounters tc = { .step = 123, .adam_step = 120, .warm_step = 121, .epoch_begin = 2,
                         .epoch_loss_sum = 0.1 + 0.2, .epoch_loss_n = 7, .bad_in_row = 1, .bad_total = 3,
                         .seed = 42, .elapsed = 1.0 / 3 };
    char path[] = "/tmp/train_state_test_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    const char *kv[] = { "lr_init", "0x1.3a92a30553261p-11", "ctx_len", "64", NULL };
    CHECK(trainstate_write(path, &c, &tc, w, m, v, kv, &e) == 0, "write: %s", e.msg);
    TrainState st;
    CHECK(trainstate_read(path, &st, &e) == 0, "read: %s", e.msg);
    CHECK(st.n == n && !memcmp(st.w, w, n * 4) && !memcmp(st.m, m, n * 4) && !memcmp(st.v, v, n * 4), "arrays bit-identical");
    CHECK(!memcmp(&st.c, &tc, sizeof tc), "counters identical (doubles exact)");
    CHECK(st.cfg.n_layer == 2 && st.cfg.n_embd == 64 && st.cfg.vocab_size == 50 && st.cfg.d_decay == c.d_decay, "config");
    CHECK(trainstate_get(&st, "ctx_len") && !strcmp(trainstate_get(&st, "ctx_len"), "64"), "run config kept");
    trainstate_free(&st);

    /* Flip one byte in the tensor data: the checksum must catch it. */
    FILE *fp = fopen(path, "r+b");
    fseek(fp, -10, SEEK_END);
    int ch = fgetc(fp);
    fseek(fp, -10, SEEK_END);
    fputc(ch ^ 0x40, fp);
    fclose(fp);
    CHECK(trainstate_read(path, &st, &e) == -1 && strstr(e.msg, "adam_v"), "corruption detected: %s", e.msg);
    /* A truncated file is rejected. */
    CHECK(truncate(path, 1000) == 0, "truncate");
    CHECK(trainstate_read(path, &st, &e) == -1, "truncated rejected: %s", e.msg);
    /* Non-finite weights are never written; the old file stays. */
    CHECK(trainstate_write(path, &c, &tc, w, m, v, NULL, &e) == 0, "rewrite");
    w[5] = NAN;
    CHECK(trainstate_write(path, &c, &tc, w, m, v, NULL, &e) == -1 && strstr(e.msg, "non-finite"), "NaN refused: %s", e.msg);
    CHECK(trainstate_read(path, &st, &e) == 0 && st.w[5] == sinf(5.0f), "previous state intact");
    trainstate_free(&st);
    unlink(path);
    layout_free(&l);
    free(w); free(m); free(v);
    if (fails) { printf("%d failure(s)\n", fails); return 1; }
    printf("train_state: all ok\n");
    return 0;
}
