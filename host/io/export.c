/* SAELens and sparsify exports: write a host-side model (model_io.h) in their layouts with the
   scale folded in (model_io.c reads them back); also the firing frequencies SAELens stores
   beside the weights and a reconstruction dump for tests, two host-rows loops that are to move
   beside the model.

   Dependencies: export.c ──> model_io.c (the model, its units, the layouts' file names),
   eval.c (the rows an eval reads), sae.h, data.c, safetensors.c, fsutil.c. model_io.c does not
   include export.h. */
#include "export.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "model_io.h"
#include "saec/device.h"
#include "saec/saec.h"
#include "safetensors.h"

#define EXPORT_FORMAT "saec-export-1"
/* The SAELens config layout written (v6: architecture-specific keys at the top level, usage
   metadata under "metadata"). SAELens reads configs without a version as pre-6.0 ones. */
#define SAELENS_CFG_VERSION "6.0.0"

/* ---- firing frequency -------------------------------------------------------------------- */

int saec_latent_log_sparsity(saec_sae *sae, saec_data *src, int64_t tokens, float *out) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d, m = sae->m;
    float *rows = malloc(sizeof(float) * (size_t)(sae->batch * d)); /* [batch, d] host */
    int64_t *count_host = malloc(sizeof(int64_t) * (size_t)m);
    int64_t *since = NULL, *count = NULL;
    uint8_t *dead = NULL;
    double *dead_count = NULL;
    tokens = saec_eval_rows(src, tokens, 1); /* a file's rows once each: frequencies per row */
    int rc = rows && count_host
                 ? SAEC_OK
                 : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory counting latent firing");
    /* Own counters: the SAE's dead-latent state is left alone. */
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(int64_t) * (size_t)m, (void **)&since);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(int64_t) * (size_t)m, (void **)&count);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, (size_t)m, (void **)&dead);
    if (rc == SAEC_OK) rc = dev->ops->alloc(dev, sizeof(double), (void **)&dead_count);
    if (rc == SAEC_OK) rc = dev->ops->zero(dev, since, sizeof(int64_t) * (size_t)m);
    if (rc == SAEC_OK) rc = dev->ops->zero(dev, count, sizeof(int64_t) * (size_t)m);
    int64_t done = 0;
    while (rc == SAEC_OK && done < tokens) {
        const int64_t n = tokens - done < sae->batch ? tokens - done : sae->batch;
        rc = saec_data_next(src, n, rows, NULL);
        if (rc == SAEC_OK) rc = sae_forward_rows(sae, rows, NULL, n, 0);
        if (rc == SAEC_OK) rc = sae_track_fired(sae, n, since, count, INT64_MAX, dead, dead_count);
        done += n;
    }
    if (rc == SAEC_OK) rc = dev->ops->download(dev, count_host, count, sizeof(int64_t) * (size_t)m);
    if (rc == SAEC_OK)
        for (int64_t j = 0; j < m; j++)
            out[j] = (float)log10((double)count_host[j] / (double)tokens + SAEC_LOG_SPARSITY_EPS);
    if (since) dev->ops->free(dev, since);
    if (count) dev->ops->free(dev, count);
    if (dead) dev->ops->free(dev, dead);
    if (dead_count) dev->ops->free(dev, dead_count);
    free(rows), free(count_host);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* The raw-unit model's pieces that differ from hm's storage: biases and μ times s, and W_encᵀ. */
typedef struct {
    float *b_enc, *b_dec, *mean; /* [m], [d], [d] (mean NULL when unknown) */
    float *W_enc;                /* [d, m], SAELens only */
    float *threshold;            /* [m] s·θ: jumprelu, and batchtopk's one θ; NULL otherwise */
} raw_parts;

static void raw_parts_free(raw_parts *r) {
    free(r->b_enc), free(r->b_dec), free(r->mean), free(r->W_enc), free(r->threshold);
}

