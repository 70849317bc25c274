/* Random test inputs shared by the op tests: splitmix64 from a fixed seed (rng_seed), so every
   run draws the same inputs, and the allocation helpers around it (abort on out of memory). */
#ifndef SAEC_TESTS_RANDOM_H
#define SAEC_TESTS_RANDOM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0;

static inline void rng_seed(uint64_t seed) { rng_state = seed; }

static inline uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double rng_unit(void) { return (double)(rng_u64() >> 11) * 0x1.0p-53; } /* [0, 1) */
static inline float rng_sym(void) { return (float)(2.0 * rng_unit() - 1.0); }        /* [-1, 1) */
static inline int64_t rng_int(int64_t n) { return (int64_t)(rng_u64() % (uint64_t)n); } /* [0, n) */

static inline float *new_floats(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}
static inline double *new_doubles(int64_t n) {
    double *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}
static inline float *rand_floats(int64_t n) { /* uniform in [-1, 1) */
    float *p = new_floats(n);
    for (int64_t i = 0; i < n; i++)
        p[i] = rng_sym();
    return p;
}
static inline float *dup_floats(const float *src, int64_t n) {
    float *p = new_floats(n);
    memcpy(p, src, (size_t)(n > 0 ? n : 0) * sizeof *p);
    return p;
}

#endif
