/* The whole SAE loss gradient (nmse + AuxK) against central finite differences of an independent
 * double-precision reference loss.
 *
 * The reference recomputes the loss from the parameters with naive loops. It keeps the engine's
 * selected latents fixed (TopK's and AuxK's index sets are piecewise constant) and treats the AuxK
 * residual e as a constant, as SPEC §2 says. Inputs are redrawn until every selection has a
 * margin the finite-difference step cannot cross, so the check compares smooth functions. The
 * reference is gradcheck_ref.h, shared with the other gradient checks.
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
#define ALPHA 0.5
#define SCALE 1.3
#define TOTAL 1 /* the reference's engine_step is not used: the step is the SAE's first */
#define STEP 0

typedef struct {
    double W_enc_t[M][D], b_enc[M], W_dec[M][D], b_dec[D];
    double log_theta[M]; /* jumprelu only (unused here) */
} params;

typedef struct {
    sae_arch arch;  /* topk */
    double x[N][D]; /* raw rows */
    double mu[D];   /* data mean (normalised units) */
    double lambda;  /* 0: topk has no sparsity penalty */
    int idx[N][K], idx_aux[N][KA];
    double e[N][D];  /* AuxK residual at the base point (a constant) */
    double keep[M];  /* atm only (unused here) */
    int kept[N][M];  /* batchtopk only (unused here) */
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

/* One attempt with a seed. Returns 0 pass, 1 fail, 2 margin too small (retry). */
static int attempt(saec_dev *dev, uint64_t seed) {
    saec_rng rng;
    saec_rng_init(&rng, seed, 77, 0);
    static params p;
    static problem q;
    q.arch = SAE_TOPK;
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
    static float arena[ARENA];
    float xf[N * D], muf[D];
    REQUIRE(sae->n_params <= ARENA, "arena too small");
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

    static float grads[ARENA];
    float xhat[N * D];
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
    double margin = topk_margin(&p, &q, dead);
    if (margin < 1e-3 || aux_slots == 0) {
        sae_destroy(sae);
        return 2;
    }

    const double ref_loss = reference_loss(&p, &q);
    REQUIRE(fabs(ref_loss - engine_loss) <= 1e-5 * fmax(1.0, fabs(ref_loss)),
          "loss: engine %.9g, reference %.9g", engine_loss, ref_loss);

    int checked = 0, per_tensor[SAE_N_TENSORS] = {0};
    double worst = 0;
    if (check_all_gradients(&p, &q, sae, grads, reference_loss, per_tensor, NULL, &worst, &checked))
        return 1;
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
