/* program.h: a graph on its way to kernels, and the pass manager.
 *
 * The passes run over an mx_program in the order of the table below. The
 * first four change the graph: each walks the old graph once and emits a new
 * one through an mx_rewriter (so ids stay dense and the node order stays a
 * valid schedule). The last three only annotate it: layout marks the layout
 * ops that become index maps, fuse puts every node in a group (a future
 * kernel), plan gives every materialised value a place in one arena. */
#ifndef MX_PROGRAM_H
#define MX_PROGRAM_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"

/* ---- groups and the memory plan -------------------------------------------- */

/* The most buffers one kernel binds (its pointer parameters: 2 KB of a
 * launch's 4 KB): fuse keeps every group within it, codegen names them. */
#define MX_GROUP_MAX_BUFFERS 256

typedef struct {
    mx_fusion kind; /* the kind of its anchor: scan, matmul, norm, elementwise, ... */
    int anchor;     /* the node the kernel is built around */
    int *nodes;     /* members in schedule order (program arena) */
    int n_nodes;
} mx_group;

typedef struct {
    int64_t offset; /* in the activation arena; -1: not materialised */
    int64_t bytes;
    int in_place_of; /* a value whose buffer this one reuses in place, or -1 */
} mx_slot;

/* How a layout op (permute, flip, reshape, ...) is realised. */
typedef enum {
    MX_VIEW_COPY,     /* its own copy kernel */
    MX_VIEW_CONSUMER, /* folded into its consumers' loads */
    MX_VIEW_PRODUCER, /* folded into its producer's stores */
} mx_view_mode;

typedef struct mx_program {
    mx_arena arena;
    mx_graph *g; /* owned */
    /* fold: param-only subgraphs, evaluated once when weights are bound. The
     * init graph's inputs are the main graph's params of the same names; its
     * outputs are "derived" params of the main graph (same names). */
    mx_graph *init; /* NULL when nothing folds */
    /* layout */
    mx_view_mode *view; /* per node; meaningful for layout ops */
    /* fuse */
    int *group_of; /* per node; -1 for sources */
    mx_group *groups;
    int n_groups;
    /* plan */
    mx_slot *slots; /* per value */
    int64_t arena_bytes;     /* planned peak of activations */
    int64_t unplanned_bytes; /* every materialised activation in its own buffer */
    bool planned;
    /* The kill switches (MIXC_NO_FUSION, MIXC_NO_PLANNER), set by the pass
     * manager: fuse then merges nothing (one group per node, views stay with
     * the nodes that realise them) and plan reuses nothing (every value its
     * own buffer, nothing in place); the program still runs on every device. */
    bool no_merge, no_reuse;
    /* Per group: tiles fixed by the caller (the tuner's candidates), which the
     * backends take as they are; NULL: the device's defaults, or the tuning
     * database's winners (mx_tune_tiles, runtime/tune.h). */
    const struct mx_tiles *tiles;
    /* The device the program is compiled for (mx_compile sets it): a rewrite
     * that pays off on some devices only asks it; NULL: no such rewrite. */
    const mx_target *target;
} mx_program;

/* ---- the pass table ---------------------------------------------------------- */

/* name, debug letter, what it does (one line, shown by --help) */
#define MX_PASSES(X)                                                                       \
    X(canonicalize, 'c', "simplify local patterns: flip(flip x), permute and reshape chains, x * 1, ...") \
    X(dce, 'd', "drop nodes whose results nobody uses")                                    \
    X(cse, 'e', "merge nodes that compute the same thing from the same inputs")           \
    X(fold, 'f', "move param-only subgraphs (A = -exp(A_log)) to the init graph")          \
    X(layout, 'l', "turn transposes, flips and scan-order maps into index maps")           \
    X(fuse, 'u', "group nodes into kernels: scan, elementwise, norm, wsum, matmul epilogues") \
    X(plan, 'm', "liveness, buffer reuse and in-place: one activation arena")

typedef enum {
#define X(name, letter, doc) MX_PASS_##name,
    MX_PASSES(X)
#undef X
        MX_PASS_COUNT
} mx_pass_id;

typedef mx_status (*mx_pass_fn)(mx_program *p, mx_diag *d);

typedef struct {
    const char *name;
    char letter;
    const char *doc;
    mx_pass_fn run;
} mx_pass_desc;

