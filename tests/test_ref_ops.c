/* test_ref_ops.c: the reference interpreter, op by op.
 *
 * Each op runs on fresh random inputs and is compared with a direct
 * computation written here from docs/ops.md (plain loops in double, for the
 * shapes at hand), and on small cases whose results are written out by hand.
 * Every non-source value is poisoned with NaN before a run, so a kernel that
 * forgets to write an element fails. f32 results must be within TOL of the
 * f64 loops, relative (absolute below 1). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "half.h"
#include "ir.h"

#define TOL 1e-5

/* DIMS(2, 3) expands to the pointer and count arguments of a shape. */
#define DIMS(...)                                                              \
    (const int64_t[]){__VA_ARGS__}, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define VALUES(...)                                                            \
    (const double[]){__VA_ARGS__}, (int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double))

/* ---- building and running graphs ------------------------------------------ */

static int add_input_typed(mx_graph *g, const char *name, mx_dtype dtype, const int64_t *dim,
                           int rank) {
    mx_type t = {dtype, rank, {0}};
    memcpy(t.dim, dim, (size_t)rank * sizeof *dim);
    return mx_node_output(g, mx_graph_add_source(g, MX_OP_INPUT, name, t), 0);
}
#define INPUT(g, name, ...) add_input_typed(g, name, MX_F32, DIMS(__VA_ARGS__))

/* Infers the node's output types (the shape rules of ir/shape.c) and returns
 * its first output. */
static int infer(mx_graph *g, int node) {
    mx_diag d = {{0}};
    mx_status st = mx_graph_infer_node(g, node, &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    return mx_node_output(g, node, 0);
}

static int add_op(mx_graph *g, mx_op op, const int *in, int n_in) {
    return mx_graph_add_node(g, op, in, n_in, 1);
}

/* One op with default attributes, inferred: its output value. */
static int op1(mx_graph *g, mx_op op, const int *in, int n_in) {
    return infer(g, add_op(g, op, in, n_in));
}

/* Buffers with every input uniform in [lo, hi) and every computed value
 * poisoned with NaN. */
static mx_buffers *prepare(const mx_graph *g, float lo, float hi) {
    mx_buffers *b = mx_buffers_new(g);
    for (int v = 0; v < b->count; v++) {
        mx_op op = g->nodes[g->values[v].node].op;
        if (op == MX_OP_CONST)
            continue;
        b->data[v] = malloc((size_t)b->numel[v] * sizeof(float));
        if (op == MX_OP_INPUT || op == MX_OP_PARAM)
            check_fill(b->data[v], b->numel[v], lo, hi);
        else
            for (int64_t i = 0; i < b->numel[v]; i++)
                b->data[v][i] = NAN;
    }
    return b;
}

static void set_values(mx_buffers *b, int v, const double *x, int n) {
    CHECK(n == b->numel[v]);
    for (int i = 0; i < n && i < b->numel[v]; i++)
        b->data[v][i] = (float)x[i];
}

static void execute(const mx_graph *g, mx_buffers *b) {
    mx_diag d = {{0}};
    mx_status st = mx_ref_run(g, b, &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
}

/* The result of value v against want[numel]. */
static void expect(const mx_buffers *b, int v, const double *want, const char *what) {
    CHECK_CLOSE(b->data[v], want, b->numel[v], TOL, what);
}

static void expect_values(const mx_buffers *b, int v, const double *want, int n, const char *what) {
    CHECK_MSG(n == b->numel[v], "%s: %lld elements, want %d", what, (long long)b->numel[v], n);
    if (n == b->numel[v])
        expect(b, v, want, what);
}

static void expect_shape(const mx_graph *g, int v, const int64_t *dim, int rank, const char *what) {
    const mx_type *t = mx_value_type(g, v);
    bool same = t->rank == rank;
    for (int a = 0; same && a < rank; a++)
        same = t->dim[a] == dim[a];
    char buf[64];
    CHECK_MSG(same, "%s: shape %s", what, mx_type_str(t, buf, sizeof buf));
}

static double *want_of(const mx_buffers *b, int v) {
    return calloc((size_t)b->numel[v], sizeof(double));
}

static void finish(mx_graph *g, mx_buffers *b) {
    mx_buffers_free(b);
    mx_graph_free(g);
}

/* ---- rounding to f16 / bf16 ---------------------------------------------- */

static void test_rounding(void) {
    CHECK(mx_round_to(MX_BF16, 1.0f / 3) == 0.333984375f);
    CHECK(mx_round_to(MX_F16, 1.0f / 3) == 0.333251953125f);
    CHECK(mx_round_to(MX_F32, 1.0f / 3) == 1.0f / 3);
    /* f16: ties to even, overflow, subnormals, specials */
    CHECK(mx_round_to(MX_F16, 1 + 0x1p-11f) == 1);
    CHECK(mx_round_to(MX_F16, 1 + 3 * 0x1p-11f) == 1 + 0x1p-9f);
    CHECK(mx_round_to(MX_F16, 65504) == 65504);
    CHECK(mx_round_to(MX_F16, 65519) == 65504);
    CHECK(isinf(mx_round_to(MX_F16, 65520)) && mx_round_to(MX_F16, 65520) > 0);
    CHECK(isinf(mx_round_to(MX_F16, -1e30f)) && mx_round_to(MX_F16, -1e30f) < 0);
    CHECK(isinf(mx_round_to(MX_F16, INFINITY)));
    CHECK(isnan(mx_round_to(MX_F16, NAN)));
    CHECK(mx_round_to(MX_F16, 0x1p-14f) == 0x1p-14f);
    CHECK(mx_round_to(MX_F16, 0x1p-24f) == 0x1p-24f);
    CHECK(mx_round_to(MX_F16, 0x1p-25f) == 0);
    CHECK(mx_round_to(MX_F16, 0x1.8p-24f) == 0x1p-23f);
    CHECK(mx_round_to(MX_F16, -0x1.8p-25f) == -0x1p-24f);
    CHECK(mx_round_to(MX_F16, 1e-10f) == 0);
    CHECK(signbit(mx_round_to(MX_F16, -0.0f)));
    CHECK(mx_f16_to_f32(0x0001) == 0x1p-24f && mx_f16_to_f32(0x03FF) == 1023 * 0x1p-24f);
    CHECK(mx_f16_to_f32(0xC000) == -2 && mx_f32_to_f16(-2) == 0xC000);
    /* bf16 */
    CHECK(mx_round_to(MX_BF16, 1 + 0x1p-8f) == 1);
    CHECK(mx_round_to(MX_BF16, 1 + 3 * 0x1p-8f) == 1 + 0x1p-6f);
    CHECK(isinf(mx_round_to(MX_BF16, 3.4028235e38f)));
    CHECK(mx_round_to(MX_BF16, 3.3895314e38f) == 3.3895314e38f);
    CHECK(isinf(mx_round_to(MX_BF16, -INFINITY)) && mx_round_to(MX_BF16, -INFINITY) < 0);
    CHECK(isnan(mx_round_to(MX_BF16, NAN)) && isnan(mx_round_to(MX_BF16, -NAN)));
    CHECK(signbit(mx_round_to(MX_BF16, -0.0f)));
    /* every finite half pattern survives f32 and back */
    int f16_bad = 0, bf16_bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) != 0x7C00 || (h & 0x3FF) == 0)
            f16_bad += mx_f32_to_f16(mx_f16_to_f32((uint16_t)h)) != h;
        if ((h & 0x7F80) != 0x7F80 || (h & 0x7F) == 0)
            bf16_bad += mx_f32_to_bf16(mx_bf16_to_f32((uint16_t)h)) != h;
    }
    CHECK(f16_bad == 0 && bf16_bad == 0);
}

