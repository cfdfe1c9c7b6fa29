/* emit_norm.c: row kernels: layernorm, rmsnorm, softmax (any axis) and
 * reduce (sum, mean, max, var over any axis), with the group's prologue
 * (the row read through mx_emit_value: views, a weighted_sum, elementwise
 * ops) and epilogue (elementwise members of the row's shape, e.g. a gate;
 * after a reduction also those of the reduced shape, e.g. add eps + sqrt).
 *
 * One block per row (a grid-stride loop over rows), the block's threads
 * striding along the row; block reductions are warp shuffles and one shared
 * slot per warp (mx_block_reduce, a module helper), f32 accumulation.
 * Statistics are two-pass (mean, then the mean square deviation), as the
 * reference. The prologue is recomputed at each pass rather than staged: the
 * rows are re-read from L1/L2. Block sizes are multiples of 32, so every
 * shuffle names the full warp. */
#include <stdio.h>
#include <string.h>

#include "emit.h"

typedef struct {
    int anchor, x, y; /* the node, its row input, its result */
    int axis;
    int64_t n; /* row length */
    mx_idx_str row[MX_MAX_RANK]; /* index of the current row, "j" along the axis */
    const char *ptr[MX_MAX_RANK];
    int rank;
} rows;

static void row_value(mx_emitter *e, rows *r, char *out, size_t size) {
    mx_emit_value(e, r->x, r->ptr, out, size);
}

/* `float name = 0 / -inf; for j: name = name op f(x); name = block reduce` */
static void reduce_pass(mx_emitter *e, rows *r, const char *name, const char *init, const char *update_fmt,
                        const char *center, bool max) {
    mx_emit_line(e, "float %s = %s;", name, init);
    mx_emit_open(e, "for (%s j = threadIdx.x; j < %lld; j += blockDim.x)", e->ity, (long long)r->n);
    char x[96], term[256];
    row_value(e, r, x, sizeof x);
    snprintf(term, sizeof term, update_fmt, x, center, x, center);
    mx_emit_line(e, max ? "%s = fmaxf(%s, %s);" : "%s += %s;", name, max ? name : term, max ? term : "");
    mx_emit_close(e);
    mx_emit_line(e, "%s = mx_block_reduce(%s, red, %s);", name, name, max ? "true" : "false");
}

/* The values the group stores, each at the index of an element of the row
 * (row_shape) or of the row's reduced result (reduced). */
static void store_group(mx_emitter *e, const mx_type *shape, const char *const *idx) {
    const mx_program *p = e->p;
    const mx_group *gr = &p->groups[e->group];
    for (int i = 0; i < gr->n_nodes; i++) {
        const mx_node *n = &p->g->nodes[gr->nodes[i]];
        for (int o = 0; o < n->n_out; o++) {
            int v = n->first_out + o;
            if (!mx_emit_is_root(e, v) || !mx_type_equal(mx_value_type(p->g, v), shape))
                continue;
            char x[96];
            mx_emit_value(e, v, idx, x, sizeof x);
            mx_emit_store(e, v, idx, x);
        }
    }
}

/* Every stored value must have one of the shapes the kernel walks. */
static void check_stores(mx_emitter *e, const mx_type *a, const mx_type *b) {
    const mx_program *p = e->p;
    const mx_group *gr = &p->groups[e->group];
    for (int i = 0; i < gr->n_nodes; i++) {
        const mx_node *n = &p->g->nodes[gr->nodes[i]];
        for (int o = 0; o < n->n_out; o++) {
            int v = n->first_out + o;
            char label[160];
            if (mx_emit_is_root(e, v) && !mx_type_equal(mx_value_type(p->g, v), a) &&
                (!b || !mx_type_equal(mx_value_type(p->g, v), b)))
                mx_emit_fail(e, "%s is stored but has neither the row's shape nor the result's (a view only its output's side can store)",
                             mx_node_label(p->g, gr->nodes[i], label, sizeof label));
        }
    }
}

static void emit_norm_rows(mx_emitter *e, rows *r) {
    const mx_graph *g = e->p->g;
    mx_op op = g->nodes[r->anchor].op;
    char x[96], inv_n[48], expr[512];
    mx_emit_float(1.0 / (double)r->n, inv_n, sizeof inv_n);
    if (op == MX_OP_SOFTMAX) {
        reduce_pass(e, r, "mx", "-__int_as_float(0x7f800000)", "%s%s", "", true);
        reduce_pass(e, r, "sum", "0.0f", "expf(%s - %s)", "mx", false);
        mx_emit_line(e, "const float scale = 1.0f / sum;");
    } else {
        bool center = op == MX_OP_LAYERNORM;
        if (center) {
            reduce_pass(e, r, "mean", "0.0f", "%s%s", "", false);
            mx_emit_line(e, "mean *= %s;", inv_n);
        }
        reduce_pass(e, r, "ms", "0.0f", "(%s - %s) * (%s - %s)", center ? "mean" : "0.0f", false);
        char eps[48];
        mx_emit_float(mx_node_float(g, r->anchor, MX_A_EPS), eps, sizeof eps);
        mx_emit_line(e, "const float inv = 1.0f / sqrtf(ms * %s + %s);", inv_n, eps);
    }
    mx_emit_open(e, "for (%s j = threadIdx.x; j < %lld; j += blockDim.x)", e->ity, (long long)r->n);
    row_value(e, r, x, sizeof x);
    if (op == MX_OP_SOFTMAX) {
        snprintf(expr, sizeof expr, "expf(%s - mx) * scale", x);
    } else {
        snprintf(expr, sizeof expr, "(%s - %s) * inv", x, op == MX_OP_LAYERNORM ? "mean" : "0.0f");
        for (int i = 1; i < g->nodes[r->anchor].n_in; i++) {
            if (mx_node_input(g, r->anchor, i) == MX_NONE)
                continue;
            const char *ci[1] = {r->n == 1 ? "0" : "j"};
            char c[96], next[512];
            mx_emit_value(e, mx_node_input(g, r->anchor, i), ci, c, sizeof c);
            snprintf(next, sizeof next, i == 1 ? "(%s) * %s" : "%s + %s", expr, c);
            snprintf(expr, sizeof expr, "%s", next);
        }
    }
    mx_emit_line(e, "float y = %s;", expr);
    mx_dtype dt = mx_value_type(g, r->y)->dtype;
    if (dt != MX_F32)
        mx_emit_line(e, dt == MX_F16 ? "y = __half2float(__float2half_rn(y));"
                                     : "y = __bfloat162float(__float2bfloat16_rn(y));");
    mx_emit_bind(e, r->y, r->ptr, "y");
    store_group(e, mx_value_type(g, r->y), r->ptr);
    mx_emit_close(e);
    check_stores(e, mx_value_type(g, r->y), NULL);
}

