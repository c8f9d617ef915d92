/* sampler.c: the reference's "magic prime" sampling (rwkv7-reference §1.5). */
#include "sampler.h"

#include <inttypes.h>
#include <math.h>

int sampler_init(Sampler *s, uint64_t magic_prime, uint64_t ctx_len, uint64_t micro_bsz,
                 uint64_t world, Error *e)
{
    if (ctx_len == 0) return fail(e, "ctx_len must be positive");
    if (micro_bsz == 0 || world == 0) return fail(e, "micro_bsz, devices and num_nodes must be positive");
    if (micro_bsz > MINIEPOCH_SAMPLES || world > MINIEPOCH_SAMPLES || micro_bsz * world > MINIEPOCH_SAMPLES
        || MINIEPOCH_SAMPLES % (micro_bsz * world) != 0)
        return fail(e, "real batch size %" PRIu64 " (micro_bsz %" PRIu64 " x %" PRIu64
                    " devices) must divide 40320 (one miniepoch = 40320 samples): use e.g. 1, 2, 4, 8, 12, 16, 24, 32, 48, 64",
                    micro_bsz * world, micro_bsz, world);
    if (magic_prime < 2) return fail(e, "magic_prime %" PRIu64 " is too small", magic_prime);
    s->magic_prime = magic_prime;
    s->ctx_len = ctx_len;
    s->micro_bsz = micro_bsz;
    s->world = world;
    s->real_bsz = micro_bsz * world;
    s->epoch_steps = MINIEPOCH_SAMPLES / s->real_bsz;
    s->epoch_count = magic_prime / MINIEPOCH_SAMPLES;
    s->factor = sampler_factor(magic_prime);
    return 0;
}

uint64_t sampler_factor(uint64_t magic_prime)
{
    /* Python: int(magic_prime * ((math.sqrt(5) - 1) / 2)), all in IEEE double. */
    double golden = (sqrt(5.0) - 1.0) / 2.0;
    return (uint64_t)((double)magic_prime * golden);
}

uint64_t sampler_pos(const Sampler *s, uint64_t epoch, uint64_t idx, uint64_t rank)
{
    typedef unsigned __int128 u128;
    uint64_t p = s->magic_prime;
    u128 ii = (u128)1 + (u128)epoch * MINIEPOCH_SAMPLES + (u128)idx * s->world + rank;
    uint64_t r = (uint64_t)(ii % p);
    uint64_t cube = (uint64_t)((u128)r * r % p);
    cube = (uint64_t)((u128)cube * r % p);
    uint64_t v = (uint64_t)((u128)(s->factor % p) * cube % p);
    return v * s->ctx_len;
}

uint64_t sampler_step_pos(const Sampler *s, uint64_t real_step, uint64_t rank, uint64_t m)
{
    uint64_t e = real_step / s->epoch_steps, st = real_step % s->epoch_steps;
    return sampler_pos(s, e, st * s->micro_bsz + m, rank);
}

int is_prime_u64(uint64_t n)
{
    if (n <= 3) return n > 1;
    if (n % 2 == 0 || n % 3 == 0) return 0;
    for (uint64_t i = 5; i <= n / i; i += 6)
        if (n % i == 0 || n % (i + 2) == 0) return 0;
    return 1;
}

uint64_t magic_prime_for(uint64_t tokens, uint64_t ctx_len)
{
    if (ctx_len == 0 || tokens / ctx_len < 2) return 0;
    for (uint64_t i = tokens / ctx_len - 1; i >= 2; i--)
        if (i % 3 == 2 && is_prime_u64(i)) return i;
    return 0;
}

int sampler_check_magic(uint64_t data_tokens, uint64_t ctx_len, uint64_t magic_prime, Error *e)
{
    uint64_t chunks = ctx_len ? data_tokens / ctx_len : 0;
    uint64_t want = magic_prime_for(data_tokens, ctx_len);
    char hint[160];
    if (want)
        snprintf(hint, sizeof hint, "this data (%" PRIu64 " tokens, ctx_len %" PRIu64 ") calls for --magic_prime %" PRIu64
                 " (or leave it out)", data_tokens, ctx_len, want);
    else
        snprintf(hint, sizeof hint, "this data (%" PRIu64 " tokens) is too small for ctx_len %" PRIu64
                 ": it needs at least %" PRIu64 " tokens", data_tokens, ctx_len, 3 * ctx_len);
    if (!want) return fail(e, "%s", hint);
    /* make_data.py's own value is always accepted: on small data sets it can
     * fall below the reference trainer's 0.9 ratio (demo, ctx 512: 113 of 130). */
    if (magic_prime == want) return 0;
    if (!is_prime_u64(magic_prime))
        return fail(e, "--magic_prime %" PRIu64 " is not prime; %s", magic_prime, hint);
    if (magic_prime % 3 != 2)
        return fail(e, "--magic_prime %" PRIu64 " %% 3 != 2, so ii^3 mod p does not visit every chunk; %s", magic_prime, hint);
    /* The reference's check: 0.9 < p / (tokens // ctx_len) <= 1. */
    if (!((double)magic_prime / (double)chunks > 0.9 && (double)magic_prime / (double)chunks <= 1.0))
        return fail(e, "--magic_prime %" PRIu64 " does not fit the data: it must lie in (0.9, 1] x %" PRIu64
                    " chunks of ctx_len (were the numbers copied from another data set, e.g. minipile's 2926181?); %s",
                    magic_prime, chunks, hint);
    /* Every window [p*ctx, p*ctx + ctx + 1) must lie inside the data. */
    if ((magic_prime - 1) * ctx_len + ctx_len + 1 > data_tokens)
        return fail(e, "--magic_prime %" PRIu64 ": the last window would read past the end of the data; %s",
                    magic_prime, hint);
    return 0;
}
