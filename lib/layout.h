/* layout.h: the x070 parameter list — names, shapes and order exactly as the
 * RWKV-LM state_dict (RWKV-LM-V7 src/model.py, module order; doc/model.md) —
 * and the model dimensions, which are always read from a checkpoint's tensor
 * shapes, never typed by hand. */
#ifndef RWKV7C_LAYOUT_H
#define RWKV7C_LAYOUT_H
#include <stddef.h>
#include <stdint.h>
#include "tensors.h"
#include "util.h"

typedef struct {
    int n_layer, n_embd, vocab_size, head_size, n_head;
    int d_decay, d_aaa, d_mv, d_gate;  /* LoRA ranks (w, a, v, g) */
    int layer0_v;                      /* blocks.0.att.v0/v1/v2 present (training checkpoints) */
} ModelConfig;

typedef struct {
    char    name[48];
    int     ndim;
    int64_t shape[3];
    size_t  numel;
    size_t  offset;    /* in floats, within one flat buffer holding every parameter in order */
    int     layer;     /* -1 for emb, ln_out, head */
} ParamInfo;

typedef struct {
    ParamInfo *p;
    int        n;
    size_t     total;  /* floats */
} Layout;

/* The reference LoRA rank formula: max(32, rint(k*sqrt(C)/32)*32), banker's rounding. */
int  lora_rank(double k, int n_embd);
/* Fill c from (L, C, V, head size) with the formula ranks and layer0_v = 1; validates. */
int  config_default(ModelConfig *c, int n_layer, int n_embd, int vocab_size, int head_size, Error *e);
int  config_validate(const ModelConfig *c, Error *e);
/* Derive every dimension from a checkpoint's tensors (names/shapes checked strictly
 * later by layout_check_tensors). */
int  config_from_tensors(const TensorSet *ts, ModelConfig *c, Error *e);
int  layout_build(const ModelConfig *c, Layout *l, Error *e);
void layout_free(Layout *l);
const ParamInfo *layout_find(const Layout *l, const char *name);
/* Every expected tensor present with the right shape ([1,1,C] and [C] accepted
 * interchangeably), float dtype; unexpected names are an error naming them. */
int  layout_check_tensors(const Layout *l, const TensorSet *ts, Error *e);
uint64_t config_param_count(const ModelConfig *c);
#endif
