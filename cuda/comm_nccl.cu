// cuda/comm_nccl.cu: lib/comm.h over NCCL (comm_nccl.cuh says how waits and failures work).
#include "emu.h"
#include "comm_nccl.cuh"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if CUDA_EMU

// NCCL has no CPU transport and the emulation no devices: say so rather than pretend.
int comm_nccl_unique_id(void *, Error *e)
{
    return fail(e, "comm: NCCL needs a GPU build (make cuda); this is the CPU emulation");
}

Comm *comm_nccl_open(int, int, int, int, const void *, double, void *, Error *e)
{
    fail(e, "comm: NCCL needs a GPU build (make cuda); this is the CPU emulation");
    return NULL;
}

int comm_nccl_smoke(int, Error *e)
{
    return fail(e, "comm: NCCL needs a GPU build (make cuda); this is the CPU emulation");
}

#else

#include <cuda_runtime.h>
#include <nccl.h>

static_assert(sizeof(ncclUniqueId) == COMM_NCCL_ID_BYTES, "COMM_NCCL_ID_BYTES is not NCCL's id size");

namespace {

struct Nccl {
    ncclComm_t comm;
    cudaStream_t stream;
    bool own_stream;
};

int nccl_fail(Comm *c, const char *what, const char *detail, Error *e)
{
    return fail(e, "comm: %s #%lld on rank %d of %d: %s: %s", c->op ? c->op : "open", c->calls, c->rank, c->size,
                what, detail);
}

void pause_briefly(unsigned spins)
{
    struct timespec ts = {0, spins < 1000 ? 10000 : 200000};
    nanosleep(&ts, NULL);
}

// Until NCCL has no operation in progress on the communicator (non-blocking mode), and then,
// when stream_too, until the stream is idle.  Aborts the communicator on any failure.
int nccl_wait(Comm *c, bool stream_too, Error *e)
{
    Nccl *n = static_cast<Nccl *>(c->impl);
    double start = now_seconds();
    for (unsigned spins = 0;; spins++) {
        ncclResult_t state;
        ncclResult_t rc = ncclCommGetAsyncError(n->comm, &state);
        if (rc != ncclSuccess) state = rc;
        if (state != ncclSuccess && state != ncclInProgress) {
            nccl_fail(c, "NCCL", ncclGetErrorString(state), e);
            break;
        }
        if (state == ncclSuccess) {
            if (!stream_too) return 0;
            cudaError_t q = cudaStreamQuery(n->stream);
            if (q == cudaSuccess) return 0;
            if (q != cudaErrorNotReady) {
                nccl_fail(c, "CUDA", cudaGetErrorString(q), e);
                break;
            }
        }
        if (comm_poll(c, start, e) < 0) break;
        pause_briefly(spins);
    }
    // The collective may never finish: abort so that nothing waits on it (and the stream's
    // later work fails instead of hanging).
    ncclCommAbort(n->comm);
    n->comm = NULL;
    return -1;
}

ncclDataType_t nccl_type(CommType t)
{
    return t == COMM_F64 ? ncclFloat64 : t == COMM_F32 ? ncclFloat32 : ncclBfloat16;
}

int enqueued(Comm *c, ncclResult_t rc, Error *e)
{
    if (rc != ncclSuccess && rc != ncclInProgress) {
        Nccl *n = static_cast<Nccl *>(c->impl);
        nccl_fail(c, "NCCL", ncclGetErrorString(rc), e);
        ncclCommAbort(n->comm);
        n->comm = NULL;
        return -1;
    }
    return nccl_wait(c, true, e);
}

int nccl_all_reduce(Comm *c, void *buf, size_t count, CommType t, Error *e)
{
    Nccl *n = static_cast<Nccl *>(c->impl);
    return enqueued(c, ncclAllReduce(buf, buf, count, nccl_type(t), ncclSum, n->comm, n->stream), e);
}

int nccl_reduce_scatter(Comm *c, const void *send, void *recv, size_t count, CommType t, Error *e)
{
    Nccl *n = static_cast<Nccl *>(c->impl);
    return enqueued(c, ncclReduceScatter(send, recv, count, nccl_type(t), ncclSum, n->comm, n->stream), e);
}

int nccl_all_gather(Comm *c, const void *send, void *recv, size_t bytes, Error *e)
{
    Nccl *n = static_cast<Nccl *>(c->impl);
    return enqueued(c, ncclAllGather(send, recv, bytes, ncclUint8, n->comm, n->stream), e);
}

int nccl_broadcast(Comm *c, void *buf, size_t bytes, int root, Error *e)
{
    Nccl *n = static_cast<Nccl *>(c->impl);
    return enqueued(c, ncclBroadcast(buf, buf, bytes, ncclUint8, root, n->comm, n->stream), e);
}

// NCCL has no barrier: an all-reduce of one float in a scratch device word.
int nccl_barrier(Comm *c, Error *e)
{
    Nccl *n = static_cast<Nccl *>(c->impl);
    float *word = NULL;
    if (cudaMallocAsync(reinterpret_cast<void **>(&word), sizeof *word, n->stream) != cudaSuccess)
        return nccl_fail(c, "CUDA", "cannot allocate the barrier's word", e);
    cudaMemsetAsync(word, 0, sizeof *word, n->stream);
    int rc = enqueued(c, ncclAllReduce(word, word, 1, ncclFloat32, ncclSum, n->comm, n->stream), e);
    cudaFreeAsync(word, n->stream);
    return rc;
}

void nccl_close(Comm *c)
{
    Nccl *n = static_cast<Nccl *>(c->impl);
    if (!n) return;
    if (n->comm) {
        if (c->broken) ncclCommAbort(n->comm);
        else {
            // flush, bounded by the timeout like every other wait, then free
            c->op = "close";
            ncclResult_t rc = ncclCommFinalize(n->comm);
            Error e;
            if ((rc == ncclSuccess || rc == ncclInProgress) && nccl_wait(c, false, &e) == 0) ncclCommDestroy(n->comm);
            else if (n->comm) ncclCommAbort(n->comm);
        }
    }
    if (n->own_stream) cudaStreamDestroy(n->stream);
    free(n);
}

const CommOps nccl_ops = {
    nccl_all_reduce, nccl_reduce_scatter, nccl_all_gather, nccl_broadcast, nccl_barrier, nccl_close,
};

} // namespace

