#define _GNU_SOURCE   /* O_TMPFILE, linkat, renameat2 */
#include "util.h"

#include <dirent.h>
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

/* ---- cleanup registry: named temporaries to unlink if we die ---- */
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
    for (int i = 0; p && i < MAX_LIVE; i++)
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

static const int cleanup_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };

void cleanup_install(void)
{
    static int done;
    if (done) return;
    done = 1;
    atexit(unlink_live);
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof *cleanup_signals; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(cleanup_signals[i], &sa, NULL);
    }
}

int make_parent_dirs(const char *path, char **made, Error *e)
{
    if (made) *made = NULL;
    char *copy = strdup(path);
    if (!copy) return fail(e, "out of memory");
    char *dir = dirname(copy);   /* may be a static "." or "/": never written to */
    if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0) { free(copy); return 0; }
    for (char *p = dir + 1; ; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = 0;
        if (mkdir(dir, 0777) == 0) {
            if (made && !*made && !(*made = strdup(dir))) { free(copy); return fail(e, "out of memory"); }
        } else if (errno != EEXIST) {
            int err = errno;
            int r = fail(e, "%s: cannot create directory %s: %s", path, dir, strerror(err));
            free(copy);
            if (made) { remove_made_dirs(path, *made); *made = NULL; }
            return r;
        }
        if (!c) break;
        *p = c;
    }
    free(copy);
    return 0;
}

static char *dir_of(const char *path)
{
    char *copy = strdup(path), *d = copy ? strdup(dirname(copy)) : NULL;
    free(copy);
    return d;
}

void remove_made_dirs(const char *path, char *made)
{
    struct stat top;
    /* Compared by inode, not by spelling ("a//b" and "a/b" are one directory). */
    if (!made || stat(made, &top) != 0) { free(made); return; }
    char *d = dir_of(path);
    while (d && strcmp(d, ".") && strcmp(d, "/")) {
        struct stat st;
        int exists = stat(d, &st) == 0;
        int is_top = exists && st.st_dev == top.st_dev && st.st_ino == top.st_ino;
        /* A deeper parent that does not exist was never made (mkdir failed part-way):
         * keep climbing.  One that cannot be removed is not empty: someone else's now. */
        if (exists && (rmdir(d) != 0 || is_top)) break;
        char *up = dir_of(d);
        free(d);
        d = up;
    }
    free(d);
    free(made);
}

