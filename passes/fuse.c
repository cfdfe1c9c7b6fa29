/* fuse.c: put every node in a group, a future kernel.
 *
 * Needs: a typed graph; layout's p->view when it ran (without it every
 * layout op is a copy kernel). Changes: fills p->group_of and p->groups
 * (members in schedule order, groups in a schedule order of their own); the
 * graph is untouched. docs/passes.md has the rules with a worked example.
 *
 * Nodes start as one group each and merge under a few rules, each merge
 * checked for legality: two groups merge only when no path leaves one and
 * comes back into the other through a third node (else the two kernels would
 * wait on each other); folded views are transparent for that. The rules, in
 * the order they are tried (docs/passes.md numbers them):
 *   - a view stored by its producer joins the producer's group; a scan_scatter
 *     summing K scans (directly or through folded shifts, as ViQS's qs pairs)
 *     joins all K: the K orders (or both directions) of one mixer become one
 *     scan kernel that reads u once;
 *   - an elementwise node (weighted_sum, scan_scatter) reading a scan group's
 *     result of its size joins it: gate, D skip, qs shifts and sums; reading
 *     two scan groups merges them too;
 *   - add / relu / gelu (tanh form) alone on a matmul's result that nobody
 *     else reads, in the matmul's layout: cuBLASLt's bias, activation and
 *     beta*C residual (an erf gelu stays out: cuBLASLt has no erf GELU);
 *   - a "pure" group (elementwise ops, weighted_sum) joins the one group that
 *     reads all its results (a prologue; not a graph output; not a matmul,
 *     cuBLAS reads memory; at most the reader's size);
 *   - else it joins a group it reads from, of its own size, when the value
 *     read has no other reader (an epilogue);
 *   - a thin product (K <= THIN_K, THIN_K_CPU for the cpu) read by one scan
 *     group alone joins it: the scan recomputes it where it reads it;
 *   - repeat until nothing moves. Then the leftovers: a folded view and a
 *     weight (param-only computation, done when weights are bound) go with
 *     their first reader.
 * No merge puts two weighted_sums in one kernel (an average of more than 64
 * block outputs is sums of 64, each then the same kernel in every block),
 * nor makes a kernel of more than MX_GROUP_MAX_BUFFERS buffers. */
#include <stdlib.h>

#include "uses.h"

typedef struct {
    mx_program *p;
    const mx_graph *g;
    mx_uses u;
    bool *joins;   /* per node: takes part in the merging */
    int *parent;   /* union-find */
    int *next;     /* circular member list of each set */
    int *anchor;   /* per root: the member that names the kernel */
    int *max_id;   /* per root: its last member */
    int64_t *size; /* per root: elements the kernel iterates over */
    int *reads;    /* per root: at least its buffers (what members read and write) */
    bool *wsums;   /* per root: holds a weighted_sum */
    int *stamp;    /* per node and path state: visited in check number `round` */
    int *counted;  /* per value: counted as a buffer in check number `round` */
    int round;
    int *stack;
    /* reader collection */
    int *sets;
    int n_sets;
} fuser;

static int find(fuser *f, int x) {
    while (f->parent[x] != x) {
        f->parent[x] = f->parent[f->parent[x]];
        x = f->parent[x];
    }
    return x;
}

static mx_fusion kind_of(const fuser *f, int node) {
    mx_op op = f->g->nodes[node].op;
    return mx_ops[op].fusion;
}

/* Which member names a merged kernel: the most constraining one. */
static int priority(const fuser *f, int node) {
    static const int rank[MX_FUSE_COUNT] = {
        [MX_FUSE_SCAN] = 8, [MX_FUSE_MATMUL] = 7, [MX_FUSE_CONV] = 6, [MX_FUSE_NORM] = 5,
        [MX_FUSE_REDUCE] = 4, [MX_FUSE_WSUM] = 3, [MX_FUSE_GATHER] = 2, [MX_FUSE_LAYOUT] = 2,
        [MX_FUSE_ELEMWISE] = 1};
    if (f->p->view && f->p->view[node] == MX_VIEW_PRODUCER)
        return 0; /* a store of its producer, never a kernel of its own */
    return rank[kind_of(f, node)];
}

