/* shape.c: the shape and dtype rule of every op (the `infer` column of
 * ops.def), exactly as docs/ops.md states them.
 *
 * Each rule checks its node completely (arity, ranks, dims, attributes that
 * depend on shapes, dtypes) and fills the output types. Attribute ranges have
 * already been checked by the caller (mx_attr_check), so a rule may index
 * enum tables with them. Messages name inputs by position and role, "input 2
 * (W)", and leave out the node, which the caller puts in front. */
#include <stdio.h>
#include <string.h>

#include "ir.h"
#include "ops_impl.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef long long ll; /* for printf */

/* One rule at work: the node and how to name its inputs in messages. */
typedef struct {
    const mx_graph *g;
    int node;
    mx_diag *d;
    const char *const *names; /* roles of the fixed slots, NULL-terminated */
    const char *rest;         /* role of the variadic tail: rest_1, rest_2, ... */
} rule;

/* ---- messages ------------------------------------------------------------- */

static const char *dims_str(const int64_t *dim, int rank, char *buf, size_t size) {
    mx_type t = {MX_F32, rank, {0}};
    memcpy(t.dim, dim, (size_t)rank * sizeof *dim);
    const char *s = mx_type_str(&t, buf, size);
    return s + strlen(mx_dtype_names[MX_F32]); /* drop the dtype */
}

/* The role of input i: a fixed slot's name, or rest_k in the variadic tail. */
static const char *role(const rule *r, int i, char *buf, size_t size) {
    int fixed = 0;
    while (r->names && r->names[fixed])
        fixed++;
    if (i < fixed)
        return r->names[i];
    snprintf(buf, size, "%s_%d", r->rest, i - fixed + 1);
    return buf;
}

