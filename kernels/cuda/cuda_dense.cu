/* Dense ops on CUDA: gemm (cuBLASLt, bias fused in the epilogue), scale_add_rows, axpby, col_sum,
 * relu, relu_backward. Elementwise kernels use 16-byte loads when every pointer is 16-byte aligned
 * (and the row length is a multiple of 4 where rows matter), scalar loads otherwise.
 */
#include <string.h>

#include "cuda_elementwise.cuh"
#include "cuda_internal.cuh"

/* ---- kernels --------------------------------------------------------------------------------- */

/* C[M, N] (row stride ldc) = [scale_c ? (beta == 0 ? 0 : beta * C) : C] + bias[N] (bias may be NULL).
   The GEMM's fallback epilogue and its K == 0 / alpha == 0 path.
   Floor: reads M*N*4 (when C is read) + N*4, writes M*N*4 bytes. */
__global__ void gemm_epilogue_kernel(float *__restrict__ C, int64_t M, int64_t N, int64_t ldc,
                                     int scale_c, float beta, const float *__restrict__ bias) {
    for (int64_t r = blockIdx.x; r < M; r += gridDim.x) {
        float *row = C + r * ldc;
        for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
            float c = scale_c ? (beta == 0.0f ? 0.0f : __fmul_rn(beta, row[j])) : row[j];
            if (bias) c = __fadd_rn(c, bias[j]);
            row[j] = c;
        }
    }
}

/* out[n, d] = in[n, d] * scale + alpha * v[d]; VEC: d % 4 == 0 and 16-byte aligned pointers.
   Products and sum rounded separately (no FMA contraction), as on the CPU: bitwise equal.
   Floor: reads n*d*4 + d*4, writes n*d*4 bytes; 2*n*d FLOPs. */
template <bool VEC>
__global__ void scale_add_rows_kernel(const float *in, float *out, int64_t n, int64_t d, float scale,
                                      const float *__restrict__ v, float alpha) {
    if (VEC) {
        const int64_t d4 = d / 4;
        for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
            const float4 *src = reinterpret_cast<const float4 *>(in + r * d);
            float4 *dst = reinterpret_cast<float4 *>(out + r * d);
            for (int64_t c = threadIdx.x; c < d4; c += blockDim.x) {
                float4 a = src[c];
                float4 o;
                if (v) {
                    float4 b = reinterpret_cast<const float4 *>(v)[c];
                    o.x = __fadd_rn(__fmul_rn(a.x, scale), __fmul_rn(alpha, b.x));
                    o.y = __fadd_rn(__fmul_rn(a.y, scale), __fmul_rn(alpha, b.y));
                    o.z = __fadd_rn(__fmul_rn(a.z, scale), __fmul_rn(alpha, b.z));
                    o.w = __fadd_rn(__fmul_rn(a.w, scale), __fmul_rn(alpha, b.w));
                } else {
                    o.x = a.x * scale;
                    o.y = a.y * scale;
                    o.z = a.z * scale;
                    o.w = a.w * scale;
                }
                dst[c] = o;
            }
        }
    } else {
        for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
            const float *src = in + r * d;
            float *dst = out + r * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
                dst[c] = v ? __fadd_rn(__fmul_rn(src[c], scale), __fmul_rn(alpha, v[c]))
                           : src[c] * scale;
        }
    }
}

/* out[n] = alpha * x + beta * y (y NULL: alpha * x).  Floor: reads 2*n*4, writes n*4 bytes. */
__global__ void axpby_kernel(int64_t n, float alpha, const float *x, float beta, const float *y,
                             float *out, int vec) {
    if (y) {
        auto ax_by = [=](float a, float b) {
            return __fadd_rn(__fmul_rn(alpha, a), __fmul_rn(beta, b));
        };
        saec_ew_map(n, vec, out, ax_by, x, y);
    } else {
        auto ax = [=](float a) { return alpha * a; };
        saec_ew_map(n, vec, out, ax, x);
    }
}

/* Column sums, pass 1: block (32, 8) sums 32 columns over one chunk of rows in double, in a fixed
   order. With one chunk it finishes: out = beta*out + alpha*sum; else writes partial[chunk, d].
   Floor: reads n*d*4 bytes; n*d FLOPs. */
