/* The op cases of the reduction family: the losses and reductions (kernels/cpu/cpu_reduce.c,
 * kernels/cuda/cuda_reduce.cu: recon_loss_grad, sum_squares, count_positive), the optimizer and
 * decoder constraint (cpu_optim.c, cuda_optim.cu: project_rows_grad, normalize_rows, adamw) and
 * the data-parallel pieces (recon_grad, geometric_median). Shapes: 1 and 0 rows, odd sizes, a
 * million-element reduction, misaligned pointers (the CUDA scalar paths), zero rows (cos 0, no
 * projection, no normalisation), SST = 0 (gradient 0), accumulate into a start value, zeros that
 * are not positive, AdamW over several steps with clipping active, inactive and disabled
 * (grad_sumsq NULL) and beta1 = 0, Weiszfeld from the mean (0 iterations: the mean) on
 * off-centre data, with far outliers (against the optimum) and on collinear points (the 1-D
 * median). Device scalars (stats, sums, counts, squared norms) are doubles (OP_F64).
 * Several cases give each element its own tolerance through the reference's scale (atol 0,
 * rtol 1: the scale is the tolerance), where the old tests had one per output or per shape.
 * The fused decoder update saec_cuda_adamw_unit_rows is CUDA-only and no op of SAEC_OP_LIST:
 * it stays hand-written (test_gpu_ops group adamw_unit_rows, bench_ops adamw_unit_rows_fused).
 * The CUDA reductions and row ops promise determinism (fixed partials and butterflies): their
 * cases repeat bit for bit. See op_case.h.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op_case.h"

static op_shape vshape(int64_t v0, int64_t v1, int64_t v2, int64_t v3, int64_t v4) {
    op_shape s = {.v = {v0, v1, v2, v3, v4}};
    return s;
}

static op_buf f32(const char *name, int64_t count, op_buf_role role) {
    return op_buf_of(name, OP_F32, count, role);
}

/* got [n] against want [n] within atol + rtol |want| (why: the first element off). */
static int close_f(const char *name, const float *got, const float *want, int64_t n, double atol,
                   double rtol, char *why, size_t cap) {
    for (int64_t i = 0; i < n; i++) {
        const double g = got[i], w = want[i];
        if (!(fabs(g - w) <= atol + rtol * fabs(w)) && g != w) {
            snprintf(why, cap, "%s [%lld] of %lld: %.9g, CPU %.9g (atol %.0e rtol %.0e)", name,
                     (long long)i, (long long)n, g, w, atol, rtol);
            return 0;
        }
    }
    return 1;
}

static int close_d(const char *name, const double *got, const double *want, int64_t n, double atol,
                   double rtol, char *why, size_t cap) {
    for (int64_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i])) && got[i] != want[i]) {
            snprintf(why, cap, "%s [%lld]: %.17g, CPU %.17g (atol %.0e rtol %.0e)", name,
                     (long long)i, got[i], want[i], atol, rtol);
            return 0;
        }
    return 1;
}

/* ---- recon_loss_grad: stats[3] = {SSE, SST, Σ cos}, grad[n, d] = −2 gs (x − x̂) / SST ----
   v: n, d, with grad, special (0: none; 1: x row 3 and x̂ row 5 zero; 2: x̂ row 0 zero;
   3: every x row equal to mu: SST = 0, gradient 0); f: grad_scale.
   Buffers: x, xhat, mu, stats (double), grad. */
enum { RL_N, RL_D, RL_GRAD, RL_SPECIAL };

static int recon_loss_grad_shapes(op_shape *out, int cap) {
    static const int64_t cpu[][2] = {{11, 37}, {1, 1}, {300, 131}};
    int n = 0;
    for (size_t i = 0; i < sizeof cpu / sizeof cpu[0]; i++)
        for (int g = 0; g < 2 && n < cap; g++) {
            out[n] = vshape(cpu[i][0], cpu[i][1], g, cpu[i][0] > 5 ? 1 : 0, 0);
            out[n++].f[0] = 0.7f;
        }
    const op_shape gpu[] = {vshape(37, 41, 1, 0, 0), vshape(64, 64, 1, 2, 0),
                            vshape(64, 64, 0, 0, 0), vshape(3, 8, 1, 3, 0),
                            vshape(1, 1, 1, 0, 0),   vshape(513, 2304, 1, 0, 0),
                            vshape(64, 64, 1, 1, 0), /* misaligned (below): scalar path */
                            vshape(0, 7, 1, 0, 0)};  /* n = 0: stats 0 */
    for (size_t i = 0; i < sizeof gpu / sizeof gpu[0] && n < cap; i++) {
        out[n] = gpu[i];
        out[n].f[0] = 0.5f;
        out[n++].misalign = i == 6;
    }
    return n;
}

static void recon_loss_grad_bufs(const op_shape *s, op_buf *b) {
    const int64_t nd = s->v[RL_N] * s->v[RL_D];
    b[0] = f32("x", nd, OP_BUF_IN);
    b[1] = f32("xhat", nd, OP_BUF_IN);
    b[2] = f32("mu", s->v[RL_D], OP_BUF_IN);
    b[3] = op_out("stats", OP_F64, 3);
    b[4] = s->v[RL_GRAD] ? op_out("grad", OP_F32, nd) : op_absent("grad");
}

