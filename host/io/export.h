/* Exports (SPEC §10).
 *
 * `saec export` writes a trained SAE in the exact layouts of SAELens and sparsify, with the data
 * scale s folded in so the exported SAE takes raw activations. model_io.h reads those layouts
 * (and saec run directories) back into one host-side model, for `saec eval EXPORT_DIR` and for
 * `--init-from`, and defines the units.
 *
 * An export is the model in units 1 (raw activations): its biases are s·b_enc and s·b_dec, and
 * its codes are in the units of x. This is why W_enc and W_dec are written as trained rather than
 * as W_enc / s and s·W_dec (equally valid, but decoder rows of norm s break the unit-norm
 * convention both tools assume, and a later --init-from on data with another scale would then
 * have to renormalise the decoder and change the function).
 */
#ifndef SAEC_EXPORT_H
#define SAEC_EXPORT_H

#include <stdint.h>

#include "data.h"
#include "model_io.h"
#include "sae.h"

/* log10 of a firing frequency of zero: SAELens stores log10(frequency + 1e-10), so a latent that
   never fired reads -10. */
#define SAEC_LOG_SPARSITY_EPS 1e-10

/* log10 firing frequency of each latent over `tokens` rows of `src` (a file's rows once each,
   capped as saec_eval_rows caps them): out [m]. */
int saec_latent_log_sparsity(saec_sae *sae, saec_data *src, int64_t tokens, float *out);

/* A timestep-aware SAE (saec_host_model_timestep_mode) has no export layout: a usage error
   naming `source`. */
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
