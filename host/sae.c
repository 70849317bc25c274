/* The SAE and its variants: parameter layout, initialisation, forward, backward (sparse for
   TopK, dense GEMMs for the variants with variable L0), optimizer step. */
#include "sae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
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

static int dev_alloc(saec_sae *sae, void **p, size_t bytes) {
    return sae->dev->ops->alloc(sae->dev, bytes ? bytes : 16, p);
}

#define ALLOC(ptr, count)                                                                          \
    SAEC_TRY(dev_alloc(sae, (void **)&(ptr), sizeof(*(ptr)) * (size_t)(count)))

/* adaln's buffers, and two constant tables built once: the sinusoidal embedding of every
   timestep [T, E] (a step gathers its rows' entries on the device instead of computing and
   uploading n·E values), and the row indices 0 .. batch−1 (each row its own modulation). */
static int sae_adaln_allocate(saec_sae *sae) {
    const int64_t d = sae->d, n = sae->batch, E = sae->hp.adaln_dim, T = sae->hp.timesteps;
    ALLOC(sae->acts.u, n * d);
    ALLOC(sae->acts.emb, n * E);
    ALLOC(sae->acts.emb_table, T * E);
    ALLOC(sae->acts.timestep, n);
    ALLOC(sae->acts.ada_a1, n * E);
    ALLOC(sae->acts.ada_h1, n * E);
    ALLOC(sae->acts.ada_s, n * d);
    ALLOC(sae->acts.ada_h, n * d);
    ALLOC(sae->acts.ada_ds, n * d);
    ALLOC(sae->acts.ada_dh, n * d);
    ALLOC(sae->acts.ada_dh1, n * E);
    ALLOC(sae->acts.row_index, n);
    sae->acts.enc_in = sae->acts.u;
    float *table = malloc(sizeof(float) * (size_t)(T * E));
    int32_t *iota = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!table || !iota) {
        free(table), free(iota);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
    }
    /* the transformer's embedding of t (sin and cos at E/2 frequencies from 1 down to 1/10000),
       as DiT embeds its timestep */
    const int64_t half = E / 2;
    for (int64_t j = 0; j < half; j++) {
        const double freq = exp(-log(10000.0) * (double)j / (double)half);
        for (int64_t t = 0; t < T; t++) {
            table[t * E + j] = (float)sin((double)t * freq);
            table[t * E + half + j] = (float)cos((double)t * freq);
        }
    }
    for (int64_t i = 0; i < n; i++)
        iota[i] = (int32_t)i;
    int rc = sae->dev->ops->upload(sae->dev, sae->acts.emb_table, table,
                                   sizeof(float) * (size_t)(T * E));
    if (rc == SAEC_OK)
        rc =
            sae->dev->ops->upload(sae->dev, sae->acts.row_index, iota, sizeof(int32_t) * (size_t)n);
    free(table), free(iota);
    return rc;
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
    ALLOC(sae->param_arena, sae->arena_len);
    ALLOC(sae->grad_arena, sae->arena_len);
    ALLOC(sae->adam_m, sae->shard);
    ALLOC(sae->adam_v, sae->shard);
    sae_point_views(&sae->params, sae->param_arena, sae->layout, sae->n_tensors);
    sae_point_views(&sae->grads, sae->grad_arena, sae->layout, sae->n_tensors);
    ALLOC(sae->data_mean, d);
    ALLOC(sae->since_fired, m);
    ALLOC(sae->dead_mask, m);
    ALLOC(sae->acts.x, n * d);
    ALLOC(sae->acts.xc, n * d);
    sae->acts.enc_in = sae->acts.xc;
    if (sae->hp.timestep_buckets > 0) {
        ALLOC(sae->acts.bucket, n);
        sae->acts.bucket_host = malloc(sizeof(int32_t) * (size_t)n);
        if (!sae->acts.bucket_host) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
    }
    if (sae->hp.ts_mode == SAE_TS_BUCKET) {
        ALLOC(sae->acts.u, n * d);
        sae->acts.enc_in = sae->acts.u;
    }
    if (sae->hp.ts_mode == SAE_TS_SEPARATE) SAEC_TRY(sae_separate_allocate(sae));
    if (sae->hp.ts_mode == SAE_TS_ADALN) SAEC_TRY(sae_adaln_allocate(sae));
    /* the codes' width: m, or one bucket's m/B in separate mode (rows use their SAE's latents) */
    const int64_t mw = sae->hp.ts_mode == SAE_TS_SEPARATE ? m / sae->hp.timestep_buckets : m;
    ALLOC(sae->acts.pre, n * mw);
    if (sae->dense) {
        ALLOC(sae->acts.fd, n * mw);
        ALLOC(sae->acts.dfd, n * mw);
    } else {
        ALLOC(sae->acts.idx, n * k);
        ALLOC(sae->acts.f, n * k);
        ALLOC(sae->acts.df, n * k);
    }
    ALLOC(sae->acts.xhat, n * d);
    ALLOC(sae->acts.g, n * d);
    ALLOC(sae->acts.dxc, n * d);
    if (sae->arch == SAE_BATCHTOPK) {
        ALLOC(sae->bt_threshold, 1);
        ALLOC(sae->bt_batch_thr, 1);
    }
    if (sae->arch == SAE_ATM) {
        ALLOC(sae->atm_stats, 3 * m);
        ALLOC(sae->atm_keep, m);
    }
    if (ka > 0) {
        ALLOC(sae->acts.e, n * d);
        ALLOC(sae->acts.e_mean, d);
        ALLOC(sae->acts.idx_aux, n * ka);
        ALLOC(sae->acts.f_aux, n * ka);
        ALLOC(sae->acts.ehat, n * d);
        ALLOC(sae->acts.g_aux, n * d);
        ALLOC(sae->acts.df_aux, n * ka);
    }
    ALLOC(sae->stats, SAEC_STAT_COUNT);
    ALLOC(sae->aux_stats, SAEC_STAT_COUNT);
    ALLOC(sae->grad_sumsq, 1);
    ALLOC(sae->dead_count, 1);
    ALLOC(sae->l0_count, 1);
    ALLOC(sae->penalty, 1);
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
    if (rc == SAEC_OK) rc = dev_alloc(sae, (void **)&dsample, sizeof(float) * (size_t)(n * d));
    if (rc == SAEC_OK) rc = dev_alloc(sae, (void **)&scratch, sizeof(float) * (size_t)n);
    if (rc == SAEC_OK) rc = dev->ops->upload(dev, dsample, host, sizeof(float) * (size_t)(n * d));
    if (rc == SAEC_OK)
        rc =
            SAEC_OP(dev, geometric_median, dsample, n, d, median_iters, scratch, sae->params.b_dec);
    if (dsample) dev->ops->free(dev, dsample);
    if (scratch) dev->ops->free(dev, scratch);

    /* W_enc: Kaiming-uniform U(−1/√d, 1/√d), drawn in W_enc_t order; W_dec = W_encᵀ, unit rows. */
    if (rc == SAEC_OK) {
        saec_rng rng;
        saec_rng_init(&rng, seed, SAEC_RNG_INIT_WEIGHTS, 0);
        const double bound = 1.0 / sqrt((double)d);
        for (int64_t i = 0; i < m * d; i++)
            host[i] = (float)((2.0 * saec_rng_uniform(&rng) - 1.0) * bound);
        rc = dev->ops->upload(dev, sae->params.W_enc_t, host, sizeof(float) * (size_t)(m * d));
    }
    if (rc == SAEC_OK)
        rc = dev->ops->copy(dev, sae->params.W_dec, sae->params.W_enc_t,
                            sizeof(float) * (size_t)(m * d));
    if (rc == SAEC_OK) rc = SAEC_OP(dev, normalize_rows, sae->params.W_dec, m, d);
    if (rc == SAEC_OK) rc = dev->ops->zero(dev, sae->params.b_enc, sizeof(float) * (size_t)m);
    if (rc == SAEC_OK && sae->hp.ts_mode == SAE_TS_ADALN) {
        /* W1 Kaiming-uniform from its own stream; b1 and the output layer start at 0 (adaLN-zero:
           the SAE starts unmodulated and learns how t should steer it). */
        saec_rng rng;
        saec_rng_init(&rng, seed, SAEC_RNG_INIT_ADALN, 0);
        const double bound = 1.0 / sqrt((double)E);
        for (int64_t i = 0; i < E * E; i++)
            host[i] = (float)((2.0 * saec_rng_uniform(&rng) - 1.0) * bound);
        rc = dev->ops->upload(dev, sae->params.ada_W1, host, sizeof(float) * (size_t)(E * E));
    }
    if (rc == SAEC_OK && sae->arch == SAE_JUMPRELU) {
        for (int64_t j = 0; j < m; j++)
            host[j] = logf(sae->hp.jumprelu_theta_init);
        rc = dev->ops->upload(dev, sae->params.log_theta, host, sizeof(float) * (size_t)m);
    }
    free(host);
    return rc;
}

