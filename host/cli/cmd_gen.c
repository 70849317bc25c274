/* `saec gen NAME --out FILE.h5`: write a synthetic dataset with its ground truth (SPEC §9), or
   with NAME eo, synthetic EO tiles in the EO layout (eo_h5.h). */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data.h"
#include "eo_gen.h"
#include "h5_write.h"
#include "saec/saec.h"

#define GEN_DEFAULT_TOKENS 262144
#define GEN_DEFAULT_EO_TILES 4096

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) { g_signal = sig; }

/* `saec gen eo`: --tokens counts tiles. SIGINT/SIGTERM stop the write and remove the temporary
   file (exit 128 + signal); a second signal terminates at once. */
static int gen_eo(const saec_config *cfg) {
    const int64_t tiles = cfg->tokens > 0 ? cfg->tokens : GEN_DEFAULT_EO_TILES;
    cJSON *prov = cJSON_CreateObject();
    cJSON_AddStringToObject(prov, "tool", "saec " SAEC_VERSION);
    cJSON_AddStringToObject(prov, "generator", "eo");
    cJSON_AddNumberToObject(prov, "tiles", (double)tiles);
    cJSON_AddNumberToObject(prov, "seed", (double)cfg->seed);
    cJSON_AddNumberToObject(prov, "eo_side", (double)cfg->eo_side);
    char *text = cJSON_PrintUnformatted(prov);
    cJSON_Delete(prov);
    cli_on_stop_signals(on_signal);
    fprintf(stderr, "saec: writing %lld synthetic EO tiles of %lldx%lld to %s\n", (long long)tiles,
            (long long)cfg->eo_side, (long long)cfg->eo_side, cfg->out);
    int rc = eo_gen_write(cfg, cfg->out, tiles, text, 1, &g_signal);
    free(text);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc == SAEC_OK) fprintf(stderr, "saec: wrote %s\n", cfg->out);
    rc = cli_report(rc);
    return g_signal ? 128 + g_signal : rc;
}

int cmd_gen(int argc, char **argv) {
    cli_args args;
    saec_config cfg;
    saec_config_defaults(&cfg);
    int rc = cli_collect(argc, argv, 2, &args);
    if (rc == SAEC_OK && !args.positional)
        rc =
            saec_fail(SAEC_ERR_USAGE,
                      "usage: saec gen superposition|hierarchy|timestep|eo --out FILE.h5 [--tokens N]",
                      "missing the generator name");
    if (rc == SAEC_OK) rc = saec_config_set(&cfg, "synthetic", args.positional, "command line");
    if (rc == SAEC_OK) rc = cli_apply(&args, &cfg);
    if (rc == SAEC_OK && !cfg.out[0])
        rc = saec_fail(SAEC_ERR_USAGE, "add --out FILE.h5", "missing the output file");
    if (rc == SAEC_OK && cfg.data[0])
        rc = saec_fail(SAEC_ERR_USAGE, "gen writes synthetic data only",
                       "--data is not a gen option");
    if (rc != SAEC_OK) return cli_report(rc);
    if (!strcmp(cfg.synthetic, "eo")) return gen_eo(&cfg);

    const int64_t tokens = cfg.tokens > 0 ? cfg.tokens : GEN_DEFAULT_TOKENS;
    saec_data *src = NULL;
    rc = saec_data_open(&cfg, SAEC_STREAM_TRAIN, &src);
    if (rc == SAEC_OK) {
        cJSON *prov = cJSON_CreateObject();
        cJSON_AddStringToObject(prov, "tool", "saec " SAEC_VERSION);
        cJSON_AddStringToObject(prov, "generator", cfg.synthetic);
        cJSON_AddStringToObject(prov, "description", src->info.description);
        cJSON_AddNumberToObject(prov, "tokens", (double)tokens);
        cJSON_AddNumberToObject(prov, "seed", (double)cfg.seed);
        cJSON_AddNumberToObject(prov, "syn_features", (double)cfg.syn_features);
        cJSON_AddNumberToObject(prov, "syn_l0", cfg.syn_l0);
        cJSON_AddNumberToObject(prov, "syn_power", cfg.syn_power);
        cJSON_AddNumberToObject(prov, "syn_noise", cfg.syn_noise);
        cJSON_AddNumberToObject(prov, "syn_offset", cfg.syn_offset);
        if (!strcmp(cfg.synthetic, "hierarchy")) {
            cJSON_AddNumberToObject(prov, "syn_parents", (double)cfg.syn_parents);
            cJSON_AddNumberToObject(prov, "syn_children", (double)cfg.syn_children);
            cJSON_AddNumberToObject(prov, "syn_child_prob", cfg.syn_child_prob);
        }
        if (!strcmp(cfg.synthetic, "timestep")) {
            cJSON_AddNumberToObject(prov, "timesteps", (double)cfg.timesteps);
            cJSON_AddNumberToObject(prov, "syn_t_width", cfg.syn_t_width);
            cJSON_AddNumberToObject(prov, "syn_t_drift", cfg.syn_t_drift);
        }
        char *text = cJSON_PrintUnformatted(prov);
        cJSON_Delete(prov);
        fprintf(stderr, "saec: writing %lld tokens of %s to %s\n", (long long)tokens,
                src->info.description, cfg.out);
        rc = saec_h5_write_dataset(cfg.out, src, tokens, text, 1);
        free(text);
    }
    saec_data_close(src);
    if (rc == SAEC_OK) fprintf(stderr, "saec: wrote %s\n", cfg.out);
    return cli_report(rc);
}
