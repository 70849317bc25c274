/* CUDA ops of the SAE variants (SPEC §2–5) on dense codes [n, m]: batch_topk, jumprelu,
 * jumprelu_backward, l1_penalty, atm_stats, atm_mask, scale_cols (their dead-latent tracking,
 * track_fired_dense, is in cuda_latents.cu; the column passes, in cuda_colpass.cuh).
 * The reference is kernels/cpu/cpu_variants.c; the formulas and their rounding follow it (double
 * accumulators, the same float/double casts) so that CUDA and CPU agree to the last bits wherever
 * the summation order does not enter.
 *
 * Determinism. No float atomics anywhere. Reductions over the n rows of a column ("column
 * passes") give each block a tile of columns and a chunk of rows; each thread sums its rows in
 * order (in double), the block's 8 row groups are combined in a fixed order, and a second kernel
 * adds the chunks in order. The chunking is a function of (n, m) alone, the same for the float4
 * and the scalar path, so results repeat bit for bit run to run (the column sums are even the
 * same on both paths).
 * Reductions over latents are block sums in double with a fixed partition. Counts are integers
 * (integer atomics are exact). batch_topk is an exact selection on integer histograms.
 *
 * Nothing here synchronises with the host: thresholds, penalties and counts stay on the device.
 */
#include <math.h>

#include "cuda_colpass.cuh"
#include "cuda_elementwise.cuh"
#include "cuda_internal.cuh"
#include "saec/hash.h"

#define EW_THREADS 256  /* element-wise and per-column kernels */
#define ONE_BLOCK 1024  /* single-block reductions */
#define BTK_THREADS 512 /* batch_topk histogram blocks */
#define BTK_BINS0 2048  /* batch_topk: first digit, bits 30..20 */
#define BTK_BINS 1024   /* batch_topk: later digits, bits 19..10 and 9..0 */

/* ---- small device helpers -------------------------------------------------------------------- */

/* θ = exp(t) rounded once to float: (float)exp((double)t) is the correctly rounded expf(t) except
   in vanishingly rare double-rounding cases, so it matches the CPU's expf (glibc: < 0.502 ulp)
   far more often than CUDA's expf (up to 2 ulp) would. Evaluated once per column per thread. */
__device__ __forceinline__ float var_expf(float t) { return (float)exp((double)t); }

/* ---- kernels: batch_topk --------------------------------------------------------------------- */

/* The radix select's device state: the merged histogram of the current digit, the digits chosen
   so far (the prefix) and the rank still to find inside them. Zeroed before the first pass. */
typedef struct {
    unsigned long long hist[BTK_BINS0];
    unsigned long long k_rem; /* rank (1-based, from the top) of the cut-off among the prefix */
    uint32_t prefix;          /* the cut-off's bits chosen so far */
    uint32_t none;            /* 1: no positive entry, f = 0 and threshold 0 */
} btk_state;

/* Histogram pass: over the positive entries of x [len] whose bits above the digit equal the
   prefix, count digit (bits >> shift) & (nb − 1) in a shared histogram, then merge the nonzero
   bins into st->hist with integer atomics (exact, so the histogram is deterministic).
   Positive floats (and +inf) order like their bits, so no key transform is needed; zero, −0,
   negatives and NaN fail x > 0 and are never counted.
   Floor: reads len*4 bytes; ≤ len shared atomics, ≤ blocks*nb global atomics. */
__global__ void __launch_bounds__(BTK_THREADS)
    btk_hist_kernel(const float *__restrict__ x, int64_t len, int shift, int width,
                    btk_state *__restrict__ st, int vec) {
    __shared__ uint32_t h[BTK_BINS0];
    if (st->none) return; /* block-uniform */
    const uint32_t prefix = st->prefix;
    const int nb = 1 << width, hi = shift + width; /* hi = 31 first: every positive entry */
    const uint32_t dmask = (uint32_t)nb - 1u;
    for (int b = threadIdx.x; b < nb; b += blockDim.x)
        h[b] = 0u;
    __syncthreads();
    saec_ew_each(len, vec, x, [&](float v) {
        if (!(v > 0.0f)) return;
        const uint32_t key = __float_as_uint(v);
        if ((key >> hi) == prefix) atomicAdd(&h[(key >> shift) & dmask], 1u);
    });
    __syncthreads();
    for (int b = threadIdx.x; b < nb; b += blockDim.x)
        if (h[b]) atomicAdd(&st->hist[b], (unsigned long long)h[b]);
}

/* Select (one block of ONE_BLOCK threads): find the digit holding the k_rem-th largest counted
   entry, scanning bins from the top; append it to the prefix, reduce k_rem by the entries above
   it, and clear the histogram for the next pass. The first pass also counts the positives P:
   none when P = 0, else k_rem = min(keep, P) (fewer positives than keep: keep them all, the
   cut-off is the smallest positive).  Floor: reads and clears nb*8 bytes. */
