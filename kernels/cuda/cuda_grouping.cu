/* Grouping ops on CUDA: tokens by key (TIDE timestep buckets, MoE experts; SPEC §6–7).
 *
 *   group_count      warp-aggregated shared-memory histograms, flushed with integer atomics
 *   exclusive_scan   one block (n_groups is small: a few to ~1e5)
 *   group_permute    CUB radix sort of (key, item) pairs: stable, deterministic
 *   gather_rows / scatter_rows   one block per row, float4 when rows and pointers allow
 *   grouped_gemm     a hand-written tiled SGEMM whose blocks find their group from the device
 *                    offsets (no host synchronisation: the row counts never leave the GPU)
 *   modulate_encode  a modulation kernel writing u, then the backend's cuBLASLt GEMM
 *
 * Integer outputs are exact; gather/scatter/modulation round each product and sum separately
 * (__fmul_rn/__fadd_rn, no FMA contraction), so they equal the CPU reference bit for bit.
 */
#include <string.h>

#include <cub/device/device_radix_sort.cuh>

#include "cuda_internal.cuh"

/* ---- group_count ----------------------------------------------------------------------------- */

/* counts[g] += #{i : keys[i] == g} over this block's grid-stride share (counts zeroed before).
   Each warp first merges equal keys (__match_any_sync: one atomic per distinct key per warp, so
   10 TIDE buckets or 3 experts do not serialise on a few bins), then adds into a shared-memory
   histogram (use_smem) flushed once per block, or straight into global memory when n_groups is
   too large for shared memory. Integer atomics: the result does not depend on the order.
   Floor: reads n_items*4 bytes. */
__global__ void group_count_kernel(const int32_t *__restrict__ keys, int64_t n_items, int n_groups,
                                   int use_smem, int32_t *__restrict__ counts) {
    extern __shared__ int s_hist[]; /* [n_groups] when use_smem */
    const int lane = threadIdx.x & 31;
    if (use_smem) {
        for (int g = threadIdx.x; g < n_groups; g += blockDim.x) s_hist[g] = 0;
        __syncthreads();
    }
    int *hist = use_smem ? s_hist : counts;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    /* base is the same for the whole warp, so every lane takes part in __match_any_sync */
    for (int64_t base = tid - lane; base < n_items; base += stride) {
        const int64_t i = base + lane;
        const int32_t k = i < n_items ? keys[i] : -1;
        const int valid = k >= 0 && k < n_groups;
        const unsigned peers = __match_any_sync(0xffffffffu, valid ? k : -1);
        if (valid && lane == __ffs(peers) - 1) atomicAdd(&hist[k], __popc(peers));
    }
    if (use_smem) {
        __syncthreads();
        for (int g = threadIdx.x; g < n_groups; g += blockDim.x)
            if (s_hist[g]) atomicAdd(&counts[g], s_hist[g]);
    }
}

/* ---- exclusive_scan (also the grouped GEMM's tile offsets) ----------------------------------- */

#define SCAN_THREADS 1024
#define SCAN_ITEMS 4

/* out[0] = 0, out[g + 1] = out[g] + v(g), with v(g) = counts[g] (tile_rows == 0) or the number of
   tile_rows-row tiles of group g, ceil((offsets[g+1] − offsets[g]) / tile_rows). One block of
   SCAN_THREADS walks the groups in chunks of SCAN_THREADS*SCAN_ITEMS with a carried total:
   n_groups is at most ~1e5, so one block finishes in a few microseconds, and a multi-block scan
   would cost more in launches than it saves.
   Floor: reads n_groups*4 (or (n_groups+1)*4), writes (n_groups+1)*4 bytes. */
__global__ void __launch_bounds__(SCAN_THREADS)
    group_scan_kernel(const int32_t *__restrict__ counts, const int32_t *__restrict__ offsets,
                      int n_groups, int tile_rows, int32_t *__restrict__ out) {
    __shared__ int s_warp[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    int carry = 0; /* total of the previous chunks, the same in every thread */
    if (threadIdx.x == 0) out[0] = 0;
    for (int64_t base = 0; base < n_groups; base += (int64_t)blockDim.x * SCAN_ITEMS) {
        int v[SCAN_ITEMS], sum = 0;
        const int64_t g0 = base + (int64_t)threadIdx.x * SCAN_ITEMS;
#pragma unroll
        for (int q = 0; q < SCAN_ITEMS; q++) {
            const int64_t g = g0 + q;
            int x = 0;
            if (g < n_groups) {
                if (tile_rows == 0) {
                    x = counts[g];
                } else {
                    const int rows = offsets[g + 1] - offsets[g];
                    x = rows > 0 ? (rows + tile_rows - 1) / tile_rows : 0;
                }
            }
            v[q] = x;
            sum += x;
        }
        int x = sum; /* inclusive warp scan of the thread sums */
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int y = __shfl_up_sync(0xffffffffu, x, o);
            if (lane >= o) x += y;
        }
        if (lane == 31) s_warp[warp] = x;
        __syncthreads();
        if (warp == 0) {
            int w = lane < nwarps ? s_warp[lane] : 0;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const int y = __shfl_up_sync(0xffffffffu, w, o);
                if (lane >= o) w += y;
            }
            if (lane < nwarps) s_warp[lane] = w;
        }
        __syncthreads();
        int run = carry + (warp > 0 ? s_warp[warp - 1] : 0) + x - sum; /* exclusive prefix */
#pragma unroll
        for (int q = 0; q < SCAN_ITEMS; q++) {
            run += v[q];
            if (g0 + q < n_groups) out[g0 + q + 1] = run;
        }
        carry += s_warp[nwarps - 1];
        __syncthreads(); /* s_warp is rewritten by the next chunk */
    }
}

/* ---- group_permute --------------------------------------------------------------------------- */

/* Sort input: key' = key for a grouped item, n_groups for "no group" (so those sort last), and
   the item index as the value.  Floor: reads n_items*4, writes n_items*8 bytes. */
__global__ void permute_prep_kernel(const int32_t *__restrict__ keys, int64_t n_items,
                                    int n_groups, uint32_t *__restrict__ skey,
                                    int32_t *__restrict__ sval) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_items;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int32_t k = keys[i];
        skey[i] = (k >= 0 && k < n_groups) ? (uint32_t)k : (uint32_t)n_groups;
        sval[i] = (int32_t)i;
    }
}

