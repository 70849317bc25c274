/* The communicator (comm.h): picks the backend from the device and the launch, dispatches the
 * collectives, and checks that every rank runs the same configuration.
 *
 *   world size 1                     → single (no MPI, no NCCL), unless SAEC_COMM_FORCE=1
 *   CPU device,  mpirun/srun/Hydra   → MPI
 *   CUDA device, mpirun/srun/Hydra   → NCCL, unique id and host collectives over MPI
 *   CUDA device, torchrun-style      → NCCL, unique id and host collectives over TCP
 * Anything else with more than one rank is an error that says how to launch instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "comm_internal.h"
#include "comm_mpi.h"  /* declared always; called only when SAEC_HAVE_MPI */
#include "comm_nccl.h" /* declared always; called only when SAEC_HAVE_NCCL */
#include "comm_tcp.h"
#include "comm_util.h"
#include "saec/saec.h"

typedef enum {
    SAEC_COMM_SINGLE = 0, /* world size 1 */
    SAEC_COMM_MPI,        /* CPU buffers over MPI */
    SAEC_COMM_NCCL,       /* device buffers over NCCL; host collectives over MPI or TCP */
    SAEC_COMM_TCP,        /* host collectives only, over the TCP channel (tests, tools) */
} saec_comm_kind;

struct saec_comm {
    saec_dev *dev; /* NULL for the host-only TCP communicator */
    saec_world world;
    saec_comm_kind kind;
    double timeout_s; /* bounds the rendezvous and every collective */
    saec_mpi *mpi;    /* the MPI backend, or NCCL's host channel under MPI */
    saec_tcp *tcp;    /* NCCL's host channel over TCP, or the host-only communicator */
    saec_nccl *nccl;
};

/* ---- opening ------------------------------------------------------------------------------ */

#ifdef SAEC_HAVE_MPI
static int launched_by_mpi(const saec_world *w) {
    return strcmp(w->launcher, "openmpi") == 0 || strcmp(w->launcher, "slurm") == 0 ||
           strcmp(w->launcher, "pmi") == 0;
}
#endif

static int open_cpu(saec_comm *c) {
    const saec_world *w = &c->world;
#ifndef SAEC_HAVE_MPI
    return saec_fail(SAEC_ERR_USAGE,
                     "CPU data parallelism runs over MPI: install OpenMPI (cmake/install-deps.sh), "
                     "rebuild saec, and launch with mpirun or srun",
                     "this saec was built without MPI, so the CPU backend cannot run on %d ranks "
                     "(launcher: %s)",
                     w->size, w->launcher);
#else
    if (!launched_by_mpi(w))
        return saec_fail(SAEC_ERR_USAGE,
                         "CPU data parallelism runs over MPI: launch with mpirun or srun "
                         "(torchrun-style RANK/WORLD_SIZE serve the CUDA backend, over NCCL)",
                         "the CPU backend cannot run on %d ranks started by %s (not under MPI)",
                         w->size, w->launcher);
    SAEC_TRY(saec_mpi_open(w, c->timeout_s, &c->mpi));
    c->kind = SAEC_COMM_MPI;
    return SAEC_OK;
#endif
}

static int host_bcast(saec_comm *c, void *buf, size_t bytes, int root);

