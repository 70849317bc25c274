/* CUDA transformer pieces of MoE-MAE (SPEC §7): LayerNorm and its backward, the SwiGLU product
 * and its backward, dropout, patchify / unpatchify, the MAE patch loss, the random patch mask and
 * grouped-query attention with its backward. The reference is kernels/cpu/cpu_transformer.c;
 * the formulas and their float roundings follow it (double row sums, each float operation
 * rounded, no FMA contraction), so CUDA and CPU agree to the last bits wherever the order of a
 * double sum does not enter.
 *
 * Determinism. No float atomics: row sums are warp butterflies (a fixed pattern); the column sums
 * of the LayerNorm backward are column passes (cuda_colpass.cuh: chunks of rows summed in order,
 * then the chunks in order); the loss is one block's fixed-order reduction. Nothing synchronises
 * with the host.
 *
 * Sizes. MoE-MAE's rows are short (d = 144 or 108, patches of 112 values), so the row kernels
 * give one warp to a row, not one block.
 */
#include <math.h>

#include "cuda_colpass.cuh"
#include "cuda_elementwise.cuh"
#include "cuda_internal.cuh"
#include "saec/hash.h"

#define TF_THREADS 256 /* every kernel here but the mask's: 8 warps */
#define TF_WARPS (TF_THREADS / 32)
#define MASK_MAX_N 1024 /* patch_mask: one thread a patch, one block a sample */

/* ---- LayerNorm --------------------------------------------------------------------------------
 */

/* One warp per row (grid-stride over rows): mean and variance in double (lane-strided sums, then
   the butterfly), rstd = 1/√(var + eps) rounded to float; y = ((x − mean)·rstd)·gamma + beta,
   each operation rounded as on the CPU. y may alias x (a lane reads its elements before it writes
   them, and every read of the row precedes the butterflies).
   Floor: reads n*d*4 + 2*d*4, writes n*d*4 + n*8 bytes. */
__global__ void layernorm_kernel(const float *x, const float *__restrict__ gamma,
                                 const float *__restrict__ beta, int64_t n, int64_t d, float eps,
                                 float *y, float *__restrict__ mean, float *__restrict__ rstd) {
    const int lane = threadIdx.x & 31;
    const int64_t warp0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = warp0; r < n; r += nwarps) {
        const float *xr = x + r * d; /* row r of x [n, d] */
        double s = 0.0;
        for (int64_t c = lane; c < d; c += 32)
            s += (double)xr[c];
        const double mu = saec_warp_sum(s) / (double)d;
        double ss = 0.0;
        for (int64_t c = lane; c < d; c += 32) {
            const double e = (double)xr[c] - mu;
            ss += e * e;
        }
        const double var = saec_warp_sum(ss) / (double)d;
        const float mu_f = (float)mu, rs = (float)(1.0 / sqrt(var + (double)eps));
        float *yr = y + r * d;
        for (int64_t c = lane; c < d; c += 32) {
            const float xhat = __fmul_rn(__fsub_rn(xr[c], mu_f), rs);
            yr[c] = __fadd_rn(__fmul_rn(xhat, gamma[c]), beta[c]);
        }
        if (lane == 0) {
            if (mean) mean[r] = mu_f;
            if (rstd) rstd[r] = rs;
        }
    }
}

extern "C" int saec_cuda_layernorm(saec_dev *dev, const float *x, const float *gamma,
                                   const float *beta, int64_t n, int64_t d, float eps, float *y,
                                   float *mean, float *rstd) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("layernorm", n >= 0 && d >= 1 && eps >= 0);
    SAEC_CUDA_REQUIRE("layernorm", n == 0 || (x && gamma && beta && y));
    if (n == 0) return SAEC_OK;
    layernorm_kernel<<<saec_cuda_blocks(n, TF_WARPS, st->sm_count), TF_THREADS, 0, st->stream>>>(
        x, gamma, beta, n, d, eps, y, mean, rstd);
    SAEC_CUDA_CHECK_LAUNCH("layernorm_kernel");
    return SAEC_OK;
}

/* dx, one warp per row: Σ g and Σ g·x̂ in double (g = dy·gamma), then
   dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with the CPU's float roundings. dx may alias dy (every
   read of dy in the sums precedes the butterflies; then a lane reads and writes its own).
   Floor: reads 2*n*d*4 + n*8 + d*4, writes n*d*4 bytes. */
__global__ void ln_backward_dx_kernel(const float *dy, const float *__restrict__ x,
                                      const float *__restrict__ gamma,
                                      const float *__restrict__ mean,
                                      const float *__restrict__ rstd, int64_t n, int64_t d,
                                      float *dx) {
    const int lane = threadIdx.x & 31;
    const int64_t warp0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = warp0; r < n; r += nwarps) {
        const float *xr = x + r * d, *gr = dy + r * d; /* rows r of x, dy [n, d] */
        const float mu = mean[r], rs = rstd[r];
        double sg = 0.0, sgx = 0.0;
        for (int64_t c = lane; c < d; c += 32) {
            const float xhat = __fmul_rn(__fsub_rn(xr[c], mu), rs);
            const double g = (double)gr[c] * (double)gamma[c];
            sg += g;
            sgx += g * (double)xhat;
        }
        const float mg = (float)(saec_warp_sum(sg) / (double)d);
        const float mgx = (float)(saec_warp_sum(sgx) / (double)d);
        float *dxr = dx + r * d;
        for (int64_t c = lane; c < d; c += 32) {
            const float xhat = __fmul_rn(__fsub_rn(xr[c], mu), rs);
            const float g = __fmul_rn(gr[c], gamma[c]);
            dxr[c] = __fmul_rn(rs, __fsub_rn(__fsub_rn(g, mg), __fmul_rn(xhat, mgx)));
        }
    }
}