static int raw_parts_make(const saec_host_model *hm, int with_W_enc, raw_parts *r) {
    const int64_t d = hm->d, m = hm->m;
    const double s = hm->scale;
    memset(r, 0, sizeof *r);
    r->b_enc = malloc(sizeof(float) * (size_t)m);
    r->b_dec = malloc(sizeof(float) * (size_t)d);
    if (hm->data_mean) r->mean = malloc(sizeof(float) * (size_t)d);
    if (with_W_enc) r->W_enc = malloc(sizeof(float) * (size_t)(d * m));
    if (!r->b_enc || !r->b_dec || (hm->data_mean && !r->mean) || (with_W_enc && !r->W_enc))
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing an export");
    for (int64_t j = 0; j < m; j++)
        r->b_enc[j] = (float)(s * hm->b_enc[j]);
    for (int64_t i = 0; i < d; i++)
        r->b_dec[i] = (float)(s * hm->b_dec[i]);
    if (r->mean)
        for (int64_t i = 0; i < d; i++)
            r->mean[i] = (float)(s * hm->data_mean[i]);
    if (r->W_enc)
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < m; j++)
                r->W_enc[i * m + j] = hm->W_enc_t[j * d + i];
    const int bt = with_W_enc && hm->arch == SAE_BATCHTOPK; /* SAELens: as JumpReLU */
    if (bt && !(hm->bt_threshold > 0))
        return saec_fail(
            SAEC_ERR_USAGE,
            "train past batchtopk_threshold_start steps (or lower it) before exporting",
            "this BatchTopK run has no inference threshold yet; it exports as a "
            "JumpReLU and needs one");
    if ((with_W_enc && hm->log_theta) || bt) {
        r->threshold = malloc(sizeof(float) * (size_t)m);
        if (!r->threshold)
            return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing an export");
        for (int64_t j = 0; j < m; j++)
            r->threshold[j] =
                (float)(s * (bt ? (double)hm->bt_threshold : exp((double)hm->log_theta[j])));
    }
    return SAEC_OK;
}

static saec_st_tensor vec(const char *name, int64_t n, const float *data) {
    return (saec_st_tensor){
        .name = name, .dtype = SAEC_ST_F32, .ndim = 1, .shape = {n}, .data = data};
}

static saec_st_tensor mat(const char *name, int64_t rows, int64_t cols, const float *data) {
    return (saec_st_tensor){
        .name = name, .dtype = SAEC_ST_F32, .ndim = 2, .shape = {rows, cols}, .data = data};
}

/* The provenance object, read back by model_io.c's read_provenance. */
static cJSON *provenance(const saec_host_model *hm, const raw_parts *raw, const char *source) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "format", EXPORT_FORMAT);
    cJSON_AddStringToObject(p, "saec_version", SAEC_VERSION);
    cJSON_AddStringToObject(p, "source", source);
    cJSON_AddStringToObject(p, "source_kind", saec_model_kind_name(hm->kind));
    if (hm->step >= 0)
        cJSON_AddNumberToObject(p, "step", (double)hm->step);
    else
        cJSON_AddNullToObject(p, "step");
    if (hm->data_scale > 0)
        cJSON_AddNumberToObject(p, "data_scale", hm->data_scale);
    else
        cJSON_AddNullToObject(p, "data_scale");
    cJSON_AddStringToObject(p, "units",
                            "raw activations: the training data scale is folded into b_enc and "
                            "b_dec, so codes are in the units of the activations and decoder rows "
                            "keep unit norm");
    cJSON_AddStringToObject(p, "data_mean_note",
                            "per-dimension mean of the training activations (raw units), the nmse "
                            "denominator used by saec eval");
    if (raw->mean)
        cJSON_AddItemToObject(p, "data_mean", cJSON_CreateFloatArray(raw->mean, (int)hm->d));
    else
        cJSON_AddNullToObject(p, "data_mean");
    if (hm->has_config) {
        char *text = saec_config_to_json(&hm->cfg);
        cJSON *config = text ? cJSON_Parse(text) : NULL;
        free(text);
        if (config) cJSON_AddItemToObject(p, "config", config);
    }
    return p;
}

static int write_cfg_json(const char *out_dir, cJSON *root) {
    char path[1100];
    saec_path_join(path, sizeof path, out_dir, SAEC_EXPORT_CFG);
    char *text = cJSON_Print(root);
    if (!text) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", path);
    int rc = saec_write_text_atomic(path, text);
    free(text);
    return rc;
}

/* Tools that read these files (safetensors' torch loader) expect the "format": "pt" marker. */
static const saec_st_meta st_meta[] = {{"format", "pt"}};

/* SAELens: cfg.json, sae_weights.safetensors, sparsity.safetensors. TopK keeps its k; JumpReLU
   and BatchTopK (whose inference form is a JumpReLU with one θ) write "jumprelu" and a
   `threshold [m]` scaled like the codes (s·θ, see model_io.h); ReLU-L1 and ATM (masking is a
   training rule) are "standard" ReLU SAEs. */