/* "input 2 (W) " followed by the formatted text. */
static mx_status fail_input(const rule *r, int i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static mx_status fail_input(const rule *r, int i, const char *fmt, ...) {
    char what[1024], name[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mx_fail(r->d, MX_ERR_INVALID, "input %d (%s) %s", i + 1, role(r, i, name, sizeof name),
                   what);
}

/* "input 2 (W) has shape f32[64,32]: expected " followed by the text. */
static mx_status bad_shape(const rule *r, int i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static mx_status bad_shape(const rule *r, int i, const char *fmt, ...) {
    char what[1024], ty[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return fail_input(r, i, "has shape %s: expected %s",
                      mx_type_str(mx_node_input_type(r->g, r->node, i), ty, sizeof ty), what);
}

/* ---- inputs --------------------------------------------------------------- */

/* n inputs or results (what, singular) within the op's bounds. */
static mx_status check_count(mx_diag *d, const char *what, int n, int lo, int hi) {
    if (n >= lo && n <= hi)
        return MX_OK;
    if (lo == hi)
        return mx_fail(d, MX_ERR_INVALID, "expected %d %s%s, got %d", lo, what, lo == 1 ? "" : "s", n);
    return mx_fail(d, MX_ERR_INVALID, "expected %d to %d %ss, got %d", lo, hi, what, n);
}

static const mx_type *maybe(const rule *r, int i) {
    return mx_node_input_type(r->g, r->node, i);
}

/* Inputs lo .. hi-1 must be present. */
static mx_status require(const rule *r, int lo, int hi) {
    for (int i = lo; i < hi; i++)
        if (!maybe(r, i))
            return fail_input(r, i, "is required but absent");
    return MX_OK;
}

/* Opens a rule: arity within the op's bounds, every present input typed and
 * the first min_in inputs present. */
static mx_status begin(rule *r, const mx_graph *g, int node, mx_diag *d,
                       const char *const *names, const char *rest) {
    *r = (rule){g, node, d, names, rest};
    const mx_node *n = &g->nodes[node];
    const mx_op_desc *op = &mx_ops[n->op];
    MX_TRY(check_count(d, "input", n->n_in, op->min_in, op->max_in));
    MX_TRY(check_count(d, "result", n->n_out, op->min_out, op->max_out));
    for (int i = 0; i < n->n_in; i++) {
        const mx_type *t = maybe(r, i);
        if (t && t->rank < 0)
            return fail_input(r, i, "has no type yet");
    }
    return require(r, 0, op->min_in); /* the optional slots come after the required ones */
}

/* Input i has the given rank and, where want[k] >= 0, those dims (want may
 * be NULL: rank only); otherwise the message says "expected " + fmt. */
static mx_status expect_dims(const rule *r, int i, int rank, const int64_t *want,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static mx_status expect_dims(const rule *r, int i, int rank, const int64_t *want,
                             const char *fmt, ...) {
    const mx_type *t = maybe(r, i);
    bool ok = t->rank == rank;
    for (int k = 0; ok && want && k < rank; k++)
        ok = want[k] < 0 || t->dim[k] == want[k];
    if (ok)
        return MX_OK;
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bad_shape(r, i, "%s", what);
}

/* Input i has exactly the shape of input ref (the dtype is checked apart);
 * pattern, when not NULL, names the dims in the message. */
static mx_status same_shape(const rule *r, int ref, int i, const char *pattern) {
    const mx_type *t = maybe(r, ref);
    char dims[96], name[32];
    return expect_dims(r, i, t->rank, t->dim, "%s%s%s (the shape of %s)", pattern ? pattern : "",
                       pattern ? " = " : "", dims_str(t->dim, t->rank, dims, sizeof dims),
                       role(r, ref, name, sizeof name));
}

static mx_status min_rank(const rule *r, int i, int rank, const char *pattern) {
    if (maybe(r, i)->rank >= rank)
        return MX_OK;
    return bad_shape(r, i, "%s (rank >= %d)", pattern, rank);
}

/* Present input i has the dtype of input ref. */
static mx_status same_dtype(const rule *r, int ref, int i) {
    const mx_type *want = maybe(r, ref), *t = maybe(r, i);
    if (!t || t->dtype == want->dtype)
        return MX_OK;
    char name[32];
    return fail_input(r, i, "has dtype %s: expected %s (the dtype of %s)",
                      mx_dtype_names[t->dtype], mx_dtype_names[want->dtype],
                      role(r, ref, name, sizeof name));
}

/* The default dtype rule over inputs first .. n_in-1: all like input first. */
static mx_status same_dtype_from(const rule *r, int first) {
    for (int i = first + 1; i < r->g->nodes[r->node].n_in; i++)
        MX_TRY(same_dtype(r, first, i));
    return MX_OK;
}

/* The node's axis attribute, normalised against input i. */
static mx_status axis_of(const rule *r, int i, int *axis) {
    int64_t raw = mx_node_int(r->g, r->node, MX_A_AXIS);
    const mx_type *t = maybe(r, i);
    *axis = mx_axis(raw, t->rank);
    if (*axis < 0) {
        char ty[96], name[32];
        return mx_fail(r->d, MX_ERR_INVALID, "axis %lld is out of range for input %d (%s) of shape %s",
                       (ll)raw, i + 1, role(r, i, name, sizeof name), mx_type_str(t, ty, sizeof ty));
    }
    return MX_OK;
}

static int n_inputs(const rule *r) { return r->g->nodes[r->node].n_in; }
static int n_results(const rule *r) { return r->g->nodes[r->node].n_out; }

/* ---- sources and elementwise ---------------------------------------------- */

static const char *const names_x[] = {"x", NULL};
static const char *const names_ab[] = {"a", "b", NULL};

mx_status infer_source(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    out[0] = *mx_value_type(g, mx_node_output(g, node, 0));
    return MX_OK;
}

mx_status infer_unary(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    out[0] = *maybe(&r, 0);
    return MX_OK;
}

mx_status infer_cast(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    MX_TRY(infer_unary(g, node, out, d));
    out[0].dtype = (mx_dtype)mx_node_int(g, node, MX_A_DTYPE);
    return MX_OK;
}

/* numpy broadcasting: a and b aligned at the right into out (rank the larger
 * of ra and rb). Returns 0, or the failing axis counted from the end (< 0). */
static int broadcast(const int64_t *a, int ra, const int64_t *b, int rb, int64_t *out) {
    int ro = ra > rb ? ra : rb;
    for (int k = 1; k <= ro; k++) {
        int64_t x = k <= ra ? a[ra - k] : 1, y = k <= rb ? b[rb - k] : 1;
        if (x != y && x != 1 && y != 1)
            return -k;
        out[ro - k] = x == 1 ? y : x;
    }
    return 0;
}

static mx_status fail_broadcast(const rule *r, const mx_type *a, const mx_type *b, int axis,
                                const char *what) {
    char ta[96], tb[96];
    return mx_fail(r->d, MX_ERR_INVALID, "%s of a %s and b %s do not broadcast: %lld vs %lld at axis %d",
                   what, mx_type_str(a, ta, sizeof ta), mx_type_str(b, tb, sizeof tb),
                   (ll)a->dim[a->rank + axis], (ll)b->dim[b->rank + axis], axis);
}

mx_status infer_broadcast(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_ab, NULL));
    MX_TRY(same_dtype_from(&r, 0));
    const mx_type *a = maybe(&r, 0), *b = maybe(&r, 1);
    out[0] = *a;
    out[0].rank = a->rank > b->rank ? a->rank : b->rank;
    int axis = broadcast(a->dim, a->rank, b->dim, b->rank, out[0].dim);
    return axis ? fail_broadcast(&r, a, b, axis, "the shapes") : MX_OK;
}

/* ---- dense products ------------------------------------------------------- */

static const char *const names_linear[] = {"x", "W", "b", NULL};

mx_status infer_linear(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_linear, NULL));
    const mx_type *x = maybe(&r, 0), *w = maybe(&r, 1);
    MX_TRY(same_dtype_from(&r, 0));
    MX_TRY(min_rank(&r, 0, 1, "[..., K]"));
    int64_t K = x->dim[x->rank - 1];
    MX_TRY(expect_dims(&r, 1, 2, (int64_t[]){-1, K}, "[N, K] with K = %lld (the last dim of x)", (ll)K));
    int64_t N = w->dim[0];
    if (maybe(&r, 2))
        MX_TRY(expect_dims(&r, 2, 1, &N, "[N] with N = %lld (dim 0 of W)", (ll)N));
    out[0] = *x;
    out[0].dim[x->rank - 1] = N;
    return MX_OK;
}

mx_status infer_matmul(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_ab, NULL));
    MX_TRY(same_dtype_from(&r, 0));
    MX_TRY(min_rank(&r, 0, 2, "[..., M, K]"));
    MX_TRY(min_rank(&r, 1, 2, "[..., K, N]"));
    const mx_type *a = maybe(&r, 0), *b = maybe(&r, 1);
    int64_t K = a->dim[a->rank - 1];
    if (b->dim[b->rank - 2] != K)
        return bad_shape(&r, 1, "[..., K, N] with K = %lld (the last dim of a)", (ll)K);
    int batch = (a->rank > b->rank ? a->rank : b->rank) - 2;
    out[0] = *a;
    out[0].rank = batch + 2;
    int axis = broadcast(a->dim, a->rank - 2, b->dim, b->rank - 2, out[0].dim);
    if (axis)
        return fail_broadcast(&r, a, b, axis - 2, "the batch dims");
    out[0].dim[batch] = a->dim[a->rank - 2];
    out[0].dim[batch + 1] = b->dim[b->rank - 1];
    return MX_OK;
}

