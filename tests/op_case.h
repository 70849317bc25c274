/* The op cases: each op case described once, in the style of ggml's tests/test-backend-ops.cpp,
 * and read by three drivers:
 *   - tests/test_op_cases.c: the CPU op against the case's naive reference (double accumulation);
 *   - tests/test_gpu_ops.c: another backend (CUDA, or the emulated GPU) against the CPU op, in the
 *     case's group (test_gpu_ops GROUP runs one);
 *   - benchmarks/bench_ops.c: the op at the benchmark's sizes, against its floor.
 *
 * A case is an op called on a few buffers (all float for now; other element types come with the
 * families that need them). For each of its shapes (awkward sizes, flags such as beta = 0, in
 * place, misaligned pointers) the case says which buffers exist, how big, which are inputs, which
 * outputs, which alias another; the drivers allocate, fill (uniform in [-1, 1), or NaN where the
 * op must not read), call, and compare every output buffer whole (padding included).
 *
 * The families: tests/op_cases_dense.c (gemm, scale_add_rows, axpby, col_sum, relu,
 * relu_backward). The other ops are still tested in the per-backend files (test_cpu_ops.c,
 * test_variant_ops.c, test_grouping_ops.c, test_gpu_ops.c); test_op_cases lists them.
 */
#ifndef SAEC_TESTS_OP_CASE_H
#define SAEC_TESTS_OP_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "saec/device.h"
#include "saec/ops.h"

enum { OP_MAX_BUFS = 6, OP_MAX_SIZES = 10 };

/* One call's sizes and flags (v) and scalars (f), named by the case; misalign offsets every
   buffer by one element (no 16-byte alignment). */
typedef struct {
    int64_t v[OP_MAX_SIZES];
    float f[2];
    int misalign;
} op_shape;

typedef enum {
    OP_BUF_ABSENT, /* passed as NULL */
    OP_BUF_IN,     /* read only */
    OP_BUF_INOUT,  /* read and written: compared after the call */
    OP_BUF_OUT,    /* written only: compared after the call */
} op_buf_role;

typedef enum {
    OP_FILL_RANDOM, /* uniform in [-1, 1) */
    OP_FILL_NAN,    /* the op must not read it (an output, or beta = 0) */
} op_buf_fill;

/* A buffer of one call: count floats; alias >= 0: the same memory as buffer `alias` (which
   must come first; its role is then the union of both). */
typedef struct {
    const char *name;
    int64_t count;
    op_buf_role role;
    op_buf_fill fill;
    int alias;
} op_buf;

typedef struct op_case op_case;
struct op_case {
    const char *op;    /* its name in SAEC_OP_LIST */
    const char *group; /* test_gpu_ops's group */
    /* the shapes tested (awkward sizes and every flag combination) */
    int (*shapes)(op_shape *out, int cap);
    /* the buffers of a call at shape s (n_bufs of them) */
    int n_bufs;
    void (*bufs)(const op_shape *s, op_buf *b);
    /* special values after the random fill (NULL: none): host[i] is buffer i, NULL when absent */
    void (*tweak)(const op_shape *s, float *const *host);
    /* the op on a device; buf[i] as in bufs (aliases resolved, NULL when absent) */
    int (*call)(saec_dev *dev, const op_shape *s, float *const *buf);
    /* the naive reference: want and scale of every compared buffer (INOUT, OUT; NULL for the
       others) from the inputs before the call; a reference that leaves scale alone means
       |want| (the tolerances then relative to the value) */
    void (*naive)(const op_shape *s, const float *const *in, double *const *want,
                  double *const *scale);
    double atol, rtol;       /* |got − want| <= atol + rtol · scale, against the reference */
    double atol_be, rtol_be; /* another backend against the CPU op, with the same scale */
    int exact_be;            /* another backend must match the CPU op bit for bit */
    void (*bad_args)(saec_dev *dev, int (*rejected)(int rc, const char *what)); /* or NULL */
    void (*label)(const op_shape *s, char *buf, size_t cap); /* the case for failure reports */
    /* the benchmark: its name, the shape at the benchmark's n rows, m latents and d dims, and
       the op's floor (saec_op_floor_NAME) at a shape */
    const char *bench_name;
    const char *bench_tf32_name; /* also timed with TF32 allowed (CUDA), or NULL */
    op_shape (*bench_shape)(int64_t n, int64_t m, int64_t d);
    saec_op_floor (*floor)(const op_shape *s);
};

/* A case's functions, named by convention after it: NAME_shapes, NAME_bufs, NAME_call,
   NAME_naive, NAME_label, NAME_bench (the bench_shape) and NAME_floor. */
#define OP_CASE_FUNCS(NAME)                                                                        \
    .shapes = NAME##_shapes, .bufs = NAME##_bufs, .call = NAME##_call, .naive = NAME##_naive,      \
    .label = NAME##_label, .bench_shape = NAME##_bench, .floor = NAME##_floor

/* Every op case of every migrated family, and their count. */
extern const op_case *const op_cases[];
extern const int op_cases_count;

/* The dense family (tests/op_cases_dense.c). */
extern const op_case op_case_gemm, op_case_scale_add_rows, op_case_axpby, op_case_col_sum,
    op_case_relu, op_case_relu_backward;

#endif