/* A node's output of dtype f16/bf16 is rounded when stored. */
static void test_output_rounding(void) {
    mx_graph *g = mx_graph_new("rounding");
    int x = INPUT(g, "x", 3);
    int xh = add_input_typed(g, "xh", MX_F16, DIMS(3));
    int n = add_op(g, MX_OP_CAST, &x, 1);
    mx_node_set_int(g, n, MX_A_DTYPE, MX_BF16);
    int to_bf16 = infer(g, n);
    n = add_op(g, MX_OP_CAST, &x, 1);
    mx_node_set_int(g, n, MX_A_DTYPE, MX_F16);
    int to_f16 = infer(g, n);
    int halves[2] = {xh, xh};
    int sum = op1(g, MX_OP_ADD, halves, 2);
    CHECK(mx_value_type(g, sum)->dtype == MX_F16);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, x, VALUES(1.0 / 3, 65520, -1e-9));
    set_values(b, xh, VALUES(1.0 / 3, 40000, 1 + 0x1p-11)); /* rounded on entry */
    execute(g, b);
    expect_values(b, to_bf16, VALUES(0.333984375, 65536, -1e-9), "cast to bf16");
    CHECK(b->data[to_bf16][2] == mx_round_to(MX_BF16, -1e-9f));
    CHECK(b->data[to_f16][0] == 0.333251953125f && isinf(b->data[to_f16][1]));
    CHECK(b->data[to_f16][2] == 0 && signbit(b->data[to_f16][2]));
    CHECK(b->data[xh][0] == 0.333251953125f && b->data[xh][2] == 1);
    CHECK(b->data[sum][0] == 0.66650390625f); /* 2 * 0.333251953125, exact */
    CHECK(isinf(b->data[sum][1]));            /* 80000 overflows f16 */
    CHECK(b->data[sum][2] == 2);
    finish(g, b);
}

/* ---- sources and the interpreter ------------------------------------------ */

static void test_sources(void) {
    mx_graph *g = mx_graph_new("sources");
    mx_type t = {MX_F32, 2, {2, 3}};
    int c_node = mx_graph_add_source(g, MX_OP_CONST, "c", t);
    mx_node_set_float(g, c_node, MX_A_VALUE, 2.5);
    int c = mx_node_output(g, c_node, 0);
    t.dtype = MX_BF16;
    int third_node = mx_graph_add_source(g, MX_OP_CONST, "third", t);
    mx_node_set_float(g, third_node, MX_A_VALUE, 1.0 / 3);
    int third = mx_node_output(g, third_node, 0);
    int x = INPUT(g, "x", 2, 3);
    int in[2] = {x, c};
    int y = op1(g, MX_OP_MUL, in, 2);
    mx_buffers *b = prepare(g, -1, 1);
    execute(g, b);
    double want_c[6], want_third[6], want_y[6];
    for (int i = 0; i < 6; i++) {
        want_c[i] = 2.5;
        want_third[i] = 0.333984375;
        want_y[i] = 2.5 * b->data[x][i];
    }
    expect_values(b, c, want_c, 6, "const");
    expect_values(b, third, want_third, 6, "const bf16");
    expect_values(b, y, want_y, 6, "x * const");
    /* a second run over the same buffers recomputes the same numbers */
    b->data[y][0] = NAN;
    execute(g, b);
    expect_values(b, y, want_y, 6, "second run");
    mx_buffers_free(b);

    /* an input without data is an error that names it */
    b = mx_buffers_new(g);
    CHECK(b->count == mx_graph_value_count(g) && b->numel[x] == 6 && !b->data[x]);
    mx_diag d = {{0}};
    CHECK(mx_ref_run(g, b, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "%x") != NULL, "message: %s", d.msg);
    finish(g, b);

    /* so is a node whose type was never inferred */
    g = mx_graph_new("untyped");
    x = INPUT(g, "x", 2);
    int y_node = add_op(g, MX_OP_NEG, &x, 1);
    b = prepare(g, -1, 1);
    CHECK(mx_ref_run(g, b, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "neg") != NULL, "message: %s", d.msg);
    infer(g, y_node);
    CHECK(mx_ref_run(g, b, &d) == MX_ERR_INVALID); /* buffers sized before inference */
    finish(g, b);
}

static void test_fill_random(void) {
    mx_graph *g = mx_graph_new("random");
    mx_type t = {MX_F32, 2, {50, 40}};
    int a = mx_node_output(g, mx_graph_add_source(g, MX_OP_INPUT, "a", t), 0);
    int p = mx_node_output(g, mx_graph_add_source(g, MX_OP_PARAM, "p", t), 0);
    t.dtype = MX_F16;
    int h = mx_node_output(g, mx_graph_add_source(g, MX_OP_INPUT, "h", t), 0);
    t.dtype = MX_BF16;
    int bf = mx_node_output(g, mx_graph_add_source(g, MX_OP_PARAM, "bf", t), 0);
    mx_buffers *b1 = mx_buffers_new(g), *b2 = mx_buffers_new(g), *b3 = mx_buffers_new(g);
    mx_buffers_fill_random(b1, g, 7);
    mx_buffers_fill_random(b2, g, 7);
    mx_buffers_fill_random(b3, g, 8);
    int64_t n = 2000;
    CHECK(memcmp(b1->data[a], b2->data[a], (size_t)n * sizeof(float)) == 0);
    CHECK(memcmp(b1->data[bf], b2->data[bf], (size_t)n * sizeof(float)) == 0);
    CHECK(memcmp(b1->data[a], b3->data[a], (size_t)n * sizeof(float)) != 0);
    CHECK(memcmp(b1->data[a], b1->data[p], (size_t)n * sizeof(float)) != 0);
    int values[4] = {a, p, h, bf};
    mx_dtype dtypes[4] = {MX_F32, MX_F32, MX_F16, MX_BF16};
    for (int k = 0; k < 4; k++) {
        const float *x = b1->data[values[k]];
        int out_of_range = 0, inexact = 0, negative = 0;
        double mean = 0;
        for (int64_t i = 0; i < n; i++) {
            out_of_range += !(x[i] >= -1 && x[i] < 1);
            inexact += mx_round_to(dtypes[k], x[i]) != x[i];
            negative += x[i] < 0;
            mean += x[i] / (double)n;
        }
        CHECK_MSG(out_of_range == 0 && inexact == 0, "value %d", values[k]);
        CHECK_MSG(negative > 900 && negative < 1100 && fabs(mean) < 0.05, "value %d: mean %g",
                  values[k], mean);
    }
    /* a value's numbers follow its name, not its place in the graph */
    mx_graph *g2 = mx_graph_new("random");
    t.dtype = MX_F32;
    mx_graph_add_source(g2, MX_OP_INPUT, "other", t);
    int a2 = mx_node_output(g2, mx_graph_add_source(g2, MX_OP_INPUT, "a", t), 0);
    mx_buffers *b4 = mx_buffers_new(g2);
    mx_buffers_fill_random(b4, g2, 7);
    CHECK(a2 != a && memcmp(b1->data[a], b4->data[a2], (size_t)n * sizeof(float)) == 0);
    mx_buffers_free(b1);
    mx_buffers_free(b2);
    mx_buffers_free(b3);
    mx_buffers_free(b4);
    mx_graph_free(g);
    mx_graph_free(g2);
}

/* ---- dense products ------------------------------------------------------- */

static void test_linear(void) {
    /* by hand: x[2,3], W[2,3], b[2] */
    mx_graph *g = mx_graph_new("linear");
    int in[3] = {INPUT(g, "x", 2, 3), INPUT(g, "W", 2, 3), INPUT(g, "b", 2)};
    int y = op1(g, MX_OP_LINEAR, in, 3);
    expect_shape(g, y, DIMS(2, 2), "linear");
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, in[0], VALUES(1, 2, 3, 4, 5, 6));
    set_values(b, in[1], VALUES(1, 0, -1, 0.5, 0.5, 0.5));
    set_values(b, in[2], VALUES(10, -1));
    execute(g, b);
    expect_values(b, y, VALUES(8, 2, 8, 6.5), "linear by hand");
    finish(g, b);

    /* random: x[2,3,5] with bias, x[5] without; W a param */
    g = mx_graph_new("linear");
    mx_type w_type = {MX_F32, 2, {4, 5}};
    int W = mx_node_output(g, mx_graph_add_source(g, MX_OP_PARAM, "W", w_type), 0);
    int x = INPUT(g, "x", 2, 3, 5), bias = INPUT(g, "b", 4);
    int x1 = INPUT(g, "x1", 5);
    int with_bias = op1(g, MX_OP_LINEAR, (int[]){x, W, bias}, 3);
    int no_bias = op1(g, MX_OP_LINEAR, (int[]){x1, W}, 2);
    expect_shape(g, with_bias, DIMS(2, 3, 4), "linear");
    expect_shape(g, no_bias, DIMS(4), "linear rank 1");
    b = prepare(g, -1, 1);
    execute(g, b);
    double *want = want_of(b, with_bias), want1[4];
    for (int r = 0; r < 6; r++)
        for (int n = 0; n < 4; n++) {
            double s = b->data[bias][n];
            for (int k = 0; k < 5; k++)
                s += (double)b->data[x][r * 5 + k] * b->data[W][n * 5 + k];
            want[r * 4 + n] = s;
        }
    for (int n = 0; n < 4; n++) {
        want1[n] = 0;
        for (int k = 0; k < 5; k++)
            want1[n] += (double)b->data[x1][k] * b->data[W][n * 5 + k];
    }
    expect(b, with_bias, want, "linear with bias");
    expect(b, no_bias, want1, "linear without bias");
    free(want);
    finish(g, b);
}

