/* rtc.h: CUDA C to a cubin with NVRTC, and the resources each kernel uses.
 *
 * NVRTC needs no GPU and no driver: --gpu-architecture=sm_XX makes it run
 * ptxas itself, so CI compiles every generated kernel for sm_80 and sm_90 and
 * reads registers and spills from ptxas's report. The options are in
 * docs/runtime.md, with why each is there (and why --use_fast_math is not). */
#ifndef MX_RTC_H
#define MX_RTC_H

#include <stdbool.h>
#include <stddef.h>

#include "mixc.h"

/* What ptxas reports for one kernel (an entry function). Counts are per
 * thread except smem, which is per block. */
typedef struct {
    char *name;       /* the symbol: as written under extern "C", else mangled */
    int registers;
    int spill_stores; /* bytes */
    int spill_loads;  /* bytes */
    int stack_frame;  /* bytes of local memory, spills and local arrays */
    int smem;         /* static __shared__ bytes */
    int barriers;     /* named barriers used */
} mx_kernel_usage;

typedef struct {
    unsigned char *cubin; /* an ELF image for cuModuleLoadData */
    size_t cubin_len;
    char *ptx;            /* NUL-terminated; NULL when the cubin came from the cache */
    int n_kernels;
    mx_kernel_usage *kernels;
    bool from_cache;
    double compile_ms;    /* wall time of the compile; 0 for a cache hit */
} mx_cubin;

/* Frees what c holds and zeroes it; a zeroed mx_cubin is fine. */
void mx_cubin_free(mx_cubin *c);
/* The kernel named name; NULL if c has none. */
const mx_kernel_usage *mx_cubin_kernel(const mx_cubin *c, const char *name);

/* The options every compile gets, after --gpu-architecture=sm_XX and before
 * the caller's (the cache key hashes them). */
#define MX_NVRTC_N_FIXED_OPTS 3
extern const char *const mx_nvrtc_fixed_opts[MX_NVRTC_N_FIXED_OPTS];

/* Compiles source (name is the file name in messages) for sm (80: sm_80) with
 * the fixed options and extra_opts. A compile error gives MX_ERR_INVALID and
 * the start of NVRTC's log: "name: NVRTC_ERROR_COMPILATION for sm_80:\n
 * name(4): error: expected a \";\"..."; a missing NVRTC gives MX_ERR_IO (the
 * library is loaded by the first compile: cudalibs.h). On failure *out is
 * zeroed. */
mx_status mx_nvrtc_compile(const char *source, const char *name, int sm,
                           const char *const *extra_opts, int n_extra, mx_cubin *out, mx_diag *d);

/* Links the cubins of programs compiled with --relocatable-device-code=true
 * into one (out: no PTX; the parts' resource reports, in order). Linking
 * machine code is quick (milliseconds): it is how a module cut into programs
 * compiled in parallel still loads as one cubin. */
mx_status mx_nvrtc_link(const mx_cubin *parts, int n, const char *name, int sm, mx_cubin *out, mx_diag *d);

/* NVRTC's version (13, 0); both -1 if NVRTC cannot say. */
void mx_nvrtc_version(int *major, int *minor);

/* The kernels in a program log written with --ptxas-options=-v, in log order;
 * returns how many (malloc'd into *out, which the caller frees along with each
 * name), or -1 when out of memory. Lines it does not know are skipped. */
int mx_nvrtc_parse_usage(const char *log, mx_kernel_usage **out);

#endif
