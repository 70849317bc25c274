/* Checkpoint save and load (safetensors), for resume; eval and export read a run through
   model_io.c (checkpoint.h draws the dependencies). */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "model_io.h"
#include "run_dir.h"
#include "safetensors.h"

#define CKPT_FORMAT "saec-checkpoint-1"

/* Host copies of device buffers, released together. */
typedef struct {
    void *ptr[16];
    int n;
} host_copies;

static void *host_copy(saec_sae *sae, host_copies *hc, const void *dev_ptr, size_t bytes, int *rc) {
    if (*rc != SAEC_OK) return NULL;
    void *h = malloc(bytes ? bytes : 1);
    if (!h) {
        *rc =
            saec_fail(SAEC_ERR_OTHER, NULL, "out of memory saving a checkpoint (%zu bytes)", bytes);
        return NULL;
    }
    hc->ptr[hc->n++] = h;
    *rc = sae->dev->ops->download(sae->dev, h, dev_ptr, bytes);
    return h;
}

static void host_copies_free(host_copies *hc) {
    for (int i = 0; i < hc->n; i++)
        free(hc->ptr[i]);
    hc->n = 0;
}

static saec_st_tensor f32_tensor(const char *name, const sae_tensor *t, const float *arena) {
    saec_st_tensor st = {.name = name, .dtype = SAEC_ST_F32, .data = arena + t->offset};
    if (t->cols == 1) {
        st.ndim = 1;
        st.shape[0] = t->rows;
    } else {
        st.ndim = 2;
        st.shape[0] = t->rows;
        st.shape[1] = t->cols;
    }
    return st;
}

static int save_optimizer(const char *dir, saec_sae *sae, const char *state, const float *adam_m,
                          const float *adam_v) {
    int rc = SAEC_OK;
    host_copies hc = {0};
    const size_t arena_bytes = sizeof(float) * (size_t)sae->n_params;
    const float *m1 = adam_m ? adam_m : host_copy(sae, &hc, sae->adam_m, arena_bytes, &rc);
    const float *m2 = adam_v ? adam_v : host_copy(sae, &hc, sae->adam_v, arena_bytes, &rc);
    const int64_t *since =
        host_copy(sae, &hc, sae->since_fired, sizeof(int64_t) * (size_t)sae->m, &rc);
    const float *atm = sae->atm_stats ? host_copy(sae, &hc, sae->atm_stats,
                                                  sizeof(float) * (size_t)(3 * sae->m), &rc)
                                      : NULL;
    if (rc == SAEC_OK) {
        char names[2 * SAE_N_TENSORS][64];
        saec_st_tensor t[2 * SAE_N_TENSORS + 2];
        int n = 0;
        for (int i = 0; i < sae->n_tensors; i++) {
            if (sae->layout[i].rows == 0) continue; /* absent in this variant */
            snprintf(names[2 * i], 64, "adam_m.%s", sae->layout[i].name);
            snprintf(names[2 * i + 1], 64, "adam_v.%s", sae->layout[i].name);
            t[n++] = f32_tensor(names[2 * i], &sae->layout[i], m1);
            t[n++] = f32_tensor(names[2 * i + 1], &sae->layout[i], m2);
        }
        t[n++] = (saec_st_tensor){.name = "since_fired",
                                  .dtype = SAEC_ST_I64,
                                  .ndim = 1,
                                  .shape = {sae->m},
                                  .data = since};
        if (atm)
            t[n++] = (saec_st_tensor){.name = "atm_stats",
                                      .dtype = SAEC_ST_F32,
                                      .ndim = 2,
                                      .shape = {3, sae->m},
                                      .data = atm};
        saec_st_meta meta[] = {{"format", CKPT_FORMAT}, {"state", state}};
        char path[SAEC_RUN_PATH_MAX + 64];
        saec_path_join(path, sizeof path, dir, SAEC_CKPT_OPTIMIZER);
        rc = saec_st_write(path, t, n, meta, 2);
    }
    host_copies_free(&hc);
    return rc;
}

