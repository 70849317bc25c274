#include "metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "saec/saec.h"

/* Copy rows [n, d] scaled to unit norm (zero rows stay zero). */
static float *unit_rows(const float *a, int64_t n, int64_t d) {
    float *u = malloc(sizeof(float) * (size_t)(n * d));
    if (!u) return NULL;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++)
            s += (double)a[i * d + j] * a[i * d + j];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int64_t j = 0; j < d; j++)
            u[i * d + j] = a[i * d + j] * inv;
    }
    return u;
}

double saec_mmcs(const float *W_dec, int64_t m, int64_t d, const saec_ground_truth *gt) {
    const int64_t F = gt->n_features, block = 256;
    float *dec = unit_rows(W_dec, m, d);                      /* [m, d] */
    float *dir = unit_rows(gt->directions, F, d);             /* [F, d] */
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
                for (int64_t j = 0; j < m; j++)
                    best = fmaxf(best, cos[i * m + j]);
                total += best;
            }
        }
        total /= (double)F;
    }
    free(dec), free(dir), free(cos);
    return total;
}

saec_absorption_token saec_absorption_on_token(double P, int32_t main_latent, const int32_t *idx,
                                               const float *f, int64_t k, const float *cos_p,
                                               const float *proj_p) {
    if (!proj_p) proj_p = cos_p;
    saec_absorption_token r = {.fraction = 0, .full = 0, .P = P, .M = 0, .A = 0};
    double f_main = 0;
    double top[SAEC_ABSORB_TOP] = {0}; /* candidates' shares, descending */
    for (int64_t s = 0; s < k; s++) {
        if (!(f[s] > 0)) continue; /* silent slot */
        const int32_t j = idx[s];
        if (j == main_latent) {
            f_main += f[s];
            continue;
        }
        if (cos_p[j] < SAEC_ABSORB_COS_MIN) continue;
        double c = (double)f[s] * proj_p[j];
        for (int t = 0; t < SAEC_ABSORB_TOP; t++) /* insert into the running top 3 */
            if (c > top[t]) {
                double tmp = top[t];
                top[t] = c;
                c = tmp;
            }
    }
    r.M = f_main * proj_p[main_latent];
    for (int t = 0; t < SAEC_ABSORB_TOP; t++)
        r.A += top[t];
    if (!(P > 0)) return r; /* nothing of the parent on this token to absorb */
    r.full = f_main <= 0 && top[0] >= SAEC_ABSORB_SHARE * P;
    if (r.M >= P || r.A < SAEC_ABSORB_SHARE * P)
        r.fraction = 0;
    else if (r.M <= 0)
        r.fraction = 1;
    else {
        double a = fmin(r.A, P - r.M);
        r.fraction = a / (a + r.M);
    }
    return r;
}

void saec_absorption_free(saec_absorption *a) {
    free(a->feature), free(a->main_latent), free(a->dir), free(a->cos_p), free(a->proj_p);
    free(a->sum_fraction), free(a->sum_full), free(a->tokens);
    memset(a, 0, sizeof *a);
}

int saec_absorption_init(saec_absorption *a, const float *W_dec, int64_t m, int64_t d,
                         const saec_ground_truth *gt) {
    memset(a, 0, sizeof *a);
    a->m = m, a->d = d;
    const int64_t F = gt->n_features;
    if (!gt->parent) return SAEC_OK;
    /* A parent is a feature some other feature names as its parent. */
    uint8_t *is_parent = calloc((size_t)F, 1); /* [F] */
    if (!is_parent) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for absorption");
    for (int64_t i = 0; i < F; i++)
        if (gt->parent[i] >= 0 && gt->parent[i] < F && gt->parent[i] != i)
            is_parent[gt->parent[i]] = 1;
    int64_t np = 0;
    for (int64_t i = 0; i < F; i++)
        np += is_parent[i];
    a->n_parents = np;
    if (np == 0) {
        free(is_parent);
        return SAEC_OK;
    }
    a->feature = malloc(sizeof(int32_t) * (size_t)np);
    a->main_latent = malloc(sizeof(int32_t) * (size_t)np);
    float *raw = malloc(sizeof(float) * (size_t)(np * d)); /* [np, d] parent directions */
    a->cos_p = malloc(sizeof(float) * (size_t)(np * m));
    a->proj_p = malloc(sizeof(float) * (size_t)(np * m));
    a->sum_fraction = calloc((size_t)np, sizeof(double));
    a->sum_full = calloc((size_t)np, sizeof(double));
    a->tokens = calloc((size_t)np, sizeof(int64_t));
    float *dec = unit_rows(W_dec, m, d); /* [m, d] */
    int ok = a->feature && a->main_latent && raw && a->cos_p && a->proj_p && a->sum_fraction &&
             a->sum_full && a->tokens && dec;
    if (ok) {
        int64_t q = 0;
        for (int64_t i = 0; i < F; i++)
            if (is_parent[i]) {
                a->feature[q] = (int32_t)i;
                memcpy(raw + q * d, gt->directions + i * d, sizeof(float) * (size_t)d);
                q++;
            }
        a->dir = unit_rows(raw, np, d); /* stored directions are unit already; be sure */
        ok = a->dir != NULL;
    }
    if (ok) {
        /* cos [np, m] = dir · unit(W_dec)ᵀ; proj [np, m] = dir · W_decᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)np, (int)m, (int)d, 1.0f, a->dir,
                    (int)d, dec, (int)d, 0.0f, a->cos_p, (int)m);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)np, (int)m, (int)d, 1.0f, a->dir,
                    (int)d, W_dec, (int)d, 0.0f, a->proj_p, (int)m);
        for (int64_t q = 0; q < np; q++) {
            int64_t best = 0;
            for (int64_t j = 1; j < m; j++)
                if (a->cos_p[q * m + j] > a->cos_p[q * m + best]) best = j;
            a->main_latent[q] = (int32_t)best;
        }
    }
    free(is_parent), free(raw), free(dec);
    if (!ok) {
        saec_absorption_free(a);
        return saec_fail(SAEC_ERR_OTHER, NULL,
                         "out of memory for absorption (%lld parents, m=%lld)", (long long)np,
                         (long long)m);
    }
    return SAEC_OK;
}

void saec_absorption_add(saec_absorption *a, int64_t n, const float *xc, const int32_t *idx,
                         const float *f, int64_t k, const uint8_t *active) {
    const int64_t np = a->n_parents, m = a->m, d = a->d;
    for (int64_t i = 0; i < n; i++)
        for (int64_t q = 0; q < np; q++) {
            if (!active[i * np + q]) continue;
            const float *p = a->dir + q * d, *x = xc + i * d;
            double P = 0;
            for (int64_t j = 0; j < d; j++)
                P += (double)x[j] * p[j];
            saec_absorption_token t =
                saec_absorption_on_token(P, a->main_latent[q], idx + i * k, f + i * k, k,
                                         a->cos_p + q * m, a->proj_p + q * m);
            a->sum_fraction[q] += t.fraction;
            a->sum_full[q] += t.full;
            a->tokens[q]++;
        }
}

int64_t saec_absorption_result(const saec_absorption *a, double *fraction, double *full) {
    int64_t counted = 0;
    double fr = 0, fu = 0;
    for (int64_t q = 0; q < a->n_parents; q++) {
        if (a->tokens[q] == 0) continue;
        fr += a->sum_fraction[q] / (double)a->tokens[q];
        fu += a->sum_full[q] / (double)a->tokens[q];
        counted++;
    }
    *fraction = counted ? fr / (double)counted : NAN;
    *full = counted ? fu / (double)counted : NAN;
    return counted;
}
