/* The sparse autoencoder and its variants (SPEC §1–5), composed from the ops of
 * include/saec/ops.h.
 *
 * Two code paths share everything but the codes:
 *  - sparse (topk): codes are fixed-k (idx, f) pairs [n, k]; decode and backward are gathers and
 *    scatters of rows, O(n·k·d); the encoder GEMM is the only dense O(n·m·d) work.
 *  - dense (batchtopk, relu, jumprelu, atm): codes are a dense [n, m] matrix, because their L0
 *    varies per row (and early in a ReLU run is a large share of m). Decode and backward are
 *    GEMMs. AuxK (topk, batchtopk) always works on sparse (idx, f) pairs.
 *
 * Memory is planned once (llm.c style): a parameter arena, a gradient arena and two Adam arenas
 * share one layout, defined by sae_tensor_layout(); activation buffers are sized for the batch.
 * The encoder is stored transposed, W_enc_t = W_encᵀ [m, d], so that every sparse op (decode,
 * dW_dec, dW_enc, the encoder-input gradient) is a gather or scatter of contiguous rows.
 *
 * The SAE's rooms:
 *   sae_layout.c       hyper-parameters, the parameter layout, allocation, initialisation
 *   sae_step.c         timesteps and schedule, forward, backward, optimizer step, statistics
 *   sae_adaln.c        the adaln mode's MLP (s, h) = MLP(emb(t))
 *   sae_separate.c     the separate mode's B SAEs (sae_separate.h)
 *   sae_distributed.c  data parallelism: ZeRO-1 sharding, gathers, cross-rank statistics
 *   sae_internal.h     what these files share
 */
#ifndef SAEC_SAE_H
#define SAEC_SAE_H

#include <stdint.h>

#include "saec/config.h"
#include "saec/device.h"

typedef struct saec_comm saec_comm; /* host/comm/comm.h */

/* Parameter tensors, in arena (and checkpoint) order. */
enum {
    SAE_W_ENC_T = 0,
    SAE_B_ENC,
    SAE_W_DEC,
    SAE_B_DEC,
    SAE_LOG_THETA, /* jumprelu */
    SAE_TS_SCALE,  /* timestep `bucket` mode: s_b [B, d] */
    SAE_TS_SHIFT,  /* timestep `bucket` mode: h_b [B, d] */
    SAE_ADA_W1,    /* timestep `adaln` mode: the MLP (s, h) = MLP(emb(t)), SPEC §6 */
    SAE_ADA_B1,
    SAE_ADA_W_S,
    SAE_ADA_B_S,
    SAE_ADA_W_H,
    SAE_ADA_B_H,
    SAE_N_TENSORS
};

/* sae_arch and sae_ts_mode, and their names, are in saec/config.h. */

/* Everything that shapes the model and its training rule (host values). */
typedef struct {
    sae_arch arch;
    int64_t d, m, k, aux_k; /* aux_k 0 = AuxK off (only topk and batchtopk use it) */
    float aux_alpha;
    int64_t dead_after; /* tokens without firing before a latent counts as dead */
    int64_t batch;      /* capacity of the activation buffers, tokens */
    float l1_coef, jumprelu_l0_coef, sparsity_warmup;
    float jumprelu_bandwidth, jumprelu_theta_init;
    float batchtopk_ema;
    int64_t batchtopk_threshold_start;
    float atm_beta, atm_weights[3], atm_c, atm_rate, atm_warmup;
    sae_ts_mode ts_mode;
    int64_t timestep_buckets; /* B > 0 in `bucket` and `separate` modes, else 0 */
    int64_t timesteps;        /* T: bucket b(t) = floor(t·B/T) */
    int64_t adaln_dim;        /* `adaln`: E = H, the embedding and hidden width */
    int optimizer_shards;     /* ZeRO-1: the Adam moments split over this many ranks (0, 1: whole);
                                 must equal the world size of sae_set_comm's communicator */
    uint64_t seed;
} sae_hparams;

/* The hyper-parameters of cfg for data of width d. aux_k 0 in cfg means d/2; AuxK is off for the
   variants without it and when aux_alpha is 0. */
void sae_hparams_from_config(const saec_config *cfg, int64_t d, int64_t dead_after, int64_t batch,
                             sae_hparams *out);

