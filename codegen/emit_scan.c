/* emit_scan.c: the fused selective-scan kernel of a scan group (docs/scan.md).
 *
 * One launch per group. For every row (b, c) the same threads run the group's
 * scans one after another (all K orders, both directions of a pair), so the
 * merge needs no atomics: each scan's output lands in the sum M at its
 * placement (scan_plan.h), into one of the group's stored results used as
 * the accumulator (the first scan stores, the later ones add), and a last
 * pass over the row applies the epilogue (gate, diagonal term, ...) through
 * the shared expression routine. With one scan the epilogue runs inline.
 *
 * Per step the prologue is fused: d = delta (+ bias), softplus (threshold
 * 20, as the reference), dA = exp2(d * A * log2 e) with A * log2 e taken once
 * per row, h = dA h + d B u, y = sum_n h C (+ D u) (* silu z). State and
 * arithmetic are f32 whatever the storage. Two decompositions (tiles.chunked):
 *   0, lanes: `lanes_per_state` lanes hold the N states of one row (N / lanes
 *      each) and walk L; the sum over n is a butterfly of __shfl_xor_sync in
 *      the lane group. When all rows of a block share (b, g), B and C of a
 *      chunk of `items` steps are staged in shared memory once for them all;
 *      d and d u of the chunk's steps are computed before its states' loop.
 *   1, chunked: a block per row; each thread takes `items` consecutive steps,
 *      summarises them per state as the affine map h -> a h + b, a
 *      __shfl_up_sync scan composes the maps over the warp and shared memory
 *      over the warps, a carry goes from one block-sized super-chunk to the
 *      next, then each thread rescans its steps from its prefix. Steps past L
 *      are the identity (a = 1, b = 0).
 *   1 with channels > 1, packed rows: rows shorter than a warp, several to a
 *      block, each scanned by a few lanes of a warp as the chunked warp
 *      does; what they read is staged by the block walking the rows one
 *      after the other, so warps read whole sectors however short a row. */
#include <stdio.h>
#include <string.h>

#include "emit.h"
#include "scan_plan.h"

#define LOG2E "1.44269504f" /* exp(x) = exp2(x * log2 e) */

typedef struct {
    mx_emitter *e;
    const mx_scan_plan *sp;
    mx_tiles t;
    int lanes, per_lane; /* lanes decomposition: lanes per row, states per lane */
    int cpg;             /* channels per group */
    bool staged;         /* B and C of the block's rows staged in shared memory */
    bool packed;         /* chunked with several rows per block (docs/scan.md, "Packed rows") */
    bool lanes_acc;      /* lanes on the cpu, summed: the sum in shared memory, [L][rows] */
    int seg;             /* packed: lanes per row, a power of two */
    int groups;          /* packed: the most (b, g) groups a block's rows span */
    /* index texts: a dim of size 1 is always "0" (emit.h) */
    const char *b, *c, *g;
} scan_ctx;

static const char *dim_or_zero(int64_t dim, const char *name) { return dim == 1 ? "0" : name; }

/* The step l visited at walk step s (a C expression). */
static void step_l(const scan_ctx *x, const mx_scan_part *s, const char *walk, char *out, size_t size) {
    if (s->reverse)
        snprintf(out, size, "%lld - %s", (long long)x->sp->L - 1, walk);
    else
        snprintf(out, size, "%s", walk);
}

static void value3(scan_ctx *x, int v, const char *i0, const char *i1, const char *i2, char *out, size_t size) {
    const char *idx[3] = {i0, i1, i2};
    mx_emit_value(x->e, v, idx, out, size);
}

/* ---- index maps --------------------------------------------------------------- */

/* The index of an epilogue result for M's element (b, c, p). */
static void out_index(scan_ctx *x, const mx_scan_out *o, const char *p, mx_idx_str *idx) {
    const mx_scan_plan *sp = x->sp;
    snprintf(idx[0], sizeof idx[0], "%s", x->b);
    snprintf(idx[1], sizeof idx[1], "%s", x->c);
    snprintf(idx[2], sizeof idx[2], "%s", dim_or_zero(sp->L, p));
    for (int i = 0; i < o->n_views; i++) {
        const char *in[MX_MAX_RANK];
        for (int k = 0; k < MX_MAX_RANK; k++)
            in[k] = idx[k];
        mx_idx_str next[MX_MAX_RANK];
        mx_emit_view_target(x->e, o->views[i], in, next);
        memcpy(idx, next, sizeof next);
    }
}

/* The grid position a scan_scatter order visits at step l (mx_scan_order_pos). */
static void order_pos(scan_ctx *x, mx_scan_order order, const char *l, char *out, size_t size) {
    mx_emit_order_map(x->e, order, x->sp->grid_h, x->sp->grid_w, l, false, out, size);
}

/* ---- the accumulator and the epilogue ------------------------------------------- */

/* Packed rows sum their scans in shared memory (sm, [R][L] floats, the
 * rows of the block), and so do the lanes on the cpu ([L][rows]: a step's
 * rows side by side, one vector) where the block's memory holds it: the
 * sum's reads and writes at the scan orders' scattered positions never
 * reach global memory, and the last pass writes every result once. Summed
 * in the result instead, each order after the first read it back and wrote
 * it at its own positions, a gather and a scatter per step on the cpu (the
 * result a buffer accessed before its stores, so no store tile): ViM2-T's
 * four-order scans spent a sixth of their time there. */
static bool acc_shared(const scan_ctx *x) { return (x->packed && x->sp->summed) || x->lanes_acc; }

static mx_dtype acc_dtype(const scan_ctx *x) {
    return acc_shared(x) ? MX_F32 : mx_value_type(x->e->p->g, x->sp->out[x->sp->acc].value)->dtype;
}

/* Whether the accumulator in the result holds a step's channels side by
 * side (M's channel dim moved last by the epilogue's permutes, as TSM2's
 * channel mixer stores [B, L, C]): its reads and writes are then vectors
 * already, and a sum in shared memory would only add a pass. */
static bool acc_channels_last(const scan_ctx *x) {
    const mx_graph *g = x->e->p->g;
    const mx_scan_out *o = &x->sp->out[x->sp->acc];
    int at = 1; /* the channel's dim in [B, C, L] */
    for (int i = 0; i < o->n_views; i++) {
        if (g->nodes[o->views[i]].op != MX_OP_PERMUTE)
            return false;
        const mx_attr *perm = mx_node_attr(g, o->views[i], MX_A_PERM);
        int to = -1;
        for (int j = 0; j < perm->n; j++)
            if (perm->v[j] == at)
                to = j;
        at = to;
    }
    return at >= 0 && at == mx_value_type(g, o->value)->rank - 1;
}

/* The element of the accumulator at M's position p, as "buf[offset]" parts. */
static void acc_at(scan_ctx *x, const char *p, const char **buf, char *off, size_t size) {
    if (x->lanes_acc) { /* step-major: a step's rows side by side, one vector */
        *buf = "sm";
        snprintf(off, size, "(%s) * %d + slot", p, x->t.channels);
        return;
    }
    if (acc_shared(x)) { /* within a loop of open_positions: the row is rrow */
        *buf = "sm";
        snprintf(off, size, "(int)(rrow - brow) * %lld + (%s)", (long long)x->sp->L, p);
        return;
    }
    const mx_scan_out *o = &x->sp->out[x->sp->acc];
    const mx_type *t = mx_value_type(x->e->p->g, o->value);
    mx_idx_str idx[MX_MAX_RANK];
    const char *ptr[MX_MAX_RANK];
    out_index(x, o, p, idx);
    for (int k = 0; k < t->rank; k++)
        ptr[k] = idx[k];
    *buf = mx_emit_buffer(x->e, o->value, true);
    mx_emit_linearise(x->e, t, ptr, off, size);
}

/* The epilogue at M's element (b, c, p), M's value being the expression m:
 * every stored result computed from M, but the accumulator when skip_acc.
 * The views between M and the results move the index; each view's value is
 * bound at its output index (computed once, so that its text is the key the
 * shared routine looks up), which stops the routine from composing the view
 * back down to M's inputs. */
static void epilogue(scan_ctx *x, const char *p, const char *m, bool skip_acc) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    const mx_graph *g = e->p->g;
    struct {
        int node;
        mx_idx_str idx[MX_MAX_RANK];
    } seen[8 * 8];
    int n_seen = 0;
    mx_idx_str midx[MX_MAX_RANK] = {{0}};
    snprintf(midx[0], sizeof midx[0], "%s", x->b);
    snprintf(midx[1], sizeof midx[1], "%s", x->c);
    snprintf(midx[2], sizeof midx[2], "%s", dim_or_zero(sp->L, p));
    const char *ptr[MX_MAX_RANK] = {midx[0], midx[1], midx[2]};
    mx_emit_bind(e, sp->merge, ptr, m);
    for (int o = 0; o < sp->n_out; o++) {
        const mx_scan_out *so = &sp->out[o];
        mx_idx_str(*idx)[MX_MAX_RANK] = &midx;
        for (int j = 0; j < so->n_views; j++) {
            int node = so->views[j], s = 0;
            while (s < n_seen && seen[s].node != node)
                s++;
            if (s == n_seen) {
                seen[n_seen].node = node;
                const char *pin[MX_MAX_RANK], *pout[MX_MAX_RANK];
                for (int k = 0; k < MX_MAX_RANK; k++)
                    pin[k] = (*idx)[k], pout[k] = seen[n_seen].idx[k];
                mx_emit_view_target(e, node, pin, seen[n_seen].idx);
                char got[96];
                mx_emit_value(e, mx_node_input(g, node, 0), pin, got, sizeof got);
                mx_emit_bind(e, mx_node_output(g, node, 0), pout, got);
                n_seen++;
            }
            idx = &seen[s].idx;
        }
        if (skip_acc && o == sp->acc)
            continue;
        for (int k = 0; k < MX_MAX_RANK; k++)
            ptr[k] = (*idx)[k];
        char got[96];
        mx_emit_value(e, so->value, ptr, got, sizeof got);
        mx_emit_store(e, so->value, ptr, got);
    }
}

