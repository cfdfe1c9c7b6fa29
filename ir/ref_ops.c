/* ref_ops.c: reference semantics of the sources, elementwise ops, reductions,
 * norms, softmax and the weighted average (docs/ops.md). Scalars are computed
 * in f64 and stored as f32; every sum is kept in f64. */
#include "ops_impl.h"
#include "ref.h"

static int64_t output_numel(const mx_graph *g, int node, int i) {
    return mx_type_numel(mx_value_type(g, mx_node_output(g, node, i)));
}

/* ---- sources -------------------------------------------------------------- */

/* Inputs and params are the caller's data: nothing to compute. */
void ref_source(const mx_graph *g, int node, const float *const *in, float *const *out) {}

void ref_const(const mx_graph *g, int node, const float *const *in, float *const *out) {
    float value = (float)mx_node_float(g, node, MX_A_VALUE);
    for (int64_t i = 0, n = output_numel(g, node, 0); i < n; i++)
        out[0][i] = value;
}

/* ---- elementwise ---------------------------------------------------------- */

static double apply_binary(mx_op op, double a, double b) {
    switch (op) {
    case MX_OP_ADD: return a + b;
    case MX_OP_SUB: return a - b;
    case MX_OP_MUL: return a * b;
    case MX_OP_DIV: return a / b;
    default: assert(!"not a binary op"); return 0;
    }
}

void ref_binary(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *y = mx_value_type(g, mx_node_output(g, node, 0));
    const mx_type *a = mx_node_input_type(g, node, 0), *b = mx_node_input_type(g, node, 1);
    mx_op op = g->nodes[node].op;
    ref_walk w;
    ref_walk_init(&w, y->rank, y->dim);
    ref_walk_broadcast(&w, 0, y->rank, y->dim, 1);
    ref_walk_broadcast(&w, 1, a->rank, a->dim, 1);
    ref_walk_broadcast(&w, 2, b->rank, b->dim, 1);
    for (int64_t e = 0; e < w.count; e++, ref_walk_next(&w))
        out[0][w.off[0]] = (float)apply_binary(op, in[0][w.off[1]], in[1][w.off[2]]);
}

/* A unary op with its one attribute (scale value, softplus threshold, gelu
 * approximation), read once per node rather than per element. */
typedef struct {
    mx_op op;
    double param;
} unary_fn;

static double apply_unary(unary_fn f, double x) {
    switch (f.op) {
    case MX_OP_NEG: return -x;
    case MX_OP_EXP: return exp(x);
    case MX_OP_LOG: return log(x);
    case MX_OP_SQRT: return sqrt(x);
    case MX_OP_RSQRT: return 1 / sqrt(x);
    case MX_OP_SIGMOID: return ref_sigmoid(x);
    case MX_OP_SILU: return x * ref_sigmoid(x);
    case MX_OP_SOFTPLUS: return ref_softplus(x, f.param);
    case MX_OP_GELU:
        if (f.param == MX_GELU_TANH) {
            const double sqrt_2_over_pi = 0.79788456080286535588;
            return 0.5 * x * (1 + tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
        }
        return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case MX_OP_RELU: return x > 0 ? x : 0;
    case MX_OP_TANH: return tanh(x);
    case MX_OP_SCALE: return f.param * x;
    case MX_OP_CAST: return x; /* the interpreter rounds to the new dtype */
    default: assert(!"not a unary op"); return 0;
    }
}

static unary_fn unary_of(const mx_graph *g, int node) {
    unary_fn f = {g->nodes[node].op, 0};
    if (f.op == MX_OP_SCALE)
        f.param = mx_node_float(g, node, MX_A_VALUE);
    else if (f.op == MX_OP_SOFTPLUS)
        f.param = mx_node_float(g, node, MX_A_THRESHOLD);
    else if (f.op == MX_OP_GELU)
        f.param = (double)mx_node_int(g, node, MX_A_APPROX);
    return f;
}

void ref_unary(const mx_graph *g, int node, const float *const *in, float *const *out) {
    unary_fn f = unary_of(g, node);
    for (int64_t i = 0, n = output_numel(g, node, 0); i < n; i++)
        out[0][i] = (float)apply_unary(f, in[0][i]);
}

/* ---- reductions over one line of a tensor --------------------------------- */

/* A line: n elements `stride` apart. */
static double line_sum(const float *x, int64_t n, int64_t stride) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += x[i * stride];
    return s;
}

