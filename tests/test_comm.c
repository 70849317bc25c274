/* Data-parallel communication (host/comm*.c). One program, several modes; tests/test_comm.sh
   starts them under mpirun or as torchrun-style process groups and checks exit codes and
   messages:
     unit           one process: world detection from every launcher's variables (and the
                    errors), SAEC_COMM_TIMEOUT, the config differ, the single backend, the
                    refusal of CPU data parallelism outside MPI
     mpi            under mpirun: the world, all-reduce of f32/f64/i64 with sum/min/max at
                    counts 1, 7, 1000003 against closed forms, gradient buckets, host
                    broadcast and all-reduce, the config check (same passes; one rank
                    different fails on every rank, naming the key)
     mpi-dead       under mpirun: the last rank exits(1) before a collective
     mpi-stall      under mpirun: the last rank sleeps instead of joining a collective
     tcp            RANK/WORLD_SIZE/MASTER_*: the TCP rendezvous, variable-size all-gather,
                    broadcast, and the config check over the host-only TCP communicator
     tcp-open       open the host-only TCP communicator and close it (rendezvous failures)
     tcp-dead       the last rank exits(1) after the rendezvous, before an all-gather
     has-mpi        exit 0 when saec was built with MPI, else 1
   Expected failures print the error (as the CLI does) and exit 3. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "comm.h"
#include "comm_internal.h"
#include "comm_tcp.h"
#include "comm_util.h"
#include "saec/device.h"

#define EXPECTED_FAILURE 3

static void print_error(void) {
    fprintf(stderr, "saec: error: %s\n", saec_error_message());
    if (saec_error_hint()[0]) fprintf(stderr, "  hint: %s\n", saec_error_hint());
}

static void check_hint(const char *call, const char *needle) {
    if (!needle) return;
    CHECK(strstr(saec_error_hint(), needle) != NULL, "%s: hint lacks '%s': %s", call, needle,
          saec_error_hint());
}

/* A call that must fail with `code`, a message containing `needle` and, unless NULL, a hint
   containing `hint_needle`. */
#define FAILS(call, code, needle, hint_needle)                                                     \
    do {                                                                                           \
        saec_error_clear();                                                                        \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == (code), "%s returned %d, expected %d (%s)", #call, rc_, (code),               \
              saec_error_message());                                                               \
        CHECK(strstr(saec_error_message(), (needle)) != NULL, "%s: message lacks '%s': %s", #call, \
              (needle), saec_error_message());                                                     \
        check_hint(#call, (hint_needle));                                                          \
        saec_error_clear();                                                                        \
    } while (0)

/* ---- unit: one process ---------------------------------------------------------------------- */

static const char *const launch_vars[] = {"RANK",
                                          "WORLD_SIZE",
                                          "LOCAL_RANK",
                                          "LOCAL_WORLD_SIZE",
                                          "MASTER_ADDR",
                                          "MASTER_PORT",
                                          "OMPI_COMM_WORLD_RANK",
                                          "OMPI_COMM_WORLD_SIZE",
                                          "OMPI_COMM_WORLD_LOCAL_RANK",
                                          "OMPI_COMM_WORLD_LOCAL_SIZE",
                                          "SLURM_PROCID",
                                          "SLURM_NTASKS",
                                          "SLURM_NPROCS",
                                          "SLURM_LOCALID",
                                          "SLURM_NTASKS_PER_NODE",
                                          "SLURM_TASKS_PER_NODE",
                                          "SLURM_NODEID",
                                          "PMI_RANK",
                                          "PMI_SIZE",
                                          "MPI_LOCALRANKID",
                                          "MPI_LOCALNRANKS",
                                          "SAEC_COMM_TIMEOUT",
                                          "SAEC_MASTER_PORT",
                                          "TORCHELASTIC_USE_AGENT_STORE",
                                          NULL};

/* Clears every launcher variable, then sets "NAME=value" pairs (NULL-terminated). */
static void launch_env(const char *first, ...) {
    for (const char *const *v = launch_vars; *v; v++)
        unsetenv(*v);
    va_list ap;
    va_start(ap, first);
    for (const char *kv = first; kv; kv = va_arg(ap, const char *)) {
        char name[64];
        const char *eq = strchr(kv, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv);
        setenv(name, eq + 1, 1);
    }
    va_end(ap);
}

