/* The MoE-MAE network from the engine's ops (moe_mae_net.h). One pre-LN block is
 *
 *   x1 = x + Attn(LN1(x)),  out = x1 + Σ_slots gate·dropout(W2(SiLU(W_e xn2) ⊙ V xn2))
 *
 * with the items (token, expert slot) dispatched to expert-contiguous rows for the W_e GEMMs and
 * the experts' outputs brought back to item order before dropout, so that a dropout draw belongs
 * to a (global token, slot) and not to a row position that depends on the rank's batch.
 * tests/test_gradcheck_moe_block.c checks this composition against finite differences;
 * tests/test_moe_mae_net.c checks the whole network.
 *
 * The token grid of a batch is [n·T, D] with T = 4 metadata tokens, CLS, N patches (row
 * b·T + j). It is built by one scatter of S = [patch tokens (n·N rows) | metadata tokens
 * (4·n rows, token-major)] onto the grid (CLS rows left 0) and one broadcast add of the position
 * embedding with CLS folded into its row 4; the backward is the matching gather and a column
 * sum over the samples.
 */
#include "moe_mae_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "rng.h"
#include "saec/hash.h"

#define MAX_TENSORS 1024

/* One block's parameter tensors, offsets into the arena (walker order, 22 tensors). */
enum {
    P_LN1_W,
    P_LN1_B,
    P_Q_W,
    P_Q_B,
    P_K_W,
    P_K_B,
    P_V_W,
    P_V_B,
    P_O_W,
    P_O_B,
    P_LN2_W,
    P_LN2_B,
    P_GATE_W,
    P_GATE_B,
    P_NOISE_W,
    P_NOISE_B,
    P_EX_W,
    P_EX_B,
    P_MV_W,
    P_MV_B,
    P_W2_W,
    P_W2_B,
    P_BLOCK
};

/* What a block's backward needs of its forward. */
typedef struct {
    float *x_in;                 /* [NT, D] the block's input */
    float *xn1, *mean1, *rstd1;  /* [NT, D], [NT], [NT] */
    float *qkv;                  /* [NT, QKV] q | k | v */
    float *ao;                   /* [NT, A] attention output (heads concatenated) */
    float *lse;                  /* [B, Hq, L] */
    float *x1;                   /* [NT, D] after the attention residual */
    float *xn2, *mean2, *rstd2;  /* [NT, D], [NT], [NT] */
    float *clean, *raw;          /* [NT, E] router logits */
    int32_t *idx;                /* [NT, k] */
    float *gates;                /* [NT, k] */
    double *stats;               /* [4E] importance | load | f | P */
    double *loss;                /* [5] */
    int32_t *counts, *offsets;   /* [E], [E + 1] */
    int32_t *perm, *inv;         /* [ROWS] sorted row → item, item → sorted row */
    float *a;                    /* [ROWS, H] W_e xs + b_e (sorted) */
    float *vx;                   /* [NT, H] V xn2 + b_V */
    float *yi;                   /* [ROWS, D] the experts' outputs after dropout, item order */
    int64_t p[P_BLOCK];          /* parameter offsets */
    int E, number;               /* experts; the block's number in the counters */
    int64_t H;                   /* hidden width */
} block;

typedef struct {
    const moe_mae_stack *s;
    int64_t L;       /* tokens per sequence in training */
    int64_t nt_max;  /* tokens of a full batch */
    block blocks[MOE_MAE_MAX_BLOCKS];
    float *out;      /* [NT, D] the last block's output */
} stack;

struct moe_mae_net {
    saec_dev *dev;
    saec_comm *comm;
    int world;
    moe_mae_cfg cfg;
    int64_t max_batch, n_params;
    int64_t N, T, n_keep, pv; /* patches, tokens, kept patches, values per patch */
    float *params, *grads, *adam_m, *adam_v;
    int n_tensors;
    moe_mae_tensor tensors[MAX_TENSORS];
    int64_t offset[MAX_TENSORS];
    /* the embedding */
    int64_t p_pe_w, p_pe_b, p_meta_w[8], p_meta_b[8], p_cls, p_pos, p_enorm_w, p_enorm_b;
    int64_t p_dembed_w, p_dembed_b, p_mask, p_dpos, p_dnorm_w, p_dnorm_b, p_head_w, p_head_b;
    stack enc, dec;
    /* host staging */
    float *img_host;  /* [B, C, H, W] z-scored */
    float *meta_host; /* [M, B, 2] (sin, cos) */
    float band_mean[16], band_std[16];
    /* per batch: inputs and static indices */
    float *img, *metain, *patches; /* [B, C, H, W], [M, B, 2], [B·N, pv] */
    float *S;                      /* [B·(N + M), De] patch tokens | metadata tokens */
    float *grid;                   /* [B·T, De] */
    float *posb;                   /* [T, De] position embedding with CLS at row 4 */
    float *ones;                   /* [B] */
    int32_t *ginv, *gidx;          /* [B·T] grid row → S row or −1; [B·(N + M)] S row → grid */
    int32_t *pidx, *pinv;          /* [B·N] patch → grid row; [B·T] grid row → patch or −1 */
    int32_t *iota;                 /* [ROWS max] identity (item-order combines) */
    int32_t *keep, *perm_e, *inv_e; /* [B, n_keep], [B·Le], [B·T] */
    uint8_t *mask;                  /* [B·N] 1 = hidden */
    int64_t index_batch;            /* the batch size ginv … were built for */
    /* encoder / decoder glue */
    float *xf, *xf_mean, *xf_rstd; /* [B·Le, De] after enc.norm */
    float *y0;                     /* [B·Le + 1, Dd] decoder embedding | mask token */
    float *dposb;                  /* [T, Dd] decoder position embedding, prefix rows 0 */
    float *dn, *dn_mean, *dn_rstd; /* [B·T, Dd] after dec.norm */
    float *dp, *pred, *dpred;      /* [B·N, Dd], [B·N, pv], [B·N, pv] */
    double *ploss;                 /* [3] patch_loss */
    double *gsumsq;                /* [1] */
    /* scratch: the largest of both stacks */
    float *xs, *vs, *hs, *ys, *dyi, *dys, *dhs, *da, *dvs, *dxs; /* [ROWS, ·] */
    float *dvx, *dxn2, *dclean, *draw, *dx1, *dao, *dqkv, *dxn1, *dx_a, *dx_b, *dbias;
    float *gsum; /* [B·T·max D] column sums over samples */
    float *grid_d; /* [B·T, max D] gradient on a grid */
    float *dgates;
};

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

int64_t moe_mae_row_width(const moe_mae_hparams *h) {
    return (int64_t)h->bands * h->image * h->image + 4;
}

/* ---- layout → offsets ---- */

static void record_tensor(const moe_mae_tensor *t, void *ctx) {
    moe_mae_net *net = ctx;
    if (net->n_tensors >= MAX_TENSORS) return;
    net->tensors[net->n_tensors] = *t;
    net->offset[net->n_tensors] = net->n_params;
    net->n_tensors++;
    net->n_params += t->rows * t->cols;
}

static int find_tensor(const moe_mae_net *net, const char *name, int64_t *off) {
    for (int i = 0; i < net->n_tensors; i++)
        if (!strcmp(net->tensors[i].name, name)) {
            *off = net->offset[i];
            return i;
        }
    return saec_fail(SAEC_ERR_OTHER, NULL, "MoE-MAE layout: no tensor '%s'", name);
}

static int find_block(moe_mae_net *net, const char *stack_name, int i, block *b) {
    static const char *const names[P_BLOCK] = {
        "ln1.weight",         "ln1.bias",           "attn.q.weight",     "attn.q.bias",
        "attn.k.weight",      "attn.k.bias",        "attn.v.weight",     "attn.v.bias",
        "attn.out.weight",    "attn.out.bias",      "ln2.weight",        "ln2.bias",
        "router.gate.weight", "router.gate.bias",   "router.noise.weight", "router.noise.bias",
        "experts.weight",     "experts.bias",       "moe.v.weight",      "moe.v.bias",
        "moe.w2.weight",      "moe.w2.bias"};
    char name[128];
    for (int t = 0; t < P_BLOCK; t++) {
        snprintf(name, sizeof name, "%s.%d.%s", stack_name, i, names[t]);
        if (find_tensor(net, name, &b->p[t]) < 0) return SAEC_ERR_OTHER;
    }
    return SAEC_OK;
}

