/* The monotonic clock and time stamps (clock.c). */
#ifndef SAEC_CLOCK_H
#define SAEC_CLOCK_H

#include <stddef.h>

/* Monotonic seconds. */
double saec_now(void);
/* "1:02:03" or "4:05" */
void saec_format_duration(double seconds, char *buf, size_t size);
/* The wall-clock time now in UTC, ISO 8601 ("2026-12-07T18:50:00Z"): result files' dates. */
void saec_utc_stamp(char *buf, size_t size);

#endif
