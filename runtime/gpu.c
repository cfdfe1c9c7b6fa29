/* gpu.c: a planned program and its module on the GPU (gpu.h). */
#include "gpu.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"

/* ---- the device ------------------------------------------------------------------ */

static mx_status check_wait(const mx_gpu *gpu, CUresult r, const char *what, mx_diag *d);

/* Makes the primary context current on the calling thread. The driver's
 * current context is per thread and mx_cuda_open sets it on the opening
 * thread only, so every entry point here that calls the driver starts with
 * this (a thread-local store in the driver, cheap): mx_run from another
 * thread, or a tuner's jobs, then work. cuCtxSetCurrent also returns an
 * earlier kernel's sticky fault; that one is named as a wait names it. */
static mx_status use_context(const mx_gpu *gpu, mx_diag *d) {
    const mx_cuda *cu = gpu->cu;
    CUresult r = cu->api.CtxSetCurrent(cu->ctx);
    if (r == CUDA_SUCCESS)
        return MX_OK;
    if (r == CUDA_ERROR_INVALID_CONTEXT || r == CUDA_ERROR_INVALID_VALUE || r == CUDA_ERROR_DEINITIALIZED ||
        r == CUDA_ERROR_NOT_INITIALIZED)
        return mx_cuda_check(cu, r, "cuCtxSetCurrent", d);
    return check_wait(gpu, r, "cuCtxSetCurrent", d);
}

/* The same where nothing can be reported (freeing): the frees after it
 * then fail quietly at worst, as they would without it. */
static void use_context_quietly(const mx_cuda *cu) { (void)cu->api.CtxSetCurrent(cu->ctx); }

/* A switch of the environment: set, and neither empty nor "0...". */
static bool switched_on(const char *name) {
    const char *s = getenv(name);
    return s && *s && *s != '0';
}

mx_status mx_gpu_open(mx_gpu **out, mx_diag *d) {
    *out = NULL;
    mx_gpu *gpu = calloc(1, sizeof *gpu);
    if (!gpu)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory opening the GPU");
    gpu->sync_each = switched_on("MIXC_SYNC");
    mx_status st = mx_cuda_open(&gpu->cu, d);
    if (st == MX_OK)
        st = mx_blas_open(&gpu->blas, gpu->cu, d);
    /* A blocking stream: the synchronous copies and memsets, which run on the
     * legacy default stream, stay ordered with it. */
    if (st == MX_OK)
        st = mx_cuda_check(gpu->cu, gpu->cu->api.StreamCreate(&gpu->stream, CU_STREAM_DEFAULT),
                           "cuStreamCreate", d);
    if (st != MX_OK) {
        mx_gpu_close(gpu);
        return st;
    }
    *out = gpu;
    return MX_OK;
}

void mx_gpu_close(mx_gpu *gpu) {
    if (!gpu)
        return;
    if (gpu->cu && gpu->cu->ctx) /* the stream, the workspace: freed in the context */
        use_context_quietly(gpu->cu);
    if (gpu->stream)
        gpu->cu->api.StreamDestroy(gpu->stream);
    mx_blas_close(gpu->blas);
    mx_cuda_close(gpu->cu);
    free(gpu);
}

int mx_gpu_sm(const mx_gpu *gpu) { return 10 * gpu->cu->cc_major + gpu->cu->cc_minor; }

/* Through a host copy in dtype t: the conversions are the walk's
 * (mx_storage_pack / unpack). */
mx_status mx_gpu_put(mx_gpu *gpu, CUdeviceptr dst, const float *src, int64_t n, mx_dtype t,
                     mx_diag *d) {
    size_t bytes = (size_t)n * mx_dtype_size(t);
    void *staged = malloc(bytes + 1);
    if (!staged)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory converting %lld numbers to %s", (long long)n,
                       mx_dtype_names[t]);
    mx_storage_pack(t, src, n, staged);
    mx_status st = use_context(gpu, d);
    if (st == MX_OK)
        st = mx_cuda_check(gpu->cu, gpu->cu->api.MemcpyHtoD(dst, staged, bytes), "cuMemcpyHtoD", d);
    free(staged);
    return st;
}

