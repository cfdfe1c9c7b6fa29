/* test_codegen.c: generated kernels against the reference.
 *
 * Unit: small graphs that put every view kind, every elementwise op (f32,
 * f16, bf16 storage), the row kernels at odd row lengths and block sizes and
 * the convolutions into kernels, run under host emulation against the
 * reference interpreter on random inputs: at the default tiles through the
 * product path (mx_compile for the emu device, mx_run), at forced block
 * sizes through codegen and mx_exec_emu directly. Compile: every kernel of
 * every zoo model (reduced size, zoo_reduced.h) as `mixc compile --cubin`
 * compiles it, for sm_80 and sm_90 (mx_compile without loading, the
 * module's programs through mx_gpu_compile), no spills with the default
 * tiles. End to end: IR graphs and zoo models under emulation through the
 * product path. Set MIXC_TEST_QUICK=1 to skip the zoo runs (the long part). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "codegen.h"
#include "exec.h"
#include "gpu.h"
#include "support.h"

#define SEED 11u

/* ---- helpers ------------------------------------------------------------------ */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static mx_program *compile(const mx_graph *g) {
    mx_pass_options o = {.verify = true};
    return support_compile(g, g->name, &o);
}

/* Outputs of the program run (got, for p->g) against the reference's (want,
 * for src) within tol. Returns the worst relative error. */
static double compare(const char *what, const mx_graph *src, const mx_buffers *want, const mx_graph *pg,
                      const mx_buffers *got, double tol) {
    double worst = 0;
    for (int i = 0; i < src->n_outputs; i++) {
        int w = src->outputs[i], v = pg->outputs[i];
        double *ref = malloc((size_t)(want->numel[w] + 1) * sizeof(double));
        for (int64_t k = 0; k < want->numel[w]; k++)
            ref[k] = want->data[w][k];
        char label[300];
        snprintf(label, sizeof label, "%s: output %d (%s)", what, i, src->values[w].name ? src->values[w].name : "?");
        CHECK_CLOSE(got->data[v], ref, got->numel[v], tol, label);
        for (int64_t k = 0; k < want->numel[w]; k++) {
            double e = fabs((double)got->data[v][k] - ref[k]) / fmax(1.0, fabs(ref[k]));
            worst = isnan(got->data[v][k]) ? INFINITY : fmax(worst, e);
        }
        free(ref);
    }
    return worst;
}

/* src run on the reference (sb, with inputs and params filled) against the
 * product path: compiled for the emu device (mx_compile, sm_80's profile),
 * the same numbers given, one mx_run. */
static void check_api(const char *what, const mx_graph *src, const mx_buffers *sb, double tol) {
    mx_target t;
    mx_diag d = {{0}};
    CHECK_MSG(mx_target_named("sm_80", MX_DEVICE_EMU, &t, &d) == MX_OK, "%s", d.msg);
    mx_compiled *c = mx_compile(src, &t, NULL, &d);
    mx_status st = c ? mx_compiled_set_buffers(c, sb, &d) : MX_ERR_INVALID;
    if (st == MX_OK)
        st = mx_run(c, &d);
    CHECK_MSG(st == MX_OK, "%s: %s", what, d.msg);
    for (int i = 0; st == MX_OK && i < src->n_outputs; i++) {
        int w = src->outputs[i];
        int64_t n = sb->numel[w];
        double *ref = malloc((size_t)(n + 1) * sizeof(double));
        for (int64_t k = 0; k < n; k++)
            ref[k] = sb->data[w][k];
        char label[300];
        snprintf(label, sizeof label, "%s: output %d (%s)", what, i, src->values[w].name ? src->values[w].name : "?");
        const float *got = mx_output(c, src->values[w].name);
        CHECK_MSG(got != NULL, "%s: no output", label);
        if (got)
            CHECK_CLOSE(got, ref, n, tol, label);
        free(ref);
    }
    mx_compiled_free(c);
}

/* The unit path: src's program generated with `threads` threads per block
 * for every non-scan group (tiles the cost model would not choose), run
 * under emulation against the reference. */
