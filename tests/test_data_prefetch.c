/* The prefetched synthetic stream delivers exactly the rows of the plain stream, through batch
   size changes and seeks (a prefetched batch that no longer fits is recomputed, never served). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "saec/saec.h"

int main(void) {
    saec_config cfg;
    saec_config_defaults(&cfg);
    cfg.d_in = 24;
    cfg.syn_features = 40;
    saec_data *plain = NULL, *fetched = NULL;
    if (saec_data_open(&cfg, SAEC_STREAM_TRAIN, &plain) != SAEC_OK ||
        saec_data_open(&cfg, SAEC_STREAM_TRAIN, &fetched) != SAEC_OK ||
        saec_data_enable_prefetch(fetched, &cfg, SAEC_STREAM_TRAIN) != SAEC_OK) {
        fprintf(stderr, "FAIL: open: %s\n", saec_error_message());
        return 1;
    }
    if (!fetched->prefetch) {
        fprintf(stderr, "FAIL: prefetch not enabled on a synthetic source\n");
        return 1;
    }
    /* batch sizes, with a seek (negative entry = seek to -entry) in between */
    const int64_t plan[] = {64, 64, 64, 17, 17, 100, -5, 64, 64, -1000, 33, 33, 33, 64};
    const int64_t d = cfg.d_in, max_n = 128;
    float *a = malloc(sizeof(float) * (size_t)(max_n * d));
    float *b = malloc(sizeof(float) * (size_t)(max_n * d));
    int failures = 0;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        if (plan[i] < 0) {
            saec_data_seek(plain, -plan[i]);
            saec_data_seek(fetched, -plan[i]);
            continue;
        }
        const int64_t n = plan[i];
        if (saec_data_next(plain, n, a) != SAEC_OK || saec_data_next(fetched, n, b) != SAEC_OK) {
            fprintf(stderr, "FAIL: next: %s\n", saec_error_message());
            return 1;
        }
        if (memcmp(a, b, sizeof(float) * (size_t)(n * d)) != 0 ||
            plain->cursor != fetched->cursor) {
            fprintf(stderr, "FAIL: step %zu (n=%lld): rows or cursor differ (%lld vs %lld)\n", i,
                    (long long)n, (long long)plain->cursor, (long long)fetched->cursor);
            failures++;
        }
    }
    saec_data_close(plain);
    saec_data_close(fetched);
    free(a), free(b);
    if (failures) return 1;
    printf("PASS: prefetched stream equals the plain stream\n");
    return 0;
}
