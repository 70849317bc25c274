/* TIDE `separate` mode: B SAEs of mb = m/B latents, one per timestep bucket (see
   sae_separate.h for the layout and what the SAEs share). Rows are in bucket order throughout;
   "group g" is bucket g: sorted rows off[g] .. off[g+1] − 1 and latents g·mb .. (g+1)·mb − 1. */
#include "sae_separate.h"

#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "sae_internal.h"

/* The groups with rows, as (g, first sorted row r0, rows ng, first latent l0). */
#define FOR_EACH_GROUP(sae, g, r0, ng, l0)                                                         \
    for (int64_t g = 0, r0 = 0, ng = 0, l0 = 0; g < (sae)->hp.timestep_buckets; g++)               \
        if ((r0 = (sae)->acts.offsets_host[g]), (ng = (sae)->acts.offsets_host[g + 1] - r0),       \
            (l0 = g * (sae)->group_m), ng > 0)

int sae_separate_allocate(saec_sae *sae) {
    const int64_t B = sae->hp.timestep_buckets, n = sae->batch, d = sae->d;
    sae->group_m = sae->m / B;
    SAE_ALLOC(sae->acts.perm, n);
    SAE_ALLOC(sae->acts.inv, n);
    SAE_ALLOC(sae->acts.offsets, B + 1);
    SAE_ALLOC(sae->acts.group_counts, B);
    SAE_ALLOC(sae->acts.xs, n * d);
    SAE_ALLOC(sae->acts.xhat_s, n * d);
    if (sae->arch == SAE_RELU || sae->arch == SAE_ATM) SAE_ALLOC(sae->group_penalty, B);
    sae->acts.offsets_host = calloc((size_t)(B + 1), sizeof(int32_t));
    sae->acts.perm_host = calloc((size_t)(n > 0 ? n : 1), sizeof(int32_t));
    sae->acts.group_tokens = calloc((size_t)B, sizeof(int64_t));
    if (!sae->acts.offsets_host || !sae->acts.perm_host || !sae->acts.group_tokens)
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the separate mode's groups");
    return SAEC_OK;
}

int sae_separate_group(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int B = (int)sae->hp.timestep_buckets;
    /* On the device, the machinery MoE routing shares. */
    SAEC_TRY(SAEC_OP(dev, group_count, sae->acts.bucket, n, B, sae->acts.group_counts));
    SAEC_TRY(SAEC_OP(dev, exclusive_scan, sae->acts.group_counts, B, sae->acts.offsets));
    SAEC_TRY(SAEC_OP(dev, group_permute, sae->acts.bucket, n, B, sae->acts.offsets, sae->acts.perm,
                     sae->acts.inv));
    /* The same stable counting sort on the host, which holds the bucket ids already: the
       per-group op calls need the offsets, and the code download the permutation. */
    int32_t *off = sae->acts.offsets_host;
    memset(off, 0, sizeof(int32_t) * (size_t)(B + 1));
    for (int64_t i = 0; i < n; i++)
        off[sae->acts.bucket_host[i] + 1]++;
    for (int g = 0; g < B; g++)
        off[g + 1] += off[g];
    int32_t *next = malloc(sizeof(int32_t) * (size_t)B);
    if (!next) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory grouping the batch");
    memcpy(next, off, sizeof(int32_t) * (size_t)B);
    for (int64_t i = 0; i < n; i++)
        sae->acts.perm_host[next[sae->acts.bucket_host[i]]++] = (int32_t)i;
    free(next);
    return SAEC_OK;
}

static int separate_track_training(saec_sae *sae);

