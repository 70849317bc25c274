/* Every CPU op against a naive, obviously-correct loop written here (double accumulation),
 * on random inputs of awkward sizes: odd n, m, d that are not multiples of 32. Each check
 * states its tolerance. The dense family (gemm, scale_add_rows, axpby, col_sum, relu,
 * relu_backward), the reduction family (recon_loss_grad, recon_grad, sum_squares,
 * count_positive, geometric_median, project_rows_grad, normalize_rows, adamw) and the selection,
 * sparse-code and latent-bookkeeping family (topk_rows, sparse_decode, sparse_row_dots,
 * sparse_outer_accum, track_fired, dead_latents_update; and track_fired_dense) are op cases
 * (op_cases_dense.c, op_cases_reduce.c, op_cases_sparse.c), checked by test_op_cases. Left here:
 * a two-op identity (recon_grad from recon_loss_grad's statistics writes its gradient),
 * sparse_outer_accum's determinism (two runs, one thread against all) and track_fired followed
 * by dead_latents_update against one track_fired.
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

/* ---- selection and sparse codes: the op cases (op_cases_sparse.c, run by test_op_cases) ---- */

/* sparse_outer_accum is deterministic: a second run from the same start is bitwise equal, and so
   is a run on one thread (another owner for every latent). Its values against the reference: the
   op case. */
static void test_sparse_outer_accum_deterministic(saec_dev *dev) {
    static const int64_t shapes[][4] = {/* n, k, m, d */
                                        {5, 3, 11, 9},      {1, 1, 1, 1},     {40, 1, 23, 50},
                                        {257, 9, 103, 131}, {64, 64, 64, 33}, {1000, 5, 37, 20}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int with_db = 0; with_db < 2; with_db++) {
            const int64_t n = shapes[s][0], m = shapes[s][2], d = shapes[s][3];
            const int k = (int)shapes[s][1];
            set_ctx("sparse_outer_accum deterministic n=%lld k=%d m=%lld d=%lld db=%s",
                    (long long)n, k, (long long)m, (long long)d, with_db ? "yes" : "NULL");
            int32_t *idx = malloc((size_t)(n * k) * sizeof *idx);
            float *coef = new_floats(n * k);
            rand_code(n, k, m, 15, idx, coef);
            float *X = rand_floats(n * d), *dW0 = rand_floats(m * d);
            float *db0 = with_db ? rand_floats(m) : NULL;
            float *dW = dup_floats(dW0, m * d), *db = with_db ? dup_floats(db0, m) : NULL;
            OK(SAEC_OP(dev, sparse_outer_accum, idx, coef, X, n, k, m, d, dW, db));
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
                free(db2);
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

/* ---- latent bookkeeping: the op cases (op_cases_sparse.c, run by test_op_cases) ---- */

/* On one rank, track_fired over a batch [a; b] equals track_fired over a, then
   dead_latents_update(add = |b|) when no latent fires in b (the two ops agree). */
static void test_track_then_dead_update(saec_dev *dev) {
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
    test_sparse_outer_accum_deterministic(dev);
    test_recon_grad_matches_loss_grad(dev);
    test_track_then_dead_update(dev);

    saec_dev_close(dev);
    printf("%d checks, %d failure(s)\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
