/* What the training loop (train.c) needs of a model, and nothing more: the loop owns the data,
   the run directory and its lock, progress, signals, when to checkpoint, resume and the ranks
   of data parallelism; the model owns its parameters, its step, what its checkpoint holds, its
   metrics and its evaluation. The SAE is one (sae_model.c), MoE-MAE the other (moe_mae_model.c):
   a row is then one EO tile (data.h).

   Every call is made by every rank alike (a model with a communicator may run collectives in
   any of them), except evaluate, which rank 0 makes alone. */
#ifndef SAEC_MODEL_H
#define SAEC_MODEL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "log.h"
#include "model_io.h" /* saec_run_state */
#include "saec/config.h"
#include "saec/device.h"

typedef struct saec_comm saec_comm; /* comm.h */
typedef struct saec_model saec_model;

typedef struct {
    const char *kind;      /* "sae", "moe-mae" */
    const char *rate_unit; /* what a row is, on the progress line's rate: "tok", "img" */

    /* What is trained, and how big, for the progress header ("topk SAE d=256 m=4096 k=32 ..."). */
    void (*describe)(const saec_model *m, char *buf, size_t size);

    /* A fresh run: initialise from a sample of `data` (which it consumes), then make every rank
       hold rank 0's parameters. */
    int (*init)(saec_model *m, saec_data *data);

    /* One optimisation step on this rank's n rows [n, d] (host memory) and their timesteps [n]
       (NULL: the data has none), as step `step` (0-based) of `total`, at learning rate lr. */
    int (*step)(saec_model *m, const float *rows, const int32_t *timesteps, int64_t n,
                int64_t step, int64_t total, double lr);

    /* The last step's metrics, over the global batch of global_n rows: appended to rec with
       saec_log_metric (its keys, formats and divergence guards are the model's; the loop fills
       step, tokens, lr, speed and time). */
    int (*metrics)(saec_model *m, int64_t global_n, saec_log_record *rec);

    /* Save the model and its optimizer as checkpoint st->step of run directory `dir` (rank 0
       writes; the others send what only they hold). Resume: load the newest good checkpoint and
       fill *st. */
    int (*save)(saec_model *m, const char *dir, const saec_config *cfg,
                const saec_run_state *st);
    int (*load)(saec_model *m, const char *dir, saec_run_state *st);

    /* The held-out evaluation at the end of a run: adds its metrics to `summary` and writes any
       files of its own into `dir`. Rank 0 alone. */
    int (*evaluate)(saec_model *m, const saec_config *cfg, const char *dir, cJSON *summary);

    void (*destroy)(saec_model *m);
} saec_model_ops;

struct saec_model {
    const saec_model_ops *ops;
    void *impl;
};

/* The SAE of cfg for data of width d, trained for total_steps steps of world ranks, on dev and
   over comm (NULL: alone). sae_model.c. */
int saec_sae_model_create(saec_dev *dev, saec_comm *comm, const saec_config *cfg, int64_t d,
                          int64_t total_steps, saec_model **out);

/* The MoE-MAE of cfg (SPEC §7) for the EO tiles of `data`, trained on dev over comm.
   moe_mae_model.c. */
int saec_moe_mae_model_create(saec_dev *dev, saec_comm *comm, const saec_config *cfg,
                              const saec_data *data, saec_model **out);

#endif
