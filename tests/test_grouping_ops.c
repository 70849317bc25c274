/* The grouping ops of the CPU backend, where more than one op or more than one run is compared
 * (each op against its naive reference, its awkward shapes and bad arguments: the op cases,
 * tests/op_cases_grouping.c, run by test_op_cases):
 *   - the pipeline group_count -> exclusive_scan -> group_permute -> gather_rows -> scatter_rows
 *     with r = 1 and weight 1 returns each grouped token's row, and zero rows for the tokens
 *     without a group (keys < 0), over empty groups, one group, every item in one group, many
 *     empty groups, n_items = 0, no item with a group, many groups;
 *   - grouped_col_sum is col_sum over each group's rows, bit for bit, and gives the same bits on
 *     one thread and on all;
 *   - grouped_gemm_wgrad repeats itself bit for bit;
 *   - modulate_encode with zero scale and shift is the plain encoder GEMM, bit for bit.
 * Prints one line per failing check and exits nonzero on any failure.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "saec/device.h"
#include "saec/ops.h"
#include "test_random.h"

/* ---- random inputs: test_random.h, seeded in main ---- */

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes > 64 ? bytes : 64); /* never 0 bytes: no special case for empty */
    if (!p) abort();
    return p;
}
static int32_t *new_ints(int64_t n) { return xmalloc((size_t)n * sizeof(int32_t)); }

/* ---- the grouping pipeline: count, scan, permute, gather, scatter ---- */

enum { K_RANDOM, K_ONE_GROUP, K_SPARSE_GROUPS };
static const char *key_kind_name[] = {"random", "one-group", "sparse-groups"};

/* keys [n_tokens] (r = 1): kind K_RANDOM uniform; K_ONE_GROUP every item in group n_groups / 2;
   K_SPARSE_GROUPS only every third group used (many empty groups). none_pct % of items get a
   negative key (−1 or −7). */
static int32_t *make_keys(int64_t n_tokens, int n_groups, int kind, int none_pct) {
    int32_t *keys = new_ints(n_tokens);
    for (int64_t t = 0; t < n_tokens; t++) {
        int32_t k = kind == K_ONE_GROUP       ? n_groups / 2
                    : kind == K_SPARSE_GROUPS ? (int32_t)(3 * rng_int((n_groups + 2) / 3))
                                              : (int32_t)rng_int(n_groups);
        if ((int)rng_int(100) < none_pct) k = rng_int(2) ? -1 : -7;
        keys[t] = k;
    }
    return keys;
}

/* gather then scatter (r = 1, w = 1) through the ops' own counts, offsets, perm and inv */
static void pipeline_case(saec_dev *dev, int64_t n_tokens, int n_groups, int kind, int none_pct,
                          int64_t d) {
    set_ctx("grouping pipeline n_tokens=%lld n_groups=%d keys=%s none=%d%% d=%lld",
            (long long)n_tokens, n_groups, key_kind_name[kind], none_pct, (long long)d);
    int32_t *keys = make_keys(n_tokens, n_groups, kind, none_pct);
    int32_t *counts = new_ints(n_groups), *offsets = new_ints(n_groups + 1);
    int32_t *perm = new_ints(n_tokens), *inv = new_ints(n_tokens);
    OK(SAEC_OP(dev, group_count, keys, n_tokens, n_groups, counts));
    OK(SAEC_OP(dev, exclusive_scan, counts, n_groups, offsets));
    OK(SAEC_OP(dev, group_permute, keys, n_tokens, n_groups, offsets, perm, inv));
    const int64_t n_sorted = offsets[n_groups];
    float *src = rand_floats(n_tokens * d), *sorted = rand_floats(n_sorted * d);
    float *back = rand_floats(n_tokens * d);
    OK(SAEC_OP(dev, gather_rows, src, perm, n_sorted, 1, d, sorted));
    OK(SAEC_OP(dev, scatter_rows, sorted, inv, NULL, n_tokens, 1, d, 0, back));
    int ok = 1;
    for (int64_t t = 0; t < n_tokens && ok; t++)
        for (int64_t c = 0; c < d && ok; c++)
            ok = back[t * d + c] == (keys[t] >= 0 ? src[t * d + c] : 0.0f);
    CHECK(ok, "gather -> scatter (r = 1, w = 1) does not return the input");
    free(keys), free(counts), free(offsets), free(perm), free(inv), free(src), free(sorted),
        free(back);
}

