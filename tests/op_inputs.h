/* The buffers of one op-case call (op_case.h), on the host and on a device: shared by the test
 * drivers (op_harness.h) and the op benchmark (benchmarks/bench_ops.c). Inputs come from
 * test_random.h's RNG (the caller seeds it).
 */
#ifndef SAEC_TESTS_OP_INPUTS_H
#define SAEC_TESTS_OP_INPUTS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_case.h"
#include "test_random.h"

/* The host buffers of one call: view[i] is buffer i at its (mis)aligned start, NULL when absent;
   aliases share their target's memory. */
typedef struct {
    op_buf b[OP_MAX_BUFS];
    void *base[OP_MAX_BUFS], *view[OP_MAX_BUFS];
    int64_t off; /* elements each view is past its base: 1 when misaligned */
} op_inputs;

static inline int op_compared(const op_buf *b) {
    return b->role == OP_BUF_INOUT || b->role == OP_BUF_OUT;
}

static inline size_t op_buf_bytes(const op_buf *b, int64_t off) {
    return op_elem_size(b->elem) * (size_t)(b->count + off);
}

static inline void *op_buf_at(void *base, const op_buf *b, int64_t off) {
    return (char *)base + op_elem_size(b->elem) * (size_t)off;
}

/* Buffer i's element e as a double (the comparisons and reports). */
static inline double op_elem_get(const op_buf *b, const void *p, int64_t e) {
    switch (b->elem) {
    case OP_F32: return ((const float *)p)[e];
    case OP_F64: return ((const double *)p)[e];
    case OP_I32: return ((const int32_t *)p)[e];
    case OP_I64: return (double)((const int64_t *)p)[e];
    case OP_U8: return ((const uint8_t *)p)[e];
    }
    return 0;
}

static inline void op_inputs_make(const op_case *c, const op_shape *s, op_inputs *in) {
    memset(in, 0, sizeof *in);
    for (int i = 0; i < OP_MAX_BUFS; i++)
        in->b[i].alias = -1;
    c->bufs(s, in->b);
    in->off = s->misalign ? 1 : 0;
    for (int i = 0; i < c->n_bufs; i++) {
        const op_buf *b = &in->b[i];
        if (b->role == OP_BUF_ABSENT) continue;
        if (b->alias >= 0) {
            in->view[i] = in->view[b->alias];
            continue;
        }
        const int64_t n = b->count + in->off;
        in->base[i] = calloc((size_t)(n > 0 ? n : 1), op_elem_size(b->elem));
        if (!in->base[i]) abort();
        const int nan = b->fill == OP_FILL_NAN || b->role == OP_BUF_SCRATCH;
        if (b->elem == OP_F32) {
            float *f = in->base[i];
            for (int64_t e = 0; e < n; e++)
                f[e] = nan ? NAN : rng_sym();
        } else if (b->elem == OP_F64) {
            double *f = in->base[i];
            for (int64_t e = 0; e < n; e++)
                f[e] = nan ? NAN : rng_sym();
        }
        in->view[i] = op_buf_at(in->base[i], b, in->off);
    }
    if (c->tweak) c->tweak(s, in->view);
}

static inline void op_inputs_free(op_inputs *in) {
    for (int i = 0; i < OP_MAX_BUFS; i++)
        free(in->base[i]);
}

/* The inputs on dev: dbase[i] allocated and uploaded (NULL for aliases and absent buffers),
   dview[i] as the op takes them. Exits on failure (a broken device, not a failed check). */
static inline void op_upload(saec_dev *dev, const op_case *c, const op_inputs *in, void **dbase,
                             void **dview) {
    for (int i = 0; i < c->n_bufs; i++) {
        dbase[i] = dview[i] = NULL;
        const op_buf *b = &in->b[i];
        if (b->role == OP_BUF_ABSENT) continue;
        if (b->alias >= 0) {
            dview[i] = dview[b->alias];
            continue;
        }
        const size_t bytes = op_buf_bytes(b, in->off);
        void *p = NULL;
        if (dev->ops->alloc(dev, bytes > 0 ? bytes : 8, &p) != SAEC_OK ||
            (bytes > 0 && dev->ops->upload(dev, p, in->base[i], bytes) != SAEC_OK)) {
            fprintf(stderr, "op inputs: %s of %s (%zu bytes) failed: %s\n",
                    p ? "upload" : "allocation", b->name, bytes, saec_error_message());
            exit(1);
        }
        dbase[i] = p;
        dview[i] = op_buf_at(p, b, in->off);
    }
}

static inline void op_free(saec_dev *dev, const op_case *c, void **dbase) {
    for (int i = 0; i < c->n_bufs; i++)
        if (dbase[i]) dev->ops->free(dev, dbase[i]);
}

/* Buffer b (at dview on dev) on the host (malloc'd). Exits on failure. */
static inline void *op_download(saec_dev *dev, const op_buf *b, const void *dview) {
    const size_t bytes = op_buf_bytes(b, 0);
    void *h = malloc(bytes > 0 ? bytes : 1);
    if (!h) abort();
    if (bytes > 0 && dev->ops->download(dev, h, dview, bytes) != SAEC_OK) {
        fprintf(stderr, "op inputs: download of %s failed: %s\n", b->name, saec_error_message());
        exit(1);
    }
    return h;
}

/* One call of a case on a device with its inputs there (the benchmarks time op_call_run):
   prepared from the case's random fill and tweak at shape s, released after. */
typedef struct {
    const op_case *c;
    saec_dev *dev;
    op_shape s;
    void *buf[OP_MAX_BUFS], *base[OP_MAX_BUFS];
} op_call;

static inline void op_call_prepare(op_call *x, saec_dev *dev, const op_case *c, op_shape s) {
    op_inputs in;
    x->c = c, x->dev = dev, x->s = s;
    op_inputs_make(c, &x->s, &in);
    op_upload(dev, c, &in, x->base, x->buf);
    op_inputs_free(&in);
}

static inline int op_call_run(const op_call *x) { return x->c->call(x->dev, &x->s, x->buf); }

static inline void op_call_release(op_call *x) { op_free(x->dev, x->c, x->base); }

#endif
