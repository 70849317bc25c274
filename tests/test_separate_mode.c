/* TIDE `separate` mode (SPEC §6) on the CPU backend: B SAEs of mb = m/B latents, one per bucket,
 * trained in one pass over rows grouped by bucket.
 *
 * The check is a decomposition. Bucket g's SAE (latents g·mb .. (g+1)·mb − 1) trained on the
 * whole batch must behave exactly as a plain SAE with those mb latents (and the shared b_dec, s,
 * μ) trained on the batch's bucket-g rows alone, up to the loss's normalisation: the separate loss
 * is Σ_g SSE_g / SST + (λ/N)·Σ_g P_g, the plain one SSE_g / SST_g + (λ_g/N_g)·P_g. With λ_g =
 * λ·(N_g/N)·(SST/SST_g) the first is SST_g/SST times the second on bucket g's parameters, so:
 *  - the gradients of W_enc_t, b_enc, W_dec (and log_theta) of bucket g's latents are the plain
 *    SAE's times SST_g/SST, and the shared b_dec's is the sum of these over the buckets;
 *  - SSE, SST and L0 are the sums of the plain SAEs'; the codes are theirs (latent ids moved by
 *    g·mb) in the batch's row order, and so is the evaluation's reconstruction;
 *  - the dead-latent clocks advance by the bucket's own token count; ATM's statistics and masks
 *    are the plain SAE's (its mask counter is step·B + g);
 *  - an empty bucket's latents get exactly zero gradient and their clocks do not move.
 * Checked for topk, relu, jumprelu and atm (masking on). The plain SAE's gradients are checked
 * against finite differences by test_gradcheck and test_gradcheck_variants; so this covers the
 * grouping, the grouped GEMMs and the per-bucket op calls. Not covered here: AuxK and BatchTopK,
 * whose separate-mode normalisation (residual mean, selection) is over the whole batch and so does
 * not decompose; for BatchTopK the test checks its L0 (N·k) and the empty bucket's zero gradient.
 * Also: separate mode refuses latents that are not a multiple of the buckets, or k > mb.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sae.h"
#include "saec/device.h"
#include "test_random.h"

enum { D = 7, MB = 4, B = 3, M = MB * B, K = 2, N = 11 };
#define T_STEPS 1000
#define SCALE 1.37f
#define STEP 61 /* past the sparsity warm-up and the ATM warm-up (10% of TOTAL) */
#define TOTAL 100
#define TOL 2e-4

/* buckets floor(t·3/1000): rows {2, 0, 2, 0, 2, 0, 0, 2, 2, 0, 2}; bucket 1 is empty */
static const int32_t TIMESTEPS[N] = {999, 0, 667, 333, 812, 5, 200, 700, 998, 150, 900};
#define EMPTY 1

static int bucket_of(int t) { return (int)((int64_t)TIMESTEPS[t] * B / T_STEPS); }

static sae_hparams hparams(sae_arch arch, int separate, int64_t batch) {
    return (sae_hparams){.arch = arch,
                         .d = D,
                         .m = separate ? M : MB,
                         .k = K,
                         .aux_k = 0,
                         .dead_after = 3,
                         .batch = batch,
                         .l1_coef = 0.3125f,
                         .jumprelu_l0_coef = 0.37f,
                         .sparsity_warmup = 0.05f,
                         .jumprelu_bandwidth = 0.05f,
                         .jumprelu_theta_init = 0.001f,
                         .batchtopk_threshold_start = 1000,
                         .batchtopk_ema = 0.999f,
                         .atm_beta = 0.9f,
                         .atm_weights = {1.0f / 3, 1.0f / 3, 1.0f / 3},
                         .atm_rate = 1.0f, /* masking probabilities well inside (0, 1): the draws matter */
                         .atm_warmup = 0.1f,
                         .ts_mode = separate ? SAE_TS_SEPARATE : SAE_TS_NONE,
                         .timestep_buckets = separate ? B : 0,
                         .timesteps = T_STEPS,
                         .seed = 7};
}

/* The drawn problem: separate-mode parameter arena, rows, μ, ATM statistics. */
typedef struct {
    float arena[4096];
    float x[N * D], mu[D], atm[3 * M];
    int64_t since[M];
} problem;

static const sae_tensor *tensor(const saec_sae *sae, int i) { return &sae->layout[i]; }