static int open_cuda(saec_comm *c) {
    const saec_world *w = &c->world;
#ifndef SAEC_HAVE_NCCL
    return saec_fail(SAEC_ERR_DEVICE,
                     "install NCCL (the CUDA Toolkit's or libnccl-dev) and rebuild saec, or run "
                     "a single process",
                     "this saec was built without NCCL, so the CUDA backend cannot run on %d "
                     "ranks (launcher: %s)",
                     w->size, w->launcher);
#else
    /* The host channel carries NCCL's unique id, the config check and host collectives. */
    int via_mpi = 0;
#ifdef SAEC_HAVE_MPI
    via_mpi = launched_by_mpi(w);
#endif
    if (via_mpi) {
#ifdef SAEC_HAVE_MPI
        SAEC_TRY(saec_mpi_open(w, c->timeout_s, &c->mpi));
#endif
    } else if (w->master_addr[0] && w->master_port > 0) {
        SAEC_TRY(
            saec_tcp_open(w->master_addr, w->master_port, w->rank, w->size, c->timeout_s, &c->tcp));
    } else {
        return saec_fail(SAEC_ERR_USAGE,
                         "set MASTER_ADDR (rank 0's host) and MASTER_PORT (a free port) on every "
                         "rank, as torchrun does, or launch with mpirun/srun (with an "
                         "MPI-enabled saec)",
                         "NCCL needs a rendezvous: %d ranks started by %s, but MASTER_ADDR or "
                         "MASTER_PORT is unset%s",
                         w->size, w->launcher,
#ifdef SAEC_HAVE_MPI
                         ""
#else
                         " and this saec was built without MPI"
#endif
        );
    }
    /* Rank 0 makes the id; a status byte first, so that the others fail at once if it cannot. */
    unsigned char blob[1 + SAEC_NCCL_ID_MAX];
    size_t id_bytes = saec_nccl_id_bytes();
    memset(blob, 0, sizeof blob);
    char why[512] = "";
    if (w->rank == 0) {
        if (saec_nccl_new_id(blob + 1) != SAEC_OK) {
            blob[0] = 1;
            snprintf(why, sizeof why, "%s", saec_error_message());
            saec_error_clear();
        }
    }
    SAEC_TRY(host_bcast(c, blob, 1 + id_bytes, 0));
    if (blob[0] != 0)
        return saec_fail(SAEC_ERR_DEVICE, "read rank 0's output",
                         "rank 0 could not create the NCCL unique id%s%s", why[0] ? ": " : "", why);
    SAEC_TRY(saec_nccl_open(c->dev, w, c->timeout_s, blob + 1, &c->nccl));
    c->kind = SAEC_COMM_NCCL;
    return SAEC_OK;
#endif
}

static saec_comm *comm_new(saec_dev *dev, const saec_world *w, double timeout_s) {
    saec_comm *c = calloc(1, sizeof *c);
    if (!c) {
        saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening the communicator");
        return NULL;
    }
    c->dev = dev;
    c->world = *w;
    c->timeout_s = timeout_s;
    c->kind = SAEC_COMM_SINGLE;
    return c;
}

int saec_comm_open(saec_dev *dev, double timeout_s, saec_comm **out) {
    *out = NULL;
    if (!dev) return saec_fail(SAEC_ERR_OTHER, NULL, "saec_comm_open: no device");
    saec_world w;
    double to = 0;
    SAEC_TRY(saec_world_detect(&w));
    SAEC_TRY(saec_comm_resolve_timeout(timeout_s, &to));
    saec_comm *c = comm_new(dev, &w, to);
    if (!c) return SAEC_ERR_OTHER;
    int rc = SAEC_OK;
    /* SAEC_COMM_FORCE=1 opens the backend even for one rank, so that a world of one runs the
       real collectives (tests compare it with the plain single process). */
    const char *force = getenv("SAEC_COMM_FORCE");
    const int forced = force && force[0] && strcmp(force, "0") != 0;
    if (w.size > 1 || forced) rc = dev->backend == SAEC_BACKEND_CUDA ? open_cuda(c) : open_cpu(c);
    if (rc != SAEC_OK) {
        saec_comm_close(c);
        return rc;
    }
    *out = c;
    return SAEC_OK;
}

int saec_comm_open_tcp_host(double timeout_s, saec_comm **out) {
    *out = NULL;
    saec_world w;
    double to = 0;
    SAEC_TRY(saec_world_detect(&w));
    SAEC_TRY(saec_comm_resolve_timeout(timeout_s, &to));
    saec_comm *c = comm_new(NULL, &w, to);
    if (!c) return SAEC_ERR_OTHER;
    if (w.size > 1) {
        int rc = saec_tcp_open(w.master_addr, w.master_port, w.rank, w.size, to, &c->tcp);
        if (rc != SAEC_OK) {
            saec_comm_close(c);
            return rc;
        }
        c->kind = SAEC_COMM_TCP;
    }
    *out = c;
    return SAEC_OK;
}

void saec_comm_close(saec_comm *c) {
    if (!c) return;
#ifdef SAEC_HAVE_NCCL
    saec_nccl_close(c->nccl);
#endif
    saec_tcp_close(c->tcp);
#ifdef SAEC_HAVE_MPI
    saec_mpi_close(c->mpi);
#endif
    free(c);
}

