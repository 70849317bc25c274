/* Every CPU op against a naive, obviously-correct loop written here (double accumulation),
 * on random inputs of awkward sizes: odd n, m, d that are not multiples of 32; k = 1 and
 * k = m; masks with fewer eligible columns than k; ties; empty (idx = -1) slots. Each check
 * states its tolerance. The dense family (gemm, scale_add_rows, axpby, col_sum, relu,
 * relu_backward) and the reduction family (recon_loss_grad, recon_grad, sum_squares,
 * count_positive, geometric_median, project_rows_grad, normalize_rows, adamw) are op cases
 * (op_cases_dense.c, op_cases_reduce.c), checked by test_op_cases; of the latter only a two-op
 * identity stays here (recon_grad from recon_loss_grad's statistics writes its gradient).
 *
 * Prints one line per failing op and size and exits nonzero on any failure.
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

/* ---- random inputs: tests/test_random.h ---- */
static void fill_floats(float *p, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++)
        p[i] = v;
}

/* Random sparse code idx [n, k] over latents [0, m_used), about `empty_pct`% empty slots
   (idx -1 with a garbage value that the op must skip); val [n, k] in [-1, 1). */
static void rand_code(int64_t n, int k, int64_t m_used, int empty_pct, int32_t *idx, float *val) {
    for (int64_t p = 0; p < n * k; p++) {
        if ((int)rng_int(100) < empty_pct) {
            idx[p] = -1;
            val[p] = 1.0e6f; /* garbage: an op that reads an empty slot is visibly wrong */
        } else {
            idx[p] = (int32_t)rng_int(m_used);
            val[p] = rng_sym();
        }
    }
}

/* ---- memory ---- */

static void test_memory(saec_dev *dev) {
    set_ctx("memory");
    const saec_op_table *ops = dev->ops;
    const size_t bytes = 1003 * sizeof(float);
    void *a = NULL, *b = NULL, *z = NULL;
    OK(ops->alloc(dev, bytes, &a));
    OK(ops->alloc(dev, bytes, &b));
    OK(ops->alloc(dev, 0, &z));
    if (!a || !b) return;
    CHECK(((uintptr_t)a % 64) == 0 && ((uintptr_t)b % 64) == 0, "alloc is not 64-byte aligned");
    int zeroed = 1;
    for (size_t i = 0; i < bytes; i++)
        zeroed &= ((unsigned char *)a)[i] == 0;
    CHECK(zeroed, "alloc did not zero-initialise");

    float *h = rand_floats(1003), *back = new_floats(1003);
    OK(ops->upload(dev, a, h, bytes));
    OK(ops->copy(dev, b, a, bytes));
    OK(ops->download(dev, back, b, bytes));
    OK(ops->sync(dev));
    CHECK(memcmp(h, back, bytes) == 0, "upload/copy/download round trip changed the data");
    OK(ops->zero(dev, b, bytes));
    OK(ops->download(dev, back, b, bytes));
    int all_zero = 1;
    for (int i = 0; i < 1003; i++)
        all_zero &= back[i] == 0.0f;
    CHECK(all_zero, "zero left nonzero bytes");
    ops->free(dev, a);
    ops->free(dev, b);
    ops->free(dev, z);
    free(h);
    free(back);
}

/* ---- dense: the op cases (op_cases_dense.c, run by test_op_cases) ---- */

/* ---- selection ---- */

/* Naive top-k of one row: k passes, each taking the best remaining eligible column (strictly
   greater wins, so ties go to the lower index). */
static void topk_ref(const float *x, int64_t m, int k, const uint8_t *mask, int32_t *idx,
                     float *val) {
    uint8_t *taken = calloc((size_t)m, 1);
    for (int s = 0; s < k; s++) {
        int64_t best = -1;
        for (int64_t j = 0; j < m; j++) {
            if ((mask && !mask[j]) || taken[j] || x[j] != x[j]) continue; /* NaN: never */
            if (best < 0 || x[j] > x[best]) best = j;
        }
        if (best < 0) {
            idx[s] = -1;
            val[s] = 0.0f;
        } else {
            taken[best] = 1;
            idx[s] = (int32_t)best;
            val[s] = x[best];
        }
    }
    free(taken);
}

