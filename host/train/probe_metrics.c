/* Probe metrics as scikit-learn computes them (probe_metrics.h). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probe_metrics.h"
#include "saec/saec.h"

typedef struct {
    double score;
    int positive;
} scored_row;

/* Descending by score; the order among equal scores does not matter (a tie is one threshold). */
static int by_score_desc(const void *a, const void *b) {
    const double sa = ((const scored_row *)a)->score, sb = ((const scored_row *)b)->score;
    return (sa < sb) - (sa > sb);
}

int probe_average_precision(const double *scores, const uint8_t *truth, int64_t n, int64_t stride,
                            double *ap) {
    if (n < 1 || stride < 1)
        return saec_fail(SAEC_ERR_OTHER, NULL,
                         "internal: average precision of %" PRId64 " rows (stride %" PRId64 ")", n,
                         stride);
    scored_row *rows = malloc((size_t)n * sizeof *rows); /* [n] */
    if (!rows)
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory sorting %" PRId64 " scores", n);
    int64_t n_pos = 0;
    for (int64_t i = 0; i < n; i++) {
        rows[i].score = scores[i * stride];
        rows[i].positive = truth[i * stride] != 0;
        n_pos += rows[i].positive;
        if (isnan(rows[i].score)) {
            free(rows);
            return saec_fail(SAEC_ERR_OTHER, NULL,
                             "internal: NaN score at row %" PRId64 " of an average precision", i);
        }
    }
    if (n_pos == 0) {
        free(rows);
        *ap = NAN;
        return SAEC_OK;
    }
    qsort(rows, (size_t)n, sizeof *rows, by_score_desc);
    /* At the end of each run of equal scores: TP and all rows so far give P_k and R_k. */
    double sum = 0, recall_prev = 0;
    int64_t tp = 0;
    for (int64_t i = 0; i < n; i++) {
        tp += rows[i].positive;
        if (i + 1 < n && rows[i + 1].score == rows[i].score) continue;
        const double recall = (double)tp / (double)n_pos;
        const double precision = (double)tp / (double)(i + 1);
        sum += (recall - recall_prev) * precision;
        recall_prev = recall;
    }
    free(rows);
    *ap = sum;
    return SAEC_OK;
}

int probe_map(const double *scores, const uint8_t *truth, int64_t n, int n_classes,
              double *micro_map, double *macro_map, double *per_class_ap) {
    if (n_classes < 1)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: mAP over %d classes", n_classes);
    if (micro_map) SAEC_TRY(probe_average_precision(scores, truth, n * n_classes, 1, micro_map));
    double sum = 0;
    int counted = 0;
    for (int k = 0; k < n_classes; k++) {
        double ap = NAN;
        SAEC_TRY(probe_average_precision(scores + k, truth + k, n, n_classes, &ap));
        if (per_class_ap) per_class_ap[k] = ap;
        if (!isnan(ap)) {
            sum += ap;
            counted++;
        }
    }
    if (macro_map) *macro_map = counted ? sum / counted : NAN;
    return SAEC_OK;
}

int probe_f1(const int *truth, const int *pred, int64_t n, int n_classes, double *accuracy,
             double *macro_f1, double *per_class_f1) {
    if (n < 1 || n_classes < 1)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: F1 of %" PRId64 " rows over %d classes",
                         n, n_classes);
    int64_t *tp = calloc((size_t)n_classes * 3, sizeof *tp); /* [3, K]: TP, FP, FN */
    if (!tp) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory counting F1");
    int64_t *fp = tp + n_classes, *fn = fp + n_classes;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        const int t = truth[i], p = pred[i];
        if (t < 0 || t >= n_classes || p < 0 || p >= n_classes) {
            free(tp);
            return saec_fail(SAEC_ERR_OTHER, NULL,
                             "internal: row %" PRId64 " has class %d (truth) / %d (prediction) "
                             "outside [0, %d)",
                             i, t, p, n_classes);
        }
        if (t == p) {
            tp[t]++;
            correct++;
        } else {
            fp[p]++;
            fn[t]++;
        }
    }
    double sum = 0;
    int present = 0;
    for (int k = 0; k < n_classes; k++) {
        const int64_t denom = 2 * tp[k] + fp[k] + fn[k]; /* 0 exactly when k is absent from both */
        const double f1 = denom ? 2.0 * (double)tp[k] / (double)denom : NAN;
        if (per_class_f1) per_class_f1[k] = f1;
        if (denom) {
            sum += f1;
            present++;
        }
    }
    free(tp);
    if (accuracy) *accuracy = (double)correct / (double)n;
    if (macro_f1) *macro_f1 = sum / present;
    return SAEC_OK;
}