/* ---- queries ------------------------------------------------------------------------------ */

static const saec_world single_world = {0, 1, 0, 1, "single", "", 0};

int saec_comm_rank(const saec_comm *c) { return c ? c->world.rank : 0; }
int saec_comm_size(const saec_comm *c) { return c ? c->world.size : 1; }
const saec_world *saec_comm_world(const saec_comm *c) { return c ? &c->world : &single_world; }

const char *saec_comm_backend_name(const saec_comm *c) {
    if (!c) return "single";
    switch (c->kind) {
    case SAEC_COMM_SINGLE: return "single";
    case SAEC_COMM_MPI: return "mpi";
    case SAEC_COMM_NCCL: return "nccl";
    case SAEC_COMM_TCP: return "tcp";
    }
    return "?";
}

/* ---- collectives -------------------------------------------------------------------------- */

static int check_args(const void *buf, int64_t count, saec_dtype dt, saec_redop op,
                      const char *what) {
    if (count < 0 || (count > 0 && !buf) || saec_dtype_size(dt) == 0 || op < SAEC_RED_SUM ||
        op > SAEC_RED_MAX)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "%s: invalid arguments (count %lld, dtype %d, op %d)", what,
                         (long long)count, (int)dt, (int)op);
    return SAEC_OK;
}

static int host_only(const saec_comm *c, const char *what) {
    return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                     "%s on the '%s' communicator, which carries host collectives only", what,
                     saec_comm_backend_name(c));
}

int saec_comm_allreduce(saec_comm *c, void *buf, int64_t count, saec_dtype dt, saec_redop op) {
    SAEC_TRY(check_args(buf, count, dt, op, "all-reduce"));
    if (!c || c->kind == SAEC_COMM_SINGLE || count == 0) return SAEC_OK;
#ifdef SAEC_HAVE_MPI
    if (c->kind == SAEC_COMM_MPI) return saec_mpi_allreduce(c->mpi, buf, count, dt, op);
#endif
#ifdef SAEC_HAVE_NCCL
    if (c->kind == SAEC_COMM_NCCL) return saec_nccl_allreduce(c->nccl, buf, count, dt, op);
#endif
    return host_only(c, "a device all-reduce");
}

int saec_comm_allgather(saec_comm *c, void *buf, int64_t count, saec_dtype dt) {
    SAEC_TRY(check_args(buf, count, dt, SAEC_RED_SUM, "all-gather"));
    if (!c || c->kind == SAEC_COMM_SINGLE || count == 0) return SAEC_OK;
#ifdef SAEC_HAVE_MPI
    if (c->kind == SAEC_COMM_MPI) return saec_mpi_allgather_blocks(c->mpi, buf, count, dt);
#endif
#ifdef SAEC_HAVE_NCCL
    if (c->kind == SAEC_COMM_NCCL) return saec_nccl_allgather(c->nccl, buf, count, dt);
#endif
    return host_only(c, "a device all-gather");
}

int saec_comm_grad_start(saec_comm *c, float *buf, int64_t count) {
    SAEC_TRY(check_args(buf, count, SAEC_DT_F32, SAEC_RED_SUM, "gradient bucket"));
    if (!c || c->kind == SAEC_COMM_SINGLE || count == 0) return SAEC_OK;
#ifdef SAEC_HAVE_MPI
    if (c->kind == SAEC_COMM_MPI) return saec_mpi_grad_start(c->mpi, buf, count);
#endif
#ifdef SAEC_HAVE_NCCL
    if (c->kind == SAEC_COMM_NCCL) return saec_nccl_grad_start(c->nccl, buf, count);
#endif
    return host_only(c, "a gradient all-reduce");
}

int saec_comm_grad_wait(saec_comm *c) {
    if (!c || c->kind == SAEC_COMM_SINGLE) return SAEC_OK;
#ifdef SAEC_HAVE_MPI
    if (c->kind == SAEC_COMM_MPI) return saec_mpi_grad_wait(c->mpi);
#endif
#ifdef SAEC_HAVE_NCCL
    if (c->kind == SAEC_COMM_NCCL) return saec_nccl_grad_wait(c->nccl);
#endif
    return host_only(c, "a gradient wait");
}

