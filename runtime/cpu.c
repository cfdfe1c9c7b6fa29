/* cpu.c: the CPU backend (backend.h, docs/cpu.md).
 *
 * The planned program's kernels are generated as for a GPU (codegen.h), with
 * the CPU's tiles (cpu_tiles), compiled for the host CPU program by program
 * on the pool's threads through the on-disk kernel cache (cpu_compile.h) and
 * linked with ORC LLJIT; a warm start links the cached objects without
 * running LLVM's optimiser. The executor's
 * walk (exec.h) runs the groups over the planned arena: a kernel's blocks
 * are split over the thread pool (cpu_pool.h), a matmul group is one
 * cblas_sgemm per batch of its decoded product (gemm.h), with the residual
 * as beta * C and the bias and activation applied after. */
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_walk.h"
#include "cache.h"
#include "cpu_blas.h"
#include "cpu_compile.h"
#include "cpu_pool.h"
#include "emit/standalone_split.h"
#include "gemm.h"
#include "host_blocks.h"
#include "scan_plan.h"
#include "tune.h"

/* void kernel(void **params, int64_t lo, int64_t hi, int32_t grid) */
typedef void (*kernel_fn)(void **params, int64_t lo, int64_t hi, int32_t grid);

typedef struct {
    kernel_fn fn;
    int64_t blocks; /* the blocks one launch runs */
    int64_t grain;  /* the fewest blocks worth a thread */
} cpu_kernel;

