/* The CPU backend: device state, memory, and the op table. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cpu_internal.h"

/* Every allocation is 64-byte aligned: one cache line, and a full AVX-512 vector. */
#define CPU_ALIGN ((size_t)64)

static void *aligned_zalloc(size_t bytes) {
    /* aligned_alloc wants a size that is a multiple of the alignment; 0 bytes still gets a
       valid, freeable pointer so callers need no special case. */
    size_t rounded = (bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    if (rounded == 0) rounded = CPU_ALIGN;
    if (rounded < bytes) return NULL; /* overflow */
    void *p = aligned_alloc(CPU_ALIGN, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

int saec_cpu_scratch(saec_dev *dev, size_t bytes, void **out) {
    saec_cpu_state *st = dev->impl;
    if (bytes > st->scratch_bytes) {
        /* Contents need not survive, so free + allocate instead of realloc (no copy). */
        free(st->scratch);
        st->scratch = NULL;
        st->scratch_bytes = 0;
        void *p = aligned_zalloc(bytes);
        if (!p)
            return saec_fail(SAEC_ERR_OTHER, "reduce --batch-size or --latents",
                             "out of memory allocating %zu bytes of CPU scratch", bytes);
        st->scratch = p;
        st->scratch_bytes = bytes;
    }
    *out = st->scratch;
    return SAEC_OK;
}

/* ---- memory ---- */

static int cpu_alloc(saec_dev *dev, size_t bytes, void **out) {
    (void)dev;
    *out = aligned_zalloc(bytes);
    if (!*out)
        return saec_fail(SAEC_ERR_OTHER, "reduce --batch-size or --latents",
                         "out of memory allocating %zu bytes on the CPU", bytes);
    return SAEC_OK;
}

static void cpu_free(saec_dev *dev, void *p) {
    (void)dev;
    free(p);
}

static int cpu_memcpy(saec_dev *dev, void *dst, const void *src, size_t bytes) {
    (void)dev;
    if (bytes) memmove(dst, src, bytes); /* memmove: a same-buffer copy is harmless */
    return SAEC_OK;
}

static int cpu_zero(saec_dev *dev, void *p, size_t bytes) {
    (void)dev;
    if (bytes) memset(p, 0, bytes);
    return SAEC_OK;
}

static int cpu_sync(saec_dev *dev) {
    (void)dev;
    return SAEC_OK; /* every CPU op has finished when it returns */
}

/* ---- the table ---- */

static const saec_op_table cpu_table = {
    .backend_name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .gemm = saec_cpu_gemm,
    .scale_add_rows = saec_cpu_scale_add_rows,
    .axpby = saec_cpu_axpby,
    .col_sum = saec_cpu_col_sum,
    .relu = saec_cpu_relu,
    .relu_backward = saec_cpu_relu_backward,
    .topk_rows = saec_cpu_topk_rows,
    .sparse_decode = saec_cpu_sparse_decode,
    .sparse_row_dots = saec_cpu_sparse_row_dots,
    .sparse_outer_accum = saec_cpu_sparse_outer_accum,
    .recon_loss_grad = saec_cpu_recon_loss_grad,
    .sum_squares = saec_cpu_sum_squares,
    .count_positive = saec_cpu_count_positive,
    .project_rows_grad = saec_cpu_project_rows_grad,
    .normalize_rows = saec_cpu_normalize_rows,
    .adamw = saec_cpu_adamw,
    .track_fired = saec_cpu_track_fired,
    .track_fired_dense = saec_cpu_track_fired_dense,
    .batch_topk = saec_cpu_batch_topk,
    .jumprelu = saec_cpu_jumprelu,
    .jumprelu_backward = saec_cpu_jumprelu_backward,
    .l1_penalty = saec_cpu_l1_penalty,
    .atm_stats = saec_cpu_atm_stats,
    .atm_mask = saec_cpu_atm_mask,
    .scale_cols = saec_cpu_scale_cols,
    .group_count = saec_cpu_group_count,
    .exclusive_scan = saec_cpu_exclusive_scan,
    .group_permute = saec_cpu_group_permute,
    .gather_rows = saec_cpu_gather_rows,
    .scatter_rows = saec_cpu_scatter_rows,
    .grouped_gemm = saec_cpu_grouped_gemm,
    .modulate_encode = saec_cpu_modulate_encode,
    .modulate_backward = saec_cpu_modulate_backward,
    .grouped_gemm_wgrad = saec_cpu_grouped_gemm_wgrad,
    .grouped_col_sum = saec_cpu_grouped_col_sum,
    .silu = saec_cpu_silu,
    .silu_backward = saec_cpu_silu_backward,
    .recon_grad = saec_cpu_recon_grad,
    .dead_latents_update = saec_cpu_dead_latents_update,
    .geometric_median = saec_cpu_geometric_median,
};

const saec_op_table *saec_cpu_op_table(void) { return &cpu_table; }

/* ---- device ---- */

/* "0.3.21" from OpenBLAS's " OpenBLAS 0.3.21 " version macro, or "" when unknown. */
static void blas_version(char *buf, size_t size) {
    buf[0] = '\0';
#ifdef OPENBLAS_VERSION
    const char *s = OPENBLAS_VERSION;
    while (*s == ' ')
        s++;
    if (strncmp(s, "OpenBLAS", 8) == 0) s += 8;
    while (*s == ' ')
        s++;
    snprintf(buf, size, "%s", s);
    size_t len = strlen(buf);
    while (len > 0 && buf[len - 1] == ' ')
        buf[--len] = '\0';
#else
    (void)size;
#endif
}

int saec_cpu_dev_init(saec_dev *dev) {
    saec_cpu_state *st = calloc(1, sizeof *st);
    if (!st) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening the CPU device");
    dev->backend = SAEC_BACKEND_CPU;
    dev->index = 0;
    dev->impl = st;
    dev->ops = saec_cpu_op_table();
    char ver[64];
    blas_version(ver, sizeof ver);
    int threads = omp_get_max_threads();
    if (ver[0])
        snprintf(dev->name, sizeof dev->name, "cpu (%d OpenMP thread%s, OpenBLAS %s)", threads,
                 threads == 1 ? "" : "s", ver);
    else
        snprintf(dev->name, sizeof dev->name, "cpu (%d OpenMP thread%s, CBLAS)", threads,
                 threads == 1 ? "" : "s");
    return SAEC_OK;
}

void saec_cpu_dev_shutdown(saec_dev *dev) {
    saec_cpu_state *st = dev->impl;
    if (st) {
        free(st->scratch);
        free(st);
    }
    dev->impl = NULL;
}