/* Bucket g's slice of tensor i of the separate SAE (latent rows g·mb ..) into a plain SAE's arena
   (b_dec whole). */
static void slice_params(const saec_sae *sep, const saec_sae *plain, const float *src, float *dst,
                         int g) {
    for (int i = 0; i < plain->n_tensors; i++) {
        const sae_tensor *ts = tensor(sep, i), *tp = tensor(plain, i);
        if (tp->rows == 0) continue;
        const int64_t row0 = i == SAE_B_DEC ? 0 : (int64_t)g * MB;
        memcpy(dst + tp->offset, src + ts->offset + row0 * ts->cols,
               sizeof(float) * (size_t)(tp->rows * tp->cols));
    }
}

typedef struct {
    float grads[4096];
    sae_step_stats st;
    int64_t since[M];
    float atm[3 * M];
    int32_t idx[N * M];
    float f[N * M];
    int64_t kk;
    float xhat[N * D]; /* evaluation forward */
} outcome;

/* Upload, train forward + backward, read back; then an evaluation forward for x̂. rows: the
   problem's rows this SAE sees (all, or one bucket's); coef_scale: multiplies the sparsity
   coefficient after sae_begin_step (< 0: none). */
static void run(saec_dev *dev, saec_sae *sae, const float *arena, const problem *q, const int *rows,
                int n, int g, double coef_scale, outcome *out) {
    const saec_op_table *ops = dev->ops;
    const int sep = sae->hp.ts_mode == SAE_TS_SEPARATE;
    const int64_t m = sae->m;
    float x[N * D];
    int32_t ts[N];
    for (int r = 0; r < n; r++) {
        memcpy(x + r * D, q->x + rows[r] * D, sizeof(float) * D);
        ts[r] = TIMESTEPS[rows[r]];
    }
    const int64_t l0 = sep ? 0 : (int64_t)g * MB;
    sae->scale = SCALE;
    OK(ops->upload(dev, sae->param_arena, arena, sizeof(float) * (size_t)sae->n_params));
    OK(ops->upload(dev, sae->data_mean, q->mu, sizeof q->mu));
    OK(ops->upload(dev, sae->since_fired, q->since + l0, sizeof(int64_t) * (size_t)m));
    if (sae->atm_stats)
        for (int s = 0; s < 3; s++)
            OK(ops->upload(dev, sae->atm_stats + s * m, q->atm + s * M + l0,
                           sizeof(float) * (size_t)m));
    OK(ops->upload(dev, sae->acts.x, x, sizeof(float) * (size_t)(n * D)));
    if (sep) OK(sae_set_timesteps(sae, ts, n));
    sae_begin_step(sae, STEP, TOTAL);
    if (!sep) sae->step = (int64_t)STEP * B + g; /* the ATM draws of latent g·mb + j */
    OK(sae_forward(sae, n, 1));
    if (coef_scale >= 0) { /* λ_g = λ·(N_g/N)·(SST/SST_g): needs this batch's SST_g */
        sae_step_stats st;
        OK(sae_read_stats(sae, &st));
        sae->sparsity_coef = (float)(sae->sparsity_coef * coef_scale / st.sst);
    }
    OK(sae_backward(sae, n));
    OK(sae_read_stats(sae, &out->st));
    OK(ops->download(dev, out->grads, sae->grad_arena, sizeof(float) * (size_t)sae->n_params));
    OK(ops->download(dev, out->since, sae->since_fired, sizeof(int64_t) * (size_t)m));
    if (sae->atm_stats) OK(ops->download(dev, out->atm, sae->atm_stats, sizeof(float) * 3 * m));
    OK(sae_download_codes(sae, n, out->idx, out->f, &out->kk));
    /* evaluation forward on the same rows: x̂ in the batch's row order */
    OK(ops->upload(dev, sae->acts.x, x, sizeof(float) * (size_t)(n * D)));
    if (sep) OK(sae_set_timesteps(sae, ts, n));
    OK(sae_forward(sae, n, 0));
    OK(ops->download(dev, out->xhat, sae->acts.xhat, sizeof(float) * (size_t)(n * D)));
}

static int close_to(double a, double b, double scale) {
    return fabs(a - b) <= TOL * (scale > 1e-3 ? scale : 1e-3);
}

/* max |v| over a tensor slice, the scale of the comparison */
static double max_abs(const float *v, int64_t count) {
    double mx = 0;
    for (int64_t i = 0; i < count; i++)
        mx = fmax(mx, fabs(v[i]));
    return mx;
}

