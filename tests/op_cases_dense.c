/* The op cases of the dense family (kernels/cpu/cpu_dense.c, kernels/cuda/cuda_dense.cu): gemm,
 * scale_add_rows, axpby, col_sum, relu, relu_backward. Shapes: odd sizes, 1 and 0, a column count
 * past a block (4099), leading dimensions with padding, every transpose, beta = 0 over NaN
 * (BLAS rule: not read), in place and aliased outputs, misaligned pointers. See op_case.h.
 */
#include <math.h>
#include <stdio.h>

#include "op_case.h"

static op_shape shape(int64_t v0, int64_t v1, int64_t v2, int64_t v3, float f0, float f1) {
    op_shape s = {.v = {v0, v1, v2, v3}, .f = {f0, f1}};
    return s;
}

static op_buf buf(const char *name, int64_t count, op_buf_role role) {
    return op_buf_of(name, OP_F32, count, role);
}

static op_buf alias(const char *name, int64_t count, op_buf_role role, int of) {
    return op_alias(name, OP_F32, count, role, of);
}

/* ---- gemm: C[M, N] = alpha op(A) op(B) + beta C + bias ----
   v: M, N, K, trans_a, trans_b, with bias, pad of lda, ldb, ldc; f: alpha, beta.
   Buffers: A, B, C, bias. The ldc padding holds 12345 and must stay. */
enum { G_M, G_N, G_K, G_TA, G_TB, G_BIAS, G_PA, G_PB, G_PC };

static int64_t gemm_lda(const op_shape *s) {
    const int64_t cols = s->v[G_TA] ? s->v[G_M] : s->v[G_K];
    return (cols > 0 ? cols : 1) + s->v[G_PA];
}
static int64_t gemm_ldb(const op_shape *s) {
    const int64_t cols = s->v[G_TB] ? s->v[G_K] : s->v[G_N];
    return (cols > 0 ? cols : 1) + s->v[G_PB];
}
static int64_t gemm_ldc(const op_shape *s) { return s->v[G_N] + s->v[G_PC]; }

static op_shape gemm_shape(const int64_t mnk[3], int ta, int tb, int bias, int pa, int pb, int pc,
                           float alpha, float beta) {
    op_shape s = {.v = {mnk[0], mnk[1], mnk[2], ta, tb, bias, pa, pb, pc}, .f = {alpha, beta}};
    return s;
}

static int gemm_shapes(op_shape *out, int cap) {
    /* small odd shapes, K = 0, one row or column; lda, ldb, ldc padded by 3, 2, 5 */
    static const int64_t small[][3] = {{1, 1, 1}, {7, 13, 5},  {33, 17, 65}, {64, 31, 3},
                                       {5, 9, 0}, {1, 45, 19}, {50, 1, 7}};
    /* larger shapes (past the CUDA tiles), every other one padded by 3 */
    static const int64_t large[][3] = {
        {37, 53, 29}, {1, 1, 1}, {130, 67, 257}, {64, 128, 32}, {300, 1000, 77}};
    int n = 0;
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bi = 0; bi < 2; bi++)
                    for (int bias = 0; bias < 2; bias++)
                        if (n < cap)
                            out[n++] = gemm_shape(small[i], ta, tb, bias, 3, 2, 5, 0.75f,
                                                  bi ? -0.5f : 0.0f);
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int variant = 0; variant < 3; variant++) {
                    const int pad = (int)(i % 2) * 3;
                    if (n < cap)
                        out[n++] = gemm_shape(large[i], ta, tb, variant != 0, pad, pad, pad, 0.7f,
                                              variant == 1 ? 0.5f : 0.0f);
                }
    static const int64_t odd[] = {33, 45, 19}, k0[] = {9, 11, 0}, k5[] = {9, 11, 5};
    static const int64_t encoder[] = {256, 4096, 2304 / 8}; /* the encoder GEMM, scaled down */
    const op_shape extra[] = {
        gemm_shape(odd, 0, 0, 1, 1, 1, 1, 1.0f, 1.0f),   /* misaligned (below) */
        gemm_shape(odd, 1, 0, 1, 0, 0, 0, -2.0f, 0.25f), /* misaligned (below) */
        gemm_shape(k0, 0, 0, 1, 0, 0, 0, 1.0f, 0.5f),    /* K = 0: C = beta C + bias */
        gemm_shape(k5, 0, 1, 1, 0, 0, 0, 0.0f, 0.0f),    /* alpha = beta = 0: C = bias */
        gemm_shape(encoder, 0, 0, 1, 0, 0, 0, 1.0f, 0.0f)};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0] && n < cap; i++) {
        out[n] = extra[i];
        out[n++].misalign = i < 2;
    }
    return n;
}

