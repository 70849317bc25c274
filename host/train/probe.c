/* The linear probe (probe.h): standardised features, one binary liblinear L2R_LR fit per class,
   C chosen by k-fold cross-validation, test rows scored with probe_metrics.

   All rows, train then test, share one array of liblinear feature rows, and every fit writes
   its decision values into one score matrix indexed by that row number: a cross-validation fold
   fills the out-of-fold train rows, the final fit the test rows. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linear.h>
#include <omp.h>

#include "probe.h"
#include "probe_metrics.h"
#include "rng.h"
#include "saec/saec.h"

const double PROBE_C_GRID[PROBE_C_GRID_SIZE] = {0.01, 0.1, 1, 10, 100};

enum { TASK_OK = 0, TASK_NO_MEMORY, TASK_REFUSED };

typedef struct {
    int64_t n_train, n_test, dim;
    int n_classes, multi_label;
    double eps;
    const uint8_t *y_train;     /* [n_train, K] */
    struct feature_node **rows; /* [n_train + n_test]: each dim features, the bias, index −1 */
    double *scores;             /* [n_train + n_test, K] decision values */
} probe_ctx;

static void print_nothing(const char *s) { (void)s; }
static void print_stderr(const char *s) { fputs(s, stderr); }

/* ---- checks ---------------------------------------------------------------------------------- */

static int check_split(const float *x, const uint8_t *y, int64_t n, int64_t dim, int n_classes,
                       int multi_label, const char *split) {
    if (n < 1)
        return saec_fail(SAEC_ERR_DATA,
                         "the probe needs rows of both splits (split 0 train, 2 test)",
                         "no %s rows to probe", split);
    if (n >= INT_MAX)
        return saec_fail(SAEC_ERR_DATA, "probe a subset of the rows",
                         "%" PRId64 " %s rows: liblinear takes fewer than %d", n, split, INT_MAX);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < dim; j++)
            if (!isfinite(x[i * dim + j]))
                return saec_fail(SAEC_ERR_DATA, "check the encoder that made the features",
                                 "%s row %" PRId64
                                 " has a non-finite feature %g at column %" PRId64,
                                 split, i, (double)x[i * dim + j], j);
        int set = 0;
        for (int k = 0; k < n_classes; k++) {
            const uint8_t v = y[i * n_classes + k];
            if (v > 1)
                return saec_fail(SAEC_ERR_DATA, "labels are multi-hot: 0 or 1 per class",
                                 "%s row %" PRId64 " has label %d for class %d", split, i, v, k);
            set += v;
        }
        if (!multi_label && set != 1)
            return saec_fail(SAEC_ERR_DATA,
                             "single-label rows hold exactly one class; probe multi-hot labels "
                             "as multi-label",
                             "%s row %" PRId64 " has %d classes set", split, i, set);
    }
    return SAEC_OK;
}

static int check_args(const float *x_train, const uint8_t *y_train, int64_t n_train,
                      const float *x_test, const uint8_t *y_test, int64_t n_test, int64_t dim,
                      int n_classes, int multi_label, const probe_options *opt, probe_result *out) {
    if (!x_train || !y_train || !x_test || !y_test || !out)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: probe_fit_score given a NULL array");
    if (n_classes < 1 || n_classes > PROBE_MAX_CLASSES)
        return saec_fail(SAEC_ERR_DATA, "the probe takes 1 to 64 classes", "%d classes to probe",
                         n_classes);
    if (dim < 1 || dim >= INT_MAX)
        return saec_fail(SAEC_ERR_DATA, "check the embeddings file",
                         "features of width %" PRId64 " to probe", dim);
    if (opt->c < 0 || isnan(opt->c))
        return saec_fail(SAEC_ERR_USAGE, "pass C > 0, or 0 to choose it by cross-validation",
                         "probe C = %g", opt->c);
    if (opt->c == 0 && (opt->n_folds < 2 || opt->n_folds > PROBE_MAX_FOLDS ||
                        (n_train > 0 && opt->n_folds > n_train)))
        return saec_fail(SAEC_ERR_USAGE, "use 2 to 20 folds, at most one per train row, or pass C",
                         "%d folds for the C search over %" PRId64 " train rows", opt->n_folds,
                         n_train);
    if (opt->eps < 0 || isnan(opt->eps))
        return saec_fail(SAEC_ERR_USAGE, "pass a tolerance > 0, or 0 for the default",
                         "probe tolerance %g", opt->eps);
    SAEC_TRY(check_split(x_train, y_train, n_train, dim, n_classes, multi_label, "train"));
    SAEC_TRY(check_split(x_test, y_test, n_test, dim, n_classes, multi_label, "test"));
    if (!multi_label) {
        int seen = 0, first = -1;
        for (int64_t i = 0; i < n_train && !seen; i++)
            for (int k = 0; k < n_classes; k++)
                if (y_train[i * n_classes + k]) {
                    if (first < 0) first = k;
                    seen = k != first;
                }
        if (!seen)
            return saec_fail(SAEC_ERR_DATA, "a classifier needs two classes to tell apart",
                             "every train row is class %d", first);
    }
    return SAEC_OK;
}

