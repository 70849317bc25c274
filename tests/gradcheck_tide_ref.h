/* The reference SAE of the TIDE gradient checks (test_gradcheck_bucket.c, test_gradcheck_adaln.c):
 * the loss in double precision, written with naive loops from SPEC §1–3 (no engine op), given each
 * row's encoder input u [N][D], which is where the two modes differ. Also the TopK selection
 * margin, the mapping between a test's `params` and the engine's parameter arena, and the
 * finite-difference check of every parameter.
 *
 * Include after defining D, M, K, KA, N, SCALE, ALPHA, ARENA and CHECK (which returns 1 from the
 * function on failure); the types `params` (with W_enc_t
 * [M][D], b_enc [M], W_dec [M][D], b_dec [D]) and `problem` (arch, x [N][D], mu [D], lambda,
 * idx [N][K], idx_aux [N][KA], e [N][D]); and a declaration of
 *   static double *tensor_of(params *p, int i);   the test's tensor for engine tensor i.
 */
#ifndef SAEC_TESTS_GRADCHECK_TIDE_REF_H
#define SAEC_TESTS_GRADCHECK_TIDE_REF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sae.h"

/* pre_tj = b_enc_j + Σ_i u_ti W_enc_t[j][i] */
static double pre_at(const params *p, const double u[N][D], int t, int j) {
    double v = p->b_enc[j];
    for (int i = 0; i < D; i++)
        v += u[t][i] * p->W_enc_t[j][i];
    return v;
}

static double row_norm(const double *w) {
    double s = 0;
    for (int i = 0; i < D; i++)
        s += w[i] * w[i];
    return sqrt(s);
}

/* Codes of row t, dense [M]: topk keeps the fixed selection (ReLU'd), relu everything. */
static void codes(const params *p, const problem *q, const double u[N][D], int t, double *f) {
    for (int j = 0; j < M; j++)
        f[j] = 0.0;
    if (q->arch == SAE_TOPK) {
        for (int s = 0; s < K; s++)
            f[q->idx[t][s]] = fmax(0.0, pre_at(p, u, t, q->idx[t][s]));
    } else {
        for (int j = 0; j < M; j++)
            f[j] = fmax(0.0, pre_at(p, u, t, j));
    }
}

static void decode(const params *p, const double *f, double *xhat) {
    for (int i = 0; i < D; i++) {
        xhat[i] = p->b_dec[i];
        for (int j = 0; j < M; j++)
            xhat[i] += f[j] * p->W_dec[j][i];
    }
}

/* The loss at parameters p for the rows' encoder input u: nmse, plus the ReLU-L1 penalty (relu)
   or the AuxK term over the fixed selections (topk). */
static double reference_loss_u(const params *p, const problem *q, const double u[N][D]) {
    double sse = 0, sst = 0, penalty = 0;
    for (int t = 0; t < N; t++) {
        double f[M], xhat[D];
        codes(p, q, u, t, f);
        decode(p, f, xhat);
        for (int i = 0; i < D; i++) {
            const double xn = q->x[t][i] / SCALE;
            sse += (xn - xhat[i]) * (xn - xhat[i]);
            sst += (xn - q->mu[i]) * (xn - q->mu[i]);
        }
        if (q->arch == SAE_RELU)
            for (int j = 0; j < M; j++)
                penalty += f[j] * row_norm(p->W_dec[j]);
    }
    double loss = sse / sst + q->lambda * penalty / N;
    if (q->arch != SAE_TOPK) return loss;

    /* AuxK: ê = Σ ReLU(pre) W_dec over the fixed dead-latent selection, no b_dec. */
    double aux_sse = 0, aux_sst = 0, e_mean[D] = {0};
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            e_mean[i] += q->e[t][i] / N;
    for (int t = 0; t < N; t++) {
        double ehat[D] = {0};
        for (int s = 0; s < KA; s++) {
            const int j = q->idx_aux[t][s];
            if (j < 0) continue;
            const double f = fmax(0.0, pre_at(p, u, t, j));
            for (int i = 0; i < D; i++)
                ehat[i] += f * p->W_dec[j][i];
        }
        for (int i = 0; i < D; i++) {
            aux_sse += (q->e[t][i] - ehat[i]) * (q->e[t][i] - ehat[i]);
            aux_sst += (q->e[t][i] - e_mean[i]) * (q->e[t][i] - e_mean[i]);
        }
    }
    return loss + ALPHA * aux_sse / aux_sst;
}

