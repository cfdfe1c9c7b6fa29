/* llvm_kernel.h: a generated module's kernels as LLVM IR, for the CPU.
 *
 * The emitters (emit.h) write every kernel in a small subset of CUDA C: scalar
 * statements, loops and conditions over int / long long / float, loads and
 * stores of f32 / f16 / bf16 buffers, local arrays, a few math functions and
 * the block / thread coordinates. That text is the kernel-level
 * representation both backends share: NVRTC compiles it for a GPU, and this
 * front end lowers it with the LLVM-C API for the host, so the CPU runs the
 * very index maps, formulas and fusion decisions the GPU runs (docs/cpu.md).
 *
 * A kernel whose blocks have at most max_lanes threads (its
 * __launch_bounds__) runs a block's threads as the lanes of vectors, in
 * lockstep (W lanes: the threads rounded up to a power of two, the lanes
 * past them masked off throughout): threadIdx.x is the lane <0, 1, ..,
 * W-1>, a value that differs between lanes is a vector and one that does
 * not a scalar, a condition that differs runs both arms (or the loop) over
 * masks of lanes, memory at addresses that differ is gathered and
 * scattered (or read through lane tiles, docs/cpu.md), a thread's local array
 * holds a row per lane, __syncthreads is nothing (lanes never run apart)
 * and a block reduction a vector reduction. A branch out of a loop or a
 * return that only some lanes take is outside this subset. Any other kernel
 * runs its block as one thread of one lane: threadIdx is 0, blockDim 1,
 * __syncthreads nothing, a block reduction the value itself (its loops over
 * the block's threads cover everything in one thread). A block's shared
 * memory is a stack array. Each __global__ kernel becomes
 *
 *     void name(void **params, int64_t lo, int64_t hi, int32_t grid)
 *
 * which runs blocks lo .. hi-1 of a grid of `grid` blocks one after another;
 * params is the kernelParams array cuLaunchKernel takes (one pointer to each
 * buffer pointer, in the kernel's argument order). The runtime splits the
 * blocks of a launch over its threads. __device__ helpers become internal
 * functions (inlined where called with varying arguments); expf, exp2f and
 * log1pf inline polynomials (vectorisable), the other math functions libm
 * calls (lane by lane). */
#ifndef MX_LLVM_KERNEL_H
#define MX_LLVM_KERNEL_H

#include <llvm-c/Core.h>

#include "mixc.h"

/* The lowering's revision: part of the object cache's key, raised with
 * every change to the code it builds, so that no object built by an
 * earlier lowering is linked again. */
#define MX_LLVM_LOWERING_REVISION 18

/* Lowers the module source into a new module of ctx, each block getting
 * smem_bytes of shared memory and blocks of up to max_lanes threads (at most
 * 64) running as vector lanes; features: the host's, LLVM's "+avx2,..."
 * string (with avx512f and avx512dq the inline exp2 uses their
 * instructions). On error (text outside the subset: "line 12,
 * at 'foo': unknown function") *out is NULL. */
mx_status mx_llvm_lower(const char *source, const char *name, size_t smem_bytes, int max_lanes, const char *features,
                        LLVMContextRef ctx, LLVMModuleRef *out, mx_diag *d);

#endif