static int save_model(const char *dir, saec_sae *sae, const char *config, const char *state) {
    int rc = SAEC_OK;
    host_copies hc = {0};
    const float *params =
        host_copy(sae, &hc, sae->param_arena, sizeof(float) * (size_t)sae->n_params, &rc);
    const float *mean = host_copy(sae, &hc, sae->data_mean, sizeof(float) * (size_t)sae->d, &rc);
    const float *bt =
        sae->bt_threshold ? host_copy(sae, &hc, sae->bt_threshold, sizeof(float), &rc) : NULL;
    if (rc == SAEC_OK) {
        saec_st_tensor t[SAE_N_TENSORS + 3];
        int n = 0;
        for (int i = 0; i < sae->n_tensors; i++)
            if (sae->layout[i].rows > 0)
                t[n++] = f32_tensor(sae->layout[i].name, &sae->layout[i], params);
        t[n++] = (saec_st_tensor){
            .name = "data_mean", .dtype = SAEC_ST_F32, .ndim = 1, .shape = {sae->d}, .data = mean};
        t[n++] = (saec_st_tensor){.name = "data_scale",
                                  .dtype = SAEC_ST_F32,
                                  .ndim = 1,
                                  .shape = {1},
                                  .data = &sae->scale};
        if (bt) /* 0 until tracking starts */
            t[n++] = (saec_st_tensor){.name = "batchtopk_threshold",
                                      .dtype = SAEC_ST_F32,
                                      .ndim = 1,
                                      .shape = {1},
                                      .data = bt};
        saec_st_meta meta[] = {{"format", CKPT_FORMAT}, {"config", config}, {"state", state}};
        char path[SAEC_RUN_PATH_MAX + 64];
        saec_path_join(path, sizeof path, dir, SAEC_CKPT_MODEL);
        rc = saec_st_write(path, t, n, meta, 3);
    }
    host_copies_free(&hc);
    return rc;
}

/* The step of an older-layout checkpoint (plain files in the run directory), or -1. */
static int64_t legacy_step(const char *dir) {
    char path[SAEC_RUN_PATH_MAX + 64];
    saec_path_join(path, sizeof path, dir, SAEC_CKPT_MODEL);
    saec_ckpt_entry *list;
    int n;
    int64_t step = -1;
    if (saec_ckpt_list(dir, &list, &n) != SAEC_OK) list = NULL, n = 0;
    if (n > 0 && list[n - 1].legacy) {
        saec_st_file *f = NULL;
        saec_run_state st;
        if (saec_st_open(path, &f) == SAEC_OK &&
            saec_run_state_parse(saec_st_meta_get(f, "state"), path, &st) == SAEC_OK)
            step = st.step;
        saec_st_close(f);
    }
    free(list);
    saec_error_clear(); /* unreadable: it is simply not kept */
    return step;
}

int ckpt_save(const char *dir, saec_sae *sae, const saec_config *cfg, const saec_run_state *st,
              const float *adam_m, const float *adam_v) {
    const int64_t old_step = legacy_step(dir);
    char tmp[SAEC_RUN_PATH_MAX];
    SAEC_TRY(saec_ckpt_begin(dir, st->step, tmp, sizeof tmp));
    char *state = saec_run_state_json(st);
    char *config = saec_config_to_json(cfg);
    int rc = state && config ? SAEC_OK
                             : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory saving a checkpoint");
    if (rc == SAEC_OK) rc = save_optimizer(tmp, sae, state, adam_m, adam_v);
    if (rc == SAEC_OK) rc = save_model(tmp, sae, config, state);
    if (rc == SAEC_OK) rc = saec_ckpt_publish(dir, tmp, st->step, cfg->keep_checkpoints, old_step);
    if (rc != SAEC_OK) saec_ckpt_abandon(tmp); /* gone already if it was published */
    free(state);
    free(config);
    return rc;
}

int ckpt_read_config(const char *dir, saec_config *cfg) {
    saec_ckpt_entry *list;
    int n;
    SAEC_TRY(saec_ckpt_list(dir, &list, &n));
    int rc = n ? SAEC_OK
               : saec_fail(SAEC_ERR_DATA,
                           "give a run directory written by 'saec train' (a run killed before its "
                           "first checkpoint has nothing to resume: start it again with --out)",
                           "no checkpoint in run directory '%s'", dir);
    for (int i = 0; i < n; i++) {
        rc = saec_model_read_config(list[i].dir, cfg);
        if (rc == SAEC_OK || i + 1 == n) break;
        saec_error_clear(); /* an older checkpoint's config; ckpt_load says which it resumes */
    }
    free(list);
    return rc;
}

/* Copy a named F32 tensor of the expected shape into host memory. */
static int load_tensor(const saec_st_file *f, const char *path, const char *name,
                       const sae_tensor *t, float *dst) {
    const saec_st_tensor *st = NULL;
    int64_t shape[2] = {t->rows, t->cols};
    SAEC_TRY(saec_st_expect(f, path, name, SAEC_ST_F32, t->cols == 1 ? 1 : 2, shape, &st));
    memcpy(dst, st->data, sizeof(float) * (size_t)(t->rows * t->cols));
    return SAEC_OK;
}

