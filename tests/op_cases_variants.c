/* The op cases of the SAE-variant family on dense codes [n, m] and the small MLP
 * (kernels/cpu/cpu_variants.c, kernels/cuda/cuda_variants.cu): batch_topk, jumprelu,
 * jumprelu_backward, l1_penalty, atm_stats, atm_mask, scale_cols, silu, silu_backward
 * (track_fired_dense is tested elsewhere). Shapes: odd n, m, d; n = 1, m = 1, n = 0 (with NULL
 * inputs where the op allows it); ties at BatchTopK's cut-off, keep = 1, = #positives, = n*m and
 * > n*m, nothing positive, NaN/±inf/−0/subnormals; θ strides 0, 1, 3, given directly and as
 * log θ, pre exactly at θ; zero-norm decoder rows and latents that never fire; ATM statistics
 * all equal, all zero, with a zero or negative mean; SiLU's special values (±0, σ's overflow
 * edge, large |x|); in place and misaligned pointers (the float4 and scalar paths); the largest
 * (SAE-sized) shapes marked large. See op_case.h.
 *
 * Beyond the generic harness, l1_penalty has its own backend comparison (l1_penalty_compare_be:
 * a tolerance per output, the penalty's far tighter than the gradients'). The CPU ops' thread
 * count invariance, silu_backward's finite-difference check, jumprelu_backward's gradient signs
 * and atm_mask's seed/counter properties stay in tests/test_variant_ops.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "op_case.h"
#include "saec/hash.h"
#include "test_random.h"

static op_buf buf(const char *name, int64_t count, op_buf_role role) {
    return op_buf_of(name, OP_F32, count, role);
}

static op_buf exact_buf(op_buf b) {
    b.exact = 1;
    return b;
}

/* A dense-code value: mostly the random fill v, with exact zeros, −0 and NaN mixed in (1/40
   each). */
static float dense_special(float v) {
    const int64_t t = rng_int(40);
    return t == 0 ? 0.0f : t == 1 ? -0.0f : t == 2 ? NAN : v;
}

/* The float θ of a JumpReLU latent: exp(t) rounded once (the contract; CPU expf agrees but for
   rare last-ulp cases, which the ties below avoid). */
static float theta_of(float t, int is_log) { return is_log ? (float)exp((double)t) : t; }

/* ---- batch_topk: f[n, m] = x where x > 0 is among the keep largest (ties at the cut all
   kept), else 0; *threshold = the cut (0 when nothing is kept). Exact. ----
   v: n, m, keep, values (BT_*), in place, exactly keep positive entries (signs flipped: the
   boundary of "keep them all"). Buffers: x, f, threshold. */
enum { BT_N, BT_M, BT_KEEP, BT_VALS, BT_IN_PLACE, BT_EXACT };
enum {
    BT_RANDOM,  /* uniform [-1, 1): distinct values */
    BT_TIES,    /* six levels, three positive: the cut inside a tie */
    BT_NONPOS,  /* ±0 and negatives (some −1e-30): nothing kept, threshold 0 */
    BT_NAN,     /* 1/5 NaN (never kept), some ±inf (+inf kept) */
    BT_SPECIAL, /* NaN, ±inf, −0, subnormals 1e-40 and 1.4e-45, 3e38 */
    BT_TINY,    /* subnormals, −0 and tiny normals: a cut at the smallest subnormal */
    BT_RELU     /* ReLU codes: half zero */
};

static op_shape bt_shape(int64_t n, int64_t m, int64_t keep, int vals, int misalign, int in_place) {
    op_shape s = {.v = {n, m, keep, vals, in_place}, .misalign = misalign};
    return s;
}

static op_shape bt_exact(op_shape s) {
    s.v[BT_EXACT] = 1;
    return s;
}

static int batch_topk_shapes(op_shape *out, int cap) {
    const op_shape all[] = {
        bt_shape(7, 13, 10, BT_RANDOM, 0, 0),
        bt_shape(7, 13, 1, BT_RANDOM, 0, 0),            /* keep = 1 */
        bt_shape(7, 13, 91, BT_RANDOM, 0, 0),           /* keep = n*m */
        bt_shape(7, 13, 60, BT_RANDOM, 0, 0),           /* keep > positives (~45) */
        bt_shape(7, 13, 100000, BT_RANDOM, 0, 1),       /* keep >> n*m, in place */
        bt_shape(1, 37, 5, BT_RANDOM, 0, 0),            /* n = 1 */
        bt_shape(41, 1, 5, BT_RANDOM, 0, 0),            /* m = 1 */
        bt_shape(1, 1, 1, BT_RANDOM, 0, 0),             /* one entry */
        bt_shape(9, 31, 20, BT_TIES, 0, 0),             /* ties at the cut-off */
        bt_shape(9, 31, 1, BT_TIES, 0, 1),              /* keep 1: the whole top level */
        bt_shape(9, 31, 279, BT_TIES, 0, 0),            /* keep = n*m with ties */
        bt_shape(11, 17, 7, BT_NONPOS, 0, 0),           /* nothing positive: all 0 */
        bt_shape(13, 29, 40, BT_NAN, 0, 0),             /* NaN never kept; +inf is */
        bt_shape(13, 29, 400, BT_NAN, 0, 1),            /* keep > positives with NaN */
        bt_shape(19, 23, 30, BT_TINY, 0, 0),            /* subnormals, -0 */
        bt_shape(19, 23, 1000, BT_TINY, 0, 0),          /* cut-off = smallest subnormal */
        bt_shape(0, 5, 3, BT_RANDOM, 0, 0),             /* empty batch: threshold 0 */
        bt_shape(257, 1031, 257 * 32, BT_RANDOM, 0, 0), /* the CPU's parallel path */
        bt_shape(257, 1031, 257 * 32, BT_TIES, 0, 1),
        bt_shape(129, 1025, 129 * 1025, BT_RANDOM, 0, 0),
        bt_shape(37, 101, 50, BT_RANDOM, 0, 0),
        bt_shape(37, 101, 1, BT_RANDOM, 0, 0),
        bt_shape(37, 101, 37 * 101, BT_RANDOM, 0, 0),       /* keep = n*m: all positives */
        bt_shape(37, 101, 3 * 37 * 101, BT_RANDOM, 0, 0),   /* keep > n*m */
        bt_exact(bt_shape(37, 101, 1800, BT_RANDOM, 0, 0)), /* keep = #positives exactly */
        bt_shape(9, 100, 200, BT_TIES, 0, 0),               /* the cut falls inside a tie */
        bt_exact(bt_shape(9, 100, 450, BT_TIES, 0, 0)),
        bt_shape(5, 50, 10, BT_NONPOS, 0, 0),
        bt_shape(7, 301, 40, BT_SPECIAL, 1, 0), /* scalar path */
        bt_shape(7, 301, 1000, BT_SPECIAL, 0, 1),
        bt_shape(64, 33, 64 * 4, BT_RELU, 0, 1),
        bt_shape(1024, 4099, 1024 * 64, BT_RELU, 0, 1),   /* 4.2M entries, in place */
        bt_shape(4096, 1027, 4096 * 32, BT_RANDOM, 1, 0), /* 4.2M, misaligned */
        bt_shape(2048, 2048, 2048 * 16, BT_TIES, 0, 0),   /* 4.2M, massive ties */
    };
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && n < cap; i++)
        out[n++] = all[i];
    if (n < cap) { /* SAE-sized: 67M entries */
        out[n] = bt_shape(4096, 16384, 4096 * 64, BT_RANDOM, 0, 0);
        out[n++].large = 1;
    }
    return n;
}

static void batch_topk_bufs(const op_shape *s, op_buf *b) {
    const int64_t len = s->v[BT_N] * s->v[BT_M];
    b[0] = buf("x", len, OP_BUF_IN);
    b[1] = exact_buf(s->v[BT_IN_PLACE] ? op_alias("f (= x)", OP_F32, len, OP_BUF_INOUT, 0)
                                       : op_out("f", OP_F32, len));
    b[2] = exact_buf(op_out("threshold", OP_F32, 1));
}

