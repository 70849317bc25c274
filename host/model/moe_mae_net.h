/* The MoE-MAE network (SPEC §7) on a device, composed only from the engine's ops: its parameters
 * (one arena in moe_mae_layout.h's order), the training forward and backward of a batch, the
 * AdamW step, and the inference encoder for embeddings.
 *
 * Randomness is counter-based (include/saec/hash.h) and indexed by global sample and token, so
 * the same step on one rank or split over several draws the same masks, router noise and dropout,
 * and benchmarks/peers/moe_mae_torch.py can draw them too. For step s (0-based):
 *   mask:    patch q of global sample g: saec_hash_uniform(seed, SAEC_RNG_PATCH_MASK,
 *            (s << 40) + g·N + q), the n_keep smallest kept;
 *   block b (encoder 0 .. depth−1, then the decoder's): base = (s << 40) + (b << 34);
 *   router:  token t, expert e: saec_hash_normal(seed, SAEC_RNG_ROUTER_NOISE,
 *            base + 2·(t·E + e)), t = g·L + j the global token (L = the stack's sequence length);
 *   dropout: slot j (0 = the larger gate) of token t, element c: saec_hash_uniform(seed,
 *            SAEC_RNG_DROPOUT, base + (t·k + j)·D + c) >= p keeps it.
 */
#ifndef SAEC_MOE_MAE_NET_H
#define SAEC_MOE_MAE_NET_H

#include <stdint.h>

#include "moe_mae_layout.h"
#include "saec/device.h"
#include "saec/ops.h"

typedef struct saec_comm saec_comm;

typedef struct {
    moe_mae_hparams h;
    double mask_ratio;     /* 0.75 of the patches hidden */
    double dropout;        /* 0.1 on each expert's output (training) */
    double balance_cv;     /* 0.01: the weight of each CV term of a block's balance loss */
    double balance_weight; /* 0.5: the sum of the encoder's balance losses in the loss */
    double visible_weight; /* 0.1: the visible patches' reconstruction term */
    double ln_eps;         /* 1e-5 */
    int use_metadata;      /* 0: every metadata input is zero (the ablation) */
    uint64_t seed;
} moe_mae_cfg;

/* The last step's numbers (global over the ranks), read back at logging steps. */
typedef struct {
    double loss, masked, visible, balance; /* balance: Σ of the encoder blocks' (unweighted) */
    double grad_norm;
    int n_blocks;
    double load[MOE_MAE_MAX_BLOCKS][8]; /* fraction of the items routed to each expert */
    int experts[MOE_MAE_MAX_BLOCKS];
} moe_mae_stats;

typedef struct moe_mae_net moe_mae_net;

/* A network for batches of up to max_batch tiles of bands × side × side on dev; comm (NULL:
   alone) sums the gradients and the routers' statistics over the ranks. */
int moe_mae_net_create(saec_dev *dev, saec_comm *comm, const moe_mae_cfg *cfg, int64_t max_batch,
                       moe_mae_net **out);
void moe_mae_net_destroy(moe_mae_net *net);

int64_t moe_mae_net_n_params(const moe_mae_net *net);
saec_dev *moe_mae_net_dev(moe_mae_net *net);
const moe_mae_hparams *moe_mae_net_hparams(const moe_mae_net *net);
float *moe_mae_net_params(moe_mae_net *net); /* device arena [n_params] */
float *moe_mae_net_grads(moe_mae_net *net);  /* device arena [n_params] */
float *moe_mae_net_adam(moe_mae_net *net, int which); /* 0: first moment, 1: second */

/* Per-band z-score statistics (host, [bands]); set before the first step. */
void moe_mae_net_set_band_stats(moe_mae_net *net, const float *mean, const float *std);
const float *moe_mae_net_band_mean(const moe_mae_net *net);
const float *moe_mae_net_band_std(const moe_mae_net *net);

/* SPEC §7's initialisation, drawn from (seed, SAEC_RNG_INIT_WEIGHTS). */
int moe_mae_net_init_params(moe_mae_net *net, uint64_t seed);

/* One training forward and backward of n tiles (host rows [n, bands·side·side + 4], raw pixels
   then metadata), as step `step`, whose first tile is global sample first_sample: the gradient
   arena then holds this rank's share (summed over the ranks when there are several). */
int moe_mae_net_forward_backward(moe_mae_net *net, const float *rows, int64_t n, int64_t step,
                                 int64_t first_sample);
/* AdamW on the arena with the global gradient norm clipped. */
int moe_mae_net_adamw(moe_mae_net *net, saec_adamw_args args);
/* The last step's statistics (synchronises). */
int moe_mae_net_read_stats(moe_mae_net *net, moe_mae_stats *st);

/* The frozen encoder on all tokens (no masking, clean router, no dropout, the fused MoE): emb
   [n, enc dim] (host) = the mean over the tokens of the last block's output, before the final
   LayerNorm. rows as above; any n (processed in batches of max_batch). load (NULL: not wanted)
   [n, enc depth, moe_mae_net_max_experts] receives each tile's routing per encoder block: the
   share of its tokens' top-k slots that went to each expert (0 past a block's experts). */
int moe_mae_net_embed(moe_mae_net *net, const float *rows, int64_t n, float *emb, float *load);
/* The most experts of any encoder block. */
int moe_mae_net_max_experts(const moe_mae_net *net);

/* The row width the net reads: bands·side·side + 4. */
int64_t moe_mae_row_width(const moe_mae_hparams *h);

#endif