static void recon_loss_grad_tweak(const op_shape *s, void *const *host) {
    const int64_t n = s->v[RL_N], d = s->v[RL_D];
    float *x = host[0], *xh = host[1];
    const float *mu = host[2];
    switch (s->v[RL_SPECIAL]) {
    case 1: /* cos with a zero x row, and with a zero x̂ row: 0 */
        memset(x + 3 * d, 0, (size_t)d * sizeof *x);
        memset(xh + 5 * d, 0, (size_t)d * sizeof *xh);
        break;
    case 2: memset(xh, 0, (size_t)d * sizeof *xh); break;
    case 3:
        for (int64_t i = 0; i < n * d; i++)
            x[i] = mu[i % d];
        break;
    }
}

static int recon_loss_grad_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, recon_loss_grad, b[0], b[1], b[2], s->v[RL_N], s->v[RL_D], s->f[0], b[3],
                   b[4]);
}

/* The statistics and the gradient in double (want[ws], want[wg]). Tolerances (rtol 1e-6 of the
   scale): SSE and SST within 1e-10 of themselves and Σ cos within 1e-10 n (double sums, only the
   order differs: scale 1e-4 |·|, 1e-4 n), the gradient within 1e-6 |g| + 1e-12. */
static void recon_stats(const float *x, const float *xh, const float *mu, int64_t n, int64_t d,
                        float gs, double *st, double *sc, double *g, double *gsc) {
    double sse = 0, sst = 0, cos_sum = 0;
    for (int64_t r = 0; r < n; r++) {
        double dot = 0, xx = 0, hh = 0;
        for (int64_t c = 0; c < d; c++) {
            const double a = x[r * d + c], h = xh[r * d + c];
            sse += (a - h) * (a - h);
            sst += (a - mu[c]) * (a - mu[c]);
            dot += a * h, xx += a * a, hh += h * h;
        }
        cos_sum += (xx > 0 && hh > 0) ? dot / sqrt(xx * hh) : 0.0;
    }
    st[0] = sse, st[1] = sst, st[2] = cos_sum;
    sc[0] = 1e-4 * sse, sc[1] = 1e-4 * sst, sc[2] = 1e-4 * (double)n;
    for (int64_t i = 0; g && i < n * d; i++) {
        g[i] = sst > 0 ? -2.0 * gs * ((double)x[i] - xh[i]) / sst : 0.0;
        gsc[i] = fabs(g[i]) + 1e-6;
    }
}

static void recon_loss_grad_naive(const op_shape *s, const void *const *in, double *const *want,
                                  double *const *scale) {
    recon_stats(in[0], in[1], in[2], s->v[RL_N], s->v[RL_D], s->f[0], want[3], scale[3], want[4],
                scale[4]);
}

static void recon_loss_grad_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "recon_loss_grad n=%lld d=%lld grad=%d special=%d misalign=%d",
             (long long)s->v[RL_N], (long long)s->v[RL_D], (int)s->v[RL_GRAD],
             (int)s->v[RL_SPECIAL], s->misalign);
}

/* the loss of a batch: x, x̂ [n, d], gradient written */
static op_shape recon_loss_grad_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    op_shape s = vshape(n, d, 1, 0, 0);
    s.f[0] = 1.0f;
    return s;
}

static saec_op_floor recon_loss_grad_floor(const op_shape *s) {
    return saec_op_floor_recon_loss_grad((double)s->v[RL_N], (double)s->v[RL_D],
                                         (double)s->v[RL_GRAD]);
}

const op_case op_case_recon_loss_grad = {.op = "recon_loss_grad",
                                         .group = "recon_loss_grad",
                                         .n_bufs = 5,
                                         OP_CASE_FUNCS(recon_loss_grad),
                                         .tweak = recon_loss_grad_tweak,
                                         .atol = 0,
                                         .rtol = 1e-6,
                                         .atol_be = 1e-12,
                                         .rtol_be = 1e-6,
                                         .deterministic = 1,
                                         .bench_name = "recon_loss_grad"};

/* ---- recon_grad: grad[n, d] = −2 gs (x − x̂) / stats[SST], from given statistics ----
   v: n, d, SST (0: Σ x², 1: 3.25 Σ x² (three ranks' worth), 2: 0.5 Σ x², 3: 0: gradient 0);
   f: grad_scale. SSE and Σ cos are NaN: not used. Buffers: x, xhat, stats (double), grad.
   n = 0 passes x, x̂ and grad as NULL: nothing to do. Bit for bit the CPU op on other backends
   (one coefficient, one multiply of a rounded difference). */
enum { RG_N, RG_D, RG_SST };

static int recon_grad_shapes(op_shape *out, int cap) {
    static const int64_t cpu[][2] = {{11, 37}, {1, 1}, {300, 131}};
    static const int cpu_sst[] = {0, 1, 3};
    int n = 0;
    for (size_t i = 0; i < sizeof cpu / sizeof cpu[0]; i++)
        for (int k = 0; k < 3 && n < cap; k++) {
            out[n] = vshape(cpu[i][0], cpu[i][1], cpu_sst[k], 0, 0);
            out[n++].f[0] = 0.7f;
        }
    const op_shape gpu[] = {vshape(37, 41, 0, 0, 0),    vshape(64, 64, 1, 0, 0),
                            vshape(64, 64, 2, 0, 0), /* misaligned (below): scalar path */
                            vshape(3, 8, 3, 0, 0),      vshape(1, 1, 0, 0, 0),
                            vshape(513, 2304, 0, 0, 0), vshape(0, 4, 0, 0, 0)};
    for (size_t i = 0; i < sizeof gpu / sizeof gpu[0] && n < cap; i++) {
        out[n] = gpu[i];
        out[n].f[0] = 0.5f;
        out[n++].misalign = i == 2;
    }
    return n;
}