typedef struct {
    const char *name;
    int64_t rows, cols; /* cols = 1 for vectors */
    int64_t offset;     /* in floats, into each arena */
} sae_tensor;

/* Views into one arena, one per tensor of the layout (NULL when absent). The parameter and
   gradient arenas share the layout, so one type serves both (as llm.c's ParameterTensors):
   sae->params.W_dec is W_dec, sae->grads.W_dec is ∂loss/∂W_dec. */
typedef struct {
    float *W_enc_t, *b_enc, *W_dec, *b_dec; /* [m, d], [m], [m, d], [d] */
    float *log_theta;                       /* [m] jumprelu: θ = exp(log_theta) */
    float *ts_scale, *ts_shift;             /* [B, d] bucket mode: s_b, h_b (start at 0) */
    /* adaln mode: a1 = emb W1 + b1, h1 = SiLU(a1), s = h1 W_s + b_s, h = h1 W_h + b_h */
    float *ada_W1, *ada_b1;                       /* [E, H], [H] */
    float *ada_W_s, *ada_b_s, *ada_W_h, *ada_b_h; /* [H, d], [d] (start at 0: adaLN-zero) */
} sae_tensors;

/* The step's buffers, sized for `batch` tokens (as llm.c's ActivationTensors), and the constant
   tables the step reads. NULL when the configuration does not use them. */
typedef struct {
    float *x;             /* [batch, d] the batch, normalised in place to xn */
    float *xc;            /* [batch, d] xn − b_dec */
    float *u;             /* [batch, d] bucket, adaln: the modulated encoder input */
    float *enc_in;        /* the encoder input: u when modulated, else xc */
    int32_t *bucket;      /* [batch] bucket mode: each token's bucket (device) */
    int32_t *bucket_host; /* [batch] host staging for the buckets */
    /* adaln mode, [batch, ·]: each row is its own "bucket" of the modulation ops */
    float *emb;             /* [batch, E] sinusoidal embedding of the rows' t */
    float *emb_table;       /* [T, E] the embedding of every t, built once */
    int32_t *timestep;      /* [batch] the rows' t (device) */
    float *ada_a1, *ada_h1; /* [batch, H] */
    float *ada_s, *ada_h;   /* [batch, d] per-token scale and shift */
    float *ada_ds, *ada_dh; /* [batch, d] */
    float *ada_dh1;         /* [batch, H] ∂L/∂h1, then ∂L/∂a1 */
    int32_t *row_index;     /* [batch] 0, 1, 2, ... */
    /* separate mode (host/model/sae_separate.c): rows are sorted by bucket, and codes are local to the
       bucket's SAE: pre, fd, dfd are [batch, mb]; idx in [0, mb). */
    int32_t *perm, *inv;   /* [batch] sorted position → row, row → sorted position (device) */
    int32_t *offsets;      /* [B + 1] the buckets' first sorted rows (device) */
    int32_t *group_counts; /* [B] scratch of the grouping (device) */
    int32_t *offsets_host; /* [B + 1] the same offsets on the host (per-bucket op calls) */
    int32_t *perm_host;    /* [batch] */
    int64_t *group_tokens; /* [B] host: this training step's tokens per bucket over all ranks */
    float *xs;             /* [batch, d] xn sorted by bucket */
    float *xhat_s;         /* [batch, d] the reconstruction of xs (xhat gets it unsorted) */
    float *pre;            /* [batch, m] pre-activations */
    int32_t *idx;          /* [batch, k] */
    float *f;              /* [batch, k] codes: ReLU of the top-k pre-activations */
    float *fd;             /* [batch, m] dense codes (dense variants) */
    float *dfd;            /* [batch, m] ∂loss/∂f, then ∂loss/∂pre (dense variants) */
    float *xhat;           /* [batch, d] reconstruction */
    float *g;              /* [batch, d] ∂loss/∂x̂ */
    float *df;             /* [batch, k] ∂loss/∂pre at the kept entries */
    float *dxc;            /* [batch, d] ∂loss/∂xc */
    float *e;              /* [batch, d] residual xn − x̂ (AuxK) */
    float *e_mean;         /* [d] */
    int32_t *idx_aux;      /* [batch, aux_k] */
    float *f_aux;          /* [batch, aux_k] */
    float *ehat;           /* [batch, d] AuxK reconstruction of the residual */
    float *g_aux;          /* [batch, d] */
    float *df_aux;         /* [batch, aux_k] */
} sae_acts;