static void batch_topk_tweak(const op_shape *s, void *const *host) {
    float *x = host[0];
    const int64_t len = s->v[BT_N] * s->v[BT_M];
    int64_t positives = 0;
    for (int64_t i = 0; i < len; i++) {
        const float u = x[i]; /* the fill: uniform [-1, 1) */
        switch (s->v[BT_VALS]) {
        case BT_TIES: x[i] = (float)rng_int(6) * 0.25f - 0.5f; break;
        case BT_NONPOS:
            x[i] = rng_int(3) == 0 ? (rng_int(2) ? 0.0f : -0.0f)
                                   : -fabsf(u) - (rng_int(3) == 0 ? 0.0f : 1e-30f);
            break;
        case BT_NAN:
            x[i] = rng_int(5) == 0   ? NAN
                   : rng_int(9) == 0 ? (rng_int(2) ? INFINITY : -INFINITY)
                                     : u;
            break;
        case BT_SPECIAL: {
            const int64_t t = rng_int(12);
            x[i] = t == 0   ? NAN
                   : t == 1 ? INFINITY
                   : t == 2 ? -INFINITY
                   : t == 3 ? -0.0f
                   : t == 4 ? 1e-40f
                   : t == 5 ? 1.4e-45f
                   : t == 6 ? 3.0e38f
                            : u;
            break;
        }
        case BT_TINY:
            x[i] = rng_int(4) == 0   ? 0x1p-149f * (float)(1 + rng_int(50))
                   : rng_int(3) == 0 ? -0.0f
                                     : u * 1e-37f;
            break;
        case BT_RELU: x[i] = fmaxf(u, 0.0f); break;
        default: break;
        }
        positives += x[i] > 0.0f;
    }
    if (s->v[BT_EXACT]) /* flip signs until exactly keep entries are positive */
        for (int64_t i = 0; i < len && positives != s->v[BT_KEEP]; i++)
            if ((x[i] > 0.0f) == (positives > s->v[BT_KEEP])) {
                positives += x[i] > 0.0f ? -1 : 1;
                x[i] = x[i] != 0.0f ? -x[i] : 0.5f;
            }
}

static int batch_topk_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, batch_topk, b[0], s->v[BT_N], s->v[BT_M], s->v[BT_KEEP], b[1], b[2]);
}

/* The r-th largest (1 <= r <= n) of p [n] (no NaN), reordering p: a quickselect with a three-way
   partition, linear also under massive ties (the SAE-sized shape would take seconds to sort). */
static float kth_largest(float *p, int64_t n, int64_t r) {
    int64_t lo = 0, hi = n; /* the rank r counts from lo within [lo, hi) */
    for (;;) {
        const float piv = p[lo + (hi - lo) / 2];
        int64_t gt = lo, i = lo, lt = hi; /* [lo, gt) > piv, [gt, lt) == piv, [lt, hi) < piv */
        while (i < lt) {
            const float v = p[i];
            if (v > piv)
                p[i++] = p[gt], p[gt++] = v;
            else if (v < piv)
                p[i] = p[--lt], p[lt] = v;
            else
                i++;
        }
        if (r <= gt - lo) {
            hi = gt;
        } else if (r <= lt - lo) {
            return piv;
        } else {
            r -= lt - lo;
            lo = lt;
        }
    }
}

/* The cut: the keep-th largest positive entry (or the smallest positive). */
static void batch_topk_naive(const op_shape *s, const void *const *in, double *const *want,
                             double *const *scale) {
    const float *x = in[0];
    const int64_t len = s->v[BT_N] * s->v[BT_M], keep = s->v[BT_KEEP];
    (void)scale;
    float *pos = new_floats(len);
    int64_t n_pos = 0;
    for (int64_t i = 0; i < len; i++)
        if (x[i] > 0) pos[n_pos++] = x[i];
    const float cut = n_pos == 0 ? 0.0f : kth_largest(pos, n_pos, keep < n_pos ? keep : n_pos);
    for (int64_t i = 0; i < len; i++)
        want[1][i] = x[i] > 0 && x[i] >= cut ? x[i] : 0.0;
    want[2][0] = cut;
    free(pos);
}

static void batch_topk_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {1, 2, 3, 4}, f[4], thr;
    rejected(SAEC_OP(dev, batch_topk, x, 2, 2, 0, f, &thr), "keep < 1");
    rejected(SAEC_OP(dev, batch_topk, x, -1, 2, 1, f, &thr), "n < 0");
    rejected(SAEC_OP(dev, batch_topk, x, 2, 2, 1, f, NULL), "no threshold");
}

static void batch_topk_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "batch_topk n=%lld m=%lld keep=%lld vals=%d exact_count=%d in_place=%d misalign=%d",
             (long long)s->v[BT_N], (long long)s->v[BT_M], (long long)s->v[BT_KEEP],
             (int)s->v[BT_VALS], (int)s->v[BT_EXACT], (int)s->v[BT_IN_PLACE], s->misalign);
}

/* keep n*k (k = 64) of the n*m pre-activations */
static op_shape batch_topk_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return bt_shape(n, m, n * 64, BT_RANDOM, 0, 0);
}

static saec_op_floor batch_topk_floor(const op_shape *s) {
    return saec_op_floor_batch_topk((double)s->v[BT_N], (double)s->v[BT_M]);
}

const op_case op_case_batch_topk = {.op = "batch_topk",
                                    .group = "batch_topk",
                                    .n_bufs = 3,
                                    OP_CASE_FUNCS(batch_topk),
                                    .tweak = batch_topk_tweak,
                                    .exact_be = 1,
                                    .bad_args = batch_topk_bad_args,
                                    .bench_name = "batch_topk_k64"};

/* ---- jumprelu: f[n, m] = pre > θ_j ? pre : 0, θ_j = theta[j·stride] (or its exp). Exact. ----
   v: n, m, stride, theta_is_log, in place, specials (1/40 each 0, −0, NaN in pre and 1/10 of
   pre exactly at θ: not kept); f: the range of theta (log θ when theta_is_log).
   Buffers: pre, theta, f. */
enum { JR_N, JR_M, JR_STRIDE, JR_LOG, JR_IN_PLACE, JR_SPECIALS };

static op_shape jr_shape(int64_t n, int64_t m, int64_t stride, int is_log, int in_place,
                         int misalign, float lo, float hi) {
    op_shape s = {.v = {n, m, stride, is_log, in_place, 1}, .f = {lo, hi}, .misalign = misalign};
    return s;
}

static int jumprelu_shapes(op_shape *out, int cap) {
    int n = 0;
    /* θ in [-0.1, 0.5), log θ in [-3, 0) */
    static const int64_t small[][2] = {{7, 13}, {1, 1}, {1, 45}, {33, 1}, {301, 257}};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        for (int64_t stride = 0; stride < 3; stride++)
            for (int is_log = 0; is_log < 2; is_log++)
                for (int in_place = 0; in_place < 2 && n < cap; in_place++)
                    out[n++] = jr_shape(small[i][0], small[i][1], stride, is_log, in_place, 0,
                                        is_log ? -3.0f : -0.1f, is_log ? 0.0f : 0.5f);
    /* θ in [-0.5, 0.5), log θ in [-3, -0.5): n, m, stride, in place, misaligned */
    static const int64_t wide[][5] = {{37, 101, 1, 0, 0},  {37, 101, 0, 0, 0}, /* one θ */
                                      {5, 4096, 1, 0, 0},                      /* float4 path */
                                      {64, 1024, 3, 0, 0},                     /* strided θ */
                                      {300, 513, 1, 0, 1}, {7, 64, 1, 1, 0},
                                      {1, 1, 0, 0, 0},     {0, 9, 1, 0, 0}};
    for (int is_log = 0; is_log < 2; is_log++)
        for (size_t i = 0; i < sizeof wide / sizeof wide[0] && n < cap; i++)
            out[n++] = jr_shape(wide[i][0], wide[i][1], wide[i][2], is_log, (int)wide[i][3],
                                (int)wide[i][4], is_log ? -3.0f : -0.5f, is_log ? -0.5f : 0.5f);
    if (n < cap) {
        out[n] = jr_shape(2048, 16384, 1, 1, 0, 0, -3.0f, -0.5f);
        out[n++].large = 1;
    }
    return n;
}

