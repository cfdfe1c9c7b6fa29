/* build.h: the small vocabulary the block builders speak.
 *
 * A builder appends typed nodes to a model's graph. Every node is tagged
 * with the current layer, and every param is named "<layer>.<name>" and
 * given an init rule. A node whose shape rule fails is a bug in a builder or a
 * spec check that was missed: the first such error is kept in the builder,
 * later calls do nothing, and mx_model_build reports it. */
#ifndef MX_BUILD_H
#define MX_BUILD_H

#include "model.h"

typedef struct {
    struct mx_model *m;
    mx_graph *g;
    mx_dtype dtype;
    const char *layer; /* current layer name, the prefix of param names */
    mx_diag *diag;
    mx_status status;
} mx_builder;

void bd_layer(mx_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int bd_input(mx_builder *b, const char *name, int rank, const int64_t *dims);
int bd_param(mx_builder *b, const char *name, mx_init_kind init, double arg, int rank,
             const int64_t *dims);
int bd_const(mx_builder *b, double value, int rank, const int64_t *dims);

/* A node with default attributes, not yet typed; set attributes, then
 * bd_finish types it and returns output 0. */
int bd_node(mx_builder *b, mx_op op, const int *in, int n_in, int n_out);
int bd_finish(mx_builder *b, int node);

int bd_unary(mx_builder *b, mx_op op, int x);
int bd_binary(mx_builder *b, mx_op op, int x, int y);
int bd_linear(mx_builder *b, int x, const char *name, int64_t out, bool bias);
/* The default epsilon of the norms (PyTorch's LayerNorm and Mamba's RMSNorm). */
#define MX_NORM_EPS 1e-5
int bd_norm(mx_builder *b, mx_norm_kind kind, int x, const char *name, double eps);
int bd_permute(mx_builder *b, int x, int rank, const int64_t *perm);
int bd_reshape(mx_builder *b, int x, int rank, const int64_t *dims);
int bd_axis_op(mx_builder *b, mx_op op, int x, int axis); /* flip, softmax */
int bd_shift(mx_builder *b, int x, int axis, int k);
int bd_reduce(mx_builder *b, int x, mx_reduce_kind kind, int axis, bool keepdim);
/* Splits along the last axis into n pieces of the given sizes. */
void bd_split(mx_builder *b, int x, int axis, int n, const int64_t *sizes, int *out);
int bd_weighted_sum(mx_builder *b, int weights, int n, const int *xs);

/* Dims of a value (its rank in *rank). */
const int64_t *bd_dims(mx_builder *b, int v, int *rank);

#define DIMS(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

#endif
