/* cost.c: the work of one node (the `cost` column of ops.def), for the stats
 * command and the roofline floor of each kernel. The node must be typed.
 *
 * Counting conventions:
 * - flops: an add, a multiply, a compare or a divide counts 1; a fused
 *   multiply-add counts 2. Index arithmetic is free.
 * - exps: calls of the special-function unit: exp, log, log1p, sqrt, rsqrt,
 *   tanh, erf (a sigmoid is one exp and a divide).
 * - bytes: the ideal traffic, each present input read once and each output
 *   written once at its dtype's size; a fused kernel moves less, which is
 *   the point of fusing.
 * Sources cost nothing: their bytes are counted where they are read. */
#include <assert.h>

#include "ir.h"
#include "ops_impl.h"

static double numel(const mx_type *t) { return (double)mx_type_numel(t); }

static double in_numel(const mx_graph *g, int node, int i) {
    return numel(mx_node_input_type(g, node, i));
}

static double out_numel(const mx_graph *g, int node) {
    return numel(mx_value_type(g, mx_node_output(g, node, 0)));
}

static bool has_input(const mx_graph *g, int node, int i) {
    return mx_node_input(g, node, i) != MX_NONE;
}

static double bytes_of(const mx_type *t) {
    assert(t->rank >= 0 && "cost of an untyped value");
    return numel(t) * (double)mx_dtype_size(t->dtype);
}

static mx_cost cost_of(const mx_graph *g, int node, double flops, double exps) {
    const mx_node *n = &g->nodes[node];
    double bytes = 0;
    for (int i = 0; i < n->n_in; i++)
        if (has_input(g, node, i))
            bytes += bytes_of(mx_node_input_type(g, node, i));
    for (int i = 0; i < n->n_out; i++)
        bytes += bytes_of(mx_value_type(g, mx_node_output(g, node, i)));
    return (mx_cost){flops, bytes, exps};
}

/* The rows of input 0 along an axis of length len. */
static double rows(const mx_graph *g, int node, int64_t len) {
    return in_numel(g, node, 0) / (double)len;
}

mx_cost cost_zero(const mx_graph *g, int node) { return (mx_cost){0, 0, 0}; }

mx_cost cost_elementwise(const mx_graph *g, int node) {
    const mx_op_desc *op = &mx_ops[g->nodes[node].op];
    double n = out_numel(g, node);
    return cost_of(g, node, op->flops_per_elem * n, op->exps_per_elem * n);
}

/* Products and convolutions: one fma per output and tap (the length of the
 * summed-over extent), plus one add per output for an optional bias in slot 2. */
static mx_cost product_cost(const mx_graph *g, int node, double taps) {
    double out = out_numel(g, node);
    return cost_of(g, node, 2 * out * taps + (has_input(g, node, 2) ? out : 0), 0);
}

static double last_dim(const mx_type *t) { return (double)t->dim[t->rank - 1]; }

/* 2*M*N*K (+ M*N for the bias) */
mx_cost cost_linear(const mx_graph *g, int node) {
    return product_cost(g, node, last_dim(mx_node_input_type(g, node, 0)));
}

/* 2*batch*M*N*K */
mx_cost cost_matmul(const mx_graph *g, int node) {
    return product_cost(g, node, last_dim(mx_node_input_type(g, node, 0)));
}

/* 2*B*O*OH*OW * C*KH*KW, the taps being w's elements per output channel;
 * the same holds for the depthwise convs, whose taps are K or K*K (K too
 * for a dwconv1d with weights per position, [K, C, L]). */
static mx_cost cost_conv(const mx_graph *g, int node) {
    const mx_type *w = mx_node_input_type(g, node, 1);
    return product_cost(g, node, numel(w) / (double)w->dim[0]);
}

mx_cost cost_conv2d(const mx_graph *g, int node) { return cost_conv(g, node); }
mx_cost cost_dwconv(const mx_graph *g, int node) {
    const mx_type *w = mx_node_input_type(g, node, 1);
    return w->rank == 3 && g->nodes[node].op == MX_OP_DWCONV1D ? product_cost(g, node, (double)w->dim[0])
                                                                 : cost_conv(g, node);
}