int sae_set_timesteps(saec_sae *sae, const int32_t *timesteps, int64_t n) {
    const int64_t B = sae->hp.timestep_buckets, T = sae->hp.timesteps, E = sae->hp.adaln_dim;
    if (sae->hp.ts_mode == SAE_TS_NONE) return SAEC_OK;
    if (n > sae->batch)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "sae_set_timesteps: %lld rows exceed the batch capacity %lld",
                         (long long)n, (long long)sae->batch);
    for (int64_t i = 0; i < n; i++)
        if (timesteps[i] < 0 || timesteps[i] >= T)
            return saec_fail(SAEC_ERR_DATA, "set --timesteps to the diffusion schedule's length",
                             "timestep %lld of a batch row is outside [0, %lld)",
                             (long long)timesteps[i], (long long)T);
    if (sae->hp.ts_mode == SAE_TS_BUCKET || sae->hp.ts_mode == SAE_TS_SEPARATE) {
        for (int64_t i = 0; i < n; i++) /* b(t) = floor(t·B/T), SPEC §6 */
            sae->acts.bucket_host[i] = sae_timestep_bucket(timesteps[i], B, T);
        SAEC_TRY(sae->dev->ops->upload(sae->dev, sae->acts.bucket, sae->acts.bucket_host,
                                       sizeof(int32_t) * (size_t)n));
        return sae->hp.ts_mode == SAE_TS_SEPARATE ? sae_separate_group(sae, n) : SAEC_OK;
    }
    /* adaln: the rows' entries of the embedding table */
    SAEC_TRY(sae->dev->ops->upload(sae->dev, sae->acts.timestep, timesteps,
                                   sizeof(int32_t) * (size_t)n));
    return SAEC_OP(sae->dev, gather_rows, sae->acts.emb_table, sae->acts.timestep, n, 1, E,
                   sae->acts.emb);
}

