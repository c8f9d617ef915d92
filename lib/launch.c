/* launch.c: the launcher's environment, the rendezvous of a unique id (TCP, file), and
 * --devices N without a launcher (launch.h; doc/comm.md). */
#define _GNU_SOURCE
#include "launch.h"

#include "comm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- environment ---- */

static const struct {
    const char *source, *rank, *size, *local_rank, *local_size;
} sources[] = {
    {"OpenMPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"MPICH", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
    {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", NULL},
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
};

/* 1 and *out when NAME is set to an integer in [lo, hi], 0 when unset, -1 otherwise. */
static int env_int(const char *name, long long lo, long long hi, int *out, Error *e)
{
    const char *s = name ? getenv(name) : NULL;
    if (!s) return 0;
    int64_t v;
    if (parse_i64(s, &v) < 0 || v < lo || v > hi)
        return fail(e, "%s='%s': want an integer from %lld to %lld", name, s, lo, hi);
    *out = (int)v;
    return 1;
}

int launch_from_env(LaunchEnv *l, Error *e)
{
    memset(l, 0, sizeof *l);
    l->size = 1;
    l->local_rank = l->local_size = -1;
    l->source = "none";
    const char *addr = getenv("MASTER_ADDR");
    if (addr) {
        if (!*addr || strlen(addr) >= sizeof l->master_addr)
            return fail(e, "MASTER_ADDR='%s': want a host name or address", addr);
        strcpy(l->master_addr, addr);
    }
    if (env_int("MASTER_PORT", 1, 65535, &l->master_port, e) < 0) return -1;
    for (size_t i = 0; i < sizeof sources / sizeof *sources; i++) {
        /* The rank variable says a launcher started us; a world size alone does not (an
         * salloc shell has SLURM_NTASKS but no SLURM_PROCID). */
        if (!getenv(sources[i].rank)) continue;
        int size = 0, rank = 0;
        if (env_int(sources[i].size, 1, 1 << 24, &size, e) <= 0) {
            if (!getenv(sources[i].size))
                fail(e, "%s is set but %s is not: set both (or neither)", sources[i].rank, sources[i].size);
            return -1;
        }
        if (env_int(sources[i].rank, 0, size - 1, &rank, e) < 0) return -1;
        l->rank = rank;
        l->size = size;
        l->source = sources[i].source;
        l->size_var = sources[i].size;
        if (env_int(sources[i].local_size, 1, size, &l->local_size, e) < 0) return -1;
        if (env_int(sources[i].local_rank, 0, (l->local_size > 0 ? l->local_size : size) - 1, &l->local_rank, e) < 0)
            return -1;
        return 0;
    }
    return 0;
}

int launch_check_world(const LaunchEnv *l, int devices, int num_nodes, Error *e)
{
    if (devices < 1 || num_nodes < 1)
        return fail(e, "--devices %d and --num_nodes %d: want at least 1 of each", devices, num_nodes);
    long long want = (long long)devices * num_nodes;
    if (!strcmp(l->source, "none")) {
        if (want == 1) return 0;
        if (num_nodes > 1)
            return fail(e, "--num_nodes %d needs a launcher on each node (mpirun, srun, or RANK, WORLD_SIZE, "
                        "MASTER_ADDR and MASTER_PORT set per process)", num_nodes);
        return 1;
    }
    if (want != l->size)
        return fail(e, "--devices %d x --num_nodes %d = %lld ranks, but the launcher (%s) started %d (%s=%d)",
                    devices, num_nodes, want, l->source, l->size, l->size_var, l->size);
    if (l->local_size > 0 && l->local_size != devices)
        return fail(e, "--devices %d per node, but the launcher (%s) started %d ranks on this node",
                    devices, l->source, l->local_size);
    return 0;
}

/* ---- I/O with a deadline ---- */

static double remaining(double deadline)
{
    double r = deadline - now_seconds();
    return r > 0 ? r : 0;
}

static void pause_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* 0 when fd is ready for events before the deadline, -1 (errno ETIMEDOUT or poll's). */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double r = remaining(deadline);
        if (r <= 0) { errno = ETIMEDOUT; return -1; }
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, r > 1 ? 1000 : (int)(r * 1000) + 1);
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR) return -1;
    }
}