static void expect_world(const char *launcher, int rank, int size, int local_rank, int local_size) {
    saec_world w;
    saec_error_clear();
    int rc = saec_world_detect(&w);
    CHECK(rc == SAEC_OK, "detect failed: %s", saec_error_message());
    if (rc != SAEC_OK) return;
    CHECK(strcmp(w.launcher, launcher) == 0, "launcher %s, expected %s", w.launcher, launcher);
    CHECK(w.rank == rank && w.size == size, "rank %d of %d, expected %d of %d", w.rank, w.size,
          rank, size);
    CHECK(w.local_rank == local_rank && w.local_size == local_size,
          "local rank %d of %d, expected %d of %d", w.local_rank, w.local_size, local_rank,
          local_size);
}

static void expect_world_error(const char *needle) {
    saec_world w;
    FAILS(saec_world_detect(&w), SAEC_ERR_USAGE, needle, NULL);
}

static void unit_world(void) {
    set_ctx("world: single");
    launch_env(NULL);
    expect_world("single", 0, 1, 0, 1);

    set_ctx("world: torchrun");
    launch_env("RANK=3", "WORLD_SIZE=8", "LOCAL_RANK=1", "LOCAL_WORLD_SIZE=4",
               "MASTER_ADDR=node0.example", "MASTER_PORT=29500", NULL);
    expect_world("torchrun", 3, 8, 1, 4);
    saec_world w;
    OK(saec_world_detect(&w));
    CHECK(strcmp(w.master_addr, "node0.example") == 0 && w.master_port == 29500, "master %s:%d",
          w.master_addr, w.master_port);

    set_ctx("world: torchrun's agent store holds MASTER_PORT");
    launch_env("RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=n0", "MASTER_PORT=29500",
               "TORCHELASTIC_USE_AGENT_STORE=True", NULL);
    OK(saec_world_detect(&w));
    CHECK(w.master_port == 29501, "port %d", w.master_port);
    launch_env("RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=n0", "MASTER_PORT=29500",
               "TORCHELASTIC_USE_AGENT_STORE=False", NULL);
    OK(saec_world_detect(&w));
    CHECK(w.master_port == 29500, "port %d", w.master_port);
    launch_env("RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=n0", "MASTER_PORT=29500",
               "TORCHELASTIC_USE_AGENT_STORE=True", "SAEC_MASTER_PORT=31000", NULL);
    OK(saec_world_detect(&w));
    CHECK(w.master_port == 31000, "port %d", w.master_port);
    launch_env("OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2", "SAEC_MASTER_PORT=0", NULL);
    expect_world_error("SAEC_MASTER_PORT=0");

    set_ctx("world: by hand, no LOCAL_RANK");
    launch_env("RANK=2", "WORLD_SIZE=3", NULL);
    expect_world("torchrun", 2, 3, 2, 3);

    set_ctx("world: torchrun beats OpenMPI");
    launch_env("RANK=1", "WORLD_SIZE=2", "LOCAL_RANK=1", "OMPI_COMM_WORLD_RANK=0",
               "OMPI_COMM_WORLD_SIZE=4", NULL);
    expect_world("torchrun", 1, 2, 1, 2);

    set_ctx("world: OpenMPI");
    launch_env("OMPI_COMM_WORLD_RANK=5", "OMPI_COMM_WORLD_SIZE=6", "OMPI_COMM_WORLD_LOCAL_RANK=1",
               "OMPI_COMM_WORLD_LOCAL_SIZE=2", NULL);
    expect_world("openmpi", 5, 6, 1, 2);

    set_ctx("world: OpenMPI beats Slurm (mpirun inside an allocation)");
    launch_env("OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2", "SLURM_PROCID=0",
               "SLURM_NTASKS=1", NULL);
    expect_world("openmpi", 1, 2, 0, 1);

    set_ctx("world: Slurm, SLURM_TASKS_PER_NODE");
    launch_env("SLURM_PROCID=7", "SLURM_NTASKS=8", "SLURM_LOCALID=3", "SLURM_NODEID=1",
               "SLURM_TASKS_PER_NODE=4(x2)", NULL);
    expect_world("slurm", 7, 8, 3, 4);
    launch_env("SLURM_PROCID=6", "SLURM_NTASKS=7", "SLURM_LOCALID=0", "SLURM_NODEID=3",
               "SLURM_TASKS_PER_NODE=2(x3),1", NULL);
    expect_world("slurm", 6, 7, 0, 1);
    set_ctx("world: Slurm, SLURM_NTASKS_PER_NODE, old SLURM_NPROCS");
    launch_env("SLURM_PROCID=2", "SLURM_NPROCS=4", "SLURM_LOCALID=0", "SLURM_NTASKS_PER_NODE=2",
               NULL);
    expect_world("slurm", 2, 4, 0, 2);

    set_ctx("world: PMI (Hydra)");
    launch_env("PMI_RANK=1", "PMI_SIZE=2", "MPI_LOCALRANKID=1", "MPI_LOCALNRANKS=2", NULL);
    expect_world("pmi", 1, 2, 1, 2);

    set_ctx("world: errors");
    launch_env("RANK=2", "WORLD_SIZE=2", NULL);
    expect_world_error("RANK=2 is not below WORLD_SIZE=2");
    launch_env("RANK=abc", "WORLD_SIZE=2", NULL);
    expect_world_error("RANK='abc' is not an integer");
    launch_env("RANK=0", NULL);
    expect_world_error("WORLD_SIZE is not");
    launch_env("WORLD_SIZE=0", "RANK=0", NULL);
    expect_world_error("WORLD_SIZE=0 is out of range");
    launch_env("RANK=0", "WORLD_SIZE=2", "MASTER_PORT=70000", NULL);
    expect_world_error("MASTER_PORT=70000");
    launch_env("RANK=0", "WORLD_SIZE=8", "LOCAL_RANK=4", "LOCAL_WORLD_SIZE=4", NULL);
    expect_world_error("LOCAL_RANK=4");
    launch_env("OMPI_COMM_WORLD_SIZE=2", NULL);
    expect_world_error("OMPI_COMM_WORLD_RANK is not");
    launch_env("OMPI_COMM_WORLD_RANK=3", "OMPI_COMM_WORLD_SIZE=2", NULL);
    expect_world_error("OMPI_COMM_WORLD_RANK=3");
    launch_env("SLURM_PROCID=0", NULL);
    expect_world_error("SLURM_NTASKS");
    launch_env("PMI_RANK=x1", "PMI_SIZE=2", NULL);
    expect_world_error("PMI_RANK='x1'");
    launch_env(NULL);
}