int fsync_parent_dir(const char *path, Error *e)
{
    char *dir = dir_of(path);
    if (!dir) return fail(e, "out of memory");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return fail(e, "%s: cannot open directory: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    /* Some filesystems refuse fsync on directories; that is not data loss. */
    if (rc && errno != EINVAL && errno != EROFS)
        return fail(e, "%s: fsync of directory failed: %s", path, strerror(errno));
    return 0;
}

/* ---- atomic output (util.h; doc/atomic-output.md) ---- */

enum { TARGET_NEW, TARGET_REGULAR, TARGET_SPECIAL, TARGET_DESCRIPTOR, TARGET_DIRECTORY };
/* How far atomic_commit_all got with one file, so that it can be undone. */
enum { PUB_NONE, PUB_LINKED, PUB_EXCHANGED, PUB_RENAMED };

/* "/proc/PID/fd" or "/proc/PID/task/TID/fd" (realpath spells /proc/self so):
 * a directory of magic links to open descriptions. */
static int is_fd_dir(const char *real, long *pid)
{
    if (strncmp(real, "/proc/", 6) != 0) return 0;
    char *end;
    long p = strtol(real + 6, &end, 10);
    if (end == real + 6) return 0;
    if (strncmp(end, "/task/", 6) == 0) {
        char *tid_end;
        strtol(end + 6, &tid_end, 10);
        if (tid_end == end + 6) return 0;
        end = tid_end;
    }
    if (strcmp(end, "/fd") != 0) return 0;
    *pid = p;
    return 1;
}

/* Follow the symlinks of path's last component (each hop relative to the link's
 * own directory) to what a write would reach.  A hop into a /proc/PID/fd
 * directory ends the walk: that link stands for a descriptor (a pipe, a
 * terminal, a file open elsewhere), and renaming over it would write nowhere
 * useful, or, as root, replace /dev/stdout itself.  *own_fd is the descriptor
 * number when it is one of ours, else -1. */
static int resolve_target(const char *path, char **target, int *own_fd, Error *e)
{
    *target = NULL;
    *own_fd = -1;
    char *p = strdup(path);
    for (int hop = 0; p && hop < 40; hop++) {
        char *dir = dir_of(p);
        if (!dir) break;
        char *real = realpath(dir, NULL);
        long pid;
        if (real && is_fd_dir(real, &pid)) {
            free(real);
            free(dir);
            char *base = strrchr(p, '/') ? strrchr(p, '/') + 1 : p, *end;
            long fd = strtol(base, &end, 10);
            if (pid == (long)getpid() && end != base && !*end && fd >= 0 && fd <= INT_MAX) *own_fd = (int)fd;
            *target = p;
            return TARGET_DESCRIPTOR;
        }
        free(real);
        struct stat st;
        if (lstat(p, &st) != 0) {
            int err = errno;
            free(dir);
            if (err == ENOENT) { *target = p; return TARGET_NEW; }   /* also a dangling link's target */
            free(p);
            return fail(e, "%s: %s", path, strerror(err));
        }
        if (!S_ISLNK(st.st_mode)) {
            free(dir);
            *target = p;
            return S_ISREG(st.st_mode) ? TARGET_REGULAR : S_ISDIR(st.st_mode) ? TARGET_DIRECTORY : TARGET_SPECIAL;
        }
        char link[PATH_MAX];
        ssize_t n = readlink(p, link, sizeof link - 1);
        if (n < 0) {
            int err = errno;
            free(dir);
            free(p);
            return fail(e, "%s: %s", path, strerror(err));
        }
        link[n] = 0;
        free(p);
        p = NULL;
        if (link[0] == '/') p = strdup(link);
        else if ((p = malloc(strlen(dir) + strlen(link) + 2))) sprintf(p, "%s/%s", dir, link);
        free(dir);
    }
    if (!p) return fail(e, "out of memory");
    free(p);
    return fail(e, "%s: %s", path, strerror(ELOOP));
}

/* A temporary that SIGKILL left between link and rename: ".BASE.tmp.PID" beside
 * the target, whose PID is gone.  (A PID alive in another PID namespace keeps
 * its file; the cost of that is a stale file, never a lost one.) */
/* How much of BASE a replacing temporary's name ".BASE.tmp.PID" keeps: all of it,
 * unless that would pass NAME_MAX (255 bytes); then a prefix, so a long name can
 * still be replaced.  Two targets sharing that prefix may sweep each other's dead
 * temporaries, which is harmless. */
static size_t temp_base_len(const char *base)
{
    size_t n = strlen(base), room = 255 - (1 + 5 + 20);
    return n < room ? n : room;
}

static void remove_stale_temps(const char *target)
{
    char *dir = dir_of(target);
    const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    DIR *d = dir ? opendir(dir) : NULL;
    free(dir);
    if (!d) return;
    size_t bl = temp_base_len(base);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *s = de->d_name;
        if (s[0] != '.' || strncmp(s + 1, base, bl) != 0 || strncmp(s + 1 + bl, ".tmp.", 5) != 0) continue;
        char *end;
        long pid = strtol(s + 6 + bl, &end, 10);
        if (end == s + 6 + bl || *end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        unlinkat(dirfd(d), s, 0);
    }
    closedir(d);
}

static int open_direct(AtomicFile *f, int kind, int own_fd, Error *e)
{
    /* Our own descriptor is dup'ed, not reopened: reopening /proc/self/fd/1 needs
     * permission on the pipe or terminal behind it, and would lose O_APPEND. */
    int fd = own_fd >= 0 ? fcntl(own_fd, F_DUPFD_CLOEXEC, 0)
                         : open(f->target, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    int r = 0;
    struct stat st;
    if (fd < 0) r = fail(e, "%s: cannot open: %s", f->path, strerror(errno));
    else if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && own_fd < 0) {
        /* A device replaced by a file since we looked: never write a file in place. */
        if (kind == TARGET_SPECIAL) r = fail(e, "%s: changed while being opened", f->path);
        /* another process's file: truncated as the shell's '>' would */
        else if (ftruncate(fd, 0) != 0) r = fail(e, "%s: cannot truncate: %s", f->path, strerror(errno));
    }
    if (!r && !(f->fp = fdopen(fd, "wb"))) r = fail(e, "%s: out of memory", f->path);
    if (r) {
        if (fd >= 0) close(fd);
        atomic_abort(f);
        return r;
    }
    f->direct = 1;
    return 0;
}

int atomic_open(AtomicFile *f, const char *path, int flags, Error *e)
{
    memset(f, 0, sizeof *f);
    f->overwrite = (flags & ATOMIC_OVERWRITE) != 0;
    int own_fd, kind = resolve_target(path, &f->target, &own_fd, e);
    if (kind < 0) return -1;
    if (!(f->path = strdup(path))) { atomic_abort(f); return fail(e, "out of memory"); }
    if (kind == TARGET_DIRECTORY) { atomic_abort(f); return fail(e, "%s: is a directory", path); }
    if (kind == TARGET_SPECIAL || kind == TARGET_DESCRIPTOR) {
        if (flags & ATOMIC_REGULAR_ONLY) { atomic_abort(f); return fail(e, "%s: not a regular file", path); }
        return open_direct(f, kind, own_fd, e);
    }
    if (kind == TARGET_REGULAR && !f->overwrite) {
        atomic_abort(f);
        return fail(e, "%s: exists (use -f to overwrite)", path);
    }
    remove_stale_temps(f->target);
    char *dir = dir_of(f->target);
    const char *base = strrchr(f->target, '/') ? strrchr(f->target, '/') + 1 : f->target;
    size_t n = (dir ? strlen(dir) : 0) + strlen(base) + 40;
    if (dir && (f->named = malloc(n)))
        snprintf(f->named, n, "%s/.%.*s.tmp.%ld", dir, (int)temp_base_len(base), base, (long)getpid());
    int fd = dir ? open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0666) : -1;
    free(dir);
    if (!f->named) { if (fd >= 0) close(fd); atomic_abort(f); return fail(e, "out of memory"); }
    if (fd >= 0) {
        f->unnamed = 1;
        if ((f->tmp = malloc(32))) snprintf(f->tmp, 32, "/proc/self/fd/%d", fd);
    } else {   /* no O_TMPFILE here: named from the start */
        unlink(f->named);   /* a leftover of a dead process that had our PID */
        fd = open(f->named, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) live_add(f->named);
        f->tmp = strdup(f->named);
    }
    if (fd < 0) {
        int err = errno;
        atomic_abort(f);
        return fail(e, "%s: cannot create: %s", path, strerror(err));
    }
    if (!f->tmp || !(f->fp = fdopen(fd, "w+b"))) {
        close(fd);
        atomic_abort(f);
        return fail(e, "out of memory");
    }
    return 0;
}

