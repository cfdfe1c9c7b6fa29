/* gpu.h: running a planned program and its generated module on the GPU.
 *
 * The CUDA device of the executor's walk (exec.h): the activation arena and
 * the source buffers in device memory, the module compiled by NVRTC for the
 * device's sm through the kernel cache and loaded, a cuLaunchKernel per
 * generated group and a cuBLASLt product per matmul group (gemm.h, blas.h),
 * all on one stream. The forward pass can be captured once into a CUDA
 * graph and replayed (MIXC_NO_GRAPHS=1 turns that off): the first pass of
 * a program runs its launches directly, the second is captured, and a
 * capture that fails is said once on stderr and the program goes on with
 * direct launches. Every entry point that calls the driver makes the
 * primary context current on the calling thread first, so a program may be
 * run, read, timed and freed from any thread (one at a time). The module's
 * programs are compiled in parallel, each through the cache, and loaded as
 * one CUmodule each. MIXC_DEBUG=2 times every group with events and prints
 * its time, its bandwidth from the kernel's floor bytes and its % of the
 * roofline floor of the target (mx_target: the only source of GPU rates).
 * docs/runtime.md, "The CUDA execution path", has the details.
 *
 * Without a driver mx_gpu_open fails with mx_cuda_open's message ("no CUDA
 * driver (libcuda.so.1 not found)"); nothing else here is reachable then. */
#ifndef MX_GPU_H
#define MX_GPU_H

#include <stdio.h>

#include "blas.h"
#include "codegen.h"
#include "driver.h"
#include "exec.h"
#include "rtc.h"

/* ---- the device ------------------------------------------------------------------ */

/* The driver, cuBLASLt and one stream on device 0. */
typedef struct {
    mx_cuda *cu;
    mx_blas *blas;
    CUstream stream;
    /* MIXC_SYNC=1: wait after every kernel and product, so that a fault
     * while running is pinned on the one that faulted (and no graphs). */
    bool sync_each;
} mx_gpu;

mx_status mx_gpu_open(mx_gpu **out, mx_diag *d);
void mx_gpu_close(mx_gpu *gpu);
/* The device's architecture as NVRTC names it: 90 for sm_90. */
int mx_gpu_sm(const mx_gpu *gpu);

/* Device memory holding n numbers of dtype t, converted from / to f32. */
mx_status mx_gpu_put(mx_gpu *gpu, CUdeviceptr dst, const float *src, int64_t n, mx_dtype t,
                     mx_diag *d);
mx_status mx_gpu_get(mx_gpu *gpu, float *dst, CUdeviceptr src, int64_t n, mx_dtype t, mx_diag *d);

/* A kernel's roofline floor on t: max(bytes / bandwidth, exps / SFU rate),
 * seconds. */
double mx_gpu_floor_s(const mx_target *t, mx_cost c);

/* ---- programs -------------------------------------------------------------------- */

/* The module's programs compiled for sm the way the cuda device compiles
 * them: NVRTC through the kernel cache, the misses in parallel; out[q] is
 * program q (m->n_programs of them, "<graph>.<q>.cu"). `mixc compile
 * --cubin` ahead of time, and mx_gpu_load. On failure every out[q] is
 * zeroed. */
mx_status mx_gpu_compile(const mx_module *m, const char *graph_name, int sm, mx_cubin *out, mx_diag *d);

typedef struct {
    bool graphs; /* capture the second forward pass, replay it after; off with MIXC_SYNC */
    int debug;   /* MIXC_DEBUG: 2 prints each group's time and % of floor */
    FILE *out;   /* where debug output goes (stderr when NULL) */
} mx_gpu_options;

/* MIXC_NO_GRAPHS, MIXC_SYNC, MIXC_DEBUG. */
void mx_gpu_options_from_env(mx_gpu_options *o);

/* A program on the GPU: the walk of exec.h over the CUDA device table
 * (cuMemAlloc / cuMemcpy, cuLaunchKernel, cuBLASLt), plus graph capture. */
typedef struct mx_gpu_program mx_gpu_program;

/* Compiles m's programs for the device (mx_gpu_compile), loads each as a
 * CUmodule and opens the walk on them (mx_exec_open: arena and buffers, b's
 * inputs and params uploaded, arena poisoned), then fetches every kernel
 * from its program's module and decodes and plans every matmul group, so
 * that errors show here and a graph capture records launches only. t is
 * the GPU's target (limits, roofline); p, m and b as for mx_exec_open. */
mx_status mx_gpu_load(mx_gpu *gpu, const mx_target *t, const mx_program *p, const mx_module *m,
                      const mx_buffers *b, mx_gpu_program **out, mx_diag *d);
void mx_gpu_program_free(mx_gpu_program *gp);
/* Program q's cubin (its kernels' resources, from_cache); NULL out of
 * range. */
const mx_cubin *mx_gpu_program_cubin(const mx_gpu_program *gp, int q);
/* The open walk: mx_exec_upload, mx_exec_poison, mx_exec_download (which
 * waits for the stream; a kernel fault surfaces there). */
mx_exec *mx_gpu_program_exec(mx_gpu_program *gp);
/* Enqueues one forward pass on the gpu's stream: mx_exec_forward, or with
 * graphs on (never with sync_each) a replay of the graph captured from it.
 * The program's first pass always runs directly (the first use of every
 * kernel and cuBLASLt plan, lazy module loading: none of it inside a
 * capture); the next call captures and replays. A capture that fails is a
 * warning on stderr, once, naming the error, and the program runs with
 * direct launches from then on. Does not wait, but with sync_each. */
mx_status mx_gpu_forward(mx_gpu_program *gp, bool graphs, mx_diag *d);
/* Waits for the stream. A fault there is a kernel's or a product's that
 * ran before, not necessarily the last one: the message says so and points
 * to MIXC_SYNC=1 (docs/runtime.md, "Errors"). */
mx_status mx_gpu_sync(mx_gpu *gpu, mx_diag *d);
/* runs forward passes (mx_gpu_forward), each timed alone with a pair of
 * events, in ms into ms[]; with flush, the L2 is flushed before each (a
 * memset of twice the target's L2, ordered before the start event). A
 * program's first (direct) pass and, with graphs, the capture happen
 * before, untimed and waited for, whatever warm-up the caller ran: every
 * timed pass is a replay (direct launches with graphs off or after a failed
 * capture). */
mx_status mx_gpu_time(mx_gpu_program *gp, bool graphs, bool flush, int runs, double *ms, mx_diag *d);
/* One direct forward pass with an event after each group (the walk's
 * group_done); prints, per group, its time, GB/s of its floor bytes and % of
 * its floor, then the sum. */
mx_status mx_gpu_profile(mx_gpu_program *gp, FILE *out, mx_diag *d);
/* Group `group` run alone `runs` times on the buffers as they are, each run
 * timed with events after the L2 is flushed (as mx_gpu_time with flush),
 * into ms[] (tuning, runtime/tune.h). */
mx_status mx_gpu_time_group(mx_gpu_program *gp, int group, int runs, double *ms, mx_diag *d);

#endif