static void unit_timeout(void) {
    set_ctx("SAEC_COMM_TIMEOUT");
    double t = 0;
    launch_env(NULL);
    OK(saec_comm_resolve_timeout(0, &t));
    CHECK(t == 300.0, "default timeout %g", t);
    OK(saec_comm_resolve_timeout(42, &t));
    CHECK(t == 42.0, "argument timeout %g", t);
    launch_env("SAEC_COMM_TIMEOUT=2.5", NULL);
    OK(saec_comm_resolve_timeout(42, &t));
    CHECK(t == 2.5, "environment timeout %g", t);
    launch_env("SAEC_COMM_TIMEOUT=soon", NULL);
    FAILS(saec_comm_resolve_timeout(42, &t), SAEC_ERR_USAGE, "SAEC_COMM_TIMEOUT='soon'", NULL);
    launch_env("SAEC_COMM_TIMEOUT=-1", NULL);
    FAILS(saec_comm_resolve_timeout(42, &t), SAEC_ERR_USAGE, "SAEC_COMM_TIMEOUT", NULL);
    launch_env(NULL);
}

static void expect_diff(const char *a, const char *b, const char *const *ignore, int want,
                        const char *want_path, const char *want_va, const char *want_vb) {
    char path[256], va[64], vb[64];
    int d = saec_config_first_difference(a, strlen(a), b, strlen(b), ignore, path, sizeof path, va,
                                         vb, sizeof va);
    CHECK(d == want, "difference %d, expected %d (%s vs %s)", d, want, a, b);
    if (d == 1 && want == 1) {
        CHECK(strcmp(path, want_path) == 0, "key '%s', expected '%s'", path, want_path);
        CHECK(strcmp(va, want_va) == 0, "rank 0 value '%s', expected '%s'", va, want_va);
        CHECK(strcmp(vb, want_vb) == 0, "other value '%s', expected '%s'", vb, want_vb);
    }
}

