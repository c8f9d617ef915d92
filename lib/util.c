#define _GNU_SOURCE   /* O_TMPFILE, linkat */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef DATADIR
#define DATADIR "/usr/local/share/rwkv7c"
#endif

int fail(Error *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int fail_prefix(Error *e, const char *fmt, ...)
{
    if (!e) return -1;
    char old[sizeof e->msg], pre[sizeof e->msg / 2];
    memcpy(old, e->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    old[sizeof old / 2 - 4] = 0;   /* keep both parts within msg */
    snprintf(e->msg, sizeof e->msg, "%s: %s", pre, old);
    return -1;
}

/* ---- cleanup registry: temporaries to unlink if we die ---- */
#define MAX_LIVE 64
static char *live_tmp[MAX_LIVE];
static volatile sig_atomic_t live_n;

static void live_add(char *p)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (!live_tmp[i]) { live_tmp[i] = p; live_n++; return; }
}
static void live_del(char *p)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live_tmp[i] == p) { live_tmp[i] = NULL; live_n--; return; }
}
static void unlink_live(void)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live_tmp[i]) unlink(live_tmp[i]);
}
static void on_signal(int sig)
{
    unlink_live();   /* unlink is async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

void cleanup_install(void)
{
    static int done;
    if (done) return;
    done = 1;
    atexit(unlink_live);
    int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(sigs[i], &sa, NULL);
    }
}

int make_parent_dirs(const char *path, Error *e)
{
    char *copy = strdup(path);
    if (!copy) return fail(e, "out of memory");
    char *dir = dirname(copy);   /* may be a static "." or "/": never written to */
    if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0) { free(copy); return 0; }
    for (char *p = dir + 1; ; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = 0;
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            int err = errno;
            int r = fail(e, "%s: cannot create directory %s: %s", path, dir, strerror(err));
            free(copy);
            return r;
        }
        if (!c) break;
        *p = c;
    }
    free(copy);
    return 0;
}

