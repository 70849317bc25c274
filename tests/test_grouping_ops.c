/* The grouping ops of the CPU backend (group_count, exclusive_scan, group_permute, gather_rows,
 * scatter_rows, grouped_gemm, grouped_gemm_wgrad, grouped_col_sum, modulate_encode,
 * modulate_backward) against naive loops written here, on random inputs of awkward shapes:
 * empty groups, one group, every item in one group, uneven sizes,
 * keys < 0 ("no group"), r = 1 and r = 2 (top-2 routing with weights), n_items = 0, trans_b
 * both ways, bias NULL and not, beta 0 (C holding NaN: must not be read) and 1. Also: gather
 * then scatter with weight 1 and r = 1 returns the input; modulate_encode with zero scale and
 * shift is the plain encoder GEMM; and bad arguments are rejected.
 *
 * Integer outputs and the row ops (pure copies, or each product and sum rounded once in a fixed
 * order) must match exactly; GEMM outputs within 1e-5 of Σ|terms|.
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

/* ---- keys ---- */

enum { K_RANDOM, K_ONE_GROUP, K_SKEWED, K_SPARSE_GROUPS };
static const char *key_kind_name[] = {"random", "one-group", "skewed", "sparse-groups"};

/* keys [n_tokens * r]: kind K_RANDOM uniform; K_ONE_GROUP every item in group n_groups / 2;
   K_SKEWED about 80% in group 0, the rest uniform (uneven sizes); K_SPARSE_GROUPS only every
   third group used (many empty groups). none_pct % of items get a negative key (−1 or −7).
   With r >= 2 and distinct, a token's r keys differ (top-r routing), when n_groups allows. */
static int32_t *make_keys(int64_t n_tokens, int r, int n_groups, int kind, int none_pct,
                          int distinct) {
    int32_t *keys = new_ints(n_tokens * r);
    for (int64_t t = 0; t < n_tokens; t++)
        for (int j = 0; j < r; j++) {
            int32_t k;
            for (int tries = 0;; tries++) {
                switch (kind) {
                case K_ONE_GROUP: k = n_groups / 2; break;
                case K_SKEWED: k = rng_int(10) < 8 ? 0 : (int32_t)rng_int(n_groups); break;
                case K_SPARSE_GROUPS: k = (int32_t)(3 * rng_int((n_groups + 2) / 3)); break;
                default: k = (int32_t)rng_int(n_groups);
                }
                int dup = 0;
                for (int q = 0; q < j; q++)
                    dup |= keys[t * r + q] == k;
                if (!distinct || !dup || tries > 50) break;
            }
            if ((int)rng_int(100) < none_pct) k = rng_int(2) ? -1 : -7;
            keys[t * r + j] = k;
        }
    return keys;
}

/* ---- the grouping pipeline: count, scan, permute, gather, scatter ---- */

