/* The saec side of the MoE-MAE parity test with PyTorch (tests/test_moe_mae_parity.sh): writes
 * the bundles benchmarks/peers/moe_mae_torch.py checks, from the full SPEC §7 network on the CPU
 * backend, fp32.
 *
 *   moe_mae_parity_dump grad GRAD.safetensors [batch] [step] [first_sample]
 *       the initial parameters, one batch of synthetic eo tiles (raw) with their band
 *       statistics, saec's loss terms (total, masked, visible, Σ balance) and every parameter's
 *       gradient of that step;
 *   moe_mae_parity_dump curve CURVE.safetensors [steps] [batch]
 *       the initial parameters, steps·batch tiles, each step's learning rate (SPEC §7's warm-up
 *       and cosine) and saec's loss before each AdamW update.
 * The masks, router noise and dropout are drawn from the counters moe_mae_net.h documents; the
 * script draws the same ones.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eo_set.h"
#include "eo_synth.h"
#include "moe_mae_net.h"
#include "safetensors.h"
#include "saec/device.h"

#define SEED 11
#define SIDE 40

static moe_mae_tensor tensors[1024];
static int64_t offsets[1024];
static int n_tensors;
static int64_t total;
static void collect(const moe_mae_tensor *t, void *arg) {
    (void)arg;
    tensors[n_tensors] = *t;
    offsets[n_tensors++] = total;
    total += t->rows * t->cols;
}

static void die(const char *what) {
    fprintf(stderr, "moe_mae_parity_dump: %s: %s\n", what, saec_error_message());
    exit(1);
}

/* n tiles from index first: rows [n, 7·40·40 + 4] and images [n, 7, 40, 40], metadata [n, 4]. */
static void tiles(int64_t first, int64_t n, float *rows, float *images, float *meta) {
    const int64_t px = (int64_t)EO_BANDS * SIDE * SIDE, w = px + 4;
    uint8_t labels[EO_CLASSES];
    for (int64_t b = 0; b < n; b++) {
        eo_meta m;
        if (eo_synth_tile(SEED, (uint64_t)(first + b), SIDE, images + b * px, &m, labels, NULL))
            die("eo_synth_tile");
        const float mv[4] = {m.week, m.hour, m.lat, m.lon};
        memcpy(rows + b * w, images + b * px, sizeof(float) * (size_t)px);
        memcpy(rows + b * w + px, mv, sizeof mv);
        memcpy(meta + b * 4, mv, sizeof mv);
    }
}