/* ---- allocation ---- */

static int dalloc(moe_mae_net *net, void **p, int64_t bytes) {
    return net->dev->ops->alloc(net->dev, (size_t)(bytes > 0 ? bytes : 4), p);
}
#define ALLOC(ptr, count) SAEC_TRY(dalloc(net, (void **)&(ptr), (int64_t)(count) * (int64_t)sizeof *(ptr)))

static int alloc_stack(moe_mae_net *net, stack *st, const moe_mae_stack *s, int64_t L,
                       int first_number) {
    st->s = s;
    st->L = L;
    st->nt_max = net->max_batch * L;
    const int64_t NT = st->nt_max, D = s->dim, K = net->cfg.h.top_k, ROWS = NT * K;
    const int64_t A = (int64_t)s->heads * s->head_dim, KV = (int64_t)s->kv_groups * s->head_dim;
    for (int i = 0; i < s->depth; i++) {
        block *b = &st->blocks[i];
        b->E = s->experts[i], b->H = s->hidden[i], b->number = first_number + i;
        const int64_t E = b->E, H = b->H;
        ALLOC(b->x_in, NT * D);
        ALLOC(b->xn1, NT * D);
        ALLOC(b->mean1, NT);
        ALLOC(b->rstd1, NT);
        ALLOC(b->qkv, NT * (A + 2 * KV));
        ALLOC(b->ao, NT * A);
        ALLOC(b->lse, NT * s->heads);
        ALLOC(b->x1, NT * D);
        ALLOC(b->xn2, NT * D);
        ALLOC(b->mean2, NT);
        ALLOC(b->rstd2, NT);
        ALLOC(b->clean, NT * E);
        ALLOC(b->raw, NT * E);
        ALLOC(b->idx, ROWS);
        ALLOC(b->gates, ROWS);
        ALLOC(b->stats, 4 * E);
        ALLOC(b->loss, 5);
        ALLOC(b->counts, E);
        ALLOC(b->offsets, E + 1);
        ALLOC(b->perm, ROWS);
        ALLOC(b->inv, ROWS);
        ALLOC(b->a, ROWS * H);
        ALLOC(b->vx, NT * H);
        ALLOC(b->yi, ROWS * D);
    }
    ALLOC(st->out, NT * D);
    return SAEC_OK;
}

static void free_stack(moe_mae_net *net, stack *st) {
    saec_dev *dev = net->dev;
    if (!st->s) return;
    for (int i = 0; i < st->s->depth; i++) {
        block *b = &st->blocks[i];
        void *bufs[] = {b->x_in,  b->xn1,   b->mean1, b->rstd1, b->qkv,    b->ao,   b->lse,
                        b->x1,    b->xn2,   b->mean2, b->rstd2, b->clean,  b->raw,  b->idx,
                        b->gates, b->stats, b->loss,  b->counts, b->offsets, b->perm, b->inv,
                        b->a,     b->vx,    b->yi};
        for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++)
            if (bufs[j]) dev->ops->free(dev, bufs[j]);
    }
    if (st->out) dev->ops->free(dev, st->out);
}

void moe_mae_net_destroy(moe_mae_net *net) {
    if (!net) return;
    saec_dev *dev = net->dev;
    free_stack(net, &net->enc);
    free_stack(net, &net->dec);
    void *bufs[] = {net->params, net->grads,  net->adam_m,  net->adam_v, net->img,    net->metain,
                    net->patches, net->S,     net->grid,    net->posb,   net->ones,   net->ginv,
                    net->gidx,   net->pidx,   net->pinv,    net->iota,   net->keep,   net->perm_e,
                    net->inv_e,  net->mask,   net->xf,      net->xf_mean, net->xf_rstd, net->y0,
                    net->dposb,  net->dn,     net->dn_mean, net->dn_rstd, net->dp,    net->pred,
                    net->dpred,  net->ploss,  net->gsumsq,  net->xs,     net->vs,     net->hs,
                    net->ys,     net->dyi,    net->dys,     net->dhs,    net->da,     net->dvs,
                    net->dxs,    net->dvx,    net->dxn2,    net->dclean, net->draw,   net->dx1,
                    net->dao,    net->dqkv,   net->dxn1,    net->dx_a,   net->dx_b,   net->dbias,
                    net->gsum,   net->grid_d, net->dgates};
    for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++)
        if (bufs[j]) dev->ops->free(dev, bufs[j]);
    free(net->img_host);
    free(net->meta_host);
    free(net);
}

