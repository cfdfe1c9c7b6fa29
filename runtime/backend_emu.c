/* backend_emu.c: generated CUDA under host emulation as a device (backend.h).
 *
 * Code is generated for the target's GPU profile and run by the executor's
 * walk over the emulation's device table (backend_walk.h): the planned
 * arena, the matmul groups as cuBLASLt would receive them, kernels as
 * fibers. */
#include <stdlib.h>

#include "backend_walk.h"
#include "emu.h"
#include "tune.h"

typedef struct {
    mx_walk walk; /* first: the walk's functions take the state */
    mx_emu_module *mod;
} emu_state;

static void emu_close(void *state) {
    emu_state *s = state;
    mx_walk_close(&s->walk);
    free(s);
}

static mx_status emu_open(const mx_target *t, const mx_program *p, const mx_backend_options *o, void **state,
                         mx_diag *d) {
    emu_state *s = calloc(1, sizeof *s);
    if (!s)
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", p->g->name);
    s->walk.dev = mx_exec_emu_device(&s->mod);
    mx_tiles *tiles = NULL;
    mx_codegen_options co;
    mx_status st = mx_backend_codegen_options(t, p, o, &co, &tiles, d);
    if (st == MX_OK)
        st = mx_walk_open(&s->walk, p, &co, d);
    free(tiles);
    if (st != MX_OK) {
        emu_close(s);
        return st;
    }
    *state = s;
    return MX_OK;
}

const mx_backend mx_backend_emu = {.device = MX_DEVICE_EMU, .open = emu_open, .upload = mx_walk_upload,
                                   .forward = mx_walk_forward, .sync = mx_walk_sync, .download = mx_walk_download,
                                   .close = emu_close};
