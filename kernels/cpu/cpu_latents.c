/* CPU latent bookkeeping: dead-latent tracking on sparse codes (track_fired), on dense codes
   (track_fired_dense) and after the cross-rank reduction (dead_latents_update). Integer state,
   so exact and deterministic. */
#include "cpu_internal.h"

/* Columns per task of track_fired_dense's column counts (the counters stay in L1). */
#define COL_BLOCK 64

/* After one batch of n tokens with codes (idx, val) [n, k]:
     since_fired[m] += n, then 0 for each latent that fired (val > 0, idx >= 0) in the batch;
     fire_count[m] += number of (token, slot) pairs where the latent fired (NULL: not kept) —
       the number of tokens, since a latent appears at most once per token;
     dead_mask[m] = since_fired >= dead_after;  *dead_count = Σ dead_mask.
   Floor: reads n*k*8 bytes, read-modify-writes m*(8 + 8 + 1) bytes. */
int saec_cpu_track_fired(saec_dev *dev, const int32_t *idx, const float *val, int64_t n, int k,
                         int64_t m, int64_t *since_fired, int64_t *fire_count, int64_t dead_after,
                         uint8_t *dead_mask, double *dead_count) {
    (void)dev;
    SAEC_CPU_REQUIRE("track_fired", n >= 0 && k >= 0 && m >= 1);
    SAEC_CPU_REQUIRE("track_fired", since_fired && dead_mask && dead_count);
    SAEC_CPU_REQUIRE("track_fired", n == 0 || k == 0 || (idx && val));
    for (int64_t p = 0; p < n * k; p++)
        if (idx[p] >= m)
            return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                             "cpu op track_fired: index %d at slot %lld is out of range (m = %lld)",
                             (int)idx[p], (long long)p, (long long)m);

#pragma omp parallel for schedule(static) if (m >= SAEC_CPU_PAR_MIN)
    for (int64_t j = 0; j < m; j++)
        since_fired[j] += n;
    /* Serial over the n*k pairs: cheap next to the batch's GEMMs, and free of write races. */
    for (int64_t p = 0; p < n * k; p++) {
        const int32_t t = idx[p];
        if (t < 0 || !(val[p] > 0.0f)) continue; /* empty slot, or kept but not firing */
        since_fired[t] = 0;
        if (fire_count) fire_count[t]++;
    }
    int64_t dead = 0;
#pragma omp parallel for schedule(static) reduction(+ : dead) if (m >= SAEC_CPU_PAR_MIN)
    for (int64_t j = 0; j < m; j++) {
        dead_mask[j] = since_fired[j] >= dead_after;
        dead += dead_mask[j];
    }
    *dead_count = (double)dead;
    return SAEC_OK;
}

/* track_fired for dense codes val [n, m] (fired = val > 0):
     since_fired[j] += n, then 0 when latent j fired in the batch; fire_count[j] += #rows where
     it fired (NULL: not kept); dead_mask[j] = since_fired[j] >= dead_after; *dead_count = Σ.
   Column blocks in parallel, integer counts: exact.
   Floor: reads n*m*4 bytes, read-modify-writes m*17 bytes. */
int saec_cpu_track_fired_dense(saec_dev *dev, const float *val, int64_t n, int64_t m,
                               int64_t *since_fired, int64_t *fire_count, int64_t dead_after,
                               uint8_t *dead_mask, double *dead_count) {
    (void)dev;
    SAEC_CPU_REQUIRE("track_fired_dense", n >= 0 && m >= 1);
    SAEC_CPU_REQUIRE("track_fired_dense", since_fired && dead_mask && dead_count);
    SAEC_CPU_REQUIRE("track_fired_dense", n == 0 || val);

    const int64_t n_blocks = (m + COL_BLOCK - 1) / COL_BLOCK;
    int64_t dead = 0;
#pragma omp parallel for schedule(static) reduction(+ : dead) if (n * m >= SAEC_CPU_PAR_MIN)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t c0 = b * COL_BLOCK;
        const int64_t nw = m - c0 < COL_BLOCK ? m - c0 : COL_BLOCK; /* block width */
        int64_t cnt[COL_BLOCK] = {0};                               /* [nw] rows fired */
        for (int64_t r = 0; r < n; r++) {
            const float *row = val + r * m + c0; /* val[r, c0 : c0 + nw] */
            for (int64_t j = 0; j < nw; j++)
                cnt[j] += row[j] > 0.0f;
        }
        for (int64_t j = 0; j < nw; j++) {
            const int64_t c = c0 + j;
            since_fired[c] = cnt[j] > 0 ? 0 : since_fired[c] + n;
            if (fire_count) fire_count[c] += cnt[j];
            dead_mask[c] = since_fired[c] >= dead_after;
            dead += dead_mask[c];
        }
    }
    *dead_count = (double)dead;
    return SAEC_OK;
}

/* After since_fired was min-reduced across ranks: since_fired[j] += add where since_fired[j] > 0
   (0 means the latent fired on some rank this step); dead_mask[j] = since_fired[j] >=
   dead_after; *dead_count = Σ dead_mask. Integer counts: exact for any thread count.
   Floor: read-modify-writes m*9 bytes. */
int saec_cpu_dead_latents_update(saec_dev *dev, int64_t *since_fired, int64_t m, int64_t add,
                                 int64_t dead_after, uint8_t *dead_mask, double *dead_count) {
    (void)dev;
    SAEC_CPU_REQUIRE("dead_latents_update", m >= 0 && add >= 0 && dead_count != NULL);
    SAEC_CPU_REQUIRE("dead_latents_update", m == 0 || (since_fired && dead_mask));
    int64_t dead = 0;
#pragma omp parallel for schedule(static) reduction(+ : dead) if (m >= SAEC_CPU_PAR_MIN)
    for (int64_t j = 0; j < m; j++) {
        const int64_t s = since_fired[j] > 0 ? since_fired[j] + add : since_fired[j];
        since_fired[j] = s;
        dead_mask[j] = s >= dead_after;
        dead += dead_mask[j];
    }
    *dead_count = (double)dead;
    return SAEC_OK;
}