static void pipeline_case(saec_dev *dev, int64_t n_tokens, int r, int n_groups, int kind,
                          int none_pct, int distinct, int64_t d) {
    const int64_t n_items = n_tokens * r;
    set_ctx("grouping pipeline n_tokens=%lld r=%d n_groups=%d keys=%s none=%d%% d=%lld",
            (long long)n_tokens, r, n_groups, key_kind_name[kind], none_pct, (long long)d);
    int32_t *keys = make_keys(n_tokens, r, n_groups, kind, none_pct, distinct);

    /* naive reference */
    int32_t *r_counts = new_ints(n_groups), *r_offsets = new_ints(n_groups + 1);
    int32_t *r_perm = new_ints(n_items), *r_inv = new_ints(n_items);
    memset(r_counts, 0, (size_t)n_groups * 4);
    for (int64_t i = 0; i < n_items; i++)
        if (keys[i] >= 0) r_counts[keys[i]]++;
    r_offsets[0] = 0;
    for (int g = 0; g < n_groups; g++)
        r_offsets[g + 1] = r_offsets[g] + r_counts[g];
    int64_t p = 0;
    for (int g = 0; g < n_groups; g++)
        for (int64_t i = 0; i < n_items; i++)
            if (keys[i] == g) r_perm[p] = (int32_t)i, r_inv[i] = (int32_t)p, p++;
    for (int64_t i = 0; i < n_items; i++)
        if (keys[i] < 0) r_inv[i] = -1;
    const int64_t n_sorted = p;

    /* the ops (outputs pre-filled with garbage) */
    int32_t *counts = new_ints(n_groups), *offsets = new_ints(n_groups + 1);
    int32_t *perm = new_ints(n_items), *inv = new_ints(n_items);
    memset(counts, 0x5A, (size_t)n_groups * 4);
    memset(offsets, 0x5A, (size_t)(n_groups + 1) * 4);
    memset(perm, 0x5A, (size_t)n_items * 4);
    memset(inv, 0x5A, (size_t)n_items * 4);
    OK(SAEC_OP(dev, group_count, keys, n_items, n_groups, counts));
    CHECK(memcmp(counts, r_counts, (size_t)n_groups * 4) == 0, "counts differ (exact)");
    OK(SAEC_OP(dev, exclusive_scan, counts, n_groups, offsets));
    CHECK(memcmp(offsets, r_offsets, (size_t)(n_groups + 1) * 4) == 0, "offsets differ (exact)");
    OK(SAEC_OP(dev, group_permute, keys, n_items, n_groups, offsets, perm, inv));
    CHECK(memcmp(perm, r_perm, (size_t)n_sorted * 4) == 0, "perm differs (exact, stable)");
    CHECK(memcmp(inv, r_inv, (size_t)n_items * 4) == 0, "inv differs (exact)");

    /* gather_rows: dst[p] = src[perm[p] / r], a copy (exact) */
    float *src = rand_floats(n_tokens * d);
    float *dst = rand_floats(n_sorted * d + 1);
    const float sentinel = dst[n_sorted * d];
    OK(SAEC_OP(dev, gather_rows, src, perm, n_sorted, r, d, dst));
    int ok = dst[n_sorted * d] == sentinel; /* nothing past the last row written */
    for (int64_t q = 0; q < n_sorted && ok; q++)
        ok = memcmp(dst + q * d, src + (r_perm[q] / r) * d, (size_t)d * 4) == 0;
    CHECK(ok, "gather_rows differs from the naive copy (exact)");

    /* scatter_rows: weighted un-permutation, w NULL or top-r weights, accumulate 0/1. The
       reference uses the same float operations in the same order: exact. */
    float *sorted = rand_floats(n_sorted * d);
    float *w = xmalloc((size_t)n_items * 4);
    for (int64_t t = 0; t < n_tokens; t++) { /* softmax-like weights, summing to about 1 */
        float s = 0;
        for (int j = 0; j < r; j++)
            s += (w[t * r + j] = (float)(0.05 + rng_unit()));
        for (int j = 0; j < r; j++)
            w[t * r + j] /= s;
    }
    for (int variant = 0; variant < 4; variant++) {
        const int with_w = variant & 1, accumulate = variant >> 1;
        float *out = rand_floats(n_tokens * d), *want = xmalloc((size_t)(n_tokens * d) * 4);
        memcpy(want, out, (size_t)(n_tokens * d) * 4);
        for (int64_t t = 0; t < n_tokens; t++) {
            float *o = want + t * d;
            if (!accumulate)
                for (int64_t c = 0; c < d; c++)
                    o[c] = 0.0f;
            for (int j = 0; j < r; j++) {
                const int32_t q = r_inv[t * r + j];
                if (q < 0) continue;
                for (int64_t c = 0; c < d; c++) {
                    const float prod =
                        with_w ? w[t * r + j] * sorted[q * d + c] : sorted[q * d + c];
                    o[c] = o[c] + prod;
                }
            }
        }
        OK(SAEC_OP(dev, scatter_rows, sorted, inv, with_w ? w : NULL, n_tokens, r, d, accumulate,
                   out));
        CHECK(memcmp(out, want, (size_t)(n_tokens * d) * 4) == 0,
              "scatter_rows (w %s, accumulate %d) differs from the naive sum (exact)",
              with_w ? "given" : "NULL", accumulate);
        free(out), free(want);
    }

    /* round trip with r = 1 and weight 1: gather then scatter returns each grouped token's row;
       tokens without a group come back as zero rows */
    if (r == 1) {
        float *back = rand_floats(n_tokens * d);
        OK(SAEC_OP(dev, scatter_rows, dst, inv, NULL, n_tokens, 1, d, 0, back));
        ok = 1;
        for (int64_t t = 0; t < n_tokens && ok; t++)
            for (int64_t c = 0; c < d && ok; c++)
                ok = back[t * d + c] == (keys[t] >= 0 ? src[t * d + c] : 0.0f);
        CHECK(ok, "gather -> scatter (r = 1, w = 1) does not return the input");
        free(back);
    }

    free(keys), free(r_counts), free(r_offsets), free(r_perm), free(r_inv), free(counts),
        free(offsets), free(perm), free(inv), free(src), free(dst), free(sorted), free(w);
}