/* Where step l of scan s lands in M (scan_plan.h), into p: the sequence
 * position q = sign * l + offset first, then a scatter's order map. When
 * the shift drops steps (q may leave [0, L)) this opens a scope that skips
 * them, to be closed by the caller; returns whether it did. */
static bool placement(scan_ctx *x, const mx_scan_part *s, const char *l, char *p, size_t size) {
    mx_emitter *e = x->e;
    long long L = (long long)x->sp->L, o = (long long)s->offset;
    char q[64];
    snprintf(q, sizeof q, "%s", l);
    if (o != 0 || s->sign < 0) {
        mx_emit_line(e, "const %s %s = %s%s + %lld;", e->ity, mx_emit_temp(e, q, sizeof q), s->sign < 0 ? "-" : "",
                     l, o);
    }
    bool guard = s->sign > 0 ? o != 0 : o != L - 1; /* a plain flip keeps every step */
    if (guard)
        mx_emit_open(e, "if (%s >= 0 && %s < %lld)", q, q, L);
    if (s->by_order)
        order_pos(x, s->order, q, p, size);
    else
        snprintf(p, size, "%s", q);
    return guard;
}

/* Scan k's output y (a float variable) at step l of row (b, c): the scan's own
 * D skip (unless du_in_y: y holds D u already) and gate, its stored result
 * and hand-over to the merge. */
static void finish_step(scan_ctx *x, int k, const char *l, bool du_in_y) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    const mx_scan_part *s = &sp->scan[k];
    const mx_graph *g = e->p->g;
    const char *lz = dim_or_zero(sp->L, l);
    char a[96], b[96];
    if (s->in[MX_SCAN_D] != MX_NONE && !du_in_y) {
        value3(x, s->in[MX_SCAN_U], x->b, x->c, lz, a, sizeof a);
        const char *ci[1] = {x->c};
        mx_emit_value(e, s->in[MX_SCAN_D], ci, b, sizeof b);
        mx_emit_line(e, "y += %s * %s;", b, a);
    }
    if (s->in[MX_SCAN_Z] != MX_NONE) {
        value3(x, s->in[MX_SCAN_Z], x->b, x->c, lz, a, sizeof a);
        mx_emit_line(e, "y *= %s / (1.0f + expf(-%s));", a, a);
    }
    if (mx_value_type(g, s->y)->dtype != MX_F32) /* y is rounded to its dtype before anyone reads it */
        mx_emit_line(e, "y = %s(%s(y));", mx_value_type(g, s->y)->dtype == MX_F16 ? "__half2float" : "__bfloat162float",
                     mx_value_type(g, s->y)->dtype == MX_F16 ? "__float2half_rn" : "__float2bfloat16_rn");
    if (s->y_stored) {
        const char *yi[3] = {x->b, x->c, lz};
        mx_emit_store(e, s->y, yi, "y");
    }
    if (!sp->summed) {
        epilogue(x, l, "y", false);
        return;
    }
    char p[256], off[160];
    const char *buf;
    bool guard = placement(x, s, l, p, sizeof p);
    acc_at(x, p, &buf, off, sizeof off);
    mx_dtype at = acc_dtype(x);
    char sum[256], term[32];
    if (s->weight >= 0)
        snprintf(term, sizeof term, "sw%d * y", s->weight);
    else
        snprintf(term, sizeof term, "y");
    if (k == 0) {
        snprintf(sum, sizeof sum, "%s", term);
    } else {
        snprintf(sum, sizeof sum, mx_emit_load_fmt(at), buf, off);
        strncat(sum, " + ", sizeof sum - strlen(sum) - 1);
        strncat(sum, term, sizeof sum - strlen(sum) - 1);
    }
    mx_emit_line(e, mx_emit_store_fmt(at), buf, off, sum);
    if (guard)
        mx_emit_close(e);
}

/* Rows of a packed block past the last row: their lanes join the shuffles
 * and barriers but take no step (len = 0). */
static bool packed_partial(const scan_ctx *x) {
    return x->packed && (x->sp->Bt * x->sp->Ch) % x->t.channels != 0;
}

static void packed_index_texts(scan_ctx *x, bool rows_loop) {
    x->b = dim_or_zero(x->sp->Bt, rows_loop ? "rb" : "b");
    x->c = dim_or_zero(x->sp->Ch, rows_loop ? "rc" : "c");
    x->g = dim_or_zero(x->sp->G, rows_loop ? "rg" : "g");
}

/* Row `row` (b, c) as its batch, channel and group, named with `prefix`
 * (b, c, g or rb, rc, rg), each only where the sizes make it vary. */
static void emit_coords_of(scan_ctx *x, const char *row, const char *prefix) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    if (sp->Bt > 1)
        mx_emit_line(e, "const %s %sb = %s / %lld;", e->ity, prefix, row, (long long)sp->Ch);
    if (sp->Ch > 1)
        mx_emit_line(e, "const %s %sc = %s %% %lld;", e->ity, prefix, row, (long long)sp->Ch);
    if (sp->G > 1)
        mx_emit_line(e, "const %s %sg = %sc / %d;", e->ity, prefix, prefix, x->cpg);
}

/* The thread's row (b, c) as its batch b, channel c and group g. */
static void emit_row_coords(scan_ctx *x) { emit_coords_of(x, "row", ""); }

/* The same when the block's cpb rows (row0 + slot) share (b, g), cpb
 * dividing a group's channels: b and g the block's own, c its first
 * channel plus the slot. On the CPU that is one value for all lanes and
 * lanes at consecutive channels, seen when lowering: loads at b are scalar
 * ones and loads at c vectors, with no check of the lanes' addresses. */
static void emit_block_row_coords(scan_ctx *x, int cpb) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    long long Ch = (long long)sp->Ch;
    mx_emit_line(e, "const %s row0 = (%s)blockIdx.x * %d;", e->ity, e->ity, cpb);
    if (sp->Bt > 1)
        mx_emit_line(e, "const %s b = row0 / %lld;", e->ity, Ch);
    if (sp->Ch > 1)
        mx_emit_line(e, "const %s c = row0 %% %lld + slot;", e->ity, Ch);
    if (sp->G > 1)
        mx_emit_line(e, "const %s g = row0 %% %lld / %d;", e->ity, Ch, x->cpg);
}

/* A loop over the positions var in [lo, hi) of the rows this thread serves;
 * one scope, closed by close_positions. Lanes and chunked: the row's threads
 * stride over it from first by step. Packed: the block's threads stride over
 * all its rows one after the other (flat index j, the block's row j / span),
 * so that a warp's accesses run along the [B, C, L] rows; that row's b, c
 * and g (rb, rc, rg) are the index texts until close_positions. */
static void open_positions(scan_ctx *x, const char *var, long long lo, long long hi, const char *first,
                           const char *step) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    if (!x->packed) {
        if (lo)
            mx_emit_open(e, "for (%s %s = %lld + %s; %s < %lld; %s += %s)", e->ity, var, lo, first, var, hi, var, step);
        else
            mx_emit_open(e, "for (%s %s = %s; %s < %lld; %s += %s)", e->ity, var, first, var, hi, var, step);
        return;
    }
    long long span = hi - lo;
    mx_emit_open(e, "for (int j = threadIdx.x; j < %lld; j += blockDim.x)", span * x->t.channels);
    mx_emit_line(e, "const %s rrow = brow + j / %lld;", e->ity, span);
    if (packed_partial(x))
        mx_emit_line(e, "if (rrow >= %lld) /* past the last row, and so is every later j */\n    break;",
                     (long long)(sp->Bt * sp->Ch));
    emit_coords_of(x, "rrow", "r");
    mx_emit_line(e, "const %s %s = %lld + j %% %lld;", e->ity, var, lo, span);
    packed_index_texts(x, true);
}

static void close_positions(scan_ctx *x) {
    mx_emit_close(x->e);
    if (x->packed)
        packed_index_texts(x, false);
}

/* The positions of M that scan 0 never reaches (its shift drops steps) are
 * zeroed before it runs, so that every later scan can add: the sequence
 * positions q outside scan 0's range, through its order map. */
