/* MoE-MAE checkpoints (moe_mae_checkpoint.h) and the network's configuration from the run's. */
#include "moe_mae_checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "run_dir.h"
#include "safetensors.h"

#define FORMAT "saec-moe-mae-checkpoint-1"

/* ---- configuration ---- */

/* A comma-separated list of positive integers into out[depth]: one value fills every block. */
static int parse_list(const char *key, const char *text, int depth, int64_t lo, int64_t hi,
                      int64_t *out) {
    int64_t v[MOE_MAE_MAX_BLOCKS];
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        const long long x = strtoll(p, &end, 10);
        if (end == p || x < lo || x > hi || n >= MOE_MAE_MAX_BLOCKS)
            return saec_fail(SAEC_ERR_USAGE, "give comma-separated integers, one per block or one",
                             "config key '%s' = '%s': bad value at '%s' (each in %lld .. %lld)",
                             key, text, p, (long long)lo, (long long)hi);
        v[n++] = x;
        p = end;
        if (*p == ',') p++;
    }
    if (n != 1 && n != depth)
        return saec_fail(SAEC_ERR_USAGE, "give one value per block, or one for every block",
                         "config key '%s' has %d values for %d blocks", key, n, depth);
    for (int i = 0; i < depth; i++)
        out[i] = v[n == 1 ? 0 : i];
    return SAEC_OK;
}

static int stack_from_config(const char *what, int64_t dim, int64_t depth, int64_t heads,
                             int64_t groups, int64_t head_dim, const char *experts_key,
                             const char *experts, const char *hidden_key, const char *hidden,
                             moe_mae_stack *s) {
    s->dim = dim, s->depth = (int)depth, s->heads = (int)heads, s->kv_groups = (int)groups;
    s->head_dim = (int)head_dim;
    if (heads % groups != 0)
        return saec_fail(SAEC_ERR_USAGE, "the query heads are shared out over the groups",
                         "moe-mae %s: heads %lld is not a multiple of kv_groups %lld", what,
                         (long long)heads, (long long)groups);
    int64_t e[MOE_MAE_MAX_BLOCKS];
    SAEC_TRY(parse_list(experts_key, experts, s->depth, 1, 8, e));
    for (int i = 0; i < s->depth; i++)
        s->experts[i] = (int)e[i];
    if (hidden[0]) return parse_list(hidden_key, hidden, s->depth, 1, 1 << 20, s->hidden);
    for (int i = 0; i < s->depth; i++) /* int(dim − dim/2·i/(depth − 1)) = dim − ⌈dim·i/(2(depth−1))⌉ */
        s->hidden[i] = s->depth > 1 ? dim - (dim * i + 2 * (depth - 1) - 1) / (2 * (depth - 1)) : dim;
    return SAEC_OK;
}

int moe_mae_cfg_from_config(const saec_config *cfg, moe_mae_cfg *out) {
    memset(out, 0, sizeof *out);
    moe_mae_hparams *h = &out->h;
    *h = moe_mae_hparams_default();
    h->image = cfg->moe_image, h->patch = cfg->moe_patch, h->top_k = (int)cfg->moe_top_k;
    if (h->image % h->patch != 0)
        return saec_fail(SAEC_ERR_USAGE, "choose moe_image a multiple of moe_patch",
                         "config keys 'moe_image' = %lld and 'moe_patch' = %lld",
                         (long long)h->image, (long long)h->patch);
    SAEC_TRY(stack_from_config("encoder", cfg->moe_enc_dim, cfg->moe_enc_depth, cfg->moe_enc_heads,
                               cfg->moe_enc_kv_groups, cfg->moe_enc_head_dim, "moe_enc_experts",
                               cfg->moe_enc_experts, "moe_enc_hidden", cfg->moe_enc_hidden,
                               &h->enc));
    SAEC_TRY(stack_from_config("decoder", cfg->moe_dec_dim, cfg->moe_dec_depth, cfg->moe_dec_heads,
                               cfg->moe_dec_kv_groups, cfg->moe_dec_head_dim, "moe_dec_experts",
                               cfg->moe_dec_experts, "moe_dec_hidden", cfg->moe_dec_hidden,
                               &h->dec));
    out->mask_ratio = cfg->moe_mask_ratio, out->dropout = cfg->moe_dropout;
    out->balance_cv = cfg->moe_balance_cv, out->balance_weight = cfg->moe_balance_weight;
    out->visible_weight = cfg->moe_visible_weight, out->ln_eps = 1e-5;
    out->use_metadata = (int)cfg->moe_metadata, out->seed = (uint64_t)cfg->seed;
    return SAEC_OK;
}

