/* The probe's metrics (host/train/probe_metrics.h) against numbers worked by hand and numbers
   scikit-learn computed: average precision with ties, micro and macro mAP, accuracy and macro F1.

   The "sklearn" cases were computed once with scikit-learn 1.9.1 (average_precision_score,
   f1_score, accuracy_score) on inputs drawn from splitmix64 exactly as below; the script:

     def splitmix(s):
         s = (s + 0x9E3779B97F4A7C15) & M; z = s
         z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
         z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
         return s, z ^ (z >> 31)
     # mAP: state 42; for each row i < 500, class k < 5: a, b = two draws;
     #   S[i, k] = (a % 50) / 10 (ties on purpose), Y[i, k] = b % (k + 2) == 0
     average_precision_score(Y, S, average="micro"); per class average_precision_score(Y[:, k],
     S[:, k]); macro = their mean
     # F1: state 7; for each row i < 300: a, b = two draws; t = a % 6,
     #   p = t if b % 3 == 0 else b % 6; accuracy_score(t, p), f1_score(t, p, average="macro"),
     #   f1_score(t, p, average=None)
   The test needs no Python. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "probe_metrics.h"

static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double ap_of(const double *s, const uint8_t *y, int64_t n) {
    double ap = -1;
    OK(probe_average_precision(s, y, n, 1, &ap));
    return ap;
}

static void average_precision_by_hand(void) {
    set_ctx("AP by hand");
    /* sklearn's documented example: ranks 1(+) 2(−) 3(+) 4(−): ½·1 + ½·⅔ = 0.8333. */
    const double s1[] = {0.1, 0.4, 0.35, 0.8};
    const uint8_t y1[] = {0, 0, 1, 1};
    CHECK(fabs(ap_of(s1, y1, 4) - 5.0 / 6.0) < 1e-15, "got %.17g", ap_of(s1, y1, 4));
    /* Three tied rows (two positive) then a negative: one threshold, R 1, P ⅔. */
    const double s2[] = {0.5, 0.5, 0.5, 0.2};
    const uint8_t y2[] = {1, 0, 1, 0};
    CHECK(fabs(ap_of(s2, y2, 4) - 2.0 / 3.0) < 1e-15, "got %.17g", ap_of(s2, y2, 4));
    /* A tie between a negative and a positive counts both: ½ whichever comes first. */
    const double s3[] = {1, 1}, s3r[] = {1, 1};
    const uint8_t y3[] = {0, 1}, y3r[] = {1, 0};
    CHECK(ap_of(s3, y3, 2) == 0.5 && ap_of(s3r, y3r, 2) == 0.5);
    /* The positive ranked last of three: ⅓; ranked first: 1. */
    const double s4[] = {3, 2, 1};
    const uint8_t y4[] = {0, 0, 1}, y4b[] = {1, 0, 0};
    CHECK(fabs(ap_of(s4, y4, 3) - 1.0 / 3.0) < 1e-15);
    CHECK(ap_of(s4, y4b, 3) == 1.0);
    /* All positive: 1; none: NaN (left out of macro). Every score tied: the prevalence. */
    const uint8_t all[] = {1, 1, 1}, none[] = {0, 0, 0}, one[] = {0, 1, 0};
    const double flat[] = {7, 7, 7};
    CHECK(ap_of(s4, all, 3) == 1.0);
    CHECK(isnan(ap_of(s4, none, 3)));
    CHECK(fabs(ap_of(flat, one, 3) - 1.0 / 3.0) < 1e-15);
    /* Strided: the second column of [3, 2]. */
    const double m[] = {9, 3, 9, 2, 9, 1};
    const uint8_t my[] = {0, 0, 0, 0, 1, 1};
    double ap = -1;
    OK(probe_average_precision(m + 1, my + 1, 3, 2, &ap));
    CHECK(fabs(ap - 1.0 / 3.0) < 1e-15, "strided AP %.17g", ap);
    /* NaN scores and empty inputs are refused. */
    const double bad[] = {1, NAN};
    CHECK(probe_average_precision(bad, y3, 2, 1, &ap) == SAEC_ERR_OTHER);
    saec_error_clear();
    CHECK(probe_average_precision(s1, y1, 0, 1, &ap) == SAEC_ERR_OTHER);
    saec_error_clear();
}