/* Dense codes fd [n, mb] from pre [n, mb], by variant, each bucket's latents its own. */
static int separate_encode_dense(saec_sae *sae, int64_t n, int train) {
    saec_dev *dev = sae->dev;
    const int64_t mb = sae->group_m, B = sae->hp.timestep_buckets;
    switch (sae->arch) {
    case SAE_RELU:
    case SAE_ATM:
        SAEC_TRY(
            dev->ops->copy(dev, sae->acts.fd, sae->acts.pre, sizeof(float) * (size_t)(n * mb)));
        SAEC_TRY(SAEC_OP(dev, relu, sae->acts.fd, n * mb));
        if (train && sae->atm_masking) {
            const sae_hparams *hp = &sae->hp;
            const float *a = sae->atm_stats, *q = a + sae->m, *r = a + 2 * sae->m;
            /* per SAE; the draw counter step·B + g makes the hashed draw of latent j of SAE g
               the one of global latent g·mb + j (no two SAEs share draws) */
            for (int64_t g = 0; g < B; g++)
                SAEC_TRY(SAEC_OP(dev, atm_mask, a + g * mb, q + g * mb, r + g * mb, mb,
                                 hp->atm_weights, hp->atm_c, hp->atm_rate, hp->seed,
                                 (uint64_t)(sae->step * B + g), sae->atm_keep + g * mb));
            FOR_EACH_GROUP(sae, g, r0, ng, l0) {
                SAEC_TRY(
                    SAEC_OP(dev, scale_cols, sae->acts.fd + r0 * mb, ng, mb, sae->atm_keep + l0));
            }
        }
        return SAEC_OK;
    case SAE_JUMPRELU:
        FOR_EACH_GROUP(sae, g, r0, ng, l0) {
            SAEC_TRY(SAEC_OP(dev, jumprelu, sae->acts.pre + r0 * mb, ng, mb,
                             sae->params.log_theta + l0, 1, 1, sae->acts.fd + r0 * mb));
        }
        return SAEC_OK;
    case SAE_BATCHTOPK: /* one selection over the batch, all SAEs together */
        return sae_batchtopk_encode(sae, n, mb, train);
    case SAE_TOPK: break;
    }
    return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                     "separate_encode_dense called for a sparse variant");
}

/* (idx, f) [n, kk]: each row's top-kk of its own SAE's pre-activations (local indices), among
   the latents of `mask` [m] (NULL: all); ReLU after the selection. */
static int separate_select(saec_sae *sae, int64_t n, int64_t kk, const uint8_t *mask, int32_t *idx,
                           float *f) {
    saec_dev *dev = sae->dev;
    const int64_t mb = sae->group_m;
    if (!mask) {
        SAEC_TRY(SAEC_OP(dev, topk_rows, sae->acts.pre, n, mb, (int)kk, NULL, idx, f));
    } else {
        FOR_EACH_GROUP(sae, g, r0, ng, l0) {
            SAEC_TRY(SAEC_OP(dev, topk_rows, sae->acts.pre + r0 * mb, ng, mb, (int)kk, mask + l0,
                             idx + r0 * kk, f + r0 * kk));
        }
    }
    return SAEC_OP(dev, relu, f, n * kk);
}

/* out [n, d] = Σ_j val[r, j] · W[l0 + idx[r, j], :] (+ bias), each row with its SAE's rows of W
   (W_dec to decode, W_enc_t for the encoder-input gradient). */
static int separate_sparse_decode(saec_sae *sae, int64_t kk, const int32_t *idx, const float *val,
                                  const float *W, const float *bias, int accumulate, float *out) {
    const int64_t mb = sae->group_m, d = sae->d;
    FOR_EACH_GROUP(sae, g, r0, ng, l0) {
        SAEC_TRY(SAEC_OP(sae->dev, sparse_decode, idx + r0 * kk, val + r0 * kk, W + l0 * d, bias,
                         ng, (int)kk, mb, d, accumulate, out + r0 * d));
    }
    return SAEC_OK;
}

/* dW[l0 + idx[r, j], :] += coef[r, j] · X[r, :] (and db), per SAE. */
static int separate_outer_accum(saec_sae *sae, int64_t kk, const int32_t *idx, const float *coef,
                                const float *X, float *dW, float *db) {
    const int64_t mb = sae->group_m, d = sae->d;
    FOR_EACH_GROUP(sae, g, r0, ng, l0) {
        SAEC_TRY(SAEC_OP(sae->dev, sparse_outer_accum, idx + r0 * kk, coef + r0 * kk, X + r0 * d,
                         ng, (int)kk, mb, d, dW + l0 * d, db ? db + l0 : NULL));
    }
    return SAEC_OK;
}

