/* Sparse-code ops on CUDA: sparse_decode, sparse_row_dots, sparse_outer_accum.
 *
 * sparse_outer_accum is deterministic without floating-point atomics: the (token, slot) pairs
 * are sorted by latent with CUB's stable radix sort (so within a latent they stay in token
 * order), the sorted list is cut into fixed windows, and each window sums its runs of equal
 * latent in order. A run wholly inside a window is added to dW by that window alone; a run that
 * crosses windows leaves one partial row per window, and a fix-up pass adds those partials in
 * window order. Every sum therefore has one fixed order, whatever the scheduling.
 */
#include <string.h>

#include <cub/device/device_radix_sort.cuh>

#include "cuda_internal.cuh"

/* ---- kernels --------------------------------------------------------------------------------- */

/* out[n, d] = [accumulate ? out : 0] + Σ_j val[n, j] * W[idx[n, j], :] + bias[d]: one block per
   token, threads over columns, fp32 accumulation; VEC: float4 columns (d % 4 == 0, aligned).
   idx, val [n, k]; W [m, d]; bias [d] or NULL.
   Floor: reads n*k*(8 + d*4) + d*4 bytes, writes n*d*4 (+ reads n*d*4 when accumulating);
   2*n*k*d FLOPs. */
template <bool VEC>
__global__ void sparse_decode_kernel(const int32_t *__restrict__ idx, const float *__restrict__ val,
                                     const float *__restrict__ W, const float *__restrict__ bias,
                                     int64_t n, int k, int64_t m, int64_t d, int accumulate,
                                     float *__restrict__ out) {
    const int64_t cols = VEC ? d / 4 : d;
    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        const int32_t *ir = idx + r * k;
        const float *vr = val + r * k;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            if (VEC) {
                const float4 *W4 = reinterpret_cast<const float4 *>(W);
                float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
                for (int j = 0; j < k; j++) {
                    const int32_t li = ir[j];
                    const float v = vr[j];
                    if (li >= 0 && li < m && v != 0.0f) acc = saec_f4_fma(v, W4[li * cols + c], acc);
                }
                if (bias) {
                    const float4 b = reinterpret_cast<const float4 *>(bias)[c];
                    acc.x += b.x;
                    acc.y += b.y;
                    acc.z += b.z;
                    acc.w += b.w;
                }
                float4 *o4 = reinterpret_cast<float4 *>(out) + r * cols + c;
                if (accumulate) {
                    const float4 o = *o4;
                    acc.x = o.x + acc.x;
                    acc.y = o.y + acc.y;
                    acc.z = o.z + acc.z;
                    acc.w = o.w + acc.w;
                }
                *o4 = acc;
            } else {
                float acc = 0.0f;
#pragma unroll 4
                for (int j = 0; j < k; j++) {
                    const int32_t li = ir[j];
                    const float v = vr[j];
                    if (li >= 0 && li < m && v != 0.0f) acc = fmaf(v, W[li * d + c], acc);
                }
                if (bias) acc += bias[c];
                float *o = out + r * d + c;
                *o = accumulate ? *o + acc : acc;
            }
        }
    }
}

/* out[n, k] = ⟨g[n, :], W[idx[n, j], :]⟩ (0 for empty slots): one block per token, one warp per
   slot, lanes over columns, a fixed butterfly sum.  g [n, d], W [m, d].
   Floor: reads n*d*4 + n*k*(4 + d*4) bytes, writes n*k*4; 2*n*k*d FLOPs. */
