/* Labelled EO sets in memory and per-band statistics (eo_set.h). */
#include "eo_set.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eo_synth.h"
#include "saec/hash.h"
#include "saec/saec.h"

int eo_split_of_index(uint64_t index) {
    const uint64_t bucket = saec_mix64(index ^ 0x73706c6974ull /* "split" */) % 10;
    return bucket < 6 ? EO_SPLIT_TRAIN : bucket < 8 ? EO_SPLIT_VAL : EO_SPLIT_TEST;
}

/* ---- band statistics ----------------------------------------------------------------------- */

void eo_band_acc_init(eo_band_acc *acc, int64_t bands) {
    memset(acc, 0, sizeof *acc);
    acc->bands = bands;
}

void eo_band_acc_add(eo_band_acc *acc, const float *images, int64_t n, int64_t hw) {
    const int64_t C = acc->bands;
    if (n <= 0 || hw <= 0) return;
    if (acc->count == 0)
        for (int64_t c = 0; c < C; c++)
            acc->shift[c] = images[c * hw];
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < C; c++) {
            const float *band = images + (i * C + c) * hw;
            double s = 0, s2 = 0;
            for (int64_t p = 0; p < hw; p++) {
                const double v = (double)band[p] - acc->shift[c];
                s += v;
                s2 += v * v;
            }
            acc->sum[c] += s;
            acc->sumsq[c] += s2;
        }
    acc->count += n * hw;
}

void eo_band_acc_finish(const eo_band_acc *acc, float *mean, float *std) {
    for (int64_t c = 0; c < acc->bands; c++) {
        if (acc->count == 0) {
            mean[c] = 0.0f;
            std[c] = 1.0f;
            continue;
        }
        const double m = acc->sum[c] / (double)acc->count;
        const double var = acc->sumsq[c] / (double)acc->count - m * m;
        const float s = (float)sqrt(var > 0 ? var : 0);
        mean[c] = (float)(acc->shift[c] + m);
        std[c] = s > EO_BAND_STD_MIN ? s : EO_BAND_STD_MIN;
    }
}

void eo_band_stats(const float *images, int64_t n, int64_t bands, int64_t hw, float *mean,
                   float *std) {
    eo_band_acc acc;
    eo_band_acc_init(&acc, bands);
    eo_band_acc_add(&acc, images, n, hw);
    eo_band_acc_finish(&acc, mean, std);
}

/* ---- sets ---------------------------------------------------------------------------------- */

void eo_set_free(eo_set *set) {
    free(set->images);
    free(set->metadata);
    free(set->labels);
    free(set->split);
    free(set->tile);
    memset(set, 0, sizeof *set);
}

/* The arrays of set for set->n tiles of its geometry and classes. */
static int allocate(eo_set *set, const char *source) {
    const int64_t n = set->n, chw = set->bands * set->height * set->width;
    const double bytes = (double)n * (double)chw * sizeof(float);
    if (bytes < 1e15) {
        set->images = malloc((size_t)bytes + 1);
        set->metadata = malloc(sizeof(float) * 4 * (size_t)n + 1);
        set->labels = malloc((size_t)(n * set->n_classes) + 1);
        set->split = malloc((size_t)n + 1);
        set->tile = malloc(sizeof(int64_t) * (size_t)n + 1);
    }
    if (set->images && set->metadata && set->labels && set->split && set->tile) return SAEC_OK;
    eo_set_free(set);
    return saec_fail(SAEC_ERR_OTHER, "load fewer tiles",
                     "out of memory for %" PRId64 " tiles of %s (%.0f MiB of pixels)", n, source,
                     bytes / (1 << 20));
}

static int no_tiles(const char *source, int split) {
    static const char *const names[3] = {"train ", "val ", "test "};
    return saec_fail(SAEC_ERR_DATA, "check the file's split dataset, or load more tiles",
                     "no %stiles in %s", split >= 0 ? names[split] : "", source);
}

