/* interp.c: the reference interpreter and its host buffers (include/mixc.h).
 * Runs the nodes in definition order on f32 host arrays, one per value, and
 * keeps every value so that tests can inspect intermediates. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include "half.h"
#include "ir.h"

/* The widest argument lists in ops.def (weighted_sum, split); checked below. */
#define REF_MAX_IN 65
#define REF_MAX_OUT 16
#define X(id, name, min_in, max_in, min_out, max_out, fusion, attrs, infer, ref, cost, fpe, epe) \
    _Static_assert(max_in <= REF_MAX_IN && max_out <= REF_MAX_OUT, "arity of " name);
#include "ops.def"
#undef X

/* ---- buffers -------------------------------------------------------------- */

mx_buffers *mx_buffers_new(const mx_graph *g) {
    mx_buffers *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    size_t count = g->n_values > 0 ? (size_t)g->n_values : 1;
    b->count = g->n_values;
    b->data = calloc(count, sizeof *b->data);
    b->numel = calloc(count, sizeof *b->numel);
    if (!b->data || !b->numel) {
        mx_buffers_free(b);
        return NULL;
    }
    for (int v = 0; v < g->n_values; v++) {
        const mx_type *t = mx_value_type(g, v);
        b->numel[v] = t->rank < 0 ? 0 : mx_type_numel(t);
    }
    return b;
}

void mx_buffers_free(mx_buffers *b) {
    if (!b)
        return;
    for (int v = 0; b->data && v < b->count; v++)
        free(b->data[v]);
    free(b->data);
    free(b->numel);
    free(b);
}

/* The value's array, allocated when the caller left it NULL. */
static float *buffer_of(mx_buffers *b, int v) {
    if (!b->data[v])
        b->data[v] = malloc((size_t)(b->numel[v] > 0 ? b->numel[v] : 1) * sizeof(float));
    return b->data[v];
}

static bool is_input(mx_op op) { return op == MX_OP_INPUT || op == MX_OP_PARAM; }

/* ---- random inputs -------------------------------------------------------- */

/* The splitmix64 output function. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The stream of a value: keyed by its name when it has one (FNV-1a), so that
 * its numbers survive edits elsewhere in the graph, else by its id. */
static uint64_t stream_key(const mx_graph *g, int v) {
    const char *name = g->values[v].name;
    if (!name)
        return (uint64_t)v;
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 0x100000001B3ull;
    return h;
}

/* V when v is the ids of an embedding (of a [V, C] table), else 0: random
 * ids must pick rows, not NaN. */
static int64_t ids_vocab(const mx_graph *g, int v) {
    for (int node = 0; node < g->n_nodes; node++)
        if (g->nodes[node].op == MX_OP_EMBEDDING && mx_node_input(g, node, 1) == v)
            return mx_node_input_type(g, node, 0)->dim[0];
    return 0;
}

/* The scale a param's numbers are drawn at: 1, but for a weight (rank >= 2)
 * the power of two nearest 1 / sqrt(its fan-in), the fan-in its size over
 * its first dim as PyTorch's default init reckons it. At unit scale every
 * product of a graph's block multiplies its activations by about the square
 * root of its fan-in: a TSM2 channel mixer's output reached 3e5, and f32
 * kernels then differ from the f64 reference by 1e-3 of it, an error of the
 * data, not of the kernels. A power of two keeps each number exact. */
static int weight_scale_exponent(const mx_graph *g, int v) {
    const mx_type *t = mx_value_type(g, v);
    if (g->nodes[g->values[v].node].op != MX_OP_PARAM || t->rank < 2 || t->dim[0] < 1)
        return 0;
    double fan_in = (double)mx_type_numel(t) / (double)t->dim[0];
    return (int)lround(0.5 * log2(fan_in > 1 ? fan_in : 1));
}

/* Each value draws from its own splitmix64 stream, started from the seed and
 * its key, so its numbers do not depend on the rest of the graph. The numbers
 * lie on an even grid of [-1, 1) as fine as the dtype's precision at 1
 * (2^-23, 2^-10, 2^-7), so each is exact in the dtype: rounding a finer draw
 * could reach 1.0. A weight's are scaled down by weight_scale_exponent. */