static void zero_unreached(scan_ctx *x, const char *first, const char *step) {
    const mx_scan_plan *sp = x->sp;
    const mx_scan_part *s = &sp->scan[0];
    if (!sp->summed)
        return;
    long long L = (long long)sp->L, o = (long long)s->offset, lo, hi;
    if (s->sign > 0) { /* reached: [o, L + o) */
        lo = o > 0 ? 0 : L + o, hi = o > 0 ? o : L;
    } else { /* reached: [o - L + 1, o] */
        lo = o < L - 1 ? o + 1 : 0, hi = o < L - 1 ? L : o - L + 1;
    }
    if (lo < 0)
        lo = 0;
    if (hi > L)
        hi = L;
    if (lo >= hi)
        return;
    open_positions(x, "q", lo, hi, first, step);
    char p[256] = "q", off[160];
    if (s->by_order)
        order_pos(x, s->order, "q", p, sizeof p);
    const char *buf;
    acc_at(x, p, &buf, off, sizeof off);
    mx_emit_line(x->e, mx_emit_store_fmt(acc_dtype(x)), buf, off, "0.0f");
    close_positions(x);
}

/* The weights of a Switch of Scans' terms that stay, sw0 ... (scan_plan.h). */
static void load_weights(scan_ctx *x) {
    const mx_scan_plan *sp = x->sp;
    bool used[MX_SCAN_MAX + 1] = {false};
    for (int k = 0; k < sp->n_scans; k++)
        if (sp->scan[k].weight >= 0)
            used[sp->scan[k].weight] = true;
    for (int i = 0; i < sp->n_extra; i++)
        used[sp->extra[i].weight] = true;
    for (int j = 0; j < sp->n_terms; j++) {
        if (!used[j])
            continue;
        char at[16], v[96];
        snprintf(at, sizeof at, "%d", j);
        const char *idx[1] = {at};
        mx_emit_value(x->e, sp->weights, idx, v, sizeof v);
        mx_emit_line(x->e, "const float sw%d = %s;", j, v);
    }
}

/* Whether the sum needs a last pass: some result is computed from it, or
 * the accumulator is not M itself, or a producer view stores M again. */
static bool needs_final_pass(const scan_ctx *x) {
    const mx_scan_plan *sp = x->sp;
    const mx_emitter *e = x->e;
    if (!sp->summed)
        return false;
    if (acc_shared(x) || sp->n_extra > 0 || sp->n_out > 1 || sp->out[sp->acc].value != sp->merge)
        return true;
    for (int i = e->uses.first[sp->merge]; i < e->uses.first[sp->merge + 1]; i++) {
        int r = e->uses.reader[i];
        if (e->p->view && e->p->view[r] == MX_VIEW_PRODUCER && e->p->group_of[r] == e->group)
            return true;
    }
    return false;
}

/* The last pass over the row: the epilogue from the accumulated sum. */
static void final_pass(scan_ctx *x, const char *first, const char *step) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    open_positions(x, "p", 0, (long long)sp->L, first, step);
    const char *buf;
    char off[160], m[256];
    acc_at(x, "p", &buf, off, sizeof off);
    snprintf(m, sizeof m, mx_emit_load_fmt(acc_dtype(x)), buf, off);
    mx_emit_line(e, "float m = %s;", m);
    for (int i = 0; i < sp->n_extra; i++) { /* a Switch of Scans' terms that read no scan */
        const mx_scan_extra *t = &sp->extra[i];
        char q[256] = "p", v[96];
        if (t->by_order)
            mx_emit_order_map(e, t->order, sp->grid_h, sp->grid_w, "p", true, q, sizeof q);
        value3(x, t->value, x->b, x->c, dim_or_zero(sp->L, q), v, sizeof v);
        mx_emit_line(e, "m += sw%d * %s;", t->weight, v);
    }
    epilogue(x, "p", "m", !acc_shared(x) && sp->out[sp->acc].value == sp->merge && sp->n_extra == 0);
    close_positions(x);
}

/* d for step l: delta (+ bias), softplus. */
static void emit_delta(scan_ctx *x, const mx_scan_part *s, const char *l) {
    mx_emitter *e = x->e;
    char a[96], b[96];
    value3(x, s->in[MX_SCAN_DELTA], x->b, x->c, dim_or_zero(x->sp->L, l), a, sizeof a);
    if (s->in[MX_SCAN_DELTA_BIAS] != MX_NONE) {
        const char *ci[1] = {x->c};
        mx_emit_value(e, s->in[MX_SCAN_DELTA_BIAS], ci, b, sizeof b);
        mx_emit_line(e, "float d = %s + %s;", a, b);
    } else {
        mx_emit_line(e, "float d = %s;", a);
    }
    if (s->softplus)
        mx_emit_line(e, "d = d > 20.0f ? d : log1pf(expf(d));");
}

/* B or C of scan s at (b, g, n, l). */
static void bc_value(scan_ctx *x, const mx_scan_part *s, int slot, const char *n, const char *l, char *out,
                     size_t size) {
    const char *idx[4] = {x->b, x->g, dim_or_zero(x->sp->N, n), dim_or_zero(x->sp->L, l)};
    mx_emit_value(x->e, s->in[slot], idx, out, size);
}

/* A[c, n] * log2 e (when a2 is not NULL) and the initial state h of state n. */
static void emit_state_init(scan_ctx *x, const mx_scan_part *s, const char *n, const char *a2, const char *h) {
    mx_emitter *e = x->e;
    char a[96];
    const char *ai[2] = {dim_or_zero(x->sp->Ch, x->c), dim_or_zero(x->sp->N, n)};
    if (a2) {
        mx_emit_value(e, s->in[MX_SCAN_A], ai, a, sizeof a);
        mx_emit_line(e, "%s = %s * " LOG2E ";", a2, a);
    }
    if (s->in[MX_SCAN_H0] != MX_NONE) {
        const char *hi[3] = {x->b, x->c, dim_or_zero(x->sp->N, n)};
        mx_emit_value(e, s->in[MX_SCAN_H0], hi, a, sizeof a);
        mx_emit_line(e, "%s = %s;", h, a);
    } else {
        mx_emit_line(e, "%s = 0.0f;", h);
    }
}

static void store_hN(scan_ctx *x, const mx_scan_part *s, const char *n, const char *h) {
    const char *hi[3] = {x->b, x->c, dim_or_zero(x->sp->N, n)};
    mx_emit_store(x->e, s->hN, hi, h);
}

/* ---- decomposition 0: lanes hold the states, walking L ----------------------------- */

/* The row's weights, read once before its walk over L (the steps then reuse
 * them, expr.c remembering them): delta's bias, D, and the weights of a thin
 * product that computes delta (TSM2's dt_proj, K = 4). Read at every step,
 * each was a gather of W lanes' channels on the CPU. */
static void hoist_row_weights(scan_ctx *x, const mx_scan_part *s) {
    const mx_graph *g = x->e->p->g;
    const char *ci[1] = {x->c}, *bcl[3] = {x->b, x->c, NULL};
    char v[96];
    static const int per_channel[] = {MX_SCAN_DELTA_BIAS, MX_SCAN_D};
    for (size_t i = 0; i < sizeof per_channel / sizeof *per_channel; i++)
        if (s->in[per_channel[i]] != MX_NONE && mx_graph_value_is_param(g, s->in[per_channel[i]]))
            mx_emit_value(x->e, s->in[per_channel[i]], ci, v, sizeof v);
    mx_emit_hoist_weights(x->e, s->in[MX_SCAN_DELTA], bcl);
}

