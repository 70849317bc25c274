/* The CPU backend's SAE-variant ops beyond their op cases (tests/op_cases_variants.c, run
 * against naive references by test_op_cases; track_fired_dense is an op case of
 * op_cases_sparse.c):
 *   - every variant op case (batch_topk, jumprelu, jumprelu_backward, l1_penalty, atm_stats,
 *     atm_mask, scale_cols, silu, silu_backward) bitwise the same on one thread and on all
 *     threads, at each of its shapes but the SAE-sized ones;
 *   - jumprelu_backward's θ gradient has the sign that lowers the loss;
 *   - atm_mask's keep is 0/1, masks some but not all latents, depends on the seed and the
 *     counter, and masks nothing when the importances are all equal or all zero;
 *   - silu_backward against a central finite difference of silu (a gradient check).
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
#include "op_harness.h"
#include "saec/device.h"
#include "saec/ops.h"
#include "test_random.h"

/* Bitwise equality of two float arrays [n]. */
static int same_floats(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* ---- the op cases on one thread and on all threads ---- */

/* Every compared output of case c at shape s, from the same inputs, with the CPU's threads and
   on one thread: the same bits (reductions over rows run per column block, rows in order;
   reductions over latents are serial). */
static void thread_case(saec_dev *dev, const op_case *c, const op_shape *s) {
    op_inputs in;
    op_label(c, s);
    op_inputs_make(c, s, &in);
    void *base[2][OP_MAX_BUFS], *view[2][OP_MAX_BUFS];
    const int threads = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        op_upload(dev, c, &in, base[t], view[t]);
        omp_set_num_threads(t ? 1 : threads);
        OK(c->call(dev, s, view[t]));
    }
    omp_set_num_threads(threads);
    for (int i = 0; i < c->n_bufs; i++) {
        if (!op_compared(&in.b[i])) continue;
        void *all = op_download(dev, &in.b[i], view[0][i]);
        void *one = op_download(dev, &in.b[i], view[1][i]);
        const int64_t e = op_first_diff(&in.b[i], all, one);
        CHECK(e < 0, "%s: one thread differs at [%lld] (%d threads)", in.b[i].name, (long long)e,
              threads);
        free(all), free(one);
    }
    op_free(dev, c, base[0]);
    op_free(dev, c, base[1]);
    op_inputs_free(&in);
}

static void test_thread_counts(saec_dev *dev) {
    static const op_case *const cases[] = {
        &op_case_batch_topk, &op_case_jumprelu,  &op_case_jumprelu_backward,
        &op_case_l1_penalty, &op_case_atm_stats, &op_case_atm_mask,
        &op_case_scale_cols, &op_case_silu,      &op_case_silu_backward};
    op_harness_quick = 1; /* the SAE-sized shapes: test_op_cases runs them once */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const op_shape *shapes;
        const int ns = op_shapes_of(cases[i], &shapes);
        for (int k = 0; k < ns; k++)
            thread_case(dev, cases[i], &shapes[k]);
    }
}

/* ---- jumprelu_backward: the sign of the θ gradient ---- */

/* With only the L0 term (df = 0, l0_coef > 0) raising θ lowers the loss, so dlog_theta < 0
   where some pre is in the window, 0 elsewhere. With only a positive df (the loss wants smaller
   f) and l0_coef = 0, raising θ also helps: dlog_theta < 0 there too. */
static void jumprelu_backward_signs(saec_dev *dev, int64_t n, int64_t m, float bw) {
    set_ctx("jumprelu_backward signs n=%lld m=%lld bandwidth=%g", (long long)n, (long long)m, bw);
    float *log_theta = new_floats(m), *th = new_floats(m);
    for (int64_t j = 0; j < m; j++) {
        log_theta[j] = (float)(-2.0 * rng_unit());
        th[j] = expf(log_theta[j]);
    }
    float *pre = new_floats(n * m); /* within ±1.5 bandwidths of θ: a third in the window */
    for (int64_t i = 0; i < n * m; i++)
        pre[i] = th[i % m] + 1.5f * bw * rng_sym();
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
    free(log_theta), free(th), free(pre), free(g), free(dl);
}

