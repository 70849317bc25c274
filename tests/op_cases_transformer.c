/* The op cases of the transformer pieces (kernels/cpu/cpu_transformer.c,
 * kernels/cuda/cuda_transformer.cu): layernorm, layernorm_backward, swiglu, swiglu_backward,
 * patchify, unpatchify, patch_loss, patch_mask. Shapes: MoE-MAE's widths (144, 108; patches of
 * 7×4×4 = 112) and awkward ones (1, odd, past a warp, past the backward's row chunks), n = 0,
 * constant rows (variance 0), in place and aliased outputs, misaligned pointers, images whose
 * size is not a multiple of the patch (41×41), no whole patch, every patch of one kind, no patch
 * kept. See op_case.h. Their gradients against finite differences: test_gradcheck_transformer.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "op_case.h"
#include "saec/hash.h"

static op_buf f32(const char *name, int64_t count, op_buf_role role) {
    return op_buf_of(name, OP_F32, count, role);
}

/* The MoE-MAE batch the benchmarks use: 128 images of 105 tokens (encoder width 144). */
enum { BENCH_IMAGES = 128, BENCH_TOKENS = 105, BENCH_WIDTH = 144 };

/* ---- layernorm: y = (x − mean)·rstd·gamma + beta ----
   v: n, d, with stats (mean, rstd written), in place, constant rows; f: eps.
   Buffers: x, gamma, beta, y, mean, rstd. */
enum { LN_N, LN_D, LN_STATS, LN_INPLACE, LN_CONST };

static const int64_t ln_sizes[][2] = {{1, 1},     {7, 144},  {33, 108}, {5, 37},   {0, 16},
                                      {300, 130}, {2, 1000}, {64, 3},   {257, 144}};

static int layernorm_shapes(op_shape *out, int cap) {
    int n = 0;
    for (size_t i = 0; i < sizeof ln_sizes / sizeof ln_sizes[0]; i++)
        for (int variant = 0; variant < 4 && n < cap; variant++) {
            op_shape s = {
                .v = {ln_sizes[i][0], ln_sizes[i][1], variant != 1, variant == 2, i % 2 == 1},
                .f = {variant == 3 ? 1e-6f : 1e-5f}};
            s.misalign = variant == 3;
            out[n++] = s;
        }
    return n;
}

static void layernorm_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[LN_N], d = s->v[LN_D];
    b[0] = f32("x", n * d, OP_BUF_IN);
    b[1] = f32("gamma", d, OP_BUF_IN);
    b[2] = f32("beta", d, OP_BUF_IN);
    b[3] = s->v[LN_INPLACE] ? op_alias("y (in place)", OP_F32, n * d, OP_BUF_INOUT, 0)
                            : op_out("y", OP_F32, n * d);
    b[4] = s->v[LN_STATS] ? op_out("mean", OP_F32, n) : op_absent("mean");
    b[5] = s->v[LN_STATS] ? op_out("rstd", OP_F32, n) : op_absent("rstd");
}

/* Rows of x shifted by 3 (the mean must be removed before squaring); every third row constant
   when asked (variance 0: rstd = 1/√eps). */
static void layernorm_tweak(const op_shape *s, void *const *host) {
    const int64_t n = s->v[LN_N], d = s->v[LN_D];
    float *x = host[0];
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < d; c++) {
            if (s->v[LN_CONST] && r % 3 == 0)
                x[r * d + c] = 0.625f;
            else
                x[r * d + c] += 3.0f;
        }
}

static int layernorm_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, layernorm, b[0], b[1], b[2], s->v[LN_N], s->v[LN_D], s->f[0], b[3], b[4],
                   b[5]);
}

/* In double from the float inputs; scale: (|x̂| + 1)·|gamma| + |beta| for y (the float error is
   a few ulp of that), |mean| + the row's spread for the mean, rstd for rstd. */
static void layernorm_naive(const op_shape *s, const void *const *in, double *const *want,
                            double *const *scale) {
    const int64_t n = s->v[LN_N], d = s->v[LN_D];
    const float *x = in[0], *gamma = in[1], *beta = in[2];
    for (int64_t r = 0; r < n; r++) {
        double mu = 0, var = 0, spread = 0;
        for (int64_t c = 0; c < d; c++)
            mu += x[r * d + c];
        mu /= (double)d;
        for (int64_t c = 0; c < d; c++) {
            var += (x[r * d + c] - mu) * (x[r * d + c] - mu);
            spread += fabs(x[r * d + c] - mu);
        }
        var /= (double)d;
        const double rs = 1.0 / sqrt(var + (double)s->f[0]);
        for (int64_t c = 0; c < d; c++) {
            const double xhat = (x[r * d + c] - mu) * rs;
            want[3][r * d + c] = xhat * gamma[c] + beta[c];
            scale[3][r * d + c] =
                (fabs(xhat) + 1.0 + fabs(x[r * d + c]) * rs) * fabs(gamma[c]) + fabs(beta[c]);
        }
        if (want[4]) {
            want[4][r] = mu, scale[4][r] = fabs(mu) + spread / (double)d;
            want[5][r] = rs, scale[5][r] = rs;
        }
    }
}

static void layernorm_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    rejected(SAEC_OP(dev, layernorm, x, x, x, 1, 0, 1e-5f, x, NULL, NULL), "d = 0");
    rejected(SAEC_OP(dev, layernorm, x, x, x, -1, 2, 1e-5f, x, NULL, NULL), "n < 0");
    rejected(SAEC_OP(dev, layernorm, x, NULL, x, 1, 2, 1e-5f, x, NULL, NULL), "gamma NULL");
}

static void layernorm_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "layernorm n=%lld d=%lld stats=%d in_place=%d const_rows=%d eps=%g misalign=%d",
             (long long)s->v[LN_N], (long long)s->v[LN_D], (int)s->v[LN_STATS],
             (int)s->v[LN_INPLACE], (int)s->v[LN_CONST], s->f[0], s->misalign);
}

/* The encoder's LayerNorms: every token of a batch, width 144. */
static op_shape layernorm_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {BENCH_IMAGES * BENCH_TOKENS, BENCH_WIDTH, 1, 0, 0}, .f = {1e-5f}};
    return s;
}

static saec_op_floor layernorm_floor(const op_shape *s) {
    return saec_op_floor_layernorm((double)s->v[LN_N], (double)s->v[LN_D]);
}

const op_case op_case_layernorm = {.op = "layernorm",
                                   .group = "layernorm",
                                   .n_bufs = 6,
                                   OP_CASE_FUNCS(layernorm),
                                   .tweak = layernorm_tweak,
                                   .atol = 1e-6,
                                   .rtol = 2e-6,
                                   .atol_be = 1e-6,
                                   .rtol_be = 2e-6,
                                   .deterministic = 1,
                                   .bad_args = layernorm_bad_args,
                                   .bench_name = "layernorm"};

/* ---- layernorm_backward ----
   v: n, d, accumulate, which column sums (0 both, 1 dgamma only, 2 dbeta only, 3 none), dx in
   place of dy. Buffers: dy, x, gamma, mean, rstd, dx, dgamma, dbeta (mean and rstd made from x
   by the tweak, as layernorm writes them). */
