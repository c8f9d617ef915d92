/* sampler.c: the reference's "magic prime" sampling (RWKV-LM-V7 src/dataset.py
 * MyDataset.__getitem__). */
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