__global__ void __launch_bounds__(ONE_BLOCK)
    btk_select_kernel(int first, int width, int64_t keep, btk_state *__restrict__ st) {
    __shared__ unsigned long long s_warp[32];
    __shared__ unsigned long long s_above;
    __shared__ uint32_t s_bin;
    if (st->none) return; /* block-uniform; only this kernel's thread 0 sets it, after a barrier */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
    const int nb = 1 << width, per = nb / ONE_BLOCK; /* 2 or 1 bins per thread, from the top */
    unsigned long long h[BTK_BINS0 / ONE_BLOCK], local = 0;
#pragma unroll
    for (int j = 0; j < BTK_BINS0 / ONE_BLOCK; j++) {
        h[j] = j < per ? st->hist[nb - 1 - (tid * per + j)] : 0ull;
        local += h[j];
    }
    unsigned long long K;
    if (first) {
        const unsigned long long P = saec_block_sum(local, s_warp);
        if (P == 0ull) { /* every thread sees the same P */
            if (tid == 0) st->none = 1u;
            return;
        }
        K = (unsigned long long)keep < P ? (unsigned long long)keep : P;
    } else {
        K = st->k_rem;
    }
    /* exclusive scan of the per-thread counts in thread order (= descending bins) */
    unsigned long long incl = local;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    __syncthreads(); /* s_warp may still be read by saec_block_sum */
    if (lane == 31) s_warp[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        const unsigned long long w = lane < nwarps ? s_warp[lane] : 0ull;
        unsigned long long wi = w;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long t = __shfl_up_sync(0xffffffffu, wi, o);
            if (lane >= o) wi += t;
        }
        if (lane < nwarps) s_warp[lane] = wi - w; /* exclusive over warps */
    }
    __syncthreads();
    unsigned long long run = s_warp[warp] + incl - local; /* entries in bins above mine */
#pragma unroll
    for (int j = 0; j < BTK_BINS0 / ONE_BLOCK; j++) {
        if (j >= per) break;
        if (run < K && run + h[j] >= K) { /* exactly one bin crosses K */
            s_bin = (uint32_t)(nb - 1 - (tid * per + j));
            s_above = run;
        }
        run += h[j];
        st->hist[nb - 1 - (tid * per + j)] = 0ull; /* own bins only: cleared for the next pass */
    }
    __syncthreads();
    if (tid == 0) {
        st->k_rem = K - s_above;
        st->prefix = (st->prefix << width) | s_bin;
    }
}

/* Output pass: f = x where x >= cut (the cut-off is positive, so NaN and x <= 0 give 0), and
   *threshold = cut (0 when nothing is positive). f may alias x.
   Floor: reads len*4, writes len*4 bytes. */
__global__ void btk_apply_kernel(const float *x, int64_t len, const btk_state *__restrict__ st,
                                 float *f, float *__restrict__ threshold, int vec) {
    const bool none = st->none != 0u;
    const float cut = none ? 0.0f : __uint_as_float(st->prefix);
    if (blockIdx.x == 0 && threadIdx.x == 0) *threshold = cut;
    auto keep_above_cut = [=](float v) { return !none && v >= cut ? v : 0.0f; };
    saec_ew_map(len, vec, f, keep_above_cut, x);
}

/* ---- kernels: element-wise over columns (jumprelu, scale_cols) ------------------------------- */

/* Grid (column groups, row groups): each thread owns V consecutive columns, loads their per-column
   value once, then walks rows r = blockIdx.y, += gridDim.y. No per-element index division. */

/* f = pre > θ_j ? pre : 0 with θ_j = theta[j * stride] (or expf of it). f may alias pre.
   Floor: reads n*m*4 + m*4, writes n*m*4 bytes. */
template <int V>
__global__ void jumprelu_kernel(const float *pre, int64_t n, int64_t m,
                                const float *__restrict__ theta, int64_t stride, int theta_is_log,
                                float *f) {
    const int64_t c0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c0 >= m) return;
    float th[V];
#pragma unroll
    for (int v = 0; v < V; v++) {
        const float t = theta[(c0 + v) * stride];
        th[v] = theta_is_log ? var_expf(t) : t;
    }
    for (int64_t r = blockIdx.y; r < n; r += gridDim.y) {
        float p[V];
        ldv<V>(pre + r * m + c0, p);
#pragma unroll
        for (int v = 0; v < V; v++)
            p[v] = p[v] > th[v] ? p[v] : 0.0f;
        stv<V>(f + r * m + c0, p);
    }
}

/* x[r, j] *= scale[j].  Floor: reads n*m*4 + m*4, writes n*m*4 bytes. */
template <int V>
__global__ void scale_cols_kernel(float *__restrict__ x, int64_t n, int64_t m,
                                  const float *__restrict__ scale) {
    const int64_t c0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c0 >= m) return;
    float s[V];
#pragma unroll
    for (int v = 0; v < V; v++)
        s[v] = scale[c0 + v];
    for (int64_t r = blockIdx.y; r < n; r += gridDim.y) {
        float p[V];
        ldv<V>(x + r * m + c0, p);
#pragma unroll
        for (int v = 0; v < V; v++)
            p[v] = __fmul_rn(p[v], s[v]);
        stv<V>(x + r * m + c0, p);
    }
}

/* ---- kernels: jumprelu_backward -------------------------------------------------------------- */

/* Column pass: with θ_j = expf(log_theta_j) and u = (pre − θ_j)/bandwidth in float (as on the
   CPU), partial[chunk, j] = Σ_{rows of the chunk, |u| < 1/2} (θ_j·df + l0_coef) in double (the
   product of two floats is exact in double, so FMA contraction changes nothing), and
   df = pre > θ_j ? df : 0.  Floor: reads 2*n*m*4 + m*4, writes n*m*4 (+ nchunks*m*8). */
