/* The op cases of the MoE router (kernels/cpu/cpu_router.c, kernels/cuda/cuda_router.cu):
 * router_forward and router_backward. Shapes: n = 0, 1, odd, past a block of tokens; E = 1, 2
 * (k = E: no l_{k+1}), 3, 4, 5, 8 and k = 1, 2, 3, E; with noise and without (inference), with and
 * without the balance sums; inputs at random, with ties in H (inference: H = clean), all tokens
 * to the same experts (the others receive none: importance 0) and large logits; misaligned
 * pointers. See op_case.h. The gradients against finite differences: test_gradcheck_router.c.
 *
 * The references follow the contract's arithmetic where it names one (the draws of
 * saec_hash_normal, H in float, so the ranks are the op's), the rest in double: the ranks by a
 * sort, ψ from the sorted values, Φ by erfc.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "op_case.h"
#include "saec/hash.h"

/* The MoE-MAE batch the benchmarks use: 128 images of 105 tokens, a block of 5 experts, top-2. */
enum { BENCH_TOKENS = 128 * 105, BENCH_E = 5, BENCH_K = 2 };

enum { RT_KIND_RANDOM, RT_KIND_TIES, RT_KIND_ONE, RT_KIND_LARGE };
static const char *const rt_kind_name[] = {"random", "ties", "one-expert", "large"};

/* v: n, E, k, noisy (raw given), sums (stats and loss given), kind, seed, counter;
   f: w_imp, w_load, w_switch, w_z (both ops). */
enum { RT_N, RT_E, RT_K, RT_NOISY, RT_SUMS_ON, RT_KIND, RT_SEED, RT_COUNTER };

/* The experts and k of the shapes: E = 1, k = E = 2 and the MoE-MAE blocks first. */
static const int rt_ek[][2] = {{1, 1}, {2, 2}, {2, 1}, {3, 2}, {4, 2},
                               {5, 2}, {8, 2}, {8, 3}, {5, 5}, {3, 1}};
enum { RT_NEK = sizeof rt_ek / sizeof rt_ek[0] };

static int rt_shapes(op_shape *out, int cap, int backward) {
    static const int64_t ns[] = {0, 1, 7, 300};
    int n = 0;
    for (int i = 0; i < RT_NEK; i++)
        for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++)
            for (int variant = 0; variant < 3 && n < cap; variant++) {
                /* variant 0: noisy, sums; 1: inference, sums; 2: noisy, no sums, misaligned */
                const int kind = variant == 1 && (i + (int)j) % 2   ? RT_KIND_TIES
                                 : j == 3 && (i % 3 == 1 || i == 9) ? RT_KIND_ONE
                                 : j == 3 && i % 3 == 2             ? RT_KIND_LARGE
                                                                    : RT_KIND_RANDOM;
                op_shape s = {.v = {ns[j], rt_ek[i][0], rt_ek[i][1], variant != 1,
                                    variant != 2 || backward, kind, variant ? 12345 : 7,
                                    variant == 2 ? (int64_t)1 << 40 : 3},
                              .f = {0.01f, 0.01f, 0.0f, 0.0f}};
                if (variant == 1) s.f[2] = 0.5f, s.f[3] = 0.001f; /* the optional losses */
                if (i % 4 == 3) s.f[0] = 1.0f, s.f[1] = 2.0f, s.f[2] = 0.25f, s.f[3] = 0.125f;
                s.misalign = variant == 2;
                out[n++] = s;
            }
    /* MoE-MAE's sizes: a batch's tokens through a block of 3 and of 5 experts */
    for (int i = 0; i < 2 && n < cap; i++) {
        op_shape s = {.v = {BENCH_TOKENS, i ? 5 : 3, 2, 1, 1, RT_KIND_RANDOM, 99, 1000},
                      .f = {0.01f, 0.01f, 0.1f, 0.001f}};
        s.large = 1;
        out[n++] = s;
    }
    return n;
}