/* Column pass over the rows of a chunk: partial[chunk, 0, c] = Σ dy·x̂ and partial[chunk, 1, c] =
   Σ dy in double. Launched before the dx kernel (dx may overwrite dy).
   Floor: reads 2*n*d*4 + n*8 bytes, writes nchunks*2*d*8. */
__global__ void __launch_bounds__(32 * CP_ROWS)
    ln_backward_cols_kernel(const float *__restrict__ dy, const float *__restrict__ x,
                            const float *__restrict__ mean, const float *__restrict__ rstd,
                            int64_t n, int64_t d, int64_t rows_per_chunk,
                            double *__restrict__ partial) {
    __shared__ double s_red[CP_ROWS * 32];
    int64_t c0, r0, r1;
    colpass_range<1>(n, rows_per_chunk, &c0, &r0, &r1);
    double ag[1] = {0.0}, ab[1] = {0.0};
    if (c0 < d)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CP_ROWS) {
            const float g = dy[r * d + c0];
            const float xhat = __fmul_rn(__fsub_rn(x[r * d + c0], mean[r]), rstd[r]);
            ag[0] += (double)g * (double)xhat;
            ab[0] += (double)g;
        }
    double *out = partial + (int64_t)blockIdx.y * 2 * d;
    colpass_store<1>(ag, s_red, c0, d, out);
    colpass_store<1>(ab, s_red, c0, d, out + d);
}

/* dgamma, dbeta [d] = (old when accumulate) + Σ_chunks partial, in chunk order.
   Floor: reads nchunks*2*d*8 (+ 2*d*4), writes 2*d*4 bytes. */
__global__ void ln_backward_final_kernel(const double *__restrict__ partial, int64_t nchunks,
                                         int64_t d, int accumulate, float *__restrict__ dgamma,
                                         float *__restrict__ dbeta) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    double sg = 0.0, sb = 0.0;
    for (int64_t ch = 0; ch < nchunks; ch++)
        sg += partial[ch * 2 * d + c], sb += partial[ch * 2 * d + d + c];
    if (dgamma) dgamma[c] = (float)((accumulate ? (double)dgamma[c] : 0.0) + sg);
    if (dbeta) dbeta[c] = (float)((accumulate ? (double)dbeta[c] : 0.0) + sb);
}

extern "C" int saec_cuda_layernorm_backward(saec_dev *dev, const float *dy, const float *x,
                                            const float *gamma, const float *mean,
                                            const float *rstd, int64_t n, int64_t d, int accumulate,
                                            float *dx, float *dgamma, float *dbeta) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("layernorm_backward", n >= 0 && d >= 1);
    SAEC_CUDA_REQUIRE("layernorm_backward", n == 0 || (dy && x && gamma && mean && rstd && dx));
    if (dgamma || dbeta) {
        int64_t nchunks = 0, rpc = 1;
        double *partial = NULL; /* [nchunks, 2, d] */
        if (n > 0) {
            colpass_plan(n, d, &nchunks, &rpc);
            SAEC_TRY(saec_cuda_scratch(dev, (size_t)(nchunks * 2 * d) * sizeof(double),
                                       (void **)&partial));
            ln_backward_cols_kernel<<<colpass_grid(d, 0, nchunks), dim3(32, CP_ROWS), 0,
                                      st->stream>>>(dy, x, mean, rstd, n, d, rpc, partial);
            SAEC_CUDA_CHECK_LAUNCH("ln_backward_cols_kernel");
        }
        ln_backward_final_kernel<<<(unsigned)((d + TF_THREADS - 1) / TF_THREADS), TF_THREADS, 0,
                                   st->stream>>>(partial, nchunks, d, accumulate, dgamma, dbeta);
        SAEC_CUDA_CHECK_LAUNCH("ln_backward_final_kernel");
    }
    if (n == 0) return SAEC_OK;
    ln_backward_dx_kernel<<<saec_cuda_blocks(n, TF_WARPS, st->sm_count), TF_THREADS, 0,
                            st->stream>>>(dy, x, gamma, mean, rstd, n, d, dx);
    SAEC_CUDA_CHECK_LAUNCH("ln_backward_dx_kernel");
    return SAEC_OK;
}

/* ---- SwiGLU -----------------------------------------------------------------------------------
 */

/* σ(v) = 1/(1 + e^−v) with the CPU's roundings (expf within 2 ulp of the CPU's: a few ulp apart).
 */
__device__ __forceinline__ float tf_sigmoid(float v) {
    return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-v)));
}

