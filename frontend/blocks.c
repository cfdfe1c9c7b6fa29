/* blocks.c: the mixers of MODELS.md as graph builders.
 *
 * All mixers share one core: scans of a channel-major sequence u[Bt, E, L]
 * that lies on an h x w grid (h = 1 for 1D data), one per traversal order,
 * merged by summing the orders back (scan_scatter). What differs is around it:
 *   selective / qs token mixer: in_proj on the features (x, z), the scans,
 *     [LayerNorm(E)], gate silu(z), out_proj;
 *   cw channel mixer: a per-token linear C -> 2w makes (u, z) whose w channel
 *     positions are the sequence (batch Bt*L, one feature per position,
 *     optionally expanded), the scans, gate, a per-token linear w -> C.
 * Param names follow the layer, e.g. stages.0.blocks.1.token_mixer.scans.2.A_log. */
#include <math.h>
#include <stdio.h>

#include "blocks.h"

typedef struct {
    int64_t bt, e, l, h, w; /* u is [bt, e, l], l = h * w */
} seq_shape;

static int conv1d(mx_builder *b, int u, int64_t e, int k, const char *name) {
    char wn[160], bn[160];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    double bound = 1 / sqrt((double)k); /* depthwise: fan_in = k */
    int args[3] = {u, bd_param(b, wn, MX_INIT_UNIFORM, bound, DIMS(e, k)),
                   bd_param(b, bn, MX_INIT_UNIFORM, bound, DIMS(e))};
    return bd_unary(b, MX_OP_SILU, bd_finish(b, bd_node(b, MX_OP_DWCONV1D, args, 3, 1)));
}

static int conv2d_grid(mx_builder *b, int u, seq_shape s, int k, const char *name) {
    char wn[160], bn[160];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    double bound = 1 / sqrt((double)(k * k));
    int grid = bd_reshape(b, u, DIMS(s.bt, s.e, s.h, s.w));
    int args[3] = {grid, bd_param(b, wn, MX_INIT_UNIFORM, bound, DIMS(s.e, k, k)),
                   bd_param(b, bn, MX_INIT_UNIFORM, bound, DIMS(s.e))};
    int y = bd_finish(b, bd_node(b, MX_OP_DWCONV2D, args, 3, 1));
    return bd_unary(b, MX_OP_SILU, bd_reshape(b, y, DIMS(s.bt, s.e, s.l)));
}

/* [bt, l, n] -> [bt, 1, n, l]: the B or C of one group. */
static int to_group_major(mx_builder *b, int x, seq_shape s, int64_t n) {
    return bd_reshape(b, x, DIMS(s.bt, 1, n, s.l));
}

/* The projection of the channels of x[bt, c, l] to out channels, W x with
 * W [out, c] (the parameters of a linear layer on x's transpose): the
 * product keeps the layout the scan reads along L, so that delta, B and C
 * come out [bt, out, l], contiguous along l, as in mamba_ssm. */
static int channel_proj(mx_builder *b, int x, const char *name, int64_t out) {
    int rank;
    int64_t in = bd_dims(b, x, &rank)[1];
    char wname[192];
    snprintf(wname, sizeof wname, "%s.weight", name);
    int w = bd_param(b, wname, MX_INIT_UNIFORM, 1 / sqrt((double)in), DIMS(out, in));
    return bd_finish(b, bd_node(b, MX_OP_MATMUL, (int[]){w, x}, 2, 1));
}

static int scan_node(mx_builder *b, const int *args, bool reverse) {
    int node = bd_node(b, MX_OP_SELECTIVE_SCAN, args, MX_SCAN_SLOTS - 1, 1);
    mx_node_set_int(b->g, node, MX_A_SOFTPLUS, 1);
    mx_node_set_int(b->g, node, MX_A_REVERSE, reverse);
    return bd_finish(b, node);
}

/* What an S6 core yields: a plain core its scan's result; a qs core (which
 * scans both ways with one parameter set) its directions, each shifted by one
 * step so that neither counts the diagonal, and its D for the diagonal u * D. */
typedef struct {
    int y;       /* plain */
    int pair[2]; /* qs: shift(y_fwd, 1), shift(y_bwd, -1) */
    int d;       /* qs: D [E] */
} s6_out;

/* A linear layer on tokens x[bt, l, c] with out features, as [bt, out, l]:
 * the conv and the scan read it along l. With a bias, the transpose of the
 * row-major product (the matmul library adds a bias along rows). */
static int token_proj(mx_builder *b, int x, const char *name, int64_t out, bool bias) {
    if (bias)
        return bd_permute(b, bd_linear(b, x, name, out, true), DIMS(0, 2, 1));
    return channel_proj(b, bd_permute(b, x, DIMS(0, 2, 1)), name, out);
}

/* One S6 core on an ordered sequence u[bt, e, l]: x_proj -> (dt, B, C), dt_proj,
 * A = -exp(A_log), the scan with D skip and dt bias (a qs core leaves the
 * diagonal to its caller). z (or MX_NONE) is the gate, fused into a plain
 * scan. */
