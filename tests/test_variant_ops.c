/* The SAE-variant ops of the CPU backend (batch_topk, jumprelu, jumprelu_backward, l1_penalty,
 * atm_stats, atm_mask, scale_cols, and adaln's silu and silu_backward; track_fired_dense is an
 * op case, op_cases_sparse.c, checked by test_op_cases) against naive loops written
 * here (double accumulation), on random inputs of awkward sizes: odd n, m, d; n = 1; m = 1;
 * ties; all-negative input; NaN; zero-norm decoder rows. Ops that reduce over rows are also
 * checked to be bitwise equal on one thread and on all threads.
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
#include "saec/hash.h"
#include "saec/ops.h"
#include "test_random.h"

/* Bitwise equality of two float arrays [n]. */
static int same_floats(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* ---- random inputs: tests/test_random.h ---- */
/* ReLU-like codes [n]: about `zero_pct`% zeros, the rest in (0, 1]. */
static float *rand_codes(int64_t n, int zero_pct) {
    float *p = new_floats(n);
    for (int64_t i = 0; i < n; i++)
        p[i] = (int)rng_int(100) < zero_pct ? 0.0f : (float)(1.0 - rng_unit());
    return p;
}

/* Run `call` on one thread (restoring the thread count after). */
#define ON_ONE_THREAD(call)                                                                        \
    do {                                                                                           \
        const int threads_ = omp_get_max_threads();                                                \
        omp_set_num_threads(1);                                                                    \
        OK(call);                                                                                  \
        omp_set_num_threads(threads_);                                                             \
    } while (0)

/* ---- batch_topk ---- */

static int cmp_desc(const void *pa, const void *pb) {
    const float a = *(const float *)pa, b = *(const float *)pb;
    return (a < b) - (a > b);
}

enum { BT_RANDOM, BT_TIES, BT_NEGATIVE, BT_NAN, BT_TINY };

static void run_batch_topk_case(saec_dev *dev, int64_t n, int64_t m, int64_t keep, int vals,
                                int alias) {
    set_ctx("batch_topk n=%lld m=%lld keep=%lld vals=%d alias=%d", (long long)n, (long long)m,
            (long long)keep, vals, alias);
    const int64_t len = n * m;
    float *x = new_floats(len);
    for (int64_t i = 0; i < len; i++) {
        switch (vals) {
        case BT_TIES: x[i] = (float)rng_int(6) * 0.25f - 0.5f; break; /* 3 positive levels */
        case BT_NEGATIVE: x[i] = -(float)rng_unit() - (rng_int(3) == 0 ? 0.0f : 1e-30f); break;
        case BT_NAN:
            x[i] = rng_int(5) == 0   ? NAN
                   : rng_int(9) == 0 ? (rng_int(2) ? INFINITY : -INFINITY)
                                     : rng_sym();
            break;
        case BT_TINY: /* subnormals, tiny normals, zeros and -0 */
            x[i] = rng_int(4) == 0   ? 0x1p-149f * (float)(1 + rng_int(50))
                   : rng_int(3) == 0 ? -0.0f
                                     : rng_sym() * 1e-37f;
            break;
        default: x[i] = rng_sym(); break;
        }
    }
    /* Reference: sort the positive entries, cut at the keep-th largest (or the smallest). */
    float *pos = new_floats(len);
    int64_t n_pos = 0;
    for (int64_t i = 0; i < len; i++)
        if (x[i] > 0) pos[n_pos++] = x[i];
    qsort(pos, (size_t)n_pos, sizeof *pos, cmp_desc);
    const float cut = n_pos == 0 ? 0.0f : pos[(keep < n_pos ? keep : n_pos) - 1];
    float *want = new_floats(len);
    int64_t n_kept = 0;
    for (int64_t i = 0; i < len; i++) {
        want[i] = (x[i] > 0 && x[i] >= cut) ? x[i] : 0.0f;
        n_kept += want[i] != 0.0f;
    }

    float *f = alias ? dup_floats(x, len) : new_floats(len);
    if (!alias)
        for (int64_t i = 0; i < len; i++)
            f[i] = NAN; /* the op must write every entry */
    float thr = -1.0f;
    OK(SAEC_OP(dev, batch_topk, alias ? f : x, n, m, keep, f, &thr));
    CHECK(same_floats(f, want, len), "f differs from the reference (exact)");
    CHECK(memcmp(&thr, &cut, sizeof thr) == 0, "threshold %.9g, want %.9g", thr, cut);
    CHECK(n_kept >= (keep < n_pos ? keep : n_pos), "kept %lld < min(keep, positives)",
          (long long)n_kept);
    if (vals != BT_TIES && vals != BT_TINY && vals != BT_NEGATIVE) /* distinct values */
        CHECK(n_kept == (keep < n_pos ? keep : n_pos), "kept %lld, want %lld", (long long)n_kept,
              (long long)(keep < n_pos ? keep : n_pos));
    if (len >= 100000) { /* bitwise the same on one thread */
        float *f1 = new_floats(len), thr1 = -1;
        ON_ONE_THREAD(SAEC_OP(dev, batch_topk, x, n, m, keep, f1, &thr1));
        CHECK(same_floats(f, f1, len) && thr == thr1, "1-thread result differs");
        free(f1);
    }
    free(x), free(pos), free(want), free(f);
}

static void test_batch_topk(saec_dev *dev) {
    run_batch_topk_case(dev, 7, 13, 10, BT_RANDOM, 0);
    run_batch_topk_case(dev, 7, 13, 1, BT_RANDOM, 0);            /* keep = 1 */
    run_batch_topk_case(dev, 7, 13, 91, BT_RANDOM, 0);           /* keep = n*m */
    run_batch_topk_case(dev, 7, 13, 60, BT_RANDOM, 0);           /* keep > positives (~45) */
    run_batch_topk_case(dev, 7, 13, 100000, BT_RANDOM, 1);       /* keep >> n*m, in place */
    run_batch_topk_case(dev, 1, 37, 5, BT_RANDOM, 0);            /* n = 1 */
    run_batch_topk_case(dev, 41, 1, 5, BT_RANDOM, 0);            /* m = 1 */
    run_batch_topk_case(dev, 1, 1, 1, BT_RANDOM, 0);             /* one entry */
    run_batch_topk_case(dev, 9, 31, 20, BT_TIES, 0);             /* ties at the cut-off */
    run_batch_topk_case(dev, 9, 31, 1, BT_TIES, 1);              /* keep 1: the whole top level */
    run_batch_topk_case(dev, 9, 31, 279, BT_TIES, 0);            /* keep = n*m with ties */
    run_batch_topk_case(dev, 11, 17, 7, BT_NEGATIVE, 0);         /* nothing positive: all 0 */
    run_batch_topk_case(dev, 13, 29, 40, BT_NAN, 0);             /* NaN never kept; +inf is */
    run_batch_topk_case(dev, 13, 29, 400, BT_NAN, 1);            /* keep > positives with NaN */
    run_batch_topk_case(dev, 19, 23, 30, BT_TINY, 0);            /* subnormals, -0 */
    run_batch_topk_case(dev, 19, 23, 1000, BT_TINY, 0);          /* cut-off = smallest subnormal */
    run_batch_topk_case(dev, 0, 5, 3, BT_RANDOM, 0);             /* empty batch: threshold 0 */
    run_batch_topk_case(dev, 257, 1031, 257 * 32, BT_RANDOM, 0); /* the parallel path */
    run_batch_topk_case(dev, 257, 1031, 257 * 32, BT_TIES, 1);
    run_batch_topk_case(dev, 129, 1025, 129 * 1025, BT_RANDOM, 0);

    set_ctx("batch_topk bad arguments");
    float x[4] = {1, 2, 3, 4}, f[4], thr;
    REJECTED(SAEC_OP(dev, batch_topk, x, 2, 2, 0, f, &thr));  /* keep < 1 */
    REJECTED(SAEC_OP(dev, batch_topk, x, -1, 2, 1, f, &thr)); /* n < 0 */
    REJECTED(SAEC_OP(dev, batch_topk, x, 2, 2, 1, f, NULL));  /* no threshold */
}

/* ---- jumprelu ---- */

static void run_jumprelu_case(saec_dev *dev, int64_t n, int64_t m, int64_t stride, int is_log) {
    set_ctx("jumprelu n=%lld m=%lld stride=%lld theta_is_log=%d", (long long)n, (long long)m,
            (long long)stride, is_log);
    const int64_t n_theta = stride ? (m - 1) * stride + 1 : 1;
    float *theta = new_floats(n_theta), *th = new_floats(m);
    for (int64_t i = 0; i < n_theta; i++)
        theta[i] = is_log ? (float)(-3.0 * rng_unit()) : (float)(0.6 * rng_unit() - 0.1);
    for (int64_t j = 0; j < m; j++) {
        const float t = theta[j * stride];
        th[j] = is_log ? expf(t) : t;
    }
    float *pre = rand_floats(n * m), *want = new_floats(n * m);
    for (int64_t i = 0; i < n * m; i++) {
        if (rng_int(10) == 0) pre[i] = th[i % m]; /* exactly at θ: not kept (strict) */
        if (rng_int(50) == 0) pre[i] = NAN;
        want[i] = pre[i] > th[i % m] ? pre[i] : 0.0f;
    }
    float *f = new_floats(n * m);
    OK(SAEC_OP(dev, jumprelu, pre, n, m, theta, stride, is_log, f));
    CHECK(same_floats(f, want, n * m), "f differs from the reference (exact)");
    OK(SAEC_OP(dev, jumprelu, pre, n, m, theta, stride, is_log, pre)); /* in place */
    CHECK(same_floats(pre, want, n * m), "in-place f differs from the reference (exact)");
    free(theta), free(th), free(pre), free(want), free(f);
}

static void test_jumprelu(saec_dev *dev) {
    static const int64_t shapes[][2] = {{7, 13}, {1, 1}, {1, 45}, {33, 1}, {301, 257}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int64_t stride = 0; stride < 3; stride++)
            for (int is_log = 0; is_log < 2; is_log++)
                run_jumprelu_case(dev, shapes[s][0], shapes[s][1], stride, is_log);
    set_ctx("jumprelu bad arguments");
    float x[4] = {0}, t = 0;
    REJECTED(SAEC_OP(dev, jumprelu, x, 2, 2, NULL, 0, 0, x)); /* no theta */
    REJECTED(SAEC_OP(dev, jumprelu, x, 2, 2, &t, -1, 0, x));  /* stride < 0 */
    REJECTED(SAEC_OP(dev, jumprelu, x, 2, 0, &t, 0, 0, x));   /* m = 0 */
}

/* ---- jumprelu_backward ---- */

static void run_jumprelu_backward_case(saec_dev *dev, int64_t n, int64_t m, float bw,
                                       float l0_coef) {
    set_ctx("jumprelu_backward n=%lld m=%lld bandwidth=%g l0_coef=%g", (long long)n, (long long)m,
            bw, l0_coef);
    float *log_theta = new_floats(m), *th = new_floats(m);
    for (int64_t j = 0; j < m; j++) {
        log_theta[j] = (float)(-2.0 * rng_unit());
        th[j] = expf(log_theta[j]);
    }
    /* pre within ±1.5 bandwidths of θ: about a third inside the window. */
    float *pre = new_floats(n * m), *df0 = rand_floats(n * m);
    for (int64_t i = 0; i < n * m; i++)
        pre[i] = th[i % m] + 1.5f * bw * rng_sym();
    float *dlog0 = rand_floats(m);
    double *want_df = new_doubles(n * m), *want_dl = new_doubles(m), *scale = new_doubles(m);
    for (int64_t j = 0; j < m; j++) {
        double acc = 0, mag = 0;
        for (int64_t r = 0; r < n; r++) {
            const int64_t i = r * m + j;
            const int in_window = fabsf((pre[i] - th[j]) / bw) < 0.5f; /* K(u) */
            want_df[i] = pre[i] > th[j] ? df0[i] : 0.0;                /* df · H(pre − θ) */
            const double term = in_window ? -((double)th[j] * df0[i] + l0_coef) / bw : 0.0;
            acc += term;
            mag += fabs(term);
        }
        want_dl[j] = dlog0[j] + (double)th[j] * acc;
        scale[j] = fabs(dlog0[j]) + (double)th[j] * mag;
    }
    float *df = dup_floats(df0, n * m), *dlog = dup_floats(dlog0, m);
    OK(SAEC_OP(dev, jumprelu_backward, pre, log_theta, n, m, bw, l0_coef, df, dlog));
    CHECK_CLOSE("df", df, want_df, NULL, n * m, 0, 0); /* exact */
    CHECK_CLOSE("dlog_theta", dlog, want_dl, scale, m, 1e-7, 1e-6);

    /* Bitwise equal on one thread. */
    float *df1 = dup_floats(df0, n * m), *dlog1 = dup_floats(dlog0, m);
    ON_ONE_THREAD(SAEC_OP(dev, jumprelu_backward, pre, log_theta, n, m, bw, l0_coef, df1, dlog1));
    CHECK(same_floats(df, df1, n * m) && same_floats(dlog, dlog1, m), "1-thread result differs");

    /* Sign: with only the L0 term (df = 0, l0_coef > 0) raising θ lowers the loss, so
       dlog_theta < 0 where some pre is in the window, 0 elsewhere. With only a positive df
       (the loss wants smaller f) and l0_coef = 0, raising θ also helps: dlog_theta <= 0. */
    float *g = new_floats(n * m), *dl = new_floats(m);
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < n * m; i++)
            g[i] = pass == 0 ? 0.0f : (float)(1.0 - rng_unit()); /* (0, 1] */
        memset(dl, 0, (size_t)m * sizeof *dl);
        OK(SAEC_OP(dev, jumprelu_backward, pre, log_theta, n, m, bw, pass == 0 ? 0.25f : 0.0f, g,
                   dl));
        int ok = 1;
        for (int64_t j = 0; j < m; j++) {
            int any = 0;
            for (int64_t r = 0; r < n; r++)
                any |= fabsf((pre[r * m + j] - th[j]) / bw) < 0.5f;
            ok &= any ? dl[j] < 0.0f : dl[j] == 0.0f;
        }
        CHECK(ok, "dlog_theta sign wrong with only the %s term", pass == 0 ? "L0" : "df");
    }
    free(log_theta), free(th), free(pre), free(df0), free(dlog0), free(want_df), free(want_dl),
        free(scale), free(df), free(dlog), free(df1), free(dlog1), free(g), free(dl);
}