template <bool VEC>
__global__ void sparse_row_dots_kernel(const float *__restrict__ g, const int32_t *__restrict__ idx,
                                       const float *__restrict__ W, int64_t n, int k, int64_t m,
                                       int64_t d, float *__restrict__ out) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const int64_t cols = VEC ? d / 4 : d;
    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        for (int j = warp; j < k; j += nwarps) {
            const int32_t li = idx[r * k + j];
            float s = 0.0f;
            if (li >= 0 && li < m) {
                if (VEC) {
                    const float4 *g4 = reinterpret_cast<const float4 *>(g) + r * cols;
                    const float4 *w4 = reinterpret_cast<const float4 *>(W) + li * cols;
                    for (int64_t c = lane; c < cols; c += 32) {
                        const float4 a = g4[c], b = w4[c];
                        s = fmaf(a.x, b.x, s);
                        s = fmaf(a.y, b.y, s);
                        s = fmaf(a.z, b.z, s);
                        s = fmaf(a.w, b.w, s);
                    }
                } else {
                    const float *gr = g + r * d, *wr = W + li * d;
                    for (int64_t c = lane; c < d; c += 32) s = fmaf(gr[c], wr[c], s);
                }
            }
            s = saec_warp_sum(s);
            if (lane == 0) out[r * k + j] = s;
        }
    }
}

/* sparse_outer_accum, step 1: sort keys (latent, or m for a pair that adds nothing) and values
   (the pair's index).  Floor: reads n*k*8, writes n*k*8 bytes. */
__global__ void soa_keys_kernel(const int32_t *__restrict__ idx, const float *__restrict__ coef,
                                int64_t P, int64_t m, uint32_t *__restrict__ keys,
                                int32_t *__restrict__ vals) {
    for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < P;
         p += (int64_t)gridDim.x * blockDim.x) {
        const int32_t li = idx[p];
        const bool valid = li >= 0 && li < m && coef[p] != 0.0f;
        keys[p] = valid ? (uint32_t)li : (uint32_t)m;
        vals[p] = (int32_t)p;
    }
}

/* sparse_outer_accum, step 2: one block per window of CH sorted pairs. Runs of one latent are
   summed in sorted (token) order; a run inside the window goes to dW / db directly, a run that
   starts before the window goes to partial slot 2w, one that continues after it to slot 2w+1.
   keys, perm [P] sorted; coef [n*k]; X [n, d]; part [2W, d]; part_db [2W].
   Floor: reads CH*(12 + d*4) bytes per window, read-modify-writes the touched dW rows;
   2*n*k*d FLOPs in all. */