typedef struct {
    saec_dev *dev;
    sae_hparams hp;
    sae_arch arch;
    int dense;              /* codes are dense [n, m] (every variant but topk) */
    int constrained;        /* decoder rows are kept at unit norm (every variant but relu) */
    int64_t d, m, k, aux_k; /* aux_k 0 = AuxK off */
    int64_t batch;          /* capacity of the activation buffers, tokens */
    float aux_alpha;
    int64_t dead_after; /* tokens without firing before a latent counts as dead */
    /* separate mode: B SAEs of mb = m / B latents each; bucket g owns latents g·mb .. (g+1)·mb − 1
     */
    int64_t group_m;

    sae_tensor layout[SAE_N_TENSORS];
    int n_tensors; /* tensors 0 .. n_tensors−1 are laid out; an absent one has rows = 0 (log_theta
                      without jumprelu, the timestep tensors without buckets) */
    int64_t n_params;

    /* arenas: param_arena, grad_arena [arena_len >= n_params]; adam_m, adam_v [shard] */
    float *param_arena, *grad_arena, *adam_m, *adam_v;
    /* ZeRO-1 (hp.optimizer_shards = W > 1): the arena is cut into W shards of `shard` floats (the
       params and grads arenas padded to W·shard); this rank keeps the Adam moments of its shard
       alone, updates params[shard_lo .. shard_lo + shard_count) and all-gathers the rest. Not
       sharded: shard = shard_count = n_params, shard_lo = 0. */
    int64_t shard, shard_lo, shard_count, arena_len;
    sae_tensors params; /* views into param_arena */
    sae_tensors grads;  /* views into grad_arena */
    sae_acts acts;      /* the step's buffers */

    /* data constants, stored with the checkpoint */
    float scale;      /* s: xn = x / s has E‖xn‖² = d */
    float *data_mean; /* [d] μ of xn, for the nmse denominator */

    /* variant state (device), saved with the checkpoint */
    float *bt_threshold;  /* [1] batchtopk: inference threshold θ (0 = not yet tracked) */
    float *bt_batch_thr;  /* [1] batchtopk: smallest value kept in the last batch */
    float *atm_stats;     /* [3, m] atm: EMAs of magnitude a, frequency q, contribution r */
    float *atm_keep;      /* [m] atm: this step's mask (1 kept, 0 masked) */
    int bt_threshold_set; /* host: bt_threshold holds a tracked value */

    /* this step's schedule (host values, set by sae_begin_step) */
    float sparsity_coef; /* λ after warm-up (relu, atm: l1_coef; jumprelu: jumprelu_l0_coef) */
    int atm_masking;     /* masking has started */
    int bt_track;        /* batchtopk: update the threshold EMA this step (2: first update) */
    int64_t step;        /* 0-based step, the counter of the ATM mask draws */
    int64_t last_n;      /* tokens of the last forward (this rank's) */
    int last_train;      /* the last forward was a training one (its statistics are global) */

    /* data parallelism: every rank holds the same parameters and a batch of its own */
    saec_comm *comm; /* NULL: a single process */
    int world;       /* ranks (1 without comm) */
    int distributed; /* the collectives run (MPI or NCCL; a world of one too, when forced) */

    /* latent bookkeeping */
    int64_t *since_fired; /* [m] tokens since the latent last fired */
    uint8_t *dead_mask;   /* [m] */

    /* device scalars, read by the host only at logging steps */
    double *stats;     /* [SAEC_STAT_COUNT] main reconstruction */
    double *aux_stats; /* [SAEC_STAT_COUNT] AuxK */
    double *grad_sumsq;
    double *dead_count;
    double *l0_count;      /* Σ nonzero codes in the batch */
    double *penalty;       /* relu, atm: this step's L1 penalty value */
    double *group_penalty; /* [B] separate mode, relu, atm: each bucket's L1 penalty (summed when
                              read) */
} saec_sae;

