/* Model I/O: read a saec run directory or a SAELens / sparsify export into one host-side model,
   move it between units, and copy it into a device SAE (model_io.h explains the units and draws
   the dependencies: this file sits below checkpoint.c and export.c and includes neither). */
#include "model_io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fsutil.h"
#include "run_dir.h"
#include "saec/device.h"
#include "saec/saec.h"
#include "safetensors.h"

static const char *const model_hint = "check the export directory with `saec inspect`";

saec_model_kind saec_model_detect(const char *dir) {
    char path[1100];
    saec_path_join(path, sizeof path, dir, SAEC_CKPT_MODEL);
    if (saec_path_exists(path)) return SAEC_MODEL_RUN;
    saec_path_join(path, sizeof path, dir, SAEC_SAELENS_WEIGHTS);
    if (saec_path_exists(path)) return SAEC_MODEL_SAELENS;
    saec_path_join(path, sizeof path, dir, SAEC_SPARSIFY_WEIGHTS);
    if (saec_path_exists(path)) return SAEC_MODEL_SPARSIFY;
    return SAEC_MODEL_NONE;
}

const char *saec_model_kind_name(saec_model_kind kind) {
    switch (kind) {
    case SAEC_MODEL_RUN: return "saec run";
    case SAEC_MODEL_SAELENS: return "SAELens export";
    case SAEC_MODEL_SPARSIFY: return "sparsify export";
    default: return "unknown";
    }
}

/* ---- what checkpoint.c stores in the metadata -------------------------------------------- */

char *saec_run_state_json(const saec_run_state *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "tokens", (double)st->tokens);
    cJSON_AddNumberToObject(o, "data_cursor", (double)st->data_cursor);
    cJSON_AddNumberToObject(o, "seconds", st->seconds);
    cJSON_AddNumberToObject(o, "global_batch", (double)st->global_batch);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

int saec_run_state_parse(const char *text, const char *path, saec_run_state *st) {
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    const char *keys[] = {"step", "tokens", "data_cursor", "seconds"};
    double vals[4];
    for (int i = 0; i < 4; i++) {
        cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, keys[i]) : NULL;
        if (!cJSON_IsNumber(v)) {
            cJSON_Delete(o);
            return saec_fail(SAEC_ERR_DATA, "the checkpoint is damaged or not from saec",
                             "'%s': run state lacks '%s'", path, keys[i]);
        }
        vals[i] = v->valuedouble;
    }
    cJSON *gb =
        cJSON_GetObjectItemCaseSensitive(o, "global_batch"); /* absent in older checkpoints */
    *st = (saec_run_state){(int64_t)vals[0], (int64_t)vals[1], (int64_t)vals[2], vals[3],
                           cJSON_IsNumber(gb) ? (int64_t)gb->valuedouble : 0};
    cJSON_Delete(o);
    return SAEC_OK;
}

int saec_model_read_config(const char *ckpt_dir, saec_config *cfg) {
    char path[SAEC_RUN_PATH_MAX + 64];
    saec_path_join(path, sizeof path, ckpt_dir, SAEC_CKPT_MODEL);
    saec_st_file *f = NULL;
    SAEC_TRY(saec_st_open(path, &f));
    const char *config = saec_st_meta_get(f, "config");
    int rc;
    if (!config) {
        rc = saec_fail(SAEC_ERR_DATA, "the checkpoint is damaged or not from saec",
                       "'%s' has no config in its metadata", path);
    } else {
        saec_config_defaults(cfg);
        char where[SAEC_RUN_PATH_MAX + 96];
        snprintf(where, sizeof where, "checkpoint %s", path);
        rc = saec_config_from_json_text(cfg, config, where);
    }
    saec_st_close(f);
    return rc;
}

/* ---- the host model ---------------------------------------------------------------------- */

void saec_host_model_free(saec_host_model *hm) {
    if (!hm) return;
    free(hm->W_enc_t), free(hm->b_enc), free(hm->W_dec), free(hm->b_dec), free(hm->data_mean);
    free(hm->log_theta), free(hm->ts_scale), free(hm->ts_shift);
    hm->W_enc_t = hm->b_enc = hm->W_dec = hm->b_dec = hm->data_mean = hm->log_theta = NULL;
    hm->ts_scale = hm->ts_shift = NULL;
    for (int i = 0; i < 6; i++)
        free(hm->adaln[i]), hm->adaln[i] = NULL;
}

static int host_model_alloc(saec_host_model *hm, int64_t d, int64_t m) {
    hm->d = d, hm->m = m;
    hm->W_enc_t = malloc(sizeof(float) * (size_t)(m * d));
    hm->b_enc = malloc(sizeof(float) * (size_t)m);
    hm->W_dec = malloc(sizeof(float) * (size_t)(m * d));
    hm->b_dec = malloc(sizeof(float) * (size_t)d);
    if (!hm->W_enc_t || !hm->b_enc || !hm->W_dec || !hm->b_dec)
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading an SAE (d=%lld, m=%lld)",
                         (long long)d, (long long)m);
    return SAEC_OK;
}

