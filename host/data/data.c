/* Activation sources: dispatch to the HDF5 reader or a synthetic generator, and the optional
   background prefetch of the next batch. */
#include "data.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eo_h5.h"
#include "saec/saec.h"

int saec_data_open(const saec_config *cfg, saec_stream stream, saec_data **out) {
    if (cfg->data[0])
        return eo_h5_is_eo_file(cfg->data) ? saec_data_open_eo(cfg, stream, out)
                                           : saec_data_open_hdf5(cfg, stream, out);
    if (!strcmp(cfg->synthetic, "eo")) return saec_data_open_eo(cfg, stream, out);
    return saec_data_open_synthetic(cfg, stream, out);
}

/* ---- prefetch: one worker thread, one batch ahead ---- */

typedef enum { PF_IDLE, PF_REQUESTED, PF_READY } pf_state;

struct saec_prefetch {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    saec_data *twin; /* the worker's own source */
    float *buf;      /* [cap_rows, d] */
    int32_t *tbuf;   /* [cap_rows] timesteps, when the source has them */
    int64_t cap_rows;
    int64_t start, n; /* the batch requested / held */
    pf_state state;
    int quit;
    int rc; /* the worker's result, with its error text (errors are per thread) */
    char msg[1024], hint[512];
};

static void *prefetch_main(void *arg) {
    saec_prefetch *pf = arg;
    const int64_t d = pf->twin->info.d;
    const int has_t = pf->twin->has_timesteps;
    pthread_mutex_lock(&pf->mu);
    for (;;) {
        while (!pf->quit && pf->state != PF_REQUESTED)
            pthread_cond_wait(&pf->cv, &pf->mu);
        if (pf->quit) break;
        const int64_t start = pf->start, n = pf->n;
        pthread_mutex_unlock(&pf->mu);
        int rc = SAEC_OK;
        if (n >
            pf->cap_rows) { /* only while the batch size is first seen: no per-step allocation */
            float *bigger = realloc(pf->buf, sizeof(float) * (size_t)(n * d));
            if (bigger) pf->buf = bigger;
            int32_t *tbigger =
                bigger && has_t ? realloc(pf->tbuf, sizeof(int32_t) * (size_t)n) : pf->tbuf;
            if (tbigger) pf->tbuf = tbigger;
            if (bigger && (tbigger || !has_t)) {
                pf->cap_rows = n;
            } else {
                rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the prefetch buffer");
            }
        }
        if (rc == SAEC_OK) rc = pf->twin->vt->seek(pf->twin, start);
        if (rc == SAEC_OK) rc = pf->twin->vt->next(pf->twin, n, pf->buf, has_t ? pf->tbuf : NULL);
        pthread_mutex_lock(&pf->mu);
        pf->rc = rc;
        if (rc != SAEC_OK) {
            snprintf(pf->msg, sizeof pf->msg, "%s", saec_error_message());
            snprintf(pf->hint, sizeof pf->hint, "%s", saec_error_hint());
            saec_error_clear();
        }
        pf->state = PF_READY;
        pthread_cond_broadcast(&pf->cv);
    }
    pthread_mutex_unlock(&pf->mu);
    return NULL;
}

int saec_data_enable_prefetch(saec_data *src, const saec_config *cfg, saec_stream stream) {
    if (src->prefetch || src->info.n_rows >= 0) return SAEC_OK; /* files have their own loader */
    saec_prefetch *pf = calloc(1, sizeof *pf);
    if (!pf) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the prefetch");
    int rc = saec_data_open(cfg, stream, &pf->twin);
    if (rc != SAEC_OK) {
        free(pf);
        return rc;
    }
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    if (pthread_create(&pf->thread, NULL, prefetch_main, pf) != 0) {
        saec_data_close(pf->twin);
        free(pf);
        return saec_fail(SAEC_ERR_OTHER, NULL, "cannot start the data prefetch thread");
    }
    src->prefetch = pf;
    return SAEC_OK;
}

static void prefetch_stop(saec_prefetch *pf) {
    pthread_mutex_lock(&pf->mu);
    pf->quit = 1;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    pthread_join(pf->thread, NULL);
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->cv);
    saec_data_close(pf->twin);
    free(pf->buf);
    free(pf->tbuf);
    free(pf);
}

