/* The backward ops of the transformer pieces against central finite differences of independent
 * double-precision forwards (naive loops, no engine op), on the CPU backend:
 *   layernorm_backward (dx, dgamma, dbeta)  of  L = Σ w ⊙ LayerNorm(x; gamma, beta)
 *   swiglu_backward (da, db)                of  L = Σ w ⊙ SiLU(a) ⊙ b
 *   patch_loss's grad                       of  L = loss[0] (masked and visible patches)
 *   unpatchify as patchify's backward       ⟨patchify(x), p⟩ = ⟨x, unpatchify(p)⟩
 *   scatter_rows_backward (dsrc, dw)        of  L = Σ dout ⊙ scatter_rows(src, w) (the MoE
 *                                               combine: top-2 items, one without an expert)
 *   attention_backward (dq, dk, dv)         of  L = Σ w ⊙ attention(q, k, v) (grouped-query:
 *                                               4 query heads over 2 KV groups)
 * The engine computes in float, so the tolerance is float's (1e-4 of the gradient's scale); the
 * differences are taken in double with a step small enough that their own error is far below it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "saec/device.h"
#include "saec/ops.h"
#include "test_random.h"

#define STEP 1e-5 /* the finite-difference step (inputs are O(1)) */
#define TOL 1e-4

static saec_dev *cpu;

/* The central difference of loss(args) in p[i], where p is one of the tensors args points at. */
static double central_diff(double *p, int i, double (*loss)(const void *args), const void *args) {
    const double keep = p[i];
    p[i] = keep + STEP;
    const double up = loss(args);
    p[i] = keep - STEP;
    const double down = loss(args);
    p[i] = keep;
    return (up - down) / (2 * STEP);
}

/* A finite-difference gradient against the engine's: |fd − got| <= TOL·(|fd| + typical) where
   typical is the mean |fd| of the tensor (a gradient element near 0 is judged on the tensor's
   scale). */
static void check_grad(const char *what, const double *fd, const float *got, int64_t n) {
    double typical = 0;
    for (int64_t i = 0; i < n; i++)
        typical += fabs(fd[i]) / (double)n;
    for (int64_t i = 0; i < n; i++) {
        CHECK(fabs(fd[i] - got[i]) <= TOL * (fabs(fd[i]) + typical),
              "%s[%lld]: engine %.9g, finite differences %.9g", what, (long long)i, got[i], fd[i]);
    }
}

/* ---- LayerNorm ---- */

enum { LN_ROWS = 5, LN_D = 7 };
#define LN_EPS 1e-5

/* Σ w ⊙ LayerNorm(x) in double. */
static double ln_loss(const double *x, const double *gamma, const double *beta, const double *w) {
    double L = 0;
    for (int r = 0; r < LN_ROWS; r++) {
        double mu = 0, var = 0;
        for (int c = 0; c < LN_D; c++)
            mu += x[r * LN_D + c] / LN_D;
        for (int c = 0; c < LN_D; c++)
            var += (x[r * LN_D + c] - mu) * (x[r * LN_D + c] - mu) / LN_D;
        for (int c = 0; c < LN_D; c++)
            L += w[r * LN_D + c] *
                 ((x[r * LN_D + c] - mu) / sqrt(var + LN_EPS) * gamma[c] + beta[c]);
    }
    return L;
}

typedef struct {
    const double *x, *gamma, *beta, *w;
} ln_args;
static double ln_loss_of(const void *a) {
    const ln_args *l = a;
    return ln_loss(l->x, l->gamma, l->beta, l->w);
}