static void test_matmul(void) {
    mx_graph *g = mx_graph_new("matmul");
    int in[2] = {INPUT(g, "a", 2, 2), INPUT(g, "b", 2, 2)};
    int y = op1(g, MX_OP_MATMUL, in, 2);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, in[0], VALUES(1, 2, 3, 4));
    set_values(b, in[1], VALUES(5, 6, 7, 8));
    execute(g, b);
    expect_values(b, y, VALUES(19, 22, 43, 50), "matmul by hand");
    finish(g, b);

    /* batch dims broadcast: [2,1,3,4] x [5,4,2] -> [2,5,3,2] */
    g = mx_graph_new("matmul");
    int A = INPUT(g, "a", 2, 1, 3, 4), B = INPUT(g, "b", 5, 4, 2);
    y = op1(g, MX_OP_MATMUL, (int[]){A, B}, 2);
    expect_shape(g, y, DIMS(2, 5, 3, 2), "matmul");
    b = prepare(g, -1, 1);
    execute(g, b);
    double *want = want_of(b, y);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++)
            for (int m = 0; m < 3; m++)
                for (int n = 0; n < 2; n++) {
                    double s = 0;
                    for (int k = 0; k < 4; k++)
                        s += (double)b->data[A][(i * 3 + m) * 4 + k] *
                             b->data[B][(j * 4 + k) * 2 + n];
                    want[((i * 5 + j) * 3 + m) * 2 + n] = s;
                }
    expect(b, y, want, "matmul broadcast");
    free(want);
    finish(g, b);
}

static void test_conv2d(void) {
    mx_graph *g = mx_graph_new("conv2d");
    int in[2] = {INPUT(g, "x", 1, 1, 3, 3), INPUT(g, "w", 1, 1, 2, 2)};
    int y = op1(g, MX_OP_CONV2D, in, 2);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, in[0], VALUES(1, 2, 3, 4, 5, 6, 7, 8, 9));
    set_values(b, in[1], VALUES(1, 1, 1, 1));
    execute(g, b);
    expect_values(b, y, VALUES(12, 16, 24, 28), "conv2d by hand");
    finish(g, b);

    /* random, stride 2, pad 1: [2,3,7,6] * [4,3,3,2] -> [2,4,4,4] */
    g = mx_graph_new("conv2d");
    int x = INPUT(g, "x", 2, 3, 7, 6), w = INPUT(g, "w", 4, 3, 3, 2), bias = INPUT(g, "b", 4);
    int n = add_op(g, MX_OP_CONV2D, (int[]){x, w, bias}, 3);
    mx_node_set_int(g, n, MX_A_STRIDE, 2);
    mx_node_set_int(g, n, MX_A_PAD, 1);
    y = infer(g, n);
    expect_shape(g, y, DIMS(2, 4, 4, 4), "conv2d");
    b = prepare(g, -1, 1);
    execute(g, b);
    double *want = want_of(b, y);
    for (int bb = 0; bb < 2; bb++)
        for (int o = 0; o < 4; o++)
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    double s = b->data[bias][o];
                    for (int c = 0; c < 3; c++)
                        for (int u = 0; u < 3; u++)
                            for (int v = 0; v < 2; v++) {
                                int r = 2 * i - 1 + u, q = 2 * j - 1 + v;
                                if (r >= 0 && r < 7 && q >= 0 && q < 6)
                                    s += (double)b->data[x][((bb * 3 + c) * 7 + r) * 6 + q] *
                                         b->data[w][((o * 3 + c) * 3 + u) * 2 + v];
                            }
                    want[((bb * 4 + o) * 4 + i) * 4 + j] = s;
                }
    expect(b, y, want, "conv2d");
    free(want);
    finish(g, b);
}

static void test_dwconv1d(void) {
    /* by hand: x = 1..4, w = [1, 10, 100] */
    for (int mode = MX_CONV_CAUSAL; mode <= MX_CONV_SAME; mode++) {
        mx_graph *g = mx_graph_new("dwconv1d");
        int in[2] = {INPUT(g, "x", 1, 1, 4), INPUT(g, "w", 1, 3)};
        int n = add_op(g, MX_OP_DWCONV1D, in, 2);
        mx_node_set_int(g, n, MX_A_MODE, mode);
        int y = infer(g, n);
        mx_buffers *b = prepare(g, -1, 1);
        set_values(b, in[0], VALUES(1, 2, 3, 4));
        set_values(b, in[1], VALUES(1, 10, 100));
        execute(g, b);
        if (mode == MX_CONV_CAUSAL)
            expect_values(b, y, VALUES(100, 210, 321, 432), "dwconv1d causal by hand");
        else
            expect_values(b, y, VALUES(210, 321, 432, 43), "dwconv1d same by hand");
        finish(g, b);
    }
    /* random: [2,3,9], K = 4 and 3, both modes, with and without bias */
    for (int K = 3; K <= 4; K++)
        for (int mode = MX_CONV_CAUSAL; mode <= MX_CONV_SAME; mode++) {
            mx_graph *g = mx_graph_new("dwconv1d");
            int x = INPUT(g, "x", 2, 3, 9), w = add_input_typed(g, "w", MX_F32, DIMS(3, K));
            int bias = INPUT(g, "b", 3);
            int n = add_op(g, MX_OP_DWCONV1D, (int[]){x, w, bias}, 3 - (K == 4));
            mx_node_set_int(g, n, MX_A_MODE, mode);
            int y = infer(g, n);
            mx_buffers *b = prepare(g, -1, 1);
            execute(g, b);
            double *want = want_of(b, y);
            int P = mode == MX_CONV_CAUSAL ? K - 1 : (K - 1) / 2;
            for (int bc = 0; bc < 6; bc++)
                for (int l = 0; l < 9; l++) {
                    double s = K == 4 ? 0 : b->data[bias][bc % 3];
                    for (int k = 0; k < K; k++)
                        if (l - P + k >= 0 && l - P + k < 9)
                            s += (double)b->data[w][(bc % 3) * K + k] *
                                 b->data[x][bc * 9 + l - P + k];
                    want[bc * 9 + l] = s;
                }
            expect(b, y, want, mode == MX_CONV_CAUSAL ? "dwconv1d causal" : "dwconv1d same");
            free(want);
            finish(g, b);
        }
}

static void test_dwconv2d(void) {
    /* by hand: y[i,j] = x[i,j] + 2 x[i+1,j+1] */
    mx_graph *g = mx_graph_new("dwconv2d");
    int in[2] = {INPUT(g, "x", 1, 1, 2, 2), INPUT(g, "w", 1, 3, 3)};
    int y = op1(g, MX_OP_DWCONV2D, in, 2);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, in[0], VALUES(1, 2, 3, 4));
    set_values(b, in[1], VALUES(0, 0, 0, 0, 1, 0, 0, 0, 2));
    execute(g, b);
    expect_values(b, y, VALUES(9, 2, 3, 4), "dwconv2d by hand");
    finish(g, b);

    /* random: [2,3,5,6], K = 3 (symmetric) and 4 (1 top/left, 2 bottom/right) */
    for (int K = 3; K <= 4; K++) {
        g = mx_graph_new("dwconv2d");
        int x = INPUT(g, "x", 2, 3, 5, 6), w = add_input_typed(g, "w", MX_F32, DIMS(3, K, K));
        int bias = INPUT(g, "b", 3);
        y = op1(g, MX_OP_DWCONV2D, (int[]){x, w, bias}, 3 - (K == 4));
        expect_shape(g, y, DIMS(2, 3, 5, 6), "dwconv2d");
        b = prepare(g, -1, 1);
        execute(g, b);
        double *want = want_of(b, y);
        int P = (K - 1) / 2;
        for (int bc = 0; bc < 6; bc++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 6; j++) {
                    double s = K == 4 ? 0 : b->data[bias][bc % 3];
                    for (int u = 0; u < K; u++)
                        for (int v = 0; v < K; v++) {
                            int r = i - P + u, q = j - P + v;
                            if (r >= 0 && r < 5 && q >= 0 && q < 6)
                                s += (double)b->data[w][((bc % 3) * K + u) * K + v] *
                                     b->data[x][(bc * 5 + r) * 6 + q];
                        }
                    want[(bc * 5 + i) * 6 + j] = s;
                }
        expect(b, y, want, "dwconv2d");
        free(want);
        finish(g, b);
    }
}