static void host_model_init(saec_host_model *hm, saec_model_kind kind) {
    memset(hm, 0, sizeof *hm);
    hm->kind = kind;
    hm->arch = SAE_TOPK;
    hm->scale = 1.0f;
    hm->step = -1;
}

/* Weights that are NaN or Inf would poison every later step: refuse them, naming the tensor. */
static int check_finite(const float *x, int64_t n, const char *path, const char *name) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return saec_fail(SAEC_ERR_DATA, model_hint,
                             "'%s': tensor '%s' has a non-finite value at element %lld", path, name,
                             (long long)i);
    return SAEC_OK;
}

/* Copy a named F32 tensor of the given shape (-1 = any) into dst; returns it in *out. */
static int take_tensor(const saec_st_file *f, const char *path, const char *name, int ndim,
                       int64_t rows, int64_t cols, float *dst, const saec_st_tensor **out) {
    const saec_st_tensor *t = NULL;
    int64_t shape[2] = {rows, cols};
    SAEC_TRY(saec_st_expect(f, path, name, SAEC_ST_F32, ndim, shape, &t));
    if (dst) {
        memcpy(dst, t->data, sizeof(float) * (size_t)saec_st_numel(t));
        SAEC_TRY(check_finite(dst, saec_st_numel(t), path, name));
    }
    if (out) *out = t;
    return SAEC_OK;
}

/* Shapes of the adaln MLP's tensors for embedding width E, in sae_layout.c's layout order. */
static void adaln_shapes(int64_t E, int64_t d, int64_t rows[6], int64_t cols[6]) {
    const int64_t r[6] = {E, E, E, d, E, d}, c[6] = {E, 1, d, 1, d, 1};
    memcpy(rows, r, sizeof r), memcpy(cols, c, sizeof c);
}

static int read_adaln(saec_st_file *f, const char *path, int64_t d, saec_host_model *hm) {
    static const char *const names[6] = {"adaln_W1",      "adaln_b1",      "adaln_W_scale",
                                         "adaln_b_scale", "adaln_W_shift", "adaln_b_shift"};
    const saec_st_tensor *w1 = saec_st_find(f, "adaln_W1");
    const int64_t E = w1->ndim == 2 ? w1->shape[0] : 0;
    int64_t rows[6], cols[6];
    adaln_shapes(E, d, rows, cols);
    hm->adaln_dim = E;
    for (int i = 0; i < 6; i++) {
        hm->adaln[i] = malloc(sizeof(float) * (size_t)(rows[i] * cols[i] + 1));
        if (!hm->adaln[i]) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading an SAE");
        SAEC_TRY(take_tensor(f, path, names[i], cols[i] > 1 ? 2 : 1, rows[i], cols[i], hm->adaln[i],
                             NULL));
    }
    return SAEC_OK;
}

/* A saec run directory: its newest checkpoint, in the run's normalised units. */
static int read_run(const char *run_dir, saec_host_model *hm) {
    char dir[SAEC_RUN_PATH_MAX]; /* resolved once: a save publishing meanwhile cannot mix steps */
    SAEC_TRY(saec_ckpt_current(run_dir, dir, sizeof dir));
    SAEC_TRY(saec_model_read_config(dir, &hm->cfg));
    hm->has_config = 1;
    const int64_t d = hm->cfg.d_in, m = hm->cfg.latents;
    hm->k = hm->cfg.k;
    hm->arch = saec_config_arch(&hm->cfg);
    SAEC_TRY(host_model_alloc(hm, d, m));
    hm->data_mean = malloc(sizeof(float) * (size_t)d);
    if (!hm->data_mean) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading an SAE");

    char path[1100];
    saec_path_join(path, sizeof path, dir, SAEC_CKPT_MODEL);
    saec_st_file *f = NULL;
    SAEC_TRY(saec_st_open(path, &f));
    int rc = take_tensor(f, path, "W_enc_t", 2, m, d, hm->W_enc_t, NULL);
    if (rc == SAEC_OK) rc = take_tensor(f, path, "b_enc", 1, m, 1, hm->b_enc, NULL);
    if (rc == SAEC_OK) rc = take_tensor(f, path, "W_dec", 2, m, d, hm->W_dec, NULL);
    if (rc == SAEC_OK) rc = take_tensor(f, path, "b_dec", 1, d, 1, hm->b_dec, NULL);
    if (rc == SAEC_OK) rc = take_tensor(f, path, "data_mean", 1, d, 1, hm->data_mean, NULL);
    if (rc == SAEC_OK && hm->arch == SAE_JUMPRELU) {
        hm->log_theta = malloc(sizeof(float) * (size_t)m);
        rc = hm->log_theta ? take_tensor(f, path, "log_theta", 1, m, 1, hm->log_theta, NULL)
                           : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading an SAE");
    }
    if (rc == SAEC_OK && hm->arch == SAE_BATCHTOPK)
        rc = take_tensor(f, path, "batchtopk_threshold", 1, 1, 1, &hm->bt_threshold, NULL);
    const saec_st_tensor *ts = rc == SAEC_OK ? saec_st_find(f, "ts_scale") : NULL;
    if (ts) { /* TIDE bucket mode: per-bucket modulation of the encoder input */
        const int64_t B = ts->ndim == 2 ? ts->shape[0] : 0;
        hm->ts_buckets = B;
        hm->ts_scale = malloc(sizeof(float) * (size_t)(B * d + 1));
        hm->ts_shift = malloc(sizeof(float) * (size_t)(B * d + 1));
        rc = hm->ts_scale && hm->ts_shift
                 ? take_tensor(f, path, "ts_scale", 2, B, d, hm->ts_scale, NULL)
                 : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading an SAE");
        if (rc == SAEC_OK) rc = take_tensor(f, path, "ts_shift", 2, B, d, hm->ts_shift, NULL);
    }
    if (rc == SAEC_OK && saec_st_find(f, "adaln_W1")) /* TIDE adaln mode: the timestep MLP */
        rc = read_adaln(f, path, d, hm);
    float s = 0;
    if (rc == SAEC_OK) rc = take_tensor(f, path, "data_scale", 1, 1, 1, &s, NULL);
    if (rc == SAEC_OK && !(s > 0))
        rc = saec_fail(SAEC_ERR_DATA, model_hint, "'%s': data_scale is %g, expected > 0", path, s);
    if (rc == SAEC_OK) {
        hm->scale = s;
        hm->data_scale = s;
        rc = saec_run_state_parse(saec_st_meta_get(f, "state"), path, &hm->run_state);
        if (rc == SAEC_OK) hm->step = hm->run_state.step;
    }
    saec_st_close(f);
    return rc;
}