__global__ void col_sum_partial_kernel(const float *__restrict__ x, int64_t n, int64_t d,
                                       int64_t rows_per_chunk, int nchunks, float alpha,
                                       float beta, double *__restrict__ partial,
                                       float *__restrict__ out) {
    __shared__ double s[8][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t col = (int64_t)blockIdx.x * 32 + tx;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
    int64_t r1 = r0 + rows_per_chunk;
    if (r1 > n) r1 = n;
    double acc = 0.0;
    if (col < d)
        for (int64_t r = r0 + ty; r < r1; r += 8) acc += (double)x[r * d + col];
    s[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && col < d) {
        double t = 0.0;
#pragma unroll
        for (int y = 0; y < 8; y++) t += s[y][tx];
        if (nchunks == 1) {
            /* beta == 0 does not read out (BLAS rule, as on the CPU) */
            const double prev = beta == 0.0f ? 0.0 : (double)beta * out[col];
            out[col] = (float)(prev + (double)alpha * t);
        } else {
            partial[(int64_t)blockIdx.y * d + col] = t;
        }
    }
}

/* Column sums, pass 2: out[d] = beta*out + alpha * Σ_chunks partial[chunk, d] (fixed order).
   Floor: reads nchunks*d*8, writes d*4 bytes. */
__global__ void col_sum_final_kernel(const double *__restrict__ partial, int nchunks, int64_t d,
                                     float alpha, float beta, float *__restrict__ out) {
    for (int64_t col = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; col < d;
         col += (int64_t)gridDim.x * blockDim.x) {
        double t = 0.0;
        for (int c = 0; c < nchunks; c++) t += partial[(int64_t)c * d + col];
        const double prev = beta == 0.0f ? 0.0 : (double)beta * out[col];
        out[col] = (float)(prev + (double)alpha * t);
    }
}

/* x = max(x, 0) in place.  Floor: reads and writes n*4 bytes. */
__global__ void relu_kernel(float *x, int64_t n, int vec) {
    auto relu = [](float a) { return a > 0.0f ? a : 0.0f; };
    saec_ew_map(n, vec, x, relu, x);
}

/* grad *= (act > 0).  Floor: reads 2*n*4, writes n*4 bytes. */
__global__ void relu_backward_kernel(const float *__restrict__ act, float *grad, int64_t n,
                                     int vec) {
    auto gate = [](float a, float g) { return a > 0.0f ? g : 0.0f; };
    saec_ew_map(n, vec, grad, gate, act, grad);
}

/* ---- gemm: cuBLASLt -------------------------------------------------------------------------- */

/* The largest power of two (4..256) dividing the address: what cuBLASLt may assume. */
static uint32_t ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 4 && (a & (uintptr_t)(al - 1))) al >>= 1;
    return al;
}

typedef struct {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
} lt_descs;

static void lt_descs_destroy(lt_descs *d) {
    if (d->lc) (void)cublasLtMatrixLayoutDestroy(d->lc);
    if (d->lb) (void)cublasLtMatrixLayoutDestroy(d->lb);
    if (d->la) (void)cublasLtMatrixLayoutDestroy(d->la);
    if (d->op) (void)cublasLtMatmulDescDestroy(d->op);
    d->op = NULL;
    d->la = d->lb = d->lc = NULL;
}

/* Row-major C[M, N] = op(A) op(B) is column-major C^T[N, M] = op(B)^T op(A)^T: cuBLASLt's "A" is
   our B and its "B" is our A, each read column-major with its own leading dimension, and the
   transposes carry over unchanged. In this view the epilogue bias (one value per row of the
   column-major D, i.e. per element of N) is exactly our bias[N] broadcast over the M rows. */
