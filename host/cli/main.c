/* The `saec` command: train | eval | gen | import | inspect | export | embed | probe. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "saec/saec.h"

static void usage(FILE *out) {
    fprintf(out,
            "saec %s: training engine for sparse autoencoders and MoE-MAE\n\n"
            "usage:\n"
            "  saec train [--config FILE.json] [--KEY VALUE ...] [--resume DIR]\n"
            "  saec eval RUN_DIR [--data FILE.h5 | --synthetic NAME] [--eval-tokens N] [--out "
            "FILE.json]\n"
            "  saec gen NAME --out FILE.h5 [--tokens N] [--d-in D] [--seed S] [--KEY VALUE ...]\n"
            "  saec gen eo --out FILE.h5 [--tokens TILES] [--eo-side S] [--seed S]\n"
            "  saec import geotiff --layout bigearthnet|eurosat --in DIR --out FILE.h5\n"
            "              [--on-error skip|stop] [--limit N]\n"
            "  saec export RUN_DIR --format saelens|sparsify --out DIR\n"
            "  saec inspect FILE_OR_DIR\n"
            "  saec embed RUN_DIR [--data FILE.h5] --out EMB.h5 [--features "
            "encoder|random_init|band_means]\n"
            "  saec probe EMB.h5 [EMB.h5 ...] [--c C] [--train-fraction F] [--out REPORT.json]\n\n"
            "'saec train --help' lists every configuration key.\n"
            "exit codes: 0 success, 1 other error, 2 usage/config, 3 data, 4 device,\n"
            "            130/143 interrupted by SIGINT/SIGTERM (checkpoint saved)\n",
            SAEC_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return SAEC_ERR_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train")) return cmd_train(argc, argv);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc, argv);
    if (!strcmp(cmd, "gen")) return cmd_gen(argc, argv);
    if (!strcmp(cmd, "import")) return cmd_import(argc, argv);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc, argv);
    if (!strcmp(cmd, "export")) return cmd_export(argc, argv);
    if (!strcmp(cmd, "embed")) return cmd_embed(argc, argv);
    if (!strcmp(cmd, "probe")) return cmd_probe(argc, argv);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("saec %s\n", SAEC_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "saec: error: unknown command '%s'\n", cmd);
    usage(stderr);
    return SAEC_ERR_USAGE;
}
