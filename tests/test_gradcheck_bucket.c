/* The loss gradient of the TIDE `bucket` mode (SPEC §6) on the CPU backend, against central finite
 * differences of an independent double-precision reference written with naive loops (no engine
 * op is used for the reference; the reference shared with the other gradient checks is gradcheck_ref.h).
 *
 * Bucket mode adds per-bucket scale and shift vectors s_b, h_b [B, d] that modulate the encoder
 * input, pre = ((xn − b_dec) ⊙ (1 + s_{b_t}) + h_{b_t}) W_enc + b_enc with b_t = floor(t·B/T);
 * decoder and loss are unchanged. Checked for
 *  - topk with AuxK (selections fixed at the base point, the AuxK residual a constant, dead_after
 *    = 1), and
 *  - relu with its L1 penalty λ·(1/N)·Σ f·‖W_dec,j‖ past the warm-up,
 * with B = 3, T = 1000, tokens interleaved over buckets {2, 0, 2, 0, 2} (bucket 1 empty: its s and
 * h gradients must be exactly 0) and nonzero random s, h. Every parameter (W_enc_t, b_enc, W_dec,
 * b_dec, ts_scale, ts_shift) is checked; inputs are redrawn until every piecewise-constant choice
 * has a margin the finite-difference step cannot cross.
 *
 * Also: sae_set_timesteps rejects a timestep outside [0, T) with SAEC_ERR_DATA and assigns the
 * buckets of SPEC §6; with s = h = 0 the forward's pre (and the backward's gradients of the shared
 * tensors) equal those of an SAE without buckets on the same parameters, bit for bit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "sae.h"
#include "saec/device.h"

enum { D = 7, M = 13, K = 3, KA = 4, N = 5, B = 3, ARENA = 4096 };
#define T_STEPS 1000
#define SCALE 1.37
#define ALPHA 0.4375
#define TOTAL 100
#define STEP 61 /* past the sparsity warm-up (5% of 100 steps) */
#define MARGIN 1e-3

/* Timesteps of the N rows: buckets floor(t·3/1000) = {2, 0, 2, 0, 2}, at the bucket edges
   (333 → 0, 667 → 2, 999 → 2) and inside; no row falls in bucket 1 (334..666). */
static const int32_t TIMESTEPS[N] = {999, 0, 667, 333, 812};
static const int EXPECTED_BUCKET[N] = {2, 0, 2, 0, 2};
#define EMPTY_BUCKET 1

typedef struct {
    double W_enc_t[M][D], b_enc[M], W_dec[M][D], b_dec[D], s[B][D], h[B][D];
    double log_theta[M]; /* jumprelu only (unused here) */
} params;

typedef struct {
    sae_arch arch;
    double x[N][D];                /* raw rows */
    double mu[D];                  /* data mean (normalised units) */
    int bucket[N];                 /* reference buckets */
    double lambda;                 /* relu: the sparsity coefficient of the step */
    int idx[N][K], idx_aux[N][KA]; /* topk: the engine's selections, fixed */
    double e[N][D];                /* topk: AuxK residual at the base point (a constant) */
    double keep[M];                /* atm only (unused here) */
    int kept[N][M];                /* batchtopk only (unused here) */
} problem;


static double fr(double v) { return (double)(float)v; } /* a value the engine holds exactly */

/* The encoder input of every row: u_t = (xn_t − b_dec) ⊙ (1 + s_{b_t}) + h_{b_t}. */
static void encoder_input(const params *p, const problem *q, double u[N][D]) {
    for (int t = 0; t < N; t++) {
        const int b = q->bucket[t];
        for (int i = 0; i < D; i++)
            u[t][i] = (q->x[t][i] / SCALE - p->b_dec[i]) * (1.0 + p->s[b][i]) + p->h[b][i];
    }
}

static double *tensor_of(params *p, int i); /* below: the reference tensor of engine tensor i */
#include "gradcheck_ref.h"

static double *tensor_of(params *p, int i) {
    double *dst[SAE_N_TENSORS] = {&p->W_enc_t[0][0], p->b_enc,   &p->W_dec[0][0], p->b_dec, NULL,
                                  &p->s[0][0],       &p->h[0][0]};
    return dst[i];
}

/* Random parameters and rows, all float-representable; s, h nonzero in every bucket. */
static void draw(saec_rng *rng, params *p, problem *q) {
    draw_sae(rng, p, q);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) {
            p->s[b][i] = fr(0.4 * saec_rng_normal(rng));
            p->h[b][i] = fr(0.3 * saec_rng_normal(rng));
        }
    draw_rows(rng, q);
}

