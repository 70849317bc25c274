/* The loss gradient of the TIDE `adaln` mode (SPEC §6) on the CPU backend, against central finite
 * differences of an independent double-precision reference written with naive loops (no engine
 * op is used for the reference; the reference shared with the other gradient checks is gradcheck_ref.h).
 *
 * Adaln mode computes each row's scale and shift from its timestep t with a small MLP on a
 * sinusoidal embedding (width E, hidden width E):
 *   emb[j] = sin(t·ω_j), emb[E/2 + j] = cos(t·ω_j), ω_j = 10000^(−j/(E/2)), j < E/2
 *   a1 = emb W1 + b1 (W1 [E, E], input index first), h1 = SiLU(a1) = a1·σ(a1)
 *   s = h1 W_s + b_s, h = h1 W_h + b_h (W_s, W_h [E, d]; b_s, b_h [d])
 *   pre = ((xn − b_dec) ⊙ (1 + s) + h) W_enc + b_enc
 * and is otherwise the plain SAE. Checked for
 *  - topk with AuxK (selections fixed at the base point, the AuxK residual a constant, dead_after
 *    = 1), and
 *  - relu with its L1 penalty λ·(1/N)·Σ f·‖W_dec,j‖ past the warm-up,
 * with E = 4, T = 1000, five distinct timesteps (including both edges 0 and T − 1) and nonzero
 * random values in every adaln tensor (the engine starts W_s, b_s, W_h, b_h at 0). Every parameter
 * (W_enc_t, b_enc, W_dec, b_dec and the six adaln tensors) is checked; inputs are redrawn until
 * every piecewise-constant choice has a margin the finite-difference step cannot cross. The
 * engine's embedding, s and h are also compared with the reference's directly.
 *
 * Also: sae_set_timesteps rejects a timestep outside [0, T) with SAEC_ERR_DATA; with W_s = W_h =
 * b_s = b_h = 0 the forward's pre (and the backward's gradients of the shared tensors) equal those
 * of an SAE without timesteps on the same parameters, bit for bit, and W1, b1 get exactly zero
 * gradient.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "sae.h"
#include "saec/device.h"

enum { D = 7, M = 13, K = 3, KA = 4, N = 5, E = 4, HALF = E / 2, ARENA = 4096 };
#define T_STEPS 1000
#define SCALE 1.37
#define ALPHA 0.4375
#define TOTAL 100
#define STEP 61 /* past the sparsity warm-up (5% of 100 steps) */
#define MARGIN 1e-3

/* Timesteps of the N rows: distinct, both edges of [0, T) among them. */
static const int32_t TIMESTEPS[N] = {999, 0, 137, 500, 731};

typedef struct {
    double W_enc_t[M][D], b_enc[M], W_dec[M][D], b_dec[D], log_theta[M]; /* log_theta: jumprelu only (unused here) */
    double W1[E][E], b1[E], Ws[E][D], bs[D], Wh[E][D], bh[D];
} params;

typedef struct {
    sae_arch arch;
    double x[N][D];                /* raw rows */
    double mu[D];                  /* data mean (normalised units) */
    double emb[N][E];              /* reference embedding of each row's timestep (float-rounded) */
    double lambda;                 /* relu: the sparsity coefficient of the step */
    int idx[N][K], idx_aux[N][KA]; /* topk: the engine's selections, fixed */
    double e[N][D];                /* topk: AuxK residual at the base point (a constant) */
    double keep[M];                /* atm only (unused here) */
    int kept[N][M];                /* batchtopk only (unused here) */
} problem;


static double fr(double v) { return (double)(float)v; } /* a value the engine holds exactly */

/* The sinusoidal embedding of timestep t, written from SPEC §6 / the brief: ω_j = 10000^(−j/H). The
   engine holds it in float, so the reference takes the float-rounded values as its (constant)
   input. */
static void embed(int32_t t, double *emb) {
    for (int j = 0; j < HALF; j++) {
        const double w = pow(10000.0, -(double)j / HALF);
        emb[j] = fr(sin((double)t * w));
        emb[HALF + j] = fr(cos((double)t * w));
    }
}