/* perm[p] = sorted[p] and inv[sorted[p]] = p for the offsets[n_groups] grouped positions; the
   tail (the "no group" items) gets inv = −1. The grouped count is read on the device.
   Floor: reads n_items*4, writes 2*n_items*4 bytes. */
__global__ void permute_finish_kernel(const int32_t *__restrict__ sorted, int64_t n_items,
                                      const int32_t *__restrict__ offsets, int n_groups,
                                      int32_t *__restrict__ perm, int32_t *__restrict__ inv) {
    const int64_t n_sorted = offsets[n_groups];
    for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n_items;
         p += (int64_t)gridDim.x * blockDim.x) {
        const int32_t item = sorted[p];
        if (p < n_sorted) {
            perm[p] = item;
            inv[item] = (int32_t)p;
        } else {
            inv[item] = -1;
        }
    }
}

/* ---- gather_rows / scatter_rows -------------------------------------------------------------- */

/* dst[p, :] = src[perm[p] / r, :]; one block per row (grid-stride), threads over columns; VEC:
   d % 4 == 0 and 16-byte aligned pointers.  Floor: reads and writes n_out*d*4 bytes (+ n_out*4). */
template <bool VEC>
__global__ void gather_rows_kernel(const float *__restrict__ src, const int32_t *__restrict__ perm,
                                   int64_t n_out, int r, int64_t d, float *__restrict__ dst) {
    for (int64_t p = blockIdx.x; p < n_out; p += gridDim.x) {
        const int64_t t = perm[p] / r;
        if (VEC) {
            const float4 *s = reinterpret_cast<const float4 *>(src + t * d);
            float4 *o = reinterpret_cast<float4 *>(dst + p * d);
            for (int64_t c = threadIdx.x; c < d / 4; c += blockDim.x) o[c] = s[c];
        } else {
            const float *s = src + t * d;
            float *o = dst + p * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) o[c] = s[c];
        }
    }
}

__device__ __forceinline__ float weighted_add(float acc, const float *w, float wj, float s) {
    return w ? __fadd_rn(acc, __fmul_rn(wj, s)) : __fadd_rn(acc, s);
}

/* out[t, :] = [acc ? out : 0] + Σ_j w[t*r + j] src[inv[t*r + j], :] in slot order (the CPU's
   order and rounding: bitwise equal). One block per token row, so no atomics and no
   nondeterminism; a token's r slots are read by every thread (L1 broadcast).
   Floor: reads n_tokens*r*(8 + d*4), writes n_tokens*d*4 bytes (+ n_tokens*d*4 with accumulate). */
template <bool VEC>
__global__ void scatter_rows_kernel(const float *__restrict__ src, const int32_t *__restrict__ inv,
                                    const float *__restrict__ w, int64_t n_tokens, int r,
                                    int64_t d, int accumulate, float *__restrict__ out) {
    for (int64_t t = blockIdx.x; t < n_tokens; t += gridDim.x) {
        if (VEC) {
            float4 *o = reinterpret_cast<float4 *>(out + t * d);
            for (int64_t c = threadIdx.x; c < d / 4; c += blockDim.x) {
                float4 acc = accumulate ? o[c] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                for (int j = 0; j < r; j++) {
                    const int32_t p = inv[t * r + j];
                    if (p < 0) continue;
                    const float wj = w ? w[t * r + j] : 1.0f;
                    const float4 s = reinterpret_cast<const float4 *>(src + (int64_t)p * d)[c];
                    acc.x = weighted_add(acc.x, w, wj, s.x);
                    acc.y = weighted_add(acc.y, w, wj, s.y);
                    acc.z = weighted_add(acc.z, w, wj, s.z);
                    acc.w = weighted_add(acc.w, w, wj, s.w);
                }
                o[c] = acc;
            }
        } else {
            float *o = out + t * d;
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
                float acc = accumulate ? o[c] : 0.0f;
                for (int j = 0; j < r; j++) {
                    const int32_t p = inv[t * r + j];
                    if (p < 0) continue;
                    acc = weighted_add(acc, w, w ? w[t * r + j] : 1.0f, src[(int64_t)p * d + c]);
                }
                o[c] = acc;
            }
        }
    }
}

/* ---- grouped_gemm ---------------------------------------------------------------------------- */

#define GG_BM 64 /* rows of a tile */
#define GG_BN 64 /* columns of a tile */
#define GG_BK 16 /* depth of one shared-memory stage */
#define GG_THREADS 256 /* 16 x 16 threads, 4 x 4 outputs each */

/* Grouped SGEMM, C[rows_g] = alpha A[rows_g] op(B_g) + beta C[rows_g] + bias[g] for every group.
   The row counts live on the device and the host must not wait for them, so the grid cannot be
   sized per group. Instead tile_off[g] (an exclusive scan of each group's number of 64-row
   tiles, computed on the device just before) numbers the row tiles of all groups 0 ..
   tile_off[n_groups] − 1, and a persistent grid walks the (row tile, column tile) pairs; a block
   finds its group by binary search in tile_off (empty groups own no tiles and are never found).
   Consecutive work items share their row tile, so the A tile is reused through L2.
   The tile is the classic 64x64x16 SIMT SGEMM (FP32 FMA, no tensor cores, single-buffered
   shared memory): a correct, simple baseline at a fraction of cuBLAS's FP32 rate (expected
   roughly 30–50% on Hopper); the MoE and `separate` shapes it serves (a few groups of a few
   thousand rows, N and K in the hundreds to thousands) are far smaller than the encoder GEMM.
   Floor: 2*rows*N*K FLOPs; reads rows*K*4 + n_groups*K*N*4, writes rows*N*4 bytes. */
