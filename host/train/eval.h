/* Evaluation of a trained SAE on a stream of held-out tokens (SPEC §8). */
#ifndef SAEC_EVAL_H
#define SAEC_EVAL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "bucket_stats.h"
#include "data.h"
#include "sae.h"

typedef struct {
    int64_t tokens;
    double mse, nmse, explained_variance, cosine, l0, dead_fraction;
    int has_mmcs;
    double mmcs;
    int has_absorption;         /* the data has a hierarchy and per-token activity */
    double absorption_fraction; /* SPEC §8: mean over tokens, then over parents */
    double full_absorption;
    int64_t absorption_parents; /* parents that fired in the evaluated tokens */
    int has_buckets;            /* the data has timesteps: per-bucket metrics (SPEC §6) */
    saec_bucket_stats buckets;  /* freed by saec_eval_result_free */
} saec_eval_result;

void saec_eval_result_free(saec_eval_result *r);

/* Evaluate on `tokens` rows of `src` (read from its current position; a file's rows once each:
   saec_eval_rows, with its note) in batches of the SAE's batch capacity; `tokens` in the result
   is the count evaluated. mmcs is computed when the source has ground truth; absorption when the
   ground truth has a hierarchy and the source can say which features fired in each token (synthetic
   streams). A file with a hierarchy but no per-token activity gets a note on stderr instead.
   When the source has timesteps, metrics are also kept per bucket b(t) = floor(t·n_buckets/T)
   (whatever the SAE's timestep mode). */
int saec_evaluate(saec_sae *sae, saec_data *src, int64_t tokens, int64_t n_buckets, int64_t T,
                  saec_eval_result *out);

/* Add the result's keys (SPEC §11 names) to a JSON object. */
void saec_eval_result_to_json(const saec_eval_result *r, cJSON *obj);

#endif