/* ---- elementwise ---------------------------------------------------------- */

static double binary(mx_op op, double a, double b) {
    return op == MX_OP_ADD ? a + b : op == MX_OP_SUB ? a - b : op == MX_OP_MUL ? a * b : a / b;
}

static void test_binary(void) {
    mx_graph *g = mx_graph_new("add");
    int in[2] = {INPUT(g, "a", 3), INPUT(g, "b", 2, 1)};
    int y = op1(g, MX_OP_ADD, in, 2);
    expect_shape(g, y, DIMS(2, 3), "add");
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, in[0], VALUES(1, 2, 3));
    set_values(b, in[1], VALUES(10, 20));
    execute(g, b);
    expect_values(b, y, VALUES(11, 12, 13, 21, 22, 23), "add by hand");
    finish(g, b);

    /* every op on [2,3,4] o [3,1], [4] o [2,3,4] and a scalar o [2,3] */
    static const mx_op ops[] = {MX_OP_ADD, MX_OP_SUB, MX_OP_MUL, MX_OP_DIV};
    for (int k = 0; k < 4; k++) {
        g = mx_graph_new("binary");
        int a = INPUT(g, "a", 2, 3, 4), c = INPUT(g, "c", 3, 1), v = INPUT(g, "v", 4);
        mx_type scalar_type = {MX_F32, 0, {0}};
        int s = mx_node_output(g, mx_graph_add_source(g, MX_OP_INPUT, "s", scalar_type), 0);
        int m = INPUT(g, "m", 2, 3);
        int y1 = op1(g, ops[k], (int[]){a, c}, 2);
        int y2 = op1(g, ops[k], (int[]){v, a}, 2);
        int y3 = op1(g, ops[k], (int[]){s, m}, 2);
        expect_shape(g, y2, DIMS(2, 3, 4), "broadcast [4] o [2,3,4]");
        b = prepare(g, 0.5f, 2); /* away from 0: div */
        execute(g, b);
        double w1[24], w2[24], w3[6];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) {
                w3[i * 3 + j] = binary(ops[k], b->data[s][0], b->data[m][i * 3 + j]);
                for (int l = 0; l < 4; l++) {
                    double x = b->data[a][(i * 3 + j) * 4 + l];
                    w1[(i * 3 + j) * 4 + l] = binary(ops[k], x, b->data[c][j]);
                    w2[(i * 3 + j) * 4 + l] = binary(ops[k], b->data[v][l], x);
                }
            }
        expect(b, y1, w1, mx_ops[ops[k]].name);
        expect(b, y2, w2, mx_ops[ops[k]].name);
        expect(b, y3, w3, mx_ops[ops[k]].name);
        finish(g, b);
    }
}

static double unary(mx_op op, double x, double param) {
    switch (op) {
    case MX_OP_NEG: return -x;
    case MX_OP_EXP: return exp(x);
    case MX_OP_LOG: return log(x);
    case MX_OP_SQRT: return sqrt(x);
    case MX_OP_RSQRT: return 1 / sqrt(x);
    case MX_OP_SIGMOID: return 1 / (1 + exp(-x));
    case MX_OP_SILU: return x / (1 + exp(-x));
    case MX_OP_SOFTPLUS: return x > 20 ? x : log1p(exp(x));
    case MX_OP_GELU:
        if (param == MX_GELU_TANH) {
            double inner = sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * pow(x, 3));
            return 0.5 * x * (1 + tanh(inner));
        }
        return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case MX_OP_RELU: return x < 0 ? 0 : x;
    case MX_OP_TANH: return tanh(x);
    case MX_OP_SCALE: return param * x;
    default: return x; /* cast */
    }
}

static void test_unary(void) {
    static const mx_op ops[] = {MX_OP_NEG, MX_OP_EXP, MX_OP_LOG, MX_OP_SQRT, MX_OP_RSQRT,
                                MX_OP_SIGMOID, MX_OP_SILU, MX_OP_SOFTPLUS, MX_OP_GELU, MX_OP_GELU,
                                MX_OP_RELU, MX_OP_TANH, MX_OP_SCALE, MX_OP_CAST};
    int n_ops = (int)(sizeof ops / sizeof ops[0]);
    for (int k = 0; k < n_ops; k++) {
        mx_graph *g = mx_graph_new("unary");
        int x = INPUT(g, "x", 3, 5);
        int n = add_op(g, ops[k], &x, 1);
        double param = 0;
        if (ops[k] == MX_OP_GELU && k == 9)
            mx_node_set_int(g, n, MX_A_APPROX, (param = MX_GELU_TANH));
        if (ops[k] == MX_OP_SCALE)
            mx_node_set_float(g, n, MX_A_VALUE, (param = -2.5));
        if (ops[k] == MX_OP_CAST)
            mx_node_set_int(g, n, MX_A_DTYPE, MX_F32);
        int y = infer(g, n);
        bool positive = ops[k] == MX_OP_LOG || ops[k] == MX_OP_SQRT || ops[k] == MX_OP_RSQRT;
        mx_buffers *b = prepare(g, positive ? 0.1f : -4, 4);
        execute(g, b);
        double want[15];
        for (int i = 0; i < 15; i++)
            want[i] = unary(ops[k], b->data[x][i], param);
        expect(b, y, want, mx_ops[ops[k]].name);
        finish(g, b);
    }

    /* softplus around its threshold; gelu at 1 */
    mx_graph *g = mx_graph_new("softplus");
    int x = INPUT(g, "x", 4), x20 = INPUT(g, "x20", 4);
    int n = add_op(g, MX_OP_SOFTPLUS, &x, 1);
    mx_node_set_float(g, n, MX_A_THRESHOLD, 1);
    int sp1 = infer(g, n);
    int sp20 = op1(g, MX_OP_SOFTPLUS, &x20, 1);
    int erf_gelu = op1(g, MX_OP_GELU, &x, 1);
    n = add_op(g, MX_OP_GELU, &x, 1);
    mx_node_set_int(g, n, MX_A_APPROX, MX_GELU_TANH);
    int tanh_gelu = infer(g, n);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, x, VALUES(1, 1.25, 0.75, 0));
    set_values(b, x20, VALUES(20, 21, 19.5, -30));
    execute(g, b);
    expect_values(b, sp1, VALUES(1.3132616875182228, 1.25, log1p(exp(0.75)), 0.6931471805599453),
                  "softplus, threshold 1");
    expect_values(b, sp20, VALUES(20.000000002061153, 21, 19.500000003398268, 9.3576e-14),
                  "softplus, threshold 20");
    CHECK(b->data[sp20][3] > 9.35e-14f && b->data[sp20][3] < 9.37e-14f); /* log1p, not log(1 + e) */
    CHECK(fabsf(b->data[erf_gelu][0] - 0.8413447460685429f) < 1e-7f);
    CHECK(fabsf(b->data[tanh_gelu][0] - 0.8411919906082768f) < 1e-7f);
    CHECK(b->data[erf_gelu][3] == 0 && b->data[tanh_gelu][3] == 0);
    finish(g, b);
}

/* ---- reductions, norms, softmax ------------------------------------------- */

static int add_reduce(mx_graph *g, int x, mx_reduce_kind kind, int axis, int keepdim) {
    int n = add_op(g, MX_OP_REDUCE, &x, 1);
    mx_node_set_int(g, n, MX_A_KIND, kind);
    mx_node_set_int(g, n, MX_A_AXIS, axis);
    mx_node_set_int(g, n, MX_A_KEEPDIM, keepdim);
    return infer(g, n);
}