static void check_emulated(const char *what, const mx_graph *src, const mx_buffers *sb, int threads, double tol) {
    if (!threads) {
        check_api(what, src, sb, tol);
        return;
    }
    mx_program *p = compile(src);
    if (!p)
        return;
    mx_diag d = {{0}};
    mx_tiles *tiles = calloc((size_t)p->n_groups + 1, sizeof *tiles);
    for (int k = 0; k < p->n_groups; k++)
        if (p->groups[k].kind != MX_FUSE_SCAN && p->groups[k].kind != MX_FUSE_MATMUL)
            tiles[k] = (mx_tiles){.threads = threads, .items = 1, .channels = 1, .lanes_per_state = 1, .vector = 1};
    mx_codegen_options o = {.target = support_gpu_target("sm_80"), .tiles = tiles};
    mx_module m;
    mx_status st = mx_codegen(p, &o, &m, &d);
    CHECK_MSG(st == MX_OK, "%s: codegen: %s", what, d.msg);
    if (st == MX_OK) {
        if (getenv("MIXC_TEST_SHOW"))
            fputs(m.source.s, stderr);
        mx_buffers *b = mx_buffers_new(p->g);
        mx_buffers_fill_random(b, p->g, SEED);
        st = mx_program_bind_init(p, src, sb, b, &d);
        CHECK_MSG(st == MX_OK, "%s: bind: %s", what, d.msg);
        if (st == MX_OK)
            st = mx_exec_emu(p, &m, b, &d);
        CHECK_MSG(st == MX_OK, "%s: emu: %s", what, d.msg);
        if (st == MX_OK)
            compare(what, src, sb, p->g, b, tol);
        mx_buffers_free(b);
        mx_module_free(&m);
    }
    free(tiles);
    mx_program_free(p);
}

/* ---- a small graph builder ------------------------------------------------------ */

static mx_graph *G;

static int source(mx_op op, const char *name, mx_dtype t, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    mx_type ty = {t, rank, {d0, d1, d2, d3}};
    return mx_node_output(G, mx_graph_add_source(G, op, name, ty), 0);
}
#define INPUT(name, t, rank, ...) source(MX_OP_INPUT, name, t, rank, __VA_ARGS__)
#define PARAM(name, t, rank, ...) source(MX_OP_PARAM, name, t, rank, __VA_ARGS__)

/* A node of op on the inputs (MX_NONE-terminated), attributes set by the
 * caller through the returned node id before typed(). */
static int node(mx_op op, int n_out, ...) {
    int in[66], n = 0;
    va_list ap;
    va_start(ap, n_out);
    for (int v; (v = va_arg(ap, int)) != -2;)
        in[n++] = v;
    va_end(ap);
    return mx_graph_add_node(G, op, in, n, n_out);
}
#define END (-2)

static int typed(int n) {
    mx_diag d = {{0}};
    mx_status st = mx_graph_infer_node(G, n, &d);
    CHECK_MSG(st == MX_OK, "builder: %s", d.msg);
    return mx_node_output(G, n, 0);
}
static int op1(mx_op op, int x) { return typed(node(op, 1, x, END)); }
static int op2(mx_op op, int a, int b) { return typed(node(op, 1, a, b, END)); }
static int with_int(int n, mx_attr_key k, int64_t v) {
    mx_node_set_int(G, n, k, v);
    return n;
}
static int with_float(int n, mx_attr_key k, double v) {
    mx_node_set_float(G, n, k, v);
    return n;
}
static int with_ints(int n, mx_attr_key k, int count, ...) {
    int64_t v[16];
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++)
        v[i] = va_arg(ap, int);
    va_end(ap);
    mx_node_set_ints(G, n, k, v, count);
    return n;
}
static void out(int v) { mx_graph_add_output(G, v); }

/* G against its emulated program. */
static void check_graph(int threads, double tol) {
    mx_diag d = {{0}};
    for (int i = 0; i < G->n_outputs; i++) /* the public API reads outputs by name */
        if (!G->values[G->outputs[i]].name) {
            char name[32];
            snprintf(name, sizeof name, "out.%d", i);
            mx_value_set_name(G, G->outputs[i], name);
        }
    CHECK_MSG(mx_graph_verify(G, &d) == MX_OK, "%s: %s", G->name, d.msg);
    mx_buffers *sb = mx_buffers_new(G);
    mx_buffers_fill_random(sb, G, SEED);
    CHECK_MSG(mx_ref_run(G, sb, &d) == MX_OK, "%s: ref: %s", G->name, d.msg);
    char what[200];
    snprintf(what, sizeof what, "%s (threads %d)", G->name, threads);
    check_emulated(what, G, sb, threads, tol);
    mx_buffers_free(sb);
    mx_graph_free(G);
    G = NULL;
}

