/* The first error of an operation, with a hint, kept until cleared (one per thread). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "saec/saec.h"

static _Thread_local int err_code = SAEC_OK;
static _Thread_local char err_msg[1024];
static _Thread_local char err_hint[512];

int saec_fail(int code, const char *hint, const char *fmt, ...) {
    if (err_code != SAEC_OK) return code; /* keep the root cause, not its echoes */
    err_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    snprintf(err_hint, sizeof err_hint, "%s", hint ? hint : "");
    return code;
}

const char *saec_error_message(void) { return err_msg; }
const char *saec_error_hint(void) { return err_hint; }
int saec_error_code(void) { return err_code; }

void saec_error_clear(void) {
    err_code = SAEC_OK;
    err_msg[0] = '\0';
    err_hint[0] = '\0';
}