/* adaln: the per-token scale s and shift h [n, d] from the timestep embedding. */
static int sae_adaln_forward(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, E = sae->hp.adaln_dim;
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n, E, E, 1.0f, sae->acts.emb, E, sae->params.ada_W1, E, 0.0f,
                     sae->acts.ada_a1, E, sae->params.ada_b1)); /* a1 = emb W1 + b1 */
    SAEC_TRY(SAEC_OP(dev, silu, sae->acts.ada_a1, n * E, sae->acts.ada_h1));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n, d, E, 1.0f, sae->acts.ada_h1, E, sae->params.ada_W_s, d,
                     0.0f, sae->acts.ada_s, d, sae->params.ada_b_s)); /* s = h1 W_s + b_s */
    return SAEC_OP(dev, gemm, 0, 0, n, d, E, 1.0f, sae->acts.ada_h1, E, sae->params.ada_W_h, d,
                   0.0f, sae->acts.ada_h, d, sae->params.ada_b_h); /* h = h1 W_h + b_h */
}

/* adaln: given ∂L/∂s and ∂L/∂h [n, d], the MLP's gradients (into the zeroed arena). */
static int sae_adaln_backward(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, E = sae->hp.adaln_dim;
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, E, d, n, 1.0f, sae->acts.ada_h1, E, sae->acts.ada_ds, d, 0.0f,
                     sae->grads.ada_W_s, d, NULL)); /* dW_s = h1ᵀ ds */
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.ada_ds, n, d, 1.0f, 0.0f, sae->grads.ada_b_s));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, E, d, n, 1.0f, sae->acts.ada_h1, E, sae->acts.ada_dh, d, 0.0f,
                     sae->grads.ada_W_h, d, NULL)); /* dW_h = h1ᵀ dh */
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.ada_dh, n, d, 1.0f, 0.0f, sae->grads.ada_b_h));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n, E, d, 1.0f, sae->acts.ada_ds, d, sae->params.ada_W_s, d,
                     0.0f, sae->acts.ada_dh1, E, NULL)); /* ∂L/∂h1 = ds W_sᵀ + dh W_hᵀ */
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n, E, d, 1.0f, sae->acts.ada_dh, d, sae->params.ada_W_h, d,
                     1.0f, sae->acts.ada_dh1, E, NULL));
    SAEC_TRY(
        SAEC_OP(dev, silu_backward, sae->acts.ada_a1, sae->acts.ada_dh1, n * E, sae->acts.ada_dh1));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, E, E, n, 1.0f, sae->acts.emb, E, sae->acts.ada_dh1, E, 0.0f,
                     sae->grads.ada_W1, E, NULL)); /* dW1 = embᵀ ∂L/∂a1 */
    return SAEC_OP(dev, col_sum, sae->acts.ada_dh1, n, E, 1.0f, 0.0f, sae->grads.ada_b1);
}

void sae_begin_step(saec_sae *sae, int64_t step, int64_t total) {
    const sae_hparams *hp = &sae->hp;
    const double warm = (double)hp->sparsity_warmup * (double)total;
    const double ramp = warm > 0 ? fmin(1.0, (double)(step + 1) / warm) : 1.0;
    const float lambda = sae->arch == SAE_JUMPRELU ? hp->jumprelu_l0_coef : hp->l1_coef;
    sae->sparsity_coef = (float)(lambda * ramp);
    sae->atm_masking = sae->arch == SAE_ATM && (double)step >= (double)hp->atm_warmup * total;
    sae->bt_track = 0;
    if (sae->arch == SAE_BATCHTOPK && step >= hp->batchtopk_threshold_start)
        sae->bt_track = sae->bt_threshold_set ? 1 : 2;
    sae->step = step;
}

int sae_set_comm(saec_sae *sae, saec_comm *comm) {
    sae->comm = comm;
    sae->world = saec_comm_size(comm);
    sae->distributed = strcmp(saec_comm_backend_name(comm), "single") != 0;
    const int W = sae->hp.optimizer_shards > 1 ? sae->hp.optimizer_shards : 1;
    if (W > 1 && W != sae->world)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "the SAE's optimizer state is cut into %d shards for %d ranks", W,
                         sae->world);
    if (W > 1) {
        const int64_t lo = (int64_t)saec_comm_rank(comm) * sae->shard;
        const int64_t left = sae->n_params - lo;
        sae->shard_lo = lo;
        sae->shard_count = left < 0 ? 0 : left < sae->shard ? left : sae->shard;
    }
    return SAEC_OK;
}

static int sae_sharded(const saec_sae *sae) { return sae->hp.optimizer_shards > 1; }