static int send_all(int fd, const void *buf, size_t len, double deadline)
{
    const unsigned char *p = buf;
    while (len) {
        if (wait_fd(fd, POLLOUT, deadline) < 0) return -1;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* -1 with errno 0 on end of file. */
static int recv_all(int fd, void *buf, size_t len, double deadline)
{
    unsigned char *p = buf;
    while (len) {
        if (wait_fd(fd, POLLIN, deadline) < 0) return -1;
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n == 0) errno = 0;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- TCP rendezvous ---- */

#define HELLO_MAGIC "RWKV7CID"
enum { REPLY_OK, REPLY_SIZE, REPLY_LEN, REPLY_RANK };
typedef struct { char magic[8]; uint32_t rank, size, len; } Hello;   /* network byte order */

/* A listening socket on every address (IPv6 with IPv4 mapped, else IPv4). */
static int listen_any(int port, Error *e)
{
    for (int family = AF_INET6;; family = AF_INET) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            int one = 1, zero = 0;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            struct sockaddr_storage ss;
            memset(&ss, 0, sizeof ss);
            socklen_t sl;
            if (family == AF_INET6) {
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                a->sin6_family = AF_INET6;
                a->sin6_addr = in6addr_any;
                a->sin6_port = htons((uint16_t)port);
                sl = sizeof *a;
            } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                a->sin_family = AF_INET;
                a->sin_addr.s_addr = htonl(INADDR_ANY);
                a->sin_port = htons((uint16_t)port);
                sl = sizeof *a;
            }
            if (bind(fd, (struct sockaddr *)&ss, sl) == 0 && listen(fd, 128) == 0) return fd;
            int err = errno;
            close(fd);
            if (err == EADDRINUSE)
                return fail(e, "rendezvous: MASTER_PORT %d is in use on rank 0's machine", port);
            errno = err;
        }
        if (family == AF_INET) return fail(e, "rendezvous: cannot listen on port %d: %s", port, strerror(errno));
    }
}