/* ---- unit: views, elementwise ops, dtypes ---------------------------------------- */

static int order(const char *name) {
    for (int i = 0; mx_order_names[i]; i++)
        if (strcmp(mx_order_names[i], name) == 0)
            return i;
    return -1;
}

static int gather(int x, const char *ord, int axis) {
    int n = node(MX_OP_SCAN_GATHER, 1, x, END);
    with_int(n, MX_A_ORDER, order(ord));
    with_int(n, MX_A_H, 4);
    with_int(n, MX_A_W, 6);
    return typed(with_int(n, MX_A_AXIS, axis));
}

static void check_views(void) {
    G = mx_graph_new("views");
    int x = INPUT("x", MX_F32, 4, 2, 3, 4, 6), y = INPUT("y", MX_F32, 3, 2, 24, 3, 0), s = INPUT("s", MX_F32, 3, 1, 6, 24, 0);
    out(op1(MX_OP_EXP, typed(with_ints(node(MX_OP_PERMUTE, 1, x, END), MX_A_PERM, 4, 0, 3, 1, 2))));
    out(op1(MX_OP_EXP, typed(with_ints(node(MX_OP_RESHAPE, 1, x, END), MX_A_SHAPE, 3, 6, 4, 6))));
    out(op1(MX_OP_EXP, typed(with_ints(node(MX_OP_RESHAPE, 1, x, END), MX_A_SHAPE, 5, 2, 1, 3, 24, 1))));
    out(op1(MX_OP_EXP, typed(with_int(node(MX_OP_FLIP, 1, x, END), MX_A_AXIS, 2))));
    out(op1(MX_OP_EXP, typed(with_int(with_int(node(MX_OP_SHIFT, 1, x, END), MX_A_AXIS, 3), MX_A_K, 2))));
    out(op1(MX_OP_EXP, typed(with_int(with_int(node(MX_OP_SHIFT, 1, x, END), MX_A_AXIS, 1), MX_A_K, -1))));
    int sl = node(MX_OP_SLICE, 1, x, END);
    with_int(with_int(with_int(sl, MX_A_AXIS, 3), MX_A_START, 1), MX_A_END, 6);
    out(op1(MX_OP_EXP, typed(with_int(sl, MX_A_STEP, 2))));
    int sp = with_ints(with_int(node(MX_OP_SPLIT, 2, x, END), MX_A_AXIS, 1), MX_A_SIZES, 2, 1, 2);
    typed(sp);
    out(op2(MX_OP_SUB, op1(MX_OP_EXP, mx_node_output(G, sp, 1)), mx_node_output(G, sp, 0)));
    out(op1(MX_OP_EXP, typed(with_int(node(MX_OP_CONCAT, 1, x, x, x, END), MX_A_AXIS, 2))));
    out(op1(MX_OP_EXP, typed(node(MX_OP_SPACE_TO_DEPTH, 1, INPUT("q", MX_F32, 4, 2, 4, 6, 3), END))));
    int uf = node(MX_OP_UNFOLD, 1, x, END);
    with_int(with_int(with_int(uf, MX_A_AXIS, 3), MX_A_SIZE, 4), MX_A_STRIDE, 3);
    out(op1(MX_OP_EXP, typed(with_int(uf, MX_A_PAD, 2))));
    out(op1(MX_OP_EXP, gather(y, "snake", 1)));
    out(op1(MX_OP_EXP, gather(y, "col_rev", 1)));
    out(op1(MX_OP_EXP, gather(s, "snake_col", -1)));
    out(op1(MX_OP_EXP, gather(s, "diag", -1)));
    out(op1(MX_OP_EXP, gather(s, "diag_rev", -1)));
    int sc = node(MX_OP_SCAN_SCATTER, 1, s, END);
    with_ints(with_int(with_int(sc, MX_A_H, 4), MX_A_W, 6), MX_A_ORDERS, 1, order("diag"));
    out(op1(MX_OP_EXP, typed(sc)));
    int sum = node(MX_OP_SCAN_SCATTER, 1, s, s, s, END);
    with_ints(with_int(with_int(sum, MX_A_H, 4), MX_A_W, 6), MX_A_ORDERS, 3, order("row_rev"), order("snake_col_rev"),
              order("diag"));
    out(typed(sum));
    /* Stored by tanh's kernel: layouts a matmul cannot read. */
    int t = op1(MX_OP_TANH, x);
    int tp = typed(with_ints(node(MX_OP_PERMUTE, 1, t, END), MX_A_PERM, 4, 3, 1, 0, 2));
    int w = PARAM("w", MX_F32, 2, 5, 4, 0, 0);
    out(typed(node(MX_OP_LINEAR, 1, tp, w, END)));
    out(typed(node(MX_OP_LINEAR, 1, gather(s, "snake", -1), PARAM("w2", MX_F32, 2, 5, 24, 0, 0), END)));
    int w6 = PARAM("w6", MX_F32, 2, 5, 6, 0, 0);
    int ts = node(MX_OP_SLICE, 1, t, END);
    with_int(with_int(with_int(with_int(ts, MX_A_AXIS, 1), MX_A_START, 0), MX_A_END, 3), MX_A_STEP, 2);
    out(typed(node(MX_OP_LINEAR, 1, typed(ts), w6, END)));
    int tsh = with_int(with_int(node(MX_OP_SHIFT, 1, t, END), MX_A_AXIS, 2), MX_A_K, -1);
    out(typed(node(MX_OP_LINEAR, 1, typed(tsh), w6, END)));
    int tu = node(MX_OP_UNFOLD, 1, t, END);
    with_int(with_int(with_int(tu, MX_A_AXIS, 2), MX_A_SIZE, 2), MX_A_STRIDE, 2);
    out(typed(node(MX_OP_LINEAR, 1, typed(tu), w6, END)));
    out(op1(MX_OP_SIGMOID, t));
    check_graph(0, 1e-5);
}