static void lanes_scan(scan_ctx *x, int k) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    const mx_scan_part *s = &sp->scan[k];
    char l[64], a[96], bb[96], cc[96];
    int chunk = x->t.items;
    bool has_D = s->in[MX_SCAN_D] != MX_NONE, cpu = e->target->device == MX_DEVICE_CPU;
    mx_emit_open(e, "/* scan %d of %d%s */", k, sp->n_scans, s->reverse ? ", reverse" : "");
    mx_emit_line(e, "float a2[%d], h[%d];", x->per_lane, x->per_lane);
    mx_emit_line(e, "#pragma unroll");
    mx_emit_open(e, "for (int j = 0; j < %d; j++)", x->per_lane);
    mx_emit_line(e, "const int n = lane + j * %d;", x->lanes);
    emit_state_init(x, s, "n", "a2[j]", "h[j]");
    mx_emit_close(e);
    hoist_row_weights(x, s);
    mx_emit_open(e, "for (int s0 = 0; s0 < %lld; s0 += %d)", (long long)sp->L, chunk);
    if (sp->L <= chunk || sp->L % chunk == 0) /* every chunk as long: the staging's i / steps by a constant */
        mx_emit_line(e, "const int steps = %lld;", (long long)(sp->L < chunk ? sp->L : chunk));
    else
        mx_emit_line(e, "const int steps = min(%d, %lld - s0);", chunk, (long long)sp->L);
    if (x->staged) {
        mx_emit_line(e, "__syncthreads(); /* the previous chunk's B and C are consumed */");
        if (cpu) {
            /* a block is one vector of lanes: a state's steps side by side, so
             * that its loads and stores are vectors (a step's lanes over i =
             * n * steps + s would divide by steps) */
            mx_emit_open(e, "for (int n = 0; n < %lld; n++)", (long long)sp->N);
            mx_emit_open(e, "for (int k = 0; k * (int)blockDim.x < steps; k++)");
            mx_emit_line(e, "const int s = k * (int)blockDim.x + (int)threadIdx.x, i = n * steps + s;");
            mx_emit_open(e, "if (s < steps)");
        } else {
            mx_emit_open(e, "for (int i = threadIdx.x; i < %lld * steps; i += blockDim.x)", (long long)sp->N);
            mx_emit_line(e, "const int n = i / steps, s = i - n * steps;");
        }
        step_l(x, s, "(s0 + s)", l, sizeof l);
        mx_emit_line(e, "const %s l = %s;", e->ity, l);
        bc_value(x, s, MX_SCAN_B, "n", "l", bb, sizeof bb);
        bc_value(x, s, MX_SCAN_C, "n", "l", cc, sizeof cc);
        mx_emit_line(e, "Bs[i] = %s; /* [N][steps]: i is n * steps + s, the threads' stores side by side */", bb);
        mx_emit_line(e, "Cs[i] = %s;", cc);
        mx_emit_close(e);
        if (cpu)
            mx_emit_close(e), mx_emit_close(e);
        mx_emit_line(e, "__syncthreads();");
    }
    mx_emit_line(e, "/* d and d u of the chunk's steps first: the states' loop then waits on no softplus */");
    mx_emit_open(e, "for (int s = lane; s < steps; s += %d)", x->lanes);
    step_l(x, s, "(s0 + s)", l, sizeof l);
    mx_emit_line(e, "const %s l = %s;", e->ity, l);
    emit_delta(x, s, "l");
    value3(x, s->in[MX_SCAN_U], x->b, x->c, dim_or_zero(sp->L, "l"), a, sizeof a);
    mx_emit_line(e, "sd[s * %d] = d, sdu[s * %d] = d * %s;", x->t.channels, x->t.channels, a);
    if (has_D) { /* D u too, while u is at hand: the outputs then read y alone */
        char dv[96];
        const char *ci[1] = {x->c};
        mx_emit_value(e, s->in[MX_SCAN_D], ci, dv, sizeof dv);
        mx_emit_line(e, "ys[s * %d] = %s * %s;", x->t.channels, dv, a);
    }
    mx_emit_close(e);
    if (x->lanes > 1)
        mx_emit_line(e, "__syncwarp(gmask); /* the row's steps, written by its lanes */");
    mx_emit_open(e, "for (int s = 0; s < steps; s++)");
    step_l(x, s, "(s0 + s)", l, sizeof l);
    mx_emit_line(e, "const %s l = %s;", e->ity, l);
    mx_emit_line(e, "const float d = sd[s * %d], du = sdu[s * %d];", x->t.channels, x->t.channels);
    mx_emit_line(e, "float y = 0.0f;");
    mx_emit_line(e, "#pragma unroll");
    mx_emit_open(e, "for (int j = 0; j < %d; j++)", x->per_lane);
    mx_emit_line(e, "const int n = lane + j * %d;", x->lanes);
    if (x->staged) {
        snprintf(bb, sizeof bb, "Bs[n * steps + s]");
        snprintf(cc, sizeof cc, "Cs[n * steps + s]");
    } else {
        bc_value(x, s, MX_SCAN_B, "n", "l", bb, sizeof bb);
        bc_value(x, s, MX_SCAN_C, "n", "l", cc, sizeof cc);
    }
    mx_emit_line(e, "const float dA = mx_ex2(d * a2[j]);");
    mx_emit_line(e, "h[j] = dA * h[j] + du * %s;", bb);
    mx_emit_line(e, "y += h[j] * %s;", cc);
    mx_emit_close(e);
    if (x->lanes > 1) {
        mx_emit_line(e, "for (int off = %d; off > 0; off >>= 1)", x->lanes / 2);
        mx_emit_line(e, "    y += __shfl_xor_sync(gmask, y, off);");
        mx_emit_line(e, "if (s %% %d == lane)", x->lanes);
        mx_emit_line(e, "    ys[s * %d] %s y;", x->t.channels, has_D ? "+=" : "=");
    } else {
        mx_emit_line(e, "ys[s * %d] %s y;", x->t.channels, has_D ? "+=" : "=");
    }
    mx_emit_close(e);
    mx_emit_line(e, "/* the chunk's outputs, one step per lane */");
    mx_emit_open(e, "for (int s = lane; s < steps; s += %d)", x->lanes);
    step_l(x, s, "(s0 + s)", l, sizeof l);
    mx_emit_line(e, "const %s l = %s;", e->ity, l);
    mx_emit_line(e, "float y = ys[s * %d];", x->t.channels);
    finish_step(x, k, "l", true);
    mx_emit_close(e);
    mx_emit_close(e);
    if (s->hN_stored) {
        mx_emit_line(e, "#pragma unroll");
        mx_emit_open(e, "for (int j = 0; j < %d; j++)", x->per_lane);
        mx_emit_line(e, "const int n = lane + j * %d;", x->lanes);
        store_hN(x, s, "n", "h[j]");
        mx_emit_close(e);
    }
    mx_emit_close(e);
}

/* The group's scans in the kernel's body: the weights, the outputs no scan
 * reaches, each scan by the decomposition's emitter, then the final pass;
 * first and step say which of the block's threads share the rows' elements,
 * between and before_final are the barriers the decomposition needs (NULL:
 * none). */
static void emit_scans(scan_ctx *x, void (*scan)(scan_ctx *, int), const char *first, const char *step,
                       const char *between, const char *before_final) {
    load_weights(x);
    zero_unreached(x, first, step);
    for (int i = 0; i < x->sp->n_scans; i++) {
        if (i > 0 && between)
            mx_emit_line(x->e, "%s", between);
        scan(x, i);
    }
    if (needs_final_pass(x)) {
        if (before_final)
            mx_emit_line(x->e, "%s", before_final);
        final_pass(x, first, step);
    }
}

/* Floats of a lanes block's shared memory before the sum: y, d and d u of
 * its rows' steps of a chunk, B and C of the chunk when staged. */
static size_t chunk_floats(const mx_scan_plan *sp, int channels, int items, bool staged) {
    return (3 * (size_t)channels + (staged ? 2 * (size_t)sp->N : 0)) * (size_t)items;
}

static size_t lanes_chunk_floats(const scan_ctx *x) {
    return chunk_floats(x->sp, x->t.channels, x->t.items, x->staged);
}

int mx_scan_lanes_items(const mx_scan_plan *sp, int channels, int most, int smem) {
    bool staged = (sp->Ch / sp->G) % channels == 0;
    int items = most;
    while (items > 1 && chunk_floats(sp, channels, items, staged) * sizeof(float) > (size_t)smem)
        items /= 2;
    return items;
}

/* Bytes of shared memory of a lanes block: the chunk's, then the sum of the
 * rows' scans when it is kept there ([L][rows]). */
static size_t lanes_smem(const scan_ctx *x) {
    return (lanes_chunk_floats(x) + (x->lanes_acc ? (size_t)x->t.channels * (size_t)x->sp->L : 0)) * sizeof(float);
}

static void emit_lanes(scan_ctx *x, mx_kernel *k) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    int cpb = x->t.channels, chunk = x->t.items;
    long long rows = (long long)(sp->Bt * sp->Ch);
    mx_emit_line(e, "/* lanes: %d lane%s per row (b, c) hold its %lld states (%d each) and walk L = %lld;",
                 x->lanes, x->lanes > 1 ? "s" : "", (long long)sp->N, x->per_lane, (long long)sp->L);
    mx_emit_line(e, "   %d rows per block; %s */", cpb,
                 x->staged ? "they share (b, g): B and C staged per chunk of steps in shared memory"
                           : "B and C read by each lane for its states");
    mx_emit_line(e, "const int lane = threadIdx.x %% %d, slot = threadIdx.x / %d;", x->lanes, x->lanes);
    mx_emit_line(e, "const %s row = (%s)blockIdx.x * %d + slot;", e->ity, e->ity, cpb);
    if (!x->staged && rows % cpb)
    {
        mx_emit_line(e, "if (row >= %lld) /* past the last row: no barrier follows */", rows);
        mx_emit_line(e, "    return;");
    }
    if (x->staged)
        emit_block_row_coords(x, cpb);
    else
        emit_row_coords(x);
    if (x->lanes > 1)
        mx_emit_line(e, "const unsigned gmask = %s;",
                     x->lanes == 32 ? "0xFFFFFFFFu" : "((1u << LANES) - 1) << (threadIdx.x % 32 / LANES * LANES)");
    mx_emit_line(e, "MX_DYNAMIC_SMEM(float, smem);");
    /* step-major, [chunk][rows]: a step's rows side by side, so that the
     * rows' stores of a step (and their loads in the output loop) are
     * consecutive: one vector on the CPU, not a scatter; distinct banks on
     * a GPU */
    mx_emit_line(e, "float *const ys = smem + slot; /* this row's outputs of the chunk, ys[s * %d] */", cpb);
    mx_emit_line(e, "float *const sd = ys + %d, *const sdu = sd + %d; /* and its d and d u, alike */", cpb * chunk,
                 cpb * chunk);
    if (x->staged) {
        mx_emit_line(e, "float *const Bs = smem + %d, *const Cs = Bs + %lld; /* [N][steps], steps <= chunk */",
                     3 * cpb * chunk, (long long)sp->N * chunk);
    }
    if (x->lanes_acc)
        mx_emit_line(e, "float *const sm = smem + %zu; /* [L][%d] the sum M of the rows' scans */",
                     lanes_chunk_floats(x), cpb);
    bool warp = x->lanes > 1; /* a row's lanes share its sum */
    emit_scans(x, lanes_scan, "lane", warp ? "LANES" : "1",
               warp ? "__syncwarp(gmask); /* the sum so far, written by other lanes */" : NULL,
               warp ? "__syncwarp(gmask);" : NULL);
    k->block[0] = (unsigned)(cpb * x->lanes), k->block[1] = k->block[2] = 1;
    k->grid[0] = (unsigned)((rows + cpb - 1) / cpb), k->grid[1] = k->grid[2] = 1;
    k->smem = lanes_smem(x);
}