static void recon_grad_bufs(const op_shape *s, op_buf *b) {
    const int64_t nd = s->v[RG_N] * s->v[RG_D];
    const int none = s->v[RG_N] == 0;
    b[0] = none ? op_absent("x") : f32("x", nd, OP_BUF_IN);
    b[1] = none ? op_absent("xhat") : f32("xhat", nd, OP_BUF_IN);
    b[2] = op_buf_of("stats", OP_F64, 3, OP_BUF_IN);
    b[3] = none ? op_absent("grad") : op_out("grad", OP_F32, nd);
}

static void recon_grad_tweak(const op_shape *s, void *const *host) {
    static const double factor[] = {1.0, 3.25, 0.5, 0.0};
    const float *x = host[0];
    double *stats = host[2], sst = 0;
    for (int64_t i = 0; x && i < s->v[RG_N] * s->v[RG_D]; i++)
        sst += (double)x[i] * x[i];
    stats[0] = stats[2] = NAN;
    stats[1] = factor[s->v[RG_SST]] * sst;
}

static int recon_grad_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, recon_grad, b[0], b[1], s->v[RG_N], s->v[RG_D], s->f[0], b[2], b[3]);
}

/* within 1e-6 |g| + 1e-12 (rtol 1e-6 of the scale) */
static void recon_grad_naive(const op_shape *s, const void *const *in, double *const *want,
                             double *const *scale) {
    const float *x = in[0], *xh = in[1];
    const double sst = ((const double *)in[2])[1];
    for (int64_t i = 0; i < s->v[RG_N] * s->v[RG_D]; i++) {
        want[3][i] = sst > 0 ? -2.0 * s->f[0] * ((double)x[i] - xh[i]) / sst : 0.0;
        scale[3][i] = fabs(want[3][i]) + 1e-6;
    }
}

static void recon_grad_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float z[4] = {0};
    double st[3] = {1, 1, 1};
    rejected(SAEC_OP(dev, recon_grad, z, z, -1, 4, 1.0f, st, z), "n < 0");
    rejected(SAEC_OP(dev, recon_grad, z, z, 1, 4, 1.0f, NULL, z), "stats NULL");
    rejected(SAEC_OP(dev, recon_grad, z, z, 1, 4, 1.0f, st, NULL), "grad NULL");
}

static void recon_grad_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "recon_grad n=%lld d=%lld sst=%d misalign=%d", (long long)s->v[RG_N],
             (long long)s->v[RG_D], (int)s->v[RG_SST], s->misalign);
}

static op_shape recon_grad_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    op_shape s = vshape(n, d, 0, 0, 0);
    s.f[0] = 1.0f;
    return s;
}

static saec_op_floor recon_grad_floor(const op_shape *s) {
    return saec_op_floor_recon_grad((double)s->v[RG_N], (double)s->v[RG_D]);
}

const op_case op_case_recon_grad = {.op = "recon_grad",
                                    .group = "recon_grad",
                                    .n_bufs = 4,
                                    OP_CASE_FUNCS(recon_grad),
                                    .tweak = recon_grad_tweak,
                                    .atol = 0,
                                    .rtol = 1e-6,
                                    .exact_be = 1,
                                    .bad_args = recon_grad_bad_args,
                                    .bench_name = "recon_grad"};

/* ---- recon_grad after recon_loss_grad, on one backend: from that op's own statistics it
   writes that op's gradient bit for bit (the check is compare_be's, on both backends; the CPU
   tier keeps it in test_cpu_ops.c). v: n, d (as recon_loss_grad); f: grad_scale.
   Buffers: x, xhat, mu, stats, grad of recon_loss_grad, grad of recon_grad. */
static int recon_grad_after_loss_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][2] = {{11, 37}, {1, 1},   {300, 131},
                                       {37, 41}, {64, 64}, {513, 2304}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && n < cap; i++) {
        out[n] = vshape(sizes[i][0], sizes[i][1], 1, 0, 0);
        out[n].f[0] = i < 3 ? 0.7f : 0.5f;
        out[n++].misalign = sizes[i][0] == 64;
    }
    return n;
}

static void recon_grad_after_loss_bufs(const op_shape *s, op_buf *b) {
    recon_loss_grad_bufs(s, b);
    b[4].name = "grad of recon_loss_grad";
    b[5] = op_out("grad of recon_grad", OP_F32, s->v[RL_N] * s->v[RL_D]);
}

static int recon_grad_after_loss_call(saec_dev *dev, const op_shape *s, void *const *b) {
    const int rc = recon_loss_grad_call(dev, s, b);
    if (rc != SAEC_OK) return rc;
    return SAEC_OP(dev, recon_grad, b[0], b[1], s->v[RL_N], s->v[RL_D], s->f[0], b[3], b[5]);
}

static void recon_grad_after_loss_naive(const op_shape *s, const void *const *in,
                                        double *const *want, double *const *scale) {
    recon_loss_grad_naive(s, in, want, scale);
    memcpy(want[5], want[4], (size_t)(s->v[RL_N] * s->v[RL_D]) * sizeof(double));
    memcpy(scale[5], scale[4], (size_t)(s->v[RL_N] * s->v[RL_D]) * sizeof(double));
}

/* on each backend the two gradients bit for bit; the other backend's statistics and gradient
   against the CPU's as recon_loss_grad's case (1e-10 relative; 1e-6 |g| + 1e-12) */