/* An optional bias [C] of the given channel count, which comes from source. */
static mx_status check_bias(const rule *r, int i, const char *letter, int64_t channels,
                            const char *source) {
    if (!maybe(r, i))
        return MX_OK;
    return expect_dims(r, i, 1, &channels, "[%s] with %s = %lld (%s)", letter, letter,
                       (ll)channels, source);
}

/* One spatial extent of a strided, padded convolution; must come out >= 1. */
static mx_status conv_extent(const rule *r, const char *axis, int64_t n, int64_t k, int64_t stride,
                             int64_t pad, int64_t *out) {
    if (n + 2 * pad < k)
        return mx_fail(r->d, MX_ERR_INVALID,
                       "kernel %s %lld does not fit the input %s %lld with pad %lld", axis, (ll)k,
                       axis, (ll)n, (ll)pad);
    *out = (n + 2 * pad - k) / stride + 1;
    return MX_OK;
}

static const char *const names_conv[] = {"x", "w", "b", NULL};

mx_status infer_conv2d(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_conv, NULL));
    const mx_type *x = maybe(&r, 0), *w = maybe(&r, 1);
    MX_TRY(same_dtype_from(&r, 0));
    MX_TRY(expect_dims(&r, 0, 4, NULL, "[B, C, H, W]"));
    int64_t C = x->dim[1];
    MX_TRY(expect_dims(&r, 1, 4, (int64_t[]){-1, C, -1, -1},
                    "[O, C, KH, KW] with C = %lld (dim 1 of x)", (ll)C));
    MX_TRY(check_bias(&r, 2, "O", w->dim[0], "dim 0 of w"));
    int64_t stride = mx_node_int(g, node, MX_A_STRIDE), pad = mx_node_int(g, node, MX_A_PAD);
    out[0] = (mx_type){x->dtype, 4, {x->dim[0], w->dim[0]}};
    MX_TRY(conv_extent(&r, "height", x->dim[2], w->dim[2], stride, pad, &out[0].dim[2]));
    return conv_extent(&r, "width", x->dim[3], w->dim[3], stride, pad, &out[0].dim[3]);
}