static bool pure(const fuser *f, int root) {
    mx_fusion k = kind_of(f, f->anchor[root]);
    return k == MX_FUSE_ELEMWISE || k == MX_FUSE_WSUM;
}

static int64_t node_numel(const mx_graph *g, int node) {
    return mx_type_numel(mx_value_type(g, g->nodes[node].first_out));
}

/* The elements a kernel iterates over: its result, or the rows a norm or
 * reduction reads. */
static int64_t domain_of(const mx_graph *g, int node) {
    mx_fusion k = mx_ops[g->nodes[node].op].fusion;
    if (k == MX_FUSE_NORM || k == MX_FUSE_REDUCE)
        return mx_type_numel(mx_node_input_type(g, node, 0));
    return node_numel(g, node);
}

static void count_one(int value, void *ctx) {
    (void)value;
    (*(int *)ctx)++;
}

/* A node's buffers as a kernel of its own, at most: what its inputs read in
 * memory and its results. */
static int node_reads(const fuser *f, int node) {
    int n = f->g->nodes[node].n_out;
    mx_uses_node_bases(f->p, node, count_one, &n);
    return n;
}

static bool in_pair(fuser *f, int node, int ra, int rb) {
    if (!f->joins[node])
        return false;
    int r = find(f, node);
    return r == ra || r == rb;
}

static void visit(fuser *f, int node, bool escaped, int *top) {
    int *s = &f->stamp[2 * node + escaped];
    if (*s != f->round) {
        *s = f->round;
        f->stack[(*top)++] = 2 * node + escaped;
    }
}

/* Whether merging sets ra and rb keeps the group graph acyclic: no path from
 * one to the other through a node outside both, folded views being part of
 * the read that goes through them. */
static bool acyclic(fuser *f, int ra, int rb) {
    const mx_graph *g = f->g;
    int limit = f->max_id[ra] > f->max_id[rb] ? f->max_id[ra] : f->max_id[rb];
    int top = 0;
    f->round++;
    for (int pass = 0; pass < 2; pass++) {
        int root = pass ? rb : ra, m = root;
        do {
            visit(f, m, false, &top);
            m = f->next[m];
        } while (m != root);
    }
    while (top) {
        int item = f->stack[--top], x = item / 2;
        bool escaped = item % 2;
        for (int o = 0; o < g->nodes[x].n_out; o++) {
            int v = g->nodes[x].first_out + o;
            for (int k = f->u.first[v]; k < f->u.first[v + 1]; k++) {
                int r = f->u.reader[k];
                if (in_pair(f, r, ra, rb)) {
                    if (escaped)
                        return false;
                    continue;
                }
                if (r > limit)
                    continue;
                /* Leaving the pair through anything but a folded view escapes. */
                visit(f, r, escaped || !mx_view_folded(f->p, r), &top);
            }
        }
    }
    return true;
}

static bool stored_outside(fuser *f, int x, int a, int b);

typedef struct {
    fuser *f;
    int ra, rb, n;
} buffer_count;

static void count_base(int value, void *ctx) {
    buffer_count *c = ctx;
    if (c->f->counted[value] != c->f->round && !in_pair(c->f, c->f->g->values[value].node, c->ra, c->rb)) {
        c->f->counted[value] = c->f->round;
        c->n++;
    }
}

/* Whether the kernel of sets ra and rb binds at most MX_GROUP_MAX_BUFFERS
 * buffers: the values its members read from outside it (what folded views
 * read) and those it stores; counted when the bounds could go over. */
