/* emit_model.c: what the projects of mixc emit share (emit_model.h).
 *
 * The program is compiled here as the target's backend would compile it
 * (the passes, code for the target; one-thread blocks for the CPU), and the
 * walk that runtime/exec.c takes becomes tables: the buffers every step
 * touches, the steps in schedule order, each product as mx_gemm_decode
 * describes it. The weights are what a compiled program holds in its own
 * buffers after binding (params, derived params, consts), read off a load on
 * a device that only stores them. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "embed.h"
#include "emit_model.h"
#include "tune.h"

static const char *const safetensors_dtypes[MX_DTYPE_COUNT] = {"F32", "F16", "BF16"};
static const char *const mxs_dtypes[MX_DTYPE_COUNT] = {"MXS_F32", "MXS_F16", "MXS_BF16"};

/* ---- the storing device: holds buffers, runs nothing ------------------------------------ */

static mx_status store_alloc(void *ctx, size_t bytes, void **out, mx_diag *d) {
    if (!(*out = calloc(1, bytes)))
        return mx_fail(d, MX_ERR_NOMEM, "out of memory for %zu bytes", bytes);
    return MX_OK;
}
static void store_release(void *ctx, void *ptr) { free(ptr); }
static mx_status store_copy(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d) {
    memcpy(dst, src, bytes);
    return MX_OK;
}
static mx_status store_load(void *ctx, const mx_program *p, const mx_module *m, mx_diag *d) { return MX_OK; }
static void store_unload(void *ctx) {}

static const mx_exec_device store_device = {.name = "emit", .alloc = store_alloc, .release = store_release,
                                            .upload = store_copy, .download = store_copy, .load = store_load,
                                            .unload = store_unload};

/* Binds the weights (seeded, or from a file) and inputs (seeded) to the
 * program and loads it on the storing device. */
static mx_status bind_weights(mx_emit_model *pr, const mx_model *model, const mx_emit_options *o, mx_diag *d) {
    mx_buffers *src_b = mx_buffers_new(pr->src), *pb = mx_buffers_new(pr->p->g);
    mx_status st = src_b && pb ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    if (st == MX_OK) {
        mx_buffers_fill_random(src_b, pr->src, o->seed);
        mx_buffers_fill_random(pb, pr->p->g, o->seed);
        if (model)
            mx_model_init_params(model, src_b, o->seed);
        if (o->weights)
            st = mx_weights_load(pr->src, src_b, o->weights, d);
    }
    if (st == MX_OK)
        st = mx_program_bind_init(pr->p, pr->src, src_b, pb, d);
    if (st == MX_OK)
        st = mx_exec_open(pr->p, &pr->m, &store_device, pb, &pr->x, d);
    mx_buffers_free(src_b);
    mx_buffers_free(pb);
    return st;
}

/* ---- buffers ------------------------------------------------------------------------------ */

static bool is_input(const mx_graph *g, int v) { return g->nodes[g->values[v].node].op == MX_OP_INPUT; }

static void use_buffer(mx_emit_model *pr, int v) {
    if (v != MX_NONE && pr->buffer_of[v] < 0) {
        pr->buffer_of[v] = pr->n_buffers;
        pr->values[pr->n_buffers++] = v;
    }
}