static int recon_grad_after_loss_compare(const op_shape *s, const void *const *in,
                                         const void *const *cpu, const void *const *other,
                                         char *why, size_t cap) {
    (void)in;
    const int64_t nd = s->v[RL_N] * s->v[RL_D];
    for (int be = 0; be < 2; be++) {
        const void *const *o = be ? other : cpu;
        if (memcmp(o[4], o[5], (size_t)nd * sizeof(float)) != 0) {
            snprintf(why, cap,
                     "%s: recon_grad from recon_loss_grad's statistics differs from "
                     "its gradient (bitwise)",
                     be ? "other backend" : "CPU");
            return 0;
        }
    }
    return close_d("stats", other[3], cpu[3], 3, 1e-12, 1e-10, why, cap) &&
           close_f("grad", other[5], cpu[5], nd, 1e-12, 1e-6, why, cap);
}

static void recon_grad_after_loss_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "recon_grad after recon_loss_grad n=%lld d=%lld misalign=%d",
             (long long)s->v[RL_N], (long long)s->v[RL_D], s->misalign);
}

const op_case op_case_recon_grad_after_loss = {.op = "recon_grad",
                                               .group = "recon_grad",
                                               .n_bufs = 6,
                                               .shapes = recon_grad_after_loss_shapes,
                                               .bufs = recon_grad_after_loss_bufs,
                                               .call = recon_grad_after_loss_call,
                                               .naive = recon_grad_after_loss_naive,
                                               .label = recon_grad_after_loss_label,
                                               .atol = 0,
                                               .rtol = 1e-6,
                                               .compare_be = recon_grad_after_loss_compare};

/* ---- sum_squares: out = [accumulate ? out : 0] + Σ x²; count_positive: + #{x > 0} ----
   v: n, accumulate. Buffers: x, out (double, starting at 2.5 resp. 3.0). Every 7th x is 0 (not
   positive). The sum within 1e-12 of itself (double sums); the count exact. */
static int sum_squares_shapes(op_shape *out, int cap) {
    static const int64_t sizes[] = {0, 1, 1001, 10007, 100003, (1 << 20) + 5};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int acc = 0; acc < 2 && n < cap; acc++)
            out[n++] = vshape(sizes[i], acc, 0, 0, 0);
    for (int acc = 0; acc < 2 && n < cap; acc++) { /* misaligned: the scalar path */
        out[n] = vshape(10007, acc, 0, 0, 0);
        out[n++].misalign = 1;
    }
    return n;
}

static void sum_squares_bufs(const op_shape *s, op_buf *b) {
    b[0] = f32("x", s->v[0], OP_BUF_IN);
    b[1] = op_buf_of("out (sum of squares)", OP_F64, 1, OP_BUF_INOUT);
}

static void reduce_inputs(const op_shape *s, void *const *host, double start) {
    float *x = host[0];
    for (int64_t i = 0; i < s->v[0]; i += 7)
        x[i] = 0.0f;
    *(double *)host[1] = start; /* read only when accumulating */
}

static void sum_squares_tweak(const op_shape *s, void *const *host) { reduce_inputs(s, host, 2.5); }

static int sum_squares_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, sum_squares, b[0], s->v[0], (int)s->v[1], b[1]);
}

static void sum_squares_naive(const op_shape *s, const void *const *in, double *const *want,
                              double *const *scale) {
    const float *x = in[0];
    double ss = s->v[1] ? *(const double *)in[1] : 0.0;
    (void)scale;
    for (int64_t i = 0; i < s->v[0]; i++)
        ss += (double)x[i] * x[i];
    want[1][0] = ss;
}

/* both ops' label: the output's name tells them apart */
static void sum_squares_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "sum_squares/count_positive n=%lld accumulate=%d misalign=%d",
             (long long)s->v[0], (int)s->v[1], s->misalign);
}

/* the squared norm of the decoder's gradient [m, d] (the clip's global norm) */
static op_shape sum_squares_bench(int64_t n, int64_t m, int64_t d) {
    (void)n;
    return vshape(m * d, 0, 0, 0, 0);
}

static saec_op_floor sum_squares_floor(const op_shape *s) {
    return saec_op_floor_sum_squares((double)s->v[0]);
}

const op_case op_case_sum_squares = {.op = "sum_squares",
                                     .group = "sum_squares_count_positive",
                                     .n_bufs = 2,
                                     OP_CASE_FUNCS(sum_squares),
                                     .tweak = sum_squares_tweak,
                                     .atol = 0,
                                     .rtol = 1e-12,
                                     .atol_be = 1e-12,
                                     .rtol_be = 1e-12,
                                     .deterministic = 1,
                                     .bench_name = "sum_squares"};

static int count_positive_shapes(op_shape *out, int cap) { return sum_squares_shapes(out, cap); }

static void count_positive_bufs(const op_shape *s, op_buf *b) {
    sum_squares_bufs(s, b);
    b[1].name = "out (count)";
    b[1].exact = 1;
}

static void count_positive_tweak(const op_shape *s, void *const *host) {
    reduce_inputs(s, host, 3.0);
}

static int count_positive_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, count_positive, b[0], s->v[0], (int)s->v[1], b[1]);
}

static void count_positive_naive(const op_shape *s, const void *const *in, double *const *want,
                                 double *const *scale) {
    const float *x = in[0];
    double count = s->v[1] ? *(const double *)in[1] : 0.0;
    (void)scale;
    for (int64_t i = 0; i < s->v[0]; i++)
        count += x[i] > 0;
    want[1][0] = count;
}

static void count_positive_label(const op_shape *s, char *b, size_t cap) {
    sum_squares_label(s, b, cap);
}

/* L0 of the signed pre-activations [n, m] */
static op_shape count_positive_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return vshape(n * m, 0, 0, 0, 0);
}

static saec_op_floor count_positive_floor(const op_shape *s) {
    return saec_op_floor_count_positive((double)s->v[0]);
}

