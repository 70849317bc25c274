/* CPU ops of the SAE variants (SPEC §2–5) on dense codes [n, m] (their dead-latent tracking,
 * track_fired_dense, is in cpu_latents.c).
 *
 * Determinism: reductions over rows run per column block (rows in order within a block, one
 * block per task) and accumulate in double; reductions over latents are serial sums in double;
 * counts are integers. So every result is the same for any thread count.
 */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"
#include "saec/hash.h"

/* Columns per task of the column reductions (double accumulators stay in L1). */
#define COL_BLOCK 64

/* ---- BatchTopK ---- */

/* The float's bits as an unsigned integer: for positive floats (and +inf) the order of the bits
   is the order of the values, which the radix select below relies on. */
static inline uint32_t float_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* Radix select digits over bits 30..0 of a positive float (bit 31, the sign, is 0):
   bits 30..20 (11 bits), 19..10, 9..0. */
#define RS_BINS0 2048
#define RS_BINS 1024

/* Histogram of digit (bits >> shift) & (bins - 1) over the positive entries of x [len] whose
   bits >> (shift + width) equal `prefix` (shift + width = 31: every positive entry). */
static void radix_hist(const float *x, int64_t len, int shift, int bins, uint32_t prefix,
                       int64_t *hist) {
    const int upper = shift + (bins == RS_BINS0 ? 11 : 10); /* bits above the digit, <= 31 */
    int64_t h[RS_BINS0] = {0}; /* [bins]; local so the reduction clause has an array */
#pragma omp parallel for schedule(static) reduction(+ : h[:RS_BINS0]) if (len >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        if (!(x[i] > 0.0f)) continue; /* zero, negative or NaN */
        const uint32_t u = float_bits(x[i]);
        if ((u >> upper) != prefix) continue;
        h[(u >> shift) & (uint32_t)(bins - 1)]++;
    }
    memcpy(hist, h, (size_t)bins * sizeof *hist);
}

/* The digit holding the rank-th largest (1-based) entry of a histogram [bins], with the rank
   left inside that digit. Needs 1 <= *rank <= Σ hist. */
static uint32_t radix_pick(const int64_t *hist, int bins, int64_t *rank) {
    for (int b = bins - 1; b > 0; b--) {
        if (*rank <= hist[b]) return (uint32_t)b;
        *rank -= hist[b];
    }
    return 0;
}

/* f[i] = x[i] when x[i] > 0 and x[i] >= the keep-th largest positive entry of x [n*m] (ties at
   the cut-off all kept), else 0; *threshold = the cut-off (the smallest kept value), 0 when no
   entry is positive. With keep >= #positives every positive entry is kept and the cut-off is
   the smallest positive. NaN is never kept. The cut-off is found exactly by a 3-digit radix
   select on the float bits (integer histograms: exact for any thread count).
   x and f may alias.  Floor: reads n*m*4 (a few passes), writes n*m*4 bytes. This reference
   reads x four times (three histogram passes and the output pass). */
int saec_cpu_batch_topk(saec_dev *dev, const float *x, int64_t n, int64_t m, int64_t keep, float *f,
                        float *threshold) {
    (void)dev;
    SAEC_CPU_REQUIRE("batch_topk", n >= 0 && m >= 1 && keep >= 1);
    SAEC_CPU_REQUIRE("batch_topk", threshold != NULL && (n == 0 || (x && f)));
    const int64_t len = n * m;

    int64_t hist[RS_BINS0];
    radix_hist(x, len, 20, RS_BINS0, 0, hist);
    int64_t positives = 0;
    for (int b = 0; b < RS_BINS0; b++)
        positives += hist[b];
    if (positives == 0) {
        *threshold = 0.0f;
#pragma omp parallel for schedule(static) if (len >= SAEC_CPU_PAR_MIN)
        for (int64_t i = 0; i < len; i++)
            f[i] = 0.0f;
        return SAEC_OK;
    }
    int64_t rank = keep < positives ? keep : positives; /* the cut-off's rank, 1-based */
    const uint32_t d0 = radix_pick(hist, RS_BINS0, &rank);
    radix_hist(x, len, 10, RS_BINS, d0, hist);
    const uint32_t d1 = radix_pick(hist, RS_BINS, &rank);
    radix_hist(x, len, 0, RS_BINS, (d0 << 10) | d1, hist);
    const uint32_t d2 = radix_pick(hist, RS_BINS, &rank);
    const uint32_t cut_bits = (d0 << 20) | (d1 << 10) | d2;
    float cut;
    memcpy(&cut, &cut_bits, sizeof cut);

#pragma omp parallel for schedule(static) if (len >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        const float v = x[i];
        f[i] = v >= cut ? v : 0.0f; /* cut > 0, so v >= cut implies v > 0; NaN fails */
    }
    *threshold = cut;
    return SAEC_OK;
}