typedef struct {
    mx_walk walk; /* first: the walk's functions take the state */
    const mx_target *t;
    const mx_program *p;
    const mx_openblas_api *blas;
    mx_cpu_pool *pool;
    LLVMOrcLLJITRef jit;
    cpu_kernel *kernels; /* per group */
    mx_gemm *gemms;      /* per group (matmul groups) */
    mx_tiles *tiles;     /* per group, as compiled: a matmul's tasks split its products */
    double jit_ms;                /* objects ready and linked */
    mx_cpu_compile_stats compile; /* what getting the objects took */
    size_t copies_peak; /* the most bytes of f32 copies of f16 / bf16 matmul operands held */
    double *group_ms;   /* MIXC_DEBUG >= 2: each group's time over all runs, reported at close */
    int runs;           /* of group 0: the forward passes timed */
    double *pass_ms;    /* during cpu_time_pass: each group's time in that pass */
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

/* f32 lanes of the host's widest vectors (found at run time). */
static int vector_lanes(const mx_target *t) { return t->vector_bits >= 64 ? t->vector_bits / 32 : 4; }

/* The objects of the module's programs (cpu_compile.h), added to a new JIT. */
static mx_status link_objects(cpu_state *s, const mx_module *m, mx_diag *d) {
    LLVMMemoryBufferRef *objs = calloc((size_t)m->n_programs + 1, sizeof *objs);
    if (!objs)
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", s->p->g->name);
    mx_status st = mx_cpu_compile_module(m, s->p->g->name, (size_t)s->t->smem_per_block, vector_lanes(s->t), s->pool,
                                         objs, &s->compile, d);
    LLVMErrorRef err = NULL;
    if (st == MX_OK && (err = LLVMOrcCreateLLJIT(&s->jit, NULL)) != NULL) {
        s->jit = NULL;
        st = llvm_error(err, "starting the JIT", d);
    }
    LLVMOrcJITDylibRef main = s->jit ? LLVMOrcLLJITGetMainJITDylib(s->jit) : NULL;
    LLVMOrcDefinitionGeneratorRef gen;
    if (st == MX_OK && (err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
                            &gen, LLVMOrcLLJITGetGlobalPrefix(s->jit), NULL, NULL)) != NULL)
        st = llvm_error(err, "resolving libm for the JIT", d);
    if (st == MX_OK)
        LLVMOrcJITDylibAddGenerator(main, gen);
    int q = 0;
    for (; st == MX_OK && q < m->n_programs; q++) /* takes the object */
        if ((err = LLVMOrcLLJITAddObjectFile(s->jit, main, objs[q])) != NULL)
            st = llvm_error(err, "adding the kernels to the JIT", d);
    for (; q < m->n_programs; q++) /* those the JIT did not take */
        if (objs[q])
            LLVMDisposeMemoryBuffer(objs[q]);
    free(objs);
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

/* The blocks of group k's kernel (host_blocks.h), an element kernel's as
 * vectors when its block's threads fit the host's vector lanes; a tuned
 * kernel's grain gives the pool that many shares. */
/* State updates a thread's share of a scan launch holds at least, some
 * 20 us: handing a share to another thread costs about 1 us when it is
 * awake, and under contention for its core as long as the core is taken
 * (a tiny graph's two blocks of a few hundred updates took 0.1 ms on 2
 * threads against 1 us on one). */
enum { SHARE_UPDATES = 1 << 18 };

void mx_cpu_kernel_blocks(const mx_target *t, const mx_program *p, int group, const mx_kernel *k, int64_t *blocks,
                          int64_t *grain) {
    int lanes = k->block[0] <= (unsigned)vector_lanes(t) ? (int)k->block[0] : 1; /* as vector lanes */
    mx_host_blocks(p, group, k, lanes, blocks, grain);
    mx_scan_plan sp;
    mx_diag ignored;
    if (p->groups[group].kind == MX_FUSE_SCAN && *blocks > 0 && mx_scan_plan_fill(p, group, &sp, &ignored) == MX_OK) {
        int64_t per_block = sp.Bt * sp.Ch * sp.L * sp.N * sp.n_scans / *blocks;
        per_block = per_block > 0 ? per_block : 1;
        *grain = (SHARE_UPDATES + per_block - 1) / per_block;
    }
    if (k->tiles.tasks > 0)
        *grain = *blocks / k->tiles.tasks > 1 ? *blocks / k->tiles.tasks : 1;
}

mx_status mx_cpu_objects(const mx_target *t, const mx_module *m, const char *model, mx_bytes *objs, mx_diag *d) {
    pthread_once(&llvm_once, llvm_init);
    memset(objs, 0, (size_t)m->n_programs * sizeof *objs);
    LLVMMemoryBufferRef *bufs = calloc((size_t)m->n_programs + 1, sizeof *bufs);
    mx_cpu_pool *pool = NULL;
    mx_status st = bufs ? mx_cpu_pool_new(t->threads > 0 ? t->threads : 1, &pool, d)
                        : mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", model);
    mx_cpu_compile_stats stats;
    if (st == MX_OK)
        st = mx_cpu_compile_module(m, model, (size_t)t->smem_per_block, vector_lanes(t), pool, bufs, &stats, d);
    for (int q = 0; q < m->n_programs && st == MX_OK; q++) {
        objs[q].len = LLVMGetBufferSize(bufs[q]);
        if (!(objs[q].bytes = malloc(objs[q].len + 1)))
            st = mx_fail(d, MX_ERR_NOMEM, "%s: out of memory for the object of program %d", model, q);
        else
            memcpy(objs[q].bytes, LLVMGetBufferStart(bufs[q]), objs[q].len);
    }
    for (int q = 0; bufs && q < m->n_programs; q++) {
        if (bufs[q])
            LLVMDisposeMemoryBuffer(bufs[q]);
        if (st != MX_OK)
            free(objs[q].bytes), objs[q] = (mx_bytes){0};
    }
    free(bufs);
    if (pool)
        mx_cpu_pool_free(pool);
    return st;
}

static mx_status cpu_load(void *ctx, const mx_program *p, const mx_module *m, mx_diag *d) {
    cpu_state *s = ctx;
    pthread_once(&llvm_once, llvm_init);
    double t0 = now_ms();
    MX_TRY(link_objects(s, m, d));
    for (int g = 0; g < p->n_groups; g++) {
        const mx_kernel *k = mx_module_kernel(m, g);
        if (p->groups[g].kind == MX_FUSE_MATMUL) {
            MX_TRY(mx_gemm_decode(p, g, &s->gemms[g], d));
            continue;
        }
        if (!k)
            return mx_fail(d, MX_ERR_INVALID, "cpu: group %d has no kernel", g);
        LLVMOrcExecutorAddress addr;
        LLVMErrorRef err = LLVMOrcLLJITLookup(s->jit, &addr, k->name);
        if (err)
            return llvm_error(err, k->name, d);
        s->kernels[g].fn = (kernel_fn)(uintptr_t)addr;
        mx_cpu_kernel_blocks(s->t, p, g, k, &s->kernels[g].blocks, &s->kernels[g].grain);
    }
    s->jit_ms = now_ms() - t0;
    if (mx_debug_level() >= 1 && s->compile.compiled == 0)
        fprintf(stderr, "mixc: cpu: %d kernels linked from the object cache in %.1f ms\n", m->n_kernels, s->jit_ms);
    else if (mx_debug_level() >= 1) /* how many of the functions a change of tiles recompiled */
        fprintf(stderr, "mixc: cpu: %d kernels compiled (LLVM, JIT; %d of %d programs, the rest from the object "
                        "cache) in %.1f ms\n",
                m->n_kernels, s->compile.compiled, s->compile.programs, s->jit_ms);
    if (mx_debug_level() >= 2) {
        mx_cpu_compile_report(&s->compile, stderr);
        fprintf(stderr, "mixc: cpu:   %-9s %9.1f ms wall (the JIT's link and the kernels' look-up)\n", "link",
                s->jit_ms - s->compile.wall_ms);
    }
    return MX_OK;
}

static void cpu_unload(void *ctx) {
    cpu_state *s = ctx;
    if (s->jit)
        LLVMOrcDisposeLLJIT(s->jit);
    s->jit = NULL;
}

/* A group's time, kept when MIXC_DEBUG asks for the report or a pass is timed. */
static double group_start(const cpu_state *s) { return s->group_ms || s->pass_ms ? now_ms() : 0; }

static void group_end(cpu_state *s, int group, double t0) {
    if (s->group_ms)
        s->group_ms[group] += now_ms() - t0, s->runs += group == 0;
    if (s->pass_ms)
        s->pass_ms[group] += now_ms() - t0;
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
    double t0 = group_start(s);
    mx_cpu_pool_run(s->pool, ck->blocks, ck->grain, run_blocks, &t);
    group_end(s, group, t0);
    return MX_OK;
}

/* MIXC_DEBUG >= 2: the groups that took longest, per forward pass. */
static void report_times(const cpu_state *s) {
    const mx_program *p = s->p;
    double total = 0;
    for (int g = 0; g < p->n_groups; g++)
        total += s->group_ms[g];
    int runs = s->runs > 0 ? s->runs : 1;
    fprintf(stderr, "mixc: cpu: %.3f ms per forward pass in %d groups; by kind:", total / runs, p->n_groups);
    double by_kind[MX_FUSE_COUNT] = {0};
    for (int g = 0; g < p->n_groups; g++)
        by_kind[p->groups[g].kind] += s->group_ms[g];
    for (int f = 0; f < MX_FUSE_COUNT; f++)
        if (by_kind[f] > 0)
            fprintf(stderr, " %s %.1f%%", mx_fusion_names[f], total > 0 ? 100 * by_kind[f] / total : 0);
    fprintf(stderr, "; the longest:\n");
    bool *shown = calloc((size_t)p->n_groups + 1, sizeof *shown);
    for (int i = 0; shown && i < 12 && i < p->n_groups; i++) {
        int worst = -1;
        for (int g = 0; g < p->n_groups; g++)
            if (!shown[g] && (worst < 0 || s->group_ms[g] > s->group_ms[worst]))
                worst = g;
        shown[worst] = true;
        const mx_kernel *k = mx_module_kernel(&s->walk.m, worst);
        double ms = s->group_ms[worst] / runs;
        fprintf(stderr, "  group %4d %-8s %9.3f ms %5.1f%%  ", worst, mx_fusion_names[p->groups[worst].kind], ms,
                total > 0 ? 100 * s->group_ms[worst] / total : 0);
        const mx_gemm *gm = &s->gemms[worst];
        if (p->groups[worst].kind == MX_FUSE_MATMUL) /* how near the library runs to the machine's rate */
            fprintf(stderr, "%lld x [%lld x %lld] [%lld x %lld], %.1f GFLOP/s\n", (long long)(gm->outer * gm->batch),
                    (long long)gm->m, (long long)gm->k, (long long)gm->k, (long long)gm->n,
                    2e-6 * (double)(gm->outer * gm->batch * gm->m) * (double)(gm->n * gm->k) / ms);
        else
            fprintf(stderr, "%lld blocks%s\n", (long long)s->kernels[worst].blocks,
                    k && k->block[0] > 1 && k->block[0] <= (unsigned)vector_lanes(s->t) ? " (lanes)" : "");
    }
    free(shown);
}

/* ---- matmuls ------------------------------------------------------------------------------- */

/* f16 / bf16 matmuls: sgemm runs on f32 copies, made a panel of PANEL rows of
 * y at a time, so that the copies of activations stay a few rows of each
 * operand whatever the model's size (a weight, all of which every panel
 * reads, is copied once per product). */
enum { PANEL = 16 };

/* Rows r0 .. r0+nr-1 and columns c0 .. c0+nc-1 of an operand stored as rows
 * of o->ld elements from `first`: its own storage when it is f32 and
 * compact is false, else unpacked into *scratch (advanced) as nr rows of nc.
 * *ld: the result's row stride. */
typedef struct {
    int value;
    int64_t first, ld; /* element (r, c) of the stored matrix at first + r * ld + c */
} stored;

static float *sub_f32(const cpu_state *s, const mx_exec *x, stored st, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      float **scratch, int64_t *ld) {
    const mx_type *t = mx_value_type(s->p->g, st.value);
    char *base = mx_exec_value_ptr(x, st.value);
    size_t es = mx_dtype_size(t->dtype);
    if (t->dtype == MX_F32) {
        *ld = st.ld;
        return (float *)base + st.first + r0 * st.ld + c0;
    }
    float *out = *scratch;
    *scratch += nr * nc;
    *ld = nc;
    for (int64_t r = 0; r < nr; r++)
        mx_storage_unpack(t->dtype, base + (size_t)(st.first + (r0 + r) * st.ld + c0) * es, nc, out + r * nc);
    return out;
}

/* The compact f32 y (nr rows of nc) back into rows r0.. and columns c0.. of
 * its f16 / bf16 storage. */
static void pack_rows(const cpu_state *s, const mx_exec *x, stored st, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      const float *y) {
    const mx_type *t = mx_value_type(s->p->g, st.value);
    char *base = mx_exec_value_ptr(x, st.value);
    size_t es = mx_dtype_size(t->dtype);
    for (int64_t r = 0; r < nr; r++)
        mx_storage_pack(t->dtype, y + r * nc, nc, base + (size_t)(st.first + (r0 + r) * st.ld + c0) * es);
}

static bool is_f32(const cpu_state *s, int value) {
    return value == MX_NONE || mx_value_type(s->p->g, value)->dtype == MX_F32;
}

static stored at_product(const mx_gemm_operand *o, int64_t outer, int64_t batch) {
    return (stored){o->value, mx_gemm_index(o, outer, batch, 0, 0), o->ld};
}

/* y (m x n, ld ldy) = A B (+ C) (+ bias), then the activation, over f32
 * pointers with their row strides; m x n may be a panel of the product. */
typedef struct {
    const float *p;
    int64_t ld;
} f32_mat;

static void product(const mx_openblas_api *blas, const mx_gemm *gm, int64_t m, int64_t n, f32_mat a, f32_mat b,
                    f32_mat c, const float *bias, float *y, int64_t ldy) {
    float beta = 0.0f;
    if (c.p) { /* beta * C: the residual first copied into y unless it is y */
        if (c.p != y || gm->c.trans || c.ld != ldy)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++)
                    y[i * ldy + j] = gm->c.trans ? c.p[j * c.ld + i] : c.p[i * c.ld + j];
        beta = 1.0f;
    }
    blas->sgemm(CblasRowMajor, gm->a.trans ? CblasTrans : CblasNoTrans, gm->b.trans ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)gm->k, 1.0f, a.p, (int)a.ld, b.p, (int)b.ld, beta, y, (int)ldy);
    if (bias || gm->act != MX_GEMM_ACT_NONE)
        for (int64_t i = 0; i < m; i++)
            mx_cpu_epilogue(gm, y + i * ldy, bias, n);
}

