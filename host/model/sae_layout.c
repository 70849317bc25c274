/* The SAE's layout and lifecycle: the hyper-parameters from the configuration, the one parameter
   layout (arena order = checkpoint order), allocation of the arenas and the step's buffers,
   initialisation from a data sample, and destruction. The step is in sae_step.c, the adaLN MLP
   in sae_adaln.c, the data-parallel pieces in sae_distributed.c, separate mode in
   sae_separate.c. */
#include "sae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rng.h"
#include "sae_internal.h"
#include "sae_separate.h"

void sae_hparams_from_config(const saec_config *cfg, int64_t d, int64_t dead_after, int64_t batch,
                             sae_hparams *out) {
    const sae_arch arch = saec_config_arch(cfg);
    /* timestep_mode is resolved (auto → bucket or none) once the data is known (train.c); an
       unresolved auto counts as none */
    const sae_ts_mode ts_mode = saec_config_timestep_mode(cfg, 0);
    const int with_aux = (arch == SAE_TOPK || arch == SAE_BATCHTOPK) && cfg->aux_alpha > 0;
    const int64_t aux_k = cfg->aux_k > 0 ? cfg->aux_k : (d / 2 > 0 ? d / 2 : 1);
    *out = (sae_hparams){
        .arch = arch,
        .d = d,
        .m = cfg->latents,
        .k = cfg->k,
        .aux_k = with_aux ? aux_k : 0,
        .aux_alpha = (float)cfg->aux_alpha,
        .dead_after = dead_after,
        .batch = batch,
        .l1_coef = (float)cfg->l1_coef,
        .jumprelu_l0_coef = (float)cfg->jumprelu_l0_coef,
        .sparsity_warmup = (float)cfg->sparsity_warmup,
        .jumprelu_bandwidth = (float)cfg->jumprelu_bandwidth,
        .jumprelu_theta_init = (float)cfg->jumprelu_theta_init,
        .batchtopk_ema = (float)cfg->batchtopk_ema,
        .batchtopk_threshold_start = cfg->batchtopk_threshold_start,
        .atm_beta = (float)cfg->atm_beta,
        .atm_weights = {(float)cfg->atm_w_magnitude, (float)cfg->atm_w_frequency,
                        (float)cfg->atm_w_contribution},
        .atm_c = (float)cfg->atm_c,
        .atm_rate = (float)cfg->atm_rate,
        .atm_warmup = (float)cfg->atm_warmup,
        .ts_mode = ts_mode,
        .timestep_buckets =
            ts_mode == SAE_TS_BUCKET || ts_mode == SAE_TS_SEPARATE ? cfg->timestep_buckets : 0,
        .timesteps = cfg->timesteps,
        .adaln_dim = cfg->adaln_dim,
        .seed = (uint64_t)cfg->seed,
    };
}