enum { VALS_RANDOM, VALS_TIES, VALS_EQUAL, VALS_ASCENDING, VALS_NAN };
enum { MASK_NONE, MASK_FEW, MASK_EXACT_K, MASK_EMPTY, MASK_HALF };

static void run_topk_case(saec_dev *dev, int64_t n, int64_t m, int k, int vals, int mask_kind) {
    set_ctx("topk_rows n=%lld m=%lld k=%d vals=%d mask=%d", (long long)n, (long long)m, k, vals,
            mask_kind);
    float *x = new_floats(n * m);
    for (int64_t i = 0; i < n * m; i++) {
        switch (vals) {
        case VALS_TIES: x[i] = (float)rng_int(5) * 0.25f - 0.5f; break; /* 5 levels: many ties */
        case VALS_EQUAL: x[i] = 0.125f; break;
        case VALS_ASCENDING:
            x[i] = (float)(i % m) - 0.5f * (float)m;
            break; /* each column enters */
        case VALS_NAN:
            x[i] = rng_int(4) == 0 ? NAN : rng_int(9) == 0 ? -INFINITY : rng_sym();
            break;
        default: x[i] = rng_sym(); break;
        }
    }
    uint8_t *mask = NULL;
    if (mask_kind != MASK_NONE) {
        mask = calloc((size_t)m, 1);
        int64_t want_eligible = mask_kind == MASK_FEW       ? (k > 1 ? k / 2 : 0)
                                : mask_kind == MASK_EXACT_K ? k
                                : mask_kind == MASK_EMPTY   ? 0
                                                            : m / 2;
        for (int64_t e = 0; e < want_eligible;) { /* distinct random eligible columns */
            int64_t j = rng_int(m);
            if (!mask[j]) mask[j] = (uint8_t)(1 + rng_int(255)), e++; /* any nonzero is eligible */
        }
    }
    int32_t *idx = malloc((size_t)(n * k) * sizeof *idx),
            *idx_ref = malloc((size_t)(n * k) * sizeof *idx);
    float *val = new_floats(n * k), *val_ref = new_floats(n * k);
    for (int64_t r = 0; r < n; r++)
        topk_ref(x + r * m, m, k, mask, idx_ref + r * k, val_ref + r * k);
    OK(SAEC_OP(dev, topk_rows, x, n, m, k, mask, idx, val));
    int64_t bad = -1;
    for (int64_t p = 0; p < n * k && bad < 0; p++)
        if (idx[p] != idx_ref[p] || memcmp(&val[p], &val_ref[p], sizeof(float)) != 0) bad = p;
    CHECK(bad < 0, "row %lld slot %lld: got (%d, %g), want (%d, %g) (exact)", (long long)(bad / k),
          (long long)(bad % k), bad >= 0 ? idx[bad] : 0, bad >= 0 ? val[bad] : 0.0,
          bad >= 0 ? idx_ref[bad] : 0, bad >= 0 ? val_ref[bad] : 0.0);
    free(x), free(mask), free(idx), free(idx_ref), free(val), free(val_ref);
}