/* Plan and allocate everything (zeroed). */
int sae_create(saec_dev *dev, const sae_hparams *hp, saec_sae **out);
void sae_destroy(saec_sae *sae);

/* Initialise from a host sample of raw rows [n, d] (SPEC §1): s from E‖x‖², μ, b_dec = geometric
   median, W_enc Kaiming-uniform from `seed`, W_dec = W_encᵀ with unit rows, b_enc = 0,
   jumprelu θ = jumprelu_theta_init. */
int sae_init(saec_sae *sae, const float *sample, int64_t n, int median_iters, uint64_t seed);

/* The bucket of timestep t in [0, T): b(t) = floor(t·B/T) (SPEC §6). */
static inline int32_t sae_timestep_bucket(int32_t t, int64_t B, int64_t T) {
    return (int32_t)((int64_t)t * B / T);
}

/* bucket, adaln: the timesteps [n] of the rows about to be forwarded (host values in [0, T)). */
int sae_set_timesteps(saec_sae *sae, const int32_t *timesteps, int64_t n);

/* Set the schedule of 0-based training step `step` of `total` (penalty warm-up, ATM masking,
   BatchTopK threshold tracking). Call before each training forward. */
void sae_begin_step(saec_sae *sae, int64_t step, int64_t total);

/* Dead-latent bookkeeping of the last forward's codes (see the track_fired op). */
int sae_track_fired(saec_sae *sae, int64_t n, int64_t *since_fired, int64_t *fire_count,
                    int64_t dead_after, uint8_t *dead_mask, double *dead_count);

/* Width of the host code buffers sae_download_codes needs: k (topk) or m (dense). */
int64_t sae_code_capacity(const saec_sae *sae);

/* The last forward's codes of n rows as host (idx, f) [n, kk] pairs, kk <= capacity the widest
   row (dense codes are compacted; empty slots idx −1). idx, f hold n·capacity entries. */
int sae_download_codes(saec_sae *sae, int64_t n, int32_t *idx, float *f, int64_t *kk);

/* Train data-parallel over the ranks of `comm` (NULL: alone). A training step then normalises its
   losses over the global batch (n rows on each of the world's ranks), reduces the statistics that
   steer it (SST, the AuxK residual mean, fired latents, the BatchTopK threshold, ATM statistics)
   and sums the gradients across ranks, so that every rank takes the step one process would take
   on the concatenated batch. Every rank must call forward, backward and sae_read_stats alike. */
int sae_set_comm(saec_sae *sae, saec_comm *comm);

/* ZeRO-1 checkpoints hold the whole optimizer state. sae_gather_optimizer (collective: every rank
   calls it) gives rank 0 host copies of both Adam moments over the whole arena [n_params]
   (malloc'd, the caller frees) and the other ranks NULL; not sharded, everyone gets NULL (read
   adam_m, adam_v directly). sae_upload_optimizer takes whole host moments [n_params] and keeps
   this rank's part. */
int sae_gather_optimizer(saec_sae *sae, float **adam_m, float **adam_v);
int sae_upload_optimizer(saec_sae *sae, const float *adam_m, const float *adam_v);

/* Forward on the n raw rows already uploaded to sae->acts.x (n <= batch): normalises x in place,
   encodes, decodes, computes the loss statistics, and, when `train` is set, ∂loss/∂x̂, the dead
   latent tracking and the AuxK terms. */
int sae_forward(saec_sae *sae, int64_t n, int train);

/* The one door for rows coming from the host (train, eval, export): uploads rows [n, d] to the
   SAE's batch buffer, sets the rows' timesteps [n] when given (a no-op in timestep mode none),
   and runs sae_forward. */
int sae_forward_rows(saec_sae *sae, const float *rows, const int32_t *timesteps, int64_t n,
                     int train);

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
    double penalty; /* the variant's sparsity term in the loss (0 for topk, batchtopk) */
} sae_step_stats;

/* After a training step with a comm the statistics are the global batch's, and the call is
   collective (every rank makes it); after an evaluation forward they are this rank's. */
int sae_read_stats(saec_sae *sae, sae_step_stats *out);

/* The loss of the last step from its statistics: nmse + aux_alpha * aux nmse + penalty. */
double sae_loss(const saec_sae *sae, const sae_step_stats *st);

#endif
