/* `saec eval RUN_DIR`: metrics of a trained SAE on held-out data (the run's own source by
   default, or --data / --synthetic). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "data.h"
#include "eval.h"
#include "fsutil.h"
#include "sae.h"
#include "saec/device.h"

#define EVAL_BATCH_MAX 4096

static int eval_run(const char *run_dir, const cli_args *args, const char *out_path) {
    saec_config cfg;
    SAEC_TRY(ckpt_read_config(run_dir, &cfg));
    const int64_t d_trained = cfg.d_in, latents = cfg.latents, k = cfg.k;
    for (int i = 0; i < args->n; i++)
        if (!strcmp(args->key[i], "synthetic")) cfg.data[0] = '\0'; /* --synthetic replaces --data */
    SAEC_TRY(cli_apply(args, &cfg));
    if (cfg.latents != latents || cfg.k != k)
        return saec_fail(SAEC_ERR_USAGE, "the trained model fixes latents and k",
                         "latents and k cannot change in eval");
    cfg.d_in = d_trained; /* the data must match the model's width */

    saec_dev *dev = NULL;
    saec_data *data = NULL;
    saec_sae *sae = NULL;
    int rc = saec_dev_open(cfg.device, &dev);
    if (rc == SAEC_OK) rc = saec_data_open(&cfg, SAEC_STREAM_EVAL, &data);
    const int64_t batch = cfg.batch_size < EVAL_BATCH_MAX ? cfg.batch_size : EVAL_BATCH_MAX;
    if (rc == SAEC_OK) rc = sae_create(dev, d_trained, latents, k, 0, 0.0f, INT64_MAX, batch, &sae);
    saec_run_state st;
    if (rc == SAEC_OK) rc = ckpt_load(run_dir, sae, &st, 0);
    saec_eval_result res;
    if (rc == SAEC_OK) {
        fprintf(stderr, "saec: evaluating %s (step %lld) on %lld tokens of %s\n", run_dir,
                (long long)st.step, (long long)cfg.eval_tokens, data->info.description);
        rc = saec_evaluate(sae, data, cfg.eval_tokens, &res);
    }
    if (rc == SAEC_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "run", run_dir);
        cJSON_AddStringToObject(o, "arch", cfg.arch);
        cJSON_AddStringToObject(o, "device", dev->name);
        cJSON_AddStringToObject(o, "data", data->info.description);
        cJSON_AddNumberToObject(o, "step", (double)st.step);
        saec_eval_result_to_json(&res, o);
        char *text = cJSON_Print(o);
        cJSON_Delete(o);
        if (out_path)
            rc = saec_write_text_atomic(out_path, text);
        else
            printf("%s\n", text);
        free(text);
    }
    sae_destroy(sae);
    saec_data_close(data);
    saec_dev_close(dev);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    cli_args args;
    int rc = cli_collect(argc, argv, 2, &args);
    if (rc == SAEC_OK && !args.positional)
        rc = saec_fail(SAEC_ERR_USAGE, "usage: saec eval RUN_DIR [--data FILE.h5] [--out FILE.json]",
                       "missing the run directory");
    if (rc == SAEC_OK && (args.config_file || args.resume_dir))
        rc = saec_fail(SAEC_ERR_USAGE, "eval reads the run's own configuration",
                       "--config and --resume are not eval options");
    /* --out names the result file here, not a run directory. */
    const char *out_path = NULL;
    for (int i = 0; rc == SAEC_OK && i < args.n; i++)
        if (!strcmp(args.key[i], "out")) {
            out_path = args.value[i];
            args.key[i] = args.key[args.n - 1];
            args.value[i] = args.value[args.n - 1];
            args.n--;
            break;
        }
    if (rc == SAEC_OK) rc = eval_run(args.positional, &args, out_path);
    return cli_report(rc);
}
