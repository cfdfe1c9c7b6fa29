/* expr.c: values of a group at an index, as C: the one routine behind every
 * emitter (emit.h). Folded views become index arithmetic composed down to a
 * materialised base, elementwise members become float expressions (with the
 * reference's formulas, docs/ops.md), materialised values and params become
 * loads, and stores go to a value's buffer and to the views its producer
 * stores (MX_VIEW_PRODUCER) at the index each element lands at.
 *
 * Scan orders: row, col, snake and snake_col are closed forms; diag (and its
 * inverse) calls a small device function that walks the anti-diagonals
 * (mx_diag_pos / mx_diag_step, emitted once per module, O(h + w) per call)
 * rather than a precomputed table: no extra kernel argument and no table to
 * upload, at the price of a loop per index; the scan-order permutations are
 * read once per element, so this only matters for diag orders. */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "half.h"

typedef mx_idx_str idx_t[MX_MAX_RANK + 1];

/* ---- the emitter -------------------------------------------------------------- */

static int64_t max_numel_of(const mx_program *p, int group) {
    const mx_graph *g = p->g;
    int64_t most = 0;
    const mx_group *gr = &p->groups[group];
    for (int i = 0; i < gr->n_nodes; i++) {
        const mx_node *n = &g->nodes[gr->nodes[i]];
        for (int k = 0; k < n->n_in + n->n_out; k++) {
            int v = k < n->n_in ? mx_node_input(g, gr->nodes[i], k) : n->first_out + (k - n->n_in);
            int64_t c = v == MX_NONE ? 0 : mx_type_numel(mx_value_type(g, v));
            most = c > most ? c : most;
        }
    }
    return most;
}

/* Folded views only ever reach elements of tensors the members touch or of
 * their bases, which are at most as large as the largest of those for every
 * view but slice/split; take the bases into account through the members'
 * inputs being the views' outputs (a slice's base is larger: covered by
 * walking the views here). */
static int64_t folded_most_of(const mx_program *p) {
    const mx_graph *g = p->g;
    int64_t most = 0;
    for (int n = 0; n < g->n_nodes; n++)
        if (mx_view_folded(p, n))
            for (int i = 0; i < g->nodes[n].n_in; i++) {
                int v = mx_node_input(g, n, i);
                int64_t c = v == MX_NONE ? 0 : mx_type_numel(mx_value_type(g, v));
                most = c > most ? c : most;
            }
    return most;
}

void mx_emit_shared_init(mx_emit_shared *s, const mx_program *p) {
    mx_uses_init(&s->uses, p->g);
    s->folded_most = folded_most_of(p);
}

void mx_emit_shared_free(mx_emit_shared *s) { mx_uses_free(&s->uses); }

void mx_emitter_init_shared(mx_emitter *e, const mx_program *p, const mx_target *t, int group, mx_text *body,
                            const mx_emit_shared *s) {
    memset(e, 0, sizeof *e);
    e->p = p;
    e->target = t;
    e->group = group;
    e->body = body;
    e->indent = 1;
    e->uses = s->uses;
    e->uses_shared = true;
    int64_t most = max_numel_of(p, group);
    most = s->folded_most > most ? s->folded_most : most;
    /* 2^30: a grid-stride loop adds up to its stride past the end */
    e->ity = most > (int64_t)1 << 30 ? "long long" : "int";
}

void mx_emitter_init(mx_emitter *e, const mx_program *p, const mx_target *t, int group, mx_text *body) {
    mx_emit_shared s;
    mx_emit_shared_init(&s, p);
    mx_emitter_init_shared(e, p, t, group, body, &s);
    e->uses_shared = false; /* e owns s.uses */
}

void mx_emitter_free(mx_emitter *e) {
    for (int i = 0; i < e->n_memo; i++)
        free(e->memo[i].key);
    free(e->memo);
    free(e->args);
    free(e->written);
    if (!e->uses_shared)
        mx_uses_free(&e->uses);
}