static void unit_config_diff(void) {
    set_ctx("config differ");
    const char *base = "{\"lr\":0.001,\"k\":32,\"data\":{\"path\":\"a.h5\",\"d_in\":768},"
                       "\"out\":\"run0\",\"tags\":[1,2]}";
    expect_diff(base, base, NULL, 0, "", "", "");
    /* the same content, keys in another order: no difference */
    expect_diff(base,
                "{\"k\":32,\"lr\":0.001,\"out\":\"run0\",\"data\":{\"d_in\":768,\"path\":"
                "\"a.h5\"},\"tags\":[1,2]}",
                NULL, 0, "", "", "");
    expect_diff(base,
                "{\"lr\":0.002,\"k\":32,\"data\":{\"path\":\"a.h5\",\"d_in\":768},\"out\":"
                "\"run0\",\"tags\":[1,2]}",
                NULL, 1, "lr", "0.001", "0.002");
    expect_diff(base,
                "{\"lr\":0.001,\"k\":32,\"data\":{\"path\":\"a.h5\",\"d_in\":512},\"out\":"
                "\"run0\",\"tags\":[1,2]}",
                NULL, 1, "data.d_in", "768", "512");
    expect_diff(base,
                "{\"lr\":0.001,\"k\":32,\"data\":{\"path\":\"a.h5\",\"d_in\":768},\"out\":"
                "\"run0\",\"tags\":[1,3]}",
                NULL, 1, "tags", "[1,2]", "[1,3]");
    const char *const ignore[] = {"out", "data.path", NULL};
    expect_diff(base,
                "{\"lr\":0.001,\"k\":32,\"data\":{\"path\":\"b.h5\",\"d_in\":768},\"out\":"
                "\"run1\",\"tags\":[1,2]}",
                ignore, 0, "", "", "");
    expect_diff(base, "{\"lr\":0.001,\"data\":{\"path\":\"a.h5\",\"d_in\":768},\"out\":\"run0\"}",
                NULL, 1, "k", "32", "(absent)");
    expect_diff("{\"k\":1}", "{\"k\":1,\"extra\":true}", NULL, 1, "extra", "(absent)", "true");
    expect_diff("{\"k\":1}", "{\"k\":\"1\"}", NULL, 1, "k", "1", "\"1\"");
    expect_diff("{\"k\":1}", "{\"k\":", NULL, -2, "", "", "");
    expect_diff("nope", "{}", NULL, -1, "", "", "");
}

static void unit_single(void) {
    set_ctx("single backend");
    launch_env(NULL);
    saec_dev *dev = NULL;
    OK(saec_dev_open("cpu", &dev));
    if (!dev) return;
    saec_comm *c = NULL;
    OK(saec_comm_open(dev, 0, &c));
    CHECK(c && strcmp(saec_comm_backend_name(c), "single") == 0, "backend %s",
          c ? saec_comm_backend_name(c) : "(none)");
    CHECK(saec_comm_rank(c) == 0 && saec_comm_size(c) == 1, "rank %d of %d", saec_comm_rank(c),
          saec_comm_size(c));
    float x[7] = {1, 2, 3, 4, 5, 6, 7};
    OK(saec_comm_allreduce(c, x, 7, SAEC_DT_F32, SAEC_RED_SUM));
    OK(saec_comm_allgather(c, x, 7, SAEC_DT_F32));
    OK(saec_comm_grad_start(c, x, 7));
    OK(saec_comm_grad_wait(c));
    OK(saec_comm_allreduce_host(c, x, 7, SAEC_DT_F32, SAEC_RED_MAX));
    CHECK(x[0] == 1 && x[6] == 7, "single-process collectives changed the data");
    OK(saec_comm_bcast_host(c, x, sizeof x, 0));
    FAILS(saec_comm_bcast_host(c, x, sizeof x, 1), SAEC_ERR_OTHER, "root 1", NULL);
    FAILS(saec_comm_allreduce(c, x, -1, SAEC_DT_F32, SAEC_RED_SUM), SAEC_ERR_OTHER,
          "invalid arguments", NULL);
    OK(saec_comm_check_same_config(c, "{\"lr\":1}", NULL));
    saec_comm_close(c);
    /* NULL is the single process too */
    CHECK(saec_comm_rank(NULL) == 0 && saec_comm_size(NULL) == 1, "NULL communicator");
    CHECK(strcmp(saec_comm_world(NULL)->launcher, "single") == 0, "NULL world");
    OK(saec_comm_allreduce(NULL, x, 7, SAEC_DT_F32, SAEC_RED_SUM));
    saec_comm_close(NULL);

    set_ctx("CPU backend launched without MPI");
    launch_env("RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=1", NULL);
    c = NULL;
    FAILS(saec_comm_open(dev, 1, &c), SAEC_ERR_USAGE, "CPU backend", "mpirun");
    CHECK(c == NULL, "a failed open returned a communicator");
    set_ctx("TCP host communicator without MASTER_ADDR");
    launch_env("RANK=1", "WORLD_SIZE=2", NULL);
    FAILS(saec_comm_open_tcp_host(1, &c), SAEC_ERR_USAGE, "MASTER_ADDR", NULL);
    launch_env(NULL);
    saec_dev_close(dev);
}

/* ---- mpi: under mpirun ---------------------------------------------------------------------- */

/* Rank r's element i, and the reduction over ranks 0..P-1 in closed form. f32 values are small
   integers times 1/4 (exact); f64 values carry a fraction; i64 values exceed 2^53 and alternate
   sign, so a path through double would show. */