template <int V>
__global__ void __launch_bounds__(32 * CP_ROWS, CP_MIN_BLOCKS)
    jrb_cols_kernel(const float *__restrict__ pre, const float *__restrict__ log_theta, int64_t n,
                    int64_t m, int64_t rows_per_chunk, float bandwidth, float l0_coef,
                    float *__restrict__ df, double *__restrict__ partial) {
    __shared__ double s_red[CP_ROWS * 32 * V];
    int64_t c0, r0, r1;
    colpass_range<V>(n, rows_per_chunk, &c0, &r0, &r1);
    double acc[V];
#pragma unroll
    for (int v = 0; v < V; v++)
        acc[v] = 0.0;
    if (c0 < m) {
        float th[V];
#pragma unroll
        for (int v = 0; v < V; v++)
            th[v] = var_expf(log_theta[c0 + v]);
#pragma unroll 2
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CP_ROWS) {
            float p[V], g[V];
            ldv<V>(pre + r * m + c0, p);
            ldv<V>(df + r * m + c0, g);
#pragma unroll
            for (int v = 0; v < V; v++) {
                const float u = (p[v] - th[v]) / bandwidth;
                if (fabsf(u) < 0.5f) acc[v] += (double)th[v] * g[v] + (double)l0_coef;
                g[v] = p[v] > th[v] ? g[v] : 0.0f;
            }
            stv<V>(df + r * m + c0, g);
        }
    }
    colpass_store<V>(acc, s_red, c0, m, partial + (int64_t)blockIdx.y * m);
}

/* dlog_theta[j] = (float)(dlog_theta[j] − θ_j · Σ_chunks partial / bandwidth) (the CPU's
   expression).  Floor: reads nchunks*m*8 + m*8, writes m*4 bytes. */
__global__ void jrb_final_kernel(const double *__restrict__ partial, int nchunks, int64_t m,
                                 const float *__restrict__ log_theta, float bandwidth,
                                 float *__restrict__ dlog_theta) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    double acc = 0.0;
    for (int c = 0; c < nchunks; c++)
        acc += partial[(int64_t)c * m + j];
    const float th = var_expf(log_theta[j]);
    dlog_theta[j] = (float)((double)dlog_theta[j] - (double)th * acc / (double)bandwidth);
}

/* ---- kernels: row norms of W (l1_penalty, atm_stats) ----------------------------------------- */

/* norm[j] = ‖W_j‖ = sqrt(Σ_c W[j, c]²) in double, one block per row (grid-stride).
   Floor: reads m*d*4 bytes, writes m*8; 2*m*d FLOPs. */
template <bool VEC>
__global__ void var_row_norm_kernel(const float *__restrict__ W, int64_t m, int64_t d,
                                    double *__restrict__ norm) {
    __shared__ double s_warp[32];
    for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
        double ss = 0.0;
        if (VEC) {
            const float4 *w4 = reinterpret_cast<const float4 *>(W + r * d);
            for (int64_t c = threadIdx.x; c < d / 4; c += blockDim.x) {
                const float4 w = w4[c];
                ss += (double)w.x * w.x + (double)w.y * w.y + (double)w.z * w.z + (double)w.w * w.w;
            }
        } else {
            const float *w = W + r * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
                ss += (double)w[c] * w[c];
        }
        ss = saec_block_sum(ss, s_warp);
        if (threadIdx.x == 0) norm[r] = sqrt(ss);
    }
}

/* ---- kernels: l1_penalty --------------------------------------------------------------------- */

/* Column pass: partial[chunk, j] = Σ_{rows of the chunk} f[r, j] (double), and
   dpre[r, j] += g_j where f[r, j] > 0, g_j = (float)(coef·‖W_j‖) (the CPU's rounding).
   Floor: reads 2*n*m*4 + m*8, writes n*m*4 (+ nchunks*m*8) bytes. */
template <int V>
__global__ void __launch_bounds__(32 * CP_ROWS, CP_MIN_BLOCKS)
    l1_cols_kernel(const float *__restrict__ f, int64_t n, int64_t m, int64_t rows_per_chunk,
                   float coef, const double *__restrict__ norm, float *__restrict__ dpre,
                   double *__restrict__ partial) {
    __shared__ double s_red[CP_ROWS * 32 * V];
    int64_t c0, r0, r1;
    colpass_range<V>(n, rows_per_chunk, &c0, &r0, &r1);
    double acc[V];
#pragma unroll
    for (int v = 0; v < V; v++)
        acc[v] = 0.0;
    if (c0 < m) {
        float g[V];
#pragma unroll
        for (int v = 0; v < V; v++)
            g[v] = (float)((double)coef * norm[c0 + v]);
#pragma unroll 2
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CP_ROWS) {
            float x[V], dp[V];
            ldv<V>(f + r * m + c0, x);
            ldv<V>(dpre + r * m + c0, dp);
#pragma unroll
            for (int v = 0; v < V; v++) {
                acc[v] += (double)x[v];
                if (x[v] > 0.0f) dp[v] += g[v];
            }
            stv<V>(dpre + r * m + c0, dp);
        }
    }
    colpass_store<V>(acc, s_red, c0, m, partial + (int64_t)blockIdx.y * m);
}

/* colsum[j] = Σ_chunks partial[chunk, j] (in order); blockpen[block] = Σ_{j of the block}
   ‖W_j‖·colsum[j] (fixed tree). Blocks: ceil(m / EW_THREADS), a function of m alone.
   Floor: reads nchunks*m*8 + m*8, writes m*8 bytes. */
__global__ void __launch_bounds__(EW_THREADS)
    l1_colfinal_kernel(const double *__restrict__ partial, int nchunks, int64_t m,
                       const double *__restrict__ norm, double *__restrict__ colsum,
                       double *__restrict__ blockpen) {
    __shared__ double s_warp[32];
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    double pen = 0.0;
    if (j < m) {
        double t = 0.0;
        for (int c = 0; c < nchunks; c++)
            t += partial[(int64_t)c * m + j];
        colsum[j] = t;
        pen = norm[j] * t;
    }
    pen = saec_block_sum(pen, s_warp);
    if (threadIdx.x == 0) blockpen[blockIdx.x] = pen;
}

