/* The training loop, top to bottom: set up the run, initialise or resume, step, log, checkpoint,
   evaluate, summarise. Model-neutral: the model is driven through model.h (the SAE is
   sae_model.c); what is written here (data, the run directory, progress, signals, checkpoint
   cadence, resume, the ranks) serves every model. */
#include "train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "data.h"
#include "fsutil.h"
#include "log.h"
#include "model.h"
#include "run_dir.h"
#include "saec/device.h"

#define DEFAULT_STEPS 3000
#define MOE_MAE_DEFAULT_STEPS 160 /* the embedded default job: 20480 tiles, about 4.5 minutes on 2 idle cores with its probes */

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) { g_signal = sig; }

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second signal terminates at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int64_t saec_total_steps(const saec_config *cfg, int world) {
    const int64_t global_batch = cfg->batch_size * world;
    if (cfg->steps > 0) return cfg->steps;
    if (cfg->tokens > 0) return (cfg->tokens + global_batch - 1) / global_batch;
    return strcmp(cfg->model, "moe-mae") ? DEFAULT_STEPS : MOE_MAE_DEFAULT_STEPS;
}

double saec_lr_at(const saec_config *cfg, int64_t t, int64_t total) {
    if (cfg->warmup_steps > 0 && t < cfg->warmup_steps)
        return cfg->lr * (double)(t + 1) / (double)cfg->warmup_steps;
    int64_t decay_steps = total - cfg->warmup_steps;
    double progress = decay_steps > 0 ? (double)(t - cfg->warmup_steps) / (double)decay_steps : 1.0;
    double end = cfg->lr_end_ratio;
    if (strcmp(cfg->lr_schedule, "cosine") == 0)
        return cfg->lr * (end + (1.0 - end) * 0.5 * (1.0 + cos(3.141592653589793 * progress)));
    if (strcmp(cfg->lr_schedule, "linear") == 0) return cfg->lr * (1.0 - (1.0 - end) * progress);
    return cfg->lr;
}

/* Everything a run holds, released by run_close. */
typedef struct {
    saec_config cfg;
    char dir[SAEC_STR_MAX];
    saec_dev *dev;
    saec_comm *comm; /* data parallelism; NULL when alone */
    int rank, world; /* rank 0 alone writes the run's files and prints */
    saec_data *data;
    saec_model *model;
    float *batch_host; /* [batch, d] */
    int32_t *ts_host;  /* [batch] the batch's timesteps (data with timesteps) */
    saec_log log;
    saec_run_state state;
    int64_t total_steps;
    int created_dir; /* this run made r->dir: remove it again if setup fails while it is empty */
    saec_run_lock lock; /* rank 0: the run directory's writer lock */
} run;

