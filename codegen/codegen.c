/* codegen.c: a planned program into one CUDA module (codegen.h).
 *
 * Walks the groups in schedule order: a matmul group gets no kernel (cuBLAS,
 * or the host GEMM under emulation); every other group goes to the emitter of
 * its kind. The module is the prelude include, the helpers the kernels call,
 * then each kernel (a comment naming its group's nodes and its buffers, the
 * kernel, its MX_EMU_ENTRY). */
#include <stdlib.h>
#include <string.h>

#include "emit.h"

typedef mx_status (*emit_fn)(mx_emitter *e, const mx_tiles *t, mx_kernel *k, mx_diag *d);

static emit_fn emitter_of(mx_fusion kind) {
    switch (kind) {
    case MX_FUSE_SCAN: return mx_emit_scan;
    case MX_FUSE_CONV: return mx_emit_conv;
    case MX_FUSE_NORM:
    case MX_FUSE_REDUCE: return mx_emit_norm;
    case MX_FUSE_ELEMWISE:
    case MX_FUSE_WSUM:
    case MX_FUSE_LAYOUT:
    case MX_FUSE_GATHER: return mx_emit_pointwise;
    default: return NULL;
    }
}

static const char *const dtype_c[MX_DTYPE_COUNT] = {"float", "__half", "__nv_bfloat16"};

/* Whether buffer args i and j of a kernel may overlap (in-place plans share
 * one buffer): those lose __restrict__. */
static bool overlaps(const mx_program *p, int a, int b) {
    const mx_slot *x = &p->slots[a], *y = &p->slots[b];
    return x->offset >= 0 && y->offset >= 0 && x->offset < y->offset + y->bytes && y->offset < x->offset + x->bytes;
}

static void kernel_text(const mx_emitter *e, const mx_kernel *k, const mx_text *body, mx_text *out) {
    const mx_program *p = e->p;
    const mx_graph *g = p->g;
    const mx_group *gr = &p->groups[k->group];
    char label[160], type[96];
    mx_text_printf(out, "\n/* group %d (%s), anchor %s:\n *  ", k->group, mx_fusion_names[gr->kind],
                   mx_node_label(g, gr->anchor, label, sizeof label));
    for (int i = 0, col = 4; i < gr->n_nodes; i++) {
        mx_node_label(g, gr->nodes[i], label, sizeof label);
        if (col + strlen(label) > 96) {
            mx_text_printf(out, "\n *  ");
            col = 4;
        }
        mx_text_printf(out, " %s", label);
        col += (int)strlen(label) + 1;
    }
    mx_text_printf(out, "\n * tiles: %d threads; grid %u x %u x %u, block %u x %u x %u, %zu bytes dynamic smem */\n",
                   k->tiles.threads, k->grid[0], k->grid[1], k->grid[2], k->block[0], k->block[1], k->block[2],
                   k->smem);
    mx_text_printf(out, "extern \"C\" __global__ void __launch_bounds__(%u", k->block[0] * k->block[1] * k->block[2]);
    if (k->tiles.min_blocks > 0)
        mx_text_printf(out, ", %d", k->tiles.min_blocks);
    mx_text_printf(out, ")\n%s(", k->name);
    for (int i = 0; i < e->n_args; i++) {
        int v = e->args[i];
        bool alias = false;
        for (int j = 0; j < e->n_args; j++)
            alias |= j != i && overlaps(p, v, e->args[j]);
        const mx_type *t = mx_value_type(g, v);
        mx_node_label(g, g->values[v].node, label, sizeof label);
        mx_text_printf(out, "%s\n    %s%s *%sb%d /* %s%s: %s %s */", i ? "," : "", e->written[i] ? "" : "const ",
                       dtype_c[t->dtype], alias ? "" : "__restrict__ ", i, label,
                       g->values[v].index ? " (result 2+)" : "", mx_type_str(t, type, sizeof type),
                       e->written[i] ? "written" : "read");
    }
    mx_text_printf(out, ") {\n");
    mx_text_append(out, body);
    mx_text_printf(out, "}\nMX_EMU_ENTRY(%s)\n", k->name);
}

/* Bytes of the buffers a kernel touches (materialised traffic only), and the
 * flops and exps of its members, by ir/cost.c's conventions. */
static mx_cost floor_of(const mx_emitter *e) {
    const mx_program *p = e->p;
    const mx_graph *g = p->g;
    mx_cost c = {0, 0, 0};
    for (int i = 0; i < e->n_args; i++) {
        const mx_type *t = mx_value_type(g, e->args[i]);
        c.bytes += (double)mx_type_numel(t) * (double)mx_dtype_size(t->dtype);
    }
    const mx_group *gr = &p->groups[e->group];
    for (int i = 0; i < gr->n_nodes; i++) {
        mx_cost m = mx_node_cost(g, gr->nodes[i]);
        c.flops += m.flops;
        c.exps += m.exps;
    }
    return c;
}