static bool within_buffers(fuser *f, int ra, int rb) {
    if (f->reads[ra] + f->reads[rb] <= MX_GROUP_MAX_BUFFERS)
        return true;
    buffer_count c = {f, ra, rb, 0};
    f->round++;
    for (int pass = 0; pass < 2; pass++) {
        int root = pass ? rb : ra, m = root;
        do {
            mx_uses_node_bases(f->p, m, count_base, &c);
            if (stored_outside(f, m, ra, rb))
                c.n += f->g->nodes[m].n_out;
            m = f->next[m];
        } while (m != root);
    }
    return c.n <= MX_GROUP_MAX_BUFFERS;
}

static bool merge(fuser *f, int a, int b) {
    int ra = find(f, a), rb = find(f, b);
    if (ra == rb)
        return true;
    if ((f->wsums[ra] && f->wsums[rb]) || !within_buffers(f, ra, rb) || !acyclic(f, ra, rb))
        return false;
    int pa = priority(f, f->anchor[ra]), pb = priority(f, f->anchor[rb]);
    if (pb > pa || (pb == pa && f->anchor[rb] < f->anchor[ra])) {
        int t = ra;
        ra = rb;
        rb = t;
    }
    bool both_pure = pure(f, ra) && pure(f, rb);
    f->parent[rb] = ra;
    int t = f->next[ra];
    f->next[ra] = f->next[rb];
    f->next[rb] = t;
    f->max_id[ra] = f->max_id[ra] > f->max_id[rb] ? f->max_id[ra] : f->max_id[rb];
    f->reads[ra] += f->reads[rb];
    f->wsums[ra] |= f->wsums[rb];
    if (both_pure && f->size[rb] > f->size[ra])
        f->size[ra] = f->size[rb];
    return true;
}

static void collect_set(int reader, void *ctx) {
    fuser *f = ctx;
    int r = find(f, reader);
    for (int i = 0; i < f->n_sets; i++)
        if (f->sets[i] == r)
            return;
    f->sets[f->n_sets++] = r;
}

/* The sets that read node's results (through folded views), its own excluded. */
static int reader_sets(fuser *f, int node) {
    f->n_sets = 0;
    for (int o = 0; o < f->g->nodes[node].n_out; o++)
        mx_uses_readers(f->p, &f->u, f->g->nodes[node].first_out + o, collect_set, f);
    int own = find(f, node), n = 0;
    for (int i = 0; i < f->n_sets; i++)
        if (f->sets[i] != own)
            f->sets[n++] = f->sets[i];
    return f->n_sets = n;
}

/* The one set that reads node e's results, none being a graph output; -1
 * when there is none or more than one. */
static int sole_reader_set(fuser *f, int e) {
    const mx_node *node = &f->g->nodes[e];
    for (int o = 0; o < node->n_out; o++)
        if (f->u.output[node->first_out + o])
            return -1;
    return reader_sets(f, e) == 1 ? f->sets[0] : -1;
}

typedef struct {
    fuser *f;
    int set[2];
    bool hit;
} set_read;

static void note_set_read(int value, void *ctx) {
    set_read *c = ctx;
    int r = find(c->f, c->f->g->values[value].node);
    c->hit |= r == c->set[0] || r == c->set[1];
}

static void note_outside_reader(int reader, void *ctx) {
    set_read *c = ctx;
    int r = find(c->f, reader);
    c->hit |= r != c->set[0] && r != c->set[1];
}

static void note_producer_view(int reader, void *ctx) {
    set_read *c = ctx;
    c->hit |= c->f->p->view && c->f->p->view[reader] == MX_VIEW_PRODUCER;
}

/* Whether node x's results are read outside sets a and b, or are graph
 * outputs, or are read by a view stored in the producer's layout (a split
 * of x: x's stores write its parts): the group of both would store them. */
static bool stored_outside(fuser *f, int x, int a, int b) {
    set_read c = {f, {a, b}, false};
    for (int o = 0; o < f->g->nodes[x].n_out && !c.hit; o++) {
        int v = f->g->nodes[x].first_out + o;
        c.hit = f->u.output[v];
        mx_uses_readers(f->p, &f->u, v, note_producer_view, &c);
        mx_uses_readers(f->p, &f->u, v, note_outside_reader, &c);
    }
    return c.hit;
}