/* The inputs of a kind: clean and raw [n, E] from the random fill. Ties: clean on a grid of
   three values (inference: H = clean). One: every token to experts 0 and 1 (clean 40 and 20, the
   noise at most 0.7·5.8), the others receive none. Large: clean ×1000, raw ×10. */
static void rt_tweak_inputs(const op_shape *s, float *clean, float *raw) {
    const int64_t n = s->v[RT_N], E = s->v[RT_E];
    for (int64_t i = 0; i < n * E; i++) {
        switch (s->v[RT_KIND]) {
        case RT_KIND_TIES: clean[i] = 0.5f * floorf(clean[i] * 1.5f); break;
        case RT_KIND_ONE:
            clean[i] = i % E == 0 ? 40.0f : i % E == 1 ? 20.0f : clean[i];
            if (raw) raw[i] = -fabsf(raw[i]); /* noise_std <= log 2 */
            break;
        case RT_KIND_LARGE:
            clean[i] *= 1000.0f;
            if (raw) raw[i] *= 10.0f;
            break;
        default: break;
        }
    }
}

/* ---- the reference's router, per token ---- */

typedef struct {
    double std[8], z[8], gate[8], a[8], phi_a[8];
    float H[8];
    int rank[8], src[8];
} rt_ref;

static const float *rt_sort_H; /* qsort's context */
static int rt_by_H(const void *x, const void *y) {
    const int i = *(const int *)x, j = *(const int *)y;
    if (rt_sort_H[i] != rt_sort_H[j]) return rt_sort_H[i] > rt_sort_H[j] ? -1 : 1;
    return (i > j) - (i < j);
}

/* Token t: its draws, H (float, as the contract), ranks (a sort), gates, ψ's source and the
   load's argument a = (clean − ψ)/std. */
static void rt_ref_token(const op_shape *s, const float *cl, const float *rw, int64_t t,
                         rt_ref *o) {
    const int E = (int)s->v[RT_E], k = (int)s->v[RT_K];
    for (int e = 0; e < E; e++) {
        o->std[e] = o->z[e] = 0;
        o->H[e] = cl[e];
        if (rw) {
            const float sd = (float)log1p(exp((double)rw[e])),
                        z = saec_hash_normal((uint64_t)s->v[RT_SEED], SAEC_RNG_ROUTER_NOISE,
                                             (uint64_t)s->v[RT_COUNTER] +
                                                 2 * (uint64_t)(t * E + e));
            const float zs = z * sd;
            o->std[e] = sd, o->z[e] = z, o->H[e] = cl[e] + zs;
        }
        o->rank[e] = e;
    }
    rt_sort_H = o->H;
    qsort(o->rank, (size_t)E, sizeof o->rank[0], rt_by_H);
    double den = 0;
    for (int j = 0; j < k; j++)
        den += exp((double)o->H[o->rank[j]] - o->H[o->rank[0]]);
    for (int j = 0; j < k; j++)
        o->gate[j] = exp((double)o->H[o->rank[j]] - o->H[o->rank[0]]) / den;
    const double lk = o->H[o->rank[k - 1]], lk1 = k < E ? o->H[o->rank[k]] : -INFINITY;
    for (int e = 0; e < E && rw; e++) {
        o->src[e] = o->H[e] > lk ? o->rank[k - 1] : o->H[e] <= lk1 ? o->rank[k] : e;
        o->a[e] = ((double)cl[e] - o->H[o->src[e]]) / o->std[e];
        o->phi_a[e] = exp(-0.5 * o->a[e] * o->a[e]) / sqrt(6.283185307179586);
    }
}

/* softmax(cl) [E] and its logsumexp. */
static double rt_ref_softmax(const float *cl, int E, double *p) {
    double mx = -INFINITY, s = 0;
    for (int e = 0; e < E; e++)
        mx = fmax(mx, cl[e]);
    for (int e = 0; e < E; e++)
        s += exp(cl[e] - mx);
    for (int e = 0; e < E; e++)
        p[e] = exp(cl[e] - mx) / s;
    return mx + log(s);
}