/* The timestep MLP of row t: s, h [D]. */
static void modulation(const params *p, const problem *q, int t, double *s, double *h) {
    double h1[E];
    for (int o = 0; o < E; o++) {
        double a = p->b1[o];
        for (int i = 0; i < E; i++)
            a += q->emb[t][i] * p->W1[i][o];
        h1[o] = a / (1.0 + exp(-a)); /* SiLU */
    }
    for (int c = 0; c < D; c++) {
        s[c] = p->bs[c];
        h[c] = p->bh[c];
        for (int o = 0; o < E; o++) {
            s[c] += h1[o] * p->Ws[o][c];
            h[c] += h1[o] * p->Wh[o][c];
        }
    }
}

/* The encoder input of every row: u_t = (xn_t − b_dec) ⊙ (1 + s_t) + h_t. */
static void encoder_input(const params *p, const problem *q, double u[N][D]) {
    for (int t = 0; t < N; t++) {
        double s[D], h[D];
        modulation(p, q, t, s, h);
        for (int i = 0; i < D; i++)
            u[t][i] = (q->x[t][i] / SCALE - p->b_dec[i]) * (1.0 + s[i]) + h[i];
    }
}

static double *tensor_of(params *p, int i); /* below: the reference tensor of engine tensor i */
#include "gradcheck_ref.h"

/* The reference tensor of engine tensor i (NULL: not an adaln-mode tensor). */
static double *tensor_of(params *p, int i) {
    double *dst[SAE_N_TENSORS] = {[SAE_W_ENC_T] = &p->W_enc_t[0][0], [SAE_B_ENC] = p->b_enc,
                                  [SAE_W_DEC] = &p->W_dec[0][0],     [SAE_B_DEC] = p->b_dec,
                                  [SAE_ADA_W1] = &p->W1[0][0],       [SAE_ADA_B1] = p->b1,
                                  [SAE_ADA_W_S] = &p->Ws[0][0],      [SAE_ADA_B_S] = p->bs,
                                  [SAE_ADA_W_H] = &p->Wh[0][0],      [SAE_ADA_B_H] = p->bh};
    return dst[i];
}

/* Expected element counts in adaln mode (0: absent). */
static int64_t expected_size(int i) {
    const int64_t sizes[SAE_N_TENSORS] = {
        [SAE_W_ENC_T] = M * D, [SAE_B_ENC] = M,  [SAE_W_DEC] = M * D,   [SAE_B_DEC] = D,
        [SAE_ADA_W1] = E * E,  [SAE_ADA_B1] = E, [SAE_ADA_W_S] = E * D, [SAE_ADA_B_S] = D,
        [SAE_ADA_W_H] = E * D, [SAE_ADA_B_H] = D};
    return sizes[i];
}

/* Random parameters and rows, all float-representable; every adaln tensor nonzero. */
static void draw(saec_rng *rng, params *p, problem *q) {
    draw_sae(rng, p, q);
    for (int o = 0; o < E; o++) {
        p->b1[o] = fr(0.3 * saec_rng_normal(rng));
        for (int i = 0; i < E; i++)
            p->W1[i][o] = fr(saec_rng_normal(rng) / sqrt(E));
        for (int c = 0; c < D; c++) {
            p->Ws[o][c] = fr(0.4 * saec_rng_normal(rng) / sqrt(E));
            p->Wh[o][c] = fr(0.3 * saec_rng_normal(rng) / sqrt(E));
        }
    }
    for (int c = 0; c < D; c++) {
        p->bs[c] = fr(0.2 * saec_rng_normal(rng));
        p->bh[c] = fr(0.2 * saec_rng_normal(rng));
    }
    draw_rows(rng, q);
    for (int t = 0; t < N; t++)
        embed(TIMESTEPS[t], q->emb[t]);
}

static sae_hparams hparams(sae_arch arch, int adaln, uint64_t seed) {
    return (sae_hparams){.arch = arch,
                         .d = D,
                         .m = M,
                         .k = K,
                         .aux_k = arch == SAE_TOPK ? KA : 0,
                         .aux_alpha = (float)ALPHA,
                         .dead_after = 1, /* a latent silent in this batch is dead */
                         .batch = N,
                         .l1_coef = 0.3125f,
                         .sparsity_warmup = 0.05f,
                         .ts_mode = adaln ? SAE_TS_ADALN : SAE_TS_NONE,
                         .timestep_buckets = 0,
                         .timesteps = T_STEPS,
                         .adaln_dim = adaln ? E : 0,
                         .seed = seed};
}