mx_status mx_gpu_get(mx_gpu *gpu, float *dst, CUdeviceptr src, int64_t n, mx_dtype t, mx_diag *d) {
    size_t bytes = (size_t)n * mx_dtype_size(t);
    void *staged = malloc(bytes + 1);
    if (!staged)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory converting %lld numbers from %s",
                       (long long)n, mx_dtype_names[t]);
    mx_status st = use_context(gpu, d);
    if (st == MX_OK)
        st = mx_cuda_check(gpu->cu, gpu->cu->api.MemcpyDtoH(staged, src, bytes), "cuMemcpyDtoH", d);
    if (st == MX_OK)
        mx_storage_unpack(t, staged, n, dst);
    free(staged);
    return st;
}

/* ---- the roofline ---------------------------------------------------------------- */

double mx_gpu_floor_s(const mx_target *t, mx_cost c) {
    double mem = t->bytes_per_s > 0 ? c.bytes / t->bytes_per_s : 0;
    double sfu = t->exps_per_s > 0 ? c.exps / t->exps_per_s : 0;
    return mem > sfu ? mem : sfu;
}

/* ---- programs -------------------------------------------------------------------- */

void mx_gpu_options_from_env(mx_gpu_options *o) {
    const char *debug = getenv("MIXC_DEBUG");
    *o = (mx_gpu_options){.graphs = !switched_on("MIXC_NO_GRAPHS") && !switched_on("MIXC_SYNC"),
                          .debug = debug ? atoi(debug) : 0};
}

/* The context of the CUDA device table: one loaded program. */
struct mx_gpu_program {
    mx_gpu *gpu;
    const mx_target *t;
    const mx_program *p;
    const mx_module *m;
    mx_exec_device dev;    /* ctx: this */
    mx_exec *x;
    mx_cubin *cubins;      /* per program of m */
    CUmodule *modules;     /* per program of m */
    int n_modules;         /* loaded */
    CUfunction *fn;        /* per group: its kernel (generated groups) */
    mx_gemm *gemms;        /* per group: its product (matmul groups) */
    mx_blas_plan **plans;  /* per group: the product's cuBLASLt plan */
    CUevent *events;       /* while profiling: events[k + 1] follows group k */
    CUgraph graph;
    CUgraphExec exec;
    bool warm;             /* a whole forward pass ran with direct launches: the next may be captured */
    bool direct;           /* the capture failed: direct launches from then on */
    CUevent start, stop;   /* mx_gpu_time */
    CUdeviceptr flush;     /* mx_gpu_time's L2 flush: 2 x the target's L2 */
    size_t flush_bytes;
};

/* Buffers of the walk are device addresses in pointer clothing. */
_Static_assert(sizeof(void *) == sizeof(CUdeviceptr), "a CUdeviceptr must fit a pointer");
static CUdeviceptr dptr(const void *p) { return (CUdeviceptr)(uintptr_t)p; }

/* ---- the device table ------------------------------------------------------------ */

/* The walk names what the memory is for (exec.c). The walk's calls that
 * reach the driver outside mx_gpu_load, mx_gpu_forward and the timings
 * (allocations, uploads, downloads) make the context current themselves. */
static mx_status gpu_alloc(void *ctx, size_t bytes, void **out, mx_diag *d) {
    mx_gpu *gpu = ((mx_gpu_program *)ctx)->gpu;
    CUdeviceptr p = 0;
    MX_TRY(use_context(gpu, d));
    MX_TRY(mx_cuda_alloc(gpu->cu, bytes, NULL, &p, d));
    *out = (void *)(uintptr_t)p;
    return MX_OK;
}

static void gpu_release(void *ctx, void *ptr) { ((mx_gpu_program *)ctx)->gpu->cu->api.MemFree(dptr(ptr)); }

/* Synchronous copies run on the legacy stream, which the blocking stream of
 * the forward passes is ordered with. */
static mx_status gpu_upload(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d) {
    const mx_gpu *gpu = ((mx_gpu_program *)ctx)->gpu;
    const mx_cuda *cu = gpu->cu;
    MX_TRY(use_context(gpu, d));
    return mx_cuda_check(cu, cu->api.MemcpyHtoD(dptr(dst), src, bytes), "cuMemcpyHtoD", d);
}

/* Waits first (mx_gpu_sync, which makes the context current), so that a
 * fault of the forward pass is named as such. */
static mx_status gpu_download(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d) {
    mx_gpu *gpu = ((mx_gpu_program *)ctx)->gpu;
    MX_TRY(mx_gpu_sync(gpu, d));
    return mx_cuda_check(gpu->cu, gpu->cu->api.MemcpyDtoH(dst, dptr(src), bytes), "cuMemcpyDtoH", d);
}