/* Every value a step touches, the inputs and the outputs, in first-use order. */
static mx_status collect_buffers(mx_emit_model *pr, mx_diag *d) {
    const mx_program *p = pr->p;
    const mx_graph *g = p->g;
    pr->buffer_of = malloc(((size_t)g->n_values + 1) * sizeof *pr->buffer_of);
    pr->values = malloc(((size_t)g->n_values + 1) * sizeof *pr->values);
    pr->gemms = calloc((size_t)p->n_groups + 1, sizeof *pr->gemms);
    if (!pr->buffer_of || !pr->values || !pr->gemms)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (int v = 0; v < g->n_values; v++)
        pr->buffer_of[v] = -1;
    for (int v = 0; v < g->n_values; v++)
        if (is_input(g, v))
            use_buffer(pr, v);
    for (int k = 0; k < p->n_groups; k++) {
        const mx_kernel *kern = mx_module_kernel(&pr->m, k);
        for (int i = 0; kern && i < kern->n_args; i++)
            use_buffer(pr, kern->args[i].value);
        if (kern)
            continue;
        mx_gemm *gm = &pr->gemms[k];
        MX_TRY(mx_gemm_decode(p, k, gm, d));
        const int vals[] = {gm->a.value, gm->b.value, gm->c.value, gm->y.value, gm->bias};
        for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
            use_buffer(pr, vals[i]);
    }
    for (int i = 0; i < g->n_outputs; i++)
        use_buffer(pr, g->outputs[i]);
    for (int b = 0; b < pr->n_buffers; b++) {
        char label[160];
        int v = pr->values[b];
        if (!mx_exec_value_ptr(pr->x, v))
            return mx_fail(d, MX_ERR_INVALID, "graph %s: %s has no buffer of its own nor in the arena", g->name,
                           mx_node_label(g, g->values[v].node, label, sizeof label));
        if (is_input(g, v) && !g->values[v].name)
            return mx_fail(d, MX_ERR_INVALID, "graph %s: %s: an input needs a name for the C API", g->name,
                           mx_node_label(g, g->values[v].node, label, sizeof label));
    }
    return MX_OK;
}

static bool in_arena(const mx_emit_model *pr, int v) { return pr->p->slots[v].offset >= 0; }

/* A buffer's name: the value's, else "value.N" (a const or an unnamed weight). */
static const char *buffer_name(const mx_emit_model *pr, int v, char *buf, size_t size) {
    const char *name = pr->p->g->values[v].name;
    if (name)
        return name;
    snprintf(buf, size, "value.%d", v);
    return buf;
}

static int64_t numel_of(const mx_graph *g, int v) { return mx_type_numel(mx_value_type(g, v)); }

/* ---- weights.safetensors ------------------------------------------------------------------ */

static bool is_weight(const mx_emit_model *pr, int v) { return !in_arena(pr, v) && !is_input(pr->p->g, v); }

/* The header and, after it, the weights' bytes in buffer order. */
mx_status mx_emit_weights(const mx_emit_model *pr, mx_emit_dir *dir, mx_diag *d) {
    const mx_graph *g = pr->p->g;
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    size_t offset = 0;
    for (int b = 0; ok && b < pr->n_buffers; b++) {
        int v = pr->values[b];
        if (!is_weight(pr, v))
            continue;
        const mx_type *t = mx_value_type(g, v);
        size_t bytes = (size_t)mx_type_numel(t) * mx_dtype_size(t->dtype);
        char name[32];
        cJSON *entry = cJSON_AddObjectToObject(root, buffer_name(pr, v, name, sizeof name));
        cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
        cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
        ok = entry && shape && offsets && cJSON_AddStringToObject(entry, "dtype", safetensors_dtypes[t->dtype]);
        for (int i = 0; ok && i < t->rank; i++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->dim[i]));
        ok = ok && cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset)) &&
             cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    size_t json_len = json ? strlen(json) : 0, header_len = (json_len + 7) & ~(size_t)7;
    char *file = json ? malloc(8 + header_len + offset + 1) : NULL;
    if (!file) {
        cJSON_free(json);
        return mx_fail(d, MX_ERR_NOMEM, "out of memory for the weights");
    }
    for (int i = 0; i < 8; i++)
        file[i] = (char)(header_len >> (8 * i) & 0xFF);
    memcpy(file + 8, json, json_len);
    memset(file + 8 + json_len, ' ', header_len - json_len);
    cJSON_free(json);
    char *at = file + 8 + header_len;
    for (int b = 0; b < pr->n_buffers; b++) {
        int v = pr->values[b];
        if (!is_weight(pr, v))
            continue;
        size_t bytes = (size_t)numel_of(g, v) * mx_dtype_size(mx_value_type(g, v)->dtype);
        memcpy(at, mx_exec_value_ptr(pr->x, v), bytes);
        at += bytes;
    }
    mx_status st = mx_emit_dir_write(dir, "weights.safetensors", file, 8 + header_len + offset, d);
    free(file);
    return st;
}

