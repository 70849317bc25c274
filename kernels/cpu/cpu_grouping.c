/* Grouping ops of the CPU backend: tokens by key (TIDE timestep buckets, MoE experts; SPEC §6–7).
 *
 * group_count → exclusive_scan → group_permute is a counting sort: serial passes over the keys
 * (a few microseconds for the batch sizes of a training step; a serial pass is also what makes
 * the permutation stable for free). The row ops (gather/scatter) run in parallel over rows; the
 * grouped GEMM (and its weight gradient) is one CBLAS call per non-empty group, issued from
 * outside any OpenMP region (OpenBLAS brings its own threads); the per-group column sums run in
 * parallel over (group, column block) tasks, each summing its rows in order. Everything is
 * deterministic: scatter_rows sums a token's items in slot order, and each product and sum is
 * rounded separately (ISO C: no FMA contraction), so the CUDA backend can reproduce the row ops bit
 * for bit.
 */
#include <limits.h>
#include <string.h>

#include "cpu_internal.h"

/* counts[g] = #{i : keys[i] == g}.  Floor: reads n_items*4 bytes. */
int saec_cpu_group_count(saec_dev *dev, const int32_t *keys, int64_t n_items, int n_groups,
                         int32_t *counts) {
    (void)dev;
    SAEC_CPU_REQUIRE("group_count", n_items >= 0 && n_items <= INT32_MAX && n_groups >= 0);
    SAEC_CPU_REQUIRE("group_count",
                     (n_items == 0 || keys != NULL) && (n_groups == 0 || counts != NULL));
    if (n_groups > 0) memset(counts, 0, (size_t)n_groups * sizeof *counts);
    for (int64_t i = 0; i < n_items; i++) {
        const int32_t g = keys[i];
        SAEC_CPU_REQUIRE("group_count", g < n_groups); /* keys < 0: no group */
        if (g >= 0) counts[g]++;
    }
    return SAEC_OK;
}

/* offsets[g + 1] = offsets[g] + counts[g], offsets[0] = 0.  Floor: (n_groups + 1)*8 bytes. */
int saec_cpu_exclusive_scan(saec_dev *dev, const int32_t *counts, int n_groups, int32_t *offsets) {
    (void)dev;
    SAEC_CPU_REQUIRE("exclusive_scan",
                     n_groups >= 0 && offsets != NULL && (n_groups == 0 || counts != NULL));
    int64_t acc = 0;
    offsets[0] = 0;
    for (int g = 0; g < n_groups; g++) {
        SAEC_CPU_REQUIRE("exclusive_scan", counts[g] >= 0);
        acc += counts[g];
        SAEC_CPU_REQUIRE("exclusive_scan", acc <= INT32_MAX);
        offsets[g + 1] = (int32_t)acc;
    }
    return SAEC_OK;
}

/* Stable counting-sort scatter: item i goes to the next free slot of its group, in item order.
   Floor: reads n_items*4 + (n_groups+1)*4, writes 2*n_items*4 bytes. */
int saec_cpu_group_permute(saec_dev *dev, const int32_t *keys, int64_t n_items, int n_groups,
                           const int32_t *offsets, int32_t *perm, int32_t *inv) {
    SAEC_CPU_REQUIRE("group_permute", n_items >= 0 && n_items <= INT32_MAX && n_groups >= 0);
    SAEC_CPU_REQUIRE("group_permute", offsets != NULL && (n_items == 0 || (keys && inv)));
    if (n_items == 0) return SAEC_OK;
    int32_t *cursor = NULL; /* [n_groups] next free position of each group */
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)(n_groups > 0 ? n_groups : 1) * sizeof *cursor,
                              (void **)&cursor));
    if (n_groups > 0) memcpy(cursor, offsets, (size_t)n_groups * sizeof *cursor);
    for (int64_t i = 0; i < n_items; i++) {
        const int32_t g = keys[i];
        SAEC_CPU_REQUIRE("group_permute", g < n_groups);
        if (g < 0) {
            inv[i] = -1;
            continue;
        }
        /* offsets must be the scan of these keys' counts: a full group is a caller bug */
        SAEC_CPU_REQUIRE("group_permute", cursor[g] < offsets[g + 1] && perm != NULL);
        const int32_t p = cursor[g]++;
        perm[p] = (int32_t)i;
        inv[i] = p;
    }
    for (int g = 0; g < n_groups; g++) /* every slot of perm was written */
        SAEC_CPU_REQUIRE("group_permute", cursor[g] == offsets[g + 1]);
    return SAEC_OK;
}

