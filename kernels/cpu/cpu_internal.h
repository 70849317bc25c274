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

/* ---- dense (cpu_dense.c) ---- */
int saec_cpu_gemm(saec_dev *dev, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                  float *C, int64_t ldc, const float *bias);
int saec_cpu_scale_add_rows(saec_dev *dev, const float *in, float *out, int64_t n, int64_t d,
                            float scale, const float *v, float alpha);
int saec_cpu_axpby(saec_dev *dev, int64_t n, float alpha, const float *x, float beta,
                   const float *y, float *out);
int saec_cpu_col_sum(saec_dev *dev, const float *x, int64_t n, int64_t d, float alpha, float beta,
                     float *out);
int saec_cpu_relu(saec_dev *dev, float *x, int64_t n);
int saec_cpu_relu_backward(saec_dev *dev, const float *act, float *grad, int64_t n);

/* ---- selection (cpu_topk.c) ---- */
int saec_cpu_topk_rows(saec_dev *dev, const float *x, int64_t n, int64_t m, int k,
                       const uint8_t *mask, int32_t *idx, float *val);

/* ---- sparse codes (cpu_sparse.c) ---- */
int saec_cpu_sparse_decode(saec_dev *dev, const int32_t *idx, const float *val, const float *W,
                           const float *bias, int64_t n, int k, int64_t m, int64_t d,
                           int accumulate, float *out);
int saec_cpu_sparse_row_dots(saec_dev *dev, const float *g, const int32_t *idx, const float *W,
                             int64_t n, int k, int64_t m, int64_t d, float *out);
int saec_cpu_sparse_outer_accum(saec_dev *dev, const int32_t *idx, const float *coef,
                                const float *X, int64_t n, int k, int64_t m, int64_t d, float *dW,
                                float *db);

/* ---- loss and reductions (cpu_reduce.c) ---- */
int saec_cpu_recon_loss_grad(saec_dev *dev, const float *x, const float *xhat, const float *mu,
                             int64_t n, int64_t d, float grad_scale, double *stats, float *grad);
int saec_cpu_recon_grad(saec_dev *dev, const float *x, const float *xhat, int64_t n, int64_t d,
                        float grad_scale, const double *stats, float *grad);
int saec_cpu_sum_squares(saec_dev *dev, const float *x, int64_t n, int accumulate, double *out);
int saec_cpu_count_positive(saec_dev *dev, const float *x, int64_t n, int accumulate, double *out);
int saec_cpu_geometric_median(saec_dev *dev, const float *x, int64_t n, int64_t d, int iters,
                              float *scratch, float *out);

/* ---- optimizer and decoder constraint (cpu_optim.c) ---- */
int saec_cpu_project_rows_grad(saec_dev *dev, const float *W, float *G, int64_t m, int64_t d);
int saec_cpu_normalize_rows(saec_dev *dev, float *W, int64_t m, int64_t d);
int saec_cpu_adamw(saec_dev *dev, float *param, const float *grad, float *m1, float *m2, int64_t n,
                   saec_adamw_args args, const double *grad_sumsq);

/* ---- latent bookkeeping (cpu_latents.c) ---- */
int saec_cpu_track_fired(saec_dev *dev, const int32_t *idx, const float *val, int64_t n, int k,
                         int64_t m, int64_t *since_fired, int64_t *fire_count, int64_t dead_after,
                         uint8_t *dead_mask, double *dead_count);
int saec_cpu_dead_latents_update(saec_dev *dev, int64_t *since_fired, int64_t m, int64_t add,
                                 int64_t dead_after, uint8_t *dead_mask, double *dead_count);
int saec_cpu_track_fired_dense(saec_dev *dev, const float *val, int64_t n, int64_t m,
                               int64_t *since_fired, int64_t *fire_count, int64_t dead_after,
                               uint8_t *dead_mask, double *dead_count);

/* ---- SAE variants (cpu_variants.c) ---- */
int saec_cpu_batch_topk(saec_dev *dev, const float *x, int64_t n, int64_t m, int64_t keep, float *f,
                        float *threshold);
int saec_cpu_jumprelu(saec_dev *dev, const float *pre, int64_t n, int64_t m, const float *theta,
                      int64_t stride, int theta_is_log, float *f);
int saec_cpu_jumprelu_backward(saec_dev *dev, const float *pre, const float *log_theta, int64_t n,
                               int64_t m, float bandwidth, float l0_coef, float *df,
                               float *dlog_theta);
int saec_cpu_l1_penalty(saec_dev *dev, const float *f, const float *W, int64_t n, int64_t m,
                        int64_t d, float coef, float *dpre, float *dW, double *penalty);
int saec_cpu_atm_stats(saec_dev *dev, const float *f, const float *dfn, const double *stats,
                       const float *W, int64_t n, int64_t m, int64_t d, float beta, float *a,
                       float *q, float *r);
int saec_cpu_atm_mask(saec_dev *dev, const float *a, const float *q, const float *r, int64_t m,
                      const float weights[3], float c, float rate, uint64_t seed, uint64_t counter,
                      float *keep);
int saec_cpu_scale_cols(saec_dev *dev, float *x, int64_t n, int64_t m, const float *scale);
/* small MLP (TIDE adaln), also in cpu_variants.c */
int saec_cpu_silu(saec_dev *dev, const float *x, int64_t n, float *y);
int saec_cpu_silu_backward(saec_dev *dev, const float *x, const float *dy, int64_t n, float *dx);

/* ---- grouping: tokens by key (cpu_grouping.c) ---- */
int saec_cpu_group_count(saec_dev *dev, const int32_t *keys, int64_t n_items, int n_groups,
                         int32_t *counts);
int saec_cpu_exclusive_scan(saec_dev *dev, const int32_t *counts, int n_groups, int32_t *offsets);
int saec_cpu_group_permute(saec_dev *dev, const int32_t *keys, int64_t n_items, int n_groups,
                           const int32_t *offsets, int32_t *perm, int32_t *inv);
int saec_cpu_gather_rows(saec_dev *dev, const float *src, const int32_t *perm, int64_t n_out, int r,
                         int64_t d, float *dst);
int saec_cpu_scatter_rows(saec_dev *dev, const float *src, const int32_t *inv, const float *w,
                          int64_t n_tokens, int r, int64_t d, int accumulate, float *out);
int saec_cpu_grouped_gemm(saec_dev *dev, int trans_b, int n_groups, const int32_t *offsets,
                          int64_t N, int64_t K, float alpha, const float *A, const float *B,
                          float beta, float *C, const float *bias);
int saec_cpu_modulate_encode(saec_dev *dev, const float *xc, const int32_t *bucket,
                             const float *scale, const float *shift, int n_buckets, int64_t n,
                             int64_t d, int64_t m, const float *W_enc_t, const float *b_enc,
                             float *u, float *pre);
int saec_cpu_modulate_backward(saec_dev *dev, const float *dU, const float *xc,
                               const int32_t *bucket, const float *scale, int n_buckets, int64_t n,
                               int64_t d, float *dxc, float *dscale, float *dshift);
int saec_cpu_grouped_gemm_wgrad(saec_dev *dev, int n_groups, const int32_t *offsets, int64_t K,
                                int64_t N, float alpha, const float *A, const float *C, float beta,
                                float *dB);
int saec_cpu_grouped_col_sum(saec_dev *dev, int n_groups, const int32_t *offsets, int64_t N,
                             const float *C, float alpha, float beta, float *out);

#endif