/* ---- cfg.json helpers -------------------------------------------------------------------- */

static int read_json(const char *path, cJSON **out) {
    *out = NULL;
    if (!saec_path_exists(path))
        return saec_fail(SAEC_ERR_DATA, "an export holds cfg.json beside its weights",
                         "missing '%s'", path);
    char *text = NULL;
    SAEC_TRY(saec_read_file(path, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return saec_fail(SAEC_ERR_DATA, model_hint, "'%s' is not a JSON object", path);
    }
    *out = root;
    return SAEC_OK;
}

/* An optional whole number: *out keeps its value when the key is absent or null. */
static int json_int(const cJSON *o, const char *key, const char *path, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return SAEC_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0)
        return saec_fail(SAEC_ERR_DATA, model_hint, "'%s': key '%s' is not a whole number", path,
                         key);
    *out = (int64_t)v->valuedouble;
    return SAEC_OK;
}

/* An optional boolean, `def` when absent or null. */
static int json_bool(const cJSON *o, const char *key, const char *path, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return SAEC_OK;
    if (!cJSON_IsBool(v))
        return saec_fail(SAEC_ERR_DATA, model_hint, "'%s': key '%s' is not true or false", path,
                         key);
    *out = cJSON_IsTrue(v);
    return SAEC_OK;
}

/* An optional string, `def` when absent or null. */
static int json_str(const cJSON *o, const char *key, const char *path, const char *def,
                    const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return SAEC_OK;
    if (!cJSON_IsString(v))
        return saec_fail(SAEC_ERR_DATA, model_hint, "'%s': key '%s' is not a string", path, key);
    *out = v->valuestring;
    return SAEC_OK;
}

static int unsupported(const char *path, const char *what) {
    return saec_fail(SAEC_ERR_DATA,
                     "saec loads TopK, JumpReLU and standard (ReLU) SAEs without extras",
                     "'%s': %s is not supported", path, what);
}

/* The shapes read from the weights must agree with the sizes cfg.json states. */
static int check_size(const char *path, const char *key, int64_t stated, int64_t actual,
                      const char *weights) {
    if (stated > 0 && stated != actual)
        return saec_fail(SAEC_ERR_DATA, model_hint,
                         "'%s': %s = %lld but the weights in '%s' have %lld", path, key,
                         (long long)stated, weights, (long long)actual);
    return SAEC_OK;
}

/* saec's own provenance in cfg.json ("saec"): μ, the training scale, the step and the training
   run's configuration. Absent in exports made by other tools. */
