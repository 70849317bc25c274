/* Metrics with known ground truth (SPEC §8). */
#ifndef SAEC_METRICS_H
#define SAEC_METRICS_H

#include <stdint.h>

#include "data.h"

/* mmcs: mean over true features of the max cosine between the feature's direction and any
   decoder row. W_dec [m, d] on the host. */
double saec_mmcs(const float *W_dec, int64_t m, int64_t d, const saec_ground_truth *gt);

/* ---- absorption (SPEC §8) -------------------------------------------------------------------
   For a parent with true unit direction p and main latent (the decoder row most cosine-similar
   to p), on a token where the parent truly fires:
     P = ⟨xn − b_dec, p⟩, M = f_main·cos(d_main, p),
     A = sum of the top 3 of f_j·cos(d_j, p) over the other firing latents with cos(d_j, p) ≥ 0.1;
     fraction = 0 if M ≥ P or A/P < 0.4; 1 if M ≤ 0; else min(A, P−M) / (min(A, P−M) + M);
     full = the main latent is silent and the top candidate alone carries ≥ 40% of P.
   Engine choices: a latent's share along p is f_j·⟨d_j, p⟩ = f_j·‖d_j‖·cos(d_j, p), the
   projection of its contribution to x̂ on p. For unit-norm decoder rows (every variant but
   ReLU-L1) that is SPEC's f_j·cos(d_j, p); for ReLU-L1 it keeps M and A in the units of P.
   A token with P ≤ 0 holds nothing of the parent to absorb and scores 0. */

#define SAEC_ABSORB_COS_MIN 0.1 /* candidates: cos(d_j, p) ≥ this */
#define SAEC_ABSORB_TOP 3       /* A sums the top this many candidates */
#define SAEC_ABSORB_SHARE 0.4   /* A/P below this: no absorption; full: top candidate ≥ this */

typedef struct {
    double fraction; /* in [0, 1] */
    int full;        /* 0 or 1 */
    double P, M, A;  /* the terms, for tests and diagnostics */
} saec_absorption_token;

/* One token, one parent: a pure function, testable without a model. P = ⟨xn − b_dec, p⟩;
   main_latent: the parent's main latent; idx, f [k]: the token's codes (slots with f ≤ 0 are
   silent); cos_p [m]: cos(d_j, p); proj_p [m]: ⟨d_j, p⟩, or NULL for unit rows (= cos_p). */
saec_absorption_token saec_absorption_on_token(double P, int32_t main_latent, const int32_t *idx,
                                               const float *f, int64_t k, const float *cos_p,
                                               const float *proj_p);

/* Absorption over a stream: the parents (features with at least one child in gt->parent), their
   main latents and cosines, and per-parent sums over the tokens where each parent fired. */
typedef struct {
    int64_t n_parents, m, d;
    int32_t *feature;     /* [n_parents] the parent's index into the ground truth */
    int32_t *main_latent; /* [n_parents] */
    float *dir;           /* [n_parents, d] unit parent directions p */
    float *cos_p;         /* [n_parents, m] cos(d_j, p) */
    float *proj_p;        /* [n_parents, m] ⟨d_j, p⟩ */
    double *sum_fraction; /* [n_parents] */
    double *sum_full;     /* [n_parents] */
    int64_t *tokens;      /* [n_parents] tokens where the parent fired */
} saec_absorption;

/* Set up from the decoder W_dec [m, d] (host) and ground truth with a hierarchy (gt->parent
   non-NULL). n_parents is 0 when no feature has a child. */
int saec_absorption_init(saec_absorption *a, const float *W_dec, int64_t m, int64_t d,
                         const saec_ground_truth *gt);
/* Add n tokens: xc [n, d] = xn − b_dec, codes idx, f [n, k], active [n, n_parents] (1 where the
   parent truly fired). */
void saec_absorption_add(saec_absorption *a, int64_t n, const float *xc, const int32_t *idx,
                         const float *f, int64_t k, const uint8_t *active);
/* Mean over tokens, then over the parents that fired at least once. Returns how many parents
   that is (0: no result, both set to NAN). */
int64_t saec_absorption_result(const saec_absorption *a, double *fraction, double *full);
void saec_absorption_free(saec_absorption *a);

#endif