enum { LB_N, LB_D, LB_ACC, LB_SUMS, LB_INPLACE };

static int layernorm_backward_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][2] = {{1, 1},     {7, 144}, {33, 108}, {5, 37}, {0, 16},
                                       {700, 144}, {2, 300}, {513, 3},  {65, 33}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int variant = 0; variant < 5 && n < cap; variant++) {
            op_shape s = {.v = {sizes[i][0], sizes[i][1], variant == 1 || variant == 4,
                                variant <= 1 ? 0 : variant - 1, variant == 4}};
            s.misalign = variant == 2;
            out[n++] = s;
        }
    return n;
}

static void layernorm_backward_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[LB_N], d = s->v[LB_D], sums = s->v[LB_SUMS];
    const op_buf_role sum_role = s->v[LB_ACC] ? OP_BUF_INOUT : OP_BUF_OUT;
    b[0] = f32("dy", n * d, OP_BUF_IN);
    b[1] = f32("x", n * d, OP_BUF_IN);
    b[2] = f32("gamma", d, OP_BUF_IN);
    b[3] = f32("mean", n, OP_BUF_IN);
    b[4] = f32("rstd", n, OP_BUF_IN);
    b[5] = s->v[LB_INPLACE] ? op_alias("dx (in place of dy)", OP_F32, n * d, OP_BUF_INOUT, 0)
                            : op_out("dx", OP_F32, n * d);
    b[6] = sums == 0 || sums == 1 ? f32("dgamma", d, sum_role) : op_absent("dgamma");
    b[7] = sums == 0 || sums == 2 ? f32("dbeta", d, sum_role) : op_absent("dbeta");
    if (!s->v[LB_ACC]) b[6].fill = b[7].fill = OP_FILL_NAN; /* overwritten, not read */
}

/* mean and rstd of each row of x, as layernorm stores them (eps 1e-5). */
static void layernorm_backward_tweak(const op_shape *s, void *const *host) {
    const int64_t n = s->v[LB_N], d = s->v[LB_D];
    const float *x = host[1];
    float *mean = host[3], *rstd = host[4];
    for (int64_t r = 0; r < n; r++) {
        double mu = 0, var = 0;
        for (int64_t c = 0; c < d; c++)
            mu += x[r * d + c];
        mu /= (double)d;
        for (int64_t c = 0; c < d; c++)
            var += (x[r * d + c] - mu) * (x[r * d + c] - mu);
        mean[r] = (float)mu;
        rstd[r] = (float)(1.0 / sqrt(var / (double)d + 1e-5));
    }
}

static int layernorm_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, layernorm_backward, b[0], b[1], b[2], b[3], b[4], s->v[LB_N], s->v[LB_D],
                   (int)s->v[LB_ACC], b[5], b[6], b[7]);
}

/* In double from the float inputs (x̂ from the given mean and rstd); scale: the magnitudes of
   the terms of each sum. */
static void layernorm_backward_naive(const op_shape *s, const void *const *in, double *const *want,
                                     double *const *scale) {
    const int64_t n = s->v[LB_N], d = s->v[LB_D];
    const float *dy = in[0], *x = in[1], *gamma = in[2], *mean = in[3], *rstd = in[4];
    const float *old_g = in[6], *old_b = in[7];
    for (int64_t c = 0; c < d; c++) {
        if (want[6]) want[6][c] = s->v[LB_ACC] ? old_g[c] : 0.0, scale[6][c] = fabs(want[6][c]);
        if (want[7]) want[7][c] = s->v[LB_ACC] ? old_b[c] : 0.0, scale[7][c] = fabs(want[7][c]);
    }
    for (int64_t r = 0; r < n; r++) {
        double sg = 0, sgx = 0, ag = 0, agx = 0;
        for (int64_t c = 0; c < d; c++) {
            const double xhat = ((double)x[r * d + c] - mean[r]) * rstd[r];
            const double g = (double)dy[r * d + c] * gamma[c];
            sg += g, sgx += g * xhat, ag += fabs(g), agx += fabs(g * xhat);
            if (want[6])
                want[6][c] += dy[r * d + c] * xhat, scale[6][c] += fabs(dy[r * d + c] * xhat);
            if (want[7]) want[7][c] += dy[r * d + c], scale[7][c] += fabs(dy[r * d + c]);
        }
        for (int64_t c = 0; c < d; c++) {
            const double xhat = ((double)x[r * d + c] - mean[r]) * rstd[r];
            const double g = (double)dy[r * d + c] * gamma[c];
            want[5][r * d + c] = rstd[r] * (g - sg / (double)d - xhat * sgx / (double)d);
            scale[5][r * d + c] =
                rstd[r] * (fabs(g) + ag / (double)d + (fabs(xhat) + 1.0) * agx / (double)d);
        }
    }
}

static void layernorm_backward_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    rejected(SAEC_OP(dev, layernorm_backward, x, x, x, x, x, 1, 0, 0, x, x, x), "d = 0");
    rejected(SAEC_OP(dev, layernorm_backward, x, x, x, NULL, x, 1, 2, 0, x, x, x), "mean NULL");
}

static void layernorm_backward_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "layernorm_backward n=%lld d=%lld accumulate=%d sums=%d in_place=%d misalign=%d",
             (long long)s->v[LB_N], (long long)s->v[LB_D], (int)s->v[LB_ACC], (int)s->v[LB_SUMS],
             (int)s->v[LB_INPLACE], s->misalign);
}

static op_shape layernorm_backward_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {BENCH_IMAGES * BENCH_TOKENS, BENCH_WIDTH, 1, 0, 0}};
    return s;
}

static saec_op_floor layernorm_backward_floor(const op_shape *s) {
    return saec_op_floor_layernorm_backward((double)s->v[LB_N], (double)s->v[LB_D],
                                            (double)s->v[LB_ACC]);
}

const op_case op_case_layernorm_backward = {.op = "layernorm_backward",
                                            .group = "layernorm",
                                            .n_bufs = 8,
                                            OP_CASE_FUNCS(layernorm_backward),
                                            .tweak = layernorm_backward_tweak,
                                            .atol = 1e-6,
                                            .rtol = 2e-6,
                                            .atol_be = 1e-6,
                                            .rtol_be = 2e-6,
                                            .deterministic = 1,
                                            .bad_args = layernorm_backward_bad_args,
                                            .bench_name = "layernorm_backward"};

/* ---- swiglu, swiglu_backward (elementwise) ----
   v: n, alias (0 none; swiglu: 1 out = a, 2 out = b; swiglu_backward: 1 da = a and db = b,
   2 da = dout). Buffers: swiglu a, b, out; swiglu_backward a, b, dout, da, db. */
static int swiglu_shapes(op_shape *out, int cap) {
    static const int64_t sizes[] = {0, 1, 7, 1001, 4099, 65536};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int variant = 0; variant < 4 && n < cap; variant++) {
            op_shape s = {.v = {sizes[i], variant % 3}};
            s.misalign = variant == 3;
            out[n++] = s;
        }
    return n;
}

/* Large arguments, where σ saturates (e^−v overflows at v < −88), and signed zeros. */
static void swiglu_specials(int64_t n, float *a) {
    static const float special[] = {20.0f, -20.0f, 88.5f, -88.5f, 100.0f, -100.0f, 0.0f, -0.0f};
    for (int64_t i = 0; i < n && i < 8; i++)
        a[i * 5 % n] = special[i];
}