/* keep: fds[1..W-1] receive the connections instead of their being closed. */
static int tcp_serve(const LaunchEnv *l, const void *id, size_t len, double timeout, int *keep, Error *e)
{
    int lfd = listen_any(l->master_port, e);
    if (lfd < 0) return -1;
    int W = l->size, got = 0, rc = 0;
    int *fds = malloc((size_t)W * sizeof *fds);
    if (!fds) { close(lfd); return fail(e, "rendezvous: out of memory"); }
    for (int r = 0; r < W; r++) fds[r] = -1;
    double deadline = now_seconds() + timeout;
    while (got < W - 1) {
        if (wait_fd(lfd, POLLIN, deadline) < 0) {
            char list[400] = "";
            size_t n = 0;
            for (int r = 1; r < W && n < sizeof list - 20; r++)
                if (fds[r] < 0) n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", n ? ", " : "", r);
            rc = fail(e, "rendezvous on port %d: rank%s %s did not connect within %.0f s", l->master_port,
                      W - 1 - got > 1 ? "s" : "", list, timeout);
            break;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        Hello h;
        /* a stray connection (a port scanner) must not hold up the rendezvous for long */
        double hello_deadline = now_seconds() + 5 < deadline ? now_seconds() + 5 : deadline;
        if (recv_all(fd, &h, sizeof h, hello_deadline) < 0 || memcmp(h.magic, HELLO_MAGIC, 8)) { close(fd); continue; }
        uint32_t r = ntohl(h.rank), size = ntohl(h.size), hlen = ntohl(h.len);
        uint32_t reply = size != (uint32_t)W ? REPLY_SIZE : hlen != len ? REPLY_LEN
                       : r == 0 || r >= (uint32_t)W || fds[r] >= 0 ? REPLY_RANK : REPLY_OK;
        if (reply != REPLY_OK) {
            uint32_t net = htonl(reply);
            send_all(fd, &net, sizeof net, hello_deadline);
            close(fd);
            if (reply == REPLY_SIZE)
                rc = fail(e, "rendezvous: rank %u says the world has %u ranks, rank 0 says %d", r, size, W);
            else if (reply == REPLY_LEN)
                rc = fail(e, "rendezvous: rank %u wants a %u-byte id, rank 0 has %zu", r, hlen, len);
            else
                rc = fail(e, "rendezvous: a second rank %u (or a rank outside 1..%d) connected", r, W - 1);
            break;
        }
        fds[r] = fd;
        got++;
    }
    for (int r = 1; r < W; r++) {
        if (fds[r] < 0) continue;
        uint32_t ok = htonl(REPLY_OK);
        /* on failure the peers just see the connection close */
        if (rc == 0 && (send_all(fds[r], &ok, sizeof ok, deadline + 5) < 0 || send_all(fds[r], id, len, deadline + 5) < 0))
            rc = fail(e, "rendezvous: sending the id to rank %d: %s", r, errno ? strerror(errno) : "connection closed");
        if (rc == 0 && keep) keep[r] = fds[r];
        else close(fds[r]);
    }
    if (rc < 0 && keep)
        for (int r = 1; r < W; r++)
            if (keep[r] >= 0) { close(keep[r]); keep[r] = -1; }
    free(fds);
    close(lfd);
    return rc;
}

static int tcp_join(const LaunchEnv *l, void *id, size_t len, double timeout, int *keep, Error *e)
{
    double deadline = now_seconds() + timeout, backoff = 0.05;
    char port[16];
    snprintf(port, sizeof port, "%d", l->master_port);
    int fd = -1;
    const char *why = "no answer";
    while (fd < 0) {
        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_socktype = SOCK_STREAM;
        int gai = getaddrinfo(l->master_addr, port, &hints, &res);
        if (gai) why = gai_strerror(gai);
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
            if (fd < 0) continue;
            int err = 0;
            socklen_t el = sizeof err;
            if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 &&
                (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) < 0 ||
                 getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || (errno = err) != 0)) {
                why = strerror(errno);
                close(fd);
                fd = -1;
            }
        }
        if (res) freeaddrinfo(res);
        if (fd >= 0) break;
        /* rank 0 may not be listening yet */
        if (remaining(deadline) <= 0)
            return fail(e, "rendezvous: rank 0 at %s:%d did not answer within %.0f s (%s)", l->master_addr,
                        l->master_port, timeout, why);
        pause_seconds(backoff < remaining(deadline) ? backoff : remaining(deadline));
        backoff = backoff * 2 < 1 ? backoff * 2 : 1;
    }
    Hello h;
    memcpy(h.magic, HELLO_MAGIC, 8);
    h.rank = htonl((uint32_t)l->rank);
    h.size = htonl((uint32_t)l->size);
    h.len = htonl((uint32_t)len);
    uint32_t reply;
    if (send_all(fd, &h, sizeof h, deadline) < 0 || recv_all(fd, &reply, sizeof reply, deadline) < 0) {
        int err = errno;
        close(fd);
        if (err == ETIMEDOUT)
            return fail(e, "rendezvous: rank 0 at %s:%d did not send the id within %.0f s (is every rank started?)",
                        l->master_addr, l->master_port, timeout);
        return fail(e, "rendezvous: rank 0 at %s:%d closed the connection (it failed, or another rank did)",
                    l->master_addr, l->master_port);
    }
    reply = ntohl(reply);
    if (reply != REPLY_OK) {
        close(fd);
        return fail(e, "rendezvous: rank 0 refused rank %d: %s", l->rank,
                    reply == REPLY_SIZE ? "it has another world size" : reply == REPLY_LEN ? "it has another id length"
                                        : "another process has the same rank");
    }
    int rc = recv_all(fd, id, len, deadline);
    if (rc == 0 && keep) keep[0] = fd;
    else close(fd);
    if (rc < 0) return fail(e, "rendezvous: the id from rank 0 at %s:%d was cut short", l->master_addr, l->master_port);
    return 0;
}

