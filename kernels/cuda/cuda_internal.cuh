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

/* ---- the ops ---- */
/* Every op of include/saec/op_list.h as saec_cuda_NAME, defined in the cuda_*.cu file of its
   family (the list's headings name the file). */
#define SAEC_CUDA_PROTOTYPE_(ret, name, params, floor_params, floor_bytes, floor_flops)           \
    ret saec_cuda_##name params;
SAEC_OP_LIST(SAEC_CUDA_PROTOTYPE_)
#undef SAEC_CUDA_PROTOTYPE_

/* CUDA only (cuda_optim.cu), not in the op table: */
/* The decoder's whole update in one pass over each row of W [m, d] (an optional fusion of
   project_rows_grad + adamw + normalize_rows): for each row, remove from G_i its component along
   W_i, scale by the clip coefficient, AdamW-update W_i, m1_i, m2_i, then renormalise W_i.
   G is not modified. grad_sumsq must already be the squared global norm of the projected
   gradients (as in the unfused sequence). W, G, m1, m2 [m, d].
   Floor: saec_op_floor_adamw_unit_rows. */
int saec_cuda_adamw_unit_rows(saec_dev *dev, float *W, const float *G, float *m1, float *m2,
                              int64_t m, int64_t d, saec_adamw_args args,
                              const double *grad_sumsq);
/* Reads W, G, m1, m2 and writes W, m1, m2 once; ~25 FLOPs per element (the projection, AdamW and
   the renormalisation). */
static inline saec_op_floor saec_op_floor_adamw_unit_rows(double m, double d) {
    saec_op_floor f;
    f.bytes = m * d * 28;
    f.flops = 25 * m * d;
    return f;
}
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