/* out[0] = scale · Σ parts[0 .. count) (one block, fixed order).  Floor: reads count*8 bytes. */
__global__ void __launch_bounds__(ONE_BLOCK)
    var_sum_final_kernel(const double *__restrict__ parts, int64_t count, double scale,
                         double *__restrict__ out) {
    __shared__ double s_warp[32];
    double t = 0.0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
        t += parts[i];
    t = saec_block_sum(t, s_warp);
    if (threadIdx.x == 0) out[0] = scale * t;
}

/* dW[j, :] += s_j · W[j, :] with s_j = (float)(coef·colsum[j]/‖W_j‖) for rows of nonzero norm
   (products and sums rounded as on the CPU: no FMA). One block per row (grid-stride).
   Floor: reads 2*m*d*4 + m*16, writes m*d*4 bytes; 2*m*d FLOPs. */
template <bool VEC>
__global__ void l1_rows_kernel(const float *__restrict__ W, int64_t m, int64_t d, float coef,
                               const double *__restrict__ norm, const double *__restrict__ colsum,
                               float *__restrict__ dW) {
    for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
        const double nr = norm[r];
        if (!(nr > 0.0)) continue; /* zero row: no direction, no gradient (block-uniform) */
        const float s = (float)((double)coef * colsum[r] / nr);
        if (VEC) {
            const float4 *w4 = reinterpret_cast<const float4 *>(W + r * d);
            float4 *g4 = reinterpret_cast<float4 *>(dW + r * d);
            for (int64_t c = threadIdx.x; c < d / 4; c += blockDim.x) {
                const float4 w = w4[c];
                float4 g = g4[c];
                g.x = __fadd_rn(g.x, __fmul_rn(s, w.x));
                g.y = __fadd_rn(g.y, __fmul_rn(s, w.y));
                g.z = __fadd_rn(g.z, __fmul_rn(s, w.z));
                g.w = __fadd_rn(g.w, __fmul_rn(s, w.w));
                g4[c] = g;
            }
        } else {
            const float *w = W + r * d;
            float *g = dW + r * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x)
                g[c] = __fadd_rn(g[c], __fmul_rn(s, w[c]));
        }
    }
}

/* ---- kernels: atm_stats ---------------------------------------------------------------------- */

/* Column pass, three sums per column in double over the chunk's rows:
   partial[0, chunk, j] = Σ f;  partial[1, chunk, j] = #(f > 0);
   partial[2, chunk, j] = Σ (f²‖W_j‖² − SST·f·dfn)   (‖W_j‖² = norm·norm, as on the CPU).
   partial: [3, nchunks, m]; SST is read from the device statistics.
   Floor: reads 2*n*m*4 + m*8, writes 3*nchunks*m*8 bytes; ~8*n*m FLOPs (double). */
template <int V>
__global__ void __launch_bounds__(32 * CP_ROWS, CP_MIN_BLOCKS)
    atm_cols_kernel(const float *__restrict__ f, const float *__restrict__ dfn, int64_t n,
                    int64_t m, int64_t rows_per_chunk, const double *__restrict__ norm,
                    const double *__restrict__ stats, int64_t nchunks,
                    double *__restrict__ partial) {
    __shared__ double s_red[CP_ROWS * 32 * V];
    int64_t c0, r0, r1;
    colpass_range<V>(n, rows_per_chunk, &c0, &r0, &r1);
    double sa[V], sq[V], sr[V];
#pragma unroll
    for (int v = 0; v < V; v++)
        sa[v] = sq[v] = sr[v] = 0.0;
    if (c0 < m) {
        const double sst = stats[SAEC_STAT_SST];
        double nsq[V];
#pragma unroll
        for (int v = 0; v < V; v++)
            nsq[v] = norm[c0 + v] * norm[c0 + v];
#pragma unroll 1 /* 12 double accumulators: unrolling would spill under the 64-register cap */
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CP_ROWS) {
            float x[V], g[V];
            ldv<V>(f + r * m + c0, x);
            ldv<V>(dfn + r * m + c0, g);
#pragma unroll
            for (int v = 0; v < V; v++) {
                const double fv = x[v];
                sa[v] += fv;
                sq[v] += x[v] > 0.0f ? 1.0 : 0.0;
                sr[v] += fv * fv * nsq[v] - sst * fv * (double)g[v];
            }
        }
    }
    const int64_t chunk = blockIdx.y;
    colpass_store<V>(sa, s_red, c0, m, partial + (0 * nchunks + chunk) * m);
    colpass_store<V>(sq, s_red, c0, m, partial + (1 * nchunks + chunk) * m);
    colpass_store<V>(sr, s_red, c0, m, partial + (2 * nchunks + chunk) * m);
}

/* The EMAs, as on the CPU: stat = (float)(beta·stat + ((1 − beta)/n)·Σ_chunks partial).
   Floor: reads 3*nchunks*m*8 + 3*m*4, writes 3*m*4 bytes. */
__global__ void atm_final_kernel(const double *__restrict__ partial, int nchunks, int64_t m,
                                 int64_t n, float beta, float *__restrict__ a,
                                 float *__restrict__ q, float *__restrict__ r) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    double sa = 0.0, sq = 0.0, sr = 0.0;
    for (int c = 0; c < nchunks; c++) {
        sa += partial[((int64_t)0 * nchunks + c) * m + j];
        sq += partial[((int64_t)1 * nchunks + c) * m + j];
        sr += partial[((int64_t)2 * nchunks + c) * m + j];
    }
    const double keep_w = beta, new_w = (1.0 - (double)beta) / (double)n;
    /* no FMA: the CPU's two products and one sum (the count q then matches bit for bit) */
    a[j] = (float)__dadd_rn(__dmul_rn(keep_w, (double)a[j]), __dmul_rn(new_w, sa));
    q[j] = (float)__dadd_rn(__dmul_rn(keep_w, (double)q[j]), __dmul_rn(new_w, sq));
    r[j] = (float)__dadd_rn(__dmul_rn(keep_w, (double)r[j]), __dmul_rn(new_w, sr));
}