/* The one place that lays the parameters out (arena order = checkpoint order). */
static int64_t sae_lay_out(saec_sae *sae) {
    const int64_t d = sae->d, m = sae->m;
    const int64_t E = sae->hp.ts_mode == SAE_TS_ADALN ? sae->hp.adaln_dim : 0; /* H = E */
    const int64_t B = sae->hp.ts_mode == SAE_TS_BUCKET ? sae->hp.timestep_buckets : 0;
    const struct {
        const char *name;
        int64_t rows, cols;
    } spec[SAE_N_TENSORS] = {
        [SAE_W_ENC_T] = {"W_enc_t", m, d},
        [SAE_B_ENC] = {"b_enc", m, 1},
        [SAE_W_DEC] = {"W_dec", m, d},
        [SAE_B_DEC] = {"b_dec", d, 1},
        [SAE_LOG_THETA] = {"log_theta", sae->arch == SAE_JUMPRELU ? m : 0, 1},
        [SAE_TS_SCALE] = {"ts_scale", B, d},
        [SAE_TS_SHIFT] = {"ts_shift", B, d},
        [SAE_ADA_W1] = {"adaln_W1", E, E},
        [SAE_ADA_B1] = {"adaln_b1", E, 1},
        [SAE_ADA_W_S] = {"adaln_W_scale", E, d},
        [SAE_ADA_B_S] = {"adaln_b_scale", E ? d : 0, 1},
        [SAE_ADA_W_H] = {"adaln_W_shift", E, d},
        [SAE_ADA_B_H] = {"adaln_b_shift", E ? d : 0, 1},
    };
    /* the last tensor this configuration has; absent ones before it have rows = 0 */
    sae->n_tensors = sae->hp.ts_mode == SAE_TS_ADALN    ? SAE_N_TENSORS
                     : sae->hp.ts_mode == SAE_TS_BUCKET ? SAE_ADA_W1
                     : sae->arch == SAE_JUMPRELU        ? SAE_TS_SCALE
                                                        : SAE_LOG_THETA;
    int64_t offset = 0;
    for (int i = 0; i < sae->n_tensors; i++) {
        sae->layout[i] = (sae_tensor){spec[i].name, spec[i].rows, spec[i].cols, offset};
        /* keep every tensor 16-float aligned so vector loads stay aligned on every backend */
        offset += (spec[i].rows * spec[i].cols + 15) / 16 * 16;
    }
    return offset;
}

/* Point the views of `t` into `arena` (the tensors laid out and present). */
static void sae_point_views(sae_tensors *t, float *arena, const sae_tensor *layout, int n_tensors) {
    float **views[SAE_N_TENSORS] = {&t->W_enc_t,   &t->b_enc,    &t->W_dec,    &t->b_dec,
                                    &t->log_theta, &t->ts_scale, &t->ts_shift, &t->ada_W1,
                                    &t->ada_b1,    &t->ada_W_s,  &t->ada_b_s,  &t->ada_W_h,
                                    &t->ada_b_h};
    for (int i = 0; i < n_tensors; i++)
        if (layout[i].rows > 0) *views[i] = arena + layout[i].offset;
}

int sae_dev_alloc(saec_sae *sae, void **p, size_t bytes) {
    return sae->dev->ops->alloc(sae->dev, bytes ? bytes : 16, p);
}

