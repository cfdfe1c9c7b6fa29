/* cpu_prelude.h: the generated kernels of `mixc emit --target cpu` as C11.
 *
 * mixc writes every kernel in a small subset of CUDA C (codegen/llvm_kernel.h)
 * and generates it for the CPU with tiles that give every block one thread.
 * This prelude gives that subset its meaning on the host, as mixc's CPU
 * backend does for a block of one thread: threadIdx is 0 and blockDim 1, __syncthreads nothing, a
 * block reduction the value itself (MX_ONE_THREAD_BLOCKS), blockIdx and
 * gridDim the launcher's (standalone_cpu.h) per thread, and a block's
 * dynamic shared memory a per-thread scratch buffer. f16 and bf16 are their
 * bits, converted as half.h does (bit-exact with CUDA). */
#ifndef MXS_CPU_PRELUDE_H
#define MXS_CPU_PRELUDE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define MX_HALF_BITS_ONLY
#include "half.h"

/* Generated kernels may declare an index they do not use, and carry the
 * GPU's unroll hints. */
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunknown-pragmas"

typedef struct {
    unsigned x, y, z;
} mxs_dim3;

static const mxs_dim3 threadIdx = {0, 0, 0}, blockDim = {1, 1, 1};
static _Thread_local mxs_dim3 blockIdx, gridDim = {1, 1, 1};
static _Thread_local unsigned char *mxs_block_smem; /* this thread's block's shared memory */

#define MX_ONE_THREAD_BLOCKS
#define __global__ static
#define __device__
#define __forceinline__ inline
#define __restrict__ restrict
#define __shared__
#define __launch_bounds__(...)
#define __syncthreads() ((void)0)
#define __syncwarp() ((void)0)
#define MX_DYNAMIC_SMEM(type, name) type *const name = (type *)mxs_block_smem
#define MX_EMU_ENTRY(kernel)
#define min(a, b) ((a) < (b) ? (a) : (b))
#define max(a, b) ((a) > (b) ? (a) : (b))

typedef struct {
    uint16_t bits;
} __half;
typedef struct {
    uint16_t bits;
} __nv_bfloat16;

static inline float __half2float(__half h) { return mx_f16_to_f32(h.bits); }
static inline __half __float2half_rn(float x) { return (__half){mx_f32_to_f16(x)}; }
static inline float __bfloat162float(__nv_bfloat16 h) { return mx_bf16_to_f32(h.bits); }
static inline __nv_bfloat16 __float2bfloat16_rn(float x) { return (__nv_bfloat16){mx_f32_to_bf16(x)}; }
static inline float __int_as_float(int x) { return mx_bits_f32((uint32_t)x); }

/* 2^x as mixc's CPU backend computes it (straight-line code a compiler
 * vectorises, where libm's exp2f is a call per element): x clamped to
 * [-126, 128) (comparisons that keep NaN), n = round(x) by the 1.5 * 2^23
 * trick, 2^(x - n) by Cephes' exp2f polynomial (relative error 2e-7), 2^n
 * put in the exponent bits. expf is 2^(x log2 e). */
static inline float mxs_exp2f(float x) {
    x = x > 127.99f ? 127.99f : x;
    x = x < -126.99f ? -126.99f : x;
    const float t = x + 12582912.0f, r = x - (t - 12582912.0f);
    float p = 1.535336188319500e-4f;
    p = p * r + 1.339887440266574e-3f;
    p = p * r + 9.618437357674640e-3f;
    p = p * r + 5.550332471162809e-2f;
    p = p * r + 2.402264791363012e-1f;
    p = p * r + 6.931472028550421e-1f;
    p = p * r + 1.0f;
    return p * mx_bits_f32((mx_f32_bits(t) - 0x4B400000u + 127u) << 23);
}
#define exp2f(x) mxs_exp2f(x)
#define expf(x) mxs_exp2f((x) * 1.4426950408889634f)

#endif