static void gemm_bufs(const op_shape *s, op_buf *b) {
    const int64_t M = s->v[G_M], N = s->v[G_N], K = s->v[G_K];
    b[0] = buf("A", (s->v[G_TA] ? K : M) * gemm_lda(s), OP_BUF_IN);
    b[1] = buf("B", (s->v[G_TB] ? N : K) * gemm_ldb(s), OP_BUF_IN);
    b[2] = buf("C (its ldc padding untouched)", M * gemm_ldc(s), OP_BUF_INOUT);
    if (s->f[1] == 0.0f) b[2].fill = OP_FILL_NAN; /* beta = 0 must not read C */
    b[3] = s->v[G_BIAS] ? buf("bias", N, OP_BUF_IN) : op_absent("bias");
}

static void gemm_tweak(const op_shape *s, void *const *host) {
    const int64_t ldc = gemm_ldc(s);
    for (int64_t i = 0; i < s->v[G_M]; i++)
        for (int64_t j = s->v[G_N]; j < ldc; j++)
            ((float *)host[2])[i * ldc + j] = 12345.0f;
}

static int gemm_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, gemm, (int)s->v[G_TA], (int)s->v[G_TB], s->v[G_M], s->v[G_N], s->v[G_K],
                   s->f[0], b[0], gemm_lda(s), b[1], gemm_ldb(s), s->f[1], b[2], gemm_ldc(s), b[3]);
}

/* scale[i, j] = |alpha| Σ_k |a_ik b_kj| + |beta c_ij| + |bias_j|: FP32 error is a small multiple
   of eps times this (K·eps; tolerance 1e-5); the padding must come back as it was. */
static void gemm_naive(const op_shape *s, const void *const *in, double *const *want,
                       double *const *scale) {
    const int64_t M = s->v[G_M], N = s->v[G_N], K = s->v[G_K];
    const int64_t lda = gemm_lda(s), ldb = gemm_ldb(s), ldc = gemm_ldc(s);
    const int ta = (int)s->v[G_TA], tb = (int)s->v[G_TB];
    const double alpha = s->f[0], beta = s->f[1];
    const float *A = in[0], *B = in[1], *C = in[2], *bias = in[3];
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            if (j >= N) {
                want[2][i * ldc + j] = C[i * ldc + j];
                scale[2][i * ldc + j] = 0;
                continue;
            }
            double acc = 0, mag = 0;
            for (int64_t p = 0; p < K; p++) {
                const double a = ta ? A[p * lda + i] : A[i * lda + p];
                const double bv = tb ? B[j * ldb + p] : B[p * ldb + j];
                acc += a * bv;
                mag += fabs(a * bv);
            }
            const double c0 = beta == 0.0 ? 0.0 : beta * C[i * ldc + j];
            const double bj = bias ? bias[j] : 0.0;
            want[2][i * ldc + j] = alpha * acc + c0 + bj;
            scale[2][i * ldc + j] = fabs(alpha) * mag + fabs(c0) + fabs(bj);
        }
}

static void gemm_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    rejected(SAEC_OP(dev, gemm, 0, 0, -1, 2, 2, 1.0f, x, 2, x, 2, 0.0f, x, 2, NULL), "M < 0");
    rejected(SAEC_OP(dev, gemm, 0, 0, 2, 2, 2, 1.0f, x, 1, x, 2, 0.0f, x, 2, NULL), "lda < K");
}

static void gemm_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "gemm M=%lld N=%lld K=%lld ta=%d tb=%d pad=%d/%d/%d alpha=%g beta=%g bias=%d "
             "misalign=%d",
             (long long)s->v[G_M], (long long)s->v[G_N], (long long)s->v[G_K], (int)s->v[G_TA],
             (int)s->v[G_TB], (int)s->v[G_PA], (int)s->v[G_PB], (int)s->v[G_PC], s->f[0], s->f[1],
             (int)s->v[G_BIAS], s->misalign);
}

/* The encoder GEMM: pre [n, m] = x [n, d] W_enc [d, m] + b_enc. */
static op_shape gemm_bench(int64_t n, int64_t m, int64_t d) {
    const int64_t mnk[3] = {n, m, d};
    return gemm_shape(mnk, 0, 0, 1, 0, 0, 0, 1.0f, 0.0f);
}