const op_case op_case_count_positive = {.op = "count_positive",
                                        .group = "sum_squares_count_positive",
                                        .n_bufs = 2,
                                        OP_CASE_FUNCS(count_positive),
                                        .tweak = count_positive_tweak,
                                        .exact_be = 1,
                                        .deterministic = 1,
                                        .bench_name = "count_positive"};

/* ---- geometric_median: Weiszfeld from the mean, iters iterations or until it moves < 1e-6 ----
   v: n, d, iters, data (0: off-centre, x·3 + 0.1·column; 1: rows 0..6 far outliers around 50;
   2: five collinear points c + p u, p = 0, 1, 2, 3, 100), reference (0: the op's iterations in
   double; 1: the optimum, 2000 iterations without the early stop).
   Buffers: x, scratch [n], out [d]. The reference's scale is the tolerance (atol 0, rtol 1):
   1e-4 + 1e-5 |y| after the op's iterations (only the order of sums differs, and rarely whether
   the last iteration runs), 1e-3 + 1e-3 |y| from the optimum, 1e-6 + 1e-6 |y| for the mean
   (0 iterations), 1e-4 from the 1-D median, 1e-7 |y| for one row (the row itself). */
enum { GM_N, GM_D, GM_ITERS, GM_DATA, GM_OPT };

static int geometric_median_shapes(op_shape *out, int cap) {
    const op_shape s[] = {vshape(101, 13, 100, 1, 1), vshape(101, 13, 0, 1, 0),
                          vshape(5, 37, 500, 2, 0),   vshape(1, 9, 10, 0, 0),
                          vshape(500, 17, 50, 0, 0),  vshape(4099, 64, 20, 0, 0),
                          vshape(7, 3, 0, 0, 0),      vshape(1, 5, 10, 0, 0)};
    int n = 0;
    for (size_t i = 0; i < sizeof s / sizeof s[0] && n < cap; i++)
        out[n++] = s[i];
    return n;
}

static void geometric_median_bufs(const op_shape *s, op_buf *b) {
    b[0] = f32("x", s->v[GM_N] * s->v[GM_D], OP_BUF_IN);
    b[1] = f32("scratch", s->v[GM_N], OP_BUF_SCRATCH);
    b[2] = op_out("median", OP_F32, s->v[GM_D]);
}

static void geometric_median_tweak(const op_shape *s, void *const *host) {
    const int64_t n = s->v[GM_N], d = s->v[GM_D];
    float *x = host[0];
    if (s->v[GM_DATA] == 0) {
        for (int64_t i = 0; i < n * d; i++)
            x[i] = x[i] * 3.0f + (float)(i % d) * 0.1f;
    } else if (s->v[GM_DATA] == 1) {
        for (int64_t i = 0; i < 7 * d && i < n * d; i++)
            x[i] = 50.0f + 10.0f * x[i];
    } else { /* c = row 0, u = row 1 normalised */
        static const float pos[5] = {0, 1, 2, 3, 100};
        double un = 0;
        for (int64_t c = 0; c < d; c++)
            un += (double)x[d + c] * x[d + c];
        for (int64_t c = 0; c < d; c++) {
            const float c0 = x[c], u = (float)(x[d + c] / sqrt(un));
            for (int64_t i = 0; i < n && i < 5; i++)
                x[i * d + c] = c0 + pos[i] * u;
        }
    }
}

static int geometric_median_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, geometric_median, b[0], s->v[GM_N], s->v[GM_D], (int)s->v[GM_ITERS], b[1],
                   b[2]);
}

/* Weiszfeld in double from the mean: iters iterations, stopping early as the op does unless
   `optimum` (y [d], next [d] scratch). */
static void weiszfeld(const float *x, int64_t n, int64_t d, int iters, int optimum, double *y,
                      double *next) {
    for (int64_t c = 0; c < d; c++) {
        y[c] = 0;
        for (int64_t i = 0; i < n; i++)
            y[c] += x[i * d + c];
        y[c] /= (double)n;
    }
    for (int it = 0; it < iters; it++) {
        double wsum = 0, move = 0, norm = 0;
        for (int64_t c = 0; c < d; c++)
            next[c] = 0;
        for (int64_t i = 0; i < n; i++) {
            double ss = 0;
            for (int64_t c = 0; c < d; c++)
                ss += (x[i * d + c] - y[c]) * (x[i * d + c] - y[c]);
            const double w = 1.0 / fmax(sqrt(ss), 1e-8);
            wsum += w;
            for (int64_t c = 0; c < d; c++)
                next[c] += w * x[i * d + c];
        }
        for (int64_t c = 0; c < d; c++) {
            next[c] /= wsum;
            move += (next[c] - y[c]) * (next[c] - y[c]);
            norm += next[c] * next[c];
            y[c] = next[c];
        }
        if (!optimum && sqrt(move) <= 1e-6 * sqrt(norm)) break;
    }
}

static void geometric_median_naive(const op_shape *s, const void *const *in, double *const *want,
                                   double *const *scale) {
    const int64_t n = s->v[GM_N], d = s->v[GM_D];
    const int iters = (int)s->v[GM_ITERS], optimum = (int)s->v[GM_OPT];
    const float *x = in[0];
    double *y = want[2], *next = scale[2]; /* scale doubles as scratch until set below */
    if (s->v[GM_DATA] == 2) {              /* the 1-D median: the middle point, row 2 */
        for (int64_t c = 0; c < d; c++)
            y[c] = x[2 * d + c];
    } else {
        weiszfeld(x, n, d, optimum ? 2000 : iters, optimum, y, next);
    }
    for (int64_t c = 0; c < d; c++) {
        const double a = fabs(y[c]);
        scale[2][c] = s->v[GM_DATA] == 2 ? 1e-4
                      : n == 1           ? 1e-7 * a
                      : optimum          ? 1e-3 + 1e-3 * a
                      : iters == 0       ? 1e-6 + 1e-6 * a
                                         : 1e-4 + 1e-5 * a;
    }
}

