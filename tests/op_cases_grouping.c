/* The op cases of the grouping family (kernels/cpu/cpu_grouping.c, kernels/cuda/cuda_grouping.cu):
 * group_count, exclusive_scan, group_permute, gather_rows, scatter_rows (test_gpu_ops group
 * "grouping"), grouped_gemm, grouped_gemm_wgrad, grouped_col_sum, modulate_encode,
 * modulate_backward. See op_case.h.
 *
 * Keys: uniform, skewed (most items in group 0), every item in one group, only every third group
 * used (many empty groups), keys < 0 ("no group": −1 or −7), top-r routing (r = 1, 2, 3; a
 * token's keys distinct or not), n_items = 0, one group, more groups than items, no item with a
 * group, 1 to 100000 groups (both CUDA histogram paths, the multi-chunk scan, 1- and 2-pass radix
 * sorts), misaligned pointers, outputs holding garbage (0x5A5A5A5A) that must be overwritten, and
 * perm's unused tail, which must stay. The integer outputs and the row ops (gather: a copy;
 * scatter: each product and sum rounded once, in slot order, over w NULL or top-r weights,
 * accumulating or over NaN) are exact.
 * Grouped GEMMs: empty groups, uneven sizes at tile edges, one group, every row in one group, no
 * rows at all, MoE-like sizes with an idle expert, a tiny output over many rows (the row-split
 * paths), trans_b both ways, bias NULL and not, beta 0 over NaN and 1, alpha 0, K = 0, NULL
 * operands when there is nothing to do, a top-2 routing of tokens over experts (the benchmark's
 * offsets); rows past the last group hold a sentinel (grouped_gemm: must stay) or NaN (the
 * backward: must not be read), and one element past the backward's output must stay; an empty
 * group's output is exactly beta times itself. grouped_gemm and grouped_gemm_wgrad within 1e-5 of
 * Σ|terms|, grouped_col_sum 1e-6; the backward ops repeat bit for bit on another backend.
 * The modulation (TIDE `bucket`): odd n, d, m, one bucket, a bucket never used, zero scale and
 * shift, bias NULL and not, u NULL, dxc aliasing dU, n = 0, misaligned; u and dxc exact (one
 * multiply and one or two adds, each rounded), pre within 1e-5 of Σ|terms|, dscale and dshift
 * within 1e-6.
 * Keys, buckets, offsets and routing weights come from the tweaks, seeded per shape (this file's
 * copy of test_random.h's generator), so one group run alone sees the same inputs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_case.h"
#include "test_random.h"

#define GARBAGE 0x5A5A5A5A /* in integer outputs before the call: all overwritten */
#define SENTINEL 12345.0f  /* in rows the op must not write */
/* The scale of an element that must match bit for bit: atol + rtol · scale < 0 leaves only
   got == want (the harness compares |got − want| <= atol + rtol · scale, or equality). */
#define EXACT_SCALE (-1e30)

/* The benchmark's routing: top-2 of n tokens over BENCH_EXPERTS experts, each with a
   BENCH_EXPERT_N wide output; TIDE's BENCH_BUCKETS timestep buckets. */
#define BENCH_EXPERTS 8
#define BENCH_EXPERT_N 1024
#define BENCH_BUCKETS 10

static op_buf fbuf(const char *name, int64_t count, op_buf_role role) {
    return op_buf_of(name, OP_F32, count, role);
}
static op_buf ibuf(const char *name, int64_t count, op_buf_role role) {
    return op_buf_of(name, OP_I32, count, role);
}

/* Seeds this file's generator from the shape: the same inputs whatever ran before. */
static void seed_from(const op_shape *s, uint64_t salt) {
    rng_seed(op_shape_hash(s, 0x5AEC6A0B1E5F0001ull ^ salt));
}

static void fill_i32(int32_t *p, int64_t n, int32_t v) {
    for (int64_t i = 0; i < n; i++)
        p[i] = v;
}

static int32_t *new_i32(int64_t n) {
    int32_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}

/* ---- keys ---- */

enum { KEYS_UNIFORM, KEYS_SPARSE, KEYS_ONE }; /* SPARSE: only every third group; ONE: g / 2 */

typedef struct {
    int64_t tokens;
    int r, groups, none_pct, skew_pct, kind, distinct;
} key_spec;

static int64_t key_none(const key_spec *k) { return k->tokens * k->r * k->none_pct / 100; }

/* keys [tokens * r]: per kind, then skew_pct % forced into group 0 (uneven sizes); with
   distinct, a token's r keys differ (top-r routing) where the groups allow. Exactly key_none()
   items (chosen uniformly) get a key < 0, so the grouped count is known from the shape. */
static void make_keys(const key_spec *k, int32_t *keys) {
    const int64_t n_items = k->tokens * k->r;
    for (int64_t t = 0; t < k->tokens; t++)
        for (int j = 0; j < k->r; j++) {
            int32_t g = 0;
            for (int tries = 0; tries < 50; tries++) {
                g = k->kind == KEYS_ONE      ? k->groups / 2
                    : k->kind == KEYS_SPARSE ? (int32_t)(3 * rng_int((k->groups + 2) / 3))
                                             : (int32_t)rng_int(k->groups);
                if ((int)rng_int(100) < k->skew_pct) g = 0;
                int dup = 0;
                for (int q = 0; q < j; q++)
                    dup |= keys[t * k->r + q] == g;
                if (!k->distinct || !dup) break;
            }
            keys[t * k->r + j] = g;
        }
    int64_t need = key_none(k); /* selection sampling: need of the remaining items */
    for (int64_t i = 0; i < n_items && need > 0; i++)
        if (rng_int(n_items - i) < need) keys[i] = rng_int(2) ? -1 : -7, need--;
}

/* The stable key order: offsets [groups + 1] (or NULL), perm [grouped items] and inv [n_items]
   (−1 without a group; or NULL): a counting sort, O(n_items + groups). */
static void key_order(const int32_t *keys, int64_t n_items, int groups, int32_t *offsets,
                      int32_t *perm, int32_t *inv) {
    int32_t *next = new_i32(groups + 1);
    fill_i32(next, groups + 1, 0);
    for (int64_t i = 0; i < n_items; i++)
        if (keys[i] >= 0) next[keys[i] + 1]++;
    for (int g = 0; g < groups; g++)
        next[g + 1] += next[g];
    if (offsets) memcpy(offsets, next, (size_t)(groups + 1) * sizeof *next);
    for (int64_t i = 0; i < n_items; i++) {
        const int32_t p = keys[i] < 0 ? -1 : next[keys[i]]++;
        if (p >= 0 && perm) perm[p] = (int32_t)i;
        if (inv) inv[i] = p;
    }
    free(next);
}

/* ---- the grouping pipeline: group_count, exclusive_scan, group_permute, gather_rows,
   scatter_rows (group "grouping") ----
   v: tokens, r, groups, none %, skew %, kind, distinct, d (the row ops' width), variant
   (scatter_rows: bit 0 weights, bit 1 accumulate). */
enum { P_TOKENS, P_R, P_GROUPS, P_NONE, P_SKEW, P_KIND, P_DISTINCT, P_D, P_VARIANT };

static key_spec p_keys(const op_shape *s) {
    key_spec k = {s->v[P_TOKENS],    (int)s->v[P_R],    (int)s->v[P_GROUPS],  (int)s->v[P_NONE],
                  (int)s->v[P_SKEW], (int)s->v[P_KIND], (int)s->v[P_DISTINCT]};
    return k;
}
static int64_t p_items(const op_shape *s) { return s->v[P_TOKENS] * s->v[P_R]; }
static int64_t p_sorted(const op_shape *s) {
    const key_spec k = p_keys(s);
    return p_items(s) - key_none(&k);
}

static op_shape p_shape(int64_t tokens, int r, int groups, int none, int skew, int kind,
                        int distinct, int64_t d) {
    op_shape s = {.v = {tokens, r, groups, none, skew, kind, distinct, d}};
    return s;
}

