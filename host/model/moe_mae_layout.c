/* The MoE-MAE parameter layout (moe_mae_layout.h): every tensor in arena order. Linear weights
 * are stored [in, out], so a layer is x [n, in] · W [in, out] + b (the gemm op without a
 * transpose); the patch embedding's weight is [C·P·P, dim] over patchify's channel-major
 * patches, which is Conv2d(kernel = stride = P) flattened.
 */
#include "moe_mae_layout.h"

#include <stdio.h>
#include <string.h>

moe_mae_hparams moe_mae_hparams_default(void) {
    static const int enc_experts[15] = {3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5};
    moe_mae_hparams h;
    memset(&h, 0, sizeof h);
    h.bands = 7, h.image = 40, h.patch = 4, h.meta_tokens = 4, h.top_k = 2;
    h.enc.dim = 144, h.enc.depth = 15, h.enc.heads = 8, h.enc.kv_groups = 4, h.enc.head_dim = 18;
    for (int i = 0; i < h.enc.depth; i++) {
        h.enc.experts[i] = enc_experts[i];
        /* int(144 − 72·i/14) = 144 − ⌈72·i/14⌉ */
        h.enc.hidden[i] = 144 - (72 * (int64_t)i + 13) / 14;
    }
    h.dec.dim = 108, h.dec.depth = 2, h.dec.heads = 6, h.dec.kv_groups = 3, h.dec.head_dim = 18;
    for (int i = 0; i < h.dec.depth; i++)
        h.dec.experts[i] = 3, h.dec.hidden[i] = 54;
    return h;
}

int64_t moe_mae_patches(const moe_mae_hparams *h) {
    const int64_t side = h->image / h->patch;
    return side * side;
}

int64_t moe_mae_tokens(const moe_mae_hparams *h) {
    return h->meta_tokens + 1 + moe_mae_patches(h); /* metadata, CLS, patches: 105 */
}

typedef struct {
    void (*visit)(const moe_mae_tensor *t, void *ctx);
    void *ctx;
    int count;
    int encoder;
    char component[64];
} walker;

/* src into dst [cap], cut to fit (names here are far shorter than the fields). */
static void copy_text(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void emit(walker *w, const char *name, int64_t rows, int64_t cols, moe_mae_init init,
                 int64_t fan_in) {
    moe_mae_tensor t;
    memset(&t, 0, sizeof t);
    copy_text(t.name, sizeof t.name, name);
    copy_text(t.component, sizeof t.component, w->component);
    t.rows = rows, t.cols = cols, t.init = init, t.fan_in = fan_in, t.encoder = w->encoder;
    w->visit(&t, w->ctx);
    w->count++;
}

/* The component the tensors that follow are counted under. */
static void in_component(walker *w, const char *component) {
    copy_text(w->component, sizeof w->component, component);
}

/* A Linear in → out with bias: prefix.weight [in, out], prefix.bias [out]. */
static void linear(walker *w, const char *prefix, int64_t in, int64_t out) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    emit(w, name, in, out, MOE_INIT_LINEAR, in);
    snprintf(name, sizeof name, "%s.bias", prefix);
    emit(w, name, 1, out, MOE_INIT_LINEAR_BIAS, in);
}

static void layernorm(walker *w, const char *prefix, int64_t dim) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    emit(w, name, 1, dim, MOE_INIT_ONES, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    emit(w, name, 1, dim, MOE_INIT_ZEROS, 0);
}