static void swiglu_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[0];
    b[0] = f32("a", n, OP_BUF_IN);
    b[1] = f32("b", n, OP_BUF_IN);
    b[2] = s->v[1] == 0   ? op_out("out", OP_F32, n)
           : s->v[1] == 1 ? op_alias("out (in place of a)", OP_F32, n, OP_BUF_INOUT, 0)
                          : op_alias("out (in place of b)", OP_F32, n, OP_BUF_INOUT, 1);
}

static void swiglu_tweak(const op_shape *s, void *const *host) {
    swiglu_specials(s->v[0], host[0]);
}

static int swiglu_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, swiglu, b[0], b[1], s->v[0], b[2]);
}

static double silu_d(double v) { return v / (1.0 + exp(-v)); }
static double sigmoid_d(double v) { return 1.0 / (1.0 + exp(-v)); }

static void swiglu_naive(const op_shape *s, const void *const *in, double *const *want,
                         double *const *scale) {
    const float *a = in[0], *b = in[1];
    for (int64_t i = 0; i < s->v[0]; i++) {
        want[2][i] = silu_d(a[i]) * b[i];
        scale[2][i] = fabs(want[2][i]) + 1e-30; /* relative: a few float roundings and expf */
    }
}

static void swiglu_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "swiglu n=%lld alias=%d misalign=%d", (long long)s->v[0], (int)s->v[1],
             s->misalign);
}

/* Every expert's hidden activations of a batch: tokens × 2 experts × hidden width 144. */
static op_shape swiglu_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {(int64_t)BENCH_IMAGES * BENCH_TOKENS * 2 * BENCH_WIDTH, 0}};
    return s;
}

static saec_op_floor swiglu_floor(const op_shape *s) {
    return saec_op_floor_swiglu((double)s->v[0]);
}

const op_case op_case_swiglu = {.op = "swiglu",
                                .group = "swiglu",
                                .n_bufs = 3,
                                OP_CASE_FUNCS(swiglu),
                                .tweak = swiglu_tweak,
                                .atol = 0,
                                .rtol = 1e-6,
                                .atol_be = 0,
                                .rtol_be = 1e-6,
                                .deterministic = 1,
                                .bench_name = "swiglu"};

static int swiglu_backward_shapes(op_shape *out, int cap) { return swiglu_shapes(out, cap); }

static void swiglu_backward_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[0];
    b[0] = f32("a", n, OP_BUF_IN);
    b[1] = f32("b", n, OP_BUF_IN);
    b[2] = f32("dout", n, OP_BUF_IN);
    b[3] = s->v[1] == 1   ? op_alias("da (in place of a)", OP_F32, n, OP_BUF_INOUT, 0)
           : s->v[1] == 2 ? op_alias("da (in place of dout)", OP_F32, n, OP_BUF_INOUT, 2)
                          : op_out("da", OP_F32, n);
    b[4] = s->v[1] == 1 ? op_alias("db (in place of b)", OP_F32, n, OP_BUF_INOUT, 1)
                        : op_out("db", OP_F32, n);
}

static int swiglu_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, swiglu_backward, b[0], b[1], b[2], s->v[0], b[3], b[4]);
}

static void swiglu_backward_naive(const op_shape *s, const void *const *in, double *const *want,
                                  double *const *scale) {
    const float *a = in[0], *b = in[1], *g = in[2];
    for (int64_t i = 0; i < s->v[0]; i++) {
        const double v = a[i], sg = sigmoid_d(v);
        want[3][i] = (double)g[i] * b[i] * sg * (1.0 + v * (1.0 - sg));
        want[4][i] = (double)g[i] * silu_d(v);
        /* relative, but never below a few ulp of dout·b·σ: the (1 + v·σ(−v)) factor cancels
           near v ≈ −1.28 */
        scale[3][i] = fabs(want[3][i]) + fabs((double)g[i] * b[i] * sg) + 1e-30;
        scale[4][i] = fabs(want[4][i]) + 1e-30;
    }
}

static void swiglu_backward_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "swiglu_backward n=%lld alias=%d misalign=%d", (long long)s->v[0],
             (int)s->v[1], s->misalign);
}

static op_shape swiglu_backward_bench(int64_t n, int64_t m, int64_t d) {
    return swiglu_bench(n, m, d);
}

static saec_op_floor swiglu_backward_floor(const op_shape *s) {
    return saec_op_floor_swiglu_backward((double)s->v[0]);
}

const op_case op_case_swiglu_backward = {.op = "swiglu_backward",
                                         .group = "swiglu",
                                         .n_bufs = 5,
                                         OP_CASE_FUNCS(swiglu_backward),
                                         .tweak = swiglu_tweak,
                                         .atol = 0,
                                         .rtol = 2e-6,
                                         .atol_be = 0,
                                         .rtol_be = 2e-6,
                                         .deterministic = 1,
                                         .bench_name = "swiglu_backward"};

/* ---- patchify, unpatchify (exact: pure data movement) ----
   v: B, C, H, W, P. Buffers: patchify img, patches; unpatchify patches, img. */
enum { PT_B, PT_C, PT_H, PT_W, PT_P };

static int patchify_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][5] = {{1, 1, 1, 1, 1},  {2, 7, 40, 40, 4}, {3, 7, 41, 41, 4},
                                       {1, 3, 9, 13, 4}, {2, 2, 3, 3, 4},   {0, 7, 40, 40, 4},
                                       {2, 5, 10, 6, 2}, {1, 1, 7, 5, 7}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int misalign = 0; misalign < 2 && n < cap; misalign++) {
            op_shape s = {.v = {sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], sizes[i][4]}};
            s.misalign = misalign;
            out[n++] = s;
        }
    return n;
}

static int64_t patch_elems(const op_shape *s) {
    const int64_t P = s->v[PT_P];
    return s->v[PT_B] * (s->v[PT_H] / P) * (s->v[PT_W] / P) * s->v[PT_C] * P * P;
}
static int64_t img_elems(const op_shape *s) {
    return s->v[PT_B] * s->v[PT_C] * s->v[PT_H] * s->v[PT_W];
}

static void patchify_bufs(const op_shape *s, op_buf *b) {
    b[0] = f32("img", img_elems(s), OP_BUF_IN);
    b[1] = op_out("patches", OP_F32, patch_elems(s));
}

static int patchify_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, patchify, b[0], s->v[PT_B], s->v[PT_C], s->v[PT_H], s->v[PT_W], s->v[PT_P],
                   b[1]);
}

/* Both directions from one loop over the patches' values: patch value (b, q, c, y, x) and its
   pixel. */
static void patch_map(const op_shape *s, const float *from, double *to, int to_patches) {
    const int64_t B = s->v[PT_B], C = s->v[PT_C], H = s->v[PT_H], W = s->v[PT_W], P = s->v[PT_P];
    const int64_t gh = H / P, gw = W / P;
    int64_t e = 0; /* the patch value, in patches' order */
    for (int64_t b = 0; b < B; b++)
        for (int64_t py = 0; py < gh; py++)
            for (int64_t px = 0; px < gw; px++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t y = 0; y < P; y++)
                        for (int64_t x = 0; x < P; x++, e++) {
                            const int64_t pix = ((b * C + c) * H + py * P + y) * W + px * P + x;
                            if (to_patches)
                                to[e] = from[pix];
                            else
                                to[pix] = from[e];
                        }
}