int moe_mae_net_create(saec_dev *dev, saec_comm *comm, const moe_mae_cfg *cfg, int64_t max_batch,
                       moe_mae_net **out) {
    *out = NULL;
    const moe_mae_hparams *h = &cfg->h;
    if (h->image % h->patch != 0 || h->bands > 16 || h->meta_tokens > 8 || h->meta_tokens < 0 ||
        h->top_k < 1 || max_batch < 1)
        return saec_fail(SAEC_ERR_USAGE, "check the moe_* configuration keys",
                         "MoE-MAE: image %lld must be a multiple of patch %lld, at most 16 bands "
                         "and 8 metadata tokens",
                         (long long)h->image, (long long)h->patch);
    for (int part = 0; part < 2; part++) {
        const moe_mae_stack *s = part ? &h->dec : &h->enc;
        if (s->heads % s->kv_groups != 0 || s->head_dim > 64 || s->depth > MOE_MAE_MAX_BLOCKS)
            return saec_fail(SAEC_ERR_USAGE, "check the moe_* configuration keys",
                             "MoE-MAE %s: heads %d must be a multiple of kv_groups %d, head_dim "
                             "at most 64, depth at most %d",
                             part ? "decoder" : "encoder", s->heads, s->kv_groups,
                             MOE_MAE_MAX_BLOCKS);
        for (int i = 0; i < s->depth; i++)
            if (s->experts[i] < h->top_k || s->experts[i] > 8)
                return saec_fail(SAEC_ERR_USAGE, "use top_k <= experts <= 8",
                                 "MoE-MAE %s block %d: %d experts with top-%d routing",
                                 part ? "decoder" : "encoder", i, s->experts[i], h->top_k);
    }
    moe_mae_net *net = calloc(1, sizeof *net);
    if (!net) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the MoE-MAE");
    net->dev = dev, net->comm = comm, net->world = saec_comm_size(comm);
    net->cfg = *cfg, net->max_batch = max_batch;
    net->N = moe_mae_patches(h);
    net->T = moe_mae_tokens(h);
    net->n_keep = net->N - (int64_t)llround(cfg->mask_ratio * (double)net->N);
    if (net->n_keep < 1) net->n_keep = 1;
    net->pv = (int64_t)h->bands * h->patch * h->patch;
    for (int c = 0; c < 16; c++)
        net->band_mean[c] = 0, net->band_std[c] = 1;
    moe_mae_layout(h, record_tensor, net);
    int rc = net->n_tensors < MAX_TENSORS ? SAEC_OK
                                          : saec_fail(SAEC_ERR_OTHER, NULL, "MoE-MAE: too many tensors");
    *out = net;
    if (rc != SAEC_OK) goto fail;

    /* the embedding's and the heads' tensors, then each block's */
    static const char *const meta[] = {"week", "hour", "lat", "lon"};
    char name[96];
    int64_t *const fixed[] = {&net->p_pe_w,      &net->p_pe_b,      &net->p_cls,
                              &net->p_pos,       &net->p_enorm_w,   &net->p_enorm_b,
                              &net->p_dembed_w,  &net->p_dembed_b,  &net->p_mask,
                              &net->p_dpos,      &net->p_dnorm_w,   &net->p_dnorm_b,
                              &net->p_head_w,    &net->p_head_b};
    static const char *const fixed_names[] = {
        "enc.patch_embed.weight", "enc.patch_embed.bias", "enc.cls",        "enc.pos_embed",
        "enc.norm.weight",        "enc.norm.bias",        "dec.embed.weight", "dec.embed.bias",
        "dec.mask_token",         "dec.pos_embed",        "dec.norm.weight", "dec.norm.bias",
        "dec.head.weight",        "dec.head.bias"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && rc == SAEC_OK; i++)
        if (find_tensor(net, fixed_names[i], fixed[i]) < 0) rc = SAEC_ERR_OTHER;
    for (int m = 0; m < h->meta_tokens && rc == SAEC_OK; m++) {
        if (m < 4)
            snprintf(name, sizeof name, "enc.meta.%s.weight", meta[m]);
        else
            snprintf(name, sizeof name, "enc.meta.%d.weight", m);
        if (find_tensor(net, name, &net->p_meta_w[m]) < 0) rc = SAEC_ERR_OTHER;
        net->p_meta_b[m] = net->p_meta_w[m] + 2 * h->enc.dim; /* the bias follows its weight */
    }
    for (int i = 0; i < h->enc.depth && rc == SAEC_OK; i++)
        rc = find_block(net, "enc", i, &net->enc.blocks[i]);
    for (int i = 0; i < h->dec.depth && rc == SAEC_OK; i++)
        rc = find_block(net, "dec", i, &net->dec.blocks[i]);
    if (rc != SAEC_OK) goto fail;

    const int64_t B = max_batch, N = net->N, T = net->T, M = h->meta_tokens, pv = net->pv;
    const int64_t De = h->enc.dim, Dd = h->dec.dim, Le = M + 1 + net->n_keep;
    const int64_t C = h->bands, HW = h->image * h->image, K = h->top_k;
#undef ALLOC
#define ALLOC(ptr, count)                                                                         \
    do {                                                                                           \
        rc = dalloc(net, (void **)&(ptr), (int64_t)(count) * (int64_t)sizeof *(ptr));              \
        if (rc != SAEC_OK) goto fail;                                                              \
    } while (0)
    ALLOC(net->params, net->n_params);
    ALLOC(net->grads, net->n_params);
    ALLOC(net->adam_m, net->n_params);
    ALLOC(net->adam_v, net->n_params);
    rc = alloc_stack(net, &net->enc, &h->enc, Le, 0);
    if (rc == SAEC_OK) rc = alloc_stack(net, &net->dec, &h->dec, T, h->enc.depth);
    if (rc != SAEC_OK) goto fail;
    ALLOC(net->img, B * C * HW);
    ALLOC(net->metain, M * B * 2 + 1);
    ALLOC(net->patches, B * N * pv);
    ALLOC(net->S, B * (N + M) * De);
    ALLOC(net->grid, B * T * De);
    ALLOC(net->posb, T * De);
    ALLOC(net->ones, B);
    ALLOC(net->ginv, B * T);
    ALLOC(net->gidx, B * (N + M));
    ALLOC(net->pidx, B * N);
    ALLOC(net->pinv, B * T);
    ALLOC(net->keep, B * net->n_keep);
    ALLOC(net->perm_e, B * Le);
    ALLOC(net->inv_e, B * T);
    ALLOC(net->mask, B * N);
    ALLOC(net->xf, (B * Le + 1) * De);
    ALLOC(net->xf_mean, B * Le);
    ALLOC(net->xf_rstd, B * Le);
    ALLOC(net->y0, (B * Le + 1) * Dd);
    ALLOC(net->dposb, T * Dd);
    ALLOC(net->dn, B * T * Dd);
    ALLOC(net->dn_mean, B * T);
    ALLOC(net->dn_rstd, B * T);
    ALLOC(net->dp, B * N * Dd);
    ALLOC(net->pred, B * N * pv);
    ALLOC(net->dpred, B * N * pv);
    ALLOC(net->ploss, 3);
    ALLOC(net->gsumsq, 1);
    /* scratch for either stack (the inference encoder runs within the training sizes) */
    int64_t rows_d = 0, rows_h = 0, nt_d = 0, nt_h = 0, nt_e = 0, nt_qkv = 0, nt_a = 0, qkv = 0;
    for (int part = 0; part < 2; part++) {
        const stack *st = part ? &net->dec : &net->enc;
        const moe_mae_stack *s = st->s;
        const int64_t NT = st->nt_max, A = (int64_t)s->heads * s->head_dim;
        const int64_t QKV = A + 2 * (int64_t)s->kv_groups * s->head_dim;
        int64_t Hmax = 0, Emax = 0;
        for (int i = 0; i < s->depth; i++)
            Hmax = max64(Hmax, s->hidden[i]), Emax = max64(Emax, s->experts[i]);
        rows_d = max64(rows_d, NT * K * s->dim), rows_h = max64(rows_h, NT * K * Hmax);
        nt_d = max64(nt_d, NT * s->dim), nt_h = max64(nt_h, NT * Hmax), nt_e = max64(nt_e, NT * Emax);
        nt_qkv = max64(nt_qkv, NT * QKV), nt_a = max64(nt_a, NT * A), qkv = max64(qkv, QKV);
    }
    const int64_t rows_max = net->dec.nt_max * K > net->enc.nt_max * K ? net->dec.nt_max * K
                                                                        : net->enc.nt_max * K;
    ALLOC(net->iota, rows_max);
    ALLOC(net->xs, rows_d);
    ALLOC(net->vs, rows_h);
    ALLOC(net->hs, rows_h);
    ALLOC(net->ys, rows_d);
    ALLOC(net->dyi, rows_d);
    ALLOC(net->dys, rows_d);
    ALLOC(net->dhs, rows_h);
    ALLOC(net->da, rows_h);
    ALLOC(net->dvs, rows_h);
    ALLOC(net->dxs, rows_d);
    ALLOC(net->dgates, rows_max);
    ALLOC(net->dvx, nt_h);
    ALLOC(net->dxn2, nt_d);
    ALLOC(net->dclean, nt_e);
    ALLOC(net->draw, nt_e);
    ALLOC(net->dx1, nt_d);
    ALLOC(net->dao, nt_a);
    ALLOC(net->dqkv, nt_qkv);
    ALLOC(net->dxn1, nt_d);
    ALLOC(net->dx_a, nt_d + max64(De, Dd)); /* + a zero row: hidden tokens' gradient */
    ALLOC(net->dx_b, nt_d + max64(De, Dd));
    ALLOC(net->dbias, qkv);
    ALLOC(net->gsum, T * max64(De, Dd));
    ALLOC(net->grid_d, B * T * max64(De, Dd));
#undef ALLOC
    net->img_host = malloc(sizeof(float) * (size_t)(B * C * HW));
    net->meta_host = malloc(sizeof(float) * (size_t)(M * B * 2 + 1));
    if (!net->img_host || !net->meta_host) {
        rc = saec_fail(SAEC_ERR_OTHER, "lower batch_size", "out of memory for the MoE-MAE batch");
        goto fail;
    }
    /* constants: ones, iota */
    {
        float *ones = malloc(sizeof(float) * (size_t)B);
        int32_t *iota = malloc(sizeof(int32_t) * (size_t)rows_max);
        if (!ones || !iota) {
            free(ones), free(iota);
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
            goto fail;
        }
        for (int64_t i = 0; i < B; i++)
            ones[i] = 1.0f;
        for (int64_t i = 0; i < rows_max; i++)
            iota[i] = (int32_t)i;
        rc = dev->ops->upload(dev, net->ones, ones, sizeof(float) * (size_t)B);
        if (rc == SAEC_OK) rc = dev->ops->upload(dev, net->iota, iota, sizeof(int32_t) * (size_t)rows_max);
        free(ones), free(iota);
        if (rc != SAEC_OK) goto fail;
    }
    return SAEC_OK;
fail:
    moe_mae_net_destroy(net);
    *out = NULL;
    return rc;
}

