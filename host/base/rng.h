/* Counter-based randomness: every draw is a function of (seed, stream, counter), so a stream can
   be re-entered at any position (exact resume, per-rank sharding) and the same numbers come out on
   every backend. */
#ifndef SAEC_RNG_H
#define SAEC_RNG_H

#include <stdint.h>

#include "saec/hash.h" /* saec_mix64 */

typedef struct {
    uint64_t state;
} saec_rng;

/* A generator positioned at (seed, stream, counter). */
void saec_rng_init(saec_rng *rng, uint64_t seed, uint64_t stream, uint64_t counter);
uint64_t saec_rng_u64(saec_rng *rng);
double saec_rng_uniform(saec_rng *rng); /* [0, 1) with 53 bits */
double saec_rng_normal(saec_rng *rng);  /* N(0, 1), Box–Muller */

/* Stream identifiers, one per independent use, so no two uses ever share numbers. */
enum {
    SAEC_RNG_GROUND_TRUTH = 1,
    SAEC_RNG_TRAIN_TOKENS = 2,
    SAEC_RNG_EVAL_TOKENS = 3,
    SAEC_RNG_INIT_WEIGHTS = 4,
    SAEC_RNG_SHUFFLE = 5,
    SAEC_RNG_INIT_ADALN = 6,
    SAEC_RNG_EO_TILES = 7, /* the synthetic `eo` tiles (host/data/eo_synth.c) */
    SAEC_RNG_PROBE_FOLDS = 8, /* the probe's cross-validation folds (host/train/probe.c) */
};

#endif