/* out = (a·σ(a))·b, left to right as on the CPU. out may alias a or b.
   Floor: reads 2*n*4, writes n*4 bytes. */
__global__ void swiglu_kernel(const float *a, const float *b, int64_t n, float *out, int vec) {
    auto f = [](float v, float w) { return __fmul_rn(__fmul_rn(v, tf_sigmoid(v)), w); };
    saec_ew_map(n, vec, out, f, a, b);
}

extern "C" int saec_cuda_swiglu(saec_dev *dev, const float *a, const float *b, int64_t n,
                                float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("swiglu", n >= 0 && (n == 0 || (a && b && out)));
    if (n == 0) return SAEC_OK;
    const int vec = saec_ew_aligned16(a, b, out);
    swiglu_kernel<<<saec_ew_blocks(n, vec, TF_THREADS, st->sm_count), TF_THREADS, 0, st->stream>>>(
        a, b, n, out, vec);
    SAEC_CUDA_CHECK_LAUNCH("swiglu_kernel");
    return SAEC_OK;
}

/* The backward at one element: da = ((g·w)·s)·(1 + v·t), db = g·(v·s), s = σ(v), t = σ(−v). */
__device__ __forceinline__ void swiglu_grad(float v, float w, float g, float &da, float &db) {
    const float s = tf_sigmoid(v), t = tf_sigmoid(-v);
    da = __fmul_rn(__fmul_rn(__fmul_rn(g, w), s), __fadd_rn(1.0f, __fmul_rn(v, t)));
    db = __fmul_rn(g, __fmul_rn(v, s));
}

/* Every input of an element (or float4 group) is loaded before either output is stored, by the
   same thread: da may alias a or dout, db may alias b or dout.
   Floor: reads 3*n*4, writes 2*n*4 bytes. */
__global__ void swiglu_backward_kernel(const float *a, const float *b, const float *dout, int64_t n,
                                       float *da, float *db, int vec) {
    saec_ew_loop(
        n, vec,
        [&](int64_t q) {
            const float4 v = reinterpret_cast<const float4 *>(a)[q];
            const float4 w = reinterpret_cast<const float4 *>(b)[q];
            const float4 g = reinterpret_cast<const float4 *>(dout)[q];
            float4 oa, ob;
            swiglu_grad(v.x, w.x, g.x, oa.x, ob.x);
            swiglu_grad(v.y, w.y, g.y, oa.y, ob.y);
            swiglu_grad(v.z, w.z, g.z, oa.z, ob.z);
            swiglu_grad(v.w, w.w, g.w, oa.w, ob.w);
            reinterpret_cast<float4 *>(da)[q] = oa;
            reinterpret_cast<float4 *>(db)[q] = ob;
        },
        [&](int64_t i) {
            float oa, ob;
            swiglu_grad(a[i], b[i], dout[i], oa, ob);
            da[i] = oa;
            db[i] = ob;
        });
}

extern "C" int saec_cuda_swiglu_backward(saec_dev *dev, const float *a, const float *b,
                                         const float *dout, int64_t n, float *da, float *db) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("swiglu_backward", n >= 0 && (n == 0 || (a && b && dout && da && db)));
    if (n == 0) return SAEC_OK;
    const int vec = saec_ew_aligned16(a, b, dout, da, db);
    swiglu_backward_kernel<<<saec_ew_blocks(n, vec, TF_THREADS, st->sm_count), TF_THREADS, 0,
                             st->stream>>>(a, b, dout, n, da, db, vec);
    SAEC_CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
    return SAEC_OK;
}

/* ---- dropout --------------------------------------------------------------------------------- */

/* out = x·scale where the draw >= p, else 0 (the CPU's hash and one rounded multiply: bit for
   bit). out may alias x. Floor: reads and writes n*4 bytes. */
__global__ void dropout_kernel(const float *x, int64_t n, float p, float scale, uint64_t seed,
                               uint64_t counter, float *out) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = saec_hash_uniform(seed, SAEC_RNG_DROPOUT, counter + (uint64_t)i) >= p
                     ? __fmul_rn(x[i], scale)
                     : 0.0f;
}

extern "C" int saec_cuda_dropout(saec_dev *dev, const float *x, int64_t n, float p, uint64_t seed,
                                 uint64_t counter, float *out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("dropout", n >= 0 && p >= 0.0f && p < 1.0f && (n == 0 || (x && out)));
    if (n == 0) return SAEC_OK;
    const float scale = 1.0f / (1.0f - p); /* on the host, as the CPU rounds it */
    dropout_kernel<<<saec_cuda_blocks(n, TF_THREADS, st->sm_count), TF_THREADS, 0, st->stream>>>(
        x, n, p, scale, seed, counter, out);
    SAEC_CUDA_CHECK_LAUNCH("dropout_kernel");
    return SAEC_OK;
}

/* ---- patches ----------------------------------------------------------------------------------
 */

/* One thread an output element (grid-stride): consecutive threads write consecutive values of a
   patch and read runs of P consecutive pixels. Floor: reads and writes B·gh·gw·C·P·P·4 bytes. */