static void test_topk(saec_dev *dev) {
    run_topk_case(dev, 5, 1, 1, VALS_RANDOM, MASK_NONE);      /* m = k = 1 */
    run_topk_case(dev, 7, 37, 1, VALS_RANDOM, MASK_NONE);     /* k = 1 */
    run_topk_case(dev, 7, 37, 37, VALS_RANDOM, MASK_NONE);    /* k = m */
    run_topk_case(dev, 3, 1000, 1000, VALS_TIES, MASK_NONE);  /* k = m with ties */
    run_topk_case(dev, 9, 100, 13, VALS_TIES, MASK_NONE);     /* ties to the lower index */
    run_topk_case(dev, 4, 77, 9, VALS_EQUAL, MASK_NONE);      /* all equal: 0 .. k-1 */
    run_topk_case(dev, 4, 77, 9, VALS_ASCENDING, MASK_NONE);  /* every column enters the heap */
    run_topk_case(dev, 9, 100, 13, VALS_RANDOM, MASK_FEW);    /* fewer eligible than k: -1 */
    run_topk_case(dev, 9, 100, 13, VALS_TIES, MASK_EXACT_K);  /* exactly k eligible */
    run_topk_case(dev, 3, 50, 4, VALS_RANDOM, MASK_EMPTY);    /* nothing eligible */
    run_topk_case(dev, 6, 101, 1, VALS_TIES, MASK_HALF);      /* k = 1 with a mask */
    run_topk_case(dev, 300, 513, 17, VALS_RANDOM, MASK_NONE); /* the parallel path */
    run_topk_case(dev, 300, 513, 17, VALS_TIES, MASK_HALF);   /* parallel, mask, ties */
    run_topk_case(dev, 5, 200, 150, VALS_NAN, MASK_NONE);     /* NaN never selected; -inf is */
    run_topk_case(dev, 5, 203, 7, VALS_NAN, MASK_HALF);
    run_topk_case(dev, 5, 1001, 5, VALS_NAN, MASK_NONE);      /* NaN inside skipped blocks */
    run_topk_case(dev, 4, 16391, 64, VALS_RANDOM, MASK_NONE); /* SAE-like width */
    run_topk_case(dev, 2, 16391, 64, VALS_TIES, MASK_HALF);

    set_ctx("topk_rows bad arguments");
    float x[4] = {0};
    int32_t idx[8];
    float val[8];
    REJECTED(SAEC_OP(dev, topk_rows, x, 1, 4, 0, NULL, idx, val));  /* k < 1 */
    REJECTED(SAEC_OP(dev, topk_rows, x, 1, 4, 5, NULL, idx, val));  /* k > m */
    REJECTED(SAEC_OP(dev, topk_rows, x, -1, 4, 2, NULL, idx, val)); /* n < 0 */
}

/* ---- sparse codes ---- */

static void test_sparse_decode(saec_dev *dev) {
    static const int64_t shapes[][4] = {/* n, k, m, d */
                                        {13, 1, 29, 37},
                                        {13, 5, 29, 37},
                                        {1, 3, 3, 1},
                                        {200, 7, 301, 67},
                                        {5, 9, 9, 40}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int acc = 0; acc < 2; acc++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const int64_t n = shapes[s][0], m = shapes[s][2], d = shapes[s][3];
                const int k = (int)shapes[s][1];
                set_ctx("sparse_decode n=%lld k=%d m=%lld d=%lld accumulate=%d bias=%s",
                        (long long)n, k, (long long)m, (long long)d, acc,
                        with_bias ? "yes" : "NULL");
                int32_t *idx = malloc((size_t)(n * k) * sizeof *idx);
                float *val = new_floats(n * k);
                rand_code(n, k, m, 20, idx, val); /* duplicates within a row are allowed */
                float *W = rand_floats(m * d), *bias = with_bias ? rand_floats(d) : NULL;
                float *out = rand_floats(n * d);
                if (!acc) fill_floats(out, n * d, NAN); /* accumulate = 0 must not read out */
                double *want = new_doubles(n * d), *mag = new_doubles(n * d);
                for (int64_t r = 0; r < n; r++)
                    for (int64_t c = 0; c < d; c++) {
                        double o = acc ? out[r * d + c] : 0.0, a = fabs(o);
                        if (bias) o += bias[c], a += fabs(bias[c]);
                        for (int j = 0; j < k; j++) {
                            const int32_t t = idx[r * k + j];
                            if (t < 0) continue;
                            const double term = (double)val[r * k + j] * W[t * d + c];
                            o += term;
                            a += fabs(term);
                        }
                        want[r * d + c] = o;
                        mag[r * d + c] = a;
                    }
                OK(SAEC_OP(dev, sparse_decode, idx, val, W, bias, n, k, m, d, acc, out));
                CHECK_CLOSE("out", out, want, mag, n * d, 1e-7, 1e-6); /* k + 2 roundings */
                free(idx), free(val), free(W), free(bias), free(out), free(want), free(mag);
            }
    set_ctx("sparse_decode index out of range");
    int32_t idx[2] = {0, 3};
    float val[2] = {1, 1}, W[3] = {1, 2, 3}, out[1] = {7};
    REJECTED(SAEC_OP(dev, sparse_decode, idx, val, W, NULL, 1, 2, 3, 1, 1, out));
    CHECK(out[0] == 7, "a rejected sparse_decode wrote its output");
}

