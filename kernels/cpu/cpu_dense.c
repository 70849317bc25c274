/* CPU dense ops: GEMM through CBLAS, and the elementwise/broadcast ops around it. */
#include <limits.h>

#include <cblas.h>

#include "cpu_internal.h"

/* C[M, N] = alpha op(A) op(B) + beta C + bias.  Floor: 2*M*N*K FLOPs. */
int saec_cpu_gemm(saec_dev *dev, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                  float *C, int64_t ldc, const float *bias) {
    (void)dev;
    SAEC_CPU_REQUIRE("gemm", M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0) return SAEC_OK;
    /* Row-major storage: A is [M, K] (or [K, M] when trans_a), B is [K, N] (or [N, K]). */
    const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
    SAEC_CPU_REQUIRE("gemm", lda >= (a_cols > 1 ? a_cols : 1) && ldb >= (b_cols > 1 ? b_cols : 1) &&
                                 ldc >= N);
    /* CBLAS takes int sizes (LP64 OpenBLAS). */
    SAEC_CPU_REQUIRE("gemm", M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX &&
                                 ldb <= INT_MAX && ldc <= INT_MAX);
    SAEC_CPU_REQUIRE("gemm", C != NULL && (K == 0 || (A != NULL && B != NULL)));

    if (K == 0) {
        /* Empty inner dimension: C = beta C. Done here because CBLAS rejects lda < 1 and some
           builds skip the beta scaling when K == 0. beta == 0 does not read C (BLAS rule). */
        for (int64_t i = 0; i < M; i++) {
            float *c = C + i * ldc; /* row i of C [M, N] */
            for (int64_t j = 0; j < N; j++)
                c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        }
    } else {
        /* Called outside any OpenMP region: OpenBLAS (pthread build) runs its own threads. */
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda,
                    B, (int)ldb, beta, C, (int)ldc);
    }

    if (bias) {
#pragma omp parallel for schedule(static) if (M * N >= SAEC_CPU_PAR_MIN)
        for (int64_t i = 0; i < M; i++) {
            float *c = C + i * ldc; /* row i of C [M, N], bias [N] */
            for (int64_t j = 0; j < N; j++)
                c[j] += bias[j];
        }
    }
    return SAEC_OK;
}

/* out[n, d] = in[n, d] * scale + alpha * v[d].  Floor: reads n*d*4 + d*4, writes n*d*4. */
int saec_cpu_scale_add_rows(saec_dev *dev, const float *in, float *out, int64_t n, int64_t d,
                            float scale, const float *v, float alpha) {
    (void)dev;
    SAEC_CPU_REQUIRE("scale_add_rows", n >= 0 && d >= 0);
    if (n == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("scale_add_rows", in != NULL && out != NULL);
#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *a = in + i * d; /* row i of in [n, d] */
        float *o = out + i * d;      /* row i of out [n, d]; may be the same row as a */
        if (v) {
            for (int64_t j = 0; j < d; j++)
                o[j] = a[j] * scale + alpha * v[j];
        } else {
            for (int64_t j = 0; j < d; j++)
                o[j] = a[j] * scale;
        }
    }
    return SAEC_OK;
}

/* out[n] = alpha x[n] + beta y[n].  Floor: reads 2*n*4, writes n*4. */
int saec_cpu_axpby(saec_dev *dev, int64_t n, float alpha, const float *x, float beta,
                   const float *y, float *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("axpby", n >= 0);
    if (n == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("axpby", x != NULL && out != NULL && (y != NULL || beta == 0.0f));
    if (beta == 0.0f) {
        /* y is not read when beta == 0 (BLAS rule): it may be NULL or hold garbage. */
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            out[i] = alpha * x[i];
    } else {
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            out[i] = alpha * x[i] + beta * y[i];
    }
    return SAEC_OK;
}

/* Columns per task of col_sum: a block's double accumulators stay in registers/L1. */
#define COL_BLOCK 64

/* out[d] = beta out[d] + alpha Σ_rows x[n, d].  Floor: reads n*d*4 bytes.
   Each column block is summed by one thread in row order (double accumulation), so the result
   does not depend on the thread count. */
int saec_cpu_col_sum(saec_dev *dev, const float *x, int64_t n, int64_t d, float alpha, float beta,
                     float *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("col_sum", n >= 0 && d >= 0);
    if (d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("col_sum", out != NULL && (n == 0 || x != NULL));
    const int64_t n_blocks = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t c0 = b * COL_BLOCK;
        const int64_t w = d - c0 < COL_BLOCK ? d - c0 : COL_BLOCK; /* block width */
        double acc[COL_BLOCK] = {0};                               /* [w] column sums */
        for (int64_t i = 0; i < n; i++) {
            const float *row = x + i * d + c0; /* x[i, c0 : c0 + w] */
            for (int64_t j = 0; j < w; j++)
                acc[j] += row[j];
        }
        for (int64_t j = 0; j < w; j++) {
            /* beta == 0 does not read out (BLAS rule): it may hold garbage. */
            const double prev = beta == 0.0f ? 0.0 : (double)beta * out[c0 + j];
            out[c0 + j] = (float)(prev + (double)alpha * acc[j]);
        }
    }
    return SAEC_OK;
}

/* x[n] = max(x, 0).  Floor: reads and writes n*4 bytes. NaN becomes 0. */
int saec_cpu_relu(saec_dev *dev, float *x, int64_t n) {
    (void)dev;
    SAEC_CPU_REQUIRE("relu", n >= 0);
    if (n == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("relu", x != NULL);
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return SAEC_OK;
}

/* grad[n] *= (act[n] > 0).  Floor: reads 2*n*4, writes n*4 bytes. */
int saec_cpu_relu_backward(saec_dev *dev, const float *act, float *grad, int64_t n) {
    (void)dev;
    SAEC_CPU_REQUIRE("relu_backward", n >= 0);
    if (n == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("relu_backward", act != NULL && grad != NULL);
    /* A select, not a multiply: a masked-out inf/NaN gradient becomes 0, not NaN. */
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        grad[i] = act[i] > 0.0f ? grad[i] : 0.0f;
    return SAEC_OK;
}