static int read_provenance(const cJSON *root, const char *path, saec_host_model *hm) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "saec");
    if (!cJSON_IsObject(p)) return SAEC_OK;
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(p, "data_mean");
    if (mean && !cJSON_IsNull(mean)) {
        if (!cJSON_IsArray(mean) || cJSON_GetArraySize(mean) != hm->d)
            return saec_fail(SAEC_ERR_DATA, model_hint,
                             "'%s': saec.data_mean is not a list of %lld numbers", path,
                             (long long)hm->d);
        hm->data_mean = malloc(sizeof(float) * (size_t)hm->d);
        if (!hm->data_mean) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading an SAE");
        int64_t j = 0;
        for (const cJSON *v = mean->child; v; v = v->next, j++) {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
                return saec_fail(SAEC_ERR_DATA, model_hint,
                                 "'%s': saec.data_mean[%lld] is not a finite number", path,
                                 (long long)j);
            hm->data_mean[j] = (float)v->valuedouble;
        }
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "data_scale");
    if (cJSON_IsNumber(s) && s->valuedouble > 0) hm->data_scale = s->valuedouble;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(p, "step");
    if (cJSON_IsNumber(step)) hm->step = (int64_t)step->valuedouble;
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(p, "config");
    if (cJSON_IsObject(config)) {
        char *text = cJSON_PrintUnformatted(config);
        char where[1200];
        snprintf(where, sizeof where, "saec.config in %s", path);
        saec_config_defaults(&hm->cfg);
        int rc = text ? saec_config_from_json_text(&hm->cfg, text, where)
                      : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path);
        free(text);
        SAEC_TRY(rc);
        hm->has_config = 1;
    }
    return SAEC_OK;
}

/* ---- SAELens ----------------------------------------------------------------------------- */

/* cfg.json (at cfg_path) and the weights (at path) of a SAELens export. */
static int read_saelens(const cJSON *cfg, const char *cfg_path, const char *path,
                        saec_host_model *hm) {
    saec_st_file *f = NULL;
    int rc = SAEC_OK;
    const char *arch = NULL, *norm = NULL;
    int apply_b_dec = 1, rescale = 0;
    int64_t k = 0, d_in = 0, d_sae = 0;
    /* SAELens defaults a missing architecture to "standard" (ReLU). */
    rc = json_str(cfg, "architecture", cfg_path, "standard", &arch);
    const int is_topk = rc == SAEC_OK && strcmp(arch, "topk") == 0;
    const int is_jumprelu = rc == SAEC_OK && strcmp(arch, "jumprelu") == 0;
    if (rc == SAEC_OK && !is_topk && !is_jumprelu && strcmp(arch, "standard") != 0) {
        char what[96];
        snprintf(what, sizeof what, "architecture '%.40s'", arch);
        rc = unsupported(cfg_path, what);
    }
    if (rc == SAEC_OK) hm->arch = is_topk ? SAE_TOPK : is_jumprelu ? SAE_JUMPRELU : SAE_RELU;
    if (rc == SAEC_OK) rc = json_int(cfg, "k", cfg_path, &k);
    if (rc == SAEC_OK && k == 0) { /* configs before SAELens 6 keep k in activation_fn_kwargs */
        const cJSON *kw = cJSON_GetObjectItemCaseSensitive(cfg, "activation_fn_kwargs");
        if (cJSON_IsObject(kw)) rc = json_int(kw, "k", cfg_path, &k);
    }
    if (rc == SAEC_OK && !is_topk && k < 1) k = 1; /* unused by ReLU and JumpReLU */
    if (rc == SAEC_OK && k < 1)
        rc =
            saec_fail(SAEC_ERR_DATA, model_hint, "'%s': a TopK SAE needs a key 'k' >= 1", cfg_path);
    if (rc == SAEC_OK) rc = json_int(cfg, "d_in", cfg_path, &d_in);
    if (rc == SAEC_OK) rc = json_int(cfg, "d_sae", cfg_path, &d_sae);
    if (rc == SAEC_OK) rc = json_bool(cfg, "apply_b_dec_to_input", cfg_path, 1, &apply_b_dec);
    if (rc == SAEC_OK) rc = json_bool(cfg, "rescale_acts_by_decoder_norm", cfg_path, 0, &rescale);
    if (rc == SAEC_OK && rescale) rc = unsupported(cfg_path, "rescale_acts_by_decoder_norm = true");
    if (rc == SAEC_OK) rc = json_str(cfg, "normalize_activations", cfg_path, "none", &norm);
    if (rc == SAEC_OK && strcmp(norm, "none") != 0) {
        char what[96];
        snprintf(what, sizeof what, "normalize_activations '%.40s'", norm);
        rc = unsupported(cfg_path, what);
    }

    if (rc == SAEC_OK && !saec_path_exists(path))
        rc = saec_fail(SAEC_ERR_DATA, model_hint, "missing '%s'", path);
    if (rc == SAEC_OK) rc = saec_st_open(path, &f);
    const saec_st_tensor *w = NULL;
    if (rc == SAEC_OK) rc = take_tensor(f, path, "W_enc", 2, -1, -1, NULL, &w); /* [d, m] */
    const int64_t d = w ? w->shape[0] : 0, m = w ? w->shape[1] : 0;
    if (rc == SAEC_OK) rc = check_size(cfg_path, "d_in", d_in, d, SAEC_SAELENS_WEIGHTS);
    if (rc == SAEC_OK) rc = check_size(cfg_path, "d_sae", d_sae, m, SAEC_SAELENS_WEIGHTS);
    if (rc == SAEC_OK && k > m)
        rc = saec_fail(SAEC_ERR_DATA, model_hint, "'%s': k = %lld exceeds d_sae = %lld", cfg_path,
                       (long long)k, (long long)m);
    if (rc == SAEC_OK) rc = host_model_alloc(hm, d, m);
    /* Checked in the file's [d, m] order so a reported element index points into the file. */
    if (rc == SAEC_OK) rc = check_finite(w->data, d * m, path, "W_enc");
    if (rc == SAEC_OK) {
        hm->k = k;
        const float *W_enc = w->data;
        for (int64_t j = 0; j < m; j++)
            for (int64_t i = 0; i < d; i++)
                hm->W_enc_t[j * d + i] = W_enc[i * m + j];
    }
    if (rc == SAEC_OK) rc = take_tensor(f, path, "b_enc", 1, m, 1, hm->b_enc, NULL);
    if (rc == SAEC_OK) rc = take_tensor(f, path, "W_dec", 2, m, d, hm->W_dec, NULL);
    if (rc == SAEC_OK) rc = take_tensor(f, path, "b_dec", 1, d, 1, hm->b_dec, NULL);
    if (rc == SAEC_OK && is_jumprelu) {
        hm->log_theta = malloc(sizeof(float) * (size_t)m);
        rc = hm->log_theta ? take_tensor(f, path, "threshold", 1, m, 1, hm->log_theta, NULL)
                           : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading an SAE");
        for (int64_t j = 0; rc == SAEC_OK && j < m; j++) {
            if (!(hm->log_theta[j] > 0))
                rc = saec_fail(SAEC_ERR_DATA, model_hint,
                               "'%s': JumpReLU threshold[%lld] = %g, expected > 0", path,
                               (long long)j, (double)hm->log_theta[j]);
            else
                hm->log_theta[j] = logf(hm->log_theta[j]);
        }
    }
    /* Without b_dec on the input, pre = x W_enc + b_enc = (x − b_dec) W_enc + (b_enc + b_dec
       W_enc): the same SAE in saec's form. */
    if (rc == SAEC_OK && !apply_b_dec)
        for (int64_t j = 0; j < m; j++) {
            double acc = hm->b_enc[j];
            for (int64_t i = 0; i < d; i++)
                acc += (double)hm->W_enc_t[j * d + i] * hm->b_dec[i];
            hm->b_enc[j] = (float)acc;
        }
    saec_st_close(f);
    return rc;
}

