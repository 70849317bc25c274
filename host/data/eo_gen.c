/* `saec gen eo` (eo_gen.h): batches of synthetic tiles, generated in parallel and appended to the
   EO writer; the band statistics accumulate over the train split in tile order, so the file is
   the same whatever the thread count. */
#include "eo_gen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "eo_h5.h"
#include "eo_set.h"
#include "eo_synth.h"
#include "h5_write.h"
#include "saec/saec.h"

typedef struct {
    float *images;   /* [batch, 7, side, side] */
    float *metadata; /* [batch, 4] */
    uint8_t *labels; /* [batch, 8] */
    uint8_t *split;  /* [batch] */
} gen_batch;

/* Tiles [first, first + n) into b. */
static int generate(const saec_config *cfg, int64_t first, int64_t n, gen_batch *b) {
    const int64_t chw = (int64_t)EO_BANDS * cfg->eo_side * cfg->eo_side;
    int failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed)
    for (int64_t i = 0; i < n; i++) {
        const uint64_t index = (uint64_t)(first + i);
        eo_meta m;
        failed |= eo_synth_tile((uint64_t)cfg->seed, index, cfg->eo_side, b->images + i * chw, &m,
                                b->labels + i * EO_CLASSES, NULL) != SAEC_OK;
        float *meta = b->metadata + 4 * i;
        meta[0] = m.week, meta[1] = m.hour, meta[2] = m.lat, meta[3] = m.lon;
        b->split[i] = (uint8_t)eo_split_of_index(index);
    }
    return failed ? saec_fail(SAEC_ERR_OTHER, NULL, "internal: the EO generator failed") : SAEC_OK;
}

/* Adds the batch's train tiles to acc, in order. */
static void add_train_tiles(eo_band_acc *acc, const gen_batch *b, int64_t n, int64_t hw) {
    for (int64_t i = 0; i < n; i++)
        if (b->split[i] == EO_SPLIT_TRAIN)
            eo_band_acc_add(acc, b->images + i * EO_BANDS * hw, 1, hw);
}

int eo_gen_write(const saec_config *cfg, const char *path, int64_t n_tiles, const char *provenance,
                 int progress, volatile sig_atomic_t *stop) {
    if (n_tiles <= 0)
        return saec_fail(SAEC_ERR_USAGE, "pass --tokens N (tiles) with N > 0",
                         "cannot write '%s': %" PRId64 " tiles requested", path, n_tiles);
    if (cfg->eo_side < 1 || cfg->eo_side > EO_MAX_SIDE)
        return saec_fail(SAEC_ERR_USAGE, "choose --eo-side from 4 to 256",
                         "config key 'eo_side' = %" PRId64, cfg->eo_side);
    const int64_t hw = cfg->eo_side * cfg->eo_side, chw = EO_BANDS * hw;
    /* Batches of about 16 MiB of pixels, at most 256 tiles and a tenth of the file (progress). */
    int64_t batch = ((int64_t)16 << 20) / (chw * (int64_t)sizeof(float));
    if (batch > 256) batch = 256;
    if (batch > n_tiles / 10) batch = n_tiles / 10;
    if (batch < 1) batch = 1;
    gen_batch b = {malloc(sizeof(float) * (size_t)(batch * chw)),
                   malloc(sizeof(float) * 4 * (size_t)batch), malloc((size_t)(batch * EO_CLASSES)),
                   malloc((size_t)batch)};
    eo_h5_info info = {.bands = EO_BANDS,
                       .height = cfg->eo_side,
                       .width = cfg->eo_side,
                       .has_metadata = 1,
                       .n_classes = EO_CLASSES,
                       .multi_label = 1,
                       .has_split = 1};
    for (int c = 0; c < EO_CLASSES; c++)
        snprintf(info.class_names[c], EO_H5_NAME_MAX, "%s", eo_class_name(c));
    eo_h5_writer *w = NULL;
    int rc = b.images && b.metadata && b.labels && b.split
                 ? SAEC_OK
                 : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", path);
    if (rc == SAEC_OK) rc = eo_h5_writer_create(path, &info, &w);
    if (rc == SAEC_OK && provenance) rc = eo_h5_writer_set_provenance(w, provenance);
    eo_band_acc acc;
    eo_band_acc_init(&acc, EO_BANDS);
    int next_report = 1; /* tenths */
    for (int64_t done = 0; rc == SAEC_OK && done < n_tiles;) {
        if (stop && *stop) {
            rc = saec_fail(SAEC_ERR_OTHER, NULL,
                           "interrupted after %" PRId64 " of %" PRId64 " tiles: '%s' not written",
                           done, n_tiles, path);
            break;
        }
        const int64_t take = n_tiles - done < batch ? n_tiles - done : batch;
        rc = generate(cfg, done, take, &b);
        if (rc == SAEC_OK)
            rc = eo_h5_writer_append(w, take, b.images, b.metadata, b.labels, b.split);
        if (rc != SAEC_OK) break;
        add_train_tiles(&acc, &b, take, hw);
        done += take;
        if (progress) saec_gen_progress(done, n_tiles, "tiles", &next_report);
    }
    if (rc == SAEC_OK) {
        float mean[EO_BANDS], std[EO_BANDS];
        eo_band_acc_finish(&acc, mean, std);
        rc = eo_h5_writer_finish(w, mean, std); /* releases w */
    } else {
        eo_h5_writer_abort(w);
    }
    free(b.images);
    free(b.metadata);
    free(b.labels);
    free(b.split);
    return rc;
}
