#include "log.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "saec/saec.h"

int saec_jsonl_truncate_after_step(const char *path, int64_t step) {
    if (!saec_path_exists(path)) return SAEC_OK;
    char *text = NULL;
    size_t len = 0;
    SAEC_TRY(saec_read_file(path, &text, &len));
    saec_atomic_file af;
    int rc = saec_atomic_open(&af, path);
    for (char *line = text; rc == SAEC_OK && line && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        cJSON *o = cJSON_ParseWithLength(line, n);
        cJSON *s = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
        if (cJSON_IsNumber(s) && (int64_t)s->valuedouble <= step) {
            rc = saec_atomic_write(&af, line, n);
            if (rc == SAEC_OK) rc = saec_atomic_write(&af, "\n", 1);
        }
        cJSON_Delete(o);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    if (rc == SAEC_OK) return saec_atomic_commit(&af);
    saec_atomic_abort(&af);
    return rc;
}

int saec_log_open(saec_log *log, const char *run_dir, int64_t resume_step) {
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    if (resume_step > 0) SAEC_TRY(saec_jsonl_truncate_after_step(path, resume_step));
    log->jsonl = fopen(path, resume_step > 0 ? "a" : "w");
    if (!log->jsonl)
        return saec_fail(SAEC_ERR_USAGE, "choose a writable directory with --out",
                         "cannot write '%s'", path);
    return SAEC_OK;
}

void saec_log_metric(saec_log_record *rec, saec_metric metric) {
    if (rec->n_metrics < SAEC_MAX_METRICS) rec->metrics[rec->n_metrics++] = metric;
}

void saec_log_record_write(saec_log *log, const saec_log_record *r) {
    char eta[32], elapsed[32];
    saec_format_duration(r->eta_seconds, eta, sizeof eta);
    saec_format_duration(r->elapsed_seconds, elapsed, sizeof elapsed);
    int width = snprintf(NULL, 0, "%lld", (long long)r->total_steps);
    fprintf(stderr, "step %*lld/%lld | ", width, (long long)r->step, (long long)r->total_steps);
    for (int i = 0; i < r->n_metrics; i++) {
        const saec_metric *mt = &r->metrics[i];
        if (!mt->progress) continue;
        fprintf(stderr, mt->progress, mt->value * mt->progress_scale);
        fputs(" | ", stderr);
    }
    fprintf(stderr, "%.0f %s/s | %s elapsed | ETA %s\n", r->tokens_per_second,
            r->rate_unit ? r->rate_unit : "tok", elapsed, eta);
    if (!log->jsonl) return;
    fprintf(log->jsonl, "{\"step\": %lld, \"tokens\": %lld", (long long)r->step,
            (long long)r->tokens);
    for (int i = 0; i < r->n_metrics; i++)
        fprintf(log->jsonl, ", \"%s\": %.*g", r->metrics[i].key, r->metrics[i].digits,
                r->metrics[i].value);
    fprintf(log->jsonl, ", \"lr\": %.6g, \"tokens_per_second\": %.1f, \"elapsed_seconds\": %.3f}\n",
            r->lr, r->tokens_per_second, r->elapsed_seconds);
    fflush(log->jsonl);
}

void saec_log_close(saec_log *log) {
    if (log->jsonl) fclose(log->jsonl);
    log->jsonl = NULL;
}