static s6_out s6_core(mx_builder *b, const mx_mixer_spec *ms, int u, seq_shape s, int64_t r, int z,
                      const char *name) {
    int64_t n = ms->d_state;
    char pn[192];
    snprintf(pn, sizeof pn, "%s.x_proj", name);
    int dbc[3];
    bd_split(b, channel_proj(b, u, pn, r + 2 * n), 1, 3, (int64_t[]){r, n, n}, dbc);
    snprintf(pn, sizeof pn, "%s.dt_proj", name);
    int dt = channel_proj(b, dbc[0], pn, s.e);
    int bm = to_group_major(b, dbc[1], s, n), cm = to_group_major(b, dbc[2], s, n);
    snprintf(pn, sizeof pn, "%s.A_log", name);
    int a = bd_unary(b, MX_OP_NEG, bd_unary(b, MX_OP_EXP, bd_param(b, pn, MX_INIT_A_LOG, 0, DIMS(s.e, n))));
    snprintf(pn, sizeof pn, "%s.D", name);
    int d = bd_param(b, pn, MX_INIT_CONST, 1, DIMS(s.e));
    snprintf(pn, sizeof pn, "%s.dt_bias", name);
    int bias = bd_param(b, pn, MX_INIT_DT_BIAS, 0, DIMS(s.e));
    if (ms->kind != MX_MIXER_QS)
        return (s6_out){.y = scan_node(b, (int[]){u, dt, a, bm, cm, d, z, bias}, false)};
    int fwd = scan_node(b, (int[]){u, dt, a, bm, cm, MX_NONE, MX_NONE, bias}, false);
    int bwd = scan_node(b, (int[]){u, dt, a, bm, cm, MX_NONE, MX_NONE, bias}, true);
    return (s6_out){.pair = {bd_shift(b, fwd, 2, 1), bd_shift(b, bwd, 2, -1)}, .d = d};
}

/* u * D with D [e] broadcast along l. */
static int times_d(mx_builder *b, int u, int d, seq_shape s) {
    return bd_binary(b, MX_OP_MUL, u, bd_reshape(b, d, DIMS(s.e, 1)));
}

static int gather(mx_builder *b, int u, int order, seq_shape s) {
    if (order == MX_ORDER_ROW)
        return u;
    int node = bd_node(b, MX_OP_SCAN_GATHER, &u, 1, 1);
    mx_node_set_int(b->g, node, MX_A_ORDER, order);
    mx_node_set_int(b->g, node, MX_A_H, s.h);
    mx_node_set_int(b->g, node, MX_A_W, s.w);
    return bd_finish(b, node);
}

static int scatter(mx_builder *b, const int *ys, const int *orders, int k, seq_shape s) {
    int node = bd_node(b, MX_OP_SCAN_SCATTER, ys, k, 1);
    int64_t o[MX_MAX_SCANS];
    for (int i = 0; i < k; i++)
        o[i] = orders[i];
    mx_node_set_ints(b->g, node, MX_A_ORDERS, o, k);
    mx_node_set_int(b->g, node, MX_A_H, s.h);
    mx_node_set_int(b->g, node, MX_A_W, s.w);
    return bd_finish(b, node);
}

/* The scans of u[bt, e, l] and their merge; returns y[bt, e, l]. When zc (the
 * gate, channel-major) is given and the mixer has one plain scan, the gate is
 * fused into it and *gated is set.
 *
 * A qs mixer with several orders (summed, not switched) merges all 2K
 * shifted directions in one scan_scatter and adds the diagonal once after
 * it: scatter_k is linear and only permutes l, so scatter_k(u_k * D_k) =
 * scatter_k(u_k) * D_k, which is u * D_k when u_k is gathered from u (no
 * per-order conv); then the diagonal is u * (D_0 + ... + D_{K-1}), a
 * param-only sum that fold moves to init. One scatter of scans is what
 * the scan kernel fuses (docs/scan.md). 2K must fit scan_scatter's arity. */