static saec_op_floor gemm_floor(const op_shape *s) {
    return saec_op_floor_gemm((double)s->v[G_M], (double)s->v[G_N], (double)s->v[G_K],
                              s->f[1] != 0.0f, (double)s->v[G_BIAS]);
}

const op_case op_case_gemm = {.op = "gemm",
                              .group = "gemm",
                              .n_bufs = 4,
                              OP_CASE_FUNCS(gemm),
                              .tweak = gemm_tweak,
                              .atol = 1e-6,
                              .rtol = 1e-5,
                              .atol_be = 1e-6,
                              .rtol_be = 1e-5,
                              .bad_args = gemm_bad_args,
                              .bench_name = "gemm_encoder_fp32",
                              .bench_tf32_name = "gemm_encoder_tf32"};

/* ---- scale_add_rows: out[n, d] = in * scale + alpha * v[d] ----
   v: n, d, with v, in place; f: scale, alpha. Buffers: in, v, out. */
static int scale_add_rows_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][2] = {{1, 1},   {7, 37},  {301, 129}, /* scale -1.25, alpha 0.5 */
                                       {37, 41}, {16, 64}, {5, 4099}}; /* scale 1.5, alpha -0.75 */
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int variant = 0; variant < 4 && n < cap; variant++)
            out[n++] = shape(sizes[i][0], sizes[i][1], variant & 1, variant >> 1,
                             i < 3 ? -1.25f : 1.5f, i < 3 ? 0.5f : -0.75f);
    return n;
}

static void scale_add_rows_bufs(const op_shape *s, op_buf *b) {
    const int64_t nd = s->v[0] * s->v[1];
    const int in_place = (int)s->v[3];
    b[0] = buf("in", nd, OP_BUF_IN);
    b[1] = s->v[2] ? buf("v", s->v[1], OP_BUF_IN) : op_absent("v");
    b[2] = in_place ? alias("out (in place)", nd, OP_BUF_INOUT, 0) : buf("out", nd, OP_BUF_OUT);
    if (!in_place) b[2].fill = OP_FILL_NAN;
}

static int scale_add_rows_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, scale_add_rows, b[0], b[2], s->v[0], s->v[1], s->f[0], b[1], s->f[1]);
}

/* a few roundings: within 1e-6 of |in·scale| + |alpha·v| */
static void scale_add_rows_naive(const op_shape *s, const void *const *in, double *const *want,
                                 double *const *scale) {
    const float *x = in[0], *v = in[1];
    const int64_t n = s->v[0], d = s->v[1];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            const double a = (double)x[i * d + j] * s->f[0];
            const double bv = v ? (double)s->f[1] * v[j] : 0;
            want[2][i * d + j] = a + bv;
            scale[2][i * d + j] = fabs(a) + fabs(bv);
        }
}

static void scale_add_rows_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "scale_add_rows n=%lld d=%lld v=%d in_place=%d scale=%g alpha=%g",
             (long long)s->v[0], (long long)s->v[1], (int)s->v[2], (int)s->v[3], s->f[0], s->f[1]);
}

/* The bias shift of the rows: gx [n, d] = x * 0.5 − mu. */
static op_shape scale_add_rows_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    return shape(n, d, 1, 0, 0.5f, -1.0f);
}

static saec_op_floor scale_add_rows_floor(const op_shape *s) {
    return saec_op_floor_scale_add_rows((double)s->v[0], (double)s->v[1]);
}

const op_case op_case_scale_add_rows = {.op = "scale_add_rows",
                                        .group = "scale_add_rows",
                                        .n_bufs = 3,
                                        OP_CASE_FUNCS(scale_add_rows),
                                        .atol = 0,
                                        .rtol = 1e-6,
                                        .atol_be = 1e-7,
                                        .rtol_be = 1e-6,
                                        .bench_name = "scale_add_rows"};

/* ---- axpby: out[n] = alpha x + beta y ----
   v: n, variant (0: out new, 1: out aliases x, 2: out aliases y, 3: beta = 0 and y NULL,
   4: beta = 0 and y all NaN: not read); f: alpha, beta. Buffers: x, y, out. */
