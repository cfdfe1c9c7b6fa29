/* canonicalize.c: local simplifications that later passes should not have to
 * see through.
 *
 * Needs: a verified, typed graph. Changes: replaces a node by one of its inputs
 * where it computes the identity, and a chain of two layout ops by one:
 *
 *   flip(flip(x)) on one axis      -> x
 *   neg(neg(x))                    -> x
 *   permute(permute(x))            -> permute(x) with the composed perm, or x
 *   permute(x) with perm 0..r-1    -> x
 *   reshape(reshape(x))            -> reshape(x), or x
 *   reshape / slice / cast that keeps the type        -> x
 *   scale {value=1}, shift {k=0}, concat of one input -> x
 *   x * 1, 1 * x, x / 1, x + 0, 0 + x, x - 0          -> x
 *       (the constant from a const node; only when x already has the
 *        result's shape, so a broadcast is never lost; -0 + 0 is +0, the
 *        one bit this changes, which only a division by it could see)
 *   scan_gather {order=row}, scan_scatter {orders=[row]}         -> x
 *   scan_scatter {orders=[o]} of scan_gather {order=o}, same grid -> x
 *   split(linear(x, W, b)) on the feature axis    -> linear(x, slice(W), slice(b)) per piece
 *   split(matmul(W, X)) on W's rows, W a weight    -> matmul(slice(W), X) per piece
 *       (when the product has no other reader and every piece is at least
 *        as wide as the product's K: see split_product)
 *   conv2d(x, W, b) {stride=k, pad=0} with a k x k kernel that tiles x
 *       -> permute(linear(patches of x, reshape(W), b)): see patch_conv
 *   dwconv1d(x, W[C, K], b) over rows shorter than a vector
 *       -> dwconv1d(x, W as [K, C, L], b as [C, L]), or compiled for the
 *          cpu permute(dwconv1d {axis=1}(permute(x), W as [K, L, C], ...)):
 *          see short_row_conv
 *   unary(permute(channels-last conv)) -> permute(unary(conv))
 *   matmul(W, permute(Z)) with thin matrices (N < 16 columns), W a weight
 *       -> permute(linear(Z, W)), compiled for the cpu: see thin_columns
 *   matmul(W, scan_gather(X)) -> scan_gather(matmul(W, X)), compiled for
 *       the cpu: see gather_below
 *
 * Rules look at the producers in the new graph, so a chain collapses in one
 * walk (permute(permute(permute x)) composes twice) and, as every rule looks
 * only backwards, the second walk finds nothing. The walk is repeated until
 * it changes nothing all the same: that costs one copy of the graph and keeps
 * the pass a fixed point should a rule ever look further. A replaced node's
 * inputs are left
 * in place, possibly dead: dce removes them. A node keeps its result's name
 * when it is re-emitted; a node replaced by its input gives up its name (the
 * rewriter keeps a graph output's name where the input has none). */
#include <string.h>

#include "uses.h"

typedef struct {
    int changes; /* in the current walk */
    mx_uses u;   /* of the graph being walked */
    bool cpu;    /* compiled for the cpu device: see short_row_conv, thin_columns, gather_below */
} canon_ctx;

/* The new-graph node that produces new value v when it has op op, else -1. */
static int producer(const mx_rewriter *rw, int v, mx_op op) {
    if (v == MX_NONE)
        return -1;
    int node = rw->g->values[v].node;
    return rw->g->nodes[node].op == op ? node : -1;
}

static bool same_type(const mx_rewriter *rw, int new_value, int old_value) {
    return mx_type_equal(mx_value_type(rw->g, new_value), mx_value_type(rw->old, old_value));
}

/* Normalised axis attribute of a node of graph g. */
static int axis_of(const mx_graph *g, int node, int rank) {
    return mx_axis(mx_node_int(g, node, MX_A_AXIS), rank);
}

/* Operand a of a binary node when the other operand is a const of value c
 * and a alone already has the result's type: the node is the identity. */
