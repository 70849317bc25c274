/* The test drivers of the op cases (op_case.h), included by one test file each (they count into
 * that file's check.h tally):
 *   op_harness_vs_naive(dev, c)           the op on dev (the CPU) against the case's reference;
 *   op_harness_vs_cpu(cpu, other, group)  every case of the group on another backend against the
 *                                         CPU op (all cases when group is NULL).
 * op_harness_quick = 1 drops the shapes marked large. Inputs: op_inputs.h.
 */
#ifndef SAEC_TESTS_OP_HARNESS_H
#define SAEC_TESTS_OP_HARNESS_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "op_inputs.h"

enum { OP_HARNESS_MAX_SHAPES = 512 };

static int op_harness_quick = 0;

/* The reference's want and scale for every compared buffer (NULL for the others). */
static inline void op_reference(const op_case *c, const op_shape *s, const op_inputs *in,
                                double **want, double **scale) {
    const void *cin[OP_MAX_BUFS];
    for (int i = 0; i < OP_MAX_BUFS; i++) {
        cin[i] = in->view[i];
        const int cmp = i < c->n_bufs && op_compared(&in->b[i]);
        want[i] = cmp ? new_doubles(in->b[i].count) : NULL;
        scale[i] = cmp ? new_doubles(in->b[i].count) : NULL;
        for (int64_t e = 0; cmp && e < in->b[i].count; e++)
            want[i][e] = scale[i][e] = NAN; /* scale left alone: |want| */
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

/* The case's shapes (a static array, valid until the next call), less the large ones when
   quick. */
static inline int op_shapes_of(const op_case *c, const op_shape **out) {
    static op_shape shapes[OP_HARNESS_MAX_SHAPES];
    *out = shapes;
    const int n = c->shapes(shapes, OP_HARNESS_MAX_SHAPES);
    int kept = 0;
    for (int k = 0; k < n; k++)
        if (!(op_harness_quick && shapes[k].large)) shapes[kept++] = shapes[k];
    return kept;
}

static inline int op_exact(const op_buf *b) {
    return b->elem != OP_F32 && b->elem != OP_F64 ? 1 : b->exact;
}

/* got (buffer b) against the reference: exact for integers and exact buffers, else within
   atol + rtol · scale (scale NULL: |want|). One check. */
static inline void op_check_ref(const op_buf *b, const void *got, const double *want,
                                const double *scale, double atol, double rtol) {
    if (b->elem == OP_F32 && !b->exact) {
        CHECK_CLOSE(b->name, got, want, scale, b->count, atol, rtol);
        return;
    }
    int64_t bad = 0, first = -1;
    for (int64_t e = 0; e < b->count; e++) {
        const double g = op_elem_get(b, got, e), w = want[e];
        const double tol = atol + rtol * (scale ? scale[e] : fabs(w));
        /* exact: the same value, and the same sign of zero (−0 is not +0 bit for bit) */
        const int ok = op_exact(b)
                           ? ((g == w && signbit(g) == signbit(w)) || (isnan(g) && isnan(w)))
                           : (g == w || fabs(g - w) <= tol);
        if (!ok && first < 0) first = e;
        bad += !ok;
    }
    n_checks++;
    if (bad)
        fail_at(__FILE__, __LINE__, b->name,
                "%s: %lld of %lld elements off (first [%lld]: got %.17g, want %.17g%s)", b->name,
                (long long)bad, (long long)b->count, (long long)first, op_elem_get(b, got, first),
                want[first], op_exact(b) ? "; exact" : "");
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
        void *dbase[OP_MAX_BUFS], *dview[OP_MAX_BUFS];
        op_upload(dev, c, &in, dbase, dview);
        OK(c->call(dev, s, dview));
        for (int i = 0; i < c->n_bufs; i++) {
            if (!op_compared(&in.b[i])) continue;
            void *got = op_download(dev, &in.b[i], dview[i]);
            op_check_ref(&in.b[i], got, want[i], scale[i], c->atol, c->rtol);
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

/* The first element where two buffers' bits differ, or -1. */
static inline int64_t op_first_diff(const op_buf *b, const void *x, const void *y) {
    const size_t es = op_elem_size(b->elem);
    for (int64_t e = 0; e < b->count; e++)
        if (memcmp((const char *)x + es * (size_t)e, (const char *)y + es * (size_t)e, es) != 0)
            return e;
    return -1;
}

/* other against cpu (buffer b): bit for bit (exact), or within atol_be + rtol_be · scale. */
static inline void op_check_be(const op_case *c, const op_buf *b, const void *other,
                               const void *cpu, const double *scale) {
    if (c->exact_be || op_exact(b)) {
        n_checks++;
        const int64_t e = op_first_diff(b, other, cpu);
        if (e >= 0)
            fail_at(__FILE__, __LINE__, b->name,
                    "%s differs from the CPU op at [%lld] of %lld: %.17g, CPU %.17g (exact)",
                    b->name, (long long)e, (long long)b->count, op_elem_get(b, other, e),
                    op_elem_get(b, cpu, e));
    } else if (b->elem == OP_F32) {
        CHECK_CLOSE_F(b->name, other, cpu, scale, b->count, c->atol_be, c->rtol_be);
    } else { /* F64 */
        double *w = new_doubles(b->count);
        for (int64_t e = 0; e < b->count; e++)
            w[e] = op_elem_get(b, cpu, e);
        op_check_ref(b, other, w, scale, c->atol_be, c->rtol_be);
        free(w);
    }
}

/* One case on another backend against the CPU op, at every shape (generic comparison or the
   case's compare_be); deterministic cases also against a second run of the other backend. */
static inline void op_harness_case_vs_cpu(saec_dev *cpu, saec_dev *other, const op_case *c) {
    const op_shape *shapes;
    const int ns = op_shapes_of(c, &shapes);
    for (int k = 0; k < ns; k++) {
        op_inputs in;
        double *want[OP_MAX_BUFS], *scale[OP_MAX_BUFS];
        /* the reference gives the tolerances' scale */
        op_begin(c, &shapes[k], &in, want, scale, !c->exact_be && !c->compare_be);
        const op_shape *s = &shapes[k];
        void *cbase[OP_MAX_BUFS], *cview[OP_MAX_BUFS], *obase[OP_MAX_BUFS], *oview[OP_MAX_BUFS];
        void *hc[OP_MAX_BUFS] = {0}, *ho[OP_MAX_BUFS] = {0};
        op_upload(cpu, c, &in, cbase, cview);
        op_upload(other, c, &in, obase, oview);
        OK(c->call(cpu, s, cview));
        OK(c->call(other, s, oview));
        for (int i = 0; i < c->n_bufs; i++)
            if (op_compared(&in.b[i])) {
                hc[i] = op_download(cpu, &in.b[i], cview[i]);
                ho[i] = op_download(other, &in.b[i], oview[i]);
            }
        if (c->compare_be) {
            char why[512] = "";
            const void *cin[OP_MAX_BUFS], *chc[OP_MAX_BUFS], *cho[OP_MAX_BUFS];
            for (int i = 0; i < OP_MAX_BUFS; i++)
                cin[i] = in.view[i], chc[i] = hc[i], cho[i] = ho[i];
            const int ok = c->compare_be(s, cin, chc, cho, why, sizeof why);
            CHECK(ok, "%s", why);
        } else {
            for (int i = 0; i < c->n_bufs; i++)
                if (hc[i]) op_check_be(c, &in.b[i], ho[i], hc[i], scale[i]);
        }
        op_free(cpu, c, cbase);
        op_free(other, c, obase);
        if (c->deterministic) { /* again from the same inputs: the same bits */
            op_upload(other, c, &in, obase, oview);
            OK(c->call(other, s, oview));
            for (int i = 0; i < c->n_bufs; i++) {
                if (!ho[i]) continue;
                void *again = op_download(other, &in.b[i], oview[i]);
                const int64_t e = op_first_diff(&in.b[i], again, ho[i]);
                CHECK(e < 0, "%s: a second run differs at [%lld] (not deterministic)", in.b[i].name,
                      (long long)e);
                free(again);
            }
            op_free(other, c, obase);
        }
        for (int i = 0; i < OP_MAX_BUFS; i++)
            free(hc[i]), free(ho[i]);
        op_end(&in, want, scale);
    }
}

static inline void op_harness_vs_cpu(saec_dev *cpu, saec_dev *other, const char *group) {
    for (int i = 0; i < op_cases_count; i++)
        if (!group || strcmp(op_cases[i]->group, group) == 0)
            op_harness_case_vs_cpu(cpu, other, op_cases[i]);
}

#endif
