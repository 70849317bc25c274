/* `saec probe EMB.h5 [EMB.h5 ...]`: a linear probe (logistic regression through liblinear,
   one-vs-rest) of each embeddings file, fit on its train split and scored on its test split, in
   one table: micro and macro mAP for multi-label data, accuracy and macro F1 for single-label
   data. Give the encoder's embeddings and the baselines' (`saec embed --features random_init`,
   `--features band_means`) together so the numbers mean something. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "emb_h5.h"
#include "fsutil.h"
#include "moe_mae_eval.h"

#define USAGE                                                                                      \
    "usage: saec probe EMB.h5 [EMB.h5 ...] [--c C] [--train-fraction F] [--seed S] "               \
    "[--out REPORT.json]"

/* The rows of one split: x [n, dim], y [n, K]. */
static int take_split(const emb_h5_data *d, int split, float **x, uint8_t **y, int64_t *n) {
    const int64_t F = d->info.dim, K = d->info.n_classes;
    int64_t count = 0;
    for (int64_t i = 0; i < d->info.n; i++)
        count += d->split[i] == split;
    *x = malloc(sizeof(float) * (size_t)(count * F + 1));
    *y = malloc((size_t)(count * K + 1));
    if (!*x || !*y) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for the probe");
    int64_t at = 0;
    for (int64_t i = 0; i < d->info.n; i++)
        if (d->split[i] == split) {
            memcpy(*x + at * F, d->embeddings + i * F, sizeof(float) * (size_t)F);
            memcpy(*y + at * K, d->labels + i * K, (size_t)K);
            at++;
        }
    *n = count;
    return SAEC_OK;
}

static int probe_file(const char *path, double c, double fraction, uint64_t seed, cJSON *report) {
    emb_h5_data d;
    SAEC_TRY(emb_h5_read(path, &d));
    float *xtr = NULL, *xte = NULL;
    uint8_t *ytr = NULL, *yte = NULL;
    int64_t ntr = 0, nte = 0;
    int rc = d.info.n_classes > 0
                 ? SAEC_OK
                 : saec_fail(SAEC_ERR_DATA, "embed a labelled set", "'%s' has no labels", path);
    if (rc == SAEC_OK) rc = take_split(&d, EO_SPLIT_TRAIN, &xtr, &ytr, &ntr);
    if (rc == SAEC_OK) rc = take_split(&d, EO_SPLIT_TEST, &xte, &yte, &nte);
    if (rc == SAEC_OK && (ntr == 0 || nte == 0))
        rc = saec_fail(SAEC_ERR_DATA, "the embeddings need train and test rows (split 0 and 2)",
                       "'%s' has %lld train and %lld test rows", path, (long long)ntr,
                       (long long)nte);
    probe_result r;
    if (rc == SAEC_OK)
        rc = moe_mae_probe(xtr, ytr, ntr, xte, yte, nte, d.info.dim, d.info.n_classes,
                           d.info.multi_label, c, fraction, seed, &r);
    if (rc == SAEC_OK) {
        printf("%-40s %-8s %8.4f %8.4f %10g %7lld %7lld  %s\n", path,
               r.multi_label ? "mAP" : "acc", moe_mae_probe_headline(&r),
               r.multi_label ? r.macro_map : r.macro_f1, r.c_chosen, (long long)r.n_train,
               (long long)r.n_test, d.info.encoder);
        cJSON *o = moe_mae_probe_json(&r);
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "encoder", d.info.encoder);
        cJSON_AddNumberToObject(o, "train_fraction", fraction);
        cJSON_AddItemToArray(report, o);
    }
    free(xtr), free(xte), free(ytr), free(yte);
    emb_h5_data_free(&d);
    return rc;
}

int cmd_probe(int argc, char **argv) {
    const char *files[64];
    int n_files = 0;
    const char *out_path = NULL;
    double c = 0, fraction = 1.0;
    uint64_t seed = 0;
    int rc = SAEC_OK;
    for (int i = 2; i < argc && rc == SAEC_OK; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--", 2)) {
            if (i + 1 >= argc) {
                rc = saec_fail(SAEC_ERR_USAGE, USAGE, "%s needs a value", a);
                break;
            }
            const char *v = argv[++i];
            char *end = NULL;
            if (!strcmp(a, "--out")) {
                out_path = v;
            } else if (!strcmp(a, "--c")) {
                c = strtod(v, &end);
                if (*end || c < 0) rc = saec_fail(SAEC_ERR_USAGE, "C >= 0 (0: chosen)", "--c '%s'", v);
            } else if (!strcmp(a, "--train-fraction")) {
                fraction = strtod(v, &end);
                if (*end || !(fraction > 0 && fraction <= 1))
                    rc = saec_fail(SAEC_ERR_USAGE, "a fraction in (0, 1]", "--train-fraction '%s'", v);
            } else if (!strcmp(a, "--seed")) {
                seed = strtoull(v, &end, 10);
                if (*end) rc = saec_fail(SAEC_ERR_USAGE, "an integer", "--seed '%s'", v);
            } else {
                rc = saec_fail(SAEC_ERR_USAGE, USAGE, "unknown option '%s'", a);
            }
        } else if (n_files < 64) {
            files[n_files++] = a;
        } else {
            rc = saec_fail(SAEC_ERR_USAGE, "at most 64 files", "too many embeddings files");
        }
    }
    if (rc == SAEC_OK && n_files == 0) rc = saec_fail(SAEC_ERR_USAGE, USAGE, "no embeddings file");
    cJSON *report = cJSON_CreateArray();
    if (rc == SAEC_OK)
        printf("%-40s %-8s %8s %8s %10s %7s %7s  %s\n", "file", "metric", "score", "macro", "C",
               "train", "test", "encoder");
    for (int i = 0; i < n_files && rc == SAEC_OK; i++)
        rc = probe_file(files[i], c, fraction, seed, report);
    if (rc == SAEC_OK && out_path) {
        char *text = cJSON_Print(report);
        rc = text ? saec_write_text_atomic(out_path, text)
                  : saec_fail(SAEC_ERR_OTHER, NULL, "out of memory");
        free(text);
    }
    cJSON_Delete(report);
    return cli_report(rc);
}
