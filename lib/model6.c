/* model6.c: the x060 compute on the CPU (model6.h).  Stub: the API is fixed, the compute follows. */
#include "model6.h"

#include <math.h>
#include <stdlib.h>

ModelWork *model6_work_new(const Model *m, int B, int T, int grad_cp, Error *e)
{
    (void)m; (void)B; (void)T; (void)grad_cp;
    fail(e, "x060 compute is not implemented yet");
    return NULL;
}
void model6_work_free(ModelWork *w) { (void)w; }
float model6_forward_backward(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y, float *grad)
{ (void)m; (void)w; (void)x; (void)y; (void)grad; return NAN; }
float model6_forward_loss(const Model *m, ModelWork *w, const int32_t *x, const int32_t *y)
{ (void)m; (void)w; (void)x; (void)y; return NAN; }
void model6_forward_logits(const Model *m, ModelWork *w, const int32_t *x, float *logits)
{ (void)m; (void)w; (void)x; (void)logits; }
ModelState *model6_state_new(const Model *m, Error *e) { (void)m; fail(e, "x060 compute is not implemented yet"); return NULL; }
void model6_state_reset(ModelState *s) { (void)s; }
void model6_state_free(ModelState *s) { (void)s; }
void model6_step(const Model *m, ModelState *s, int32_t token, float *logits) { (void)m; (void)s; (void)token; (void)logits; }
int model6_prefill(const Model *m, ModelState *s, const int32_t *tokens, int n, float *logits, Error *e)
{ (void)m; (void)s; (void)tokens; (void)n; (void)logits; return fail(e, "x060 compute is not implemented yet"); }
void model6_state_tensors(ModelState *s, float **a, float **f, float **w) { (void)s; *a = *f = *w = NULL; }
