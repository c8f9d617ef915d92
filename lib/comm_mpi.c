/* comm_mpi.c: comm.h over MPI, host buffers (OpenMPI or MPICH; built when mpicc is found,
 * which defines RWKV7C_MPI: mk/comm.mk).
 *
 * Timeouts: MPI's blocking collectives cannot be interrupted, so every call is the MPI-3
 * non-blocking form (MPI_Iallreduce's kin) polled with MPI_Test until it completes, the
 * timeout passes, or the abort check fires.  On a timeout the rank asks every peer, on a
 * second communicator, which call it is in; a peer that is itself waiting answers from its
 * poll loop, so the error can name the ranks that never arrived.
 *
 * Sums: not MPI_Allreduce, whose order depends on the algorithm MPI picks for the message
 * size and world size.  Each element range is sent to one owner (MPI_Ialltoallv), which adds
 * the W contributions in rank order, ((x_0 + x_1) + x_2) + ..., then every owner's range goes
 * to all (MPI_Iallgatherv).  That is the same traffic as a ring all-reduce, a fixed order,
 * and the same bits on every rank.  MPI has no bf16 type: bf16 travels as 16-bit words
 * (MPI_UINT16_T, half the bytes of fp32) and the owner converts each contribution to fp32
 * (exact), adds in fp32 in rank order and rounds the sum to bf16 once; no user MPI_Op. */
#include "comm.h"

#ifdef RWKV7C_MPI
#include <mpi.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensors.h"

/* Bytes moved per MPI call: bounds the scratch buffer and keeps every MPI count an int.
 * RWKV7C_COMM_SEG_BYTES lowers it, so that tests cross segment boundaries with small buffers. */
static size_t seg_bytes = (size_t)1 << 26;

enum { TAG_QUERY = 1, TAG_REPLY = 2 };

typedef struct {
    MPI_Comm comm;            /* the collectives */
    MPI_Comm diag;            /* "which call are you in" queries after a timeout */
    MPI_Request query_req;    /* posted receive of a peer's query */
    long long query_buf;
    long long *reply_buf;     /* per peer: a reply must stay valid until sent */
    MPI_Request *reply_req;
    int *counts, *displs, *rcounts, *rdispls;   /* per rank, for the v-collectives */
    unsigned char *scratch;
    size_t scratch_cap;
} Mpi;

static int mpi_users;          /* open communicators; the last close finalizes what we initialized */
static int mpi_we_initialized;

static int mpi_fail(Comm *c, int rc, Error *e)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", rc);
    return fail(e, "comm: %s #%lld on rank %d of %d: MPI: %s", c->op ? c->op : "open", c->calls,
                c->rank, c->size, text);
}

/* Answer the queries of peers that timed out: our current call number. */
static void serve_queries(Comm *c, Mpi *m)
{
    while (m->query_req != MPI_REQUEST_NULL) {
        int done = 0;
        MPI_Status st;
        if (MPI_Test(&m->query_req, &done, &st) != MPI_SUCCESS || !done) return;
        int p = st.MPI_SOURCE;
        if (p >= 0 && p < c->size) {
            int sent = 1;
            if (m->reply_req[p] != MPI_REQUEST_NULL) MPI_Test(&m->reply_req[p], &sent, MPI_STATUS_IGNORE);
            if (sent) {
                m->reply_buf[p] = c->calls;
                MPI_Isend(&m->reply_buf[p], 1, MPI_LONG_LONG, p, TAG_REPLY, m->diag, &m->reply_req[p]);
            }
        }
        if (MPI_Irecv(&m->query_buf, 1, MPI_LONG_LONG, MPI_ANY_SOURCE, TAG_QUERY, m->diag, &m->query_req) != MPI_SUCCESS)
            m->query_req = MPI_REQUEST_NULL;
    }
}

/* After a timeout (e says so): ask each peer which call it is in, for up to a second, and
 * append the ranks that have not reached this one. */