static int64_t jr_theta_len(const op_shape *s) {
    return s->v[JR_STRIDE] ? (s->v[JR_M] - 1) * s->v[JR_STRIDE] + 1 : 1;
}

static void jumprelu_bufs(const op_shape *s, op_buf *b) {
    const int64_t len = s->v[JR_N] * s->v[JR_M];
    b[0] = buf("pre", len, OP_BUF_IN);
    b[1] = buf("theta", jr_theta_len(s), OP_BUF_IN);
    b[2] = exact_buf(s->v[JR_IN_PLACE] ? op_alias("f (= pre)", OP_F32, len, OP_BUF_INOUT, 0)
                                       : op_out("f", OP_F32, len));
}

static void jumprelu_tweak(const op_shape *s, void *const *host) {
    float *pre = host[0], *theta = host[1];
    const int64_t n = s->v[JR_N], m = s->v[JR_M], stride = s->v[JR_STRIDE];
    const int is_log = (int)s->v[JR_LOG];
    for (int64_t i = 0; i < jr_theta_len(s); i++)
        theta[i] = s->f[0] + (s->f[1] - s->f[0]) * (float)rng_unit();
    if (!s->v[JR_SPECIALS]) return;
    for (int64_t i = 0; i < n * m; i++) {
        pre[i] = dense_special(pre[i]);
        const float t = theta[(i % m) * stride];
        /* exactly at θ (where CPU's expf and the correctly rounded exp agree) */
        if (rng_int(10) == 0 && (!is_log || expf(t) == theta_of(t, 1)))
            pre[i] = theta_of(t, is_log);
    }
}

static int jumprelu_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, jumprelu, b[0], s->v[JR_N], s->v[JR_M], b[1], s->v[JR_STRIDE],
                   (int)s->v[JR_LOG], b[2]);
}

static void jumprelu_naive(const op_shape *s, const void *const *in, double *const *want,
                           double *const *scale) {
    const float *pre = in[0], *theta = in[1];
    const int64_t n = s->v[JR_N], m = s->v[JR_M];
    (void)scale;
    float *th = new_floats(m); /* [m] θ_j */
    for (int64_t j = 0; j < m; j++)
        th[j] = theta_of(theta[j * s->v[JR_STRIDE]], (int)s->v[JR_LOG]);
    for (int64_t i = 0; i < n * m; i++)
        want[2][i] = pre[i] > th[i % m] ? pre[i] : 0.0;
    free(th);
}

static void jumprelu_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0}, t = 0;
    rejected(SAEC_OP(dev, jumprelu, x, 2, 2, NULL, 0, 0, x), "no theta");
    rejected(SAEC_OP(dev, jumprelu, x, 2, 2, &t, -1, 0, x), "stride < 0");
    rejected(SAEC_OP(dev, jumprelu, x, 2, 0, &t, 0, 0, x), "m = 0");
}

static void jumprelu_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "jumprelu n=%lld m=%lld stride=%lld theta_is_log=%d in_place=%d misalign=%d "
             "theta in [%g, %g)",
             (long long)s->v[JR_N], (long long)s->v[JR_M], (long long)s->v[JR_STRIDE],
             (int)s->v[JR_LOG], (int)s->v[JR_IN_PLACE], s->misalign, s->f[0], s->f[1]);
}

/* log θ in [-2.5, -1.5): θ ≈ 0.08 .. 0.22, a sparse JumpReLU; pre uniform, no specials */
static op_shape jumprelu_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    op_shape s = jr_shape(n, m, 1, 1, 0, 0, -2.5f, -1.5f);
    s.v[JR_SPECIALS] = 0;
    return s;
}

static saec_op_floor jumprelu_floor(const op_shape *s) {
    return saec_op_floor_jumprelu((double)s->v[JR_N], (double)s->v[JR_M]);
}

const op_case op_case_jumprelu = {.op = "jumprelu",
                                  .group = "jumprelu",
                                  .n_bufs = 3,
                                  OP_CASE_FUNCS(jumprelu),
                                  .tweak = jumprelu_tweak,
                                  .exact_be = 1,
                                  .bad_args = jumprelu_bad_args,
                                  .bench_name = "jumprelu"};

/* ---- jumprelu_backward: df[n, m] *= H(pre − θ) (exact); dlog_theta[m] += θ Σ_r −K(u)/bw ·
   (θ df + l0_coef), u = (pre − θ)/bw in float, K = 1[|u| < 1/2] (within 1e-6 of the terms) ----
   v: n, m, pre (JB_NEAR: all within ±1.5 bw of θ; JB_HALF: half near θ, half uniform with 0, −0
   and NaN; JB_PLAIN: uniform); f: bandwidth, l0_coef, the range of log θ.
   Buffers: pre, log_theta, df, dlog_theta. */
enum { JB_N, JB_M, JB_PRE };
enum { JB_NEAR, JB_HALF, JB_PLAIN };

static op_shape jb_shape(int64_t n, int64_t m, int pre, float bw, float l0, float lo, float hi,
                         int misalign) {
    op_shape s = {.v = {n, m, pre}, .f = {bw, l0, lo, hi}, .misalign = misalign};
    return s;
}

static int jumprelu_backward_shapes(op_shape *out, int cap) {
    const op_shape all[] = {
        jb_shape(7, 13, JB_NEAR, 0.05f, 0.01f, -2.0f, 0.0f, 0),
        jb_shape(1, 1, JB_NEAR, 0.05f, 0.01f, -2.0f, 0.0f, 0),
        jb_shape(1, 65, JB_NEAR, 0.001f, 0.5f, -2.0f, 0.0f, 0),
        jb_shape(37, 1, JB_NEAR, 0.2f, 0.0f, -2.0f, 0.0f, 0),
        jb_shape(301, 259, JB_NEAR, 0.001f, 1e-3f, -2.0f, 0.0f, 0), /* the CPU's parallel path */
        jb_shape(37, 101, JB_HALF, 0.01f, 0.03f, -3.0f, -1.0f, 0),
        jb_shape(300, 4099, JB_HALF, 0.01f, 0.03f, -3.0f, -1.0f, 0),
        jb_shape(256, 1024, JB_HALF, 0.01f, 0.03f, -3.0f, -1.0f, 0), /* float4 path */
        jb_shape(513, 1024, JB_HALF, 0.02f, 0.03f, -3.0f, -1.0f, 1), /* misaligned: scalar */
        jb_shape(4096, 64, JB_HALF, 0.05f, 0.03f, -3.0f, -1.0f, 0),  /* many row chunks */
        jb_shape(2000, 3, JB_HALF, 0.1f, 0.03f, -3.0f, -1.0f, 0),
        jb_shape(1, 1, JB_HALF, 0.001f, 0.03f, -3.0f, -1.0f, 0),
        jb_shape(0, 7, JB_HALF, 0.001f, 0.03f, -3.0f, -1.0f, 0), /* empty batch: no change */
    };
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && n < cap; i++)
        out[n++] = all[i];
    return n;
}

static void jumprelu_backward_bufs(const op_shape *s, op_buf *b) {
    const int64_t len = s->v[JB_N] * s->v[JB_M];
    b[0] = buf("pre", len, OP_BUF_IN);
    b[1] = buf("log_theta", s->v[JB_M], OP_BUF_IN);
    b[2] = exact_buf(buf("df", len, OP_BUF_INOUT)); /* the same H decisions */
    b[3] = buf("dlog_theta", s->v[JB_M], OP_BUF_INOUT);
    if (s->v[JB_N] == 0) b[3].exact = 1; /* nothing added */
}

static void jumprelu_backward_tweak(const op_shape *s, void *const *host) {
    float *pre = host[0], *lt = host[1];
    const int64_t n = s->v[JB_N], m = s->v[JB_M];
    const float bw = s->f[0];
    for (int64_t j = 0; j < m; j++)
        lt[j] = s->f[2] + (s->f[3] - s->f[2]) * (float)rng_unit();
    if (s->v[JB_PRE] == JB_PLAIN) return;
    for (int64_t i = 0; i < n * m; i++) {
        const float near = theta_of(lt[i % m], 1) + 1.5f * bw * rng_sym();
        pre[i] = s->v[JB_PRE] == JB_NEAR || rng_int(2) ? near : dense_special(pre[i]);
    }
}