static void test_jumprelu_backward(saec_dev *dev) {
    run_jumprelu_backward_case(dev, 7, 13, 0.05f, 0.01f);
    run_jumprelu_backward_case(dev, 1, 1, 0.05f, 0.01f);
    run_jumprelu_backward_case(dev, 1, 65, 0.001f, 0.5f);
    run_jumprelu_backward_case(dev, 37, 1, 0.2f, 0.0f);
    run_jumprelu_backward_case(dev, 301, 259, 0.001f, 1e-3f); /* the parallel path */

    set_ctx("jumprelu_backward bad arguments");
    float x[4] = {0};
    REJECTED(SAEC_OP(dev, jumprelu_backward, x, x, 2, 2, 0.0f, 0.1f, x, x)); /* bandwidth 0 */
    REJECTED(SAEC_OP(dev, jumprelu_backward, x, NULL, 2, 2, 0.1f, 0.1f, x, x));
}

/* ---- l1_penalty ---- */

static void run_l1_case(saec_dev *dev, int64_t n, int64_t m, int64_t d, float coef, int zero_row) {
    set_ctx("l1_penalty n=%lld m=%lld d=%lld coef=%g zero_row=%d", (long long)n, (long long)m,
            (long long)d, coef, zero_row);
    float *f = rand_codes(n * m, 60), *W = rand_floats(m * d);
    if (zero_row)
        for (int64_t c = 0; c < d; c++)
            W[(m / 2) * d + c] = 0.0f; /* latent m/2 has a zero decoder row */
    float *dpre0 = rand_floats(n * m), *dW0 = rand_floats(m * d);
    double *norm = new_doubles(m), *want_dpre = new_doubles(n * m), *want_dW = new_doubles(m * d);
    double *mag_dpre = new_doubles(n * m), *mag_dW = new_doubles(m * d); /* |terms| */
    double want_pen = 0;
    for (int64_t j = 0; j < m; j++) {
        double s = 0;
        for (int64_t c = 0; c < d; c++)
            s += (double)W[j * d + c] * W[j * d + c];
        norm[j] = sqrt(s);
        double colsum = 0;
        for (int64_t r = 0; r < n; r++) {
            const int64_t i = r * m + j;
            colsum += f[i];
            want_pen += (double)coef * f[i] * norm[j];
            const double g = f[i] > 0 ? (double)coef * norm[j] : 0.0;
            want_dpre[i] = dpre0[i] + g;
            mag_dpre[i] = fabs(dpre0[i]) + fabs(g);
        }
        for (int64_t c = 0; c < d; c++) {
            const double g = norm[j] > 0 ? coef * colsum * W[j * d + c] / norm[j] : 0.0;
            want_dW[j * d + c] = dW0[j * d + c] + g;
            mag_dW[j * d + c] = fabs(dW0[j * d + c]) + fabs(g);
        }
    }
    float *dpre = dup_floats(dpre0, n * m), *dW = dup_floats(dW0, m * d);
    double pen = -1;
    OK(SAEC_OP(dev, l1_penalty, f, W, n, m, d, coef, dpre, dW, &pen));
    CHECK(fabs(pen - want_pen) <= 1e-12 * (fabs(want_pen) + 1e-300), "penalty %.17g, want %.17g",
          pen, want_pen);
    CHECK_CLOSE("dpre", dpre, want_dpre, mag_dpre, n * m, 1e-9, 1e-6);
    CHECK_CLOSE("dW", dW, want_dW, mag_dW, m * d, 1e-9, 1e-6);
    if (zero_row)
        CHECK(same_floats(dW + (m / 2) * d, dW0 + (m / 2) * d, d), "the zero-norm row got dW");

    float *dpre1 = dup_floats(dpre0, n * m), *dW1 = dup_floats(dW0, m * d);
    double pen1 = -1;
    ON_ONE_THREAD(SAEC_OP(dev, l1_penalty, f, W, n, m, d, coef, dpre1, dW1, &pen1));
    CHECK(same_floats(dpre, dpre1, n * m) && same_floats(dW, dW1, m * d) && pen == pen1,
          "1-thread result differs");
    free(f), free(W), free(dpre0), free(dW0), free(norm), free(want_dpre), free(want_dW),
        free(mag_dpre), free(mag_dW), free(dpre), free(dW), free(dpre1), free(dW1);
}