static void test_pipeline(saec_dev *dev) {
    pipeline_case(dev, 37, 10, K_RANDOM, 0, 13);       /* TIDE buckets */
    pipeline_case(dev, 37, 10, K_RANDOM, 20, 8);       /* keys < 0 */
    pipeline_case(dev, 50, 1, K_RANDOM, 0, 9);         /* one group */
    pipeline_case(dev, 50, 7, K_ONE_GROUP, 0, 5);      /* all tokens in one group */
    pipeline_case(dev, 77, 31, K_SPARSE_GROUPS, 5, 3); /* many empty groups */
    pipeline_case(dev, 0, 6, K_RANDOM, 0, 4);          /* n_items = 0 */
    pipeline_case(dev, 20, 4, K_RANDOM, 100, 6);       /* no item has a group */
    pipeline_case(dev, 3000, 20000, K_RANDOM, 0, 2);   /* many groups */
}

/* ---- grouped shapes ---- */

static int32_t *offsets_of(int n_groups, const int32_t *counts) {
    int32_t *offsets = new_ints(n_groups + 1);
    offsets[0] = 0;
    for (int g = 0; g < n_groups; g++)
        offsets[g + 1] = offsets[g] + counts[g];
    return offsets;
}

static const int32_t uneven[] = {17, 0, 1, 64, 0, 33, 5}; /* empty groups, uneven sizes */
static const int32_t one[] = {45};                        /* one group */
static const int32_t all_in_one[] = {0, 0, 70, 0};        /* every row in one group */
static const int32_t empty[] = {0, 0, 0};                 /* no rows at all */
static const int32_t moe[] = {530, 497, 661, 360, 0};     /* MoE-like: the parallel paths */

/* ---- grouped_gemm_wgrad: the same call again gives the same bits ---- */

static void wgrad_case(saec_dev *dev, int n_groups, const int32_t *counts, int64_t K, int64_t N,
                       float alpha, float beta) {
    int32_t *offsets = offsets_of(n_groups, counts);
    const int64_t rows = offsets[n_groups], out = (int64_t)n_groups * K * N;
    set_ctx("grouped_gemm_wgrad groups=%d rows=%lld K=%lld N=%lld alpha=%g beta=%g", n_groups,
            (long long)rows, (long long)K, (long long)N, alpha, beta);
    float *A = rand_floats(rows * K), *C = rand_floats(rows * N), *dB0 = rand_floats(out);
    float *dB = dup_floats(dB0, out), *again = dup_floats(dB0, out);
    OK(SAEC_OP(dev, grouped_gemm_wgrad, n_groups, offsets, K, N, alpha, A, C, beta, dB));
    OK(SAEC_OP(dev, grouped_gemm_wgrad, n_groups, offsets, K, N, alpha, A, C, beta, again));
    CHECK(memcmp(again, dB, (size_t)out * 4) == 0, "a second call differs (not deterministic)");
    free(offsets), free(A), free(C), free(dB0), free(dB), free(again);
}

static void test_grouped_gemm_wgrad(saec_dev *dev) {
    for (int b = 0; b < 2; b++) {
        const float beta = b ? 1.0f : 0.0f;
        wgrad_case(dev, 7, uneven, 13, 29, 0.7f, beta);
        wgrad_case(dev, 1, one, 1, 1, 1.0f, beta);
        wgrad_case(dev, 4, all_in_one, 37, 66, -1.5f, beta);
        wgrad_case(dev, 3, empty, 8, 8, 1.0f, beta);
        wgrad_case(dev, 5, moe, 72, 144, 1.0f, beta);
    }
}

/* ---- grouped_col_sum: col_sum per group, and one thread against all, bit for bit ---- */

