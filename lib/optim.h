/* optim.h: the reference optimizer (RWKV-LM-V7 src/model.py
 * RWKV.configure_optimizers; DeepSpeed ops/adam FusedAdam): three
 * parameter groups, DeepSpeed FusedAdam (bias correction, eps after the sqrt,
 * AdamW mode when weight_decay > 0) on fp32 masters, and ZeRO's global-norm
 * clipping ((norm + 1e-6) / clip). */
#ifndef RWKV7C_OPTIM_H
#define RWKV7C_OPTIM_H
#include <stddef.h>
#include <stdint.h>
#include "layout.h"

typedef enum { GROUP_LR_1X = 0, GROUP_LR_2X = 1, GROUP_DECAY = 2 } ParamGroup;

/* configure_optimizers' rules: "_w1"/"_w2", "time_maa" and "time_faaaa" -> 1x;
 * "time_decay" (x060) and "att.w0" (x070) -> 2x; 2-D+ ".weight" with wd > 0 -> decay; else 1x. */
ParamGroup  param_group(const ParamInfo *p, double weight_decay);
const char *param_group_name(ParamGroup g);      /* "lr_1x", "lr_2x", "decay" */
double      param_group_lr_scale(ParamGroup g);   /* 1 or 2 */

typedef struct {
    double beta1, beta2, eps, weight_decay, grad_clip;
} AdamConfig;

/* Global L2 norm of n floats (accumulated in double). */
double grad_global_norm(const float *g, size_t n);
/* The clip factor applied to the gradients: 1 / ((norm + 1e-6) / clip) when
 * that quotient exceeds 1, else 1.  clip <= 0 disables clipping. */
float  grad_clip_scale(double norm, double clip);

/* One FusedAdam step (step = 1, 2, ... since the optimizer started) over the
 * parameters of layout l: w, m, v updated in place from gradient g, which is
 * multiplied by grad_scale first (clipping).  lr is the base LR.  If w_bf16
 * is not NULL it receives the new weights rounded to bf16 (as fp32 values):
 * the copy the next forward uses, written in the same pass. */
void adam_step(const Layout *l, const AdamConfig *c, uint64_t step, double lr, float grad_scale,
               float *w, float *m, float *v, const float *g, float *w_bf16);
/* adam_step over the elements [lo, hi) of layout l only (a data-parallel rank's shard), with
 * each element's group taken from the tensor it lies in.  w, m, v and g point at element lo
 * (hold hi - lo floats); the same bits as adam_step, element for element (each element in the
 * vector lane or scalar tail it has in adam_step's call). */
void adam_step_range(const Layout *l, const AdamConfig *c, uint64_t step, double lr, float grad_scale, size_t lo,
                     size_t hi, float *w, float *m, float *v, const float *g);
#endif
