/* pickle.h: the data.pkl of a .pth — a recogniser for the one pickle grammar
 * torch.save emits for a dict of tensors, and a writer for the same grammar
 * (torch/serialization.py and torch/_weights_only_unpickler.py in pytorch/pytorch;
 * details and sources in doc/pth-format.md).
 *
 * This is not an unpickler: nothing is imported, called or executed.  The
 * parser accepts only protocol-2 opcodes from a fixed list and only these
 * globals: collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * torch._utils._rebuild_parameter and torch.<Name>Storage.  REDUCE is legal
 * only in the exact shapes torch writes (an empty OrderedDict, a tensor
 * rebuild, a parameter wrapper); BUILD only for a module's `_metadata` tail.
 * Anything else (GLOBAL os system, INST, STACK_GLOBAL, a REDUCE of an unknown
 * callable, ...) is refused with the opcode and its offset.  Sizes, depths,
 * string lengths, memo indices, tuples and tuple items are capped, so the
 * parser's memory stays under about 100 MB whatever the input. */
#ifndef RWKV7C_PICKLE_H
#define RWKV7C_PICKLE_H
#include <stddef.h>
#include <stdint.h>
#include "tensors.h"
#include "util.h"

#define PICKLE_MAX_BYTES (64u << 20)
#define PICKLE_MAX_NAME  1024
#define PICKLE_MAX_TENSORS 65536   /* a 7B RWKV-7 has ~1000 */

typedef struct {
    char    *key;          /* "0", "1", ...: the record data/<key> */
    DType    dtype;
    uint64_t numel;        /* elements of dtype */
    char     location[32]; /* "cpu", "cuda:0", ... (informational) */
} PickleStorage;

typedef struct {
    char    *name;
    int      storage;      /* index into PickleDict.storage */
    uint64_t offset;       /* in elements */
    int      ndim;
    int64_t  size[TENSOR_MAX_DIM], stride[TENSOR_MAX_DIM];
} PickleTensor;

typedef struct {
    PickleStorage *storage;
    int            nstorage;
    PickleTensor  *tensor;     /* in dict order */
    int            ntensor;
    int            ordered;    /* top level was an OrderedDict */
    int            metadata;   /* a state_dict _metadata tail was present (ignored) */
} PickleDict;

/* Recognise buf as a pickled dict of tensors.  Tensor geometry is checked
 * against the storage's numel (extent with checked arithmetic); record sizes
 * are the caller's business (pth.c).  0 or -1 with e set ("data.pkl offset N: ..."). */
int  pickle_parse(const void *buf, size_t len, PickleDict *d, Error *e);
void pickle_free(PickleDict *d);

/* Emit the pickle for ts as a plain dict name -> tensor, storage keys "0".."n-1"
 * in order, contiguous, location "cpu".  *out is malloc'd. */
int  pickle_write_dict(const TensorSet *ts, uint8_t **out, size_t *len, Error *e);
/* torch storage class name for dt ("BFloat16Storage"), or NULL. */
const char *pickle_storage_name(DType dt);
#endif
