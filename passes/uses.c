/* uses.c: reader lists, weights and the view-transparent walks of uses.h. */
#include <stdlib.h>

#include "uses.h"

void mx_uses_init(mx_uses *u, const mx_graph *g) {
    int nv = g->n_values;
    u->first = calloc((size_t)nv + 1, sizeof(int));
    u->reader = malloc(((size_t)g->n_args + 1) * sizeof(int));
    u->weight = calloc((size_t)g->n_nodes + 1, sizeof(bool));
    u->output = calloc((size_t)nv + 1, sizeof(bool));
    int *last = malloc(((size_t)nv + 1) * sizeof(int)); /* dedups a node reading v twice */
    for (int v = 0; v < nv; v++)
        last[v] = -1;
    for (int n = 0; n < g->n_nodes; n++)
        for (int i = 0; i < g->nodes[n].n_in; i++) {
            int v = mx_node_input(g, n, i);
            if (v != MX_NONE && last[v] != n) {
                last[v] = n;
                u->first[v + 1]++;
            }
        }
    for (int v = 0; v < nv; v++) {
        u->first[v + 1] += u->first[v];
        last[v] = -1;
    }
    int *fill = malloc(((size_t)nv + 1) * sizeof(int));
    for (int v = 0; v < nv; v++)
        fill[v] = u->first[v];
    for (int n = 0; n < g->n_nodes; n++) {
        const mx_node *node = &g->nodes[n];
        /* A param-only computation is done once when weights are bound, fold
         * or not; an input is what changes per batch. */
        bool weight = node->op == MX_OP_PARAM || node->op == MX_OP_CONST || node->n_in > 0;
        for (int i = 0; i < node->n_in; i++) {
            int v = mx_node_input(g, n, i);
            if (v == MX_NONE)
                continue;
            weight &= u->weight[g->values[v].node];
            if (last[v] != n) {
                last[v] = n;
                u->reader[fill[v]++] = n;
            }
        }
        u->weight[n] = weight && node->op != MX_OP_INPUT;
    }
    for (int i = 0; i < g->n_outputs; i++)
        u->output[g->outputs[i]] = true;
    free(last);
    free(fill);
}

void mx_uses_free(mx_uses *u) {
    free(u->first);
    free(u->reader);
    free(u->weight);
    free(u->output);
}

bool mx_is_view_op(mx_op op) { return mx_ops[op].fusion == MX_FUSE_LAYOUT || mx_ops[op].fusion == MX_FUSE_GATHER; }

bool mx_view_folded(const mx_program *p, int node) {
    return p->view && p->group_of && p->view[node] == MX_VIEW_CONSUMER;
}

bool mx_view_forward(const mx_graph *g, int node) {
    switch (g->nodes[node].op) {
    case MX_OP_RESHAPE:
    case MX_OP_PERMUTE:
    case MX_OP_FLIP:
    case MX_OP_SCAN_GATHER:
    case MX_OP_SPACE_TO_DEPTH:
        return true;
    case MX_OP_SLICE:
    case MX_OP_SPLIT:
    case MX_OP_SHIFT:
        return true; /* stores under a condition (and shift's zeros) */
    case MX_OP_SCAN_SCATTER:
        return g->nodes[node].n_in == 1;
    default:
        return false;
    }
}

void mx_uses_readers(const mx_program *p, const mx_uses *u, int v, mx_reader_fn fn, void *ctx) {
    for (int k = u->first[v]; k < u->first[v + 1]; k++) {
        int r = u->reader[k];
        if (!mx_view_folded(p, r)) {
            fn(r, ctx);
            continue;
        }
        for (int o = 0; o < p->g->nodes[r].n_out; o++)
            mx_uses_readers(p, u, mx_node_output(p->g, r, o), fn, ctx);
    }
}

void mx_uses_bases(const mx_program *p, int value, mx_base_fn fn, void *ctx) {
    int node = p->g->values[value].node;
    if (mx_view_folded(p, node))
        mx_uses_node_bases(p, node, fn, ctx);
    else
        fn(value, ctx);
}

void mx_uses_node_bases(const mx_program *p, int node, mx_base_fn fn, void *ctx) {
    for (int i = 0; i < p->g->nodes[node].n_in; i++) {
        int v = mx_node_input(p->g, node, i);
        if (v != MX_NONE)
            mx_uses_bases(p, v, fn, ctx);
    }
}
