/* The NCCL backend's interface (comm_nccl.c, built when SAEC_HAVE_NCCL): device buffers of the
 * CUDA backend. Called by comm.c only, which carries the unique id over its host channel.
 * Counts are in elements.
 */
#ifndef SAEC_COMM_NCCL_H
#define SAEC_COMM_NCCL_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "saec/device.h"

typedef struct saec_nccl saec_nccl;

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