static void patchify_naive(const op_shape *s, const void *const *in, double *const *want,
                           double *const *scale) {
    (void)scale;
    patch_map(s, in[0], want[1], 1);
}

static void patch_label(const char *op, const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "%s B=%lld C=%lld H=%lld W=%lld P=%lld misalign=%d", op, (long long)s->v[PT_B],
             (long long)s->v[PT_C], (long long)s->v[PT_H], (long long)s->v[PT_W],
             (long long)s->v[PT_P], s->misalign);
}
static void patchify_label(const op_shape *s, char *b, size_t cap) {
    patch_label("patchify", s, b, cap);
}

static void patch_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    rejected(SAEC_OP(dev, patchify, x, 1, 1, 2, 2, 0, x), "patchify P = 0");
    rejected(SAEC_OP(dev, unpatchify, x, 1, 0, 2, 2, 1, x), "unpatchify C = 0");
}

/* A batch of 40×40 images of 7 bands. */
static op_shape patchify_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {BENCH_IMAGES, 7, 40, 40, 4}};
    return s;
}

static saec_op_floor patchify_floor(const op_shape *s) {
    return saec_op_floor_patchify((double)patch_elems(s));
}

const op_case op_case_patchify = {.op = "patchify",
                                  .group = "patches",
                                  .n_bufs = 2,
                                  OP_CASE_FUNCS(patchify),
                                  .exact_be = 1,
                                  .bad_args = patch_bad_args,
                                  .bench_name = "patchify"};

static int unpatchify_shapes(op_shape *out, int cap) { return patchify_shapes(out, cap); }

static void unpatchify_bufs(const op_shape *s, op_buf *b) {
    b[0] = f32("patches", patch_elems(s), OP_BUF_IN);
    b[1] = op_out("img (the uncovered border 0)", OP_F32, img_elems(s));
}

static int unpatchify_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, unpatchify, b[0], s->v[PT_B], s->v[PT_C], s->v[PT_H], s->v[PT_W],
                   s->v[PT_P], b[1]);
}

static void unpatchify_naive(const op_shape *s, const void *const *in, double *const *want,
                             double *const *scale) {
    (void)scale;
    for (int64_t i = 0; i < img_elems(s); i++)
        want[1][i] = 0.0;
    patch_map(s, in[0], want[1], 0);
}

static void unpatchify_label(const op_shape *s, char *b, size_t cap) {
    patch_label("unpatchify", s, b, cap);
}

static op_shape unpatchify_bench(int64_t n, int64_t m, int64_t d) {
    return patchify_bench(n, m, d);
}

static saec_op_floor unpatchify_floor(const op_shape *s) {
    return saec_op_floor_unpatchify((double)patch_elems(s), (double)img_elems(s));
}

const op_case op_case_unpatchify = {.op = "unpatchify",
                                    .group = "patches",
                                    .n_bufs = 2,
                                    OP_CASE_FUNCS(unpatchify),
                                    .exact_be = 1,
                                    .bench_name = "unpatchify"};

/* ---- patch_loss ----
   v: n, v, mask kind (0: 75% masked at random, 1: all masked, 2: none masked), with grad;
   f: w_masked, w_visible. Buffers: pred, target, mask (u8), loss (3 doubles), grad. */
enum { PL_N, PL_V, PL_KIND, PL_GRAD };

static int patch_loss_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][2] = {{0, 112}, {1, 112},  {100, 112},
                                       {7, 1},   {257, 33}, {3000, 112}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int kind = 0; kind < 3; kind++)
            for (int grad = 0; grad < 2 && n < cap; grad++) {
                op_shape s = {.v = {sizes[i][0], sizes[i][1], kind, grad},
                              .f = {kind == 2 ? 0.5f : 1.0f, kind == 2 ? 2.0f : 0.1f}};
                s.misalign = i == 2 && grad;
                out[n++] = s;
            }
    return n;
}

static void patch_loss_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[PL_N], v = s->v[PL_V];
    b[0] = f32("pred", n * v, OP_BUF_IN);
    b[1] = f32("target", n * v, OP_BUF_IN);
    b[2] = op_buf_of("mask", OP_U8, n, OP_BUF_IN);
    b[3] = op_buf_of("loss", OP_F64, 3, OP_BUF_OUT);
    b[3].fill = OP_FILL_NAN;
    b[4] = s->v[PL_GRAD] ? op_out("grad", OP_F32, n * v) : op_absent("grad");
}

/* The mask: 3 of 4 patches at random (nonzero values other than 1 count as masked too), all, or
   none. */
static void patch_loss_tweak(const op_shape *s, void *const *host) {
    uint8_t *mask = host[2];
    for (int64_t r = 0; r < s->v[PL_N]; r++) {
        const float u = saec_hash_uniform(7, 0, (uint64_t)r);
        mask[r] = s->v[PL_KIND] == 1   ? 1
                  : s->v[PL_KIND] == 2 ? 0
                  : u < 0.75f          ? (r % 7 ? 1 : 255)
                                       : 0;
    }
}

static int patch_loss_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, patch_loss, b[0], b[1], b[2], s->v[PL_N], s->v[PL_V], s->f[0], s->f[1],
                   b[3], b[4]);
}

static void patch_loss_naive(const op_shape *s, const void *const *in, double *const *want,
                             double *const *scale) {
    const int64_t n = s->v[PL_N], v = s->v[PL_V];
    const float *pred = in[0], *target = in[1];
    const uint8_t *mask = in[2];
    double sum[2] = {0, 0}, count[2] = {0, 0};
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < v; c++) {
            const double e = (double)pred[r * v + c] - target[r * v + c];
            sum[mask[r] != 0] += e * e;
            count[mask[r] != 0] += c == 0;
        }
    const double lm = count[1] ? sum[1] / count[1] : 0, lv = count[0] ? sum[0] / count[0] : 0;
    want[3][1] = lm, want[3][2] = lv;
    want[3][0] = s->f[0] * lm + s->f[1] * lv;
    for (int i = 0; i < 3; i++) /* sums of squares in double: a millionth of the float tolerance */
        scale[3][i] = fabs(want[3][i]) * 1e-6;
    if (!want[4]) return;
    for (int64_t r = 0; r < n; r++) {
        const int k = mask[r] != 0;
        const double coef = count[k] ? 2.0 * (k ? s->f[0] : s->f[1]) / count[k] : 0;
        for (int64_t c = 0; c < v; c++) {
            want[4][r * v + c] = coef * ((double)pred[r * v + c] - target[r * v + c]);
            scale[4][r * v + c] = fabs(want[4][r * v + c]); /* two float roundings */
        }
    }
}

static void patch_loss_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    uint8_t m[4] = {0};
    double l[3];
    rejected(SAEC_OP(dev, patch_loss, x, x, m, 2, 0, 1.0f, 1.0f, l, NULL), "v = 0");
    rejected(SAEC_OP(dev, patch_loss, x, x, m, 2, 2, 1.0f, 1.0f, NULL, NULL), "loss NULL");
}