mx_status mx_gpu_compile(const mx_module *m, const char *graph_name, int sm, mx_cubin *out, mx_diag *d) {
    mx_nvrtc_job jobs[MX_CODEGEN_MAX_PROGRAMS];
    char names[MX_CODEGEN_MAX_PROGRAMS][160];
    const char *graph = graph_name ? graph_name : "mixc";
    if (m->n_programs > MX_CODEGEN_MAX_PROGRAMS)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: %d programs, at most %d", graph, m->n_programs,
                       MX_CODEGEN_MAX_PROGRAMS);
    for (int q = 0; q < m->n_programs; q++) {
        snprintf(names[q], sizeof names[q], "%s.%d.cu", graph, q);
        jobs[q] = (mx_nvrtc_job){m->programs[q].s, names[q], sm, NULL, 0};
    }
    return mx_nvrtc_compile_many(jobs, m->n_programs, out, d);
}

static void gpu_unload(void *ctx) {
    mx_gpu_program *gp = ctx;
    for (int q = 0; q < gp->n_modules; q++)
        gp->gpu->cu->api.ModuleUnload(gp->modules[q]);
    gp->n_modules = 0;
    for (int q = 0; gp->cubins && q < gp->m->n_programs; q++)
        mx_cubin_free(&gp->cubins[q]);
    free(gp->cubins), free(gp->modules);
    gp->cubins = NULL, gp->modules = NULL;
}

/* Every program compiled (in parallel, through the cache) and loaded: one
 * CUmodule each (in the context mx_gpu_load made current). */
static mx_status gpu_load(void *ctx, const mx_program *p, const mx_module *m, mx_diag *d) {
    mx_gpu_program *gp = ctx;
    const mx_cuda *cu = gp->gpu->cu;
    if (m->n_programs == 0) /* a graph of matmuls alone */
        return MX_OK;
    gp->cubins = calloc((size_t)m->n_programs, sizeof *gp->cubins);
    gp->modules = calloc((size_t)m->n_programs, sizeof *gp->modules);
    mx_status st = gp->cubins && gp->modules
                       ? mx_gpu_compile(m, p->g->name, gp->t->sm, gp->cubins, d)
                       : mx_fail(d, MX_ERR_NOMEM, "out of memory loading graph %s", p->g->name);
    for (int q = 0; st == MX_OK && q < m->n_programs; q++) {
        char what[200];
        snprintf(what, sizeof what, "cuModuleLoadData (program %d of %d)", q + 1, m->n_programs);
        st = mx_cuda_check(cu, cu->api.ModuleLoadData(&gp->modules[q], gp->cubins[q].cubin), what, d);
        gp->n_modules += st == MX_OK;
    }
    if (st != MX_OK) /* the walk unloads only what loaded */
        gpu_unload(gp);
    return st;
}

/* A wait for what the stream ran. A fault there may be any earlier
 * kernel's: without MIXC_SYNC the message says so and how to find which. */
static mx_status check_wait(const mx_gpu *gpu, CUresult r, const char *what, mx_diag *d) {
    if (r == CUDA_SUCCESS)
        return MX_OK;
    mx_diag why;
    mx_status st = mx_cuda_check(gpu->cu, r, what, &why);
    if (gpu->sync_each)
        return mx_fail(d, st, "%s", why.msg);
    return mx_fail(d, st,
                   "the GPU reported a fault while running (%s); kernels run asynchronously, so it may come "
                   "from any kernel or product enqueued before this wait, not only the last: run again with "
                   "MIXC_SYNC=1, which waits after each one (CUDA graphs off), to name the one that fails",
                   why.msg);
}

/* With sync_each, waits for the kernel or product just enqueued: a fault
 * is its own, named by `what`. */
static mx_status wait_group(mx_gpu *gpu, const char *what, mx_diag *d) {
    if (!gpu->sync_each)
        return MX_OK;
    CUresult r = gpu->cu->api.StreamSynchronize(gpu->stream);
    if (r == CUDA_SUCCESS)
        return MX_OK;
    mx_diag why;
    mx_status st = mx_cuda_check(gpu->cu, r, "cuStreamSynchronize", &why);
    return mx_fail(d, st, "%s failed while running (MIXC_SYNC=1 waited after it): %s", what, why.msg);
}