/* ---- tables ------------------------------------------------------------------------------ */

static void operand_text(const mx_emit_model *pr, const mx_gemm_operand *x, mx_text *t) {
    mx_text_printf(t, "{%d, %lld, %lld, %d, %lld, %lld}", x->value == MX_NONE ? -1 : pr->buffer_of[x->value],
                   (long long)x->offset, (long long)x->ld, x->trans, (long long)x->batch_stride,
                   (long long)x->outer_stride);
}

static void buffers_text(const mx_emit_model *pr, mx_text *t) {
    const mx_graph *g = pr->p->g;
    mx_text_printf(t, "static const mxs_buffer buffers[] = {\n");
    for (int b = 0; b < pr->n_buffers; b++) {
        int v = pr->values[b];
        char name[32], type[96];
        const char *kind = in_arena(pr, v) ? "MXS_ARENA" : is_input(g, v) ? "MXS_INPUT" : "MXS_WEIGHT";
        mx_text_printf(t, "    {\"%s\", %s, %s, %lld, %lld}, /* %d: %s */\n", buffer_name(pr, v, name, sizeof name),
                       kind, mxs_dtypes[mx_value_type(g, v)->dtype], (long long)numel_of(g, v),
                       (long long)(in_arena(pr, v) ? pr->p->slots[v].offset : 0), b,
                       mx_type_str(mx_value_type(g, v), type, sizeof type));
    }
    mx_text_printf(t, "    {0},\n};\n");
}

/* The steps in schedule order and the kernels' buffer arguments. On the GPU
 * a step is a launch (grid, block, shared memory); on the host (host_step)
 * what the C project's launcher takes. */
static void steps_text(const mx_emit_model *pr, mx_emit_host_step host_step, mx_text *t) {
    const mx_program *p = pr->p;
    mx_text args = {0};
    int n_args = 0, n_gemms = 0;
    mx_text_printf(t, "static const mxs_step steps[] = {\n");
    for (int k = 0; k < p->n_groups; k++) {
        const mx_kernel *kern = mx_module_kernel(&pr->m, k);
        if (!kern && host_step)
            mx_text_printf(t, "    {NULL, \"group %d (matmul)\", 0, 0, 0, 0, %d},\n", k, n_gemms++);
        else if (!kern)
            mx_text_printf(t, "    {NULL, \"group %d (matmul)\", {0, 0, 0}, {0, 0, 0}, 0, 0, 0, %d},\n", k, n_gemms++);
        if (!kern)
            continue;
        if (host_step)
            host_step(pr, k, kern, n_args, t);
        else
            mx_text_printf(t, "    {(const void *)%s, \"%s\", {%u, %u, %u}, {%u, %u, %u}, %zu, %d, %d, -1},\n",
                           kern->name, kern->name, kern->grid[0], kern->grid[1], kern->grid[2], kern->block[0],
                           kern->block[1], kern->block[2], kern->smem, n_args, kern->n_args);
        mx_text_printf(&args, "   ");
        for (int i = 0; i < kern->n_args; i++)
            mx_text_printf(&args, " %d,", pr->buffer_of[kern->args[i].value]);
        mx_text_printf(&args, " /* %s */\n", kern->name);
        n_args += kern->n_args;
    }
    mx_text_printf(t, "    {0},\n};\n\nstatic const int args[] = {\n");
    mx_text_append(t, &args);
    mx_text_printf(t, "    -1,\n};\n");
    t->oom |= args.oom;
    mx_text_free(&args);
}