static double val_f(int r, int64_t i) { return 0.25 * (double)(r + 1) * (double)(i % 97 + 1); }
static double want_f(saec_redop op, int P, int64_t i) {
    double base = 0.25 * (double)(i % 97 + 1);
    return op == SAEC_RED_SUM ? base * P * (P + 1) / 2 : op == SAEC_RED_MIN ? base : base * P;
}
static double val_d(int r, int64_t i) { return (r + 1) * (1.0 / 8.0) + (double)(i % 1013); }
static double want_d(saec_redop op, int P, int64_t i) {
    double b = (double)(i % 1013);
    return op == SAEC_RED_SUM   ? P * b + (1.0 / 8.0) * P * (P + 1) / 2
           : op == SAEC_RED_MIN ? b + 1.0 / 8.0
                                : b + P / 8.0;
}
static int64_t val_l(int r, int64_t i) {
    int64_t mag = ((int64_t)1 << 40) * (r + 1) + i;
    return (i & 1) ? -mag : mag;
}
static int64_t want_l(saec_redop op, int P, int64_t i) {
    int64_t t40 = (int64_t)1 << 40;
    int neg = (int)(i & 1);
    int64_t lo = t40 + i, hi = t40 * P + i;
    if (op == SAEC_RED_SUM) {
        int64_t s = t40 * ((int64_t)P * (P + 1) / 2) + (int64_t)P * i;
        return neg ? -s : s;
    }
    if (op == SAEC_RED_MIN) return neg ? -hi : lo;
    return neg ? -lo : hi;
}

static void mpi_allreduce_cases(saec_comm *c) {
    int r = saec_comm_rank(c), P = saec_comm_size(c);
    const int64_t counts[] = {1, 7, 1000003};
    for (int dt = 0; dt < 3; dt++)
        for (int op = 0; op < 3; op++)
            for (int ci = 0; ci < 3; ci++) {
                int64_t n = counts[ci];
                set_ctx("rank %d: all-reduce %s %s count %lld", r, saec_dtype_name(dt),
                        saec_redop_name(op), (long long)n);
                void *buf = malloc((size_t)n * 8);
                for (int64_t i = 0; i < n; i++) {
                    if (dt == SAEC_DT_F32) ((float *)buf)[i] = (float)val_f(r, i);
                    if (dt == SAEC_DT_F64) ((double *)buf)[i] = val_d(r, i);
                    if (dt == SAEC_DT_I64) ((int64_t *)buf)[i] = val_l(r, i);
                }
                OK(saec_comm_allreduce(c, buf, n, (saec_dtype)dt, (saec_redop)op));
                int64_t bad = 0, first = -1;
                for (int64_t i = 0; i < n; i++) {
                    int ok =
                        dt == SAEC_DT_F32 ? ((float *)buf)[i] == (float)want_f((saec_redop)op, P, i)
                        : dt == SAEC_DT_F64 ? ((double *)buf)[i] == want_d((saec_redop)op, P, i)
                                            : ((int64_t *)buf)[i] == want_l((saec_redop)op, P, i);
                    if (!ok && bad++ == 0) first = i;
                }
                CHECK(bad == 0, "%lld wrong elements, the first at %lld", (long long)bad,
                      (long long)first);
                free(buf);
            }
}

/* Each rank fills its block with its own values and garbage elsewhere; every rank must end with
   every block (in place), at awkward block sizes and each dtype. */
static void mpi_allgather_cases(saec_comm *c) {
    int r = saec_comm_rank(c), P = saec_comm_size(c);
    const int64_t counts[] = {1, 7, 250003};
    for (int dt = 0; dt < 3; dt++)
        for (int ci = 0; ci < 3; ci++) {
            const int64_t n = counts[ci], total = n * P;
            set_ctx("rank %d: all-gather %s, blocks of %lld", r, saec_dtype_name(dt), (long long)n);
            void *buf = malloc((size_t)total * 8);
            for (int64_t i = 0; i < total; i++) {
                const int owner = (int)(i / n), mine = owner == r;
                const double v = mine ? val_d(owner, i) : -12345.0 - r; /* others: garbage */
                if (dt == SAEC_DT_F32) ((float *)buf)[i] = (float)v;
                if (dt == SAEC_DT_F64) ((double *)buf)[i] = v;
                if (dt == SAEC_DT_I64) ((int64_t *)buf)[i] = mine ? val_l(owner, i) : -7 - r;
            }
            OK(saec_comm_allgather(c, buf, n, (saec_dtype)dt));
            int64_t bad = 0, first = -1;
            for (int64_t i = 0; i < total; i++) {
                const int owner = (int)(i / n);
                int ok = dt == SAEC_DT_F32   ? ((float *)buf)[i] == (float)val_d(owner, i)
                         : dt == SAEC_DT_F64 ? ((double *)buf)[i] == val_d(owner, i)
                                             : ((int64_t *)buf)[i] == val_l(owner, i);
                if (!ok && bad++ == 0) first = i;
            }
            CHECK(bad == 0, "%lld wrong elements, the first at %lld", (long long)bad,
                  (long long)first);
            free(buf);
        }
}

