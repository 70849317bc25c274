/* A tiny check/report harness shared by the op tests: each failure prints the op and size under
   test (set_ctx) and the failing line; main returns nonzero when n_failures > 0. */
#ifndef SAEC_TESTS_CHECK_H
#define SAEC_TESTS_CHECK_H

#include <stdarg.h>
#include <stdio.h>

#include "saec/saec.h"

static int n_failures = 0, n_checks = 0;
static char ctx[256] = ""; /* the op and size under test, printed with each failure */

static void set_ctx(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
}

static void fail_at(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "FAIL [%s] (%s:%d): ", ctx, file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    n_failures++;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        n_checks++;                                                                                \
        if (!(cond)) fail_at(__FILE__, __LINE__, __VA_ARGS__);                                     \
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

#endif
