/* The whole SAE loss gradient (nmse + AuxK) against central finite differences of an independent
 * double-precision reference loss.
 *
 * The reference recomputes the loss from the parameters with naive loops. It keeps the engine's
 * selected latents fixed (TopK's and AuxK's index sets are piecewise constant) and treats the AuxK
 * residual e as a constant, as SPEC §2 says. Inputs are redrawn until every selection has a
 * margin the finite-difference step cannot cross, so the check compares smooth functions.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "sae.h"
#include "saec/device.h"

enum { D = 7, M = 13, K = 3, KA = 4, N = 5 };
#define ALPHA 0.5
#define SCALE 1.3

typedef struct {
    double W_enc_t[M][D], b_enc[M], W_dec[M][D], b_dec[D];
} params;

typedef struct {
    double x[N][D]; /* raw rows */
    double mu[D];   /* data mean (normalised units) */
    int idx[N][K], idx_aux[N][KA];
    double e[N][D]; /* AuxK residual at the base point (a constant) */
} problem;

static double pre_at(const params *p, const problem *q, int t, int j) {
    double s = p->b_enc[j];
    for (int i = 0; i < D; i++)
        s += (q->x[t][i] / SCALE - p->b_dec[i]) * p->W_enc_t[j][i];
    return s;
}

/* Reconstruction of row t from the latents `idx` (count kk); with_bias adds b_dec. */
static void decode_row(const params *p, const problem *q, int t, const int *idx, int kk,
                       int with_bias, double *out) {
    for (int i = 0; i < D; i++)
        out[i] = with_bias ? p->b_dec[i] : 0.0;
    for (int s = 0; s < kk; s++) {
        if (idx[s] < 0) continue;
        double f = fmax(0.0, pre_at(p, q, t, idx[s]));
        for (int i = 0; i < D; i++)
            out[i] += f * p->W_dec[idx[s]][i];
    }
}

static double reference_loss(const params *p, const problem *q) {
    double sse = 0, sst = 0, aux_sse = 0, aux_sst = 0, e_mean[D] = {0};
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            e_mean[i] += q->e[t][i] / N;
    for (int t = 0; t < N; t++) {
        double xhat[D], ehat[D];
        decode_row(p, q, t, q->idx[t], K, 1, xhat);
        decode_row(p, q, t, q->idx_aux[t], KA, 0, ehat);
        for (int i = 0; i < D; i++) {
            double xn = q->x[t][i] / SCALE;
            sse += (xn - xhat[i]) * (xn - xhat[i]);
            sst += (xn - q->mu[i]) * (xn - q->mu[i]);
            aux_sse += (q->e[t][i] - ehat[i]) * (q->e[t][i] - ehat[i]);
            aux_sst += (q->e[t][i] - e_mean[i]) * (q->e[t][i] - e_mean[i]);
        }
    }
    return sse / sst + ALPHA * aux_sse / aux_sst;
}

/* Smallest gap between a selected and an unselected eligible pre-activation, and of every
   selected pre-activation from the ReLU kink at 0. */
static double selection_margin(const params *p, const problem *q, const uint8_t *dead) {
    double margin = INFINITY;
    for (int t = 0; t < N; t++) {
        const int *sets[2] = {q->idx[t], q->idx_aux[t]};
        const int sizes[2] = {K, KA};
        for (int set = 0; set < 2; set++) {
            double lowest_kept = INFINITY;
            for (int s = 0; s < sizes[set]; s++) {
                if (sets[set][s] < 0) continue;
                double v = pre_at(p, q, t, sets[set][s]);
                lowest_kept = fmin(lowest_kept, v);
                margin = fmin(margin, fabs(v));
            }
            for (int j = 0; j < M; j++) {
                if (set == 1 && !dead[j]) continue;
                int kept = 0;
                for (int s = 0; s < sizes[set]; s++)
                    kept |= sets[set][s] == j;
                if (!kept) margin = fmin(margin, lowest_kept - pre_at(p, q, t, j));
            }
        }
    }
    return margin;
}

static void pack(const params *p, float *arena, const saec_sae *sae) {
    const double *src[SAE_N_TENSORS] = {&p->W_enc_t[0][0], p->b_enc, &p->W_dec[0][0], p->b_dec};
    for (int i = 0; i < SAE_N_TENSORS; i++) {
        const sae_tensor *t = &sae->layout[i];
        for (int64_t e = 0; e < t->rows * t->cols; e++)
            arena[t->offset + e] = (float)src[i][e];
    }
}

static double *param_slot(params *p, const saec_sae *sae, int64_t arena_index) {
    double *dst[SAE_N_TENSORS] = {&p->W_enc_t[0][0], p->b_enc, &p->W_dec[0][0], p->b_dec};
    for (int i = 0; i < SAE_N_TENSORS; i++) {
        const sae_tensor *t = &sae->layout[i];
        if (arena_index >= t->offset && arena_index < t->offset + t->rows * t->cols)
            return dst[i] + (arena_index - t->offset);
    }
    return NULL; /* alignment padding */
}