static int lt_descs_create(lt_descs *d, const saec_cuda_gemm_plan *p, const float *bias,
                           int fuse_bias) {
    memset(d, 0, sizeof *d);
    cublasComputeType_t compute = p->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    SAEC_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d->op, compute, CUDA_R_32F));
    cublasOperation_t ta = p->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = p->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    SAEC_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    SAEC_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (fuse_bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bt = CUDA_R_32F;
        SAEC_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        SAEC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                         &bt, sizeof bt));
        SAEC_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                         &bias, sizeof bias));
    }
    /* our B: [K, N] row-major = [N, K] column-major (ld ldb); transposed: stored [N, K] row-major
       = [K, N] column-major */
    uint64_t a_rows = (uint64_t)(p->trans_b ? p->K : p->N);
    uint64_t a_cols = (uint64_t)(p->trans_b ? p->N : p->K);
    uint64_t b_rows = (uint64_t)(p->trans_a ? p->M : p->K);
    uint64_t b_cols = (uint64_t)(p->trans_a ? p->K : p->M);
    SAEC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d->la, CUDA_R_32F, a_rows, a_cols, p->ldb));
    SAEC_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d->lb, CUDA_R_32F, b_rows, b_cols, p->lda));
    SAEC_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&d->lc, CUDA_R_32F, (uint64_t)p->N, (uint64_t)p->M, p->ldc));
    return SAEC_OK;
}

/* Ask cuBLASLt for an algorithm; *found = 0 when it has none for this problem. */
static int lt_heuristic(saec_cuda_state *st, const saec_cuda_gemm_plan *p, const float *bias,
                        int fuse_bias, cublasLtMatmulAlgo_t *algo, int *found) {
    *found = 0;
    lt_descs d;
    int rc = lt_descs_create(&d, p, bias, fuse_bias);
    cublasLtMatmulPreference_t pref = NULL;
    if (rc == SAEC_OK) {
        cublasStatus_t s = cublasLtMatmulPreferenceCreate(&pref);
        uint64_t ws = st->lt_workspace_bytes;
        uint32_t al_a = p->align_b, al_b = p->align_a, al_c = p->align_c; /* operands swapped */
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &ws, sizeof ws);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c);
        if (s == CUBLAS_STATUS_SUCCESS) {
            cublasLtMatmulHeuristicResult_t res;
            int returned = 0;
            memset(&res, 0, sizeof res);
            s = cublasLtMatmulAlgoGetHeuristic(st->lt, d.op, d.la, d.lb, d.lc, d.lc, pref, 1, &res,
                                               &returned);
            if (s == CUBLAS_STATUS_SUCCESS && returned > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
                *algo = res.algo;
                *found = 1;
            }
        }
        /* a refusal (NOT_SUPPORTED, ...) means "no algorithm": the caller falls back */
    }
    if (pref) (void)cublasLtMatmulPreferenceDestroy(pref);
    lt_descs_destroy(&d);
    return rc;
}

static int plan_matches(const saec_cuda_gemm_plan *a, const saec_cuda_gemm_plan *b) {
    return a->valid && a->trans_a == b->trans_a && a->trans_b == b->trans_b &&
           a->has_bias == b->has_bias && a->tf32 == b->tf32 && a->M == b->M && a->N == b->N &&
           a->K == b->K && a->lda == b->lda && a->ldb == b->ldb && a->ldc == b->ldc &&
           a->align_a == b->align_a && a->align_b == b->align_b && a->align_c == b->align_c &&
           a->align_bias == b->align_bias;
}

static int launch_gemm_epilogue(saec_cuda_state *st, float *C, int64_t M, int64_t N, int64_t ldc,
                                int scale_c, float beta, const float *bias) {
    int threads = saec_cuda_row_threads(N, 256);
    unsigned blocks = (unsigned)(M < (int64_t)st->sm_count * 16 ? M : (int64_t)st->sm_count * 16);
    gemm_epilogue_kernel<<<blocks, threads, 0, st->stream>>>(C, M, N, ldc, scale_c, beta, bias);
    SAEC_CUDA_CHECK_LAUNCH("gemm_epilogue_kernel");
    return SAEC_OK;
}

