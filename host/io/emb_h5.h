/* The embeddings file (`saec embed` writes it, `saec probe` reads it): HDF5, one row per tile
   of the data file it was made from, in that file's order.

   embeddings  [N, F] float32, chunked by rows
   labels      [N, K] uint8 multi-hot (single-label data: one-hot), with attribute class_names:
               one string of the K names joined by '\n', and multi_label ("true" or "false").
               Absent when the data had no labels.
   split       [N] uint8: 0 train, 1 val, 2 test (EO_SPLIT_*)
   attributes  encoder: what made the features ("run DIR step S", "random init", "band means");
               source: the data file
   optional    further float32 datasets [N, ...] with a `description` attribute, which the reader
               ignores: `saec embed` adds the network's routing (expert_load [N, blocks, experts])
               and the tiles' metadata [N, 4]

   The writer streams rows in and publishes the file atomically: it is built under
   `path.tmp.<pid>` and renamed at emb_h5_writer_finish, so no half-written file ever carries the
   final name. */
#ifndef SAEC_EMB_H5_H
#define SAEC_EMB_H5_H

#include <stdint.h>

#include "eo_h5.h" /* EO_H5_MAX_CLASSES, EO_H5_NAME_MAX, EO_SPLIT_* */

enum { EMB_H5_TEXT_MAX = 1024 };

typedef struct {
    int64_t n, dim; /* N rows of F features */
    int n_classes;  /* K; 0: no labels */
    int multi_label; /* the labels are multi-hot (attribute multi_label of labels: "true" or
                        "false"; absent: multi-label unless every row has exactly one class) */
    char class_names[EO_H5_MAX_CLASSES][EO_H5_NAME_MAX];
    char encoder[EMB_H5_TEXT_MAX];
    char source[EMB_H5_TEXT_MAX];
} emb_h5_info;

typedef struct emb_h5_writer emb_h5_writer;

/* Starts `path` for info->n rows of info->dim features (and info->n_classes labels). Fails
   with SAEC_ERR_USAGE when the location is not writable, SAEC_ERR_OTHER on a bad info. */
int emb_h5_writer_create(const char *path, const emb_h5_info *info, emb_h5_writer **out);
/* Appends n rows: embeddings [n, F], labels [n, K] (ignored when K = 0; required otherwise),
   split [n] (NULL: train). More rows than info->n fail. */
int emb_h5_writer_append(emb_h5_writer *w, int64_t n, const float *embeddings,
                         const uint8_t *labels, const uint8_t *split);
/* A whole float32 dataset `name` [dims[0] = info->n, ...] (rank 1..4) with attribute
   `description` (NULL: none). */
int emb_h5_writer_put(emb_h5_writer *w, const char *name, int rank, const int64_t *dims,
                      const float *data, const char *description);
/* Checks that all info->n rows came, closes and renames into place; frees w either way (on
   failure the temporary file is removed). */
int emb_h5_writer_finish(emb_h5_writer *w);
/* Closes and removes the temporary file (after an error or an interrupt); frees w. */
void emb_h5_writer_abort(emb_h5_writer *w);

/* A whole file in memory. */
typedef struct {
    emb_h5_info info;
    float *embeddings; /* [N, F] */
    uint8_t *labels;   /* [N, K]; NULL when K = 0 */
    uint8_t *split;    /* [N]; all train when the file has no split */
} emb_h5_data;

/* Reads and checks `path`: a missing or misshapen dataset, a non-finite embedding, a label other
   than 0/1, a split outside 0..2 or class_names that do not name K classes fail with
   SAEC_ERR_DATA naming the file and the dataset. On failure *out holds nothing to free. */
int emb_h5_read(const char *path, emb_h5_data *out);
void emb_h5_data_free(emb_h5_data *d);

#endif