int sae_separate_forward(saec_sae *sae, int64_t n, int train) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, mb = sae->group_m, k = sae->k;
    const int B = (int)sae->hp.timestep_buckets;
    if (sae->acts.offsets_host[B] != n) /* the rows' buckets come from sae_set_timesteps */
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "separate mode: forward of %lld rows, but the timesteps of %lld were set",
                         (long long)n, (long long)sae->acts.offsets_host[B]);

    /* xn = x / s (in place, batch order); xs = xn in bucket order; xc = xs − b_dec. */
    SAEC_TRY(SAEC_OP(dev, scale_add_rows, sae->acts.x, sae->acts.x, n, d, 1.0f / sae->scale, NULL,
                     0.0f));
    SAEC_TRY(SAEC_OP(dev, gather_rows, sae->acts.x, sae->acts.perm, n, 1, d, sae->acts.xs));
    SAEC_TRY(SAEC_OP(dev, scale_add_rows, sae->acts.xs, sae->acts.xc, n, d, 1.0f, sae->params.b_dec,
                     -1.0f));
    /* pre [n, mb] = xc_g W_enc,gᵀ + b_enc,g for each bucket g: one grouped GEMM */
    SAEC_TRY(SAEC_OP(dev, grouped_gemm, 1, B, sae->acts.offsets, mb, d, 1.0f, sae->acts.xc,
                     sae->params.W_enc_t, 0.0f, sae->acts.pre, sae->params.b_enc));

    if (sae->dense) { /* x̂ = f_g W_dec,g + b_dec */
        SAEC_TRY(separate_encode_dense(sae, n, train));
        SAEC_TRY(SAEC_OP(dev, grouped_gemm, 0, B, sae->acts.offsets, d, mb, 1.0f, sae->acts.fd,
                         sae->params.W_dec, 0.0f, sae->acts.xhat_s, NULL));
        SAEC_TRY(SAEC_OP(dev, scale_add_rows, sae->acts.xhat_s, sae->acts.xhat_s, n, d, 1.0f,
                         sae->params.b_dec, 1.0f));
        SAEC_TRY(SAEC_OP(dev, count_positive, sae->acts.fd, n * mb, 0, sae->l0_count));
    } else {
        SAEC_TRY(separate_select(sae, n, k, NULL, sae->acts.idx, sae->acts.f));
        SAEC_TRY(separate_sparse_decode(sae, k, sae->acts.idx, sae->acts.f, sae->params.W_dec,
                                        sae->params.b_dec, 0, sae->acts.xhat_s));
        SAEC_TRY(SAEC_OP(dev, count_positive, sae->acts.f, n * k, 0, sae->l0_count));
    }
    /* the nmse of the whole (global) batch; its statistics do not depend on the row order */
    SAEC_TRY(sae_recon(sae, sae->acts.xs, sae->acts.xhat_s, sae->data_mean, n, 1.0f, sae->stats,
                       train ? sae->acts.g : NULL));
    if (!train) /* evaluation reads x̂ in the batch's order */
        return SAEC_OP(dev, scatter_rows, sae->acts.xhat_s, sae->acts.inv, NULL, n, 1, d, 0,
                       sae->acts.xhat);

    SAEC_TRY(separate_track_training(sae));
    if (sae->aux_k == 0) return SAEC_OK;

    /* AuxK per SAE: its dead latents' top-k_aux model the residual of its tokens (SPEC §2),
       normalised over the global batch like the main nmse. */
    const int64_t ka = sae->aux_k;
    SAEC_TRY(SAEC_OP(dev, axpby, n * d, 1.0f, sae->acts.xs, -1.0f, sae->acts.xhat_s, sae->acts.e));
    SAEC_TRY(sae_residual_mean(sae, sae->acts.e, n, sae->acts.e_mean)); /* the global batch's */
    SAEC_TRY(separate_select(sae, n, ka, sae->dead_mask, sae->acts.idx_aux, sae->acts.f_aux));
    SAEC_TRY(separate_sparse_decode(sae, ka, sae->acts.idx_aux, sae->acts.f_aux, sae->params.W_dec,
                                    NULL, 0, sae->acts.ehat));
    return sae_recon(sae, sae->acts.e, sae->acts.ehat, sae->acts.e_mean, n, sae->aux_alpha,
                     sae->aux_stats, sae->acts.g_aux);
}

/* Each SAE's clock counts its own bucket's tokens (an empty bucket's SAE does not age); the
   dead counts of these per-bucket calls are partial (the callers recount). */
static int separate_track_local(saec_sae *sae, int64_t *since_fired, int64_t *fire_count,
                                int64_t dead_after, uint8_t *dead_mask, double *dead_count) {
    saec_dev *dev = sae->dev;
    const int64_t mb = sae->group_m, k = sae->k;
    FOR_EACH_GROUP(sae, g, r0, ng, l0) {
        int64_t *fc = fire_count ? fire_count + l0 : NULL;
        if (sae->dense)
            SAEC_TRY(SAEC_OP(dev, track_fired_dense, sae->acts.fd + r0 * mb, ng, mb,
                             since_fired + l0, fc, dead_after, dead_mask + l0, dead_count));
        else
            SAEC_TRY(SAEC_OP(dev, track_fired, sae->acts.idx + r0 * k, sae->acts.f + r0 * k, ng,
                             (int)k, mb, since_fired + l0, fc, dead_after, dead_mask + l0,
                             dead_count));
    }
    return SAEC_OK;
}