/* The old CPU pipeline's cases and the old GPU grouping cases (shared ones once). */
static int p_all_shapes(op_shape *out, int cap) {
    op_shape mis = p_shape(101, 2, 4, 10, 70, KEYS_UNIFORM, 0, 108); /* misaligned */
    mis.misalign = 1;
    op_shape hot = p_shape((int64_t)1 << 20, 1, 10, 1, 50, KEYS_UNIFORM, 0, 0); /* 1M items */
    op_shape two_pass = p_shape(300000, 2, 300, 3, 0, KEYS_UNIFORM, 0, 0); /* 2-pass radix sort */
    hot.large = two_pass.large = 1;
    const op_shape list[] = {
        p_shape(37, 1, 10, 0, 0, KEYS_UNIFORM, 0, 13),   /* TIDE buckets, odd d */
        p_shape(37, 1, 10, 20, 0, KEYS_UNIFORM, 0, 8),   /* keys < 0 */
        p_shape(37, 1, 10, 20, 0, KEYS_UNIFORM, 0, 64),  /* keys < 0, float4 rows */
        p_shape(101, 2, 5, 0, 0, KEYS_UNIFORM, 1, 7),    /* top-2 of 5 experts */
        p_shape(101, 2, 5, 0, 0, KEYS_UNIFORM, 0, 144),  /* r = 2, float4 rows */
        p_shape(101, 2, 4, 10, 80, KEYS_UNIFORM, 1, 12), /* uneven, top-2, dropped slots */
        mis,                                             /* the same, misaligned */
        p_shape(64, 2, 3, 0, 0, KEYS_UNIFORM, 0, 16),    /* r = 2, repeated keys allowed */
        p_shape(50, 1, 1, 0, 0, KEYS_UNIFORM, 0, 9),     /* one group */
        p_shape(50, 1, 7, 0, 0, KEYS_ONE, 0, 5),         /* every token in one group */
        p_shape(50, 1, 7, 0, 100, KEYS_UNIFORM, 0, 5),   /* every token in group 0 */
        p_shape(77, 1, 31, 5, 0, KEYS_SPARSE, 0, 3),     /* many empty groups */
        p_shape(9, 3, 100, 0, 0, KEYS_UNIFORM, 1, 1),    /* more groups than items, d 1 */
        p_shape(0, 1, 6, 0, 0, KEYS_UNIFORM, 0, 4),      /* n_items = 0 */
        p_shape(0, 2, 3, 0, 0, KEYS_UNIFORM, 0, 4),
        p_shape(20, 1, 4, 100, 0, KEYS_UNIFORM, 0, 6), /* no item has a group */
        p_shape(20, 2, 4, 100, 0, KEYS_UNIFORM, 0, 8),
        p_shape(5000, 2, 12, 3, 80, KEYS_UNIFORM, 1, 67),   /* the parallel CPU row paths */
        p_shape(4096, 2, 15, 2, 30, KEYS_UNIFORM, 0, 2304), /* MoE step at the SAE width */
        p_shape(3000, 1, 5000, 0, 0, KEYS_UNIFORM, 0, 4),   /* shared-memory histogram */
        p_shape(3000, 1, 20000, 0, 0, KEYS_UNIFORM, 0, 2),  /* many groups */
        p_shape(3000, 1, 20000, 1, 0, KEYS_UNIFORM, 0, 0),  /* global-atomic histogram (80 KB) */
        p_shape(9, 3, 100000, 0, 0, KEYS_UNIFORM, 0, 0),    /* the multi-chunk scan, sparse */
        hot,
        two_pass,
    };
    int n = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0] && n < cap; i++)
        out[n++] = list[i];
    return n;
}

/* The row ops' shapes: those with rows (d > 0), as the old GPU test. */
static int p_row_shapes(op_shape *out, int cap) {
    const int n = p_all_shapes(out, cap);
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (out[i].v[P_D] > 0) out[kept++] = out[i];
    return kept;
}

/* The keys of shape s (seeded from it), in keys [p_items]. */
static void p_make_keys(const op_shape *s, int32_t *keys) {
    const key_spec k = p_keys(s);
    seed_from(s, 0);
    make_keys(&k, keys);
}

/* The keys of shape s in a new array. */
static int32_t *p_new_keys(const op_shape *s) {
    int32_t *keys = new_i32(p_items(s));
    p_make_keys(s, keys);
    return keys;
}

static void p_label(const char *op, const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "%s n_tokens=%lld r=%d n_groups=%d none=%d%% skew=%d%% kind=%d distinct=%d d=%lld "
             "variant=%d misalign=%d",
             op, (long long)s->v[P_TOKENS], (int)s->v[P_R], (int)s->v[P_GROUPS], (int)s->v[P_NONE],
             (int)s->v[P_SKEW], (int)s->v[P_KIND], (int)s->v[P_DISTINCT], (long long)s->v[P_D],
             (int)s->v[P_VARIANT], s->misalign);
}

/* The benchmark's keys: a top-2 routing of the n tokens over the experts (distinct experts,
   every item grouped); d the rows' width. */
static op_shape p_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    return p_shape(n, 2, BENCH_EXPERTS, 0, 0, KEYS_UNIFORM, 1, d);
}

/* group_count: keys [n_items] -> counts [groups] */
static int group_count_shapes(op_shape *out, int cap) { return p_all_shapes(out, cap); }
static void group_count_bufs(const op_shape *s, op_buf *b) {
    b[0] = ibuf("keys", p_items(s), OP_BUF_IN);
    b[1] = ibuf("counts", s->v[P_GROUPS], OP_BUF_OUT);
}
static void group_count_tweak(const op_shape *s, void *const *host) {
    p_make_keys(s, host[0]);
    fill_i32(host[1], s->v[P_GROUPS], GARBAGE);
}
static int group_count_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, group_count, b[0], p_items(s), (int)s->v[P_GROUPS], b[1]);
}
static void group_count_naive(const op_shape *s, const void *const *in, double *const *want,
                              double *const *scale) {
    const int32_t *keys = in[0];
    (void)scale;
    for (int64_t g = 0; g < s->v[P_GROUPS]; g++)
        want[1][g] = 0;
    for (int64_t i = 0; i < p_items(s); i++)
        if (keys[i] >= 0) want[1][keys[i]]++;
}
static void group_count_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    int32_t keys[4] = {0, 3, 1, -1}, counts[3];
    rejected(SAEC_OP(dev, group_count, keys, 4, 3, counts), "key 3 >= n_groups 3");
    rejected(SAEC_OP(dev, group_count, keys, -1, 3, counts), "n_items < 0");
}
static void group_count_label(const op_shape *s, char *b, size_t cap) {
    p_label("group_count", s, b, cap);
}
static op_shape group_count_bench(int64_t n, int64_t m, int64_t d) { return p_bench(n, m, d); }
static saec_op_floor group_count_floor(const op_shape *s) {
    return saec_op_floor_group_count((double)p_items(s), (double)s->v[P_GROUPS]);
}

const op_case op_case_group_count = {.op = "group_count",
                                     .group = "grouping",
                                     .n_bufs = 2,
                                     OP_CASE_FUNCS(group_count),
                                     .tweak = group_count_tweak,
                                     .exact_be = 1,
                                     .bad_args = group_count_bad_args};

/* exclusive_scan: counts [groups] (of the shape's keys) -> offsets [groups + 1] */
static int exclusive_scan_shapes(op_shape *out, int cap) { return p_all_shapes(out, cap); }
static void exclusive_scan_bufs(const op_shape *s, op_buf *b) {
    b[0] = ibuf("counts", s->v[P_GROUPS], OP_BUF_IN);
    b[1] = ibuf("offsets", s->v[P_GROUPS] + 1, OP_BUF_OUT);
}
static void exclusive_scan_tweak(const op_shape *s, void *const *host) {
    int32_t *keys = p_new_keys(s), *counts = host[0];
    fill_i32(counts, s->v[P_GROUPS], 0);
    for (int64_t i = 0; i < p_items(s); i++)
        if (keys[i] >= 0) counts[keys[i]]++;
    fill_i32(host[1], s->v[P_GROUPS] + 1, GARBAGE);
    free(keys);
}
static int exclusive_scan_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, exclusive_scan, b[0], (int)s->v[P_GROUPS], b[1]);
}
static void exclusive_scan_naive(const op_shape *s, const void *const *in, double *const *want,
                                 double *const *scale) {
    const int32_t *counts = in[0];
    (void)scale;
    want[1][0] = 0;
    for (int64_t g = 0; g < s->v[P_GROUPS]; g++)
        want[1][g + 1] = want[1][g] + counts[g];
}
static void exclusive_scan_label(const op_shape *s, char *b, size_t cap) {
    p_label("exclusive_scan", s, b, cap);
}
static op_shape exclusive_scan_bench(int64_t n, int64_t m, int64_t d) { return p_bench(n, m, d); }
static saec_op_floor exclusive_scan_floor(const op_shape *s) {
    return saec_op_floor_exclusive_scan((double)s->v[P_GROUPS]);
}

const op_case op_case_exclusive_scan = {.op = "exclusive_scan",
                                        .group = "grouping",
                                        .n_bufs = 2,
                                        OP_CASE_FUNCS(exclusive_scan),
                                        .tweak = exclusive_scan_tweak,
                                        .exact_be = 1};

/* group_permute: keys [n_items], offsets [groups + 1] -> perm [n_items] (its first
   offsets[groups] written, the tail holding garbage that must stay), inv [n_items] */
