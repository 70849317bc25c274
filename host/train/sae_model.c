/* The SAE as a model the training loop drives (model.h): the SAE's side of train.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "comm.h"
#include "eval.h"
#include "model.h"
#include "model_io.h"
#include "sae.h"

typedef struct {
    saec_sae *sae;
    saec_comm *comm;
    const saec_config *cfg; /* the run's, alive as long as the model */
    int rank, world;
} sae_model;

static saec_sae *sae_of(const saec_model *m) { return ((const sae_model *)m->impl)->sae; }

static void describe(const saec_model *m, char *buf, size_t size) {
    const sae_model *sm = m->impl;
    const saec_sae *sae = sm->sae;
    const saec_config *cfg = sm->cfg;
    const sae_hparams *hp = &sae->hp;
    char knob[96];
    switch (hp->arch) {
    case SAE_TOPK:
    case SAE_BATCHTOPK:
        snprintf(knob, sizeof knob, "k=%lld aux_k=%lld", (long long)cfg->k, (long long)sae->aux_k);
        break;
    case SAE_JUMPRELU: snprintf(knob, sizeof knob, "l0_coef=%g", cfg->jumprelu_l0_coef); break;
    default: snprintf(knob, sizeof knob, "l1_coef=%g", cfg->l1_coef); break;
    }
    char tide[112] = "";
    if (hp->ts_mode == SAE_TS_BUCKET)
        snprintf(tide, sizeof tide, ", timestep buckets %lld of T=%lld",
                 (long long)hp->timestep_buckets, (long long)hp->timesteps);
    else if (hp->ts_mode == SAE_TS_SEPARATE)
        snprintf(tide, sizeof tide, ", %lld separate SAEs of %lld latents (one per bucket), T=%lld",
                 (long long)hp->timestep_buckets, (long long)(hp->m / hp->timestep_buckets),
                 (long long)hp->timesteps);
    else if (hp->ts_mode == SAE_TS_ADALN)
        snprintf(tide, sizeof tide, ", adaLN timestep MLP width %lld, T=%lld",
                 (long long)hp->adaln_dim, (long long)hp->timesteps);
    snprintf(buf, size, "%s SAE d=%lld m=%lld %s%s", cfg->arch, (long long)sae->d,
             (long long)cfg->latents, knob, tide);
}

/* Every rank starts from rank 0's parameters and data constants (they would agree anyway, as
   initialisation is deterministic; this makes it a fact rather than a hope). */
static int broadcast_model(sae_model *sm) {
    saec_sae *sae = sm->sae;
    saec_dev *dev = sae->dev;
    const size_t pbytes = sizeof(float) * (size_t)sae->n_params, mbytes = sizeof(float) * sae->d;
    float *host = malloc(pbytes + mbytes + sizeof(float));
    if (!host) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory broadcasting the model");
    int rc = dev->ops->download(dev, host, sae->param_arena, pbytes);
    if (rc == SAEC_OK) rc = dev->ops->download(dev, host + sae->n_params, sae->data_mean, mbytes);
    host[sae->n_params + sae->d] = sae->scale;
    if (rc == SAEC_OK) rc = saec_comm_bcast_host(sm->comm, host, pbytes + mbytes + sizeof(float), 0);
    if (rc == SAEC_OK) rc = dev->ops->upload(dev, sae->param_arena, host, pbytes);
    if (rc == SAEC_OK) rc = dev->ops->upload(dev, sae->data_mean, host + sae->n_params, mbytes);
    sae->scale = host[sae->n_params + sae->d];
    free(host);
    return rc;
}

/* SPEC §1's initialisation from init_sample rows, then --init-from's weights (moved into this
   run's units, which sae_init has just set), then rank 0's model everywhere. */
static int init(saec_model *m, saec_data *data) {
    sae_model *sm = m->impl;
    const saec_config *cfg = sm->cfg;
    const int64_t n = cfg->init_sample, d = sm->sae->d;
    float *sample = malloc(sizeof(float) * (size_t)(n * d));
    if (!sample)
        return saec_fail(SAEC_ERR_OTHER, "lower init_sample", "out of memory for the init sample");
    int rc = saec_data_next(data, n, sample, NULL);
    if (rc == SAEC_OK) rc = sae_init(sm->sae, sample, n, (int)cfg->median_iters, (uint64_t)cfg->seed);
    free(sample);
    SAEC_TRY(rc);
    if (cfg->init_from[0]) SAEC_TRY(saec_init_from(cfg->init_from, sm->sae));
    return sm->world > 1 ? broadcast_model(sm) : SAEC_OK;
}

static int step(saec_model *m, const float *rows, const int32_t *timesteps, int64_t n,
                int64_t t, int64_t total, double lr) {
    sae_model *sm = m->impl;
    const saec_config *cfg = sm->cfg;
    saec_sae *sae = sm->sae;
    sae_begin_step(sae, t, total);
    SAEC_TRY(sae_forward_rows(sae, rows, timesteps, n, 1));
    SAEC_TRY(sae_backward(sae, n));
    const saec_adamw_args args = {
        .lr = (float)lr,
        .beta1 = (float)cfg->beta1,
        .beta2 = (float)cfg->beta2,
        .eps = (float)cfg->eps,
        .weight_decay = (float)cfg->weight_decay,
        .step = t + 1,
        .max_grad_norm = (float)cfg->max_grad_norm,
    };
    return sae_optimizer_step(sae, args);
}

