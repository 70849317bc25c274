/* The op contract: every compute op of saec, backend-neutral.
 *
 * The ops themselves, each with its contract, signature and floor, are listed once in
 * include/saec/op_list.h; this header turns that list into the table and the floor functions.
 * Each backend (kernels/cpu, kernels/cuda) fills one `saec_op_table`; host code calls an op as
 * `SAEC_OP(dev, name, args...)` and never dereferences a device pointer itself. A NULL entry is
 * a missing op, and tests/test_op_table.c fails on it.
 *
 * Conventions
 *  - All matrices are row-major; shapes are given as [rows, cols] in the comments.
 *  - Pointers point into the memory of `dev` (host memory for the CPU backend).
 *  - "Device scalars" (`double *` outputs) stay on the device so the training step needs no
 *    host synchronisation; the host reads them back only at logging steps.
 *  - Sparse codes are (idx [n, k] int32, val [n, k] float) pairs. idx < 0 marks an empty slot
 *    (val 0): every sparse op skips it.
 *  - Every op returns SAEC_OK or an error code after saec_fail().
 *  - Each op states its floor: the bytes it must move and the FLOPs it must do, as a formula in
 *    its op_list.h entry (saec_op_floor_NAME below). Benchmarks report the fraction reached.
 */
#ifndef SAEC_OPS_H
#define SAEC_OPS_H

#include <stdint.h>

#include "saec/op_list.h"
#include "saec/saec.h"

typedef struct saec_dev saec_dev;

/* Indices into the recon_loss_grad statistics vector. */
enum {
    SAEC_STAT_SSE = 0,     /* Σ‖x − x̂‖²                       */
    SAEC_STAT_SST = 1,     /* Σ‖x − μ‖²  (about the given mean) */
    SAEC_STAT_COS_SUM = 2, /* Σ_rows cos(x, x̂)                  */
    SAEC_STAT_COUNT = 3
};

/* Arguments of one AdamW step (host values, passed by value, no sync). */
typedef struct {
    float lr;
    float beta1, beta2, eps;
    float weight_decay;  /* decoupled: p -= lr * wd * p */
    int64_t step;        /* 1-based step for bias correction */
    float max_grad_norm; /* clip the global gradient norm to this; <= 0 disables */
} saec_adamw_args;

/* The bytes an op must move and the FLOPs it must do: saec_op_floor_NAME(floor params) for each
   op, from its entry in op_list.h. Benchmarks report the fraction of this floor reached. */
typedef struct {
    double bytes, flops;
} saec_op_floor;

#define SAEC_OP_FLOOR_DEFINE_(ret, name, params, floor_params, floor_bytes, floor_flops)          \
    static inline saec_op_floor saec_op_floor_##name floor_params {                                \
        saec_op_floor floor_;                                                                      \
        floor_.bytes = (double)(floor_bytes);                                                      \
        floor_.flops = (double)(floor_flops);                                                      \
        return floor_;                                                                             \
    }
SAEC_OP_LIST(SAEC_OP_FLOOR_DEFINE_)
#undef SAEC_OP_FLOOR_DEFINE_

/* One function pointer per entry of op_list.h, memory first. A NULL entry is a missing op. */
#define SAEC_MEMORY_FIELD_(ret, name, params) ret(*name) params;
#define SAEC_OP_FIELD_(ret, name, params, floor_params, floor_bytes, floor_flops) ret(*name) params;
typedef struct saec_op_table {
    const char *backend_name;
    SAEC_OP_MEMORY_LIST(SAEC_MEMORY_FIELD_)
    SAEC_OP_LIST(SAEC_OP_FIELD_)
} saec_op_table;
#undef SAEC_MEMORY_FIELD_
#undef SAEC_OP_FIELD_

/* Call an op of the device's backend: SAEC_TRY(SAEC_OP(dev, relu, x, n)); */
#define SAEC_OP(dev, name, ...) ((dev)->ops->name((dev), __VA_ARGS__))

/* The name of the first missing (NULL) entry of a table, or NULL when complete. */
const char *saec_op_table_first_missing(const saec_op_table *table);

/* The backends' tables. saec_cuda_op_table() returns NULL when saec was built without CUDA. */
const saec_op_table *saec_cpu_op_table(void);
const saec_op_table *saec_cuda_op_table(void);

#endif
