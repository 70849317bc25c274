/* Checkpoints: `model.safetensors` (parameters and data constants, the run's config and state as
   JSON in __metadata__) and `optimizer.safetensors` (Adam moments, dead-latent counters), written
   together into one step directory and published atomically (run_dir.h shows the layout). */
#ifndef SAEC_CHECKPOINT_H
#define SAEC_CHECKPOINT_H

#include <stdint.h>

#include "sae.h"
#include "saec/config.h"

#define SAEC_CKPT_MODEL "model.safetensors"
#define SAEC_CKPT_OPTIMIZER "optimizer.safetensors"

/* Where a run stands. */
typedef struct {
    int64_t step;         /* optimizer steps done */
    int64_t tokens;       /* training tokens consumed by those steps */
    int64_t data_cursor;  /* position of the training stream */
    double seconds;       /* training-loop time so far */
    int64_t global_batch; /* tokens per step over all ranks (0: unknown, an older checkpoint) */
} saec_run_state;

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

/* Parse the run state JSON stored in a checkpoint's metadata (`path` names it in errors). */
int ckpt_parse_state(const char *text, const char *path, saec_run_state *st);

#endif
