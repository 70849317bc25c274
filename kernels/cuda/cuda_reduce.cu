/* Losses and reductions on CUDA: recon_loss_grad, recon_grad, sum_squares, count_positive,
 * geometric_median.
 *
 * Every floating-point sum is deterministic: per-row or per-block partials (in double) are
 * written to scratch and then combined by one block in a fixed order, never with atomics. The
 * partition depends only on the problem size, so results repeat bit for bit run to run.
 * Nothing here synchronises with the host: results stay in device memory.
 */
#include <string.h>

#include "cuda_elementwise.cuh"
#include "cuda_internal.cuh"

#define RED_THREADS 256
#define FINAL_THREADS 1024

/* ---- kernels --------------------------------------------------------------------------------- */

/* Per-row statistics of the reconstruction: rowstats[r] = {Σ(x−x̂)², Σ(x−μ)², cos(x, x̂)}, in
   double, one block per row.  x, xhat [n, d], mu [d]; rowstats [n, 3].
   Floor: reads 2*n*d*4 + d*4 bytes, writes n*24; ~10*n*d FLOPs. */
template <bool VEC>
__global__ void recon_rows_kernel(const float *__restrict__ x, const float *__restrict__ xhat,
                                  const float *__restrict__ mu, int64_t n, int64_t d,
                                  double *__restrict__ rowstats) {
    __shared__ double s_warp[32];
    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        double sse = 0, sst = 0, dot = 0, xx = 0, hh = 0;
        if (VEC) {
            const int64_t d4 = d / 4;
            const float4 *x4 = reinterpret_cast<const float4 *>(x + r * d);
            const float4 *h4 = reinterpret_cast<const float4 *>(xhat + r * d);
            const float4 *u4 = reinterpret_cast<const float4 *>(mu);
            for (int64_t c = threadIdx.x; c < d4; c += blockDim.x) {
                const float4 a = x4[c], b = h4[c], u = u4[c];
                const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w},
                            uv[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    const double xv = av[q], hv = bv[q];
                    const double e = xv - hv, s = xv - (double)uv[q];
                    sse += e * e;
                    sst += s * s;
                    dot += xv * hv;
                    xx += xv * xv;
                    hh += hv * hv;
                }
            }
        } else {
            const float *xr = x + r * d, *hr = xhat + r * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
                const double xv = xr[c], hv = hr[c];
                const double e = xv - hv, s = xv - (double)mu[c];
                sse += e * e;
                sst += s * s;
                dot += xv * hv;
                xx += xv * xv;
                hh += hv * hv;
            }
        }
        sse = saec_block_sum(sse, s_warp);
        sst = saec_block_sum(sst, s_warp);
        dot = saec_block_sum(dot, s_warp);
        xx = saec_block_sum(xx, s_warp);
        hh = saec_block_sum(hh, s_warp);
        if (threadIdx.x == 0) {
            rowstats[3 * r + 0] = sse;
            rowstats[3 * r + 1] = sst;
            /* cos of a zero vector is 0, as on the CPU */
            rowstats[3 * r + 2] = (xx > 0 && hh > 0) ? dot / sqrt(xx * hh) : 0.0;
        }
    }
}

/* stats[0..2] = Σ_rows rowstats[r, 0..2], one block, fixed order.
   Floor: reads n*24 bytes, writes 24. */
__global__ void recon_final_kernel(const double *__restrict__ rowstats, int64_t n,
                                   double *__restrict__ stats) {
    __shared__ double s_warp[32];
    double t0 = 0, t1 = 0, t2 = 0;
    for (int64_t r = threadIdx.x; r < n; r += blockDim.x) {
        t0 += rowstats[3 * r + 0];
        t1 += rowstats[3 * r + 1];
        t2 += rowstats[3 * r + 2];
    }
    t0 = saec_block_sum(t0, s_warp);
    t1 = saec_block_sum(t1, s_warp);
    t2 = saec_block_sum(t2, s_warp);
    if (threadIdx.x == 0) {
        stats[SAEC_STAT_SSE] = t0;
        stats[SAEC_STAT_SST] = t1;
        stats[SAEC_STAT_COS_SUM] = t2;
    }
}

/* grad[i] = −2 grad_scale (x − x̂) / stats[SST] (0 when SST = 0, as on the CPU); the coefficient
   is read from device memory, so no host round trip.  x, xhat, grad [count].
   Floor: reads 2*count*4, writes count*4 bytes; 2*count FLOPs. */
