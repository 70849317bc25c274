/* MoE-MAE as a model the training loop drives (model.h): the network of moe_mae_net.h, its
 * checkpoints (moe_mae_checkpoint.h), its metrics and expert-load record, and its end-of-run
 * evaluation (moe_mae_eval.h: the linear probes against their baselines, and the plots).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "eo_set.h"
#include "fsutil.h"
#include "model.h"
#include "moe_mae_checkpoint.h"
#include "moe_mae_eval.h"
#include "moe_mae_net.h"

#define EXPERT_LOAD_FILE "expert_load.jsonl"
#define BAND_STATS_TILES 512 /* tiles sampled for the z-score when the data gives none */

typedef struct {
    moe_mae_net *net;
    moe_mae_cfg mcfg;
    saec_comm *comm;
    const saec_config *cfg; /* the run's, alive as long as the model */
    int rank, world;
    int64_t data_side; /* the tiles' side as the data delivers them */
    float *cropped;                /* [batch, net row width] when the data's side is larger */
} moe_model;

static void describe(const saec_model *m, char *buf, size_t size) {
    const moe_model *mm = m->impl;
    const moe_mae_hparams *h = &mm->mcfg.h;
    int64_t enc = 0;
    const int64_t all = moe_mae_param_count(h, &enc);
    snprintf(buf, size,
             "MoE-MAE %lld parameters (encoder %lld): %d bands %lldx%lld, patch %lld, encoder "
             "%d x %lld, decoder %d x %lld, top-%d, mask %.0f%%%s",
             (long long)all, (long long)enc, h->bands, (long long)h->image, (long long)h->image,
             (long long)h->patch, h->enc.depth, (long long)h->enc.dim, h->dec.depth,
             (long long)h->dec.dim, h->top_k, 100 * mm->mcfg.mask_ratio,
             mm->mcfg.use_metadata ? "" : ", metadata zeroed");
}

/* The data's rows as the net reads them: tiles larger than the model's image lose their rows and
   columns past it (SPEC §7: 41×41 → 40×40); the metadata follows the pixels. */
static const float *net_rows(moe_model *mm, const float *rows, int64_t n) {
    const moe_mae_hparams *h = &mm->mcfg.h;
    if (mm->data_side == h->image) return rows;
    const int64_t S = mm->data_side, I = h->image, C = h->bands;
    const int64_t in_w = C * S * S + 4, out_w = moe_mae_row_width(h);
    for (int64_t b = 0; b < n; b++) {
        const float *src = rows + b * in_w;
        float *dst = mm->cropped + b * out_w;
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < I; y++)
                memcpy(dst + (c * I + y) * I, src + (c * S + y) * S, sizeof(float) * (size_t)I);
        memcpy(dst + C * I * I, src + C * S * S, 4 * sizeof(float));
    }
    return mm->cropped;
}

static int init(saec_model *m, saec_data *data) {
    moe_model *mm = m->impl;
    const moe_mae_hparams *h = &mm->mcfg.h;
    float mean[16], sd[16];
    if (data->has_band_stats) {
        memcpy(mean, data->band_mean, sizeof mean);
        memcpy(sd, data->band_std, sizeof sd);
    } else { /* every rank reads the same first tiles: the same statistics everywhere */
        const int64_t n = BAND_STATS_TILES, w = data->info.d;
        float *sample = malloc(sizeof(float) * (size_t)(n * w));
        if (!sample) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the band sample");
        int rc = saec_data_next(data, n, sample, NULL);
        if (rc == SAEC_OK) { /* a row is a tile's pixels, then its metadata */
            const int64_t hw = mm->data_side * mm->data_side;
            eo_band_acc acc;
            eo_band_acc_init(&acc, h->bands);
            for (int64_t b = 0; b < n; b++)
                eo_band_acc_add(&acc, sample + b * w, 1, hw);
            eo_band_acc_finish(&acc, mean, sd);
        }
        free(sample);
        SAEC_TRY(rc);
    }
    moe_mae_net_set_band_stats(mm->net, mean, sd);
    if (mm->rank == 0) {
        fprintf(stderr, "saec: band z-score (%s):", data->has_band_stats ? "the file's" : "sampled");
        for (int c = 0; c < h->bands; c++)
            fprintf(stderr, " %.4g±%.3g", mean[c], sd[c]);
        fputc('\n', stderr);
    }
    /* deterministic from the seed: every rank draws the same parameters */
    return moe_mae_net_init_params(mm->net, (uint64_t)mm->cfg->seed);
}