template <bool VEC>
__global__ void soa_window_kernel(const uint32_t *__restrict__ keys, const int32_t *__restrict__ perm,
                                  const float *__restrict__ coef, const float *__restrict__ X,
                                  int64_t P, int k, uint32_t m, int64_t d, int CH,
                                  float *__restrict__ dW, float *__restrict__ db,
                                  float *__restrict__ part, float *__restrict__ part_db) {
    extern __shared__ __align__(16) unsigned char soa_smem[];
    uint32_t *s_key = reinterpret_cast<uint32_t *>(soa_smem);  /* [CH] */
    int32_t *s_tok = reinterpret_cast<int32_t *>(s_key + CH);  /* [CH] */
    float *s_coef = reinterpret_cast<float *>(s_tok + CH);     /* [CH] */
    const int64_t w = blockIdx.x;
    const int64_t ws = w * CH;
    const int64_t we = ws + CH < P ? ws + CH : P;
    const int len = (int)(we - ws);
    const uint32_t none = 0xFFFFFFFFu; /* never a valid latent */
    const uint32_t prev_key = ws > 0 ? keys[ws - 1] : none;
    const uint32_t next_key = we < P ? keys[we] : none;
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
        const uint32_t key = keys[ws + i];
        s_key[i] = key;
        if (key < m) {
            const int32_t pi = perm[ws + i];
            s_tok[i] = pi / k;
            s_coef[i] = coef[pi];
        }
    }
    __syncthreads();

    if (db && threadIdx.x == 0) {
        int i = 0;
        while (i < len) {
            const uint32_t L = s_key[i];
            if (L >= m) break; /* sorted: only invalid pairs follow */
            int b = i;
            float s = 0.0f;
            while (b < len && s_key[b] == L) s += s_coef[b++];
            const bool starts_before = i == 0 && prev_key == L;
            const bool continues = b == len && next_key == L;
            if (starts_before)
                part_db[2 * w] = s;
            else if (continues)
                part_db[2 * w + 1] = s;
            else
                db[L] += s;
            i = b;
        }
    }

    const int64_t cols = VEC ? d / 4 : d;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        int i = 0;
        while (i < len) {
            const uint32_t L = s_key[i];
            if (L >= m) break;
            int b = i + 1;
            while (b < len && s_key[b] == L) b++;
            const bool starts_before = i == 0 && prev_key == L;
            const bool continues = b == len && next_key == L;
            float *dst = starts_before ? part + (2 * w) * d
                         : continues   ? part + (2 * w + 1) * d
                                       : dW + (int64_t)L * d;
            int q = i;
            if (VEC) {
                const float4 *X4 = reinterpret_cast<const float4 *>(X);
                float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                for (; q + 4 <= b; q += 4) { /* four rows in flight, summed in order */
                    const float4 x0 = X4[(int64_t)s_tok[q] * cols + c];
                    const float4 x1 = X4[(int64_t)s_tok[q + 1] * cols + c];
                    const float4 x2 = X4[(int64_t)s_tok[q + 2] * cols + c];
                    const float4 x3 = X4[(int64_t)s_tok[q + 3] * cols + c];
                    acc = saec_f4_fma(s_coef[q], x0, acc);
                    acc = saec_f4_fma(s_coef[q + 1], x1, acc);
                    acc = saec_f4_fma(s_coef[q + 2], x2, acc);
                    acc = saec_f4_fma(s_coef[q + 3], x3, acc);
                }
                for (; q < b; q++) acc = saec_f4_fma(s_coef[q], X4[(int64_t)s_tok[q] * cols + c], acc);
                float4 *d4 = reinterpret_cast<float4 *>(dst) + c;
                if (!starts_before && !continues) {
                    const float4 o = *d4;
                    acc.x += o.x;
                    acc.y += o.y;
                    acc.z += o.z;
                    acc.w += o.w;
                }
                *d4 = acc;
            } else {
                float acc = 0.0f;
                for (; q + 4 <= b; q += 4) {
                    const float x0 = X[(int64_t)s_tok[q] * d + c];
                    const float x1 = X[(int64_t)s_tok[q + 1] * d + c];
                    const float x2 = X[(int64_t)s_tok[q + 2] * d + c];
                    const float x3 = X[(int64_t)s_tok[q + 3] * d + c];
                    acc = fmaf(s_coef[q], x0, acc);
                    acc = fmaf(s_coef[q + 1], x1, acc);
                    acc = fmaf(s_coef[q + 2], x2, acc);
                    acc = fmaf(s_coef[q + 3], x3, acc);
                }
                for (; q < b; q++) acc = fmaf(s_coef[q], X[(int64_t)s_tok[q] * d + c], acc);
                if (!starts_before && !continues) acc += dst[c];
                dst[c] = acc;
            }
            i = b;
        }
    }
}

/* sparse_outer_accum, step 3: for each run that crosses windows, the block of the window where it
   starts adds its partials (slot 2w+1 of that window, then slot 2w' of each following window the
   run reaches) in window order to dW / db.  Floor: reads the crossing runs' partial rows, once. */
