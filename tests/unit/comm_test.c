/* The single-rank communicator (lib/comm_single.c) and the checks every backend shares
 * (lib/comm_common.c): identities and copies, argument errors, the broken state, the
 * timeout and abort check of comm_poll, and the MPI stub or the MPI world of one. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "comm.h"

#include "check.h"

static int aborts;
static int abort_now(void *arg, Error *e)
{
    aborts++;
    return fail(e, "rank %d was killed by signal 9 (Killed)", *(int *)arg);
}

int main(void)
{
    Error e;
    Comm *c = comm_single_open(&e);
    CHECK(c != NULL, "open: %s", e.msg);
    CHECK_EQ(comm_rank(c), 0);
    CHECK_EQ(comm_size(c), 1);
    CHECK_EQ(comm_local_rank(c), 0);
    CHECK(!strcmp(comm_backend(c), "single"), "backend %s", comm_backend(c));
    CHECK_EQ(comm_type_size(COMM_F32), 4);
    CHECK_EQ(comm_type_size(COMM_F64), 8);
    CHECK_EQ(comm_type_size(COMM_BF16), 2);

    float f[5] = {1.5f, -2, 3, 0.25f, 7}, g[5];
    double d[3] = {1e300, -1, 0.5};
    uint16_t h[3] = {0x3f80, 0xc000, 0x7fc0};
    CHECK(comm_all_reduce(c, f, 5, COMM_F32, &e) == 0, "all_reduce: %s", e.msg);
    CHECK(f[0] == 1.5f && f[4] == 7, "all_reduce of one rank is the identity");
    CHECK(comm_all_reduce(c, d, 3, COMM_F64, &e) == 0 && d[0] == 1e300, "f64");
    CHECK(comm_all_reduce(c, h, 3, COMM_BF16, &e) == 0 && h[1] == 0xc000, "bf16");
    memset(g, 0, sizeof g);
    CHECK(comm_reduce_scatter(c, f, g, 5, COMM_F32, &e) == 0, "reduce_scatter: %s", e.msg);
    CHECK(!memcmp(f, g, sizeof g), "reduce_scatter of one rank copies");
    unsigned char src[7] = "abcdef", dst[7] = {0};
    CHECK(comm_all_gather(c, src, dst, 7, &e) == 0 && !memcmp(src, dst, 7), "all_gather copies");
    CHECK(comm_all_gather(c, dst, dst, 7, &e) == 0 && !memcmp(src, dst, 7), "all_gather in place");
    CHECK(comm_broadcast(c, src, 7, 0, &e) == 0, "broadcast from 0");
    CHECK(comm_barrier(c, &e) == 0, "barrier");
    CHECK(comm_all_reduce(c, NULL, 0, COMM_F32, &e) == 0, "zero elements");

    /* argument errors leave the communicator usable */
    CHECK(comm_broadcast(c, src, 7, 1, &e) < 0 && strstr(e.msg, "ranks 0..0"), "root out of range: %s", e.msg);
    CHECK(comm_all_reduce(c, f, SIZE_MAX / 2, COMM_F32, &e) < 0 && strstr(e.msg, "overflow"), "overflow: %s", e.msg);
    CHECK(comm_all_reduce(c, f, 1, (CommType)7, &e) < 0 && strstr(e.msg, "type"), "bad type: %s", e.msg);
    CHECK(comm_barrier(c, &e) == 0, "still usable after argument errors: %s", e.msg);

    /* comm_poll: what a backend's wait loop calls */
    c->op = "all_reduce";
    c->calls = 12;
    comm_set_timeout(c, 0.5);
    comm_set_timeout(c, -1);    /* ignored */
    CHECK(c->timeout == 0.5, "timeout %g", c->timeout);
    double now = now_seconds();
    CHECK(comm_poll(c, now, &e) == 0, "within the timeout");
    CHECK(comm_poll(c, now - 1, &e) < 0 && strstr(e.msg, "all_reduce #12 on rank 0 of 1 timed out after 1 s"),
          "timeout message: %s", e.msg);
    int dead = 3;
    comm_set_abort_check(c, abort_now, &dead);
    CHECK(comm_poll(c, now, &e) < 0 && strstr(e.msg, "rank 3 was killed by signal 9") && strstr(e.msg, "all_reduce #12"),
          "abort check: %s", e.msg);
    CHECK_EQ(aborts, 1);

    /* a failed call breaks the communicator: later calls fail at once */
    c->broken = 1;
    CHECK(comm_barrier(c, &e) < 0 && strstr(e.msg, "broken"), "broken: %s", e.msg);
    comm_close(c);
    comm_close(NULL);

    /* MPI: the stub says how to get it; a real build opens a world of one (no launcher).
     * Not under AddressSanitizer: OpenMPI's own allocations outlive MPI_Finalize, and
     * LeakSanitizer would blame this test (t_comm_mpi.sh runs the MPI backend). */
#if defined(__SANITIZE_ADDRESS__)
    enum { sanitized = 1 };
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    enum { sanitized = 1 };
#else
    enum { sanitized = 0 };
#endif
#else
    enum { sanitized = 0 };
#endif
    c = sanitized && comm_mpi_built() ? NULL : comm_mpi_open(5, &e);
    if (sanitized && comm_mpi_built()) {
        printf("MPI world of one not checked under AddressSanitizer\n");
    } else if (comm_mpi_built()) {
        CHECK(c != NULL, "mpi open: %s", c ? "" : e.msg);
        if (c) {
            CHECK_EQ(comm_size(c), 1);
            CHECK(c->timeout == 5, "mpi timeout %g", c->timeout);
            float x[3] = {1, 2, 3};
            CHECK(comm_all_reduce(c, x, 3, COMM_F32, &e) == 0 && x[2] == 3, "mpi world of one");
            comm_close(c);
        }
    } else {
        CHECK(c == NULL && strstr(e.msg, "built without MPI"), "stub: %s", e.msg);
    }
    return check_done();
}
