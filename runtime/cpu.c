/* cpu.c: the CPU backend (backend.h, docs/cpu.md).
 *
 * The planned program's kernels are generated as for a GPU (codegen.h), with
 * tiles that give every block one thread, lowered to LLVM IR
 * (llvm_kernel.h), optimised at O3 for the host CPU and JIT-compiled with
 * ORC LLJIT; the object file is kept in the on-disk kernel cache (cache.h),
 * so a warm start links it without running LLVM's optimiser. The executor's
 * walk (exec.h) runs the groups over the planned arena: a kernel's blocks
 * are split over the thread pool (cpu_pool.h), a matmul group is one
 * cblas_sgemm per batch of its decoded product (gemm.h), with the residual
 * as beta * C and the bias and activation applied after. */
#include <cblas.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "cache.h"
#include "cpu_pool.h"
#include "exec.h"
#include "gemm.h"
#include "llvm_kernel.h"
#include "tune.h"

/* void kernel(void **params, int64_t lo, int64_t hi, int32_t grid) */
typedef void (*kernel_fn)(void **params, int64_t lo, int64_t hi, int32_t grid);

typedef struct {
    kernel_fn fn;
    int64_t blocks; /* the blocks one launch runs */
    int64_t grain;  /* the fewest blocks worth a thread */
} cpu_kernel;

typedef struct {
    const mx_target *t;
    const mx_program *p;
    mx_module m;
    mx_exec_device dev;
    mx_exec *x;
    mx_cpu_pool *pool;
    LLVMOrcLLJITRef jit;
    cpu_kernel *kernels; /* per group */
    mx_gemm *gemms;      /* per group (matmul groups) */
    double jit_ms;
    bool from_cache;
} cpu_state;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* ---- LLVM ------------------------------------------------------------------------- */

static pthread_once_t llvm_once = PTHREAD_ONCE_INIT;
static void llvm_init(void) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
}

static mx_status llvm_error(LLVMErrorRef err, const char *what, mx_diag *d) {
    char *msg = LLVMGetErrorMessage(err);
    mx_status st = mx_fail(d, MX_ERR_INVALID, "cpu: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return st;
}

/* The host CPU as LLVM names it, at O3, position-independent (the JIT
 * links the object wherever its memory lands). */
static mx_status host_machine(LLVMTargetMachineRef *out, char **triple, char **cpu, char **features, mx_diag *d) {
    *triple = LLVMGetDefaultTargetTriple();
    *cpu = LLVMGetHostCPUName();
    *features = LLVMGetHostCPUFeatures();
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(*triple, &target, &err)) {
        mx_status st = mx_fail(d, MX_ERR_INVALID, "cpu: no LLVM target for %s: %s", *triple, err);
        LLVMDisposeMessage(err);
        return st;
    }
    *out = LLVMCreateTargetMachine(target, *triple, *cpu, *features, LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                   LLVMCodeModelSmall);
    return *out ? MX_OK : mx_fail(d, MX_ERR_INVALID, "cpu: LLVM cannot target %s (%s)", *triple, *cpu);
}

/* The module's object file: lowered, optimised at O3 with the target
 * machine (so that the vectorisers know the vector width), emitted. */