static int sae_allocate(saec_sae *sae) {
    const int64_t d = sae->d, m = sae->m, k = sae->k, ka = sae->aux_k, n = sae->batch;
    sae->n_params = sae_lay_out(sae);
    const int64_t W = sae->hp.optimizer_shards > 1 ? sae->hp.optimizer_shards : 1;
    /* ZeRO-1 shards are 16-float aligned, like the tensors */
    sae->shard = W > 1 ? ((sae->n_params + W - 1) / W + 15) / 16 * 16 : sae->n_params;
    sae->arena_len = W > 1 ? W * sae->shard : sae->n_params;
    sae->shard_lo = 0;
    sae->shard_count = sae->n_params; /* until sae_set_comm says which shard */
    SAE_ALLOC(sae->param_arena, sae->arena_len);
    SAE_ALLOC(sae->grad_arena, sae->arena_len);
    SAE_ALLOC(sae->adam_m, sae->shard);
    SAE_ALLOC(sae->adam_v, sae->shard);
    sae_point_views(&sae->params, sae->param_arena, sae->layout, sae->n_tensors);
    sae_point_views(&sae->grads, sae->grad_arena, sae->layout, sae->n_tensors);
    SAE_ALLOC(sae->data_mean, d);
    SAE_ALLOC(sae->since_fired, m);
    SAE_ALLOC(sae->dead_mask, m);
    SAE_ALLOC(sae->acts.x, n * d);
    SAE_ALLOC(sae->acts.xc, n * d);
    sae->acts.enc_in = sae->acts.xc;
    if (sae->hp.timestep_buckets > 0) {
        SAE_ALLOC(sae->acts.bucket, n);
        sae->acts.bucket_host = malloc(sizeof(int32_t) * (size_t)n);
        if (!sae->acts.bucket_host) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
    }
    if (sae->hp.ts_mode == SAE_TS_BUCKET) {
        SAE_ALLOC(sae->acts.u, n * d);
        sae->acts.enc_in = sae->acts.u;
    }
    if (sae->hp.ts_mode == SAE_TS_SEPARATE) SAEC_TRY(sae_separate_allocate(sae));
    if (sae->hp.ts_mode == SAE_TS_ADALN) SAEC_TRY(sae_adaln_allocate(sae));
    /* the codes' width: m, or one bucket's m/B in separate mode (rows use their SAE's latents) */
    const int64_t mw = sae->hp.ts_mode == SAE_TS_SEPARATE ? m / sae->hp.timestep_buckets : m;
    SAE_ALLOC(sae->acts.pre, n * mw);
    if (sae->dense) {
        SAE_ALLOC(sae->acts.fd, n * mw);
        SAE_ALLOC(sae->acts.dfd, n * mw);
    } else {
        SAE_ALLOC(sae->acts.idx, n * k);
        SAE_ALLOC(sae->acts.f, n * k);
        SAE_ALLOC(sae->acts.df, n * k);
    }
    SAE_ALLOC(sae->acts.xhat, n * d);
    SAE_ALLOC(sae->acts.g, n * d);
    SAE_ALLOC(sae->acts.dxc, n * d);
    if (sae->arch == SAE_BATCHTOPK) {
        SAE_ALLOC(sae->bt_threshold, 1);
        SAE_ALLOC(sae->bt_batch_thr, 1);
    }
    if (sae->arch == SAE_ATM) {
        SAE_ALLOC(sae->atm_stats, 3 * m);
        SAE_ALLOC(sae->atm_keep, m);
    }
    if (ka > 0) {
        SAE_ALLOC(sae->acts.e, n * d);
        SAE_ALLOC(sae->acts.e_mean, d);
        SAE_ALLOC(sae->acts.idx_aux, n * ka);
        SAE_ALLOC(sae->acts.f_aux, n * ka);
        SAE_ALLOC(sae->acts.ehat, n * d);
        SAE_ALLOC(sae->acts.g_aux, n * d);
        SAE_ALLOC(sae->acts.df_aux, n * ka);
    }
    SAE_ALLOC(sae->stats, SAEC_STAT_COUNT);
    SAE_ALLOC(sae->aux_stats, SAEC_STAT_COUNT);
    SAE_ALLOC(sae->grad_sumsq, 1);
    SAE_ALLOC(sae->dead_count, 1);
    SAE_ALLOC(sae->l0_count, 1);
    SAE_ALLOC(sae->penalty, 1);
    return SAEC_OK;
}

int sae_create(saec_dev *dev, const sae_hparams *hp, saec_sae **out) {
    *out = NULL;
    const int64_t d = hp->d, m = hp->m, batch = hp->batch;
    int64_t aux_k = hp->k > m ? 0 : hp->aux_k;
    if (aux_k > m) aux_k = m;
    if (hp->ts_mode == SAE_TS_SEPARATE) { /* each bucket's SAE has m/B latents */
        const int64_t B = hp->timestep_buckets;
        if (B < 1 || m % B != 0 ||
            (hp->arch == SAE_TOPK || hp->arch == SAE_BATCHTOPK ? hp->k > m / B : 0))
            return saec_fail(
                SAEC_ERR_USAGE,
                "give latents a multiple of timestep_buckets and k <= latents/buckets",
                "separate mode cannot split %lld latents over %lld buckets with k = %lld",
                (long long)m, (long long)B, (long long)hp->k);
        if (aux_k > m / B) aux_k = m / B;
    }
    if (hp->ts_mode == SAE_TS_ADALN && hp->timesteps * hp->adaln_dim > ((int64_t)1 << 26))
        return saec_fail(SAEC_ERR_USAGE, "lower timesteps or adaln_dim",
                         "adaln's embedding table of timesteps x adaln_dim = %lld x %lld floats is "
                         "beyond its limit of 2^26",
                         (long long)hp->timesteps, (long long)hp->adaln_dim);
    saec_sae *sae = calloc(1, sizeof *sae);
    if (!sae) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory creating the SAE");
    *sae = (saec_sae){.dev = dev,
                      .hp = *hp,
                      .arch = hp->arch,
                      .dense = hp->arch != SAE_TOPK,
                      .constrained = hp->arch != SAE_RELU,
                      .d = d,
                      .m = m,
                      .k = hp->k,
                      .aux_k = aux_k,
                      .batch = batch,
                      .aux_alpha = hp->aux_alpha,
                      .dead_after = hp->dead_after,
                      .world = 1,
                      .scale = 1.0f};
    int rc = sae_allocate(sae);
    if (rc != SAEC_OK) {
        const int dense = sae->dense;
        sae_destroy(sae);
        char hint[512];
        snprintf(hint, sizeof hint,
                 "the run needs about %.2f GiB on %s; lower latents or batch_size",
                 (double)(4 * 4 * m * d + 4 * batch * (m * (dense ? 3 : 1) + 8 * d)) / (1 << 30),
                 dev->name);
        saec_error_clear();
        return saec_fail(SAEC_ERR_DEVICE, hint,
                         "cannot allocate the SAE (d=%lld, m=%lld, batch=%lld)", (long long)d,
                         (long long)m, (long long)batch);
    }
    *out = sae;
    return SAEC_OK;
}

