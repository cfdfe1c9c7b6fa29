/* scan_plan.c: recognising a scan group's structure (scan_plan.h). */
#include <string.h>

#include "emit.h"
#include "scan_plan.h"

static bool in_group(const mx_program *p, int group, int node) {
    return node >= 0 && p->group_of[node] == group;
}

/* The node's axis attribute, normalised against its input's rank. */
static int node_axis(const mx_graph *g, int node) {
    return mx_axis(mx_node_int(g, node, MX_A_AXIS), mx_node_input_type(g, node, 0)->rank);
}

static int scan_of_value(const mx_scan_plan *sp, int v) {
    for (int k = 0; k < sp->n_scans; k++)
        if (sp->scan[k].y == v)
            return k;
    return -1;
}

/* A term of a merge (an add tree's leaf or a scan_scatter's input): a scan
 * result seen through shifts and flips of the L axis (members of the group).
 * Returns the scan and sets its sequence placement sign * l + offset, or -1. */
static int merge_leaf(const mx_program *p, int group, mx_scan_plan *sp, int v, int *sign,
                      int64_t *offset) {
    const mx_graph *g = p->g;
    int k = scan_of_value(sp, v);
    if (k >= 0) {
        *sign = 1, *offset = 0;
        return k;
    }
    int node = g->values[v].node;
    if (!in_group(p, group, node) || g->values[v].type.rank != 3)
        return -1;
    mx_op op = g->nodes[node].op;
    if ((op != MX_OP_SHIFT && op != MX_OP_FLIP) || node_axis(g, node) != 2)
        return -1;
    k = merge_leaf(p, group, sp, mx_node_input(g, node, 0), sign, offset);
    if (k < 0)
        return -1;
    if (op == MX_OP_SHIFT) { /* y[i] = x[i - s]: step l moves to p + s */
        *offset += mx_node_int(g, node, MX_A_K);
    } else { /* p -> L-1-p */
        *sign = -*sign;
        *offset = sp->L - 1 - *offset;
    }
    return k;
}

/* Whether value v is an add tree over scan terms; sets the placements of the
 * scans it covers and adds them to *covered. With extras (a Switch of
 * Scans' term), a leaf that is no scan term is an extra term of the sum. */
static bool merge_tree(const mx_program *p, int group, mx_scan_plan *sp, int v, unsigned *covered, bool extras) {
    const mx_graph *g = p->g;
    int sign;
    int64_t offset;
    int k = merge_leaf(p, group, sp, v, &sign, &offset);
    if (k >= 0) {
        if (*covered >> k & 1u)
            return false;
        *covered |= 1u << k;
        sp->scan[k].by_order = false;
        sp->scan[k].sign = sign;
        sp->scan[k].offset = offset;
        return true;
    }
    int node = g->values[v].node;
    if (in_group(p, group, node) && g->nodes[node].op == MX_OP_ADD &&
        mx_type_equal(mx_node_input_type(g, node, 0), mx_node_input_type(g, node, 1)))
        return merge_tree(p, group, sp, mx_node_input(g, node, 0), covered, extras) &&
               merge_tree(p, group, sp, mx_node_input(g, node, 1), covered, extras);
    if (!extras || sp->n_extra == MX_SCAN_MAX || !mx_type_equal(mx_value_type(g, v), mx_value_type(g, sp->scan[0].y)))
        return false;
    sp->extra[sp->n_extra++] = (mx_scan_extra){.value = v, .weight = -1};
    return true;
}

/* Whether v = weighted_sum(w, T_0, ..., T_{K-1}) sums the scans as a Switch
 * of Scans (scan_plan.h): every term [a one-input scan_scatter of] an add
 * tree holding at least one scan. Sets the terms' weights and orders. */
static bool switch_of_scans(const mx_program *p, int group, mx_scan_plan *sp, int node, unsigned *covered) {
    const mx_graph *g = p->g;
    sp->n_extra = 0;
    for (int j = 1; j < g->nodes[node].n_in; j++) {
        int v = mx_node_input(g, node, j), by = g->values[v].node, first_extra = sp->n_extra;
        bool by_order = in_group(p, group, by) && g->nodes[by].op == MX_OP_SCAN_SCATTER && g->nodes[by].n_in == 1 &&
                        node_axis(g, by) == 2;
        mx_scan_order order = MX_ORDER_ROW;
        if (by_order) {
            order = (mx_scan_order)mx_node_attr(g, by, MX_A_ORDERS)->v[0];
            sp->grid_h = mx_node_int(g, by, MX_A_H);
            sp->grid_w = mx_node_int(g, by, MX_A_W);
            v = mx_node_input(g, by, 0);
        }
        unsigned before = *covered;
        if (!merge_tree(p, group, sp, v, covered, true) || *covered == before)
            return false;
        for (int k = 0; k < sp->n_scans; k++)
            if ((*covered & ~before) >> k & 1u)
                sp->scan[k].weight = j - 1, sp->scan[k].by_order = by_order, sp->scan[k].order = order;
        for (int x = first_extra; x < sp->n_extra; x++)
            sp->extra[x].weight = j - 1, sp->extra[x].by_order = by_order, sp->extra[x].order = order;
    }
    sp->weights = mx_node_input(g, node, 0);
    sp->n_terms = g->nodes[node].n_in - 1;
    return true;
}