/* CV of x [E] and its gradient g [E] (or NULL), from the definitions. */
static double rt_ref_cv(const double *x, int E, double *g) {
    double m = 0, v = 0;
    for (int e = 0; e < E; e++)
        m += x[e] / E;
    for (int e = 0; e < E; e++)
        v += (x[e] - m) * (x[e] - m) / E;
    const double sd = sqrt(v), D = m + 1e-6;
    for (int e = 0; g && e < E; e++) /* d sd/dx_e = (x_e − m)/(E·sd); dD/dx_e = 1/E */
        g[e] = (sd > 0 ? (x[e] - m) / (E * sd) / D : 0) - sd / (D * D) / E;
    return sd / D;
}

/* ---- router_forward ----
   Buffers: clean, raw (or absent), idx (i32), gates, stats (f64 [4E]), loss (f64 [5]). */

static int router_forward_shapes(op_shape *out, int cap) { return rt_shapes(out, cap, 0); }

static void router_forward_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[RT_N], E = s->v[RT_E], k = s->v[RT_K];
    b[0] = op_buf_of("clean", OP_F32, n * E, OP_BUF_IN);
    b[1] = s->v[RT_NOISY] ? op_buf_of("raw", OP_F32, n * E, OP_BUF_IN) : op_absent("raw");
    b[2] = op_out("idx", OP_I32, n * k);
    b[3] = op_out("gates", OP_F32, n * k);
    b[4] = s->v[RT_SUMS_ON] ? op_out("stats", OP_F64, 4 * E) : op_absent("stats");
    b[5] = s->v[RT_SUMS_ON] ? op_out("loss", OP_F64, 5) : op_absent("loss");
}

static void router_forward_tweak(const op_shape *s, void *const *host) {
    rt_tweak_inputs(s, host[0], host[1]);
}

static int router_forward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, router_forward, b[0], b[1], s->v[RT_N], (int)s->v[RT_E], (int)s->v[RT_K],
                   (uint64_t)s->v[RT_SEED], (uint64_t)s->v[RT_COUNTER], s->f[0], s->f[1], s->f[2],
                   s->f[3], b[2], b[3], b[4], b[5]);
}

/* Scales: gates |g| + 1e-6 (a float rounding); stats their value plus the sum's size; the CVs
   1 + |CV| (a float rounding of every gate moves the std by that much of the mean), the Switch
   and z losses their value; loss[0] the weighted sum of those. */