static int load_synthetic(const saec_config *cfg, int split, int64_t max_tiles, eo_set *set) {
    if (max_tiles <= 0)
        return saec_fail(SAEC_ERR_USAGE, "ask for a positive number of synthetic tiles",
                         "a synthetic EO set of %" PRId64 " tiles", max_tiles);
    if (cfg->eo_side < 1 || cfg->eo_side > EO_MAX_SIDE)
        return saec_fail(SAEC_ERR_USAGE, "choose eo_side from 4 to 256",
                         "config key 'eo_side' = %" PRId64, cfg->eo_side);
    set->bands = EO_BANDS;
    set->height = set->width = cfg->eo_side;
    set->n_classes = EO_CLASSES;
    set->multi_label = 1;
    for (int c = 0; c < EO_CLASSES; c++)
        snprintf(set->class_names[c], EO_H5_NAME_MAX, "%s", eo_class_name(c));
    for (int64_t j = 0; j < max_tiles; j++)
        set->n += split < 0 || eo_split_of_index(EO_EVAL_INDEX_BASE + (uint64_t)j) == split;
    if (set->n == 0) return no_tiles("the synthetic eval range", split);
    SAEC_TRY(allocate(set, "synthetic EO data"));
    int64_t k = 0;
    for (int64_t j = 0; j < max_tiles; j++) {
        const int s = eo_split_of_index(EO_EVAL_INDEX_BASE + (uint64_t)j);
        if (split >= 0 && s != split) continue;
        set->tile[k] = (int64_t)(EO_EVAL_INDEX_BASE + (uint64_t)j);
        set->split[k++] = (uint8_t)s;
    }
    const int64_t chw = set->bands * set->height * set->width, n = set->n;
    const uint64_t seed = (uint64_t)cfg->seed;
    int failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed)
    for (int64_t i = 0; i < n; i++) {
        eo_meta m;
        failed |= eo_synth_tile(seed, (uint64_t)set->tile[i], cfg->eo_side, set->images + i * chw,
                                &m, set->labels + i * EO_CLASSES, NULL) != SAEC_OK;
        float *meta = set->metadata + 4 * i;
        meta[0] = m.week, meta[1] = m.hour, meta[2] = m.lat, meta[3] = m.lon;
    }
    if (failed) {
        eo_set_free(set);
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: the synthetic EO generator failed");
    }
    return SAEC_OK;
}

/* Reads the selected tiles (set->tile, ascending) in runs of consecutive rows. */
static int read_selected(eo_h5_reader *r, eo_set *set) {
    const int64_t chw = set->bands * set->height * set->width, K = set->n_classes;
    for (int64_t i = 0; i < set->n;) {
        int64_t run = 1;
        while (i + run < set->n && set->tile[i + run] == set->tile[i] + run)
            run++;
        SAEC_TRY(eo_h5_read(r, set->tile[i], run, set->images + i * chw, set->metadata + 4 * i,
                            set->labels + i * K, NULL));
        i += run;
    }
    return SAEC_OK;
}

static int load_file(const char *path, int split, int64_t max_tiles, eo_set *set) {
    eo_h5_reader *r = NULL;
    SAEC_TRY(eo_h5_reader_open(path, &r));
    const eo_h5_info *info = eo_h5_reader_info(r);
    int rc = SAEC_OK;
    const int64_t m = max_tiles > 0 && max_tiles < info->n ? max_tiles : info->n;
    uint8_t *splits = rc == SAEC_OK ? malloc((size_t)m) : NULL; /* [m] */
    if (rc == SAEC_OK && !splits)
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path);
    if (rc == SAEC_OK) rc = eo_h5_read(r, 0, m, NULL, NULL, NULL, splits);
    if (rc == SAEC_OK) {
        set->bands = info->bands;
        set->height = info->height;
        set->width = info->width;
        set->n_classes = info->n_classes;
        set->multi_label = info->multi_label;
        memcpy(set->class_names, info->class_names, sizeof set->class_names);
        set->has_band_stats = info->has_band_stats;
        memcpy(set->band_mean, info->band_mean, sizeof set->band_mean);
        memcpy(set->band_std, info->band_std, sizeof set->band_std);
        for (int64_t i = 0; i < m; i++)
            set->n += split < 0 || splits[i] == split;
        if (set->n == 0) {
            char source[SAEC_STR_MAX + 16];
            snprintf(source, sizeof source, "'%s'", path);
            rc = no_tiles(source, split);
        }
    }
    if (rc == SAEC_OK) rc = allocate(set, path);
    if (rc == SAEC_OK) {
        int64_t k = 0;
        for (int64_t i = 0; i < m; i++)
            if (split < 0 || splits[i] == split) {
                set->tile[k] = i;
                set->split[k++] = splits[i];
            }
        rc = read_selected(r, set);
    }
    free(splits);
    eo_h5_reader_close(r);
    if (rc != SAEC_OK) eo_set_free(set);
    return rc;
}

int eo_set_load(const saec_config *cfg, const char *path, int split, int64_t max_tiles,
                eo_set *out) {
    memset(out, 0, sizeof *out);
    if (split < -1 || split > EO_SPLIT_TEST)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: split %d", split);
    return path ? load_file(path, split, max_tiles, out)
                : load_synthetic(cfg, split, max_tiles, out);
}