static saec_st_tensor f32(const char *name, int ndim, const int64_t *shape, const void *data) {
    saec_st_tensor t = {.name = name, .dtype = SAEC_ST_F32, .ndim = ndim, .data = data};
    for (int i = 0; i < ndim; i++)
        t.shape[i] = shape[i];
    return t;
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "grad") && strcmp(argv[1], "curve"))) {
        fprintf(stderr, "usage: moe_mae_parity_dump grad|curve FILE [...]\n");
        return 2;
    }
    const int curve = !strcmp(argv[1], "curve");
    const int64_t steps = curve && argc > 3 ? atoll(argv[3]) : 1;
    const int64_t B = argc > (curve ? 4 : 3) ? atoll(argv[curve ? 4 : 3]) : 8;
    const int64_t step0 = !curve && argc > 4 ? atoll(argv[4]) : 0;
    const int64_t first = !curve && argc > 5 ? atoll(argv[5]) : 0;
    saec_dev *dev;
    if (saec_dev_open("cpu", &dev)) die("device");
    moe_mae_cfg c = {0};
    c.h = moe_mae_hparams_default();
    c.mask_ratio = 0.75, c.dropout = 0.1, c.balance_cv = 0.01, c.balance_weight = 0.5;
    c.visible_weight = 0.1, c.ln_eps = 1e-5, c.use_metadata = 1, c.seed = SEED;
    moe_mae_layout(&c.h, collect, NULL);
    moe_mae_net *net;
    if (moe_mae_net_create(dev, NULL, &c, B, &net)) die("net");
    if (moe_mae_net_init_params(net, SEED)) die("init");
    const int64_t np = moe_mae_net_n_params(net), px = (int64_t)EO_BANDS * SIDE * SIDE;
    const int64_t n = steps * B;
    float *rows = malloc(sizeof(float) * (size_t)(n * (px + 4)));
    float *images = malloc(sizeof(float) * (size_t)(n * px)), *meta = malloc(sizeof(float) * (size_t)(n * 4));
    float *params = malloc(sizeof(float) * (size_t)np), *grads = malloc(sizeof(float) * (size_t)np);
    if (!rows || !images || !meta || !params || !grads) die("memory");
    tiles(first, n, rows, images, meta);
    float mean[EO_BANDS], sd[EO_BANDS];
    eo_band_stats(images, n, EO_BANDS, SIDE * SIDE, mean, sd);
    moe_mae_net_set_band_stats(net, mean, sd);
    if (dev->ops->download(dev, params, moe_mae_net_params(net), sizeof(float) * (size_t)np))
        die("download");

    double *loss = calloc((size_t)(curve ? steps : 4), sizeof(double));
    double *lr = calloc((size_t)steps, sizeof(double));
    const int64_t warm = (steps + 10) / 20 > 0 ? (steps + 10) / 20 : 1;
    for (int64_t s = 0; s < steps; s++) {
        const float *r = rows + s * B * (px + 4);
        if (moe_mae_net_forward_backward(net, r, B, curve ? s : step0, curve ? 0 : first))
            die("step");
        /* SPEC §7: linear warm-up from 0 over 5% of the steps, then cosine to 0 */
        lr[s] = s < warm ? 3e-4 * (double)(s + 1) / (double)warm
                         : 3e-4 * 0.5 * (1 + cos(3.141592653589793 * (double)(s - warm) /
                                                 (double)(steps - warm)));
        if (curve) {
            const saec_adamw_args a = {.lr = (float)lr[s], .beta1 = 0.9f, .beta2 = 0.999f,
                                       .eps = 1e-8f, .weight_decay = 0.05f, .step = s + 1,
                                       .max_grad_norm = 1.0f};
            if (moe_mae_net_adamw(net, a)) die("adamw");
        }
        moe_mae_stats st;
        if (moe_mae_net_read_stats(net, &st)) die("stats");
        if (curve) {
            loss[s] = st.loss;
        } else {
            loss[0] = st.loss, loss[1] = st.masked, loss[2] = st.visible, loss[3] = st.balance;
        }
    }
    if (!curve &&
        dev->ops->download(dev, grads, moe_mae_net_grads(net), sizeof(float) * (size_t)np))
        die("download");

    /* the bundle: parameters (and gradients), inputs, expectations */
    saec_st_tensor *t = calloc((size_t)(2 * n_tensors + 8), sizeof *t);
    char(*names)[160] = calloc((size_t)n_tensors, sizeof *names);
    int k = 0;
    for (int i = 0; i < n_tensors; i++) {
        const int64_t shape[2] = {tensors[i].rows, tensors[i].cols};
        t[k++] = f32(tensors[i].name, 2, shape, params + offsets[i]);
        if (!curve) {
            snprintf(names[i], sizeof names[i], "grad.%.150s", tensors[i].name);
            t[k++] = f32(names[i], 2, shape, grads + offsets[i]);
        }
    }
    const int64_t ishape[4] = {n, EO_BANDS, SIDE, SIDE}, mshape[2] = {n, 4}, bshape[1] = {EO_BANDS};
    t[k++] = f32("input.images", 4, ishape, images);
    t[k++] = f32("input.metadata", 2, mshape, meta);
    t[k++] = f32("input.band_mean", 1, bshape, mean);
    t[k++] = f32("input.band_std", 1, bshape, sd);
    t[k++] = (saec_st_tensor){.name = "expect.loss", .dtype = SAEC_ST_F64, .ndim = 1,
                              .shape = {curve ? steps : 4}, .data = loss};
    if (curve)
        t[k++] = (saec_st_tensor){.name = "lr", .dtype = SAEC_ST_F64, .ndim = 1, .shape = {steps},
                                  .data = lr};
    char seed[16], sstep[32], sfirst[32], ssteps[32], sbatch[32];
    snprintf(seed, sizeof seed, "%d", SEED);
    snprintf(sstep, sizeof sstep, "%lld", (long long)step0);
    snprintf(sfirst, sizeof sfirst, "%lld", (long long)first);
    snprintf(ssteps, sizeof ssteps, "%lld", (long long)steps);
    snprintf(sbatch, sizeof sbatch, "%lld", (long long)B);
    const saec_st_meta gmeta[] = {{"seed", seed}, {"step", sstep}, {"first_sample", sfirst}};
    const saec_st_meta cmeta[] = {{"seed", seed},          {"steps", ssteps},     {"batch", sbatch},
                                  {"beta1", "0.9"},        {"beta2", "0.999"},    {"eps", "1e-08"},
                                  {"weight_decay", "0.05"}, {"max_grad_norm", "1"}};
    if (saec_st_write(argv[2], t, k, curve ? cmeta : gmeta, curve ? 8 : 3)) die(argv[2]);
    printf("moe_mae_parity_dump: %s: %lld steps of %lld tiles, loss %.6f%s\n", argv[2],
           (long long)steps, (long long)B, loss[0], curve ? " (first step)" : "");
    moe_mae_net_destroy(net);
    saec_dev_close(dev);
    free(rows), free(images), free(meta), free(params), free(grads), free(loss), free(lr), free(t),
        free(names);
    return 0;
}
