/* The op cases of the selection, sparse-code and latent-bookkeeping families
 * (kernels/cpu/cpu_topk.c, cpu_sparse.c, cpu_latents.c; kernels/cuda/cuda_topk.cu, cuda_sparse.cu,
 * cuda_latents.cu): topk_rows (three cases: unmasked k < 512, masked, large k), sparse_decode,
 * sparse_row_dots, sparse_outer_accum, track_fired, track_fired_dense, dead_latents_update.
 * Shapes: k = 1 and k = m, m = 1, odd n, m, d; ties (five levels, all equal, +0/−0), NaN and ±inf
 * (never selected; −inf is), masks with fewer eligible columns than k, exactly k, none and half;
 * m >= 1M and the k > 2048 sort path; empty slots (idx −1 holding a garbage value 1e6 that the op
 * must skip), duplicates in a row, a hot latent, latents no code uses (their rows must stay bit
 * for bit); accumulate = 0 over NaN, bias NULL; k = 0 (no codes: every clock advances), n = 0,
 * m = 0, dead_after 0, fire_count NULL, codes kept but not firing (0, −0.5, −1, NaN), two batches
 * or steps in one call (the second from the first's state), misaligned pointers. See op_case.h.
 *
 * Structured inputs (indices, masks, values with ties, state) come from test_random.h's generator
 * of this file, seeded in each tweak from the case and its shape: the same inputs whatever runs
 * before.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_case.h"
#include "test_random.h"

static op_buf buf(const char *name, op_elem elem, int64_t count, op_buf_role role) {
    return op_buf_of(name, elem, count, role);
}

/* The device double *dead_count: compared exactly. */
static op_buf dead_count_buf(void) {
    op_buf b = op_out("dead_count (exact)", OP_F64, 1);
    b.exact = 1;
    return b;
}

/* Seed this file's generator from the case (salt) and the shape. */
static void seed_from(const op_shape *s, uint64_t salt) {
    rng_seed(op_shape_hash(s, 0xCBF29CE484222325ull ^ salt) ^ (uint64_t)s->misalign);
}

static op_shape shape8(int64_t v0, int64_t v1, int64_t v2, int64_t v3, int64_t v4, int64_t v5,
                       int64_t v6, int64_t v7) {
    op_shape s = {.v = {v0, v1, v2, v3, v4, v5, v6, v7}};
    return s;
}

/* ================================ selection: topk_rows ====================================== */

/* v: n, m, k, values, mask. Buffers: x [n, m], mask [m] (or NULL), idx [n, k], val [n, k]. */
enum { T_N, T_M, T_K, T_VALS, T_MASK };
enum { VALS_RANDOM, VALS_TIES, VALS_EQUAL, VALS_ASCENDING, VALS_NAN, VALS_ZEROS, VALS_PRE };
enum { MASK_NONE, MASK_FEW, MASK_HALF, MASK_EMPTY, MASK_EXACT_K, MASK_PCT5 };

typedef struct {
    int64_t n, m, k;
    int vals, mask, misalign, large;
} topk_row;

static int topk_fill(const topk_row *rows, int count, op_shape *out, int cap) {
    int n = 0;
    for (int i = 0; i < count && n < cap; i++) {
        out[n] = shape8(rows[i].n, rows[i].m, rows[i].k, rows[i].vals, rows[i].mask, 0, 0, 0);
        out[n].misalign = rows[i].misalign;
        out[n++].large = rows[i].large;
    }
    return n;
}

/* Unmasked, k < 512 (the one-block-per-row radix select). */
static int topk_rows_shapes(op_shape *out, int cap) {
    static const topk_row rows[] = {
        {5, 1, 1, VALS_RANDOM, MASK_NONE, 0, 0},       /* m = k = 1 */
        {7, 37, 1, VALS_RANDOM, MASK_NONE, 0, 0},      /* k = 1 */
        {7, 37, 37, VALS_RANDOM, MASK_NONE, 0, 0},     /* k = m */
        {9, 100, 13, VALS_TIES, MASK_NONE, 0, 0},      /* ties to the lower index */
        {4, 77, 9, VALS_EQUAL, MASK_NONE, 0, 0},       /* all equal: 0 .. k-1 */
        {3, 5003, 100, VALS_EQUAL, MASK_NONE, 0, 0},   /* more ties than the candidate buffer */
        {4, 77, 9, VALS_ASCENDING, MASK_NONE, 0, 0},   /* every column enters the heap */
        {300, 513, 17, VALS_RANDOM, MASK_NONE, 0, 0},  /* the parallel path */
        {5, 200, 150, VALS_NAN, MASK_NONE, 0, 0},      /* NaN never selected; -inf is */
        {5, 1001, 5, VALS_NAN, MASK_NONE, 0, 0},       /* NaN inside skipped blocks */
        {6, 4099, 64, VALS_ZEROS, MASK_NONE, 0, 0},    /* -0 ties +0 */
        {33, 16384, 64, VALS_RANDOM, MASK_NONE, 0, 0}, /* row cached in shared memory */
        {4, 16391, 64, VALS_RANDOM, MASK_NONE, 0, 0},  /* SAE-like width */
        {4, (1 << 20) + 3, 64, VALS_RANDOM, MASK_NONE, 0, 1}, /* m >= 1M */
        {512, 65536, 64, VALS_RANDOM, MASK_NONE, 0, 1}};
    return topk_fill(rows, (int)(sizeof rows / sizeof rows[0]), out, cap);
}

/* With a mask (AuxK over the dead latents). */
static int topk_rows_masked_shapes(op_shape *out, int cap) {
    static const topk_row rows[] = {
        {9, 100, 13, VALS_RANDOM, MASK_FEW, 0, 0},   /* fewer eligible than k: -1 */
        {9, 100, 13, VALS_TIES, MASK_EXACT_K, 0, 0}, /* exactly k eligible */
        {3, 50, 4, VALS_RANDOM, MASK_EMPTY, 0, 0},   /* nothing eligible */
        {6, 101, 1, VALS_TIES, MASK_HALF, 0, 0},     /* k = 1 with a mask */
        {300, 513, 17, VALS_TIES, MASK_HALF, 0, 0},  /* parallel, mask, ties */
        {300, 513, 17, VALS_TIES, MASK_HALF, 1, 0},  /* misaligned: scalar loads */
        {5, 203, 7, VALS_NAN, MASK_HALF, 0, 0},
        {5, 16391, 64, VALS_TIES, MASK_HALF, 0, 0},
        {2, 16391, 64, VALS_TIES, MASK_HALF, 0, 0},
        {3, 70001, 64, VALS_RANDOM, MASK_FEW, 0, 0}, /* AuxK-like: few dead latents */
        {3, 5000, 3000, VALS_TIES, MASK_HALF, 0, 0}, /* k > 2048: sort path */
        {2, 1 << 20, 512, VALS_TIES, MASK_HALF, 0, 1}};
    return topk_fill(rows, (int)(sizeof rows / sizeof rows[0]), out, cap);
}

