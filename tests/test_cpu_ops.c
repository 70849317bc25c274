/* Every CPU op against a naive, obviously-correct loop written here (double accumulation),
 * on random inputs of awkward sizes: odd n, m, d that are not multiples of 32. Each check
 * states its tolerance. The dense family (gemm, scale_add_rows, axpby, col_sum, relu,
 * relu_backward) and the selection, sparse-code and latent-bookkeeping family (topk_rows,
 * sparse_decode, sparse_row_dots, sparse_outer_accum, track_fired, dead_latents_update; and
 * track_fired_dense) are op cases (op_cases_dense.c, op_cases_sparse.c), checked by
 * test_op_cases; left here of that family: sparse_outer_accum's determinism (two runs, one
 * thread against all) and track_fired followed by dead_latents_update against one track_fired.
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

/* ---- loss and reductions ---- */

static void test_recon_loss_grad(saec_dev *dev) {
    static const int64_t shapes[][2] = {{11, 37}, {1, 1}, {300, 131}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int with_grad = 0; with_grad < 2; with_grad++) {
            const int64_t n = shapes[s][0], d = shapes[s][1];
            set_ctx("recon_loss_grad n=%lld d=%lld grad=%s", (long long)n, (long long)d,
                    with_grad ? "yes" : "NULL");
            const float grad_scale = 0.7f;
            float *x = rand_floats(n * d), *xh = rand_floats(n * d), *mu = rand_floats(d);
            if (n > 5) {
                fill_floats(x + 3 * d, d, 0.0f);  /* cos with a zero x row: 0 */
                fill_floats(xh + 5 * d, d, 0.0f); /* cos with a zero x̂ row: 0 */
            }
            double sse = 0, sst = 0, cos_sum = 0;
            for (int64_t r = 0; r < n; r++) {
                double dot = 0, xx = 0, hh = 0;
                for (int64_t c = 0; c < d; c++) {
                    const double a = x[r * d + c], b = xh[r * d + c];
                    sse += (a - b) * (a - b);
                    sst += (a - mu[c]) * (a - mu[c]);
                    dot += a * b, xx += a * a, hh += b * b;
                }
                cos_sum += (xx > 0 && hh > 0) ? dot / sqrt(xx * hh) : 0.0;
            }
            double stats[SAEC_STAT_COUNT] = {-1, -1, -1};
            float *grad = with_grad ? new_floats(n * d) : NULL;
            OK(SAEC_OP(dev, recon_loss_grad, x, xh, mu, n, d, grad_scale, stats, grad));
            /* Double accumulation on both sides: only the summation order differs. */
            CHECK(fabs(stats[SAEC_STAT_SSE] - sse) <= 1e-10 * sse, "SSE %.17g, want %.17g",
                  stats[SAEC_STAT_SSE], sse);
            CHECK(fabs(stats[SAEC_STAT_SST] - sst) <= 1e-10 * sst, "SST %.17g, want %.17g",
                  stats[SAEC_STAT_SST], sst);
            CHECK(fabs(stats[SAEC_STAT_COS_SUM] - cos_sum) <= 1e-10 * (double)n,
                  "cos sum %.17g, want %.17g", stats[SAEC_STAT_COS_SUM], cos_sum);
            if (grad) {
                double *want = new_doubles(n * d);
                for (int64_t i = 0; i < n * d; i++)
                    want[i] = -2.0 * grad_scale * ((double)x[i] - xh[i]) / sst;
                CHECK_CLOSE("grad", grad, want, NULL, n * d, 1e-12, 1e-6);
                free(want);
            }
            free(x), free(xh), free(mu), free(grad);
        }
}

/* recon_grad: with recon_loss_grad's own statistics it writes recon_loss_grad's gradient, bit for
   bit; with another SST (as after a cross-rank sum) the gradient scales by SST / SST'; SST = 0
   gives 0; the other statistics are not used. */