static void mpi_grad_buckets(saec_comm *c) {
    int r = saec_comm_rank(c), P = saec_comm_size(c);
    const int64_t n = 1000003;
    const int64_t edges[] = {0, 1, 8, 1008, 34000, 500001, n}; /* six buckets */
    float *g = malloc((size_t)n * sizeof *g);
    for (int round = 0; round < 2; round++) {
        set_ctx("rank %d: gradient buckets, round %d", r, round);
        for (int64_t i = 0; i < n; i++)
            g[i] = (float)val_f(r + round, i);
        for (int b = 0; b < 6; b++)
            OK(saec_comm_grad_start(c, g + edges[b], edges[b + 1] - edges[b]));
        OK(saec_comm_grad_wait(c));
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            /* sum over ranks of 0.25 (r + round + 1)(i % 97 + 1) */
            double base = 0.25 * (double)(i % 97 + 1);
            double want = base * ((double)P * (P + 1) / 2 + (double)round * P);
            if (g[i] != (float)want) bad++;
        }
        CHECK(bad == 0, "%lld wrong gradient elements", (long long)bad);
    }
    set_ctx("rank %d: grad_wait with nothing started", r);
    OK(saec_comm_grad_wait(c));
    free(g);
}

static void mpi_host_collectives(saec_comm *c) {
    int r = saec_comm_rank(c), P = saec_comm_size(c);
    set_ctx("rank %d: bcast_host", r);
    unsigned char small[13];
    for (int i = 0; i < 13; i++)
        small[i] = r == P - 1 ? (unsigned char)(200 + i) : 0;
    OK(saec_comm_bcast_host(c, small, sizeof small, P - 1));
    int bad = 0;
    for (int i = 0; i < 13; i++)
        bad += small[i] != (unsigned char)(200 + i);
    CHECK(bad == 0, "broadcast from the last rank: %d wrong bytes", bad);
    size_t big_n = (size_t)1 << 20;
    unsigned char *big = calloc(big_n, 1);
    if (r == 0)
        for (size_t i = 0; i < big_n; i++)
            big[i] = (unsigned char)(i * 13 + 5);
    OK(saec_comm_bcast_host(c, big, big_n, 0));
    bad = 0;
    for (size_t i = 0; i < big_n; i++)
        bad += big[i] != (unsigned char)(i * 13 + 5);
    CHECK(bad == 0, "1 MiB broadcast from rank 0: %d wrong bytes", bad);
    free(big);

    set_ctx("rank %d: allreduce_host", r);
    int64_t ranks[2] = {r, -r};
    OK(saec_comm_allreduce_host(c, ranks, 2, SAEC_DT_I64, SAEC_RED_SUM));
    CHECK(ranks[0] == (int64_t)P * (P - 1) / 2 && ranks[1] == -ranks[0], "sum of ranks %lld",
          (long long)ranks[0]);
    double d[3] = {r + 0.5, -r - 0.5, 7};
    OK(saec_comm_allreduce_host(c, d, 3, SAEC_DT_F64, SAEC_RED_MAX));
    CHECK(d[0] == P - 0.5 && d[1] == -0.5 && d[2] == 7, "max %g %g %g", d[0], d[1], d[2]);
    float f = (float)(r + 1);
    OK(saec_comm_allreduce_host(c, &f, 1, SAEC_DT_F32, SAEC_RED_MIN));
    CHECK(f == 1.0f, "min %g", f);
}

