/* emu.h: host emulation of generated CUDA kernels (docs/emulation.md).
 *
 * A generated CUDA source is compiled as C++ for the host, with
 * runtime/emu/cuda_shim.h standing in for the CUDA headers, into a shared
 * object that is loaded with dlopen. A launch runs the grid's blocks one after
 * another and the threads of a block as cooperative fibers, so __syncthreads
 * and warp shuffles keep their meaning and misuse of them (barrier divergence,
 * a shuffle over exited lanes) is an error, not a hang or a crash.
 *
 * This header is also the ABI between this C library and the C++ shim: the
 * shim includes it for mx_emu_launch_desc. */
#ifndef MX_EMU_H
#define MX_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mixc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mx_emu_module mx_emu_module;

/* Compiles `source` (CUDA C written against runtime/emu/mixc_prelude.h) with
 * the host C++ compiler ($MIXC_EMU_CXX, else `c++`) and loads it. `name` names
 * the module in messages and temp files. A compile error fails with the
 * compiler's first lines of output in d. */
mx_status mx_emu_load(const char *source, const char *name, mx_emu_module **out, mx_diag *d);

/* Runs `kernel` (which the source exported with MX_EMU_ENTRY) over the grid.
 * args is laid out as cuLaunchKernel's kernelParams: args[i] points to the
 * value of parameter i. smem is the dynamic shared memory in bytes. An error
 * inside the kernel (barrier divergence, a bad warp mask) fails the launch
 * with a message that names the kernel, the block and the threads. */
mx_status mx_emu_launch(mx_emu_module *m, const char *kernel, const unsigned grid[3],
                        const unsigned block[3], size_t smem, void **args, mx_diag *d);

void mx_emu_unload(mx_emu_module *m);

/* ---- profiling (docs/profile.md) -------------------------------------------- */

/* A buffer of global memory a profiled launch watches: accesses inside one
 * are global loads and stores, everything else (locals, shared memory) is not. */
typedef struct {
    const void *base;
    size_t bytes;
    /* A weight: read-only and small, every warp reads all of it from the
     * on-chip cache, so a sector of it a request fetches counts as used
     * whole (a state's B weight broadcast to the warp is not a 4-byte read
     * of a 32-byte sector); its sectors count once in the DRAM estimate. */
    bool weight;
} mx_emu_buffer;

enum { MX_EMU_LOAD, MX_EMU_STORE };

/* What a profiled launch executed, indexed [MX_EMU_LOAD] and [MX_EMU_STORE]
 * where there are two. A request is one warp-level memory instruction: the
 * lanes of a warp executing one load or store together. */
typedef struct {
    uint64_t requests[2];
    uint64_t sectors[2];      /* 32-byte sectors per request, summed */
    uint64_t bytes[2];        /* bytes the lanes asked for (an address once per request) */
    uint64_t unique_bytes[2]; /* distinct sectors of the launch x 32: the DRAM estimate */
    uint64_t exps;            /* transcendental functions, per lane (expf, log1pf, tanhf, ...) */
    uint64_t shuffles;        /* __shfl*_sync, per warp */
    uint64_t barriers;        /* __syncthreads, per block */
} mx_emu_counters;

/* Compiles source as mx_emu_load does, with every load and store and every
 * transcendental function counted: for mx_emu_launch_profiled. Kernels run
 * several times slower than in a plain module. */
mx_status mx_emu_load_profiling(const char *source, const char *name, mx_emu_module **out,
                                mx_diag *d);

/* mx_emu_launch on a module from mx_emu_load_profiling, filling *out with
 * what the launch executed; buffers are the global memory it may touch. */
mx_status mx_emu_launch_profiled(mx_emu_module *m, const char *kernel, const unsigned grid[3],
                                 const unsigned block[3], size_t smem, void **args,
                                 const mx_emu_buffer *buffers, int n_buffers,
                                 mx_emu_counters *out, mx_diag *d);

/* ---- the ABI between mx_emu_launch and the thunks of MX_EMU_ENTRY ---------- */

/* What a thunk `int mx_emu_launch_<kernel>(const mx_emu_launch_desc *)` gets.
 * It returns 0, or non-zero with a NUL-terminated message in err. */
typedef struct {
    unsigned grid[3], block[3];
    size_t smem;       /* dynamic shared memory, bytes */
    size_t stack_size; /* of each thread's fiber, bytes */
    void **args;       /* kernelParams */
    /* Profiling (modules built to profile): the watched buffers and where
     * the counts go; counters NULL when the launch is not profiled. */
    const mx_emu_buffer *buffers;
    int n_buffers;
    mx_emu_counters *counters;
    char *err;
    size_t err_size;
} mx_emu_launch_desc;

typedef int (*mx_emu_entry_fn)(const mx_emu_launch_desc *desc);

#define MX_EMU_ENTRY_PREFIX "mx_emu_launch_"

#ifdef __cplusplus
}
#endif
#endif
