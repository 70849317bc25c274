/* The CPU backend's attention and attention_backward against a straightforward scalar version of
 * the same arithmetic kept here (one score per dot, the dot in double in column order, rounded to
 * float, times the scale; the max, the exponentials, the sums over keys and over (head, query) in
 * their orders), bit for bit: out, lse, dq, dk, dv and the untouched padding of dq, dk, dv. The op
 * cases (test_op_cases) check the values against double references within tolerances; this
 * checks that the vectorised loops of kernels/cpu/cpu_transformer.c do the very same roundings.
 * Shapes: L = 1, 2, 7, 30, 105, 130; dh = 1, 3, 18, 64; several Hq / G; padded ld_q, ld_kv;
 * B up to 5; inputs uniform, scaled up (large scores), with many signed zeros, or with dots whose
 * value depends on the order of their terms (cancelling ±2^26 products); each case on one
 * thread with the backend's fastest tile product (AVX where the CPU has it) and on all threads
 * with the SSE2 one (SAEC_CPU_ATTENTION_SSE2=1). `test_attention_exact big` adds MoE-MAE's batch
 * (128 × 105 and 128 × 30).
 * Prints one line per failing check and exits nonzero on any failure.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "saec/device.h"
#include "saec/ops.h"
#include "test_random.h"

/* ---- the scalar reference: the same operations in the same order, one score at a time ---- */

static double ref_dot(const float *a, const float *b, int dh) {
    double s = 0;
    for (int c = 0; c < dh; c++)
        s += (double)a[c] * b[c];
    return s;
}

static float ref_score(const float *qi, const float *kj, int dh, float scale) {
    return scale * (float)ref_dot(qi, kj, dh);
}

/* q [B·L, ld_q], k, v [B·L, ld_kv] -> out [B·L, Hq·dh], lse [B, Hq, L] */
static void ref_attention(const float *q, const float *k, const float *v, int64_t ld_q,
                          int64_t ld_kv, int64_t B, int64_t L, int Hq, int G, int dh, float scale,
                          float *out, float *lse) {
    for (int64_t bhi = 0; bhi < B * Hq * L; bhi++) {
        const int64_t b = bhi / (Hq * L), h = (bhi / L) % Hq, i = bhi % L, g = h % G;
        const float *qi = q + (b * L + i) * ld_q + h * dh;
        const float *kb = k + b * L * ld_kv + g * dh, *vb = v + b * L * ld_kv + g * dh;
        float mx = -INFINITY;
        for (int64_t j = 0; j < L; j++) {
            const float s = ref_score(qi, kb + j * ld_kv, dh, scale);
            mx = s > mx ? s : mx;
        }
        double l = 0, acc[64] = {0};
        for (int64_t j = 0; j < L; j++) {
            const float p = expf(ref_score(qi, kb + j * ld_kv, dh, scale) - mx);
            l += p;
            for (int c = 0; c < dh; c++)
                acc[c] += (double)p * vb[j * ld_kv + c];
        }
        float *o = out + (b * L + i) * Hq * dh + h * dh;
        for (int c = 0; c < dh; c++)
            o[c] = (float)(acc[c] / l);
        lse[bhi] = mx + (float)log(l);
    }
}

/* P_ij and dS_ij of query row i against key row j of one head */
static void ref_p_ds(const float *qi, const float *kj, const float *vj, const float *doi, int dh,
                     float scale, float lse_i, float D_i, float *p, float *ds) {
    *p = expf(ref_score(qi, kj, dh, scale) - lse_i);
    *ds = *p * ((float)ref_dot(doi, vj, dh) - D_i);
}