static int tcp_star(const LaunchEnv *l, void *id, size_t len, double timeout, int *keep, Error *e)
{
    if (keep)
        for (int r = 0; r < l->size; r++) keep[r] = -1;
    if (l->size == 1) return 0;
    if (!l->master_addr[0] || !l->master_port)
        return fail(e, "rendezvous by TCP needs MASTER_ADDR and MASTER_PORT (rank 0's host and a free port)");
    return l->rank == 0 ? tcp_serve(l, id, len, timeout, keep, e) : tcp_join(l, id, len, timeout, keep, e);
}

int launch_share_id_tcp(const LaunchEnv *l, void *id, size_t len, double timeout, Error *e)
{
    return tcp_star(l, id, len, timeout, NULL, e);
}

int launch_connect_tcp(const LaunchEnv *l, double timeout, int *fds, Error *e)
{
    unsigned char none = 0;
    return tcp_star(l, &none, 0, timeout, fds, e);
}

/* ---- file rendezvous ---- */

static char *ack_path(const char *path, int rank)
{
    size_t n = strlen(path) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.ack.%d", path, rank);
    return p;
}

static void remove_acks(const char *path, int size)
{
    for (int r = 1; r < size; r++) {
        char *a = ack_path(path, r);
        if (a) unlink(a);
        free(a);
    }
}

static int file_serve(const char *path, int size, const void *id, size_t len, double timeout, Error *e)
{
    remove_acks(path, size);   /* left by a crashed rendezvous */
    AtomicFile f;
    if (atomic_open(&f, path, ATOMIC_OVERWRITE | ATOMIC_REGULAR_ONLY, e) < 0) return fail_prefix(e, "--init_file");
    unsigned char head[16];
    memcpy(head, HELLO_MAGIC, 8);
    uint32_t s = htonl((uint32_t)size), n = htonl((uint32_t)len);
    memcpy(head + 8, &s, 4);
    memcpy(head + 12, &n, 4);
    if (fwrite(head, 1, sizeof head, f.fp) != sizeof head || fwrite(id, 1, len, f.fp) != len) {
        atomic_abort(&f);
        return fail(e, "--init_file %s: write failed", path);
    }
    if (atomic_commit(&f, e) < 0) return fail_prefix(e, "--init_file");
    double deadline = now_seconds() + timeout;
    char *seen = calloc((size_t)size, 1);
    if (!seen) { unlink(path); return fail(e, "rendezvous: out of memory"); }
    int missing = size - 1, rc = 0;
    while (missing > 0) {
        for (int r = 1; r < size; r++) {
            if (seen[r]) continue;
            char *a = ack_path(path, r);
            if (a && access(a, F_OK) == 0) { seen[r] = 1; missing--; }
            free(a);
        }
        if (!missing) break;
        if (remaining(deadline) <= 0) {
            char list[400] = "";
            size_t k = 0;
            for (int r = 1; r < size && k < sizeof list - 20; r++)
                if (!seen[r]) k += (size_t)snprintf(list + k, sizeof list - k, "%s%d", k ? ", " : "", r);
            rc = fail(e, "rendezvous through %s: rank%s %s did not read it within %.0f s", path, missing > 1 ? "s" : "",
                      list, timeout);
            break;
        }
        pause_seconds(0.05);
    }
    free(seen);
    /* gone once read (or abandoned), so that no later run reads this id */
    unlink(path);
    remove_acks(path, size);
    return rc;
}

