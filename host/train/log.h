/* Training output: the progress line on stderr and metrics.jsonl in the run directory.

   A record is the loop's part (step, tokens, lr, speed, time) and the model's metrics, which the
   model names itself (model.h's metrics): each is one metrics.jsonl key, and may also appear on
   the progress line or guard against divergence. The log knows no model. */
#ifndef SAEC_LOG_H
#define SAEC_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "clock.h" /* saec_now, saec_format_duration */

enum { SAEC_MAX_METRICS = 16 };

typedef struct {
    const char *key;       /* its metrics.jsonl key */
    double value;
    int digits;            /* significant digits in metrics.jsonl */
    const char *progress;  /* its printf format on the progress line ("L0 %.1f"), or NULL */
    double progress_scale; /* the value times this on the progress line (a fraction in %: 100) */
    int guard;             /* not finite: the run diverged (no checkpoint is written from it) */
} saec_metric;

typedef struct {
    int64_t step, total_steps, tokens;
    saec_metric metrics[SAEC_MAX_METRICS]; /* the model's, in metrics.jsonl order */
    int n_metrics;
    double lr, tokens_per_second, elapsed_seconds, eta_seconds;
    const char *rate_unit; /* the progress line's "tok/s", "img/s"; NULL: tok */
} saec_log_record;

/* Append a metric to rec (the model's metrics call; at most SAEC_MAX_METRICS). */
void saec_log_metric(saec_log_record *rec, saec_metric metric);

typedef struct {
    FILE *jsonl;
} saec_log;

/* Open metrics.jsonl in `run_dir` for appending; when resuming at `resume_step` > 0, records of
   later steps (written by the interrupted run after its checkpoint) are dropped first. */
int saec_log_open(saec_log *log, const char *run_dir, int64_t resume_step);
void saec_log_record_write(saec_log *log, const saec_log_record *r);
/* Keep only the records (JSON lines with a "step") of `path` up to `step`, atomically: a resumed
   run rewrites what follows. A missing file is fine. */
int saec_jsonl_truncate_after_step(const char *path, int64_t step);
void saec_log_close(saec_log *log);

#endif
