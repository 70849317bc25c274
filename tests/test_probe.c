/* The linear probe (host/train/probe.h) on synthetic features: separable classes are found
   (mAP and accuracy ~1), random labels score at chance (mAP ≈ prevalence, accuracy ≈ 1/K), a
   class without train positives gets the documented constant score, the single-label path
   predicts what liblinear's own multi-class one-vs-rest predicts, the thread count changes
   nothing, and every bad argument fails with its documented code. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linear.h>

#include "check.h"
#include "probe.h"
#include "rng.h"

enum { DIM = 8 };

typedef struct {
    int64_t n_train, n_test;
    int K;
    float *x;   /* [n_train + n_test, DIM]: train rows first */
    uint8_t *y; /* [n_train + n_test, K] */
} dataset;

static void dataset_free(dataset *d) {
    free(d->x);
    free(d->y);
}

/* Gaussian blobs: row i of class c (single-label: one class; multi-label: each class on with
   probability prevalence) is noise N(0, 1) plus `separation` along axis k for each class k on.
   separation 0: labels carry no information. */
static dataset make_data(int64_t n_train, int64_t n_test, int K, int multi_label, double separation,
                         double prevalence, uint64_t seed) {
    dataset d = {n_train, n_test, K, NULL, NULL};
    const int64_t n = n_train + n_test;
    d.x = malloc(sizeof(float) * (size_t)(n * DIM));
    d.y = calloc((size_t)(n * K), 1);
    saec_rng rng;
    saec_rng_init(&rng, seed, 99, 0);
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < DIM; j++)
            d.x[i * DIM + j] = (float)saec_rng_normal(&rng);
        if (multi_label) {
            for (int k = 0; k < K; k++)
                d.y[i * K + k] = saec_rng_uniform(&rng) < prevalence;
        } else {
            d.y[i * K + (int)(saec_rng_u64(&rng) % (uint64_t)K)] = 1;
        }
        for (int k = 0; k < K; k++)
            if (d.y[i * K + k]) d.x[i * DIM + k] += (float)separation;
    }
    return d;
}

static int fit(const dataset *d, int multi_label, const probe_options *opt, probe_result *r) {
    return probe_fit_score(d->x, d->y, d->n_train, d->x + d->n_train * DIM,
                           d->y + d->n_train * d->K, d->n_test, DIM, d->K, multi_label, opt, r);
}

/* The C of the search is the first (smallest) of the grid with the best score. */
static void check_chosen_c(const probe_result *r) {
    int best = 0;
    for (int g = 1; g < r->n_grid; g++)
        if (r->cv_score[g] > r->cv_score[best]) best = g;
    CHECK(r->n_grid == PROBE_C_GRID_SIZE && r->c_chosen == PROBE_C_GRID[best] &&
              r->c_grid[best] == PROBE_C_GRID[best],
          "chose C %g, the grid's best is %g", r->c_chosen, PROBE_C_GRID[best]);
}

static void separable(void) {
    probe_result r;
    set_ctx("separable multi-label");
    dataset d = make_data(400, 300, 3, 1, 8.0, 0.4, 1);
    OK(fit(&d, 1, NULL, &r));
    CHECK(r.micro_map > 0.999 && r.macro_map > 0.999, "micro %g macro %g", r.micro_map,
          r.macro_map);
    CHECK(isnan(r.accuracy) && isnan(r.macro_f1));
    CHECK(r.n_unfit == 0);
    check_chosen_c(&r);
    CHECK(r.n_train == 400 && r.n_test == 300 && r.multi_label == 1 && r.n_classes == 3);
    for (int k = 0; k < 3; k++)
        CHECK(r.per_class_ap[k] > 0.999, "class %d AP %g", k, r.per_class_ap[k]);
    CHECK(isnan(r.per_class_ap[3]));
    dataset_free(&d);

    set_ctx("separable single-label");
    d = make_data(400, 300, 4, 0, 8.0, 0, 2);
    OK(fit(&d, 0, NULL, &r));
    CHECK(r.accuracy > 0.99 && r.macro_f1 > 0.99, "accuracy %g F1 %g", r.accuracy, r.macro_f1);
    CHECK(isnan(r.micro_map) && isnan(r.macro_map));
    check_chosen_c(&r);
    dataset_free(&d);
}

/* Standardisation: rescaling and shifting columns (informative ones shrunk 1e-4, noise grown
   1e3) leaves the probe as it was. */