int atomic_sync(AtomicFile *f, Error *e)
{
    if (f->synced) return 0;
    errno = 0;
    int err = 0;
    if (fflush(f->fp) != 0 || ferror(f->fp)) err = errno ? errno : EIO;
    else if (!f->direct && fsync(fileno(f->fp)) != 0) err = errno;
    if (err) {
        int r = fail(e, "%s: write failed: %s", f->path, strerror(err));
        atomic_abort(f);
        return r;
    }
    f->synced = 1;
    return 0;
}

/* Put one synced temporary in place.  Fills f->state for unpublish. */
static int publish(AtomicFile *f, Error *e)
{
    struct stat st;
    /* It may have changed since atomic_open: never put a device or FIFO aside. */
    if (lstat(f->target, &st) == 0 && !S_ISREG(st.st_mode))
        return fail(e, "%s: no longer a regular file; not replaced", f->path);
    if (f->unnamed) {
        /* A free name gets the file at once: no named temporary ever exists. */
        if (linkat(AT_FDCWD, f->tmp, AT_FDCWD, f->target, AT_SYMLINK_FOLLOW) == 0) {
            f->state = PUB_LINKED;
            return 0;
        }
        if (errno != EEXIST) return fail(e, "%s: cannot create: %s", f->path, strerror(errno));
        if (!f->overwrite) return fail(e, "%s: exists (use -f to overwrite)", f->path);
        unlink(f->named);   /* a leftover of a dead process that had our PID */
        if (linkat(AT_FDCWD, f->tmp, AT_FDCWD, f->named, AT_SYMLINK_FOLLOW) != 0)
            return fail(e, "%s: cannot create: %s", f->path, strerror(errno));
        f->unnamed = 0;
        live_add(f->named);
    } else if (!f->overwrite) {
        if (renameat2(AT_FDCWD, f->named, AT_FDCWD, f->target, RENAME_NOREPLACE) == 0) {
            live_del(f->named);
            f->state = PUB_LINKED;
            return 0;
        }
        if (errno == EEXIST) return fail(e, "%s: exists (use -f to overwrite)", f->path);
        if (errno != EINVAL) return fail(e, "%s: rename failed: %s", f->path, strerror(errno));
        if (access(f->target, F_OK) == 0) return fail(e, "%s: exists (use -f to overwrite)", f->path);
    }
    /* The exchange keeps the old file (now under f->named) until every file of
     * the commit is in place, so a later failure can put it back. */
    if (renameat2(AT_FDCWD, f->named, AT_FDCWD, f->target, RENAME_EXCHANGE) == 0) {
        f->state = PUB_EXCHANGED;
        return 0;
    }
    /* ENOENT: the target went away meanwhile.  EINVAL: no RENAME_EXCHANGE on this
     * filesystem; a plain rename cannot be undone. */
    if (errno != ENOENT && errno != EINVAL) return fail(e, "%s: rename failed: %s", f->path, strerror(errno));
    if (rename(f->named, f->target) != 0) return fail(e, "%s: rename failed: %s", f->path, strerror(errno));
    live_del(f->named);
    f->state = PUB_RENAMED;
    return 0;
}