/* ---- kernels: atm_mask ----------------------------------------------------------------------- */

/* I_j = scale_a·a_j + scale_q·q_j + scale_r·r_j, rounded step by step as on the CPU (no FMA), so
   every pass below recomputes exactly the same value. */
__device__ __forceinline__ double atm_importance(const double (&scale)[3], float a, float q,
                                                 float r) {
    return __dadd_rn(__dadd_rn(__dmul_rn(scale[0], (double)a), __dmul_rn(scale[1], (double)q)),
                     __dmul_rn(scale[2], (double)r));
}

/* The whole mask in one block (ONE_BLOCK threads, block sums in double, fixed partition):
   means of a, q, r → scale_s = w_s / mean_s (0 when the mean is 0) → mean and population std of
   I → θ = mean + c·std → keep_j = 0 when θ > 0, I_j < θ and u_j < 1 − exp(−rate·(θ − I_j)/θ),
   u_j = saec_hash_uniform(seed, SAEC_RNG_ATM_MASK, counter·m + j) (the CPU's stream and counter).
   One block because m is small (the dictionary) and the passes depend on each other; the
   alternative, a multi-block grid with three global barriers, costs more in launches.
   Floor: reads 3*m*4 bytes per pass (four passes), writes m*4. */
__global__ void __launch_bounds__(ONE_BLOCK)
    atm_mask_kernel(const float *__restrict__ a, const float *__restrict__ q,
                    const float *__restrict__ r, int64_t m, float w0, float w1, float w2, float c,
                    float rate, uint64_t seed, uint64_t counter, float *__restrict__ keep) {
    __shared__ double s_warp[32];
    double sa = 0.0, sq = 0.0, sr = 0.0;
    /* (unrolled: one block has little parallelism, so each thread keeps several loads in flight) */
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
        sa += a[j];
        sq += q[j];
        sr += r[j];
    }
    sa = saec_block_sum(sa, s_warp);
    sq = saec_block_sum(sq, s_warp);
    sr = saec_block_sum(sr, s_warp);
    const double md = (double)m;
    const double mean[3] = {sa / md, sq / md, sr / md};
    const double w[3] = {(double)w0, (double)w1, (double)w2};
    double scale[3];
#pragma unroll
    for (int s = 0; s < 3; s++)
        scale[s] = mean[s] != 0.0 ? w[s] / mean[s] : 0.0;

    double isum = 0.0;
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < m; j += blockDim.x)
        isum += atm_importance(scale, a[j], q[j], r[j]);
    const double imean = saec_block_sum(isum, s_warp) / md;
    double ss = 0.0;
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
        const double e = __dsub_rn(atm_importance(scale, a[j], q[j], r[j]), imean);
        ss = __dadd_rn(ss, __dmul_rn(e, e));
    }
    ss = saec_block_sum(ss, s_warp);
    const double theta = __dadd_rn(imean, __dmul_rn((double)c, sqrt(ss / md)));

    for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
        const double imp = atm_importance(scale, a[j], q[j], r[j]);
        int masked = 0;
        if (theta > 0.0 && imp < theta) {
            const double p = 1.0 - exp(__dmul_rn(-(double)rate, theta - imp) / theta);
            const float u =
                saec_hash_uniform(seed, SAEC_RNG_ATM_MASK, counter * (uint64_t)m + (uint64_t)j);
            masked = (double)u < p;
        }
        keep[j] = masked ? 0.0f : 1.0f;
    }
}

/* ---- launch helpers -------------------------------------------------------------------------- */

/* The grid of a per-column element-wise kernel: column groups x row groups, ~8 blocks per SM. */
static dim3 colwise_grid(const saec_cuda_state *st, int64_t n, int64_t m, int vec) {
    const int64_t groups = vec ? m / 4 : m;
    const int64_t gx = (groups + EW_THREADS - 1) / EW_THREADS;
    int64_t gy = ((int64_t)st->sm_count * 8 + gx - 1) / gx;
    if (gy > n) gy = n;
    if (gy > 65535) gy = 65535;
    if (gy < 1) gy = 1;
    return dim3((unsigned)gx, (unsigned)gy);
}

/* Blocks for a kernel over rows of W [m, d], one block per row (grid-stride), as cuda_optim. */
static unsigned var_row_blocks(const saec_cuda_state *st, int64_t rows) {
    const int64_t cap = (int64_t)st->sm_count * 64;
    return (unsigned)(rows < cap ? rows : cap);
}

static int var_too_large(const char *op, int64_t m) {
    return saec_fail(SAEC_ERR_DEVICE, NULL, "%s: m = %lld is too large for the CUDA backend", op,
                     (long long)m);
}

/* Row norms of W [m, d] into norm [m] (double). */
static int var_row_norms(saec_dev *dev, const float *W, int64_t m, int64_t d, double *norm) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (d <= 0) {
        SAEC_CUDA_CHECK(cudaMemsetAsync(norm, 0, (size_t)m * sizeof(double), st->stream));
        return SAEC_OK;
    }
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(W);
    const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
    if (vec)
        var_row_norm_kernel<true><<<var_row_blocks(st, m), threads, 0, st->stream>>>(W, m, d, norm);
    else
        var_row_norm_kernel<false>
            <<<var_row_blocks(st, m), threads, 0, st->stream>>>(W, m, d, norm);
    SAEC_CUDA_CHECK_LAUNCH("var_row_norm_kernel");
    return SAEC_OK;
}

/* ---- launchers ------------------------------------------------------------------------------- */

