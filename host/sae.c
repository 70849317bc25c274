/* The TopK SAE: parameter layout, initialisation, forward, sparse backward, optimizer step. */
#include "sae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* The one place that lays the parameters out (arena order = checkpoint order). */
static int64_t sae_lay_out(saec_sae *sae) {
    const int64_t d = sae->d, m = sae->m;
    const struct {
        const char *name;
        int64_t rows, cols;
    } spec[SAE_N_TENSORS] = {
        [SAE_W_ENC_T] = {"W_enc_t", m, d},
        [SAE_B_ENC] = {"b_enc", m, 1},
        [SAE_W_DEC] = {"W_dec", m, d},
        [SAE_B_DEC] = {"b_dec", d, 1},
    };
    int64_t offset = 0;
    for (int i = 0; i < SAE_N_TENSORS; i++) {
        sae->layout[i] = (sae_tensor){spec[i].name, spec[i].rows, spec[i].cols, offset};
        /* keep every tensor 16-float aligned so vector loads stay aligned on every backend */
        offset += (spec[i].rows * spec[i].cols + 15) / 16 * 16;
    }
    return offset;
}

static int dev_alloc(saec_sae *sae, void **p, size_t bytes) {
    return sae->dev->ops->alloc(sae->dev, bytes ? bytes : 16, p);
}

#define ALLOC(ptr, count)                                                                          \
    SAEC_TRY(dev_alloc(sae, (void **)&(ptr), sizeof(*(ptr)) * (size_t)(count)))

static int sae_allocate(saec_sae *sae) {
    const int64_t d = sae->d, m = sae->m, k = sae->k, ka = sae->aux_k, n = sae->batch;
    sae->n_params = sae_lay_out(sae);
    ALLOC(sae->params, sae->n_params);
    ALLOC(sae->grads, sae->n_params);
    ALLOC(sae->adam_m, sae->n_params);
    ALLOC(sae->adam_v, sae->n_params);
    float **views[SAE_N_TENSORS] = {&sae->W_enc_t, &sae->b_enc, &sae->W_dec, &sae->b_dec};
    float **grad_views[SAE_N_TENSORS] = {&sae->dW_enc_t, &sae->db_enc, &sae->dW_dec, &sae->db_dec};
    for (int i = 0; i < SAE_N_TENSORS; i++) {
        *views[i] = sae->params + sae->layout[i].offset;
        *grad_views[i] = sae->grads + sae->layout[i].offset;
    }
    ALLOC(sae->data_mean, d);
    ALLOC(sae->since_fired, m);
    ALLOC(sae->dead_mask, m);
    ALLOC(sae->x, n * d);
    ALLOC(sae->xc, n * d);
    ALLOC(sae->pre, n * m);
    ALLOC(sae->idx, n * k);
    ALLOC(sae->f, n * k);
    ALLOC(sae->xhat, n * d);
    ALLOC(sae->g, n * d);
    ALLOC(sae->df, n * k);
    ALLOC(sae->dxc, n * d);
    if (ka > 0) {
        ALLOC(sae->e, n * d);
        ALLOC(sae->e_mean, d);
        ALLOC(sae->idx_aux, n * ka);
        ALLOC(sae->f_aux, n * ka);
        ALLOC(sae->ehat, n * d);
        ALLOC(sae->g_aux, n * d);
        ALLOC(sae->df_aux, n * ka);
    }
    ALLOC(sae->stats, SAEC_STAT_COUNT);
    ALLOC(sae->aux_stats, SAEC_STAT_COUNT);
    ALLOC(sae->grad_sumsq, 1);
    ALLOC(sae->dead_count, 1);
    ALLOC(sae->l0_count, 1);
    return SAEC_OK;
}

int sae_create(saec_dev *dev, int64_t d, int64_t m, int64_t k, int64_t aux_k, float aux_alpha,
               int64_t dead_after, int64_t batch, saec_sae **out) {
    *out = NULL;
    if (k > m) aux_k = 0;
    if (aux_k > m) aux_k = m;
    saec_sae *sae = calloc(1, sizeof *sae);
    if (!sae) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory creating the SAE");
    *sae = (saec_sae){.dev = dev,
                      .d = d,
                      .m = m,
                      .k = k,
                      .aux_k = aux_k,
                      .batch = batch,
                      .aux_alpha = aux_alpha,
                      .dead_after = dead_after,
                      .scale = 1.0f};
    int rc = sae_allocate(sae);
    if (rc != SAEC_OK) {
        sae_destroy(sae);
        char hint[512];
        snprintf(hint, sizeof hint,
                 "the run needs about %.2f GiB on %s; lower latents or batch_size",
                 (double)(4 * 4 * m * d + 4 * batch * (m + 8 * d)) / (1 << 30), dev->name);
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
    void *bufs[] = {sae->params,      sae->grads,      sae->adam_m,  sae->adam_v,  sae->data_mean,
                    sae->since_fired, sae->dead_mask,  sae->x,       sae->xc,      sae->pre,
                    sae->idx,         sae->f,          sae->xhat,    sae->g,       sae->df,
                    sae->dxc,         sae->e,          sae->e_mean,  sae->idx_aux, sae->f_aux,
                    sae->ehat,        sae->g_aux,      sae->df_aux,  sae->stats,   sae->aux_stats,
                    sae->grad_sumsq,  sae->dead_count, sae->l0_count};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) dev->ops->free(dev, bufs[i]);
    free(sae);
}

