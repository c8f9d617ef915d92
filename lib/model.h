/* model.h: the RWKV-7 x070 model on the CPU, in fp32 (x060 models are dispatched to
 * lib/model6.c behind the same functions) — the reference every
 * other backend is checked against (RWKV-LM-V7 src/model.py, class RWKV with
 * RWKV_Tmix_x070 and RWKV_CMix_x070; doc/model.md).
 *
 * All parameters live in one flat fp32 buffer in Layout order (= state-dict
 * order), so gradients, Adam moments and checkpoints share one indexing.
 * Matrix products use BLAS (OpenBLAS sgemm); the rest uses OpenMP threads. */
#ifndef RWKV7C_MODEL_H
#define RWKV7C_MODEL_H
#include <stdint.h>
#include "layout.h"
#include "util.h"

typedef struct {
    ModelConfig cfg;
    Layout      layout;
    float      *w;          /* layout.total floats */
    uint16_t   *w_bf16;     /* NULL, or w rounded to bf16 (same offsets): the decode path's weights */
} Model;

int    model_alloc(Model *m, const ModelConfig *c, Error *e);        /* zero weights */
void   model_free(Model *m);
float *model_param(const Model *m, const char *name);                /* NULL if absent */

/* ---- training (parallel / sequence mode) ---- */
typedef struct ModelWork ModelWork;   /* activations and scratch for B x T */
/* grad_cp: keep only block inputs and recompute each block in the backward. */
ModelWork *model_work_new(const Model *m, int B, int T, int grad_cp, Error *e);
void       model_work_free(ModelWork *w);
/* x, y: B*T token ids.  Returns the mean cross-entropy over B*T.  grad (layout.total
 * floats) is overwritten with d(loss)/d(w) including the L2Wrap term (src/model.py L2Wrap). */
float model_forward_backward(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y, float *grad);
/* Token ids outside [0, vocab_size) make the loss NaN (and logits NaN); callers validate. */
/* Loss only (no backward). */
float model_forward_loss(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y);
/* logits: B*T*V floats. */
void  model_forward_logits(const Model *m, ModelWork *w, const int32_t *x, float *logits);

/* ---- inference (recurrent mode, one token at a time) ---- */
typedef struct ModelState ModelState;
ModelState *model_state_new(const Model *m, Error *e);
void        model_state_reset(ModelState *s);
void        model_state_free(ModelState *s);
/* Decode weights.  model_step (and a one-token prefill) multiplies by the
 * large matrices (r/k/v/output, ffn key/value, head) through lib/matvec.c,
 * in fp32 by default; after model_use_bf16(m, 1) from bf16 copies (half the
 * bytes to read per token, fp32 accumulation), which differ from the fp32
 * path by bf16 rounding (doc: rwkv-generate(1) --dtype).  Prefill of more
 * than one token and training always use the fp32 weights.  Call it again
 * after changing m->w; 0 frees the copies. */
int  model_use_bf16(Model *m, int on, Error *e);
/* 1 if every weight is exactly a bf16 value (a bf16 checkpoint): bf16 decode
 * then reads the same weights as fp32. */
int  model_weights_bf16_exact(const Model *m);
/* Feed one token; logits (V floats) for the next token, if non-NULL. */
void model_step(const Model *m, ModelState *s, int32_t token, float *logits);
/* Feed n tokens using the parallel mode (prefill), leaving s as if model_step
 * had been called on each; logits of the last position, if non-NULL. */
int  model_prefill(const Model *m, ModelState *s, const int32_t *tokens, int n, float *logits, Error *e);
#endif
