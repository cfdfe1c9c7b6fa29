/* api.c: the one pipeline (mixc.h, "compiling and running").
 *
 * mx_compile copies the graph, runs the passes once and hands the planned
 * program to the target's backend (backend.h). The caller's tensors live in
 * host buffers over the source graph (f32, rounded to each value's dtype);
 * before a run whose params changed, they are bound into the program's
 * buffers (derived params such as A = -exp(A_log) computed by the init graph),
 * and whatever changed is uploaded. Outputs come back into the program's
 * buffers, where mx_output reads them. With Switch of Scans pruning the code
 * depends on the weights: the backend opens at the first run after the
 * params are bound, and again when they change. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "exec.h"
#include "half.h"
#include "ir.h"
#include "finite.h"
#include "memcheck.h"
#include "program.h"
#include "tune.h"

struct mx_compiled {
    mx_target target;
    const mx_backend *backend;
    void *state;
    const mx_model *model; /* NULL for a graph */
    mx_graph *src;         /* the graph as given */
    mx_program *p;
    mx_buffers *sb;        /* the source graph's inputs and params */
    mx_buffers *pb;        /* the program graph's inputs, params and outputs */
    bool *given;           /* per source value: set by the caller */
    mx_backend_options bo;
    bool no_load;
    int *role_values[3];   /* per role: source value ids (outputs in graph order) */
    int role_count[3];
    bool params_dirty, inputs_dirty, ran;
};

/* ---- backends --------------------------------------------------------------------- */

#ifdef MIXC_HAVE_LLVM
#define CPU_BACKEND &mx_backend_cpu
#else
#define CPU_BACKEND NULL
#endif

const mx_backend *mx_backend_of(mx_device device) {
    static const mx_backend *const table[MX_DEVICE_COUNT] = {
        [MX_DEVICE_REF] = &mx_backend_ref,
        [MX_DEVICE_EMU] = &mx_backend_emu,
        [MX_DEVICE_CUDA] = &mx_backend_cuda,
        [MX_DEVICE_CPU] = CPU_BACKEND,
    };
    return device >= 0 && device < MX_DEVICE_COUNT ? table[device] : NULL;
}

bool mx_have_cpu_backend(void) { return mx_backend_of(MX_DEVICE_CPU) != NULL; }

mx_status mx_backend_codegen_options(const mx_target *t, const mx_program *p, const mx_backend_options *o,
                                     mx_codegen_options *co, mx_tiles **tiles, mx_diag *d) {
    *tiles = NULL;
    MX_TRY(mx_tune_tiles(p, t, tiles, d));
    /* The CPU caches an object per function, so that a change to one kernel's
     * tiles (tuning, the database) recompiles that kernel alone; NVRTC's fixed
     * cost per program keeps GPU code in a few programs. */
    *co = (mx_codegen_options){.target = t, .tiles = *tiles, .prune_scans = o->prune_scans, .params = o->params,
                               .programs = t->device == MX_DEVICE_CPU ? MX_CODEGEN_PER_FUNCTION : 0};
    return MX_OK;
}

/* ---- compiling -------------------------------------------------------------------- */

/* The pass options: the environment's (unless ignored), then o's. */
static mx_status pass_options(const mx_compile_options *o, mx_pass_options *po, mx_diag *d) {
    if (o && o->ignore_env)
        *po = (mx_pass_options){0};
    else
        MX_TRY(mx_pass_options_from_env(po, d));
#ifndef NDEBUG
    po->verify = true;
#endif
    if (!o)
        return MX_OK;
    po->out = o->log;
    po->time = o->time_passes;
    const char *lists[] = {o->disable_passes, o->print_after, o->print_before};
    bool *flags[] = {po->disabled, po->print_after, po->print_before};
    for (int i = 0; i < 3; i++)
        if (lists[i] && mx_pass_options_set(flags[i], lists[i], d) != MX_OK)
            return MX_ERR_INVALID;
    return MX_OK;
}

/* Source value ids by role: inputs and params in node order, outputs in
 * graph order. */