/* ---- sparsify ---------------------------------------------------------------------------- */

/* cfg.json (at cfg_path) and the weights (at path) of a sparsify export. */
static int read_sparsify(const cJSON *cfg, const char *cfg_path, const char *path,
                         saec_host_model *hm) {
    saec_st_file *f = NULL;
    const char *activation = NULL;
    int skip = 0, transcode = 0;
    int64_t k = 32, d_in = 0, num_latents = 0; /* sparsify's SparseCoderConfig default k = 32 */
    int rc = json_str(cfg, "activation", cfg_path, "topk", &activation);
    if (rc == SAEC_OK && strcmp(activation, "topk") != 0) {
        char what[96];
        snprintf(what, sizeof what, "activation '%.40s'", activation);
        rc = unsupported(cfg_path, what);
    }
    if (rc == SAEC_OK) rc = json_int(cfg, "k", cfg_path, &k);
    if (rc == SAEC_OK && k < 1)
        rc = saec_fail(SAEC_ERR_DATA, model_hint, "'%s': key 'k' must be >= 1", cfg_path);
    if (rc == SAEC_OK) rc = json_int(cfg, "d_in", cfg_path, &d_in);
    if (rc == SAEC_OK) rc = json_int(cfg, "num_latents", cfg_path, &num_latents);
    if (rc == SAEC_OK) rc = json_bool(cfg, "skip_connection", cfg_path, 0, &skip);
    if (rc == SAEC_OK && skip) rc = unsupported(cfg_path, "skip_connection = true");
    if (rc == SAEC_OK) rc = json_bool(cfg, "transcode", cfg_path, 0, &transcode);
    if (rc == SAEC_OK && transcode) rc = unsupported(cfg_path, "a transcoder (transcode = true)");

    if (rc == SAEC_OK && !saec_path_exists(path))
        rc = saec_fail(SAEC_ERR_DATA, model_hint, "missing '%s'", path);
    if (rc == SAEC_OK) rc = saec_st_open(path, &f);
    const saec_st_tensor *w = NULL;
    if (rc == SAEC_OK)
        rc = take_tensor(f, path, "encoder.weight", 2, -1, -1, NULL, &w); /* [m, d] */
    const int64_t m = w ? w->shape[0] : 0, d = w ? w->shape[1] : 0;
    if (rc == SAEC_OK) rc = check_size(cfg_path, "d_in", d_in, d, SAEC_SPARSIFY_WEIGHTS);
    if (rc == SAEC_OK)
        rc = check_size(cfg_path, "num_latents", num_latents, m, SAEC_SPARSIFY_WEIGHTS);
    if (rc == SAEC_OK && k > m)
        rc = saec_fail(SAEC_ERR_DATA, model_hint, "'%s': k = %lld exceeds the %lld latents",
                       cfg_path, (long long)k, (long long)m);
    if (rc == SAEC_OK) rc = host_model_alloc(hm, d, m);
    if (rc == SAEC_OK) {
        hm->k = k;
        rc = take_tensor(f, path, "encoder.weight", 2, m, d, hm->W_enc_t, NULL);
    }
    if (rc == SAEC_OK) rc = take_tensor(f, path, "encoder.bias", 1, m, 1, hm->b_enc, NULL);
    if (rc == SAEC_OK) rc = take_tensor(f, path, "W_dec", 2, m, d, hm->W_dec, NULL);
    if (rc == SAEC_OK) rc = take_tensor(f, path, "b_dec", 1, d, 1, hm->b_dec, NULL);
    if (rc == SAEC_OK && saec_st_find(f, "W_skip")) rc = unsupported(path, "tensor 'W_skip'");
    saec_st_close(f);
    return rc;
}

