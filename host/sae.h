/* The TopK sparse autoencoder (SPEC §1–2), composed from the ops of include/saec/ops.h.
 *
 * Memory is planned once (llm.c style): a parameter arena, a gradient arena and two Adam arenas
 * share one layout, defined by sae_tensor_layout(); activation buffers are sized for the batch.
 * The encoder is stored transposed, W_enc_t = W_encᵀ [m, d], so that every sparse op (decode,
 * dW_dec, dW_enc, the encoder-input gradient) is a gather or scatter of contiguous rows.
 */
#ifndef SAEC_SAE_H
#define SAEC_SAE_H

#include <stdint.h>

#include "saec/device.h"

/* Parameter tensors, in arena (and checkpoint) order. */
enum { SAE_W_ENC_T = 0, SAE_B_ENC, SAE_W_DEC, SAE_B_DEC, SAE_N_TENSORS };

typedef struct {
    const char *name;
    int64_t rows, cols; /* cols = 1 for vectors */
    int64_t offset;     /* in floats, into each arena */
} sae_tensor;

typedef struct {
    saec_dev *dev;
    int64_t d, m, k, aux_k; /* aux_k 0 = AuxK off */
    int64_t batch;          /* capacity of the activation buffers, tokens */
    float aux_alpha;
    int64_t dead_after; /* tokens without firing before a latent counts as dead */

    sae_tensor layout[SAE_N_TENSORS];
    int64_t n_params;

    /* arenas [n_params] */
    float *params, *grads, *adam_m, *adam_v;
    /* views into params / grads */
    float *W_enc_t, *b_enc, *W_dec, *b_dec;     /* [m, d], [m], [m, d], [d] */
    float *dW_enc_t, *db_enc, *dW_dec, *db_dec; /* same shapes */

    /* data constants, stored with the checkpoint */
    float scale;      /* s: xn = x / s has E‖xn‖² = d */
    float *data_mean; /* [d] μ of xn, for the nmse denominator */

    /* latent bookkeeping */
    int64_t *since_fired; /* [m] tokens since the latent last fired */
    uint8_t *dead_mask;   /* [m] */

    /* activations, sized for `batch` tokens */
    float *x;         /* [batch, d] the batch, normalised in place to xn */
    float *xc;        /* [batch, d] xn − b_dec, the encoder input */
    float *pre;       /* [batch, m] pre-activations */
    int32_t *idx;     /* [batch, k] */
    float *f;         /* [batch, k] codes: ReLU of the top-k pre-activations */
    float *xhat;      /* [batch, d] reconstruction */
    float *g;         /* [batch, d] ∂loss/∂x̂ */
    float *df;        /* [batch, k] ∂loss/∂pre at the kept entries */
    float *dxc;       /* [batch, d] ∂loss/∂xc */
    float *e;         /* [batch, d] residual xn − x̂ (AuxK) */
    float *e_mean;    /* [d] */
    int32_t *idx_aux; /* [batch, aux_k] */
    float *f_aux;     /* [batch, aux_k] */
    float *ehat;      /* [batch, d] AuxK reconstruction of the residual */
    float *g_aux;     /* [batch, d] */
    float *df_aux;    /* [batch, aux_k] */

    /* device scalars, read by the host only at logging steps */
    double *stats;     /* [SAEC_STAT_COUNT] main reconstruction */
    double *aux_stats; /* [SAEC_STAT_COUNT] AuxK */
    double *grad_sumsq;
    double *dead_count;
    double *l0_count; /* Σ nonzero codes in the batch */

    /* geometric-median scratch, only at init */
} saec_sae;

/* Plan and allocate everything (zeroed). aux_k = 0 disables AuxK. */
int sae_create(saec_dev *dev, int64_t d, int64_t m, int64_t k, int64_t aux_k, float aux_alpha,
               int64_t dead_after, int64_t batch, saec_sae **out);
void sae_destroy(saec_sae *sae);

/* Initialise from a host sample of raw rows [n, d] (SPEC §1): s from E‖x‖², μ, b_dec = geometric
   median, W_enc Kaiming-uniform from `seed`, W_dec = W_encᵀ with unit rows, b_enc = 0. */
int sae_init(saec_sae *sae, const float *sample, int64_t n, int median_iters, uint64_t seed);

/* Forward on the n raw rows already uploaded to sae->x (n <= batch): normalises x in place,
   encodes, decodes, computes the loss statistics, and, when `train` is set, ∂loss/∂x̂, the dead
   latent tracking and the AuxK terms. */
int sae_forward(saec_sae *sae, int64_t n, int train);

/* Sparse backward of the last forward into the gradient arena (overwritten). */
int sae_backward(saec_sae *sae, int64_t n);

/* Decoder-gradient projection, global-norm clipping, AdamW, decoder row renormalisation. */
int sae_optimizer_step(saec_sae *sae, saec_adamw_args args);

/* Host copies of the device scalars of the last step. */
typedef struct {
    double sse, sst, cos_sum; /* main reconstruction, this batch */
    double aux_sse, aux_sst;  /* AuxK */
    double grad_norm;         /* before clipping */
    double dead_count, l0_count;
} sae_step_stats;

int sae_read_stats(saec_sae *sae, sae_step_stats *out);

/* The loss of the last step from its statistics: nmse + aux_alpha * aux nmse. */
double sae_loss(const saec_sae *sae, const sae_step_stats *st);

#endif
