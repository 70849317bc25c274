/* `saec embed RUN_DIR`: the frozen MoE-MAE encoder's embeddings of a labelled EO set (SPEC §7:
   all tokens, clean router, no dropout, the fused MoE; the mean of the last block's output before
   the final LayerNorm), or a baseline's features, written as an embeddings file (emb_h5.h) for
   `saec probe`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "emb_h5.h"
#include "eo_set.h"
#include "moe_mae_checkpoint.h"
#include "moe_mae_eval.h"
#include "saec/device.h"

#define USAGE                                                                                      \
    "usage: saec embed RUN_DIR [--data FILE.h5] --out EMB.h5 "                                     \
    "[--features encoder|random_init|band_means] [--probe-tiles N] [--device D]"

static int features_from_name(const char *name, moe_features *out) {
    static const moe_features all[] = {MOE_FEATURES_ENCODER, MOE_FEATURES_RANDOM_INIT,
                                       MOE_FEATURES_BAND_MEANS};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, moe_features_name(all[i]))) {
            *out = all[i];
            return SAEC_OK;
        }
    return saec_fail(SAEC_ERR_USAGE, "use encoder, random_init or band_means",
                     "--features '%s' is not a kind of features", name);
}

static int embed_run(const char *run_dir, const cli_args *args, const char *out_path,
                     moe_features kind) {
    saec_config cfg;
    SAEC_TRY(ckpt_read_config(run_dir, &cfg));
    if (strcmp(cfg.model, "moe-mae"))
        return saec_fail(SAEC_ERR_USAGE, "embed takes a `saec train --model moe-mae` run",
                         "'%s' is a %s run", run_dir, cfg.model);
    for (int i = 0; i < args->n; i++)
        if (!strcmp(args->key[i], "synthetic")) cfg.data[0] = '\0'; /* replaces the run's file */
    SAEC_TRY(cli_apply(args, &cfg));
    const char *path = cfg.data[0] ? cfg.data : NULL;
    if (!path && cfg.probe_tiles <= 0)
        return saec_fail(SAEC_ERR_USAGE, "give --data FILE.h5 or --probe-tiles N",
                         "no tiles to embed");
    eo_set set = {0};
    SAEC_TRY(eo_set_load(&cfg, path, -1, path ? 0 : cfg.probe_tiles, &set));
    moe_mae_cfg mcfg;
    int rc = moe_mae_cfg_from_config(&cfg, &mcfg);
    mcfg.h.bands = (int)set.bands;
    saec_dev *dev = NULL;
    moe_mae_net *net = NULL;
    int64_t step = -1;
    if (rc == SAEC_OK) rc = saec_dev_open(cfg.device, &dev);
    if (rc == SAEC_OK) rc = moe_mae_net_create(dev, NULL, &mcfg, cfg.batch_size, &net);
    if (rc == SAEC_OK) rc = moe_mae_ckpt_load_params(run_dir, net, &step);
    float *features = NULL, *load = NULL; /* load: [n, enc depth, experts] routing shares */
    int64_t dim = 0;
    if (rc == SAEC_OK) {
        fprintf(stderr, "saec: embedding %lld tiles of %s with %s of %s (step %lld) on %s\n",
                (long long)set.n, path ? path : "synthetic eo", moe_features_name(kind), run_dir,
                (long long)step, dev->name);
        rc = moe_mae_features(net, &set, kind, (uint64_t)cfg.seed, &features, &dim,
                              kind == MOE_FEATURES_BAND_MEANS ? NULL : &load);
    }
    if (rc == SAEC_OK) {
        emb_h5_info info = {.n = set.n, .dim = dim, .n_classes = set.n_classes,
                            .multi_label = set.multi_label};
        memcpy(info.class_names, set.class_names, sizeof info.class_names);
        snprintf(info.encoder, sizeof info.encoder, "%s of run %s step %lld",
                 moe_features_name(kind), run_dir, (long long)step);
        snprintf(info.source, sizeof info.source, "%s", path ? path : "synthetic eo");
        emb_h5_writer *w = NULL;
        rc = emb_h5_writer_create(out_path, &info, &w);
        if (rc == SAEC_OK) rc = emb_h5_writer_append(w, set.n, features, set.labels, set.split);
        const int64_t meta_dims[2] = {set.n, 4};
        if (rc == SAEC_OK)
            rc = emb_h5_writer_put(w, "metadata", 2, meta_dims, set.metadata,
                                   "ISO week, UTC hour, latitude, longitude of each tile (NaN: "
                                   "missing), as in the data file");
        if (rc == SAEC_OK && load) {
            const int64_t load_dims[3] = {set.n, mcfg.h.enc.depth, moe_mae_net_max_experts(net)};
            rc = emb_h5_writer_put(w, "expert_load", 3, load_dims, load,
                                   "per tile and encoder block, the share of the tile's tokens' "
                                   "top-k routing slots that went to each expert (clean router, "
                                   "all tokens; 0 past a block's experts)");
        }
        if (rc == SAEC_OK)
            rc = emb_h5_writer_finish(w);
        else if (w)
            emb_h5_writer_abort(w);
        if (rc == SAEC_OK)
            fprintf(stderr, "saec: wrote %s: %lld x %lld features\n", out_path, (long long)set.n,
                    (long long)dim);
    }
    free(features), free(load);
    moe_mae_net_destroy(net);
    saec_dev_close(dev);
    eo_set_free(&set);
    return rc;
}

int cmd_embed(int argc, char **argv) {
    cli_args args;
    int rc = cli_collect(argc, argv, 2, &args);
    if (rc == SAEC_OK && !args.positional)
        rc = saec_fail(SAEC_ERR_USAGE, USAGE, "missing the run directory");
    if (rc == SAEC_OK && (args.config_file || args.resume_dir))
        rc = saec_fail(SAEC_ERR_USAGE, "embed reads the run's own configuration",
                       "--config and --resume are not embed options");
    /* --out names the embeddings file and --features what makes them: not config keys */
    const char *out_path = NULL;
    moe_features kind = MOE_FEATURES_ENCODER;
    for (int i = 0; rc == SAEC_OK && i < args.n; i++) {
        const int is_out = !strcmp(args.key[i], "out"), is_features = !strcmp(args.key[i], "features");
        if (!is_out && !is_features) continue;
        if (is_out)
            out_path = args.value[i];
        else
            rc = features_from_name(args.value[i], &kind);
        args.key[i] = args.key[args.n - 1];
        args.value[i] = args.value[args.n - 1];
        args.n--;
        i--;
    }
    if (rc == SAEC_OK && !out_path) rc = saec_fail(SAEC_ERR_USAGE, USAGE, "missing --out EMB.h5");
    if (rc == SAEC_OK) rc = embed_run(args.positional, &args, out_path, kind);
    return cli_report(rc);
}
