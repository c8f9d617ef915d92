/* comm_tcp.c: comm.h over TCP sockets, host buffers, no MPI: the ranks of `--devices N`
 * (launch_spawn) and of torchrun-style launches on machines without MPI.
 *
 * A star around rank 0 (the connections of launch_connect_tcp): every other rank sends its
 * contribution to rank 0, which adds them in rank order, ((x_0 + x_1) + x_2) + ..., exactly
 * as comm_mpi.c does (bf16 in fp32, rounded once), so the two backends give the same bits;
 * rank 0 sends the result back.  Rank 0 moves (W-1)·n each way per call: fine for the CPU
 * backend's small models, not for large ones (use MPI or NCCL there).
 *
 * Each contribution starts with a header (call number, collective, bytes), so ranks that
 * disagree about the sequence of calls fail with a message instead of exchanging garbage.
 * A peer that exits or is killed closes its socket: the rank waiting on it names it. */
#define _GNU_SOURCE
#include "comm.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tensors.h"

#define CHUNK ((size_t)1 << 20)   /* bytes per receive into scratch */

typedef struct {
    int *fd;                  /* rank 0: [r] for r >= 1; others: [0] */
    unsigned char *scratch;
    size_t scratch_cap;
    float *acc;               /* fp32 sums of bf16 */
    size_t acc_cap;
} Tcp;

typedef struct { int64_t call, op, bytes; } Header;

enum { OP_ALL_REDUCE = 1, OP_REDUCE_SCATTER, OP_ALL_GATHER, OP_BROADCAST, OP_BARRIER };
static const char *const op_names[] = {"?", "all_reduce", "reduce_scatter", "all_gather", "broadcast", "barrier"};