static int file_join(const char *path, int rank, int size, void *id, size_t len, double timeout, Error *e)
{
    double deadline = now_seconds() + timeout;
    int fd;
    for (;;) {
        struct stat st;
        if (stat(path, &st) == 0) {
            fd = open_regular(path, e);
            if (fd < 0) return fail_prefix(e, "--init_file");
            break;
        }
        if (errno != ENOENT) return fail(e, "--init_file %s: %s", path, strerror(errno));
        if (remaining(deadline) <= 0)
            return fail(e, "rendezvous through %s: rank 0 did not write it within %.0f s", path, timeout);
        pause_seconds(0.05);
    }
    unsigned char head[16];
    ssize_t n = read(fd, head, sizeof head);
    uint32_t s, l;
    memcpy(&s, head + 8, 4);
    memcpy(&l, head + 12, 4);
    int ok = n == (ssize_t)sizeof head && !memcmp(head, HELLO_MAGIC, 8);
    if (ok && ntohl(s) != (uint32_t)size) {
        close(fd);
        return fail(e, "rendezvous through %s: rank 0 says the world has %u ranks, this rank says %d", path, ntohl(s), size);
    }
    ok = ok && ntohl(l) == len && read(fd, id, len) == (ssize_t)len;
    close(fd);
    if (!ok) return fail(e, "rendezvous through %s: not an id file of %zu bytes from rwkv7c", path, len);
    char *a = ack_path(path, rank);
    int afd = a ? open(a, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (afd < 0) {
        fail(e, "rendezvous through %s: cannot create %s: %s", path, a ? a : "the acknowledgement", strerror(errno));
        free(a);
        return -1;
    }
    close(afd);
    free(a);
    return 0;
}

int launch_share_id_file(const char *path, int rank, int size, void *id, size_t len, double timeout, Error *e)
{
    if (size == 1) return 0;
    return rank == 0 ? file_serve(path, size, id, len, timeout, e) : file_join(path, rank, size, id, len, timeout, e);
}

/* ---- --devices N without a launcher ---- */

struct LaunchChildren {
    int n;                 /* world size; children are ranks 1..n-1 */
    pid_t *pid;            /* [rank], 0 once reaped */
    pthread_t watcher;
    int watching;
    pthread_mutex_t mu;
    int stop, failed;
    char why[256];
};

/* Variables by which a launcher names ranks: a child must see only the ones we set. */
static const char *const launcher_vars[] = {
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
    "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
};
#define N_LAUNCHER_VARS (sizeof launcher_vars / sizeof *launcher_vars)

static int is_launcher_var(const char *entry)
{
    for (size_t i = 0; i < N_LAUNCHER_VARS; i++) {
        size_t k = strlen(launcher_vars[i]);
        if (!strncmp(entry, launcher_vars[i], k) && entry[k] == '=') return 1;
    }
    return 0;
}

/* A port nobody listens on now (the kernel's pick); rank 0 binds it again for the rendezvous. */
static int free_port(Error *e)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        if (fd >= 0) close(fd);
        return fail(e, "--devices: cannot find a free port: %s", strerror(errno));
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void describe_exit(char *buf, size_t n, int rank, int status)
{
    if (WIFSIGNALED(status))
        snprintf(buf, n, "rank %d was killed by signal %d (%s)", rank, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, n, "rank %d exited with status %d", rank, WEXITSTATUS(status));
}

/* Reap exited children; on the first failure kill the rest.  Caller holds k->mu. */
static void reap(LaunchChildren *k)
{
    for (int r = 1; r < k->n; r++) {
        if (!k->pid[r]) continue;
        int status;
        pid_t p = waitpid(k->pid[r], &status, WNOHANG);
        if (p != k->pid[r]) continue;
        k->pid[r] = 0;
        if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) || k->failed) continue;
        k->failed = 1;
        describe_exit(k->why, sizeof k->why, r, status);
        for (int q = 1; q < k->n; q++)
            if (k->pid[q]) kill(k->pid[q], SIGKILL);
    }
}

