/* Optimizer and decoder-constraint ops on CUDA: project_rows_grad, normalize_rows, adamw, and the
 * optional fused decoder update saec_cuda_adamw_unit_rows. Row ops give one block to each row and
 * reduce in double with a fixed butterfly (deterministic); AdamW is elementwise with float4 loads.
 * The clip coefficient is computed on the device from *grad_sumsq: no host synchronisation.
 */
#include <math.h>
#include <string.h>

#include "cuda_elementwise.cuh"
#include "cuda_internal.cuh"

/* ---- device helpers -------------------------------------------------------------------------- */

/* The clip coefficient, as on the CPU: max_grad_norm / ‖g‖ when ‖g‖ > max_grad_norm > 0, else 1. */
__device__ __forceinline__ float adamw_clip(const double *grad_sumsq, float max_grad_norm) {
    double clip = 1.0;
    if (max_grad_norm > 0.0f && grad_sumsq) {
        const double norm = sqrt(*grad_sumsq);
        if (norm > (double)max_grad_norm) clip = (double)max_grad_norm / norm;
    }
    return (float)clip;
}

/* One AdamW element: the CPU's formula in the CPU's operation order, each step rounded on its own
   (the _rn intrinsics keep nvcc from contracting into FMAs), so both backends agree bit for bit:
   m1 = b1 m1 + (1 − b1) g;  m2 = b2 m2 + (1 − b2) g g;  p −= lr (wd p + (m1/bc1) / (√(m2/bc2) + eps)). */
__device__ __forceinline__ void adamw_elem(float &p, float g, float &m1, float &m2, float b1,
                                           float b2, float eps, float lr, float wd, float bc1,
                                           float bc2) {
    const float m = __fadd_rn(__fmul_rn(b1, m1), __fmul_rn(1.0f - b1, g));
    const float v = __fadd_rn(__fmul_rn(b2, m2), __fmul_rn(__fmul_rn(1.0f - b2, g), g));
    m1 = m;
    m2 = v;
    const float step = __fdiv_rn(__fdiv_rn(m, bc1), __fadd_rn(__fsqrt_rn(__fdiv_rn(v, bc2)), eps));
    p = __fsub_rn(p, __fmul_rn(lr, __fadd_rn(__fmul_rn(wd, p), step)));
}

/* ---- kernels --------------------------------------------------------------------------------- */

/* G_i -= (⟨G_i, W_i⟩ / ‖W_i‖²) W_i for each row with ‖W_i‖ > 0: one block per row, the row read
   twice (the second time from L1/L2).  W, G [m, d].
   Floor: reads 2*m*d*4, writes m*d*4 bytes; 6*m*d FLOPs. */
template <bool VEC>
__global__ void project_rows_grad_kernel(const float *__restrict__ W, float *__restrict__ G,
                                         int64_t m, int64_t d) {
    __shared__ double s_warp[32];
    const int64_t cols = VEC ? d / 4 : d;
    for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
        double gw = 0, ww = 0;
        if (VEC) {
            const float4 *w4 = reinterpret_cast<const float4 *>(W + r * d);
            const float4 *g4 = reinterpret_cast<const float4 *>(G + r * d);
            for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
                const float4 w = w4[c], g = g4[c];
                gw += (double)g.x * w.x + (double)g.y * w.y + (double)g.z * w.z + (double)g.w * w.w;
                ww += (double)w.x * w.x + (double)w.y * w.y + (double)w.z * w.z + (double)w.w * w.w;
            }
        } else {
            const float *w = W + r * d, *g = G + r * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
                gw += (double)g[c] * w[c];
                ww += (double)w[c] * w[c];
            }
        }
        gw = saec_block_sum(gw, s_warp);
        ww = saec_block_sum(ww, s_warp);
        if (ww <= 0) continue; /* a zero row has no direction to project out (uniform branch) */
        const double a = gw / ww;
        if (VEC) {
            const float4 *w4 = reinterpret_cast<const float4 *>(W + r * d);
            float4 *g4 = reinterpret_cast<float4 *>(G + r * d);
            for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
                const float4 w = w4[c];
                float4 g = g4[c];
                g.x = (float)(g.x - a * w.x);
                g.y = (float)(g.y - a * w.y);
                g.z = (float)(g.z - a * w.z);
                g.w = (float)(g.w - a * w.w);
                g4[c] = g;
            }
        } else {
            const float *w = W + r * d;
            float *g = G + r * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) g[c] = (float)(g[c] - a * w[c]);
        }
    }
}