__global__ void recon_grad_kernel(const float *__restrict__ x, const float *__restrict__ xhat,
                                  int64_t count, float grad_scale,
                                  const double *__restrict__ stats, float *__restrict__ grad,
                                  int vec) {
    const double sst = stats[SAEC_STAT_SST];
    const float coef = sst > 0 ? (float)(-2.0 * (double)grad_scale / sst) : 0.0f;
    auto scaled_diff = [=](float a, float b) { return coef * (a - b); };
    saec_ew_map(count, vec, grad, scaled_diff, x, xhat);
}

/* Pass 1 of sum_squares (SQUARES) / count_positive (!SQUARES): block b writes the sum over its
   grid-stride share of x [n] to partial[b] (double for squares, integer count otherwise).
   Floor: reads n*4 bytes; 2*n FLOPs. */
template <bool SQUARES>
__global__ void reduce_partial_kernel(const float *__restrict__ x, int64_t n,
                                      double *__restrict__ partial_sq,
                                      unsigned long long *__restrict__ partial_cnt, int vec) {
    __shared__ double s_d[32];
    __shared__ unsigned long long s_u[32];
    double sq = 0;
    unsigned long long cnt = 0;
    saec_ew_each(n, vec, x, [&](float v) {
        if (SQUARES)
            sq += (double)v * v;
        else
            cnt += v > 0.0f;
    });
    if (SQUARES) {
        sq = saec_block_sum(sq, s_d);
        if (threadIdx.x == 0) partial_sq[blockIdx.x] = sq;
    } else {
        cnt = saec_block_sum(cnt, s_u);
        if (threadIdx.x == 0) partial_cnt[blockIdx.x] = cnt;
    }
}

/* Pass 2: out[0] = [accumulate ? out[0] : 0] + Σ partials, one block, fixed order.
   Floor: reads nparts*8 bytes, writes 8. */
template <bool SQUARES>
__global__ void reduce_final_kernel(const double *__restrict__ partial_sq,
                                    const unsigned long long *__restrict__ partial_cnt,
                                    int nparts, int accumulate, double *__restrict__ out) {
    __shared__ double s_d[32];
    __shared__ unsigned long long s_u[32];
    if (SQUARES) {
        double t = 0;
        for (int i = threadIdx.x; i < nparts; i += blockDim.x) t += partial_sq[i];
        t = saec_block_sum(t, s_d);
        if (threadIdx.x == 0) out[0] = (accumulate ? out[0] : 0.0) + t;
    } else {
        unsigned long long t = 0;
        for (int i = threadIdx.x; i < nparts; i += blockDim.x) t += partial_cnt[i];
        t = saec_block_sum(t, s_u);
        if (threadIdx.x == 0) out[0] = (accumulate ? out[0] : 0.0) + (double)t;
    }
}

/* Geometric median, weights: w[i] = 1 / max(‖x_i − y‖, 1e-8) (float, like the CPU's scratch), one
   block per row; skipped once converged.  x [n, d], y [d] double, w [n].
   Floor: reads n*d*4 + d*8 bytes, writes n*4; 3*n*d FLOPs. */
__global__ void gm_weights_kernel(const float *__restrict__ x, const double *__restrict__ y,
                                  int64_t n, int64_t d, float *__restrict__ w,
                                  const int *__restrict__ converged) {
    __shared__ double s_warp[32];
    if (*converged) return;
    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        const float *row = x + r * d;
        double s = 0;
        for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
            const double e = row[c] - y[c];
            s += e * e;
        }
        s = saec_block_sum(s, s_warp);
        if (threadIdx.x == 0) {
            const double dist = sqrt(s);
            w[r] = (float)(1.0 / (dist > 1e-8 ? dist : 1e-8));
        }
    }
}

/* Geometric median, weighted column sums over one chunk of rows (block (32, 8), double, fixed
   order): partial[chunk, c] = Σ_{rows in chunk} w_i x_ic (w NULL: weight 1).
   Floor: reads rows*32*4 + rows*4 bytes per block; 2*n*d FLOPs in all. */
__global__ void gm_colsum_kernel(const float *__restrict__ x, const float *__restrict__ w,
                                 int64_t n, int64_t d, int64_t rows_per_chunk,
                                 double *__restrict__ partial, const int *__restrict__ converged) {
    __shared__ double s[8][33];
    if (*converged) return;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t col = (int64_t)blockIdx.x * 32 + tx;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
    int64_t r1 = r0 + rows_per_chunk;
    if (r1 > n) r1 = n;
    double acc = 0.0;
    if (col < d)
        for (int64_t r = r0 + ty; r < r1; r += 8)
            acc += (w ? (double)w[r] : 1.0) * (double)x[r * d + col];
    s[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && col < d) {
        double t = 0.0;
#pragma unroll
        for (int q = 0; q < 8; q++) t += s[q][tx];
        partial[(int64_t)blockIdx.y * d + col] = t;
    }
}