int64_t moe_mae_net_n_params(const moe_mae_net *net) { return net->n_params; }
saec_dev *moe_mae_net_dev(moe_mae_net *net) { return net->dev; }
const moe_mae_hparams *moe_mae_net_hparams(const moe_mae_net *net) { return &net->cfg.h; }
float *moe_mae_net_params(moe_mae_net *net) { return net->params; }
float *moe_mae_net_grads(moe_mae_net *net) { return net->grads; }
float *moe_mae_net_adam(moe_mae_net *net, int which) { return which ? net->adam_v : net->adam_m; }

void moe_mae_net_set_band_stats(moe_mae_net *net, const float *mean, const float *std) {
    for (int c = 0; c < net->cfg.h.bands; c++)
        net->band_mean[c] = mean[c], net->band_std[c] = std[c];
}
const float *moe_mae_net_band_mean(const moe_mae_net *net) { return net->band_mean; }
const float *moe_mae_net_band_std(const moe_mae_net *net) { return net->band_std; }

/* ---- initialisation ---- */

int moe_mae_net_init_params(moe_mae_net *net, uint64_t seed) {
    float *host = malloc(sizeof(float) * (size_t)net->n_params);
    if (!host) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory initialising the MoE-MAE");
    for (int i = 0; i < net->n_tensors; i++) {
        const moe_mae_tensor *t = &net->tensors[i];
        float *p = host + net->offset[i];
        const int64_t n = t->rows * t->cols;
        saec_rng rng; /* one stream position per tensor: a tensor's values do not depend on the
                         sizes of the tensors before it */
        saec_rng_init(&rng, seed, SAEC_RNG_INIT_WEIGHTS, (uint64_t)i << 32);
        const double bound = t->fan_in > 0 ? 1.0 / sqrt((double)t->fan_in) : 0;
        for (int64_t j = 0; j < n; j++) {
            switch (t->init) {
            case MOE_INIT_TRUNC_NORMAL: { /* std 0.02, cut at ±2 std (timm's trunc_normal_) */
                double z;
                do
                    z = saec_rng_normal(&rng);
                while (fabs(z) > 2.0);
                p[j] = (float)(0.02 * z);
                break;
            }
            case MOE_INIT_LINEAR:
            case MOE_INIT_LINEAR_BIAS:
                p[j] = (float)(bound * (2.0 * saec_rng_uniform(&rng) - 1.0));
                break;
            case MOE_INIT_ONES: p[j] = 1.0f; break;
            case MOE_INIT_ZEROS: p[j] = 0.0f; break;
            }
        }
    }
    saec_dev *dev = net->dev;
    const size_t bytes = sizeof(float) * (size_t)net->n_params;
    int rc = dev->ops->upload(dev, net->params, host, bytes);
    free(host);
    if (rc == SAEC_OK) rc = dev->ops->zero(dev, net->adam_m, bytes);
    if (rc == SAEC_OK) rc = dev->ops->zero(dev, net->adam_v, bytes);
    return rc;
}

/* ---- the batch's inputs ---- */

/* Host rows [n, C·HW + 4] → z-scored images and the metadata's (sin, cos) inputs, uploaded. */
static int stage_inputs(moe_mae_net *net, const float *rows, int64_t n) {
    const moe_mae_hparams *h = &net->cfg.h;
    const int64_t C = h->bands, HW = h->image * h->image, M = h->meta_tokens;
    const int64_t width = C * HW + 4;
    static const double period[4] = {52.0, 24.0, 360.0, 360.0}; /* week, hour, lat°, lon° */
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n; b++) {
        const float *r = rows + b * width;
        float *img = net->img_host + b * C * HW;
        for (int64_t c = 0; c < C; c++) {
            const float mu = net->band_mean[c], inv = 1.0f / net->band_std[c];
            for (int64_t i = 0; i < HW; i++)
                img[c * HW + i] = (r[c * HW + i] - mu) * inv;
        }
        for (int64_t m = 0; m < M; m++) {
            const float v = m < 4 ? r[C * HW + m] : NAN;
            float *in = net->meta_host + (m * n + b) * 2;
            if (!net->cfg.use_metadata || !isfinite(v)) {
                in[0] = in[1] = 0.0f; /* missing: the token is its Linear's bias */
            } else {
                const double angle = 2.0 * 3.141592653589793 * (double)v / period[m];
                in[0] = (float)sin(angle), in[1] = (float)cos(angle);
            }
        }
    }
    saec_dev *dev = net->dev;
    SAEC_TRY(dev->ops->upload(dev, net->img, net->img_host, sizeof(float) * (size_t)(n * C * HW)));
    return M > 0 ? dev->ops->upload(dev, net->metain, net->meta_host,
                                    sizeof(float) * (size_t)(M * n * 2))
                 : SAEC_OK;
}

/* The grid's static indices for batches of n (rebuilt when n changes). */
static int build_indices(moe_mae_net *net, int64_t n) {
    if (net->index_batch == n) return SAEC_OK;
    const int64_t N = net->N, T = net->T, M = net->cfg.h.meta_tokens, P0 = M + 1;
    int32_t *ginv = malloc(sizeof(int32_t) * (size_t)(n * T)), *pinv = malloc(sizeof(int32_t) * (size_t)(n * T));
    int32_t *gidx = malloc(sizeof(int32_t) * (size_t)(n * (N + M)));
    if (!ginv || !pinv || !gidx) {
        free(ginv), free(pinv), free(gidx);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
    }
    for (int64_t b = 0; b < n; b++)
        for (int64_t j = 0; j < T; j++) {
            const int64_t g = b * T + j;
            if (j < M) { /* metadata token j of sample b: S row n·N + j·n + b */
                ginv[g] = (int32_t)(n * N + j * n + b);
                gidx[n * N + j * n + b] = (int32_t)g;
                pinv[g] = -1;
            } else if (j == M) { /* CLS: from the position row */
                ginv[g] = -1, pinv[g] = -1;
            } else {
                const int64_t q = j - P0;
                ginv[g] = (int32_t)(b * N + q);
                gidx[b * N + q] = (int32_t)g;
                pinv[g] = (int32_t)(b * N + q);
            }
        }
    saec_dev *dev = net->dev;
    int rc = dev->ops->upload(dev, net->ginv, ginv, sizeof(int32_t) * (size_t)(n * T));
    if (rc == SAEC_OK) rc = dev->ops->upload(dev, net->pinv, pinv, sizeof(int32_t) * (size_t)(n * T));
    if (rc == SAEC_OK)
        rc = dev->ops->upload(dev, net->gidx, gidx, sizeof(int32_t) * (size_t)(n * (N + M)));
    /* patch q of sample b → its grid row: the patch rows of gidx */
    if (rc == SAEC_OK)
        rc = dev->ops->copy(dev, net->pidx, net->gidx, sizeof(int32_t) * (size_t)(n * N));
    free(ginv), free(pinv), free(gidx);
    if (rc == SAEC_OK) net->index_batch = n;
    return rc;
}

/* The token grid [n·T, De] of the staged batch: patch and metadata tokens, CLS, positions. */
static int embed_tokens(moe_mae_net *net, int64_t n) {
    saec_dev *dev = net->dev;
    const moe_mae_hparams *h = &net->cfg.h;
    const int64_t N = net->N, T = net->T, M = h->meta_tokens, De = h->enc.dim, pv = net->pv;
    float *P = net->params;
    SAEC_TRY(SAEC_OP(dev, patchify, net->img, n, h->bands, h->image, h->image, h->patch,
                     net->patches));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n * N, De, pv, 1.0f, net->patches, pv, P + net->p_pe_w, De,
                     0.0f, net->S, De, P + net->p_pe_b));
    for (int64_t m = 0; m < M; m++)
        SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n, De, 2, 1.0f, net->metain + m * n * 2, 2,
                         P + net->p_meta_w[m], De, 0.0f, net->S + (n * N + m * n) * De, De,
                         P + net->p_meta_b[m]));
    SAEC_TRY(SAEC_OP(dev, scatter_rows, net->S, net->ginv, NULL, n * T, 1, De, 0, net->grid));
    /* positions, with CLS added to its own row: grid += 1 ⊗ posb */
    SAEC_TRY(dev->ops->copy(dev, net->posb, P + net->p_pos, sizeof(float) * (size_t)(T * De)));
    SAEC_TRY(SAEC_OP(dev, axpby, De, 1.0f, net->posb + M * De, 1.0f, P + net->p_cls,
                     net->posb + M * De));
    return SAEC_OP(dev, gemm, 0, 0, n, T * De, 1, 1.0f, net->ones, 1, net->posb, T * De, 1.0f,
                   net->grid, T * De, NULL);
}