static void *watch(void *arg)
{
    LaunchChildren *k = arg;
    for (;;) {
        pthread_mutex_lock(&k->mu);
        reap(k);
        int stop = k->stop, running = 0;
        for (int r = 1; r < k->n; r++) running += k->pid[r] != 0;
        pthread_mutex_unlock(&k->mu);
        if (stop || !running) return NULL;
        pause_seconds(0.02);
    }
}

LaunchChildren *launch_spawn(int n, char *const argv[], Error *e)
{
    if (n < 1) { fail(e, "--devices %d: want at least 1", n); return NULL; }
    LaunchChildren *k = calloc(1, sizeof *k);
    char exe[4096];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    int port = free_port(e);
    if (!k || el < 0 || port < 0) {
        if (!k) fail(e, "--devices: out of memory");
        else if (el < 0) fail(e, "--devices: cannot find this program (/proc/self/exe): %s", strerror(errno));
        free(k);
        return NULL;
    }
    exe[el] = 0;
    k->n = n;
    pthread_mutex_init(&k->mu, NULL);
    k->pid = calloc((size_t)n, sizeof *k->pid);
    size_t nenv = 0;
    while (environ[nenv]) nenv++;
    char **env = calloc(nenv + 8, sizeof *env);
    char vars[6][64];
    if (!k->pid || !env) {
        free(env);
        launch_children_free(k);
        fail(e, "--devices: out of memory");
        return NULL;
    }
    size_t m = 0;
    for (size_t i = 0; i < nenv; i++)
        if (!is_launcher_var(environ[i])) env[m++] = environ[i];
    for (int i = 0; i < 6; i++) env[m + (size_t)i] = vars[i];
    snprintf(vars[1], sizeof vars[1], "WORLD_SIZE=%d", n);
    snprintf(vars[3], sizeof vars[3], "LOCAL_WORLD_SIZE=%d", n);
    snprintf(vars[4], sizeof vars[4], "MASTER_ADDR=127.0.0.1");
    snprintf(vars[5], sizeof vars[5], "MASTER_PORT=%d", port);
    pid_t parent = getpid();
    for (int r = 1; r < n; r++) {
        snprintf(vars[0], sizeof vars[0], "RANK=%d", r);
        snprintf(vars[2], sizeof vars[2], "LOCAL_RANK=%d", r);
        pid_t p = fork();
        if (p == 0) {
            /* only async-signal-safe calls between fork and exec */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(1);
            execve(exe, argv, env);
            static const char msg[] = "rank: cannot execute this program again (execve failed)\n";
            ssize_t ignored = write(2, msg, sizeof msg - 1);
            (void)ignored;
            _exit(127);
        }
        if (p < 0) {
            fail(e, "--devices: cannot start rank %d: %s", r, strerror(errno));
            free(env);
            launch_children_free(k);
            return NULL;
        }
        k->pid[r] = p;
    }
    free(env);
    /* this process is rank 0 of the same world */
    for (size_t i = 0; i < N_LAUNCHER_VARS; i++) unsetenv(launcher_vars[i]);
    char num[16];
    setenv("RANK", "0", 1);
    setenv("LOCAL_RANK", "0", 1);
    snprintf(num, sizeof num, "%d", n);
    setenv("WORLD_SIZE", num, 1);
    setenv("LOCAL_WORLD_SIZE", num, 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    snprintf(num, sizeof num, "%d", port);
    setenv("MASTER_PORT", num, 1);
    if (n > 1 && pthread_create(&k->watcher, NULL, watch, k) == 0) k->watching = 1;
    else if (n > 1) {
        fail(e, "--devices: cannot start the thread that watches the ranks");
        launch_children_free(k);
        return NULL;
    }
    return k;
}

int launch_children_check(void *kids, Error *e)
{
    LaunchChildren *k = kids;
    if (!k) return 0;
    pthread_mutex_lock(&k->mu);
    int failed = k->failed;
    if (failed) fail(e, "%s", k->why);
    pthread_mutex_unlock(&k->mu);
    return failed ? -1 : 0;
}

int launch_children_wait(LaunchChildren *k, double timeout, Error *e)
{
    double deadline = now_seconds() + timeout;
    for (;;) {
        pthread_mutex_lock(&k->mu);
        reap(k);
        int running = 0;
        char list[200] = "";
        size_t len = 0;
        for (int r = 1; r < k->n; r++)
            if (k->pid[r]) {
                running++;
                if (len < sizeof list - 16) len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", len ? ", " : "", r);
            }
        int failed = k->failed;
        if (failed) fail(e, "%s", k->why);
        pthread_mutex_unlock(&k->mu);
        if (failed) return -1;
        if (!running) return 0;
        if (remaining(deadline) <= 0)
            return fail(e, "rank%s %s still running %.0f s after rank 0 finished", running > 1 ? "s" : "", list, timeout);
        pause_seconds(0.02);
    }
}

void launch_children_free(LaunchChildren *k)
{
    if (!k) return;
    if (k->watching) {
        pthread_mutex_lock(&k->mu);
        k->stop = 1;
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->watcher, NULL);
    }
    for (int r = 1; k->pid && r < k->n; r++)
        if (k->pid[r]) {
            kill(k->pid[r], SIGKILL);
            waitpid(k->pid[r], NULL, 0);
        }
    pthread_mutex_destroy(&k->mu);
    free(k->pid);
    free(k);
}

