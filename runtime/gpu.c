/* gpu.c: a planned program and its module on the GPU (gpu.h). */
#include "gpu.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"

#define STATIC_SMEM_LIMIT (48 << 10) /* beyond this a kernel must opt in */

/* ---- the device ------------------------------------------------------------------ */

mx_status mx_gpu_open(mx_gpu **out, mx_diag *d) {
    *out = NULL;
    mx_gpu *gpu = calloc(1, sizeof *gpu);
    if (!gpu)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory opening the GPU");
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
    mx_status st = mx_cuda_check(gpu->cu, gpu->cu->api.MemcpyHtoD(dst, staged, bytes), "cuMemcpyHtoD", d);
    free(staged);
    return st;
}

mx_status mx_gpu_get(mx_gpu *gpu, float *dst, CUdeviceptr src, int64_t n, mx_dtype t, mx_diag *d) {
    size_t bytes = (size_t)n * mx_dtype_size(t);
    void *staged = malloc(bytes + 1);
    if (!staged)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory converting %lld numbers from %s",
                       (long long)n, mx_dtype_names[t]);
    mx_status st = mx_cuda_check(gpu->cu, gpu->cu->api.MemcpyDtoH(staged, src, bytes), "cuMemcpyDtoH", d);
    if (st == MX_OK)
        mx_storage_unpack(t, staged, n, dst);
    free(staged);
    return st;
}

/* ---- the roofline ---------------------------------------------------------------- */

/* Device-to-device copies measured on this project's lent machines
 * (/work/.library/device/KINDS.md, bytes read + written). */
static const struct {
    const char *name;
    double bytes_per_s;
    const char *source;
} measured_bandwidth[] = {
    {"H100 80GB HBM3", 3.0e12, "measured (H100 SXM, device-to-device copy)"},
    {"H200", 4.3e12, "measured (H200, device-to-device copy)"},
};

mx_gpu_peak mx_gpu_peak_of(const mx_cuda *cu) {
    mx_gpu_peak pk = {(double)cu->mem_clock_khz * 1e3 * (cu->mem_bus_width / 8.0) * 2,
                      (double)cu->sm_count * 16 * cu->clock_khz * 1e3, "memory clock x bus width x 2"};
    for (size_t i = 0; i < sizeof measured_bandwidth / sizeof *measured_bandwidth; i++)
        if (strstr(cu->name, measured_bandwidth[i].name)) {
            pk.bytes_per_s = measured_bandwidth[i].bytes_per_s;
            pk.bandwidth_source = measured_bandwidth[i].source;
        }
    return pk;
}

double mx_gpu_floor_s(const mx_gpu_peak *pk, mx_cost c) {
    double mem = pk->bytes_per_s > 0 ? c.bytes / pk->bytes_per_s : 0;
    double sfu = pk->exps_per_s > 0 ? c.exps / pk->exps_per_s : 0;
    return mem > sfu ? mem : sfu;
}

/* ---- programs -------------------------------------------------------------------- */

void mx_gpu_options_from_env(mx_gpu_options *o) {
    const char *no_graphs = getenv("MIXC_NO_GRAPHS"), *debug = getenv("MIXC_DEBUG");
    *o = (mx_gpu_options){.graphs = !(no_graphs && *no_graphs && no_graphs[0] != '0'),
                          .debug = debug ? atoi(debug) : 0};
}

/* The context of the CUDA device table: one loaded program. */
struct mx_gpu_program {
    mx_gpu *gpu;
    const mx_program *p;
    const mx_module *m;
    mx_exec_device dev;    /* ctx: this */
    mx_exec *x;
    mx_cubin cubin;
    CUmodule module;
    CUfunction *fn;        /* per group: its kernel (generated groups) */
    mx_gemm *gemms;        /* per group: its product (matmul groups) */
    mx_blas_plan **plans;  /* per group: the product's cuBLASLt plan */
    CUevent *events;       /* while profiling: events[k + 1] follows group k */
    CUgraph graph;
    CUgraphExec exec;
};

