/* `saec import geotiff --layout bigearthnet|eurosat --in DIR --out FILE.h5`: Landsat GeoTIFF
   tiles into the HDF5 EO layout (host/data/eo_geotiff.h says what each layout holds). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eo_geotiff.h"
#include "saec/saec.h"

#define IMPORT_USAGE                                                                               \
    "usage: saec import geotiff --layout bigearthnet|eurosat --in DIR --out FILE.h5\n"             \
    "                           [--on-error skip|stop] [--limit N]"

static volatile sig_atomic_t g_import_signal = 0;

static void on_signal(int sig) { g_import_signal = sig; }

/* The import stops between tiles at SIGINT/SIGTERM and leaves no output file; a second signal
   terminates at once. */
static void install_signal_handlers(void) { cli_on_stop_signals(on_signal); }

static int parse_options(const cli_args *args, eo_import_options *opt) {
    const char *layout = NULL;
    for (int i = 0; i < args->n; i++) {
        const char *k = args->key[i], *v = args->value[i];
        if (!strcmp(k, "layout")) {
            layout = v;
        } else if (!strcmp(k, "in")) {
            opt->in_dir = v;
        } else if (!strcmp(k, "out")) {
            opt->out_path = v;
        } else if (!strcmp(k, "on-error") || !strcmp(k, "on_error")) {
            if (!strcmp(v, "skip"))
                opt->on_error = EO_ON_ERROR_SKIP;
            else if (!strcmp(v, "stop"))
                opt->on_error = EO_ON_ERROR_STOP;
            else
                return saec_fail(SAEC_ERR_USAGE, "--on-error skip (the default) or stop",
                                 "bad --on-error '%s'", v);
        } else if (!strcmp(k, "limit")) {
            char *end;
            errno = 0;
            const long long n = strtoll(v, &end, 10);
            if (errno || end == v || *end || n < 0)
                return saec_fail(SAEC_ERR_USAGE, "--limit N imports at most N tiles (0: all)",
                                 "bad --limit '%s'", v);
            opt->limit = n;
        } else {
            return saec_fail(SAEC_ERR_USAGE, IMPORT_USAGE, "unknown option '--%s' for import", k);
        }
    }
    if (args->config_file || args->resume_dir)
        return saec_fail(SAEC_ERR_USAGE, IMPORT_USAGE, "import takes no --config or --resume");
    if (!layout)
        return saec_fail(SAEC_ERR_USAGE, IMPORT_USAGE, "missing --layout bigearthnet|eurosat");
    if (!strcmp(layout, "bigearthnet"))
        opt->layout = EO_LAYOUT_BIGEARTHNET;
    else if (!strcmp(layout, "eurosat"))
        opt->layout = EO_LAYOUT_EUROSAT;
    else
        return saec_fail(SAEC_ERR_USAGE, IMPORT_USAGE,
                         "unknown --layout '%s' (bigearthnet or eurosat)", layout);
    if (!opt->in_dir) return saec_fail(SAEC_ERR_USAGE, IMPORT_USAGE, "missing --in DIR");
    if (!opt->out_path) return saec_fail(SAEC_ERR_USAGE, IMPORT_USAGE, "missing --out FILE.h5");
    return SAEC_OK;
}

int cmd_import(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s\n\n"
                   "Landsat GeoTIFF tiles into the HDF5 EO layout (40×40, 7 bands, uint16):\n"
                   "  bigearthnet  NAME.tif (41×41, 7 bands) + NAME.json (labels, "
                   "acquisition_date)\n"
                   "               anywhere under DIR; splits from DIR/{train,val,test}.csv when "
                   "present\n"
                   "  eurosat      DIR/CLASS/NAME.tif (8 bands, the 8th dropped, resized "
                   "bilinearly)\n"
                   "Bad tiles are reported by file name and skipped (--on-error stop: the "
                   "first one\n"
                   "stops the import and nothing is written).\n",
                   IMPORT_USAGE);
            return 0;
        }
    cli_args args;
    int rc = cli_collect(argc, argv, 2, &args);
    if (rc == SAEC_OK && !args.positional)
        rc = saec_fail(SAEC_ERR_USAGE, IMPORT_USAGE, "missing the import format (geotiff)");
    if (rc == SAEC_OK && strcmp(args.positional, "geotiff") != 0)
        rc = saec_fail(SAEC_ERR_USAGE, IMPORT_USAGE, "unknown import format '%s' (geotiff)",
                       args.positional);
    eo_import_options opt;
    memset(&opt, 0, sizeof opt);
    opt.on_error = EO_ON_ERROR_SKIP;
    opt.progress_every_s = 5.0;
    opt.interrupt = &g_import_signal;
    if (rc == SAEC_OK) rc = parse_options(&args, &opt);
    if (rc != SAEC_OK) return cli_report(rc);

    g_import_signal = 0;
    install_signal_handlers();
    eo_import_summary summary;
    rc = eo_import_geotiff(&opt, &summary);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (g_import_signal) {
        cli_report(rc);
        return 128 + g_import_signal;
    }
    if (rc == SAEC_OK) fprintf(stderr, "saec: wrote %s\n", opt.out_path);
    return cli_report(rc);
}
