/* gemm.c: decoding a matmul group into one strided, batched product (gemm.h). */
#include "gemm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "half.h"

typedef struct {
    const mx_program *p;
    int group;
    mx_diag *d;
} decoder;

static mx_status refuse(const decoder *dc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static mx_status refuse(const decoder *dc, const char *fmt, ...) {
    const mx_graph *g = dc->p->g;
    char label[128], why[1024];
    mx_node_label(g, dc->p->groups[dc->group].anchor, label, sizeof label);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return mx_fail(dc->d, MX_ERR_INVALID, "group %d (matmul, anchor %s): %s", dc->group, label, why);
}

static bool folded(const mx_program *p, int node) {
    return p->view && p->view[node] == MX_VIEW_CONSUMER;
}

/* A view that leaves the memory order alone: a reshape, or a permute that only
 * moves dims of size 1. */
static bool contiguous_view(const mx_graph *g, int node) {
    if (g->nodes[node].op == MX_OP_RESHAPE)
        return true;
    if (g->nodes[node].op != MX_OP_PERMUTE)
        return false;
    const mx_type *in = mx_node_input_type(g, node, 0);
    const mx_attr *perm = mx_node_attr(g, node, MX_A_PERM);
    int64_t prev = -1;
    for (int i = 0; i < perm->n; i++)
        if (in->dim[perm->v[i]] != 1) {
            if (perm->v[i] < prev)
                return false;
            prev = perm->v[i];
        }
    return true;
}

/* The value whose memory v is, through folded contiguous views. */
static int strip(const mx_program *p, int v) {
    const mx_graph *g = p->g;
    for (int n = g->values[v].node; folded(p, n) && contiguous_view(g, n); n = g->values[v].node)
        v = mx_node_input(g, n, 0);
    return v;
}

/* One operand as the anchor reads it: a stack of row-major matrices of the
 * logical type's last two dims, mat_stride elements apart. */
typedef struct {
    mx_gemm_operand op;
    const mx_type *type; /* the logical type (the anchor's input) */
    int64_t mat_stride;
} operand;

static mx_status decode_operand(const decoder *dc, int v, const char *what, operand *out) {
    const mx_graph *g = dc->p->g;
    const mx_type *t = mx_value_type(g, v);
    int64_t rows = mx_dim_from_end(t, 1), cols = mx_dim_from_end(t, 0);
    *out = (operand){{MX_NONE, 0, cols, false, 0, 0}, t, rows * cols};
    v = strip(dc->p, v);
    int n = g->values[v].node;
    if (folded(dc->p, n)) { /* the one gemm map */
        const mx_type *in = mx_node_input_type(g, n, 0);
        int axis = -1;
        if (g->nodes[n].op == MX_OP_SLICE || g->nodes[n].op == MX_OP_SPLIT)
            axis = mx_axis(mx_node_int(g, n, MX_A_AXIS), in->rank);
        if (g->nodes[n].op == MX_OP_PERMUTE && mx_perm_swaps_last_two(mx_node_attr(g, n, MX_A_PERM))) {
            out->op.trans = true;
            out->op.ld = in->dim[in->rank - 1];
        } else if (axis == in->rank - 1 && g->nodes[n].op == MX_OP_SLICE &&
                   mx_node_int(g, n, MX_A_STEP) == 1) {
            out->op.ld = in->dim[axis];
            out->op.offset = mx_node_int(g, n, MX_A_START);
        } else if (axis == in->rank - 1 && g->nodes[n].op == MX_OP_SPLIT) {
            const mx_attr *sizes = mx_node_attr(g, n, MX_A_SIZES);
            out->op.ld = in->dim[axis];
            for (int i = 0; i < g->values[v].index; i++)
                out->op.offset += sizes->v[i];
        } else if (axis == in->rank - 2 && in->rank >= 2 && g->nodes[n].op == MX_OP_SLICE &&
                   mx_node_int(g, n, MX_A_STEP) == 1) { /* rows of each matrix */
            out->op.ld = in->dim[in->rank - 1];
            out->op.offset = mx_node_int(g, n, MX_A_START) * out->op.ld;
        } else if (axis == in->rank - 2 && in->rank >= 2 && g->nodes[n].op == MX_OP_SPLIT) {
            const mx_attr *sizes = mx_node_attr(g, n, MX_A_SIZES);
            out->op.ld = in->dim[in->rank - 1];
            for (int i = 0; i < g->values[v].index; i++)
                out->op.offset += sizes->v[i] * out->op.ld;
        } else {
            return refuse(dc, "%s is read through %s, which cuBLAS cannot read as a strided matrix",
                          what, mx_ops[g->nodes[n].op].name);
        }
        out->mat_stride = mx_dim_from_end(in, 1) * mx_dim_from_end(in, 0);
        v = strip(dc->p, mx_node_input(g, n, 0));
        if (folded(dc->p, g->values[v].node))
            return refuse(dc, "%s is read through two strided views", what);
    }
    out->op.value = v;
    return MX_OK;
}

/* Batch levels of a matmul: output batch dims grouped where both operands
 * are present (or broadcast) alike; each level strides by its innermost dim. */
typedef struct {
    int64_t count, stride[3]; /* a, b, y */
} level;

static mx_status batch_levels(const decoder *dc, const operand *A, const operand *B,
                              const mx_type *yt, int64_t y_mat, mx_gemm *gm) {
    level lv[MX_MAX_RANK];
    int n_lv = 0, last_pattern = -1;
    const operand *ops[2] = {A, B};
    int64_t inner[3] = {A->mat_stride, B->mat_stride, y_mat};
    for (int i = 0; i < yt->rank - 2; i++) { /* innermost batch dim first */
        int64_t size = mx_dim_from_end(yt, i + 2);
        if (size == 1)
            continue;
        int pattern = 0;
        int64_t stride[3] = {0, 0, inner[2]};
        for (int o = 0; o < 2; o++)
            if (mx_dim_from_end(ops[o]->type, i + 2) == size && i + 2 < ops[o]->type->rank) {
                pattern |= 1 << o;
                stride[o] = inner[o];
            }
        for (int o = 0; o < 3; o++)
            inner[o] *= o < 2 ? mx_dim_from_end(ops[o]->type, i + 2) : size;
        if (pattern == last_pattern) {
            lv[n_lv - 1].count *= size;
        } else {
            lv[n_lv++] = (level){size, {stride[0], stride[1], stride[2]}};
            last_pattern = pattern;
        }
    }
    if (n_lv > 2)
        return refuse(dc, "its batch dims broadcast in %d alternating runs; cuBLAS strided "
                          "batches take two", n_lv);
    gm->a.batch_stride = gm->a.outer_stride = 0;
    gm->b.batch_stride = gm->b.outer_stride = 0;
    if (n_lv >= 1) {
        gm->batch = lv[0].count;
        gm->a.batch_stride = lv[0].stride[0], gm->b.batch_stride = lv[0].stride[1];
        gm->y.batch_stride = lv[0].stride[2];
    }
    if (n_lv == 2) {
        gm->outer = lv[1].count;
        gm->a.outer_stride = lv[1].stride[0], gm->b.outer_stride = lv[1].stride[1];
        gm->y.outer_stride = lv[1].stride[2];
    }
    return MX_OK;
}

/* The anchor's product, before any epilogue. */
static mx_status decode_product(const decoder *dc, int anchor, mx_gemm *gm) {
    const mx_graph *g = dc->p->g;
    const mx_type *yt = mx_value_type(g, mx_node_output(g, anchor, 0));
    operand A, B;
    MX_TRY(decode_operand(dc, mx_node_input(g, anchor, 0), "its input", &A));
    MX_TRY(decode_operand(dc, mx_node_input(g, anchor, 1), "its weight", &B));
    gm->batch = gm->outer = 1;
    gm->n = mx_dim_from_end(yt, 0);
    gm->y = (mx_gemm_operand){mx_node_output(g, anchor, 0), 0, gm->n, false, 0, 0};
    if (g->nodes[anchor].op == MX_OP_LINEAR) {
        /* W is [n, k]: B(k, j) = W(j, k), one W for every batch. */
        gm->k = mx_dim_from_end(B.type, 0);
        B.op.trans = !B.op.trans;
        gm->b = B.op;
        gm->a = A.op;
        /* a transposed input, or rows cut out of each matrix, is a stack of [m, k] matrices */
        if (A.op.trans || A.mat_stride != mx_dim_from_end(A.type, 1) * A.op.ld) {
            gm->m = mx_dim_from_end(A.type, 1);
            gm->batch = mx_type_numel(A.type) / (gm->m * gm->k);
            gm->a.batch_stride = A.mat_stride;
        } else { /* rows are ld apart all the way down */
            gm->m = mx_type_numel(A.type) / gm->k;
            gm->a.batch_stride = gm->m * A.op.ld;
        }
        gm->y.batch_stride = gm->m * gm->n;
        int bias = mx_node_input(g, anchor, 2);
        gm->bias = bias == MX_NONE ? MX_NONE : strip(dc->p, bias);
        if (gm->bias != MX_NONE && folded(dc->p, g->values[gm->bias].node))
            return refuse(dc, "its bias is read through a %s", mx_ops[g->nodes[g->values[gm->bias].node].op].name);
        return MX_OK;
    }
    gm->m = mx_dim_from_end(yt, 1);
    gm->k = mx_dim_from_end(A.type, 0);
    gm->a = A.op, gm->b = B.op, gm->bias = MX_NONE;
    return batch_levels(dc, &A, &B, yt, gm->m * gm->n, gm);
}

/* An add of `other` to the running result, whose type is s: a bias when other
 * is one row, else the residual C, broadcast over a prefix of the batch. */
static mx_status decode_add(const decoder *dc, int other, const mx_type *s, mx_gemm *gm) {
    const mx_graph *g = dc->p->g;
    const mx_type *rt = mx_value_type(g, other);
    int base = strip(dc->p, other);
    if (folded(dc->p, g->values[base].node))
        return refuse(dc, "its residual is read through a %s; cuBLASLt reads C as stored",
                      mx_ops[g->nodes[g->values[base].node].op].name);
    if (rt->dtype != gm->dtype)
        return refuse(dc, "its residual is %s, the product %s", mx_dtype_names[rt->dtype],
                      mx_dtype_names[gm->dtype]);
    int full = mx_broadcast_suffix(rt, s);
    if (full < 0)
        return refuse(dc, "its residual broadcasts inside the batch, not over a prefix");
    if (full == 0)
        return refuse(dc, "its residual broadcasts along the output columns");
    int64_t rows = mx_type_numel(rt) / gm->n, total = gm->outer * gm->batch * gm->m;
    if (mx_dim_from_end(s, 0) != gm->n && rows != total)
        return refuse(dc, "its residual broadcasts over a reshaped result");
    if (rows == 1) {
        if (gm->bias != MX_NONE)
            return refuse(dc, "it adds two biases");
        gm->bias = base;
        return MX_OK;
    }
    if (gm->c.value != MX_NONE)
        return refuse(dc, "it adds two residuals");
    gm->c = gm->y;
    gm->c.value = base;
    if (rows == total)
        return MX_OK;
    /* One plain product may be cut into batches of the residual's rows. */
    if (gm->outer == 1 && gm->batch == 1 && !gm->a.trans && gm->m % rows == 0) {
        gm->batch = gm->m / rows;
        gm->m = rows;
        gm->a.batch_stride = rows * gm->a.ld;
        gm->y.batch_stride = gm->c.batch_stride = rows * gm->n;
    }
    if (rows == gm->m) {
        gm->c.batch_stride = gm->c.outer_stride = 0;
        return MX_OK;
    }
    if (rows == gm->batch * gm->m) {
        gm->c.outer_stride = 0;
        return MX_OK;
    }
    return refuse(dc, "its residual repeats every %lld rows, which does not match its batches "
                      "of %lld x %lld rows", (long long)rows, (long long)gm->batch, (long long)gm->m);
}

mx_status mx_gemm_decode(const mx_program *p, int group, mx_gemm *out, mx_diag *d) {
    decoder dc = {p, group, d};
    const mx_graph *g = p->g;
    const mx_group *gr = &p->groups[group];
    int anchor = gr->anchor;
    *out = (mx_gemm){.group = group, .c = {MX_NONE, 0, 0, false, 0, 0}, .bias = MX_NONE};
    if (gr->kind != MX_FUSE_MATMUL)
        return refuse(&dc, "not a matmul group (%s)", mx_fusion_names[gr->kind]);
    out->dtype = mx_value_type(g, mx_node_output(g, anchor, 0))->dtype;
    for (int i = 0; i < g->nodes[anchor].n_in; i++) {
        int v = mx_node_input(g, anchor, i);
        if (v != MX_NONE && mx_value_type(g, v)->dtype != out->dtype)
            return refuse(&dc, "its operands mix storage types");
    }
    MX_TRY(decode_product(&dc, anchor, out));
    int cur = mx_node_output(g, anchor, 0);
    for (int i = 0; i < gr->n_nodes; i++) {
        int e = gr->nodes[i];
        if (e == anchor || folded(p, e))
            continue;
        char label[128];
        mx_node_label(g, e, label, sizeof label);
        if (e < anchor)
            return refuse(&dc, "%s runs before the product", label);
        int self = -1;
        for (int j = 0; j < g->nodes[e].n_in && self < 0; j++)
            if (strip(p, mx_node_input(g, e, j)) == cur)
                self = j;
        if (self < 0)
            return refuse(&dc, "%s does not read the product's result", label);
        if (out->act != MX_GEMM_ACT_NONE)
            return refuse(&dc, "%s follows the activation; cuBLASLt applies it last", label);
        switch (g->nodes[e].op) {
        case MX_OP_ADD: {
            int other = mx_node_input(g, e, 1 - self);
            if (strip(p, other) == cur)
                return refuse(&dc, "%s adds the result to itself", label);
            MX_TRY(decode_add(&dc, other, mx_value_type(g, mx_node_output(g, e, 0)), out));
            break;
        }
        case MX_OP_RELU:
            out->act = MX_GEMM_ACT_RELU;
            break;
        case MX_OP_GELU:
            if (mx_node_int(g, e, MX_A_APPROX) != MX_GELU_TANH)
                return refuse(&dc, "%s is the erf form; cuBLASLt's GELU epilogue is the tanh form", label);
            out->act = MX_GEMM_ACT_GELU_TANH;
            break;
        default:
            return refuse(&dc, "%s is no cuBLASLt epilogue (add, relu, gelu)", label);
        }
        if (mx_value_type(g, mx_node_output(g, e, 0))->dtype != out->dtype)
            return refuse(&dc, "%s changes the storage type", label);
        cur = mx_node_output(g, e, 0);
    }
    out->y.value = cur;
    return MX_OK;
}

uint64_t mx_gemm_identity(const mx_program *p, const mx_gemm *gm) {
    const mx_graph *g = p->g;
    const mx_gemm_operand *ops[] = {&gm->a, &gm->b, &gm->c, &gm->y};
    char key[768];
    size_t n = (size_t)snprintf(key, sizeof key, "matmul %lld x %lld: [%lld x %lld] [%lld x %lld] act %d bias %s",
                                (long long)gm->outer, (long long)gm->batch, (long long)gm->m, (long long)gm->k,
                                (long long)gm->k, (long long)gm->n, (int)gm->act,
                                gm->bias == MX_NONE ? "-" : mx_dtype_names[mx_value_type(g, gm->bias)->dtype]);
    for (int i = 0; i < 4 && n < sizeof key; i++) {
        const mx_gemm_operand *o = ops[i];
        if (o->value == MX_NONE) {
            n += (size_t)snprintf(key + n, sizeof key - n, " | -");
            continue;
        }
        n += (size_t)snprintf(key + n, sizeof key - n, " | %s%s%s @%lld ld %lld%s b %lld o %lld",
                              mx_dtype_names[mx_value_type(g, o->value)->dtype],
                              mx_graph_value_is_param(g, o->value) ? " weight" : "",
                              i == 2 && o->value == gm->y.value ? " y" : "", (long long)o->offset, (long long)o->ld,
                              o->trans ? " T" : "", (long long)o->batch_stride, (long long)o->outer_stride);
    }
    return mx_hash128_bytes(key, strlen(key), 0).lo;
}

void mx_gemm_run_host(const mx_gemm *gm, mx_buffers *b) {
    const float *A = b->data[gm->a.value], *B = b->data[gm->b.value];
    const float *C = gm->c.value != MX_NONE ? b->data[gm->c.value] : NULL;
    const float *bias = gm->bias != MX_NONE ? b->data[gm->bias] : NULL;
    float *Y = b->data[gm->y.value];
    for (int64_t o = 0; o < gm->outer; o++)
        for (int64_t t = 0; t < gm->batch; t++)
            for (int64_t i = 0; i < gm->m; i++)
                for (int64_t j = 0; j < gm->n; j++) {
                    double acc = bias ? bias[j] : 0;
                    for (int64_t k = 0; k < gm->k; k++)
                        acc += (double)A[mx_gemm_index(&gm->a, o, t, i, k)] *
                               B[mx_gemm_index(&gm->b, o, t, k, j)];
                    if (C)
                        acc += C[mx_gemm_index(&gm->c, o, t, i, j)];
                    if (gm->act == MX_GEMM_ACT_RELU)
                        acc = acc > 0 ? acc : 0;
                    else if (gm->act == MX_GEMM_ACT_GELU_TANH)
                        acc = 0.5 * acc * (1 + tanh(0.7978845608028654 * (acc + 0.044715 * acc * acc * acc)));
                    Y[mx_gemm_index(&gm->y, o, t, i, j)] = mx_round_to(gm->dtype, (float)acc);
                }
}