static void router_forward_naive(const op_shape *s, const void *const *in, double *const *want,
                                 double *const *scale) {
    const int64_t n = s->v[RT_N];
    const int E = (int)s->v[RT_E], k = (int)s->v[RT_K];
    const float *clean = in[0], *raw = in[1];
    double imp[8] = {0}, load[8] = {0}, cnt[8] = {0}, P[8] = {0}, zz = 0;
    for (int64_t t = 0; t < n; t++) {
        rt_ref o;
        rt_ref_token(s, clean + t * E, raw ? raw + t * E : NULL, t, &o);
        for (int j = 0; j < k; j++) {
            want[2][t * k + j] = o.rank[j];
            want[3][t * k + j] = o.gate[j];
            scale[3][t * k + j] = o.gate[j] + 1e-6;
            imp[o.rank[j]] += o.gate[j];
            cnt[o.rank[j]] += 1;
        }
        for (int e = 0; e < E; e++)
            load[e] += raw ? 0.5 * erfc(-o.a[e] / sqrt(2.0)) : 0;
        double p[8];
        const double lse = rt_ref_softmax(clean + t * E, E, p);
        for (int e = 0; e < E; e++)
            P[e] += p[e];
        zz += lse * lse;
    }
    if (!raw)
        for (int e = 0; e < E; e++)
            load[e] = cnt[e];
    if (!want[4]) return;
    double sw = 0;
    for (int e = 0; e < E; e++) {
        const double f = n ? cnt[e] / n : 0, Pe = n ? P[e] / n : 0;
        want[4][e] = imp[e], want[4][E + e] = load[e], want[4][2 * E + e] = f;
        want[4][3 * E + e] = Pe;
        scale[4][e] = imp[e] + 1e-6 * n, scale[4][E + e] = load[e] + 1e-9 * n;
        scale[4][2 * E + e] = f + 1e-9, scale[4][3 * E + e] = Pe + 1e-9;
        sw += f * Pe;
    }
    want[5][1] = rt_ref_cv(imp, E, NULL), scale[5][1] = 1 + want[5][1];
    want[5][2] = rt_ref_cv(load, E, NULL), scale[5][2] = 1 + want[5][2];
    want[5][3] = E * sw, scale[5][3] = want[5][3] + 1e-9;
    want[5][4] = n ? zz / n : 0, scale[5][4] = want[5][4] + 1e-9;
    want[5][0] =
        s->f[0] * want[5][1] + s->f[1] * want[5][2] + s->f[2] * want[5][3] + s->f[3] * want[5][4];
    scale[5][0] = fabs(s->f[0]) * scale[5][1] + fabs(s->f[1]) * scale[5][2] +
                  fabs(s->f[2]) * scale[5][3] + fabs(s->f[3]) * scale[5][4];
}

static void router_forward_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[16] = {0};
    int32_t i[4];
    rejected(SAEC_OP(dev, router_forward, x, x, 1, 2, 3, 0, 0, 0, 0, 0, 0, i, x, NULL, NULL),
             "k > E");
    rejected(SAEC_OP(dev, router_forward, x, x, 1, 2, 0, 0, 0, 0, 0, 0, 0, i, x, NULL, NULL),
             "k = 0");
    rejected(SAEC_OP(dev, router_forward, x, x, 1, 9, 2, 0, 0, 0, 0, 0, 0, i, x, NULL, NULL),
             "E > 8");
    rejected(SAEC_OP(dev, router_forward, x, x, -1, 2, 2, 0, 0, 0, 0, 0, 0, i, x, NULL, NULL),
             "n < 0");
    rejected(SAEC_OP(dev, router_forward, x, x, 1, 2, 2, 0, 0, 0, 0, 0, 0, NULL, x, NULL, NULL),
             "idx NULL");
}

static void rt_label(const char *op, const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "%s n=%lld E=%lld k=%lld noisy=%d sums=%d inputs=%s seed=%lld counter=%lld "
             "w=%g/%g/%g/%g misalign=%d",
             op, (long long)s->v[RT_N], (long long)s->v[RT_E], (long long)s->v[RT_K],
             (int)s->v[RT_NOISY], (int)s->v[RT_SUMS_ON], rt_kind_name[s->v[RT_KIND]],
             (long long)s->v[RT_SEED], (long long)s->v[RT_COUNTER], s->f[0], s->f[1], s->f[2],
             s->f[3], s->misalign);
}

static void router_forward_label(const op_shape *s, char *b, size_t cap) {
    rt_label("router_forward", s, b, cap);
}

/* A batch's tokens through a block of 5 experts, top-2, with the balance sums. */
static op_shape router_forward_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {BENCH_TOKENS, BENCH_E, BENCH_K, 1, 1, RT_KIND_RANDOM, 1, 0},
                  .f = {0.01f, 0.01f, 0.0f, 0.0f}};
    return s;
}

static saec_op_floor router_forward_floor(const op_shape *s) {
    return saec_op_floor_router_forward((double)s->v[RT_N], (double)s->v[RT_E], (double)s->v[RT_K],
                                        (double)s->v[RT_NOISY]);
}

