#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_synthetic.h"
#include "metrics.h"

/* Host buffers of the absorption metric, used only when the data has a hierarchy. */
typedef struct {
    int on;
    saec_absorption a;
    float *b_dec;    /* [d] */
    float *xc;       /* [batch, d] xn − b_dec, recomputed on the host */
    uint8_t *active; /* [batch, n_parents] */
} absorb_state;

/* The last forward's codes on the host, downloaded once per batch for the metrics that need
   them (absorption, per-bucket firing). */
typedef struct {
    int32_t *idx; /* [batch, capacity] */
    float *f;     /* [batch, capacity] */
    int64_t kk;   /* this batch's width */
} host_codes;

static void absorb_free(absorb_state *ab) {
    saec_absorption_free(&ab->a);
    free(ab->b_dec), free(ab->xc), free(ab->active);
}

/* Prepare absorption when the ground truth has a hierarchy. Needs the trained decoder; eval is
   allowed to sync, so it is downloaded once here. */
static int absorb_setup(saec_sae *sae, saec_data *src, const saec_ground_truth *gt,
                        const float *W_dec_host, absorb_state *ab) {
    const int64_t d = sae->d, batch = sae->batch;
    if (!gt->parent) return SAEC_OK;
    if (!saec_synthetic_has_activity(src)) {
        /* Files keep the hierarchy (ground_truth/parent) but not which features fired in each
           row, and P, M, A are defined only on tokens where the parent truly fires. */
        fprintf(stderr,
                "saec: note: %s has a feature hierarchy but no per-token ground truth; skipping "
                "absorption (train or eval with --synthetic hierarchy to measure it)\n",
                src->info.description);
        return SAEC_OK;
    }
    SAEC_TRY(saec_absorption_init(&ab->a, W_dec_host, sae->m, d, gt));
    if (ab->a.n_parents == 0) return SAEC_OK;
    const int64_t np = ab->a.n_parents;
    ab->b_dec = malloc(sizeof(float) * (size_t)d);
    ab->xc = malloc(sizeof(float) * (size_t)(batch * d));
    ab->active = malloc((size_t)(batch * np));
    if (!ab->b_dec || !ab->xc || !ab->active)
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the absorption metric");
    SAEC_TRY(
        sae->dev->ops->download(sae->dev, ab->b_dec, sae->params.b_dec, sizeof(float) * (size_t)d));
    ab->on = 1;
    return SAEC_OK;
}

/* One evaluated batch: rows [n, d] raw (tokens t0 .. t0+n−1 of src) and their codes. */
static int absorb_batch(saec_sae *sae, saec_data *src, int64_t t0, int64_t n, const float *rows,
                        const host_codes *codes, absorb_state *ab) {
    const int64_t d = sae->d;
    SAEC_TRY(saec_synthetic_active(src, t0, n, ab->a.feature, ab->a.n_parents, ab->active));
    /* xc = x/s − b_dec, as sae_forward computes it (multiply by the float 1/s, then subtract),
       so P is measured in the SAE's normalised units. */
    const float inv_s = 1.0f / sae->scale;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            ab->xc[i * d + j] = rows[i * d + j] * inv_s - ab->b_dec[j];
    saec_absorption_add(&ab->a, n, ab->xc, codes->idx, codes->f, codes->kk, ab->active);
    return SAEC_OK;
}

/* Host buffers of the per-bucket metrics, used only when the data has timesteps. */
typedef struct {
    int on;
    int64_t B, T;
    saec_bucket_stats stats;
    int32_t *t, *bucket; /* [batch] */
    float *xn, *xhat;    /* [batch, d] */
    float *mu;           /* [d] */
} bucket_state;

static void bucket_state_free(bucket_state *bk) {
    free(bk->t), free(bk->bucket), free(bk->xn), free(bk->xhat), free(bk->mu);
}

static int bucket_setup(saec_sae *sae, int64_t B, int64_t T, bucket_state *bk) {
    const int64_t d = sae->d, n = sae->batch;
    bk->B = B, bk->T = T;
    bk->t = malloc(sizeof(int32_t) * (size_t)n);
    bk->bucket = malloc(sizeof(int32_t) * (size_t)n);
    bk->xn = malloc(sizeof(float) * (size_t)(n * d));
    bk->xhat = malloc(sizeof(float) * (size_t)(n * d));
    bk->mu = malloc(sizeof(float) * (size_t)d);
    if (!bk->t || !bk->bucket || !bk->xn || !bk->xhat || !bk->mu)
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for per-bucket metrics");
    SAEC_TRY(sae->dev->ops->download(sae->dev, bk->mu, sae->data_mean, sizeof(float) * (size_t)d));
    SAEC_TRY(saec_bucket_stats_init(&bk->stats, B, sae->m, d));
    bk->on = 1;
    return SAEC_OK;
}

/* One evaluated batch of n raw rows with timesteps bk->t: reconstructions and codes per bucket. */
static int bucket_batch(saec_sae *sae, int64_t n, const float *rows, const host_codes *codes,
                        bucket_state *bk) {
    const int64_t d = sae->d;
    SAEC_TRY(sae->dev->ops->download(sae->dev, bk->xhat, sae->acts.xhat,
                                     sizeof(float) * (size_t)(n * d)));
    const float inv_s = 1.0f / sae->scale; /* as sae_forward normalises */
    for (int64_t i = 0; i < n * d; i++)
        bk->xn[i] = rows[i] * inv_s;
    for (int64_t r = 0; r < n; r++)
        bk->bucket[r] = sae_timestep_bucket(bk->t[r], bk->B, bk->T);
    saec_bucket_stats_add(&bk->stats, n, bk->xn, bk->xhat, bk->mu, bk->bucket, codes->idx, codes->f,
                          codes->kk);
    return SAEC_OK;
}