static void diagnose(Comm *c, Mpi *m, Error *e)
{
    int W = c->size;
    long long *answer = calloc((size_t)W, sizeof *answer), mine = c->calls;
    MPI_Request *rq = malloc((size_t)W * 2 * sizeof *rq);
    if (!answer || !rq) { free(answer); free(rq); return; }
    for (int p = 0; p < W; p++) {
        rq[2 * p] = rq[2 * p + 1] = MPI_REQUEST_NULL;
        if (p == c->rank) continue;
        answer[p] = -1;
        MPI_Irecv(&answer[p], 1, MPI_LONG_LONG, p, TAG_REPLY, m->diag, &rq[2 * p]);
        MPI_Isend(&mine, 1, MPI_LONG_LONG, p, TAG_QUERY, m->diag, &rq[2 * p + 1]);
    }
    double start = now_seconds(), limit = c->timeout < 1 ? c->timeout : 1;
    for (;;) {
        int pending = 0;
        for (int p = 0; p < W; p++) {
            if (rq[2 * p] == MPI_REQUEST_NULL) continue;
            int done = 0;
            if (MPI_Test(&rq[2 * p], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) rq[2 * p] = MPI_REQUEST_NULL;
            else pending += !done;
        }
        serve_queries(c, m);   /* the peers may be asking us at the same moment */
        if (!pending || now_seconds() - start > limit) break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    char list[600] = "";
    size_t len = 0;
    int named = 0;
    for (int p = 0; p < W && len < sizeof list - 80; p++) {
        if (p == c->rank) continue;
        int answered = rq[2 * p] == MPI_REQUEST_NULL;
        if (!answered) { MPI_Cancel(&rq[2 * p]); MPI_Request_free(&rq[2 * p]); }
        if (rq[2 * p + 1] != MPI_REQUEST_NULL) MPI_Request_free(&rq[2 * p + 1]);
        if (answered && answer[p] >= mine) continue;
        if (answered)
            len += (size_t)snprintf(list + len, sizeof list - len, "%srank %d is still in call #%lld",
                                    named++ ? "; " : "", p, answer[p]);
        else
            len += (size_t)snprintf(list + len, sizeof list - len, "%srank %d has not reached it (no answer: dead, or busy outside the communicator)",
                                    named++ ? "; " : "", p);
    }
    /* the answer buffers of cancelled receives may still be written: keep them (we are broken) */
    free(rq);
    if (named) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, "; %s", list);
    } else {
        free(answer);
    }
}

static int wait_for(Comm *c, MPI_Request *req, Error *e)
{
    Mpi *m = c->impl;
    double start = now_seconds();
    unsigned spins = 0;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
        if (done) return 0;
        serve_queries(c, m);
        if (comm_poll(c, start, e) < 0) {
            if (now_seconds() - start > c->timeout) diagnose(c, m, e);
            return -1;
        }
        /* Spin briefly (small collectives finish in microseconds), then sleep a little so
         * that oversubscribed ranks leave the cores to the ranks doing the work. */
        if (++spins < 100) sched_yield();
        else {
            struct timespec ts = {0, spins < 2000 ? 20000 : 200000};
            nanosleep(&ts, NULL);
        }
    }
}

static int reserve(Mpi *m, size_t bytes, Comm *c, Error *e)
{
    if (bytes <= m->scratch_cap) return 0;
    free(m->scratch);
    m->scratch = malloc(bytes);
    m->scratch_cap = m->scratch ? bytes : 0;
    if (!m->scratch) return fail(e, "comm: %s on rank %d: out of memory for %zu bytes of scratch", c->op, c->rank, bytes);
    return 0;
}

static MPI_Datatype wire_type(CommType t)
{
    return t == COMM_F64 ? MPI_DOUBLE : t == COMM_F32 ? MPI_FLOAT : MPI_UINT16_T;
}

/* out[i] = in_0[i] + in_1[i] + ... in rank order; in_r = in + r*n elements; acc is n floats
 * of scratch for bf16. */
static void sum_in_rank_order(void *out, const void *in, size_t n, int W, CommType t, float *acc)
{
    if (t == COMM_F32) {
        const float *x = in;
        float *y = out;
        memcpy(y, x, n * sizeof *y);
        for (int r = 1; r < W; r++)
            for (size_t i = 0; i < n; i++) y[i] += x[(size_t)r * n + i];
    } else if (t == COMM_F64) {
        const double *x = in;
        double *y = out;
        memcpy(y, x, n * sizeof *y);
        for (int r = 1; r < W; r++)
            for (size_t i = 0; i < n; i++) y[i] += x[(size_t)r * n + i];
    } else {
        const uint16_t *x = in;
        uint16_t *y = out;
        for (size_t i = 0; i < n; i++) acc[i] = bf16_to_f32(x[i]);
        for (int r = 1; r < W; r++)
            for (size_t i = 0; i < n; i++) acc[i] += bf16_to_f32(x[(size_t)r * n + i]);
        for (size_t i = 0; i < n; i++) y[i] = f32_to_bf16(acc[i]);
    }
}