__global__ void __launch_bounds__(GG_THREADS, 2)
    grouped_gemm_kernel(int trans_b, int n_groups, const int32_t *__restrict__ offsets,
                        const int32_t *__restrict__ tile_off, int64_t N, int64_t K, float alpha,
                        const float *__restrict__ A, const float *__restrict__ B, float beta,
                        float *__restrict__ C, const float *__restrict__ bias) {
    __shared__ __align__(16) float As[GG_BK][GG_BM + 4]; /* A tile, transposed: [k][row] */
    __shared__ __align__(16) float Bs[GG_BK][GG_BN + 4]; /* op(B) tile: [k][col] */
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t n_tiles_n = (N + GG_BN - 1) / GG_BN;
    const int64_t total = (int64_t)tile_off[n_groups] * n_tiles_n;
    for (int64_t work = blockIdx.x; work < total; work += gridDim.x) {
        const int mt = (int)(work / n_tiles_n);
        const int64_t n0 = (work % n_tiles_n) * GG_BN;
        /* the largest g < n_groups with tile_off[g] <= mt: then tile_off[g + 1] > mt */
        int lo = 0, hi = n_groups - 1;
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (tile_off[mid] <= mt)
                lo = mid;
            else
                hi = mid - 1;
        }
        const int g = lo;
        const int64_t row0 = (int64_t)offsets[g] + (int64_t)(mt - tile_off[g]) * GG_BM;
        const int64_t row_end = offsets[g + 1];
        const float *Bg = B + (int64_t)g * K * N; /* [K, N], or [N, K] when trans_b */

        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

        if (alpha != 0.0f) { /* BLAS rule: alpha == 0 reads neither A nor B */
            for (int64_t k0 = 0; k0 < K; k0 += GG_BK) {
#pragma unroll
                for (int q = 0; q < 4; q++) { /* A: 16 consecutive k of a row per 16 threads */
                    const int rr = tid / 16 + 16 * q, kk = tid % 16;
                    const int64_t row = row0 + rr, k = k0 + kk;
                    As[kk][rr] = (row < row_end && k < K) ? A[row * K + k] : 0.0f;
                }
                if (!trans_b) {
#pragma unroll
                    for (int q = 0; q < 4; q++) { /* B [K, N]: 64 consecutive columns */
                        const int kk = tid / 64 + 4 * q, cc = tid % 64;
                        const int64_t k = k0 + kk, col = n0 + cc;
                        Bs[kk][cc] = (k < K && col < N) ? Bg[k * N + col] : 0.0f;
                    }
                } else {
#pragma unroll
                    for (int q = 0; q < 4; q++) { /* B [N, K]: 16 consecutive k of a column */
                        const int kk = tid % 16, cc = tid / 16 + 16 * q;
                        const int64_t k = k0 + kk, col = n0 + cc;
                        Bs[kk][cc] = (k < K && col < N) ? Bg[col * K + k] : 0.0f;
                    }
                }
                __syncthreads();
#pragma unroll
                for (int kk = 0; kk < GG_BK; kk++) {
                    const float4 a = *reinterpret_cast<const float4 *>(&As[kk][ty * 4]);
                    const float4 b = *reinterpret_cast<const float4 *>(&Bs[kk][tx * 4]);
                    const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                }
                __syncthreads();
            }
        }

#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int64_t row = row0 + ty * 4 + i;
            if (row >= row_end) continue;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int64_t col = n0 + tx * 4 + j;
                if (col >= N) continue;
                float v = alpha * acc[i][j];
                if (beta != 0.0f) v += beta * C[row * N + col]; /* beta == 0: C is not read */
                if (bias) v += bias[(int64_t)g * N + col];
                C[row * N + col] = v;
            }
        }
    }
}

/* ---- modulate_encode ------------------------------------------------------------------------- */

/* u[t, :] = xc[t, :] ⊙ (1 + scale[b_t, :]) + shift[b_t, :] (a bucket outside [0, n_buckets):
   u = xc, unmodulated). One block per row, float4 when d % 4 == 0 and pointers are aligned;
   each operation rounded as on the CPU (bitwise equal).
   Floor: reads n*d*4 (+ the n_buckets*d*8 tables, L2-resident), writes n*d*4 bytes. */
template <bool VEC>
__global__ void modulate_rows_kernel(const float *__restrict__ xc,
                                     const int32_t *__restrict__ bucket,
                                     const float *__restrict__ scale,
                                     const float *__restrict__ shift, int n_buckets, int64_t n,
                                     int64_t d, float *__restrict__ u) {
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        const int32_t b = bucket[t];
        const bool mod = b >= 0 && b < n_buckets;
        const int64_t row = (int64_t)(mod ? b : 0) * d; /* row b of scale, shift [n_buckets, d] */
        const float *s = scale + row, *h = shift + row;
        if (VEC) {
            const float4 *x4 = reinterpret_cast<const float4 *>(xc + t * d);
            float4 *u4 = reinterpret_cast<float4 *>(u + t * d);
            for (int64_t c = threadIdx.x; c < d / 4; c += blockDim.x) {
                float4 x = x4[c];
                if (mod) {
                    const float4 sv = reinterpret_cast<const float4 *>(s)[c];
                    const float4 hv = reinterpret_cast<const float4 *>(h)[c];
                    x.x = __fadd_rn(__fmul_rn(x.x, __fadd_rn(1.0f, sv.x)), hv.x);
                    x.y = __fadd_rn(__fmul_rn(x.y, __fadd_rn(1.0f, sv.y)), hv.y);
                    x.z = __fadd_rn(__fmul_rn(x.z, __fadd_rn(1.0f, sv.z)), hv.z);
                    x.w = __fadd_rn(__fmul_rn(x.w, __fadd_rn(1.0f, sv.w)), hv.w);
                }
                u4[c] = x;
            }
        } else {
            for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
                const float x = xc[t * d + c];
                u[t * d + c] = mod ? __fadd_rn(__fmul_rn(x, __fadd_rn(1.0f, s[c])), h[c]) : x;
            }
        }
    }
}

/* ---- launchers ------------------------------------------------------------------------------- */

extern "C" int saec_cuda_group_count(saec_dev *dev, const int32_t *keys, int64_t n_items,
                                     int n_groups, int32_t *counts) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n_groups <= 0) return SAEC_OK;
    SAEC_CUDA_CHECK(cudaMemsetAsync(counts, 0, (size_t)n_groups * sizeof *counts, st->stream));
    if (n_items <= 0) return SAEC_OK;
    const int threads = 256;
    /* Each block flushes a full histogram, so blocks get enough items (>= 8 per thread) to
       amortise it, and no more blocks than fill the GPU. */
    unsigned blocks = saec_cuda_blocks((n_items + 7) / 8, threads, st->sm_count);
    const size_t smem = (size_t)n_groups * sizeof(int);
    const int use_smem = smem <= 48 * 1024;
    if (use_smem && n_groups > 1024 && blocks > (unsigned)st->sm_count)
        blocks = (unsigned)st->sm_count; /* large histograms: flush cost grows with blocks */
    group_count_kernel<<<blocks, threads, use_smem ? smem : 0, st->stream>>>(
        keys, n_items, n_groups, use_smem, counts);
    SAEC_CUDA_CHECK_LAUNCH("group_count_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_exclusive_scan(saec_dev *dev, const int32_t *counts, int n_groups,
                                        int32_t *offsets) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n_groups < 0) return SAEC_OK;
    group_scan_kernel<<<1, SCAN_THREADS, 0, st->stream>>>(counts, NULL, n_groups, 0, offsets);
    SAEC_CUDA_CHECK_LAUNCH("group_scan_kernel");
    return SAEC_OK;
}

