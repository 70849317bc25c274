/* The `superposition` generator (SPEC §9): F random unit feature directions in R^d (F > d),
   feature i fires with probability p_i from a power law scaled so that on average L0_true fire
   per token, with magnitude |N(1, 0.3)|; x = offset + Σ a_i f_i + σ·noise.
   Token t of a stream is a pure function of (seed, stream, t): seeking is free. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "rng.h"
#include "saec/saec.h"

#define SYN_DEFAULT_D 96

typedef struct {
    saec_data base;
    uint64_t seed;
    uint64_t stream; /* SAEC_RNG_TRAIN_TOKENS or SAEC_RNG_EVAL_TOKENS */
    saec_ground_truth gt;
    char description[160];
} synthetic_source;

/* Firing probabilities p_i ∝ (i+1)^-power, scaled so Σ p_i = l0, each capped at 1. */
static void power_law_probabilities(float *p, int64_t F, double power, double l0) {
    double *w = malloc(sizeof(double) * (size_t)F);
    for (int64_t i = 0; i < F; i++) w[i] = pow((double)(i + 1), -power);
    /* Rescale the uncapped probabilities until the capped ones sum to l0 (a few rounds). */
    double target = l0 < (double)F ? l0 : (double)F;
    double scale = 1.0;
    for (int round = 0; round < 60; round++) {
        double sum = 0;
        for (int64_t i = 0; i < F; i++) sum += fmin(1.0, w[i] * scale);
        if (fabs(sum - target) < 1e-9 * target) break;
        scale *= target / sum;
    }
    for (int64_t i = 0; i < F; i++) p[i] = (float)fmin(1.0, w[i] * scale);
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
    for (int64_t j = 0; j < d; j++) v[j] *= inv;
}

static int make_ground_truth(const saec_config *cfg, int64_t d, saec_ground_truth *gt) {
    int64_t F = cfg->syn_features;
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
    for (int64_t i = 0; i < F; i++) random_unit(&rng, gt->directions + i * d, d);
    random_unit(&rng, gt->offset, d);
    for (int64_t j = 0; j < d; j++) gt->offset[j] *= (float)cfg->syn_offset;
    power_law_probabilities(gt->probabilities, F, cfg->syn_power, cfg->syn_l0);
    return SAEC_OK;
}

/* One token: rows [d]. */
static void generate_token(const synthetic_source *s, int64_t t, float *row) {
    const saec_ground_truth *gt = &s->gt;
    const int64_t d = gt->d;
    saec_rng rng;
    saec_rng_init(&rng, s->seed, s->stream, (uint64_t)t);
    memcpy(row, gt->offset, sizeof(float) * (size_t)d);
    for (int64_t i = 0; i < gt->n_features; i++) {
        /* 32-bit uniform: plenty for probabilities >= 1e-9 and twice as cheap as two draws. */
        float u = (float)(saec_rng_u64(&rng) >> 40) * 0x1.0p-24f;
        if (u >= gt->probabilities[i]) continue;
        float a = (float)fabs(1.0 + 0.3 * saec_rng_normal(&rng));
        const float *dir = gt->directions + i * d;
        for (int64_t j = 0; j < d; j++) row[j] += a * dir[j];
    }
    if (gt->noise > 0)
        for (int64_t j = 0; j < d; j++) row[j] += (float)(gt->noise * saec_rng_normal(&rng));
}

static int syn_next(saec_data *src, int64_t n, float *rows) {
    synthetic_source *s = (synthetic_source *)src;
    const int64_t d = s->gt.d, start = src->cursor;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) generate_token(s, start + i, rows + i * d);
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
    if (rc != SAEC_OK) saec_ground_truth_free(out);
    return rc;
}

static void syn_close(saec_data *src) {
    synthetic_source *s = (synthetic_source *)src;
    saec_ground_truth_free(&s->gt);
    free(s);
}

static const saec_data_vtable SYNTHETIC_VT = {syn_next, syn_seek, syn_ground_truth, syn_close};

int saec_data_open_synthetic(const saec_config *cfg, saec_stream stream, saec_data **out) {
    *out = NULL;
    if (strcmp(cfg->synthetic, "superposition") != 0)
        return saec_fail(SAEC_ERR_USAGE, "available now: superposition",
                         "synthetic generator '%s' is not implemented yet", cfg->synthetic);
    int64_t d = cfg->d_in > 0 ? cfg->d_in : SYN_DEFAULT_D;
    synthetic_source *s = calloc(1, sizeof *s);
    if (!s) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening synthetic data");
    int rc = make_ground_truth(cfg, d, &s->gt);
    if (rc != SAEC_OK) {
        free(s);
        return rc;
    }
    s->seed = (uint64_t)cfg->seed;
    s->stream = stream == SAEC_STREAM_EVAL ? SAEC_RNG_EVAL_TOKENS : SAEC_RNG_TRAIN_TOKENS;
    snprintf(s->description, sizeof s->description,
             "synthetic superposition (F=%lld, d=%lld, L0=%g, seed %lld)",
             (long long)cfg->syn_features, (long long)d, cfg->syn_l0, (long long)cfg->seed);
    s->base.vt = &SYNTHETIC_VT;
    s->base.info.d = d;
    s->base.info.n_rows = -1;
    s->base.info.description = s->description;
    s->base.has_ground_truth = 1;
    *out = &s->base;
    return SAEC_OK;
}