static mx_status collect_roles(mx_compiled *c, mx_diag *d) {
    const mx_graph *g = c->src;
    for (int r = 0; r < 3; r++)
        if (!(c->role_values[r] = malloc(((size_t)g->n_values + 1) * sizeof(int))))
            return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (int n = 0; n < g->n_nodes; n++) {
        mx_op op = g->nodes[n].op;
        if (op == MX_OP_INPUT || op == MX_OP_PARAM) {
            mx_role r = op == MX_OP_INPUT ? MX_ROLE_INPUT : MX_ROLE_PARAM;
            c->role_values[r][c->role_count[r]++] = g->nodes[n].first_out;
        }
    }
    for (int i = 0; i < g->n_outputs; i++)
        c->role_values[MX_ROLE_OUTPUT][c->role_count[MX_ROLE_OUTPUT]++] = g->outputs[i];
    return MX_OK;
}

/* The backend opened on the program (and the bound params when pruning);
 * a group that fails to generate is explained in the model's terms. */
static mx_status open_backend(mx_compiled *c, mx_diag *d) {
    if (c->bo.prune_scans > 0)
        c->bo.params = c->pb;
    mx_status st = c->backend->open(&c->target, c->p, &c->bo, &c->state, d);
    if (st != MX_OK) {
        c->state = NULL;
        mx_explain_group_error(c->p, c->model, d);
    }
    return st;
}

static void close_backend(mx_compiled *c) {
    if (c->state)
        c->backend->close(c->state);
    c->state = NULL;
}

/* The options of o that a backend needs, checked against the device. */
static mx_status backend_options(const mx_compile_options *o, const mx_target *t, mx_backend_options *bo,
                                 mx_diag *d) {
    *bo = (mx_backend_options){0};
    if (!o)
        return MX_OK;
    if (!(o->prune_scans >= 0 && o->prune_scans < 1))
        return mx_fail(d, MX_ERR_INVALID, "prune_scans %g: a softmax weight threshold in [0, 1)", o->prune_scans);
    if (o->prune_scans > 0 && t->device == MX_DEVICE_REF)
        return mx_fail(d, MX_ERR_INVALID, "prune_scans applies to generated code (emu, cuda, cpu), not to device %s",
                       mx_device_name(t->device));
    *bo = (mx_backend_options){.prune_scans = o->prune_scans, .flush_l2 = o->flush_l2 != 0};
    return MX_OK;
}

static mx_compiled *compile(const mx_graph *g, const mx_model *model, const mx_target *t,
                            const mx_compile_options *o, mx_diag *d) {
    if (!g || !t) {
        mx_fail(d, MX_ERR_INVALID, "mx_compile: no %s given", g ? "target" : "graph");
        return NULL;
    }
    const mx_backend *be = mx_backend_of(t->device);
    if (!be) {
        mx_fail(d, MX_ERR_INVALID, "device %s: not in this build of mixc%s", mx_device_name(t->device),
                t->device == MX_DEVICE_CPU ? " (built without LLVM: install llvm-19-dev and rebuild)" : "");
        return NULL;
    }
    mx_compiled *c = calloc(1, sizeof *c);
    if (!c) {
        mx_fail(d, MX_ERR_NOMEM, "out of memory");
        return NULL;
    }
    *c = (mx_compiled){.target = *t, .backend = be, .model = model, .no_load = o && o->no_load};
    mx_status st = backend_options(o, t, &c->bo, d);
    mx_pass_options po;
    if (st == MX_OK && (!(c->src = mx_graph_clone(g)) || !(c->p = mx_program_new(mx_graph_clone(g)))))
        st = mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
    if (st == MX_OK)
        st = pass_options(o, &po, d);
    if (st == MX_OK) {
        c->p->target = &c->target;
        st = mx_program_run_passes(c->p, &po, d);
    }
    if (st == MX_OK && !(o && o->no_load)) /* before anything big is allocated */
        st = mx_memory_check(c->p, &c->target, model, d);
    if (st == MX_OK && !(c->sb = mx_buffers_new(c->src)))
        st = mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
    if (st == MX_OK && !(c->pb = mx_buffers_new(c->p->g)))
        st = mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
    if (st == MX_OK && !(c->given = calloc((size_t)c->src->n_values + 1, sizeof *c->given)))
        st = mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", g->name);
    if (st == MX_OK)
        st = collect_roles(c, d);
    if (st == MX_OK && !c->no_load && c->bo.prune_scans == 0) /* pruning opens once the weights are bound */
        st = open_backend(c, d);
    if (st != MX_OK) {
        mx_compiled_free(c);
        return NULL;
    }
    return c;
}

mx_compiled *mx_compile(const mx_graph *g, const mx_target *t, const mx_compile_options *o, mx_diag *d) {
    return compile(g, NULL, t, o, d);
}