static int jumprelu_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, jumprelu_backward, b[0], b[1], s->v[JB_N], s->v[JB_M], s->f[0], s->f[1],
                   b[2], b[3]);
}

/* The window decision in float as the op makes it; the sum in double. scale: |dlog_theta| + θ
   Σ|terms|. */
static void jumprelu_backward_naive(const op_shape *s, const void *const *in, double *const *want,
                                    double *const *scale) {
    const float *pre = in[0], *lt = in[1], *df = in[2], *dlog = in[3];
    const int64_t n = s->v[JB_N], m = s->v[JB_M];
    const float bw = s->f[0], l0 = s->f[1];
    for (int64_t j = 0; j < m; j++) {
        const float th = theta_of(lt[j], 1);
        double acc = 0, mag = 0;
        for (int64_t r = 0; r < n; r++) {
            const int64_t i = r * m + j;
            const int in_window = fabsf((pre[i] - th) / bw) < 0.5f; /* K(u) */
            want[2][i] = pre[i] > th ? df[i] : 0.0;                 /* df · H(pre − θ) */
            const double term = in_window ? -((double)th * df[i] + l0) / bw : 0.0;
            acc += term;
            mag += fabs(term);
        }
        want[3][j] = dlog[j] + (double)th * acc;
        scale[3][j] = fabs(dlog[j]) + (double)th * mag;
    }
}

static void jumprelu_backward_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    rejected(SAEC_OP(dev, jumprelu_backward, x, x, 2, 2, 0.0f, 0.1f, x, x), "bandwidth 0");
    rejected(SAEC_OP(dev, jumprelu_backward, x, NULL, 2, 2, 0.1f, 0.1f, x, x), "no log_theta");
}

static void jumprelu_backward_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "jumprelu_backward n=%lld m=%lld pre=%d bandwidth=%g l0_coef=%g log theta in "
             "[%g, %g) misalign=%d",
             (long long)s->v[JB_N], (long long)s->v[JB_M], (int)s->v[JB_PRE], s->f[0], s->f[1],
             s->f[2], s->f[3], s->misalign);
}

/* the JumpReLU benchmark's θ ≈ 0.08 .. 0.22 on uniform pre; bandwidth 0.001 */
static op_shape jumprelu_backward_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return jb_shape(n, m, JB_PLAIN, 0.001f, 1e-3f, -2.5f, -1.5f, 0);
}

static saec_op_floor jumprelu_backward_floor(const op_shape *s) {
    return saec_op_floor_jumprelu_backward((double)s->v[JB_N], (double)s->v[JB_M]);
}

const op_case op_case_jumprelu_backward = {.op = "jumprelu_backward",
                                           .group = "jumprelu_backward",
                                           .n_bufs = 4,
                                           OP_CASE_FUNCS(jumprelu_backward),
                                           .tweak = jumprelu_backward_tweak,
                                           .atol = 1e-7,
                                           .rtol = 1e-6,
                                           .atol_be = 1e-7,
                                           .rtol_be = 1e-6,
                                           .deterministic = 1,
                                           .bad_args = jumprelu_backward_bad_args,
                                           .bench_name = "jumprelu_backward"};

/* ---- l1_penalty: *penalty = coef Σ f ‖W_j‖ (double); dpre += coef ‖W_j‖ where f > 0;
   dW_j += coef (Σ_r f) W_j / ‖W_j‖ (none for zero rows) ----
   v: n, m, d, structure (L1_PLAIN; L1_MID_ZERO: latent m/2 has a zero decoder row; L1_DEAD:
   latent 0 never fires, latent 1 has a zero row); f: coef. f holds ReLU codes (half zero).
   Buffers: f, W, dpre, dW, penalty (double). */
enum { L1_N, L1_M, L1_D, L1_STRUCT };
enum { L1_PLAIN, L1_MID_ZERO, L1_DEAD };

static op_shape l1_shape(int64_t n, int64_t m, int64_t d, int structure, float coef, int misalign) {
    op_shape s = {.v = {n, m, d, structure}, .f = {coef}, .misalign = misalign};
    return s;
}

static int l1_penalty_shapes(op_shape *out, int cap) {
    const op_shape all[] = {
        l1_shape(7, 13, 5, L1_MID_ZERO, 0.3f, 0),
        l1_shape(1, 1, 1, L1_PLAIN, 2.0f, 0),
        l1_shape(1, 1, 3, L1_MID_ZERO, 2.0f, 0), /* the only row is zero: penalty 0, no dW */
        l1_shape(33, 1, 17, L1_PLAIN, 0.1f, 0),
        l1_shape(1, 71, 9, L1_MID_ZERO, 0.1f, 0),
        l1_shape(0, 9, 4, L1_PLAIN, 0.1f, 0),          /* empty batch: penalty 0, dW as it was */
        l1_shape(203, 517, 33, L1_MID_ZERO, 1e-3f, 0), /* the CPU's parallel path */
        l1_shape(37, 101, 41, L1_DEAD, 0.02f, 0),
        l1_shape(300, 1024, 64, L1_DEAD, 0.02f, 0), /* float4 paths */
        l1_shape(5, 4099, 3, L1_DEAD, 0.02f, 0),
        l1_shape(4096, 67, 130, L1_DEAD, 0.02f, 1), /* misaligned, many row chunks */
        l1_shape(513, 2048, 288, L1_DEAD, 0.02f, 0),
        l1_shape(1, 1, 1, L1_DEAD, 0.02f, 0),
        l1_shape(0, 7, 5, L1_DEAD, 0.02f, 0),
        l1_shape(9, 13, 0, L1_DEAD, 0.02f, 0), /* d = 0: every norm 0 */
    };
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && n < cap; i++)
        out[n++] = all[i];
    return n;
}

static void l1_penalty_bufs(const op_shape *s, op_buf *b) {
    const int64_t nm = s->v[L1_N] * s->v[L1_M], md = s->v[L1_M] * s->v[L1_D];
    b[0] = buf("f", nm, OP_BUF_IN);
    b[1] = buf("W", md, OP_BUF_IN);
    b[2] = buf("dpre", nm, OP_BUF_INOUT);
    b[3] = buf("dW", md, OP_BUF_INOUT);
    b[4] = op_out("penalty", OP_F32, 1);
    b[4].elem = OP_F64;
    if (s->v[L1_N] == 0) b[3].exact = b[4].exact = 1; /* dW += 0, penalty 0 */
}

static void l1_penalty_tweak(const op_shape *s, void *const *host) {
    float *f = host[0], *W = host[1];
    const int64_t n = s->v[L1_N], m = s->v[L1_M], d = s->v[L1_D];
    for (int64_t i = 0; i < n * m; i++)
        f[i] = fmaxf(f[i], 0.0f); /* ReLU codes */
    if (s->v[L1_STRUCT] == L1_DEAD) {
        for (int64_t r = 0; r < n; r++)
            f[r * m] = 0.0f;
        if (m > 1)
            for (int64_t c = 0; c < d; c++)
                W[d + c] = 0.0f;
    } else if (s->v[L1_STRUCT] == L1_MID_ZERO) {
        for (int64_t c = 0; c < d; c++)
            W[(m / 2) * d + c] = 0.0f;
    }
}

static int l1_penalty_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, l1_penalty, b[0], b[1], s->v[L1_N], s->v[L1_M], s->v[L1_D], s->f[0], b[2],
                   b[3], b[4]);
}

/* Against the reference the tolerance is 1e-6 of the terms plus 1e-9 (scales carry the 1e-9 as
   1e-3, the case's atol being 0), the penalty's 1e-12 of itself; a zero-norm row's dW and an
   entry with f <= 0 must come back exactly (scale 0). */
