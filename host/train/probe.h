/* The linear probe of `saec probe` (SPEC §7's `probe` row): logistic regression on frozen
   features, fit on the train rows, scored on the test rows.

   - The features are standardised with the train rows' mean and (population) std; a feature
     constant over the train rows keeps scale 1, as sklearn's StandardScaler does.
   - Each class k gets a binary L2-regularised logistic regression (liblinear's L2R_LR, TRON)
     of "class k" against the rest, with liblinear's bias feature (value 1, regularised like the
     weights, as sklearn's liblinear solver with intercept_scaling=1). Multi-label data is scored
     by these per-class decision values; single-label data predicts the argmax of them, which is
     what liblinear's own multi-class one-vs-rest does (train() fits the same binary problems,
     predict() takes the same argmax). Fitting the classes here instead of inside one train()
     call lets them run in parallel (Debian's liblinear is single-threaded) and gives both kinds
     of data one code path.
   - A class without a positive train row (or without a negative one) cannot be fit: its score
     is the constant log((P + ½) / (N + ½)) of its P positive and N negative train rows, the
     log-odds an intercept-only model would give, so it ranks at chance level and is counted in
     n_unfit. This keeps label-efficiency runs (1% of the train labels) going when a rare class
     has no example.
   - C = 0 chooses C from PROBE_C_GRID by k-fold cross-validation on the train rows: out-of-fold
     decision values pooled over the folds, scored by micro mAP (multi-label) or accuracy
     (single-label); the best score wins, ties to the smaller C. The folds are a permutation of
     the train rows drawn from the seed, and every fit is a pure function of its inputs, so the
     result does not depend on the thread count.

   Errors (saec_fail): no train or test rows, a non-finite feature, a label that is not
   0/1, a single-label row with other than exactly one class, or single-label train rows of one
   class only: SAEC_ERR_DATA naming the split and row. Bad options (C < 0, n_folds outside
   2..20 or above the train rows, eps < 0): SAEC_ERR_USAGE. n_classes outside 1..64 or dim < 1:
   SAEC_ERR_DATA. A NULL pointer: SAEC_ERR_OTHER. */
#ifndef SAEC_PROBE_H
#define SAEC_PROBE_H

#include <stdint.h>

enum { PROBE_MAX_CLASSES = 64, PROBE_C_GRID_SIZE = 5, PROBE_MAX_FOLDS = 20 };
/* The C search: 0.01, 0.1, 1, 10, 100. */
extern const double PROBE_C_GRID[PROBE_C_GRID_SIZE];

typedef struct {
    double c;      /* > 0: this C; 0: choose it from PROBE_C_GRID by cross-validation */
    int n_folds;   /* folds of the C search, 2..PROBE_MAX_FOLDS; 0: 3 */
    uint64_t seed; /* the fold assignment */
    int n_threads; /* 0: OpenMP's default */
    double eps;    /* liblinear's stopping tolerance (relative gradient norm); 0: 1e-3 */
    int verbose;   /* 0: silent; 1: a line per C tried on stderr; 2: also liblinear's output */
} probe_options;

typedef struct {
    int multi_label; /* labels are multi-hot (else exactly one class per row) */
    int n_classes;
    double micro_map, macro_map; /* multi-label (NaN for single-label): mean average precision,
                                    micro (all (row, class) pairs pooled) and macro (mean over
                                    classes with at least one positive test row) */
    double accuracy, macro_f1;   /* single-label (NaN for multi-label): accuracy and macro F1 of
                                    the argmax over the per-class scores */
    double per_class_ap[PROBE_MAX_CLASSES]; /* AP (multi-label) or F1 (single-label) per class;
                                               NaN for a class without positive test rows (F1:
                                               neither true nor predicted) */
    double c_chosen;                        /* the regularisation C used */
    int n_grid;                             /* the C search: 0 when C was given */
    double c_grid[PROBE_C_GRID_SIZE], cv_score[PROBE_C_GRID_SIZE]; /* each C tried, its score */
    int n_unfit; /* classes with no positive (or no negative) train row: constant score */
    int64_t n_train, n_test;
} probe_result;

/* Fit on the train rows and score the test rows. x_train [n_train, dim], x_test [n_test, dim]
   float features; y_train [n_train, n_classes], y_test [n_test, n_classes] uint8 multi-hot
   (single-label data: one-hot). opt NULL: all defaults. */
int probe_fit_score(const float *x_train, const uint8_t *y_train, int64_t n_train,
                    const float *x_test, const uint8_t *y_test, int64_t n_test, int64_t dim,
                    int n_classes, int multi_label, const probe_options *opt, probe_result *out);

#endif
