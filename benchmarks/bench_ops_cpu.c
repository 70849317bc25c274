/* bench_ops_cpu: the CPU backend's ops against this machine's two ceilings, measured in the same
 * run: the op benchmark of bench_ops (CUDA), on the CPU.
 *
 *   bench_ops_cpu OUT.json [GIT_COMMIT]      (the commit may also come from $SAEC_GIT_COMMIT)
 *
 * Ceilings (the best of RUNS, not the median): an in-place STREAM-style scale of 256 MiB over the
 * OpenMP threads (bytes/s, read + write counted) and OpenBLAS SGEMM at 2048^3 (FLOP/s), with the
 * backend's threads (OMP_NUM_THREADS). Then every op case with a benchmark
 * (tests/op_case.h) at the case's benchmark shape for n = 2048 rows, m = 8192 latents, d = 1152
 * (half of bench_ops's sizes, so the run takes minutes on a few cores; the MoE-MAE cases fix
 * their own sizes): the median wall time of RUNS runs after a warm-up, the op's floor (its
 * saec_op_floor_NAME), the achieved rate and its percentage of the matching ceiling (bandwidth
 * when the op's arithmetic intensity is below the ridge point, FLOP/s above). Inputs are made as
 * the tests make them (the case's random fill and tweak).
 * An op whose working set (its floor bytes) fits in the last-level cache can pass 100% of the
 * bandwidth ceiling, which is measured out of cache (256 MiB): the figure shows its MB moved.
 * Raw numbers go to OUT.json with the backend's name (threads, BLAS), the date and the commit.
 */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h" /* saec_now, saec_utc_stamp */
#include "op_inputs.h"
#include "saec/device.h"

#define RUNS 5
#define BENCH_N 2048
#define BENCH_M 8192
#define BENCH_D 1152

static saec_dev *dev;

static void die(const char *what) {
    fprintf(stderr, "bench_ops_cpu: %s: %s\n", what, saec_error_message());
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of RUNS timed calls of fn after one untimed call; times [RUNS] (sorted). */
static double time_median(void (*fn)(void *), void *ctx, double *times) {
    fn(ctx);
    for (int r = 0; r < RUNS; r++) {
        const double t0 = saec_now();
        fn(ctx);
        times[r] = saec_now() - t0;
    }
    qsort(times, RUNS, sizeof *times, cmp_double);
    return times[RUNS / 2];
}

/* ---- ceilings ---- */

typedef struct {
    void *dst, *src;
    size_t bytes;
} copy_ctx;
/* An in-place STREAM-style scale (x = 1.5·x, floats) over the backend's OpenMP threads: each
   line read once and written once, as the floors count bytes. A copy to another buffer moves a
   third more than it is credited with (the write-allocate read of the destination), and one
   thread's memcpy understated the machine threefold. */
static void run_copy(void *p) {
    copy_ctx *c = p;
    const int64_t n = (int64_t)(c->bytes / sizeof(float));
    float *x = c->dst;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        x[i] = 1.5f * x[i];
}

typedef struct {
    int n;
    float *A, *B, *C;
} sgemm_ctx;
static void run_sgemm(void *p) {
    sgemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1.0f, g->A, g->n, g->B,
                g->n, 0.0f, g->C, g->n);
}

static double copy_bw, sgemm_flops;

static void measure_ceilings(void) {
    double times[RUNS];
    copy_ctx c = {malloc((size_t)1 << 28), malloc((size_t)1 << 28), (size_t)1 << 28};
    if (!c.dst || !c.src) die("host memory");
    memset(c.src, 0, c.bytes), memset(c.dst, 0, c.bytes);
    time_median(run_copy, &c, times); /* times sorted: times[0] is the best */
    copy_bw = 2.0 * (double)c.bytes / times[0];
    free(c.dst), free(c.src);

    sgemm_ctx g = {2048, NULL, NULL, NULL};
    g.A = rand_floats((int64_t)g.n * g.n), g.B = rand_floats((int64_t)g.n * g.n);
    g.C = new_floats((int64_t)g.n * g.n);
    time_median(run_sgemm, &g, times);
    sgemm_flops = 2.0 * g.n * (double)g.n * g.n / times[0];
    free(g.A), free(g.B), free(g.C);
}

/* ---- the op cases ---- */