static void test_reduce(void) {
    /* by hand: var against mean on 1..4; rank 1 reduces to a scalar */
    mx_graph *g = mx_graph_new("reduce");
    int x = INPUT(g, "x", 4);
    int r[4];
    for (int kind = 0; kind < 4; kind++)
        r[kind] = add_reduce(g, x, (mx_reduce_kind)kind, 0, 0);
    int kept = add_reduce(g, x, MX_REDUCE_VAR, -1, 1);
    CHECK(mx_value_type(g, r[0])->rank == 0);
    expect_shape(g, kept, DIMS(1), "reduce keepdim");
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, x, VALUES(1, 2, 3, 4));
    execute(g, b);
    expect_values(b, r[MX_REDUCE_SUM], VALUES(10), "sum by hand");
    expect_values(b, r[MX_REDUCE_MEAN], VALUES(2.5), "mean by hand");
    expect_values(b, r[MX_REDUCE_MAX], VALUES(4), "max by hand");
    expect_values(b, r[MX_REDUCE_VAR], VALUES(1.25), "var by hand");
    expect_values(b, kept, VALUES(1.25), "var keepdim by hand");
    finish(g, b);

    /* random [2,3,4]: every kind over every axis (given as positive and
     * negative), with and without keepdim */
    static const int64_t dim[3] = {2, 3, 4};
    for (int kind = 0; kind < 4; kind++)
        for (int axis = -3; axis < 3; axis++) {
            g = mx_graph_new("reduce");
            x = INPUT(g, "x", 2, 3, 4);
            int y = add_reduce(g, x, (mx_reduce_kind)kind, axis, axis % 2 != 0);
            int ax = axis < 0 ? axis + 3 : axis;
            const mx_type *t = mx_value_type(g, y);
            CHECK(t->rank == (axis % 2 ? 3 : 2) && (t->rank == 2 || t->dim[ax] == 1));
            b = prepare(g, -2, 2);
            execute(g, b);
            int64_t stride[3] = {12, 4, 1};
            double want[12];
            int count = 0;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++)
                    for (int l = 0; l < 4; l++) {
                        int at[3] = {i, j, l};
                        if (at[ax] != 0)
                            continue; /* one line per output, in row-major order */
                        int64_t base = i * 12 + j * 4 + l;
                        double sum = 0, max = -INFINITY, sq = 0;
                        for (int e = 0; e < dim[ax]; e++) {
                            double v = b->data[x][base + e * stride[ax]];
                            sum += v;
                            max = v > max ? v : max;
                        }
                        double mean = sum / (double)dim[ax];
                        for (int e = 0; e < dim[ax]; e++) {
                            double dev = b->data[x][base + e * stride[ax]] - mean;
                            sq += dev * dev;
                        }
                        double res[4] = {sum, mean, max, sq / (double)dim[ax]};
                        want[count++] = res[kind];
                    }
            CHECK(count == b->numel[y]);
            expect(b, y, want, "reduce");
            finish(g, b);
        }
}

/* want = (x - mean) / sqrt(var + eps) * gamma + beta per row of C. */
static void layernorm_rows(const float *x, const float *gamma, const float *beta, int rows, int C,
                           double eps, bool centered, double *want) {
    for (int r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++)
            mean += centered ? x[r * C + c] / (double)C : 0;
        for (int c = 0; c < C; c++)
            var += (x[r * C + c] - mean) * (x[r * C + c] - mean) / C;
        for (int c = 0; c < C; c++)
            want[r * C + c] = (x[r * C + c] - mean) / sqrt(var + eps) * (gamma ? gamma[c] : 1) +
                              (beta ? beta[c] : 0);
    }
}

static void test_norms(void) {
    mx_graph *g = mx_graph_new("norms");
    int x = INPUT(g, "x", 4), x2 = INPUT(g, "x2", 2);
    int n = add_op(g, MX_OP_LAYERNORM, &x, 1);
    mx_node_set_float(g, n, MX_A_EPS, 0);
    int ln = infer(g, n);
    n = add_op(g, MX_OP_RMSNORM, &x2, 1);
    mx_node_set_float(g, n, MX_A_EPS, 0);
    int rms = infer(g, n);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, x, VALUES(1, 2, 3, 4));
    set_values(b, x2, VALUES(3, 4));
    execute(g, b);
    expect_values(b, ln, VALUES(-1.3416407864998738, -0.4472135954999579, 0.4472135954999579,
                                1.3416407864998738), "layernorm by hand");
    expect_values(b, rms, VALUES(0.848528137423857, 1.131370849898476), "rmsnorm by hand");
    finish(g, b);

    /* random [2,3,8] with an offset (the mean matters); layernorm's gamma in
     * bf16 (its dtype may differ), rmsnorm's in f32 */
    g = mx_graph_new("norms");
    x = INPUT(g, "x", 2, 3, 8);
    int gamma = add_input_typed(g, "gamma", MX_BF16, DIMS(8)), beta = INPUT(g, "beta", 8);
    int gamma32 = INPUT(g, "gamma32", 8);
    int ln_full = op1(g, MX_OP_LAYERNORM, (int[]){x, gamma, beta}, 3);
    int ln_gamma = op1(g, MX_OP_LAYERNORM, (int[]){x, gamma}, 2);
    int ln_beta = op1(g, MX_OP_LAYERNORM, (int[]){x, MX_NONE, beta}, 3);
    int ln_bare = op1(g, MX_OP_LAYERNORM, &x, 1);
    int rms_gamma = op1(g, MX_OP_RMSNORM, (int[]){x, gamma32}, 2);
    int rms_bare = op1(g, MX_OP_RMSNORM, &x, 1);
    b = prepare(g, 0.5f, 3);
    execute(g, b);
    const float *xs = b->data[x], *gs = b->data[gamma], *bs = b->data[beta];
    CHECK(mx_round_to(MX_BF16, gs[1]) == gs[1]);
    double want[48];
    layernorm_rows(xs, gs, bs, 6, 8, 1e-5, true, want);
    expect(b, ln_full, want, "layernorm gamma beta");
    layernorm_rows(xs, gs, NULL, 6, 8, 1e-5, true, want);
    expect(b, ln_gamma, want, "layernorm gamma");
    layernorm_rows(xs, NULL, bs, 6, 8, 1e-5, true, want);
    expect(b, ln_beta, want, "layernorm beta");
    layernorm_rows(xs, NULL, NULL, 6, 8, 1e-5, true, want);
    expect(b, ln_bare, want, "layernorm");
    layernorm_rows(xs, b->data[gamma32], NULL, 6, 8, 1e-5, false, want);
    expect(b, rms_gamma, want, "rmsnorm gamma");
    layernorm_rows(xs, NULL, NULL, 6, 8, 1e-5, false, want);
    expect(b, rms_bare, want, "rmsnorm");
    finish(g, b);
}

static void test_softmax(void) {
    mx_graph *g = mx_graph_new("softmax");
    int x = INPUT(g, "x", 3);
    int y = op1(g, MX_OP_SOFTMAX, &x, 1);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, x, VALUES(1, 2, 3));
    execute(g, b);
    expect_values(b, y, VALUES(0.09003057317038046, 0.24472847105479767, 0.6652409557748219),
                  "softmax by hand");
    /* shifting the input changes nothing, even far beyond exp's range */
    set_values(b, x, VALUES(1001, 1002, 1003));
    execute(g, b);
    expect_values(b, y, VALUES(0.09003057317038046, 0.24472847105479767, 0.6652409557748219),
                  "softmax, large inputs");
    finish(g, b);

    /* random [3,4,5] along each axis */
    for (int axis = -1; axis < 3; axis++) {
        g = mx_graph_new("softmax");
        x = INPUT(g, "x", 3, 4, 5);
        int n = add_op(g, MX_OP_SOFTMAX, &x, 1);
        mx_node_set_int(g, n, MX_A_AXIS, axis);
        y = infer(g, n);
        b = prepare(g, -4, 4);
        execute(g, b);
        int ax = axis < 0 ? 2 : axis;
        int64_t dim[3] = {3, 4, 5}, stride[3] = {20, 5, 1};
        double want[60];
        for (int i = 0; i < 60; i++) {
            int64_t first = i - (i / stride[ax] % dim[ax]) * stride[ax]; /* the line's start */
            double max = -INFINITY, sum = 0;
            for (int e = 0; e < dim[ax]; e++)
                max = fmax(max, b->data[x][first + e * stride[ax]]);
            for (int e = 0; e < dim[ax]; e++)
                sum += exp(b->data[x][first + e * stride[ax]] - max);
            want[i] = exp(b->data[x][i] - max) / sum;
        }
        expect(b, y, want, "softmax");
        finish(g, b);
    }
}

/* ---- layout --------------------------------------------------------------- */

/* Runs one layout node over x = 1..n (shape dims) and compares with want. */
typedef struct {
    mx_graph *g;
    int x, node;
} one_op;