static mx_status matmul(cpu_state *s, const mx_exec *x, int group, mx_diag *d);

static mx_status cpu_matmul(void *ctx, const mx_exec *x, int group, mx_diag *d) {
    cpu_state *s = ctx;
    double t0 = group_start(s);
    mx_status st = matmul(s, x, group, d);
    group_end(s, group, t0);
    return st;
}

/* A matmul group's products and how they are cut: panels of pm rows and pn
 * columns of y, each with its f32 copies in `need` floats of scratch. */
typedef struct {
    const cpu_state *s;
    const mx_exec *x;
    const mx_gemm *gm;
    int64_t pm, pn;
    int64_t parts;     /* tasks per product, each part_rows rows of y (the last the rest) */
    int64_t part_rows;
    bool c_is_y;       /* the residual is y itself, in place */
    size_t need;       /* scratch floats per thread; 0: all f32, no copies */
    atomic_bool short_of_memory;
} products_task;

/* Rows [r0, r1) of product (o, b) of the group, panel by panel, copies
 * made in scratch. */
static void one_product(const products_task *t, int64_t o, int64_t b, int64_t r0, int64_t r1, float *scratch) {
    const cpu_state *s = t->s;
    const mx_exec *x = t->x;
    const mx_gemm *gm = t->gm;
    int64_t pm = t->pm, pn = t->pn;
    float *next = scratch;
    int64_t unused;
    const float *bias =
        gm->bias == MX_NONE ? NULL : sub_f32(s, x, (stored){gm->bias, 0, gm->n}, 0, 1, 0, gm->n, &next, &unused);
    f32_mat A = {0};
    stored sa = at_product(&gm->a, o, b);
    if (pm == gm->m) /* A whole: once per product */
        A.p = gm->a.trans ? sub_f32(s, x, sa, 0, gm->k, 0, gm->m, &next, &A.ld)
                          : sub_f32(s, x, sa, 0, gm->m, 0, gm->k, &next, &A.ld);
    float *cols = next;
    for (int64_t j0 = 0; j0 < gm->n; j0 += pn) {
        int64_t n = gm->n - j0 < pn ? gm->n - j0 : pn;
        next = cols;
        f32_mat B = {0};
        B.p = gm->b.trans ? sub_f32(s, x, at_product(&gm->b, o, b), j0, n, 0, gm->k, &next, &B.ld)
                          : sub_f32(s, x, at_product(&gm->b, o, b), 0, gm->k, j0, n, &next, &B.ld);
        float *rows = next;
        for (int64_t i0 = r0; i0 < r1; i0 += pm) {
            int64_t m = r1 - i0 < pm ? r1 - i0 : pm, ldy;
            next = rows;
            if (pm < gm->m)
                A.p = gm->a.trans ? sub_f32(s, x, sa, 0, gm->k, i0, m, &next, &A.ld)
                                  : sub_f32(s, x, sa, i0, m, 0, gm->k, &next, &A.ld);
            float *y = sub_f32(s, x, at_product(&gm->y, o, b), i0, m, j0, n, &next, &ldy);
            f32_mat C = {0};
            if (gm->c.value != MX_NONE && t->c_is_y)
                C = (f32_mat){y, ldy};
            else if (gm->c.value != MX_NONE)
                C.p = gm->c.trans ? sub_f32(s, x, at_product(&gm->c, o, b), j0, n, i0, m, &next, &C.ld)
                                  : sub_f32(s, x, at_product(&gm->c, o, b), i0, m, j0, n, &next, &C.ld);
            product(s->blas, gm, m, n, A, B, C, bias ? bias + j0 : NULL, y, ldy);
            if (!is_f32(s, gm->y.value))
                pack_rows(s, x, at_product(&gm->y, o, b), i0, m, j0, n, y);
        }
    }
}