/* Every elementwise op, in one storage dtype. */
static void check_ops(mx_dtype dt, double tol) {
    char name[32];
    snprintf(name, sizeof name, "ops_%s", mx_dtype_names[dt]);
    G = mx_graph_new(name);
    int x = INPUT("x", dt, 2, 3, 37, 0, 0), y = INPUT("y", dt, 1, 37, 0, 0, 0);
    int e = op1(MX_OP_EXP, x);
    out(op2(MX_OP_ADD, x, y));
    out(op2(MX_OP_SUB, y, x));
    out(op2(MX_OP_MUL, x, y));
    out(op2(MX_OP_DIV, x, e));
    static const mx_op unary[] = {MX_OP_NEG, MX_OP_TANH, MX_OP_SIGMOID, MX_OP_SILU, MX_OP_RELU, MX_OP_GELU};
    for (size_t i = 0; i < sizeof unary / sizeof *unary; i++)
        out(op1(unary[i], x));
    static const mx_op positive[] = {MX_OP_LOG, MX_OP_SQRT, MX_OP_RSQRT};
    for (size_t i = 0; i < sizeof positive / sizeof *positive; i++)
        out(op1(positive[i], e));
    out(typed(with_int(node(MX_OP_GELU, 1, x, END), MX_A_APPROX, MX_GELU_TANH)));
    int big = typed(with_float(node(MX_OP_SCALE, 1, x, END), MX_A_VALUE, 30.0)); /* both sides of 20 */
    out(typed(with_float(node(MX_OP_SOFTPLUS, 1, big, END), MX_A_THRESHOLD, 20.0)));
    int bf = typed(with_int(node(MX_OP_CAST, 1, x, END), MX_A_DTYPE, MX_BF16));
    out(typed(with_int(node(MX_OP_CAST, 1, bf, END), MX_A_DTYPE, MX_F32)));
    out(typed(with_int(node(MX_OP_CAST, 1, x, END), MX_A_DTYPE, MX_F16)));
    int w = PARAM("w", dt, 1, 3, 0, 0, 0);
    out(typed(node(MX_OP_WEIGHTED_SUM, 1, w, x, e, op1(MX_OP_SIGMOID, x), END)));
    mx_type scalar = {dt, 0, {0}};
    int half = mx_graph_add_source(G, MX_OP_CONST, "half", scalar);
    mx_node_set_float(G, half, MX_A_VALUE, 0.5);
    out(op2(MX_OP_ADD, x, mx_node_output(G, half, 0)));
    check_graph(0, tol);
}