static mx_status compile_object(const cpu_state *s, LLVMTargetMachineRef tm, const char *triple,
                                LLVMMemoryBufferRef *obj, mx_diag *d) {
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod;
    mx_status st = mx_llvm_lower(s->m.source.s, s->p->g->name, (size_t)s->t->smem_per_block, ctx, &mod, d);
    if (st != MX_OK) {
        LLVMContextDispose(ctx);
        return st;
    }
    LLVMSetTarget(mod, triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, layout);
    LLVMDisposeTargetData(layout);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(opts, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(opts, 1);
    LLVMErrorRef err = LLVMRunPasses(mod, "default<O3>", tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (err)
        st = llvm_error(err, "optimising the kernels", d);
    if (st == MX_OK && mx_debug_level() >= 4) {
        char *ir = LLVMPrintModuleToString(mod);
        fprintf(stderr, "mixc: cpu: optimised IR of %s:\n%s\n", s->p->g->name, ir);
        LLVMDisposeMessage(ir);
    }
    char *msg = NULL;
    if (st == MX_OK && LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, obj)) {
        st = mx_fail(d, MX_ERR_INVALID, "cpu: emitting the object file: %s", msg);
        LLVMDisposeMessage(msg);
    }
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    return st;
}

/* Everything that decides the object file: the source, the host CPU and its
 * features, LLVM's and mixc's versions. */
static mx_hash128 object_key(const char *source, const char *triple, const char *cpu, const char *features,
                             size_t smem) {
    char env[4096];
    unsigned major, minor, patch;
    LLVMGetVersion(&major, &minor, &patch);
    int n = snprintf(env, sizeof env, "cpu object|%s|%s|%s|llvm %u.%u.%u|mixc %s|smem %zu", triple, cpu, features,
                     major, minor, patch, MIXC_VERSION, smem);
    mx_hash128 h = mx_hash128_bytes(env, (size_t)(n < (int)sizeof env ? n : (int)sizeof env - 1), 0);
    return mx_hash128_bytes(source, strlen(source), h.lo ^ h.hi);
}

/* The object from the cache, else compiled (and stored). */
static mx_status module_object(cpu_state *s, LLVMMemoryBufferRef *obj, mx_diag *d) {
    LLVMTargetMachineRef tm;
    char *triple, *cpu, *features;
    mx_status st = host_machine(&tm, &triple, &cpu, &features, d);
    if (st == MX_OK) {
        mx_hash128 key = object_key(s->m.source.s, triple, cpu, features, (size_t)s->t->smem_per_block);
        unsigned char *bytes;
        size_t len;
        if (mx_cache_get(key, &bytes, &len) == MX_CACHE_HIT) {
            *obj = LLVMCreateMemoryBufferWithMemoryRangeCopy((const char *)bytes, len, "mixc-cpu.o");
            free(bytes);
            s->from_cache = true;
        } else {
            st = compile_object(s, tm, triple, obj, d);
            if (st == MX_OK) {
                mx_diag ignored;
                if (mx_cache_put(key, LLVMGetBufferStart(*obj), LLVMGetBufferSize(*obj), &ignored) != MX_OK &&
                    mx_debug_level() >= 1)
                    fprintf(stderr, "mixc: cpu: object not cached: %s\n", ignored.msg);
            }
        }
        LLVMDisposeTargetMachine(tm);
    }
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    return st;
}

/* ---- the device table ------------------------------------------------------------------ */

static mx_status cpu_alloc(void *ctx, size_t bytes, void **out, mx_diag *d) {
    size_t rounded = (bytes + 63) / 64 * 64;
    *out = aligned_alloc(64, rounded ? rounded : 64);
    return *out ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "cpu: out of memory allocating %zu bytes", bytes);
}

static void cpu_release(void *ctx, void *ptr) { free(ptr); }

static mx_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d) {
    memcpy(dst, src, bytes);
    return MX_OK;
}

/* The blocks of group k's kernel: a row kernel and the scan run the grid the
 * emitter chose (rows, rows of channels); an element kernel strides its
 * grid over the elements, so a grid of one block per element of its largest
 * value makes each block one element (and the thread shares contiguous). */
static void size_kernel(const cpu_state *s, int group, const mx_kernel *k, cpu_kernel *ck) {
    const mx_program *p = s->p;
    const mx_group *gr = &p->groups[group];
    if (gr->kind == MX_FUSE_SCAN || gr->kind == MX_FUSE_NORM || gr->kind == MX_FUSE_REDUCE) {
        ck->blocks = k->grid[0];
        ck->grain = 1;
        return;
    }
    int64_t most = 1;
    for (int i = 0; i < gr->n_nodes; i++) {
        const mx_node *n = &p->g->nodes[gr->nodes[i]];
        for (int o = 0; o < n->n_out; o++) {
            int64_t c = mx_type_numel(mx_value_type(p->g, n->first_out + o));
            most = c > most ? c : most;
        }
    }
    ck->blocks = most;
    ck->grain = 4096;
}

