/* Helpers the SAE's files share (sae_layout.c, sae_step.c, sae_adaln.c, sae_distributed.c and the
 * TIDE separate mode, sae_separate.c); not an interface for the rest of the engine. */
#ifndef SAEC_SAE_INTERNAL_H
#define SAEC_SAE_INTERNAL_H

#include <stddef.h>

#include "sae.h"

/* ---- allocation (sae_layout.c) ---- */

/* A device buffer of `bytes` (a zero-byte request still gets a valid buffer). */
int sae_dev_alloc(saec_sae *sae, void **p, size_t bytes);

/* ptr = a device buffer of `count` elements of its type, in a function that has `sae` and returns
   an error code. */
#define SAE_ALLOC(ptr, count)                                                                      \
    SAEC_TRY(sae_dev_alloc(sae, (void **)&(ptr), sizeof(*(ptr)) * (size_t)(count)))

/* ---- the adaLN MLP (sae_adaln.c) ---- */

/* The mode's buffers, the embedding table [T, E] and the row indices (called by sae_create). */
int sae_adaln_allocate(saec_sae *sae);
/* The per-token scale s and shift h [n, d] from the rows' timestep embeddings. */
int sae_adaln_forward(saec_sae *sae, int64_t n);
/* Given ∂L/∂s and ∂L/∂h [n, d], the MLP's gradients (into the zeroed arena). */
int sae_adaln_backward(saec_sae *sae, int64_t n);

/* ---- the step (sae_step.c) ---- */

/* BatchTopK's dense codes fd [n, width] from pre [n, width]: in training the n·k largest of the
   batch (and the tracked inference threshold updated, as sae_begin_step scheduled), in
   inference a JumpReLU with that threshold once it is tracked. */
int sae_batchtopk_encode(saec_sae *sae, int64_t n, int64_t width, int train);

/* ---- across ranks (sae_distributed.c); each is a no-op alone ---- */

/* ZeRO-1: the Adam moments are split over the ranks. */
static inline int sae_sharded(const saec_sae *sae) { return sae->hp.optimizer_shards > 1; }

/* The nmse statistics of (x, x̂) [n, d] and, when grad is not NULL, ∂(grad_scale·nmse)/∂x̂,
   normalised over the global batch: with several ranks the statistics are summed across ranks
   before the gradient is formed. */
int sae_recon(saec_sae *sae, const float *x, const float *xhat, const float *mu, int64_t n,
              float grad_scale, double *stats, float *grad);

/* buf[count] ← its mean over the ranks. */
int sae_mean_over_ranks(saec_sae *sae, float *buf, int64_t count);

/* AuxK: e_mean [d] ← the mean over the global batch of the residual rows e [n, d] (n on each
   rank). */
int sae_residual_mean(saec_sae *sae, const float *e, int64_t n, float *e_mean);

/* After this rank tracked its own n tokens: a latent is alive when it fired on any rank, and the
   clocks of the others advance by the other ranks' tokens (the dead mask and count follow). */
int sae_fired_over_ranks(saec_sae *sae, int64_t n);

/* The gradients of tensors first .. last (contiguous in the arena) are final: start summing them
   across ranks while the backward goes on. */
int sae_grads_ready(saec_sae *sae, int first, int last);
/* Wait until every gradient sum started by sae_grads_ready is done. */
int sae_grads_wait(saec_sae *sae);

/* ZeRO-1: after each rank updated its shard of the parameters, all-gather the whole arena. */
int sae_gather_params(saec_sae *sae);

/* At a logging step after a training forward: sum the reported statistics (L0, the penalty of
   relu and atm) over the ranks; the others were summed by the step itself. */
int sae_stats_over_ranks(saec_sae *sae);

#endif
