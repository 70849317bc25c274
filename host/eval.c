#include "eval.h"

#include <math.h>
#include <stdlib.h>

#include "metrics.h"

int saec_evaluate(saec_sae *sae, saec_data *src, int64_t tokens, saec_eval_result *out) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m, k = sae->k;
    int rc = SAEC_OK;
    float *rows = malloc(sizeof(float) * (size_t)(sae->batch * d)); /* [batch, d] host */
    int64_t *fire_count_host = malloc(sizeof(int64_t) * (size_t)m);
    float *W_dec_host = malloc(sizeof(float) * (size_t)(m * d));
    int64_t *since = NULL, *fire_count = NULL;
    uint8_t *dead = NULL;
    double *dead_count = NULL;
    if (!rows || !fire_count_host || !W_dec_host)
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for evaluation");
    /* Firing is counted in eval-only buffers so the training counters stay untouched. */
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(int64_t) * (size_t)m, (void **)&since);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(int64_t) * (size_t)m, (void **)&fire_count);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, (size_t)m, (void **)&dead);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(double), (void **)&dead_count);

    double sse = 0, sst = 0, cos_sum = 0, nnz = 0;
    int64_t done = 0;
    while (rc == SAEC_OK && done < tokens) {
        int64_t n = tokens - done < sae->batch ? tokens - done : sae->batch;
        rc = saec_data_next(src, n, rows);
        if (rc == SAEC_OK) rc = dev->ops->upload(dev, sae->x, rows, sizeof(float) * (size_t)(n * d));
        if (rc == SAEC_OK) rc = sae_forward(sae, n, 0);
        if (rc == SAEC_OK)
            rc = SAEC_OP(dev, track_fired, sae->idx, sae->f, n, (int)k, m, since, fire_count,
                         INT64_MAX, dead, dead_count);
        sae_step_stats st;
        if (rc == SAEC_OK) rc = sae_read_stats(sae, &st);
        if (rc == SAEC_OK) {
            sse += st.sse, sst += st.sst, cos_sum += st.cos_sum, nnz += st.l0_count;
            done += n;
        }
    }
    if (rc == SAEC_OK)
        rc = dev->ops->download(dev, fire_count_host, fire_count, sizeof(int64_t) * (size_t)m);
    if (rc == SAEC_OK) {
        int64_t never = 0;
        for (int64_t j = 0; j < m; j++) never += fire_count_host[j] == 0;
        *out = (saec_eval_result){.tokens = done,
                                  .mse = sse / ((double)done * (double)d),
                                  .nmse = sst > 0 ? sse / sst : NAN,
                                  .cosine = cos_sum / (double)done,
                                  .l0 = nnz / (double)done,
                                  .dead_fraction = (double)never / (double)m};
        out->explained_variance = 1.0 - out->nmse;
    }
    if (rc == SAEC_OK && src->has_ground_truth) {
        saec_ground_truth gt = {0};
        rc = saec_data_ground_truth(src, &gt);
        if (rc == SAEC_OK) rc = dev->ops->download(dev, W_dec_host, sae->W_dec, sizeof(float) * (size_t)(m * d));
        if (rc == SAEC_OK) {
            out->has_mmcs = 1;
            out->mmcs = saec_mmcs(W_dec_host, m, d, &gt);
        }
        saec_ground_truth_free(&gt);
    }
    if (since) dev->ops->free(dev, since);
    if (fire_count) dev->ops->free(dev, fire_count);
    if (dead) dev->ops->free(dev, dead);
    if (dead_count) dev->ops->free(dev, dead_count);
    free(rows), free(fire_count_host), free(W_dec_host);
    return rc;
}

void saec_eval_result_to_json(const saec_eval_result *r, cJSON *obj) {
    cJSON_AddNumberToObject(obj, "eval_tokens", (double)r->tokens);
    cJSON_AddNumberToObject(obj, "mse", r->mse);
    cJSON_AddNumberToObject(obj, "nmse", r->nmse);
    cJSON_AddNumberToObject(obj, "explained_variance", r->explained_variance);
    cJSON_AddNumberToObject(obj, "cosine", r->cosine);
    cJSON_AddNumberToObject(obj, "l0", r->l0);
    cJSON_AddNumberToObject(obj, "dead_fraction", r->dead_fraction);
    if (r->has_mmcs) cJSON_AddNumberToObject(obj, "mmcs", r->mmcs);
}
