/* The NCCL backend (built with CUDA and NCCL): device buffers of the CUDA backend.
 *
 * Ordering. saec_comm_allreduce runs on the device's stream, so it sees every op issued before
 * it and ops issued after see its result. Gradient buckets run on a separate, non-blocking
 * communication stream: grad_start records an event on the compute stream that the
 * communication stream waits for (the bucket's gradient is complete), and grad_wait records an
 * event on the communication stream that the compute stream waits for (the optimizer sees
 * summed gradients). The host never blocks on either.
 *
 * Bounded waits. Because the host does not wait for collectives, a watchdog thread does: every
 * collective leaves an event (a "mark") behind it on its stream, and every blocking NCCL call
 * (set-up, enqueue, shutdown) is registered while it runs. The watchdog polls
 * ncclCommGetAsyncError, the oldest mark and the running call; on an asynchronous error, or a
 * mark or call older than the timeout, it prints what it was waiting for, aborts the
 * communicator (ncclCommAbort) and ends the process with SAEC_ERR_DEVICE. The launcher
 * (torchrun, mpirun, srun) then stops the other ranks, whose own watchdogs fire otherwise. An
 * NCCL call that returns an error on the main thread aborts the communicator and returns it.
 *
 * The communicator is a plain blocking one (ncclCommInitRank): the watchdog bounds the calls
 * that block, so the non-blocking mode's ncclInProgress protocol is not needed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "comm_nccl.h"
#include "comm_util.h"
#include "cuda/cuda_internal.cuh" /* saec_cuda_stream, SAEC_CUDA_CHECK */
#include "clock.h" /* saec_now: the monotonic clock */
#include "saec/saec.h"

#define N_MARKS 256 /* collectives in flight that the watchdog tracks */
#define WATCHDOG_PERIOD_NS (100L * 1000 * 1000)

#define NCCL_HINT                                                                                  \
    "a rank died, hangs, or stopped calling collectives (read every rank's output); ranks must "   \
    "run the same configuration; NCCL_DEBUG=INFO shows NCCL's view, NCCL_SOCKET_IFNAME and "       \
    "NCCL_IB_HCA pick the network; SAEC_COMM_TIMEOUT (seconds) sets the wait"

_Static_assert(sizeof(ncclUniqueId) <= SAEC_NCCL_ID_MAX, "SAEC_NCCL_ID_MAX too small");

typedef struct {
    cudaEvent_t ev; /* recorded right after the collective on its stream */
    double issued;  /* saec_now() at enqueue */
    char what[96];
} nccl_mark;

struct saec_nccl {
    int device, rank, size;
    double timeout_s;
    ncclComm_t comm;          /* NULL until ncclCommInitRank returns */
    int dead;                 /* aborted after an error: every later call fails */
    cudaStream_t compute;     /* the device's stream (owned by the CUDA backend) */
    cudaStream_t comm_stream; /* gradient buckets */
    cudaEvent_t ev_compute, ev_comm;
    int grad_pending;

    /* shared with the watchdog, under mu */
    pthread_mutex_t mu;
    pthread_t thread;
    int thread_started, stop;
    int comm_valid;    /* the watchdog may query and abort comm */
    double host_since; /* > 0 while a blocking NCCL call runs */
    char host_what[96];
    nccl_mark marks[N_MARKS]; /* ring, oldest at mark_head */
    int mark_head, mark_count, marks_created;
};

static ncclDataType_t nccl_type(saec_dtype dt) {
    switch (dt) {
    case SAEC_DT_F32: return ncclFloat32;
    case SAEC_DT_F64: return ncclFloat64;
    case SAEC_DT_I64: return ncclInt64;
    }
    return ncclFloat32;
}

static ncclRedOp_t nccl_op(saec_redop op) {
    switch (op) {
    case SAEC_RED_SUM: return ncclSum;
    case SAEC_RED_MIN: return ncclMin;
    case SAEC_RED_MAX: return ncclMax;
    }
    return ncclSum;
}

/* ---- the watchdog ------------------------------------------------------------------------- */