static void patch_loss_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "patch_loss n=%lld v=%lld mask=%s grad=%d w=%g/%g misalign=%d",
             (long long)s->v[PL_N], (long long)s->v[PL_V],
             s->v[PL_KIND] == 0   ? "75%"
             : s->v[PL_KIND] == 1 ? "all"
                                  : "none",
             (int)s->v[PL_GRAD], s->f[0], s->f[1], s->misalign);
}

/* The decoder's output of a batch: 100 patches of 112 values per image. */
static op_shape patch_loss_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {BENCH_IMAGES * 100, 112, 0, 1}, .f = {1.0f, 0.1f}};
    return s;
}

static saec_op_floor patch_loss_floor(const op_shape *s) {
    return saec_op_floor_patch_loss((double)s->v[PL_N], (double)s->v[PL_V], (double)s->v[PL_GRAD]);
}

const op_case op_case_patch_loss = {.op = "patch_loss",
                                    .group = "patch_loss",
                                    .n_bufs = 5,
                                    OP_CASE_FUNCS(patch_loss),
                                    .tweak = patch_loss_tweak,
                                    .atol = 0,
                                    .rtol = 1e-6,
                                    .atol_be = 0,
                                    .rtol_be = 1e-6,
                                    .deterministic = 1,
                                    .bad_args = patch_loss_bad_args,
                                    .bench_name = "patch_loss"};

/* ---- patch_mask (exact: the same draws on every backend) ----
   v: B, N, n_keep, seed, counter. Buffers: keep (i32), mask (u8). */
enum { PM_B, PM_N, PM_KEEP, PM_SEED, PM_COUNTER };

static int patch_mask_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][3] = {{1, 100, 25}, {3, 100, 25}, {2, 1, 1},
                                       {2, 1, 0},    {4, 17, 17},  {2, 1024, 256},
                                       {5, 33, 0},   {0, 100, 25}, {7, 31, 30}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int variant = 0; variant < 2 && n < cap; variant++) {
            op_shape s = {.v = {sizes[i][0], sizes[i][1], sizes[i][2], variant ? 12345 : 1,
                                variant ? (int64_t)1 << 40 : 0}};
            s.misalign = variant;
            out[n++] = s;
        }
    return n;
}

static void patch_mask_bufs(const op_shape *s, op_buf *b) {
    b[0] = op_buf_of("keep", OP_I32, s->v[PM_B] * s->v[PM_KEEP], OP_BUF_OUT);
    b[1] = op_buf_of("mask", OP_U8, s->v[PM_B] * s->v[PM_N], OP_BUF_OUT);
}

static int patch_mask_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, patch_mask, (uint64_t)s->v[PM_SEED], (uint64_t)s->v[PM_COUNTER], s->v[PM_B],
                   s->v[PM_N], s->v[PM_KEEP], b[0], b[1]);
}

typedef struct {
    float u;
    int32_t q;
} draw;

static int draw_order(const void *a, const void *b) {
    const draw *x = a, *y = b;
    if (x->u != y->u) return x->u < y->u ? -1 : 1;
    return (x->q > y->q) - (x->q < y->q);
}
static int int_order(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The draws sorted (qsort by (u, index)), the first n_keep kept, their indices sorted. */
static void patch_mask_naive(const op_shape *s, const void *const *in, double *const *want,
                             double *const *scale) {
    (void)in, (void)scale;
    const int64_t B = s->v[PM_B], N = s->v[PM_N], K = s->v[PM_KEEP];
    draw *d = malloc(sizeof *d * (size_t)(N > 0 ? N : 1));
    int32_t *kept = malloc(sizeof *kept * (size_t)(K > 0 ? K : 1));
    if (!d || !kept) abort();
    for (int64_t b = 0; b < B; b++) {
        for (int64_t q = 0; q < N; q++) {
            d[q].u = saec_hash_uniform((uint64_t)s->v[PM_SEED], SAEC_RNG_PATCH_MASK,
                                       (uint64_t)s->v[PM_COUNTER] + (uint64_t)(b * N + q));
            d[q].q = (int32_t)q;
            want[1][b * N + q] = 1;
        }
        qsort(d, (size_t)N, sizeof *d, draw_order);
        for (int64_t j = 0; j < K; j++)
            kept[j] = d[j].q;
        qsort(kept, (size_t)K, sizeof *kept, int_order);
        for (int64_t j = 0; j < K; j++) {
            want[0][b * K + j] = kept[j];
            want[1][b * N + kept[j]] = 0;
        }
    }
    free(d), free(kept);
}

static void patch_mask_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    int32_t k[4];
    uint8_t m[4];
    rejected(SAEC_OP(dev, patch_mask, 1, 0, 1, 2, 3, k, m), "n_keep > N");
    rejected(SAEC_OP(dev, patch_mask, 1, 0, 1, 1025, 3, k, m), "N > 1024");
}

static void patch_mask_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "patch_mask B=%lld N=%lld n_keep=%lld seed=%lld counter=%lld misalign=%d",
             (long long)s->v[PM_B], (long long)s->v[PM_N], (long long)s->v[PM_KEEP],
             (long long)s->v[PM_SEED], (long long)s->v[PM_COUNTER], s->misalign);
}

/* A batch: 25 of 100 patches kept per image. */
static op_shape patch_mask_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {BENCH_IMAGES, 100, 25, 1, 0}};
    return s;
}

static saec_op_floor patch_mask_floor(const op_shape *s) {
    return saec_op_floor_patch_mask((double)s->v[PM_B], (double)s->v[PM_N], (double)s->v[PM_KEEP]);
}

const op_case op_case_patch_mask = {.op = "patch_mask",
                                    .group = "patch_mask",
                                    .n_bufs = 2,
                                    OP_CASE_FUNCS(patch_mask),
                                    .exact_be = 1,
                                    .bad_args = patch_mask_bad_args,
                                    .bench_name = "patch_mask"};

/* ---- attention, attention_backward (grouped-query, no mask) ----
   v: B, L, Hq, G, dh, pad of ld_q, pad of ld_kv, large scores (q ×4); f: scale = 1/√dh.
   attention buffers: q, k, v, out, lse. attention_backward buffers: q, k, v, out, dout, lse,
   dq, dk, dv (out and lse made from q, k, v by the tweak, as attention writes them; the padding
   columns of dq, dk, dv must come back untouched). Shapes: MoE-MAE's encoder (105 or 30 tokens,
   8 heads over 4 groups, dh 18) and decoder (6 over 3), L = 1, odd L, L past a block of threads
   (strided rows), K and V too large for shared memory (global reads), one group, dh = 64. */
enum { AT_B, AT_L, AT_HQ, AT_G, AT_DH, AT_PQ, AT_PKV, AT_BIG };