static void products(void *ctx, int64_t lo, int64_t hi) {
    products_task *t = ctx;
    float *scratch = t->need ? malloc(t->need * sizeof *scratch) : NULL;
    if (t->need && !scratch) {
        atomic_store(&t->short_of_memory, true);
        return;
    }
    for (int64_t q = lo; q < hi; q++) {
        int64_t p = q / t->parts, r0 = q % t->parts * t->part_rows;
        one_product(t, p / t->gm->batch, p % t->gm->batch, r0, r0 + t->part_rows < t->gm->m ? r0 + t->part_rows : t->gm->m,
                    scratch);
    }
    free(scratch);
}

static mx_status matmul(cpu_state *s, const mx_exec *x, int group, mx_diag *d) {
    const mx_gemm *gm = &s->gemms[group];
    if (gm->y.trans)
        return mx_fail(d, MX_ERR_INVALID, "cpu: group %d (matmul): a transposed result is not supported", group);
    const mx_graph *g = s->p->g;
    bool all_f32 = is_f32(s, gm->a.value) && is_f32(s, gm->b.value) && is_f32(s, gm->y.value) &&
                   is_f32(s, gm->c.value) && is_f32(s, gm->bias);
    if (all_f32 && gm->k <= MX_SMALL_K) {
        mx_cpu_small_products(s->pool, gm, s->tiles[group].tasks,
                              (mx_small_operands){mx_exec_value_ptr(x, gm->a.value), mx_exec_value_ptr(x, gm->b.value),
                                                  gm->c.value == MX_NONE ? NULL : mx_exec_value_ptr(x, gm->c.value),
                                                  mx_exec_value_ptr(x, gm->y.value),
                                                  gm->bias == MX_NONE ? NULL : mx_exec_value_ptr(x, gm->bias)});
        return MX_OK;
    }
    bool a_param = mx_graph_value_is_param(g, gm->a.value), b_param = mx_graph_value_is_param(g, gm->b.value);
    /* Panels of y: f32, the product whole, in place; else PANEL rows with all
     * of B, or PANEL columns with all of A when A is the weight and B the
     * activation (W u), so that only the weight is copied whole. */
    bool by_columns = !all_f32 && a_param && !b_param;
    int64_t pm = all_f32 || by_columns ? gm->m : PANEL, pn = by_columns ? PANEL : gm->n;
    if (pm > gm->m)
        pm = gm->m;
    if (pn > gm->n)
        pn = gm->n;
    /* scratch: a panel of A, B, C and y, the bias */
    size_t a_n = (size_t)(pm * gm->k), b_n = (size_t)(gm->k * pn), cy = (size_t)(2 * pm * pn);
    products_task t = {.s = s, .x = x, .gm = gm, .pm = pm, .pn = pn,
                       .need = all_f32 ? 0 : a_n + b_n + cy + (size_t)gm->n};
    t.c_is_y = gm->c.value == gm->y.value && gm->c.offset == gm->y.offset && !gm->c.trans && gm->c.ld == gm->y.ld &&
               gm->c.batch_stride == gm->y.batch_stride && gm->c.outer_stride == gm->y.outer_stride;
    atomic_init(&t.short_of_memory, false);
    int threads = mx_cpu_pool_threads(s->pool);
    int64_t n_products = gm->outer * gm->batch;
    mxs_split plan = mxs_split_plan(gm->m, gm->n, gm->k, n_products, all_f32, threads, s->tiles[group].tasks);
    bool split = plan.split;
    t.parts = plan.parts, t.part_rows = plan.part_rows;
    if (t.parts > 1)
        t.pm = t.part_rows; /* a share is one panel: A read at its rows */
    if (!all_f32) {
        size_t held = (cy + (a_param ? 0 : a_n) + (b_param ? 0 : b_n)) * (split ? (size_t)threads : 1);
        s->copies_peak = held * sizeof(float) > s->copies_peak ? held * sizeof(float) : s->copies_peak;
    }
    if (split)
        s->blas->set_num_threads(1);
    else
        mx_cpu_pool_rest(s->pool); /* OpenBLAS's threads take the cores */
    mx_cpu_pool_run(s->pool, n_products * t.parts, plan.grain, products, &t);
    if (split)
        s->blas->set_num_threads(threads);
    if (atomic_load(&t.short_of_memory))
        return mx_fail(d, MX_ERR_NOMEM, "cpu: group %d (matmul): out of memory for %zu f32 elements", group, t.need);
    return MX_OK;
}

