/* Metrics with known ground truth (SPEC §8). */
#ifndef SAEC_METRICS_H
#define SAEC_METRICS_H

#include <stdint.h>

#include "data.h"

/* mmcs: mean over true features of the max cosine between the feature's direction and any
   decoder row. W_dec [m, d] on the host. */
double saec_mmcs(const float *W_dec, int64_t m, int64_t d, const saec_ground_truth *gt);

#endif