static int group_permute_shapes(op_shape *out, int cap) { return p_all_shapes(out, cap); }
static void group_permute_bufs(const op_shape *s, op_buf *b) {
    b[0] = ibuf("keys", p_items(s), OP_BUF_IN);
    b[1] = ibuf("offsets", s->v[P_GROUPS] + 1, OP_BUF_IN);
    b[2] = ibuf("perm (stable; the unused tail untouched)", p_items(s), OP_BUF_OUT);
    b[3] = ibuf("inv", p_items(s), OP_BUF_OUT);
}
static void group_permute_tweak(const op_shape *s, void *const *host) {
    p_make_keys(s, host[0]);
    key_order(host[0], p_items(s), (int)s->v[P_GROUPS], host[1], NULL, NULL);
    fill_i32(host[2], p_items(s), GARBAGE);
    fill_i32(host[3], p_items(s), GARBAGE);
}
static int group_permute_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, group_permute, b[0], p_items(s), (int)s->v[P_GROUPS], b[1], b[2], b[3]);
}
/* group by group, items in increasing order: O(groups · items), as naive as it gets */
static void group_permute_naive(const op_shape *s, const void *const *in, double *const *want,
                                double *const *scale) {
    const int32_t *keys = in[0], *perm0 = in[2];
    const int64_t n_items = p_items(s);
    (void)scale;
    int64_t p = 0;
    for (int64_t g = 0; g < s->v[P_GROUPS]; g++)
        for (int64_t i = 0; i < n_items; i++)
            if (keys[i] == g) want[2][p] = (double)i, want[3][i] = (double)p++;
    for (int64_t i = 0; i < n_items; i++) {
        if (keys[i] < 0) want[3][i] = -1;
        if (i >= p) want[2][i] = perm0[i];
    }
}
static void group_permute_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    int32_t keys[4] = {0, 0, 1, -1}, offsets[4] = {0, 1, 2, 2}, perm[4], inv[4];
    rejected(SAEC_OP(dev, group_permute, keys, 4, 3, offsets, perm, inv),
             "offsets claim counts {1, 1, 0}, the keys have {2, 1, 0}");
    offsets[1] = 2, offsets[2] = 3, offsets[3] = 4;
    rejected(SAEC_OP(dev, group_permute, keys, 4, 3, offsets, perm, inv),
             "offsets claim 4 grouped items, there are 3");
}
static void group_permute_label(const op_shape *s, char *b, size_t cap) {
    p_label("group_permute", s, b, cap);
}
static op_shape group_permute_bench(int64_t n, int64_t m, int64_t d) { return p_bench(n, m, d); }
static saec_op_floor group_permute_floor(const op_shape *s) {
    return saec_op_floor_group_permute((double)p_items(s), (double)s->v[P_GROUPS]);
}

const op_case op_case_group_permute = {.op = "group_permute",
                                       .group = "grouping",
                                       .n_bufs = 4,
                                       OP_CASE_FUNCS(group_permute),
                                       .tweak = group_permute_tweak,
                                       .exact_be = 1,
                                       .bad_args = group_permute_bad_args,
                                       .bench_name = "group_permute_top2_g8"};

/* group_capacity: keys, inv, offsets (the stable order of those keys) -> keys_out (exact), at
   capacity 0, 1, about the mean group size and past the largest group; variant bit 0: in place. */
static int group_capacity_shapes(op_shape *out, int cap) {
    op_shape all[64];
    const int na = p_all_shapes(all, 64);
    int n = 0;
    for (int i = 0; i < na; i++)
        for (int variant = 0; variant < 8 && n < cap; variant++) {
            out[n] = all[i];
            out[n++].v[P_VARIANT] = variant; /* bits 1-2: the capacity kind; bit 0: in place */
        }
    return n;
}
static int64_t capacity_of(const op_shape *s) {
    const int64_t mean = p_items(s) / (s->v[P_GROUPS] > 0 ? s->v[P_GROUPS] : 1);
    switch ((int)(s->v[P_VARIANT] >> 1)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return mean + 1;        /* a capacity factor of about 1: the skewed groups overflow */
    default: return p_items(s) + 1; /* nothing dropped */
    }
}
static void group_capacity_bufs(const op_shape *s, op_buf *b) {
    const int in_place = (int)(s->v[P_VARIANT] & 1);
    b[0] = ibuf("keys", p_items(s), in_place ? OP_BUF_INOUT : OP_BUF_IN);
    b[1] = ibuf("inv", p_items(s), OP_BUF_IN);
    b[2] = ibuf("offsets", s->v[P_GROUPS] + 1, OP_BUF_IN);
    b[3] = in_place ? op_alias("keys_out (in place)", OP_I32, p_items(s), OP_BUF_INOUT, 0)
                    : ibuf("keys_out", p_items(s), OP_BUF_OUT);
}
static void group_capacity_tweak(const op_shape *s, void *const *host) {
    p_make_keys(s, host[0]);
    key_order(host[0], p_items(s), (int)s->v[P_GROUPS], host[2], NULL, host[1]);
    if (!(s->v[P_VARIANT] & 1)) fill_i32(host[3], p_items(s), GARBAGE);
}
static int group_capacity_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, group_capacity, b[0], b[1], b[2], p_items(s), (int)s->v[P_GROUPS],
                   capacity_of(s), b[3]);
}
/* Counting each group's items in item order: the first `capacity` stay. */
static void group_capacity_naive(const op_shape *s, const void *const *in, double *const *want,
                                 double *const *scale) {
    const int32_t *keys = in[0];
    const int64_t cap = capacity_of(s);
    const int in_place = (int)(s->v[P_VARIANT] & 1);
    int64_t *seen = calloc((size_t)s->v[P_GROUPS] + 1, sizeof *seen);
    if (!seen) abort();
    (void)scale;
    for (int64_t i = 0; i < p_items(s); i++) {
        const int32_t g = keys[i];
        const double out = g >= 0 && seen[g]++ < cap ? g : -1;
        want[3][i] = out;
        if (in_place) want[0][i] = out;
    }
    free(seen);
}
static void group_capacity_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    int32_t k[2] = {0, 0}, inv[2] = {0, 1}, off[2] = {0, 2};
    rejected(SAEC_OP(dev, group_capacity, k, inv, off, 2, 1, -1, k), "capacity < 0");
}
static void group_capacity_label(const op_shape *s, char *b, size_t cap) {
    p_label("group_capacity", s, b, cap);
}
static op_shape group_capacity_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = p_bench(n, m, d);
    s.v[P_VARIANT] = 4; /* capacity factor about 1 */
    return s;
}
static saec_op_floor group_capacity_floor(const op_shape *s) {
    return saec_op_floor_group_capacity((double)p_items(s), (double)s->v[P_GROUPS]);
}

const op_case op_case_group_capacity = {.op = "group_capacity",
                                        .group = "grouping",
                                        .n_bufs = 4,
                                        OP_CASE_FUNCS(group_capacity),
                                        .tweak = group_capacity_tweak,
                                        .exact_be = 1,
                                        .bad_args = group_capacity_bad_args,
                                        .bench_name = "group_capacity_top2_g8"};

/* gather_rows: src [tokens, d], perm [n_sorted] (the stable key order) -> dst [n_sorted, d]
   and one element past it that must stay (NaN) */
static int gather_rows_shapes(op_shape *out, int cap) { return p_row_shapes(out, cap); }
static void gather_rows_bufs(const op_shape *s, op_buf *b) {
    const int64_t d = s->v[P_D];
    b[0] = fbuf("src", s->v[P_TOKENS] * d, OP_BUF_IN);
    b[1] = ibuf("perm", p_sorted(s), OP_BUF_IN);
    b[2] = fbuf("dst (nothing past its last row written)", p_sorted(s) * d + 1, OP_BUF_OUT);
    b[2].fill = OP_FILL_NAN, b[2].exact = 1;
}
static void gather_rows_tweak(const op_shape *s, void *const *host) {
    int32_t *keys = p_new_keys(s);
    key_order(keys, p_items(s), (int)s->v[P_GROUPS], NULL, host[1], NULL);
    free(keys);
}
static int gather_rows_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, gather_rows, b[0], b[1], p_sorted(s), (int)s->v[P_R], s->v[P_D], b[2]);
}
static void gather_rows_naive(const op_shape *s, const void *const *in, double *const *want,
                              double *const *scale) {
    const float *src = in[0], *dst0 = in[2];
    const int32_t *perm = in[1];
    const int64_t d = s->v[P_D], n_sorted = p_sorted(s);
    (void)scale;
    for (int64_t p = 0; p < n_sorted; p++)
        for (int64_t c = 0; c < d; c++)
            want[2][p * d + c] = src[(perm[p] / s->v[P_R]) * d + c];
    want[2][n_sorted * d] = dst0[n_sorted * d];
}
static void gather_rows_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float a[8] = {0}, c[8] = {0};
    int32_t perm[2] = {0, 1};
    rejected(SAEC_OP(dev, gather_rows, a, perm, 2, 0, 2, c), "r = 0");
}
static void gather_rows_label(const op_shape *s, char *b, size_t cap) {
    p_label("gather_rows", s, b, cap);
}
static op_shape gather_rows_bench(int64_t n, int64_t m, int64_t d) { return p_bench(n, m, d); }
static saec_op_floor gather_rows_floor(const op_shape *s) {
    return saec_op_floor_gather_rows((double)p_sorted(s), (double)s->v[P_D]);
}

const op_case op_case_gather_rows = {.op = "gather_rows",
                                     .group = "grouping",
                                     .n_bufs = 3,
                                     OP_CASE_FUNCS(gather_rows),
                                     .tweak = gather_rows_tweak,
                                     .exact_be = 1,
                                     .bad_args = gather_rows_bad_args};

/* scatter_rows: src [n_sorted, d], inv [n_items] (the stable key order), w [n_items] (top-r
   weights summing to 1 per token) or NULL -> out [tokens, d], accumulating (INOUT) or over NaN */
