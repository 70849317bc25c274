/* float16 -> float32 (half.h). */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "half.h"

float saec_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float32 */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float half_table[65536];
static pthread_once_t half_once = PTHREAD_ONCE_INIT;

static void half_table_init(void) {
    for (uint32_t h = 0; h < 65536; h++)
        half_table[h] = saec_half_to_float((uint16_t)h);
}

const float *saec_half_table(void) {
    pthread_once(&half_once, half_table_init);
    return half_table;
}
