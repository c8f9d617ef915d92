/* tokenize_bench VOCAB FILE: encoder-only throughput (no JSON, no I/O) on the
 * raw bytes of FILE, best of 5 passes, in MB/s of thread CPU time (so other
 * load on the machine disturbs it less than wall time). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tokenizer.h"

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: tokenize_bench VOCAB FILE\n"); return 2; }
    Error e;
    Vocab v;
    if (vocab_load(&v, argv[1], &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    double t0 = cpu_seconds();
    Tokenizer *t = tokenizer_new(&v, &e);
    double t_build = cpu_seconds() - t0;
    if (!t) { fprintf(stderr, "%s\n", e.msg); return 1; }
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    uint32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!buf || !ids || fread(buf, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "cannot read %s\n", argv[2]); return 1; }
    fclose(f);
    double best = 1e30;
    size_t count = 0;
    for (int r = 0; r < 5; r++) {
        double a = cpu_seconds();
        count = tokenizer_encode(t, buf, (size_t)n, ids);
        double s = cpu_seconds() - a;
        if (s < best) best = s;
    }
    printf("%.1f MB/s encode (%zu tokens, %.2f bytes/token), trie build %.1f ms\n", n / best / 1e6, count,
           (double)n / (double)count, t_build * 1e3);
    tokenizer_free(t);
    vocab_free(&v);
    free(buf);
    free(ids);
    return 0;
}