/* ---- decomposition 1: chunked block scan --------------------------------------------- */

/* Whether the super-chunks of threads x ITEMS steps tile L exactly: then no
 * step is past L and no step needs a bounds check. */
static bool tiles_exactly(const scan_ctx *x) {
    int64_t span = x->packed ? (int64_t)x->seg * x->t.items : (int64_t)x->t.threads * x->t.items;
    return x->sp->L % span == 0;
}

/* A loop over this thread's steps within L, unrolled so that its per-step
 * arrays stay in registers (a loop bound on L would keep them in local
 * memory); one scope, closed by the caller. */
static void items_loop(const scan_ctx *x) {
    mx_emitter *e = x->e;
    mx_emit_line(e, "#pragma unroll");
    if (packed_partial(x)) {
        mx_emit_line(e, "for (int i = 0; i < ITEMS; i++)");
        mx_emit_open(e, "    if (first + i < len)");
        return;
    }
    if (tiles_exactly(x)) {
        mx_emit_open(e, "for (int i = 0; i < ITEMS; i++)");
        return;
    }
    mx_emit_line(e, "for (int i = 0; i < ITEMS; i++)");
    mx_emit_open(e, "    if (first + i < %lld)", (long long)x->sp->L);
}

/* A loop of the whole block over the super-chunk's steps, step j of it
 * (walk step s0 + j, sequence position l) on thread j % threads: a warp
 * touches 32 consecutive steps, so global memory is read and written along
 * L, whole sectors when the tensor is contiguous along L. Per-thread values
 * go through shared memory, step j at sj = j + j / ITEMS: one padding float
 * per ITEMS steps, so that the threads reading their own ITEMS steps (at
 * mine + i) hit distinct banks. One scope, closed by the caller. */
static void tile_loop(scan_ctx *x, const mx_scan_part *s) {
    mx_emitter *e = x->e;
    char l[64];
    mx_emit_line(e, "#pragma unroll");
    if (tiles_exactly(x))
        mx_emit_open(e, "for (int j = threadIdx.x; j < TILE; j += %d)", x->t.threads);
    else
        mx_emit_open(e, "for (int j = threadIdx.x; j < TILE && s0 + j < %lld; j += %d)", (long long)x->sp->L,
                     x->t.threads);
    mx_emit_line(e, "const int sj = j + j / ITEMS;");
    step_l(x, s, "(s0 + j)", l, sizeof l);
    mx_emit_line(e, "const %s l = %s;", e->ity, l);
}

/* This thread's steps of state n as the map h -> a h + hc, B of step i
 * being the expression b_i; dA and d B u kept for the rescan (one exp and
 * one load of B per step). */
static void summarise_steps(const scan_ctx *x, const char *b_i) {
    mx_emitter *e = x->e;
    mx_emit_line(e, "float a = 1.0f, hc = 0.0f; /* this thread's steps as h -> a h + hc */");
    mx_emit_line(e, "float dA[ITEMS], bu[ITEMS]; /* kept for the rescan: one exp and one load of B per step */");
    items_loop(x);
    mx_emit_line(e, "dA[i] = mx_ex2(dl[i] * a2);");
    mx_emit_line(e, "bu[i] = du[i] * %s;", b_i);
    mx_emit_line(e, "a *= dA[i];");
    mx_emit_line(e, "hc = dA[i] * hc + bu[i];");
    mx_emit_close(e);
}

/* The inclusive scan of the maps (a, hc) over groups of `width` lanes (a
 * power of two up to 32; lane: the lane's index in its group); earlier lanes
 * apply first. A lane takes a value only from a lane of its own group
 * (lane >= off): __shfl_up_sync hands the first off lanes of a group their
 * own value back, which composed again would count their steps twice. */
static void maps_scan(const scan_ctx *x, const char *lane, int width) {
    mx_emitter *e = x->e;
    char w[16] = "";
    if (width < 32)
        snprintf(w, sizeof w, ", %d", width);
    mx_emit_line(e, "/* inclusive scan of the maps over the %s: earlier lanes apply first */",
                 width < 32 ? "row's lanes" : "warp");
    mx_emit_open(e, "for (int off = 1; off < %d; off <<= 1)", width);
    mx_emit_line(e, "const float pa = __shfl_up_sync(0xFFFFFFFFu, a, off%s);", w);
    mx_emit_line(e, "const float ph = __shfl_up_sync(0xFFFFFFFFu, hc, off%s);", w);
    mx_emit_open(e, "if (%s >= off)", lane);
    mx_emit_line(e, "hc = a * ph + hc;");
    mx_emit_line(e, "a *= pa;");
    mx_emit_close(e);
    mx_emit_close(e);
}

/* This thread's steps again from the state hs entering them, C of step i
 * being the expression c_i: the outputs yi. */
static void rescan_steps(const scan_ctx *x, const char *c_i) {
    mx_emitter *e = x->e;
    items_loop(x);
    mx_emit_line(e, "hs = dA[i] * hs + bu[i];");
    mx_emit_line(e, "yi[i] += hs * %s;", c_i);
    mx_emit_close(e);
}

static void chunked_scan(scan_ctx *x, int k) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    const mx_scan_part *s = &sp->scan[k];
    char a[96], bb[96], cc[96];
    long long N = (long long)sp->N, L = (long long)sp->L;
    mx_emit_open(e, "/* scan %d of %d%s */", k, sp->n_scans, s->reverse ? ", reverse" : "");
    if (k > 0)
        mx_emit_line(e, "__syncthreads(); /* the previous scan's sum and carries are complete */");
    mx_emit_open(e, "for (int n = threadIdx.x; n < %lld; n += blockDim.x)", N);
    emit_state_init(x, s, "n", NULL, "carry[n]");
    mx_emit_close(e);
    mx_emit_line(e, "int phase = 0; /* alternates the warp totals' buffer from one barrier to the next */");
    mx_emit_open(e, "for (int s0 = 0, par = 0; s0 < %lld; s0 += TILE, par ^= 1)", L);
    mx_emit_line(e, "const int first = s0 + threadIdx.x * ITEMS;");
    mx_emit_line(e, "/* d and d u of the super-chunk, read along L by the block */");
    tile_loop(x, s);
    emit_delta(x, s, "l");
    value3(x, s->in[MX_SCAN_U], x->b, x->c, dim_or_zero(sp->L, "l"), a, sizeof a);
    mx_emit_line(e, "sd[sj] = d, sdu[sj] = d * %s;", a);
    mx_emit_close(e);
    mx_emit_line(e, "__syncthreads();");
    mx_emit_line(e, "float dl[ITEMS], du[ITEMS], yi[ITEMS];");
    mx_emit_line(e, "#pragma unroll");
    mx_emit_open(e, "for (int i = 0; i < ITEMS; i++)");
    if (tiles_exactly(x)) {
        mx_emit_line(e, "dl[i] = sd[mine + i], du[i] = sdu[mine + i];");
    } else {
        mx_emit_line(e, "dl[i] = first + i < %lld ? sd[mine + i] : 0.0f; /* past L: the identity step */", L);
        mx_emit_line(e, "du[i] = first + i < %lld ? sdu[mine + i] : 0.0f;", L);
    }
    mx_emit_line(e, "yi[i] = 0.0f;");
    mx_emit_close(e);
    mx_emit_open(e, "for (int n = 0; n < %lld; n++)", N);
    {
        const char *ai[2] = {dim_or_zero(sp->Ch, x->c), dim_or_zero(sp->N, "n")};
        mx_emit_value(e, s->in[MX_SCAN_A], ai, a, sizeof a);
    }
    mx_emit_line(e, "const float a2 = %s * " LOG2E ";", a);
    mx_emit_line(e, "/* B and C of state n along L; two buffers by the parity of n: the last reads of");
    mx_emit_line(e, "   this one (state n - 2's rescan) are behind state n - 1's barriers */");
    mx_emit_line(e, "float *const sB = bc + (n & 1) * 2 * SLOTS, *const sC = sB + SLOTS;");
    tile_loop(x, s);
    bc_value(x, s, MX_SCAN_B, "n", "l", bb, sizeof bb);
    bc_value(x, s, MX_SCAN_C, "n", "l", cc, sizeof cc);
    mx_emit_line(e, "sB[sj] = %s, sC[sj] = %s;", bb, cc);
    mx_emit_close(e);
    mx_emit_line(e, "__syncthreads();");
    summarise_steps(x, "sB[mine + i]");
    maps_scan(x, "lane", 32);
    mx_emit_open(e, "if (lane == 31)");
    mx_emit_line(e, "wa[phase * 32 + warp] = a;");
    mx_emit_line(e, "wh[phase * 32 + warp] = hc;");
    mx_emit_close(e);
    mx_emit_line(e, "__syncthreads();");
    mx_emit_line(e, "/* the state entering this thread's steps: the carry, the warps before, the lanes before */");
    mx_emit_line(e, "float hs = carry[par * %lld + n];", N);
    mx_emit_line(e, "for (int w = 0; w < warp; w++)");
    mx_emit_line(e, "    hs = wa[phase * 32 + w] * hs + wh[phase * 32 + w];");
    mx_emit_line(e, "const float pa = __shfl_up_sync(0xFFFFFFFFu, a, 1);");
    mx_emit_line(e, "const float ph = __shfl_up_sync(0xFFFFFFFFu, hc, 1);");
    mx_emit_line(e, "if (lane > 0)");
    mx_emit_line(e, "    hs = pa * hs + ph;");
    rescan_steps(x, "sC[mine + i]");
    mx_emit_open(e, "if (threadIdx.x == blockDim.x - 1) /* its end state, padding being the identity, is the carry */");
    mx_emit_line(e, "carry[(par ^ 1) * %lld + n] = hs;", N);
    if (s->hN_stored) {
        mx_emit_open(e, "if (s0 + TILE >= %lld)", L);
        store_hN(x, s, "n", "hs");
        mx_emit_close(e);
    }
    mx_emit_close(e);
    mx_emit_line(e, "phase ^= 1;");
    mx_emit_close(e);
    mx_emit_line(e, "/* the outputs, written along L by the block: the last state's barrier is behind");
    mx_emit_line(e, "   the previous super-chunk's reads of sy */");
    mx_emit_line(e, "#pragma unroll");
    mx_emit_line(e, "for (int i = 0; i < ITEMS; i++)");
    mx_emit_line(e, "    sy[mine + i] = yi[i];");
    mx_emit_line(e, "__syncthreads();");
    tile_loop(x, s);
    mx_emit_line(e, "float y = sy[sj];");
    finish_step(x, k, "l", false);
    mx_emit_close(e);
    mx_emit_close(e);
    mx_emit_close(e);
}

