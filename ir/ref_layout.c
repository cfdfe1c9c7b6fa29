/* ref_layout.c: reference semantics of the layout ops (docs/ops.md, "Layout")
 * and the strided walk that most of them, and broadcasting, are built on. */
#include <stdlib.h>
#include <string.h>

#include "ops_impl.h"
#include "ref.h"

/* ---- the strided walk ----------------------------------------------------- */

void ref_walk_init(ref_walk *w, int rank, const int64_t *dim) {
    assert(rank >= 0 && rank <= REF_WALK_RANK);
    memset(w, 0, sizeof *w);
    w->rank = rank;
    w->count = 1;
    for (int a = 0; a < rank; a++) {
        w->dim[a] = dim[a];
        w->count *= dim[a];
    }
}

void ref_walk_next(ref_walk *w) {
    for (int a = w->rank - 1; a >= 0; a--) {
        for (int k = 0; k < REF_WALK_OPS; k++)
            w->off[k] += w->stride[k][a];
        if (++w->idx[a] < w->dim[a])
            return;
        for (int k = 0; k < REF_WALK_OPS; k++)
            w->off[k] -= w->stride[k][a] * w->dim[a];
        w->idx[a] = 0;
    }
}

void ref_walk_broadcast(ref_walk *w, int op, int rank, const int64_t *dim, int64_t unit) {
    assert(rank <= w->rank);
    int lead = w->rank - rank;
    int64_t stride = unit;
    for (int a = w->rank - 1; a >= 0; a--) {
        int own = a - lead; /* the operand's axis under walk axis a */
        if (own < 0 || dim[own] == 1) {
            w->stride[op][a] = 0;
        } else {
            assert(dim[own] == w->dim[a]);
            w->stride[op][a] = stride;
        }
        if (own >= 0)
            stride *= dim[own];
    }
}

void ref_walk_copy(ref_walk *w, float *dst, const float *src) {
    for (int64_t e = 0; e < w->count; e++, ref_walk_next(w))
        dst[w->off[0]] = src[w->off[1]];
}

/* A walk over the output of node, output contiguous (operand 0) and the
 * input's strides still to be set (operand 1). */
static void walk_output(ref_walk *w, const mx_graph *g, int node) {
    const mx_type *y = mx_value_type(g, mx_node_output(g, node, 0));
    ref_walk_init(w, y->rank, y->dim);
    ref_walk_broadcast(w, 0, y->rank, y->dim, 1);
}

/* Row-major strides of t. */
static void contiguous_strides(const mx_type *t, int64_t *stride) {
    int64_t s = 1;
    for (int a = t->rank - 1; a >= 0; a--) {
        stride[a] = s;
        s *= t->dim[a];
    }
}

/* ---- the ops -------------------------------------------------------------- */

/* reshape: the row-major order of the elements does not change. */
void ref_copy(const mx_graph *g, int node, const float *const *in, float *const *out) {
    int64_t n = mx_type_numel(mx_value_type(g, mx_node_output(g, node, 0)));
    memcpy(out[0], in[0], (size_t)n * sizeof(float));
}

void ref_permute(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *x = mx_node_input_type(g, node, 0);
    const mx_attr *perm = mx_node_attr(g, node, MX_A_PERM);
    int64_t x_stride[MX_MAX_RANK];
    contiguous_strides(x, x_stride);
    ref_walk w;
    walk_output(&w, g, node);
    for (int k = 0; k < perm->n; k++)
        w.stride[1][k] = x_stride[perm->v[k]];
    ref_walk_copy(&w, out[0], in[0]);
}

void ref_flip(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *x = mx_node_input_type(g, node, 0);
    int axis = ref_node_axis(g, node);
    ref_walk w;
    walk_output(&w, g, node);
    contiguous_strides(x, w.stride[1]);
    w.off[1] = (x->dim[axis] - 1) * w.stride[1][axis];
    w.stride[1][axis] = -w.stride[1][axis];
    ref_walk_copy(&w, out[0], in[0]);
}