/* Depthwise: x [B, C, spatial...] and w [C, K, ...] of one kernel size K in
 * every spatial dim, b [C]; the output has the shape of x. */
static mx_status infer_dwconv(const mx_graph *g, int node, mx_type *out, mx_diag *d, int x_rank,
                              const char *x_pattern, const char *w_pattern) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_conv, NULL));
    MX_TRY(same_dtype_from(&r, 0));
    MX_TRY(expect_dims(&r, 0, x_rank, NULL, "%s", x_pattern));
    const mx_type *x = maybe(&r, 0), *w = maybe(&r, 1);
    int64_t C = x->dim[1];
    int64_t want[MX_MAX_RANK] = {C, -1, -1};
    MX_TRY(expect_dims(&r, 1, x_rank - 1, want, "%s with C = %lld (dim 1 of x)", w_pattern, (ll)C));
    for (int k = 2; k < w->rank; k++)
        if (w->dim[k] != w->dim[1])
            return bad_shape(&r, 1, "%s, a square kernel", w_pattern);
    MX_TRY(check_bias(&r, 2, "C", C, "dim 1 of x"));
    out[0] = *x;
    return MX_OK;
}

/* dwconv1d walks axis 2 of x [B, C, L], or axis 1 of x [B, L, C] (channels
 * last); its weights are [C, K] with a bias [C], or one set per position:
 * [K, d1, d2] with a bias [d1, d2], d1 and d2 being x's (docs/ops.md). */
mx_status infer_dwconv1d(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, names_conv, NULL));
    MX_TRY(same_dtype_from(&r, 0));
    MX_TRY(expect_dims(&r, 0, 3, NULL, "[B, C, L] (or [B, L, C] with axis=1)"));
    MX_TRY(axis_of(&r, 0, &axis));
    if (axis == 0)
        return mx_fail(d, MX_ERR_INVALID, "axis 0 is the batch: a dwconv1d walks axis 2 of [B, C, L] or 1 of [B, L, C]");
    const mx_type *x = maybe(&r, 0);
    int64_t C = x->dim[3 - axis], d1 = x->dim[1], d2 = x->dim[2];
    const char *c_dim = axis == 2 ? "dim 1 of x" : "dim 2 of x";
    if (maybe(&r, 1)->rank == 3) {
        MX_TRY(expect_dims(&r, 1, 3, (int64_t[]){-1, d1, d2},
                           "[K, %lld, %lld] (one set per position: dims 1, 2 of x)", (ll)d1, (ll)d2));
        if (maybe(&r, 2))
            MX_TRY(expect_dims(&r, 2, 2, (int64_t[]){d1, d2}, "[%lld, %lld] (dims 1, 2 of x), as w is one set per position",
                               (ll)d1, (ll)d2));
    } else {
        MX_TRY(expect_dims(&r, 1, 2, (int64_t[]){C, -1}, "[C, K] with C = %lld (%s)", (ll)C, c_dim));
        MX_TRY(check_bias(&r, 2, "C", C, c_dim));
    }
    out[0] = *x;
    return MX_OK;
}