static int scatter_rows_shapes(op_shape *out, int cap) {
    op_shape rows[64];
    const int nr = p_row_shapes(rows, 64);
    int n = 0;
    for (int i = 0; i < nr; i++)
        for (int variant = 0; variant < 4 && n < cap; variant++) {
            out[n] = rows[i];
            out[n++].v[P_VARIANT] = variant;
        }
    return n;
}
static void scatter_rows_bufs(const op_shape *s, op_buf *b) {
    const int64_t d = s->v[P_D], out_n = s->v[P_TOKENS] * d;
    const int with_w = (int)(s->v[P_VARIANT] & 1), accumulate = (int)(s->v[P_VARIANT] >> 1);
    b[0] = fbuf("src", p_sorted(s) * d, OP_BUF_IN);
    b[1] = ibuf("inv", p_items(s), OP_BUF_IN);
    b[2] = with_w ? fbuf("w", p_items(s), OP_BUF_IN) : op_absent("w");
    b[3] = fbuf(with_w ? "out, weighted" : "out, w NULL", out_n,
                accumulate ? OP_BUF_INOUT : OP_BUF_OUT);
    if (!accumulate) b[3].fill = OP_FILL_NAN; /* overwritten, not read */
    b[3].exact = 1;
}
static void scatter_rows_tweak(const op_shape *s, void *const *host) {
    int32_t *keys = p_new_keys(s);
    key_order(keys, p_items(s), (int)s->v[P_GROUPS], NULL, NULL, host[1]);
    free(keys);
    float *w = host[2];
    const int r = (int)s->v[P_R];
    for (int64_t t = 0; w && t < s->v[P_TOKENS]; t++) { /* softmax-like: in (0, 1), sum ~1 */
        float sum = 0;
        for (int j = 0; j < r; j++)
            sum += (w[t * r + j] = (float)(0.05 + rng_unit()));
        for (int j = 0; j < r; j++)
            w[t * r + j] /= sum;
    }
}
static int scatter_rows_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, scatter_rows, b[0], b[1], b[2], s->v[P_TOKENS], (int)s->v[P_R], s->v[P_D],
                   (int)(s->v[P_VARIANT] >> 1), b[3]);
}
/* The contract's float operations in slot order, each rounded to float once (a double
   product or sum of two floats rounded to float is the float operation's result): exact. */
static void scatter_rows_naive(const op_shape *s, const void *const *in, double *const *want,
                               double *const *scale) {
    const float *src = in[0], *w = in[2], *out0 = in[3];
    const int32_t *inv = in[1];
    const int64_t d = s->v[P_D];
    const int r = (int)s->v[P_R], accumulate = (int)(s->v[P_VARIANT] >> 1);
    (void)scale;
    for (int64_t t = 0; t < s->v[P_TOKENS]; t++)
        for (int64_t c = 0; c < d; c++) {
            float o = accumulate ? out0[t * d + c] : 0.0f;
            for (int j = 0; j < r; j++) {
                const int32_t p = inv[t * r + j];
                if (p < 0) continue;
                const float prod =
                    w ? (float)((double)w[t * r + j] * src[p * d + c]) : src[p * d + c];
                o = (float)((double)o + prod);
            }
            want[3][t * d + c] = o;
        }
}
static void scatter_rows_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    float a[8] = {0}, c[8] = {0};
    int32_t inv[2] = {0, 1};
    rejected(SAEC_OP(dev, scatter_rows, a, inv, NULL, 2, 0, 2, 0, c), "r = 0");
}
static void scatter_rows_label(const op_shape *s, char *b, size_t cap) {
    p_label("scatter_rows", s, b, cap);
}
static op_shape scatter_rows_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = p_bench(n, m, d);
    s.v[P_VARIANT] = 1; /* weighted, not accumulating */
    return s;
}
static saec_op_floor scatter_rows_floor(const op_shape *s) {
    return saec_op_floor_scatter_rows((double)s->v[P_TOKENS], (double)s->v[P_R], (double)s->v[P_D],
                                      (double)(s->v[P_VARIANT] >> 1));
}

const op_case op_case_scatter_rows = {.op = "scatter_rows",
                                      .group = "grouping",
                                      .n_bufs = 4,
                                      OP_CASE_FUNCS(scatter_rows),
                                      .tweak = scatter_rows_tweak,
                                      .exact_be = 1,
                                      .bad_args = scatter_rows_bad_args};

/* scatter_rows_backward: dout [tokens, d], src [n_sorted, d], inv, w (or NULL) -> dsrc
   [n_sorted, d] (exact: one float multiply), dw [n_items] (or NULL; a double dot rounded once).
   variant: bit 0 weights, bit 1 dw. The same routings as scatter_rows (every sorted row has one
   item: dsrc is written whole). */
static int scatter_rows_backward_shapes(op_shape *out, int cap) {
    return scatter_rows_shapes(out, cap);
}
static void scatter_rows_backward_bufs(const op_shape *s, op_buf *b) {
    const int64_t d = s->v[P_D];
    const int with_w = (int)(s->v[P_VARIANT] & 1), with_dw = (int)(s->v[P_VARIANT] >> 1);
    b[0] = fbuf("dout", s->v[P_TOKENS] * d, OP_BUF_IN);
    b[1] = with_dw ? fbuf("src", p_sorted(s) * d, OP_BUF_IN) : op_absent("src");
    b[2] = ibuf("inv", p_items(s), OP_BUF_IN);
    b[3] = with_w ? fbuf("w", p_items(s), OP_BUF_IN) : op_absent("w");
    b[4] = fbuf("dsrc", p_sorted(s) * d, OP_BUF_OUT);
    b[4].fill = OP_FILL_NAN, b[4].exact = 1;
    b[5] = with_dw ? fbuf("dw", p_items(s), OP_BUF_OUT) : op_absent("dw");
    b[5].fill = OP_FILL_NAN;
}
static void scatter_rows_backward_tweak(const op_shape *s, void *const *host) {
    void *const sc[4] = {NULL, host[2], host[3], NULL}; /* scatter_rows' inv and w slots */
    scatter_rows_tweak(s, sc);
}
static int scatter_rows_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, scatter_rows_backward, b[0], b[1], b[2], b[3], s->v[P_TOKENS],
                   (int)s->v[P_R], s->v[P_D], b[4], b[5]);
}
/* dsrc: the float product (a double product of two floats rounded once); dw: the dot in double,
   scale Σ|terms|. */
static void scatter_rows_backward_naive(const op_shape *s, const void *const *in,
                                        double *const *want, double *const *scale) {
    const float *dout = in[0], *src = in[1], *w = in[3];
    const int32_t *inv = in[2];
    const int64_t d = s->v[P_D];
    const int r = (int)s->v[P_R];
    for (int64_t i = 0; i < p_items(s); i++) {
        const int32_t p = inv[i];
        const float *g = dout + (i / r) * d;
        if (want[5]) want[5][i] = 0, scale[5][i] = 0;
        if (p < 0) continue;
        for (int64_t c = 0; c < d; c++) {
            want[4][p * d + c] = w ? (float)((double)w[i] * g[c]) : g[c];
            if (want[5])
                want[5][i] += (double)g[c] * src[p * d + c],
                    scale[5][i] += fabs((double)g[c] * src[p * d + c]);
        }
    }
}
static void scatter_rows_backward_bad_args(saec_dev *dev,
                                           int (*rejected)(int rc, const char *what)) {
    float a[8] = {0}, c[8] = {0};
    int32_t inv[2] = {0, 1};
    rejected(SAEC_OP(dev, scatter_rows_backward, a, a, inv, NULL, 2, 0, 2, c, NULL), "r = 0");
    rejected(SAEC_OP(dev, scatter_rows_backward, a, NULL, inv, NULL, 2, 1, 2, c, c),
             "dw without src");
}
static void scatter_rows_backward_label(const op_shape *s, char *b, size_t cap) {
    p_label("scatter_rows_backward", s, b, cap);
}
static op_shape scatter_rows_backward_bench(int64_t n, int64_t m, int64_t d) {
    op_shape s = p_bench(n, m, d);
    s.v[P_VARIANT] = 3; /* weighted, with the gates' gradient */
    return s;
}
static saec_op_floor scatter_rows_backward_floor(const op_shape *s) {
    return saec_op_floor_scatter_rows_backward((double)s->v[P_TOKENS], (double)s->v[P_R],
                                               (double)s->v[P_D], (double)(s->v[P_VARIANT] >> 1));
}

const op_case op_case_scatter_rows_backward = {.op = "scatter_rows_backward",
                                               .group = "grouping",
                                               .n_bufs = 6,
                                               OP_CASE_FUNCS(scatter_rows_backward),
                                               .tweak = scatter_rows_backward_tweak,
                                               .atol = 0,
                                               .rtol = 1e-6,
                                               .atol_be = 0,
                                               .rtol_be = 1e-6,
                                               .deterministic = 1,
                                               .bad_args = scatter_rows_backward_bad_args,
                                               .bench_name = "scatter_rows_backward_top2_g8"};

/* ---- the grouped GEMMs: grouped_gemm, grouped_gemm_wgrad, grouped_col_sum ----
   Groups: a row count list of group_sizes[], or (set ROUTED) the counts of a top-2 routing of
   `tokens` over `groups` experts (the benchmark's). v: set, tokens, groups, N, K, trans_b, bias,
   null (K or N is 0 and every operand NULL); f: alpha, beta. */
enum { G_SET, G_TOKENS, G_GROUPS, G_N, G_K, G_TB, G_BIAS, G_NULL };
enum { ROUTED = -1 };