/* Floor: reads n_items*4 + (n_groups+1)*4, writes 2*n_items*4 bytes. The radix sort costs
   more: ceil(bits / 8) passes (bits = log2(n_groups + 1): 1 pass for up to 255 groups), each
   reading and writing keys and values (~16 bytes per item), plus the prep and finish passes. */
extern "C" int saec_cuda_group_permute(saec_dev *dev, const int32_t *keys, int64_t n_items,
                                       int n_groups, const int32_t *offsets, int32_t *perm,
                                       int32_t *inv) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n_items <= 0 || n_groups < 0) return SAEC_OK;
    if (n_items > INT32_MAX)
        return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                         "cuda op group_permute: n_items %lld exceeds int32", (long long)n_items);
    int end_bit = 1; /* keys' = 0 .. n_groups need end_bit bits */
    while (end_bit < 32 && ((uint64_t)1 << end_bit) <= (uint64_t)n_groups) end_bit++;
    const int num = (int)n_items;

    /* CUB's temporary-storage query launches nothing and does not synchronise. */
    size_t temp_bytes = 0;
    cub::DoubleBuffer<uint32_t> dkeys(NULL, NULL);
    cub::DoubleBuffer<int32_t> dvals(NULL, NULL);
    SAEC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, temp_bytes, dkeys, dvals, num, 0, end_bit,
                                                    st->stream));
    const size_t arr = saec_cuda_round256((size_t)n_items * 4);
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, 4 * arr + saec_cuda_round256(temp_bytes), &base));
    char *cur = (char *)base;
    uint32_t *k0 = (uint32_t *)saec_cuda_carve(&cur, arr); /* [n_items] sort keys, two buffers */
    uint32_t *k1 = (uint32_t *)saec_cuda_carve(&cur, arr);
    int32_t *v0 = (int32_t *)saec_cuda_carve(&cur, arr); /* [n_items] item indices, two buffers */
    int32_t *v1 = (int32_t *)saec_cuda_carve(&cur, arr);
    void *temp = saec_cuda_carve(&cur, temp_bytes);

    const int threads = 256;
    const unsigned blocks = saec_cuda_blocks(n_items, threads, st->sm_count);
    permute_prep_kernel<<<blocks, threads, 0, st->stream>>>(keys, n_items, n_groups, k0, v0);
    SAEC_CUDA_CHECK_LAUNCH("permute_prep_kernel");
    dkeys = cub::DoubleBuffer<uint32_t>(k0, k1);
    dvals = cub::DoubleBuffer<int32_t>(v0, v1);
    SAEC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, dkeys, dvals, num, 0, end_bit,
                                                    st->stream));
    permute_finish_kernel<<<blocks, threads, 0, st->stream>>>(dvals.Current(), n_items, offsets,
                                                              n_groups, perm, inv);
    SAEC_CUDA_CHECK_LAUNCH("permute_finish_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_gather_rows(saec_dev *dev, const float *src, const int32_t *perm,
                                     int64_t n_out, int r, int64_t d, float *dst) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n_out <= 0 || d <= 0 || r < 1) return SAEC_OK;
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(src) && saec_cuda_aligned16(dst);
    const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
    const unsigned blocks = saec_cuda_blocks(n_out, 1, st->sm_count);
    if (vec)
        gather_rows_kernel<true><<<blocks, threads, 0, st->stream>>>(src, perm, n_out, r, d, dst);
    else
        gather_rows_kernel<false><<<blocks, threads, 0, st->stream>>>(src, perm, n_out, r, d, dst);
    SAEC_CUDA_CHECK_LAUNCH("gather_rows_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_scatter_rows(saec_dev *dev, const float *src, const int32_t *inv,
                                      const float *w, int64_t n_tokens, int r, int64_t d,
                                      int accumulate, float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n_tokens <= 0 || d <= 0 || r < 1) return SAEC_OK;
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(src) && saec_cuda_aligned16(out);
    const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
    const unsigned blocks = saec_cuda_blocks(n_tokens, 1, st->sm_count);
    if (vec)
        scatter_rows_kernel<true><<<blocks, threads, 0, st->stream>>>(src, inv, w, n_tokens, r, d,
                                                                      accumulate, out);
    else
        scatter_rows_kernel<false><<<blocks, threads, 0, st->stream>>>(src, inv, w, n_tokens, r, d,
                                                                       accumulate, out);
    SAEC_CUDA_CHECK_LAUNCH("scatter_rows_kernel");
    return SAEC_OK;
}

/* keys_out[i] = keys[i] if item i is within its group's capacity, else −1; one thread an item
   (keys_out may alias keys: each thread reads its slot before writing it). A key past the
   groups is treated as ungrouped (no sync to report it). Floor: reads n_items*8, writes
   n_items*4 bytes. */
__global__ void group_capacity_kernel(const int32_t *keys, const int32_t *__restrict__ inv,
                                      const int32_t *__restrict__ offsets, int64_t n_items,
                                      int n_groups, int64_t capacity, int32_t *keys_out) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_items;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int32_t g = keys[i];
        keys_out[i] = g >= 0 && g < n_groups && (int64_t)inv[i] - offsets[g] < capacity ? g : -1;
    }
}