static double line_max(const float *x, int64_t n, int64_t stride) {
    double m = x[0];
    for (int64_t i = 1; i < n; i++)
        m = x[i * stride] > m ? x[i * stride] : m;
    return m;
}

/* Mean square deviation from center: the population variance around the
 * mean, the mean square around 0. Two passes, not E[x^2] - E[x]^2, which
 * cancels badly. */
static double line_mean_square(const float *x, int64_t n, int64_t stride, double center) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (x[i * stride] - center) * (x[i * stride] - center);
    return s / (double)n;
}

static double reduce_line(mx_reduce_kind kind, const float *x, int64_t n, int64_t stride) {
    switch (kind) {
    case MX_REDUCE_SUM: return line_sum(x, n, stride);
    case MX_REDUCE_MEAN: return line_sum(x, n, stride) / (double)n;
    case MX_REDUCE_MAX: return line_max(x, n, stride);
    case MX_REDUCE_VAR: return line_mean_square(x, n, stride, line_sum(x, n, stride) / (double)n);
    }
    assert(!"unknown reduce kind");
    return 0;
}

/* keepdim only changes the output's shape, not its elements' order. */
void ref_reduce(const mx_graph *g, int node, const float *const *in, float *const *out) {
    ref_axis_view v = ref_view_axis(mx_node_input_type(g, node, 0), ref_node_axis(g, node));
    mx_reduce_kind kind = (mx_reduce_kind)mx_node_int(g, node, MX_A_KIND);
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t k = 0; k < v.inner; k++)
            out[0][o * v.inner + k] =
                (float)reduce_line(kind, in[0] + o * v.n * v.inner + k, v.n, v.inner);
}

/* ---- norms and softmax ---------------------------------------------------- */

/* Both norms: y = (x - center) / sqrt(mean((x - center)^2) + eps) * gamma + beta
 * over rows of the last axis, center the mean (layernorm) or 0 (rmsnorm). */
static void normalize_rows(const mx_graph *g, int node, bool centered, const float *x,
                           const float *gamma, const float *beta, float *y) {
    const mx_type *t = mx_node_input_type(g, node, 0);
    int64_t C = t->dim[t->rank - 1], rows = mx_type_numel(t) / C;
    double eps = mx_node_float(g, node, MX_A_EPS);
    for (int64_t r = 0; r < rows; r++, x += C, y += C) {
        double center = centered ? line_sum(x, C, 1) / (double)C : 0;
        double inv = 1 / sqrt(line_mean_square(x, C, 1, center) + eps);
        for (int64_t c = 0; c < C; c++) {
            double v = (x[c] - center) * inv;
            if (gamma)
                v *= gamma[c];
            if (beta)
                v += beta[c];
            y[c] = (float)v;
        }
    }
}

void ref_layernorm(const mx_graph *g, int node, const float *const *in, float *const *out) {
    normalize_rows(g, node, true, in[0], in[1], in[2], out[0]);
}

void ref_rmsnorm(const mx_graph *g, int node, const float *const *in, float *const *out) {
    normalize_rows(g, node, false, in[0], in[1], NULL, out[0]);
}

void ref_softmax(const mx_graph *g, int node, const float *const *in, float *const *out) {
    ref_axis_view v = ref_view_axis(mx_node_input_type(g, node, 0), ref_node_axis(g, node));
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t k = 0; k < v.inner; k++) {
            int64_t at = o * v.n * v.inner + k;
            const float *x = in[0] + at;
            float *y = out[0] + at;
            double max = line_max(x, v.n, v.inner), sum = 0;
            for (int64_t i = 0; i < v.n; i++)
                sum += exp(x[i * v.inner] - max);
            for (int64_t i = 0; i < v.n; i++)
                y[i * v.inner] = (float)(exp(x[i * v.inner] - max) / sum);
        }
}

/* ---- weighted average ----------------------------------------------------- */

/* in[0] is w[n], in[1..n] the terms. */
void ref_weighted_sum(const mx_graph *g, int node, const float *const *in, float *const *out) {
    int terms = g->nodes[node].n_in - 1;
    for (int64_t e = 0, n = output_numel(g, node, 0); e < n; e++) {
        double sum = 0;
        for (int i = 0; i < terms; i++)
            sum += (double)in[0][i] * in[1 + i][e];
        out[0][e] = (float)sum;
    }
}
