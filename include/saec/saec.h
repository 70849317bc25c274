/* saec: sparse autoencoder training engine. Umbrella header: version, error codes, errors. */
#ifndef SAEC_SAEC_H
#define SAEC_SAEC_H

#include <stddef.h>
#include <stdint.h>

#define SAEC_VERSION "0.1.0"

/* Error codes double as the command's exit codes (SPEC §11). */
typedef enum {
    SAEC_OK = 0,
    SAEC_ERR_OTHER = 1,  /* anything else: I/O failure, out of memory, internal error */
    SAEC_ERR_USAGE = 2,  /* usage or configuration error */
    SAEC_ERR_DATA = 3,   /* bad input data: missing file, wrong dataset, NaN rows, ... */
    SAEC_ERR_DEVICE = 4, /* device error: no CUDA device, CUDA/cuBLAS failure */
} saec_status;

/* Record an error: `what` and `hint` are formatted messages; the first error wins until
   saec_error_clear(). Returns `code` so callers can write `return saec_fail(...)`. */
int saec_fail(int code, const char *hint, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
const char *saec_error_message(void); /* "" when none */
const char *saec_error_hint(void);    /* "" when none */
int saec_error_code(void);            /* SAEC_OK when none */
void saec_error_clear(void);

/* Propagate a failing status: `SAEC_TRY(f(x));` */
#define SAEC_TRY(expr)                                                                             \
    do {                                                                                           \
        int saec_try_rc_ = (expr);                                                                 \
        if (saec_try_rc_ != SAEC_OK) return saec_try_rc_;                                          \
    } while (0)

#endif