/* ---- unit: rows and convolutions ---------------------------------------------------- */

static int reduce(int x, mx_reduce_kind kind, int axis, int keep) {
    int n = with_int(node(MX_OP_REDUCE, 1, x, END), MX_A_KIND, kind);
    return typed(with_int(with_int(n, MX_A_AXIS, axis), MX_A_KEEPDIM, keep));
}

static void check_rows(int64_t n, int threads) {
    char name[32];
    snprintf(name, sizeof name, "rows_%lld", (long long)n);
    G = mx_graph_new(name);
    int x = INPUT("x", MX_F32, 2, 3, n, 0, 0), gamma = PARAM("g", MX_F32, 1, n, 0, 0, 0);
    int beta = PARAM("b", MX_F32, 1, n, 0, 0, 0);
    out(typed(node(MX_OP_LAYERNORM, 1, op2(MX_OP_ADD, x, x), gamma, beta, END)));
    int rms = typed(with_float(node(MX_OP_RMSNORM, 1, x, gamma, END), MX_A_EPS, 1e-6));
    out(op2(MX_OP_MUL, rms, op1(MX_OP_SIGMOID, x)));
    out(op1(MX_OP_SOFTMAX, x));
    out(typed(with_int(node(MX_OP_SOFTMAX, 1, x, END), MX_A_AXIS, 0)));
    out(reduce(x, MX_REDUCE_SUM, -1, 0));
    out(reduce(x, MX_REDUCE_MEAN, 0, 1));
    out(reduce(x, MX_REDUCE_MAX, -1, 1));
    mx_type scalar = {MX_F32, 0, {0}};
    int eps = mx_graph_add_source(G, MX_OP_CONST, "eps", scalar);
    mx_node_set_float(G, eps, MX_A_VALUE, 1e-5);
    out(op1(MX_OP_SQRT, op2(MX_OP_ADD, reduce(x, MX_REDUCE_VAR, -1, 1), mx_node_output(G, eps, 0))));
    out(op2(MX_OP_SUB, x, reduce(x, MX_REDUCE_MEAN, -1, 1)));
    check_graph(threads, 1e-4);
}

static void check_convs(int threads) {
    G = mx_graph_new("convs");
    int x = INPUT("x", MX_F32, 3, 2, 5, 13, 0), w = PARAM("w", MX_F32, 2, 5, 4, 0, 0);
    int b = PARAM("b", MX_F32, 1, 5, 0, 0, 0);
    out(op1(MX_OP_SILU, typed(node(MX_OP_DWCONV1D, 1, x, w, b, END))));
    out(typed(with_int(node(MX_OP_DWCONV1D, 1, op1(MX_OP_EXP, x), w, END), MX_A_MODE, MX_CONV_SAME)));
    /* channels last ({axis=1}, what canonicalize makes of short rows on the
     * cpu), with shared weights and with weights per position [K, L, C] */
    int xl = INPUT("xl", MX_F32, 3, 2, 13, 5, 0);
    out(op1(MX_OP_SILU, typed(with_int(node(MX_OP_DWCONV1D, 1, xl, w, b, END), MX_A_AXIS, 1))));
    int wp = PARAM("wp", MX_F32, 3, 4, 13, 5, 0), bp = PARAM("bp", MX_F32, 2, 13, 5, 0, 0);
    out(typed(with_int(with_int(node(MX_OP_DWCONV1D, 1, xl, wp, bp, END), MX_A_AXIS, 1), MX_A_MODE, MX_CONV_SAME)));
    int i = INPUT("i", MX_F32, 4, 2, 3, 7, 9), k = PARAM("k", MX_F32, 3, 3, 3, 3, 0);
    out(typed(node(MX_OP_DWCONV2D, 1, i, k, PARAM("b3", MX_F32, 1, 3, 0, 0, 0), END)));
    int kk = PARAM("kk", MX_F32, 4, 4, 3, 3, 3);
    int c2 = with_int(with_int(node(MX_OP_CONV2D, 1, i, kk, END), MX_A_STRIDE, 2), MX_A_PAD, 1);
    out(op1(MX_OP_RELU, typed(c2)));
    check_graph(threads, 1e-5);
}

/* ---- NVRTC: every zoo model ------------------------------------------------------------ */

typedef struct {
    char path[512];
    mx_model *model;
} zoo_model;