int sae_gather_optimizer(saec_sae *sae, float **adam_m, float **adam_v) {
    *adam_m = *adam_v = NULL;
    if (!sae_sharded(sae)) return SAEC_OK;
    saec_dev *dev = sae->dev;
    const int root = saec_comm_rank(sae->comm) == 0;
    const size_t whole = sizeof(float) * (size_t)sae->n_params;
    float *all = NULL, *host[2] = {NULL, NULL};
    int rc = dev_alloc(sae, (void **)&all, sizeof(float) * (size_t)sae->arena_len);
    const float *moment[2] = {sae->adam_m, sae->adam_v};
    for (int i = 0; i < 2 && rc == SAEC_OK; i++) {
        rc =
            dev->ops->copy(dev, all + sae->shard_lo, moment[i], sizeof(float) * (size_t)sae->shard);
        if (rc == SAEC_OK) rc = saec_comm_allgather(sae->comm, all, sae->shard, SAEC_DT_F32);
        if (rc == SAEC_OK && root) {
            host[i] = malloc(whole);
            rc = host[i] ? dev->ops->download(dev, host[i], all, whole)
                         : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory gathering Adam state");
        }
    }
    if (all) dev->ops->free(dev, all);
    if (rc != SAEC_OK) {
        free(host[0]), free(host[1]);
        return rc;
    }
    *adam_m = host[0], *adam_v = host[1];
    return SAEC_OK;
}

int sae_upload_optimizer(saec_sae *sae, const float *adam_m, const float *adam_v) {
    saec_dev *dev = sae->dev;
    const size_t bytes = sizeof(float) * (size_t)sae->shard_count;
    SAEC_TRY(dev->ops->upload(dev, sae->adam_m, adam_m + sae->shard_lo, bytes));
    return dev->ops->upload(dev, sae->adam_v, adam_v + sae->shard_lo, bytes);
}

int sae_recon(saec_sae *sae, const float *x, const float *xhat, const float *mu, int64_t n,
              float grad_scale, double *stats, float *grad) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d;
    if (!sae->distributed || !grad)
        return SAEC_OP(dev, recon_loss_grad, x, xhat, mu, n, d, grad_scale, stats, grad);
    SAEC_TRY(SAEC_OP(dev, recon_loss_grad, x, xhat, mu, n, d, grad_scale, stats, NULL));
    SAEC_TRY(saec_comm_allreduce(sae->comm, stats, SAEC_STAT_COUNT, SAEC_DT_F64, SAEC_RED_SUM));
    return SAEC_OP(dev, recon_grad, x, xhat, n, d, grad_scale, stats, grad);
}

/* (state every rank must hold alike, updated from its batch) */
int sae_mean_over_ranks(saec_sae *sae, float *buf, int64_t count) {
    if (!sae->distributed) return SAEC_OK;
    SAEC_TRY(saec_comm_allreduce(sae->comm, buf, count, SAEC_DT_F32, SAEC_RED_SUM));
    return SAEC_OP(sae->dev, axpby, count, 1.0f / (float)sae->world, buf, 0.0f, buf, buf);
}

int sae_grads_ready(saec_sae *sae, int first, int last) {
    if (!sae->distributed) return SAEC_OK;
    if (last >= sae->n_tensors) last = sae->n_tensors - 1;
    if (first > last) return SAEC_OK;
    const int64_t begin = sae->layout[first].offset;
    const int64_t end = last + 1 < sae->n_tensors ? sae->layout[last + 1].offset : sae->n_params;
    return saec_comm_grad_start(sae->comm, sae->grad_arena + begin, end - begin);
}

/* Encode the rows of xc [n, d] → (idx, f) [n, kk] restricted to `mask`, via pre [n, m]. */
static int sae_select(saec_sae *sae, int64_t n, int64_t kk, const uint8_t *mask, int32_t *idx,
                      float *f) {
    saec_dev *dev = sae->dev;
    SAEC_TRY(SAEC_OP(dev, topk_rows, sae->acts.pre, n, sae->m, (int)kk, mask, idx, f));
    return SAEC_OP(dev, relu, f, n * kk);
}

int sae_batchtopk_track(saec_sae *sae) {
    saec_dev *dev = sae->dev;
    if (!sae->bt_track) return SAEC_OK;
    /* Each rank selects within its own batch (as DDP ports of BatchTopK do); the threshold
       they track is the mean of the ranks' cut-offs. */
    SAEC_TRY(sae_mean_over_ranks(sae, sae->bt_batch_thr, 1));
    if (sae->bt_track == 2) {
        SAEC_TRY(dev->ops->copy(dev, sae->bt_threshold, sae->bt_batch_thr, sizeof(float)));
        sae->bt_threshold_set = 1;
        return SAEC_OK;
    }
    const float ema = sae->hp.batchtopk_ema;
    return SAEC_OP(dev, axpby, 1, 1.0f - ema, sae->bt_batch_thr, ema, sae->bt_threshold,
                   sae->bt_threshold);
}

/* Dense codes fd [n, m] from pre, by variant. */
static int sae_encode_dense(saec_sae *sae, int64_t n, int train) {
    saec_dev *dev = sae->dev;
    const int64_t m = sae->m;
    switch (sae->arch) {
    case SAE_RELU:
    case SAE_ATM:
        SAEC_TRY(dev->ops->copy(dev, sae->acts.fd, sae->acts.pre, sizeof(float) * (size_t)(n * m)));
        SAEC_TRY(SAEC_OP(dev, relu, sae->acts.fd, n * m));
        if (train && sae->atm_masking) {
            const sae_hparams *hp = &sae->hp;
            SAEC_TRY(SAEC_OP(dev, atm_mask, sae->atm_stats, sae->atm_stats + m,
                             sae->atm_stats + 2 * m, m, hp->atm_weights, hp->atm_c, hp->atm_rate,
                             hp->seed, (uint64_t)sae->step, sae->atm_keep));
            SAEC_TRY(SAEC_OP(dev, scale_cols, sae->acts.fd, n, m, sae->atm_keep));
        }
        return SAEC_OK;
    case SAE_JUMPRELU:
        return SAEC_OP(dev, jumprelu, sae->acts.pre, n, m, sae->params.log_theta, 1, 1,
                       sae->acts.fd);
    case SAE_BATCHTOPK:
        /* Training selects over the batch; inference is a JumpReLU with the tracked θ. */
        if (!train && sae->bt_threshold_set)
            return SAEC_OP(dev, jumprelu, sae->acts.pre, n, m, sae->bt_threshold, 0, 0,
                           sae->acts.fd);
        SAEC_TRY(SAEC_OP(dev, batch_topk, sae->acts.pre, n, m, n * sae->k, sae->acts.fd,
                         sae->bt_batch_thr));
        return train ? sae_batchtopk_track(sae) : SAEC_OK;
    case SAE_TOPK: break;
    }
    return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                     "sae_encode_dense called for a sparse variant");
}