static void test_jumprelu_backward_signs(saec_dev *dev) {
    jumprelu_backward_signs(dev, 7, 13, 0.05f);
    jumprelu_backward_signs(dev, 1, 1, 0.05f);
    jumprelu_backward_signs(dev, 1, 65, 0.001f);
    jumprelu_backward_signs(dev, 37, 1, 0.2f);
    jumprelu_backward_signs(dev, 301, 259, 0.001f);
}

/* ---- atm_mask: what the mask does with the seed, the counter and the statistics ---- */

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
    float *keep = new_floats(m), *keep2 = new_floats(m);
    OK(SAEC_OP(dev, atm_mask, a, q, r, m, w, c, rate, seed, 7, keep));
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
        CHECK(masked < m, "every latent masked");
        if (m >= 500) {
            CHECK(masked > 0, "nothing masked");
            OK(SAEC_OP(dev, atm_mask, a, q, r, m, w, c, rate, seed, 8, keep2));
            CHECK(!same_floats(keep, keep2, m), "another counter gave the same mask");
            OK(SAEC_OP(dev, atm_mask, a, q, r, m, w, c, rate, seed + 1, 7, keep2));
            CHECK(!same_floats(keep, keep2, m), "another seed gave the same mask");
        }
    }
    free(a), free(q), free(r), free(keep), free(keep2);
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
    run_atm_mask_case(dev, 40000, ATM_RANDOM, 0.0f, 1.0f);
}

/* ---- silu_backward: a finite-difference gradient check ---- */

static double silu_d(double v) { return v / (1.0 + exp(-v)); }
static double sigmoid_d(double v) { return 1.0 / (1.0 + exp(-v)); }

/* Inputs: uniform in [-8, 8), some in [-100, 100), and fixed special values: ±0, the edges of
   σ's float range (e^−x overflows below about −88.7), and the zero of silu's slope. */
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

/* dx against dy times a central finite difference of silu (double, h 1e-4: truncation ~1e-9
   relative). The scale is the size of the terms, |dy| σ (1 + |x| (1 − σ)): near silu's minimum
   the float evaluation cancels, which a tolerance relative to the result alone would not allow. */
static void test_silu_gradient(saec_dev *dev) {
    static const int64_t sizes[] = {18, 1, 7, 1001, 100003};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const int64_t n = sizes[t];
        set_ctx("silu_backward finite differences n=%lld", (long long)n);
        float *x = silu_inputs(n), *dy = rand_floats(n), *dx = new_floats(n);
        OK(SAEC_OP(dev, silu_backward, x, dy, n, dx));
        double *fd = new_doubles(n), *scale = new_doubles(n);
        for (int64_t i = 0; i < n; i++) {
            const double v = x[i], h = 1e-4, s = sigmoid_d(v);
            fd[i] = dy[i] * (silu_d(v + h) - silu_d(v - h)) / (2 * h);
            scale[i] = fabs((double)dy[i]) * s * (1.0 + fabs(v) * (1.0 - s));
        }
        CHECK_CLOSE("silu_backward dx vs finite differences", dx, fd, scale, n, 1e-34, 1e-5);
        free(x), free(dy), free(dx), free(fd), free(scale);
    }
}

int main(void) {
    rng_seed(0x5AEC7A41A7500001ull); /* this test's inputs since it was written */
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(cpu): %s\n", saec_error_message());
        return 1;
    }
    printf("device: %s\n", dev->name);

    test_thread_counts(dev);
    test_jumprelu_backward_signs(dev);
    test_atm_mask(dev);
    test_silu_gradient(dev);

    saec_dev_close(dev);
    printf("%d checks, %d failure(s)\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
