/* comm_single.c: the one-rank communicator.  Every collective is the identity (a copy when
 * the output is another buffer), so a trainer written for W ranks runs unchanged on one. */
#include "comm.h"

#include <string.h>

static int single_all_reduce(Comm *c, void *buf, size_t count, CommType t, Error *e)
{
    return 0;
}

static int single_reduce_scatter(Comm *c, const void *send, void *recv, size_t count, CommType t, Error *e)
{
    if (send != recv && count) memmove(recv, send, count * comm_type_size(t));
    return 0;
}

static int single_all_gather(Comm *c, const void *send, void *recv, size_t bytes, Error *e)
{
    if (send != recv && bytes) memmove(recv, send, bytes);
    return 0;
}

static int single_broadcast(Comm *c, void *buf, size_t bytes, int root, Error *e)
{
    return 0;
}

static int single_barrier(Comm *c, Error *e)
{
    return 0;
}

static const CommOps single_ops = {
    single_all_reduce, single_reduce_scatter, single_all_gather, single_broadcast, single_barrier, NULL,
};

Comm *comm_single_open(Error *e)
{
    return comm_alloc(&single_ops, "single", NULL, e);
}