/* Whether the group of anchor can take the members of set s. A row kernel
 * (a norm, a reduction) holds one element of its rows and of their results
 * at a time, so each member it stores must be of the row's shape or the
 * result's, or a view the producer's stores write (an elementwise op after
 * an unfold of the row has no element of the walk to be computed at); one
 * it does not store is computed where it is read, at any element (a gate
 * of shape [B, 1, C] before a norm). And a member must read the values of
 * the group and of s directly, not through a view (a shift of the norm's
 * result reads another row's). */
static bool takes(fuser *f, int anchor, int s) {
    const mx_graph *g = f->g;
    mx_fusion k = kind_of(f, anchor);
    if (k != MX_FUSE_NORM && k != MX_FUSE_REDUCE)
        return true;
    const mx_type *row = mx_node_input_type(g, anchor, 0), *result = mx_value_type(g, g->nodes[anchor].first_out);
    int x = s;
    do {
        bool shape_free = (mx_is_view_op(g->nodes[x].op) && mx_view_forward(g, x)) ||
                          !stored_outside(f, x, find(f, anchor), s);
        for (int o = 0; o < g->nodes[x].n_out && !shape_free; o++) {
            const mx_type *t = mx_value_type(g, g->nodes[x].first_out + o);
            if (!mx_shape_equal(t, row) && !mx_shape_equal(t, result))
                return false;
        }
        for (int i = 0; i < g->nodes[x].n_in; i++) {
            int v = mx_node_input(g, x, i);
            if (v == MX_NONE || !mx_view_folded(f->p, g->values[v].node))
                continue;
            set_read c = {f, {find(f, anchor), s}, false};
            mx_uses_bases(f->p, v, note_set_read, &c);
            if (c.hit)
                return false;
        }
        x = f->next[x];
    } while (x != s);
    return true;
}

static bool try_prologue(fuser *f, int e) {
    int c = sole_reader_set(f, e);
    return c >= 0 && kind_of(f, f->anchor[c]) != MX_FUSE_MATMUL && node_numel(f->g, e) <= f->size[c] &&
           takes(f, f->anchor[c], find(f, e)) && merge(f, e, c);
}

/* A product this thin (a channel mixer's x_proj and dt_proj, K = 1: each
 * element of B and C is u times a weight) costs K multiply-adds per element
 * where the scan reads it, against writing it (N times the scan's input for
 * B and C) and reading it back; a library call per such product costs more
 * than the product. On the cpu a token mixer's dt_proj too (K = dt_rank, 6
 * to 12 in the zoo's first stages): a step of 16 lanes runs some 200
 * vector instructions for N = 16 states, and K more multiply-adds there
 * cost less than the product's call and dt's store and load. ViM2-T's
 * arena 18.7 -> 11.2 MB, VMamba-T's 20.2 -> 10.6, vim-block's 3.75 -> 2.5;
 * ViM2-T, TSM2-ETTh1 and VMamba-T 2% to 3% faster (best of 4, builds
 * alternating, AMD EPYC). At K <= 64 TSM2-ETTh1's token mixers' scans took
 * 158 ms where they took 33. A GPU's scans keep K <= 4: not measured. */
enum { THIN_K = 4, THIN_K_CPU = 24 };

static bool try_thin_product(fuser *f, int e) {
    int most = f->p->target && f->p->target->device == MX_DEVICE_CPU ? THIN_K_CPU : THIN_K;
    if (f->next[e] != e || mx_product_k(f->g, e) > most)
        return false;
    int c = sole_reader_set(f, e);
    return c >= 0 && kind_of(f, f->anchor[c]) == MX_FUSE_SCAN && merge(f, e, c);
}

typedef struct {
    int v[64];
    int n;
} value_list;

static void collect_value(int value, void *ctx) {
    value_list *l = ctx;
    if (l->n < 64)
        l->v[l->n++] = value;
}