static void map_by_hand(void) {
    set_ctx("mAP by hand");
    /* scores, truth [3, 3]; class 2 has no positive row. */
    const double s[] = {0.9, 0.1, 0.5, /**/ 0.2, 0.8, 0.4, /**/ 0.3, 0.7, 0.6};
    const uint8_t y[] = {1, 0, 0, /**/ 0, 0, 0, /**/ 1, 1, 0};
    double micro = -1, macro = -1, per[3];
    OK(probe_map(s, y, 3, 3, &micro, &macro, per));
    /* class 0: 0.9(+) 0.3(+) 0.2(−) → 1. class 1: 0.8(−) 0.7(+) 0.1(−) → ½. class 2: NaN. */
    CHECK(per[0] == 1.0 && per[1] == 0.5 && isnan(per[2]), "per %g %g %g", per[0], per[1], per[2]);
    CHECK(macro == 0.75, "macro %.17g", macro);
    /* pooled: .9+ .8− .7+ .6− .5− .4− .3+ .2− .1− → 1/3·1 + 1/3·⅔ + 1/3·3/7 */
    const double want_micro = (1.0 + 2.0 / 3.0 + 3.0 / 7.0) / 3.0;
    CHECK(fabs(micro - want_micro) < 1e-15, "micro %.17g want %.17g", micro, want_micro);
    /* No positive anywhere: both NaN. */
    const uint8_t zero[9] = {0};
    OK(probe_map(s, zero, 3, 3, &micro, &macro, NULL));
    CHECK(isnan(micro) && isnan(macro));
}

static void map_against_sklearn(void) {
    set_ctx("mAP vs sklearn");
    enum { N = 500, K = 5 };
    double *s = malloc(sizeof(double) * N * K);
    uint8_t *y = malloc(N * K);
    uint64_t st = 42;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) {
            const uint64_t a = splitmix(&st), b = splitmix(&st);
            s[i * K + k] = (double)(a % 50) / 10.0;
            y[i * K + k] = b % (uint64_t)(k + 2) == 0;
        }
    const double want_per[K] = {0.44892194886536846, 0.32861399392371465, 0.23266404610285421,
                                0.18007119095751301, 0.16793874587980354};
    double micro = -1, macro = -1, per[K];
    OK(probe_map(s, y, N, K, &micro, &macro, per));
    CHECK_CLOSE_D("per-class AP", per, want_per, K, 1e-12, 0);
    const double want_micro = 0.26337235976932932, want_macro = 0.27164198514585081;
    CHECK_CLOSE_D("micro mAP", &micro, &want_micro, 1, 1e-12, 0);
    CHECK_CLOSE_D("macro mAP", &macro, &want_macro, 1, 1e-12, 0);
    free(s);
    free(y);
}

static void f1_by_hand(void) {
    set_ctx("F1 by hand");
    /* sklearn's documented example: per class 0.8, 0, 0 → macro 4/15. Class 3 appears nowhere:
       NaN, left out of the mean. */
    const int t[] = {0, 1, 2, 0, 1, 2}, p[] = {0, 2, 1, 0, 0, 1};
    double acc = -1, f1 = -1, per[4];
    OK(probe_f1(t, p, 6, 4, &acc, &f1, per));
    CHECK(fabs(acc - 2.0 / 6.0) < 1e-15 && fabs(f1 - 4.0 / 15.0) < 1e-15, "acc %g f1 %g", acc, f1);
    CHECK(fabs(per[0] - 0.8) < 1e-15 && per[1] == 0 && per[2] == 0 && isnan(per[3]));
    /* A class only predicted counts, with F1 0: (⅔ + 1 + 0) / 3. */
    const int t2[] = {0, 0, 1, 1}, p2[] = {0, 2, 1, 1};
    OK(probe_f1(t2, p2, 4, 3, &acc, &f1, per));
    CHECK(fabs(f1 - (2.0 / 3.0 + 1.0) / 3.0) < 1e-15 && per[2] == 0, "f1 %.17g", f1);
    /* An id out of range is refused. */
    const int bad[] = {0, 3};
    CHECK(probe_f1(t2, bad, 2, 3, &acc, &f1, per) == SAEC_ERR_OTHER);
    saec_error_clear();
}

static void f1_against_sklearn(void) {
    set_ctx("F1 vs sklearn");
    enum { N = 300, K = 7 }; /* class 6 never occurs */
    int t[N], p[N];
    uint64_t st = 7;
    for (int i = 0; i < N; i++) {
        const uint64_t a = splitmix(&st), b = splitmix(&st);
        t[i] = (int)(a % 6);
        p[i] = b % 3 == 0 ? t[i] : (int)(b % 6);
    }
    const double want_per[6] = {0.4935064935064935,  0.37254901960784315, 0.47368421052631576,
                                0.59999999999999998, 0.41818181818181815, 0.47863247863247865};
    const double want_acc = 0.46666666666666667, want_f1 = 0.47275900340915816;
    double acc = -1, f1 = -1, per[K];
    OK(probe_f1(t, p, N, K, &acc, &f1, per));
    CHECK_CLOSE_D("per-class F1", per, want_per, 6, 1e-12, 0);
    CHECK(isnan(per[6]));
    CHECK_CLOSE_D("accuracy", &acc, &want_acc, 1, 1e-12, 0);
    CHECK_CLOSE_D("macro F1", &f1, &want_f1, 1, 1e-12, 0);
}

int main(void) {
    average_precision_by_hand();
    map_by_hand();
    map_against_sklearn();
    f1_by_hand();
    f1_against_sklearn();
    return check_summary("test_probe_metrics");
}