/* An export directory: its cfg.json, the layout's own reader, then saec's provenance. */
static int read_export(const char *dir, saec_host_model *hm) {
    const int saelens = hm->kind == SAEC_MODEL_SAELENS;
    char cfg_path[1100], path[1100];
    saec_path_join(cfg_path, sizeof cfg_path, dir, SAEC_EXPORT_CFG);
    saec_path_join(path, sizeof path, dir, saelens ? SAEC_SAELENS_WEIGHTS : SAEC_SPARSIFY_WEIGHTS);
    cJSON *cfg = NULL;
    SAEC_TRY(read_json(cfg_path, &cfg));
    int rc =
        saelens ? read_saelens(cfg, cfg_path, path, hm) : read_sparsify(cfg, cfg_path, path, hm);
    if (rc == SAEC_OK) rc = read_provenance(cfg, cfg_path, hm);
    cJSON_Delete(cfg);
    return rc;
}

int saec_host_model_read(const char *dir, saec_host_model *out) {
    const saec_model_kind kind = saec_model_detect(dir);
    host_model_init(out, kind);
    int rc;
    switch (kind) {
    case SAEC_MODEL_RUN: rc = read_run(dir, out); break;
    case SAEC_MODEL_SAELENS:
    case SAEC_MODEL_SPARSIFY: rc = read_export(dir, out); break;
    default:
        rc = saec_fail(SAEC_ERR_DATA,
                       "give a run directory written by 'saec train' or a directory written by "
                       "'saec export' (SAELens or sparsify layout)",
                       "'%s' holds no SAE: none of %s, %s, %s found", dir, SAEC_CKPT_MODEL,
                       SAEC_SAELENS_WEIGHTS, SAEC_SPARSIFY_WEIGHTS);
    }
    if (rc != SAEC_OK) {
        saec_host_model_free(out);
        return rc;
    }
    /* The weights are authoritative for the sizes; cfg.json's k for the inference k. */
    if (out->has_config) {
        out->cfg.d_in = out->d;
        out->cfg.latents = out->m;
        out->cfg.k = out->k;
        /* A BatchTopK run exported to SAELens reads back as the JumpReLU it was written as. */
        snprintf(out->cfg.arch, sizeof out->cfg.arch, "%s", sae_arch_name(out->arch));
    }
    return SAEC_OK;
}

void saec_host_model_config(const saec_host_model *hm, saec_config *cfg) {
    if (hm->has_config) {
        *cfg = hm->cfg;
    } else {
        saec_config_defaults(cfg);
        cfg->d_in = hm->d;
        cfg->latents = hm->m;
        cfg->k = hm->k;
        snprintf(cfg->arch, sizeof cfg->arch, "%s", sae_arch_name(hm->arch));
    }
    saec_config_resolve(cfg);
}

sae_ts_mode saec_host_model_timestep_mode(const saec_host_model *hm) {
    if (hm->ts_scale) return SAE_TS_BUCKET;
    if (hm->adaln[0]) return SAE_TS_ADALN;
    /* separate mode has the plain layout: only the run's configuration tells */
    if (hm->has_config && saec_config_timestep_mode(&hm->cfg, 0) == SAE_TS_SEPARATE)
        return SAE_TS_SEPARATE;
    return SAE_TS_NONE;
}

