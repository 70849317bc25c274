/* Per-row top-k on CUDA: topk_rows.
 *
 * Order. Each entry becomes a 64-bit composite key: the high 32 bits are the float mapped to an
 * order-preserving uint32 (-0 folded onto +0, as the CPU's comparison sees them equal; masked
 * entries get 0, below every eligible value), the low 32 bits are 0xFFFFFFFF - column. Larger
 * composite = larger value, ties to the lower column: exactly the CPU's order, and every key is
 * distinct, so "the K largest composites" is one well-defined set.
 *
 * Selection (k <= TOPK_KMAX): one block per row runs a radix select over the composites, 11/11/10
 * bits per pass (2048-bin shared-memory histogram): each pass finds the digit holding the K-th
 * largest among the entries still matching the prefix, then narrows the prefix. As soon as the
 * entries matching the prefix fit in TOPK_CAND_CAP, one pass over the row moves them to shared
 * memory (and those above the prefix, which are certainly selected, to the output buffer), and
 * later passes read only those candidates. In the common case the row is read twice (histogram,
 * then split), once when it fits in shared memory beside the buffers. The K survivors are then
 * bitonic-sorted in shared memory by composite, descending, and each value is read back from x
 * (so -0 stays -0: the output is bitwise the CPU's).
 *
 * Large k (> TOPK_KMAX): rows are sorted whole by composite with CUB's segmented radix sort, in
 * chunks of rows that bound the scratch, and the first k of each row are kept.
 *
 * K = min(k, #unmasked columns) entries are selected per row; selected entries whose key is 0
 * (NaN: never selected on the CPU either) and slots K..k-1 become idx -1, val 0.
 */
#include <string.h>

#include <cub/device/device_segmented_radix_sort.cuh>

#include "cuda_internal.cuh"

#define TOPK_THREADS 512
#define TOPK_WARPS (TOPK_THREADS / 32)
#define TOPK_BINS 2048      /* the widest digit: 11 bits */
#define TOPK_CAND_CAP 2048  /* candidates kept in shared memory */
#define TOPK_KMAX 2048      /* largest k of the one-block-per-row path */

/* ---- keys ------------------------------------------------------------------------------------ */

__device__ __forceinline__ uint32_t topk_float_key(float f) {
    uint32_t b = __float_as_uint(f);
    if (f == 0.0f) b = 0u; /* -0 == +0 for the CPU's comparison: make them tie */
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* 0 marks an entry that is never selected: masked out, or NaN (as on the CPU, where NaN never
   compares greater). Every other value maps to a key >= 1 (key 0 itself is a NaN pattern). */
__device__ __forceinline__ uint32_t topk_elem_key(float v, bool eligible) {
    return (eligible && v == v) ? topk_float_key(v) : 0u;
}

__device__ __forceinline__ uint64_t topk_compose(uint32_t key, int64_t col) {
    return ((uint64_t)key << 32) | (uint64_t)(0xFFFFFFFFu - (uint32_t)col);
}

/* ---- block helpers ---------------------------------------------------------------------------- */

/* Find the bin holding the K-th largest entry: bins are scanned from the top; s_res = {bin, count
   strictly above it, count in it}. nbins is 1024 or 2048. Ends with a barrier. */
__device__ __forceinline__ void topk_find_bucket(const uint32_t *hist, int nbins, uint32_t K,
                                                 uint32_t *s_scan, uint32_t *s_res) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int per = nbins / TOPK_THREADS;
    uint32_t local = 0;
    for (int j = 0; j < per; j++) local += hist[nbins - 1 - (tid * per + j)];
    uint32_t incl = local;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        uint32_t t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    if (lane == 31) s_scan[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        uint32_t w = lane < TOPK_WARPS ? s_scan[lane] : 0u, wi = w;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            uint32_t t = __shfl_up_sync(0xffffffffu, wi, o);
            if (lane >= o) wi += t;
        }
        if (lane < TOPK_WARPS) s_scan[lane] = wi - w; /* exclusive */
    }
    __syncthreads();
    uint32_t run = s_scan[warp] + incl - local;
    for (int j = 0; j < per; j++) {
        const int b = nbins - 1 - (tid * per + j);
        const uint32_t h = hist[b];
        if (run < K && run + h >= K) { /* exactly one bin crosses K */
            s_res[0] = (uint32_t)b;
            s_res[1] = run;
            s_res[2] = h;
        }
        run += h;
    }
    __syncthreads();
}