void sae_destroy(saec_sae *sae) {
    if (!sae) return;
    saec_dev *dev = sae->dev;
    void *bufs[] = {
        sae->param_arena,  sae->grad_arena,  sae->adam_m,         sae->adam_v,
        sae->data_mean,    sae->since_fired, sae->dead_mask,      sae->acts.x,
        sae->acts.xc,      sae->acts.pre,    sae->acts.idx,       sae->acts.f,
        sae->acts.xhat,    sae->acts.g,      sae->acts.df,        sae->acts.dxc,
        sae->acts.e,       sae->acts.e_mean, sae->acts.idx_aux,   sae->acts.f_aux,
        sae->acts.ehat,    sae->acts.g_aux,  sae->acts.df_aux,    sae->stats,
        sae->aux_stats,    sae->grad_sumsq,  sae->dead_count,     sae->l0_count,
        sae->penalty,      sae->acts.fd,     sae->acts.dfd,       sae->bt_threshold,
        sae->bt_batch_thr, sae->atm_stats,   sae->atm_keep,       sae->acts.u,
        sae->acts.bucket,  sae->acts.emb,    sae->acts.emb_table, sae->acts.timestep,
        sae->acts.ada_a1,  sae->acts.ada_h1, sae->acts.ada_s,     sae->acts.ada_h,
        sae->acts.ada_ds,  sae->acts.ada_dh, sae->acts.ada_dh1,   sae->acts.row_index,
        sae->acts.perm,    sae->acts.inv,    sae->acts.offsets,   sae->acts.group_counts,
        sae->acts.xs,      sae->acts.xhat_s, sae->group_penalty};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) dev->ops->free(dev, bufs[i]);
    free(sae->acts.bucket_host);
    free(sae->acts.offsets_host);
    free(sae->acts.perm_host);
    free(sae->acts.group_tokens);
    free(sae);
}

/* W [rows, cols] ← U(−1/√cols, 1/√cols) from stream `stream` of `seed`, drawn in row order
   through the host scratch `host` [rows·cols]. */
static int kaiming_uniform(saec_sae *sae, float *W, int64_t rows, int64_t cols, uint64_t seed,
                           uint64_t stream, float *host) {
    saec_rng rng;
    saec_rng_init(&rng, seed, stream, 0);
    const double bound = 1.0 / sqrt((double)cols);
    for (int64_t i = 0; i < rows * cols; i++)
        host[i] = (float)((2.0 * saec_rng_uniform(&rng) - 1.0) * bound);
    return sae->dev->ops->upload(sae->dev, W, host, sizeof(float) * (size_t)(rows * cols));
}