template <bool VEC>
__global__ void soa_fixup_kernel(const uint32_t *__restrict__ keys, int64_t P, uint32_t m,
                                 int64_t d, int CH, int64_t nwin, float *__restrict__ dW,
                                 float *__restrict__ db, const float *__restrict__ part,
                                 const float *__restrict__ part_db) {
    const int64_t w = blockIdx.x;
    const int64_t ws = w * CH;
    const int64_t we = ws + CH < P ? ws + CH : P;
    const uint32_t L = keys[we - 1];
    if (L >= m) return;
    if (!(we < P && keys[we] == L)) return;                    /* the last run ends here */
    if (keys[ws] == L && ws > 0 && keys[ws - 1] == L) return;  /* it started in an earlier window */
    /* windows w+1 .. w_last hold the rest of the run */
    int64_t w_last = w + 1;
    while (w_last + 1 < nwin) {
        const int64_t e = (w_last + 1) * CH; /* end of window w_last */
        if (e < P && keys[e] == L)
            w_last++;
        else
            break;
    }
    if (db && threadIdx.x == 0) {
        float s = part_db[2 * w + 1];
        for (int64_t v = w + 1; v <= w_last; v++) s += part_db[2 * v];
        db[L] += s;
    }
    const int64_t cols = VEC ? d / 4 : d;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        if (VEC) {
            const float4 *p4 = reinterpret_cast<const float4 *>(part);
            float4 acc = p4[(2 * w + 1) * cols + c];
            for (int64_t v = w + 1; v <= w_last; v++) {
                const float4 t = p4[(2 * v) * cols + c];
                acc.x += t.x;
                acc.y += t.y;
                acc.z += t.z;
                acc.w += t.w;
            }
            float4 *o = reinterpret_cast<float4 *>(dW + (int64_t)L * d) + c;
            const float4 prev = *o;
            acc.x += prev.x;
            acc.y += prev.y;
            acc.z += prev.z;
            acc.w += prev.w;
            *o = acc;
        } else {
            float acc = part[(2 * w + 1) * d + c];
            for (int64_t v = w + 1; v <= w_last; v++) acc += part[(2 * v) * d + c];
            dW[(int64_t)L * d + c] += acc;
        }
    }
}

/* ---- launchers ------------------------------------------------------------------------------- */