/* ---- one block ---- */

typedef struct {
    int64_t n, L, NT; /* sequences, tokens each, tokens */
    int train;
    uint64_t noise_counter, drop_counter; /* this rank's first token's counters */
    float w_cv;       /* each CV term's weight in the loss (0: not in the loss) */
} block_call;

/* Counter bases of block `number` at step s for a rank whose first global token is t0. */
static void block_counters(const moe_mae_net *net, const block *b, int64_t step, int64_t t0,
                           int64_t D, block_call *bc) {
    const uint64_t base = ((uint64_t)step << 40) + ((uint64_t)b->number << 34);
    const int64_t E = b->E, K = net->cfg.h.top_k;
    bc->noise_counter = base + 2 * (uint64_t)(t0 * E);
    bc->drop_counter = base + (uint64_t)(t0 * K * D);
}

static int block_forward(moe_mae_net *net, const moe_mae_stack *s, block *b, const block_call *bc,
                         const float *x, float *out) {
    saec_dev *dev = net->dev;
    const float *P = net->params;
    const int64_t NT = bc->NT, D = s->dim, K = net->cfg.h.top_k, ROWS = NT * K;
    const int64_t A = (int64_t)s->heads * s->head_dim, KV = (int64_t)s->kv_groups * s->head_dim;
    const int64_t QKV = A + 2 * KV, E = b->E, H = b->H;
    const float eps = (float)net->cfg.ln_eps, scale = 1.0f / sqrtf((float)s->head_dim);
    if (x != b->x_in)
        SAEC_TRY(dev->ops->copy(dev, b->x_in, x, sizeof(float) * (size_t)(NT * D)));
    /* attention */
    SAEC_TRY(SAEC_OP(dev, layernorm, b->x_in, P + b->p[P_LN1_W], P + b->p[P_LN1_B], NT, D, eps,
                     b->xn1, b->mean1, b->rstd1));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, NT, A, D, 1.0f, b->xn1, D, P + b->p[P_Q_W], A, 0.0f, b->qkv,
                     QKV, P + b->p[P_Q_B]));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, NT, KV, D, 1.0f, b->xn1, D, P + b->p[P_K_W], KV, 0.0f,
                     b->qkv + A, QKV, P + b->p[P_K_B]));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, NT, KV, D, 1.0f, b->xn1, D, P + b->p[P_V_W], KV, 0.0f,
                     b->qkv + A + KV, QKV, P + b->p[P_V_B]));
    SAEC_TRY(SAEC_OP(dev, attention, b->qkv, b->qkv + A, b->qkv + A + KV, QKV, QKV, bc->n, bc->L,
                     s->heads, s->kv_groups, s->head_dim, scale, b->ao, b->lse));
    SAEC_TRY(dev->ops->copy(dev, b->x1, b->x_in, sizeof(float) * (size_t)(NT * D)));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, NT, D, A, 1.0f, b->ao, A, P + b->p[P_O_W], D, 1.0f, b->x1, D,
                     P + b->p[P_O_B]));
    /* the router */
    SAEC_TRY(SAEC_OP(dev, layernorm, b->x1, P + b->p[P_LN2_W], P + b->p[P_LN2_B], NT, D, eps,
                     b->xn2, b->mean2, b->rstd2));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, NT, E, D, 1.0f, b->xn2, D, P + b->p[P_GATE_W], E, 0.0f,
                     b->clean, E, P + b->p[P_GATE_B]));
    if (bc->train)
        SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, NT, E, D, 1.0f, b->xn2, D, P + b->p[P_NOISE_W], E, 0.0f,
                         b->raw, E, P + b->p[P_NOISE_B]));
    SAEC_TRY(SAEC_OP(dev, router_forward, b->clean, bc->train ? b->raw : NULL, NT, (int)E, (int)K,
                     net->cfg.seed, bc->noise_counter, bc->w_cv, bc->w_cv, 0.0f, 0.0f, b->idx,
                     b->gates, b->stats, b->loss));
    /* the balance loss's statistics are sums over tokens: over every rank's tokens, its gradient
       is the one-process gradient */
    if (bc->train && net->world > 1)
        SAEC_TRY(saec_comm_allreduce(net->comm, b->stats, 4 * E, SAEC_DT_F64, SAEC_RED_SUM));
    /* dispatch */
    SAEC_TRY(SAEC_OP(dev, group_count, b->idx, ROWS, (int)E, b->counts));
    SAEC_TRY(SAEC_OP(dev, exclusive_scan, b->counts, (int)E, b->offsets));
    SAEC_TRY(SAEC_OP(dev, group_permute, b->idx, ROWS, (int)E, b->offsets, b->perm, b->inv));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, NT, H, D, 1.0f, b->xn2, D, P + b->p[P_MV_W], H, 0.0f, b->vx,
                     H, P + b->p[P_MV_B]));
    SAEC_TRY(SAEC_OP(dev, gather_rows, b->xn2, b->perm, ROWS, (int)K, D, net->xs));
    SAEC_TRY(SAEC_OP(dev, grouped_gemm, 0, (int)E, b->offsets, H, D, 1.0f, net->xs,
                     P + b->p[P_EX_W], 0.0f, b->a, P + b->p[P_EX_B]));
    SAEC_TRY(SAEC_OP(dev, gather_rows, b->vx, b->perm, ROWS, (int)K, H, net->vs));
    SAEC_TRY(SAEC_OP(dev, swiglu, b->a, net->vs, ROWS * H, net->hs));
    SAEC_TRY(dev->ops->copy(dev, out, b->x1, sizeof(float) * (size_t)(NT * D)));
    if (!bc->train) {
        /* inference, fused (SPEC §7): the gates sum to 1 and V, W2 are shared, so
           out = x1 + W2 (Σ_slots g·SiLU(W_e x) ⊙ V x) + b2: one W2 row per token, not per item */
        SAEC_TRY(SAEC_OP(dev, scatter_rows, net->hs, b->inv, b->gates, NT, (int)K, H, 0, net->dvx));
        return SAEC_OP(dev, gemm, 0, 0, NT, D, H, 1.0f, net->dvx, H, P + b->p[P_W2_W], D, 1.0f, out,
                       D, P + b->p[P_W2_B]);
    }
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, ROWS, D, H, 1.0f, net->hs, H, P + b->p[P_W2_W], D, 0.0f,
                     net->ys, D, P + b->p[P_W2_B]));
    /* back to item order (item i = token·k + slot), then dropout drawn per (token, slot) */
    SAEC_TRY(SAEC_OP(dev, gather_rows, net->ys, b->inv, ROWS, 1, D, b->yi));
    if (net->cfg.dropout > 0)
        SAEC_TRY(SAEC_OP(dev, dropout, b->yi, ROWS * D, (float)net->cfg.dropout, net->cfg.seed,
                         bc->drop_counter, b->yi));
    return SAEC_OP(dev, scatter_rows, b->yi, net->iota, b->gates, NT, (int)K, D, 1, out);
}

/* The backward of block_forward (training) from dout [NT, D] = ∂L/∂out: the block's parameter
   gradients (overwritten) and dx [NT, D] = ∂L/∂x (dx may alias dout). */
