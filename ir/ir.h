/* ir.h: the graph IR.
 *
 * A graph is flat arrays addressed by integer ids: nodes, values (the tensors
 * nodes produce) and one array of argument ids. Node n's inputs are
 * args[first_in .. first_in+n_in) (MX_NONE for an absent optional input); its
 * outputs are the consecutive values first_out .. first_out+n_out-1. Nodes are
 * kept in definition order, which is a valid schedule: an input is always
 * produced by an earlier node. Names, attribute lists and everything else of
 * variable size live in the graph's one arena and die with it. */
#ifndef MX_IR_H
#define MX_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mixc.h"

#define MX_MAX_RANK 5
#define MX_MAX_ATTRS 6
#define MX_NONE (-1)

/* ---- arena ---------------------------------------------------------------- */

typedef struct mx_arena_block mx_arena_block;
typedef struct {
    mx_arena_block *head;
} mx_arena;

void *mx_arena_alloc(mx_arena *a, size_t size); /* zeroed, 16-aligned */
char *mx_arena_strdup(mx_arena *a, const char *s, size_t len);
void mx_arena_free(mx_arena *a);

/* ---- diagnostics ---------------------------------------------------------- */

/* Formats into d (when d is not NULL) and returns status, so that error paths
 * read `return mx_fail(d, MX_ERR_INVALID, "...", ...)`. */