static const char helpers[] =
    "\n/* Sum (or max) of v over the block, in every thread. blockDim.x is a\n"
    " * multiple of 32, so every shuffle names the whole warp; red holds one\n"
    " * slot per warp and is free again when the call returns. */\n"
    "static __device__ __forceinline__ float mx_block_reduce(float v, float *red, bool max) {\n"
    "    for (int o = 16; o > 0; o >>= 1) {\n"
    "        const float w = __shfl_xor_sync(0xffffffffu, v, o);\n"
    "        v = max ? fmaxf(v, w) : v + w;\n"
    "    }\n"
    "    __syncthreads(); /* an earlier call may still read red */\n"
    "    if ((threadIdx.x & 31) == 0)\n"
    "        red[threadIdx.x >> 5] = v;\n"
    "    __syncthreads();\n"
    "    const float none = max ? -__int_as_float(0x7f800000) : 0.0f;\n"
    "    v = (threadIdx.x & 31) < (blockDim.x >> 5) ? red[threadIdx.x & 31] : none;\n"
    "    for (int o = 16; o > 0; o >>= 1) {\n"
    "        const float w = __shfl_xor_sync(0xffffffffu, v, o);\n"
    "        v = max ? fmaxf(v, w) : v + w;\n"
    "    }\n"
    "    return v;\n"
    "}\n";

static const char diag_helpers[] =
    "\n/* The anti-diagonal scan order over an h x w grid (mx_scan_order_pos):\n"
    " * diagonals d = i + j in turn, each from its smallest row. A loop over the\n"
    " * diagonals rather than a table: no extra argument, O(h + w) per call. */\n"
    "static __device__ long long mx_diag_first_row(long long d, long long w) { return d - (w - 1) > 0 ? d - (w - 1) : 0; }\n"
    "static __device__ long long mx_diag_cells(long long d, long long h, long long w) {\n"
    "    return (d < h - 1 ? d : h - 1) - mx_diag_first_row(d, w) + 1;\n"
    "}\n"
    "/* The flat position visited at step l. */\n"
    "static __device__ long long mx_diag_pos(long long l, long long h, long long w) {\n"
    "    long long d = 0;\n"
    "    while (l >= mx_diag_cells(d, h, w))\n"
    "        l -= mx_diag_cells(d++, h, w);\n"
    "    const long long i = mx_diag_first_row(d, w) + l;\n"
    "    return i * w + (d - i);\n"
    "}\n"
    "/* The step at which position p is visited. */\n"
    "static __device__ long long mx_diag_step(long long p, long long h, long long w) {\n"
    "    const long long i = p / w, d = i + p % w;\n"
    "    long long l = i - mx_diag_first_row(d, w);\n"
    "    for (long long e = 0; e < d; e++)\n"
    "        l += mx_diag_cells(e, h, w);\n"
    "    return l;\n"
    "}\n";

void mx_module_free(mx_module *m) {
    for (int i = 0; i < m->n_kernels; i++)
        free(m->kernels[i].args);
    free(m->kernels);
    free(m->kernel_of_group);
    mx_text_free(&m->source);
    memset(m, 0, sizeof *m);
}

const mx_kernel *mx_module_kernel(const mx_module *m, int group) {
    int k = m->kernel_of_group[group];
    return k < 0 ? NULL : &m->kernels[k];
}

/* What makes two kernels the same function: parameter types, launch bounds
 * and body (identical blocks of a stage generate identical kernels; the
 * module keeps one, NVRTC time being per kernel). */
static char *kernel_key(const mx_emitter *e, const mx_kernel *k, const mx_text *body) {
    mx_text key = {0};
    mx_text_printf(&key, "%u %d|", k->block[0] * k->block[1] * k->block[2], k->tiles.min_blocks);
    for (int i = 0; i < e->n_args; i++) {
        int v = e->args[i];
        bool alias = false;
        for (int j = 0; j < e->n_args; j++)
            alias |= j != i && overlaps(e->p, v, e->args[j]);
        mx_text_printf(&key, "%d%d%d,", (int)mx_value_type(e->p->g, v)->dtype, e->written[i], alias);
    }
    mx_text_printf(&key, "|");
    mx_text_append(&key, body);
    return key.s;
}

typedef struct {
    char **key; /* per kernel of the module */
} dedup;

/* Group k's kernel into m (and its text into kernels, unless an identical
 * kernel is there already). */
