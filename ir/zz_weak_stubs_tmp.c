/* TEMPORARY weak stubs so that the tree links while the ops are written in parallel. Delete when every op exists. */
#include <stdlib.h>
#include "ops_impl.h"
__attribute__((weak)) mx_status infer_broadcast(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_cast(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_concat(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_conv2d(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_dwconv1d(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_dwconv2d(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_linear(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_matmul(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_norm(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_permute(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_reduce(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_reshape(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_scan_gather(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_scan_scatter(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_selective_scan(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_slice(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_source(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_space_to_depth(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_split(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_unary(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_unary_axis(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_unfold(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) mx_status infer_weighted_sum(const mx_graph *g, int node, mx_type *out, mx_diag *d) { abort(); }
__attribute__((weak)) void ref_binary(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_concat(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_const(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_conv2d(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_copy(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_dwconv1d(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_dwconv2d(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_flip(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_layernorm(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_linear(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_matmul(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_permute(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_reduce(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_rmsnorm(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_scan_gather(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_scan_scatter(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_selective_scan(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_shift(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_slice(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_softmax(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_source(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_space_to_depth(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_split(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_unary(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_unfold(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) void ref_weighted_sum(const mx_graph *g, int node, const float *const *in, float *const *out) { abort(); }
__attribute__((weak)) mx_cost cost_conv2d(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_dwconv(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_elementwise(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_layout(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_linear(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_matmul(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_norm(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_reduce(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_scan_scatter(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_selective_scan(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_softmax(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_weighted_sum(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_cost cost_zero(const mx_graph *g, int node) { abort(); }
__attribute__((weak)) mx_graph *mx_graph_parse(const char *text, const char *filename, mx_diag *diag) { abort(); }
__attribute__((weak)) mx_graph *mx_graph_load(const char *path, mx_diag *diag) { abort(); }
__attribute__((weak)) char *mx_graph_print(const mx_graph *g) { abort(); }
__attribute__((weak)) mx_status mx_graph_verify(const mx_graph *g, mx_diag *diag) { abort(); }
__attribute__((weak)) mx_buffers *mx_buffers_new(const mx_graph *g) { abort(); }
__attribute__((weak)) void mx_buffers_free(mx_buffers *b) { abort(); }
__attribute__((weak)) void mx_buffers_fill_random(mx_buffers *b, const mx_graph *g, uint64_t seed) { abort(); }
__attribute__((weak)) mx_status mx_ref_run(const mx_graph *g, mx_buffers *b, mx_diag *diag) { abort(); }
