/* backend_walk.c: a backend that is the executor's walk (backend_walk.h). */
#include "backend_walk.h"

mx_status mx_walk_open(mx_walk *w, const mx_program *p, const mx_codegen_options *co, mx_diag *d) {
    MX_TRY(mx_codegen(p, co, &w->m, d));
    return mx_exec_open(p, &w->m, &w->dev, NULL, &w->x, d);
}

void mx_walk_close(mx_walk *w) {
    mx_exec_close(w->x);
    mx_module_free(&w->m);
}

mx_status mx_walk_upload(void *state, const mx_buffers *b, mx_diag *d) {
    return mx_exec_upload(((mx_walk *)state)->x, b, d);
}

mx_status mx_walk_forward(void *state, mx_diag *d) { return mx_exec_forward(((mx_walk *)state)->x, d); }

mx_status mx_walk_sync(void *state, mx_diag *d) { return MX_OK; }

mx_status mx_walk_download(void *state, mx_buffers *b, mx_diag *d) {
    return mx_exec_download(((mx_walk *)state)->x, b, d);
}