const op_case op_case_router_forward = {.op = "router_forward",
                                        .group = "router",
                                        .n_bufs = 6,
                                        OP_CASE_FUNCS(router_forward),
                                        .tweak = router_forward_tweak,
                                        .atol = 0,
                                        .rtol = 1e-6,
                                        .atol_be = 0,
                                        .rtol_be = 1e-6,
                                        .deterministic = 1,
                                        .bad_args = router_forward_bad_args,
                                        .bench_name = "router_forward"};

/* ---- router_backward ----
   Buffers: clean, raw (or absent), dgates, stats (f64 [4E], the tweak's), dclean, draw. */

static int router_backward_shapes(op_shape *out, int cap) { return rt_shapes(out, cap, 1); }

static void router_backward_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[RT_N], E = s->v[RT_E], k = s->v[RT_K];
    b[0] = op_buf_of("clean", OP_F32, n * E, OP_BUF_IN);
    b[1] = s->v[RT_NOISY] ? op_buf_of("raw", OP_F32, n * E, OP_BUF_IN) : op_absent("raw");
    b[2] = op_buf_of("dgates", OP_F32, n * k, OP_BUF_IN);
    b[3] = op_buf_of("stats", OP_F64, 4 * E, OP_BUF_IN);
    b[4] = op_out("dclean", OP_F32, n * E);
    b[5] = s->v[RT_NOISY] ? op_out("draw", OP_F32, n * E) : op_absent("draw");
}

/* stats as router_forward leaves them (importance and load about n·k/E, f about k/E, P about
   1/E), but for the one-expert inputs: importance and load 0 past expert 1 (an expert that
   receives no token), and every value equal for E = 2 (std 0: the CV's first term is 0). */
static void router_backward_tweak(const op_shape *s, void *const *host) {
    rt_tweak_inputs(s, host[0], host[1]);
    const int64_t n = s->v[RT_N], E = s->v[RT_E], k = s->v[RT_K];
    double *st = host[3];
    for (int64_t e = 0; e < E; e++) {
        const double mean = (double)(n * k) / (double)E;
        const int none = s->v[RT_KIND] == RT_KIND_ONE && e >= k;
        const double jitter = E == 2 ? 0 : 0.5 * st[e];
        st[e] = none ? 0 : mean * (1 + jitter);
        st[E + e] = none ? 0 : mean * (1 - 0.5 * st[E + e]);
        st[2 * E + e] = (double)k / (double)E * (1 + 0.3 * st[2 * E + e]);
        st[3 * E + e] = 1.0 / (double)E * (1 + 0.3 * st[3 * E + e]);
    }
}

static int router_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, router_backward, b[0], b[1], b[2], b[3], s->v[RT_N], (int)s->v[RT_E],
                   (int)s->v[RT_K], (uint64_t)s->v[RT_SEED], (uint64_t)s->v[RT_COUNTER], s->f[0],
                   s->f[1], s->f[2], s->f[3], b[4], b[5]);
}

/* The chain rule written out per token: L's dependence on gates (dgates plus the importance
   CV), on each load term Φ(a_e) (a_e through clean_e, ψ's source H and std_e), on softmax(clean)
   (Switch, f held; z-loss), then H = clean + z·std and std = softplus(raw). Scale: the sum of the
   terms' magnitudes (each a few double roundings, then one float rounding). */
