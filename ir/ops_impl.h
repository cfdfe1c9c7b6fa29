/* ops_impl.h: prototypes of the per-op functions named in ops.def (shape
 * rules in shape.c, costs in cost.c, reference semantics in ref_*.c).
 * Repeated prototypes of shared functions are harmless in C. */
#ifndef MX_OPS_IMPL_H
#define MX_OPS_IMPL_H

#include "ir.h"

#define X(id, name, min_in, max_in, min_out, max_out, fusion, attrs, infer, ref, cost, fpe, epe) \
    mx_status infer(const mx_graph *g, int node, mx_type *out, mx_diag *d);                    \
    void ref(const mx_graph *g, int node, const float *const *in, float *const *out);          \
    mx_cost cost(const mx_graph *g, int node);
#include "ops.def"
#undef X

#endif