/* Whether value v is read by node e alone. */
static bool read_by_only(fuser *f, int v, int e) {
    if (f->u.output[v])
        return false;
    f->n_sets = 0;
    mx_uses_readers(f->p, &f->u, v, collect_set, f);
    return f->n_sets == 1 && f->sets[0] == find(f, e);
}

static void collect_bases(const fuser *f, int e, value_list *bases) {
    bases->n = 0;
    mx_uses_node_bases(f->p, e, collect_value, bases);
}

/* Scans whose results meet in node e (of a scan group) are one kernel;
 * returns whether a merge happened. */
static bool join_scans(fuser *f, int e, const value_list *bases) {
    bool merged = false;
    for (int j = 0; j < bases->n; j++) {
        int pj = f->g->values[bases->v[j]].node;
        if (f->joins[pj] && find(f, pj) != find(f, e) && kind_of(f, f->anchor[find(f, pj)]) == MX_FUSE_SCAN)
            merged |= merge(f, e, pj);
    }
    return merged;
}

/* v, or what it reshapes through folded reshapes, stopping at base. */
static int through_reshapes(const fuser *f, int v, int base) {
    const mx_graph *g = f->g;
    while (v != MX_NONE && v != base && g->nodes[g->values[v].node].op == MX_OP_RESHAPE &&
           mx_view_folded(f->p, g->values[v].node))
        v = mx_node_input(g, g->values[v].node, 0);
    return v;
}

/* Whether node e reads value base directly or through reshapes only (a
 * matmul epilogue works on the matmul's own layout). */
static bool reads_plainly(const fuser *f, int e, int base) {
    for (int i = 0; i < f->g->nodes[e].n_in; i++)
        if (through_reshapes(f, mx_node_input(f->g, e, i), base) == base)
            return true;
    return false;
}

/* Whether every input of e but base is stored as it is read (directly or
 * through folded reshapes) and broadcasts over a prefix of e's dims:
 * cuBLASLt reads a residual C from memory, so an add whose other operand is
 * a folded view (a permute, an embedding's gather) cannot become the
 * matmul's epilogue, nor one of a column ([rows, 1]: not a bias of the
 * output's columns, nor a residual per batch). */
static bool others_stored(const fuser *f, int e, int base) {
    const mx_type *y = mx_value_type(f->g, f->g->nodes[e].first_out);
    for (int i = 0; i < f->g->nodes[e].n_in; i++) {
        int v = through_reshapes(f, mx_node_input(f->g, e, i), base);
        if (v != MX_NONE && v != base &&
            (mx_view_folded(f->p, f->g->values[v].node) ||
             mx_broadcast_suffix(mx_value_type(f->g, mx_node_input(f->g, e, i)), y) <= 0))
            return false;
    }
    return true;
}

/* What an op of a matmul's epilogue is to cuBLASLt: a bias (an add of one
 * row, or a linear's own bias), a residual C (an add of more rows), an
 * activation (relu, tanh gelu). */
typedef enum { LT_NONE, LT_BIAS, LT_RESIDUAL, LT_ACT } lt_part;

/* The part node plays after matmul set P's running result (an add of two
 * values of P: none). */
static lt_part lt_part_of(fuser *f, int node, int P) {
    const mx_graph *g = f->g;
    const mx_node *nd = &g->nodes[node];
    if (nd->op == MX_OP_RELU || (nd->op == MX_OP_GELU && mx_node_int(g, node, MX_A_APPROX) == MX_GELU_TANH))
        return LT_ACT;
    if (nd->op != MX_OP_ADD)
        return LT_NONE;
    for (int i = 0; i < nd->n_in; i++) {
        int v = mx_node_input(g, node, i);
        if (find(f, g->values[through_reshapes(f, v, MX_NONE)].node) != P) {
            const mx_type *y = mx_value_type(g, nd->first_out);
            return mx_type_numel(mx_value_type(g, v)) == y->dim[y->rank - 1] ? LT_BIAS : LT_RESIDUAL;
        }
    }
    return LT_NONE;
}

