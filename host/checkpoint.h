/* Checkpoints: `model.safetensors` (parameters and data constants, the run's config and state as
   JSON in __metadata__) and `optimizer.safetensors` (Adam moments, dead-latent counters) in the
   run directory, each written atomically. */
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

/* Save the SAE (and, with_optimizer, its optimizer state) into run directory `dir`. The Adam
   moments come from adam_m, adam_v [n_params] on the host when given (ZeRO-1: gathered by
   sae_gather_optimizer), else from the device arenas. */
int ckpt_save(const char *dir, saec_sae *sae, const saec_config *cfg, const saec_run_state *st,
              int with_optimizer, const float *adam_m, const float *adam_v);

/* Read the config stored in the run directory's checkpoint (falls back to config.json). */
int ckpt_read_config(const char *dir, saec_config *cfg);

/* Resume: load a run's parameters and data constants (read by saec_host_model_read, the one
   reader of model.safetensors) and its optimizer state into an SAE created with the checkpoint's
   sizes; fills *st. Shape, dtype or non-finite values are errors naming the tensor. */
int ckpt_load(const char *dir, saec_sae *sae, saec_run_state *st);

/* Parse the run state JSON stored in a checkpoint's metadata (`path` names it in errors). */
int ckpt_parse_state(const char *text, const char *path, saec_run_state *st);

#endif