static void scale_invariant(void) {
    set_ctx("standardisation");
    dataset d = make_data(300, 300, 3, 1, 1.5, 0.4, 9);
    probe_options o = {.c = 1};
    probe_result ref, r;
    OK(fit(&d, 1, &o, &ref));
    for (int64_t i = 0; i < d.n_train + d.n_test; i++)
        for (int j = 0; j < DIM; j++)
            d.x[i * DIM + j] = d.x[i * DIM + j] * (j < 3 ? 1e-4f : 1e3f) + 50.0f;
    OK(fit(&d, 1, &o, &r));
    CHECK(fabs(r.micro_map - ref.micro_map) < 1e-3 && fabs(r.macro_map - ref.macro_map) < 1e-3,
          "micro %g → %g, macro %g → %g", ref.micro_map, r.micro_map, ref.macro_map, r.macro_map);
    CHECK(ref.micro_map > 0.6, "micro %g: the case should be informative (prevalence 0.4)",
          ref.micro_map);
    dataset_free(&d);
}

static void chance(void) {
    probe_result r;
    set_ctx("random multi-label");
    dataset d = make_data(600, 2000, 4, 1, 0.0, 0.3, 3);
    OK(fit(&d, 1, NULL, &r));
    /* Ranking by noise: AP ≈ prevalence (0.3) within sampling error. */
    CHECK(fabs(r.micro_map - 0.3) < 0.05 && fabs(r.macro_map - 0.3) < 0.05, "micro %g macro %g",
          r.micro_map, r.macro_map);
    dataset_free(&d);

    set_ctx("random single-label");
    d = make_data(600, 2000, 4, 0, 0.0, 0, 4);
    OK(fit(&d, 0, NULL, &r));
    CHECK(fabs(r.accuracy - 0.25) < 0.05, "accuracy %g", r.accuracy);
    dataset_free(&d);
}

/* A class with no positive train row is scored by its constant log-odds: its AP is exactly its
   test prevalence (all scores tied), the other classes are untouched. */
static void unfit_class(void) {
    set_ctx("class without train positives");
    dataset d = make_data(300, 200, 3, 1, 8.0, 0.4, 5);
    for (int64_t i = 0; i < d.n_train; i++)
        d.y[i * 3 + 2] = 0;
    int64_t test_pos = 0;
    for (int64_t i = d.n_train; i < d.n_train + d.n_test; i++)
        test_pos += d.y[i * 3 + 2];
    probe_result r;
    OK(fit(&d, 1, NULL, &r));
    CHECK(r.n_unfit == 1, "n_unfit %d", r.n_unfit);
    CHECK(fabs(r.per_class_ap[2] - (double)test_pos / (double)d.n_test) < 1e-12,
          "AP %g, test prevalence %g", r.per_class_ap[2], (double)test_pos / (double)d.n_test);
    CHECK(r.per_class_ap[0] > 0.999 && r.per_class_ap[1] > 0.999);
    dataset_free(&d);
}

/* Fixed C, thread counts 1 and 2, and the same seed: identical results, bit for bit. */
static void deterministic(void) {
    set_ctx("determinism");
    dataset d = make_data(300, 200, 3, 1, 1.0, 0.3, 6);
    probe_options o1 = {.seed = 11, .n_threads = 1}, o2 = {.seed = 11, .n_threads = 2};
    probe_result a, b;
    OK(fit(&d, 1, &o1, &a));
    OK(fit(&d, 1, &o2, &b));
    CHECK(a.micro_map == b.micro_map && a.macro_map == b.macro_map && a.c_chosen == b.c_chosen);
    CHECK(memcmp(a.cv_score, b.cv_score, sizeof a.cv_score) == 0);
    probe_options fixed = {.c = 0.5};
    OK(fit(&d, 1, &fixed, &a));
    CHECK(a.n_grid == 0 && a.c_chosen == 0.5);
    dataset_free(&d);
}

/* The single-label path against liblinear's own multi-class one-vs-rest (train + predict) on
   the same standardised features and C: the same predictions, so the same accuracy. */
static void matches_liblinear_multiclass(void) {
    set_ctx("single-label vs liblinear multi-class");
    enum { K = 3 };
    dataset d = make_data(300, 400, K, 0, 1.2, 0, 7);
    const int64_t n = d.n_train, n_test = d.n_test;
    double mean[DIM], std[DIM];
    for (int j = 0; j < DIM; j++) {
        double s = 0, v = 0;
        for (int64_t i = 0; i < n; i++)
            s += d.x[i * DIM + j];
        mean[j] = s / (double)n;
        for (int64_t i = 0; i < n; i++)
            v += (d.x[i * DIM + j] - mean[j]) * (d.x[i * DIM + j] - mean[j]);
        std[j] = sqrt(v / (double)n);
    }
    struct feature_node *nodes = malloc(sizeof *nodes * (size_t)((n + n_test) * (DIM + 2)));
    struct feature_node **rows = malloc(sizeof *rows * (size_t)(n + n_test));
    double *y = malloc(sizeof *y * (size_t)n);
    for (int64_t i = 0; i < n + n_test; i++) {
        struct feature_node *r = rows[i] = nodes + i * (DIM + 2);
        for (int j = 0; j < DIM; j++)
            r[j] = (struct feature_node){j + 1, (d.x[i * DIM + j] - mean[j]) / std[j]};
        r[DIM] = (struct feature_node){DIM + 1, 1.0};
        r[DIM + 1].index = -1;
        for (int k = 0; k < K && i < n; k++)
            if (d.y[i * K + k]) y[i] = k;
    }
    struct problem prob = {.l = (int)n, .n = DIM + 1, .y = y, .x = rows, .bias = 1.0};
    struct parameter param = {.solver_type = L2R_LR, .eps = 1e-3, .C = 1.0};
    struct model *m = train(&prob, &param);
    int64_t correct = 0;
    for (int64_t i = n; i < n + n_test; i++)
        correct += d.y[i * K + (int)predict(m, rows[i])] == 1;
    free_and_destroy_model(&m);

    probe_options o = {.c = 1.0};
    probe_result r;
    OK(fit(&d, 0, &o, &r));
    const double want = (double)correct / (double)n_test;
    /* Both solve the same binary problems to the same tolerance, rows in another order: allow
       one test row to fall the other way. */
    CHECK(fabs(r.accuracy - want) <= 1.0 / (double)n_test + 1e-12, "probe %g, liblinear %g",
          r.accuracy, want);
    CHECK(r.accuracy > 0.5 && r.accuracy < 0.95, "accuracy %g: the case should not be trivial",
          r.accuracy);
    free(nodes);
    free(rows);
    free(y);
    dataset_free(&d);
}

