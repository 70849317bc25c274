/* MoE-MAE checkpoints, in the run-directory layout of run_dir.h (the SAE's are checkpoint.h's):
 *   model.safetensors      every parameter tensor by its layout name (moe_mae_layout.h), shape
 *                          [rows, cols] ([cols] for a vector); data.band_mean, data.band_std
 *                          [bands] (the z-score the encoder expects); metadata: format, config,
 *                          state (as the SAE's, so `saec train --resume` and ckpt_read_config
 *                          read it alike)
 *   optimizer.safetensors  adam_m.NAME, adam_v.NAME for every tensor; metadata: format, state
 * Published atomically; a checkpoint that does not load (shape, dtype, non-finite values, steps
 * that disagree) is named on stderr and the previous one is tried.
 */
#ifndef SAEC_MOE_MAE_CHECKPOINT_H
#define SAEC_MOE_MAE_CHECKPOINT_H

#include "model_io.h" /* saec_run_state */
#include "moe_mae_net.h"
#include "saec/config.h"

/* The moe_mae_cfg of a run's configuration (every SPEC §7 constant is a config key). */
int moe_mae_cfg_from_config(const saec_config *cfg, moe_mae_cfg *out);

int moe_mae_ckpt_save(const char *dir, moe_mae_net *net, const saec_config *cfg,
                      const saec_run_state *st);

/* Resume: the newest checkpoint that loads, parameters and optimizer; fills *st. */
int moe_mae_ckpt_load(const char *dir, moe_mae_net *net, saec_run_state *st);

/* Parameters and band statistics only (embeddings): from run directory or checkpoint `dir`. */
int moe_mae_ckpt_load_params(const char *dir, moe_mae_net *net, int64_t *step);

#endif
