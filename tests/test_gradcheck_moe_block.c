/* One whole pre-LN MoE-MAE encoder block (SPEC §7), forward and backward composed only from the
 * engine's ops on the CPU backend, against central finite differences of an independent
 * double-precision forward (naive loops, no engine op):
 *
 *   x1 = x + Attn(LN1(x)),  out = x1 + MoE(LN2(x1)),
 *   L = Σ w ⊙ out + 0.01·CV(importance) + 0.01·CV(load)
 *
 * Attn: one fused QKV GEMM with bias, grouped-query attention (4 query heads over 2 KV groups,
 * head dim 3), the output GEMM with bias. MoE: the noisy top-2 router over 3 experts (clean and
 * raw logits from two GEMMs), dispatch (group_count, exclusive_scan, group_permute, gather_rows),
 * W_e per expert (grouped_gemm), the shared V (gemm, gather_rows), SwiGLU, the shared W2 per item,
 * dropout 0.1 on each expert's output rows, the gate-weighted combine (scatter_rows). The
 * gradient of every parameter tensor and of x is checked.
 *
 * Held fixed: the router's noise (a function of seed and counter: the double forward draws it with
 * saec_hash_normal, as kernels/router_token.h does), the dropout mask (saec_hash_uniform on
 * SAEC_RNG_DROPOUT, indexed by the item's sorted row, as the op's contract says), and the top-2
 * choice and ψ's case: inputs are redrawn until every two H of a token are MARGIN apart, far
 * above what a step moves them. Dropout sits where SPEC puts it, on each item's W2 output row
 * before its gate multiplies it.
 *
 * The engine computes in float: the tolerance is 1e-4 of the gradient's scale (measured: about
 * 1e-6 at worst, over several seeds). The check must also fail: the backward is run again with
 * one piece broken (the balance loss's gradient, the residuals' gradient, dropout's backward
 * left out) and each must be caught.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "saec/device.h"
#include "saec/hash.h"
#include "saec/ops.h"
#include "test_random.h"

#define STEP 1e-5   /* the finite-difference step (inputs are O(1)) */
#define TOL 1e-4    /* float engine against double differences, of the gradient's scale */
#define MARGIN 0.02 /* between every two H of a token: a step moves H by ~1e-5 */
#define LN_EPS 1e-5f
#define P_DROP 0.1f
#define W_BAL 0.01f /* SPEC: 0.01·CV(importance) + 0.01·CV(load) */
#define ROUTER_SEED 91
#define ROUTER_COUNTER 5000
#define DROP_SEED 92
#define DROP_COUNTER 7000

enum {
    B = 2,
    L = 5,
    NT = B * L, /* tokens */
    D = 12,     /* width */
    HQ = 4,
    G = 2,
    DH = 3,
    QKV = (HQ + 2 * G) * DH, /* the fused projection's width: q | k | v */
    HID = 8,                 /* the experts' hidden width */
    E = 3,
    K = 2,
    ROWS = NT * K /* the items (token, expert) */
};