/* Sort a[0, kp) descending (kp a power of two) with the whole block. */
__device__ __forceinline__ void topk_bitonic_desc(uint64_t *a, int kp) {
    for (int size = 2; size <= kp; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int t = threadIdx.x; t < (kp >> 1); t += blockDim.x) {
                const int i = 2 * t - (t & (stride - 1));
                const int j = i + stride;
                const uint64_t x = a[i], y = a[j];
                const bool desc = (i & size) == 0;
                if (desc ? (x < y) : (x > y)) {
                    a[i] = y;
                    a[j] = x;
                }
            }
            __syncthreads();
        }
    }
}

/* ---- kernels --------------------------------------------------------------------------------- */

/* out[0] = #{i : mask[i] != 0}.  Floor: reads m bytes. */
__global__ void topk_count_eligible_kernel(const uint8_t *__restrict__ mask, int64_t m,
                                           int *__restrict__ out) {
    __shared__ unsigned s_warp[32];
    unsigned c = 0;
    for (int64_t i = threadIdx.x; i < m; i += blockDim.x) c += mask[i] != 0;
    c = saec_block_sum(c, s_warp);
    if (threadIdx.x == 0) out[0] = (int)c;
}

/* The radix-select top-k, one block per row (grid-stride over rows). CACHE: the row's keys stay
   in shared memory after the first pass, so the row is read from global memory once.
   x [n, m], mask [m] or NULL, n_eligible: device int (NULL: m), idx/val [n, k].
   Floor: reads n*m*4 (+ m) bytes (x2 without CACHE), writes n*k*8; ~n*m*(2..3) integer ops. */