static void test_recon_grad(saec_dev *dev) {
    static const int64_t shapes[][2] = {{11, 37}, {1, 1}, {300, 131}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], d = shapes[s][1];
        set_ctx("recon_grad n=%lld d=%lld", (long long)n, (long long)d);
        const float grad_scale = 0.7f;
        float *x = rand_floats(n * d), *xh = rand_floats(n * d), *mu = rand_floats(d);
        double stats[SAEC_STAT_COUNT];
        float *g_loss = new_floats(n * d), *g = new_floats(n * d);
        OK(SAEC_OP(dev, recon_loss_grad, x, xh, mu, n, d, grad_scale, stats, g_loss));
        fill_floats(g, n * d, NAN);
        OK(SAEC_OP(dev, recon_grad, x, xh, n, d, grad_scale, stats, g));
        CHECK(memcmp(g, g_loss, (size_t)(n * d) * sizeof *g) == 0,
              "differs from recon_loss_grad's gradient for the same stats (bitwise)");

        /* a different SST (three ranks' worth), garbage SSE and cos: the gradient scales */
        double other[SAEC_STAT_COUNT] = {NAN, 3.25 * stats[SAEC_STAT_SST], NAN};
        fill_floats(g, n * d, NAN);
        OK(SAEC_OP(dev, recon_grad, x, xh, n, d, grad_scale, other, g));
        double *want = new_doubles(n * d), *scaled = new_doubles(n * d);
        for (int64_t i = 0; i < n * d; i++) {
            want[i] = -2.0 * grad_scale * ((double)x[i] - xh[i]) / other[SAEC_STAT_SST];
            scaled[i] = (double)g_loss[i] / 3.25;
        }
        CHECK_CLOSE("grad with another SST", g, want, NULL, n * d, 1e-12, 1e-6);
        CHECK_CLOSE("grad scales by SST / SST'", g, scaled, NULL, n * d, 1e-12, 1e-6);

        /* SST = 0: no defined nmse, gradient 0 (as recon_loss_grad) */
        double zero[SAEC_STAT_COUNT] = {1.0, 0.0, 1.0};
        fill_floats(g, n * d, NAN);
        OK(SAEC_OP(dev, recon_grad, x, xh, n, d, grad_scale, zero, g));
        int ok = 1;
        for (int64_t i = 0; i < n * d; i++)
            ok &= g[i] == 0.0f;
        CHECK(ok, "SST = 0: the gradient is not 0");
        free(x), free(xh), free(mu), free(g_loss), free(g), free(want), free(scaled);
    }
    set_ctx("recon_grad bad arguments");
    float z[4] = {0};
    double st[SAEC_STAT_COUNT] = {1, 1, 1};
    OK(SAEC_OP(dev, recon_grad, NULL, NULL, 0, 4, 1.0f, st, NULL)); /* n = 0: nothing */
    REJECTED(SAEC_OP(dev, recon_grad, z, z, -1, 4, 1.0f, st, z));
    REJECTED(SAEC_OP(dev, recon_grad, z, z, 1, 4, 1.0f, NULL, z));
    REJECTED(SAEC_OP(dev, recon_grad, z, z, 1, 4, 1.0f, st, NULL));
}

static void test_sum_squares_count_positive(saec_dev *dev) {
    static const int64_t sizes[] = {0, 1, 1001, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int acc = 0; acc < 2; acc++) {
            const int64_t n = sizes[s];
            set_ctx("sum_squares/count_positive n=%lld accumulate=%d", (long long)n, acc);
            float *x = rand_floats(n);
            for (int64_t i = 0; i < n; i += 7)
                x[i] = 0.0f; /* zeros are not positive */
            double ss = acc ? 2.5 : 0.0, cnt = acc ? 3.0 : 0.0;
            for (int64_t i = 0; i < n; i++)
                ss += (double)x[i] * x[i], cnt += x[i] > 0;
            double out_ss = 2.5, out_cnt = 3.0;
            OK(SAEC_OP(dev, sum_squares, x, n, acc, &out_ss));
            OK(SAEC_OP(dev, count_positive, x, n, acc, &out_cnt));
            CHECK(fabs(out_ss - ss) <= 1e-12 * ss, "sum_squares %.17g, want %.17g", out_ss, ss);
            CHECK(out_cnt == cnt, "count_positive %.17g, want %.17g (exact)", out_cnt, cnt);
            free(x);
        }
}

static double objective(const float *x, int64_t n, int64_t d, const double *y) {
    double f = 0; /* Σ_i ‖x_i − y‖ */
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t c = 0; c < d; c++)
            s += (x[i * d + c] - y[c]) * (x[i * d + c] - y[c]);
        f += sqrt(s);
    }
    return f;
}