static void l1_penalty_naive(const op_shape *s, const void *const *in, double *const *want,
                             double *const *scale) {
    const float *f = in[0], *W = in[1], *dpre = in[2], *dW = in[3];
    const int64_t n = s->v[L1_N], m = s->v[L1_M], d = s->v[L1_D];
    const double coef = s->f[0];
    double pen = 0;
    for (int64_t j = 0; j < m; j++) {
        double nsq = 0, colsum = 0;
        for (int64_t c = 0; c < d; c++)
            nsq += (double)W[j * d + c] * W[j * d + c];
        const double norm = sqrt(nsq);
        for (int64_t r = 0; r < n; r++) {
            const int64_t i = r * m + j;
            colsum += f[i];
            pen += coef * f[i] * norm;
            const double g = f[i] > 0 ? coef * norm : 0.0;
            want[2][i] = dpre[i] + g;
            scale[2][i] = g != 0 ? fabs(dpre[i]) + fabs(g) + 1e-3 : 0.0;
        }
        for (int64_t c = 0; c < d; c++) {
            const double g = norm > 0 ? coef * colsum * W[j * d + c] / norm : 0.0;
            want[3][j * d + c] = dW[j * d + c] + g;
            scale[3][j * d + c] = norm > 0 ? fabs(dW[j * d + c]) + fabs(g) + 1e-3 : 0.0;
        }
    }
    want[4][0] = pen;
    scale[4][0] = 1e-6 * fabs(pen); /* rtol 1e-6 of it: 1e-12 of the penalty */
}

/* Another backend: ‖W_j‖ and the sums in another order. dpre within 1e-7 + 1e-6 (|dpre| +
   2 coef √d), dW within 1e-7 + 1e-6 (|dW| + coef Σ_r f |W| / ‖W_j‖), the penalty (a double sum
   of nonnegative terms) within 1e-12 + 1e-11 of itself. */
static int l1_close(const char *name, const float *got, const float *cpu, int64_t i, double scale,
                    char *why, size_t cap) {
    const double g = got[i], c = cpu[i];
    if (g == c || fabs(g - c) <= 1e-7 + 1e-6 * scale) return 1;
    snprintf(why, cap, "%s differs from the CPU op at [%lld]: %.9g, CPU %.9g (tolerance %.3g)",
             name, (long long)i, g, c, 1e-7 + 1e-6 * scale);
    return 0;
}

static int l1_penalty_compare_be(const op_shape *s, const void *const *in, const void *const *cpu,
                                 const void *const *other, char *why, size_t cap) {
    const float *f = in[0], *W = in[1], *dpre = in[2], *dW = in[3];
    const int64_t n = s->v[L1_N], m = s->v[L1_M], d = s->v[L1_D];
    const double coef = s->f[0];
    const double pc = *(const double *)cpu[4], po = *(const double *)other[4];
    if (!(po == pc || fabs(po - pc) <= 1e-12 + 1e-11 * fabs(pc))) {
        snprintf(why, cap, "penalty %.17g, CPU %.17g", po, pc);
        return 0;
    }
    for (int64_t i = 0; i < n * m; i++)
        if (!l1_close("dpre", other[2], cpu[2], i, fabs(dpre[i]) + 2.0 * coef * sqrt((double)d),
                      why, cap))
            return 0;
    for (int64_t j = 0; j < m; j++) {
        double nsq = 0, cs = 0;
        for (int64_t c = 0; c < d; c++)
            nsq += (double)W[j * d + c] * W[j * d + c];
        for (int64_t r = 0; r < n; r++)
            cs += f[r * m + j];
        const double norm = sqrt(nsq);
        for (int64_t c = 0; c < d; c++) {
            const double sc =
                fabs(dW[j * d + c]) + (norm > 0 ? coef * cs * fabs(W[j * d + c]) / norm : 0);
            if (!l1_close("dW", other[3], cpu[3], j * d + c, sc, why, cap)) return 0;
        }
    }
    return 1;
}

static void l1_penalty_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    double p;
    rejected(SAEC_OP(dev, l1_penalty, x, x, 2, 2, 1, 1.0f, x, x, NULL), "no penalty");
    rejected(SAEC_OP(dev, l1_penalty, x, x, 2, 0, 1, 1.0f, x, x, &p), "m = 0");
}

static void l1_penalty_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "l1_penalty n=%lld m=%lld d=%lld structure=%d coef=%g misalign=%d",
             (long long)s->v[L1_N], (long long)s->v[L1_M], (long long)s->v[L1_D],
             (int)s->v[L1_STRUCT], s->f[0], s->misalign);
}

/* ReLU codes f [n, m], the decoder W [m, d] */
static op_shape l1_penalty_bench(int64_t n, int64_t m, int64_t d) {
    return l1_shape(n, m, d, L1_PLAIN, 1e-3f, 0);
}

static saec_op_floor l1_penalty_floor(const op_shape *s) {
    return saec_op_floor_l1_penalty((double)s->v[L1_N], (double)s->v[L1_M], (double)s->v[L1_D]);
}

const op_case op_case_l1_penalty = {.op = "l1_penalty",
                                    .group = "l1_penalty",
                                    .n_bufs = 5,
                                    OP_CASE_FUNCS(l1_penalty),
                                    .tweak = l1_penalty_tweak,
                                    .atol = 0,
                                    .rtol = 1e-6,
                                    .compare_be = l1_penalty_compare_be,
                                    .deterministic = 1,
                                    .bad_args = l1_penalty_bad_args,
                                    .bench_name = "l1_penalty"};

/* ---- atm_stats: EMAs a, q, r [m] of f's mean, firing rate and reconstruction term ----
   v: n, m, d, NULL f and dfn (n = 0 only); f: beta. f holds ReLU codes, dfn small (0.01 of
   uniform), stats = {12, 37.5, 0.5}, a and q start in [0, 1), r in [-1, 1).
   Buffers: f, dfn, stats (double), W, a, q, r. */
enum { AS_N, AS_M, AS_D, AS_NULL };

static op_shape as_shape(int64_t n, int64_t m, int64_t d, float beta, int misalign) {
    op_shape s = {.v = {n, m, d}, .f = {beta}, .misalign = misalign};
    return s;
}

static int atm_stats_shapes(op_shape *out, int cap) {
    static const int64_t small[][3] = {{7, 13, 5},  {1, 1, 1},      {1, 67, 3},
                                       {45, 1, 11}, {257, 515, 19}, {0, 13, 5}};
    static const float betas[] = {0.0f, 0.99f};
    int n = 0;
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        for (int b = 0; b < 2 && n < cap; b++)
            out[n++] = as_shape(small[i][0], small[i][1], small[i][2], betas[b], 0);
    const op_shape more[] = {
        as_shape(37, 101, 41, 0.9f, 0),   as_shape(300, 1024, 64, 0.9f, 0), /* float4 paths */
        as_shape(4096, 67, 5, 0.9f, 0),                                     /* many row chunks */
        as_shape(513, 4099, 33, 0.9f, 1),                                   /* misaligned */
        as_shape(1, 1, 1, 0.9f, 0),       as_shape(0, 9, 4, 0.9f, 0), /* empty batch: unchanged */
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0] && n < cap; i++)
        out[n++] = more[i];
    if (n < cap) { /* n = 0 with f and dfn NULL */
        out[n] = as_shape(0, 13, 5, 0.99f, 0);
        out[n++].v[AS_NULL] = 1;
    }
    return n;
}

static void atm_stats_bufs(const op_shape *s, op_buf *b) {
    const int64_t nm = s->v[AS_N] * s->v[AS_M], m = s->v[AS_M];
    b[0] = s->v[AS_NULL] ? op_absent("f") : buf("f", nm, OP_BUF_IN);
    b[1] = s->v[AS_NULL] ? op_absent("dfn") : buf("dfn", nm, OP_BUF_IN);
    b[2] = op_buf_of("stats", OP_F64, SAEC_STAT_COUNT, OP_BUF_IN);
    b[3] = buf("W", m * s->v[AS_D], OP_BUF_IN);
    b[4] = buf("a", m, OP_BUF_INOUT);
    b[5] = buf("q", m, OP_BUF_INOUT);
    b[6] = buf("r", m, OP_BUF_INOUT);
    if (s->v[AS_N] == 0) b[4].exact = b[5].exact = b[6].exact = 1; /* unchanged */
}