void saec_host_model_set_scale(saec_host_model *hm, float scale) {
    const double r = (double)hm->scale / (double)scale;
    for (int64_t j = 0; j < hm->m; j++)
        hm->b_enc[j] = (float)(r * hm->b_enc[j]);
    for (int64_t i = 0; i < hm->d; i++)
        hm->b_dec[i] = (float)(r * hm->b_dec[i]);
    if (hm->data_mean)
        for (int64_t i = 0; i < hm->d; i++)
            hm->data_mean[i] = (float)(r * hm->data_mean[i]);
    if (hm->log_theta && r != 1.0)
        for (int64_t j = 0; j < hm->m; j++)
            hm->log_theta[j] = (float)(hm->log_theta[j] + log(r));
    hm->bt_threshold = (float)(r * hm->bt_threshold);
    if (hm->ts_shift && r != 1.0)
        for (int64_t i = 0; i < hm->ts_buckets * hm->d; i++)
            hm->ts_shift[i] = (float)(r * hm->ts_shift[i]);
    if (hm->adaln[4] && r != 1.0) /* h = h1 W_shift + b_shift is added to the input */
        for (int i = 4; i < 6; i++)
            for (int64_t j = 0; j < (i == 4 ? hm->adaln_dim : 1) * hm->d; j++)
                hm->adaln[i][j] = (float)(r * hm->adaln[i][j]);
    hm->scale = scale;
}

int saec_host_model_fill_mean(saec_host_model *hm, const saec_config *data_cfg, int64_t rows) {
    if (hm->data_mean) return SAEC_OK;
    saec_config cfg = *data_cfg;
    cfg.d_in = hm->d;
    saec_data *src = NULL;
    SAEC_TRY(saec_data_open(&cfg, SAEC_STREAM_EVAL, &src));
    if (src->info.n_rows >= 0 && rows > src->info.n_rows) rows = src->info.n_rows;
    float *x = malloc(sizeof(float) * (size_t)(rows * hm->d));
    double *acc = calloc((size_t)hm->d, sizeof(double));
    hm->data_mean = malloc(sizeof(float) * (size_t)hm->d);
    int rc = x && acc && hm->data_mean
                 ? SAEC_OK
                 : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the data mean");
    if (rc == SAEC_OK && rows < 1)
        rc = saec_fail(SAEC_ERR_DATA, "give data with rows", "no rows to measure the data mean on");
    if (rc == SAEC_OK) rc = saec_data_next(src, rows, x, NULL);
    if (rc == SAEC_OK) {
        for (int64_t n = 0; n < rows; n++)
            for (int64_t i = 0; i < hm->d; i++)
                acc[i] += x[n * hm->d + i];
        for (int64_t i = 0; i < hm->d; i++)
            hm->data_mean[i] = (float)(acc[i] / (double)rows / hm->scale);
        fprintf(stderr,
                "saec: the SAE does not record its data mean; nmse is about the mean of the "
                "first %lld rows of %s\n",
                (long long)rows, src->info.description);
    } else {
        free(hm->data_mean);
        hm->data_mean = NULL;
    }
    free(x), free(acc);
    saec_data_close(src);
    return rc;
}

int saec_host_model_upload(const saec_host_model *hm, saec_sae *sae) {
    if (hm->d != sae->d || hm->m != sae->m)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: SAE sizes differ from the model's");
    saec_dev *dev = sae->dev;
    const size_t md = sizeof(float) * (size_t)(hm->m * hm->d);
    SAEC_TRY(dev->ops->upload(dev, sae->params.W_enc_t, hm->W_enc_t, md));
    SAEC_TRY(dev->ops->upload(dev, sae->params.b_enc, hm->b_enc, sizeof(float) * (size_t)hm->m));
    SAEC_TRY(dev->ops->upload(dev, sae->params.W_dec, hm->W_dec, md));
    SAEC_TRY(dev->ops->upload(dev, sae->params.b_dec, hm->b_dec, sizeof(float) * (size_t)hm->d));
    if (hm->data_mean)
        SAEC_TRY(
            dev->ops->upload(dev, sae->data_mean, hm->data_mean, sizeof(float) * (size_t)hm->d));
    else
        SAEC_TRY(dev->ops->zero(dev, sae->data_mean, sizeof(float) * (size_t)hm->d));
    sae->scale = hm->scale;
    if (sae->arch == SAE_JUMPRELU && hm->log_theta)
        SAEC_TRY(dev->ops->upload(dev, sae->params.log_theta, hm->log_theta,
                                  sizeof(float) * (size_t)hm->m));
    if (sae->hp.timestep_buckets > 0 && hm->ts_scale) {
        if (hm->ts_buckets != sae->hp.timestep_buckets)
            return saec_fail(SAEC_ERR_DATA, "keep timestep_buckets as trained",
                             "the model has %lld timestep buckets, this SAE %lld",
                             (long long)hm->ts_buckets, (long long)sae->hp.timestep_buckets);
        const size_t bytes = sizeof(float) * (size_t)(hm->ts_buckets * hm->d);
        SAEC_TRY(dev->ops->upload(dev, sae->params.ts_scale, hm->ts_scale, bytes));
        SAEC_TRY(dev->ops->upload(dev, sae->params.ts_shift, hm->ts_shift, bytes));
    }
    if (sae->hp.ts_mode == SAE_TS_ADALN && hm->adaln[0]) {
        if (hm->adaln_dim != sae->hp.adaln_dim)
            return saec_fail(SAEC_ERR_DATA, "keep adaln_dim as trained",
                             "the model's timestep MLP has width %lld, this SAE %lld",
                             (long long)hm->adaln_dim, (long long)sae->hp.adaln_dim);
        int64_t rows[6], cols[6];
        adaln_shapes(hm->adaln_dim, hm->d, rows, cols);
        for (int i = 0; i < 6; i++)
            SAEC_TRY(dev->ops->upload(dev, sae->param_arena + sae->layout[SAE_ADA_W1 + i].offset,
                                      hm->adaln[i], sizeof(float) * (size_t)(rows[i] * cols[i])));
    }
    if (sae->arch == SAE_BATCHTOPK && hm->bt_threshold > 0) {
        SAEC_TRY(dev->ops->upload(dev, sae->bt_threshold, &hm->bt_threshold, sizeof(float)));
        sae->bt_threshold_set = 1;
    }
    return SAEC_OK;
}

