/* plan.c: memory planning over the group schedule: one activation arena.
 *
 * Needs: a typed graph; fuse's groups and layout's views when they ran.
 * Without groups (MIXC_NO_FUSION) every node is its own kernel and every
 * result is stored; without views every layout op is a copy. Changes: fills
 * p->slots (one per value), p->arena_bytes, p->unplanned_bytes, p->planned.
 *
 * A value is materialised when a group produces it and another group (or the
 * caller, for a graph output) reads it, through folded views or directly.
 * Inputs, params and weights (param-only computations, done when weights are
 * bound) live outside the arena. Time is the group's index: a value lives
 * from its producer's group to its last reader's group (to the end for a
 * graph output), both ends included, since a kernel reads its inputs while it
 * writes its outputs.
 * In place: an elementwise group may write a result into the buffer of an
 * input of the same type that dies in it, when every read of that input in
 * the group is at the index being written (elementwise readers of its exact
 * type, no view, none after the writer). That is safe on a GPU thread per
 * element and for the reference kernels, which read x[i] before writing
 * y[i] (ref_unary, ref_binary).
 * Offsets: buffers (an in-place chain is one) sorted by size, largest first,
 * each at the lowest 256-aligned offset that no buffer alive at the same time
 * overlaps (first fit). */
#include <stdio.h>
#include <stdlib.h>

#include "uses.h"

enum { ALIGN = 256 };

typedef struct {
    int *gid;  /* per node: its group (its own index without fuse) */
    int first, last; /* the value's live range so far */
    bool cross;      /* read outside its producer's group */
    int producer_group;
} live_ctx;

static void note_reader(int reader, void *ctx) {
    live_ctx *c = ctx;
    int t = c->gid[reader];
    c->cross |= t != c->producer_group;
    c->last = t > c->last ? t : c->last;
}

typedef struct {
    int root; /* the buffer: the value at the start of an in-place chain */
    int64_t size;
    int start, end;
    int64_t offset;
} buffer;

static int by_size(const void *a, const void *b) {
    const buffer *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->start != y->start ? (x->start > y->start) - (x->start < y->start) : (x->root > y->root) - (x->root < y->root);
}

static int by_offset(const void *a, const void *b) {
    const buffer *const *x = a, *const *y = b;
    return ((*x)->offset > (*y)->offset) - ((*x)->offset < (*y)->offset);
}

/* MIXC_DEBUG >= 2: the arena against the most bytes alive at once, the
 * least any placement of this schedule's buffers can take. */
static void report_alive(const mx_program *p, const buffer *bufs, int n_bufs, int n_groups) {
    int64_t most = 0;
    int when = 0;
    for (int t = 0; t <= n_groups; t++) {
        int64_t alive = 0;
        for (int i = 0; i < n_bufs; i++)
            alive += bufs[i].start <= t && t <= bufs[i].end ? bufs[i].size : 0;
        if (alive > most)
            most = alive, when = t;
    }
    fprintf(stderr, "mixc: plan: arena %.1f MB; the most alive at once %.1f MB, at group %d\n",
            (double)p->arena_bytes / 1e6, (double)most / 1e6, when);
    for (int i = 0; i < n_bufs; i++)
        if (bufs[i].start <= when && when <= bufs[i].end)
            fprintf(stderr, "mixc: plan:   %%%d %.1f MB, groups %d..%d\n", bufs[i].root, (double)bufs[i].size / 1e6,
                    bufs[i].start, bufs[i].end);
}

typedef struct {
    const mx_program *p;
    int group;
    bool reads_group; /* a value read (through folded views) is computed in the group */
} group_read;

static void note_group_read(int value, void *ctx) {
    group_read *c = ctx;
    c->reads_group |= c->p->group_of[c->p->g->values[value].node] == c->group;
}

/* Whether group k computes each element of shape t once, in one loop, from
 * its inputs at that element: every member elementwise of shape t, or a
 * view that reads no member, or one its producer's stores write. An element
 * kernel recomputes a member wherever it is read: a member of another shape
 * (a loop of its own, after the first), a view of a member (a shift, an
 * unfold computed from its output's side) read it at other elements, after
 * an in-place store may have overwritten the input they are computed from. */
static bool one_loop(const mx_program *p, const mx_uses *u, int k, const mx_type *t) {
    const mx_graph *g = p->g;
    const mx_group *gr = &p->groups[k];
    for (int i = 0; i < gr->n_nodes; i++) {
        int n = gr->nodes[i];
        const mx_node *nd = &g->nodes[n];
        if (u->weight[n]) /* computed when weights are bound */
            continue;
        if (mx_view_folded(p, n)) {
            group_read c = {p, k, false};
            mx_uses_node_bases(p, n, note_group_read, &c);
            if (c.reads_group)
                return false;
        } else if (mx_is_view_op(nd->op)) {
            if (!mx_view_forward(g, n))
                return false;
        } else if (!mx_shape_equal(mx_value_type(g, nd->first_out), t)) {
            return false;
        }
    }
    return true;
}

/* Whether value v may take the buffer of input w, which dies in v's group. */
static bool can_take(const mx_program *p, const mx_uses *u, const int *gid, int v, int w) {
    const mx_graph *g = p->g;
    int writer = g->values[v].node;
    if (!mx_type_equal(mx_value_type(g, v), mx_value_type(g, w)))
        return false;
    for (int k = u->first[w]; k < u->first[w + 1]; k++) {
        int r = u->reader[k];
        const mx_node *rn = &g->nodes[r];
        if (mx_view_folded(p, r))
            return false; /* read at another index, maybe by a later group */
        if (gid[r] != gid[writer])
            continue;
        if (mx_ops[rn->op].fusion != MX_FUSE_ELEMWISE || r > writer ||
            !mx_type_equal(mx_value_type(g, rn->first_out), mx_value_type(g, w)))
            return false;
    }
    return one_loop(p, u, gid[writer], mx_value_type(g, w));
}