static void test_sparse_row_dots(saec_dev *dev) {
    static const int64_t shapes[][4] = {/* n, k, m, d */
                                        {13, 1, 29, 37},
                                        {13, 5, 29, 37},
                                        {1, 3, 3, 1},
                                        {200, 7, 301, 67},
                                        {3, 4, 5, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], m = shapes[s][2], d = shapes[s][3];
        const int k = (int)shapes[s][1];
        set_ctx("sparse_row_dots n=%lld k=%d m=%lld d=%lld", (long long)n, k, (long long)m,
                (long long)d);
        int32_t *idx = malloc((size_t)(n * k) * sizeof *idx);
        float *unused = new_floats(n * k);
        rand_code(n, k, m, 20, idx, unused);
        float *g = rand_floats(n * d), *W = rand_floats(m * d), *out = new_floats(n * k);
        fill_floats(out, n * k, NAN); /* every slot is written, empty ones with 0 */
        double *want = new_doubles(n * k), *mag = new_doubles(n * k);
        int empty_ok = 1;
        for (int64_t p = 0; p < n * k; p++) {
            double dot = 0, a = 0;
            if (idx[p] >= 0)
                for (int64_t c = 0; c < d; c++) {
                    const double term = (double)g[(p / k) * d + c] * W[idx[p] * d + c];
                    dot += term;
                    a += fabs(term);
                }
            want[p] = dot;
            mag[p] = a;
        }
        OK(SAEC_OP(dev, sparse_row_dots, g, idx, W, n, k, m, d, out));
        for (int64_t p = 0; p < n * k; p++)
            if (idx[p] < 0) empty_ok &= out[p] == 0.0f;
        /* A d-term fp32 dot: error within ~d·eps of Σ|g·w| in the worst case; 1e-5 covers
           d <= 1000 with vector partial sums. */
        CHECK_CLOSE("out", out, want, mag, n * k, 1e-7, 1e-5);
        CHECK(empty_ok, "an empty slot did not get exactly 0");
        free(idx), free(unused), free(g), free(W), free(out), free(want), free(mag);
    }
}