static void test_l1_penalty(saec_dev *dev) {
    run_l1_case(dev, 7, 13, 5, 0.3f, 1);
    run_l1_case(dev, 1, 1, 1, 2.0f, 0);
    run_l1_case(dev, 1, 1, 3, 2.0f, 1); /* the only row is zero: penalty 0, no dW */
    run_l1_case(dev, 33, 1, 17, 0.1f, 0);
    run_l1_case(dev, 1, 71, 9, 0.1f, 1);
    run_l1_case(dev, 0, 9, 4, 0.1f, 0);       /* empty batch: penalty 0, dW unchanged */
    run_l1_case(dev, 203, 517, 33, 1e-3f, 1); /* the parallel path */

    set_ctx("l1_penalty bad arguments");
    float x[4] = {0};
    double p;
    REJECTED(SAEC_OP(dev, l1_penalty, x, x, 2, 2, 1, 1.0f, x, x, NULL));
    REJECTED(SAEC_OP(dev, l1_penalty, x, x, 2, 0, 1, 1.0f, x, x, &p));
}

/* ---- atm_stats ---- */

static void run_atm_stats_case(saec_dev *dev, int64_t n, int64_t m, int64_t d, float beta) {
    set_ctx("atm_stats n=%lld m=%lld d=%lld beta=%g", (long long)n, (long long)m, (long long)d,
            beta);
    float *f = rand_codes(n * m, 50), *dfn = rand_floats(n * m), *W = rand_floats(m * d);
    for (int64_t i = 0; i < n * m; i++)
        dfn[i] *= 1e-3f; /* code gradients of the nmse are small */
    const double stats[SAEC_STAT_COUNT] = {12.5, 37.25, 3.0};
    float *a0 = rand_floats(m), *q0 = new_floats(m), *r0 = rand_floats(m);
    for (int64_t j = 0; j < m; j++)
        q0[j] = (float)rng_unit();
    double *wa = new_doubles(m), *wq = new_doubles(m), *wr = new_doubles(m);
    double *sa_mag = new_doubles(m), *sr = new_doubles(m); /* scales of a and r */
    for (int64_t j = 0; j < m; j++) {
        double nsq = 0;
        for (int64_t c = 0; c < d; c++)
            nsq += (double)W[j * d + c] * W[j * d + c];
        double sa = 0, sq = 0, srr = 0, mag = 0;
        for (int64_t r = 0; r < n; r++) {
            const double fv = f[r * m + j];
            const double dot = -(stats[SAEC_STAT_SST] / 2) * dfn[r * m + j]; /* ⟨W_j, e_r⟩ */
            sa += fv;
            sq += fv > 0;
            srr += fv * fv * nsq + 2 * fv * dot;
            mag += fv * fv * nsq + fabs(2 * fv * dot);
        }
        wa[j] = beta * (double)a0[j] + (1 - (double)beta) * sa / (double)n;
        sa_mag[j] = fabs(beta * (double)a0[j]) + (1 - (double)beta) * sa / (double)n;
        wq[j] = beta * (double)q0[j] + (1 - (double)beta) * sq / (double)n;
        wr[j] = beta * (double)r0[j] + (1 - (double)beta) * srr / (double)n;
        sr[j] = fabs(beta * (double)r0[j]) + (1 - (double)beta) * mag / (double)n;
    }
    float *a = dup_floats(a0, m), *q = dup_floats(q0, m), *r = dup_floats(r0, m);
    OK(SAEC_OP(dev, atm_stats, f, dfn, stats, W, n, m, d, beta, a, q, r));
    CHECK_CLOSE("a", a, wa, sa_mag, m, 1e-9, 1e-6);
    CHECK_CLOSE("q", q, wq, NULL, m, 1e-9, 1e-6);
    CHECK_CLOSE("r", r, wr, sr, m, 1e-9, 1e-6);

    float *a1 = dup_floats(a0, m), *q1 = dup_floats(q0, m), *r1 = dup_floats(r0, m);
    ON_ONE_THREAD(SAEC_OP(dev, atm_stats, f, dfn, stats, W, n, m, d, beta, a1, q1, r1));
    CHECK(same_floats(a, a1, m) && same_floats(q, q1, m) && same_floats(r, r1, m),
          "1-thread result differs");

    /* n = 0: nothing to average; the statistics stay as they are. */
    OK(SAEC_OP(dev, atm_stats, NULL, NULL, stats, W, 0, m, d, beta, a1, q1, r1));
    CHECK(same_floats(a, a1, m) && same_floats(q, q1, m) && same_floats(r, r1, m),
          "an empty batch changed the statistics");
    free(f), free(dfn), free(W), free(a0), free(q0), free(r0), free(wa), free(wq), free(wr),
        free(sa_mag), free(sr), free(a), free(q), free(r), free(a1), free(q1), free(r1);
}