static void test_pipeline(saec_dev *dev) {
    pipeline_case(dev, 37, 1, 10, K_RANDOM, 0, 0, 13);       /* TIDE buckets */
    pipeline_case(dev, 37, 1, 10, K_RANDOM, 20, 0, 8);       /* keys < 0 */
    pipeline_case(dev, 101, 2, 5, K_RANDOM, 0, 1, 7);        /* top-2 of 5 experts */
    pipeline_case(dev, 101, 2, 4, K_SKEWED, 10, 1, 12);      /* uneven, top-2, dropped slots */
    pipeline_case(dev, 64, 2, 3, K_RANDOM, 0, 0, 16);        /* r = 2, repeated keys allowed */
    pipeline_case(dev, 50, 1, 1, K_RANDOM, 0, 0, 9);         /* one group */
    pipeline_case(dev, 50, 1, 7, K_ONE_GROUP, 0, 0, 5);      /* all tokens in one group */
    pipeline_case(dev, 77, 1, 31, K_SPARSE_GROUPS, 5, 0, 3); /* many empty groups */
    pipeline_case(dev, 9, 3, 100, K_RANDOM, 0, 1, 1);        /* more groups than items, d 1 */
    pipeline_case(dev, 0, 1, 6, K_RANDOM, 0, 0, 4);          /* n_items = 0 */
    pipeline_case(dev, 0, 2, 3, K_RANDOM, 0, 0, 4);
    pipeline_case(dev, 20, 1, 4, K_RANDOM, 100, 0, 6);     /* no item has a group */
    pipeline_case(dev, 5000, 2, 12, K_SKEWED, 3, 1, 67);   /* the parallel row paths */
    pipeline_case(dev, 3000, 1, 20000, K_RANDOM, 0, 0, 2); /* many groups */
}

/* ---- grouped_gemm ---- */

static void grouped_gemm_case(saec_dev *dev, int n_groups, const int32_t *counts_in, int64_t N,
                              int64_t K, int trans_b, float alpha, float beta, int with_bias) {
    int32_t *offsets = new_ints(n_groups + 1);
    offsets[0] = 0;
    for (int g = 0; g < n_groups; g++)
        offsets[g + 1] = offsets[g] + counts_in[g];
    const int64_t rows = offsets[n_groups], pad_rows = 2; /* rows past the last group: untouched */
    set_ctx("grouped_gemm groups=%d rows=%lld N=%lld K=%lld trans_b=%d alpha=%g beta=%g bias=%d",
            n_groups, (long long)rows, (long long)N, (long long)K, trans_b, alpha, beta, with_bias);
    float *A = rand_floats(rows * K), *B = rand_floats((int64_t)n_groups * K * N);
    float *bias = rand_floats((int64_t)n_groups * N);
    float *C = rand_floats((rows + pad_rows) * N);
    if (beta == 0.0f) /* beta == 0 must not read C */
        for (int64_t i = 0; i < rows * N; i++)
            C[i] = NAN;
    float *C0 = xmalloc((size_t)((rows + pad_rows) * N) * 4);
    memcpy(C0, C, (size_t)((rows + pad_rows) * N) * 4);
    double *want = xmalloc((size_t)(rows * N) * sizeof *want);
    double *scale = xmalloc((size_t)(rows * N) * sizeof *scale);
    for (int g = 0; g < n_groups; g++) {
        const float *Bg = B + (int64_t)g * K * N;
        for (int64_t i = offsets[g]; i < offsets[g + 1]; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0, a = 0;
                for (int64_t q = 0; q < K; q++) {
                    const double bv = trans_b ? Bg[j * K + q] : Bg[q * N + j];
                    s += (double)A[i * K + q] * bv;
                    a += fabs((double)A[i * K + q] * bv);
                }
                const double c = beta == 0.0f ? 0.0 : (double)beta * C0[i * N + j];
                const double b = with_bias ? bias[(int64_t)g * N + j] : 0.0;
                want[i * N + j] = alpha * s + c + b;
                scale[i * N + j] = fabs(alpha) * a + fabs(c) + fabs(b);
            }
    }
    OK(SAEC_OP(dev, grouped_gemm, trans_b, n_groups, offsets, N, K, alpha, A, B, beta, C,
               with_bias ? bias : NULL));
    CHECK_CLOSE("C", C, want, scale, rows * N, 1e-6, 1e-5);
    CHECK(memcmp(C + rows * N, C0 + rows * N, (size_t)(pad_rows * N) * 4) == 0,
          "rows past the last group were written");
    free(offsets), free(A), free(B), free(bias), free(C), free(C0), free(want), free(scale);
}