static int axpby_shapes(op_shape *out, int cap) {
    static const int64_t sizes[] = {1, 1001, 70001, 10007, 4096, 3};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const float alpha = i < 3 ? 1.5f : 1.25f, beta = i < 3 ? -0.25f : -0.3f;
        for (int variant = 0; variant < 5 && n < cap; variant++)
            out[n++] = shape(sizes[i], variant, 0, 0, alpha, variant >= 3 ? 0.0f : beta);
        if (i >= 3 && n < cap) { /* misaligned */
            out[n] = shape(sizes[i], 0, 0, 0, alpha, beta);
            out[n++].misalign = 1;
        }
    }
    return n;
}

static void axpby_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[0];
    const int variant = (int)s->v[1];
    b[0] = buf("x", n, OP_BUF_IN);
    b[1] = variant == 3 ? op_absent("y") : buf("y", n, OP_BUF_IN);
    if (variant == 4) b[1].fill = OP_FILL_NAN;
    if (variant == 1 || variant == 2)
        b[2] = alias(variant == 1 ? "out (= x)" : "out (= y)", n, OP_BUF_INOUT, variant - 1);
    else
        b[2] = buf("out", n, OP_BUF_OUT), b[2].fill = OP_FILL_NAN;
}

static int axpby_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, axpby, s->v[0], s->f[0], b[0], s->f[1], b[1], b[2]);
}

/* a few roundings: within 1e-6 of |alpha x| + |beta y| */
static void axpby_naive(const op_shape *s, const void *const *in, double *const *want,
                        double *const *scale) {
    const float *x = in[0], *y = in[1];
    const int64_t n = s->v[0];
    const int variant = (int)s->v[1];
    for (int64_t i = 0; i < n; i++) {
        const double a = (double)s->f[0] * x[i];
        const double bv = variant >= 3 ? 0 : (double)s->f[1] * y[i];
        want[2][i] = a + bv;
        scale[2][i] = fabs(a) + fabs(bv);
    }
}

static void axpby_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "axpby n=%lld variant=%d alpha=%g beta=%g misalign=%d", (long long)s->v[0],
             (int)s->v[1], s->f[0], s->f[1], s->misalign);
}

/* gx [n·d] = 0.5 x + 0.25 xhat */
static op_shape axpby_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    return shape(n * d, 0, 0, 0, 0.5f, 0.25f);
}

static saec_op_floor axpby_floor(const op_shape *s) { return saec_op_floor_axpby((double)s->v[0]); }

const op_case op_case_axpby = {.op = "axpby",
                               .group = "axpby",
                               .n_bufs = 3,
                               OP_CASE_FUNCS(axpby),
                               .atol = 0,
                               .rtol = 1e-6,
                               .atol_be = 1e-7,
                               .rtol_be = 1e-6,
                               .bench_name = "axpby"};

/* ---- col_sum: out[d] = alpha Σ_rows x[n, d] + beta out ----
   v: n, d; f: alpha, beta. Buffers: x, out. */
static int col_sum_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][2] = {{1, 1},  {333, 37},  {17, 130},  {1000, 67}, {0, 5},
                                       {1, 37}, {1000, 41}, {4099, 64}, {70001, 3}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int bi = 0; bi < 2 && n < cap; bi++) {
            const float alpha = i < 5 ? 0.5f : 1.5f, beta = i < 5 ? 1.5f : 0.5f;
            out[n++] = shape(sizes[i][0], sizes[i][1], 0, 0, alpha, bi ? beta : 0.0f);
        }
    return n;
}

static void col_sum_bufs(const op_shape *s, op_buf *b) {
    b[0] = buf("x", s->v[0] * s->v[1], OP_BUF_IN);
    b[1] = buf("out", s->v[1], OP_BUF_INOUT);
    if (s->f[1] == 0.0f) b[1].fill = OP_FILL_NAN; /* beta = 0 must not read out */
}

static int col_sum_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, col_sum, b[0], s->v[0], s->v[1], s->f[0], s->f[1], b[1]);
}

/* summed in double: only the order and the final rounding differ (1e-6 of Σ|terms|) */
static void col_sum_naive(const op_shape *s, const void *const *in, double *const *want,
                          double *const *scale) {
    const float *x = in[0], *o0 = in[1];
    const int64_t n = s->v[0], d = s->v[1];
    for (int64_t j = 0; j < d; j++) {
        double acc = 0, a = 0;
        for (int64_t i = 0; i < n; i++)
            acc += x[i * d + j], a += fabs(x[i * d + j]);
        const double o = s->f[1] == 0.0f ? 0.0 : (double)s->f[1] * o0[j];
        want[1][j] = o + s->f[0] * acc;
        scale[1][j] = fabs(o) + fabs(s->f[0]) * a;
    }
}

