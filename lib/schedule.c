/* schedule.c: the learning rate, computed in double exactly as train.py does. */
#include "schedule.h"

#include <math.h>

int lr_schedule_check(const LrSchedule *s, Error *e)
{
    if (!(s->lr_init > 0) || !isfinite(s->lr_init)) return fail(e, "--lr_init must be positive (got %g)", s->lr_init);
    if (!(s->lr_final >= 0) || !isfinite(s->lr_final)) return fail(e, "--lr_final must be >= 0 (got %g)", s->lr_final);
    if (s->warmup_steps < -1) return fail(e, "--warmup_steps must be >= 0, or -1 for none");
    if (s->tokens_per_step == 0) return fail(e, "tokens per step is 0");
    if (s->exit_tokens == 0) return fail(e, "--my_exit_tokens must be positive");
    double w = (double)s->warmup_steps * (double)s->tokens_per_step;
    if (!((double)s->exit_tokens - w > 0))
        return fail(e, "--warmup_steps %lld x %llu tokens/step reaches --my_exit_tokens %llu: nothing left to train",
                    (long long)s->warmup_steps, (unsigned long long)s->tokens_per_step,
                    (unsigned long long)s->exit_tokens);
    return 0;
}

/* A product rounded on its own, as Python computes it: the volatile keeps the
 * compiler from fusing it with the next addition (an FMA rounds once). */
static double mul(double a, double b)
{
    volatile double r = a * b;
    return r;
}

double lr_at(const LrSchedule *s, uint64_t real_step, uint64_t warm_step, int *done)
{
    double tps = (double)s->tokens_per_step, w = (double)s->warmup_steps;
    double progress = (mul((double)real_step, tps) - mul(w, tps)) / ((double)s->exit_tokens - mul(w, tps));
    if (progress < 0) progress = 0;
    if (progress > 1) progress = 1;
    double f = s->lr_final / s->lr_init;
    double lr = s->lr_init * ((0.5 + f / 2) + mul(0.5 - f / 2, cos(M_PI * progress)));
    *done = progress >= 1;
    if ((double)warm_step < w)
        lr = lr * (0.01 + mul(0.99, (double)warm_step) / w);
    return lr;
}

uint64_t lr_exit_step(const LrSchedule *s)
{
    /* Start near exit_tokens / tps and settle on the exact first "done" step. */
    uint64_t k = s->exit_tokens / s->tokens_per_step;
    int done;
    while (k > 0) { lr_at(s, k - 1, UINT64_MAX, &done); if (!done) break; k--; }
    for (;;) { lr_at(s, k, UINT64_MAX, &done); if (done) return k; k++; }
}