/* "kernel mx_g5_scan (group 5, scan, program mamba_block.1.cu; grid 32 x
 * 1 x 1, block 32 x 1 x 1, 8704 bytes of shared memory)": what a launch
 * failure needs to be found in the generated source. */
static void describe_kernel(const mx_gpu_program *gp, int group, const mx_kernel *k, char *out, size_t size) {
    snprintf(out, size,
             "kernel %s (group %d, %s, program %s.%d.cu; grid %u x %u x %u, block %u x %u x %u, %zu bytes of "
             "shared memory)",
             k->name, group, mx_fusion_names[k->kind], gp->p->g->name, k->program, k->grid[0], k->grid[1],
             k->grid[2], k->block[0], k->block[1], k->block[2], k->smem);
}

static mx_status gpu_launch(void *ctx, int group, const mx_kernel *k, void **params, mx_diag *d) {
    mx_gpu_program *gp = ctx;
    mx_gpu *gpu = gp->gpu;
    char what[400];
    describe_kernel(gp, group, k, what, sizeof what);
    CUresult r = gpu->cu->api.LaunchKernel(gp->fn[group], k->grid[0], k->grid[1], k->grid[2], k->block[0],
                                           k->block[1], k->block[2], (unsigned)k->smem, gpu->stream, params, NULL);
    if (r != CUDA_SUCCESS) {
        mx_diag why;
        mx_status st = mx_cuda_check(gpu->cu, r, "cuLaunchKernel", &why);
        return mx_fail(d, st, "%s did not launch: %s", what, why.msg);
    }
    return wait_group(gpu, what, d);
}

/* "group 3 (matmul, cuBLASLt 24 x 16 x 8, batch 1, into node %x_proj
 * (matmul))" */
static void describe_matmul(const mx_gpu_program *gp, int group, char *out, size_t size) {
    const mx_gemm *gm = &gp->gemms[group];
    const mx_graph *g = gp->p->g;
    char label[160];
    snprintf(out, size, "group %d (matmul, cuBLASLt %lld x %lld x %lld, batch %lld, into %s)", group,
             (long long)gm->m, (long long)gm->n, (long long)gm->k, (long long)(gm->batch * gm->outer),
             mx_node_label(g, g->values[gm->y.value].node, label, sizeof label));
}

static mx_status gpu_matmul(void *ctx, const mx_exec *x, int group, mx_diag *d) {
    mx_gpu_program *gp = ctx;
    char what[400];
    describe_matmul(gp, group, what, sizeof what);
    mx_diag why;
    mx_status st = mx_blas_plan_run(gp->gpu->blas, gp->plans[group], gp->gpu->stream, &why);
    if (st != MX_OK)
        return mx_fail(d, st, "%s: %s", what, why.msg);
    return wait_group(gp->gpu, what, d);
}

static mx_status gpu_group_done(void *ctx, int group, mx_diag *d) {
    mx_gpu_program *gp = ctx;
    if (!gp->events)
        return MX_OK;
    const mx_cuda *cu = gp->gpu->cu;
    return mx_cuda_check(cu, cu->api.EventRecord(gp->events[group + 1], gp->gpu->stream), "cuEventRecord", d);
}

/* ---- loading --------------------------------------------------------------------- */

/* Group k's function, from its program's module, with the shared memory it
 * needs beyond what a block gets without asking opted into. A block's
 * shared memory is the function's static part (its __shared__ arrays, which
 * the driver reports) plus the launch's dynamic bytes, and the limits
 * (48 KiB without the opt-in, the device's opt-in maximum with it) are on
 * the sum: a kernel with 40 KiB static and 10 KiB dynamic needs the opt-in
 * although its dynamic part alone is under 48 KiB. The limits are the
 * device's own, the target's where the driver did not report them. */