/* Host collectives go over MPI when the communicator has it, else over the TCP channel. */
static int host_bcast(saec_comm *c, void *buf, size_t bytes, int root) {
#ifdef SAEC_HAVE_MPI
    if (c->mpi) return saec_mpi_bcast(c->mpi, buf, bytes, root);
#endif
    if (c->tcp) return saec_tcp_bcast(c->tcp, buf, bytes, root);
    return SAEC_OK; /* single */
}

static int host_allgather(saec_comm *c, const void *mine, size_t bytes, char **data,
                          size_t *sizes) {
#ifdef SAEC_HAVE_MPI
    if (c->mpi) return saec_mpi_allgather(c->mpi, mine, bytes, data, sizes);
#endif
    if (c->tcp) return saec_tcp_allgather(c->tcp, mine, bytes, data, sizes);
    *data = malloc(bytes ? bytes : 1);
    if (!*data) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in a host all-gather");
    if (bytes) memcpy(*data, mine, bytes);
    sizes[0] = bytes;
    return SAEC_OK;
}

int saec_comm_bcast_host(saec_comm *c, void *buf, size_t bytes, int root) {
    int size = saec_comm_size(c);
    if (root < 0 || root >= size || (bytes > 0 && !buf))
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "host broadcast: invalid root %d (world of %d) or buffer", root, size);
    if (!c || c->kind == SAEC_COMM_SINGLE) return SAEC_OK;
    return host_bcast(c, buf, bytes, root);
}

int saec_comm_allreduce_host(saec_comm *c, void *buf, int64_t count, saec_dtype dt, saec_redop op) {
    SAEC_TRY(check_args(buf, count, dt, op, "host all-reduce"));
    if (!c || c->kind == SAEC_COMM_SINGLE || count == 0) return SAEC_OK;
#ifdef SAEC_HAVE_MPI
    if (c->mpi) return saec_mpi_allreduce(c->mpi, buf, count, dt, op);
#endif
    /* TCP: gather every rank's buffer and reduce in rank order, the same on every rank. */
    size_t bytes = (size_t)count * saec_dtype_size(dt);
    size_t *sizes = malloc((size_t)c->world.size * sizeof *sizes);
    if (!sizes) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in a host all-reduce");
    char *all = NULL;
    int rc = host_allgather(c, buf, bytes, &all, sizes);
    for (int r = 0; rc == SAEC_OK && r < c->world.size; r++)
        if (sizes[r] != bytes)
            rc = saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                           "host all-reduce: rank %d sent %zu bytes, rank %d %zu", r, sizes[r],
                           c->world.rank, bytes);
    if (rc == SAEC_OK) {
        memcpy(buf, all, bytes);
        for (int r = 1; r < c->world.size; r++)
            saec_reduce_host(buf, all + (size_t)r * bytes, count, dt, op);
    }
    free(all);
    free(sizes);
    return rc;
}

/* ---- the configuration check -------------------------------------------------------------- */

static int ignored(const char *path, const char *key, const char *const *ignore) {
    for (const char *const *p = ignore; p && *p; p++)
        if (strcmp(*p, key) == 0 || strcmp(*p, path) == 0) return 1;
    return 0;
}

static void print_value(const cJSON *v, char *out, size_t cap) {
    if (!v) {
        snprintf(out, cap, "(absent)");
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        snprintf(out, cap, "?");
        return;
    }
    if (strlen(s) >= cap && cap > 4) {
        memcpy(out, s, cap - 4);
        snprintf(out + cap - 4, 4, "...");
    } else {
        snprintf(out, cap, "%s", s);
    }
    cJSON_free(s);
}

/* First difference between objects a (rank 0) and b: keys in a's order, then keys only in b.
   Nested objects are compared key by key; the path is dotted ("optimizer.lr"). */
