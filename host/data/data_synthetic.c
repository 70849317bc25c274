/* The synthetic generators (SPEC §9).

   `superposition`: F random unit feature directions in R^d (F > d), feature i fires with
   probability p_i from a power law scaled so that on average L0_true fire per token, with
   magnitude |N(1, 0.3)|; x = offset + Σ a_i f_i + σ·noise.

   `hierarchy`: the same, plus syn_parents parent features with syn_children children each.
   Feature layout: parents [0, P), children [P, P + P·C) (child c of parent j is P + j·C + c),
   independent features after. Parents and independent features ("roots") fire as in
   superposition, parents taking the most frequent power-law ranks. When a parent fires, with
   probability syn_child_prob exactly one of its children fires, chosen uniformly: a child never
   fires without its parent, and children of one parent exclude each other (like "starts with S"
   and the tokens "snake", "sun", ...). That strict co-occurrence is what invites absorption: an
   SAE can give a child latent the direction parent+child and let the parent latent stay silent
   whenever a child fires. Directions stay random (no built-in correlation), so any absorption
   the metric finds was learned from co-occurrence alone. syn_l0 counts children too.

   `timestep`: superposition whose tokens carry a diffusion timestep (SPEC §6, §9). Token n draws
   t uniformly from [0, T) first. Feature i prefers timesteps near its center
   c_i = T·(1 − (i + 0.5)/F): coarse features (frequent, low power-law rank) at high t, fine ones
   at low t. It fires with probability π_i(t) = min(1, A_i·exp(−(t − c_i)²/(2σ²))), σ =
   syn_t_width·T, where A_i = s·p_i/Z_i: p_i the superposition power law (Σ p_i = L0_true), Z_i the
   mean of the Gaussian bump over t, and s (1 unless some π_i caps at 1) rescales so that the
   mean number firing per token stays L0_true. The ground truth's probabilities are the marginals
   E_t π_i(t). With u = t/T − 0.5, x = (1 − drift·u)·offset + (1 + drift·u)·Σ a_i f_i + σ·noise
   (drift = syn_t_drift): the activation norm grows with t while the offset shrinks.

   Token n of a stream is a pure function of (seed, stream, n): seeking is free, and the set of
   features that fired in a token can be regenerated for the metrics (saec_synthetic_active). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "data_synthetic.h"
#include "rng.h"
#include "saec/saec.h"

#define SYN_DEFAULT_D 96

typedef struct {
    saec_data base;
    uint64_t seed;
    uint64_t stream;      /* SAEC_RNG_TRAIN_TOKENS or SAEC_RNG_EVAL_TOKENS */
    saec_ground_truth gt; /* gt.parent is NULL for superposition */
    int64_t n_parents;    /* P; 0 without a hierarchy */
    int64_t n_children;   /* C per parent */
    float child_prob;     /* P(one child fires | parent fires) */
    int64_t T;            /* timestep generator: t in [0, T); 0 for the others */
    double *t_amp;        /* [F] timestep generator: A_i, the firing probability at t = c_i */
    double t_inv2s2;      /* 1 / (2σ²) */
    double t_drift;
    char description[224];
} synthetic_source;

/* Firing probabilities p_i ∝ (i+1)^-power, scaled so Σ p_i = l0, each capped at 1. */
static void power_law_probabilities(float *p, int64_t F, double power, double l0) {
    double *w = malloc(sizeof(double) * (size_t)F);
    for (int64_t i = 0; i < F; i++)
        w[i] = pow((double)(i + 1), -power);
    /* Rescale the uncapped probabilities until the capped ones sum to l0 (a few rounds). */
    double target = l0 < (double)F ? l0 : (double)F;
    double scale = 1.0;
    for (int round = 0; round < 60; round++) {
        double sum = 0;
        for (int64_t i = 0; i < F; i++)
            sum += fmin(1.0, w[i] * scale);
        if (fabs(sum - target) < 1e-9 * target) break;
        scale *= target / sum;
    }
    for (int64_t i = 0; i < F; i++)
        p[i] = (float)fmin(1.0, w[i] * scale);
    free(w);
}

static void random_unit(saec_rng *rng, float *v, int64_t d) {
    double norm2 = 0;
    for (int64_t j = 0; j < d; j++) {
        double g = saec_rng_normal(rng);
        v[j] = (float)g;
        norm2 += g * g;
    }
    float inv = (float)(1.0 / sqrt(norm2 > 0 ? norm2 : 1.0));
    for (int64_t j = 0; j < d; j++)
        v[j] *= inv;
}