__global__ void patchify_kernel(const float *__restrict__ img, int64_t C, int64_t H, int64_t W,
                                int64_t P, int64_t gh, int64_t gw, int64_t total,
                                float *__restrict__ patches) {
    const int64_t pv = C * P * P;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t bq = i / pv,
                      e = i % pv; /* patch bq = b·gh·gw + q, value e = (c·P + y)·P + x */
        const int64_t b = bq / (gh * gw), q = bq % (gh * gw);
        const int64_t c = e / (P * P), y = (e / P) % P, xx = e % P;
        patches[i] = img[((b * C + c) * H + (q / gw) * P + y) * W + (q % gw) * P + xx];
    }
}

/* One thread an image element: its patch value, or 0 past the last whole patch.
   Floor: reads B·gh·gw·C·P·P·4, writes B·C·H·W·4 bytes. */
__global__ void unpatchify_kernel(const float *__restrict__ patches, int64_t C, int64_t H,
                                  int64_t W, int64_t P, int64_t gh, int64_t gw, int64_t total,
                                  float *__restrict__ img) {
    const int64_t pv = C * P * P;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t xx = i % W, yy = (i / W) % H, c = (i / (W * H)) % C, b = i / (W * H * C);
        const int64_t py = yy / P, px = xx / P;
        img[i] = py < gh && px < gw
                     ? patches[(b * gh * gw + py * gw + px) * pv + (c * P + yy % P) * P + xx % P]
                     : 0.0f;
    }
}

extern "C" int saec_cuda_patchify(saec_dev *dev, const float *img, int64_t B, int64_t C, int64_t H,
                                  int64_t W, int64_t P, float *patches) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("patchify", B >= 0 && C >= 1 && H >= 0 && W >= 0 && P >= 1);
    const int64_t gh = H / P, gw = W / P, total = B * gh * gw * C * P * P;
    if (total == 0) return SAEC_OK;
    SAEC_CUDA_REQUIRE("patchify", img && patches);
    patchify_kernel<<<saec_cuda_blocks(total, TF_THREADS, st->sm_count), TF_THREADS, 0,
                      st->stream>>>(img, C, H, W, P, gh, gw, total, patches);
    SAEC_CUDA_CHECK_LAUNCH("patchify_kernel");
    return SAEC_OK;
}

extern "C" int saec_cuda_unpatchify(saec_dev *dev, const float *patches, int64_t B, int64_t C,
                                    int64_t H, int64_t W, int64_t P, float *img) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("unpatchify", B >= 0 && C >= 1 && H >= 0 && W >= 0 && P >= 1);
    const int64_t gh = H / P, gw = W / P, total = B * C * H * W;
    if (total == 0) return SAEC_OK;
    SAEC_CUDA_REQUIRE("unpatchify", img && (gh * gw == 0 || patches));
    unpatchify_kernel<<<saec_cuda_blocks(total, TF_THREADS, st->sm_count), TF_THREADS, 0,
                        st->stream>>>(patches, C, H, W, P, gh, gw, total, img);
    SAEC_CUDA_CHECK_LAUNCH("unpatchify_kernel");
    return SAEC_OK;
}

/* ---- the MAE patch loss -----------------------------------------------------------------------
 */

/* row[r] = ‖pred_r − target_r‖² in double, one warp a patch. Floor: reads 2*n*v*4, writes n*8. */
__global__ void patch_sse_kernel(const float *__restrict__ pred, const float *__restrict__ target,
                                 int64_t n, int64_t v, double *__restrict__ row) {
    const int lane = threadIdx.x & 31;
    const int64_t warp0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = warp0; r < n; r += nwarps) {
        double s = 0.0;
        for (int64_t c = lane; c < v; c += 32) {
            const double e = (double)pred[r * v + c] - (double)target[r * v + c];
            s += e * e;
        }
        s = saec_warp_sum(s);
        if (lane == 0) row[r] = s;
    }
}

/* One block: the two kinds' sums and counts over the patches (thread-strided, then block sums:
   a fixed order), the loss [3] and the gradient's two coefficients coef [2] = {visible, masked},
   rounded to float as on the CPU. Floor: reads n*8 + n bytes. */
__global__ void patch_loss_final_kernel(const double *__restrict__ row,
                                        const uint8_t *__restrict__ mask, int64_t n, float w_masked,
                                        float w_visible, double *__restrict__ loss,
                                        float *__restrict__ coef) {
    __shared__ double s_warp[32];
    double sm = 0.0, sv = 0.0, cm = 0.0, cv = 0.0;
    for (int64_t r = threadIdx.x; r < n; r += blockDim.x) {
        if (mask[r])
            sm += row[r], cm += 1.0;
        else
            sv += row[r], cv += 1.0;
    }
    sm = saec_block_sum(sm, s_warp);
    sv = saec_block_sum(sv, s_warp);
    cm = saec_block_sum(cm, s_warp); /* counts: exact in double */
    cv = saec_block_sum(cv, s_warp);
    if (threadIdx.x == 0) {
        loss[1] = cm > 0 ? sm / cm : 0.0;
        loss[2] = cv > 0 ? sv / cv : 0.0;
        loss[0] = (double)w_masked * loss[1] + (double)w_visible * loss[2];
        coef[0] = cv > 0 ? (float)(2.0 * (double)w_visible / cv) : 0.0f;
        coef[1] = cm > 0 ? (float)(2.0 * (double)w_masked / cm) : 0.0f;
    }
}

