#define _GNU_SOURCE   /* qsort_r */
#include "logit_sample.h"

#include <math.h>
#include <stdlib.h>

static uint64_t next_u64(uint64_t *st)     /* splitmix64 */
{
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void logit_sample_seed(LogitSampler *s, uint64_t seed)
{
    s->rng = seed;
    next_u64(&s->rng);
}

static int by_prob_desc(const void *a, const void *b, void *key)
{
    const float *p = key;
    float pa = p[*(const int32_t *)a], pb = p[*(const int32_t *)b];
    if (pa != pb) return pa > pb ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

/* The rwkv pip package's convention (BlinkDL/ChatRWKV
 * rwkv_pip_package/src/rwkv/utils.py, PIPELINE.sample_logits): top-p and
 * top-k cut on the UNtempered softmax, and the temperature reshapes only the
 * tokens kept (probs ** (1/T)).  So --top-p means the same set of tokens at
 * every temperature. */
int logit_sample(LogitSampler *s, const float *logits, int V, float *p, int32_t *idx)
{
    int best = -1;
    for (int i = 0; i < V; i++)
        if (isfinite(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    if (best < 0) return 0;
    if (!(s->temperature > 0)) return best;
    double M = logits[best], sum = 0;
    for (int i = 0; i < V; i++) {
        p[i] = isfinite(logits[i]) ? (float)exp(logits[i] - M) : 0.0f;   /* softmax at T = 1, unnormalised */
        sum += p[i];
    }
    int n = V;
    for (int i = 0; i < V; i++) idx[i] = i;
    if ((s->top_k > 0 && s->top_k < V) || s->top_p < 1) {
        qsort_r(idx, (size_t)V, sizeof *idx, by_prob_desc, p);
        if (s->top_k > 0 && s->top_k < n) n = s->top_k;
        if (s->top_p < 1) {
            double acc = 0, want = s->top_p * sum;
            int k = 0;
            while (k < n) {
                acc += p[idx[k++]];
                if (acc >= want) break;
            }
            n = k > 0 ? k : 1;
        }
    }
    /* the temperature applies to the kept tokens: p ** (1/T) = exp((z - M) / T) */
    double total = 0;
    for (int k = 0; k < n; k++) {
        int i = idx[k];
        p[i] = (float)exp((logits[i] - M) / s->temperature);
        total += p[i];
    }
    double u = (double)(next_u64(&s->rng) >> 11) / 9007199254740992.0 * total, acc = 0;
    for (int k = 0; k < n; k++) {
        acc += p[idx[k]];
        if (u < acc) return idx[k];
    }
    return idx[n - 1];
}