/* Unmasked, k >= 512: the row read twice, and the sort path (k > 2048). */
static int topk_rows_large_k_shapes(op_shape *out, int cap) {
    static const topk_row rows[] = {
        {3, 1000, 1000, VALS_TIES, MASK_NONE, 0, 0},   /* k = m with ties */
        {8, 65536, 512, VALS_RANDOM, MASK_NONE, 0, 0}, /* row read twice */
        {3, 5000, 3000, VALS_RANDOM, MASK_NONE, 0, 0}, /* k > 2048: sort path */
        {6, 4099, 1500, VALS_ZEROS, MASK_NONE, 0, 0},  /* -0 and +0 selected: -0 stays -0 */
        {2, 4099, 4099, VALS_NAN, MASK_NONE, 1, 0},
        {3, 1 << 20, 512, VALS_RANDOM, MASK_NONE, 0, 1}};
    return topk_fill(rows, (int)(sizeof rows / sizeof rows[0]), out, cap);
}

static void topk_rows_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[T_N], m = s->v[T_M], k = s->v[T_K];
    b[0] = buf("x", OP_F32, n * m, OP_BUF_IN);
    b[1] = s->v[T_MASK] != MASK_NONE ? buf("mask", OP_U8, m, OP_BUF_IN) : op_absent("mask");
    b[2] = buf("idx", OP_I32, n * k, OP_BUF_OUT);
    b[3] = op_out("val", OP_F32, n * k);
    b[3].exact = 1;
}

static void topk_rows_tweak(const op_shape *s, void *const *host) {
    seed_from(s, 1);
    const int64_t n = s->v[T_N], m = s->v[T_M], k = s->v[T_K];
    float *x = host[0];
    for (int64_t i = 0; i < n * m; i++) {
        switch (s->v[T_VALS]) {
        case VALS_TIES: x[i] = (float)rng_int(5) * 0.25f - 0.5f; break; /* 5 levels: many ties */
        case VALS_EQUAL: x[i] = 0.125f; break;
        case VALS_ASCENDING: x[i] = (float)(i % m) - 0.5f * (float)m; break; /* each enters */
        case VALS_NAN:
            x[i] = rng_int(4) == 0    ? NAN
                   : rng_int(9) == 0  ? -INFINITY
                   : rng_int(50) == 0 ? INFINITY
                                      : rng_sym();
            break;
        case VALS_ZEROS: /* ReLU output: +0, -0 and a few positives tie-break by index */
            x[i] = rng_int(3) == 0 ? rng_sym() + 1.0f : (rng_int(2) ? 0.0f : -0.0f);
            break;
        case VALS_PRE: /* the encoder GEMM's output at the benchmark: about N(0, 0.32²) */
            x[i] = 0.32f * (rng_sym() + rng_sym() + rng_sym());
            break;
        default: break; /* the driver's uniform [-1, 1) */
        }
    }
    uint8_t *mask = host[1];
    if (!mask) return;
    const int kind = (int)s->v[T_MASK];
    if (kind == MASK_PCT5) { /* the benchmark's 5% dead latents */
        for (int64_t j = 0; j < m; j++)
            mask[j] = rng_unit() < 0.05;
        return;
    }
    const int64_t want = kind == MASK_FEW       ? (k > 1 ? k / 2 : 0)
                         : kind == MASK_EXACT_K ? k
                         : kind == MASK_EMPTY   ? 0
                                                : m / 2;
    for (int64_t e = 0; e < want;) { /* distinct random eligible columns; any nonzero is */
        const int64_t j = rng_int(m);
        if (!mask[j]) mask[j] = (uint8_t)(1 + rng_int(255)), e++;
    }
}

static int topk_rows_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, topk_rows, b[0], s->v[T_N], s->v[T_M], (int)s->v[T_K], b[1], b[2], b[3]);
}

/* Column a before column b: a larger value, ties to the lower index (a, b not NaN). */
static int topk_before(const float *x, int64_t a, int64_t b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
}

/* The naive top-k of each row: the k best eligible non-NaN columns by (value desc, index asc),
   kept in a heap whose root is the worst kept (O(m log k) per row, so m >= 1M stays cheap), then
   sorted best first; the rest idx -1, val 0. Exact. */
static void topk_rows_naive(const op_shape *s, const void *const *in, double *const *want,
                            double *const *scale) {
    const int64_t n = s->v[T_N], m = s->v[T_M], k = s->v[T_K];
    const float *X = in[0];
    const uint8_t *mask = in[1];
    int64_t *heap = malloc((size_t)k * sizeof *heap);
    if (!heap) abort();
    (void)scale;
    for (int64_t r = 0; r < n; r++) {
        const float *x = X + r * m;
        int64_t h = 0;
        for (int64_t j = 0; j < m; j++) {
            if ((mask && !mask[j]) || isnan(x[j])) continue;
            int64_t p;
            if (h < k) { /* push j and sift up */
                p = h++;
                while (p > 0 && topk_before(x, heap[(p - 1) / 2], j))
                    heap[p] = heap[(p - 1) / 2], p = (p - 1) / 2;
                heap[p] = j;
                continue;
            }
            if (!topk_before(x, j, heap[0])) continue;
            p = 0; /* replace the worst kept and sift down */
            for (;;) {
                int64_t c = 2 * p + 1;
                if (c >= h) break;
                if (c + 1 < h && topk_before(x, heap[c], heap[c + 1])) c++; /* the worse child */
                if (!topk_before(x, j, heap[c])) break; /* j no better: it stays */
                heap[p] = heap[c], p = c;
            }
            heap[p] = j;
        }
        for (int64_t i = 1; i < h; i++) { /* insertion sort, best first */
            const int64_t v = heap[i];
            int64_t p = i;
            while (p > 0 && topk_before(x, v, heap[p - 1]))
                heap[p] = heap[p - 1], p--;
            heap[p] = v;
        }
        for (int64_t slot = 0; slot < k; slot++) {
            want[2][r * k + slot] = slot < h ? (double)heap[slot] : -1.0;
            want[3][r * k + slot] = slot < h ? (double)x[heap[slot]] : 0.0;
        }
    }
    free(heap);
}

/* Another backend against the CPU op: exact, except that an index may differ where the values
   tie within 1e-6 (both slots filled); a slot with the same index has the same value bit for bit.
   The slots that hold another column of a tied value are noted on stderr. */