/* ---- the communicator for this launch ---- */

Comm *launch_open_comm(const LaunchEnv *l, LaunchChildren *kids, double timeout, Error *e)
{
    if (l->size == 1) return comm_single_open(e);
    int mpi = !strcmp(l->source, "OpenMPI") || !strcmp(l->source, "MPICH") ||
              (!strcmp(l->source, "Slurm") && !l->master_port && comm_mpi_built());
    Comm *c;
    if (mpi) {
        if (!(c = comm_mpi_open(timeout, e))) return NULL;
        if (comm_size(c) != l->size || comm_rank(c) != l->rank) {
            fail(e, "MPI says rank %d of %d, the launcher (%s) rank %d of %d: is this program built with another MPI "
                 "than the launcher's?", comm_rank(c), comm_size(c), l->source, l->rank, l->size);
            comm_close(c);
            return NULL;
        }
    } else {
        if (!l->master_addr[0] || !l->master_port)
            return fail(e, "%s started %d ranks: set MASTER_ADDR and MASTER_PORT (rank 0's host and a free port)%s",
                        l->source, l->size, comm_mpi_built() ? "" : ", or rebuild with MPI"), NULL;
        int *fds = malloc((size_t)l->size * sizeof *fds);
        if (!fds) return fail(e, "out of memory"), NULL;
        if (launch_connect_tcp(l, timeout, fds, e) < 0) { free(fds); return NULL; }
        c = comm_tcp_open(l->rank, l->size, l->local_rank, fds, timeout, e);
        free(fds);
        if (!c) return NULL;
    }
    if (kids) comm_set_abort_check(c, launch_children_check, kids);
    return c;
}

int launch_share_id(const LaunchEnv *l, Comm *host, const char *init_file, void *id, size_t len, double timeout, Error *e)
{
    if (init_file) return launch_share_id_file(init_file, l->rank, l->size, id, len, timeout, e);
    if (host && comm_size(host) > 1) return comm_broadcast(host, id, len, 0, e);
    return launch_share_id_tcp(l, id, len, timeout, e);
}