/* ---- JumpReLU ---- */

/* f[r, j] = pre[r, j] if pre[r, j] > θ_j else 0, θ_j = theta[j * stride] (stride 0: one θ), or
   expf of it when theta_is_log. NaN pre gives 0. f may alias pre.
   Floor: reads n*m*4 + m*4, writes n*m*4 bytes. */
int saec_cpu_jumprelu(saec_dev *dev, const float *pre, int64_t n, int64_t m, const float *theta,
                      int64_t stride, int theta_is_log, float *f) {
    SAEC_CPU_REQUIRE("jumprelu", n >= 0 && m >= 1 && stride >= 0 && theta != NULL);
    SAEC_CPU_REQUIRE("jumprelu", n == 0 || (pre && f));
    if (n == 0) return SAEC_OK;
    float *th; /* [m] the thresholds */
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)m * sizeof *th, (void **)&th));
    for (int64_t j = 0; j < m; j++) {
        const float t = theta[j * stride];
        th[j] = theta_is_log ? expf(t) : t;
    }
#pragma omp parallel for schedule(static) if (n * m >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *pr = pre + r * m; /* row r of pre [n, m] */
        float *fr = f + r * m;         /* row r of f [n, m] */
        for (int64_t j = 0; j < m; j++)
            fr[j] = pr[j] > th[j] ? pr[j] : 0.0f;
    }
    return SAEC_OK;
}

/* JumpReLU backward (SPEC §4), θ_j = expf(log_theta[j]), u = (pre − θ_j) / bandwidth computed
   in float, K(u) = 1[|u| < 1/2]:
     dlog_theta[j] += θ_j · Σ_r −(K(u)/bandwidth) · (θ_j · df[r, j] + l0_coef)   (sum in double)
     df[r, j] *= H(pre − θ_j)   (H: pre > θ_j, as in the forward)
   Column blocks in parallel, rows in order: deterministic.
   Floor: reads 2*n*m*4 + m*4, writes n*m*4 + m*4 bytes. */
int saec_cpu_jumprelu_backward(saec_dev *dev, const float *pre, const float *log_theta, int64_t n,
                               int64_t m, float bandwidth, float l0_coef, float *df,
                               float *dlog_theta) {
    (void)dev;
    SAEC_CPU_REQUIRE("jumprelu_backward", n >= 0 && m >= 1 && bandwidth > 0.0f);
    SAEC_CPU_REQUIRE("jumprelu_backward", log_theta && dlog_theta && (n == 0 || (pre && df)));
    if (n == 0) return SAEC_OK;
    const int64_t n_blocks = (m + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * m >= SAEC_CPU_PAR_MIN)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t c0 = b * COL_BLOCK;
        const int64_t nw = m - c0 < COL_BLOCK ? m - c0 : COL_BLOCK; /* block width */
        float th[COL_BLOCK];                                        /* [nw] θ */
        double acc[COL_BLOCK] = {0}; /* [nw] Σ_r K·(θ df + l0_coef) */
        for (int64_t j = 0; j < nw; j++)
            th[j] = expf(log_theta[c0 + j]);
        for (int64_t r = 0; r < n; r++) {
            const float *pr = pre + r * m + c0; /* pre[r, c0 : c0 + nw] */
            float *dr = df + r * m + c0;        /* df[r, c0 : c0 + nw] */
            for (int64_t j = 0; j < nw; j++) {
                const float u = (pr[j] - th[j]) / bandwidth;
                if (fabsf(u) < 0.5f) acc[j] += (double)th[j] * dr[j] + (double)l0_coef;
                dr[j] = pr[j] > th[j] ? dr[j] : 0.0f;
            }
        }
        for (int64_t j = 0; j < nw; j++)
            dlog_theta[c0 + j] =
                (float)((double)dlog_theta[c0 + j] - (double)th[j] * acc[j] / (double)bandwidth);
    }
    return SAEC_OK;
}

