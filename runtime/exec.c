/* exec.c: the walk over a planned program's groups (exec.h), and the host
 * emulation device.
 *
 * Values live in three places: the arena (every materialised activation, at
 * its planned offset, in its dtype), a buffer of its own (an input, a param,
 * a const, a weight computed when uploading: in its dtype), or nowhere
 * (computed inside a kernel). */
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "exec.h"
#include "gemm.h"
#include "half.h"
#include "uses.h"

struct mx_exec {
    const mx_program *p;
    const mx_module *m;
    const mx_exec_device *dev;
    bool loaded;    /* dev->load succeeded */
    void *arena;
    void **ptr;     /* per value: its device buffer, or NULL */
    bool *own;      /* per value: a source or weight, in a buffer of its own */
    bool *alias;    /* per value: of those, one read where upload's buffers hold it */
    bool reads_caller; /* some are */
    bool uploaded;
    void **arg;     /* every kernel's buffer arguments, back to back */
    void **params;  /* per argument: &arg[i], cuLaunchKernel's kernelParams */
    int *first_arg; /* per group: its kernel's first argument in arg / params */
};

void *mx_exec_value_ptr(const mx_exec *x, int v) { return x->ptr[v]; }

/* ---- storage conversions ----------------------------------------------------------- */

void mx_storage_pack(mx_dtype t, const float *x, int64_t n, void *out) {
    if (t == MX_F32) {
        memcpy(out, x, (size_t)n * sizeof(float));
        return;
    }
    uint16_t *h = out;
    for (int64_t i = 0; i < n; i++)
        h[i] = t == MX_F16 ? mx_f32_to_f16(x[i]) : mx_f32_to_bf16(x[i]);
}

void mx_storage_unpack(mx_dtype t, const void *in, int64_t n, float *x) {
    if (t == MX_F32) {
        memcpy(x, in, (size_t)n * sizeof(float));
        return;
    }
    const uint16_t *h = in;
    for (int64_t i = 0; i < n; i++)
        x[i] = t == MX_F16 ? mx_f16_to_f32(h[i]) : mx_bf16_to_f32(h[i]);
}

static size_t bytes_of(const mx_graph *g, int v) {
    const mx_type *t = mx_value_type(g, v);
    return (size_t)mx_type_numel(t) * mx_dtype_size(t->dtype);
}

static const char *label_of(const mx_graph *g, int v, char *buf, size_t size) {
    return mx_node_label(g, g->values[v].node, buf, size);
}

/* ---- sources and weights ------------------------------------------------------------- */

/* Runs node with the reference: inputs from in (NULL where absent), fresh
 * outputs into out[v], each rounded to its dtype as the interpreter does. */
static mx_status ref_node(const mx_graph *g, int node, const float *const *in, float **out, mx_diag *d) {
    const mx_node *n = &g->nodes[node];
    float *outs[16];
    for (int i = 0; i < n->n_out; i++) {
        int v = n->first_out + i;
        int64_t numel = mx_type_numel(mx_value_type(g, v));
        outs[i] = out[v] = malloc((size_t)(numel ? numel : 1) * sizeof(float));
        if (!outs[i]) {
            char label[160];
            return mx_fail(d, MX_ERR_NOMEM, "node %s: out of memory", mx_node_label(g, node, label, sizeof label));
        }
    }
    mx_ops[n->op].ref(g, node, in, outs);
    for (int i = 0; i < n->n_out; i++) {
        const mx_type *t = mx_value_type(g, n->first_out + i);
        for (int64_t e = 0, numel = mx_type_numel(t); t->dtype != MX_F32 && e < numel; e++)
            outs[i][e] = mx_round_to(t->dtype, outs[i][e]);
    }
    return MX_OK;
}

/* The f32 data of every value with a buffer of its own: b's inputs and
 * params; consts and param-only computations (left in the graph when fold
 * did not run) by the reference, marked in computed[]. */