static sae_hparams hparams(sae_arch arch, int64_t buckets, uint64_t seed) {
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
                         .ts_mode = buckets > 0 ? SAE_TS_BUCKET : SAE_TS_NONE,
                         .timestep_buckets = buckets,
                         .timesteps = T_STEPS,
                         .seed = seed};
}

/* A fresh SAE with the parameters p and rows q uploaded (timesteps set in bucket mode). */
static int make_sae(saec_dev *dev, sae_arch arch, int64_t buckets, uint64_t seed, params *p,
                    const problem *q, saec_sae **out) {
    const sae_hparams hp = hparams(arch, buckets, seed);
    saec_sae *sae = NULL;
    *out = NULL;
    REQUIRE(sae_create(dev, &hp, &sae) == SAEC_OK, "sae_create: %s", saec_error_message());
    *out = sae;
    REQUIRE(sae->n_params <= ARENA, "arena too small");
    REQUIRE(sae->n_tensors == (buckets > 0 ? SAE_ADA_W1 : SAE_LOG_THETA), "%d tensors",
          sae->n_tensors);
    REQUIRE(buckets == 0 ||
              (sae->layout[SAE_LOG_THETA].rows == 0 && sae->layout[SAE_TS_SCALE].rows == B &&
               sae->layout[SAE_TS_SCALE].cols == D && sae->layout[SAE_TS_SHIFT].rows == B &&
               sae->layout[SAE_TS_SHIFT].cols == D),
          "bucket-mode layout");
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
    if (buckets > 0) {
        REQUIRE(sae_set_timesteps(sae, TIMESTEPS, N) == SAEC_OK, "sae_set_timesteps: %s",
              saec_error_message());
        int32_t bk[N];
        REQUIRE(ops->download(dev, bk, sae->acts.bucket, sizeof bk) == SAEC_OK, "download");
        for (int t = 0; t < N; t++)
            REQUIRE(bk[t] == q->bucket[t], "timestep %d: engine bucket %d, expected %d", TIMESTEPS[t],
                  bk[t], q->bucket[t]);
    }
    return 0;
}

/* One attempt of one variant. Returns 0 pass, 1 fail, 2 margins too small (retry). */
static int attempt(saec_dev *dev, sae_arch arch, uint64_t seed, tally *tl) {
    saec_rng rng;
    saec_rng_init(&rng, seed, 131 + (uint64_t)arch, 0);
    static params p;
    static problem q;
    memset(&q, 0, sizeof q);
    q.arch = arch;
    for (int t = 0; t < N; t++)
        q.bucket[t] = EXPECTED_BUCKET[t];
    draw(&rng, &p, &q);

    saec_sae *sae = NULL;
    if (make_sae(dev, arch, B, 1000 + seed, &p, &q, &sae)) {
        sae_destroy(sae);
        return 1;
    }
    static float grads[ARENA];
    double engine_loss = 0;
    if (engine_step(dev, sae, &q, grads, &engine_loss)) return 1;

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

    /* The empty bucket's s and h get exactly zero gradient; the occupied ones do not. */
    for (int i = 0; i < D; i++) {
        const float gs = grads[sae->layout[SAE_TS_SCALE].offset + EMPTY_BUCKET * D + i];
        const float gh = grads[sae->layout[SAE_TS_SHIFT].offset + EMPTY_BUCKET * D + i];
        REQUIRE(gs == 0.0f && gh == 0.0f, "%s: empty bucket %d: ts_scale grad %g, ts_shift grad %g",
              sae_arch_name(arch), EMPTY_BUCKET, gs, gh);
    }
    int nonzero_sh = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++)
            if (b != EMPTY_BUCKET)
                nonzero_sh += (grads[sae->layout[SAE_TS_SCALE].offset + b * D + i] != 0.0f) +
                              (grads[sae->layout[SAE_TS_SHIFT].offset + b * D + i] != 0.0f);
    REQUIRE(nonzero_sh > 0, "%s: no nonzero ts_scale / ts_shift gradient", sae_arch_name(arch));

    /* Finite differences of every parameter. */
    int checked = 0, per_tensor[SAE_N_TENSORS] = {0};
    double worst = 0;
    if (check_all_gradients(&p, &q, sae, grads, reference_loss, per_tensor, NULL, &worst, &checked))
        return 1;
    REQUIRE(per_tensor[SAE_TS_SCALE] == B * D && per_tensor[SAE_TS_SHIFT] == B * D &&
              per_tensor[SAE_B_DEC] == D && per_tensor[SAE_W_ENC_T] == M * D,
          "%s: not every parameter was checked", sae_arch_name(arch));

    printf("  %s seed %llu: %d finite-difference checks (%d in ts_scale/ts_shift), loss %.6f, "
           "margin %.4f%s, worst %.3f of tolerance\n",
           sae_arch_name(arch), (unsigned long long)seed, checked,
           per_tensor[SAE_TS_SCALE] + per_tensor[SAE_TS_SHIFT], ref_loss, margin, extra, worst);
    tl->checked += checked;
    tl->worst = fmax(tl->worst, worst);
    sae_destroy(sae);
    return 0;
}

