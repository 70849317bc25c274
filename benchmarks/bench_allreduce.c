/* bench_allreduce: all-reduce bus bandwidth of saec's communicator (host/comm/comm.h), reported the
 * way nccl-tests' all_reduce_perf reports it.
 *
 *   mpirun -np N bench_allreduce [--device cpu|cuda|auto] [--min-bytes B] [--max-bytes B]
 *                                [--iters I] [--warmup W] [--api allreduce|grad]
 *                                [--peak-gbps G] [--out PATH] [--timeout S]
 *   torchrun --no-python --standalone --nproc-per-node=8 bench_allreduce ...     (CUDA, NCCL)
 *
 * For each size from --min-bytes (4 KiB) to --max-bytes (1 GiB), ×4 per step, on a float32
 * buffer in the device's memory (host memory for the CPU backend, where the collective is MPI):
 *  - correctness, once: every rank fills the buffer with rank+1, runs one all-reduce (sum), and
 *    reads back a few sampled elements, which must all equal n(n+1)/2. Any mismatch on any rank
 *    ends the run on every rank with exit status 1 and the offending element;
 *  - timing: the buffer is zeroed, `warmup` untimed all-reduces, a barrier, then `iters`
 *    all-reduces between two device synchronisations (host clock). time = elapsed / iters,
 *    averaged over ranks (as nccl-tests does by default; the slowest rank's is also recorded).
 * Columns: bytes; count (float32 elements); time per op (µs); algbw = bytes / time (GB/s,
 * 1e9 bytes); busbw = algbw · 2(n−1)/n; and busbw as a fraction of a stated peak.
 *
 * --api allreduce times saec_comm_allreduce (ordered on the device stream); --api grad times
 * saec_comm_grad_start + saec_comm_grad_wait, the path of the training step's gradient buckets
 * (NCCL: on the communication stream; MPI: a non-blocking all-reduce waited on at once).
 *
 * The peak: --peak-gbps, else 450 GB/s (NVLink 4: 18 links × 25 GB/s per direction, the HGX
 * H100/H200 SXM figure) when the device is CUDA, its name contains H100 or H200 and every rank is
 * on one node; otherwise "n/a". It is a stated floor to compare with, not a measurement; NVLink
 * SHARP (NVLS) reductions in the switch can carry busbw somewhat past it.
 *
 * Rank 0 prints the table and writes a JSON file (--out, default
 * benchmarks/results/allreduce_<date>.json relative to the working directory) with the device,
 * world size, launcher, communicator backend, git commit ($SAEC_GIT_COMMIT, else
 * `git rev-parse --short HEAD`, else "unknown"), the date and the rows.
 * Exit status: 0; 1 on a wrong result or a failure; 2 on a usage error; 77 when --device cuda
 * finds no CUDA device.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "comm.h"
#include "fsutil.h"
#include "log.h" /* saec_now */
#include "saec/device.h"

#define N_SAMPLES 8 /* elements checked per size */

static int g_rank = 0;

static void die(const char *what) {
    fprintf(stderr, "bench_allreduce: rank %d: %s: %s\n", g_rank, what, saec_error_message());
    if (saec_error_hint()[0]) fprintf(stderr, "  hint: %s\n", saec_error_hint());
    exit(saec_error_code() == SAEC_OK ? 1 : saec_error_code());
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != SAEC_OK) die(#call);                                                         \
    } while (0)

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: bench_allreduce [--device auto|cpu|cuda] [--min-bytes B] [--max-bytes B]\n"
        "                       [--iters I] [--warmup W] [--api allreduce|grad]\n"
        "                       [--peak-gbps G] [--out PATH] [--timeout S]\n"
        "  sizes from --min-bytes (default 4K) to --max-bytes (default 1G), x4 per step;\n"
        "  B takes a K, M or G suffix (powers of 1024) and must be a multiple of 4.\n"
        "  --iters (default 20) timed and --warmup (default 5) untimed all-reduces per size.\n"
        "  Launch with mpirun -np N, or torchrun --no-python (CUDA). See benchmarks/README.md.\n");
}