/* A fresh SAE with the parameters p and rows q uploaded (timesteps set in adaln mode). */
static int make_sae(saec_dev *dev, sae_arch arch, int adaln, uint64_t seed, params *p,
                    const problem *q, saec_sae **out) {
    const sae_hparams hp = hparams(arch, adaln, seed);
    saec_sae *sae = NULL;
    *out = NULL;
    REQUIRE(sae_create(dev, &hp, &sae) == SAEC_OK, "sae_create: %s", saec_error_message());
    *out = sae;
    REQUIRE(sae->n_params <= ARENA, "arena too small");
    for (int i = 0; i < sae->n_tensors; i++) {
        const sae_tensor *t = &sae->layout[i];
        const int64_t want = i <= SAE_B_DEC || adaln ? expected_size(i) : 0;
        REQUIRE(t->rows * t->cols == want, "%s layout: %s has %lld elements, expected %lld",
              adaln ? "adaln" : "plain", t->name, (long long)(t->rows * t->cols), (long long)want);
    }
    if (adaln)
        REQUIRE(sae->n_tensors == SAE_N_TENSORS && sae->layout[SAE_ADA_W1].rows == E &&
                  sae->layout[SAE_ADA_W1].cols == E && sae->layout[SAE_ADA_W_S].rows == E &&
                  sae->layout[SAE_ADA_W_S].cols == D && sae->layout[SAE_ADA_W_H].rows == E &&
                  sae->layout[SAE_ADA_W_H].cols == D,
              "adaln-mode layout");
    const saec_op_table *ops = dev->ops;
    static float arena[ARENA];
    float xf[N * D], muf[D];
    pack(p, arena, sae);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < D; i++)
            xf[t * D + i] = (float)q->x[t][i];
    for (int i = 0; i < D; i++)
        muf[i] = (float)q->mu[i];
    sae->scale = (float)SCALE;
    REQUIRE(ops->upload(dev, sae->param_arena, arena, sizeof(float) * (size_t)sae->n_params) ==
              SAEC_OK,
          "upload");
    REQUIRE(ops->upload(dev, sae->data_mean, muf, sizeof muf) == SAEC_OK, "upload");
    REQUIRE(ops->upload(dev, sae->acts.x, xf, sizeof xf) == SAEC_OK, "upload");
    if (adaln) {
        REQUIRE(sae_set_timesteps(sae, TIMESTEPS, N) == SAEC_OK, "sae_set_timesteps: %s",
              saec_error_message());
        float emb[N * E];
        REQUIRE(ops->download(dev, emb, sae->acts.emb, sizeof emb) == SAEC_OK, "download");
        for (int t = 0; t < N; t++)
            for (int i = 0; i < E; i++)
                REQUIRE(fabs(emb[t * E + i] - q->emb[t][i]) <= 1e-6,
                      "timestep %d: engine emb[%d] %.9g, reference %.9g", TIMESTEPS[t], i,
                      emb[t * E + i], q->emb[t][i]);
    }
    return 0;
}