/* ---- the backend ------------------------------------------------------------------------------ */

/* The tiles of group g (llvm_kernel.h). A scan: the lanes decomposition
 * with one lane per row and up to a vector's worth of rows (channels) per
 * block, which the lowering runs as vector lanes, each row's states in
 * registers. No block may run past the last row (a return only some lanes
 * take), so the lanes divide the rows: the most that divide a group's
 * channels (15 of ViM2-T's 150, run as 16 lanes with one masked off),
 * whose rows share (b, g) and stage B and C once per block; else, when
 * more do, the most that divide all the rows (each lane then gathers its
 * own B and C). Row kernels' thread count is
 * only checked, the CPU running each row's loops whole; element kernels
 * (elementwise chains, weighted sums, copies and gathers, convs) run a
 * vector's worth of elements per block. */
static mx_tiles cpu_tiles(const mx_target *t, const mx_program *p, int g) {
    mx_tiles tiles = {.threads = 32, .items = 1, .channels = 1, .lanes_per_state = 1, .vector = 1};
    int lanes = vector_lanes(t);
    mx_fusion kind = p->groups[g].kind;
    if (kind == MX_FUSE_ELEMWISE || kind == MX_FUSE_WSUM || kind == MX_FUSE_LAYOUT || kind == MX_FUSE_GATHER ||
        kind == MX_FUSE_CONV)
        tiles.threads = lanes; /* element loops (emit_pointwise.c): a vector of elements per block */
    if (kind != MX_FUSE_SCAN)
        return tiles;
    mx_scan_plan sp;
    mx_diag ignored;
    if (mx_scan_plan_fill(p, g, &sp, &ignored) != MX_OK) { /* the emitter reports it */
        tiles.threads = 1, tiles.items = 64;
        return tiles;
    }
    int staged = lanes, any = lanes;
    while (staged > 1 && (sp.Ch / sp.G) % staged)
        staged--;
    while (any > 1 && (sp.Bt * sp.Ch) % any)
        any--;
    tiles.threads = tiles.channels = 2 * staged > lanes || staged >= any ? staged : any;
    /* 64 steps a chunk, fewer where B and C of many states would not fit
     * (d_state 512: 16) */
    tiles.items = mx_scan_lanes_items(&sp, tiles.channels, 64, t->smem_per_block);
    return tiles;
}

