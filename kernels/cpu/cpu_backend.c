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
/* every op: saec_cpu_NAME, declared from the same list in cpu_internal.h */
#define SAEC_CPU_FILL_(ret, name, params, floor_params, floor_bytes, floor_flops)                 \
    .name = saec_cpu_##name,
    SAEC_OP_LIST(SAEC_CPU_FILL_)
#undef SAEC_CPU_FILL_
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
