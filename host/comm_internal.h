/* The communicator's private pieces, shared by comm.c (the object, backend choice, dispatch,
 * config check) and its backends: comm_mpi.c (MPI), comm_tcp.c (the TCP rendezvous and host
 * channel), comm_nccl.c (NCCL). Counts are in elements unless a name says bytes.
 */
#ifndef SAEC_COMM_INTERNAL_H
#define SAEC_COMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "log.h" /* saec_now: the monotonic clock */
#include "saec/saec.h"

typedef enum {
    SAEC_COMM_SINGLE = 0, /* world size 1 */
    SAEC_COMM_MPI,        /* CPU buffers over MPI */
    SAEC_COMM_NCCL,       /* device buffers over NCCL; host collectives over MPI or TCP */
    SAEC_COMM_TCP,        /* host collectives only, over the TCP channel (tests, tools) */
} saec_comm_kind;

typedef struct saec_mpi saec_mpi;
typedef struct saec_tcp saec_tcp;
typedef struct saec_nccl saec_nccl;

struct saec_comm {
    saec_dev *dev; /* NULL for the host-only TCP communicator */
    saec_world world;
    saec_comm_kind kind;
    double timeout_s; /* bounds the rendezvous and every collective */
    saec_mpi *mpi;    /* the MPI backend, or NCCL's host channel under MPI */
    saec_tcp *tcp;    /* NCCL's host channel over TCP, or the host-only communicator */
    saec_nccl *nccl;
};

#define SAEC_COMM_DEFAULT_TIMEOUT_S 300.0

/* Hints shared by the backends' timeout and lost-peer messages. */
#define SAEC_COMM_HANG_HINT                                                                        \
    "a rank died, hangs, or stopped calling collectives (read the other ranks' output); every "    \
    "rank must run the same configuration; raise SAEC_COMM_TIMEOUT (seconds) if a step is "        \
    "legitimately slower"

size_t saec_dtype_size(saec_dtype dt);
const char *saec_dtype_name(saec_dtype dt);
const char *saec_redop_name(saec_redop op);
/* One pause of a polling loop: spins briefly, then sleeps up to 1 ms (*polls counts calls). */
void saec_comm_poll_pause(long *polls);
/* The effective timeout: SAEC_COMM_TIMEOUT (seconds) when set, else arg when > 0, else 300 s. */
int saec_comm_resolve_timeout(double arg, double *out);
/* out[i] = reduce(out[i], in[i]) for count elements of dt (host memory). */
void saec_reduce_host(void *out, const void *in, int64_t count, saec_dtype dt, saec_redop op);

/* The first difference between two JSON configurations a (rank 0's) and b: 1 with the dotted
   key in path and both values printed (va, vb; "(absent)" for a missing key), 0 when they agree
   outside `ignore` (NULL-terminated keys or dotted paths), -1 / -2 when a / b is not JSON. */
int saec_config_first_difference(const char *a, size_t a_len, const char *b, size_t b_len,
                                 const char *const *ignore, char *path, size_t path_cap, char *va,
                                 char *vb, size_t v_cap);

/* ---- MPI (comm_mpi.c, built when SAEC_HAVE_MPI) ---- */
#ifdef SAEC_HAVE_MPI
/* Initialises MPI on first use (MPI_Init_thread, FUNNELED) and checks that MPI's world is the
   launcher's. The last close finalises MPI if saec initialised it. */
int saec_mpi_open(const saec_world *w, double timeout_s, saec_mpi **out);
void saec_mpi_close(saec_mpi *m);
int saec_mpi_allreduce(saec_mpi *m, void *buf, int64_t count, saec_dtype dt, saec_redop op);
int saec_mpi_allgather_blocks(saec_mpi *m, void *buf, int64_t count, saec_dtype dt);
int saec_mpi_grad_start(saec_mpi *m, float *buf, int64_t count); /* non-blocking sum */
int saec_mpi_grad_wait(saec_mpi *m);
int saec_mpi_bcast(saec_mpi *m, void *buf, size_t bytes, int root);
/* Every rank's blob: *data (malloc'd, caller frees) holds them back to back, sizes[size]. */
int saec_mpi_allgather(saec_mpi *m, const void *mine, size_t bytes, char **data, size_t *sizes);
#endif

/* ---- NCCL (comm_nccl.c, built when SAEC_HAVE_NCCL) ---- */
#ifdef SAEC_HAVE_NCCL
#define SAEC_NCCL_ID_MAX 256
size_t saec_nccl_id_bytes(void); /* sizeof(ncclUniqueId) */
int saec_nccl_new_id(void *id);  /* rank 0: ncclGetUniqueId */
/* Joins the communicator (every rank passes rank 0's id) and starts its watchdog. */
int saec_nccl_open(saec_dev *dev, const saec_world *w, double timeout_s, const void *id,
                   saec_nccl **out);
void saec_nccl_close(saec_nccl *n);
int saec_nccl_allreduce(saec_nccl *n, void *buf, int64_t count, saec_dtype dt, saec_redop op);
int saec_nccl_allgather(saec_nccl *n, void *buf, int64_t count, saec_dtype dt);
int saec_nccl_grad_start(saec_nccl *n, float *buf, int64_t count);
int saec_nccl_grad_wait(saec_nccl *n);
#endif

#endif
