/* Per-token ground truth of the synthetic generators (SPEC §8 absorption needs to know which
   true features fired in each token). A synthetic token is a pure function of (seed, stream, t),
   so its activity is regenerated on demand rather than stored; files carry no activity. */
#ifndef SAEC_DATA_SYNTHETIC_H
#define SAEC_DATA_SYNTHETIC_H

#include <stdint.h>

#include "data.h"

/* 1 when `src` is a synthetic stream (saec_synthetic_active works on it), else 0. */
int saec_synthetic_has_activity(const saec_data *src);

/* Which of the queried features fired in tokens [t0, t0 + n) of the stream: active[i, q] = 1
   when feature features[q] fired in token t0 + i, else 0. features [n_query] (indices into the
   ground truth), active [n, n_query]. Does not move the cursor. SAEC_ERR_DATA for a source
   without per-token activity. */
int saec_synthetic_active(saec_data *src, int64_t t0, int64_t n, const int32_t *features,
                          int64_t n_query, uint8_t *active);

#endif