/* Bytes of shared memory: the warp totals, the carries, and SLOTS floats
 * for each of d, d u, y and the two B and C buffers. */
static size_t chunked_smem(const scan_ctx *x) {
    size_t slots = (size_t)x->t.threads * (size_t)(x->t.items + 1);
    return (128 + 2 * (size_t)x->sp->N + 7 * slots) * sizeof(float);
}

static void emit_chunked(scan_ctx *x, mx_kernel *k) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    long long N = (long long)sp->N;
    mx_emit_line(e, "/* chunked: one block per row (b, c); each thread scans ITEMS = %d steps per state, the",
                 x->t.items);
    mx_emit_line(e, "   warps compose their maps with shuffles and shared memory, a carry crosses the");
    mx_emit_line(e, "   %d-step super-chunks, then each thread rescans its steps from its prefix */",
                 x->t.items * x->t.threads);
    mx_emit_line(e, "const %s row = blockIdx.x;", e->ity);
    emit_row_coords(x);
    mx_emit_line(e, "const int lane = threadIdx.x %% 32, warp = threadIdx.x / 32;");
    mx_emit_line(e, "MX_DYNAMIC_SMEM(float, smem);");
    mx_emit_line(e, "float *const wa = smem, *const wh = smem + 64; /* [2][32] warp totals */");
    mx_emit_line(e, "float *const carry = smem + 128; /* [2][N] the state entering the super-chunk */");
    mx_emit_line(e, "/* per step of the super-chunk: d, d u, y; B and C of two states */");
    mx_emit_line(e, "float *const sd = carry + %lld, *const sdu = sd + SLOTS, *const sy = sdu + SLOTS, *const bc = sy + SLOTS;",
                 2 * N);
    mx_emit_line(e, "const int mine = threadIdx.x * (ITEMS + 1); /* this thread's steps in those */");
    emit_scans(x, chunked_scan, "threadIdx.x", "blockDim.x", NULL, "__syncthreads();");
    k->block[0] = (unsigned)x->t.threads, k->block[1] = k->block[2] = 1;
    k->grid[0] = (unsigned)(sp->Bt * sp->Ch), k->grid[1] = k->grid[2] = 1;
    k->smem = chunked_smem(x);
}

/* ---- decomposition 1, packed rows: rows shorter than a warp --------------------------- */

/* One scan of a packed block: d, d u, A log2 e and B, C of every state for
 * all the block's rows staged with the block's threads running along the
 * rows (whole sectors), then each row's SEG lanes scan its steps as the
 * chunked scan's warp does, and the outputs go back along the rows. */
static void packed_scan(scan_ctx *x, int k) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    const mx_scan_part *s = &sp->scan[k];
    char l[64], a[96], bb[96], cc[96];
    long long N = (long long)sp->N, L = (long long)sp->L;
    mx_emit_open(e, "/* scan %d of %d%s */", k, sp->n_scans, s->reverse ? ", reverse" : "");
    if (k > 0)
        mx_emit_line(e, "__syncthreads(); /* the previous scan's sum is complete, its staged values consumed */");
    mx_emit_line(e, "/* d and d u of the block's rows, at walk step w of row j / L */");
    open_positions(x, "w", 0, L, "", "");
    step_l(x, s, "w", l, sizeof l);
    mx_emit_line(e, "const %s l = %s;", e->ity, l);
    emit_delta(x, s, "l");
    value3(x, s->in[MX_SCAN_U], x->b, x->c, dim_or_zero(sp->L, "l"), a, sizeof a);
    mx_emit_line(e, "sd[j] = d, sdu[j] = d * %s;", a);
    close_positions(x);
    open_positions(x, "n", 0, N, "", "");
    {
        const char *ai[2] = {dim_or_zero(sp->Ch, x->c), dim_or_zero(sp->N, "n")};
        mx_emit_value(e, s->in[MX_SCAN_A], ai, a, sizeof a);
    }
    mx_emit_line(e, "sA[j] = %s * " LOG2E ";", a);
    close_positions(x);
    mx_emit_line(e, "/* B and C of every state of the groups (b, g) the rows span, along L */");
    mx_emit_open(e, "for (int j = threadIdx.x; j < n_groups * %lld; j += blockDim.x)", N * L);
    if (sp->Bt > 1 || sp->G > 1)
        mx_emit_line(e, "const %s grp = g0 + j / %lld;", e->ity, N * L);
    mx_emit_line(e, "const int n = j / %lld %% %lld, w = j %% %lld;", L, N, L);
    if (sp->Bt > 1)
        mx_emit_line(e, "const %s rb = grp / %lld;", e->ity, (long long)sp->G);
    if (sp->G > 1)
        mx_emit_line(e, "const %s rg = grp %% %lld;", e->ity, (long long)sp->G);
    packed_index_texts(x, true);
    step_l(x, s, "w", l, sizeof l);
    mx_emit_line(e, "const %s l = %s;", e->ity, l);
    bc_value(x, s, MX_SCAN_B, "n", "l", bb, sizeof bb);
    bc_value(x, s, MX_SCAN_C, "n", "l", cc, sizeof cc);
    packed_index_texts(x, false);
    mx_emit_line(e, "sB[j] = %s, sC[j] = %s;", bb, cc);
    mx_emit_close(e);
    mx_emit_line(e, "__syncthreads();");
    mx_emit_line(e, "float dl[ITEMS], du[ITEMS], yi[ITEMS];");
    mx_emit_line(e, "#pragma unroll");
    mx_emit_open(e, "for (int i = 0; i < ITEMS; i++)");
    if (tiles_exactly(x) && !packed_partial(x)) {
        mx_emit_line(e, "dl[i] = sd[mine + i], du[i] = sdu[mine + i];");
    } else {
        const char *len = packed_partial(x) ? "len" : NULL;
        char lim[32];
        snprintf(lim, sizeof lim, "%lld", L);
        mx_emit_line(e, "dl[i] = first + i < %s ? sd[mine + i] : 0.0f; /* past the row: the identity step */",
                     len ? len : lim);
        mx_emit_line(e, "du[i] = first + i < %s ? sdu[mine + i] : 0.0f;", len ? len : lim);
    }
    mx_emit_line(e, "yi[i] = 0.0f;");
    mx_emit_close(e);
    mx_emit_open(e, "for (int n = 0; n < %lld; n++)", N);
    mx_emit_line(e, "const float a2 = sA[slot * %lld + n];", N);
    mx_emit_line(e, "const float *const bn = sB + (gl * %lld + n) * %lld + first, *const cn = sC + (bn - sB);", N, L);
    summarise_steps(x, "bn[i]");
    if (x->seg > 1)
        maps_scan(x, "sl", x->seg);
    emit_state_init(x, s, "n", NULL, "float hs");
    if (x->seg > 1) {
        mx_emit_line(e, "/* the state entering this lane's steps: the lanes before it in the row */");
        mx_emit_line(e, "const float pa = __shfl_up_sync(0xFFFFFFFFu, a, 1, %d);", x->seg);
        mx_emit_line(e, "const float ph = __shfl_up_sync(0xFFFFFFFFu, hc, 1, %d);", x->seg);
        mx_emit_line(e, "if (sl > 0)");
        mx_emit_line(e, "    hs = pa * hs + ph;");
    }
    rescan_steps(x, "cn[i]");
    if (s->hN_stored) {
        mx_emit_open(e, "if (sl == %d%s) /* its end state, padding being the identity */", x->seg - 1,
                     packed_partial(x) ? " && len > 0" : "");
        store_hN(x, s, "n", "hs");
        mx_emit_close(e);
    }
    mx_emit_close(e);
    mx_emit_line(e, "#pragma unroll");
    mx_emit_line(e, "for (int i = 0; i < ITEMS; i++)");
    if (tiles_exactly(x))
        mx_emit_line(e, "    sy[mine + i] = yi[i];");
    else
        mx_emit_line(e, "    if (first + i < %lld)\n        sy[mine + i] = yi[i];", L);
    mx_emit_line(e, "__syncthreads();");
    mx_emit_line(e, "/* the outputs, along the rows */");
    open_positions(x, "w", 0, L, "", "");
    step_l(x, s, "w", l, sizeof l);
    mx_emit_line(e, "const %s l = %s;", e->ity, l);
    mx_emit_line(e, "float y = sy[j];");
    finish_step(x, k, "l", false);
    close_positions(x);
    mx_emit_close(e);
}