static int load_optimizer(const char *dir, saec_sae *sae, int64_t expect_step) {
    char path[SAEC_RUN_PATH_MAX + 64];
    saec_path_join(path, sizeof path, dir, SAEC_CKPT_OPTIMIZER);
    saec_st_file *f = NULL;
    if (!saec_path_exists(path))
        return saec_fail(SAEC_ERR_DATA,
                         "this run cannot be resumed; start a new one or use --init-from",
                         "no optimizer state '%s' in run directory '%s'", SAEC_CKPT_OPTIMIZER, dir);
    SAEC_TRY(saec_st_open(path, &f));
    saec_run_state st;
    int rc = saec_run_state_parse(saec_st_meta_get(f, "state"), path, &st);
    if (rc == SAEC_OK && st.step != expect_step)
        rc = saec_fail(SAEC_ERR_DATA, "the checkpoint is damaged",
                       "'%s' is at step %lld but the model is at step %lld", path,
                       (long long)st.step, (long long)expect_step);
    /* the whole moments on the host (alignment gaps 0), then this rank's part (ZeRO-1) */
    float *m1 = calloc((size_t)sae->n_params + 1, sizeof(float));
    float *m2 = calloc((size_t)sae->n_params + 1, sizeof(float));
    if (rc == SAEC_OK && (!m1 || !m2))
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path);
    for (int i = 0; i < sae->n_tensors && rc == SAEC_OK; i++) {
        if (sae->layout[i].rows == 0) continue;
        char name[64];
        snprintf(name, sizeof name, "adam_m.%s", sae->layout[i].name);
        rc = load_tensor(f, path, name, &sae->layout[i], m1 + sae->layout[i].offset);
        snprintf(name, sizeof name, "adam_v.%s", sae->layout[i].name);
        if (rc == SAEC_OK)
            rc = load_tensor(f, path, name, &sae->layout[i], m2 + sae->layout[i].offset);
    }
    if (rc == SAEC_OK) rc = sae_upload_optimizer(sae, m1, m2);
    free(m1), free(m2);
    if (rc == SAEC_OK) {
        const saec_st_tensor *t = NULL;
        int64_t shape[1] = {sae->m};
        rc = saec_st_expect(f, path, "since_fired", SAEC_ST_I64, 1, shape, &t);
        if (rc == SAEC_OK)
            rc = sae->dev->ops->upload(sae->dev, sae->since_fired, t->data,
                                       sizeof(int64_t) * (size_t)sae->m);
    }
    if (rc == SAEC_OK && sae->atm_stats) {
        const saec_st_tensor *t = NULL;
        int64_t shape[2] = {3, sae->m};
        rc = saec_st_expect(f, path, "atm_stats", SAEC_ST_F32, 2, shape, &t);
        if (rc == SAEC_OK)
            rc = sae->dev->ops->upload(sae->dev, sae->atm_stats, t->data,
                                       sizeof(float) * (size_t)(3 * sae->m));
    }
    saec_st_close(f);
    return rc;
}

/* Load one checkpoint directory (entry->step: the step its name promises; -1: unknown). */
static int load_one(const saec_ckpt_entry *e, saec_sae *sae, saec_run_state *st) {
    saec_host_model hm;
    SAEC_TRY(saec_host_model_read(e->dir, &hm));
    int rc = SAEC_OK;
    if (hm.kind != SAEC_MODEL_RUN)
        rc = saec_fail(SAEC_ERR_DATA, "only a run written by 'saec train' can be resumed",
                       "'%s' is a %s, not a saec run", e->dir, saec_model_kind_name(hm.kind));
    if (rc == SAEC_OK && !e->legacy && hm.run_state.step != e->step)
        rc = saec_fail(SAEC_ERR_DATA, "the checkpoint is damaged",
                       "'%s' holds the model of step %lld", e->dir, (long long)hm.run_state.step);
    if (rc == SAEC_OK) rc = saec_host_model_upload(&hm, sae);
    if (rc == SAEC_OK) rc = load_optimizer(e->dir, sae, hm.run_state.step);
    if (rc == SAEC_OK) *st = hm.run_state;
    saec_host_model_free(&hm);
    return rc;
}

int ckpt_load(const char *dir, saec_sae *sae, saec_run_state *st) {
    saec_ckpt_entry *list;
    int n;
    SAEC_TRY(saec_ckpt_list(dir, &list, &n));
    int rc = n ? SAEC_OK
               : saec_fail(SAEC_ERR_DATA,
                           "a run killed before its first checkpoint has nothing to resume: "
                           "start it again with --out",
                           "no checkpoint in run directory '%s'", dir);
    for (int i = 0; i < n; i++) {
        rc = load_one(&list[i], sae, st);
        if (rc == SAEC_OK) {
            if (i > 0)
                fprintf(stderr, "saec: resuming from the older checkpoint '%s' (step %lld)\n",
                        list[i].dir, (long long)st->step);
            break;
        }
        if (i + 1 == n) break;
        fprintf(stderr,
                "saec: checkpoint '%s' cannot be resumed: %s\n"
                "      falling back to the previous checkpoint, '%s'\n",
                list[i].dir, saec_error_message(), list[i + 1].dir);
        saec_error_clear();
    }
    free(list);
    return rc;
}
