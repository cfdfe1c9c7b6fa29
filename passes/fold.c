/* fold.c: move what depends only on weights to the init graph.
 *
 * Needs: a verified graph (best after dce, so that nothing dead is moved).
 * Changes: every non-source node whose inputs are all params, consts or
 * results of such nodes ("folded" nodes, e.g. A = -exp(A_log)) leaves the main
 * graph for p->init, which is evaluated once when weights are bound
 * (mx_program_bind_init). The init graph holds
 *   - a `param` for each main-graph param that folded nodes read (same name
 *     and type) and a copy of each const they read,
 *   - the folded nodes, in their order,
 *   - one output per folded result that the main graph still reads (or that
 *     is a graph output).
 * In the main graph each such result becomes a `param` source of the same
 * type, a "derived" param, named like the result; an unnamed result (or one
 * named like %12, the printer's spelling of an unnamed value) is named
 * "<base>.folded" (".folded.2", ... if taken), base being the first real
 * name up its first-input chain. The init output carries the same name.
 *
 * A folded result that the main graph reads only as scans' A [Ch, N] is
 * stored transposed: the init graph outputs permute(A) [N, Ch] and the main
 * graph reads the derived param through a permute back, which layout makes
 * an index map of the scan's load. The lanes of a scan (the CPU's vector
 * lanes, a GPU warp's threads) hold neighbouring channels, and each loads A
 * for its channel at every state: at [Ch, N] that was one gather of the
 * block's channels per state (N = 16 a block on the CPU: TSM2-ETTh1's
 * channel-mixer scans, L = 7, spent a tenth of their time there), at
 * [N, Ch] one vector (a GPU: whole sectors).
 *
 * A param or const that only folded nodes read is dropped from the main
 * graph here (dce, which runs earlier, could not know); one that nothing
 * reads is left to dce. Folded nodes whose results nobody reads still move
 * (they are dead); if no output is left, no init graph is made.
 *
 * When p->init exists already (fold run again), new folded nodes are appended
 * to it and a param they read that the init graph already has by name (an
 * original param or an earlier derived one) is taken from there. */
#include <stdlib.h>
#include <string.h>

#include "program.h"

typedef struct {
    const bool *folded;   /* per old node */
    const bool *main_use; /* per old value: read by the main graph, or a graph output */
    const bool *fold_use; /* per old value: read by a folded node */
    const bool *scan_a;   /* per old value: the main graph reads it only as scans' A */
    mx_rewriter init;     /* old graph -> init graph, walked along with the main rewrite */
} fold_ctx;

static bool is_weight(mx_op op) { return op == MX_OP_PARAM || op == MX_OP_CONST; }

static bool name_taken(const fold_ctx *f, const mx_rewriter *rw, const char *name) {
    return mx_graph_value_find(rw->old, name) >= 0 || mx_graph_value_find(rw->g, name) >= 0 ||
           mx_graph_value_find(f->init.g, name) >= 0;
}

/* A name the printer made up for an unnamed value (%12, %12_1), which a
 * parse turned into a real one: no name to give a param. */
static bool made_up(const char *name) {
    size_t id = strspn(name, "0123456789");
    if (id == 0 || !name[id])
        return id > 0;
    return name[id] == '_' && name[id + 1 + strspn(name + id + 1, "0123456789")] == 0;
}

/* base.suffix, or base.suffix.2, ... if taken: at most 256 characters (the
 * parser's limit), valid in the text IR when base is. */
static const char *fresh_name(const fold_ctx *f, const mx_rewriter *rw, const char *base, const char *suffix,
                              char *buf, size_t size) {
    snprintf(buf, size, "%.240s.%s", base, suffix);
    for (int k = 2; name_taken(f, rw, buf); k++)
        snprintf(buf, size, "%.240s.%s.%d", base, suffix, k);
    return buf;
}

/* The name of derived param v: its own, else a fresh one made from the
 * first real name up its first-input chain. */
static const char *derived_name(const fold_ctx *f, const mx_rewriter *rw, int v, char *buf,
                                size_t size) {
    const mx_graph *g = rw->old;
    const char *own = g->values[v].name;
    if (own && !made_up(own))
        return own;
    const char *base = "folded";
    for (int u = v; u != MX_NONE; u = mx_node_input(g, g->values[u].node, 0))
        if (g->values[u].name && !made_up(g->values[u].name)) {
            base = g->values[u].name;
            break;
        }
    return fresh_name(f, rw, base, "folded", buf, size);
}

/* permute(x) {perm=[1,0]} in rw's new graph. */
static int transpose(mx_rewriter *rw, int x, const char *what) {
    static const int64_t swap[2] = {1, 0};
    int node = mx_graph_add_node(rw->g, MX_OP_PERMUTE, &x, 1, 1);
    mx_node_set_ints(rw->g, node, MX_A_PERM, swap, 2);
    mx_rewrite_type(rw, node, what);
    return mx_node_output(rw->g, node, 0);
}

/* Old value v, a folded result the main graph reads: an init output there,
 * a derived param here; a scan's A stored transposed, as NAME.transposed,
 * and read as NAME through a permute. */