/* Floor: 2*M*N*K FLOPs; reads (M*K + K*N + M*N·[beta≠0]) * 4 bytes, writes M*N*4. */
extern "C" int saec_cuda_gemm(saec_dev *dev, int trans_a, int trans_b, int64_t M, int64_t N,
                              int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                              int64_t ldb, float beta, float *C, int64_t ldc, const float *bias) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (M <= 0 || N <= 0) return SAEC_OK;
    if (K <= 0 || alpha == 0.0f) /* BLAS semantics: A and B are not read */
        return launch_gemm_epilogue(st, C, M, N, ldc, 1, beta, bias);

    saec_cuda_gemm_plan key;
    memset(&key, 0, sizeof key);
    key.valid = 1;
    key.trans_a = trans_a ? 1 : 0;
    key.trans_b = trans_b ? 1 : 0;
    key.has_bias = bias != NULL;
    key.tf32 = st->allow_tf32;
    key.M = M;
    key.N = N;
    key.K = K;
    key.lda = lda;
    key.ldb = ldb;
    key.ldc = ldc;
    key.align_a = ptr_align(A);
    key.align_b = ptr_align(B);
    key.align_c = ptr_align(C);
    key.align_bias = bias ? ptr_align(bias) : 0;

    saec_cuda_gemm_plan *plan = NULL;
    for (int i = 0; i < SAEC_CUDA_GEMM_PLANS; i++)
        if (plan_matches(&st->plans[i], &key)) {
            plan = &st->plans[i];
            break;
        }
    if (!plan) {
        int found = 0;
        key.use_lt = 1;
        key.fused_bias = 0;
        if (bias) {
            SAEC_TRY(lt_heuristic(st, &key, bias, 1, &key.algo, &found));
            if (found) key.fused_bias = 1;
        }
        if (!found) SAEC_TRY(lt_heuristic(st, &key, bias, 0, &key.algo, &found));
        if (!found) key.use_lt = 0;
        plan = &st->plans[st->plan_next];
        st->plan_next = (st->plan_next + 1) % SAEC_CUDA_GEMM_PLANS;
        *plan = key;
    }

    if (plan->use_lt) {
        lt_descs d;
        int rc = lt_descs_create(&d, plan, bias, plan->fused_bias);
        if (rc == SAEC_OK) {
            cublasStatus_t s =
                cublasLtMatmul(st->lt, d.op, &alpha, B, d.la, A, d.lb, &beta, C, d.lc, C, d.lc,
                               &plan->algo, st->lt_workspace, st->lt_workspace_bytes, st->stream);
            if (s != CUBLAS_STATUS_SUCCESS)
                rc = saec_fail(SAEC_ERR_DEVICE, SAEC_CUDA_HINT,
                               "cublasLtMatmul(M=%lld, N=%lld, K=%lld) failed: %s (%s:%d)",
                               (long long)M, (long long)N, (long long)K, cublasGetStatusString(s),
                               __FILE__, __LINE__);
        }
        lt_descs_destroy(&d);
        SAEC_TRY(rc);
    } else {
        if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda > INT32_MAX ||
            ldb > INT32_MAX || ldc > INT32_MAX)
            return saec_fail(SAEC_ERR_DEVICE, SAEC_CUDA_HINT,
                             "no cuBLAS algorithm for a GEMM of M=%lld, N=%lld, K=%lld",
                             (long long)M, (long long)N, (long long)K);
        SAEC_CUBLAS_CHECK(cublasSgemm(st->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                      trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M, (int)K,
                                      &alpha, B, (int)ldb, A, (int)lda, &beta, C, (int)ldc));
    }
    if (bias && !(plan->use_lt && plan->fused_bias))
        return launch_gemm_epilogue(st, C, M, N, ldc, 0, 0.0f, bias);
    return SAEC_OK;
}

/* ---- launchers for the elementwise ops ------------------------------------------------------- */