/* Buffers of the walk are device addresses in pointer clothing. */
_Static_assert(sizeof(void *) == sizeof(CUdeviceptr), "a CUdeviceptr must fit a pointer");
static CUdeviceptr dptr(const void *p) { return (CUdeviceptr)(uintptr_t)p; }

/* ---- the device table ------------------------------------------------------------ */

static mx_status gpu_alloc(void *ctx, size_t bytes, void **out, mx_diag *d) {
    const mx_cuda *cu = ((mx_gpu_program *)ctx)->gpu->cu;
    CUdeviceptr p = 0;
    char what[96];
    snprintf(what, sizeof what, "cuMemAlloc (%zu bytes)", bytes);
    MX_TRY(mx_cuda_check(cu, cu->api.MemAlloc(&p, bytes), what, d));
    *out = (void *)(uintptr_t)p;
    return MX_OK;
}

static void gpu_release(void *ctx, void *ptr) { ((mx_gpu_program *)ctx)->gpu->cu->api.MemFree(dptr(ptr)); }

/* Synchronous copies run on the legacy stream, which the blocking stream of
 * the forward passes is ordered with. */
static mx_status gpu_upload(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d) {
    const mx_cuda *cu = ((mx_gpu_program *)ctx)->gpu->cu;
    return mx_cuda_check(cu, cu->api.MemcpyHtoD(dptr(dst), src, bytes), "cuMemcpyHtoD", d);
}

/* Waits first, so that a fault of the forward pass is named as such. */
static mx_status gpu_download(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d) {
    mx_gpu *gpu = ((mx_gpu_program *)ctx)->gpu;
    MX_TRY(mx_gpu_sync(gpu, d));
    return mx_cuda_check(gpu->cu, gpu->cu->api.MemcpyDtoH(dst, dptr(src), bytes), "cuMemcpyDtoH", d);
}

/* One program: compiled as it is. Several (mx_module.programs): compiled in
 * parallel as relocatable code, each through the cache, then linked into one
 * cubin, so that a cold compile takes about the time of the heaviest program
 * on every core and not the sum (docs/codegen.md, "Programs"). */
