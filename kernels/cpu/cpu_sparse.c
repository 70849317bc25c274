/* CPU sparse-code ops: decode, code gradient, and the sparse weight gradient.
 *
 * A sparse code is (idx [n, k] int32, val [n, k] float); idx < 0 marks an empty slot, which
 * every op skips. idx >= m is a caller bug and is rejected before any output is written.
 */
#include <string.h>

#include "cpu_internal.h"

/* Reject any idx [count] >= m (a bug upstream would otherwise write out of bounds). */
static int check_idx(const char *op, const int32_t *idx, int64_t count, int64_t m) {
    int64_t bad = -1;
    for (int64_t p = 0; p < count && bad < 0; p++)
        if (idx[p] >= m) bad = p;
    if (bad >= 0)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "cpu op %s: index %d at slot %lld is out of range (m = %lld)", op,
                         (int)idx[bad], (long long)bad, (long long)m);
    return SAEC_OK;
}

/* out[n, d] = [accumulate ? out : 0] + Σ_j val[n, j] W[idx[n, j], :] + bias[d].
   W [m, d]. Floor: reads n*k*(8 + d*4) + d*4 bytes, writes n*d*4; 2*n*k*d FLOPs. */
int saec_cpu_sparse_decode(saec_dev *dev, const int32_t *idx, const float *val, const float *W,
                           const float *bias, int64_t n, int k, int64_t m, int64_t d,
                           int accumulate, float *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("sparse_decode", n >= 0 && k >= 1 && m >= 1 && d >= 0);
    if (n == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("sparse_decode", idx && val && W && out);
    SAEC_TRY(check_idx("sparse_decode", idx, n * k, m));

#pragma omp parallel for schedule(static) if (n * k * d >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        float *o = out + r * d; /* row r of out [n, d] */
        if (!accumulate) memset(o, 0, (size_t)d * sizeof *o);
        if (bias)
            for (int64_t c = 0; c < d; c++)
                o[c] += bias[c];
        for (int j = 0; j < k; j++) {
            const int32_t t = idx[r * k + j];
            if (t < 0) continue; /* empty slot */
            const float a = val[r * k + j];
            const float *w = W + (int64_t)t * d; /* row t of W [m, d] */
            for (int64_t c = 0; c < d; c++)
                o[c] += a * w[c];
        }
    }
    return SAEC_OK;
}

/* out[n, k] = ⟨g[n, :], W[idx[n, j], :]⟩, 0 for empty slots. g [n, d], W [m, d].
   Floor: reads n*d*4 + n*k*(4 + d*4) bytes, writes n*k*4; 2*n*k*d FLOPs. */
int saec_cpu_sparse_row_dots(saec_dev *dev, const float *g, const int32_t *idx, const float *W,
                             int64_t n, int k, int64_t m, int64_t d, float *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("sparse_row_dots", n >= 0 && k >= 1 && m >= 1 && d >= 0);
    if (n == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("sparse_row_dots", g && idx && W && out);
    SAEC_TRY(check_idx("sparse_row_dots", idx, n * k, m));

#pragma omp parallel for schedule(static) if (n * k * d >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *gr = g + r * d; /* row r of g [n, d] */
        for (int j = 0; j < k; j++) {
            const int32_t t = idx[r * k + j];
            if (t < 0) {
                out[r * k + j] = 0.0f;
                continue;
            }
            const float *w = W + (int64_t)t * d; /* row t of W [m, d] */
            /* Vector partial sums in a fixed order: deterministic, and faster than double. */
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int64_t c = 0; c < d; c++)
                s += gr[c] * w[c];
            out[r * k + j] = s;
        }
    }
    return SAEC_OK;
}

/* Below this many multiply-adds (n*k*d) sparse_outer_accum runs serially without sorting.
   Above it the sorted path wins even on one thread: it updates each row of dW once, in cache,
   where the pair-order loop jumps between rows of dW (measured 3-6x at SAE sizes). */