/* row r's nonzero codes, in slot order */
static int nonzero_codes(const outcome *o, int r, int32_t *ids, float *vals) {
    int c = 0;
    for (int64_t j = 0; j < o->kk; j++)
        if (o->idx[r * o->kk + j] >= 0 && o->f[r * o->kk + j] > 0.0f) {
            ids[c] = o->idx[r * o->kk + j];
            vals[c++] = o->f[r * o->kk + j];
        }
    return c;
}

static void check_variant(saec_dev *dev, sae_arch arch) {
    set_ctx("separate %s", sae_arch_name(arch));
    problem q;
    rng_seed(1000 + (uint64_t)arch);
    saec_sae *sep = NULL;
    const sae_hparams hs = hparams(arch, 1, N);
    OK(sae_create(dev, &hs, &sep));
    if (!sep) return;
    CHECK(sep->n_params <= 4096, "arena");
    for (int64_t i = 0; i < sep->n_params; i++)
        q.arena[i] = 0.6f * rng_sym();
    if (arch == SAE_JUMPRELU) /* θ in [0.05, 0.6] */
        for (int64_t j = 0; j < M; j++)
            q.arena[tensor(sep, SAE_LOG_THETA)->offset + j] =
                logf(0.05f + 0.55f * (float)rng_unit());
    for (int i = 0; i < N * D; i++)
        q.x[i] = 1.5f * rng_sym();
    for (int i = 0; i < D; i++)
        q.mu[i] = 0.2f * rng_sym();
    for (int i = 0; i < 3 * M; i++) /* positive statistics, some latents far below the mean */
        q.atm[i] = (float)(rng_unit() < 0.4 ? 0.01 * rng_unit() : 0.2 + rng_unit());
    for (int j = 0; j < M; j++)
        q.since[j] = rng_int(3);

    int all[N];
    for (int r = 0; r < N; r++)
        all[r] = r;
    static outcome os, op;
    run(dev, sep, q.arena, &q, all, N, 0, -1, &os);
    const double sst = os.st.sst, coef = sep->sparsity_coef;

    double sse = 0, sst_sum = 0, l0 = 0;
    float db_dec[D] = {0};
    for (int g = 0; g < B; g++) {
        int rows[N], n = 0;
        for (int r = 0; r < N; r++)
            if (bucket_of(r) == g) rows[n++] = r;
        const int64_t l0g = (int64_t)g * MB;
        if (n == 0) { /* the empty bucket: zero gradients, clocks unmoved */
            CHECK(g == EMPTY, "bucket %d has no rows", g);
            for (int i = 0; i < sep->n_tensors; i++) {
                const sae_tensor *t = tensor(sep, i);
                if (t->rows != M) continue;
                for (int64_t v = 0; v < MB * t->cols; v++)
                    CHECK(os.grads[t->offset + l0g * t->cols + v] == 0.0f,
                          "empty bucket: %s gradient %g", t->name,
                          os.grads[t->offset + l0g * t->cols + v]);
            }
            for (int j = 0; j < MB; j++)
                CHECK(os.since[l0g + j] == q.since[l0g + j], "empty bucket: clock moved");
            continue;
        }
        if (arch == SAE_BATCHTOPK) continue; /* selection over the whole batch: no decomposition */
        saec_sae *plain = NULL;
        const sae_hparams hp = hparams(arch, 0, n);
        OK(sae_create(dev, &hp, &plain));
        if (!plain) return;
        static float arena[4096];
        slice_params(sep, plain, q.arena, arena, g);
        /* λ_g / λ = (N_g/N)·SST (the 1/SST_g is applied inside run) */
        const double coef_scale = coef > 0 ? (double)n / N * sst : -1;
        run(dev, plain, arena, &q, rows, n, g, coef_scale, &op);
        const double ratio = op.st.sst / sst; /* SST_g / SST */
        sse += op.st.sse, sst_sum += op.st.sst, l0 += op.st.l0_count;

        for (int i = 0; i < plain->n_tensors; i++) {
            const sae_tensor *tp = tensor(plain, i), *ts = tensor(sep, i);
            if (tp->rows == 0 || i == SAE_B_DEC) continue;
            const int64_t count = tp->rows * tp->cols;
            const float *gs = os.grads + ts->offset + l0g * ts->cols, *gp = op.grads + tp->offset;
            const double scale = max_abs(gp, count) * ratio;
            for (int64_t v = 0; v < count; v++)
                CHECK(close_to(gs[v], gp[v] * ratio, scale),
                      "bucket %d: d%s[%lld] separate %.7g, plain·SST_g/SST %.7g", g, tp->name,
                      (long long)v, gs[v], gp[v] * ratio);
        }
        for (int i = 0; i < D; i++)
            db_dec[i] += (float)(op.grads[tensor(plain, SAE_B_DEC)->offset + i] * ratio);
        for (int j = 0; j < MB; j++)
            CHECK(os.since[l0g + j] == op.since[j], "bucket %d latent %d: clock %lld vs %lld", g, j,
                  (long long)os.since[l0g + j], (long long)op.since[j]);
        if (arch == SAE_ATM)
            for (int s = 0; s < 3; s++)
                for (int j = 0; j < MB; j++)
                    CHECK(close_to(os.atm[s * M + l0g + j], op.atm[s * MB + j],
                                   fabs(op.atm[s * MB + j])),
                          "bucket %d: ATM statistic %d of latent %d: %g vs %g", g, s, j,
                          os.atm[s * M + l0g + j], op.atm[s * MB + j]);
        for (int r = 0; r < n; r++) {
            int32_t is[M], ip[M];
            float vs[M], vp[M];
            const int cs = nonzero_codes(&os, rows[r], is, vs), cp = nonzero_codes(&op, r, ip, vp);
            CHECK(cs == cp, "row %d: %d codes vs %d", rows[r], cs, cp);
            for (int j = 0; j < cs && j < cp; j++)
                CHECK(is[j] == ip[j] + l0g && close_to(vs[j], vp[j], fabs(vp[j])),
                      "row %d code %d: latent %d = %g vs %d = %g", rows[r], j, is[j], vs[j],
                      (int)(ip[j] + l0g), vp[j]);
            for (int i = 0; i < D; i++)
                CHECK(close_to(os.xhat[rows[r] * D + i], op.xhat[r * D + i],
                               fabs(op.xhat[r * D + i])),
                      "row %d: eval x̂[%d] %g vs %g", rows[r], i, os.xhat[rows[r] * D + i],
                      op.xhat[r * D + i]);
        }
        sae_destroy(plain);
    }
    if (arch == SAE_BATCHTOPK) {
        CHECK(os.st.l0_count == (double)N * K, "batchtopk L0 %g, expected N·k = %d", os.st.l0_count,
              N * K);
    } else {
        CHECK(close_to(os.st.sse, sse, sse), "SSE %.9g vs Σ buckets %.9g", os.st.sse, sse);
        CHECK(close_to(sst, sst_sum, sst), "SST %.9g vs Σ buckets %.9g", sst, sst_sum);
        CHECK(os.st.l0_count == l0, "L0 count %g vs Σ buckets %g", os.st.l0_count, l0);
        const float *gb = os.grads + tensor(sep, SAE_B_DEC)->offset;
        for (int i = 0; i < D; i++)
            CHECK(close_to(gb[i], db_dec[i], max_abs(db_dec, D)),
                  "db_dec[%d] %.7g vs Σ buckets %.7g", i, gb[i], db_dec[i]);
    }
    sae_destroy(sep);
}

static void check_refusals(saec_dev *dev) {
    set_ctx("separate refusals");
    saec_sae *sae = NULL;
    sae_hparams hp = hparams(SAE_TOPK, 1, N);
    hp.m = M + 1; /* not a multiple of B */
    CHECK(sae_create(dev, &hp, &sae) == SAEC_ERR_USAGE && !sae, "m %% B != 0 accepted");
    saec_error_clear();
    hp = hparams(SAE_TOPK, 1, N);
    hp.k = MB + 1; /* more than one bucket's SAE has */
    CHECK(sae_create(dev, &hp, &sae) == SAEC_ERR_USAGE && !sae, "k > m/B accepted");
    saec_error_clear();
}

int main(void) {
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "cannot open the CPU device: %s\n", saec_error_message());
        return 1;
    }
    const sae_arch archs[] = {SAE_TOPK, SAE_RELU, SAE_JUMPRELU, SAE_ATM, SAE_BATCHTOPK};
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        check_variant(dev, archs[i]);
    check_refusals(dev);
    saec_dev_close(dev);
    printf("test_separate_mode: %d checks, %d failures\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