static int attention_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][5] = {{1, 1, 1, 1, 1},   {2, 105, 8, 4, 18}, {3, 30, 8, 4, 18},
                                       {2, 33, 6, 3, 18}, {1, 7, 4, 1, 5},    {2, 17, 2, 2, 64},
                                       {0, 5, 2, 1, 3},   {1, 300, 2, 1, 9},  {1, 200, 2, 2, 64}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int variant = 0; variant < 2 && n < cap; variant++) {
            op_shape s = {.v = {sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], sizes[i][4],
                                variant ? 3 : 0, variant ? 5 : 0, variant},
                          .f = {1.0f / sqrtf((float)sizes[i][4])}};
            s.misalign = variant && i % 3 == 0;
            s.large = sizes[i][1] >= 200;
            out[n++] = s;
        }
    return n;
}

static int64_t at_ldq(const op_shape *s) { return s->v[AT_HQ] * s->v[AT_DH] + s->v[AT_PQ]; }
static int64_t at_ldkv(const op_shape *s) { return s->v[AT_G] * s->v[AT_DH] + s->v[AT_PKV]; }
static int64_t at_rows(const op_shape *s) { return s->v[AT_B] * s->v[AT_L]; }

static void attention_bufs(const op_shape *s, op_buf *b) {
    const int64_t rows = at_rows(s), Hq = s->v[AT_HQ], dh = s->v[AT_DH];
    b[0] = f32("q", rows * at_ldq(s), OP_BUF_IN);
    b[1] = f32("k", rows * at_ldkv(s), OP_BUF_IN);
    b[2] = f32("v", rows * at_ldkv(s), OP_BUF_IN);
    b[3] = op_out("out", OP_F32, rows * Hq * dh);
    b[4] = op_out("lse", OP_F32, s->v[AT_B] * Hq * s->v[AT_L]);
}

/* Large scores: q ×4 (softmax's max must be subtracted before the exponentials). */
static void attention_tweak(const op_shape *s, void *const *host) {
    float *q = host[0];
    if (s->v[AT_BIG])
        for (int64_t i = 0; i < at_rows(s) * at_ldq(s); i++)
            q[i] *= 4.0f;
}

static int attention_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, attention, b[0], b[1], b[2], at_ldq(s), at_ldkv(s), s->v[AT_B], s->v[AT_L],
                   (int)s->v[AT_HQ], (int)s->v[AT_G], (int)s->v[AT_DH], s->f[0], b[3], b[4]);
}

/* The softmax of query row i of head h of sample b in double: p [L] (normalised), its lse. */
static double attn_softmax_d(const op_shape *s, const float *q, const float *k, int64_t b,
                             int64_t h, int64_t i, double *p) {
    const int64_t L = s->v[AT_L], G = s->v[AT_G], dh = s->v[AT_DH];
    const float *qi = q + (b * L + i) * at_ldq(s) + h * dh;
    double mx = -INFINITY, l = 0;
    for (int64_t j = 0; j < L; j++) {
        const float *kj = k + (b * L + j) * at_ldkv(s) + (h % G) * dh;
        double dot = 0;
        for (int64_t c = 0; c < dh; c++)
            dot += (double)qi[c] * kj[c];
        p[j] = s->f[0] * dot;
        mx = p[j] > mx ? p[j] : mx;
    }
    for (int64_t j = 0; j < L; j++)
        l += p[j] = exp(p[j] - mx);
    for (int64_t j = 0; j < L; j++)
        p[j] /= l;
    return mx + log(l);
}

/* out and lse of every (sample, head, row) in double; out_scale: Σ_j p_j |v_j| (or NULL). */
static void attention_forward_d(const op_shape *s, const float *q, const float *k, const float *v,
                                double *out, double *out_scale, double *lse) {
    const int64_t B = s->v[AT_B], L = s->v[AT_L], Hq = s->v[AT_HQ], G = s->v[AT_G],
                  dh = s->v[AT_DH];
    double *p = malloc(sizeof *p * (size_t)(L > 0 ? L : 1));
    if (!p) abort();
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < L; i++) {
                lse[(b * Hq + h) * L + i] = attn_softmax_d(s, q, k, b, h, i, p);
                double *o = out + (b * L + i) * Hq * dh + h * dh;
                for (int64_t c = 0; c < dh; c++) {
                    double acc = 0, mag = 0;
                    for (int64_t j = 0; j < L; j++) {
                        const double vj = v[(b * L + j) * at_ldkv(s) + (h % G) * dh + c];
                        acc += p[j] * vj, mag += p[j] * fabs(vj);
                    }
                    o[c] = acc;
                    if (out_scale) out_scale[(b * L + i) * Hq * dh + h * dh + c] = mag;
                }
            }
    free(p);
}

static void attention_naive(const op_shape *s, const void *const *in, double *const *want,
                            double *const *scale) {
    attention_forward_d(s, in[0], in[1], in[2], want[3], scale[3], want[4]);
    for (int64_t i = 0; i < s->v[AT_B] * s->v[AT_HQ] * s->v[AT_L]; i++)
        scale[4][i] = fabs(want[4][i]) + 1.0;
}

static void attention_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[64] = {0};
    rejected(SAEC_OP(dev, attention, x, x, x, 8, 4, 1, 2, 3, 2, 2, 1.0f, x, x),
             "G does not divide Hq");
    rejected(SAEC_OP(dev, attention, x, x, x, 65, 65, 1, 1, 1, 1, 65, 1.0f, x, x), "dh > 64");
    rejected(SAEC_OP(dev, attention, x, x, x, 3, 4, 1, 2, 2, 1, 2, 1.0f, x, x), "ld_q < Hq·dh");
}

static void attention_label_as(const char *op, const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "%s B=%lld L=%lld Hq=%lld G=%lld dh=%lld pad=%lld/%lld big=%d misalign=%d", op,
             (long long)s->v[AT_B], (long long)s->v[AT_L], (long long)s->v[AT_HQ],
             (long long)s->v[AT_G], (long long)s->v[AT_DH], (long long)s->v[AT_PQ],
             (long long)s->v[AT_PKV], (int)s->v[AT_BIG], s->misalign);
}
static void attention_label(const op_shape *s, char *b, size_t cap) {
    attention_label_as("attention", s, b, cap);
}

/* The encoder's attention over a batch: 128 images of 105 tokens, 8 heads over 4 groups. */
static op_shape attention_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {BENCH_IMAGES, BENCH_TOKENS, 8, 4, 18, 0, 0, 0}, .f = {1.0f / sqrtf(18.0f)}};
    return s;
}

static saec_op_floor attention_floor(const op_shape *s) {
    return saec_op_floor_attention((double)s->v[AT_B], (double)s->v[AT_L], (double)s->v[AT_HQ],
                                   (double)s->v[AT_G], (double)s->v[AT_DH]);
}

const op_case op_case_attention = {.op = "attention",
                                   .group = "attention",
                                   .n_bufs = 5,
                                   OP_CASE_FUNCS(attention),
                                   .tweak = attention_tweak,
                                   .atol = 1e-7,
                                   .rtol = 1e-5,
                                   .atol_be = 1e-7,
                                   .rtol_be = 1e-5,
                                   .deterministic = 1,
                                   .bad_args = attention_bad_args,
                                   .bench_name = "attention"};

static int attention_backward_shapes(op_shape *out, int cap) { return attention_shapes(out, cap); }

