/* verify.c: mx_graph_verify, every invariant of ir.h checked on a graph that
 * may have been built or edited by hand. Passes are checked with it, so it
 * reads the graph defensively: an id is range-checked before it is followed,
 * and the checks run in an order where each relies only on earlier ones
 * (structure, then value links, then node semantics in definition order,
 * then names and graph outputs). The first violation is reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static bool op_valid(const mx_node *n) { return n->op >= 0 && n->op < MX_OP_COUNT; }

static bool results_valid(const mx_graph *g, const mx_node *n) {
    return n->first_out >= 0 && n->n_out >= 1 && n->first_out <= g->n_values - n->n_out;
}

/* mx_node_label, or "#node (op)" while the node's op or results are too
 * broken for it. */
static const char *node_label(const mx_graph *g, int node, char *buf, size_t size) {
    const mx_node *n = &g->nodes[node];
    if (!op_valid(n))
        snprintf(buf, size, "#%d (op %d)", node, (int)n->op);
    else if (!results_valid(g, n))
        snprintf(buf, size, "#%d (%s)", node, mx_ops[n->op].name);
    else
        mx_node_label(g, node, buf, size);
    return buf;
}

static const char *value_label(const mx_graph *g, int value, char *buf, size_t size) {
    if (g->values[value].name)
        snprintf(buf, size, "%%%s", g->values[value].name);
    else
        snprintf(buf, size, "%%%d", value);
    return buf;
}

