/* EO tiles as a saec_data source (MoE-MAE training): a row is one tile,
   [C·H·W raw pixel values (channel-major) | ISO week, hour, latitude°, longitude°], so
   d = C·H·W + 4 (data.h).

   Like every source, a pure function of the cursor:
     - synthetic (`--synthetic eo`): row i of the train stream is eo_synth_tile(seed, i), of the
       eval stream eo_synth_tile(seed, EO_EVAL_INDEX_BASE + i) (eo_set.h: disjoint ranges);
     - a file in the EO layout (eo_h5.h): the train stream visits the tiles of split train (all
       tiles when the file has no split), epoch e in the order of a Fisher–Yates shuffle drawn from
       (seed, SAEC_RNG_SHUFFLE, e); the eval stream reads split test (else val, else all) in file
       order; both wrap around.
   Tiles are read one at a time: EO files are chunked by tile (eo_h5.c), so a shuffled read costs
   one chunk, and a batch is small next to the model's step. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "eo_h5.h"
#include "eo_set.h"
#include "eo_synth.h"
#include "rng.h"
#include "saec/saec.h"

typedef struct {
    saec_data base; /* first: the interface casts between the two */
    char description[SAEC_STR_MAX + 160];
    uint64_t seed;
    int64_t chw; /* C·H·W */
    int64_t pos; /* the cursor */
    /* synthetic */
    int64_t side;
    uint64_t index_base; /* 0 for the train stream, EO_EVAL_INDEX_BASE for the eval stream */
    /* file */
    eo_h5_reader *reader;
    int shuffle;         /* train stream */
    int64_t n_tiles;     /* in the stream */
    int64_t *tiles;      /* [n_tiles] the stream's tiles, in file order */
    int64_t *order;      /* [n_tiles] the tiles in the order of epoch order_epoch */
    int64_t order_epoch; /* -1: none yet */
} eo_source;

/* ---- synthetic ------------------------------------------------------------------------------ */

static int synth_next(saec_data *base, int64_t n, float *rows, int32_t *timesteps) {
    (void)timesteps;
    eo_source *s = (eo_source *)base;
    const int64_t d = s->base.info.d, chw = s->chw;
    const uint64_t first = s->index_base + (uint64_t)s->pos;
    int failed = 0;
    /* Each tile is a pure function of its index: threads change the speed, never the rows. */
#pragma omp parallel for schedule(static) reduction(| : failed) if (n > 1)
    for (int64_t i = 0; i < n; i++) {
        float *row = rows + i * d;
        eo_meta m;
        uint8_t labels[EO_CLASSES];
        failed |=
            eo_synth_tile(s->seed, first + (uint64_t)i, s->side, row, &m, labels, NULL) != SAEC_OK;
        row[chw + 0] = m.week;
        row[chw + 1] = m.hour;
        row[chw + 2] = m.lat;
        row[chw + 3] = m.lon;
    }
    if (failed) return saec_fail(SAEC_ERR_OTHER, NULL, "internal: the EO generator failed");
    s->pos += n;
    s->base.cursor = s->pos;
    return SAEC_OK;
}

/* ---- file ----------------------------------------------------------------------------------- */

/* The tile at stream position pos. */
static int64_t file_tile(eo_source *s, int64_t pos) {
    const int64_t k = pos % s->n_tiles;
    if (!s->shuffle) return s->tiles[k];
    const int64_t epoch = pos / s->n_tiles;
    if (s->order_epoch != epoch) {
        memcpy(s->order, s->tiles, sizeof(int64_t) * (size_t)s->n_tiles);
        saec_rng rng;
        saec_rng_init(&rng, s->seed, SAEC_RNG_SHUFFLE, (uint64_t)epoch);
        for (int64_t i = s->n_tiles - 1; i > 0; i--) {
            const int64_t j = (int64_t)(saec_rng_u64(&rng) % (uint64_t)(i + 1));
            const int64_t t = s->order[i];
            s->order[i] = s->order[j];
            s->order[j] = t;
        }
        s->order_epoch = epoch;
    }
    return s->order[k];
}

static int file_next(saec_data *base, int64_t n, float *rows, int32_t *timesteps) {
    (void)timesteps;
    eo_source *s = (eo_source *)base;
    const int64_t d = s->base.info.d;
    for (int64_t i = 0; i < n; i++) {
        float *row = rows + i * d;
        SAEC_TRY(eo_h5_read(s->reader, file_tile(s, s->pos), 1, row, row + s->chw, NULL, NULL));
        s->pos++;
        s->base.cursor = s->pos;
    }
    return SAEC_OK;
}

/* ---- common --------------------------------------------------------------------------------- */

/* cursor >= 0: saec_data_seek refuses a negative one. */
static int eo_seek(saec_data *base, int64_t cursor) {
    eo_source *s = (eo_source *)base;
    s->pos = cursor;
    s->base.cursor = cursor;
    return SAEC_OK;
}

static int eo_ground_truth(saec_data *base, saec_ground_truth *out) {
    eo_source *s = (eo_source *)base;
    memset(out, 0, sizeof *out);
    return saec_fail(SAEC_ERR_DATA,
                     "EO tiles carry labels, not SAE features: evaluate them with a probe",
                     "no ground truth in %s", s->description);
}