/* ---- features -------------------------------------------------------------------------------- */

/* The rows of x [n, dim] standardised by mean, std [dim] as liblinear rows into nodes
   [n, dim + 2] (features 1..dim, the bias feature dim + 1, the terminator), pointed at by rows. */
static void build_rows(const float *x, int64_t n, int64_t dim, const double *mean,
                       const double *std, struct feature_node *nodes, struct feature_node **rows) {
    for (int64_t i = 0; i < n; i++) {
        struct feature_node *r = nodes + i * (dim + 2);
        rows[i] = r;
        for (int64_t j = 0; j < dim; j++) {
            r[j].index = (int)j + 1;
            r[j].value = ((double)x[i * dim + j] - mean[j]) / std[j];
        }
        r[dim].index = (int)dim + 1;
        r[dim].value = 1.0; /* liblinear's bias feature (problem.bias = 1) */
        r[dim + 1].index = -1;
    }
}

/* The train rows' mean and population std per feature [dim]; a constant feature gets std 1. */
static void train_moments(const float *x, int64_t n, int64_t dim, double *mean, double *std) {
    for (int64_t j = 0; j < dim; j++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++)
            s += x[i * dim + j];
        mean[j] = s / (double)n;
        double v = 0;
        for (int64_t i = 0; i < n; i++) {
            const double d = x[i * dim + j] - mean[j];
            v += d * d;
        }
        std[j] = v > 0 ? sqrt(v / (double)n) : 1.0;
    }
}

/* ---- one fit --------------------------------------------------------------------------------- */

/* Fits class k on the train rows fit_idx [m] at C and writes the decision values of the rows
   eval_idx [n_eval] (row numbers of ctx->rows) to ctx->scores[row, k]. warm (may be NULL) [dim
   + 1]: the weights of the same problem at another C when *has_warm, to start from (the C
   search's warm start, as liblinear's own find_parameters does); the new weights are left there.
   Returns a TASK_ code. */
