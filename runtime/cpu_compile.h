/* cpu_compile.h: a generated module's programs compiled to host object files.
 *
 * The code generator cuts a module into programs (codegen.h: complete
 * sources of a share of its distinct functions). Each program is lowered to
 * LLVM IR (llvm_kernel.h) in a context of its own, optimised for the host CPU
 * and emitted as an object file, the programs compiled in parallel on the
 * CPU backend's threads (LLVM contexts and target machines are per thread).
 * Each object is kept in the kernel cache (cache.h) under a key that hashes
 * everything that decides it, so a warm start reads the objects and runs no
 * LLVM pass; a program whose functions did not change stays cached when
 * others did. docs/cpu.md, "Compile time". */
#ifndef MX_CPU_COMPILE_H
#define MX_CPU_COMPILE_H

#include <llvm-c/Core.h>
#include <stdio.h>

#include "cache.h"
#include "codegen.h"
#include "cpu_pool.h"

/* Everything that decides an object file (its key hashes every field). */
typedef struct {
    const char *source;         /* the program's text */
    const char *triple;         /* the host, as LLVM names it */
    const char *cpu;            /* its CPU ... */
    const char *features;       /* ... and the CPU's features */
    const char *pipeline;       /* the LLVM pass pipeline */
    int unroll_all;             /* the loop unroller on every loop (else where forced) */
    int codegen_level;          /* LLVMCodeGenOptLevel of instruction selection */
    unsigned llvm_version[3];   /* LLVM's major, minor, patch */
    const char *mixc_version;   /* MIXC_VERSION */
    int lowering;               /* MX_LLVM_LOWERING_REVISION (the lowering's rules) */
    size_t smem;                /* a block's shared memory */
    int lanes;                  /* f32 lanes a block's threads may run as */
} mx_cpu_object_desc;

mx_hash128 mx_cpu_object_key(const mx_cpu_object_desc *o);

/* The phases of compiling a program. */
typedef enum { MX_CPU_LOWER, MX_CPU_OPTIMISE, MX_CPU_EMIT, MX_CPU_PHASES } mx_cpu_phase;

extern const char *const mx_cpu_phase_names[MX_CPU_PHASES];

/* What compiling a module took (MIXC_DEBUG >= 2 prints it, docs/cpu.md). */
typedef struct {
    int programs, compiled; /* programs, and those not found in the cache */
    int threads;            /* that compiled them */
    int functions;          /* LLVM functions with a body, as lowered */
    long long ir_lowered;   /* instructions as lowered ... */
    long long ir_optimised; /* ... and after the pass pipeline */
    size_t object_bytes;
    double phase_ms[MX_CPU_PHASES];     /* wall time per phase, summed over programs */
    double phase_cpu_ms[MX_CPU_PHASES]; /* CPU time of the thread per phase, summed */
    double cache_ms;                    /* keys and cache reads */
    double wall_ms;                     /* from the first key to the last object */
} mx_cpu_compile_stats;

/* The objects of m's programs (objs: m->n_programs entries, each then owned
 * by the caller), from the cache or compiled on the pool's threads and then
 * cached. `model` names the model in errors: "MODEL: compiling its kernels
 * for the CPU (CPU): program 2 of 8: ...". Nothing is cached unless every
 * program compiled. */
mx_status mx_cpu_compile_module(const mx_module *m, const char *model, size_t smem, int lanes, mx_cpu_pool *pool,
                                LLVMMemoryBufferRef *objs, mx_cpu_compile_stats *stats, mx_diag *d);

/* The stats as the table MIXC_DEBUG >= 2 prints. */
void mx_cpu_compile_report(const mx_cpu_compile_stats *s, FILE *out);

#endif