static mx_status bind_host(const mx_exec *x, const mx_buffers *b, float **host, bool *computed, mx_diag *d) {
    const mx_graph *g = x->p->g;
    for (int n = 0; n < g->n_nodes; n++) {
        const mx_node *node = &g->nodes[n];
        int v = node->first_out;
        if (node->n_out == 0 || !x->own[v])
            continue;
        if (node->op == MX_OP_INPUT || node->op == MX_OP_PARAM) {
            char label[160];
            if (!(host[v] = b->data[v]))
                return mx_fail(d, MX_ERR_INVALID, "graph %s: no data for %s", g->name,
                               mx_node_label(g, n, label, sizeof label));
            continue;
        }
        const float *in[66] = {0};
        for (int i = 0; i < node->n_in; i++) {
            int w = mx_node_input(g, n, i);
            in[i] = w == MX_NONE ? NULL : host[w];
        }
        for (int i = 0; i < node->n_out; i++)
            computed[v + i] = true;
        MX_TRY(ref_node(g, n, in, host, d));
    }
    return MX_OK;
}

/* Writes n f32 numbers, converted to value v's dtype, into its buffer (f32
 * straight from src: a staged copy of a model's weights would double what
 * the host holds while uploading). */
static mx_status put(mx_exec *x, int v, const float *src, mx_diag *d) {
    const mx_graph *g = x->p->g;
    size_t bytes = bytes_of(g, v);
    if (mx_value_type(g, v)->dtype == MX_F32)
        return x->dev->upload(x->dev->ctx, x->ptr[v], src, bytes, d);
    void *staged = malloc(bytes + 1);
    if (!staged)
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
    mx_storage_pack(mx_value_type(g, v)->dtype, src, mx_type_numel(mx_value_type(g, v)), staged);
    mx_status st = x->dev->upload(x->dev->ctx, x->ptr[v], staged, bytes, d);
    free(staged);
    return st;
}

static mx_status fill_args(mx_exec *x, mx_diag *d);

mx_status mx_exec_upload(mx_exec *x, const mx_buffers *b, mx_diag *d) {
    const mx_graph *g = x->p->g;
    if (b->count != g->n_values)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: the buffers were made for another graph", g->name);
    size_t n = (size_t)g->n_values + 1;
    float **host = calloc(n, sizeof *host);
    bool *computed = calloc(n, sizeof *computed);
    mx_status st = host && computed ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    if (st == MX_OK)
        st = bind_host(x, b, host, computed, d);
    for (int v = 0; st == MX_OK && v < g->n_values; v++)
        if (x->alias[v])
            x->ptr[v] = host[v];
        else if (x->own[v])
            st = put(x, v, host[v], d);
    if (st == MX_OK)
        st = fill_args(x, d);
    x->uploaded = st == MX_OK;
    for (int v = 0; computed && v < g->n_values; v++)
        if (computed[v])
            free(host[v]);
    free(host);
    free(computed);
    return st;
}

/* ---- opening and closing ------------------------------------------------------------- */

/* dev->alloc, its failure prefixed with what the memory was for. */
static mx_status alloc_for(const mx_exec_device *dev, size_t bytes, const char *purpose, void **out, mx_diag *d) {
    mx_diag why;
    mx_status st = dev->alloc(dev->ctx, bytes, out, &why);
    return st == MX_OK ? MX_OK : mx_fail(d, st, "cannot allocate %s on %s: %s", purpose, dev->name, why.msg);
}

/* Device buffers: the arena's slots, and one per source and weight. A weight
 * that is a folded view (fold's transposed A read back through a permute)
 * gets none: kernels and matmuls read its base through the view's map. */