static void test_geometric_median(saec_dev *dev) {
    /* Random rows with a few far outliers: the median is well away from the mean. Reference:
       2000 plain Weiszfeld iterations in double, no early stop. */
    {
        const int64_t n = 101, d = 13;
        set_ctx("geometric_median n=%lld d=%lld outliers", (long long)n, (long long)d);
        float *x = rand_floats(n * d), *scratch = new_floats(n), *out = new_floats(d);
        for (int64_t i = 0; i < 7; i++)
            for (int64_t c = 0; c < d; c++)
                x[i * d + c] = 50.0f + 10.0f * rng_sym();
        double *y = new_doubles(d), *ynext = new_doubles(d), *mean = new_doubles(d);
        for (int64_t c = 0; c < d; c++) {
            mean[c] = 0;
            for (int64_t i = 0; i < n; i++)
                mean[c] += x[i * d + c];
            mean[c] /= (double)n;
            y[c] = mean[c];
        }
        for (int it = 0; it < 2000; it++) {
            double wsum = 0;
            for (int64_t c = 0; c < d; c++)
                ynext[c] = 0;
            for (int64_t i = 0; i < n; i++) {
                double s = 0;
                for (int64_t c = 0; c < d; c++)
                    s += (x[i * d + c] - y[c]) * (x[i * d + c] - y[c]);
                const double w = 1.0 / fmax(sqrt(s), 1e-12);
                wsum += w;
                for (int64_t c = 0; c < d; c++)
                    ynext[c] += w * x[i * d + c];
            }
            for (int64_t c = 0; c < d; c++)
                y[c] = ynext[c] / wsum;
        }
        OK(SAEC_OP(dev, geometric_median, x, n, d, 100, scratch, out));
        double *got = new_doubles(d);
        for (int64_t c = 0; c < d; c++)
            got[c] = out[c];
        const double f_got = objective(x, n, d, got), f_opt = objective(x, n, d, y),
                     f_mean = objective(x, n, d, mean);
        /* The objective is flat at the optimum: within 1e-6 relative of the optimum. */
        CHECK(f_got <= f_opt * (1 + 1e-6), "objective %.10g, optimum %.10g", f_got, f_opt);
        CHECK(f_got < 0.9 * f_mean, "objective %.10g not well below the mean's %.10g", f_got,
              f_mean);
        CHECK_CLOSE("median", out, y, NULL, d, 1e-3, 1e-3);

        set_ctx("geometric_median iters=0 is the mean");
        OK(SAEC_OP(dev, geometric_median, x, n, d, 0, scratch, out));
        CHECK_CLOSE("mean", out, mean, NULL, d, 1e-6, 1e-6);
        free(x), free(scratch), free(out), free(y), free(ynext), free(mean), free(got);
    }
    /* Collinear points at 0, 1, 2, 3, 100 along a direction u from c: the median is c + 2u
       (the 1-D median), far from the mean c + 21.2u. */
    {
        const int64_t n = 5, d = 37;
        set_ctx("geometric_median collinear n=5 d=37");
        float *c0 = rand_floats(d), *u = rand_floats(d), *x = new_floats(n * d);
        double un = 0;
        for (int64_t c = 0; c < d; c++)
            un += (double)u[c] * u[c];
        for (int64_t c = 0; c < d; c++)
            u[c] = (float)(u[c] / sqrt(un));
        static const float pos[5] = {0, 1, 2, 3, 100};
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < d; c++)
                x[i * d + c] = c0[c] + pos[i] * u[c];
        float *scratch = new_floats(n), *out = new_floats(d);
        double *want = new_doubles(d);
        for (int64_t c = 0; c < d; c++)
            want[c] = (double)c0[c] + 2.0 * u[c];
        OK(SAEC_OP(dev, geometric_median, x, n, d, 500, scratch, out));
        CHECK_CLOSE("median", out, want, NULL, d, 1e-4, 0);
        free(c0), free(u), free(x), free(scratch), free(out), free(want);
    }
    /* One row: the row itself. */
    {
        set_ctx("geometric_median n=1");
        float *x = rand_floats(9), scratch[1], out[9];
        double want[9];
        for (int c = 0; c < 9; c++)
            want[c] = x[c];
        OK(SAEC_OP(dev, geometric_median, x, 1, 9, 10, scratch, out));
        CHECK_CLOSE("median", out, want, NULL, 9, 0, 1e-7);
        free(x);
    }
}

/* ---- optimizer and decoder constraint ---- */

static void test_project_normalize(saec_dev *dev) {
    static const int64_t shapes[][2] = {{9, 37}, {1, 1}, {300, 129}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t m = shapes[s][0], d = shapes[s][1];
        const int64_t zero_row = m > 4 ? 4 : -1;
        set_ctx("project_rows_grad m=%lld d=%lld", (long long)m, (long long)d);
        float *W = rand_floats(m * d), *G = rand_floats(m * d);
        if (zero_row >= 0) fill_floats(W + zero_row * d, d, 0.0f);
        double *want = new_doubles(m * d), *mag = new_doubles(m * d);
        for (int64_t i = 0; i < m; i++) {
            double gw = 0, ww = 0;
            for (int64_t c = 0; c < d; c++)
                gw += (double)G[i * d + c] * W[i * d + c],
                    ww += (double)W[i * d + c] * W[i * d + c];
            const double a = ww > 0 ? gw / ww : 0.0;
            for (int64_t c = 0; c < d; c++) {
                want[i * d + c] = G[i * d + c] - a * W[i * d + c];
                mag[i * d + c] = fabs(G[i * d + c]) + fabs(a * W[i * d + c]);
            }
        }
        float *G0 = dup_floats(G, m * d);
        OK(SAEC_OP(dev, project_rows_grad, W, G, m, d));
        CHECK_CLOSE("G", G, want, mag, m * d, 1e-7, 1e-6);
        if (zero_row >= 0)
            CHECK(memcmp(G + zero_row * d, G0 + zero_row * d, (size_t)d * 4) == 0,
                  "the row of a zero W row changed");

        set_ctx("normalize_rows m=%lld d=%lld", (long long)m, (long long)d);
        for (int64_t i = 0; i < m; i++) {
            double ww = 0;
            for (int64_t c = 0; c < d; c++)
                ww += (double)W[i * d + c] * W[i * d + c];
            for (int64_t c = 0; c < d; c++)
                want[i * d + c] = ww > 0 ? W[i * d + c] / sqrt(ww) : 0.0;
        }
        OK(SAEC_OP(dev, normalize_rows, W, m, d));
        CHECK_CLOSE("W", W, want, NULL, m * d, 1e-7, 1e-6);
        free(W), free(G), free(G0), free(want), free(mag);
    }
}