static void gcs_case(saec_dev *dev, int n_groups, const int32_t *counts, int64_t N, float alpha,
                     float beta) {
    int32_t *offsets = offsets_of(n_groups, counts);
    const int64_t rows = offsets[n_groups], out_n = (int64_t)n_groups * N;
    set_ctx("grouped_col_sum groups=%d rows=%lld N=%lld alpha=%g beta=%g", n_groups,
            (long long)rows, (long long)N, alpha, beta);
    float *C = rand_floats(rows * N), *out0 = rand_floats(out_n);
    float *out = dup_floats(out0, out_n), *ref = dup_floats(out0, out_n);
    OK(SAEC_OP(dev, grouped_col_sum, n_groups, offsets, N, C, alpha, beta, out));
    for (int g = 0; g < n_groups; g++)
        OK(SAEC_OP(dev, col_sum, C + (int64_t)offsets[g] * N, offsets[g + 1] - offsets[g], N, alpha,
                   beta, ref + (int64_t)g * N));
    CHECK(memcmp(ref, out, (size_t)out_n * 4) == 0, "differs from col_sum per group (bitwise)");
    memcpy(ref, out0, (size_t)out_n * 4);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    OK(SAEC_OP(dev, grouped_col_sum, n_groups, offsets, N, C, alpha, beta, ref));
    omp_set_num_threads(threads);
    CHECK(memcmp(ref, out, (size_t)out_n * 4) == 0, "1-thread and %d-thread results differ",
          threads);
    free(offsets), free(C), free(out0), free(out), free(ref);
}

static void test_grouped_col_sum(saec_dev *dev) {
    for (int b = 0; b < 2; b++) {
        const float beta = b ? 1.0f : 0.0f;
        gcs_case(dev, 7, uneven, 29, 0.7f, beta);
        gcs_case(dev, 1, one, 1, 1.0f, beta);
        gcs_case(dev, 4, all_in_one, 130, -1.5f, beta);
        gcs_case(dev, 3, empty, 8, 1.0f, beta);
        gcs_case(dev, 5, moe, 144, 1.0f, beta);
    }
    gcs_case(dev, 7, uneven, 65, 0.0f, 0.5f); /* alpha = 0 */
}

/* ---- modulate_encode with zero scale and shift: the plain encoder GEMM on xc, bitwise ---- */

static void modulate_encode_case(saec_dev *dev, int64_t n, int64_t d, int64_t m, int n_buckets,
                                 int with_bias, int u_null) {
    set_ctx("modulate_encode zero modulation n=%lld d=%lld m=%lld buckets=%d bias=%d u=%s",
            (long long)n, (long long)d, (long long)m, n_buckets, with_bias,
            u_null ? "NULL" : "given");
    float *xc = rand_floats(n * d), *W = rand_floats(m * d), *b = rand_floats(m);
    float *zero = xmalloc((size_t)(n_buckets * d) * 4);
    memset(zero, 0, (size_t)(n_buckets * d) * 4);
    int32_t *bucket = new_ints(n);
    for (int64_t t = 0; t < n; t++)
        bucket[t] = (int32_t)rng_int(n_buckets);
    float *u = rand_floats(n * d), *pre = rand_floats(n * m), *plain = rand_floats(n * m);
    OK(SAEC_OP(dev, modulate_encode, xc, bucket, zero, zero, n_buckets, n, d, m, W,
               with_bias ? b : NULL, u_null ? NULL : u, pre));
    OK(SAEC_OP(dev, gemm, 0, 1, n, m, d, 1.0f, xc, d, W, d, 0.0f, plain, m, with_bias ? b : NULL));
    CHECK(memcmp(plain, pre, (size_t)(n * m) * 4) == 0,
          "zero scale and shift: pre differs from the plain encoder GEMM (exact)");
    free(xc), free(W), free(b), free(zero), free(bucket), free(u), free(pre), free(plain);
}

static void test_modulate_encode(saec_dev *dev) {
    for (int variant = 0; variant < 4; variant++)
        modulate_encode_case(dev, 37, 23, 41, 10, variant & 1, variant >> 1);
    modulate_encode_case(dev, 300, 64, 257, 4, 1, 0); /* the parallel modulation path */
}

int main(void) {
    rng_seed(0x5AEC6A0B1E5F0001ull);
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "test_grouping_ops: cannot open the CPU device: %s\n",
                saec_error_message());
        return 1;
    }
    test_pipeline(dev);
    test_grouped_gemm_wgrad(dev);
    test_grouped_col_sum(dev);
    test_modulate_encode(dev);
    saec_dev_close(dev);
    printf("%d checks, %d failures\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
