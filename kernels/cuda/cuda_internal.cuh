/* The CUDA backend's private header: the check macros, the backend state, the extern "C" entry
 * points of every op (one definition per kernels/cuda/cuda_*.cu file) and, for .cu files only,
 * the small device helpers they share (deterministic warp/block sums, alignment tests).
 *
 * This header is also valid C (benchmarks/bench_ops.c includes it to reach the stream): the
 * device helpers sit behind __CUDACC__ and the declarations behind extern "C".
 */
#ifndef SAEC_CUDA_INTERNAL_CUH
#define SAEC_CUDA_INTERNAL_CUH

#include <stddef.h>
#include <stdint.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

/* The public headers carry no extern "C" guards of their own. */
#ifdef __cplusplus
extern "C" {
#endif
#include "saec/device.h"
#ifdef __cplusplus
}
#endif

/* ---- error checks ------------------------------------------------------------------------ */

#define SAEC_CUDA_HINT                                                                             \
    "check the GPU with nvidia-smi; rerun with CUDA_LAUNCH_BLOCKING=1 or under compute-sanitizer " \
    "to locate the failing kernel"
#define SAEC_CUDA_OOM_HINT                                                                         \
    "the GPU ran out of memory: lower --batch-size or --latents, or free the GPU (nvidia-smi)"

/* A CUDA runtime call that fails records the error (with the call's text) and returns
   SAEC_ERR_DEVICE from the enclosing function. */
#define SAEC_CUDA_CHECK(call)                                                                      \
    do {                                                                                           \
        cudaError_t saec_cuda_e_ = (call);                                                         \
        if (saec_cuda_e_ != cudaSuccess) {                                                         \
            (void)cudaGetLastError(); /* clear a non-sticky error so later calls can proceed */    \
            return saec_fail(SAEC_ERR_DEVICE,                                                      \
                             saec_cuda_e_ == cudaErrorMemoryAllocation ? SAEC_CUDA_OOM_HINT        \
                                                                       : SAEC_CUDA_HINT,           \
                             "%s failed: %s (%s:%d)", #call, cudaGetErrorString(saec_cuda_e_),     \
                             __FILE__, __LINE__);                                                  \
        }                                                                                          \
    } while (0)

/* The same for a cuBLAS / cuBLASLt call (both return cublasStatus_t). */
#define SAEC_CUBLAS_CHECK(call)                                                                    \
    do {                                                                                           \
        cublasStatus_t saec_cublas_s_ = (call);                                                    \
        if (saec_cublas_s_ != CUBLAS_STATUS_SUCCESS) {                                             \
            return saec_fail(SAEC_ERR_DEVICE,                                                      \
                             saec_cublas_s_ == CUBLAS_STATUS_ALLOC_FAILED ? SAEC_CUDA_OOM_HINT     \
                                                                          : SAEC_CUDA_HINT,        \
                             "%s failed: %s (%s:%d)", #call,                                       \
                             cublasGetStatusString(saec_cublas_s_), __FILE__, __LINE__);           \
        }                                                                                          \
    } while (0)

/* After a kernel launch: a bad configuration shows up in cudaGetLastError(). */
#define SAEC_CUDA_CHECK_LAUNCH(kernel_name)                                                        \
    do {                                                                                           \
        cudaError_t saec_cuda_e_ = cudaGetLastError();                                             \
        if (saec_cuda_e_ != cudaSuccess) {                                                         \
            return saec_fail(SAEC_ERR_DEVICE, SAEC_CUDA_HINT,                                      \
                             "launch of kernel %s failed: %s (%s:%d)", kernel_name,                \
                             cudaGetErrorString(saec_cuda_e_), __FILE__, __LINE__);                \
        }                                                                                          \
    } while (0)

/* Argument validation, as on the CPU (SAEC_CPU_REQUIRE): cheap host-side checks at the top of
   an op, no sync. A failure is a bug in the caller. */
#define SAEC_CUDA_REQUIRE(op, cond)                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",            \
                             "cuda op %s: invalid arguments (%s)", (op), #cond);                   \
    } while (0)

/* ---- backend state ----------------------------------------------------------------------- */

