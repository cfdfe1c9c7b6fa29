/* backend_cuda.c: the GPU as a device (backend.h).
 *
 * Code generated for the target (read off GPU 0), its programs compiled by
 * NVRTC through the kernel cache and loaded (gpu.h); the first forward pass
 * launches directly, the second is captured into a CUDA graph, and it and
 * every later one are its replay (MIXC_NO_GRAPHS=1: direct launches). mx_time times each pass with events, the L2 flushed
 * before each with flush_l2. MIXC_DEBUG=2 times each group of the first run
 * with events. */
#include <stdlib.h>

#include "backend.h"
#include "gpu.h"
#include "tune.h"

typedef struct {
    mx_gpu *gpu;
    mx_module m;
    mx_gpu_program *gp;
    mx_gpu_options o;
    bool flush_l2;
    bool profiled;
} cuda_state;

static void cuda_close(void *state) {
    cuda_state *s = state;
    mx_gpu_program_free(s->gp);
    mx_module_free(&s->m);
    mx_gpu_close(s->gpu);
    free(s);
}

static mx_status cuda_open(const mx_target *t, const mx_program *p, const mx_backend_options *o, void **state,
                           mx_diag *d) {
    cuda_state *s = calloc(1, sizeof *s);
    if (!s)
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", p->g->name);
    mx_gpu_options_from_env(&s->o);
    s->flush_l2 = o->flush_l2;
    mx_status st = mx_gpu_open(&s->gpu, d);
    if (st == MX_OK && mx_gpu_sm(s->gpu) != t->sm)
        st = mx_fail(d, MX_ERR_INVALID, "target %s is sm_%d, but GPU 0 (%s) is sm_%d", t->name, t->sm,
                     s->gpu->cu->name, mx_gpu_sm(s->gpu));
    mx_tiles *tiles = NULL;
    mx_codegen_options co;
    if (st == MX_OK)
        st = mx_backend_codegen_options(t, p, o, &co, &tiles, d);
    if (st == MX_OK)
        st = mx_codegen(p, &co, &s->m, d);
    free(tiles);
    if (st == MX_OK)
        st = mx_gpu_load(s->gpu, t, p, &s->m, NULL, &s->gp, d);
    if (st != MX_OK) {
        cuda_close(s);
        return st;
    }
    *state = s;
    return MX_OK;
}

static mx_status cuda_upload(void *state, const mx_buffers *b, mx_diag *d) {
    return mx_exec_upload(mx_gpu_program_exec(((cuda_state *)state)->gp), b, d);
}

static mx_status cuda_forward(void *state, mx_diag *d) {
    cuda_state *s = state;
    return mx_gpu_forward(s->gp, s->o.graphs, d);
}

static mx_status cuda_sync(void *state, mx_diag *d) { return mx_gpu_sync(((cuda_state *)state)->gpu, d); }

static mx_status cuda_download(void *state, mx_buffers *b, mx_diag *d) {
    cuda_state *s = state;
    MX_TRY(mx_exec_download(mx_gpu_program_exec(s->gp), b, d));
    if (s->o.debug >= 2 && !s->profiled) {
        s->profiled = true;
        MX_TRY(mx_gpu_profile(s->gp, s->o.out ? s->o.out : stderr, d));
    }
    return MX_OK;
}

static mx_status cuda_time(void *state, int runs, double *ms, mx_diag *d) {
    cuda_state *s = state;
    return mx_gpu_time(s->gp, s->o.graphs, s->flush_l2, runs, ms, d);
}

static mx_status cuda_time_group(void *state, int group, int runs, double *ms, mx_diag *d) {
    return mx_gpu_time_group(((cuda_state *)state)->gp, group, runs, ms, d);
}

const mx_backend mx_backend_cuda = {.device = MX_DEVICE_CUDA, .open = cuda_open, .upload = cuda_upload,
                                    .forward = cuda_forward, .sync = cuda_sync, .download = cuda_download,
                                    .time = cuda_time, .close = cuda_close, .time_group = cuda_time_group};