int sae_forward(saec_sae *sae, int64_t n, int train) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m, k = sae->k;
    sae->last_n = n;
    sae->last_train = train;
    if (sae->hp.ts_mode == SAE_TS_SEPARATE) return sae_separate_forward(sae, n, train);

    /* xn = x / s (in place); xc = xn − b_dec; pre = xc W_enc + b_enc (the one dense GEMM). */
    SAEC_TRY(SAEC_OP(dev, scale_add_rows, sae->acts.x, sae->acts.x, n, d, 1.0f / sae->scale, NULL,
                     0.0f));
    SAEC_TRY(SAEC_OP(dev, scale_add_rows, sae->acts.x, sae->acts.xc, n, d, 1.0f, sae->params.b_dec,
                     -1.0f));
    if (sae->hp.ts_mode == SAE_TS_BUCKET) /* pre = ((xc ⊙ (1 + s_b) + h_b) W_enc + b_enc */
        SAEC_TRY(SAEC_OP(dev, modulate_encode, sae->acts.xc, sae->acts.bucket, sae->params.ts_scale,
                         sae->params.ts_shift, (int)sae->hp.timestep_buckets, n, d, m,
                         sae->params.W_enc_t, sae->params.b_enc, sae->acts.u, sae->acts.pre));
    else if (sae->hp.ts_mode == SAE_TS_ADALN) { /* the same with (s, h) = MLP(emb(t)) per row */
        SAEC_TRY(sae_adaln_forward(sae, n));
        SAEC_TRY(SAEC_OP(dev, modulate_encode, sae->acts.xc, sae->acts.row_index, sae->acts.ada_s,
                         sae->acts.ada_h, (int)n, n, d, m, sae->params.W_enc_t, sae->params.b_enc,
                         sae->acts.u, sae->acts.pre));
    } else
        SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n, m, d, 1.0f, sae->acts.xc, d, sae->params.W_enc_t, d,
                         0.0f, sae->acts.pre, m, sae->params.b_enc));

    /* x̂n = f W_dec + b_dec; statistics and ∂nmse/∂x̂. */
    if (sae->dense) {
        SAEC_TRY(sae_encode_dense(sae, n, train));
        SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n, d, m, 1.0f, sae->acts.fd, m, sae->params.W_dec, d,
                         0.0f, sae->acts.xhat, d, sae->params.b_dec));
        SAEC_TRY(SAEC_OP(dev, count_positive, sae->acts.fd, n * m, 0, sae->l0_count));
    } else {
        SAEC_TRY(sae_select(sae, n, k, NULL, sae->acts.idx, sae->acts.f));
        SAEC_TRY(SAEC_OP(dev, sparse_decode, sae->acts.idx, sae->acts.f, sae->params.W_dec,
                         sae->params.b_dec, n, (int)k, m, d, 0, sae->acts.xhat));
        SAEC_TRY(SAEC_OP(dev, count_positive, sae->acts.f, n * k, 0, sae->l0_count));
    }
    SAEC_TRY(sae_recon(sae, sae->acts.x, sae->acts.xhat, sae->data_mean, n, 1.0f, sae->stats,
                       train ? sae->acts.g : NULL));
    if (!train) return SAEC_OK;

    SAEC_TRY(sae_track_fired(sae, n, sae->since_fired, NULL, sae->dead_after, sae->dead_mask,
                             sae->dead_count));
    if (sae->distributed) {
        /* A latent is alive when it fired on any rank: 0 wins the minimum; the others have
           counted their own n tokens and add the other ranks' (the dead mask follows). */
        SAEC_TRY(saec_comm_allreduce(sae->comm, sae->since_fired, m, SAEC_DT_I64, SAEC_RED_MIN));
        SAEC_TRY(SAEC_OP(dev, dead_latents_update, sae->since_fired, m, (sae->world - 1) * n,
                         sae->dead_after, sae->dead_mask, sae->dead_count));
    }
    if (sae->aux_k == 0) return SAEC_OK;

    /* AuxK: the dead latents' top-k_aux model the residual e (a constant): L_aux =
       ‖e − ê‖² / ‖e − mean(e)‖². With no dead latent every slot is empty and ê = 0. */
    const int64_t ka = sae->aux_k;
    SAEC_TRY(SAEC_OP(dev, axpby, n * d, 1.0f, sae->acts.x, -1.0f, sae->acts.xhat, sae->acts.e));
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.e, n, d, 1.0f / (float)(n * sae->world), 0.0f,
                     sae->acts.e_mean));
    if (sae->distributed) /* the global batch's mean residual */
        SAEC_TRY(saec_comm_allreduce(sae->comm, sae->acts.e_mean, d, SAEC_DT_F32, SAEC_RED_SUM));
    SAEC_TRY(sae_select(sae, n, ka, sae->dead_mask, sae->acts.idx_aux, sae->acts.f_aux));
    SAEC_TRY(SAEC_OP(dev, sparse_decode, sae->acts.idx_aux, sae->acts.f_aux, sae->params.W_dec,
                     NULL, n, (int)ka, m, d, 0, sae->acts.ehat));
    return sae_recon(sae, sae->acts.e, sae->acts.ehat, sae->acts.e_mean, n, sae->aux_alpha,
                     sae->aux_stats, sae->acts.g_aux);
}