static int topk_rows_compare_be(const op_shape *s, const void *const *in, const void *const *cpu,
                                const void *const *other, char *why, size_t cap) {
    const int64_t n = s->v[T_N], k = s->v[T_K];
    const int32_t *ic = cpu[2], *ig = other[2];
    const float *vc = cpu[3], *vg = other[3];
    int64_t bad = -1, tie_swaps = 0;
    (void)in;
    for (int64_t p = 0; p < n * k && bad < 0; p++) {
        const int same_val = memcmp(&vc[p], &vg[p], sizeof(float)) == 0; /* bitwise */
        if (ic[p] == ig[p]) {
            if (!same_val) bad = p;
        } else if (ic[p] >= 0 && ig[p] >= 0 &&
                   fabs((double)vc[p] - (double)vg[p]) <= 1e-6 * fmax(1.0, fabs((double)vc[p]))) {
            tie_swaps++;
        } else {
            bad = p;
        }
    }
    if (tie_swaps)
        fprintf(stderr,
                "note [topk_rows n=%lld m=%lld k=%lld]: %lld slots hold a different column "
                "of a tied value\n",
                (long long)n, (long long)s->v[T_M], (long long)k, (long long)tie_swaps);
    if (bad < 0) return 1;
    snprintf(why, cap, "row %lld slot %lld: other (%d, %.9g), cpu (%d, %.9g) (exact)",
             (long long)(bad / k), (long long)(bad % k), ig[bad], (double)vg[bad], ic[bad],
             (double)vc[bad]);
    return 0;
}

static void topk_rows_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float x[4] = {0};
    int32_t idx[8];
    float val[8];
    rejected(SAEC_OP(dev, topk_rows, x, 1, 4, 0, NULL, idx, val), "k < 1");
    rejected(SAEC_OP(dev, topk_rows, x, 1, 4, 5, NULL, idx, val), "k > m");
    rejected(SAEC_OP(dev, topk_rows, x, -1, 4, 2, NULL, idx, val), "n < 0");
}

static void topk_rows_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "topk_rows n=%lld m=%lld k=%lld vals=%d mask=%d misalign=%d",
             (long long)s->v[T_N], (long long)s->v[T_M], (long long)s->v[T_K], (int)s->v[T_VALS],
             (int)s->v[T_MASK], s->misalign);
}

/* The benchmarks: the encoder's pre-activations [n, m]; k = 64, k = 512, and AuxK's k = d/2
   over a 5% mask of dead latents. */
static op_shape topk_rows_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return shape8(n, m, 64, VALS_PRE, MASK_NONE, 0, 0, 0);
}
static op_shape topk_rows_large_k_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return shape8(n, m, 512, VALS_PRE, MASK_NONE, 0, 0, 0);
}
static op_shape topk_rows_masked_bench(int64_t n, int64_t m, int64_t d) {
    return shape8(n, m, d / 2, VALS_PRE, MASK_PCT5, 0, 0, 0);
}

static saec_op_floor topk_rows_floor(const op_shape *s) {
    return saec_op_floor_topk_rows((double)s->v[T_N], (double)s->v[T_M], (double)s->v[T_K],
                                   s->v[T_MASK] != MASK_NONE);
}

#define TOPK_CASE_COMMON                                                                           \
    .op = "topk_rows", .group = "topk", .n_bufs = 4, .bufs = topk_rows_bufs,                       \
    .tweak = topk_rows_tweak, .call = topk_rows_call, .naive = topk_rows_naive,                    \
    .compare_be = topk_rows_compare_be, .label = topk_rows_label, .floor = topk_rows_floor

const op_case op_case_topk_rows = {TOPK_CASE_COMMON, .shapes = topk_rows_shapes,
                                   .bad_args = topk_rows_bad_args, .bench_name = "topk_rows_k64",
                                   .bench_shape = topk_rows_bench};
const op_case op_case_topk_rows_masked = {TOPK_CASE_COMMON, .shapes = topk_rows_masked_shapes,
                                          .bench_name = "topk_rows_masked_k1152", .bench_k = 1152,
                                          .bench_shape = topk_rows_masked_bench};
const op_case op_case_topk_rows_large_k = {TOPK_CASE_COMMON, .shapes = topk_rows_large_k_shapes,
                                           .bench_name = "topk_rows_k512", .bench_k = 512,
                                           .bench_shape = topk_rows_large_k_bench};

/* ================================ sparse codes ============================================== */

/* How a code is drawn: CODE_TEST: empty slots (idx -1 holding the garbage value 1e6, which an op
   that reads an empty slot shows), duplicates within a row allowed, values the driver's uniform
   [-1, 1); CODE_BENCH: uniform latents, no empty slot, values the driver's fill; CODE_BENCH_POS:
   the same with values in [0, 2) (TopK codes). */
enum { CODE_TEST, CODE_BENCH, CODE_BENCH_POS };

/* idx [slots] (k per row) over latents [0, m_used), empty_pct% of slots empty; with hot >= 0,
   slot 0 of nine rows in ten holds latent `hot` (a skewed firing distribution). */
static void code_fill(int kind, int64_t slots, int k, int64_t m_used, int empty_pct, int64_t hot,
                      int32_t *idx, float *val) {
    for (int64_t p = 0; p < slots; p++) {
        if (kind == CODE_TEST && hot >= 0 && p % k == 0 && rng_int(10) != 0) {
            idx[p] = (int32_t)hot;
        } else if (kind == CODE_TEST && (int)rng_int(100) < empty_pct) {
            idx[p] = -1;
            if (val) val[p] = 1.0e6f;
        } else {
            idx[p] = (int32_t)rng_int(m_used);
            if (val && kind == CODE_BENCH_POS) val[p] = 1.0f + rng_sym();
        }
    }
}

/* ---- sparse_decode: out[n, d] = [acc ? out : 0] + Σ_j val[n, j] W[idx[n, j], :] + bias ----
   v: n, k, m, d, accumulate, with bias, code. Buffers: idx, val, W, bias, out. */
enum { D_N, D_K, D_M, D_D, D_ACC, D_BIAS, D_CODE };

static int sparse_decode_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][4] = {/* n, k, m, d */
                                       {13, 1, 29, 37},   {13, 5, 29, 37},     {1, 3, 3, 1},
                                       {200, 7, 301, 67}, {5, 9, 9, 40},       {37, 5, 101, 41},
                                       {37, 5, 101, 64},  {64, 32, 1000, 128}, {3, 7, 5, 1}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int variant = 0; variant < 4 && n < cap; variant++)
            out[n++] = shape8(sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], variant >> 1,
                              variant & 1, CODE_TEST, 0);
    return n;
}

static void sparse_decode_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[D_N], k = s->v[D_K], m = s->v[D_M], d = s->v[D_D];
    b[0] = buf("idx", OP_I32, n * k, OP_BUF_IN);
    b[1] = buf("val", OP_F32, n * k, OP_BUF_IN);
    b[2] = buf("W", OP_F32, m * d, OP_BUF_IN);
    b[3] = s->v[D_BIAS] ? buf("bias", OP_F32, d, OP_BUF_IN) : op_absent("bias");
    /* accumulate = 0 must not read out */
    b[4] = s->v[D_ACC] ? buf("out", OP_F32, n * d, OP_BUF_INOUT) : op_out("out", OP_F32, n * d);
}

static void sparse_decode_tweak(const op_shape *s, void *const *host) {
    seed_from(s, 2);
    code_fill((int)s->v[D_CODE], s->v[D_N] * s->v[D_K], (int)s->v[D_K], s->v[D_M], 20, -1, host[0],
              host[1]);
}