/* Whether cuBLASLt's epilogue can take op e after what matmul set P holds:
 * one bias (a linear's own or an add's), one residual, the activation last
 * (runtime/gemm.c decodes the group into the library call). */
static bool lt_takes(fuser *f, int P, int e) {
    const mx_graph *g = f->g;
    lt_part part = lt_part_of(f, e, P);
    if (part == LT_NONE)
        return false;
    int x = P;
    do {
        const mx_node *nd = &g->nodes[x];
        bool own_bias = mx_ops[nd->op].fusion == MX_FUSE_MATMUL && nd->op == MX_OP_LINEAR && nd->n_in > 2 &&
                        mx_node_input(g, x, 2) != MX_NONE;
        lt_part held = mx_ops[nd->op].fusion == MX_FUSE_MATMUL ? (own_bias ? LT_BIAS : LT_NONE)
                       : mx_view_folded(f->p, x)                ? LT_NONE
                                                                : lt_part_of(f, x, P);
        if (held == LT_ACT || (held != LT_NONE && held == part))
            return false;
        x = f->next[x];
    } while (x != P);
    return true;
}

typedef enum { ONLY_SCAN, ONLY_MATMUL, ANY_GROUP } epilogue_of;

/* Joins a group that e reads from, of the kind asked. */
static bool try_epilogue(fuser *f, int e, epilogue_of which) {
    const mx_graph *g = f->g;
    value_list bases;
    collect_bases(f, e, &bases);
    for (int i = 0; i < bases.n; i++) {
        int pb = g->values[bases.v[i]].node;
        if (kind_of(f, pb) == MX_FUSE_SOURCE || f->u.weight[pb])
            continue;
        int P = find(f, pb);
        mx_fusion k = kind_of(f, f->anchor[P]);
        /* Its own size, or the size of what it reads (after a reduction). */
        int64_t numel = node_numel(g, e);
        if (P == find(f, e) || (which == ONLY_SCAN && k != MX_FUSE_SCAN) ||
            (which == ONLY_MATMUL && k != MX_FUSE_MATMUL) ||
            (numel != f->size[P] && numel != mx_type_numel(mx_value_type(g, bases.v[i]))))
            continue;
        /* cuBLASLt takes one op at a time on its own layout; its GELU
         * epilogue is the tanh form only. */
        bool lt_op = k == MX_FUSE_MATMUL && f->next[e] == e && reads_plainly(f, e, bases.v[i]) &&
                     others_stored(f, e, bases.v[i]) && lt_takes(f, P, e);
        bool ok = k == MX_FUSE_SCAN || ((k != MX_FUSE_MATMUL || lt_op) && read_by_only(f, bases.v[i], e));
        if (!ok || !takes(f, f->anchor[P], find(f, e)) || !merge(f, e, P))
            continue;
        if (k == MX_FUSE_SCAN)
            join_scans(f, e, &bases);
        return true;
    }
    return false;
}

/* Folded views and weights go with their first reader; a node nobody
 * reads (a weight that is a graph output) stays alone. */
static void attach_leftovers(fuser *f) {
    const mx_graph *g = f->g;
    for (int n = g->n_nodes - 1; n >= 0; n--) {
        if (f->joins[n] || kind_of(f, n) == MX_FUSE_SOURCE)
            continue;
        int first = -1;
        for (int o = 0; o < g->nodes[n].n_out; o++) {
            int v = g->nodes[n].first_out + o;
            if (f->u.first[v] < f->u.first[v + 1] && (first < 0 || f->u.reader[f->u.first[v]] < first))
                first = f->u.reader[f->u.first[v]];
        }
        if (first >= 0)
            f->parent[n] = find(f, first);
    }
}

typedef struct {
    fuser *f;
    int *edges; /* pairs (from root, to root) */
    int n_edges, cap_edges;
    int to;
} edge_ctx;