static void geometric_median_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float z[4] = {0}, sc[2], out[2];
    rejected(SAEC_OP(dev, geometric_median, z, 0, 2, 1, sc, out), "n = 0");
    rejected(SAEC_OP(dev, geometric_median, z, 2, 2, -1, sc, out), "iters < 0");
}

static void geometric_median_label(const op_shape *s, char *b, size_t cap) {
    static const char *data[] = {"off-centre", "outliers", "collinear"};
    snprintf(b, cap, "geometric_median n=%lld d=%lld iters=%d %s%s", (long long)s->v[GM_N],
             (long long)s->v[GM_D], (int)s->v[GM_ITERS], data[s->v[GM_DATA]],
             s->v[GM_OPT] ? " (against the optimum)" : "");
}

/* one iteration over the batch x [n, d] */
static op_shape geometric_median_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    return vshape(n, d, 1, 0, 0);
}

static saec_op_floor geometric_median_floor(const op_shape *s) {
    return saec_op_floor_geometric_median((double)s->v[GM_N], (double)s->v[GM_D],
                                          (double)s->v[GM_ITERS]);
}

const op_case op_case_geometric_median = {.op = "geometric_median",
                                          .group = "geometric_median",
                                          .n_bufs = 3,
                                          OP_CASE_FUNCS(geometric_median),
                                          .tweak = geometric_median_tweak,
                                          .atol = 0,
                                          .rtol = 1,
                                          .atol_be = 0,
                                          .rtol_be = 1,
                                          .bad_args = geometric_median_bad_args,
                                          .deterministic = 1,
                                          .bench_name = "geometric_median_1iter"};

/* ---- project_rows_grad: G[i] -= (⟨G_i, W_i⟩ / ‖W_i‖²) W_i; normalize_rows: W[i] /= ‖W_i‖ ----
   v: m, d, the zero row of W (-1: none): left alone bit for bit (scale 0).
   Buffers: project_rows_grad W, G; normalize_rows W. */
static int project_rows_grad_shapes(op_shape *out, int cap) {
    const op_shape s[] = {vshape(9, 37, 4, 0, 0),    vshape(1, 1, -1, 0, 0),
                          vshape(300, 129, 4, 0, 0), vshape(37, 41, 0, 0, 0),
                          vshape(100, 64, 0, 0, 0),  vshape(3, 2304, 0, 0, 0),
                          vshape(5, 1, 0, 0, 0),     vshape(100, 64, 0, 0, 0), /* misaligned */
                          vshape(0, 5, -1, 0, 0)};
    int n = 0;
    for (size_t i = 0; i < sizeof s / sizeof s[0] && n < cap; i++) {
        out[n] = s[i];
        out[n++].misalign = i == 7;
    }
    return n;
}

static void project_rows_grad_bufs(const op_shape *s, op_buf *b) {
    b[0] = f32("W", s->v[0] * s->v[1], OP_BUF_IN);
    b[1] = f32("G", s->v[0] * s->v[1], OP_BUF_INOUT);
}

static void zero_row_tweak(const op_shape *s, void *const *host) {
    if (s->v[2] >= 0) memset((float *)host[0] + s->v[2] * s->v[1], 0, (size_t)s->v[1] * 4);
}

static int project_rows_grad_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, project_rows_grad, b[0], b[1], s->v[0], s->v[1]);
}

/* row dot products in double: within 1e-6 (|G| + |a W|) + 1e-7 (rtol 1e-6 of the scale) */
static void project_rows_grad_naive(const op_shape *s, const void *const *in, double *const *want,
                                    double *const *scale) {
    const float *W = in[0], *G = in[1];
    const int64_t m = s->v[0], d = s->v[1];
    for (int64_t i = 0; i < m; i++) {
        double gw = 0, ww = 0;
        for (int64_t c = 0; c < d; c++)
            gw += (double)G[i * d + c] * W[i * d + c], ww += (double)W[i * d + c] * W[i * d + c];
        const double a = ww > 0 ? gw / ww : 0.0;
        for (int64_t c = 0; c < d; c++) {
            want[1][i * d + c] = G[i * d + c] - a * W[i * d + c];
            scale[1][i * d + c] = ww > 0 ? fabs(G[i * d + c]) + fabs(a * W[i * d + c]) + 0.1 : 0;
        }
    }
}

static void project_rows_grad_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "project_rows_grad m=%lld d=%lld zero_row=%lld misalign=%d",
             (long long)s->v[0], (long long)s->v[1], (long long)s->v[2], s->misalign);
}

/* the decoder W_dec and its gradient [m, d] */
static op_shape project_rows_grad_bench(int64_t n, int64_t m, int64_t d) {
    (void)n;
    return vshape(m, d, -1, 0, 0);
}

static saec_op_floor project_rows_grad_floor(const op_shape *s) {
    return saec_op_floor_project_rows_grad((double)s->v[0], (double)s->v[1]);
}

const op_case op_case_project_rows_grad = {.op = "project_rows_grad",
                                           .group = "project_normalize",
                                           .n_bufs = 2,
                                           OP_CASE_FUNCS(project_rows_grad),
                                           .tweak = zero_row_tweak,
                                           .atol = 0,
                                           .rtol = 1e-6,
                                           .atol_be = 0,
                                           .rtol_be = 1e-5,
                                           .deterministic = 1,
                                           .bench_name = "project_rows_grad"};

