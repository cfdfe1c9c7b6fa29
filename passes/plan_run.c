/* plan_run.c: run a planned program on the reference interpreter with every
 * materialised value inside one arena at its planned offset.
 *
 * Needs: plan (and fuse, when it ran). Changes nothing in the program. The
 * nodes run group by group in the groups' order (not the graph's node order:
 * the plan's times are group indices); a weight runs first, as binding would,
 * and a folded view just before its first reader needs it. Values that live
 * inside a group get their own temporary buffers. So a planner that lets two
 * live values overlap corrupts a result, and comparing with mx_ref_run
 * proves a plan. The reference holds every element as an f32 whatever its
 * dtype, so the arena is indexed in units of the smallest dtype planned: a
 * value at byte offset o holding n elements of s bytes gets the floats
 * [o/unit, o/unit + n*s/unit), room for its n floats. */
#include <stdlib.h>
#include <string.h>

#include "uses.h"

typedef struct {
    const mx_program *p;
    const mx_uses *u;
    bool *emitted;
    int *order;
    int n_order;
} runner;

/* Appends node after what it needs that runs out of group order. */
static void emit(runner *r, int node) {
    const mx_graph *g = r->p->g;
    if (r->emitted[node])
        return;
    for (int i = 0; i < g->nodes[node].n_in; i++) {
        int v = mx_node_input(g, node, i);
        int pn = v == MX_NONE ? -1 : g->values[v].node;
        if (pn >= 0 && (r->u->weight[pn] || mx_ops[g->nodes[pn].op].fusion == MX_FUSE_SOURCE ||
                        mx_view_folded(r->p, pn)))
            emit(r, pn);
    }
    r->emitted[node] = true;
    r->order[r->n_order++] = node;
}

mx_status mx_program_ref_run_planned(const mx_program *p, mx_buffers *b, mx_diag *d) {
    const mx_graph *g = p->g;
    if (!p->planned)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: the program has no memory plan", g->name);
    if (b->count != g->n_values)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: the buffers were made for another graph", g->name);
    mx_uses u;
    mx_uses_init(&u, g);
    runner r = {p, &u, calloc((size_t)g->n_nodes + 1, sizeof(bool)),
                malloc(((size_t)g->n_nodes + 1) * sizeof(int)), 0};
    for (int n = 0; n < g->n_nodes; n++)
        if (u.weight[n])
            emit(&r, n);
    if (p->group_of) {
        for (int k = 0; k < p->n_groups; k++)
            for (int i = 0; i < p->groups[k].n_nodes; i++)
                emit(&r, p->groups[k].nodes[i]);
    }
    for (int n = 0; n < g->n_nodes; n++) /* without fuse: node order; sources */
        emit(&r, n);

    /* The graph again, its nodes in run order; value ids map old -> new. */
    mx_rewriter rw = {g, mx_graph_new(g->name), malloc(((size_t)g->n_values + 1) * sizeof(int)), d, MX_OK};
    for (int v = 0; v < g->n_values; v++)
        rw.map[v] = MX_NONE;
    for (int i = 0; i < r.n_order && rw.status == MX_OK; i++)
        mx_rewrite_copy(&rw, r.order[i]);
    mx_status st = rw.status;
    mx_buffers *rb = st == MX_OK ? mx_buffers_new(rw.g) : NULL;
    size_t unit = 4;
    for (int v = 0; v < g->n_values; v++)
        if (p->slots[v].offset >= 0 && mx_dtype_size(mx_value_type(g, v)->dtype) < unit)
            unit = mx_dtype_size(mx_value_type(g, v)->dtype);
    float *arena = malloc((size_t)(p->arena_bytes / (int64_t)unit) * sizeof(float) + sizeof(float));
    if (st == MX_OK && (!rb || !arena))
        st = mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory for the planned run", g->name);
    bool *borrowed = calloc((size_t)g->n_values + 1, sizeof(bool));
    for (int v = 0; st == MX_OK && v < g->n_values; v++) {
        int nv = rw.map[v], prod = g->values[v].node;
        if (mx_ops[g->nodes[prod].op].fusion == MX_FUSE_SOURCE && b->data[v]) {
            rb->data[nv] = b->data[v];
            borrowed[nv] = true;
        } else if (p->slots[v].offset >= 0) {
            rb->data[nv] = arena + p->slots[v].offset / (int64_t)unit;
            borrowed[nv] = true;
        }
    }
    if (st == MX_OK)
        st = mx_ref_run(rw.g, rb, d);
    for (int i = 0; st == MX_OK && i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (!b->data[v] && !(b->data[v] = malloc((size_t)b->numel[v] * sizeof(float) + sizeof(float))))
            st = mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
        else
            memcpy(b->data[v], rb->data[rw.map[v]], (size_t)b->numel[v] * sizeof(float));
    }
    for (int v = 0; rb && v < rb->count; v++)
        if (borrowed[v])
            rb->data[v] = NULL;
    mx_buffers_free(rb);
    mx_graph_free(rw.g);
    mx_uses_free(&u);
    free(rw.map), free(r.emitted), free(r.order), free(arena), free(borrowed);
    return st;
}