/* Geometric median, update (one block): y_new = Σ_chunks partial / Σ w; the move test
   ‖y_new − y‖ <= 1e-6 ‖y_new‖ sets *converged; out = (float) y.  first: y = the mean, no test.
   Floor: reads nchunks*d*8 + n*4 bytes, writes d*12. */
__global__ void gm_update_kernel(const double *__restrict__ partial, int nchunks, int64_t d,
                                 const float *__restrict__ w, int64_t n, int first,
                                 double *__restrict__ y, float *__restrict__ out,
                                 int *__restrict__ converged) {
    __shared__ double s_warp[32];
    if (*converged) return;
    double wsum = 0;
    if (w) {
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) wsum += (double)w[i];
        wsum = saec_block_sum(wsum, s_warp);
    } else {
        wsum = (double)n;
    }
    double move = 0, norm = 0;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
        double t = 0;
        for (int q = 0; q < nchunks; q++) t += partial[(int64_t)q * d + c];
        const double yn = t / wsum;
        if (!first) {
            const double e = yn - y[c];
            move += e * e;
            norm += yn * yn;
        }
        y[c] = yn;
        out[c] = (float)yn;
    }
    if (!first) {
        move = saec_block_sum(move, s_warp);
        norm = saec_block_sum(norm, s_warp);
        if (threadIdx.x == 0 && sqrt(move) <= 1e-6 * sqrt(norm)) *converged = 1;
    }
}

/* ---- launchers ------------------------------------------------------------------------------- */

extern "C" int saec_cuda_recon_loss_grad(saec_dev *dev, const float *x, const float *xhat,
                                         const float *mu, int64_t n, int64_t d, float grad_scale,
                                         double *stats, float *grad) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || d <= 0) {
        SAEC_CUDA_CHECK(cudaMemsetAsync(stats, 0, SAEC_STAT_COUNT * sizeof(double), st->stream));
        return SAEC_OK;
    }
    void *s = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, (size_t)n * 3 * sizeof(double), &s));
    double *rowstats = (double *)s;
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(x) && saec_cuda_aligned16(xhat) &&
                     saec_cuda_aligned16(mu);
    const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
    const unsigned blocks = (unsigned)(n < (int64_t)st->sm_count * 64 ? n : (int64_t)st->sm_count * 64);
    if (vec)
        recon_rows_kernel<true><<<blocks, threads, 0, st->stream>>>(x, xhat, mu, n, d, rowstats);
    else
        recon_rows_kernel<false><<<blocks, threads, 0, st->stream>>>(x, xhat, mu, n, d, rowstats);
    SAEC_CUDA_CHECK_LAUNCH("recon_rows_kernel");
    recon_final_kernel<<<1, FINAL_THREADS, 0, st->stream>>>(rowstats, n, stats);
    SAEC_CUDA_CHECK_LAUNCH("recon_final_kernel");
    return grad ? saec_cuda_recon_grad(dev, x, xhat, n, d, grad_scale, stats, grad) : SAEC_OK;
}

/* The nmse gradient from given (cross-rank) statistics: recon_loss_grad's gradient kernel with
   SST read from `stats`, so both ops write the same bits for the same SST (and the CPU's).
   Floor: reads 2*n*d*4, writes n*d*4 bytes. */
extern "C" int saec_cuda_recon_grad(saec_dev *dev, const float *x, const float *xhat, int64_t n,
                                    int64_t d, float grad_scale, const double *stats, float *grad) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || d <= 0) return SAEC_OK;
    const int64_t count = n * d;
    const int gvec = saec_ew_aligned16(x, xhat, grad);
    recon_grad_kernel<<<saec_ew_blocks(count, gvec, 256, st->sm_count), 256, 0, st->stream>>>(
        x, xhat, count, grad_scale, stats, grad, gvec);
    SAEC_CUDA_CHECK_LAUNCH("recon_grad_kernel");
    return SAEC_OK;
}

/* Partials for a 1-D reduction of n elements: a function of n alone (determinism). */
static int reduce_parts(int64_t n) {
    int64_t parts = (n + 8191) / 8192;
    if (parts < 1) parts = 1;
    if (parts > 1024) parts = 1024;
    return (int)parts;
}