static void atm_stats_tweak(const op_shape *s, void *const *host) {
    float *f = host[0], *dfn = host[1], *a = host[4], *q = host[5];
    double *stats = host[2];
    const int64_t nm = s->v[AS_N] * s->v[AS_M], m = s->v[AS_M];
    for (int64_t i = 0; f && i < nm; i++) {
        f[i] = fmaxf(f[i], 0.0f); /* ReLU codes */
        dfn[i] *= 0.01f;          /* code gradients of the nmse are small */
    }
    for (int64_t j = 0; j < m; j++)
        a[j] = fabsf(a[j]), q[j] = fabsf(q[j]);
    stats[0] = 12.0, stats[SAEC_STAT_SST] = 37.5, stats[2] = 0.5;
}

static int atm_stats_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, atm_stats, b[0], b[1], b[2], b[3], s->v[AS_N], s->v[AS_M], s->v[AS_D],
                   s->f[0], b[4], b[5], b[6]);
}

/* In double; scales: a |β a| + (1−β) Σ f / n, q |want|, r |β r| + (1−β) Σ |terms| / n. */
static void atm_stats_naive(const op_shape *s, const void *const *in, double *const *want,
                            double *const *scale) {
    const float *f = in[0], *dfn = in[1], *W = in[3], *a0 = in[4], *q0 = in[5], *r0 = in[6];
    const double *stats = in[2];
    const int64_t n = s->v[AS_N], m = s->v[AS_M], d = s->v[AS_D];
    const double beta = s->f[0], w_new = n > 0 ? (1 - beta) / (double)n : 0.0;
    for (int64_t j = 0; j < m; j++) {
        double nsq = 0;
        for (int64_t c = 0; c < d; c++)
            nsq += (double)W[j * d + c] * W[j * d + c];
        double sa = 0, sq = 0, sr = 0, mag = 0;
        for (int64_t r = 0; r < n; r++) {
            const double fv = f[r * m + j];
            const double dot = -(stats[SAEC_STAT_SST] / 2) * dfn[r * m + j]; /* ⟨W_j, e_r⟩ */
            sa += fv;
            sq += fv > 0;
            sr += fv * fv * nsq + 2 * fv * dot;
            mag += fv * fv * nsq + fabs(2 * fv * dot);
        }
        const double ka = n > 0 ? beta : 1.0; /* an empty batch leaves them as they are */
        want[4][j] = ka * a0[j] + w_new * sa;
        scale[4][j] = fabs(ka * a0[j]) + w_new * sa;
        want[5][j] = ka * q0[j] + w_new * sq;
        want[6][j] = ka * r0[j] + w_new * sr;
        scale[6][j] = fabs(ka * r0[j]) + w_new * mag;
    }
}

static void atm_stats_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    double st[3] = {0};
    rejected(SAEC_OP(dev, atm_stats, x, x, st, x, 2, 2, 1, 0.9f, NULL, x, x), "no a");
    rejected(SAEC_OP(dev, atm_stats, x, x, NULL, x, 2, 2, 1, 0.9f, x, x, x), "no stats");
}

static void atm_stats_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "atm_stats n=%lld m=%lld d=%lld beta=%g null_inputs=%d misalign=%d",
             (long long)s->v[AS_N], (long long)s->v[AS_M], (long long)s->v[AS_D], s->f[0],
             (int)s->v[AS_NULL], s->misalign);
}

/* ReLU codes f [n, m], dfn [n, m], the decoder W [m, d] */
static op_shape atm_stats_bench(int64_t n, int64_t m, int64_t d) {
    return as_shape(n, m, d, 0.99f, 0);
}

static saec_op_floor atm_stats_floor(const op_shape *s) {
    return saec_op_floor_atm_stats((double)s->v[AS_N], (double)s->v[AS_M], (double)s->v[AS_D]);
}

const op_case op_case_atm_stats = {.op = "atm_stats",
                                   .group = "atm_stats",
                                   .n_bufs = 7,
                                   OP_CASE_FUNCS(atm_stats),
                                   .tweak = atm_stats_tweak,
                                   .atol = 1e-9,
                                   .rtol = 1e-6,
                                   .atol_be = 1e-9,
                                   .rtol_be = 1e-6,
                                   .bad_args = atm_stats_bad_args,
                                   .bench_name = "atm_stats"};

/* ---- atm_mask: keep[m] = 0 where the hash draw falls below the masking probability, else 1.
   Exact (the same hash draws; the importances and θ are double sums). ----
   v: m, statistics (AM_*), counter, seed, weights (0: 1/3 each; 1: 0.25, 0.35, 0.4); f: c, rate.
   Buffers: a, q, r, keep. */
enum { AM_M, AM_KIND, AM_COUNTER, AM_SEED, AM_WEIGHTS };
enum {
    AM_RANDOM,     /* a in [0, 1), q in [0, 0.1), r in [-0.2, 0.8): some latents hurt */
    AM_SKEWED,     /* a, q: u³; r: 0.05 ± 0.1 (a mean well away from 0) */
    AM_ZERO_Q,     /* as AM_RANDOM, q = 0: its mean 0, it contributes 0 */
    AM_SKEWED_Q0,  /* as AM_SKEWED, q = 0 */
    AM_R_NEGATIVE, /* as AM_SKEWED, r = −u² */
    AM_EQUAL,      /* all importances equal: nothing masked */
    AM_ALL_ZERO,   /* θ = 0: nothing masked */
    AM_UNIFORM     /* a, q, r in [0, 1) (the benchmark's) */
};

static op_shape am_shape(int64_t m, int kind, float c, float rate, uint64_t counter, uint64_t seed,
                         int weights) {
    op_shape s = {.v = {m, kind, (int64_t)counter, (int64_t)seed, weights}, .f = {c, rate}};
    return s;
}

static int atm_mask_shapes(op_shape *out, int cap) {
    const op_shape all[] = {
        am_shape(1, AM_RANDOM, 0.0f, 1.0f, 7, 1234, 0), /* one latent: I = θ, never masked */
        am_shape(13, AM_RANDOM, 0.0f, 1.0f, 7, 1234, 0),
        am_shape(1001, AM_RANDOM, 0.0f, 1.0f, 7, 1234, 0),
        am_shape(1001, AM_RANDOM, 0.5f, 3.0f, 7, 1234, 0),  /* higher θ, faster rate */
        am_shape(1001, AM_RANDOM, -0.5f, 1.0f, 7, 1234, 0), /* lower θ */
        am_shape(1001, AM_ZERO_Q, 0.0f, 1.0f, 7, 1234, 0),
        am_shape(1001, AM_EQUAL, 0.0f, 1.0f, 7, 1234, 0),
        am_shape(1001, AM_EQUAL, 1.0f, 5.0f, 7, 1234, 0),
        am_shape(1001, AM_ALL_ZERO, 0.0f, 1.0f, 7, 1234, 0),
        am_shape(40000, AM_RANDOM, 0.0f, 1.0f, 7, 1234, 0), /* the CPU's parallel path */
        am_shape(1, AM_SKEWED, 0.0f, 1.0f, 0, 0x5AEC0A7Bull + 1, 1),
        am_shape(7, AM_SKEWED, 0.0f, 1.0f, 3, 0x5AEC0A7Bull + 7, 1),
        am_shape(1000, AM_SKEWED, 0.0f, 1.0f, 17, 0x5AEC0A7Bull + 1000, 1),
        am_shape(4099, AM_SKEWED, -1.0f, 2.0f, 5, 0x5AEC0A7Bull + 4099, 1), /* θ below the mean */
        am_shape(65537, AM_SKEWED, 0.5f, 1.0f, (uint64_t)1 << 40, 0x5AEC0A7Bull + 65537, 1),
        am_shape(1000, AM_SKEWED_Q0, 0.0f, 1.0f, 9, 0x5AEC0A7Bull + 1000, 1),
        am_shape(1000, AM_ALL_ZERO, 0.0f, 1.0f, 9, 0x5AEC0A7Bull + 1000, 1),
        am_shape(1000, AM_R_NEGATIVE, 0.0f, 1.0f, 11, 0x5AEC0A7Bull + 1000, 1),
    };
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && n < cap; i++)
        out[n++] = all[i];
    return n;
}