static one_op layout_op(mx_op op, const int64_t *dim, int rank) {
    one_op t = {mx_graph_new("layout"), 0, 0};
    t.x = add_input_typed(t.g, "x", MX_F32, dim, rank);
    t.node = add_op(t.g, op, &t.x, 1);
    return t;
}

static void expect_on_count(one_op t, const double *want, int n, const char *what) {
    int y = infer(t.g, t.node);
    mx_buffers *b = prepare(t.g, -1, 1);
    for (int64_t i = 0; i < b->numel[t.x]; i++)
        b->data[t.x][i] = (float)(i + 1);
    execute(t.g, b);
    expect_values(b, y, want, n, what);
    finish(t.g, b);
}

static void test_layout_by_hand(void) {
    one_op t = layout_op(MX_OP_RESHAPE, DIMS(2, 3));
    mx_node_set_ints(t.g, t.node, MX_A_SHAPE, DIMS(3, -1));
    expect_on_count(t, VALUES(1, 2, 3, 4, 5, 6), "reshape");
    t = layout_op(MX_OP_PERMUTE, DIMS(2, 3));
    mx_node_set_ints(t.g, t.node, MX_A_PERM, DIMS(1, 0));
    expect_on_count(t, VALUES(1, 4, 2, 5, 3, 6), "permute");
    t = layout_op(MX_OP_FLIP, DIMS(6));
    expect_on_count(t, VALUES(6, 5, 4, 3, 2, 1), "flip");
    t = layout_op(MX_OP_FLIP, DIMS(2, 3));
    mx_node_set_int(t.g, t.node, MX_A_AXIS, 0);
    expect_on_count(t, VALUES(4, 5, 6, 1, 2, 3), "flip axis 0");

    static const struct {
        int64_t k;
        double want[6];
    } shifts[] = {{2, {0, 0, 1, 2, 3, 4}}, {-2, {3, 4, 5, 6, 0, 0}}, {0, {1, 2, 3, 4, 5, 6}},
                  {6, {0}}, {-7, {0}}, {(int64_t)1e18, {0}}, {-(int64_t)1e18, {0}}};
    for (size_t i = 0; i < sizeof shifts / sizeof shifts[0]; i++) {
        t = layout_op(MX_OP_SHIFT, DIMS(6));
        mx_node_set_int(t.g, t.node, MX_A_K, shifts[i].k);
        expect_on_count(t, shifts[i].want, 6, "shift");
    }
    t = layout_op(MX_OP_SHIFT, DIMS(2, 3));
    mx_node_set_int(t.g, t.node, MX_A_AXIS, -2);
    mx_node_set_int(t.g, t.node, MX_A_K, 1);
    expect_on_count(t, VALUES(0, 0, 0, 1, 2, 3), "shift axis -2");

    t = layout_op(MX_OP_SLICE, DIMS(6));
    mx_node_set_int(t.g, t.node, MX_A_START, 1);
    mx_node_set_int(t.g, t.node, MX_A_END, 6);
    mx_node_set_int(t.g, t.node, MX_A_STEP, 2);
    expect_on_count(t, VALUES(2, 4, 6), "slice 1:6:2");
    t = layout_op(MX_OP_SLICE, DIMS(2, 3));
    mx_node_set_int(t.g, t.node, MX_A_START, 1);
    mx_node_set_int(t.g, t.node, MX_A_END, 3);
    expect_on_count(t, VALUES(2, 3, 5, 6), "slice 1:3 of the last axis");

    /* split 1..6 into [1], [2,3], [4,5,6] */
    mx_graph *g = mx_graph_new("split");
    int x = INPUT(g, "x", 6);
    int n = mx_graph_add_node(g, MX_OP_SPLIT, &x, 1, 3);
    mx_node_set_ints(g, n, MX_A_SIZES, DIMS(1, 2, 3));
    int y0 = infer(g, n);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, x, VALUES(1, 2, 3, 4, 5, 6));
    execute(g, b);
    expect_values(b, y0, VALUES(1), "split 0");
    expect_values(b, y0 + 1, VALUES(2, 3), "split 1");
    expect_values(b, y0 + 2, VALUES(4, 5, 6), "split 2");
    finish(g, b);

    /* concat [1,2] and [3,4,5]; [2,1] and [2,2] on the last axis */
    g = mx_graph_new("concat");
    int a = INPUT(g, "a", 2), c = INPUT(g, "c", 3);
    int p = INPUT(g, "p", 2, 1), q = INPUT(g, "q", 2, 2);
    int flat = op1(g, MX_OP_CONCAT, (int[]){a, c}, 2);
    int wide = op1(g, MX_OP_CONCAT, (int[]){p, q}, 2);
    b = prepare(g, -1, 1);
    set_values(b, a, VALUES(1, 2));
    set_values(b, c, VALUES(3, 4, 5));
    set_values(b, p, VALUES(1, 2));
    set_values(b, q, VALUES(10, 11, 20, 21));
    execute(g, b);
    expect_values(b, flat, VALUES(1, 2, 3, 4, 5), "concat");
    expect_values(b, wide, VALUES(1, 10, 11, 2, 20, 21), "concat rows");
    finish(g, b);

    /* space_to_depth of a 4x4x1 grid holding 1..16: blocks (0,0),(1,0),(0,1),(1,1) */
    t = layout_op(MX_OP_SPACE_TO_DEPTH, DIMS(1, 4, 4, 1));
    expect_on_count(t, VALUES(1, 5, 2, 6, 3, 7, 4, 8, 9, 13, 10, 14, 11, 15, 12, 16),
                    "space_to_depth");

    /* unfold 1..6, size 3, stride 2, pad 1: windows of 1 2 3 4 5 6 6 */
    t = layout_op(MX_OP_UNFOLD, DIMS(6));
    mx_node_set_int(t.g, t.node, MX_A_SIZE, 3);
    mx_node_set_int(t.g, t.node, MX_A_STRIDE, 2);
    mx_node_set_int(t.g, t.node, MX_A_PAD, 1);
    expect_on_count(t, VALUES(1, 2, 3, 3, 4, 5, 5, 6, 6), "unfold pad 1");
    t = layout_op(MX_OP_UNFOLD, DIMS(6));
    mx_node_set_int(t.g, t.node, MX_A_SIZE, 4);
    mx_node_set_int(t.g, t.node, MX_A_STRIDE, 3);
    expect_on_count(t, VALUES(1, 2, 3, 4), "unfold, ragged tail dropped");
}

/* Row-major position visited at step l of each order on a 3 x 4 grid,
 * written out by hand from the table in docs/ops.md. */
