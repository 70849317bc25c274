/* Column passes on CUDA: reductions over the n rows of each column of a dense [n, m] matrix,
 * shared by the dense dead-latent tracking (cuda_latents.cu) and the SAE variants
 * (cuda_variants.cu). A column-pass block is (32, CP_ROWS) threads holding a tile of 32*V
 * columns and a chunk of rows; each thread sums its rows in order (in double), the block's row
 * groups are combined in a fixed order (colpass_store), and a second kernel adds the chunks in
 * order. The chunking (colpass_plan) is a function of (n, m) alone, the same for the float4 and
 * the scalar path, so results repeat bit for bit run to run.
 *
 * For .cu files only, after cuda_internal.cuh.
 */
#ifndef SAEC_CUDA_COLPASS_CUH
#define SAEC_CUDA_COLPASS_CUH

#include "cuda_internal.cuh"

#define CP_ROWS 8   /* row groups (threadIdx.y) of a column-pass block; block = (32, 8) */
#define CP_TILE 128 /* columns per column-pass block on the float4 path (32 lanes x 4) */
/* Column-pass blocks per SM that the register budget must allow (4 x 256 threads: 50% occupancy;
   caps the kernels at 64 registers). */
#define CP_MIN_BLOCKS 4
#define CP_TARGET 2048 /* column-pass blocks aimed at (float4 tiles x row chunks) */

/* ---- vector loads and stores ---------------------------------------------------------------- */

/* V floats at p (V = 4: one float4 access; p must be 16-byte aligned). */
template <int V> __device__ __forceinline__ void ldv(const float *p, float (&o)[V]);
template <> __device__ __forceinline__ void ldv<1>(const float *p, float (&o)[1]) { o[0] = *p; }
template <> __device__ __forceinline__ void ldv<4>(const float *p, float (&o)[4]) {
    const float4 t = *reinterpret_cast<const float4 *>(p);
    o[0] = t.x, o[1] = t.y, o[2] = t.z, o[3] = t.w;
}
template <int V> __device__ __forceinline__ void stv(float *p, const float (&o)[V]);
template <> __device__ __forceinline__ void stv<1>(float *p, const float (&o)[1]) { *p = o[0]; }
template <> __device__ __forceinline__ void stv<4>(float *p, const float (&o)[4]) {
    *reinterpret_cast<float4 *>(p) = make_float4(o[0], o[1], o[2], o[3]);
}

/* ---- device side ----------------------------------------------------------------------------- */

/* The column-pass epilogue: acc[V] (this thread's sums over its rows for columns c0 .. c0+V-1)
   is combined over the block's 8 row groups in the fixed order y = 0..7 and stored to
   out[c0 + v] (out: this chunk's row of the partials [nchunks, m]). s: [CP_ROWS * 32 * V]
   shared doubles, laid out [y][v][lane] (conflict-free). Every thread of the block calls it. */
template <int V>
__device__ __forceinline__ void colpass_store(const double (&acc)[V], double *s, int64_t c0,
                                              int64_t m, double *__restrict__ out) {
    const int tx = threadIdx.x, ty = threadIdx.y;
#pragma unroll
    for (int v = 0; v < V; v++)
        s[(ty * V + v) * 32 + tx] = acc[v];
    __syncthreads();
    if (ty == 0) {
#pragma unroll
        for (int v = 0; v < V; v++) {
            double t = 0.0;
#pragma unroll
            for (int y = 0; y < CP_ROWS; y++)
                t += s[(y * V + v) * 32 + tx];
            if (c0 + v < m) out[c0 + v] = t;
        }
    }
    __syncthreads(); /* s is reused by the next call */
}

/* The first column and the row range of this column-pass block. */
template <int V>
__device__ __forceinline__ void colpass_range(int64_t n, int64_t rows_per_chunk, int64_t *c0,
                                              int64_t *r0, int64_t *r1) {
    *c0 = ((int64_t)blockIdx.x * 32 + threadIdx.x) * V;
    *r0 = (int64_t)blockIdx.y * rows_per_chunk;
    const int64_t e = *r0 + rows_per_chunk;
    *r1 = e < n ? e : n;
}

/* ---- host side ------------------------------------------------------------------------------- */

/* The row chunking of a column pass over x [n, m]: about CP_TARGET blocks of CP_TILE columns,
   at least 64 rows (8 per row group) per chunk. A function of (n, m) alone: the summation order,
   hence the result, is the same on every run and on both load paths. */
static inline void colpass_plan(int64_t n, int64_t m, int64_t *nchunks, int64_t *rows_per_chunk) {
    const int64_t tiles = (m + CP_TILE - 1) / CP_TILE;
    int64_t c = (CP_TARGET + tiles - 1) / tiles;
    const int64_t max_chunks = (n + 63) / 64;
    if (c > max_chunks) c = max_chunks;
    if (c > 65535) c = 65535;
    if (c < 1) c = 1;
    int64_t rpc = (n + c - 1) / c;
    if (rpc < 1) rpc = 1;
    c = (n + rpc - 1) / rpc;
    if (c < 1) c = 1;
    *nchunks = c;
    *rows_per_chunk = rpc;
}

/* The grid of a column pass: column tiles of 32*V columns x row chunks. */
static inline dim3 colpass_grid(int64_t m, int vec, int64_t nchunks) {
    const int64_t cols = vec ? 32 * 4 : 32;
    return dim3((unsigned)((m + cols - 1) / cols), (unsigned)nchunks);
}

#endif
