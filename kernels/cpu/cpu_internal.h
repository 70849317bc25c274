/* Declarations shared by the CPU backend's files (kernels/cpu).
 *
 * The CPU backend is the reference implementation of every op in include/saec/ops.h: plain
 * C11, parallel with OpenMP over independent rows/columns/latents, GEMMs through CBLAS.
 * Every op is deterministic for a fixed input (reductions are combined in a fixed order that
 * does not depend on the thread count); see each file for how.
 *
 * OpenBLAS is the pthread build here: cblas_* must never be called from inside an OpenMP
 * parallel region (nested thread pools oversubscribe and can deadlock).
 */
#ifndef SAEC_CPU_INTERNAL_H
#define SAEC_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "saec/device.h"
#include "saec/ops.h"

/* Backend state behind dev->impl: one growable scratch buffer shared by the ops that need
   temporary memory (topk heaps, the counting sort of sparse_outer_accum, reduction partials).
   It only grows, so a training loop allocates on its first step and never again. A device is
   driven by one host thread at a time, so one buffer is enough. */
typedef struct {
    void *scratch; /* 64-byte aligned, scratch_bytes long (NULL until first use) */
    size_t scratch_bytes;
} saec_cpu_state;

/* A scratch buffer of at least `bytes` bytes (64-byte aligned, contents undefined). Valid until
   the next call on the same device. */
int saec_cpu_scratch(saec_dev *dev, size_t bytes, void **out);

/* Argument validation: cheap checks at the top of each op. A failure is a bug in the caller. */
#define SAEC_CPU_REQUIRE(op, cond)                                                                 \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",            \
                             "cpu op %s: invalid arguments (%s)", (op), #cond);                    \
    } while (0)

/* Loops with less work than this (elements touched) run serially: a parallel region costs a
   few microseconds, more than the loop itself. */
#define SAEC_CPU_PAR_MIN ((int64_t)1 << 15)

/* Every op of include/saec/op_list.h as saec_cpu_NAME, defined in the cpu_*.c file of its family
   (the list's headings name the file). */
#define SAEC_CPU_PROTOTYPE_(ret, name, params, floor_params, floor_bytes, floor_flops)            \
    ret saec_cpu_##name params;
SAEC_OP_LIST(SAEC_CPU_PROTOTYPE_)
#undef SAEC_CPU_PROTOTYPE_

#endif
