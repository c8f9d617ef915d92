/* util.h: errors, atomic output files, and small helpers shared by every tool.
 *
 * Library functions never exit: they return -1 (or NULL) and describe the
 * problem in an Error, which bin/ prints as "tool: message". */
#ifndef RWKV7C_UTIL_H
#define RWKV7C_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RWKV7C_VERSION "0.1.0"

typedef struct { char msg[1024]; } Error;

/* Set e->msg (printf-style) and return -1, so callers can `return fail(e, ...)`. */
int fail(Error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix an existing message: "prefix: old message". Returns -1. */
int fail_prefix(Error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- atomic output ----  (the rules and their reasons: doc/atomic-output.md)
 *
 * PATH is looked at before anything is written:
 *  - a regular file, absent, or a symlink (chain) ending at one: writes go to an
 *    unnamed temporary (O_TMPFILE) in the target's directory; commit flushes and
 *    fsyncs it, then links it straight to the target's name when that is free, or
 *    else names it ".BASE.tmp.PID" and renames it over the target; then fsyncs the
 *    directory.  A symlink stays: the file it leads to is replaced.  Until commit
 *    the target is untouched.  An existing target needs ATOMIC_OVERWRITE.
 *  - a device, FIFO or socket, or anything reached through /proc/PID/fd, /dev/fd
 *    or /dev/std{out,err} (a descriptor): written directly, no temporary, no
 *    rename, no -f needed (a FIFO open waits for its reader).  One of our own
 *    descriptors (/dev/stdout) is dup'ed, so it works for any user and keeps its
 *    offset and append mode.  A failed run may have written part of its output.
 *  - a directory: refused.
 * A named temporary exists only between link and rename; one that a SIGKILL left
 * there is removed by the next atomic_open of the same target (its PID is dead).
 * Where O_TMPFILE is unsupported the temporary has that name from the start.
 * Live named temporaries are unlinked at exit and on SIGINT/SIGTERM/SIGHUP/SIGPIPE
 * (see cleanup_install). */
#define ATOMIC_OVERWRITE    1   /* replace an existing regular file (-f) */
#define ATOMIC_REGULAR_ONLY 2   /* refuse direct targets ("not a regular file") */
typedef struct {
    FILE *fp;
    char *path;      /* as given, for messages */
    char *target;    /* the file replaced: path with its symlinks followed */
    char *tmp;       /* reopens the temporary: /proc/self/fd/N, or the named temporary */
    char *named;     /* ".BASE.tmp.PID" beside target, once (or while) it exists */
    int   unnamed;   /* the temporary is an O_TMPFILE */
    int   direct;    /* fp writes to the target itself */
    int   overwrite;
    int   synced;    /* atomic_sync done */
    int   state;     /* publication progress (atomic_commit_all's undo) */
} AtomicFile;

/* flags: ATOMIC_OVERWRITE | ATOMIC_REGULAR_ONLY (0 or 1 also work as before). */
int  atomic_open(AtomicFile *f, const char *path, int flags, Error *e);
/* Flush and fsync; the target is not touched.  On failure f is aborted. */
int  atomic_sync(AtomicFile *f, Error *e);
int  atomic_commit(AtomicFile *f, Error *e);
/* Commit several files as one: every file is synced before any target is
 * touched, then they are put in place in order; if one cannot be, those
 * already placed are put back (RENAME_EXCHANGE restores a replaced file) and
 * all are aborted.  Success or not, every f[i] is closed afterwards. */
int  atomic_commit_all(AtomicFile **f, int n, Error *e);
void atomic_abort(AtomicFile *f);
/* Install exit/signal handlers that unlink live temporaries.  Call once in main(). */
void cleanup_install(void);
/* Create the directories leading to path (like mkdir -p of its dirname).  When
 * made is not NULL, *made is set to the topmost directory created (malloc'd), or
 * NULL when none was, for remove_made_dirs. */
int  make_parent_dirs(const char *path, char **made, Error *e);
/* Undo make_parent_dirs after a failed run: rmdir path's parents up to and
 * including made, stopping at the first that is not empty.  Frees made. */
void remove_made_dirs(const char *path, char *made);
/* fsync the directory holding path (after a rename). */
int  fsync_parent_dir(const char *path, Error *e);

/* ---- input files ----
 * Open PATH read-only without blocking on a FIFO (O_NONBLOCK, cleared after the
 * check) and refuse anything that is not a regular file ("PATH: not a regular
 * file").  Every reader of a named file that must be mmap'd or sniffed uses it,
 * so a FIFO or device among the inputs never hangs a tool.  Returns the fd or -1. */
int  open_regular(const char *path, Error *e);

/* ---- tool messages (bin/ only) ---- */
extern const char *tool_name;
void tool_init(const char *name);   /* sets tool_name, installs cleanup */
void tool_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* "tool: msg\n" */
/* The one version line: "tool (rwkv7c) 0.1.0" on stdout.  Returns close_stdout(). */
int  tool_version(void);
/* The one phrasing of a bad option value, on stderr:
 * "tool: invalid value 'VALUE' for --OPT (want WANT)".  Returns 2 (usage). */
int  bad_option(const char *opt, const char *value, const char *want);
/* A usage error that is not a bad value: "tool: msg" and
 * "Try 'tool --help' for more information." on stderr.  Returns 2. */
int  usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "tool: e->msg" and return exit status 1. */
int  report(const Error *e);
/* Close stdout and report a failed write (e.g. a full disk).  Returns 0 or 1. */
int  close_stdout(void);
/* Progress goes to stderr only when it is a terminal. */
int  progress_wanted(void);

/* ---- paths and data files ---- */
/* Directory of the running executable (from /proc/self/exe), or NULL. Malloc'd. */
char *exe_dir(void);
/* Locate a shared data file: $RWKV7C_DATA/NAME, EXEDIR/../share/rwkv7c/NAME,
 * then the compile-time DATADIR.  Returns a malloc'd path or NULL (with e set). */
char *find_data_file(const char *name, Error *e);
#define DEFAULT_VOCAB "rwkv_vocab_v20230424.txt"

/* ---- checked arithmetic and parsing ---- */
int  parse_u64(const char *s, uint64_t *out);      /* 0 ok, -1 bad; accepts 1e6-free decimal only */
int  parse_i64(const char *s, int64_t *out);
int  parse_double(const char *s, double *out);
int  mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *out);

double now_seconds(void);          /* monotonic clock */

/* ---- little-endian loads (binary formats: zip, pickle) ---- */
static inline uint16_t load_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t load_le64(const uint8_t *p) { return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32; }

/* ---- byte counts ---- */
/* Parse a byte count with an optional K, M, G or T suffix (powers of 1024; "KiB"
 * and "KB" mean K too).  0 ok, -1 bad or overflowing. */
int  parse_size(const char *text, uint64_t *out);
#endif
