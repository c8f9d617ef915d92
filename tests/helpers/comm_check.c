/* comm_check: drives lib/comm.h and lib/launch.h for tests/t_comm*.sh.
 *
 *   comm_check collectives BACKEND        every collective, odd sizes, f32/f64/bf16, each result
 *                                         bit-compared with the rank-order sum computed here
 *   comm_check stuck BACKEND R SECONDS    rank R sleeps before the 3rd all_reduce
 *   comm_check die BACKEND R              rank R is SIGKILLed before the 3rd all_reduce
 *   comm_check mismatch BACKEND R         rank R calls all_gather where the others all_reduce
 *   comm_check rendezvous tcp|file PATH|mpi   rank 0's id reaches every rank (printed in hex)
 *   comm_check spawn N [DIE_RANK]         --devices N: N ranks, TCP rendezvous; DIE_RANK kills itself
 *   comm_check mpi-built                  exit 0 when this build has MPI
 *   comm_check free-port                  a TCP port nobody listens on now
 * BACKEND: single, mpi (under mpirun), tcp (torchrun-style variables; without them,
 * RWKV7C_TEST_DEVICES=N starts N ranks as --devices N would), or auto (launch_open_comm
 * picks, as the trainer will).
 * RWKV7C_TEST_TIMEOUT sets the communicator / rendezvous timeout (seconds, default 20).
 * A failure prints "comm_check: rank R: message" on stderr and exits 1. */
#define _GNU_SOURCE
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "comm.h"
#include "launch.h"
#include "tensors.h"

static double timeout_s = 20;
static int my_rank;

static int die(const Error *e)
{
    fprintf(stderr, "comm_check: rank %d: %s\n", my_rank, e->msg);
    return 1;
}

static char **main_argv;
static LaunchChildren *kids;

static Comm *open_tcp(Error *e)
{
    LaunchEnv l;
    if (launch_from_env(&l, e) < 0) return NULL;
    const char *devices = getenv("RWKV7C_TEST_DEVICES");
    if (!strcmp(l.source, "none") && devices && atoi(devices) > 1) {
        if (!(kids = launch_spawn(atoi(devices), main_argv, e)) || launch_from_env(&l, e) < 0) return NULL;
    }
    my_rank = l.rank;
    char line[64];
    int len = snprintf(line, sizeof line, "rank %d pid %d\n", l.rank, (int)getpid());
    ssize_t ignored = write(1, line, (size_t)len);
    (void)ignored;
    int *fds = malloc((size_t)l.size * sizeof *fds);
    if (!fds || launch_connect_tcp(&l, timeout_s, fds, e) < 0) { free(fds); return NULL; }
    Comm *c = comm_tcp_open(l.rank, l.size, l.local_rank, fds, timeout_s, e);
    free(fds);
    if (c && kids) comm_set_abort_check(c, launch_children_check, kids);
    return c;
}

/* As the trainer will: launch_open_comm picks the backend from the environment. */
static Comm *open_auto(Error *e)
{
    LaunchEnv l;
    if (launch_from_env(&l, e) < 0) return NULL;
    const char *devices = getenv("RWKV7C_TEST_DEVICES");
    if (devices && launch_check_world(&l, atoi(devices), 1, e) == 1) {
        if (!(kids = launch_spawn(atoi(devices), main_argv, e)) || launch_from_env(&l, e) < 0) return NULL;
    }
    my_rank = l.rank;
    return launch_open_comm(&l, kids, timeout_s, e);
}

static Comm *open_backend(const char *name, Error *e)
{
    Comm *c = !strcmp(name, "mpi") ? comm_mpi_open(timeout_s, e) : !strcmp(name, "tcp") ? open_tcp(e)
            : !strcmp(name, "auto") ? open_auto(e) : comm_single_open(e);
    if (c) my_rank = comm_rank(c);
    return c;
}

/* Rank 0 of a self-started world waits for the other ranks' exit status. */
static int finish_children(int rc)
{
    Error e;
    if (kids && rc == 0 && launch_children_wait(kids, timeout_s, &e) < 0) rc = die(&e);
    launch_children_free(kids);
    kids = NULL;
    return rc;
}