template <bool CACHE>
__global__ void __launch_bounds__(TOPK_THREADS)
    topk_rows_kernel(const float *__restrict__ x, int64_t n, int64_t m, int k, int kpow2,
                     const uint8_t *__restrict__ mask, const int *__restrict__ n_eligible,
                     int32_t *__restrict__ idx_out, float *__restrict__ val_out, int vec) {
    extern __shared__ __align__(16) unsigned char topk_smem[];
    uint32_t *hist = reinterpret_cast<uint32_t *>(topk_smem);                    /* [TOPK_BINS] */
    uint64_t *cand = reinterpret_cast<uint64_t *>(topk_smem + TOPK_BINS * 4);    /* [CAND_CAP] */
    uint64_t *outb = cand + TOPK_CAND_CAP;                                        /* [kpow2] */
    uint32_t *rowkeys = reinterpret_cast<uint32_t *>(outb + kpow2);               /* [m] */
    __shared__ uint32_t s_scan[32];
    __shared__ uint32_t s_res[3];
    __shared__ uint32_t s_nout, s_ncand;

    const int tid = threadIdx.x;
    const int64_t elig = n_eligible ? (int64_t)*n_eligible : m;
    const int K = (int)(elig < (int64_t)k ? elig : (int64_t)k);
    int kp = 1;
    while (kp < K) kp <<= 1;

    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        const float *xr = x + r * m;
        int32_t *io = idx_out + r * (int64_t)k;
        float *vo = val_out + r * (int64_t)k;
        if (K <= 0) {
            for (int j = tid; j < k; j += TOPK_THREADS) {
                io[j] = -1;
                vo[j] = 0.0f;
            }
            continue;
        }
        if (tid == 0) {
            s_nout = 0;
            s_ncand = 0;
        }
        uint64_t prefix = 0;
        int nbits = 0;
        uint32_t k_rem = (uint32_t)K;
        bool from_global = true;

        for (int p = 0; p < 6; p++) {
            const int width = (p % 3 == 2) ? 10 : 11;
            const int consumed = (p / 3) * 32 + ((p % 3) == 0 ? 11 : (p % 3) == 1 ? 22 : 32);
            const int shift = 64 - consumed;
            const uint64_t dmask = (1ull << width) - 1;
            const int nb = 1 << width;
            for (int b = tid; b < nb; b += TOPK_THREADS) hist[b] = 0;
            __syncthreads();
            if (from_global) {
                if (p == 0 && vec) {
                    /* first pass, 16-byte loads: no prefix yet, digit = key >> 21 */
                    const float4 *x4 = reinterpret_cast<const float4 *>(xr);
                    const uchar4 *m4 = reinterpret_cast<const uchar4 *>(mask);
                    const int64_t m4n = m / 4;
                    for (int64_t i4 = tid; i4 < m4n; i4 += TOPK_THREADS) {
                        const float4 v = x4[i4];
                        const uchar4 mk = mask ? m4[i4] : make_uchar4(1, 1, 1, 1);
                        uint4 kk;
                        kk.x = topk_elem_key(v.x, mk.x != 0);
                        kk.y = topk_elem_key(v.y, mk.y != 0);
                        kk.z = topk_elem_key(v.z, mk.z != 0);
                        kk.w = topk_elem_key(v.w, mk.w != 0);
                        if (CACHE) reinterpret_cast<uint4 *>(rowkeys)[i4] = kk;
                        atomicAdd(&hist[kk.x >> 21], 1u);
                        atomicAdd(&hist[kk.y >> 21], 1u);
                        atomicAdd(&hist[kk.z >> 21], 1u);
                        atomicAdd(&hist[kk.w >> 21], 1u);
                    }
                } else {
                    for (int64_t i = tid; i < m; i += TOPK_THREADS) {
                        uint32_t key;
                        if (CACHE && p > 0) {
                            key = rowkeys[i];
                        } else {
                            key = topk_elem_key(xr[i], !mask || mask[i] != 0);
                            if (CACHE) rowkeys[i] = key;
                        }
                        const uint64_t c = topk_compose(key, i);
                        if (nbits == 0 || (c >> (64 - nbits)) == prefix)
                            atomicAdd(&hist[(uint32_t)((c >> shift) & dmask)], 1u);
                    }
                }
            } else {
                const uint32_t nc = s_ncand;
                for (uint32_t i = tid; i < nc; i += TOPK_THREADS) {
                    const uint64_t c = cand[i];
                    if ((c >> (64 - nbits)) == prefix)
                        atomicAdd(&hist[(uint32_t)((c >> shift) & dmask)], 1u);
                }
            }
            __syncthreads();
            topk_find_bucket(hist, nb, k_rem, s_scan, s_res);
            const uint32_t digit = s_res[0], above = s_res[1], eq = s_res[2];
            k_rem -= above;
            prefix = (prefix << width) | digit;
            nbits = consumed;
            if (eq == k_rem) break; /* every entry matching the prefix is selected */
            if (from_global && eq <= TOPK_CAND_CAP) {
                /* split the row: above the prefix → selected; matching → candidates */
                for (int64_t i = tid; i < m; i += TOPK_THREADS) {
                    const uint32_t key =
                        CACHE ? rowkeys[i] : topk_elem_key(xr[i], !mask || mask[i] != 0);
                    const uint64_t c = topk_compose(key, i);
                    const uint64_t top = c >> (64 - nbits);
                    if (top > prefix)
                        outb[atomicAdd(&s_nout, 1u)] = c;
                    else if (top == prefix)
                        cand[atomicAdd(&s_ncand, 1u)] = c;
                }
                __syncthreads();
                from_global = false;
            }
        }

        /* Collect every entry of the current source at or above the prefix: with the winners
           already in outb, exactly K entries. */
        if (from_global) {
            for (int64_t i = tid; i < m; i += TOPK_THREADS) {
                const uint32_t key =
                    CACHE ? rowkeys[i] : topk_elem_key(xr[i], !mask || mask[i] != 0);
                const uint64_t c = topk_compose(key, i);
                if ((c >> (64 - nbits)) >= prefix) outb[atomicAdd(&s_nout, 1u)] = c;
            }
        } else {
            const uint32_t nc = s_ncand;
            for (uint32_t i = tid; i < nc; i += TOPK_THREADS) {
                const uint64_t c = cand[i];
                if ((c >> (64 - nbits)) >= prefix) outb[atomicAdd(&s_nout, 1u)] = c;
            }
        }
        __syncthreads();
        for (int j = K + tid; j < kp; j += TOPK_THREADS) outb[j] = 0; /* pads sort last */
        __syncthreads();
        topk_bitonic_desc(outb, kp);
        for (int j = tid; j < k; j += TOPK_THREADS) {
            const uint64_t c = j < K ? outb[j] : 0ull;
            if ((c >> 32) != 0ull) {
                const uint32_t col = 0xFFFFFFFFu - (uint32_t)c;
                io[j] = (int32_t)col;
                vo[j] = xr[col]; /* the stored value itself: -0 stays -0, as on the CPU */
            } else { /* fewer than k selectable entries (mask, NaN): empty slot */
                io[j] = -1;
                vo[j] = 0.0f;
            }
        }
        __syncthreads(); /* the next row reuses the buffers and counters */
    }
}

