/* Stateless counter-based random numbers shared by the host and every backend: a draw is a pure
   function of (seed, stream, counter), so the CPU and CUDA backends make the same random choices
   (ATM's mask) and a resumed run repeats them exactly. */
#ifndef SAEC_HASH_H
#define SAEC_HASH_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define SAEC_HOST_DEVICE __host__ __device__
#else
#define SAEC_HOST_DEVICE
#endif

/* Streams drawn with saec_hash_uniform (host/base/rng.h numbers the generator's streams below 64). */
enum {
    SAEC_RNG_ATM_MASK = 64,
    SAEC_RNG_PATCH_MASK = 65,
    SAEC_RNG_ROUTER_NOISE = 66,
    SAEC_RNG_DROPOUT = 67
};

/* splitmix64's finaliser: a bijective 64-bit mix. */
static inline SAEC_HOST_DEVICE uint64_t saec_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A uniform number in [0, 1) with 24 bits (exact in float on every backend). */
static inline SAEC_HOST_DEVICE float saec_hash_uniform(uint64_t seed, uint64_t stream,
                                                       uint64_t counter) {
    uint64_t h = saec_mix64(saec_mix64(seed ^ 0x5ae5ae5ae5ae5ae5ULL) ^ saec_mix64(stream) ^
                            saec_mix64(counter * 0xd1342543de82ef95ULL + 1));
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* A standard normal number from the uniforms at counter and counter + 1: Box-Muller in double,
   rounded to float once (the backends' libm differ by an ulp of double at most, so they draw the
   same float but when the double lands at a float rounding boundary). 1 − u keeps the log's
   argument in (0, 1]. */
static inline SAEC_HOST_DEVICE float saec_hash_normal(uint64_t seed, uint64_t stream,
                                                      uint64_t counter) {
    const double u1 = 1.0 - (double)saec_hash_uniform(seed, stream, counter);
    const double u2 = (double)saec_hash_uniform(seed, stream, counter + 1);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#endif