/* The value rank r contributes at index i: exponents over a wide range, so that the sum
 * depends on the order of the additions. */
static double value(int r, size_t i)
{
    uint64_t h = (uint64_t)(r + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)i * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    double x = (double)(h >> 11) / 9007199254740992.0 - 0.5;
    return ldexp(x, (int)(h % 24) - 12);
}

static void fill(void *buf, size_t n, CommType t, int r, size_t offset)
{
    for (size_t i = 0; i < n; i++) {
        double v = value(r, offset + i);
        if (t == COMM_F64) ((double *)buf)[i] = v;
        else if (t == COMM_F32) ((float *)buf)[i] = (float)v;
        else ((uint16_t *)buf)[i] = f32_to_bf16((float)v);
    }
}

/* The sum over ranks 0..W-1 in that order (or the reverse), as the element type adds. */
static void expect(void *out, size_t n, CommType t, int W, size_t offset, int reverse)
{
    for (size_t i = 0; i < n; i++) {
        double d = 0;
        float f = 0;
        for (int k = 0; k < W; k++) {
            int r = reverse ? W - 1 - k : k;
            double v = value(r, offset + i);
            if (t == COMM_F64) d = k ? d + v : v;
            else if (t == COMM_F32) f = k ? f + (float)v : (float)v;
            else { float b = bf16_to_f32(f32_to_bf16((float)v)); f = k ? f + b : b; }
        }
        if (t == COMM_F64) ((double *)out)[i] = d;
        else if (t == COMM_F32) ((float *)out)[i] = f;
        else ((uint16_t *)out)[i] = f32_to_bf16(f);
    }
}

static int failures, checks;
static uint64_t digest = 1469598103934665603ull;   /* FNV-1a of every result, compared across ranks */

static void check(int ok, const char *what, CommType t, size_t n)
{
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "comm_check: rank %d: %s wrong (type %d, %zu elements)\n", my_rank, what, (int)t, n);
    }
}

static void absorb(const void *p, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++) digest = (digest ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
}

static int collectives(const char *backend)
{
    Error e;
    Comm *c = open_backend(backend, &e);
    if (!c) return die(&e);
    int W = comm_size(c), me = comm_rank(c);
    static const size_t sizes[] = {0, 1, 2, 3, 7, 31, 1000, 4099, 100003};
    static const CommType types[] = {COMM_F32, COMM_F64, COMM_BF16};
    size_t order_sensitive = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (size_t ti = 0; ti < 3; ti++) {
            size_t n = sizes[si];
            CommType t = types[ti];
            size_t es = comm_type_size(t);
            unsigned char *buf = malloc(n * es * (size_t)W + 1), *want = malloc(n * es * (size_t)W + 1),
                          *rev = malloc(n * es + 1), *recv = malloc(n * es + 1);
            /* all_reduce */
            fill(buf, n, t, me, 0);
            if (comm_all_reduce(c, buf, n, t, &e) < 0) return die(&e);
            expect(want, n, t, W, 0, 0);
            expect(rev, n, t, W, 0, 1);
            for (size_t i = 0; i < n * es; i += es) order_sensitive += memcmp(want + i, rev + i, es) != 0;
            check(!memcmp(buf, want, n * es), "all_reduce", t, n);
            absorb(buf, n * es);
            /* reduce_scatter: block me of the W*n contributions */
            fill(buf, n * (size_t)W, t, me, 0);
            if (comm_reduce_scatter(c, buf, recv, n, t, &e) < 0) return die(&e);
            expect(want, n, t, W, (size_t)me * n, 0);
            check(!memcmp(recv, want, n * es), "reduce_scatter", t, n);
            /* all_gather, separate and in place */
            size_t bytes = n * es;
            for (size_t j = 0; j < bytes; j++) recv[j] = (unsigned char)(me * 131 + j * 7);
            for (int pass = 0; pass < 2; pass++) {
                memset(buf, 0xEE, bytes * (size_t)W);
                unsigned char *src = pass ? buf + (size_t)me * bytes : recv;
                if (pass) memcpy(src, recv, bytes);
                if (comm_all_gather(c, src, buf, bytes, &e) < 0) return die(&e);
                int ok = 1;
                for (int r = 0; r < W; r++)
                    for (size_t j = 0; j < bytes; j++) ok &= buf[(size_t)r * bytes + j] == (unsigned char)(r * 131 + j * 7);
                check(ok, pass ? "all_gather in place" : "all_gather", t, n);
                absorb(buf, bytes * (size_t)W);
            }
            /* broadcast from the last rank */
            for (size_t j = 0; j < bytes; j++) buf[j] = me == W - 1 ? (unsigned char)(j * 13 + 5) : 0;
            if (comm_broadcast(c, buf, bytes, W - 1, &e) < 0) return die(&e);
            int ok = 1;
            for (size_t j = 0; j < bytes; j++) ok &= buf[j] == (unsigned char)(j * 13 + 5);
            check(ok, "broadcast", t, n);
            free(buf);
            free(want);
            free(rev);
            free(recv);
        }
    if (comm_barrier(c, &e) < 0) return die(&e);
    /* every rank must hold the same bits: gather the digests */
    uint64_t *all = calloc((size_t)W, sizeof *all);
    if (comm_all_gather(c, &digest, all, sizeof digest, &e) < 0) return die(&e);
    for (int r = 0; r < W; r++) check(all[r] == digest, "results differ between ranks", COMM_F32, 0);
    free(all);
    /* with 3 or more ranks the data must be order-sensitive, or the bit checks prove little */
    if (W >= 3) check(order_sensitive > 0, "order-sensitive data", COMM_F32, order_sensitive);
    printf("rank %d of %d (%s): %d checks, %d failed, %zu sums depend on the order\n", me, W, comm_backend(c),
           checks, failures, order_sensitive);
    comm_close(c);
    return finish_children(failures ? 1 : 0);
}

