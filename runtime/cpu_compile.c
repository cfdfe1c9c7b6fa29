/* cpu_compile.c: a module's programs to host objects, in parallel, through the
 * kernel cache (cpu_compile.h, docs/cpu.md). */
#include "cpu_compile.h"

#include <llvm-c/Error.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "llvm_kernel.h"

const char *const mx_cpu_phase_names[MX_CPU_PHASES] = {"lower", "optimise", "emit"};

static double clock_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* ---- the key ------------------------------------------------------------------------ */

mx_hash128 mx_cpu_object_key(const mx_cpu_object_desc *o) {
    char env[4096];
    int n = snprintf(env, sizeof env,
                     "cpu object|%s|%s|%s|%s|unroll all %d|codegen %d|llvm %u.%u.%u|mixc %s|lowering %d|smem %zu|lanes %d",
                     o->triple, o->cpu, o->features, o->pipeline, o->unroll_all, o->codegen_level, o->llvm_version[0],
                     o->llvm_version[1], o->llvm_version[2], o->mixc_version, o->lowering, o->smem, o->lanes);
    mx_hash128 h = mx_hash128_bytes(env, (size_t)(n < (int)sizeof env ? n : (int)sizeof env - 1), 0);
    return mx_hash128_bytes(o->source, strlen(o->source), h.lo ^ h.hi);
}

/* ---- one program ---------------------------------------------------------------------- */

typedef struct {
    mx_cpu_object_desc desc;
    mx_hash128 key;
    LLVMMemoryBufferRef obj;
    bool compiled; /* not from the cache */
    mx_status st;
    mx_diag d;
    int functions;
    char kernels[160]; /* the entry points it defines, for MIXC_DEBUG >= 3 */
    long long ir_lowered, ir_optimised;
    double phase_ms[MX_CPU_PHASES], phase_cpu_ms[MX_CPU_PHASES];
} program_job;

/* "mx_g3_norm mx_g14_scan ..." */
static void kernel_names(LLVMModuleRef mod, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f && len + 1 < size; f = LLVMGetNextFunction(f))
        if (LLVMGetFirstBasicBlock(f) && LLVMGetLinkage(f) == LLVMExternalLinkage) {
            int n = snprintf(buf + len, size - len, "%s%s", len ? " " : "", LLVMGetValueName(f));
            len += n > 0 ? (size_t)n : 0;
        }
}

static long long instructions(LLVMModuleRef mod, int *functions) {
    long long n = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
        LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(f);
        *functions += b != NULL;
        for (; b; b = LLVMGetNextBasicBlock(b))
            for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i))
                n++;
    }
    return n;
}

static mx_status llvm_error(LLVMErrorRef err, const char *what, mx_diag *d) {
    char *msg = LLVMGetErrorMessage(err);
    mx_status st = mx_fail(d, MX_ERR_INVALID, "cpu: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return st;
}

/* The host CPU at the job's code generation level, position-independent (the
 * JIT links the object wherever its memory lands). */
static mx_status host_machine(const mx_cpu_object_desc *o, LLVMTargetMachineRef *out, mx_diag *d) {
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(o->triple, &target, &err)) {
        mx_status st = mx_fail(d, MX_ERR_INVALID, "cpu: no LLVM target for %s: %s", o->triple, err);
        LLVMDisposeMessage(err);
        return st;
    }
    *out = LLVMCreateTargetMachine(target, o->triple, o->cpu, o->features, (LLVMCodeGenOptLevel)o->codegen_level,
                                   LLVMRelocPIC, LLVMCodeModelSmall);
    return *out ? MX_OK : mx_fail(d, MX_ERR_INVALID, "cpu: LLVM cannot target %s (%s)", o->triple, o->cpu);
}

/* Phase `ph` of job j has run since *wall, *cpu: add it, restart the clocks. */
static void lap(program_job *j, mx_cpu_phase ph, double *wall, double *cpu) {
    double w = clock_ms(CLOCK_MONOTONIC), c = clock_ms(CLOCK_THREAD_CPUTIME_ID);
    j->phase_ms[ph] += w - *wall, j->phase_cpu_ms[ph] += c - *cpu;
    *wall = w, *cpu = c;
}

/* The program lowered, optimised with the target machine (so that the
 * vectorisers know the vector width) and emitted, in a context of its own. */
