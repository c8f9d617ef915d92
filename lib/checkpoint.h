/* checkpoint.h: open any model checkpoint by content, not by file name.
 *
 * safetensors (8-byte header length, then '{') is read by st_read; a zip
 * ("PK\3\4", the torch.save .pth format) goes to pth_read. */
#ifndef RWKV7C_CHECKPOINT_H
#define RWKV7C_CHECKPOINT_H
#include "tensors.h"
#include "util.h"

typedef enum { CKPT_UNKNOWN, CKPT_SAFETENSORS, CKPT_PTH_ZIP } CkptFormat;

/* Read a checkpoint into ts (initialised here; free with ts_free).
 * Errors start with the path. */
int ckpt_read(const char *path, TensorSet *ts, Error *e);
#endif
