/* The reference SAE of the four gradient checks (test_gradcheck.c, test_gradcheck_variants.c,
 * test_gradcheck_bucket.c, test_gradcheck_adaln.c): the loss in double precision, written with
 * naive loops from SPEC §1–5 (no engine op), given each row's encoder input u [N][D], which is
 * where the timestep modes differ (plain: u = xn − b_dec). Every piecewise-constant choice (TopK's
 * idx, BatchTopK's kept set, AuxK's idx_aux, the ATM mask, the JumpReLU step) is fixed in the
 * problem. Also the TopK selection margin, the mapping between a test's `params` and the engine's
 * parameter arena, and the finite-difference check of every parameter.
 *
 * Include after defining D, M, K, KA, N, SCALE, ALPHA, ARENA, STEP and TOTAL (the training step
 * checked); the types `params` (with W_enc_t [M][D], b_enc [M], W_dec [M][D], b_dec [D],
 * log_theta [M] (jumprelu)) and `problem` (arch, x [N][D], mu [D], lambda, idx [N][K] (topk),
 * idx_aux [N][KA], e [N][D] (AuxK), keep [M] (atm), kept [N][M] (batchtopk)); fr() (a value
 * rounded to float); and declarations of
 *   static double *tensor_of(params *p, int i);  the test's tensor for engine tensor i
 *   static void encoder_input(const params *p, const problem *q, double u[N][D]);  each row's
 *     (modulated) encoder input.
 * check.h's REQUIRE reports a failed check.
 */
#ifndef SAEC_TESTS_GRADCHECK_REF_H
#define SAEC_TESTS_GRADCHECK_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"
#include "sae.h"

/* pre_tj = b_enc_j + Σ_i u_ti W_enc_t[j][i] */
static inline double pre_at(const params *p, const double u[N][D], int t, int j) {
    double v = p->b_enc[j];
    for (int i = 0; i < D; i++)
        v += u[t][i] * p->W_enc_t[j][i];
    return v;
}

static inline double row_norm(const double *w) {
    double s = 0;
    for (int i = 0; i < D; i++)
        s += w[i] * w[i];
    return sqrt(s);
}

/* Codes of row t, dense [M], under the variant's rule with its choices fixed in q. */
static inline void codes(const params *p, const problem *q, const double u[N][D], int t,
                         double *f) {
    for (int j = 0; j < M; j++)
        f[j] = 0.0;
    if (q->arch == SAE_TOPK) {
        for (int s = 0; s < K; s++)
            f[q->idx[t][s]] = fmax(0.0, pre_at(p, u, t, q->idx[t][s]));
        return;
    }
    for (int j = 0; j < M; j++) {
        const double v = pre_at(p, u, t, j);
        switch (q->arch) {
        case SAE_RELU: f[j] = fmax(0.0, v); break;
        case SAE_ATM: f[j] = q->keep[j] * fmax(0.0, v); break;
        case SAE_BATCHTOPK: f[j] = q->kept[t][j] ? v : 0.0; break;
        case SAE_JUMPRELU: f[j] = v > exp(p->log_theta[j]) ? v : 0.0; break;
        default: break;
        }
    }
}

static inline void decode(const params *p, const double *f, double *xhat) {
    for (int i = 0; i < D; i++) {
        xhat[i] = p->b_dec[i];
        for (int j = 0; j < M; j++)
            xhat[i] += f[j] * p->W_dec[j][i];
    }
}

/* The loss at parameters p for the rows' encoder input u: nmse, plus the L1 penalty weighted by
   the decoder row norms (relu, atm), the L0 count (jumprelu), or the AuxK term over the fixed
   selections (topk, batchtopk). */
static inline double reference_loss_u(const params *p, const problem *q, const double u[N][D]) {
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
        for (int j = 0; j < M; j++) {
            if (q->arch == SAE_RELU || q->arch == SAE_ATM)
                penalty += f[j] * row_norm(p->W_dec[j]);
            else if (q->arch == SAE_JUMPRELU)
                penalty += pre_at(p, u, t, j) > exp(p->log_theta[j]) ? 1.0 : 0.0;
        }
    }
    double loss = sse / sst + q->lambda * penalty / N;
    if (q->arch != SAE_TOPK && q->arch != SAE_BATCHTOPK) return loss;

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