static void config_checks(saec_comm *c) {
    int r = saec_comm_rank(c), P = saec_comm_size(c);
    char json[256];
    const char *const ignore[] = {"out", NULL};
    set_ctx("rank %d: same configuration", r);
    snprintf(json, sizeof json,
             "{\"lr\":0.001,\"k\":32,\"data\":{\"d_in\":768},\"out\":\"run_%d\"}", r);
    OK(saec_comm_check_same_config(c, json, ignore));

    set_ctx("rank %d: the last rank differs", r);
    snprintf(json, sizeof json, "{\"lr\":%s,\"k\":32,\"data\":{\"d_in\":768},\"out\":\"run_%d\"}",
             r == P - 1 ? "0.002" : "0.001", r);
    char needle[64];
    snprintf(needle, sizeof needle, "rank %d has lr = 0.002, rank 0 has lr = 0.001", P - 1);
    FAILS(saec_comm_check_same_config(c, json, ignore), SAEC_ERR_USAGE, needle, "same");

    set_ctx("rank %d: a nested key differs on rank 1", r);
    snprintf(json, sizeof json, "{\"lr\":0.001,\"k\":32,\"data\":{\"d_in\":%d},\"out\":\"x\"}",
             r == 1 ? 512 : 768);
    FAILS(saec_comm_check_same_config(c, json, ignore), SAEC_ERR_USAGE,
          "rank 1 has data.d_in = 512", NULL);

    set_ctx("rank %d: the communicator still works after a refused config", r);
    int64_t one = 1;
    OK(saec_comm_allreduce_host(c, &one, 1, SAEC_DT_I64, SAEC_RED_SUM));
    CHECK(one == P, "sum of ones %lld", (long long)one);
}

static int finish(const char *mode, int rank) {
    if (n_failures) {
        fprintf(stderr, "test_comm %s rank %d: %d of %d checks failed\n", mode, rank, n_failures,
                n_checks);
        return 1;
    }
    printf("test_comm %s rank %d: all %d checks passed\n", mode, rank, n_checks);
    return 0;
}

static int open_cpu_comm(saec_dev **dev, saec_comm **c) {
    if (saec_dev_open("cpu", dev) != SAEC_OK || saec_comm_open(*dev, 0, c) != SAEC_OK) {
        print_error();
        return 1;
    }
    return 0;
}

static int run_mpi(void) {
    saec_dev *dev = NULL;
    saec_comm *c = NULL;
    if (open_cpu_comm(&dev, &c)) return 1;
    int r = saec_comm_rank(c), P = saec_comm_size(c);
    set_ctx("rank %d: world", r);
    const saec_world *w = saec_comm_world(c);
    const char *er = getenv("OMPI_COMM_WORLD_RANK"), *es = getenv("OMPI_COMM_WORLD_SIZE"),
               *el = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    CHECK(strcmp(w->launcher, "openmpi") == 0, "launcher %s", w->launcher);
    CHECK(er && es && r == atoi(er) && P == atoi(es), "rank %d of %d vs OMPI %s of %s", r, P,
          er ? er : "?", es ? es : "?");
    CHECK(el && w->local_rank == atoi(el), "local rank %d vs %s", w->local_rank, el ? el : "?");
    CHECK(P >= 2, "world size %d: run under mpirun -np 2 or more", P);
    CHECK(strcmp(saec_comm_backend_name(c), "mpi") == 0, "backend %s", saec_comm_backend_name(c));
    mpi_allreduce_cases(c);
    mpi_allgather_cases(c);
    mpi_grad_buckets(c);
    mpi_host_collectives(c);
    config_checks(c);
    saec_comm_close(c);
    saec_dev_close(dev);
    return finish("mpi", r);
}

/* The last rank dies (mpi-dead) or stalls (mpi-stall) while the others enter an all-reduce. */
static int run_mpi_fault(int stall) {
    saec_dev *dev = NULL;
    saec_comm *c = NULL;
    if (open_cpu_comm(&dev, &c)) return 1;
    int r = saec_comm_rank(c), P = saec_comm_size(c);
    if (r == P - 1) {
        fprintf(stderr, "test_comm: rank %d %s on purpose\n", r, stall ? "stalls" : "exits(1)");
        if (!stall) exit(1);
        sleep(120);
        return 0;
    }
    float x[1000] = {0};
    if (saec_comm_allreduce(c, x, 1000, SAEC_DT_F32, SAEC_RED_SUM) != SAEC_OK) {
        print_error();
        return EXPECTED_FAILURE;
    }
    fprintf(stderr, "test_comm: rank %d finished an all-reduce that a rank never joined\n", r);
    return 1;
}

/* ---- tcp: torchrun-style process groups on 127.0.0.1 ---------------------------------------- */

static size_t blob_len(int r) { return r == 0 ? 0 : (size_t)r * 1234567u % 3000017u + (size_t)r; }
static unsigned char blob_byte(int r, size_t i) { return (unsigned char)(r * 31 + i * 7); }