/* ---- the tensors of a file ---- */

typedef struct {
    const moe_mae_tensor *t[1024];
    int64_t off[1024];
    int n;
    int64_t total;
} tensor_list;

static void list_one(const moe_mae_tensor *t, void *ctx) {
    tensor_list *l = ctx;
    static moe_mae_tensor keep[1024]; /* the walker's tensor is a temporary */
    if (l->n >= 1024) return;
    keep[l->n] = *t;
    l->t[l->n] = &keep[l->n];
    l->off[l->n] = l->total;
    l->total += t->rows * t->cols;
    l->n++;
}

static saec_st_tensor f32(const char *name, const moe_mae_tensor *t, const float *base) {
    saec_st_tensor s = {.name = name, .dtype = SAEC_ST_F32, .data = base};
    if (t->rows == 1)
        s.ndim = 1, s.shape[0] = t->cols;
    else
        s.ndim = 2, s.shape[0] = t->rows, s.shape[1] = t->cols;
    return s;
}

/* Writes one file: the tensors named prefix + layout name from host[n_params], plus extras. */
static int write_file(const char *path, const tensor_list *l, const char *const *prefixes,
                      const float *const *hosts, int n_sets, const saec_st_tensor *extra,
                      int n_extra, const saec_st_meta *meta, int n_meta) {
    const int n = l->n * n_sets + n_extra;
    saec_st_tensor *t = calloc((size_t)n, sizeof *t);
    char(*names)[192] = calloc((size_t)(l->n * n_sets), sizeof *names);
    if (!t || !names) {
        free(t), free(names);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory saving '%s'", path);
    }
    int k = 0;
    for (int s = 0; s < n_sets; s++)
        for (int i = 0; i < l->n; i++) {
            snprintf(names[k], sizeof names[k], "%s%s", prefixes[s], l->t[i]->name);
            t[k] = f32(names[k], l->t[i], hosts[s] + l->off[i]);
            k++;
        }
    for (int i = 0; i < n_extra; i++)
        t[k++] = extra[i];
    const int rc = saec_st_write(path, t, n, meta, n_meta);
    free(t), free(names);
    return rc;
}

/* The arena [n] of the device into a new host array. */
static float *host_copy(saec_dev *dev, const float *src, int64_t n, int *rc) {
    if (*rc != SAEC_OK) return NULL;
    float *h = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!h) {
        *rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory copying the MoE-MAE");
        return NULL;
    }
    *rc = dev->ops->download(dev, h, src, sizeof(float) * (size_t)n);
    return h;
}