static void test_atm_stats(saec_dev *dev) {
    static const int64_t shapes[][3] = {
        {7, 13, 5}, {1, 1, 1}, {1, 67, 3}, {45, 1, 11}, {257, 515, 19}};
    static const float betas[] = {0.0f, 0.99f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int b = 0; b < 2; b++)
            run_atm_stats_case(dev, shapes[s][0], shapes[s][1], shapes[s][2], betas[b]);
    set_ctx("atm_stats bad arguments");
    float x[4] = {0};
    double st[3] = {0};
    REJECTED(SAEC_OP(dev, atm_stats, x, x, st, x, 2, 2, 1, 0.9f, NULL, x, x));
    REJECTED(SAEC_OP(dev, atm_stats, x, x, NULL, x, 2, 2, 1, 0.9f, x, x, x));
}

/* ---- atm_mask ---- */

/* Naive ATM mask in double -> keep [m]; also the expected number masked, Σ p_j. */
static double atm_mask_ref(const float *a, const float *q, const float *r, int64_t m,
                           const float w[3], float c, float rate, uint64_t seed, uint64_t counter,
                           float *keep) {
    const float *st[3] = {a, q, r};
    double mean[3];
    for (int s = 0; s < 3; s++) {
        double sum = 0;
        for (int64_t j = 0; j < m; j++)
            sum += st[s][j];
        mean[s] = sum / (double)m;
    }
    double *imp = new_doubles(m), im = 0;
    for (int64_t j = 0; j < m; j++) {
        imp[j] = 0;
        for (int s = 0; s < 3; s++)
            if (mean[s] != 0) imp[j] += (double)w[s] * st[s][j] / mean[s];
        im += imp[j] / (double)m;
    }
    double var = 0;
    for (int64_t j = 0; j < m; j++)
        var += (imp[j] - im) * (imp[j] - im) / (double)m;
    const double theta = im + c * sqrt(var);
    double expected = 0;
    for (int64_t j = 0; j < m; j++) {
        keep[j] = 1.0f;
        if (theta > 0 && imp[j] < theta) {
            const double p = 1 - exp(-(double)rate * (theta - imp[j]) / theta);
            expected += p;
            if (saec_hash_uniform(seed, SAEC_RNG_ATM_MASK, counter * (uint64_t)m + (uint64_t)j) < p)
                keep[j] = 0.0f;
        }
    }
    free(imp);
    return expected;
}

