/* The monotonic clock (clock.c). */
#ifndef SAEC_CLOCK_H
#define SAEC_CLOCK_H

#include <stddef.h>

/* Monotonic seconds. */
double saec_now(void);
/* "1:02:03" or "4:05" */
void saec_format_duration(double seconds, char *buf, size_t size);

#endif