static const struct {
    int n;
    int32_t rows[10];
} group_sizes[] = {
    {7, {17, 0, 1, 64, 0, 33, 5}},                          /* 0: uneven, empty groups */
    {8, {17, 0, 1, 64, 0, 65, 5, 130}},                     /* 1: tile edges, empty groups */
    {1, {45}},                                              /* 2: one group */
    {4, {0, 0, 70, 0}},                                     /* 3: every row in one group */
    {4, {0, 0, 200, 0}},                                    /* 4: the same, past a tile */
    {3, {0, 0, 0}},                                         /* 5: no rows at all */
    {5, {130, 97, 161, 124, 0}},                            /* 6: MoE-like, one idle expert */
    {5, {530, 497, 661, 360, 0}},                           /* 7: the same, larger */
    {10, {410, 397, 402, 0, 388, 415, 420, 391, 405, 399}}, /* 8: `separate` TIDE buckets */
    {2, {0, 20011}},                                        /* 9: tiny output, many rows */
    {3, {1, 0, 1}},                                         /* 10: one row: an outer product */
    {2, {0, 70001}},                                        /* 11: few columns, many rows */
    {2, {4, 5}},                                            /* 12: nothing to do (null) */
};

static int g_groups(const op_shape *s) {
    return s->v[G_SET] == ROUTED ? (int)s->v[G_GROUPS] : group_sizes[s->v[G_SET]].n;
}
static int64_t g_rows(const op_shape *s) {
    if (s->v[G_SET] == ROUTED) return 2 * s->v[G_TOKENS];
    int64_t rows = 0;
    for (int g = 0; g < g_groups(s); g++)
        rows += group_sizes[s->v[G_SET]].rows[g];
    return rows;
}

/* offsets [groups + 1] of shape s */
static void g_offsets(const op_shape *s, int32_t *offsets) {
    const int groups = g_groups(s);
    if (s->v[G_SET] == ROUTED) {
        const key_spec k = {s->v[G_TOKENS], 2, groups, 0, 0, KEYS_UNIFORM, 1};
        int32_t *keys = new_i32(2 * k.tokens);
        const op_shape routing = {.v = {ROUTED, k.tokens, groups}}; /* the same for all three */
        seed_from(&routing, 1);
        make_keys(&k, keys);
        key_order(keys, 2 * k.tokens, groups, offsets, NULL, NULL);
        free(keys);
        return;
    }
    offsets[0] = 0;
    for (int g = 0; g < groups; g++)
        offsets[g + 1] = offsets[g] + group_sizes[s->v[G_SET]].rows[g];
}

static op_shape g_shape(int set, int64_t N, int64_t K, int tb, int bias, float alpha, float beta) {
    op_shape s = {.v = {set, 0, 0, N, K, tb, bias}, .f = {alpha, beta}};
    return s;
}

/* the benchmark's groups: a top-2 routing of the n tokens over the experts */
static op_shape g_routed(int64_t tokens, int groups, int64_t N, int64_t K, int tb, int bias,
                         float alpha, float beta) {
    op_shape s = g_shape(ROUTED, N, K, tb, bias, alpha, beta);
    s.v[G_TOKENS] = tokens, s.v[G_GROUPS] = groups;
    return s;
}

static void g_label(const char *op, const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "%s set=%d (groups=%d rows=%lld) N=%lld K=%lld trans_b=%d bias=%d null=%d alpha=%g "
             "beta=%g",
             op, (int)s->v[G_SET], g_groups(s), (long long)g_rows(s), (long long)s->v[G_N],
             (long long)s->v[G_K], (int)s->v[G_TB], (int)s->v[G_BIAS], (int)s->v[G_NULL], s->f[0],
             s->f[1]);
}

/* Σ_k |a_k b_k| and Σ_k a_k b_k in double */
static void dot2(const float *a, int64_t sa, const float *b, int64_t sb, int64_t n, double *sum,
                 double *mag) {
    double acc = 0, m = 0;
    for (int64_t k = 0; k < n; k++) {
        const double t = (double)a[k * sa] * b[k * sb];
        acc += t, m += fabs(t);
    }
    *sum = acc, *mag = m;
}

/* grouped_gemm: C[rows_g] = alpha A[rows_g] op(B_g) + beta C[rows_g] + bias_g.
   A [rows, K], B [groups, K, N] (or [groups, N, K] with trans_b), C [rows + 3, N] (the 3 rows
   past the last group hold SENTINEL and must stay), bias [groups, N] or NULL. */
enum { GG_PAD = 3 };

static int grouped_gemm_shapes(op_shape *out, int cap) {
    /* the old CPU test's groups (0, 3, 6) and the old GPU test's (1, 4, 7); 2 and 5 in both */
    static const struct {
        int set;
        int64_t N, K;
        float alpha;
    } cases[] = {{0, 29, 13, 0.7f},   {1, 29, 13, 0.7f}, {2, 1, 1, 1.0f},    {3, 66, 37, -1.5f},
                 {4, 130, 67, -1.5f}, {5, 8, 8, 1.0f},   {6, 144, 72, 1.0f}, {7, 144, 72, 1.0f}};
    int n = 0;
    for (int tb = 0; tb < 2; tb++)
        for (int variant = 0; variant < 4; variant++)
            for (size_t i = 0; i < sizeof cases / sizeof cases[0] && n < cap; i++)
                out[n++] = g_shape(cases[i].set, cases[i].N, cases[i].K, tb, variant >> 1,
                                   cases[i].alpha, (variant & 1) ? 1.0f : 0.0f);
    const op_shape extra[] = {
        g_shape(0, 11, 0, 0, 1, 1.0f, 1.0f), /* K = 0: C = beta C + bias */
        g_shape(1, 11, 0, 0, 1, 1.0f, 1.0f),
        g_shape(0, 11, 5, 1, 1, 0.0f, 0.5f), /* alpha = 0 */
        g_shape(1, 11, 5, 1, 1, 0.0f, 0.5f),
        g_routed(101, 8, 33, 19, 1, 1, 1.0f, 0.0f), /* the benchmark's top-2 routing */
        g_shape(8, 1000, 257, 1, 1, 1.0f, 0.0f),    /* `separate` encoders (large) */
    };
    const int n_extra = (int)(sizeof extra / sizeof extra[0]);
    for (int i = 0; i < n_extra && n < cap; i++) {
        out[n] = extra[i];
        out[n++].large = i == n_extra - 1;
    }
    return n;
}

static void grouped_gemm_bufs(const op_shape *s, op_buf *b) {
    const int64_t rows = g_rows(s), N = s->v[G_N], K = s->v[G_K], groups = g_groups(s);
    b[0] = ibuf("offsets", groups + 1, OP_BUF_IN);
    b[1] = fbuf("A", rows * K, OP_BUF_IN);
    b[2] = fbuf("B", groups * K * N, OP_BUF_IN);
    b[3] = fbuf("C (rows past the last group untouched)", (rows + GG_PAD) * N, OP_BUF_INOUT);
    if (s->f[1] == 0.0f) b[3].fill = OP_FILL_NAN; /* beta = 0 must not read C */
    b[4] = s->v[G_BIAS] ? fbuf("bias", groups * N, OP_BUF_IN) : op_absent("bias");
}
static void grouped_gemm_tweak(const op_shape *s, void *const *host) {
    g_offsets(s, host[0]);
    const int64_t N = s->v[G_N];
    float *C = host[3];
    for (int64_t i = g_rows(s) * N; i < (g_rows(s) + GG_PAD) * N; i++)
        C[i] = SENTINEL;
}
static int grouped_gemm_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, grouped_gemm, (int)s->v[G_TB], g_groups(s), b[0], s->v[G_N], s->v[G_K],
                   s->f[0], b[1], b[2], s->f[1], b[3], b[4]);
}
/* scale = |alpha| Σ|a b| + |beta c| + |bias|: FP32 error is a small multiple of eps times this
   (tolerance 1e-5, about 100 eps); the rows past the last group exact */
static void grouped_gemm_naive(const op_shape *s, const void *const *in, double *const *want,
                               double *const *scale) {
    const int32_t *offsets = in[0];
    const float *A = in[1], *B = in[2], *C = in[3], *bias = in[4];
    const int64_t N = s->v[G_N], K = s->v[G_K], rows = g_rows(s);
    const int tb = (int)s->v[G_TB];
    const double alpha = s->f[0], beta = s->f[1];
    for (int g = 0; g < g_groups(s); g++) {
        const float *Bg = B + (int64_t)g * K * N;
        for (int64_t i = offsets[g]; i < offsets[g + 1]; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc, mag;
                dot2(A + i * K, 1, tb ? Bg + j * K : Bg + j, tb ? 1 : N, K, &acc, &mag);
                const double c = beta == 0.0 ? 0.0 : beta * C[i * N + j];
                const double bj = bias ? bias[(int64_t)g * N + j] : 0.0;
                want[3][i * N + j] = alpha * acc + c + bj;
                scale[3][i * N + j] = fabs(alpha) * mag + fabs(c) + fabs(bj);
            }
    }
    for (int64_t i = rows * N; i < (rows + GG_PAD) * N; i++)
        want[3][i] = C[i], scale[3][i] = EXACT_SCALE;
}
static void grouped_gemm_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    const int32_t bad_offsets[3] = {0, 5, 2};
    float a[16] = {0}, c[16] = {0};
    rejected(SAEC_OP(dev, grouped_gemm, 0, 2, bad_offsets, 1, 1, 1.0f, a, a, 0.0f, c, NULL),
             "decreasing offsets");
}
static void grouped_gemm_label(const op_shape *s, char *b, size_t cap) {
    g_label("grouped_gemm", s, b, cap);
}
/* the experts' first layer: [2n, d] x W_gᵀ (W_g [N, d]) + b_g over a top-2 routing */
static op_shape grouped_gemm_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    return g_routed(n, BENCH_EXPERTS, BENCH_EXPERT_N, d, 1, 1, 1.0f, 0.0f);
}
static saec_op_floor grouped_gemm_floor(const op_shape *s) {
    return saec_op_floor_grouped_gemm((double)g_rows(s), g_groups(s), (double)s->v[G_N],
                                      (double)s->v[G_K], s->f[1] != 0.0f, (double)s->v[G_BIAS]);
}