#define EXPECT_FAIL(code, call)                                                                    \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == (code), "%s returned %d, expected %d", #call, rc_, code);                     \
        CHECK(saec_error_message()[0] != '\0', "%s: no message", #call);                           \
        saec_error_clear();                                                                        \
    } while (0)

static void bad_arguments(void) {
    set_ctx("bad arguments");
    dataset d = make_data(40, 20, 2, 1, 4.0, 0.5, 8);
    const float *xt = d.x + 40 * DIM;
    const uint8_t *yt = d.y + 40 * 2;
    probe_result r;
    EXPECT_FAIL(SAEC_ERR_DATA, probe_fit_score(d.x, d.y, 40, xt, yt, 20, 0, 2, 1, NULL, &r));
    EXPECT_FAIL(SAEC_ERR_DATA, probe_fit_score(d.x, d.y, 0, xt, yt, 20, DIM, 2, 1, NULL, &r));
    EXPECT_FAIL(SAEC_ERR_DATA, probe_fit_score(d.x, d.y, 40, xt, yt, 0, DIM, 2, 1, NULL, &r));
    EXPECT_FAIL(SAEC_ERR_DATA, probe_fit_score(d.x, d.y, 40, xt, yt, 20, DIM, 0, 1, NULL, &r));
    EXPECT_FAIL(SAEC_ERR_DATA, probe_fit_score(d.x, d.y, 40, xt, yt, 20, DIM, 65, 1, NULL, &r));
    EXPECT_FAIL(SAEC_ERR_OTHER, probe_fit_score(NULL, d.y, 40, xt, yt, 20, DIM, 2, 1, NULL, &r));
    probe_options neg_c = {.c = -1}, one_fold = {.n_folds = 1}, many_folds = {.n_folds = 41};
    EXPECT_FAIL(SAEC_ERR_USAGE, fit(&d, 1, &neg_c, &r));
    EXPECT_FAIL(SAEC_ERR_USAGE, fit(&d, 1, &one_fold, &r));
    EXPECT_FAIL(SAEC_ERR_USAGE, fit(&d, 1, &many_folds, &r));
    /* A non-finite feature, a label of 2. */
    d.x[3 * DIM + 1] = NAN;
    EXPECT_FAIL(SAEC_ERR_DATA, fit(&d, 1, NULL, &r));
    d.x[3 * DIM + 1] = 0;
    d.y[5 * 2] = 2;
    EXPECT_FAIL(SAEC_ERR_DATA, fit(&d, 1, NULL, &r));
    d.y[5 * 2] = 1;
    d.y[5 * 2 + 1] = 1;
    /* Single-label: a row with two classes, then train rows of one class only. */
    EXPECT_FAIL(SAEC_ERR_DATA, fit(&d, 0, NULL, &r));
    for (int64_t i = 0; i < 60; i++) {
        d.y[i * 2] = 1;
        d.y[i * 2 + 1] = 0;
    }
    EXPECT_FAIL(SAEC_ERR_DATA, fit(&d, 0, NULL, &r));
    /* The same labels multi-label: class 0 all positive, class 1 all negative: both unfit, no
       positive test row for class 1 (NaN), and no error. */
    OK(fit(&d, 1, NULL, &r));
    CHECK(r.n_unfit == 2 && isnan(r.per_class_ap[1]) && r.per_class_ap[0] == 1.0);
    dataset_free(&d);
}

int main(void) {
    separable();
    scale_invariant();
    chance();
    unfit_class();
    deterministic();
    matches_liblinear_multiclass();
    bad_arguments();
    return check_summary("test_probe");
}