int fsync_parent_dir(const char *path, Error *e)
{
    char *copy = strdup(path);
    if (!copy) return fail(e, "out of memory");
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return fail(e, "%s: cannot open directory: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    /* Some filesystems refuse fsync on directories; that is not data loss. */
    if (rc && errno != EINVAL && errno != EROFS)
        return fail(e, "%s: fsync of directory failed: %s", path, strerror(errno));
    return 0;
}

static char *named_tmp(const char *path)
{
    size_t n = strlen(path) + 32;
    char *t = malloc(n);
    if (t) snprintf(t, n, "%s.tmp.%ld", path, (long)getpid());
    return t;
}

int atomic_open(AtomicFile *f, const char *path, int overwrite, Error *e)
{
    memset(f, 0, sizeof *f);
    if (!overwrite && access(path, F_OK) == 0)
        return fail(e, "%s: exists (use -f to overwrite)", path);
    f->path = strdup(path);
    char *dir = strdup(path);
    if (!f->path || !dir) { free(dir); atomic_abort(f); return fail(e, "out of memory"); }
    int fd = open(dirname(dir), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
    free(dir);
    if (fd >= 0) {
        f->unnamed = 1;
        f->tmp = malloc(32);
        if (f->tmp) snprintf(f->tmp, 32, "/proc/self/fd/%d", fd);
    } else {
        f->tmp = named_tmp(path);
        if (f->tmp) fd = open(f->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (!f->tmp) { if (fd >= 0) close(fd); atomic_abort(f); return fail(e, "out of memory"); }
    if (fd < 0) {
        int err = errno;
        free(f->tmp); f->tmp = NULL;
        atomic_abort(f);
        return fail(e, "%s: cannot create: %s", path, strerror(err));
    }
    if (!f->unnamed) live_add(f->tmp);
    f->fp = fdopen(fd, "w+b");
    if (!f->fp) { close(fd); atomic_abort(f); return fail(e, "%s: fdopen failed", path); }
    return 0;
}

int atomic_commit(AtomicFile *f, Error *e)
{
    int err = 0;
    if (fflush(f->fp) != 0) err = errno;
    else if (fsync(fileno(f->fp)) != 0) err = errno;
    if (!err && f->unnamed) {
        /* Give the unnamed file a name, then rename it into place as usual. */
        char *named = named_tmp(f->path);
        if (!named) err = ENOMEM;
        else if (linkat(AT_FDCWD, f->tmp, AT_FDCWD, named, AT_SYMLINK_FOLLOW) != 0) { err = errno; free(named); }
        else { free(f->tmp); f->tmp = named; f->unnamed = 0; live_add(f->tmp); }
    }
    if (fclose(f->fp) != 0 && !err) err = errno;
    f->fp = NULL;
    if (err) {
        int r = fail(e, "%s: write failed: %s", f->path, strerror(err));
        atomic_abort(f);
        return r;
    }
    if (rename(f->tmp, f->path) != 0) {
        int r = fail(e, "%s: rename failed: %s", f->path, strerror(errno));
        atomic_abort(f);
        return r;
    }
    live_del(f->tmp);
    int rc = fsync_parent_dir(f->path, e);
    free(f->tmp); free(f->path);
    f->tmp = f->path = NULL;
    return rc;
}

void atomic_abort(AtomicFile *f)
{
    if (f->fp) fclose(f->fp);   /* an unnamed temporary vanishes here */
    if (f->tmp && !f->unnamed) { unlink(f->tmp); live_del(f->tmp); }
    free(f->tmp); free(f->path);
    memset(f, 0, sizeof *f);
}

/* ---- tool messages ---- */
const char *tool_name = "rwkv7c";

void tool_init(const char *name)
{
    tool_name = name;
    cleanup_install();
    /* Past RLIMIT_FSIZE, let write() fail with EFBIG so the tool reports it and
     * cleans up, instead of dying silently of SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
}

void tool_warn(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", tool_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int open_regular(const char *path, Error *e)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return fail(e, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) { int err = errno; close(fd); return fail(e, "%s: %s", path, strerror(err)); }
    if (!S_ISREG(st.st_mode)) { close(fd); return fail(e, "%s: not a regular file", path); }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK)) {
        int err = errno; close(fd); return fail(e, "%s: %s", path, strerror(err));
    }
    return fd;
}

int tool_version(void)
{
    printf("%s (rwkv7c) %s\n", tool_name, RWKV7C_VERSION);
    return close_stdout();
}

int bad_option(const char *opt, const char *value, const char *want)
{
    while (*opt == '-') opt++;
    fprintf(stderr, "%s: invalid value '%s' for --%s (want %s)\n", tool_name, value ? value : "", opt, want);
    return 2;
}

int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", tool_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", tool_name);
    return 2;
}

int report(const Error *e)
{
    fprintf(stderr, "%s: %s\n", tool_name, e->msg);
    return 1;
}

int close_stdout(void)
{
    /* errno is only meaningful for a call that just failed: an error flag left
     * by an earlier write has no reason we can still name. */
    errno = 0;
    int flush_failed = fflush(stdout) != 0;
    int err = flush_failed ? errno : 0;
    int earlier = ferror(stdout);
    if (fclose(stdout) != 0 && !err) err = errno;
    if (!flush_failed && !earlier && !err) return 0;
    if (err == EPIPE) return 1;
    if (err) fprintf(stderr, "%s: write error on standard output: %s\n", tool_name, strerror(err));
    else fprintf(stderr, "%s: write error on standard output\n", tool_name);
    return 1;
}

int progress_wanted(void) { return isatty(2); }

/* ---- paths ---- */
char *exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = 0;
    return strdup(dirname(buf));
}

char *find_data_file(const char *name, Error *e)
{
    char path[PATH_MAX];
    const char *env = getenv("RWKV7C_DATA");
    if (env && *env) {
        snprintf(path, sizeof path, "%s/%s", env, name);
        if (access(path, R_OK) == 0) return strdup(path);
    }
    char *dir = exe_dir();
    if (dir) {
        snprintf(path, sizeof path, "%s/../share/rwkv7c/%s", dir, name);
        free(dir);
        if (access(path, R_OK) == 0) return strdup(path);
    }
    snprintf(path, sizeof path, "%s/%s", DATADIR, name);
    if (access(path, R_OK) == 0) return strdup(path);
    fail(e, "cannot find %s (looked in $RWKV7C_DATA, next to the executable, and %s); "
            "pass its path explicitly", name, DATADIR);
    return NULL;
}

/* ---- parsing ---- */
int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}


double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- byte counts (moved from extshuf.c: general, used by jsonl-shuf -m) ---- */

int parse_size(const char *text, uint64_t *out)
{
    const char *p = text;
    uint64_t v = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10)) return -1;
        v = v * 10 + d;
    }
    int shift = 0;
    switch (*p) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    case 0: break;
    default: return -1;
    }
    if (shift) {
        p++;
        if (*p == 'i') p++;
        if (*p == 'B') p++;
    }
    if (*p) return -1;
    if (shift && v > (UINT64_MAX >> shift)) return -1;
    *out = v << shift;
    return 0;
}