mx_status infer_dwconv2d(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    return infer_dwconv(g, node, out, d, 4, "[B, C, H, W]", "[C, K, K]");
}

/* ---- reductions and norms ------------------------------------------------- */

mx_status infer_reduce(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    MX_TRY(axis_of(&r, 0, &axis));
    out[0] = *maybe(&r, 0);
    if (mx_node_int(g, node, MX_A_KEEPDIM)) {
        out[0].dim[axis] = 1;
    } else {
        out[0].rank--;
        memmove(&out[0].dim[axis], &out[0].dim[axis + 1],
                (size_t)(out[0].rank - axis) * sizeof out[0].dim[0]);
    }
    return MX_OK;
}

static const char *const names_norm[] = {"x", "gamma", "beta", NULL};

/* layernorm and rmsnorm. Only layernorm lets gamma and beta keep another
 * dtype than x (docs/ops.md); rmsnorm follows the default rule. */
mx_status infer_norm(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_norm, NULL));
    MX_TRY(min_rank(&r, 0, 1, "[..., C]"));
    if (g->nodes[node].op != MX_OP_LAYERNORM)
        MX_TRY(same_dtype_from(&r, 0));
    const mx_type *x = maybe(&r, 0);
    int64_t C = x->dim[x->rank - 1];
    for (int i = 1; i < n_inputs(&r); i++)
        if (maybe(&r, i))
            MX_TRY(expect_dims(&r, i, 1, &C, "[C] with C = %lld (the last dim of x)", (ll)C));
    out[0] = *x;
    return MX_OK;
}

/* softmax, flip and shift: same type out, the axis must exist. */
mx_status infer_unary_axis(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    MX_TRY(axis_of(&r, 0, &axis));
    out[0] = *maybe(&r, 0);
    return MX_OK;
}

/* ---- layout --------------------------------------------------------------- */

static const mx_attr *list_attr(const rule *r, mx_attr_key key) {
    return mx_node_attr(r->g, r->node, key);
}

