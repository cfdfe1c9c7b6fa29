/* cse.c: common subexpression elimination (global value numbering).
 *
 * Needs: a verified graph. Changes: a node with the same op, the same inputs
 * (after merging) and equal attributes as an earlier node is dropped and its
 * results stand for the earlier node's; consts of one type and value merge
 * alike. Every op is pure, so equal keys mean equal results. Inputs and
 * params never merge: two of them are distinct data whatever their types.
 * The kept node keeps its names; a merged node's names are lost (a graph
 * output keeps its name where the kept value has none).
 *
 * One walk in definition order suffices: inputs are mapped before a node is
 * looked up, so merges propagate (two equal chains merge node by node). The
 * table, keyed by a hash of (op, inputs, attributes), makes it O(nodes). */
#include <stdlib.h>
#include <string.h>

#include "program.h"

typedef struct {
    uint64_t hash;
    int node; /* in the new graph; -1: empty slot */
} cse_slot;

typedef struct {
    cse_slot *slots;
    size_t mask; /* capacity - 1; capacity a power of two > 2 * nodes */
} cse_table;

static uint64_t mix(uint64_t h, uint64_t x) {
    h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0x100000001B3ull;
}

static uint64_t float_bits(double f) {
    uint64_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Attribute equality over the op's schema. Floats compare by bits, so that
 * -0 and 0 (which the printer tells apart) stay apart. */
static bool attrs_equal(const mx_graph *ga, int a, const mx_graph *gb, int b) {
    const mx_attr_spec *spec = mx_ops[ga->nodes[a].op].attrs;
    for (int s = 0; spec[s].key != MX_A_NONE; s++) {
        const mx_attr *x = &ga->nodes[a].attr[s], *y = &gb->nodes[b].attr[s];
        switch (spec[s].kind) {
        case MX_AK_INT:
        case MX_AK_ENUM:
            if (x->i != y->i)
                return false;
            break;
        case MX_AK_FLOAT:
            if (float_bits(x->f) != float_bits(y->f))
                return false;
            break;
        case MX_AK_INTS:
        case MX_AK_ENUMS:
            if (x->n != y->n || (x->n && memcmp(x->v, y->v, (size_t)x->n * sizeof *x->v) != 0))
                return false;
            break;
        }
    }
    return true;
}

static uint64_t hash_node(const mx_rewriter *rw, int node) {
    const mx_graph *g = rw->old;
    const mx_node *n = &g->nodes[node];
    uint64_t h = mix((uint64_t)n->op, (uint64_t)n->n_out);
    for (int i = 0; i < n->n_in; i++)
        h = mix(h, (uint64_t)(int64_t)mx_rewrite_input(rw, node, i));
    const mx_attr_spec *spec = mx_ops[n->op].attrs;
    for (int s = 0; spec[s].key != MX_A_NONE; s++) {
        const mx_attr *a = &n->attr[s];
        if (spec[s].kind == MX_AK_FLOAT)
            h = mix(h, float_bits(a->f));
        else if (spec[s].kind == MX_AK_INTS || spec[s].kind == MX_AK_ENUMS)
            for (int i = 0; i < a->n; i++)
                h = mix(h, (uint64_t)a->v[i]);
        else
            h = mix(h, (uint64_t)a->i);
    }
    if (n->op == MX_OP_CONST) { /* a source's type is declared, not implied */
        const mx_type *t = mx_value_type(g, n->first_out);
        h = mix(h, (uint64_t)t->dtype);
        for (int i = 0; i < t->rank; i++)
            h = mix(h, (uint64_t)t->dim[i]);
        h = mix(h, (uint64_t)t->rank);
    }
    return h;
}

/* Does new node m compute what old node computes? */
static bool same_node(const mx_rewriter *rw, int node, int m) {
    const mx_node *a = &rw->old->nodes[node], *b = &rw->g->nodes[m];
    if (a->op != b->op || a->n_in != b->n_in || a->n_out != b->n_out)
        return false;
    for (int i = 0; i < a->n_in; i++)
        if (mx_rewrite_input(rw, node, i) != mx_node_input(rw->g, m, i))
            return false;
    if (a->op == MX_OP_CONST &&
        !mx_type_equal(mx_value_type(rw->old, a->first_out), mx_value_type(rw->g, b->first_out)))
        return false;
    return attrs_equal(rw->old, node, rw->g, m);
}

static bool rule(mx_rewriter *rw, int node, void *ctx) {
    cse_table *t = ctx;
    mx_op op = rw->old->nodes[node].op;
    if (op == MX_OP_INPUT || op == MX_OP_PARAM)
        return false;
    uint64_t h = hash_node(rw, node);
    size_t i = (size_t)h & t->mask;
    for (; t->slots[i].node >= 0; i = (i + 1) & t->mask) {
        int m = t->slots[i].node;
        if (t->slots[i].hash != h || !same_node(rw, node, m))
            continue;
        for (int k = 0; k < rw->old->nodes[node].n_out; k++)
            rw->map[mx_node_output(rw->old, node, k)] = mx_node_output(rw->g, m, k);
        return true;
    }
    t->slots[i] = (cse_slot){h, mx_rewrite_copy(rw, node)};
    return true;
}

mx_status mx_pass_cse(mx_program *p, mx_diag *d) {
    size_t cap = 16;
    while (cap <= 2 * (size_t)p->g->n_nodes)
        cap *= 2;
    cse_table t = {malloc(cap * sizeof *t.slots), cap - 1};
    if (!t.slots)
        return mx_fail(d, MX_ERR_NOMEM, "cse: out of memory");
    for (size_t i = 0; i < cap; i++)
        t.slots[i].node = -1;
    /* The rewrite always runs: whether anything merges is known only after
     * the walk that finds it. */
    mx_status st = mx_rewrite(p, rule, &t, d);
    free(t.slots);
    return st;
}