/* grad = coef[kind]·(pred − target), one thread an element. Floor: reads 2*n*v*4 + n, writes
   n*v*4 bytes. */
__global__ void patch_loss_grad_kernel(const float *__restrict__ pred,
                                       const float *__restrict__ target,
                                       const uint8_t *__restrict__ mask, int64_t n, int64_t v,
                                       const float *__restrict__ coef, float *__restrict__ grad) {
    const float k0 = coef[0], k1 = coef[1];
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n * v;
         i += (int64_t)gridDim.x * blockDim.x)
        grad[i] = __fmul_rn(mask[i / v] ? k1 : k0, __fsub_rn(pred[i], target[i]));
}

extern "C" int saec_cuda_patch_loss(saec_dev *dev, const float *pred, const float *target,
                                    const uint8_t *mask, int64_t n, int64_t v, float w_masked,
                                    float w_visible, double *loss, float *grad) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("patch_loss", n >= 0 && v >= 1 && loss != NULL);
    SAEC_CUDA_REQUIRE("patch_loss", n == 0 || (pred && target && mask));
    char *cur = NULL;
    SAEC_TRY(saec_cuda_scratch(dev, saec_cuda_round256((size_t)n * sizeof(double)) + 256,
                               (void **)&cur));
    double *row = (double *)saec_cuda_carve(&cur, (size_t)n * sizeof(double)); /* [n] */
    float *coef = (float *)saec_cuda_carve(&cur, 2 * sizeof(float));           /* [2] */
    if (n > 0) {
        patch_sse_kernel<<<saec_cuda_blocks(n, TF_WARPS, st->sm_count), TF_THREADS, 0,
                           st->stream>>>(pred, target, n, v, row);
        SAEC_CUDA_CHECK_LAUNCH("patch_sse_kernel");
    }
    patch_loss_final_kernel<<<1, 1024, 0, st->stream>>>(row, mask, n, w_masked, w_visible, loss,
                                                        coef);
    SAEC_CUDA_CHECK_LAUNCH("patch_loss_final_kernel");
    if (!grad || n == 0) return SAEC_OK;
    patch_loss_grad_kernel<<<saec_cuda_blocks(n * v, TF_THREADS, st->sm_count), TF_THREADS, 0,
                             st->stream>>>(pred, target, mask, n, v, coef, grad);
    SAEC_CUDA_CHECK_LAUNCH("patch_loss_grad_kernel");
    return SAEC_OK;
}

/* ---- the random patch mask --------------------------------------------------------------------
 */

/* One block a sample, one thread a patch: its draw (the CPU's hash), its rank in (u, index)
   order, then its place among the kept patches (how many kept ones have a lower index).
   Floor: writes B·n_keep·4 + B·N bytes; O(N²) comparisons a sample. */
__global__ void patch_mask_kernel(uint64_t seed, uint64_t counter, int64_t N, int64_t n_keep,
                                  int32_t *__restrict__ keep, uint8_t *__restrict__ mask) {
    __shared__ float s_u[MASK_MAX_N];
    __shared__ int s_kept[MASK_MAX_N];
    const int64_t b = blockIdx.x, q = threadIdx.x;
    if (q < N)
        s_u[q] = saec_hash_uniform(seed, SAEC_RNG_PATCH_MASK, counter + (uint64_t)(b * N + q));
    __syncthreads();
    int kept = 0;
    if (q < N) {
        const float uq = s_u[q];
        int64_t before = 0;
        for (int64_t p = 0; p < N; p++)
            before += s_u[p] < uq || (s_u[p] == uq && p < q);
        kept = before < n_keep;
        s_kept[q] = kept;
        mask[b * N + q] = (uint8_t)!kept;
    }
    __syncthreads();
    if (q < N && kept) {
        int64_t pos = 0;
        for (int64_t p = 0; p < q; p++)
            pos += s_kept[p];
        keep[b * n_keep + pos] = (int32_t)q;
    }
}

extern "C" int saec_cuda_patch_mask(saec_dev *dev, uint64_t seed, uint64_t counter, int64_t B,
                                    int64_t N, int64_t n_keep, int32_t *keep, uint8_t *mask) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("patch_mask",
                      B >= 0 && N >= 0 && N <= MASK_MAX_N && n_keep >= 0 && n_keep <= N);
    SAEC_CUDA_REQUIRE("patch_mask", B * N == 0 || (mask && (n_keep == 0 || keep)));
    if (B * N == 0) return SAEC_OK;
    SAEC_CUDA_REQUIRE("patch_mask", B <= 0x7fffffff);
    const int threads = (int)((N + 31) / 32 * 32);
    patch_mask_kernel<<<(unsigned)B, threads, 0, st->stream>>>(seed, counter, N, n_keep, keep,
                                                               mask);
    SAEC_CUDA_CHECK_LAUNCH("patch_mask_kernel");
    return SAEC_OK;
}