static const char *list_str(const mx_attr *a, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < a->n && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %lld" : "%lld", (ll)a->v[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

mx_status infer_reshape(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    const mx_type *x = maybe(&r, 0);
    const mx_attr *shape = list_attr(&r, MX_A_SHAPE);
    char list[256], ty[96];
    list_str(shape, list, sizeof list);
    if (shape->n > MX_MAX_RANK)
        return mx_fail(d, MX_ERR_INVALID, "shape %s has rank %d > %d", list, shape->n, MX_MAX_RANK);
    int64_t numel = mx_type_numel(x), known = 1;
    int inferred = -1;
    for (int i = 0; i < shape->n; i++) {
        int64_t dim = shape->v[i];
        if (dim == 0)
            return mx_fail(d, MX_ERR_INVALID, "shape %s has a 0 entry", list);
        if (dim == -1 && inferred >= 0)
            return mx_fail(d, MX_ERR_INVALID, "shape %s has more than one -1", list);
        if (dim == -1)
            inferred = i;
        else if (dim > numel / known) /* the product already exceeds numel */
            known = numel + 1;
        else
            known *= dim;
    }
    if (inferred >= 0 ? numel % known != 0 : known != numel)
        return mx_fail(d, MX_ERR_INVALID, "shape %s does not hold the %lld elements of %s", list,
                       (ll)numel, mx_type_str(x, ty, sizeof ty));
    out[0] = (mx_type){x->dtype, shape->n, {0}};
    for (int i = 0; i < shape->n; i++)
        out[0].dim[i] = i == inferred ? numel / known : shape->v[i];
    return MX_OK;
}

mx_status infer_permute(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    const mx_type *x = maybe(&r, 0);
    const mx_attr *perm = list_attr(&r, MX_A_PERM);
    char list[256], ty[96];
    list_str(perm, list, sizeof list);
    bool seen[MX_MAX_RANK] = {false};
    bool ok = perm->n == x->rank;
    for (int i = 0; ok && i < perm->n; i++) {
        ok = perm->v[i] < x->rank && !seen[perm->v[i]];
        if (ok)
            seen[perm->v[i]] = true;
    }
    if (!ok)
        return mx_fail(d, MX_ERR_INVALID, "perm %s is not a permutation of 0..%d (input 1 (x) is %s)",
                       list, x->rank - 1, mx_type_str(x, ty, sizeof ty));
    out[0] = *x;
    for (int i = 0; i < perm->n; i++)
        out[0].dim[i] = x->dim[perm->v[i]];
    return MX_OK;
}

mx_status infer_slice(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    MX_TRY(axis_of(&r, 0, &axis));
    const mx_type *x = maybe(&r, 0);
    int64_t start = mx_node_int(g, node, MX_A_START), end = mx_node_int(g, node, MX_A_END);
    int64_t step = mx_node_int(g, node, MX_A_STEP), n = x->dim[axis];
    if (!(start < end && end <= n))
        return mx_fail(d, MX_ERR_INVALID,
                       "slice [%lld, %lld) of axis %d (length %lld): expected start < end <= length",
                       (ll)start, (ll)end, axis, (ll)n);
    out[0] = *x;
    out[0].dim[axis] = (end - start + step - 1) / step;
    return MX_OK;
}

mx_status infer_concat(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, NULL, "x"));
    MX_TRY(require(&r, 0, n_inputs(&r)));
    MX_TRY(same_dtype_from(&r, 0));
    MX_TRY(axis_of(&r, 0, &axis));
    const mx_type *first = maybe(&r, 0);
    out[0] = *first;
    out[0].dim[axis] = 0;
    for (int i = 0; i < n_inputs(&r); i++) {
        const mx_type *t = maybe(&r, i);
        int64_t want[MX_MAX_RANK];
        memcpy(want, first->dim, sizeof want);
        want[axis] = -1;
        char dims[96];
        MX_TRY(expect_dims(&r, i, first->rank, want, "%s with any length on axis %d (the shape of x_1)",
                        dims_str(first->dim, first->rank, dims, sizeof dims), axis));
        out[0].dim[axis] += t->dim[axis];
    }
    return MX_OK;
}

mx_status infer_split(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    MX_TRY(axis_of(&r, 0, &axis));
    const mx_type *x = maybe(&r, 0);
    const mx_attr *sizes = list_attr(&r, MX_A_SIZES);
    char list[256];
    list_str(sizes, list, sizeof list);
    if (sizes->n != n_results(&r))
        return mx_fail(d, MX_ERR_INVALID, "sizes %s has %d entries but the node has %d results", list,
                       sizes->n, n_results(&r));
    int64_t left = x->dim[axis];
    for (int i = 0; i < sizes->n && left >= 0; i++) {
        left -= sizes->v[i];
        out[i] = *x;
        out[i].dim[axis] = sizes->v[i];
    }
    if (left != 0)
        return mx_fail(d, MX_ERR_INVALID, "sizes %s do not add up to %lld, the length of axis %d",
                       list, (ll)x->dim[axis], axis);
    return MX_OK;
}