/* Called with mu held; does not return. */
static void watchdog_fail(struct saec_nccl *n, const char *msg) {
    fprintf(stderr, "saec: error: %s on rank %d of %d (GPU %d); aborting this rank\n  hint: %s\n",
            msg, n->rank, n->size, n->device, NCCL_HINT);
    fflush(stderr);
    if (n->comm_valid) {
        alarm(15); /* should the abort itself hang, SIGALRM still ends the process */
        ncclCommAbort(n->comm);
    }
    _exit(SAEC_ERR_DEVICE);
}

/* One look: the blocking call in progress, NCCL's asynchronous error, the oldest mark. Called
   with mu held. */
static void watchdog_check(struct saec_nccl *n) {
    char msg[512];
    double now = saec_now();
    if (n->host_since > 0 && now - n->host_since > n->timeout_s) {
        snprintf(msg, sizeof msg, "%s did not return within %.1f s", n->host_what,
                 now - n->host_since);
        watchdog_fail(n, msg);
    }
    if (n->comm_valid) {
        ncclResult_t st = ncclSuccess;
        if (ncclCommGetAsyncError(n->comm, &st) == ncclSuccess && st != ncclSuccess &&
            st != ncclInProgress) {
            snprintf(msg, sizeof msg, "NCCL reported an error during %s: %s (%s)",
                     n->mark_count ? n->marks[n->mark_head].what : "communication",
                     ncclGetErrorString(st), ncclGetLastError(n->comm));
            watchdog_fail(n, msg);
        }
    }
    while (n->mark_count > 0) {
        nccl_mark *m = &n->marks[n->mark_head];
        cudaError_t e = cudaEventQuery(m->ev);
        if (e == cudaSuccess) {
            n->mark_head = (n->mark_head + 1) % N_MARKS;
            n->mark_count--;
            continue;
        }
        if (e != cudaErrorNotReady) {
            snprintf(msg, sizeof msg, "CUDA reported an error while NCCL %s was in flight: %s",
                     m->what, cudaGetErrorString(e));
            watchdog_fail(n, msg);
        }
        if (now - m->issued > n->timeout_s) {
            snprintf(msg, sizeof msg, "NCCL %s did not complete within %.1f s", m->what,
                     now - m->issued);
            watchdog_fail(n, msg);
        }
        break;
    }
}

static void *watchdog_main(void *arg) {
    struct saec_nccl *n = arg;
    cudaSetDevice(n->device); /* the thread queries events of this device */
    for (;;) {
        struct timespec ts = {0, WATCHDOG_PERIOD_NS};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&n->mu);
        if (n->stop) {
            pthread_mutex_unlock(&n->mu);
            return NULL;
        }
        watchdog_check(n);
        pthread_mutex_unlock(&n->mu);
    }
}

static void host_begin(struct saec_nccl *n, const char *what) {
    pthread_mutex_lock(&n->mu);
    snprintf(n->host_what, sizeof n->host_what, "%s", what);
    n->host_since = saec_now();
    pthread_mutex_unlock(&n->mu);
}

static void host_end(struct saec_nccl *n) {
    pthread_mutex_lock(&n->mu);
    n->host_since = 0;
    pthread_mutex_unlock(&n->mu);
}

/* Leaves a mark behind the collective just enqueued on `stream`. */
static int mark_push(struct saec_nccl *n, cudaStream_t stream, const char *what) {
    pthread_mutex_lock(&n->mu);
    while (n->mark_count == N_MARKS) { /* the watchdog frees the oldest, or ends the process */
        pthread_mutex_unlock(&n->mu);
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&n->mu);
    }
    nccl_mark *m = &n->marks[(n->mark_head + n->mark_count) % N_MARKS];
    cudaError_t e = cudaEventRecord(m->ev, stream);
    if (e == cudaSuccess) {
        m->issued = saec_now();
        snprintf(m->what, sizeof m->what, "%s", what);
        n->mark_count++;
    }
    pthread_mutex_unlock(&n->mu);
    SAEC_CUDA_CHECK(e);
    return SAEC_OK;
}

