/* The whole MoE-MAE network (host/model/moe_mae_net.c) on the CPU backend, at a tiny size:
 *   - the gradient of every parameter tensor against central differences of the network's own
 *     loss, along a random ±1 direction per tensor (the masks, router noise and dropout are
 *     counter-based, so the loss is a deterministic function of the parameters; the float
 *     forward is evaluated in float, hence directional differences, which sum many elements'
 *     effects, rather than one element at a time);
 *   - the check fails when a gradient is broken (one tensor's gradient scaled, tried below);
 *   - the step is deterministic (two runs, same bits) and the fused inference encoder gives the
 *     same embedding for a tile alone and inside a batch.
 * The full-size network's parity with PyTorch is tests/moe_mae_parity.sh's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "moe_mae_net.h"
#include "saec/device.h"
#include "test_random.h"

#define EPS 3e-3   /* the difference step along the direction */
#define TOL 2e-2   /* of |analytic| + 1% of the tensor's Σ|g| + NOISE */
#define NOISE 1e-2 /* the float loss's differences are ±1e-4 (measured on the zero gradients of
                      the key biases, which attention's softmax cancels exactly) */

static moe_mae_cfg tiny_cfg(void) {
    moe_mae_cfg c;
    memset(&c, 0, sizeof c);
    moe_mae_hparams *h = &c.h;
    h->bands = 3, h->image = 8, h->patch = 4, h->meta_tokens = 4, h->top_k = 2;
    h->enc.dim = 12, h->enc.depth = 2, h->enc.heads = 4, h->enc.kv_groups = 2, h->enc.head_dim = 3;
    h->enc.experts[0] = 2, h->enc.experts[1] = 2, h->enc.hidden[0] = 8, h->enc.hidden[1] = 6;
    h->dec.dim = 9, h->dec.depth = 1, h->dec.heads = 2, h->dec.kv_groups = 1, h->dec.head_dim = 3;
    h->dec.experts[0] = 2, h->dec.hidden[0] = 5;
    c.mask_ratio = 0.5, c.dropout = 0.1, c.balance_cv = 0.01, c.balance_weight = 0.5;
    c.visible_weight = 0.1, c.ln_eps = 1e-5, c.use_metadata = 1, c.seed = 17;
    return c;
}

typedef struct {
    const char *name;
    int64_t off, n;
} tensor_ref;

static tensor_ref refs[256];
static int n_refs;
static int64_t total;
static void collect(const moe_mae_tensor *t, void *arg) {
    (void)arg;
    refs[n_refs].name = strdup(t->name);
    refs[n_refs].off = total;
    refs[n_refs].n = t->rows * t->cols;
    total += refs[n_refs].n;
    n_refs++;
}

static saec_dev *dev;
static moe_mae_net *net;
static float *rows;
enum { BATCH = 3, STEP = 5, FIRST = 7 };

static double loss_at(const float *params, int64_t n_params) {
    OK(dev->ops->upload(dev, moe_mae_net_params(net), params, sizeof(float) * (size_t)n_params));
    OK(moe_mae_net_forward_backward(net, rows, BATCH, STEP, FIRST));
    moe_mae_stats st;
    OK(moe_mae_net_read_stats(net, &st));
    return st.loss;
}