static mx_status fetch_kernel(mx_gpu_program *gp, int k, mx_diag *d) {
    const mx_kernel *kn = mx_module_kernel(gp->m, k);
    const mx_cuda *cu = gp->gpu->cu;
    char what[200];
    if (kn->program < 0 || kn->program >= gp->n_modules)
        return mx_fail(d, MX_ERR_INVALID, "kernel %s: program %d, but %d are loaded", kn->name, kn->program,
                       gp->n_modules);
    snprintf(what, sizeof what, "cuModuleGetFunction(%s)", kn->name);
    MX_TRY(mx_cuda_check(cu, cu->api.ModuleGetFunction(&gp->fn[k], gp->modules[kn->program], kn->name), what, d));
    int fixed = 0;
    snprintf(what, sizeof what, "cuFuncGetAttribute(%s, SHARED_SIZE_BYTES)", kn->name);
    MX_TRY(mx_cuda_check(cu, cu->api.FuncGetAttribute(&fixed, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, gp->fn[k]), what,
                         d));
    size_t total = (size_t)(fixed > 0 ? fixed : 0) + kn->smem;
    int plain = cu->smem_per_block > 0 ? cu->smem_per_block : gp->t->smem_per_block;
    int optin = cu->smem_per_block_optin > 0 ? cu->smem_per_block_optin : gp->t->smem_per_block_optin;
    if (total <= (size_t)plain)
        return MX_OK;
    if (total > (size_t)optin)
        return mx_fail(d, MX_ERR_INVALID,
                       "kernel %s (group %d) needs %zu bytes of shared memory per block (%d static + %zu dynamic); "
                       "GPU 0 (%s) allows at most %d per block (opted in)",
                       kn->name, k, total, fixed, kn->smem, cu->name, optin);
    snprintf(what, sizeof what, "cuFuncSetAttribute(%s, MAX_DYNAMIC_SHARED_SIZE_BYTES, %zu; %d static)", kn->name,
             kn->smem, fixed);
    return mx_cuda_check(
        cu, cu->api.FuncSetAttribute(gp->fn[k], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)kn->smem),
        what, d);
}

/* Matmul group k's decoding and its cuBLASLt plan over the walk's buffers. */
static mx_status plan_matmul(mx_gpu_program *gp, int k, mx_diag *d) {
    mx_gemm *gm = &gp->gemms[k];
    MX_TRY(mx_gemm_decode(gp->p, k, gm, d));
    int vals[5] = {gm->a.value, gm->b.value, gm->c.value, gm->y.value, gm->bias};
    CUdeviceptr ptr[5];
    for (int i = 0; i < 5; i++) {
        char label[160];
        ptr[i] = vals[i] == MX_NONE ? 0 : dptr(mx_exec_value_ptr(gp->x, vals[i]));
        if (vals[i] != MX_NONE && !ptr[i])
            return mx_fail(d, MX_ERR_INVALID, "group %d (matmul): %s has no device buffer", k,
                           mx_node_label(gp->p->g, gp->p->g->values[vals[i]].node, label, sizeof label));
    }
    mx_gemm_ptrs gptr = {ptr[0], ptr[1], ptr[2], ptr[3], ptr[4]};
    return mx_blas_plan_new(gp->gpu->blas, gm, &gptr, &gp->plans[k], d);
}

void mx_gpu_program_free(mx_gpu_program *gp) {
    if (!gp)
        return;
    const mx_cuda_api *api = &gp->gpu->cu->api;
    use_context_quietly(gp->gpu->cu); /* free may come from any thread */
    if (gp->start)
        api->EventDestroy(gp->start);
    if (gp->stop)
        api->EventDestroy(gp->stop);
    if (gp->flush)
        api->MemFree(gp->flush);
    if (gp->exec)
        api->GraphExecDestroy(gp->exec);
    if (gp->graph)
        api->GraphDestroy(gp->graph);
    for (int k = 0; gp->plans && k < gp->p->n_groups; k++)
        mx_blas_plan_free(gp->plans[k]);
    mx_exec_close(gp->x);
    free(gp->fn), free(gp->gemms), free(gp->plans);
    free(gp);
}