mx_status mx_pass_plan(mx_program *p, mx_diag *d) {
    const mx_graph *g = p->g;
    int nv = g->n_values, n_groups = p->n_groups;
    mx_uses u;
    mx_uses_init(&u, g);
    int *gid = malloc(((size_t)g->n_nodes + 1) * sizeof(int));
    int *start = malloc(((size_t)nv + 1) * sizeof(int)), *end = malloc(((size_t)nv + 1) * sizeof(int));
    int *root = malloc(((size_t)nv + 1) * sizeof(int));
    bool *taken = calloc((size_t)nv + 1, sizeof(bool));
    buffer *bufs = malloc(((size_t)nv + 1) * sizeof(buffer));
    const buffer **live = malloc(((size_t)nv + 1) * sizeof(buffer *));
    free(p->slots);
    p->slots = malloc(((size_t)nv + 1) * sizeof(mx_slot));
    if (!p->group_of) { /* no fuse: one kernel per node, in node order */
        n_groups = 0;
        for (int n = 0; n < g->n_nodes; n++)
            gid[n] = mx_ops[g->nodes[n].op].fusion == MX_FUSE_SOURCE ? -1 : n_groups++;
    } else {
        for (int n = 0; n < g->n_nodes; n++)
            gid[n] = p->group_of[n];
    }
    p->unplanned_bytes = 0;
    for (int v = 0; v < nv; v++) {
        int prod = g->values[v].node;
        const mx_type *t = mx_value_type(g, v);
        p->slots[v] = (mx_slot){-1, (int64_t)mx_dtype_size(t->dtype) * mx_type_numel(t), -1};
        root[v] = v;
        start[v] = end[v] = -1;
        if (gid[prod] < 0 || u.weight[prod] || mx_view_folded(p, prod))
            continue;
        live_ctx c = {gid, gid[prod], gid[prod], false, gid[prod]};
        mx_uses_readers(p, &u, v, note_reader, &c);
        if (u.output[v])
            c.cross = true, c.last = n_groups;
        if (!c.cross)
            continue;
        start[v] = c.first;
        end[v] = c.last;
        p->unplanned_bytes += p->slots[v].bytes;
    }
    /* In place, in schedule order so that chains form front to back. */
    for (int v = 0; v < nv && !p->no_reuse; v++) {
        int prod = g->values[v].node;
        if (start[v] < 0 || !p->group_of || p->groups[gid[prod]].kind != MX_FUSE_ELEMWISE)
            continue;
        for (int i = 0; i < g->nodes[prod].n_in; i++) {
            int w = mx_node_input(g, prod, i);
            if (w == MX_NONE || start[w] < 0 || taken[w] || u.output[w] || end[w] != start[v] ||
                !can_take(p, &u, gid, v, w))
                continue;
            taken[w] = true;
            p->slots[v].in_place_of = w;
            root[v] = root[w];
            break;
        }
    }
    int n_bufs = 0;
    int *buf_of = malloc(((size_t)nv + 1) * sizeof(int));
    for (int v = 0; v < nv; v++) {
        buf_of[v] = -1;
        if (start[v] < 0)
            continue;
        if (root[v] == v) {
            bufs[n_bufs] = (buffer){v, (p->slots[v].bytes + ALIGN - 1) / ALIGN * ALIGN, start[v], end[v], 0};
            buf_of[v] = n_bufs++;
        } else {
            buffer *b = &bufs[buf_of[root[v]]];
            buf_of[v] = buf_of[root[v]];
            b->end = end[v] > b->end ? end[v] : b->end;
        }
    }
    if (p->no_reuse) /* every buffer alive throughout: first fit places them side by side */
        for (int i = 0; i < n_bufs; i++)
            bufs[i].start = 0, bufs[i].end = n_groups;
    qsort(bufs, (size_t)n_bufs, sizeof *bufs, by_size);
    p->arena_bytes = 0;
    for (int i = 0; i < n_bufs; i++) {
        buffer *b = &bufs[i];
        int n_live = 0;
        for (int j = 0; j < i; j++)
            if (bufs[j].start <= b->end && b->start <= bufs[j].end)
                live[n_live++] = &bufs[j];
        qsort(live, (size_t)n_live, sizeof *live, by_offset);
        int64_t at = 0;
        for (int j = 0; j < n_live; j++) {
            if (live[j]->offset >= at + b->size)
                break;
            int64_t after = live[j]->offset + live[j]->size;
            at = after > at ? after : at;
        }
        b->offset = at;
        p->arena_bytes = at + b->size > p->arena_bytes ? at + b->size : p->arena_bytes;
    }
    if (mx_debug_level() >= 2)
        report_alive(p, bufs, n_bufs, n_groups);
    /* buf_of indexed the unsorted array: map roots to their placed offsets. */
    for (int i = 0; i < n_bufs; i++)
        buf_of[bufs[i].root] = i;
    for (int v = 0; v < nv; v++)
        if (start[v] >= 0)
            p->slots[v].offset = bufs[buf_of[root[v]]].offset;
    p->planned = true;
    mx_uses_free(&u);
    free(gid), free(start), free(end), free(root), free(taken), free(bufs), free(live), free(buf_of);
    return MX_OK;
}