void ref_slice(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *x = mx_node_input_type(g, node, 0);
    int axis = ref_node_axis(g, node);
    ref_walk w;
    walk_output(&w, g, node);
    contiguous_strides(x, w.stride[1]);
    w.off[1] = mx_node_int(g, node, MX_A_START) * w.stride[1][axis];
    w.stride[1][axis] *= mx_node_int(g, node, MX_A_STEP);
    ref_walk_copy(&w, out[0], in[0]);
}

void ref_shift(const mx_graph *g, int node, const float *const *in, float *const *out) {
    ref_axis_view v = ref_view_axis(mx_node_input_type(g, node, 0), ref_node_axis(g, node));
    int64_t k = mx_node_int(g, node, MX_A_K);
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t i = 0; i < v.n; i++) {
            float *y = out[0] + (o * v.n + i) * v.inner;
            /* Compare i with the shift instead of forming i - k: k is any int64. */
            bool inside = k >= 0 ? i >= k : i < v.n + k;
            if (inside)
                memcpy(y, in[0] + (o * v.n + (i - k)) * v.inner, (size_t)v.inner * sizeof(float));
            else
                memset(y, 0, (size_t)v.inner * sizeof(float));
        }
}

/* Copies outer rows of len floats from src to dst, the rows dst_row and
 * src_row apart: concat and split are this, one piece at a time. */
static void copy_rows(float *dst, int64_t dst_row, const float *src, int64_t src_row,
                      int64_t outer, int64_t len) {
    for (int64_t o = 0; o < outer; o++)
        memcpy(dst + o * dst_row, src + o * src_row, (size_t)len * sizeof(float));
}

void ref_concat(const mx_graph *g, int node, const float *const *in, float *const *out) {
    int axis = ref_node_axis(g, node);
    ref_axis_view y = ref_view_axis(mx_value_type(g, mx_node_output(g, node, 0)), axis);
    int64_t at = 0;
    for (int i = 0; i < g->nodes[node].n_in; i++) {
        int64_t n = mx_node_input_type(g, node, i)->dim[axis];
        copy_rows(out[0] + at * y.inner, y.n * y.inner, in[i], n * y.inner, y.outer, n * y.inner);
        at += n;
    }
}

void ref_split(const mx_graph *g, int node, const float *const *in, float *const *out) {
    ref_axis_view x = ref_view_axis(mx_node_input_type(g, node, 0), ref_node_axis(g, node));
    const mx_attr *sizes = mx_node_attr(g, node, MX_A_SIZES);
    int64_t at = 0;
    for (int i = 0; i < sizes->n; i++) {
        int64_t n = sizes->v[i];
        copy_rows(out[i], n * x.inner, in[0] + at * x.inner, x.n * x.inner, x.outer, n * x.inner);
        at += n;
    }
}

/* y[b, i, j, (dw*r + dh)*C + c] = x[b, i*r + dh, j*r + dw, c]: walk y as the
 * six axes [B, H/r, W/r, dw, dh, C]. */
void ref_space_to_depth(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *x = mx_node_input_type(g, node, 0);
    int64_t r = mx_node_int(g, node, MX_A_BLOCK);
    int64_t H = x->dim[1], W = x->dim[2], C = x->dim[3];
    int64_t dim[6] = {x->dim[0], H / r, W / r, r, r, C};
    ref_walk w;
    ref_walk_init(&w, 6, dim);
    ref_walk_broadcast(&w, 0, 6, dim, 1);
    int64_t x_stride[6] = {H * W * C, r * W * C, r * C, C, W * C, 1};
    memcpy(w.stride[1], x_stride, sizeof x_stride);
    ref_walk_copy(&w, out[0], in[0]);
}

/* y[.., p, s, ..] = x[.., min(p*stride + s, T-1), ..]: the replicate padding
 * is the clamp. */
