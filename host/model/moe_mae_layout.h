/* The MoE-MAE model's shape and parameter layout (SPEC §7): the hyper-parameters with the
 * reference's defaults, and one walker that names every parameter tensor in arena (and
 * checkpoint) order, with its shape, its component and how it is initialised.
 *
 * This is the layout only (issue 16's first piece): the model's step, data, training and
 * probes are not built yet. The walker is the one definition of the layout: counts, offsets and
 * (later) allocation and checkpoints all come from it, as sae_layout.c's does for the SAE.
 * The reference's counts, 2,537,562 parameters of which the encoder holds 2,366,798, are the
 * first check of it (tests/test_moe_mae_layout.c).
 */
#ifndef SAEC_MOE_MAE_LAYOUT_H
#define SAEC_MOE_MAE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

enum { MOE_MAE_MAX_BLOCKS = 32 };

/* One transformer stack (the encoder's or the decoder's). */
typedef struct {
    int64_t dim;                        /* token width */
    int depth;                          /* blocks */
    int heads, kv_groups, head_dim;     /* grouped-query attention: head h reads group h mod G */
    int experts[MOE_MAE_MAX_BLOCKS];    /* experts per block */
    int64_t hidden[MOE_MAE_MAX_BLOCKS]; /* the experts' hidden width per block */
} moe_mae_stack;

typedef struct {
    int bands;         /* 7: Landsat SR_B1..SR_B7 */
    int64_t image;     /* 40: the tile's side after cropping 41×41 */
    int64_t patch;     /* 4: patch side; (image/patch)² = 100 patches */
    int meta_tokens;   /* 4: week, hour, lat, lon, each (sin, cos) → one token */
    int top_k;         /* 2 */
    moe_mae_stack enc; /* 144 wide, 15 blocks, 8 heads over 4 groups of 18 */
    moe_mae_stack dec; /* 108 wide, 2 blocks, 6 heads over 3 groups of 18 */
} moe_mae_hparams;

/* SPEC §7's model: experts 3,3,3,3,3,4,4,4,4,4,5,5,5,5,5 and hidden widths
   int(144 − 72·i/14) in the encoder; 3 experts of hidden 54 in the decoder. */
moe_mae_hparams moe_mae_hparams_default(void);

/* Patches per image and tokens per sequence (metadata tokens, CLS, patches). */
int64_t moe_mae_patches(const moe_mae_hparams *h);
int64_t moe_mae_tokens(const moe_mae_hparams *h);

typedef enum {
    MOE_INIT_TRUNC_NORMAL, /* truncated normal, std 0.02: position embeddings, CLS, mask token */
    MOE_INIT_LINEAR,       /* a Linear's weight [in, out]: PyTorch's default (uniform ±1/√in) */
    MOE_INIT_LINEAR_BIAS,  /* a Linear's bias: uniform ±1/√in of its layer */
    MOE_INIT_ONES,         /* LayerNorm γ */
    MOE_INIT_ZEROS,        /* LayerNorm β */
} moe_mae_init;

/* One parameter tensor: its name ("enc.3.attn.q.weight"), the component it is counted under
   ("enc.patch_embed", "enc.block.3", "dec.head", …), its shape [rows, cols] (a vector: rows
   1), its initialisation, and fan_in (the layer's input width, for the Linear inits). */
typedef struct {
    char name[128];
    char component[64];
    int64_t rows, cols;
    moe_mae_init init;
    int64_t fan_in;
    int encoder; /* counted in the encoder's total */
} moe_mae_tensor;

/* Calls visit(t, ctx) for every parameter tensor in arena order; returns how many. */
int moe_mae_layout(const moe_mae_hparams *h, void (*visit)(const moe_mae_tensor *t, void *arg),
                   void *arg);

/* Parameters in all, and in the encoder. */
int64_t moe_mae_param_count(const moe_mae_hparams *h, int64_t *encoder);

#endif