static void compile_program(program_job *j, const char *model) {
    const mx_cpu_object_desc *o = &j->desc;
    LLVMTargetMachineRef tm;
    if ((j->st = host_machine(o, &tm, &j->d)) != MX_OK)
        return;
    double wall = clock_ms(CLOCK_MONOTONIC), cpu = clock_ms(CLOCK_THREAD_CPUTIME_ID);
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod;
    j->st = mx_llvm_lower(o->source, model, o->smem, o->lanes, o->features, ctx, &mod, &j->d);
    lap(j, MX_CPU_LOWER, &wall, &cpu);
    if (j->st == MX_OK) {
        j->ir_lowered = instructions(mod, &j->functions);
        kernel_names(mod, j->kernels, sizeof j->kernels);
        LLVMSetTarget(mod, o->triple);
        LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
        LLVMSetModuleDataLayout(mod, layout);
        LLVMDisposeTargetData(layout);
        LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
        LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
        LLVMPassBuilderOptionsSetSLPVectorization(opts, 1);
        LLVMPassBuilderOptionsSetLoopUnrolling(opts, o->unroll_all);
        LLVMErrorRef err = LLVMRunPasses(mod, o->pipeline, tm, opts);
        LLVMDisposePassBuilderOptions(opts);
        lap(j, MX_CPU_OPTIMISE, &wall, &cpu);
        if (err)
            j->st = llvm_error(err, "optimising the kernels", &j->d);
        int unused = 0;
        j->ir_optimised = instructions(mod, &unused);
        if (j->st == MX_OK && mx_debug_level() >= 4) {
            char *ir = LLVMPrintModuleToString(mod);
            fprintf(stderr, "mixc: cpu: optimised IR of %s:\n%s\n", model, ir);
            LLVMDisposeMessage(ir);
        }
        char *msg = NULL;
        if (j->st == MX_OK && LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, &j->obj)) {
            j->st = mx_fail(&j->d, MX_ERR_INVALID, "cpu: emitting the object file: %s", msg);
            LLVMDisposeMessage(msg);
            j->obj = NULL;
        }
        lap(j, MX_CPU_EMIT, &wall, &cpu);
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
}

/* ---- the module --------------------------------------------------------------------------- */

typedef struct {
    program_job *jobs;
    int *miss; /* the jobs to compile */
    int n_miss;
    atomic_int next;
    const char *model;
} batch;

/* A thread's share: it takes the next job until none is left, so that the
 * heaviest programs do not wait behind a fixed split. */
static void compile_share(void *ctx, int64_t lo, int64_t hi) {
    batch *b = ctx;
    (void)lo, (void)hi;
    for (int m; (m = atomic_fetch_add(&b->next, 1)) < b->n_miss;)
        compile_program(&b->jobs[b->miss[m]], b->model);
}

/* O3 for every kernel, LLVM's loop unroller on every loop. Unrolling only
 * where the source forces it (#pragma unroll: the scan's states) takes 15%
 * less compile time for ViM2-T, but whether it leaves every kernel as fast
 * could not be settled on the loaded machine it was measured on, so it
 * every loop stays unrollable until it can (docs/cpu.md, "Compile time"). */
static const char pipeline[] = "default<O3>";
enum { UNROLL_ALL = 1 };

