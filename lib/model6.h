/* model6.h: the RWKV-6 (x060) model on the CPU in fp32 (RWKV-LM RWKV-v5/src/model.py:
 * RWKV with RWKV_Tmix_x060 and RWKV_CMix_x060; doc/model6.md).
 *
 * Callers use model.h: its entry points dispatch here when m->cfg.model_type
 * is MODEL_X060, so a Model, its gradient, Adam moments and checkpoints work
 * the same for both types.  The ModelWork and ModelState objects these return
 * are x060's own structs; like model.c's they begin with a ModelConfig, which
 * is how model_work_free / model_state_free / model_state_reset tell them
 * apart (model6_owns). */
#ifndef RWKV7C_MODEL6_H
#define RWKV7C_MODEL6_H
#include "model.h"

ModelWork  *model6_work_new(const Model *m, int B, int T, int grad_cp, Error *e);
void        model6_work_free(ModelWork *w);
float       model6_forward_backward(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y, float *grad);
float       model6_forward_loss(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y);
void        model6_forward_logits(const Model *m, ModelWork *w, const int32_t *x, float *logits);
ModelState *model6_state_new(const Model *m, Error *e);
void        model6_state_reset(ModelState *s);
void        model6_state_free(ModelState *s);
void        model6_step(const Model *m, ModelState *s, int32_t token, float *logits);
int         model6_prefill(const Model *m, ModelState *s, const int32_t *tokens, int n, float *logits, Error *e);

/* The recurrent state, for tests and tools: att_shift [L][C] (the ln1 output of
 * the last token, rwkv pip's att x_prev), ffn_shift [L][C] (the ln2 output),
 * wkv [L][H][64][64] as S[i][j], i = value, j = key (rwkv pip's CPU state is
 * the transpose, [h][key][value]). */
void model6_state_tensors(ModelState *s, float **att_shift, float **ffn_shift, float **wkv);

/* 1 if obj (a ModelWork or ModelState, both beginning with a ModelConfig) is x060's. */
static inline int model6_owns(const void *obj) { return obj && config_is_x060((const ModelConfig *)obj); }
#endif