static void add_edge(int value, void *ctx) {
    edge_ctx *c = ctx;
    int pb = c->f->g->values[value].node;
    if (kind_of(c->f, pb) == MX_FUSE_SOURCE || c->f->u.weight[pb])
        return;
    int from = find(c->f, pb);
    if (from == c->to)
        return;
    if (c->n_edges == c->cap_edges) {
        c->cap_edges = c->cap_edges ? 2 * c->cap_edges : 256;
        c->edges = realloc(c->edges, (size_t)c->cap_edges * 2 * sizeof(int));
    }
    c->edges[2 * c->n_edges] = from;
    c->edges[2 * c->n_edges + 1] = c->to;
    c->n_edges++;
}

/* Numbers the sets in a schedule order (Kahn, lowest anchor first among the
 * ready ones) and writes p->groups. */
static mx_status emit_groups(fuser *f, mx_diag *d) {
    mx_program *p = f->p;
    const mx_graph *g = f->g;
    int n = g->n_nodes, n_roots = 0;
    int *rid = malloc(((size_t)n + 1) * sizeof(int)), *roots = malloc(((size_t)n + 1) * sizeof(int));
    int *indeg = calloc((size_t)n + 1, sizeof(int)), *order = malloc(((size_t)n + 1) * sizeof(int));
    edge_ctx ec = {f, NULL, 0, 0, 0};
    for (int x = 0; x < n; x++) {
        rid[x] = -1;
        if (kind_of(f, x) != MX_FUSE_SOURCE && find(f, x) == x)
            rid[x] = n_roots, roots[n_roots++] = x;
    }
    for (int x = 0; x < n; x++) {
        if (kind_of(f, x) == MX_FUSE_SOURCE || f->u.weight[x] || mx_view_folded(p, x))
            continue;
        ec.to = find(f, x);
        mx_uses_node_bases(p, x, add_edge, &ec);
    }
    for (int e = 0; e < ec.n_edges; e++)
        indeg[rid[ec.edges[2 * e + 1]]]++;
    bool *done = calloc((size_t)n_roots + 1, sizeof(bool));
    for (int k = 0; k < n_roots; k++) {
        int best = -1;
        for (int r = 0; r < n_roots; r++)
            if (!done[r] && indeg[r] == 0 && (best < 0 || f->anchor[roots[r]] < f->anchor[roots[best]]))
                best = r;
        if (best < 0) { /* the legality checks exist to make this impossible */
            free(rid), free(roots), free(indeg), free(order), free(done), free(ec.edges);
            return mx_fail(d, MX_ERR_INVALID, "internal: fuse made groups that wait on each other");
        }
        done[best] = true;
        order[best] = k;
        for (int e = 0; e < ec.n_edges; e++)
            if (ec.edges[2 * e] == roots[best])
                indeg[rid[ec.edges[2 * e + 1]]]--;
    }
    p->n_groups = n_roots;
    p->groups = calloc((size_t)n_roots + 1, sizeof *p->groups);
    for (int r = 0; r < n_roots; r++) {
        mx_group *gr = &p->groups[order[r]];
        gr->anchor = f->anchor[roots[r]];
        gr->kind = kind_of(f, gr->anchor);
    }
    for (int x = 0; x < n; x++)
        if (kind_of(f, x) != MX_FUSE_SOURCE)
            p->groups[order[rid[find(f, x)]]].n_nodes++;
    for (int k = 0; k < n_roots; k++) {
        p->groups[k].nodes = mx_arena_alloc(&p->arena, (size_t)p->groups[k].n_nodes * sizeof(int) + 1);
        p->groups[k].n_nodes = 0;
    }
    for (int x = 0; x < n; x++) {
        p->group_of[x] = -1;
        if (kind_of(f, x) == MX_FUSE_SOURCE)
            continue;
        int k = order[rid[find(f, x)]];
        p->group_of[x] = k;
        p->groups[k].nodes[p->groups[k].n_nodes++] = x;
    }
    free(rid), free(roots), free(indeg), free(order), free(done), free(ec.edges);
    return MX_OK;
}