/* One remembered cuBLASLt heuristic answer: the problem it was asked for and its algorithm. */
typedef struct {
    int valid;
    int trans_a, trans_b, has_bias, tf32;
    int64_t M, N, K, lda, ldb, ldc;
    uint32_t align_a, align_b, align_c, align_bias;
    int fused_bias; /* 1: the bias rides in the epilogue; 0: a separate bias-add kernel */
    int use_lt;     /* 0: cuBLASLt found nothing, the legacy cublasSgemm path is used */
    cublasLtMatmulAlgo_t algo;
} saec_cuda_gemm_plan;

#define SAEC_CUDA_GEMM_PLANS 32
#define SAEC_CUDA_STAGING_CHUNK ((size_t)16 << 20) /* bytes per pinned upload staging buffer */

typedef struct saec_cuda_state {
    int device;                 /* CUDA ordinal */
    int sm_count;               /* multiprocessors */
    int cc_major, cc_minor;     /* compute capability */
    size_t smem_optin;          /* max dynamic shared memory per block after opt-in, bytes */
    size_t l2_bytes;            /* L2 cache size */
    cudaStream_t stream;        /* every op of the backend runs on this one stream */
    cublasHandle_t cublas;      /* legacy handle: fallback GEMM path */
    cublasLtHandle_t lt;        /* cuBLASLt handle: the GEMM path */
    void *lt_workspace;         /* [lt_workspace_bytes] device */
    size_t lt_workspace_bytes;
    int allow_tf32;             /* 0 (default): exact FP32 GEMMs; 1: TF32 tensor cores */
    void *scratch;              /* [scratch_bytes] device; grows, never shrinks */
    size_t scratch_bytes;
    void *staging[2];           /* pinned host buffers for uploads, double-buffered */
    size_t staging_bytes[2];
    cudaEvent_t staging_free[2];/* recorded after the copy out of staging[i] was queued */
    int staging_next;
    saec_cuda_gemm_plan plans[SAEC_CUDA_GEMM_PLANS];
    int plan_next;              /* round-robin replacement */
} saec_cuda_state;