mx_compiled *mx_compile_model(const mx_model *m, const mx_target *t, const mx_compile_options *o,
                              mx_diag *d) {
    return compile(m ? mx_model_graph(m) : NULL, m, t, o, d);
}

void mx_compiled_free(mx_compiled *c) {
    if (!c)
        return;
    close_backend(c);
    mx_buffers_free(c->pb);
    mx_buffers_free(c->sb);
    if (c->p)
        mx_program_free(c->p);
    mx_graph_free(c->src);
    for (int r = 0; r < 3; r++)
        free(c->role_values[r]);
    free(c->given);
    free(c);
}

const mx_target *mx_compiled_target(const mx_compiled *c) { return &c->target; }
const mx_graph *mx_compiled_graph(const mx_compiled *c) { return c->src; }
const mx_program *mx_compiled_program(const mx_compiled *c) { return c->p; }
void *mx_compiled_backend_state(const mx_compiled *c) { return c->state; }

/* ---- tensors ---------------------------------------------------------------------- */

int mx_tensor_count(const mx_compiled *c, mx_role role) {
    return role >= MX_ROLE_INPUT && role <= MX_ROLE_OUTPUT ? c->role_count[role] : 0;
}

mx_status mx_tensor_info_of(const mx_compiled *c, mx_role role, int i, mx_tensor_info *out, mx_diag *d) {
    static const char *const roles[] = {"input", "param", "output"};
    if (role < MX_ROLE_INPUT || role > MX_ROLE_OUTPUT)
        return mx_fail(d, MX_ERR_INVALID, "mx_tensor_info_of: unknown role %d", (int)role);
    if (i < 0 || i >= c->role_count[role])
        return mx_fail(d, MX_ERR_INVALID, "graph %s has %d %ss, no %s %d", c->src->name, c->role_count[role],
                       roles[role], roles[role], i);
    int v = c->role_values[role][i];
    const mx_type *t = mx_value_type(c->src, v);
    *out = (mx_tensor_info){c->src->values[v].name, t->dtype, t->rank, t->dim, mx_type_numel(t)};
    return MX_OK;
}

/* The source value of role named name (NULL: the first of the role), or -1. */
static int find(const mx_compiled *c, mx_role role, const char *name) {
    for (int i = 0; i < c->role_count[role]; i++) {
        int v = c->role_values[role][i];
        const char *vn = c->src->values[v].name;
        if (!name || (vn && strcmp(vn, name) == 0))
            return v;
    }
    return -1;
}