static void unpublish(AtomicFile *f)
{
    if (f->state == PUB_LINKED) unlink(f->target);
    else if (f->state == PUB_EXCHANGED)   /* the old file back; the new one to f->named, removed by abort */
        renameat2(AT_FDCWD, f->named, AT_FDCWD, f->target, RENAME_EXCHANGE);
    f->state = PUB_NONE;
}

/* After every file is in place: drop the old file, close, fsync the directory. */
static int finish(AtomicFile *f, Error *e)
{
    int rc = 0;
    if (f->state == PUB_EXCHANGED) unlink(f->named);
    live_del(f->named);
    if (fclose(f->fp) != 0 && f->direct) rc = fail(e, "%s: write failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (!rc && !f->direct) rc = fsync_parent_dir(f->target, e);
    free(f->path); free(f->target); free(f->tmp); free(f->named);
    memset(f, 0, sizeof *f);
    return rc;
}

int atomic_commit_all(AtomicFile **f, int n, Error *e)
{
    for (int i = 0; i < n; i++)
        if (atomic_sync(f[i], e)) {
            for (int k = 0; k < n; k++) atomic_abort(f[k]);
            return -1;
        }
    /* No signal handler between the first and the last rename: it would remove
     * the old files kept for an undo, leaving a mix. */
    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof *cleanup_signals; i++) sigaddset(&block, cleanup_signals[i]);
    sigprocmask(SIG_BLOCK, &block, &old);
    int placed = 0;
    while (placed < n && (f[placed]->direct || publish(f[placed], e) == 0)) placed++;
    int rc = 0;
    if (placed < n) {
        while (placed-- > 0) unpublish(f[placed]);
        for (int k = 0; k < n; k++) atomic_abort(f[k]);
        rc = -1;
    } else {
        for (int k = 0; k < n; k++)
            if (finish(f[k], e)) rc = -1;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int atomic_commit(AtomicFile *f, Error *e)
{
    return atomic_commit_all(&f, 1, e);
}

void atomic_abort(AtomicFile *f)
{
    if (f->fp) fclose(f->fp);   /* an unnamed temporary vanishes here */
    if (!f->direct && !f->unnamed && f->named) { unlink(f->named); live_del(f->named); }
    free(f->path); free(f->target); free(f->tmp); free(f->named);
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

/* "tool: message" on stderr, without the newline: the one prefix of every message. */
/* "tool: message" (and end) in one write: processes sharing a stderr (the ranks of a
 * data-parallel run) must not interleave inside a line. */
static void vwarn_end(const char *fmt, va_list ap, const char *end)
{
    char line[2048];
    int n = snprintf(line, sizeof line, "%s: ", tool_name);
    if (n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (n < (int)sizeof line) n += snprintf(line + n, sizeof line - (size_t)n, "%s", end);
    fputs(line, stderr);
    if (n >= (int)sizeof line) fputs(end, stderr);   /* truncated: still end the line */
}

void tool_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn_end(fmt, ap, "\n");
    va_end(ap);
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
    va_start(ap, fmt);
    vwarn_end(fmt, ap, "\n");
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", tool_name);
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