#ifdef __cplusplus
extern "C" {
#endif

/* ---- backend services (cuda_backend.cu) ---- */
static inline saec_cuda_state *saec_cuda_state_of(saec_dev *dev) {
    return (saec_cuda_state *)dev->impl;
}
cudaStream_t saec_cuda_stream(saec_dev *dev);
/* A device scratch buffer of at least `bytes`, valid until the next call of this function. It
   grows (with one stream synchronisation) only when a larger size is asked for than ever
   before; ops carve it up, and since all ops run on one stream, reuse across ops is safe. */
int saec_cuda_scratch(saec_dev *dev, size_t bytes, void **out);
/* Allow TF32 tensor-core GEMMs (off by default so that CPU and GPU agree to FP32 rounding). The
   environment variable SAEC_CUDA_TF32=1 turns it on at device open. */
void saec_cuda_set_tf32(saec_dev *dev, int allow);

/* ---- the ops (signatures as in include/saec/ops.h) ---- */
/* cuda_dense.cu */
int saec_cuda_gemm(saec_dev *dev, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                   float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                   float beta, float *C, int64_t ldc, const float *bias);
int saec_cuda_scale_add_rows(saec_dev *dev, const float *in, float *out, int64_t n, int64_t d,
                             float scale, const float *v, float alpha);
int saec_cuda_axpby(saec_dev *dev, int64_t n, float alpha, const float *x, float beta,
                    const float *y, float *out);
int saec_cuda_col_sum(saec_dev *dev, const float *x, int64_t n, int64_t d, float alpha,
                      float beta, float *out);
int saec_cuda_relu(saec_dev *dev, float *x, int64_t n);
int saec_cuda_relu_backward(saec_dev *dev, const float *act, float *grad, int64_t n);
/* cuda_topk.cu */
int saec_cuda_topk_rows(saec_dev *dev, const float *x, int64_t n, int64_t m, int k,
                        const uint8_t *mask, int32_t *idx, float *val);
/* cuda_sparse.cu */
int saec_cuda_sparse_decode(saec_dev *dev, const int32_t *idx, const float *val, const float *W,
                            const float *bias, int64_t n, int k, int64_t m, int64_t d,
                            int accumulate, float *out);
int saec_cuda_sparse_row_dots(saec_dev *dev, const float *g, const int32_t *idx, const float *W,
                              int64_t n, int k, int64_t m, int64_t d, float *out);
int saec_cuda_sparse_outer_accum(saec_dev *dev, const int32_t *idx, const float *coef,
                                 const float *X, int64_t n, int k, int64_t m, int64_t d,
                                 float *dW, float *db);
/* cuda_reduce.cu */
int saec_cuda_recon_loss_grad(saec_dev *dev, const float *x, const float *xhat, const float *mu,
                              int64_t n, int64_t d, float grad_scale, double *stats,
                              float *grad);
int saec_cuda_recon_grad(saec_dev *dev, const float *x, const float *xhat, int64_t n, int64_t d,
                         float grad_scale, const double *stats, float *grad);
int saec_cuda_sum_squares(saec_dev *dev, const float *x, int64_t n, int accumulate, double *out);
int saec_cuda_count_positive(saec_dev *dev, const float *x, int64_t n, int accumulate,
                             double *out);
int saec_cuda_geometric_median(saec_dev *dev, const float *x, int64_t n, int64_t d, int iters,
                               float *scratch, float *out);
/* cuda_optim.cu */
int saec_cuda_project_rows_grad(saec_dev *dev, const float *W, float *G, int64_t m, int64_t d);
int saec_cuda_normalize_rows(saec_dev *dev, float *W, int64_t m, int64_t d);
int saec_cuda_adamw(saec_dev *dev, float *param, const float *grad, float *m1, float *m2,
                    int64_t n, saec_adamw_args args, const double *grad_sumsq);
/* The decoder's whole update in one pass over each row of W [m, d] (an optional fusion of
   project_rows_grad + adamw + normalize_rows): for each row, remove from G_i its component along
   W_i, scale by the clip coefficient, AdamW-update W_i, m1_i, m2_i, then renormalise W_i.
   G is not modified. grad_sumsq must already be the squared global norm of the projected
   gradients (as in the unfused sequence). W, G, m1, m2 [m, d].
   Floor: reads 4*m*d*4, writes 3*m*d*4 bytes; ~20*m*d FLOPs. */
int saec_cuda_adamw_unit_rows(saec_dev *dev, float *W, const float *G, float *m1, float *m2,
                              int64_t m, int64_t d, saec_adamw_args args,
                              const double *grad_sumsq);
/* cuda_latents.cu */
int saec_cuda_track_fired(saec_dev *dev, const int32_t *idx, const float *val, int64_t n, int k,
                          int64_t m, int64_t *since_fired, int64_t *fire_count,
                          int64_t dead_after, uint8_t *dead_mask, double *dead_count);
int saec_cuda_track_fired_dense(saec_dev *dev, const float *val, int64_t n, int64_t m,
                                int64_t *since_fired, int64_t *fire_count, int64_t dead_after,
                                uint8_t *dead_mask, double *dead_count);
int saec_cuda_dead_latents_update(saec_dev *dev, int64_t *since_fired, int64_t m, int64_t add,
                                  int64_t dead_after, uint8_t *dead_mask, double *dead_count);
/* cuda_variants.cu */
int saec_cuda_batch_topk(saec_dev *dev, const float *x, int64_t n, int64_t m, int64_t keep,
                         float *f, float *threshold);
int saec_cuda_jumprelu(saec_dev *dev, const float *pre, int64_t n, int64_t m, const float *theta,
                       int64_t stride, int theta_is_log, float *f);
int saec_cuda_jumprelu_backward(saec_dev *dev, const float *pre, const float *log_theta, int64_t n,
                                int64_t m, float bandwidth, float l0_coef, float *df,
                                float *dlog_theta);
int saec_cuda_l1_penalty(saec_dev *dev, const float *f, const float *W, int64_t n, int64_t m,
                         int64_t d, float coef, float *dpre, float *dW, double *penalty);
int saec_cuda_atm_stats(saec_dev *dev, const float *f, const float *dfn, const double *stats,
                        const float *W, int64_t n, int64_t m, int64_t d, float beta, float *a,
                        float *q, float *r);
int saec_cuda_atm_mask(saec_dev *dev, const float *a, const float *q, const float *r, int64_t m,
                       const float weights[3], float c, float rate, uint64_t seed, uint64_t counter,
                       float *keep);
int saec_cuda_scale_cols(saec_dev *dev, float *x, int64_t n, int64_t m, const float *scale);
int saec_cuda_silu(saec_dev *dev, const float *x, int64_t n, float *y);
int saec_cuda_silu_backward(saec_dev *dev, const float *x, const float *dy, int64_t n, float *dx);
/* cuda_grouping.cu */
int saec_cuda_group_count(saec_dev *dev, const int32_t *keys, int64_t n_items, int n_groups,
                          int32_t *counts);
int saec_cuda_exclusive_scan(saec_dev *dev, const int32_t *counts, int n_groups,
                             int32_t *offsets);
int saec_cuda_group_permute(saec_dev *dev, const int32_t *keys, int64_t n_items, int n_groups,
                            const int32_t *offsets, int32_t *perm, int32_t *inv);
int saec_cuda_gather_rows(saec_dev *dev, const float *src, const int32_t *perm, int64_t n_out,
                          int r, int64_t d, float *dst);
int saec_cuda_scatter_rows(saec_dev *dev, const float *src, const int32_t *inv, const float *w,
                           int64_t n_tokens, int r, int64_t d, int accumulate, float *out);
int saec_cuda_grouped_gemm(saec_dev *dev, int trans_b, int n_groups, const int32_t *offsets,
                           int64_t N, int64_t K, float alpha, const float *A, const float *B,
                           float beta, float *C, const float *bias);
int saec_cuda_modulate_encode(saec_dev *dev, const float *xc, const int32_t *bucket,
                              const float *scale, const float *shift, int n_buckets, int64_t n,
                              int64_t d, int64_t m, const float *W_enc_t, const float *b_enc,
                              float *u, float *pre);
int saec_cuda_modulate_backward(saec_dev *dev, const float *dU, const float *xc,
                                const int32_t *bucket, const float *scale, int n_buckets, int64_t n,
                                int64_t d, float *dxc, float *dscale, float *dshift);
int saec_cuda_grouped_gemm_wgrad(saec_dev *dev, int n_groups, const int32_t *offsets, int64_t K,
                                 int64_t N, float alpha, const float *A, const float *C, float beta,
                                 float *dB);
int saec_cuda_grouped_col_sum(saec_dev *dev, int n_groups, const int32_t *offsets, int64_t N,
                              const float *C, float alpha, float beta, float *out);

#ifdef __cplusplus
}
#endif

