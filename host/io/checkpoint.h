/* Checkpoints: `model.safetensors` (parameters and data constants, the run's config and state as
   JSON in __metadata__) and `optimizer.safetensors` (Adam moments, dead-latent counters), written
   together into one step directory and published atomically (run_dir.h shows the layout).

   Dependencies: checkpoint.c ──> model_io.c (the one reader of model.safetensors, the run state
   and config metadata), run_dir.c, safetensors.c, fsutil.c, sae.h. model_io.c does not include
   checkpoint.h. */
#ifndef SAEC_CHECKPOINT_H
#define SAEC_CHECKPOINT_H

#include <stdint.h>

#include "model_io.h" /* saec_run_state */
#include "sae.h"
#include "saec/config.h"

/* Save the SAE and its optimizer state as checkpoint st->step of run directory `dir`, keeping
   cfg->keep_checkpoints of them. The Adam moments come from adam_m, adam_v [n_params] on the
   host when given (ZeRO-1: gathered by sae_gather_optimizer), else from the device arenas. The
   caller holds the directory's lock. */
int ckpt_save(const char *dir, saec_sae *sae, const saec_config *cfg, const saec_run_state *st,
              const float *adam_m, const float *adam_v);

/* Read the config stored in the newest readable checkpoint of run directory `dir` (or of a
   checkpoint directory). */
int ckpt_read_config(const char *dir, saec_config *cfg);

/* Resume: load a run's parameters and data constants (read by saec_host_model_read, the one
   reader of model.safetensors) and its optimizer state into an SAE created with the checkpoint's
   sizes; fills *st. The newest checkpoint that loads is taken; one that does not (shape, dtype,
   non-finite values, steps that disagree) is named on stderr before the previous one is tried. */
int ckpt_load(const char *dir, saec_sae *sae, saec_run_state *st);

#endif
