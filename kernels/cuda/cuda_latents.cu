/* Latent bookkeeping on CUDA: dead-latent tracking on sparse codes (track_fired) and on dense
 * codes (track_fired_dense, a column pass), and dead_latents_update (the tail after the
 * cross-rank min-reduction of since_fired). Integer state only (track_fired_dense's counts are
 * integers held in doubles), so the integer atomics used here give exact, run-to-run identical
 * results; the dead count stays on the device as a double (no host synchronisation).
 */
#include "cuda_colpass.cuh"
#include "cuda_internal.cuh"

#define TF_THREADS 256

/* ---- device helpers -------------------------------------------------------------------------- */

/* Latent j after a batch of n tokens in which it fired `fired` times (both tracking ops):
   since_fired = fired ? 0 : since_fired + n; fire_count += fired (NULL: not kept);
   dead_mask = since_fired >= dead_after. Returns 1 when j is now dead. */
__device__ __forceinline__ int latent_after_batch(int64_t j, int64_t fired, int64_t n,
                                                  int64_t *__restrict__ since_fired,
                                                  int64_t *__restrict__ fire_count,
                                                  int64_t dead_after,
                                                  uint8_t *__restrict__ dead_mask) {
    const int64_t s = fired > 0 ? 0 : since_fired[j] + n;
    since_fired[j] = s;
    if (fire_count) fire_count[j] += fired;
    const int dead = s >= dead_after;
    dead_mask[j] = (uint8_t)dead;
    return dead;
}

/* The block's dead latents added to *dead_total (an integer atomic: exact). Every thread of the
   block calls it (a barrier). */
__device__ __forceinline__ void add_block_dead(int dead, unsigned long long *dead_total) {
    const int block_dead = __syncthreads_count(dead);
    if (threadIdx.x == 0 && block_dead) atomicAdd(dead_total, (unsigned long long)block_dead);
}

/* ---- kernels --------------------------------------------------------------------------------- */

/* fired[j] = #pairs (token, slot) with idx == j and val > 0 (fired zeroed before).
   idx, val [n*k]; fired [m].  Floor: reads n*k*8 bytes, ≤ n*k integer atomics. */
__global__ void tf_count_kernel(const int32_t *__restrict__ idx, const float *__restrict__ val,
                                int64_t P, int64_t m, int *__restrict__ fired) {
    for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < P;
         p += (int64_t)gridDim.x * blockDim.x) {
        const int32_t t = idx[p];
        if (t < 0 || t >= m || !(val[p] > 0.0f)) continue; /* empty, or kept but not firing */
        atomicAdd(&fired[t], 1);
    }
}

/* since_fired[j] = fired ? 0 : since_fired + n; fire_count[j] += fired; dead_mask[j] =
   since_fired >= dead_after; the block's dead count is added to *dead_total (integer).
   Floor: reads m*(4 + 8 + 8) bytes, writes m*(8 + 8 + 1). */
__global__ void tf_update_kernel(const int *__restrict__ fired, int64_t n, int64_t m,
                                 int64_t *__restrict__ since_fired,
                                 int64_t *__restrict__ fire_count, int64_t dead_after,
                                 uint8_t *__restrict__ dead_mask,
                                 unsigned long long *__restrict__ dead_total) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int dead =
        j < m ? latent_after_batch(j, fired[j], n, since_fired, fire_count, dead_after, dead_mask)
              : 0;
    add_block_dead(dead, dead_total);
}

/* *dead_count = (double) *dead_total.  Floor: 16 bytes. */
__global__ void tf_final_kernel(const unsigned long long *__restrict__ dead_total,
                                double *__restrict__ dead_count) {
    *dead_count = (double)*dead_total;
}

/* track_fired_dense, pass 1 (a column pass): partial[chunk, j] = #rows r of the chunk with
   val[r, j] > 0 (as a double: exact). Floor: reads n*m*4 bytes, writes nchunks*m*8. */
template <int V>
__global__ void __launch_bounds__(32 * CP_ROWS, CP_MIN_BLOCKS)
    tfd_cols_kernel(const float *__restrict__ val, int64_t n, int64_t m, int64_t rows_per_chunk,
                    double *__restrict__ partial) {
    __shared__ double s_red[CP_ROWS * 32 * V];
    int64_t c0, r0, r1;
    colpass_range<V>(n, rows_per_chunk, &c0, &r0, &r1);
    double acc[V];
#pragma unroll
    for (int v = 0; v < V; v++)
        acc[v] = 0.0;
    if (c0 < m) {
#pragma unroll 4
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CP_ROWS) {
            float x[V];
            ldv<V>(val + r * m + c0, x);
#pragma unroll
            for (int v = 0; v < V; v++)
                acc[v] += x[v] > 0.0f ? 1.0 : 0.0;
        }
    }
    colpass_store<V>(acc, s_red, c0, m, partial + (int64_t)blockIdx.y * m);
}