/* dst[p, :] = src[perm[p] / r, :].  Floor: reads and writes n_out*d*4 bytes. */
int saec_cpu_gather_rows(saec_dev *dev, const float *src, const int32_t *perm, int64_t n_out, int r,
                         int64_t d, float *dst) {
    (void)dev;
    SAEC_CPU_REQUIRE("gather_rows", n_out >= 0 && r >= 1 && d >= 0);
    if (n_out == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("gather_rows", src != NULL && perm != NULL && dst != NULL);
    for (int64_t p = 0; p < n_out; p++) /* cheap check, so the parallel loop cannot fail */
        SAEC_CPU_REQUIRE("gather_rows", perm[p] >= 0);
#pragma omp parallel for schedule(static) if (n_out * d >= SAEC_CPU_PAR_MIN)
    for (int64_t p = 0; p < n_out; p++)
        memcpy(dst + p * d, src + (int64_t)(perm[p] / r) * d, (size_t)d * sizeof *dst);
    return SAEC_OK;
}

/* out[t, :] = [acc ? out : 0] + Σ_j w[t*r + j] src[inv[t*r + j], :] (slot order).
   Floor: reads n_tokens*r*(8 + d*4), writes n_tokens*d*4 bytes. */
int saec_cpu_scatter_rows(saec_dev *dev, const float *src, const int32_t *inv, const float *w,
                          int64_t n_tokens, int r, int64_t d, int accumulate, float *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("scatter_rows", n_tokens >= 0 && r >= 1 && d >= 0);
    if (n_tokens == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("scatter_rows", inv != NULL && out != NULL);
#pragma omp parallel for schedule(static) if (n_tokens * r * d >= SAEC_CPU_PAR_MIN)
    for (int64_t t = 0; t < n_tokens; t++) {
        float *o = out + t * d; /* row t of out [n_tokens, d] */
        if (!accumulate) memset(o, 0, (size_t)d * sizeof *o);
        for (int j = 0; j < r; j++) {
            const int64_t item = t * r + j;
            const int32_t p = inv[item];
            if (p < 0) continue;
            const float *s = src + (int64_t)p * d; /* row p of src [n_sorted, d] */
            if (w) {
                const float wj = w[item];
                for (int64_t c = 0; c < d; c++)
                    o[c] = o[c] + wj * s[c];
            } else {
                for (int64_t c = 0; c < d; c++)
                    o[c] = o[c] + s[c];
            }
        }
    }
    return SAEC_OK;
}

/* dsrc [n_sorted, d], dw [n_items]: one item at a time (each sorted row belongs to one item, so
   the writes never meet). Floor: reads n_tokens*d*4 (+ the items' src rows with dw), writes the
   items' dsrc rows and dw. */
int saec_cpu_scatter_rows_backward(saec_dev *dev, const float *dout, const float *src,
                                   const int32_t *inv, const float *w, int64_t n_tokens, int r,
                                   int64_t d, float *dsrc, float *dw) {
    (void)dev;
    SAEC_CPU_REQUIRE("scatter_rows_backward", n_tokens >= 0 && r >= 1 && d >= 0);
    if (n_tokens == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("scatter_rows_backward", inv && (d == 0 || (dout && dsrc && (!dw || src))));
#pragma omp parallel for schedule(static) if (n_tokens * r * d >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n_tokens * r; i++) {
        const int32_t p = inv[i];
        if (p < 0) {
            if (dw) dw[i] = 0.0f;
            continue;
        }
        const float *g = dout + (i / r) * d; /* row t of dout [n_tokens, d] */
        float *ds = dsrc + (int64_t)p * d;   /* row p of dsrc [n_sorted, d] */
        const float wi = w ? w[i] : 1.0f;
        for (int64_t c = 0; c < d; c++)
            ds[c] = wi * g[c];
        if (dw) {
            const float *sp = src + (int64_t)p * d;
            double dot = 0;
            for (int64_t c = 0; c < d; c++)
                dot += (double)g[c] * sp[c];
            dw[i] = (float)dot;
        }
    }
    return SAEC_OK;
}

/* keys_out [n_items]: elementwise from keys, inv and offsets (each item reads and writes only its
   own slot: keys_out may alias keys). Floor: reads n_items*8 + the offsets, writes n_items*4. */
int saec_cpu_group_capacity(saec_dev *dev, const int32_t *keys, const int32_t *inv,
                            const int32_t *offsets, int64_t n_items, int n_groups, int64_t capacity,
                            int32_t *keys_out) {
    (void)dev;
    SAEC_CPU_REQUIRE("group_capacity", n_items >= 0 && n_groups >= 0 && capacity >= 0);
    if (n_items == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("group_capacity", keys && inv && offsets && keys_out);
    for (int64_t i = 0; i < n_items; i++) /* a key past the groups is a caller bug (contract) */
        SAEC_CPU_REQUIRE("group_capacity", keys[i] < n_groups);
#pragma omp parallel for schedule(static) if (n_items >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n_items; i++) {
        const int32_t g = keys[i];
        keys_out[i] = g >= 0 && (int64_t)inv[i] - offsets[g] < capacity ? g : -1;
    }
    return SAEC_OK;
}

/* One CBLAS GEMM per non-empty group (through saec_cpu_gemm, outside any OpenMP region).
   Floor: 2*rows*N*K FLOPs; reads rows*K*4 + n_groups*K*N*4, writes rows*N*4 bytes. */
int saec_cpu_grouped_gemm(saec_dev *dev, int trans_b, int n_groups, const int32_t *offsets,
                          int64_t N, int64_t K, float alpha, const float *A, const float *B,
                          float beta, float *C, const float *bias) {
    SAEC_CPU_REQUIRE("grouped_gemm", n_groups >= 0 && N >= 0 && K >= 0 && offsets != NULL);
    SAEC_CPU_REQUIRE("grouped_gemm", offsets[0] >= 0);
    for (int g = 0; g < n_groups; g++)
        SAEC_CPU_REQUIRE("grouped_gemm", offsets[g + 1] >= offsets[g]);
    for (int g = 0; g < n_groups; g++) {
        const int64_t row0 = offsets[g], rows = (int64_t)offsets[g + 1] - offsets[g];
        if (rows == 0) continue;
        const float *Bg = B ? B + (int64_t)g * K * N : NULL; /* [K, N], or [N, K] if trans_b */
        SAEC_TRY(saec_cpu_gemm(dev, 0, trans_b, rows, N, K, alpha, A ? A + row0 * K : NULL,
                               K > 0 ? K : 1, Bg, trans_b ? (K > 0 ? K : 1) : (N > 0 ? N : 1), beta,
                               C + row0 * N, N, bias ? bias + (int64_t)g * N : NULL));
    }
    return SAEC_OK;
}

/* The weight gradient of grouped_gemm: dB_g = alpha A[rows_g]ᵀ C[rows_g] + beta dB_g, one CBLAS
   GEMM per group (through saec_cpu_gemm, outside any OpenMP region; OpenBLAS splits the output,
   not the sum over rows, so the result is the same every run). An empty group is a GEMM with an
   empty inner dimension: dB_g = beta dB_g (0 when beta == 0, without reading dB_g).
   Floor: 2*rows*K*N FLOPs; reads rows*(K + N)*4, read-modify-writes n_groups*K*N*4 bytes. */
int saec_cpu_grouped_gemm_wgrad(saec_dev *dev, int n_groups, const int32_t *offsets, int64_t K,
                                int64_t N, float alpha, const float *A, const float *C, float beta,
                                float *dB) {
    SAEC_CPU_REQUIRE("grouped_gemm_wgrad", n_groups >= 0 && K >= 0 && N >= 0 && offsets != NULL);
    SAEC_CPU_REQUIRE("grouped_gemm_wgrad", offsets[0] >= 0);
    for (int g = 0; g < n_groups; g++)
        SAEC_CPU_REQUIRE("grouped_gemm_wgrad", offsets[g + 1] >= offsets[g]);
    if (K == 0 || N == 0 || n_groups == 0) return SAEC_OK;
    const int64_t rows_all = (int64_t)offsets[n_groups] - offsets[0];
    SAEC_CPU_REQUIRE("grouped_gemm_wgrad", dB != NULL && (rows_all == 0 || (A && C)));
    for (int g = 0; g < n_groups; g++) {
        const int64_t row0 = offsets[g], rows = (int64_t)offsets[g + 1] - offsets[g];
        /* [K, rows] x [rows, N]: A[rows_g] is [rows, K] (trans_a), C[rows_g] is [rows, N] */
        SAEC_TRY(saec_cpu_gemm(dev, 1, 0, K, N, rows, alpha, rows ? A + row0 * K : NULL, K,
                               rows ? C + row0 * N : NULL, N, beta, dB + (int64_t)g * K * N, N,
                               NULL));
    }
    return SAEC_OK;
}

/* out[g, :] = alpha Σ_{rows of g} C[row, :] + beta out[g, :]: col_sum over each group's rows
   (an empty group gets beta·out), so each column is summed in row order in double, whatever
   the thread count.  Floor: reads rows*N*4, read-modify-writes n_groups*N*4 bytes. */
int saec_cpu_grouped_col_sum(saec_dev *dev, int n_groups, const int32_t *offsets, int64_t N,
                             const float *C, float alpha, float beta, float *out) {
    SAEC_CPU_REQUIRE("grouped_col_sum", n_groups >= 0 && N >= 0 && offsets != NULL);
    SAEC_CPU_REQUIRE("grouped_col_sum", offsets[0] >= 0);
    for (int g = 0; g < n_groups; g++)
        SAEC_CPU_REQUIRE("grouped_col_sum", offsets[g + 1] >= offsets[g]);
    if (N == 0 || n_groups == 0) return SAEC_OK;
    const int64_t rows_all = (int64_t)offsets[n_groups] - offsets[0];
    SAEC_CPU_REQUIRE("grouped_col_sum", out != NULL && (rows_all == 0 || C != NULL));
    for (int g = 0; g < n_groups; g++) {
        const int64_t rows = (int64_t)offsets[g + 1] - offsets[g];
        SAEC_TRY(saec_cpu_col_sum(dev, rows ? C + (int64_t)offsets[g] * N : NULL, rows, N, alpha,
                                  beta, out + (int64_t)g * N));
    }
    return SAEC_OK;
}

/* u = xc ⊙ (1 + scale[b]) + shift[b] row by row, then pre = u W_enc_tᵀ + b_enc (one GEMM).
   u may be NULL (inference: the modulated rows go to scratch).
   Floor: 2*n*m*d FLOPs; reads n*d*4 + m*d*4, writes n*m*4 + n*d*4 bytes. */
int saec_cpu_modulate_encode(saec_dev *dev, const float *xc, const int32_t *bucket,
                             const float *scale, const float *shift, int n_buckets, int64_t n,
                             int64_t d, int64_t m, const float *W_enc_t, const float *b_enc,
                             float *u, float *pre) {
    SAEC_CPU_REQUIRE("modulate_encode", n >= 0 && d >= 0 && m >= 0 && n_buckets >= 1);
    if (n == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("modulate_encode", xc && bucket && scale && shift && (m == 0 || pre));
    for (int64_t t = 0; t < n; t++)
        SAEC_CPU_REQUIRE("modulate_encode", bucket[t] >= 0 && bucket[t] < n_buckets);
    if (!u) SAEC_TRY(saec_cpu_scratch(dev, (size_t)(n * d) * sizeof *u, (void **)&u));
#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t t = 0; t < n; t++) {
        const float *x = xc + t * d;                     /* row t of xc [n, d] */
        const float *s = scale + (int64_t)bucket[t] * d; /* [d] */
        const float *h = shift + (int64_t)bucket[t] * d; /* [d] */
        float *o = u + t * d;                            /* row t of u [n, d] */
        for (int64_t c = 0; c < d; c++) {
            const float a = 1.0f + s[c];
            o[c] = x[c] * a + h[c];
        }
    }
    return saec_cpu_gemm(dev, 0, 1, n, m, d, 1.0f, u, d > 0 ? d : 1, W_enc_t, d > 0 ? d : 1, 0.0f,
                         pre, m > 0 ? m : 1, b_enc);
}

/* Columns per task of modulate_backward (a block's rows are walked in order, cache-friendly). */
#define MB_BLOCK 64

/* The modulation's backward. Parallel over column blocks: each column's per-bucket sums are
   taken over the rows in order into double accumulators (scratch [2, n_buckets, d]) that only
   its thread touches, so the result does not depend on the thread count.
   Floor: reads 2*n*d*4 + n*4 + n_buckets*d*4, writes n*d*4, read-modify-writes
   2*n_buckets*d*4 bytes. */
int saec_cpu_modulate_backward(saec_dev *dev, const float *dU, const float *xc,
                               const int32_t *bucket, const float *scale, int n_buckets, int64_t n,
                               int64_t d, float *dxc, float *dscale, float *dshift) {
    SAEC_CPU_REQUIRE("modulate_backward", n >= 0 && d >= 0 && n_buckets >= 1);
    if (n == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("modulate_backward", dU && xc && bucket && scale && dxc && dscale && dshift);
    for (int64_t t = 0; t < n; t++)
        SAEC_CPU_REQUIRE("modulate_backward", bucket[t] >= 0 && bucket[t] < n_buckets);
    const int64_t nb = n_buckets, n_blocks = (d + MB_BLOCK - 1) / MB_BLOCK;
    double *acc = NULL; /* [2, n_buckets, d]: Σ dU ⊙ xc, then Σ dU */
    SAEC_TRY(saec_cpu_scratch(dev, sizeof(double) * (size_t)(2 * nb * d), (void **)&acc));
    memset(acc, 0, sizeof(double) * (size_t)(2 * nb * d));
#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        const int64_t c0 = blk * MB_BLOCK, c1 = c0 + MB_BLOCK < d ? c0 + MB_BLOCK : d;
        for (int64_t t = 0; t < n; t++) {
            const int64_t b = bucket[t];
            for (int64_t c = c0; c < c1; c++) {
                const float g = dU[t * d + c];
                acc[b * d + c] += (double)g * xc[t * d + c];
                acc[(nb + b) * d + c] += g;
                dxc[t * d + c] = g * (1.0f + scale[b * d + c]);
            }
        }
        for (int64_t b = 0; b < nb; b++)
            for (int64_t c = c0; c < c1; c++) {
                dscale[b * d + c] += (float)acc[b * d + c];
                dshift[b * d + c] += (float)acc[(nb + b) * d + c];
            }
    }
    return SAEC_OK;
}
