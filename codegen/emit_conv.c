/* emit_conv.c: convolution groups (dwconv1d causal / same, dwconv2d same,
 * conv2d), with their fused prologue (the input read through views and
 * elementwise members) and epilogue (silu, the stores of scan orders).
 *
 * One thread per output element, the loops of emit_pointwise.c; the
 * convolution itself is a member the shared expression routine asks for at
 * an index: taps unrolled (their count is compiled in), zero padding as a
 * bounds test around each tap's loads, f32 accumulation. */
#include <stdio.h>

#include "emit.h"

/* An index into a dim of size n: "0" when n is 1 (the emitter's rule). */
static const char *at(int64_t n, const char *expr) { return n == 1 ? "0" : expr; }

static void load_input(mx_emitter *e, int node, int i, const char *const *idx, char *out, size_t size) {
    mx_emit_value(e, mx_node_input(e->p->g, node, i), idx, out, size);
}

/* The axis a dwconv1d walks: 2 ([B, C, L]) or 1 ([B, L, C]). */
static int walk_axis(const mx_graph *g, int node) { return mx_axis(mx_node_int(g, node, MX_A_AXIS), 3); }

/* The output dim that is the channel: 1, or the one a dwconv1d does not walk. */
static int channel_dim(const mx_graph *g, int node) {
    return g->nodes[node].op == MX_OP_DWCONV1D ? 3 - walk_axis(g, node) : 1;
}

/* acc = bias[c] (a dwconv1d's bias per position: bias[idx 1, idx 2]) or 0 */
static void start_acc(mx_emitter *e, int node, const char *const *idx, char *acc, size_t size) {
    const mx_graph *g = e->p->g;
    char b[96] = "0.0f";
    int bias = mx_node_input(g, node, 2);
    if (bias != MX_NONE) {
        const mx_type *bt = mx_value_type(g, bias);
        const char *bi[2] = {at(bt->dim[0], bt->rank == 2 ? idx[1] : idx[channel_dim(g, node)]),
                             bt->rank == 2 ? at(bt->dim[1], idx[2]) : NULL};
        load_input(e, node, 2, bi, b, sizeof b);
    }
    mx_emit_temp(e, acc, size);
    mx_emit_line(e, "float %s = %s;", acc, b);
}

/* One tap: acc += w * x[at], x read only inside [0, n) on every padded dim. */
static void tap(mx_emitter *e, int node, const char *acc, const char *cond, const char *const *xi,
                const char *const *wi) {
    char x[96], w[96];
    mx_emit_open(e, "if (%s)", cond);
    load_input(e, node, 0, xi, x, sizeof x);
    load_input(e, node, 1, wi, w, sizeof w);
    mx_emit_line(e, "%s += %s * %s;", acc, w, x);
    mx_emit_close(e);
}

/* A tap loop variable and the input position it reads: pos = base + var. */
static void open_taps(mx_emitter *e, int64_t taps, char *var, size_t size) {
    mx_emit_temp(e, var, size);
    mx_emit_line(e, "#pragma unroll");
    mx_emit_open(e, "for (int %s = 0; %s < %lld; %s++)", var, var, (long long)taps, var);
}

static void position(mx_emitter *e, const char *expr, char *out, size_t size) {
    mx_emit_temp(e, out, size);
    mx_emit_line(e, "const %s %s = %s;", e->ity, out, expr);
}

/* dwconv1d [B, C, L] and dwconv2d [B, C, H, W] share the shape of a
 * depthwise KH x KW window over [H, W] (dwconv1d: H = 1); a dwconv1d may
 * walk axis 1 of [B, L, C] instead. A dwconv1d's weights per position,
 * [K, d1, d2], are read at [tap, idx 1, idx 2]: consecutive for lanes
 * consecutive in x, where [C, K] gives lanes of several channels a gather
 * per tap (rows shorter than a vector; channels last, the lanes' channels
 * K apart). */