/* The parameters and x, one flat array (the double forward's and the finite differences'). */
enum {
    T_G1, /* LN1 gamma, beta [D] */
    T_BE1,
    T_WQKV, /* [D, QKV], [QKV] */
    T_BQKV,
    T_WO, /* [HQ·DH, D], [D] */
    T_BO,
    T_G2, /* LN2 gamma, beta [D] */
    T_BE2,
    T_WG, /* router clean: [D, E], [E] */
    T_BG,
    T_WN, /* router raw: [D, E], [E] */
    T_BN,
    T_WE, /* experts: [E, D, HID], [E, HID] */
    T_BEX,
    T_V, /* shared V: [D, HID], [HID] */
    T_BV,
    T_W2, /* shared W2: [HID, D], [D] */
    T_B2,
    T_X, /* the block's input [NT, D] */
    N_T
};
static const struct {
    const char *name;
    int64_t size;
    float scale, shift; /* drawn as shift + scale·U(−1, 1) */
} tensors[N_T] = {
    {"ln1.gamma", D, 0.3f, 1.0f}, {"ln1.beta", D, 0.3f, 0},    {"W_qkv", D *QKV, 0.5f, 0},
    {"b_qkv", QKV, 0.3f, 0},      {"W_o", HQ *DH *D, 0.5f, 0}, {"b_o", D, 0.3f, 0},
    {"ln2.gamma", D, 0.3f, 1.0f}, {"ln2.beta", D, 0.3f, 0},    {"W_g", D *E, 0.7f, 0},
    {"b_g", E, 0.5f, 0},          {"W_n", D *E, 0.3f, 0},      {"b_n", E, 0.5f, 0},
    {"W_e", E *D *HID, 0.5f, 0},  {"b_e", E *HID, 0.3f, 0},    {"V", D *HID, 0.5f, 0},
    {"b_V", HID, 0.3f, 0},        {"W2", HID *D, 0.5f, 0},     {"b2", D, 0.3f, 0},
    {"x", NT *D, 1.5f, 0.2f},
};
static int64_t off[N_T + 1]; /* each tensor's start in the flat array; off[N_T] the total */

static double wloss[NT * D]; /* L's weights on out (float values) */

/* ---- the double forward ---- */

/* y [n, d] = LayerNorm(x [n, d]; gamma, beta). */
static void ln_d(const double *x, const double *gamma, const double *beta, int n, int d,
                 double *y) {
    for (int r = 0; r < n; r++) {
        double mu = 0, var = 0;
        for (int c = 0; c < d; c++)
            mu += x[r * d + c] / d;
        for (int c = 0; c < d; c++)
            var += (x[r * d + c] - mu) * (x[r * d + c] - mu) / d;
        for (int c = 0; c < d; c++)
            y[r * d + c] = (x[r * d + c] - mu) / sqrt(var + (double)LN_EPS) * gamma[c] + beta[c];
    }
}

/* y [n, o] = x [n, i] W [i, o] + b [o]. */
static void linear_d(const double *x, const double *W, const double *b, int n, int i, int o,
                     double *y) {
    for (int r = 0; r < n; r++)
        for (int q = 0; q < o; q++) {
            double s = b[q];
            for (int c = 0; c < i; c++)
                s += x[r * i + c] * W[c * o + q];
            y[r * o + q] = s;
        }
}

static double cv_d(const double *v) {
    double m = 0, var = 0;
    for (int e = 0; e < E; e++)
        m += v[e] / E;
    for (int e = 0; e < E; e++)
        var += (v[e] - m) * (v[e] - m) / E;
    return sqrt(var) / (m + 1e-6);
}

/* L of the flat parameters th; *gap (when not NULL) = the smallest distance between two H of a
   token. */