static int block_backward(moe_mae_net *net, const moe_mae_stack *s, block *b, const block_call *bc,
                          const float *dout, float *dx) {
    saec_dev *dev = net->dev;
    const float *P = net->params;
    float *G = net->grads;
    const int64_t NT = bc->NT, D = s->dim, K = net->cfg.h.top_k, ROWS = NT * K;
    const int64_t A = (int64_t)s->heads * s->head_dim, KV = (int64_t)s->kv_groups * s->head_dim;
    const int64_t QKV = A + 2 * KV, E = b->E, H = b->H;
    const float scale = 1.0f / sqrtf((float)s->head_dim);
    /* the combine and dropout (the same call on the gradient), back to sorted rows */
    SAEC_TRY(SAEC_OP(dev, scatter_rows_backward, dout, b->yi, net->iota, b->gates, NT, (int)K, D,
                     net->dyi, net->dgates));
    if (net->cfg.dropout > 0)
        SAEC_TRY(SAEC_OP(dev, dropout, net->dyi, ROWS * D, (float)net->cfg.dropout, net->cfg.seed,
                         bc->drop_counter, net->dyi));
    SAEC_TRY(SAEC_OP(dev, gather_rows, net->dyi, b->perm, ROWS, 1, D, net->dys));
    /* recompute the experts' inputs rather than keep them for every block */
    SAEC_TRY(SAEC_OP(dev, gather_rows, b->xn2, b->perm, ROWS, (int)K, D, net->xs));
    SAEC_TRY(SAEC_OP(dev, gather_rows, b->vx, b->perm, ROWS, (int)K, H, net->vs));
    SAEC_TRY(SAEC_OP(dev, swiglu, b->a, net->vs, ROWS * H, net->hs));
    /* W2 */
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, H, D, ROWS, 1.0f, net->hs, H, net->dys, D, 0.0f,
                     G + b->p[P_W2_W], D, NULL));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->dys, ROWS, D, 1.0f, 0.0f, G + b->p[P_W2_B]));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, ROWS, H, D, 1.0f, net->dys, D, P + b->p[P_W2_W], D, 0.0f,
                     net->dhs, H, NULL));
    SAEC_TRY(SAEC_OP(dev, swiglu_backward, b->a, net->vs, net->dhs, ROWS * H, net->da, net->dvs));
    /* V: the gather's backward is the unweighted un-permute */
    SAEC_TRY(SAEC_OP(dev, scatter_rows, net->dvs, b->inv, NULL, NT, (int)K, H, 0, net->dvx));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, D, H, NT, 1.0f, b->xn2, D, net->dvx, H, 0.0f,
                     G + b->p[P_MV_W], H, NULL));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->dvx, NT, H, 1.0f, 0.0f, G + b->p[P_MV_B]));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, NT, D, H, 1.0f, net->dvx, H, P + b->p[P_MV_W], H, 0.0f,
                     net->dxn2, D, NULL));
    /* the experts' W_e */
    SAEC_TRY(SAEC_OP(dev, grouped_gemm_wgrad, (int)E, b->offsets, D, H, 1.0f, net->xs, net->da,
                     0.0f, G + b->p[P_EX_W]));
    SAEC_TRY(SAEC_OP(dev, grouped_col_sum, (int)E, b->offsets, H, net->da, 1.0f, 0.0f,
                     G + b->p[P_EX_B]));
    SAEC_TRY(SAEC_OP(dev, grouped_gemm, 1, (int)E, b->offsets, D, H, 1.0f, net->da,
                     P + b->p[P_EX_W], 0.0f, net->dxs, NULL));
    SAEC_TRY(SAEC_OP(dev, scatter_rows, net->dxs, b->inv, NULL, NT, (int)K, D, 1, net->dxn2));
    /* the router: the gates' gradient and the balance loss */
    SAEC_TRY(SAEC_OP(dev, router_backward, b->clean, b->raw, net->dgates, b->stats, NT, (int)E,
                     (int)K, net->cfg.seed, bc->noise_counter, bc->w_cv, bc->w_cv, 0.0f, 0.0f,
                     net->dclean, net->draw));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, D, E, NT, 1.0f, b->xn2, D, net->dclean, E, 0.0f,
                     G + b->p[P_GATE_W], E, NULL));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->dclean, NT, E, 1.0f, 0.0f, G + b->p[P_GATE_B]));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, NT, D, E, 1.0f, net->dclean, E, P + b->p[P_GATE_W], E, 1.0f,
                     net->dxn2, D, NULL));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, D, E, NT, 1.0f, b->xn2, D, net->draw, E, 0.0f,
                     G + b->p[P_NOISE_W], E, NULL));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->draw, NT, E, 1.0f, 0.0f, G + b->p[P_NOISE_B]));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, NT, D, E, 1.0f, net->draw, E, P + b->p[P_NOISE_W], E, 1.0f,
                     net->dxn2, D, NULL));
    /* LN2, then the residual */
    SAEC_TRY(SAEC_OP(dev, layernorm_backward, net->dxn2, b->x1, P + b->p[P_LN2_W], b->mean2,
                     b->rstd2, NT, D, 0, net->dx1, G + b->p[P_LN2_W], G + b->p[P_LN2_B]));
    SAEC_TRY(SAEC_OP(dev, axpby, NT * D, 1.0f, net->dx1, 1.0f, dout, net->dx1));
    /* attention */
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, A, D, NT, 1.0f, b->ao, A, net->dx1, D, 0.0f,
                     G + b->p[P_O_W], D, NULL));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->dx1, NT, D, 1.0f, 0.0f, G + b->p[P_O_B]));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, NT, A, D, 1.0f, net->dx1, D, P + b->p[P_O_W], D, 0.0f,
                     net->dao, A, NULL));
    SAEC_TRY(SAEC_OP(dev, attention_backward, b->qkv, b->qkv + A, b->qkv + A + KV, QKV, QKV, b->ao,
                     net->dao, b->lse, bc->n, bc->L, s->heads, s->kv_groups, s->head_dim, scale,
                     net->dqkv, net->dqkv + A, net->dqkv + A + KV));
    /* q, k, v: weights, biases (one column sum over the fused gradient), their input */
    static const int wt[3] = {P_Q_W, P_K_W, P_V_W}, bt[3] = {P_Q_B, P_K_B, P_V_B};
    const int64_t col0[3] = {0, A, A + KV}, width[3] = {A, KV, KV};
    SAEC_TRY(SAEC_OP(dev, col_sum, net->dqkv, NT, QKV, 1.0f, 0.0f, net->dbias));
    for (int j = 0; j < 3; j++) {
        SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, D, width[j], NT, 1.0f, b->xn1, D, net->dqkv + col0[j],
                         QKV, 0.0f, G + b->p[wt[j]], width[j], NULL));
        SAEC_TRY(dev->ops->copy(dev, G + b->p[bt[j]], net->dbias + col0[j],
                                sizeof(float) * (size_t)width[j]));
        SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, NT, D, width[j], 1.0f, net->dqkv + col0[j], QKV,
                         P + b->p[wt[j]], width[j], j ? 1.0f : 0.0f, net->dxn1, D, NULL));
    }
    /* LN1, then x's residual: dx = dx1 + LN1's backward */
    SAEC_TRY(SAEC_OP(dev, layernorm_backward, net->dxn1, b->x_in, P + b->p[P_LN1_W], b->mean1,
                     b->rstd1, NT, D, 0, dx, G + b->p[P_LN1_W], G + b->p[P_LN1_B]));
    return SAEC_OP(dev, axpby, NT * D, 1.0f, dx, 1.0f, net->dx1, dx);
}

/* A stack's blocks over x [NT, D] (training or inference); the result in st->out. */
static int stack_forward(moe_mae_net *net, stack *st, const float *x, int64_t n, int64_t L,
                         int train, int64_t step, int64_t first_sample, float w_cv) {
    const moe_mae_stack *s = st->s;
    const float *in = x;
    for (int i = 0; i < s->depth; i++) {
        block *b = &st->blocks[i];
        block_call bc = {.n = n, .L = L, .NT = n * L, .train = train, .w_cv = w_cv};
        block_counters(net, b, step, first_sample * L, s->dim, &bc);
        float *out = i + 1 < s->depth ? st->blocks[i + 1].x_in : st->out;
        SAEC_TRY(block_forward(net, s, b, &bc, in, out));
        in = out;
    }
    return SAEC_OK;
}

/* Its backward from dout [NT, D] (in net->dx_a); the input's gradient ends in *dx (dx_a or
   dx_b). */