static const int grid_3x4[MX_ORDER_COUNT][12] = {
    [MX_ORDER_ROW] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
    [MX_ORDER_ROW_REV] = {11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
    [MX_ORDER_COL] = {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11},
    [MX_ORDER_COL_REV] = {11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0},
    [MX_ORDER_SNAKE] = {0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11},
    [MX_ORDER_SNAKE_REV] = {11, 10, 9, 8, 4, 5, 6, 7, 3, 2, 1, 0},
    [MX_ORDER_SNAKE_COL] = {0, 4, 8, 9, 5, 1, 2, 6, 10, 11, 7, 3},
    [MX_ORDER_SNAKE_COL_REV] = {3, 7, 11, 10, 6, 2, 1, 5, 9, 8, 4, 0},
    [MX_ORDER_DIAG] = {0, 1, 4, 2, 5, 8, 3, 6, 9, 7, 10, 11},
    [MX_ORDER_DIAG_REV] = {11, 10, 7, 9, 6, 3, 8, 5, 2, 4, 1, 0},
};

static int add_scan_gather(mx_graph *g, int x, int order, int axis) {
    int n = add_op(g, MX_OP_SCAN_GATHER, &x, 1);
    mx_node_set_int(g, n, MX_A_ORDER, order);
    mx_node_set_int(g, n, MX_A_H, 3);
    mx_node_set_int(g, n, MX_A_W, 4);
    mx_node_set_int(g, n, MX_A_AXIS, axis);
    return infer(g, n);
}

static int add_scan_scatter(mx_graph *g, const int *in, const int64_t *orders, int K, int axis) {
    int n = add_op(g, MX_OP_SCAN_SCATTER, in, K);
    mx_node_set_ints(g, n, MX_A_ORDERS, orders, K);
    mx_node_set_int(g, n, MX_A_H, 3);
    mx_node_set_int(g, n, MX_A_W, 4);
    mx_node_set_int(g, n, MX_A_AXIS, axis);
    return infer(g, n);
}

static void test_scan_orders(void) {
    /* gather of the grid 0..11 lists each order's positions; scattering each
     * gather back restores the grid; scattering all ten sums it ten times */
    mx_graph *g = mx_graph_new("orders");
    int x = INPUT(g, "x", 12);
    int gathered[MX_ORDER_COUNT];
    int64_t orders[MX_ORDER_COUNT];
    for (int o = 0; o < MX_ORDER_COUNT; o++) {
        gathered[o] = add_scan_gather(g, x, o, -1);
        orders[o] = o;
    }
    int back[MX_ORDER_COUNT];
    for (int o = 0; o < MX_ORDER_COUNT; o++)
        back[o] = add_scan_scatter(g, &gathered[o], &orders[o], 1, 0);
    int all = add_scan_scatter(g, gathered, orders, MX_ORDER_COUNT, -1);
    mx_buffers *b = prepare(g, -1, 1);
    for (int i = 0; i < 12; i++)
        b->data[x][i] = (float)i;
    execute(g, b);
    double grid[12], tenfold[12];
    for (int i = 0; i < 12; i++) {
        grid[i] = i;
        tenfold[i] = 10.0 * i;
    }
    for (int o = 0; o < MX_ORDER_COUNT; o++) {
        double want[12];
        for (int l = 0; l < 12; l++)
            want[l] = grid_3x4[o][l];
        expect(b, gathered[o], want, mx_order_names[o]);
        expect(b, back[o], grid, mx_order_names[o]);
    }
    expect(b, all, tenfold, "scatter of all orders");
    finish(g, b);

    /* random [2,12,3] along axis 1: gather by col, scatter of (col, diag_rev) */
    g = mx_graph_new("orders");
    x = INPUT(g, "x", 2, 12, 3);
    int y1 = INPUT(g, "y1", 2, 12, 3), y2 = INPUT(g, "y2", 2, 12, 3);
    int col = add_scan_gather(g, x, MX_ORDER_COL, 1);
    int snake = add_scan_gather(g, x, MX_ORDER_SNAKE_COL_REV, -2);
    int sum = add_scan_scatter(g, (int[]){y1, y2}, DIMS(MX_ORDER_COL, MX_ORDER_DIAG_REV), -2);
    b = prepare(g, -1, 1);
    execute(g, b);
    double w_col[72], w_snake[72], w_sum[72];
    for (int i = 0; i < 2; i++)
        for (int l = 0; l < 12; l++)
            for (int c = 0; c < 3; c++) {
                int at = (i * 12 + l) * 3 + c;
                w_col[at] = b->data[x][(i * 12 + grid_3x4[MX_ORDER_COL][l]) * 3 + c];
                w_snake[at] = b->data[x][(i * 12 + grid_3x4[MX_ORDER_SNAKE_COL_REV][l]) * 3 + c];
                w_sum[at] = 0;
            }
    for (int i = 0; i < 2; i++)
        for (int l = 0; l < 12; l++)
            for (int c = 0; c < 3; c++) {
                int at = (i * 12 + l) * 3 + c;
                w_sum[(i * 12 + grid_3x4[MX_ORDER_COL][l]) * 3 + c] += b->data[y1][at];
                w_sum[(i * 12 + grid_3x4[MX_ORDER_DIAG_REV][l]) * 3 + c] += b->data[y2][at];
            }
    expect(b, col, w_col, "scan_gather col");
    expect(b, snake, w_snake, "scan_gather snake_col_rev");
    expect(b, sum, w_sum, "scan_scatter col + diag_rev");
    finish(g, b);
}

/* Random tensors through each layout op, against index arithmetic here. */
static void test_layout_random(void) {
    mx_graph *g = mx_graph_new("layout");
    int x = INPUT(g, "x", 2, 3, 4, 5);
    int n = add_op(g, MX_OP_RESHAPE, &x, 1);
    mx_node_set_ints(g, n, MX_A_SHAPE, DIMS(6, -1, 2));
    int reshaped = infer(g, n);
    n = add_op(g, MX_OP_PERMUTE, &x, 1);
    mx_node_set_ints(g, n, MX_A_PERM, DIMS(2, 0, 3, 1));
    int permuted = infer(g, n);
    n = add_op(g, MX_OP_FLIP, &x, 1);
    mx_node_set_int(g, n, MX_A_AXIS, -3);
    int flipped = infer(g, n);
    n = add_op(g, MX_OP_SHIFT, &x, 1);
    mx_node_set_int(g, n, MX_A_AXIS, 2);
    mx_node_set_int(g, n, MX_A_K, -1);
    int shifted = infer(g, n);
    n = add_op(g, MX_OP_SLICE, &x, 1);
    mx_node_set_int(g, n, MX_A_START, 1);
    mx_node_set_int(g, n, MX_A_END, 5);
    mx_node_set_int(g, n, MX_A_STEP, 3);
    int sliced = infer(g, n);
    expect_shape(g, permuted, DIMS(4, 2, 5, 3), "permute");
    expect_shape(g, sliced, DIMS(2, 3, 4, 2), "slice");
    mx_buffers *b = prepare(g, -1, 1);
    execute(g, b);
    const float *xs = b->data[x];
    double w_perm[120], w_flip[120], w_shift[120], w_slice[48], w_copy[120];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 5; l++) {
                    int at = ((i * 3 + j) * 4 + k) * 5 + l;
                    w_copy[at] = xs[at];
                    w_perm[((k * 2 + i) * 5 + l) * 3 + j] = xs[at];
                    w_flip[at] = xs[((i * 3 + (2 - j)) * 4 + k) * 5 + l];
                    w_shift[at] = k + 1 < 4 ? xs[((i * 3 + j) * 4 + k + 1) * 5 + l] : 0;
                    if (l < 2)
                        w_slice[((i * 3 + j) * 4 + k) * 2 + l] =
                            xs[((i * 3 + j) * 4 + k) * 5 + 1 + 3 * l];
                }
    expect(b, reshaped, w_copy, "reshape");
    expect(b, permuted, w_perm, "permute");
    expect(b, flipped, w_flip, "flip");
    expect(b, shifted, w_shift, "shift");
    expect(b, sliced, w_slice, "slice");
    finish(g, b);

    /* concat along axis 0 and 1, split along 1, space_to_depth, unfold */
    g = mx_graph_new("layout");
    int a = INPUT(g, "a", 1, 3, 2), c = INPUT(g, "c", 2, 3, 2), d = INPUT(g, "d", 2, 1, 2);
    n = add_op(g, MX_OP_CONCAT, (int[]){c, d, c}, 3);
    mx_node_set_int(g, n, MX_A_AXIS, 1);
    int cat1 = infer(g, n);
    n = add_op(g, MX_OP_CONCAT, (int[]){a, c}, 2);
    mx_node_set_int(g, n, MX_A_AXIS, 0);
    int cat0 = infer(g, n);
    n = mx_graph_add_node(g, MX_OP_SPLIT, &cat1, 1, 2);
    mx_node_set_int(g, n, MX_A_AXIS, 1);
    mx_node_set_ints(g, n, MX_A_SIZES, DIMS(5, 2));
    int part = infer(g, n);
    int img = INPUT(g, "img", 2, 4, 6, 3), img3 = INPUT(g, "img3", 1, 6, 3, 2);
    int s2d = op1(g, MX_OP_SPACE_TO_DEPTH, &img, 1);
    n = add_op(g, MX_OP_SPACE_TO_DEPTH, &img3, 1);
    mx_node_set_int(g, n, MX_A_BLOCK, 3);
    int s2d3 = infer(g, n);
    int series = INPUT(g, "series", 2, 10, 3);
    n = add_op(g, MX_OP_UNFOLD, &series, 1);
    mx_node_set_int(g, n, MX_A_AXIS, 1);
    mx_node_set_int(g, n, MX_A_SIZE, 4);
    mx_node_set_int(g, n, MX_A_STRIDE, 3);
    mx_node_set_int(g, n, MX_A_PAD, 2);
    int patches = infer(g, n);
    expect_shape(g, cat1, DIMS(2, 7, 2), "concat axis 1");
    expect_shape(g, s2d, DIMS(2, 2, 3, 12), "space_to_depth");
    expect_shape(g, patches, DIMS(2, 3, 4, 3), "unfold");
    b = prepare(g, -1, 1);
    execute(g, b);
    double w_cat0[18], w_cat1[28], w_part0[20], w_part1[8], w_s2d[144], w_s2d3[36], w_unf[72];
    for (int e = 0; e < 6; e++)
        w_cat0[e] = b->data[a][e];
    for (int e = 0; e < 12; e++)
        w_cat0[6 + e] = b->data[c][e];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 7; j++)
            for (int k = 0; k < 2; k++) {
                double v = j < 3 ? b->data[c][(i * 3 + j) * 2 + k]
                           : j == 3 ? b->data[d][i * 2 + k]
                                    : b->data[c][(i * 3 + j - 4) * 2 + k];
                w_cat1[(i * 7 + j) * 2 + k] = v;
                if (j < 5)
                    w_part0[(i * 5 + j) * 2 + k] = v;
                else
                    w_part1[(i * 2 + j - 5) * 2 + k] = v;
            }
    for (int bb = 0; bb < 2; bb++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 6; j++)
                for (int ch = 0; ch < 3; ch++) {
                    int dh = i % 2, dw = j % 2;
                    w_s2d[((bb * 2 + i / 2) * 3 + j / 2) * 12 + (dw * 2 + dh) * 3 + ch] =
                        b->data[img][((bb * 4 + i) * 6 + j) * 3 + ch];
                }
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++)
            for (int ch = 0; ch < 2; ch++)
                w_s2d3[((i / 3) * 1 + j / 3) * 18 + ((j % 3) * 3 + i % 3) * 2 + ch] =
                    b->data[img3][(i * 3 + j) * 2 + ch];
    for (int bb = 0; bb < 2; bb++)
        for (int p = 0; p < 3; p++)
            for (int s = 0; s < 4; s++)
                for (int ch = 0; ch < 3; ch++) {
                    int t = p * 3 + s < 10 ? p * 3 + s : 9;
                    w_unf[((bb * 3 + p) * 4 + s) * 3 + ch] =
                        b->data[series][(bb * 10 + t) * 3 + ch];
                }
    expect(b, cat0, w_cat0, "concat axis 0");
    expect(b, cat1, w_cat1, "concat axis 1");
    expect(b, part, w_part0, "split 0");
    expect(b, part + 1, w_part1, "split 1");
    expect(b, s2d, w_s2d, "space_to_depth 2");
    expect(b, s2d3, w_s2d3, "space_to_depth 3");
    expect(b, patches, w_unf, "unfold");
    finish(g, b);
}

