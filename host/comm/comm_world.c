/* Who this process is in the job, read from the launcher's environment (saec_world_detect).
 *
 * Precedence: torchrun-style variables (RANK and WORLD_SIZE), then OpenMPI (OMPI_COMM_WORLD_*),
 * then Slurm (SLURM_PROCID, SLURM_NTASKS), then PMI (PMI_RANK, PMI_SIZE: MPICH/Hydra), else a
 * single process. A variable that is set but malformed, or a set that contradicts itself, is an
 * error naming the variables: guessing a rank would make ranks collide or wait forever.
 * MASTER_ADDR and the rendezvous port are read for every launcher (NCCL over TCP uses them).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "saec/device.h"
#include "saec/saec.h"

#define WORLD_HINT                                                                                 \
    "the launcher sets these (torchrun, mpirun, srun); when starting ranks by hand, give every "   \
    "process RANK (0..N-1), WORLD_SIZE (N), LOCAL_RANK, MASTER_ADDR and MASTER_PORT"

/* Reads an integer variable. Returns 1 when set (value in *out), 0 when unset, -1 on a parse
   error (recorded). Empty counts as unset. */
static int env_int(const char *name, long min, long max, int *out) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    while (end && (*end == ' ' || *end == '\n'))
        end++;
    if (errno || end == s || *end != '\0') {
        saec_fail(SAEC_ERR_USAGE, WORLD_HINT, "environment variable %s='%s' is not an integer",
                  name, s);
        return -1;
    }
    if (v < min || v > max) {
        saec_fail(SAEC_ERR_USAGE, WORLD_HINT,
                  "environment variable %s=%ld is out of range [%ld, %ld]", name, v, min, max);
        return -1;
    }
    *out = (int)v;
    return 1;
}

/* SLURM_TASKS_PER_NODE is a compressed list such as "4(x2),3": the tasks of node i. */
static int slurm_tasks_on_node(const char *list, int node, int *out) {
    const char *p = list;
    int n = 0;
    while (*p) {
        char *end = NULL;
        long tasks = strtol(p, &end, 10);
        if (end == p || tasks < 1) return 0;
        long reps = 1;
        p = end;
        if (p[0] == '(' && p[1] == 'x') {
            reps = strtol(p + 2, &end, 10);
            if (end == p + 2 || *end != ')' || reps < 1) return 0;
            p = end + 1;
        }
        if (node < n + reps) {
            *out = (int)tasks;
            return 1;
        }
        n += (int)reps;
        if (*p == ',')
            p++;
        else if (*p)
            return 0;
    }
    return 0;
}

/* The parts every launcher shares: the rendezvous address and a consistency check. */
static int world_finish(saec_world *w, const char *rank_var, const char *size_var,
                        const char *local_var) {
    const char *addr = getenv("MASTER_ADDR");
    if (addr && *addr) {
        if (strlen(addr) >= sizeof w->master_addr)
            return saec_fail(SAEC_ERR_USAGE, WORLD_HINT, "MASTER_ADDR is longer than %zu bytes",
                             sizeof w->master_addr - 1);
        snprintf(w->master_addr, sizeof w->master_addr, "%s", addr);
    }
    /* saec's own rendezvous port: SAEC_MASTER_PORT, else MASTER_PORT. torchrun's agent serves
       its TCPStore on MASTER_PORT when it sets TORCHELASTIC_USE_AGENT_STORE=True, so saec then
       takes the next port. */
    int port = 0;
    int got = env_int("SAEC_MASTER_PORT", 1, 65535, &port);
    if (got < 0) return saec_error_code();
    if (got == 0) {
        if (env_int("MASTER_PORT", 1, 65535, &port) < 0) return saec_error_code();
        const char *agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
        if (port > 0 && agent && strcmp(agent, "True") == 0) {
            if (port == 65535)
                return saec_fail(SAEC_ERR_USAGE, "set SAEC_MASTER_PORT to a free port",
                                 "MASTER_PORT=65535 is torchrun's store, and saec's rendezvous "
                                 "would need the next port");
            port++;
        }
    }
    w->master_port = port;
    if (w->rank >= w->size)
        return saec_fail(SAEC_ERR_USAGE, WORLD_HINT,
                         "inconsistent launch: %s=%d is not below %s=%d", rank_var, w->rank,
                         size_var, w->size);
    if (w->local_size > w->size) w->local_size = w->size;
    if (w->local_rank >= w->local_size)
        return saec_fail(SAEC_ERR_USAGE, WORLD_HINT,
                         "inconsistent launch: %s=%d is not below the ranks on this node (%d)",
                         local_var, w->local_rank, w->local_size);
    return SAEC_OK;
}

static int detect_torchrun(saec_world *w) {
    snprintf(w->launcher, sizeof w->launcher, "torchrun");
    if (env_int("RANK", 0, INT_MAX, &w->rank) < 0 ||
        env_int("WORLD_SIZE", 1, INT_MAX, &w->size) < 0)
        return saec_error_code();
    /* Started by hand on one node: LOCAL_RANK defaults to RANK. An unknown node size is bounded
       by the world size. */
    int has_local = env_int("LOCAL_RANK", 0, INT_MAX, &w->local_rank);
    if (has_local < 0) return saec_error_code();
    if (has_local == 0) w->local_rank = w->rank;
    w->local_size = w->size;
    if (env_int("LOCAL_WORLD_SIZE", 1, INT_MAX, &w->local_size) < 0) return saec_error_code();
    return world_finish(w, "RANK", "WORLD_SIZE", "LOCAL_RANK");
}

