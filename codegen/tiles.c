/* tiles.c: the cost model's default tiles (docs/codegen.md, "Tiles").
 *
 * Small rules, each with its reason:
 * - element kernels (pointwise, conv): 256 threads, fewer (a multiple of 32)
 *   when the group has fewer elements; the grid strides beyond 1024 blocks.
 * - row kernels (norm, reduce): a power of two from 32 to 256 threads, about
 *   one per row element, so short rows (C = 16 .. 64) do not idle 7/8 of a
 *   block and long ones (C = 1000) take 4 elements per thread.
 * - scan: the scan emitter's own model (mx_scan_default_tiles, docs/scan.md).
 * Vector width 1 and no min-blocks bound everywhere for now. */
#include "codegen.h"
#include "scan_plan.h"

static int64_t group_numel(const mx_program *p, int group) {
    int anchor = p->groups[group].anchor;
    const mx_graph *g = p->g;
    mx_fusion k = p->groups[group].kind;
    int v = (k == MX_FUSE_NORM || k == MX_FUSE_REDUCE) ? mx_node_input(g, anchor, 0) : mx_node_output(g, anchor, 0);
    return mx_type_numel(mx_value_type(g, v));
}

static int row_threads(const mx_program *p, int group) {
    const mx_graph *g = p->g;
    int anchor = p->groups[group].anchor;
    const mx_type *x = mx_node_input_type(g, anchor, 0);
    mx_op op = g->nodes[anchor].op;
    int axis = op == MX_OP_LAYERNORM || op == MX_OP_RMSNORM ? x->rank - 1
                                                           : mx_axis(mx_node_int(g, anchor, MX_A_AXIS), x->rank);
    int64_t n = x->rank ? x->dim[axis] : 1;
    int threads = 32;
    while (threads < 256 && threads < n)
        threads *= 2;
    return threads;
}

mx_tiles mx_tiles_default(const mx_program *p, int group, const mx_target *target) {
    mx_tiles t = {.threads = 256, .items = 1, .channels = 1, .lanes_per_state = 1, .vector = 1};
    switch (p->groups[group].kind) {
    case MX_FUSE_NORM:
    case MX_FUSE_REDUCE:
        t.threads = row_threads(p, group);
        break;
    case MX_FUSE_SCAN:
        return mx_scan_default_tiles(p, group, target);
    default: {
        int64_t n = group_numel(p, group);
        if (n < 256)
            t.threads = (int)((n + 31) / 32 * 32);
        break;
    }
    }
    return t;
}