bool mx_fill_random_value(mx_buffers *b, const mx_graph *g, int v, uint64_t seed) {
    static const int grid_bits[MX_DTYPE_COUNT] = {[MX_F32] = 24, [MX_F16] = 11, [MX_BF16] = 8};
    float *x = buffer_of(b, v);
    if (!x)
        return false;
    int bits = grid_bits[mx_value_type(g, v)->dtype];
    int down = weight_scale_exponent(g, v);
    double step = ldexp(1.0, 1 - bits);
    uint64_t state = mix64(seed ^ mix64(stream_key(g, v) + 1));
    int64_t vocab = ids_vocab(g, v);
    for (int64_t i = 0; i < b->numel[v]; i++) {
        state += 0x9E3779B97F4A7C15ull;
        x[i] = (float)ldexp((double)(mix64(state) >> (64 - bits)) * step - 1, -down);
        if (vocab) /* token ids: whole numbers spread over [0, V) */
            x[i] = (float)floor(((double)x[i] + 1) / 2 * (double)vocab);
    }
    return true;
}

void mx_buffers_fill_random(mx_buffers *b, const mx_graph *g, uint64_t seed) {
    for (int node = 0; node < g->n_nodes; node++)
        if (is_input(g->nodes[node].op)) /* out of memory: mx_ref_run reports the missing input */
            mx_fill_random_value(b, g, mx_node_output(g, node, 0), seed);
}

/* ---- the interpreter ------------------------------------------------------ */

static void round_to_dtype(float *x, int64_t n, mx_dtype dtype) {
    if (dtype == MX_F32)
        return;
    for (int64_t i = 0; i < n; i++)
        x[i] = mx_round_to(dtype, x[i]);
}

/* Inputs and params come from the caller; so may consts (else their value
 * attribute fills them). Every output, given or computed, is then rounded to
 * its dtype, so that a value of dtype f16/bf16 holds f16/bf16 numbers. */
static mx_status run_node(const mx_graph *g, int node, mx_buffers *b, mx_diag *d) {
    const mx_node *n = &g->nodes[node];
    char label[160];
    mx_node_label(g, node, label, sizeof label);
    assert(n->n_in <= REF_MAX_IN && n->n_out <= REF_MAX_OUT);
    for (int i = 0; i < n->n_out; i++) {
        int v = n->first_out + i;
        const mx_type *t = mx_value_type(g, v);
        if (t->rank < 0)
            return mx_fail(d, MX_ERR_INVALID, "node %s: output %d has no type (infer shapes first)",
                           label, i);
        if (b->numel[v] != mx_type_numel(t))
            return mx_fail(d, MX_ERR_INVALID, "node %s: the buffers were made for another graph",
                           label);
    }
    bool given = mx_ops[n->op].fusion == MX_FUSE_SOURCE && b->data[n->first_out];
    if (is_input(n->op) && !given)
        return mx_fail(d, MX_ERR_INVALID, "node %s: no data given for this input", label);
    const float *in[REF_MAX_IN] = {0};
    float *out[REF_MAX_OUT] = {0};
    for (int i = 0; i < n->n_out; i++)
        if (!(out[i] = buffer_of(b, n->first_out + i)))
            return mx_fail(d, MX_ERR_NOMEM, "node %s: out of memory", label);
    if (!given) {
        for (int i = 0; i < n->n_in; i++) {
            int v = mx_node_input(g, node, i);
            in[i] = v == MX_NONE ? NULL : b->data[v];
            assert(v == MX_NONE || in[i]); /* produced by an earlier node */
        }
        mx_ops[n->op].ref(g, node, in, out);
    }
    for (int i = 0; i < n->n_out; i++) {
        int v = n->first_out + i;
        round_to_dtype(out[i], b->numel[v], mx_value_type(g, v)->dtype);
    }
    return MX_OK;
}

mx_status mx_ref_run(const mx_graph *g, mx_buffers *b, mx_diag *d) {
    if (b->count != g->n_values)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: the buffers were made for another graph",
                       g->name);
    for (int node = 0; node < g->n_nodes; node++) {
        mx_status st = run_node(g, node, b, d);
        if (st != MX_OK)
            return st;
    }
    return MX_OK;
}