static int identity_operand(const mx_rewriter *rw, int node, int a, int c_slot, double c) {
    int k = producer(rw, mx_rewrite_input(rw, node, c_slot), MX_OP_CONST);
    int x = mx_rewrite_input(rw, node, a);
    if (k < 0 || mx_node_float(rw->g, k, MX_A_VALUE) != c ||
        !same_type(rw, x, mx_node_output(rw->old, node, 0)))
        return MX_NONE;
    return x;
}

/* Re-emits old node (a reshape or permute) on new input x with its own
 * attributes, named like the old result. The caller may change attributes
 * and re-type: emit types the node with the old attributes first, which is
 * valid for these two ops (same element count, same rank). */
static int reemit(mx_rewriter *rw, int node, int x) {
    int n = mx_rewrite_emit(rw, rw->old->nodes[node].op, &x, 1, 1, node);
    const char *name = rw->old->values[mx_node_output(rw->old, node, 0)].name;
    if (name)
        mx_value_set_name(rw->g, mx_node_output(rw->g, n, 0), name);
    return n;
}

static int fold_permutes(mx_rewriter *rw, int node, int x, int inner) {
    /* y.dim[i] = t.dim[p2[i]] = x.dim[p1[p2[i]]] */
    const mx_attr *p1 = mx_node_attr(rw->g, inner, MX_A_PERM);
    const mx_attr *p2 = mx_node_attr(rw->old, node, MX_A_PERM);
    int64_t q[MX_MAX_RANK];
    bool identity = true;
    for (int i = 0; i < p2->n; i++) {
        q[i] = p1->v[p2->v[i]];
        identity &= q[i] == i;
    }
    int src = mx_node_input(rw->g, inner, 0);
    if (identity)
        return src;
    int n = reemit(rw, node, src);
    mx_node_set_ints(rw->g, n, MX_A_PERM, q, p2->n);
    mx_rewrite_type(rw, n, "composed permute");
    return mx_node_output(rw->g, n, 0);
}

static bool is_identity_perm(const mx_attr *perm) {
    for (int i = 0; i < perm->n; i++)
        if (perm->v[i] != i)
            return false;
    return true;
}

/* scan_scatter {orders=[o]} of scan_gather {order=o} over the same grid and
 * axis undoes it: the new value of the gather's input, else MX_NONE. */
static int undo_gather(const mx_rewriter *rw, int node, int x) {
    int gather = producer(rw, x, MX_OP_SCAN_GATHER);
    if (gather < 0)
        return MX_NONE;
    const mx_graph *o = rw->old, *g = rw->g;
    int rank = mx_value_type(g, x)->rank;
    bool same = mx_node_attr(o, node, MX_A_ORDERS)->v[0] == mx_node_int(g, gather, MX_A_ORDER) &&
                mx_node_int(o, node, MX_A_H) == mx_node_int(g, gather, MX_A_H) &&
                mx_node_int(o, node, MX_A_W) == mx_node_int(g, gather, MX_A_W) &&
                axis_of(o, node, rank) == axis_of(g, gather, rank);
    return same ? mx_node_input(g, gather, 0) : MX_NONE;
}

