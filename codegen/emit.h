/* emit.h: what every kernel emitter shares (internal to codegen/).
 *
 * An emitter writes one kernel for one group. It asks for values of the group
 * at logical indices and gets C expressions back; the one routine behind that
 * (expr.c) turns folded views into index arithmetic, elementwise members into
 * expressions (the fused prologue / epilogue), and materialised values and
 * params into loads from kernel arguments. A member that is not elementwise
 * (a conv, a norm's result) is asked of the kind's emitter through `member`.
 *
 * Index expressions are C expressions of the kernel's index type (e->ity:
 * "int", or "long long" when a tensor the kernel touches has 2^31 elements or
 * more), one per dim, outermost first. A dim of size 1 is always indexed by
 * the literal "0": results are remembered per (value, index text), so equal
 * indices must be spelled alike. Errors (an op no emitter handles, a value
 * read at an index the kernel does not hold) are kept in e->status / e->diag;
 * the expression returned then is "0.0f" and the emitter gives up at the end. */
#ifndef MX_EMIT_H
#define MX_EMIT_H

#include "codegen.h"
#include "uses.h"

typedef struct mx_emitter mx_emitter;

/* Computes output `out_index` of member node `node` (not elementwise, not a
 * view) at idx into out (a float expression), appending statements; returns
 * false when the kernel cannot compute it there. */
typedef bool (*mx_member_fn)(mx_emitter *e, int node, const char *const *idx, char *out, size_t size);

typedef struct {
    int value;
    char *key;     /* the index text, "i0,0,t3" */
    char expr[48]; /* a temp or a literal */
} mx_memo;

/* Helpers of the module that kernels call (emitted once, before the kernels). */
enum { MX_HELPER_DIAG = 1 };

#define MX_EMIT_MAX_SCOPES 64

struct mx_emitter {
    const mx_program *p;
    const mx_target *target; /* the GPU the kernel is for: limits and sizes */
    const mx_codegen_options *options; /* set by codegen.c after init: what the caller asked */
    int group;
    mx_text *body; /* statements of the kernel being written */
    int indent;
    int next_temp;
    const char *ity; /* the index type */
    mx_uses uses;
    bool uses_shared; /* uses belongs to an mx_emit_shared */
    /* The kernel's buffer arguments, in kernelParams order. */
    int *args;
    bool *written;
    int n_args, cap_args;
    /* Values computed at an index, reused within the scope that made them. */
    mx_memo *memo;
    int n_memo, cap_memo;
    int scope[MX_EMIT_MAX_SCOPES];
    int n_scopes;
    /* The kind's computation of its non-elementwise members. */
    mx_member_fn member;
    void *member_ctx;
    unsigned helpers; /* MX_HELPER_* the kernel uses */
    mx_status status;
    mx_diag diag;
};

void mx_emitter_init(mx_emitter *e, const mx_program *p, const mx_target *t, int group, mx_text *body);

/* What every emitter of a program reads, built once per module rather than
 * once per kernel (each is O(graph): per kernel, codegen grew with depth
 * squared). */
typedef struct {
    mx_uses uses;
    int64_t folded_most; /* elements of the largest input of a folded view */
} mx_emit_shared;
void mx_emit_shared_init(mx_emit_shared *s, const mx_program *p);
void mx_emit_shared_free(mx_emit_shared *s);
/* mx_emitter_init over a module's shared state (which outlives e). */
void mx_emitter_init_shared(mx_emitter *e, const mx_program *p, const mx_target *t, int group, mx_text *body,
                            const mx_emit_shared *s);
void mx_emitter_free(mx_emitter *e);

