/* The op list: every compute op of saec, written once.
 *
 * Everything that names each op is generated from SAEC_OP_LIST: the fields of saec_op_table
 * (include/saec/ops.h), both backends' prototypes (saec_cpu_NAME in kernels/cpu/cpu_internal.h,
 * saec_cuda_NAME in kernels/cuda/cuda_internal.cuh), both table fills, the completeness check
 * (kernels/op_table.c) and each op's floor function saec_op_floor_NAME (ops.h), which the op
 * benchmark (benchmarks/bench_ops.c) reads. Adding an op is one entry here plus its two
 * implementations; a backend that lacks one fails to link.
 *
 * An entry is
 *
 *   ENTRY(ret, name, (params), (floor params), floor bytes, floor FLOPs)
 *
 *   ret, name, params  the op's signature (every op returns SAEC_OK or an error code after
 *                      saec_fail());
 *   floor params       the sizes its floor depends on, named as in the op's arguments (all
 *                      double; flags such as beta_nonzero are 0 or 1), and sizes the arguments
 *                      do not show (`rows`: the rows that belong to a group, `touched`);
 *   floor bytes/FLOPs  the bytes the op must move (each input read once, each output written
 *                      once; a read-modify-write counted once) and the FLOPs it must do, as
 *                      expressions of the floor params.
 *
 * The comment above each entry is the op's contract: what it computes, its shapes ([rows, cols],
 * row-major) and what may alias. The conventions shared by every op are in ops.h.
 */
#ifndef SAEC_OP_LIST_H
#define SAEC_OP_LIST_H

/* Memory and synchronisation: not ops, but each backend owns its memory. Filled by hand in each
   backend (their functions are static there); checked for completeness like the ops.
   ENTRY(ret, name, (params)) */
#define SAEC_OP_MEMORY_LIST(ENTRY)                                                                 \
    ENTRY(int, alloc, (saec_dev *dev, size_t bytes, void **out)) /* zero-initialised */            \
    ENTRY(void, free, (saec_dev *dev, void *p))                                                    \
    ENTRY(int, upload, (saec_dev *dev, void *dst, const void *host_src, size_t bytes))             \
    ENTRY(int, download, (saec_dev *dev, void *host_dst, const void *src, size_t bytes))           \
    ENTRY(int, copy, (saec_dev *dev, void *dst, const void *src, size_t bytes))                    \
    ENTRY(int, zero, (saec_dev *dev, void *p, size_t bytes))                                       \
    ENTRY(int, sync, (saec_dev *dev))

