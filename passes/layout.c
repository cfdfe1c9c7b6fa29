/* layout.c: decide how every layout op (reshape, permute, flip, shift, slice,
 * concat, split, space_to_depth, unfold, scan_gather, scan_scatter) is
 * realised: as an index map in its readers' loads, in its producer's stores,
 * or as a copy kernel.
 *
 * Needs: a typed graph. Changes: fills p->view (one entry per node; only the
 * layout and gather ops' entries mean anything); the graph is untouched.
 *
 * A kernel we generate addresses its inputs with arbitrary index arithmetic,
 * so every non-matmul reader takes any map (MX_VIEW_CONSUMER). cuBLAS does
 * not: it reads strided matrices only. What a matmul (linear) operand may be
 * read through, from the buffer outwards:
 *   any contiguous reshape (a permute that only moves size-1 dims counts),
 *   then at most one "gemm map": a transpose of the last two dims (op = T), a
 *   step-1 slice / split of the last axis (a leading dimension > K) or of
 *   the one before (rows of a matrix: an offset; x_proj's rows of dt, B, C),
 *   then reshapes that keep the last two dims (they regroup the batch).
 * Views read by views compose: nodes are decided readers first, and each
 * folded view records what its own readers still allow (want_up).
 * A view that cannot fold is stored by its producer (MX_VIEW_PRODUCER) when
 * the producer is a kernel of ours (not a matmul, view or source): that
 * kernel writes the new layout as an extra store, no launch, no re-read. It
 * need not be the producer's only reader: the scan orders of a vision token
 * mixer are gathers of one conv output, each feeding an x_proj matmul, and
 * the conv kernel then writes u once per order. Else MX_VIEW_COPY.
 * scan_scatter with several inputs is the sum of K scan orders: when every
 * input is the result of scans of its own (maybe through a short elementwise
 * epilogue, as a qs pair's shifted sum) it is folded into the scans' stores
 * (PRODUCER; fuse makes the K scans one kernel), else a copy kernel. */
#include <stdlib.h>

#include "uses.h"

/* What matmul readers further down allow above a point, least strict first. */
typedef enum { WANT_ANY, WANT_LEAD, WANT_RESHAPE, WANT_NOTHING } want;

typedef enum { MAP_RESHAPE_LEAD, MAP_RESHAPE, MAP_GEMM, MAP_GENERAL } map_kind;

/* The last two dims of a and b agree (a reshape that only regroups the batch). */
static bool same_last_two(const mx_type *a, const mx_type *b) {
    return a->rank >= 2 && b->rank >= 2 && a->dim[a->rank - 1] == b->dim[b->rank - 1] &&
           a->dim[a->rank - 2] == b->dim[b->rank - 2];
}

static map_kind classify(const mx_graph *g, int n) {
    const mx_node *node = &g->nodes[n];
    const mx_type *in = mx_node_input_type(g, n, 0), *out = mx_value_type(g, node->first_out);
    switch (node->op) {
    case MX_OP_RESHAPE:
        return same_last_two(in, out) ? MAP_RESHAPE_LEAD : MAP_RESHAPE;
    case MX_OP_PERMUTE: {
        const mx_attr *perm = mx_node_attr(g, n, MX_A_PERM);
        int64_t prev = -1;
        bool moves_ones_only = true;
        for (int i = 0; i < perm->n; i++) {
            int64_t src = perm->v[i];
            if (in->dim[src] != 1) {
                moves_ones_only &= src > prev;
                prev = src;
            }
        }
        if (moves_ones_only)
            return same_last_two(in, out) ? MAP_RESHAPE_LEAD : MAP_RESHAPE;
        return mx_perm_swaps_last_two(perm) ? MAP_GEMM : MAP_GENERAL;
    }
    case MX_OP_SPLIT:
        return mx_axis(mx_node_int(g, n, MX_A_AXIS), in->rank) >= in->rank - 2 ? MAP_GEMM : MAP_GENERAL;
    case MX_OP_SLICE:
        return mx_axis(mx_node_int(g, n, MX_A_AXIS), in->rank) >= in->rank - 2 &&
                       mx_node_int(g, n, MX_A_STEP) == 1
                   ? MAP_GEMM
                   : MAP_GENERAL;
    default:
        return MAP_GENERAL;
    }
}

/* What is still allowed above a view of kind k when below it w is. */
static want compose(want w, map_kind k) {
    switch (w) {
    case WANT_ANY:
        return WANT_ANY;
    case WANT_LEAD:
        return k == MAP_RESHAPE_LEAD ? WANT_LEAD : k == MAP_GENERAL ? WANT_NOTHING : WANT_RESHAPE;
    case WANT_RESHAPE:
        return k == MAP_RESHAPE_LEAD || k == MAP_RESHAPE ? WANT_RESHAPE : WANT_NOTHING;
    default:
        return WANT_NOTHING;
    }
}

