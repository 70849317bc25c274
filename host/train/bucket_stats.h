/* Per-timestep-bucket evaluation (SPEC §6): nmse and L0 per bucket, each latent's firing
 * frequency per bucket (an m × B table, saved with the run as .npy and drawn as a heat map PNG),
 * and the count of temporally selective latents.
 *
 * A latent is *temporally selective* when it fired at least SAEC_SELECTIVE_MIN_FIRES times in
 * the evaluation and its firing frequency in its peak bucket is at least SAEC_SELECTIVE_RATIO
 * times its mean frequency over the buckets that hold tokens (a latent that fires evenly over
 * time has ratio 1; one that fires in a single bucket of B has ratio B).
 */
#ifndef SAEC_BUCKET_STATS_H
#define SAEC_BUCKET_STATS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#define SAEC_SELECTIVE_RATIO 3.0
#define SAEC_SELECTIVE_MIN_FIRES 20

typedef struct {
    int64_t B, m, d;
    double *sse, *sst, *nnz; /* [B] Σ‖x − x̂‖², Σ‖x − μ‖², Σ nonzero codes */
    int64_t *tokens;         /* [B] */
    int64_t *fires;          /* [m, B] tokens of bucket b where latent j fired */
} saec_bucket_stats;

int saec_bucket_stats_init(saec_bucket_stats *bs, int64_t B, int64_t m, int64_t d);
void saec_bucket_stats_free(saec_bucket_stats *bs);

/* One batch of n rows (host): xn, xhat [n, d] in the SAE's units, mu [d], bucket [n] in [0, B),
   codes (idx, f) [n, kk] (idx < 0 or f <= 0: not firing). */
void saec_bucket_stats_add(saec_bucket_stats *bs, int64_t n, const float *xn, const float *xhat,
                           const float *mu, const int32_t *bucket, const int32_t *idx,
                           const float *f, int64_t kk);

/* Latents that are temporally selective (definition above). */
int64_t saec_bucket_stats_selective(const saec_bucket_stats *bs);

/* Adds "per_bucket": [{bucket, tokens, nmse, l0}] (null nmse/l0 for an empty bucket) and
   "temporally_selective_latents". */
void saec_bucket_stats_to_json(const saec_bucket_stats *bs, cJSON *obj);

/* Writes DIR/bucket_frequency.npy (float32 [m, B], firing frequency per bucket) and
   DIR/bucket_frequency.png (heat map: latents that fired, ordered by their peak bucket, one row
   per latent, one column block per bucket, brightness = frequency / the latent's peak). */
int saec_bucket_stats_write(const saec_bucket_stats *bs, const char *dir);

#endif
