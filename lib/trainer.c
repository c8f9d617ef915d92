/* trainer.c: one rwkv-train run (trainer.h): starting point, run configuration,
 * the step loop, checkpoints, logs and signals. */
#define _GNU_SOURCE   /* pipe2, dup3 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "comm.h"
#include "gpuplan.h"
#include "binidx.h"
#include "growbuf.h"
#include "magic.h"
#include "model.h"
#include "model_io.h"
#include "optim.h"
#include "sampler.h"
#include "schedule.h"
#include "tbevents.h"
#include "trainer.h"
#include "trainstate.h"

void train_options_default(TrainOptions *o)
{
    memset(o, 0, sizeof *o);
    o->proj_dir = "out"; o->accelerator = "cpu"; o->precision = "bf16"; o->save_format = SAVE_SAFETENSORS;
    o->ctx_len = 1024; o->micro_bsz = 12; o->devices = 1; o->num_nodes = 1; o->epoch_save = 5;
    o->lr_init = 6e-4; o->lr_final = 1e-5; o->warmup_steps = -1; o->beta1 = 0.9; o->beta2 = 0.99;
    o->adam_eps = 1e-18; o->grad_clip = 1.0; o->save_minutes = 30; o->keep = 2; o->max_bad = 3;
}

/* ---------------------------------------------------------------- signals */
/* SIGINT, SIGTERM, SIGHUP (terminal gone) and SIGPIPE (stderr's reader gone)
 * all finish the current step, save and exit TRAIN_EXIT_SIGNAL. */
static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
#define N_STOP_SIGNALS (int)(sizeof stop_signals / sizeof *stop_signals)
static struct sigaction old_actions[N_STOP_SIGNALS];
static volatile sig_atomic_t stop_signal;
/* While the run waits for the wandb bridge at its end, a signal only cuts the
 * wait short: the state is saved by then, and the exit status stays the run's. */
static volatile sig_atomic_t waiting_for_bridge, bridge_wait_cut;

static void on_stop_signal(int sig)
{
    if (waiting_for_bridge && sig != SIGPIPE) {
        bridge_wait_cut = 1;
        return;
    }
    if (sig == SIGPIPE) {   /* every later message raises it again: never a reason to give up */
        if (!stop_signal) stop_signal = sig;
        return;
    }
    if (stop_signal && stop_signal != SIGPIPE) {   /* second signal: give up now; the cleanup handler unlinks temporaries */
        for (int i = 0; i < N_STOP_SIGNALS; i++)
            if (stop_signals[i] == sig) sigaction(sig, &old_actions[i], NULL);
        raise(sig);
        return;
    }
    stop_signal = sig;
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "SIGPIPE (stderr closed)";
}

/* A .bin truncated under the running trainer turns reads of its mapping into
 * SIGBUS; fill_batch catches that and reports it (D13 of the 2026-12 review). */
static sigjmp_buf batch_jump;
static volatile sig_atomic_t batch_guarded;

static void on_bus_error(int sig)
{
    if (batch_guarded) siglongjmp(batch_jump, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_STOP_SIGNALS; i++) sigaction(stop_signals[i], &sa, &old_actions[i]);
    sa.sa_handler = on_bus_error;
    sigaction(SIGBUS, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);   /* a file-size limit becomes a write error we report, not a crash */
}

/* ---------------------------------------------------------------- project directory */
typedef struct { uint64_t num; int pth; char *path; } Found;

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int cmp_found_desc(const void *x, const void *y)
{
    const Found *a = x, *b = y;
    if (a->num != b->num) return a->num < b->num ? 1 : -1;
    return a->pth - b->pth;   /* same N in both formats: the safetensors first */
}

/* Files "PREFIX<digits>.safetensors" (and "PREFIX<digits>.pth" if with_pth)
 * in dir, newest (largest number) first. */
static int list_numbered(const char *dir, const char *prefix, int with_pth, Found **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    size_t cap = 0;
    struct dirent *de;
    size_t pl = strlen(prefix);
    while ((de = readdir(d))) {
        const char *s = de->d_name;
        if (strncmp(s, prefix, pl)) continue;
        const char *p = s + pl;
        if (!isdigit((unsigned char)*p)) continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        int pth = with_pth && !strcmp(end, ".pth");
        if (errno || (strcmp(end, ".safetensors") && !pth)) continue;
        if (grow(out, &cap, (size_t)n + 1)) break;
        (*out)[n].num = v;
        (*out)[n].pth = pth;
        (*out)[n].path = path_join(dir, s);
        n++;
    }
    closedir(d);
    if (n) qsort(*out, (size_t)n, sizeof **out, cmp_found_desc);
    return n;
}

static void free_found(Found *f, int n)
{
    for (int i = 0; i < n; i++) free(f[i].path);
    free(f);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A run killed with SIGKILL leaves "NAME.tmp.PID" behind (never renamed, so
 * never used); remove those of our files whose writer is gone. */
static void remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        /* AtomicFile names a replacing temporary ".NAME.tmp.PID" (hidden);
         * older builds wrote "NAME.tmp.PID". */
        const char *s = de->d_name, *base = s + (s[0] == '.'), *t = strstr(base, ".safetensors.tmp.");
        size_t skip = 17;
        if (!t) { t = strstr(base, ".pth.tmp."); skip = 9; }
        if (!t || (strncmp(base, "train-state-", 12) && strncmp(base, "rwkv-", 5))) continue;
        char *end;
        long pid = strtol(t + skip, &end, 10);
        if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        char *p = path_join(dir, s);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
}

/* One trainer per project directory: a second one would write the same
 * states and logs, and its remove_stale_temps could delete the first one's
 * temporaries.  The lock lives as long as the descriptor (until exit). */
static int lock_proj_dir(const char *dir, int *fd_out, Error *e)
{
    *fd_out = -1;
    char *path = path_join(dir, ".rwkv-train.lock");
    if (!path) return fail(e, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) { fail(e, "cannot create %s: %s", path, strerror(errno)); free(path); return -1; }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int err = errno;
        if (err == EWOULDBLOCK) {
            char pid[32] = "";
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 0] = 0;
            pid[strcspn(pid, "\n")] = 0;
            long holder = atol(pid);   /* written by the holder if it is an rwkv-train; check it still lives */
            if (holder <= 0 || (kill((pid_t)holder, 0) && errno == ESRCH)) *pid = 0;
            fail(e, "--proj_dir %s is in use by another rwkv-train%s%s (%s is locked); wait for it to finish, or use "
                 "another --proj_dir", dir, *pid ? ", pid " : "", pid, path);
        } else
            fail(e, "cannot lock %s: %s", path, strerror(err));
        close(fd);
        free(path);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) { /* the pid is only for the message */ }
    free(path);
    *fd_out = fd;
    return 0;
}

static char *state_path(const char *dir, uint64_t step)
{
    char name[64];
    snprintf(name, sizeof name, "train-state-%08" PRIu64 ".safetensors", step);
    return path_join(dir, name);
}

/* ---------------------------------------------------------------- the run */
struct Trainer {
    TrainOptions *o;
    ModelConfig cfg;
    Layout layout;
    BinidxDataset ds;
    BinidxStats bst;
    Sampler smp;
    LrSchedule sched;
    AdamConfig adam;
    BackendConfig bc;
    TrainCounters c;
    Backend *be;
    Model host;            /* weights being saved as rwkv-E / rwkv-final */
    Model start;           /* starting weights (not resumed) */
    TrainState st;         /* the resumed state */
    int resumed;
    const char *source;    /* the starting file */
    /* The state after the newest step that left every value finite: what is
     * saved, and what a step that would make a value non-finite rolls back to. */
    float *good_w, *good_m, *good_v;
    float *new_w, *new_m, *new_v;   /* the state after a step, checked before it becomes good */
    /* With a backend that checks its own updates (Backend.checks_update) the good state is
     * fetched only when it is saved: host_stale says the backend is ahead of good_*;
     * state_lost, that a step cannot be taken back (so the run ends without saving). */
    int host_stale, state_lost;
    /* Data parallel: rank (0 writes every file), what the ranks agreed at the top of this step
     * (rank 0's clock for --save_minutes; a stop signal seen on another rank only). */
    int rank, minutes_due, stop_elsewhere;
    uint64_t data_xxh3, exit_step, world;
    dev_t bin_dev;         /* the .bin being trained on, to notice it being truncated */
    ino_t bin_ino;
    double last_save_time;
    const char *precision;
    int metrics_fd;        /* metrics.jsonl (O_APPEND), -1 when closed */
    char *metrics_path, *log_path, *final_path, *init_path;
    Found *states, *epochs;
    int nstates_all, nepochs;
    int lock_fd;           /* PROJ_DIR/.rwkv-train.lock, held for the run; -1 in a dry run */
    TbWriter tb;           /* --tensorboard; fd -1 when off or after a failed write */
    pid_t bridge_pid;      /* --wandb: the bridge process, 0 when none runs */
    int bridge_fd;         /* write end of the bridge's stdin; closing it says the run has ended */
    char *bridge_log;
};

static void vsay(const Trainer *tr, const char *fmt, va_list ap)
{
    if (!tr->o->message) return;
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    tr->o->message(line);
}