static void test_sparse_outer_accum(saec_dev *dev) {
    static const int64_t shapes[][4] = {/* n, k, m, d */
                                        {5, 3, 11, 9},      {1, 1, 1, 1},     {40, 1, 23, 50},
                                        {257, 9, 103, 131}, {64, 64, 64, 33}, {1000, 5, 37, 20}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int with_db = 0; with_db < 2; with_db++) {
            const int64_t n = shapes[s][0], m = shapes[s][2], d = shapes[s][3];
            const int k = (int)shapes[s][1];
            set_ctx("sparse_outer_accum n=%lld k=%d m=%lld d=%lld db=%s", (long long)n, k,
                    (long long)m, (long long)d, with_db ? "yes" : "NULL");
            /* The last few latents are never used (empty buckets): they must not change. */
            const int64_t m_used = m > 8 ? m - 5 : m;
            int32_t *idx = malloc((size_t)(n * k) * sizeof *idx);
            float *coef = new_floats(n * k);
            rand_code(n, k, m_used, 15, idx, coef);
            float *X = rand_floats(n * d), *dW0 = rand_floats(m * d);
            float *db0 = with_db ? rand_floats(m) : NULL;
            float *dW = dup_floats(dW0, m * d), *db = with_db ? dup_floats(db0, m) : NULL;
            double *want = new_doubles(m * d), *mag = new_doubles(m * d);
            double *want_b = new_doubles(m), *mag_b = new_doubles(m);
            for (int64_t i = 0; i < m * d; i++)
                want[i] = dW0[i], mag[i] = fabs(dW0[i]);
            for (int64_t l = 0; l < m; l++)
                want_b[l] = db0 ? db0[l] : 0, mag_b[l] = db0 ? fabs(db0[l]) : 0;
            for (int64_t p = 0; p < n * k; p++) {
                const int32_t t = idx[p];
                if (t < 0) continue;
                for (int64_t c = 0; c < d; c++) {
                    const double term = (double)coef[p] * X[(p / k) * d + c];
                    want[t * d + c] += term;
                    mag[t * d + c] += fabs(term);
                }
                want_b[t] += coef[p];
                mag_b[t] += fabs(coef[p]);
            }
            OK(SAEC_OP(dev, sparse_outer_accum, idx, coef, X, n, k, m, d, dW, db));
            /* Each element sums up to n·k/m·... fp32 terms; 1e-5 relative to Σ|terms|. */
            CHECK_CLOSE("dW", dW, want, mag, m * d, 1e-7, 1e-5);
            if (db) CHECK_CLOSE("db", db, want_b, mag_b, m, 1e-7, 1e-5);
            if (m_used < m)
                CHECK(memcmp(dW + m_used * d, dW0 + m_used * d, (size_t)((m - m_used) * d) * 4) ==
                          0,
                      "rows of unused latents changed");

            /* Deterministic: a second run from the same start is bitwise equal, and so is a
               run on one thread (another owner for every latent). */
            float *dW2 = dup_floats(dW0, m * d), *db2 = with_db ? dup_floats(db0, m) : NULL;
            OK(SAEC_OP(dev, sparse_outer_accum, idx, coef, X, n, k, m, d, dW2, db2));
            CHECK(memcmp(dW, dW2, (size_t)(m * d) * 4) == 0 &&
                      (!db || memcmp(db, db2, (size_t)m * 4) == 0),
                  "two runs are not bitwise equal");
            const int threads = omp_get_max_threads();
            omp_set_num_threads(1);
            memcpy(dW2, dW0, (size_t)(m * d) * 4);
            if (db2) memcpy(db2, db0, (size_t)m * 4);
            OK(SAEC_OP(dev, sparse_outer_accum, idx, coef, X, n, k, m, d, dW2, db2));
            omp_set_num_threads(threads);
            CHECK(memcmp(dW, dW2, (size_t)(m * d) * 4) == 0 &&
                      (!db || memcmp(db, db2, (size_t)m * 4) == 0),
                  "1-thread and %d-thread results are not bitwise equal", threads);

            free(idx), free(coef), free(X), free(dW0), free(db0), free(dW), free(db), free(dW2),
                free(db2), free(want), free(mag), free(want_b), free(mag_b);
        }
}

/* ---- loss and reductions, optimizer and decoder constraint: the op cases (op_cases_reduce.c,
   run by test_op_cases); here only a two-op identity ---- */

/* recon_grad from recon_loss_grad's own statistics writes recon_loss_grad's gradient, bit for bit
   (the data-parallel step's gradient equals the single-rank one). */
