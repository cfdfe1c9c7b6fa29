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

static const char helpers_text[] =
    "\n/* 2^x, a scan's decay exp2(d * A * log2 e): one ex2.approx instruction on\n"
    " * the GPU (d * A <= 0, so no overflow; results under 2^-126 flush to 0),\n"
    " * exp2f on the host. */\n"
    "#if defined(__CUDACC_RTC__) || defined(__CUDACC__)\n"
    "static __device__ __forceinline__ float mx_ex2(float x) {\n"
    "    float y;\n"
    "    asm(\"ex2.approx.ftz.f32 %0, %1;\" : \"=f\"(y) : \"f\"(x));\n"
    "    return y;\n"
    "}\n"
    "#else\n"
    "static __device__ __forceinline__ float mx_ex2(float x) { return exp2f(x); }\n"
    "#endif\n"
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
    for (int q = 0; q < m->n_programs; q++)
        mx_text_free(&m->programs[q]);
    free(m->programs);
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
 * and body (identical blocks of a stage generate identical kernels, and
 * bodies hold nothing node-specific; the module keeps one, NVRTC time being
 * per function). */
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
    if (key.oom) {
        mx_text_free(&key);
        return NULL;
    }
    return key.s;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The distinct functions of a module, found by key in an open-addressing
 * table (a linear scan of every earlier kernel made deep models quadratic). */
typedef struct {
    char *key;
    uint64_t hash;
    int kernel;       /* the first kernel with this function */
    mx_text text;     /* its definition */
    unsigned helpers; /* MX_HELPER_* it calls */
    int program;
} function;

typedef struct {
    function *fn;
    int n, cap; /* cap: a power of two above the function count */
    int *slot;  /* 2 * cap entries: a function index or -1 */
} function_set;

static int function_find(const function_set *fs, const char *key, uint64_t h) {
    for (size_t i = h & (2 * (size_t)fs->cap - 1);; i = (i + 1) & (2 * (size_t)fs->cap - 1)) {
        int f = fs->slot[i];
        if (f < 0 || (fs->fn[f].hash == h && strcmp(fs->fn[f].key, key) == 0))
            return f;
    }
}

/* Group k's kernel into m; its function into fs unless an identical one is there. */
static mx_status generate(const mx_program *p, const mx_codegen_options *o, const mx_emit_shared *shared,
                          int group, mx_module *m, function_set *fs, mx_diag *d) {
    const mx_group *gr = &p->groups[group];
    emit_fn emit = emitter_of(gr->kind);
    if (!emit)
        return mx_fail(d, MX_ERR_INVALID, "group %d: no emitter for kind %s", group, mx_fusion_names[gr->kind]);
    mx_kernel *k = &m->kernels[m->n_kernels];
    memset(k, 0, sizeof *k);
    k->group = group;
    k->kind = gr->kind;
    k->tiles = o->tiles && o->tiles[group].threads > 0 ? o->tiles[group] : mx_tiles_default(p, group, o->target);
    if (mx_debug_level() >= 3)
        fprintf(stderr, "mixc: group %d (%s): threads %d items %d channels %d lanes %d vector %d%s min_blocks %d\n",
                group, mx_fusion_names[gr->kind], k->tiles.threads, k->tiles.items, k->tiles.channels,
                k->tiles.lanes_per_state, k->tiles.vector, k->tiles.chunked ? " chunked" : "", k->tiles.min_blocks);
    snprintf(k->name, sizeof k->name, "mx_g%d_%s", group, mx_fusion_names[gr->kind]);
    mx_text body = {0};
    mx_emitter e;
    mx_emitter_init_shared(&e, p, o->target, group, &body, shared);
    e.options = o;
    mx_status st = emit(&e, &k->tiles, k, d);
    char *key = NULL;
    if (st == MX_OK && !body.oom)
        key = kernel_key(&e, k, &body);
    if (st == MX_OK && !key)
        st = mx_fail(d, MX_ERR_NOMEM, "group %d: out of memory for its source", group);
    k->args = st == MX_OK ? calloc((size_t)e.n_args + 1, sizeof *k->args) : NULL;
    if (st == MX_OK && !k->args)
        st = mx_fail(d, MX_ERR_NOMEM, "group %d: out of memory", group);
    if (st == MX_OK) {
        uint64_t h = hash_str(key);
        k->identity = h;
        int f = function_find(fs, key, h);
        if (f >= 0) {
            snprintf(k->name, sizeof k->name, "%s", m->kernels[fs->fn[f].kernel].name);
            free(key);
        } else {
            f = fs->n++;
            fs->fn[f] = (function){.key = key, .hash = h, .kernel = m->n_kernels, .helpers = e.helpers};
            kernel_text(&e, k, &body, &fs->fn[f].text);
            for (size_t i = h & (2 * (size_t)fs->cap - 1);; i = (i + 1) & (2 * (size_t)fs->cap - 1))
                if (fs->slot[i] < 0) {
                    fs->slot[i] = f;
                    break;
                }
        }
        k->program = f; /* the function, until assemble deals the programs */
        k->floor = floor_of(&e);
        k->n_args = e.n_args;
        for (int i = 0; i < e.n_args; i++)
            k->args[i] = (mx_kernel_arg){e.args[i], e.written[i]};
        m->kernel_of_group[group] = m->n_kernels++;
    } else {
        free(key);
    }
    mx_emitter_free(&e);
    mx_text_free(&body);
    return st;
}

/* The programs: functions dealt, heaviest first, to the lightest program so
 * far (NVRTC time grows with a function's text; scans, whose loops unroll,
 * weigh more), so that compiling them in parallel takes about the time of
 * the heaviest. Each function keeps its module order inside its program. */