static void test_adamw(saec_dev *dev) {
    const int64_t n = 1003;
    /* 0: clipping active (norm 2x the limit), 1: limit above the norm, 2: clipping disabled
       (max_grad_norm 0, grad_sumsq NULL), 3: Adam with beta1 = 0 (the JumpReLU default). */
    for (int mode = 0; mode < 4; mode++) {
        float *p = rand_floats(n), *m1 = new_floats(n), *m2 = new_floats(n), *g = new_floats(n);
        fill_floats(m1, n, 0.0f);
        fill_floats(m2, n, 0.0f);
        double *rp = new_doubles(n), *rm = new_doubles(n), *rv = new_doubles(n);
        for (int64_t i = 0; i < n; i++)
            rp[i] = p[i], rm[i] = 0, rv[i] = 0;
        for (int64_t step = 1; step <= 4; step++) {
            set_ctx("adamw n=%lld mode=%d step=%lld", (long long)n, mode, (long long)step);
            for (int64_t i = 0; i < n; i++)
                g[i] = rng_sym();
            double sumsq = 0;
            for (int64_t i = 0; i < n; i++)
                sumsq += (double)g[i] * g[i];
            const double norm = sqrt(sumsq);
            saec_adamw_args a = {.lr = 1e-2f,
                                 .beta1 = mode == 3 ? 0.0f : 0.9f,
                                 .beta2 = 0.999f,
                                 .eps = 1e-8f,
                                 .weight_decay = 0.1f,
                                 .step = step,
                                 .max_grad_norm = 0.0f};
            if (mode == 0) a.max_grad_norm = (float)(0.5 * norm);
            if (mode == 1 || mode == 3) a.max_grad_norm = (float)(2.0 * norm);
            const double clip =
                a.max_grad_norm > 0 && norm > a.max_grad_norm ? a.max_grad_norm / norm : 1.0;
            if (mode == 0) CHECK(clip < 0.51, "test setup: clipping should be active");
            const double bc1 = 1 - pow(a.beta1, (double)step), bc2 = 1 - pow(a.beta2, (double)step);
            for (int64_t i = 0; i < n; i++) {
                const double gi = g[i] * clip;
                rm[i] = a.beta1 * rm[i] + (1 - (double)a.beta1) * gi;
                rv[i] = a.beta2 * rv[i] + (1 - (double)a.beta2) * gi * gi;
                rp[i] -=
                    a.lr * (a.weight_decay * rp[i] + (rm[i] / bc1) / (sqrt(rv[i] / bc2) + a.eps));
            }
            OK(SAEC_OP(dev, adamw, p, g, m1, m2, n, a, mode == 2 ? NULL : &sumsq));
            /* fp32 state against the double reference; updates are ~lr, so 1e-6 absolute. */
            CHECK_CLOSE("param", p, rp, NULL, n, 1e-6, 1e-6);
            CHECK_CLOSE("m1", m1, rm, NULL, n, 1e-7, 1e-5);
            CHECK_CLOSE("m2", m2, rv, NULL, n, 1e-9, 1e-5);
        }
        free(p), free(m1), free(m2), free(g), free(rp), free(rm), free(rv);
    }
    set_ctx("adamw bad arguments");
    float z[2] = {0};
    saec_adamw_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 0};
    REJECTED(SAEC_OP(dev, adamw, z, z, z, z, 2, a, NULL)); /* step < 1 */
    a.step = 1;
    a.max_grad_norm = 1.0f;
    REJECTED(SAEC_OP(dev, adamw, z, z, z, z, 2, a, NULL)); /* clipping without a norm */
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
    test_recon_loss_grad(dev);
    test_recon_grad(dev);
    test_sum_squares_count_positive(dev);
    test_geometric_median(dev);
    test_project_normalize(dev);
    test_adamw(dev);
    test_track_then_dead_update(dev);

    saec_dev_close(dev);
    printf("%d checks, %d failure(s)\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