/* ---- --init-from ------------------------------------------------------------------------- */

/* TopK training keeps decoder rows at unit norm. Rows of another norm n_j are made unit with
   n_j folded into the encoder row and bias (SAELens's fold_W_dec_norm), which keeps each latent's
   contribution f_j·W_dec[j] for a given selection; the TopK selection itself then ranks n_j·pre_j
   and may differ. Returns the largest |n_j − 1|. saec's own exports have unit rows (export.h). */
static double unit_decoder_rows(saec_host_model *hm) {
    double worst = 0;
    for (int64_t j = 0; j < hm->m; j++) {
        float *row = hm->W_dec + j * hm->d;
        double ss = 0;
        for (int64_t i = 0; i < hm->d; i++)
            ss += (double)row[i] * row[i];
        const double n = sqrt(ss);
        if (!(n > 0)) continue; /* a zero row stays zero: nothing to fold */
        if (fabs(n - 1.0) > worst) worst = fabs(n - 1.0);
        for (int64_t i = 0; i < hm->d; i++) {
            row[i] = (float)(row[i] / n);
            hm->W_enc_t[j * hm->d + i] = (float)(hm->W_enc_t[j * hm->d + i] * n);
        }
        hm->b_enc[j] = (float)(hm->b_enc[j] * n);
    }
    return worst;
}

int saec_init_from(const char *src, saec_sae *sae) {
    saec_host_model hm;
    SAEC_TRY(saec_host_model_read(src, &hm));
    int rc = SAEC_OK;
    if (hm.d != sae->d || hm.m != sae->m)
        rc = saec_fail(SAEC_ERR_USAGE,
                       "set --latents to the source's latents and use data of its width",
                       "--init-from '%s' holds an SAE with d=%lld, m=%lld, but this run has "
                       "d_in=%lld, latents=%lld",
                       src, (long long)hm.d, (long long)hm.m, (long long)sae->d, (long long)sae->m);
    if (rc == SAEC_OK) {
        /* Into this run's units (s and μ come from this run's init sample), then unit rows. */
        saec_host_model_set_scale(&hm, sae->scale);
        const double dev_from_unit = unit_decoder_rows(&hm);
        if (dev_from_unit > 1e-3)
            fprintf(stderr,
                    "saec: note: decoder rows of '%s' were not unit-norm (largest |norm - 1| "
                    "%.3g); their norms were folded into the encoder\n",
                    src, dev_from_unit);
        if (hm.k != sae->k)
            fprintf(stderr, "saec: note: '%s' was trained with k=%lld; this run uses k=%lld\n", src,
                    (long long)hm.k, (long long)sae->k);
        saec_dev *dev = sae->dev;
        const size_t md = sizeof(float) * (size_t)(hm.m * hm.d);
        rc = dev->ops->upload(dev, sae->params.W_enc_t, hm.W_enc_t, md);
        if (rc == SAEC_OK)
            rc = dev->ops->upload(dev, sae->params.b_enc, hm.b_enc, sizeof(float) * (size_t)hm.m);
        if (rc == SAEC_OK) rc = dev->ops->upload(dev, sae->params.W_dec, hm.W_dec, md);
        if (rc == SAEC_OK)
            rc = dev->ops->upload(dev, sae->params.b_dec, hm.b_dec, sizeof(float) * (size_t)hm.d);
    }
    if (rc == SAEC_OK) {
        if (hm.step >= 0)
            fprintf(stderr, "saec: initialised from %s (%s, step %lld)\n", src,
                    saec_model_kind_name(hm.kind), (long long)hm.step);
        else
            fprintf(stderr, "saec: initialised from %s (%s)\n", src, saec_model_kind_name(hm.kind));
    }
    saec_host_model_free(&hm);
    return rc;
}