static int detect_openmpi(saec_world *w) {
    snprintf(w->launcher, sizeof w->launcher, "openmpi");
    int got_size = env_int("OMPI_COMM_WORLD_SIZE", 1, INT_MAX, &w->size);
    if (got_size < 0) return saec_error_code();
    if (got_size == 0)
        return saec_fail(SAEC_ERR_USAGE, WORLD_HINT,
                         "OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not");
    if (env_int("OMPI_COMM_WORLD_RANK", 0, INT_MAX, &w->rank) < 0) return saec_error_code();
    w->local_rank = 0;
    w->local_size = 1;
    int has_local = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0, INT_MAX, &w->local_rank);
    if (has_local < 0) return saec_error_code();
    if (has_local) w->local_size = w->size;
    if (env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1, INT_MAX, &w->local_size) < 0)
        return saec_error_code();
    return world_finish(w, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                        "OMPI_COMM_WORLD_LOCAL_RANK");
}

static int detect_slurm(saec_world *w) {
    snprintf(w->launcher, sizeof w->launcher, "slurm");
    if (env_int("SLURM_PROCID", 0, INT_MAX, &w->rank) < 0) return saec_error_code();
    const char *size_var = "SLURM_NTASKS";
    int got = env_int(size_var, 1, INT_MAX, &w->size);
    if (got == 0) {
        size_var = "SLURM_NPROCS"; /* older Slurm */
        got = env_int(size_var, 1, INT_MAX, &w->size);
    }
    if (got < 0) return saec_error_code();
    if (got == 0)
        return saec_fail(SAEC_ERR_USAGE, "start the ranks with srun inside the allocation",
                         "SLURM_PROCID is set but SLURM_NTASKS is not");
    w->local_rank = 0;
    int has_local = env_int("SLURM_LOCALID", 0, INT_MAX, &w->local_rank);
    if (has_local < 0) return saec_error_code();
    /* Ranks on this node: SLURM_NTASKS_PER_NODE when given, else this node's entry of
       SLURM_TASKS_PER_NODE, else a lower bound. */
    w->local_size = w->local_rank + 1;
    int per_node = 0;
    const char *list = getenv("SLURM_TASKS_PER_NODE"), *node_s = getenv("SLURM_NODEID");
    if (env_int("SLURM_NTASKS_PER_NODE", 1, INT_MAX, &per_node) < 0) return saec_error_code();
    if (per_node > 0) {
        w->local_size = per_node;
    } else if (list && node_s) {
        char *end = NULL;
        long node = strtol(node_s, &end, 10);
        if (end != node_s && *end == '\0' && node >= 0 && node < INT_MAX &&
            slurm_tasks_on_node(list, (int)node, &per_node))
            w->local_size = per_node;
    }
    return world_finish(w, "SLURM_PROCID", size_var, "SLURM_LOCALID");
}

static int detect_pmi(saec_world *w) {
    snprintf(w->launcher, sizeof w->launcher, "pmi");
    if (env_int("PMI_RANK", 0, INT_MAX, &w->rank) < 0) return saec_error_code();
    int got = env_int("PMI_SIZE", 1, INT_MAX, &w->size);
    if (got < 0) return saec_error_code();
    if (got == 0)
        return saec_fail(SAEC_ERR_USAGE, WORLD_HINT, "PMI_RANK is set but PMI_SIZE is not");
    /* Hydra (MPICH, Intel MPI) names the node-local rank MPI_LOCALRANKID. */
    w->local_rank = 0;
    w->local_size = 1;
    int has_local = env_int("MPI_LOCALRANKID", 0, INT_MAX, &w->local_rank);
    if (has_local < 0) return saec_error_code();
    if (has_local) w->local_size = w->size;
    if (env_int("MPI_LOCALNRANKS", 1, INT_MAX, &w->local_size) < 0) return saec_error_code();
    return world_finish(w, "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID");
}

static int is_set(const char *name) {
    const char *s = getenv(name);
    return s && *s;
}

int saec_world_detect(saec_world *out) {
    memset(out, 0, sizeof *out);
    saec_world w;
    memset(&w, 0, sizeof w);
    int rc;
    if (is_set("RANK") || is_set("WORLD_SIZE")) {
        if (!is_set("RANK") || !is_set("WORLD_SIZE"))
            return saec_fail(
                SAEC_ERR_USAGE, WORLD_HINT, "inconsistent launch: %s is set but %s is not",
                is_set("RANK") ? "RANK" : "WORLD_SIZE", is_set("RANK") ? "WORLD_SIZE" : "RANK");
        rc = detect_torchrun(&w);
    } else if (is_set("OMPI_COMM_WORLD_RANK") || is_set("OMPI_COMM_WORLD_SIZE")) {
        if (!is_set("OMPI_COMM_WORLD_RANK"))
            return saec_fail(SAEC_ERR_USAGE, WORLD_HINT,
                             "OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_RANK is not");
        rc = detect_openmpi(&w);
    } else if (is_set("SLURM_PROCID")) {
        rc = detect_slurm(&w);
    } else if (is_set("PMI_RANK")) {
        rc = detect_pmi(&w);
    } else {
        snprintf(w.launcher, sizeof w.launcher, "single");
        w.rank = 0;
        w.size = 1;
        w.local_rank = 0;
        w.local_size = 1;
        rc = world_finish(&w, "rank", "size", "local rank");
    }
    if (rc != SAEC_OK) return rc;
    *out = w;
    return SAEC_OK;
}

void saec_world_device(const saec_world *w, const char *requested, char *out, size_t size) {
    const int per_rank_gpu =
        w->size > 1 && (strcmp(requested, "cuda") == 0 ||
                        (strcmp(requested, "auto") == 0 && saec_cuda_device_count() > 0));
    if (per_rank_gpu)
        snprintf(out, size, "cuda:%d", w->local_rank);
    else
        snprintf(out, size, "%s", requested);
}
