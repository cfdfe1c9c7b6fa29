/* dce.c: dead code elimination.
 *
 * Needs: a verified graph. Changes: drops every node none of whose results
 * the graph outputs use, directly or through other nodes. A node with several
 * results (split, selective_scan) stays whole while any result is used.
 *
 * Inputs are the graph's interface (callers bind data to them by position and
 * name), so every input stays, used or not. Params and consts are the graph's
 * own business: an unused one is dropped like any node, which also keeps a
 * weights file from having to carry tensors the model never reads. (fold
 * runs after dce and drops the params whose only readers it moved to the
 * init graph itself, so the two never undo each other.) */
#include <stdlib.h>

#include "program.h"

static bool rule(mx_rewriter *rw, int node, void *ctx) {
    const bool *live = ctx;
    return !live[node]; /* true: handled, by emitting nothing */
}

mx_status mx_pass_dce(mx_program *p, mx_diag *d) {
    const mx_graph *g = p->g;
    bool *used = calloc((size_t)g->n_values + 1, sizeof *used);
    bool *live = calloc((size_t)g->n_nodes + 1, sizeof *live);
    if (!used || !live) {
        free(used);
        free(live);
        return mx_fail(d, MX_ERR_NOMEM, "dce: out of memory");
    }
    for (int i = 0; i < g->n_outputs; i++)
        used[g->outputs[i]] = true;
    /* Definition order is a schedule: walking it backwards sees every use of
     * a value before the value's producer. */
    int dead = 0;
    for (int n = g->n_nodes - 1; n >= 0; n--) {
        const mx_node *node = &g->nodes[n];
        live[n] = node->op == MX_OP_INPUT;
        for (int i = 0; i < node->n_out; i++)
            live[n] |= used[node->first_out + i];
        for (int i = 0; live[n] && i < node->n_in; i++) {
            int v = mx_node_input(g, n, i);
            if (v != MX_NONE)
                used[v] = true;
        }
        dead += !live[n];
    }
    mx_status st = dead ? mx_rewrite(p, rule, live, d) : MX_OK;
    free(used);
    free(live);
    return st;
}