/* Hierarchy firing probabilities: the R = F − P·C roots (parents first, then the independent
   features) follow the power law by rank; a child's marginal probability is p_parent·q/C.
   The roots' target is rescaled so the expected count, children included, is l0. */
static int hierarchy_probabilities(float *p, int64_t F, int64_t P, int64_t C, double q,
                                   double power, double l0) {
    const int64_t R = F - P * C;
    float *pr = malloc(sizeof(float) * (size_t)R); /* [R] roots by rank */
    if (!pr) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the synthetic hierarchy");
    double target = l0;
    for (int round = 0; round < 40; round++) {
        power_law_probabilities(pr, R, power, target);
        double total = 0;
        for (int64_t r = 0; r < R; r++)
            total += pr[r] * (1.0 + (r < P ? q : 0.0));
        if (total <= 0 || fabs(total - l0) < 1e-7 * l0) break;
        target *= l0 / total;
    }
    for (int64_t j = 0; j < P; j++) {
        p[j] = pr[j];
        for (int64_t c = 0; c < C; c++)
            p[P + j * C + c] = (float)(pr[j] * q / (double)C);
    }
    for (int64_t r = P; r < R; r++)
        p[P * C + r] = pr[r];
    free(pr);
    return SAEC_OK;
}

/* Timestep generator: gt->t_center [F], the amplitudes A_i [F] and the marginal probabilities
   gt->probabilities [F], from the power law p [F] already in gt->probabilities (header comment).
   Averages over t use every t when T <= 2048, else a 2048-point midpoint rule (σ >= 0.01·T, so
   at least 20 points per σ). */
static int timestep_ground_truth(const saec_config *cfg, saec_ground_truth *gt, double **amp_out) {
    const int64_t F = gt->n_features, T = cfg->timesteps;
    const int64_t G = T < 2048 ? T : 2048;
    const double sigma = cfg->syn_t_width * (double)T, inv = 1.0 / (2.0 * sigma * sigma);
    gt->t_center = malloc(sizeof(float) * (size_t)F); /* [F] */
    double *amp = malloc(sizeof(double) * (size_t)F); /* [F] A_i */
    double *tg = malloc(sizeof(double) * (size_t)G);  /* [G] grid of t */
    if (!gt->t_center || !amp || !tg) {
        free(amp), free(tg);
        return saec_fail(SAEC_ERR_OTHER, "lower syn_features",
                         "out of memory for the timestep ground truth");
    }
    for (int64_t g = 0; g < G; g++)
        tg[g] = T <= 2048 ? (double)g : ((double)g + 0.5) * (double)T / (double)G - 0.5;
    for (int64_t i = 0; i < F; i++) {
        gt->t_center[i] = (float)((double)T * (1.0 - ((double)i + 0.5) / (double)F));
        const double c = gt->t_center[i];
        double z = 0;
        for (int64_t g = 0; g < G; g++)
            z += exp(-(tg[g] - c) * (tg[g] - c) * inv);
        z /= (double)G;
        amp[i] = (double)gt->probabilities[i] / (z > 1e-300 ? z : 1e-300);
    }
    /* Rescale the amplitudes until the capped firing probabilities average to L0_true. */
    const double target = cfg->syn_l0 < (double)F ? cfg->syn_l0 : (double)F;
    double scale = 1.0;
    for (int round = 0;; round++) {
        double total = 0;
        for (int64_t i = 0; i < F; i++) {
            double m = 0;
            for (int64_t g = 0; g < G; g++)
                m += fmin(1.0,
                          scale * amp[i] *
                              exp(-(tg[g] - gt->t_center[i]) * (tg[g] - gt->t_center[i]) * inv));
            gt->probabilities[i] = (float)(m / (double)G);
            total += m / (double)G;
        }
        if (round == 59 || total <= 0 || fabs(total - target) < 1e-7 * target) break;
        scale *= target / total;
    }
    for (int64_t i = 0; i < F; i++)
        amp[i] *= scale;
    free(tg);
    *amp_out = amp;
    return SAEC_OK;
}