static mx_status cpu_load(void *ctx, const mx_program *p, const mx_module *m, mx_diag *d) {
    cpu_state *s = ctx;
    pthread_once(&llvm_once, llvm_init);
    double t0 = now_ms();
    LLVMMemoryBufferRef obj = NULL;
    MX_TRY(module_object(s, &obj, d));
    LLVMErrorRef err = LLVMOrcCreateLLJIT(&s->jit, NULL);
    if (err) {
        LLVMDisposeMemoryBuffer(obj);
        s->jit = NULL;
        return llvm_error(err, "starting the JIT", d);
    }
    LLVMOrcJITDylibRef main = LLVMOrcLLJITGetMainJITDylib(s->jit);
    LLVMOrcDefinitionGeneratorRef gen;
    err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(s->jit), NULL, NULL);
    if (err) {
        LLVMDisposeMemoryBuffer(obj);
        return llvm_error(err, "resolving libm for the JIT", d);
    }
    LLVMOrcJITDylibAddGenerator(main, gen);
    err = LLVMOrcLLJITAddObjectFile(s->jit, main, obj); /* takes obj */
    if (err)
        return llvm_error(err, "adding the kernels to the JIT", d);
    for (int g = 0; g < p->n_groups; g++) {
        const mx_kernel *k = mx_module_kernel(m, g);
        if (p->groups[g].kind == MX_FUSE_MATMUL) {
            MX_TRY(mx_gemm_decode(p, g, &s->gemms[g], d));
            continue;
        }
        if (!k)
            return mx_fail(d, MX_ERR_INVALID, "cpu: group %d has no kernel", g);
        LLVMOrcExecutorAddress addr;
        err = LLVMOrcLLJITLookup(s->jit, &addr, k->name);
        if (err)
            return llvm_error(err, k->name, d);
        s->kernels[g].fn = (kernel_fn)(uintptr_t)addr;
        size_kernel(s, g, k, &s->kernels[g]);
        if (k->tiles.tasks > 0) /* tuned: that many shares of the pool */
            s->kernels[g].grain = s->kernels[g].blocks / k->tiles.tasks > 1 ? s->kernels[g].blocks / k->tiles.tasks : 1;
    }
    s->jit_ms = now_ms() - t0;
    if (mx_debug_level() >= 1)
        fprintf(stderr, "mixc: cpu: %d kernels %s in %.1f ms\n", m->n_kernels,
                s->from_cache ? "linked from the object cache" : "compiled (LLVM O3, JIT)", s->jit_ms);
    return MX_OK;
}

static void cpu_unload(void *ctx) {
    cpu_state *s = ctx;
    if (s->jit)
        LLVMOrcDisposeLLJIT(s->jit);
    s->jit = NULL;
}

typedef struct {
    kernel_fn fn;
    void **params;
    int32_t grid;
} launch_task;

static void run_blocks(void *ctx, int64_t lo, int64_t hi) {
    launch_task *t = ctx;
    t->fn(t->params, lo, hi, t->grid);
}

static mx_status cpu_launch(void *ctx, int group, const mx_kernel *k, void **params, mx_diag *d) {
    cpu_state *s = ctx;
    const cpu_kernel *ck = &s->kernels[group];
    if (ck->blocks > INT32_MAX)
        return mx_fail(d, MX_ERR_INVALID, "cpu: group %d: %lld blocks, more than a grid holds", group,
                       (long long)ck->blocks);
    launch_task t = {ck->fn, params, (int32_t)ck->blocks};
    mx_cpu_pool_run(s->pool, ck->blocks, ck->grain, run_blocks, &t);
    return MX_OK;
}

/* ---- matmuls ------------------------------------------------------------------------------- */

/* An operand's buffer as f32: the buffer itself, or an f32 copy of the
 * whole value (f16 / bf16 storage), made once per value of the group. */
typedef struct {
    int value;
    float *data;
    bool copy;
} f32_view;

