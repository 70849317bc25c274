/* Activation sources: a stream of float32 rows [n, d] on the host, from HDF5 or a synthetic
   generator, each row optionally with an int32 diffusion timestep t in [0, T). Every source is a
   pure function of its position (the cursor, in rows), so a run resumes exactly by seeking to the
   saved cursor. */
#ifndef SAEC_DATA_H
#define SAEC_DATA_H

#include <stdint.h>

#include "saec/config.h"

/* Known generating process of synthetic data (SPEC §9). Arrays are malloc'd. */
typedef struct {
    int64_t n_features; /* F */
    int64_t d;
    float *directions;    /* [F, d] unit rows */
    float *probabilities; /* [F] firing probability per token */
    float *offset;        /* [d] */
    int32_t *parent;      /* [F] parent feature or -1; NULL when there is no hierarchy */
    double noise;         /* σ */
    float *t_center;      /* [F] preferred timestep of each feature; NULL without timesteps */
} saec_ground_truth;

void saec_ground_truth_free(saec_ground_truth *gt);

typedef enum { SAEC_STREAM_TRAIN = 0, SAEC_STREAM_EVAL = 1 } saec_stream;

typedef struct saec_data saec_data;

typedef struct {
    int64_t d;               /* row width */
    int64_t n_rows;          /* rows in the dataset; -1 for an endless synthetic stream */
    const char *description; /* "superposition (F=..., d=...)" or the file and dataset */
} saec_data_info;

/* Source interface, implemented by data_synthetic.c, data_hdf5.c and data_eo.c. */
typedef struct {
    /* rows [n, d]; timesteps [n] or NULL (filled only when the source has_timesteps) */
    int (*next)(saec_data *src, int64_t n, float *rows, int32_t *timesteps);
    int (*seek)(saec_data *src, int64_t cursor);
    int (*ground_truth)(saec_data *src, saec_ground_truth *out); /* SAEC_ERR_DATA if none */
    void (*close)(saec_data *src);
} saec_data_vtable;

typedef struct saec_prefetch saec_prefetch;

struct saec_data {
    const saec_data_vtable *vt;
    saec_data_info info;
    int64_t cursor; /* rows delivered so far; implementations keep it current */
    int has_ground_truth;
    int has_timesteps;       /* each row carries a timestep in [0, timesteps_max) */
    int64_t timesteps_max;   /* T (cfg->timesteps); 0 without timesteps */
    saec_prefetch *prefetch; /* set by saec_data_enable_prefetch (data.c), else NULL */
    /* EO images (MoE-MAE; eo_bands > 0): a row is one tile, [bands·height·width raw pixel values
       (channel-major) | 4 metadata values (ISO week, hour, latitude°, longitude°; NaN =
       missing)], so d = bands·height·width + 4. 0 for activation data. */
    int64_t eo_bands, eo_height, eo_width;
    int has_band_stats; /* the file gives the z-score's statistics; else the model computes them */
    float band_mean[16], band_std[16];
};

/* Open the source named by the config (cfg->data, else cfg->synthetic); a file with an `images`
   dataset, or synthetic `eo`, opens the EO source (data_eo.c). The eval stream of a
   synthetic source draws tokens disjoint from the training stream (same ground truth); the eval
   stream of a file reads it in order from row 0 without shuffling. */
int saec_data_open(const saec_config *cfg, saec_stream stream, saec_data **out);
/* The next n rows [n, d] and, when `timesteps` [n] is not NULL and the source has_timesteps,
   their timesteps (a source without timesteps leaves the array untouched: check
   has_timesteps). */
int saec_data_next(saec_data *src, int64_t n, float *rows, int32_t *timesteps);
/* Data parallelism: the global batch is the next world·n rows of the stream, and rank r takes
   rows [cursor + r·n, cursor + (r+1)·n); the cursor then moves past the whole global batch, so it
   counts global rows and a run resumes at any world size. The ranks read disjoint rows, and the
   union is what one process with a batch of world·n reads. */
int saec_data_next_shard(saec_data *src, int64_t n, int rank, int world, float *rows,
                         int32_t *timesteps);
int saec_data_seek(saec_data *src, int64_t cursor);
int saec_data_ground_truth(saec_data *src, saec_ground_truth *out);
void saec_data_close(saec_data *src);

/* Produce the next batch on a background thread while the caller works on the current one
   (double buffering), for sources that compute their rows (synthetic). The thread owns a twin
   source opened from the same config, so the stream stays a pure function of the position.
   Worth it when the host is otherwise idle (a GPU trains); on the CPU backend the generator's
   threads would compete with the training threads. No-op for sources with their own loader. */
int saec_data_enable_prefetch(saec_data *src, const saec_config *cfg, saec_stream stream);

/* Constructors (used by saec_data_open). */
int saec_data_open_synthetic(const saec_config *cfg, saec_stream stream, saec_data **out);
int saec_data_open_hdf5(const saec_config *cfg, saec_stream stream, saec_data **out);
/* EO tiles (data_eo.c): synthetic `eo`, or a file in the EO layout (eo_h5.h). */
int saec_data_open_eo(const saec_config *cfg, saec_stream stream, saec_data **out);

/* How many rows an evaluation of `tokens` tokens reads from a freshly opened eval stream: all
   `tokens` of an endless (synthetic) stream, at most the rows of a file (its eval stream wraps at
   the end, and a row counted twice would only inflate the token count). When it caps and `note`
   is set, says so once on stderr. */
int64_t saec_eval_rows(const saec_data *src, int64_t tokens, int note);

#endif