int sae_track_fired(saec_sae *sae, int64_t n, int64_t *since_fired, int64_t *fire_count,
                    int64_t dead_after, uint8_t *dead_mask, double *dead_count) {
    saec_dev *dev = sae->dev;
    if (sae->hp.ts_mode == SAE_TS_SEPARATE)
        return sae_separate_track_fired(sae, n, since_fired, fire_count, dead_after, dead_mask,
                                        dead_count);
    if (sae->dense)
        return SAEC_OP(dev, track_fired_dense, sae->acts.fd, n, sae->m, since_fired, fire_count,
                       dead_after, dead_mask, dead_count);
    return SAEC_OP(dev, track_fired, sae->acts.idx, sae->acts.f, n, (int)sae->k, sae->m,
                   since_fired, fire_count, dead_after, dead_mask, dead_count);
}

int64_t sae_code_capacity(const saec_sae *sae) {
    if (sae->hp.ts_mode == SAE_TS_SEPARATE) return sae->dense ? sae->group_m : sae->k;
    return sae->dense ? sae->m : sae->k;
}

int sae_download_codes(saec_sae *sae, int64_t n, int32_t *idx, float *f, int64_t *kk) {
    saec_dev *dev = sae->dev;
    const int64_t m = sae->m, k = sae->k;
    if (sae->hp.ts_mode == SAE_TS_SEPARATE) return sae_separate_download_codes(sae, n, idx, f, kk);
    if (!sae->dense) {
        SAEC_TRY(dev->ops->download(dev, idx, sae->acts.idx, sizeof(int32_t) * (size_t)(n * k)));
        SAEC_TRY(dev->ops->download(dev, f, sae->acts.f, sizeof(float) * (size_t)(n * k)));
        *kk = k;
        return SAEC_OK;
    }
    /* Dense [n, m] into f, then compacted row by row to the widest row's count (in place: a row's
       compacted entries never overtake its dense ones). */
    SAEC_TRY(dev->ops->download(dev, f, sae->acts.fd, sizeof(float) * (size_t)(n * m)));
    int64_t widest = 1;
    for (int64_t r = 0; r < n; r++) {
        int64_t c = 0;
        for (int64_t j = 0; j < m; j++)
            c += f[r * m + j] > 0.0f;
        if (c > widest) widest = c;
    }
    for (int64_t r = 0; r < n; r++) {
        int64_t c = 0;
        for (int64_t j = 0; j < m; j++) {
            const float v = f[r * m + j];
            if (v > 0.0f) {
                f[r * widest + c] = v;
                idx[r * widest + c] = (int32_t)j;
                c++;
            }
        }
        for (; c < widest; c++)
            f[r * widest + c] = 0.0f, idx[r * widest + c] = -1;
    }
    *kk = widest;
    return SAEC_OK;
}

/* Backward through one set of codes, decoder side: given the ∂L/∂x̂ contribution g [n, d] of
   codes (idx, f) [n, kk], accumulate dW_dec. */
static int sae_backward_codes_decoder(saec_sae *sae, int64_t n, int64_t kk, const int32_t *idx,
                                      const float *f, const float *g) {
    return SAEC_OP(sae->dev, sparse_outer_accum, idx, f, g, n, (int)kk, sae->m, sae->d,
                   sae->grads.W_dec, NULL);
}

/* ... encoder side: ∂L/∂pre at the kept entries into df, then dW_enc_t, db_enc and ∂L/∂(encoder
   input) into dxc (accumulated when `accumulate`). */
static int sae_backward_codes_encoder(saec_sae *sae, int64_t n, int64_t kk, const int32_t *idx,
                                      const float *f, const float *g, float *df, int accumulate) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m;
    SAEC_TRY(SAEC_OP(dev, sparse_row_dots, g, idx, sae->params.W_dec, n, (int)kk, m, d, df));
    SAEC_TRY(SAEC_OP(dev, relu_backward, f, df, n * kk)); /* ReLU after the selection */
    SAEC_TRY(SAEC_OP(dev, sparse_outer_accum, idx, df, sae->acts.enc_in, n, (int)kk, m, d,
                     sae->grads.W_enc_t, sae->grads.b_enc));
    return SAEC_OP(dev, sparse_decode, idx, df, sae->params.W_enc_t, NULL, n, (int)kk, m, d,
                   accumulate, sae->acts.dxc);
}

/* Dense backward of the main codes, decoder side: dW_dec and ∂L/∂pre (variant rule and penalty)
   into dfd. */
