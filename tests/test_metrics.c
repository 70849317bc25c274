/* Ground-truth metrics (SPEC §8) without a model: the per-token absorption formula on hand-built
   codes, the per-parent aggregation, mmcs on a hand-built decoder, and the `hierarchy` generator
   (SPEC §9) that the absorption metric relies on: its layout, probabilities, the rule that a
   child fires only with its parent, and that the regenerated per-token activity is exactly the
   activity of the data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data.h"
#include "data_synthetic.h"
#include "metrics.h"
#include "saec/config.h"
#include "saec/saec.h"


/* M_SQRT1_2 is POSIX, not C11: spelled out. */
#define SQRT1_2 0.70710678118654752440
#define NEAR(a, b, tol) (fabs((double)(a) - (double)(b)) <= (tol))

/* ---- the per-token formula ---------------------------------------------------------------- */

/* Six latents; latent 0 is the parent's main latent (cos 1). Latent 2 is nearly orthogonal to p
   (cos 0.05 < 0.1: never a candidate); the others lean towards p by the given cosines. */
static const float COS6[6] = {1.0f, 0.8f, 0.05f, 0.5f, 0.3f, 0.2f};

static saec_absorption_token tok(double P, int k, const int32_t *idx, const float *f) {
    return saec_absorption_on_token(P, 0, idx, f, k, COS6, NULL);
}

static void test_formula(void) {
    const double eps = 1e-6;
    saec_absorption_token r;

    /* A perfect SAE: the parent latent carries the parent, the child's latent (cos 0.05) does not
       count as a candidate. */
    r = tok(2.0, 2, (int32_t[]){0, 2}, (float[]){2.0f, 1.0f});
    CHECK(r.fraction == 0 && r.full == 0, "perfect: fraction %g full %d", r.fraction, r.full);
    CHECK(NEAR(r.M, 2.0, eps) && r.A == 0, "perfect: M %g A %g", r.M, r.A);

    /* Full absorption: the parent latent is silent and a child latent (cos 0.8, f 2.5 -> 2.0)
       carries all of P = 2. */
    r = tok(2.0, 1, (int32_t[]){1}, (float[]){2.5f});
    CHECK(r.fraction == 1 && r.full == 1, "full: fraction %g full %d", r.fraction, r.full);
    CHECK(NEAR(r.A, 2.0, eps) && r.M == 0, "full: A %g M %g", r.A, r.M);

    /* The main latent in the code list but with f = 0 is silent too. */
    r = tok(2.0, 2, (int32_t[]){0, 1}, (float[]){0.0f, 2.5f});
    CHECK(r.fraction == 1 && r.full == 1, "main f=0: fraction %g full %d", r.fraction, r.full);

    /* Partial, A > P − M: M = 1·1 = 1; candidates 1.2·0.5 = 0.6, 0.5·0.8 = 0.4, 1·0.3 = 0.3,
       1·0.2 = 0.2; A = top 3 = 1.3, A/P = 0.65; min(A, P−M) = 1 -> 1/(1+1) = 0.5. */
    r = tok(2.0, 5, (int32_t[]){0, 3, 4, 5, 1}, (float[]){1.0f, 1.2f, 1.0f, 1.0f, 0.5f});
    CHECK(NEAR(r.A, 1.3, eps), "partial: A = %g, expected the top 3 = 1.3", r.A);
    CHECK(NEAR(r.fraction, 0.5, eps) && r.full == 0, "partial: fraction %g full %d", r.fraction,
          r.full);

    /* Partial, A < P − M: P = 4, M = 1, A = 2.5·0.8 = 2 (A/P = 0.5); min(2, 3) = 2 -> 2/3. */
    r = tok(4.0, 2, (int32_t[]){0, 1}, (float[]){1.0f, 2.5f});
    CHECK(NEAR(r.fraction, 2.0 / 3.0, eps), "partial 2: fraction %g, expected 2/3", r.fraction);

    /* The A/P < 0.4 rule: the main latent is silent but the candidates carry only 0.35 of P. */
    r = tok(2.0, 1, (int32_t[]){1}, (float[]){0.875f});
    CHECK(NEAR(r.A, 0.7, eps) && r.fraction == 0 && r.full == 0,
          "A/P = 0.35: fraction %g full %d (A %g)", r.fraction, r.full, r.A);
    /* ... and just above it (0.45 of P) counts, since M = 0. */
    r = tok(2.0, 1, (int32_t[]){1}, (float[]){1.125f});
    CHECK(r.fraction == 1 && r.full == 1, "A/P = 0.45: fraction %g full %d", r.fraction, r.full);

    /* M >= P: no absorption whatever the candidates carry. */
    r = tok(1.0, 2, (int32_t[]){0, 1}, (float[]){1.5f, 5.0f});
    CHECK(r.fraction == 0 && r.full == 0, "M >= P: fraction %g", r.fraction);

    /* Full absorption needs one candidate with >= 40% of P: three candidates of 0.3 each give
       A = 0.9 >= 0.8 (fraction 1, main silent) but the top one holds only 15%. */
    r = tok(2.0, 3, (int32_t[]){3, 4, 5}, (float[]){0.6f, 1.0f, 1.5f});
    CHECK(NEAR(r.A, 0.9, eps) && r.fraction == 1 && r.full == 0, "spread: fraction %g full %d A %g",
          r.fraction, r.full, r.A);

    /* Nothing of the parent in the token (P <= 0) scores 0. */
    r = tok(-0.5, 1, (int32_t[]){1}, (float[]){2.5f});
    CHECK(r.fraction == 0 && r.full == 0, "P <= 0: fraction %g", r.fraction);

    /* A decoder row of norm 2 contributes f·⟨d, p⟩ = f·2·cos (ReLU-L1 rows are not unit). */
    const float proj[6] = {1.0f, 1.6f, 0.1f, 1.0f, 0.6f, 0.4f};
    r = saec_absorption_on_token(4.0, 0, (int32_t[]){1}, (float[]){1.25f}, 1, COS6, proj);
    CHECK(NEAR(r.A, 2.0, eps) && r.fraction == 1, "proj: A %g fraction %g", r.A, r.fraction);
}