static void atm_mask_bufs(const op_shape *s, op_buf *b) {
    const int64_t m = s->v[AM_M];
    b[0] = buf("a", m, OP_BUF_IN);
    b[1] = buf("q", m, OP_BUF_IN);
    b[2] = buf("r", m, OP_BUF_IN);
    b[3] = exact_buf(op_out("keep", OP_F32, m));
}

static void atm_mask_tweak(const op_shape *s, void *const *host) {
    float *a = host[0], *q = host[1], *r = host[2];
    const int kind = (int)s->v[AM_KIND];
    for (int64_t j = 0; j < s->v[AM_M]; j++) {
        if (kind == AM_EQUAL) {
            a[j] = 0.3f, q[j] = 0.05f, r[j] = 0.7f;
        } else if (kind == AM_ALL_ZERO) {
            a[j] = q[j] = r[j] = 0.0f;
        } else if (kind == AM_UNIFORM) {
            a[j] = fabsf(a[j]), q[j] = fabsf(q[j]), r[j] = fabsf(r[j]);
        } else if (kind == AM_RANDOM || kind == AM_ZERO_Q) {
            a[j] = (float)rng_unit();
            q[j] = kind == AM_ZERO_Q ? 0.0f : (float)rng_unit() * 0.1f;
            r[j] = (float)(rng_unit() - 0.2);
        } else {
            const float ua = (float)rng_unit(), uq = (float)rng_unit(), ur = (float)rng_unit();
            a[j] = ua * ua * ua;
            q[j] = kind == AM_SKEWED_Q0 ? 0.0f : uq * uq * uq;
            r[j] = kind == AM_R_NEGATIVE ? -ur * ur : 0.05f + rng_sym() * 0.1f;
        }
    }
}

static const float *am_weights(const op_shape *s) {
    static const float thirds[3] = {1.0f / 3, 1.0f / 3, 1.0f / 3}, skewed[3] = {0.25f, 0.35f, 0.4f};
    return s->v[AM_WEIGHTS] ? skewed : thirds;
}

static int atm_mask_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, atm_mask, b[0], b[1], b[2], s->v[AM_M], am_weights(s), s->f[0], s->f[1],
                   (uint64_t)s->v[AM_SEED], (uint64_t)s->v[AM_COUNTER], b[3]);
}

/* I_j = Σ_s w_s stat_s,j / mean(stat_s), θ = mean(I) + c std(I), masked where θ > 0, I_j < θ
   and the draw u_j < 1 − exp(−rate (θ − I_j)/θ). */
static void atm_mask_naive(const op_shape *s, const void *const *in, double *const *want,
                           double *const *scale) {
    const float *st[3] = {in[0], in[1], in[2]}, *w = am_weights(s);
    const int64_t m = s->v[AM_M];
    const uint64_t seed = (uint64_t)s->v[AM_SEED], counter = (uint64_t)s->v[AM_COUNTER];
    (void)scale;
    double mean[3];
    for (int k = 0; k < 3; k++) {
        double sum = 0;
        for (int64_t j = 0; j < m; j++)
            sum += st[k][j];
        mean[k] = sum / (double)m;
    }
    double *imp = new_doubles(m), im = 0;
    for (int64_t j = 0; j < m; j++) {
        imp[j] = 0;
        for (int k = 0; k < 3; k++)
            if (mean[k] != 0) imp[j] += (double)w[k] * st[k][j] / mean[k];
        im += imp[j] / (double)m;
    }
    double var = 0;
    for (int64_t j = 0; j < m; j++)
        var += (imp[j] - im) * (imp[j] - im) / (double)m;
    const double theta = im + s->f[0] * sqrt(var);
    for (int64_t j = 0; j < m; j++) {
        want[3][j] = 1.0;
        if (theta > 0 && imp[j] < theta) {
            const double p = 1 - exp(-(double)s->f[1] * (theta - imp[j]) / theta);
            if (saec_hash_uniform(seed, SAEC_RNG_ATM_MASK, counter * (uint64_t)m + (uint64_t)j) < p)
                want[3][j] = 0.0;
        }
    }
    free(imp);
}

static void atm_mask_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[2] = {0};
    const float w[3] = {1, 1, 1};
    rejected(SAEC_OP(dev, atm_mask, x, x, x, 0, w, 0.0f, 1.0f, 1, 0, x), "m = 0");
    rejected(SAEC_OP(dev, atm_mask, x, x, x, 2, NULL, 0.0f, 1.0f, 1, 0, x), "no weights");
}

static void atm_mask_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "atm_mask m=%lld kind=%d c=%g rate=%g counter=%llu seed=%llu weights=%d",
             (long long)s->v[AM_M], (int)s->v[AM_KIND], s->f[0], s->f[1],
             (unsigned long long)s->v[AM_COUNTER], (unsigned long long)s->v[AM_SEED],
             (int)s->v[AM_WEIGHTS]);
}

static op_shape atm_mask_bench(int64_t n, int64_t m, int64_t d) {
    (void)n, (void)d;
    return am_shape(m, AM_UNIFORM, 0.0f, 1.0f, 7, 42, 0);
}

static saec_op_floor atm_mask_floor(const op_shape *s) {
    return saec_op_floor_atm_mask((double)s->v[AM_M]);
}

const op_case op_case_atm_mask = {.op = "atm_mask",
                                  .group = "atm_mask",
                                  .n_bufs = 4,
                                  OP_CASE_FUNCS(atm_mask),
                                  .tweak = atm_mask_tweak,
                                  .exact_be = 1,
                                  .deterministic = 1,
                                  .bad_args = atm_mask_bad_args,
                                  .bench_name = "atm_mask"};

/* ---- scale_cols: x[n, m] *= scale[m]. Exact (one float multiply). ----
   v: n, m. x: 1/20 ±0, else uniform (no NaN: the GPU returns the canonical NaN); scale: 1/4
   each 0 and 1 (a keep mask), else 3·uniform. Buffers: x, scale. */
static op_shape sc_shape(int64_t n, int64_t m, int misalign) {
    op_shape s = {.v = {n, m}, .misalign = misalign};
    return s;
}

static int scale_cols_shapes(op_shape *out, int cap) {
    const op_shape all[] = {sc_shape(7, 13, 0),   sc_shape(1, 1, 0),     sc_shape(1, 45, 0),
                            sc_shape(33, 1, 0),   sc_shape(301, 257, 0), sc_shape(0, 3, 0),
                            sc_shape(37, 101, 0), sc_shape(64, 1024, 0), /* float4 path */
                            sc_shape(5, 4099, 1)};                       /* misaligned */
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && n < cap; i++)
        out[n++] = all[i];
    return n;
}

static void scale_cols_bufs(const op_shape *s, op_buf *b) {
    b[0] = exact_buf(buf("x", s->v[0] * s->v[1], OP_BUF_INOUT));
    b[1] = buf("scale", s->v[1], OP_BUF_IN);
}

static void scale_cols_tweak(const op_shape *s, void *const *host) {
    float *x = host[0], *sc = host[1];
    for (int64_t i = 0; i < s->v[0] * s->v[1]; i++)
        if (rng_int(20) == 0) x[i] = rng_int(2) ? 0.0f : -0.0f;
    for (int64_t j = 0; j < s->v[1]; j++) {
        const int64_t t = rng_int(4);
        sc[j] = t == 0 ? 0.0f : t == 1 ? 1.0f : 3.0f * sc[j];
    }
}

static int scale_cols_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, scale_cols, b[0], s->v[0], s->v[1], b[1]);
}

static void scale_cols_naive(const op_shape *s, const void *const *in, double *const *want,
                             double *const *scale) {
    const float *x = in[0], *sc = in[1];
    (void)scale;
    for (int64_t i = 0; i < s->v[0] * s->v[1]; i++) /* exact in double, rounded once */
        want[0][i] = (float)((double)x[i] * sc[i % s->v[1]]);
}

static void scale_cols_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[2] = {0};
    rejected(SAEC_OP(dev, scale_cols, x, 1, 2, NULL), "no scale");
    rejected(SAEC_OP(dev, scale_cols, x, 1, 0, x), "m = 0");
}

