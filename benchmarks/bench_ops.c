/* bench_ops: the CUDA backend's ops against the machine's two ceilings, measured in the same run.
 *
 *   bench_ops OUT.json [GIT_COMMIT]        (the commit may also come from $SAEC_GIT_COMMIT)
 *
 * Ceilings: a large device-to-device copy (bytes/s, read + write counted), and cuBLAS SGEMM and
 * TF32 GEMM at 8192^3 and at the encoder shape [4096 x 2304] x [2304 x 65536] (FLOP/s).
 * Then every op at d = 2304, n = 4096, k = 64 and m = 16384, 65536 (first the ops with an op
 * case, tests/op_case.h, at the case's benchmark shape on inputs uniform in [-1, 1) that the
 * case's tweak then adjusts; then the rest): the median of several cudaEvent-timed runs after
 * warm-up, with the op's floor (bytes it must move, FLOPs it must do: its saec_op_floor_NAME
 * from include/saec/op_list.h), the achieved rate and its percentage of the matching ceiling
 * (bandwidth when the op's arithmetic intensity is below the ridge point, FLOP/s above it).
 * Of the op cases (op_cases_sparse.c): topk_rows at k = 64, k = 512 and AuxK's k = d/2 over a
 * 5% mask, on values distributed as the encoder's pre-activations (about N(0, 0.32²)); the
 * sparse ops on k = 64 uniform random latents per row (TopK values in [0, 2) for the decode
 * and track_fired); track_fired_dense on n*m values, about half positive; dead_latents_update
 * on the m latents.
 * Of the op cases (op_cases_variants.c): the SAE-variant ops on dense codes [n, m]: batch_topk
 * keeps n*k entries, jumprelu and its backward use θ ≈ 0.08 .. 0.22, l1_penalty and atm_stats
 * take ReLU codes, scale_cols a keep mask; silu/silu_backward on n*d elements (far more than
 * TIDE's adaln MLP needs: the size where bandwidth, not launch latency, is measured).
 * The grouping ops (op cases, tests/op_cases_grouping.c) run on a top-2 routing of the n tokens
 * over 8 experts (n*2 items): group_permute on those keys, grouped_gemm on the n*2 sorted rows
 * (K = d, N = 1024 per expert, trans_b, bias), and modulate_encode on the n tokens in 10 timestep
 * buckets; the backward of that grouped_gemm (grouped_gemm_wgrad: dB_g [d, 1024] from the sorted
 * rows and their output gradient; grouped_col_sum: the experts' bias gradient), both accumulating
 * (beta 1).
 * adamw_unit_rows_fused (CUDA only, no op case) on the decoder [m, d] with clipping active.
 * Raw numbers go to OUT.json with the device name, the date and the commit.
 * Without a CUDA device it prints why and exits 77.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "clock.h" /* saec_utc_stamp */
#include "cuda/cuda_internal.cuh"
#include "op_inputs.h"
#include "saec/device.h"

#define WARMUP 2
#define RUNS 7

static saec_dev *dev;
static cudaStream_t stream;
static cudaEvent_t ev_start, ev_stop;

static void die(const char *what) {
    fprintf(stderr, "bench_ops: %s: %s\n", what, saec_error_message());
    exit(1);
}

