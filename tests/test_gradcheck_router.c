/* router_backward against central finite differences of an independent double-precision forward
 * (naive loops, no engine op), on the CPU backend:
 *   L = Σ_t Σ_j w_tj·gate_tj + w_imp·CV(importance) + w_load·CV(load) + w_switch·E·Σ f_e·P_e
 *       + w_z·mean_t logsumexp(clean_t)²
 * as a function of clean and raw [n, E]. The noise draws are functions of the counter only, so
 * they stay fixed; the inputs are drawn with a margin between every two H of a token (far above
 * the step), so the top-k choice, ψ's case and f stay fixed too. Shapes: MoE-MAE's E = 3 and 5
 * at k = 2, E = 4, E = 2 = k (no l_{k+1}), k = 1, and inference (no raw: load = counts, no
 * gradient through it). The engine computes in float: the tolerance is 1e-4 of the gradient's
 * scale. Also: the draws (saec_hash_normal) are standard normal.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "saec/device.h"
#include "saec/hash.h"
#include "saec/ops.h"
#include "test_random.h"

#define STEP 1e-6 /* the finite-difference step (inputs are O(1), margins 0.05) */
#define TOL 1e-4
#define MARGIN 0.05
#define SEED 77
#define COUNTER 1000

enum { N = 9, MAXE = 8 };

typedef struct {
    int E, k, noisy;
    double w_imp, w_load, w_switch, w_z;
    const double *wg; /* [N, k] the gates' weights */
} rt_problem;

/* Token t's H in double (the draws fixed) and its order (ties cannot occur: margins). */
static void token_H(const rt_problem *p, const double *cl, const double *rw, int t, double *std,
                    double *z, double *H, int *rank) {
    for (int e = 0; e < p->E; e++) {
        std[e] = p->noisy ? log1p(exp(rw[e])) : 0;
        z[e] = p->noisy ? saec_hash_normal(SEED, SAEC_RNG_ROUTER_NOISE,
                                           COUNTER + 2 * (uint64_t)(t * p->E + e))
                        : 0;
        H[e] = cl[e] + z[e] * std[e];
        rank[e] = e;
    }
    for (int i = 1; i < p->E; i++) /* insertion sort, largest first */
        for (int j = i; j > 0 && H[rank[j]] > H[rank[j - 1]]; j--) {
            const int tmp = rank[j];
            rank[j] = rank[j - 1], rank[j - 1] = tmp;
        }
}

static double cv(const double *x, int E) {
    double m = 0, v = 0;
    for (int e = 0; e < E; e++)
        m += x[e] / E;
    for (int e = 0; e < E; e++)
        v += (x[e] - m) * (x[e] - m) / E;
    return sqrt(v) / (m + 1e-6);
}

/* L in double. f (the routed fractions) is piecewise constant: the margins keep it fixed. */
static double loss_of(const rt_problem *p, const double *clean, const double *raw) {
    const int E = p->E, k = p->k;
    double L = 0, imp[MAXE] = {0}, load[MAXE] = {0}, cnt[MAXE] = {0}, P[MAXE] = {0}, zz = 0;
    for (int t = 0; t < N; t++) {
        double std[MAXE], z[MAXE], H[MAXE];
        int rank[MAXE];
        const double *cl = clean + t * E;
        token_H(p, cl, raw + t * E, t, std, z, H, rank);
        double den = 0;
        for (int j = 0; j < k; j++)
            den += exp(H[rank[j]]);
        for (int j = 0; j < k; j++) {
            const double g = exp(H[rank[j]]) / den;
            L += p->wg[t * k + j] * g;
            imp[rank[j]] += g;
            cnt[rank[j]] += 1;
        }
        const double lk = H[rank[k - 1]], lk1 = k < E ? H[rank[k]] : -INFINITY;
        for (int e = 0; e < E; e++) {
            const double psi = H[e] > lk ? lk : H[e] <= lk1 ? lk1 : H[e];
            load[e] += p->noisy ? 0.5 * erfc(-(cl[e] - psi) / std[e] / sqrt(2.0)) : cnt[e] * 0;
        }
        double s = 0;
        for (int e = 0; e < E; e++)
            s += exp(cl[e]);
        for (int e = 0; e < E; e++)
            P[e] += exp(cl[e]) / s / N;
        zz += log(s) * log(s) / N;
    }
    if (!p->noisy)
        for (int e = 0; e < E; e++)
            load[e] = cnt[e];
    double sw = 0;
    for (int e = 0; e < E; e++)
        sw += cnt[e] / N * P[e];
    return L + p->w_imp * cv(imp, E) + p->w_load * cv(load, E) + p->w_switch * E * sw + p->w_z * zz;
}

/* Whether every two H of every token are MARGIN apart. */
static int has_margin(const rt_problem *p, const double *clean, const double *raw) {
    for (int t = 0; t < N; t++) {
        double std[MAXE], z[MAXE], H[MAXE];
        int rank[MAXE];
        token_H(p, clean + t * p->E, raw + t * p->E, t, std, z, H, rank);
        for (int j = 1; j < p->E; j++)
            if (H[rank[j - 1]] - H[rank[j]] < MARGIN) return 0;
    }
    return 1;
}

static void check_grad(const char *what, const double *fd, const float *got, int64_t n) {
    double typical = 0;
    for (int64_t i = 0; i < n; i++)
        typical += fabs(fd[i]) / (double)n;
    for (int64_t i = 0; i < n; i++)
        CHECK(fabs(fd[i] - got[i]) <= TOL * (fabs(fd[i]) + typical),
              "%s[%lld]: engine %.9g, finite differences %.9g", what, (long long)i, got[i], fd[i]);
}

