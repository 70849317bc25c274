/* `saec export SRC --format saelens|sparsify --out DIR`: write a trained SAE (a run directory, or
   another export) in the layout of SAELens or sparsify, with the data scale folded in (SPEC §10,
   export.h). SAELens's sparsity.safetensors is measured on the run's eval stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "data.h"
#include "eval.h"
#include "export.h"
#include "fsutil.h"
#include "model_io.h"
#include "run_dir.h"
#include "sae.h"
#include "saec/device.h"

#define EXPORT_BATCH_MAX 4096

static const char *const usage_hint =
    "usage: saec export RUN_DIR --format saelens|sparsify --out DIR [--eval-tokens N] [--device D]";

/* Remove `key` from the collected pairs and return its value (NULL when absent). */
static const char *take_option(cli_args *a, const char *key) {
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->key[i], key)) {
            const char *v = a->value[i];
            a->key[i] = a->key[a->n - 1];
            a->value[i] = a->value[a->n - 1];
            a->n--;
            return v;
        }
    return NULL;
}

/* Create --out; it must be writable, and must not be a run directory or hold the other format
   (a directory holding two SAEs would be ambiguous to load). */
static int prepare_out_dir(const char *out, saec_model_kind kind, saec_run_lock *lock) {
    SAEC_TRY(saec_mkdirs(out));
    if (access(out, W_OK | X_OK) != 0)
        return saec_fail(SAEC_ERR_USAGE, "choose a writable directory with --out",
                         "cannot write into output directory '%s'", out);
    /* one writer at a time, as for run directories */
    SAEC_TRY(saec_run_lock_acquire(out, "export", lock));
    SAEC_TRY(saec_run_remove_leftovers(out));
    const saec_model_kind there = saec_model_detect(out);
    if (there != SAEC_MODEL_NONE && there != kind)
        return saec_fail(SAEC_ERR_USAGE, "export into an empty directory",
                         "output directory '%s' already holds a %s", out,
                         saec_model_kind_name(there));
    return SAEC_OK;
}

static int export_model(const char *src, const cli_args *args, saec_model_kind kind,
                        const char *out) {
    saec_host_model hm;
    SAEC_TRY(saec_host_model_read(src, &hm));
    saec_config cfg;
    saec_host_model_config(&hm, &cfg);
    for (int i = 0; i < args->n; i++)
        if (!strcmp(args->key[i], "synthetic"))
            cfg.data[0] = '\0'; /* --synthetic replaces --data */
    int rc = cli_apply(args, &cfg);
    if (rc == SAEC_OK && (cfg.latents != hm.m || cfg.k != hm.k))
        rc = saec_fail(SAEC_ERR_USAGE, "the trained model fixes latents and k",
                       "latents and k cannot change in export");
    cfg.d_in = hm.d;
    if (rc == SAEC_OK) rc = saec_export_refuse_timestep_aware(&hm, src); /* before --out */

    saec_dev *dev = NULL;
    saec_data *data = NULL;
    saec_sae *sae = NULL;
    float *log_sparsity = NULL;
    /* Everything that can fail on the inputs is checked before --out is touched. */
    if (rc == SAEC_OK && kind == SAEC_MODEL_SAELENS) {
        rc = saec_dev_open(cfg.device, &dev);
        if (rc == SAEC_OK) rc = saec_data_open(&cfg, SAEC_STREAM_EVAL, &data);
        const int64_t batch = cfg.batch_size < EXPORT_BATCH_MAX ? cfg.batch_size : EXPORT_BATCH_MAX;
        if (rc == SAEC_OK) {
            sae_hparams hp;
            sae_hparams_from_config(&cfg, hm.d, INT64_MAX, batch, &hp);
            rc = sae_create(dev, &hp, &sae);
        }
        if (rc == SAEC_OK) rc = saec_host_model_upload(&hm, sae);
        log_sparsity = malloc(sizeof(float) * (size_t)hm.m);
        if (rc == SAEC_OK && !log_sparsity) rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
    }
    saec_run_lock lock = {.fd = -1};
    if (rc == SAEC_OK) rc = prepare_out_dir(out, kind, &lock);
    if (rc == SAEC_OK && kind == SAEC_MODEL_SAELENS) {
        fprintf(stderr, "saec: measuring latent firing on %lld tokens of %s\n",
                (long long)saec_eval_rows(data, cfg.eval_tokens, 0), data->info.description);
        rc = saec_latent_log_sparsity(sae, data, cfg.eval_tokens, log_sparsity);
    }
    if (rc == SAEC_OK) rc = saec_export_write(&hm, kind, log_sparsity, src, out);
    if (rc == SAEC_OK)
        fprintf(stderr,
                "saec: exported %s (%s, step %lld) as a %s to %s; data scale %g folded in\n", src,
                saec_model_kind_name(hm.kind), (long long)hm.step, saec_model_kind_name(kind), out,
                (double)hm.scale);
    saec_run_lock_release(&lock);
    free(log_sparsity);
    sae_destroy(sae);
    saec_data_close(data);
    saec_dev_close(dev);
    saec_host_model_free(&hm);
    return rc;
}

int cmd_export(int argc, char **argv) {
    cli_args args;
    int rc = cli_collect(argc, argv, 2, &args);
    if (rc == SAEC_OK && !args.positional)
        rc = saec_fail(SAEC_ERR_USAGE, usage_hint, "missing the run directory");
    if (rc == SAEC_OK && (args.config_file || args.resume_dir))
        rc = saec_fail(SAEC_ERR_USAGE, usage_hint, "--config and --resume are not export options");
    const char *format = rc == SAEC_OK ? take_option(&args, "format") : NULL;
    const char *out = rc == SAEC_OK ? take_option(&args, "out") : NULL;
    saec_model_kind kind = SAEC_MODEL_NONE;
    if (rc == SAEC_OK && !format)
        rc = saec_fail(SAEC_ERR_USAGE, usage_hint, "missing --format (saelens or sparsify)");
    else if (rc == SAEC_OK && !strcmp(format, "saelens"))
        kind = SAEC_MODEL_SAELENS;
    else if (rc == SAEC_OK && !strcmp(format, "sparsify"))
        kind = SAEC_MODEL_SPARSIFY;
    else if (rc == SAEC_OK)
        rc = saec_fail(SAEC_ERR_USAGE, "choose one of: saelens|sparsify",
                       "export format '%s' is not supported", format);
    if (rc == SAEC_OK && (!out || !out[0]))
        rc = saec_fail(SAEC_ERR_USAGE, usage_hint, "missing --out DIR");
    if (rc == SAEC_OK) rc = export_model(args.positional, &args, kind, out);
    return cli_report(rc);
}
