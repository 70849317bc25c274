/* Per-bucket metrics, the latent × bucket firing table and its heat map (bucket_stats.h). */
#include "bucket_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "png.h"
#include "saec/saec.h"

int saec_bucket_stats_init(saec_bucket_stats *bs, int64_t B, int64_t m, int64_t d) {
    memset(bs, 0, sizeof *bs);
    bs->B = B, bs->m = m, bs->d = d;
    bs->sse = calloc((size_t)B, sizeof(double));
    bs->sst = calloc((size_t)B, sizeof(double));
    bs->nnz = calloc((size_t)B, sizeof(double));
    bs->tokens = calloc((size_t)B, sizeof(int64_t));
    bs->fires = calloc((size_t)(m * B), sizeof(int64_t));
    if (!bs->sse || !bs->sst || !bs->nnz || !bs->tokens || !bs->fires) {
        saec_bucket_stats_free(bs);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for per-bucket metrics");
    }
    return SAEC_OK;
}

void saec_bucket_stats_free(saec_bucket_stats *bs) {
    free(bs->sse), free(bs->sst), free(bs->nnz), free(bs->tokens), free(bs->fires);
    memset(bs, 0, sizeof *bs);
}

void saec_bucket_stats_add(saec_bucket_stats *bs, int64_t n, const float *xn, const float *xhat,
                           const float *mu, const int32_t *bucket, const int32_t *idx,
                           const float *f, int64_t kk) {
    const int64_t d = bs->d, B = bs->B;
    for (int64_t r = 0; r < n; r++) {
        const int64_t b = bucket[r];
        if (b < 0 || b >= B) continue;
        double sse = 0, sst = 0;
        for (int64_t c = 0; c < d; c++) {
            const double e = (double)xn[r * d + c] - xhat[r * d + c];
            const double v = (double)xn[r * d + c] - mu[c];
            sse += e * e, sst += v * v;
        }
        bs->sse[b] += sse, bs->sst[b] += sst;
        bs->tokens[b]++;
        for (int64_t s = 0; s < kk; s++) {
            const int32_t j = idx[r * kk + s];
            if (j < 0 || !(f[r * kk + s] > 0.0f)) continue;
            bs->nnz[b] += 1;
            bs->fires[(int64_t)j * B + b]++;
        }
    }
}

/* Firing frequency of latent j in bucket b (0 for an empty bucket). */
static double freq(const saec_bucket_stats *bs, int64_t j, int64_t b) {
    return bs->tokens[b] > 0 ? (double)bs->fires[j * bs->B + b] / (double)bs->tokens[b] : 0.0;
}

/* The bucket where latent j fires most often; *total its firings. */
static int64_t peak_bucket(const saec_bucket_stats *bs, int64_t j, double *peak, int64_t *total) {
    int64_t best = 0;
    *peak = -1, *total = 0;
    for (int64_t b = 0; b < bs->B; b++) {
        *total += bs->fires[j * bs->B + b];
        if (freq(bs, j, b) > *peak) *peak = freq(bs, j, b), best = b;
    }
    return best;
}

int64_t saec_bucket_stats_selective(const saec_bucket_stats *bs) {
    int64_t occupied = 0, count = 0;
    for (int64_t b = 0; b < bs->B; b++)
        occupied += bs->tokens[b] > 0;
    if (occupied == 0) return 0;
    for (int64_t j = 0; j < bs->m; j++) {
        double peak, mean = 0;
        int64_t total;
        peak_bucket(bs, j, &peak, &total);
        for (int64_t b = 0; b < bs->B; b++)
            mean += freq(bs, j, b);
        mean /= (double)occupied;
        if (total >= SAEC_SELECTIVE_MIN_FIRES && peak >= SAEC_SELECTIVE_RATIO * mean) count++;
    }
    return count;
}