void saec_eval_result_free(saec_eval_result *r) {
    if (r->has_buckets) saec_bucket_stats_free(&r->buckets);
    r->has_buckets = 0;
}

int saec_evaluate(saec_sae *sae, saec_data *src, int64_t tokens, int64_t n_buckets, int64_t T,
                  saec_eval_result *out) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m;
    int rc = SAEC_OK;
    bucket_state bk = {0};
    memset(out, 0, sizeof *out);
    tokens = saec_eval_rows(src, tokens, 1);
    if (sae->hp.ts_mode != SAE_TS_NONE && !src->has_timesteps)
        rc = saec_fail(SAEC_ERR_DATA, "evaluate it on data with timesteps",
                       "this SAE is timestep-aware but %s has no timesteps", src->info.description);
    if (rc == SAEC_OK && src->has_timesteps && n_buckets > 0)
        rc = bucket_setup(sae, n_buckets, T, &bk);
    float *rows = malloc(sizeof(float) * (size_t)(sae->batch * d)); /* [batch, d] host */
    int64_t *fire_count_host = malloc(sizeof(int64_t) * (size_t)m);
    float *W_dec_host = malloc(sizeof(float) * (size_t)(m * d)); /* [m, d] */
    int64_t *since = NULL, *fire_count = NULL;
    uint8_t *dead = NULL;
    double *dead_count = NULL;
    saec_ground_truth gt = {0};
    absorb_state ab = {0};
    if (rc == SAEC_OK && (!rows || !fire_count_host || !W_dec_host))
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for evaluation");
    /* Firing is counted in eval-only buffers so the training counters stay untouched. */
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(int64_t) * (size_t)m, (void **)&since);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(int64_t) * (size_t)m, (void **)&fire_count);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, (size_t)m, (void **)&dead);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(double), (void **)&dead_count);
    /* Ground truth and the decoder first: absorption is measured batch by batch. */
    if (rc == SAEC_OK && src->has_ground_truth) {
        rc = saec_data_ground_truth(src, &gt);
        if (rc == SAEC_OK)
            rc = dev->ops->download(dev, W_dec_host, sae->params.W_dec,
                                    sizeof(float) * (size_t)(m * d));
        if (rc == SAEC_OK) rc = absorb_setup(sae, src, &gt, W_dec_host, &ab);
    }

    host_codes codes = {0};
    if (rc == SAEC_OK && (ab.on || bk.on)) {
        const size_t slots = (size_t)(sae->batch * sae_code_capacity(sae));
        codes.idx = malloc(sizeof(int32_t) * slots);
        codes.f = malloc(sizeof(float) * slots);
        if (!codes.idx || !codes.f)
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the evaluation's codes");
    }

    double sse = 0, sst = 0, cos_sum = 0, nnz = 0;
    int64_t done = 0;
    while (rc == SAEC_OK && done < tokens) {
        int64_t n = tokens - done < sae->batch ? tokens - done : sae->batch;
        const int64_t t0 = src->cursor; /* position of this batch's first token */
        rc = saec_data_next(src, n, rows, bk.on ? bk.t : NULL);
        if (rc == SAEC_OK)
            rc = sae_forward_rows(sae, rows, sae->hp.ts_mode != SAE_TS_NONE ? bk.t : NULL, n, 0);
        if (rc == SAEC_OK)
            rc = sae_track_fired(sae, n, since, fire_count, INT64_MAX, dead, dead_count);
        if (rc == SAEC_OK && (ab.on || bk.on))
            rc = sae_download_codes(sae, n, codes.idx, codes.f, &codes.kk);
        if (rc == SAEC_OK && ab.on) rc = absorb_batch(sae, src, t0, n, rows, &codes, &ab);
        if (rc == SAEC_OK && bk.on) rc = bucket_batch(sae, n, rows, &codes, &bk);
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
        for (int64_t j = 0; j < m; j++)
            never += fire_count_host[j] == 0;
        out->tokens = done;
        out->mse = sse / ((double)done * (double)d);
        out->nmse = sst > 0 ? sse / sst : NAN;
        out->cosine = cos_sum / (double)done;
        out->l0 = nnz / (double)done;
        out->dead_fraction = (double)never / (double)m;
        out->explained_variance = 1.0 - out->nmse;
    }
    if (rc == SAEC_OK && src->has_ground_truth) {
        out->has_mmcs = 1;
        out->mmcs = saec_mmcs(W_dec_host, m, d, &gt);
    }
    if (rc == SAEC_OK && ab.on) {
        out->absorption_parents =
            saec_absorption_result(&ab.a, &out->absorption_fraction, &out->full_absorption);
        out->has_absorption = out->absorption_parents > 0;
        if (!out->has_absorption)
            fprintf(stderr,
                    "saec: note: no parent feature fired in the %lld evaluated tokens; "
                    "no absorption result (raise eval_tokens)\n",
                    (long long)done);
    }
    if (rc == SAEC_OK && bk.on) {
        out->buckets = bk.stats; /* moved: the result owns it now */
        out->has_buckets = 1;
        bk.on = 0;
    } else if (bk.on) {
        saec_bucket_stats_free(&bk.stats);
    }
    bucket_state_free(&bk);
    free(codes.idx), free(codes.f);
    absorb_free(&ab);
    saec_ground_truth_free(&gt);
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
    if (r->has_absorption) {
        cJSON_AddNumberToObject(obj, "absorption_fraction", r->absorption_fraction);
        cJSON_AddNumberToObject(obj, "full_absorption", r->full_absorption);
        cJSON_AddNumberToObject(obj, "absorption_parents", (double)r->absorption_parents);
    }
    if (r->has_buckets) saec_bucket_stats_to_json(&r->buckets, obj);
}