#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "bench_ops: %s failed: %s (%s:%d)\n", #call, cudaGetErrorString(e_),   \
                    __FILE__, __LINE__);                                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define CB(call)                                                                                   \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "bench_ops: %s failed: %s (%s:%d)\n", #call,                           \
                    cublasGetStatusString(s_), __FILE__, __LINE__);                                \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define OP(call)                                                                                   \
    do {                                                                                           \
        if ((call) != SAEC_OK) die(#call);                                                         \
    } while (0)

/* ---- timing ---- */

typedef void (*bench_fn)(void *ctx);

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of RUNS timed calls after WARMUP untimed ones; all runs in times[RUNS]. */
static double time_it(bench_fn fn, void *ctx, double *times) {
    for (int i = 0; i < WARMUP; i++)
        fn(ctx);
    CU(cudaStreamSynchronize(stream));
    double t[RUNS];
    for (int i = 0; i < RUNS; i++) {
        CU(cudaEventRecord(ev_start, stream));
        fn(ctx);
        CU(cudaEventRecord(ev_stop, stream));
        CU(cudaEventSynchronize(ev_stop));
        float ms = 0;
        CU(cudaEventElapsedTime(&ms, ev_start, ev_stop));
        t[i] = ms * 1e-3;
        if (times) times[i] = t[i];
    }
    qsort(t, RUNS, sizeof t[0], cmp_double);
    return t[RUNS / 2];
}

/* ---- results ---- */

typedef struct {
    char name[64];
    int64_t n, m, d, k;
    double seconds, times[RUNS];
    double floor_bytes, floor_flops;
} op_result;

static op_result results[128];
static int n_results;

static struct {
    double copy_bw;                     /* bytes/s, D2D copy (read + write) */
    double sgemm_square, tf32_square;   /* FLOP/s at 8192^3 */
    double sgemm_encoder, tf32_encoder; /* FLOP/s at [4096 x 2304] x [2304 x 65536] */
} ceil_;

/* ---- ceilings ---- */

typedef struct {
    void *dst, *src;
    size_t bytes;
} copy_ctx;
static void run_copy(void *c) {
    copy_ctx *x = c;
    CU(cudaMemcpyAsync(x->dst, x->src, x->bytes, cudaMemcpyDeviceToDevice, stream));
}

typedef struct {
    cublasHandle_t h;
    int tf32;
    int M, N, K; /* row-major C[M, N] = A[M, K] B[K, N] */
    float *A, *B, *C;
} gemm_ctx;
static void run_cublas(void *c) {
    gemm_ctx *g = c;
    const float one = 1.0f, zero = 0.0f;
    /* column-major view: C^T[N, M] = B^T[N, K] A^T[K, M] */
    CB(cublasGemmEx(g->h, CUBLAS_OP_N, CUBLAS_OP_N, g->N, g->M, g->K, &one, g->B, CUDA_R_32F, g->N,
                    g->A, CUDA_R_32F, g->K, &zero, g->C, CUDA_R_32F, g->N,
                    g->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT));
}

static void *dalloc(size_t bytes) {
    void *p = NULL;
    OP(dev->ops->alloc(dev, bytes, &p));
    return p;
}

/* Fill a device buffer with uniform [lo, hi) floats (host-generated, uploaded in chunks). */
static uint64_t rng = 0x5AECBE4C0FFEEull;
static float rnd(float lo, float hi) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng >> 40) * 0x1.0p-24);
}
static void fill_uniform(float *d, int64_t count, float lo, float hi) {
    const int64_t chunk = (int64_t)1 << 22;
    float *h = malloc((size_t)chunk * sizeof *h);
    if (!h) die("host memory");
    for (int64_t i = 0; i < chunk; i++)
        h[i] = rnd(lo, hi);
    for (int64_t off = 0; off < count; off += chunk) {
        const int64_t c = count - off < chunk ? count - off : chunk;
        h[rng % (uint64_t)chunk] = rnd(lo, hi); /* not an exact repeat */
        OP(dev->ops->upload(dev, d + off, h, (size_t)c * sizeof(float)));
    }
    free(h);
}

static void measure_ceilings(void) {
    /* copy: 1 GiB each way */
    copy_ctx cc = {NULL, NULL, (size_t)1 << 30};
    cc.src = dalloc(cc.bytes);
    cc.dst = dalloc(cc.bytes);
    double t = time_it(run_copy, &cc, NULL);
    ceil_.copy_bw = 2.0 * (double)cc.bytes / t;
    dev->ops->free(dev, cc.src);
    dev->ops->free(dev, cc.dst);

    cublasHandle_t h;
    CB(cublasCreate(&h));
    CB(cublasSetStream(h, stream));
    for (int shape = 0; shape < 2; shape++) {
        gemm_ctx g = {h, 0, 8192, 8192, 8192, NULL, NULL, NULL};
        if (shape == 1) g.M = 4096, g.N = 65536, g.K = 2304;
        g.A = dalloc((size_t)g.M * g.K * 4);
        g.B = dalloc((size_t)g.K * g.N * 4);
        g.C = dalloc((size_t)g.M * g.N * 4);
        fill_uniform(g.A, (int64_t)g.M * g.K, -1, 1);
        fill_uniform(g.B, (int64_t)g.K * g.N, -1, 1);
        const double flops = 2.0 * g.M * g.N * (double)g.K;
        for (int tf32 = 0; tf32 < 2; tf32++) {
            g.tf32 = tf32;
            const double rate = flops / time_it(run_cublas, &g, NULL);
            if (shape == 0) {
                if (tf32)
                    ceil_.tf32_square = rate;
                else
                    ceil_.sgemm_square = rate;
            } else {
                if (tf32)
                    ceil_.tf32_encoder = rate;
                else
                    ceil_.sgemm_encoder = rate;
            }
        }
        dev->ops->free(dev, g.A);
        dev->ops->free(dev, g.B);
        dev->ops->free(dev, g.C);
    }
    CB(cublasDestroy(h));
}

/* ---- the ops ---- */

typedef struct {
    int64_t m, d;
    float *Wdec, *dW, *m1, *m2; /* [m, d] x4 */
    double *scalars;            /* [16] */
    int which;                  /* the op to run */
} ctx_t;