static int fit_class(const probe_ctx *ctx, const int64_t *fit_idx, int64_t m,
                     const int64_t *eval_idx, int64_t n_eval, int k, double c, double *warm,
                     int *has_warm) {
    const int K = ctx->n_classes;
    int64_t pos = 0;
    for (int64_t i = 0; i < m; i++)
        pos += ctx->y_train[fit_idx[i] * K + k];
    if (pos == 0 || pos == m) { /* one-sided: the intercept-only log-odds (probe.h) */
        const double constant = log(((double)pos + 0.5) / ((double)(m - pos) + 0.5));
        for (int64_t i = 0; i < n_eval; i++)
            ctx->scores[eval_idx[i] * K + k] = constant;
        return TASK_OK;
    }
    double *y = malloc((size_t)m * sizeof *y);               /* [m] ±1 */
    struct feature_node **x = malloc((size_t)m * sizeof *x); /* [m] */
    if (!y || !x) {
        free(y);
        free(x);
        return TASK_NO_MEMORY;
    }
    for (int64_t i = 0; i < m; i++) {
        y[i] = ctx->y_train[fit_idx[i] * K + k] ? 1.0 : -1.0;
        x[i] = ctx->rows[fit_idx[i]];
    }
    struct problem prob = {.l = (int)m, .n = (int)ctx->dim + 1, .y = y, .x = x, .bias = 1.0};
    struct parameter param = {.solver_type = L2R_LR, .eps = ctx->eps, .C = c};
    if (warm && *has_warm) param.init_sol = warm; /* same rows, so the same orientation */
    int rc = TASK_REFUSED;
    if (!check_parameter(&prob, &param)) {
        struct model *model = train(&prob, &param);
        if (model) {
            if (warm) {
                memcpy(warm, model->w, (size_t)(ctx->dim + 1) * sizeof *warm);
                *has_warm = 1;
            }
            /* The decision value is for model->label[0]: +1 since liblinear 2.0 (it puts +1
               first in a ±1 problem), the first label met in older versions. */
            const double sign = model->label[0] == 1 ? 1.0 : -1.0;
            for (int64_t i = 0; i < n_eval; i++) {
                double dec;
                predict_values(model, ctx->rows[eval_idx[i]], &dec);
                ctx->scores[eval_idx[i] * K + k] = sign * dec;
            }
            free_and_destroy_model(&model);
            rc = TASK_OK;
        }
    }
    free(y);
    free(x);
    return rc;
}

/* The first failed task (in task order, so the report does not depend on threads) as an error. */
static int report_tasks(const int *status, int64_t n_tasks, const char *what) {
    for (int64_t t = 0; t < n_tasks; t++) {
        if (status[t] == TASK_NO_MEMORY)
            return saec_fail(SAEC_ERR_OTHER, "probe fewer rows", "out of memory fitting %s", what);
        if (status[t] == TASK_REFUSED)
            return saec_fail(SAEC_ERR_OTHER, NULL, "internal: liblinear refused the %s", what);
    }
    return SAEC_OK;
}

/* ---- scoring --------------------------------------------------------------------------------- */

/* The class of each row of scores [n, K]: its argmax, ties to the lower class. */
static void argmax_rows(const double *scores, int64_t n, int K, int *pred) {
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (scores[i * K + k] > scores[i * K + best]) best = k;
        pred[i] = best;
    }
}

static void class_ids(const uint8_t *y, int64_t n, int K, int *ids) {
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < K; k++)
            if (y[i * K + k]) ids[i] = k;
}

/* The score that ranks C: micro mAP (multi-label) or accuracy (single-label). */
static int selection_score(const double *scores, const uint8_t *y, int64_t n, int K,
                           int multi_label, double *score) {
    if (multi_label) {
        SAEC_TRY(probe_map(scores, y, n, K, score, NULL, NULL));
        if (isnan(*score)) *score = 0; /* no positive pair: every C alike */
        return SAEC_OK;
    }
    int *ids = malloc((size_t)n * 2 * sizeof *ids); /* [2, n]: truth, prediction */
    if (!ids) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory scoring the probe");
    class_ids(y, n, K, ids);
    argmax_rows(scores, n, K, ids + n);
    int rc = probe_f1(ids, ids + n, n, K, score, NULL, NULL);
    free(ids);
    return rc;
}

/* ---- the C search ---------------------------------------------------------------------------- */