static void cpu_close(void *state) {
    cpu_state *s = state;
    if (s->group_ms && s->runs > 0)
        report_times(s);
    free(s->group_ms);
    mx_walk_close(&s->walk);
    mx_cpu_pool_free(s->pool);
    free(s->kernels);
    free(s->gemms);
    free(s->tiles);
    free(s);
}

static mx_status cpu_open(const mx_target *t, const mx_program *p, const mx_backend_options *o, void **state,
                         mx_diag *d) {
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
    s->group_ms = mx_debug_level() >= 2 ? calloc((size_t)p->n_groups + 1, sizeof *s->group_ms) : NULL;
    mx_codegen_options co;
    mx_status st = mx_backend_codegen_options(t, p, o, &co, &tiles, d);
    if (st == MX_OK && !(s->blas = mx_openblas_get(t, d)))
        st = MX_ERR_IO;
    if (st == MX_OK)
        st = mx_cpu_pool_new(t->threads > 0 ? t->threads : 1, &s->pool, d);
    if (st == MX_OK) {
        s->blas->set_num_threads(t->threads > 0 ? t->threads : 1);
        if (mx_debug_level() >= 1)
            fprintf(stderr, "mixc: cpu: OpenBLAS with its %s kernels\n", s->blas->get_corename());
        s->walk.dev = (mx_exec_device){.name = "cpu", .ctx = s, .reads_host = true, .alloc = cpu_alloc,
                                       .release = cpu_release, .upload = cpu_copy, .download = cpu_copy,
                                       .load = cpu_load, .unload = cpu_unload, .launch = cpu_launch,
                                       .matmul = cpu_matmul};
        st = mx_walk_open(&s->walk, p, &co, d);
    }
    s->tiles = tiles;
    if (st != MX_OK) {
        cpu_close(s);
        return st;
    }
    *state = s;
    return MX_OK;
}

