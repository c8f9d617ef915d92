/* launch.h: who am I in a multi-process run, and how the ranks find each other.
 *
 * Rank, world size and local rank come from the launcher's environment, the first source
 * present in this order (doc/comm.md says why):
 *   1. OpenMPI   mpirun/mpiexec: OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK (_LOCAL_SIZE)
 *   2. MPICH     mpiexec (Hydra/PMI): PMI_RANK, PMI_SIZE, MPI_LOCALRANKID
 *   3. Slurm     srun: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
 *   4. torchrun  RANK, WORLD_SIZE, LOCAL_RANK (LOCAL_WORLD_SIZE), MASTER_ADDR, MASTER_PORT
 *   5. none      one rank (or --devices N: launch_spawn)
 * An MPI launcher run inside a Slurm allocation inherits the allocation's SLURM_* while
 * setting its own variables per process, hence MPI before Slurm; RANK/WORLD_SIZE are the
 * most generic names, set by hand or by scripts, hence last.
 *
 * The unique id (NCCL's 128 bytes, or any bytes) made by rank 0 reaches the others by MPI
 * broadcast (comm_broadcast on an MPI communicator), by TCP from rank 0 at
 * MASTER_ADDR:MASTER_PORT, or through a file on a shared file system (--init_file). */
#ifndef RWKV7C_LAUNCH_H
#define RWKV7C_LAUNCH_H
#include <stddef.h>
#include "util.h"

typedef struct {
    int rank, size;
    int local_rank;           /* -1: the launcher did not say */
    int local_size;           /* -1: the launcher did not say */
    const char *source;       /* "OpenMPI", "MPICH", "Slurm", "torchrun" or "none" */
    const char *size_var;     /* the variable the world size came from (for messages), or NULL */
    char master_addr[256];    /* MASTER_ADDR, "" when unset */
    int master_port;          /* MASTER_PORT, 0 when unset */
} LaunchEnv;

/* Read the environment.  A source half set (RANK without WORLD_SIZE), a value that is not a
 * number, or a rank outside the world is an error naming the variable. */
int  launch_from_env(LaunchEnv *l, Error *e);

/* Check --devices (per node) × --num_nodes against the launcher's world size.  Returns 0 when
 * they agree (or both are 1), 1 when there is no launcher, one node and devices > 1 (the
 * caller starts the ranks: launch_spawn), -1 with e naming both numbers otherwise. */
int  launch_check_world(const LaunchEnv *l, int devices, int num_nodes, Error *e);

/* ---- rendezvous of a unique id: rank 0 fills id[0..len), the others receive it ----
 * Both wait at most timeout seconds, and the messages name the missing ranks. */
/* TCP: rank 0 listens on MASTER_PORT (every address), the others connect to
 * MASTER_ADDR:MASTER_PORT, retrying while rank 0 starts.  Rank 0 answers once all have
 * connected, so this is also a barrier; a peer with another world size or id length is
 * refused. */
int  launch_share_id_tcp(const LaunchEnv *l, void *id, size_t len, double timeout, Error *e);
/* The same handshake, keeping the connections for comm_tcp_open: a star around rank 0.
 * fds has size entries: rank 0 gets fds[r] for every r >= 1, the others fds[0]; the rest
 * are -1. */
int  launch_connect_tcp(const LaunchEnv *l, double timeout, int *fds, Error *e);
/* File: rank 0 writes PATH atomically; the others poll for it, read it, and leave
 * PATH.ack.RANK; rank 0 removes them all once every rank has read it.  PATH must not be
 * left from an earlier run (a crashed rendezvous can leave one: remove it). */
int  launch_share_id_file(const char *path, int rank, int size, void *id, size_t len, double timeout, Error *e);

/* ---- the communicator for this launch ----
 * The host communicator (comm.h): single for a world of one; MPI under an MPI launcher, or
 * under Slurm without MASTER_ADDR/MASTER_PORT when built with MPI (srun with PMI); TCP
 * (launch_connect_tcp, comm_tcp_open) for torchrun-style variables, Slurm with
 * MASTER_ADDR/MASTER_PORT and the ranks of launch_spawn.  Under MPI the world MPI reports
 * must be the launcher's (a program built with MPICH under OpenMPI's mpirun is W worlds of
 * one).  kids (rank 0 of launch_spawn, else NULL) becomes the abort check. */
struct Comm;
struct LaunchChildren;
struct Comm *launch_open_comm(const LaunchEnv *l, struct LaunchChildren *kids, double timeout, Error *e);
/* Rank 0's id to every rank: through init_file when given (launch_share_id_file), else by
 * comm_broadcast over host (any backend, e.g. from launch_open_comm) when it has more than
 * one rank, else over TCP (launch_share_id_tcp).  The GPU backend: rank 0 makes the NCCL id
 * (comm_nccl_unique_id), this shares it, then comm_nccl_open. */
int launch_share_id(const LaunchEnv *l, struct Comm *host, const char *init_file, void *id, size_t len, double timeout,
                    Error *e);

/* ---- --devices N without a launcher ----
 * This process becomes rank 0 of n; ranks 1..n-1 are copies of this program
 * (/proc/self/exe with argv), each started with RANK, WORLD_SIZE, LOCAL_RANK,
 * LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, other launchers'
 * variables removed; this process's environment gets the same (RANK=0), so that
 * launch_from_env then reads it.  A child dies with this process (PR_SET_PDEATHSIG).  A
 * watcher thread notices a child that exits non-zero or is killed, SIGKILLs the others, and
 * keeps the reason for launch_children_check. */
typedef struct LaunchChildren LaunchChildren;
/* Call it early: the children inherit this process's descriptors that are not close-on-exec. */
LaunchChildren *launch_spawn(int n, char *const argv[], Error *e);
/* -1 with e = "rank R ..." once a child has failed; 0 while all are running or exited 0.
 * Its signature fits comm_set_abort_check(c, launch_children_check, kids). */
int  launch_children_check(void *kids, Error *e);
/* Rank 0's own work is done: wait up to timeout seconds for every child to exit 0. */
int  launch_children_wait(LaunchChildren *k, double timeout, Error *e);
/* SIGKILL the children still running, reap them, stop the watcher and free k. */
void launch_children_free(LaunchChildren *k);
#endif