static void gemms_text(const mx_emit_model *pr, mx_text *t) {
    static const char *const acts[] = {"MXS_ACT_NONE", "MXS_ACT_RELU", "MXS_ACT_GELU_TANH"};
    mx_text_printf(t, "static const mxs_gemm gemms[] = {\n");
    for (int k = 0; k < pr->p->n_groups; k++) {
        if (mx_module_kernel(&pr->m, k))
            continue;
        const mx_gemm *gm = &pr->gemms[k];
        mx_text_printf(t, "    {%s, %lld, %lld, %lld, %lld, %lld,\n     ", mxs_dtypes[gm->dtype], (long long)gm->m,
                       (long long)gm->n, (long long)gm->k, (long long)gm->batch, (long long)gm->outer);
        const mx_gemm_operand *ops[] = {&gm->a, &gm->b, &gm->c, &gm->y};
        for (int i = 0; i < 4; i++) {
            operand_text(pr, ops[i], t);
            mx_text_printf(t, ", ");
        }
        mx_text_printf(t, "%d, %s, %d}, /* group %d */\n", gm->bias == MX_NONE ? -1 : pr->buffer_of[gm->bias],
                       acts[gm->act], pr->tiles[k].tasks, k);
    }
    mx_text_printf(t, "    {0},\n};\n");
}

static void desc_text(const mx_emit_model *pr, int n_in, int n_out, mx_text *t) {
    int n_gemms = 0;
    for (int k = 0; k < pr->p->n_groups; k++)
        n_gemms += !mx_module_kernel(&pr->m, k);
    mx_text_printf(t,
                   "\nstatic const mxs_desc desc = {\"%s\", %lldLL, buffers, %d, steps, %d, args, gemms, %d,\n"
                   "                               inputs, outputs, %d, %d};\n\n",
                   pr->p->g->name, (long long)pr->p->arena_bytes, pr->n_buffers, pr->p->n_groups, n_gemms, n_in,
                   n_out);
}

void mx_emit_api_text(const mx_emit_model *pr, mx_text *t) {
    const char *P = pr->prefix;
    mx_text_printf(t,
                   "int %s_create(%s_model **out, char *error, size_t error_size) {\n"
                   "    return mxs_create(&desc, (mxs_model **)out, error, error_size);\n}\n"
                   "int %s_load_weights(%s_model *m, const char *path) { return mxs_load_weights((mxs_model *)m, path); }\n"
                   "int %s_set_input(%s_model *m, const char *name, const float *data, size_t count) {\n"
                   "    return mxs_set_input((mxs_model *)m, name, data, count);\n}\n"
                   "int %s_forward(%s_model *m) { return mxs_forward((mxs_model *)m); }\n"
                   "int %s_get_output(%s_model *m, const char *name, float *data, size_t count) {\n"
                   "    return mxs_get_output((mxs_model *)m, name, data, count);\n}\n"
                   "const char *%s_error(const %s_model *m) { return ((const mxs_model *)m)->error; }\n"
                   "void %s_destroy(%s_model *m) { mxs_destroy((mxs_model *)m); }\n",
                   P, P, P, P, P, P, P, P, P, P, P, P, P, P);
}

/* The model's inputs (role MX_OP_INPUT) or outputs as an mxs_tensor table. */
static int tensors_text(const mx_emit_model *pr, bool outputs, mx_text *t) {
    const mx_graph *g = pr->p->g;
    int n = 0;
    mx_text_printf(t, "static const mxs_tensor %s[] = {\n", outputs ? "outputs" : "inputs");
    for (int b = 0; b < pr->n_buffers; b++) {
        int v = pr->values[b];
        bool is_output = false;
        for (int i = 0; i < g->n_outputs; i++)
            is_output |= g->outputs[i] == v;
        if (outputs ? !is_output : !is_input(g, v))
            continue;
        char name[32];
        mx_text_printf(t, "    {\"%s\", %d},\n", buffer_name(pr, v, name, sizeof name), b);
        n++;
    }
    mx_text_printf(t, "    {0},\n};\n");
    return n;
}

void mx_emit_tables_text(const mx_emit_model *pr, mx_emit_host_step host_step, mx_text *t) {
    buffers_text(pr, t);
    mx_text_printf(t, "\n");
    steps_text(pr, host_step, t);
    mx_text_printf(t, "\n");
    gemms_text(pr, t);
    mx_text_printf(t, "\n");
    int n_in = tensors_text(pr, false, t);
    int n_out = tensors_text(pr, true, t);
    desc_text(pr, n_in, n_out, t);
}

/* ---- model.h and main.c ------------------------------------------------------------------- */

