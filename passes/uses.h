/* uses.h: who reads what, shared by the annotating passes (layout, fuse, plan)
 * and the planned reference run. Internal to passes/. */
#ifndef MX_USES_H
#define MX_USES_H

#include "program.h"

typedef struct {
    int *first;   /* per value, n_values + 1 entries */
    int *reader;  /* the readers of value v: reader[first[v] .. first[v+1]), each once, in schedule order */
    bool *weight; /* per node: a param, a const, or a computation on those alone */
    bool *output; /* per value: a graph output */
} mx_uses;

void mx_uses_init(mx_uses *u, const mx_graph *g);
void mx_uses_free(mx_uses *u);

/* A layout or gather op: a view of its input, an index map. */
bool mx_is_view_op(mx_op op);

/* A layout node that fuse may treat as an index map inside its readers. Only
 * a fused program folds views: without groups every node is its own kernel. */
bool mx_view_folded(const mx_program *p, int node);

/* Whether a producer-folded view is stored element by element from its
 * input by its producer's stores (codegen's mx_emit_store): the bijections
 * (reshape, permute, flip, scan_gather, one-input scan_scatter,
 * space_to_depth) at the index the element lands at, slice / split / shift
 * under a condition (shift's thread also writes the zero shifted in at its
 * own index). The others (unfold, multi-input scan_scatter) are computed
 * from their output's side. */
bool mx_view_forward(const mx_graph *g, int node);

/* Calls fn for every reader of value v that is not a folded view, looking
 * through folded views (a view read by a view read by a scan: the scan). */
typedef void (*mx_reader_fn)(int reader, void *ctx);
void mx_uses_readers(const mx_program *p, const mx_uses *u, int v, mx_reader_fn fn, void *ctx);
/* Calls fn for every value that input i of node reads in memory: the input
 * itself, or the inputs of the folded views it is made of. */
typedef void (*mx_base_fn)(int value, void *ctx);
void mx_uses_bases(const mx_program *p, int value, mx_base_fn fn, void *ctx);
/* mx_uses_bases over every input of node: what it reads in memory. */
void mx_uses_node_bases(const mx_program *p, int node, mx_base_fn fn, void *ctx);

#endif