/* One attempt with a seed. Returns 0 pass, 1 fail, 2 margin too small (retry). */
static int attempt(saec_dev *dev, uint64_t seed) {
    saec_rng rng;
    saec_rng_init(&rng, seed, 77, 0);
    static params p;
    static problem q;
    for (int j = 0; j < M; j++) {
        p.b_enc[j] = 0.2 * saec_rng_normal(&rng);
        for (int i = 0; i < D; i++) {
            p.W_enc_t[j][i] = saec_rng_normal(&rng) / sqrt(D);
            p.W_dec[j][i] = saec_rng_normal(&rng) / sqrt(D);
        }
    }
    for (int i = 0; i < D; i++) {
        p.b_dec[i] = 0.3 * saec_rng_normal(&rng);
        q.mu[i] = 0.1 * saec_rng_normal(&rng);
    }
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            q.x[t][i] = SCALE * saec_rng_normal(&rng);

    /* dead_after = 1: every latent that does not fire in this batch counts as dead. */
    saec_sae *sae = NULL;
    const sae_hparams hp = {.arch = SAE_TOPK,
                            .d = D,
                            .m = M,
                            .k = K,
                            .aux_k = KA,
                            .aux_alpha = (float)ALPHA,
                            .dead_after = 1,
                            .batch = N};
    REQUIRE(sae_create(dev, &hp, &sae) == SAEC_OK, "sae_create");
    sae->scale = (float)SCALE;
    float arena[4096], xf[N * D], muf[D];
    REQUIRE(sae->n_params <= 4096, "arena too small");
    memset(arena, 0, sizeof arena);
    pack(&p, arena, sae);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            xf[t * D + i] = (float)q.x[t][i];
    for (int i = 0; i < D; i++)
        muf[i] = (float)q.mu[i];
    const saec_op_table *ops = dev->ops;
    ops->upload(dev, sae->param_arena, arena, sizeof(float) * (size_t)sae->n_params);
    ops->upload(dev, sae->data_mean, muf, sizeof muf);
    ops->upload(dev, sae->acts.x, xf, sizeof xf);
    REQUIRE(sae_forward(sae, N, 1) == SAEC_OK, "sae_forward: %s", saec_error_message());
    REQUIRE(sae_backward(sae, N) == SAEC_OK, "sae_backward: %s", saec_error_message());

    float grads[4096], xhat[N * D];
    int32_t idx[N * K], idx_aux[N * KA];
    uint8_t dead[M];
    ops->download(dev, grads, sae->grad_arena, sizeof(float) * (size_t)sae->n_params);
    ops->download(dev, idx, sae->acts.idx, sizeof idx);
    ops->download(dev, idx_aux, sae->acts.idx_aux, sizeof idx_aux);
    ops->download(dev, dead, sae->dead_mask, sizeof dead);
    ops->download(dev, xhat, sae->acts.xhat, sizeof xhat);
    sae_step_stats st;
    sae_read_stats(sae, &st);
    const double engine_loss = sae_loss(sae, &st);

    int aux_slots = 0;
    for (int t = 0; t < N; t++) {
        for (int s = 0; s < K; s++)
            q.idx[t][s] = idx[t * K + s];
        for (int s = 0; s < KA; s++)
            aux_slots += (q.idx_aux[t][s] = idx_aux[t * KA + s]) >= 0;
        for (int i = 0; i < D; i++)
            q.e[t][i] = q.x[t][i] / SCALE - xhat[t * D + i];
    }
    double margin = selection_margin(&p, &q, dead);
    if (margin < 1e-3 || aux_slots == 0) {
        sae_destroy(sae);
        return 2;
    }

    const double ref_loss = reference_loss(&p, &q);
    REQUIRE(fabs(ref_loss - engine_loss) <= 1e-5 * fmax(1.0, fabs(ref_loss)),
          "loss: engine %.9g, reference %.9g", engine_loss, ref_loss);

    const double h = 1e-6;
    int checked = 0;
    double worst = 0;
    for (int64_t a = 0; a < sae->n_params; a++) {
        double *slot = param_slot(&p, sae, a);
        if (!slot) continue;
        const double saved = *slot;
        *slot = saved + h;
        const double up = reference_loss(&p, &q);
        *slot = saved - h;
        const double down = reference_loss(&p, &q);
        *slot = saved;
        const double fd = (up - down) / (2 * h);
        const double err = fabs(fd - grads[a]);
        const double tol = 2e-5 + 1e-3 * fabs(fd);
        worst = fmax(worst, err / tol);
        REQUIRE(err <= tol, "gradient of parameter %lld: engine %.8g, finite difference %.8g",
              (long long)a, grads[a], fd);
        checked++;
    }
    printf("gradcheck: %d parameters, loss %.6f, selection margin %.4f, AuxK slots %d, "
           "worst error %.3f of tolerance\n",
           checked, ref_loss, margin, aux_slots, worst);
    sae_destroy(sae);
    return 0;
}

int main(void) {
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: cannot open the CPU device: %s\n", saec_error_message());
        return 1;
    }
    int passed = 0, tried = 0;
    for (uint64_t seed = 1; seed < 200 && passed < 3; seed++) {
        int rc = attempt(dev, seed);
        if (rc == 1) return 1;
        tried += rc != 2;
        passed += rc == 0;
    }
    saec_dev_close(dev);
    if (passed < 3) {
        fprintf(stderr, "FAIL: no seed gave selections with enough margin\n");
        return 1;
    }
    printf("PASS: %d gradient checks\n", tried);
    return 0;
}
