/* 16-bit floats as stored in activation files (HDF5 float16, bfloat16 bits as uint16) to
   float32. Both conversions are exact: every float16 and bfloat16 value is a float32 value. */
#ifndef SAEC_HALF_H
#define SAEC_HALF_H

#include <stdint.h>
#include <string.h>

/* IEEE binary16 -> float32: zero and subnormals, normals, Inf and NaN (payload kept). */
float saec_half_to_float(uint16_t h);

/* saec_half_to_float of every bit pattern [65536], filled on the first call (thread-safe):
   a lookup beats the branches in the loader's conversion loop. */
const float *saec_half_table(void);

/* bfloat16 -> float32: the upper half of the float's bits. Inline, so the loop vectorises. */
static inline float saec_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

#endif