static void router_backward_naive(const op_shape *s, const void *const *in, double *const *want,
                                  double *const *scale) {
    const int64_t n = s->v[RT_N];
    const int E = (int)s->v[RT_E], k = (int)s->v[RT_K];
    const float *clean = in[0], *raw = in[1], *dgates = in[2];
    const double *st = in[3];
    double gimp[8], gload[8];
    rt_ref_cv(st, E, gimp);
    rt_ref_cv(st + E, E, gload);
    for (int64_t t = 0; t < n; t++) {
        rt_ref o;
        const float *cl = clean + t * E;
        rt_ref_token(s, cl, raw ? raw + t * E : NULL, t, &o);
        double dH[8] = {0}, mH[8] = {0}, dc[8] = {0}, mc[8] = {0}, ds[8] = {0}, ms[8] = {0};
        /* gates: ∂g_j/∂H_{rank i} = g_j(δ_ij − g_i) */
        for (int j = 0; j < k; j++) {
            const double dgj = dgates[t * k + j] + s->f[0] * gimp[o.rank[j]];
            for (int i = 0; i < k; i++) {
                const double term = dgj * o.gate[j] * ((i == j) - o.gate[i]);
                dH[o.rank[i]] += term, mH[o.rank[i]] += fabs(term);
            }
        }
        for (int e = 0; raw && e < E; e++) { /* Φ(a_e): ∂a/∂clean_e = 1/std, ∂a/∂ψ = −1/std */
            const double c = s->f[1] * gload[e] * o.phi_a[e];
            dc[e] += c / o.std[e], mc[e] += fabs(c / o.std[e]);
            dH[o.src[e]] -= c / o.std[e], mH[o.src[e]] += fabs(c / o.std[e]);
            ds[e] -= c * o.a[e] / o.std[e], ms[e] += fabs(c * o.a[e] / o.std[e]);
        }
        double p[8];
        const double lse = rt_ref_softmax(cl, E, p);
        for (int e = 0; e < E; e++) /* Σ_i f_i·∂p_i/∂clean_e and ∂lse²/∂clean_e */
            for (int i = 0; i < E; i++) {
                const double dp = p[i] * ((i == e) - p[e]);
                const double term =
                    s->f[2] * E * st[2 * E + i] * dp / n + (i == e) * s->f[3] * 2 * lse * p[e] / n;
                dc[e] += term, mc[e] += fabs(term);
            }
        for (int e = 0; e < E; e++) {
            want[4][t * E + e] = dc[e] + dH[e];
            scale[4][t * E + e] = mc[e] + mH[e];
            if (!raw) continue;
            const double sig = 1 / (1 + exp(-(double)raw[t * E + e]));
            want[5][t * E + e] = (ds[e] + dH[e] * o.z[e]) * sig;
            scale[5][t * E + e] = (ms[e] + mH[e] * fabs(o.z[e])) * sig;
        }
    }
}

static void router_backward_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[16] = {0};
    double st[32] = {0};
    rejected(SAEC_OP(dev, router_backward, x, x, x, st, 1, 2, 3, 0, 0, 0, 0, 0, 0, x, x), "k > E");
    rejected(SAEC_OP(dev, router_backward, x, x, x, st, 1, 2, 2, 0, 0, 0, 0, 0, 0, x, NULL),
             "raw without draw");
    rejected(SAEC_OP(dev, router_backward, x, NULL, x, st, 1, 2, 2, 0, 0, 0, 0, 0, 0, x, x),
             "draw without raw");
    rejected(SAEC_OP(dev, router_backward, x, x, x, NULL, 1, 2, 2, 0, 0, 0.01f, 0, 0, 0, x, x),
             "stats NULL with w_imp");
}

static void router_backward_label(const op_shape *s, char *b, size_t cap) {
    rt_label("router_backward", s, b, cap);
}

static op_shape router_backward_bench(int64_t n, int64_t m, int64_t d) {
    return router_forward_bench(n, m, d);
}

static saec_op_floor router_backward_floor(const op_shape *s) {
    return saec_op_floor_router_backward((double)s->v[RT_N], (double)s->v[RT_E], (double)s->v[RT_K],
                                         (double)s->v[RT_NOISY]);
}

const op_case op_case_router_backward = {.op = "router_backward",
                                         .group = "router",
                                         .n_bufs = 6,
                                         OP_CASE_FUNCS(router_backward),
                                         .tweak = router_backward_tweak,
                                         .atol = 1e-9,
                                         .rtol = 1e-6,
                                         .atol_be = 1e-9,
                                         .rtol_be = 1e-6,
                                         .deterministic = 1,
                                         .bad_args = router_backward_bad_args,
                                         .bench_name = "router_backward"};