static double block_loss(const double *th, double *gap) {
    const double *x = th + off[T_X];
    double xn1[NT * D], qkv[NT * QKV], ao[NT * HQ * DH], x1[NT * D], xn2[NT * D];
    ln_d(x, th + off[T_G1], th + off[T_BE1], NT, D, xn1);
    linear_d(xn1, th + off[T_WQKV], th + off[T_BQKV], NT, D, QKV, qkv);
    /* attention: head h reads KV group h mod G; q, k, v at columns 0, HQ·DH, (HQ + G)·DH */
    const double scale = (double)(1.0f / sqrtf((float)DH)); /* the engine's float scale */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < HQ; h++)
            for (int i = 0; i < L; i++) {
                const double *qi = qkv + (b * L + i) * QKV + h * DH;
                double sc[L], mx = -INFINITY, s = 0;
                for (int j = 0; j < L; j++) {
                    const double *kj = qkv + (b * L + j) * QKV + HQ * DH + (h % G) * DH;
                    sc[j] = 0;
                    for (int c = 0; c < DH; c++)
                        sc[j] += scale * qi[c] * kj[c];
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j < L; j++)
                    s += sc[j] = exp(sc[j] - mx);
                for (int c = 0; c < DH; c++) {
                    double o = 0;
                    for (int j = 0; j < L; j++)
                        o += sc[j] / s * qkv[(b * L + j) * QKV + (HQ + G) * DH + (h % G) * DH + c];
                    ao[(b * L + i) * HQ * DH + h * DH + c] = o;
                }
            }
    linear_d(ao, th + off[T_WO], th + off[T_BO], NT, HQ * DH, D, x1);
    for (int i = 0; i < NT * D; i++)
        x1[i] += x[i];
    ln_d(x1, th + off[T_G2], th + off[T_BE2], NT, D, xn2);

    /* the router: H = clean + z·softplus(raw), top-2, gates, importance, load (ψ as SPEC) */
    double clean[NT * E], raw[NT * E], imp[E] = {0}, load[E] = {0}, gates[ROWS];
    int idx[ROWS];
    linear_d(xn2, th + off[T_WG], th + off[T_BG], NT, D, E, clean);
    linear_d(xn2, th + off[T_WN], th + off[T_BN], NT, D, E, raw);
    if (gap) *gap = INFINITY;
    for (int t = 0; t < NT; t++) {
        double sd[E], H[E];
        int rank[E];
        for (int e = 0; e < E; e++) {
            const double z = saec_hash_normal(ROUTER_SEED, SAEC_RNG_ROUTER_NOISE,
                                              ROUTER_COUNTER + 2 * (uint64_t)(t * E + e));
            sd[e] = log1p(exp(raw[t * E + e]));
            H[e] = clean[t * E + e] + z * sd[e];
            rank[e] = e;
        }
        for (int i = 1; i < E; i++) /* insertion sort, largest first */
            for (int j = i; j > 0 && H[rank[j]] > H[rank[j - 1]]; j--) {
                const int tmp = rank[j];
                rank[j] = rank[j - 1], rank[j - 1] = tmp;
            }
        for (int j = 1; gap && j < E; j++)
            *gap = fmin(*gap, H[rank[j - 1]] - H[rank[j]]);
        const double den = exp(H[rank[0]]) + exp(H[rank[1]]);
        for (int j = 0; j < K; j++) {
            idx[t * K + j] = rank[j];
            gates[t * K + j] = exp(H[rank[j]]) / den;
            imp[rank[j]] += gates[t * K + j];
        }
        const double lk = H[rank[K - 1]], lk1 = H[rank[K]];
        for (int e = 0; e < E; e++) {
            const double psi = H[e] > lk ? lk : H[e] <= lk1 ? lk1 : H[e];
            load[e] += 0.5 * erfc(-(clean[t * E + e] - psi) / sd[e] / sqrt(2.0));
        }
    }

    /* each item's sorted row (stable by expert): its dropout counters */
    int pos[ROWS], start[E + 1] = {0};
    for (int i = 0; i < ROWS; i++)
        start[idx[i] + 1]++;
    for (int e = 0; e < E; e++)
        start[e + 1] += start[e];
    for (int i = 0; i < ROWS; i++)
        pos[i] = start[idx[i]]++;

    /* the experts: out = x1 + Σ_items g·dropout(W2 (SiLU(W_e x + b_e) ⊙ (V x + b_V)) + b2) */
    const double keep_scale = (double)(1.0f / (1.0f - P_DROP));
    double out[NT * D];
    memcpy(out, x1, sizeof out);
    for (int i = 0; i < ROWS; i++) {
        const int t = i / K, e = idx[i];
        const double *xr = xn2 + t * D, *We = th + off[T_WE] + e * D * HID;
        double hs[HID];
        for (int q = 0; q < HID; q++) {
            double a = th[off[T_BEX] + e * HID + q], v = th[off[T_BV] + q];
            for (int c = 0; c < D; c++)
                a += xr[c] * We[c * HID + q], v += xr[c] * th[off[T_V] + c * HID + q];
            hs[q] = a / (1 + exp(-a)) * v;
        }
        for (int c = 0; c < D; c++) {
            double y = th[off[T_B2] + c];
            for (int q = 0; q < HID; q++)
                y += hs[q] * th[off[T_W2] + q * D + c];
            const int kept = saec_hash_uniform(DROP_SEED, SAEC_RNG_DROPOUT,
                                               DROP_COUNTER + (uint64_t)(pos[i] * D + c)) >= P_DROP;
            out[t * D + c] += gates[i] * (kept ? y * keep_scale : 0);
        }
    }
    double Lsum = 0;
    for (int i = 0; i < NT * D; i++)
        Lsum += wloss[i] * out[i];
    return Lsum + (double)W_BAL * cv_d(imp) + (double)W_BAL * cv_d(load);
}