enum { ATM_RANDOM, ATM_EQUAL, ATM_ZERO_Q, ATM_ALL_ZERO };

static void run_atm_mask_case(saec_dev *dev, int64_t m, int kind, float c, float rate) {
    set_ctx("atm_mask m=%lld kind=%d c=%g rate=%g", (long long)m, kind, c, rate);
    float *a = new_floats(m), *q = new_floats(m), *r = new_floats(m);
    for (int64_t j = 0; j < m; j++) {
        switch (kind) {
        case ATM_EQUAL: a[j] = 0.3f, q[j] = 0.05f, r[j] = 0.7f; break;
        case ATM_ALL_ZERO: a[j] = q[j] = r[j] = 0.0f; break;
        default:
            a[j] = (float)rng_unit();
            q[j] = kind == ATM_ZERO_Q ? 0.0f : (float)rng_unit() * 0.1f;
            r[j] = (float)(rng_unit() - 0.2); /* some latents hurt the reconstruction */
        }
    }
    const float w[3] = {1.0f / 3, 1.0f / 3, 1.0f / 3};
    const uint64_t seed = 1234;
    float *keep = new_floats(m), *keep2 = new_floats(m), *want = new_floats(m);
    const double expected = atm_mask_ref(a, q, r, m, w, c, rate, seed, 7, want);
    OK(SAEC_OP(dev, atm_mask, a, q, r, m, w, c, rate, seed, 7, keep));
    CHECK(same_floats(keep, want, m), "keep differs from the reference");
    int64_t masked = 0;
    int binary = 1;
    for (int64_t j = 0; j < m; j++) {
        masked += keep[j] == 0.0f;
        binary &= keep[j] == 0.0f || keep[j] == 1.0f;
    }
    CHECK(binary, "keep is not 0/1");
    OK(SAEC_OP(dev, atm_mask, a, q, r, m, w, c, rate, seed, 7, keep2));
    CHECK(same_floats(keep, keep2, m), "same (seed, counter) gave another mask");
    if (kind == ATM_EQUAL || kind == ATM_ALL_ZERO)
        CHECK(masked == 0, "masked %lld", (long long)masked);
    if (kind == ATM_RANDOM || kind == ATM_ZERO_Q) {
        /* About Σ p_j masked: within 5 standard deviations (Σ p(1−p) <= Σ p). */
        CHECK(fabs((double)masked - expected) <= 5 * sqrt(expected) + 1,
              "masked %lld of %lld, expected about %.1f", (long long)masked, (long long)m,
              expected);
        CHECK(masked < m, "every latent masked");
        if (m >= 500) {
            CHECK(masked > 0, "nothing masked (expected about %.1f)", expected);
            OK(SAEC_OP(dev, atm_mask, a, q, r, m, w, c, rate, seed, 8, keep2));
            CHECK(!same_floats(keep, keep2, m), "another counter gave the same mask");
            OK(SAEC_OP(dev, atm_mask, a, q, r, m, w, c, rate, seed + 1, 7, keep2));
            CHECK(!same_floats(keep, keep2, m), "another seed gave the same mask");
        }
    }
    free(a), free(q), free(r), free(keep), free(keep2), free(want);
}

