/* backend_walk.h: the part of a backend (backend.h) that is the executor's
 * walk (exec.h) over a device table of the backend's own: host emulation
 * (backend_emu.c) and the CPU (cpu.c). The backend's state starts with an
 * mx_walk, so these functions serve as its table's upload, forward, sync
 * and download. */
#ifndef MX_BACKEND_WALK_H
#define MX_BACKEND_WALK_H

#include "backend.h"
#include "exec.h"

typedef struct {
    mx_module m;        /* the generated code */
    mx_exec_device dev; /* filled by the backend before mx_walk_open */
    mx_exec *x;
} mx_walk;

/* Generates p's code with co and opens the walk over w->dev (which loads
 * the code and places the arena). On failure the caller still calls
 * mx_walk_close. */
mx_status mx_walk_open(mx_walk *w, const mx_program *p, const mx_codegen_options *co, mx_diag *d);
void mx_walk_close(mx_walk *w);

mx_status mx_walk_upload(void *state, const mx_buffers *b, mx_diag *d);
mx_status mx_walk_forward(void *state, mx_diag *d);
mx_status mx_walk_sync(void *state, mx_diag *d); /* the walk returns when its work is done */
mx_status mx_walk_download(void *state, mx_buffers *b, mx_diag *d);

#endif
