/* The MPI backend (built when saec finds MPI): CPU buffers, which are host memory.
 *
 * MPI is initialised on first use (MPI_THREAD_FUNNELED: only the main thread calls MPI; OpenMP
 * threads never do) and finalised by the last close if saec initialised it. saec works on its
 * own duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN. Every collective is non-blocking
 * (MPI_I*) and polled with MPI_Test*, so that a wait is bounded: past the timeout the rank prints
 * what it was waiting for and calls MPI_Abort, which ends every rank of the job. Counts passed
 * to MPI are elements; a buffer of more than 2^30 elements goes in several requests.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm_mpi.h"
#include "comm_util.h"
#include "clock.h" /* saec_now: the monotonic clock */
#include "saec/saec.h"

#define MPI_CHUNK ((int64_t)1 << 30) /* elements per request: MPI counts are int */

struct saec_mpi {
    MPI_Comm comm;
    int rank, size;
    double timeout_s;
    MPI_Request *grad_reqs; /* started gradient buckets */
    int n_grad, cap_grad;
    int64_t grad_elems;
    int grad_buckets;
};

static int n_open = 0;         /* open saec_mpi objects in this process */
static int we_initialised = 0; /* saec called MPI_Init_thread, so saec finalises */

static MPI_Datatype mpi_type(saec_dtype dt) {
    switch (dt) {
    case SAEC_DT_F32: return MPI_FLOAT;
    case SAEC_DT_F64: return MPI_DOUBLE;
    case SAEC_DT_I64: return MPI_INT64_T;
    }
    return MPI_DATATYPE_NULL;
}

static MPI_Op mpi_op(saec_redop op) {
    switch (op) {
    case SAEC_RED_SUM: return MPI_SUM;
    case SAEC_RED_MIN: return MPI_MIN;
    case SAEC_RED_MAX: return MPI_MAX;
    }
    return MPI_OP_NULL;
}

static int mpi_fail(int code, const char *what) {
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, s, &len);
    return saec_fail(SAEC_ERR_OTHER, SAEC_COMM_HANG_HINT, "MPI %s failed: %s", what, s);
}

/* A wait past the timeout cannot be undone (the other ranks are inside the collective), so the
   rank explains and ends the job. */
static void mpi_timeout(const saec_mpi *m, const char *what, double waited) {
    fprintf(stderr,
            "saec: error: %s over MPI did not complete within %.1f s on rank %d of %d; aborting "
            "every rank\n  hint: %s\n",
            what, waited, m->rank, m->size, SAEC_COMM_HANG_HINT);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, SAEC_ERR_OTHER);
    exit(SAEC_ERR_OTHER); /* MPI_Abort does not return; in case it does */
}

/* Polls until every request is complete; bounded by the timeout. */
static int mpi_wait(const saec_mpi *m, int n, MPI_Request *reqs, const char *what) {
    double t0 = saec_now();
    long polls = 0;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
        if (done) return SAEC_OK;
        double waited = saec_now() - t0;
        if (waited > m->timeout_s) mpi_timeout(m, what, waited);
        saec_comm_poll_pause(&polls);
    }
}

int saec_mpi_open(const saec_world *w, double timeout_s, saec_mpi **out) {
    *out = NULL;
    int inited = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        return saec_fail(SAEC_ERR_OTHER, "open one communicator per process and keep it open",
                         "MPI was already finalised in this process");
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "initialisation (MPI_Init_thread)");
        we_initialised = 1;
    }
    int size = 0, rank = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (size != w->size || rank != w->rank)
        return saec_fail(SAEC_ERR_USAGE,
                         "launch with the mpirun of the MPI saec was built with (under Slurm: "
                         "srun --mpi=pmix, or mpirun inside the allocation)",
                         "MPI sees rank %d of %d, but the launcher (%s) says rank %d of %d", rank,
                         size, w->launcher, w->rank, w->size);
    saec_mpi *m = calloc(1, sizeof *m);
    if (!m) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening MPI");
    m->rank = rank;
    m->size = size;
    m->timeout_s = timeout_s;
    MPI_Request req;
    int rc = MPI_Comm_idup(MPI_COMM_WORLD, &m->comm, &req);
    if (rc == MPI_SUCCESS)
        rc = mpi_wait(m, 1, &req, "communicator set-up (MPI_Comm_idup)");
    else
        rc = mpi_fail(rc, "communicator set-up (MPI_Comm_idup)");
    if (rc != SAEC_OK) {
        free(m);
        return rc;
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    n_open++;
    *out = m;
    return SAEC_OK;
}