/* ---- norm-weighted L1 (ReLU-L1, ATM) ---- */

/* ‖W_j‖ in double for the rows of W [m, d] -> norm [m]. */
static void row_norms(const float *W, int64_t m, int64_t d, double *norm) {
#pragma omp parallel for schedule(static) if (m * d >= SAEC_CPU_PAR_MIN)
    for (int64_t j = 0; j < m; j++) {
        const float *w = W + j * d; /* row j of W [m, d] */
        double s = 0;
        for (int64_t c = 0; c < d; c++)
            s += (double)w[c] * w[c];
        norm[j] = sqrt(s);
    }
}

/* *penalty = coef · Σ_j ‖W_j‖ Σ_r f[r, j] (double); dpre[r, j] += coef·‖W_j‖ where f[r, j] > 0;
   dW[j, :] += coef · (Σ_r f[r, j]) · W_j / ‖W_j‖ for rows with a nonzero norm.
   Column sums per column block in double, the penalty a serial sum over latents.
   Floor: reads n*m*4 twice + 2*m*d*4, writes n*m*4 + m*d*4 bytes. */
int saec_cpu_l1_penalty(saec_dev *dev, const float *f, const float *W, int64_t n, int64_t m,
                        int64_t d, float coef, float *dpre, float *dW, double *penalty) {
    SAEC_CPU_REQUIRE("l1_penalty", n >= 0 && m >= 1 && d >= 0);
    SAEC_CPU_REQUIRE("l1_penalty", penalty && W && dW && (n == 0 || (f && dpre)));
    double *norm; /* [2, m]: ‖W_j‖, then Σ_r f[r, j] */
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)m * 2 * sizeof *norm, (void **)&norm));
    double *colsum = norm + m;
    row_norms(W, m, d, norm);

    const int64_t n_blocks = (m + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * m >= SAEC_CPU_PAR_MIN)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t c0 = b * COL_BLOCK;
        const int64_t nw = m - c0 < COL_BLOCK ? m - c0 : COL_BLOCK; /* block width */
        double acc[COL_BLOCK] = {0};                                /* [nw] Σ_r f */
        float g[COL_BLOCK];                                         /* [nw] coef·‖W_j‖ */
        for (int64_t j = 0; j < nw; j++)
            g[j] = (float)((double)coef * norm[c0 + j]);
        for (int64_t r = 0; r < n; r++) {
            const float *fr = f + r * m + c0; /* f[r, c0 : c0 + nw] */
            float *dr = dpre + r * m + c0;    /* dpre[r, c0 : c0 + nw] */
            for (int64_t j = 0; j < nw; j++) {
                acc[j] += fr[j];
                if (fr[j] > 0.0f) dr[j] += g[j];
            }
        }
        for (int64_t j = 0; j < nw; j++)
            colsum[c0 + j] = acc[j];
    }

#pragma omp parallel for schedule(static) if (m * d >= SAEC_CPU_PAR_MIN)
    for (int64_t j = 0; j < m; j++) {
        if (!(norm[j] > 0.0)) continue; /* zero row: no direction, no gradient */
        const float s = (float)((double)coef * colsum[j] / norm[j]);
        const float *w = W + j * d; /* row j of W [m, d] */
        float *g = dW + j * d;      /* row j of dW [m, d] */
        for (int64_t c = 0; c < d; c++)
            g[c] += s * w[c];
    }

    double total = 0;
    for (int64_t j = 0; j < m; j++)
        total += norm[j] * colsum[j];
    *penalty = (double)coef * total;
    return SAEC_OK;
}

