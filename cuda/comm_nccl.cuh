/* cuda/comm_nccl.cuh: lib/comm.h over NCCL, device buffers (cuda/comm_nccl.cu; doc/comm.md).
 * Plain C declarations, so that C code (the trainer) can call them from a `make cuda` build.
 *
 * Every collective is enqueued on the communicator's stream and then waited for on the host:
 * cudaStreamQuery and ncclCommGetAsyncError are polled until the work is done, NCCL reports
 * an error (a peer's death shows up as a network error there), the abort check fires or the
 * timeout passes; then the communicator is aborted (ncclCommAbort) and broken.  NCCL cannot
 * tell which peer is missing: the message names this rank and the call.  bf16 is summed by
 * NCCL in bf16 (rounded at each hop).  Under the CPU emulation (cuda/emu.h) this file builds
 * to stubs that say NCCL needs a GPU build. */
#ifndef RWKV7C_COMM_NCCL_CUH
#define RWKV7C_COMM_NCCL_CUH
#include <stddef.h>
#include "comm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define COMM_NCCL_ID_BYTES 128   /* sizeof(ncclUniqueId): what launch_share_id_* carry */

/* Rank 0 only: a fresh id for the rendezvous (ncclGetUniqueId). */
int   comm_nccl_unique_id(void *id, Error *e);
/* cudaSetDevice(device), then join the world of `size` ranks named by id, waiting at most
 * timeout_s for all of them.  stream: the cudaStream_t the collectives run on (NULL: one of
 * its own). */
Comm *comm_nccl_open(int rank, int size, int local_rank, int device, const void *id, double timeout_s,
                     void *stream, Error *e);

/* The single-GPU smoke test (world size 1) for a test program on a GPU machine: every
 * collective on device buffers of odd sizes, fp32/fp64/bf16, results checked on the host.
 * 0 when all pass; -1 with e naming the first failure (under the emulation: "needs a GPU"). */
int   comm_nccl_smoke(int device, Error *e);

#ifdef __cplusplus
}
#endif
#endif
