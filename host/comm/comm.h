/* Data-parallel communication (DESIGN: comm.c): who this process is among the ranks of a job,
 * and the collectives the training step needs.
 *
 * Backends, chosen by saec_comm_open from the device and the launch:
 *  - single: world size 1; every collective is a no-op. Needs neither MPI nor NCCL.
 *  - MPI: CPU buffers (the CPU backend), when saec is built with MPI and launched by mpirun/srun.
 *  - NCCL: device buffers (the CUDA backend); the ncclUniqueId travels through MPI when saec is
 *    built with it and launched under MPI, else through a TCP rendezvous at
 * MASTER_ADDR:MASTER_PORT.
 *
 * Every count is in elements, never bytes. Collectives on device memory are ordered on the
 * device's stream: they see every op issued before them, and ops issued after see their result.
 * No collective waits forever: each is bounded by the timeout given to saec_comm_open, after which
 * every rank exits with an error naming the cause. A collective cannot be abandoned half-way, so
 * an MPI wait past the timeout prints the error and calls MPI_Abort (the whole job ends), and
 * NCCL's watchdog thread prints it, aborts the communicator and exits the process with
 * SAEC_ERR_DEVICE (the launcher then stops the other ranks). The rendezvous and TCP host
 * collectives return the error instead, and close their sockets so the peers fail at once.
 *
 * Environment: the launcher's variables (see saec_world_detect), and SAEC_COMM_TIMEOUT (seconds,
 * > 0), which overrides the timeout_s given to saec_comm_open.
 */
#ifndef SAEC_COMM_H
#define SAEC_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "saec/device.h"

typedef enum { SAEC_DT_F32 = 0, SAEC_DT_F64, SAEC_DT_I64 } saec_dtype;
typedef enum { SAEC_RED_SUM = 0, SAEC_RED_MIN, SAEC_RED_MAX } saec_redop;

/* The job as the launcher describes it in the environment. */
typedef struct {
    int rank, size;             /* global rank in [0, size) */
    int local_rank, local_size; /* within this node (local_rank picks the GPU) */
    char launcher[16];          /* "single", "torchrun", "openmpi", "slurm", "pmi" */
    char master_addr[256];      /* torchrun-style rendezvous: MASTER_ADDR (may be empty) */
    int master_port;            /* saec's rendezvous port, 0 when unset: SAEC_MASTER_PORT, else
                                   MASTER_PORT, + 1 when torchrun's agent store holds MASTER_PORT
                                   (TORCHELASTIC_USE_AGENT_STORE=True) */
} saec_world;

/* Read the world from RANK/WORLD_SIZE/LOCAL_RANK (torchrun), OMPI_COMM_WORLD_* (OpenMPI),
   SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID (Slurm), PMI_RANK/PMI_SIZE (PMI), else a single
   process, in that order of precedence. Inconsistent variables (rank >= size, a non-number, RANK
   without WORLD_SIZE) are an error naming them. Without LOCAL_RANK, a torchrun-style rank is
   taken to be on one node (local rank = rank). */
int saec_world_detect(saec_world *out);

/* The device spec a rank of w opens for the requested one ("auto", "cpu", "cuda", "cuda:I"):
   with several ranks, "cuda", and "auto" when a GPU is present, mean cuda:local_rank (one GPU per
   rank of a node); anything else is kept. out holds at least 32 bytes more than requested. */
void saec_world_device(const saec_world *w, const char *requested, char *out, size_t size);

typedef struct saec_comm saec_comm;

/* SAEC_COMM_FORCE=1 in the environment opens the MPI or NCCL backend even for a world of one
   (under mpirun -np 1, or torchrun-style variables with WORLD_SIZE=1), so that one process runs
   the real collectives: the test that the distributed path equals the plain one.
   Open the communicator for `dev` (buffers live in its memory). timeout_s bounds the rendezvous
   and every collective (<= 0: 300 s; SAEC_COMM_TIMEOUT overrides it). World size 1 never touches
   MPI or NCCL. More ranks need: a CUDA device and NCCL (the id over MPI under mpirun/srun, else
   over TCP at MASTER_ADDR:MASTER_PORT), or a CPU device, MPI, and mpirun/srun; anything else is
   an error saying how to launch instead. MPI is initialised here when needed and finalised by
   saec_comm_close if saec initialised it, so open one communicator per process. A CUDA rank
   opens dev before, on the GPU saec_world_device names for it. */
int saec_comm_open(saec_dev *dev, double timeout_s, saec_comm **out);
void saec_comm_close(saec_comm *c); /* NULL is fine */

/* NULL c means the single process: rank 0, size 1. */
int saec_comm_rank(const saec_comm *c);
int saec_comm_size(const saec_comm *c);
const saec_world *saec_comm_world(const saec_comm *c);
/* "single", "mpi", "nccl" ("tcp": the host-only communicator of host/comm/comm_tcp.h, for tests) */
const char *saec_comm_backend_name(const saec_comm *c);

/* In place: buf[count] (memory of the device) ← the reduction over ranks. */
int saec_comm_allreduce(saec_comm *c, void *buf, int64_t count, saec_dtype dt, saec_redop op);

/* In place: buf holds size·count elements (memory of the device) in rank-order blocks; rank r
   brings block r (elements r·count .. (r+1)·count − 1), and every rank ends with every block.
   ZeRO-1's parameter all-gather: each rank updated its shard. */
int saec_comm_allgather(saec_comm *c, void *buf, int64_t count, saec_dtype dt);
/* Gradient buckets: start summing buf[count] floats across ranks without waiting (NCCL: on a
   communication stream, after an event on the compute stream; MPI: a non-blocking all-reduce), so
   that the rest of the backward overlaps it. saec_comm_grad_wait orders everything after it on
   the completion of every started bucket. Buffers must stay untouched in between. The result is
   the sum: the caller scales by 1/size for a mean. (MPI progresses the buckets inside MPI calls:
   at each grad_start and in grad_wait.) */
int saec_comm_grad_start(saec_comm *c, float *buf, int64_t count);
int saec_comm_grad_wait(saec_comm *c);

/* Host-memory collectives for setup and bookkeeping (small payloads), over MPI, or over the TCP
   channel when NCCL was bootstrapped through it. bytes / count must agree on every rank. */
int saec_comm_bcast_host(saec_comm *c, void *buf, size_t bytes, int root);
int saec_comm_allreduce_host(saec_comm *c, void *buf, int64_t count, saec_dtype dt, saec_redop op);

/* Every rank passes its configuration as JSON; if any differs from rank 0's, every rank fails
   with an error naming the first differing rank and key (keys in `ignore`, NULL-terminated, are
   not compared: e.g. per-rank paths). */
int saec_comm_check_same_config(saec_comm *c, const char *config_json, const char *const *ignore);

#endif
