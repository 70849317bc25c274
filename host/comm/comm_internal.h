/* comm.c's internals, exposed for tests (tests/test_comm.c). The backends do not include this:
 * they see only their own header and comm_util.h.
 */
#ifndef SAEC_COMM_INTERNAL_H
#define SAEC_COMM_INTERNAL_H

#include <stddef.h>

#include "comm.h"

/* The first difference between two JSON configurations a (rank 0's) and b: 1 with the dotted
   key in path and both values printed (va, vb; "(absent)" for a missing key), 0 when they agree
   outside `ignore` (NULL-terminated keys or dotted paths), -1 / -2 when a / b is not JSON. */
int saec_config_first_difference(const char *a, size_t a_len, const char *b, size_t b_len,
                                 const char *const *ignore, char *path, size_t path_cap, char *va,
                                 char *vb, size_t v_cap);

/* A communicator for host collectives only (bcast_host, allreduce_host, the config check), over
   the TCP channel of comm_tcp.h: the world comes from the environment (RANK, WORLD_SIZE,
   MASTER_ADDR, MASTER_PORT), no device, no MPI. Backend name "tcp"; device collectives are
   refused. World size 1 gives the single backend. */
int saec_comm_open_tcp_host(double timeout_s, saec_comm **out);

#endif
