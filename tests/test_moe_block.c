/* The MoE feed-forward of a MoE-MAE block (SPEC §7), composed from the engine's ops on one
 * backend, two ways, against an independent double-precision loop:
 *
 *   dispatch (training):  the top-2 items sorted by expert (group_count, exclusive_scan,
 *     group_permute), their token rows gathered (gather_rows), the experts' W_e x + b_e
 *     (grouped_gemm, routing counts on the device), SwiGLU with the shared V x + b_V (gemm,
 *     gather_rows, swiglu), the shared W2 per item (gemm + bias), the gate-weighted un-permute
 *     (scatter_rows): Σ_j g_j (W2 (SiLU(W_ej x + b_ej) ⊙ (V x + b_V)) + b2);
 *   fused (inference, no dropout): the gates sum to 1 and V, W2 are shared, so the block is
 *     W2 (Σ_j g_j SiLU(W_ej x + b_ej) ⊙ (V x + b_V)) + b2: the un-permute before W2, one W2
 *     GEMM per token instead of two.
 *
 * Both must equal the loop (float tolerance), hence each other; shapes: an odd token count, an
 * expert that receives no token, every token to the same two experts.
 *
 *   test_moe_block [cpu|cuda]     (cuda without a device: exit 77, skipped)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "saec/device.h"
#include "saec/ops.h"
#include "test_random.h"

static saec_dev *dev;

static void *dalloc(size_t bytes) {
    void *p = NULL;
    if (dev->ops->alloc(dev, bytes > 0 ? bytes : 4, &p) != SAEC_OK) {
        fprintf(stderr, "test_moe_block: allocation failed: %s\n", saec_error_message());
        exit(1);
    }
    return p;
}

static void *up(const void *host, size_t bytes) {
    void *p = dalloc(bytes);
    OK(dev->ops->upload(dev, p, host, bytes));
    return p;
}

static float *down(const float *d, int64_t count) {
    float *h = new_floats(count);
    OK(dev->ops->download(dev, h, d, (size_t)count * sizeof(float)));
    return h;
}

/* One block: n tokens of width d, E experts of hidden width h, top-2 routing idx [n, 2] with
   gates [n, 2] (each pair sums to 1). */