mx_cost cost_reduce(const mx_graph *g, int node) {
    double in = in_numel(g, node, 0), out = out_numel(g, node);
    switch ((mx_reduce_kind)mx_node_int(g, node, MX_A_KIND)) {
    case MX_REDUCE_MEAN: /* the sum, then one divide per output */
        return cost_of(g, node, in + out, 0);
    case MX_REDUCE_VAR: /* the sum, then a subtract and an fma per element; two divides per output */
        return cost_of(g, node, 4 * in + 2 * out, 0);
    default: /* sum and max: one add or compare per element */
        return cost_of(g, node, in, 0);
    }
}

/* Per element: layernorm a mean add, a subtract and a square fma, the
 * normalising multiply (5), rmsnorm a square fma and the multiply (3); one
 * more each for gamma and beta. Per row: a divide and the eps add (2, and 1
 * more for layernorm's mean divide), and one rsqrt. */
mx_cost cost_norm(const mx_graph *g, int node) {
    const mx_type *x = mx_node_input_type(g, node, 0);
    bool layer = g->nodes[node].op == MX_OP_LAYERNORM;
    double per_elem = (layer ? 5 : 3) + has_input(g, node, 1) + has_input(g, node, 2);
    double r = rows(g, node, x->dim[x->rank - 1]);
    return cost_of(g, node, per_elem * numel(x) + (layer ? 3 : 2) * r, r);
}

/* Per element: the max compare, the subtract, the sum add and the scaling
 * multiply (4) and one exp; per row one divide for the reciprocal of the sum. */
mx_cost cost_softmax(const mx_graph *g, int node) {
    const mx_type *x = mx_node_input_type(g, node, 0);
    double n = numel(x);
    double r = rows(g, node, x->dim[mx_axis(mx_node_int(g, node, MX_A_AXIS), x->rank)]);
    return cost_of(g, node, 4 * n + r, n);
}

mx_cost cost_layout(const mx_graph *g, int node) { return cost_of(g, node, 0, 0); }

/* An embedding reads the ids and only the rows it gathers, not the table. */
mx_cost cost_embedding(const mx_graph *g, int node) {
    const mx_type *y = mx_value_type(g, mx_node_output(g, node, 0));
    return (mx_cost){0, bytes_of(mx_node_input_type(g, node, 1)) + 2 * bytes_of(y), 0};
}

/* K scattered inputs: K-1 adds per output element. */
mx_cost cost_scan_scatter(const mx_graph *g, int node) {
    return cost_of(g, node, (g->nodes[node].n_in - 1) * out_numel(g, node), 0);
}

/* Per state element (b, c, l, n): d*A (1) and its exp, (d*u)*B (1), the
 * state update h = a*h + dBu (fma, 2) and the output y += h*C (fma, 2): 6
 * flops, 1 exp. Per step (b, c, l): d*u (1); with delta_bias an add (1);
 * with softplus the softplus op's counts; with D an fma (2); with z a silu
 * (the silu op's counts) and the gating multiply (1). */
mx_cost cost_selective_scan(const mx_graph *g, int node) {
    const mx_type *A = mx_node_input_type(g, node, MX_SCAN_A);
    double steps = in_numel(g, node, MX_SCAN_U), states = steps * (double)A->dim[1];
    double step_flops = 1, step_exps = 0;
    if (has_input(g, node, MX_SCAN_DELTA_BIAS))
        step_flops += 1;
    if (mx_node_int(g, node, MX_A_SOFTPLUS)) {
        step_flops += mx_ops[MX_OP_SOFTPLUS].flops_per_elem;
        step_exps += mx_ops[MX_OP_SOFTPLUS].exps_per_elem;
    }
    if (has_input(g, node, MX_SCAN_D))
        step_flops += 2;
    if (has_input(g, node, MX_SCAN_Z)) {
        step_flops += mx_ops[MX_OP_SILU].flops_per_elem + 1;
        step_exps += mx_ops[MX_OP_SILU].exps_per_elem;
    }
    return cost_of(g, node, 6 * states + step_flops * steps, states + step_exps * steps);
}

/* n weighted inputs: a multiply and an add per input and element. */
mx_cost cost_weighted_sum(const mx_graph *g, int node) {
    return cost_of(g, node, 2.0 * (g->nodes[node].n_in - 1) * out_numel(g, node), 0);
}