static void usage_error(const char *fmt, const char *arg) {
    if (g_rank == 0) {
        fprintf(stderr, "bench_allreduce: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
        usage(stderr);
    }
    exit(2);
}

static int parse_bytes(const char *s, int64_t *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s) return -1;
    double mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1024.0, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024.0 * 1024.0, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024.0 * 1024.0 * 1024.0, end++;
    if (*end == 'B' || *end == 'b') end++;
    v *= mult;
    if (*end != '\0' || !isfinite(v) || v < 4 || v > 64.0 * 1024 * 1024 * 1024 || v != floor(v))
        return -1;
    *out = (int64_t)v;
    return (*out % 4 == 0) ? 0 : -1;
}

static int parse_int(const char *s, int lo, int *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > 1000000000L) return -1;
    *out = (int)v;
    return 0;
}

/* $SAEC_GIT_COMMIT, else `git rev-parse --short HEAD`, else "unknown". */
static void git_commit(char *out, size_t size) {
    snprintf(out, size, "unknown");
    const char *env = getenv("SAEC_GIT_COMMIT");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return;
    }
    FILE *p = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (!p) return;
    char line[64] = "";
    if (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0]) snprintf(out, size, "%s", line);
    }
    pclose(p);
}

typedef struct {
    saec_dev *dev;
    saec_comm *comm;
    int grad_api;
} ctx;

/* One all-reduce (sum, float32, in place) through the API under test. */
static int one_op(const ctx *x, float *buf, int64_t count) {
    if (x->grad_api) {
        SAEC_TRY(saec_comm_grad_start(x->comm, buf, count));
        return saec_comm_grad_wait(x->comm);
    }
    return saec_comm_allreduce(x->comm, buf, count, SAEC_DT_F32, SAEC_RED_SUM);
}

/* After the sum over ranks of rank+1, every element is 1 + 2 + ... + n = n(n+1)/2 (exact in
   float32 for any practical n). Reads back N_SAMPLES elements (first, last, middle and a few
   pseudo-random ones) and returns how many are wrong, the first described in msg; the caller
   shares the verdict with every rank. */
static int check_result(const ctx *x, const float *buf, int64_t count, int n, char *msg,
                        size_t msg_size) {
    const float expect = (float)((double)n * (n + 1) / 2.0);
    int64_t idx[N_SAMPLES];
    idx[0] = 0;
    idx[1] = count - 1;
    idx[2] = count / 2;
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)count;
    for (int i = 3; i < N_SAMPLES; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        idx[i] = (int64_t)((s >> 11) % (uint64_t)count);
    }
    int wrong = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        float v = NAN;
        TRY(x->dev->ops->download(x->dev, &v, buf + idx[i], sizeof v));
        if (v != expect) {
            if (wrong == 0)
                snprintf(msg, msg_size, "element %lld of %lld is %.9g, expected n(n+1)/2 = %.9g",
                         (long long)idx[i], (long long)count, (double)v, (double)expect);
            wrong++;
        }
    }
    return wrong;
}

typedef struct {
    int64_t bytes, count;
    double time_us, time_us_max, algbw, busbw, frac; /* frac NAN: no peak */
} row;