static int mpi_all_reduce(Comm *c, void *buf, size_t count, CommType t, Error *e)
{
    Mpi *m = c->impl;
    int W = c->size, me = c->rank;
    size_t es = comm_type_size(t), seg = seg_bytes / es;
    MPI_Datatype type = wire_type(t);
    if (W == 1) return 0;
    for (size_t a = 0; a < count; a += seg) {
        size_t s = count - a < seg ? count - a : seg;
        unsigned char *base = (unsigned char *)buf + a * es;
        for (int r = 0; r < W; r++) {
            m->displs[r] = (int)(s * (size_t)r / (size_t)W);
            m->counts[r] = (int)(s * (size_t)(r + 1) / (size_t)W) - m->displs[r];
        }
        size_t mine = (size_t)m->counts[me];
        if (reserve(m, mine * es * (size_t)W + mine * sizeof(float), c, e) < 0) return -1;
        for (int r = 0; r < W; r++) { m->rcounts[r] = (int)mine; m->rdispls[r] = (int)(mine * (size_t)r); }
        MPI_Request req;
        int rc = MPI_Ialltoallv(base, m->counts, m->displs, type, m->scratch, m->rcounts, m->rdispls, type, m->comm, &req);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
        if (wait_for(c, &req, e) < 0) return -1;
        sum_in_rank_order(base + (size_t)m->displs[me] * es, m->scratch, mine, W, t,
                          (float *)(m->scratch + mine * es * (size_t)W));
        rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, type, base, m->counts, m->displs, type, m->comm, &req);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
        if (wait_for(c, &req, e) < 0) return -1;
    }
    return 0;
}

static int mpi_reduce_scatter(Comm *c, const void *send, void *recv, size_t count, CommType t, Error *e)
{
    Mpi *m = c->impl;
    int W = c->size;
    size_t es = comm_type_size(t), seg = seg_bytes / es / (size_t)W;
    MPI_Datatype type = wire_type(t);
    if (seg == 0) seg = 1;
    for (size_t a = 0; a < count; a += seg) {
        size_t s = count - a < seg ? count - a : seg;
        if (reserve(m, s * es * (size_t)W + s * sizeof(float), c, e) < 0) return -1;
        /* block r of send starts count elements after block r-1: a strided type picks this
         * segment of every block without a staging copy */
        MPI_Datatype piece, strided;
        int rc = MPI_Type_contiguous((int)s, type, &piece);
        if (rc == MPI_SUCCESS) rc = MPI_Type_create_resized(piece, 0, (MPI_Aint)(count * es), &strided);
        if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&strided);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
        MPI_Type_free(&piece);
        MPI_Request req;
        rc = MPI_Ialltoall((const unsigned char *)send + a * es, 1, strided, m->scratch, (int)s, type, m->comm, &req);
        if (rc == MPI_SUCCESS) rc = wait_for(c, &req, e) < 0 ? -2 : MPI_SUCCESS;
        MPI_Type_free(&strided);
        if (rc == -2) return -1;
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
        sum_in_rank_order((unsigned char *)recv + a * es, m->scratch, s, W, t, (float *)(m->scratch + s * es * (size_t)W));
    }
    return 0;
}

static int mpi_all_gather(Comm *c, const void *send, void *recv, size_t bytes, Error *e)
{
    Mpi *m = c->impl;
    const void *own = (const unsigned char *)recv + (size_t)c->rank * bytes;
    for (size_t a = 0; a < bytes; a += seg_bytes) {
        size_t s = bytes - a < seg_bytes ? bytes - a : seg_bytes;
        /* rank r's piece lands at recv + r*bytes + a: a type whose extent is one block */
        MPI_Datatype piece, strided;
        int rc = MPI_Type_contiguous((int)s, MPI_BYTE, &piece);
        if (rc == MPI_SUCCESS) rc = MPI_Type_create_resized(piece, 0, (MPI_Aint)bytes, &strided);
        if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&strided);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
        MPI_Type_free(&piece);
        MPI_Request req;
        if (send == own)
            rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_BYTE, (unsigned char *)recv + a, 1, strided, m->comm, &req);
        else
            rc = MPI_Iallgather((const unsigned char *)send + a, (int)s, MPI_BYTE, (unsigned char *)recv + a, 1, strided, m->comm, &req);
        if (rc == MPI_SUCCESS) rc = wait_for(c, &req, e) < 0 ? -2 : MPI_SUCCESS;
        MPI_Type_free(&strided);
        if (rc == -2) return -1;
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
    }
    return 0;
}

static int mpi_broadcast(Comm *c, void *buf, size_t bytes, int root, Error *e)
{
    Mpi *m = c->impl;
    for (size_t a = 0; a < bytes; a += seg_bytes) {
        size_t s = bytes - a < seg_bytes ? bytes - a : seg_bytes;
        MPI_Request req;
        int rc = MPI_Ibcast((unsigned char *)buf + a, (int)s, MPI_BYTE, root, m->comm, &req);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
        if (wait_for(c, &req, e) < 0) return -1;
    }
    return 0;
}