void ref_unfold(const mx_graph *g, int node, const float *const *in, float *const *out) {
    ref_axis_view x = ref_view_axis(mx_node_input_type(g, node, 0), ref_node_axis(g, node));
    int64_t size = mx_node_int(g, node, MX_A_SIZE), stride = mx_node_int(g, node, MX_A_STRIDE);
    int64_t P = (x.n + mx_node_int(g, node, MX_A_PAD) - size) / stride + 1;
    float *y = out[0];
    for (int64_t o = 0; o < x.outer; o++)
        for (int64_t p = 0; p < P; p++)
            for (int64_t s = 0; s < size; s++) {
                int64_t t = p * stride + s < x.n ? p * stride + s : x.n - 1;
                memcpy(y, in[0] + (o * x.n + t) * x.inner, (size_t)x.inner * sizeof(float));
                y += x.inner;
            }
}

void ref_scan_gather(const mx_graph *g, int node, const float *const *in, float *const *out) {
    ref_axis_view x = ref_view_axis(mx_node_input_type(g, node, 0), ref_node_axis(g, node));
    mx_scan_order order = (mx_scan_order)mx_node_int(g, node, MX_A_ORDER);
    int64_t h = mx_node_int(g, node, MX_A_H), w = mx_node_int(g, node, MX_A_W);
    for (int64_t o = 0; o < x.outer; o++)
        for (int64_t l = 0; l < x.n; l++) {
            int64_t p = mx_scan_order_pos(order, h, w, l);
            memcpy(out[0] + (o * x.n + l) * x.inner, in[0] + (o * x.n + p) * x.inner,
                   (size_t)x.inner * sizeof(float));
        }
}

/* x[.., pos_k(l), ..] += y_k[.., l, ..]: every grid position is visited once
 * by each order, so each output element is a sum of K terms, one per input;
 * the inverse maps say where each term sits. */
void ref_scan_scatter(const mx_graph *g, int node, const float *const *in, float *const *out) {
    ref_axis_view x = ref_view_axis(mx_node_input_type(g, node, 0), ref_node_axis(g, node));
    const mx_attr *orders = mx_node_attr(g, node, MX_A_ORDERS);
    int64_t h = mx_node_int(g, node, MX_A_H), w = mx_node_int(g, node, MX_A_W);
    int K = orders->n;
    int64_t *step_at = malloc((size_t)(K * x.n) * sizeof *step_at); /* [k][pos] -> l */
    assert(step_at && K == g->nodes[node].n_in);
    for (int k = 0; k < K; k++)
        for (int64_t l = 0; l < x.n; l++)
            step_at[k * x.n + mx_scan_order_pos((mx_scan_order)orders->v[k], h, w, l)] = l;
    for (int64_t o = 0; o < x.outer; o++)
        for (int64_t p = 0; p < x.n; p++)
            for (int64_t i = 0; i < x.inner; i++) {
                double sum = 0;
                for (int k = 0; k < K; k++)
                    sum += in[k][(o * x.n + step_at[k * x.n + p]) * x.inner + i];
                out[0][(o * x.n + p) * x.inner + i] = (float)sum;
            }
    free(step_at);
}

/* y[..., c] = table[ids[...], c]. An id that is not a whole number in
 * [0, V) gives a row of NaN: the result is wrong, visibly, without a read
 * outside the table. */
void ref_embedding(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *table = mx_node_input_type(g, node, 0);
    int64_t V = table->dim[0], C = table->dim[1];
    int64_t n = mx_type_numel(mx_node_input_type(g, node, 1));
    for (int64_t i = 0; i < n; i++) {
        float id = in[1][i];
        bool valid = id >= 0 && id < (float)V && id == floorf(id);
        for (int64_t c = 0; c < C; c++)
            out[0][i * C + c] = valid ? in[0][(int64_t)id * C + c] : NAN;
    }
}