static int sparse_decode_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, sparse_decode, b[0], b[1], b[2], b[3], s->v[D_N], (int)s->v[D_K], s->v[D_M],
                   s->v[D_D], (int)s->v[D_ACC], b[4]);
}

/* k + 2 roundings: within 1e-6 of |out| + |bias| + Σ|terms| */
static void sparse_decode_naive(const op_shape *s, const void *const *in, double *const *want,
                                double *const *scale) {
    const int64_t n = s->v[D_N], d = s->v[D_D];
    const int k = (int)s->v[D_K];
    const int32_t *idx = in[0];
    const float *val = in[1], *W = in[2], *bias = in[3], *out = in[4];
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < d; c++) {
            double o = s->v[D_ACC] ? out[r * d + c] : 0.0, a = fabs(o);
            if (bias) o += bias[c], a += fabs(bias[c]);
            for (int j = 0; j < k; j++) {
                const int32_t t = idx[r * k + j];
                if (t < 0) continue;
                const double term = (double)val[r * k + j] * W[t * d + c];
                o += term;
                a += fabs(term);
            }
            want[4][r * d + c] = o;
            scale[4][r * d + c] = a;
        }
}

/* an index out of range is rejected, and out is left as it was */
static void sparse_decode_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    int32_t idx[2] = {0, 3};
    float val[2] = {1, 1}, W[3] = {1, 2, 3}, out[1] = {7};
    rejected(SAEC_OP(dev, sparse_decode, idx, val, W, NULL, 1, 2, 3, 1, 1, out),
             "index out of range");
    rejected(out[0] == 7 ? SAEC_ERR_OTHER : SAEC_OK,
             "index out of range: out left as it was (SAEC_OK here means it was written)");
}

static void sparse_decode_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "sparse_decode n=%lld k=%lld m=%lld d=%lld accumulate=%d bias=%d",
             (long long)s->v[D_N], (long long)s->v[D_K], (long long)s->v[D_M], (long long)s->v[D_D],
             (int)s->v[D_ACC], (int)s->v[D_BIAS]);
}

/* The decode: x̂ [n, d] = TopK codes (k = 64, values in [0, 2)) · W_dec + b_dec */
static op_shape sparse_decode_bench(int64_t n, int64_t m, int64_t d) {
    return shape8(n, 64, m, d, 0, 1, CODE_BENCH_POS, 0);
}

static saec_op_floor sparse_decode_floor(const op_shape *s) {
    return saec_op_floor_sparse_decode((double)s->v[D_N], (double)s->v[D_K], (double)s->v[D_D],
                                       (double)s->v[D_ACC]);
}

const op_case op_case_sparse_decode = {.op = "sparse_decode",
                                       .group = "sparse_decode",
                                       .n_bufs = 5,
                                       OP_CASE_FUNCS(sparse_decode),
                                       .tweak = sparse_decode_tweak,
                                       .atol = 1e-7,
                                       .rtol = 1e-6,
                                       .atol_be = 1e-7,
                                       .rtol_be = 1e-5,
                                       .bad_args = sparse_decode_bad_args,
                                       .bench_name = "sparse_decode"};

/* ---- sparse_row_dots: out[n, k] = ⟨g[n, :], W[idx[n, j], :]⟩, 0 for empty slots ----
   v: n, k, m, d, code. Buffers: g, idx, W, out. */
static int sparse_row_dots_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][4] = {/* n, k, m, d */
                                       {13, 1, 29, 37},   {13, 5, 29, 37},      {1, 3, 3, 1},
                                       {200, 7, 301, 67}, {3, 4, 5, 1000},      {37, 5, 101, 41},
                                       {37, 9, 101, 64},  {64, 64, 1000, 2304}, {3, 7, 5, 1}};
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && n < cap; i++)
        out[n++] = shape8(sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], CODE_TEST, 0, 0, 0);
    return n;
}

static void sparse_row_dots_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[0], k = s->v[1], m = s->v[2], d = s->v[3];
    b[0] = buf("g", OP_F32, n * d, OP_BUF_IN);
    b[1] = buf("idx", OP_I32, n * k, OP_BUF_IN);
    b[2] = buf("W", OP_F32, m * d, OP_BUF_IN);
    b[3] = op_out("out", OP_F32, n * k); /* every slot written, empty ones with 0 */
}

static void sparse_row_dots_tweak(const op_shape *s, void *const *host) {
    seed_from(s, 3);
    code_fill((int)s->v[4], s->v[0] * s->v[1], (int)s->v[1], s->v[2], 20, -1, host[1], NULL);
}

static int sparse_row_dots_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, sparse_row_dots, b[0], b[1], b[2], s->v[0], (int)s->v[1], s->v[2], s->v[3],
                   b[3]);
}

/* A d-term fp32 dot: within ~d·eps of Σ|g·w| at worst; 1e-5 covers d <= 2304 with vector partial
   sums. atol 0 against the reference: an empty slot (scale 0) must be exactly 0. */
static void sparse_row_dots_naive(const op_shape *s, const void *const *in, double *const *want,
                                  double *const *scale) {
    const int64_t n = s->v[0], k = s->v[1], d = s->v[3];
    const float *g = in[0], *W = in[2];
    const int32_t *idx = in[1];
    for (int64_t p = 0; p < n * k; p++) {
        double dot = 0, a = 0;
        if (idx[p] >= 0)
            for (int64_t c = 0; c < d; c++) {
                const double term = (double)g[(p / k) * d + c] * W[idx[p] * d + c];
                dot += term;
                a += fabs(term);
            }
        want[3][p] = dot;
        scale[3][p] = a;
    }
}

static void sparse_row_dots_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "sparse_row_dots n=%lld k=%lld m=%lld d=%lld", (long long)s->v[0],
             (long long)s->v[1], (long long)s->v[2], (long long)s->v[3]);
}

/* The code gradient: ⟨gx [n, d], W_dec rows of the k = 64 codes⟩ */
static op_shape sparse_row_dots_bench(int64_t n, int64_t m, int64_t d) {
    return shape8(n, 64, m, d, CODE_BENCH, 0, 0, 0);
}

static saec_op_floor sparse_row_dots_floor(const op_shape *s) {
    return saec_op_floor_sparse_row_dots((double)s->v[0], (double)s->v[1], (double)s->v[3]);
}

const op_case op_case_sparse_row_dots = {.op = "sparse_row_dots",
                                         .group = "sparse_row_dots",
                                         .n_bufs = 4,
                                         OP_CASE_FUNCS(sparse_row_dots),
                                         .tweak = sparse_row_dots_tweak,
                                         .atol = 0,
                                         .rtol = 1e-5,
                                         .atol_be = 1e-7,
                                         .rtol_be = 1e-5,
                                         .bench_name = "sparse_row_dots"};

