/* The HDF5 EO layout (issue 16; the README's "EO data" section): what `saec gen eo` and
 * `saec import geotiff` write, and what MoE-MAE training, `saec embed` and `saec probe` read.
 *
 *   images    [N, C, H, W]  uint16 (raw digital numbers) or float32, chunked by tile
 *             attributes band_mean, band_std [C] float32 (optional: the per-band statistics of
 *             the z-score; without them training computes them once and keeps them with the
 *             checkpoint)
 *   metadata  [N, 4] float32: ISO week, hour, latitude°, longitude°; NaN = missing (the model
 *             then gets the zero metadata input). Optional: absent = all missing.
 *   labels    [N, K] uint8 multi-hot, or [N] int32 class ids; attribute class_names: one string
 *             of K names joined by '\n'
 *   split     [N] uint8: 0 train, 1 val, 2 test (optional: absent = all train)
 *
 * The writer streams tiles in and publishes the file atomically (a temporary name renamed at
 * eo_h5_writer_finish), so a killed run never leaves a half-written file under the final name.
 */
#ifndef SAEC_EO_H5_H
#define SAEC_EO_H5_H

#include <stdint.h>

enum { EO_H5_MAX_BANDS = 16, EO_H5_MAX_CLASSES = 64, EO_H5_NAME_MAX = 64 };
enum { EO_SPLIT_TRAIN = 0, EO_SPLIT_VAL = 1, EO_SPLIT_TEST = 2 };

/* What a file holds (read by eo_h5_reader_open, given to eo_h5_writer_create). */
typedef struct {
    int64_t n;                     /* tiles */
    int64_t bands, height, width;  /* C, H, W */
    int pixels_uint16;             /* 1: images are uint16; 0: float32 */
    int has_metadata;              /* a metadata dataset is present */
    int n_classes;                 /* K; 0 = no labels */
    int multi_label;               /* labels [N, K] multi-hot; 0: [N] class ids */
    char class_names[EO_H5_MAX_CLASSES][EO_H5_NAME_MAX];
    int has_split;
    int has_band_stats;
    float band_mean[EO_H5_MAX_BANDS], band_std[EO_H5_MAX_BANDS];
} eo_h5_info;

typedef struct eo_h5_reader eo_h5_reader;

/* Opens and checks the layout; a wrong shape, type or missing dataset fails with SAEC_ERR_DATA
   naming the file and dataset, with a hint. */
int eo_h5_reader_open(const char *path, eo_h5_reader **out);
const eo_h5_info *eo_h5_reader_info(const eo_h5_reader *r);
/* Tiles [start, start + n): images as float32 [n, C, H, W] (raw values, not z-scored); metadata
   [n, 4] (NaN where missing or when the file has none); labels as multi-hot [n, K] uint8 (class
   ids become one-hot; an id outside [0, K) fails naming the file and row); split [n] (train when
   the file has none). Any output may be NULL. */
int eo_h5_read(eo_h5_reader *r, int64_t start, int64_t n, float *images, float *metadata,
               uint8_t *labels, uint8_t *split);
void eo_h5_reader_close(eo_h5_reader *r);
/* 1 when `path` is an HDF5 file with a dataset `images` (an EO file, not activations); 0
   otherwise, also when it cannot be opened (the activation reader then reports why). */
int eo_h5_is_eo_file(const char *path);

typedef struct eo_h5_writer eo_h5_writer;

/* Starts `path` (written as a temporary file beside it) for tiles of info's bands, height, width,
   pixel type, classes (names, multi_label) and metadata/split presence; info->n is ignored. */
int eo_h5_writer_create(const char *path, const eo_h5_info *info, eo_h5_writer **out);
/* Appends n tiles: images [n, C, H, W] (uint16_t or float, as info->pixels_uint16), metadata
   [n, 4] (NULL: NaN), labels [n, K] multi-hot (written as ids when !multi_label: exactly one 1
   per row is required), split [n] (NULL: train). */
int eo_h5_writer_append(eo_h5_writer *w, int64_t n, const void *images, const float *metadata,
                        const uint8_t *labels, const uint8_t *split);
/* Stores `json` as the file attribute saec_provenance (what wrote the file, with which
   settings), as `saec gen` does for activation files. */
int eo_h5_writer_set_provenance(eo_h5_writer *w, const char *json);
/* Writes band_mean/band_std [C] as attributes when not NULL, closes and renames into place.
   Releases w in every case: after a failure the temporary file is removed (no abort needed). */
int eo_h5_writer_finish(eo_h5_writer *w, const float *band_mean, const float *band_std);
/* Closes and removes the temporary file (after an error or an interrupt); NULL is a no-op. */
void eo_h5_writer_abort(eo_h5_writer *w);

#endif