/* Exact BatchTopK by radix select on the bits of the positive entries (their order is the order
   of the values): three histogram passes (digits of 11, 10 and 10 bits over bits 30..0), each
   followed by a one-block select that narrows the prefix on the device, then the output pass.
   Floor: reads n*m*4 and writes n*m*4 bytes; this reads x four times (three histograms and the
   output pass), so it reaches at most 2/5 of the floor's rate. No host round trip: the prefix
   and the remaining rank live in device memory between the launches.
   (An alternative, compacting the candidates of the first digit to skip two full reads, needs
   a buffer sized for the worst case, n*m floats.) */
extern "C" int saec_cuda_batch_topk(saec_dev *dev, const float *x, int64_t n, int64_t m,
                                    int64_t keep, float *f, float *threshold) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("batch_topk", n >= 0 && m >= 1 && keep >= 1);
    SAEC_CUDA_REQUIRE("batch_topk", threshold != NULL && (n == 0 || (x && f)));
    const int64_t len = n * m;
    if (len == 0) {
        SAEC_CUDA_CHECK(cudaMemsetAsync(threshold, 0, sizeof(float), st->stream));
        return SAEC_OK;
    }
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, saec_cuda_round256(sizeof(btk_state)), &base));
    btk_state *state = (btk_state *)base;
    SAEC_CUDA_CHECK(cudaMemsetAsync(state, 0, sizeof(btk_state), st->stream));

    const int hvec = saec_ew_aligned16(x);
    const int64_t hwork = hvec ? (len + 3) / 4 : len;
    int64_t hblocks = (hwork + BTK_THREADS - 1) / BTK_THREADS;
    if (hblocks > (int64_t)st->sm_count * 4) hblocks = (int64_t)st->sm_count * 4;
    if (hblocks < 1) hblocks = 1;
    static const int shifts[3] = {20, 10, 0}, widths[3] = {11, 10, 10};
    for (int p = 0; p < 3; p++) {
        btk_hist_kernel<<<(unsigned)hblocks, BTK_THREADS, 0, st->stream>>>(x, len, shifts[p],
                                                                           widths[p], state, hvec);
        SAEC_CUDA_CHECK_LAUNCH("btk_hist_kernel");
        btk_select_kernel<<<1, ONE_BLOCK, 0, st->stream>>>(p == 0, widths[p], keep, state);
        SAEC_CUDA_CHECK_LAUNCH("btk_select_kernel");
    }
    const int avec = saec_ew_aligned16(x, f);
    btk_apply_kernel<<<saec_ew_blocks(len, avec, EW_THREADS, st->sm_count), EW_THREADS, 0,
                       st->stream>>>(x, len, state, f, threshold, avec);
    SAEC_CUDA_CHECK_LAUNCH("btk_apply_kernel");
    return SAEC_OK;
}

/* Floor: reads n*m*4 + m*4, writes n*m*4 bytes. One pass; θ loaded (and exponentiated) once
   per column per thread. */
extern "C" int saec_cuda_jumprelu(saec_dev *dev, const float *pre, int64_t n, int64_t m,
                                  const float *theta, int64_t stride, int theta_is_log, float *f) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("jumprelu", n >= 0 && m >= 1 && stride >= 0 && theta != NULL);
    SAEC_CUDA_REQUIRE("jumprelu", n == 0 || (pre && f));
    if (n == 0) return SAEC_OK;
    if (m / EW_THREADS + 1 > (int64_t)INT32_MAX) return var_too_large("jumprelu", m);
    const int vec = m % 4 == 0 && saec_cuda_aligned16(pre) && saec_cuda_aligned16(f);
    const dim3 grid = colwise_grid(st, n, m, vec);
    if (vec)
        jumprelu_kernel<4>
            <<<grid, EW_THREADS, 0, st->stream>>>(pre, n, m, theta, stride, theta_is_log, f);
    else
        jumprelu_kernel<1>
            <<<grid, EW_THREADS, 0, st->stream>>>(pre, n, m, theta, stride, theta_is_log, f);
    SAEC_CUDA_CHECK_LAUNCH("jumprelu_kernel");
    return SAEC_OK;
}

/* Floor: reads 2*n*m*4 + m*4, writes n*m*4 + m*4 bytes. One column pass over (pre, df) that also
   writes df, then a per-latent finish; deterministic (fixed chunking, no atomics). */
extern "C" int saec_cuda_jumprelu_backward(saec_dev *dev, const float *pre, const float *log_theta,
                                           int64_t n, int64_t m, float bandwidth, float l0_coef,
                                           float *df, float *dlog_theta) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("jumprelu_backward", n >= 0 && m >= 1 && bandwidth > 0.0f);
    SAEC_CUDA_REQUIRE("jumprelu_backward", log_theta && dlog_theta && (n == 0 || (pre && df)));
    if (n == 0) return SAEC_OK;
    if ((m + 31) / 32 > (int64_t)INT32_MAX) return var_too_large("jumprelu_backward", m);
    int64_t nchunks, rpc;
    colpass_plan(n, m, &nchunks, &rpc);
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, (size_t)(nchunks * m) * sizeof(double), &base));
    double *partial = (double *)base;
    const int vec = m % 4 == 0 && saec_cuda_aligned16(pre) && saec_cuda_aligned16(df);
    const dim3 grid = colpass_grid(m, vec, nchunks), block(32, CP_ROWS);
    if (vec)
        jrb_cols_kernel<4><<<grid, block, 0, st->stream>>>(pre, log_theta, n, m, rpc, bandwidth,
                                                           l0_coef, df, partial);
    else
        jrb_cols_kernel<1><<<grid, block, 0, st->stream>>>(pre, log_theta, n, m, rpc, bandwidth,
                                                           l0_coef, df, partial);
    SAEC_CUDA_CHECK_LAUNCH("jrb_cols_kernel");
    jrb_final_kernel<<<(unsigned)((m + EW_THREADS - 1) / EW_THREADS), EW_THREADS, 0, st->stream>>>(
        partial, (int)nchunks, m, log_theta, bandwidth, dlog_theta);
    SAEC_CUDA_CHECK_LAUNCH("jrb_final_kernel");
    return SAEC_OK;
}