/* One thread a full-grid token: a prefix token maps to itself; a patch finds itself among the
   sample's kept patches (ascending: a binary search) and writes inv, and perm when kept.
   Floor: reads B·n_keep·4 (log-many times), writes the two index lists. */
__global__ void patch_token_index_kernel(const int32_t *__restrict__ keep, int64_t B, int64_t N,
                                         int64_t n_keep, int64_t prefix, int32_t mask_row,
                                         int32_t *__restrict__ perm, int32_t *__restrict__ inv) {
    const int64_t T = prefix + N, V = prefix + n_keep;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < B * T;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = e / T, t = e % T;
        if (t < prefix) {
            perm[b * V + t] = (int32_t)e;
            inv[e] = (int32_t)(b * V + t);
            continue;
        }
        const int32_t q = (int32_t)(t - prefix);
        const int32_t *kb = keep + b * n_keep;
        int64_t lo = 0, hi = n_keep; /* the first kept patch >= q */
        while (lo < hi) {
            const int64_t mid = (lo + hi) / 2;
            if (kb[mid] < q)
                lo = mid + 1;
            else
                hi = mid;
        }
        const bool kept = lo < n_keep && kb[lo] == q;
        inv[e] = kept ? (int32_t)(b * V + prefix + lo) : mask_row;
        if (kept) perm[b * V + prefix + lo] = (int32_t)e;
    }
}

extern "C" int saec_cuda_patch_token_index(saec_dev *dev, const int32_t *keep, int64_t B, int64_t N,
                                           int64_t n_keep, int64_t prefix, int32_t mask_row,
                                           int32_t *perm, int32_t *inv) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("patch_token_index",
                      B >= 0 && N >= 0 && n_keep >= 0 && n_keep <= N && prefix >= 0);
    const int64_t T = prefix + N;
    SAEC_CUDA_REQUIRE("patch_token_index", B * T <= INT32_MAX && mask_row >= -1);
    if (B == 0 || T == 0) return SAEC_OK;
    SAEC_CUDA_REQUIRE("patch_token_index", perm && inv && (n_keep == 0 || keep));
    patch_token_index_kernel<<<saec_cuda_blocks(B * T, TF_THREADS, st->sm_count), TF_THREADS, 0,
                               st->stream>>>(keep, B, N, n_keep, prefix, mask_row, perm, inv);
    SAEC_CUDA_CHECK_LAUNCH("patch_token_index_kernel");
    return SAEC_OK;
}

/* ---- grouped-query attention ------------------------------------------------------------------
 */

#define ATTN_THREADS 128          /* threads of a (sample, head) block: one query row each */
#define ATTN_SMEM_MAX (48 * 1024) /* K and V of a group staged in shared memory up to this */
#define ATTN_DH_MAX 64

/* ⟨a, b⟩ over dh values in double (each float product exact in double: contraction changes
   nothing), as the CPU's dot_d. */
__device__ __forceinline__ double attn_dot(const float *a, const float *b, int dh) {
    double s = 0.0;
    for (int c = 0; c < dh; c++)
        s += (double)a[c] * (double)b[c];
    return s;
}

__device__ __forceinline__ float attn_score_d(const float *qi, const float *kj, int dh,
                                              float scale) {
    return __fmul_rn(scale, (float)attn_dot(qi, kj, dh));
}

/* Copy the L rows of group g's keys and values of sample b (row stride ld_kv) into s_k, s_v
   [L, dh] (every thread of the block takes part). */
__device__ __forceinline__ void attn_stage_kv(const float *k, const float *v, int64_t ld_kv,
                                              int64_t L, int dh, float *s_k, float *s_v) {
    for (int64_t e = threadIdx.x; e < L * dh; e += blockDim.x) {
        const int64_t j = e / dh, c = e % dh;
        s_k[e] = k[j * ld_kv + c];
        s_v[e] = v[j * ld_kv + c];
    }
    __syncthreads();
}

/* Group g of sample b's keys and values as a kernel reads them: staged in shared memory s_kv
   (row stride dh) when SMEM, else in place (row stride ld_kv). Every thread of the block calls
   it. */
template <bool SMEM>
__device__ __forceinline__ void attn_group_kv(const float *k, const float *v, int64_t ld_kv,
                                              int64_t L, int dh, int64_t b, int64_t g, float *s_kv,
                                              const float **kb, const float **vb, int64_t *ld) {
    *kb = k + b * L * ld_kv + g * dh, *vb = v + b * L * ld_kv + g * dh, *ld = ld_kv;
    if (SMEM) {
        attn_stage_kv(*kb, *vb, ld_kv, L, dh, s_kv, s_kv + L * dh);
        *kb = s_kv, *vb = s_kv + L * dh, *ld = dh;
    }
}

/* One block a (sample, head), one thread a query row (strided when L > the block): the CPU's two
   passes (the max of the scores, then the exponentials and the weighted sum of v in double).
   SMEM: the group's K and V staged in shared memory [L, dh] each (row stride dh), else read from
   global memory (row stride ld_kv). Floor: reads q, k, v once (k, v once per head from L2),
   writes out and lse; 4·B·Hq·L²·dh FLOPs. */