int sae_separate_track_fired(saec_sae *sae, int64_t n, int64_t *since_fired, int64_t *fire_count,
                             int64_t dead_after, uint8_t *dead_mask, double *dead_count) {
    (void)n; /* the groups' rows add up to n */
    SAEC_TRY(separate_track_local(sae, since_fired, fire_count, dead_after, dead_mask, dead_count));
    return SAEC_OP(sae->dev, dead_latents_update, since_fired, sae->m, 0, dead_after, dead_mask,
                   dead_count); /* recount all m, adding no tokens */
}

/* The training step's dead-latent clocks, over the global batch. With several ranks, bucket g's
   clocks must advance by its tokens on every rank, and stop where a latent fired on any: each
   rank first adds the other ranks' tokens of the bucket (track_fired of tokens without codes),
   then tracks its own, and the minimum over the ranks is then fired-anywhere ? 0 : prev + total. */
static int separate_track_training(saec_sae *sae) {
    saec_dev *dev = sae->dev;
    const int64_t B = sae->hp.timestep_buckets, mb = sae->group_m;
    for (int64_t g = 0; g < B; g++)
        sae->acts.group_tokens[g] = sae->acts.offsets_host[g + 1] - sae->acts.offsets_host[g];
    if (sae->distributed) {
        int64_t *local = malloc(sizeof(int64_t) * (size_t)B);
        if (!local) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory tracking latents");
        memcpy(local, sae->acts.group_tokens, sizeof(int64_t) * (size_t)B);
        int rc = saec_comm_allreduce_host(sae->comm, sae->acts.group_tokens, B, SAEC_DT_I64,
                                          SAEC_RED_SUM);
        for (int64_t g = 0; g < B && rc == SAEC_OK; g++)
            if (sae->acts.group_tokens[g] > local[g])
                rc = SAEC_OP(dev, track_fired, NULL, NULL, sae->acts.group_tokens[g] - local[g], 0,
                             mb, sae->since_fired + g * mb, NULL, sae->dead_after,
                             sae->dead_mask + g * mb, sae->dead_count);
        free(local);
        SAEC_TRY(rc);
    }
    SAEC_TRY(separate_track_local(sae, sae->since_fired, NULL, sae->dead_after, sae->dead_mask,
                                  sae->dead_count));
    if (sae->distributed)
        SAEC_TRY(
            saec_comm_allreduce(sae->comm, sae->since_fired, sae->m, SAEC_DT_I64, SAEC_RED_MIN));
    return SAEC_OP(dev, dead_latents_update, sae->since_fired, sae->m, 0, sae->dead_after,
                   sae->dead_mask, sae->dead_count);
}

/* ATM's statistics are EMAs of batch means per SAE. Each rank updated bucket g's from its own
   tokens of g; the global batch's update is the token-weighted mean of the ranks' (an EMA is
   linear in the batch mean). Weights ng/total (a rank without tokens of g left them unchanged and
   weighs 0), then a sum over the ranks. */
static int separate_atm_over_ranks(saec_sae *sae) {
    if (!sae->distributed) return SAEC_OK;
    saec_dev *dev = sae->dev;
    const int64_t m = sae->m, mb = sae->group_m, B = sae->hp.timestep_buckets;
    for (int64_t g = 0; g < B; g++) {
        const int64_t ng = sae->acts.offsets_host[g + 1] - sae->acts.offsets_host[g];
        const float w = sae->acts.group_tokens[g] > 0 ? (float)ng / (float)sae->acts.group_tokens[g]
                                                      : 1.0f / (float)sae->world; /* unchanged */
        for (int s = 0; s < 3; s++) {
            float *slice = sae->atm_stats + s * m + g * mb;
            SAEC_TRY(SAEC_OP(dev, axpby, mb, w, slice, 0.0f, NULL, slice));
        }
    }
    return saec_comm_allreduce(sae->comm, sae->atm_stats, 3 * m, SAEC_DT_F32, SAEC_RED_SUM);
}