static float *as_f32(const mx_program *p, const mx_exec *x, f32_view *views, int *n, int value, mx_diag *d) {
    for (int i = 0; i < *n; i++)
        if (views[i].value == value)
            return views[i].data;
    const mx_type *t = mx_value_type(p->g, value);
    void *buf = mx_exec_value_ptr(x, value);
    if (!buf) {
        mx_fail(d, MX_ERR_INVALID, "cpu: matmul operand %d has no buffer", value);
        return NULL;
    }
    f32_view *v = &views[(*n)++];
    v->value = value;
    v->copy = t->dtype != MX_F32;
    if (!v->copy) {
        v->data = buf;
        return v->data;
    }
    int64_t numel = mx_type_numel(t);
    v->data = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    if (!v->data) {
        mx_fail(d, MX_ERR_NOMEM, "cpu: out of memory converting a matmul operand");
        return NULL;
    }
    mx_storage_unpack(t->dtype, buf, numel, v->data);
    return v->data;
}

static float gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(0.797884561f * (x + 0.044715f * x * x * x))); }

static mx_status cpu_matmul(void *ctx, const mx_exec *x, int group, mx_diag *d) {
    cpu_state *s = ctx;
    const mx_gemm *gm = &s->gemms[group];
    if (gm->y.trans)
        return mx_fail(d, MX_ERR_INVALID, "cpu: group %d (matmul): a transposed result is not supported", group);
    f32_view views[5];
    int n_views = 0;
    float *A = as_f32(s->p, x, views, &n_views, gm->a.value, d), *B = A ? as_f32(s->p, x, views, &n_views, gm->b.value, d) : NULL;
    float *Y = B ? as_f32(s->p, x, views, &n_views, gm->y.value, d) : NULL;
    float *C = Y && gm->c.value != MX_NONE ? as_f32(s->p, x, views, &n_views, gm->c.value, d) : NULL;
    float *bias = Y && gm->bias != MX_NONE ? as_f32(s->p, x, views, &n_views, gm->bias, d) : NULL;
    mx_status st = Y && (gm->c.value == MX_NONE || C) && (gm->bias == MX_NONE || bias) ? MX_OK : MX_ERR_NOMEM;
    for (int64_t o = 0; st == MX_OK && o < gm->outer; o++)
        for (int64_t b = 0; b < gm->batch; b++) {
            const float *a = A + gm->a.offset + o * gm->a.outer_stride + b * gm->a.batch_stride;
            const float *bb = B + gm->b.offset + o * gm->b.outer_stride + b * gm->b.batch_stride;
            float *y = Y + gm->y.offset + o * gm->y.outer_stride + b * gm->y.batch_stride;
            float beta = 0.0f;
            if (C) { /* beta * C: the residual first copied into y unless it is y */
                const float *c = C + gm->c.offset + o * gm->c.outer_stride + b * gm->c.batch_stride;
                if (c != y || gm->c.trans || gm->c.ld != gm->y.ld)
                    for (int64_t i = 0; i < gm->m; i++)
                        for (int64_t j = 0; j < gm->n; j++)
                            y[i * gm->y.ld + j] = gm->c.trans ? c[j * gm->c.ld + i] : c[i * gm->c.ld + j];
                beta = 1.0f;
            }
            cblas_sgemm(CblasRowMajor, gm->a.trans ? CblasTrans : CblasNoTrans, gm->b.trans ? CblasTrans : CblasNoTrans,
                        (int)gm->m, (int)gm->n, (int)gm->k, 1.0f, a, (int)gm->a.ld, bb, (int)gm->b.ld, beta, y,
                        (int)gm->y.ld);
            if (!bias && gm->act == MX_GEMM_ACT_NONE)
                continue;
            for (int64_t i = 0; i < gm->m; i++)
                for (int64_t j = 0; j < gm->n; j++) {
                    float v = y[i * gm->y.ld + j] + (bias ? bias[j] : 0.0f);
                    if (gm->act == MX_GEMM_ACT_RELU)
                        v = v > 0.0f ? v : 0.0f;
                    else if (gm->act == MX_GEMM_ACT_GELU_TANH)
                        v = gelu_tanh(v);
                    y[i * gm->y.ld + j] = v;
                }
        }
    for (int i = 0; i < n_views; i++) {
        if (!views[i].copy)
            continue;
        if (st == MX_OK && views[i].value == gm->y.value) {
            const mx_type *t = mx_value_type(s->p->g, views[i].value);
            mx_storage_pack(t->dtype, views[i].data, mx_type_numel(t), mx_exec_value_ptr(x, views[i].value));
        }
        free(views[i].data);
    }
    return st;
}