/* W_i /= ‖W_i‖ for each row with ‖W_i‖ > 0: one block per row.  W [m, d].
   Floor: reads and writes m*d*4 bytes; 3*m*d FLOPs. */
template <bool VEC>
__global__ void normalize_rows_kernel(float *__restrict__ W, int64_t m, int64_t d) {
    __shared__ double s_warp[32];
    const int64_t cols = VEC ? d / 4 : d;
    for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
        double ss = 0;
        if (VEC) {
            const float4 *w4 = reinterpret_cast<const float4 *>(W + r * d);
            for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
                const float4 w = w4[c];
                ss += (double)w.x * w.x + (double)w.y * w.y + (double)w.z * w.z + (double)w.w * w.w;
            }
        } else {
            const float *w = W + r * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) ss += (double)w[c] * w[c];
        }
        ss = saec_block_sum(ss, s_warp);
        if (ss <= 0) continue; /* a zero row stays zero */
        const double inv = 1.0 / sqrt(ss);
        if (VEC) {
            float4 *w4 = reinterpret_cast<float4 *>(W + r * d);
            for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
                float4 w = w4[c];
                w.x = (float)(w.x * inv);
                w.y = (float)(w.y * inv);
                w.z = (float)(w.z * inv);
                w.w = (float)(w.w * inv);
                w4[c] = w;
            }
        } else {
            float *w = W + r * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) w[c] = (float)(w[c] * inv);
        }
    }
}

/* AdamW over n parameters with the gradient clipped by the device-side global norm.
   param, grad, m1, m2 [n].  Floor: reads 4*n*4, writes 3*n*4 bytes; ~15*n FLOPs. */
__global__ void adamw_kernel(float *__restrict__ param, const float *__restrict__ grad,
                             float *__restrict__ m1, float *__restrict__ m2, int64_t n, float b1,
                             float b2, float eps, float lr, float wd, float bc1, float bc2,
                             float max_grad_norm, const double *__restrict__ grad_sumsq, int vec) {
    const float clip = adamw_clip(grad_sumsq, max_grad_norm);
    auto step = [=](float g, float &p, float &a, float &v) {
        adamw_elem(p, __fmul_rn(g, clip), a, v, b1, b2, eps, lr, wd, bc1, bc2);
    };
    saec_ew_each(n, vec, grad, step, param, m1, m2);
}

/* The fused decoder update, one block per row: project G_i off W_i, clip, AdamW on W_i, then
   renormalise W_i (the row is re-read from L1/L2 by the thread that wrote it).
   W, G, m1, m2 [m, d].  Floor: reads 4*m*d*4, writes 3*m*d*4 bytes; ~25*m*d FLOPs. */
__global__ void adamw_unit_rows_kernel(float *__restrict__ W, const float *__restrict__ G,
                                       float *__restrict__ m1, float *__restrict__ m2, int64_t m,
                                       int64_t d, float b1, float b2, float eps, float lr, float wd,
                                       float bc1, float bc2, float max_grad_norm,
                                       const double *__restrict__ grad_sumsq) {
    __shared__ double s_warp[32];
    const float clip = adamw_clip(grad_sumsq, max_grad_norm);
    for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
        float *w = W + r * d, *a = m1 + r * d, *v = m2 + r * d;
        const float *g = G + r * d;
        double gw = 0, ww = 0;
        for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
            gw += (double)g[c] * w[c];
            ww += (double)w[c] * w[c];
        }
        gw = saec_block_sum(gw, s_warp);
        ww = saec_block_sum(ww, s_warp);
        const double proj = ww > 0 ? gw / ww : 0.0;
        double ss = 0;
        for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
            float p = w[c], mm = a[c], vv = v[c];
            const float gp = ww > 0 ? (float)(g[c] - proj * p) : g[c];
            adamw_elem(p, __fmul_rn(gp, clip), mm, vv, b1, b2, eps, lr, wd, bc1, bc2);
            w[c] = p;
            a[c] = mm;
            v[c] = vv;
            ss += (double)p * p;
        }
        ss = saec_block_sum(ss, s_warp);
        if (ss > 0) {
            const double inv = 1.0 / sqrt(ss);
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) w[c] = (float)(w[c] * inv);
        }
    }
}