mx_status mx_gpu_load(mx_gpu *gpu, const mx_target *t, const mx_program *p, const mx_module *m,
                      const mx_buffers *b, mx_gpu_program **out, mx_diag *d) {
    *out = NULL;
    mx_gpu_program *gp = calloc(1, sizeof *gp);
    if (!gp)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory loading graph %s", p->g->name);
    *gp = (mx_gpu_program){.gpu = gpu, .t = t, .p = p, .m = m};
    gp->dev = (mx_exec_device){.name = "cuda", .ctx = gp, .alloc = gpu_alloc, .release = gpu_release,
                               .upload = gpu_upload, .download = gpu_download, .load = gpu_load,
                               .unload = gpu_unload, .launch = gpu_launch, .matmul = gpu_matmul,
                               .group_done = gpu_group_done};
    size_t n = (size_t)p->n_groups + 1;
    gp->fn = calloc(n, sizeof *gp->fn);
    gp->gemms = calloc(n, sizeof *gp->gemms);
    gp->plans = calloc(n, sizeof *gp->plans);
    mx_status st = gp->fn && gp->gemms && gp->plans ? MX_OK
                                                    : mx_fail(d, MX_ERR_NOMEM, "out of memory loading graph %s", p->g->name);
    if (st == MX_OK) /* modules, memory, plans: all in the primary context */
        st = use_context(gpu, d);
    if (st == MX_OK)
        st = mx_exec_open(p, m, &gp->dev, b, &gp->x, d);
    /* Everything a forward pass needs but its launches, now: a capture then
     * records nothing else, and errors show at load. */
    for (int k = 0; st == MX_OK && k < p->n_groups; k++)
        st = p->groups[k].kind == MX_FUSE_MATMUL ? plan_matmul(gp, k, d) : fetch_kernel(gp, k, d);
    if (st != MX_OK) {
        mx_gpu_program_free(gp);
        return st;
    }
    *out = gp;
    return MX_OK;
}

const mx_cubin *mx_gpu_program_cubin(const mx_gpu_program *gp, int q) {
    return q >= 0 && q < gp->n_modules ? &gp->cubins[q] : NULL;
}

mx_exec *mx_gpu_program_exec(mx_gpu_program *gp) { return gp->x; }

/* ---- forward passes -------------------------------------------------------------- */

/* Records the forward pass into a graph (nothing runs); a failed capture is
 * ended so that the stream stays usable. */
static mx_status capture(mx_gpu_program *gp, mx_diag *d) {
    const mx_cuda *cu = gp->gpu->cu;
    CUstream s = gp->gpu->stream;
    MX_TRY(mx_cuda_check(cu, cu->api.StreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                         "cuStreamBeginCapture", d));
    mx_status st = mx_exec_forward(gp->x, d);
    CUgraph graph = NULL;
    CUresult r = cu->api.StreamEndCapture(s, &graph);
    if (st == MX_OK)
        st = mx_cuda_check(cu, r, "cuStreamEndCapture", d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, cu->api.GraphInstantiate(&gp->exec, graph, 0), "cuGraphInstantiateWithFlags", d);
    if (st != MX_OK && graph)
        cu->api.GraphDestroy(graph);
    else
        gp->graph = graph;
    return st;
}

/* One pass of direct launches; a whole one makes the program warm. */
static mx_status direct_forward(mx_gpu_program *gp, mx_diag *d) {
    mx_status st = mx_exec_forward(gp->x, d);
    gp->warm = gp->warm || st == MX_OK;
    return st;
}

/* The program's graph, captured once, after a direct pass. A capture that
 * fails (cuStreamBeginCapture, a launch or product refused while capturing,
 * cuStreamEndCapture, cuGraphInstantiateWithFlags) is said once on stderr,
 * naming the error, and the program runs with direct launches from then on
 * (gp->direct): the direct pass before it worked, so failing every later
 * pass would only stop a program that runs. A fault of an earlier pass
 * that the capture met is not the capture's: the wait names it as such. */
static mx_status make_graph(mx_gpu_program *gp, mx_diag *d) {
    if (gp->exec || gp->direct)
        return MX_OK;
    mx_diag why = {{0}};
    if (capture(gp, &why) == MX_OK)
        return MX_OK;
    MX_TRY(mx_gpu_sync(gp->gpu, d));
    gp->direct = true;
    fprintf(stderr,
            "mixc: warning: graph %s: capturing its forward pass into a CUDA graph failed (%s); running it with "
            "direct launches instead\n",
            gp->p->g->name, why.msg);
    return MX_OK;
}

/* With graphs on, the first forward pass of a program runs its launches
 * directly, uncaptured: the first launch of each kernel loads it (lazy
 * module loading, the driver's default) and cuBLASLt's first products may
 * set up state, and neither belongs in a capture (loading while capturing
 * needs a 12.3 driver; frameworks warm up uncaptured before capturing too).
 * The second pass is captured and replayed, every later one replayed. */