/* Bytes of shared memory of a packed block: A log2 e of its rows, d, d u
 * and y of their steps (and their sum M), B and C of the groups they span. */
static size_t packed_bytes(const mx_scan_plan *sp, int rows, int groups) {
    size_t R = (size_t)rows, N = (size_t)sp->N, L = (size_t)sp->L;
    return (R * N + (3 + (size_t)sp->summed) * R * L + 2 * (size_t)groups * N * L) * sizeof(float);
}

static size_t packed_smem(const scan_ctx *x) { return packed_bytes(x->sp, x->t.channels, x->groups); }

/* The most groups (b, g) the rows of one block span: blocks start at
 * multiples of R, so the pattern of starts within a group repeats after
 * cpg blocks; the last block may be short. */
static int packed_groups(const mx_scan_plan *sp, int R, int cpg) {
    int64_t rows = sp->Bt * sp->Ch, blocks = (rows + R - 1) / R;
    int most = 1;
    for (int64_t b = 0; b < blocks && b <= cpg; b++) {
        int64_t first = b * R, last = (first + R < rows ? first + R : rows) - 1;
        int n = (int)(last / cpg - first / cpg + 1);
        most = n > most ? n : most;
    }
    return most;
}

static void emit_packed(scan_ctx *x, mx_kernel *k) {
    mx_emitter *e = x->e;
    const mx_scan_plan *sp = x->sp;
    int R = x->t.channels;
    long long rows = (long long)(sp->Bt * sp->Ch), N = (long long)sp->N, L = (long long)sp->L;
    mx_emit_line(e, "/* packed: %d rows (b, c) per block, SEG = %d lanes per row each scanning ITEMS = %d steps;",
                 R, x->seg, x->t.items);
    mx_emit_line(e, "   the block stages its rows' d, d u, A and all their B and C reading along the rows, so a");
    mx_emit_line(e, "   warp's loads cover whole sectors although a row (L = %lld) is shorter than one */", L);
    mx_emit_line(e, "const int slot = threadIdx.x / %d, sl = threadIdx.x %% %d;", x->seg, x->seg);
    mx_emit_line(e, "const %s brow = (%s)blockIdx.x * %d; /* the block's first row */", e->ity, e->ity, R);
    if (packed_partial(x)) {
        mx_emit_line(e, "const int len = brow + slot < %lld ? %lld : 0; /* steps of this lane's row */", rows, L);
        mx_emit_line(e, "const %s row = len ? brow + slot : %lld; /* rows past the last read the last */", e->ity,
                     rows - 1);
    } else {
        mx_emit_line(e, "const %s row = brow + slot;", e->ity);
    }
    emit_row_coords(x);
    mx_emit_line(e, "const %s g0 = brow / %d; /* the first row's group b G + g */", e->ity, x->cpg);
    mx_emit_line(e, "const int n_groups = (int)(((brow + %d < %lld ? brow + %d : %lld) - 1) / %d - g0 + 1);", R, rows,
                 R, rows, x->cpg);
    mx_emit_line(e, "const int gl = (int)(row / %d - g0); /* this lane's group among them */", x->cpg);
    mx_emit_line(e, "const int first = sl * ITEMS, mine = slot * %lld + first; /* this lane's steps */", L);
    mx_emit_line(e, "MX_DYNAMIC_SMEM(float, smem);");
    mx_emit_line(e, "float *const sA = smem; /* [R][N] */");
    mx_emit_line(e, "float *const sd = sA + %lld, *const sdu = sd + %lld, *const sy = sdu + %lld; /* [R][L] */", R * N,
                 R * L, R * L);
    mx_emit_line(e, "float *const sB = sy + %lld, *const sC = sB + %lld; /* [groups][N][L] */", R * L,
                 (long long)x->groups * N * L);
    if (acc_shared(x))
        mx_emit_line(e, "float *const sm = sC + %lld; /* [R][L] the sum M of the rows' scans */",
                     (long long)x->groups * N * L);
    emit_scans(x, packed_scan, "", "", NULL, "__syncthreads();");
    k->block[0] = (unsigned)x->t.threads, k->block[1] = k->block[2] = 1;
    k->grid[0] = (unsigned)((rows + R - 1) / R), k->grid[1] = k->grid[2] = 1;
    k->smem = packed_smem(x);
}

/* ---- tiles -------------------------------------------------------------------------- */

/* The lane count of a row: a power of two up to 32 that divides N. */
static int default_lanes(int64_t N) {
    int lanes = 1;
    while (lanes < 32 && N % (2 * lanes) == 0)
        lanes *= 2;
    return lanes;
}

/* Rows per block of the lanes decomposition: a divisor of the channels per
 * group (so that the block shares one staged B and C) when one is at least
 * half of what fits, else as many as fit. */
static int default_rows(int64_t cpg, int fit) {
    for (int r = fit; r >= (fit + 1) / 2; r--)
        if (cpg % r == 0)
            return r;
    return fit;
}

static mx_tiles lanes_tiles(const mx_scan_plan *sp) {
    mx_tiles t = {.vector = 1, .lanes_per_state = default_lanes(sp->N)};
    t.channels = default_rows(sp->Ch / sp->G, 128 / t.lanes_per_state);
    t.threads = t.channels * t.lanes_per_state;
    /* staged B and C at most 16 KiB: several blocks per SM still fit */
    t.items = sp->N <= 32 ? 64 : (int)(2048 / sp->N);
    if (t.items < t.lanes_per_state)
        t.items = t.lanes_per_state;
    return t;
}

/* 8 items per thread, and a register budget for ptxas: without a minimum of
 * blocks per SM in __launch_bounds__ ptxas picks its own register target
 * (72 for a 32-thread block on sm_80) and spills a few bytes to meet it when
 * the kernel needs more (vim-block's two scans: 8 bytes; a fused ViQS token
 * mixer's four qs scans need about 96). 512 resident threads per SM leave it
 * 128 registers, which every scan kernel fits (docs/scan.md, "Tiles and
 * defaults"). */
static mx_tiles chunked_tiles(const mx_scan_plan *sp) {
    mx_tiles t = {.vector = 1, .chunked = 1, .items = 8, .channels = 1};
    int64_t chunks = (sp->L + t.items - 1) / t.items; /* no more threads than chunks of L */
    t.threads = chunks >= 128 ? 128 : (int)((chunks + 31) / 32 * 32);
    t.min_blocks = 512 / t.threads;
    return t;
}

/* Lanes per row of a packed block: a power of two whose lanes of `items`
 * steps each cover L. */
static int packed_seg(int64_t L, int items) {
    int seg = 1;
    while ((int64_t)seg * items < L)
        seg *= 2;
    return seg;
}

/* Rows shorter than a warp (docs/scan.md, "Packed rows"): up to 8 lanes per
 * row of about 4 steps each (fewer shuffles than a lane per step), 128
 * threads, fewer (whole warps) when there are fewer rows or their staged
 * values would not fit smem bytes; channels 0 when not even a warp's rows
 * fit. */
static mx_tiles packed_tiles(const mx_scan_plan *sp, int smem) {
    int seg = 1;
    while (seg < 8 && seg * 4 < sp->L)
        seg *= 2;
    mx_tiles t = {.vector = 1, .chunked = 1, .items = (int)((sp->L + seg - 1) / seg)};
    int per_warp = 32 / seg;
    int64_t rows = sp->Bt * sp->Ch;
    t.channels = 128 / seg;
    if (rows < t.channels)
        t.channels = (int)((rows + per_warp - 1) / per_warp * per_warp);
    int cpg = (int)(sp->Ch / sp->G);
    while (t.channels > 0 && packed_bytes(sp, t.channels, packed_groups(sp, t.channels, cpg)) > (size_t)smem)
        t.channels -= per_warp;
    t.threads = t.channels * seg;
    t.min_blocks = t.threads ? 512 / t.threads : 0;
    return t;
}

/* Rows shorter than a warp: packed, several to a block (when a warp's rows
 * fit shared memory). Else two waves of
 * the target's resident threads: enough rows x states to fill the GPU with
 * a lane per state; fewer, and L is cut into chunks instead. */
