/* MoE-MAE's embeddings and probes (moe_mae_eval.h). */
#include "moe_mae_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "moe_mae_plots.h"
#include "rng.h"

const char *moe_features_name(moe_features f) {
    switch (f) {
    case MOE_FEATURES_ENCODER: return "encoder";
    case MOE_FEATURES_RANDOM_INIT: return "random_init";
    case MOE_FEATURES_BAND_MEANS: return "band_means";
    }
    return "?";
}

/* The set's tiles as the net's rows [n, C·I·I + 4]: cropped to the model's image I (the rows and
   columns past it dropped), then the metadata. */
static float *net_rows_of(const moe_mae_hparams *h, const eo_set *set) {
    const int64_t C = set->bands, S = set->width, I = h->image, w = moe_mae_row_width(h);
    float *rows = malloc(sizeof(float) * (size_t)(set->n * w));
    if (!rows) return NULL;
    for (int64_t b = 0; b < set->n; b++) {
        const float *img = set->images + b * C * set->height * S;
        float *dst = rows + b * w;
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < I; y++)
                memcpy(dst + (c * I + y) * I, img + (c * set->height + y) * S,
                       sizeof(float) * (size_t)I);
        memcpy(dst + C * I * I, set->metadata + b * 4, 4 * sizeof(float));
    }
    return rows;
}

int moe_mae_features(moe_mae_net *net, const eo_set *set, moe_features kind, uint64_t seed,
                     float **features, int64_t *dim, float **load) {
    const moe_mae_hparams *h = moe_mae_net_hparams(net);
    *features = NULL;
    if (load) *load = NULL;
    if (set->bands != h->bands || set->height < h->image || set->width < h->image)
        return saec_fail(SAEC_ERR_DATA, "embed tiles like those the model was trained on",
                         "the tiles have %lld bands of %lldx%lld; the model takes %d bands of "
                         "%lldx%lld",
                         (long long)set->bands, (long long)set->height, (long long)set->width,
                         h->bands, (long long)h->image, (long long)h->image);
    if (kind == MOE_FEATURES_BAND_MEANS) {
        const int64_t C = set->bands, HW = set->height * set->width;
        const float *mean = moe_mae_net_band_mean(net), *sd = moe_mae_net_band_std(net);
        float *f = malloc(sizeof(float) * (size_t)(set->n * C));
        if (!f) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for band means");
        for (int64_t b = 0; b < set->n; b++)
            for (int64_t c = 0; c < C; c++) {
                double s = 0;
                for (int64_t i = 0; i < HW; i++)
                    s += set->images[(b * C + c) * HW + i];
                f[b * C + c] = (float)((s / (double)HW - mean[c]) / sd[c]);
            }
        *features = f, *dim = C;
        return SAEC_OK;
    }
    const int64_t D = h->enc.dim, np = moe_mae_net_n_params(net);
    float *rows = net_rows_of(h, set), *f = malloc(sizeof(float) * (size_t)(set->n * D));
    float *trained = kind == MOE_FEATURES_RANDOM_INIT ? malloc(sizeof(float) * (size_t)np) : NULL;
    float *routes = load ? malloc(sizeof(float) * (size_t)(set->n * h->enc.depth *
                                                         moe_mae_net_max_experts(net))) : NULL;
    saec_dev *dev = moe_mae_net_dev(net);
    int rc = rows && f && (trained || kind != MOE_FEATURES_RANDOM_INIT) && (routes || !load)
                 ? SAEC_OK
                 : saec_fail(SAEC_ERR_OTHER, "use fewer tiles", "out of memory for embeddings");
    if (rc == SAEC_OK && trained) {
        rc = dev->ops->download(dev, trained, moe_mae_net_params(net), sizeof(float) * (size_t)np);
        if (rc == SAEC_OK) rc = moe_mae_net_init_params(net, seed);
    }
    if (rc == SAEC_OK) rc = moe_mae_net_embed(net, rows, set->n, f, routes);
    if (trained) { /* the trained parameters back, whatever happened */
        const int rc2 =
            dev->ops->upload(dev, moe_mae_net_params(net), trained, sizeof(float) * (size_t)np);
        if (rc == SAEC_OK) rc = rc2;
    }
    free(rows), free(trained);
    if (rc != SAEC_OK) {
        free(f), free(routes);
        return rc;
    }
    *features = f, *dim = D;
    if (load) *load = routes;
    return SAEC_OK;
}

