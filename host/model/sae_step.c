/* The SAE's step: timesteps and schedule, forward (sparse for TopK, dense GEMMs for the variants
   with variable L0, and the bucket and adaln modulations), dead-latent tracking, the codes,
   backward, the optimizer step and the step's statistics. Separate mode dispatches to
   sae_separate.c; the collectives are in sae_distributed.c. */
#include "sae.h"

#include <math.h>
#include <stdlib.h>

#include "sae_internal.h"
#include "sae_separate.h"

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

/* Encode the rows of xc [n, d] → (idx, f) [n, kk] restricted to `mask`, via pre [n, m]. */
static int sae_select(saec_sae *sae, int64_t n, int64_t kk, const uint8_t *mask, int32_t *idx,
                      float *f) {
    saec_dev *dev = sae->dev;
    SAEC_TRY(SAEC_OP(dev, topk_rows, sae->acts.pre, n, sae->m, (int)kk, mask, idx, f));
    return SAEC_OP(dev, relu, f, n * kk);
}

/* BatchTopK: fold this training batch's cut-off (bt_batch_thr) into the tracked inference
   threshold, as sae_begin_step scheduled. */
static int sae_batchtopk_track(saec_sae *sae) {
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

int sae_batchtopk_encode(saec_sae *sae, int64_t n, int64_t width, int train) {
    saec_dev *dev = sae->dev;
    /* Training selects over the batch; inference is a JumpReLU with the tracked θ. */
    if (!train && sae->bt_threshold_set)
        return SAEC_OP(dev, jumprelu, sae->acts.pre, n, width, sae->bt_threshold, 0, 0,
                       sae->acts.fd);
    SAEC_TRY(SAEC_OP(dev, batch_topk, sae->acts.pre, n, width, n * sae->k, sae->acts.fd,
                     sae->bt_batch_thr));
    return train ? sae_batchtopk_track(sae) : SAEC_OK;
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
    case SAE_BATCHTOPK: return sae_batchtopk_encode(sae, n, m, train);
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
    /* a latent is alive when it fired on any rank */
    SAEC_TRY(sae_fired_over_ranks(sae, n));
    if (sae->aux_k == 0) return SAEC_OK;

    /* AuxK: the dead latents' top-k_aux model the residual e (a constant): L_aux =
       ‖e − ê‖² / ‖e − mean(e)‖². With no dead latent every slot is empty and ê = 0. */
    const int64_t ka = sae->aux_k;
    SAEC_TRY(SAEC_OP(dev, axpby, n * d, 1.0f, sae->acts.x, -1.0f, sae->acts.xhat, sae->acts.e));
    SAEC_TRY(sae_residual_mean(sae, sae->acts.e, n, sae->acts.e_mean)); /* the global batch's */
    SAEC_TRY(sae_select(sae, n, ka, sae->dead_mask, sae->acts.idx_aux, sae->acts.f_aux));
    SAEC_TRY(SAEC_OP(dev, sparse_decode, sae->acts.idx_aux, sae->acts.f_aux, sae->params.W_dec,
                     NULL, n, (int)ka, m, d, 0, sae->acts.ehat));
    return sae_recon(sae, sae->acts.e, sae->acts.ehat, sae->acts.e_mean, n, sae->aux_alpha,
                     sae->aux_stats, sae->acts.g_aux);
}

int sae_forward_rows(saec_sae *sae, const float *rows, const int32_t *timesteps, int64_t n,
                     int train) {
    if (n > sae->batch)
        return saec_fail(SAEC_ERR_OTHER, NULL, "%lld rows for an SAE made for batches of %lld",
                         (long long)n, (long long)sae->batch);
    const size_t bytes = sizeof(float) * (size_t)(n * sae->d);
    SAEC_TRY(sae->dev->ops->upload(sae->dev, sae->acts.x, rows, bytes));
    if (timesteps) SAEC_TRY(sae_set_timesteps(sae, timesteps, n)); /* no-op in mode none */
    return sae_forward(sae, n, train);
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
    return sae_grads_wait(sae);
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
    SAEC_TRY(sae_gather_params(sae));
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
    if (global) SAEC_TRY(sae_stats_over_ranks(sae));
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
