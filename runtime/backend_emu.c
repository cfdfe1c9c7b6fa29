/* backend_emu.c: generated CUDA under host emulation as a device (backend.h).
 *
 * Code is generated for the target's GPU profile and run by the executor's
 * walk over the emulation's device table (exec.h): the planned arena, the
 * matmul groups as cuBLASLt would receive them, kernels as fibers. */
#include <stdlib.h>

#include "backend.h"
#include "emu.h"
#include "exec.h"
#include "tune.h"

typedef struct {
    mx_module m;
    mx_emu_module *mod;
    mx_exec_device dev;
    mx_exec *x;
} emu_state;

static void emu_close(void *state) {
    emu_state *s = state;
    mx_exec_close(s->x);
    mx_module_free(&s->m);
    free(s);
}

static mx_status emu_open(const mx_target *t, const mx_program *p, void **state, mx_diag *d) {
    emu_state *s = calloc(1, sizeof *s);
    if (!s)
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", p->g->name);
    mx_tiles *tiles;
    mx_status st = mx_tune_tiles(p, t, &tiles, d);
    mx_codegen_options co = {.target = t, .tiles = tiles};
    if (st == MX_OK)
        st = mx_codegen(p, &co, &s->m, d);
    free(tiles);
    s->dev = mx_exec_emu_device(&s->mod);
    if (st == MX_OK)
        st = mx_exec_open(p, &s->m, &s->dev, NULL, &s->x, d);
    if (st != MX_OK) {
        emu_close(s);
        return st;
    }
    *state = s;
    return MX_OK;
}

static mx_status emu_upload(void *state, const mx_buffers *b, mx_diag *d) {
    return mx_exec_upload(((emu_state *)state)->x, b, d);
}

static mx_status emu_forward(void *state, mx_diag *d) { return mx_exec_forward(((emu_state *)state)->x, d); }

static mx_status emu_sync(void *state, mx_diag *d) { return MX_OK; }

static mx_status emu_download(void *state, mx_buffers *b, mx_diag *d) {
    return mx_exec_download(((emu_state *)state)->x, b, d);
}

const mx_backend mx_backend_emu = {MX_DEVICE_EMU, emu_open,     emu_upload, emu_forward,
                                   emu_sync,      emu_download, NULL,       emu_close,
                                   NULL,          NULL};