int sae_init(saec_sae *sae, const float *sample, int64_t n, int median_iters, uint64_t seed) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m;

    /* s so that E‖x/s‖² = d; μ of the normalised rows. */
    double sumsq = 0;
    double *mean = calloc((size_t)d, sizeof(double));
    float *host = malloc(sizeof(float) * (size_t)(n * d > m * d ? n * d : m * d));
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
        rc = SAEC_OP(dev, geometric_median, dsample, n, d, median_iters, scratch, sae->b_dec);
    if (dsample) dev->ops->free(dev, dsample);
    if (scratch) dev->ops->free(dev, scratch);

    /* W_enc: Kaiming-uniform U(−1/√d, 1/√d), drawn in W_enc_t order; W_dec = W_encᵀ, unit rows. */
    if (rc == SAEC_OK) {
        saec_rng rng;
        saec_rng_init(&rng, seed, SAEC_RNG_INIT_WEIGHTS, 0);
        const double bound = 1.0 / sqrt((double)d);
        for (int64_t i = 0; i < m * d; i++)
            host[i] = (float)((2.0 * saec_rng_uniform(&rng) - 1.0) * bound);
        rc = dev->ops->upload(dev, sae->W_enc_t, host, sizeof(float) * (size_t)(m * d));
    }
    if (rc == SAEC_OK)
        rc = dev->ops->copy(dev, sae->W_dec, sae->W_enc_t, sizeof(float) * (size_t)(m * d));
    if (rc == SAEC_OK) rc = SAEC_OP(dev, normalize_rows, sae->W_dec, m, d);
    if (rc == SAEC_OK) rc = dev->ops->zero(dev, sae->b_enc, sizeof(float) * (size_t)m);
    free(host);
    return rc;
}

/* Encode the rows of xc [n, d] → (idx, f) [n, kk] restricted to `mask`, via pre [n, m]. */
static int sae_select(saec_sae *sae, int64_t n, int64_t kk, const uint8_t *mask, int32_t *idx,
                      float *f) {
    saec_dev *dev = sae->dev;
    SAEC_TRY(SAEC_OP(dev, topk_rows, sae->pre, n, sae->m, (int)kk, mask, idx, f));
    return SAEC_OP(dev, relu, f, n * kk);
}

int sae_forward(saec_sae *sae, int64_t n, int train) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m, k = sae->k;

    /* xn = x / s (in place); xc = xn − b_dec; pre = xc W_enc + b_enc (the one dense GEMM). */
    SAEC_TRY(SAEC_OP(dev, scale_add_rows, sae->x, sae->x, n, d, 1.0f / sae->scale, NULL, 0.0f));
    SAEC_TRY(SAEC_OP(dev, scale_add_rows, sae->x, sae->xc, n, d, 1.0f, sae->b_dec, -1.0f));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n, m, d, 1.0f, sae->xc, d, sae->W_enc_t, d, 0.0f, sae->pre, m,
                     sae->b_enc));
    SAEC_TRY(sae_select(sae, n, k, NULL, sae->idx, sae->f));

    /* x̂n = f W_dec + b_dec; statistics and ∂nmse/∂x̂. */
    SAEC_TRY(SAEC_OP(dev, sparse_decode, sae->idx, sae->f, sae->W_dec, sae->b_dec, n, (int)k, m, d,
                     0, sae->xhat));
    SAEC_TRY(SAEC_OP(dev, recon_loss_grad, sae->x, sae->xhat, sae->data_mean, n, d, 1.0f,
                     sae->stats, train ? sae->g : NULL));
    SAEC_TRY(SAEC_OP(dev, count_positive, sae->f, n * k, 0, sae->l0_count));
    if (!train) return SAEC_OK;

    SAEC_TRY(SAEC_OP(dev, track_fired, sae->idx, sae->f, n, (int)k, m, sae->since_fired, NULL,
                     sae->dead_after, sae->dead_mask, sae->dead_count));
    if (sae->aux_k == 0) return SAEC_OK;

    /* AuxK: the dead latents' top-k_aux model the residual e (a constant): L_aux =
       ‖e − ê‖² / ‖e − mean(e)‖². With no dead latent every slot is empty and ê = 0. */
    const int64_t ka = sae->aux_k;
    SAEC_TRY(SAEC_OP(dev, axpby, n * d, 1.0f, sae->x, -1.0f, sae->xhat, sae->e));
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->e, n, d, 1.0f / (float)n, 0.0f, sae->e_mean));
    SAEC_TRY(sae_select(sae, n, ka, sae->dead_mask, sae->idx_aux, sae->f_aux));
    SAEC_TRY(SAEC_OP(dev, sparse_decode, sae->idx_aux, sae->f_aux, sae->W_dec, NULL, n, (int)ka, m,
                     d, 0, sae->ehat));
    return SAEC_OP(dev, recon_loss_grad, sae->e, sae->ehat, sae->e_mean, n, d, sae->aux_alpha,
                   sae->aux_stats, sae->g_aux);
}

