/* The loss gradients of the dense SAE variants (relu, batchtopk + AuxK, jumprelu, atm; SPEC §2–5)
 * on the CPU backend, against an independent double-precision reference written with naive
 * loops (no engine op is used for the reference; it is gradcheck_ref.h, shared with the other
 * gradient checks).
 *
 * - relu, atm, batchtopk, and jumprelu's W_enc_t, b_enc, W_dec, b_dec: central finite differences
 *   of the reference loss. Piecewise-constant choices (BatchTopK's and AuxK's selections, the
 *   ATM mask, the JumpReLU step) are fixed at the base point, and inputs are redrawn until every
 *   such choice has a margin the finite-difference step cannot cross.
 * - jumprelu's log_theta: the straight-through estimator of SPEC §4, evaluated in double from the
 *   reference's ∂L/∂f, with some pre-activations placed inside the kernel window on purpose.
 * - atm: the mask masks something; masked latents output 0 and get no gradient; the mask draw is
 *   reproducible (same seed and step) and changes with the step and the seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "sae.h"
#include "saec/device.h"

enum { D = 7, M = 13, K = 3, KA = 4, N = 5, ARENA = 4096 };
#define SCALE 1.37
#define ALPHA 0.4375
#define TOTAL 100
#define STEP 61 /* past the sparsity warm-up (5 steps) and the ATM warm-up (10 steps) */
#define MARGIN 1e-3
#define BANDWIDTH 0.05f

typedef struct {
    double W_enc_t[M][D], b_enc[M], W_dec[M][D], b_dec[D], log_theta[M];
} params;

typedef struct {
    sae_arch arch;
    double x[N][D];     /* raw rows */
    double mu[D];       /* data mean (normalised units) */
    double lambda;      /* the sparsity coefficient of the step */
    double keep[M];     /* atm: this step's mask (1 elsewhere) */
    int kept[N][M];     /* batchtopk: the batch selection */
    int idx[N][K];      /* topk only (unused here) */
    int idx_aux[N][KA]; /* batchtopk: AuxK selection (−1 empty) */
    double e[N][D];     /* batchtopk: AuxK residual at the base point (a constant) */
} problem;


static double fr(double v) { return (double)(float)v; } /* a value the engine holds exactly */

/* The plain SAE's encoder input: u_t = xn_t − b_dec. */
static void encoder_input(const params *p, const problem *q, double u[N][D]) {
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            u[t][i] = q->x[t][i] / SCALE - p->b_dec[i];
}

static double *tensor_of(params *p, int i) {
    double *dst[SAE_N_TENSORS] = {&p->W_enc_t[0][0], p->b_enc, &p->W_dec[0][0], p->b_dec,
                                  p->log_theta};
    return dst[i];
}

#include "gradcheck_ref.h"

/* Random parameters (log_theta too) and rows, all float-representable; no latent masked. */
static void draw(saec_rng *rng, params *p, problem *q) {
    draw_sae_params(rng, p, q, 1);
    draw_rows(rng, q);
    for (int j = 0; j < M; j++)
        q->keep[j] = 1.0;
}

static sae_hparams hparams(sae_arch arch, uint64_t seed) {
    return (sae_hparams){.arch = arch,
                         .d = D,
                         .m = M,
                         .k = K,
                         .aux_k = arch == SAE_BATCHTOPK ? KA : 0,
                         .aux_alpha = (float)ALPHA,
                         .dead_after = 1, /* a latent silent in this batch is dead */
                         .batch = N,
                         .l1_coef = 0.3125f,
                         .jumprelu_l0_coef = 0.37f,
                         .sparsity_warmup = 0.05f,
                         .jumprelu_bandwidth = BANDWIDTH,
                         .jumprelu_theta_init = 0.001f,
                         .batchtopk_threshold_start = 1000,
                         .batchtopk_ema = 0.999f,
                         .atm_beta = 0.99f,
                         .atm_weights = {1.0f / 3, 1.0f / 3, 1.0f / 3},
                         .atm_c = 0.0f,
                         .atm_rate = 50.0f,
                         .atm_warmup = 0.1f,
                         .seed = seed};
}

