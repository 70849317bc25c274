/* Exports (SPEC §10) and the models they hold.
 *
 * `saec export` writes a trained SAE in the exact layouts of SAELens and sparsify, with the data
 * scale s folded in so the exported SAE takes raw activations. The same code reads those layouts
 * (and saec run directories) back into one host-side model, for `saec eval EXPORT_DIR` and for
 * `--init-from`.
 *
 * Units. A saec run works on xn = x / s. A model "in units s" computes
 *     pre = (x/s − b_dec) W_encᵀ + b_enc,  f = ReLU(TopK(pre)),  x̂ = s·(f W_dec + b_dec).
 * Moving it to units s' keeps the weight matrices and scales the biases (and μ) by r = s / s':
 *     b_enc' = r·b_enc,  b_dec' = r·b_dec,  μ' = r·μ,  and then pre' = r·pre, f' = r·f.
 * TopK and ReLU commute with a positive factor, so the function x ↦ x̂ is unchanged, the decoder
 * rows keep their unit norm, and the codes come out in the units of x. An export is the model
 * in units 1 (raw activations). This is why W_enc and W_dec are written as trained rather than
 * as W_enc / s and s·W_dec (equally valid, but decoder rows of norm s break the unit-norm
 * convention both tools assume, and a later --init-from on data with another scale would then
 * have to renormalise the decoder and change the function).
 */
#ifndef SAEC_EXPORT_H
#define SAEC_EXPORT_H

#include <stdint.h>

#include "checkpoint.h"
#include "data.h"
#include "sae.h"
#include "saec/config.h"

/* What a directory holds, told by which weights file is present. */
typedef enum {
    SAEC_MODEL_NONE = 0,
    SAEC_MODEL_RUN,      /* saec run: model.safetensors */
    SAEC_MODEL_SAELENS,  /* cfg.json + sae_weights.safetensors (+ sparsity.safetensors) */
    SAEC_MODEL_SPARSIFY, /* cfg.json + sae.safetensors */
} saec_model_kind;

#define SAEC_EXPORT_CFG "cfg.json"
#define SAEC_SAELENS_WEIGHTS "sae_weights.safetensors"
#define SAEC_SAELENS_SPARSITY "sparsity.safetensors"
#define SAEC_SPARSIFY_WEIGHTS "sae.safetensors"

/* log10 of a firing frequency of zero: SAELens stores log10(frequency + 1e-10), so a latent that
   never fired reads -10. */
#define SAEC_LOG_SPARSITY_EPS 1e-10

saec_model_kind saec_model_detect(const char *dir);
const char *saec_model_kind_name(saec_model_kind kind); /* "saec run", "SAELens export", ... */

/* An SAE on the host, in units `scale` (see above). JumpReLU's θ scales like the codes. */
typedef struct {
    saec_model_kind kind;
    char arch[32]; /* topk | batchtopk | relu | jumprelu | atm (SAELens "standard" reads as relu) */
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

/* Read a saec run directory or a SAELens / sparsify export. Missing files, wrong names, shapes
   or dtypes, non-finite weights and unsupported variants are SAEC_ERR_DATA naming the file and
   the tensor or key. */
int saec_host_model_read(const char *dir, saec_host_model *out);
void saec_host_model_free(saec_host_model *hm);

/* The configuration to evaluate or export the model with: the training run's own when known,
   else defaults with d_in, latents and k from the model. */
void saec_host_model_config(const saec_host_model *hm, saec_config *cfg);

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

/* log10 firing frequency of each latent over `tokens` rows of `src` (a file's rows once each,
   capped as saec_eval_rows caps them): out [m]. */
int saec_latent_log_sparsity(saec_sae *sae, saec_data *src, int64_t tokens, float *out);

/* "bucket", "adaln" or "separate" for a timestep-aware SAE (none of them has an export layout),
   else NULL; saec_export_refuse_timestep_aware makes that a usage error naming `source`. */
const char *saec_host_model_timestep_mode(const saec_host_model *hm);
int saec_export_refuse_timestep_aware(const saec_host_model *hm, const char *source);

/* Write `hm` (any units: it is folded to raw units here) in the layout of `kind` (SAELENS or
   SPARSIFY) into the existing directory `out_dir`. log_sparsity [m] is required for SAELens.
   Each file is written atomically. */
int saec_export_write(const saec_host_model *hm, saec_model_kind kind, const float *log_sparsity,
                      const char *source, const char *out_dir);

/* Reconstructions x̂ of `tokens` rows of `src` (capped as saec_eval_rows caps them), in raw
   units, written atomically to `path` as a float32 .npy [rows, d] (for tests and debugging). */
int saec_dump_reconstructions(saec_sae *sae, saec_data *src, int64_t tokens, const char *path);

#endif