/* ---- sparse_outer_accum: dW[idx, :] += coef X[n, :], db[idx] += coef ----
   v: n, k, m, d, with db, hot latent (-1: none), latents no code uses (the last ones), code.
   Buffers: idx, coef, X, dW, db. */
enum { O_N, O_K, O_M, O_D, O_DB, O_HOT, O_UNUSED, O_CODE };

static int sparse_outer_accum_shapes(op_shape *out, int cap) {
    static const int64_t sizes[][4] = {/* n, k, m, d: db both ways; the last 5 latents unused */
                                       {5, 3, 11, 9},      {1, 1, 1, 1},     {40, 1, 23, 50},
                                       {257, 9, 103, 131}, {64, 64, 64, 33}, {1000, 5, 37, 20}};
    static const int64_t hot[][6] = {
        /* n, k, m, d, db, hot: every latent usable */
        {13, 1, 29, 37, 1, -1},       {37, 5, 101, 41, 0, -1},
        {300, 8, 57, 64, 1, 0},                              /* a hot latent crosses windows */
        {300, 8, 57, 41, 1, 56},      {1000, 1, 7, 3, 1, 2}, /* a few latents, long runs */
        {50, 3, 1, 17, 1, -1},                               /* m = 1 */
        {4096, 64, 16384, 64, 1, 123}};                      /* SAE-like: 2048 windows */
    int n = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int with_db = 0; with_db < 2 && n < cap; with_db++) {
            const int64_t m = sizes[i][2];
            out[n++] = shape8(sizes[i][0], sizes[i][1], m, sizes[i][3], with_db, -1, m > 8 ? 5 : 0,
                              CODE_TEST);
        }
    for (size_t i = 0; i < sizeof hot / sizeof hot[0] && n < cap; i++) {
        out[n] =
            shape8(hot[i][0], hot[i][1], hot[i][2], hot[i][3], hot[i][4], hot[i][5], 0, CODE_TEST);
        out[n++].large = hot[i][0] == 4096;
    }
    return n;
}

static void sparse_outer_accum_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[O_N], k = s->v[O_K], m = s->v[O_M], d = s->v[O_D];
    b[0] = buf("idx", OP_I32, n * k, OP_BUF_IN);
    b[1] = buf("coef", OP_F32, n * k, OP_BUF_IN);
    b[2] = buf("X", OP_F32, n * d, OP_BUF_IN);
    b[3] = buf("dW", OP_F32, m * d, OP_BUF_INOUT);
    b[4] = s->v[O_DB] ? buf("db", OP_F32, m, OP_BUF_INOUT) : op_absent("db");
}

static void sparse_outer_accum_tweak(const op_shape *s, void *const *host) {
    seed_from(s, 4);
    code_fill((int)s->v[O_CODE], s->v[O_N] * s->v[O_K], (int)s->v[O_K], s->v[O_M] - s->v[O_UNUSED],
              15, s->v[O_HOT], host[0], host[1]);
}

static int sparse_outer_accum_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, sparse_outer_accum, b[0], b[1], b[2], s->v[O_N], (int)s->v[O_K], s->v[O_M],
                   s->v[O_D], b[3], b[4]);
}

/* Each element sums up to n·k/m fp32 terms: 1e-5 of |start| + Σ|terms|. A latent no code touches
   has scale 0 and atol is 0: its row of dW and its db stay bit for bit. */
static void sparse_outer_accum_naive(const op_shape *s, const void *const *in, double *const *want,
                                     double *const *scale) {
    const int64_t n = s->v[O_N], k = s->v[O_K], m = s->v[O_M], d = s->v[O_D];
    const int32_t *idx = in[0];
    const float *coef = in[1], *X = in[2], *dW = in[3], *db = in[4];
    uint8_t *touched = calloc((size_t)(m > 0 ? m : 1), 1);
    if (!touched) abort();
    for (int64_t i = 0; i < m * d; i++)
        want[3][i] = dW[i], scale[3][i] = 0;
    for (int64_t l = 0; db && l < m; l++)
        want[4][l] = db[l], scale[4][l] = 0;
    for (int64_t p = 0; p < n * k; p++) {
        const int32_t t = idx[p];
        if (t < 0) continue;
        touched[t] = 1;
        for (int64_t c = 0; c < d; c++) {
            const double term = (double)coef[p] * X[(p / k) * d + c];
            want[3][t * d + c] += term;
            scale[3][t * d + c] += fabs(term);
        }
        if (db) want[4][t] += coef[p], scale[4][t] += fabs(coef[p]);
    }
    for (int64_t l = 0; l < m; l++) {
        if (!touched[l]) continue;
        for (int64_t c = 0; c < d; c++)
            scale[3][l * d + c] += fabs(dW[l * d + c]);
        if (db) scale[4][l] += fabs(db[l]);
    }
    free(touched);
}

static void sparse_outer_accum_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "sparse_outer_accum n=%lld k=%lld m=%lld d=%lld db=%d hot=%lld unused=%lld",
             (long long)s->v[O_N], (long long)s->v[O_K], (long long)s->v[O_M], (long long)s->v[O_D],
             (int)s->v[O_DB], (long long)s->v[O_HOT], (long long)s->v[O_UNUSED]);
}

/* The encoder's weight gradient: dW_enc_t += dpre (k = 64, uniform latents) ⊗ gx, and db_enc */
static op_shape sparse_outer_accum_bench(int64_t n, int64_t m, int64_t d) {
    return shape8(n, 64, m, d, 1, -1, 0, CODE_BENCH);
}

/* touched: the distinct latents among uniform random codes, m·(1 − e^(−n·k/m)) */
static saec_op_floor sparse_outer_accum_floor(const op_shape *s) {
    const double n = (double)s->v[O_N], k = (double)s->v[O_K], m = (double)s->v[O_M];
    return saec_op_floor_sparse_outer_accum(n, k, (double)s->v[O_D], m * (1.0 - exp(-n * k / m)));
}

const op_case op_case_sparse_outer_accum = {.op = "sparse_outer_accum",
                                            .group = "sparse_outer_accum",
                                            .n_bufs = 5,
                                            OP_CASE_FUNCS(sparse_outer_accum),
                                            .tweak = sparse_outer_accum_tweak,
                                            .atol = 0,
                                            .rtol = 1e-5,
                                            .atol_be = 1e-7,
                                            .rtol_be = 1e-5,
                                            .deterministic = 1,
                                            .bench_name = "sparse_outer_accum"};

/* ================================ latent bookkeeping ======================================== */

/* The state before a call: since_fired [m] in [0, since_max) (all 0 when since_max is 0),
   fire_count [m] in [0, 9), dead_mask [m] junk (7: every element must be written). */
static void state_fill(int64_t m, int64_t since_max, int64_t *since, int64_t *count,
                       uint8_t *mask) {
    for (int64_t j = 0; j < m; j++) {
        since[j] = since_max > 0 ? rng_int(since_max) : 0;
        if (count) count[j] = rng_int(9);
        mask[j] = 7;
    }
}