/* An NCCL call failed on the main thread: the communicator is unusable, abort it. */
static int nccl_fail(struct saec_nccl *n, ncclResult_t r, const char *what) {
    /* Under mu: the watchdog may be aborting (and so freeing) the communicator meanwhile. */
    char last[256];
    pthread_mutex_lock(&n->mu);
    const char *msg = n->comm && n->comm_valid ? ncclGetLastError(n->comm) : ncclGetLastError(NULL);
    snprintf(last, sizeof last, "%s", msg ? msg : "");
    int valid = n->comm_valid;
    n->comm_valid = 0;
    pthread_mutex_unlock(&n->mu);
    int rc = saec_fail(SAEC_ERR_DEVICE, NCCL_HINT, "NCCL %s failed on rank %d of %d: %s (%s)", what,
                       n->rank, n->size, ncclGetErrorString(r), last);
    if (valid) ncclCommAbort(n->comm);
    n->comm = NULL;
    n->dead = 1;
    return rc;
}

static int usable(const struct saec_nccl *n, const char *what) {
    if (n->dead)
        return saec_fail(SAEC_ERR_DEVICE, NCCL_HINT,
                         "NCCL %s: the communicator was aborted after an earlier error", what);
    return SAEC_OK;
}

/* ---- set-up and shutdown ------------------------------------------------------------------ */

size_t saec_nccl_id_bytes(void) { return sizeof(ncclUniqueId); }

int saec_nccl_new_id(void *id) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess)
        return saec_fail(SAEC_ERR_DEVICE,
                         "NCCL_SOCKET_IFNAME picks the network interface; NCCL_DEBUG=INFO tells "
                         "more",
                         "ncclGetUniqueId failed: %s (%s)", ncclGetErrorString(r),
                         ncclGetLastError(NULL));
    memcpy(id, &u, sizeof u);
    return SAEC_OK;
}

static int nccl_setup(struct saec_nccl *n, saec_dev *dev) {
    SAEC_CUDA_CHECK(cudaSetDevice(n->device));
    n->compute = saec_cuda_stream(dev);
    SAEC_CUDA_CHECK(cudaStreamCreateWithFlags(&n->comm_stream, cudaStreamNonBlocking));
    SAEC_CUDA_CHECK(cudaEventCreateWithFlags(&n->ev_compute, cudaEventDisableTiming));
    SAEC_CUDA_CHECK(cudaEventCreateWithFlags(&n->ev_comm, cudaEventDisableTiming));
    for (; n->marks_created < N_MARKS; n->marks_created++)
        SAEC_CUDA_CHECK(
            cudaEventCreateWithFlags(&n->marks[n->marks_created].ev, cudaEventDisableTiming));
    if (pthread_create(&n->thread, NULL, watchdog_main, n) != 0)
        return saec_fail(SAEC_ERR_OTHER, NULL, "cannot start the NCCL watchdog thread");
    n->thread_started = 1;
    return SAEC_OK;
}

int saec_nccl_open(saec_dev *dev, const saec_world *w, double timeout_s, const void *id,
                   saec_nccl **out) {
    *out = NULL;
    struct saec_nccl *n = calloc(1, sizeof *n);
    if (!n) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening NCCL");
    n->device = dev->index;
    n->rank = w->rank;
    n->size = w->size;
    n->timeout_s = timeout_s;
    pthread_mutex_init(&n->mu, NULL);
    int rc = nccl_setup(n, dev);
    if (rc == SAEC_OK) {
        ncclUniqueId u;
        memcpy(&u, id, sizeof u);
        ncclComm_t comm = NULL;
        host_begin(n, "NCCL set-up (ncclCommInitRank)");
        ncclResult_t r = ncclCommInitRank(&comm, w->size, u, w->rank);
        host_end(n);
        if (r != ncclSuccess) {
            rc = nccl_fail(n, r, "set-up (ncclCommInitRank)");
        } else {
            pthread_mutex_lock(&n->mu);
            n->comm = comm;
            n->comm_valid = 1;
            pthread_mutex_unlock(&n->mu);
        }
    }
    if (rc != SAEC_OK) {
        saec_nccl_close(n);
        return rc;
    }
    *out = n;
    return SAEC_OK;
}

