/* Sampling positions (RWKV-LM-V7 src/dataset.py) and the LR schedule
 * (src/trainer.py train_callback.on_train_batch_start)
 * against the reference's worked examples. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "magic.h"
#include "sampler.h"
#include "schedule.h"

#include "check.h"
/* Python rounds every operation; keep the compiler from fusing a*b+c. */
static double mul(double a, double b) { volatile double r = a * b; return r; }

/* The formula with Python-style exact arithmetic, done independently with
 * a 128-bit cube (fits: ii < 2^40 here). */
static uint64_t naive_pos(uint64_t p, uint64_t factor, uint64_t ii, uint64_t ctx)
{
    unsigned __int128 c = (unsigned __int128)ii * ii * ii;
    return (uint64_t)(((unsigned __int128)factor * (c % p)) % p) * ctx;
}

int main(void)
{
    Error e;
    Sampler s;
    /* minipile, ctx 512, micro_bsz 16, one GPU */
    CHECK(sampler_init(&s, 2926181, 512, 16, 1, &e) == 0, "init: %s", e.msg);
    CHECK(s.factor == 1808479, "factor %" PRIu64, s.factor);
    CHECK(s.epoch_steps == 2520 && s.epoch_count == 72, "epoch_steps %" PRIu64 " count %" PRIu64, s.epoch_steps, s.epoch_count);
    const uint64_t want[5] = { 925941248, 1414711296, 1029138944, 830257664, 380896256 };
    for (int i = 0; i < 5; i++) {
        uint64_t got = sampler_step_pos(&s, 0, 0, (uint64_t)i);   /* step 0, elements 0..4 = ii 1..5 */
        CHECK(got == want[i], "pos ii=%d: %" PRIu64 " want %" PRIu64, i + 1, got, want[i]);
    }
    /* Epoch/step mapping and large ii (past 2^21, where ii^3 overflows 64 bits). */
    for (uint64_t step = 0; step < 200000; step += 977)
        for (uint64_t m = 0; m < 16; m += 5) {
            uint64_t e0 = step / 2520, idx = (step % 2520) * 16 + m, ii = 1 + e0 * 40320 + idx;
            uint64_t got = sampler_step_pos(&s, step, 0, m);
            CHECK(got == naive_pos(2926181, 1808479, ii, 512), "step %" PRIu64 " m %" PRIu64, step, m);
        }
    /* Multi-rank: ii = 1 + e*40320 + idx*W + r. */
    Sampler s2;
    CHECK(sampler_init(&s2, 2926181, 512, 4, 2, &e) == 0, "init W=2");
    CHECK(s2.epoch_steps == 5040, "W=2 epoch_steps");
    CHECK(sampler_step_pos(&s2, 0, 1, 0) == want[1], "rank 1 element 0 = ii 2");
    CHECK(sampler_step_pos(&s2, 0, 0, 1) == want[2], "rank 0 element 1 = ii 3");
    /* Data parallel: W ranks of micro_bsz m see, at every step, the same windows as one rank
     * of micro_bsz m*W (element j = m_idx*W + r), across miniepoch boundaries too. */
    {
        const uint64_t ws[] = { 2, 3, 4, 8 };
        for (size_t wi = 0; wi < sizeof ws / sizeof *ws; wi++) {
            uint64_t W = ws[wi], mb = 6;
            Sampler one, many;
            CHECK(sampler_init(&one, 2926181, 512, mb * W, 1, &e) == 0, "init 1 x %" PRIu64, mb * W);
            CHECK(sampler_init(&many, 2926181, 512, mb, W, &e) == 0, "init %" PRIu64 " x %" PRIu64, W, mb);
            CHECK(one.epoch_steps == many.epoch_steps, "W=%" PRIu64 ": same epoch_steps", W);
            uint64_t steps[] = { 0, 1, 17, one.epoch_steps - 1, one.epoch_steps, 3 * one.epoch_steps + 5 };
            int same = 1;
            for (size_t k = 0; k < sizeof steps / sizeof *steps; k++)
                for (uint64_t r = 0; r < W; r++)
                    for (uint64_t m = 0; m < mb; m++)
                        same &= sampler_step_pos(&many, steps[k], r, m) == sampler_step_pos(&one, steps[k], 0, m * W + r);
            CHECK(same, "W=%" PRIu64 " x micro_bsz %" PRIu64 " = 1 x %" PRIu64 " window for window", W, mb, mb * W);
        }
    }
    /* A permutation: over p consecutive ii every chunk is visited once. */
    Sampler s3;
    CHECK(sampler_init(&s3, 113, 512, 1, 1, &e) == 0, "init 113");
    int seen[113] = { 0 };
    for (uint64_t i = 0; i < 113; i++) seen[sampler_pos(&s3, 0, i, 0) / 512]++;
    for (int i = 0; i < 113; i++) CHECK(seen[i] == 1, "chunk %d visited %d times", i, seen[i]);

    /* real_bsz must divide 40320 */
    CHECK(sampler_init(&s, 2926181, 512, 10, 1, &e) == 0, "10 divides 40320");
    CHECK(sampler_init(&s, 2926181, 512, 11, 1, &e) == -1 && strstr(e.msg, "40320"), "11: %s", e.msg);
    CHECK(sampler_init(&s, 2926181, 512, 0, 1, &e) == -1, "0 rejected");

    /* magic prime: golden table */
    uint64_t mp;
    CHECK(magic_prime(1498226207, 512, &mp, &e) == 0 && mp == 2926181, "minipile 512");
    CHECK(magic_prime(1498226207, 4096, &mp, &e) == 0 && mp == 365759, "minipile 4096");
    CHECK(magic_prime(332115325534ull, 4096, &mp, &e) == 0 && mp == 81082817, "pile");
    CHECK(magic_prime(66833, 512, &mp, &e) == 0 && mp == 113, "demo 512");
    CHECK(magic_prime(200499, 4096, &mp, &e) == 0 && mp == 47, "demo x3 4096");
    CHECK(magic_prime_accept(113, 66833, 512, &e) == 0, "113 ok: %s", e.msg);
    CHECK(magic_prime_accept(2926181, 66833, 512, &e) == -1 && strstr(e.msg, "--magic_prime 113"), "minipile prime on demo: %s", e.msg);
    CHECK(magic_prime_accept(109, 66833, 512, &e) == -1 && strstr(e.msg, "% 3"), "109 %% 3 == 1: %s", e.msg);
    CHECK(magic_prime_accept(111, 66833, 512, &e) == -1 && strstr(e.msg, "not prime"), "111: %s", e.msg);
    CHECK(magic_prime_accept(89, 66833, 512, &e) == -1, "89 too small a share");
    CHECK(magic_prime_accept(2, 1000, 512, &e) == -1 && strstr(e.msg, "too small"), "tiny data: %s", e.msg);
    /* p = 5 of 5 chunks fits the ratio, but the last window needs token 20 of 20 */
    CHECK(magic_prime_check(5, 20, 4, &e) == -1 && strstr(e.msg, "past the end"), "window past the end: %s", e.msg);
    CHECK(magic_prime_check(5, 21, 4, &e) == 0, "one token of slack: %s", e.msg);

    /* LR schedule: minipile demo, bsz 16, ctx 512, 6e-4 -> 6e-5, warmup 10 */
    LrSchedule ls = { .lr_init = 6e-4, .lr_final = 6e-5, .warmup_steps = 10, .tokens_per_step = 8192,
                      .exit_tokens = 1498226207 };
    CHECK(lr_schedule_check(&ls, &e) == 0, "schedule ok");
    int done;
    double lr = lr_at(&ls, 2519, 2519, &done);
    char buf[32];
    snprintf(buf, sizeof buf, "%.8f", lr);
    CHECK(fabs(lr - 5.99749e-4) < 5e-10 && !strcmp(buf, "0.00059975") && !done, "lr at 2519 = %.10g (%s)", lr, buf);
    CHECK(lr_exit_step(&ls) == 182889, "exit step %" PRIu64, lr_exit_step(&ls));
    lr_at(&ls, 182888, 182888, &done); CHECK(!done, "182888 trains");
    lr_at(&ls, 182889, 182889, &done); CHECK(done, "182889 exits");
    /* Warmup: 1% at warm step 0, linear to 100%; the formula by hand. */
    for (uint64_t k = 0; k < 12; k++) {
        double base = lr_at(&ls, k, UINT64_MAX, &done);
        double got = lr_at(&ls, k, k, &done);
        double prog = (mul((double)k, 8192) - 81920.0) / (1498226207.0 - 81920.0);
        if (prog < 0) prog = 0;
        double hand = 6e-4 * ((0.5 + 0.05) + mul(0.5 - 0.05, cos(M_PI * prog)));
        if (k < 10) hand *= 0.01 + mul(0.99, (double)k) / 10.0;
        CHECK(got == hand, "warm step %" PRIu64 ": %.12g vs %.12g", k, got, hand);
        CHECK(k >= 10 ? got == base : got < base, "warmup only before step 10");
    }
    /* Bit-exact against Python (train.py's formula evaluated by CPython 3). */
    const struct { uint64_t step; double lr; } py[] = {
        { 0, 5.999999999999999e-06 }, { 1, 6.539999999999999e-05 }, { 5, 0.000303 },
        { 2519, 0.0005997492504249721 }, { 100000, 0.0002904833483943702 }, { 182888, 6.000000003529784e-05 },
    };
    for (size_t i = 0; i < sizeof py / sizeof *py; i++) {
        double got = lr_at(&ls, py[i].step, py[i].step, &done);
        CHECK(got == py[i].lr, "step %" PRIu64 ": %.17g, Python %.17g", py[i].step, got, py[i].lr);
    }
    /* warmup -1: progress uses w = -1 as the reference does */
    LrSchedule nw = ls; nw.warmup_steps = -1;
    double g0 = lr_at(&nw, 0, 0, &done);
    double p0 = (0.0 + 8192.0) / (1498226207.0 + 8192.0);
    CHECK(g0 == 6e-4 * ((0.5 + 0.05) + mul(0.5 - 0.05, cos(M_PI * p0))), "no warmup step 0");
    CHECK(lr_at(&ls, 10, 10, &done) == 6e-4 * ((0.5 + 0.05) + mul(0.5 - 0.05, 1.0)), "lr_init right after warmup");
    LrSchedule bad = ls; bad.lr_init = 0;
    CHECK(lr_schedule_check(&bad, &e) == -1, "lr_init 0 rejected");
    bad = ls; bad.exit_tokens = 0;
    CHECK(lr_schedule_check(&bad, &e) == -1, "exit 0 rejected");
    return check_done();
}