/* dq per query row (Σ over keys j), dk, dv per key row (Σ over the group's heads, then queries) */
static void ref_attention_backward(const float *q, const float *k, const float *v, int64_t ld_q,
                                   int64_t ld_kv, const float *out, const float *dout,
                                   const float *lse, int64_t B, int64_t L, int Hq, int G, int dh,
                                   float scale, float *dq, float *dk, float *dv) {
    const int64_t ld_o = (int64_t)Hq * dh;
    float *D = new_floats(B * Hq * L); /* [B, Hq, L] */
    for (int64_t bhi = 0; bhi < B * Hq * L; bhi++) {
        const int64_t b = bhi / (Hq * L), h = (bhi / L) % Hq, i = bhi % L, g = h % G;
        const float *qi = q + (b * L + i) * ld_q + h * dh;
        const float *doi = dout + (b * L + i) * ld_o + h * dh;
        const float D_i = D[bhi] = (float)ref_dot(doi, out + (b * L + i) * ld_o + h * dh, dh);
        double acc[64] = {0};
        for (int64_t j = 0; j < L; j++) {
            const float *kj = k + (b * L + j) * ld_kv + g * dh,
                        *vj = v + (b * L + j) * ld_kv + g * dh;
            float p, ds;
            ref_p_ds(qi, kj, vj, doi, dh, scale, lse[bhi], D_i, &p, &ds);
            for (int c = 0; c < dh; c++)
                acc[c] += (double)ds * kj[c];
        }
        float *dqi = dq + (b * L + i) * ld_q + h * dh;
        for (int c = 0; c < dh; c++)
            dqi[c] = (float)(scale * acc[c]);
    }
    for (int64_t bgj = 0; bgj < B * G * L; bgj++) {
        const int64_t b = bgj / (G * L), g = (bgj / L) % G, j = bgj % L;
        const float *kj = k + (b * L + j) * ld_kv + g * dh, *vj = v + (b * L + j) * ld_kv + g * dh;
        double ak[64] = {0}, av[64] = {0};
        for (int64_t h = g; h < Hq; h += G)
            for (int64_t i = 0; i < L; i++) {
                const float *qi = q + (b * L + i) * ld_q + h * dh;
                const float *doi = dout + (b * L + i) * ld_o + h * dh;
                float p, ds;
                ref_p_ds(qi, kj, vj, doi, dh, scale, lse[(b * Hq + h) * L + i],
                         D[(b * Hq + h) * L + i], &p, &ds);
                for (int c = 0; c < dh; c++) {
                    ak[c] += (double)ds * qi[c];
                    av[c] += (double)p * doi[c];
                }
            }
        float *dkj = dk + (b * L + j) * ld_kv + g * dh, *dvj = dv + (b * L + j) * ld_kv + g * dh;
        for (int c = 0; c < dh; c++) {
            dkj[c] = (float)(scale * ak[c]);
            dvj[c] = (float)av[c];
        }
    }
    free(D);
}

/* ---- the comparison ---- */

enum { FILL_UNIFORM, FILL_LARGE, FILL_ZEROS, FILL_CANCEL };
static const char *fill_name[] = {"uniform", "large", "zeros", "cancel"};

/* n floats: uniform in [-1, 1); FILL_LARGE ×6 (scores far from 0: the max matters);
   FILL_ZEROS half of them +0 or -0 (products of signed zeros: a dot's first addition) */
static float *make_input(int64_t n, int fill) {
    float *x = rand_floats(n);
    for (int64_t i = 0; i < n; i++) {
        if (fill == FILL_LARGE) x[i] *= 6.0f;
        if (fill == FILL_ZEROS && rng_int(2)) x[i] = rng_int(2) ? 0.0f : -0.0f;
    }
    return x;
}

/* FILL_CANCEL (dh >= 3): columns 0 and dh-1 of each head of x [rows, ld] (heads of dh columns)
   set to ±2^13, with opposite signs in the two columns when `opposite`: the two products of a
   dot, ±2^26, cancel exactly, and the small terms added between them are rounded on the scale of
   2^26, so a dot's value depends on the order of its terms (a reordered sum shows in the float). */
static void make_cancelling(float *x, int64_t rows, int64_t ld, int heads, int dh, int opposite) {
    if (dh < 3) return;
    for (int64_t r = 0; r < rows; r++)
        for (int h = 0; h < heads; h++) {
            const float big = rng_int(2) ? 8192.0f : -8192.0f;
            x[r * ld + h * dh] = opposite ? big : 8192.0f;
            x[r * ld + h * dh + dh - 1] = opposite ? -big : 8192.0f;
        }
}

/* The first index where a and b [n] differ in their bits, or -1. */
static int64_t first_diff(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof *a) != 0) return i;
    return -1;
}

static void check_same(const char *what, const float *got, const float *want, int64_t n) {
    const int64_t at = first_diff(got, want, n);
    CHECK(at < 0, "%s differs at %lld: %.9g (0x%08x) != reference %.9g (0x%08x)", what,
          (long long)at, at < 0 ? 0.0 : got[at], at < 0 ? 0u : *(const uint32_t *)(got + at),
          at < 0 ? 0.0 : want[at], at < 0 ? 0u : *(const uint32_t *)(want + at));
}