static void test_recon_grad_matches_loss_grad(saec_dev *dev) {
    static const int64_t shapes[][2] = {{11, 37}, {1, 1}, {300, 131}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], d = shapes[s][1];
        set_ctx("recon_grad after recon_loss_grad n=%lld d=%lld", (long long)n, (long long)d);
        float *x = rand_floats(n * d), *xh = rand_floats(n * d), *mu = rand_floats(d);
        double stats[SAEC_STAT_COUNT];
        float *g_loss = new_floats(n * d), *g = new_floats(n * d); /* [n, d] */
        OK(SAEC_OP(dev, recon_loss_grad, x, xh, mu, n, d, 0.7f, stats, g_loss));
        fill_floats(g, n * d, NAN);
        OK(SAEC_OP(dev, recon_grad, x, xh, n, d, 0.7f, stats, g));
        CHECK(memcmp(g, g_loss, (size_t)(n * d) * sizeof *g) == 0,
              "differs from recon_loss_grad's gradient for the same stats (bitwise)");
        free(x), free(xh), free(mu), free(g_loss), free(g);
    }
}

/* ---- latent bookkeeping ---- */

static void test_track_fired(saec_dev *dev) {
    const int64_t m = 23, dead_after = 8;
    for (int with_count = 0; with_count < 2; with_count++) {
        int64_t since[23] = {0}, count[23] = {0}, r_since[23] = {0}, r_count[23] = {0};
        uint8_t mask[23];
        memset(mask, 7, sizeof mask);
        static const int64_t batch_n[] = {5, 1, 3, 6, 4, 2}; /* k = 0: tokens without codes */
        static const int batch_k[] = {3, 1, 3, 0, 2, 5};
        for (size_t b = 0; b < 6; b++) {
            const int64_t n = batch_n[b];
            const int k = batch_k[b];
            set_ctx("track_fired batch %zu n=%lld k=%d fire_count=%s", b, (long long)n, k,
                    with_count ? "yes" : "NULL");
            int32_t idx[16];
            float val[16];
            rand_code(n, k, b == 5 ? 4 : m, 20, idx, val); /* last batch: only latents 0..3 */
            for (int64_t p = 0; p < n * k; p++)
                if (idx[p] >= 0 && rng_int(4) == 0)
                    val[p] = rng_int(2) ? 0.0f : -0.5f; /* kept, not firing */
            for (int64_t j = 0; j < m; j++)
                r_since[j] += n;
            for (int64_t p = 0; p < n * k; p++)
                if (idx[p] >= 0 && val[p] > 0) r_since[idx[p]] = 0, r_count[idx[p]]++;
            double dead = -1;
            OK(SAEC_OP(dev, track_fired, k ? idx : NULL, k ? val : NULL, n, k, m, since,
                       with_count ? count : NULL, dead_after, mask, &dead));
            int64_t r_dead = 0;
            int ok = 1;
            for (int64_t j = 0; j < m; j++) {
                r_dead += r_since[j] >= dead_after;
                ok &= since[j] == r_since[j] && mask[j] == (r_since[j] >= dead_after);
                ok &= with_count ? count[j] == r_count[j] : count[j] == 0;
            }
            CHECK(ok, "since_fired / fire_count / dead_mask differ from the reference (exact)");
            CHECK(dead == (double)r_dead, "dead_count %g, want %lld", dead, (long long)r_dead);
        }
    }
}

/* dead_latents_update: since_fired 0 stays 0 (fired on some rank), > 0 gains `add`; mask and
   count from the new values. Also: on one rank, track_fired over a batch equals track_fired
   over its first part then dead_latents_update for the rest when the rest fires nothing. */