static int deal_programs(function_set *fs, int want) {
    int n = want < fs->n ? want : fs->n;
    double load[MX_CODEGEN_MAX_PROGRAMS] = {0};
    bool *dealt = calloc((size_t)fs->n + 1, sizeof(bool));
    if (!dealt)
        return -1;
    for (int round = 0; round < fs->n; round++) {
        int heaviest = -1;
        for (int f = 0; f < fs->n; f++)
            if (!dealt[f] && (heaviest < 0 || fs->fn[f].text.len > fs->fn[heaviest].text.len))
                heaviest = f;
        int lightest = 0;
        for (int q = 1; q < n; q++)
            if (load[q] < load[lightest])
                lightest = q;
        dealt[heaviest] = true;
        fs->fn[heaviest].program = lightest;
        load[lightest] += (double)fs->fn[heaviest].text.len;
    }
    free(dealt);
    return n;
}

static void module_head(mx_text *t, const mx_program *p, const mx_codegen_options *o, const char *what,
                        int n_kernels, int n_functions, unsigned helpers) {
    mx_text_printf(t,
                   "/* %s%s: generated by mixc %s for sm_%d (%s); %d kernels (%d distinct functions). */\n"
                   "#include \"mixc_prelude.h\"\n",
                   p->g->name, what, MIXC_VERSION, o->target->sm, o->target->name, n_kernels, n_functions);
    mx_text_printf(t, "%s", helpers_text);
    if (helpers & MX_HELPER_DIAG)
        mx_text_printf(t, "%s", diag_helpers);
}

/* The whole module and its programs from the distinct functions. */
static mx_status assemble(const mx_program *p, const mx_codegen_options *o, function_set *fs, mx_module *m,
                          mx_diag *d) {
    unsigned used = 0;
    for (int f = 0; f < fs->n; f++)
        used |= fs->fn[f].helpers;
    module_head(&m->source, p, o, "", m->n_kernels, fs->n, used);
    for (int f = 0; f < fs->n; f++)
        mx_text_append(&m->source, &fs->fn[f].text);
    int want = o->programs > 0 ? o->programs : MX_CODEGEN_PROGRAMS;
    bool per_function = o->programs == MX_CODEGEN_PER_FUNCTION;
    if (!per_function && want > MX_CODEGEN_MAX_PROGRAMS)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: %d programs asked, at most %d", p->g->name, want,
                       MX_CODEGEN_MAX_PROGRAMS);
    m->n_programs = per_function ? fs->n : deal_programs(fs, want);
    for (int f = 0; per_function && f < fs->n; f++)
        fs->fn[f].program = f;
    m->programs = m->n_programs > 0 ? calloc((size_t)m->n_programs, sizeof *m->programs) : NULL;
    if (m->n_programs < 0 || (m->n_programs > 0 && !m->programs))
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", p->g->name);
    bool oom = m->source.oom;
    for (int q = 0; q < m->n_programs; q++) {
        unsigned uses = 0;
        int kernels = 0, functions = 0;
        for (int f = 0; f < fs->n; f++)
            if (fs->fn[f].program == q)
                uses |= fs->fn[f].helpers, functions++;
        for (int i = 0; i < m->n_kernels; i++)
            kernels += fs->fn[m->kernels[i].program].program == q;
        char what[96]; /* per function, only what the function decides: its object is cached by this text */
        if (per_function)
            snprintf(what, sizeof what, ", %s", m->kernels[fs->fn[q].kernel].name);
        else
            snprintf(what, sizeof what, ", program %d of %d", q + 1, m->n_programs);
        module_head(&m->programs[q], p, o, what, kernels, functions, uses);
        for (int f = 0; f < fs->n; f++)
            if (fs->fn[f].program == q)
                mx_text_append(&m->programs[q], &fs->fn[f].text);
        oom |= m->programs[q].oom;
    }
    for (int i = 0; i < m->n_kernels; i++) /* from the function's index to its program's */
        m->kernels[i].program = fs->fn[m->kernels[i].program].program;
    if (oom)
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory for the module source", p->g->name);
    return MX_OK;
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
    function_set fs = {.cap = 1};
    while (fs.cap <= p->n_groups) /* a power of two: the table's index is a mask */
        fs.cap *= 2;
    fs.fn = calloc((size_t)fs.cap, sizeof *fs.fn);
    fs.slot = malloc(2 * (size_t)fs.cap * sizeof(int));
    mx_status st = MX_OK;
    if (!m.kernels || !m.kernel_of_group || !fs.fn || !fs.slot)
        st = mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
    for (int i = 0; fs.slot && i < 2 * fs.cap; i++)
        fs.slot[i] = -1;
    mx_emit_shared shared;
    mx_emit_shared_init(&shared, p);
    for (int k = 0; k < p->n_groups && st == MX_OK; k++) {
        m.kernel_of_group[k] = -1;
        if (p->groups[k].kind == MX_FUSE_MATMUL)
            continue;
        if (p->groups[k].kind == MX_FUSE_SCAN && o->skip_scan) {
            m.n_skipped++;
            continue;
        }
        st = generate(p, o, &shared, k, &m, &fs, d);
    }
    mx_emit_shared_free(&shared);
    if (st == MX_OK)
        st = assemble(p, o, &fs, &m, d);
    for (int f = 0; f < fs.n; f++) {
        free(fs.fn[f].key);
        mx_text_free(&fs.fn[f].text);
    }
    free(fs.fn);
    free(fs.slot);
    if (st != MX_OK) {
        mx_module_free(&m);
        return st;
    }
    *out = m;
    return MX_OK;
}