static int sae_backward_dense_decoder(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m;
    float *dpre = sae->acts.dfd; /* [n, m] ∂L/∂f, turned into ∂L/∂pre in place */
    /* the penalties are means over the global batch's tokens */
    const float coef = sae->sparsity_coef / (float)(n * sae->world);
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, m, d, n, 1.0f, sae->acts.fd, m, sae->acts.g, d, 1.0f,
                     sae->grads.W_dec, d, NULL)); /* dW_dec += fᵀ g */
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n, m, d, 1.0f, sae->acts.g, d, sae->params.W_dec, d, 0.0f,
                     dpre, m, NULL)); /* ∂L/∂f = g W_decᵀ */
    switch (sae->arch) {
    case SAE_ATM: {
        const float *a = sae->atm_stats;
        SAEC_TRY(SAEC_OP(dev, atm_stats, sae->acts.fd, dpre, sae->stats, sae->params.W_dec, n, m, d,
                         sae->hp.atm_beta, (float *)a, (float *)a + m, (float *)a + 2 * m));
        /* EMAs of batch means: the mean of the ranks' updates is the global batch's update */
        SAEC_TRY(sae_mean_over_ranks(sae, (float *)a, 3 * m));
        /* ATM is ReLU-L1 with a mask (masked codes are 0: no gradient) */
    }
        /* fall through */
    case SAE_RELU:
        SAEC_TRY(SAEC_OP(dev, relu_backward, sae->acts.fd, dpre, n * m));
        return SAEC_OP(dev, l1_penalty, sae->acts.fd, sae->params.W_dec, n, m, d, coef, dpre,
                       sae->grads.W_dec, sae->penalty);
    case SAE_JUMPRELU:
        return SAEC_OP(dev, jumprelu_backward, sae->acts.pre, sae->params.log_theta, n, m,
                       sae->hp.jumprelu_bandwidth, coef, dpre, sae->grads.log_theta);
    case SAE_BATCHTOPK: return SAEC_OP(dev, relu_backward, sae->acts.fd, dpre, n * m);
    case SAE_TOPK: break;
    }
    return SAEC_OK;
}

/* ... encoder side: dW_enc_t, db_enc, and dxc (overwritten). */
static int sae_backward_dense_encoder(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m;
    const float *dpre = sae->acts.dfd;
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, m, d, n, 1.0f, dpre, m, sae->acts.enc_in, d, 1.0f,
                     sae->grads.W_enc_t, d, NULL)); /* dW_enc_t += dpreᵀ xc (u in bucket mode) */
    SAEC_TRY(SAEC_OP(dev, col_sum, dpre, n, m, 1.0f, 1.0f, sae->grads.b_enc));
    return SAEC_OP(dev, gemm, 0, 0, n, d, m, 1.0f, dpre, m, sae->params.W_enc_t, d, 0.0f,
                   sae->acts.dxc, d, NULL); /* dxc = dpre W_enc_t */
}

int sae_backward(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, k = sae->k, ka = sae->aux_k;
    if (sae->hp.ts_mode == SAE_TS_SEPARATE) return sae_separate_backward(sae, n);
    SAEC_TRY(dev->ops->zero(dev, sae->grad_arena, sizeof(float) * (size_t)sae->n_params));

    /* b_dec enters twice: added to x̂, subtracted from the encoder input. */
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.g, n, d, 1.0f, 0.0f, sae->grads.b_dec));

    /* Decoder gradients first, so that with several ranks dW_dec (the largest) is summed while
       the encoder's backward runs. */
    if (sae->dense)
        SAEC_TRY(sae_backward_dense_decoder(sae, n));
    else
        SAEC_TRY(sae_backward_codes_decoder(sae, n, k, sae->acts.idx, sae->acts.f, sae->acts.g));
    if (ka > 0)
        SAEC_TRY(sae_backward_codes_decoder(sae, n, ka, sae->acts.idx_aux, sae->acts.f_aux,
                                            sae->acts.g_aux));
    SAEC_TRY(sae_grads_ready(sae, SAE_W_DEC, SAE_W_DEC));

    if (sae->dense)
        SAEC_TRY(sae_backward_dense_encoder(sae, n));
    else
        SAEC_TRY(sae_backward_codes_encoder(sae, n, k, sae->acts.idx, sae->acts.f, sae->acts.g,
                                            sae->acts.df, 0));
    if (ka > 0)
        SAEC_TRY(sae_backward_codes_encoder(sae, n, ka, sae->acts.idx_aux, sae->acts.f_aux,
                                            sae->acts.g_aux, sae->acts.df_aux, 1));
    SAEC_TRY(sae_grads_ready(sae, SAE_W_ENC_T, SAE_B_ENC));

    /* bucket, adaln: dxc so far is ∂L/∂u; through the modulation to ∂L/∂xc and ∂L/∂(s, h). */
    if (sae->hp.ts_mode == SAE_TS_BUCKET)
        SAEC_TRY(SAEC_OP(dev, modulate_backward, sae->acts.dxc, sae->acts.xc, sae->acts.bucket,
                         sae->params.ts_scale, (int)sae->hp.timestep_buckets, n, d, sae->acts.dxc,
                         sae->grads.ts_scale, sae->grads.ts_shift));
    if (sae->hp.ts_mode == SAE_TS_ADALN) {
        /* each row its own bucket: ds = ∂L/∂u ⊙ xc, dh = ∂L/∂u */
        SAEC_TRY(dev->ops->zero(dev, sae->acts.ada_ds, sizeof(float) * (size_t)(n * d)));
        SAEC_TRY(dev->ops->zero(dev, sae->acts.ada_dh, sizeof(float) * (size_t)(n * d)));
        SAEC_TRY(SAEC_OP(dev, modulate_backward, sae->acts.dxc, sae->acts.xc, sae->acts.row_index,
                         sae->acts.ada_s, (int)n, n, d, sae->acts.dxc, sae->acts.ada_ds,
                         sae->acts.ada_dh));
        SAEC_TRY(sae_adaln_backward(sae, n));
    }
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.dxc, n, d, -1.0f, 1.0f, sae->grads.b_dec));
    SAEC_TRY(sae_grads_ready(sae, SAE_B_DEC, SAE_N_TENSORS - 1));
    return sae->distributed ? saec_comm_grad_wait(sae->comm) : SAEC_OK;
}