static int load_zoo(zoo_model *z, int cap) {
    char *paths[64];
    int n_paths = support_list_files(MIXC_SOURCE_DIR "/models", ".json", paths, 64);
    int n = 0;
    for (int i = 0; i < n_paths && n < cap; i++) {
        zoo_model *m = &z[n];
        memset(m, 0, sizeof *m);
        snprintf(m->path, sizeof m->path, "%s", paths[i]);
        m->model = support_load_reduced(m->path, NULL);
        n += m->model != NULL;
    }
    support_free_files(paths, n_paths);
    CHECK_MSG(n >= 11, "only %d zoo models", n);
    return n;
}

static void free_zoo(zoo_model *z, int n) {
    for (int i = 0; i < n; i++)
        mx_model_free(z[i].model);
}

/* One zoo model compiled as `mixc compile --cubin` does (mx_compile for a
 * named cuda target without loading, the module the device would run, its
 * programs through mx_gpu_compile, in parallel): no spills. */
static void compile_for(const zoo_model *z, const char *target, bool show) {
    const char *file = strrchr(z->path, '/') + 1;
    mx_target t;
    mx_diag d = {{0}};
    CHECK_MSG(mx_target_named(target, MX_DEVICE_CUDA, &t, &d) == MX_OK, "%s", d.msg);
    mx_compile_options o = {.no_load = 1};
    mx_compiled *c = mx_compile_model(z->model, &t, &o, &d);
    mx_module m = {0};
    mx_status st = c ? mx_compiled_module(c, &m, &d) : MX_ERR_INVALID;
    mx_cubin bins[MX_CODEGEN_MAX_PROGRAMS];
    double t0 = now_s();
    if (st == MX_OK)
        st = mx_gpu_compile(&m, file, t.sm, bins, &d);
    CHECK_MSG(st == MX_OK, "%s for %s: %s", file, target, d.msg);
    int kernels = 0, most = 0, spills = 0;
    for (int q = 0; st == MX_OK && q < m.n_programs; q++) {
        const mx_cubin *cb = &bins[q];
        kernels += cb->n_kernels;
        for (int k = 0; k < cb->n_kernels; k++) {
            const mx_kernel_usage *u = &cb->kernels[k];
            most = u->registers > most ? u->registers : most;
            spills += u->spill_stores + u->spill_loads;
            CHECK_MSG(u->spill_stores + u->spill_loads == 0, "%s %s: %s spills %d/%d bytes", file, target, u->name,
                      u->spill_stores, u->spill_loads);
            if (show)
                printf("    %-40s %3d regs %5d smem\n", u->name, u->registers, u->smem);
        }
        mx_cubin_free(&bins[q]);
    }
    for (int k = 0; st == MX_OK && k < m.n_kernels; k++)
        CHECK_MSG(m.kernels[k].program >= 0 && m.kernels[k].program < m.n_programs, "%s: kernel %s in no program",
                  file, m.kernels[k].name);
    if (st == MX_OK)
        printf("%-26s %-6s %7d %8d %7.1f s  %d / %d\n", file, target, kernels, m.n_programs, now_s() - t0, most,
               spills);
    mx_module_free(&m);
    mx_compiled_free(c);
}

static void check_nvrtc(zoo_model *z, int n) {
    setenv("MIXC_NO_CACHE", "1", 0); /* the times below are compiles, not cache hits */
    printf("%-26s %-6s %7s %8s %9s  %s\n", "model", "target", "kernels", "programs", "compile", "registers (max) / spill bytes");
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        for (int s = 0; s < 2; s++)
            compile_for(&z[i], s ? "sm_90" : "sm_80", getenv("MIXC_TEST_SHOW") != NULL);
    printf("NVRTC: %d models for sm_80 and sm_90 in %.1f s (wall)\n", n, now_s() - t0);
}

/* ---- end to end -------------------------------------------------------------------------- */

static void check_ir_file(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/ir/%s", MIXC_SOURCE_DIR, name);
    mx_graph *g = support_load_graph(path);
    if (!g)
        return;
    mx_diag d = {{0}};
    mx_buffers *sb = mx_buffers_new(g);
    mx_buffers_fill_random(sb, g, SEED);
    CHECK_MSG(mx_ref_run(g, sb, &d) == MX_OK, "%s: %s", name, d.msg);
    bool half = strstr(name, "bf16") || strstr(name, "mixed");
    check_emulated(name, g, sb, 0, half ? 2e-2 : 1e-4);
    mx_buffers_free(sb);
    mx_graph_free(g);
}