int moe_mae_probe(const float *x_train, const uint8_t *y_train, int64_t n_train,
                  const float *x_test, const uint8_t *y_test, int64_t n_test, int64_t dim, int K,
                  int multi_label, double c, double train_fraction, uint64_t seed,
                  probe_result *out) {
    if (K == 0)
        return saec_fail(SAEC_ERR_DATA, "probes need labelled tiles (saec gen eo writes them)",
                         "the data has no labels");
    int64_t n = n_train;
    const float *x = x_train;
    const uint8_t *y = y_train;
    float *xs = NULL;
    uint8_t *ys = NULL;
    if (train_fraction < 1.0) { /* the first share of a seeded permutation of the train rows */
        int64_t keep = (int64_t)ceil(train_fraction * (double)n);
        if (keep < 2) keep = 2;
        if (keep > n) keep = n;
        int64_t *order = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
        xs = malloc(sizeof(float) * (size_t)(keep * dim + 1));
        ys = malloc((size_t)(keep * K + 1));
        if (!order || !xs || !ys) {
            free(order), free(xs), free(ys);
            return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the probe");
        }
        saec_rng rng;
        saec_rng_init(&rng, seed, SAEC_RNG_SHUFFLE, 0x9be);
        for (int64_t i = 0; i < n; i++)
            order[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            const int64_t j = (int64_t)(saec_rng_u64(&rng) % (uint64_t)(i + 1));
            const int64_t t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (int64_t i = 0; i < keep; i++) {
            memcpy(xs + i * dim, x_train + order[i] * dim, sizeof(float) * (size_t)dim);
            memcpy(ys + i * K, y_train + order[i] * K, (size_t)K);
        }
        free(order);
        x = xs, y = ys, n = keep;
    }
    probe_options opt = {.c = c, .seed = seed};
    const int rc = probe_fit_score(x, y, n, x_test, y_test, n_test, dim, K, multi_label, &opt, out);
    free(xs), free(ys);
    return rc;
}

double moe_mae_probe_headline(const probe_result *r) {
    return r->multi_label ? r->micro_map : r->accuracy;
}

cJSON *moe_mae_probe_json(const probe_result *r) {
    cJSON *o = cJSON_CreateObject();
    if (r->multi_label) {
        cJSON_AddNumberToObject(o, "micro_map", r->micro_map);
        cJSON_AddNumberToObject(o, "macro_map", r->macro_map);
    } else {
        cJSON_AddNumberToObject(o, "accuracy", r->accuracy);
        cJSON_AddNumberToObject(o, "macro_f1", r->macro_f1);
    }
    cJSON_AddNumberToObject(o, "c", r->c_chosen);
    cJSON_AddNumberToObject(o, "train_rows", (double)r->n_train);
    cJSON_AddNumberToObject(o, "test_rows", (double)r->n_test);
    return o;
}

int moe_mae_evaluate(moe_mae_net *net, const saec_config *cfg, const char *dir,
                     cJSON *summary) {
    int rc = SAEC_OK;
    if (cfg->probe_tiles > 0) {
        const char *path = cfg->data[0] ? cfg->data : NULL;
        eo_set train = {0}, test = {0};
        const double t0 = saec_now();
        rc = eo_set_load(cfg, path, EO_SPLIT_TRAIN, cfg->probe_tiles, &train);
        if (rc == SAEC_OK) rc = eo_set_load(cfg, path, EO_SPLIT_TEST, cfg->probe_tiles, &test);
        if (rc == SAEC_OK && train.n_classes == 0) {
            fprintf(stderr, "saec: the data has no labels: no probe\n");
        } else if (rc == SAEC_OK) {
            fprintf(stderr,
                    "saec: linear probes on %lld train and %lld test tiles (%s, %d classes%s)\n",
                    (long long)train.n, (long long)test.n, path ? path : "synthetic eo",
                    train.n_classes, train.multi_label ? ", multi-label" : "");
            static const moe_features kinds[3] = {MOE_FEATURES_ENCODER, MOE_FEATURES_RANDOM_INIT,
                                                  MOE_FEATURES_BAND_MEANS};
            cJSON *probe = cJSON_CreateObject();
            double score[3] = {0};
            for (int k = 0; k < 3 && rc == SAEC_OK; k++) {
                float *xtr = NULL, *xte = NULL;
                int64_t dim = 0;
                probe_result r;
                const uint64_t seed = (uint64_t)cfg->seed;
                rc = moe_mae_features(net, &train, kinds[k], seed, &xtr, &dim, NULL);
                if (rc == SAEC_OK)
                    rc = moe_mae_features(net, &test, kinds[k], seed, &xte, &dim, NULL);
                if (rc == SAEC_OK)
                    rc = moe_mae_probe(xtr, train.labels, train.n, xte, test.labels, test.n, dim,
                                       train.n_classes, train.multi_label, cfg->probe_c, 1.0,
                                       (uint64_t)cfg->seed, &r);
                free(xtr), free(xte);
                if (rc != SAEC_OK) break;
                score[k] = moe_mae_probe_headline(&r);
                fprintf(stderr, "saec:   %-12s %s %.4f", moe_features_name(kinds[k]),
                        r.multi_label ? "micro mAP" : "accuracy", score[k]);
                if (r.multi_label)
                    fprintf(stderr, "  macro mAP %.4f", r.macro_map);
                else
                    fprintf(stderr, "  macro F1 %.4f", r.macro_f1);
                fprintf(stderr, "  (C %g)\n", r.c_chosen);
                cJSON_AddItemToObject(probe, moe_features_name(kinds[k]), moe_mae_probe_json(&r));
            }
            if (rc == SAEC_OK) {
                const int beats = score[0] > score[1] && score[0] > score[2];
                cJSON_AddStringToObject(probe, "metric",
                                        train.multi_label ? "micro_map" : "accuracy");
                cJSON_AddBoolToObject(probe, "encoder_beats_baselines", beats);
                cJSON_AddNumberToObject(probe, "seconds", saec_now() - t0);
                fprintf(stderr, "saec:   the trained encoder %s both baselines\n",
                        beats ? "beats" : "does NOT beat");
                cJSON_AddItemToObject(summary, "probe", probe);
            } else {
                cJSON_Delete(probe);
            }
        }
        eo_set_free(&train);
        eo_set_free(&test);
    }
    if (rc == SAEC_OK) rc = moe_mae_write_plots(dir);
    return rc;
}
