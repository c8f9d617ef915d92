/* logit_sample.h: choosing the next token from a model's logits — greedy,
 * or sampled with temperature, top-k and top-p (nucleus), reproducibly from a
 * seed.  The order is the rwkv pip package's (BlinkDL/ChatRWKV
 * rwkv_pip_package/src/rwkv/utils.py, PIPELINE.sample_logits): the top-p and
 * top-k cuts on the softmax at T = 1, then the kept probabilities ** (1/T).
 * Callers that must not sample from garbage check the logits first
 * (rwkv-generate stops on a non-finite one). */
#ifndef RWKV7C_LOGIT_SAMPLE_H
#define RWKV7C_LOGIT_SAMPLE_H
#include <stdint.h>
#include "util.h"

typedef struct {
    float temperature;   /* <= 0: greedy (argmax, lowest index on ties) */
    float top_p;         /* keep the most likely tokens whose probabilities (at T = 1) sum to >= top_p; 1 = all */
    int   top_k;         /* keep at most top_k tokens; 0 = all */
    uint64_t rng;        /* generator state; seed it with logit_sample_seed */
} LogitSampler;

void logit_sample_seed(LogitSampler *s, uint64_t seed);
/* A token id in [0, V).  scratch: V floats and V int32 (no allocation per call).
 * Non-finite logits are treated as -infinity; if none is finite, returns 0. */
int  logit_sample(LogitSampler *s, const float *logits, int V, float *prob_scratch, int32_t *idx_scratch);
#endif
