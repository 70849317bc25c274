/* The `timestep` synthetic generator (SPEC §9): deterministic under a seed and seekable, every t
   in [0, T), features firing near their preferred timesteps (coarse at high t, fine at low t),
   the mean L0 and the marginal probabilities as the ground truth says, the norm and offset drift
   with t as documented; other generators carry no timesteps; the timestep config keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data.h"
#include "data_synthetic.h"
#include "saec/saec.h"


static void small_config(saec_config *cfg) {
    saec_config_defaults(cfg);
    snprintf(cfg->synthetic, sizeof cfg->synthetic, "timestep");
    cfg->d_in = 16;
    cfg->syn_features = 64;
    cfg->syn_noise = 0;
    cfg->seed = 3;
}

/* Reads n rows and timesteps from position `at` of a fresh source. */
static int read_at(const saec_config *cfg, saec_stream stream, int64_t at, int64_t n, float *rows,
                   int32_t *ts) {
    saec_data *src = NULL;
    int rc = saec_data_open(cfg, stream, &src);
    if (rc == SAEC_OK) rc = saec_data_seek(src, at);
    if (rc == SAEC_OK) rc = saec_data_next(src, n, rows, ts);
    saec_data_close(src);
    return rc;
}

static void test_determinism(void) {
    saec_config cfg;
    small_config(&cfg);
    enum { N = 3000 };
    const int64_t d = cfg.d_in;
    float *a = malloc(sizeof(float) * N * (size_t)d), *b = malloc(sizeof(float) * N * (size_t)d);
    int32_t *ta = malloc(sizeof(int32_t) * N), *tb = malloc(sizeof(int32_t) * N);

    saec_data *src = NULL;
    CHECK(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK, "%s", saec_error_message());
    CHECK(src->has_timesteps == 1 && src->timesteps_max == cfg.timesteps, "has_timesteps %d T %lld",
          src->has_timesteps, (long long)src->timesteps_max);
    CHECK(strstr(src->info.description, "timestep") != NULL, "%s", src->info.description);
    /* in batches of uneven size */
    for (int64_t done = 0; done < N;) {
        int64_t n = N - done < 257 ? N - done : 257;
        CHECK(saec_data_next(src, n, a + done * d, ta + done) == SAEC_OK, "next");
        done += n;
    }
    saec_data_close(src);

    int in_range = 1;
    for (int i = 0; i < N; i++)
        in_range &= ta[i] >= 0 && ta[i] < cfg.timesteps;
    CHECK(in_range, "a timestep outside [0, %lld)", (long long)cfg.timesteps);

    /* same seed: same stream, read in one go; a seek lands on the same tokens */
    CHECK(read_at(&cfg, SAEC_STREAM_TRAIN, 0, N, b, tb) == SAEC_OK, "read");
    CHECK(memcmp(a, b, sizeof(float) * N * (size_t)d) == 0, "rows differ under one seed");
    CHECK(memcmp(ta, tb, sizeof(int32_t) * N) == 0, "timesteps differ under one seed");
    CHECK(read_at(&cfg, SAEC_STREAM_TRAIN, 1234, 100, b, tb) == SAEC_OK, "read");
    CHECK(memcmp(a + 1234 * d, b, sizeof(float) * 100 * (size_t)d) == 0, "seek: rows differ");
    CHECK(memcmp(ta + 1234, tb, sizeof(int32_t) * 100) == 0, "seek: timesteps differ");
    /* NULL timesteps: the same rows */
    CHECK(read_at(&cfg, SAEC_STREAM_TRAIN, 0, N, b, NULL) == SAEC_OK, "read");
    CHECK(memcmp(a, b, sizeof(float) * N * (size_t)d) == 0, "rows differ without timesteps");

    /* another seed, or the eval stream: other tokens */
    saec_config other = cfg;
    other.seed = 4;
    CHECK(read_at(&other, SAEC_STREAM_TRAIN, 0, N, b, tb) == SAEC_OK, "read");
    CHECK(memcmp(ta, tb, sizeof(int32_t) * N) != 0, "another seed, same timesteps");
    CHECK(read_at(&cfg, SAEC_STREAM_EVAL, 0, N, b, tb) == SAEC_OK, "read");
    CHECK(memcmp(ta, tb, sizeof(int32_t) * N) != 0, "eval stream repeats the training stream");

    /* the timesteps are uniform: each quarter of [0, T) holds about a quarter of the tokens */
    int64_t quarter[4] = {0};
    for (int i = 0; i < N; i++)
        quarter[ta[i] * 4 / cfg.timesteps]++;
    for (int q = 0; q < 4; q++)
        CHECK(fabs((double)quarter[q] / N - 0.25) < 0.04, "quarter %d holds %lld of %d", q,
              (long long)quarter[q], N);
    free(a), free(b), free(ta), free(tb);
}