static void test_layernorm(void) {
    set_ctx("layernorm_backward vs finite differences");
    float xf[LN_ROWS * LN_D], gf[LN_D], bf[LN_D], wf[LN_ROWS * LN_D], y[LN_ROWS * LN_D];
    float mean[LN_ROWS], rstd[LN_ROWS], dx[LN_ROWS * LN_D], dg[LN_D], db[LN_D];
    double x[LN_ROWS * LN_D], g[LN_D], b[LN_D], w[LN_ROWS * LN_D];
    for (int i = 0; i < LN_ROWS * LN_D; i++)
        x[i] = xf[i] = rng_sym() * 2 + 0.5f, w[i] = wf[i] = rng_sym();
    for (int c = 0; c < LN_D; c++)
        g[c] = gf[c] = 1 + rng_sym() / 2, b[c] = bf[c] = rng_sym();
    OK(SAEC_OP(cpu, layernorm, xf, gf, bf, LN_ROWS, LN_D, (float)LN_EPS, y, mean, rstd));
    OK(SAEC_OP(cpu, layernorm_backward, wf, xf, gf, mean, rstd, LN_ROWS, LN_D, 0, dx, dg, db));
    double fdx[LN_ROWS * LN_D], fdg[LN_D], fdb[LN_D];
    const ln_args args = {x, g, b, w};
    for (int i = 0; i < LN_ROWS * LN_D; i++)
        fdx[i] = central_diff(x, i, ln_loss_of, &args);
    for (int c = 0; c < LN_D; c++)
        fdg[c] = central_diff(g, c, ln_loss_of, &args),
        fdb[c] = central_diff(b, c, ln_loss_of, &args);
    check_grad("dx", fdx, dx, LN_ROWS * LN_D);
    check_grad("dgamma", fdg, dg, LN_D);
    check_grad("dbeta", fdb, db, LN_D);
}

/* ---- SwiGLU ---- */

enum { SW_N = 41 };

/* One element's term of L without its weight: SiLU(a)·b. */
static double swiglu_term(double a, double b) { return a / (1 + exp(-a)) * b; }

static void test_swiglu(void) {
    set_ctx("swiglu_backward vs finite differences");
    float a[SW_N], b[SW_N], w[SW_N], da[SW_N], db[SW_N];
    for (int i = 0; i < SW_N; i++)
        a[i] = rng_sym() * 6, b[i] = rng_sym() * 2, w[i] = rng_sym();
    OK(SAEC_OP(cpu, swiglu_backward, a, b, w, SW_N, da, db));
    /* L = Σ w silu(a) b: element i's terms alone depend on a[i], b[i] */
    double fda[SW_N], fdb[SW_N];
    for (int i = 0; i < SW_N; i++) {
        fda[i] =
            w[i] * (swiglu_term(a[i] + STEP, b[i]) - swiglu_term(a[i] - STEP, b[i])) / (2 * STEP);
        fdb[i] =
            w[i] * (swiglu_term(a[i], b[i] + STEP) - swiglu_term(a[i], b[i] - STEP)) / (2 * STEP);
    }
    check_grad("da", fda, da, SW_N);
    check_grad("db", fdb, db, SW_N);
}

/* ---- the patch loss ---- */

enum { PL_N = 9, PL_V = 5 };
#define W_MASKED 1.0
#define W_VISIBLE ((double)0.1f) /* the engine takes float weights */

static double patch_loss_ref(const double *pred, const float *target, const uint8_t *mask) {
    double sum[2] = {0, 0}, count[2] = {0, 0};
    for (int r = 0; r < PL_N; r++) {
        for (int c = 0; c < PL_V; c++)
            sum[mask[r] != 0] += (pred[r * PL_V + c] - target[r * PL_V + c]) *
                                 (pred[r * PL_V + c] - target[r * PL_V + c]);
        count[mask[r] != 0] += 1;
    }
    return W_MASKED * sum[1] / count[1] + W_VISIBLE * sum[0] / count[0];
}

typedef struct {
    const double *pred;
    const float *target;
    const uint8_t *mask;
} pl_args;
static double pl_loss_of(const void *a) {
    const pl_args *l = a;
    return patch_loss_ref(l->pred, l->target, l->mask);
}

