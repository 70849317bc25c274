/* The training loop: data → step → optimizer → metrics → checkpoint, then the summary. */
#ifndef SAEC_TRAIN_H
#define SAEC_TRAIN_H

#include "saec/config.h"

/* Train with `cfg` (already validated). With `resume` set, cfg->out names the run directory to
   continue from its checkpoint. On SIGINT/SIGTERM a resumable checkpoint is saved and
   *interrupted_by is set to the signal number (0 otherwise). */
int saec_train(const saec_config *cfg, int resume, int *interrupted_by);

/* Steps of a run: steps, else ceil(tokens / (batch_size · world)) (the global batch), else the
   default 3000. */
int64_t saec_total_steps(const saec_config *cfg, int world);

/* Learning rate at 0-based step t: linear warm-up, then constant / cosine / linear decay. */
double saec_lr_at(const saec_config *cfg, int64_t t, int64_t total_steps);

#endif