/* ATM statistics [3, m]: even latents near zero importance, odd ones well above the mean. */
static void atm_stats_draw(saec_rng *rng, int64_t m, float *stats) {
    for (int64_t j = 0; j < m; j++) {
        const int low = j % 2 == 0;
        const double u = saec_rng_uniform(rng);
        stats[j] = (float)(low ? 0.001 * u : 1.0 + 0.3 * u);
        stats[m + j] = (float)(low ? 0.002 * u : 0.5 + 0.2 * u);
        stats[2 * m + j] = (float)(low ? 0.001 * u : 0.8 + 0.4 * u);
    }
}

/* ATM importance (SPEC §5, engine's constants) in double from the statistics, and θ. */
static double atm_importance(const float *stats, int64_t m, const float w[3], double *imp) {
    double scale[3];
    for (int s = 0; s < 3; s++) {
        double sum = 0;
        for (int64_t j = 0; j < m; j++)
            sum += stats[s * m + j];
        scale[s] = sum != 0 ? w[s] / (sum / (double)m) : 0.0;
    }
    double mean = 0;
    for (int64_t j = 0; j < m; j++) {
        imp[j] = 0;
        for (int s = 0; s < 3; s++)
            imp[j] += scale[s] * stats[s * m + j];
        mean += imp[j] / (double)m;
    }
    return mean; /* c = 0: θ = mean */
}

/* BatchTopK: the N·K largest positive pre-activations over the batch (fixed into q->kept), the
   dead latents, and the AuxK selection; returns the smallest margin of those choices. */
static double batchtopk_select(const params *p, problem *q, int dead[M], double *lowest_kept) {
    double v[N * M];
    int order[N * M], positives = 0;
    double margin = INFINITY;
    for (int t = 0; t < N; t++)
        for (int j = 0; j < M; j++) {
            v[t * M + j] = pre_of(p, q, t, j);
            positives += v[t * M + j] > 0;
            margin = fmin(margin, fabs(v[t * M + j])); /* away from the kink at 0 */
        }
    for (int a = 0; a < N * M; a++)
        order[a] = a;
    for (int a = 1; a < N * M; a++) /* insertion sort, descending */
        for (int b = a; b > 0 && v[order[b]] > v[order[b - 1]]; b--) {
            const int s = order[b];
            order[b] = order[b - 1];
            order[b - 1] = s;
        }
    const int keep = positives < N * K ? positives : N * K;
    memset(q->kept, 0, sizeof q->kept);
    for (int a = 0; a < keep; a++)
        q->kept[order[a] / M][order[a] % M] = 1;
    *lowest_kept = keep > 0 ? v[order[keep - 1]] : 0.0;
    if (keep > 0 && keep < N * M) margin = fmin(margin, v[order[keep - 1]] - v[order[keep]]);

    for (int j = 0; j < M; j++) {
        dead[j] = 1;
        for (int t = 0; t < N; t++)
            dead[j] &= !q->kept[t][j];
    }
    for (int t = 0; t < N; t++) {
        int s = 0;
        int taken[M] = {0};
        for (; s < KA; s++) { /* the best remaining dead latent */
            int best = -1;
            for (int j = 0; j < M; j++)
                if (dead[j] && !taken[j] && (best < 0 || v[t * M + j] > v[t * M + best])) best = j;
            if (best < 0) break;
            taken[best] = 1;
            q->idx_aux[t][s] = best;
        }
        for (int r = s; r < KA; r++)
            q->idx_aux[t][r] = -1;
        if (s == KA) { /* gap to the best unselected dead latent */
            const double lowest = v[t * M + q->idx_aux[t][KA - 1]];
            for (int j = 0; j < M; j++)
                if (dead[j] && !taken[j]) margin = fmin(margin, lowest - v[t * M + j]);
        }
    }
    return margin;
}