/* Deliver rows [start, start + n) from the prefetched batch when it is that batch, else compute
   them here; then ask the worker for rows [after, after + n). */
static int prefetched_next(saec_data *src, int64_t start, int64_t after, int64_t n, float *rows,
                           int32_t *timesteps) {
    saec_prefetch *pf = src->prefetch;
    const int64_t d = src->info.d;
    int rc = SAEC_OK, served = 0;
    pthread_mutex_lock(&pf->mu);
    while (pf->state == PF_REQUESTED)
        pthread_cond_wait(&pf->cv, &pf->mu);
    if (pf->state == PF_READY && pf->start == start && pf->n == n) {
        served = 1;
        rc = pf->rc;
        if (rc == SAEC_OK) {
            memcpy(rows, pf->buf, sizeof(float) * (size_t)(n * d));
            if (timesteps && src->has_timesteps)
                memcpy(timesteps, pf->tbuf, sizeof(int32_t) * (size_t)n);
        } else
            saec_fail(rc, pf->hint, "%s", pf->msg);
    }
    pthread_mutex_unlock(&pf->mu);
    if (!served) {
        rc = src->vt->seek(src, start);
        if (rc == SAEC_OK) rc = src->vt->next(src, n, rows, timesteps);
    }
    if (rc != SAEC_OK) return rc;
    pthread_mutex_lock(&pf->mu);
    pf->start = after;
    pf->n = n;
    pf->state = PF_REQUESTED;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    return SAEC_OK;
}

int saec_data_next(saec_data *src, int64_t n, float *rows, int32_t *timesteps) {
    return saec_data_next_shard(src, n, 0, 1, rows, timesteps);
}

int saec_data_next_shard(saec_data *src, int64_t n, int rank, int world, float *rows,
                         int32_t *timesteps) {
    const int64_t batch_start = src->cursor, start = batch_start + (int64_t)rank * n;
    const int64_t next_batch = batch_start + (int64_t)world * n;
    int rc;
    if (src->prefetch) {
        rc = prefetched_next(src, start, next_batch + (int64_t)rank * n, n, rows, timesteps);
    } else {
        rc = world > 1 ? src->vt->seek(src, start) : SAEC_OK;
        if (rc == SAEC_OK) rc = src->vt->next(src, n, rows, timesteps);
    }
    if (rc != SAEC_OK) return rc;
    src->cursor = next_batch;
    /* the source's own position must agree, for the next unsharded read */
    return world > 1 && !src->prefetch ? src->vt->seek(src, next_batch) : SAEC_OK;
}

int saec_data_seek(saec_data *src, int64_t cursor) {
    if (cursor < 0)
        return saec_fail(SAEC_ERR_DATA, "the checkpoint's data cursor is damaged",
                         "negative data cursor %lld", (long long)cursor);
    return src->vt->seek(src, cursor);
}

int saec_data_ground_truth(saec_data *src, saec_ground_truth *out) {
    if (!src->has_ground_truth)
        return saec_fail(SAEC_ERR_DATA,
                         "ground-truth metrics need synthetic data or a file with a "
                         "'ground_truth' group",
                         "no ground truth in %s", src->info.description);
    return src->vt->ground_truth(src, out);
}

void saec_data_close(saec_data *src) {
    if (!src) return;
    if (src->prefetch) prefetch_stop(src->prefetch);
    src->vt->close(src);
}

void saec_ground_truth_free(saec_ground_truth *gt) {
    free(gt->directions);
    free(gt->probabilities);
    free(gt->offset);
    free(gt->parent);
    free(gt->t_center);
    gt->directions = gt->probabilities = gt->offset = gt->t_center = NULL;
    gt->parent = NULL;
}

int64_t saec_eval_rows(const saec_data *src, int64_t tokens, int note) {
    const int64_t rows = src->info.n_rows;
    if (rows < 0 || tokens <= rows) return tokens;
    if (note)
        fprintf(stderr, "saec: note: eval_tokens %lld > %lld rows in %s: evaluated each row once\n",
                (long long)tokens, (long long)rows, src->info.description);
    return rows;
}
