/* `saec eval RUN_DIR`: metrics of a trained SAE on held-out data (the run's own source by
   default, or --data / --synthetic). RUN_DIR may also be a SAELens or sparsify export (model_io.h):
   it is evaluated in raw units (scale 1), so its nmse, cosine and l0 match the run's and its mse
   is in the units of the activations. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data.h"
#include "eval.h"
#include "export.h"
#include "fsutil.h"
#include "model_io.h"
#include "sae.h"
#include "saec/device.h"

#define EVAL_BATCH_MAX 4096

static int eval_run(const char *run_dir, const cli_args *args, const char *out_path,
                    const char *dump_path) {
    /* A run's checkpoint or an export, read the same way (model_io.c). */
    saec_host_model hm;
    SAEC_TRY(saec_host_model_read(run_dir, &hm));
    saec_config cfg;
    saec_host_model_config(&hm, &cfg);
    const int64_t d_trained = hm.d, latents = hm.m, k = hm.k;
    for (int i = 0; i < args->n; i++)
        if (!strcmp(args->key[i], "synthetic"))
            cfg.data[0] = '\0'; /* --synthetic replaces --data */
    int rc = cli_apply(args, &cfg);
    if (rc == SAEC_OK && (cfg.latents != latents || cfg.k != k))
        rc = saec_fail(SAEC_ERR_USAGE, "the trained model fixes latents and k",
                       "latents and k cannot change in eval");
    cfg.d_in = d_trained; /* the data must match the model's width */
    /* Exports by other tools carry no μ for the nmse denominator: measure it on the data. */
    if (rc == SAEC_OK) rc = saec_host_model_fill_mean(&hm, &cfg, cfg.init_sample);

    saec_dev *dev = NULL;
    saec_data *data = NULL;
    saec_sae *sae = NULL;
    if (rc == SAEC_OK) rc = saec_dev_open(cfg.device, &dev);
    if (rc == SAEC_OK) rc = saec_data_open(&cfg, SAEC_STREAM_EVAL, &data);
    const int64_t batch = cfg.batch_size < EVAL_BATCH_MAX ? cfg.batch_size : EVAL_BATCH_MAX;
    if (rc == SAEC_OK) {
        sae_hparams hp;
        sae_hparams_from_config(&cfg, d_trained, INT64_MAX, batch, &hp);
        rc = sae_create(dev, &hp, &sae);
    }
    if (rc == SAEC_OK) rc = saec_host_model_upload(&hm, sae);
    saec_eval_result res = {0};
    if (rc == SAEC_OK) {
        fprintf(stderr, "saec: evaluating %s (%s, step %lld) on %lld tokens of %s\n", run_dir,
                saec_model_kind_name(hm.kind), (long long)hm.step,
                (long long)saec_eval_rows(data, cfg.eval_tokens, 0), data->info.description);
        rc = saec_evaluate(sae, data, cfg.eval_tokens, cfg.timestep_buckets, cfg.timesteps, &res);
    }
    /* --dump-recon: the same rows again, from a fresh stream, for tests to compare x̂ row by row
       (as many as eval read: saec_dump_reconstructions caps them the same way). */
    if (rc == SAEC_OK && dump_path) {
        saec_data *again = NULL;
        rc = saec_data_open(&cfg, SAEC_STREAM_EVAL, &again);
        if (rc == SAEC_OK) rc = saec_dump_reconstructions(sae, again, cfg.eval_tokens, dump_path);
        saec_data_close(again);
    }
    if (rc == SAEC_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "run", run_dir);
        cJSON_AddStringToObject(o, "arch", cfg.arch);
        cJSON_AddStringToObject(o, "device", dev->name);
        cJSON_AddStringToObject(o, "data", data->info.description);
        if (hm.step >= 0)
            cJSON_AddNumberToObject(o, "step", (double)hm.step);
        else
            cJSON_AddNullToObject(o, "step");
        saec_eval_result_to_json(&res, o);
        char *text = cJSON_Print(o);
        cJSON_Delete(o);
        if (out_path)
            rc = saec_write_text_atomic(out_path, text);
        else
            printf("%s\n", text);
        free(text);
    }
    saec_eval_result_free(&res);
    sae_destroy(sae);
    saec_data_close(data);
    saec_dev_close(dev);
    saec_host_model_free(&hm);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    cli_args args;
    int rc = cli_collect(argc, argv, 2, &args);
    if (rc == SAEC_OK && !args.positional)
        rc = saec_fail(SAEC_ERR_USAGE,
                       "usage: saec eval RUN_DIR|EXPORT_DIR [--data FILE.h5] [--out FILE.json]",
                       "missing the run directory");
    if (rc == SAEC_OK && (args.config_file || args.resume_dir))
        rc = saec_fail(SAEC_ERR_USAGE, "eval reads the run's own configuration",
                       "--config and --resume are not eval options");
    /* --out names the result file here, not a run directory; --dump-recon FILE.npy (for tests)
       writes the reconstructions of the evaluated rows, in raw units. Neither is a config key. */
    const char *out_path = NULL, *dump_path = NULL;
    for (int i = 0; rc == SAEC_OK && i < args.n; i++) {
        const char *key = args.key[i];
        const int is_out = !strcmp(key, "out");
        if (!is_out && strcmp(key, "dump-recon") != 0 && strcmp(key, "dump_recon") != 0) continue;
        *(is_out ? &out_path : &dump_path) = args.value[i];
        args.key[i] = args.key[args.n - 1];
        args.value[i] = args.value[args.n - 1];
        args.n--;
        i--;
    }
    if (rc == SAEC_OK) rc = eval_run(args.positional, &args, out_path, dump_path);
    return cli_report(rc);
}