/* One pre-LN block of a stack: x += Attn(LN1(x)); x += MoE(LN2(x)). */
static void block(walker *w, const char *stack, int i, const moe_mae_stack *s) {
    char p[32], q[96];
    const int64_t D = s->dim, A = (int64_t)s->heads * s->head_dim;
    const int64_t KV = (int64_t)s->kv_groups * s->head_dim, H = s->hidden[i];
    snprintf(w->component, sizeof w->component, "%s.block.%d", stack, i);
    snprintf(p, sizeof p, "%s.%d", stack, i);
    snprintf(q, sizeof q, "%s.ln1", p), layernorm(w, q, D);
    snprintf(q, sizeof q, "%s.attn.q", p), linear(w, q, D, A);
    snprintf(q, sizeof q, "%s.attn.k", p), linear(w, q, D, KV);
    snprintf(q, sizeof q, "%s.attn.v", p), linear(w, q, D, KV);
    snprintf(q, sizeof q, "%s.attn.out", p), linear(w, q, A, D);
    snprintf(q, sizeof q, "%s.ln2", p), layernorm(w, q, D);
    snprintf(q, sizeof q, "%s.router.gate", p), linear(w, q, D, s->experts[i]);
    snprintf(q, sizeof q, "%s.router.noise", p), linear(w, q, D, s->experts[i]);
    /* W_e per expert, stored together as the grouped GEMM reads them: experts.weight
       [E·D, H] (expert e's [D, H] block at rows e·D ..), experts.bias [E, H] */
    snprintf(q, sizeof q, "%s.experts.weight", p);
    emit(w, q, s->experts[i] * D, H, MOE_INIT_LINEAR, D);
    snprintf(q, sizeof q, "%s.experts.bias", p);
    emit(w, q, s->experts[i], H, MOE_INIT_LINEAR_BIAS, D);
    snprintf(q, sizeof q, "%s.moe.v", p), linear(w, q, D, H);  /* V: shared by the experts */
    snprintf(q, sizeof q, "%s.moe.w2", p), linear(w, q, H, D); /* W2: shared */
}

int moe_mae_layout(const moe_mae_hparams *h, void (*visit)(const moe_mae_tensor *t, void *ctx),
                   void *ctx) {
    walker w = {visit, ctx, 0, 1, ""};
    const int64_t E = h->enc.dim, Dd = h->dec.dim;
    const int64_t patch_values = (int64_t)h->bands * h->patch * h->patch; /* 112 */
    static const char *const meta[] = {"week", "hour", "lat", "lon"};
    char name[64];

    in_component(&w, "enc.patch_embed");
    linear(&w, "enc.patch_embed", patch_values, E);
    in_component(&w, "enc.meta");
    for (int m = 0; m < h->meta_tokens; m++) { /* (sin, cos) → one token each */
        if (m < 4)
            snprintf(name, sizeof name, "enc.meta.%s", meta[m]);
        else /* more metadata tokens than SPEC's four: numbered */
            snprintf(name, sizeof name, "enc.meta.%d", m);
        linear(&w, name, 2, E);
    }
    in_component(&w, "enc.tokens");
    emit(&w, "enc.cls", 1, E, MOE_INIT_TRUNC_NORMAL, 0);
    emit(&w, "enc.pos_embed", moe_mae_tokens(h), E, MOE_INIT_TRUNC_NORMAL, 0);
    for (int i = 0; i < h->enc.depth; i++)
        block(&w, "enc", i, &h->enc);
    in_component(&w, "enc.norm");
    layernorm(&w, "enc.norm", E);

    w.encoder = 0;
    in_component(&w, "dec.embed");
    linear(&w, "dec.embed", E, Dd);
    in_component(&w, "dec.tokens");
    emit(&w, "dec.mask_token", 1, Dd, MOE_INIT_TRUNC_NORMAL, 0);
    /* patches only: the 5 metadata/CLS tokens get no decoder position embedding */
    emit(&w, "dec.pos_embed", moe_mae_patches(h), Dd, MOE_INIT_TRUNC_NORMAL, 0);
    for (int i = 0; i < h->dec.depth; i++)
        block(&w, "dec", i, &h->dec);
    in_component(&w, "dec.norm");
    layernorm(&w, "dec.norm", Dd);
    in_component(&w, "dec.head");
    linear(&w, "dec.head", Dd, patch_values);
    return w.count;
}

typedef struct {
    int64_t all, encoder;
} counts;

static void count_one(const moe_mae_tensor *t, void *ctx) {
    counts *c = ctx;
    c->all += t->rows * t->cols;
    if (t->encoder) c->encoder += t->rows * t->cols;
}

int64_t moe_mae_param_count(const moe_mae_hparams *h, int64_t *encoder) {
    counts c = {0, 0};
    moe_mae_layout(h, count_one, &c);
    if (encoder) *encoder = c.encoder;
    return c.all;
}
