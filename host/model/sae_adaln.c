/* TIDE `adaln` mode (SPEC §6): the timestep's scale and shift of the encoder input come from a
   small MLP on a sinusoidal embedding of t, (s, h) = MLP(emb(t)), one per row. Its buffers and
   embedding table, its forward and its backward; sae_step.c modulates the encoder input with
   (s, h). */
#include <math.h>
#include <stdlib.h>

#include "sae_internal.h"

/* adaln's buffers, and two constant tables built once: the sinusoidal embedding of every
   timestep [T, E] (a step gathers its rows' entries on the device instead of computing and
   uploading n·E values), and the row indices 0 .. batch−1 (each row its own modulation). */
int sae_adaln_allocate(saec_sae *sae) {
    const int64_t d = sae->d, n = sae->batch, E = sae->hp.adaln_dim, T = sae->hp.timesteps;
    SAE_ALLOC(sae->acts.u, n * d);
    SAE_ALLOC(sae->acts.emb, n * E);
    SAE_ALLOC(sae->acts.emb_table, T * E);
    SAE_ALLOC(sae->acts.timestep, n);
    SAE_ALLOC(sae->acts.ada_a1, n * E);
    SAE_ALLOC(sae->acts.ada_h1, n * E);
    SAE_ALLOC(sae->acts.ada_s, n * d);
    SAE_ALLOC(sae->acts.ada_h, n * d);
    SAE_ALLOC(sae->acts.ada_ds, n * d);
    SAE_ALLOC(sae->acts.ada_dh, n * d);
    SAE_ALLOC(sae->acts.ada_dh1, n * E);
    SAE_ALLOC(sae->acts.row_index, n);
    sae->acts.enc_in = sae->acts.u;
    float *table = malloc(sizeof(float) * (size_t)(T * E));
    int32_t *iota = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!table || !iota) {
        free(table), free(iota);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
    }
    /* the transformer's embedding of t (sin and cos at E/2 frequencies from 1 down to 1/10000),
       as DiT embeds its timestep */
    const int64_t half = E / 2;
    for (int64_t j = 0; j < half; j++) {
        const double freq = exp(-log(10000.0) * (double)j / (double)half);
        for (int64_t t = 0; t < T; t++) {
            table[t * E + j] = (float)sin((double)t * freq);
            table[t * E + half + j] = (float)cos((double)t * freq);
        }
    }
    for (int64_t i = 0; i < n; i++)
        iota[i] = (int32_t)i;
    int rc = sae->dev->ops->upload(sae->dev, sae->acts.emb_table, table,
                                   sizeof(float) * (size_t)(T * E));
    if (rc == SAEC_OK)
        rc =
            sae->dev->ops->upload(sae->dev, sae->acts.row_index, iota, sizeof(int32_t) * (size_t)n);
    free(table), free(iota);
    return rc;
}

/* adaln: the per-token scale s and shift h [n, d] from the timestep embedding. */
int sae_adaln_forward(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, E = sae->hp.adaln_dim;
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n, E, E, 1.0f, sae->acts.emb, E, sae->params.ada_W1, E, 0.0f,
                     sae->acts.ada_a1, E, sae->params.ada_b1)); /* a1 = emb W1 + b1 */
    SAEC_TRY(SAEC_OP(dev, silu, sae->acts.ada_a1, n * E, sae->acts.ada_h1));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n, d, E, 1.0f, sae->acts.ada_h1, E, sae->params.ada_W_s, d,
                     0.0f, sae->acts.ada_s, d, sae->params.ada_b_s)); /* s = h1 W_s + b_s */
    return SAEC_OP(dev, gemm, 0, 0, n, d, E, 1.0f, sae->acts.ada_h1, E, sae->params.ada_W_h, d,
                   0.0f, sae->acts.ada_h, d, sae->params.ada_b_h); /* h = h1 W_h + b_h */
}

/* adaln: given ∂L/∂s and ∂L/∂h [n, d], the MLP's gradients (into the zeroed arena). */
int sae_adaln_backward(saec_sae *sae, int64_t n) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, E = sae->hp.adaln_dim;
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, E, d, n, 1.0f, sae->acts.ada_h1, E, sae->acts.ada_ds, d, 0.0f,
                     sae->grads.ada_W_s, d, NULL)); /* dW_s = h1ᵀ ds */
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.ada_ds, n, d, 1.0f, 0.0f, sae->grads.ada_b_s));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, E, d, n, 1.0f, sae->acts.ada_h1, E, sae->acts.ada_dh, d, 0.0f,
                     sae->grads.ada_W_h, d, NULL)); /* dW_h = h1ᵀ dh */
    SAEC_TRY(SAEC_OP(dev, col_sum, sae->acts.ada_dh, n, d, 1.0f, 0.0f, sae->grads.ada_b_h));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n, E, d, 1.0f, sae->acts.ada_ds, d, sae->params.ada_W_s, d,
                     0.0f, sae->acts.ada_dh1, E, NULL)); /* ∂L/∂h1 = ds W_sᵀ + dh W_hᵀ */
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n, E, d, 1.0f, sae->acts.ada_dh, d, sae->params.ada_W_h, d,
                     1.0f, sae->acts.ada_dh1, E, NULL));
    SAEC_TRY(
        SAEC_OP(dev, silu_backward, sae->acts.ada_a1, sae->acts.ada_dh1, n * E, sae->acts.ada_dh1));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, E, E, n, 1.0f, sae->acts.emb, E, sae->acts.ada_dh1, E, 0.0f,
                     sae->grads.ada_W1, E, NULL)); /* dW1 = embᵀ ∂L/∂a1 */
    return SAEC_OP(dev, col_sum, sae->acts.ada_dh1, n, E, 1.0f, 0.0f, sae->grads.ada_b1);
}