const op_case op_case_grouped_gemm = {.op = "grouped_gemm",
                                      .group = "grouped_gemm",
                                      .n_bufs = 5,
                                      OP_CASE_FUNCS(grouped_gemm),
                                      .tweak = grouped_gemm_tweak,
                                      .atol = 1e-6,
                                      .rtol = 1e-5,
                                      .atol_be = 1e-6,
                                      .rtol_be = 1e-5,
                                      .bad_args = grouped_gemm_bad_args,
                                      .bench_name = "grouped_gemm_g8_fp32"};

/* The backward's operands: A [rows + 3, K] and C [rows + 3, N], their 3 rows past the last
   group NaN (must not be read); the output [out] and one element past it (SENTINEL: must stay),
   NaN where beta = 0 (must not be read). With null, K or N is 0 and every operand NULL. */
enum { WG_PAD = 3 };

static void g_nan_tail(float *p, int64_t from, int64_t to) {
    for (int64_t i = from; p && i < to; i++)
        p[i] = NAN;
}

/* the output's empty groups (exactly beta · out) and its sentinel: exact */
static void g_exact_empty(const op_shape *s, const int32_t *offsets, int64_t per_group,
                          const float *out0, double *want, double *scale) {
    const int groups = g_groups(s);
    for (int g = 0; g < groups; g++)
        if (offsets[g + 1] == offsets[g])
            for (int64_t i = g * per_group; i < (g + 1) * per_group; i++)
                want[i] = s->f[1] == 0.0f ? 0.0f : s->f[1] * out0[i], scale[i] = EXACT_SCALE;
    want[groups * per_group] = out0[groups * per_group];
    scale[groups * per_group] = EXACT_SCALE;
}

/* grouped_gemm_wgrad: dB_g [K, N] = alpha A[rows_g]ᵀ C[rows_g] + beta dB_g */
static int grouped_gemm_wgrad_shapes(op_shape *out, int cap) {
    static const struct {
        int set;
        int64_t K, N;
        float alpha;
    } cases[] = {{0, 13, 29, 0.7f},   {1, 13, 29, 0.7f}, {2, 1, 1, 1.0f},    {3, 37, 66, -1.5f},
                 {4, 67, 130, -1.5f}, {5, 8, 8, 1.0f},   {6, 72, 144, 1.0f}, {7, 144, 72, 1.0f},
                 {10, 5, 3, 2.0f},    {9, 7, 5, 1.0f}};
    int n = 0;
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0] && n < cap; i++)
            out[n++] = g_shape(cases[i].set, cases[i].N, cases[i].K, 0, 0, cases[i].alpha,
                               b ? 1.0f : 0.0f);
    op_shape k0 = g_shape(12, 5, 0, 0, 0, 1.0f, 0.0f), n0 = g_shape(12, 0, 5, 0, 0, 1.0f, 0.0f);
    k0.v[G_NULL] = n0.v[G_NULL] = 1;
    const op_shape extra[] = {
        g_shape(0, 5, 11, 0, 0, 0.0f, 0.5f), /* alpha = 0: dB = beta dB */
        g_shape(1, 5, 11, 0, 0, 0.0f, 0.5f), g_shape(0, 300, 1, 0, 0, 1.0f, 0.5f), /* K = 1 */
        k0, n0,                                     /* K = 0, N = 0: nothing read or written */
        g_routed(101, 8, 33, 19, 0, 0, 1.0f, 1.0f), /* the benchmark's top-2 routing */
        /* 528 groups of a 64 x 64 tile: enough blocks without row splits (CUDA, 132 SMs), the
           benchmark's path; some groups empty */
        g_routed(600, 528, 64, 64, 0, 0, 0.7f, 0.0f), g_routed(600, 528, 64, 64, 0, 0, 0.7f, 1.0f),
        g_shape(8, 300, 257, 0, 0, 1.0f, 1.0f), /* `separate` buckets, scaled down (large) */
    };
    const int n_extra = (int)(sizeof extra / sizeof extra[0]);
    for (int i = 0; i < n_extra && n < cap; i++) {
        out[n] = extra[i];
        out[n++].large = i == n_extra - 1;
    }
    return n;
}
static void grouped_gemm_wgrad_bufs(const op_shape *s, op_buf *b) {
    const int64_t rows = g_rows(s), N = s->v[G_N], K = s->v[G_K], groups = g_groups(s);
    const int null = (int)s->v[G_NULL];
    b[0] = ibuf("offsets", groups + 1, OP_BUF_IN);
    b[1] = null ? op_absent("A") : fbuf("A", (rows + WG_PAD) * K, OP_BUF_IN);
    b[2] = null ? op_absent("C") : fbuf("C", (rows + WG_PAD) * N, OP_BUF_IN);
    b[3] = null ? op_absent("dB")
                : fbuf("dB (empty groups beta dB; past the end untouched)", groups * K * N + 1,
                       OP_BUF_INOUT);
    if (s->f[1] == 0.0f) b[3].fill = OP_FILL_NAN;
}
static void grouped_gemm_wgrad_tweak(const op_shape *s, void *const *host) {
    g_offsets(s, host[0]);
    const int64_t rows = g_rows(s), N = s->v[G_N], K = s->v[G_K];
    g_nan_tail(host[1], rows * K, (rows + WG_PAD) * K);
    g_nan_tail(host[2], rows * N, (rows + WG_PAD) * N);
    if (host[3]) ((float *)host[3])[g_groups(s) * K * N] = SENTINEL;
}
static int grouped_gemm_wgrad_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, grouped_gemm_wgrad, g_groups(s), b[0], s->v[G_K], s->v[G_N], s->f[0], b[1],
                   b[2], s->f[1], b[3]);
}
static void grouped_gemm_wgrad_naive(const op_shape *s, const void *const *in, double *const *want,
                                     double *const *scale) {
    const int32_t *offsets = in[0];
    const float *A = in[1], *C = in[2], *dB = in[3];
    const int64_t N = s->v[G_N], K = s->v[G_K];
    const double alpha = s->f[0], beta = s->f[1];
    if (!dB) return;
    for (int g = 0; g < g_groups(s); g++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) {
                const int64_t o = ((int64_t)g * K + k) * N + j, r0 = offsets[g];
                double acc, mag;
                dot2(A + r0 * K + k, K, C + r0 * N + j, N, offsets[g + 1] - r0, &acc, &mag);
                const double c = beta == 0.0 ? 0.0 : beta * dB[o];
                want[3][o] = alpha * acc + c;
                scale[3][o] = fabs(alpha) * mag + fabs(c);
            }
    g_exact_empty(s, offsets, K * N, dB, want[3], scale[3]);
}
static void grouped_gemm_wgrad_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    const int32_t bad_offsets[3] = {0, 5, 2};
    float a[16] = {0}, c[16] = {0};
    rejected(SAEC_OP(dev, grouped_gemm_wgrad, 2, bad_offsets, 1, 1, 1.0f, a, a, 0.0f, c),
             "decreasing offsets");
    rejected(SAEC_OP(dev, grouped_gemm_wgrad, -1, bad_offsets, 1, 1, 1.0f, a, a, 0.0f, c),
             "n_groups < 0");
}
static void grouped_gemm_wgrad_label(const op_shape *s, char *b, size_t cap) {
    g_label("grouped_gemm_wgrad", s, b, cap);
}
/* dW_g [d, N] += A[rows_g]ᵀ dY[rows_g] over a top-2 routing */
static op_shape grouped_gemm_wgrad_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    return g_routed(n, BENCH_EXPERTS, BENCH_EXPERT_N, d, 0, 0, 1.0f, 1.0f);
}
static saec_op_floor grouped_gemm_wgrad_floor(const op_shape *s) {
    return saec_op_floor_grouped_gemm_wgrad((double)g_rows(s), g_groups(s), (double)s->v[G_K],
                                            (double)s->v[G_N]);
}

const op_case op_case_grouped_gemm_wgrad = {.op = "grouped_gemm_wgrad",
                                            .group = "grouped_gemm_wgrad",
                                            .n_bufs = 4,
                                            OP_CASE_FUNCS(grouped_gemm_wgrad),
                                            .tweak = grouped_gemm_wgrad_tweak,
                                            .atol = 1e-6,
                                            .rtol = 1e-5,
                                            .atol_be = 1e-6,
                                            .rtol_be = 1e-5,
                                            .deterministic = 1,
                                            .bad_args = grouped_gemm_wgrad_bad_args,
                                            .bench_name = "grouped_gemm_wgrad_g8_fp32"};