static int make_ground_truth(const saec_config *cfg, int64_t d, int hierarchy,
                             saec_ground_truth *gt) {
    int64_t F = cfg->syn_features;
    const int64_t P = cfg->syn_parents, C = cfg->syn_children;
    memset(gt, 0, sizeof *gt);
    gt->n_features = F;
    gt->d = d;
    gt->noise = cfg->syn_noise;
    gt->directions = malloc(sizeof(float) * (size_t)(F * d)); /* [F, d] */
    gt->probabilities = malloc(sizeof(float) * (size_t)F);    /* [F] */
    gt->offset = malloc(sizeof(float) * (size_t)d);           /* [d] */
    if (!gt->directions || !gt->probabilities || !gt->offset) {
        saec_ground_truth_free(gt);
        return saec_fail(SAEC_ERR_OTHER, "lower syn_features or d_in",
                         "out of memory for the synthetic ground truth (F=%lld, d=%lld)",
                         (long long)F, (long long)d);
    }
    saec_rng rng;
    saec_rng_init(&rng, (uint64_t)cfg->seed, SAEC_RNG_GROUND_TRUTH, 0);
    for (int64_t i = 0; i < F; i++)
        random_unit(&rng, gt->directions + i * d, d);
    random_unit(&rng, gt->offset, d);
    for (int64_t j = 0; j < d; j++)
        gt->offset[j] *= (float)cfg->syn_offset;
    if (!hierarchy) {
        power_law_probabilities(gt->probabilities, F, cfg->syn_power, cfg->syn_l0);
        return SAEC_OK;
    }
    gt->parent = malloc(sizeof(int32_t) * (size_t)F); /* [F] */
    int rc =
        gt->parent ? SAEC_OK : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the hierarchy");
    if (rc == SAEC_OK) {
        for (int64_t i = 0; i < F; i++)
            gt->parent[i] = -1;
        for (int64_t j = 0; j < P; j++)
            for (int64_t c = 0; c < C; c++)
                gt->parent[P + j * C + c] = (int32_t)j;
        rc = hierarchy_probabilities(gt->probabilities, F, P, C, cfg->syn_child_prob,
                                     cfg->syn_power, cfg->syn_l0);
    }
    if (rc != SAEC_OK) saec_ground_truth_free(gt);
    return rc;
}

/* 32-bit uniform in [0, 1): plenty for probabilities >= 1e-9 and cheaper than a double. */
static inline float uniform24(saec_rng *rng) {
    return (float)(saec_rng_u64(rng) >> 40) * 0x1.0p-24f;
}

/* Feature i fires in the token being replayed, with its magnitude drawn now (in both modes,
   so the random draws stay in step). */
static inline void emit(const synthetic_source *s, saec_rng *rng, int64_t i, float gain, float *row,
                        const int32_t *slot, uint8_t *on) {
    float a = (float)fabs(1.0 + 0.3 * saec_rng_normal(rng)) * gain;
    if (row) {
        const int64_t d = s->gt.d;
        const float *dir = s->gt.directions + i * d;
        for (int64_t j = 0; j < d; j++)
            row[j] += a * dir[j];
    }
    if (on && slot[i] >= 0) on[slot[i]] = 1;
}

/* Timestep generator: feature i fires at timestep t when the uniform draw u < π_i(t). */
static inline int fires_at(const synthetic_source *s, int64_t i, int32_t t, float u) {
    const double amp = s->t_amp[i];
    if (u >= amp) return 0; /* π_i(t) <= A_i: no exp needed for most features */
    const double dt = (double)t - (double)s->gt.t_center[i];
    return (double)u < amp * exp(-dt * dt * s->t_inv2s2);
}

/* Token n, replayed from (seed, stream, n). With `row` [d] it writes the activation; with `on`
   it marks on[slot[i]] for every firing feature i with slot[i] >= 0. One function serves both,
   so the activity the metrics see is by construction that of the data. Returns the token's
   timestep (timestep generator; 0 for the others). */