static int stack_backward(moe_mae_net *net, stack *st, int64_t n, int64_t step,
                          int64_t first_sample, float w_cv, float **dx) {
    const moe_mae_stack *s = st->s;
    const int64_t L = st->L;
    for (int i = s->depth - 1; i >= 0; i--) {
        block *b = &st->blocks[i];
        block_call bc = {.n = n, .L = L, .NT = n * L, .train = 1, .w_cv = w_cv};
        block_counters(net, b, step, first_sample * L, s->dim, &bc);
        SAEC_TRY(block_backward(net, s, b, &bc, net->dx_a, net->dx_a));
    }
    *dx = net->dx_a;
    return SAEC_OK;
}

/* ---- the whole network ---- */

int moe_mae_net_forward_backward(moe_mae_net *net, const float *rows, int64_t n, int64_t step,
                                 int64_t first_sample) {
    if (n < 1 || n > net->max_batch)
        return saec_fail(SAEC_ERR_OTHER, NULL, "MoE-MAE: batch of %lld tiles, at most %lld",
                         (long long)n, (long long)net->max_batch);
    saec_dev *dev = net->dev;
    const moe_mae_hparams *h = &net->cfg.h;
    const int64_t N = net->N, T = net->T, M = h->meta_tokens, pv = net->pv, nk = net->n_keep;
    const int64_t De = h->enc.dim, Dd = h->dec.dim, Le = M + 1 + nk;
    const float *P = net->params;
    float *G = net->grads;
    SAEC_TRY(build_indices(net, n));
    SAEC_TRY(stage_inputs(net, rows, n));
    SAEC_TRY(embed_tokens(net, n));

    /* the mask, and the encoder's input: prefix tokens and kept patches */
    const uint64_t mask_counter = ((uint64_t)step << 40) + (uint64_t)(first_sample * N);
    SAEC_TRY(SAEC_OP(dev, patch_mask, net->cfg.seed, mask_counter, n, N, nk, net->keep, net->mask));
    SAEC_TRY(SAEC_OP(dev, patch_token_index, net->keep, n, N, nk, M + 1, (int32_t)(n * Le),
                     net->perm_e, net->inv_e));
    SAEC_TRY(SAEC_OP(dev, gather_rows, net->grid, net->perm_e, n * Le, 1, De,
                     net->enc.blocks[0].x_in));

    /* the encoder: balance weight 0.5·0.01 per CV term, in the loss */
    const float w_cv = (float)(net->cfg.balance_weight * net->cfg.balance_cv);
    SAEC_TRY(stack_forward(net, &net->enc, net->enc.blocks[0].x_in, n, Le, 1, step, first_sample,
                           w_cv));
    const float eps = (float)net->cfg.ln_eps;
    SAEC_TRY(SAEC_OP(dev, layernorm, net->enc.out, P + net->p_enorm_w, P + net->p_enorm_b, n * Le,
                     De, eps, net->xf, net->xf_mean, net->xf_rstd));

    /* the decoder's grid: embedded visible tokens, the mask token for hidden patches (row n·Le
       of y0), positions on the patch rows */
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n * Le, Dd, De, 1.0f, net->xf, De, P + net->p_dembed_w, Dd,
                     0.0f, net->y0, Dd, P + net->p_dembed_b));
    SAEC_TRY(dev->ops->copy(dev, net->y0 + n * Le * Dd, P + net->p_mask, sizeof(float) * (size_t)Dd));
    float *dgrid = net->dec.blocks[0].x_in;
    SAEC_TRY(SAEC_OP(dev, scatter_rows, net->y0, net->inv_e, NULL, n * T, 1, Dd, 0, dgrid));
    SAEC_TRY(dev->ops->zero(dev, net->dposb, sizeof(float) * (size_t)((M + 1) * Dd)));
    SAEC_TRY(dev->ops->copy(dev, net->dposb + (M + 1) * Dd, P + net->p_dpos,
                            sizeof(float) * (size_t)(N * Dd)));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n, T * Dd, 1, 1.0f, net->ones, 1, net->dposb, T * Dd, 1.0f,
                     dgrid, T * Dd, NULL));
    /* the decoder's balance losses are not in the loss (SPEC §7) */
    SAEC_TRY(stack_forward(net, &net->dec, dgrid, n, T, 1, step, first_sample, 0.0f));
    SAEC_TRY(SAEC_OP(dev, layernorm, net->dec.out, P + net->p_dnorm_w, P + net->p_dnorm_b, n * T, Dd,
                     eps, net->dn, net->dn_mean, net->dn_rstd));
    SAEC_TRY(SAEC_OP(dev, gather_rows, net->dn, net->pidx, n * N, 1, Dd, net->dp));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 0, n * N, pv, Dd, 1.0f, net->dp, Dd, P + net->p_head_w, pv, 0.0f,
                     net->pred, pv, P + net->p_head_b));
    /* the loss; each rank's mean over its own patches, 1/world of it: summed over the ranks,
       the global mean (every rank has the same number of each kind) */
    const float rank_share = 1.0f / (float)net->world;
    SAEC_TRY(SAEC_OP(dev, patch_loss, net->pred, net->patches, net->mask, n * N, pv, rank_share,
                     (float)net->cfg.visible_weight * rank_share, net->ploss, net->dpred));

    /* ---- backward ---- */
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, Dd, pv, n * N, 1.0f, net->dp, Dd, net->dpred, pv, 0.0f,
                     G + net->p_head_w, pv, NULL));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->dpred, n * N, pv, 1.0f, 0.0f, G + net->p_head_b));
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n * N, Dd, pv, 1.0f, net->dpred, pv, P + net->p_head_w, pv,
                     0.0f, net->dp, Dd, NULL));
    SAEC_TRY(SAEC_OP(dev, scatter_rows, net->dp, net->pinv, NULL, n * T, 1, Dd, 0, net->grid_d));
    SAEC_TRY(SAEC_OP(dev, layernorm_backward, net->grid_d, net->dec.out, P + net->p_dnorm_w,
                     net->dn_mean, net->dn_rstd, n * T, Dd, 0, net->dx_a, G + net->p_dnorm_w,
                     G + net->p_dnorm_b));
    float *dx = NULL;
    SAEC_TRY(stack_backward(net, &net->dec, n, step, first_sample, 0.0f, &dx));
    /* the decoder grid's gradient dx [n·T, Dd]: positions (patch rows), the visible tokens' rows,
       and the mask token's (every row minus the visible ones: hidden rows hold only it) */
    SAEC_TRY(SAEC_OP(dev, col_sum, dx, n, T * Dd, 1.0f, 0.0f, net->gsum));
    SAEC_TRY(dev->ops->copy(dev, G + net->p_dpos, net->gsum + (M + 1) * Dd,
                            sizeof(float) * (size_t)(N * Dd)));
    SAEC_TRY(SAEC_OP(dev, gather_rows, dx, net->perm_e, n * Le, 1, Dd, net->y0));
    SAEC_TRY(SAEC_OP(dev, col_sum, dx, n * T, Dd, 1.0f, 0.0f, G + net->p_mask));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->y0, n * Le, Dd, -1.0f, 1.0f, G + net->p_mask));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, De, Dd, n * Le, 1.0f, net->xf, De, net->y0, Dd, 0.0f,
                     G + net->p_dembed_w, Dd, NULL));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->y0, n * Le, Dd, 1.0f, 0.0f, G + net->p_dembed_b));
    /* into dx_b, as the encoder's stack_backward works in dx_a */
    SAEC_TRY(SAEC_OP(dev, gemm, 0, 1, n * Le, De, Dd, 1.0f, net->y0, Dd, P + net->p_dembed_w, Dd,
                     0.0f, net->dx_b, De, NULL));
    SAEC_TRY(SAEC_OP(dev, layernorm_backward, net->dx_b, net->enc.out, P + net->p_enorm_w,
                     net->xf_mean, net->xf_rstd, n * Le, De, 0, net->dx_a, G + net->p_enorm_w,
                     G + net->p_enorm_b));
    SAEC_TRY(stack_backward(net, &net->enc, n, step, first_sample, w_cv, &dx));
    /* the encoder's input → the grid (hidden patches read the zero row n·Le) → the embedding */
    SAEC_TRY(dev->ops->zero(dev, dx + n * Le * De, sizeof(float) * (size_t)De));
    SAEC_TRY(SAEC_OP(dev, scatter_rows, dx, net->inv_e, NULL, n * T, 1, De, 0, net->grid_d));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->grid_d, n, T * De, 1.0f, 0.0f, G + net->p_pos));
    SAEC_TRY(dev->ops->copy(dev, G + net->p_cls, G + net->p_pos + M * De, sizeof(float) * (size_t)De));
    SAEC_TRY(SAEC_OP(dev, gather_rows, net->grid_d, net->gidx, n * (N + M), 1, De, net->S));
    SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, pv, De, n * N, 1.0f, net->patches, pv, net->S, De, 0.0f,
                     G + net->p_pe_w, De, NULL));
    SAEC_TRY(SAEC_OP(dev, col_sum, net->S, n * N, De, 1.0f, 0.0f, G + net->p_pe_b));
    for (int64_t m = 0; m < M; m++) {
        const float *dmt = net->S + (n * N + m * n) * De;
        SAEC_TRY(SAEC_OP(dev, gemm, 1, 0, 2, De, n, 1.0f, net->metain + m * n * 2, 2, dmt, De, 0.0f,
                         G + net->p_meta_w[m], De, NULL));
        SAEC_TRY(SAEC_OP(dev, col_sum, dmt, n, De, 1.0f, 0.0f, G + net->p_meta_b[m]));
    }
    if (net->world > 1)
        SAEC_TRY(saec_comm_allreduce(net->comm, net->grads, net->n_params, SAEC_DT_F32,
                                     SAEC_RED_SUM));
    return SAEC_OK;
}