void saec_mpi_close(saec_mpi *m) {
    if (!m) return;
    if (m->n_grad > 0) { /* buckets started and never waited for: complete them first */
        mpi_wait(m, m->n_grad, m->grad_reqs, "gradient all-reduce (at close)");
        saec_error_clear();
    }
    free(m->grad_reqs);
    MPI_Comm_free(&m->comm);
    free(m);
    if (--n_open == 0 && we_initialised) {
        MPI_Finalize();
        we_initialised = 0;
    }
}

/* Starts MPI_Iallreduce on buf[count] in chunks of at most MPI_CHUNK elements; reqs gets one
   request per chunk (the caller sized it). */
static int start_allreduce(saec_mpi *m, void *buf, int64_t count, saec_dtype dt, saec_redop op,
                           MPI_Request *reqs, int *n_reqs, const char *what) {
    size_t es = saec_dtype_size(dt);
    int n = 0;
    for (int64_t off = 0; off < count; off += MPI_CHUNK) {
        int64_t len = count - off < MPI_CHUNK ? count - off : MPI_CHUNK;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * es, (int)len,
                                mpi_type(dt), mpi_op(op), m->comm, &reqs[n]);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
        n++;
        *n_reqs = n;
    }
    return SAEC_OK;
}

static int n_chunks(int64_t count) { return (int)((count + MPI_CHUNK - 1) / MPI_CHUNK); }

int saec_mpi_allreduce(saec_mpi *m, void *buf, int64_t count, saec_dtype dt, saec_redop op) {
    if (count <= 0) return SAEC_OK;
    char what[96];
    snprintf(what, sizeof what, "all-reduce (%lld x %s, %s)", (long long)count, saec_dtype_name(dt),
             saec_redop_name(op));
    int nc = n_chunks(count), n = 0;
    MPI_Request one[4], *reqs = nc <= 4 ? one : malloc((size_t)nc * sizeof *reqs);
    if (!reqs) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in an %s", what);
    int rc = start_allreduce(m, buf, count, dt, op, reqs, &n, what);
    /* requests already started must complete even when a later one failed to start */
    int rc_wait = n > 0 ? mpi_wait(m, n, reqs, what) : SAEC_OK;
    if (reqs != one) free(reqs);
    return rc != SAEC_OK ? rc : rc_wait;
}

int saec_mpi_allgather_blocks(saec_mpi *m, void *buf, int64_t count, saec_dtype dt) {
    if (count <= 0) return SAEC_OK;
    char what[96];
    snprintf(what, sizeof what, "all-gather (%d blocks of %lld x %s)", m->size, (long long)count,
             saec_dtype_name(dt));
    /* MPI counts are int: a larger block goes as fewer elements of a contiguous type (blocks
       are laid out back to back, so they cannot be split into several requests). */
    int64_t unit = 1;
    while (count / unit > INT_MAX && count % (2 * unit) == 0)
        unit *= 2;
    if (count / unit > INT_MAX)
        return saec_fail(SAEC_ERR_OTHER, "use more ranks, or turn zero_stage off",
                         "%s: a block of %lld elements is beyond MPI's int counts", what,
                         (long long)count);
    MPI_Datatype type = mpi_type(dt);
    int rc = MPI_SUCCESS;
    if (unit > 1) {
        rc = MPI_Type_contiguous((int)unit, mpi_type(dt), &type);
        if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&type);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
    }
    MPI_Request req;
    rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)(count / unit), type, m->comm,
                        &req);
    int out = rc == MPI_SUCCESS ? mpi_wait(m, 1, &req, what) : mpi_fail(rc, what);
    if (unit > 1) MPI_Type_free(&type);
    return out;
}