/* Rank `who` sleeps (or dies) before the 3rd all_reduce; the others must fail, naming it. */
static int misbehave(const char *backend, int who, double sleep_s, int kill_it)
{
    Error e;
    Comm *c = open_backend(backend, &e);
    if (!c) return die(&e);
    float x[1000] = {0};
    for (int call = 1; call <= 5; call++) {
        if (call == 3 && comm_rank(c) == who) {
            if (kill_it) raise(SIGKILL);
            sleep((unsigned)sleep_s);
        }
        if (comm_all_reduce(c, x, 1000, COMM_F32, &e) < 0) {
            comm_close(c);
            return finish_children(die(&e));
        }
    }
    comm_close(c);
    return finish_children(0);
}

/* The 2nd call differs on rank `who`: a programming error the TCP backend must name. */
static int mismatch(const char *backend, int who)
{
    Error e;
    Comm *c = open_backend(backend, &e);
    if (!c) return die(&e);
    float x[64] = {0}, y[64 * 16];
    int rc = comm_all_reduce(c, x, 64, COMM_F32, &e);
    if (rc == 0)
        rc = comm_rank(c) == who ? comm_all_gather(c, x, y, 16, &e) : comm_all_reduce(c, x, 64, COMM_F32, &e);
    comm_close(c);
    return finish_children(rc < 0 ? die(&e) : 0);
}

static void print_id(int rank, const unsigned char *id, size_t len)
{
    char line[512];
    int n = snprintf(line, sizeof line, "rank %d id ", rank);
    for (size_t i = 0; i < len; i++) n += snprintf(line + n, sizeof line - (size_t)n, "%02x", id[i]);
    line[n++] = '\n';
    ssize_t ignored = write(1, line, (size_t)n);   /* one write: ranks share stdout */
    (void)ignored;
}

static void make_id(unsigned char *id, size_t len)
{
    uint64_t s = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(now_seconds() * 1e9);
    for (size_t i = 0; i < len; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; id[i] = (unsigned char)(s >> 56); }
}

