/* Training state round trip (bit-exact), checksums (tensors and metadata),
 * completeness checks, and the refusal to write non-finite values. */
#define _GNU_SOURCE   /* memmem */
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
    CHECK(!st.meta_unverified, "a version-2 state is verified");
    trainstate_free(&st);
    w[5] = sinf(5.0f);
    /* Nor non-finite Adam moments (review D3: inf in adam_v after g^2 overflowed). */
    v[7] = INFINITY;
    CHECK(trainstate_write(path, &c, &tc, w, m, v, NULL, &e) == -1 && strstr(e.msg, "adam_v element 7"), "inf in v refused: %s", e.msg);
    v[7] = 0;
    m[9] = NAN;
    CHECK(trainstate_write(path, &c, &tc, w, m, v, NULL, &e) == -1 && strstr(e.msg, "adam_m element 9"), "NaN in m refused: %s", e.msg);
    m[9] = 0;
    /* The metadata is checksummed (review D4): "step":"123" -> "step":"128" is caught;
     * the same file marked version 1 (no metadata checksum) is read, flagged as unverified. */
    CHECK(trainstate_write(path, &c, &tc, w, m, v, kv, &e) == 0, "rewrite: %s", e.msg);
    size_t len;
    char *buf = NULL;
    fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    len = (size_t)ftell(fp);
    rewind(fp);
    buf = malloc(len);
    CHECK(fread(buf, 1, len, fp) == len, "read back");
    fclose(fp);
    char *at = memmem(buf, len, "\"step\":\"123\"", 12);
    CHECK(at != NULL, "step key found");
    if (at) {
        at[10] = '8';
        fp = fopen(path, "wb");
        fwrite(buf, 1, len, fp);
        fclose(fp);
        CHECK(trainstate_read(path, &st, &e) == -1 && strstr(e.msg, "damaged training state: metadata checksum"),
              "metadata flip caught: %s", e.msg);
        char *ver = memmem(buf, len, "\"version\":\"2\"", 13);
        CHECK(ver != NULL, "version key found");
        if (ver) {
            ver[11] = '1';
            fp = fopen(path, "wb");
            fwrite(buf, 1, len, fp);
            fclose(fp);
            CHECK(trainstate_read(path, &st, &e) == 0 && st.meta_unverified && st.c.step == 128,
                  "a version-1 state is read, marked unverified: %s", e.msg);
            trainstate_free(&st);
        }
    }
    free(buf);
    unlink(path);
    layout_free(&l);
    free(w); free(m); free(v);
    return check_done();
}