extern "C" int saec_cuda_scale_add_rows(saec_dev *dev, const float *in, float *out, int64_t n,
                                        int64_t d, float scale, const float *v, float alpha) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || d <= 0) return SAEC_OK;
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(in) && saec_cuda_aligned16(out) &&
                     (!v || saec_cuda_aligned16(v));
    const int64_t cols = vec ? d / 4 : d;
    const int threads = saec_cuda_row_threads(cols, 256);
    const unsigned blocks = saec_cuda_blocks(n, 1, st->sm_count);
    if (vec)
        scale_add_rows_kernel<true><<<blocks, threads, 0, st->stream>>>(in, out, n, d, scale, v,
                                                                         alpha);
    else
        scale_add_rows_kernel<false><<<blocks, threads, 0, st->stream>>>(in, out, n, d, scale, v,
                                                                          alpha);
    SAEC_CUDA_CHECK_LAUNCH("scale_add_rows_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_axpby(saec_dev *dev, int64_t n, float alpha, const float *x, float beta,
                               const float *y, float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0) return SAEC_OK;
    /* beta == 0 does not read y (BLAS rule, as on the CPU): it may be NULL or hold garbage */
    const float *y_used = beta == 0.0f ? NULL : y;
    const int vec = saec_ew_aligned16(x, out, y_used);
    const unsigned blocks = saec_ew_blocks(n, vec, 256, st->sm_count);
    axpby_kernel<<<blocks, 256, 0, st->stream>>>(n, alpha, x, beta, y_used, out, vec);
    SAEC_CUDA_CHECK_LAUNCH("axpby_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_col_sum(saec_dev *dev, const float *x, int64_t n, int64_t d, float alpha,
                                 float beta, float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (d <= 0) return SAEC_OK;
    if (n <= 0) { /* an empty sum: out = beta * out */
        col_sum_final_kernel<<<saec_cuda_blocks(d, 256, st->sm_count), 256, 0, st->stream>>>(
            NULL, 0, d, alpha, beta, out);
        SAEC_CUDA_CHECK_LAUNCH("col_sum_final_kernel");
        return SAEC_OK;
    }
    /* Split the rows into chunks so that ~1024 blocks run; the split depends only on (n, d), so
       the summation order, hence the result, is the same on every run. */
    const int64_t col_tiles = (d + 31) / 32;
    int64_t nchunks = (1024 + col_tiles - 1) / col_tiles;
    const int64_t max_chunks = (n + 63) / 64;
    if (nchunks > max_chunks) nchunks = max_chunks;
    if (nchunks > 65535) nchunks = 65535;
    if (nchunks < 1) nchunks = 1;
    const int64_t rows_per_chunk = (n + nchunks - 1) / nchunks;
    nchunks = (n + rows_per_chunk - 1) / rows_per_chunk;
    double *partial = NULL;
    if (nchunks > 1) {
        void *s = NULL;
        SAEC_TRY(saec_cuda_scratch(dev, (size_t)nchunks * (size_t)d * sizeof(double), &s));
        partial = (double *)s;
    }
    if (col_tiles > INT32_MAX) return saec_fail(SAEC_ERR_DEVICE, NULL, "col_sum: d too large");
    dim3 grid((unsigned)col_tiles, (unsigned)nchunks), block(32, 8);
    col_sum_partial_kernel<<<grid, block, 0, st->stream>>>(x, n, d, rows_per_chunk, (int)nchunks,
                                                           alpha, beta, partial, out);
    SAEC_CUDA_CHECK_LAUNCH("col_sum_partial_kernel");
    if (nchunks > 1) {
        col_sum_final_kernel<<<saec_cuda_blocks(d, 256, st->sm_count), 256, 0, st->stream>>>(
            partial, (int)nchunks, d, alpha, beta, out);
        SAEC_CUDA_CHECK_LAUNCH("col_sum_final_kernel");
    }
    return SAEC_OK;
}

extern "C" int saec_cuda_relu(saec_dev *dev, float *x, int64_t n) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0) return SAEC_OK;
    const int vec = saec_ew_aligned16(x);
    relu_kernel<<<saec_ew_blocks(n, vec, 256, st->sm_count), 256, 0, st->stream>>>(x, n, vec);
    SAEC_CUDA_CHECK_LAUNCH("relu_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_relu_backward(saec_dev *dev, const float *act, float *grad, int64_t n) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0) return SAEC_OK;
    const int vec = saec_ew_aligned16(act, grad);
    relu_backward_kernel<<<saec_ew_blocks(n, vec, 256, st->sm_count), 256, 0, st->stream>>>(
        act, grad, n, vec);
    SAEC_CUDA_CHECK_LAUNCH("relu_backward_kernel");
    return SAEC_OK;
}