static void test_patch_loss(void) {
    set_ctx("patch_loss grad vs finite differences");
    float pf[PL_N * PL_V], target[PL_N * PL_V], grad[PL_N * PL_V];
    double pred[PL_N * PL_V], loss[3], fd[PL_N * PL_V];
    const uint8_t mask[PL_N] = {1, 0, 1, 1, 0, 1, 1, 1, 0};
    for (int i = 0; i < PL_N * PL_V; i++)
        pred[i] = pf[i] = rng_sym(), target[i] = rng_sym();
    OK(SAEC_OP(cpu, patch_loss, pf, target, mask, PL_N, PL_V, (float)W_MASKED, (float)W_VISIBLE,
               loss, grad));
    CHECK(fabs(loss[0] - patch_loss_ref(pred, target, mask)) <= 1e-12 * loss[0],
          "loss %.17g, reference %.17g", loss[0], patch_loss_ref(pred, target, mask));
    const pl_args args = {pred, target, mask};
    for (int i = 0; i < PL_N * PL_V; i++)
        fd[i] = central_diff(pred, i, pl_loss_of, &args);
    check_grad("grad", fd, grad, PL_N * PL_V);
}

/* ---- patches: unpatchify is patchify's adjoint, hence its backward ---- */

static void test_patches(void) {
    set_ctx("unpatchify as the adjoint of patchify (B=2 C=3 H=9 W=6 P=2)");
    enum { B = 2, C = 3, H = 9, W = 6, P = 2, NP = B * (H / P) * (W / P) * C * P * P };
    float x[B * C * H * W], p[NP], px[NP], up[B * C * H * W];
    for (int i = 0; i < B * C * H * W; i++)
        x[i] = rng_sym();
    for (int i = 0; i < NP; i++)
        p[i] = rng_sym();
    OK(SAEC_OP(cpu, patchify, x, B, C, H, W, P, px));
    OK(SAEC_OP(cpu, unpatchify, p, B, C, H, W, P, up));
    double lhs = 0, rhs = 0, mag = 0;
    for (int i = 0; i < NP; i++)
        lhs += (double)px[i] * p[i], mag += fabs((double)px[i] * p[i]);
    for (int i = 0; i < B * C * H * W; i++)
        rhs += (double)x[i] * up[i];
    CHECK(fabs(lhs - rhs) <= 1e-12 * mag, "<patchify(x), p> = %.17g but <x, unpatchify(p)> = %.17g",
          lhs, rhs);
}

/* ---- the MoE combine: scatter_rows and its backward ---- */

enum { CT = 6, CR = 2, CD = 5 }; /* tokens, items per token, width */

/* Σ dout ⊙ scatter_rows(src, w) in double: token t sums w_i·src[inv_i] over its items. */
typedef struct {
    const double *src, *w, *dout;
    const int32_t *inv;
} combine_args;
static double combine_loss(const void *a) {
    const combine_args *c = a;
    double L = 0;
    for (int i = 0; i < CT * CR; i++)
        if (c->inv[i] >= 0)
            for (int k = 0; k < CD; k++)
                L += c->dout[(i / CR) * CD + k] * c->w[i] * c->src[c->inv[i] * CD + k];
    return L;
}

static void test_combine(void) {
    set_ctx("scatter_rows_backward vs finite differences (6 tokens, top-2, one item dropped)");
    /* the sorted position of each item; item 7 has no expert */
    const int32_t inv[CT * CR] = {3, 0, 5, 1, 9, 2, 4, -1, 6, 10, 8, 7};
    enum { NS = 11 }; /* sorted rows */
    float srcf[NS * CD], wf[CT * CR], doutf[CT * CD], dsrc[NS * CD], dw[CT * CR];
    double src[NS * CD], w[CT * CR], dout[CT * CD], fds[NS * CD], fdw[CT * CR];
    for (int i = 0; i < NS * CD; i++)
        src[i] = srcf[i] = rng_sym();
    for (int i = 0; i < CT * CR; i++)
        w[i] = wf[i] = 0.2f + (float)rng_unit();
    for (int i = 0; i < CT * CD; i++)
        dout[i] = doutf[i] = rng_sym();
    OK(SAEC_OP(cpu, scatter_rows_backward, doutf, srcf, inv, wf, CT, CR, CD, dsrc, dw));
    const combine_args args = {src, w, dout, inv};
    for (int i = 0; i < NS * CD; i++)
        fds[i] = central_diff(src, i, combine_loss, &args);
    for (int i = 0; i < CT * CR; i++)
        fdw[i] = central_diff(w, i, combine_loss, &args);
    check_grad("dsrc", fds, dsrc, NS * CD);
    check_grad("dw", fdw, dw, CT * CR);
}

