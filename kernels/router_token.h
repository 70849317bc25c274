/* The noisy top-k router's per-token arithmetic (SPEC §7; op_list.h's router_forward and
 * router_backward), written once for both backends: cpu_router.c calls it from C, cuda_router.cu
 * from its kernels (one thread a token). Float operations go through RT_MUL / RT_ADD, which are
 * __fmul_rn / __fadd_rn under CUDA (never contracted into an FMA) and plain operations in C (no
 * contraction in ISO C11), so both backends compute the same H, ranks and gates; the
 * transcendental functions are taken in double and rounded to float once.
 */
#ifndef SAEC_ROUTER_TOKEN_H
#define SAEC_ROUTER_TOKEN_H

#include <math.h>
#include <stdint.h>

#include "saec/hash.h"

#ifdef __CUDACC__ /* device functions: the CUDA backend calls them from its kernels only */
#define RT_FN static inline __device__
#define RT_MUL(a, b) __fmul_rn((a), (b))
#define RT_ADD(a, b) __fadd_rn((a), (b))
#else
#define RT_FN static inline
#define RT_MUL(a, b) ((a) * (b))
#define RT_ADD(a, b) ((a) + (b))
#endif

#define RT_MAX_E 8               /* experts a router may have */
#define RT_CV_EPS 1e-6           /* CV = std / (mean + RT_CV_EPS), as SPEC */
#define RT_SUMS(E) (4 * (E) + 1) /* a chunk's sums: importance, load, count, P [E] and Σ lse² */

/* One token: noise_std, z, H [E]; rank[j] the expert of rank j (j < min(k + 1, E)); gate [k] and
   in double gd [k] (the sums and the backward use these: a float gate of 1 − 1e-9 is 1, and the
   softmax backward would lose the other gate's share). */
typedef struct {
    float std[RT_MAX_E], z[RT_MAX_E], H[RT_MAX_E], gate[RT_MAX_E];
    double gd[RT_MAX_E];
    int rank[RT_MAX_E + 1];
} rt_token;

/* softplus(x) = max(x, 0) + log1p(e^−|x|) in double (no overflow), rounded to float. */
RT_FN float rt_softplus(float x) {
    const double xd = (double)x;
    return (float)((xd > 0 ? xd : 0.0) + log1p(exp(-fabs(xd))));
}

/* Token t's router: cl, rw [E] its clean and raw logits (rw NULL: no noise). */
RT_FN void rt_token_forward(const float *cl, const float *rw, int E, int k, uint64_t seed,
                            uint64_t counter, int64_t t, rt_token *o) {
    for (int e = 0; e < E; e++) {
        if (rw) {
            o->std[e] = rt_softplus(rw[e]);
            o->z[e] =
                saec_hash_normal(seed, SAEC_RNG_ROUTER_NOISE, counter + 2 * (uint64_t)(t * E + e));
            o->H[e] = RT_ADD(cl[e], RT_MUL(o->z[e], o->std[e]));
        } else {
            o->std[e] = 0.0f, o->z[e] = 0.0f, o->H[e] = cl[e];
        }
    }
    /* selection by rank, k + 1 of them when there are (l_{k+1} for ψ); ties to the lower index */
    const int nr = k < E ? k + 1 : E;
    unsigned taken = 0;
    for (int j = 0; j < nr; j++) {
        int best = -1;
        for (int e = 0; e < E; e++)
            if (!(taken >> e & 1u) && (best < 0 || o->H[e] > o->H[best])) best = e;
        o->rank[j] = best;
        taken |= 1u << best;
    }
    const double mx = (double)o->H[o->rank[0]];
    double ex[RT_MAX_E], s = 0.0;
    for (int j = 0; j < k; j++)
        s += ex[j] = exp((double)o->H[o->rank[j]] - mx);
    for (int j = 0; j < k; j++) {
        o->gd[j] = ex[j] / s;
        o->gate[j] = (float)o->gd[j];
    }
}

/* Expert e's threshold ψ_e (SPEC §7) and the expert whose H it is (its gradient goes there). */
RT_FN float rt_psi(const rt_token *o, int E, int k, int e, int *src) {
    const float lk = o->H[o->rank[k - 1]];
    if (o->H[e] > lk) {
        *src = o->rank[k - 1];
        return lk;
    }
    if (k < E && o->H[e] <= o->H[o->rank[k]]) {
        *src = o->rank[k];
        return o->H[o->rank[k]];
    }
    *src = e;
    return o->H[e];
}