/* The new value that replaces the result of old node, or MX_NONE to copy it. */
static int simplify(mx_rewriter *rw, int node) {
    const mx_graph *old = rw->old;
    const mx_node *n = &old->nodes[node];
    int x = mx_rewrite_input(rw, node, 0);
    if (x == MX_NONE || n->n_out != 1)
        return MX_NONE;
    int y = mx_node_output(old, node, 0);
    int rank = mx_value_type(rw->g, x)->rank;
    int inner;
    switch (n->op) {
    case MX_OP_NEG:
        inner = producer(rw, x, MX_OP_NEG);
        return inner >= 0 ? mx_node_input(rw->g, inner, 0) : MX_NONE;
    case MX_OP_FLIP:
        inner = producer(rw, x, MX_OP_FLIP);
        return inner >= 0 && axis_of(rw->g, inner, rank) == axis_of(old, node, rank)
                   ? mx_node_input(rw->g, inner, 0)
                   : MX_NONE;
    case MX_OP_PERMUTE:
        if (is_identity_perm(mx_node_attr(old, node, MX_A_PERM)))
            return x;
        inner = producer(rw, x, MX_OP_PERMUTE);
        return inner >= 0 ? fold_permutes(rw, node, x, inner) : MX_NONE;
    case MX_OP_RESHAPE:
        if (same_type(rw, x, y))
            return x;
        inner = producer(rw, x, MX_OP_RESHAPE);
        if (inner < 0)
            return MX_NONE;
        x = mx_node_input(rw->g, inner, 0);
        return same_type(rw, x, y) ? x : mx_node_output(rw->g, reemit(rw, node, x), 0);
    case MX_OP_SLICE:
    case MX_OP_CAST:
        return same_type(rw, x, y) ? x : MX_NONE;
    case MX_OP_SCALE:
        return mx_node_float(old, node, MX_A_VALUE) == 1 ? x : MX_NONE;
    case MX_OP_SHIFT:
        return mx_node_int(old, node, MX_A_K) == 0 ? x : MX_NONE;
    case MX_OP_CONCAT:
        return n->n_in == 1 ? x : MX_NONE;
    case MX_OP_SCAN_GATHER:
        return mx_node_int(old, node, MX_A_ORDER) == MX_ORDER_ROW ? x : MX_NONE;
    case MX_OP_SCAN_SCATTER:
        if (n->n_in != 1)
            return MX_NONE;
        return mx_node_attr(old, node, MX_A_ORDERS)->v[0] == MX_ORDER_ROW ? x : undo_gather(rw, node, x);
    case MX_OP_MUL: {
        int a = identity_operand(rw, node, 0, 1, 1);
        return a != MX_NONE ? a : identity_operand(rw, node, 1, 0, 1);
    }
    case MX_OP_ADD: {
        int a = identity_operand(rw, node, 0, 1, 0);
        return a != MX_NONE ? a : identity_operand(rw, node, 1, 0, 0);
    }
    case MX_OP_DIV:
        return identity_operand(rw, node, 0, 1, 1);
    case MX_OP_SUB:
        return identity_operand(rw, node, 0, 1, 0);
    default:
        return MX_NONE;
    }
}

/* A slice [start, end) of new value w on axis 0, a weight that fold moves to
 * the init graph when w is one. */
static int slice_rows(mx_rewriter *rw, int w, int64_t start, int64_t end) {
    int n = mx_graph_add_node(rw->g, MX_OP_SLICE, &w, 1, 1);
    mx_node_set_int(rw->g, n, MX_A_AXIS, 0);
    mx_node_set_int(rw->g, n, MX_A_START, start);
    mx_node_set_int(rw->g, n, MX_A_END, end);
    mx_rewrite_type(rw, n, "a weight's slice");
    return mx_node_output(rw->g, n, 0);
}

/* The input slot of old node prod (a product) whose rows the split of its
 * result on axis cuts, or -1: a linear's W when the split is on the last
 * axis, a matmul's left operand when it is on the rows; a rank-2 weight
 * either way (an activation's slice would only be a view of it). */
static int split_weight(const mx_graph *old, const mx_uses *u, int prod, int axis) {
    mx_op op = old->nodes[prod].op;
    int rank = mx_value_type(old, mx_node_output(old, prod, 0))->rank;
    int slot = op == MX_OP_LINEAR && axis == rank - 1 ? 1 : op == MX_OP_MATMUL && axis == rank - 2 ? 0 : -1;
    if (slot < 0)
        return -1;
    int w = mx_node_input(old, prod, slot);
    return mx_value_type(old, w)->rank == 2 && u->weight[old->values[w].node] ? slot : -1;
}

/* split(product) -> one product per piece, on slices of the weight (and a
 * linear's bias). One result stays whole until its last piece's reader is
 * done; separate ones die apart: Mamba's in_proj makes the conv's x, which
 * dies at the conv, and the gate's z, which lives until the scan, and the
 * whole result kept the dead x alive through the scan. Same FLOPs, one more
 * product. Only when every piece is at least as wide as K (the product's
 * inner dim): a thin projection (x_proj's dt, B, C) holds little memory and
 * would only gain launches. */