/* ---- aggregation over tokens and parents ------------------------------------------------- */

static void test_aggregate(void) {
    /* d = 3, features e1 (parent), e2, e3 (its children); W_dec rows e1, (e1+e2)/√2, e3. */
    const int64_t d = 3, m = 3, k = 1;
    float dirs[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    float prob[3] = {0.5f, 0.25f, 0.25f}, off[3] = {0, 0, 0};
    int32_t parent[3] = {-1, 0, 0};
    saec_ground_truth gt = {.n_features = 3,
                            .d = 3,
                            .directions = dirs,
                            .probabilities = prob,
                            .offset = off,
                            .parent = parent};
    const float r2 = (float)SQRT1_2;
    float W_dec[9] = {1, 0, 0, r2, r2, 0, 0, 0, 1};
    saec_absorption a;
    CHECK(saec_absorption_init(&a, W_dec, m, d, &gt) == SAEC_OK, "init: %s", saec_error_message());
    CHECK(a.n_parents == 1 && a.feature[0] == 0 && a.main_latent[0] == 0,
          "one parent (feature 0, main latent 0): %lld parents", (long long)a.n_parents);
    /* token 0: parent only, its latent fires -> 0. token 1: parent + child e2, only the
       absorbing latent 1 fires with f √2: contribution √2·(1/√2) = 1 = P -> 1, full.
       token 2: parent inactive (ignored even though latent 1 fires). */
    float xc[9] = {2, 0, 0, 1, 1, 0, 0, 1, 0};
    int32_t idx[3] = {0, 1, 1};
    float f[3] = {2.0f, (float)(2.0 * SQRT1_2), 1.0f};
    uint8_t active[3] = {1, 1, 0};
    saec_absorption_add(&a, 3, xc, idx, f, k, active);
    double fr, fu;
    int64_t counted = saec_absorption_result(&a, &fr, &fu);
    CHECK(counted == 1 && NEAR(fr, 0.5, 1e-6) && NEAR(fu, 0.5, 1e-6),
          "aggregate: %lld parents, fraction %g, full %g (expected 0.5, 0.5)", (long long)counted,
          fr, fu);
    saec_absorption_free(&a);

    /* No hierarchy: no parents, no result. */
    gt.parent = NULL;
    CHECK(saec_absorption_init(&a, W_dec, m, d, &gt) == SAEC_OK && a.n_parents == 0,
          "no hierarchy gives no parents");
    counted = saec_absorption_result(&a, &fr, &fu);
    CHECK(counted == 0 && isnan(fr) && isnan(fu), "empty result is NAN");
    saec_absorption_free(&a);
}

/* ---- mmcs --------------------------------------------------------------------------------- */

static void test_mmcs(void) {
    /* Features e1, e2 in R^3. Decoder rows: −e1 (anti-aligned: cosine −1, must not count),
       3·(e2+e3)/√2 (not unit: cosine with e2 is 1/√2), e1 exactly. mmcs = (1 + 1/√2)/2. */
    float dirs[6] = {1, 0, 0, 0, 1, 0};
    saec_ground_truth gt = {.n_features = 2, .d = 3, .directions = dirs};
    const float s = 3.0f * (float)SQRT1_2;
    float W_dec[9] = {-1, 0, 0, 0, s, s, 1, 0, 0};
    double v = saec_mmcs(W_dec, 3, 3, &gt);
    CHECK(NEAR(v, (1.0 + SQRT1_2) / 2.0, 1e-6), "mmcs = %.9f, expected %.9f", v,
          (1.0 + SQRT1_2) / 2.0);
    /* Without the exact row the first feature's best is 0 (orthogonal rows beat −1). */
    v = saec_mmcs(W_dec, 2, 3, &gt);
    CHECK(NEAR(v, SQRT1_2 / 2.0, 1e-6), "mmcs = %.9f, expected %.9f", v, SQRT1_2 / 2.0);
}

/* ---- the hierarchy generator ------------------------------------------------------------- */

static int open_hierarchy(saec_config *cfg, saec_stream stream, saec_data **src) {
    int rc = saec_data_open_synthetic(cfg, stream, src);
    if (rc != SAEC_OK) fprintf(stderr, "open: %s\n", saec_error_message());
    return rc;
}

/* Distance from x [d] to the span of the rows listed in `use` (Gram–Schmidt, double). */
static double residual_to_span(const float *x, const float *dirs, int64_t d, const int32_t *use,
                               int64_t n_use) {
    double *basis = calloc((size_t)(n_use * d), sizeof(double)); /* [n_use, d] orthonormal */
    double *r = malloc(sizeof(double) * (size_t)d);              /* [d] */
    int64_t nb = 0;
    for (int64_t u = 0; u < n_use; u++) {
        double *b = basis + nb * d;
        for (int64_t j = 0; j < d; j++)
            b[j] = dirs[use[u] * d + j];
        for (int64_t q = 0; q < nb; q++) {
            double dot = 0;
            for (int64_t j = 0; j < d; j++)
                dot += b[j] * basis[q * d + j];
            for (int64_t j = 0; j < d; j++)
                b[j] -= dot * basis[q * d + j];
        }
        double nn = 0;
        for (int64_t j = 0; j < d; j++)
            nn += b[j] * b[j];
        if (nn < 1e-12) continue;
        for (int64_t j = 0; j < d; j++)
            b[j] /= sqrt(nn);
        nb++;
    }
    for (int64_t j = 0; j < d; j++)
        r[j] = x[j];
    for (int64_t q = 0; q < nb; q++) {
        double dot = 0;
        for (int64_t j = 0; j < d; j++)
            dot += r[j] * basis[q * d + j];
        for (int64_t j = 0; j < d; j++)
            r[j] -= dot * basis[q * d + j];
    }
    double nr = 0;
    for (int64_t j = 0; j < d; j++)
        nr += r[j] * r[j];
    free(basis), free(r);
    return sqrt(nr);
}

static void test_generator(void) {
    saec_config cfg;
    saec_config_defaults(&cfg);
    CHECK(saec_config_set(&cfg, "synthetic", "hierarchy", "test") == SAEC_OK,
          "hierarchy is a choice");
    const int64_t P = cfg.syn_parents, C = cfg.syn_children, F = cfg.syn_features;
    const double q = cfg.syn_child_prob;
    saec_data *src = NULL;
    if (open_hierarchy(&cfg, SAEC_STREAM_TRAIN, &src) != SAEC_OK) {
        n_failures++;
        return;
    }
    CHECK(saec_synthetic_has_activity(src), "a synthetic stream has per-token activity");
    saec_ground_truth gt = {0};
    CHECK(saec_data_ground_truth(src, &gt) == SAEC_OK && gt.parent, "ground truth with parent");
    if (!gt.parent) {
        n_failures++;
        saec_data_close(src);
        return;
    }
    /* Layout: parents [0, P), child c of parent j at P + j·C + c, the rest independent. */
    int layout_ok = 1;
    for (int64_t i = 0; i < F; i++) {
        int32_t want = i >= P && i < P + P * C ? (int32_t)((i - P) / C) : -1;
        layout_ok &= gt.parent[i] == want;
    }
    CHECK(layout_ok, "parent layout");
    double sum_p = 0;
    for (int64_t i = 0; i < F; i++)
        sum_p += gt.probabilities[i];
    CHECK(NEAR(sum_p, cfg.syn_l0, 1e-3 * cfg.syn_l0), "sum of probabilities %g = syn_l0 %g", sum_p,
          cfg.syn_l0);
    CHECK(NEAR(gt.probabilities[P], gt.probabilities[0] * q / (double)C, 1e-6),
          "child marginal = p_parent·q/C");

    /* Activity of every feature over n tokens. */
    const int64_t n = 20000, d = gt.d;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)F);
    uint8_t *act = malloc((size_t)(n * F)); /* [n, F] */
    for (int64_t i = 0; i < F; i++)
        all[i] = (int32_t)i;
    CHECK(saec_synthetic_active(src, 0, n, all, F, act) == SAEC_OK, "active");
    int64_t orphan = 0, two_children = 0, parent_fired = 0, child_fired = 0;
    int64_t *count = calloc((size_t)F, sizeof(int64_t)); /* [F] */
    for (int64_t t = 0; t < n; t++) {
        const uint8_t *a = act + t * F;
        for (int64_t i = 0; i < F; i++)
            count[i] += a[i];
        for (int64_t j = 0; j < P; j++) {
            int64_t kids = 0;
            for (int64_t c = 0; c < C; c++)
                kids += a[P + j * C + c];
            orphan += kids > 0 && !a[j];
            two_children += kids > 1;
            parent_fired += a[j];
            child_fired += kids;
        }
    }
    CHECK(orphan == 0, "%lld tokens with a child but not its parent", (long long)orphan);
    CHECK(two_children == 0, "%lld tokens with two children of one parent",
          (long long)two_children);
    /* P(a child | parent) ≈ q: binomial, 5 standard deviations. */
    double rate = (double)child_fired / (double)parent_fired;
    double sd = sqrt(q * (1 - q) / (double)parent_fired);
    CHECK(fabs(rate - q) < 5 * sd, "P(child | parent) = %g, expected %g ± %g", rate, q, 5 * sd);
    /* Marginal frequencies match the stored probabilities. */
    int freq_ok = 1;
    for (int64_t i = 0; i < F; i++) {
        double p = gt.probabilities[i], e = (double)count[i] / (double)n;
        if (fabs(e - p) > 5 * sqrt(p * (1 - p) / (double)n) + 1e-4) {
            fprintf(stderr, "feature %lld: frequency %g, probability %g\n", (long long)i, e, p);
            freq_ok = 0;
        }
    }
    CHECK(freq_ok, "frequencies match the probabilities");

    /* Seeking: activity of a sub-range equals the same rows of the full query, and the cursor
       does not move. */
    uint8_t *sub = malloc((size_t)(100 * F));
    const int64_t cursor = src->cursor;
    CHECK(saec_synthetic_active(src, 5000, 100, all, F, sub) == SAEC_OK, "active sub-range");
    CHECK(memcmp(sub, act + 5000 * F, (size_t)(100 * F)) == 0, "sub-range activity matches");
    CHECK(src->cursor == cursor, "activity does not move the cursor");

    /* The activity is that of the data: without noise and offset, each row lies in the span of
       its active features' directions (and not in the span without one of them). */
    free(gt.directions), free(gt.probabilities), free(gt.offset), free(gt.parent);
    saec_data_close(src);
    cfg.syn_noise = 0, cfg.syn_offset = 0;
    if (open_hierarchy(&cfg, SAEC_STREAM_EVAL, &src) != SAEC_OK) {
        n_failures++;
        free(all), free(act), free(count), free(sub);
        return;
    }
    CHECK(saec_data_ground_truth(src, &gt) == SAEC_OK, "ground truth");
    const int64_t nt = 300;
    float *rows = malloc(sizeof(float) * (size_t)(nt * d)); /* [nt, d] */
    int32_t *use = malloc(sizeof(int32_t) * (size_t)F);
    CHECK(saec_data_seek(src, 777) == SAEC_OK && saec_data_next(src, nt, rows, NULL) == SAEC_OK,
          "rows");
    CHECK(saec_synthetic_active(src, 777, nt, all, F, act) == SAEC_OK, "active");
    int in_span = 1, needs_all = 1;
    for (int64_t t = 0; t < nt; t++) {
        int64_t nu = 0;
        for (int64_t i = 0; i < F; i++)
            if (act[t * F + i]) use[nu++] = (int32_t)i;
        double xnorm = 0;
        for (int64_t j = 0; j < d; j++)
            xnorm += (double)rows[t * d + j] * rows[t * d + j];
        xnorm = sqrt(xnorm);
        if (nu == 0) {
            in_span &= xnorm < 1e-6;
            continue;
        }
        in_span &= residual_to_span(rows + t * d, gt.directions, d, use, nu) < 1e-4 * xnorm;
        /* Dropping the last active feature leaves a residual (magnitudes are |N(1, 0.3)|,
           practically never below 0.01). */
        if (nu < d)
            needs_all &=
                residual_to_span(rows + t * d, gt.directions, d, use, nu - 1) > 1e-3 * xnorm;
    }
    CHECK(in_span, "every row lies in the span of its active features");
    CHECK(needs_all, "every active feature is needed for its row");
    free(rows), free(use), free(all), free(act), free(count), free(sub);
    saec_ground_truth_free(&gt);
    saec_data_close(src);

    /* The hierarchy must fit in syn_features. */
    cfg.syn_features = 20; /* 16 × 5 = 80 needed */
    CHECK(saec_data_open_synthetic(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_ERR_USAGE &&
              strstr(saec_error_message(), "syn_features"),
          "too few features: %s", saec_error_message());
    saec_error_clear();
}

/* superposition has no hierarchy and no parent array. */
static void test_superposition_no_parent(void) {
    saec_config cfg;
    saec_config_defaults(&cfg);
    saec_data *src = NULL;
    if (saec_data_open_synthetic(&cfg, SAEC_STREAM_TRAIN, &src) != SAEC_OK) {
        n_failures++;
        return;
    }
    saec_ground_truth gt = {0};
    CHECK(saec_data_ground_truth(src, &gt) == SAEC_OK && gt.parent == NULL,
          "superposition has no parent");
    saec_ground_truth_free(&gt);
    saec_data_close(src);
}

int main(void) {
    test_formula();
    test_aggregate();
    test_mmcs();
    test_generator();
    test_superposition_no_parent();
    if (n_failures) {
        fprintf(stderr, "%d of %d checks failed\n", n_failures, n_checks);
        return 1;
    }
    printf("all %d checks passed\n", n_checks);
    return 0;
}