static int write_saelens(const saec_host_model *hm, const raw_parts *raw, const float *log_sparsity,
                         const char *source, const char *out_dir) {
    const int64_t d = hm->d, m = hm->m;
    const int topk = hm->arch == SAE_TOPK;
    const char *arch = topk ? "topk" : raw->threshold ? "jumprelu" : "standard";
    if (!log_sparsity)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: SAELens export needs the sparsity");
    char path[1100];
    saec_st_tensor t[5];
    int n = 0;
    t[n++] = mat("W_enc", d, m, raw->W_enc);
    t[n++] = vec("b_enc", m, raw->b_enc);
    t[n++] = mat("W_dec", m, d, hm->W_dec);
    t[n++] = vec("b_dec", d, raw->b_dec);
    if (raw->threshold) t[n++] = vec("threshold", m, raw->threshold);
    saec_path_join(path, sizeof path, out_dir, SAEC_SAELENS_WEIGHTS);
    SAEC_TRY(saec_st_write(path, t, n, st_meta, 1));
    saec_st_tensor sp = vec("sparsity", m, log_sparsity);
    saec_path_join(path, sizeof path, out_dir, SAEC_SAELENS_SPARSITY);
    SAEC_TRY(saec_st_write(path, &sp, 1, st_meta, 1));

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "architecture", arch);
    cJSON_AddNumberToObject(root, "d_in", (double)d);
    cJSON_AddNumberToObject(root, "d_sae", (double)m);
    if (topk) cJSON_AddNumberToObject(root, "k", (double)hm->k);
    cJSON_AddStringToObject(root, "dtype", "float32");
    cJSON_AddStringToObject(root, "device", "cpu");
    cJSON_AddBoolToObject(root, "apply_b_dec_to_input", 1);
    cJSON_AddStringToObject(root, "normalize_activations", "none"); /* s is folded in */
    cJSON_AddStringToObject(root, "reshape_activations", "none");
    cJSON_AddBoolToObject(root, "rescale_acts_by_decoder_norm", 0);
    /* The pre-6.0 spelling of the activation, for older readers. */
    cJSON_AddStringToObject(root, "activation_fn", topk ? "topk" : "relu");
    cJSON *kw = cJSON_AddObjectToObject(root, "activation_fn_kwargs");
    if (topk) cJSON_AddNumberToObject(kw, "k", (double)hm->k);
    /* Where the activations came from is unknown to saec (it sees an HDF5 file or synthetic
       data): model_name and hook_name are left null for the user to fill in. */
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddStringToObject(meta, "sae_lens_version", SAELENS_CFG_VERSION);
    cJSON_AddNullToObject(meta, "sae_lens_training_version");
    cJSON_AddNullToObject(meta, "model_name");
    cJSON_AddNullToObject(meta, "hook_name");
    cJSON_AddNullToObject(meta, "hook_head_index");
    cJSON_AddNullToObject(meta, "context_size");
    cJSON_AddNullToObject(meta, "prepend_bos");
    if (hm->has_config && hm->cfg.data[0])
        cJSON_AddStringToObject(meta, "dataset_path", hm->cfg.data);
    else
        cJSON_AddNullToObject(meta, "dataset_path");
    cJSON_AddItemToObject(root, "saec", provenance(hm, raw, source));
    int rc = write_cfg_json(out_dir, root);
    cJSON_Delete(root);
    return rc;
}

/* sparsify: cfg.json (SparseCoderConfig fields plus d_in) and sae.safetensors. */
static int write_sparsify(const saec_host_model *hm, const raw_parts *raw, const char *source,
                          const char *out_dir) {
    const int64_t d = hm->d, m = hm->m;
    if (hm->arch != SAE_TOPK)
        return saec_fail(SAEC_ERR_USAGE, "sparsify holds TopK SAEs only; use --format saelens",
                         "cannot export architecture '%s' as sparsify",
                         sae_arch_name(hm->arch));
    char path[1100];
    saec_st_tensor t[4] = {
        mat("encoder.weight", m, d, hm->W_enc_t),
        vec("encoder.bias", m, raw->b_enc),
        mat("W_dec", m, d, hm->W_dec),
        vec("b_dec", d, raw->b_dec),
    };
    saec_path_join(path, sizeof path, out_dir, SAEC_SPARSIFY_WEIGHTS);
    SAEC_TRY(saec_st_write(path, t, 4, st_meta, 1));

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "activation", "topk");
    /* sparsify types expansion_factor as an int and ignores it when num_latents is set. */
    cJSON_AddNumberToObject(root, "expansion_factor", (double)(m / d > 0 ? m / d : 1));
    cJSON_AddBoolToObject(root, "normalize_decoder", 1); /* rows are unit-norm (export.h) */
    cJSON_AddNumberToObject(root, "num_latents", (double)m);
    cJSON_AddNumberToObject(root, "k", (double)hm->k);
    cJSON_AddBoolToObject(root, "multi_topk", 0);
    cJSON_AddBoolToObject(root, "skip_connection", 0);
    cJSON_AddBoolToObject(root, "transcode", 0);
    cJSON_AddNumberToObject(root, "d_in", (double)d);
    cJSON_AddItemToObject(root, "saec", provenance(hm, raw, source));
    int rc = write_cfg_json(out_dir, root);
    cJSON_Delete(root);
    return rc;
}

