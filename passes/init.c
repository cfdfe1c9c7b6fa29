/* init.c: binding a program's params, the derived ones (fold) included.
 *
 * After fold the main graph reads params that no weights file holds (A, made
 * from A_log by the init graph), and may no longer read some that it does
 * (A_log). Weights are loaded for the graph as it was before the passes, the
 * source graph, which every param name comes from; mx_program_bind_init
 * carries them over by name and runs the init graph on the reference to make
 * the derived ones. The init graph runs once per binding, so the reference's
 * speed does not matter. */
#include <stdlib.h>
#include <string.h>

#include "program.h"

/* The value named name when a node of op op produces it, else -1. */
static int value_of_op(const mx_graph *g, const char *name, mx_op op) {
    int v = mx_graph_value_find(g, name);
    return v >= 0 && g->nodes[g->values[v].node].op == op ? v : -1;
}

/* The graph output named name, else -1. */
static int output_named(const mx_graph *g, const char *name) {
    int v = mx_graph_value_find(g, name);
    for (int i = 0; v >= 0 && i < g->n_outputs; i++)
        if (g->outputs[i] == v)
            return v;
    return -1;
}

/* dst's value dv := src's value sv, of the same type. */
static mx_status copy_value(const mx_graph *dst, int dv, mx_buffers *db, const mx_graph *src, int sv,
                            const mx_buffers *sb, mx_diag *d) {
    const char *name = dst->values[dv].name;
    const mx_type *dt = mx_value_type(dst, dv), *st = mx_value_type(src, sv);
    if (!mx_type_equal(dt, st)) {
        char a[96], b[96];
        return mx_fail(d, MX_ERR_INVALID, "param %%%s is %s in graph %s but %s in graph %s", name,
                       mx_type_str(dt, a, sizeof a), dst->name, mx_type_str(st, b, sizeof b), src->name);
    }
    if (!sb->data[sv])
        return mx_fail(d, MX_ERR_INVALID, "param %%%s: graph %s has no data for it", name, src->name);
    size_t bytes = (size_t)db->numel[dv] * sizeof(float);
    if (!db->data[dv] && !(db->data[dv] = malloc(bytes ? bytes : 1)))
        return mx_fail(d, MX_ERR_NOMEM, "param %%%s: out of memory", name);
    memcpy(db->data[dv], sb->data[sv], bytes);
    return MX_OK;
}

/* Every param of g from the output of init of its name (when init is given
 * and has one), else from the param of src of its name. */
static mx_status bind_params(const mx_graph *g, mx_buffers *b, const mx_graph *src,
                             const mx_buffers *src_b, const mx_graph *init, const mx_buffers *init_b,
                             mx_diag *d) {
    for (int n = 0; n < g->n_nodes; n++) {
        if (g->nodes[n].op != MX_OP_PARAM)
            continue;
        int v = mx_node_output(g, n, 0);
        const char *name = g->values[v].name;
        if (!name)
            return mx_fail(d, MX_ERR_INVALID, "param %%%d of graph %s has no name (params bind by name)",
                           v, g->name);
        int iv = init ? output_named(init, name) : -1;
        int sv = value_of_op(src, name, MX_OP_PARAM);
        mx_status st;
        if (iv >= 0)
            st = copy_value(g, v, b, init, iv, init_b, d);
        else if (sv >= 0)
            st = copy_value(g, v, b, src, sv, src_b, d);
        else
            st = mx_fail(d, MX_ERR_INVALID, "param %%%s of graph %s: graph %s has no param of that name%s",
                         name, g->name, src->name, init ? " and the init graph does not make it" : "");
        if (st != MX_OK)
            return st;
    }
    return MX_OK;
}

mx_status mx_program_bind_init(const mx_program *p, const mx_graph *src, const mx_buffers *src_b,
                               mx_buffers *b, mx_diag *d) {
    if (b->count != p->g->n_values || src_b->count != src->n_values)
        return mx_fail(d, MX_ERR_INVALID, "bind: the buffers were made for other graphs");
    mx_buffers *init_b = NULL;
    mx_status st = MX_OK;
    if (p->init) {
        if (!(init_b = mx_buffers_new(p->init)))
            return mx_fail(d, MX_ERR_NOMEM, "bind: out of memory");
        st = bind_params(p->init, init_b, src, src_b, NULL, NULL, d);
        if (st == MX_OK)
            st = mx_ref_run(p->init, init_b, d);
    }
    if (st == MX_OK)
        st = bind_params(p->g, b, src, src_b, p->init, init_b, d);
    mx_buffers_free(init_b);
    return st;
}