static int scans(mx_builder *b, const mx_mixer_spec *ms, int u, seq_shape s, int64_t r, int zc,
                 bool *gated) {
    if (ms->d_conv && ms->shared_conv)
        u = ms->conv2d ? conv2d_grid(b, u, s, ms->d_conv, "conv") : conv1d(b, u, s.e, ms->d_conv, "conv");
    bool fuse_gate = ms->n_scans == 1 && ms->scans[0] == MX_ORDER_ROW && ms->kind != MX_MIXER_QS &&
                     zc != MX_NONE;
    bool per_order_conv = ms->d_conv && !ms->shared_conv;
    bool qs_merge = ms->kind == MX_MIXER_QS && ms->n_scans > 1 && !ms->switch_scans &&
                    2 * ms->n_scans <= MX_MAX_SCANS;
    *gated = fuse_gate;
    int ys[MX_MAX_SCANS], dirs[MX_MAX_SCANS], dir_orders[MX_MAX_SCANS], diag = MX_NONE, dsum = MX_NONE;
    for (int k = 0; k < ms->n_scans; k++) {
        char name[64];
        snprintf(name, sizeof name, "scans.%d", k);
        int uk = gather(b, u, ms->scans[k], s);
        if (per_order_conv) {
            char cname[80];
            snprintf(cname, sizeof cname, "%s.conv", name);
            uk = conv1d(b, uk, s.e, ms->d_conv, cname);
        }
        s6_out core = s6_core(b, ms, uk, s, r, fuse_gate ? zc : MX_NONE, name);
        if (ms->kind != MX_MIXER_QS) {
            ys[k] = core.y;
        } else if (!qs_merge) {
            ys[k] = bd_binary(b, MX_OP_ADD, bd_binary(b, MX_OP_ADD, core.pair[0], core.pair[1]),
                              times_d(b, uk, core.d, s));
        } else {
            for (int j = 0; j < 2; j++)
                dirs[2 * k + j] = core.pair[j], dir_orders[2 * k + j] = ms->scans[k];
            if (per_order_conv) {
                int term = times_d(b, scatter(b, &uk, &ms->scans[k], 1, s), core.d, s);
                diag = diag == MX_NONE ? term : bd_binary(b, MX_OP_ADD, diag, term);
            } else {
                dsum = dsum == MX_NONE ? core.d : bd_binary(b, MX_OP_ADD, dsum, core.d);
            }
        }
    }
    if (qs_merge)
        return bd_binary(b, MX_OP_ADD, scatter(b, dirs, dir_orders, 2 * ms->n_scans, s),
                         per_order_conv ? diag : times_d(b, u, dsum, s));
    if (ms->n_scans == 1 && ms->scans[0] == MX_ORDER_ROW)
        return ys[0];
    if (!ms->switch_scans)
        return scatter(b, ys, ms->scans, ms->n_scans, s);
    /* Switch of Scans: each order mapped back, then softmax-weighted. */
    int back[MX_MAX_SCANS];
    for (int k = 0; k < ms->n_scans; k++)
        back[k] = scatter(b, &ys[k], &ms->scans[k], 1, s);
    int logits = bd_param(b, "switch", MX_INIT_CONST, 0, DIMS(ms->n_scans));
    return bd_weighted_sum(b, bd_axis_op(b, MX_OP_SOFTMAX, logits, 0), ms->n_scans, back);
}

int mx_build_token_mixer(mx_builder *b, const mx_mixer_spec *ms, int x, int64_t h, int64_t w) {
    int rank;
    const int64_t *dims = bd_dims(b, x, &rank);
    int64_t bt = dims[0], l = dims[1], c = dims[2], e = (int64_t)(ms->expand * (double)c);
    seq_shape s = {bt, e, l, h, w};
    int xz[2];
    bd_split(b, token_proj(b, x, "in_proj", 2 * e, ms->bias), 1, 2, (int64_t[]){e, e}, xz);
    int u = xz[0], zc = xz[1];
    bool gated;
    int y = scans(b, ms, u, s, mx_mixer_dt_rank(ms, (int)c), ms->out_norm ? MX_NONE : zc, &gated);
    int yt = bd_permute(b, y, DIMS(0, 2, 1));
    if (ms->out_norm)
        yt = bd_norm(b, MX_NORM_LAYERNORM, yt, "out_norm", MX_NORM_EPS);
    if (!gated)
        yt = bd_binary(b, MX_OP_MUL, yt, bd_unary(b, MX_OP_SILU, bd_permute(b, zc, DIMS(0, 2, 1))));
    return bd_linear(b, yt, "out_proj", c, ms->bias);
}

int mx_build_cw_mixer(mx_builder *b, const mx_mixer_spec *ms, int x) {
    int rank;
    const int64_t *dims = bd_dims(b, x, &rank);
    int64_t bt = dims[0], l = dims[1], c = dims[2];
    int64_t wpos = (int64_t)(ms->width_factor * (double)c), e = (int64_t)ms->expand;
    int uz[2];
    bd_split(b, bd_linear(b, x, "in_proj", 2 * wpos, ms->bias), -1, 2, (int64_t[]){wpos, wpos}, uz);
    /* Every token's w channel positions become one sequence. */
    int u = bd_reshape(b, uz[0], DIMS(bt * l, 1, wpos));
    if (e > 1)
        u = bd_permute(b, bd_linear(b, bd_reshape(b, uz[0], DIMS(bt * l, wpos, 1)), "expand", e, false),
                       DIMS(0, 2, 1));
    seq_shape s = {bt * l, e, wpos, 1, wpos};
    bool gated;
    int y = scans(b, ms, u, s, mx_mixer_dt_rank(ms, (int)e), MX_NONE, &gated);
    if (e > 1)
        y = bd_linear(b, bd_permute(b, y, DIMS(0, 2, 1)), "contract", 1, false);
    y = bd_reshape(b, y, DIMS(bt, l, wpos));
    y = bd_binary(b, MX_OP_MUL, y, bd_unary(b, MX_OP_SILU, uz[1]));
    return bd_linear(b, y, "out_proj", c, ms->bias);
}