static int normalize_rows_shapes(op_shape *out, int cap) {
    return project_rows_grad_shapes(out, cap);
}

static void normalize_rows_bufs(const op_shape *s, op_buf *b) {
    b[0] = f32("W", s->v[0] * s->v[1], OP_BUF_INOUT);
}

static int normalize_rows_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, normalize_rows, b[0], s->v[0], s->v[1]);
}

/* within 1e-6 |w| + 1e-7 (rtol 1e-6 of the scale); a zero row stays 0 */
static void normalize_rows_naive(const op_shape *s, const void *const *in, double *const *want,
                                 double *const *scale) {
    const float *W = in[0];
    const int64_t m = s->v[0], d = s->v[1];
    for (int64_t i = 0; i < m; i++) {
        double ww = 0;
        for (int64_t c = 0; c < d; c++)
            ww += (double)W[i * d + c] * W[i * d + c];
        for (int64_t c = 0; c < d; c++) {
            want[0][i * d + c] = ww > 0 ? W[i * d + c] / sqrt(ww) : 0.0;
            scale[0][i * d + c] = ww > 0 ? fabs(want[0][i * d + c]) + 0.1 : 0;
        }
    }
}

static void normalize_rows_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "normalize_rows m=%lld d=%lld zero_row=%lld misalign=%d", (long long)s->v[0],
             (long long)s->v[1], (long long)s->v[2], s->misalign);
}

static op_shape normalize_rows_bench(int64_t n, int64_t m, int64_t d) {
    return project_rows_grad_bench(n, m, d);
}

static saec_op_floor normalize_rows_floor(const op_shape *s) {
    return saec_op_floor_normalize_rows((double)s->v[0], (double)s->v[1]);
}

const op_case op_case_normalize_rows = {.op = "normalize_rows",
                                        .group = "project_normalize",
                                        .n_bufs = 1,
                                        OP_CASE_FUNCS(normalize_rows),
                                        .tweak = zero_row_tweak,
                                        .atol = 0,
                                        .rtol = 1e-6,
                                        .atol_be = 0,
                                        .rtol_be = 1e-6,
                                        .deterministic = 1,
                                        .bench_name = "normalize_rows"};

/* ---- adamw: `steps` AdamW steps over n parameters, each with its own gradient ----
   v: n, steps, the first step's number, clip (0: disabled, max_grad_norm 0 and grad_sumsq NULL;
   1: active, ‖g‖ = 2 > 1; 2: inactive, ‖g‖ = 0.5 < 1; 3: active, ‖g‖ = 10 > 1), state (0: m1 =
   m2 = 0; 1: m1 random, m2 = 0.01 |random|); f: lr, weight decay, beta1 (beta2 0.999, eps 1e-8).
   Buffers: param, grad [steps, n], m1, m2, grad_sumsq [steps] (double) or NULL. The reference's
   scale is the tolerance (fp32 state against double: updates are ~lr): param 1e-6 + 1e-6 |p|,
   m1 1e-7 + 1e-5 |m1|, m2 1e-9 + 1e-5 |m2|. Other backends (the CPU's formula and rounding
   order): param 1e-7 + 1e-6 |p|, m1 1e-9 + 1e-6 |m1|, m2 1e-12 + 1e-6 |m2| (compare_be). */
enum { AW_N, AW_STEPS, AW_STEP0, AW_CLIP, AW_STATE };

static op_shape adamw_shape(int64_t n, int64_t steps, int clip, int state, float lr, float wd,
                            float beta1) {
    op_shape s = vshape(n, steps, 1, clip, state);
    s.f[0] = lr, s.f[1] = wd, s.f[2] = beta1;
    return s;
}

static int adamw_shapes(op_shape *out, int cap) {
    int n = 0;
    /* from zero moments, 4 steps: clipping active, inactive, disabled; beta1 = 0 (JumpReLU) */
    static const int cpu_clip[] = {1, 2, 0, 2};
    for (int i = 0; i < 4 && n < cap; i++)
        out[n++] = adamw_shape(1003, 4, cpu_clip[i], 0, 1e-2f, 0.1f, i == 3 ? 0.0f : 0.9f);
    /* from random moments, 3 steps: clipping disabled, active, inactive */
    static const int64_t sizes[] = {10007, 4096, 1};
    static const int gpu_clip[] = {0, 3, 2};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int c = 0; c < 3 && n < cap; c++)
            out[n++] = adamw_shape(sizes[i], 3, gpu_clip[c], 1, 1e-3f, 0.01f, 0.9f);
    if (n < cap) { /* misaligned: the scalar path */
        out[n] = adamw_shape(10007, 2, 3, 1, 1e-3f, 0.01f, 0.9f);
        out[n++].misalign = 1;
    }
    if (n < cap) out[n++] = adamw_shape(0, 1, 1, 1, 1e-3f, 0.01f, 0.9f);
    return n;
}

static const double adamw_sumsq[] = {0.0, 4.0, 0.25, 100.0}; /* by clip */

static void adamw_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[AW_N], steps = s->v[AW_STEPS];
    b[0] = f32("param", n, OP_BUF_INOUT);
    b[1] = f32("grad", steps * n, OP_BUF_IN);
    b[2] = f32("m1", n, OP_BUF_INOUT);
    b[3] = f32("m2", n, OP_BUF_INOUT);
    b[4] =
        s->v[AW_CLIP] ? op_buf_of("grad_sumsq", OP_F64, steps, OP_BUF_IN) : op_absent("grad_sumsq");
}