extern const mx_pass_desc mx_passes[MX_PASS_COUNT];

#define X(name, letter, doc) mx_status mx_pass_##name(mx_program *p, mx_diag *d);
MX_PASSES(X)
#undef X

typedef struct {
    bool disabled[MX_PASS_COUNT];
    bool print_before[MX_PASS_COUNT];
    bool print_after[MX_PASS_COUNT];
    bool no_merge; /* MIXC_NO_FUSION: fuse makes one group per node */
    bool no_reuse; /* MIXC_NO_PLANNER: plan gives every value its own buffer */
    bool time;   /* per-pass wall time to out */
    bool verify; /* verify the graph after every pass (on in debug builds) */
    FILE *out;   /* where printing and timing go (stderr when NULL) */
} mx_pass_options;

/* Options from the environment: MIXC_NO_FUSION, MIXC_NO_PLANNER,
 * MIXC_DISABLE_PASSES=a,b, MIXC_PRINT_AFTER=a,b|all, MIXC_DEBUG>=5. An
 * unknown pass name is an error naming the variable. */
mx_status mx_pass_options_from_env(mx_pass_options *o, mx_diag *d);
/* Sets flags from "a,b" pass names or debug letters ("all" for every pass);
 * an unknown name is an error. */
mx_status mx_pass_options_set(bool *flags, const char *list, mx_diag *d);

/* Takes ownership of g. */
mx_program *mx_program_new(mx_graph *g);
/* Forgets layout, groups and plan (they describe the graph being replaced). */
void mx_program_drop_annotations(mx_program *p);
void mx_program_free(mx_program *p);
mx_status mx_program_run_passes(mx_program *p, const mx_pass_options *o, mx_diag *d);
/* The graph, then its groups and memory plan when those passes have run. */
void mx_program_print(const mx_program *p, FILE *out);
/* Fills the params of p->g in b (buffers for p->g) from the params of src, the
 * graph as it was before the passes, whose buffers src_b hold their data
 * (e.g. from mx_weights_load): a param src has by name is copied; a derived
 * param (an output of p->init) is computed by running p->init on the
 * reference with its params copied from src by name. Inputs are left alone.
 * An error names a param that neither provides, or whose types disagree. */
mx_status mx_program_bind_init(const mx_program *p, const mx_graph *src, const mx_buffers *src_b,
                               mx_buffers *b, mx_diag *d);
/* Non-matmul kernels (groups), the number the fusion targets count. */
int mx_program_kernel_count(const mx_program *p);
/* Runs p->g on the reference with every materialised value in one arena at
 * its planned offset (the rest in temporaries), group by group; b holds the
 * inputs and params of p->g and receives the graph outputs. Agreement with
 * mx_ref_run checks the plan (plan_run.c). */
mx_status mx_program_ref_run_planned(const mx_program *p, mx_buffers *b, mx_diag *d);

/* ---- rewriting ---------------------------------------------------------------- */

/* Emits a new graph while walking an old one. map[v] is the new value that
 * stands for old value v (MX_NONE until emitted). */
typedef struct {
    const mx_graph *old;
    mx_graph *g; /* the new graph */
    int *map;
    mx_diag *diag;
    mx_status status;
} mx_rewriter;

/* Per old node: emit its replacement (setting map for its outputs) and return
 * true, or return false to have it copied unchanged. */
typedef bool (*mx_rewrite_fn)(mx_rewriter *rw, int node, void *ctx);

/* Replaces p->g by the rewritten graph (outputs mapped, names kept). */
mx_status mx_rewrite(mx_program *p, mx_rewrite_fn fn, void *ctx, mx_diag *d);
/* Copies old node into the new graph with mapped inputs; returns the new node. */
int mx_rewrite_copy(mx_rewriter *rw, int node);
/* Emits a fresh node with new-graph inputs and the attributes of old node
 * template_node (or defaults when -1); types it; returns the new node. */
int mx_rewrite_emit(mx_rewriter *rw, mx_op op, const int *inputs, int n_in, int n_out, int template_node);
/* Types new node `node` after a rule set its attributes; an ill-typed node
 * fails the rewrite as an internal error naming `what`. */
void mx_rewrite_type(mx_rewriter *rw, int node, const char *what);
/* The new value for an old input of node (MX_NONE when absent). */
int mx_rewrite_input(const mx_rewriter *rw, int node, int i);

#endif
