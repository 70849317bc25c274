/* The communicator's helpers (comm_util.h): the leaf below comm.c and its backends. */
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "comm_util.h"
#include "saec/saec.h" /* saec_fail */

size_t saec_dtype_size(saec_dtype dt) {
    switch (dt) {
    case SAEC_DT_F32: return 4;
    case SAEC_DT_F64: return 8;
    case SAEC_DT_I64: return 8;
    }
    return 0;
}

const char *saec_dtype_name(saec_dtype dt) {
    switch (dt) {
    case SAEC_DT_F32: return "f32";
    case SAEC_DT_F64: return "f64";
    case SAEC_DT_I64: return "i64";
    }
    return "?";
}

const char *saec_redop_name(saec_redop op) {
    switch (op) {
    case SAEC_RED_SUM: return "sum";
    case SAEC_RED_MIN: return "min";
    case SAEC_RED_MAX: return "max";
    }
    return "?";
}

void saec_comm_poll_pause(long *polls) {
    long n = (*polls)++;
    if (n < 100) return; /* a short spin: most collectives finish quickly */
    /* then sleep, longer as the wait drags on, so that waiting ranks leave the cores to the
       ranks still computing (several ranks often share a machine's cores) */
    long us = n < 1000 ? 20 : n < 3000 ? 100 : 1000;
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

int saec_comm_resolve_timeout(double arg, double *out) {
    const char *s = getenv("SAEC_COMM_TIMEOUT");
    if (s && *s) {
        char *end = NULL;
        double v = strtod(s, &end);
        if (end == s || *end != '\0' || !isfinite(v) || v <= 0)
            return saec_fail(SAEC_ERR_USAGE, "give the communication timeout in seconds, e.g. 600",
                             "SAEC_COMM_TIMEOUT='%s' is not a positive number of seconds", s);
        *out = v;
        return SAEC_OK;
    }
    *out = arg > 0 ? arg : SAEC_COMM_DEFAULT_TIMEOUT_S;
    return SAEC_OK;
}

#define REDUCE_LOOP(T)                                                                             \
    do {                                                                                           \
        T *o = out;                                                                                \
        const T *x = in;                                                                           \
        if (op == SAEC_RED_SUM)                                                                    \
            for (int64_t i = 0; i < count; i++)                                                    \
                o[i] += x[i];                                                                      \
        else if (op == SAEC_RED_MIN)                                                               \
            for (int64_t i = 0; i < count; i++)                                                    \
                o[i] = x[i] < o[i] ? x[i] : o[i];                                                  \
        else                                                                                       \
            for (int64_t i = 0; i < count; i++)                                                    \
                o[i] = x[i] > o[i] ? x[i] : o[i];                                                  \
    } while (0)

void saec_reduce_host(void *out, const void *in, int64_t count, saec_dtype dt, saec_redop op) {
    switch (dt) {
    case SAEC_DT_F32: REDUCE_LOOP(float); break;
    case SAEC_DT_F64: REDUCE_LOOP(double); break;
    case SAEC_DT_I64: REDUCE_LOOP(int64_t); break;
    }
}