static int object_diff(const cJSON *a, const cJSON *b, const char *prefix,
                       const char *const *ignore, char *path, size_t path_cap, char *va, char *vb,
                       size_t v_cap) {
    char sub[512];
    for (const cJSON *x = a->child; x; x = x->next) {
        snprintf(sub, sizeof sub, "%s%s%s", prefix, prefix[0] ? "." : "", x->string);
        if (ignored(sub, x->string, ignore)) continue;
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
        if (y && cJSON_IsObject(x) && cJSON_IsObject(y)) {
            if (object_diff(x, y, sub, ignore, path, path_cap, va, vb, v_cap)) return 1;
            continue;
        }
        if (!y || !cJSON_Compare(x, y, 1)) {
            snprintf(path, path_cap, "%s", sub);
            print_value(x, va, v_cap);
            print_value(y, vb, v_cap);
            return 1;
        }
    }
    for (const cJSON *y = b->child; y; y = y->next) {
        snprintf(sub, sizeof sub, "%s%s%s", prefix, prefix[0] ? "." : "", y->string);
        if (ignored(sub, y->string, ignore)) continue;
        if (!cJSON_GetObjectItemCaseSensitive(a, y->string)) {
            snprintf(path, path_cap, "%s", sub);
            print_value(NULL, va, v_cap);
            print_value(y, vb, v_cap);
            return 1;
        }
    }
    return 0;
}

static cJSON *parse_n(const char *s, size_t n) {
    char *z = malloc(n + 1);
    if (!z) return NULL;
    memcpy(z, s, n);
    z[n] = '\0';
    cJSON *j = cJSON_Parse(z);
    free(z);
    return j;
}

int saec_config_first_difference(const char *a, size_t a_len, const char *b, size_t b_len,
                                 const char *const *ignore, char *path, size_t path_cap, char *va,
                                 char *vb, size_t v_cap) {
    path[0] = va[0] = vb[0] = '\0';
    cJSON *ja = parse_n(a, a_len), *jb = parse_n(b, b_len);
    int rc;
    if (!ja || !jb) {
        rc = !ja ? -1 : -2;
    } else if (cJSON_IsObject(ja) && cJSON_IsObject(jb)) {
        rc = object_diff(ja, jb, "", ignore, path, path_cap, va, vb, v_cap);
    } else {
        rc = !cJSON_Compare(ja, jb, 1);
        if (rc) {
            snprintf(path, path_cap, "(the whole configuration)");
            print_value(ja, va, v_cap);
            print_value(jb, vb, v_cap);
        }
    }
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    return rc;
}

#define CONFIG_HINT                                                                                \
    "start every rank with the same command line and config file (per-rank settings belong in "    \
    "the launcher's environment)"

int saec_comm_check_same_config(saec_comm *c, const char *config_json, const char *const *ignore) {
    if (!config_json)
        return saec_fail(SAEC_ERR_OTHER, NULL, "saec_comm_check_same_config: no configuration");
    if (!c || c->kind == SAEC_COMM_SINGLE) return SAEC_OK;
    int n = c->world.size;
    size_t *sizes = malloc((size_t)n * sizeof *sizes);
    if (!sizes) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in the config check");
    char *all = NULL;
    int rc = host_allgather(c, config_json, strlen(config_json), &all, sizes);
    if (rc != SAEC_OK) {
        free(sizes);
        return rc;
    }
    /* Every rank holds every configuration and reaches the same verdict, with no further
       message: so every rank fails, naming the same first differing rank and key. */
    const char *base = all;
    size_t off = sizes[0];
    char path[256], va[160], vb[160];
    for (int r = 1; r < n && rc == SAEC_OK; r++) {
        const char *mine = all + off;
        off += sizes[r];
        if (sizes[r] == sizes[0] && memcmp(mine, base, sizes[0]) == 0) continue;
        int d = saec_config_first_difference(base, sizes[0], mine, sizes[r], ignore, path,
                                             sizeof path, va, vb, sizeof va);
        if (d == -1)
            rc = saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                           "configuration check: rank 0's configuration is not valid JSON");
        else if (d == -2)
            rc = saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                           "configuration check: rank %d's configuration is not valid JSON", r);
        else if (d)
            rc = saec_fail(SAEC_ERR_USAGE, CONFIG_HINT,
                           "ranks run different configurations: rank %d has %s = %s, rank 0 has "
                           "%s = %s",
                           r, path, vb, path, va);
    }
    free(all);
    free(sizes);
    return rc;
}
