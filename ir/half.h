/* half.h: f32 <-> f16 / bf16 conversions, round-to-nearest-even, for the
 * reference interpreter and every backend that stores half types. Bit-exact
 * with IEEE 754 and with CUDA's __float2half_rn / __float2bfloat16_rn: NaN
 * stays a (quiet) NaN, overflow rounds to infinity, tiny values become f16
 * subnormals. */
#ifndef MX_HALF_H
#define MX_HALF_H

#include <stdint.h>
#include <string.h>

/* MX_HALF_BITS_ONLY: the conversions alone, for projects that mixc emit
 * writes (they build without mixc's headers). */
#ifndef MX_HALF_BITS_ONLY
#include "mixc.h"
#endif

static inline uint32_t mx_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float mx_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t mx_f32_to_bf16(float f) {
    uint32_t u = mx_f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 0x0040u); /* keep the sign, force quiet */
    /* Adding 0x7FFF plus the kept lsb rounds half to even; a carry out of the
     * mantissa bumps the exponent, up to infinity, as it should. */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float mx_bf16_to_f32(uint16_t h) { return mx_bits_f32((uint32_t)h << 16); }

static inline uint16_t mx_f32_to_f16(float f) {
    uint32_t u = mx_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t mag = u & 0x7FFFFFFFu;
    if (mag > 0x7F800000u)
        return sign | 0x7E00u;
    if (mag >= 0x47800000u) /* >= 2^16: beyond any rounding to 65504 */
        return sign | 0x7C00u;
    if (mag >= 0x38800000u) { /* a normal f16: rebias the exponent (127 -> 15) */
        uint32_t rounded = mag + 0x0FFFu + ((mag >> 13) & 1u);
        return sign | (uint16_t)((rounded - 0x38000000u) >> 13); /* 65520.. -> 0x7C00 */
    }
    /* Subnormal or zero. Adding 0.5 (whose ulp is 2^-24, the f16 subnormal
     * step) makes the FPU round to a multiple of 2^-24, half to even; the
     * mantissa bits above 0.5 count those steps (0x400 is the least normal). */
    float scaled = mx_bits_f32(mag) + 0.5f;
    return sign | (uint16_t)(mx_f32_bits(scaled) - 0x3F000000u);
}

static inline float mx_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    if (exp == 0x1F)
        return mx_bits_f32(sign | 0x7F800000u | (mant << 13));
    if (exp != 0)
        return mx_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    float sub = (float)mant * 0x1p-24f; /* exact: mant < 2^10 */
    return sign ? -sub : sub;
}

#ifndef MX_HALF_BITS_ONLY
/* x as stored in dtype, back in f32. */
static inline float mx_round_to(mx_dtype dtype, float x) {
    switch (dtype) {
    case MX_F16:
        return mx_f16_to_f32(mx_f32_to_f16(x));
    case MX_BF16:
        return mx_bf16_to_f32(mx_f32_to_bf16(x));
    default:
        return x;
    }
}
#endif

#endif