int moe_mae_ckpt_save(const char *dir, moe_mae_net *net, const saec_config *cfg,
                      const saec_run_state *st) {
    saec_dev *dev = moe_mae_net_dev(net);
    const moe_mae_hparams *h = moe_mae_net_hparams(net);
    tensor_list l = {.n = 0};
    moe_mae_layout(h, list_one, &l);
    const int64_t np = moe_mae_net_n_params(net);
    int rc = SAEC_OK;
    float *params = host_copy(dev, moe_mae_net_params(net), np, &rc);
    float *m1 = host_copy(dev, moe_mae_net_adam(net, 0), np, &rc);
    float *m2 = host_copy(dev, moe_mae_net_adam(net, 1), np, &rc);
    char *state = saec_run_state_json(st), *config = saec_config_to_json(cfg);
    if (rc == SAEC_OK && (!state || !config))
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory saving a checkpoint");
    /* never a checkpoint with NaN in it: the run diverged, and the previous one stays */
    for (int64_t i = 0; rc == SAEC_OK && i < np; i++)
        if (!isfinite(params[i]))
            rc = saec_fail(SAEC_ERR_OTHER, "lower lr; the previous checkpoint is kept",
                           "MoE-MAE parameters are not finite at step %lld: no checkpoint written",
                           (long long)st->step);
    char tmp[SAEC_RUN_PATH_MAX];
    int begun = 0;
    if (rc == SAEC_OK) rc = saec_ckpt_begin(dir, st->step, tmp, sizeof tmp), begun = rc == SAEC_OK;
    char path[SAEC_RUN_PATH_MAX + 64];
    if (rc == SAEC_OK) {
        const char *prefixes[2] = {"adam_m.", "adam_v."};
        const float *hosts[2] = {m1, m2};
        saec_st_meta meta[] = {{"format", FORMAT}, {"state", state}};
        saec_path_join(path, sizeof path, tmp, SAEC_CKPT_OPTIMIZER);
        rc = write_file(path, &l, prefixes, hosts, 2, NULL, 0, meta, 2);
    }
    if (rc == SAEC_OK) {
        const char *prefixes[1] = {""};
        const float *hosts[1] = {params};
        const saec_st_tensor extra[2] = {
            {.name = "data.band_mean", .dtype = SAEC_ST_F32, .ndim = 1, .shape = {h->bands},
             .data = moe_mae_net_band_mean(net)},
            {.name = "data.band_std", .dtype = SAEC_ST_F32, .ndim = 1, .shape = {h->bands},
             .data = moe_mae_net_band_std(net)}};
        saec_st_meta meta[] = {{"format", FORMAT}, {"config", config}, {"state", state}};
        saec_path_join(path, sizeof path, tmp, SAEC_CKPT_MODEL);
        rc = write_file(path, &l, prefixes, hosts, 1, extra, 2, meta, 3);
    }
    if (rc == SAEC_OK) rc = saec_ckpt_publish(dir, tmp, st->step, cfg->keep_checkpoints, -1);
    if (rc != SAEC_OK && begun) saec_ckpt_abandon(tmp);
    free(params), free(m1), free(m2), free(state), free(config);
    return rc;
}

/* Reads the tensors prefix + name of file f into host[n_params] (shapes checked, values
   finite). */
static int read_set(const saec_st_file *f, const char *path, const tensor_list *l,
                    const char *prefix, float *host) {
    for (int i = 0; i < l->n; i++) {
        char name[192];
        snprintf(name, sizeof name, "%s%s", prefix, l->t[i]->name);
        const moe_mae_tensor *t = l->t[i];
        const int64_t shape[2] = {t->rows == 1 ? t->cols : t->rows, t->cols};
        const saec_st_tensor *st = NULL;
        SAEC_TRY(saec_st_expect(f, path, name, SAEC_ST_F32, t->rows == 1 ? 1 : 2, shape, &st));
        const float *v = st->data;
        for (int64_t j = 0; j < t->rows * t->cols; j++)
            if (!isfinite(v[j]))
                return saec_fail(SAEC_ERR_DATA, "the checkpoint is damaged; an older one may load",
                                 "'%s': tensor '%s' has a non-finite value at %lld", path, name,
                                 (long long)j);
        memcpy(host + l->off[i], v, sizeof(float) * (size_t)(t->rows * t->cols));
    }
    return SAEC_OK;
}

/* One checkpoint directory: the model file (parameters, band statistics, state) and, when
   `optimizer`, the moments, whose state must be the same step. */
