/* Every CUDA op against the CPU op (the reference) on the same random inputs of awkward sizes:
 * odd n, m, d (not multiples of 4 or 32), misaligned pointers (scalar paths), NaN. Each
 * comparison states its tolerance; integer outputs must match exactly.
 * The fused decoder update (CUDA only, saec_cuda_adamw_unit_rows) runs against the CPU's
 * project_rows_grad, adamw, normalize_rows.
 * Every other op comes from the op cases (op_case.h, run by op_harness.h in the case's group):
 * the dense family (op_cases_dense.c), the reduction family (op_cases_reduce.c: recon_grad
 * bitwise, counts exact), the selection, sparse-code and latent-bookkeeping family
 * (op_cases_sparse.c: topk_rows exact but for tied indices, the bookkeeping exact), the grouping
 * family (op_cases_grouping.c: group_count .. scatter_rows in group "grouping", the rest in
 * their own), the SAE-variant family (op_cases_variants.c: batch_topk, jumprelu, atm_mask,
 * scale_cols exact; silu and silu_backward in group "silu", 2e-6 as expf differs) and the
 * transformer pieces (op_cases_transformer.c) and the MoE router (op_cases_router.c, group
 * "router": the expert choice bit for bit): the same groups and tolerances as the hand-written
 * tests they replaced.
 * Also: the CUDA op table is complete, device errors are reported cleanly, and the ops that
 * promise determinism repeat bit for bit.
 *
 * Without a CUDA device (or in a build without the CUDA backend) it prints
 * "no CUDA device: skipped" and exits 77 (ctest: skipped).
 * SAEC_GPU_TEST_QUICK=1 drops the largest cases (for compute-sanitizer runs).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "op_harness.h"
#include "saec/device.h"
#include "saec/ops.h"
#include "test_random.h"
#ifdef SAEC_HAVE_CUDA
#include "cuda/cuda_internal.cuh" /* the optional fused decoder update */
#endif

/* ---- check/report helpers: check.h; random inputs: test_random.h (seeded in main) ---- */

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_gpu_ops: out of host memory\n");
        exit(1);
    }
    return p;
}

/* ---- one buffer on both devices (the fused decoder update's test: CUDA builds only) ---- */

static saec_dev *cpu, *gpu;

#ifdef SAEC_HAVE_CUDA
typedef struct {
    void *c, *g; /* the CPU device's and the CUDA device's copies */
    size_t bytes;
} pair;

static pair pair_new(size_t bytes) {
    pair p = {NULL, NULL, bytes};
    if (cpu->ops->alloc(cpu, bytes, &p.c) != SAEC_OK ||
        gpu->ops->alloc(gpu, bytes, &p.g) != SAEC_OK) {
        fprintf(stderr, "test_gpu_ops: allocation of %zu bytes failed: %s\n", bytes,
                saec_error_message());
        exit(1);
    }
    return p;
}

static pair pair_up(const void *host, size_t bytes) {
    pair p = pair_new(bytes);
    OK(cpu->ops->upload(cpu, p.c, host, bytes));
    OK(gpu->ops->upload(gpu, p.g, host, bytes));
    return p;
}

/* Download both copies (hc, hg: host buffers of p.bytes). */
static void pair_get(pair p, void *hc, void *hg) {
    OK(cpu->ops->download(cpu, hc, p.c, p.bytes));
    OK(gpu->ops->download(gpu, hg, p.g, p.bytes));
}

static void pair_free(pair *p) {
    if (p->c) cpu->ops->free(cpu, p->c);
    if (p->g) gpu->ops->free(gpu, p->g);
    p->c = p->g = NULL;
}

#define FC(p) ((float *)(p).c)
#define FG(p) ((float *)(p).g)
#define IC(p) ((int32_t *)(p).c)
#define IG(p) ((int32_t *)(p).g)
#define DC(p) ((double *)(p).c)
#define DG(p) ((double *)(p).g)

/* Download a float pair and compare it. */
static void compare_floats(int line, const char *what, pair p, int64_t offset, int64_t n,
                           const double *scale, double atol, double rtol) {
    float *hc = xmalloc(p.bytes), *hg = xmalloc(p.bytes);
    pair_get(p, hc, hg);
    check_close_f(__FILE__, line, what, hg + offset, hc + offset, scale, n, atol, rtol);
    free(hc), free(hg);
}
#define COMPARE_FLOATS(what, p, offset, n, scale, atol, rtol)                                      \
    compare_floats(__LINE__, what, p, offset, n, scale, atol, rtol)

#endif

/* ---- the table and the device ---- */