/* One shape: the op on `threads` threads (0: all) against the reference, forward and backward. */
static void attention_case(saec_dev *dev, int64_t B, int64_t L, int Hq, int G, int dh, int pad_q,
                           int pad_kv, int fill, int threads, int sse2) {
    set_ctx("B=%lld L=%lld Hq=%d G=%d dh=%d pad=%d/%d fill=%s threads=%d%s", (long long)B,
            (long long)L, Hq, G, dh, pad_q, pad_kv, fill_name[fill], threads,
            sse2 ? " SAEC_CPU_ATTENTION_SSE2=1" : "");
    if (sse2) setenv("SAEC_CPU_ATTENTION_SSE2", "1", 1);
    const int64_t ld_q = (int64_t)Hq * dh + pad_q, ld_kv = (int64_t)G * dh + pad_kv;
    const int64_t rows = B * L, n_o = rows * Hq * dh, n_l = B * Hq * L;
    const float scale = 1.0f / sqrtf((float)dh);
    float *q = make_input(rows * ld_q, fill), *k = make_input(rows * ld_kv, fill),
          *v = make_input(rows * ld_kv, fill), *dout = make_input(n_o, fill);
    if (fill == FILL_CANCEL) {
        make_cancelling(q, rows, ld_q, Hq, dh, 0), make_cancelling(dout, rows, Hq * dh, Hq, dh, 0);
        make_cancelling(k, rows, ld_kv, G, dh, 1), make_cancelling(v, rows, ld_kv, G, dh, 1);
    }
    float *out = new_floats(n_o), *lse = new_floats(n_l);
    float *want_out = new_floats(n_o), *want_lse = new_floats(n_l);
    /* dq, dk, dv start as random padding the op must leave alone */
    float *dq = rand_floats(rows * ld_q), *dk = rand_floats(rows * ld_kv),
          *dv = rand_floats(rows * ld_kv);
    float *want_dq = dup_floats(dq, rows * ld_q), *want_dk = dup_floats(dk, rows * ld_kv),
          *want_dv = dup_floats(dv, rows * ld_kv);

    const int saved_threads = omp_get_max_threads();
    if (threads) omp_set_num_threads(threads);
    ref_attention(q, k, v, ld_q, ld_kv, B, L, Hq, G, dh, scale, want_out, want_lse);
    CHECK(SAEC_OP(dev, attention, q, k, v, ld_q, ld_kv, B, L, Hq, G, dh, scale, out, lse) ==
          SAEC_OK);
    check_same("out", out, want_out, n_o);
    check_same("lse", lse, want_lse, n_l);
    /* the backward from the reference's out and lse (the same bits when the forward passed) */
    ref_attention_backward(q, k, v, ld_q, ld_kv, want_out, dout, want_lse, B, L, Hq, G, dh, scale,
                           want_dq, want_dk, want_dv);
    CHECK(SAEC_OP(dev, attention_backward, q, k, v, ld_q, ld_kv, want_out, dout, want_lse, B, L, Hq,
                  G, dh, scale, dq, dk, dv) == SAEC_OK);
    check_same("dq", dq, want_dq, rows * ld_q);
    check_same("dk", dk, want_dk, rows * ld_kv);
    check_same("dv", dv, want_dv, rows * ld_kv);
    omp_set_num_threads(saved_threads);
    unsetenv("SAEC_CPU_ATTENTION_SSE2");

    free(q), free(k), free(v), free(dout), free(out), free(lse), free(want_out), free(want_lse);
    free(dq), free(dk), free(dv), free(want_dq), free(want_dk), free(want_dv);
}

int main(int argc, char **argv) {
    const int big = argc > 1 && strcmp(argv[1], "big") == 0;
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "test_attention_exact: %s\n", saec_error_message());
        return 1;
    }
    rng_seed(0xA77E5EC7ull);
    static const int64_t lengths[] = {1, 2, 7, 30, 105, 130};
    static const int dhs[] = {1, 3, 18, 64};
    static const int heads[][2] = {{1, 1}, {2, 1}, {8, 4}, {6, 3}, {3, 3}}; /* Hq, G */
    int n_case = 0;
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++)
        for (size_t di = 0; di < sizeof dhs / sizeof *dhs; di++)
            for (size_t hi = 0; hi < sizeof heads / sizeof *heads; hi++, n_case++) {
                /* vary batch, padding and fill across the grid so that every one meets every
                   length and head size without a full product of all of them */
                const int64_t B = lengths[li] >= 105 ? 1 + n_case % 2 : 1 + n_case % 5;
                const int pad = n_case % 3 == 1, fill = n_case % 4;
                for (int t = 0; t < 2; t++)
                    attention_case(dev, B, lengths[li], heads[hi][0], heads[hi][1], dhs[di],
                                   pad ? 3 : 0, pad ? 5 : 0, fill, t ? 0 : 1, t);
            }
    /* MoE-MAE's shapes at a small batch (the large batch with `big`) */
    const int64_t batch = big ? 128 : 3;
    for (int sse2 = 0; sse2 < 2; sse2++) {
        attention_case(dev, batch, 105, 8, 4, 18, 0, 0, FILL_UNIFORM, 0, sse2);
        attention_case(dev, batch, 30, 8, 4, 18, 0, 0, FILL_LARGE, 0, sse2);
        /* in a fused QKV buffer's strides: ld = (Hq + 2G)·dh */
        attention_case(dev, batch, 105, 6, 3, 18, 2 * 3 * 18, (6 + 3) * 18, FILL_ZEROS, 0, sse2);
    }
    saec_dev_close(dev);
    return check_summary("test_attention_exact");
}
