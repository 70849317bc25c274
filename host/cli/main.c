/* The `saec` command: train | eval | gen | import | inspect | export. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "saec/saec.h"

static void usage(FILE *out) {
    fprintf(out,
            "saec %s: sparse autoencoder training engine\n\n"
            "usage:\n"
            "  saec train [--config FILE.json] [--KEY VALUE ...] [--resume DIR]\n"
            "  saec eval RUN_DIR [--data FILE.h5 | --synthetic NAME] [--eval-tokens N] [--out "
            "FILE.json]\n"
            "  saec gen NAME --out FILE.h5 [--tokens N] [--d-in D] [--seed S] [--KEY VALUE ...]\n"
            "  saec import geotiff --layout bigearthnet|eurosat --in DIR --out FILE.h5\n"
            "              [--on-error skip|stop] [--limit N]\n"
            "  saec export RUN_DIR --format saelens|sparsify --out DIR\n"
            "  saec inspect FILE_OR_DIR\n\n"
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