/* The naive bookkeeping after the batches: since_fired, fire_count (counted per fired slot),
   dead_mask and dead_count, from fired[b·m + j] = #slots where latent j fired in batch b and
   the tokens per batch. */
static void latents_naive(int64_t m, int batches, int64_t n, const int64_t *fired,
                          const int64_t *since, const int64_t *count, int64_t dead_after,
                          double *w_since, double *w_count, double *w_mask, double *w_dead) {
    int64_t dead = 0;
    for (int64_t j = 0; j < m; j++) {
        int64_t sf = since[j], fc = count ? count[j] : 0;
        for (int b = 0; b < batches; b++) {
            sf += n;
            if (fired[b * m + j]) sf = 0, fc += fired[b * m + j];
        }
        w_since[j] = (double)sf;
        if (w_count) w_count[j] = (double)fc;
        w_mask[j] = sf >= dead_after;
        dead += sf >= dead_after;
    }
    w_dead[0] = (double)dead;
}

/* ---- track_fired: sparse codes (idx, val) [batches, n, k], one op call per batch ----
   v: n, k, m, with fire_count, batches, dead_after, since_max, codes. Buffers: idx, val,
   since_fired, fire_count, dead_mask, dead_count. */
enum { F_N, F_K, F_M, F_COUNT, F_BATCHES, F_DEAD_AFTER, F_SINCE_MAX, F_CODES };
/* codes: signed values, a quarter of the kept slots 0 or -0.5 (not firing); F_LAST4: the same
   over latents 0..3 only; positive values in (0, 2), a fifth of the slots 0 or -1; dense codes
   as sparse (k = m, latent j in slot j; silent entries empty or kept with val <= 0 or NaN); the
   benchmark's TopK codes (values in [0, 2), no empty slot). */
enum { F_SIGNED, F_LAST4, F_POSITIVE, F_DENSE_LAYOUT, F_BENCH };

static int track_fired_shapes(op_shape *out, int cap) {
    static const int64_t batch[][2] = {{5, 3}, {1, 1}, {3, 3}, {6, 0}, {4, 2}, {2, 5}}; /* n, k */
    static const int64_t gpu[][3] = {{37, 5, 101}, {1, 1, 1}, {4096, 64, 16384}, {77, 0, 300}};
    static const int64_t dense[][3] = {{5, 23, 8}, {1, 1, 4}, {3, 67, 2}, {129, 517, 200}};
    int n = 0;
    for (int with_count = 0; with_count < 2; with_count++) {
        /* m = 23, dead_after 8; k = 0: tokens without codes; the last only latents 0..3 */
        for (size_t b = 0; b < sizeof batch / sizeof batch[0] && n < cap; b++)
            out[n++] = shape8(batch[b][0], batch[b][1], 23, with_count, 1, 8, 18,
                              b == 5 ? F_LAST4 : F_SIGNED);
        /* two batches in one call, the second from the first's state */
        for (size_t i = 0; i < sizeof gpu / sizeof gpu[0] && n < cap; i++)
            out[n++] = shape8(gpu[i][0], gpu[i][1], gpu[i][2], with_count, 2, 2 * gpu[i][0] + 10,
                              3 * gpu[i][0] + 50, F_POSITIVE);
        for (size_t i = 0; i < sizeof dense / sizeof dense[0] && n < cap; i++)
            out[n++] = shape8(dense[i][0], dense[i][1], dense[i][1], with_count, 1, dense[i][2],
                              2 * dense[i][2] + 2, F_DENSE_LAYOUT);
    }
    return n;
}

static void track_fired_bufs(const op_shape *s, op_buf *b) {
    const int64_t slots = s->v[F_BATCHES] * s->v[F_N] * s->v[F_K], m = s->v[F_M];
    const int codes = s->v[F_K] > 0; /* k = 0: idx and val NULL */
    b[0] = codes ? buf("idx", OP_I32, slots, OP_BUF_IN) : op_absent("idx");
    b[1] = codes ? buf("val", OP_F32, slots, OP_BUF_IN) : op_absent("val");
    b[2] = buf("since_fired", OP_I64, m, OP_BUF_INOUT);
    b[3] = s->v[F_COUNT] ? buf("fire_count", OP_I64, m, OP_BUF_INOUT) : op_absent("fire_count");
    b[4] = buf("dead_mask", OP_U8, m, OP_BUF_OUT);
    b[5] = dead_count_buf();
}

static void track_fired_tweak(const op_shape *s, void *const *host) {
    seed_from(s, 5);
    const int64_t n = s->v[F_N], m = s->v[F_M], slots = s->v[F_BATCHES] * n * s->v[F_K];
    const int k = (int)s->v[F_K], codes = (int)s->v[F_CODES];
    state_fill(m, s->v[F_SINCE_MAX], host[2], host[3], host[4]);
    int32_t *idx = host[0];
    float *val = host[1];
    if (!idx) return;
    if (codes == F_BENCH) {
        code_fill(CODE_BENCH_POS, slots, k, m, 0, -1, idx, val);
        return;
    }
    if (codes == F_DENSE_LAYOUT) {
        for (int64_t i = 0; i < slots; i++) {
            const int64_t u = rng_int(20);
            const float v = u == 0   ? (float)(1.0 - rng_unit())
                            : u == 1 ? -0.5f
                            : u == 2 ? NAN
                                     : 0.0f; /* mostly silent */
            const int empty = !(v > 0) && rng_int(2);
            idx[i] = empty ? -1 : (int32_t)(i % m);
            val[i] = empty ? 1.0e6f : v;
        }
        return;
    }
    code_fill(CODE_TEST, slots, k, codes == F_LAST4 ? 4 : m, 20, -1, idx, val);
    for (int64_t p = 0; p < slots; p++) {
        if (codes == F_POSITIVE) {
            if (idx[p] >= 0) val[p] = (float)(2.0 * rng_unit()) + 1e-3f;
            if (rng_int(5) == 0) val[p] = rng_int(2) ? 0.0f : -1.0f; /* kept, not firing */
        } else if (idx[p] >= 0 && rng_int(4) == 0) {
            val[p] = rng_int(2) ? 0.0f : -0.5f; /* kept, not firing */
        }
    }
}

static int track_fired_call(saec_dev *dev, const op_shape *s, void *const *b) {
    const int64_t n = s->v[F_N], step = n * s->v[F_K];
    int rc = SAEC_OK;
    for (int64_t bt = 0; bt < s->v[F_BATCHES] && rc == SAEC_OK; bt++)
        rc = SAEC_OP(dev, track_fired, b[0] ? (const int32_t *)b[0] + bt * step : NULL,
                     b[1] ? (const float *)b[1] + bt * step : NULL, n, (int)s->v[F_K], s->v[F_M],
                     b[2], b[3], s->v[F_DEAD_AFTER], b[4], b[5]);
    return rc;
}