static void dlu_case(saec_dev *dev, int64_t m, int64_t add, int64_t dead_after) {
    set_ctx("dead_latents_update m=%lld add=%lld dead_after=%lld", (long long)m, (long long)add,
            (long long)dead_after);
    int64_t *since = malloc((size_t)(m > 0 ? m : 1) * 8),
            *want = malloc((size_t)(m > 0 ? m : 1) * 8);
    uint8_t *mask = malloc((size_t)(m > 0 ? m : 1));
    for (int64_t j = 0; j < m; j++)
        since[j] = rng_int(3) == 0 ? 0 : rng_int(2 * dead_after + 2);
    memset(mask, 7, (size_t)(m > 0 ? m : 1));
    int64_t r_dead = 0;
    for (int64_t j = 0; j < m; j++) {
        want[j] = since[j] > 0 ? since[j] + add : 0;
        r_dead += want[j] >= dead_after;
    }
    double dead = -1;
    OK(SAEC_OP(dev, dead_latents_update, since, m, add, dead_after, mask, &dead));
    int ok = 1;
    for (int64_t j = 0; j < m; j++)
        ok &= since[j] == want[j] && mask[j] == (want[j] >= dead_after);
    CHECK(ok, "since_fired / dead_mask differ from the reference (exact)");
    CHECK(dead == (double)r_dead, "dead_count %g, want %lld", dead, (long long)r_dead);
    free(since), free(want), free(mask);
}

static void test_dead_latents_update(saec_dev *dev) {
    dlu_case(dev, 23, 7, 10);
    dlu_case(dev, 23, 0, 10); /* add 0: only the mask and count */
    dlu_case(dev, 1, 5, 1);
    dlu_case(dev, 0, 5, 1);            /* m = 0: count 0 */
    dlu_case(dev, 100003, 4096, 5000); /* the parallel path */

    /* track_fired over [a; b] == track_fired over a, then dead_latents_update(add = |b|) when no
       latent fires in b */
    set_ctx("dead_latents_update after track_fired");
    const int64_t m = 31, n = 6, n_b = 4, dead_after = 7;
    const int k = 3;
    int32_t idx[(6 + 4) * 3];
    float val[(6 + 4) * 3];
    rand_code(n, k, m, 20, idx, val);
    for (int64_t p = n * k; p < (n + n_b) * k; p++) /* b: kept but silent */
        idx[p] = (int32_t)rng_int(m), val[p] = rng_int(2) ? 0.0f : -0.25f;
    int64_t s1[31], s2[31];
    for (int64_t j = 0; j < m; j++)
        s1[j] = s2[j] = rng_int(12);
    uint8_t m1[31], m2[31];
    double d1 = -1, d2 = -1;
    OK(SAEC_OP(dev, track_fired, idx, val, n + n_b, k, m, s1, NULL, dead_after, m1, &d1));
    OK(SAEC_OP(dev, track_fired, idx, val, n, k, m, s2, NULL, dead_after, m2, &d2));
    OK(SAEC_OP(dev, dead_latents_update, s2, m, n_b, dead_after, m2, &d2));
    /* after track_fired over a (n > 0), since_fired > 0 exactly for the latents silent in a */
    CHECK(memcmp(s1, s2, sizeof s1) == 0 && memcmp(m1, m2, sizeof m1) == 0 && d1 == d2,
          "track_fired over both parts differs from track_fired + dead_latents_update");

    set_ctx("dead_latents_update bad arguments");
    int64_t sf[2] = {0, 1};
    uint8_t mk[2];
    double dc;
    REJECTED(SAEC_OP(dev, dead_latents_update, sf, -1, 1, 1, mk, &dc));
    REJECTED(SAEC_OP(dev, dead_latents_update, sf, 2, -1, 1, mk, &dc));
    REJECTED(SAEC_OP(dev, dead_latents_update, sf, 2, 1, 1, mk, NULL));
}

int main(void) {
    rng_seed(0x5AEC5AEC12345678ull); /* this test's inputs since it was written */
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(cpu): %s\n", saec_error_message());
        return 1;
    }
    printf("device: %s\n", dev->name);

    test_memory(dev);
    test_topk(dev);
    test_sparse_decode(dev);
    test_sparse_row_dots(dev);
    test_sparse_outer_accum(dev);
    test_recon_grad_matches_loss_grad(dev);
    test_track_fired(dev);
    test_dead_latents_update(dev);

    saec_dev_close(dev);
    printf("%d checks, %d failure(s)\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
