/* emit_pointwise.c: groups whose results are computed element by element:
 * elementwise chains, weighted_sum, copies of views that stay copies, gathers
 * and scatters that are not folded; and the loops the conv emitter shares.
 *
 * A thread computes one element of each value the group stores, in a
 * grid-stride loop over that value's shape (values of one shape share the
 * loop, so a common subexpression is computed once). A value whose producer
 * also stores a view of it (MX_VIEW_PRODUCER: permute, reshape, flip, scan
 * orders, space_to_depth) is stored there too, at the index the element
 * lands at: one computation, several stores. The other producer views
 * (shift, slice, split, unfold) get a loop over their own output. */
#include <stdlib.h>
#include <string.h>

#include "emit.h"

enum { MAX_ROOTS = 256 };

typedef struct {
    int v[MAX_ROOTS];
    int n;
} roots;

static void add_root(mx_emitter *e, roots *r, int v) {
    for (int i = 0; i < r->n; i++)
        if (r->v[i] == v)
            return;
    if (r->n == MAX_ROOTS) {
        mx_emit_fail(e, "more than %d stored values in one kernel", MAX_ROOTS);
        return;
    }
    r->v[r->n++] = v;
}

/* The values the loops compute: every root (emit.h). */
static void collect_roots(mx_emitter *e, roots *r) {
    const mx_program *p = e->p;
    const mx_group *gr = &p->groups[e->group];
    for (int i = 0; i < gr->n_nodes; i++)
        for (int o = 0; o < p->g->nodes[gr->nodes[i]].n_out; o++) {
            int v = mx_node_output(p->g, gr->nodes[i], o);
            if (mx_emit_is_root(e, v))
                add_root(e, r, v);
        }
}

void mx_emit_element_loops(mx_emitter *e, const mx_tiles *t, mx_kernel *k) {
    const mx_graph *g = e->p->g;
    roots r = {.n = 0};
    collect_roots(e, &r);
    if (r.n == 0)
        mx_emit_fail(e, "the group stores nothing");
    bool *done = calloc((size_t)r.n + 1, sizeof(bool));
    int64_t most = 1;
    for (int i = 0; i < r.n; i++) {
        if (done[i])
            continue;
        const mx_type *ti = mx_value_type(g, r.v[i]);
        int64_t n = mx_type_numel(ti);
        most = n > most ? n : most;
        mx_emit_line(e, "// %lld elements", (long long)n);
        bool narrow = strcmp(e->ity, "int") == 0;
        if (narrow) {
            /* By blocks, the position an unsigned blk * blockDim.x + lane: the
             * CPU lowering then sees a multiple of its W lanes plus the lane,
             * and the index maps' quotients and remainders by multiples of W
             * as uniform values and consecutive lanes (llvm_tiles.c,
             * affine_lanes): vector loads and stores, no checks of the lanes'
             * addresses. Same positions and order on a GPU. */
            mx_emit_open(e, "for (int blk = blockIdx.x; blk * (int)blockDim.x < %lld; blk += gridDim.x)", (long long)n);
            mx_emit_line(e, "const unsigned lin = (unsigned)blk * blockDim.x + threadIdx.x;");
            mx_emit_open(e, "if (lin < %lldu)", (long long)n);
        } else {
            mx_emit_open(e, "for (%s lin = (%s)blockIdx.x * blockDim.x + threadIdx.x; lin < %lld; lin += (%s)gridDim.x * blockDim.x)",
                         e->ity, e->ity, (long long)n, e->ity);
        }
        mx_idx_str idx[MX_MAX_RANK];
        mx_emit_delinearise(e, "lin", ti, idx);
        const char *ptr[MX_MAX_RANK];
        for (int d = 0; d < ti->rank; d++)
            ptr[d] = idx[d];
        for (int j = i; j < r.n; j++) {
            if (done[j] || !mx_type_equal(mx_value_type(g, r.v[j]), ti))
                continue;
            done[j] = true;
            char x[96];
            mx_emit_value(e, r.v[j], ptr, x, sizeof x);
            mx_emit_store(e, r.v[j], ptr, x);
        }
        if (narrow)
            mx_emit_close(e);
        mx_emit_close(e);
    }
    free(done);
    int64_t blocks = (most + t->threads - 1) / t->threads;
    /* Enough blocks to fill the target's resident threads; beyond that the
     * loop strides. */
    int64_t fill = (int64_t)e->target->sm_count * e->target->max_threads_per_sm / t->threads;
    k->grid[0] = (unsigned)(blocks < fill ? blocks : fill);
    k->grid[1] = k->grid[2] = 1;
    k->block[0] = (unsigned)t->threads;
    k->block[1] = k->block[2] = 1;
    k->smem = 0;
}

mx_status mx_emit_pointwise(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d) {
    mx_emit_element_loops(e, t, k);
    if (e->status != MX_OK)
        *d = e->diag;
    return e->status;
}