int sae_init(saec_sae *sae, const float *sample, int64_t n, int median_iters, uint64_t seed) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m;

    /* s so that E‖x/s‖² = d; μ of the normalised rows. */
    double sumsq = 0;
    double *mean = calloc((size_t)d, sizeof(double));
    const int64_t E = sae->hp.ts_mode == SAE_TS_ADALN ? sae->hp.adaln_dim : 0;
    int64_t host_len = n * d > m * d ? n * d : m * d;
    if (E * E > host_len) host_len = E * E;
    float *host = malloc(sizeof(float) * (size_t)host_len);
    float *mean_f = malloc(sizeof(float) * (size_t)d);
    if (!mean || !host || !mean_f) {
        free(mean), free(host), free(mean_f);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory initialising the SAE");
    }
    for (int64_t i = 0; i < n * d; i++)
        sumsq += (double)sample[i] * sample[i];
    double s = sqrt(sumsq / ((double)n * (double)d));
    if (!(s > 0) || !isfinite(s)) {
        free(mean), free(host), free(mean_f);
        return saec_fail(SAEC_ERR_DATA, "the data looks constant zero or non-finite; check it",
                         "cannot derive the data scale: mean squared norm of the sample is %g",
                         sumsq / (double)n);
    }
    sae->scale = (float)s;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            host[i * d + j] = (float)(sample[i * d + j] / s);
            mean[j] += host[i * d + j];
        }
    for (int64_t j = 0; j < d; j++)
        mean_f[j] = (float)(mean[j] / (double)n);
    free(mean);
    int rc = dev->ops->upload(dev, sae->data_mean, mean_f, sizeof(float) * (size_t)d);
    free(mean_f);

    /* b_dec: geometric median of the normalised sample, on the device. */
    float *dsample = NULL, *scratch = NULL;
    if (rc == SAEC_OK) rc = sae_dev_alloc(sae, (void **)&dsample, sizeof(float) * (size_t)(n * d));
    if (rc == SAEC_OK) rc = sae_dev_alloc(sae, (void **)&scratch, sizeof(float) * (size_t)n);
    if (rc == SAEC_OK) rc = dev->ops->upload(dev, dsample, host, sizeof(float) * (size_t)(n * d));
    if (rc == SAEC_OK)
        rc =
            SAEC_OP(dev, geometric_median, dsample, n, d, median_iters, scratch, sae->params.b_dec);
    if (dsample) dev->ops->free(dev, dsample);
    if (scratch) dev->ops->free(dev, scratch);

    /* W_enc: Kaiming-uniform U(−1/√d, 1/√d), drawn in W_enc_t order; W_dec = W_encᵀ, unit rows. */
    if (rc == SAEC_OK)
        rc = kaiming_uniform(sae, sae->params.W_enc_t, m, d, seed, SAEC_RNG_INIT_WEIGHTS, host);
    if (rc == SAEC_OK)
        rc = dev->ops->copy(dev, sae->params.W_dec, sae->params.W_enc_t,
                            sizeof(float) * (size_t)(m * d));
    if (rc == SAEC_OK) rc = SAEC_OP(dev, normalize_rows, sae->params.W_dec, m, d);
    if (rc == SAEC_OK) rc = dev->ops->zero(dev, sae->params.b_enc, sizeof(float) * (size_t)m);
    /* W1 Kaiming-uniform from its own stream; b1 and the output layer start at 0 (adaLN-zero:
       the SAE starts unmodulated and learns how t should steer it). */
    if (rc == SAEC_OK && sae->hp.ts_mode == SAE_TS_ADALN)
        rc = kaiming_uniform(sae, sae->params.ada_W1, E, E, seed, SAEC_RNG_INIT_ADALN, host);
    if (rc == SAEC_OK && sae->arch == SAE_JUMPRELU) {
        for (int64_t j = 0; j < m; j++)
            host[j] = logf(sae->hp.jumprelu_theta_init);
        rc = dev->ops->upload(dev, sae->params.log_theta, host, sizeof(float) * (size_t)m);
    }
    free(host);
    return rc;
}