/* grouped_col_sum: out[g, N] = alpha Σ_{rows of g} C[row, :] + beta out[g, :] */
static int grouped_col_sum_shapes(op_shape *out, int cap) {
    static const struct {
        int set;
        int64_t N;
        float alpha;
    } cases[] = {{0, 29, 0.7f}, {1, 29, 0.7f},  {2, 1, 1.0f},    {3, 130, -1.5f}, {4, 130, -1.5f},
                 {5, 8, 1.0f},  {7, 144, 1.0f}, {7, 2304, 1.0f}, {11, 3, 1.0f}};
    int n = 0;
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0] && n < cap; i++)
            out[n++] = g_shape(cases[i].set, cases[i].N, 0, 0, 0, cases[i].alpha, b ? 1.0f : 0.0f);
    op_shape n0 = g_shape(12, 0, 0, 0, 0, 1.0f, 0.0f);
    n0.v[G_NULL] = 1;
    const op_shape extra[] = {
        g_shape(0, 65, 0, 0, 0, 0.0f, 0.5f), /* alpha = 0 */
        g_shape(1, 65, 0, 0, 0, 0.0f, 0.5f),
        n0,                                        /* N = 0: nothing read or written */
        g_routed(101, 8, 33, 0, 0, 0, 1.0f, 1.0f), /* the benchmark's top-2 routing */
        /* 528 groups of 2 column tiles: enough blocks without row splits (CUDA, 132 SMs); some
           groups empty */
        g_routed(600, 528, 64, 0, 0, 0, 0.7f, 0.0f),
        g_routed(600, 528, 64, 0, 0, 0, 0.7f, 1.0f),
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0] && n < cap; i++)
        out[n++] = extra[i];
    return n;
}
static void grouped_col_sum_bufs(const op_shape *s, op_buf *b) {
    const int64_t rows = g_rows(s), N = s->v[G_N], groups = g_groups(s);
    const int null = (int)s->v[G_NULL];
    b[0] = ibuf("offsets", groups + 1, OP_BUF_IN);
    b[1] = null ? op_absent("C") : fbuf("C", (rows + WG_PAD) * N, OP_BUF_IN);
    b[2] = null ? op_absent("out")
                : fbuf("out (empty groups beta out; past the end untouched)", groups * N + 1,
                       OP_BUF_INOUT);
    if (s->f[1] == 0.0f) b[2].fill = OP_FILL_NAN;
}
static void grouped_col_sum_tweak(const op_shape *s, void *const *host) {
    g_offsets(s, host[0]);
    const int64_t rows = g_rows(s), N = s->v[G_N];
    g_nan_tail(host[1], rows * N, (rows + WG_PAD) * N);
    if (host[2]) ((float *)host[2])[g_groups(s) * N] = SENTINEL;
}
static int grouped_col_sum_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, grouped_col_sum, g_groups(s), b[0], s->v[G_N], b[1], s->f[0], s->f[1],
                   b[2]);
}
/* double sums rounded once: within 1e-6 of Σ|terms| */
static void grouped_col_sum_naive(const op_shape *s, const void *const *in, double *const *want,
                                  double *const *scale) {
    const int32_t *offsets = in[0];
    const float *C = in[1], *out0 = in[2];
    const int64_t N = s->v[G_N];
    const double alpha = s->f[0], beta = s->f[1];
    if (!out0) return;
    for (int g = 0; g < g_groups(s); g++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0, mag = 0;
            for (int64_t r = offsets[g]; r < offsets[g + 1]; r++)
                acc += C[r * N + j], mag += fabs(C[r * N + j]);
            const double c = beta == 0.0 ? 0.0 : beta * out0[g * N + j];
            want[2][g * N + j] = alpha * acc + c;
            scale[2][g * N + j] = fabs(alpha) * mag + fabs(c);
        }
    g_exact_empty(s, offsets, N, out0, want[2], scale[2]);
}
static void grouped_col_sum_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    const int32_t bad_offsets[3] = {0, 5, 2};
    float a[16] = {0}, c[16] = {0};
    rejected(SAEC_OP(dev, grouped_col_sum, 2, bad_offsets, 1, a, 1.0f, 0.0f, c),
             "decreasing offsets");
    rejected(SAEC_OP(dev, grouped_col_sum, 1, bad_offsets, -1, a, 1.0f, 0.0f, c), "N < 0");
}
static void grouped_col_sum_label(const op_shape *s, char *b, size_t cap) {
    g_label("grouped_col_sum", s, b, cap);
}
/* the experts' bias gradient: db_g [N] += Σ_{rows of g} dY over a top-2 routing */
static op_shape grouped_col_sum_bench(int64_t n, int64_t m, int64_t d) {
    (void)m, (void)d;
    return g_routed(n, BENCH_EXPERTS, BENCH_EXPERT_N, 0, 0, 0, 1.0f, 1.0f);
}
static saec_op_floor grouped_col_sum_floor(const op_shape *s) {
    return saec_op_floor_grouped_col_sum((double)g_rows(s), g_groups(s), (double)s->v[G_N]);
}

const op_case op_case_grouped_col_sum = {.op = "grouped_col_sum",
                                         .group = "grouped_col_sum",
                                         .n_bufs = 3,
                                         OP_CASE_FUNCS(grouped_col_sum),
                                         .tweak = grouped_col_sum_tweak,
                                         .atol = 1e-7,
                                         .rtol = 1e-6,
                                         .atol_be = 1e-7,
                                         .rtol_be = 1e-6,
                                         .deterministic = 1,
                                         .bad_args = grouped_col_sum_bad_args,
                                         .bench_name = "grouped_col_sum_g8"};

/* ---- the modulation (TIDE `bucket`): modulate_encode, modulate_backward ----
   v: n, d, m, buckets, bias, u NULL, zero scale and shift, gap (bucket 0 unused when there are
   several; else uniform buckets), dxc aliasing dU. */
enum { M_N, M_D, M_M, M_BUCKETS, M_BIAS, M_UNULL, M_ZERO, M_GAP, M_ALIAS };

static op_shape m_shape(int64_t n, int64_t d, int64_t m, int buckets, int bias, int u_null,
                        int zero, int gap) {
    op_shape s = {.v = {n, d, m, buckets, bias, u_null, zero, gap}};
    return s;
}

/* bucket [n] of shape s */
static void m_buckets(const op_shape *s, int32_t *bucket) {
    const int64_t nb = s->v[M_BUCKETS];
    seed_from(s, 2);
    for (int64_t t = 0; t < s->v[M_N]; t++)
        bucket[t] = s->v[M_GAP] && nb > 1 ? (int32_t)(1 + rng_int(nb - 1)) : (int32_t)rng_int(nb);
}

/* 1 + scale, x (1 + scale) and + shift, each rounded to float as the contract's float
   operations (a double sum or product of two floats rounded to float is the float result) */
static float m_one_plus(float sc) { return (float)(1.0 + sc); }

static void m_label(const char *op, const op_shape *s, char *b, size_t cap) {
    snprintf(b, cap,
             "%s n=%lld d=%lld m=%lld buckets=%d bias=%d u_null=%d zero_mod=%d gap=%d alias=%d "
             "misalign=%d",
             op, (long long)s->v[M_N], (long long)s->v[M_D], (long long)s->v[M_M],
             (int)s->v[M_BUCKETS], (int)s->v[M_BIAS], (int)s->v[M_UNULL], (int)s->v[M_ZERO],
             (int)s->v[M_GAP], (int)s->v[M_ALIAS], s->misalign);
}

/* modulate_encode: xc [n, d], bucket [n], scale, shift [buckets, d], W_enc_t [m, d], b_enc [m]
   or NULL -> u [n, d] (or NULL), pre [n, m] */
