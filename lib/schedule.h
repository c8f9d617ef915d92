/* schedule.h: the reference learning rate (RWKV-LM-V7 src/trainer.py
 * train_callback.on_train_batch_start): cosine from
 * lr_init to lr_final over my_exit_tokens, linear warmup 1% -> 100%. */
#ifndef RWKV7C_SCHEDULE_H
#define RWKV7C_SCHEDULE_H
#include <stdint.h>
#include "util.h"

typedef struct {
    double   lr_init, lr_final;
    int64_t  warmup_steps;      /* -1 = none (the reference default) */
    uint64_t tokens_per_step;   /* ctx_len * real_bsz */
    uint64_t exit_tokens;       /* my_exit_tokens, > 0 */
} LrSchedule;

int lr_schedule_check(const LrSchedule *s, Error *e);
/* Base LR (before each group's scale) for absolute step real_step.
 * warm_step counts steps since the optimizer started fresh (the reference's
 * trainer.global_step); an exact resume keeps counting, so warmup is not
 * repeated.  *done = 1 when the run must stop before this step (progress >= 1). */
double lr_at(const LrSchedule *s, uint64_t real_step, uint64_t warm_step, int *done);
/* First step at which lr_at reports done. */
uint64_t lr_exit_step(const LrSchedule *s);
#endif