extern "C" int saec_cuda_group_capacity(saec_dev *dev, const int32_t *keys, const int32_t *inv,
                                        const int32_t *offsets, int64_t n_items, int n_groups,
                                        int64_t capacity, int32_t *keys_out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("group_capacity", n_items >= 0 && n_groups >= 0 && capacity >= 0);
    if (n_items == 0) return SAEC_OK;
    SAEC_CUDA_REQUIRE("group_capacity", keys && inv && offsets && keys_out);
    group_capacity_kernel<<<saec_cuda_blocks(n_items, 256, st->sm_count), 256, 0, st->stream>>>(
        keys, inv, offsets, n_items, n_groups, capacity, keys_out);
    SAEC_CUDA_CHECK_LAUNCH("group_capacity_kernel");
    return SAEC_OK;
}

/* The combine's backward, one warp an item: dsrc's row = w·dout's row (one float multiply, as the
   CPU: bitwise equal) and dw = the row dot in double (lane-strided, then the butterfly: a fixed
   order). Floor: reads n_tokens*r*(8 + d*4) (+ the src rows with dw), writes the dsrc rows and
   dw. */
__global__ void scatter_rows_backward_kernel(const float *__restrict__ dout,
                                             const float *__restrict__ src,
                                             const int32_t *__restrict__ inv,
                                             const float *__restrict__ w, int64_t n_items, int r,
                                             int64_t d, float *__restrict__ dsrc,
                                             float *__restrict__ dw) {
    const int lane = threadIdx.x & 31;
    const int64_t warp0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t i = warp0; i < n_items; i += nwarps) {
        const int32_t p = inv[i];
        if (p < 0) {
            if (dw && lane == 0) dw[i] = 0.0f;
            continue;
        }
        const float *g = dout + (i / r) * d;
        const float wi = w ? w[i] : 1.0f;
        double dot = 0.0;
        for (int64_t c = lane; c < d; c += 32) {
            dsrc[(int64_t)p * d + c] = __fmul_rn(wi, g[c]);
            if (dw) dot += (double)g[c] * (double)src[(int64_t)p * d + c];
        }
        if (dw) {
            dot = saec_warp_sum(dot);
            if (lane == 0) dw[i] = (float)dot;
        }
    }
}

extern "C" int saec_cuda_scatter_rows_backward(saec_dev *dev, const float *dout, const float *src,
                                               const int32_t *inv, const float *w,
                                               int64_t n_tokens, int r, int64_t d, float *dsrc,
                                               float *dw) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("scatter_rows_backward", n_tokens >= 0 && r >= 1 && d >= 0);
    if (n_tokens == 0) return SAEC_OK;
    SAEC_CUDA_REQUIRE("scatter_rows_backward",
                      inv && (d == 0 || (dout && dsrc && (!dw || src))));
    const int64_t n_items = n_tokens * r;
    scatter_rows_backward_kernel<<<saec_cuda_blocks(n_items, 8, st->sm_count), 256, 0,
                                   st->stream>>>(dout, src, inv, w, n_items, r, d, dsrc, dw);
    SAEC_CUDA_CHECK_LAUNCH("scatter_rows_backward_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_grouped_gemm(saec_dev *dev, int trans_b, int n_groups,
                                      const int32_t *offsets, int64_t N, int64_t K, float alpha,
                                      const float *A, const float *B, float beta, float *C,
                                      const float *bias) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n_groups <= 0 || N <= 0) return SAEC_OK;
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, (size_t)(n_groups + 1) * sizeof(int32_t), &base));
    int32_t *tile_off = (int32_t *)base; /* [n_groups + 1] row-tile offsets */
    group_scan_kernel<<<1, SCAN_THREADS, 0, st->stream>>>(NULL, offsets, n_groups, GG_BM, tile_off);
    SAEC_CUDA_CHECK_LAUNCH("group_scan_kernel");
    /* persistent grid: 2 resident 256-thread blocks per SM (~120 registers per thread, 8.5 KB
       of shared memory: the register file is the limit); blocks without work exit at once */
    const unsigned blocks = (unsigned)st->sm_count * 2;
    grouped_gemm_kernel<<<blocks, GG_THREADS, 0, st->stream>>>(trans_b, n_groups, offsets, tile_off,
                                                               N, K, alpha, A, B, beta, C, bias);
    SAEC_CUDA_CHECK_LAUNCH("grouped_gemm_kernel");
    return SAEC_OK;
}

/* Why not one fused kernel: the GEMM (2*n*m*d FLOPs) is the whole cost, and cuBLASLt runs it
   far faster than a hand-written modulate-in-the-A-load kernel would. u must be written anyway
   (the backward needs it), so the unfused path adds only one re-read of u by the GEMM
   (n*d*4 bytes, which the GEMM reads from L2 / HBM once per column tile regardless) and one
   launch: under 1% of the encoder GEMM at m >= 16384.
   Floor: 2*n*m*d FLOPs; reads n*d*4 + m*d*4, writes n*m*4 + n*d*4 bytes. */
extern "C" int saec_cuda_modulate_encode(saec_dev *dev, const float *xc, const int32_t *bucket,
                                         const float *scale, const float *shift, int n_buckets,
                                         int64_t n, int64_t d, int64_t m, const float *W_enc_t,
                                         const float *b_enc, float *u, float *pre) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0) return SAEC_OK;
    if (!u && d > 0) SAEC_TRY(saec_cuda_scratch(dev, (size_t)(n * d) * sizeof(float), (void **)&u));
    if (d > 0) {
        const bool vec = d % 4 == 0 && saec_cuda_aligned16(xc) && saec_cuda_aligned16(u) &&
                         saec_cuda_aligned16(scale) && saec_cuda_aligned16(shift);
        const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
        const unsigned blocks = saec_cuda_blocks(n, 1, st->sm_count);
        if (vec)
            modulate_rows_kernel<true><<<blocks, threads, 0, st->stream>>>(
                xc, bucket, scale, shift, n_buckets, n, d, u);
        else
            modulate_rows_kernel<false><<<blocks, threads, 0, st->stream>>>(
                xc, bucket, scale, shift, n_buckets, n, d, u);
        SAEC_CUDA_CHECK_LAUNCH("modulate_rows_kernel");
    }
    return saec_cuda_gemm(dev, 0, 1, n, m, d, 1.0f, u, d, W_enc_t, d, 0.0f, pre, m, b_enc);
}

/* ---- modulate_backward ------------------------------------------------------------------------ */

