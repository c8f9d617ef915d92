/* trainstate.h: everything a resumed run needs to continue exactly where an
 * uninterrupted run would be (doc/training-state.md): fp32 master weights,
 * Adam m and v, the step counters (the step is also the data position: src/dataset.py),
 * the running miniepoch loss, the seed and the run configuration.
 *
 * One safetensors file (st_write: atomic, XXH3 checksum per tensor, verified
 * on read) holding three flat F32 tensors "master", "adam_m", "adam_v" in
 * Layout order and string metadata; doubles are stored as C99 hex floats so
 * they round-trip bit for bit.  The metadata is covered by one more entry,
 * "meta_xxh3" (XXH3 of the sorted "key\0value\0" pairs).  trainstate_write
 * refuses a non-finite value in any tensor; trainstate_read accepts a file
 * only when every checksum verifies and every tensor and key is present,
 * finite and consistent. */
#ifndef RWKV7C_TRAINSTATE_H
#define RWKV7C_TRAINSTATE_H
#include <stddef.h>
#include <stdint.h>
#include "layout.h"
#include "tensors.h"
#include "util.h"

#define TRAINSTATE_FORMAT "rwkv7c-trainstate"
#define TRAINSTATE_VERSION 2   /* 2: metadata checksum "meta_xxh3"; 1 is still read */

typedef struct {
    uint64_t step;            /* next real_step to run (= steps done, absolute) */
    uint64_t adam_step;       /* updates applied since the optimizer started (bias correction) */
    uint64_t warm_step;       /* steps since the optimizer started (warmup; the reference's global_step) */
    uint64_t epoch_begin;     /* first miniepoch of the optimizer's lineage */
    double   epoch_loss_sum;  /* sum of step losses in the current miniepoch (train_log average) */
    uint64_t epoch_loss_n;
    uint64_t bad_in_row, bad_total;   /* non-finite steps skipped */
    uint64_t seed;
    double   elapsed;         /* training seconds so far (for tokens/s and ETA only) */
} TrainCounters;

typedef struct {
    ModelConfig cfg;
    size_t   n;               /* floats in each array */
    float   *w, *m, *v;       /* malloc'd */
    TrainCounters c;
    TensorSet meta;           /* metadata only (tensors dropped), for run-config keys */
    int      meta_unverified; /* a version-1 state: its metadata has no checksum */
} TrainState;

/* kv: NULL-terminated list of key, value, key, value ... (run configuration). */
int  trainstate_write(const char *path, const ModelConfig *cfg, const TrainCounters *c,
                      const float *w, const float *m, const float *v, const char *const *kv, Error *e);
int  trainstate_read(const char *path, TrainState *st, Error *e);
void trainstate_free(TrainState *st);
const char *trainstate_get(const TrainState *st, const char *key);
#endif