static mx_status find_merge(const mx_program *p, int group, mx_scan_plan *sp, mx_diag *d) {
    const mx_graph *g = p->g;
    const mx_group *gr = &p->groups[group];
    unsigned all = sp->n_scans == 32 ? ~0u : (1u << sp->n_scans) - 1;
    for (int i = 0; i < gr->n_nodes; i++) {
        int node = gr->nodes[i], v = mx_node_output(g, node, 0);
        if (g->nodes[node].op == MX_OP_SCAN_SCATTER) {
            const mx_attr *orders = mx_node_attr(g, node, MX_A_ORDERS);
            unsigned covered = 0;
            for (int j = 0; j < g->nodes[node].n_in; j++) {
                int sign;
                int64_t offset;
                int k = merge_leaf(p, group, sp, mx_node_input(g, node, j), &sign, &offset);
                if (k < 0 || (covered >> k & 1u))
                    break;
                covered |= 1u << k;
                sp->scan[k].by_order = true;
                sp->scan[k].order = (mx_scan_order)orders->v[j];
                sp->scan[k].sign = sign;
                sp->scan[k].offset = offset;
            }
            if (covered == all && node_axis(g, node) == 2) {
                sp->merge = v;
                sp->grid_h = mx_node_int(g, node, MX_A_H);
                sp->grid_w = mx_node_int(g, node, MX_A_W);
                return MX_OK;
            }
        } else if (g->nodes[node].op == MX_OP_ADD) {
            unsigned covered = 0;
            if (merge_tree(p, group, sp, v, &covered, false) && covered == all) {
                sp->merge = v;
                return MX_OK;
            }
        } else if (g->nodes[node].op == MX_OP_WEIGHTED_SUM) {
            unsigned covered = 0;
            if (switch_of_scans(p, group, sp, node, &covered) && covered == all) {
                sp->merge = v;
                return MX_OK;
            }
            for (int k = 0; k < sp->n_scans; k++)
                sp->scan[k].weight = -1;
            sp->weights = MX_NONE, sp->n_extra = 0, sp->n_terms = 0;
        }
    }
    if (sp->n_scans == 1) {
        sp->merge = sp->scan[0].y;
        sp->scan[0].sign = 1;
        sp->summed = false;
        return MX_OK;
    }
    return mx_fail(d, MX_ERR_INVALID,
                   "scan group %d: %d scans but no scan_scatter or add of shifted scans sums them",
                   group, sp->n_scans);
}

/* The merge's members: M's node and the members between the scans and M,
 * found by walking back from M through the group (the scans excluded), once:
 * a walk forward from every member would cost the whole graph per member. */
static mx_status fill_merge_nodes(const mx_program *p, int group, mx_scan_plan *sp, mx_diag *d) {
    const mx_graph *g = p->g;
    int stack[4 * MX_SCAN_MERGE_MAX], top = 0;
    sp->n_merge_nodes = 0;
    stack[top++] = g->values[sp->merge].node;
    while (top) {
        int node = stack[--top];
        if (!in_group(p, group, node) || g->nodes[node].op == MX_OP_SELECTIVE_SCAN || mx_scan_in_merge(sp, node))
            continue;
        if (sp->n_merge_nodes == MX_SCAN_MERGE_MAX)
            return mx_fail(d, MX_ERR_INVALID, "scan group %d: more than %d nodes sum its scans", group,
                           MX_SCAN_MERGE_MAX);
        sp->merge_nodes[sp->n_merge_nodes++] = node;
        for (int i = 0; i < g->nodes[node].n_in; i++) {
            int v = mx_node_input(g, node, i);
            if (v == MX_NONE)
                continue;
            if (top == 4 * MX_SCAN_MERGE_MAX)
                return mx_fail(d, MX_ERR_INVALID, "scan group %d: its scans' sum is too wide", group);
            stack[top++] = g->values[v].node;
        }
    }
    return MX_OK;
}