static void eo_close(saec_data *base) {
    eo_source *s = (eo_source *)base;
    if (!s) return;
    eo_h5_reader_close(s->reader);
    free(s->tiles);
    free(s->order);
    free(s);
}

static const saec_data_vtable synth_vtable = {
    .next = synth_next, .seek = eo_seek, .ground_truth = eo_ground_truth, .close = eo_close};
static const saec_data_vtable file_vtable = {
    .next = file_next, .seek = eo_seek, .ground_truth = eo_ground_truth, .close = eo_close};

static int open_synthetic(const saec_config *cfg, saec_stream stream, eo_source *s) {
    if (cfg->eo_side < 1 || cfg->eo_side > EO_MAX_SIDE)
        return saec_fail(SAEC_ERR_USAGE, "choose eo_side from 4 to 256 (MoE-MAE's is 40)",
                         "config key 'eo_side' = %" PRId64, cfg->eo_side);
    s->base.vt = &synth_vtable;
    s->side = cfg->eo_side;
    s->index_base = stream == SAEC_STREAM_EVAL ? EO_EVAL_INDEX_BASE : 0;
    s->base.eo_bands = EO_BANDS;
    s->base.eo_height = s->base.eo_width = s->side;
    s->base.info.n_rows = -1;
    snprintf(s->description, sizeof s->description,
             "eo (synthetic, %d bands of %" PRId64 "x%" PRId64 ", %s tiles)", EO_BANDS, s->side,
             s->side, stream == SAEC_STREAM_EVAL ? "eval" : "train");
    return SAEC_OK;
}

/* The stream's tiles: split train for training; test, else val, else all for evaluation. */
static int select_tiles(eo_source *s, const char *path, saec_stream stream) {
    const eo_h5_info *info = eo_h5_reader_info(s->reader);
    uint8_t *split = malloc((size_t)info->n); /* [N] */
    s->tiles = malloc(sizeof(int64_t) * (size_t)info->n);
    s->order = malloc(sizeof(int64_t) * (size_t)info->n);
    if (!split || !s->tiles || !s->order) {
        free(split);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening '%s'", path);
    }
    int rc = eo_h5_read(s->reader, 0, info->n, NULL, NULL, NULL, split);
    static const int eval_order[3] = {EO_SPLIT_TEST, EO_SPLIT_VAL, -1};
    const char *which = "train";
    for (int attempt = 0; rc == SAEC_OK && attempt < 3 && s->n_tiles == 0; attempt++) {
        const int want = stream == SAEC_STREAM_TRAIN ? EO_SPLIT_TRAIN : eval_order[attempt];
        for (int64_t i = 0; i < info->n; i++)
            if (want < 0 || split[i] == want) s->tiles[s->n_tiles++] = i;
        which = want == EO_SPLIT_TRAIN  ? "train"
                : want == EO_SPLIT_VAL  ? "val"
                : want == EO_SPLIT_TEST ? "test"
                                        : "all";
        if (stream == SAEC_STREAM_TRAIN) break;
    }
    free(split);
    if (rc != SAEC_OK) return rc;
    if (s->n_tiles == 0)
        return saec_fail(SAEC_ERR_DATA,
                         "training reads the tiles whose split is 0 (train); fix the split "
                         "dataset",
                         "no training tiles in '%s': every tile is in split val or test", path);
    snprintf(s->description, sizeof s->description,
             "%s: %" PRId64 " EO tiles [%" PRId64 ", %" PRId64 ", %" PRId64
             "] %s, %s split (%" PRId64 " tiles)",
             path, info->n, info->bands, info->height, info->width,
             info->pixels_uint16 ? "uint16" : "float32", which, s->n_tiles);
    return SAEC_OK;
}

static int open_file(const saec_config *cfg, saec_stream stream, eo_source *s) {
    s->base.vt = &file_vtable;
    SAEC_TRY(eo_h5_reader_open(cfg->data, &s->reader));
    const eo_h5_info *info = eo_h5_reader_info(s->reader);
    s->shuffle = stream == SAEC_STREAM_TRAIN;
    s->order_epoch = -1;
    SAEC_TRY(select_tiles(s, cfg->data, stream));
    s->base.eo_bands = info->bands;
    s->base.eo_height = info->height;
    s->base.eo_width = info->width;
    s->base.has_band_stats = info->has_band_stats;
    memcpy(s->base.band_mean, info->band_mean, sizeof s->base.band_mean);
    memcpy(s->base.band_std, info->band_std, sizeof s->base.band_std);
    s->base.info.n_rows = s->n_tiles;
    return SAEC_OK;
}

int saec_data_open_eo(const saec_config *cfg, saec_stream stream, saec_data **out) {
    *out = NULL;
    eo_source *s = calloc(1, sizeof *s);
    if (!s) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening EO data");
    s->base.vt = &synth_vtable; /* eo_close frees either kind */
    s->seed = (uint64_t)cfg->seed;
    int rc = cfg->data[0] ? open_file(cfg, stream, s) : open_synthetic(cfg, stream, s);
    if (rc != SAEC_OK) {
        eo_close(&s->base);
        return rc;
    }
    s->chw = s->base.eo_bands * s->base.eo_height * s->base.eo_width;
    s->base.info.d = s->chw + 4;
    s->base.info.description = s->description;
    *out = &s->base;
    return SAEC_OK;
}