int comm_nccl_unique_id(void *id, Error *e)
{
    ncclUniqueId u;
    ncclResult_t rc = ncclGetUniqueId(&u);
    if (rc != ncclSuccess) return fail(e, "comm: ncclGetUniqueId: %s", ncclGetErrorString(rc));
    memcpy(id, &u, sizeof u);
    return 0;
}

Comm *comm_nccl_open(int rank, int size, int local_rank, int device, const void *id, double timeout_s, void *stream,
                     Error *e)
{
    cudaError_t ce = cudaSetDevice(device);
    if (ce != cudaSuccess) {
        fail(e, "comm: rank %d: cudaSetDevice(%d): %s", rank, device, cudaGetErrorString(ce));
        return NULL;
    }
    Nccl *n = static_cast<Nccl *>(calloc(1, sizeof *n));
    Comm *c = n ? comm_alloc(&nccl_ops, "nccl", n, e) : NULL;
    if (!c) {
        if (!n) fail(e, "comm: out of memory");
        free(n);
        return NULL;
    }
    c->rank = rank;
    c->size = size;
    c->local_rank = local_rank;
    comm_set_timeout(c, timeout_s);
    c->op = "open";
    if (stream) n->stream = static_cast<cudaStream_t>(stream);
    else if ((ce = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking)) == cudaSuccess) n->own_stream = true;
    else {
        fail(e, "comm: rank %d: cudaStreamCreate: %s", rank, cudaGetErrorString(ce));
        free(n);
        free(c);
        return NULL;
    }
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    // Non-blocking: ncclCommInitRank would wait for the other ranks without a limit.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t rc = ncclCommInitRankConfig(&n->comm, size, u, rank, &config);
    if (rc != ncclSuccess && rc != ncclInProgress) {
        nccl_fail(c, "ncclCommInitRank", ncclGetErrorString(rc), e);
        if (n->comm) ncclCommAbort(n->comm);
        n->comm = NULL;
        c->broken = 1;
        comm_close(c);
        return NULL;
    }
    if (nccl_wait(c, false, e) < 0) {
        c->broken = 1;
        comm_close(c);
        return NULL;
    }
    c->op = NULL;
    return c;
}


// ---- the single-GPU smoke test ----

namespace {

// A world of one: every collective must leave the data as the single-rank backend would.
int smoke_case(Comm *c, size_t n, CommType t, Error *e)
{
    size_t es = comm_type_size(t), bytes = n * es;
    unsigned char *host = static_cast<unsigned char *>(malloc(bytes + 1)), *back = static_cast<unsigned char *>(malloc(bytes + 1));
    void *dev = NULL, *dev2 = NULL;
    int rc = -1;
    for (size_t i = 0; host && i < bytes; i++) host[i] = (unsigned char)(i * 37 + 11);
    if (t == COMM_BF16)   // keep bf16 values finite and not NaN: a sum of one must be exact
        for (size_t i = 0; host && i < n; i++) host[2 * i + 1] &= 0x3f;
    if (t == COMM_F32)
        for (size_t i = 0; host && i < n; i++) host[4 * i + 3] &= 0x3f;
    if (t == COMM_F64)
        for (size_t i = 0; host && i < n; i++) host[8 * i + 7] &= 0x3f;
    if (!host || !back || cudaMalloc(&dev, bytes + 1) != cudaSuccess || cudaMalloc(&dev2, bytes + 1) != cudaSuccess) {
        fail(e, "comm smoke: out of memory");
        goto out;
    }
    cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice);
    if (comm_all_reduce(c, dev, n, t, e) < 0 || comm_reduce_scatter(c, dev, dev2, n, t, e) < 0 ||
        comm_all_gather(c, dev2, dev, bytes, e) < 0 || comm_broadcast(c, dev, bytes, 0, e) < 0 || comm_barrier(c, e) < 0)
        goto out;
    if (cudaMemcpy(back, dev, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
        fail(e, "comm smoke: cudaMemcpy back failed");
        goto out;
    }
    if (memcmp(host, back, bytes)) {
        fail(e, "comm smoke: %zu elements of type %d changed in a world of one", n, (int)t);
        goto out;
    }
    rc = 0;
out:
    cudaFree(dev);
    cudaFree(dev2);
    free(host);
    free(back);
    return rc;
}

} // namespace

int comm_nccl_smoke(int device, Error *e)
{
    unsigned char id[COMM_NCCL_ID_BYTES];
    if (comm_nccl_unique_id(id, e) < 0) return -1;
    Comm *c = comm_nccl_open(0, 1, 0, device, id, 60, NULL, e);
    if (!c) return -1;
    static const size_t sizes[] = {1, 7, 1000, 100003};
    static const CommType types[] = {COMM_F32, COMM_F64, COMM_BF16};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof sizes / sizeof *sizes; i++)
        for (size_t j = 0; rc == 0 && j < 3; j++) rc = smoke_case(c, sizes[i], types[j], e);
    comm_close(c);
    return rc;
}

#endif