mx_status mx_gpu_forward(mx_gpu_program *gp, bool graphs, mx_diag *d) {
    const mx_cuda *cu = gp->gpu->cu;
    MX_TRY(use_context(gp->gpu, d));
    if (!graphs || gp->gpu->sync_each || gp->direct || !gp->warm)
        return direct_forward(gp, d);
    MX_TRY(make_graph(gp, d));
    if (!gp->exec) /* the capture failed, and said so */
        return direct_forward(gp, d);
    return mx_cuda_check(cu, cu->api.GraphLaunch(gp->exec, gp->gpu->stream), "cuGraphLaunch", d);
}

mx_status mx_gpu_sync(mx_gpu *gpu, mx_diag *d) {
    MX_TRY(use_context(gpu, d));
    return check_wait(gpu, gpu->cu->api.StreamSynchronize(gpu->stream), "cuStreamSynchronize", d);
}

/* ---- timing ---------------------------------------------------------------------- */

/* The events and the flush buffer, made at the first timing. */
static mx_status timing_setup(mx_gpu_program *gp, bool flush, mx_diag *d) {
    const mx_cuda *cu = gp->gpu->cu;
    if (!gp->start)
        MX_TRY(mx_cuda_check(cu, cu->api.EventCreate(&gp->start, CU_EVENT_DEFAULT), "cuEventCreate", d));
    if (!gp->stop)
        MX_TRY(mx_cuda_check(cu, cu->api.EventCreate(&gp->stop, CU_EVENT_DEFAULT), "cuEventCreate", d));
    if (!flush || gp->flush)
        return MX_OK;
    if (gp->t->l2_bytes <= 0)
        return mx_fail(d, MX_ERR_INVALID, "target %s: no L2 size to flush", gp->t->name);
    size_t bytes = 2 * (size_t)gp->t->l2_bytes;
    MX_TRY(mx_cuda_alloc(cu, bytes, "the buffer that flushes the L2 between timed runs", &gp->flush, d));
    gp->flush_bytes = bytes;
    return MX_OK;
}

/* What a timing repeats: a forward pass (arg: graphs) or one group (arg). */
typedef mx_status (*timed_fn)(mx_gpu_program *gp, int arg, mx_diag *d);

static mx_status timed_forward(mx_gpu_program *gp, int graphs, mx_diag *d) { return mx_gpu_forward(gp, graphs, d); }
static mx_status timed_group(mx_gpu_program *gp, int group, mx_diag *d) { return mx_exec_group(gp->x, group, d); }

/* runs of fn, each between two events, the L2 flushed before each with flush. */
static mx_status time_runs(mx_gpu_program *gp, timed_fn fn, int arg, bool flush, int runs, double *ms, mx_diag *d) {
    const mx_cuda *cu = gp->gpu->cu;
    CUstream s = gp->gpu->stream;
    MX_TRY(use_context(gp->gpu, d));
    MX_TRY(timing_setup(gp, flush, d));
    for (int i = 0; i < runs; i++) {
        /* The memset runs on the legacy stream, which the (blocking) stream
         * waits for: the flush ends before the start event. A different
         * byte each time, so that no run finds it already written. */
        if (flush)
            MX_TRY(mx_cuda_check(cu, cu->api.MemsetD8(gp->flush, (unsigned char)i, gp->flush_bytes),
                                 "cuMemsetD8 (L2 flush)", d));
        MX_TRY(mx_cuda_check(cu, cu->api.EventRecord(gp->start, s), "cuEventRecord", d));
        MX_TRY(fn(gp, arg, d));
        MX_TRY(mx_cuda_check(cu, cu->api.EventRecord(gp->stop, s), "cuEventRecord", d));
        MX_TRY(check_wait(gp->gpu, cu->api.EventSynchronize(gp->stop), "cuEventSynchronize (a timed run)", d));
        float e = 0;
        MX_TRY(mx_cuda_check(cu, cu->api.EventElapsedTime(&e, gp->start, gp->stop), "cuEventElapsedTime", d));
        ms[i] = e;
    }
    return MX_OK;
}

/* Neither a program's first pass (direct, with its first-use costs) nor
 * the capture is ever timed, whatever warm-up the caller ran: a program not
 * yet warm runs its direct pass here, the graph is captured (with graphs
 * on), both untimed and waited for; the timed passes are then what every
 * later forward pass is, a replay (or direct launches where the capture
 * failed or graphs are off). */