void mx_emit_fail(mx_emitter *e, const char *fmt, ...) {
    if (e->status != MX_OK)
        return;
    const mx_group *gr = &e->p->groups[e->group];
    char label[160], msg[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mx_node_label(e->p->g, gr->anchor, label, sizeof label);
    e->status = mx_fail(&e->diag, MX_ERR_INVALID, "group %d (%s, anchor %s): %s", e->group,
                        mx_fusion_names[gr->kind], label, msg);
}

/* ---- text ------------------------------------------------------------------------ */

static void emit_vline(mx_emitter *e, const char *suffix, const char *fmt, va_list ap) {
    mx_text_printf(e->body, "%*s", 4 * e->indent, "");
    mx_text_vprintf(e->body, fmt, ap);
    mx_text_printf(e->body, "%s\n", suffix);
}

void mx_emit_line(mx_emitter *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit_vline(e, "", fmt, ap);
    va_end(ap);
}

static void push_scope(mx_emitter *e) {
    assert(e->n_scopes < MX_EMIT_MAX_SCOPES && "scopes nest too deep");
    e->scope[e->n_scopes++] = e->n_memo;
    e->indent++;
}

static void pop_scope(mx_emitter *e) {
    assert(e->n_scopes > 0);
    int keep = e->scope[--e->n_scopes];
    for (int i = keep; i < e->n_memo; i++)
        free(e->memo[i].key);
    e->n_memo = keep;
    e->indent--;
}

void mx_emit_open(mx_emitter *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit_vline(e, " {", fmt, ap);
    va_end(ap);
    push_scope(e);
}

void mx_emit_reopen(mx_emitter *e, const char *fmt, ...) {
    pop_scope(e);
    mx_text_printf(e->body, "%*s} ", 4 * e->indent, "");
    va_list ap;
    va_start(ap, fmt);
    mx_text_vprintf(e->body, fmt, ap);
    va_end(ap);
    mx_text_printf(e->body, " {\n");
    push_scope(e);
}

void mx_emit_close(mx_emitter *e) {
    pop_scope(e);
    mx_emit_line(e, "}");
}

const char *mx_emit_temp(mx_emitter *e, char *buf, size_t size) {
    snprintf(buf, size, "t%d", e->next_temp++);
    return buf;
}

void mx_emit_float(double x, char *out, size_t size) {
    if (isnan(x)) {
        snprintf(out, size, "__int_as_float(0x7fc00000)");
    } else if (isinf(x)) {
        snprintf(out, size, "__int_as_float(%s)", x > 0 ? "0x7f800000" : "(int)0xff800000u");
    } else {
        char num[40];
        snprintf(num, sizeof num, "%.9g", x);
        bool has_point = strpbrk(num, ".e") != NULL;
        snprintf(out, size, "%s%sf", num, has_point ? "" : ".0");
    }
}

/* ---- memo -------------------------------------------------------------------------- */

static char *join(const char *const *idx, int rank) {
    size_t len = 1;
    for (int i = 0; i < rank; i++)
        len += strlen(idx[i]) + 1;
    char *key = malloc(len);
    assert(key && "out of memory");
    key[0] = 0;
    for (int i = 0; i < rank; i++) {
        if (i)
            strcat(key, ",");
        strcat(key, idx[i]);
    }
    return key;
}

static int rank_of(const mx_emitter *e, int v) { return mx_value_type(e->p->g, v)->rank; }

static const char *memo_find(const mx_emitter *e, int v, const char *const *idx) {
    char *key = join(idx, rank_of(e, v));
    const char *hit = NULL;
    for (int i = e->n_memo - 1; i >= 0 && !hit; i--)
        if (e->memo[i].value == v && strcmp(e->memo[i].key, key) == 0)
            hit = e->memo[i].expr;
    free(key);
    return hit;
}

void mx_emit_bind(mx_emitter *e, int v, const char *const *idx, const char *expr) {
    if (e->n_memo == e->cap_memo) {
        e->cap_memo = e->cap_memo ? 2 * e->cap_memo : 64;
        e->memo = realloc(e->memo, (size_t)e->cap_memo * sizeof *e->memo);
        assert(e->memo && "out of memory");
    }
    mx_memo *m = &e->memo[e->n_memo++];
    m->value = v;
    m->key = join(idx, rank_of(e, v));
    snprintf(m->expr, sizeof m->expr, "%s", expr);
}

void mx_emit_forget(mx_emitter *e) {
    int keep = e->n_scopes ? e->scope[e->n_scopes - 1] : 0;
    for (int i = keep; i < e->n_memo; i++)
        free(e->memo[i].key);
    e->n_memo = keep;
}

/* ---- buffers and addressing ------------------------------------------------------ */

/* Kernel parameters: the names "b0" .. are stable strings for the callers,
 * written once for the process: kernels are generated on several threads
 * at once (the tuner's candidates), and a name rewritten while another
 * thread read it came out empty ("[t8]" in a kernel's text). */
static char buffer_names[MX_GROUP_MAX_BUFFERS][12];
static pthread_once_t buffer_names_once = PTHREAD_ONCE_INIT;

static void name_buffers(void) {
    for (int i = 0; i < MX_GROUP_MAX_BUFFERS; i++)
        snprintf(buffer_names[i], sizeof buffer_names[i], "b%d", i);
}

const char *mx_emit_buffer(mx_emitter *e, int v, bool written) {
    pthread_once(&buffer_names_once, name_buffers);
    int i = 0;
    while (i < e->n_args && e->args[i] != v)
        i++;
    if (i == e->n_args) {
        if (e->n_args == e->cap_args) {
            e->cap_args = e->cap_args ? 2 * e->cap_args : 16;
            e->args = realloc(e->args, (size_t)e->cap_args * sizeof *e->args);
            e->written = realloc(e->written, (size_t)e->cap_args * sizeof *e->written);
            assert(e->args && e->written && "out of memory");
        }
        e->args[i] = v;
        e->written[i] = false;
        e->n_args++;
    }
    e->written[i] |= written;
    if (i >= MX_GROUP_MAX_BUFFERS) { /* fuse keeps groups within it; this is a check */
        mx_emit_fail(e, "more than %d buffers in one kernel", MX_GROUP_MAX_BUFFERS);
        i = 0;
    }
    return buffer_names[i];
}

/* A C expression of the index type: a temp when it is not a single token. */
static void as_temp(mx_emitter *e, const char *expr, char *out, size_t size) {
    if (strspn(expr, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(expr)) {
        snprintf(out, size, "%s", expr);
        return;
    }
    char t[16];
    mx_emit_temp(e, t, sizeof t);
    mx_emit_line(e, "const %s %s = %s;", e->ity, t, expr);
    snprintf(out, size, "%s", t);
}

void mx_emit_linearise(mx_emitter *e, const mx_type *t, const char *const *idx, char *out, size_t size) {
    char expr[1024] = "";
    for (int k = 0; k < t->rank; k++) {
        if (strcmp(idx[k], "0") == 0 && !expr[0])
            continue;
        char next[1024];
        if (!expr[0])
            snprintf(next, sizeof next, "%s", idx[k]);
        else if (strcmp(idx[k], "0") == 0)
            snprintf(next, sizeof next, "(%s) * %lld", expr, (long long)t->dim[k]);
        else
            snprintf(next, sizeof next, "(%s) * %lld + %s", expr, (long long)t->dim[k], idx[k]);
        snprintf(expr, sizeof expr, "%s", next);
    }
    as_temp(e, expr[0] ? expr : "0", out, size);
}

void mx_emit_delinearise(mx_emitter *e, const char *lin, const mx_type *t, mx_idx_str *idx) {
    int64_t stride = 1;
    int outer = 0; /* the outermost dim above 1: no modulo needed there */
    while (outer < t->rank && t->dim[outer] == 1)
        outer++;
    for (int k = t->rank - 1; k >= 0; k--) {
        char expr[256];
        if (t->dim[k] == 1) {
            snprintf(idx[k], sizeof idx[k], "0");
            continue;
        }
        if (k == outer)
            snprintf(expr, sizeof expr, stride == 1 ? "%s" : "%s / %lld", lin, (long long)stride);
        else if (stride == 1)
            snprintf(expr, sizeof expr, "%s %% %lld", lin, (long long)t->dim[k]);
        else
            snprintf(expr, sizeof expr, "(%s / %lld) %% %lld", lin, (long long)stride, (long long)t->dim[k]);
        as_temp(e, expr, idx[k], sizeof idx[k]);
        stride *= t->dim[k];
    }
}

const char *mx_emit_load_fmt(mx_dtype t) {
    return t == MX_F16 ? "__half2float(%s[%s])" : t == MX_BF16 ? "__bfloat162float(%s[%s])" : "%s[%s]";
}

const char *mx_emit_store_fmt(mx_dtype t) {
    return t == MX_F16 ? "%s[%s] = __float2half_rn(%s);"
           : t == MX_BF16 ? "%s[%s] = __float2bfloat16_rn(%s);"
                          : "%s[%s] = %s;";
}

static void new_float(mx_emitter *e, const char *expr, char *out, size_t size) {
    char t[16];
    mx_emit_temp(e, t, sizeof t);
    mx_emit_line(e, "const float %s = %s;", t, expr);
    snprintf(out, size, "%s", t);
}

static void load(mx_emitter *e, int v, const char *const *idx, char *out, size_t size) {
    const mx_type *t = mx_value_type(e->p->g, v);
    const char *buf = mx_emit_buffer(e, v, false);
    char off[128], expr[256];
    mx_emit_linearise(e, t, idx, off, sizeof off);
    snprintf(expr, sizeof expr, mx_emit_load_fmt(t->dtype), buf, off);
    new_float(e, expr, out, size);
}

/* ---- scan orders ----------------------------------------------------------------- */

void mx_emit_order_map(mx_emitter *e, mx_scan_order order, int64_t h, int64_t w, const char *l, bool inverse,
                       char *out, size_t size) {
    long long H = (long long)h, W = (long long)w, L = H * W;
    char s[96], expr[512], a[64], b[64];
    snprintf(s, sizeof s, "%s", l);
    if ((order & 1) && !inverse) { /* a _REV twin walks its base order backwards */
        snprintf(expr, sizeof expr, "%lld - %s", L - 1, l);
        as_temp(e, expr, s, sizeof s);
    }
    switch ((mx_scan_order)(order & ~1)) {
    case MX_ORDER_ROW:
        snprintf(expr, sizeof expr, "%s", s);
        break;
    case MX_ORDER_COL: /* pos = (l % h) * w + l / h; step = j * h + i */
        if (inverse)
            snprintf(expr, sizeof expr, "(%s %% %lld) * %lld + %s / %lld", s, W, H, s, W);
        else
            snprintf(expr, sizeof expr, "(%s %% %lld) * %lld + %s / %lld", s, H, W, s, H);
        break;
    case MX_ORDER_SNAKE: /* its own inverse: odd rows reversed */
        snprintf(expr, sizeof expr, "%s / %lld", s, W);
        as_temp(e, expr, a, sizeof a);
        snprintf(expr, sizeof expr, "%s %% %lld", s, W);
        as_temp(e, expr, b, sizeof b);
        snprintf(expr, sizeof expr, "%s * %lld + ((%s & 1) ? %lld - %s : %s)", a, W, a, W - 1, b, b);
        break;
    case MX_ORDER_SNAKE_COL: /* columns, odd ones upwards */
        if (inverse) {
            snprintf(expr, sizeof expr, "%s / %lld", s, W); /* i */
            as_temp(e, expr, a, sizeof a);
            snprintf(expr, sizeof expr, "%s %% %lld", s, W); /* j */
            as_temp(e, expr, b, sizeof b);
            snprintf(expr, sizeof expr, "%s * %lld + ((%s & 1) ? %lld - %s : %s)", b, H, b, H - 1, a, a);
        } else {
            snprintf(expr, sizeof expr, "%s / %lld", s, H); /* j */
            as_temp(e, expr, b, sizeof b);
            snprintf(expr, sizeof expr, "%s %% %lld", s, H); /* i */
            as_temp(e, expr, a, sizeof a);
            snprintf(expr, sizeof expr, "((%s & 1) ? %lld - %s : %s) * %lld + %s", b, H - 1, a, a, W, b);
        }
        break;
    case MX_ORDER_DIAG:
        e->helpers |= MX_HELPER_DIAG;
        snprintf(expr, sizeof expr, "(%s)%s(%s, %lldLL, %lldLL)", e->ity, inverse ? "mx_diag_step" : "mx_diag_pos",
                 s, H, W);
        break;
    default:
        assert(!"unknown scan order");
    }
    if ((order & 1) && inverse) {
        char fwd[96];
        as_temp(e, expr, fwd, sizeof fwd);
        snprintf(expr, sizeof expr, "%lld - %s", L - 1, fwd);
    }
    as_temp(e, expr, out, size);
}

/* ---- views ---------------------------------------------------------------------- */

/* A dim of size 1 is indexed by "0" (emit.h): keeps memo keys canonical. */
static void ones_to_zero(const mx_type *t, idx_t idx) {
    for (int k = 0; k < t->rank; k++)
        if (t->dim[k] == 1)
            snprintf(idx[k], sizeof idx[k], "0");
}

static int node_axis(const mx_graph *g, int node) {
    return mx_axis(mx_node_int(g, node, MX_A_AXIS), mx_node_input_type(g, node, 0)->rank);
}

static void ptrs(idx_t s, int n, const char **p) {
    for (int i = 0; i < n; i++)
        p[i] = s[i];
}

static void set_idx(mx_emitter *e, mx_idx_str dst, const char *expr) { as_temp(e, expr, dst, sizeof(mx_idx_str)); }

/* The index into input 0 of a one-to-one view node (reshape, permute, flip,
 * slice, split, space_to_depth, unfold, scan_gather, one-input scan_scatter)
 * read at output `out` index idx. */
static void view_source(mx_emitter *e, int node, int out, const char *const *idx, idx_t in) {
    const mx_graph *g = e->p->g;
    const mx_type *xt = mx_node_input_type(g, node, 0), *yt = mx_value_type(g, mx_node_output(g, node, out));
    char expr[256];
    int axis = g->nodes[node].op == MX_OP_RESHAPE || g->nodes[node].op == MX_OP_PERMUTE ||
                       g->nodes[node].op == MX_OP_SPACE_TO_DEPTH
                   ? 0
                   : node_axis(g, node);
    for (int k = 0; k < xt->rank && k < yt->rank; k++)
        snprintf(in[k], sizeof in[k], "%s", idx[k]);
    switch (g->nodes[node].op) {
    case MX_OP_RESHAPE: {
        /* Blocks of dims whose sizes multiply to the same (a merge, a split,
         * or dims of size 1 coming and going) map through the block's own
         * row-major position, the rest untouched: [2048, 7, 128] read from
         * [32, 64, 7, 128] divides the first index alone, where the position
         * in the whole tensor took a division per dim. A block of one dim on
         * each side is the identity. */
        int i = 0, j = 0;
        while (i < yt->rank || j < xt->rank) {
            int i0 = i, j0 = j;
            int64_t py = i < yt->rank ? yt->dim[i++] : 1, px = j < xt->rank ? xt->dim[j++] : 1;
            while (py != px && (py < px ? i < yt->rank : j < xt->rank)) {
                if (py < px)
                    py *= yt->dim[i++];
                else
                    px *= xt->dim[j++];
            }
            if (i - i0 == 1 && j - j0 == 1) {
                snprintf(in[j0], sizeof in[j0], "%s", idx[i0]);
                continue;
            }
            mx_type ys = {yt->dtype, i - i0, {0}}, xs = {xt->dtype, j - j0, {0}};
            memcpy(ys.dim, yt->dim + i0, (size_t)(i - i0) * sizeof *ys.dim);
            memcpy(xs.dim, xt->dim + j0, (size_t)(j - j0) * sizeof *xs.dim);
            char lin[128];
            mx_emit_linearise(e, &ys, idx + i0, lin, sizeof lin);
            mx_emit_delinearise(e, lin, &xs, in + j0);
        }
        break;
    }
    case MX_OP_PERMUTE: {
        const mx_attr *perm = mx_node_attr(g, node, MX_A_PERM);
        for (int k = 0; k < perm->n; k++)
            snprintf(in[perm->v[k]], sizeof in[0], "%s", idx[k]);
        break;
    }
    case MX_OP_FLIP:
        snprintf(expr, sizeof expr, "%lld - %s", (long long)xt->dim[axis] - 1, idx[axis]);
        set_idx(e, in[axis], expr);
        break;
    case MX_OP_SLICE:
        snprintf(expr, sizeof expr, "%lld + %s * %lld", (long long)mx_node_int(g, node, MX_A_START), idx[axis],
                 (long long)mx_node_int(g, node, MX_A_STEP));
        set_idx(e, in[axis], expr);
        break;
    case MX_OP_SPLIT: {
        const mx_attr *sizes = mx_node_attr(g, node, MX_A_SIZES);
        int64_t at = 0;
        for (int i = 0; i < out; i++)
            at += sizes->v[i];
        snprintf(expr, sizeof expr, "%s + %lld", idx[axis], (long long)at);
        set_idx(e, in[axis], at ? expr : idx[axis]);
        break;
    }
    case MX_OP_SPACE_TO_DEPTH: { /* y[b,i,j,(dw*r + dh)*C + c] = x[b, i*r + dh, j*r + dw, c] */
        long long r = (long long)mx_node_int(g, node, MX_A_BLOCK), C = (long long)xt->dim[3];
        char q[64];
        snprintf(expr, sizeof expr, "%s / %lld", idx[3], C);
        as_temp(e, expr, q, sizeof q);
        snprintf(expr, sizeof expr, "%s * %lld + %s %% %lld", idx[1], r, q, r);
        set_idx(e, in[1], expr);
        snprintf(expr, sizeof expr, "%s * %lld + %s / %lld", idx[2], r, q, r);
        set_idx(e, in[2], expr);
        snprintf(expr, sizeof expr, "%s %% %lld", idx[3], C);
        set_idx(e, in[3], expr);
        break;
    }
    case MX_OP_UNFOLD: { /* y[.., p, s, ..] = x[.., min(p*stride + s, T-1), ..] */
        long long stride = (long long)mx_node_int(g, node, MX_A_STRIDE), T = (long long)xt->dim[axis];
        for (int k = axis + 1; k < xt->rank; k++)
            snprintf(in[k], sizeof in[k], "%s", idx[k + 1]);
        snprintf(expr, sizeof expr, "min(%s * %lld + %s, (%s)%lld)", idx[axis], stride, idx[axis + 1], e->ity, T - 1);
        set_idx(e, in[axis], expr);
        break;
    }
    case MX_OP_SCAN_GATHER:
    case MX_OP_SCAN_SCATTER: {
        int64_t h = mx_node_int(g, node, MX_A_H), w = mx_node_int(g, node, MX_A_W);
        bool gather = g->nodes[node].op == MX_OP_SCAN_GATHER;
        mx_scan_order order = (mx_scan_order)(gather ? mx_node_int(g, node, MX_A_ORDER)
                                                     : mx_node_attr(g, node, MX_A_ORDERS)->v[0]);
        /* gather: y[l] = x[pos(l)]; scatter: x[pos(l)] = y[l], read y at step(p) */
        mx_emit_order_map(e, order, h, w, idx[axis], !gather, in[axis], sizeof in[axis]);
        break;
    }
    default:
        assert(!"not a one-to-one view");
    }
}

static void value_at(mx_emitter *e, int v, const char *const *idx, char *out, size_t size);

/* shift: zero where the source index falls outside. */
static void shift_value(mx_emitter *e, int node, const char *const *idx, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    int x = mx_node_input(g, node, 0), axis = node_axis(g, node);
    long long k = (long long)mx_node_int(g, node, MX_A_K), n = (long long)mx_value_type(g, x)->dim[axis];
    char t[16], src[128], got[96];
    idx_t in;
    mx_emit_temp(e, t, sizeof t);
    mx_emit_line(e, "float %s = 0.0f;", t);
    if (k >= n || -k >= n) { /* everything shifted out */
        snprintf(out, size, "%s", t);
        return;
    }
    snprintf(src, sizeof src, "%s - (%lld)", idx[axis], k);
    mx_emit_open(e, "if (%s %s %lld)", idx[axis], k >= 0 ? ">=" : "<", k >= 0 ? k : n + k);
    for (int d = 0; d < mx_value_type(g, x)->rank; d++)
        snprintf(in[d], sizeof in[d], "%s", idx[d]);
    set_idx(e, in[axis], src);
    const char *p[MX_MAX_RANK];
    ptrs(in, mx_value_type(g, x)->rank, p);
    value_at(e, x, p, got, sizeof got);
    mx_emit_line(e, "%s = %s;", t, got);
    mx_emit_close(e);
    snprintf(out, size, "%s", t);
}

/* concat: the input whose range holds the index. */
static void concat_value(mx_emitter *e, int node, const char *const *idx, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    int axis = node_axis(g, node), n_in = g->nodes[node].n_in;
    char t[16];
    mx_emit_temp(e, t, sizeof t);
    mx_emit_line(e, "float %s;", t);
    int64_t at = 0;
    for (int i = 0; i < n_in; i++) {
        int x = mx_node_input(g, node, i);
        const mx_type *xt = mx_value_type(g, x);
        int64_t len = xt->dim[axis];
        if (i == 0)
            mx_emit_open(e, "if (%s < %lld)", idx[axis], (long long)(at + len));
        else if (i < n_in - 1)
            mx_emit_reopen(e, "else if (%s < %lld)", idx[axis], (long long)(at + len));
        else
            mx_emit_reopen(e, "else");
        idx_t in;
        char expr[128], got[96];
        for (int d = 0; d < xt->rank; d++)
            snprintf(in[d], sizeof in[d], "%s", idx[d]);
        snprintf(expr, sizeof expr, "%s - %lld", idx[axis], (long long)at);
        if (xt->dim[axis] == 1)
            snprintf(in[axis], sizeof in[axis], "0");
        else
            set_idx(e, in[axis], at ? expr : idx[axis]);
        const char *p[MX_MAX_RANK];
        ptrs(in, xt->rank, p);
        value_at(e, x, p, got, sizeof got);
        mx_emit_line(e, "%s = %s;", t, got);
        at += len;
    }
    mx_emit_close(e);
    snprintf(out, size, "%s", t);
}

/* A scan_scatter of K inputs: the sum of each order's element at its step. */
static void scatter_sum(mx_emitter *e, int node, const char *const *idx, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    int axis = node_axis(g, node);
    int64_t h = mx_node_int(g, node, MX_A_H), w = mx_node_int(g, node, MX_A_W);
    const mx_attr *orders = mx_node_attr(g, node, MX_A_ORDERS);
    char sum[1024] = "";
    for (int k = 0; k < orders->n; k++) {
        int x = mx_node_input(g, node, k);
        int rank = mx_value_type(g, x)->rank;
        idx_t in;
        for (int d = 0; d < rank; d++)
            snprintf(in[d], sizeof in[d], "%s", idx[d]);
        mx_emit_order_map(e, (mx_scan_order)orders->v[k], h, w, idx[axis], true, in[axis], sizeof in[axis]);
        const char *p[MX_MAX_RANK];
        ptrs(in, rank, p);
        char got[96];
        value_at(e, x, p, got, sizeof got);
        size_t len = strlen(sum);
        snprintf(sum + len, sizeof sum - len, "%s%s", k ? " + " : "", got);
    }
    new_float(e, sum, out, size);
}

/* embedding: row ids[...] of the table, read at the element's column. The id
 * is clamped into the table before it becomes an index (no read outside
 * it, and no float-to-int conversion of an out-of-range value), and an id
 * that is not a whole number in [0, V) gives NaN, as the reference does. */
static void embedding_value(mx_emitter *e, int node, const char *const *idx, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    int table = mx_node_input(g, node, 0), ids = mx_node_input(g, node, 1);
    int rank = mx_value_type(g, ids)->rank;
    long long V = (long long)mx_value_type(g, table)->dim[0];
    char id[96], row[16], got[96], nan[48], expr[256];
    value_at(e, ids, idx, id, sizeof id);
    mx_emit_temp(e, row, sizeof row);
    mx_emit_line(e, "int %s = (int)fminf(fmaxf(%s, 0.0f), %lld.0f);", row, id, V - 1);
    const char *at[2] = {V == 1 ? "0" : row, idx[rank]};
    value_at(e, table, at, got, sizeof got);
    mx_emit_float(NAN, nan, sizeof nan);
    snprintf(expr, sizeof expr, "(float)%s == %s ? %s : %s", row, id, got, nan);
    new_float(e, expr, out, size);
}

static void view_value(mx_emitter *e, int v, const char *const *idx, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    int node = e->p->g->values[v].node;
    switch (g->nodes[node].op) {
    case MX_OP_EMBEDDING:
        embedding_value(e, node, idx, out, size);
        return;
    case MX_OP_SHIFT:
        shift_value(e, node, idx, out, size);
        return;
    case MX_OP_CONCAT:
        concat_value(e, node, idx, out, size);
        return;
    case MX_OP_SCAN_SCATTER:
        if (g->nodes[node].n_in > 1) {
            scatter_sum(e, node, idx, out, size);
            return;
        }
        break;
    default:
        break;
    }
    idx_t in;
    view_source(e, node, g->values[v].index, idx, in);
    const char *p[MX_MAX_RANK];
    int x = mx_node_input(g, node, 0);
    ones_to_zero(mx_value_type(g, x), in);
    ptrs(in, mx_value_type(g, x)->rank, p);
    value_at(e, x, p, out, size);
}

/* ---- elementwise members ------------------------------------------------------------ */

/* Input i of an elementwise node, read at the node's output index (numpy
 * broadcasting: aligned at the right, a dim of size 1 read at 0). */
static void operand(mx_emitter *e, int node, int i, const char *const *idx, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    int x = mx_node_input(g, node, i);
    const mx_type *xt = mx_value_type(g, x), *yt = mx_value_type(g, mx_node_output(g, node, 0));
    const char *p[MX_MAX_RANK];
    int lead = yt->rank - xt->rank;
    for (int k = 0; k < xt->rank; k++)
        p[k] = xt->dim[k] == 1 ? "0" : idx[lead + k];
    value_at(e, x, p, out, size);
}

static void elementwise_expr(mx_emitter *e, int node, const char *const *idx, char *expr, size_t size) {
    const mx_graph *g = e->p->g;
    mx_op op = g->nodes[node].op;
    char a[96], b[96] = "", c[48];
    operand(e, node, 0, idx, a, sizeof a);
    if (g->nodes[node].n_in > 1)
        operand(e, node, 1, idx, b, sizeof b);
    switch (op) {
    case MX_OP_ADD: snprintf(expr, size, "%s + %s", a, b); break;
    case MX_OP_SUB: snprintf(expr, size, "%s - %s", a, b); break;
    case MX_OP_MUL: snprintf(expr, size, "%s * %s", a, b); break;
    case MX_OP_DIV: snprintf(expr, size, "%s / %s", a, b); break;
    case MX_OP_NEG: snprintf(expr, size, "-%s", a); break;
    case MX_OP_EXP: snprintf(expr, size, "expf(%s)", a); break;
    case MX_OP_LOG: snprintf(expr, size, "logf(%s)", a); break;
    case MX_OP_SQRT: snprintf(expr, size, "sqrtf(%s)", a); break;
    case MX_OP_RSQRT: snprintf(expr, size, "1.0f / sqrtf(%s)", a); break;
    case MX_OP_TANH: snprintf(expr, size, "tanhf(%s)", a); break;
    case MX_OP_SIGMOID: snprintf(expr, size, "1.0f / (1.0f + expf(-%s))", a); break;
    case MX_OP_SILU: snprintf(expr, size, "%s / (1.0f + expf(-%s))", a, a); break;
    case MX_OP_RELU: snprintf(expr, size, "%s > 0.0f ? %s : 0.0f", a, a); break;
    case MX_OP_CAST: snprintf(expr, size, "%s", a); break; /* rounded by the caller */
    case MX_OP_SCALE:
        mx_emit_float(mx_node_float(g, node, MX_A_VALUE), c, sizeof c);
        snprintf(expr, size, "%s * %s", c, a);
        break;
    case MX_OP_SOFTPLUS:
        mx_emit_float(mx_node_float(g, node, MX_A_THRESHOLD), c, sizeof c);
        snprintf(expr, size, "%s > %s ? %s : log1pf(expf(%s))", a, c, a, a);
        break;
    case MX_OP_GELU:
        if (mx_node_int(g, node, MX_A_APPROX) == MX_GELU_TANH)
            snprintf(expr, size, "0.5f * %s * (1.0f + tanhf(0.797884561f * (%s + 0.044715f * %s * %s * %s)))", a,
                     a, a, a, a);
        else
            snprintf(expr, size, "0.5f * %s * (1.0f + erff(%s * 0.707106781f))", a, a);
        break;
    default:
        assert(!"not an elementwise op");
    }
}

/* weighted_sum(w, x_1..x_n) = sum_i w[i] * x_i */
static void weighted_sum_expr(mx_emitter *e, int node, const char *const *idx, char *expr, size_t size) {
    const mx_graph *g = e->p->g;
    int terms = g->nodes[node].n_in - 1;
    size_t len = 0;
    expr[0] = 0;
    for (int i = 0; i < terms; i++) {
        char wi[96], xi[96], lit[16];
        snprintf(lit, sizeof lit, "%d", i);
        const char *widx[1] = {lit};
        value_at(e, mx_node_input(g, node, 0), widx, wi, sizeof wi);
        operand(e, node, 1 + i, idx, xi, sizeof xi);
        len += (size_t)snprintf(expr + len, len < size ? size - len : 0, "%s%s * %s", i ? " + " : "", wi, xi);
    }
    if (len >= size)
        mx_emit_fail(e, "weighted_sum of %d terms: expression too long", terms);
}

/* Input s of a product at output index idx: its last dims at `tail`, the
 * ones before read at the output's leading dims (the first y_lead of idx),
 * aligned at the right; a dim of size 1 at 0, as elementwise operands.
 * Only a weight, and only when no index it needs is NULL, in weights_only
 * mode (mx_emit_hoist_weights). */
static void product_operand(mx_emitter *e, int node, int s, const char *const *idx, int y_lead,
                            const char *const *tail, int n_tail, bool weights_only, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    const mx_type *xt = mx_node_input_type(g, node, s);
    const char *p[MX_MAX_RANK];
    int lead = xt->rank - n_tail;
    bool known = true;
    for (int d = 0; d < xt->rank; d++) {
        p[d] = xt->dim[d] == 1 ? "0" : d < lead ? idx[y_lead - lead + d] : tail[d - lead];
        known &= p[d] != NULL;
    }
    if (!weights_only || (known && mx_graph_value_is_param(g, mx_node_input(g, node, s))))
        value_at(e, mx_node_input(g, node, s), p, out, size);
}

/* A thin product that fuse put in this kernel (fuse.c, THIN_K), its sum over
 * K written out: linear y[.., j] = sum_k x[.., k] W[j, k] (+ b[j]), matmul
 * y[.., i, j] = sum_k A[.., i, k] B[.., k, j]. weights_only: only its
 * weights are read (and remembered), expr is not written. */
static void product_terms(mx_emitter *e, int node, const char *const *idx, bool weights_only, char *expr,
                          size_t size) {
    const mx_graph *g = e->p->g;
    int rank = mx_value_type(g, mx_node_output(g, node, 0))->rank;
    int64_t K = mx_product_k(g, node);
    bool linear = g->nodes[node].op == MX_OP_LINEAR;
    const char *j = idx[rank - 1];
    size_t len = 0;
    expr[0] = 0;
    for (int64_t k = 0; k < K; k++) {
        char kk[24], a[96], b[96];
        snprintf(kk, sizeof kk, "%lld", (long long)k);
        if (linear) {
            const char *xt[1] = {kk}, *wt[2] = {j, kk};
            product_operand(e, node, 0, idx, rank - 1, xt, 1, weights_only, a, sizeof a);
            product_operand(e, node, 1, idx, 0, wt, 2, weights_only, b, sizeof b);
        } else {
            const char *at[2] = {idx[rank - 2], kk}, *bt[2] = {kk, j}; /* a matmul's rank is at least 2 */
            product_operand(e, node, 0, idx, rank - 2, at, 2, weights_only, a, sizeof a);
            product_operand(e, node, 1, idx, rank - 2, bt, 2, weights_only, b, sizeof b);
        }
        if (!weights_only)
            len += (size_t)snprintf(expr + len, len < size ? size - len : 0, "%s%s * %s", k ? " + " : "", a, b);
    }
    int bias = mx_node_input(g, node, 2);
    if (bias != MX_NONE && (!weights_only || (j && mx_graph_value_is_param(g, bias)))) {
        char c[96];
        const char *bi[1] = {j};
        value_at(e, bias, bi, c, sizeof c);
        if (!weights_only)
            len += (size_t)snprintf(expr + len, len < size ? size - len : 0, " + %s", c);
    }
    if (len >= size)
        mx_emit_fail(e, "a product of K = %lld: expression too long", (long long)K);
}

void mx_emit_hoist_weights(mx_emitter *e, int v, const char *const *idx) {
    const mx_graph *g = e->p->g;
    int node = g->values[v].node;
    char unused[8];
    if (e->status == MX_OK && e->p->group_of[node] == e->group && mx_ops[g->nodes[node].op].fusion == MX_FUSE_MATMUL)
        product_terms(e, node, idx, true, unused, sizeof unused);
}

/* ---- values ------------------------------------------------------------------------- */

static void round_to(mx_emitter *e, mx_dtype t, char *x, size_t size) {
    if (t == MX_F32)
        return;
    char expr[160];
    snprintf(expr, sizeof expr, t == MX_F16 ? "__half2float(__float2half_rn(%s))"
                                            : "__bfloat162float(__float2bfloat16_rn(%s))",
             x);
    new_float(e, expr, x, size);
}

static void value_at(mx_emitter *e, int v, const char *const *idx, char *out, size_t size) {
    const mx_graph *g = e->p->g;
    const mx_program *p = e->p;
    if (e->status != MX_OK) {
        snprintf(out, size, "0.0f");
        return;
    }
    const char *hit = memo_find(e, v, idx);
    if (hit) {
        snprintf(out, size, "%s", hit);
        return;
    }
    int node = g->values[v].node;
    const mx_node *n = &g->nodes[node];
    mx_fusion f = mx_ops[n->op].fusion;
    char got[96], expr[2048];
    if (n->op == MX_OP_CONST) {
        mx_emit_float(mx_round_to(mx_value_type(g, v)->dtype, (float)mx_node_float(g, node, MX_A_VALUE)), out, size);
        return;
    }
    bool folded_view = mx_is_view_op(n->op) && mx_view_folded(p, node); /* a weight's too: fold's transposed A */
    if (f == MX_FUSE_SOURCE || (e->uses.weight[node] && !folded_view)) {
        load(e, v, idx, got, sizeof got);
    } else if (folded_view || (mx_is_view_op(n->op) && p->group_of[node] == e->group)) {
        view_value(e, v, idx, got, sizeof got);
    } else if (p->group_of[node] != e->group) {
        if (p->slots[v].offset < 0) {
            char label[160];
            mx_emit_fail(e, "%s is read but the plan gives it no buffer", mx_node_label(g, node, label, sizeof label));
        }
        load(e, v, idx, got, sizeof got);
    } else if (f == MX_FUSE_ELEMWISE || f == MX_FUSE_WSUM || f == MX_FUSE_MATMUL) {
        if (f == MX_FUSE_WSUM)
            weighted_sum_expr(e, node, idx, expr, sizeof expr);
        else if (f == MX_FUSE_MATMUL)
            product_terms(e, node, idx, false, expr, sizeof expr);
        else
            elementwise_expr(e, node, idx, expr, sizeof expr);
        new_float(e, expr, got, sizeof got);
        round_to(e, mx_value_type(g, v)->dtype, got, sizeof got);
    } else if (e->member && e->member(e, node, idx, got, sizeof got)) {
        round_to(e, mx_value_type(g, v)->dtype, got, sizeof got);
    } else {
        char label[160], *where = join(idx, mx_value_type(g, v)->rank);
        mx_emit_fail(e, "%s: this kernel cannot compute it at [%s] (read at another index than the one it holds)",
                     mx_node_label(g, node, label, sizeof label), where);
        free(where);
        snprintf(out, size, "0.0f");
        return;
    }
    mx_emit_bind(e, v, idx, got);
    snprintf(out, size, "%s", got);
}

void mx_emit_value(mx_emitter *e, int v, const char *const *idx, char *out, size_t size) {
    value_at(e, v, idx, out, size);
}

/* ---- stores ------------------------------------------------------------------------- */

bool mx_emit_stored(const mx_program *p, int k, int v) {
    int node = p->g->values[v].node;
    return p->group_of[node] == k && !mx_view_folded(p, node) && p->slots[v].offset >= 0;
}

void mx_emit_view_target(mx_emitter *e, int node, const char *const *idx, mx_idx_str *out) {
    const mx_graph *g = e->p->g;
    const mx_type *xt = mx_node_input_type(g, node, 0), *yt = mx_value_type(g, mx_node_output(g, node, 0));
    char expr[256];
    for (int k = 0; k < xt->rank && k < yt->rank; k++)
        snprintf(out[k], sizeof out[k], "%s", idx[k]);
    switch (g->nodes[node].op) {
    case MX_OP_RESHAPE: {
        char lin[128];
        mx_emit_linearise(e, xt, idx, lin, sizeof lin);
        mx_emit_delinearise(e, lin, yt, out);
        break;
    }
    case MX_OP_PERMUTE: {
        const mx_attr *perm = mx_node_attr(g, node, MX_A_PERM);
        for (int k = 0; k < perm->n; k++)
            snprintf(out[k], sizeof out[k], "%s", idx[perm->v[k]]);
        break;
    }
    case MX_OP_FLIP: {
        int axis = node_axis(g, node);
        snprintf(expr, sizeof expr, "%lld - %s", (long long)xt->dim[axis] - 1, idx[axis]);
        set_idx(e, out[axis], expr);
        break;
    }
    case MX_OP_SPACE_TO_DEPTH: { /* x[b, i, j, c] -> y[b, i/r, j/r, ((j%r)*r + i%r)*C + c] */
        long long r = (long long)mx_node_int(g, node, MX_A_BLOCK), C = (long long)xt->dim[3];
        snprintf(expr, sizeof expr, "%s / %lld", idx[1], r);
        set_idx(e, out[1], expr);
        snprintf(expr, sizeof expr, "%s / %lld", idx[2], r);
        set_idx(e, out[2], expr);
        snprintf(expr, sizeof expr, "((%s %% %lld) * %lld + %s %% %lld) * %lld + %s", idx[2], r, r, idx[1], r, C,
                 idx[3]);
        set_idx(e, out[3], expr);
        break;
    }
    case MX_OP_SCAN_GATHER:
    case MX_OP_SCAN_SCATTER: {
        int axis = node_axis(g, node);
        int64_t h = mx_node_int(g, node, MX_A_H), w = mx_node_int(g, node, MX_A_W);
        bool gather = g->nodes[node].op == MX_OP_SCAN_GATHER;
        mx_scan_order order = (mx_scan_order)(gather ? mx_node_int(g, node, MX_A_ORDER)
                                                     : mx_node_attr(g, node, MX_A_ORDERS)->v[0]);
        /* gather: x[p] lands at y[step(p)]; scatter: y[l] lands at x[pos(l)] */
        mx_emit_order_map(e, order, h, w, idx[axis], gather, out[axis], sizeof out[axis]);
        break;
    }
    default:
        assert(!"no forward map");
    }
    ones_to_zero(yt, out);
}

static void store_at(mx_emitter *e, int v, idx_t at, const char *expr) {
    const char *ptr[MX_MAX_RANK];
    ptrs(at, mx_value_type(e->p->g, v)->rank, ptr);
    mx_emit_store(e, v, ptr, expr);
}

/* Element idx of slice / split / shift's input, stored where it lands: under
 * a condition, and shift also writes the zeros it shifts in. */
static void store_partial(mx_emitter *e, int node, const char *const *idx, const char *expr) {
    const mx_graph *g = e->p->g;
    const mx_type *xt = mx_node_input_type(g, node, 0);
    int axis = node_axis(g, node);
    const char *a = idx[axis];
    long long n = (long long)xt->dim[axis];
    idx_t out;
    char at[128];
    for (int k = 0; k < xt->rank; k++)
        snprintf(out[k], sizeof out[k], "%s", idx[k]);
    switch (g->nodes[node].op) {
    case MX_OP_SLICE: {
        long long start = (long long)mx_node_int(g, node, MX_A_START), end = (long long)mx_node_int(g, node, MX_A_END);
        long long step = (long long)mx_node_int(g, node, MX_A_STEP);
        mx_emit_open(e, "if (%s >= %lld && %s < %lld && (%s - %lld) %% %lld == 0)", a, start, a, end, a, start, step);
        snprintf(at, sizeof at, "(%s - %lld) / %lld", a, start, step);
        set_idx(e, out[axis], at);
        ones_to_zero(mx_value_type(g, mx_node_output(g, node, 0)), out);
        store_at(e, mx_node_output(g, node, 0), out, expr);
        mx_emit_close(e);
        break;
    }
    case MX_OP_SPLIT: {
        const mx_attr *sizes = mx_node_attr(g, node, MX_A_SIZES);
        long long lo = 0;
        for (int o = 0; o < sizes->n; lo += sizes->v[o++]) {
            int y = mx_node_output(g, node, o);
            mx_emit_open(e, "if (%s >= %lld && %s < %lld)", a, lo, a, lo + (long long)sizes->v[o]);
            snprintf(at, sizeof at, "%s - %lld", a, lo);
            set_idx(e, out[axis], at);
            ones_to_zero(mx_value_type(g, y), out);
            store_at(e, y, out, expr);
            mx_emit_close(e);
        }
        break;
    }
    case MX_OP_SHIFT: { /* y[i + k] = x[i]; the thread of i also zeroes y[i] when i - k is outside */
        long long k = (long long)mx_node_int(g, node, MX_A_K);
        int y = mx_node_output(g, node, 0);
        if (k < n && -k < n) {
            mx_emit_open(e, "if (%s + %lld >= 0 && %s + %lld < %lld)", a, k, a, k, n);
            snprintf(at, sizeof at, "%s + %lld", a, k);
            set_idx(e, out[axis], at);
            store_at(e, y, out, expr);
            mx_emit_close(e);
        }
        snprintf(out[axis], sizeof out[axis], "%s", a);
        mx_emit_open(e, "if (%s - %lld < 0 || %s - %lld >= %lld)", a, k, a, k, n);
        store_at(e, y, out, "0.0f");
        mx_emit_close(e);
        break;
    }
    default:
        assert(!"not a partial view");
    }
}

void mx_emit_store(mx_emitter *e, int v, const char *const *idx, const char *expr) {
    const mx_program *p = e->p;
    const mx_graph *g = p->g;
    if (e->status != MX_OK)
        return;
    if (mx_emit_stored(p, e->group, v)) {
        const mx_type *t = mx_value_type(g, v);
        const char *buf = mx_emit_buffer(e, v, true);
        char off[128];
        mx_emit_linearise(e, t, idx, off, sizeof off);
        mx_emit_line(e, mx_emit_store_fmt(t->dtype), buf, off, expr);
    }
    for (int k = e->uses.first[v]; k < e->uses.first[v + 1]; k++) {
        int r = e->uses.reader[k];
        if (!p->view || p->view[r] != MX_VIEW_PRODUCER || p->group_of[r] != e->group || !mx_view_forward(g, r))
            continue;
        mx_op op = g->nodes[r].op;
        if (op == MX_OP_SLICE || op == MX_OP_SPLIT || op == MX_OP_SHIFT) {
            store_partial(e, r, idx, expr);
        } else {
            idx_t out;
            mx_emit_view_target(e, r, idx, out);
            store_at(e, mx_node_output(g, r, 0), out, expr);
        }
    }
}

/* A producer view of v in this group that mx_emit_store writes. */
static bool forwards(const mx_emitter *e, int v) {
    const mx_program *p = e->p;
    for (int k = e->uses.first[v]; k < e->uses.first[v + 1]; k++) {
        int r = e->uses.reader[k];
        if (p->view && p->view[r] == MX_VIEW_PRODUCER && p->group_of[r] == e->group && mx_view_forward(p->g, r))
            return true;
    }
    return false;
}

bool mx_emit_is_root(const mx_emitter *e, int v) {
    const mx_program *p = e->p;
    int node = p->g->values[v].node;
    if (p->group_of[node] != e->group || mx_view_folded(p, node) || e->uses.weight[node])
        return false;
    bool forwarded = p->view && p->view[node] == MX_VIEW_PRODUCER && mx_view_forward(p->g, node);
    return (mx_emit_stored(p, e->group, v) && !forwarded) || forwards(e, v);
}
