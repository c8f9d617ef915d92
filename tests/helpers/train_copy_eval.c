/* Helper for tests/t_train_copy.sh: the accuracy of a checkpoint on the
 * digit-copy task of tests/train_util.py (d1..dk = d1..dk EOD).
 *   train_copy_eval CHECKPOINT DATA_PREFIX CTX_LEN
 * Feeds the data in windows of CTX_LEN tokens and counts greedy predictions
 * of the tokens after '=' (the copy and its EOD) for documents that start
 * inside the window.  Prints "accuracy A (N targets)". */
#include <stdio.h>
#include <stdlib.h>
#include "binidx.h"
#include "model.h"
#include "model_io.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        printf("train_copy_eval: helper for t_train_copy.sh (needs CHECKPOINT DATA CTX_LEN)\n");
        return 77;
    }
    Error e;
    Model m;
    BinidxDataset ds;
    int T = atoi(argv[3]);
    if (model_load(&m, argv[1], &e) || binidx_open(argv[2], &ds, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    ModelWork *w = model_work_new(&m, 1, T, 0, &e);
    if (!w) { fprintf(stderr, "%s\n", e.msg); return 1; }
    int V = m.cfg.vocab_size;
    int32_t *x = malloc(sizeof *x * T);
    float *logits = malloc(sizeof *logits * (size_t)T * V);
    long good = 0, total = 0;
    for (uint64_t start = 0; start + T + 1 <= ds.token_count; start += T) {
        for (int t = 0; t < T; t++) x[t] = (int32_t)binidx_token(&ds, start + t);
        model_forward_logits(&m, w, x, logits);
        int doc_started = 0, after_eq = 0;
        for (int t = 0; t < T; t++) {
            if (t > 0 && x[t - 1] == 0) { doc_started = 1; after_eq = 0; }
            if (x[t] == 11) after_eq = 1;
            if (!doc_started || !after_eq) continue;
            int target = (int)binidx_token(&ds, start + t + 1), best = 0;
            const float *l = logits + (size_t)t * V;
            for (int k = 1; k < V; k++) if (l[k] > l[best]) best = k;
            good += best == target;
            total++;
            if (target == 0) after_eq = 0;
        }
    }
    printf("accuracy %.4f (%ld targets)\n", total ? (double)good / total : 0.0, total);
    model_work_free(w);
    model_free(&m);
    binidx_close(&ds);
    free(x); free(logits);
    return 0;
}