static bool split_product(mx_rewriter *rw, int node, const mx_uses *u) {
    const mx_graph *old = rw->old;
    const mx_node *n = &old->nodes[node];
    int y = n->op == MX_OP_SPLIT ? mx_node_input(old, node, 0) : MX_NONE;
    if (y == MX_NONE || u->first[y + 1] - u->first[y] != 1 || u->output[y])
        return false;
    int prod = old->values[y].node;
    int slot = split_weight(old, u, prod, axis_of(old, node, mx_value_type(old, y)->rank));
    if (slot < 0)
        return false;
    int64_t k = mx_value_type(old, mx_node_input(old, prod, slot))->dim[1];
    const mx_attr *sizes = mx_node_attr(old, node, MX_A_SIZES);
    for (int i = 0; i < sizes->n; i++)
        if (sizes->v[i] < k)
            return false;
    const mx_node *pn = &old->nodes[prod];
    int64_t start = 0;
    for (int i = 0; i < sizes->n; i++) {
        int in[3];
        for (int j = 0; j < pn->n_in; j++)
            in[j] = mx_rewrite_input(rw, prod, j);
        in[slot] = slice_rows(rw, in[slot], start, start + sizes->v[i]);
        if (pn->op == MX_OP_LINEAR && pn->n_in == 3 && in[2] != MX_NONE)
            in[2] = slice_rows(rw, in[2], start, start + sizes->v[i]);
        int piece = mx_node_output(rw->g, mx_rewrite_emit(rw, pn->op, in, pn->n_in, 1, prod), 0);
        const char *name = old->values[n->first_out + i].name;
        if (name)
            mx_value_set_name(rw->g, piece, name);
        rw->map[n->first_out + i] = piece;
        start += sizes->v[i];
    }
    return true;
}

/* Old node's (one) result is new value y from here on, under its name. */
static bool replace_result(mx_rewriter *rw, int node, int y) {
    int v = mx_node_output(rw->old, node, 0);
    if (rw->old->values[v].name)
        mx_value_set_name(rw->g, y, rw->old->values[v].name);
    rw->map[v] = y;
    return true;
}

/* A reshape {shape} or permute {perm} (key) of new value x, typed. */
static int view_of(mx_rewriter *rw, mx_op op, int x, mx_attr_key key, const int64_t *ints, int n) {
    int node = mx_graph_add_node(rw->g, op, &x, 1, 1);
    mx_node_set_ints(rw->g, node, key, ints, n);
    mx_rewrite_type(rw, node, "a view a rule built");
    return mx_node_output(rw->g, node, 0);
}

/* A patch embedding: conv2d of x[B, C, H, W] with W[O, C, k, k] at stride
 * k, no padding, k dividing H and W. Each output pixel is one patch times
 * W, so the conv is a product of the patches [B, OH OW, C k k] (a copy of
 * x in another order, in ranks the IR has) and W as [O, C k k], which the
 * matmul library runs: ViM2-T's 4 x 4 stem ran at 2 GFLOP/s as a conv
 * kernel on the CPU. The result's permute back to [B, O, OH, OW] cancels
 * against the permute to channels-last that usually follows. */