static void moe_case(const char *what, int64_t n, int64_t d, int64_t h, int E, const int32_t *idx,
                     const float *gates) {
    set_ctx("%s: n=%lld d=%lld h=%lld E=%d on %s", what, (long long)n, (long long)d, (long long)h,
            E, dev->name);
    const int64_t rows = n * 2; /* the items */
    float *x = rand_floats(n * d), *We = rand_floats(E * d * h), *be = rand_floats(E * h);
    float *V = rand_floats(d * h), *bV = rand_floats(h), *W2 = rand_floats(h * d);
    float *b2 = rand_floats(d);

    /* the loop in double */
    double *want = new_doubles(n * d), *scale = new_doubles(n * d);
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < d; c++)
            want[t * d + c] = scale[t * d + c] = 0;
    for (int64_t t = 0; t < n; t++)
        for (int j = 0; j < 2; j++) {
            const int e = idx[t * 2 + j];
            const double g = gates[t * 2 + j];
            double hid[256], ahid[256];
            for (int64_t q = 0; q < h; q++) {
                double a = be[e * h + q], v = bV[q], aa = fabs(be[e * h + q]), av = fabs(bV[q]);
                for (int64_t c = 0; c < d; c++) {
                    a += (double)x[t * d + c] * We[(e * d + c) * h + q];
                    v += (double)x[t * d + c] * V[c * h + q];
                    aa += fabs((double)x[t * d + c] * We[(e * d + c) * h + q]);
                    av += fabs((double)x[t * d + c] * V[c * h + q]);
                }
                hid[q] = a / (1 + exp(-a)) * v;
                ahid[q] = (aa + fabs(a)) * (av + fabs(v)); /* a bound on its rounding scale */
            }
            for (int64_t c = 0; c < d; c++) {
                double o = b2[c], ao = fabs(b2[c]);
                for (int64_t q = 0; q < h; q++)
                    o += hid[q] * W2[q * d + c], ao += ahid[q] * fabs(W2[q * d + c]);
                want[t * d + c] += g * o;
                scale[t * d + c] += g * ao;
            }
        }

    /* on the device */
    int32_t *dkeys = up(idx, (size_t)rows * 4);
    int32_t *dcounts = dalloc((size_t)E * 4), *doffsets = dalloc((size_t)(E + 1) * 4);
    int32_t *dperm = dalloc((size_t)rows * 4), *dinv = dalloc((size_t)rows * 4);
    float *dx = up(x, (size_t)(n * d) * 4), *dWe = up(We, (size_t)(E * d * h) * 4);
    float *dbe = up(be, (size_t)(E * h) * 4), *dV = up(V, (size_t)(d * h) * 4);
    float *dbV = up(bV, (size_t)h * 4), *dW2 = up(W2, (size_t)(h * d) * 4);
    float *db2 = up(b2, (size_t)d * 4), *dg = up(gates, (size_t)rows * 4);
    float *dxs = dalloc((size_t)(rows * d) * 4); /* [rows, d] */
    float *da = dalloc((size_t)(rows * h) * 4),
          *dvx = dalloc((size_t)(n * h) * 4); /* [rows, h], [n, h] */
    float *dvs = dalloc((size_t)(rows * h) * 4), *dys = dalloc((size_t)(rows * d) * 4);
    float *dout = dalloc((size_t)(n * d) * 4), *dhf = dalloc((size_t)(n * h) * 4);
    float *dfused = dalloc((size_t)(n * d) * 4);

    OK(SAEC_OP(dev, group_count, dkeys, rows, E, dcounts));
    OK(SAEC_OP(dev, exclusive_scan, dcounts, E, doffsets));
    OK(SAEC_OP(dev, group_permute, dkeys, rows, E, doffsets, dperm, dinv));
    OK(SAEC_OP(dev, gather_rows, dx, dperm, rows, 2, d, dxs));
    OK(SAEC_OP(dev, grouped_gemm, 0, E, doffsets, h, d, 1.0f, dxs, dWe, 0.0f, da, dbe));
    OK(SAEC_OP(dev, gemm, 0, 0, n, h, d, 1.0f, dx, d, dV, h, 0.0f, dvx, h, dbV));
    OK(SAEC_OP(dev, gather_rows, dvx, dperm, rows, 2, h, dvs));
    OK(SAEC_OP(dev, swiglu, da, dvs, rows * h, da)); /* the items' hidden rows [rows, h] */
    /* dispatch: W2 per item, then the gate-weighted un-permute */
    OK(SAEC_OP(dev, gemm, 0, 0, rows, d, h, 1.0f, da, h, dW2, d, 0.0f, dys, d, db2));
    OK(SAEC_OP(dev, scatter_rows, dys, dinv, dg, n, 2, d, 0, dout));
    /* fused: the un-permute first, then one W2 per token */
    OK(SAEC_OP(dev, scatter_rows, da, dinv, dg, n, 2, h, 0, dhf));
    OK(SAEC_OP(dev, gemm, 0, 0, n, d, h, 1.0f, dhf, h, dW2, d, 0.0f, dfused, d, db2));

    float *got = down(dout, n * d), *fused = down(dfused, n * d);
    CHECK_CLOSE("dispatch path against the loop", got, want, scale, n * d, 1e-6, 2e-5);
    CHECK_CLOSE("fused path against the loop", fused, want, scale, n * d, 1e-6, 2e-5);

    free(got), free(fused), free(want), free(scale);
    free(x), free(We), free(be), free(V), free(bV), free(W2), free(b2);
    void *bufs[] = {dkeys, dcounts, doffsets, dperm, dinv, dx,  dWe, dbe,  dV,  dbV,   dW2,
                    db2,   dg,      dxs,      da,    dvx,  dvs, dys, dout, dhf, dfused};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->ops->free(dev, bufs[i]);
}

/* Random top-2 routing over E experts, skipping expert `skip` (−1: none); gates from a softmax
   of two random logits (they sum to 1). */
static void route(int64_t n, int E, int skip, int32_t *idx, float *gates) {
    for (int64_t t = 0; t < n; t++) {
        int a, b;
        do
            a = (int)rng_int(E);
        while (a == skip);
        do
            b = (int)rng_int(E);
        while (b == skip || b == a);
        const float l = rng_sym() * 3, g = 1.0f / (1.0f + expf(-l));
        idx[t * 2] = a, idx[t * 2 + 1] = b;
        gates[t * 2] = g, gates[t * 2 + 1] = 1.0f - g;
    }
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "cpu";
    if (strcmp(which, "cuda") == 0 && saec_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    if (saec_dev_open(which, &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(%s): %s\n", which, saec_error_message());
        return 1;
    }
    rng_seed(0x5AEC0E0E12345607ull);
    enum { N = 37, D = 24, H = 20, E = 5 };
    int32_t idx[N * 2];
    float gates[N * 2];
    route(N, E, 3, idx, gates); /* expert 3 receives no token */
    moe_case("expert 3 idle", N, D, H, E, idx, gates);
    for (int t = 0; t < N; t++) /* every token to experts 4 and 1 */
        idx[t * 2] = 4, idx[t * 2 + 1] = 1;
    moe_case("every token to experts 4 and 1", N, D, H, E, idx, gates);
    route(1, 2, -1, idx, gates);
    moe_case("one token, two experts", 1, 7, 5, 2, idx, gates);
    saec_dev_close(dev);
    return check_summary("test_moe_block");
}