static void track_fired_naive(const op_shape *s, const void *const *in, double *const *want,
                              double *const *scale) {
    const int64_t n = s->v[F_N], k = s->v[F_K], m = s->v[F_M];
    const int batches = (int)s->v[F_BATCHES];
    const int32_t *idx = in[0];
    const float *val = in[1];
    int64_t *fired = calloc((size_t)(batches * m), sizeof *fired);
    if (!fired) abort();
    (void)scale;
    for (int b = 0; b < batches; b++)
        for (int64_t p = 0; p < n * k; p++) {
            const int64_t q = b * n * k + p;
            if (idx[q] >= 0 && val[q] > 0) fired[b * m + idx[q]]++;
        }
    latents_naive(m, batches, n, fired, in[2], in[3], s->v[F_DEAD_AFTER], want[2], want[3], want[4],
                  want[5]);
    free(fired);
}

static void track_fired_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "track_fired n=%lld k=%lld m=%lld fire_count=%d batches=%lld dead_after=%lld codes=%d",
             (long long)s->v[F_N], (long long)s->v[F_K], (long long)s->v[F_M], (int)s->v[F_COUNT],
             (long long)s->v[F_BATCHES], (long long)s->v[F_DEAD_AFTER], (int)s->v[F_CODES]);
}

/* One batch of TopK codes (k = 64), no latent dead yet */
static op_shape track_fired_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return shape8(n, 64, m, 1, 1, 10000000, 0, F_BENCH);
}

static saec_op_floor track_fired_floor(const op_shape *s) {
    return saec_op_floor_track_fired((double)s->v[F_N], (double)s->v[F_K], (double)s->v[F_M]);
}

const op_case op_case_track_fired = {.op = "track_fired",
                                     .group = "track_fired",
                                     .n_bufs = 6,
                                     OP_CASE_FUNCS(track_fired),
                                     .tweak = track_fired_tweak,
                                     .exact_be = 1,
                                     .bench_name = "track_fired"};

/* ---- track_fired_dense: dense codes val [batches, n, m], one op call per batch ----
   v: n, m, with fire_count, batches, dead_after, since_max, values. Buffers: val, since_fired,
   fire_count, dead_mask, dead_count. */
enum { E_N, E_M, E_COUNT, E_BATCHES, E_DEAD_AFTER, E_SINCE_MAX, E_VALS };
/* values: mostly 0, a twentieth each in (0, 1], -0.5 and NaN (E_LAST3: the same but 0 past
   latent 2); column j fires with probability (j % 7) / 40, else -|v|, a fiftieth −0 or NaN
   (every 7th latent never fires); the driver's uniform [-1, 1) (the benchmark: about half fire,
   as the encoder's pre-activations). */
enum { E_SILENT, E_LAST3, E_COLUMNS, E_BENCH };

static int track_fired_dense_shapes(op_shape *out, int cap) {
    static const int64_t b1[] = {5, 1, 3, 0, 4, 2}, b2[] = {1, 1, 1}, b3[] = {300, 97, 129},
                         b4[] = {40, 40};
    static const struct {
        int64_t m, dead_after;
        const int64_t *batch;
        int batches;
    } runs[] = {{23, 8, b1, 6},
                {1, 4, b1, 6},       /* m = 1 */
                {67, 2, b2, 3},      /* n = 1, a partial column block */
                {517, 200, b3, 3},   /* the parallel path */
                {1001, 0, b4, 2}};   /* dead_after 0: every latent dead */
    static const int64_t gpu[][4] = {/* n, m, with fire_count, misaligned */
                                     {37, 101, 1, 0},   {37, 101, 0, 1}, /* scalar loads */
                                     {1, 1, 1, 0},      {0, 5, 1, 0}, /* empty batch: masks anew */
                                     {513, 4096, 1, 0},               /* float4 path */
                                     {4099, 64, 1, 0},                /* many row chunks */
                                     {300, 4099, 1, 1}, {4096, 16384, 1, 0}};
    int n = 0;
    for (int with_count = 0; with_count < 2; with_count++)
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++)
            for (int b = 0; b < runs[r].batches && n < cap; b++) {
                const int64_t da = runs[r].dead_after;
                out[n++] = shape8(runs[r].batch[b], runs[r].m, with_count, 1, da, 2 * da + 2,
                                  b == runs[r].batches - 1 ? E_LAST3 : E_SILENT, 0);
            }
    for (size_t i = 0; i < sizeof gpu / sizeof gpu[0] && n < cap; i++) {
        /* two batches in one call, the second from the first's state */
        out[n] = shape8(gpu[i][0], gpu[i][1], gpu[i][2], 2, 2 * gpu[i][0] + 10, 3 * gpu[i][0] + 50,
                        E_COLUMNS, 0);
        out[n].misalign = (int)gpu[i][3];
        out[n++].large = gpu[i][0] == 4096;
    }
    return n;
}

static void track_fired_dense_bufs(const op_shape *s, op_buf *b) {
    const int64_t m = s->v[E_M];
    b[0] = buf("val", OP_F32, s->v[E_BATCHES] * s->v[E_N] * m, OP_BUF_IN);
    b[1] = buf("since_fired", OP_I64, m, OP_BUF_INOUT);
    b[2] = s->v[E_COUNT] ? buf("fire_count", OP_I64, m, OP_BUF_INOUT) : op_absent("fire_count");
    b[3] = buf("dead_mask", OP_U8, m, OP_BUF_OUT);
    b[4] = dead_count_buf();
}

static void track_fired_dense_tweak(const op_shape *s, void *const *host) {
    seed_from(s, 6);
    const int64_t m = s->v[E_M], len = s->v[E_BATCHES] * s->v[E_N] * m;
    const int vals = (int)s->v[E_VALS];
    state_fill(m, s->v[E_SINCE_MAX], host[1], host[2], host[3]);
    float *val = host[0];
    for (int64_t i = 0; i < len && vals != E_BENCH; i++) {
        const int64_t j = i % m;
        if (vals == E_COLUMNS) {
            const float v = rng_sym();
            val[i] = rng_int(40) < j % 7 ? fabsf(v) + 1e-3f : -fabsf(v);
            if (rng_int(50) == 0) val[i] = rng_int(2) ? -0.0f : NAN; /* never fires */
            continue;
        }
        const int64_t u = rng_int(20);
        val[i] = (vals == E_LAST3 && j >= 3) ? 0.0f
                 : u == 0                    ? (float)(1.0 - rng_unit())
                 : u == 1                    ? -0.5f
                 : u == 2                    ? NAN
                                             : 0.0f;
    }
}

static int track_fired_dense_call(saec_dev *dev, const op_shape *s, void *const *b) {
    const int64_t n = s->v[E_N], m = s->v[E_M];
    int rc = SAEC_OK;
    for (int64_t bt = 0; bt < s->v[E_BATCHES] && rc == SAEC_OK; bt++)
        rc = SAEC_OP(dev, track_fired_dense, (const float *)b[0] + bt * n * m, n, m, b[1], b[2],
                     s->v[E_DEAD_AFTER], b[3], b[4]);
    return rc;
}

