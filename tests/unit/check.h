/* check.h: the assertions every unit test program uses (header-only; one
 * translation unit per test program).
 *
 *   CHECK(cond, fmt, ...)        counts a failure and prints "FAIL file:line: msg"
 *   CHECK_EQ(got, want)          integers; the failure shows both expressions and values
 *   CHECK_NEAR(got, want, tol)   doubles: |got - want| <= tol (NaN fails)
 *   return check_done();         "all ok" and 0, or "N of M checks failed" and 1
 *
 * A test that reports measured figures (errors, frequencies) defines
 * CHECK_VERBOSE before including this, so passing checks print "ok: msg" too
 * and the log shows how close each figure came to its bound.  Failures go to
 * stdout, in order with the test's other output; tests/run.sh shows the log of
 * a failed program. */
#ifndef RWKV7C_CHECK_H
#define RWKV7C_CHECK_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#ifdef CHECK_VERBOSE
enum { check_verbose = 1 };
#else
enum { check_verbose = 0 };
#endif

static int fails;    /* failed checks so far (tests may read it) */
static int checks;   /* checks run so far */

__attribute__((format(printf, 4, 5)))
static inline int check_(int ok, const char *file, int line, const char *fmt, ...)
{
    checks++;
    if (ok && !check_verbose) return 1;
    if (ok) printf("ok: ");
    else { fails++; printf("FAIL %s:%d: ", file, line); }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    return ok;
}

#define CHECK(cond, ...) check_((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

/* Long long holds every value the tests compare (ids, counts, sizes, return codes). */
#define CHECK_EQ(got, want) do { long long got_ = (long long)(got), want_ = (long long)(want); \
        check_(got_ == want_, __FILE__, __LINE__, "%s = %lld, want %s = %lld", #got, got_, #want, want_); } while (0)

#define CHECK_NEAR(got, want, tol) do { double got_ = (got), want_ = (want), tol_ = (tol); \
        check_(fabs(got_ - want_) <= tol_, __FILE__, __LINE__, "%s = %.9g, want %.9g within %g", #got, got_, want_, tol_); \
    } while (0)

/* The last line of every unit test's output, and its exit status. */
static inline int check_done(void)
{
    if (fails) { printf("%d of %d checks failed\n", fails, checks); return 1; }
    printf("all ok (%d checks)\n", checks);
    return 0;
}
#endif