static int modulate_encode_shapes(op_shape *out, int cap) {
    int n = 0;
    for (int variant = 0; variant < 4; variant++) {
        const int bias = variant & 1, u_null = variant >> 1;
        const op_shape v[] = {
            m_shape(37, 23, 41, 10, bias, u_null, 0, 1),   /* the old CPU test: bucket 0 unused */
            m_shape(37, 23, 41, 10, bias, u_null, 1, 1),   /* zero scale and shift */
            m_shape(37, 23, 41, 10, bias, u_null, 0, 0),   /* scalar path */
            m_shape(64, 128, 300, 10, bias, u_null, 0, 0), /* float4 */
        };
        for (size_t i = 0; i < sizeof v / sizeof v[0] && n < cap; i++)
            out[n++] = v[i];
    }
    op_shape mis = m_shape(33, 64, 77, 3, 1, 0, 0, 0);
    mis.misalign = 1; /* the scalar path */
    const op_shape extra[] = {
        mis,
        m_shape(1, 1, 1, 1, 1, 0, 0, 1),
        m_shape(300, 64, 257, 4, 1, 0, 0, 1), /* the parallel CPU modulation */
        m_shape(300, 64, 257, 4, 1, 0, 1, 1),
        m_shape(0, 8, 8, 3, 1, 0, 0, 1),         /* n = 0 */
        m_shape(256, 288, 4096, 10, 1, 0, 0, 0), /* the encoder shape, scaled down */
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0] && n < cap; i++)
        out[n++] = extra[i];
    return n;
}
static void modulate_encode_bufs(const op_shape *s, op_buf *b) {
    const int64_t n = s->v[M_N], d = s->v[M_D], m = s->v[M_M], bd = s->v[M_BUCKETS] * d;
    b[0] = fbuf("xc", n * d, OP_BUF_IN);
    b[1] = ibuf("bucket", n, OP_BUF_IN);
    b[2] = fbuf("scale", bd, OP_BUF_IN);
    b[3] = fbuf("shift", bd, OP_BUF_IN);
    b[4] = fbuf("W_enc_t", m * d, OP_BUF_IN);
    b[5] = s->v[M_BIAS] ? fbuf("b_enc", m, OP_BUF_IN) : op_absent("b_enc");
    b[6] = s->v[M_UNULL] ? op_absent("u") : fbuf("u", n * d, OP_BUF_OUT);
    b[6].fill = OP_FILL_NAN, b[6].exact = 1;
    b[7] = fbuf("pre", n * m, OP_BUF_OUT);
    b[7].fill = OP_FILL_NAN;
}
static void modulate_encode_tweak(const op_shape *s, void *const *host) {
    m_buckets(s, host[1]);
    if (s->v[M_ZERO]) {
        const size_t bytes = (size_t)(s->v[M_BUCKETS] * s->v[M_D]) * sizeof(float);
        memset(host[2], 0, bytes);
        memset(host[3], 0, bytes);
    }
}
static int modulate_encode_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, modulate_encode, b[0], b[1], b[2], b[3], (int)s->v[M_BUCKETS], s->v[M_N],
                   s->v[M_D], s->v[M_M], b[4], b[5], b[6], b[7]);
}
/* u exact; pre = u W_enc_tᵀ + b_enc in double from that u, within 1e-5 of Σ|u w| + |b| */
static void modulate_encode_naive(const op_shape *s, const void *const *in, double *const *want,
                                  double *const *scale) {
    const float *xc = in[0], *sc = in[2], *sh = in[3], *W = in[4], *bias = in[5];
    const int32_t *bucket = in[1];
    const int64_t n = s->v[M_N], d = s->v[M_D], m = s->v[M_M];
    float *u = malloc((size_t)(n * d > 0 ? n * d : 1) * sizeof *u);
    if (!u) abort();
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < d; c++) {
            const int64_t k = (int64_t)bucket[t] * d + c;
            const float prod = (float)((double)xc[t * d + c] * m_one_plus(sc[k]));
            u[t * d + c] = (float)((double)prod + sh[k]);
            if (want[6]) want[6][t * d + c] = u[t * d + c];
        }
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < m; j++) {
            double acc, mag;
            dot2(u + t * d, 1, W + j * d, 1, d, &acc, &mag);
            const double bj = bias ? bias[j] : 0.0;
            want[7][t * m + j] = acc + bj;
            scale[7][t * m + j] = mag + fabs(bj);
        }
    free(u);
}
static void modulate_encode_bad_args(saec_dev *dev, int (*rejected)(int rc, const char *what)) {
    const int32_t bucket[2] = {0, 2};
    float a[16] = {0}, c[16] = {0};
    rejected(SAEC_OP(dev, modulate_encode, a, bucket, a, a, 2, 2, 2, 2, a, NULL, c, c + 8),
             "bucket 2 >= n_buckets 2");
}
static void modulate_encode_label(const op_shape *s, char *b, size_t cap) {
    m_label("modulate_encode", s, b, cap);
}
/* the n tokens in TIDE's timestep buckets (uniform), the encoder [n, m] with bias, u kept */
static op_shape modulate_encode_bench(int64_t n, int64_t m, int64_t d) {
    return m_shape(n, d, m, BENCH_BUCKETS, 1, 0, 0, 0);
}
static saec_op_floor modulate_encode_floor(const op_shape *s) {
    return saec_op_floor_modulate_encode((double)s->v[M_N], (double)s->v[M_D], (double)s->v[M_M],
                                         (double)s->v[M_BUCKETS]);
}

const op_case op_case_modulate_encode = {.op = "modulate_encode",
                                         .group = "modulate_encode",
                                         .n_bufs = 8,
                                         OP_CASE_FUNCS(modulate_encode),
                                         .tweak = modulate_encode_tweak,
                                         .atol = 1e-6,
                                         .rtol = 1e-5,
                                         .atol_be = 1e-6,
                                         .rtol_be = 1e-5,
                                         .bad_args = modulate_encode_bad_args,
                                         .bench_name = "modulate_encode_fp32"};

/* modulate_backward: dU, xc [n, d], bucket [n], scale [buckets, d] -> dxc [n, d] (or in place
   over dU), dscale, dshift [buckets, d] accumulated */
static int modulate_backward_shapes(op_shape *out, int cap) {
    op_shape alias = m_shape(37, 23, 0, 10, 0, 0, 0, 1), one = m_shape(500, 7, 0, 1, 0, 0, 0, 1);
    alias.v[M_ALIAS] = one.v[M_ALIAS] = 1; /* dxc aliases dU */
    op_shape big = m_shape(4096, 2304, 0, 100, 0, 0, 0, 0);
    big.large = 1; /* CUDA: row chunks limited by memory */
    const op_shape list[] = {
        m_shape(37, 23, 0, 10, 0, 0, 0, 1), /* bucket 0 unused: an empty group */
        alias,
        m_shape(37, 23, 0, 10, 0, 0, 0, 0),
        m_shape(1, 1, 0, 1, 0, 0, 0, 0),
        m_shape(300, 130, 0, 4, 0, 0, 0, 1),   /* the parallel CPU path */
        one,                                   /* every token in one bucket */
        m_shape(0, 8, 0, 3, 0, 0, 0, 0),       /* n = 0 */
        m_shape(1024, 288, 0, 10, 0, 0, 0, 0), /* several CUDA row chunks */
        big,
    };
    int n = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0] && n < cap; i++)
        out[n++] = list[i];
    return n;
}
static void modulate_backward_bufs(const op_shape *s, op_buf *b) {
    const int64_t nd = s->v[M_N] * s->v[M_D], bd = s->v[M_BUCKETS] * s->v[M_D];
    b[0] = fbuf("dU", nd, OP_BUF_IN);
    b[1] = fbuf("xc", nd, OP_BUF_IN);
    b[2] = ibuf("bucket", s->v[M_N], OP_BUF_IN);
    b[3] = fbuf("scale", bd, OP_BUF_IN);
    if (s->v[M_ALIAS]) {
        b[4] = op_alias("dxc (= dU)", OP_F32, nd, OP_BUF_INOUT, 0);
    } else {
        b[4] = fbuf("dxc", nd, OP_BUF_OUT);
        b[4].fill = OP_FILL_NAN;
    }
    b[4].exact = 1;
    b[5] = fbuf("dscale", bd, OP_BUF_INOUT);
    b[6] = fbuf("dshift", bd, OP_BUF_INOUT);
}
static void modulate_backward_tweak(const op_shape *s, void *const *host) { m_buckets(s, host[2]); }
static int modulate_backward_call(saec_dev *dev, const op_shape *s, void *const *b) {
    return SAEC_OP(dev, modulate_backward, b[0], b[1], b[2], b[3], (int)s->v[M_BUCKETS], s->v[M_N],
                   s->v[M_D], b[4], b[5], b[6]);
}
/* dxc exact (one add, one multiply, each rounded); the sums in double from the initial values,
   within 1e-6 of Σ|terms| + |initial| */
static void modulate_backward_naive(const op_shape *s, const void *const *in, double *const *want,
                                    double *const *scale) {
    const float *dU = in[0], *xc = in[1], *sc = in[3], *ds0 = in[5], *dh0 = in[6];
    const int32_t *bucket = in[2];
    const int64_t n = s->v[M_N], d = s->v[M_D], bd = s->v[M_BUCKETS] * d;
    for (int64_t i = 0; i < bd; i++) {
        want[5][i] = ds0[i], scale[5][i] = fabs(ds0[i]);
        want[6][i] = dh0[i], scale[6][i] = fabs(dh0[i]);
    }
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < d; c++) {
            const int64_t k = (int64_t)bucket[t] * d + c;
            const double g = dU[t * d + c], gx = g * xc[t * d + c];
            want[4][t * d + c] = (float)(g * m_one_plus(sc[k]));
            want[5][k] += gx, scale[5][k] += fabs(gx);
            want[6][k] += g, scale[6][k] += fabs(g);
        }
}
static void modulate_backward_label(const op_shape *s, char *b, size_t cap) {
    m_label("modulate_backward", s, b, cap);
}
static op_shape modulate_backward_bench(int64_t n, int64_t m, int64_t d) {
    (void)m;
    return m_shape(n, d, 0, BENCH_BUCKETS, 0, 0, 0, 0);
}
static saec_op_floor modulate_backward_floor(const op_shape *s) {
    return saec_op_floor_modulate_backward((double)s->v[M_N], (double)s->v[M_D],
                                           (double)s->v[M_BUCKETS]);
}

const op_case op_case_modulate_backward = {.op = "modulate_backward",
                                           .group = "modulate_backward",
                                           .n_bufs = 7,
                                           OP_CASE_FUNCS(modulate_backward),
                                           .tweak = modulate_backward_tweak,
                                           .atol = 1e-7,
                                           .rtol = 1e-6,
                                           .atol_be = 1e-7,
                                           .rtol_be = 1e-6,
                                           .deterministic = 1};