static int32_t replay_token(const synthetic_source *s, int64_t n, float *row, const int32_t *slot,
                            uint8_t *on) {
    const saec_ground_truth *gt = &s->gt;
    const int64_t d = gt->d, P = s->n_parents, C = s->n_children;
    saec_rng rng;
    saec_rng_init(&rng, s->seed, s->stream, (uint64_t)n);
    int32_t t = 0;
    float gain = 1.0f;
    if (s->T > 0) {
        /* t uniform in [0, T): the high 32 bits times T, shifted down (T < 2^31) */
        t = (int32_t)(((saec_rng_u64(&rng) >> 32) * (uint64_t)s->T) >> 32);
        const double u = (double)t / (double)s->T - 0.5;
        gain = (float)(1.0 + s->t_drift * u);
        if (row) {
            const float og = (float)(1.0 - s->t_drift * u);
            for (int64_t j = 0; j < d; j++)
                row[j] = og * gt->offset[j];
        }
    } else if (row) {
        memcpy(row, gt->offset, sizeof(float) * (size_t)d);
    }
    for (int64_t i = 0; i < gt->n_features; i++) {
        if (gt->parent && gt->parent[i] >= 0) continue; /* children fire with their parent */
        const float u = uniform24(&rng);
        if (s->T > 0 ? !fires_at(s, i, t, u) : u >= gt->probabilities[i]) continue;
        emit(s, &rng, i, gain, row, slot, on);
        if (i < P && uniform24(&rng) < s->child_prob) {
            /* One child, uniformly: the high 32 bits times C, shifted down, is in [0, C). */
            int64_t c = (int64_t)(((saec_rng_u64(&rng) >> 32) * (uint64_t)C) >> 32);
            emit(s, &rng, P + i * C + c, gain, row, slot, on);
        }
    }
    if (row && gt->noise > 0)
        for (int64_t j = 0; j < d; j++)
            row[j] += (float)(gt->noise * saec_rng_normal(&rng));
    return t;
}

static int syn_next(saec_data *src, int64_t n, float *rows, int32_t *timesteps) {
    synthetic_source *s = (synthetic_source *)src;
    const int64_t d = s->gt.d, start = src->cursor;
    int32_t *ts = s->T > 0 ? timesteps : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        int32_t t = replay_token(s, start + i, rows + i * d, NULL, NULL);
        if (ts) ts[i] = t;
    }
    src->cursor += n;
    return SAEC_OK;
}

static int syn_seek(saec_data *src, int64_t cursor) {
    src->cursor = cursor;
    return SAEC_OK;
}

static int copy_floats(float **dst, const float *src, int64_t n) {
    *dst = malloc(sizeof(float) * (size_t)n);
    if (!*dst) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory copying ground truth");
    memcpy(*dst, src, sizeof(float) * (size_t)n);
    return SAEC_OK;
}

static int syn_ground_truth(saec_data *src, saec_ground_truth *out) {
    const saec_ground_truth *gt = &((synthetic_source *)src)->gt;
    memset(out, 0, sizeof *out);
    out->n_features = gt->n_features;
    out->d = gt->d;
    out->noise = gt->noise;
    int rc = copy_floats(&out->directions, gt->directions, gt->n_features * gt->d);
    if (rc == SAEC_OK) rc = copy_floats(&out->probabilities, gt->probabilities, gt->n_features);
    if (rc == SAEC_OK) rc = copy_floats(&out->offset, gt->offset, gt->d);
    if (rc == SAEC_OK && gt->parent) {
        out->parent = malloc(sizeof(int32_t) * (size_t)gt->n_features); /* [F] */
        if (out->parent)
            memcpy(out->parent, gt->parent, sizeof(int32_t) * (size_t)gt->n_features);
        else
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory copying ground truth");
    }
    if (rc == SAEC_OK && gt->t_center)
        rc = copy_floats(&out->t_center, gt->t_center, gt->n_features);
    if (rc != SAEC_OK) saec_ground_truth_free(out);
    return rc;
}

static void syn_close(saec_data *src) {
    synthetic_source *s = (synthetic_source *)src;
    saec_ground_truth_free(&s->gt);
    free(s->t_amp);
    free(s);
}

static const saec_data_vtable SYNTHETIC_VT = {syn_next, syn_seek, syn_ground_truth, syn_close};

int saec_synthetic_has_activity(const saec_data *src) { return src && src->vt == &SYNTHETIC_VT; }

int saec_synthetic_active(saec_data *src, int64_t t0, int64_t n, const int32_t *features,
                          int64_t n_query, uint8_t *active) {
    if (!saec_synthetic_has_activity(src))
        return saec_fail(SAEC_ERR_DATA, "per-token activity exists for synthetic streams only",
                         "no per-token ground truth in %s", src->info.description);
    const synthetic_source *s = (const synthetic_source *)src;
    const int64_t F = s->gt.n_features;
    int32_t *slot = malloc(sizeof(int32_t) * (size_t)F); /* [F] feature -> query column or -1 */
    if (!slot) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for feature activity");
    for (int64_t i = 0; i < F; i++)
        slot[i] = -1;
    for (int64_t q = 0; q < n_query; q++) {
        if (features[q] < 0 || features[q] >= F) {
            free(slot);
            return saec_fail(SAEC_ERR_OTHER, NULL, "internal: feature %d outside [0, %lld)",
                             (int)features[q], (long long)F);
        }
        slot[features[q]] = (int32_t)q;
    }
    memset(active, 0, (size_t)(n * n_query));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        replay_token(s, t0 + i, NULL, slot, active + i * n_query);
    free(slot);
    return SAEC_OK;
}