static void test_atm_mask(saec_dev *dev) {
    run_atm_mask_case(dev, 1, ATM_RANDOM, 0.0f, 1.0f); /* one latent: I = θ, never masked */
    run_atm_mask_case(dev, 13, ATM_RANDOM, 0.0f, 1.0f);
    run_atm_mask_case(dev, 1001, ATM_RANDOM, 0.0f, 1.0f);
    run_atm_mask_case(dev, 1001, ATM_RANDOM, 0.5f, 3.0f);  /* higher θ, faster rate */
    run_atm_mask_case(dev, 1001, ATM_RANDOM, -0.5f, 1.0f); /* lower θ */
    run_atm_mask_case(dev, 1001, ATM_ZERO_Q, 0.0f, 1.0f);  /* q has mean 0: contributes 0 */
    run_atm_mask_case(dev, 1001, ATM_EQUAL, 0.0f, 1.0f);   /* all importances equal */
    run_atm_mask_case(dev, 1001, ATM_EQUAL, 1.0f, 5.0f);
    run_atm_mask_case(dev, 1001, ATM_ALL_ZERO, 0.0f, 1.0f); /* θ = 0: no masking */
    run_atm_mask_case(dev, 40000, ATM_RANDOM, 0.0f, 1.0f);  /* the parallel path */

    set_ctx("atm_mask bad arguments");
    float x[2] = {0};
    const float w[3] = {1, 1, 1};
    REJECTED(SAEC_OP(dev, atm_mask, x, x, x, 0, w, 0.0f, 1.0f, 1, 0, x));
    REJECTED(SAEC_OP(dev, atm_mask, x, x, x, 2, NULL, 0.0f, 1.0f, 1, 0, x));
}