static void track_fired_dense_naive(const op_shape *s, const void *const *in, double *const *want,
                                    double *const *scale) {
    const int64_t n = s->v[E_N], m = s->v[E_M];
    const int batches = (int)s->v[E_BATCHES];
    const float *val = in[0];
    int64_t *fired = calloc((size_t)(batches * m), sizeof *fired);
    if (!fired) abort();
    (void)scale;
    for (int b = 0; b < batches; b++)
        for (int64_t r = 0; r < n; r++)
            for (int64_t j = 0; j < m; j++)
                fired[b * m + j] += val[(b * n + r) * m + j] > 0;
    latents_naive(m, batches, n, fired, in[1], in[2], s->v[E_DEAD_AFTER], want[1], want[2], want[3],
                  want[4]);
    free(fired);
}

static void track_fired_dense_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    int64_t since[2] = {0};
    uint8_t mask[2];
    double dead;
    float val[2] = {0};
    rejected(SAEC_OP(dev, track_fired_dense, val, 1, 0, since, NULL, 1, mask, &dead), "m = 0");
    rejected(SAEC_OP(dev, track_fired_dense, val, -1, 2, since, NULL, 1, mask, &dead), "n < 0");
    rejected(SAEC_OP(dev, track_fired_dense, NULL, 1, 2, since, NULL, 1, mask, &dead), "val NULL");
}

static void track_fired_dense_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "track_fired_dense n=%lld m=%lld fire_count=%d batches=%lld dead_after=%lld vals=%d "
             "misalign=%d",
             (long long)s->v[E_N], (long long)s->v[E_M], (int)s->v[E_COUNT],
             (long long)s->v[E_BATCHES], (long long)s->v[E_DEAD_AFTER], (int)s->v[E_VALS],
             s->misalign);
}

/* Dense ReLU-like codes [n, m]: the pre-activations, about half positive */
static op_shape track_fired_dense_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return shape8(n, m, 1, 1, 10000000, 0, E_BENCH, 0);
}

static saec_op_floor track_fired_dense_floor(const op_shape *s) {
    return saec_op_floor_track_fired_dense((double)s->v[E_N], (double)s->v[E_M]);
}

const op_case op_case_track_fired_dense = {.op = "track_fired_dense",
                                           .group = "track_fired_dense",
                                           .n_bufs = 5,
                                           OP_CASE_FUNCS(track_fired_dense),
                                           .tweak = track_fired_dense_tweak,
                                           .exact_be = 1,
                                           .bad_args = track_fired_dense_bad_args,
                                           .bench_name = "track_fired_dense"};

/* ---- dead_latents_update: since_fired > 0 gains `add`, then the mask and count ----
   v: m, add, dead_after, steps (calls, each from the last's result). Buffers: since_fired,
   dead_mask, dead_count. */
static int dead_latents_update_shapes(op_shape *out, int cap) {
    static const int64_t rows[][4] = {/* m, add, dead_after, steps */
                                      {23, 7, 10, 1},
                                      {23, 0, 10, 1}, /* add 0: only the mask and count */
                                      {1, 5, 1, 1},
                                      {0, 5, 1, 1},            /* m = 0: count 0 */
                                      {100003, 4096, 5000, 1}, /* the parallel path */
                                      {101, 37, 60, 2},
                                      {1, 5, 1, 2},
                                      {0, 5, 1, 2},
                                      {16384, 4096, 5000, 2},
                                      {1000003, 0, 3, 2}}; /* more latents than one grid pass */
    int n = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && n < cap; i++)
        out[n++] = shape8(rows[i][0], rows[i][1], rows[i][2], rows[i][3], 0, 0, 0, 0);
    return n;
}

static void dead_latents_update_bufs(const op_shape *s, op_buf *b) {
    b[0] = buf("since_fired", OP_I64, s->v[0], OP_BUF_INOUT);
    b[1] = buf("dead_mask", OP_U8, s->v[0], OP_BUF_OUT);
    b[2] = dead_count_buf();
}

/* a third fired on some rank (0), the rest in [0, 2·dead_after + 2) */
static void dead_latents_update_tweak(const op_shape *s, void *const *host) {
    seed_from(s, 7);
    int64_t *since = host[0];
    uint8_t *mask = host[1];
    for (int64_t j = 0; j < s->v[0]; j++) {
        since[j] = rng_int(3) == 0 ? 0 : rng_int(2 * s->v[2] + 2);
        mask[j] = 7;
    }
}

static int dead_latents_update_call(saec_dev *dev, const op_shape *s, void *const *b) {
    int rc = SAEC_OK;
    for (int64_t step = 0; step < s->v[3] && rc == SAEC_OK; step++)
        rc = SAEC_OP(dev, dead_latents_update, b[0], s->v[0], s->v[1], s->v[2], b[1], b[2]);
    return rc;
}

static void dead_latents_update_naive(const op_shape *s, const void *const *in, double *const *want,
                                      double *const *scale) {
    const int64_t m = s->v[0], add = s->v[1], dead_after = s->v[2];
    const int64_t *since = in[0];
    int64_t dead = 0;
    (void)scale;
    for (int64_t j = 0; j < m; j++) {
        int64_t sf = since[j];
        for (int64_t step = 0; step < s->v[3]; step++)
            sf = sf > 0 ? sf + add : 0;
        want[0][j] = (double)sf;
        want[1][j] = sf >= dead_after;
        dead += sf >= dead_after;
    }
    want[2][0] = (double)dead;
}

static void dead_latents_update_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    int64_t sf[2] = {0, 1};
    uint8_t mk[2];
    double dc;
    rejected(SAEC_OP(dev, dead_latents_update, sf, -1, 1, 1, mk, &dc), "m < 0");
    rejected(SAEC_OP(dev, dead_latents_update, sf, 2, -1, 1, mk, &dc), "add < 0");
    rejected(SAEC_OP(dev, dead_latents_update, sf, 2, 1, 1, mk, NULL), "dead_count NULL");
}

static void dead_latents_update_label(const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap, "dead_latents_update m=%lld add=%lld dead_after=%lld steps=%lld",
             (long long)s->v[0], (long long)s->v[1], (long long)s->v[2], (long long)s->v[3]);
}

/* The m latents after a batch of n tokens on the other ranks */
static op_shape dead_latents_update_bench(int64_t n, int64_t m, int64_t d) {
    (void)d;
    return shape8(m, n, 10000000, 1, 0, 0, 0, 0);
}

static saec_op_floor dead_latents_update_floor(const op_shape *s) {
    return saec_op_floor_dead_latents_update((double)s->v[0]);
}

const op_case op_case_dead_latents_update = {.op = "dead_latents_update",
                                             .group = "dead_latents_update",
                                             .n_bufs = 3,
                                             OP_CASE_FUNCS(dead_latents_update),
                                             .tweak = dead_latents_update_tweak,
                                             .exact_be = 1,
                                             .bad_args = dead_latents_update_bad_args,
                                             .bench_name = "dead_latents_update"};
