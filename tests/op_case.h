/* The op cases: each op case described once, in the style of ggml's tests/test-backend-ops.cpp,
 * and read by three drivers:
 *   - tests/test_op_cases.c: the CPU op against the case's naive reference (double accumulation);
 *   - tests/test_gpu_ops.c: another backend (CUDA, or the emulated GPU) against the CPU op, in the
 *     case's group (test_gpu_ops GROUP runs one);
 *   - benchmarks/bench_ops.c and bench_ops_cpu.c: the op at the benchmark's sizes, against its
 *     floor.
 *
 * A case is an op called on a few buffers of any element type (float, double, int32, int64,
 * uint8). For each of its shapes (awkward sizes, flags such as beta = 0, in place, misaligned
 * pointers) the case says which buffers exist, how big, of what type, which are inputs, which
 * outputs, which alias another; the drivers allocate, fill (floats uniform in [-1, 1), or NaN
 * where the op must not read; integers zero), let the case's tweak set what the op needs (indices,
 * keys, special values), call, and compare every output buffer whole (padding included): floats
 * within the case's tolerance, integers and buffers marked exact bit for bit.
 *
 * The families, one file each (the op list's headings): op_cases_dense.c, op_cases_sparse.c
 * (selection, sparse codes, latent bookkeeping), op_cases_reduce.c (losses and reductions,
 * optimizer, data-parallel pieces), op_cases_variants.c (SAE variants on dense codes, the small
 * MLP), op_cases_grouping.c (grouping, the MoE combine's backward, the capacity limit),
 * op_cases_transformer.c (MoE-MAE's pieces), op_cases_router.c (the MoE router); op_cases.c is
 * the table. Every op of the op list has a case (test_op_cases fails on one without).
 * bench_ops (CUDA) and bench_ops_cpu time the cases that name a benchmark.
 */
#ifndef SAEC_TESTS_OP_CASE_H
#define SAEC_TESTS_OP_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "saec/device.h"
#include "saec/ops.h"

enum { OP_MAX_BUFS = 10, OP_MAX_SIZES = 12 };

/* One call's sizes and flags (v) and scalars (f), named by the case; misalign offsets every
   buffer by one element (no 16-byte alignment); large: dropped when SAEC_GPU_TEST_QUICK=1
   (compute-sanitizer runs). */
typedef struct {
    int64_t v[OP_MAX_SIZES];
    float f[4];
    int misalign;
    int large;
} op_shape;

typedef enum { OP_F32, OP_F64, OP_I32, OP_I64, OP_U8 } op_elem;

static inline size_t op_elem_size(op_elem e) {
    return e == OP_F64 || e == OP_I64 ? 8 : e == OP_U8 ? 1 : 4;
}

typedef enum {
    OP_BUF_ABSENT, /* passed as NULL */
    OP_BUF_IN,     /* read only */
    OP_BUF_INOUT,  /* read and written: compared after the call */
    OP_BUF_OUT,    /* written only: compared after the call */
    OP_BUF_SCRATCH /* the op's workspace: allocated, not compared */
} op_buf_role;

typedef enum {
    OP_FILL_RANDOM, /* floats uniform in [-1, 1); integers 0 (the tweak sets them) */
    OP_FILL_NAN,    /* the op must not read it (an output, or beta = 0); integers 0 */
} op_buf_fill;

/* A buffer of one call: count elements of type elem; alias >= 0: the same memory as buffer
   `alias` (which must come first; its role is then the union of both); exact: a float output
   compared bit for bit (against the reference and between backends). */
typedef struct {
    const char *name;
    int64_t count;
    op_buf_role role;
    op_buf_fill fill;
    int alias;
    op_elem elem;
    int exact;
} op_buf;

/* A buffer of count elements of type elem, random fill (op_buf_of); absent (NULL); the same
   memory as buffer `of` (op_alias). */
static inline op_buf op_buf_of(const char *name, op_elem elem, int64_t count, op_buf_role role) {
    op_buf b = {.name = name,
                .count = count,
                .role = role,
                .fill = OP_FILL_RANDOM,
                .alias = -1,
                .elem = elem};
    return b;
}
/* An output the op must write whole without reading it: NaN (floats) until it does. */
static inline op_buf op_out(const char *name, op_elem elem, int64_t count) {
    op_buf b = op_buf_of(name, elem, count, OP_BUF_OUT);
    b.fill = OP_FILL_NAN;
    return b;
}
/* A hash of a shape's sizes (FNV-1a from basis): tweaks seed their generator with it, so a
   shape gets the same inputs whatever ran before it. */
static inline uint64_t op_shape_hash(const op_shape *s, uint64_t basis) {
    uint64_t h = basis;
    for (int i = 0; i < OP_MAX_SIZES; i++)
        h = (h ^ (uint64_t)s->v[i]) * 0x100000001B3ull;
    return h;
}
static inline op_buf op_absent(const char *name) {
    return op_buf_of(name, OP_F32, 0, OP_BUF_ABSENT);
}
static inline op_buf op_alias(const char *name, op_elem elem, int64_t count, op_buf_role role,
                              int of) {
    op_buf b = op_buf_of(name, elem, count, role);
    b.alias = of;
    return b;
}