static void test_grouped_gemm(saec_dev *dev) {
    static const int32_t uneven[] = {17, 0, 1, 64, 0, 33, 5}; /* empty groups, uneven sizes */
    static const int32_t one[] = {45};                        /* one group */
    static const int32_t all_in_one[] = {0, 0, 70, 0};        /* every row in one group */
    static const int32_t empty[] = {0, 0, 0};                 /* no rows at all */
    static const int32_t moe[] = {130, 97, 161, 124, 0};      /* MoE-like, one idle expert */
    for (int tb = 0; tb < 2; tb++)
        for (int variant = 0; variant < 4; variant++) {
            const float beta = (variant & 1) ? 1.0f : 0.0f;
            const int with_bias = variant >> 1;
            grouped_gemm_case(dev, 7, uneven, 29, 13, tb, 0.7f, beta, with_bias);
            grouped_gemm_case(dev, 1, one, 1, 1, tb, 1.0f, beta, with_bias);
            grouped_gemm_case(dev, 4, all_in_one, 66, 37, tb, -1.5f, beta, with_bias);
            grouped_gemm_case(dev, 3, empty, 8, 8, tb, 1.0f, beta, with_bias);
            grouped_gemm_case(dev, 5, moe, 144, 72, tb, 1.0f, beta, with_bias);
        }
    grouped_gemm_case(dev, 7, uneven, 11, 0, 0, 1.0f, 1.0f, 1); /* K = 0: C = beta C + bias */
    grouped_gemm_case(dev, 7, uneven, 11, 5, 1, 0.0f, 0.5f, 1); /* alpha = 0 */
}

/* ---- grouped_gemm_wgrad: dB_g = alpha A[rows_g]ᵀ C[rows_g] + beta dB_g ---- */

static void wgrad_case(saec_dev *dev, int n_groups, const int32_t *counts_in, int64_t K, int64_t N,
                       float alpha, float beta) {
    int32_t *offsets = new_ints(n_groups + 1);
    offsets[0] = 0;
    for (int g = 0; g < n_groups; g++)
        offsets[g + 1] = offsets[g] + counts_in[g];
    const int64_t rows = offsets[n_groups], pad_rows = 3; /* NaN rows past the last group */
    const int64_t out = (int64_t)n_groups * K * N;
    set_ctx("grouped_gemm_wgrad groups=%d rows=%lld K=%lld N=%lld alpha=%g beta=%g", n_groups,
            (long long)rows, (long long)K, (long long)N, alpha, beta);
    float *A = rand_floats((rows + pad_rows) * K), *C = rand_floats((rows + pad_rows) * N);
    for (int64_t i = rows * K; i < (rows + pad_rows) * K; i++)
        A[i] = NAN; /* must not be read */
    for (int64_t i = rows * N; i < (rows + pad_rows) * N; i++)
        C[i] = NAN;
    float *dB = rand_floats(out + 1); /* one sentinel past the end */
    if (beta == 0.0f)                 /* beta == 0 must not read dB */
        for (int64_t i = 0; i < out; i++)
            dB[i] = NAN;
    float *dB0 = xmalloc((size_t)(out + 1) * 4);
    memcpy(dB0, dB, (size_t)(out + 1) * 4);
    double *want = xmalloc((size_t)out * sizeof *want), *scale = xmalloc((size_t)out * 8);
    for (int g = 0; g < n_groups; g++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0, a = 0;
                for (int64_t r = offsets[g]; r < offsets[g + 1]; r++) {
                    const double t = (double)A[r * K + k] * C[r * N + j];
                    s += t;
                    a += fabs(t);
                }
                const int64_t o = ((int64_t)g * K + k) * N + j;
                const double c = beta == 0.0f ? 0.0 : (double)beta * dB0[o];
                want[o] = alpha * s + c;
                scale[o] = fabs(alpha) * a + fabs(c);
            }
    OK(SAEC_OP(dev, grouped_gemm_wgrad, n_groups, offsets, K, N, alpha, A, C, beta, dB));
    CHECK_CLOSE("dB", dB, want, scale, out, 1e-6, 1e-5);
    CHECK(memcmp(dB + out, dB0 + out, 4) == 0, "dB written past its end");
    for (int g = 0; g < n_groups; g++) { /* an empty group: exactly beta dB_g (0 for beta 0) */
        if (counts_in[g] != 0) continue;
        int ok = 1;
        for (int64_t i = (int64_t)g * K * N; i < (int64_t)(g + 1) * K * N && ok; i++)
            ok = dB[i] == (beta == 0.0f ? 0.0f : beta * dB0[i]);
        CHECK(ok, "empty group %d: dB_g is not exactly beta * dB_g", g);
    }
    /* deterministic: the same call again gives the same bits */
    float *again = xmalloc((size_t)(out + 1) * 4);
    memcpy(again, dB0, (size_t)(out + 1) * 4);
    OK(SAEC_OP(dev, grouped_gemm_wgrad, n_groups, offsets, K, N, alpha, A, C, beta, again));
    CHECK(memcmp(again, dB, (size_t)out * 4) == 0, "a second call differs (not deterministic)");
    free(offsets), free(A), free(C), free(dB), free(dB0), free(want), free(scale), free(again);
}

