/* lib/launch.c without other processes: the launcher variables (each source, precedence,
 * half-set and bad values), the --devices x --num_nodes check, and the rendezvous errors
 * that need no peer (TCP without MASTER_*, a file nobody reads, a file of another world). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "launch.h"

#include "check.h"

static const char *const vars[] = {
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
    "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
};

static void clear(void)
{
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
}

static void set(const char *name, const char *value) { setenv(name, value, 1); }

int main(void)
{
    Error e;
    LaunchEnv l;
    clear();
    CHECK(launch_from_env(&l, &e) == 0, "no launcher: %s", e.msg);
    CHECK(!strcmp(l.source, "none") && l.rank == 0 && l.size == 1 && l.local_rank == -1, "none: %s %d %d", l.source, l.rank, l.size);

    set("OMPI_COMM_WORLD_RANK", "3");
    set("OMPI_COMM_WORLD_SIZE", "8");
    set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
    set("OMPI_COMM_WORLD_LOCAL_SIZE", "2");
    set("SLURM_PROCID", "0");      /* inherited from the allocation: OpenMPI's win */
    set("SLURM_NTASKS", "1");
    CHECK(launch_from_env(&l, &e) == 0, "OpenMPI: %s", e.msg);
    CHECK(!strcmp(l.source, "OpenMPI") && l.rank == 3 && l.size == 8 && l.local_rank == 1 && l.local_size == 2,
          "OpenMPI: %s %d/%d local %d/%d", l.source, l.rank, l.size, l.local_rank, l.local_size);
    CHECK(launch_check_world(&l, 2, 4, &e) == 0, "2 x 4 = 8: %s", e.msg);
    CHECK(launch_check_world(&l, 4, 2, &e) < 0 && strstr(e.msg, "--devices 4 per node") && strstr(e.msg, "2 ranks on this node"),
          "local size: %s", e.msg);
    CHECK(launch_check_world(&l, 2, 2, &e) < 0 && strstr(e.msg, "--devices 2 x --num_nodes 2 = 4 ranks") &&
          strstr(e.msg, "OMPI_COMM_WORLD_SIZE=8"), "mismatch names both: %s", e.msg);

    clear();
    set("PMI_RANK", "2");
    set("PMI_SIZE", "4");
    set("MPI_LOCALRANKID", "0");
    set("RANK", "0");              /* generic names lose to the MPI launcher's */
    set("WORLD_SIZE", "1");
    CHECK(launch_from_env(&l, &e) == 0 && !strcmp(l.source, "MPICH") && l.rank == 2 && l.size == 4 && l.local_rank == 0,
          "MPICH: %s %s %d/%d", e.msg, l.source, l.rank, l.size);

    clear();
    set("SLURM_PROCID", "5");
    set("SLURM_NTASKS", "6");
    set("SLURM_LOCALID", "1");
    set("RANK", "0");
    set("WORLD_SIZE", "1");
    CHECK(launch_from_env(&l, &e) == 0 && !strcmp(l.source, "Slurm") && l.rank == 5 && l.size == 6 && l.local_rank == 1 &&
          l.local_size == -1, "Slurm: %s %s %d/%d", e.msg, l.source, l.rank, l.size);

    clear();
    set("SLURM_NTASKS", "4");      /* an salloc shell: no task id, so no launcher */
    CHECK(launch_from_env(&l, &e) == 0 && !strcmp(l.source, "none"), "salloc shell: %s", l.source);

    clear();
    set("RANK", "1");
    set("WORLD_SIZE", "2");
    set("LOCAL_RANK", "1");
    set("LOCAL_WORLD_SIZE", "2");
    set("MASTER_ADDR", "node7");
    set("MASTER_PORT", "29500");
    CHECK(launch_from_env(&l, &e) == 0, "torchrun: %s", e.msg);
    CHECK(!strcmp(l.source, "torchrun") && l.rank == 1 && l.size == 2 && l.local_rank == 1 && l.master_port == 29500 &&
          !strcmp(l.master_addr, "node7"), "torchrun: %s %d/%d %s:%d", l.source, l.rank, l.size, l.master_addr, l.master_port);
    CHECK(launch_check_world(&l, 2, 1, &e) == 0, "2 x 1: %s", e.msg);
    CHECK(launch_check_world(&l, 1, 1, &e) < 0 && strstr(e.msg, "(torchrun) started 2 (WORLD_SIZE=2)"), "1 x 1: %s", e.msg);

    /* errors name the variable */
    set("RANK", "2");
    CHECK(launch_from_env(&l, &e) < 0 && strstr(e.msg, "RANK='2'") && strstr(e.msg, "0 to 1"), "rank >= size: %s", e.msg);
    set("RANK", "one");
    CHECK(launch_from_env(&l, &e) < 0 && strstr(e.msg, "RANK='one'"), "not a number: %s", e.msg);
    set("RANK", "0");
    unsetenv("WORLD_SIZE");
    CHECK(launch_from_env(&l, &e) < 0 && strstr(e.msg, "RANK is set but WORLD_SIZE is not"), "half set: %s", e.msg);
    set("WORLD_SIZE", "0");
    CHECK(launch_from_env(&l, &e) < 0 && strstr(e.msg, "WORLD_SIZE='0'"), "size 0: %s", e.msg);
    set("WORLD_SIZE", "2");
    set("LOCAL_RANK", "2");
    CHECK(launch_from_env(&l, &e) < 0 && strstr(e.msg, "LOCAL_RANK='2'"), "local rank: %s", e.msg);
    set("LOCAL_RANK", "0");
    set("MASTER_PORT", "70000");
    CHECK(launch_from_env(&l, &e) < 0 && strstr(e.msg, "MASTER_PORT='70000'"), "port: %s", e.msg);

    /* no launcher: --devices N on one node means "spawn"; several nodes need a launcher */
    clear();
    CHECK(launch_from_env(&l, &e) == 0, "none again");
    CHECK_EQ(launch_check_world(&l, 1, 1, &e), 0);
    CHECK_EQ(launch_check_world(&l, 4, 1, &e), 1);
    CHECK(launch_check_world(&l, 2, 2, &e) < 0 && strstr(e.msg, "--num_nodes 2 needs a launcher"), "nodes: %s", e.msg);
    CHECK(launch_check_world(&l, 0, 1, &e) < 0 && strstr(e.msg, "--devices 0"), "devices 0: %s", e.msg);

    /* rendezvous errors without peers */
    unsigned char id[128] = {1, 2, 3};
    l.size = 2;
    CHECK(launch_share_id_tcp(&l, id, sizeof id, 1, &e) < 0 && strstr(e.msg, "MASTER_ADDR and MASTER_PORT"), "tcp: %s", e.msg);
    l.size = 1;
    CHECK(launch_share_id_tcp(&l, id, sizeof id, 1, &e) == 0, "a world of one needs no rendezvous");
    char path[64];
    snprintf(path, sizeof path, "rdv-%d.id", (int)getpid());
    double t0 = now_seconds();
    CHECK(launch_share_id_file(path, 0, 3, id, sizeof id, 0.3, &e) < 0 && strstr(e.msg, "ranks 1, 2 did not read it within"),
          "file, nobody reads: %s", e.msg);
    CHECK(now_seconds() - t0 < 5, "the timeout is kept");
    CHECK(access(path, F_OK) != 0, "an abandoned id file is removed");
    CHECK(launch_share_id_file(path, 1, 3, id, sizeof id, 0.2, &e) < 0 && strstr(e.msg, "rank 0 did not write it"),
          "file, no writer: %s", e.msg);
    FILE *f = fopen(path, "w");   /* a header for a world of 2 and a 128-byte id, no id */
    fwrite("RWKV7CID\0\0\0\2\0\0\0\x80", 1, 16, f);
    fclose(f);
    CHECK(launch_share_id_file(path, 1, 3, id, sizeof id, 1, &e) < 0 && strstr(e.msg, "world has 2 ranks, this rank says 3"),
          "file of another world: %s", e.msg);
    CHECK(launch_share_id_file(path, 1, 2, id, sizeof id, 1, &e) < 0 && strstr(e.msg, "not an id file of 128 bytes"),
          "truncated id file: %s", e.msg);
    unlink(path);
    return check_done();
}