static void check_zoo_emulated(zoo_model *z, int n) {
    for (int i = 0; i < n; i++) {
        const mx_graph *g = mx_model_graph(z[i].model);
        mx_buffers *sb = mx_buffers_new(g);
        mx_buffers_fill_random(sb, g, SEED);
        mx_model_init_params(z[i].model, sb, SEED);
        mx_diag d = {{0}};
        CHECK_MSG(mx_ref_run(g, sb, &d) == MX_OK, "%s: %s", z[i].path, d.msg);
        double t0 = now_s();
        check_emulated(strrchr(z[i].path, '/') + 1, g, sb, 0, 1e-4);
        printf("emulated %-26s %.1f s\n", strrchr(z[i].path, '/') + 1, now_s() - t0);
        mx_buffers_free(sb);
    }
}

/* A chain of adds over 300 inputs: fuse would make it one kernel, of more
 * buffers than a launch passes; it stops at MX_GROUP_MAX_BUFFERS, and the
 * kernels it makes compute the reference's sum. */
static void check_wide_chain(void) {
    enum { N = 300 };
    static char text[N * 64 + 256];
    size_t len = (size_t)snprintf(text, sizeof text, "graph wide {\n");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "  %%x%d = input() : f32[4]\n", i);
    len += (size_t)snprintf(text + len, sizeof text - len, "  %%s1 = add(%%x0, %%x1) : f32[4]\n");
    for (int i = 2; i < N; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "  %%s%d = add(%%s%d, %%x%d) : f32[4]\n", i, i - 1, i);
    snprintf(text + len, sizeof text - len, "  output %%s%d\n}\n", N - 1);
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(text, "wide.mxir", &d);
    CHECK_MSG(g, "%s", d.msg);
    mx_program *p = g ? compile(g) : NULL;
    if (p) {
        mx_codegen_options o = {.target = support_gpu_target("sm_90")};
        mx_module m;
        mx_status st = mx_codegen(p, &o, &m, &d);
        CHECK_MSG(st == MX_OK, "300 inputs: %s", d.msg);
        if (st == MX_OK) {
            CHECK_MSG(m.n_kernels == 2, "300 inputs: %d kernels, not 2", m.n_kernels);
            for (int k = 0; k < m.n_kernels; k++)
                CHECK_MSG(m.kernels[k].n_args <= MX_GROUP_MAX_BUFFERS, "300 inputs: kernel %d has %d buffers", k,
                          m.kernels[k].n_args);
            mx_module_free(&m);
        }
        mx_buffers *sb = mx_buffers_new(g);
        mx_buffers_fill_random(sb, g, SEED);
        CHECK_MSG(mx_ref_run(g, sb, &d) == MX_OK, "300 inputs: %s", d.msg);
        check_emulated("300 inputs", g, sb, 0, 1e-4);
        mx_buffers_free(sb);
    }
    mx_program_free(p);
    mx_graph_free(g);
}

int main(void) {
    check_wide_chain();
    bool quick = getenv("MIXC_TEST_QUICK") != NULL;
    check_views();
    check_ops(MX_F32, 1e-5);
    check_ops(MX_F16, 1e-2);
    check_ops(MX_BF16, 2e-2);
    static const int lens[] = {1, 7, 33, 1000};
    for (int i = 0; i < 4; i++)
        check_rows(lens[i], i == 3 ? 0 : 32 << i);
    check_rows(33, 256);
    check_convs(0);
    check_convs(32);
    static const char *const files[] = {"patch_merging.mxir", "cls_head.mxir", "gelu_mlp.mxir",  "attention.mxir",
                                        "tsm2_front.mxir",    "rmsnorm_block.mxir", "mixed_precision.mxir",
                                        "spatial_attention.mxir", "tsm2_head.mxir", "cls_token.mxir",
                                        "layernorm_decomposed.mxir", "vim2_stem.mxir"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        check_ir_file(files[i]);
    static zoo_model zoo[32];
    int n = load_zoo(zoo, 32);
    check_nvrtc(zoo, n);
    if (!quick)
        check_zoo_emulated(zoo, n);
    free_zoo(zoo, n);
    return check_summary();
}