/* sae_set_timesteps: the edges of [0, T) are accepted, outside is SAEC_ERR_DATA. */
static int timestep_range(saec_dev *dev) {
    const sae_hparams hp = hparams(SAE_TOPK, B, 1);
    saec_sae *sae = NULL;
    REQUIRE(sae_create(dev, &hp, &sae) == SAEC_OK, "sae_create: %s", saec_error_message());
    const int32_t ok[2] = {0, T_STEPS - 1};
    REQUIRE(sae_set_timesteps(sae, ok, 2) == SAEC_OK, "timesteps {0, T−1} rejected: %s",
          saec_error_message());
    int32_t bk[2];
    REQUIRE(dev->ops->download(dev, bk, sae->acts.bucket, sizeof bk) == SAEC_OK, "download");
    REQUIRE(bk[0] == 0 && bk[1] == B - 1, "buckets of {0, T−1}: %d, %d", bk[0], bk[1]);
    const int32_t bad[3][2] = {{5, T_STEPS}, {-1, 5}, {T_STEPS + 500, 0}};
    for (int c = 0; c < 3; c++) {
        const int rc = sae_set_timesteps(sae, bad[c], 2);
        REQUIRE(rc == SAEC_ERR_DATA, "timesteps {%d, %d}: rc %d, expected SAEC_ERR_DATA (%d)",
              bad[c][0], bad[c][1], rc, SAEC_ERR_DATA);
        saec_error_clear();
    }
    sae_destroy(sae);
    printf("  sae_set_timesteps: 0 and T−1 accepted (buckets 0, %d); T, −1, T+500 rejected with "
           "SAEC_ERR_DATA\n",
           B - 1);
    return 0;
}

/* s = h = 0: the bucket SAE's pre equals the plain SAE's on the same parameters, exactly, and so
   do the gradients of the shared tensors. */
static int identity_modulation(saec_dev *dev, sae_arch arch, uint64_t seed) {
    saec_rng rng;
    saec_rng_init(&rng, seed, 171 + (uint64_t)arch, 0);
    static params p;
    static problem q;
    memset(&q, 0, sizeof q);
    q.arch = arch;
    for (int t = 0; t < N; t++)
        q.bucket[t] = EXPECTED_BUCKET[t];
    draw(&rng, &p, &q);
    memset(p.s, 0, sizeof p.s);
    memset(p.h, 0, sizeof p.h);
    saec_sae *sb = NULL, *s0 = NULL;
    int rc = make_sae(dev, arch, B, seed, &p, &q, &sb);
    if (!rc) rc = make_sae(dev, arch, 0, seed, &p, &q, &s0);
    if (rc) {
        sae_destroy(sb);
        sae_destroy(s0);
        return 1;
    }
    static float grads[ARENA];
    int compared = 0;
    const int failed = same_as_plain(dev, sb, s0, "s = h = 0", grads, &compared);
    sae_destroy(sb);
    sae_destroy(s0);
    if (failed) return 1;
    printf("  %s, s = h = 0: pre [%d x %d] and %d shared-tensor gradients identical to the plain "
           "SAE\n",
           sae_arch_name(arch), N, M, compared);
    return 0;
}

int main(void) {
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: cannot open the CPU device: %s\n", saec_error_message());
        return 1;
    }
    for (int t = 0; t < N; t++) /* the fixture itself: b = floor(t·B/T) */
        REQUIRE((int)((int64_t)TIMESTEPS[t] * B / T_STEPS) == EXPECTED_BUCKET[t] &&
                  EXPECTED_BUCKET[t] != EMPTY_BUCKET,
              "fixture bucket of timestep %d", TIMESTEPS[t]);
    if (timestep_range(dev)) return 1;
    const sae_arch archs[] = {SAE_TOPK, SAE_RELU};
    for (size_t v = 0; v < sizeof archs / sizeof archs[0]; v++) {
        if (identity_modulation(dev, archs[v], 7)) return 1;
        if (check_seeds(dev, archs[v], "bucket", attempt)) return 1;
    }
    saec_dev_close(dev);
    printf("PASS\n");
    return 0;
}