static mx_status generate(const mx_program *p, const mx_codegen_options *o, int group, mx_module *m,
                          mx_text *kernels, unsigned *used_helpers, dedup *seen, mx_diag *d) {
    const mx_group *gr = &p->groups[group];
    emit_fn emit = emitter_of(gr->kind);
    if (!emit)
        return mx_fail(d, MX_ERR_INVALID, "group %d: no emitter for kind %s", group, mx_fusion_names[gr->kind]);
    mx_kernel *k = &m->kernels[m->n_kernels];
    memset(k, 0, sizeof *k);
    k->group = group;
    k->kind = gr->kind;
    k->tiles = o->tiles && o->tiles[group].threads > 0 ? o->tiles[group] : mx_tiles_default(p, group, o->sm);
    if (mx_debug_level() >= 3)
        fprintf(stderr, "mixc: group %d (%s): threads %d items %d channels %d lanes %d vector %d%s min_blocks %d\n",
                group, mx_fusion_names[gr->kind], k->tiles.threads, k->tiles.items, k->tiles.channels,
                k->tiles.lanes_per_state, k->tiles.vector, k->tiles.chunked ? " chunked" : "", k->tiles.min_blocks);
    snprintf(k->name, sizeof k->name, "mx_g%d_%s", group, mx_fusion_names[gr->kind]);
    mx_text body = {0};
    mx_emitter e;
    mx_emitter_init(&e, p, group, &body);
    mx_status st = emit(&e, &k->tiles, k, d);
    if (st == MX_OK && body.oom)
        st = mx_fail(d, MX_ERR_NOMEM, "group %d: out of memory for its source", group);
    if (st == MX_OK) {
        char *key = kernel_key(&e, k, &body);
        int same = -1;
        for (int i = 0; i < m->n_kernels && same < 0; i++)
            if (key && seen->key[i] && strcmp(seen->key[i], key) == 0)
                same = i;
        seen->key[m->n_kernels] = key;
        if (same >= 0)
            snprintf(k->name, sizeof k->name, "%s", m->kernels[same].name);
        else
            kernel_text(&e, k, &body, kernels);
        k->floor = floor_of(&e);
        k->n_args = e.n_args;
        k->args = calloc((size_t)e.n_args + 1, sizeof *k->args);
        for (int i = 0; i < e.n_args; i++)
            k->args[i] = (mx_kernel_arg){e.args[i], e.written[i]};
        *used_helpers |= e.helpers;
        m->kernel_of_group[group] = m->n_kernels++;
    }
    mx_emitter_free(&e);
    mx_text_free(&body);
    return st;
}

mx_status mx_codegen(const mx_program *p, const mx_codegen_options *o, mx_module *out, mx_diag *d) {
    memset(out, 0, sizeof *out);
    const mx_graph *g = p->g;
    if (!p->group_of || !p->planned)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: codegen needs a fused and planned program (fuse and plan ran)",
                       g->name);
    mx_module m = {0};
    m.kernels = calloc((size_t)p->n_groups + 1, sizeof *m.kernels);
    m.kernel_of_group = malloc(((size_t)p->n_groups + 1) * sizeof(int));
    if (!m.kernels || !m.kernel_of_group) {
        mx_module_free(&m);
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
    }
    mx_text kernels = {0};
    unsigned used = 0;
    dedup seen = {calloc((size_t)p->n_groups + 1, sizeof(char *))};
    mx_status st = MX_OK;
    for (int k = 0; k < p->n_groups && st == MX_OK; k++) {
        m.kernel_of_group[k] = -1;
        if (p->groups[k].kind == MX_FUSE_MATMUL)
            continue;
        if (p->groups[k].kind == MX_FUSE_SCAN && o->skip_scan) {
            m.n_skipped++;
            continue;
        }
        st = generate(p, o, k, &m, &kernels, &used, &seen, d);
    }
    int n_functions = 0;
    for (int i = 0; i < m.n_kernels; i++) {
        bool first = true;
        for (int j = 0; j < i && first; j++)
            first = strcmp(m.kernels[i].name, m.kernels[j].name) != 0;
        n_functions += first;
        free(seen.key[i]);
    }
    free(seen.key);
    if (st == MX_OK) {
        mx_text_printf(&m.source,
                       "/* %s: generated by mixc %s for sm_%d; %d kernels (%d distinct functions). */\n"
                       "#include \"mixc_prelude.h\"\n",
                       g->name, MIXC_VERSION, o->sm, m.n_kernels, n_functions);
        mx_text_printf(&m.source, "%s", helpers);
        if (used & MX_HELPER_DIAG)
            mx_text_printf(&m.source, "%s", diag_helpers);
        mx_text_append(&m.source, &kernels);
        if (m.source.oom || kernels.oom)
            st = mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory for the module source", g->name);
    }
    mx_text_free(&kernels);
    if (st != MX_OK) {
        mx_module_free(&m);
        return st;
    }
    *out = m;
    return MX_OK;
}