/* Pass 1: each thread owns one column c and walks one chunk of rows in order, accumulating
   Σ dU ⊙ xc and Σ dU per bucket in double into its own slots of partial [chunks, 2, B, d] (no
   atomics, so deterministic), and writing dxc = dU ⊙ (1 + scale[b]) (read before write: dxc may
   alias dU). Threads of a warp share the row, hence the bucket: loads and partial updates are
   coalesced. A bucket out of range is skipped (dxc = dU), as modulate_encode leaves it
   unmodulated. */
__global__ void modulate_backward_rows_kernel(const float *__restrict__ dU,
                                              const float *__restrict__ xc,
                                              const int32_t *__restrict__ bucket,
                                              const float *__restrict__ scale, int n_buckets,
                                              int64_t n, int64_t d, int64_t rows_per_chunk,
                                              float *dxc, double *__restrict__ partial) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    const int64_t t0 = (int64_t)blockIdx.y * rows_per_chunk;
    const int64_t t1 = t0 + rows_per_chunk < n ? t0 + rows_per_chunk : n;
    const int64_t bd = (int64_t)n_buckets * d;
    double *ps = partial + (int64_t)blockIdx.y * 2 * bd; /* [B, d] Σ dU ⊙ xc of this chunk */
    double *ph = ps + bd;                                /* [B, d] Σ dU */
    for (int64_t t = t0; t < t1; t++) {
        const int32_t b = bucket[t];
        const float g = dU[t * d + c];
        if (b < 0 || b >= n_buckets) {
            dxc[t * d + c] = g;
            continue;
        }
        ps[b * d + c] += (double)g * (double)xc[t * d + c];
        ph[b * d + c] += (double)g;
        dxc[t * d + c] = __fmul_rn(g, __fadd_rn(1.0f, scale[b * d + c]));
    }
}

/* Pass 2: dscale += Σ_chunks (in chunk order), dshift likewise; one thread per (bucket, column). */
__global__ void modulate_backward_sum_kernel(const double *__restrict__ partial, int chunks,
                                             int64_t bd, float *dscale, float *dshift) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < bd;
         i += (int64_t)gridDim.x * blockDim.x) {
        double s = 0, h = 0;
        for (int k = 0; k < chunks; k++) {
            s += partial[(int64_t)k * 2 * bd + i];
            h += partial[(int64_t)k * 2 * bd + bd + i];
        }
        dscale[i] += (float)s;
        dshift[i] += (float)h;
    }
}

/* Floor: reads 2*n*d*4 + n*4 + n_buckets*d*4, writes n*d*4 + 2*n_buckets*d*4 bytes. The row
   chunks (at most 64, and at most 64 MiB of double partials) give the column walk enough blocks
   to fill the GPU when d is small. */
extern "C" int saec_cuda_modulate_backward(saec_dev *dev, const float *dU, const float *xc,
                                           const int32_t *bucket, const float *scale,
                                           int n_buckets, int64_t n, int64_t d, float *dxc,
                                           float *dscale, float *dshift) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || d <= 0) return SAEC_OK;
    const int64_t bd = (int64_t)n_buckets * d;
    int64_t chunks = (n + 63) / 64;
    const int64_t by_memory = ((int64_t)64 << 20) / (2 * bd * (int64_t)sizeof(double));
    if (chunks > 64) chunks = 64;
    if (chunks > by_memory) chunks = by_memory > 0 ? by_memory : 1;
    const int64_t rows_per_chunk = (n + chunks - 1) / chunks;
    const size_t bytes = (size_t)(chunks * 2 * bd) * sizeof(double);
    double *partial = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, bytes, (void **)&partial));
    SAEC_CUDA_CHECK(cudaMemsetAsync(partial, 0, bytes, st->stream));
    const dim3 grid((unsigned)((d + 127) / 128), (unsigned)chunks);
    modulate_backward_rows_kernel<<<grid, 128, 0, st->stream>>>(dU, xc, bucket, scale, n_buckets, n,
                                                               d, rows_per_chunk, dxc, partial);
    SAEC_CUDA_CHECK_LAUNCH("modulate_backward_rows_kernel");
    modulate_backward_sum_kernel<<<saec_cuda_blocks(bd, 256, st->sm_count), 256, 0, st->stream>>>(
        partial, (int)chunks, bd, dscale, dshift);
    SAEC_CUDA_CHECK_LAUNCH("modulate_backward_sum_kernel");
    return SAEC_OK;
}

/* ---- grouped_gemm_wgrad / grouped_col_sum (the backward of grouped_gemm) -------------------- */

/* Both walk a group's rows, whose count lives on the device, so the grid is sized from the
   shape alone: (output tile, group, row split). `splits` (a function of the shape and the GPU,
   never of the data or of timing) cuts each group's rows into that many equal, contiguous
   chunks, so that a few small groups still fill the GPU; each chunk's sum goes to its own slot
   of a partial buffer, and a second kernel adds the chunks in order. No float atomics: the
   result repeats bit for bit. With one split the first kernel writes the output itself. */

/* Rows [*r0, *r1) of chunk s of `splits` of group g (empty when the chunk is past the end). */
__device__ __forceinline__ void group_chunk(const int32_t *__restrict__ offsets, int64_t g, int s,
                                            int splits, int64_t *r0, int64_t *r1) {
    const int64_t g0 = offsets[g], g1 = offsets[g + 1];
    const int64_t rows = g1 > g0 ? g1 - g0 : 0;
    const int64_t per = (rows + splits - 1) / splits;
    const int64_t a = g0 + (int64_t)s * per;
    const int64_t b = a + per < g0 + rows ? a + per : g0 + rows;
    *r0 = a;
    *r1 = b > a ? b : a;
}

#define GW_BM 64       /* rows of dB_g (the K dimension) per tile */
#define GW_BN 64       /* columns of dB_g (the N dimension) per tile */
#define GW_BR 16       /* rows of A and C per shared-memory stage */
#define GW_THREADS 256 /* 16 x 16 threads, 4 x 4 outputs each */

/* dB_g tile [k0 : k0 + 64, n0 : n0 + 64] = Σ_rows A[row, k]ᵀ C[row, n] over one chunk of the
   group's rows, in row order: the 64x64 SIMT tile of grouped_gemm with the rows as the inner
   dimension (stages of 16 rows of A and C, loaded along their rows: coalesced). blockIdx.x =
   (K tile, N tile), blockIdx.y walks (group, split) pairs.
   splits == 1: dB_g = alpha acc + beta dB_g (empty group: beta dB_g; beta == 0: dB not read).
   splits > 1:  partial[s, g, k, n] = acc.
   Floor: 2*rows*K*N FLOPs; reads rows*(K + N)*4 per (K tile, N tile) column of tiles
   (through L2), read-modify-writes n_groups*K*N*4 bytes. */