/* track_fired_dense, pass 2, per latent: fired = Σ_chunks partial; since_fired = fired ? 0 :
   since_fired + n; fire_count += fired; dead_mask = since_fired >= dead_after; the block's dead
   count goes to *dead_total (integer atomic: exact).
   Floor: reads nchunks*m*8 + m*16, writes m*17 bytes. */
__global__ void tfd_update_kernel(const double *__restrict__ partial, int nchunks, int64_t n,
                                  int64_t m, int64_t *__restrict__ since_fired,
                                  int64_t *__restrict__ fire_count, int64_t dead_after,
                                  uint8_t *__restrict__ dead_mask,
                                  unsigned long long *__restrict__ dead_total) {
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int dead = 0;
    if (j < m) {
        double t = 0.0;
        for (int c = 0; c < nchunks; c++)
            t += partial[(int64_t)c * m + j];
        dead = latent_after_batch(j, (int64_t)t, n, since_fired, fire_count, dead_after, dead_mask);
    }
    add_block_dead(dead, dead_total);
}

/* dead_latents_update, pass 1: since_fired[j] += add where since_fired[j] > 0; dead_mask[j] =
   since_fired[j] >= dead_after; partial[block] = the block's dead count (grid-stride share).
   Floor: read-modify-writes m*9 bytes. */
__global__ void dlu_update_kernel(int64_t *__restrict__ since_fired, int64_t m, int64_t add,
                                  int64_t dead_after, uint8_t *__restrict__ dead_mask,
                                  unsigned long long *__restrict__ partial) {
    __shared__ unsigned long long s_warp[32];
    unsigned long long dead = 0;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < m;
         j += (int64_t)gridDim.x * blockDim.x) {
        int64_t s = since_fired[j];
        if (s > 0) {
            s += add;
            since_fired[j] = s;
        }
        const int is_dead = s >= dead_after;
        dead_mask[j] = (uint8_t)is_dead;
        dead += (unsigned long long)is_dead;
    }
    dead = saec_block_sum(dead, s_warp);
    if (threadIdx.x == 0) partial[blockIdx.x] = dead;
}

/* dead_latents_update, pass 2 (one block): *dead_count = Σ partial (integers: exact).
   Floor: reads nparts*8 bytes, writes 8. */
__global__ void dlu_final_kernel(const unsigned long long *__restrict__ partial, int nparts,
                                 double *__restrict__ dead_count) {
    __shared__ unsigned long long s_warp[32];
    unsigned long long t = 0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x)
        t += partial[i];
    t = saec_block_sum(t, s_warp);
    if (threadIdx.x == 0) *dead_count = (double)t;
}

/* ---- launchers ------------------------------------------------------------------------------- */

/* Floor: reads n*k*8 bytes, read-modify-writes m*(8 + 8 + 1) bytes. */
extern "C" int saec_cuda_track_fired(saec_dev *dev, const int32_t *idx, const float *val,
                                     int64_t n, int k, int64_t m, int64_t *since_fired,
                                     int64_t *fire_count, int64_t dead_after, uint8_t *dead_mask,
                                     double *dead_count) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (m <= 0) {
        SAEC_CUDA_CHECK(cudaMemsetAsync(dead_count, 0, sizeof(double), st->stream));
        return SAEC_OK;
    }
    const int64_t P = n > 0 && k > 0 ? n * (int64_t)k : 0;
    void *s = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, 256 + saec_cuda_round256((size_t)m * sizeof(int)), &s));
    unsigned long long *dead_total = (unsigned long long *)s;
    int *fired = (int *)((char *)s + 256);
    /* one memset clears the counter and the per-latent counts (they are contiguous) */
    SAEC_CUDA_CHECK(cudaMemsetAsync(s, 0, 256 + (size_t)m * sizeof(int), st->stream));
    if (P > 0) {
        tf_count_kernel<<<saec_cuda_blocks(P, TF_THREADS, st->sm_count), TF_THREADS, 0,
                          st->stream>>>(idx, val, P, m, fired);
        SAEC_CUDA_CHECK_LAUNCH("tf_count_kernel");
    }
    const int64_t blocks = (m + TF_THREADS - 1) / TF_THREADS;
    if (blocks > (int64_t)INT32_MAX)
        return saec_fail(SAEC_ERR_DEVICE, NULL, "track_fired: m = %lld too large", (long long)m);
    tf_update_kernel<<<(unsigned)blocks, TF_THREADS, 0, st->stream>>>(
        fired, n > 0 ? n : 0, m, since_fired, fire_count, dead_after, dead_mask, dead_total);
    SAEC_CUDA_CHECK_LAUNCH("tf_update_kernel");
    tf_final_kernel<<<1, 1, 0, st->stream>>>(dead_total, dead_count);
    SAEC_CUDA_CHECK_LAUNCH("tf_final_kernel");
    return SAEC_OK;
}