/* Large-k path, step 1: keys[r, i] = composite of x[row0 + r, i].
   Floor: reads rows*m*4 (+ m), writes rows*m*8 bytes. */
__global__ void topk_compose_kernel(const float *__restrict__ x, int64_t rows, int64_t m,
                                    const uint8_t *__restrict__ mask, uint64_t *__restrict__ keys) {
    const int64_t total = rows * m;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e % m;
        keys[e] = topk_compose(topk_elem_key(x[e], !mask || mask[i] != 0), i);
    }
}

/* Large-k path: segment offsets off[r] = r * m for r in [0, rows].  Floor: writes rows*4 bytes. */
__global__ void topk_offsets_kernel(int *__restrict__ off, int64_t rows, int64_t m) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r <= rows;
         r += (int64_t)gridDim.x * blockDim.x)
        off[r] = (int)(r * m);
}

/* Large-k path, last step: the first k composites of each sorted row → idx, val (the value read
   back from x).  Floor: reads rows*k*12, writes rows*k*8 bytes. */
__global__ void topk_emit_sorted_kernel(const uint64_t *__restrict__ sorted,
                                        const float *__restrict__ x, int64_t rows, int64_t m,
                                        int k, int32_t *__restrict__ idx_out,
                                        float *__restrict__ val_out) {
    const int64_t total = rows * (int64_t)k;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = e / k, j = e % k;
        const uint64_t c = j < m ? sorted[r * m + j] : 0ull;
        const uint32_t key = (uint32_t)(c >> 32);
        if (key == 0u) { /* ineligible: fewer eligible columns than k */
            idx_out[e] = -1;
            val_out[e] = 0.0f;
        } else {
            const uint32_t col = 0xFFFFFFFFu - (uint32_t)c;
            idx_out[e] = (int32_t)col;
            val_out[e] = x[r * m + col];
        }
    }
}

/* ---- launcher -------------------------------------------------------------------------------- */

static int topk_large_k(saec_dev *dev, const float *x, int64_t n, int64_t m, int k,
                        const uint8_t *mask, int32_t *idx, float *val) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (m > (int64_t)INT32_MAX)
        return saec_fail(SAEC_ERR_DEVICE, NULL, "topk_rows: m = %lld is too large",
                         (long long)m);
    /* rows per chunk: about 256 MiB of keys (in + out), at least one row, and < 2^31 items */
    int64_t rc = ((int64_t)256 << 20) / (m * 16);
    if (rc < 1) rc = 1;
    if (rc > n) rc = n;
    if (rc * m > (int64_t)INT32_MAX) rc = (int64_t)INT32_MAX / m;
    const int64_t last = n % rc ? n % rc : rc;
    size_t temp_a = 0, temp_b = 0;
    SAEC_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(
        (void *)NULL, temp_a, (const uint64_t *)NULL, (uint64_t *)NULL, (int)(rc * m), (int)rc,
        (const int *)NULL, (const int *)NULL, 0, 64, st->stream));
    SAEC_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(
        (void *)NULL, temp_b, (const uint64_t *)NULL, (uint64_t *)NULL, (int)(last * m),
        (int)last, (const int *)NULL, (const int *)NULL, 0, 64, st->stream));
    const size_t temp_bytes = temp_a > temp_b ? temp_a : temp_b;
    const size_t keys_bytes = (size_t)(rc * m) * sizeof(uint64_t);
    const size_t need = 2 * saec_cuda_round256(keys_bytes) +
                        saec_cuda_round256((size_t)(rc + 1) * sizeof(int)) +
                        saec_cuda_round256(temp_bytes);
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, need, &base));
    char *cur = (char *)base;
    uint64_t *keys_in = (uint64_t *)saec_cuda_carve(&cur, keys_bytes);
    uint64_t *keys_out = (uint64_t *)saec_cuda_carve(&cur, keys_bytes);
    int *off = (int *)saec_cuda_carve(&cur, (size_t)(rc + 1) * sizeof(int));
    void *temp = saec_cuda_carve(&cur, temp_bytes);

    for (int64_t r0 = 0; r0 < n; r0 += rc) {
        const int64_t rows = n - r0 < rc ? n - r0 : rc;
        topk_compose_kernel<<<saec_cuda_blocks(rows * m, 256, st->sm_count), 256, 0,
                              st->stream>>>(x + r0 * m, rows, m, mask, keys_in);
        SAEC_CUDA_CHECK_LAUNCH("topk_compose_kernel");
        topk_offsets_kernel<<<saec_cuda_blocks(rows + 1, 256, st->sm_count), 256, 0,
                              st->stream>>>(off, rows, m);
        SAEC_CUDA_CHECK_LAUNCH("topk_offsets_kernel");
        size_t tb = temp_bytes;
        SAEC_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortKeysDescending(
            temp, tb, (const uint64_t *)keys_in, keys_out, (int)(rows * m), (int)rows,
            (const int *)off, (const int *)(off + 1), 0, 64, st->stream));
        topk_emit_sorted_kernel<<<saec_cuda_blocks(rows * k, 256, st->sm_count), 256, 0,
                                  st->stream>>>(keys_out, x + r0 * m, rows, m, k,
                                                idx + r0 * k, val + r0 * k);
        SAEC_CUDA_CHECK_LAUNCH("topk_emit_sorted_kernel");
    }
    return SAEC_OK;
}