/* ---- launchers ------------------------------------------------------------------------------- */

static unsigned row_blocks(const saec_cuda_state *st, int64_t rows) {
    const int64_t cap = (int64_t)st->sm_count * 64;
    return (unsigned)(rows < cap ? rows : cap);
}

extern "C" int saec_cuda_project_rows_grad(saec_dev *dev, const float *W, float *G, int64_t m,
                                           int64_t d) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (m <= 0 || d <= 0) return SAEC_OK;
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(W) && saec_cuda_aligned16(G);
    const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
    if (vec)
        project_rows_grad_kernel<true><<<row_blocks(st, m), threads, 0, st->stream>>>(W, G, m, d);
    else
        project_rows_grad_kernel<false><<<row_blocks(st, m), threads, 0, st->stream>>>(W, G, m, d);
    SAEC_CUDA_CHECK_LAUNCH("project_rows_grad_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_normalize_rows(saec_dev *dev, float *W, int64_t m, int64_t d) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (m <= 0 || d <= 0) return SAEC_OK;
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(W);
    const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
    if (vec)
        normalize_rows_kernel<true><<<row_blocks(st, m), threads, 0, st->stream>>>(W, m, d);
    else
        normalize_rows_kernel<false><<<row_blocks(st, m), threads, 0, st->stream>>>(W, m, d);
    SAEC_CUDA_CHECK_LAUNCH("normalize_rows_kernel");
    return SAEC_OK;
}

/* The bias corrections 1 − β^t, in double on the host as on the CPU (β2^t is close to 1). */
static void adamw_bias_corrections(const saec_adamw_args *a, float *bc1, float *bc2) {
    *bc1 = (float)(1.0 - pow((double)a->beta1, (double)a->step));
    *bc2 = (float)(1.0 - pow((double)a->beta2, (double)a->step));
}

extern "C" int saec_cuda_adamw(saec_dev *dev, float *param, const float *grad, float *m1,
                               float *m2, int64_t n, saec_adamw_args args,
                               const double *grad_sumsq) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0) return SAEC_OK;
    if (args.step < 1)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "cuda op adamw: step %lld < 1", (long long)args.step);
    if (args.max_grad_norm > 0.0f && !grad_sumsq)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "cuda op adamw: clipping needs grad_sumsq");
    float bc1, bc2;
    adamw_bias_corrections(&args, &bc1, &bc2);
    const int vec = saec_ew_aligned16(param, grad, m1, m2);
    adamw_kernel<<<saec_ew_blocks(n, vec, 256, st->sm_count), 256, 0, st->stream>>>(
        param, grad, m1, m2, n, args.beta1, args.beta2, args.eps, args.lr, args.weight_decay, bc1,
        bc2, args.max_grad_norm, grad_sumsq, vec);
    SAEC_CUDA_CHECK_LAUNCH("adamw_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_adamw_unit_rows(saec_dev *dev, float *W, const float *G, float *m1,
                                         float *m2, int64_t m, int64_t d, saec_adamw_args args,
                                         const double *grad_sumsq) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (m <= 0 || d <= 0) return SAEC_OK;
    if (args.step < 1 || (args.max_grad_norm > 0.0f && !grad_sumsq))
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "cuda op adamw_unit_rows: bad arguments (step %lld)",
                         (long long)args.step);
    float bc1, bc2;
    adamw_bias_corrections(&args, &bc1, &bc2);
    const int threads = saec_cuda_row_threads(d, 256);
    adamw_unit_rows_kernel<<<row_blocks(st, m), threads, 0, st->stream>>>(
        W, G, m1, m2, m, d, args.beta1, args.beta2, args.eps, args.lr, args.weight_decay, bc1, bc2,
        args.max_grad_norm, grad_sumsq);
    SAEC_CUDA_CHECK_LAUNCH("adamw_unit_rows_kernel");
    return SAEC_OK;
}
