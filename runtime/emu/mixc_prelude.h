/* mixc_prelude.h: included first by every generated CUDA source.
 *
 * Under NVRTC or nvcc it pulls in the half-precision headers and gives the two
 * macros of the code-generator contract their CUDA meaning; on the host it is
 * the emulation shim (cuda_shim.h). The contract (docs/emulation.md):
 *
 *   MX_DYNAMIC_SMEM(type, name);   at function scope: `type *name` points to
 *                                  the launch's dynamic shared memory
 *                                  (16-byte aligned). Plain `extern __shared__`
 *                                  is not available on the host.
 *   MX_EMU_ENTRY(kernel)           after each extern "C" __global__ kernel
 *                                  the host may launch: emits the emulator's
 *                                  launch thunk; nothing under CUDA. */
#ifndef MIXC_PRELUDE_H
#define MIXC_PRELUDE_H

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)

#include <cuda_bf16.h>
#include <cuda_fp16.h>

/* One raw byte array for every kernel of the source: declarations of one
 * extern __shared__ name with different element types would conflict. */
#define MX_DYNAMIC_SMEM(type, name)                                            \
    extern __shared__ __align__(16) unsigned char mx_dynamic_smem_[];          \
    type *const name = reinterpret_cast<type *>(mx_dynamic_smem_)
#define MX_EMU_ENTRY(kernel)

#else
#include "cuda_shim.h"
#endif

#endif