void saec_nccl_close(saec_nccl *n) {
    if (!n) return;
    if (n->comm && !n->dead) {
        /* Finalize completes the operations in flight (bounded by the watchdog); then the
           watchdog lets go of the communicator before it is destroyed. */
        host_begin(n, "NCCL shutdown (ncclCommFinalize)");
        ncclResult_t r = ncclCommFinalize(n->comm);
        host_end(n);
        pthread_mutex_lock(&n->mu);
        n->comm_valid = 0;
        pthread_mutex_unlock(&n->mu);
        if (r != ncclSuccess) {
            ncclCommAbort(n->comm);
        } else {
            host_begin(n, "NCCL shutdown (ncclCommDestroy)");
            ncclCommDestroy(n->comm);
            host_end(n);
        }
        n->comm = NULL;
    }
    if (n->thread_started) {
        pthread_mutex_lock(&n->mu);
        n->stop = 1;
        pthread_mutex_unlock(&n->mu);
        pthread_join(n->thread, NULL);
    }
    for (int i = 0; i < n->marks_created; i++)
        cudaEventDestroy(n->marks[i].ev);
    if (n->ev_compute) cudaEventDestroy(n->ev_compute);
    if (n->ev_comm) cudaEventDestroy(n->ev_comm);
    if (n->comm_stream) cudaStreamDestroy(n->comm_stream);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

/* ---- collectives -------------------------------------------------------------------------- */

int saec_nccl_allreduce(saec_nccl *n, void *buf, int64_t count, saec_dtype dt, saec_redop op) {
    if (count <= 0) return SAEC_OK;
    char what[96];
    snprintf(what, sizeof what, "all-reduce (%lld x %s, %s)", (long long)count, saec_dtype_name(dt),
             saec_redop_name(op));
    SAEC_TRY(usable(n, what));
    host_begin(n, what);
    ncclResult_t r =
        ncclAllReduce(buf, buf, (size_t)count, nccl_type(dt), nccl_op(op), n->comm, n->compute);
    host_end(n);
    if (r != ncclSuccess) return nccl_fail(n, r, what);
    return mark_push(n, n->compute, what);
}

int saec_nccl_allgather(saec_nccl *n, void *buf, int64_t count, saec_dtype dt) {
    if (count <= 0) return SAEC_OK;
    char what[96];
    snprintf(what, sizeof what, "all-gather (%d blocks of %lld x %s)", n->size, (long long)count,
             saec_dtype_name(dt));
    SAEC_TRY(usable(n, what));
    /* in place: NCCL's rule is sendbuff = recvbuff + rank·count */
    const void *mine = (const char *)buf + (size_t)n->rank * (size_t)count * saec_dtype_size(dt);
    host_begin(n, what);
    ncclResult_t r = ncclAllGather(mine, buf, (size_t)count, nccl_type(dt), n->comm, n->compute);
    host_end(n);
    if (r != ncclSuccess) return nccl_fail(n, r, what);
    return mark_push(n, n->compute, what);
}

int saec_nccl_grad_start(saec_nccl *n, float *buf, int64_t count) {
    if (count <= 0) return SAEC_OK;
    char what[96];
    snprintf(what, sizeof what, "gradient all-reduce (bucket of %lld x f32)", (long long)count);
    SAEC_TRY(usable(n, what));
    /* the bucket's gradients are complete once the compute stream reaches this point */
    SAEC_CUDA_CHECK(cudaEventRecord(n->ev_compute, n->compute));
    SAEC_CUDA_CHECK(cudaStreamWaitEvent(n->comm_stream, n->ev_compute, 0));
    host_begin(n, what);
    ncclResult_t r =
        ncclAllReduce(buf, buf, (size_t)count, ncclFloat32, ncclSum, n->comm, n->comm_stream);
    host_end(n);
    if (r != ncclSuccess) return nccl_fail(n, r, what);
    n->grad_pending = 1;
    return mark_push(n, n->comm_stream, what);
}

int saec_nccl_grad_wait(saec_nccl *n) {
    if (!n->grad_pending) return SAEC_OK;
    SAEC_TRY(usable(n, "gradient wait"));
    SAEC_CUDA_CHECK(cudaEventRecord(n->ev_comm, n->comm_stream));
    SAEC_CUDA_CHECK(cudaStreamWaitEvent(n->compute, n->ev_comm, 0));
    n->grad_pending = 0;
    return SAEC_OK;
}