/* One attempt of one variant. Returns 0 pass, 1 fail, 2 margins too small (retry). */
static int attempt(saec_dev *dev, sae_arch arch, uint64_t seed, tally *tl) {
    saec_rng rng;
    saec_rng_init(&rng, seed, 191 + (uint64_t)arch, 0);
    static params p;
    static problem q;
    memset(&q, 0, sizeof q);
    q.arch = arch;
    draw(&rng, &p, &q);

    saec_sae *sae = NULL;
    if (make_sae(dev, arch, 1, 1000 + seed, &p, &q, &sae)) {
        sae_destroy(sae);
        return 1;
    }
    const saec_op_table *ops = dev->ops;
    static float grads[ARENA];
    double engine_loss = 0;
    if (engine_step(dev, sae, &q, grads, &engine_loss)) return 1;

    /* The engine's per-row scale and shift against the reference MLP (a diagnosis aid: a wrong
       MLP shows here before it shows in the loss). */
    {
        float es[N * D], eh[N * D];
        REQUIRE(ops->download(dev, es, sae->acts.ada_s, sizeof es) == SAEC_OK, "download");
        REQUIRE(ops->download(dev, eh, sae->acts.ada_h, sizeof eh) == SAEC_OK, "download");
        for (int t = 0; t < N; t++) {
            double s[D], h[D];
            modulation(&p, &q, t, s, h);
            for (int i = 0; i < D; i++)
                REQUIRE(fabs(es[t * D + i] - s[i]) <= 1e-5 * (1 + fabs(s[i])) &&
                          fabs(eh[t * D + i] - h[i]) <= 1e-5 * (1 + fabs(h[i])),
                      "%s: row %d (t = %d), column %d: engine s %.8g h %.8g, reference s %.8g "
                      "h %.8g",
                      sae_arch_name(arch), t, TIMESTEPS[t], i, es[t * D + i], eh[t * D + i], s[i],
                      h[i]);
        }
    }

    double margin = INFINITY;
    char extra[160] = "";
    if (fix_base_point(dev, sae, &p, &q, &margin, extra, sizeof extra)) return 1;
    if (!(margin >= MARGIN)) {
        sae_destroy(sae);
        return 2;
    }

    const double ref_loss = reference_loss(&p, &q);
    REQUIRE(fabs(ref_loss - engine_loss) <= 1e-5 * fmax(1.0, fabs(ref_loss)),
          "%s loss: engine %.9g, reference %.9g", sae_arch_name(arch), engine_loss, ref_loss);

    /* Finite differences of every parameter. */
    int checked = 0, per_tensor[SAE_N_TENSORS] = {0};
    double worst = 0, largest[SAE_N_TENSORS] = {0};
    if (check_all_gradients(&p, &q, sae, grads, reference_loss, per_tensor, largest, &worst,
                            &checked))
        return 1;
    int adaln_checked = 0;
    for (int i = 0; i < SAE_N_TENSORS; i++) {
        REQUIRE(per_tensor[i] == expected_size(i), "%s: %d of %lld entries of %s checked",
              sae_arch_name(arch), per_tensor[i], (long long)expected_size(i), sae->layout[i].name);
        /* a tensor whose gradient is zero everywhere would check nothing */
        if (expected_size(i) > 0)
            REQUIRE(largest[i] > 1e-4, "%s: the gradient of %s is (nearly) zero everywhere (%.3g)",
                  sae_arch_name(arch), sae->layout[i].name, largest[i]);
        if (i >= SAE_ADA_W1) adaln_checked += per_tensor[i];
    }

    printf("  %s seed %llu: %d finite-difference checks (%d in the adaln MLP), loss %.6f, "
           "margin %.4f%s, worst %.3f of tolerance\n",
           sae_arch_name(arch), (unsigned long long)seed, checked, adaln_checked, ref_loss, margin,
           extra, worst);
    tl->checked += checked;
    tl->worst = fmax(tl->worst, worst);
    sae_destroy(sae);
    return 0;
}

/* sae_set_timesteps: the edges of [0, T) are accepted, outside is SAEC_ERR_DATA. */
static int timestep_range(saec_dev *dev) {
    const sae_hparams hp = hparams(SAE_TOPK, 1, 1);
    saec_sae *sae = NULL;
    REQUIRE(sae_create(dev, &hp, &sae) == SAEC_OK, "sae_create: %s", saec_error_message());
    const int32_t ok[2] = {0, T_STEPS - 1};
    REQUIRE(sae_set_timesteps(sae, ok, 2) == SAEC_OK, "timesteps {0, T−1} rejected: %s",
          saec_error_message());
    float emb[2 * E];
    REQUIRE(dev->ops->download(dev, emb, sae->acts.emb, sizeof emb) == SAEC_OK, "download");
    for (int r = 0; r < 2; r++) {
        double want[E];
        embed(ok[r], want);
        for (int i = 0; i < E; i++)
            REQUIRE(fabs(emb[r * E + i] - want[i]) <= 1e-6, "emb(%d)[%d]: engine %.9g, expected %.9g",
                  ok[r], i, emb[r * E + i], want[i]);
    }
    const int32_t bad[3][2] = {{5, T_STEPS}, {-1, 5}, {T_STEPS + 500, 0}};
    for (int c = 0; c < 3; c++) {
        const int rc = sae_set_timesteps(sae, bad[c], 2);
        REQUIRE(rc == SAEC_ERR_DATA, "timesteps {%d, %d}: rc %d, expected SAEC_ERR_DATA (%d)",
              bad[c][0], bad[c][1], rc, SAEC_ERR_DATA);
        saec_error_clear();
    }
    sae_destroy(sae);
    printf(
        "  sae_set_timesteps (adaln): 0 and T−1 accepted (embeddings as specified); T, −1, T+500 "
        "rejected with SAEC_ERR_DATA\n");
    return 0;
}