enum { B_ADAMW_UNIT, B_COUNT };
static const char *op_names[B_COUNT] = {"adamw_unit_rows_fused"};

static saec_adamw_args adam_args(void) {
    saec_adamw_args a = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, 10, 1.0f};
    return a;
}

static void run_op(void *c) {
    ctx_t *x = c;
    switch (x->which) {
    case B_ADAMW_UNIT:
        OP(saec_cuda_adamw_unit_rows(dev, x->Wdec, x->dW, x->m1, x->m2, x->m, x->d, adam_args(),
                                     x->scalars + 4));
        break;
    }
}

/* The floor of each op as run by run_op: the op's own floor function (include/saec/op_list.h)
   at the sizes it is called with. */
static saec_op_floor op_floor(int which, const ctx_t *x) {
    switch (which) {
    case B_ADAMW_UNIT: return saec_op_floor_adamw_unit_rows((double)x->m, (double)x->d);
    }
    saec_op_floor none = {0, 0};
    return none;
}

/* ---- the op cases (tests/op_case.h): each at the benchmark's sizes, on its own buffers ---- */

static void run_case(void *p) { OP(op_call_run(p)); }

/* One case at the benchmark's sizes: its inputs made on the host as the tests make them (random
   fill, then the case's tweak), uploaded, timed. */
