/* backend_ref.c: the reference interpreter as a device (backend.h).
 *
 * The planned program runs on the reference with every materialised value at
 * its offset in one arena (plan_run.c), so a planner bug shows as a wrong
 * answer here too; without a plan (MIXC_NO_PLANNER) the program's graph runs
 * as it is. The state keeps its own buffers: inputs and params copied at
 * upload, outputs read at download. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

typedef struct {
    const mx_program *p;
    mx_buffers *b;
} ref_state;

static mx_status ref_open(const mx_target *t, const mx_program *p, const mx_backend_options *o, void **state,
                         mx_diag *d) {
    ref_state *s = calloc(1, sizeof *s);
    if (!s || !(s->b = mx_buffers_new(p->g))) {
        free(s);
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", p->g->name);
    }
    s->p = p;
    *state = s;
    return MX_OK;
}

/* Copies the values of b that src holds into dst (allocating). */
static mx_status copy_values(const mx_buffers *src, mx_buffers *dst, mx_diag *d) {
    for (int v = 0; v < src->count; v++) {
        if (!src->data[v])
            continue;
        size_t bytes = (size_t)(src->numel[v] ? src->numel[v] : 1) * sizeof(float);
        if (!dst->data[v] && !(dst->data[v] = malloc(bytes)))
            return mx_fail(d, MX_ERR_NOMEM, "out of memory for %zu bytes", bytes);
        memcpy(dst->data[v], src->data[v], (size_t)src->numel[v] * sizeof(float));
    }
    return MX_OK;
}

static mx_status ref_upload(void *state, const mx_buffers *b, mx_diag *d) {
    ref_state *s = state;
    const mx_graph *g = s->p->g;
    for (int n = 0; n < g->n_nodes; n++) { /* only the sources: outputs are the run's */
        mx_op op = g->nodes[n].op;
        int v = g->nodes[n].first_out;
        if ((op != MX_OP_INPUT && op != MX_OP_PARAM) || !b->data[v])
            continue;
        size_t bytes = (size_t)(b->numel[v] ? b->numel[v] : 1) * sizeof(float);
        if (!s->b->data[v] && !(s->b->data[v] = malloc(bytes)))
            return mx_fail(d, MX_ERR_NOMEM, "out of memory for %zu bytes", bytes);
        memcpy(s->b->data[v], b->data[v], (size_t)b->numel[v] * sizeof(float));
    }
    return MX_OK;
}

static mx_status ref_forward(void *state, mx_diag *d) {
    ref_state *s = state;
    return s->p->planned ? mx_program_ref_run_planned(s->p, s->b, d) : mx_ref_run(s->p->g, s->b, d);
}

static mx_status ref_sync(void *state, mx_diag *d) { return MX_OK; }

static mx_status ref_download(void *state, mx_buffers *b, mx_diag *d) {
    ref_state *s = state;
    const mx_graph *g = s->p->g;
    mx_buffers outs = {.count = g->n_values, .data = calloc((size_t)g->n_values + 1, sizeof(float *)),
                       .numel = s->b->numel};
    if (!outs.data)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->n_outputs; i++)
        outs.data[g->outputs[i]] = s->b->data[g->outputs[i]];
    mx_status st = copy_values(&outs, b, d);
    free(outs.data);
    return st;
}

static void ref_close(void *state) {
    ref_state *s = state;
    mx_buffers_free(s->b);
    free(s);
}

const mx_backend mx_backend_ref = {.device = MX_DEVICE_REF, .open = ref_open, .upload = ref_upload,
                                   .forward = ref_forward, .sync = ref_sync, .download = ref_download,
                                   .close = ref_close};