static mx_tiles tiles_for(const mx_scan_plan *sp, const mx_target *t) {
    int64_t resident = (int64_t)t->sm_count * t->max_threads_per_sm;
    mx_tiles packed = sp->L < 32 ? packed_tiles(sp, t->smem_per_block) : (mx_tiles){0};
    if (packed.channels > 0)
        return packed;
    return sp->Bt * sp->Ch * sp->N >= 2 * resident ? lanes_tiles(sp) : chunked_tiles(sp);
}

mx_tiles mx_scan_default_tiles(const mx_program *p, int group, const mx_target *target) {
    mx_scan_plan sp;
    mx_diag d;
    if (mx_scan_plan_fill(p, group, &sp, &d) != MX_OK) /* mx_emit_scan reports the error */
        return (mx_tiles){.threads = 128, .items = 8, .channels = 1, .chunked = 1, .vector = 1};
    return tiles_for(&sp, target);
}

/* Fields the caller left at 0 take the defaults of the decomposition asked
 * for (all zero: the cost model's choice); the rest must fit. */
static mx_status check_tiles(scan_ctx *x, const mx_tiles *given, mx_diag *d) {
    const mx_scan_plan *sp = x->sp;
    const mx_tiles *t = given;
    if (!t->threads && !t->items && !t->channels && !t->lanes_per_state && !t->chunked) {
        x->t = tiles_for(sp, x->e->target);
    } else if (t->chunked && t->channels > 1) { /* packed: threads = channels x the lanes per row */
        x->t = packed_tiles(sp, x->e->target->smem_per_block);
        if (t->items)
            x->t.items = t->items;
        x->t.channels = t->channels;
        x->t.threads = t->channels * packed_seg(sp->L, x->t.items > 0 ? x->t.items : 1);
        x->t.min_blocks = t->min_blocks;
    } else {
        x->t = t->chunked ? chunked_tiles(sp) : lanes_tiles(sp);
        if (t->threads)
            x->t.threads = t->threads;
        if (t->items)
            x->t.items = t->items;
        if (t->lanes_per_state && !t->chunked)
            x->t.lanes_per_state = t->lanes_per_state;
        if (!t->chunked && (t->channels || t->threads)) /* threads = channels x lanes */
            x->t.channels = t->channels ? t->channels : t->threads / x->t.lanes_per_state;
        x->t.min_blocks = t->min_blocks;
    }
    x->t.tasks = t->tasks;
    int group = x->e->group;
    x->packed = x->t.chunked && x->t.channels > 1;
    if (x->packed) {
        int items = x->t.items, R = x->t.channels;
        if (items < 1 || items > 64 || (int64_t)32 * items < sp->L)
            return mx_fail(d, MX_ERR_INVALID,
                           "scan group %d: packed tiles (chunked, channels > 1) need items 1..64 and a row "
                           "(L = %lld) within 32 lanes of items steps (got items %d)",
                           group, (long long)sp->L, items);
        x->seg = packed_seg(sp->L, items);
        if (x->t.threads % 32 || x->t.threads > 1024 || (t->threads && t->threads != x->t.threads))
            return mx_fail(d, MX_ERR_INVALID,
                           "scan group %d: packed tiles need threads = channels x %d lanes per row (L = %lld, "
                           "items %d), a multiple of 32 up to 1024 (got %d channels, %d threads)",
                           group, x->seg, (long long)sp->L, items, R, t->threads ? t->threads : x->t.threads);
        x->groups = packed_groups(sp, R, x->cpg);
        if (packed_smem(x) > (size_t)x->e->target->smem_per_block)
            return mx_fail(d, MX_ERR_INVALID,
                           "scan group %d: the packed tiles (%d rows x %lld steps, %lld states) need %zu bytes of "
                           "shared memory (at most %d on %s)",
                           group, R, (long long)sp->L, (long long)sp->N, packed_smem(x),
                           x->e->target->smem_per_block, x->e->target->name);
        return MX_OK;
    }
    if (x->t.chunked) {
        if (x->t.threads < 32 || x->t.threads > 1024 || x->t.threads % 32 || x->t.items < 1 || x->t.items > 64)
            return mx_fail(d, MX_ERR_INVALID,
                           "scan group %d: chunked tiles need threads a multiple of 32 up to 1024 and "
                           "items 1..64 (got %d, %d)",
                           group, x->t.threads, x->t.items);
        if (chunked_smem(x) > (size_t)x->e->target->smem_per_block)
            return mx_fail(d, MX_ERR_INVALID,
                           "scan group %d: the chunked tiles (%d threads x %d items) need %zu bytes of shared "
                           "memory (at most %d on %s)",
                           group, x->t.threads, x->t.items, chunked_smem(x), x->e->target->smem_per_block,
                           x->e->target->name);
        return MX_OK;
    }
    int lanes = x->t.lanes_per_state;
    if (lanes < 1 || lanes > 32 || (lanes & (lanes - 1)) || sp->N % lanes)
        return mx_fail(d, MX_ERR_INVALID,
                       "scan group %d: lanes_per_state %d must be a power of two up to 32 dividing N = %lld",
                       group, lanes, (long long)sp->N);
    if (x->t.channels < 1 || x->t.channels * lanes > 1024 || x->t.items < lanes || x->t.items % lanes ||
        (given->threads && given->channels && given->threads != given->channels * lanes))
        return mx_fail(d, MX_ERR_INVALID,
                       "scan group %d: lanes tiles need channels x lanes up to 1024 threads and items a "
                       "multiple of the lanes, threads = channels x lanes (got %d threads, %d channels, "
                       "%d items)",
                       group, x->t.threads, x->t.channels, x->t.items);
    x->t.threads = x->t.channels * lanes;
    x->lanes = lanes;
    x->per_lane = (int)(sp->N / lanes);
    x->staged = (sp->Ch / sp->G) % x->t.channels == 0;
    x->lanes_acc = sp->summed && lanes == 1 && x->e->target->device == MX_DEVICE_CPU && !acc_channels_last(x);
    if (x->lanes_acc && lanes_smem(x) > (size_t)x->e->target->smem_per_block)
        x->lanes_acc = false; /* a long row: the sum stays in the result, read back by each order */
    int64_t smem = (int64_t)lanes_smem(x);
    if (smem > x->e->target->smem_per_block)
        return mx_fail(d, MX_ERR_INVALID,
                       "scan group %d: the lanes tiles need %lld bytes of shared memory (at most %d on %s)", group,
                       (long long)smem, x->e->target->smem_per_block, x->e->target->name);
    return MX_OK;
}

/* Leaves out the light orders of a Switch of Scans (mx_codegen_options.prune_scans). */
static mx_status prune(mx_emitter *e, mx_scan_plan *sp, mx_kernel *k, mx_diag *d) {
    const mx_codegen_options *o = e->options;
    if (!o || o->prune_scans <= 0 || sp->weights == MX_NONE)
        return MX_OK;
    const float *w = o->params && sp->weights < o->params->count ? o->params->data[sp->weights] : NULL;
    if (!w)
        return mx_fail(d, MX_ERR_INVALID, "scan group %d: pruning a Switch of Scans needs its weights bound",
                       e->group);
    int scans[MX_SCAN_MAX];
    for (int i = 0; i < sp->n_scans; i++)
        scans[i] = sp->scan[i].node;
    int before = sp->n_scans;
    bool dropped[MX_SCAN_MAX];
    k->pruned_weight = mx_scan_plan_prune(sp, w, o->prune_scans, dropped);
    for (int i = 0; i < before; i++) {
        bool kept = false;
        for (int j = 0; j < sp->n_scans; j++)
            kept |= sp->scan[j].node == scans[i];
        if (!kept)
            k->pruned[k->n_pruned++] = scans[i];
    }
    return MX_OK;
}

mx_status mx_emit_scan(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d) {
    mx_scan_plan sp;
    MX_TRY(mx_scan_plan_fill(e->p, e->group, &sp, d));
    MX_TRY(prune(e, &sp, k, d));
    scan_ctx x = {.e = e, .sp = &sp};
    x.cpg = (int)(sp.Ch / sp.G);
    x.b = dim_or_zero(sp.Bt, "b");
    x.c = dim_or_zero(sp.Ch, "c");
    x.g = dim_or_zero(sp.G, "g");
    MX_TRY(check_tiles(&x, t, d));
    k->tiles = x.t;
    if (x.packed) {
        mx_emit_line(e, "#define ITEMS %d", x.t.items);
        emit_packed(&x, k);
        mx_emit_line(e, "#undef ITEMS");
    } else if (x.t.chunked) {
        mx_emit_line(e, "#define ITEMS %d", x.t.items);
        mx_emit_line(e, "#define TILE %d /* steps per super-chunk */", x.t.items * x.t.threads);
        mx_emit_line(e, "#define SLOTS %d /* floats per step array: TILE and a pad per ITEMS */",
                     (x.t.items + 1) * x.t.threads);
        emit_chunked(&x, k);
        mx_emit_line(e, "#undef SLOTS");
        mx_emit_line(e, "#undef TILE");
        mx_emit_line(e, "#undef ITEMS");
    } else {
        mx_emit_line(e, "#define LANES %d", x.lanes);
        emit_lanes(&x, k);
        mx_emit_line(e, "#undef LANES");
    }
    if (e->status != MX_OK) {
        *d = e->diag;
        return e->status;
    }
    return MX_OK;
}