static mx_status place(mx_exec *x, mx_diag *d) {
    const mx_program *p = x->p;
    const mx_graph *g = p->g;
    const mx_exec_device *dev = x->dev;
    char purpose[200];
    snprintf(purpose, sizeof purpose, "the activation arena of graph %s", g->name);
    MX_TRY(alloc_for(dev, (size_t)p->arena_bytes + 1, purpose, &x->arena, d));
    mx_uses u;
    mx_uses_init(&u, g);
    mx_status st = MX_OK;
    for (int v = 0; st == MX_OK && v < g->n_values; v++) {
        int n = g->values[v].node;
        if (p->slots[v].offset >= 0) {
            x->ptr[v] = (char *)x->arena + p->slots[v].offset;
        } else if (mx_ops[g->nodes[n].op].fusion == MX_FUSE_SOURCE || (u.weight[n] && !mx_view_folded(p, n))) {
            x->own[v] = true;
            mx_op op = g->nodes[n].op;
            /* not a graph output: download would copy it onto itself */
            x->alias[v] = dev->reads_host && (op == MX_OP_INPUT || op == MX_OP_PARAM) &&
                          mx_value_type(g, v)->dtype == MX_F32 && !u.output[v];
            x->reads_caller |= x->alias[v];
            if (x->alias[v])
                continue;
            char label[160];
            snprintf(purpose, sizeof purpose, "the buffer of %s", label_of(g, v, label, sizeof label));
            st = alloc_for(dev, bytes_of(g, v) + 1, purpose, &x->ptr[v], d);
        }
    }
    mx_uses_free(&u);
    return st;
}

/* Every kernel's buffer arguments from x->ptr; one read where upload's
 * buffers hold it has none before the first upload. */
static mx_status fill_args(mx_exec *x, mx_diag *d) {
    const mx_program *p = x->p;
    for (int k = 0; k < p->n_groups; k++) {
        const mx_kernel *kern = mx_module_kernel(x->m, k);
        for (int i = 0, a = x->first_arg[k]; kern && i < kern->n_args; i++, a++) {
            int v = kern->args[i].value;
            char label[160];
            if (!(x->arg[a] = x->ptr[v]) && !(x->alias[v] && !x->uploaded))
                return mx_fail(d, MX_ERR_INVALID, "kernel %s: argument %d (%s) has no buffer", kern->name, i,
                               label_of(p->g, v, label, sizeof label));
        }
    }
    return MX_OK;
}

/* The kernelParams of every kernel: pointers to its entries of x->arg,
 * fixed for the life of the exec; fill_args writes the entries. */
static mx_status bind_args(mx_exec *x, mx_diag *d) {
    const mx_program *p = x->p;
    int n_args = 0;
    for (int k = 0; k < p->n_groups; k++) {
        const mx_kernel *kern = mx_module_kernel(x->m, k);
        if (!kern && p->groups[k].kind != MX_FUSE_MATMUL)
            return mx_fail(d, MX_ERR_INVALID,
                           "group %d (%s) has no kernel in the module (left out when it was generated)", k,
                           mx_fusion_names[p->groups[k].kind]);
        n_args += kern ? kern->n_args : 0;
    }
    x->arg = calloc((size_t)n_args + 1, sizeof *x->arg);
    x->params = calloc((size_t)n_args + 1, sizeof *x->params);
    x->first_arg = calloc((size_t)p->n_groups + 1, sizeof *x->first_arg);
    if (!x->arg || !x->params || !x->first_arg)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (int k = 0, a = 0; k < p->n_groups; k++) {
        const mx_kernel *kern = mx_module_kernel(x->m, k);
        x->first_arg[k] = a;
        for (int i = 0; kern && i < kern->n_args; i++, a++)
            x->params[a] = &x->arg[a];
    }
    return fill_args(x, d);
}

/* The arena set to all ones bits, a chunk at a time: a staging copy of the
 * whole arena would double the memory a run on the host takes. */
mx_status mx_exec_poison(mx_exec *x, mx_diag *d) {
    enum { CHUNK = 1 << 24 };
    size_t bytes = (size_t)x->p->arena_bytes, chunk = bytes < CHUNK ? bytes : CHUNK;
    void *ones = malloc(chunk + 1);
    if (!ones)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory poisoning an arena of %zu bytes", bytes);
    memset(ones, 0xFF, chunk);
    mx_status st = MX_OK;
    for (size_t at = 0; st == MX_OK && at < bytes; at += chunk)
        st = x->dev->upload(x->dev->ctx, (char *)x->arena + at, ones, bytes - at < chunk ? bytes - at : chunk, d);
    free(ones);
    return st;
}

