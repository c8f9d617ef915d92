/* init.h: the x070 initialisation of RWKV-LM (RWKV-LM-V7 src/model.py: the
 * RWKV_Tmix_x070 and RWKV_CMix_x070 constructors, then RWKV.generate_init_weight;
 * doc/model.md "Initialisation"), and the x060 one (RWKV-LM RWKV-v5/src/model.py:
 * RWKV_Tmix_x060, RWKV_CMix_x060, generate_init_weight; doc/model6.md).
 *
 * Deterministic tensors (x_*, w0, a0, v0, k_k, k_a, r_k, ln_x.weight, LayerNorms)
 * follow the reference formulas in float32 steps, so their bf16 values equal
 * the reference's bit for bit.  Random tensors follow the same distributions:
 * orthogonal (QR of a N(0,1) matrix, LAPACK sgeqrf/sorgqr, sign fix by diag(R),
 * then the gain), uniform ±1e-4 for emb, zeros where the reference has zeros.
 * Random draws come from a counter-seeded generator (xoshiro256** per tensor and
 * per 64K-element chunk), so a seed gives the same file for any thread count. */
#ifndef RWKV7C_INIT_H
#define RWKV7C_INIT_H
#include <stdint.h>
#include "model.h"
#include "util.h"

typedef enum { INIT_FORMULA, INIT_ZEROS, INIT_ONES, INIT_UNIFORM, INIT_ORTHOGONAL } InitKind;

/* How parameter `name` of model shape c is initialised; *gain is the
 * orthogonal gain or the uniform bound. */
InitKind init_kind(const ModelConfig *c, const char *name, double *gain);
const char *init_kind_name(InitKind k);

/* Initialise every parameter of m (allocated by model_alloc), x070 or x060
 * by m->cfg.model_type (x060: RWKV-LM RWKV-v5/src/model.py at HEAD). */
int init_model(Model *m, uint64_t seed, Error *e);

/* x060 ChannelMix ffn.time_maa_k/_r: 1 - ddd^(r1^3) at RWKV-LM HEAD (since
 * b44816c, 2024-11-17; the default), 1 - ddd^r1 in the 2024 code that trained
 * the released RWKV-6 World models.  Ignored for x070. */
typedef enum { X060_CMIX_HEAD = 0, X060_CMIX_2024 = 1 } X060CmixInit;
int init_model_x060(Model *m, uint64_t seed, X060CmixInit cmix, Error *e);

/* Building blocks (exposed for tests). */
/* rows x cols row-major, like torch.nn.init.orthogonal_(w, gain). */
int  init_orthogonal(float *w, int64_t rows, int64_t cols, double gain, uint64_t seed, Error *e);
void init_uniform(float *w, size_t n, float lo, float hi, uint64_t seed);
void init_normal(float *w, size_t n, uint64_t seed);
/* Seed for one tensor: mixes the run seed with the tensor's name. */
uint64_t init_tensor_seed(uint64_t seed, const char *name);
#endif
