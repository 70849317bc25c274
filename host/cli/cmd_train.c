/* `saec train`: defaults ← --config FILE ← --KEY VALUE, or --resume DIR. */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "saec/saec.h"
#include "train.h"

/* Keys that may change when a run is resumed; the rest would break the equivalence with an
   uninterrupted run. batch_size is the per-rank batch: a run resumed at another world size keeps
   its global batch by changing it. */
static const char *RESUMABLE_KEYS[] = {
    "steps",       "tokens",       "log_every",  "checkpoint_every", "device",
    "eval_tokens", "stop_at_step", "batch_size", "comm_timeout",     "zero_stage",
    "keep_checkpoints"};

static int resume_override_ok(const char *key) {
    const saec_config_key *k = saec_config_find_key(key);
    if (!k) return 1; /* reported as unknown by cli_apply */
    for (size_t i = 0; i < sizeof RESUMABLE_KEYS / sizeof RESUMABLE_KEYS[0]; i++)
        if (!strcmp(k->name, RESUMABLE_KEYS[i])) return 1;
    return 0;
}

static int build_config(const cli_args *args, saec_config *cfg) {
    if (args->resume_dir) {
        if (args->config_file)
            return saec_fail(SAEC_ERR_USAGE, "a resumed run keeps its own configuration",
                             "--config cannot be combined with --resume");
        SAEC_TRY(ckpt_read_config(args->resume_dir, cfg));
        for (int i = 0; i < args->n; i++)
            if (!resume_override_ok(args->key[i])) {
                char hint[256] = "only these keys may change on resume (batch_size is per rank):";
                for (size_t j = 0; j < sizeof RESUMABLE_KEYS / sizeof RESUMABLE_KEYS[0]; j++)
                    snprintf(hint + strlen(hint), sizeof hint - strlen(hint), " %s",
                             RESUMABLE_KEYS[j]);
                return saec_fail(SAEC_ERR_USAGE, hint,
                                 "config key '%s' cannot change when resuming", args->key[i]);
            }
        /* steps and tokens are alternatives: a new one replaces the stored one. */
        for (int i = 0; i < args->n; i++) {
            const saec_config_key *k = saec_config_find_key(args->key[i]);
            if (k && !strcmp(k->name, "steps")) cfg->tokens = 0;
            if (k && !strcmp(k->name, "tokens")) cfg->steps = 0;
        }
        SAEC_TRY(cli_apply(args, cfg));
        snprintf(cfg->out, sizeof cfg->out, "%s", args->resume_dir);
    } else {
        saec_config_defaults(cfg);
        if (args->config_file) SAEC_TRY(saec_config_load_json(cfg, args->config_file));
        SAEC_TRY(cli_apply(args, cfg));
    }
    SAEC_TRY(saec_config_validate(cfg));
    saec_config_resolve(cfg);
    return SAEC_OK;
}

int cmd_train(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: saec train [--config FILE.json] [--KEY VALUE ...] [--resume DIR]\n\n"
                "With no arguments, trains a TopK SAE on the built-in synthetic data with known\n"
                "ground truth and reports how well it recovers the true features (mmcs).\n\n");
            cli_print_keys();
            return 0;
        }
    cli_args args;
    saec_config cfg;
    int rc = cli_collect(argc, argv, 2, &args);
    if (rc == SAEC_OK && args.positional)
        rc = saec_fail(SAEC_ERR_USAGE, "options are written --KEY VALUE",
                       "unexpected argument '%s'", args.positional);
    if (rc == SAEC_OK) rc = build_config(&args, &cfg);
    int interrupted = 0;
    if (rc == SAEC_OK) rc = saec_train(&cfg, args.resume_dir != NULL, &interrupted);
    if (rc != SAEC_OK) return cli_report(rc);
    return interrupted ? 128 + interrupted : 0;
}