static void test_grouped_gemm_wgrad(saec_dev *dev) {
    static const int32_t uneven[] = {17, 0, 1, 64, 0, 33, 5}; /* empty groups, uneven sizes */
    static const int32_t one[] = {45};                        /* one group */
    static const int32_t all_in_one[] = {0, 0, 70, 0};        /* every row in one group */
    static const int32_t empty[] = {0, 0, 0};                 /* no rows at all */
    static const int32_t moe[] = {130, 97, 161, 124, 0};      /* MoE-like, one idle expert */
    static const int32_t single_row[] = {1, 0, 1};            /* one row: an outer product */
    for (int b = 0; b < 2; b++) {
        const float beta = b ? 1.0f : 0.0f;
        wgrad_case(dev, 7, uneven, 13, 29, 0.7f, beta);
        wgrad_case(dev, 1, one, 1, 1, 1.0f, beta);
        wgrad_case(dev, 4, all_in_one, 37, 66, -1.5f, beta);
        wgrad_case(dev, 3, empty, 8, 8, 1.0f, beta);
        wgrad_case(dev, 5, moe, 72, 144, 1.0f, beta);
        wgrad_case(dev, 3, single_row, 5, 3, 2.0f, beta);
    }
    wgrad_case(dev, 7, uneven, 11, 5, 0.0f, 0.5f); /* alpha = 0: dB = beta dB */
    wgrad_case(dev, 7, uneven, 1, 300, 1.0f, 0.5f);
    /* K = 0 or N = 0: nothing to write, nothing read */
    const int32_t offs[3] = {0, 4, 9};
    OK(SAEC_OP(dev, grouped_gemm_wgrad, 2, offs, 0, 5, 1.0f, NULL, NULL, 0.0f, NULL));
    OK(SAEC_OP(dev, grouped_gemm_wgrad, 2, offs, 5, 0, 1.0f, NULL, NULL, 0.0f, NULL));
}

/* ---- grouped_col_sum: out[g, :] = alpha Σ_{rows of g} C[row, :] + beta out[g, :] ---- */

