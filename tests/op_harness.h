/* The test drivers of the op cases (op_case.h), included by one test file each (they count into
 * that file's check.h tally):
 *   op_harness_vs_naive(dev, c)           the op on dev (the CPU) against the case's reference;
 *   op_harness_vs_cpu(cpu, other, group)  every case of the group on another backend against the
 *                                         CPU op (all cases when group is NULL).
 * Inputs come from test_random.h's RNG (the test seeds it).
 */
#ifndef SAEC_TESTS_OP_HARNESS_H
#define SAEC_TESTS_OP_HARNESS_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "op_case.h"
#include "test_random.h"

enum { OP_HARNESS_MAX_SHAPES = 512 };

/* The host inputs of one call: view[i] is buffer i at its (mis)aligned start, NULL when absent;
   aliases share their target's memory. */
typedef struct {
    op_buf b[OP_MAX_BUFS];
    float *base[OP_MAX_BUFS], *view[OP_MAX_BUFS];
    int64_t off;
} op_inputs;

static inline int op_compared(const op_buf *b) {
    return b->role == OP_BUF_INOUT || b->role == OP_BUF_OUT;
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
        in->base[i] = new_floats(n);
        for (int64_t e = 0; e < n; e++)
            in->base[i][e] = b->fill == OP_FILL_NAN ? NAN : rng_sym();
        in->view[i] = in->base[i] + in->off;
    }
    if (c->tweak) c->tweak(s, in->view);
}

static inline void op_inputs_free(op_inputs *in) {
    for (int i = 0; i < OP_MAX_BUFS; i++)
        free(in->base[i]);
}

/* The inputs on dev: dbase[i] allocated and uploaded (NULL for aliases and absent buffers),
   dview[i] as the op takes them. */
static inline void op_upload(saec_dev *dev, const op_case *c, const op_inputs *in, float **dbase,
                             float **dview) {
    for (int i = 0; i < c->n_bufs; i++) {
        dbase[i] = dview[i] = NULL;
        const op_buf *b = &in->b[i];
        if (b->role == OP_BUF_ABSENT) continue;
        if (b->alias >= 0) {
            dview[i] = dview[b->alias];
            continue;
        }
        const size_t bytes = sizeof(float) * (size_t)(b->count + in->off);
        void *p = NULL;
        if (dev->ops->alloc(dev, bytes > 0 ? bytes : 4, &p) != SAEC_OK) {
            fprintf(stderr, "op harness: allocation of %zu bytes failed: %s\n", bytes,
                    saec_error_message());
            exit(1);
        }
        dbase[i] = p;
        OK(dev->ops->upload(dev, p, in->base[i], bytes));
        dview[i] = dbase[i] + in->off;
    }
}

static inline void op_free(saec_dev *dev, const op_case *c, float **dbase) {
    for (int i = 0; i < c->n_bufs; i++)
        if (dbase[i]) dev->ops->free(dev, dbase[i]);
}

static inline float *op_download(saec_dev *dev, const float *dview, int64_t count) {
    float *h = new_floats(count);
    if (count > 0) OK(dev->ops->download(dev, h, dview, sizeof(float) * (size_t)count));
    return h;
}

/* The reference's want and scale for every compared buffer (NULL for the others). */
static inline void op_reference(const op_case *c, const op_shape *s, const op_inputs *in,
                                double **want, double **scale) {
    const float *cin[OP_MAX_BUFS];
    for (int i = 0; i < OP_MAX_BUFS; i++) {
        cin[i] = in->view[i];
        const int cmp = i < c->n_bufs && op_compared(&in->b[i]);
        want[i] = cmp ? new_doubles(in->b[i].count) : NULL;
        scale[i] = cmp ? new_doubles(in->b[i].count) : NULL;
        for (int64_t e = 0; cmp && e < in->b[i].count; e++)
            scale[i][e] = NAN; /* a reference that leaves it: |want| */
    }
    c->naive(s, cin, want, scale);
    for (int i = 0; i < c->n_bufs; i++)
        if (scale[i] && in->b[i].count > 0 && isnan(scale[i][0])) {
            free(scale[i]);
            scale[i] = NULL;
        }
}

static inline void op_reference_free(double **want, double **scale) {
    for (int i = 0; i < OP_MAX_BUFS; i++)
        free(want[i]), free(scale[i]);
}

static inline int op_harness_rejected(int rc, const char *what) {
    CHECK(rc == SAEC_ERR_OTHER, "%s: returned %d, expected SAEC_ERR_OTHER", what, rc);
    saec_error_clear();
    return rc == SAEC_ERR_OTHER;
}

static inline void op_label(const op_case *c, const op_shape *s) {
    char label[256];
    c->label(s, label, sizeof label);
    set_ctx("%s", label);
}

