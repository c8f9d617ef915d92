/* comm_common.c: the backend-independent half of comm.h: argument checks, call numbering,
 * the broken state, the timeout, then one call into the backend's CommOps. */
#include "comm.h"

#include <stdint.h>
#include <stdlib.h>

Comm *comm_alloc(const CommOps *ops, const char *backend, void *impl, Error *e)
{
    Comm *c = calloc(1, sizeof *c);
    if (!c) { fail(e, "comm: out of memory"); return NULL; }
    c->ops = ops;
    c->backend = backend;
    c->impl = impl;
    c->size = 1;
    c->timeout = COMM_TIMEOUT_DEFAULT;
    return c;
}

int comm_rank(const Comm *c) { return c->rank; }
int comm_size(const Comm *c) { return c->size; }
int comm_local_rank(const Comm *c) { return c->local_rank; }
const char *comm_backend(const Comm *c) { return c->backend; }

size_t comm_type_size(CommType t)
{
    switch (t) {
    case COMM_F32:  return 4;
    case COMM_F64:  return 8;
    case COMM_BF16: return 2;
    }
    return 0;
}

void comm_set_timeout(Comm *c, double seconds)
{
    if (seconds > 0) c->timeout = seconds;
}

void comm_set_abort_check(Comm *c, int (*check)(void *arg, Error *e), void *arg)
{
    c->abort_check = check;
    c->abort_arg = arg;
}

int comm_poll(Comm *c, double start, Error *e)
{
    if (c->abort_check && c->abort_check(c->abort_arg, e) < 0)
        return fail_prefix(e, "comm: %s #%lld on rank %d of %d", c->op, c->calls, c->rank, c->size);
    double waited = now_seconds() - start;
    if (waited > c->timeout)
        return fail(e, "comm: %s #%lld on rank %d of %d timed out after %.0f s (--comm_timeout): "
                    "a peer rank is dead or stuck", c->op, c->calls, c->rank, c->size, waited);
    return 0;
}

/* Common entry: refuse a broken communicator, number the call, and check that
 * count elements of t fit in size_t even times the world size. */
static int begin(Comm *c, const char *op, size_t count, size_t esize, Error *e)
{
    if (c->broken)
        return fail(e, "comm: %s on rank %d: the communicator is broken by an earlier failure", op, c->rank);
    if (esize == 0) return fail(e, "comm: %s: unknown element type", op);
    if (count > SIZE_MAX / esize / (size_t)c->size)
        return fail(e, "comm: %s: %zu elements overflow a buffer size", op, count);
    c->op = op;
    c->calls++;
    return 0;
}

static int end(Comm *c, int rc)
{
    if (rc < 0) c->broken = 1;
    return rc;
}

int comm_all_reduce(Comm *c, void *buf, size_t count, CommType t, Error *e)
{
    if (begin(c, "all_reduce", count, comm_type_size(t), e) < 0) return -1;
    return end(c, c->ops->all_reduce(c, buf, count, t, e));
}

int comm_reduce_scatter(Comm *c, const void *send, void *recv, size_t count, CommType t, Error *e)
{
    if (begin(c, "reduce_scatter", count, comm_type_size(t), e) < 0) return -1;
    return end(c, c->ops->reduce_scatter(c, send, recv, count, t, e));
}

int comm_all_gather(Comm *c, const void *send, void *recv, size_t bytes, Error *e)
{
    if (begin(c, "all_gather", bytes, 1, e) < 0) return -1;
    return end(c, c->ops->all_gather(c, send, recv, bytes, e));
}

int comm_broadcast(Comm *c, void *buf, size_t bytes, int root, Error *e)
{
    if (root < 0 || root >= c->size)
        return fail(e, "comm: broadcast from rank %d: the world has ranks 0..%d", root, c->size - 1);
    if (begin(c, "broadcast", bytes, 1, e) < 0) return -1;
    return end(c, c->ops->broadcast(c, buf, bytes, root, e));
}

int comm_barrier(Comm *c, Error *e)
{
    if (begin(c, "barrier", 0, 1, e) < 0) return -1;
    return end(c, c->ops->barrier(c, e));
}

void comm_close(Comm *c)
{
    if (!c) return;
    if (c->ops->close) c->ops->close(c);
    free(c);
}