/* ---- helpers shared by the .cu files ------------------------------------------------------ */
#ifdef __CUDACC__

/* Carve `bytes` (aligned to 256) off a scratch cursor. */
static inline void *saec_cuda_carve(char **cursor, size_t bytes) {
    void *p = *cursor;
    *cursor += (bytes + 255) & ~(size_t)255;
    return p;
}
static inline size_t saec_cuda_round256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

static inline int saec_cuda_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Blocks for a grid-stride loop over `work` items: enough to fill the GPU, at least 1. */
static inline unsigned saec_cuda_blocks(int64_t work, int block, int sm_count) {
    int64_t b = (work + block - 1) / block;
    int64_t cap = (int64_t)sm_count * 32;
    if (b > cap) b = cap;
    if (b < 1) b = 1;
    return (unsigned)b;
}

/* Threads per block for a kernel that gives one block to each row of `cols` (vector) columns:
   a multiple of 32 between 32 and `max_threads`, chosen so that every thread makes the same
   number of passes over the row where possible (d = 2304: 576 float4 = 3 passes of 192). */
static inline int saec_cuda_row_threads(int64_t cols, int max_threads) {
    if (cols < 1) cols = 1;
    int64_t passes = (cols + max_threads - 1) / max_threads;
    int64_t t = (cols + passes - 1) / passes;
    t = (t + 31) / 32 * 32;
    if (t > max_threads) t = max_threads;
    return (int)t;
}

/* Deterministic sums: the butterfly pattern is fixed, so the result does not depend on timing. */
template <typename T> __device__ __forceinline__ T saec_warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the block, returned to every thread. blockDim.x must be a multiple of 32; s_warp
   holds 32 values. Every thread of the block must call it. */
template <typename T> __device__ __forceinline__ T saec_block_sum(T v, T *s_warp) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = saec_warp_sum(v);
    __syncthreads(); /* s_warp may still be read by a previous call */
    if (lane == 0) s_warp[warp] = v;
    __syncthreads();
    T t = lane < nwarps ? s_warp[lane] : T(0);
    return saec_warp_sum(t); /* every warp computes the same total in the same order */
}

__device__ __forceinline__ float4 saec_f4_fma(float a, float4 x, float4 acc) {
    acc.x = fmaf(a, x.x, acc.x);
    acc.y = fmaf(a, x.y, acc.y);
    acc.z = fmaf(a, x.z, acc.z);
    acc.w = fmaf(a, x.w, acc.w);
    return acc;
}

#endif /* __CUDACC__ */

#endif