mx_status infer_space_to_depth(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    MX_TRY(expect_dims(&r, 0, 4, NULL, "[B, H, W, C]"));
    const mx_type *x = maybe(&r, 0);
    int64_t block = mx_node_int(g, node, MX_A_BLOCK);
    if (x->dim[1] % block || x->dim[2] % block)
        return bad_shape(&r, 0, "[B, H, W, C] with H and W divisible by block %lld", (ll)block);
    out[0] = (mx_type){x->dtype, 4,
                       {x->dim[0], x->dim[1] / block, x->dim[2] / block, block * block * x->dim[3]}};
    return MX_OK;
}

mx_status infer_unfold(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    MX_TRY(axis_of(&r, 0, &axis));
    const mx_type *x = maybe(&r, 0);
    if (x->rank + 1 > MX_MAX_RANK)
        return bad_shape(&r, 0, "rank < %d: unfold adds an axis", MX_MAX_RANK);
    int64_t size = mx_node_int(g, node, MX_A_SIZE), stride = mx_node_int(g, node, MX_A_STRIDE);
    int64_t padded = x->dim[axis] + mx_node_int(g, node, MX_A_PAD);
    if (padded < size)
        return mx_fail(d, MX_ERR_INVALID,
                       "window size %lld is longer than axis %d with its padding (%lld)", (ll)size,
                       axis, (ll)padded);
    out[0] = *x;
    out[0].rank++;
    memmove(&out[0].dim[axis + 1], &x->dim[axis], (size_t)(x->rank - axis) * sizeof x->dim[0]);
    out[0].dim[axis] = (padded - size) / stride + 1;
    out[0].dim[axis + 1] = size;
    return MX_OK;
}

/* The scan-order ops: the axis holds the h x w grid, L = h*w. */
static mx_status check_grid(const rule *r, int i, int axis) {
    int64_t h = mx_node_int(r->g, r->node, MX_A_H), w = mx_node_int(r->g, r->node, MX_A_W);
    int64_t L = maybe(r, i)->dim[axis];
    if (L % w == 0 && L / w == h) /* h*w == L without overflow */
        return MX_OK;
    return bad_shape(r, i, "length h*w = %lld*%lld on axis %d", (ll)h, (ll)w, axis);
}

mx_status infer_scan_gather(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, names_x, NULL));
    MX_TRY(axis_of(&r, 0, &axis));
    MX_TRY(check_grid(&r, 0, axis));
    out[0] = *maybe(&r, 0);
    return MX_OK;
}

mx_status infer_scan_scatter(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    int axis;
    MX_TRY(begin(&r, g, node, d, NULL, "y"));
    MX_TRY(require(&r, 0, n_inputs(&r)));
    const mx_attr *orders = list_attr(&r, MX_A_ORDERS);
    if (orders->n != n_inputs(&r))
        return mx_fail(d, MX_ERR_INVALID, "orders has %d entries but the node has %d inputs",
                       orders->n, n_inputs(&r));
    MX_TRY(same_dtype_from(&r, 0));
    for (int i = 1; i < n_inputs(&r); i++)
        MX_TRY(same_shape(&r, 0, i, NULL));
    MX_TRY(axis_of(&r, 0, &axis));
    MX_TRY(check_grid(&r, 0, axis));
    out[0] = *maybe(&r, 0);
    return MX_OK;
}

static const char *const names_embedding[] = {"table", "ids", NULL};

/* ids hold whole numbers in f32 (exact up to 2^24), so an id tensor never
 * takes the table's f16 or bf16 rounding; the rows keep the table's dtype. */
mx_status infer_embedding(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_embedding, NULL));
    const mx_type *table = maybe(&r, 0), *ids = maybe(&r, 1);
    MX_TRY(expect_dims(&r, 0, 2, NULL, "[V, C]"));
    if (ids->dtype != MX_F32)
        return fail_input(&r, 1, "has dtype %s: expected f32 (token ids as whole numbers)",
                          mx_dtype_names[ids->dtype]);
    if (ids->rank > MX_MAX_RANK - 1)
        return bad_shape(&r, 1, "rank <= %d (the rows add one dim)", MX_MAX_RANK - 1);
    out[0] = *ids;
    out[0].dtype = table->dtype;
    out[0].dim[out[0].rank++] = table->dim[1];
    return MX_OK;
}