bool mx_scan_in_merge(const mx_scan_plan *sp, int node) {
    for (int i = 0; i < sp->n_merge_nodes; i++)
        if (sp->merge_nodes[i] == node)
            return true;
    return false;
}

static bool is_bijective_view(mx_op op) {
    return op == MX_OP_RESHAPE || op == MX_OP_PERMUTE || op == MX_OP_FLIP;
}

/* The epilogue: per value, the chain of views from M (-1: not computed from
 * M). Every member computed from M must read it at the element it writes. */
static mx_status fill_epilogue(const mx_program *p, int group, mx_scan_plan *sp, mx_diag *d) {
    const mx_graph *g = p->g;
    const mx_group *gr = &p->groups[group];
    mx_scan_out chain[64];
    int chain_of_value[64], n_chain = 0;
    char label[96];
    chain[0] = (mx_scan_out){.value = sp->merge};
    chain_of_value[0] = sp->merge;
    n_chain = 1;
    for (int i = 0; i < gr->n_nodes; i++) {
        int node = gr->nodes[i];
        const mx_node *nd = &g->nodes[node];
        int v = mx_node_output(g, node, 0), from = -1;
        if (nd->op == MX_OP_SELECTIVE_SCAN || mx_scan_in_merge(sp, node))
            continue;
        for (int j = 0; j < nd->n_in; j++) {
            int in = mx_node_input(g, node, j), c = -1;
            for (int q = 0; q < n_chain; q++)
                if (chain_of_value[q] == in)
                    c = q;
            if (c < 0)
                continue;
            bool same = from < 0 || (chain[from].n_views == chain[c].n_views &&
                                     !memcmp(chain[from].views, chain[c].views,
                                             sizeof(int) * (size_t)chain[c].n_views));
            bool elementwise = mx_ops[nd->op].fusion == MX_FUSE_ELEMWISE ||
                               mx_ops[nd->op].fusion == MX_FUSE_WSUM;
            if (!same || (elementwise && !mx_shape_equal(mx_node_input_type(g, node, j),
                                                        mx_value_type(g, v))) ||
                (!elementwise && !is_bijective_view(nd->op)))
                return mx_fail(d, MX_ERR_INVALID,
                               "scan group %d: %s reads the scans' sum other than at the element "
                               "it writes; not supported in a scan epilogue",
                               group, mx_node_label(g, node, label, sizeof label));
            from = c;
        }
        if (from < 0) {
            if (mx_emit_stored(p, group, v))
                return mx_fail(d, MX_ERR_INVALID,
                               "scan group %d: %s is stored but not computed from the scans",
                               group, mx_node_label(g, node, label, sizeof label));
            continue;
        }
        if (n_chain == 64)
            return mx_fail(d, MX_ERR_INVALID, "scan group %d: epilogue too long", group);
        mx_scan_out c = chain[from];
        c.value = v;
        if (is_bijective_view(nd->op)) {
            if (c.n_views == 8)
                return mx_fail(d, MX_ERR_INVALID, "scan group %d: more than 8 views after the scans",
                               group);
            c.views[c.n_views++] = node;
        }
        chain_of_value[n_chain] = v;
        chain[n_chain++] = c;
    }
    for (int q = 0; q < n_chain; q++) {
        int v = chain[q].value;
        if (!mx_emit_stored(p, group, v) || (q == 0 && scan_of_value(sp, v) >= 0))
            continue; /* M = the one scan's y: stored as the scan's result */
        if (sp->n_out == 8)
            return mx_fail(d, MX_ERR_INVALID, "scan group %d: more than 8 stored results", group);
        sp->out[sp->n_out++] = chain[q];
    }
    return MX_OK;
}