size_t mx_cpu_activation_peak(const void *state) {
    const cpu_state *s = state;
    return (size_t)s->p->arena_bytes + s->copies_peak;
}

/* Wall time of group's launches, without flushing caches: in a forward
 * pass a kernel mostly reads what the group before it just wrote. */
static mx_status cpu_time_group(void *state, int group, int runs, double *ms, mx_diag *d) {
    cpu_state *s = state;
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms();
        MX_TRY(mx_exec_group(s->walk.x, group, d));
        ms[i] = now_ms() - t0;
    }
    return MX_OK;
}

/* One forward pass, each group's wall time in it: a kernel timed where it
 * runs, after the group before it and with the matmuls' threads about. */
static mx_status cpu_time_pass(void *state, double *ms, mx_diag *d) {
    cpu_state *s = state;
    memset(ms, 0, (size_t)s->p->n_groups * sizeof *ms);
    s->pass_ms = ms;
    mx_status st = mx_walk_forward(state, d);
    if (st == MX_OK)
        st = mx_walk_sync(state, d);
    s->pass_ms = NULL;
    return st;
}

const mx_backend mx_backend_cpu = {.device = MX_DEVICE_CPU, .open = cpu_open, .upload = mx_walk_upload,
                                   .forward = mx_walk_forward, .sync = mx_walk_sync, .download = mx_walk_download,
                                   .close = cpu_close, .time_group = cpu_time_group, .time_pass = cpu_time_pass,
                                   .tiles = cpu_tiles};
