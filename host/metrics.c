#include "metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Copy rows [n, d] scaled to unit norm (zero rows stay zero). */
static float *unit_rows(const float *a, int64_t n, int64_t d) {
    float *u = malloc(sizeof(float) * (size_t)(n * d));
    if (!u) return NULL;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)a[i * d + j] * a[i * d + j];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int64_t j = 0; j < d; j++) u[i * d + j] = a[i * d + j] * inv;
    }
    return u;
}

double saec_mmcs(const float *W_dec, int64_t m, int64_t d, const saec_ground_truth *gt) {
    const int64_t F = gt->n_features, block = 256;
    float *dec = unit_rows(W_dec, m, d);              /* [m, d] */
    float *dir = unit_rows(gt->directions, F, d);     /* [F, d] */
    float *cos = malloc(sizeof(float) * (size_t)(block * m)); /* [block, m] */
    double total = NAN;
    if (dec && dir && cos) {
        total = 0;
        for (int64_t f0 = 0; f0 < F; f0 += block) {
            int64_t nb = F - f0 < block ? F - f0 : block;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)m, (int)d, 1.0f,
                        dir + f0 * d, (int)d, dec, (int)d, 0.0f, cos, (int)m);
            for (int64_t i = 0; i < nb; i++) {
                float best = -1.0f;
                for (int64_t j = 0; j < m; j++) best = fmaxf(best, cos[i * m + j]);
                total += best;
            }
        }
        total /= (double)F;
    }
    free(dec), free(dir), free(cos);
    return total;
}