template <bool SMEM>
__global__ void attention_kernel(const float *__restrict__ q, const float *__restrict__ k,
                                 const float *__restrict__ v, int64_t ld_q, int64_t ld_kv,
                                 int64_t L, int Hq, int G, int dh, float scale,
                                 float *__restrict__ out, float *__restrict__ lse) {
    extern __shared__ float s_kv[];
    const int64_t b = blockIdx.x / Hq, h = blockIdx.x % Hq, g = h % G;
    const float *kb, *vb; /* group g's keys and values: row j at j·ld */
    int64_t ld;
    attn_group_kv<SMEM>(k, v, ld_kv, L, dh, b, g, s_kv, &kb, &vb, &ld);
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
        const float *qi = q + (b * L + i) * ld_q + h * dh;
        float mx = -INFINITY;
        for (int64_t j = 0; j < L; j++)
            mx = fmaxf(mx, attn_score_d(qi, kb + j * ld, dh, scale));
        double l = 0.0, acc[ATTN_DH_MAX];
        for (int c = 0; c < dh; c++)
            acc[c] = 0.0;
        for (int64_t j = 0; j < L; j++) {
            const float p = expf(__fsub_rn(attn_score_d(qi, kb + j * ld, dh, scale), mx));
            l += (double)p;
            for (int c = 0; c < dh; c++)
                acc[c] += (double)p * (double)vb[j * ld + c];
        }
        float *o = out + (b * L + i) * Hq * dh + h * dh;
        for (int c = 0; c < dh; c++)
            o[c] = (float)(acc[c] / l);
        lse[(b * Hq + h) * L + i] = __fadd_rn(mx, (float)log(l));
    }
}

/* Shared memory for a group's K and V, or 0 when they do not fit (global reads then). */
static size_t attn_smem(int64_t L, int dh) {
    const size_t bytes = 2 * (size_t)L * (size_t)dh * sizeof(float);
    return bytes <= ATTN_SMEM_MAX ? bytes : 0;
}

static int attn_args_ok(int64_t ld_q, int64_t ld_kv, int64_t B, int64_t L, int Hq, int G, int dh) {
    return B >= 0 && L >= 0 && G >= 1 && Hq >= G && Hq % G == 0 && dh >= 1 && dh <= ATTN_DH_MAX &&
           ld_q >= (int64_t)Hq * dh && ld_kv >= (int64_t)G * dh && B * Hq <= 0x7fffffff;
}

static int attn_threads(int64_t L) {
    const int64_t t = (L + 31) / 32 * 32;
    return (int)(t < ATTN_THREADS ? (t > 0 ? t : 32) : ATTN_THREADS);
}

extern "C" int saec_cuda_attention(saec_dev *dev, const float *q, const float *k, const float *v,
                                   int64_t ld_q, int64_t ld_kv, int64_t B, int64_t L, int Hq, int G,
                                   int dh, float scale, float *out, float *lse) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("attention", attn_args_ok(ld_q, ld_kv, B, L, Hq, G, dh));
    if (B * L == 0) return SAEC_OK;
    SAEC_CUDA_REQUIRE("attention", q && k && v && out && lse);
    const size_t smem = attn_smem(L, dh);
    const unsigned blocks = (unsigned)(B * Hq);
    if (smem)
        attention_kernel<true><<<blocks, attn_threads(L), smem, st->stream>>>(
            q, k, v, ld_q, ld_kv, L, Hq, G, dh, scale, out, lse);
    else
        attention_kernel<false><<<blocks, attn_threads(L), 0, st->stream>>>(
            q, k, v, ld_q, ld_kv, L, Hq, G, dh, scale, out, lse);
    SAEC_CUDA_CHECK_LAUNCH("attention_kernel");
    return SAEC_OK;
}

/* P_ij and dS_ij of one head (the CPU's attn_p_ds, with its roundings). */
__device__ __forceinline__ void attn_p_ds_d(const float *qi, const float *kj, const float *vj,
                                            const float *doi, int dh, float scale, float lse_i,
                                            float D_i, float *p, float *ds) {
    *p = expf(__fsub_rn(attn_score_d(qi, kj, dh, scale), lse_i));
    *ds = __fmul_rn(*p, __fsub_rn((float)attn_dot(doi, vj, dh), D_i));
}

/* dq: one block a (sample, head), one thread a query row; the sum over the keys in order. Also
   D [B, Hq, L] = ⟨dout_i, out_i⟩, which the dk/dv kernel reads.
   Floor: reads q, dout, out once and k, v per head, writes dq and D. */