/* Cross-validated score of each C of the grid into out; the chosen C into out->c_chosen. */
static int choose_c(probe_ctx *ctx, int n_folds, uint64_t seed, int verbose, probe_result *out) {
    const int64_t n = ctx->n_train;
    const int K = ctx->n_classes;
    /* perm [n]: a seeded Fisher–Yates shuffle; fold f holds perm[i] for i ≡ f (mod n_folds).
       Each fold's rows, then the rest: order [n_folds, n] (held out first, then fit rows). */
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    int64_t *order = malloc((size_t)n * (size_t)n_folds * sizeof *order);
    int *status = malloc((size_t)n_folds * (size_t)K * sizeof *status);
    int *has_warm = calloc((size_t)n_folds * (size_t)K, sizeof *has_warm);
    /* warm [n_folds · K, dim + 1]: each (fold, class) problem's weights at the previous C */
    double *warm = malloc((size_t)n_folds * (size_t)K * (size_t)(ctx->dim + 1) * sizeof *warm);
    if (!perm || !order || !status || !has_warm || !warm) {
        free(perm);
        free(order);
        free(status);
        free(has_warm);
        free(warm);
        return saec_fail(SAEC_ERR_OTHER, "probe fewer rows", "out of memory for the C search");
    }
    saec_rng rng;
    saec_rng_init(&rng, seed, SAEC_RNG_PROBE_FOLDS, 0);
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = (int64_t)(saec_rng_u64(&rng) % (uint64_t)(i + 1));
        const int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int64_t held[PROBE_MAX_FOLDS];
    for (int f = 0; f < n_folds; f++) {
        int64_t *o = order + (int64_t)f * n, a = 0, b = 0;
        for (int64_t i = 0; i < n; i++)
            if (i % n_folds == f) o[a++] = perm[i];
        held[f] = a;
        for (int64_t i = 0; i < n; i++)
            if (i % n_folds != f) o[held[f] + b++] = perm[i];
    }

    int rc = SAEC_OK;
    double best = -INFINITY;
    out->n_grid = PROBE_C_GRID_SIZE;
    for (int g = 0; g < PROBE_C_GRID_SIZE && rc == SAEC_OK; g++) {
        const double c = PROBE_C_GRID[g];
        const int64_t n_tasks = (int64_t)n_folds * K;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t t = 0; t < n_tasks; t++) {
            const int f = (int)(t / K), k = (int)(t % K);
            const int64_t *o = order + (int64_t)f * n;
            status[t] = fit_class(ctx, o + held[f], n - held[f], o, held[f], k, c,
                                  warm + t * (ctx->dim + 1), has_warm + t);
        }
        rc = report_tasks(status, n_tasks, "a cross-validation fold");
        double score = 0;
        if (rc == SAEC_OK)
            rc = selection_score(ctx->scores, ctx->y_train, n, K, ctx->multi_label, &score);
        if (rc != SAEC_OK) break;
        out->c_grid[g] = c;
        out->cv_score[g] = score;
        if (score > best) { /* strictly: a tie keeps the smaller C */
            best = score;
            out->c_chosen = c;
        }
        if (verbose)
            fprintf(stderr, "saec probe: C %-6g %d-fold %s %.4f\n", c, n_folds,
                    ctx->multi_label ? "micro mAP" : "accuracy", score);
    }
    free(perm);
    free(order);
    free(status);
    free(has_warm);
    free(warm);
    return rc;
}

/* ---- the probe ------------------------------------------------------------------------------- */

/* Fits every class on all train rows at out->c_chosen and scores the test rows. */
static int fit_final(probe_ctx *ctx, probe_result *out) {
    const int64_t n = ctx->n_train, n_test = ctx->n_test;
    const int K = ctx->n_classes;
    int64_t *idx = malloc((size_t)(n + n_test) * sizeof *idx); /* [n + n_test]: 0, 1, 2, ... */
    int *status = malloc((size_t)K * sizeof *status);
    if (!idx || !status) {
        free(idx);
        free(status);
        return saec_fail(SAEC_ERR_OTHER, "probe fewer rows", "out of memory fitting the probe");
    }
    for (int64_t i = 0; i < n + n_test; i++)
        idx[i] = i;
#pragma omp parallel for schedule(dynamic, 1)
    for (int k = 0; k < K; k++)
        status[k] = fit_class(ctx, idx, n, idx + n, n_test, k, out->c_chosen, NULL, NULL);
    int rc = report_tasks(status, K, "the probe");
    free(idx);
    free(status);
    out->n_unfit = 0;
    for (int k = 0; k < K; k++) {
        int64_t pos = 0;
        for (int64_t i = 0; i < n; i++)
            pos += ctx->y_train[i * K + k];
        out->n_unfit += pos == 0 || pos == n;
    }
    return rc;
}