/* TopK: smallest gap between a selected and an unselected eligible pre-activation, and of every
   selected pre-activation from the ReLU kink at 0. */
static double topk_margin_u(const params *p, const problem *q, const double u[N][D],
                            const uint8_t *dead) {
    double margin = INFINITY;
    for (int t = 0; t < N; t++) {
        const int *sets[2] = {q->idx[t], q->idx_aux[t]};
        const int sizes[2] = {K, KA};
        for (int set = 0; set < 2; set++) {
            double lowest_kept = INFINITY;
            int full = 1;
            for (int s = 0; s < sizes[set]; s++) {
                if (sets[set][s] < 0) {
                    full = 0;
                    continue;
                }
                const double v = pre_at(p, u, t, sets[set][s]);
                lowest_kept = fmin(lowest_kept, v);
                margin = fmin(margin, fabs(v));
            }
            for (int j = 0; j < M; j++) {
                if (set == 1 && !dead[j]) continue;
                int kept = 0;
                for (int s = 0; s < sizes[set]; s++)
                    kept |= sets[set][s] == j;
                if (kept) continue;
                /* an eligible latent left out of a set that is not full: a wrong selection */
                if (!full) return -INFINITY;
                margin = fmin(margin, lowest_kept - pre_at(p, u, t, j));
            }
        }
    }
    return margin;
}

static void pack(params *p, float *arena, const saec_sae *sae) {
    memset(arena, 0, sizeof(float) * ARENA);
    for (int i = 0; i < sae->n_tensors; i++) {
        const sae_tensor *t = &sae->layout[i];
        if (t->rows == 0) continue; /* absent */
        const double *src = tensor_of(p, i);
        for (int64_t e = 0; e < t->rows * t->cols; e++)
            arena[t->offset + e] = (float)src[e];
    }
}

/* The parameter at arena_index (NULL: padding); *tensor its tensor. */
static double *param_slot(params *p, const saec_sae *sae, int64_t arena_index, int *tensor) {
    for (int i = 0; i < sae->n_tensors; i++) {
        const sae_tensor *t = &sae->layout[i];
        if (t->rows == 0) continue;
        if (arena_index >= t->offset && arena_index < t->offset + t->rows * t->cols) {
            *tensor = i;
            return tensor_of(p, i) + (arena_index - t->offset);
        }
    }
    return NULL;
}

/* Central finite differences (step 1e-6) of loss at every parameter of the arena, against the
   engine's gradient arena grads: 0 when each agrees within 2e-5 + 1e-3·|fd|, else 1 with the first
   disagreement printed (the test's CHECK). Per tensor, the count checked and the largest |fd|
   (largest may be NULL); the worst error as a fraction of its tolerance. */
static int check_all_gradients(params *p, const problem *q, const saec_sae *sae, const float *grads,
                               double (*loss)(const params *, const problem *),
                               int per_tensor[SAE_N_TENSORS], double *largest, double *worst,
                               int *checked) {
    const double h = 1e-6;
    for (int64_t a = 0; a < sae->n_params; a++) {
        int tensor = -1;
        double *slot = param_slot(p, sae, a, &tensor);
        if (!slot) continue;
        const double saved = *slot;
        *slot = saved + h;
        const double up = loss(p, q);
        *slot = saved - h;
        const double down = loss(p, q);
        *slot = saved;
        const double fdiff = (up - down) / (2 * h);
        const double err = fabs(fdiff - grads[a]);
        const double tol = 2e-5 + 1e-3 * fabs(fdiff);
        *worst = fmax(*worst, err / tol);
        CHECK(err <= tol, "%s: gradient of %s[%lld]: engine %.8g, finite difference %.8g",
              sae_arch_name(q->arch), sae->layout[tensor].name,
              (long long)(a - sae->layout[tensor].offset), grads[a], fdiff);
        (*checked)++;
        per_tensor[tensor]++;
        if (largest) largest[tensor] = fmax(largest[tensor], fabs(fdiff));
    }
    return 0;
}

#endif