__global__ void __launch_bounds__(GW_THREADS, 2)
    grouped_wgrad_kernel(int n_groups, const int32_t *__restrict__ offsets, int64_t K, int64_t N,
                         int splits, float alpha, const float *__restrict__ A,
                         const float *__restrict__ C, float beta, float *__restrict__ dB,
                         float *__restrict__ partial) {
    __shared__ __align__(16) float As[GW_BR][GW_BM + 4]; /* A stage: [row][k] */
    __shared__ __align__(16) float Cs[GW_BR][GW_BN + 4]; /* C stage: [row][n] */
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t n_tiles_n = (N + GW_BN - 1) / GW_BN;
    const int64_t k0 = (int64_t)(blockIdx.x / n_tiles_n) * GW_BM;
    const int64_t n0 = (int64_t)(blockIdx.x % n_tiles_n) * GW_BN;
    const int64_t pairs = (int64_t)n_groups * splits;
    for (int64_t gs = blockIdx.y; gs < pairs; gs += gridDim.y) {
        const int64_t g = gs / splits;
        const int s = (int)(gs % splits);
        int64_t r0, r1;
        group_chunk(offsets, g, s, splits, &r0, &r1);

        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++)
                acc[i][j] = 0.0f;

        if (alpha != 0.0f) { /* BLAS rule: alpha == 0 reads neither A nor C */
            for (int64_t rb = r0; rb < r1; rb += GW_BR) {
#pragma unroll
                for (int q = 0; q < 4; q++) { /* 64 consecutive columns of 4 rows per pass */
                    const int rr = tid / 64 + 4 * q, cc = tid % 64;
                    const int64_t row = rb + rr, k = k0 + cc, col = n0 + cc;
                    const bool in = row < r1;
                    As[rr][cc] = (in && k < K) ? A[row * K + k] : 0.0f;
                    Cs[rr][cc] = (in && col < N) ? C[row * N + col] : 0.0f;
                }
                __syncthreads();
#pragma unroll
                for (int rr = 0; rr < GW_BR; rr++) {
                    const float4 a = *reinterpret_cast<const float4 *>(&As[rr][ty * 4]);
                    const float4 c = *reinterpret_cast<const float4 *>(&Cs[rr][tx * 4]);
                    const float av[4] = {a.x, a.y, a.z, a.w}, cv[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < 4; j++)
                            acc[i][j] = fmaf(av[i], cv[j], acc[i][j]);
                }
                __syncthreads();
            }
        }

        const bool has_rows = offsets[g + 1] > offsets[g];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int64_t k = k0 + ty * 4 + i;
            if (k >= K) continue;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int64_t col = n0 + tx * 4 + j;
                if (col >= N) continue;
                const int64_t o = (g * K + k) * N + col; /* dB[g, k, col] */
                if (splits == 1) {
                    float v = beta != 0.0f ? beta * dB[o] : 0.0f; /* beta == 0: dB not read */
                    if (has_rows) v = __fadd_rn(__fmul_rn(alpha, acc[i][j]), v);
                    dB[o] = v;
                } else {
                    partial[(int64_t)s * n_groups * K * N + o] = acc[i][j];
                }
            }
        }
    }
}

/* dB[g, k, n] = alpha Σ_s partial[s, g, k, n] (in s order) + beta dB (as above).
   Floor: reads splits*n_groups*K*N*4, read-modify-writes n_groups*K*N*4 bytes. */
__global__ void grouped_wgrad_final_kernel(int n_groups, const int32_t *__restrict__ offsets,
                                           int64_t KN, int splits, float alpha, float beta,
                                           const float *__restrict__ partial,
                                           float *__restrict__ dB) {
    const int64_t total = (int64_t)n_groups * KN;
    for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < total;
         o += (int64_t)gridDim.x * blockDim.x) {
        const int64_t g = o / KN;
        float t = 0.0f;
        for (int s = 0; s < splits; s++)
            t = __fadd_rn(t, partial[(int64_t)s * total + o]);
        float v = beta != 0.0f ? beta * dB[o] : 0.0f;
        if (offsets[g + 1] > offsets[g]) v = __fadd_rn(__fmul_rn(alpha, t), v);
        dB[o] = v;
    }
}

#define GCS_ROWS 8 /* row groups (threadIdx.y) of a grouped_col_sum block; block = (32, 8) */

/* Column sums of one chunk of a group's rows, in double: thread (x, y) sums rows y, y + 8, ...
   of column blockIdx.x*32 + x, then row group 0 adds the 8 in order. blockIdx.y walks (group,
   split) pairs. splits == 1: out[g, c] = (float)(beta out + alpha Σ) (the CPU's formula; beta
   == 0: out not read); splits > 1: partial[s, g, c] = Σ.
   Floor: reads rows*N*4 bytes (+ n_groups*N*4 with beta). */
__global__ void grouped_col_sum_kernel(int n_groups, const int32_t *__restrict__ offsets, int64_t N,
                                       int splits, const float *__restrict__ C, float alpha,
                                       float beta, double *__restrict__ partial,
                                       float *__restrict__ out) {
    __shared__ double s_part[GCS_ROWS][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t col = (int64_t)blockIdx.x * 32 + tx;
    const int64_t pairs = (int64_t)n_groups * splits;
    for (int64_t gs = blockIdx.y; gs < pairs; gs += gridDim.y) {
        const int64_t g = gs / splits;
        const int s = (int)(gs % splits);
        int64_t r0, r1;
        group_chunk(offsets, g, s, splits, &r0, &r1);
        double acc = 0.0;
        if (col < N)
            for (int64_t r = r0 + ty; r < r1; r += GCS_ROWS)
                acc += (double)C[r * N + col];
        s_part[ty][tx] = acc;
        __syncthreads();
        if (ty == 0 && col < N) {
            double t = 0.0;
#pragma unroll
            for (int y = 0; y < GCS_ROWS; y++)
                t += s_part[y][tx];
            if (splits == 1) {
                const double prev = beta == 0.0f ? 0.0 : (double)beta * out[g * N + col];
                out[g * N + col] = (float)(prev + (double)alpha * t);
            } else {
                partial[((int64_t)s * n_groups + g) * N + col] = t;
            }
        }
        __syncthreads(); /* s_part is rewritten by the next pair */
    }
}

/* out[g, c] = (float)(beta out + alpha Σ_s partial[s, g, c]) with the chunks added in order.
   Floor: reads splits*n_groups*N*8, read-modify-writes n_groups*N*4 bytes. */
__global__ void grouped_col_sum_final_kernel(int64_t GN, int splits,
                                             const double *__restrict__ partial, float alpha,
                                             float beta, float *__restrict__ out) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < GN;
         i += (int64_t)gridDim.x * blockDim.x) {
        double t = 0.0;
        for (int s = 0; s < splits; s++)
            t += partial[(int64_t)s * GN + i];
        const double prev = beta == 0.0f ? 0.0 : (double)beta * out[i];
        out[i] = (float)(prev + (double)alpha * t);
    }
}