static void scale_cols_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "scale_cols n=%lld m=%lld misalign=%d", (long long)s->v[0], (long long)s->v[1],
             s->misalign);
}

/* ATM's keep mask over the codes [n, m] */
static op_shape scale_cols_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return sc_shape(n, m, 0);
}

static saec_op_floor scale_cols_floor(const op_shape *s) {
    return saec_op_floor_scale_cols((double)s->v[0], (double)s->v[1]);
}

const op_case op_case_scale_cols = {.op = "scale_cols",
                                    .group = "scale_cols",
                                    .n_bufs = 2,
                                    OP_CASE_FUNCS(scale_cols),
                                    .tweak = scale_cols_tweak,
                                    .exact_be = 1,
                                    .bad_args = scale_cols_bad_args,
                                    .bench_name = "scale_cols"};

/* ---- silu: y[n] = x σ(x); silu_backward: dx[n] = dy σ(x) (1 + x (1 − σ(x))) ----
   v: n, in place (y = x; dx = dy), specials (x: the special values below first, then 1/8 in
   [-100, 100), the rest in [-8, 8)), NULL buffers (n = 0 only). Against the reference within
   1e-6 of the terms (|x| σ; |dy| σ (1 + |x| (1 − σ)): near silu's minimum the float evaluation
   cancels), another backend within 2e-6 (expf differs by an ulp or two).
   Buffers: silu x, y; silu_backward x, dy, dx. */
enum { SI_N, SI_IN_PLACE, SI_SPECIALS, SI_NULL };

static op_shape si_shape(int64_t n, int in_place, int misalign) {
    op_shape s = {.v = {n, in_place, 1}, .misalign = misalign};
    return s;
}

static int silu_shapes(op_shape *out, int cap) {
    static const int64_t sizes[] = {19, 1, 7, 1001, 100003}; /* 100003: the CPU's parallel path */
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int in_place = 0; in_place < 2 && n < cap; in_place++)
            out[n++] = si_shape(sizes[i], in_place, 0);
    const op_shape more[] = {si_shape(10007, 0, 0), si_shape(10007, 0, 1), /* float4 + tail */
                             si_shape(4096, 0, 0),  si_shape(10007, 1, 0),
                             si_shape(10007, 1, 1), si_shape(4096, 1, 0), /* misaligned: scalar */
                             si_shape(15, 0, 0),    si_shape(0, 0, 0)};
    for (size_t i = 0; i < sizeof more / sizeof more[0] && n < cap; i++)
        out[n++] = more[i];
    if (n < cap) { /* n = 0 with every pointer NULL: accepted */
        out[n] = si_shape(0, 0, 0);
        out[n++].v[SI_NULL] = 1;
    }
    return n;
}

static void silu_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[SI_N];
    if (s->v[SI_NULL]) {
        b[0] = op_absent("x"), b[1] = op_absent("y");
        return;
    }
    b[0] = buf("x", n, OP_BUF_IN);
    b[1] = s->v[SI_IN_PLACE] ? op_alias("y (= x)", OP_F32, n, OP_BUF_INOUT, 0)
                             : op_out("y", OP_F32, n);
}

static void silu_tweak(const op_shape *s, void *const *host) {
    static const float special[] = {0.0f,  -0.0f,  1.0f,     -1.0f,  -1.2784645f, 17.0f,   -17.0f,
                                    30.0f, -30.0f, -87.0f,   -88.5f, -89.0f,      -100.0f, 100.0f,
                                    1e-8f, -1e-8f, -103.97f, 88.0f,  3.5e-39f};
    const int64_t n_special = (int64_t)(sizeof special / sizeof special[0]);
    float *x = host[0];
    if (!x || !s->v[SI_SPECIALS]) return;
    for (int64_t i = 0; i < s->v[SI_N]; i++)
        x[i] = i < n_special ? special[i] : (rng_int(8) == 0 ? 100.0f : 8.0f) * x[i];
}

static int silu_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, silu, b[0], s->v[SI_N], b[1]);
}

static double sigmoid_d(double v) { return 1.0 / (1.0 + exp(-v)); }

static void silu_naive(const op_shape *s, const void *const *in, double *const *want,
                       double *const *scale) {
    const float *x = in[0];
    for (int64_t i = 0; i < s->v[SI_N]; i++) {
        want[1][i] = x[i] * sigmoid_d(x[i]);
        scale[1][i] = fabs((double)x[i]) * sigmoid_d(x[i]);
    }
}

static void silu_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float v[2] = {0};
    rejected(SAEC_OP(dev, silu, v, -1, v), "n < 0");
    rejected(SAEC_OP(dev, silu, v, 2, NULL), "no y");
}

static void silu_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "silu n=%lld in_place=%d misalign=%d null=%d", (long long)s->v[SI_N],
             (int)s->v[SI_IN_PLACE], s->misalign, (int)s->v[SI_NULL]);
}

/* n*d elements (far more than TIDE's adaln MLP needs: where bandwidth, not launch latency, is
   measured), uniform [-1, 1) */
static op_shape silu_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    op_shape s = si_shape(n * d, 0, 0);
    s.v[SI_SPECIALS] = 0;
    return s;
}

static saec_op_floor silu_floor(const op_shape *s) {
    return saec_op_floor_silu((double)s->v[SI_N]);
}

const op_case op_case_silu = {.op = "silu",
                              .group = "silu",
                              .n_bufs = 2,
                              OP_CASE_FUNCS(silu),
                              .tweak = silu_tweak,
                              .atol = 1e-36,
                              .rtol = 1e-6,
                              .atol_be = 1e-36,
                              .rtol_be = 2e-6,
                              .bad_args = silu_bad_args,
                              .bench_name = "silu"};

static int silu_backward_shapes(op_shape *out, int cap) { return silu_shapes(out, cap); }

static void silu_backward_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[SI_N];
    if (s->v[SI_NULL]) {
        b[0] = op_absent("x"), b[1] = op_absent("dy"), b[2] = op_absent("dx");
        return;
    }
    b[0] = buf("x", n, OP_BUF_IN);
    b[1] = buf("dy", n, OP_BUF_IN);
    b[2] = s->v[SI_IN_PLACE] ? op_alias("dx (= dy)", OP_F32, n, OP_BUF_INOUT, 1)
                             : op_out("dx", OP_F32, n);
}

static int silu_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, silu_backward, b[0], b[1], s->v[SI_N], b[2]);
}

static void silu_backward_naive(const op_shape *s, const void *const *in, double *const *want,
                                double *const *scale) {
    const float *x = in[0], *dy = in[1];
    for (int64_t i = 0; i < s->v[SI_N]; i++) {
        const double v = x[i], sg = sigmoid_d(v);
        want[2][i] = dy[i] * sg * (1.0 + v * (1.0 - sg));
        scale[2][i] = fabs((double)dy[i]) * sg * (1.0 + fabs(v) * (1.0 - sg));
    }
}

static void silu_backward_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float v[2] = {0};
    rejected(SAEC_OP(dev, silu_backward, v, NULL, 2, v), "no dy");
    rejected(SAEC_OP(dev, silu_backward, v, v, -3, v), "n < 0");
}

static void silu_backward_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "silu_backward n=%lld in_place=%d misalign=%d null=%d", (long long)s->v[SI_N],
             (int)s->v[SI_IN_PLACE], s->misalign, (int)s->v[SI_NULL]);
}

static op_shape silu_backward_bench(int64_t n, int64_t m, int64_t d) { return silu_bench(n, m, d); }

static saec_op_floor silu_backward_floor(const op_shape *s) {
    return saec_op_floor_silu_backward((double)s->v[SI_N]);
}

const op_case op_case_silu_backward = {.op = "silu_backward",
                                       .group = "silu",
                                       .n_bufs = 3,
                                       OP_CASE_FUNCS(silu_backward),
                                       .tweak = silu_tweak,
                                       .atol = 1e-34,
                                       .rtol = 1e-6,
                                       .atol_be = 1e-34,
                                       .rtol_be = 2e-6,
                                       .bad_args = silu_backward_bad_args,
                                       .bench_name = "silu_backward"};