static void test_router(saec_dev *cpu, int E, int k, int noisy) {
    set_ctx("router_backward vs finite differences, E=%d k=%d noisy=%d", E, k, noisy);
    double wg[N * MAXE], clean[N * MAXE], raw[N * MAXE];
    float cf[N * MAXE], rf[N * MAXE], dgf[N * MAXE], dclean[N * MAXE], draw[N * MAXE];
    const rt_problem p = {E, k, noisy, 0.5, 0.7, 0.3, 0.2, wg};
    for (int i = 0; i < N * k; i++)
        wg[i] = dgf[i] = rng_sym();
    int tries = 0;
    do { /* float inputs (the engine's), used exactly in double */
        for (int i = 0; i < N * E; i++)
            clean[i] = cf[i] = 2 * rng_sym(), raw[i] = rf[i] = rng_sym();
    } while (!has_margin(&p, clean, raw) && ++tries < 100000);
    CHECK(tries < 100000, "no inputs with a margin");
    double stats[4 * MAXE], loss[5];
    int32_t idx[N * MAXE];
    float gates[N * MAXE];
    OK(SAEC_OP(cpu, router_forward, cf, noisy ? rf : NULL, N, E, k, SEED, COUNTER, (float)p.w_imp,
               (float)p.w_load, (float)p.w_switch, (float)p.w_z, idx, gates, stats, loss));
    OK(SAEC_OP(cpu, router_backward, cf, noisy ? rf : NULL, dgf, stats, N, E, k, SEED, COUNTER,
               (float)p.w_imp, (float)p.w_load, (float)p.w_switch, (float)p.w_z, dclean,
               noisy ? draw : NULL));
    /* the forward's loss[0] is L less the gates' weighted sum */
    double wsum = 0;
    for (int t = 0; t < N; t++)
        for (int j = 0; j < k; j++)
            wsum += wg[t * k + j] * gates[t * k + j];
    const double L = loss_of(&p, clean, raw);
    CHECK(fabs(L - (wsum + loss[0])) <= 1e-5 * (fabs(L) + 1), "loss: double %.9g, engine %.9g", L,
          wsum + loss[0]);
    double fdc[N * MAXE], fdr[N * MAXE];
    for (int i = 0; i < N * E; i++) {
        const double c0 = clean[i], r0 = raw[i];
        clean[i] = c0 + STEP;
        const double cp = loss_of(&p, clean, raw);
        clean[i] = c0 - STEP;
        fdc[i] = (cp - loss_of(&p, clean, raw)) / (2 * STEP);
        clean[i] = c0;
        raw[i] = r0 + STEP;
        const double rp = loss_of(&p, clean, raw);
        raw[i] = r0 - STEP;
        fdr[i] = (rp - loss_of(&p, clean, raw)) / (2 * STEP);
        raw[i] = r0;
    }
    check_grad("dclean", fdc, dclean, N * E);
    if (noisy) check_grad("draw", fdr, draw, N * E);
}

/* The draws the router adds are standard normal: over 2^18 counters, mean 0 and variance 1 (to
   5 standard errors), P(|z| < 1) = 0.6827 and P(|z| < 2) = 0.9545 (to 5 binomial errors), none
   past 6 (the largest a 24-bit uniform gives is 5.8). */
static void test_normal_draws(void) {
    set_ctx("saec_hash_normal: standard normal");
    enum { DRAWS = 1 << 18 };
    double s = 0, ss = 0, in1 = 0, in2 = 0, big = 0;
    for (int i = 0; i < DRAWS; i++) {
        const double z = saec_hash_normal(SEED, SAEC_RNG_ROUTER_NOISE, 2 * (uint64_t)i);
        s += z, ss += z * z, in1 += fabs(z) < 1, in2 += fabs(z) < 2, big += !(fabs(z) < 6);
    }
    const double mean = s / DRAWS, var = ss / DRAWS - mean * mean;
    CHECK(fabs(mean) < 5 / sqrt(DRAWS), "mean %.5f", mean);
    CHECK(fabs(var - 1) < 5 * sqrt(2.0 / DRAWS), "variance %.5f", var);
    CHECK(fabs(in1 / DRAWS - 0.682689) < 5 * sqrt(0.2166 / DRAWS), "P(|z| < 1) = %.5f",
          in1 / DRAWS);
    CHECK(fabs(in2 / DRAWS - 0.954500) < 5 * sqrt(0.0434 / DRAWS), "P(|z| < 2) = %.5f",
          in2 / DRAWS);
    CHECK(big == 0, "%.0f draws past 6 (or NaN)", big);
}

int main(void) {
    rng_seed(0x5AEC7F0A12345602ull);
    saec_dev *cpu = NULL;
    if (saec_dev_open("cpu", &cpu) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(cpu): %s\n", saec_error_message());
        return 1;
    }
    test_normal_draws();
    static const int shapes[][3] = {{3, 2, 1}, {5, 2, 1}, {4, 2, 1}, {2, 2, 1},
                                    {5, 1, 1}, {8, 3, 1}, {5, 2, 0}, {3, 3, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        test_router(cpu, shapes[i][0], shapes[i][1], shapes[i][2]);
    saec_dev_close(cpu);
    return check_summary("test_gradcheck_router");
}