/* Records the first error ("group 5 (norm, anchor %3): ..."). */
void mx_emit_fail(mx_emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One indented line of the body. */
void mx_emit_line(mx_emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* `line {` and a new scope (values computed inside are forgotten at its end);
 * mx_emit_close writes `}`; mx_emit_reopen writes `} line {` (else branches). */
void mx_emit_open(mx_emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mx_emit_reopen(mx_emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mx_emit_close(mx_emitter *e);

/* The kernel parameter that holds value v's buffer ("b3"), added to the
 * arguments on first use. */
const char *mx_emit_buffer(mx_emitter *e, int v, bool written);

/* Appends statements computing value v at the logical multi-index idx and
 * writes a C float expression for it into out. v may be a member of the
 * group, a folded view, a weight, a const (a literal) or a materialised value
 * (a load, f16/bf16 converted). */
void mx_emit_value(mx_emitter *e, int v, const char *const *idx, char *out, size_t size);

/* Reads, where the emitter stands, the weights that value v at idx needs
 * when a thin product of this group computes it, remembered so that
 * computing v reuses them; an index entry NULL stands for one that changes
 * later (a scan's step), and a weight read at it is left for then. A scan
 * reads its row's weights once before walking L. */
void mx_emit_hoist_weights(mx_emitter *e, int v, const char *const *idx);

/* Stores the float expression as value v at idx: into v's buffer when v is
 * materialised (rounded to its dtype), and into the output of every view of
 * v that is folded into this group's stores (MX_VIEW_PRODUCER) and has a
 * forward map (mx_view_forward), at the index the element lands at. */
void mx_emit_store(mx_emitter *e, int v, const char *const *idx, const char *expr);

/* Remembers expr as value v at idx (a result the kind's emitter computed
 * itself, e.g. a norm's output for the current element). */
void mx_emit_bind(mx_emitter *e, int v, const char *const *idx, const char *expr);

/* Drops remembered values: call when the index variables change meaning. */
void mx_emit_forget(mx_emitter *e);

/* A fresh temp name "tN". */
const char *mx_emit_temp(mx_emitter *e, char *buf, size_t size);

/* The index of every dim of a value of type t at row-major position lin (a C
 * expression), as temps; dims of size 1 get "0". idx must hold t->rank
 * strings of 64 bytes. */
typedef char mx_idx_str[64];
void mx_emit_delinearise(mx_emitter *e, const char *lin, const mx_type *t, mx_idx_str *idx);
/* The row-major position of idx in a tensor of type t, as a C expression. */
void mx_emit_linearise(mx_emitter *e, const mx_type *t, const char *const *idx, char *out, size_t size);

/* A float literal ("1.0f", "-2.5e-05f", "__int_as_float(0x7f800000)"). */
void mx_emit_float(double x, char *out, size_t size);

/* Where element idx of a forward view's input (mx_view_forward, but slice,
 * split and shift) lands in its output, into out (dims of size 1 get "0"). */
void mx_emit_view_target(mx_emitter *e, int node, const char *const *idx, mx_idx_str *out);

/* The flat grid position that order visits at step l of an h x w grid
 * (inverse: the step at which it visits position l), as in
 * mx_scan_order_pos, as a C expression of the index type. */
void mx_emit_order_map(mx_emitter *e, mx_scan_order order, int64_t h, int64_t w, const char *l, bool inverse,
                       char *out, size_t size);

/* The format of a load of an element of dtype t as a float ("%s[%s]": the
 * buffer, the offset) and of a store of a float to it ("%s[%s] = %s;"). */
const char *mx_emit_load_fmt(mx_dtype t);
const char *mx_emit_store_fmt(mx_dtype t);

/* Whether value v must be written by group k: produced there (not by a
 * consumer-folded view) and given a buffer by the plan. */
bool mx_emit_stored(const mx_program *p, int k, int v);

/* Whether an element kernel computes v and hands it to mx_emit_store: v is
 * produced in the group and stored, or stores a producer view (a view that
 * mx_emit_store writes is not a root itself). */
bool mx_emit_is_root(const mx_emitter *e, int v);

/* ---- the emitters: one kernel of one group each ------------------------------ */

/* Each writes the statements of one kernel into e->body and sets k's grid,
 * block and smem; codegen.c wraps the body into the kernel (signature from
 * e->args, __launch_bounds__ from the tiles, a comment naming the nodes).
 * k->group, k->name, k->kind and k->tiles are set before the call. */
mx_status mx_emit_pointwise(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d);
mx_status mx_emit_norm(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d);
mx_status mx_emit_conv(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d);
mx_status mx_emit_scan(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d);

/* The per-element loops of a group whose results are computed element by
 * element (pointwise, conv; emit_pointwise.c): one grid-stride loop per
 * distinct shape of the values it stores; sets k's grid and block from t. */
void mx_emit_element_loops(mx_emitter *e, const mx_tiles *t, mx_kernel *k);

#endif
