/* model_io.h: a Model's checkpoint I/O (model_io.c): parameters to and from
 * a TensorSet with RWKV-LM's state-dict names, and checkpoint files (.pth or
 * safetensors, told apart by content on reading). */
#ifndef RWKV7C_MODEL_IO_H
#define RWKV7C_MODEL_IO_H
#include "model.h"
#include "tensors.h"
#include "util.h"

/* Dimensions from the tensor shapes; every tensor checked (names, shapes, finite
 * values — errors name the tensor); converted to fp32. */
int model_from_tensors(Model *m, const TensorSet *ts, Error *e);
/* Append every parameter as dtype dt (DT_BF16 / DT_F32 / DT_F16) with RWKV-LM
 * names, plus metadata "model_type" ("x070" or "x060") and the dimensions. */
int model_to_tensors(const Model *m, TensorSet *ts, DType dt, Error *e);
/* Load a checkpoint file (safetensors or torch .pth), by content. */
int model_load(Model *m, const char *path, Error *e);
/* Save as safetensors, atomically; as a torch .pth when path ends in ".pth". */
int model_save(const Model *m, const char *path, DType dt, int overwrite, Error *e);
#endif