/* ---- weighted sum and the selective scan ---------------------------------- */

static void test_weighted_sum(void) {
    mx_graph *g = mx_graph_new("wsum");
    int in[3] = {INPUT(g, "w", 2), INPUT(g, "a", 2), INPUT(g, "b", 2)};
    int y = op1(g, MX_OP_WEIGHTED_SUM, in, 3);
    mx_buffers *b = prepare(g, -1, 1);
    set_values(b, in[0], VALUES(0.5, 2));
    set_values(b, in[1], VALUES(1, 2));
    set_values(b, in[2], VALUES(10, 20));
    execute(g, b);
    expect_values(b, y, VALUES(20.5, 41), "weighted_sum by hand");
    finish(g, b);

    g = mx_graph_new("wsum");
    int w = add_input_typed(g, "w", MX_BF16, DIMS(3));
    int x[4] = {w, INPUT(g, "x1", 2, 3), INPUT(g, "x2", 2, 3), INPUT(g, "x3", 2, 3)};
    y = op1(g, MX_OP_WEIGHTED_SUM, x, 4);
    b = prepare(g, -1, 1);
    execute(g, b);
    double want[6] = {0};
    for (int i = 0; i < 3; i++)
        for (int e = 0; e < 6; e++)
            want[e] += (double)b->data[w][i] * b->data[x[1 + i]][e];
    expect(b, y, want, "weighted_sum");
    finish(g, b);
}

static int add_scan(mx_graph *g, const int *in, int n_in, int n_out, int reverse, int softplus) {
    int n = mx_graph_add_node(g, MX_OP_SELECTIVE_SCAN, in, n_in, n_out);
    mx_node_set_int(g, n, MX_A_REVERSE, reverse);
    mx_node_set_int(g, n, MX_A_SOFTPLUS, softplus);
    return infer(g, n);
}

static void test_selective_scan(void) {
    /* by hand, one channel, N = 1: u = [1, 2], d = 1, A = -1, B = C = 1, D = 0.5 */
    mx_graph *g = mx_graph_new("scan");
    int in[6] = {INPUT(g, "u", 1, 1, 2), INPUT(g, "delta", 1, 1, 2), INPUT(g, "A", 1, 1),
                 INPUT(g, "B", 1, 1, 1, 2), INPUT(g, "C", 1, 1, 1, 2), INPUT(g, "D", 1)};
    int fwd = add_scan(g, in, 6, 2, 0, 0), bwd = add_scan(g, in, 5, 2, 1, 0);
    mx_buffers *b = prepare(g, -1, 1);
    double ones[2] = {1, 1};
    set_values(b, in[0], VALUES(1, 2));
    set_values(b, in[1], ones, 2);
    set_values(b, in[2], VALUES(-1));
    set_values(b, in[3], ones, 2);
    set_values(b, in[4], ones, 2);
    set_values(b, in[5], VALUES(0.5));
    execute(g, b);
    expect_values(b, fwd, VALUES(1.5, 2.3678794411714423 + 1), "scan by hand");
    expect_values(b, fwd + 1, VALUES(2.3678794411714423), "scan final state");
    expect_values(b, bwd, VALUES(1.7357588823428847, 2), "reverse scan by hand");
    expect_values(b, bwd + 1, VALUES(1.7357588823428847), "reverse scan final state");
    finish(g, b);

    /* random, every optional input, 2 groups of 2 channels */
    enum { BT = 2, CH = 4, G = 2, N = 3, L = 5 };
    for (int reverse = 0; reverse < 2; reverse++) {
        g = mx_graph_new("scan");
        int v[MX_SCAN_SLOTS] = {
            INPUT(g, "u", BT, CH, L), INPUT(g, "delta", BT, CH, L), INPUT(g, "A", CH, N),
            INPUT(g, "B", BT, G, N, L), INPUT(g, "C", BT, G, N, L), INPUT(g, "D", CH),
            INPUT(g, "z", BT, CH, L), INPUT(g, "delta_bias", CH), INPUT(g, "h0", BT, CH, N)};
        int y = add_scan(g, v, MX_SCAN_SLOTS, 2, reverse, 1);
        b = prepare(g, -1, 1);
        execute(g, b);
        float *const *x = b->data;
        double want_y[BT * CH * L], want_h[BT * CH * N];
        for (int bb = 0; bb < BT; bb++)
            for (int c = 0; c < CH; c++) {
                int grp = c / (CH / G);
                double h[N];
                for (int n = 0; n < N; n++)
                    h[n] = x[v[MX_SCAN_H0]][(bb * CH + c) * N + n];
                for (int step = 0; step < L; step++) {
                    int l = reverse ? L - 1 - step : step, at = (bb * CH + c) * L + l;
                    double d = x[v[MX_SCAN_DELTA]][at] + x[v[MX_SCAN_DELTA_BIAS]][c];
                    d = d > 20 ? d : log1p(exp(d));
                    double u = x[v[MX_SCAN_U]][at], out = x[v[MX_SCAN_D]][c] * u;
                    for (int n = 0; n < N; n++) {
                        int bc = ((bb * G + grp) * N + n) * L + l;
                        double decay = exp(d * x[v[MX_SCAN_A]][c * N + n]);
                        h[n] = decay * h[n] + d * x[v[MX_SCAN_B]][bc] * u;
                        out += h[n] * x[v[MX_SCAN_C]][bc];
                    }
                    double z = x[v[MX_SCAN_Z]][at];
                    want_y[at] = out * z / (1 + exp(-z));
                }
                for (int n = 0; n < N; n++)
                    want_h[(bb * CH + c) * N + n] = h[n];
            }
        expect(b, y, want_y, reverse ? "reverse scan" : "scan");
        expect(b, y + 1, want_h, reverse ? "reverse scan state" : "scan state");
        finish(g, b);
    }
}

int main(void) {
    test_rounding();
    test_output_rounding();
    test_sources();
    test_fill_random();
    test_linear();
    test_matmul();
    test_conv2d();
    test_dwconv1d();
    test_dwconv2d();
    test_binary();
    test_unary();
    test_reduce();
    test_norms();
    test_softmax();
    test_layout_by_hand();
    test_scan_orders();
    test_layout_random();
    test_weighted_sum();
    test_selective_scan();
    return check_summary();
}