static int run_tcp(void) {
    saec_world w;
    if (saec_world_detect(&w) != SAEC_OK) {
        print_error();
        return 1;
    }
    int r = w.rank, P = w.size;
    double timeout = 0;
    OK(saec_comm_resolve_timeout(20, &timeout));

    set_ctx("rank %d: TCP rendezvous and all-gather", r);
    saec_tcp *t = NULL;
    if (saec_tcp_open(w.master_addr, w.master_port, r, P, timeout, &t) != SAEC_OK) {
        print_error();
        return 1;
    }
    size_t mine_n = blob_len(r);
    unsigned char *mine = malloc(mine_n ? mine_n : 1);
    for (size_t i = 0; i < mine_n; i++)
        mine[i] = blob_byte(r, i);
    size_t *sizes = calloc((size_t)P, sizeof *sizes);
    char *all = NULL;
    for (int round = 0; round < 2; round++) {
        OK(saec_tcp_allgather(t, mine, mine_n, &all, sizes));
        if (!all) break;
        size_t off = 0, bad = 0;
        for (int q = 0; q < P; q++) {
            CHECK(sizes[q] == blob_len(q), "rank %d's blob: %zu bytes, expected %zu", q, sizes[q],
                  blob_len(q));
            for (size_t i = 0; i < sizes[q] && sizes[q] == blob_len(q); i++)
                bad += (unsigned char)all[off + i] != blob_byte(q, i);
            off += sizes[q];
        }
        CHECK(bad == 0, "%zu wrong bytes in the gathered blobs", bad);
        free(all);
        all = NULL;
    }
    set_ctx("rank %d: TCP broadcast", r);
    char msg[32] = "";
    if (r == P - 1) snprintf(msg, sizeof msg, "hello from rank %d", r);
    OK(saec_tcp_bcast(t, msg, sizeof msg, P - 1));
    char want[32];
    snprintf(want, sizeof want, "hello from rank %d", P - 1);
    CHECK(strcmp(msg, want) == 0, "broadcast gave '%s'", msg);
    saec_tcp_close(t);
    free(mine);
    free(sizes);

    /* the host-only communicator: a second rendezvous on the same port */
    set_ctx("rank %d: host-only TCP communicator", r);
    saec_comm *c = NULL;
    if (saec_comm_open_tcp_host(timeout, &c) != SAEC_OK) {
        print_error();
        return 1;
    }
    CHECK(strcmp(saec_comm_backend_name(c), "tcp") == 0, "backend %s", saec_comm_backend_name(c));
    CHECK(strcmp(saec_comm_world(c)->launcher, "torchrun") == 0, "launcher %s",
          saec_comm_world(c)->launcher);
    float x = 1;
    FAILS(saec_comm_allreduce(c, &x, 1, SAEC_DT_F32, SAEC_RED_SUM), SAEC_ERR_OTHER,
          "host collectives only", NULL);
    FAILS(saec_comm_allgather(c, &x, 1, SAEC_DT_F32), SAEC_ERR_OTHER, "host collectives only",
          NULL);
    mpi_host_collectives(c);
    config_checks(c);
    saec_comm_close(c);
    return finish("tcp", r);
}

static int run_tcp_open(void) {
    saec_comm *c = NULL;
    if (saec_comm_open_tcp_host(0, &c) != SAEC_OK) {
        print_error();
        return EXPECTED_FAILURE;
    }
    printf("test_comm tcp-open: rank %d of %d joined\n", saec_comm_rank(c), saec_comm_size(c));
    saec_comm_close(c);
    return 0;
}

static int run_tcp_dead(void) {
    saec_comm *c = NULL;
    if (saec_comm_open_tcp_host(0, &c) != SAEC_OK) {
        print_error();
        return 1;
    }
    int r = saec_comm_rank(c), P = saec_comm_size(c);
    if (r == P - 1) {
        fprintf(stderr, "test_comm: rank %d exits(1) on purpose\n", r);
        exit(1);
    }
    if (saec_comm_check_same_config(c, "{\"k\":1}", NULL) != SAEC_OK) {
        print_error();
        return EXPECTED_FAILURE;
    }
    fprintf(stderr, "test_comm: rank %d finished a config check that a rank never joined\n", r);
    return 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "unit";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "has-mpi") == 0) {
#ifdef SAEC_HAVE_MPI
        return 0;
#else
        return 1;
#endif
    }
    if (strcmp(mode, "unit") == 0) {
        unit_world();
        unit_timeout();
        unit_config_diff();
        unit_single();
        return finish("unit", 0);
    }
    if (strcmp(mode, "mpi") == 0) return run_mpi();
    if (strcmp(mode, "mpi-dead") == 0) return run_mpi_fault(0);
    if (strcmp(mode, "mpi-stall") == 0) return run_mpi_fault(1);
    if (strcmp(mode, "tcp") == 0) return run_tcp();
    if (strcmp(mode, "tcp-open") == 0) return run_tcp_open();
    if (strcmp(mode, "tcp-dead") == 0) return run_tcp_dead();
    fprintf(stderr, "test_comm: unknown mode '%s'\n", mode);
    return 2;
}
