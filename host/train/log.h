/* Training output: the progress line on stderr and metrics.jsonl in the run directory. */
#ifndef SAEC_LOG_H
#define SAEC_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "clock.h" /* saec_now, saec_format_duration */

typedef struct {
    int64_t step, total_steps, tokens;
    double loss, nmse, aux_nmse, cosine, l0, dead_fraction, grad_norm, lr;
    double tokens_per_second, elapsed_seconds, eta_seconds;
} saec_log_record;

typedef struct {
    FILE *jsonl;
} saec_log;

/* Open metrics.jsonl in `run_dir` for appending; when resuming at `resume_step` > 0, records of
   later steps (written by the interrupted run after its checkpoint) are dropped first. */
int saec_log_open(saec_log *log, const char *run_dir, int64_t resume_step);
void saec_log_record_write(saec_log *log, const saec_log_record *r);
void saec_log_close(saec_log *log);

#endif
