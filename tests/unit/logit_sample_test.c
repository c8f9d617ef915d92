/* logit_sample_test: lib/logit_sample — greedy, top-k, top-p, temperature and
 * seeding, against exact expectations and sampled frequencies. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "logit_sample.h"

#define CHECK_VERBOSE
#include "check.h"

int main(void)
{
    enum { V = 6 };
    float z[V] = { 1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f }, p[V];
    int32_t idx[V];
    LogitSampler s = { .temperature = 0, .top_p = 1, .top_k = 0 };
    logit_sample_seed(&s, 1);
    CHECK(logit_sample(&s, z, V, p, idx) == 1, "greedy picks the lowest index of the maximum");
    s.temperature = 1;
    s.top_k = 1;
    CHECK(logit_sample(&s, z, V, p, idx) == 1, "top-k 1 is greedy");
    s.top_k = 0;
    s.top_p = 1e-6f;
    CHECK(logit_sample(&s, z, V, p, idx) == 1, "tiny top-p is greedy");

    /* frequencies follow softmax(z / T) */
    int counts[V];
    double want[V], sum = 0;
    const double Ts[] = { 1.0, 0.5 };
    for (int ti = 0; ti < 2; ti++) {
        double T = Ts[ti];
        s.temperature = (float)T; s.top_p = 1; s.top_k = 0;
        logit_sample_seed(&s, 42);
        memset(counts, 0, sizeof counts);
        int N = 200000;
        for (int i = 0; i < N; i++) counts[logit_sample(&s, z, V, p, idx)]++;
        sum = 0;
        for (int i = 0; i < V; i++) sum += want[i] = exp(z[i] / T);
        double worst = 0;
        for (int i = 0; i < V; i++) {
            double e = want[i] / sum * N, sd = sqrt(e * (1 - want[i] / sum)) + 1;
            worst = fmax(worst, fabs(counts[i] - e) / sd);
        }
        CHECK(worst < 5, "T=%.1f: sampled frequencies within %.1f standard deviations of softmax", T, worst);
    }
    /* top-k 3 keeps ids 1, 3, 2 (probabilities 3, 3, 2); top-p 0.6 keeps 1 and 3 */
    s.temperature = 1; s.top_k = 3; s.top_p = 1;
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 20000; i++) counts[logit_sample(&s, z, V, p, idx)]++;
    CHECK(counts[0] == 0 && counts[4] == 0 && counts[5] == 0 && counts[1] && counts[2] && counts[3], "top-k 3 keeps the 3 most likely");
    s.top_k = 0; s.top_p = 0.6f;
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 20000; i++) counts[logit_sample(&s, z, V, p, idx)]++;
    double total = 0;
    for (int i = 0; i < V; i++) total += exp(z[i]);
    CHECK(counts[1] && counts[3] && counts[0] + counts[2] + counts[4] + counts[5] == 0,
          "top-p 0.6 keeps ids 1 and 3 (%.3f of the mass; id 1 alone %.3f)", 2 * exp(3.0) / total, exp(3.0) / total);
    /* The rwkv pip package's order (sample_logits): top-p cuts the UNtempered
     * softmax, then the kept probabilities are raised to 1/T.  Untempered, ids
     * 1+3 hold 0.768 and 1+3+2 hold 0.909 of the mass; at T=0.5, 1+3 alone
     * would hold 0.926, at T=2, 1+3+2 only 0.768. */
    const struct { double T, top_p; int kept[V]; } cut[] = {
        { 0.5, 0.85, { 0, 1, 1, 1, 0, 0 } },   /* tempering first would drop id 2 */
        { 2.0, 0.80, { 0, 1, 1, 1, 0, 0 } },   /* tempering first would keep id 0 too */
        { 2.0, 0.95, { 1, 1, 1, 1, 0, 0 } },
    };
    for (int ci = 0; ci < 3; ci++) {
        double T = cut[ci].T;
        s.temperature = (float)T; s.top_p = (float)cut[ci].top_p; s.top_k = 0;
        logit_sample_seed(&s, 99);
        memset(counts, 0, sizeof counts);
        int N = 100000;
        for (int i = 0; i < N; i++) counts[logit_sample(&s, z, V, p, idx)]++;
        sum = 0;
        for (int i = 0; i < V; i++) sum += want[i] = cut[ci].kept[i] ? pow(exp(z[i]), 1 / T) : 0;
        double worst = 0;
        int outside = 0;
        for (int i = 0; i < V; i++) {
            if (!cut[ci].kept[i]) { outside += counts[i]; continue; }
            double e = want[i] / sum * N, sd = sqrt(e * (1 - want[i] / sum)) + 1;
            worst = fmax(worst, fabs(counts[i] - e) / sd);
        }
        CHECK(outside == 0 && worst < 5, "T=%.1f top-p %.2f: cut on the untempered softmax, kept tokens sampled by p^(1/T) "
              "(%d draws outside, worst %.1f sd)", T, cut[ci].top_p, outside, worst);
    }
    /* top-k and top-p together keep the smaller set, at any temperature */
    s.temperature = 0.3f; s.top_p = 0.85f; s.top_k = 2;
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 20000; i++) counts[logit_sample(&s, z, V, p, idx)]++;
    CHECK(counts[1] && counts[3] && counts[1] + counts[3] == 20000, "top-k 2 within top-p 0.85 keeps ids 1 and 3");
    s.temperature = 1; s.top_k = 0;
    /* seeds */
    int a[50], b[50], c[50];
    s.top_p = 1;
    logit_sample_seed(&s, 7); for (int i = 0; i < 50; i++) a[i] = logit_sample(&s, z, V, p, idx);
    logit_sample_seed(&s, 7); for (int i = 0; i < 50; i++) b[i] = logit_sample(&s, z, V, p, idx);
    logit_sample_seed(&s, 8); for (int i = 0; i < 50; i++) c[i] = logit_sample(&s, z, V, p, idx);
    CHECK(!memcmp(a, b, sizeof a) && memcmp(a, c, sizeof a), "same seed same draws, other seed other draws");
    /* non-finite logits */
    float bad[V] = { NAN, -INFINITY, 0.0f, NAN, INFINITY, -1.0f };
    s.temperature = 0;
    CHECK(logit_sample(&s, bad, V, p, idx) == 2, "greedy ignores NaN and infinities");
    float none[2] = { NAN, NAN };
    CHECK(logit_sample(&s, none, 2, p, idx) == 0, "no finite logit: token 0");
    return check_done();
}