static bool patch_conv(mx_rewriter *rw, int node) {
    const mx_graph *old = rw->old;
    if (old->nodes[node].op != MX_OP_CONV2D)
        return false;
    const mx_type *xt = mx_node_input_type(old, node, 0), *wt = mx_node_input_type(old, node, 1);
    int64_t B = xt->dim[0], C = xt->dim[1], H = xt->dim[2], W = xt->dim[3], O = wt->dim[0], k = wt->dim[2];
    if (mx_node_int(old, node, MX_A_PAD) != 0 || mx_node_int(old, node, MX_A_STRIDE) != k || wt->dim[3] != k ||
        k < 2 || H % k || W % k)
        return false;
    int64_t OH = H / k, OW = W / k;
    int x = mx_rewrite_input(rw, node, 0);
    /* [B C OH, k, OW, k] -> [B C OH, OW, k, k] -> [B, C, OH OW, k k] -> [B, OH OW, C, k k] */
    int64_t rows[4] = {B * C * OH, k, OW, k}, swap[4] = {0, 2, 1, 3}, by_pixel[4] = {B, C, OH * OW, k * k};
    int64_t patches[3] = {B, OH * OW, C * k * k}, flat_w[2] = {O, C * k * k};
    x = view_of(rw, MX_OP_RESHAPE, x, MX_A_SHAPE, rows, 4);
    x = view_of(rw, MX_OP_PERMUTE, x, MX_A_PERM, swap, 4);
    x = view_of(rw, MX_OP_RESHAPE, x, MX_A_SHAPE, by_pixel, 4);
    x = view_of(rw, MX_OP_PERMUTE, x, MX_A_PERM, swap, 4);
    x = view_of(rw, MX_OP_RESHAPE, x, MX_A_SHAPE, patches, 3);
    int in[3] = {x, view_of(rw, MX_OP_RESHAPE, mx_rewrite_input(rw, node, 1), MX_A_SHAPE, flat_w, 2),
                 mx_rewrite_input(rw, node, 2)};
    int y = mx_node_output(rw->g, mx_rewrite_emit(rw, MX_OP_LINEAR, in, in[2] == MX_NONE ? 2 : 3, 1, -1), 0);
    int64_t pixels[4] = {B, OH, OW, O}, channels_first[4] = {0, 3, 1, 2};
    y = view_of(rw, MX_OP_RESHAPE, y, MX_A_SHAPE, pixels, 4);
    y = view_of(rw, MX_OP_PERMUTE, y, MX_A_PERM, channels_first, 4);
    return replace_result(rw, node, y);
}

/* A view (reshape or permute) of the new graph that keeps the last axis
 * as it is: a linear of its input, viewed the same way, is the linear of
 * it. */
static bool keeps_rows(const mx_graph *g, int node) {
    if (g->nodes[node].op == MX_OP_RESHAPE) {
        const mx_type *in = mx_node_input_type(g, node, 0), *out = mx_value_type(g, mx_node_output(g, node, 0));
        return in->dim[in->rank - 1] == out->dim[out->rank - 1];
    }
    if (g->nodes[node].op == MX_OP_PERMUTE) {
        const mx_attr *perm = mx_node_attr(g, node, MX_A_PERM);
        return perm->v[perm->n - 1] == perm->n - 1;
    }
    return false;
}

/* Whether value v of the old graph is read, through views, by a conv that
 * walks its last axis. */
static bool feeds_conv(const mx_graph *g, const mx_uses *u, int v, int depth) {
    for (int k = u->first[v]; k < u->first[v + 1]; k++) {
        const mx_node *r = &g->nodes[u->reader[k]];
        mx_fusion f = mx_ops[r->op].fusion;
        if (r->op == MX_OP_DWCONV1D && mx_axis(mx_node_int(g, u->reader[k], MX_A_AXIS), 3) == 2)
            return true;
        if (depth > 0 && (f == MX_FUSE_LAYOUT || f == MX_FUSE_GATHER))
            for (int o = 0; o < r->n_out; o++)
                if (feeds_conv(g, u, r->first_out + o, depth - 1))
                    return true;
    }
    return false;
}

/* matmul(W, X) with W a [M, K] weight and X = permute(Z) [..., K, N], Z's
 * rows K long, N < THIN -> permute(linear(Z, W)) [..., M, N]. The batched
 * form is one small product per matrix of X, N columns wide: TSM2's channel
 * mixer multiplies 2048 matrices [64 x 7] by its in_proj, at a fraction of
 * the library's rate. As a linear the rows of every matrix are one operand,
 * one large product; views between Z and the permute that keep Z's rows
 * (the mixer's regrouping of patches and variates) are moved below it, so
 * that the product reads Z where it lies. Not for a result a conv reads:
 * the conv walks the N axis, which the linear's layout puts far apart, and
 * each tap becomes a gather (the mixer's x piece: its two convs went from
 * 2.7 to 6 ms each, for 1.5 ms won in the product; its z piece, read by
 * the gate after the scan, only gains). For the cpu device only: a GPU's
 * scan walks a row's steps on neighbouring threads, and from the linear's
 * layout its reads of z are strided (mamba-block at L = 12: the scan's
 * load sector efficiency 74% where it was over 75%); whether the one
 * product wins there is not measured. */
