/* CUDA noisy top-k router of MoE-MAE (SPEC §7): router_forward and router_backward. The
 * per-token arithmetic is kernels/router_token.h, shared with the CPU reference
 * (kernels/cpu/cpu_router.c): the same draws, H, ranks and gates (float operations rounded as
 * there, transcendentals in double rounded once).
 *
 * Determinism. One thread a token. The forward's sums are fixed-order: each block of RT_THREADS
 * tokens sums its tokens with saec_block_sum (a fixed butterfly) into one row of chunk partials,
 * and one block adds the rows in order; no atomics, and the grid is a function of n only. The
 * backward sums nothing across tokens. Nothing synchronises with the host.
 */
#include "cuda_internal.cuh"
#include "router_token.h"

#define RT_THREADS 256 /* tokens a block (and a chunk of the forward's sums) */

static int router_args_ok(int64_t n, int E, int k) {
    return n >= 0 && E >= 1 && E <= RT_MAX_E && k >= 1 && k <= E;
}

/* Token t = the thread's: idx, gates [n, k]; with part, the block's sums into
   part [gridDim.x, RT_SUMS(E)]. Floor: reads clean (and raw), writes idx and gates. */
__global__ void __launch_bounds__(RT_THREADS)
    router_forward_kernel(const float *__restrict__ clean, const float *__restrict__ raw, int64_t n,
                          int E, int k, uint64_t seed, uint64_t counter, int32_t *__restrict__ idx,
                          float *__restrict__ gates, double *__restrict__ part) {
    __shared__ double s_warp[32];
    const int64_t t = (int64_t)blockIdx.x * RT_THREADS + threadIdx.x;
    double acc[RT_SUMS(RT_MAX_E)];
    const int ns = RT_SUMS(E);
    for (int q = 0; q < ns; q++)
        acc[q] = 0.0;
    if (t < n) rt_route(clean, raw, t, E, k, seed, counter, idx, gates, part ? acc : NULL);
    if (!part) return; /* uniform over the block */
    for (int q = 0; q < ns; q++) {
        const double s = saec_block_sum(acc[q], s_warp);
        if (threadIdx.x == 0) part[(int64_t)blockIdx.x * ns + q] = s;
    }
}

/* One block: the chunk rows of part [nchunks, RT_SUMS(E)] added in order (a thread a sum), then
   stats and loss. */
__global__ void router_finish_kernel(const double *__restrict__ part, int64_t nchunks, int64_t n,
                                     int E, float w_imp, float w_load, float w_switch, float w_z,
                                     double *__restrict__ stats, double *__restrict__ loss) {
    __shared__ double s_tot[RT_SUMS(RT_MAX_E)];
    const int ns = RT_SUMS(E);
    if ((int)threadIdx.x < ns) {
        double s = 0.0;
        for (int64_t ch = 0; ch < nchunks; ch++)
            s += part[ch * ns + threadIdx.x];
        s_tot[threadIdx.x] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) rt_finish(s_tot, n, E, w_imp, w_load, w_switch, w_z, stats, loss);
}

extern "C" int saec_cuda_router_forward(saec_dev *dev, const float *clean, const float *raw,
                                        int64_t n, int E, int k, uint64_t seed, uint64_t counter,
                                        float w_imp, float w_load, float w_switch, float w_z,
                                        int32_t *idx, float *gates, double *stats, double *loss) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("router_forward", router_args_ok(n, E, k));
    SAEC_CUDA_REQUIRE("router_forward", n == 0 || (clean && idx && gates));
    const int64_t nchunks = (n + RT_THREADS - 1) / RT_THREADS;
    SAEC_CUDA_REQUIRE("router_forward", nchunks <= 0x7fffffff);
    double *part = NULL; /* [nchunks, RT_SUMS(E)] */
    if ((stats || loss) && nchunks > 0)
        SAEC_TRY(saec_cuda_scratch(dev, (size_t)(nchunks * RT_SUMS(E)) * sizeof(double),
                                   (void **)&part));
    if (n > 0) {
        router_forward_kernel<<<(unsigned)nchunks, RT_THREADS, 0, st->stream>>>(
            clean, raw, n, E, k, seed, counter, idx, gates, part);
        SAEC_CUDA_CHECK_LAUNCH("router_forward_kernel");
    }
    if (!stats && !loss) return SAEC_OK;
    router_finish_kernel<<<1, 64, 0, st->stream>>>(part, nchunks, n, E, w_imp, w_load, w_switch,
                                                   w_z, stats, loss);
    SAEC_CUDA_CHECK_LAUNCH("router_finish_kernel");
    return SAEC_OK;
}

/* Token t = the thread's (grid-stride): dclean, draw [n, E] from dgates [n, k] and stats [4E]
   (the per-expert coefficients recomputed by each thread: E ≤ 8 values).
   Floor: reads clean, raw, dgates, writes dclean, draw. */
__global__ void __launch_bounds__(RT_THREADS)
    router_backward_kernel(const float *__restrict__ clean, const float *__restrict__ raw,
                           const float *__restrict__ dgates, const double *__restrict__ stats,
                           int64_t n, int E, int k, uint64_t seed, uint64_t counter, float w_imp,
                           float w_load, float w_switch, float w_z, float *__restrict__ dclean,
                           float *__restrict__ draw) {
    double cimp[RT_MAX_E], cload[RT_MAX_E];
    rt_coefs(stats, E, w_imp, w_load, cimp, cload);
    const double *f = w_switch != 0.0f ? stats + 2 * E : NULL;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < n;
         t += (int64_t)gridDim.x * blockDim.x)
        rt_token_backward(clean + t * E, raw ? raw + t * E : NULL, dgates + t * k, E, k, seed,
                          counter, t, cimp, cload, f, 1.0 / (double)n, w_switch, w_z,
                          dclean + t * E, draw ? draw + t * E : NULL);
}

extern "C" int saec_cuda_router_backward(saec_dev *dev, const float *clean, const float *raw,
                                         const float *dgates, const double *stats, int64_t n, int E,
                                         int k, uint64_t seed, uint64_t counter, float w_imp,
                                         float w_load, float w_switch, float w_z, float *dclean,
                                         float *draw) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_REQUIRE("router_backward", router_args_ok(n, E, k) && !raw == !draw);
    const int need_stats = w_imp != 0.0f || w_load != 0.0f || w_switch != 0.0f;
    SAEC_CUDA_REQUIRE("router_backward",
                      n == 0 || (clean && dgates && dclean && (stats || !need_stats)));
    if (n == 0) return SAEC_OK;
    router_backward_kernel<<<saec_cuda_blocks(n, RT_THREADS, st->sm_count), RT_THREADS, 0,
                             st->stream>>>(clean, raw, dgates, stats, n, E, k, seed, counter, w_imp,
                                           w_load, w_switch, w_z, dclean, draw);
    SAEC_CUDA_CHECK_LAUNCH("router_backward_kernel");
    return SAEC_OK;
}