/* Progress text: rank 0 speaks for the job. */
static void say(const run *r, const char *fmt, ...) {
    if (r->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void run_close(run *r) {
    saec_log_close(&r->log);
    saec_run_lock_release(&r->lock);
    if (r->model) r->model->ops->destroy(r->model);
    saec_data_close(r->data);
    saec_comm_close(r->comm);
    saec_dev_close(r->dev);
    free(r->batch_host);
    free(r->ts_host);
}

static int make_run_dir(run *r, int resume) {
    if (r->cfg.out[0]) {
        snprintf(r->dir, sizeof r->dir, "%s", r->cfg.out);
    } else {
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        snprintf(r->dir, sizeof r->dir, "runs/%s", stamp);
        snprintf(r->cfg.out, sizeof r->cfg.out, "%s", r->dir);
    }
    if (!resume) {
        r->created_dir = !saec_path_exists(r->dir);
        SAEC_TRY(saec_mkdirs(r->dir));
    }
    /* One writer per run directory; then what a killed writer left half-written goes. */
    SAEC_TRY(saec_run_lock_acquire(r->dir, resume ? "train --resume" : "train", &r->lock));
    SAEC_TRY(saec_run_remove_leftovers(r->dir));
    if (resume) return SAEC_OK;
    saec_ckpt_entry *list;
    int n;
    SAEC_TRY(saec_ckpt_list(r->dir, &list, &n));
    free(list);
    if (n > 0)
        return saec_fail(SAEC_ERR_USAGE, "continue it with --resume DIR, or choose another --out",
                         "run directory '%s' already holds a checkpoint", r->dir);
    return SAEC_OK;
}

static int write_config_json(const run *r) {
    char path[SAEC_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/config.json", r->dir);
    /* The keys as saec_config_to_json prints them (every digit: re-printing through cJSON would
       round numbers to 15), plus the device they ran on by name: "cuda (emulated on CPU)" must
       show. */
    char *keys = saec_config_to_json(&r->cfg);
    cJSON *name = cJSON_CreateString(r->dev->name);
    char *quoted = name ? cJSON_PrintUnformatted(name) : NULL;
    cJSON_Delete(name);
    char *end = keys ? strrchr(keys, '}') : NULL;
    char *text = NULL;
    if (end && quoted) {
        do /* "...\n}" -> "..." */
            *end-- = '\0';
        while (end > keys && (*end == '\n' || *end == ' ' || *end == '\t'));
        const size_t len = strlen(keys) + strlen(quoted) + 32;
        text = malloc(len);
        if (text) snprintf(text, len, "%s,\n\t\"device_name\":\t%s\n}\n", keys, quoted);
    }
    free(keys);
    free(quoted);
    if (!text) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing config.json");
    int rc = saec_write_text_atomic(path, text);
    free(text);
    return rc;
}

/* The device of this rank: with several ranks, "auto" and "cuda" mean the GPU of the local rank. */
static int open_device(run *r, const saec_world *w) {
    char spec[sizeof r->cfg.device + 32];
    saec_world_device(w, r->cfg.device, spec, sizeof spec);
    return saec_dev_open(spec, &r->dev);
}

/* Open device, data and model; initialise from a data sample or load the checkpoint. */
static int run_setup(run *r, int resume) {
    saec_config *cfg = &r->cfg;
    saec_world world;
    SAEC_TRY(saec_world_detect(&world));
    /* Device and data are checked before anything is written. */
    SAEC_TRY(open_device(r, &world));
    SAEC_TRY(saec_comm_open(r->dev, cfg->comm_timeout, &r->comm));
    r->rank = saec_comm_rank(r->comm);
    r->world = saec_comm_size(r->comm);
    SAEC_TRY(saec_data_open(cfg, SAEC_STREAM_TRAIN, &r->data));
    /* With a GPU training, the host is free to generate the next batch meanwhile; on the CPU
       backend a second thread team would only compete with the training threads. */
    if (r->dev->backend != SAEC_BACKEND_CPU)
        SAEC_TRY(saec_data_enable_prefetch(r->data, cfg, SAEC_STREAM_TRAIN));
    const int moe = !strcmp(cfg->model, "moe-mae");
    /* The timestep mode, resolved against the data (auto → bucket with timesteps), is what
       config.json records. */
    SAEC_TRY(saec_config_check_timestep_mode(cfg, r->data->has_timesteps));
    snprintf(cfg->timestep_mode, sizeof cfg->timestep_mode, "%s",
             sae_ts_mode_name(saec_config_timestep_mode(cfg, r->data->has_timesteps)));
    if (r->world > 1) {
        /* Ranks started with different configurations would train different models: refuse.
           Each rank may name its own device and (until rank 0's is broadcast) run directory. */
        static const char *const per_rank[] = {"device", "out", NULL};
        char *json = saec_config_to_json(cfg);
        const int rc = saec_comm_check_same_config(r->comm, json, per_rank);
        free(json);
        SAEC_TRY(rc);
    }
    if (r->rank == 0) SAEC_TRY(make_run_dir(r, resume));
    if (r->world > 1) { /* the run directory is rank 0's */
        SAEC_TRY(saec_comm_bcast_host(r->comm, r->dir, sizeof r->dir, 0));
        snprintf(cfg->out, sizeof cfg->out, "%s", r->dir);
    }
    if (!moe && r->data->eo_bands > 0)
        return saec_fail(SAEC_ERR_USAGE, "train it with --model moe-mae",
                         "the data (%s) holds EO images, not activations",
                         r->data->info.description);
    const int64_t d = r->data->info.d;
    cfg->d_in = d;
    r->total_steps = saec_total_steps(cfg, r->world);
    if (cfg->warmup_steps < 0) /* MoE-MAE's default (SPEC §7): 5% of the steps */
        cfg->warmup_steps = (r->total_steps + 10) / 20;
    if (moe)
        SAEC_TRY(saec_moe_mae_model_create(r->dev, r->comm, cfg, r->data, &r->model));
    else
        SAEC_TRY(saec_sae_model_create(r->dev, r->comm, cfg, d, r->total_steps, &r->model));
    r->batch_host = malloc(sizeof(float) * (size_t)(cfg->batch_size * d));
    r->ts_host = malloc(sizeof(int32_t) * (size_t)cfg->batch_size);
    if (!r->batch_host || !r->ts_host)
        return saec_fail(SAEC_ERR_OTHER, "lower batch_size", "out of memory for the batch");

    if (r->world > 1)
        fprintf(stderr, "saec: rank %d of %d (%s, %s) on %s\n", r->rank, r->world,
                saec_comm_world(r->comm)->launcher, saec_comm_backend_name(r->comm), r->dev->name);
    say(r, "saec: %s on %s\n", resume ? "resuming" : "training", r->dev->name);
    say(r, "saec: data %s\n", r->data->info.description);
    char ranks[64] = "";
    if (r->world > 1)
        snprintf(ranks, sizeof ranks, " (%lld on each of %d ranks)", (long long)cfg->batch_size,
                 r->world);
    char what[512];
    r->model->ops->describe(r->model, what, sizeof what);
    say(r, "saec: %s, %lld steps of %lld %s%s -> %s\n", what, (long long)r->total_steps,
        (long long)(cfg->batch_size * r->world), moe ? "tiles" : "tokens", ranks, r->dir);

    if (resume) {
        SAEC_TRY(r->model->ops->load(r->model, r->dir, &r->state));
        /* batch_size is per rank: a resume at another world size keeps the global batch */
        const int64_t global = cfg->batch_size * r->world, saved = r->state.global_batch;
        if (saved > 0 && global != saved) {
            char hint[160];
            if (saved % r->world == 0)
                snprintf(hint, sizeof hint, "with %d rank(s), resume with --batch-size %lld",
                         r->world, (long long)(saved / r->world));
            else
                snprintf(hint, sizeof hint, "use a number of ranks that divides %lld",
                         (long long)saved);
            return saec_fail(SAEC_ERR_USAGE, hint,
                             "the run trains on %lld tokens a step; %d rank(s) of batch_size "
                             "%lld would make it %lld",
                             (long long)saved, r->world, (long long)cfg->batch_size,
                             (long long)global);
        }
        SAEC_TRY(saec_data_seek(r->data, r->state.data_cursor));
        say(r, "saec: resumed at step %lld (%lld tokens)\n", (long long)r->state.step,
            (long long)r->state.tokens);
    } else {
        SAEC_TRY(r->model->ops->init(r->model, r->data));
        r->state = (saec_run_state){.data_cursor = r->data->cursor};
        if (r->rank == 0) SAEC_TRY(write_config_json(r));
    }
    r->state.global_batch = cfg->batch_size * r->world;
    return r->rank == 0 ? saec_log_open(&r->log, r->dir, r->state.step) : SAEC_OK;
}

static int log_step(run *r, double loop_seconds, int64_t steps_this_session) {
    const int64_t n = r->cfg.batch_size * r->world; /* the statistics are the global batch's */
    saec_log_record rec = {0};
    rec.step = r->state.step; /* the model may record per-step files of its own */
    SAEC_TRY(r->model->ops->metrics(r->model, n, &rec));
    for (int i = 0; i < rec.n_metrics; i++)
        if (rec.metrics[i].guard && !isfinite(rec.metrics[i].value)) {
            char values[256] = "";
            for (int j = 0, at = 0; j < rec.n_metrics && at < (int)sizeof values; j++)
                if (rec.metrics[j].guard)
                    at += snprintf(values + at, sizeof values - (size_t)at, "%s%s %g",
                                   at ? ", " : "", rec.metrics[j].key, rec.metrics[j].value);
            return saec_fail(SAEC_ERR_OTHER,
                             "lower lr or max_grad_norm; no checkpoint was written from this state",
                             "training diverged at step %lld (%s)", (long long)r->state.step,
                             values);
        }
    const double tps = loop_seconds > 0 ? (double)(steps_this_session * n) / loop_seconds : 0;
    const double per_step = steps_this_session > 0 ? loop_seconds / (double)steps_this_session : 0;
    rec.step = r->state.step;
    rec.total_steps = r->total_steps;
    rec.tokens = r->state.tokens;
    rec.lr = saec_lr_at(&r->cfg, r->state.step - 1, r->total_steps);
    rec.tokens_per_second = tps;
    rec.rate_unit = r->model->ops->rate_unit;
    rec.elapsed_seconds = r->state.seconds;
    rec.eta_seconds = per_step * (double)(r->total_steps - r->state.step);
    if (r->rank == 0) saec_log_record_write(&r->log, &rec);
    return SAEC_OK;
}

/* One optimisation step on the next batch. */
static int train_step(run *r) {
    const saec_config *cfg = &r->cfg;
    const int64_t n = cfg->batch_size;
    int32_t *ts = r->data->has_timesteps ? r->ts_host : NULL;
    SAEC_TRY(saec_data_next_shard(r->data, n, r->rank, r->world, r->batch_host, ts));
    SAEC_TRY(r->model->ops->step(r->model, r->batch_host, ts, n, r->state.step, r->total_steps,
                                 saec_lr_at(cfg, r->state.step, r->total_steps)));
    r->state.step++;
    r->state.tokens += n * r->world;
    r->state.data_cursor = r->data->cursor;
    return SAEC_OK;
}

/* Rank 0 alone: evaluation needs no other rank. */
static int write_summary(run *r) {
    cJSON *o = cJSON_CreateObject();
    const int moe = !strcmp(r->cfg.model, "moe-mae");
    cJSON_AddStringToObject(o, "arch", moe ? r->cfg.model : r->cfg.arch);
    cJSON_AddStringToObject(o, "device", r->dev->name);
    cJSON_AddNumberToObject(o, "steps", (double)r->state.step);
    cJSON_AddNumberToObject(o, "tokens", (double)r->state.tokens);
    cJSON_AddNumberToObject(o, "seconds", r->state.seconds);
    cJSON_AddNumberToObject(o, "tokens_per_second",
                            r->state.seconds > 0 ? (double)r->state.tokens / r->state.seconds : 0);
    int rc = r->model->ops->evaluate(r->model, &r->cfg, r->dir, o);
    char *text = rc == SAEC_OK ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (rc != SAEC_OK) return rc;
    char path[SAEC_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    rc = saec_write_text_atomic(path, text);
    if (rc == SAEC_OK) fprintf(stdout, "%s\n", text);
    free(text);
    return rc;
}

/* Every rank calls it; rank 0 writes. */
static int save_checkpoint(run *r) {
    return r->model->ops->save(r->model, r->dir, &r->cfg, &r->state);
}

static int agree_on_signal(run *r) {
    int64_t sig = g_signal;
    SAEC_TRY(saec_comm_allreduce_host(r->comm, &sig, 1, SAEC_DT_I64, SAEC_RED_MAX));
    if (sig && !g_signal) g_signal = (sig_atomic_t)sig;
    return SAEC_OK;
}

int saec_train(const saec_config *cfg, int resume, int *interrupted_by) {
    *interrupted_by = 0;
    run r;
    memset(&r, 0, sizeof r);
    r.lock.fd = -1;
    r.cfg = *cfg;
    g_signal = 0;
    install_signal_handlers();
    int rc = run_setup(&r, resume);
    if (rc != SAEC_OK && r.created_dir) {
        saec_log_close(&r.log);
        saec_run_lock_release(&r.lock);
        rmdir(r.dir); /* only succeeds when nothing was written: a failed start leaves no trace */
    }

    const double session_start = saec_now();
    const double seconds_before = r.state.seconds;
    const int64_t first_step = r.state.step;
    int stopped = 0;
    while (rc == SAEC_OK && r.state.step < r.total_steps) {
        rc = train_step(&r);
        if (rc != SAEC_OK) break;
        if (r.dev->backend != SAEC_BACKEND_CPU && (r.state.step % r.cfg.log_every == 0))
            rc = r.dev->ops->sync(r.dev); /* honest timings at logging steps */
        /* A signal may reach only some ranks: they agree on it, so that all stop at this step. */
        if (rc == SAEC_OK && r.world > 1) rc = agree_on_signal(&r);
        r.state.seconds = seconds_before + (saec_now() - session_start);
        const int last = r.state.step == r.total_steps;
        const int stopping = r.state.step == r.cfg.stop_at_step;
        if (rc == SAEC_OK && (r.state.step % r.cfg.log_every == 0 || last || g_signal || stopping))
            rc = log_step(&r, saec_now() - session_start, r.state.step - first_step);
        if (rc == SAEC_OK && !last && r.state.step == r.cfg.stop_at_step) {
            rc = save_checkpoint(&r);
            if (rc == SAEC_OK)
                say(&r,
                    "saec: stopped at step %lld (stop_at_step); continue with: "
                    "saec train --resume %s\n",
                    (long long)r.state.step, r.dir);
            stopped = 1;
            break;
        }
        if (rc == SAEC_OK && g_signal) {
            rc = save_checkpoint(&r);
            if (rc == SAEC_OK) {
                say(&r,
                    "saec: interrupted by signal %d at step %lld; checkpoint saved.\n"
                    "      continue with: saec train --resume %s\n",
                    (int)g_signal, (long long)r.state.step, r.dir);
                *interrupted_by = g_signal;
            }
            break;
        }
        if (rc == SAEC_OK && r.cfg.checkpoint_every > 0 && !last &&
            r.state.step % r.cfg.checkpoint_every == 0)
            rc = save_checkpoint(&r);
    }
    if (rc == SAEC_OK && !*interrupted_by && !stopped) {
        rc = save_checkpoint(&r);
        /* rank 0 evaluates alone (evaluation needs no other rank) */
        if (rc == SAEC_OK && r.rank == 0) rc = write_summary(&r);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    run_close(&r);
    return rc;
}
