/* comm.h: the collectives data-parallel training needs, over one of three backends.
 *
 *   single  one rank; every collective is a copy (comm_single.c, always built)
 *   tcp     host buffers over the sockets of launch_connect_tcp, a star around rank 0
 *           (comm_tcp.c, always built: --devices N and torchrun-style launches without MPI)
 *   mpi     host buffers, MPI-3 non-blocking collectives (comm_mpi.c; a stub that says
 *           "built without MPI" when mpicc was absent at build time)
 *   nccl    device buffers (cuda/comm_nccl.cu, `make cuda` only; comm_nccl.cuh)
 *
 * Every call is collective: all ranks make the same calls in the same order with the same
 * counts.  Sums only (the trainer scales by 1/W itself).  Every call waits at most the
 * communicator's timeout (--comm_timeout, COMM_TIMEOUT_DEFAULT): a peer that is dead or stuck
 * outside the communicator becomes an Error naming this rank, the call, and where the backend
 * can tell (mpi) the ranks that never arrived.  After any failure the communicator is broken:
 * every later call fails at once (peers may be half-way through the failed call), and
 * comm_close skips the backend's orderly shutdown so that the launcher sees the exit and
 * stops the other ranks.  Nothing here exits or prints.
 *
 * Sum order (bit-identical resume depends on it; doc/comm.md):
 *   single  nothing is summed.
 *   mpi,tcp fixed: element i is ((x_0 + x_1) + x_2) + ... + x_{W-1} in rank order, in the
 *           element type (bf16 in fp32, rounded once), whatever MPI's algorithm tuning; every
 *           rank gets the same bits, and both backends give the same bits.  The result depends on W, so a resume is bit-identical
 *           only on the same world size.
 *   nccl    NCCL's ring/tree order: repeatable for one NCCL version, world size, topology
 *           and NCCL_ALGO/NCCL_PROTO; bf16 is rounded at each hop.
 */
#ifndef RWKV7C_COMM_H
#define RWKV7C_COMM_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {      /* util.h too: cuda/comm_nccl.cu calls fail() and now_seconds() */
#endif
#include "util.h"

typedef enum { COMM_F32, COMM_F64, COMM_BF16 } CommType;

/* --comm_timeout's default, seconds: long enough for the slowest rank to finish loading a
 * large checkpoint before the first collective, short enough that a hung job dies the same
 * hour. */
#define COMM_TIMEOUT_DEFAULT 600.0

typedef struct Comm Comm;

Comm *comm_single_open(Error *e);
/* MPI_Init (if not done yet), then a communicator over MPI_COMM_WORLD.  Needs a launcher
 * (mpirun/mpiexec/srun with PMI): a process started alone is a world of 1. */
Comm *comm_mpi_open(double timeout_s, Error *e);
/* 1 when this build has MPI (mpicc was found), else 0. */
int   comm_mpi_built(void);
/* Over the TCP connections of launch_connect_tcp (fds: size entries, owned by the Comm from
 * here on, even on failure): a star around rank 0, for --devices N and torchrun-style
 * launches without MPI.  local_rank -1: the rank. */
Comm *comm_tcp_open(int rank, int size, int local_rank, int *fds, double timeout_s, Error *e);

int   comm_rank(const Comm *c);
int   comm_size(const Comm *c);
int   comm_local_rank(const Comm *c);   /* rank among the ranks on this machine */
const char *comm_backend(const Comm *c); /* "single", "tcp", "mpi", "nccl" */
size_t comm_type_size(CommType t);

/* Seconds any one call may wait for the others (> 0). */
void  comm_set_timeout(Comm *c, double seconds);
/* While waiting, call check(arg, e) now and then; when it returns -1 (with e set: a dead
 * child rank, say; see launch_children_check) the wait ends with that error. */
void  comm_set_abort_check(Comm *c, int (*check)(void *arg, Error *e), void *arg);

/* buf[0..count) = the element-wise sum over ranks, on every rank. */
int   comm_all_reduce(Comm *c, void *buf, size_t count, CommType t, Error *e);
/* send holds size*count elements; recv[0..count) = the sum over ranks of block `rank` of send.
 * In place (as NCCL allows): recv may be block `rank` of send. */
int   comm_reduce_scatter(Comm *c, const void *send, void *recv, size_t count, CommType t, Error *e);
/* recv holds size*bytes: block r is rank r's send[0..bytes).  In place: send may be block
 * `rank` of recv. */
int   comm_all_gather(Comm *c, const void *send, void *recv, size_t bytes, Error *e);
/* buf[0..bytes) of rank root, on every rank. */
int   comm_broadcast(Comm *c, void *buf, size_t bytes, int root, Error *e);
int   comm_barrier(Comm *c, Error *e);
/* Frees c (NULL is fine).  Orderly shutdown unless c is broken. */
void  comm_close(Comm *c);

/* ---- for the implementations (comm_*.c, cuda/comm_nccl.cu) only ---- */
typedef struct {
    int  (*all_reduce)(Comm *c, void *buf, size_t count, CommType t, Error *e);
    int  (*reduce_scatter)(Comm *c, const void *send, void *recv, size_t count, CommType t, Error *e);
    int  (*all_gather)(Comm *c, const void *send, void *recv, size_t bytes, Error *e);
    int  (*broadcast)(Comm *c, void *buf, size_t bytes, int root, Error *e);
    int  (*barrier)(Comm *c, Error *e);
    void (*close)(Comm *c);              /* frees the backend's part; c->broken says how */
} CommOps;

struct Comm {
    const CommOps *ops;
    const char *backend;
    int rank, size, local_rank;
    double timeout;
    int (*abort_check)(void *arg, Error *e);
    void *abort_arg;
    long long calls;      /* collectives started, numbering them in messages ("all_reduce #3") */
    const char *op;       /* the collective in progress, for messages */
    int broken;
    void *impl;
};

/* A Comm with the common fields set (calloc'd; NULL with e set). */
Comm *comm_alloc(const CommOps *ops, const char *backend, void *impl, Error *e);
/* Inside a backend's wait loop: -1 with e set when the abort check fires or `start`
 * (now_seconds()) is more than the timeout ago; the message names rank, call and wait. */
int   comm_poll(Comm *c, double start, Error *e);

#ifdef __cplusplus
}
#endif
#endif