int main(void) {
    rng_seed(0x5AEC16);
    if (saec_dev_open("cpu", &dev) != SAEC_OK) return 1;
    moe_mae_cfg cfg = tiny_cfg();
    moe_mae_layout(&cfg.h, collect, NULL);
    OK(moe_mae_net_create(dev, NULL, &cfg, BATCH, &net));
    const int64_t np = moe_mae_net_n_params(net);
    CHECK(np == total, "arena %lld, layout %lld", (long long)np, (long long)total);
    OK(moe_mae_net_init_params(net, 3));
    const int64_t width = moe_mae_row_width(&cfg.h);
    rows = new_floats(BATCH * width);
    for (int64_t b = 0; b < BATCH; b++) {
        for (int64_t i = 0; i < width - 4; i++)
            rows[b * width + i] = 0.5f + 0.3f * rng_sym();
        rows[b * width + width - 4] = 10 + 5 * (float)b; /* week */
        rows[b * width + width - 3] = 9.5f;              /* hour */
        rows[b * width + width - 2] = 45 - 20 * (float)b;
        rows[b * width + width - 1] = b == 1 ? NAN : 12; /* one missing longitude */
    }
    const float mean[3] = {0.5f, 0.45f, 0.55f}, sd[3] = {0.2f, 0.25f, 0.15f};
    moe_mae_net_set_band_stats(net, mean, sd);

    /* parameters perturbed away from their init (LayerNorm at exactly 1/0 hides mistakes) */
    float *theta = new_floats(np), *grad = new_floats(np), *probe = new_floats(np);
    OK(dev->ops->download(dev, theta, moe_mae_net_params(net), sizeof(float) * (size_t)np));
    for (int64_t i = 0; i < np; i++)
        theta[i] += 0.1f * rng_sym();
    const double L0 = loss_at(theta, np);
    OK(dev->ops->download(dev, grad, moe_mae_net_grads(net), sizeof(float) * (size_t)np));
    printf("loss %.6f\n", L0);
    CHECK(isfinite(L0) && L0 > 0, "loss %g", L0);

    /* determinism: the same step again gives the same gradient bits */
    float *grad2 = new_floats(np);
    loss_at(theta, np);
    OK(dev->ops->download(dev, grad2, moe_mae_net_grads(net), sizeof(float) * (size_t)np));
    CHECK(!memcmp(grad, grad2, sizeof(float) * (size_t)np), "two runs of a step differ");

    int worst_t = -1;
    double worst = 0;
    for (int pass = 0; pass < 2; pass++) { /* pass 1: one tensor's gradient broken (×1.1) */
        int caught = 0;
        for (int t = 0; t < n_refs; t++) {
            const tensor_ref *r = &refs[t];
            double an = 0, scale = 0;
            float *v = new_floats(r->n);
            for (int64_t i = 0; i < r->n; i++) {
                v[i] = rng_unit() < 0.5 ? -1.0f : 1.0f;
                const double g = grad[r->off + i] * (pass && t == n_refs / 2 ? 1.1 : 1.0);
                an += g * v[i];
                scale += fabs(g);
            }
            memcpy(probe, theta, sizeof(float) * (size_t)np);
            for (int64_t i = 0; i < r->n; i++)
                probe[r->off + i] = theta[r->off + i] + (float)EPS * v[i];
            const double up = loss_at(probe, np);
            for (int64_t i = 0; i < r->n; i++)
                probe[r->off + i] = theta[r->off + i] - (float)EPS * v[i];
            const double down = loss_at(probe, np);
            /* the step actually taken, in float */
            double step = 0;
            for (int64_t i = 0; i < r->n; i++)
                step = fmax(step, fabs((double)(theta[r->off + i] + (float)EPS * v[i]) -
                                       (double)theta[r->off + i]));
            const double fd = (up - down) / (2 * EPS);
            const double err = fabs(fd - an) / (fabs(an) + 1e-2 * scale + NOISE);
            if (pass == 0) {
                CHECK(err <= TOL, "d%s: directional derivative %.6g, differences %.6g (rel %.2e)",
                      r->name, an, fd, err);
                if (err > worst) worst = err, worst_t = t;
            } else if (t == n_refs / 2) {
                caught = err > TOL;
            }
            free(v);
        }
        if (pass == 0)
            printf("%d tensors; worst relative error %.2e (d%s); tolerance %.0e\n", n_refs, worst,
                   worst_t >= 0 ? refs[worst_t].name : "-", TOL);
        else
            CHECK(caught, "a gradient 10%% off (d%s) was not caught", refs[n_refs / 2].name);
    }

    /* inference: a tile's embedding does not depend on its batch */
    OK(dev->ops->upload(dev, moe_mae_net_params(net), theta, sizeof(float) * (size_t)np));
    float emb_all[BATCH * 12], emb_one[12];
    OK(moe_mae_net_embed(net, rows, BATCH, emb_all, NULL));
    OK(moe_mae_net_embed(net, rows + width, 1, emb_one, NULL));
    double diff = 0;
    for (int c = 0; c < 12; c++)
        diff = fmax(diff, fabs(emb_all[12 + c] - emb_one[c]));
    CHECK(diff <= 1e-5, "embedding of tile 1 alone vs in the batch: %g", diff);
    moe_mae_net_destroy(net);

    /* the routing record of the embedding: top-1 of 3 and 4 experts, so that tiles differ */
    cfg.h.top_k = 1, cfg.h.enc.experts[0] = 3, cfg.h.enc.experts[1] = 4;
    OK(moe_mae_net_create(dev, NULL, &cfg, BATCH, &net));
    OK(moe_mae_net_init_params(net, 5));
    CHECK(moe_mae_net_max_experts(net) == 4, "max experts %d", moe_mae_net_max_experts(net));
    float load_all[BATCH * 2 * 4], load_one[2 * 4], emb_plain[BATCH * 12];
    OK(moe_mae_net_embed(net, rows, BATCH, emb_all, load_all));
    OK(moe_mae_net_embed(net, rows, BATCH, emb_plain, NULL));
    OK(moe_mae_net_embed(net, rows + width, 1, emb_one, load_one));
    CHECK(!memcmp(emb_all, emb_plain, sizeof emb_all), "the routing record changed the embedding");
    double worst_sum = 0, worst_one = 0, spread = 0;
    for (int b = 0; b < BATCH; b++)
        for (int i = 0; i < 2; i++) {
            const float *l = load_all + (b * 2 + i) * 4;
            worst_sum = fmax(worst_sum, fabs(l[0] + l[1] + l[2] + l[3] - 1.0));
            if (i == 0) CHECK(l[3] == 0.0f, "tile %d: block 0 has 3 experts, share %g on a 4th", b, l[3]);
            for (int e = 0; e < 4; e++) {
                spread = fmax(spread, fabs(l[e] - load_all[i * 4 + e]));
                if (b == 1) worst_one = fmax(worst_one, fabs(l[e] - load_one[i * 4 + e]));
            }
        }
    CHECK(worst_sum <= 1e-5, "a tile's routing shares sum to 1 ± %g", worst_sum);
    CHECK(worst_one == 0, "routing of tile 1 alone vs in the batch: %g", worst_one);
    CHECK(spread > 0, "every tile routed alike: the record is not per tile");

    moe_mae_net_destroy(net);
    saec_dev_close(dev);
    free(rows), free(theta), free(grad), free(grad2), free(probe);
    return check_summary("test_moe_mae_net");
}