enum { THIN = 16, MAX_PEELED = 8 };

static bool thin_columns(mx_rewriter *rw, int node, const mx_uses *u) {
    const mx_graph *old = rw->old;
    if (old->nodes[node].op != MX_OP_MATMUL)
        return false;
    int wv = mx_node_input(old, node, 0);
    const mx_type *wt = mx_value_type(old, wv), *xt = mx_node_input_type(old, node, 1);
    if (wt->rank != 2 || !u->weight[old->values[wv].node] || xt->dim[xt->rank - 1] >= THIN ||
        feeds_conv(old, u, mx_node_output(old, node, 0), 6))
        return false;
    int swap = producer(rw, mx_rewrite_input(rw, node, 1), MX_OP_PERMUTE);
    if (swap < 0 || !mx_perm_swaps_last_two(mx_node_attr(rw->g, swap, MX_A_PERM)))
        return false;
    int peeled[MAX_PEELED], n = 0, z = mx_node_input(rw->g, swap, 0);
    for (int v = rw->g->values[z].node; n < MAX_PEELED && keeps_rows(rw->g, v); v = rw->g->values[z].node) {
        peeled[n++] = v;
        z = mx_node_input(rw->g, v, 0);
    }
    int in[2] = {z, mx_rewrite_input(rw, node, 0)};
    int y = mx_node_output(rw->g, mx_rewrite_emit(rw, MX_OP_LINEAR, in, 2, 1, -1), 0);
    int64_t M = wt->dim[0];
    while (n-- > 0) { /* the peeled views again, innermost first, rows M long */
        const mx_node *v = &rw->g->nodes[peeled[n]];
        const mx_attr *a = mx_node_attr(rw->g, peeled[n], v->op == MX_OP_RESHAPE ? MX_A_SHAPE : MX_A_PERM);
        int64_t ints[MX_MAX_RANK];
        memcpy(ints, a->v, (size_t)a->n * sizeof *ints);
        if (v->op == MX_OP_RESHAPE)
            ints[a->n - 1] = M;
        y = view_of(rw, v->op, y, v->op == MX_OP_RESHAPE ? MX_A_SHAPE : MX_A_PERM, ints, a->n);
    }
    const mx_attr *perm = mx_node_attr(rw->g, swap, MX_A_PERM);
    y = view_of(rw, MX_OP_PERMUTE, y, MX_A_PERM, perm->v, perm->n);
    return replace_result(rw, node, y);
}

/* New value w reshaped to dims (rank 2 or 3) times ones of shape spread_to:
 * w's size-1 dim spread over it. A weight alone, so fold computes it once. */
static int spread(mx_rewriter *rw, int w, const int64_t *dims, int rank, const int64_t *spread_to, int spread_rank) {
    mx_type ones = {mx_value_type(rw->g, w)->dtype, spread_rank, {spread_to[0], spread_rank > 1 ? spread_to[1] : 0}};
    int k = mx_graph_add_source(rw->g, MX_OP_CONST, NULL, ones);
    mx_node_set_float(rw->g, k, MX_A_VALUE, 1);
    int in[2] = {view_of(rw, MX_OP_RESHAPE, w, MX_A_SHAPE, dims, rank), mx_node_output(rw->g, k, 0)};
    return mx_node_output(rw->g, mx_rewrite_emit(rw, MX_OP_MUL, in, 2, 1, -1), 0);
}