/* Floor: reads n*m*4 twice + 2*m*d*4, writes n*m*4 + m*d*4 bytes. Passes: row norms of W (reads
   W), a column pass over f that also updates dpre, the per-latent column sums and penalty
   parts, the dW row update (reads W again: the norms must precede dpre, the column sums must
   precede dW) and the penalty sum. Deterministic: fixed chunking and fixed-order sums. */
extern "C" int saec_cuda_l1_penalty(saec_dev *dev, const float *f, const float *W, int64_t n,
                                    int64_t m, int64_t d, float coef, float *dpre, float *dW,
                                    double *penalty) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("l1_penalty", n >= 0 && m >= 1 && d >= 0);
    SAEC_CUDA_REQUIRE("l1_penalty", penalty && W && dW && (n == 0 || (f && dpre)));
    if ((m + 31) / 32 > (int64_t)INT32_MAX) return var_too_large("l1_penalty", m);
    int64_t nchunks = 0, rpc = 1;
    if (n > 0) colpass_plan(n, m, &nchunks, &rpc);
    const int64_t fblocks = (m + EW_THREADS - 1) / EW_THREADS;
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev,
                               2 * saec_cuda_round256((size_t)m * 8) +
                                   saec_cuda_round256((size_t)fblocks * 8) +
                                   saec_cuda_round256((size_t)(nchunks * m) * 8),
                               &base));
    char *cur = (char *)base;
    double *norm = (double *)saec_cuda_carve(&cur, (size_t)m * 8);
    double *colsum = (double *)saec_cuda_carve(&cur, (size_t)m * 8);
    double *blockpen = (double *)saec_cuda_carve(&cur, (size_t)fblocks * 8);
    double *partial = (double *)saec_cuda_carve(&cur, (size_t)(nchunks * m) * 8);

    SAEC_TRY(var_row_norms(dev, W, m, d, norm));
    if (n > 0) {
        const int vec = m % 4 == 0 && saec_cuda_aligned16(f) && saec_cuda_aligned16(dpre);
        const dim3 grid = colpass_grid(m, vec, nchunks), block(32, CP_ROWS);
        if (vec)
            l1_cols_kernel<4>
                <<<grid, block, 0, st->stream>>>(f, n, m, rpc, coef, norm, dpre, partial);
        else
            l1_cols_kernel<1>
                <<<grid, block, 0, st->stream>>>(f, n, m, rpc, coef, norm, dpre, partial);
        SAEC_CUDA_CHECK_LAUNCH("l1_cols_kernel");
    }
    l1_colfinal_kernel<<<(unsigned)fblocks, EW_THREADS, 0, st->stream>>>(partial, (int)nchunks, m,
                                                                         norm, colsum, blockpen);
    SAEC_CUDA_CHECK_LAUNCH("l1_colfinal_kernel");
    var_sum_final_kernel<<<1, ONE_BLOCK, 0, st->stream>>>(blockpen, fblocks, (double)coef, penalty);
    SAEC_CUDA_CHECK_LAUNCH("var_sum_final_kernel");
    if (d > 0) {
        const bool vec = d % 4 == 0 && saec_cuda_aligned16(W) && saec_cuda_aligned16(dW);
        const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
        if (vec)
            l1_rows_kernel<true><<<var_row_blocks(st, m), threads, 0, st->stream>>>(
                W, m, d, coef, norm, colsum, dW);
        else
            l1_rows_kernel<false><<<var_row_blocks(st, m), threads, 0, st->stream>>>(
                W, m, d, coef, norm, colsum, dW);
        SAEC_CUDA_CHECK_LAUNCH("l1_rows_kernel");
    }
    return SAEC_OK;
}

/* Floor: reads 2*n*m*4 + m*d*4, read-modify-writes 3*m*4 bytes. Row norms of W, one column pass
   over (f, dfn) with three double accumulators per column, a per-latent EMA update. A batch of
   n = 0 leaves a, q, r unchanged (as on the CPU). */
extern "C" int saec_cuda_atm_stats(saec_dev *dev, const float *f, const float *dfn,
                                   const double *stats, const float *W, int64_t n, int64_t m,
                                   int64_t d, float beta, float *a, float *q, float *r) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("atm_stats", n >= 0 && m >= 1 && d >= 0);
    SAEC_CUDA_REQUIRE("atm_stats", a && q && r && W);
    SAEC_CUDA_REQUIRE("atm_stats", n == 0 || (f && dfn && stats));
    if (n == 0) return SAEC_OK;
    if ((m + 31) / 32 > (int64_t)INT32_MAX) return var_too_large("atm_stats", m);
    int64_t nchunks, rpc;
    colpass_plan(n, m, &nchunks, &rpc);
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(
        dev, saec_cuda_round256((size_t)m * 8) + saec_cuda_round256((size_t)(3 * nchunks * m) * 8),
        &base));
    char *cur = (char *)base;
    double *norm = (double *)saec_cuda_carve(&cur, (size_t)m * 8);
    double *partial = (double *)saec_cuda_carve(&cur, (size_t)(3 * nchunks * m) * 8);
    SAEC_TRY(var_row_norms(dev, W, m, d, norm));
    const int vec = m % 4 == 0 && saec_cuda_aligned16(f) && saec_cuda_aligned16(dfn);
    const dim3 grid = colpass_grid(m, vec, nchunks), block(32, CP_ROWS);
    if (vec)
        atm_cols_kernel<4>
            <<<grid, block, 0, st->stream>>>(f, dfn, n, m, rpc, norm, stats, nchunks, partial);
    else
        atm_cols_kernel<1>
            <<<grid, block, 0, st->stream>>>(f, dfn, n, m, rpc, norm, stats, nchunks, partial);
    SAEC_CUDA_CHECK_LAUNCH("atm_cols_kernel");
    atm_final_kernel<<<(unsigned)((m + EW_THREADS - 1) / EW_THREADS), EW_THREADS, 0, st->stream>>>(
        partial, (int)nchunks, m, n, beta, a, q, r);
    SAEC_CUDA_CHECK_LAUNCH("atm_final_kernel");
    return SAEC_OK;
}

