/* MoE-MAE's evaluation (SPEC §7's probe row): the frozen encoder's embeddings of a labelled EO
 * set, and linear probes fit on its train split and scored on its test split, against two
 * baselines in the same report so that a number means something: the same encoder at its random
 * initialisation, and per-band means of the z-scored pixels. Used at the end of a run (summary
 * probe), by `saec embed` and by `saec probe`.
 */
#ifndef SAEC_MOE_MAE_EVAL_H
#define SAEC_MOE_MAE_EVAL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "eo_set.h"
#include "moe_mae_net.h"
#include "probe.h"
#include "saec/config.h"

/* What makes the features of a tile. */
typedef enum {
    MOE_FEATURES_ENCODER,     /* the network's encoder as it is */
    MOE_FEATURES_RANDOM_INIT, /* the same encoder at its initialisation (seed) */
    MOE_FEATURES_BAND_MEANS,  /* per-band means of the z-scored pixels */
} moe_features;

const char *moe_features_name(moe_features f); /* "encoder", "random_init", "band_means" */

/* features [set->n, *dim] (malloc'd) of the tiles of `set` (cropped to the model's image; the
   z-score is the net's). RANDOM_INIT re-initialises the net's parameters from `seed` for the
   embedding and puts the trained ones back (the Adam moments are zeroed). load (NULL: not
   wanted; the network's features only) receives the routing [set->n, enc depth,
   moe_mae_net_max_experts] of moe_mae_net_embed (malloc'd). */
int moe_mae_features(moe_mae_net *net, const eo_set *set, moe_features kind, uint64_t seed,
                     float **features, int64_t *dim, float **load);

/* One probe: fit on the train rows (x_train [n_train, dim], y_train [n_train, K] multi-hot),
   score on the test rows. train_fraction < 1 keeps that share of the train rows (at least 2: the
   first of a permutation drawn from seed; label efficiency). c: the probe's C (0: chosen). */
int moe_mae_probe(const float *x_train, const uint8_t *y_train, int64_t n_train,
                  const float *x_test, const uint8_t *y_test, int64_t n_test, int64_t dim, int K,
                  int multi_label, double c, double train_fraction, uint64_t seed,
                  probe_result *out);

/* The probe result as JSON (micro/macro mAP or accuracy/macro F1, C, rows). */
cJSON *moe_mae_probe_json(const probe_result *r);
/* The headline number of a result: micro mAP (multi-label) or accuracy. */
double moe_mae_probe_headline(const probe_result *r);

/* The end of a run: probes of the encoder and both baselines on cfg's labelled set (the file's
   train and test splits, or cfg->probe_tiles synthetic tiles), printed and added to summary as
   "probe"; then the run's plots. Rank 0 alone. */
int moe_mae_evaluate(moe_mae_net *net, const saec_config *cfg, const char *dir,
                     cJSON *summary);

#endif