static void gcs_case(saec_dev *dev, int n_groups, const int32_t *counts_in, int64_t N, float alpha,
                     float beta) {
    int32_t *offsets = new_ints(n_groups + 1);
    offsets[0] = 0;
    for (int g = 0; g < n_groups; g++)
        offsets[g + 1] = offsets[g] + counts_in[g];
    const int64_t rows = offsets[n_groups], pad_rows = 2, out_n = (int64_t)n_groups * N;
    set_ctx("grouped_col_sum groups=%d rows=%lld N=%lld alpha=%g beta=%g", n_groups,
            (long long)rows, (long long)N, alpha, beta);
    float *C = rand_floats((rows + pad_rows) * N);
    for (int64_t i = rows * N; i < (rows + pad_rows) * N; i++)
        C[i] = NAN; /* past the last group: must not be read */
    float *out = rand_floats(out_n + 1);
    if (beta == 0.0f)
        for (int64_t i = 0; i < out_n; i++)
            out[i] = NAN;
    float *out0 = xmalloc((size_t)(out_n + 1) * 4);
    memcpy(out0, out, (size_t)(out_n + 1) * 4);
    double *want = xmalloc((size_t)(out_n + 1) * 8), *scale = xmalloc((size_t)(out_n + 1) * 8);
    for (int g = 0; g < n_groups; g++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, a = 0;
            for (int64_t r = offsets[g]; r < offsets[g + 1]; r++)
                s += C[r * N + j], a += fabs(C[r * N + j]);
            const double c = beta == 0.0f ? 0.0 : (double)beta * out0[g * N + j];
            want[g * N + j] = alpha * s + c;
            scale[g * N + j] = fabs(alpha) * a + fabs(c);
        }
    OK(SAEC_OP(dev, grouped_col_sum, n_groups, offsets, N, C, alpha, beta, out));
    /* double sums rounded once: within an ulp or so of the exact sum */
    CHECK_CLOSE("out", out, want, scale, out_n, 1e-7, 1e-6);
    CHECK(memcmp(out + out_n, out0 + out_n, 4) == 0, "out written past its end");

    /* the same arithmetic as col_sum on each group's rows: bitwise equal */
    float *ref = xmalloc((size_t)(out_n + 1) * 4);
    memcpy(ref, out0, (size_t)(out_n + 1) * 4);
    for (int g = 0; g < n_groups; g++)
        OK(SAEC_OP(dev, col_sum, C + (int64_t)offsets[g] * N, offsets[g + 1] - offsets[g], N, alpha,
                   beta, ref + (int64_t)g * N));
    CHECK(memcmp(ref, out, (size_t)out_n * 4) == 0, "differs from col_sum per group (bitwise)");

    /* one thread and all threads: bitwise equal */
    memcpy(ref, out0, (size_t)(out_n + 1) * 4);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    OK(SAEC_OP(dev, grouped_col_sum, n_groups, offsets, N, C, alpha, beta, ref));
    omp_set_num_threads(threads);
    CHECK(memcmp(ref, out, (size_t)out_n * 4) == 0, "1-thread and %d-thread results differ",
          threads);
    free(offsets), free(C), free(out), free(out0), free(want), free(scale), free(ref);
}

static void test_grouped_col_sum(saec_dev *dev) {
    static const int32_t uneven[] = {17, 0, 1, 64, 0, 33, 5};
    static const int32_t one[] = {45};
    static const int32_t all_in_one[] = {0, 0, 70, 0};
    static const int32_t empty[] = {0, 0, 0};
    static const int32_t moe[] = {530, 497, 661, 360, 0}; /* the parallel path */
    for (int b = 0; b < 2; b++) {
        const float beta = b ? 1.0f : 0.0f;
        gcs_case(dev, 7, uneven, 29, 0.7f, beta);
        gcs_case(dev, 1, one, 1, 1.0f, beta);
        gcs_case(dev, 4, all_in_one, 130, -1.5f, beta);
        gcs_case(dev, 3, empty, 8, 1.0f, beta);
        gcs_case(dev, 5, moe, 144, 1.0f, beta);
    }
    gcs_case(dev, 7, uneven, 65, 0.0f, 0.5f); /* alpha = 0 */
    const int32_t offs[3] = {0, 4, 9};
    OK(SAEC_OP(dev, grouped_col_sum, 2, offs, 0, NULL, 1.0f, 0.0f, NULL)); /* N = 0 */
}

/* ---- modulate_encode ---- */