typedef struct op_case op_case;
struct op_case {
    const char *op;    /* its name in SAEC_OP_LIST */
    const char *group; /* test_gpu_ops's group */
    /* the shapes tested (awkward sizes and every flag combination) */
    int (*shapes)(op_shape *out, int cap);
    /* the buffers of a call at shape s (n_bufs of them) */
    int n_bufs;
    void (*bufs)(const op_shape *s, op_buf *b);
    /* the inputs after the fill (NULL: none): indices, keys, special values; host[i] is buffer
       i (its element type), NULL when absent. Also run at the benchmark's sizes: keep it O(size) */
    void (*tweak)(const op_shape *s, void *const *host);
    /* the op on a device; buf[i] as in bufs (aliases resolved, NULL when absent) */
    int (*call)(saec_dev *dev, const op_shape *s, void *const *buf);
    /* the naive reference: want and scale of every compared buffer (INOUT, OUT; NULL for the
       others) from the inputs before the call; a reference that leaves scale alone means
       |want| (the tolerances then relative to the value); integers and exact buffers ignore it */
    void (*naive)(const op_shape *s, const void *const *in, double *const *want,
                  double *const *scale);
    double atol, rtol;       /* |got − want| <= atol + rtol · scale, against the reference */
    double atol_be, rtol_be; /* another backend against the CPU op, with the same scale */
    int exact_be;            /* another backend must match the CPU op bit for bit */
    int deterministic;       /* another backend repeats itself bit for bit (called twice) */
    /* another backend against the CPU op, for outputs the generic comparison cannot judge (NULL:
       the generic one): cpu[i] and other[i] the downloaded buffers, in[i] the inputs; returns 1
       when they agree, else 0 with the reason in why */
    int (*compare_be)(const op_shape *s, const void *const *in, const void *const *cpu,
                      const void *const *other, char *why, size_t cap);
    void (*bad_args)(saec_dev *dev, int (*rejected)(int rc, const char *what)); /* or NULL */
    void (*label)(const op_shape *s, char *buf, size_t cap); /* the case for failure reports */
    /* the benchmark: its name, the shape at the benchmark's n rows, m latents and d dims, and
       the op's floor (saec_op_floor_NAME) at a shape */
    const char *bench_name;
    const char *bench_tf32_name; /* also timed with TF32 allowed (CUDA), or NULL */
    int bench_k;                 /* the k its result records when not the benchmark's (or 0) */
    op_shape (*bench_shape)(int64_t n, int64_t m, int64_t d);
    saec_op_floor (*floor)(const op_shape *s);
};

/* A case's functions, named by convention after it: NAME_shapes, NAME_bufs, NAME_call,
   NAME_naive, NAME_label, NAME_bench (the bench_shape) and NAME_floor. */
#define OP_CASE_FUNCS(NAME)                                                                        \
    .shapes = NAME##_shapes, .bufs = NAME##_bufs, .call = NAME##_call, .naive = NAME##_naive,      \
    .label = NAME##_label, .bench_shape = NAME##_bench, .floor = NAME##_floor

/* Every op case of every family, and their count. */
extern const op_case *const op_cases[];
extern const int op_cases_count;

/* The dense family (tests/op_cases_dense.c). */
extern const op_case op_case_gemm, op_case_scale_add_rows, op_case_axpby, op_case_col_sum,
    op_case_relu, op_case_relu_backward;

/* The selection, sparse-code and latent-bookkeeping family (tests/op_cases_sparse.c); topk_rows
   has three cases (unmasked k < 512, masked, k >= 512), one per benchmark. */
extern const op_case op_case_topk_rows, op_case_topk_rows_masked, op_case_topk_rows_large_k,
    op_case_sparse_decode, op_case_sparse_row_dots, op_case_sparse_outer_accum, op_case_track_fired,
    op_case_track_fired_dense, op_case_dead_latents_update;

/* The reduction family (tests/op_cases_reduce.c): losses and reductions, optimizer and decoder
   constraint, the data-parallel pieces. */
extern const op_case op_case_recon_loss_grad, op_case_recon_grad, op_case_recon_grad_after_loss,
    op_case_sum_squares, op_case_count_positive, op_case_geometric_median,
    op_case_project_rows_grad, op_case_normalize_rows, op_case_adamw;

/* The transformer pieces (tests/op_cases_transformer.c). */
extern const op_case op_case_layernorm, op_case_layernorm_backward, op_case_swiglu,
    op_case_swiglu_backward, op_case_dropout, op_case_patchify, op_case_unpatchify,
    op_case_patch_loss, op_case_patch_mask, op_case_patch_token_index, op_case_attention,
    op_case_attention_backward;

/* The grouping family (tests/op_cases_grouping.c). */
extern const op_case op_case_group_count, op_case_exclusive_scan, op_case_group_permute,
    op_case_group_capacity, op_case_gather_rows, op_case_scatter_rows,
    op_case_scatter_rows_backward, op_case_grouped_gemm, op_case_grouped_gemm_wgrad,
    op_case_grouped_col_sum, op_case_modulate_encode, op_case_modulate_backward;

/* The SAE-variant family on dense codes and the small MLP (tests/op_cases_variants.c). */
extern const op_case op_case_batch_topk, op_case_jumprelu, op_case_jumprelu_backward,
    op_case_l1_penalty, op_case_atm_stats, op_case_atm_mask, op_case_scale_cols, op_case_silu,
    op_case_silu_backward;

/* The MoE router (tests/op_cases_router.c). */
extern const op_case op_case_router_forward, op_case_router_backward;

#endif