static void run_case(void *p) {
    const op_call *x = p;
    if (op_call_run(x) != SAEC_OK) die(x->c->op);
}

static cJSON *bench_case(const op_case *c) {
    op_call x;
    op_call_prepare(&x, dev, c, c->bench_shape(BENCH_N, BENCH_M, BENCH_D));
    double times[RUNS];
    const double t = time_median(run_case, &x, times);
    op_call_release(&x);

    const saec_op_floor f = c->floor(&x.s);
    const double ridge = sgemm_flops / copy_bw; /* FLOP per byte */
    const int memory = f.bytes > 0 && f.flops / f.bytes < ridge;
    const double pct = 100.0 * (memory ? f.bytes / t / copy_bw : f.flops / t / sgemm_flops);
    printf("%-28s %10.3f ms  %8.2f GB/s  %8.2f GFLOP/s  %6.1f%% of %s  (%.1f MB moved)\n",
           c->bench_name, t * 1e3, f.bytes / t / 1e9, f.flops / t / 1e9, pct,
           memory ? "memory" : "fp32", f.bytes / 1e6);
    fflush(stdout);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->bench_name);
    cJSON_AddStringToObject(o, "op", c->op);
    cJSON_AddNumberToObject(o, "seconds_median", t);
    cJSON_AddItemToObject(o, "seconds", cJSON_CreateDoubleArray(times, RUNS));
    cJSON_AddNumberToObject(o, "floor_bytes", f.bytes);
    cJSON_AddNumberToObject(o, "floor_flops", f.flops);
    cJSON_AddNumberToObject(o, "bytes_per_s", f.bytes / t);
    cJSON_AddNumberToObject(o, "flops_per_s", f.flops / t);
    cJSON_AddStringToObject(o, "ceiling", memory ? "memory" : "fp32");
    cJSON_AddNumberToObject(o, "pct_of_ceiling", pct);
    return o;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_ops_cpu OUT.json [GIT_COMMIT]\n");
        return 2;
    }
    const char *commit = argc > 2 ? argv[2] : getenv("SAEC_GIT_COMMIT");
    if (!commit || !*commit) commit = "unknown";
    if (saec_dev_open("cpu", &dev) != SAEC_OK) die("opening the CPU backend");
    rng_seed(0x5AEC0BE4C4000001ull); /* the op cases' inputs, as bench_ops */
    char date[32];
    saec_utc_stamp(date, sizeof date);
    printf("device: %s\ndate: %s\ncommit: %s\n", dev->name, date, commit);

    measure_ceilings();
    printf("ceilings: in-place scale %.2f GB/s (read + write); SGEMM 2048^3 %.1f GFLOP/s\n",
           copy_bw / 1e9, sgemm_flops / 1e9);

    cJSON *root = cJSON_CreateObject(), *ops = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "benchmark", "bench_ops_cpu");
    cJSON_AddStringToObject(root, "device", dev->name);
    cJSON_AddStringToObject(root, "date", date);
    cJSON_AddStringToObject(root, "git_commit", commit);
    cJSON *sizes = cJSON_AddObjectToObject(root, "sizes");
    cJSON_AddNumberToObject(sizes, "n", BENCH_N);
    cJSON_AddNumberToObject(sizes, "m", BENCH_M);
    cJSON_AddNumberToObject(sizes, "d", BENCH_D);
    cJSON *ceil = cJSON_AddObjectToObject(root, "ceilings");
    cJSON_AddNumberToObject(ceil, "inplace_scale_bytes_per_s", copy_bw);
    cJSON_AddNumberToObject(ceil, "sgemm_2048_flops_per_s", sgemm_flops);
    for (int i = 0; i < op_cases_count; i++)
        if (op_cases[i]->bench_name) cJSON_AddItemToArray(ops, bench_case(op_cases[i]));
    cJSON_AddItemToObject(root, "ops", ops);

    char *text = cJSON_Print(root);
    FILE *f = fopen(argv[1], "w");
    if (!f || !text || fputs(text, f) < 0 || fputc('\n', f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "bench_ops_cpu: cannot write %s\n", argv[1]);
        return 1;
    }
    printf("wrote %s\n", argv[1]);
    free(text);
    cJSON_Delete(root);
    saec_dev_close(dev);
    return 0;
}