static int score_test(const probe_ctx *ctx, const uint8_t *y_test, probe_result *out) {
    const double *scores = ctx->scores + ctx->n_train * ctx->n_classes; /* [n_test, K] */
    if (ctx->multi_label)
        return probe_map(scores, y_test, ctx->n_test, ctx->n_classes, &out->micro_map,
                         &out->macro_map, out->per_class_ap);
    const int64_t n = ctx->n_test;
    int *ids = malloc((size_t)n * 2 * sizeof *ids); /* [2, n]: truth, prediction */
    if (!ids) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory scoring the probe");
    class_ids(y_test, n, ctx->n_classes, ids);
    argmax_rows(scores, n, ctx->n_classes, ids + n);
    int rc = probe_f1(ids, ids + n, n, ctx->n_classes, &out->accuracy, &out->macro_f1,
                      out->per_class_ap);
    free(ids);
    return rc;
}

int probe_fit_score(const float *x_train, const uint8_t *y_train, int64_t n_train,
                    const float *x_test, const uint8_t *y_test, int64_t n_test, int64_t dim,
                    int n_classes, int multi_label, const probe_options *opt, probe_result *out) {
    probe_options o = {0};
    if (opt) o = *opt;
    if (o.n_folds == 0) o.n_folds = 3;
    SAEC_TRY(check_args(x_train, y_train, n_train, x_test, y_test, n_test, dim, n_classes,
                        multi_label, &o, out));
    if (o.eps == 0) o.eps = 1e-3;

    memset(out, 0, sizeof *out);
    out->multi_label = multi_label;
    out->n_classes = n_classes;
    out->n_train = n_train;
    out->n_test = n_test;
    out->micro_map = out->macro_map = out->accuracy = out->macro_f1 = NAN;
    for (int k = 0; k < PROBE_MAX_CLASSES; k++)
        out->per_class_ap[k] = NAN;
    out->c_chosen = o.c;

    const int64_t n_rows = n_train + n_test;
    double *moments = malloc((size_t)dim * 2 * sizeof *moments); /* [2, dim]: mean, std */
    struct feature_node *nodes = malloc((size_t)n_rows * (size_t)(dim + 2) * sizeof *nodes);
    struct feature_node **rows = malloc((size_t)n_rows * sizeof *rows);
    double *scores = malloc((size_t)n_rows * (size_t)n_classes * sizeof *scores);
    if (!moments || !nodes || !rows || !scores) {
        free(moments);
        free(nodes);
        free(rows);
        free(scores);
        return saec_fail(SAEC_ERR_OTHER, "probe fewer rows or features",
                         "out of memory for the probe's %" PRId64 " x %" PRId64 " features", n_rows,
                         dim);
    }
    train_moments(x_train, n_train, dim, moments, moments + dim);
    build_rows(x_train, n_train, dim, moments, moments + dim, nodes, rows);
    build_rows(x_test, n_test, dim, moments, moments + dim, nodes + n_train * (dim + 2),
               rows + n_train);
    free(moments);

    probe_ctx ctx = {.n_train = n_train,
                     .n_test = n_test,
                     .dim = dim,
                     .n_classes = n_classes,
                     .multi_label = multi_label,
                     .eps = o.eps,
                     .y_train = y_train,
                     .rows = rows,
                     .scores = scores};
    /* liblinear prints through one global function; nothing else in saec uses it. */
    set_print_string_function(o.verbose >= 2 ? print_stderr : print_nothing);
    const int saved_threads = omp_get_max_threads();
    if (o.n_threads > 0) omp_set_num_threads(o.n_threads);

    int rc = SAEC_OK;
    if (o.c == 0) rc = choose_c(&ctx, o.n_folds, o.seed, o.verbose, out);
    if (rc == SAEC_OK) rc = fit_final(&ctx, out);
    if (rc == SAEC_OK) rc = score_test(&ctx, y_test, out);

    if (o.n_threads > 0) omp_set_num_threads(saved_threads);
    free(nodes);
    free(rows);
    free(scores);
    return rc;
}