/* Splits of each group's rows so that base_blocks * splits reaches `target` blocks, at most
   max_splits, and at most max_bytes of partials (bytes_per_split each). */
static int group_splits(int64_t base_blocks, int64_t target, int max_splits, size_t bytes_per_split,
                        size_t max_bytes) {
    int64_t s = base_blocks >= target ? 1 : (target + base_blocks - 1) / base_blocks;
    if (s > max_splits) s = max_splits;
    if (bytes_per_split > 0 && (size_t)s * bytes_per_split > max_bytes)
        s = (int64_t)(max_bytes / bytes_per_split);
    return s < 1 ? 1 : (int)s;
}

#define GROUP_MAX_GRID_Y 65535
#define GROUP_PARTIAL_MAX_BYTES ((size_t)64 << 20)

/* Floor: 2*rows*K*N FLOPs; reads rows*(K + N)*4, read-modify-writes n_groups*K*N*4 bytes. The
   row splits (enough 256-thread blocks for 4 per SM, at most 32 splits and 64 MiB of partials)
   add splits*n_groups*K*N*8 bytes, small by construction: they are only used when the output
   is too small to fill the GPU. */
extern "C" int saec_cuda_grouped_gemm_wgrad(saec_dev *dev, int n_groups, const int32_t *offsets,
                                            int64_t K, int64_t N, float alpha, const float *A,
                                            const float *C, float beta, float *dB) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n_groups <= 0 || K <= 0 || N <= 0) return SAEC_OK;
    const int64_t tiles = ((K + GW_BM - 1) / GW_BM) * ((N + GW_BN - 1) / GW_BN);
    if (tiles > (int64_t)INT32_MAX)
        return saec_fail(SAEC_ERR_DEVICE, NULL, "grouped_gemm_wgrad: K x N = %lld x %lld too large",
                         (long long)K, (long long)N);
    const size_t out_bytes = (size_t)n_groups * (size_t)K * (size_t)N * sizeof(float);
    const int splits = group_splits(tiles * n_groups, (int64_t)st->sm_count * 4, 32, out_bytes,
                                    GROUP_PARTIAL_MAX_BYTES);
    float *partial = NULL;
    if (splits > 1) SAEC_TRY(saec_cuda_scratch(dev, (size_t)splits * out_bytes, (void **)&partial));
    const int64_t pairs = (int64_t)n_groups * splits;
    const dim3 grid((unsigned)tiles,
                    (unsigned)(pairs < GROUP_MAX_GRID_Y ? pairs : GROUP_MAX_GRID_Y));
    grouped_wgrad_kernel<<<grid, GW_THREADS, 0, st->stream>>>(n_groups, offsets, K, N, splits,
                                                              alpha, A, C, beta, dB, partial);
    SAEC_CUDA_CHECK_LAUNCH("grouped_wgrad_kernel");
    if (splits > 1) {
        const int64_t total = (int64_t)n_groups * K * N;
        grouped_wgrad_final_kernel<<<saec_cuda_blocks(total, 256, st->sm_count), 256, 0,
                                     st->stream>>>(n_groups, offsets, K * N, splits, alpha, beta,
                                                   partial, dB);
        SAEC_CUDA_CHECK_LAUNCH("grouped_wgrad_final_kernel");
    }
    return SAEC_OK;
}

/* Floor: reads rows*N*4, read-modify-writes n_groups*N*4 bytes. Row splits as above (enough
   256-thread blocks for 8 per SM, at most 64 splits), partials in double. */
extern "C" int saec_cuda_grouped_col_sum(saec_dev *dev, int n_groups, const int32_t *offsets,
                                         int64_t N, const float *C, float alpha, float beta,
                                         float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n_groups <= 0 || N <= 0) return SAEC_OK;
    const int64_t col_tiles = (N + 31) / 32;
    if (col_tiles > (int64_t)INT32_MAX)
        return saec_fail(SAEC_ERR_DEVICE, NULL, "grouped_col_sum: N = %lld too large",
                         (long long)N);
    const size_t part_bytes = (size_t)n_groups * (size_t)N * sizeof(double);
    const int splits = group_splits(col_tiles * n_groups, (int64_t)st->sm_count * 8, 64, part_bytes,
                                    GROUP_PARTIAL_MAX_BYTES);
    double *partial = NULL;
    if (splits > 1)
        SAEC_TRY(saec_cuda_scratch(dev, (size_t)splits * part_bytes, (void **)&partial));
    const int64_t pairs = (int64_t)n_groups * splits;
    const dim3 grid((unsigned)col_tiles,
                    (unsigned)(pairs < GROUP_MAX_GRID_Y ? pairs : GROUP_MAX_GRID_Y));
    const dim3 block(32, GCS_ROWS);
    grouped_col_sum_kernel<<<grid, block, 0, st->stream>>>(n_groups, offsets, N, splits, C, alpha,
                                                           beta, partial, out);
    SAEC_CUDA_CHECK_LAUNCH("grouped_col_sum_kernel");
    if (splits > 1) {
        const int64_t GN = (int64_t)n_groups * N;
        grouped_col_sum_final_kernel<<<saec_cuda_blocks(GN, 256, st->sm_count), 256, 0,
                                       st->stream>>>(GN, splits, partial, alpha, beta, out);
        SAEC_CUDA_CHECK_LAUNCH("grouped_col_sum_final_kernel");
    }
    return SAEC_OK;
}