/* metrics.jsonl's keys for the SAE (SPEC §8), in their order; loss, nmse, L0 and the dead
   fraction also on the progress line; a non-finite loss or gradient norm is divergence. */
static int metrics(saec_model *m, int64_t global_n, saec_log_record *rec) {
    saec_sae *sae = sae_of(m);
    sae_step_stats st;
    SAEC_TRY(sae_read_stats(sae, &st));
    const double n = (double)global_n;
    const saec_metric all[] = {
        {"loss", sae_loss(sae, &st), 8, "loss %.4f", 1, 1},
        {"nmse", st.sst > 0 ? st.sse / st.sst : NAN, 8, "nmse %.4f", 1, 0},
        {"aux_nmse", st.aux_sst > 0 ? st.aux_sse / st.aux_sst : 0, 8, NULL, 1, 0},
        {"cosine", st.cos_sum / n, 8, NULL, 1, 0},
        {"l0", st.l0_count / n, 6, "L0 %.1f", 1, 0},
        {"dead_fraction", st.dead_count / (double)sae->m, 6, "dead %.1f%%", 100, 0},
        {"grad_norm", st.grad_norm, 6, NULL, 1, 1},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        saec_log_metric(rec, all[i]);
    return SAEC_OK;
}

/* Every rank holds the same parameters, and the optimizer state is saved whole (with ZeRO-1
   every rank first sends rank 0 its shard), so a run resumes at any world size, with or without
   ZeRO-1. */
static int save(saec_model *m, const char *dir, const saec_config *cfg, const saec_run_state *st) {
    sae_model *sm = m->impl;
    float *adam_m = NULL, *adam_v = NULL;
    int rc = sae_gather_optimizer(sm->sae, &adam_m, &adam_v);
    if (rc == SAEC_OK && sm->rank == 0) rc = ckpt_save(dir, sm->sae, cfg, st, adam_m, adam_v);
    free(adam_m), free(adam_v);
    return rc;
}

static int load(saec_model *m, const char *dir, saec_run_state *st) {
    return ckpt_load(dir, sae_of(m), st);
}

static int evaluate(saec_model *m, const saec_config *cfg, const char *dir, cJSON *summary) {
    saec_data *eval_data = NULL;
    SAEC_TRY(saec_data_open(cfg, SAEC_STREAM_EVAL, &eval_data));
    saec_eval_result res;
    fprintf(stderr, "saec: evaluating on %lld held-out tokens\n",
            (long long)saec_eval_rows(eval_data, cfg->eval_tokens, 0));
    int rc = saec_evaluate(sae_of(m), eval_data, cfg->eval_tokens, cfg->timestep_buckets,
                           cfg->timesteps, &res);
    saec_data_close(eval_data);
    SAEC_TRY(rc);
    if (res.has_buckets) rc = saec_bucket_stats_write(&res.buckets, dir);
    if (rc == SAEC_OK) saec_eval_result_to_json(&res, summary);
    saec_eval_result_free(&res);
    return rc;
}

static void destroy(saec_model *m) {
    if (!m) return;
    sae_model *sm = m->impl;
    if (sm) sae_destroy(sm->sae);
    free(sm);
    free(m);
}

static const saec_model_ops sae_model_ops = {
    .kind = "sae",
    .rate_unit = "tok",
    .describe = describe,
    .init = init,
    .step = step,
    .metrics = metrics,
    .save = save,
    .load = load,
    .evaluate = evaluate,
    .destroy = destroy,
};

int saec_sae_model_create(saec_dev *dev, saec_comm *comm, const saec_config *cfg, int64_t d,
                          int64_t total_steps, saec_model **out) {
    *out = NULL;
    saec_model *m = calloc(1, sizeof *m);
    sae_model *sm = calloc(1, sizeof *sm);
    if (!m || !sm) {
        free(m), free(sm);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the model");
    }
    m->ops = &sae_model_ops;
    m->impl = sm;
    sm->comm = comm;
    sm->cfg = cfg;
    sm->rank = saec_comm_rank(comm);
    sm->world = saec_comm_size(comm);
    const int64_t run_tokens = total_steps * cfg->batch_size * sm->world;
    const int64_t dead_after = cfg->dead_tokens < run_tokens ? cfg->dead_tokens : run_tokens;
    sae_hparams hp;
    sae_hparams_from_config(cfg, d, dead_after, cfg->batch_size, &hp);
    hp.optimizer_shards = cfg->zero_stage == 1 ? sm->world : 1;
    int rc = sae_create(dev, &hp, &sm->sae);
    if (rc == SAEC_OK) rc = sae_set_comm(sm->sae, comm);
    if (rc != SAEC_OK) {
        destroy(m);
        return rc;
    }
    if (sm->rank == 0 && hp.optimizer_shards > 1) {
        const double mib = 2.0 * sizeof(float) / (1 << 20); /* two moments */
        fprintf(stderr,
                "saec: ZeRO-1: Adam moments sharded over %d ranks, %.1f MiB each instead of %.1f MiB\n",
                sm->world, mib * (double)sm->sae->shard, mib * (double)sm->sae->n_params);
    } else if (sm->rank == 0 && cfg->zero_stage == 1) {
        fprintf(stderr, "saec: ZeRO-1 asked for, but one rank has nothing to shard it with\n");
    }
    *out = m;
    return SAEC_OK;
}