static void adamw_tweak(const op_shape *s, void *const *host) {
    const int64_t n = s->v[AW_N];
    float *m1 = host[2], *m2 = host[3];
    for (int64_t i = 0; i < n; i++) {
        if (s->v[AW_STATE] == 0) m1[i] = 0.0f;
        m2[i] = s->v[AW_STATE] == 0 ? 0.0f : fabsf(m2[i]) * 0.01f; /* second moments >= 0 */
    }
    for (int64_t t = 0; host[4] && t < s->v[AW_STEPS]; t++)
        ((double *)host[4])[t] = adamw_sumsq[s->v[AW_CLIP]];
}

static saec_adamw_args adamw_args_of(const op_shape *s, int64_t step) {
    saec_adamw_args a = {.lr = s->f[0],
                         .beta1 = s->f[2],
                         .beta2 = 0.999f,
                         .eps = 1e-8f,
                         .weight_decay = s->f[1],
                         .step = step,
                         .max_grad_norm = s->v[AW_CLIP] ? 1.0f : 0.0f};
    return a;
}

static int adamw_call(saec_dev *dev, const op_shape *s, void *const *b) {
    const int64_t n = s->v[AW_N];
    for (int64_t t = 0; t < s->v[AW_STEPS]; t++) {
        const int rc =
            SAEC_OP(dev, adamw, b[0], (const float *)b[1] + t * n, b[2], b[3], n,
                    adamw_args_of(s, s->v[AW_STEP0] + t), b[4] ? (const double *)b[4] + t : NULL);
        if (rc != SAEC_OK) return rc;
    }
    return SAEC_OK;
}

static void adamw_naive(const op_shape *s, const void *const *in, double *const *want,
                        double *const *scale) {
    const int64_t n = s->v[AW_N];
    const float *p0 = in[0], *g = in[1], *m10 = in[2], *m20 = in[3];
    double *p = want[0], *m = want[2], *v = want[3];
    for (int64_t i = 0; i < n; i++)
        p[i] = p0[i], m[i] = m10[i], v[i] = m20[i];
    for (int64_t t = 0; t < s->v[AW_STEPS]; t++) {
        const saec_adamw_args a = adamw_args_of(s, s->v[AW_STEP0] + t);
        const double norm = sqrt(adamw_sumsq[s->v[AW_CLIP]]);
        const double clip =
            a.max_grad_norm > 0 && norm > a.max_grad_norm ? a.max_grad_norm / norm : 1.0;
        const double bc1 = 1 - pow(a.beta1, (double)a.step), bc2 = 1 - pow(a.beta2, (double)a.step);
        for (int64_t i = 0; i < n; i++) {
            const double gi = g[t * n + i] * clip;
            m[i] = a.beta1 * m[i] + (1 - (double)a.beta1) * gi;
            v[i] = a.beta2 * v[i] + (1 - (double)a.beta2) * gi * gi;
            p[i] -= a.lr * (a.weight_decay * p[i] + (m[i] / bc1) / (sqrt(v[i] / bc2) + a.eps));
        }
    }
    for (int64_t i = 0; i < n; i++) {
        scale[0][i] = 1e-6 + 1e-6 * fabs(p[i]);
        scale[2][i] = 1e-7 + 1e-5 * fabs(m[i]);
        scale[3][i] = 1e-9 + 1e-5 * fabs(v[i]);
    }
}

static int adamw_compare(const op_shape *s, const void *const *in, const void *const *cpu,
                         const void *const *other, char *why, size_t cap) {
    (void)in;
    const int64_t n = s->v[AW_N];
    return close_f("param", other[0], cpu[0], n, 1e-7, 1e-6, why, cap) &&
           close_f("m1", other[2], cpu[2], n, 1e-9, 1e-6, why, cap) &&
           close_f("m2", other[3], cpu[3], n, 1e-12, 1e-6, why, cap);
}

static void adamw_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float z[2] = {0};
    saec_adamw_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 0};
    rejected(SAEC_OP(dev, adamw, z, z, z, z, 2, a, NULL), "step < 1");
    a.step = 1;
    a.max_grad_norm = 1.0f;
    rejected(SAEC_OP(dev, adamw, z, z, z, z, 2, a, NULL), "clipping without a norm");
}

static void adamw_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "adamw n=%lld steps=%lld from step %lld clip=%d state=%d lr=%g wd=%g beta1=%g "
             "misalign=%d",
             (long long)s->v[AW_N], (long long)s->v[AW_STEPS], (long long)s->v[AW_STEP0],
             (int)s->v[AW_CLIP], (int)s->v[AW_STATE], s->f[0], s->f[1], s->f[2], s->misalign);
}

/* one step of the decoder's [m, d] parameters, step 10, clipping active */
static op_shape adamw_bench(int64_t n, int64_t m, int64_t d) {
    (void)n;
    op_shape s = adamw_shape(m * d, 1, 1, 1, 1e-4f, 0.0f, 0.9f);
    s.v[AW_STEP0] = 10;
    return s;
}

static saec_op_floor adamw_floor(const op_shape *s) {
    return saec_op_floor_adamw((double)(s->v[AW_N] * s->v[AW_STEPS]));
}

const op_case op_case_adamw = {.op = "adamw",
                               .group = "adamw",
                               .n_bufs = 5,
                               OP_CASE_FUNCS(adamw),
                               .tweak = adamw_tweak,
                               .atol = 0,
                               .rtol = 1,
                               .compare_be = adamw_compare,
                               .bad_args = adamw_bad_args,
                               .deterministic = 1,
                               .bench_name = "adamw"};