/* ∂nmse/∂f_tj = (2/SST) Σ_i (x̂ − xn)_ti W_dec,ji, the codes as free variables (JumpReLU's
   straight-through estimator is written from it). */
static inline void reference_dloss_df_u(const params *p, const problem *q, const double u[N][D],
                                        double dldf[N][M]) {
    double sst = 0;
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            sst += (q->x[t][i] / SCALE - q->mu[i]) * (q->x[t][i] / SCALE - q->mu[i]);
    for (int t = 0; t < N; t++) {
        double f[M], xhat[D];
        codes(p, q, u, t, f);
        decode(p, f, xhat);
        for (int j = 0; j < M; j++) {
            double s = 0;
            for (int i = 0; i < D; i++)
                s += (xhat[i] - q->x[t][i] / SCALE) * p->W_dec[j][i];
            dldf[t][j] = 2.0 * s / sst;
        }
    }
}

/* TopK: smallest gap between a selected and an unselected eligible pre-activation, and of every
   selected pre-activation from the ReLU kink at 0. */
static inline double topk_margin_u(const params *p, const problem *q, const double u[N][D],
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

static inline void pack(params *p, float *arena, const saec_sae *sae) {
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
static inline double *param_slot(params *p, const saec_sae *sae, int64_t arena_index, int *tensor) {
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

/* Central finite differences (step 1e-6) of loss at every parameter of the arena but log_theta
   (whose gradient is JumpReLU's straight-through estimate, not a derivative), against the
   engine's gradient arena grads: 0 when each agrees within 2e-5 + 1e-3·|fd|, else 1 with the first
   disagreement printed (the test's CHECK). Per tensor, the count checked and the largest |fd|
   (largest may be NULL); the worst error as a fraction of its tolerance. */
static inline int check_all_gradients(params *p, const problem *q, const saec_sae *sae,
                                      const float *grads,
                                      double (*loss)(const params *, const problem *),
                                      int per_tensor[SAE_N_TENSORS], double *largest, double *worst,
                                      int *checked) {
    const double h = 1e-6;
    for (int64_t a = 0; a < sae->n_params; a++) {
        int tensor = -1;
        double *slot = param_slot(p, sae, a, &tensor);
        if (!slot || tensor == SAE_LOG_THETA) continue;
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
        REQUIRE(err <= tol, "%s: gradient of %s[%lld]: engine %.8g, finite difference %.8g",
                sae_arch_name(q->arch), sae->layout[tensor].name,
                (long long)(a - sae->layout[tensor].offset), grads[a], fdiff);
        (*checked)++;
        per_tensor[tensor]++;
        if (largest) largest[tensor] = fmax(largest[tensor], fabs(fdiff));
    }
    return 0;
}

static inline double reference_loss(const params *p, const problem *q) {
    double u[N][D];
    encoder_input(p, q, u);
    return reference_loss_u(p, q, u);
}

/* pre-activation of row t, latent j (the encoder input recomputed: for checks that ask one at a
   time). */
static inline double pre_of(const params *p, const problem *q, int t, int j) {
    double u[N][D];
    encoder_input(p, q, u);
    return pre_at(p, u, t, j);
}

static inline void reference_dloss_df(const params *p, const problem *q, double dldf[N][M]) {
    double u[N][D];
    encoder_input(p, q, u);
    reference_dloss_df_u(p, q, u, dldf);
}

static inline double topk_margin(const params *p, const problem *q, const uint8_t *dead) {
    double u[N][D];
    encoder_input(p, q, u);
    return topk_margin_u(p, q, u, dead);
}

/* The engine's training step STEP of TOTAL on sae (its parameters and rows uploaded): the
   gradient arena into grads [ARENA], the loss it reports, and q->lambda, the step's sparsity
   coefficient (relu). 0 on success, 1 after a failed check. */
static inline int engine_step(saec_dev *dev, saec_sae *sae, problem *q, float *grads,
                              double *loss) {
    sae_begin_step(sae, STEP, TOTAL);
    if (q->arch == SAE_RELU)
        REQUIRE(sae->sparsity_coef == sae->hp.l1_coef, "relu: sparsity_coef %g after the warm-up",
                sae->sparsity_coef);
    q->lambda = q->arch == SAE_RELU ? (double)sae->sparsity_coef : 0.0;
    REQUIRE(sae_forward(sae, N, 1) == SAEC_OK, "sae_forward: %s", saec_error_message());
    REQUIRE(sae_backward(sae, N) == SAEC_OK, "sae_backward: %s", saec_error_message());
    REQUIRE(dev->ops->download(dev, grads, sae->grad_arena, sizeof(float) * (size_t)sae->n_params) ==
              SAEC_OK,
          "download");
    sae_step_stats st;
    REQUIRE(sae_read_stats(sae, &st) == SAEC_OK, "sae_read_stats");
    *loss = sae_loss(sae, &st);
    return 0;
}

/* Fixes the piecewise-constant choices at the base point: topk takes the engine's selections
   (checked: in range, AuxK only among dead latents) and the AuxK residual; *margin is how far
   any choice is from flipping (topk_margin; relu: the smallest |pre|), −inf when AuxK carries no
   gradient. extra gets a summary for the report. 0, or 1 after a failed check. */
static inline int fix_base_point(saec_dev *dev, saec_sae *sae, const params *p, problem *q,
                                 double *margin, char *extra, size_t extra_cap) {
    const saec_op_table *ops = dev->ops;
    double u[N][D];
    encoder_input(p, q, u);
    *margin = INFINITY;
    if (q->arch != SAE_TOPK) {
        int active = 0;
        for (int t = 0; t < N; t++)
            for (int j = 0; j < M; j++) {
                const double v = pre_at(p, u, t, j);
                *margin = fmin(*margin, fabs(v));
                active += v > 0;
            }
        snprintf(extra, extra_cap, ", %d of %d codes active", active, N * M);
        return 0;
    }
    int32_t idx[N * K], idx_aux[N * KA];
    uint8_t dead[M];
    float xhat[N * D];
    REQUIRE(ops->download(dev, idx, sae->acts.idx, sizeof idx) == SAEC_OK, "download");
    REQUIRE(ops->download(dev, idx_aux, sae->acts.idx_aux, sizeof idx_aux) == SAEC_OK, "download");
    REQUIRE(ops->download(dev, dead, sae->dead_mask, sizeof dead) == SAEC_OK, "download");
    REQUIRE(ops->download(dev, xhat, sae->acts.xhat, sizeof xhat) == SAEC_OK, "download");
    int aux_slots = 0, aux_codes = 0, n_dead = 0;
    for (int j = 0; j < M; j++)
        n_dead += dead[j] != 0;
    for (int t = 0; t < N; t++) {
        for (int s = 0; s < K; s++) {
            q->idx[t][s] = idx[t * K + s];
            REQUIRE(q->idx[t][s] >= 0 && q->idx[t][s] < M, "topk: idx %d", q->idx[t][s]);
        }
        for (int s = 0; s < KA; s++) {
            const int j = q->idx_aux[t][s] = idx_aux[t * KA + s];
            REQUIRE(j < M && (j < 0 || dead[j]), "topk: AuxK picked live latent %d", j);
            aux_slots += j >= 0;
            if (j >= 0) aux_codes += pre_at(p, u, t, j) > 0;
        }
        for (int i = 0; i < D; i++)
            q->e[t][i] = q->x[t][i] / SCALE - xhat[t * D + i];
    }
    *margin = topk_margin(p, q, dead);
    if (aux_codes == 0) *margin = -INFINITY; /* AuxK must carry gradient */
    snprintf(extra, extra_cap, ", %d dead, %d AuxK slots (%d positive)", n_dead, aux_slots,
             aux_codes);
    return 0;
}

typedef struct {
    int checked;
    double worst;
} tally;

/* attempt(dev, arch, seed, tally): one draw checked; 0 pass, 1 fail, 2 margins too small. Runs
   seeds until 3 pass (failing when fewer than 3 of 399 give enough margin) and reports (mode:
   "" for the plain SAE). */
static inline int check_seeds(saec_dev *dev, sae_arch arch, const char *mode,
                              int (*attempt)(saec_dev *, sae_arch, uint64_t, tally *)) {
    tally tl = {0, 0};
    int passed = 0, retried = 0;
    for (uint64_t seed = 1; seed < 400 && passed < 3; seed++) {
        const int rc = attempt(dev, arch, seed, &tl);
        if (rc == 1) return 1;
        passed += rc == 0;
        retried += rc == 2;
    }
    if (passed < 3) {
        fprintf(stderr, "FAIL: %s: only %d seeds gave enough margin (%d redrawn)\n",
                sae_arch_name(arch), passed, retried);
        return 1;
    }
    printf("gradcheck %s%s%s: %d gradients checked over %d seeds (%d redrawn), worst error %.3f of "
           "tolerance\n",
           mode, mode[0] ? " " : "", sae_arch_name(arch), tl.checked, passed, retried, tl.worst);
    return 0;
}

/* The training step on a timestep-aware SAE whose modulation is the identity (mod) and on the
   plain SAE with the same parameters and rows (plain): pre [N, M] and the gradients of the
   shared tensors (W_enc_t .. b_dec) must be equal bit for bit. mod's gradient arena comes back
   in mod_grads [ARENA]; *compared counts the gradients compared. 0, or 1 after a failed check. */
static inline int same_as_plain(saec_dev *dev, saec_sae *mod, saec_sae *plain, const char *what,
                                float *mod_grads, int *compared) {
    saec_sae *both[2] = {mod, plain};
    static float pre[2][N * M], grads[2][ARENA];
    for (int v = 0; v < 2; v++) {
        sae_begin_step(both[v], STEP, TOTAL);
        REQUIRE(sae_forward(both[v], N, 1) == SAEC_OK, "sae_forward: %s", saec_error_message());
        REQUIRE(sae_backward(both[v], N) == SAEC_OK, "sae_backward: %s", saec_error_message());
        REQUIRE(dev->ops->download(dev, pre[v], both[v]->acts.pre, sizeof pre[v]) == SAEC_OK,
              "download");
        REQUIRE(dev->ops->download(dev, grads[v], both[v]->grad_arena,
                                 sizeof(float) * (size_t)both[v]->n_params) == SAEC_OK,
              "download");
    }
    const char *arch = sae_arch_name(mod->arch);
    for (int a = 0; a < N * M; a++)
        REQUIRE(memcmp(&pre[0][a], &pre[1][a], sizeof(float)) == 0,
                "%s, %s: pre[%d, %d] modulated %.9g, plain %.9g", arch, what, a / M, a % M,
                pre[0][a], pre[1][a]);
    *compared = 0;
    for (int i = SAE_W_ENC_T; i <= SAE_B_DEC; i++) {
        const sae_tensor *tm = &mod->layout[i], *t0 = &plain->layout[i];
        REQUIRE(tm->rows == t0->rows && tm->cols == t0->cols, "layout of %s differs", tm->name);
        for (int64_t e = 0; e < tm->rows * tm->cols; e++, (*compared)++)
            REQUIRE(memcmp(&grads[0][tm->offset + e], &grads[1][t0->offset + e], sizeof(float)) ==
                        0,
                    "%s, %s: gradient of %s[%lld]: modulated %.9g, plain %.9g", arch, what,
                    tm->name, (long long)e, grads[0][tm->offset + e], grads[1][t0->offset + e]);
    }
    memcpy(mod_grads, grads[0], sizeof(float) * (size_t)mod->n_params);
    return 0;
}

/* The draws shared by the checks, all float-representable (fr): the SAE's own parameters and
   μ (draw_sae, first; with_log_theta: JumpReLU's thresholds too, each after its b_enc), then the
   mode's parameters (the test's), then the rows (draw_rows). */
static inline void draw_sae_params(saec_rng *rng, params *p, problem *q, int with_log_theta) {
    memset(p, 0, sizeof *p);
    for (int j = 0; j < M; j++) {
        p->b_enc[j] = fr(0.2 * saec_rng_normal(rng));
        if (with_log_theta) p->log_theta[j] = fr(log(0.15 + 0.3 * saec_rng_uniform(rng)));
        for (int i = 0; i < D; i++) {
            p->W_enc_t[j][i] = fr(saec_rng_normal(rng) / sqrt(D));
            p->W_dec[j][i] = fr((0.5 + saec_rng_uniform(rng)) * saec_rng_normal(rng) / sqrt(D));
        }
    }
    for (int i = 0; i < D; i++) {
        p->b_dec[i] = fr(0.3 * saec_rng_normal(rng));
        q->mu[i] = fr(0.1 * saec_rng_normal(rng));
    }
}

static inline void draw_sae(saec_rng *rng, params *p, problem *q) {
    draw_sae_params(rng, p, q, 0);
}

static inline void draw_rows(saec_rng *rng, problem *q) {
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            q->x[t][i] = fr(SCALE * saec_rng_normal(rng));
}

#endif