static void modulate_encode_case(saec_dev *dev, int64_t n, int64_t d, int64_t m, int n_buckets,
                                 int zero_mod, int with_bias, int u_null) {
    set_ctx("modulate_encode n=%lld d=%lld m=%lld buckets=%d zero_mod=%d bias=%d u=%s",
            (long long)n, (long long)d, (long long)m, n_buckets, zero_mod, with_bias,
            u_null ? "NULL" : "given");
    float *xc = rand_floats(n * d), *W = rand_floats(m * d), *b = rand_floats(m);
    float *scale = rand_floats((int64_t)n_buckets * d),
          *shift = rand_floats((int64_t)n_buckets * d);
    if (zero_mod) {
        memset(scale, 0, (size_t)(n_buckets * d) * 4);
        memset(shift, 0, (size_t)(n_buckets * d) * 4);
    }
    int32_t *bucket = new_ints(n);
    for (int64_t t = 0; t < n; t++) /* bucket 0 never used when there are several: a gap */
        bucket[t] = n_buckets == 1 ? 0 : (int32_t)(1 + rng_int(n_buckets - 1));
    float *u = rand_floats(n * d), *pre = rand_floats(n * m);
    OK(SAEC_OP(dev, modulate_encode, xc, bucket, scale, shift, n_buckets, n, d, m, W,
               with_bias ? b : NULL, u_null ? NULL : u, pre));

    float *r_u = xmalloc((size_t)(n * d) * 4);
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < d; c++) {
            const float a = 1.0f + scale[(int64_t)bucket[t] * d + c];
            r_u[t * d + c] = xc[t * d + c] * a + shift[(int64_t)bucket[t] * d + c];
        }
    if (!u_null)
        CHECK(memcmp(u, r_u, (size_t)(n * d) * 4) == 0, "u differs from the naive modulation "
                                                        "(exact)");
    double *want = xmalloc((size_t)(n * m) * sizeof *want), *sc = xmalloc((size_t)(n * m) * 8);
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < m; j++) {
            double s = 0, a = 0;
            for (int64_t c = 0; c < d; c++) {
                s += (double)r_u[t * d + c] * W[j * d + c];
                a += fabs((double)r_u[t * d + c] * W[j * d + c]);
            }
            const double bb = with_bias ? b[j] : 0.0;
            want[t * m + j] = s + bb;
            sc[t * m + j] = a + fabs(bb);
        }
    CHECK_CLOSE("pre", pre, want, sc, n * m, 1e-6, 1e-5);

    if (zero_mod) { /* the plain encoder GEMM on xc: the same BLAS call on equal values */
        float *plain = rand_floats(n * m);
        OK(SAEC_OP(dev, gemm, 0, 1, n, m, d, 1.0f, xc, d, W, d, 0.0f, plain, m,
                   with_bias ? b : NULL));
        CHECK(memcmp(plain, pre, (size_t)(n * m) * 4) == 0,
              "zero scale and shift: pre differs from the plain encoder GEMM (exact)");
        free(plain);
    }
    free(xc), free(W), free(b), free(scale), free(shift), free(bucket), free(u), free(pre),
        free(r_u), free(want), free(sc);
}

static void test_modulate_encode(saec_dev *dev) {
    for (int variant = 0; variant < 4; variant++) {
        const int with_bias = variant & 1, u_null = variant >> 1;
        modulate_encode_case(dev, 37, 23, 41, 10, 0, with_bias, u_null);
        modulate_encode_case(dev, 37, 23, 41, 10, 1, with_bias, u_null);
    }
    modulate_encode_case(dev, 1, 1, 1, 1, 0, 1, 0);
    modulate_encode_case(dev, 300, 64, 257, 4, 0, 1, 0); /* the parallel modulation path */
    modulate_encode_case(dev, 300, 64, 257, 4, 1, 1, 0);
    modulate_encode_case(dev, 0, 8, 8, 3, 0, 1, 0); /* n = 0 */
}

/* ---- modulate_backward ---- */

static void modulate_backward_case(saec_dev *dev, int64_t n, int64_t d, int n_buckets, int alias) {
    set_ctx("modulate_backward n=%lld d=%lld buckets=%d alias=%d", (long long)n, (long long)d,
            n_buckets, alias);
    float *dU = rand_floats(n * d), *xc = rand_floats(n * d);
    float *scale = rand_floats((int64_t)n_buckets * d);
    float *dscale = rand_floats((int64_t)n_buckets * d),
          *dshift = rand_floats((int64_t)n_buckets * d);
    int32_t *bucket = new_ints(n);
    for (int64_t t = 0; t < n; t++) /* bucket 0 unused when there are several: an empty group */
        bucket[t] = n_buckets == 1 ? 0 : (int32_t)(1 + rng_int(n_buckets - 1));
    const int64_t bd = (int64_t)n_buckets * d;
    double *w_dxc = xmalloc((size_t)(n * d + 1) * 8), *w_ds = xmalloc((size_t)bd * 8),
           *w_dh = xmalloc((size_t)bd * 8), *sc_ds = xmalloc((size_t)bd * 8),
           *sc_dh = xmalloc((size_t)bd * 8), *ones = xmalloc((size_t)(n * d + 1) * 8);
    for (int64_t i = 0; i < bd; i++)
        w_ds[i] = dscale[i], w_dh[i] = dshift[i], sc_ds[i] = fabs(dscale[i]),
        sc_dh[i] = fabs(dshift[i]);
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < d; c++) {
            const int64_t k = (int64_t)bucket[t] * d + c;
            const double g = dU[t * d + c];
            w_dxc[t * d + c] = (double)(float)(dU[t * d + c] * (1.0f + scale[k]));
            ones[t * d + c] = 0;
            w_ds[k] += g * xc[t * d + c], sc_ds[k] += fabs(g * xc[t * d + c]);
            w_dh[k] += g, sc_dh[k] += fabs(g);
        }
    float *dxc = alias ? dU : rand_floats(n * d);
    OK(SAEC_OP(dev, modulate_backward, dU, xc, bucket, scale, n_buckets, n, d, dxc, dscale,
               dshift));
    CHECK_CLOSE("dxc (one multiply and one add, each rounded)", dxc, w_dxc, ones, n * d, 0, 0);
    CHECK_CLOSE("dscale", dscale, w_ds, sc_ds, bd, 1e-7, 1e-6);
    CHECK_CLOSE("dshift", dshift, w_dh, sc_dh, bd, 1e-7, 1e-6);
    if (!alias) free(dxc);
    free(dU), free(xc), free(scale), free(dscale), free(dshift), free(bucket), free(w_dxc),
        free(w_ds), free(w_dh), free(sc_ds), free(sc_dh), free(ones);
}

