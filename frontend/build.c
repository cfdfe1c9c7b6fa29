/* build.c: node and param helpers for the block builders (see build.h). */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"
#include "spec_fields.h"

void bd_layer(mx_builder *b, const char *fmt, ...) {
    struct mx_model *m = b->m;
    char name[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (m->n_layers == m->cap_layers) {
        m->cap_layers = m->cap_layers ? 2 * m->cap_layers : 16;
        m->layer_names = realloc(m->layer_names, (size_t)m->cap_layers * sizeof *m->layer_names);
        assert(m->layer_names);
    }
    m->layer_names[m->n_layers++] = mx_arena_strdup(&b->g->arena, name, strlen(name));
    b->layer = m->layer_names[m->n_layers - 1];
}

/* Keeps the per-node and per-value side tables as long as the graph; they
 * grow when the graph's arrays do, not at every node (a realloc per node is
 * quadratic where realloc always moves, as under ASan). */
static void grow_tables(mx_builder *b) {
    struct mx_model *m = b->m;
    if (m->cap_layer != b->g->cap_nodes) {
        m->cap_layer = b->g->cap_nodes;
        m->layer = realloc(m->layer, (size_t)m->cap_layer * sizeof *m->layer);
    }
    if (m->cap_init != b->g->cap_values) {
        m->cap_init = b->g->cap_values;
        m->init = realloc(m->init, (size_t)m->cap_init * sizeof *m->init);
    }
    assert(m->layer && m->init);
    m->layer[b->g->n_nodes - 1] = b->m->n_layers - 1;
    for (int v = b->g->nodes[b->g->n_nodes - 1].first_out; v < b->g->n_values; v++)
        m->init[v] = (mx_param_init){MX_INIT_CONST, 0};
}

static mx_type make_type(mx_dtype dtype, int rank, const int64_t *dims) {
    mx_type t = {.dtype = dtype, .rank = rank};
    assert(rank <= MX_MAX_RANK);
    memcpy(t.dim, dims, (size_t)rank * sizeof *dims);
    return t;
}

static int source(mx_builder *b, mx_op op, const char *name, int rank, const int64_t *dims) {
    int node = mx_graph_add_source(b->g, op, name, make_type(b->dtype, rank, dims));
    grow_tables(b);
    return mx_node_output(b->g, node, 0);
}

int bd_input(mx_builder *b, const char *name, int rank, const int64_t *dims) {
    return source(b, MX_OP_INPUT, name, rank, dims);
}

int bd_param(mx_builder *b, const char *name, mx_init_kind init, double arg, int rank,
             const int64_t *dims) {
    char full[256];
    snprintf(full, sizeof full, "%s.%s", b->layer, name);
    int v = source(b, MX_OP_PARAM, full, rank, dims);
    b->m->init[v] = (mx_param_init){init, arg};
    return v;
}

int bd_const(mx_builder *b, double value, int rank, const int64_t *dims) {
    int v = source(b, MX_OP_CONST, NULL, rank, dims);
    mx_node_set_float(b->g, b->g->values[v].node, MX_A_VALUE, value);
    return v;
}

int bd_node(mx_builder *b, mx_op op, const int *in, int n_in, int n_out) {
    int node = mx_graph_add_node(b->g, op, in, n_in, n_out);
    grow_tables(b);
    return node;
}

/* The spec fields that give node's inputs their sizes ("" when none, or
 * when the graph is not built from a spec): what to change when it fails. */
static void input_fields(const mx_builder *b, int node, char *buf, size_t size) {
    int64_t dims[8 * MX_MAX_RANK];
    int n = 0;
    buf[0] = 0;
    for (int i = 0; i < b->g->nodes[node].n_in; i++) {
        int v = mx_node_input(b->g, node, i);
        if (v == MX_NONE)
            continue;
        const mx_type *t = mx_value_type(b->g, v);
        for (int k = 0; k < t->rank && n < (int)(sizeof dims / sizeof *dims); k++)
            dims[n++] = t->dim[k];
    }
    if (b->m)
        mx_spec_fields_of_dims(&b->m->spec, dims, n, buf, size);
}

int bd_finish(mx_builder *b, int node) {
    if (b->status == MX_OK) {
        mx_diag inner;
        if (mx_graph_infer_node(b->g, node, &inner) != MX_OK) {
            char fields[512];
            input_fields(b, node, fields, sizeof fields);
            b->status = mx_fail(b->diag, MX_ERR_INVALID, "building %s: %s%s%s", b->layer, inner.msg,
                                fields[0] ? "; its sizes come from " : "", fields);
        }
    }
    if (b->status != MX_OK) {
        /* Keep building with well-formed placeholder types; the error is reported. */
        for (int i = 0; i < b->g->nodes[node].n_out; i++)
            b->g->values[mx_node_output(b->g, node, i)].type = make_type(b->dtype, 1, (int64_t[]){1});
    }
    return mx_node_output(b->g, node, 0);
}

int bd_unary(mx_builder *b, mx_op op, int x) { return bd_finish(b, bd_node(b, op, &x, 1, 1)); }

int bd_binary(mx_builder *b, mx_op op, int x, int y) {
    return bd_finish(b, bd_node(b, op, (int[]){x, y}, 2, 1));
}

const int64_t *bd_dims(mx_builder *b, int v, int *rank) {
    *rank = b->g->values[v].type.rank;
    return b->g->values[v].type.dim;
}

int bd_linear(mx_builder *b, int x, const char *name, int64_t out, bool bias) {
    int rank;
    int64_t in = bd_dims(b, x, &rank)[rank - 1];
    char wname[192], bname[192];
    snprintf(wname, sizeof wname, "%s.weight", name);
    snprintf(bname, sizeof bname, "%s.bias", name);
    double bound = 1 / sqrt((double)in);
    int w = bd_param(b, wname, MX_INIT_UNIFORM, bound, DIMS(out, in));
    int args[3] = {x, w, bias ? bd_param(b, bname, MX_INIT_UNIFORM, bound, DIMS(out)) : MX_NONE};
    return bd_finish(b, bd_node(b, MX_OP_LINEAR, args, bias ? 3 : 2, 1));
}

int bd_norm(mx_builder *b, mx_norm_kind kind, int x, const char *name, double eps) {
    if (kind == MX_NORM_NONE)
        return x;
    int rank;
    int64_t c = bd_dims(b, x, &rank)[rank - 1];
    char wname[192], bname[192];
    snprintf(wname, sizeof wname, "%s.weight", name);
    snprintf(bname, sizeof bname, "%s.bias", name);
    int args[3] = {x, bd_param(b, wname, MX_INIT_CONST, 1, DIMS(c)), MX_NONE};
    bool layer = kind == MX_NORM_LAYERNORM;
    if (layer)
        args[2] = bd_param(b, bname, MX_INIT_CONST, 0, DIMS(c));
    int node = bd_node(b, layer ? MX_OP_LAYERNORM : MX_OP_RMSNORM, args, layer ? 3 : 2, 1);
    mx_node_set_float(b->g, node, MX_A_EPS, eps);
    return bd_finish(b, node);
}

int bd_permute(mx_builder *b, int x, int rank, const int64_t *perm) {
    int node = bd_node(b, MX_OP_PERMUTE, &x, 1, 1);
    mx_node_set_ints(b->g, node, MX_A_PERM, perm, rank);
    return bd_finish(b, node);
}

int bd_reshape(mx_builder *b, int x, int rank, const int64_t *dims) {
    int node = bd_node(b, MX_OP_RESHAPE, &x, 1, 1);
    mx_node_set_ints(b->g, node, MX_A_SHAPE, dims, rank);
    return bd_finish(b, node);
}

int bd_axis_op(mx_builder *b, mx_op op, int x, int axis) {
    int node = bd_node(b, op, &x, 1, 1);
    mx_node_set_int(b->g, node, MX_A_AXIS, axis);
    return bd_finish(b, node);
}

int bd_shift(mx_builder *b, int x, int axis, int k) {
    int node = bd_node(b, MX_OP_SHIFT, &x, 1, 1);
    mx_node_set_int(b->g, node, MX_A_AXIS, axis);
    mx_node_set_int(b->g, node, MX_A_K, k);
    return bd_finish(b, node);
}

int bd_reduce(mx_builder *b, int x, mx_reduce_kind kind, int axis, bool keepdim) {
    int node = bd_node(b, MX_OP_REDUCE, &x, 1, 1);
    mx_node_set_int(b->g, node, MX_A_KIND, kind);
    mx_node_set_int(b->g, node, MX_A_AXIS, axis);
    mx_node_set_int(b->g, node, MX_A_KEEPDIM, keepdim);
    return bd_finish(b, node);
}

void bd_split(mx_builder *b, int x, int axis, int n, const int64_t *sizes, int *out) {
    int node = bd_node(b, MX_OP_SPLIT, &x, 1, n);
    mx_node_set_int(b->g, node, MX_A_AXIS, axis);
    mx_node_set_ints(b->g, node, MX_A_SIZES, sizes, n);
    bd_finish(b, node);
    for (int i = 0; i < n; i++)
        out[i] = mx_node_output(b->g, node, i);
}

/* weighted_sum takes the weights and at most this many inputs (ops.def). */
#define WSUM_MAX_IN 64

/* A longer average (weighted averaging over a deep stage: up to 2 + 2 * depth
 * inputs) is summed in chunks, each weighted by its slice of the weights. */
int bd_weighted_sum(mx_builder *b, int weights, int n, const int *xs) {
    assert(mx_ops[MX_OP_WEIGHTED_SUM].max_in == WSUM_MAX_IN + 1);
    if (n <= WSUM_MAX_IN) {
        int args[WSUM_MAX_IN + 1];
        args[0] = weights;
        memcpy(args + 1, xs, (size_t)n * sizeof *xs);
        return bd_finish(b, bd_node(b, MX_OP_WEIGHTED_SUM, args, n + 1, 1));
    }
    int sum = MX_NONE;
    for (int start = 0; start < n; start += WSUM_MAX_IN) {
        int len = n - start < WSUM_MAX_IN ? n - start : WSUM_MAX_IN;
        int slice = bd_node(b, MX_OP_SLICE, &weights, 1, 1);
        mx_node_set_int(b->g, slice, MX_A_AXIS, 0);
        mx_node_set_int(b->g, slice, MX_A_START, start);
        mx_node_set_int(b->g, slice, MX_A_END, start + len);
        int part = bd_weighted_sum(b, bd_finish(b, slice), len, xs + start);
        sum = sum == MX_NONE ? part : bd_binary(b, MX_OP_ADD, sum, part);
    }
    return sum;
}