mx_status mx_gpu_compile(const mx_module *m, const char *graph_name, int sm, mx_cubin *out, mx_diag *d) {
    char name[160];
    snprintf(name, sizeof name, "%s.cu", graph_name ? graph_name : "mixc");
    int n = m->n_programs;
    if (n <= 1)
        return mx_nvrtc_compile_cached(m->source.s, name, sm, NULL, 0, out, d);
    static const char *const relocatable[] = {"--relocatable-device-code=true"};
    mx_nvrtc_job *jobs = calloc((size_t)n, sizeof *jobs);
    mx_cubin *parts = calloc((size_t)n, sizeof *parts);
    char(*names)[176] = calloc((size_t)n, sizeof *names);
    if (!jobs || !parts || !names) {
        free(jobs), free(parts), free(names);
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory compiling %d programs", name, n);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int q = 0; q < n; q++) {
        snprintf(names[q], sizeof names[q], "%s.%d.cu", graph_name ? graph_name : "mixc", q);
        jobs[q] = (mx_nvrtc_job){m->programs[q].s, names[q], sm, relocatable, 1};
    }
    mx_status st = mx_nvrtc_compile_many(jobs, n, parts, d);
    if (st == MX_OK)
        st = mx_nvrtc_link(parts, n, name, sm, out, d);
    bool hits = true;
    for (int q = 0; q < n; q++) {
        hits &= parts[q].from_cache;
        mx_cubin_free(&parts[q]);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st == MX_OK) {
        out->from_cache = hits;
        out->compile_ms = hits ? 0 : (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    }
    free(jobs), free(parts), free(names);
    return st;
}

static mx_status gpu_load(void *ctx, const mx_program *p, const mx_module *m, mx_diag *d) {
    mx_gpu_program *gp = ctx;
    const mx_cuda *cu = gp->gpu->cu;
    MX_TRY(mx_cuda_check(cu, cu->api.CtxSetCurrent(cu->ctx), "cuCtxSetCurrent", d));
    if (m->n_kernels == 0) /* a graph of matmuls alone */
        return MX_OK;
    MX_TRY(mx_gpu_compile(m, p->g->name, mx_gpu_sm(gp->gpu), &gp->cubin, d));
    mx_status st = mx_cuda_check(cu, cu->api.ModuleLoadData(&gp->module, gp->cubin.cubin), "cuModuleLoadData", d);
    if (st != MX_OK) /* no unload follows a failed load */
        mx_cubin_free(&gp->cubin);
    return st;
}

static void gpu_unload(void *ctx) {
    mx_gpu_program *gp = ctx;
    if (gp->module)
        gp->gpu->cu->api.ModuleUnload(gp->module);
    gp->module = NULL;
    mx_cubin_free(&gp->cubin);
}

static mx_status gpu_launch(void *ctx, int group, const mx_kernel *k, void **params, mx_diag *d) {
    mx_gpu_program *gp = ctx;
    mx_gpu *gpu = gp->gpu;
    char what[128];
    snprintf(what, sizeof what, "cuLaunchKernel(%s)", k->name);
    return mx_cuda_check(gpu->cu,
                         gpu->cu->api.LaunchKernel(gp->fn[group], k->grid[0], k->grid[1], k->grid[2], k->block[0],
                                                   k->block[1], k->block[2], (unsigned)k->smem, gpu->stream,
                                                   params, NULL),
                         what, d);
}

static mx_status gpu_matmul(void *ctx, const mx_exec *x, int group, mx_diag *d) {
    mx_gpu_program *gp = ctx;
    return mx_blas_plan_run(gp->gpu->blas, gp->plans[group], gp->gpu->stream, d);
}

static mx_status gpu_group_done(void *ctx, int group, mx_diag *d) {
    mx_gpu_program *gp = ctx;
    if (!gp->events)
        return MX_OK;
    const mx_cuda *cu = gp->gpu->cu;
    return mx_cuda_check(cu, cu->api.EventRecord(gp->events[group + 1], gp->gpu->stream), "cuEventRecord", d);
}

/* ---- loading --------------------------------------------------------------------- */

/* Group k's function, with its shared memory beyond the static limit opted
 * into. */
static mx_status fetch_kernel(mx_gpu_program *gp, int k, mx_diag *d) {
    const mx_kernel *kn = mx_module_kernel(gp->m, k);
    const mx_cuda *cu = gp->gpu->cu;
    char what[160];
    snprintf(what, sizeof what, "cuModuleGetFunction(%s)", kn->name);
    MX_TRY(mx_cuda_check(cu, cu->api.ModuleGetFunction(&gp->fn[k], gp->module, kn->name), what, d));
    if (kn->smem <= STATIC_SMEM_LIMIT)
        return MX_OK;
    if (kn->smem > (size_t)cu->smem_per_block_optin)
        return mx_fail(d, MX_ERR_INVALID, "kernel %s wants %zu bytes of shared memory; %s allows %d per block",
                       kn->name, kn->smem, cu->name, cu->smem_per_block_optin);
    snprintf(what, sizeof what, "cuFuncSetAttribute(%s, MAX_DYNAMIC_SHARED_SIZE_BYTES)", kn->name);
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

mx_status mx_gpu_load(mx_gpu *gpu, const mx_program *p, const mx_module *m, const mx_buffers *b,
                      mx_gpu_program **out, mx_diag *d) {
    *out = NULL;
    mx_gpu_program *gp = calloc(1, sizeof *gp);
    if (!gp)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory loading graph %s", p->g->name);
    *gp = (mx_gpu_program){.gpu = gpu, .p = p, .m = m};
    gp->dev = (mx_exec_device){"cuda",     gp,         gpu_alloc,  gpu_release, gpu_upload,    gpu_download,
                               gpu_load,   gpu_unload, gpu_launch, gpu_matmul,  gpu_group_done};
    size_t n = (size_t)p->n_groups + 1;
    gp->fn = calloc(n, sizeof *gp->fn);
    gp->gemms = calloc(n, sizeof *gp->gemms);
    gp->plans = calloc(n, sizeof *gp->plans);
    mx_status st = gp->fn && gp->gemms && gp->plans ? MX_OK
                                                    : mx_fail(d, MX_ERR_NOMEM, "out of memory loading graph %s", p->g->name);
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

const mx_cubin *mx_gpu_program_cubin(const mx_gpu_program *gp) { return &gp->cubin; }

mx_exec *mx_gpu_program_exec(mx_gpu_program *gp) { return gp->x; }

/* ---- forward passes -------------------------------------------------------------- */

/* Records the forward pass into a graph; a failed capture is ended so that
 * the stream stays usable. */
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

mx_status mx_gpu_forward(mx_gpu_program *gp, bool graphs, mx_diag *d) {
    const mx_cuda *cu = gp->gpu->cu;
    MX_TRY(mx_cuda_check(cu, cu->api.CtxSetCurrent(cu->ctx), "cuCtxSetCurrent", d));
    if (!graphs)
        return mx_exec_forward(gp->x, d);
    if (!gp->exec)
        MX_TRY(capture(gp, d));
    return mx_cuda_check(cu, cu->api.GraphLaunch(gp->exec, gp->gpu->stream), "cuGraphLaunch", d);
}

mx_status mx_gpu_sync(mx_gpu *gpu, mx_diag *d) {
    return mx_cuda_check(gpu->cu, gpu->cu->api.StreamSynchronize(gpu->stream),
                         "cuStreamSynchronize (after the forward pass)", d);
}

/* ---- per-group timing ------------------------------------------------------------ */

static void print_group(const mx_gpu_program *gp, int k, double ms, const mx_gpu_peak *pk, FILE *out) {
    const mx_kernel *kn = mx_module_kernel(gp->m, k);
    double s = ms * 1e-3;
    if (kn) {
        double floor_s = mx_gpu_floor_s(pk, kn->floor);
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
        st = mx_cuda_check(cu, cu->api.EventSynchronize(ev[n]), "cuEventSynchronize", d);
    if (st == MX_OK) {
        mx_gpu_peak pk = mx_gpu_peak_of(cu);
        double total = 0, floor_total = 0;
        fprintf(out, "mixc: %s, %d groups (floor: %.2f TB/s %s, %.2f Texp/s)\n", cu->name, n,
                pk.bytes_per_s * 1e-12, pk.bandwidth_source, pk.exps_per_s * 1e-12);
        for (int k = 0; k < n && st == MX_OK; k++) {
            float ms = 0;
            st = mx_cuda_check(cu, cu->api.EventElapsedTime(&ms, ev[k], ev[k + 1]), "cuEventElapsedTime", d);
            if (st == MX_OK)
                print_group(gp, k, ms, &pk, out);
            total += ms;
            const mx_kernel *kn = mx_module_kernel(gp->m, k);
            floor_total += kn ? mx_gpu_floor_s(&pk, kn->floor) * 1e3 : 0;
        }
        fprintf(out, "  total %.3f ms (generated kernels' floor %.3f ms)\n", total, floor_total);
    }
    for (int i = 0; i <= n; i++)
        if (ev[i])
            cu->api.EventDestroy(ev[i]);
    free(ev);
    return st;
}

/* ---- one run ------------------------------------------------------------------ */

mx_status mx_exec_cuda(const mx_program *p, const mx_module *m, mx_buffers *b,
                       const mx_gpu_options *o, mx_diag *d) {
    mx_gpu_options env;
    if (!o) {
        mx_gpu_options_from_env(&env);
        o = &env;
    }
    mx_gpu *gpu;
    MX_TRY(mx_gpu_open(&gpu, d));
    mx_gpu_program *gp = NULL;
    mx_status st = mx_gpu_load(gpu, p, m, b, &gp, d);
    if (st == MX_OK)
        st = mx_gpu_forward(gp, o->graphs, d);
    if (st == MX_OK)
        st = mx_exec_download(gp->x, b, d);
    if (st == MX_OK && o->debug >= 2)
        st = mx_gpu_profile(gp, o->out ? o->out : stderr, d);
    mx_gpu_program_free(gp);
    mx_gpu_close(gpu);
    return st;
}