/* ---- ATM (SPEC §5) ---- */

/* EMAs with rate beta of the per-latent batch statistics of f [n, m] (see ops.h):
     a_j: mean_r f;  q_j: mean_r 1[f > 0];
     r_j: mean_r (f² ‖W_j‖² + 2 f ⟨W_j, e_r⟩) with ⟨W_j, e_r⟩ = −(SST/2)·dfn[r, j],
          i.e. mean_r (f² ‖W_j‖² − SST · f · dfn).
   All in double, per column block, rows in order. A batch of n = 0 leaves a, q, r unchanged.
   Floor: reads 2*n*m*4 + m*d*4, read-modify-writes 3*m*4 bytes. */
int saec_cpu_atm_stats(saec_dev *dev, const float *f, const float *dfn, const double *stats,
                       const float *W, int64_t n, int64_t m, int64_t d, float beta, float *a,
                       float *q, float *r) {
    SAEC_CPU_REQUIRE("atm_stats", n >= 0 && m >= 1 && d >= 0);
    SAEC_CPU_REQUIRE("atm_stats", a && q && r && W);
    SAEC_CPU_REQUIRE("atm_stats", n == 0 || (f && dfn && stats));
    if (n == 0) return SAEC_OK;
    double *norm; /* [m] ‖W_j‖ */
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)m * sizeof *norm, (void **)&norm));
    row_norms(W, m, d, norm);
    const double sst = stats[SAEC_STAT_SST];
    const double keep_w = beta, new_w = (1.0 - (double)beta) / (double)n; /* EMA weights */

    const int64_t n_blocks = (m + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * m >= SAEC_CPU_PAR_MIN)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t c0 = b * COL_BLOCK;
        const int64_t nw = m - c0 < COL_BLOCK ? m - c0 : COL_BLOCK; /* block width */
        double sa[COL_BLOCK] = {0}, sr[COL_BLOCK] = {0};            /* [nw] Σ f, Σ recon term */
        int64_t sq[COL_BLOCK] = {0};                                /* [nw] #rows firing */
        double nsq[COL_BLOCK];                                      /* [nw] ‖W_j‖² */
        for (int64_t j = 0; j < nw; j++)
            nsq[j] = norm[c0 + j] * norm[c0 + j];
        for (int64_t row = 0; row < n; row++) {
            const float *fr = f + row * m + c0;   /* f[row, c0 : c0 + nw] */
            const float *gr = dfn + row * m + c0; /* dfn[row, c0 : c0 + nw] */
            for (int64_t j = 0; j < nw; j++) {
                const double fv = fr[j];
                sa[j] += fv;
                sq[j] += fr[j] > 0.0f;
                sr[j] += fv * fv * nsq[j] - sst * fv * (double)gr[j];
            }
        }
        for (int64_t j = 0; j < nw; j++) {
            const int64_t c = c0 + j;
            a[c] = (float)(keep_w * a[c] + new_w * sa[j]);
            q[c] = (float)(keep_w * q[c] + new_w * (double)sq[j]);
            r[c] = (float)(keep_w * r[c] + new_w * sr[j]);
        }
    }
    return SAEC_OK;
}

/* ATM mask for one step (see ops.h): importance I_j = Σ_s w_s · stat_s,j / mean(stat_s) over
   (a, q, r) (a statistic with mean 0 contributes 0), θ = mean(I) + c·std(I) (population), all
   in double with serial sums over latents; latent j is masked (keep 0) when θ > 0, I_j < θ and
   u_j < 1 − exp(−rate·(θ − I_j)/θ), u_j = saec_hash_uniform(seed, SAEC_RNG_ATM_MASK,
   counter·m + j); else keep 1. weights [3] is host memory.
   Floor: reads 3*m*4 bytes (three passes), writes m*4. */