/* Firing statistics against the ground truth, on n tokens of the eval stream. */
static void check_statistics(const saec_config *cfg, int64_t n, const char *label) {
    const int64_t d = cfg->d_in, F = cfg->syn_features, T = cfg->timesteps;
    saec_data *src = NULL;
    CHECK(saec_data_open(cfg, SAEC_STREAM_EVAL, &src) == SAEC_OK, "%s", saec_error_message());
    saec_ground_truth gt;
    CHECK(saec_data_ground_truth(src, &gt) == SAEC_OK, "ground truth");
    CHECK(gt.t_center != NULL && gt.parent == NULL, "t_center %p", (void *)gt.t_center);
    float *rows = malloc(sizeof(float) * (size_t)(n * d));
    int32_t *ts = malloc(sizeof(int32_t) * (size_t)n);
    int32_t *features = malloc(sizeof(int32_t) * (size_t)F);
    uint8_t *active = malloc((size_t)(n * F));
    for (int64_t i = 0; i < F; i++)
        features[i] = (int32_t)i;
    CHECK(saec_data_next(src, n, rows, ts) == SAEC_OK, "next");
    CHECK(saec_synthetic_has_activity(src), "no activity");
    CHECK(saec_synthetic_active(src, 0, n, features, F, active) == SAEC_OK, "active");

    double psum = 0;
    for (int64_t i = 0; i < F; i++)
        psum += gt.probabilities[i];
    CHECK(fabs(psum - cfg->syn_l0) < 1e-3 * cfg->syn_l0, "%s: Σ p = %g, syn_l0 = %g", label, psum,
          cfg->syn_l0);
    /* centers: coarse (feature 0) near T, fine (feature F-1) near 0, decreasing */
    int decreasing = 1;
    for (int64_t i = 1; i < F; i++)
        decreasing &= gt.t_center[i] < gt.t_center[i - 1];
    CHECK(decreasing && gt.t_center[0] > 0.9 * T && gt.t_center[F - 1] < 0.1 * T,
          "%s: centers %g .. %g", label, gt.t_center[0], gt.t_center[F - 1]);

    double l0 = 0;
    double *tsum = calloc((size_t)F, sizeof(double));
    int64_t *count = calloc((size_t)F, sizeof(int64_t));
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < F; i++)
            if (active[r * F + i]) {
                l0 += 1;
                count[i]++;
                tsum[i] += ts[r];
            }
    l0 /= (double)n;
    CHECK(fabs(l0 - cfg->syn_l0) < 0.03 * cfg->syn_l0 + 0.05, "%s: mean L0 %g, syn_l0 %g", label,
          l0, cfg->syn_l0);
    /* each feature's firing rate as the ground truth says (binomial, 5 standard errors) */
    int rates_ok = 1;
    for (int64_t i = 0; i < F; i++) {
        double p = gt.probabilities[i], rate = (double)count[i] / (double)n;
        double se = sqrt(p * (1 - p) / (double)n) + 1e-4;
        if (fabs(rate - p) > 5 * se) {
            fprintf(stderr, "  %s: feature %lld fires at rate %g, ground truth %g\n", label,
                    (long long)i, rate, p);
            rates_ok = 0;
        }
    }
    CHECK(rates_ok, "%s: firing rates differ from the ground truth", label);
    /* where a feature fires: the coarse one at high t, the fine one at low t */
    const double t_coarse = count[0] ? tsum[0] / (double)count[0] : -1;
    const double t_fine = count[F - 1] ? tsum[F - 1] / (double)count[F - 1] : -1;
    CHECK(count[0] > 50 && count[F - 1] > 50, "%s: too few firings (%lld, %lld)", label,
          (long long)count[0], (long long)count[F - 1]);
    CHECK(t_coarse > 0.7 * T && t_fine < 0.3 * T && t_coarse > t_fine,
          "%s: mean t where the coarse feature fires %g, the fine one %g (T %lld)", label, t_coarse,
          t_fine, (long long)T);
    /* and near their centers: the mean t of each well-sampled feature within 0.1·T of c_i (the
       bump is cut by the ends of [0, T), so only the features centered inside) */
    int near = 1;
    const double sigma = cfg->syn_t_width * (double)T;
    for (int64_t i = 0; i < F; i++) {
        const double c = gt.t_center[i];
        if (count[i] < 200 || c < 3 * sigma || c > (double)T - 3 * sigma) continue;
        if (fabs(tsum[i] / (double)count[i] - c) > 0.1 * (double)T) {
            fprintf(stderr, "  %s: feature %lld fires at mean t %g, center %g\n", label,
                    (long long)i, tsum[i] / (double)count[i], c);
            near = 0;
        }
    }
    CHECK(near, "%s: features fire away from their centers", label);

    /* drift: tokens where nothing fired are exactly (1 − drift·u)·offset (noise 0); tokens where
       one feature fired have ‖x − offset part‖ = (1 + drift·u)·a with E a ≈ 1.0 (|N(1, 0.3)|) */
    int64_t empty = 0, single_lo = 0, single_hi = 0;
    double mag_lo = 0, mag_hi = 0, worst = 0;
    for (int64_t r = 0; r < n; r++) {
        int64_t k = 0, which = -1;
        for (int64_t i = 0; i < F; i++)
            if (active[r * F + i]) k++, which = i;
        const double u = (double)ts[r] / (double)T - 0.5;
        const double og = 1.0 - cfg->syn_t_drift * u, g = 1.0 + cfg->syn_t_drift * u;
        double norm2 = 0, dot = 0;
        for (int64_t j = 0; j < d; j++) {
            const double e = rows[r * d + j] - (double)(float)og * gt.offset[j];
            norm2 += e * e;
            if (which >= 0) dot += e * gt.directions[which * d + j];
        }
        if (k == 0) {
            empty++;
            if (sqrt(norm2) > worst) worst = sqrt(norm2);
        } else if (k == 1) {
            /* the residual lies along the feature's direction */
            if (fabs(fabs(dot) - sqrt(norm2)) > 1e-4 * (1 + sqrt(norm2))) worst = 1e9;
            if (ts[r] < T / 2)
                mag_lo += sqrt(norm2) / g, single_lo++;
            else
                mag_hi += sqrt(norm2) / g, single_hi++;
        }
    }
    CHECK(empty > 10 && worst < 1e-5, "%s: %lld empty tokens, max deviation %g", label,
          (long long)empty, worst);
    mag_lo /= (double)(single_lo ? single_lo : 1);
    mag_hi /= (double)(single_hi ? single_hi : 1);
    CHECK(single_lo > 50 && single_hi > 50 && fabs(mag_lo - 1.0) < 0.08 &&
              fabs(mag_hi - 1.0) < 0.08,
          "%s: magnitude / (1 + drift·u): %g (t < T/2, %lld tokens), %g (t >= T/2, %lld)", label,
          mag_lo, (long long)single_lo, mag_hi, (long long)single_hi);

    saec_ground_truth_free(&gt);
    CHECK(gt.t_center == NULL, "not freed");
    saec_data_close(src);
    free(rows), free(ts), free(features), free(active), free(tsum), free(count);
}