void mx_emit_model_h(const mx_emit_model *pr, const char *where, const char *forward, mx_text *t) {
    const char *P = pr->prefix;
    mx_text_printf(t,
                   "/* model.h: the C API of %s, generated by mixc %s. Every call but destroy\n"
                   " * returns 0, or 1 with the reason in %s_error. Tensors cross it as f32\n"
                   " * (converted to the model's storage type on the way). */\n"
                   "#ifndef %s_MODEL_H\n#define %s_MODEL_H\n\n#include <stddef.h>\n\n"
                   "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
                   "typedef struct %s_model %s_model;\n\n"
                   "/* The model %s. On failure *out is NULL and\n"
                   " * error (error_size bytes; may be NULL) says why. */\n"
                   "int %s_create(%s_model **out, char *error, size_t error_size);\n"
                   "/* Reads every weight from a safetensors file (weights.safetensors). */\n"
                   "int %s_load_weights(%s_model *m, const char *path);\n"
                   "/* Copies count numbers into input name. */\n"
                   "int %s_set_input(%s_model *m, const char *name, const float *data, size_t count);\n"
                   "/* One forward pass (%s); waits for it. */\n"
                   "int %s_forward(%s_model *m);\n"
                   "/* Copies output name (count numbers) after a forward pass. */\n"
                   "int %s_get_output(%s_model *m, const char *name, float *data, size_t count);\n"
                   "const char *%s_error(const %s_model *m);\n"
                   "void %s_destroy(%s_model *m);\n\n"
                   "#ifdef __cplusplus\n}\n#endif\n#endif\n",
                   pr->p->g->name, MIXC_VERSION, P, P, P, P, P, where, P, P, P, P, P, P, forward, P, P, P, P, P, P, P,
                   P);
}

/* V when value v (of the source graph) is the ids of an embedding, else 0:
 * mixc draws whole numbers in [0, V) for those. */
static int64_t ids_vocab(const mx_graph *g, int v) {
    for (int node = 0; node < g->n_nodes; node++)
        if (g->nodes[node].op == MX_OP_EMBEDDING && mx_node_input(g, node, 1) == v)
            return mx_node_input_type(g, node, 0)->dim[0];
    return 0;
}

static const char example_body[] =
    "/* mixc's seeded numbers: a splitmix64 stream per input, keyed by the FNV-1a\n"
    " * hash of its name, on an even grid of [-1, 1) as fine as the dtype at 1. */\n"
    "static uint64_t mix64(uint64_t z) {\n"
    "    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;\n"
    "    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;\n"
    "    return z ^ (z >> 31);\n}\n\n"
    "static void fill(float *x, long long n, const char *name, int bits, long long vocab, uint64_t seed) {\n"
    "    uint64_t key = 0xCBF29CE484222325ull;\n"
    "    for (const char *c = name; *c; c++)\n"
    "        key = (key ^ (unsigned char)*c) * 0x100000001B3ull;\n"
    "    uint64_t state = mix64(seed ^ mix64(key + 1));\n"
    "    for (long long i = 0; i < n; i++) {\n"
    "        state += 0x9E3779B97F4A7C15ull;\n"
    "        x[i] = (float)((double)(mix64(state) >> (64 - bits)) * ldexp(1.0, 1 - bits) - 1);\n"
    "        if (vocab)\n"
    "            x[i] = (float)floor(((double)x[i] + 1) / 2 * (double)vocab);\n"
    "    }\n}\n\n"
    "/* Each output as `mixc run` prints it: shape, checksum (sum of x[i] * (1 + i mod 7)\n"
    " * in f64), min, max, mean. */\n"
    "static void summarise(const char *name, const char *dims, const float *x, long long n) {\n"
    "    double checksum = 0, sum = 0, lo = INFINITY, hi = -INFINITY;\n"
    "    for (long long i = 0; i < n; i++) {\n"
    "        checksum += (double)x[i] * (double)(1 + i % 7);\n"
    "        sum += x[i];\n"
    "        lo = fmin(lo, x[i]);\n"
    "        hi = fmax(hi, x[i]);\n"
    "    }\n"
    "    printf(\"%%%s [%s]  checksum=%.9g  min=%.6g  max=%.6g  mean=%.6g\\n\", name, dims, checksum, lo, hi,\n"
    "           n ? sum / (double)n : 0);\n}\n\n"
    "static double now_ms(void) {\n"
    "    struct timespec ts;\n"
    "    clock_gettime(CLOCK_MONOTONIC, &ts);\n"
    "    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;\n}\n\n"
    "static int by_value(const void *a, const void *b) {\n"
    "    double x = *(const double *)a, y = *(const double *)b;\n"
    "    return (x > y) - (x < y);\n}\n\n";