/* One call's host side: the case reported as the context, its inputs, and (reference) the
   reference's want and scale (else NULL). */
static inline void op_begin(const op_case *c, const op_shape *s, op_inputs *in, double **want,
                            double **scale, int reference) {
    op_label(c, s);
    op_inputs_make(c, s, in);
    for (int i = 0; i < OP_MAX_BUFS; i++)
        want[i] = scale[i] = NULL;
    if (reference) op_reference(c, s, in, want, scale);
}

static inline void op_end(op_inputs *in, double **want, double **scale) {
    op_reference_free(want, scale);
    op_inputs_free(in);
}

/* The case's shapes (a static array, valid until the next call). */
static inline int op_shapes_of(const op_case *c, const op_shape **out) {
    static op_shape shapes[OP_HARNESS_MAX_SHAPES];
    *out = shapes;
    return c->shapes(shapes, OP_HARNESS_MAX_SHAPES);
}

/* The op on dev against the case's reference, at every shape; then its bad arguments. */
static inline void op_harness_vs_naive(saec_dev *dev, const op_case *c) {
    const op_shape *shapes;
    const int ns = op_shapes_of(c, &shapes);
    for (int k = 0; k < ns; k++) {
        op_inputs in;
        double *want[OP_MAX_BUFS], *scale[OP_MAX_BUFS];
        op_begin(c, &shapes[k], &in, want, scale, 1);
        const op_shape *s = &shapes[k];
        float *dbase[OP_MAX_BUFS], *dview[OP_MAX_BUFS];
        op_upload(dev, c, &in, dbase, dview);
        OK(c->call(dev, s, dview));
        for (int i = 0; i < c->n_bufs; i++) {
            if (!op_compared(&in.b[i])) continue;
            float *got = op_download(dev, dview[i], in.b[i].count);
            CHECK_CLOSE(in.b[i].name, got, want[i], scale[i], in.b[i].count, c->atol, c->rtol);
            free(got);
        }
        op_free(dev, c, dbase);
        op_end(&in, want, scale);
    }
    if (c->bad_args) {
        set_ctx("%s bad arguments", c->op);
        c->bad_args(dev, op_harness_rejected);
    }
}

/* One case on another backend against the CPU op, at every shape: bit for bit (exact_be), or
   within atol_be + rtol_be · the reference's scale. */
static inline void op_harness_case_vs_cpu(saec_dev *cpu, saec_dev *other, const op_case *c) {
    const op_shape *shapes;
    const int ns = op_shapes_of(c, &shapes);
    for (int k = 0; k < ns; k++) {
        op_inputs in;
        double *want[OP_MAX_BUFS], *scale[OP_MAX_BUFS];
        op_begin(c, &shapes[k], &in, want, scale, !c->exact_be); /* the scale of the tolerance */
        const op_shape *s = &shapes[k];
        float *cbase[OP_MAX_BUFS], *cview[OP_MAX_BUFS], *obase[OP_MAX_BUFS], *oview[OP_MAX_BUFS];
        op_upload(cpu, c, &in, cbase, cview);
        op_upload(other, c, &in, obase, oview);
        OK(c->call(cpu, s, cview));
        OK(c->call(other, s, oview));
        for (int i = 0; i < c->n_bufs; i++) {
            if (!op_compared(&in.b[i])) continue;
            const int64_t n = in.b[i].count;
            float *hc = op_download(cpu, cview[i], n), *ho = op_download(other, oview[i], n);
            if (c->exact_be) {
                n_checks++;
                if (n > 0 && memcmp(hc, ho, sizeof(float) * (size_t)n) != 0) {
                    int64_t e = 0;
                    while (memcmp(&hc[e], &ho[e], sizeof(float)) == 0)
                        e++;
                    fail_at(__FILE__, __LINE__, in.b[i].name,
                            "%s differs from the CPU op at [%lld] of %lld: %.9g, CPU %.9g (exact)",
                            in.b[i].name, (long long)e, (long long)n, ho[e], hc[e]);
                }
            } else {
                CHECK_CLOSE_F(in.b[i].name, ho, hc, scale[i], n, c->atol_be, c->rtol_be);
            }
            free(hc), free(ho);
        }
        op_free(cpu, c, cbase);
        op_free(other, c, obase);
        op_end(&in, want, scale);
    }
}

static inline void op_harness_vs_cpu(saec_dev *cpu, saec_dev *other, const char *group) {
    for (int i = 0; i < op_cases_count; i++)
        if (!group || strcmp(op_cases[i]->group, group) == 0)
            op_harness_case_vs_cpu(cpu, other, op_cases[i]);
}

#endif