static mx_status node_fail(const mx_graph *g, int node, mx_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static mx_status node_fail(const mx_graph *g, int node, mx_diag *d, const char *fmt, ...) {
    char what[1536], label[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mx_fail(d, MX_ERR_INVALID, "node %s: %s", node_label(g, node, label, sizeof label), what);
}

/* ---- structure: ops, arities, argument and result blocks ------------------ */

static mx_status check_structure(const mx_graph *g, int node, mx_diag *d) {
    const mx_node *n = &g->nodes[node];
    if (!op_valid(n))
        return node_fail(g, node, d, "op %d is not an op (there are %d)", (int)n->op, MX_OP_COUNT);
    const mx_op_desc *op = &mx_ops[n->op];
    if (n->n_out < op->min_out || n->n_out > op->max_out)
        return node_fail(g, node, d, "has %d results, outside the op's range [%d, %d]", n->n_out,
                         op->min_out, op->max_out);
    if (!results_valid(g, n))
        return node_fail(g, node, d, "results %d .. %d are not values of the graph (it has %d)",
                         n->first_out, n->first_out + n->n_out - 1, g->n_values);
    if (n->n_in < op->min_in || n->n_in > op->max_in)
        return node_fail(g, node, d, "has %d inputs, outside the op's range [%d, %d]", n->n_in,
                         op->min_in, op->max_in);
    if (n->first_in < 0 || n->first_in > g->n_args - n->n_in)
        return node_fail(g, node, d, "arguments %d .. %d lie outside the argument array (length %d)",
                         n->first_in, n->first_in + n->n_in - 1, g->n_args);
    for (int i = 0; i < n->n_out; i++) {
        const mx_value *v = &g->values[n->first_out + i];
        if (v->node != node || v->index != i)
            return node_fail(g, node, d, "result %d (value %d) links back to node %d, result %d",
                             i + 1, n->first_out + i, v->node, v->index + 1);
    }
    return MX_OK;
}

/* Every value is a result of the node it names: with the results' links
 * above, producers and values correspond one to one. */
static mx_status check_value_links(const mx_graph *g, mx_diag *d) {
    for (int v = 0; v < g->n_values; v++) {
        int node = g->values[v].node, index = g->values[v].index;
        bool owned = node >= 0 && node < g->n_nodes && index >= 0 &&
                     index < g->nodes[node].n_out && g->nodes[node].first_out + index == v;
        if (!owned)
            return mx_fail(d, MX_ERR_INVALID,
                           "graph: value %d claims to be result %d of node %d, which does not produce it",
                           v, index + 1, node);
    }
    return MX_OK;
}

/* ---- semantics: inputs, attributes, types --------------------------------- */

static mx_status check_inputs(const mx_graph *g, int node, mx_diag *d) {
    char name[160], producer[160];
    for (int i = 0; i < g->nodes[node].n_in; i++) {
        int v = mx_node_input(g, node, i);
        if (v == MX_NONE)
            continue;
        if (v < 0 || v >= g->n_values)
            return node_fail(g, node, d, "input %d is value id %d, not a value of the graph (it has %d)",
                             i + 1, v, g->n_values);
        if (g->values[v].node >= node)
            return node_fail(g, node, d, "input %d uses %s before its definition (by node %s)", i + 1,
                             value_label(g, v, name, sizeof name),
                             node_label(g, g->values[v].node, producer, sizeof producer));
    }
    return MX_OK;
}

static mx_status check_attrs(const mx_graph *g, int node, mx_diag *d) {
    const mx_attr_spec *spec = mx_ops[g->nodes[node].op].attrs;
    for (int s = 0; spec[s].key != MX_A_NONE; s++) {
        mx_diag inner;
        if (mx_attr_check(g, node, s, &inner) != MX_OK)
            return node_fail(g, node, d, "%s", inner.msg);
    }
    return MX_OK;
}

/* A stored type that can be a tensor's: known dtype, rank 0..MX_MAX_RANK,
 * dims >= 1 (sources must have one; other nodes one that is inferred). */
static mx_status check_type(const mx_graph *g, int node, int i, mx_diag *d) {
    int v = mx_node_output(g, node, i);
    const mx_type *t = mx_value_type(g, v);
    char name[160];
    value_label(g, v, name, sizeof name);
    if (t->rank == -1)
        return node_fail(g, node, d, "result %d (%s) has no type", i + 1, name);
    if (t->dtype < 0 || t->dtype >= MX_DTYPE_COUNT)
        return node_fail(g, node, d, "result %d (%s) has dtype %d, which is not a dtype", i + 1,
                         name, (int)t->dtype);
    if (t->rank < 0 || t->rank > MX_MAX_RANK)
        return node_fail(g, node, d, "result %d (%s) has rank %d: expected 0 to %d", i + 1, name,
                         t->rank, MX_MAX_RANK);
    for (int k = 0; k < t->rank; k++)
        if (t->dim[k] < 1)
            return node_fail(g, node, d, "result %d (%s) has dim %d = %lld: expected >= 1", i + 1,
                             name, k, (long long)t->dim[k]);
    if (!mx_type_fits(t))
        return node_fail(g, node, d, "result %d (%s) has more than 2^40 elements", i + 1, name);
    return MX_OK;
}

/* The stored result types are what the op's rule gives now: no pass has
 * left a stale type behind. */
static mx_status check_inferred(const mx_graph *g, int node, mx_diag *d) {
    const mx_node *n = &g->nodes[node];
    mx_type out[16];
    mx_diag inner;
    if (mx_ops[n->op].infer(g, node, out, &inner) != MX_OK)
        return node_fail(g, node, d, "%s", inner.msg);
    for (int i = 0; i < n->n_out; i++) {
        int v = mx_node_output(g, node, i);
        if (!mx_type_equal(mx_value_type(g, v), &out[i])) {
            char name[160], stored[96], inferred[96];
            return node_fail(g, node, d, "result %d (%s) has type %s but its inputs give %s", i + 1,
                             value_label(g, v, name, sizeof name),
                             mx_type_str(mx_value_type(g, v), stored, sizeof stored),
                             mx_type_str(&out[i], inferred, sizeof inferred));
        }
    }
    return MX_OK;
}

static mx_status check_semantics(const mx_graph *g, int node, mx_diag *d) {
    MX_TRY(check_inputs(g, node, d));
    MX_TRY(check_attrs(g, node, d));
    for (int i = 0; i < g->nodes[node].n_out; i++)
        MX_TRY(check_type(g, node, i, d));
    if (mx_ops[g->nodes[node].op].fusion == MX_FUSE_SOURCE)
        return MX_OK; /* declared, nothing to infer */
    return check_inferred(g, node, d);
}

/* ---- names and graph outputs ---------------------------------------------- */

typedef struct {
    const char *name;
    int value;
} named_value;

static int by_name(const void *a, const void *b) {
    const named_value *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->value > y->value) - (x->value < y->value);
}

static mx_status check_names(const mx_graph *g, mx_diag *d) {
    named_value *named = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *named);
    if (!named)
        return mx_fail(d, MX_ERR_NOMEM, "graph: out of memory");
    int count = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].name)
            named[count++] = (named_value){g->values[v].name, v};
    qsort(named, (size_t)count, sizeof *named, by_name);
    mx_status st = MX_OK;
    for (int i = 1; i < count && st == MX_OK; i++)
        if (strcmp(named[i - 1].name, named[i].name) == 0)
            st = mx_fail(d, MX_ERR_INVALID, "graph: values %d and %d are both named %%%s",
                         named[i - 1].value, named[i].value, named[i].name);
    free(named);
    return st;
}

static mx_status check_outputs(const mx_graph *g, mx_diag *d) {
    if (g->n_outputs < 1)
        return mx_fail(d, MX_ERR_INVALID, "graph: no outputs");
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] < 0 || g->outputs[i] >= g->n_values)
            return mx_fail(d, MX_ERR_INVALID,
                           "graph: output %d is value id %d, not a value of the graph (it has %d)",
                           i + 1, g->outputs[i], g->n_values);
    return MX_OK;
}

mx_status mx_graph_verify(const mx_graph *g, mx_diag *diag) {
    for (int node = 0; node < g->n_nodes; node++)
        MX_TRY(check_structure(g, node, diag));
    MX_TRY(check_value_links(g, diag));
    for (int node = 0; node < g->n_nodes; node++)
        MX_TRY(check_semantics(g, node, diag));
    MX_TRY(check_names(g, diag));
    return check_outputs(g, diag);
}
