/* rewrite.c: emit a new graph while walking an old one (see program.h).
 * Every graph-changing pass is a per-node rule over this walk, so node order
 * stays a valid schedule and ids stay dense without any patching. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "program.h"

int mx_rewrite_input(const mx_rewriter *rw, int node, int i) {
    int v = mx_node_input(rw->old, node, i);
    return v == MX_NONE ? MX_NONE : rw->map[v];
}

static void copy_attrs(mx_graph *dst, int dst_node, const mx_graph *src, int src_node) {
    const mx_attr_spec *spec = mx_ops[src->nodes[src_node].op].attrs;
    for (int s = 0; spec[s].key != MX_A_NONE; s++) {
        const mx_attr *a = &src->nodes[src_node].attr[s];
        dst->nodes[dst_node].attr[s] = *a;
        if (spec[s].kind == MX_AK_INTS || spec[s].kind == MX_AK_ENUMS)
            mx_node_set_ints(dst, dst_node, spec[s].key, a->v, a->n);
    }
}

/* A failure here is a pass that built something wrong. */
void mx_rewrite_type(mx_rewriter *rw, int node, const char *what) {
    if (rw->status != MX_OK || mx_ops[rw->g->nodes[node].op].fusion == MX_FUSE_SOURCE)
        return;
    mx_diag inner;
    if (mx_graph_infer_node(rw->g, node, &inner) != MX_OK)
        rw->status = mx_fail(rw->diag, MX_ERR_INVALID, "internal: %s: %s", what, inner.msg);
}

int mx_rewrite_emit(mx_rewriter *rw, mx_op op, const int *inputs, int n_in, int n_out, int template_node) {
    int node = mx_graph_add_node(rw->g, op, inputs, n_in, n_out);
    if (template_node >= 0) {
        assert(rw->old->nodes[template_node].op == op);
        copy_attrs(rw->g, node, rw->old, template_node);
        rw->g->nodes[node].line = rw->old->nodes[template_node].line;
    }
    mx_rewrite_type(rw, node, "a rewrite made an ill-typed node");
    return node;
}

int mx_rewrite_copy(mx_rewriter *rw, int node) {
    const mx_node *old = &rw->old->nodes[node];
    int inputs[80];
    assert(old->n_in <= 80);
    for (int i = 0; i < old->n_in; i++)
        inputs[i] = mx_rewrite_input(rw, node, i);
    int copy = mx_graph_add_node(rw->g, old->op, inputs, old->n_in, old->n_out);
    copy_attrs(rw->g, copy, rw->old, node);
    rw->g->nodes[copy].line = old->line;
    for (int i = 0; i < old->n_out; i++) {
        const mx_value *ov = &rw->old->values[old->first_out + i];
        int nv = mx_node_output(rw->g, copy, i);
        rw->g->values[nv].type = ov->type; /* sources keep their declared type */
        if (ov->name)
            mx_value_set_name(rw->g, nv, ov->name);
        rw->map[old->first_out + i] = nv;
    }
    mx_rewrite_type(rw, copy, "a rewrite made an ill-typed node");
    return copy;
}

mx_status mx_rewrite(mx_program *p, mx_rewrite_fn fn, void *ctx, mx_diag *d) {
    const mx_graph *old = p->g;
    mx_rewriter rw = {old, mx_graph_new(old->name), malloc((size_t)(old->n_values + 1) * sizeof(int)), d,
                      MX_OK};
    for (int v = 0; v < old->n_values; v++)
        rw.map[v] = MX_NONE;
    for (int n = 0; n < old->n_nodes && rw.status == MX_OK; n++) {
        if (fn && fn(&rw, n, ctx))
            continue;
        mx_rewrite_copy(&rw, n);
    }
    for (int i = 0; i < old->n_outputs && rw.status == MX_OK; i++) {
        int v = rw.map[old->outputs[i]];
        assert(v != MX_NONE && "a rewrite dropped a graph output");
        /* An output keeps its name even when a rule replaced its producer. */
        const char *name = old->values[old->outputs[i]].name;
        if (name && !rw.g->values[v].name)
            mx_value_set_name(rw.g, v, name);
        mx_graph_add_output(rw.g, v);
    }
    free(rw.map);
    if (rw.status != MX_OK) {
        mx_graph_free(rw.g);
        return rw.status;
    }
    mx_graph_free(p->g);
    p->g = rw.g;
    mx_program_drop_annotations(p);
    return MX_OK;
}