template <bool SQUARES>
static int reduce_launch(saec_dev *dev, const float *x, int64_t n, int accumulate, double *out,
                         const char *name) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0) {
        if (!accumulate) SAEC_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), st->stream));
        return SAEC_OK;
    }
    const int parts = reduce_parts(n);
    void *s = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, (size_t)parts * 8, &s));
    const int vec = saec_ew_aligned16(x);
    double *part_sq = SQUARES ? (double *)s : NULL;
    unsigned long long *part_cnt = SQUARES ? NULL : (unsigned long long *)s;
    reduce_partial_kernel<SQUARES><<<parts, RED_THREADS, 0, st->stream>>>(x, n, part_sq, part_cnt,
                                                                          vec);
    SAEC_CUDA_CHECK_LAUNCH(name);
    reduce_final_kernel<SQUARES><<<1, RED_THREADS, 0, st->stream>>>(part_sq, part_cnt, parts,
                                                                    accumulate, out);
    SAEC_CUDA_CHECK_LAUNCH(name);
    return SAEC_OK;
}

extern "C" int saec_cuda_sum_squares(saec_dev *dev, const float *x, int64_t n, int accumulate,
                                     double *out) {
    return reduce_launch<true>(dev, x, n, accumulate, out, "sum_squares");
}

extern "C" int saec_cuda_count_positive(saec_dev *dev, const float *x, int64_t n, int accumulate,
                                        double *out) {
    return reduce_launch<false>(dev, x, n, accumulate, out, "count_positive");
}

/* Weiszfeld iterations from the mean, all on the device: each iteration is three launches
   (weights, weighted column sums, update) that return at once after convergence, so the host
   queues `iters` iterations without ever waiting. */
extern "C" int saec_cuda_geometric_median(saec_dev *dev, const float *x, int64_t n, int64_t d,
                                          int iters, float *scratch, float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || d <= 0) return SAEC_OK;
    /* column chunks as in col_sum: ~1024 blocks, a function of (n, d) alone */
    const int64_t col_tiles = (d + 31) / 32;
    int64_t nchunks = (1024 + col_tiles - 1) / col_tiles;
    const int64_t max_chunks = (n + 63) / 64;
    if (nchunks > max_chunks) nchunks = max_chunks;
    if (nchunks > 65535) nchunks = 65535;
    if (nchunks < 1) nchunks = 1;
    const int64_t rows_per_chunk = (n + nchunks - 1) / nchunks;
    nchunks = (n + rows_per_chunk - 1) / rows_per_chunk;
    if (col_tiles > INT32_MAX)
        return saec_fail(SAEC_ERR_DEVICE, NULL, "geometric_median: d too large");

    const size_t part_bytes = (size_t)nchunks * (size_t)d * sizeof(double);
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev,
                               saec_cuda_round256(part_bytes) +
                                   saec_cuda_round256((size_t)d * sizeof(double)) + 256,
                               &base));
    char *cur = (char *)base;
    double *partial = (double *)saec_cuda_carve(&cur, part_bytes);
    double *y = (double *)saec_cuda_carve(&cur, (size_t)d * sizeof(double));
    int *converged = (int *)saec_cuda_carve(&cur, sizeof(int));
    SAEC_CUDA_CHECK(cudaMemsetAsync(converged, 0, sizeof(int), st->stream));

    const dim3 cgrid((unsigned)col_tiles, (unsigned)nchunks), cblock(32, 8);
    const int wthreads = saec_cuda_row_threads(d, 256);
    const unsigned wblocks =
        (unsigned)(n < (int64_t)st->sm_count * 64 ? n : (int64_t)st->sm_count * 64);

    gm_colsum_kernel<<<cgrid, cblock, 0, st->stream>>>(x, NULL, n, d, rows_per_chunk, partial,
                                                       converged);
    SAEC_CUDA_CHECK_LAUNCH("gm_colsum_kernel");
    gm_update_kernel<<<1, FINAL_THREADS, 0, st->stream>>>(partial, (int)nchunks, d, NULL, n, 1, y,
                                                          out, converged);
    SAEC_CUDA_CHECK_LAUNCH("gm_update_kernel");
    for (int it = 0; it < iters; it++) {
        gm_weights_kernel<<<wblocks, wthreads, 0, st->stream>>>(x, y, n, d, scratch, converged);
        SAEC_CUDA_CHECK_LAUNCH("gm_weights_kernel");
        gm_colsum_kernel<<<cgrid, cblock, 0, st->stream>>>(x, scratch, n, d, rows_per_chunk,
                                                           partial, converged);
        SAEC_CUDA_CHECK_LAUNCH("gm_colsum_kernel");
        gm_update_kernel<<<1, FINAL_THREADS, 0, st->stream>>>(partial, (int)nchunks, d, scratch,
                                                              n, 0, y, out, converged);
        SAEC_CUDA_CHECK_LAUNCH("gm_update_kernel");
    }
    return SAEC_OK;
}