/* Notes and warnings: rank 0 speaks for all ranks. */
static void say(const Trainer *tr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const Trainer *tr, const char *fmt, ...)
{
    if (tr->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsay(tr, fmt, ap);
    va_end(ap);
}

/* Errors that stop the run: every rank says its own (the message handler names the rank). */
static void say_all(const Trainer *tr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say_all(const Trainer *tr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(tr, fmt, ap);
    va_end(ap);
}

/* A checkpoint that could not be read is passed over for an older one.  The
 * reader's message usually starts with the path already: name it once. */
static void warn_skipping(const Trainer *tr, const char *path, const char *why)
{
    size_t n = strlen(path);
    if (!strncmp(why, path, n) && why[n] == ':') why += n + strspn(why + n, ": ");
    say(tr, "warning: skipping %s: %s", path, why);
}

/* A message while the progress line is showing starts on a line of its own. */
static void end_progress_line(const Trainer *tr)
{
    if (tr->o->progress) fputc('\n', tr->o->progress);
}

static void fmt_double(char *b, size_t n, double v) { snprintf(b, n, "%a", v); }

/* The backend's state into good_* when the host copy is behind (checks_update backends). */
static int sync_host(Trainer *tr, Error *e)
{
    if (!tr->host_stale) return 0;
    if (tr->be->get_state(tr->be, tr->good_w, tr->good_m, tr->good_v, e)) return -1;
    tr->host_stale = 0;
    return 0;
}

/* Run configuration stored in the state, checked or inherited on resume. */
static int save_state(Trainer *tr, Error *e)
{
    char v[16][64];
    snprintf(v[0], 64, "%" PRIu64, tr->smp.ctx_len);
    snprintf(v[1], 64, "%" PRIu64, tr->smp.micro_bsz);
    snprintf(v[2], 64, "%" PRIu64, tr->smp.world);
    snprintf(v[3], 64, "%" PRIu64, tr->smp.magic_prime);
    snprintf(v[4], 64, "%" PRIu64, tr->sched.exit_tokens);
    fmt_double(v[5], 64, tr->sched.lr_init);
    fmt_double(v[6], 64, tr->sched.lr_final);
    snprintf(v[7], 64, "%" PRId64, tr->sched.warmup_steps);
    fmt_double(v[8], 64, tr->adam.beta1);
    fmt_double(v[9], 64, tr->adam.beta2);
    fmt_double(v[10], 64, tr->adam.eps);
    fmt_double(v[11], 64, tr->adam.weight_decay);
    fmt_double(v[12], 64, tr->adam.grad_clip);
    snprintf(v[13], 64, "%" PRIu64, tr->ds.token_count);
    snprintf(v[14], 64, "%016" PRIx64, tr->data_xxh3);
    snprintf(v[15], 64, "%" PRIu64, tr->o->epoch_save);
    const char *kv[] = { "ctx_len", v[0], "micro_bsz", v[1], "world", v[2], "strategy", dp_strategy_name(tr->o->strategy),
                         "magic_prime", v[3],
                         "my_exit_tokens", v[4], "lr_init", v[5], "lr_final", v[6], "warmup_steps", v[7],
                         "beta1", v[8], "beta2", v[9], "adam_eps", v[10], "weight_decay", v[11],
                         "grad_clip", v[12], "data_tokens", v[13], "data_xxh3", v[14], "epoch_save", v[15],
                         "precision", tr->precision, NULL };
    /* every rank takes part in gathering the state (get_state is collective); rank 0 writes it */
    if (sync_host(tr, e)) return -1;
    if (tr->rank != 0) return 0;
    char *path = state_path(tr->o->proj_dir, tr->c.step);
    if (!path) return fail(e, "out of memory");
    int rc = trainstate_write(path, &tr->cfg, &tr->c, tr->good_w, tr->good_m, tr->good_v, kv, e);
    if (rc == 0) {
        tr->last_save_time = now_seconds();
        /* Keep the newest K states; older ones go only after the new one is committed. */
        Found *f;
        int n = list_numbered(tr->o->proj_dir, "train-state-", 0, &f);
        for (int i = (int)tr->o->keep; i < n; i++)
            if (unlink(f[i].path)) say(tr, "warning: cannot remove %s: %s", f[i].path, strerror(errno));
        free_found(f, n);
    }
    free(path);
    return rc;
}

/* Weights as NAME.safetensors and/or NAME.pth (--save_format), bf16. */
static int save_weights(Trainer *tr, const char *name, Error *e)
{
    if (sync_host(tr, e)) return -1;
    if (tr->rank != 0) return 0;
    memcpy(tr->host.w, tr->good_w, tr->layout.total * sizeof(float));
    static const char *const ext[] = { ".safetensors", ".pth" };
    for (int k = 0; k < 2; k++) {
        if (!(tr->o->save_format & (k ? SAVE_PTH : SAVE_SAFETENSORS))) continue;
        char file[128];
        snprintf(file, sizeof file, "%s%s", name, ext[k]);
        for (size_t i = 0; i < tr->layout.total; i++)
            if (!isfinite(tr->host.w[i])) return fail(e, "refusing to save non-finite weights to %s", file);
        char *path = path_join(tr->o->proj_dir, file);
        if (!path) return fail(e, "out of memory");
        int rc = model_save(&tr->host, path, DT_BF16, 1, e);
        free(path);
        if (rc) return rc;
    }
    return 0;
}

static void now_string(char *b, size_t n)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(b, n, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(b + k, n - k, ".%06ld", (long)tv.tv_usec);
}

/* Append one record with one write to fd (O_APPEND).  A record that does not
 * fit whole (full disk, file-size limit) is cut off again, so a later write
 * never splices two records; the caller stops the run. */
static int append_record(int fd, const char *path, const char *rec, Error *e)
{
    size_t len = strlen(rec), done = 0;
    off_t end = lseek(fd, 0, SEEK_END);
    while (done < len) {
        ssize_t n = write(fd, rec + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            if (done && end >= 0 && ftruncate(fd, end)) { /* the error below is what matters */ }
            return fail(e, "%s: write failed: %s", path, strerror(err));
        }
        done += (size_t)n;
    }
    return 0;
}

static int append_log(Trainer *tr, const char *line, Error *e)
{
    int fd = open(tr->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return fail(e, "cannot append to %s: %s", tr->log_path, strerror(errno));
    int rc = append_record(fd, tr->log_path, line, e);
    if (close(fd) && rc == 0) rc = fail(e, "%s: write failed: %s", tr->log_path, strerror(errno));
    return rc;
}

static void fmt_count(char *b, size_t n, double v)
{
    if (v < 1e3) snprintf(b, n, "%.0f", v);
    else if (v < 1e6) snprintf(b, n, "%.1fk", v / 1e3);
    else if (v < 1e9) snprintf(b, n, "%.2fM", v / 1e6);
    else snprintf(b, n, "%.2fG", v / 1e9);
}

static void fmt_duration(char *b, size_t n, double s)
{
    if (!isfinite(s) || s < 0) { snprintf(b, n, "?"); return; }
    long t = (long)s;
    if (t >= 3600) snprintf(b, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(b, n, "%ldm%02lds", t / 60, t % 60);
}

/* Rewrite metrics.jsonl without records of steps >= from (they are redone after a resume). */
static int trim_metrics(const char *path, uint64_t from, Error *e)
{
    FILE *in = fopen(path, "r");
    if (!in) return 0;
    AtomicFile f;
    if (atomic_open(&f, path, 1, e)) { fclose(in); return -1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, in)) > 0) {
        const char *s = strstr(line, "\"step\":");
        unsigned long long st;
        if (!s || sscanf(s + 7, "%llu", &st) != 1 || st >= from || line[len - 1] != '\n') continue;
        if (strstr(line + 1, "{\"step\":")) continue;   /* two records spliced (a torn write by an older build) */
        fputs(line, f.fp);
    }
    free(line);
    fclose(in);
    return atomic_commit(&f, e);
}

static void json_num(char *b, size_t n, double v, const char *fmt)
{
    if (isfinite(v)) snprintf(b, n, fmt, v);
    else snprintf(b, n, "null");
}

/* Test hook RWKV7C_TRAIN_TB_FAIL=K: the TensorBoard write of step K (and
 * later ones) fails for real, with ENOSPC: /dev/full takes the event file's place. */
static void tb_fault_hook(Trainer *tr)
{
    const char *s = getenv("RWKV7C_TRAIN_TB_FAIL");
    unsigned long long k;
    if (!s || sscanf(s, "%llu", &k) != 1 || tr->c.step - 1 < k) return;
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (full >= 0 && dup3(full, tr->tb.fd, O_CLOEXEC) < 0) { /* then the write simply succeeds */ }
    if (full >= 0) close(full);
}

/* Parse "K" or "K,N" from RWKV7C_TRAIN_POISON: poison the gradient at steps K..K+N-1. */
static int poisoned(uint64_t step)
{
    static int init;
    static unsigned long long k, n;
    if (!init) {
        init = 1;
        const char *s = getenv("RWKV7C_TRAIN_POISON");
        n = 0;
        if (s && *s) { n = 1; if (sscanf(s, "%llu,%llu", &k, &n) < 1) n = 0; }
    }
    return n && step >= k && step - k < n;
}

static uint64_t get_meta_u64(const TrainState *st, const char *key, uint64_t dflt)
{
    const char *s = trainstate_get(st, key);
    uint64_t v;
    return s && !parse_u64(s, &v) ? v : dflt;
}

/* Inherit a hyperparameter from the state unless given; note a changed one. */
static void inherit_f64(const Trainer *tr, int given, const char *name, double *val)
{
    const char *s = trainstate_get(&tr->st, name);
    if (!s) return;
    double saved = strtod(s, NULL);
    if (!given) *val = saved;
    else if (*val != saved)
        say(tr, "note: --%s %g differs from the resumed run's %g; the run is no longer identical to an uninterrupted one",
            name, *val, saved);
}

/* --dim_ffn is not checked: the reference's x070 FFN is 4*n_embd whatever
 * --dim_ffn says (its default int(3.5*n_embd)//32*32 would not match). */
static int check_dims(const TrainOptions *a, const ModelConfig *c, const char *src, Error *e)
{
    struct { const char *n; int64_t given; int64_t have; } d[] = {
        { "n_layer", a->n_layer, c->n_layer }, { "n_embd", a->n_embd, c->n_embd },
        { "vocab_size", a->vocab_size, c->vocab_size }, { "head_size", a->head_size, c->head_size },
        { "dim_att", a->dim_att, c->n_embd },
    };
    for (size_t i = 0; i < sizeof d / sizeof *d; i++)
        if (d[i].given && d[i].given != d[i].have)
            return fail(e, "--%s %" PRId64 " contradicts the checkpoint %s (%s %" PRId64 "); dimensions come from the checkpoint",
                        d[i].n, d[i].given, src, d[i].n, d[i].have);
    return 0;
}

/* The starting point: the newest complete state, else --load_model, else the
 * newest rwkv-N (.safetensors or .pth), else rwkv-init. */
static int find_start(Trainer *tr, Error *e)
{
    TrainOptions *a = tr->o;
    int nstates = tr->nstates_all;
    if (a->resume_never) {
        char *final_st = path_join(a->proj_dir, "rwkv-final.safetensors");
        char *final_pth = path_join(a->proj_dir, "rwkv-final.pth");
        int used = nstates || tr->nepochs || (final_st && file_exists(final_st)) || (final_pth && file_exists(final_pth))
                   || file_exists(tr->metrics_path) || file_exists(tr->log_path);
        free(final_st);
        free(final_pth);
        if (used && !a->force)
            return fail(e, "--resume never: %s already holds a run (training states, rwkv-N, rwkv-final, metrics.jsonl or "
                        "train_log.txt); use --force to start over there, or another --proj_dir", a->proj_dir);
        if (used && !a->dry_run && tr->rank == 0) {
            for (int i = 0; i < nstates; i++) unlink(tr->states[i].path);
            unlink(tr->metrics_path);
            char *run_id = path_join(a->proj_dir, "wandb-run-id");   /* a new run starts a new wandb run */
            if (run_id) unlink(run_id);
            free(run_id);
        }
        nstates = 0;
    }
    /* A damaged state is skipped for the next older one; only a state that
     * verified is compared with the flags (inherit_config). */
    for (int i = 0; i < nstates && !tr->resumed; i++) {
        const char *path = tr->states[i].path;
        if (trainstate_read(path, &tr->st, e)) {
            warn_skipping(tr, path, e->msg);
            continue;
        }
        if (tr->st.c.step != tr->states[i].num) {
            say(tr, "warning: skipping %s: damaged training state: its header says step %" PRIu64 ", its name step %" PRIu64,
                path, tr->st.c.step, tr->states[i].num);
            trainstate_free(&tr->st);
            continue;
        }
        if (tr->st.meta_unverified)
            say(tr, "warning: %s predates metadata checksums (training state version 1): its counters and settings "
                "cannot be verified", path);
        tr->resumed = 1;
        tr->source = path;
    }
    tr->c.seed = a->seed;
    if (tr->resumed) {
        if (a->load_model) say(tr, "note: --load_model %s ignored: resuming from %s", a->load_model, tr->source);
        tr->cfg = tr->st.cfg;
        tr->c = tr->st.c;
        return 0;
    }
    if (a->load_model) {
        if (model_load(&tr->start, a->load_model, e)) return -1;
        tr->source = a->load_model;
        tr->c.epoch_begin = a->epoch_begin;
    } else {
        for (int i = 0; i < tr->nepochs && !tr->source; i++) {
            if (model_load(&tr->start, tr->epochs[i].path, e) == 0) {
                tr->source = tr->epochs[i].path;
                tr->c.epoch_begin = tr->epochs[i].num + 1;      /* the reference's auto-resume */
                if (a->warmup_steps < 0) a->warmup_steps = 10;
            } else
                warn_skipping(tr, tr->epochs[i].path, e->msg);
        }
        if (!tr->source) {
            if (!file_exists(tr->init_path)) {
                /* the reference's rwkv-init.pth works too */
                char *pth = path_join(a->proj_dir, "rwkv-init.pth");
                if (pth && file_exists(pth)) { free(tr->init_path); tr->init_path = pth; }
                else free(pth);
            }
            if (!file_exists(tr->init_path))
                return fail(e, "no starting checkpoint: %s has no training state, rwkv-N.safetensors or rwkv-init.safetensors "
                            "(create one with `rwkv-init -o %s ...`, or give --load_model FILE)", a->proj_dir, tr->init_path);
            if (model_load(&tr->start, tr->init_path, e)) return -1;
            tr->source = tr->init_path;
            tr->c.epoch_begin = a->epoch_begin;
        }
    }
    tr->cfg = tr->start.cfg;
    return 0;
}

/* A resumed run keeps its data order and inherits the hyperparameters not given. */
static int inherit_config(Trainer *tr, Error *e)
{
    TrainOptions *a = tr->o;
    const TrainGiven *g = &a->given;
    struct { int given; const char *name; uint64_t *val; } fixed[] = {
        { g->ctx_len, "ctx_len", &a->ctx_len }, { g->magic_prime, "magic_prime", &a->magic_prime },
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        uint64_t saved = get_meta_u64(&tr->st, fixed[i].name, 0);
        if (!fixed[i].given) *fixed[i].val = saved;
        else if (*fixed[i].val != saved && !a->force)
            return fail(e, "--%s %" PRIu64 " differs from the run being resumed (%" PRIu64 " in %s): the data order would change; "
                        "use a new --proj_dir (or --resume never --force)", fixed[i].name, *fixed[i].val, saved, tr->source);
    }
    /* The data order, epoch_steps and the schedule follow real_bsz = micro_bsz x ranks, not
     * how it is split: another world size with the same real_bsz continues the same run
     * (the state is whole; set_state shards it).  Without --micro_bsz it is chosen so. */
    uint64_t saved_mb = get_meta_u64(&tr->st, "micro_bsz", 0), saved_world = get_meta_u64(&tr->st, "world", 1);
    uint64_t saved_real = saved_mb * saved_world;
    if (!g->micro_bsz) a->micro_bsz = saved_real % tr->world == 0 ? saved_real / tr->world : saved_mb;
    if (a->micro_bsz * tr->world != saved_real) {
        if (!a->force)
            return fail(e, "real_bsz %" PRIu64 " (micro_bsz %" PRIu64 " x %" PRIu64 " ranks) differs from the run being resumed "
                        "(real_bsz %" PRIu64 " = micro_bsz %" PRIu64 " x %" PRIu64 " ranks in %s): the data order and the LR "
                        "schedule would change; keep micro_bsz x ranks = %" PRIu64 ", or add --force to go on anyway",
                        a->micro_bsz * tr->world, a->micro_bsz, tr->world, saved_real, saved_mb, saved_world, tr->source,
                        saved_real);
        say(tr, "note: --force: real_bsz %" PRIu64 " differs from the resumed run's %" PRIu64 "; the data order and the "
            "schedule change from here on", a->micro_bsz * tr->world, saved_real);
    }
    const char *dx = trainstate_get(&tr->st, "data_xxh3");
    char have[32];
    snprintf(have, sizeof have, "%016" PRIx64, tr->data_xxh3);
    if (dx && strcmp(dx, have)) {
        const char *dt = trainstate_get(&tr->st, "data_tokens");
        return fail(e, "%s is not the data the run in %s was trained on (%s tokens then, %" PRIu64 " now; checksums differ)",
                    tr->ds.bin_path, a->proj_dir, dt ? dt : "?", tr->ds.token_count);
    }
    if (!g->exit_tokens) {
        a->exit_tokens = get_meta_u64(&tr->st, "my_exit_tokens", 0);
        a->allow_repeat = 1;   /* validated when the run began */
    }
    if (!g->epoch_save) a->epoch_save = get_meta_u64(&tr->st, "epoch_save", a->epoch_save);
    double wu = (double)a->warmup_steps;
    inherit_f64(tr, g->lr_init, "lr_init", &a->lr_init);
    inherit_f64(tr, g->lr_final, "lr_final", &a->lr_final);
    inherit_f64(tr, g->warmup_steps, "warmup_steps", &wu);
    a->warmup_steps = (int64_t)wu;
    inherit_f64(tr, g->beta1, "beta1", &a->beta1);
    inherit_f64(tr, g->beta2, "beta2", &a->beta2);
    inherit_f64(tr, g->adam_eps, "adam_eps", &a->adam_eps);
    inherit_f64(tr, g->weight_decay, "weight_decay", &a->weight_decay);
    inherit_f64(tr, g->grad_clip, "grad_clip", &a->grad_clip);
    const char *pr = trainstate_get(&tr->st, "precision");
    if (pr && !g->precision) tr->precision = !strcmp(pr, "fp32") ? "fp32" : !strcmp(pr, "tf32") ? "tf32" : "bf16";
    return 0;
}

/* magic_prime and my_exit_tokens against the data; sampler, schedule, Adam. */
static int derive_schedule(Trainer *tr, Error *e)
{
    TrainOptions *a = tr->o;
    uint64_t data_tokens = tr->ds.token_count;
    if (!a->magic_prime) {
        if (magic_prime(data_tokens, a->ctx_len, &a->magic_prime, e))
            return fail(e, "%s has %" PRIu64 " tokens: too few for --ctx_len %" PRIu64 " (at least %" PRIu64 " needed)",
                        tr->ds.bin_path, data_tokens, a->ctx_len, 3 * a->ctx_len);
    } else if (magic_prime_accept(a->magic_prime, data_tokens, a->ctx_len, e)) {
        return fail_prefix(e, "%s", tr->ds.bin_path);
    }
    if (!a->exit_tokens) a->exit_tokens = data_tokens;
    else if (a->exit_tokens > data_tokens && !a->allow_repeat)
        return fail(e, "--my_exit_tokens %" PRIu64 " exceeds the %" PRIu64 " tokens in %s: the run would pass over the data %.1f times "
                    "(were the numbers copied from another data set?); leave it out to train one pass, or add --allow_repeat",
                    a->exit_tokens, data_tokens, tr->ds.bin_path, (double)a->exit_tokens / (double)data_tokens);
    if (sampler_init(&tr->smp, a->magic_prime, a->ctx_len, a->micro_bsz, tr->world, e)) return -1;
    tr->sched = (LrSchedule){ .lr_init = a->lr_init, .lr_final = a->lr_final, .warmup_steps = a->warmup_steps,
                             .tokens_per_step = a->ctx_len * tr->smp.real_bsz, .exit_tokens = a->exit_tokens };
    if (lr_schedule_check(&tr->sched, e)) return -1;
    tr->adam = (AdamConfig){ .beta1 = a->beta1, .beta2 = a->beta2, .eps = a->adam_eps, .weight_decay = a->weight_decay,
                            .grad_clip = a->grad_clip };
    if (!((float)tr->adam.eps > 0))   /* only an inherited value can be 0 here: rwkv-train refuses --adam_eps 0 */
        return fail(e, "adam_eps %g (from %s) is 0 in fp32: Adam would divide 0 by 0 where a gradient is 0; give --adam_eps "
                    "(1e-18 is the reference's default)", a->adam_eps, tr->source);
    if (!tr->resumed) tr->c.step = tr->c.epoch_begin * tr->smp.epoch_steps;
    tr->exit_step = lr_exit_step(&tr->sched);
    tr->bc = (BackendConfig){ .B = (int)a->micro_bsz, .T = (int)a->ctx_len, .grad_cp = a->grad_cp,
                             .bf16 = !strcmp(tr->precision, "bf16"), .tf32 = !strcmp(tr->precision, "tf32"), .adam = tr->adam,
                             .comm = a->comm, .world = (int)tr->world, .strategy = a->strategy,
                             .init_file = a->init_file,
                             .bucket_bytes = (size_t)a->bucket_bytes };
    return 0;
}

int trainer_open(TrainOptions *a, Trainer **out, Error *e)
{
    *out = NULL;
    Trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return fail(e, "out of memory");
    *out = tr;
    tr->o = a;
    tr->lock_fd = -1;
    tr->metrics_fd = -1;
    tr->tb.fd = -1;
    tr->bridge_fd = -1;
    tr->precision = a->precision;
    tr->world = a->comm ? (uint64_t)comm_size(a->comm) : a->devices * a->num_nodes;
    tr->rank = a->rank;

    /* ---- data ---- */
    if (binidx_open(a->data_file, &tr->ds, e)) return -1;
    if (binidx_scan(&tr->ds, &tr->bst, e)) return -1;
    if (tr->bst.negative_ids) return fail(e, "%s: %" PRIu64 " negative token ids", tr->ds.bin_path, tr->bst.negative_ids);
    tr->data_xxh3 = tr->bst.bin_xxh3;
    struct stat bin_st;
    if (stat(tr->ds.bin_path, &bin_st) == 0) { tr->bin_dev = bin_st.st_dev; tr->bin_ino = bin_st.st_ino; }

    /* ---- starting point ---- */
    if (!a->dry_run && mkdir(a->proj_dir, 0777) && errno != EEXIST)
        return fail(e, "cannot create --proj_dir %s: %s", a->proj_dir, strerror(errno));
    if (!a->dry_run && tr->rank == 0 && lock_proj_dir(a->proj_dir, &tr->lock_fd, e)) return -1;
    if (!a->dry_run && tr->rank == 0) remove_stale_temps(a->proj_dir);
    tr->nstates_all = list_numbered(a->proj_dir, "train-state-", 0, &tr->states);
    tr->nepochs = list_numbered(a->proj_dir, "rwkv-", 1, &tr->epochs);
    tr->metrics_path = path_join(a->proj_dir, "metrics.jsonl");
    tr->log_path = path_join(a->proj_dir, "train_log.txt");
    tr->final_path = path_join(a->proj_dir, a->save_format == SAVE_PTH ? "rwkv-final.pth" : "rwkv-final.safetensors");
    tr->init_path = path_join(a->proj_dir, "rwkv-init.safetensors");
    if (!tr->metrics_path || !tr->log_path || !tr->final_path || !tr->init_path) return fail(e, "out of memory");
    if (find_start(tr, e)) return -1;
    if (check_dims(a, &tr->cfg, tr->source, e)) return -1;
    if (a->my_testing && strcmp(a->my_testing, config_type_name(&tr->cfg)))
        return fail(e, "--my_testing %s, but %s is an %s model (the model type comes from the checkpoint)",
                    a->my_testing, tr->source, config_type_name(&tr->cfg));
    if (config_is_x060(&tr->cfg)) {
        if (a->dim_ffn && a->dim_ffn != tr->cfg.dim_ffn)
            return fail(e, "--dim_ffn %" PRId64 " contradicts the checkpoint %s (dim_ffn %d); dimensions come from the checkpoint",
                        a->dim_ffn, tr->source, tr->cfg.dim_ffn);
    } else if (a->dim_ffn && a->dim_ffn != 4 * (int64_t)tr->cfg.n_embd)
        say(tr, "note: --dim_ffn %" PRId64 " ignored: x070's FFN is 4 x n_embd = %" PRId64 " wide (as in the reference)",
            a->dim_ffn, 4 * (int64_t)tr->cfg.n_embd);
    if (layout_build(&tr->cfg, &tr->layout, e)) return -1;
    if (tr->bst.max_id >= (uint64_t)tr->cfg.vocab_size)
        return fail(e, "%s holds token id %" PRIu64 " but the model's vocab_size is %d (data made with another tokenizer?)",
                    tr->ds.bin_path, tr->bst.max_id, tr->cfg.vocab_size);

    /* ---- run configuration (inherited from the state when resuming) ---- */
    if (tr->resumed && inherit_config(tr, e)) return -1;
    if (derive_schedule(tr, e)) return -1;
    /* A fresh start at or past the end would "finish" at once and write its
     * untrained starting weights as rwkv-final. */
    if (!tr->resumed && tr->c.step >= tr->exit_step)
        return fail(e, "nothing to train: starting from %s at miniepoch %" PRIu64 " means step %" PRIu64 ", but the run "
                    "ends at step %" PRIu64 " (--my_exit_tokens %" PRIu64 ", %" PRIu64 " tokens/step); lower --epoch_begin "
                    "or raise --my_exit_tokens (with --allow_repeat beyond the data)", tr->source, tr->c.epoch_begin,
                    tr->c.step, tr->exit_step, a->exit_tokens, tr->sched.tokens_per_step);
    return 0;
}

/* -1 with the reason in why when this build cannot run the configuration:
 * the accelerator as backend_check sees it, and the model types it trains. */
static int cannot_run(const Trainer *tr, Error *why)
{
    const TrainOptions *a = tr->o;
    if (backend_check(a->accelerator, why)) return -1;
    if (backend_is_gpu(a->accelerator) && config_is_x060(&tr->cfg))
        return fail(why, "--accelerator %s: x060 (RWKV-6) models train on the CPU only for now (use --accelerator cpu)",
                    a->accelerator);
    if (backend_is_gpu(a->accelerator) && tr->world > 1 && a->strategy != DP_DDP && strcmp(tr->precision, "bf16"))
        return fail(why, "--strategy %s with --precision %s: the CUDA backend shards bf16 runs only (use --strategy ddp, "
                    "or --precision bf16)", dp_strategy_name(a->strategy), tr->precision);
    return 0;
}

void trainer_print_plan(const Trainer *tr, FILE *fp)
{
    const TrainOptions *a = tr->o;
    uint64_t mem = backend_memory_estimate(a->accelerator, &tr->cfg, &tr->bc);
    uint64_t todo = tr->exit_step > tr->c.step ? tr->exit_step - tr->c.step : 0;
    fprintf(fp, "start        %s%s\n", tr->source, tr->resumed ? " (training state)" : "");
    fprintf(fp, "model        %s L%d D%d, vocab %d, head_size %d: %" PRIu64 " parameters (%.1f MB in bf16)\n",
            config_type_name(&tr->cfg), tr->cfg.n_layer, tr->cfg.n_embd, tr->cfg.vocab_size, tr->cfg.head_size, (uint64_t)tr->layout.total,
            tr->layout.total * 2 / 1e6);
    fprintf(fp, "data         %s: %" PRIu64 " tokens, %" PRIu64 " documents, %s, max id %" PRIu64 "\n", tr->ds.bin_path,
            tr->ds.token_count, tr->ds.documents, binidx_dtype_name(tr->ds.index.dtype), tr->bst.max_id);
    fprintf(fp, "batch        ctx_len %" PRIu64 " x micro_bsz %" PRIu64 " x %" PRIu64 " devices = %" PRIu64 " tokens/step\n",
            a->ctx_len, a->micro_bsz, tr->world, tr->sched.tokens_per_step);
    if (tr->world > 1) {
        uint64_t P = tr->layout.total, W = tr->world, shard = (P + W - 1) / W;
        int sharded = a->strategy != DP_DDP;
        fprintf(fp, "parallel     %" PRIu64 " ranks (--devices %" PRIu64 " x --num_nodes %" PRIu64 "), --strategy %s%s, "
                "real_bsz %" PRIu64 " = micro_bsz %" PRIu64 " x %" PRIu64 "\n", W, a->devices, a->num_nodes,
                dp_strategy_name(a->strategy),
                a->strategy != DP_STAGE2 ? "" : backend_is_gpu(a->accelerator) ? " (sharded as stage 1 on the GPU)"
                                                                              : " (gradient reduce-scattered in buckets)",
                tr->smp.real_bsz, a->micro_bsz, W);
        if (backend_is_gpu(a->accelerator))
            fprintf(fp, "each rank    one GPU (its local rank on its machine); the device memory plan below is one rank's\n");
        else if (!sharded)
            fprintf(fp, "each rank    the whole fp32 weights, gradient and Adam moments (%" PRIu64 " parameters each); the "
                    "gradient all-reduced\n", P);
        else
            fprintf(fp, "each rank    the whole fp32 weights and gradient; Adam moments of its shard of about %" PRIu64
                    " parameters (%.1f MiB of moments instead of %.1f); the gradient reduce-scattered, the weights all-gathered\n",
                    shard, shard * 8 / 1048576.0, P * 8 / 1048576.0);
        for (uint64_t r = 0; sharded && !backend_is_gpu(a->accelerator) && r < W && r < 16; r++) {
            uint64_t lo = r * shard < P ? r * shard : P, hi = lo + shard < P ? lo + shard : P;
            fprintf(fp, "rank %-7" PRIu64 " Adam moments of parameters [%" PRIu64 ", %" PRIu64 ") in Layout order\n", r, lo, hi);
        }
    }
    fprintf(fp, "miniepoch    %" PRIu64 " steps (40320 samples, %" PRIu64 " tokens); epoch_count %" PRIu64 "\n",
            tr->smp.epoch_steps, 40320 * a->ctx_len, tr->smp.epoch_count);
    fprintf(fp, "sampling     --magic_prime %" PRIu64 " --my_exit_tokens %" PRIu64 "\n", a->magic_prime, a->exit_tokens);
    fprintf(fp, "schedule     lr %g -> %g, warmup %" PRId64 ", Adam betas (%g, %g) eps %g, weight_decay %g, grad_clip %g, %s\n",
            a->lr_init, a->lr_final, a->warmup_steps, a->beta1, a->beta2, a->adam_eps, a->weight_decay, a->grad_clip,
            tr->precision);
    fprintf(fp, "steps        start at step %" PRIu64 " (miniepoch %" PRIu64 "), exit at step %" PRIu64 ": %" PRIu64
            " steps, %" PRIu64 " tokens\n", tr->c.step, tr->c.step / tr->smp.epoch_steps, tr->exit_step, todo,
            todo * tr->sched.tokens_per_step);
    fprintf(fp, "memory       about %.1f MiB per device (%s, grad_cp %d)\n", mem / 1048576.0, a->accelerator, a->grad_cp);
    if (backend_is_gpu(a->accelerator) && !config_is_x060(&tr->cfg)) {
        GpuPlan gp;
        uint64_t dev_free = 0, dev_total = 0;
        gpu_plan(&tr->cfg, &tr->bc, &gp);
        if (backend_device_memory(&dev_free, &dev_total)) dev_free = dev_total = 0;
        gpu_plan_print(&gp, fp, dev_free, dev_total);
        if (dev_total && gp.total > dev_free)
            fprintf(fp, "status       DOES NOT FIT: the plan needs %.1f MiB, the device has %.1f MiB free\n",
                    gp.total / 1048576.0, dev_free / 1048576.0);
    }
    int tb = a->tensorboard_dir && *a->tensorboard_dir, wb = a->wandb_project && *a->wandb_project;
    if (tb || wb)
        fprintf(fp, "monitors     %s%s%s%s%s\n", tb ? "TensorBoard events in " : "", tb ? a->tensorboard_dir : "",
                tb && wb ? ", " : "", wb ? "wandb project " : "", wb ? a->wandb_project : "");
    if (tr->resumed && todo == 0)
        fprintf(fp, "status       already complete: nothing to train (a run would rewrite rwkv-final)\n");
    Error why;
    if (cannot_run(tr, &why)) {
        fprintf(fp, "status       CANNOT RUN with this build: %s\n", why.msg);
        say(tr, "warning: the plan is for a configuration this build cannot run: %s", why.msg);
    }
}

/* A batch whose activations cannot fit is a flag problem (exit 2), not an
 * error of the machine: say which flags. */
static int too_big_for_memory(const Trainer *tr, Error *e)
{
    const TrainOptions *a = tr->o;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    double have = (double)pages * (double)page;
    double need = (double)backend_memory_estimate(a->accelerator, &tr->cfg, &tr->bc);
    if (backend_is_gpu(a->accelerator)) {
        /* the CUDA backend checks the device when it opens; the host holds the trainer's fp32
         * copies (7 per parameter, as backend_cpu_memory_estimate counts them) and a bf16 one */
        need = (double)tr->layout.total * (7 * 4 + 2);
        if (need <= have) return 0;
        return fail(e, "the model needs about %.1f GiB of host memory for the trainer's copies of its state, more than "
                    "this machine's %.1f GiB", need / 1073741824.0, have / 1073741824.0);
    }
    if (need <= have) return 0;
    return fail(e, "--micro_bsz %" PRIu64 " x --ctx_len %" PRIu64 " needs about %.1f GiB (weights, Adam state and "
                "activations%s), more than this machine's %.1f GiB: lower --micro_bsz or --ctx_len%s",
                a->micro_bsz, a->ctx_len, need / 1073741824.0, a->grad_cp ? ", with --grad_cp 1" : "",
                have / 1073741824.0, a->grad_cp ? "" : ", or add --grad_cp 1");
}

/* Every rank must start from the same point: they read proj_dir each for itself (on nodes
 * that may not share it).  Compares the start step and a hash of the start file's path. */
static int check_same_start(Trainer *tr, Error *e)
{
    uint64_t mine[2] = { tr->c.step, 1469598103934665603ull }, *all = calloc(2 * tr->world, sizeof *all);
    if (!all) return fail(e, "out of memory");
    for (const char *p = tr->source; *p; p++) mine[1] = (mine[1] ^ (unsigned char)*p) * 1099511628211ull;
    int rc = comm_all_gather(tr->o->comm, mine, all, sizeof mine, e);
    for (uint64_t r = 1; rc == 0 && r < tr->world; r++)
        if (all[2 * r] != all[0] || all[2 * r + 1] != all[1])
            rc = fail(e, "rank %" PRIu64 " starts at step %" PRIu64 "%s, rank 0 at step %" PRIu64 ": every rank must see the "
                      "same --proj_dir (a shared file system) and the same starting checkpoint", r, all[2 * r],
                      all[2 * r + 1] != all[1] ? " from another file" : "", all[0]);
    free(all);
    return rc;
}

static int open_backend(Trainer *tr, Error *e)
{
    TrainOptions *a = tr->o;
    if (cannot_run(tr, e)) return -1;
    if (too_big_for_memory(tr, e)) return TRAIN_EXIT_USAGE;
    if (model_alloc(&tr->host, &tr->cfg, e)) return -1;
    float **bufs[6] = { &tr->good_w, &tr->good_m, &tr->good_v, &tr->new_w, &tr->new_m, &tr->new_v };
    for (int i = 0; i < 6; i++)
        if (!(*bufs[i] = calloc(tr->layout.total, sizeof(float)))) return fail(e, "out of memory");
    if (tr->world > 1 && check_same_start(tr, e)) return -1;
    if (backend_open(a->accelerator, &tr->cfg, tr->resumed ? tr->st.w : tr->start.w, &tr->bc, &tr->be, e)) {
        if (strncmp(e->msg, "out of memory", 13)) return -1;
        fail_prefix(e, "--micro_bsz %" PRIu64 " x --ctx_len %" PRIu64 " is too large for this machine (lower them, or add "
                    "--grad_cp 1)", a->micro_bsz, a->ctx_len);
        return TRAIN_EXIT_USAGE;
    }
    if (tr->resumed && tr->be->set_state(tr->be, tr->st.w, tr->st.m, tr->st.v, e)) return -1;
    if (tr->be->get_state(tr->be, tr->good_w, tr->good_m, tr->good_v, e)) return -1;
    if (tr->resumed) trainstate_free(&tr->st);
    tr->resumed = tr->resumed ? 2 : 0;   /* 2: state consumed (freed) */
    model_free(&tr->start);
    say(tr, "%s %s (step %" PRIu64 ", miniepoch %" PRIu64 ")", tr->resumed ? "resuming from" : "starting from",
        tr->source, tr->c.step, tr->c.step / tr->smp.epoch_steps);

    /* ---- logs (rank 0's) ---- */
    if (tr->rank != 0) return 0;
    if (trim_metrics(tr->metrics_path, tr->c.step, e)) return -1;
    tr->metrics_fd = open(tr->metrics_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (tr->metrics_fd < 0) return fail(e, "cannot open %s: %s", tr->metrics_path, strerror(errno));
    char ts[64], line[2048];
    now_string(ts, sizeof ts);
    snprintf(line, sizeof line, "NEW RUN %s\n{'load_model': '%s', 'proj_dir': '%s', 'data_file': '%s', 'ctx_len': %" PRIu64
             ", 'micro_bsz': %" PRIu64 ", 'n_layer': %d, 'n_embd': %d, 'vocab_size': %d, 'head_size': %d, 'lr_init': %g, "
             "'lr_final': %g, 'warmup_steps': %" PRId64 ", 'beta1': %g, 'beta2': %g, 'adam_eps': %g, 'weight_decay': %g, "
             "'grad_clip': %g, 'grad_cp': %d, 'epoch_save': %" PRIu64 ", 'epoch_begin': %" PRIu64 ", 'epoch_steps': %" PRIu64
             ", 'epoch_count': %" PRIu64 ", 'real_bsz': %" PRIu64 ", 'magic_prime': %" PRIu64 ", 'my_exit_tokens': %" PRIu64
             ", 'precision': '%s', 'accelerator': '%s', 'resume_step': %" PRIu64 "}\n",
             ts, tr->source, a->proj_dir, a->data_file, a->ctx_len, a->micro_bsz, tr->cfg.n_layer, tr->cfg.n_embd,
             tr->cfg.vocab_size, tr->cfg.head_size, a->lr_init, a->lr_final, a->warmup_steps, a->beta1, a->beta2,
             a->adam_eps, a->weight_decay, a->grad_clip, a->grad_cp, a->epoch_save, tr->c.step / tr->smp.epoch_steps,
             tr->smp.epoch_steps, tr->smp.epoch_count, tr->smp.real_bsz, a->magic_prime, a->exit_tokens, tr->precision,
             a->accelerator, tr->c.step);
    if (append_log(tr, line, e)) return -1;
    /* Asked for explicitly, so a directory that cannot be written is an error
     * now, before any step; a later failed write only stops the logging. */
    if (a->tensorboard_dir && *a->tensorboard_dir && tb_open(&tr->tb, a->tensorboard_dir, (int64_t)tr->c.step, e)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- wandb bridge */
/* --wandb runs bin/rwkv-wandb-bridge (Python, the official wandb SDK) beside
 * the trainer: it follows metrics.jsonl and logs each record.  It is a monitor:
 * the trainer never waits on it during the run and goes on without it if it
 * cannot start or dies.  Its stdin is a pipe from the trainer; the end of that
 * pipe (the trainer closing it, or exiting, even by SIGKILL) tells it that
 * every record is in metrics.jsonl.  It runs in its own process group, so a
 * Ctrl-C meant for the trainer does not stop it before it has sent the last
 * records; its output goes to PROJ_DIR/wandb-bridge.log, not the terminal. */
#define BRIDGE_EXIT_NO_WANDB 3       /* the bridge's status when `import wandb` fails */
#define BRIDGE_WAIT_SECONDS  60      /* at the end, how long to wait for it to send the last records */

static void json_str(char *b, size_t n, const char *s)
{
    size_t k = 0;
    if (n < 3) { if (n) *b = 0; return; }
    b[k++] = '"';
    for (; *s && k + 8 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { b[k++] = '\\'; b[k++] = (char)c; }
        else if (c < 0x20) k += (size_t)snprintf(b + k, n - k, "\\u%04x", c);
        else b[k++] = (char)c;
    }
    b[k++] = '"';
    b[k] = 0;
}

/* The run configuration in effect (what train_log.txt's NEW RUN line holds), as JSON. */
static void run_config_json(const Trainer *tr, char *b, size_t n)
{
    const TrainOptions *a = tr->o;
    char src[1024], proj[1024], data[1024];
    json_str(src, sizeof src, tr->source);
    json_str(proj, sizeof proj, a->proj_dir);
    json_str(data, sizeof data, a->data_file);
    snprintf(b, n, "{\"load_model\":%s,\"proj_dir\":%s,\"data_file\":%s,\"ctx_len\":%" PRIu64 ",\"micro_bsz\":%" PRIu64
             ",\"n_layer\":%d,\"n_embd\":%d,\"vocab_size\":%d,\"head_size\":%d,\"lr_init\":%.17g,\"lr_final\":%.17g,"
             "\"warmup_steps\":%" PRId64 ",\"beta1\":%.17g,\"beta2\":%.17g,\"adam_eps\":%.17g,\"weight_decay\":%.17g,"
             "\"grad_clip\":%.17g,\"grad_cp\":%d,\"epoch_save\":%" PRIu64 ",\"epoch_steps\":%" PRIu64 ",\"epoch_count\":%" PRIu64
             ",\"real_bsz\":%" PRIu64 ",\"magic_prime\":%" PRIu64 ",\"my_exit_tokens\":%" PRIu64 ",\"precision\":\"%s\","
             "\"accelerator\":\"%s\",\"resume_step\":%" PRIu64 "}",
             src, proj, data, a->ctx_len, a->micro_bsz, tr->cfg.n_layer, tr->cfg.n_embd, tr->cfg.vocab_size,
             tr->cfg.head_size, a->lr_init, a->lr_final, a->warmup_steps, a->beta1, a->beta2, a->adam_eps,
             a->weight_decay, a->grad_clip, a->grad_cp, a->epoch_save, tr->smp.epoch_steps, tr->smp.epoch_count,
             tr->smp.real_bsz, a->magic_prime, a->exit_tokens, tr->precision, a->accelerator, tr->c.step);
}

/* $RWKV7C_WANDB_BRIDGE, else rwkv-wandb-bridge beside the running rwkv-train. */
static char *bridge_program(void)
{
    const char *env = getenv("RWKV7C_WANDB_BRIDGE");
    if (env && *env) return strdup(env);
    char *dir = exe_dir();
    char *p = dir ? path_join(dir, "rwkv-wandb-bridge") : NULL;
    free(dir);
    return p;
}

static void start_bridge(Trainer *tr)
{
    const TrainOptions *a = tr->o;
    extern char **environ;
    char *prog = bridge_program();
    if (!prog || access(prog, X_OK)) {
        say(tr, "warning: --wandb: cannot run %s: %s; training goes on without wandb", prog ? prog : "rwkv-wandb-bridge",
            prog ? strerror(errno) : "cannot find the directory of rwkv-train");
        free(prog);
        return;
    }
    tr->bridge_log = path_join(a->proj_dir, "wandb-bridge.log");
    char *config = malloc(8192);
    int pipe_fd[2] = { -1, -1 };
    if (!tr->bridge_log || !config || pipe2(pipe_fd, O_CLOEXEC)) {
        say(tr, "warning: --wandb: cannot start %s: %s; training goes on without wandb", prog,
            tr->bridge_log && config ? strerror(errno) : "out of memory");
        free(prog);
        free(config);
        return;
    }
    run_config_json(tr, config, 8192);
    /* Where this run's records start: the bridge need not read a long run's earlier ones. */
    char from[32], offset[32];
    snprintf(from, sizeof from, "%" PRIu64, tr->c.step);
    off_t end = lseek(tr->metrics_fd, 0, SEEK_END);
    snprintf(offset, sizeof offset, "%lld", end > 0 ? (long long)end : 0LL);
    char *argv[] = { prog, "--project", (char *)a->wandb_project, "--proj-dir", (char *)a->proj_dir, "--from-step", from,
                     "--offset", offset, "--config", config, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipe_fd[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, tr->bridge_log, O_WRONLY | O_CREAT | O_APPEND, 0666);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_init(&at);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int i = 0; i < N_STOP_SIGNALS; i++) sigaddset(&defaults, stop_signals[i]);
    sigaddset(&defaults, SIGXFSZ);   /* ignored here; the bridge should not inherit that */
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &defaults);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, prog, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pipe_fd[0]);
    if (rc) {
        say(tr, "warning: --wandb: cannot run %s: %s; training goes on without wandb", prog, strerror(rc));
        close(pipe_fd[1]);
    } else {
        tr->bridge_pid = pid;
        tr->bridge_fd = pipe_fd[1];
    }
    free(prog);
    free(config);
}

/* Reap the bridge if it has exited and say why, once; at_end: the trainer
 * has closed its pipe, so a clean exit is what it should do. */
static void poll_bridge(Trainer *tr, int at_end)
{
    if (tr->bridge_pid <= 0) return;
    int st;
    pid_t r = waitpid(tr->bridge_pid, &st, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) return;
    tr->bridge_pid = 0;
    if (tr->bridge_fd >= 0) close(tr->bridge_fd);
    tr->bridge_fd = -1;
    if (r < 0 || (at_end && WIFEXITED(st) && WEXITSTATUS(st) == 0)) return;
    const char *goes_on = at_end ? "" : "; training goes on without wandb";
    if (!at_end) end_progress_line(tr);   /* at the end, report_end has ended it */
    if (WIFEXITED(st) && WEXITSTATUS(st) == BRIDGE_EXIT_NO_WANDB)
        say(tr, "warning: --wandb: the wandb Python module is not installed (install it with `pip install wandb`)%s",
            goes_on);
    else if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        say(tr, "warning: --wandb: the wandb bridge cannot start: python3 not found (see %s)%s", tr->bridge_log, goes_on);
    else if (WIFEXITED(st))
        say(tr, "note: the wandb bridge exited with status %d (see %s)%s", WEXITSTATUS(st), tr->bridge_log, goes_on);
    else
        say(tr, "note: the wandb bridge was killed by signal %d (see %s)%s", WTERMSIG(st), tr->bridge_log, goes_on);
}

/* The run has ended: tell the bridge, and give it a while to send the last records. */
static void finish_bridge(Trainer *tr)
{
    if (tr->bridge_pid <= 0) return;
    close(tr->bridge_fd);
    tr->bridge_fd = -1;
    double t0 = now_seconds();
    int said = 0;
    bridge_wait_cut = 0;
    waiting_for_bridge = 1;
    for (;;) {
        poll_bridge(tr, 1);
        if (tr->bridge_pid <= 0 || bridge_wait_cut) break;
        double waited = now_seconds() - t0;
        if (waited >= BRIDGE_WAIT_SECONDS) break;
        if (waited >= 3 && !said++)
            say(tr, "note: waiting up to %d s for the wandb bridge to send the last records (interrupt to leave it "
                "running)", BRIDGE_WAIT_SECONDS);
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    waiting_for_bridge = 0;
    if (tr->bridge_pid <= 0) return;
    say(tr, "note: the wandb bridge (pid %ld) is still sending; it finishes on its own (log: %s)", (long)tr->bridge_pid,
        tr->bridge_log);
    tr->bridge_pid = 0;
}

/* The step loop's own bookkeeping (timings, this run's counts). */
typedef struct {
    int32_t *x, *y;
    double run_start, last_end, time0, loop_start;
    uint64_t run_steps, run_start_step;
    double t_sample, t_model, t_update, t_log, t_save;
    int finished, save_failed;
    int swapped;           /* the last step's update became the good state (the previous one is in new_*) */
} Loop;

/* Nonzero (with e set) when the .bin has shrunk under its mapping.  A .bin
 * replaced by another file (rename) is harmless: the mapping keeps the old one. */
static int data_truncated(const Trainer *tr, Error *e)
{
    struct stat sb;
    if (stat(tr->ds.bin_path, &sb) || sb.st_dev != tr->bin_dev || sb.st_ino != tr->bin_ino
        || (uint64_t)sb.st_size >= (uint64_t)tr->ds.bin_len)
        return 0;
    return fail(e, "%s: truncated while training (now %lld bytes, was %zu)", tr->ds.bin_path,
                (long long)sb.st_size, tr->ds.bin_len);
}

/* The micro-batch of step tr->c.step: inputs x and targets y (shifted by one). */
static int fill_batch(Trainer *tr, int32_t *x, int32_t *y, Error *e)
{
    const TrainOptions *a = tr->o;
    if (data_truncated(tr, e)) return -1;
    if (sigsetjmp(batch_jump, 1)) {
        batch_guarded = 0;
        if (!data_truncated(tr, e)) fail(e, "%s: read error (SIGBUS) in the mapped data", tr->ds.bin_path);
        return -1;
    }
    batch_guarded = 1;
    for (uint64_t m = 0; m < a->micro_bsz; m++) {
        uint64_t pos = sampler_step_pos(&tr->smp, tr->c.step, (uint64_t)tr->rank, m);
        for (uint64_t t = 0; t < a->ctx_len; t++) {
            x[m * a->ctx_len + t] = (int32_t)binidx_token(&tr->ds, pos + t);
            y[m * a->ctx_len + t] = (int32_t)binidx_token(&tr->ds, pos + t + 1);
        }
    }
    batch_guarded = 0;
    return 0;
}

/* Where the first non-finite value of a state is (or a negative second moment),
 * as "adam_v of head.weight"; 0 when there is none. */
static int find_nonfinite(const Trainer *tr, const float *w, const float *m, const float *v, char *where, size_t n)
{
    size_t total = tr->layout.total, first = total;
    #pragma omp parallel for reduction(min:first) schedule(static)
    for (size_t i = 0; i < total; i++)
        if (!isfinite(w[i]) || !isfinite(m[i]) || !isfinite(v[i]) || !(v[i] >= 0)) first = i < first ? i : first;
    if (first == total) return 0;
    const char *what = !isfinite(w[first]) ? "the weight" : !isfinite(m[first]) ? "adam_m" : "adam_v";
    const char *name = "?";
    for (int k = 0; k < tr->layout.n; k++)
        if (first >= tr->layout.p[k].offset && first - tr->layout.p[k].offset < tr->layout.p[k].numel) name = tr->layout.p[k].name;
    snprintf(where, n, "%s of %s", what, name);
    return 1;
}

static void swap_good(Trainer *tr)
{
    float *t;
    t = tr->good_w; tr->good_w = tr->new_w; tr->new_w = t;
    t = tr->good_m; tr->good_m = tr->new_m; tr->new_m = t;
    t = tr->good_v; tr->good_v = tr->new_v; tr->new_v = t;
}

/* One optimizer step.  An update that would leave any weight or Adam moment
 * non-finite (e.g. g^2 overflowing fp32 with --grad_clip 0) is undone: the
 * backend gets the previous state back and the step counts as skipped, like a
 * step with a non-finite loss, so a saved state is always finite. */
static int train_step(Trainer *tr, Loop *lp, double lr, StepResult *res, Error *e)
{
    double ts0 = now_seconds();
    if (fill_batch(tr, lp->x, lp->y, e)) return -1;
    lp->t_sample += now_seconds() - ts0;
    StepArgs sa = { .adam_step = tr->c.adam_step + 1, .lr = lr, .poison = poisoned(tr->c.step) };
    if (tr->be->step(tr->be, lp->x, lp->y, &sa, res, e)) return -1;
    lp->t_model += res->t_model;
    lp->t_update += res->t_update;
    char where[160] = "";
    lp->swapped = 0;
    if (tr->be->checks_update) {   /* checked on the device: nothing to copy */
        if (res->applied) tr->host_stale = 1;
        else snprintf(where, sizeof where, "%s", res->refused);
    } else if (res->applied) {
        double tc0 = now_seconds();
        if (tr->be->get_state(tr->be, tr->new_w, tr->new_m, tr->new_v, e)) return -1;
        if (find_nonfinite(tr, tr->new_w, tr->new_m, tr->new_v, where, sizeof where)) {
            if (tr->be->set_state(tr->be, tr->good_w, tr->good_m, tr->good_v, e)) return -1;
            res->applied = 0;
        } else {
            swap_good(tr);
            lp->swapped = 1;
        }
        lp->t_update += now_seconds() - tc0;
    }
    uint64_t step_done = tr->c.step;
    tr->c.step++;
    tr->c.warm_step++;
    lp->run_steps++;
    if (res->applied) {
        tr->c.adam_step++;
        tr->c.bad_in_row = 0;
        tr->c.epoch_loss_sum += res->loss;
        tr->c.epoch_loss_n++;
        return 0;
    }
    tr->c.bad_in_row++;
    tr->c.bad_total++;
    end_progress_line(tr);
    if (*where)
        say(tr, "step %" PRIu64 ": the update would make %s non-finite (loss %g, grad norm %g): update skipped, weights and "
            "moments kept (%" PRIu64 " in a row, %" PRIu64 " in all)%s", step_done, where, res->loss, res->grad_norm,
            tr->c.bad_in_row, tr->c.bad_total,
            tr->adam.grad_clip > 0 ? "" : "; --grad_clip 0 turns clipping off, so a huge gradient can overflow fp32");
    else
        say(tr, "step %" PRIu64 ": non-finite %s (loss %g, grad norm %g): update skipped (%" PRIu64 " in a row, %" PRIu64
            " in all)", step_done, isfinite(res->loss) ? "gradient norm" : "loss", res->loss, res->grad_norm,
            tr->c.bad_in_row, tr->c.bad_total);
    return 0;
}

/* metrics.jsonl record and progress line of the step just done. */
static int log_step(Trainer *tr, Loop *lp, double lr, const StepResult *res, Error *e)
{
    FILE *progress = tr->o->progress;
    double tl0 = now_seconds(), dt = tl0 - lp->last_end;
    lp->last_end = tl0;
    tr->c.elapsed = lp->time0 + (tl0 - lp->run_start);
    char sl[32], slr[32], sg[32], stps[32], rec[512];
    json_num(sl, sizeof sl, res->loss, "%.6f");
    json_num(slr, sizeof slr, lr, "%.8g");
    json_num(sg, sizeof sg, res->grad_norm, "%.6g");
    struct timeval tv;
    gettimeofday(&tv, NULL);
    double tokens_per_s = dt > 0 ? (double)tr->sched.tokens_per_step / dt : 0, wall = (double)tv.tv_sec + tv.tv_usec / 1e6;
    json_num(stps, sizeof stps, tokens_per_s, "%.1f");
    snprintf(rec, sizeof rec, "{\"step\":%" PRIu64 ",\"loss\":%s,\"lr\":%s,\"grad_norm\":%s,\"tokens\":%" PRIu64
             ",\"tokens_per_s\":%s,\"time\":%.3f%s}\n", tr->c.step - 1, sl, slr, sg, tr->c.step * tr->sched.tokens_per_step,
             stps, wall, res->applied ? "" : ",\"skipped\":true");
    if (tr->rank != 0) { lp->t_log += now_seconds() - tl0; return 0; }   /* rank 0 logs for all */
    if (append_record(tr->metrics_fd, tr->metrics_path, rec, e)) return -1;
    if (tr->tb.fd >= 0) {
        /* The values as metrics.jsonl has them (null: NaN), so both logs agree exactly. */
        static const char *const tags[] = { "loss", "lr", "grad_norm", "tokens_per_s" };
        const char *text[] = { sl, slr, sg, stps };
        float vals[4];
        for (int i = 0; i < 4; i++) vals[i] = strcmp(text[i], "null") ? (float)strtod(text[i], NULL) : NAN;
        Error te;
        tb_fault_hook(tr);
        if (tb_scalars(&tr->tb, (int64_t)(tr->c.step - 1), wall, tags, vals, 4, &te)) {
            end_progress_line(tr);
            say(tr, "warning: %s; TensorBoard logging stopped, training goes on (metrics.jsonl has every step)", te.msg);
            tb_close(&tr->tb, NULL);
        }
    }
    if (progress) {
        double avg = tr->c.epoch_loss_n ? tr->c.epoch_loss_sum / (double)tr->c.epoch_loss_n : NAN;
        double per_step = (tl0 - lp->run_start) / (double)lp->run_steps;
        char eta[32], done_tok[32];
        fmt_duration(eta, sizeof eta, per_step * (double)(tr->exit_step - tr->c.step));
        fmt_count(done_tok, sizeof done_tok, (double)(tr->c.step * tr->sched.tokens_per_step));
        fprintf(progress, "\rstep %" PRIu64 "/%" PRIu64 "  loss %.4f  lr %.3e  %.2f kt/s  %s tokens  ETA %s   ",
                tr->c.step, tr->exit_step, avg, lr, tokens_per_s / 1e3, done_tok, eta);
    }
    lp->t_log += now_seconds() - tl0;
    return 0;
}

/* At a miniepoch's end the train_log line and, every --epoch_save miniepochs,
 * rwkv-E (absolute epoch numbering, see the man page) with a state; otherwise
 * a state when --save_steps or --save_minutes says so.  A failed save is a
 * warning (training continues); a failed train_log write stops the run. */
static int save_if_due(Trainer *tr, Loop *lp, double lr, Error *e)
{
    const TrainOptions *a = tr->o;
    double ts0 = now_seconds();
    int saved_state = 0, rc = 0;
    Error se;
    if (tr->c.step % tr->smp.epoch_steps == 0) {
        uint64_t ep = tr->c.step / tr->smp.epoch_steps - 1;
        double avg = tr->c.epoch_loss_n ? tr->c.epoch_loss_sum / (double)tr->c.epoch_loss_n : NAN;
        char ts[64], line[256];
        now_string(ts, sizeof ts);
        snprintf(line, sizeof line, "%" PRIu64 " %.6f %.4f %.8f %s %" PRIu64 "\n", ep, avg, exp(avg), lr, ts,
                 ep - lp->run_start_step / tr->smp.epoch_steps);
        rc = tr->rank == 0 ? append_log(tr, line, e) : 0;
        tr->c.epoch_loss_sum = 0;
        tr->c.epoch_loss_n = 0;
        /* with several ranks the saves are collective: rank 0 takes part even after a failed log write */
        if ((rc == 0 || tr->world > 1) && (ep % a->epoch_save == 0 || ep + 1 == tr->smp.epoch_count)) {
            char name[64];
            snprintf(name, sizeof name, "rwkv-%" PRIu64, ep);
            if (save_weights(tr, name, &se)) { say(tr, "warning: %s", se.msg); lp->save_failed = 1; }
            if (save_state(tr, &se)) { say(tr, "warning: state not saved: %s", se.msg); lp->save_failed = 1; }
            else saved_state = 1;
        }
    }
    int minutes_due = tr->world > 1 ? tr->minutes_due
                      : a->save_minutes > 0 && now_seconds() - tr->last_save_time >= a->save_minutes * 60;
    if ((rc == 0 || tr->world > 1) && !saved_state && ((a->save_steps && tr->c.step % a->save_steps == 0) || minutes_due)) {
        if (save_state(tr, &se)) { say(tr, "warning: state not saved (training continues): %s", se.msg); lp->save_failed = 1; }
    }
    lp->t_save += now_seconds() - ts0;
    return rc;
}

/* The final save and what the run says at its end; returns the exit status. */
static int report_end(Trainer *tr, Loop *lp, int status)
{
    const TrainOptions *a = tr->o;
    Error e;
    double loop_time = now_seconds() - lp->loop_start;
    if (a->progress) fputc('\n', a->progress);
    /* The good state is finite and matches the counters whatever stopped the run. */
    if (lp->finished && status == 0 && save_weights(tr, "rwkv-final", &e)) { say(tr, "%s", e.msg); status = 1; }
    char *path = state_path(a->proj_dir, tr->c.step);
    if (tr->state_lost) {
        /* take_step_back said so */
    } else if (save_state(tr, &e)) {
        say_all(tr, "training state not saved: %s", e.msg);
        status = 1;
    } else if (status == TRAIN_EXIT_SIGNAL && tr->stop_elsewhere)
        say(tr, "stopped by a signal to another rank after step %" PRIu64 "; state saved, resume by running the same command",
            tr->c.step);
    else if (status == TRAIN_EXIT_SIGNAL)
        say(tr, "stopped by %s after step %" PRIu64 "; state saved, resume by running the same command",
            signal_name(stop_signal), tr->c.step);
    else if (status != 0)
        say(tr, "state saved as %s (step %" PRIu64 "); resume by running the same command", path ? path : "?", tr->c.step);
    free(path);
    if (lp->finished && status == 0) {
        char also[512] = "";
        if (a->save_format == SAVE_BOTH) snprintf(also, sizeof also, " and %s/rwkv-final.pth", a->proj_dir);
        if (lp->run_steps == 0)   /* only a resumed state can be at the end (trainer_open refuses a fresh start there) */
            say(tr, "already complete: %s is at step %" PRIu64 ", the last step of this run; nothing trained; rewrote %s%s",
                tr->source, tr->c.step, tr->final_path, also);
        else
            say(tr, "finished at step %" PRIu64 " (%" PRIu64 " tokens); wrote %s%s", tr->c.step,
                tr->c.step * tr->sched.tokens_per_step, tr->final_path, also);
    }
    if (a->timing && lp->run_steps) {
        double T = loop_time > 0 ? loop_time : 1;
        say(tr, "timing: %" PRIu64 " steps, %" PRIu64 " tokens in %.3f s: %.1f tokens/s; "
            "model forward+backward %.2f%%, optimizer (norm, clip, Adam, bf16 copy, finiteness check) %.2f%%, data sampling "
            "%.2f%%, metrics/progress %.2f%%, saving %.2f%%, other %.2f%%", lp->run_steps,
            lp->run_steps * tr->sched.tokens_per_step, loop_time, (double)(lp->run_steps * tr->sched.tokens_per_step) / T,
            100 * lp->t_model / T, 100 * lp->t_update / T, 100 * lp->t_sample / T, 100 * lp->t_log / T,
            100 * lp->t_save / T, 100 * (T - lp->t_model - lp->t_update - lp->t_sample - lp->t_log - lp->t_save) / T);
    }
    if (tr->be && tr->be->device_peak)
        say(tr, "%s: device memory high-water %.0f MiB", tr->be->name, tr->be->device_peak(tr->be) / 1048576.0);
    if (status == 0 && lp->save_failed) say(tr, "note: some periodic saves failed (see above)");
    if (tr->metrics_fd >= 0 && close(tr->metrics_fd) && status == 0) {
        say(tr, "%s: write failed: %s", tr->metrics_path, strerror(errno));
        status = 1;
    }
    tr->metrics_fd = -1;
    if (tb_close(&tr->tb, &e)) say(tr, "warning: %s", e.msg);
    finish_bridge(tr);
    return status;
}

/* A log write (metrics.jsonl, train_log.txt) failed after a step: take the step
 * back, so the state saved is the one before it and the next run redoes it (the
 * logs then have no gap).  Returns the run's exit status. */
static int take_step_back(Trainer *tr, Loop *lp, const TrainCounters *before, const Error *e)
{
    end_progress_line(tr);
    if (tr->world > 1) {
        /* the other ranks have gone on: they learn of it at the next agreement, and then all
         * stop without saving again (the collective saves of this step have been made) */
        say(tr, "%s; stopping all ranks (the next run resumes from the last saved state)", e->msg);
        return 1;
    }
    if (tr->host_stale) {
        /* the step is applied on the device and the state before it is not on the host:
         * save nothing; the next run resumes from the last saved state, as after a kill */
        tr->state_lost = 1;
        say(tr, "%s; stopping without saving (the next run resumes from the last saved state)", e->msg);
        return 1;
    }
    if (lp->swapped) swap_good(tr);
    tr->c = *before;
    say(tr, "%s; stopping (step %" PRIu64 " is not counted: the next run redoes it)", e->msg, tr->c.step);
    return 1;
}

/* What all ranks decided at the top of a step (data parallel). */
typedef struct { int stop, out_of_time, minutes_due, failed; } Agreed;

/* One all-reduce per step: a stop signal on any rank, rank 0's clock (--max_minutes,
 * --save_minutes) and a failure on rank 0 (pending: its exit status) become every rank's. */
static int agree(Trainer *tr, const Loop *lp, int pending, Agreed *ag, Error *e)
{
    const TrainOptions *a = tr->o;
    int r0 = tr->rank == 0;
    double now = now_seconds();
    double f[4] = { stop_signal != 0, r0 && a->max_minutes > 0 && now - lp->run_start >= a->max_minutes * 60,
                    r0 && a->save_minutes > 0 && now - tr->last_save_time >= a->save_minutes * 60, r0 && pending };
    if (comm_all_reduce(a->comm, f, 4, COMM_F64, e)) return -1;
    ag->stop = f[0] > 0;
    ag->out_of_time = f[1] > 0;
    tr->minutes_due = ag->minutes_due = f[2] > 0;
    ag->failed = f[3] > 0;
    return 0;
}

static int too_many_bad(Trainer *tr)
{
    end_progress_line(tr);
    say(tr, "stopping: %" PRIu64 " non-finite steps in a row (last at step %" PRIu64 "); their updates were not "
        "applied", tr->c.bad_in_row, tr->c.step - 1);
    return TRAIN_EXIT_NONFINITE;
}

int trainer_run(Trainer *tr)
{
    TrainOptions *a = tr->o;
    Error e;
    install_signals();   /* before the first message: a closed stderr must not kill the run */
    int rc = open_backend(tr, &e);
    if (rc) { say_all(tr, "%s", e.msg); return rc == TRAIN_EXIT_USAGE ? rc : 1; }
    if (a->wandb_project && *a->wandb_project && tr->rank == 0) start_bridge(tr);
    Loop lp = { 0 };
    size_t bt = (size_t)a->micro_bsz * a->ctx_len;
    lp.x = malloc(bt * sizeof *lp.x);
    lp.y = malloc(bt * sizeof *lp.y);
    if (!lp.x || !lp.y) { free(lp.x); free(lp.y); say(tr, "out of memory"); return 1; }
    lp.run_start = lp.last_end = lp.loop_start = now_seconds();
    lp.time0 = tr->c.elapsed;
    lp.run_start_step = tr->c.step;
    tr->last_save_time = lp.run_start;
    int status = 0, pending = 0, dp = tr->world > 1;
    for (;;) {
        Agreed ag = { stop_signal != 0, a->max_minutes > 0 && now_seconds() - lp.run_start >= a->max_minutes * 60, 0, 0 };
        if (dp) {
            /* every decision that could differ between ranks is taken together (the rest
             * follows from the step counter and the StepResult, which all ranks share) */
            if (agree(tr, &lp, pending, &ag, &e)) {
                end_progress_line(tr);
                tr->state_lost = 1;   /* the communicator is broken: no collective save */
                say_all(tr, "%s; stopping without saving (the next run resumes from the last saved state)", e.msg);
                status = 1;
                break;
            }
            if (ag.failed) {
                tr->state_lost = 1;
                if (tr->rank != 0) say_all(tr, "stopping: rank 0 failed (see its message)");
                status = tr->rank == 0 ? pending : 1;
                break;
            }
            if (tr->c.bad_in_row >= a->max_bad) { status = too_many_bad(tr); break; }
        }
        if (ag.stop) { tr->stop_elsewhere = !stop_signal; status = TRAIN_EXIT_SIGNAL; break; }
        int done;
        double lr = lr_at(&tr->sched, tr->c.step, tr->c.warm_step, &done);
        if (done) { lp.finished = 1; break; }
        if (a->exit_after && lp.run_steps >= a->exit_after) break;
        if (ag.out_of_time) break;
        TrainCounters before = tr->c;
        StepResult res;
        if (train_step(tr, &lp, lr, &res, &e)) {
            end_progress_line(tr);
            /* a backend that failed mid-step may hold a half-applied update that the host copy
             * does not: do not save it under the old counters */
            if (tr->host_stale || dp) tr->state_lost = 1;
            say_all(tr, "%s; stopping%s", e.msg, tr->state_lost ? " without saving (the next run resumes from the last saved state)" : "");
            status = 1;
            break;
        }
        if (log_step(tr, &lp, lr, &res, &e)) {
            status = take_step_back(tr, &lp, &before, &e);
            if (!dp) break;
            pending = status;   /* the others stop at the next agreement; until then rank 0 keeps in step */
        }
        poll_bridge(tr, 0);
        if (!dp && tr->c.bad_in_row >= a->max_bad) { status = too_many_bad(tr); break; }
        if (save_if_due(tr, &lp, lr, &e) && !pending) {
            status = take_step_back(tr, &lp, &before, &e);
            if (!dp) break;
            pending = status;
        }
    }
    status = report_end(tr, &lp, status);
    free(lp.x);
    free(lp.y);
    return status;
}

void trainer_close(Trainer *tr)
{
    if (!tr) return;
    if (tr->metrics_fd >= 0) close(tr->metrics_fd);   /* only after a failed start */
    if (tr->be) tr->be->free(tr->be);
    if (tr->resumed == 1) trainstate_free(&tr->st);
    model_free(&tr->start);
    model_free(&tr->host);
    free(tr->good_w); free(tr->good_m); free(tr->good_v);
    free(tr->new_w); free(tr->new_m); free(tr->new_v);
    free_found(tr->states, tr->nstates_all);
    free_found(tr->epochs, tr->nepochs);
    layout_free(&tr->layout);
    binidx_close(&tr->ds);
    free(tr->final_path);
    free(tr->init_path);
    free(tr->metrics_path);
    free(tr->log_path);
    if (tr->lock_fd >= 0) close(tr->lock_fd);
    tb_close(&tr->tb, NULL);
    if (tr->bridge_fd >= 0) close(tr->bridge_fd);
    free(tr->bridge_log);
    free(tr);
}