/* ---- scale_cols ---- */

static void test_scale_cols(saec_dev *dev) {
    static const int64_t shapes[][2] = {{7, 13}, {1, 1}, {1, 45}, {33, 1}, {301, 257}, {0, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], m = shapes[s][1];
        set_ctx("scale_cols n=%lld m=%lld", (long long)n, (long long)m);
        float *x = rand_floats(n * m), *scale = rand_floats(m), *want = new_floats(n * m);
        for (int64_t j = 0; j < m; j++)
            if (rng_int(3) == 0) scale[j] = (float)rng_int(2); /* a keep mask's 0 and 1 */
        for (int64_t i = 0; i < n * m; i++)
            want[i] = x[i] * scale[i % m];
        OK(SAEC_OP(dev, scale_cols, x, n, m, scale));
        CHECK(same_floats(x, want, n * m), "x differs from the reference (exact)");
        free(x), free(scale), free(want);
    }
    set_ctx("scale_cols bad arguments");
    float x[2] = {0};
    REJECTED(SAEC_OP(dev, scale_cols, x, 1, 2, NULL));
    REJECTED(SAEC_OP(dev, scale_cols, x, 1, 0, x));
}

/* ---- silu, silu_backward (TIDE adaln's MLP) ---- */

static double silu_d(double v) { return v / (1.0 + exp(-v)); }
static double sigmoid_d(double v) { return 1.0 / (1.0 + exp(-v)); }