/* ---- the engine's block ---- */

static saec_dev *dev;

static void *dalloc(size_t bytes) {
    void *p = NULL;
    if (dev->ops->alloc(dev, bytes > 0 ? bytes : 4, &p) != SAEC_OK) {
        fprintf(stderr, "test_gradcheck_moe_block: allocation failed: %s\n", saec_error_message());
        exit(1);
    }
    return p;
}
static float *dfloats(int64_t n) { return dalloc((size_t)n * sizeof(float)); }

/* Which part of the composed backward to break (main's self-test that the check can fail). */
enum { BREAK_NONE, BREAK_BALANCE, BREAK_RESIDUAL, BREAK_DROPOUT };

/* The engine's forward and backward on the flat float parameters thf [off[N_T]]: grad (host)
   gets ∂L/∂ every tensor, *loss the forward's L. */
static void engine_block(const float *thf, int brk, float *grad, double *loss) {
    float *P = dfloats(off[N_T]), *dP = dfloats(off[N_T]); /* parameters, gradients (flat) */
    OK(dev->ops->upload(dev, P, thf, (size_t)off[N_T] * sizeof(float)));
    OK(dev->ops->zero(dev, dP, (size_t)off[N_T] * sizeof(float)));
#define PT(t) (P + off[t])
#define DT(t) (dP + off[t])
    float *w = dfloats(NT * D); /* [NT, D] L's weights: ∂L/∂out */
    float wf[NT * D];
    for (int i = 0; i < NT * D; i++)
        wf[i] = (float)wloss[i];
    OK(dev->ops->upload(dev, w, wf, sizeof wf));

    /* forward: attention half */
    float *xn1 = dfloats(NT * D), *mean1 = dfloats(NT), *rstd1 = dfloats(NT); /* [NT, D], [NT] */
    float *qkv = dfloats(NT * QKV), *ao = dfloats(NT * HQ * DH), *lse = dfloats(B * HQ * L);
    float *x1 = dfloats(NT * D), *xn2 = dfloats(NT * D), *mean2 = dfloats(NT), *rstd2 = dfloats(NT);
    const float scale = 1.0f / sqrtf((float)DH);
    OK(SAEC_OP(dev, layernorm, PT(T_X), PT(T_G1), PT(T_BE1), NT, D, LN_EPS, xn1, mean1, rstd1));
    OK(SAEC_OP(dev, gemm, 0, 0, NT, QKV, D, 1.0f, xn1, D, PT(T_WQKV), QKV, 0.0f, qkv, QKV,
               PT(T_BQKV)));
    OK(SAEC_OP(dev, attention, qkv, qkv + HQ * DH, qkv + (HQ + G) * DH, QKV, QKV, B, L, HQ, G, DH,
               scale, ao, lse));
    OK(dev->ops->copy(dev, x1, PT(T_X), NT * D * sizeof(float))); /* the residual */
    OK(SAEC_OP(dev, gemm, 0, 0, NT, D, HQ * DH, 1.0f, ao, HQ * DH, PT(T_WO), D, 1.0f, x1, D,
               PT(T_BO)));
    OK(SAEC_OP(dev, layernorm, x1, PT(T_G2), PT(T_BE2), NT, D, LN_EPS, xn2, mean2, rstd2));

    /* the router */
    float *clean = dfloats(NT * E), *raw = dfloats(NT * E), *gates = dfloats(ROWS); /* [NT, E] */
    int32_t *idx = dalloc(ROWS * 4);                                                /* [NT, K] */
    double *stats = dalloc(4 * E * sizeof(double)), *dloss = dalloc(5 * sizeof(double));
    OK(SAEC_OP(dev, gemm, 0, 0, NT, E, D, 1.0f, xn2, D, PT(T_WG), E, 0.0f, clean, E, PT(T_BG)));
    OK(SAEC_OP(dev, gemm, 0, 0, NT, E, D, 1.0f, xn2, D, PT(T_WN), E, 0.0f, raw, E, PT(T_BN)));
    OK(SAEC_OP(dev, router_forward, clean, raw, NT, E, K, ROUTER_SEED, ROUTER_COUNTER, W_BAL, W_BAL,
               0.0f, 0.0f, idx, gates, stats, dloss));

    /* dispatch and the experts (rows in expert order) */
    int32_t *counts = dalloc(E * 4), *offsets = dalloc((E + 1) * 4);
    int32_t *perm = dalloc(ROWS * 4), *inv = dalloc(ROWS * 4);
    float *xs = dfloats(ROWS * D), *a = dfloats(ROWS * HID), *vx = dfloats(NT * HID);
    float *vs = dfloats(ROWS * HID), *hs = dfloats(ROWS * HID); /* [ROWS, HID] */
    float *ys = dfloats(ROWS * D), *yd = dfloats(ROWS * D), *out = dfloats(NT * D);
    OK(SAEC_OP(dev, group_count, idx, ROWS, E, counts));
    OK(SAEC_OP(dev, exclusive_scan, counts, E, offsets));
    OK(SAEC_OP(dev, group_permute, idx, ROWS, E, offsets, perm, inv));
    OK(SAEC_OP(dev, gather_rows, xn2, perm, ROWS, K, D, xs));
    OK(SAEC_OP(dev, grouped_gemm, 0, E, offsets, HID, D, 1.0f, xs, PT(T_WE), 0.0f, a, PT(T_BEX)));
    OK(SAEC_OP(dev, gemm, 0, 0, NT, HID, D, 1.0f, xn2, D, PT(T_V), HID, 0.0f, vx, HID, PT(T_BV)));
    OK(SAEC_OP(dev, gather_rows, vx, perm, ROWS, K, HID, vs));
    OK(SAEC_OP(dev, swiglu, a, vs, ROWS * HID, hs));
    OK(SAEC_OP(dev, gemm, 0, 0, ROWS, D, HID, 1.0f, hs, HID, PT(T_W2), D, 0.0f, ys, D, PT(T_B2)));
    OK(SAEC_OP(dev, dropout, ys, ROWS * D, P_DROP, DROP_SEED, DROP_COUNTER, yd));
    OK(dev->ops->copy(dev, out, x1, NT * D * sizeof(float))); /* the residual */
    OK(SAEC_OP(dev, scatter_rows, yd, inv, gates, NT, K, D, 1, out));

    float outh[NT * D];
    double lossh[5];
    OK(dev->ops->download(dev, outh, out, sizeof outh));
    OK(dev->ops->download(dev, lossh, dloss, sizeof lossh));
    *loss = lossh[0];
    for (int i = 0; i < NT * D; i++)
        *loss += wloss[i] * outh[i];

    /* backward: the combine, dropout (the same call), W2, SwiGLU */
    float *dyd = dfloats(ROWS * D), *dgates = dfloats(ROWS), *dys = dfloats(ROWS * D);
    float *dhs = dfloats(ROWS * HID), *da = dfloats(ROWS * HID), *dvs = dfloats(ROWS * HID);
    float *dvx = dfloats(NT * HID), *dxs = dfloats(ROWS * D), *dxn2 = dfloats(NT * D);
    OK(SAEC_OP(dev, scatter_rows_backward, w, yd, inv, gates, NT, K, D, dyd, dgates));
    if (brk == BREAK_DROPOUT)
        OK(dev->ops->copy(dev, dys, dyd, ROWS * D * sizeof(float)));
    else
        OK(SAEC_OP(dev, dropout, dyd, ROWS * D, P_DROP, DROP_SEED, DROP_COUNTER, dys));
    OK(SAEC_OP(dev, gemm, 1, 0, HID, D, ROWS, 1.0f, hs, HID, dys, D, 0.0f, DT(T_W2), D, NULL));
    OK(SAEC_OP(dev, col_sum, dys, ROWS, D, 1.0f, 0.0f, DT(T_B2)));
    OK(SAEC_OP(dev, gemm, 0, 1, ROWS, HID, D, 1.0f, dys, D, PT(T_W2), D, 0.0f, dhs, HID, NULL));
    OK(SAEC_OP(dev, swiglu_backward, a, vs, dhs, ROWS * HID, da, dvs));
    /* V: the gather's backward is the unweighted un-permute */
    OK(SAEC_OP(dev, scatter_rows, dvs, inv, NULL, NT, K, HID, 0, dvx));
    OK(SAEC_OP(dev, gemm, 1, 0, D, HID, NT, 1.0f, xn2, D, dvx, HID, 0.0f, DT(T_V), HID, NULL));
    OK(SAEC_OP(dev, col_sum, dvx, NT, HID, 1.0f, 0.0f, DT(T_BV)));
    OK(SAEC_OP(dev, gemm, 0, 1, NT, D, HID, 1.0f, dvx, HID, PT(T_V), HID, 0.0f, dxn2, D, NULL));
    /* the experts' W_e, b_e and their inputs' rows */
    OK(SAEC_OP(dev, grouped_gemm_wgrad, E, offsets, D, HID, 1.0f, xs, da, 0.0f, DT(T_WE)));
    OK(SAEC_OP(dev, grouped_col_sum, E, offsets, HID, da, 1.0f, 0.0f, DT(T_BEX)));
    OK(SAEC_OP(dev, grouped_gemm, 1, E, offsets, D, HID, 1.0f, da, PT(T_WE), 0.0f, dxs, NULL));
    OK(SAEC_OP(dev, scatter_rows, dxs, inv, NULL, NT, K, D, 1, dxn2));
    /* the router: the gates' gradient and the balance loss */
    float *dclean = dfloats(NT * E), *draw = dfloats(NT * E); /* [NT, E] */
    const float wb = brk == BREAK_BALANCE ? 0.0f : W_BAL;
    OK(SAEC_OP(dev, router_backward, clean, raw, dgates, stats, NT, E, K, ROUTER_SEED,
               ROUTER_COUNTER, wb, wb, 0.0f, 0.0f, dclean, draw));
    OK(SAEC_OP(dev, gemm, 1, 0, D, E, NT, 1.0f, xn2, D, dclean, E, 0.0f, DT(T_WG), E, NULL));
    OK(SAEC_OP(dev, col_sum, dclean, NT, E, 1.0f, 0.0f, DT(T_BG)));
    OK(SAEC_OP(dev, gemm, 0, 1, NT, D, E, 1.0f, dclean, E, PT(T_WG), E, 1.0f, dxn2, D, NULL));
    OK(SAEC_OP(dev, gemm, 1, 0, D, E, NT, 1.0f, xn2, D, draw, E, 0.0f, DT(T_WN), E, NULL));
    OK(SAEC_OP(dev, col_sum, draw, NT, E, 1.0f, 0.0f, DT(T_BN)));
    OK(SAEC_OP(dev, gemm, 0, 1, NT, D, E, 1.0f, draw, E, PT(T_WN), E, 1.0f, dxn2, D, NULL));
    /* LN2, then the residual: dx1 = w + LN2's backward */
    float *dx1 = dfloats(NT * D);
    OK(SAEC_OP(dev, layernorm_backward, dxn2, x1, PT(T_G2), mean2, rstd2, NT, D, 0, dx1, DT(T_G2),
               DT(T_BE2)));
    if (brk != BREAK_RESIDUAL) OK(SAEC_OP(dev, axpby, NT * D, 1.0f, dx1, 1.0f, w, dx1));

    /* the attention half */
    float *dao = dfloats(NT * HQ * DH), *dqkv = dfloats(NT * QKV), *dxn1 = dfloats(NT * D);
    OK(SAEC_OP(dev, gemm, 1, 0, HQ * DH, D, NT, 1.0f, ao, HQ * DH, dx1, D, 0.0f, DT(T_WO), D,
               NULL));
    OK(SAEC_OP(dev, col_sum, dx1, NT, D, 1.0f, 0.0f, DT(T_BO)));
    OK(SAEC_OP(dev, gemm, 0, 1, NT, HQ * DH, D, 1.0f, dx1, D, PT(T_WO), D, 0.0f, dao, HQ * DH,
               NULL));
    OK(SAEC_OP(dev, attention_backward, qkv, qkv + HQ * DH, qkv + (HQ + G) * DH, QKV, QKV, ao, dao,
               lse, B, L, HQ, G, DH, scale, dqkv, dqkv + HQ * DH, dqkv + (HQ + G) * DH));
    OK(SAEC_OP(dev, gemm, 1, 0, D, QKV, NT, 1.0f, xn1, D, dqkv, QKV, 0.0f, DT(T_WQKV), QKV, NULL));
    OK(SAEC_OP(dev, col_sum, dqkv, NT, QKV, 1.0f, 0.0f, DT(T_BQKV)));
    OK(SAEC_OP(dev, gemm, 0, 1, NT, D, QKV, 1.0f, dqkv, QKV, PT(T_WQKV), QKV, 0.0f, dxn1, D, NULL));
    /* LN1, then x's residual: dx = dx1 + LN1's backward */
    OK(SAEC_OP(dev, layernorm_backward, dxn1, PT(T_X), PT(T_G1), mean1, rstd1, NT, D, 0, DT(T_X),
               DT(T_G1), DT(T_BE1)));
    if (brk != BREAK_RESIDUAL) OK(SAEC_OP(dev, axpby, NT * D, 1.0f, DT(T_X), 1.0f, dx1, DT(T_X)));

    OK(dev->ops->download(dev, grad, dP, (size_t)off[N_T] * sizeof(float)));
#undef PT
#undef DT
    void *bufs[] = {P,       dP,    w,      xn1,   mean1, rstd1, qkv, ao,    lse,   x1,
                    xn2,     mean2, rstd2,  clean, raw,   gates, idx, stats, dloss, counts,
                    offsets, perm,  inv,    xs,    a,     vx,    vs,  hs,    ys,    yd,
                    out,     dyd,   dgates, dys,   dhs,   da,    dvs, dvx,   dxs,   dxn2,
                    dclean,  draw,  dx1,    dao,   dqkv,  dxn1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dev->ops->free(dev, bufs[i]);
}

/* ---- the check ---- */

/* The central difference of block_loss in th[i]. */
static double central_diff(double *th, int64_t i) {
    const double keep = th[i];
    th[i] = keep + STEP;
    const double up = block_loss(th, NULL);
    th[i] = keep - STEP;
    const double down = block_loss(th, NULL);
    th[i] = keep;
    return (up - down) / (2 * STEP);
}

/* Every tensor's gradient against the differences fd: |fd − got| <= tol·(|fd| + typical), typical
   the tensor's mean |fd|. Returns how many elements fail; *worst = the largest
   |fd − got| / (|fd| + typical) over all tensors. */
static int64_t compare(const double *fd, const float *got, double tol, int report, double *worst) {
    int64_t bad = 0;
    *worst = 0;
    for (int t = 0; t < N_T; t++) {
        double typical = 0, tworst = 0;
        int64_t tbad = 0;
        for (int64_t i = off[t]; i < off[t + 1]; i++)
            typical += fabs(fd[i]) / (double)tensors[t].size;
        for (int64_t i = off[t]; i < off[t + 1]; i++) {
            const double r = fabs(fd[i] - got[i]) / (fabs(fd[i]) + typical);
            tworst = r > tworst ? r : tworst;
            if (!(r <= tol)) {
                if (report && tbad < 3) /* its first few; the tensor's worst follows */
                    CHECK(0, "d%s[%lld]: engine %.9g, finite differences %.9g", tensors[t].name,
                          (long long)(i - off[t]), got[i], fd[i]);
                tbad++;
            }
        }
        bad += tbad;
        if (report) {
            CHECK(tworst <= tol, "d%s: worst %.3g", tensors[t].name, tworst);
            printf("  d%-10s mean |fd| %.3e  worst |fd - got| / (|fd| + mean) %.2e\n",
                   tensors[t].name, typical, tworst);
        }
        *worst = tworst > *worst ? tworst : *worst;
    }
    return bad;
}

int main(void) {
    rng_seed(0x5AEC7F0A12345615ull);
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(cpu): %s\n", saec_error_message());
        return 1;
    }
    for (int t = 0; t < N_T; t++)
        off[t + 1] = off[t] + tensors[t].size;
    float *thf = new_floats(off[N_T]), *grad = new_floats(off[N_T]);
    double *th = new_doubles(off[N_T]), *fd = new_doubles(off[N_T]);
    for (int i = 0; i < NT * D; i++)
        wloss[i] = rng_sym();

    set_ctx("whole pre-LN MoE block: B=%d L=%d D=%d Hq=%d G=%d dh=%d E=%d k=%d hidden=%d", B, L, D,
            HQ, G, DH, E, K, HID);
    /* float inputs (the engine's), used exactly in double; redrawn until the H margins hold */
    int tries = 0;
    double gap = 0;
    do {
        for (int t = 0; t < N_T; t++)
            for (int64_t i = off[t]; i < off[t + 1]; i++)
                th[i] = thf[i] = tensors[t].shift + tensors[t].scale * rng_sym();
        block_loss(th, &gap);
    } while (gap < MARGIN && ++tries < 10000);
    CHECK(tries < 10000, "no inputs with a margin of %g between the H of a token", MARGIN);
    printf("inputs drawn %d times; smallest gap between two H of a token %.3g\n", tries + 1, gap);

    double loss = 0;
    engine_block(thf, BREAK_NONE, grad, &loss);
    const double Ld = block_loss(th, NULL);
    CHECK(fabs(loss - Ld) <= 1e-5 * (fabs(Ld) + 1), "loss: engine %.9g, double %.9g", loss, Ld);
    printf("loss: engine %.9g, double %.9g\n", loss, Ld);

    for (int64_t i = 0; i < off[N_T]; i++)
        fd[i] = central_diff(th, i);
    double worst = 0;
    compare(fd, grad, TOL, 1, &worst);
    printf("worst over all tensors %.2e (tolerance %.0e)\n", worst, TOL);

    /* the check can fail: each break of the composed backward must be caught */
    static const struct {
        int brk;
        const char *what;
    } breaks[] = {{BREAK_BALANCE, "the balance loss's gradient dropped"},
                  {BREAK_RESIDUAL, "the residuals' gradient dropped"},
                  {BREAK_DROPOUT, "dropout left out of the backward"}};
    for (size_t b = 0; b < sizeof breaks / sizeof breaks[0]; b++) {
        engine_block(thf, breaks[b].brk, grad, &loss);
        const int64_t bad = compare(fd, grad, TOL, 0, &worst);
        CHECK(bad > 0, "%s: not caught", breaks[b].what);
        printf("break (%s): %lld elements off, worst %.2e\n", breaks[b].what, (long long)bad,
               worst);
    }

    free(thf), free(grad), free(th), free(fd);
    saec_dev_close(dev);
    return check_summary("test_gradcheck_moe_block");
}