mx_status mx_scan_plan_fill(const mx_program *p, int group, mx_scan_plan *sp, mx_diag *d) {
    const mx_graph *g = p->g;
    const mx_group *gr = &p->groups[group];
    char label[96];
    memset(sp, 0, sizeof *sp);
    sp->acc = -1;
    sp->weights = MX_NONE;
    sp->summed = true;
    for (int i = 0; i < gr->n_nodes; i++) {
        int node = gr->nodes[i];
        if (g->nodes[node].op != MX_OP_SELECTIVE_SCAN)
            continue;
        if (sp->n_scans == MX_SCAN_MAX)
            return mx_fail(d, MX_ERR_INVALID, "scan group %d: more than %d scans", group, MX_SCAN_MAX);
        mx_scan_part *s = &sp->scan[sp->n_scans++];
        s->node = node;
        for (int j = 0; j < MX_SCAN_SLOTS; j++)
            s->in[j] = mx_node_input(g, node, j);
        s->y = mx_node_output(g, node, 0);
        s->hN = g->nodes[node].n_out > 1 ? mx_node_output(g, node, 1) : MX_NONE;
        s->reverse = mx_node_int(g, node, MX_A_REVERSE) != 0;
        s->softplus = mx_node_int(g, node, MX_A_SOFTPLUS) != 0;
        s->y_stored = mx_emit_stored(p, group, s->y);
        s->hN_stored = s->hN != MX_NONE && mx_emit_stored(p, group, s->hN);
        s->sign = 1;
        s->weight = -1;
        const mx_type *y = mx_value_type(g, s->y), *B = mx_value_type(g, s->in[MX_SCAN_B]);
        int64_t N = mx_value_type(g, s->in[MX_SCAN_A])->dim[1];
        if (sp->n_scans == 1) {
            sp->Bt = y->dim[0], sp->Ch = y->dim[1], sp->L = y->dim[2], sp->N = N;
            sp->G = B->dim[1];
        } else if (y->dim[0] != sp->Bt || y->dim[1] != sp->Ch || y->dim[2] != sp->L ||
                   N != sp->N || B->dim[1] != sp->G) {
            return mx_fail(d, MX_ERR_INVALID,
                           "scan group %d: %s differs in shape from the group's first scan", group,
                           mx_node_label(g, node, label, sizeof label));
        }
    }
    if (sp->n_scans == 0)
        return mx_fail(d, MX_ERR_INVALID, "scan group %d has no selective_scan", group);
    MX_TRY(find_merge(p, group, sp, d));
    MX_TRY(fill_merge_nodes(p, group, sp, d));
    /* A scan's result may be stored for another group, but inside this one only
     * the merge may read it. */
    for (int k = 0; k < sp->n_scans && sp->summed; k++)
        for (int i = 0; i < gr->n_nodes; i++) {
            int node = gr->nodes[i];
            for (int j = 0; j < g->nodes[node].n_in; j++)
                if (mx_node_input(g, node, j) == sp->scan[k].y && !mx_scan_in_merge(sp, node))
                    return mx_fail(d, MX_ERR_INVALID,
                                   "scan group %d: %s reads one scan's result apart from the merge",
                                   group, mx_node_label(g, node, label, sizeof label));
        }
    MX_TRY(fill_epilogue(p, group, sp, d));
    if (sp->summed) {
        if (sp->n_out == 0)
            return mx_fail(d, MX_ERR_INVALID, "scan group %d: the scans' sum is never stored", group);
        sp->acc = 0; /* sum where it is most precise: an f32 result when there is one */
        for (int i = sp->n_out - 1; i >= 0; i--)
            if (mx_value_type(g, sp->out[i].value)->dtype == MX_F32)
                sp->acc = i;
    }
    return MX_OK;
}

double mx_scan_plan_prune(mx_scan_plan *sp, const float *weights, double eps, bool *dropped) {
    int heaviest = 0;
    for (int j = 0; j < sp->n_terms; j++) {
        dropped[j] = false;
        if (weights[j] > weights[heaviest])
            heaviest = j;
    }
    for (int j = 0; j < sp->n_terms; j++)
        dropped[j] = j != heaviest && weights[j] < eps;
    for (int k = 0; k < sp->n_scans; k++) /* a stored result is read elsewhere: its term stays */
        if (sp->scan[k].weight >= 0 && (sp->scan[k].y_stored || sp->scan[k].hN_stored))
            dropped[sp->scan[k].weight] = false;
    int kept = 0;
    for (int k = 0; k < sp->n_scans; k++)
        kept += sp->scan[k].weight < 0 || !dropped[sp->scan[k].weight];
    double bound = 0;
    for (int j = 0; j < sp->n_terms; j++) {
        if (kept == 0)
            dropped[j] = false;
        bound += dropped[j] ? weights[j] : 0;
    }
    int n = 0;
    for (int k = 0; k < sp->n_scans; k++)
        if (sp->scan[k].weight < 0 || !dropped[sp->scan[k].weight])
            sp->scan[n++] = sp->scan[k];
    sp->n_scans = n;
    n = 0;
    for (int x = 0; x < sp->n_extra; x++)
        if (!dropped[sp->extra[x].weight])
            sp->extra[n++] = sp->extra[x];
    sp->n_extra = n;
    return bound;
}