static void bench_case(const op_case *c, int64_t n, int64_t m, int64_t d, int64_t k) {
    op_call x;
    op_call_prepare(&x, dev, c, c->bench_shape(n, m, d));
    for (int tf32 = 0; tf32 < 2; tf32++) {
        const char *name = tf32 ? c->bench_tf32_name : c->bench_name;
        if (!name) continue;
        saec_cuda_set_tf32(dev, tf32);
        op_result *r = &results[n_results++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", name);
        r->n = n, r->m = m, r->d = d, r->k = c->bench_k ? c->bench_k : k;
        r->seconds = time_it(run_case, &x, r->times);
        const saec_op_floor floor = c->floor(&x.s);
        r->floor_bytes = floor.bytes;
        r->floor_flops = floor.flops;
        saec_cuda_set_tf32(dev, 0);
    }
    OP(dev->ops->sync(dev));
    op_call_release(&x);
}

static void bench_size(int64_t m) {
    for (int i = 0; i < op_cases_count; i++)
        if (op_cases[i]->bench_name) bench_case(op_cases[i], 4096, m, 2304, 64);

    ctx_t x;
    memset(&x, 0, sizeof x);
    const int64_t n = 4096, d = 2304, k = 64;
    x.m = m, x.d = d;
    x.Wdec = dalloc((size_t)(m * d) * 4);
    x.dW = dalloc((size_t)(m * d) * 4);
    x.m1 = dalloc((size_t)(m * d) * 4);
    x.m2 = dalloc((size_t)(m * d) * 4);
    x.scalars = dalloc(16 * sizeof(double));

    fill_uniform(x.Wdec, m * d, -0.02f, 0.02f);
    fill_uniform(x.dW, m * d, -1e-3f, 1e-3f);
    { /* a squared norm for the clip */
        const double sumsq[16] = {0, 0, 0, 0, 4.0};
        OP(dev->ops->upload(dev, x.scalars, sumsq, sizeof sumsq));
    }
    OP(dev->ops->sync(dev));

    for (int w = 0; w < B_COUNT; w++) {
        x.which = w;
        op_result *r = &results[n_results++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", op_names[w]);
        r->n = n, r->m = m, r->d = d, r->k = k;
        r->seconds = time_it(run_op, &x, r->times);
        const saec_op_floor floor = op_floor(w, &x);
        r->floor_bytes = floor.bytes;
        r->floor_flops = floor.flops;
    }
    OP(dev->ops->sync(dev));

    void *bufs[] = {x.Wdec, x.dW, x.m1, x.m2, x.scalars};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->ops->free(dev, bufs[i]);
}

/* The ceiling an op is measured against: bandwidth below the ridge point, FLOP/s above. */
static double op_ceiling(const op_result *r, const char **kind) {
    const int tf32 = strstr(r->name, "tf32") != NULL;
    const double flops_ceil = tf32 ? ceil_.tf32_encoder : ceil_.sgemm_encoder;
    const double ridge = flops_ceil / ceil_.copy_bw; /* FLOP per byte */
    if (r->floor_bytes > 0 && r->floor_flops / r->floor_bytes < ridge) {
        *kind = "memory";
        return ceil_.copy_bw;
    }
    *kind = tf32 ? "tf32" : "fp32";
    return flops_ceil;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_ops OUT.json [GIT_COMMIT]\n");
        return 2;
    }
    if (saec_cuda_device_count() == 0) {
        printf("bench_ops: no CUDA device: skipped\n");
        return 77;
    }
    const char *commit = argc > 2 ? argv[2] : getenv("SAEC_GIT_COMMIT");
    if (!commit || !*commit) commit = "unknown";
    if (saec_dev_open("cuda", &dev) != SAEC_OK) die("opening the CUDA device");
    rng_seed(0x5AEC0BE4C4000001ull); /* the op cases' inputs */
    stream = saec_cuda_stream(dev);
    CU(cudaEventCreate(&ev_start));
    CU(cudaEventCreate(&ev_stop));
    char date[32];
    saec_utc_stamp(date, sizeof date);
    printf("device: %s\ndate: %s\ncommit: %s\n", dev->name, date, commit);

    measure_ceilings();
    printf("ceilings: copy %.1f GB/s; SGEMM 8192^3 %.1f TFLOP/s, TF32 %.1f; encoder shape SGEMM "
           "%.1f TFLOP/s, TF32 %.1f\n",
           ceil_.copy_bw * 1e-9, ceil_.sgemm_square * 1e-12, ceil_.tf32_square * 1e-12,
           ceil_.sgemm_encoder * 1e-12, ceil_.tf32_encoder * 1e-12);

    bench_size(16384);
    bench_size(65536);

    printf("\n%-26s %7s %10s %12s %12s %10s %10s %8s\n", "op", "m", "time_ms", "floor_MB",
           "floor_GFLOP", "GB/s", "TFLOP/s", "%ceil");
    for (int i = 0; i < n_results; i++) {
        const op_result *r = &results[i];
        const char *kind;
        const double ceilv = op_ceiling(r, &kind);
        const double bw = r->floor_bytes / r->seconds, fl = r->floor_flops / r->seconds;
        const double pct = 100.0 * (strcmp(kind, "memory") == 0 ? bw : fl) / ceilv;
        printf("%-26s %7lld %10.4f %12.1f %12.2f %10.1f %10.2f %7.1f%% (%s)\n", r->name,
               (long long)r->m, r->seconds * 1e3, r->floor_bytes * 1e-6, r->floor_flops * 1e-9,
               bw * 1e-9, fl * 1e-12, pct, kind);
    }

    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fprintf(f, "{\n  \"benchmark\": \"bench_ops\",\n  \"device\": ");
    json_string(f, dev->name);
    fprintf(f, ",\n  \"date\": \"%s\",\n  \"git_commit\": ", date);
    json_string(f, commit);
    fprintf(f,
            ",\n  \"warmup\": %d,\n  \"runs\": %d,\n  \"statistic\": \"median\",\n"
            "  \"ceilings\": {\n    \"copy_d2d_bytes_per_s\": %.6e,\n"
            "    \"sgemm_8192_flops_per_s\": %.6e,\n    \"tf32_8192_flops_per_s\": %.6e,\n"
            "    \"sgemm_encoder_4096x2304x65536_flops_per_s\": %.6e,\n"
            "    \"tf32_encoder_4096x2304x65536_flops_per_s\": %.6e\n  },\n  \"ops\": [\n",
            WARMUP, RUNS, ceil_.copy_bw, ceil_.sgemm_square, ceil_.tf32_square, ceil_.sgemm_encoder,
            ceil_.tf32_encoder);
    for (int i = 0; i < n_results; i++) {
        const op_result *r = &results[i];
        const char *kind;
        const double ceilv = op_ceiling(r, &kind);
        const double bw = r->floor_bytes / r->seconds, fl = r->floor_flops / r->seconds;
        const double pct = 100.0 * (strcmp(kind, "memory") == 0 ? bw : fl) / ceilv;
        fprintf(f,
                "    {\"op\": \"%s\", \"n\": %lld, \"m\": %lld, \"d\": %lld, \"k\": %lld, "
                "\"time_s\": %.6e, \"times_s\": [",
                r->name, (long long)r->n, (long long)r->m, (long long)r->d, (long long)r->k,
                r->seconds);
        for (int j = 0; j < RUNS; j++)
            fprintf(f, "%s%.6e", j ? ", " : "", r->times[j]);
        fprintf(f,
                "], \"floor_bytes\": %.6e, \"floor_flops\": %.6e, \"bytes_per_s\": %.6e, "
                "\"flops_per_s\": %.6e, \"ceiling\": \"%s\", \"pct_of_ceiling\": %.2f}%s\n",
                r->floor_bytes, r->floor_flops, bw, fl, kind, pct, i + 1 < n_results ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    printf("\nwrote %s\n", argv[1]);
    saec_dev_close(dev);
    return 0;
}