/* Floor: reads 3*m*4 bytes (three passes), writes m*4. One block; `weights` is host memory (as
   on the CPU), passed to the kernel by value. */
extern "C" int saec_cuda_atm_mask(saec_dev *dev, const float *a, const float *q, const float *r,
                                  int64_t m, const float weights[3], float c, float rate,
                                  uint64_t seed, uint64_t counter, float *keep) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("atm_mask", m >= 1 && a && q && r && weights && keep);
    atm_mask_kernel<<<1, ONE_BLOCK, 0, st->stream>>>(a, q, r, m, weights[0], weights[1], weights[2],
                                                     c, rate, seed, counter, keep);
    SAEC_CUDA_CHECK_LAUNCH("atm_mask_kernel");
    return SAEC_OK;
}

/* Floor: reads n*m*4 + m*4, writes n*m*4 bytes. One pass. */
extern "C" int saec_cuda_scale_cols(saec_dev *dev, float *x, int64_t n, int64_t m,
                                    const float *scale) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("scale_cols", n >= 0 && m >= 1 && scale && (n == 0 || x));
    if (n == 0) return SAEC_OK;
    if (m / EW_THREADS + 1 > (int64_t)INT32_MAX) return var_too_large("scale_cols", m);
    const int vec = m % 4 == 0 && saec_cuda_aligned16(x);
    const dim3 grid = colwise_grid(st, n, m, vec);
    if (vec)
        scale_cols_kernel<4><<<grid, EW_THREADS, 0, st->stream>>>(x, n, m, scale);
    else
        scale_cols_kernel<1><<<grid, EW_THREADS, 0, st->stream>>>(x, n, m, scale);
    SAEC_CUDA_CHECK_LAUNCH("scale_cols_kernel");
    return SAEC_OK;
}

/* ---- small MLP (TIDE `adaln`): silu, silu_backward ------------------------------------------ */

/* σ(v) = 1 / (1 + e^−v) with the CPU's operations, each rounded (no FMA contraction); expf is
   within 2 ulp of the CPU's, so results agree to a few ulp, not bit for bit. */
__device__ __forceinline__ float silu_sigmoid(float v) {
    return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-v)));
}
__device__ __forceinline__ float silu_value(float v) { return __fmul_rn(v, silu_sigmoid(v)); }
/* dy σ(x) (1 + x σ(−x)), left to right as on the CPU (σ(−x) = 1 − σ(x) without its
   cancellation) */
__device__ __forceinline__ float silu_grad(float v, float g) {
    const float s = silu_sigmoid(v), t = silu_sigmoid(-v);
    return __fmul_rn(__fmul_rn(g, s), __fadd_rn(1.0f, __fmul_rn(v, t)));
}

/* y = x σ(x); y may alias x (each element is read before it is written, by the same thread).
   Floor: reads and writes n*4 bytes. */
__global__ void silu_kernel(const float *x, int64_t n, float *y, int vec) {
    auto silu = [](float a) { return silu_value(a); };
    saec_ew_map(n, vec, y, silu, x);
}

/* dx = dy σ(x) (1 + x (1 − σ(x))); dx may alias dy.  Floor: reads 2*n*4, writes n*4 bytes. */
__global__ void silu_backward_kernel(const float *__restrict__ x, const float *dy, int64_t n,
                                     float *dx, int vec) {
    auto silu_bwd = [](float a, float g) { return silu_grad(a, g); };
    saec_ew_map(n, vec, dx, silu_bwd, x, dy);
}

/* Floor: reads and writes n*4 bytes; ~4 FLOPs + one expf per element. */
extern "C" int saec_cuda_silu(saec_dev *dev, const float *x, int64_t n, float *y) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("silu", n >= 0 && (n == 0 || (x && y)));
    if (n == 0) return SAEC_OK;
    const int vec = saec_ew_aligned16(x, y);
    silu_kernel<<<saec_ew_blocks(n, vec, EW_THREADS, st->sm_count), EW_THREADS, 0, st->stream>>>(
        x, n, y, vec);
    SAEC_CUDA_CHECK_LAUNCH("silu_kernel");
    return SAEC_OK;
}

/* Floor: reads 2*n*4, writes n*4 bytes; ~8 FLOPs + two expf per element. */
extern "C" int saec_cuda_silu_backward(saec_dev *dev, const float *x, const float *dy, int64_t n,
                                       float *dx) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("silu_backward", n >= 0 && (n == 0 || (x && dy && dx)));
    if (n == 0) return SAEC_OK;
    const int vec = saec_ew_aligned16(x, dy, dx);
    silu_backward_kernel<<<saec_ew_blocks(n, vec, EW_THREADS, st->sm_count), EW_THREADS, 0,
                           st->stream>>>(x, dy, n, dx, vec);
    SAEC_CUDA_CHECK_LAUNCH("silu_backward_kernel");
    return SAEC_OK;
}