static void test_modulate_backward(saec_dev *dev) {
    modulate_backward_case(dev, 37, 23, 10, 0);
    modulate_backward_case(dev, 37, 23, 10, 1); /* dxc aliases dU */
    modulate_backward_case(dev, 1, 1, 1, 0);
    modulate_backward_case(dev, 300, 130, 4, 0); /* the parallel path */
    modulate_backward_case(dev, 500, 7, 1, 1);   /* every token in one bucket */
    modulate_backward_case(dev, 0, 8, 3, 0);     /* n = 0 */
}

/* ---- bad arguments ---- */

static void test_bad_arguments(saec_dev *dev) {
    set_ctx("grouping bad arguments");
    int32_t keys[4] = {0, 3, 1, -1}, counts[3], offsets[4] = {0, 1, 2, 2}, perm[4], inv[4];
    REJECTED(SAEC_OP(dev, group_count, keys, 4, 3, counts)); /* key 3 >= n_groups */
    REJECTED(SAEC_OP(dev, group_count, keys, -1, 3, counts));
    keys[1] = 0; /* counts {2, 1, 0}, but offsets claim {1, 1, 0} */
    REJECTED(SAEC_OP(dev, group_permute, keys, 4, 3, offsets, perm, inv));
    offsets[1] = 2, offsets[2] = 3, offsets[3] = 4; /* claims 4 grouped items, there are 3 */
    REJECTED(SAEC_OP(dev, group_permute, keys, 4, 3, offsets, perm, inv));
    const int32_t bad_offsets[3] = {0, 5, 2}; /* decreasing */
    float a[16] = {0}, c[16] = {0};
    REJECTED(SAEC_OP(dev, grouped_gemm, 0, 2, bad_offsets, 1, 1, 1.0f, a, a, 0.0f, c, NULL));
    REJECTED(SAEC_OP(dev, grouped_gemm_wgrad, 2, bad_offsets, 1, 1, 1.0f, a, a, 0.0f, c));
    REJECTED(SAEC_OP(dev, grouped_gemm_wgrad, -1, bad_offsets, 1, 1, 1.0f, a, a, 0.0f, c));
    REJECTED(SAEC_OP(dev, grouped_col_sum, 2, bad_offsets, 1, a, 1.0f, 0.0f, c));
    REJECTED(SAEC_OP(dev, grouped_col_sum, 1, bad_offsets, -1, a, 1.0f, 0.0f, c));
    const int32_t bucket[2] = {0, 2};
    REJECTED(SAEC_OP(dev, modulate_encode, a, bucket, a, a, 2, 2, 2, 2, a, NULL, c, c + 8));
    REJECTED(SAEC_OP(dev, scatter_rows, a, inv, NULL, 2, 0, 2, 0, c)); /* r = 0 */
    REJECTED(SAEC_OP(dev, gather_rows, a, perm, 2, 0, 2, c));
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
    test_grouped_gemm(dev);
    test_grouped_gemm_wgrad(dev);
    test_grouped_col_sum(dev);
    test_modulate_encode(dev);
    test_modulate_backward(dev);
    test_bad_arguments(dev);
    saec_dev_close(dev);
    printf("%d checks, %d failures\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