static int mpi_barrier(Comm *c, Error *e)
{
    Mpi *m = c->impl;
    MPI_Request req;
    int rc = MPI_Ibarrier(m->comm, &req);
    if (rc != MPI_SUCCESS) return mpi_fail(c, rc, e);
    return wait_for(c, &req, e);
}

static void mpi_free(Mpi *m)
{
    free(m->reply_buf);
    free(m->reply_req);
    free(m->counts);
    free(m->displs);
    free(m->rcounts);
    free(m->rdispls);
    free(m->scratch);
    free(m);
}

static void mpi_close(Comm *c)
{
    Mpi *m = c->impl;
    if (!m) return;
    /* A broken communicator may have a collective in flight that a peer will never join:
     * any orderly shutdown could hang.  The process is about to fail; mpirun sees it exit
     * without MPI_Finalize and stops the other ranks. */
    if (c->broken) { mpi_users--; mpi_free(m); return; }
    if (m->query_req != MPI_REQUEST_NULL) {
        MPI_Cancel(&m->query_req);
        MPI_Wait(&m->query_req, MPI_STATUS_IGNORE);
    }
    for (int p = 0; p < c->size; p++)
        if (m->reply_req[p] != MPI_REQUEST_NULL) MPI_Request_free(&m->reply_req[p]);
    MPI_Comm_free(&m->diag);
    MPI_Comm_free(&m->comm);
    mpi_free(m);
    if (--mpi_users == 0 && mpi_we_initialized) {
        MPI_Finalize();
        mpi_we_initialized = 0;
    }
}

static const CommOps mpi_ops = {
    mpi_all_reduce, mpi_reduce_scatter, mpi_all_gather, mpi_broadcast, mpi_barrier, mpi_close,
};

Comm *comm_mpi_open(double timeout_s, Error *e)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) { fail(e, "comm: MPI was already finalized"); return NULL; }
    if (!inited) {
        /* Only the thread that opened the communicator calls MPI (OpenMP threads never do). */
        int provided;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            fail(e, "comm: MPI_Init failed");
            return NULL;
        }
        mpi_we_initialized = 1;
    }
    const char *seg = getenv("RWKV7C_COMM_SEG_BYTES");
    if (seg && atol(seg) >= 64 && (size_t)atol(seg) < seg_bytes) seg_bytes = (size_t)atol(seg);
    Mpi *m = calloc(1, sizeof *m);
    Comm *c = m ? comm_alloc(&mpi_ops, "mpi", m, e) : NULL;
    if (!c) { free(m); if (!m) fail(e, "comm: out of memory"); return NULL; }
    mpi_users++;
    c->op = "open";
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->diag);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(m->comm, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(m->comm, &c->size);
    MPI_Comm node;
    if (rc == MPI_SUCCESS) rc = MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
    if (rc == MPI_SUCCESS) {
        rc = MPI_Comm_rank(node, &c->local_rank);
        MPI_Comm_free(&node);
    }
    if (rc != MPI_SUCCESS) {
        mpi_fail(c, rc, e);
        c->broken = 1;
        comm_close(c);
        return NULL;
    }
    size_t W = (size_t)c->size;
    m->reply_buf = calloc(W, sizeof *m->reply_buf);
    m->reply_req = malloc(W * sizeof *m->reply_req);
    m->counts = malloc(W * sizeof(int));
    m->displs = malloc(W * sizeof(int));
    m->rcounts = malloc(W * sizeof(int));
    m->rdispls = malloc(W * sizeof(int));
    m->query_req = MPI_REQUEST_NULL;
    if (!m->reply_buf || !m->reply_req || !m->counts || !m->displs || !m->rcounts || !m->rdispls) {
        fail(e, "comm: out of memory");
        c->broken = 1;
        comm_close(c);
        return NULL;
    }
    for (size_t p = 0; p < W; p++) m->reply_req[p] = MPI_REQUEST_NULL;
    MPI_Irecv(&m->query_buf, 1, MPI_LONG_LONG, MPI_ANY_SOURCE, TAG_QUERY, m->diag, &m->query_req);
    comm_set_timeout(c, timeout_s);
    c->op = NULL;
    return c;
}

int comm_mpi_built(void) { return 1; }

#else /* !RWKV7C_MPI */

Comm *comm_mpi_open(double timeout_s, Error *e)
{
    fail(e, "comm: built without MPI (mpicc was not found at build time: install libopenmpi-dev and rebuild)");
    return NULL;
}

int comm_mpi_built(void) { return 0; }

#endif