static int step(saec_model *m, const float *rows, const int32_t *timesteps, int64_t n, int64_t t,
                int64_t total, double lr) {
    (void)timesteps, (void)total;
    moe_model *mm = m->impl;
    const saec_config *cfg = mm->cfg;
    SAEC_TRY(moe_mae_net_forward_backward(mm->net, net_rows(mm, rows, n), n, t,
                                          (int64_t)mm->rank * n));
    const saec_adamw_args args = {
        .lr = (float)lr,
        .beta1 = (float)cfg->beta1,
        .beta2 = (float)cfg->beta2,
        .eps = (float)cfg->eps,
        .weight_decay = (float)cfg->weight_decay,
        .step = t + 1,
        .max_grad_norm = (float)cfg->max_grad_norm,
    };
    return moe_mae_net_adamw(mm->net, args);
}

/* One line of expert_load.jsonl: each block's share of the routed items per expert. */
static void record_load(const moe_model *mm, const moe_mae_stats *st, int64_t step) {
    char path[SAEC_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", mm->cfg->out, EXPERT_LOAD_FILE);
    FILE *f = fopen(path, "a");
    if (!f) return; /* the record is a plot's input; training goes on without it */
    fprintf(f, "{\"step\": %lld, \"blocks\": [", (long long)step);
    for (int i = 0; i < st->n_blocks; i++) {
        fprintf(f, "%s[", i ? ", " : "");
        for (int e = 0; e < st->experts[i]; e++)
            fprintf(f, "%s%.5f", e ? ", " : "", st->load[i][e]);
        fputc(']', f);
    }
    fputs("]}\n", f);
    fclose(f);
}

/* metrics.jsonl's keys for MoE-MAE; the loss terms, the balance and the spread of expert load on
   the progress line. load_cv: the mean over the encoder blocks of the CV of the experts' shares
   of the routed items (0 = even). */
static int metrics(saec_model *m, int64_t global_n, saec_log_record *rec) {
    (void)global_n;
    moe_model *mm = m->impl;
    moe_mae_stats st;
    SAEC_TRY(moe_mae_net_read_stats(mm->net, &st));
    const int enc_blocks = mm->mcfg.h.enc.depth;
    double load_cv = 0, load_max = 0;
    for (int i = 0; i < enc_blocks; i++) {
        const int E = st.experts[i];
        double mu = 1.0 / E, var = 0;
        for (int e = 0; e < E; e++) {
            var += (st.load[i][e] - mu) * (st.load[i][e] - mu) / E;
            load_max = fmax(load_max, st.load[i][e] * E);
        }
        load_cv += sqrt(var) / mu / enc_blocks;
    }
    const saec_metric all[] = {
        {"loss", st.loss, 8, "loss %.4f", 1, 1},
        {"masked", st.masked, 8, "masked %.4f", 1, 0},
        {"visible", st.visible, 8, "visible %.4f", 1, 0},
        {"balance", st.balance, 6, "balance %.4f", 1, 0},
        {"load_cv", load_cv, 4, "load cv %.2f", 1, 0},
        {"load_max", load_max, 4, "max/even %.2f", 1, 0},
        {"grad_norm", st.grad_norm, 6, NULL, 1, 1},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        saec_log_metric(rec, all[i]);
    /* the step the loop is about to log is the one after the last step done */
    if (mm->rank == 0) record_load(mm, &st, rec->step > 0 ? rec->step : -1);
    return SAEC_OK;
}

static int save(saec_model *m, const char *dir, const saec_config *cfg, const saec_run_state *st) {
    moe_model *mm = m->impl;
    return mm->rank == 0 ? moe_mae_ckpt_save(dir, mm->net, cfg, st) : SAEC_OK;
}

/* expert_load.jsonl keeps the records up to the resumed step (a killed run wrote some past it). */
static int trim_expert_load(const char *dir, int64_t step) {
    char path[SAEC_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, EXPERT_LOAD_FILE);
    return saec_jsonl_truncate_after_step(path, step);
}

static int load(saec_model *m, const char *dir, saec_run_state *st) {
    moe_model *mm = m->impl;
    SAEC_TRY(moe_mae_ckpt_load(dir, mm->net, st));
    return mm->rank == 0 ? trim_expert_load(dir, st->step) : SAEC_OK;
}

static int evaluate(saec_model *m, const saec_config *cfg, const char *dir, cJSON *summary) {
    moe_model *mm = m->impl;
    return moe_mae_evaluate(mm->net, cfg, dir, summary);
}

static void destroy(saec_model *m) {
    if (!m) return;
    moe_model *mm = m->impl;
    if (mm) {
        moe_mae_net_destroy(mm->net);
        free(mm->cropped);
    }
    free(mm);
    free(m);
}

static const saec_model_ops moe_model_ops = {
    .kind = "moe-mae",
    .rate_unit = "img",
    .describe = describe,
    .init = init,
    .step = step,
    .metrics = metrics,
    .save = save,
    .load = load,
    .evaluate = evaluate,
    .destroy = destroy,
};

int saec_moe_mae_model_create(saec_dev *dev, saec_comm *comm, const saec_config *cfg,
                              const saec_data *data, saec_model **out) {
    *out = NULL;
    if (data->eo_bands <= 0)
        return saec_fail(SAEC_ERR_DATA,
                         "MoE-MAE trains on EO tiles: --synthetic eo, or a file in the EO layout "
                         "(saec gen eo, saec import geotiff)",
                         "the data (%s) holds activations, not images", data->info.description);
    moe_mae_cfg mcfg;
    SAEC_TRY(moe_mae_cfg_from_config(cfg, &mcfg));
    if (data->eo_height != data->eo_width || data->eo_height < mcfg.h.image ||
        data->eo_bands > 16)
        return saec_fail(SAEC_ERR_DATA, "give square tiles at least moe_image wide, at most 16 bands",
                         "the data (%s) has %lld bands of %lldx%lld; the model takes %lldx%lld",
                         data->info.description, (long long)data->eo_bands,
                         (long long)data->eo_height, (long long)data->eo_width,
                         (long long)mcfg.h.image, (long long)mcfg.h.image);
    mcfg.h.bands = (int)data->eo_bands;
    saec_model *m = calloc(1, sizeof *m);
    moe_model *mm = calloc(1, sizeof *mm);
    if (!m || !mm) {
        free(m), free(mm);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the model");
    }
    m->ops = &moe_model_ops;
    m->impl = mm;
    mm->mcfg = mcfg, mm->comm = comm, mm->cfg = cfg;
    mm->rank = saec_comm_rank(comm), mm->world = saec_comm_size(comm);
    mm->data_side = data->eo_height;
    int rc = moe_mae_net_create(dev, comm, &mm->mcfg, cfg->batch_size, &mm->net);
    if (rc == SAEC_OK && mm->data_side != mcfg.h.image) {
        mm->cropped = malloc(sizeof(float) * (size_t)(cfg->batch_size * moe_mae_row_width(&mcfg.h)));
        if (!mm->cropped) rc = saec_fail(SAEC_ERR_OTHER, "lower batch_size", "out of memory");
    }
    if (rc != SAEC_OK) {
        destroy(m);
        return rc;
    }
    *out = m;
    return SAEC_OK;
}