static int rendezvous(const char *how, const char *path)
{
    Error e;
    unsigned char id[128];
    memset(id, 0, sizeof id);
    if (!strcmp(how, "mpi")) {
        Comm *c = open_backend("mpi", &e);
        if (!c) return die(&e);
        if (comm_rank(c) == 0) make_id(id, sizeof id);
        if (comm_broadcast(c, id, sizeof id, 0, &e) < 0) return die(&e);
        print_id(comm_rank(c), id, sizeof id);
        comm_close(c);
        return 0;
    }
    LaunchEnv l;
    if (launch_from_env(&l, &e) < 0) return die(&e);
    my_rank = l.rank;
    if (l.rank == 0) make_id(id, sizeof id);
    int rc = !strcmp(how, "file") ? launch_share_id_file(path, l.rank, l.size, id, sizeof id, timeout_s, &e)
                                  : launch_share_id_tcp(&l, id, sizeof id, timeout_s, &e);
    if (rc < 0) return die(&e);
    print_id(l.rank, id, sizeof id);
    return 0;
}

static int spawn(int n, int die_rank, char **argv)
{
    Error e;
    LaunchEnv l;
    LaunchChildren *children = NULL;
    if (launch_from_env(&l, &e) < 0) return die(&e);
    int rc = launch_check_world(&l, n, 1, &e);
    if (rc < 0) return die(&e);
    if (rc == 1) {
        if (!(children = launch_spawn(n, argv, &e))) return die(&e);
        if (launch_from_env(&l, &e) < 0) return die(&e);
    }
    my_rank = l.rank;
    char line[64];
    int len = snprintf(line, sizeof line, "rank %d pid %d\n", l.rank, (int)getpid());
    ssize_t ignored = write(1, line, (size_t)len);
    (void)ignored;
    unsigned char id[128];
    if (l.rank == 0) make_id(id, sizeof id);
    if (launch_share_id_tcp(&l, id, sizeof id, timeout_s, &e) < 0) { launch_children_free(children); return die(&e); }
    print_id(l.rank, id, sizeof id);
    if (l.rank == die_rank) raise(SIGKILL);
    if (l.rank != 0) {
        if (die_rank > 0) sleep(120);   /* an innocent rank: the watcher must kill it */
        return 0;
    }
    /* rank 0 "trains": polls the children as the comm layer's abort check would */
    double start = now_seconds();
    rc = die_rank > 0 ? 0 : launch_children_wait(children, timeout_s, &e);
    while (die_rank > 0 && rc == 0) {
        if ((rc = launch_children_check(children, &e)) < 0) break;
        if (now_seconds() - start > timeout_s) { rc = fail(&e, "no child failure seen within %.0f s", timeout_s); break; }
        usleep(20000);
    }
    /* RWKV7C_TEST_LINGER: stay alive a while, so the test can see that the watcher (not
     * launch_children_free) killed the other children */
    const char *linger = getenv("RWKV7C_TEST_LINGER");
    if (rc < 0 && linger) {
        fprintf(stderr, "comm_check: rank 0: %s\n", e.msg);
        sleep((unsigned)atoi(linger));
    }
    launch_children_free(children);
    return rc < 0 ? die(&e) : 0;
}

int main(int argc, char **argv)
{
    main_argv = argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *t = getenv("RWKV7C_TEST_TIMEOUT");
    if (t && atof(t) > 0) timeout_s = atof(t);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "mpi-built")) return comm_mpi_built() ? 0 : 1;
    if (!strcmp(mode, "free-port")) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        socklen_t al = sizeof a;
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0) return 1;
        printf("%d\n", ntohs(a.sin_port));
        return 0;
    }
    if (!strcmp(mode, "collectives") && argc == 3) return collectives(argv[2]);
    if (!strcmp(mode, "stuck") && argc == 5) return misbehave(argv[2], atoi(argv[3]), atof(argv[4]), 0);
    if (!strcmp(mode, "die") && argc == 4) return misbehave(argv[2], atoi(argv[3]), 0, 1);
    if (!strcmp(mode, "mismatch") && argc == 4) return mismatch(argv[2], atoi(argv[3]));
    if (!strcmp(mode, "rendezvous") && argc >= 3) return rendezvous(argv[2], argc > 3 ? argv[3] : "");
    if (!strcmp(mode, "spawn") && argc >= 3) return spawn(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : -1, argv);
    fprintf(stderr, "usage: comm_check collectives|stuck|die|mismatch|rendezvous|spawn|mpi-built|free-port ...\n");
    return 2;
}
