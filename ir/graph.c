/* graph.c: the arena, diagnostics, types and graph construction. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ---- arena ---------------------------------------------------------------- */

struct mx_arena_block {
    mx_arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void *mx_arena_alloc(mx_arena *a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    mx_arena_block *b = a->head;
    if (!b || b->used + size > b->size) {
        size_t cap = size > 16384 ? size : 16384;
        b = malloc(sizeof *b + cap);
        if (!b) {
            fprintf(stderr, "mixc: out of memory\n");
            abort();
        }
        b->next = a->head;
        b->used = 0;
        b->size = cap;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *mx_arena_strdup(mx_arena *a, const char *s, size_t len) {
    char *p = mx_arena_alloc(a, len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

void mx_arena_free(mx_arena *a) {
    for (mx_arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
}

/* ---- diagnostics ---------------------------------------------------------- */

mx_status mx_vfail(mx_diag *d, mx_status status, const char *fmt, va_list ap) {
    if (d)
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    return status;
}

mx_status mx_fail(mx_diag *d, mx_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mx_vfail(d, status, fmt, ap);
    va_end(ap);
    return status;
}

/* ---- types ---------------------------------------------------------------- */

size_t mx_dtype_size(mx_dtype t) { return t == MX_F32 ? 4 : 2; }

int64_t mx_type_numel(const mx_type *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->dim[i];
    return n;
}

bool mx_type_fits(const mx_type *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dim[i] > 0 && n > MX_MAX_ELEMS / t->dim[i])
            return false;
        n *= t->dim[i] > 0 ? t->dim[i] : 1;
    }
    return true;
}

bool mx_shape_equal(const mx_type *a, const mx_type *b) {
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return false;
    return true;
}

int64_t mx_dim_from_end(const mx_type *t, int i) { return i < t->rank ? t->dim[t->rank - 1 - i] : 1; }

int mx_broadcast_suffix(const mx_type *x, const mx_type *to) {
    int full = 0;
    while (full < to->rank && mx_dim_from_end(x, full) == mx_dim_from_end(to, full) &&
           (mx_dim_from_end(x, full) != 1 || full < x->rank))
        full++;
    for (int i = full; i < to->rank; i++)
        if (mx_dim_from_end(x, i) != 1)
            return -1;
    return full;
}

bool mx_type_equal(const mx_type *a, const mx_type *b) { return a->dtype == b->dtype && mx_shape_equal(a, b); }

char *mx_type_str(const mx_type *t, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "%s[", mx_dtype_names[t->dtype]);
    for (int i = 0; i < t->rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)t->dim[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

int mx_axis(int64_t axis, int rank) {
    if (axis < 0)
        axis += rank;
    return axis >= 0 && axis < rank ? (int)axis : -1;
}

bool mx_perm_swaps_last_two(const mx_attr *perm) {
    int r = perm->n;
    for (int i = 0; i < r; i++)
        if (perm->v[i] != (i < r - 2 ? i : i == r - 2 ? r - 1 : r - 2))
            return false;
    return r >= 2;
}

/* ---- graph ---------------------------------------------------------------- */

#define GROW(ptr, n, cap)                                                      \
    do {                                                                       \
        if ((n) >= (cap)) {                                                    \
            (cap) = (cap) ? 2 * (cap) : 16;                                    \
            void *grown = realloc((ptr), (size_t)(cap) * sizeof *(ptr));       \
            if (!grown) {                                                      \
                fprintf(stderr, "mixc: out of memory\n");                      \
                abort();                                                       \
            }                                                                  \
            (ptr) = grown;                                                     \
        }                                                                      \
    } while (0)

mx_graph *mx_graph_new(const char *name) {
    mx_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->name = mx_arena_strdup(&g->arena, name, strlen(name));
    return g;
}

/* A copy of n items of an array, or NULL for none. */
static void *copy_array(const void *items, int n, size_t size) {
    if (n == 0)
        return NULL;
    void *copy = malloc((size_t)n * size);
    if (!copy) {
        fprintf(stderr, "mixc: out of memory\n");
        abort();
    }
    return memcpy(copy, items, (size_t)n * size);
}

static void index_names(mx_graph *g);

mx_graph *mx_graph_clone(const mx_graph *g) {
    mx_graph *c = mx_graph_new(g->name);
    if (!c)
        return NULL;
    c->nodes = copy_array(g->nodes, g->n_nodes, sizeof *g->nodes);
    c->values = copy_array(g->values, g->n_values, sizeof *g->values);
    c->args = copy_array(g->args, g->n_args, sizeof *g->args);
    c->outputs = copy_array(g->outputs, g->n_outputs, sizeof *g->outputs);
    c->n_nodes = c->cap_nodes = g->n_nodes;
    c->n_values = c->cap_values = g->n_values;
    c->n_args = c->cap_args = g->n_args;
    c->n_outputs = c->cap_outputs = g->n_outputs;
    /* What lives in g's arena (names, attribute lists) moves to c's. */
    for (int v = 0; v < c->n_values; v++)
        if (g->values[v].name)
            c->values[v].name = mx_arena_strdup(&c->arena, g->values[v].name, strlen(g->values[v].name));
    index_names(c);
    for (int n = 0; n < c->n_nodes; n++) {
        const mx_attr_spec *spec = mx_ops[c->nodes[n].op].attrs;
        for (int s = 0; spec[s].key != MX_A_NONE; s++)
            if (spec[s].kind == MX_AK_INTS || spec[s].kind == MX_AK_ENUMS)
                mx_node_set_ints(c, n, spec[s].key, g->nodes[n].attr[s].v, g->nodes[n].attr[s].n);
    }
    return c;
}

void mx_graph_free(mx_graph *g) {
    if (!g)
        return;
    free(g->nodes);
    free(g->values);
    free(g->args);
    free(g->outputs);
    free(g->name_slots);
    mx_arena_free(&g->arena);
    free(g);
}

int mx_graph_add_node(mx_graph *g, mx_op op, const int *inputs, int n_in, int n_out) {
    assert(op >= 0 && op < MX_OP_COUNT && n_out >= 1);
    GROW(g->nodes, g->n_nodes, g->cap_nodes);
    int id = g->n_nodes++;
    mx_node *n = &g->nodes[id];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->first_in = g->n_args;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        GROW(g->args, g->n_args, g->cap_args);
        g->args[g->n_args++] = inputs[i];
    }
    n->first_out = g->n_values;
    n->n_out = n_out;
    for (int i = 0; i < n_out; i++) {
        GROW(g->values, g->n_values, g->cap_values);
        mx_value *v = &g->values[g->n_values++];
        memset(v, 0, sizeof *v);
        v->type.rank = -1;
        v->node = id;
        v->index = i;
    }
    const mx_attr_spec *spec = mx_ops[op].attrs;
    for (int s = 0; spec[s].key != MX_A_NONE; s++) {
        assert(s < MX_MAX_ATTRS);
        n->attr[s].i = (int64_t)spec[s].def;
        n->attr[s].f = spec[s].def;
    }
    return id;
}

int mx_graph_add_source(mx_graph *g, mx_op op, const char *name, mx_type type) {
    assert(mx_ops[op].fusion == MX_FUSE_SOURCE);
    int node = mx_graph_add_node(g, op, NULL, 0, 1);
    int v = mx_node_output(g, node, 0);
    g->values[v].type = type;
    if (name)
        mx_value_set_name(g, v, name);
    return node;
}

void mx_graph_add_output(mx_graph *g, int value) {
    GROW(g->outputs, g->n_outputs, g->cap_outputs);
    g->outputs[g->n_outputs++] = value;
}

/* ---- the name index ---------------------------------------------------------- */

static uint32_t hash_name(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The slot that holds name, or the empty slot where it would go. */
static int *name_slot(const mx_graph *g, const char *s, size_t len) {
    for (uint32_t i = hash_name(s, len);; i++) {
        int *slot = &g->name_slots[i & (uint32_t)(g->name_cap - 1)];
        if (*slot == MX_NONE)
            return slot;
        const char *name = g->values[*slot].name;
        if (strncmp(name, s, len) == 0 && name[len] == 0)
            return slot;
    }
}

/* Indexes every named value again, in id order so that the first of a
 * name holds its slot; the table at most half full. */
static void index_names(mx_graph *g) {
    int named = 0;
    for (int v = 0; v < g->n_values; v++)
        named += g->values[v].name != NULL;
    if (2 * (named + 1) > g->name_cap) {
        int cap = g->name_cap ? g->name_cap : 64;
        while (2 * (named + 1) > cap)
            cap *= 2;
        free(g->name_slots);
        g->name_slots = malloc((size_t)cap * sizeof *g->name_slots);
        if (!g->name_slots) {
            fprintf(stderr, "mixc: out of memory\n");
            abort();
        }
        g->name_cap = cap;
    }
    for (int i = 0; i < g->name_cap; i++)
        g->name_slots[i] = MX_NONE;
    g->n_names = 0;
    for (int v = 0; v < g->n_values; v++) {
        const char *name = g->values[v].name;
        int *slot = name ? name_slot(g, name, strlen(name)) : NULL;
        if (slot && *slot == MX_NONE)
            *slot = v, g->n_names++;
    }
}

void mx_value_set_name_n(mx_graph *g, int value, const char *name, size_t len) {
    bool renamed = g->values[value].name != NULL;
    g->values[value].name = mx_arena_strdup(&g->arena, name, len);
    if (renamed || 2 * (g->n_names + 1) > g->name_cap) {
        index_names(g); /* a rename may leave its old name's slot to another value */
        return;
    }
    int *slot = name_slot(g, name, len);
    if (*slot == MX_NONE)
        *slot = value, g->n_names++;
    else if (value < *slot)
        *slot = value;
}

void mx_value_set_name(mx_graph *g, int value, const char *name) {
    mx_value_set_name_n(g, value, name, strlen(name));
}

int mx_graph_value_find_n(const mx_graph *g, const char *name, size_t len) {
    return g->name_cap ? *name_slot(g, name, len) : MX_NONE;
}

const mx_type *mx_node_input_type(const mx_graph *g, int node, int i) {
    int v = mx_node_input(g, node, i);
    return v == MX_NONE ? NULL : &g->values[v].type;
}

/* ---- attributes ----------------------------------------------------------- */

int mx_attr_slot(mx_op op, mx_attr_key key) {
    const mx_attr_spec *spec = mx_ops[op].attrs;
    for (int s = 0; spec[s].key != MX_A_NONE; s++)
        if (spec[s].key == key)
            return s;
    return -1;
}

static int slot_of(const mx_graph *g, int node, mx_attr_key key) {
    int s = mx_attr_slot(g->nodes[node].op, key);
    assert(s >= 0 && "attribute not in the op's schema");
    return s;
}

const mx_attr *mx_node_attr(const mx_graph *g, int node, mx_attr_key key) {
    return &g->nodes[node].attr[slot_of(g, node, key)];
}

int64_t mx_product_k(const mx_graph *g, int node) {
    mx_op op = g->nodes[node].op;
    if (op != MX_OP_LINEAR && op != MX_OP_MATMUL)
        return 0;
    const mx_type *x = mx_node_input_type(g, node, 0); /* x [.., K] or A [.., M, K] */
    return x->dim[x->rank - 1];
}

int64_t mx_node_int(const mx_graph *g, int node, mx_attr_key key) {
    return mx_node_attr(g, node, key)->i;
}

double mx_node_float(const mx_graph *g, int node, mx_attr_key key) {
    return mx_node_attr(g, node, key)->f;
}

void mx_node_set_int(mx_graph *g, int node, mx_attr_key key, int64_t v) {
    mx_attr *a = &g->nodes[node].attr[slot_of(g, node, key)];
    a->i = v;
    a->f = (double)v;
}

void mx_node_set_float(mx_graph *g, int node, mx_attr_key key, double v) {
    mx_attr *a = &g->nodes[node].attr[slot_of(g, node, key)];
    a->f = v;
}

void mx_node_set_ints(mx_graph *g, int node, mx_attr_key key, const int64_t *v, int n) {
    mx_attr *a = &g->nodes[node].attr[slot_of(g, node, key)];
    a->n = n;
    a->v = mx_arena_alloc(&g->arena, (size_t)(n ? n : 1) * sizeof *a->v);
    memcpy(a->v, v, (size_t)n * sizeof *v);
}

const char *mx_node_label(const mx_graph *g, int node, char *buf, size_t size) {
    const mx_node *n = &g->nodes[node];
    const char *name = g->values[n->first_out].name;
    if (name)
        snprintf(buf, size, "%%%s (%s)", name, mx_ops[n->op].name);
    else
        snprintf(buf, size, "%%%d (%s)", n->first_out, mx_ops[n->op].name);
    return buf;
}

mx_status mx_attr_check(const mx_graph *g, int node, int slot, mx_diag *d) {
    const mx_attr_spec *s = &mx_ops[g->nodes[node].op].attrs[slot];
    const mx_attr *a = &g->nodes[node].attr[slot];
    const char *key = mx_attr_names[s->key];
    switch (s->kind) {
    case MX_AK_INT:
        if ((double)a->i < s->lo || (double)a->i > s->hi)
            return mx_fail(d, MX_ERR_INVALID, "attribute %s = %lld is out of range [%.0f, %.0f]", key,
                           (long long)a->i, s->lo, s->hi);
        return MX_OK;
    case MX_AK_FLOAT:
        if (!(a->f >= s->lo && a->f <= s->hi))
            return mx_fail(d, MX_ERR_INVALID, "attribute %s = %g is out of range [%g, %g]", key, a->f,
                           s->lo, s->hi);
        return MX_OK;
    case MX_AK_INTS:
        for (int i = 0; i < a->n; i++)
            if ((double)a->v[i] < s->lo || (double)a->v[i] > s->hi)
                return mx_fail(d, MX_ERR_INVALID,
                               "attribute %s: item %d = %lld is out of range [%.0f, %.0f]", key, i,
                               (long long)a->v[i], s->lo, s->hi);
        if (s->required && a->n == 0)
            return mx_fail(d, MX_ERR_INVALID, "attribute %s: expected a non-empty list", key);
        return MX_OK;
    case MX_AK_ENUM:
    case MX_AK_ENUMS: {
        int count = 0;
        while (s->names[count])
            count++;
        int n = s->kind == MX_AK_ENUM ? 1 : a->n;
        for (int i = 0; i < n; i++) {
            int64_t v = s->kind == MX_AK_ENUM ? a->i : a->v[i];
            if (v < 0 || v >= count)
                return mx_fail(d, MX_ERR_INVALID, "attribute %s: %lld is not a valid keyword", key,
                               (long long)v);
        }
        if (s->kind == MX_AK_ENUMS && a->n == 0)
            return mx_fail(d, MX_ERR_INVALID, "attribute %s: expected a non-empty list", key);
        return MX_OK;
    }
    }
    return MX_OK;
}

mx_status mx_graph_infer_node(mx_graph *g, int node, mx_diag *d) {
    mx_node *n = &g->nodes[node];
    const mx_op_desc *op = &mx_ops[n->op];
    char label[160];
    mx_node_label(g, node, label, sizeof label);
    mx_diag inner;
    mx_status st = MX_OK;
    for (int s = 0; op->attrs[s].key != MX_A_NONE && st == MX_OK; s++)
        st = mx_attr_check(g, node, s, &inner);
    if (st == MX_OK && op->fusion != MX_FUSE_SOURCE) {
        mx_type out[16];
        assert(n->n_out <= 16);
        st = op->infer(g, node, out, &inner);
        for (int i = 0; st == MX_OK && i < n->n_out; i++) {
            char type[160];
            if (!mx_type_fits(&out[i]))
                st = mx_fail(&inner, MX_ERR_INVALID, "result %d would be %s, more than 2^40 elements", i + 1,
                             mx_type_str(&out[i], type, sizeof type));
            else
                g->values[n->first_out + i].type = out[i];
        }
    }
    if (st != MX_OK)
        return mx_fail(d, st, "node %s: %s", label, inner.msg);
    return MX_OK;
}

mx_cost mx_node_cost(const mx_graph *g, int node) {
    return mx_ops[g->nodes[node].op].cost(g, node);
}

/* ---- public accessors ----------------------------------------------------- */

int mx_graph_value_count(const mx_graph *g) { return g->n_values; }

int mx_graph_value_find(const mx_graph *g, const char *name) {
    return mx_graph_value_find_n(g, name, strlen(name));
}

const char *mx_graph_value_name(const mx_graph *g, int value) { return g->values[value].name; }
int mx_graph_value_rank(const mx_graph *g, int value) { return g->values[value].type.rank; }
const int64_t *mx_graph_value_dims(const mx_graph *g, int value) { return g->values[value].type.dim; }
int64_t mx_graph_value_numel(const mx_graph *g, int value) {
    return mx_type_numel(&g->values[value].type);
}
int mx_graph_output_count(const mx_graph *g) { return g->n_outputs; }
int mx_graph_output(const mx_graph *g, int i) { return g->outputs[i]; }

static bool is_input(const mx_graph *g, int node) {
    mx_op op = g->nodes[node].op;
    return op == MX_OP_INPUT || op == MX_OP_PARAM;
}

int mx_graph_input_count(const mx_graph *g) {
    int count = 0;
    for (int n = 0; n < g->n_nodes; n++)
        count += is_input(g, n);
    return count;
}

int mx_graph_value_is_param(const mx_graph *g, int v) { return g->nodes[g->values[v].node].op == MX_OP_PARAM; }

mx_dtype mx_graph_value_dtype(const mx_graph *g, int v) { return g->values[v].type.dtype; }

int mx_graph_input(const mx_graph *g, int i) {
    for (int n = 0; n < g->n_nodes; n++)
        if (is_input(g, n) && i-- == 0)
            return g->nodes[n].first_out;
    return -1;
}