static void test_statistics(void) {
    saec_config cfg;
    small_config(&cfg);
    check_statistics(&cfg, 40000, "default");
    /* narrow bumps on few features: firing probabilities cap at 1, the rescale keeps L0 */
    small_config(&cfg);
    cfg.syn_features = 12;
    cfg.syn_t_width = 0.1;
    cfg.syn_l0 = 3;
    cfg.timesteps = 50;
    cfg.syn_t_drift = 1.5;
    check_statistics(&cfg, 40000, "capped");
}

/* The other generators carry no timesteps and leave the caller's array alone. */
static void test_other_generators(void) {
    const char *names[] = {"superposition", "hierarchy"};
    for (int g = 0; g < 2; g++) {
        saec_config cfg;
        saec_config_defaults(&cfg);
        snprintf(cfg.synthetic, sizeof cfg.synthetic, "%s", names[g]);
        cfg.d_in = 8;
        saec_data *src = NULL;
        CHECK(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK, "%s", names[g]);
        float rows[16 * 8];
        int32_t ts[16];
        for (int i = 0; i < 16; i++)
            ts[i] = -7;
        CHECK(saec_data_next(src, 16, rows, ts) == SAEC_OK, "next");
        int untouched = 1;
        for (int i = 0; i < 16; i++)
            untouched &= ts[i] == -7;
        CHECK(!src->has_timesteps && src->timesteps_max == 0 && untouched, "%s has timesteps",
              names[g]);
        saec_ground_truth gt;
        CHECK(saec_data_ground_truth(src, &gt) == SAEC_OK && gt.t_center == NULL, "%s t_center",
              names[g]);
        saec_ground_truth_free(&gt);
        saec_data_close(src);
    }
}

