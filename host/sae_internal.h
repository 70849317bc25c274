/* Helpers of the training step shared by sae.c and the TIDE separate mode (sae_separate.c); not
 * an interface for the rest of the engine. */
#ifndef SAEC_SAE_INTERNAL_H
#define SAEC_SAE_INTERNAL_H

#include "sae.h"

/* The nmse statistics of (x, x̂) [n, d] and, when grad is not NULL, ∂(grad_scale·nmse)/∂x̂,
   normalised over the global batch: with several ranks the statistics are summed across ranks
   before the gradient is formed. */
int sae_recon(saec_sae *sae, const float *x, const float *xhat, const float *mu, int64_t n,
              float grad_scale, double *stats, float *grad);

/* buf[count] ← its mean over the ranks (no-op alone). */
int sae_mean_over_ranks(saec_sae *sae, float *buf, int64_t count);

/* The gradients of tensors first .. last (contiguous in the arena) are final: start summing them
   across ranks while the backward goes on (no-op alone). */
int sae_grads_ready(saec_sae *sae, int first, int last);

/* BatchTopK: fold this training batch's cut-off (bt_batch_thr) into the tracked inference
   threshold, as sae_begin_step scheduled. */
int sae_batchtopk_track(saec_sae *sae);

#endif