/* Send or receive len bytes with peer, polling the timeout and the abort check. */
static int xfer(Comm *c, int peer, void *buf, size_t len, int sending, double start, Error *e)
{
    Tcp *t = c->impl;
    int fd = t->fd[c->rank == 0 ? peer : 0];
    unsigned char *p = buf;
    while (len) {
        ssize_t n = sending ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n > 0) { p += n; len -= (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return fail(e, "comm: %s #%lld on rank %d of %d: rank %d closed the connection (%s)", c->op, c->calls, c->rank,
                        c->size, peer, n == 0 || errno == ECONNRESET || errno == EPIPE ? "it exited or was killed" : strerror(errno));
        if (comm_poll(c, start, e) < 0) {
            size_t m = strlen(e->msg);
            snprintf(e->msg + m, sizeof e->msg - m, "; waiting for rank %d", peer);
            return -1;
        }
        struct pollfd pf = {fd, sending ? POLLOUT : POLLIN, 0};
        poll(&pf, 1, 100);
    }
    return 0;
}

static int send_to(Comm *c, int peer, const void *buf, size_t len, double start, Error *e)
{
    return xfer(c, peer, (void *)buf, len, 1, start, e);
}

static int recv_from(Comm *c, int peer, void *buf, size_t len, double start, Error *e)
{
    return xfer(c, peer, buf, len, 0, start, e);
}

static int send_header(Comm *c, int op, size_t bytes, double start, Error *e)
{
    Header h = {c->calls, op, (int64_t)bytes};
    return send_to(c, 0, &h, sizeof h, start, e);
}

static int check_header(Comm *c, int peer, int op, size_t bytes, double start, Error *e)
{
    Header h;
    if (recv_from(c, peer, &h, sizeof h, start, e) < 0) return -1;
    if (h.call != c->calls || h.op != op || h.bytes != (int64_t)bytes) {
        const char *name = h.op >= 1 && h.op <= OP_BARRIER ? op_names[h.op] : "?";
        return fail(e, "comm: rank %d is in %s #%lld of %lld bytes, rank 0 in %s #%lld of %zu bytes: the ranks disagree",
                    peer, name, (long long)h.call, (long long)h.bytes, c->op, c->calls, bytes);
    }
    return 0;
}

static void *grow_to(void **p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return *p;
    free(*p);
    *p = malloc(bytes);
    *cap = *p ? bytes : 0;
    return *p;
}

/* Rank 0: sum[0..n) = the rank-order sum of every rank's n elements; own holds rank 0's.
 * Each peer's data arrives in CHUNK pieces and is added as it comes. */
static int gather_sum(Comm *c, const void *own, void *sum, size_t n, CommType type, int op, double start, Error *e)
{
    Tcp *t = c->impl;
    size_t es = comm_type_size(type), per = CHUNK / es;
    if (!grow_to((void **)&t->scratch, &t->scratch_cap, CHUNK) ||
        (type == COMM_BF16 && n && !grow_to((void **)&t->acc, &t->acc_cap, n * sizeof(float))))
        return fail(e, "comm: %s on rank 0: out of memory", c->op);
    if (type == COMM_BF16)
        for (size_t i = 0; i < n; i++) t->acc[i] = bf16_to_f32(((const uint16_t *)own)[i]);
    else if (own != sum)
        memmove(sum, own, n * es);
    for (int r = 1; r < c->size; r++) {
        if (check_header(c, r, op, n * es, start, e) < 0) return -1;
        for (size_t a = 0; a < n; a += per) {
            size_t k = n - a < per ? n - a : per;
            if (recv_from(c, r, t->scratch, k * es, start, e) < 0) return -1;
            if (type == COMM_F32) {
                float *y = (float *)sum + a;
                const float *x = (const float *)t->scratch;
                for (size_t i = 0; i < k; i++) y[i] += x[i];
            } else if (type == COMM_F64) {
                double *y = (double *)sum + a;
                const double *x = (const double *)t->scratch;
                for (size_t i = 0; i < k; i++) y[i] += x[i];
            } else {
                const uint16_t *x = (const uint16_t *)t->scratch;
                for (size_t i = 0; i < k; i++) t->acc[a + i] += bf16_to_f32(x[i]);
            }
        }
    }
    if (type == COMM_BF16)
        for (size_t i = 0; i < n; i++) ((uint16_t *)sum)[i] = f32_to_bf16(t->acc[i]);
    return 0;
}

static int tcp_all_reduce(Comm *c, void *buf, size_t count, CommType type, Error *e)
{
    double start = now_seconds();
    size_t bytes = count * comm_type_size(type);
    if (c->rank) {
        return send_header(c, OP_ALL_REDUCE, bytes, start, e) < 0 || send_to(c, 0, buf, bytes, start, e) < 0 ||
               recv_from(c, 0, buf, bytes, start, e) < 0 ? -1 : 0;
    }
    if (gather_sum(c, buf, buf, count, type, OP_ALL_REDUCE, start, e) < 0) return -1;
    for (int r = 1; r < c->size; r++)
        if (send_to(c, r, buf, bytes, start, e) < 0) return -1;
    return 0;
}

static int tcp_reduce_scatter(Comm *c, const void *send, void *recv, size_t count, CommType type, Error *e)
{
    double start = now_seconds();
    size_t es = comm_type_size(type), block = count * es, total = block * (size_t)c->size;
    if (c->rank)
        return send_header(c, OP_REDUCE_SCATTER, total, start, e) < 0 || send_to(c, 0, send, total, start, e) < 0 ||
               recv_from(c, 0, recv, block, start, e) < 0 ? -1 : 0;
    /* the whole sum in a buffer of its own: send and recv may overlap */
    void *sum = malloc(total ? total : 1);
    if (!sum) return fail(e, "comm: %s on rank 0: out of memory for %zu bytes", c->op, total);
    int rc = gather_sum(c, send, sum, count * (size_t)c->size, type, OP_REDUCE_SCATTER, start, e);
    for (int r = 1; rc == 0 && r < c->size; r++) rc = send_to(c, r, (unsigned char *)sum + (size_t)r * block, block, start, e);
    if (rc == 0) memmove(recv, sum, block);
    free(sum);
    return rc;
}

static int tcp_all_gather(Comm *c, const void *send, void *recv, size_t bytes, Error *e)
{
    double start = now_seconds();
    size_t total = bytes * (size_t)c->size;
    if (c->rank)
        return send_header(c, OP_ALL_GATHER, bytes, start, e) < 0 || send_to(c, 0, send, bytes, start, e) < 0 ||
               recv_from(c, 0, recv, total, start, e) < 0 ? -1 : 0;
    if (send != recv) memmove(recv, send, bytes);
    for (int r = 1; r < c->size; r++)
        if (check_header(c, r, OP_ALL_GATHER, bytes, start, e) < 0 ||
            recv_from(c, r, (unsigned char *)recv + (size_t)r * bytes, bytes, start, e) < 0)
            return -1;
    for (int r = 1; r < c->size; r++)
        if (send_to(c, r, recv, total, start, e) < 0) return -1;
    return 0;
}

static int tcp_broadcast(Comm *c, void *buf, size_t bytes, int root, Error *e)
{
    double start = now_seconds();
    if (c->rank) {
        if (send_header(c, OP_BROADCAST, bytes, start, e) < 0) return -1;
        if (c->rank == root) return send_to(c, 0, buf, bytes, start, e);
        return recv_from(c, 0, buf, bytes, start, e);
    }
    for (int r = 1; r < c->size; r++)
        if (check_header(c, r, OP_BROADCAST, bytes, start, e) < 0) return -1;
    if (root && recv_from(c, root, buf, bytes, start, e) < 0) return -1;
    for (int r = 1; r < c->size; r++)
        if (r != root && send_to(c, r, buf, bytes, start, e) < 0) return -1;
    return 0;
}

static int tcp_barrier(Comm *c, Error *e)
{
    double start = now_seconds();
    unsigned char go = 1;
    if (c->rank) return send_header(c, OP_BARRIER, 0, start, e) < 0 || recv_from(c, 0, &go, 1, start, e) < 0 ? -1 : 0;
    for (int r = 1; r < c->size; r++)
        if (check_header(c, r, OP_BARRIER, 0, start, e) < 0) return -1;
    for (int r = 1; r < c->size; r++)
        if (send_to(c, r, &go, 1, start, e) < 0) return -1;
    return 0;
}

static void tcp_close(Comm *c)
{
    Tcp *t = c->impl;
    if (!t) return;
    for (int r = 0; r < c->size; r++)
        if (t->fd[r] >= 0) close(t->fd[r]);
    free(t->fd);
    free(t->scratch);
    free(t->acc);
    free(t);
}

static const CommOps tcp_ops = {
    tcp_all_reduce, tcp_reduce_scatter, tcp_all_gather, tcp_broadcast, tcp_barrier, tcp_close,
};

Comm *comm_tcp_open(int rank, int size, int local_rank, int *fds, double timeout_s, Error *e)
{
    Tcp *t = calloc(1, sizeof *t);
    Comm *c = t ? comm_alloc(&tcp_ops, "tcp", t, e) : NULL;
    if (t) t->fd = malloc((size_t)size * sizeof *t->fd);
    if (!c || !t->fd) {
        for (int r = 0; r < size; r++)
            if (fds[r] >= 0) close(fds[r]);
        if (t) free(t->fd);
        free(t);
        free(c);
        fail(e, "comm: out of memory");
        return NULL;
    }
    c->rank = rank;
    c->size = size;
    c->local_rank = local_rank < 0 ? rank : local_rank;
    comm_set_timeout(c, timeout_s);
    int one = 1;
    for (int r = 0; r < size; r++) {
        t->fd[r] = fds[r];
        if (fds[r] < 0) continue;
        /* small messages (headers, barriers) must not wait for Nagle's timer */
        setsockopt(fds[r], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fds[r], F_SETFL, fcntl(fds[r], F_GETFL) | O_NONBLOCK);
    }
    return c;
}