static int load_one(const char *ckpt, moe_mae_net *net, int optimizer, saec_run_state *st) {
    saec_dev *dev = moe_mae_net_dev(net);
    const moe_mae_hparams *h = moe_mae_net_hparams(net);
    tensor_list l = {.n = 0};
    moe_mae_layout(h, list_one, &l);
    const int64_t np = moe_mae_net_n_params(net);
    char path[SAEC_RUN_PATH_MAX + 64];
    saec_path_join(path, sizeof path, ckpt, SAEC_CKPT_MODEL);
    saec_st_file *f = NULL;
    SAEC_TRY(saec_st_open(path, &f));
    float *host = malloc(sizeof(float) * (size_t)np);
    int rc = host ? SAEC_OK : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path);
    const char *format = saec_st_meta_get(f, "format");
    if (rc == SAEC_OK && (!format || strcmp(format, FORMAT)))
        rc = saec_fail(SAEC_ERR_DATA, "give the run directory of a `saec train --model moe-mae` run",
                       "'%s' is not a MoE-MAE checkpoint (format '%s')", path,
                       format ? format : "none");
    if (rc == SAEC_OK) rc = saec_run_state_parse(saec_st_meta_get(f, "state"), path, st);
    if (rc == SAEC_OK) rc = read_set(f, path, &l, "", host);
    float mean[16], sd[16];
    for (int k = 0; rc == SAEC_OK && k < 2; k++) {
        const int64_t shape[1] = {h->bands};
        const saec_st_tensor *t = NULL;
        rc = saec_st_expect(f, path, k ? "data.band_std" : "data.band_mean", SAEC_ST_F32, 1, shape,
                            &t);
        if (rc == SAEC_OK) memcpy(k ? sd : mean, t->data, sizeof(float) * (size_t)h->bands);
    }
    saec_st_close(f);
    if (rc == SAEC_OK) rc = dev->ops->upload(dev, moe_mae_net_params(net), host, sizeof(float) * (size_t)np);
    if (rc == SAEC_OK) moe_mae_net_set_band_stats(net, mean, sd);
    if (rc == SAEC_OK && optimizer) {
        saec_path_join(path, sizeof path, ckpt, SAEC_CKPT_OPTIMIZER);
        rc = saec_st_open(path, &f);
        saec_run_state ost;
        if (rc == SAEC_OK) rc = saec_run_state_parse(saec_st_meta_get(f, "state"), path, &ost);
        if (rc == SAEC_OK && ost.step != st->step)
            rc = saec_fail(SAEC_ERR_DATA, "the checkpoint is damaged",
                           "'%s' is at step %lld but the model is at step %lld", path,
                           (long long)ost.step, (long long)st->step);
        for (int k = 0; rc == SAEC_OK && k < 2; k++) {
            rc = read_set(f, path, &l, k ? "adam_v." : "adam_m.", host);
            if (rc == SAEC_OK)
                rc = dev->ops->upload(dev, moe_mae_net_adam(net, k), host, sizeof(float) * (size_t)np);
        }
        if (f) saec_st_close(f);
    }
    free(host);
    return rc;
}

int moe_mae_ckpt_load(const char *dir, moe_mae_net *net, saec_run_state *st) {
    saec_ckpt_entry *list;
    int n;
    SAEC_TRY(saec_ckpt_list(dir, &list, &n));
    int rc = n ? SAEC_OK
               : saec_fail(SAEC_ERR_DATA, "start the run again with --out",
                           "no checkpoint in run directory '%s'", dir);
    for (int i = 0; i < n; i++) {
        rc = load_one(list[i].dir, net, 1, st);
        if (rc == SAEC_OK) break;
        if (i + 1 < n) { /* say which one is skipped, then try the older one */
            fprintf(stderr, "saec: checkpoint %s does not load (%s); trying the previous one\n",
                    list[i].dir, saec_error_message());
            saec_error_clear();
        }
    }
    free(list);
    return rc;
}

int moe_mae_ckpt_load_params(const char *dir, moe_mae_net *net, int64_t *step) {
    char ckpt[SAEC_RUN_PATH_MAX];
    SAEC_TRY(saec_ckpt_current(dir, ckpt, sizeof ckpt));
    saec_run_state st;
    SAEC_TRY(load_one(ckpt, net, 0, &st));
    if (step) *step = st.step;
    return SAEC_OK;
}
