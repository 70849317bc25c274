/* CPU noisy top-k router of MoE-MAE (SPEC §7): router_forward (noise, top-k, gates, the balance
 * statistics and losses) and router_backward. The per-token arithmetic is kernels/router_token.h,
 * shared with the CUDA backend; here the tokens are split into chunks of RT_CHUNK whose sums are
 * taken in token order and then added chunk by chunk, so the result is the same for any thread
 * count.
 */
#include <string.h>

#include "cpu_internal.h"
#include "router_token.h"

#define RT_CHUNK 256 /* tokens a chunk of the forward's sums */

static int router_args_ok(int64_t n, int E, int k) {
    return n >= 0 && E >= 1 && E <= RT_MAX_E && k >= 1 && k <= E;
}

/* clean, raw [n, E] -> idx, gates [n, k]; stats [4E], loss [5] (or NULL).
   Floor: reads clean (and raw), writes idx and gates; ~30 FLOPs an element with noise. */
int saec_cpu_router_forward(saec_dev *dev, const float *clean, const float *raw, int64_t n, int E,
                            int k, uint64_t seed, uint64_t counter, float w_imp, float w_load,
                            float w_switch, float w_z, int32_t *idx, float *gates, double *stats,
                            double *loss) {
    SAEC_CPU_REQUIRE("router_forward", router_args_ok(n, E, k));
    SAEC_CPU_REQUIRE("router_forward", n == 0 || (clean && idx && gates));
    const int sums = stats || loss, ns = RT_SUMS(E);
    const int64_t nchunks = (n + RT_CHUNK - 1) / RT_CHUNK;
    double *part = NULL; /* [nchunks, RT_SUMS(E)] */
    if (sums && nchunks > 0)
        SAEC_TRY(saec_cpu_scratch(dev, (size_t)(nchunks * ns) * sizeof(double), (void **)&part));
#pragma omp parallel for schedule(static) if (n * E * 64 >= SAEC_CPU_PAR_MIN)
    for (int64_t ch = 0; ch < nchunks; ch++) {
        double *acc = part ? part + ch * ns : NULL;
        if (acc) memset(acc, 0, (size_t)ns * sizeof(double));
        const int64_t t1 = (ch + 1) * RT_CHUNK < n ? (ch + 1) * RT_CHUNK : n;
        for (int64_t t = ch * RT_CHUNK; t < t1; t++)
            rt_route(clean, raw, t, E, k, seed, counter, idx, gates, acc);
    }
    if (!sums) return SAEC_OK;
    double tot[RT_SUMS(RT_MAX_E)] = {0};
    for (int64_t ch = 0; ch < nchunks; ch++)
        for (int q = 0; q < ns; q++)
            tot[q] += part[ch * ns + q];
    rt_finish(tot, n, E, w_imp, w_load, w_switch, w_z, stats, loss);
    return SAEC_OK;
}

/* clean, raw, dclean, draw [n, E], dgates [n, k], stats [4E]. One token at a time, nothing summed
   across tokens. Floor: reads clean, raw, dgates, writes dclean, draw. */
int saec_cpu_router_backward(saec_dev *dev, const float *clean, const float *raw,
                             const float *dgates, const double *stats, int64_t n, int E, int k,
                             uint64_t seed, uint64_t counter, float w_imp, float w_load,
                             float w_switch, float w_z, float *dclean, float *draw) {
    (void)dev;
    SAEC_CPU_REQUIRE("router_backward", router_args_ok(n, E, k) && !raw == !draw);
    const int need_stats = w_imp != 0.0f || w_load != 0.0f || w_switch != 0.0f;
    SAEC_CPU_REQUIRE("router_backward",
                     n == 0 || (clean && dgates && dclean && (stats || !need_stats)));
    if (n == 0) return SAEC_OK;
    double cimp[RT_MAX_E], cload[RT_MAX_E];
    rt_coefs(stats, E, w_imp, w_load, cimp, cload);
    const double *f = w_switch != 0.0f ? stats + 2 * E : NULL;
#pragma omp parallel for schedule(static) if (n * E * 64 >= SAEC_CPU_PAR_MIN)
    for (int64_t t = 0; t < n; t++)
        rt_token_backward(clean + t * E, raw ? raw + t * E : NULL, dgates + t * k, E, k, seed,
                          counter, t, cimp, cload, f, 1.0 / (double)n, w_switch, w_z,
                          dclean + t * E, draw ? draw + t * E : NULL);
    return SAEC_OK;
}