int saec_mpi_grad_start(saec_mpi *m, float *buf, int64_t count) {
    if (count <= 0) return SAEC_OK;
    int nc = n_chunks(count);
    if (m->n_grad + nc > m->cap_grad) {
        int cap = m->cap_grad ? 2 * m->cap_grad : 16;
        while (cap < m->n_grad + nc)
            cap *= 2;
        MPI_Request *r = realloc(m->grad_reqs, (size_t)cap * sizeof *r);
        if (!r) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory starting a gradient bucket");
        m->grad_reqs = r;
        m->cap_grad = cap;
    }
    int n = 0;
    int rc = start_allreduce(m, buf, count, SAEC_DT_F32, SAEC_RED_SUM, m->grad_reqs + m->n_grad, &n,
                             "gradient all-reduce");
    m->n_grad += n;
    m->grad_elems += count;
    m->grad_buckets++;
    if (rc != SAEC_OK) return rc;
    /* MPI progresses non-blocking collectives inside MPI calls: nudge the earlier buckets. */
    int done = 0;
    MPI_Testall(m->n_grad, m->grad_reqs, &done, MPI_STATUSES_IGNORE);
    return SAEC_OK;
}

int saec_mpi_grad_wait(saec_mpi *m) {
    if (m->n_grad == 0) return SAEC_OK;
    char what[96];
    snprintf(what, sizeof what, "gradient all-reduce (%d buckets, %lld x f32)", m->grad_buckets,
             (long long)m->grad_elems);
    int rc = mpi_wait(m, m->n_grad, m->grad_reqs, what);
    m->n_grad = 0;
    m->grad_elems = 0;
    m->grad_buckets = 0;
    return rc;
}

int saec_mpi_bcast(saec_mpi *m, void *buf, size_t bytes, int root) {
    const char *what = "host broadcast";
    int nc = n_chunks((int64_t)bytes), n = 0, rc = SAEC_OK;
    if (nc == 0) return SAEC_OK;
    MPI_Request one[4], *reqs = nc <= 4 ? one : malloc((size_t)nc * sizeof *reqs);
    if (!reqs) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in a %s", what);
    for (size_t off = 0; off < bytes && rc == SAEC_OK; off += (size_t)MPI_CHUNK) {
        size_t len = bytes - off < (size_t)MPI_CHUNK ? bytes - off : (size_t)MPI_CHUNK;
        int e = MPI_Ibcast((char *)buf + off, (int)len, MPI_BYTE, root, m->comm, &reqs[n]);
        if (e != MPI_SUCCESS)
            rc = mpi_fail(e, what);
        else
            n++;
    }
    int rc_wait = n > 0 ? mpi_wait(m, n, reqs, what) : SAEC_OK;
    if (reqs != one) free(reqs);
    return rc != SAEC_OK ? rc : rc_wait;
}

int saec_mpi_allgather(saec_mpi *m, const void *mine, size_t bytes, char **data, size_t *sizes) {
    const char *what = "host all-gather";
    *data = NULL;
    int n = m->size;
    uint64_t my_len = bytes, *lens = malloc((size_t)n * sizeof *lens);
    int *counts = malloc((size_t)n * sizeof *counts), *displs = malloc((size_t)n * sizeof *displs);
    char *all = NULL;
    int rc = SAEC_OK;
    if (!lens || !counts || !displs)
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in a %s", what);
    MPI_Request req;
    if (rc == SAEC_OK) {
        int e = MPI_Iallgather(&my_len, 1, MPI_UINT64_T, lens, 1, MPI_UINT64_T, m->comm, &req);
        rc = e == MPI_SUCCESS ? mpi_wait(m, 1, &req, what) : mpi_fail(e, what);
    }
    uint64_t total = 0;
    for (int r = 0; rc == SAEC_OK && r < n; r++) {
        displs[r] = (int)total;
        counts[r] = (int)lens[r];
        total += lens[r];
        if (total > INT_MAX) /* every rank sees the same lengths, so every rank stops here */
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "%s: more than 2 GiB in all", what);
        sizes[r] = (size_t)lens[r];
    }
    if (rc == SAEC_OK && !(all = malloc(total ? (size_t)total : 1)))
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in a %s", what);
    if (rc == SAEC_OK) {
        static const char none = 0;
        int e = MPI_Iallgatherv(bytes ? mine : &none, (int)bytes, MPI_BYTE, all, counts, displs,
                                MPI_BYTE, m->comm, &req);
        rc = e == MPI_SUCCESS ? mpi_wait(m, 1, &req, what) : mpi_fail(e, what);
    }
    free(lens);
    free(counts);
    free(displs);
    if (rc != SAEC_OK) {
        free(all);
        return rc;
    }
    *data = all;
    return SAEC_OK;
}