int saec_export_refuse_timestep_aware(const saec_host_model *hm, const char *source) {
    const sae_ts_mode mode = saec_host_model_timestep_mode(hm);
    if (mode == SAE_TS_NONE) return SAEC_OK;
    return saec_fail(SAEC_ERR_USAGE,
                     "neither SAELens nor sparsify has a timestep-aware SAE layout; use the run "
                     "directory itself",
                     "cannot export the timestep-aware (%s mode) SAE '%s'", sae_ts_mode_name(mode),
                     source);
}

int saec_export_write(const saec_host_model *hm, saec_model_kind kind, const float *log_sparsity,
                      const char *source, const char *out_dir) {
    SAEC_TRY(saec_export_refuse_timestep_aware(hm, source));
    raw_parts raw;
    int rc = raw_parts_make(hm, kind == SAEC_MODEL_SAELENS, &raw);
    if (rc == SAEC_OK) {
        if (kind == SAEC_MODEL_SAELENS)
            rc = write_saelens(hm, &raw, log_sparsity, source, out_dir);
        else if (kind == SAEC_MODEL_SPARSIFY)
            rc = write_sparsify(hm, &raw, source, out_dir);
        else
            rc = saec_fail(SAEC_ERR_USAGE, "use --format saelens or --format sparsify",
                           "unknown export format");
    }
    raw_parts_free(&raw);
    return rc;
}

/* ---- reconstructions as .npy ------------------------------------------------------------- */

int saec_dump_reconstructions(saec_sae *sae, saec_data *src, int64_t tokens, const char *path) {
    saec_dev *dev = sae->dev;
    const int64_t d = sae->d;
    tokens = saec_eval_rows(src, tokens, 0); /* the rows saec_evaluate read (it gave the note) */
    char header[256];
    size_t hlen = 0;
    if (!saec_npy_header(header, sizeof header, tokens, d, &hlen))
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: .npy header too long");
    /* A timestep-aware SAE's reconstruction depends on each row's timestep (as in eval.c). */
    const int timed = sae->hp.ts_mode != SAE_TS_NONE;
    if (timed && !src->has_timesteps)
        return saec_fail(SAEC_ERR_DATA, "dump reconstructions of data with timesteps",
                         "this SAE is timestep-aware but %s has no timesteps",
                         src->info.description);
    float *rows = malloc(sizeof(float) * (size_t)(sae->batch * d));        /* [batch, d] host */
    int32_t *ts = timed ? malloc(sizeof(int32_t) * (size_t)sae->batch) : NULL; /* [batch] */
    if (!rows || (timed && !ts)) {
        free(rows);
        free(ts);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory dumping reconstructions");
    }
    saec_atomic_file af;
    int rc = saec_atomic_open(&af, path);
    if (rc == SAEC_OK) rc = saec_atomic_write(&af, header, hlen);
    int64_t done = 0;
    while (rc == SAEC_OK && done < tokens) {
        const int64_t n = tokens - done < sae->batch ? tokens - done : sae->batch;
        rc = saec_data_next(src, n, rows, ts);
        if (rc == SAEC_OK) rc = sae_forward_rows(sae, rows, timed ? ts : NULL, n, 0);
        if (rc == SAEC_OK)
            rc = dev->ops->download(dev, rows, sae->acts.xhat, sizeof(float) * (size_t)(n * d));
        if (rc == SAEC_OK) {
            for (int64_t i = 0; i < n * d; i++)
                rows[i] *= sae->scale; /* x̂ = s·x̂n */
            rc = saec_atomic_write(&af, rows, sizeof(float) * (size_t)(n * d));
        }
        done += n;
    }
    if (rc == SAEC_OK)
        rc = saec_atomic_commit(&af);
    else
        saec_atomic_abort(&af);
    free(rows);
    free(ts);
    return rc;
}