#define OUTER_SERIAL_MAX ((int64_t)1 << 16)

/* dW[idx[n, j], :] += coef[n, j] X[n, :];  db[idx[n, j]] += coef[n, j].  X [n, d], dW [m, d],
   db [m] or NULL.  Floor: reads n*k*8 + n*d*4, read-modify-writes the touched rows of dW;
   2*n*k*d FLOPs.

   Deterministic without atomics: the (token, slot) pairs are counting-sorted by latent
   (histogram, exclusive scan, stable scatter), then each latent's row of dW is owned by one
   thread, which adds its pairs in token order. Every element of dW and db therefore receives
   its contributions in increasing pair order (token, then slot) — the same order as the plain
   serial loop used for small inputs — so the result is bitwise identical on every run, for any
   thread count and either path. */
int saec_cpu_sparse_outer_accum(saec_dev *dev, const int32_t *idx, const float *coef,
                                const float *X, int64_t n, int k, int64_t m, int64_t d, float *dW,
                                float *db) {
    SAEC_CPU_REQUIRE("sparse_outer_accum", n >= 0 && k >= 1 && m >= 1 && d >= 0);
    SAEC_CPU_REQUIRE("sparse_outer_accum", n * k <= INT32_MAX && m < INT32_MAX);
    if (n == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("sparse_outer_accum", idx && coef && X && dW);
    SAEC_TRY(check_idx("sparse_outer_accum", idx, n * k, m));
    const int64_t n_pairs = n * k;

    if (n_pairs * d <= OUTER_SERIAL_MAX) {
        for (int64_t p = 0; p < n_pairs; p++) { /* pair p = (token p / k, slot p % k) */
            const int32_t t = idx[p];
            if (t < 0) continue;
            const float a = coef[p];
            const float *x = X + (p / k) * d; /* row of X [n, d] */
            float *w = dW + (int64_t)t * d;   /* row t of dW [m, d] */
            for (int64_t c = 0; c < d; c++)
                w[c] += a * x[c];
            if (db) db[t] += a;
        }
        return SAEC_OK;
    }

    /* Scratch: start [m + 1] (bucket offsets), cursor [m], order [n_pairs] (pair ids by latent). */
    int32_t *start;
    SAEC_TRY(
        saec_cpu_scratch(dev, (size_t)(2 * m + 1 + n_pairs) * sizeof(int32_t), (void **)&start));
    int32_t *cursor = start + m + 1;
    int32_t *order = cursor + m;

    /* Histogram of latents, then exclusive scan: bucket l is order[start[l] .. start[l+1]). */
    memset(start, 0, (size_t)(m + 1) * sizeof *start);
    for (int64_t p = 0; p < n_pairs; p++)
        if (idx[p] >= 0) start[idx[p] + 1]++;
    for (int64_t l = 0; l < m; l++)
        start[l + 1] += start[l];
    memcpy(cursor, start, (size_t)m * sizeof *cursor);
    /* Stable scatter: within a bucket the pairs keep increasing pair order. */
    for (int64_t p = 0; p < n_pairs; p++)
        if (idx[p] >= 0) order[cursor[idx[p]]++] = (int32_t)p;

            /* Each latent is owned by one thread, so a dynamic schedule (for skewed firing
               frequencies) changes only who computes a row, never the order of its additions. */
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t l = 0; l < m; l++) {
        const int32_t b0 = start[l], b1 = start[l + 1];
        if (b0 == b1) continue; /* latent l not used in this batch */
        float *w = dW + l * d;  /* row l of dW [m, d] */
        float bsum = db ? db[l] : 0.0f;
        for (int32_t q = b0; q < b1; q++) {
            const int64_t p = order[q];
            const float a = coef[p];
            const float *x = X + (p / k) * d; /* row of X [n, d] */
            for (int64_t c = 0; c < d; c++)
                w[c] += a * x[c];
            bsum += a;
        }
        if (db) db[l] = bsum;
    }
    return SAEC_OK;
}