int sae_optimizer_step(saec_sae *sae, saec_adamw_args args) {
    saec_dev *dev = sae->dev;
    if (sae->constrained)
        SAEC_TRY(
            SAEC_OP(dev, project_rows_grad, sae->params.W_dec, sae->grads.W_dec, sae->m, sae->d));
    SAEC_TRY(SAEC_OP(dev, sum_squares, sae->grad_arena, sae->n_params, 0, sae->grad_sumsq));
    /* Every rank holds the whole summed gradient (so the norm above needs no collective); with
       ZeRO-1 each updates its shard from its moments, then they swap shards. */
    const int64_t lo = sae->shard_lo;
    if (sae->shard_count > 0)
        SAEC_TRY(SAEC_OP(dev, adamw, sae->param_arena + lo, sae->grad_arena + lo, sae->adam_m,
                         sae->adam_v, sae->shard_count, args, sae->grad_sumsq));
    if (sae_sharded(sae))
        SAEC_TRY(saec_comm_allgather(sae->comm, sae->param_arena, sae->shard, SAEC_DT_F32));
    if (!sae->constrained) return SAEC_OK;
    return SAEC_OP(dev, normalize_rows, sae->params.W_dec, sae->m, sae->d);
}

int sae_read_stats(saec_sae *sae, sae_step_stats *out) {
    saec_dev *dev = sae->dev;
    double main_stats[SAEC_STAT_COUNT] = {0}, aux[SAEC_STAT_COUNT] = {0}, sumsq = 0, dead = 0,
           l0 = 0, penalty = 0;
    /* The training step already summed SST and the dead latents across ranks; L0 and the penalty
       are only reported, so they are summed here, at logging steps. */
    const int global = sae->distributed && sae->last_train;
    if (global) {
        SAEC_TRY(saec_comm_allreduce(sae->comm, sae->l0_count, 1, SAEC_DT_F64, SAEC_RED_SUM));
        if (sae->arch == SAE_RELU || sae->arch == SAE_ATM) /* separate: one value per bucket */
            SAEC_TRY(saec_comm_allreduce(
                sae->comm, sae->group_penalty ? sae->group_penalty : sae->penalty,
                sae->group_penalty ? sae->hp.timestep_buckets : 1, SAEC_DT_F64, SAEC_RED_SUM));
    }
    SAEC_TRY(dev->ops->download(dev, main_stats, sae->stats, sizeof main_stats));
    SAEC_TRY(dev->ops->download(dev, aux, sae->aux_stats, sizeof aux));
    SAEC_TRY(dev->ops->download(dev, &sumsq, sae->grad_sumsq, sizeof sumsq));
    SAEC_TRY(dev->ops->download(dev, &dead, sae->dead_count, sizeof dead));
    SAEC_TRY(dev->ops->download(dev, &l0, sae->l0_count, sizeof l0));
    if ((sae->arch == SAE_RELU || sae->arch == SAE_ATM) && sae->group_penalty) {
        const int64_t B = sae->hp.timestep_buckets; /* separate: one penalty per bucket's SAE */
        double *part = malloc(sizeof(double) * (size_t)B);
        if (!part) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
        const int rc =
            dev->ops->download(dev, part, sae->group_penalty, sizeof(double) * (size_t)B);
        for (int64_t g = 0; g < B; g++)
            penalty += part[g];
        free(part);
        SAEC_TRY(rc);
    } else if (sae->arch == SAE_RELU || sae->arch == SAE_ATM)
        SAEC_TRY(dev->ops->download(dev, &penalty, sae->penalty, sizeof penalty));
    else if (sae->arch == SAE_JUMPRELU && sae->last_n > 0)
        penalty =
            (double)sae->sparsity_coef * l0 / (double)(sae->last_n * (global ? sae->world : 1));
    *out = (sae_step_stats){.sse = main_stats[SAEC_STAT_SSE],
                            .sst = main_stats[SAEC_STAT_SST],
                            .cos_sum = main_stats[SAEC_STAT_COS_SUM],
                            .aux_sse = aux[SAEC_STAT_SSE],
                            .aux_sst = aux[SAEC_STAT_SST],
                            .grad_norm = sqrt(sumsq),
                            .dead_count = dead,
                            .l0_count = l0,
                            .penalty = penalty};
    return SAEC_OK;
}

double sae_loss(const saec_sae *sae, const sae_step_stats *st) {
    double loss = st->sst > 0 ? st->sse / st->sst : 0;
    if (sae->aux_k > 0 && st->aux_sst > 0) loss += sae->aux_alpha * st->aux_sse / st->aux_sst;
    return loss + st->penalty;
}