/* Floor: reads n*m*4 bytes, read-modify-writes m*17 bytes. A column pass (integer counts in
   double partials, exact) and a per-latent update; 3 launches + 1 memset. */
extern "C" int saec_cuda_track_fired_dense(saec_dev *dev, const float *val, int64_t n, int64_t m,
                                           int64_t *since_fired, int64_t *fire_count,
                                           int64_t dead_after, uint8_t *dead_mask,
                                           double *dead_count) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("track_fired_dense", n >= 0 && m >= 1);
    SAEC_CUDA_REQUIRE("track_fired_dense", since_fired && dead_mask && dead_count);
    SAEC_CUDA_REQUIRE("track_fired_dense", n == 0 || val);
    if ((m + 31) / 32 > (int64_t)INT32_MAX)
        return saec_fail(SAEC_ERR_DEVICE, NULL,
                         "track_fired_dense: m = %lld is too large for the CUDA backend",
                         (long long)m);
    int64_t nchunks = 0, rpc = 1;
    if (n > 0) colpass_plan(n, m, &nchunks, &rpc);
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, 256 + saec_cuda_round256((size_t)(nchunks * m) * 8), &base));
    char *cur = (char *)base;
    unsigned long long *dead_total = (unsigned long long *)saec_cuda_carve(&cur, 8);
    double *partial = (double *)saec_cuda_carve(&cur, (size_t)(nchunks * m) * 8);
    SAEC_CUDA_CHECK(cudaMemsetAsync(dead_total, 0, 8, st->stream));
    if (n > 0) {
        const int vec = m % 4 == 0 && saec_cuda_aligned16(val);
        const dim3 grid = colpass_grid(m, vec, nchunks), block(32, CP_ROWS);
        if (vec)
            tfd_cols_kernel<4><<<grid, block, 0, st->stream>>>(val, n, m, rpc, partial);
        else
            tfd_cols_kernel<1><<<grid, block, 0, st->stream>>>(val, n, m, rpc, partial);
        SAEC_CUDA_CHECK_LAUNCH("tfd_cols_kernel");
    }
    tfd_update_kernel<<<(unsigned)((m + TF_THREADS - 1) / TF_THREADS), TF_THREADS, 0, st->stream>>>(
        partial, (int)nchunks, n, m, since_fired, fire_count, dead_after, dead_mask, dead_total);
    SAEC_CUDA_CHECK_LAUNCH("tfd_update_kernel");
    tf_final_kernel<<<1, 1, 0, st->stream>>>(dead_total, dead_count);
    SAEC_CUDA_CHECK_LAUNCH("tf_final_kernel");
    return SAEC_OK;
}

/* Two launches, no atomics and no memset: per-block counts, then one block adds them.
   Floor: read-modify-writes m*9 bytes. */
extern "C" int saec_cuda_dead_latents_update(saec_dev *dev, int64_t *since_fired, int64_t m,
                                             int64_t add, int64_t dead_after, uint8_t *dead_mask,
                                             double *dead_count) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (m < 0 || add < 0 || !dead_count)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "cuda op dead_latents_update: invalid arguments (m %lld, add %lld)",
                         (long long)m, (long long)add);
    if (m == 0) {
        SAEC_CUDA_CHECK(cudaMemsetAsync(dead_count, 0, sizeof(double), st->stream));
        return SAEC_OK;
    }
    const unsigned blocks = saec_cuda_blocks(m, TF_THREADS, st->sm_count);
    void *s = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, (size_t)blocks * sizeof(unsigned long long), &s));
    unsigned long long *partial = (unsigned long long *)s; /* [blocks] */
    dlu_update_kernel<<<blocks, TF_THREADS, 0, st->stream>>>(since_fired, m, add, dead_after,
                                                             dead_mask, partial);
    SAEC_CUDA_CHECK_LAUNCH("dlu_update_kernel");
    dlu_final_kernel<<<1, 1024, 0, st->stream>>>(partial, (int)blocks, dead_count);
    SAEC_CUDA_CHECK_LAUNCH("dlu_final_kernel");
    return SAEC_OK;
}