extern "C" int saec_cuda_sparse_decode(saec_dev *dev, const int32_t *idx, const float *val,
                                       const float *W, const float *bias, int64_t n, int k,
                                       int64_t m, int64_t d, int accumulate, float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || d <= 0) return SAEC_OK;
    if (k < 0) k = 0;
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(W) && saec_cuda_aligned16(out) &&
                     (!bias || saec_cuda_aligned16(bias));
    const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
    const unsigned blocks = saec_cuda_blocks(n, 1, st->sm_count * 8);
    if (vec)
        sparse_decode_kernel<true><<<blocks, threads, 0, st->stream>>>(idx, val, W, bias, n, k, m,
                                                                        d, accumulate, out);
    else
        sparse_decode_kernel<false><<<blocks, threads, 0, st->stream>>>(idx, val, W, bias, n, k,
                                                                         m, d, accumulate, out);
    SAEC_CUDA_CHECK_LAUNCH("sparse_decode_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_sparse_row_dots(saec_dev *dev, const float *g, const int32_t *idx,
                                         const float *W, int64_t n, int k, int64_t m, int64_t d,
                                         float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || k <= 0) return SAEC_OK;
    const bool vec = d % 4 == 0 && saec_cuda_aligned16(g) && saec_cuda_aligned16(W);
    int threads = k >= 8 ? 256 : 32 * k; /* one warp per slot, up to 8 */
    const unsigned blocks = saec_cuda_blocks(n, 1, st->sm_count * 8);
    if (vec)
        sparse_row_dots_kernel<true><<<blocks, threads, 0, st->stream>>>(g, idx, W, n, k, m, d,
                                                                          out);
    else
        sparse_row_dots_kernel<false><<<blocks, threads, 0, st->stream>>>(g, idx, W, n, k, m, d,
                                                                           out);
    SAEC_CUDA_CHECK_LAUNCH("sparse_row_dots_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_sparse_outer_accum(saec_dev *dev, const int32_t *idx, const float *coef,
                                            const float *X, int64_t n, int k, int64_t m, int64_t d,
                                            float *dW, float *db) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (n <= 0 || k <= 0 || m <= 0 || d <= 0) return SAEC_OK;
    const int64_t P = n * (int64_t)k;
    if (P > (int64_t)INT32_MAX || m >= (int64_t)INT32_MAX)
        return saec_fail(SAEC_ERR_DEVICE, "use a smaller batch",
                         "sparse_outer_accum: n*k = %lld or m = %lld too large", (long long)P,
                         (long long)m);
    int end_bit = 1;
    while (((int64_t)1 << end_bit) <= m) end_bit++; /* keys are 0..m */

    /* windows: at least 128 pairs, at most ~2048 windows so the partials stay bounded */
    int64_t CH = (P + 2047) / 2048;
    CH = (CH + 31) / 32 * 32;
    if (CH < 128) CH = 128;
    if (CH > 8192) CH = 8192;
    const int64_t nwin = (P + CH - 1) / CH;

    size_t temp_bytes = 0;
    SAEC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        (void *)NULL, temp_bytes, (const uint32_t *)NULL, (uint32_t *)NULL, (const int32_t *)NULL,
        (int32_t *)NULL, P, 0, end_bit, st->stream));
    const size_t pb = (size_t)P * 4;
    const size_t part_bytes = (size_t)(2 * nwin) * (size_t)d * sizeof(float);
    const size_t need = 4 * saec_cuda_round256(pb) + saec_cuda_round256(temp_bytes) +
                        saec_cuda_round256(part_bytes) +
                        saec_cuda_round256((size_t)(2 * nwin) * sizeof(float));
    void *base = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, need, &base));
    char *cur = (char *)base;
    uint32_t *keys_in = (uint32_t *)saec_cuda_carve(&cur, pb);
    uint32_t *keys_out = (uint32_t *)saec_cuda_carve(&cur, pb);
    int32_t *vals_in = (int32_t *)saec_cuda_carve(&cur, pb);
    int32_t *perm = (int32_t *)saec_cuda_carve(&cur, pb);
    void *temp = saec_cuda_carve(&cur, temp_bytes);
    float *part = (float *)saec_cuda_carve(&cur, part_bytes);
    float *part_db = (float *)saec_cuda_carve(&cur, (size_t)(2 * nwin) * sizeof(float));

    soa_keys_kernel<<<saec_cuda_blocks(P, 256, st->sm_count), 256, 0, st->stream>>>(
        idx, coef, P, m, keys_in, vals_in);
    SAEC_CUDA_CHECK_LAUNCH("soa_keys_kernel");
    SAEC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, (const uint32_t *)keys_in,
                                                    keys_out, (const int32_t *)vals_in, perm, P, 0,
                                                    end_bit, st->stream));

    const bool vec = d % 4 == 0 && saec_cuda_aligned16(X) && saec_cuda_aligned16(dW);
    const int threads = saec_cuda_row_threads(vec ? d / 4 : d, 256);
    const size_t smem = (size_t)CH * 12;
    if (vec)
        soa_window_kernel<true><<<(unsigned)nwin, threads, smem, st->stream>>>(
            keys_out, perm, coef, X, P, k, (uint32_t)m, d, (int)CH, dW, db, part, part_db);
    else
        soa_window_kernel<false><<<(unsigned)nwin, threads, smem, st->stream>>>(
            keys_out, perm, coef, X, P, k, (uint32_t)m, d, (int)CH, dW, db, part, part_db);
    SAEC_CUDA_CHECK_LAUNCH("soa_window_kernel");
    if (nwin > 1) {
        if (vec)
            soa_fixup_kernel<true><<<(unsigned)(nwin - 1), threads, 0, st->stream>>>(
                keys_out, P, (uint32_t)m, d, (int)CH, nwin, dW, db, part, part_db);
        else
            soa_fixup_kernel<false><<<(unsigned)(nwin - 1), threads, 0, st->stream>>>(
                keys_out, P, (uint32_t)m, d, (int)CH, nwin, dW, db, part, part_db);
        SAEC_CUDA_CHECK_LAUNCH("soa_fixup_kernel");
    }
    return SAEC_OK;
}