/* One attempt of one variant. Returns 0 pass, 1 fail, 2 margins too small (retry). */
static int attempt(saec_dev *dev, sae_arch arch, uint64_t seed, tally *tl) {
    saec_rng rng;
    saec_rng_init(&rng, seed, 91 + (uint64_t)arch, 0);
    static params p;
    static problem q;
    memset(&q, 0, sizeof q);
    q.arch = arch;
    draw(&rng, &p, &q);
    const int n_window = 4; /* jumprelu: latents 0..3 get one pre-activation inside the window */
    if (arch == SAE_JUMPRELU) {
        for (int j = 0; j < n_window; j++) {
            const int t = (2 * j + 1) % N;
            const double offset = (j % 2 ? -1 : 1) * (0.004 + 0.016 * saec_rng_uniform(&rng));
            const double rest = pre_of(&p, &q, t, j) - p.b_enc[j];
            p.b_enc[j] = fr(exp(p.log_theta[j]) + offset - rest);
        }
    }
    float stats_host[3 * M];
    if (arch == SAE_ATM) atm_stats_draw(&rng, M, stats_host);

    const sae_hparams hp = hparams(arch, 1000 + seed);
    saec_sae *sae = NULL;
    REQUIRE(sae_create(dev, &hp, &sae) == SAEC_OK, "sae_create: %s", saec_error_message());
    REQUIRE(sae->n_params <= ARENA, "arena too small");
    REQUIRE(sae->n_tensors == (arch == SAE_JUMPRELU ? 5 : 4), "%s: %d tensors", sae_arch_name(arch),
          sae->n_tensors);
    const saec_op_table *ops = dev->ops;
    static float arena[ARENA], grads[ARENA];
    float xf[N * D], muf[D];
    pack(&p, arena, sae);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            xf[t * D + i] = (float)q.x[t][i];
    for (int i = 0; i < D; i++)
        muf[i] = (float)q.mu[i];
    sae->scale = (float)SCALE;
    REQUIRE(ops->upload(dev, sae->param_arena, arena, sizeof(float) * (size_t)sae->n_params) ==
              SAEC_OK,
          "upload");
    REQUIRE(ops->upload(dev, sae->data_mean, muf, sizeof muf) == SAEC_OK, "upload");
    REQUIRE(ops->upload(dev, sae->acts.x, xf, sizeof xf) == SAEC_OK, "upload");
    if (arch == SAE_ATM)
        REQUIRE(ops->upload(dev, sae->atm_stats, stats_host, sizeof stats_host) == SAEC_OK, "upload");

    sae_begin_step(sae, STEP, TOTAL);
    const float lambda_hp = arch == SAE_JUMPRELU ? hp.jumprelu_l0_coef : hp.l1_coef;
    REQUIRE(arch == SAE_BATCHTOPK || sae->sparsity_coef == lambda_hp,
          "%s: sparsity_coef %g after the warm-up, expected %g", sae_arch_name(arch),
          sae->sparsity_coef, lambda_hp);
    REQUIRE(sae->atm_masking == (arch == SAE_ATM), "atm_masking %d", sae->atm_masking);
    q.lambda = arch == SAE_BATCHTOPK ? 0.0 : (double)sae->sparsity_coef;
    REQUIRE(sae_forward(sae, N, 1) == SAEC_OK, "sae_forward: %s", saec_error_message());
    REQUIRE(sae_backward(sae, N) == SAEC_OK, "sae_backward: %s", saec_error_message());

    float fd[N * M];
    REQUIRE(ops->download(dev, grads, sae->grad_arena, sizeof(float) * (size_t)sae->n_params) ==
              SAEC_OK,
          "download");
    REQUIRE(ops->download(dev, fd, sae->acts.fd, sizeof fd) == SAEC_OK, "download");
    sae_step_stats st;
    REQUIRE(sae_read_stats(sae, &st) == SAEC_OK, "sae_read_stats");
    const double engine_loss = sae_loss(sae, &st);

    /* Margins of every piecewise-constant choice, and the variant's own forward checks. */
    double margin = INFINITY;
    char extra[160] = "";
    if (arch == SAE_RELU || arch == SAE_ATM) {
        for (int t = 0; t < N; t++)
            for (int j = 0; j < M; j++)
                margin = fmin(margin, fabs(pre_of(&p, &q, t, j)));
    }
    if (arch == SAE_ATM) {
        float keep[M];
        REQUIRE(ops->download(dev, keep, sae->atm_keep, sizeof keep) == SAEC_OK, "download");
        double imp[M];
        const double theta = atm_importance(stats_host, M, hp.atm_weights, imp);
        int masked = 0;
        for (int j = 0; j < M; j++) {
            REQUIRE(keep[j] == 0.0f || keep[j] == 1.0f, "atm_keep[%d] = %g", j, keep[j]);
            q.keep[j] = keep[j];
            masked += keep[j] == 0.0f;
            /* the rule's certain cases: above θ always kept; p = 1 − e^(−40) or more masked */
            if (imp[j] > theta * (1 + 1e-6))
                REQUIRE(keep[j] == 1.0f, "atm: latent %d (importance %g > θ %g) masked", j, imp[j],
                      theta);
            if (hp.atm_rate * (theta - imp[j]) / theta > 40)
                REQUIRE(keep[j] == 0.0f, "atm: latent %d (importance %g, θ %g) kept", j, imp[j],
                      theta);
            for (int t = 0; t < N; t++)
                if (keep[j] == 0.0f)
                    REQUIRE(fd[t * M + j] == 0.0f, "atm: masked latent %d has code %g", j,
                          fd[t * M + j]);
        }
        REQUIRE(masked > 0 && masked < M, "atm: %d of %d latents masked", masked, M);
        /* masked latents receive no gradient at all */
        for (int j = 0; j < M; j++) {
            if (keep[j] != 0.0f) continue;
            REQUIRE(grads[sae->layout[SAE_B_ENC].offset + j] == 0.0f, "atm: masked b_enc grad");
            for (int i = 0; i < D; i++) {
                REQUIRE(grads[sae->layout[SAE_W_ENC_T].offset + j * D + i] == 0.0f,
                      "atm: masked latent %d has a W_enc_t gradient", j);
                REQUIRE(grads[sae->layout[SAE_W_DEC].offset + j * D + i] == 0.0f,
                      "atm: masked latent %d has a W_dec gradient", j);
            }
        }
        snprintf(extra, sizeof extra, ", %d of %d latents masked", masked, M);
    }
    int dead[M] = {0};
    if (arch == SAE_BATCHTOPK) {
        double lowest_kept;
        margin = batchtopk_select(&p, &q, dead, &lowest_kept);
        if (margin < MARGIN) {
            sae_destroy(sae);
            return 2;
        }
        int n_kept = 0, aux_codes = 0, n_dead = 0;
        for (int t = 0; t < N; t++)
            for (int j = 0; j < M; j++) {
                REQUIRE((fd[t * M + j] > 0) == q.kept[t][j],
                      "batchtopk: entry (%d, %d) = %g, reference %s", t, j, fd[t * M + j],
                      q.kept[t][j] ? "kept" : "dropped");
                n_kept += q.kept[t][j];
            }
        float thr;
        uint8_t dead_engine[M];
        int32_t idx_aux[N * KA];
        REQUIRE(ops->download(dev, &thr, sae->bt_batch_thr, sizeof thr) == SAEC_OK, "download");
        REQUIRE(ops->download(dev, dead_engine, sae->dead_mask, sizeof dead_engine) == SAEC_OK,
              "download");
        REQUIRE(ops->download(dev, idx_aux, sae->acts.idx_aux, sizeof idx_aux) == SAEC_OK,
              "download");
        REQUIRE(fabs(thr - lowest_kept) <= 1e-5 * fabs(lowest_kept),
              "batchtopk: batch threshold %.8g, reference %.8g", thr, lowest_kept);
        for (int j = 0; j < M; j++) {
            REQUIRE(dead_engine[j] == dead[j], "batchtopk: dead[%d] engine %d reference %d", j,
                  dead_engine[j], dead[j]);
            n_dead += dead[j];
        }
        for (int t = 0; t < N; t++)
            for (int s = 0; s < KA; s++) { /* the same sets (order may differ) */
                int found = 0;
                for (int r = 0; r < KA; r++)
                    found |= idx_aux[t * KA + r] == q.idx_aux[t][s];
                REQUIRE(found, "batchtopk: AuxK row %d lacks latent %d", t, q.idx_aux[t][s]);
                if (q.idx_aux[t][s] >= 0) aux_codes += pre_of(&p, &q, t, q.idx_aux[t][s]) > 0;
            }
        if (aux_codes == 0) {
            sae_destroy(sae);
            return 2;
        }
        /* the AuxK residual at the base point, a constant */
        double u[N][D];
        encoder_input(&p, &q, u);
        for (int t = 0; t < N; t++) {
            double f[M], xhat[D];
            codes(&p, &q, u, t, f);
            decode(&p, f, xhat);
            for (int i = 0; i < D; i++)
                q.e[t][i] = q.x[t][i] / SCALE - xhat[i];
        }
        snprintf(extra, sizeof extra, ", %d kept, %d dead, %d AuxK codes", n_kept, n_dead,
                 aux_codes);
    }
    int window_in = 0, window_above = 0, window_below = 0;
    if (arch == SAE_JUMPRELU) {
        const double eps = (double)BANDWIDTH;
        for (int t = 0; t < N; t++)
            for (int j = 0; j < M; j++) {
                const double gap = pre_of(&p, &q, t, j) - exp(p.log_theta[j]);
                margin = fmin(margin, fabs(gap));                      /* the step */
                margin = fmin(margin, 10 * fabs(fabs(gap) - eps / 2)); /* window edge */
                if (fabs(gap) < eps / 2) {
                    window_in++;
                    window_above += gap > 0;
                    window_below += gap < 0;
                }
            }
    }
    if (margin < MARGIN) {
        sae_destroy(sae);
        return 2;
    }

    const double ref_loss = reference_loss(&p, &q);
    REQUIRE(fabs(ref_loss - engine_loss) <= 1e-5 * fmax(1.0, fabs(ref_loss)),
          "%s loss: engine %.9g, reference %.9g", sae_arch_name(arch), engine_loss, ref_loss);

    /* Finite differences of every true-gradient parameter. */
    int checked = 0, per_tensor[SAE_N_TENSORS] = {0};
    double worst = 0;
    if (check_all_gradients(&p, &q, sae, grads, reference_loss, per_tensor, NULL, &worst, &checked))
        return 1;

    /* JumpReLU: log_theta's straight-through estimator (SPEC §4) from the reference's ∂L/∂f:
       dL/dlogθ_j = θ_j Σ_r −(1/ε) K((pre_rj − θ_j)/ε) (θ_j ∂L/∂f_rj + λ/N). */
    int ste_checked = 0, ste_nonzero = 0;
    if (arch == SAE_JUMPRELU) {
        REQUIRE(window_above > 0 && window_below > 0, "jumprelu: window entries above %d, below %d",
              window_above, window_below);
        static double dldf[N][M];
        reference_dloss_df(&p, &q, dldf);
        const double eps = (double)BANDWIDTH;
        for (int j = 0; j < M; j++) {
            const double theta = exp(p.log_theta[j]);
            double sum = 0;
            for (int t = 0; t < N; t++) {
                const double u = (pre_of(&p, &q, t, j) - theta) / eps;
                if (fabs(u) < 0.5) sum += -(1.0 / eps) * (theta * dldf[t][j] + q.lambda / N);
            }
            const double ref = theta * sum;
            const double eng = grads[sae->layout[SAE_LOG_THETA].offset + j];
            const double err = fabs(ref - eng), tol = 2e-5 + 1e-3 * fabs(ref);
            worst = fmax(worst, err / tol);
            REQUIRE(err <= tol, "jumprelu: STE gradient of log_theta[%d]: engine %.8g, formula %.8g",
                  j, eng, ref);
            ste_nonzero += ref != 0.0;
            ste_checked++;
        }
        REQUIRE(ste_nonzero >= 2, "jumprelu: only %d nonzero log_theta gradients", ste_nonzero);
        snprintf(extra, sizeof extra,
                 ", %d entries in the STE window (%d above θ), %d log_theta "
                 "STE checks (%d nonzero)",
                 window_in, window_above, ste_checked, ste_nonzero);
    }

    printf("  %s seed %llu: %d finite-difference checks, loss %.6f, margin %.4f%s, worst %.3f of "
           "tolerance\n",
           sae_arch_name(arch), (unsigned long long)seed, checked, ref_loss, margin, extra, worst);
    tl->checked += checked + ste_checked;
    tl->worst = fmax(tl->worst, worst);
    sae_destroy(sae);
    return 0;
}

