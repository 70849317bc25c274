/* TIDE `separate` mode (SPEC §6): B independent SAEs, one per timestep bucket, trained together
 * in one pass; the baseline for "one dictionary vs many".
 *
 * The B SAEs share the parameter layout of one SAE of m latents: bucket g's SAE is latents
 * g·mb .. (g+1)·mb − 1 (mb = m/B) of W_enc_t, b_enc, W_dec (and log_theta), so checkpoints, the
 * optimizer and the decoder constraint are unchanged, and the total size and the L0 per token
 * (k, from the token's own SAE) match the other modes. They share the data constants (s, μ) and
 * b_dec (the data's geometric median, trained on every token); BatchTopK keeps the n·k largest
 * codes of the whole batch, all SAEs together (one inference threshold). Everything else is per
 * bucket: a latent's firing clock counts its bucket's tokens, ATM statistics and masks are per
 * SAE.
 *
 * Each step the rows are grouped by bucket on the device (group_count, exclusive_scan,
 * group_permute) and gathered into bucket order; the dense work runs as grouped GEMMs over the
 * sorted rows, per-latent work as one op call per bucket on its rows and latents (offsets known
 * on the host, from the host's bucket ids: no sync). The reconstruction is scattered back to the
 * batch's order for evaluation.
 *
 * Data-parallel, ranks hold different numbers of each bucket's tokens; the step is still the one
 * process's on the global batch: global nmse and AuxK residual (as in sae_step.c), per-bucket token
 * counts summed across ranks for the dead-latent clocks, ATM statistics weighted by each rank's
 * share of the bucket.
 */
#ifndef SAEC_SAE_SEPARATE_H
#define SAEC_SAE_SEPARATE_H

#include "sae.h"

/* The mode's buffers (called by sae_create once the common ones exist). */
int sae_separate_allocate(saec_sae *sae);

/* Group the n rows whose buckets sae_set_timesteps just set (device and host offsets). */
int sae_separate_group(saec_sae *sae, int64_t n);

/* sae_forward, sae_backward, sae_track_fired, sae_download_codes for this mode. */
int sae_separate_forward(saec_sae *sae, int64_t n, int train);
int sae_separate_backward(saec_sae *sae, int64_t n);
int sae_separate_track_fired(saec_sae *sae, int64_t n, int64_t *since_fired, int64_t *fire_count,
                             int64_t dead_after, uint8_t *dead_mask, double *dead_count);
int sae_separate_download_codes(saec_sae *sae, int64_t n, int32_t *idx, float *f, int64_t *kk);

#endif