mx_status mx_exec_open(const mx_program *p, const mx_module *m, const mx_exec_device *dev,
                       const mx_buffers *b, mx_exec **out, mx_diag *d) {
    const mx_graph *g = p->g;
    *out = NULL;
    if (!p->planned || !p->group_of)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: running on %s needs a fused and planned program", g->name,
                       dev->name);
    mx_exec *x = calloc(1, sizeof *x);
    if (!x)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    *x = (mx_exec){.p = p, .m = m, .dev = dev};
    size_t n = (size_t)g->n_values + 1;
    x->ptr = calloc(n, sizeof *x->ptr);
    x->own = calloc(n, sizeof *x->own);
    x->alias = calloc(n, sizeof *x->alias);
    mx_status st = x->ptr && x->own && x->alias ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    if (st == MX_OK)
        st = dev->load(dev->ctx, p, m, d);
    x->loaded = st == MX_OK;
    if (st == MX_OK)
        st = place(x, d);
    if (st == MX_OK)
        st = bind_args(x, d);
    if (st == MX_OK && b)
        st = mx_exec_upload(x, b, d);
    if (st == MX_OK)
        st = mx_exec_poison(x, d);
    if (st != MX_OK) {
        mx_exec_close(x);
        return st;
    }
    if (mx_debug_level() >= 1)
        fprintf(stderr, "mixc: %s: %d groups, %d kernels, arena %.1f MB\n", dev->name, p->n_groups, m->n_kernels,
                (double)p->arena_bytes / 1e6);
    *out = x;
    return MX_OK;
}

void mx_exec_close(mx_exec *x) {
    if (!x)
        return;
    const mx_exec_device *dev = x->dev;
    for (int v = 0; x->own && x->alias && v < x->p->g->n_values; v++)
        if (x->own[v] && !x->alias[v] && x->ptr[v])
            dev->release(dev->ctx, x->ptr[v]);
    if (x->arena)
        dev->release(dev->ctx, x->arena);
    if (x->loaded)
        dev->unload(dev->ctx);
    free(x->ptr), free(x->own), free(x->alias), free(x->arg), free(x->params), free(x->first_arg);
    free(x);
}

/* ---- running ------------------------------------------------------------------------- */

mx_status mx_exec_group(mx_exec *x, int k, mx_diag *d) {
    const mx_exec_device *dev = x->dev;
    if (x->p->groups[k].kind == MX_FUSE_MATMUL)
        return dev->matmul(dev->ctx, x, k, d);
    return dev->launch(dev->ctx, k, mx_module_kernel(x->m, k), x->params + x->first_arg[k], d);
}

mx_status mx_exec_forward(mx_exec *x, mx_diag *d) {
    const mx_exec_device *dev = x->dev;
    if (!x->uploaded && x->reads_caller) /* its argument table has holes until then */
        return mx_fail(d, MX_ERR_INVALID, "graph %s: run before its inputs and params were uploaded", x->p->g->name);
    for (int k = 0; k < x->p->n_groups; k++) {
        MX_TRY(mx_exec_group(x, k, d));
        if (dev->group_done)
            MX_TRY(dev->group_done(dev->ctx, k, d));
    }
    return MX_OK;
}

mx_status mx_exec_download(mx_exec *x, mx_buffers *b, mx_diag *d) {
    const mx_graph *g = x->p->g;
    if (b->count != g->n_values)
        return mx_fail(d, MX_ERR_INVALID, "graph %s: the buffers were made for another graph", g->name);
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        int64_t n = mx_type_numel(mx_value_type(g, v));
        char label[160];
        if (!x->ptr[v])
            return mx_fail(d, MX_ERR_INVALID, "graph %s: output %s has no buffer", g->name,
                           label_of(g, v, label, sizeof label));
        if (!b->data[v] && !(b->data[v] = malloc((size_t)(n ? n : 1) * sizeof(float))))
            return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
        size_t bytes = bytes_of(g, v);
        if (mx_value_type(g, v)->dtype == MX_F32) { /* as it is stored: no staging */
            MX_TRY(x->dev->download(x->dev->ctx, b->data[v], x->ptr[v], bytes, d));
            continue;
        }
        void *staged = malloc(bytes + 1);
        if (!staged)
            return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
        mx_status st = x->dev->download(x->dev->ctx, staged, x->ptr[v], bytes, d);
        if (st == MX_OK)
            mx_storage_unpack(mx_value_type(g, v)->dtype, staged, n, b->data[v]);
        free(staged);
        MX_TRY(st);
    }
    return MX_OK;
}