template <bool SMEM>
__global__ void attention_dq_kernel(const float *__restrict__ q, const float *__restrict__ k,
                                    const float *__restrict__ v, int64_t ld_q, int64_t ld_kv,
                                    const float *__restrict__ out, const float *__restrict__ dout,
                                    const float *__restrict__ lse, int64_t L, int Hq, int G, int dh,
                                    float scale, float *__restrict__ dq, float *__restrict__ D) {
    extern __shared__ float s_kv[];
    const int64_t b = blockIdx.x / Hq, h = blockIdx.x % Hq, g = h % G, ld_o = (int64_t)Hq * dh;
    const float *kb, *vb; /* group g's keys and values: row j at j·ld */
    int64_t ld;
    attn_group_kv<SMEM>(k, v, ld_kv, L, dh, b, g, s_kv, &kb, &vb, &ld);
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
        const float *qi = q + (b * L + i) * ld_q + h * dh;
        const float *doi = dout + (b * L + i) * ld_o + h * dh;
        const float D_i = (float)attn_dot(doi, out + (b * L + i) * ld_o + h * dh, dh);
        D[(b * Hq + h) * L + i] = D_i; /* for the dk/dv kernel */
        const float lse_i = lse[(b * Hq + h) * L + i];
        double acc[ATTN_DH_MAX];
        for (int c = 0; c < dh; c++)
            acc[c] = 0.0;
        for (int64_t j = 0; j < L; j++) {
            float p, ds;
            attn_p_ds_d(qi, kb + j * ld, vb + j * ld, doi, dh, scale, lse_i, D_i, &p, &ds);
            for (int c = 0; c < dh; c++)
                acc[c] += (double)ds * (double)kb[j * ld + c];
        }
        float *dqi = dq + (b * L + i) * ld_q + h * dh;
        for (int c = 0; c < dh; c++)
            dqi[c] = (float)((double)scale * acc[c]);
    }
}

/* dk, dv: one block a (sample, group), one thread a key row; the sums over the group's heads,
   then the queries, in order (the CPU's). Floor: reads k, v once and q, dout, lse, D per key
   row from L2, writes dk, dv. */
__global__ void attention_dkv_kernel(const float *__restrict__ q, const float *__restrict__ k,
                                     const float *__restrict__ v, int64_t ld_q, int64_t ld_kv,
                                     const float *__restrict__ D, const float *__restrict__ dout,
                                     const float *__restrict__ lse, int64_t L, int Hq, int G,
                                     int dh, float scale, float *__restrict__ dk,
                                     float *__restrict__ dv) {
    const int64_t b = blockIdx.x / G, g = blockIdx.x % G, ld_o = (int64_t)Hq * dh;
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
        const float *kj = k + (b * L + j) * ld_kv + g * dh, *vj = v + (b * L + j) * ld_kv + g * dh;
        double ak[ATTN_DH_MAX], av[ATTN_DH_MAX];
        for (int c = 0; c < dh; c++)
            ak[c] = av[c] = 0.0;
        for (int64_t h = g; h < Hq; h += G)
            for (int64_t i = 0; i < L; i++) {
                const float *qi = q + (b * L + i) * ld_q + h * dh;
                const float *doi = dout + (b * L + i) * ld_o + h * dh;
                float p, ds;
                attn_p_ds_d(qi, kj, vj, doi, dh, scale, lse[(b * Hq + h) * L + i],
                            D[(b * Hq + h) * L + i], &p, &ds);
                for (int c = 0; c < dh; c++) {
                    ak[c] += (double)ds * (double)qi[c];
                    av[c] += (double)p * (double)doi[c];
                }
            }
        float *dkj = dk + (b * L + j) * ld_kv + g * dh, *dvj = dv + (b * L + j) * ld_kv + g * dh;
        for (int c = 0; c < dh; c++) {
            dkj[c] = (float)((double)scale * ak[c]);
            dvj[c] = (float)av[c];
        }
    }
}

extern "C" int saec_cuda_attention_backward(saec_dev *dev, const float *q, const float *k,
                                            const float *v, int64_t ld_q, int64_t ld_kv,
                                            const float *out, const float *dout, const float *lse,
                                            int64_t B, int64_t L, int Hq, int G, int dh,
                                            float scale, float *dq, float *dk, float *dv) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("attention_backward", attn_args_ok(ld_q, ld_kv, B, L, Hq, G, dh));
    if (B * L == 0) return SAEC_OK;
    SAEC_CUDA_REQUIRE("attention_backward", q && k && v && out && dout && lse && dq && dk && dv);
    float *D = NULL; /* [B, Hq, L]: from the dq kernel to the dk/dv kernel */
    SAEC_TRY(saec_cuda_scratch(dev, (size_t)(B * Hq * L) * sizeof(float), (void **)&D));
    const size_t smem = attn_smem(L, dh);
    if (smem)
        attention_dq_kernel<true><<<(unsigned)(B * Hq), attn_threads(L), smem, st->stream>>>(
            q, k, v, ld_q, ld_kv, out, dout, lse, L, Hq, G, dh, scale, dq, D);
    else
        attention_dq_kernel<false><<<(unsigned)(B * Hq), attn_threads(L), 0, st->stream>>>(
            q, k, v, ld_q, ld_kv, out, dout, lse, L, Hq, G, dh, scale, dq, D);
    SAEC_CUDA_CHECK_LAUNCH("attention_dq_kernel");
    attention_dkv_kernel<<<(unsigned)(B * G), attn_threads(L), 0, st->stream>>>(
        q, k, v, ld_q, ld_kv, D, dout, lse, L, Hq, G, dh, scale, dk, dv);
    SAEC_CUDA_CHECK_LAUNCH("attention_dkv_kernel");
    return SAEC_OK;
}