mx_status mx_gpu_time(mx_gpu_program *gp, bool graphs, bool flush, int runs, double *ms, mx_diag *d) {
    bool capturing = graphs && !gp->gpu->sync_each && !gp->direct && !gp->exec;
    if (!gp->warm || capturing) {
        MX_TRY(use_context(gp->gpu, d));
        if (!gp->warm)
            MX_TRY(direct_forward(gp, d));
        if (capturing)
            MX_TRY(make_graph(gp, d));
        MX_TRY(mx_gpu_sync(gp->gpu, d));
    }
    return time_runs(gp, timed_forward, graphs, flush, runs, ms, d);
}

mx_status mx_gpu_time_group(mx_gpu_program *gp, int group, int runs, double *ms, mx_diag *d) {
    return time_runs(gp, timed_group, group, true, runs, ms, d);
}

/* ---- per-group timing ------------------------------------------------------------ */

static void print_group(const mx_gpu_program *gp, int k, double ms, FILE *out) {
    const mx_kernel *kn = mx_module_kernel(gp->m, k);
    double s = ms * 1e-3;
    if (kn) {
        double floor_s = mx_gpu_floor_s(gp->t, kn->floor);
        fprintf(out, "  group %3d %-12s %-28s %10.2f us %8.1f GB/s %6.1f%% of floor (%.2f us)\n", k,
                mx_fusion_names[kn->kind], kn->name, ms * 1e3, s > 0 ? kn->floor.bytes / s * 1e-9 : 0,
                s > 0 ? 100 * floor_s / s : 0, floor_s * 1e6);
        return;
    }
    const mx_gemm *gm = &gp->gemms[k];
    double flops = 2.0 * (double)gm->m * gm->n * gm->k * gm->batch * gm->outer;
    char shape[64];
    snprintf(shape, sizeof shape, "cuBLASLt %lldx%lldx%lld", (long long)gm->m, (long long)gm->n, (long long)gm->k);
    fprintf(out, "  group %3d %-12s %-28s %10.2f us %8.1f TFLOP/s (batch %lld)\n", k, "matmul", shape,
            ms * 1e3, s > 0 ? flops / s * 1e-12 : 0, (long long)(gm->batch * gm->outer));
}

mx_status mx_gpu_profile(mx_gpu_program *gp, FILE *out, mx_diag *d) {
    const mx_cuda *cu = gp->gpu->cu;
    int n = gp->p->n_groups;
    MX_TRY(use_context(gp->gpu, d));
    CUevent *ev = calloc((size_t)n + 1, sizeof *ev);
    if (!ev)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory for %d events", n + 1);
    mx_status st = MX_OK;
    for (int i = 0; i <= n && st == MX_OK; i++)
        st = mx_cuda_check(cu, cu->api.EventCreate(&ev[i], CU_EVENT_DEFAULT), "cuEventCreate", d);
    /* ev[0] before the pass, ev[k + 1] from the walk's group_done. */
    if (st == MX_OK)
        st = mx_cuda_check(cu, cu->api.EventRecord(ev[0], gp->gpu->stream), "cuEventRecord", d);
    gp->events = ev;
    if (st == MX_OK)
        st = mx_gpu_forward(gp, false, d);
    gp->events = NULL;
    if (st == MX_OK)
        st = check_wait(gp->gpu, cu->api.EventSynchronize(ev[n]), "cuEventSynchronize", d);
    if (st == MX_OK) {
        const mx_target *t = gp->t;
        double total = 0, floor_total = 0;
        fprintf(out, "mixc: %s, %d groups (floor: %.2f TB/s, %s; %.2f Texp/s)\n", t->name, n,
                t->bytes_per_s * 1e-12, t->rates_source, t->exps_per_s * 1e-12);
        for (int k = 0; k < n && st == MX_OK; k++) {
            float ms = 0;
            st = mx_cuda_check(cu, cu->api.EventElapsedTime(&ms, ev[k], ev[k + 1]), "cuEventElapsedTime", d);
            if (st == MX_OK)
                print_group(gp, k, ms, out);
            total += ms;
            const mx_kernel *kn = mx_module_kernel(gp->m, k);
            floor_total += kn ? mx_gpu_floor_s(t, kn->floor) * 1e3 : 0;
        }
        fprintf(out, "  total %.3f ms (generated kernels' floor %.3f ms)\n", total, floor_total);
    }
    for (int i = 0; i <= n; i++)
        if (ev[i])
            cu->api.EventDestroy(ev[i]);
    free(ev);
    return st;
}