static void test_table(void) {
    set_ctx("cuda op table");
    const saec_op_table *t = saec_cuda_op_table();
    CHECK(t != NULL, "saec_cuda_op_table() is NULL in a CUDA build");
    if (!t) return;
    const char *missing = saec_op_table_first_missing(t);
    CHECK(missing == NULL, "the cuda table lacks the op '%s'", missing ? missing : "");
    CHECK(t->backend_name && strcmp(t->backend_name, "cuda") == 0, "backend_name is '%s'",
          t->backend_name ? t->backend_name : "(null)");
    CHECK(gpu->ops == t, "the opened device does not use the cuda table");
    CHECK(gpu->backend == SAEC_BACKEND_CUDA, "backend is %d", (int)gpu->backend);
    CHECK(strlen(gpu->name) > 0, "the device has no name");

    set_ctx("device errors");
    saec_dev *bad = NULL;
    char spec[32];
    snprintf(spec, sizeof spec, "cuda:%d", saec_cuda_device_count() + 3);
    int rc = saec_dev_open(spec, &bad);
    CHECK(rc == SAEC_ERR_DEVICE && bad == NULL, "opening %s returned %d", spec, rc);
    CHECK(strstr(saec_error_message(), "out of range") != NULL, "message: '%s'",
          saec_error_message());
    CHECK(strlen(saec_error_hint()) > 0, "no hint for a bad device index");
    saec_error_clear();
}

static void test_memory(void) {
    set_ctx("memory ops");
    /* alloc is zeroed */
    const size_t zb = 1000003;
    void *z = NULL;
    OK(gpu->ops->alloc(gpu, zb, &z));
    unsigned char *hz = xmalloc(zb);
    memset(hz, 0xAB, zb);
    OK(gpu->ops->download(gpu, hz, z, zb));
    size_t nz = 0;
    for (size_t i = 0; i < zb; i++)
        nz += hz[i] != 0;
    CHECK(nz == 0, "alloc left %zu nonzero bytes", nz);
    gpu->ops->free(gpu, z);
    free(hz);

    /* upload across several staging chunks (odd size), download, copy, zero */
    const size_t nb = ((size_t)40 << 20) + 13;
    unsigned char *src = xmalloc(nb), *back = xmalloc(nb);
    for (size_t i = 0; i < nb; i++)
        src[i] = (unsigned char)(rng_u64() & 0xFF);
    void *a = NULL, *b = NULL;
    OK(gpu->ops->alloc(gpu, nb, &a));
    OK(gpu->ops->alloc(gpu, nb, &b));
    OK(gpu->ops->upload(gpu, a, src, nb));
    OK(gpu->ops->upload(gpu, b, src + 7, nb - 7)); /* a second upload right behind the first */
    OK(gpu->ops->download(gpu, back, a, nb));
    CHECK(memcmp(src, back, nb) == 0, "upload/download round trip differs");
    OK(gpu->ops->download(gpu, back, b, nb - 7));
    CHECK(memcmp(src + 7, back, nb - 7) == 0, "second upload differs");
    OK(gpu->ops->copy(gpu, b, a, nb));
    OK(gpu->ops->zero(gpu, (char *)b + 5, 1000));
    OK(gpu->ops->sync(gpu));
    OK(gpu->ops->download(gpu, back, b, nb));
    size_t bad = 0;
    for (size_t i = 0; i < nb; i++)
        bad += back[i] != ((i >= 5 && i < 1005) ? 0 : src[i]);
    CHECK(bad == 0, "copy/zero: %zu bytes wrong", bad);
    gpu->ops->free(gpu, a);
    gpu->ops->free(gpu, b);
    free(src), free(back);
}

/* ---- losses and reductions, optimizer and decoder constraint: the op cases
   (op_cases_reduce.c), groups recon_loss_grad, recon_grad, sum_squares_count_positive,
   geometric_median, project_normalize and adamw ---- */