static void test_config(void) {
    saec_config cfg;
    saec_config_defaults(&cfg);
    CHECK(cfg.timesteps == 1000 && cfg.timestep_buckets == 10 &&
              strcmp(cfg.timestep_mode, "auto") == 0 && cfg.syn_t_width == 0.15 &&
              cfg.syn_t_drift == 0.5,
          "defaults");
    CHECK(saec_config_timestep_mode(&cfg, 1) == SAE_TS_BUCKET &&
              saec_config_timestep_mode(&cfg, 0) == SAE_TS_NONE,
          "auto resolves");
    CHECK(saec_config_check_timestep_mode(&cfg, 0) == SAEC_OK &&
              saec_config_check_timestep_mode(&cfg, 1) == SAEC_OK,
          "auto is always fine");
    CHECK(saec_config_set(&cfg, "timestep-mode", "separate", "test") == SAEC_OK, "set");
    saec_error_clear();
    CHECK(saec_config_check_timestep_mode(&cfg, 1) == SAEC_ERR_USAGE &&
              strstr(saec_error_message(), "'latents' = 512 is not a multiple of "
                                           "'timestep_buckets' = 10"),
          "separate, 512 latents over 10 buckets: %s", saec_error_message());
    saec_error_clear();
    CHECK(saec_config_set(&cfg, "latents", "520", "test") == SAEC_OK &&
              saec_config_set(&cfg, "k", "53", "test") == SAEC_OK &&
              saec_config_check_timestep_mode(&cfg, 1) == SAEC_ERR_USAGE &&
              strstr(saec_error_message(), "'k' = 53 exceeds the 52 latents of each bucket"),
          "separate, k 53 > 520/10: %s", saec_error_message());
    saec_error_clear();
    CHECK(saec_config_set(&cfg, "k", "52", "test") == SAEC_OK &&
              saec_config_check_timestep_mode(&cfg, 1) == SAEC_OK &&
              saec_config_check_timestep_mode(&cfg, 0) == SAEC_ERR_USAGE,
          "separate, 520 latents, k 52: fine with timesteps only");
    saec_error_clear();
    CHECK(saec_config_set(&cfg, "timestep-mode", "adaln", "test") == SAEC_OK, "set");
    CHECK(saec_config_check_timestep_mode(&cfg, 1) == SAEC_OK, "adaln is available");
    saec_error_clear();
    CHECK(saec_config_check_timestep_mode(&cfg, 0) == SAEC_ERR_USAGE &&
              strstr(saec_error_message(), "needs data with timesteps"),
          "adaln without timesteps: %s", saec_error_message());
    CHECK(saec_config_set(&cfg, "timestep_mode", "bucket", "test") == SAEC_OK, "set");
    saec_error_clear();
    CHECK(saec_config_check_timestep_mode(&cfg, 0) == SAEC_ERR_USAGE &&
              strstr(saec_error_message(), "needs data with timesteps"),
          "bucket without timesteps: %s", saec_error_message());
    CHECK(saec_config_check_timestep_mode(&cfg, 1) == SAEC_OK, "bucket with timesteps");
    CHECK(saec_config_set(&cfg, "timestep_mode", "none", "test") == SAEC_OK &&
              saec_config_check_timestep_mode(&cfg, 0) == SAEC_OK &&
              saec_config_check_timestep_mode(&cfg, 1) == SAEC_OK,
          "none");
    saec_error_clear();
    CHECK(saec_config_set(&cfg, "timestep_mode", "film", "test") == SAEC_ERR_USAGE, "bad choice");
    CHECK(saec_config_set(&cfg, "timesteps", "0", "test") == SAEC_ERR_USAGE, "timesteps 0");
    CHECK(saec_config_set(&cfg, "synthetic", "timestep", "test") == SAEC_OK, "synthetic choice");
    saec_config_defaults(&cfg);
    cfg.timesteps = 8;
    cfg.timestep_buckets = 9;
    saec_error_clear();
    CHECK(saec_config_validate(&cfg) == SAEC_ERR_USAGE &&
              strstr(saec_error_message(), "timestep_buckets"),
          "B > T: %s", saec_error_message());
    cfg.timestep_buckets = 8;
    CHECK(saec_config_validate(&cfg) == SAEC_OK, "B == T");
    saec_error_clear();
}

int main(void) {
    test_config();
    test_determinism();
    test_statistics();
    test_other_generators();
    if (n_failures) {
        fprintf(stderr, "test_timestep_data: %d check(s) failed\n", n_failures);
        return 1;
    }
    printf("test_timestep_data: all checks passed\n");
    return 0;
}