/* Expert e's load argument a = (clean − ψ)/noise_std in double. */
RT_FN double rt_load_arg(const rt_token *o, const float *cl, int E, int k, int e, int *src) {
    const float psi = rt_psi(o, E, k, e, src);
    return ((double)cl[e] - (double)psi) / (double)o->std[e];
}

/* The standard normal CDF and density. */
RT_FN double rt_Phi(double a) { return 0.5 * erfc(-a * 0.7071067811865476); }
RT_FN double rt_phi(double a) { return 0.3989422804014327 * exp(-0.5 * a * a); }

/* softmax(cl) [E] in double, its logsumexp returned. */
RT_FN double rt_softmax(const float *cl, int E, double *p) {
    double mx = (double)cl[0], s = 0.0;
    for (int e = 1; e < E; e++)
        mx = (double)cl[e] > mx ? (double)cl[e] : mx;
    for (int e = 0; e < E; e++)
        s += p[e] = exp((double)cl[e] - mx);
    for (int e = 0; e < E; e++)
        p[e] /= s;
    return mx + log(s);
}

/* Token t's contribution to a chunk's sums acc [RT_SUMS(E)] (added in place). */
RT_FN void rt_token_sums(const rt_token *o, const float *cl, int noisy, int E, int k, double *acc) {
    for (int j = 0; j < k; j++) {
        acc[o->rank[j]] += o->gd[j];
        acc[2 * E + o->rank[j]] += 1.0;
        if (!noisy) acc[E + o->rank[j]] += 1.0;
    }
    for (int e = 0; noisy && e < E; e++) {
        int src;
        acc[E + e] += rt_Phi(rt_load_arg(o, cl, E, k, e, &src));
    }
    double p[RT_MAX_E];
    const double lse = rt_softmax(cl, E, p);
    for (int e = 0; e < E; e++)
        acc[3 * E + e] += p[e];
    acc[4 * E] += lse * lse;
}

/* Token t of clean, raw [n, E] (raw NULL: no noise) routed: its row of idx, gates [n, k] written
   and, with acc, its share of the sums added to acc [RT_SUMS(E)]. What each backend runs per
   token of router_forward. */
RT_FN void rt_route(const float *clean, const float *raw, int64_t t, int E, int k, uint64_t seed,
                    uint64_t counter, int32_t *idx, float *gates, double *acc) {
    const float *cl = clean + t * E, *rw = raw ? raw + t * E : NULL; /* rows t [E] */
    rt_token o;
    rt_token_forward(cl, rw, E, k, seed, counter, t, &o);
    for (int j = 0; j < k; j++)
        idx[t * k + j] = o.rank[j], gates[t * k + j] = o.gate[j];
    if (acc) rt_token_sums(&o, cl, raw != NULL, E, k, acc);
}

/* CV(x) over E values and, when g is not NULL, ∂CV/∂x [E] (its (x − m)/std term 0 at std = 0). */
RT_FN double rt_cv(const double *x, int E, double *g) {
    double m = 0.0, v = 0.0;
    for (int e = 0; e < E; e++)
        m += x[e];
    m /= (double)E;
    for (int e = 0; e < E; e++)
        v += (x[e] - m) * (x[e] - m);
    const double sd = sqrt(v / (double)E), D = m + RT_CV_EPS;
    for (int e = 0; g && e < E; e++)
        g[e] = (sd > 0 ? (x[e] - m) / ((double)E * sd * D) : 0.0) - sd / ((double)E * D * D);
    return sd / D;
}

