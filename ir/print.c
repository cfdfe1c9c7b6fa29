/* print.c: a graph -> its canonical text (docs/ir.md, "Canonical form").
 *
 * The printer and the parser are inverses on canonical text:
 * print(parse(print(g))) == print(g). For that, every choice that the text
 * leaves open is fixed here: attributes in schema order and only when
 * required or not at their default, floats in the shortest form that reads
 * back to the same double, trailing absent inputs left out, and a generated
 * name for every unnamed value that no named value can shadow. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct {
    char *buf;
    size_t len, cap;
    bool failed; /* out of memory: the print returns NULL */
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...) {
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = 2 * t->cap + (size_t)n;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->failed = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

/* Unnamed values print as %<id>, the form mx_node_label uses in messages.
 * Only a named value whose name starts with a digit could take that
 * spelling; then the generated one becomes %<id>_1, %<id>_2, ... (generated
 * names never meet each other: the digits before '_' are distinct ids). */
typedef struct {
    const char **taken; /* names of named values that start with a digit */
    int n_taken;
} namer;

static bool is_taken(const namer *nm, const char *name) {
    for (int i = 0; i < nm->n_taken; i++)
        if (strcmp(nm->taken[i], name) == 0)
            return true;
    return false;
}

static void put_value(text *t, const mx_graph *g, const namer *nm, int v) {
    if (v == MX_NONE) {
        put(t, "_");
        return;
    }
    if (g->values[v].name) {
        put(t, "%%%s", g->values[v].name);
        return;
    }
    char name[48];
    snprintf(name, sizeof name, "%d", v);
    for (int k = 1; is_taken(nm, name); k++)
        snprintf(name, sizeof name, "%d_%d", v, k);
    put(t, "%%%s", name);
}

/* The shortest of %.15g and %.17g that strtod reads back exactly. */
static void put_double(text *t, double x) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", x);
    if (strtod(buf, NULL) != x)
        snprintf(buf, sizeof buf, "%.17g", x);
    put(t, "%s", buf);
}

static void put_keyword(text *t, const char *const *names, int64_t k) {
    int count = 0;
    while (names[count])
        count++;
    /* An index outside the table only comes from a broken builder; print the
     * number so that the parser's error points at it. */
    if (k >= 0 && k < count)
        put(t, "%s", names[k]);
    else
        put(t, "%" PRId64, k);
}

static bool is_default(const mx_attr_spec *s, const mx_attr *a) {
    switch (s->kind) {
    case MX_AK_INT:
    case MX_AK_ENUM:
        return a->i == (int64_t)s->def;
    case MX_AK_FLOAT: /* -0.0 is not the default 0 */
        return a->f == s->def && signbit(a->f) == signbit(s->def);
    case MX_AK_INTS:
    case MX_AK_ENUMS:
        return a->n == 0;
    }
    return false;
}

static void put_attr_value(text *t, const mx_attr_spec *s, const mx_attr *a) {
    switch (s->kind) {
    case MX_AK_INT:
        put(t, "%" PRId64, a->i);
        return;
    case MX_AK_FLOAT:
        put_double(t, a->f);
        return;
    case MX_AK_ENUM:
        put_keyword(t, s->names, a->i);
        return;
    case MX_AK_INTS:
    case MX_AK_ENUMS:
        /* [128,128] like the dims of a type, but [row, col_rev]: keywords
         * run together are hard to read. */
        put(t, "[");
        for (int i = 0; i < a->n; i++) {
            if (s->kind == MX_AK_INTS) {
                put(t, i ? ",%" PRId64 : "%" PRId64, a->v[i]);
            } else {
                put(t, "%s", i ? ", " : "");
                put_keyword(t, s->names, a->v[i]);
            }
        }
        put(t, "]");
        return;
    }
}

static void put_node(text *t, const mx_graph *g, const namer *nm, int node) {
    const mx_node *n = &g->nodes[node];
    const mx_op_desc *op = &mx_ops[n->op];
    put(t, "  ");
    for (int i = 0; i < n->n_out; i++) {
        put(t, "%s", i ? ", " : "");
        put_value(t, g, nm, mx_node_output(g, node, i));
    }
    put(t, " = %s(", op->name);
    int n_in = n->n_in;
    while (n_in > 0 && mx_node_input(g, node, n_in - 1) == MX_NONE)
        n_in--;
    for (int i = 0; i < n_in; i++) {
        put(t, "%s", i ? ", " : "");
        put_value(t, g, nm, mx_node_input(g, node, i));
    }
    put(t, ")");
    int shown = 0;
    for (int s = 0; op->attrs[s].key != MX_A_NONE; s++) {
        if (!op->attrs[s].required && is_default(&op->attrs[s], &n->attr[s]))
            continue;
        put(t, shown++ ? ", %s=" : " {%s=", mx_attr_names[op->attrs[s].key]);
        put_attr_value(t, &op->attrs[s], &n->attr[s]);
    }
    put(t, "%s", shown ? "} : " : " : ");
    for (int i = 0; i < n->n_out; i++) {
        char type[96];
        mx_type_str(mx_value_type(g, mx_node_output(g, node, i)), type, sizeof type);
        put(t, "%s%s", i ? ", " : "", type);
    }
    put(t, "\n");
}

char *mx_graph_print(const mx_graph *g) {
    namer nm = {malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *nm.taken), 0};
    if (!nm.taken)
        return NULL;
    for (int v = 0; v < g->n_values; v++) {
        const char *name = g->values[v].name;
        if (name && name[0] >= '0' && name[0] <= '9')
            nm.taken[nm.n_taken++] = name;
    }
    text t = {malloc(4096), 0, 4096, false};
    t.failed = !t.buf;
    put(&t, "graph %s {\n", g->name);
    for (int node = 0; node < g->n_nodes; node++)
        put_node(&t, g, &nm, node);
    if (g->n_outputs > 0) {
        put(&t, "  output ");
        for (int i = 0; i < g->n_outputs; i++) {
            put(&t, "%s", i ? ", " : "");
            put_value(&t, g, &nm, g->outputs[i]);
        }
        put(&t, "\n");
    }
    put(&t, "}\n");
    free(nm.taken);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}