/* W_s = W_h = b_s = b_h = 0 (W1, b1 random): the adaln SAE's pre equals the plain SAE's on the same
   shared parameters, exactly, and so do the gradients of the shared tensors; W1 and b1 get zero
   gradient (nothing flows back through a zero output layer). */
static int identity_modulation(saec_dev *dev, sae_arch arch, uint64_t seed) {
    saec_rng rng;
    saec_rng_init(&rng, seed, 211 + (uint64_t)arch, 0);
    static params p;
    static problem q;
    memset(&q, 0, sizeof q);
    q.arch = arch;
    draw(&rng, &p, &q);
    memset(p.Ws, 0, sizeof p.Ws);
    memset(p.Wh, 0, sizeof p.Wh);
    memset(p.bs, 0, sizeof p.bs);
    memset(p.bh, 0, sizeof p.bh);
    saec_sae *sa = NULL, *s0 = NULL;
    int rc = make_sae(dev, arch, 1, seed, &p, &q, &sa);
    if (!rc) rc = make_sae(dev, arch, 0, seed, &p, &q, &s0);
    if (rc) {
        sae_destroy(sa);
        sae_destroy(s0);
        return 1;
    }
    static float grads[ARENA];
    int compared = 0;
    if (same_as_plain(dev, sa, s0, "zero output layer", grads, &compared)) return 1;
    for (int i = SAE_ADA_W1; i <= SAE_ADA_B1; i++) {
        const sae_tensor *ta = &sa->layout[i];
        for (int64_t e = 0; e < ta->rows * ta->cols; e++)
            REQUIRE(grads[ta->offset + e] == 0.0f,
                  "%s, zero output layer: gradient of %s[%lld] is %.9g, expected 0",
                  sae_arch_name(arch), ta->name, (long long)e, grads[ta->offset + e]);
    }
    int nonzero_out = 0; /* the output layer itself does get gradient */
    for (int i = SAE_ADA_W_S; i <= SAE_ADA_B_H; i++) {
        const sae_tensor *ta = &sa->layout[i];
        for (int64_t e = 0; e < ta->rows * ta->cols; e++)
            nonzero_out += grads[ta->offset + e] != 0.0f;
    }
    REQUIRE(nonzero_out > 0, "%s, zero output layer: no gradient reaches W_s, b_s, W_h, b_h",
          sae_arch_name(arch));
    sae_destroy(sa);
    sae_destroy(s0);
    printf("  %s, W_s = W_h = b_s = b_h = 0: pre [%d x %d] and %d shared-tensor gradients "
           "identical to the plain SAE; W1, b1 gradients 0\n",
           sae_arch_name(arch), N, M, compared);
    return 0;
}

int main(void) {
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: cannot open the CPU device: %s\n", saec_error_message());
        return 1;
    }
    for (int t = 0; t < N; t++) { /* the fixture itself: distinct timesteps in [0, T) */
        REQUIRE(TIMESTEPS[t] >= 0 && TIMESTEPS[t] < T_STEPS, "fixture timestep %d", TIMESTEPS[t]);
        for (int u = 0; u < t; u++)
            REQUIRE(TIMESTEPS[t] != TIMESTEPS[u], "fixture timestep %d twice", TIMESTEPS[t]);
    }
    if (timestep_range(dev)) return 1;
    const sae_arch archs[] = {SAE_TOPK, SAE_RELU};
    for (size_t v = 0; v < sizeof archs / sizeof archs[0]; v++) {
        if (identity_modulation(dev, archs[v], 7)) return 1;
        if (check_seeds(dev, archs[v], "adaln", attempt)) return 1;
    }
    saec_dev_close(dev);
    printf("PASS\n");
    return 0;
}