/* ---- the selective scan and the weighted average -------------------------- */

static const char *const names_scan[] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias", "h0", NULL};

mx_status infer_selective_scan(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    static const int like_u[] = {MX_SCAN_DELTA, MX_SCAN_B, MX_SCAN_C, MX_SCAN_Z};
    static const int per_channel[] = {MX_SCAN_D, MX_SCAN_DELTA_BIAS};
    rule r;
    MX_TRY(begin(&r, g, node, d, names_scan, NULL));
    const mx_type *u = maybe(&r, MX_SCAN_U), *A = maybe(&r, MX_SCAN_A);
    for (int k = 0; k < COUNT(like_u); k++) /* A, D, delta_bias and h0 may have any dtype */
        MX_TRY(same_dtype(&r, MX_SCAN_U, like_u[k]));

    MX_TRY(expect_dims(&r, MX_SCAN_U, 3, NULL, "[Bt, Ch, L]"));
    int64_t Bt = u->dim[0], Ch = u->dim[1], L = u->dim[2];
    MX_TRY(same_shape(&r, MX_SCAN_U, MX_SCAN_DELTA, "[Bt, Ch, L]"));
    if (maybe(&r, MX_SCAN_Z))
        MX_TRY(same_shape(&r, MX_SCAN_U, MX_SCAN_Z, "[Bt, Ch, L]"));
    MX_TRY(expect_dims(&r, MX_SCAN_A, 2, (int64_t[]){Ch, -1}, "[Ch, N] with Ch = %lld (dim 1 of u)",
                    (ll)Ch));
    int64_t N = A->dim[1];
    MX_TRY(expect_dims(&r, MX_SCAN_B, 4, (int64_t[]){Bt, -1, N, L},
                    "[Bt, G, N, L] with Bt = %lld, N = %lld (dim 1 of A), L = %lld", (ll)Bt, (ll)N,
                    (ll)L));
    if (Ch % maybe(&r, MX_SCAN_B)->dim[1])
        return bad_shape(&r, MX_SCAN_B, "[Bt, G, N, L] with G dividing Ch = %lld", (ll)Ch);
    MX_TRY(same_shape(&r, MX_SCAN_B, MX_SCAN_C, "[Bt, G, N, L]"));
    for (int k = 0; k < COUNT(per_channel); k++)
        if (maybe(&r, per_channel[k]))
            MX_TRY(expect_dims(&r, per_channel[k], 1, &Ch, "[Ch] with Ch = %lld (dim 1 of u)", (ll)Ch));
    mx_type state = {MX_F32, 3, {Bt, Ch, N}}; /* hN is always f32 */
    char dims[96];
    if (maybe(&r, MX_SCAN_H0))
        MX_TRY(expect_dims(&r, MX_SCAN_H0, 3, state.dim, "[Bt, Ch, N] = %s",
                        dims_str(state.dim, 3, dims, sizeof dims)));
    out[0] = *u;
    if (n_results(&r) == 2)
        out[1] = state;
    return MX_OK;
}

static const char *const names_wsum[] = {"w", NULL};

mx_status infer_weighted_sum(const mx_graph *g, int node, mx_type *out, mx_diag *d) {
    rule r;
    MX_TRY(begin(&r, g, node, d, names_wsum, "x"));
    MX_TRY(require(&r, 0, n_inputs(&r)));
    int64_t n = n_inputs(&r) - 1;
    MX_TRY(expect_dims(&r, 0, 1, &n, "[n] with n = %lld, the number of x inputs", (ll)n));
    MX_TRY(same_dtype_from(&r, 1));
    for (int i = 2; i < n_inputs(&r); i++)
        MX_TRY(same_shape(&r, 1, i, NULL));
    out[0] = *maybe(&r, 1);
    return MX_OK;
}
