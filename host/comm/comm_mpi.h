/* The MPI backend's interface (comm_mpi.c, built when SAEC_HAVE_MPI): CPU buffers, which are
 * host memory, and the host channel of NCCL under mpirun/srun. Called by comm.c only.
 * Counts are in elements unless a name says bytes.
 */
#ifndef SAEC_COMM_MPI_H
#define SAEC_COMM_MPI_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"

typedef struct saec_mpi saec_mpi;

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