static void emit_reduce_rows(mx_emitter *e, rows *r) {
    const mx_graph *g = e->p->g;
    mx_reduce_kind kind = (mx_reduce_kind)mx_node_int(g, r->anchor, MX_A_KIND);
    char inv_n[48];
    mx_emit_float(1.0 / (double)r->n, inv_n, sizeof inv_n);
    if (kind == MX_REDUCE_MAX) {
        reduce_pass(e, r, "res", "-__int_as_float(0x7f800000)", "%s%s", "", true);
    } else {
        reduce_pass(e, r, "res", "0.0f", "%s%s", "", false);
        if (kind != MX_REDUCE_SUM)
            mx_emit_line(e, "res *= %s;", inv_n);
        if (kind == MX_REDUCE_VAR) {
            reduce_pass(e, r, "dev", "0.0f", "(%s - %s) * (%s - %s)", "res", false);
            mx_emit_line(e, "res = dev * %s;", inv_n);
        }
    }
    mx_dtype dt = mx_value_type(g, r->y)->dtype;
    if (dt != MX_F32)
        mx_emit_line(e, dt == MX_F16 ? "res = __half2float(__float2half_rn(res));"
                                     : "res = __bfloat162float(__float2bfloat16_rn(res));");
    /* The result's index: the row's without the axis (or 0 there, keepdim). */
    const mx_type *yt = mx_value_type(g, r->y), *xt = mx_value_type(g, r->x);
    const char *yi[MX_MAX_RANK];
    bool keep = yt->rank == xt->rank;
    for (int k = 0, m = 0; k < xt->rank; k++)
        if (k != r->axis)
            yi[m++] = r->ptr[k];
        else if (keep)
            yi[m++] = "0";
    mx_emit_bind(e, r->y, yi, "res");
    /* Values of the reduced shape: every thread has them, one stores. */
    mx_emit_open(e, "if (threadIdx.x == 0)");
    store_group(e, yt, yi);
    mx_emit_close(e);
    /* Values of the row's shape that read the result (x - mean). */
    if (!mx_type_equal(yt, xt)) {
        mx_emit_open(e, "for (%s j = threadIdx.x; j < %lld; j += blockDim.x)", e->ity, (long long)r->n);
        store_group(e, xt, r->ptr);
        mx_emit_close(e);
    }
    check_stores(e, yt, xt);
}

mx_status mx_emit_norm(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d) {
    const mx_program *p = e->p;
    const mx_graph *g = p->g;
    rows r = {.anchor = p->groups[e->group].anchor};
    mx_op op = g->nodes[r.anchor].op;
    r.x = mx_node_input(g, r.anchor, 0);
    r.y = mx_node_output(g, r.anchor, 0);
    const mx_type *xt = mx_value_type(g, r.x);
    r.rank = xt->rank;
    r.axis = op == MX_OP_LAYERNORM || op == MX_OP_RMSNORM
                 ? xt->rank - 1
                 : mx_axis(mx_node_int(g, r.anchor, MX_A_AXIS), xt->rank);
    if (t->threads <= 0 || t->threads % 32 || t->threads > 1024)
        return mx_fail(d, MX_ERR_INVALID, "group %d: a row kernel needs a multiple of 32 threads up to 1024, not %d",
                       e->group, t->threads);
    if (xt->rank == 0) { /* a scalar: one row of one */
        r.n = 1;
    } else {
        r.n = xt->dim[r.axis];
    }
    /* Rows: the tensor with the axis taken out. */
    mx_type rt = *xt;
    if (rt.rank)
        rt.dim[r.axis] = 1;
    int64_t n_rows = mx_type_numel(&rt);
    mx_emit_line(e, "__shared__ float red[32];");
    mx_emit_open(e, "for (%s row = blockIdx.x; row < %lld; row += gridDim.x)", e->ity, (long long)n_rows);
    mx_emit_delinearise(e, "row", &rt, r.row);
    if (rt.rank)
        snprintf(r.row[r.axis], sizeof r.row[r.axis], "%s", r.n == 1 ? "0" : "j");
    for (int i = 0; i < r.rank; i++)
        r.ptr[i] = r.row[i];
    if (op == MX_OP_REDUCE)
        emit_reduce_rows(e, &r);
    else
        emit_norm_rows(e, &r);
    mx_emit_close(e);
    k->grid[0] = (unsigned)(n_rows < 65535 ? n_rows : 65535);
    k->grid[1] = k->grid[2] = 1;
    k->block[0] = (unsigned)t->threads;
    k->block[1] = k->block[2] = 1;
    k->smem = 0;
    if (e->status != MX_OK)
        *d = e->diag;
    return e->status;
}