/* ---- the backend ------------------------------------------------------------------------------ */

/* Tiles that give every block one thread (llvm_kernel.h): the scan's lanes
 * decomposition with one lane and one row per block, which keeps a row's
 * states in one thread's registers; row kernels' thread count is only
 * checked, the CPU running each row's loops whole. */
static mx_tiles cpu_tiles(const mx_target *target, const mx_program *p, int group) {
    mx_tiles t = {.threads = 32, .items = 1, .channels = 1, .lanes_per_state = 1, .vector = 1};
    if (p->groups[group].kind == MX_FUSE_SCAN)
        t.threads = 1, t.items = 64;
    return t;
}

static void cpu_close(void *state) {
    cpu_state *s = state;
    mx_exec_close(s->x);
    mx_cpu_pool_free(s->pool);
    mx_module_free(&s->m);
    free(s->kernels);
    free(s->gemms);
    free(s);
}

static mx_status cpu_open(const mx_target *t, const mx_program *p, void **state, mx_diag *d) {
    cpu_state *s = calloc(1, sizeof *s);
    mx_tiles *tiles = NULL;
    if (s) {
        s->kernels = calloc((size_t)p->n_groups + 1, sizeof *s->kernels);
        s->gemms = calloc((size_t)p->n_groups + 1, sizeof *s->gemms);
    }
    if (!s || !s->kernels || !s->gemms) {
        if (s)
            free(s->kernels), free(s->gemms), free(s);
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", p->g->name);
    }
    s->t = t, s->p = p;
    mx_status st = mx_tune_tiles(p, t, &tiles, d);
    mx_codegen_options co = {.target = t, .tiles = tiles};
    if (st == MX_OK)
        st = mx_codegen(p, &co, &s->m, d);
    free(tiles);
    if (st == MX_OK)
        st = mx_cpu_pool_new(t->threads > 0 ? t->threads : 1, &s->pool, d);
    if (st == MX_OK) {
        openblas_set_num_threads(t->threads > 0 ? t->threads : 1);
        s->dev = (mx_exec_device){.name = "cpu", .ctx = s, .alloc = cpu_alloc, .release = cpu_release,
                                  .upload = cpu_copy, .download = cpu_copy, .load = cpu_load,
                                  .unload = cpu_unload, .launch = cpu_launch, .matmul = cpu_matmul};
        st = mx_exec_open(p, &s->m, &s->dev, NULL, &s->x, d);
    }
    if (st != MX_OK) {
        cpu_close(s);
        return st;
    }
    *state = s;
    return MX_OK;
}

static mx_status cpu_upload(void *state, const mx_buffers *b, mx_diag *d) {
    return mx_exec_upload(((cpu_state *)state)->x, b, d);
}

static mx_status cpu_forward(void *state, mx_diag *d) { return mx_exec_forward(((cpu_state *)state)->x, d); }

static mx_status cpu_sync(void *state, mx_diag *d) { return MX_OK; }

static mx_status cpu_download(void *state, mx_buffers *b, mx_diag *d) {
    return mx_exec_download(((cpu_state *)state)->x, b, d);
}

/* Wall time of group's launches, without flushing caches: in a forward
 * pass a kernel mostly reads what the group before it just wrote. */
static mx_status cpu_time_group(void *state, int group, int runs, double *ms, mx_diag *d) {
    cpu_state *s = state;
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms();
        MX_TRY(mx_exec_group(s->x, group, d));
        ms[i] = now_ms() - t0;
    }
    return MX_OK;
}

const mx_backend mx_backend_cpu = {MX_DEVICE_CPU, cpu_open,     cpu_upload, cpu_forward,    cpu_sync,
                                   cpu_download,  NULL,         cpu_close,  cpu_time_group, cpu_tiles};