mx_status mx_pass_fuse(mx_program *p, mx_diag *d) {
    const mx_graph *g = p->g;
    size_t n = (size_t)g->n_nodes + 1;
    free(p->group_of);
    free(p->groups);
    p->groups = NULL;
    p->n_groups = 0;
    /* Set before the merging: mx_view_folded looks at it. */
    p->group_of = malloc(n * sizeof(int));
    fuser f = {.p = p, .g = g};
    mx_uses_init(&f.u, g);
    f.joins = calloc(n, sizeof(bool));
    f.parent = malloc(n * sizeof(int));
    f.next = malloc(n * sizeof(int));
    f.anchor = malloc(n * sizeof(int));
    f.max_id = malloc(n * sizeof(int));
    f.size = malloc(n * sizeof(int64_t));
    f.reads = malloc(n * sizeof(int));
    f.wsums = malloc(n * sizeof(bool));
    f.counted = calloc((size_t)g->n_values + 1, sizeof(int));
    f.stamp = calloc(2 * n, sizeof(int));
    f.stack = malloc(2 * n * sizeof(int));
    f.sets = malloc(n * sizeof(int));
    for (int x = 0; x < g->n_nodes; x++) {
        p->group_of[x] = -1;
        f.parent[x] = f.next[x] = f.anchor[x] = f.max_id[x] = x;
        f.size[x] = domain_of(g, x);
        f.reads[x] = node_reads(&f, x);
        f.wsums[x] = g->nodes[x].op == MX_OP_WEIGHTED_SUM;
        f.joins[x] = kind_of(&f, x) != MX_FUSE_SOURCE && !f.u.weight[x] && !mx_view_folded(p, x);
    }
    /* Stores into the producer's layout, and the K-order sums: with the
     * producers of what the inputs are folded views of (the scans under a
     * scatter of shifted qs pairs). */
    for (int x = 0; x < g->n_nodes; x++)
        if (f.joins[x] && p->view && p->view[x] == MX_VIEW_PRODUCER) {
            value_list bases;
            collect_bases(&f, x, &bases);
            for (int i = 0; i < bases.n; i++)
                if (takes(&f, f.anchor[find(&f, g->values[bases.v[i]].node)], find(&f, x)))
                    merge(&f, x, g->values[bases.v[i]].node);
        }
    for (bool changed = !p->no_merge; changed;) {
        changed = false;
        for (int e = 0; e < g->n_nodes; e++) {
            mx_fusion k = kind_of(&f, e);
            if (f.joins[e] && k == MX_FUSE_MATMUL) {
                changed |= try_thin_product(&f, e);
                continue;
            }
            if (!f.joins[e] || (k != MX_FUSE_ELEMWISE && k != MX_FUSE_WSUM && g->nodes[e].op != MX_OP_SCAN_SCATTER))
                continue;
            if (kind_of(&f, f.anchor[find(&f, e)]) == MX_FUSE_SCAN) {
                value_list bases;
                collect_bases(&f, e, &bases);
                changed |= join_scans(&f, e, &bases);
                continue;
            }
            if (!pure(&f, find(&f, e)))
                continue;
            /* Epilogues of scans and matmuls first: a gate, a sum or a
             * residual add must not be taken by a reader's prologue before
             * it reaches the kernel where it costs nothing. */
            changed |= try_epilogue(&f, e, ONLY_SCAN) || try_epilogue(&f, e, ONLY_MATMUL) ||
                       try_prologue(&f, e) || try_epilogue(&f, e, ANY_GROUP);
        }
    }
    attach_leftovers(&f);
    mx_status st = emit_groups(&f, d);
    mx_uses_free(&f.u);
    free(f.joins), free(f.parent), free(f.next), free(f.anchor), free(f.max_id), free(f.size);
    free(f.reads), free(f.wsums), free(f.stamp), free(f.counted), free(f.stack), free(f.sets);
    return st;
}