mx_status mx_fail(mx_diag *d, mx_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
mx_status mx_vfail(mx_diag *d, mx_status status, const char *fmt, va_list ap);

/* Returns from the enclosing function when expr is not MX_OK. */
#define MX_TRY(expr)                                                           \
    do {                                                                       \
        mx_status st_ = (expr);                                                \
        if (st_ != MX_OK)                                                      \
            return st_;                                                        \
    } while (0)

/* The whole file, NUL-terminated, its length in *len; NULL with d set
 * ("path: error: cannot open: ...") on failure. The caller frees it. */
char *mx_read_file(const char *path, size_t *len, mx_diag *d);

/* The MIXC_DEBUG ladder (read once): 1 summary, 2 per-kernel times, 3 chosen
 * tiles, 4 generated source and compiler commands, 5 IR after each pass.
 * Debug output goes to stderr. */
int mx_debug_level(void);

/* Value v of b (allocated where NULL) filled with the seeded uniform numbers
 * of mx_buffers_fill_random; false when out of memory. */
bool mx_fill_random_value(mx_buffers *b, const mx_graph *g, int v, uint64_t seed);

/* ---- types ---------------------------------------------------------------- */

typedef struct {
    mx_dtype dtype;
    int rank; /* -1: not yet inferred */
    int64_t dim[MX_MAX_RANK];
} mx_type;

extern const char *const mx_dtype_names[MX_DTYPE_COUNT]; /* "f32", "f16", "bf16" */
size_t mx_dtype_size(mx_dtype t);
int64_t mx_type_numel(const mx_type *t);
bool mx_type_equal(const mx_type *a, const mx_type *b);
bool mx_shape_equal(const mx_type *a, const mx_type *b); /* the dims alone, whatever the dtypes */
/* How many of x's dims, from the last, are to's, where x's others are all 1
 * (x broadcasts over a prefix of to's dims: a bias, a residual per batch);
 * -1 where one of x's others is not 1. */
int mx_broadcast_suffix(const mx_type *x, const mx_type *to);
/* Dim i of t counted from the last (0: the last), 1 past its rank: the
 * numpy broadcast's alignment. */
int64_t mx_dim_from_end(const mx_type *t, int i);
/* The most elements one tensor may have, the text IR's limit too (parse.c):
 * element counts, byte sizes and index arithmetic then never overflow. */
#define MX_MAX_ELEMS ((int64_t)1 << 40)
/* Whether t has at most MX_MAX_ELEMS elements (counted without overflow). */
bool mx_type_fits(const mx_type *t);
/* "f32[2,3]" into buf (always NUL-terminated); returns buf. */
char *mx_type_str(const mx_type *t, char *buf, size_t size);

/* ---- attributes ----------------------------------------------------------- */

#define MX_ATTR_KEYS(X)                                                        \
    X(VALUE, "value")                                                          \
    X(STRIDE, "stride")                                                        \
    X(PAD, "pad")                                                              \
    X(MODE, "mode")                                                            \
    X(THRESHOLD, "threshold")                                                  \
    X(APPROX, "approx")                                                        \
    X(DTYPE, "dtype")                                                          \
    X(KIND, "kind")                                                            \
    X(AXIS, "axis")                                                            \
    X(KEEPDIM, "keepdim")                                                      \
    X(EPS, "eps")                                                              \
    X(SHAPE, "shape")                                                          \
    X(PERM, "perm")                                                            \
    X(K, "k")                                                                  \
    X(START, "start")                                                          \
    X(END, "end")                                                              \
    X(STEP, "step")                                                            \
    X(SIZES, "sizes")                                                          \
    X(BLOCK, "block")                                                          \
    X(SIZE, "size")                                                            \
    X(ORDER, "order")                                                          \
    X(ORDERS, "orders")                                                        \
    X(H, "h")                                                                  \
    X(W, "w")                                                                  \
    X(REVERSE, "reverse")                                                      \
    X(SOFTPLUS, "softplus")

typedef enum {
    MX_A_NONE = 0, /* ends a schema */
#define X(id, name) MX_A_##id,
    MX_ATTR_KEYS(X)
#undef X
    MX_A_COUNT
} mx_attr_key;
extern const char *const mx_attr_names[MX_A_COUNT];

typedef enum {
    MX_AK_INT,   /* int64 */
    MX_AK_FLOAT, /* double */
    MX_AK_INTS,  /* list of int64 */
    MX_AK_ENUM,  /* int64 index into names, written as a keyword */
    MX_AK_ENUMS, /* list of enum indices */
} mx_attr_kind;

/* One attribute of an op's schema. Ranges apply to ints, floats and to every
 * element of a list; enums are ranged by their name table. */
typedef struct {
    mx_attr_key key;
    mx_attr_kind kind;
    bool required;
    double def;               /* default of scalars (enum: index) */
    double lo, hi;            /* inclusive range */
    const char *const *names; /* enum keywords, NULL-terminated */
} mx_attr_spec;

typedef struct {
    int64_t i;
    double f;
    int n;      /* list length */
    int64_t *v; /* list items, in the graph arena */
} mx_attr;

/* Enum tables of the op set. */
typedef enum { MX_REDUCE_SUM, MX_REDUCE_MEAN, MX_REDUCE_MAX, MX_REDUCE_VAR } mx_reduce_kind;
typedef enum { MX_CONV_CAUSAL, MX_CONV_SAME } mx_conv_mode;
typedef enum { MX_GELU_ERF, MX_GELU_TANH } mx_gelu_approx;
/* Traversals of an H x W grid. A base order walks positions p(l); its _REV
 * twin walks p(L-1-l). See docs/ir.md for each map. */
typedef enum {
    MX_ORDER_ROW, MX_ORDER_ROW_REV,
    MX_ORDER_COL, MX_ORDER_COL_REV,
    MX_ORDER_SNAKE, MX_ORDER_SNAKE_REV,         /* rows, alternating direction */
    MX_ORDER_SNAKE_COL, MX_ORDER_SNAKE_COL_REV, /* columns, alternating */
    MX_ORDER_DIAG, MX_ORDER_DIAG_REV,           /* anti-diagonals, row ascending */
    MX_ORDER_COUNT
} mx_scan_order;
extern const char *const mx_order_names[];
/* The flat grid position (i*w + j) visited at step l of order. */
int64_t mx_scan_order_pos(mx_scan_order order, int64_t h, int64_t w, int64_t l);

/* ---- ops ------------------------------------------------------------------ */

typedef enum {
#define X(id, ...) MX_OP_##id,
#include "ops.def"
#undef X
    MX_OP_COUNT
} mx_op;

typedef enum {
    MX_FUSE_SOURCE,   /* input, param, const */
    MX_FUSE_ELEMWISE, /* pointwise, joins any elementwise chain */
    MX_FUSE_REDUCE,
    MX_FUSE_NORM,
    MX_FUSE_MATMUL, /* cuBLAS; may take an epilogue */
    MX_FUSE_CONV,
    MX_FUSE_LAYOUT, /* an index map: can fold into a producer or consumer */
    MX_FUSE_GATHER, /* scan-order maps */
    MX_FUSE_SCAN,
    MX_FUSE_WSUM,
    MX_FUSE_COUNT
} mx_fusion;
extern const char *const mx_fusion_names[MX_FUSE_COUNT];

typedef struct {
    double flops, bytes, exps;
} mx_cost;

typedef struct mx_graph mx_graph;

/* Fill out[0 .. n_out) with the node's output types; on a violation return an
 * error naming what is wrong (the caller prefixes the node). */
typedef mx_status (*mx_infer_fn)(const mx_graph *g, int node, mx_type *out, mx_diag *d);
/* Compute the outputs from the inputs (NULL for absent ones), f32 storage. */
typedef void (*mx_ref_fn)(const mx_graph *g, int node, const float *const *in, float *const *out);
typedef mx_cost (*mx_cost_fn)(const mx_graph *g, int node);

typedef struct {
    const char *name;
    int min_in, max_in, min_out, max_out;
    mx_fusion fusion;
    const mx_attr_spec *attrs; /* ends with key MX_A_NONE */
    mx_infer_fn infer;
    mx_ref_fn ref;
    mx_cost_fn cost;
    double flops_per_elem, exps_per_elem;
} mx_op_desc;

extern const mx_op_desc mx_ops[MX_OP_COUNT];
mx_op mx_op_find(const char *name, size_t len); /* MX_OP_COUNT: unknown */

/* Input slots of selective_scan (see MODELS.md, "S6"). */
enum {
    MX_SCAN_U, MX_SCAN_DELTA, MX_SCAN_A, MX_SCAN_B, MX_SCAN_C,
    MX_SCAN_D, MX_SCAN_Z, MX_SCAN_DELTA_BIAS, MX_SCAN_H0,
    MX_SCAN_SLOTS
};

/* ---- the graph ------------------------------------------------------------ */

typedef struct {
    mx_op op;
    int first_in, n_in;
    int first_out, n_out;
    mx_attr attr[MX_MAX_ATTRS]; /* in the order of mx_ops[op].attrs */
    int line;                   /* source line in the text IR, 0 if built */
} mx_node;

typedef struct {
    mx_type type;
    int node;         /* producer */
    int index;        /* which of its outputs */
    const char *name; /* in the arena; NULL when unnamed */
} mx_value;

struct mx_graph {
    mx_arena arena;
    const char *name;
    mx_node *nodes;
    int n_nodes, cap_nodes;
    mx_value *values;
    int n_values, cap_values;
    int *args;
    int n_args, cap_args;
    int *outputs; /* value ids marked as graph outputs */
    int n_outputs, cap_outputs;
    /* value names -> the first value of each name (open addressing over
     * ids, MX_NONE when empty): mx_graph_value_find in constant time, which
     * binding, fold and import ask once per param */
    int *name_slots;
    int name_cap, n_names;
};

mx_graph *mx_graph_new(const char *name);
/* A deep copy with the same ids (a program takes ownership of its graph). */
mx_graph *mx_graph_clone(const mx_graph *g);
/* Append a node with its inputs and n_out fresh untyped outputs; attributes
 * start at their schema defaults. Returns the node id. */
int mx_graph_add_node(mx_graph *g, mx_op op, const int *inputs, int n_in, int n_out);
/* Sources: a node of op input/param/const with one output of the given type. */
int mx_graph_add_source(mx_graph *g, mx_op op, const char *name, mx_type type);
void mx_graph_add_output(mx_graph *g, int value);
void mx_value_set_name(mx_graph *g, int value, const char *name);
/* The same for a name of len bytes, not NUL-terminated (the parser's). */
void mx_value_set_name_n(mx_graph *g, int value, const char *name, size_t len);
/* mx_graph_value_find (mixc.h) of a name of len bytes: the first value of
 * that name, or MX_NONE. */
int mx_graph_value_find_n(const mx_graph *g, const char *name, size_t len);

static inline int mx_node_input(const mx_graph *g, int node, int i) {
    const mx_node *n = &g->nodes[node];
    return i < n->n_in ? g->args[n->first_in + i] : MX_NONE;
}
static inline int mx_node_output(const mx_graph *g, int node, int i) {
    return g->nodes[node].first_out + i;
}
static inline const mx_type *mx_value_type(const mx_graph *g, int value) {
    return &g->values[value].type;
}
/* The type of input i of node, NULL when absent. */
const mx_type *mx_node_input_type(const mx_graph *g, int node, int i);

/* Attribute access by key; the key must be in the op's schema (asserted). */
int mx_attr_slot(mx_op op, mx_attr_key key); /* -1 when not in schema */
const mx_attr *mx_node_attr(const mx_graph *g, int node, mx_attr_key key);
int64_t mx_node_int(const mx_graph *g, int node, mx_attr_key key);
double mx_node_float(const mx_graph *g, int node, mx_attr_key key);
void mx_node_set_int(mx_graph *g, int node, mx_attr_key key, int64_t v);
void mx_node_set_float(mx_graph *g, int node, mx_attr_key key, double v);
void mx_node_set_ints(mx_graph *g, int node, mx_attr_key key, const int64_t *v, int n);

/* A name for messages: "%name (op)" or "%12 (op)"; buf is returned. */
const char *mx_node_label(const mx_graph *g, int node, char *buf, size_t size);

/* Infer the output types of one node (checks attribute ranges first). On error
 * d says "node %x (op): what". */
mx_status mx_graph_infer_node(mx_graph *g, int node, mx_diag *d);
/* Check an attribute value against its spec; the message names the key. */
mx_status mx_attr_check(const mx_graph *g, int node, int slot, mx_diag *d);

mx_cost mx_node_cost(const mx_graph *g, int node);

/* The inner dimension K of a linear (x W^T) or matmul (A B) node, 0 for any
 * other op. */
int64_t mx_product_k(const mx_graph *g, int node);

/* Normalise a possibly negative axis against rank; -1 if out of range. */
int mx_axis(int64_t axis, int rank);

/* Whether a permute's perm swaps the last two axes and keeps the others (a
 * matrix transpose, a product's op = T). */
bool mx_perm_swaps_last_two(const mx_attr *perm);

#endif