/* The chunks' total tot [RT_SUMS(E)] of n tokens -> stats [4E] and loss [5] (either NULL). */
RT_FN void rt_finish(const double *tot, int64_t n, int E, float w_imp, float w_load, float w_switch,
                     float w_z, double *stats, double *loss) {
    const double inv_n = n > 0 ? 1.0 / (double)n : 0.0;
    double f[RT_MAX_E], P[RT_MAX_E], sw = 0.0;
    for (int e = 0; e < E; e++) {
        f[e] = tot[2 * E + e] * inv_n, P[e] = tot[3 * E + e] * inv_n;
        sw += f[e] * P[e];
    }
    if (stats)
        for (int e = 0; e < E; e++)
            stats[e] = tot[e], stats[E + e] = tot[E + e], stats[2 * E + e] = f[e],
            stats[3 * E + e] = P[e];
    if (!loss) return;
    loss[1] = rt_cv(tot, E, NULL);
    loss[2] = rt_cv(tot + E, E, NULL);
    loss[3] = (double)E * sw;
    loss[4] = tot[4 * E] * inv_n;
    loss[0] = (double)w_imp * loss[1] + (double)w_load * loss[2] + (double)w_switch * loss[3] +
              (double)w_z * loss[4];
}

/* The backward's per-expert coefficients from stats [4E]: cimp = w_imp·∂CV/∂importance,
   cload = w_load·∂CV/∂load [E] (0 for a weight of 0: stats are then not read). */
RT_FN void rt_coefs(const double *stats, int E, float w_imp, float w_load, double *cimp,
                    double *cload) {
    for (int e = 0; e < E; e++)
        cimp[e] = cload[e] = 0.0;
    if (w_imp != 0.0f) {
        rt_cv(stats, E, cimp);
        for (int e = 0; e < E; e++)
            cimp[e] *= (double)w_imp;
    }
    if (w_load != 0.0f) {
        rt_cv(stats + E, E, cload);
        for (int e = 0; e < E; e++)
            cload[e] *= (double)w_load;
    }
}

/* Token t's gradients dcl, drw [E] (drw NULL without noise) from dgates [k], the coefficients
   cimp, cload [E] (rt_coefs), f [E] (stats' third block; NULL when w_switch = 0) and 1/n. */
RT_FN void rt_token_backward(const float *cl, const float *rw, const float *dg, int E, int k,
                             uint64_t seed, uint64_t counter, int64_t t, const double *cimp,
                             const double *cload, const double *f, double inv_n, float w_switch,
                             float w_z, float *dcl, float *drw) {
    rt_token o = {{0}, {0}, {0}, {0}, {0}, {0}}; /* zeroed: no compiler sees that E >= 1 fills it */
    rt_token_forward(cl, rw, E, k, seed, counter, t, &o);
    double dH[RT_MAX_E], dstd[RT_MAX_E], dc[RT_MAX_E];
    for (int e = 0; e < E; e++)
        dH[e] = dstd[e] = dc[e] = 0.0;
    /* the gates' softmax: dH_j = g_j·(dg_j − Σ_i g_i·dg_i), dg with the importance term */
    double dgt[RT_MAX_E], gdg = 0.0;
    for (int j = 0; j < k; j++) {
        dgt[j] = (double)dg[j] + cimp[o.rank[j]];
        gdg += o.gd[j] * dgt[j];
    }
    for (int j = 0; j < k; j++)
        dH[o.rank[j]] += o.gd[j] * (dgt[j] - gdg);
    /* the load: Φ(a), a = (clean − ψ)/std */
    for (int e = 0; rw && e < E; e++) {
        if (cload[e] == 0.0) continue;
        int src;
        const double a = rt_load_arg(&o, cl, E, k, e, &src);
        const double c = cload[e] * rt_phi(a) / (double)o.std[e];
        dc[e] += c;
        dH[src] -= c;
        dstd[e] -= c * a;
    }
    /* the Switch loss (f held) and the z-loss through softmax(clean) */
    if (w_switch != 0.0f || w_z != 0.0f) {
        double p[RT_MAX_E], fp = 0.0;
        const double lse = rt_softmax(cl, E, p);
        for (int e = 0; f && e < E; e++)
            fp += f[e] * p[e];
        for (int e = 0; e < E; e++) {
            if (w_switch != 0.0f)
                dc[e] += (double)w_switch * (double)E * inv_n * p[e] * (f[e] - fp);
            dc[e] += (double)w_z * 2.0 * lse * p[e] * inv_n;
        }
    }
    for (int e = 0; e < E; e++) {
        dcl[e] = (float)(dc[e] + dH[e]);
        if (drw) {
            const double sig = 1.0 / (1.0 + exp(-(double)rw[e]));
            drw[e] = (float)((dstd[e] + dH[e] * (double)o.z[e]) * sig);
        }
    }
}

#endif