/* Backward through one set of codes: given ∂L/∂x̂ contribution g [n, d] of codes (idx, f)
   [n, kk], accumulate dW_dec, then ∂L/∂pre at the kept entries into df, then dW_enc_t, db_enc. */
static int sae_backward_codes(saec_sae *sae, int64_t n, int64_t kk, const int32_t *idx,
                              const float *f, const float *g, float *df) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m;
    SAEC_TRY(SAEC_OP(dev, sparse_outer_accum, idx, f, g, n, (int)kk, m, d, sae->dW_dec, NULL));
    SAEC_TRY(SAEC_OP(dev, sparse_row_dots, g, idx, sae->W_dec, n, (int)kk, m, d, df));
    SAEC_TRY(SAEC_OP(dev, relu_backward, f, df, n * kk)); /* ReLU after the selection */
    return SAEC_OP(dev, sparse_outer_accum, idx, df, sae->xc, n, (int)kk, m, d, sae->dW_enc_t,
                   sae->db_enc);
}

int sae_backward(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m, k = sae->k;
    SAEC_TRY(dev->ops->zero(dev, sae->grads, sizeof(float) * (size_t)sae->n_params));

    /* b_dec enters twice: added to x̂, subtracted from the encoder input. */
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->g, n, d, 1.0f, 0.0f, sae->db_dec));
    SAEC_TRY(sae_backward_codes(sae, n, k, sae->idx, sae->f, sae->g, sae->df));
    SAEC_TRY(SAEC_OP(dev, sparse_decode, sae->idx, sae->df, sae->W_enc_t, NULL, n, (int)k, m, d, 0,
                     sae->dxc));
    if (sae->aux_k > 0) {
        const int64_t ka = sae->aux_k;
        SAEC_TRY(sae_backward_codes(sae, n, ka, sae->idx_aux, sae->f_aux, sae->g_aux, sae->df_aux));
        SAEC_TRY(SAEC_OP(dev, sparse_decode, sae->idx_aux, sae->df_aux, sae->W_enc_t, NULL, n,
                         (int)ka, m, d, 1, sae->dxc));
    }
    return SAEC_OP(dev, col_sum, sae->dxc, n, d, -1.0f, 1.0f, sae->db_dec);
}

int sae_optimizer_step(saec_sae *sae, saec_adamw_args args) {
    saec_dev *dev = sae->dev;
    SAEC_TRY(SAEC_OP(dev, project_rows_grad, sae->W_dec, sae->dW_dec, sae->m, sae->d));
    SAEC_TRY(SAEC_OP(dev, sum_squares, sae->grads, sae->n_params, 0, sae->grad_sumsq));
    SAEC_TRY(SAEC_OP(dev, adamw, sae->params, sae->grads, sae->adam_m, sae->adam_v, sae->n_params,
                     args, sae->grad_sumsq));
    return SAEC_OP(dev, normalize_rows, sae->W_dec, sae->m, sae->d);
}

int sae_read_stats(saec_sae *sae, sae_step_stats *out) {
    saec_dev *dev = sae->dev;
    double main_stats[SAEC_STAT_COUNT] = {0}, aux[SAEC_STAT_COUNT] = {0}, sumsq = 0, dead = 0,
           l0 = 0;
    SAEC_TRY(dev->ops->download(dev, main_stats, sae->stats, sizeof main_stats));
    SAEC_TRY(dev->ops->download(dev, aux, sae->aux_stats, sizeof aux));
    SAEC_TRY(dev->ops->download(dev, &sumsq, sae->grad_sumsq, sizeof sumsq));
    SAEC_TRY(dev->ops->download(dev, &dead, sae->dead_count, sizeof dead));
    SAEC_TRY(dev->ops->download(dev, &l0, sae->l0_count, sizeof l0));
    *out = (sae_step_stats){.sse = main_stats[SAEC_STAT_SSE],
                            .sst = main_stats[SAEC_STAT_SST],
                            .cos_sum = main_stats[SAEC_STAT_COS_SUM],
                            .aux_sse = aux[SAEC_STAT_SSE],
                            .aux_sst = aux[SAEC_STAT_SST],
                            .grad_norm = sqrt(sumsq),
                            .dead_count = dead,
                            .l0_count = l0};
    return SAEC_OK;
}

double sae_loss(const saec_sae *sae, const sae_step_stats *st) {
    double loss = st->sst > 0 ? st->sse / st->sst : 0;
    if (sae->aux_k > 0 && st->aux_sst > 0) loss += sae->aux_alpha * st->aux_sse / st->aux_sst;
    return loss;
}