/* Floor: reads n*m*4 (+ m mask) bytes, writes n*k*8. */
extern "C" int saec_cuda_topk_rows(saec_dev *dev, const float *x, int64_t n, int64_t m, int k,
                                   const uint8_t *mask, int32_t *idx, float *val) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || k <= 0) return SAEC_OK;
    if (m <= 0 || m > (int64_t)INT32_MAX)
        return saec_fail(SAEC_ERR_DEVICE, NULL, "topk_rows: unsupported row length m = %lld",
                         (long long)m);
    if (k > TOPK_KMAX) return topk_large_k(dev, x, n, m, k, mask, idx, val);

    int *n_elig = NULL;
    if (mask) {
        void *s = NULL;
        SAEC_TRY(saec_cuda_scratch(dev, 256, &s));
        n_elig = (int *)s;
        topk_count_eligible_kernel<<<1, 1024, 0, st->stream>>>(mask, m, n_elig);
        SAEC_CUDA_CHECK_LAUNCH("topk_count_eligible_kernel");
    }
    int kpow2 = 1;
    while (kpow2 < k) kpow2 <<= 1;
    const size_t base = (size_t)TOPK_BINS * 4 + (size_t)TOPK_CAND_CAP * 8 + (size_t)kpow2 * 8;
    const size_t cached = base + (size_t)m * 4;
    /* keep the row in shared memory when two blocks still fit on a multiprocessor */
    const bool cache = cached <= st->smem_optin / 2;
    const size_t smem = cache ? cached : base;
    const int vec = m % 4 == 0 && saec_cuda_aligned16(x) && (!mask || ((uintptr_t)mask & 3u) == 0);
    const unsigned blocks = (unsigned)(n < (int64_t)(1 << 30) ? n : (int64_t)(1 << 30));
    if (cache) {
        if (smem > 48 * 1024)
            SAEC_CUDA_CHECK(cudaFuncSetAttribute(topk_rows_kernel<true>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 (int)smem));
        topk_rows_kernel<true><<<blocks, TOPK_THREADS, smem, st->stream>>>(
            x, n, m, k, kpow2, mask, n_elig, idx, val, vec);
    } else {
        if (smem > 48 * 1024)
            SAEC_CUDA_CHECK(cudaFuncSetAttribute(topk_rows_kernel<false>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 (int)smem));
        topk_rows_kernel<false><<<blocks, TOPK_THREADS, smem, st->stream>>>(
            x, n, m, k, kpow2, mask, n_elig, idx, val, vec);
    }
    SAEC_CUDA_CHECK_LAUNCH("topk_rows_kernel");
    return SAEC_OK;
}