int sae_separate_backward(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, mb = sae->group_m, k = sae->k, ka = sae->aux_k;
    const int B = (int)sae->hp.timestep_buckets;
    SAEC_TRY(dev->ops->zero(dev, sae->grad_arena, sizeof(float) * (size_t)sae->n_params));
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.g, n, d, 1.0f, 0.0f, sae->grads.b_dec));

    float *dpre = sae->acts.dfd; /* dense: [n, mb] ∂L/∂f, then ∂L/∂pre */
    if (sae->dense) {
        /* penalties: means over the global batch's tokens */
        const float coef = sae->sparsity_coef / (float)(n * sae->world);
        SAEC_TRY(SAEC_OP(dev, grouped_gemm_wgrad, B, sae->acts.offsets, mb, d, 1.0f, sae->acts.fd,
                         sae->acts.g, 1.0f, sae->grads.W_dec)); /* dW_dec,g += f_gᵀ g_g */
        SAEC_TRY(SAEC_OP(dev, grouped_gemm, 1, B, sae->acts.offsets, mb, d, 1.0f, sae->acts.g,
                         sae->params.W_dec, 0.0f, dpre, NULL)); /* ∂L/∂f_g = g_g W_dec,gᵀ */
        switch (sae->arch) {
        case SAE_ATM: {
            float *a = sae->atm_stats, *q = a + sae->m, *r = a + 2 * sae->m;
            FOR_EACH_GROUP(sae, g, r0, ng, l0) {
                SAEC_TRY(SAEC_OP(dev, atm_stats, sae->acts.fd + r0 * mb, dpre + r0 * mb, sae->stats,
                                 sae->params.W_dec + l0 * d, ng, mb, d, sae->hp.atm_beta, a + l0,
                                 q + l0, r + l0));
            }
            SAEC_TRY(separate_atm_over_ranks(sae));
        }
            /* fall through */
        case SAE_RELU:
            SAEC_TRY(SAEC_OP(dev, relu_backward, sae->acts.fd, dpre, n * mb));
            SAEC_TRY(dev->ops->zero(dev, sae->group_penalty, sizeof(double) * (size_t)B));
            FOR_EACH_GROUP(sae, g, r0, ng, l0) {
                SAEC_TRY(SAEC_OP(dev, l1_penalty, sae->acts.fd + r0 * mb,
                                 sae->params.W_dec + l0 * d, ng, mb, d, coef, dpre + r0 * mb,
                                 sae->grads.W_dec + l0 * d, sae->group_penalty + g));
            }
            break;
        case SAE_JUMPRELU:
            FOR_EACH_GROUP(sae, g, r0, ng, l0) {
                SAEC_TRY(SAEC_OP(dev, jumprelu_backward, sae->acts.pre + r0 * mb,
                                 sae->params.log_theta + l0, ng, mb, sae->hp.jumprelu_bandwidth,
                                 coef, dpre + r0 * mb, sae->grads.log_theta + l0));
            }
            break;
        case SAE_BATCHTOPK:
            SAEC_TRY(SAEC_OP(dev, relu_backward, sae->acts.fd, dpre, n * mb));
            break;
        case SAE_TOPK: break;
        }
    } else
        SAEC_TRY(separate_outer_accum(sae, k, sae->acts.idx, sae->acts.f, sae->acts.g,
                                      sae->grads.W_dec, NULL));
    if (ka > 0)
        SAEC_TRY(separate_outer_accum(sae, ka, sae->acts.idx_aux, sae->acts.f_aux, sae->acts.g_aux,
                                      sae->grads.W_dec, NULL));
    SAEC_TRY(sae_grads_ready(sae, SAE_W_DEC, SAE_W_DEC)); /* summed while the encoder's run */

    /* Encoder: dW_enc_t, db_enc and dxc = ∂L/∂xc. */
    if (sae->dense) {
        SAEC_TRY(SAEC_OP(dev, grouped_gemm_wgrad, B, sae->acts.offsets, mb, d, 1.0f, dpre,
                         sae->acts.xc, 1.0f, sae->grads.W_enc_t)); /* dW_enc_t,g += dpre_gᵀ xc_g */
        SAEC_TRY(SAEC_OP(dev, grouped_col_sum, B, sae->acts.offsets, mb, dpre, 1.0f, 1.0f,
                         sae->grads.b_enc));
        SAEC_TRY(SAEC_OP(dev, grouped_gemm, 0, B, sae->acts.offsets, d, mb, 1.0f, dpre,
                         sae->params.W_enc_t, 0.0f, sae->acts.dxc,
                         NULL)); /* dxc_g = dpre_g W_enc_t,g */
    }
    /* the sparse codes (topk's main codes, AuxK's): ∂L/∂pre at the kept entries, then the same */
    for (int pass = sae->dense ? 1 : 0; pass < (ka > 0 ? 2 : 1); pass++) {
        const int64_t kk = pass == 0 ? k : ka;
        const int32_t *idx = pass == 0 ? sae->acts.idx : sae->acts.idx_aux;
        const float *f = pass == 0 ? sae->acts.f : sae->acts.f_aux,
                    *g = pass == 0 ? sae->acts.g : sae->acts.g_aux;
        float *df = pass == 0 ? sae->acts.df : sae->acts.df_aux;
        FOR_EACH_GROUP(sae, grp, r0, ng, l0) {
            SAEC_TRY(SAEC_OP(dev, sparse_row_dots, g + r0 * d, idx + r0 * kk,
                             sae->params.W_dec + l0 * d, ng, (int)kk, mb, d, df + r0 * kk));
        }
        SAEC_TRY(SAEC_OP(dev, relu_backward, f, df, n * kk)); /* ReLU after the selection */
        SAEC_TRY(separate_outer_accum(sae, kk, idx, df, sae->acts.xc, sae->grads.W_enc_t,
                                      sae->grads.b_enc));
        /* the first pass to write dxc overwrites it */
        SAEC_TRY(separate_sparse_decode(sae, kk, idx, df, sae->params.W_enc_t, NULL,
                                        sae->dense || pass > 0, sae->acts.dxc));
    }
    SAEC_TRY(sae_grads_ready(sae, SAE_W_ENC_T, SAE_B_ENC));
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.dxc, n, d, -1.0f, 1.0f, sae->grads.b_dec));
    SAEC_TRY(sae_grads_ready(sae, SAE_B_DEC, SAE_N_TENSORS - 1));
    return sae_grads_wait(sae);
}