/* "f32 [1,196,192]" */
static void describe(mx_dtype t, int rank, const int64_t *dims, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "%s [", mx_dtype_names[t]);
    for (int i = 0; i < rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)dims[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

static mx_status set_tensor(mx_compiled *c, mx_role role, const char *name, const void *data, mx_dtype dtype,
                            int rank, const int64_t *dims, mx_diag *d) {
    static const char *const roles[] = {"input", "param"};
    int v = name ? find(c, role, name) : -1;
    if (v < 0) {
        char names[512] = "";
        size_t n = 0;
        for (int i = 0; i < c->role_count[role] && n < sizeof names - 64; i++) {
            const char *vn = c->src->values[c->role_values[role][i]].name;
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%%%s", i ? ", " : "", vn ? vn : "?");
        }
        return mx_fail(d, MX_ERR_INVALID, "graph %s has no %s named %%%s (%ss: %s)", c->src->name, roles[role],
                       name ? name : "(null)", roles[role], c->role_count[role] ? names : "none");
    }
    const mx_type *t = mx_value_type(c->src, v);
    bool same = dtype == t->dtype && rank == t->rank && dtype >= 0 && dtype < MX_DTYPE_COUNT && data;
    for (int i = 0; same && i < rank; i++)
        same = dims[i] == t->dim[i];
    if (!same) {
        char want[160], got[160];
        describe(t->dtype, t->rank, t->dim, want, sizeof want);
        if (dtype < 0 || dtype >= MX_DTYPE_COUNT || rank < 0 || rank > MX_MAX_RANK || (rank && !dims))
            snprintf(got, sizeof got, "dtype %d, rank %d", (int)dtype, rank);
        else
            describe(dtype, rank, dims, got, sizeof got);
        return mx_fail(d, MX_ERR_INVALID, "%s %%%s: expected %s, got %s%s", roles[role], name, want, got,
                       data ? "" : " (no data)");
    }
    int64_t n = mx_type_numel(t);
    if (!c->sb->data[v] && !(c->sb->data[v] = malloc((size_t)(n ? n : 1) * sizeof(float))))
        return mx_fail(d, MX_ERR_NOMEM, "%s %%%s: out of memory for %lld numbers", roles[role], name, (long long)n);
    mx_storage_unpack(dtype, data, n, c->sb->data[v]);
    c->given[v] = true;
    *(role == MX_ROLE_PARAM ? &c->params_dirty : &c->inputs_dirty) = true;
    return MX_OK;
}

mx_status mx_set_input(mx_compiled *c, const char *name, const void *data, mx_dtype dtype, int rank,
                       const int64_t *dims, mx_diag *d) {
    return set_tensor(c, MX_ROLE_INPUT, name, data, dtype, rank, dims, d);
}

mx_status mx_set_param(mx_compiled *c, const char *name, const void *data, mx_dtype dtype, int rank,
                       const int64_t *dims, mx_diag *d) {
    return set_tensor(c, MX_ROLE_PARAM, name, data, dtype, rank, dims, d);
}

/* Every param marked given; false when one has no buffer (out of memory). */
static bool params_given(mx_compiled *c) {
    for (int i = 0; i < c->role_count[MX_ROLE_PARAM]; i++) {
        int v = c->role_values[MX_ROLE_PARAM][i];
        if (!c->sb->data[v])
            return false;
        c->given[v] = true;
    }
    return true;
}

mx_status mx_compiled_set_buffers(mx_compiled *c, const mx_buffers *b, mx_diag *d) {
    for (int r = MX_ROLE_INPUT; r <= MX_ROLE_PARAM; r++)
        for (int i = 0; i < c->role_count[r]; i++) {
            int v = c->role_values[r][i];
            const mx_type *t = mx_value_type(c->src, v);
            int64_t n = mx_type_numel(t);
            void *packed = malloc((size_t)(n ? n : 1) * mx_dtype_size(t->dtype));
            if (!packed)
                return mx_fail(d, MX_ERR_NOMEM, "%%%s: out of memory", c->src->values[v].name);
            mx_storage_pack(t->dtype, b->data[v], n, packed);
            mx_status st = set_tensor(c, r, c->src->values[v].name, packed, t->dtype, t->rank, t->dim, d);
            free(packed);
            MX_TRY(st);
        }
    return MX_OK;
}

/* The seeded inputs (token ids whole numbers in [0, V)) for every input,
 * or (all false) for those not given yet. */
static mx_status random_inputs(mx_compiled *c, uint64_t seed, bool all, mx_diag *d) {
    for (int i = 0; i < c->role_count[MX_ROLE_INPUT]; i++) {
        int v = c->role_values[MX_ROLE_INPUT][i];
        if (c->given[v] && !all)
            continue;
        if (!mx_fill_random_value(c->sb, c->src, v, seed))
            return mx_fail(d, MX_ERR_NOMEM, "input %%%s: out of memory for %lld numbers", c->src->values[v].name,
                           (long long)c->sb->numel[v]);
        c->given[v] = true;
    }
    c->inputs_dirty = true;
    return MX_OK;
}

mx_status mx_set_random_inputs(mx_compiled *c, uint64_t seed, mx_diag *d) { return random_inputs(c, seed, false, d); }

mx_status mx_compiled_fresh_inputs(mx_compiled *c, uint64_t seed, mx_diag *d) { return random_inputs(c, seed, true, d); }

mx_status mx_init_weights(mx_compiled *c, uint64_t seed, mx_diag *d) {
    for (int i = 0; i < c->role_count[MX_ROLE_PARAM]; i++)
        if (!c->model && !mx_fill_random_value(c->sb, c->src, c->role_values[MX_ROLE_PARAM][i], seed))
            return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory for its params", c->src->name);
    if (c->model)
        mx_model_init_params(c->model, c->sb, seed);
    if (!params_given(c))
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory for its params", c->src->name);
    c->params_dirty = true;
    return MX_OK;
}

mx_status mx_load_weights(mx_compiled *c, const char *path, mx_diag *d) {
    MX_TRY(mx_weights_load(c->src, c->sb, path, d));
    if (!params_given(c))
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", path);
    c->params_dirty = true;
    return MX_OK;
}

/* Every input (from MX_ROLE_INPUT) and param given; else which is not. */
static mx_status check_given(const mx_compiled *c, mx_role from, mx_diag *d) {
    for (int r = from; r <= MX_ROLE_PARAM; r++)
        for (int i = 0; i < c->role_count[r]; i++) {
            int v = c->role_values[r][i];
            if (!c->given[v])
                return mx_fail(d, MX_ERR_INVALID, "%s %%%s: not set (%s)", r == MX_ROLE_INPUT ? "input" : "param",
                               c->src->values[v].name,
                               r == MX_ROLE_INPUT ? "mx_set_input or mx_set_random_inputs"
                                                  : "mx_init_weights, mx_load_weights or mx_set_param");
        }
    return MX_OK;
}

mx_status mx_save_weights(const mx_compiled *c, const char *path, mx_diag *d) {
    MX_TRY(check_given(c, MX_ROLE_PARAM, d));
    return mx_weights_save(c->src, c->sb, path, d);
}

/* ---- running ---------------------------------------------------------------------- */

/* No NaN or Inf among the params (or inputs) of role: said where it enters. */
static mx_status check_finite(const mx_compiled *c, mx_role role, mx_diag *d) {
    for (int i = 0; i < c->role_count[role]; i++) {
        int v = c->role_values[role][i];
        MX_TRY(mx_check_finite(role == MX_ROLE_INPUT ? "input" : "param", c->src->values[v].name, c->sb->data[v],
                               c->sb->numel[v], d));
    }
    return MX_OK;
}

/* The program's inputs from the source's, by name. */
static mx_status bind_inputs(mx_compiled *c, mx_diag *d) {
    const mx_graph *pg = c->p->g;
    for (int v = 0; v < pg->n_values; v++) {
        if (pg->nodes[pg->values[v].node].op != MX_OP_INPUT)
            continue;
        int w = pg->values[v].name ? find(c, MX_ROLE_INPUT, pg->values[v].name) : -1;
        if (w < 0)
            return mx_fail(d, MX_ERR_INVALID, "graph %s: the compiled program has an input the source lacks",
                           pg->name);
        int64_t n = c->pb->numel[v];
        if (!c->pb->data[v] && !(c->pb->data[v] = malloc((size_t)(n ? n : 1) * sizeof(float))))
            return mx_fail(d, MX_ERR_NOMEM, "input %%%s: out of memory", pg->values[v].name);
        memcpy(c->pb->data[v], c->sb->data[w], (size_t)n * sizeof(float));
    }
    return MX_OK;
}

/* The caller's params into the program's buffers (derived params too). */
static mx_status bind_params(mx_compiled *c, mx_diag *d) {
    MX_TRY(check_given(c, MX_ROLE_PARAM, d));
    MX_TRY(check_finite(c, MX_ROLE_PARAM, d));
    return mx_program_bind_init(c->p, c->src, c->sb, c->pb, d);
}

/* Binds and uploads what changed since the last run; with pruning, new
 * weights mean new code. */
static mx_status prepare(mx_compiled *c, mx_diag *d) {
    if (c->no_load)
        return mx_fail(d, MX_ERR_INVALID, "graph %s was compiled with no_load: nothing to run", c->src->name);
    MX_TRY(check_given(c, MX_ROLE_INPUT, d));
    if (c->inputs_dirty)
        MX_TRY(check_finite(c, MX_ROLE_INPUT, d));
    if (c->params_dirty)
        MX_TRY(bind_params(c, d));
    if (c->inputs_dirty)
        MX_TRY(bind_inputs(c, d));
    if (c->params_dirty && c->bo.prune_scans > 0) {
        close_backend(c);
        MX_TRY(open_backend(c, d));
        c->inputs_dirty = true; /* a fresh device holds nothing */
    }
    if (c->params_dirty || c->inputs_dirty)
        MX_TRY(c->backend->upload(c->state, c->pb, d));
    c->params_dirty = c->inputs_dirty = false;
    return MX_OK;
}

mx_status mx_compiled_bind(mx_compiled *c, mx_buffers **out, mx_diag *d) {
    MX_TRY(check_given(c, MX_ROLE_INPUT, d));
    MX_TRY(check_finite(c, MX_ROLE_PARAM, d));
    MX_TRY(check_finite(c, MX_ROLE_INPUT, d));
    MX_TRY(mx_program_bind_init(c->p, c->src, c->sb, c->pb, d));
    MX_TRY(bind_inputs(c, d));
    *out = c->pb;
    return MX_OK;
}

void mx_compiled_set_tiles(mx_compiled *c, const mx_tiles *tiles) { c->p->tiles = tiles; }

mx_status mx_compiled_module(mx_compiled *c, mx_module *out, mx_diag *d) {
    *out = (mx_module){0};
    if (c->target.device == MX_DEVICE_REF)
        return mx_fail(d, MX_ERR_INVALID, "device ref runs no generated code");
    if (c->bo.prune_scans > 0) {
        MX_TRY(bind_params(c, d));
        c->bo.params = c->pb;
    }
    mx_codegen_options co;
    mx_tiles *tiles = NULL;
    mx_status st = mx_backend_codegen_options(&c->target, c->p, &c->bo, &co, &tiles, d);
    if (st == MX_OK)
        st = mx_codegen(c->p, &co, out, d);
    free(tiles);
    return st;
}

mx_status mx_run(mx_compiled *c, mx_diag *d) {
    c->ran = false;
    MX_TRY(prepare(c, d));
    MX_TRY(c->backend->forward(c->state, d));
    MX_TRY(c->backend->sync(c->state, d));
    MX_TRY(c->backend->download(c->state, c->pb, d));
    c->ran = true;
    return MX_OK;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

mx_status mx_time(mx_compiled *c, int warmup, int runs, mx_timing *out, mx_diag *d) {
    if (runs < 1 || warmup < 0)
        return mx_fail(d, MX_ERR_INVALID, "mx_time: runs must be >= 1 and warmup >= 0 (got %d, %d)", runs, warmup);
    MX_TRY(prepare(c, d));
    for (int i = 0; i < warmup; i++)
        MX_TRY(c->backend->forward(c->state, d));
    MX_TRY(c->backend->sync(c->state, d));
    double *ms = malloc((size_t)runs * sizeof *ms);
    if (!ms)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory for %d timings", runs);
    mx_status st = MX_OK;
    if (c->backend->time) {
        st = c->backend->time(c->state, runs, ms, d);
    } else {
        for (int i = 0; i < runs && st == MX_OK; i++) {
            double t0 = now_ms();
            st = c->backend->forward(c->state, d);
            if (st == MX_OK)
                st = c->backend->sync(c->state, d);
            ms[i] = now_ms() - t0;
        }
    }
    if (st == MX_OK) {
        qsort(ms, (size_t)runs, sizeof *ms, by_value);
        *out = (mx_timing){runs, runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2, ms[0],
                           ms[runs - 1]};
    }
    free(ms);
    if (st == MX_OK) /* the outputs of the last pass, as after mx_run */
        st = c->backend->download(c->state, c->pb, d);
    c->ran = st == MX_OK;
    return st;
}

/* The program's value holding source output `name` (NULL: the first). */
static int output_value(const mx_compiled *c, const char *name) {
    for (int i = 0; i < c->src->n_outputs; i++) {
        const char *vn = c->src->values[c->src->outputs[i]].name;
        if (!name || (vn && strcmp(vn, name) == 0))
            return c->p->g->outputs[i];
    }
    return -1;
}

const float *mx_output(const mx_compiled *c, const char *name) {
    int v = output_value(c, name);
    return c->ran && v >= 0 ? c->pb->data[v] : NULL;
}

mx_status mx_get_output(const mx_compiled *c, const char *name, void *data, mx_dtype dtype, size_t bytes,
                        mx_diag *d) {
    int v = output_value(c, name);
    if (v < 0)
        return mx_fail(d, MX_ERR_INVALID, "graph %s has no output named %%%s", c->src->name, name);
    if (!c->ran)
        return mx_fail(d, MX_ERR_INVALID, "output %%%s: nothing has run yet (mx_run)", name ? name : "");
    if (dtype < 0 || dtype >= MX_DTYPE_COUNT)
        return mx_fail(d, MX_ERR_INVALID, "output %%%s: unknown dtype %d", name ? name : "", (int)dtype);
    int64_t n = c->pb->numel[v];
    size_t need = (size_t)n * mx_dtype_size(dtype);
    if (bytes < need || !data)
        return mx_fail(d, MX_ERR_INVALID, "output %%%s: needs %zu bytes as %s, got %zu", c->p->g->values[v].name,
                       need, mx_dtype_names[dtype], data ? bytes : 0);
    mx_storage_pack(dtype, c->pb->data[v], n, data);
    return MX_OK;
}
