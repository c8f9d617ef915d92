/* sampler.h: which ctx_len+1 token window each micro-batch element trains on
 * (RWKV-LM-V7 src/dataset.py MyDataset.__getitem__, with the step from
 * src/trainer.py train_callback).  magic_prime itself is lib/magic.h.  The position is a pure function of
 * (real_step, rank, element), so the step counter is the whole data-loader state. */
#ifndef RWKV7C_SAMPLER_H
#define RWKV7C_SAMPLER_H
#include <stdint.h>
#include "util.h"

#define MINIEPOCH_SAMPLES 40320u   /* 8!: one "miniepoch" in the reference */

typedef struct {
    uint64_t magic_prime, ctx_len;
    uint64_t micro_bsz, world;      /* world = devices * num_nodes */
    uint64_t real_bsz;              /* micro_bsz * world, divides 40320 */
    uint64_t epoch_steps;           /* 40320 / real_bsz optimizer steps per miniepoch */
    uint64_t epoch_count;           /* magic_prime / 40320 (the reference overrides --epoch_count) */
    uint64_t factor;                /* int(magic_prime * (sqrt(5)-1)/2) in IEEE double */
} Sampler;

int      sampler_init(Sampler *s, uint64_t magic_prime, uint64_t ctx_len, uint64_t micro_bsz,
                      uint64_t world, Error *e);
uint64_t sampler_factor(uint64_t magic_prime);
/* Token offset for (miniepoch e, dataset index idx, rank r): exact 128-bit arithmetic. */
uint64_t sampler_pos(const Sampler *s, uint64_t epoch, uint64_t idx, uint64_t rank);
/* Offset for micro-batch element m of rank r at optimizer step real_step. */
uint64_t sampler_step_pos(const Sampler *s, uint64_t real_step, uint64_t rank, uint64_t m);

#endif