/* A depthwise 1-D conv over rows of L < SHORT_ROW gets one set of weights
 * per position. A conv kernel runs one output per lane along a row; in a
 * row shorter than a vector the lanes span channels, so each tap's weight
 * and the bias were a gather per vector (TSM2's channel mixer: rows of 7
 * variates, 5 gathers per 16 outputs). Spread over the positions (W [C, K]
 * as [K, C, L], b [C] as [C, L]) they are read like x, one vector each.
 * Compiled for the cpu, the conv also turns channels last:
 *   dwconv1d(x) -> permute(dwconv1d {axis=1}(permute(x), W as [K, L, C], b as [L, C]))
 * so that a vector's lanes are channels at one position: the taps' bounds
 * are one test for all lanes, and x, read from a layout that keeps channels
 * together (a linear's, see thin_columns), loads as vectors; a unary op of
 * its result moves under the permute with it (channels_last_unary), and so
 * does the product that reads it. Same products in the same order: the
 * reference's result does not change. */
enum { SHORT_ROW = 16 };

static bool short_row_conv(mx_rewriter *rw, int node, const mx_uses *u, bool cpu) {
    const mx_graph *old = rw->old;
    if (old->nodes[node].op != MX_OP_DWCONV1D)
        return false;
    const mx_type *xt = mx_node_input_type(old, node, 0), *wt = mx_node_input_type(old, node, 1);
    int wv = mx_node_input(old, node, 1), bv = mx_node_input(old, node, 2);
    int64_t C = xt->dim[1], L = xt->dim[2], K = wt->dim[1];
    if (mx_axis(mx_node_int(old, node, MX_A_AXIS), 3) != 2 || L >= SHORT_ROW || wt->rank != 2 ||
        !u->weight[old->values[wv].node] || (bv != MX_NONE && !u->weight[old->values[bv].node]))
        return false;
    int64_t by_tap[2] = {1, 0}, swap[3] = {0, 2, 1};
    int64_t taps[2][3] = {{K, C, 1}, {K, 1, C}}, column[2][2] = {{C, 1}, {1, C}}, across[2][2] = {{L}, {L, 1}};
    int in[3] = {mx_rewrite_input(rw, node, 0),
                 view_of(rw, MX_OP_PERMUTE, mx_rewrite_input(rw, node, 1), MX_A_PERM, by_tap, 2), MX_NONE};
    in[1] = spread(rw, in[1], taps[cpu], 3, across[cpu], 1 + cpu);
    if (bv != MX_NONE)
        in[2] = spread(rw, mx_rewrite_input(rw, node, 2), column[cpu], 2, across[cpu], 1 + cpu);
    if (cpu)
        in[0] = view_of(rw, MX_OP_PERMUTE, in[0], MX_A_PERM, swap, 3);
    int conv = mx_rewrite_emit(rw, MX_OP_DWCONV1D, in, bv == MX_NONE ? 2 : 3, 1, node);
    if (cpu) {
        mx_node_set_int(rw->g, conv, MX_A_AXIS, 1);
        mx_rewrite_type(rw, conv, "a channels-last conv");
    }
    int y = mx_node_output(rw->g, conv, 0);
    if (cpu)
        y = view_of(rw, MX_OP_PERMUTE, y, MX_A_PERM, swap, 3);
    return replace_result(rw, node, y);
}

/* unary(permute(conv)) -> permute(unary(conv)) for a channels-last conv
 * (short_row_conv): the op then runs in the conv's kernel in the conv's
 * layout, where it would run in the permuted order and read the conv's
 * result across its lanes. */
static int channels_last_unary(mx_rewriter *rw, int node) {
    const mx_graph *old = rw->old;
    const mx_node *n = &old->nodes[node];
    if (mx_ops[n->op].fusion != MX_FUSE_ELEMWISE || n->n_in != 1 || n->n_out != 1)
        return MX_NONE;
    int swap = producer(rw, mx_rewrite_input(rw, node, 0), MX_OP_PERMUTE);
    int conv = swap < 0 ? -1 : producer(rw, mx_node_input(rw->g, swap, 0), MX_OP_DWCONV1D);
    if (conv < 0 || mx_axis(mx_node_int(rw->g, conv, MX_A_AXIS), 3) != 1)
        return MX_NONE;
    int x = mx_node_output(rw->g, conv, 0);
    int y = mx_node_output(rw->g, mx_rewrite_emit(rw, n->op, &x, 1, 1, node), 0);
    const mx_attr *perm = mx_node_attr(rw->g, swap, MX_A_PERM);
    return view_of(rw, MX_OP_PERMUTE, y, MX_A_PERM, perm->v, perm->n);
}