/* ATM mask of one fresh SAE (m = 64) after a training forward at `step`. */
enum { MR = 64, DR = 5, NR = 3 };
static int atm_mask_draw(saec_dev *dev, uint64_t seed, int64_t step, int64_t total, float *keep,
                         int *masking) {
    saec_rng rng;
    saec_rng_init(&rng, 4242, 7, 0); /* the same parameters and statistics for every call */
    sae_hparams hp = hparams(SAE_ATM, seed);
    hp.d = DR, hp.m = MR, hp.batch = NR;
    hp.atm_rate = 1.0f; /* mid-range probabilities: about 1 − e^(−1) for the low half */
    saec_sae *sae = NULL;
    REQUIRE(sae_create(dev, &hp, &sae) == SAEC_OK, "sae_create: %s", saec_error_message());
    static float arena[ARENA];
    float stats[3 * MR], x[NR * DR], mu[DR] = {0};
    REQUIRE(sae->n_params <= ARENA, "arena too small");
    memset(arena, 0, sizeof arena);
    for (int64_t a = 0; a < sae->n_params; a++)
        arena[a] = (float)(0.3 * saec_rng_normal(&rng));
    for (int i = 0; i < NR * DR; i++)
        x[i] = (float)saec_rng_normal(&rng);
    atm_stats_draw(&rng, MR, stats);
    const saec_op_table *ops = dev->ops;
    REQUIRE(ops->upload(dev, sae->param_arena, arena, sizeof(float) * (size_t)sae->n_params) ==
              SAEC_OK,
          "upload");
    REQUIRE(ops->upload(dev, sae->data_mean, mu, sizeof mu) == SAEC_OK, "upload");
    REQUIRE(ops->upload(dev, sae->acts.x, x, sizeof x) == SAEC_OK, "upload");
    REQUIRE(ops->upload(dev, sae->atm_stats, stats, sizeof stats) == SAEC_OK, "upload");
    float ones[MR];
    for (int j = 0; j < MR; j++)
        ones[j] = 1.0f;
    REQUIRE(ops->upload(dev, sae->atm_keep, ones, sizeof ones) == SAEC_OK, "upload");
    sae_begin_step(sae, step, total);
    *masking = sae->atm_masking;
    REQUIRE(sae_forward(sae, NR, 1) == SAEC_OK, "sae_forward: %s", saec_error_message());
    REQUIRE(ops->download(dev, keep, sae->atm_keep, sizeof(float) * MR) == SAEC_OK, "download");
    sae_destroy(sae);
    return 0;
}