static void attention_backward_bufs(const op_shape *s, op_buf *b) {
    const int64_t rows = at_rows(s), Hq = s->v[AT_HQ], dh = s->v[AT_DH];
    b[0] = f32("q", rows * at_ldq(s), OP_BUF_IN);
    b[1] = f32("k", rows * at_ldkv(s), OP_BUF_IN);
    b[2] = f32("v", rows * at_ldkv(s), OP_BUF_IN);
    b[3] = f32("out", rows * Hq * dh, OP_BUF_IN);
    b[4] = f32("dout", rows * Hq * dh, OP_BUF_IN);
    b[5] = f32("lse", s->v[AT_B] * Hq * s->v[AT_L], OP_BUF_IN);
    b[6] = f32("dq (its padding untouched)", rows * at_ldq(s), OP_BUF_INOUT);
    b[7] = f32("dk (its padding untouched)", rows * at_ldkv(s), OP_BUF_INOUT);
    b[8] = f32("dv (its padding untouched)", rows * at_ldkv(s), OP_BUF_INOUT);
}

/* out and lse as attention writes them (from the double forward, rounded to float). */
static void attention_backward_tweak(const op_shape *s, void *const *host) {
    attention_tweak(s, host);
    const int64_t no = at_rows(s) * s->v[AT_HQ] * s->v[AT_DH];
    const int64_t nl = s->v[AT_B] * s->v[AT_HQ] * s->v[AT_L];
    double *out = malloc(sizeof *out * (size_t)(no > 0 ? no : 1));
    double *lse = malloc(sizeof *lse * (size_t)(nl > 0 ? nl : 1));
    if (!out || !lse) abort();
    attention_forward_d(s, host[0], host[1], host[2], out, NULL, lse);
    float *o = host[3], *l = host[5];
    for (int64_t i = 0; i < no; i++)
        o[i] = (float)out[i];
    for (int64_t i = 0; i < nl; i++)
        l[i] = (float)lse[i];
    free(out), free(lse);
}

static int attention_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, attention_backward, b[0], b[1], b[2], at_ldq(s), at_ldkv(s), b[3], b[4],
                   b[5], s->v[AT_B], s->v[AT_L], (int)s->v[AT_HQ], (int)s->v[AT_G],
                   (int)s->v[AT_DH], s->f[0], b[6], b[7], b[8]);
}

/* In double from the float inputs: P from the given lse, then dS, dq, dk, dv as the contract
   writes them; scale: Σ |terms| of each sum; the padding columns keep their inputs. */
static void attention_backward_naive(const op_shape *s, const void *const *in, double *const *want,
                                     double *const *scale) {
    const int64_t B = s->v[AT_B], L = s->v[AT_L], Hq = s->v[AT_HQ], G = s->v[AT_G],
                  dh = s->v[AT_DH];
    const int64_t ldq = at_ldq(s), ldkv = at_ldkv(s), ldo = Hq * dh;
    const float *q = in[0], *k = in[1], *v = in[2], *out = in[3], *dout = in[4], *lse = in[5];
    const float *const pads[3] = {in[6], in[7], in[8]};
    const int64_t lds[3] = {ldq, ldkv, ldkv};
    for (int t = 0; t < 3; t++) /* the padding: kept; the heads' columns: sums from 0 */
        for (int64_t e = 0; e < at_rows(s) * lds[t]; e++) {
            const int head_col = e % lds[t] < (t == 0 ? Hq : G) * dh;
            want[6 + t][e] = head_col ? 0.0 : pads[t][e];
            scale[6 + t][e] = head_col ? 0.0 : fabs(pads[t][e]);
        }
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++) {
            const int64_t g = h % G;
            for (int64_t i = 0; i < L; i++) {
                const float *qi = q + (b * L + i) * ldq + h * dh,
                            *doi = dout + (b * L + i) * ldo + h * dh;
                double D = 0;
                for (int64_t c = 0; c < dh; c++)
                    D += (double)doi[c] * out[(b * L + i) * ldo + h * dh + c];
                for (int64_t j = 0; j < L; j++) {
                    const float *kj = k + (b * L + j) * ldkv + g * dh,
                                *vj = v + (b * L + j) * ldkv + g * dh;
                    double sc = 0, dp = 0;
                    for (int64_t c = 0; c < dh; c++)
                        sc += (double)qi[c] * kj[c], dp += (double)doi[c] * vj[c];
                    const double p = exp(s->f[0] * sc - lse[(b * Hq + h) * L + i]);
                    const double ds = p * (dp - D), ads = p * (fabs(dp) + fabs(D));
                    for (int64_t c = 0; c < dh; c++) {
                        const int64_t iq = (b * L + i) * ldq + h * dh + c,
                                      jk = (b * L + j) * ldkv + g * dh + c;
                        want[6][iq] += s->f[0] * ds * kj[c],
                            scale[6][iq] += s->f[0] * ads * fabs(kj[c]);
                        want[7][jk] += s->f[0] * ds * qi[c],
                            scale[7][jk] += s->f[0] * ads * fabs(qi[c]);
                        want[8][jk] += p * doi[c], scale[8][jk] += p * fabs(doi[c]);
                    }
                }
            }
        }
}

static void attention_backward_label(const op_shape *s, char *b, size_t cap) {
    attention_label_as("attention_backward", s, b, cap);
}

static op_shape attention_backward_bench(int64_t n, int64_t m, int64_t d) {
    return attention_bench(n, m, d);
}

static saec_op_floor attention_backward_floor(const op_shape *s) {
    return saec_op_floor_attention_backward((double)s->v[AT_B], (double)s->v[AT_L],
                                            (double)s->v[AT_HQ], (double)s->v[AT_G],
                                            (double)s->v[AT_DH]);
}

const op_case op_case_attention_backward = {.op = "attention_backward",
                                            .group = "attention",
                                            .n_bufs = 9,
                                            OP_CASE_FUNCS(attention_backward),
                                            .tweak = attention_backward_tweak,
                                            .atol = 1e-7,
                                            .rtol = 2e-5,
                                            .atol_be = 1e-7,
                                            .rtol_be = 2e-5,
                                            .deterministic = 1,
                                            .bench_name = "attention_backward"};

/* ---- dropout (exact: the same mask and one rounded multiply on every backend) ----
   v: n, in place, seed, counter; f: p. Buffers: x, out. */
static int dropout_shapes(op_shape *out, int cap) {
    static const int64_t sizes[] = {0, 1, 7, 1001, 65537};
    static const float rates[] = {0.0f, 0.1f, 0.5f, 0.999f};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
            for (int in_place = 0; in_place < 2 && n < cap; in_place++) {
                op_shape s = {
                    .v = {sizes[i], in_place, 5 + (int64_t)r, in_place ? (int64_t)1 << 33 : 0},
                    .f = {rates[r]}};
                s.misalign = in_place && r == 1;
                out[n++] = s;
            }
    return n;
}

static void dropout_bufs(const op_shape *s, op_buf *b) {
    b[0] = f32("x", s->v[0], OP_BUF_IN);
    b[1] = s->v[1] ? op_alias("out (in place)", OP_F32, s->v[0], OP_BUF_INOUT, 0)
                   : op_out("out", OP_F32, s->v[0]);
}

static int dropout_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, dropout, b[0], s->v[0], s->f[0], (uint64_t)s->v[2], (uint64_t)s->v[3],
                   b[1]);
}

