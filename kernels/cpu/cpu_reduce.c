/* CPU losses and reductions. Sums accumulate in double and are combined in a fixed order
 * (per-row or per-chunk partials in scratch, then a serial sum), so every result is the same
 * for any thread count. */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

/* Elements per partial sum of the 1-D reductions: the partials fit in a small scratch. */
#define REDUCE_CHUNK ((int64_t)1 << 14)

/* Columns per task of the column reductions (double accumulators stay in L1). */
#define COL_BLOCK 64

/* grad[n, d] = −2 grad_scale (x − x̂) / sst: d(grad_scale * SSE / SST)/dx̂. A batch with SST = 0
   (every row equal to μ) has no defined NMSE; its gradient is 0 rather than inf/NaN. Shared by
   recon_loss_grad and recon_grad, so both write the same bits for the same SST. */
static void nmse_grad(const float *x, const float *xhat, int64_t n, int64_t d, float grad_scale,
                      double sst, float *grad) {
    const float coef = sst > 0 ? (float)(-2.0 * (double)grad_scale / sst) : 0.0f;
#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * d, *hr = xhat + r * d; /* rows r of x, x̂ [n, d] */
        float *gr = grad + r * d;                        /* row r of grad [n, d] */
        for (int64_t c = 0; c < d; c++)
            gr[c] = coef * (xr[c] - hr[c]);
    }
}

/* Reconstruction statistics (and gradient) of the normalised MSE.
   x, xhat [n, d], mu [d] -> stats [SAEC_STAT_COUNT] doubles, grad [n, d] or NULL.
   Floor: reads 2*n*d*4 bytes (+ writes n*d*4 with grad); ~8*n*d FLOPs. This reference makes a
   second pass over x and x̂ for the gradient, which needs the batch's Σ‖x − μ‖² first. */
int saec_cpu_recon_loss_grad(saec_dev *dev, const float *x, const float *xhat, const float *mu,
                             int64_t n, int64_t d, float grad_scale, double *stats, float *grad) {
    SAEC_CPU_REQUIRE("recon_loss_grad", n >= 0 && d >= 0);
    SAEC_CPU_REQUIRE("recon_loss_grad", stats != NULL);
    stats[SAEC_STAT_SSE] = stats[SAEC_STAT_SST] = stats[SAEC_STAT_COS_SUM] = 0.0;
    if (n == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("recon_loss_grad", x && xhat && mu);

    double *row_stats; /* [n, 3]: per-row SSE, SST, cos */
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)n * 3 * sizeof(double), (void **)&row_stats));

#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * d, *hr = xhat + r * d; /* rows r of x, x̂ [n, d] */
        double sse = 0, sst = 0, dot = 0, xx = 0, hh = 0;
        for (int64_t c = 0; c < d; c++) {
            const double xv = xr[c], hv = hr[c];
            const double e = xv - hv, s = xv - (double)mu[c];
            sse += e * e;
            sst += s * s;
            dot += xv * hv;
            xx += xv * xv;
            hh += hv * hv;
        }
        row_stats[3 * r + 0] = sse;
        row_stats[3 * r + 1] = sst;
        /* cos of a zero vector is defined as 0 (no direction to agree with). */
        row_stats[3 * r + 2] = (xx > 0 && hh > 0) ? dot / sqrt(xx * hh) : 0.0;
    }
    double tot[3] = {0, 0, 0};
    for (int64_t r = 0; r < n; r++)
        for (int s = 0; s < 3; s++)
            tot[s] += row_stats[3 * r + s];
    stats[SAEC_STAT_SSE] = tot[0];
    stats[SAEC_STAT_SST] = tot[1];
    stats[SAEC_STAT_COS_SUM] = tot[2];

    if (grad) nmse_grad(x, xhat, n, d, grad_scale, tot[1], grad);
    return SAEC_OK;
}

/* The nmse gradient from given statistics (summed across ranks): the gradient recon_loss_grad
   writes, with SST from stats.  Floor: reads 2*n*d*4, writes n*d*4 bytes. */
