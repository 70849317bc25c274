#include "rng.h"

#include <math.h>

void saec_rng_init(saec_rng *rng, uint64_t seed, uint64_t stream, uint64_t counter) {
    rng->state = saec_mix64(saec_mix64(seed ^ 0x5ae5ae5ae5ae5ae5ULL) ^ saec_mix64(stream) ^
                            saec_mix64(counter * 0xd1342543de82ef95ULL + 1));
}

uint64_t saec_rng_u64(saec_rng *rng) {
    rng->state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = rng->state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double saec_rng_uniform(saec_rng *rng) { return (double)(saec_rng_u64(rng) >> 11) * 0x1.0p-53; }

double saec_rng_normal(saec_rng *rng) {
    double u1 = saec_rng_uniform(rng), u2 = saec_rng_uniform(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
