#include "log.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "saec/saec.h"

/* Keep only the records of metrics.jsonl up to `step` (a resumed run rewrites what follows). */
static int truncate_after_step(const char *path, int64_t step) {
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
    if (resume_step > 0) SAEC_TRY(truncate_after_step(path, resume_step));
    log->jsonl = fopen(path, resume_step > 0 ? "a" : "w");
    if (!log->jsonl)
        return saec_fail(SAEC_ERR_USAGE, "choose a writable directory with --out",
                         "cannot write '%s'", path);
    return SAEC_OK;
}

void saec_log_record_write(saec_log *log, const saec_log_record *r) {
    char eta[32], elapsed[32];
    saec_format_duration(r->eta_seconds, eta, sizeof eta);
    saec_format_duration(r->elapsed_seconds, elapsed, sizeof elapsed);
    int width = snprintf(NULL, 0, "%lld", (long long)r->total_steps);
    fprintf(stderr,
            "step %*lld/%lld | loss %.4f | nmse %.4f | L0 %.1f | dead %.1f%% | %.0f tok/s | "
            "%s elapsed | ETA %s\n",
            width, (long long)r->step, (long long)r->total_steps, r->loss, r->nmse, r->l0,
            100.0 * r->dead_fraction, r->tokens_per_second, elapsed, eta);
    if (!log->jsonl) return;
    fprintf(
        log->jsonl,
        "{\"step\": %lld, \"tokens\": %lld, \"loss\": %.8g, \"nmse\": %.8g, \"aux_nmse\": %.8g, "
        "\"cosine\": %.8g, \"l0\": %.6g, \"dead_fraction\": %.6g, \"grad_norm\": %.6g, "
        "\"lr\": %.6g, \"tokens_per_second\": %.1f, \"elapsed_seconds\": %.3f}\n",
        (long long)r->step, (long long)r->tokens, r->loss, r->nmse, r->aux_nmse, r->cosine, r->l0,
        r->dead_fraction, r->grad_norm, r->lr, r->tokens_per_second, r->elapsed_seconds);
    fflush(log->jsonl);
}

void saec_log_close(saec_log *log) {
    if (log->jsonl) fclose(log->jsonl);
    log->jsonl = NULL;
}