/* ---- the host emulation device ---------------------------------------------------------- */

/* ctx: where the loaded mx_emu_module * is kept. */

static mx_status emu_alloc(void *ctx, size_t bytes, void **out, mx_diag *d) {
    if (!(*out = malloc(bytes)))
        return mx_fail(d, MX_ERR_NOMEM, "out of memory for %zu bytes", bytes);
    return MX_OK;
}

static void emu_release(void *ctx, void *ptr) { free(ptr); }

static mx_status emu_copy(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d) {
    memcpy(dst, src, bytes);
    return MX_OK;
}

static mx_status emu_load(void *ctx, const mx_program *p, const mx_module *m, mx_diag *d) {
    return mx_emu_load(m->source.s, p->g->name, ctx, d);
}

static void emu_unload(void *ctx) { mx_emu_unload(*(mx_emu_module **)ctx); }

static mx_status emu_launch(void *ctx, int group, const mx_kernel *k, void **params, mx_diag *d) {
    return mx_emu_launch(*(mx_emu_module **)ctx, k->name, k->grid, k->block, k->smem, params, d);
}

/* An f32 copy of value v's buffer, as stored. */
static mx_status f32_copy(const mx_exec *x, int group, int v, float **out, mx_diag *d) {
    const mx_graph *g = x->p->g;
    const mx_type *t = mx_value_type(g, v);
    char label[160];
    if (!x->ptr[v])
        return mx_fail(d, MX_ERR_INVALID, "group %d (matmul): %s has no buffer", group,
                       label_of(g, v, label, sizeof label));
    int64_t numel = mx_type_numel(t);
    if (!(*out = malloc((size_t)(numel ? numel : 1) * sizeof(float))))
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    mx_storage_unpack(t->dtype, x->ptr[v], numel, *out);
    return MX_OK;
}

/* The group as cuBLASLt gets it (mx_gemm_decode), on the host: f32 copies of
 * the stored operands, and of y so that an element the product does not
 * write keeps what was stored (the poison); y rounded back to its dtype. */
static mx_status emu_matmul(void *ctx, const mx_exec *x, int group, mx_diag *d) {
    const mx_graph *g = x->p->g;
    mx_gemm gm;
    MX_TRY(mx_gemm_decode(x->p, group, &gm, d));
    mx_buffers *f32 = mx_buffers_new(g);
    if (!f32)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    const int vals[] = {gm.a.value, gm.b.value, gm.c.value, gm.bias, gm.y.value};
    mx_status st = MX_OK;
    for (size_t i = 0; st == MX_OK && i < sizeof vals / sizeof *vals; i++)
        if (vals[i] != MX_NONE && !f32->data[vals[i]])
            st = f32_copy(x, group, vals[i], &f32->data[vals[i]], d);
    if (st == MX_OK) {
        int y = gm.y.value;
        mx_gemm_run_host(&gm, f32);
        mx_storage_pack(mx_value_type(g, y)->dtype, f32->data[y], f32->numel[y], x->ptr[y]);
    }
    mx_buffers_free(f32);
    return st;
}

mx_exec_device mx_exec_emu_device(mx_emu_module **slot) {
    return (mx_exec_device){.name = "emu", .ctx = slot, .alloc = emu_alloc, .release = emu_release,
                            .upload = emu_copy, .download = emu_copy, .load = emu_load, .unload = emu_unload,
                            .launch = emu_launch, .matmul = emu_matmul};
}

mx_status mx_exec_emu(const mx_program *p, const mx_module *m, mx_buffers *b, mx_diag *d) {
    mx_emu_module *mod = NULL;
    const mx_exec_device dev = mx_exec_emu_device(&mod);
    mx_exec *x;
    MX_TRY(mx_exec_open(p, m, &dev, b, &x, d));
    mx_status st = mx_exec_forward(x, d);
    if (st == MX_OK)
        st = mx_exec_download(x, b, d);
    mx_exec_close(x);
    return st;
}