/* The fused decoder update (CUDA only) against the CPU's three ops in sequence. */
static void test_adamw_unit_rows(void) {
#ifdef SAEC_HAVE_CUDA
    static const int64_t shapes[][2] = {{37, 41}, {100, 64}, {3, 2304}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int clip = 0; clip < 2; clip++) {
            const int64_t m = shapes[s][0], d = shapes[s][1];
            set_ctx("adamw_unit_rows m=%lld d=%lld clip=%d", (long long)m, (long long)d, clip);
            float *W = rand_floats(m * d), *G = rand_floats(m * d), *m1 = rand_floats(m * d),
                  *m2 = rand_floats(m * d);
            for (int64_t i = 0; i < m * d; i++)
                m2[i] = fabsf(m2[i]) * 0.01f;
            for (int64_t c = 0; c < d; c++)
                W[c] = 0.0f; /* a zero row */
            const double sumsq = 50.0;
            pair pw = pair_up(W, (size_t)(m * d) * 4), pg = pair_up(G, (size_t)(m * d) * 4);
            pair pa = pair_up(m1, (size_t)(m * d) * 4), pv = pair_up(m2, (size_t)(m * d) * 4);
            pair pss = pair_up(&sumsq, sizeof sumsq);
            saec_adamw_args args = {1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, 4, clip ? 1.0f : 0.0f};
            OK(SAEC_OP(cpu, project_rows_grad, FC(pw), FC(pg), m, d));
            OK(SAEC_OP(cpu, adamw, FC(pw), FC(pg), FC(pa), FC(pv), m * d, args,
                       clip ? DC(pss) : NULL));
            OK(SAEC_OP(cpu, normalize_rows, FC(pw), m, d));
            OK(saec_cuda_adamw_unit_rows(gpu, FG(pw), FG(pg), FG(pa), FG(pv), m, d, args,
                                         clip ? DG(pss) : NULL));
            COMPARE_FLOATS("W", pw, 0, m * d, NULL, 1e-6, 1e-5);
            COMPARE_FLOATS("m1", pa, 0, m * d, NULL, 1e-7, 1e-5);
            COMPARE_FLOATS("m2", pv, 0, m * d, NULL, 1e-9, 1e-5);
            free(W), free(G), free(m1), free(m2);
            pair_free(&pw), pair_free(&pg), pair_free(&pa), pair_free(&pv), pair_free(&pss);
        }
#endif
}

/* The groups of cases, by name: `test_gpu_ops NAME...` runs only those (the mutation check of
   the emulated tier, tests/simt/mutation_check.sh, runs the group a seeded bug is in). These are
   the hand-written groups; every op case's group (op_case.h) is one too, run after them. */
static const struct {
    const char *name;
    void (*run)(void);
} GROUPS[] = {
    {"table", test_table},
    {"memory", test_memory},
    {"adamw_unit_rows", test_adamw_unit_rows},
};

/* The op cases' groups, each once, in the table's order (names[], returns the count). */
static int case_groups(const char **names) {
    int n = 0;
    for (int i = 0; i < op_cases_count; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++)
            seen |= strcmp(names[j], op_cases[i]->group) == 0;
        if (!seen) names[n++] = op_cases[i]->group;
    }
    return n;
}

static int wanted(int argc, char **argv, const char *name) {
    int yes = argc == 1;
    for (int a = 1; a < argc; a++)
        yes |= strcmp(name, argv[a]) == 0;
    return yes;
}

int main(int argc, char **argv) {
    const char **cgroups = xmalloc(sizeof *cgroups * (size_t)op_cases_count);
    const int n_cgroups = case_groups(cgroups);
    const size_t n_hand = sizeof GROUPS / sizeof GROUPS[0];
    for (int a = 1; a < argc; a++) {
        int found = 0;
        for (size_t g = 0; g < n_hand; g++)
            found |= strcmp(GROUPS[g].name, argv[a]) == 0;
        for (int g = 0; g < n_cgroups; g++)
            found |= strcmp(cgroups[g], argv[a]) == 0;
        if (!found) {
            fprintf(stderr, "test_gpu_ops: no group '%s'; the groups are:", argv[a]);
            for (size_t g = 0; g < n_hand; g++)
                fprintf(stderr, " %s", GROUPS[g].name);
            for (int g = 0; g < n_cgroups; g++)
                fprintf(stderr, " %s", cgroups[g]);
            fprintf(stderr, "\n");
            free(cgroups);
            return 2;
        }
    }
    if (saec_cuda_device_count() == 0) {
        free(cgroups);
        printf("no CUDA device: skipped\n");
        return 77;
    }
    const char *q = getenv("SAEC_GPU_TEST_QUICK");
    op_harness_quick = q && q[0] == '1';
    rng_seed(0x5AEC6B0C12345678ull);
    if (saec_dev_open("cpu", &cpu) != SAEC_OK || saec_dev_open("cuda", &gpu) != SAEC_OK) {
        fprintf(stderr, "test_gpu_ops: cannot open the devices: %s (%s)\n", saec_error_message(),
                saec_error_hint());
        return 1;
    }
    printf("cpu:  %s\ncuda: %s%s\n", cpu->name, gpu->name, op_harness_quick ? " (quick)" : "");

    for (size_t g = 0; g < n_hand; g++)
        if (wanted(argc, argv, GROUPS[g].name)) GROUPS[g].run();
    for (int g = 0; g < n_cgroups; g++)
        if (wanted(argc, argv, cgroups[g])) op_harness_vs_cpu(cpu, gpu, cgroups[g]);

    free(cgroups);
    saec_dev_close(gpu);
    saec_dev_close(cpu);
    printf("%d checks, %d failures\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