/* The compute ops, grouped by family (the backends' files named in each family's heading). */
#define SAEC_OP_LIST(ENTRY)                                                                        \
    /* ---- dense (cpu_dense.c, cuda_dense.cu) ---- */                                             \
                                                                                                   \
    /* C[M, N] = alpha * op(A) op(B) + beta * C + bias (bias [N] broadcast over rows, or NULL).    \
       op(A) is [M, K] (A is [M, K] with lda, or [K, M] when trans_a); op(B) is [K, N].            \
       Floor: reads A, B, C when beta ≠ 0 and the bias; writes C. */                               \
    ENTRY(int, gemm,                                                                               \
      (saec_dev *dev, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,      \
       const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,             \
       int64_t ldc, const float *bias),                                                            \
      (double M, double N, double K, double beta_nonzero, double has_bias),                        \
      (M * K + K * N + M * N * beta_nonzero + N * has_bias + M * N) * 4, 2 * M * N * K)            \
                                                                                                   \
    /* out[n, d] = in[n, d] * scale + alpha * v[d] (v broadcast over rows; NULL: no shift).        \
       out may alias in. The bias-add op. */                                                       \
    ENTRY(int, scale_add_rows,                                                                     \
      (saec_dev *dev, const float *in, float *out, int64_t n, int64_t d, float scale,              \
       const float *v, float alpha),                                                               \
      (double n, double d), n * d * 8 + d * 4, 2 * n * d)                                          \
                                                                                                   \
    /* out[n] = alpha * x[n] + beta * y[n] (elementwise; out may alias x or y; y may be NULL       \
       when beta == 0). */                                                                         \
    ENTRY(int, axpby,                                                                              \
      (saec_dev *dev, int64_t n, float alpha, const float *x, float beta, const float *y,          \
       float *out),                                                                                \
      (double n), n * 12, 3 * n)                                                                   \
                                                                                                   \
    /* out[d] = beta * out[d] + alpha * Σ_rows x[n, d]. */                                         \
    ENTRY(int, col_sum,                                                                            \
      (saec_dev *dev, const float *x, int64_t n, int64_t d, float alpha, float beta,               \
       float *out),                                                                                \
      (double n, double d), n * d * 4, n * d)                                                      \
                                                                                                   \
    /* x[n] = max(x, 0) in place. */                                                               \
    ENTRY(int, relu, (saec_dev *dev, float *x, int64_t n), (double n), n * 8, 0)                   \
                                                                                                   \
    /* grad[n] *= (act[n] > 0). */                                                                 \
    ENTRY(int, relu_backward, (saec_dev *dev, const float *act, float *grad, int64_t n),           \
      (double n), n * 12, 0)                                                                       \
                                                                                                   \
    /* ---- selection (cpu_topk.c, cuda_topk.cu) ---- */                                           \
                                                                                                   \
    /* Per-row top-k: for each row of x [n, m], the k largest entries among the eligible           \
       columns (mask [m] nonzero = eligible; mask NULL = all), largest first, ties to the lower    \
       index. Rows with fewer than k eligible columns fill the rest with idx -1, val 0.            \
       1 <= k <= m. idx [n, k], val [n, k]. */                                                     \
    ENTRY(int, topk_rows,                                                                          \
      (saec_dev *dev, const float *x, int64_t n, int64_t m, int k, const uint8_t *mask,            \
       int32_t *idx, float *val),                                                                  \
      (double n, double m, double k, double has_mask), n * m * 4 + m * has_mask + n * k * 8, 0)    \
                                                                                                   \
    /* ---- sparse codes (cpu_sparse.c, cuda_sparse.cu) ---- */                                    \
                                                                                                   \
    /* out[n, d] = [accumulate ? out : 0] + Σ_j val[n, j] * W[idx[n, j], :] + bias[d] (bias may    \
       be NULL). The sparse decode; also the encoder-input gradient with W = W_enc_t. */           \
    ENTRY(int, sparse_decode,                                                                      \
      (saec_dev *dev, const int32_t *idx, const float *val, const float *W, const float *bias,     \
       int64_t n, int k, int64_t m, int64_t d, int accumulate, float *out),                        \
      (double n, double k, double d, double accumulate),                                           \
      n * k * (8 + d * 4) + d * 4 + n * d * 4 * (1 + accumulate), 2 * n * k * d)                   \
                                                                                                   \
    /* out[n, k] = ⟨g[n, :], W[idx[n, j], :]⟩ (0 for empty slots). The code gradient. */           \
    ENTRY(int, sparse_row_dots,                                                                    \
      (saec_dev *dev, const float *g, const int32_t *idx, const float *W, int64_t n, int k,        \
       int64_t m, int64_t d, float *out),                                                          \
      (double n, double k, double d), n * d * 4 + n * k * (4 + d * 4) + n * k * 4,                 \
      2 * n * k * d)                                                                               \
                                                                                                   \
    /* dW[idx[n, j], :] += coef[n, j] * X[n, :]  and  db[idx[n, j]] += coef[n, j] (db may be       \
       NULL). The sparse weight gradient: dW_dec (coef = f, X = dx̂) and dW_enc_t (coef = dpre,    \
       X = xc), db_enc. Deterministic (same result every run).                                     \
       Floor: `touched` is the number of distinct latents among the codes (uniform codes:          \
       m·(1 − e^(−n·k/m))); their rows of dW and db are read, modified and written. */             \
    ENTRY(int, sparse_outer_accum,                                                                 \
      (saec_dev *dev, const int32_t *idx, const float *coef, const float *X, int64_t n, int k,     \
       int64_t m, int64_t d, float *dW, float *db),                                                \
      (double n, double k, double d, double touched),                                              \
      n * k * 8 + n * d * 4 + touched * (d + 1) * 8, 2 * n * k * d)                                \
                                                                                                   \
    /* ---- loss and reductions (cpu_reduce.c, cuda_reduce.cu) ---- */                             \
                                                                                                   \
    /* Reconstruction statistics and gradient of the normalised MSE.                               \
       stats[SAEC_STAT_COUNT] (device doubles) = {Σ‖x − x̂‖², Σ‖x − μ‖², Σ cos(x_i, x̂_i)} over    \
       this batch (overwritten). If grad is not NULL:                                              \
       grad[n, d] = −2 * grad_scale * (x − x̂) / stats[SST]  (the gradient of grad_scale * nmse    \
       with respect to x̂).  x, x̂ [n, d], mu [d]. */                                              \
    ENTRY(int, recon_loss_grad,                                                                    \
      (saec_dev *dev, const float *x, const float *xhat, const float *mu, int64_t n, int64_t d,    \
       float grad_scale, double *stats, float *grad),                                              \
      (double n, double d, double has_grad), n * d * 8 + d * 4 + n * d * 4 * has_grad,             \
      10 * n * d)                                                                                  \
                                                                                                   \
    /* out[0] = [accumulate ? out[0] : 0] + Σ x[i]²  (device double). */                           \
    ENTRY(int, sum_squares,                                                                        \
      (saec_dev *dev, const float *x, int64_t n, int accumulate, double *out),                     \
      (double n), n * 4, 2 * n)                                                                    \
                                                                                                   \
    /* out[0] = [accumulate ? out[0] : 0] + #{i : x[i] > 0}  (device double). L0 counting. */      \
    ENTRY(int, count_positive,                                                                     \
      (saec_dev *dev, const float *x, int64_t n, int accumulate, double *out), (double n),         \
      n * 4, n)                                                                                    \
                                                                                                   \
    /* ---- optimizer and decoder constraint (cpu_optim.c, cuda_optim.cu) ---- */                  \
                                                                                                   \
    /* G[i, :] -= (⟨G_i, W_i⟩ / ‖W_i‖²) W_i for each row: removes the gradient component           \
       parallel to the decoder row.  W, G [m, d]. */                                               \
    ENTRY(int, project_rows_grad, (saec_dev *dev, const float *W, float *G, int64_t m, int64_t d), \
      (double m, double d), m * d * 12, 6 * m * d)                                                 \
                                                                                                   \
    /* W[i, :] /= ‖W_i‖ for each row with a nonzero norm. */                                       \
    ENTRY(int, normalize_rows, (saec_dev *dev, float *W, int64_t m, int64_t d),                    \
      (double m, double d), m * d * 8, 3 * m * d)                                                  \
                                                                                                   \
    /* AdamW over n parameters. The gradient is scaled by                                          \
       min(1, max_grad_norm / sqrt(*grad_sumsq)) (grad_sumsq: device double, the squared global    \
       norm) before the moment updates.  param, grad, m1, m2 [n]. */                               \
    ENTRY(int, adamw,                                                                              \
      (saec_dev *dev, float *param, const float *grad, float *m1, float *m2, int64_t n,            \
       saec_adamw_args args, const double *grad_sumsq),                                            \
      (double n), n * 28, 15 * n)                                                                  \
                                                                                                   \
    /* ---- latent bookkeeping (cpu_latents.c, cuda_latents.cu) ---- */                            \
                                                                                                   \
    /* Dead-latent tracking after one batch of n tokens with codes (idx, val) [n, k]:              \
       since_fired[j] += n, then = 0 for each latent that fired (val > 0) in the batch;            \
       fire_count[j] += #tokens where j fired (fire_count may be NULL);                            \
       dead_mask[j] = since_fired[j] >= dead_after; *dead_count = Σ dead_mask (device double).     \
       since_fired, fire_count [m] int64; dead_mask [m] uint8. k = 0 (idx, val may be NULL): n     \
       tokens in which nothing fired, every clock advances by n (TIDE separate mode counts the     \
       other ranks' tokens of a bucket so). */                                                     \
    ENTRY(int, track_fired,                                                                        \
      (saec_dev *dev, const int32_t *idx, const float *val, int64_t n, int k, int64_t m,           \
       int64_t *since_fired, int64_t *fire_count, int64_t dead_after, uint8_t *dead_mask,          \
       double *dead_count),                                                                        \
      (double n, double k, double m), n * k * 8 + m * (8 + 8 + 1), 0)                              \
                                                                                                   \
    /* track_fired for dense codes val [n, m] (column j = latent j; fired = val > 0). Same         \
       outputs as track_fired. */                                                                  \
    ENTRY(int, track_fired_dense,                                                                  \
      (saec_dev *dev, const float *val, int64_t n, int64_t m, int64_t *since_fired,                \
       int64_t *fire_count, int64_t dead_after, uint8_t *dead_mask, double *dead_count),           \
      (double n, double m), n * m * 4 + m * 17, 0)                                                 \
                                                                                                   \
    /* The dead-latent bookkeeping after since_fired was min-reduced across ranks: every latent    \
       with since_fired > 0 (it fired on no rank) gains `add` more tokens; then                    \
       dead_mask[j] = since_fired[j] >= dead_after and *dead_count = Σ dead_mask.                  \
       since_fired [m] int64, dead_mask [m] uint8. */                                              \
    ENTRY(int, dead_latents_update,                                                                \
      (saec_dev *dev, int64_t *since_fired, int64_t m, int64_t add, int64_t dead_after,            \
       uint8_t *dead_mask, double *dead_count),                                                    \
      (double m), m * 9, 0)                                                                        \
                                                                                                   \
    /* ---- SAE variants (SPEC §2–5), dense codes [n, m] (cpu_variants.c, cuda_variants.cu) */     \
                                                                                                   \
    /* BatchTopK selection: f[i] = x[i] when x[i] > 0 and x[i] is among the `keep` largest of      \
       the n*m entries of x, else 0. Entries equal to the cut-off value are all kept (so a tie     \
       can keep a few more than `keep`). *threshold (device float) = the smallest kept value, 0    \
       when none is kept. x, f [n, m] (f may alias x); 1 <= keep.                                  \
       Floor: one read and one write (the implementation reads x a few times). */                  \
    ENTRY(int, batch_topk,                                                                         \
      (saec_dev *dev, const float *x, int64_t n, int64_t m, int64_t keep, float *f,                \
       float *threshold),                                                                          \
      (double n, double m), n * m * 8, 0)                                                          \
                                                                                                   \
    /* JumpReLU forward: f[r, j] = pre[r, j] if pre[r, j] > θ_j else 0, θ_j = theta[j * stride]    \
       (stride 0: one θ for all latents), or exp(theta[j * stride]) when `theta_is_log`.           \
       Also BatchTopK's inference form (one θ). f may alias pre. */                                \
    ENTRY(int, jumprelu,                                                                           \
      (saec_dev *dev, const float *pre, int64_t n, int64_t m, const float *theta,                  \
       int64_t stride, int theta_is_log, float *f),                                                \
      (double n, double m), n * m * 8 + m * 4, 0)                                                  \
                                                                                                   \
    /* JumpReLU backward with the straight-through rectangle kernel K(u) = 1[|u| < 1/2]            \
       (SPEC §4). On entry df [n, m] = ∂L/∂f; on exit ∂L/∂pre = df · H(pre − θ). With              \
       θ_j = exp(log_theta_j) and u = (pre − θ_j)/bandwidth:                                       \
         dlog_theta[j] += θ_j · Σ_r −(K(u)/bandwidth) · (θ_j · df[r, j] + l0_coef)                 \
       where l0_coef is the weight of Σ_r Σ_j H(pre − θ_j) in the loss (λ / n). */                 \
    ENTRY(int, jumprelu_backward,                                                                  \
      (saec_dev *dev, const float *pre, const float *log_theta, int64_t n, int64_t m,              \
       float bandwidth, float l0_coef, float *df, float *dlog_theta),                              \
      (double n, double m), n * m * 12 + m * 8, 6 * n * m)                                         \
                                                                                                   \
    /* The norm-weighted L1 penalty coef · Σ_r Σ_j f[r, j] ‖W_j‖ (ReLU-L1, ATM; SPEC §3):          \
       *penalty (device double) = its value; dpre[r, j] += coef · ‖W_j‖ where f[r, j] > 0;         \
       dW[j, :] += coef · (Σ_r f[r, j]) · W_j / ‖W_j‖ (rows of zero norm get none).                \
       f, dpre [n, m]; W, dW [m, d]. */                                                            \
    ENTRY(int, l1_penalty,                                                                         \
      (saec_dev *dev, const float *f, const float *W, int64_t n, int64_t m, int64_t d,             \
       float coef, float *dpre, float *dW, double *penalty),                                       \
      (double n, double m, double d), n * m * 12 + m * d * 12, 2 * n * m + 4 * m * d)              \
                                                                                                   \
    /* ATM statistics (SPEC §5), EMAs with rate beta over latents j from one batch of n tokens:    \
         a_j ← beta·a_j + (1−beta)·mean_r f[r, j]                                                  \
         q_j ← beta·q_j + (1−beta)·mean_r 1[f[r, j] > 0]                                           \
         r_j ← beta·r_j + (1−beta)·mean_r (f[r, j]² ‖W_j‖² + 2 f[r, j] ⟨W_j, e_r⟩)                 \
       with e = xn − x̂ recovered from the nmse code gradient: ⟨W_j, e_r⟩ = −(SST/2)·dfn[r, j],    \
       dfn = (∂nmse/∂x̂) W_decᵀ and SST = stats[SAEC_STAT_SST] (device double,                     \
       recon_loss_grad). f, dfn [n, m]; W [m, d]; a, q, r [m]. */                                  \
    ENTRY(int, atm_stats,                                                                          \
      (saec_dev *dev, const float *f, const float *dfn, const double *stats, const float *W,       \
       int64_t n, int64_t m, int64_t d, float beta, float *a, float *q, float *r),                 \
      (double n, double m, double d), n * m * 8 + m * d * 4 + m * 12, 8 * n * m + 2 * m * d)       \
                                                                                                   \
    /* ATM mask for one step (SPEC §5): I_j = Σ_s w_s · stat_s,j / mean_j'(stat_s,j') over the     \
       statistics (a, q, r) (a statistic whose mean is 0 contributes 0); θ = mean(I) + c·std(I)    \
       (population std); for I_j < θ with θ > 0, masked with probability                           \
       p_j = 1 − exp(−rate·(θ − I_j)/θ), decided by u_j < p_j with u_j = saec_hash_uniform(seed,   \
       SAEC_RNG_ATM_MASK, counter·m + j) (include/saec/hash.h); keep[j] = 0 masked, 1 kept.        \
       `weights` is host memory (three values passed with the call), unlike the other pointers.    \
       Floor: three passes over a, q, r count once. */                                             \
    ENTRY(int, atm_mask,                                                                           \
      (saec_dev *dev, const float *a, const float *q, const float *r, int64_t m,                   \
       const float weights[3], float c, float rate, uint64_t seed, uint64_t counter,               \
       float *keep),                                                                               \
      (double m), m * 16, 0)                                                                       \
                                                                                                   \
    /* x[r, j] *= scale[j] for x [n, m], scale [m] (ATM applies its keep mask). */                 \
    ENTRY(int, scale_cols, (saec_dev *dev, float *x, int64_t n, int64_t m, const float *scale),    \
      (double n, double m), n * m * 8 + m * 4, n * m)                                              \
                                                                                                   \
    /* ---- small MLP (TIDE `adaln`: the timestep embedding network; cpu_variants.c,               \
       cuda_variants.cu) ---- */                                                                   \
                                                                                                   \
    /* y[i] = x[i] · σ(x[i]) (SiLU). */                                                            \
    ENTRY(int, silu, (saec_dev *dev, const float *x, int64_t n, float *y), (double n), n * 8, 0)   \
                                                                                                   \
    /* dx[i] = dy[i] · σ(x[i]) · (1 + x[i] · (1 − σ(x[i]))); dx may alias dy. */                   \
    ENTRY(int, silu_backward,                                                                      \
      (saec_dev *dev, const float *x, const float *dy, int64_t n, float *dx),                      \
      (double n), n * 12, 0)                                                                       \
                                                                                                   \
    /* ---- grouping: tokens by key (TIDE timestep buckets, MoE experts; SPEC §6–7;                \
       cpu_grouping.c, cuda_grouping.cu) ----                                                      \
       An "item" is one (token, key) slot: a token routed to r keys has r items, item i belongs    \
       to token i / r. keys [n_items] int32 in [0, n_groups), or < 0 for "no group" (skipped).     \
       A key >= n_groups is a caller bug: the CPU reports it, CUDA cannot without a sync and       \
       treats such an item as ungrouped. The grouped ops' floors count `rows`, the rows that       \
       belong to a group (offsets[n_groups]). */                                                   \
                                                                                                   \
    /* counts[g] = #{i : keys[i] == g} (int32, overwritten). */                                    \
    ENTRY(int, group_count,                                                                        \
      (saec_dev *dev, const int32_t *keys, int64_t n_items, int n_groups, int32_t *counts),        \
      (double n_items, double n_groups), n_items * 4 + n_groups * 4, 0)                            \
                                                                                                   \
    /* offsets[0] = 0, offsets[g + 1] = offsets[g] + counts[g] (int32 [n_groups + 1]). */          \
    ENTRY(int, exclusive_scan,                                                                     \
      (saec_dev *dev, const int32_t *counts, int n_groups, int32_t *offsets),                      \
      (double n_groups), (n_groups + 1) * 8, 0)                                                    \
                                                                                                   \
    /* Stable permutation to key-contiguous order: perm[p] = the item at sorted position p         \
       (positions offsets[g] .. offsets[g+1]−1 hold group g's items in increasing item order);     \
       inv[i] = the position of item i, −1 for an item without a group.                            \
       perm [offsets[n_groups]], inv [n_items]. */                                                 \
    ENTRY(int, group_permute,                                                                      \
      (saec_dev *dev, const int32_t *keys, int64_t n_items, int n_groups,                          \
       const int32_t *offsets, int32_t *perm, int32_t *inv),                                       \
      (double n_items, double n_groups), n_items * 12 + (n_groups + 1) * 4, 0)                     \
                                                                                                   \
    /* A routing's capacity limit (the optional capacity factor: capacity = ⌈factor·items/groups⌉):\
       keys_out[i] = keys[i] when item i is among the first `capacity` items of its group in item  \
       order (inv[i] − offsets[keys[i]] < capacity, from group_permute), else −1 (dropped; its     \
       token's combine then skips it); items without a group stay < 0. keys_out may alias keys.    \
       Count, scan and permute again on keys_out. The default is dropless (no call). */            \
    ENTRY(int, group_capacity,                                                                     \
      (saec_dev *dev, const int32_t *keys, const int32_t *inv, const int32_t *offsets,             \
       int64_t n_items, int n_groups, int64_t capacity, int32_t *keys_out),                        \
      (double n_items, double n_groups), n_items * 12 + (n_groups + 1) * 4, 0)                     \
                                                                                                   \
    /* dst[p, :] = src[perm[p] / r, :] for p < n_out: gathers each sorted item's token row.        \
       src [n_tokens, d], dst [n_out, d]. */                                                       \
    ENTRY(int, gather_rows,                                                                        \
      (saec_dev *dev, const float *src, const int32_t *perm, int64_t n_out, int r, int64_t d,      \
       float *dst),                                                                                \
      (double n_out, double d), n_out * (4 + d * 8), 0)                                            \
                                                                                                   \
    /* The weighted un-permutation: out[t, :] = [accumulate ? out : 0] + Σ_{j < r} w[t*r + j] ·    \
       src[inv[t*r + j], :] over the token's items with inv >= 0 (w NULL: weight 1), summed in     \
       j order (deterministic). src [n_sorted, d], out [n_tokens, d]. */                           \
    ENTRY(int, scatter_rows,                                                                       \
      (saec_dev *dev, const float *src, const int32_t *inv, const float *w, int64_t n_tokens,      \
       int r, int64_t d, int accumulate, float *out),                                              \
      (double n_tokens, double r, double d, double accumulate),                                    \
      n_tokens * r * (8 + d * 4) + n_tokens * d * 4 * (1 + accumulate), 2 * n_tokens * r * d)      \
                                                                                                   \
    /* The backward of scatter_rows (the MoE combine), from dout [n_tokens, d] = ∂L/∂out: for      \
       each item i = t*r + j with inv[i] >= 0,                                                     \
         dsrc[inv[i], :] = w[i]·dout[t, :]   (w NULL: weight 1; one float multiply)                \
         dw[i] = ⟨dout[t, :], src[inv[i], :]⟩ (in double; dw NULL: not computed)                   \
       and dw[i] = 0 for an item without a group. src, dsrc [n_sorted, d]; dsrc's rows no item     \
       points at are left alone. Deterministic. */                                                 \
    ENTRY(int, scatter_rows_backward,                                                              \
      (saec_dev *dev, const float *dout, const float *src, const int32_t *inv, const float *w,     \
       int64_t n_tokens, int r, int64_t d, float *dsrc, float *dw),                                \
      (double n_tokens, double r, double d, double has_dw),                                        \
      n_tokens * d * 4 + n_tokens * r * (8 + d * 4 * (1 + has_dw)) + n_tokens * r * 4 * has_dw,    \
      n_tokens * r * d * (1 + 2 * has_dw))                                                         \
                                                                                                   \
    /* Grouped GEMM over key-contiguous rows: for each group g with rows offsets[g] ..             \
       offsets[g+1]−1 of A [*, K] and C [*, N]:                                                    \
         C[rows] = alpha · A[rows] · op(B_g) + beta · C[rows] (+ bias[g, :] when bias ≠ NULL)      \
       B_g = B + g * K * N; op(B_g) = B_g [K, N], or B_g stored [N, K] when trans_b. Empty         \
       groups are skipped. */                                                                      \
    ENTRY(int, grouped_gemm,                                                                       \
      (saec_dev *dev, int trans_b, int n_groups, const int32_t *offsets, int64_t N, int64_t K,     \
       float alpha, const float *A, const float *B, float beta, float *C, const float *bias),      \
      (double rows, double n_groups, double N, double K, double beta_nonzero, double has_bias),    \
      (rows * K + n_groups * K * N + rows * N * beta_nonzero + n_groups * N * has_bias +           \
       rows * N) * 4,                                                                              \
      2 * rows * N * K)                                                                            \
                                                                                                   \
    /* The fused TIDE `bucket` encoder (SPEC §6):                                                  \
         pre[t, :] = ((xc[t, :] ⊙ (1 + scale[b_t, :]) + shift[b_t, :]) W_encᵀ + b_enc              \
       with b_t = bucket[t]; also writes the modulated input u [n, d] (the backward needs it).     \
       xc, u [n, d] (u NULL: not kept); scale, shift [n_buckets, d]; W_enc_t [m, d]; pre [n, m].   \
       A bucket out of range is a caller bug: the CPU reports it, CUDA cannot without a sync and   \
       leaves such a row unmodulated. */                                                           \
    ENTRY(int, modulate_encode,                                                                    \
      (saec_dev *dev, const float *xc, const int32_t *bucket, const float *scale,                  \
       const float *shift, int n_buckets, int64_t n, int64_t d, int64_t m, const float *W_enc_t,   \
       const float *b_enc, float *u, float *pre),                                                  \
      (double n, double d, double m, double n_buckets),                                            \
      n * (4 + d * 4) + m * (d + 1) * 4 + 2 * n_buckets * d * 4 + n * m * 4 + n * d * 4,           \
      2 * n * m * d)                                                                               \
                                                                                                   \
    /* Backward of modulate_encode's modulation, given dU [n, d] = ∂L/∂u:                          \
         dxc[t, :] = dU[t, :] ⊙ (1 + scale[b_t, :])                                                \
         dscale[b, :] += Σ_{t : b_t = b} dU[t, :] ⊙ xc[t, :]                                       \
         dshift[b, :] += Σ_{t : b_t = b} dU[t, :]                                                  \
       with the sums over rows taken in a fixed order (deterministic). dxc may alias dU.           \
       dscale, dshift [n_buckets, d]. */                                                           \
    ENTRY(int, modulate_backward,                                                                  \
      (saec_dev *dev, const float *dU, const float *xc, const int32_t *bucket,                     \
       const float *scale, int n_buckets, int64_t n, int64_t d, float *dxc, float *dscale,         \
       float *dshift),                                                                             \
      (double n, double d, double n_buckets),                                                      \
      n * d * 12 + n * 4 + n_buckets * d * 12, 5 * n * d)                                          \
                                                                                                   \
    /* Per-group weight gradient over key-contiguous rows (the backward of grouped_gemm):          \
         dB_g = alpha · A[rows_g]ᵀ · C[rows_g] + beta · dB_g     for g < n_groups                  \
       A [*, K], C [*, N], dB [n_groups, K, N]; an empty group gets dB_g = beta · dB_g. Sums       \
       over rows in a fixed order (deterministic). */                                              \
    ENTRY(int, grouped_gemm_wgrad,                                                                 \
      (saec_dev *dev, int n_groups, const int32_t *offsets, int64_t K, int64_t N, float alpha,     \
       const float *A, const float *C, float beta, float *dB),                                     \
      (double rows, double n_groups, double K, double N),                                          \
      rows * (K + N) * 4 + n_groups * K * N * 4, 2 * rows * K * N)                                 \
                                                                                                   \
    /* Per-group column sums (the bias gradient of grouped_gemm):                                  \
         out[g, :] = alpha · Σ_{rows of g} C[row, :] + beta · out[g, :]                            \
       C [*, N], out [n_groups, N]. Deterministic. */                                              \
    ENTRY(int, grouped_col_sum,                                                                    \
      (saec_dev *dev, int n_groups, const int32_t *offsets, int64_t N, const float *C,             \
       float alpha, float beta, float *out),                                                       \
      (double rows, double n_groups, double N), rows * N * 4 + n_groups * N * 4, rows * N)         \
                                                                                                   \
    /* ---- data parallelism: the pieces that follow a cross-rank reduction ---- */                \
                                                                                                   \
    /* The nmse gradient from given statistics (after they were summed across ranks):              \
         grad[n, d] = −2 · grad_scale · (x − x̂) / stats[SAEC_STAT_SST]                            \
       the same gradient recon_loss_grad writes, with SST from `stats` (device doubles) instead    \
       of this batch. */                                                                           \
    ENTRY(int, recon_grad,                                                                         \
      (saec_dev *dev, const float *x, const float *xhat, int64_t n, int64_t d, float grad_scale,   \
       const double *stats, float *grad),                                                          \
      (double n, double d), n * d * 12, 0)                                                         \
                                                                                                   \
    /* Geometric median of the rows of x [n, d] by Weiszfeld iterations from the mean, stopping    \
       after `iters` iterations or when the estimate moves less than 1e-6 relative.                \
       scratch [n] floats. out [d].  Floor: the mean, then per iteration two reads of x. */        \
    ENTRY(int, geometric_median,                                                                   \
      (saec_dev *dev, const float *x, int64_t n, int64_t d, int iters, float *scratch,             \
       float *out),                                                                                \
      (double n, double d, double iters), n * d * 4 * (1 + 2 * iters), n * d * (2 + 6 * iters))    \
                                                                                                   \
    /* ---- transformer pieces (MoE-MAE, SPEC §7; cpu_transformer.c, cuda_transformer.cu) ---- */  \
                                                                                                   \
    /* LayerNorm over the d columns of each row of x [n, d]: mean[r] = Σ_c x / d,                  \
       var = Σ_c (x − mean)² / d (the population variance, as PyTorch), rstd[r] = 1/√(var + eps)   \
       (sums in double; mean, rstd [n] stored as float for the backward, or NULL);                 \
       y = (x − mean)·rstd·gamma + beta (gamma, beta [d]). y may alias x. */                       \
    ENTRY(int, layernorm,                                                                          \
      (saec_dev *dev, const float *x, const float *gamma, const float *beta, int64_t n,            \
       int64_t d, float eps, float *y, float *mean, float *rstd),                                  \
      (double n, double d), n * d * 8 + d * 8 + n * 8, 7 * n * d)                                  \
                                                                                                   \
    /* The LayerNorm backward from layernorm's mean and rstd: with x̂ = (x − mean)·rstd and        \
       g = dy·gamma, dx = rstd·(g − mean_c(g) − x̂·mean_c(g·x̂)); dgamma[c] = Σ_rows dy·x̂ and     \
       dbeta[c] = Σ_rows dy, added to the old values when accumulate (either may be NULL).         \
       dx may alias dy. Deterministic. */                                                          \
    ENTRY(int, layernorm_backward,                                                                 \
      (saec_dev *dev, const float *dy, const float *x, const float *gamma, const float *mean,      \
       const float *rstd, int64_t n, int64_t d, int accumulate, float *dx, float *dgamma,          \
       float *dbeta),                                                                              \
      (double n, double d, double accumulate),                                                     \
      n * d * 12 + n * 8 + d * 4 + d * 8 * (1 + accumulate), 11 * n * d)                           \
                                                                                                   \
    /* The SwiGLU product out[i] = SiLU(a[i])·b[i] (SiLU(v) = v·σ(v)). out may alias a or b. */    \
    ENTRY(int, swiglu,                                                                             \
      (saec_dev *dev, const float *a, const float *b, int64_t n, float *out), (double n),          \
      n * 12, 5 * n)                                                                               \
                                                                                                   \
    /* Its backward: da[i] = dout·b·SiLU'(a), db[i] = dout·SiLU(a), with                           \
       SiLU'(v) = σ(v)·(1 + v·σ(−v)). da may alias a or dout; db may alias b or dout. */           \
    ENTRY(int, swiglu_backward,                                                                    \
      (saec_dev *dev, const float *a, const float *b, const float *dout, int64_t n, float *da,     \
       float *db),                                                                                 \
      (double n), n * 20, 10 * n)                                                                  \
                                                                                                   \
    /* Dropout with a counter-based mask, the same on every backend: out[i] = x[i]·(1/(1 − p)) if  \
       saec_hash_uniform(seed, SAEC_RNG_DROPOUT, counter + i) >= p, else 0 (1/(1 − p) rounded to   \
       float once); 0 <= p < 1. Its backward is the same call on the gradient (same seed and       \
       counter). out may alias x. MoE-MAE's per-expert dropout on the experts' output rows. */     \
    ENTRY(int, dropout,                                                                            \
      (saec_dev *dev, const float *x, int64_t n, float p, uint64_t seed, uint64_t counter,         \
       float *out),                                                                                \
      (double n), n * 8, n)                                                                        \
                                                                                                   \
    /* Patches of images img [B, C, H, W]: P×P patches on a gh = H/P by gw = W/P grid (rows and    \
       columns past the last whole patch are not read: a 41×41 tile gives 10×10 patches of 4),     \
       patch q = py·gw + px, flattened channel-major (c, y, x):                                    \
       patches[b, q, (c·P + y)·P + x] = img[b, c, py·P + y, px·P + x], patches [B, gh·gw, C·P·P].  \
       With a GEMM, the patch embedding (Conv2d with kernel = stride = P). */                      \
    ENTRY(int, patchify,                                                                           \
      (saec_dev *dev, const float *img, int64_t B, int64_t C, int64_t H, int64_t W, int64_t P,     \
       float *patches),                                                                            \
      (double patch_elems), patch_elems * 8, 0)                                                    \
                                                                                                   \
    /* The adjoint of patchify (its backward): img[b, c, py·P + y, px·P + x] = patches[...], the   \
       rows and columns past the last whole patch set to 0. */                                     \
    ENTRY(int, unpatchify,                                                                         \
      (saec_dev *dev, const float *patches, int64_t B, int64_t C, int64_t H, int64_t W,            \
       int64_t P, float *img),                                                                     \
      (double patch_elems, double img_elems), (patch_elems + img_elems) * 4, 0)                    \
                                                                                                   \
    /* The MAE reconstruction loss (SPEC §7) of pred against target [n, v] (n patches of v         \
       values) with mask [n] (nonzero: a masked patch; 0: visible), as device doubles:             \
         loss[1] = Σ_masked ‖pred − target‖² / #masked, loss[2] the same over the visible patches  \
         (0 for a kind without patches), loss[0] = w_masked·loss[1] + w_visible·loss[2];           \
       grad [n, v] (or NULL) = ∂loss[0]/∂pred = 2·w_kind·(pred − target)/#kind.                    \
       Deterministic. */                                                                           \
    ENTRY(int, patch_loss,                                                                         \
      (saec_dev *dev, const float *pred, const float *target, const uint8_t *mask, int64_t n,      \
       int64_t v, float w_masked, float w_visible, double *loss, float *grad),                     \
      (double n, double v, double has_grad), n * v * 8 + n + 24 + n * v * 4 * has_grad,            \
      3 * n * v + 2 * n * v * has_grad)                                                            \
                                                                                                   \
    /* Random patch masking (SPEC §7): in each of the B samples, the n_keep of its N patches with  \
       the smallest draws u[b, q] = saec_hash_uniform(seed, SAEC_RNG_PATCH_MASK, counter + b·N + q)\
       (ties to the lower q) are kept: keep [B, n_keep] their indices ascending; mask [B, N] = 0   \
       for a kept patch, 1 for a hidden one. 0 <= n_keep <= N <= 1024. The same draws on every     \
       backend (include/saec/hash.h). */                                                           \
    ENTRY(int, patch_mask,                                                                         \
      (saec_dev *dev, uint64_t seed, uint64_t counter, int64_t B, int64_t N, int64_t n_keep,       \
       int32_t *keep, uint8_t *mask),                                                              \
      (double B, double N, double n_keep), B * n_keep * 4 + B * N, 0)                              \
                                                                                                   \
    /* The token indices of a patch mask (keep [B, n_keep] from patch_mask), for sequences of      \
       T = prefix + N tokens a sample (prefix tokens first, never masked: MoE-MAE's 4 metadata     \
       tokens and CLS; then the N patches):                                                        \
         perm [B, prefix + n_keep]: the visible tokens' rows in the full grid [B·T, ·], sample     \
           by sample (gather_rows with r = 1 makes the encoder's input);                           \
         inv [B, T]: each full-grid token's row among the visible ones, or mask_row for a hidden   \
           patch (scatter_rows with r = 1 back onto the grid: the decoder's input, the mask        \
           token placed as row mask_row of the source; −1 leaves hidden rows out). */              \
    ENTRY(int, patch_token_index,                                                                  \
      (saec_dev *dev, const int32_t *keep, int64_t B, int64_t N, int64_t n_keep, int64_t prefix,   \
       int32_t mask_row, int32_t *perm, int32_t *inv),                                             \
      (double B, double N, double n_keep, double prefix),                                          \
      B * n_keep * 4 + B * (prefix + n_keep) * 4 + B * (prefix + N) * 4, 0)                        \
                                                                                                   \
    /* Grouped-query attention without a mask over B sequences of L tokens (SPEC §7): query head   \
       h (of Hq) uses KV group g = h mod G (G divides Hq); for token i of a sequence,              \
         out[i, h] = Σ_j softmax_j(scale·⟨q[i, h], k[j, g]⟩)·v[j, g]                               \
       q [B·L, ld_q] holds the Hq heads of dh values at the start of each row (head h at columns   \
       h·dh ..), k and v [B·L, ld_kv] the G groups' (one fused QKV GEMM output serves with         \
       ld = (Hq + 2G)·dh); out [B·L, Hq·dh]; lse [B, Hq, L] = each softmax's max plus the log of   \
       its denominator (for the backward). 1 <= dh <= 64. The softmax in fp32 (dots and sums in    \
       double); the [L, L] scores are never stored. */                                             \
    ENTRY(int, attention,                                                                          \
      (saec_dev *dev, const float *q, const float *k, const float *v, int64_t ld_q,                \
       int64_t ld_kv, int64_t B, int64_t L, int Hq, int G, int dh, float scale, float *out,        \
       float *lse),                                                                                \
      (double B, double L, double Hq, double G, double dh),                                        \
      B * L * (2 * Hq * dh + 2 * G * dh + Hq) * 4, 4 * B * Hq * L * L * dh)                        \
                                                                                                   \
    /* Its backward from out and lse, the softmax recomputed (as FlashAttention does): with        \
       P_ij = exp(scale·⟨q_i, k_j⟩ − lse_i), dP_ij = ⟨dout_i, v_j⟩, D_i = ⟨dout_i, out_i⟩ and      \
       dS = P ⊙ (dP − D): dq_i = scale·Σ_j dS_ij k_j; dk_j = scale·Σ_{heads h of its group} Σ_i    \
       dS_ij q_i; dv_j = Σ_h Σ_i P_ij dout_i. dq [B·L, ld_q] and dk, dv [B·L, ld_kv] in q's, k's   \
       and v's layouts (their other columns untouched: a fused dQKV buffer serves). Deterministic  \
       (each sum in a fixed order, no atomics). */                                                 \
    ENTRY(int, attention_backward,                                                                 \
      (saec_dev *dev, const float *q, const float *k, const float *v, int64_t ld_q,                \
       int64_t ld_kv, const float *out, const float *dout, const float *lse, int64_t B,            \
       int64_t L, int Hq, int G, int dh, float scale, float *dq, float *dk, float *dv),            \
      (double B, double L, double Hq, double G, double dh),                                        \
      B * L * (4 * Hq * dh + 4 * G * dh + Hq) * 4 + B * L * (Hq + 2 * G) * dh * 4,                 \
      14 * B * Hq * L * L * dh)                                                                    \
                                                                                                   \
    /* ---- the MoE router (SPEC §7; cpu_router.c, cuda_router.cu) ---- */                         \
                                                                                                   \
    /* The noisy top-k router of n tokens over E experts (1 <= k <= E <= 8), per token t:          \
         noise_std_e = softplus(raw_e), z_e = saec_hash_normal(seed, SAEC_RNG_ROUTER_NOISE,        \
         counter + 2·(t·E + e)), H_e = clean_e + z_e·noise_std_e (float operations; raw NULL:      \
         inference, H = clean); idx [n, k] the k largest H, largest first (ties to the lower       \
         index); gates [n, k] = softmax over those k H values (in double, rounded to float).       \
       clean, raw [n, E]. With stats [4E] and/or loss [5] (device doubles; NULL: not computed):    \
         importance_e = Σ_t gate_{t,e}; load_e = Σ_t Φ((clean_e − ψ_e)/noise_std_e), Φ the normal  \
         CDF, ψ_e = l_k if H_e > l_k, l_{k+1} if H_e <= l_{k+1}, else H_e (l_j: the j-th largest   \
         H of the token; l_{k+1} = −inf when k = E); without raw, load_e = #tokens routed to e;    \
         f_e = #tokens routed to e / n, P_e = mean_t softmax(clean_t)_e;                           \
         stats = [importance | load | f | P]; loss[1] = CV(importance), loss[2] = CV(load) (CV =   \
         population std / (mean + 1e-6)), loss[3] = E·Σ f_e·P_e (Switch), loss[4] =                \
         mean_t logsumexp(clean_t)² (z-loss), loss[0] = w_imp·loss[1] + w_load·loss[2] +           \
         w_switch·loss[3] + w_z·loss[4]. Sums in double, in a fixed order. */                      \
    ENTRY(int, router_forward,                                                                     \
      (saec_dev *dev, const float *clean, const float *raw, int64_t n, int E, int k,               \
       uint64_t seed, uint64_t counter, float w_imp, float w_load, float w_switch, float w_z,      \
       int32_t *idx, float *gates, double *stats, double *loss),                                   \
      (double n, double E, double k, double noisy),                                                \
      n * E * 4 * (1 + noisy) + n * k * 8, n * E * (12 + 30 * noisy))                              \
                                                                                                   \
    /* Its backward, each token recomputed from clean, raw and the counter (the forward's          \
       H, ψ and gates exactly): with dg_j = dgates_j + w_imp·∂CV/∂importance_{idx_j},              \
         dH_{idx_j} = g_j·(dg_j − Σ_i g_i·dg_i); the load term w_load·∂CV/∂load_e·Φ' gives         \
         clean_e, noise_std_e and ψ_e their share (ψ's to the expert whose H it is: the rank-k     \
         or rank-(k+1) one, ranks as in idx); the Switch term (f held) and the z-loss through      \
         softmax(clean); dH reaches clean (1) and noise_std (z); draw = dnoise_std·σ(raw).         \
       ∂CV/∂x_e = (x_e − m)/(E·std·(m + 1e-6)) − std/(E·(m + 1e-6)²), its first term 0 when        \
       std = 0.                                                                                    \
       stats [4E] from router_forward (read when w_imp, w_load or w_switch ≠ 0). dgates [n, k];    \
       dclean [n, E]; draw [n, E] (NULL iff raw is NULL). The top-k choice has no gradient.        \
       Deterministic (no sums across tokens). */                                                   \
    ENTRY(int, router_backward,                                                                    \
      (saec_dev *dev, const float *clean, const float *raw, const float *dgates,                   \
       const double *stats, int64_t n, int E, int k, uint64_t seed, uint64_t counter, float w_imp, \
       float w_load, float w_switch, float w_z, float *dclean, float *draw),                       \
      (double n, double E, double k, double noisy),                                                \
      n * E * 8 * (1 + noisy) + n * k * 4 + E * 32, n * E * (20 + 40 * noisy))

#endif
