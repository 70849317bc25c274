/* Model I/O: one host-side SAE read from a saec run directory or from a SAELens or sparsify
 * export, moved between units, and copied into a device SAE for resume, eval, export and
 * --init-from.
 *
 * Dependencies run one way; model_io.c includes neither checkpoint.h nor export.h:
 *
 *     checkpoint.c (save, resume) ──┐
 *     export.c (the writers) ───────┼──> model_io.c ──> run_dir.c (which step directory is
 *     cmd_eval.c, cmd_export.c,     │                    current), safetensors.c, fsutil.c,
 *     train.c (--init-from) ────────┘                    config.c, data.c (fill_mean), sae.h
 *
 * A checkpoint's model.safetensors has one reader, saec_host_model_read. The run state and
 * config that checkpoint.c writes into its metadata are therefore parsed here too.
 *
 * Units. A saec run works on xn = x / s. A model "in units s" computes
 *     pre = (x/s − b_dec) W_encᵀ + b_enc,  f = ReLU(TopK(pre)),  x̂ = s·(f W_dec + b_dec).
 * Moving it to units s' keeps the weight matrices and scales the biases (and μ) by r = s / s':
 *     b_enc' = r·b_enc,  b_dec' = r·b_dec,  μ' = r·μ,  and then pre' = r·pre, f' = r·f.
 * TopK and ReLU commute with a positive factor, so the function x ↦ x̂ is unchanged, the decoder
 * rows keep their unit norm, and the codes come out in the units of x. An export is the model
 * in units 1 (raw activations; export.h says why the weights are written as trained).
 */
#ifndef SAEC_MODEL_IO_H
#define SAEC_MODEL_IO_H

#include <stdint.h>

#include "sae.h"
#include "saec/config.h"

/* What a directory holds, told by which weights file is present. */
typedef enum {
    SAEC_MODEL_NONE = 0,
    SAEC_MODEL_RUN,      /* saec run: model.safetensors */
    SAEC_MODEL_SAELENS,  /* cfg.json + sae_weights.safetensors (+ sparsity.safetensors) */
    SAEC_MODEL_SPARSIFY, /* cfg.json + sae.safetensors */
} saec_model_kind;

/* The exports' file names (a run's are in run_dir.h). */
#define SAEC_EXPORT_CFG "cfg.json"
#define SAEC_SAELENS_WEIGHTS "sae_weights.safetensors"
#define SAEC_SAELENS_SPARSITY "sparsity.safetensors"
#define SAEC_SPARSIFY_WEIGHTS "sae.safetensors"

saec_model_kind saec_model_detect(const char *dir);
const char *saec_model_kind_name(saec_model_kind kind); /* "saec run", "SAELens export", ... */

/* Where a run stands. */
typedef struct {
    int64_t step;         /* optimizer steps done */
    int64_t tokens;       /* training tokens consumed by those steps */
    int64_t data_cursor;  /* position of the training stream */
    double seconds;       /* training-loop time so far */
    int64_t global_batch; /* tokens per step over all ranks (0: unknown, an older checkpoint) */
} saec_run_state;

/* The run state as the JSON stored in a checkpoint's metadata (malloc'd; NULL: out of memory),
   and back (`path` names the file in errors). */
char *saec_run_state_json(const saec_run_state *st);
int saec_run_state_parse(const char *text, const char *path, saec_run_state *st);

/* The training configuration stored in the metadata of the model.safetensors of one checkpoint
   directory (a step directory, or a run directory of the older layout). */
int saec_model_read_config(const char *ckpt_dir, saec_config *cfg);

/* An SAE on the host, in units `scale` (see above). JumpReLU's θ scales like the codes. */
typedef struct {
    saec_model_kind kind;
    sae_arch arch; /* parsed at read time (SAELens "standard" reads as relu) */
    int64_t d, m, k;
    float *log_theta;           /* [m] jumprelu: log θ; NULL otherwise */
    float bt_threshold;         /* batchtopk: the inference θ; 0 = not tracked yet */
    int64_t ts_buckets;         /* TIDE bucket mode (saec runs only): B, else 0 */
    float *ts_scale, *ts_shift; /* [B, d] s_b and h_b (h_b scales like the biases) */
    int64_t adaln_dim;          /* TIDE adaln mode (saec runs only): E, else 0 */
    float *adaln[6];            /* W1 [E, E], b1 [E], W_scale [E, d], b_scale [d], W_shift [E, d],
                                   b_shift [d] (the shift layer scales like the biases) */
    float *W_enc_t;             /* [m, d] encoder, transposed (sparsify's encoder.weight layout) */
    float *b_enc;               /* [m] */
    float *W_dec;               /* [m, d] */
    float *b_dec;               /* [d] */
    float *data_mean;  /* [d] μ in the model's units, for the nmse denominator; NULL if unknown */
    float scale;       /* s: the model takes x / scale. 1 for exports */
    double data_scale; /* the training run's s (provenance; 0 when unknown) */
    int64_t step;      /* training steps behind the weights; -1 when unknown */
    saec_run_state run_state; /* a saec run's position (kind RUN), for resume */
    int has_config;           /* cfg below holds the training run's configuration */
    saec_config cfg;
} saec_host_model;

/* Read a saec run directory (its newest checkpoint) or a SAELens / sparsify export. Missing
   files, wrong names, shapes or dtypes, non-finite weights and unsupported variants are
   SAEC_ERR_DATA naming the file and the tensor or key. */
int saec_host_model_read(const char *dir, saec_host_model *out);
void saec_host_model_free(saec_host_model *hm);

/* The configuration to evaluate or export the model with: the training run's own when known,
   else defaults with d_in, latents and k from the model. */
void saec_host_model_config(const saec_host_model *hm, saec_config *cfg);

/* The timestep mode of the SAE: SAE_TS_NONE unless it is timestep-aware. */
sae_ts_mode saec_host_model_timestep_mode(const saec_host_model *hm);

/* Move the model to units `scale` (> 0); the function x ↦ x̂ does not change. */
void saec_host_model_set_scale(saec_host_model *hm, float scale);

/* When μ is unknown (foreign exports), take it from the first `rows` rows of a fresh eval stream
   of `data_cfg`, in the model's units. */
int saec_host_model_fill_mean(saec_host_model *hm, const saec_config *data_cfg, int64_t rows);

/* Copy parameters, μ (when known), the scale and the variant's θ into an SAE created with the
   model's sizes and arch. */
int saec_host_model_upload(const saec_host_model *hm, saec_sae *sae);

/* --init-from: after sae_init has set s and μ from this run's data, replace the weights by those
   of `src` (run or export) moved into this run's units. d and m must match; k may differ. */
int saec_init_from(const char *src, saec_sae *sae);

#endif
