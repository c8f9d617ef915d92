/* layout.h: the parameter list of each model type — names, shapes and order
 * exactly as the RWKV-LM state_dict (x070: RWKV-LM-V7 src/model.py, doc/model.md;
 * x060: RWKV-LM RWKV-v5/src/model.py, doc/model6.md) — and the model
 * dimensions, which are always read from a checkpoint's tensor shapes, never
 * typed by hand.
 *
 * Model types.  ModelConfig.model_type is 0 or 7 for RWKV-7 (x070: every
 * zero-initialised config stays x070) and 6 for RWKV-6 (x060).  The type of a
 * checkpoint comes from its tensor names (config_from_tensors), never from the
 * file name.  One Layout serves both: Model, gradients, Adam moments, training
 * states and checkpoint I/O index parameters through it unchanged.
 *
 * x060 layout (layout_build, in this order = the official state-dict order):
 *   emb.weight [V,C]; per block l: ln1.weight/bias, ln2.weight/bias [C],
 *   (l = 0, unless no_ln0) ln0.weight/bias [C], then att.time_maa_x, _w, _k,
 *   _v, _r, _g [1,1,C], att.time_maa_w1 [C, 5*d_mix], att.time_maa_w2
 *   [5, d_mix, C], att.time_decay [1,1,C], att.time_decay_w1 [C, d_decay],
 *   att.time_decay_w2 [d_decay, C], att.time_faaaa [H, 64],
 *   att.receptance/key/value/output/gate.weight [C,C], att.ln_x.weight/bias
 *   [C], ffn.time_maa_k/_r [1,1,C], ffn.key.weight [dim_ffn, C],
 *   ffn.receptance.weight [C,C], ffn.value.weight [C, dim_ffn]; then
 *   ln_out.weight/bias [C], head.weight [V,C].
 *   [1,1,C] tensors may be stored squeezed as [C]; time_faaaa must stay [H,64]. */
#ifndef RWKV7C_LAYOUT_H
#define RWKV7C_LAYOUT_H
#include <stddef.h>
#include <stdint.h>
#include "tensors.h"
#include "util.h"

#define MODEL_X070 7
#define MODEL_X060 6

typedef struct {
    int n_layer, n_embd, vocab_size, head_size, n_head;
    int d_decay, d_aaa, d_mv, d_gate;  /* LoRA ranks (w, a, v, g); x060: d_decay = TIME_DECAY_EXTRA_DIM
                                        * (time_decay_w1.shape[1]), the other three 0 */
    int layer0_v;                      /* x070: blocks.0.att.v0/v1/v2 present (training checkpoints); x060: 0 */
    /* Appended so existing initialisers stay valid; all 0 for x070. */
    int model_type;                    /* 0 or MODEL_X070 (7): x070; MODEL_X060 (6): x060 */
    int d_mix;                         /* x060: TIME_MIX_EXTRA_DIM = time_maa_w2.shape[1] (32; 64 at C=4096) */
    int dim_ffn;                       /* x060: ChannelMix width = ffn.key.weight.shape[0]
                                        * (int(3.5*C)//32*32 by default; official 7B/14B differ) */
    int no_ln0;                        /* x060: blocks.0.ln0.* absent (the embedding feeds block 0 as is) */
} ModelConfig;

/* 1 if c is an x060 config (model_type 6); x070 otherwise. */
static inline int config_is_x060(const ModelConfig *c) { return c->model_type == MODEL_X060; }
/* "x060" or "x070": the name in metadata ("model_type"), messages and --my_testing. */
const char *config_type_name(const ModelConfig *c);

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
/* x060 as RWKV-LM RWKV-v5/train.py + src/model.py build it: d_mix 32, d_decay 64
 * (hard-coded in the trainer), dim_ffn = int((C*3.5)//32*32), ln0 present; validates. */
int  config_default_x060(ModelConfig *c, int n_layer, int n_embd, int vocab_size, int head_size, Error *e);
int  config_validate(const ModelConfig *c, Error *e);
/* Derive every dimension from a checkpoint's tensors (names/shapes checked strictly
 * later by layout_check_tensors).  The type: x060 when blocks.0.att.time_faaaa is
 * present (then H and the head size come from its [H,N] shape, d_mix from
 * time_maa_w2, d_decay from time_decay_w1, dim_ffn from ffn.key.weight, no_ln0
 * from blocks.0.ln0.weight's absence), else x070. */
int  config_from_tensors(const TensorSet *ts, ModelConfig *c, Error *e);
int  layout_build(const ModelConfig *c, Layout *l, Error *e);
void layout_free(Layout *l);
const ParamInfo *layout_find(const Layout *l, const char *name);
/* Every expected tensor present with the right shape ([1,1,C] and [C] accepted
 * interchangeably), float dtype; unexpected names are an error naming them. */
int  layout_check_tensors(const Layout *l, const TensorSet *ts, Error *e);
uint64_t config_param_count(const ModelConfig *c);
#endif