void mx_emit_main_c(const mx_emit_model *pr, const mx_emit_options *o, mx_text *t) {
    const mx_graph *g = pr->p->g;
    const char *P = pr->prefix;
    static const int grid_bits[MX_DTYPE_COUNT] = {24, 11, 8};
    mx_text_printf(t,
                   "/* main.c: %s once on seeded inputs, generated by mixc %s.\n"
                   " *     ./example [SEED [WEIGHTS [RUNS]]]     (defaults: %llu, weights.safetensors, 0)\n"
                   " * prints each output as `mixc run` does for the same seed, then times RUNS\n"
                   " * more forward passes (median and min wall time). */\n"
                   "#define _POSIX_C_SOURCE 200809L\n"
                   "#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <time.h>\n\n"
                   "#include \"model.h\"\n\n",
                   g->name, MIXC_VERSION, (unsigned long long)o->seed);
    mx_text_printf(t, "static const struct {\n    const char *name;\n    long long numel;\n    int bits;\n"
                      "    long long vocab;\n} inputs[] = {\n");
    for (int b = 0; b < pr->n_buffers; b++) {
        int v = pr->values[b];
        if (!is_input(g, v))
            continue;
        int sv = mx_graph_value_find(pr->src, g->values[v].name);
        mx_text_printf(t, "    {\"%s\", %lld, %d, %lld},\n", g->values[v].name, (long long)numel_of(g, v),
                       grid_bits[mx_value_type(g, v)->dtype], (long long)(sv >= 0 ? ids_vocab(pr->src, sv) : 0));
    }
    mx_text_printf(t, "    {0},\n};\n\nstatic const struct {\n    const char *name, *dims;\n    long long numel;\n"
                      "} outputs[] = {\n");
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        const mx_type *ty = mx_value_type(g, v);
        char name[32], dims[128] = "";
        for (int k = 0, at = 0; k < ty->rank; k++)
            at += snprintf(dims + at, sizeof dims - (size_t)at, k ? ",%lld" : "%lld", (long long)ty->dim[k]);
        mx_text_printf(t, "    {\"%s\", \"%s\", %lld},\n", buffer_name(pr, v, name, sizeof name), dims,
                       (long long)numel_of(g, v));
    }
    mx_text_printf(t, "    {0},\n};\n\n%s", example_body);
    mx_text_printf(t,
                   "int main(int argc, char **argv) {\n"
                   "    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : %lluull;\n"
                   "    const char *weights = argc > 2 ? argv[2] : \"weights.safetensors\";\n"
                   "    char error[512];\n"
                   "    %s_model *m;\n"
                   "    if (%s_create(&m, error, sizeof error)) {\n"
                   "        fprintf(stderr, \"%%s\\n\", error);\n"
                   "        return 1;\n    }\n"
                   "    int failed = %s_load_weights(m, weights);\n"
                   "    for (int i = 0; !failed && inputs[i].name; i++) {\n"
                   "        float *x = malloc((size_t)inputs[i].numel * sizeof *x + 1);\n"
                   "        if (!x) {\n            fprintf(stderr, \"out of memory\\n\");\n"
                   "            %s_destroy(m);\n            return 1;\n        }\n"
                   "        fill(x, inputs[i].numel, inputs[i].name, inputs[i].bits, inputs[i].vocab, seed);\n"
                   "        failed = %s_set_input(m, inputs[i].name, x, (size_t)inputs[i].numel);\n"
                   "        free(x);\n    }\n"
                   "    failed = failed || %s_forward(m);\n"
                   "    for (int i = 0; !failed && outputs[i].name; i++) {\n"
                   "        float *y = malloc((size_t)outputs[i].numel * sizeof *y + 1);\n"
                   "        failed = !y || %s_get_output(m, outputs[i].name, y, (size_t)outputs[i].numel);\n"
                   "        if (!failed)\n"
                   "            summarise(outputs[i].name, outputs[i].dims, y, outputs[i].numel);\n"
                   "        free(y);\n    }\n"
                   "    int runs = argc > 3 ? atoi(argv[3]) : 0;\n"
                   "    double *ms = runs > 0 && !failed ? malloc((size_t)runs * sizeof *ms) : NULL;\n"
                   "    for (int i = 0; ms && !failed && i < runs; i++) {\n"
                   "        double t0 = now_ms();\n"
                   "        failed = %s_forward(m);\n"
                   "        ms[i] = now_ms() - t0;\n    }\n"
                   "    if (ms && !failed) {\n"
                   "        qsort(ms, (size_t)runs, sizeof *ms, by_value);\n"
                   "        printf(\"forward: median %%.3f ms, min %%.3f ms over %%d runs\\n\", ms[runs / 2], ms[0], runs);\n"
                   "    }\n"
                   "    free(ms);\n"
                   "    if (failed)\n        fprintf(stderr, \"%%s\\n\", %s_error(m));\n"
                   "    %s_destroy(m);\n"
                   "    return failed;\n}\n",
                   (unsigned long long)o->seed, P, P, P, P, P, P, P, P, P, P);
}