static int count_masked(const float *keep) {
    int c = 0;
    for (int j = 0; j < MR; j++)
        c += keep[j] == 0.0f;
    return c;
}

static int atm_reproducibility(saec_dev *dev) {
    float a[MR], b[MR], c[MR], s[MR];
    int on_a, on_b, on_c, on_s, on_w;
    if (atm_mask_draw(dev, 17, 5000, 10000, a, &on_a) ||
        atm_mask_draw(dev, 17, 5000, 10000, b, &on_b) ||
        atm_mask_draw(dev, 17, 5001, 10000, c, &on_c) ||
        atm_mask_draw(dev, 18, 5000, 10000, s, &on_s))
        return 1;
    REQUIRE(on_a && on_b && on_c && on_s, "atm: masking not active past the warm-up");
    REQUIRE(memcmp(a, b, sizeof a) == 0, "atm: same seed and step gave different masks");
    REQUIRE(memcmp(a, c, sizeof a) != 0, "atm: steps 5000 and 5001 gave the same mask");
    REQUIRE(memcmp(a, s, sizeof a) != 0, "atm: seeds 17 and 18 gave the same mask");
    const int ma = count_masked(a), mc = count_masked(c), ms = count_masked(s);
    REQUIRE(ma > 0 && ma < MR / 2 + 1, "atm: %d of %d masked (expected some of the low half)", ma,
          MR);
    for (int j = 1; j < MR; j += 2) /* the high-importance half is never masked */
        REQUIRE(a[j] == 1.0f && c[j] == 1.0f && s[j] == 1.0f, "atm: latent %d masked", j);
    float w[MR];
    if (atm_mask_draw(dev, 17, 999, 10000, w, &on_w)) return 1; /* within the 10% warm-up */
    REQUIRE(!on_w, "atm: masking active during the warm-up");
    int differ = 0;
    for (int j = 0; j < MR; j++)
        differ += a[j] != c[j];
    printf("  atm mask (m = %d): same seed and step identical (%d masked); next step %d masked, "
           "%d latents differ; other seed %d masked; off during the warm-up\n",
           MR, ma, mc, differ, ms);
    return 0;
}

int main(void) {
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: cannot open the CPU device: %s\n", saec_error_message());
        return 1;
    }
    const sae_arch archs[] = {SAE_RELU, SAE_BATCHTOPK, SAE_JUMPRELU, SAE_ATM};
    for (size_t v = 0; v < sizeof archs / sizeof archs[0]; v++)
        if (check_seeds(dev, archs[v], "", attempt)) return 1;
    if (atm_reproducibility(dev)) return 1;
    saec_dev_close(dev);
    printf("PASS\n");
    return 0;
}