mx_status mx_cpu_compile_module(const mx_module *m, const char *model, size_t smem, int lanes, mx_cpu_pool *pool,
                                LLVMMemoryBufferRef *objs, mx_cpu_compile_stats *stats, mx_diag *d) {
    memset(stats, 0, sizeof *stats);
    stats->programs = m->n_programs;
    int n = m->n_programs;
    if (n == 0) /* matmuls alone */
        return MX_OK;
    double t0 = clock_ms(CLOCK_MONOTONIC);
    memset(objs, 0, (size_t)n * sizeof *objs);
    program_job *jobs = calloc((size_t)n, sizeof *jobs);
    int *miss = calloc((size_t)n, sizeof *miss);
    char *triple = LLVMGetDefaultTargetTriple(), *cpu = LLVMGetHostCPUName(), *host = LLVMGetHostCPUFeatures();
    char off[256], *features = NULL;
    mx_status st = mx_cpu_disabled_features(off, sizeof off, d);
    if (st == MX_OK && (!jobs || !miss || !(features = malloc(strlen(host) + strlen(off) + 1))))
        st = mx_fail(d, MX_ERR_NOMEM, "%s: out of memory compiling %d programs", model, n);
    if (st != MX_OK)
        goto done;
    strcat(strcpy(features, host), off); /* the last edit of a feature wins */
    batch b = {.jobs = jobs, .miss = miss, .model = model};
    atomic_init(&b.next, 0);
    for (int q = 0; q < n; q++) {
        program_job *j = &jobs[q];
        j->desc = (mx_cpu_object_desc){.source = m->programs[q].s, .triple = triple, .cpu = cpu, .features = features,
                                       .pipeline = pipeline, .unroll_all = UNROLL_ALL,
                                       .codegen_level = LLVMCodeGenLevelAggressive, .mixc_version = MIXC_VERSION,
                                       .lowering = MX_LLVM_LOWERING_REVISION,
                                       .smem = smem, .lanes = lanes};
        LLVMGetVersion(&j->desc.llvm_version[0], &j->desc.llvm_version[1], &j->desc.llvm_version[2]);
        j->key = mx_cpu_object_key(&j->desc);
        unsigned char *bytes;
        size_t len;
        if (mx_cache_get(j->key, &bytes, &len) == MX_CACHE_HIT) {
            objs[q] = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)bytes, len, "mixc-cpu.o");
            free(bytes);
        } else {
            miss[b.n_miss++] = q;
        }
    }
    /* heaviest first (a function's time grows with its text): the threads
     * take the next program as they finish, so the last to start is short */
    for (int i = 1; i < b.n_miss; i++)
        for (int j = i; j > 0 && m->programs[miss[j]].len > m->programs[miss[j - 1]].len; j--) {
            int t = miss[j];
            miss[j] = miss[j - 1], miss[j - 1] = t;
        }
    stats->cache_ms = clock_ms(CLOCK_MONOTONIC) - t0;
    if (b.n_miss > 0 && mx_debug_level() >= 4)
        fprintf(stderr, "mixc: cpu: kernel source of %s:\n%s\n", model, m->source.s);
    if (b.n_miss > 0) {
        int threads = mx_cpu_pool_threads(pool) < b.n_miss ? mx_cpu_pool_threads(pool) : b.n_miss;
        stats->threads = threads;
        mx_cpu_pool_run(pool, threads, 1, compile_share, &b);
    }
    for (int i = 0; i < b.n_miss && st == MX_OK; i++) {
        program_job *j = &jobs[miss[i]];
        if (j->st != MX_OK) { /* say whose kernels: the message names the stage and the kernel */
            st = mx_fail(d, j->st, "%s: compiling its kernels for the CPU (%s): program %d of %d: %s", model, cpu,
                         miss[i] + 1, n, j->d.msg);
        }
    }
    for (int i = 0; i < b.n_miss; i++) {
        program_job *j = &jobs[miss[i]];
        stats->compiled++;
        stats->functions += j->functions;
        stats->ir_lowered += j->ir_lowered, stats->ir_optimised += j->ir_optimised;
        for (int ph = 0; ph < MX_CPU_PHASES; ph++)
            stats->phase_ms[ph] += j->phase_ms[ph], stats->phase_cpu_ms[ph] += j->phase_cpu_ms[ph];
        objs[miss[i]] = j->obj;
        if (mx_debug_level() >= 3)
            fprintf(stderr,
                    "mixc: cpu: program %d: %lld -> %lld instructions, lower %.1f, optimise %.1f, emit %.1f ms CPU: "
                    "%s\n",
                    miss[i] + 1, j->ir_lowered, j->ir_optimised, j->phase_cpu_ms[MX_CPU_LOWER],
                    j->phase_cpu_ms[MX_CPU_OPTIMISE], j->phase_cpu_ms[MX_CPU_EMIT], j->kernels);
        if (st != MX_OK || !j->obj)
            continue;
        mx_diag ignored;
        if (mx_cache_put(j->key, LLVMGetBufferStart(j->obj), LLVMGetBufferSize(j->obj), &ignored) != MX_OK &&
            mx_debug_level() >= 1)
            fprintf(stderr, "mixc: cpu: object not cached: %s\n", ignored.msg);
    }
    for (int q = 0; q < n; q++)
        stats->object_bytes += objs[q] ? LLVMGetBufferSize(objs[q]) : 0;
    if (st != MX_OK)
        for (int q = 0; q < n; q++) {
            if (objs[q])
                LLVMDisposeMemoryBuffer(objs[q]);
            objs[q] = NULL;
        }
done:
    stats->wall_ms = clock_ms(CLOCK_MONOTONIC) - t0;
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(host);
    free(features);
    free(jobs);
    free(miss);
    return st;
}

void mx_cpu_compile_report(const mx_cpu_compile_stats *s, FILE *out) {
    fprintf(out, "mixc: cpu: %d programs, %d compiled on %d threads (%d functions, %lld IR instructions lowered, "
                 "%lld optimised, %.1f KB of objects); %.1f ms in all, %.1f ms reading the cache\n",
            s->programs, s->compiled, s->threads, s->functions, s->ir_lowered, s->ir_optimised,
            (double)s->object_bytes / 1e3, s->wall_ms, s->cache_ms);
    for (int ph = 0; ph < MX_CPU_PHASES; ph++)
        fprintf(out, "mixc: cpu:   %-9s %9.1f ms wall, %9.1f ms CPU (summed over the programs)\n",
                mx_cpu_phase_names[ph], s->phase_ms[ph], s->phase_cpu_ms[ph]);
}