/* The mask drawn here from the hash (uniforms of 24 bits, exact in float); the kept fraction is
   also checked against p (a broken draw that keeps too much or too little shows there too). */
static void dropout_naive(const op_shape *s, const void *const *in, double *const *want,
                          double *const *scale) {
    (void)scale;
    const float *x = in[0], p = s->f[0], k = 1.0f / (1.0f - p);
    int64_t kept = 0;
    for (int64_t i = 0; i < s->v[0]; i++) {
        const int keep = saec_hash_uniform((uint64_t)s->v[2], SAEC_RNG_DROPOUT,
                                           (uint64_t)s->v[3] + (uint64_t)i) >= p;
        want[1][i] = keep ? (double)(x[i] * k) : 0.0;
        kept += keep;
    }
    const double n = (double)s->v[0], expect = n * (1.0 - p);
    if (n >= 1000 && fabs((double)kept - expect) > 5 * sqrt(n * p * (1 - p)) + 1)
        want[1][0] = NAN; /* fails the comparison: the draws are not uniform */
}

static void dropout_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    rejected(SAEC_OP(dev, dropout, x, 4, 1.0f, 1, 0, x), "p = 1");
    rejected(SAEC_OP(dev, dropout, x, 4, -0.1f, 1, 0, x), "p < 0");
}

static void dropout_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "dropout n=%lld p=%g in_place=%d seed=%lld counter=%lld misalign=%d",
             (long long)s->v[0], s->f[0], (int)s->v[1], (long long)s->v[2], (long long)s->v[3],
             s->misalign);
}

/* The experts' output rows of a batch: tokens × 2 items × width 144, p = 0.1. */
static op_shape dropout_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {(int64_t)BENCH_IMAGES * BENCH_TOKENS * 2 * BENCH_WIDTH, 0, 1, 0},
                  .f = {0.1f}};
    return s;
}

static saec_op_floor dropout_floor(const op_shape *s) {
    return saec_op_floor_dropout((double)s->v[0]);
}

const op_case op_case_dropout = {.op = "dropout",
                                 .group = "dropout",
                                 .n_bufs = 2,
                                 OP_CASE_FUNCS(dropout),
                                 .exact_be = 1,
                                 .bad_args = dropout_bad_args,
                                 .bench_name = "dropout"};

/* ---- patch_token_index (exact) ----
   v: B, N, n_keep, prefix, mask_row. Buffers: keep (ascending per sample, made by the tweak),
   perm, inv. */
enum { PT_IB, PT_IN, PT_IKEEP, PT_IPREFIX, PT_IMASK };

static int patch_token_index_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][5] = {{2, 100, 25, 5, -1}, {3, 100, 25, 5, 90}, {1, 1, 1, 0, -1},
                                       {2, 1, 0, 0, 7},     {4, 17, 17, 3, -1},  {2, 33, 0, 5, 99},
                                       {0, 10, 3, 2, -1},   {5, 7, 3, 0, -1}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && n < cap; i++) {
        op_shape s = {.v = {sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], sizes[i][4]}};
        s.misalign = i == 1;
        out[n++] = s;
    }
    return n;
}

static void patch_token_index_bufs(const op_shape *s, op_buf *b) {
    const int64_t B = s->v[PT_IB];
    b[0] = op_buf_of("keep", OP_I32, B * s->v[PT_IKEEP], OP_BUF_IN);
    b[1] = op_buf_of("perm", OP_I32, B * (s->v[PT_IPREFIX] + s->v[PT_IKEEP]), OP_BUF_OUT);
    b[2] = op_buf_of("inv", OP_I32, B * (s->v[PT_IPREFIX] + s->v[PT_IN]), OP_BUF_OUT);
}

/* Each sample's kept patches: n_keep of N by selection sampling (ascending). */
static void patch_token_index_tweak(const op_shape *s, void *const *host) {
    const int64_t N = s->v[PT_IN], K = s->v[PT_IKEEP];
    int32_t *keep = host[0];
    for (int64_t b = 0; b < s->v[PT_IB]; b++) {
        int64_t need = K, j = 0;
        for (int64_t q = 0; q < N && need > 0; q++)
            if (saec_hash_uniform(11, (uint64_t)b, (uint64_t)q) * (float)(N - q) < (float)need)
                keep[b * K + j++] = (int32_t)q, need--;
        for (; j < K; j++) /* rounding left some short: the last patches */
            keep[b * K + j] = (int32_t)(N - K + j);
    }
}

static int patch_token_index_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, patch_token_index, b[0], s->v[PT_IB], s->v[PT_IN], s->v[PT_IKEEP],
                   s->v[PT_IPREFIX], (int32_t)s->v[PT_IMASK], b[1], b[2]);
}

static void patch_token_index_naive(const op_shape *s, const void *const *in, double *const *want,
                                    double *const *scale) {
    const int32_t *keep = in[0];
    const int64_t N = s->v[PT_IN], K = s->v[PT_IKEEP], P = s->v[PT_IPREFIX];
    const int64_t T = P + N, V = P + K;
    (void)scale;
    for (int64_t b = 0; b < s->v[PT_IB]; b++) {
        for (int64_t t = 0; t < T; t++)
            want[2][b * T + t] = t < P ? (double)(b * V + t) : (double)s->v[PT_IMASK];
        for (int64_t j = 0; j < P; j++)
            want[1][b * V + j] = (double)(b * T + j);
        for (int64_t j = 0; j < K; j++) {
            want[1][b * V + P + j] = (double)(b * T + P + keep[b * K + j]);
            want[2][b * T + P + keep[b * K + j]] = (double)(b * V + P + j);
        }
    }
}

static void patch_token_index_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    int32_t k[4] = {0}, p[8], v[8];
    rejected(SAEC_OP(dev, patch_token_index, k, 1, 2, 3, 0, -1, p, v), "n_keep > N");
    rejected(SAEC_OP(dev, patch_token_index, k, 1, 2, 1, 0, -2, p, v), "mask_row < -1");
}

static void patch_token_index_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "patch_token_index B=%lld N=%lld n_keep=%lld prefix=%lld mask_row=%lld misalign=%d",
             (long long)s->v[PT_IB], (long long)s->v[PT_IN], (long long)s->v[PT_IKEEP],
             (long long)s->v[PT_IPREFIX], (long long)s->v[PT_IMASK], s->misalign);
}

/* A batch: 25 of 100 patches kept, 5 prefix tokens, the mask token after the visible rows. */
static op_shape patch_token_index_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = {.v = {BENCH_IMAGES, 100, 25, 5, BENCH_IMAGES * 30}};
    return s;
}

static saec_op_floor patch_token_index_floor(const op_shape *s) {
    return saec_op_floor_patch_token_index((double)s->v[PT_IB], (double)s->v[PT_IN],
                                           (double)s->v[PT_IKEEP], (double)s->v[PT_IPREFIX]);
}

const op_case op_case_patch_token_index = {.op = "patch_token_index",
                                           .group = "patch_mask",
                                           .n_bufs = 3,
                                           OP_CASE_FUNCS(patch_token_index),
                                           .tweak = patch_token_index_tweak,
                                           .exact_be = 1,
                                           .bad_args = patch_token_index_bad_args,
                                           .bench_name = "patch_token_index"};