/* ---- files ------------------------------------------------------------------------------- */

mx_status mx_emit_module_text(const mx_emit_model *pr, const char *prelude_path, mx_text *t, mx_diag *d) {
    static const char include[] = "#include \"mixc_prelude.h\"\n";
    const char *prelude = mx_embedded_text(prelude_path);
    const char *src = pr->m.source.s, *at = src ? strstr(src, include) : NULL;
    if (!prelude || !at)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: the module does not include the prelude", pr->p->g->name);
    mx_text_printf(t, "%.*s%s%s", (int)(at - src), src, prelude, at + strlen(include));
    return MX_OK;
}

mx_status mx_emit_write_text(mx_emit_dir *dir, const char *name, mx_text *t, mx_diag *d) {
    mx_status st = t->oom || !t->s ? mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", name)
                                   : mx_emit_dir_write(dir, name, t->s, t->len, d);
    mx_text_free(t);
    return st;
}

mx_status mx_emit_write_embedded(mx_emit_dir *dir, const char *path, mx_diag *d) {
    const char *text = mx_embedded_text(path);
    const char *base = strrchr(path, '/');
    if (!text)
        return mx_fail(d, MX_ERR_INVALID, "%s is not embedded in this mixc", path);
    return mx_emit_dir_write(dir, base ? base + 1 : path, text, strlen(text), d);
}

/* ---- the model ---------------------------------------------------------------------------- */

/* "vim2-tiny" -> "vim2_tiny"; a leading digit gets "m_". */
static void identifier(const char *name, char *out, size_t size) {
    size_t at = 0;
    if (!isalpha((unsigned char)name[0]) && name[0] != '_')
        at = (size_t)snprintf(out, size, "m_");
    for (; *name && at + 1 < size; name++)
        out[at++] = isalnum((unsigned char)*name) ? *name : '_';
    out[at] = 0;
}

void mx_emit_model_free(mx_emit_model *pr) {
    mx_exec_close(pr->x);
    free(pr->buffer_of), free(pr->values), free(pr->gemms), free(pr->tiles);
    mx_module_free(&pr->m);
    mx_program_free(pr->p);
    memset(pr, 0, sizeof *pr);
}

/* pr->tiles_from: how many kernels (on the CPU, products too: their split)
 * run the tuning database's winners rather than the device's defaults
 * (mx_tune_tiles chose tiles). */