static void col_sum_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "col_sum n=%lld d=%lld alpha=%g beta=%g", (long long)s->v[0],
             (long long)s->v[1], s->f[0], s->f[1]);
}

/* b_dec's gradient: Σ_rows gx [n, d] */
static op_shape col_sum_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    return shape(n, d, 0, 0, 1.0f, 0.0f);
}

static saec_op_floor col_sum_floor(const op_shape *s) {
    return saec_op_floor_col_sum((double)s->v[0], (double)s->v[1]);
}

const op_case op_case_col_sum = {.op = "col_sum",
                                 .group = "col_sum",
                                 .n_bufs = 2,
                                 OP_CASE_FUNCS(col_sum),
                                 .atol = 1e-7,
                                 .rtol = 1e-6,
                                 .atol_be = 1e-7,
                                 .rtol_be = 1e-6,
                                 .bench_name = "col_sum"};

/* ---- relu: x[n] = max(x, 0); relu_backward: grad[n] *= (act > 0). Exact. ----
   v: n. Buffers: relu x; relu_backward act, grad. x[0] is NaN, x[1] 0, x[2] −0. */
static int relu_shapes(op_shape *out, int cap) {
    static const int64_t sizes[] = {1, 999, 50001, 10007, 4096};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int misalign = 0; misalign < 2 && n < cap; misalign++) {
            out[n] = shape(sizes[i], 0, 0, 0, 0, 0);
            out[n++].misalign = misalign;
        }
    return n;
}

static void relu_specials(int64_t n, float *x) {
    x[0] = NAN;
    if (n > 3) x[1] = 0.0f, x[2] = -0.0f;
}

static void relu_bufs(const op_shape *s, op_buf *b) { b[0] = buf("x", s->v[0], OP_BUF_INOUT); }
static void relu_tweak(const op_shape *s, void *const *host) { relu_specials(s->v[0], host[0]); }
static int relu_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, relu, b[0], s->v[0]);
}
static void relu_naive(const op_shape *s, const void *const *in, double *const *want,
                       double *const *scale) {
    const float *x = in[0];
    (void)scale;
    for (int64_t i = 0; i < s->v[0]; i++)
        want[0][i] = x[i] > 0 ? x[i] : 0.0f;
}
static void relu_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    rejected(SAEC_OP(dev, relu, NULL, -1), "n < 0");
}
static void relu_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "relu n=%lld misalign=%d", (long long)s->v[0], s->misalign);
}
/* the codes [n, m] of a ReLU SAE */
static op_shape relu_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return shape(n * m, 0, 0, 0, 0, 0);
}
static saec_op_floor relu_floor(const op_shape *s) { return saec_op_floor_relu((double)s->v[0]); }

const op_case op_case_relu = {.op = "relu",
                              .group = "relu",
                              .n_bufs = 1,
                              OP_CASE_FUNCS(relu),
                              .tweak = relu_tweak,
                              .exact_be = 1,
                              .bad_args = relu_bad_args,
                              .bench_name = "relu"};

static int relu_backward_shapes(op_shape *out, int cap) { return relu_shapes(out, cap); }

static void relu_backward_bufs(const op_shape *s, op_buf *b) {
    b[0] = buf("act", s->v[0], OP_BUF_IN);
    b[1] = buf("grad", s->v[0], OP_BUF_INOUT);
}
static int relu_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, relu_backward, b[0], b[1], s->v[0]);
}
static void relu_backward_naive(const op_shape *s, const void *const *in, double *const *want,
                                double *const *scale) {
    const float *act = in[0], *grad = in[1];
    (void)scale;
    for (int64_t i = 0; i < s->v[0]; i++)
        want[1][i] = act[i] > 0 ? grad[i] : 0.0f;
}
static void relu_backward_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "relu_backward n=%lld misalign=%d", (long long)s->v[0], s->misalign);
}

static op_shape relu_backward_bench(int64_t n, int64_t m, int64_t d) { return relu_bench(n, m, d); }

static saec_op_floor relu_backward_floor(const op_shape *s) {
    return saec_op_floor_relu_backward((double)s->v[0]);
}

const op_case op_case_relu_backward = {.op = "relu_backward",
                                       .group = "relu",
                                       .n_bufs = 2,
                                       OP_CASE_FUNCS(relu_backward),
                                       .tweak = relu_tweak,
                                       .exact_be = 1,
                                       .bench_name = "relu_backward"};