static void derive(fold_ctx *f, mx_rewriter *rw, int v) {
    char buf[257], stored[257];
    const char *name = derived_name(f, rw, v, buf, sizeof buf), *param_name = name;
    int iv = f->init.map[v];
    if (name != rw->old->values[v].name)
        mx_value_set_name(f->init.g, iv, name);
    bool transposed = f->scan_a[v] && mx_value_type(rw->old, v)->rank == 2;
    if (transposed) {
        iv = transpose(&f->init, iv, "fold: A stored transposed");
        param_name = fresh_name(f, rw, name, "transposed", stored, sizeof stored);
        mx_value_set_name(f->init.g, iv, param_name);
    }
    mx_graph_add_output(f->init.g, iv);
    int param = mx_graph_add_source(rw->g, MX_OP_PARAM, param_name, *mx_value_type(f->init.g, iv));
    rw->map[v] = mx_node_output(rw->g, param, 0);
    if (transposed) {
        rw->map[v] = transpose(rw, rw->map[v], "fold: A read back through a permute");
        mx_value_set_name(rw->g, rw->map[v], name);
    }
}

/* A weight read by folded nodes, into the init graph (once, by name). */
static void weight_to_init(fold_ctx *f, int node) {
    int v = mx_node_output(f->init.old, node, 0);
    const char *name = f->init.old->values[v].name;
    int have = name ? mx_graph_value_find(f->init.g, name) : -1;
    if (have >= 0)
        f->init.map[v] = have;
    else
        mx_rewrite_copy(&f->init, node);
}

static bool rule(mx_rewriter *rw, int node, void *ctx) {
    fold_ctx *f = ctx;
    const mx_node *n = &rw->old->nodes[node];
    bool handled = false;
    if (f->folded[node]) {
        mx_rewrite_copy(&f->init, node);
        for (int i = 0; i < n->n_out && f->init.status == MX_OK; i++)
            if (f->main_use[n->first_out + i])
                derive(f, rw, n->first_out + i);
        handled = true;
    } else if (is_weight(n->op) && f->fold_use[n->first_out]) {
        weight_to_init(f, node);
        handled = !f->main_use[n->first_out]; /* only folded nodes read it */
    }
    if (f->init.status != MX_OK)
        rw->status = f->init.status;
    return handled;
}

mx_status mx_pass_fold(mx_program *p, mx_diag *d) {
    const mx_graph *g = p->g;
    bool *folded = calloc((size_t)g->n_nodes + 1, sizeof *folded);
    bool *main_use = calloc((size_t)g->n_values + 1, sizeof *main_use);
    bool *fold_use = calloc((size_t)g->n_values + 1, sizeof *fold_use);
    bool *scan_a = malloc(((size_t)g->n_values + 1) * sizeof *scan_a);
    int *init_map = malloc(((size_t)g->n_values + 1) * sizeof *init_map);
    mx_status st = MX_OK;
    if (!folded || !main_use || !fold_use || !scan_a || !init_map) {
        st = mx_fail(d, MX_ERR_NOMEM, "fold: out of memory");
        goto done;
    }
    int n_folded = 0;
    for (int v = 0; v < g->n_values; v++)
        scan_a[v] = true;
    for (int n = 0; n < g->n_nodes; n++) {
        const mx_node *node = &g->nodes[n];
        folded[n] = mx_ops[node->op].fusion != MX_FUSE_SOURCE;
        for (int i = 0; i < node->n_in && folded[n]; i++) {
            int v = mx_node_input(g, n, i), src = v == MX_NONE ? -1 : g->values[v].node;
            folded[n] = v == MX_NONE || folded[src] || is_weight(g->nodes[src].op);
        }
        for (int i = 0; i < node->n_in; i++) {
            int v = mx_node_input(g, n, i);
            if (v != MX_NONE)
                (folded[n] ? fold_use : main_use)[v] = true;
            if (v != MX_NONE && !folded[n] && !(node->op == MX_OP_SELECTIVE_SCAN && i == MX_SCAN_A))
                scan_a[v] = false;
        }
        n_folded += folded[n];
    }
    if (n_folded == 0)
        goto done;
    for (int i = 0; i < g->n_outputs; i++)
        main_use[g->outputs[i]] = true, scan_a[g->outputs[i]] = false;

    bool fresh = !p->init;
    if (fresh) {
        char name[300];
        snprintf(name, sizeof name, "%s_init", g->name);
        p->init = mx_graph_new(name);
    }
    for (int v = 0; v < g->n_values; v++)
        init_map[v] = MX_NONE;
    fold_ctx f = {folded, main_use, fold_use, scan_a, {g, p->init, init_map, d, MX_OK}};
    st = mx_rewrite(p, rule, &f, d);
    if (fresh && (st != MX_OK || p->init->n_outputs == 0)) {
        mx_graph_free(p->init);
        p->init = NULL;
    }
done:
    free(folded);
    free(main_use);
    free(fold_use);
    free(scan_a);
    free(init_map);
    return st;
}