int saec_cpu_atm_mask(saec_dev *dev, const float *a, const float *q, const float *r, int64_t m,
                      const float weights[3], float c, float rate, uint64_t seed, uint64_t counter,
                      float *keep) {
    SAEC_CPU_REQUIRE("atm_mask", m >= 1 && a && q && r && weights && keep);
    double *imp; /* [m] importances */
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)m * sizeof *imp, (void **)&imp));
    const float *stat[3] = {a, q, r};
    double scale[3]; /* w_s / mean(stat_s), or 0 */
    for (int s = 0; s < 3; s++) {
        double sum = 0;
        for (int64_t j = 0; j < m; j++)
            sum += stat[s][j];
        const double mean = sum / (double)m;
        scale[s] = mean != 0.0 ? (double)weights[s] / mean : 0.0;
    }
    double isum = 0;
    for (int64_t j = 0; j < m; j++) {
        imp[j] = scale[0] * a[j] + scale[1] * q[j] + scale[2] * r[j];
        isum += imp[j];
    }
    const double imean = isum / (double)m;
    double ss = 0;
    for (int64_t j = 0; j < m; j++)
        ss += (imp[j] - imean) * (imp[j] - imean);
    const double theta = imean + (double)c * sqrt(ss / (double)m);

#pragma omp parallel for schedule(static) if (m >= SAEC_CPU_PAR_MIN)
    for (int64_t j = 0; j < m; j++) {
        int masked = 0;
        if (theta > 0.0 && imp[j] < theta) {
            const double p = 1.0 - exp(-(double)rate * (theta - imp[j]) / theta);
            const float u =
                saec_hash_uniform(seed, SAEC_RNG_ATM_MASK, counter * (uint64_t)m + (uint64_t)j);
            masked = (double)u < p;
        }
        keep[j] = masked ? 0.0f : 1.0f;
    }
    return SAEC_OK;
}

/* x[r, j] *= scale[j] for x [n, m].  Floor: reads n*m*4 + m*4, writes n*m*4 bytes. */
int saec_cpu_scale_cols(saec_dev *dev, float *x, int64_t n, int64_t m, const float *scale) {
    (void)dev;
    SAEC_CPU_REQUIRE("scale_cols", n >= 0 && m >= 1 && scale && (n == 0 || x));
#pragma omp parallel for schedule(static) if (n * m >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        float *xr = x + r * m; /* row r of x [n, m] */
        for (int64_t j = 0; j < m; j++)
            xr[j] *= scale[j];
    }
    return SAEC_OK;
}

/* ---- small MLP (TIDE `adaln`: the timestep embedding network) ---- */

/* σ(v) = 1 / (1 + e^−v): 0 for v below about −88 (e^−v overflows to inf), 1 above about 17. */
static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* y[i] = x[i] σ(x[i]) (SiLU). y may alias x.  Floor: reads and writes n*4 bytes. */
int saec_cpu_silu(saec_dev *dev, const float *x, int64_t n, float *y) {
    (void)dev;
    SAEC_CPU_REQUIRE("silu", n >= 0 && (n == 0 || (x && y)));
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        y[i] = v * sigmoidf(v);
    }
    return SAEC_OK;
}

/* dx[i] = dy[i] σ(x[i]) (1 + x[i] (1 − σ(x[i]))), with 1 − σ(x) evaluated as σ(−x): 1 − σ in
   float loses everything past σ's last bit for x above a few units (a relative error up to
   x·2^−24 in dx, 5e-6 at x = 88); σ(−x) is accurate to an ulp or two. Left to right in that
   order (the CUDA kernel rounds the same operations). dx may alias dy.
   Floor: reads 2*n*4, writes n*4 bytes. */
int saec_cpu_silu_backward(saec_dev *dev, const float *x, const float *dy, int64_t n, float *dx) {
    (void)dev;
    SAEC_CPU_REQUIRE("silu_backward", n >= 0 && (n == 0 || (x && dy && dx)));
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i], s = sigmoidf(v), t = sigmoidf(-v); /* σ(x), 1 − σ(x) */
        dx[i] = dy[i] * s * (1.0f + v * t);
    }
    return SAEC_OK;
}