int sae_separate_download_codes(saec_sae *sae, int64_t n, int32_t *idx, float *f, int64_t *kk) {
    saec_dev *dev = sae->dev;
    const int64_t mb = sae->group_m, B = sae->hp.timestep_buckets;
    const int64_t width = sae->dense ? mb : sae->k; /* of the device codes */
    float *val = malloc(sizeof(float) * (size_t)(n * width > 0 ? n * width : 1));
    int32_t *loc =
        sae->dense ? NULL : malloc(sizeof(int32_t) * (size_t)(n * width > 0 ? n * width : 1));
    if (!val || (!sae->dense && !loc)) {
        free(val), free(loc);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory downloading the codes");
    }
    int rc = dev->ops->download(dev, val, sae->dense ? sae->acts.fd : sae->acts.f,
                                sizeof(float) * (size_t)(n * width));
    if (rc == SAEC_OK && loc)
        rc = dev->ops->download(dev, loc, sae->acts.idx, sizeof(int32_t) * (size_t)(n * width));
    int64_t widest = sae->dense ? 1 : width;
    if (rc == SAEC_OK && sae->dense) /* compacted to the widest row's count */
        for (int64_t p = 0; p < n; p++) {
            int64_t c = 0;
            for (int64_t j = 0; j < mb; j++)
                c += val[p * mb + j] > 0.0f;
            if (c > widest) widest = c;
        }
    /* sorted position p → batch row perm[p]; local latent j of bucket g → global g·mb + j */
    for (int64_t g = 0; g < B && rc == SAEC_OK; g++)
        for (int64_t p = sae->acts.offsets_host[g]; p < sae->acts.offsets_host[g + 1]; p++) {
            const int64_t row = sae->acts.perm_host[p];
            int64_t c = 0;
            for (int64_t j = 0; j < width; j++) {
                const float v = val[p * width + j];
                if (!sae->dense) {
                    const int32_t l = loc[p * width + j];
                    idx[row * widest + j] = l >= 0 ? (int32_t)(g * mb + l) : -1;
                    f[row * widest + j] = v;
                } else if (v > 0.0f) {
                    idx[row * widest + c] = (int32_t)(g * mb + j);
                    f[row * widest + c] = v;
                    c++;
                }
            }
            if (sae->dense)
                for (; c < widest; c++)
                    f[row * widest + c] = 0.0f, idx[row * widest + c] = -1;
        }
    free(val), free(loc);
    if (rc == SAEC_OK) *kk = widest;
    return rc;
}
