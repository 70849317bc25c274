/* A labelled set of EO tiles held in memory, for evaluation, embeddings and linear probes (issue
 * 16), and the per-band statistics of the z-score.
 *
 * Synthetic tiles come from two disjoint index ranges of eo_synth_tile: the training stream reads
 * indices [0, EO_EVAL_INDEX_BASE), the eval stream and the labelled sets read from
 * EO_EVAL_INDEX_BASE on, so a probe is never scored on tiles the encoder was pretrained on. A
 * synthetic tile's split is a hash of its index (60% train, 20% val, 20% test), the same in
 * `saec gen eo` files and in synthetic sets.
 */
#ifndef SAEC_EO_SET_H
#define SAEC_EO_SET_H

#include <stdint.h>

#include "eo_h5.h"
#include "saec/config.h"

#define EO_EVAL_INDEX_BASE ((uint64_t)1 << 62)

/* EO_SPLIT_TRAIN, _VAL or _TEST for synthetic tile `index`: 60/20/20 by a hash of the index. */
int eo_split_of_index(uint64_t index);

typedef struct {
    int64_t n;                    /* tiles */
    int64_t bands, height, width; /* C, H, W */
    float *images;                /* [n, C, H, W] raw pixel values (not z-scored) */
    float *metadata; /* [n, 4] ISO week, hour, latitude°, longitude°; NaN = missing */
    uint8_t *labels; /* [n, K] multi-hot (class ids of a single-label file one-hot) */
    uint8_t *split;  /* [n] EO_SPLIT_* */
    int64_t *tile;   /* [n] each tile's row in the file, or its synthetic index */
    int n_classes;   /* K */
    int multi_label; /* 0: each tile has exactly one class */
    char class_names[EO_H5_MAX_CLASSES][EO_H5_NAME_MAX];
    int has_band_stats; /* the file gives them; else eo_band_stats computes them */
    float band_mean[EO_H5_MAX_BANDS], band_std[EO_H5_MAX_BANDS];
} eo_set;

/* The tiles of `split` (EO_SPLIT_*, or -1 for all) among the first max_tiles tiles of the source:
   the file `path` in file order (max_tiles <= 0: all of it), or, with path NULL, synthetic tiles
   EO_EVAL_INDEX_BASE + j, j in [0, max_tiles), of cfg->seed and cfg->eo_side (max_tiles must be
   positive). So the train and test tiles of one max_tiles never overlap, whichever is loaded
   first. A file without labels gives n_classes 0 (embeddings need none; a probe must check).
   Errors: SAEC_ERR_DATA naming the file (bad layout, no tile of that split), SAEC_ERR_USAGE,
   SAEC_ERR_OTHER (memory). */
int eo_set_load(const saec_config *cfg, const char *path, int split, int64_t max_tiles,
                eo_set *out);
void eo_set_free(eo_set *set);

/* Streaming per-band statistics: sums in double around a per-band shift (the band's first value),
   so large raw values (uint16 digital numbers) lose no precision. */
typedef struct {
    int64_t bands;
    int64_t count; /* values seen per band */
    double shift[EO_H5_MAX_BANDS], sum[EO_H5_MAX_BANDS], sumsq[EO_H5_MAX_BANDS];
} eo_band_acc;

void eo_band_acc_init(eo_band_acc *acc, int64_t bands);
/* Adds images [n, C, HW]. */
void eo_band_acc_add(eo_band_acc *acc, const float *images, int64_t n, int64_t hw);
/* mean [C] and population std [C], the std floored at EO_BAND_STD_MIN so that a constant band
   cannot divide by zero; with nothing added: mean 0, std 1. */
void eo_band_acc_finish(const eo_band_acc *acc, float *mean, float *std);

#define EO_BAND_STD_MIN 1e-6f

/* The statistics of images [n, C, HW] at once (the model's, when the data gives none). */
void eo_band_stats(const float *images, int64_t n, int64_t bands, int64_t hw, float *mean,
                   float *std);

#endif