void saec_bucket_stats_to_json(const saec_bucket_stats *bs, cJSON *obj) {
    cJSON *list = cJSON_AddArrayToObject(obj, "per_bucket");
    for (int64_t b = 0; b < bs->B; b++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "bucket", (double)b);
        cJSON_AddNumberToObject(e, "tokens", (double)bs->tokens[b]);
        if (bs->tokens[b] > 0 && bs->sst[b] > 0)
            cJSON_AddNumberToObject(e, "nmse", bs->sse[b] / bs->sst[b]);
        else
            cJSON_AddNullToObject(e, "nmse");
        if (bs->tokens[b] > 0)
            cJSON_AddNumberToObject(e, "l0", bs->nnz[b] / (double)bs->tokens[b]);
        else
            cJSON_AddNullToObject(e, "l0");
        cJSON_AddItemToArray(list, e);
    }
    cJSON_AddNumberToObject(obj, "temporally_selective_latents",
                            (double)saec_bucket_stats_selective(bs));
}

/* Ordering for the heat map: by peak bucket, then by how concentrated (peak / total). */
typedef struct {
    int64_t j, peak_b;
    double share;
} heat_row;

static int heat_cmp(const void *a, const void *b) {
    const heat_row *x = a, *y = b;
    if (x->peak_b != y->peak_b) return x->peak_b < y->peak_b ? -1 : 1;
    if (x->share != y->share) return x->share > y->share ? -1 : 1;
    return x->j < y->j ? -1 : x->j > y->j;
}

int saec_bucket_stats_write(const saec_bucket_stats *bs, const char *dir) {
    const int64_t m = bs->m, B = bs->B;
    char path[1100];
    float *table = malloc(sizeof(float) * (size_t)(m * B)); /* [m, B] */
    heat_row *rows = malloc(sizeof(heat_row) * (size_t)(m > 0 ? m : 1));
    if (!table || !rows) {
        free(table), free(rows);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing the bucket table");
    }
    int64_t shown = 0;
    for (int64_t j = 0; j < m; j++) {
        double peak, sum = 0;
        int64_t total;
        const int64_t pb = peak_bucket(bs, j, &peak, &total);
        for (int64_t b = 0; b < B; b++) {
            table[j * B + b] = (float)freq(bs, j, b);
            sum += freq(bs, j, b);
        }
        if (total > 0) rows[shown++] = (heat_row){j, pb, sum > 0 ? peak / sum : 0};
    }
    snprintf(path, sizeof path, "%s/bucket_frequency.npy", dir);
    int rc = saec_write_npy_f32(path, table, m, B);

    /* Heat map: one pixel row per latent that fired (at least 1), CELL pixels per bucket. */
    enum { CELL = 12 };
    const int64_t width = B * CELL, height = shown > 0 ? shown : 1;
    uint8_t *rgb = rc == SAEC_OK ? calloc((size_t)(width * height * 3), 1) : NULL;
    if (rc == SAEC_OK && !rgb) rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the PNG");
    if (rc == SAEC_OK) {
        qsort(rows, (size_t)shown, sizeof *rows, heat_cmp);
        for (int64_t y = 0; y < shown; y++) {
            const int64_t j = rows[y].j;
            double peak = 0;
            for (int64_t b = 0; b < B; b++)
                peak = fmax(peak, freq(bs, j, b));
            for (int64_t b = 0; b < B; b++) {
                const double v = peak > 0 ? freq(bs, j, b) / peak : 0; /* 0..1 */
                /* dark blue → yellow, readable in print */
                const uint8_t r = (uint8_t)(255 * v), g = (uint8_t)(40 + 200 * v),
                              bl = (uint8_t)(110 * (1 - v) + 30);
                for (int64_t x = b * CELL; x < (b + 1) * CELL; x++) {
                    uint8_t *p = rgb + (y * width + x) * 3;
                    p[0] = r, p[1] = g, p[2] = bl;
                }
            }
        }
        snprintf(path, sizeof path, "%s/bucket_frequency.png", dir);
        rc = saec_png_write_rgb(path, rgb, width, height);
    }
    free(rgb), free(table), free(rows);
    return rc;
}
