/* The communicator's helpers (comm_util.c), shared by comm.c and every backend (comm_mpi.c,
 * comm_nccl.c, comm_tcp.c): element types and reductions by name and size, the host-side
 * reduction, the polling pause and the timeout rules. Depends on nothing of the communicator's
 * but the types in comm.h, so the arrows run comm.c → backends → comm_util.c.
 * Counts are in elements unless a name says bytes.
 */
#ifndef SAEC_COMM_UTIL_H
#define SAEC_COMM_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h" /* saec_dtype, saec_redop */

#define SAEC_COMM_DEFAULT_TIMEOUT_S 300.0

/* Hints shared by the backends' timeout and lost-peer messages. */
#define SAEC_COMM_HANG_HINT                                                                        \
    "a rank died, hangs, or stopped calling collectives (read the other ranks' output); every "    \
    "rank must run the same configuration; raise SAEC_COMM_TIMEOUT (seconds) if a step is "        \
    "legitimately slower"

size_t saec_dtype_size(saec_dtype dt); /* bytes per element; 0 for an unknown type */
const char *saec_dtype_name(saec_dtype dt);
const char *saec_redop_name(saec_redop op);
/* One pause of a polling loop: spins briefly, then sleeps up to 1 ms (*polls counts calls). */
void saec_comm_poll_pause(long *polls);
/* The effective timeout: SAEC_COMM_TIMEOUT (seconds) when set, else arg when > 0, else 300 s. */
int saec_comm_resolve_timeout(double arg, double *out);
/* out[i] = reduce(out[i], in[i]) for count elements of dt (host memory). */
void saec_reduce_host(void *out, const void *in, int64_t count, saec_dtype dt, saec_redop op);

#endif