/* Inputs for silu: uniform in [-8, 8), some in [-100, 100), and fixed special values: ±0, the
   edges of σ's float range (e^−x overflows below about −88.7), and the zero of silu's slope. */
static float *silu_inputs(int64_t n) {
    static const float special[] = {0.0f,   -0.0f, 1.0f,   -1.0f,    -1.2784645f, 17.0f,
                                    -17.0f, 30.0f, -87.0f, -88.5f,   -89.0f,      -100.0f,
                                    100.0f, 1e-8f, -1e-8f, -103.97f, 88.0f,       3.5e-39f};
    const int64_t n_special = (int64_t)(sizeof special / sizeof special[0]);
    float *x = new_floats(n);
    for (int64_t i = 0; i < n; i++) {
        if (i < n_special)
            x[i] = special[i];
        else
            x[i] = rng_int(8) == 0 ? 100.0f * rng_sym() : 8.0f * rng_sym();
    }
    return x;
}

static void test_silu(saec_dev *dev) {
    static const int64_t sizes[] = {18, 1, 7, 1001, 100003}; /* the last: the parallel path */
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const int64_t n = sizes[t];
        set_ctx("silu/silu_backward n=%lld", (long long)n);
        float *x = silu_inputs(n), *dy = rand_floats(n);
        float *y = new_floats(n), *dx = new_floats(n);
        OK(SAEC_OP(dev, silu, x, n, y));
        OK(SAEC_OP(dev, silu_backward, x, dy, n, dx));

        /* silu against the double formula: a few float roundings and expf's error */
        double *want = new_doubles(n), *scale = new_doubles(n);
        for (int64_t i = 0; i < n; i++) {
            want[i] = silu_d(x[i]);
            scale[i] = fabs((double)x[i]) * sigmoid_d(x[i]);
        }
        CHECK_CLOSE("silu y", y, want, scale, n, 1e-36, 1e-6);

        /* silu_backward against dy times a central finite difference of silu (double, h 1e-4:
           truncation ~1e-9 relative), and against the analytic formula. The scale is the size of
           the terms, |dy| σ (1 + |x| (1 − σ)): near silu's minimum the float evaluation cancels,
           which a tolerance relative to the result alone would not allow. */
        double *fd = new_doubles(n), *exact = new_doubles(n);
        for (int64_t i = 0; i < n; i++) {
            const double v = x[i], h = 1e-4, s = sigmoid_d(v);
            fd[i] = dy[i] * (silu_d(v + h) - silu_d(v - h)) / (2 * h);
            exact[i] = dy[i] * s * (1.0 + v * (1.0 - s));
            scale[i] = fabs((double)dy[i]) * s * (1.0 + fabs(v) * (1.0 - s));
        }
        CHECK_CLOSE("silu_backward dx vs finite differences", dx, fd, scale, n, 1e-34, 1e-5);
        CHECK_CLOSE("silu_backward dx vs the formula", dx, exact, scale, n, 1e-34, 1e-6);

        /* in place: y aliasing x, dx aliasing dy give the same bits */
        float *xi = dup_floats(x, n), *gi = dup_floats(dy, n);
        OK(SAEC_OP(dev, silu_backward, x, gi, n, gi));
        CHECK(same_floats(gi, dx, n), "silu_backward in place (dx = dy) differs");
        OK(SAEC_OP(dev, silu, xi, n, xi));
        CHECK(same_floats(xi, y, n), "silu in place (y = x) differs");

        free(x), free(dy), free(y), free(dx), free(want), free(scale), free(fd), free(exact),
            free(xi), free(gi);
    }
    set_ctx("silu bad arguments");
    float v[2] = {0};
    OK(SAEC_OP(dev, silu, NULL, 0, NULL));
    REJECTED(SAEC_OP(dev, silu, v, -1, v));
    REJECTED(SAEC_OP(dev, silu, v, 2, NULL));
    REJECTED(SAEC_OP(dev, silu_backward, v, NULL, 2, v));
    REJECTED(SAEC_OP(dev, silu_backward, v, v, -3, v));
}

int main(void) {
    rng_seed(0x5AEC7A41A7500001ull); /* this test's inputs since it was written */
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(cpu): %s\n", saec_error_message());
        return 1;
    }
    printf("device: %s\n", dev->name);

    test_batch_topk(dev);
    test_jumprelu(dev);
    test_jumprelu_backward(dev);
    test_l1_penalty(dev);
    test_atm_stats(dev);
    test_atm_mask(dev);
    test_scale_cols(dev);
    test_silu(dev);

    saec_dev_close(dev);
    printf("%d checks, %d failure(s)\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