/* ---- grouped-query attention ---- */

enum { AB = 2, AL = 5, AHQ = 4, AG = 2, ADH = 3 };
enum { AQ = AB * AL * AHQ * ADH, AKV = AB * AL * AG * ADH }; /* q, out; k, v (contiguous) */

/* Σ w ⊙ attention(q, k, v) in double: head h reads group h mod AG. */
static double attn_loss(const double *q, const double *k, const double *v, const double *w) {
    const double scale = 1 / sqrt((double)ADH);
    double L = 0;
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AHQ; h++)
            for (int i = 0; i < AL; i++) {
                const double *qi = q + ((b * AL + i) * AHQ + h) * ADH;
                double sc[AL], mx = -INFINITY, l = 0;
                for (int j = 0; j < AL; j++) {
                    const double *kj = k + ((b * AL + j) * AG + h % AG) * ADH;
                    sc[j] = 0;
                    for (int c = 0; c < ADH; c++)
                        sc[j] += scale * qi[c] * kj[c];
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j < AL; j++)
                    l += sc[j] = exp(sc[j] - mx);
                for (int c = 0; c < ADH; c++)
                    for (int j = 0; j < AL; j++)
                        L += w[((b * AL + i) * AHQ + h) * ADH + c] * sc[j] / l *
                             v[((b * AL + j) * AG + h % AG) * ADH + c];
            }
    return L;
}

typedef struct {
    const double *q, *k, *v, *w;
} attn_args;
static double attn_loss_of(const void *a) {
    const attn_args *t = a;
    return attn_loss(t->q, t->k, t->v, t->w);
}

static void test_attention(void) {
    set_ctx("attention_backward vs finite differences (B=2 L=5 Hq=4 G=2 dh=3)");
    float qf[AQ], kf[AKV], vf[AKV], wf[AQ], out[AQ], lse[AB * AHQ * AL], dq[AQ], dk[AKV], dv[AKV];
    double q[AQ], k[AKV], v[AKV], w[AQ], fdq[AQ], fdk[AKV], fdv[AKV];
    for (int i = 0; i < AQ; i++)
        q[i] = qf[i] = rng_sym() * 2, w[i] = wf[i] = rng_sym();
    for (int i = 0; i < AKV; i++)
        k[i] = kf[i] = rng_sym() * 2, v[i] = vf[i] = rng_sym();
    const float scale = 1.0f / sqrtf((float)ADH);
    OK(SAEC_OP(cpu, attention, qf, kf, vf, AHQ * ADH, AG * ADH, AB, AL, AHQ, AG, ADH, scale, out,
               lse));
    OK(SAEC_OP(cpu, attention_backward, qf, kf, vf, AHQ * ADH, AG * ADH, out, wf, lse, AB, AL, AHQ,
               AG, ADH, scale, dq, dk, dv));
    const attn_args args = {q, k, v, w};
    for (int i = 0; i < AQ; i++)
        fdq[i] = central_diff(q, i, attn_loss_of, &args);
    for (int i = 0; i < AKV; i++)
        fdk[i] = central_diff(k, i, attn_loss_of, &args),
        fdv[i] = central_diff(v, i, attn_loss_of, &args);
    check_grad("dq", fdq, dq, AQ);
    check_grad("dk", fdk, dk, AKV);
    check_grad("dv", fdv, dv, AKV);
}

int main(void) {
    rng_seed(0x5AEC7F0A12345601ull);
    if (saec_dev_open("cpu", &cpu) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(cpu): %s\n", saec_error_message());
        return 1;
    }
    test_layernorm();
    test_swiglu();
    test_patch_loss();
    test_patches();
    test_combine();
    test_attention();
    saec_dev_close(cpu);
    return check_summary("test_gradcheck_transformer");
}