int main(int argc, char **argv) {
    const char *device = "auto", *out_path = NULL, *api = "allreduce";
    int64_t min_bytes = 4096, max_bytes = (int64_t)1 << 30;
    int iters = 20, warmup = 5;
    double peak = NAN, timeout = 0;

    saec_world w;
    if (saec_world_detect(&w) != SAEC_OK) die("reading the launcher's environment");
    g_rank = w.rank;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            if (g_rank == 0) usage(stdout);
            return 0;
        }
        const char *eq = strchr(a, '=');
        char key[32];
        const char *val = NULL;
        if (strncmp(a, "--", 2) != 0) usage_error("unexpected argument '%s'", a);
        if (eq) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(key, sizeof key, "%s", a);
            if (i + 1 >= argc) usage_error("%s needs a value", a);
            val = argv[++i];
        }
        if (strcmp(key, "--device") == 0) {
            if (strcmp(val, "cpu") != 0 && strcmp(val, "cuda") != 0 && strcmp(val, "auto") != 0)
                usage_error("--device takes cpu, cuda or auto, not '%s'", val);
            device = val;
        } else if (strcmp(key, "--min-bytes") == 0) {
            if (parse_bytes(val, &min_bytes) != 0)
                usage_error("--min-bytes: '%s' is not a positive multiple of 4 bytes", val);
        } else if (strcmp(key, "--max-bytes") == 0) {
            if (parse_bytes(val, &max_bytes) != 0)
                usage_error("--max-bytes: '%s' is not a positive multiple of 4 bytes", val);
        } else if (strcmp(key, "--iters") == 0) {
            if (parse_int(val, 1, &iters) != 0) usage_error("--iters: '%s' is not >= 1", val);
        } else if (strcmp(key, "--warmup") == 0) {
            if (parse_int(val, 0, &warmup) != 0) usage_error("--warmup: '%s' is not >= 0", val);
        } else if (strcmp(key, "--api") == 0) {
            if (strcmp(val, "allreduce") != 0 && strcmp(val, "grad") != 0)
                usage_error("--api takes allreduce or grad, not '%s'", val);
            api = val;
        } else if (strcmp(key, "--peak-gbps") == 0) {
            char *end = NULL;
            peak = strtod(val, &end);
            if (end == val || *end != '\0' || !isfinite(peak) || peak <= 0)
                usage_error("--peak-gbps: '%s' is not a positive number of GB/s", val);
        } else if (strcmp(key, "--out") == 0) {
            if (!*val) usage_error("--out needs a path%s", "");
            out_path = val;
        } else if (strcmp(key, "--timeout") == 0) {
            char *end = NULL;
            timeout = strtod(val, &end);
            if (end == val || *end != '\0' || !isfinite(timeout) || timeout <= 0)
                usage_error("--timeout: '%s' is not a positive number of seconds", val);
        } else {
            usage_error("unknown option '%s'", a);
        }
    }
    if (min_bytes > max_bytes) usage_error("--min-bytes is larger than --max-bytes%s", "");

    /* The device: with several ranks, a CUDA rank uses the GPU of its local rank. */
    const int gpus = saec_cuda_device_count();
    if (strcmp(device, "cuda") == 0 && gpus == 0) {
        fprintf(stderr,
                "bench_allreduce: rank %d: --device cuda, but no CUDA device is present "
                "(or saec was built without CUDA)\n",
                g_rank);
        return 77;
    }
    char spec[64];
    saec_world_device(&w, gpus == 0 ? "cpu" : device, spec, sizeof spec);
    ctx x = {NULL, NULL, strcmp(api, "grad") == 0};
    TRY(saec_dev_open(spec, &x.dev));
    TRY(saec_comm_open(x.dev, timeout, &x.comm));
    const int n = saec_comm_size(x.comm);
    const int is_cuda = x.dev->backend == SAEC_BACKEND_CUDA;

    /* The stated peak. The default is the intra-node NVLink 4 figure: across nodes the links
       are the network's, so only --peak-gbps gives one there. */
    const char *peak_source = "--peak-gbps";
    if (isnan(peak)) {
        peak_source = "none (give --peak-gbps)";
        if (is_cuda && (strstr(x.dev->name, "H100") || strstr(x.dev->name, "H200"))) {
            if (w.local_size >= w.size) {
                peak = 450.0;
                peak_source = "default: NVLink 4, 450 GB/s per direction (H100/H200 SXM)";
            } else {
                peak_source = "none: ranks span nodes, the NVLink default does not apply "
                              "(give --peak-gbps)";
            }
        }
    }

    /* Host staging for the fill: the largest buffer. */
    int64_t top = min_bytes;
    while (top * 4 <= max_bytes)
        top *= 4;
    float *host = malloc((size_t)top);
    float *buf = NULL;
    if (!host) {
        fprintf(stderr, "bench_allreduce: rank %d: out of host memory (%lld bytes)\n", g_rank,
                (long long)top);
        return 1;
    }
    TRY(x.dev->ops->alloc(x.dev, (size_t)top, (void **)&buf));

    if (g_rank == 0) {
        printf("bench_allreduce: %d rank%s (launcher %s), communicator %s, api %s\n", n,
               n == 1 ? "" : "s", w.launcher, saec_comm_backend_name(x.comm), api);
        printf("device (rank 0): %s\n", x.dev->name);
        printf("iters %d, warmup %d; time = mean over ranks of (elapsed / iters)\n", iters, warmup);
        if (isnan(peak))
            printf("peak bus bandwidth: n/a, %s\n", peak_source);
        else
            printf("peak bus bandwidth: %.1f GB/s, %s\n", peak, peak_source);
        /* busbw = algbw * 2(n-1)/n: with one rank nothing crosses a link, so busbw is 0. */
        if (n == 1)
            printf("world size 1: busbw = algbw * 2(n-1)/n is 0 by the formula (no collective "
                   "runs unless SAEC_COMM_FORCE=1)\n");
        printf("%12s %12s %12s %11s %11s %10s %6s\n", "bytes", "count", "time_us", "algbw_GB/s",
               "busbw_GB/s", "frac_peak", "check");
        fflush(stdout);
    }

    row rows[32];
    int n_rows = 0;
    for (int64_t bytes = min_bytes; bytes <= max_bytes && n_rows < 32; bytes *= 4) {
        const int64_t count = bytes / 4;

        /* Correctness, once per size, through the timed path. */
        for (int64_t i = 0; i < count; i++)
            host[i] = (float)(g_rank + 1);
        TRY(x.dev->ops->upload(x.dev, buf, host, (size_t)bytes));
        TRY(x.dev->ops->sync(x.dev));
        TRY(one_op(&x, buf, count));
        TRY(x.dev->ops->sync(x.dev));
        char msg[256] = "";
        int64_t wrong = check_result(&x, buf, count, n, msg, sizeof msg);
        int64_t any_wrong = wrong;
        TRY(saec_comm_allreduce_host(x.comm, &any_wrong, 1, SAEC_DT_I64, SAEC_RED_SUM));
        if (any_wrong) {
            if (wrong)
                fprintf(stderr,
                        "bench_allreduce: rank %d: WRONG all-reduce result at %lld bytes "
                        "(%lld floats, %d ranks): %s (%lld of %d samples wrong)\n",
                        g_rank, (long long)bytes, (long long)count, n, msg, (long long)wrong,
                        N_SAMPLES);
            if (g_rank == 0)
                fprintf(stderr,
                        "bench_allreduce: FAILED: %lld wrong samples over all ranks at "
                        "%lld bytes\n",
                        (long long)any_wrong, (long long)bytes);
            saec_comm_close(x.comm);
            return 1;
        }

        /* Timing on zeros (the sums stay finite however many iterations run). */
        TRY(x.dev->ops->zero(x.dev, buf, (size_t)bytes));
        for (int i = 0; i < warmup; i++)
            TRY(one_op(&x, buf, count));
        TRY(x.dev->ops->sync(x.dev));
        int64_t token = 0; /* a barrier, so that every rank starts the clock together */
        TRY(saec_comm_allreduce_host(x.comm, &token, 1, SAEC_DT_I64, SAEC_RED_SUM));
        const double t0 = saec_now();
        for (int i = 0; i < iters; i++)
            TRY(one_op(&x, buf, count));
        TRY(x.dev->ops->sync(x.dev));
        double t = (saec_now() - t0) / iters, t_sum = t, t_max = t;
        TRY(saec_comm_allreduce_host(x.comm, &t_sum, 1, SAEC_DT_F64, SAEC_RED_SUM));
        TRY(saec_comm_allreduce_host(x.comm, &t_max, 1, SAEC_DT_F64, SAEC_RED_MAX));

        row *r = &rows[n_rows++];
        r->bytes = bytes;
        r->count = count;
        const double sec = t_sum / n;
        r->time_us = sec * 1e6;
        r->time_us_max = t_max * 1e6;
        r->algbw = (double)bytes / sec / 1e9;
        /* nccl-tests' all-reduce bus bandwidth (doc/PERFORMANCE.md): busbw = algbw · 2(n−1)/n,
           the rate each link carries in a ring all-reduce, comparable to the hardware's peak
           whatever the rank count. 0 for one rank. */
        r->busbw = r->algbw * 2.0 * (n - 1) / n;
        r->frac = isnan(peak) ? NAN : r->busbw / peak;
        if (g_rank == 0) {
            char frac[16];
            if (isnan(r->frac))
                snprintf(frac, sizeof frac, "n/a");
            else
                snprintf(frac, sizeof frac, "%.3f", r->frac);
            printf("%12lld %12lld %12.2f %11.3f %11.3f %10s %6s\n", (long long)bytes,
                   (long long)count, r->time_us, r->algbw, r->busbw, frac, "ok");
            fflush(stdout);
        }
    }

    int rc = 0;
    if (g_rank == 0) {
        char date[32], stamp[40], commit[64], path_buf[512];
        time_t now = time(NULL);
        struct tm tm_local, tm_utc;
        localtime_r(&now, &tm_local);
        gmtime_r(&now, &tm_utc);
        strftime(date, sizeof date, "%Y-%m-%d", &tm_local);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
        git_commit(commit, sizeof commit);
        if (!out_path) {
            snprintf(path_buf, sizeof path_buf, "benchmarks/results/allreduce_%s.json", date);
            out_path = path_buf;
        }

        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "benchmark", "allreduce");
        cJSON_AddStringToObject(root, "device", x.dev->name);
        cJSON_AddStringToObject(root, "device_backend", is_cuda ? "cuda" : "cpu");
        cJSON_AddNumberToObject(root, "world_size", n);
        cJSON_AddNumberToObject(root, "local_size", w.local_size);
        cJSON_AddStringToObject(root, "launcher", w.launcher);
        cJSON_AddStringToObject(root, "backend", saec_comm_backend_name(x.comm));
        cJSON_AddStringToObject(root, "api", api);
        cJSON_AddStringToObject(root, "dtype", "float32");
        cJSON_AddStringToObject(root, "op", "sum");
        cJSON_AddStringToObject(root, "git_commit", commit);
        cJSON_AddStringToObject(root, "date", date);
        cJSON_AddStringToObject(root, "timestamp_utc", stamp);
        cJSON_AddNumberToObject(root, "iters", iters);
        cJSON_AddNumberToObject(root, "warmup", warmup);
        cJSON_AddStringToObject(root, "time",
                                "mean over ranks of host-clock elapsed / iters, between device "
                                "syncs; time_us_max: the slowest rank");
        cJSON_AddStringToObject(root, "busbw_formula",
                                "nccl-tests all-reduce: busbw = algbw * 2(n-1)/n (0 for n = 1)");
        if (isnan(peak))
            cJSON_AddNullToObject(root, "peak_busbw_gbps");
        else
            cJSON_AddNumberToObject(root, "peak_busbw_gbps", peak);
        cJSON_AddStringToObject(root, "peak_source", peak_source);
        cJSON *arr = cJSON_AddArrayToObject(root, "rows");
        for (int i = 0; i < n_rows; i++) {
            const row *r = &rows[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "bytes", (double)r->bytes);
            cJSON_AddNumberToObject(o, "count", (double)r->count);
            cJSON_AddNumberToObject(o, "time_us", r->time_us);
            cJSON_AddNumberToObject(o, "time_us_max", r->time_us_max);
            cJSON_AddNumberToObject(o, "algbw_gbps", r->algbw);
            cJSON_AddNumberToObject(o, "busbw_gbps", r->busbw);
            if (isnan(r->frac))
                cJSON_AddNullToObject(o, "fraction_of_peak");
            else
                cJSON_AddNumberToObject(o, "fraction_of_peak", r->frac);
            cJSON_AddStringToObject(o, "check", "ok");
            cJSON_AddItemToArray(arr, o);
        }
        char *text = cJSON_Print(root);
        cJSON_Delete(root);
        if (!text) {
            fprintf(stderr, "bench_allreduce: out of memory writing the JSON\n");
            rc = 1;
        } else {
            char dir[512];
            snprintf(dir, sizeof dir, "%s", out_path);
            char *slash = strrchr(dir, '/');
            if (slash && slash != dir) {
                *slash = '\0';
                if (saec_mkdirs(dir) != SAEC_OK) rc = 1;
            }
            saec_atomic_file af;
            if (rc == 0 && saec_atomic_open(&af, out_path) == SAEC_OK) {
                if (saec_atomic_write(&af, text, strlen(text)) == SAEC_OK &&
                    saec_atomic_write(&af, "\n", 1) == SAEC_OK)
                    rc = saec_atomic_commit(&af) == SAEC_OK ? 0 : 1;
                else {
                    saec_atomic_abort(&af);
                    rc = 1;
                }
            } else {
                rc = 1;
            }
            if (rc != 0)
                fprintf(stderr, "bench_allreduce: writing %s: %s\n", out_path,
                        saec_error_message());
            else
                printf("wrote %s\n", out_path);
            cJSON_free(text);
        }
    }

    x.dev->ops->free(x.dev, buf);
    free(host);
    saec_comm_close(x.comm);
    saec_dev_close(x.dev);
    return rc;
}