int moe_mae_net_adamw(moe_mae_net *net, saec_adamw_args args) {
    saec_dev *dev = net->dev;
    SAEC_TRY(SAEC_OP(dev, sum_squares, net->grads, net->n_params, 0, net->gsumsq));
    return SAEC_OP(dev, adamw, net->params, net->grads, net->adam_m, net->adam_v, net->n_params,
                   args, net->gsumsq);
}

/* CV = population std / (mean + 1e-6) of v [E]. */
static double cv(const double *v, int E) {
    double m = 0, var = 0;
    for (int e = 0; e < E; e++)
        m += v[e] / E;
    for (int e = 0; e < E; e++)
        var += (v[e] - m) * (v[e] - m) / E;
    return sqrt(var) / (m + 1e-6);
}

int moe_mae_net_read_stats(moe_mae_net *net, moe_mae_stats *st) {
    saec_dev *dev = net->dev;
    memset(st, 0, sizeof *st);
    double pl[3], sumsq = 0;
    SAEC_TRY(dev->ops->download(dev, pl, net->ploss, sizeof pl));
    SAEC_TRY(dev->ops->download(dev, &sumsq, net->gsumsq, sizeof sumsq));
    if (net->world > 1) /* each rank's terms are its own patches' means */
        SAEC_TRY(saec_comm_allreduce_host(net->comm, pl, 3, SAEC_DT_F64, SAEC_RED_SUM));
    const double w = (double)net->world;
    st->masked = pl[1] / w, st->visible = pl[2] / w;
    st->grad_norm = sqrt(sumsq);
    const moe_mae_stack *s = net->enc.s;
    st->n_blocks = s->depth + net->dec.s->depth;
    for (int i = 0; i < st->n_blocks; i++) {
        const block *b = i < s->depth ? &net->enc.blocks[i] : &net->dec.blocks[i - s->depth];
        double stats[32];
        SAEC_TRY(dev->ops->download(dev, stats, b->stats, sizeof(double) * 4 * (size_t)b->E));
        if (i >= s->depth && net->world > 1) /* the decoder's were not summed in the step */
            SAEC_TRY(saec_comm_allreduce_host(net->comm, stats, 4 * b->E, SAEC_DT_F64, SAEC_RED_SUM));
        st->experts[i] = b->E;
        double total = 0;
        for (int e = 0; e < b->E; e++)
            total += stats[2 * b->E + e];
        for (int e = 0; e < b->E; e++) /* f_e of the ranks, averaged */
            st->load[i][e] = total > 0 ? stats[2 * b->E + e] / total : 0;
        if (i < s->depth)
            st->balance += net->cfg.balance_cv * (cv(stats, b->E) + cv(stats + b->E, b->E));
    }
    st->loss = st->masked + net->cfg.visible_weight * st->visible +
               net->cfg.balance_weight * st->balance;
    return SAEC_OK;
}

/* Adds block i's routing of the m tiles of a chunk to load [., depth, Emax] at tile `at`: the
   share of each tile's T·k routed items that went to each expert. */
static int add_routes(moe_mae_net *net, int64_t at, int64_t m, int32_t *idx, float *load) {
    const moe_mae_stack *s = net->enc.s;
    const int64_t T = net->T, K = net->cfg.h.top_k, Emax = moe_mae_net_max_experts(net);
    for (int i = 0; i < s->depth; i++) {
        const block *b = &net->enc.blocks[i];
        SAEC_TRY(net->dev->ops->download(net->dev, idx, b->idx,
                                         sizeof(int32_t) * (size_t)(m * T * K)));
        for (int64_t t = 0; t < m; t++) {
            float *l = load + ((at + t) * s->depth + i) * Emax;
            for (int64_t j = 0; j < T * K; j++)
                l[idx[t * T * K + j]] += 1.0f / (float)(T * K);
        }
    }
    return SAEC_OK;
}

int moe_mae_net_max_experts(const moe_mae_net *net) {
    int e = 0;
    for (int i = 0; i < net->enc.s->depth; i++)
        if (net->enc.blocks[i].E > e) e = net->enc.blocks[i].E;
    return e;
}

int moe_mae_net_embed(moe_mae_net *net, const float *rows, int64_t n, float *emb, float *load) {
    saec_dev *dev = net->dev;
    const moe_mae_hparams *h = &net->cfg.h;
    const int64_t T = net->T, De = h->enc.dim, width = moe_mae_row_width(h);
    /* the inference sequence is T tokens, not the training Le: fewer tiles per chunk */
    int64_t chunk = net->enc.nt_max / T;
    if (chunk < 1)
        return saec_fail(SAEC_ERR_USAGE, "raise batch_size",
                         "MoE-MAE: batch_size too small for inference on %lld tokens",
                         (long long)T);
    if (chunk > net->max_batch) chunk = net->max_batch;
    float *host = malloc(sizeof(float) * (size_t)(chunk * T * De));
    int32_t *idx = load ? malloc(sizeof(int32_t) * (size_t)(chunk * T * h->top_k)) : NULL;
    if (!host || (load && !idx)) {
        free(host), free(idx);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory embedding");
    }
    if (load) /* [n, depth, Emax] */
        memset(load, 0,
               sizeof(float) * (size_t)(n * net->enc.s->depth * moe_mae_net_max_experts(net)));
    int rc = SAEC_OK;
    for (int64_t at = 0; at < n && rc == SAEC_OK; at += chunk) {
        const int64_t m = n - at < chunk ? n - at : chunk;
        rc = build_indices(net, m);
        if (rc == SAEC_OK) rc = stage_inputs(net, rows + at * width, m);
        if (rc == SAEC_OK) rc = embed_tokens(net, m);
        if (rc == SAEC_OK) rc = stack_forward(net, &net->enc, net->grid, m, T, 0, 0, 0, 0.0f);
        if (rc == SAEC_OK && load) rc = add_routes(net, at, m, idx, load);
        if (rc == SAEC_OK)
            rc = dev->ops->download(dev, host, net->enc.out, sizeof(float) * (size_t)(m * T * De));
        for (int64_t b = 0; b < m && rc == SAEC_OK; b++) /* mean over the T tokens */
            for (int64_t c = 0; c < De; c++) {
                double s = 0;
                for (int64_t j = 0; j < T; j++)
                    s += host[(b * T + j) * De + c];
                emb[(at + b) * De + c] = (float)(s / (double)T);
            }
    }
    free(host), free(idx);
    return rc;
}
