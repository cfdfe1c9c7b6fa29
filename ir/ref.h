/* ref.h: helpers shared by the reference kernels (ref_*.c). The kernels are
 * written for clarity, not speed: they are the oracle. */
#ifndef MX_REF_H
#define MX_REF_H

#include <assert.h>
#include <math.h>

#include "ir.h"

/* A tensor seen as [outer, n, inner] around one axis: element (o, i, k) is at
 * (o * n + i) * inner + k. */
typedef struct {
    int64_t outer, n, inner;
} ref_axis_view;

static inline ref_axis_view ref_view_axis(const mx_type *t, int axis) {
    assert(axis >= 0 && axis < t->rank);
    ref_axis_view v = {1, t->dim[axis], 1};
    for (int a = 0; a < axis; a++)
        v.outer *= t->dim[a];
    for (int a = axis + 1; a < t->rank; a++)
        v.inner *= t->dim[a];
    return v;
}

/* The node's `axis` attribute, normalised against the rank of input 0. */
static inline int ref_node_axis(const mx_graph *g, int node) {
    int axis = mx_axis(mx_node_int(g, node, MX_A_AXIS), mx_node_input_type(g, node, 0)->rank);
    assert(axis >= 0 && "axis checked by shape inference");
    return axis;
}

/* Scalar functions that the elementwise ops and the selective scan share. */
static inline double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static inline double ref_softplus(double x, double threshold) {
    return x > threshold ? x : log1p(exp(x));
}

/* A row-major walk over a shape that keeps the offsets of the current element
 * in up to REF_WALK_OPS strided operands. Strides may be 0 (broadcast) or
 * negative (flip); the layout kernels and broadcasting all reduce to it. */
#define REF_WALK_RANK 8 /* space_to_depth splits a rank-4 tensor into 6 axes */
#define REF_WALK_OPS 3

typedef struct {
    int rank;
    int64_t count; /* elements in the walk */
    int64_t dim[REF_WALK_RANK], idx[REF_WALK_RANK];
    int64_t stride[REF_WALK_OPS][REF_WALK_RANK];
    int64_t off[REF_WALK_OPS];
} ref_walk;

/* A walk over dims (rank may be 0: one element) with zero strides and offsets. */
void ref_walk_init(ref_walk *w, int rank, const int64_t *dim);
void ref_walk_next(ref_walk *w);
/* Operand op of w is the contiguous tensor whose elements are unit wide and
 * whose shape, aligned at the right, broadcasts to the walk's shape. */
void ref_walk_broadcast(ref_walk *w, int op, int rank, const int64_t *dim, int64_t unit);
/* dst[off0] = src[off1] over the walk. */
void ref_walk_copy(ref_walk *w, float *dst, const float *src);

#endif
