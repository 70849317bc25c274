/* The TCP rendezvous and host channel (comm_tcp.c): how ranks that share no MPI find each other
 * (torchrun-style launches: NCCL's unique id travels this way) and exchange small host payloads
 * (the config check, host all-reduces). A star: rank 0 listens on MASTER_PORT, every other rank
 * connects to MASTER_ADDR:MASTER_PORT. Every socket operation is bounded by the timeout; on a
 * failure the rank closes its sockets, so its peers fail at once instead of waiting.
 *
 * Called by comm.c; exposed for tests (tests/test_comm.c).
 */
#ifndef SAEC_COMM_TCP_H
#define SAEC_COMM_TCP_H

#include <stddef.h>

typedef struct saec_tcp saec_tcp;

/* Rendezvous of `size` ranks at addr:port within timeout_s seconds. Rank 0 listens (on every
   interface, SO_REUSEADDR) and checks that every rank says the same world size; the others
   connect, retrying until the deadline. Errors name the address, the port, the time waited and
   (on rank 0) the ranks that never arrived. */
int saec_tcp_open(const char *addr, int port, int rank, int size, double timeout_s, saec_tcp **out);
void saec_tcp_close(saec_tcp *t); /* NULL is fine */

/* Variable-size all-gather: rank r contributes mine[bytes]; on return every rank holds every
   blob: *data (malloc'd, the caller frees) is rank 0's blob, then rank 1's, ...; sizes[r] (the
   caller's array of `size` entries) is rank r's length in bytes. */
int saec_tcp_allgather(saec_tcp *t, const void *mine, size_t bytes, char **data, size_t *sizes);

/* buf[bytes] on every rank ← root's buf[bytes]; every rank must pass the same `bytes`. */
int saec_tcp_bcast(saec_tcp *t, void *buf, size_t bytes, int root);

#endif