static void tiles_origin(mx_emit_model *pr, const mx_target *t, const mx_tiles *tiles) {
    const mx_program *p = pr->p;
    int kernels = 0, tuned = 0;
    for (int g = 0; g < p->n_groups; g++) {
        if (!mx_tune_has_knobs(p, t, g))
            continue;
        mx_tiles defaults = mx_tune_default_tiles(p, t, g);
        kernels++;
        tuned += memcmp(&defaults, &tiles[g], sizeof defaults) != 0;
    }
    const char *off = getenv("MIXC_NO_TUNE");
    char db[1024];
    if (off && *off && strcmp(off, "0") != 0)
        snprintf(pr->tiles_from, sizeof pr->tiles_from, "%s's default tiles (MIXC_NO_TUNE set)", t->name);
    else if (tuned == 0)
        snprintf(pr->tiles_from, sizeof pr->tiles_from,
                 "%s's default tiles (the tuning database has no winner for these kernels)", t->name);
    else
        snprintf(pr->tiles_from, sizeof pr->tiles_from,
                 "tiles of the tuning database %s for %d of %d %s, %s's defaults for the rest",
                 mx_tune_db_path(db, sizeof db) ? db : "", tuned, kernels,
                 t->device == MX_DEVICE_CPU ? "kernels and products" : "kernels", t->name);
}

mx_status mx_emit_model_build(mx_emit_model *pr, const mx_graph *g, const mx_model *model, const mx_target *t,
                              const mx_emit_options *o, mx_diag *d) {
    memset(pr, 0, sizeof *pr);
    pr->src = g, pr->target = t;
    pr->p = mx_program_new(mx_graph_clone(g));
    mx_status st = pr->p ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    if (st == MX_OK) {
        mx_pass_options po;
        pr->p->target = t;
        st = mx_pass_options_from_env(&po, d);
        if (st == MX_OK)
            st = mx_program_run_passes(pr->p, &po, d);
    }
    mx_tiles *tiles = NULL;
    mx_codegen_options co;
    if (st == MX_OK)
        st = mx_backend_codegen_options(t, pr->p, &(mx_backend_options){0}, &co, &tiles, d);
    if (st == MX_OK) {
        tiles_origin(pr, t, tiles);
        st = mx_codegen(pr->p, &co, &pr->m, d);
    }
    pr->tiles = tiles;
    if (st == MX_OK)
        st = bind_weights(pr, model, o, d);
    if (st == MX_OK)
        st = collect_buffers(pr, d);
    if (st == MX_OK)
        identifier(g->name, pr->prefix, sizeof pr->prefix);
    else
        mx_emit_model_free(pr);
    return st;
}

/* ---- the project ---------------------------------------------------------------------------- */

mx_status mx_emit_project(const mx_graph *g, const mx_model *model, const char *dir, const mx_emit_options *o,
                          const mx_emit_backend *b, mx_diag *d) {
    mx_target tg;
    MX_TRY(b->target(o, &tg, d));
    mx_emit_dir out;
    MX_TRY(mx_emit_dir_open(dir, o->force, &out, d));
    mx_emit_model pr;
    mx_status st = mx_emit_model_build(&pr, g, model, &tg, o, d);
    if (st != MX_OK) {
        mx_emit_dir_abort(&out);
        return st;
    }
    for (int i = 0; st == MX_OK && b->headers[i]; i++)
        st = mx_emit_write_embedded(&out, b->headers[i], d);
    mx_text t = {0};
    if (st == MX_OK) {
        mx_emit_model_h(&pr, b->where, b->forward, &t);
        st = mx_emit_write_text(&out, "model.h", &t, d);
    }
    if (st == MX_OK) {
        mx_emit_main_c(&pr, o, &t);
        st = mx_emit_write_text(&out, "main.c", &t, d);
    }
    if (st == MX_OK)
        st = mx_emit_weights(&pr, &out, d);
    if (st == MX_OK)
        st = b->write(&pr, &tg, &out, d);
    mx_emit_model_free(&pr);
    if (st == MX_OK)
        return mx_emit_dir_commit(&out, d);
    mx_emit_dir_abort(&out);
    return st;
}