/* matmul(W, scan_gather(X)), the gather on X's columns (the positions)
 *   -> scan_gather(matmul(W, X))
 * A product acts on each column alone, so it commutes with a permutation
 * of them. The orders of a vision mixer each project gathered u with their
 * x_proj, so the conv stored u once per order, alive together at the scan
 * with each order's dt (VMamba-T: 27.2 MB, 1.5x stats' peak). Now x_proj
 * reads u where it lies, the scan reads u through the gather (an index map
 * in its loads), and the gather of x_proj's result [dt_rank + 2N, L], which
 * dt_proj cannot read through, is copied once: dt_proj's result and the
 * scan's B and C then come in the order's positions, contiguous. (Moving
 * the gather below the split and dt_proj as well stores nothing more but
 * makes every block of channels of the scan gather B and C again: ViM2-T's
 * scans 7% slower.) For the cpu device only: there a scan's lanes are
 * channels and each step reads one position of each, as far apart in any
 * order; a GPU's threads walk neighbouring steps of a row, and the gathered
 * reads of u in the column orders would not coalesce. */
static bool gather_below(mx_rewriter *rw, int node) {
    if (rw->old->nodes[node].op != MX_OP_MATMUL)
        return false;
    int gather = producer(rw, mx_rewrite_input(rw, node, 1), MX_OP_SCAN_GATHER);
    int x = gather < 0 ? MX_NONE : mx_node_input(rw->g, gather, 0);
    int rank = x == MX_NONE ? 0 : mx_value_type(rw->g, x)->rank;
    if (gather < 0 || mx_axis(mx_node_int(rw->g, gather, MX_A_AXIS), rank) != rank - 1)
        return false;
    int in[2] = {mx_rewrite_input(rw, node, 0), x};
    int y = mx_node_output(rw->g, mx_rewrite_emit(rw, MX_OP_MATMUL, in, 2, 1, node), 0);
    int moved = mx_graph_add_node(rw->g, MX_OP_SCAN_GATHER, &y, 1, 1);
    mx_node_set_int(rw->g, moved, MX_A_ORDER, mx_node_int(rw->g, gather, MX_A_ORDER));
    mx_node_set_int(rw->g, moved, MX_A_H, mx_node_int(rw->g, gather, MX_A_H));
    mx_node_set_int(rw->g, moved, MX_A_W, mx_node_int(rw->g, gather, MX_A_W));
    rw->g->nodes[moved].line = rw->g->nodes[gather].line;
    mx_rewrite_type(rw, moved, "a gather moved below a product"); /* on the last axis, the default */
    return replace_result(rw, node, mx_node_output(rw->g, moved, 0));
}

static bool rule(mx_rewriter *rw, int node, void *ctx) {
    const mx_uses *u = &((canon_ctx *)ctx)->u;
    bool cpu = ((canon_ctx *)ctx)->cpu;
    if (split_product(rw, node, u) || patch_conv(rw, node) || short_row_conv(rw, node, u, cpu) ||
        (cpu && (thin_columns(rw, node, u) || gather_below(rw, node)))) {
        ((canon_ctx *)ctx)->changes++;
        return true;
    }
    int v = simplify(rw, node);
    if (v == MX_NONE)
        v = channels_last_unary(rw, node);
    if (v == MX_NONE)
        return false;
    rw->map[mx_node_output(rw->old, node, 0)] = v;
    ((canon_ctx *)ctx)->changes++;
    return true;
}

mx_status mx_pass_canonicalize(mx_program *p, mx_diag *d) {
    canon_ctx ctx = {.cpu = p->target && p->target->device == MX_DEVICE_CPU};
    do {
        ctx.changes = 0;
        mx_uses_init(&ctx.u, p->g);
        mx_status st = mx_rewrite(p, rule, &ctx, d);
        mx_uses_free(&ctx.u);
        if (st != MX_OK)
            return st;
    } while (ctx.changes > 0);
    return MX_OK;
}