static void depthwise(mx_emitter *e, int node, const char *const *idx, const char *acc) {
    const mx_graph *g = e->p->g;
    const mx_type *xt = mx_node_input_type(g, node, 0), *wt = mx_node_input_type(g, node, 1);
    bool two_d = g->nodes[node].op == MX_OP_DWCONV2D, by_position = !two_d && wt->rank == 3;
    int walk = two_d ? 3 : walk_axis(g, node), chan = channel_dim(g, node);
    int64_t K = by_position ? wt->dim[0] : wt->dim[1], C = xt->dim[chan];
    int64_t pad = two_d || mx_node_int(g, node, MX_A_MODE) == MX_CONV_SAME ? (K - 1) / 2 : K - 1;
    char u[16] = "0", v[16], r[16] = "0", q[16], expr[256], cond[256];
    if (two_d) {
        open_taps(e, K, u, sizeof u);
        snprintf(expr, sizeof expr, "%s - %lld + %s", idx[2], (long long)pad, u);
        position(e, expr, r, sizeof r);
    }
    open_taps(e, K, v, sizeof v);
    snprintf(expr, sizeof expr, "%s - %lld + %s", idx[walk], (long long)pad, v);
    position(e, expr, q, sizeof q);
    int64_t L = xt->dim[walk];
    if (two_d)
        snprintf(cond, sizeof cond, "%s >= 0 && %s < %lld && %s >= 0 && %s < %lld", r, r, (long long)xt->dim[2], q,
                 q, (long long)L);
    else
        snprintf(cond, sizeof cond, "%s >= 0 && %s < %lld", q, q, (long long)L);
    const char *xi[4] = {idx[0], idx[1], two_d ? at(xt->dim[2], r) : idx[2], two_d ? at(L, q) : NULL};
    if (!two_d)
        xi[walk] = at(L, q);
    const char *wi[3] = {at(C, idx[chan]), two_d ? at(K, u) : at(K, v), at(K, v)};
    if (by_position)
        wi[0] = at(K, v), wi[1] = at(xt->dim[1], idx[1]), wi[2] = at(xt->dim[2], idx[2]);
    tap(e, node, acc, cond, xi, wi);
    mx_emit_close(e);
    if (two_d)
        mx_emit_close(e);
}

/* conv2d [B, C, H, W] * [O, C, KH, KW], stride s, zero padding p. */
static void dense2d(mx_emitter *e, int node, const char *const *idx, const char *acc) {
    const mx_graph *g = e->p->g;
    const mx_type *xt = mx_node_input_type(g, node, 0), *wt = mx_node_input_type(g, node, 1);
    long long s = (long long)mx_node_int(g, node, MX_A_STRIDE), pad = (long long)mx_node_int(g, node, MX_A_PAD);
    char c[16], u[16], v[16], r[16], q[16], expr[256], cond[256];
    mx_emit_temp(e, c, sizeof c);
    mx_emit_open(e, "for (%s %s = 0; %s < %lld; %s++)", e->ity, c, c, (long long)xt->dim[1], c);
    open_taps(e, wt->dim[2], u, sizeof u);
    snprintf(expr, sizeof expr, "%s * %lld - %lld + %s", idx[2], s, pad, u);
    position(e, expr, r, sizeof r);
    open_taps(e, wt->dim[3], v, sizeof v);
    snprintf(expr, sizeof expr, "%s * %lld - %lld + %s", idx[3], s, pad, v);
    position(e, expr, q, sizeof q);
    snprintf(cond, sizeof cond, "%s >= 0 && %s < %lld && %s >= 0 && %s < %lld", r, r, (long long)xt->dim[2], q, q,
             (long long)xt->dim[3]);
    const char *xi[4] = {idx[0], at(xt->dim[1], c), at(xt->dim[2], r), at(xt->dim[3], q)};
    const char *wi[4] = {idx[1], at(wt->dim[1], c), at(wt->dim[2], u), at(wt->dim[3], v)};
    tap(e, node, acc, cond, xi, wi);
    mx_emit_close(e);
    mx_emit_close(e);
    mx_emit_close(e);
}

static bool conv_member(mx_emitter *e, int node, const char *const *idx, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    mx_op op = g->nodes[node].op;
    if (op != MX_OP_DWCONV1D && op != MX_OP_DWCONV2D && op != MX_OP_CONV2D)
        return false;
    mx_emit_line(e, "// %s", mx_ops[op].name);
    start_acc(e, node, idx, out, size);
    if (op == MX_OP_CONV2D)
        dense2d(e, node, idx, out);
    else
        depthwise(e, node, idx, out);
    return true;
}

mx_status mx_emit_conv(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d) {
    e->member = conv_member;
    mx_emit_element_loops(e, t, k);
    if (e->status != MX_OK)
        *d = e->diag;
    return e->status;
}