/* The scans a scan_scatter's input is the result of, maybe through an
 * elementwise or view epilogue (the shifts and sums of a qs pair, a D skip):
 * one that fuse puts in the scans' group. */
typedef struct {
    int scan[16], owner[16]; /* a scan found and the input it was found under */
    int n;
    bool shared; /* a scan found under two inputs, or more than 16 */
} scans_found;

/* Whether v is such a result; its scans are added to *s as input owner's. */
static bool from_scans(const mx_graph *g, int v, int depth, int owner, scans_found *s) {
    int n = g->values[v].node;
    mx_fusion f = mx_ops[g->nodes[n].op].fusion;
    if (g->nodes[n].op == MX_OP_SELECTIVE_SCAN) {
        for (int i = 0; i < s->n; i++)
            if (s->scan[i] == n && s->owner[i] != owner)
                s->shared = true;
        if (s->n == 16)
            s->shared = true;
        else
            s->scan[s->n] = n, s->owner[s->n++] = owner;
        return true;
    }
    if (depth == 0 || (f != MX_FUSE_ELEMWISE && f != MX_FUSE_LAYOUT))
        return false;
    bool found = false;
    for (int i = 0; i < g->nodes[n].n_in; i++) {
        int w = mx_node_input(g, n, i);
        if (w != MX_NONE)
            found |= from_scans(g, w, depth - 1, owner, s);
    }
    return found;
}

/* A multi-input scan_scatter that sums the results of scans, each input the
 * result of scans of its own. Inputs that are pieces of one scan's result (a
 * VMamba cross scan run as one scan of K channel groups, then split) are
 * rows of different blocks of that scan's kernel, which cannot sum them:
 * such a scatter is a copy kernel that reads the stored result. */
static bool sums_scans(const mx_graph *g, int n) {
    scans_found s = {.n = 0};
    for (int i = 0; i < g->nodes[n].n_in; i++)
        if (!from_scans(g, mx_node_input(g, n, i), 4, i, &s))
            return false;
    return !s.shared;
}

/* A kernel of ours that can store an extra layout. */
static bool stores_views(const mx_graph *g, int node) {
    mx_fusion f = mx_ops[g->nodes[node].op].fusion;
    return f != MX_FUSE_SOURCE && f != MX_FUSE_MATMUL && !mx_is_view_op(g->nodes[node].op);
}

mx_status mx_pass_layout(mx_program *p, mx_diag *d) {
    const mx_graph *g = p->g;
    free(p->view);
    p->view = calloc((size_t)g->n_nodes + 1, sizeof *p->view);
    want *want_up = malloc(((size_t)g->n_nodes + 1) * sizeof *want_up);
    if (!p->view || !want_up) {
        free(want_up);
        return mx_fail(d, MX_ERR_NOMEM, "layout: out of memory");
    }
    mx_uses u;
    mx_uses_init(&u, g);
    for (int n = g->n_nodes - 1; n >= 0; n--) {
        const mx_node *node = &g->nodes[n];
        want_up[n] = WANT_NOTHING;
        if (!mx_is_view_op(node->op))
            continue;
        if (node->op == MX_OP_SCAN_SCATTER && node->n_in > 1) {
            p->view[n] = sums_scans(g, n) ? MX_VIEW_PRODUCER : MX_VIEW_COPY;
            continue;
        }
        /* What the readers of all outputs allow; a graph output is stored. */
        want w = WANT_ANY;
        for (int o = 0; o < node->n_out; o++) {
            int v = node->first_out + o;
            if (u.output[v])
                w = WANT_NOTHING;
            for (int k = u.first[v]; k < u.first[v + 1]; k++) {
                int r = u.reader[k];
                want wr = WANT_ANY;
                if (mx_is_view_op(g->nodes[r].op) && p->view[r] == MX_VIEW_CONSUMER)
                    wr = want_up[r];
                else if (mx_ops[g->nodes[r].op].fusion == MX_FUSE_MATMUL)
                    wr = WANT_LEAD;
                w = wr > w ? wr : w;
            }
        }
        want up = compose(w, classify(g, n));
        if (up != WANT_NOTHING) {
            p->view[n] = MX_VIEW_CONSUMER;
            want_up[n] = up;
        } else if (node->n_in == 1 && stores_views(g, g->values[mx_node_input(g, n, 0)].node)) {
            p->view[n] = MX_VIEW_PRODUCER;
        } else {
            p->view[n] = MX_VIEW_COPY;
        }
    }
    mx_uses_free(&u);
    free(want_up);
    return MX_OK;
}