int saec_cpu_recon_grad(saec_dev *dev, const float *x, const float *xhat, int64_t n, int64_t d,
                        float grad_scale, const double *stats, float *grad) {
    (void)dev;
    SAEC_CPU_REQUIRE("recon_grad", n >= 0 && d >= 0 && stats != NULL);
    if (n == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("recon_grad", x && xhat && grad);
    nmse_grad(x, xhat, n, d, grad_scale, stats[SAEC_STAT_SST], grad);
    return SAEC_OK;
}

/* out[0] = [accumulate ? out[0] : 0] + Σ x[n]².  Floor: reads n*4 bytes. */
int saec_cpu_sum_squares(saec_dev *dev, const float *x, int64_t n, int accumulate, double *out) {
    SAEC_CPU_REQUIRE("sum_squares", n >= 0 && out != NULL && (n == 0 || x != NULL));
    const int64_t n_chunks = (n + REDUCE_CHUNK - 1) / REDUCE_CHUNK;
    double *part = NULL; /* [n_chunks] partial sums */
    if (n_chunks > 0)
        SAEC_TRY(saec_cpu_scratch(dev, (size_t)n_chunks * sizeof(double), (void **)&part));

#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t b = 0; b < n_chunks; b++) {
        const int64_t i1 = (b + 1) * REDUCE_CHUNK < n ? (b + 1) * REDUCE_CHUNK : n;
        double s = 0;
        for (int64_t i = b * REDUCE_CHUNK; i < i1; i++)
            s += (double)x[i] * x[i];
        part[b] = s;
    }
    double total = accumulate ? out[0] : 0.0;
    for (int64_t b = 0; b < n_chunks; b++)
        total += part[b];
    out[0] = total;
    return SAEC_OK;
}

/* out[0] = [accumulate ? out[0] : 0] + #{i : x[i] > 0}.  Floor: reads n*4 bytes.
   Integer counts: exact, so any reduction order gives the same result. */
int saec_cpu_count_positive(saec_dev *dev, const float *x, int64_t n, int accumulate, double *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("count_positive", n >= 0 && out != NULL && (n == 0 || x != NULL));
    int64_t count = 0;
#pragma omp parallel for schedule(static) reduction(+ : count) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        count += x[i] > 0.0f;
    out[0] = (accumulate ? out[0] : 0.0) + (double)count;
    return SAEC_OK;
}

/* y[d] = Σ_i w[i] x[i, :] / Σ_i w[i] (w [n] or NULL for the plain mean), in double.
   Column blocks, rows in order within a block: independent of the thread count. */
static void weighted_col_mean(const float *x, int64_t n, int64_t d, const float *w, double *y) {
    double wsum = 0;
    for (int64_t i = 0; i < n; i++)
        wsum += w ? (double)w[i] : 1.0;
    const int64_t n_blocks = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t c0 = b * COL_BLOCK;
        const int64_t nw = d - c0 < COL_BLOCK ? d - c0 : COL_BLOCK; /* block width */
        double acc[COL_BLOCK] = {0};                                /* [nw] */
        for (int64_t i = 0; i < n; i++) {
            const double wi = w ? (double)w[i] : 1.0;
            const float *row = x + i * d + c0; /* x[i, c0 : c0 + nw] */
            for (int64_t j = 0; j < nw; j++)
                acc[j] += wi * row[j];
        }
        for (int64_t j = 0; j < nw; j++)
            y[c0 + j] = acc[j] / wsum;
    }
}

/* Geometric median of the rows of x [n, d] -> out [d]: Weiszfeld iterations from the mean.
   Each iteration weights row i by 1 / max(‖x_i − y‖, 1e-8) (the clamp keeps a row that
   coincides with the estimate finite) and stops after `iters` iterations or when the estimate
   moves less than 1e-6 of its norm. scratch [n] floats holds the weights.
   Floor per iteration: reads 2*n*d*4 bytes, ~6*n*d FLOPs. */
int saec_cpu_geometric_median(saec_dev *dev, const float *x, int64_t n, int64_t d, int iters,
                              float *scratch, float *out) {
    SAEC_CPU_REQUIRE("geometric_median", n >= 1 && d >= 1 && iters >= 0);
    SAEC_CPU_REQUIRE("geometric_median", x && scratch && out);
    double *y; /* [2, d]: the estimate and the next one */
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)2 * (size_t)d * sizeof(double), (void **)&y));
    double *y_next = y + d;

    weighted_col_mean(x, n, d, NULL, y);
    for (int it = 0; it < iters; it++) {
#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            const float *row = x + i * d; /* row i of x [n, d] */
            double s = 0;
            for (int64_t c = 0; c < d; c++) {
                const double e = row[c] - y[c];
                s += e * e;
            }
            const double dist = sqrt(s);
            scratch[i] = (float)(1.0 / (dist > 1e-8 ? dist : 1e-8));
        }
        weighted_col_mean(x, n, d, scratch, y_next);
        double move = 0, norm = 0;
        for (int64_t c = 0; c < d; c++) {
            move += (y_next[c] - y[c]) * (y_next[c] - y[c]);
            norm += y_next[c] * y_next[c];
        }
        memcpy(y, y_next, (size_t)d * sizeof *y);
        if (sqrt(move) <= 1e-6 * sqrt(norm)) break;
    }
    for (int64_t c = 0; c < d; c++)
        out[c] = (float)y[c];
    return SAEC_OK;
}