int saec_data_open_synthetic(const saec_config *cfg, saec_stream stream, saec_data **out) {
    *out = NULL;
    const int hierarchy = strcmp(cfg->synthetic, "hierarchy") == 0;
    const int timestep = strcmp(cfg->synthetic, "timestep") == 0;
    /* "auto" (an unresolved configuration) is an SAE's default, superposition */
    if (!hierarchy && !timestep && strcmp(cfg->synthetic, "superposition") != 0 &&
        strcmp(cfg->synthetic, "auto") != 0)
        return saec_fail(SAEC_ERR_USAGE, "available now: superposition, hierarchy, timestep",
                         "synthetic generator '%s' is not implemented yet", cfg->synthetic);
    if (hierarchy && cfg->syn_parents * (1 + cfg->syn_children) > cfg->syn_features)
        return saec_fail(SAEC_ERR_USAGE, "raise syn_features or lower syn_parents / syn_children",
                         "the hierarchy needs syn_parents x (1 + syn_children) = %lld features, "
                         "but syn_features = %lld",
                         (long long)(cfg->syn_parents * (1 + cfg->syn_children)),
                         (long long)cfg->syn_features);
    int64_t d = cfg->d_in > 0 ? cfg->d_in : SYN_DEFAULT_D;
    synthetic_source *s = calloc(1, sizeof *s);
    if (!s) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening synthetic data");
    int rc = make_ground_truth(cfg, d, hierarchy, &s->gt);
    if (rc == SAEC_OK && timestep) {
        rc = timestep_ground_truth(cfg, &s->gt, &s->t_amp);
        if (rc != SAEC_OK) saec_ground_truth_free(&s->gt);
    }
    if (rc != SAEC_OK) {
        free(s);
        return rc;
    }
    s->seed = (uint64_t)cfg->seed;
    s->stream = stream == SAEC_STREAM_EVAL ? SAEC_RNG_EVAL_TOKENS : SAEC_RNG_TRAIN_TOKENS;
    if (hierarchy) {
        s->n_parents = cfg->syn_parents;
        s->n_children = cfg->syn_children;
        s->child_prob = (float)cfg->syn_child_prob;
        snprintf(s->description, sizeof s->description,
                 "synthetic hierarchy (F=%lld, d=%lld, L0=%g, %lld parents x %lld children, "
                 "P(a child | parent)=%g, seed %lld)",
                 (long long)cfg->syn_features, (long long)d, cfg->syn_l0,
                 (long long)cfg->syn_parents, (long long)cfg->syn_children, cfg->syn_child_prob,
                 (long long)cfg->seed);
    } else if (timestep) {
        const double sigma = cfg->syn_t_width * (double)cfg->timesteps;
        s->T = cfg->timesteps;
        s->t_inv2s2 = 1.0 / (2.0 * sigma * sigma);
        s->t_drift = cfg->syn_t_drift;
        s->base.has_timesteps = 1;
        s->base.timesteps_max = cfg->timesteps;
        snprintf(s->description, sizeof s->description,
                 "synthetic timestep (F=%lld, d=%lld, L0=%g, T=%lld, width %g·T, drift %g, "
                 "seed %lld)",
                 (long long)cfg->syn_features, (long long)d, cfg->syn_l0, (long long)cfg->timesteps,
                 cfg->syn_t_width, cfg->syn_t_drift, (long long)cfg->seed);
    } else {
        snprintf(s->description, sizeof s->description,
                 "synthetic superposition (F=%lld, d=%lld, L0=%g, seed %lld)",
                 (long long)cfg->syn_features, (long long)d, cfg->syn_l0, (long long)cfg->seed);
    }
    s->base.vt = &SYNTHETIC_VT;
    s->base.info.d = d;
    s->base.info.n_rows = -1;
    s->base.info.description = s->description;
    s->base.has_ground_truth = 1;
    *out = &s->base;
    return SAEC_OK;
}
