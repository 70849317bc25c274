/* The check/report harness shared by every C test: each failure prints the case under test
   (set_ctx), the failing line and the condition; main returns check_summary(name), nonzero when
   a check failed. */
#ifndef SAEC_TESTS_CHECK_H
#define SAEC_TESTS_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "saec/saec.h"

static int n_failures = 0, n_checks = 0;
static char ctx[256] = ""; /* the case under test, printed with each failure */

static inline void set_ctx(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
}

/* One failure: the context, the place, the condition (when the message is empty) or the message. */
static inline void fail_at(const char *file, int line, const char *cond, const char *fmt, ...) {
    if (ctx[0])
        fprintf(stderr, "FAIL [%s] (%s:%d): ", ctx, file, line);
    else
        fprintf(stderr, "FAIL (%s:%d): ", file, line);
    if (!fmt[0]) {
        fprintf(stderr, "check failed: %s\n", cond);
    } else {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    if (saec_error_code()) fprintf(stderr, "    last error: %s\n", saec_error_message());
    n_failures++;
}

/* CHECK(cond) or CHECK(cond, "printf format", args...): counts the check; a failure is reported
   and the test goes on. (The message, when given, must start with a string literal.) */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        n_checks++;                                                                                \
        if (!(cond)) fail_at(__FILE__, __LINE__, #cond, "" __VA_ARGS__);                           \
    } while (0)

/* REQUIRE(cond, ...): as CHECK, but a failure returns 1 from the enclosing function (an attempt
   that cannot go on). */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        n_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            fail_at(__FILE__, __LINE__, #cond, "" __VA_ARGS__);                                    \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* An op call that must succeed. */
#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == SAEC_OK, "%s returned %d: %s", #call, rc_, saec_error_message());             \
        saec_error_clear();                                                                        \
    } while (0)

/* An op call that must be rejected as a caller bug (SAEC_ERR_OTHER). */
#define REJECTED(call)                                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == SAEC_ERR_OTHER, "%s returned %d, expected SAEC_ERR_OTHER", #call, rc_);       \
        saec_error_clear();                                                                        \
    } while (0)

/* got [n] against want [n]: |got − want| <= atol + rtol * scale[i] (scale NULL: |want|), or
   got == want (the same infinity). NaN fails. One check per call; the report names the first
   offending element, how many there are and the worst error in units of the tolerance. */
#define CHECK_CLOSE_DEFINE_(fn, want_type)                                                         \
    static inline void fn(const char *file, int line, const char *what, const float *got,          \
                          const want_type *want,                                                   \
                          const double *scale, int64_t n, double atol, double rtol) {              \
        int64_t bad = 0, first = -1;                                                               \
        double worst = 0;                                                                          \
        for (int64_t i = 0; i < n; i++) {                                                          \
            const double w = (double)want[i];                                                      \
            const double s = scale ? scale[i] : fabs(w);                                           \
            const double err = fabs((double)got[i] - w);                                           \
            const double tol = atol + rtol * s;                                                    \
            if (!(err <= tol) && !((double)got[i] == w)) {                                         \
                if (first < 0) first = i;                                                          \
                bad++;                                                                             \
                if (err / tol > worst || err != err) worst = err / tol;                            \
            }                                                                                      \
        }                                                                                          \
        n_checks++;                                                                                \
        if (bad)                                                                                   \
            fail_at(file, line, what,                                                              \
                    "%s: %lld of %lld elements off (first [%lld]: got %.9g, want %.9g; worst "     \
                    "%.3g x tol; atol %.1e rtol %.1e)",                                            \
                    what, (long long)bad, (long long)n, (long long)first, (double)got[first],      \
                    (double)want[first], worst, atol, rtol);                                       \
    }
CHECK_CLOSE_DEFINE_(check_close, double) /* against a double reference (naive loops) */
CHECK_CLOSE_DEFINE_(check_close_f, float) /* against a float reference (another backend) */
#undef CHECK_CLOSE_DEFINE_
#define CHECK_CLOSE(what, got, want, scale, n, atol, rtol)                                         \
    check_close(__FILE__, __LINE__, what, got, want, scale, n, atol, rtol)
#define CHECK_CLOSE_F(what, got, want, scale, n, atol, rtol)                                       \
    check_close_f(__FILE__, __LINE__, what, got, want, scale, n, atol, rtol)

/* Doubles (device scalars): |got − want| <= atol + rtol * |want|, one check per element up to
   the first failure. */
static inline void check_close_d(const char *file, int line, const char *what,
                                 const double *got, const double *want,
                          int64_t n, double atol, double rtol) {
    for (int64_t i = 0; i < n; i++) {
        const double err = fabs(got[i] - want[i]);
        n_checks++;
        if (!(err <= atol + rtol * fabs(want[i]))) {
            fail_at(file, line, what, "%s[%lld]: got %.17g, want %.17g (atol %.1e rtol %.1e)",
                    what, (long long)i, got[i], want[i], atol, rtol);
            return;
        }
    }
}
#define CHECK_CLOSE_D(what, got, want, n, atol, rtol)                                              \
    check_close_d(__FILE__, __LINE__, what, got, want, n, atol, rtol)

/* The exit status of a test: prints the tally, 1 when a check failed. */
static inline int check_summary(const char *test) {
    if (n_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", test, n_failures, n_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", test, n_checks);
    return 0;
}

#endif
