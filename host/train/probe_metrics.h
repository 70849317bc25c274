/* The scores of a linear probe (`saec probe`), computed exactly as scikit-learn computes them so
   that saec's numbers and a Python evaluation of the same predictions agree:

   - average precision: sklearn.metrics.average_precision_score. The scores are sorted
     descending; each distinct score is one threshold (tied rows enter together), and
     AP = Σ_k (R_k − R_{k−1}) · P_k over the thresholds, with R_0 = 0: step-wise, no
     interpolation;
   - micro mAP: that AP over every (row, class) pair pooled (average="micro");
   - macro mAP: the mean of the per-class APs over the classes with at least one positive row
     (sklearn would count a class without positives as AP 0 and warn; here it is left out);
   - macro F1: sklearn.metrics.f1_score(average="macro"), the mean of per-class F1 = 2·TP /
     (2·TP + FP + FN) over the classes present in y_true ∪ y_pred. */
#ifndef SAEC_PROBE_METRICS_H
#define SAEC_PROBE_METRICS_H

#include <stdint.h>

/* Average precision of scores against truth (0 or 1), both read at [i * stride] for i < n (a
   column of a row-major [n, K] matrix: stride K). *ap is NaN when no row is positive. Fails
   (SAEC_ERR_OTHER) on a NaN score, n < 1 or no memory. */
int probe_average_precision(const double *scores, const uint8_t *truth, int64_t n, int64_t stride,
                            double *ap);

/* Over scores and truth [n, n_classes]: micro mAP, macro mAP and the per-class APs
   [n_classes] (NaN for a class without positive rows; macro is NaN when no class has one, micro
   when no pair is positive). Any output may be NULL. */
int probe_map(const double *scores, const uint8_t *truth, int64_t n, int n_classes,
              double *micro_map, double *macro_map, double *per_class_ap);

/* Single-label scores of predicted class ids against true ids, both [n] in [0, n_classes):
   accuracy, macro F1 and per-class F1 [n_classes] (NaN for a class neither true nor predicted
   anywhere). Any output may be NULL. Fails (SAEC_ERR_OTHER) on an id out of range or n < 1. */
int probe_f1(const int *truth, const int *pred, int64_t n, int n_classes, double *accuracy,
             double *macro_f1, double *per_class_f1);

#endif
