/* test_shape.c: the shape rules of every op (ir/shape.c), the verifier
 * (ir/verify.c) and the cost counts (ir/cost.c), on graphs built with the
 * builder API. */
#include <stdlib.h>

#include "check.h"
#include "ir.h"
#include "ops_impl.h"

/* ---- building ------------------------------------------------------------- */

static mx_graph *g; /* the graph of the current case */

static void fresh(void) {
    mx_graph_free(g);
    g = mx_graph_new("t");
}

static mx_type make_type(mx_dtype dt, const int64_t *dim, int rank) {
    mx_type t = {dt, rank, {0}};
    memcpy(t.dim, dim, (size_t)rank * sizeof *dim);
    return t;
}
#define DIMS(...) (int64_t[]){__VA_ARGS__}, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define F32(...) make_type(MX_F32, DIMS(__VA_ARGS__))
#define F16(...) make_type(MX_F16, DIMS(__VA_ARGS__))
#define BF16(...) make_type(MX_BF16, DIMS(__VA_ARGS__))
static const mx_type scalar_f32 = {MX_F32, 0, {0}};

/* A fresh input of type t; returns its value id. */
static int in(mx_type t) {
    int node = mx_graph_add_source(g, MX_OP_INPUT, NULL, t);
    return mx_node_output(g, node, 0);
}

/* A node of op with n_out results; returns the node id. */
#define OPN(op, n_out, ...)                                                    \
    mx_graph_add_node(g, MX_OP_##op, (int[]){__VA_ARGS__},                     \
                      (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), n_out)
#define OP(op, ...) OPN(op, 1, __VA_ARGS__)
#define _ MX_NONE

static int out0(int node) { return mx_node_output(g, node, 0); }

static void set_ints(int node, mx_attr_key key, const int64_t *v, int n) {
    mx_node_set_ints(g, node, key, v, n);
}
#define SET_INTS(node, key, ...) set_ints(node, MX_A_##key, DIMS(__VA_ARGS__))
#define SET(node, key, v) mx_node_set_int(g, node, MX_A_##key, v)

/* ---- expectations --------------------------------------------------------- */

/* Result i of node infers to want; its cost is then computable too. */
static void expect_type_at(int node, int i, mx_type want, int line) {
    mx_diag d = {""};
    mx_status st = mx_graph_infer_node(g, node, &d);
    char got[96] = "-", exp[96];
    if (st == MX_OK)
        mx_type_str(mx_value_type(g, mx_node_output(g, node, i)), got, sizeof got);
    CHECK_MSG(st == MX_OK && mx_type_equal(mx_value_type(g, mx_node_output(g, node, i)), &want),
              "line %d: want %s, got %s %s", line, mx_type_str(&want, exp, sizeof exp), got, d.msg);
    if (st == MX_OK) {
        mx_cost c = mx_node_cost(g, node);
        CHECK_MSG(c.flops >= 0 && c.exps >= 0 && c.bytes > 0, "line %d: cost", line);
    }
}
#define EXPECT_TYPE_AT(node, i, want) expect_type_at(node, i, want, __LINE__)
#define EXPECT_TYPE(node, want) expect_type_at(node, 0, want, __LINE__)

static void expect_fail(int node, const char *substr, int line) {
    mx_diag d = {""};
    mx_status st = mx_graph_infer_node(g, node, &d);
    CHECK_MSG(st == MX_ERR_INVALID && strstr(d.msg, substr), "line %d: want \"%s\", got \"%s\"",
              line, substr, st == MX_OK ? "success" : d.msg);
}
#define EXPECT_FAIL(node, substr) expect_fail(node, substr, __LINE__)

static void expect_verify(const char *substr, int line) {
    mx_diag d = {""};
    mx_status st = mx_graph_verify(g, &d);
    bool ok = substr ? st != MX_OK && strstr(d.msg, substr) : st == MX_OK;
    CHECK_MSG(ok, "line %d: want \"%s\", got \"%s\"", line, substr ? substr : "valid",
              st == MX_OK ? "valid" : d.msg);
}
#define EXPECT_VALID() expect_verify(NULL, __LINE__)
#define EXPECT_INVALID(substr) expect_verify(substr, __LINE__)

/* ---- shape rules ---------------------------------------------------------- */

static void test_source(void) {
    fresh();
    int v = in(BF16(2, 3));
    mx_type out;
    mx_type want = BF16(2, 3);
    CHECK(mx_ops[MX_OP_INPUT].infer(g, g->values[v].node, &out, NULL) == MX_OK);
    CHECK(mx_type_equal(&out, &want));
}

static void test_linear(void) {
    fresh();
    int x = in(F32(2, 5, 48)), w = in(F32(64, 48)), b = in(F32(64));
    EXPECT_TYPE(OP(LINEAR, x, w, b), F32(2, 5, 64));
    EXPECT_TYPE(OP(LINEAR, x, w), F32(2, 5, 64));
    EXPECT_TYPE(OP(LINEAR, in(F32(48)), w), F32(64));
    EXPECT_FAIL(OP(LINEAR, x, in(F32(64, 32))),
                "input 2 (W) has shape f32[64,32]: expected [N, K] with K = 48 (the last dim of x)");
    EXPECT_FAIL(OP(LINEAR, x, _, b), "input 2 (W) is required but absent");
    EXPECT_FAIL(OP(LINEAR, x, w, in(F32(32))),
                "input 3 (b) has shape f32[32]: expected [N] with N = 64 (dim 0 of W)");
    EXPECT_FAIL(OP(LINEAR, x, in(F16(64, 48))),
                "input 2 (W) has dtype f16: expected f32 (the dtype of x)");
    EXPECT_FAIL(OP(LINEAR, in(scalar_f32), w), "input 1 (x) has shape f32[]: expected [..., K] (rank >= 1)");
    EXPECT_FAIL(OP(LINEAR, x), "expected 2 to 3 inputs, got 1");
}

static void test_matmul(void) {
    fresh();
    EXPECT_TYPE(OP(MATMUL, in(F32(3, 1, 4, 5)), in(F32(2, 5, 6))), F32(3, 2, 4, 6));
    EXPECT_TYPE(OP(MATMUL, in(F32(4, 5)), in(F32(5, 6))), F32(4, 6));
    EXPECT_FAIL(OP(MATMUL, in(F32(4, 5)), in(F32(6, 6))),
                "input 2 (b) has shape f32[6,6]: expected [..., K, N] with K = 5 (the last dim of a)");
    EXPECT_FAIL(OP(MATMUL, in(F32(3, 4, 5)), in(F32(2, 5, 6))),
                "the batch dims of a f32[3,4,5] and b f32[2,5,6] do not broadcast: 3 vs 2 at axis -3");
    EXPECT_FAIL(OP(MATMUL, in(F32(5)), in(F32(5, 6))), "input 1 (a) has shape f32[5]: expected [..., M, K]");
}

static void test_conv2d(void) {
    fresh();
    int x = in(F32(1, 3, 8, 8)), w = in(F32(16, 3, 3, 3));
    int n = OP(CONV2D, x, w, in(F32(16)));
    SET(n, STRIDE, 2);
    SET(n, PAD, 1);
    EXPECT_TYPE(n, F32(1, 16, 4, 4));
    EXPECT_TYPE(OP(CONV2D, x, w), F32(1, 16, 6, 6));
    EXPECT_FAIL(OP(CONV2D, x, in(F32(16, 3, 9, 3))),
                "kernel height 9 does not fit the input height 8 with pad 0");
    EXPECT_FAIL(OP(CONV2D, x, in(F32(16, 4, 3, 3))),
                "input 2 (w) has shape f32[16,4,3,3]: expected [O, C, KH, KW] with C = 3 (dim 1 of x)");
    EXPECT_FAIL(OP(CONV2D, x, w, in(F32(8))), "input 3 (b) has shape f32[8]: expected [O] with O = 16");
    EXPECT_FAIL(OP(CONV2D, in(F32(3, 8, 8)), w), "input 1 (x) has shape f32[3,8,8]: expected [B, C, H, W]");
}

static void test_dwconv(void) {
    fresh();
    int x1 = in(F32(2, 8, 10));
    int n = OP(DWCONV1D, x1, in(F32(8, 4)), in(F32(8)));
    SET(n, MODE, MX_CONV_SAME);
    EXPECT_TYPE(n, F32(2, 8, 10));
    EXPECT_FAIL(OP(DWCONV1D, x1, in(F32(4, 4))),
                "input 2 (w) has shape f32[4,4]: expected [C, K] with C = 8 (dim 1 of x)");
    EXPECT_FAIL(OP(DWCONV1D, x1, in(F32(8, 4)), in(F32(4))),
                "input 3 (b) has shape f32[4]: expected [C] with C = 8 (dim 1 of x)");
    int x2 = in(BF16(2, 8, 5, 5));
    EXPECT_TYPE(OP(DWCONV2D, x2, in(BF16(8, 3, 3))), BF16(2, 8, 5, 5));
    EXPECT_FAIL(OP(DWCONV2D, x2, in(BF16(8, 3, 2))),
                "input 2 (w) has shape bf16[8,3,2]: expected [C, K, K], a square kernel");
    EXPECT_FAIL(OP(DWCONV2D, x2, in(F32(8, 3, 3))), "input 2 (w) has dtype f32: expected bf16");
}

static void test_elementwise(void) {
    for (int op = 0; op < MX_OP_COUNT; op++) {
        if (mx_ops[op].fusion != MX_FUSE_ELEMWISE || op == MX_OP_CAST)
            continue;
        fresh();
        if (mx_ops[op].min_in == 2) {
            int bin = mx_graph_add_node(g, (mx_op)op, (int[]){in(F16(4, 1, 3)), in(F16(5, 1))}, 2, 1);
            EXPECT_TYPE(bin, F16(4, 5, 3));
            int bad = mx_graph_add_node(g, (mx_op)op, (int[]){in(F32(2, 3)), in(F32(4))}, 2, 1);
            EXPECT_FAIL(bad, "the shapes of a f32[2,3] and b f32[4] do not broadcast: 3 vs 4 at axis -1");
            int mixed = mx_graph_add_node(g, (mx_op)op, (int[]){in(F32(2)), in(BF16(2))}, 2, 1);
            EXPECT_FAIL(mixed, "input 2 (b) has dtype bf16: expected f32 (the dtype of a)");
        } else {
            int x = in(BF16(2, 3));
            EXPECT_TYPE(mx_graph_add_node(g, (mx_op)op, &x, 1, 1), BF16(2, 3));
            EXPECT_FAIL(mx_graph_add_node(g, (mx_op)op, (int[]){x, x}, 2, 1),
                        "expected 1 input, got 2");
        }
    }
    fresh();
    EXPECT_TYPE(OP(ADD, in(scalar_f32), in(F32(3))), F32(3));
    int n = OP(CAST, in(F32(2, 3)));
    SET(n, DTYPE, MX_BF16);
    EXPECT_TYPE(n, BF16(2, 3));
    SET(n, DTYPE, 7);
    EXPECT_FAIL(n, "attribute dtype: 7 is not a valid keyword");
    EXPECT_FAIL(OPN(CAST, 2, in(F32(2))), "expected 1 result, got 2");
}

static void test_reduce_and_norms(void) {
    fresh();
    int x = in(F32(2, 3, 4));
    int n = OP(REDUCE, x);
    SET(n, AXIS, 1);
    EXPECT_TYPE(n, F32(2, 4));
    SET(n, KEEPDIM, 1);
    EXPECT_TYPE(n, F32(2, 1, 4));
    SET(n, KIND, MX_REDUCE_VAR);
    SET(n, AXIS, -1);
    EXPECT_TYPE(n, F32(2, 3, 1));
    EXPECT_TYPE(OP(REDUCE, in(F16(7))), ((mx_type){MX_F16, 0, {0}}));
    SET(n, AXIS, 3);
    EXPECT_FAIL(n, "axis 3 is out of range for input 1 (x) of shape f32[2,3,4]");

    int xb = in(BF16(2, 5, 8));
    EXPECT_TYPE(OP(LAYERNORM, xb, in(F32(8)), in(F32(8))), BF16(2, 5, 8));
    EXPECT_TYPE(OP(LAYERNORM, xb, _, in(F32(8))), BF16(2, 5, 8));
    EXPECT_FAIL(OP(LAYERNORM, xb, in(F32(7))),
                "input 2 (gamma) has shape f32[7]: expected [C] with C = 8 (the last dim of x)");
    EXPECT_FAIL(OP(LAYERNORM, xb, in(F32(8)), in(F32(1, 8))), "input 3 (beta) has shape f32[1,8]");
    EXPECT_TYPE(OP(RMSNORM, xb, in(BF16(8))), BF16(2, 5, 8));
    EXPECT_FAIL(OP(RMSNORM, xb, in(F32(8))), "input 2 (gamma) has dtype f32: expected bf16");
    EXPECT_FAIL(OP(RMSNORM, in(scalar_f32)), "input 1 (x) has shape f32[]: expected [..., C]");

    int sm = OP(SOFTMAX, x);
    SET(sm, AXIS, -3);
    EXPECT_TYPE(sm, F32(2, 3, 4));
    SET(sm, AXIS, -4);
    EXPECT_FAIL(sm, "axis -4 is out of range");
}

static void test_flip_shift(void) {
    fresh();
    int x = in(F32(2, 3));
    EXPECT_TYPE(OP(FLIP, x), F32(2, 3));
    int s = OP(SHIFT, x);
    SET(s, K, -5);
    EXPECT_TYPE(s, F32(2, 3));
    EXPECT_FAIL(OP(FLIP, in(scalar_f32)), "axis -1 is out of range for input 1 (x) of shape f32[]");
    int s2 = OP(SHIFT, x);
    SET(s2, AXIS, 2);
    EXPECT_FAIL(s2, "axis 2 is out of range");
}

static void test_reshape_permute(void) {
    fresh();
    int x = in(F32(2, 3, 4));
    int r = OP(RESHAPE, x);
    SET_INTS(r, SHAPE, 6, -1);
    EXPECT_TYPE(r, F32(6, 4));
    SET_INTS(r, SHAPE, 24);
    EXPECT_TYPE(r, F32(24));
    SET_INTS(r, SHAPE, -1, 2, -1);
    EXPECT_FAIL(r, "shape [-1, 2, -1] has more than one -1");
    SET_INTS(r, SHAPE, 6, 0);
    EXPECT_FAIL(r, "shape [6, 0] has a 0 entry");
    SET_INTS(r, SHAPE, 5, 5);
    EXPECT_FAIL(r, "shape [5, 5] does not hold the 24 elements of f32[2,3,4]");
    SET_INTS(r, SHAPE, 5, -1);
    EXPECT_FAIL(r, "shape [5, -1] does not hold the 24 elements");
    SET_INTS(r, SHAPE, 1000000000000000000, -1);
    EXPECT_FAIL(r, "does not hold the 24 elements");
    SET_INTS(r, SHAPE, 1, 1, 2, 3, 4, 1);
    EXPECT_FAIL(r, "has rank 6 > 5");

    int p = OP(PERMUTE, x);
    SET_INTS(p, PERM, 2, 0, 1);
    EXPECT_TYPE(p, F32(4, 2, 3));
    SET_INTS(p, PERM, 0, 0, 1);
    EXPECT_FAIL(p, "perm [0, 0, 1] is not a permutation of 0..2 (input 1 (x) is f32[2,3,4])");
    SET_INTS(p, PERM, 1, 0);
    EXPECT_FAIL(p, "perm [1, 0] is not a permutation of 0..2");
    SET_INTS(p, PERM, 0, 3, 1);
    EXPECT_FAIL(p, "is not a permutation");
}

static void test_slice_concat_split(void) {
    fresh();
    int x = in(F32(2, 10));
    int s = OP(SLICE, x);
    SET(s, START, 1);
    SET(s, END, 8);
    SET(s, STEP, 3);
    EXPECT_TYPE(s, F32(2, 3));
    SET(s, END, 11);
    EXPECT_FAIL(s, "slice [1, 11) of axis 1 (length 10): expected start < end <= length");
    SET(s, END, 1);
    EXPECT_FAIL(s, "slice [1, 1) of axis 1");

    int c = OP(CONCAT, x, in(F32(2, 5)), in(F32(2, 1)));
    EXPECT_TYPE(c, F32(2, 16));
    int c0 = OP(CONCAT, x, in(F32(3, 10)));
    SET(c0, AXIS, 0);
    EXPECT_TYPE(c0, F32(5, 10));
    EXPECT_FAIL(OP(CONCAT, x, in(F32(3, 5))),
                "input 2 (x_2) has shape f32[3,5]: expected [2,10] with any length on axis 1");
    EXPECT_FAIL(OP(CONCAT, x, in(F32(2, 5, 1))), "input 2 (x_2) has shape f32[2,5,1]");
    EXPECT_FAIL(OP(CONCAT, x, _), "input 2 (x_2) is required but absent");
    EXPECT_FAIL(OP(CONCAT, x, in(F16(2, 3))), "input 2 (x_2) has dtype f16: expected f32 (the dtype of x_1)");

    int sp = OPN(SPLIT, 2, x);
    SET_INTS(sp, SIZES, 3, 7);
    EXPECT_TYPE_AT(sp, 0, F32(2, 3));
    EXPECT_TYPE_AT(sp, 1, F32(2, 7));
    SET_INTS(sp, SIZES, 3, 6);
    EXPECT_FAIL(sp, "sizes [3, 6] do not add up to 10, the length of axis 1");
    SET_INTS(sp, SIZES, 3, 6, 1);
    EXPECT_FAIL(sp, "sizes [3, 6, 1] has 3 entries but the node has 2 results");
}

static void test_space_to_depth_unfold(void) {
    fresh();
    EXPECT_TYPE(OP(SPACE_TO_DEPTH, in(F32(1, 4, 6, 3))), F32(1, 2, 3, 12));
    EXPECT_FAIL(OP(SPACE_TO_DEPTH, in(F32(1, 5, 6, 3))),
                "input 1 (x) has shape f32[1,5,6,3]: expected [B, H, W, C] with H and W divisible by block 2");
    EXPECT_FAIL(OP(SPACE_TO_DEPTH, in(F32(4, 6, 3))), "expected [B, H, W, C]");

    int u = OP(UNFOLD, in(F32(2, 7, 512)));
    SET(u, SIZE, 16);
    SET(u, STRIDE, 8);
    SET(u, PAD, 8);
    EXPECT_TYPE(u, F32(2, 7, 64, 16));
    int u1 = OP(UNFOLD, in(F32(10, 3)));
    SET(u1, AXIS, 0);
    SET(u1, SIZE, 4);
    SET(u1, STRIDE, 3);
    EXPECT_TYPE(u1, F32(3, 4, 3));
    SET(u1, SIZE, 11);
    EXPECT_FAIL(u1, "window size 11 is longer than axis 0 with its padding (10)");
    int u5 = OP(UNFOLD, in(F32(1, 1, 1, 1, 8)));
    SET(u5, SIZE, 2);
    SET(u5, STRIDE, 2);
    EXPECT_FAIL(u5, "input 1 (x) has shape f32[1,1,1,1,8]: expected rank < 5: unfold adds an axis");
}

static void test_scan_orders(void) {
    fresh();
    int x = in(F32(2, 12, 8));
    int ga = OP(SCAN_GATHER, x);
    SET(ga, ORDER, MX_ORDER_SNAKE);
    SET(ga, H, 3);
    SET(ga, W, 4);
    SET(ga, AXIS, 1);
    EXPECT_TYPE(ga, F32(2, 12, 8));
    SET(ga, W, 5);
    EXPECT_FAIL(ga, "input 1 (x) has shape f32[2,12,8]: expected length h*w = 3*5 on axis 1");

    int sc = OP(SCAN_SCATTER, x, in(F32(2, 12, 8)));
    SET_INTS(sc, ORDERS, MX_ORDER_ROW, MX_ORDER_COL_REV);
    SET(sc, H, 4);
    SET(sc, W, 3);
    SET(sc, AXIS, 1);
    EXPECT_TYPE(sc, F32(2, 12, 8));
    SET_INTS(sc, ORDERS, MX_ORDER_ROW);
    EXPECT_FAIL(sc, "orders has 1 entries but the node has 2 inputs");
    int bad = OP(SCAN_SCATTER, x, in(F32(2, 12, 4)));
    SET_INTS(bad, ORDERS, MX_ORDER_ROW, MX_ORDER_COL);
    SET(bad, H, 3);
    SET(bad, W, 4);
    EXPECT_FAIL(bad, "input 2 (y_2) has shape f32[2,12,4]: expected [2,12,8] (the shape of y_1)");
    SET_INTS(bad, ORDERS, MX_ORDER_ROW, MX_ORDER_COUNT);
    EXPECT_FAIL(bad, "attribute orders: 10 is not a valid keyword");
}

/* The inputs of a selective scan with Bt=2, Ch=8, L=16, N=4, G=2. */
enum { SCAN_FULL = MX_SCAN_SLOTS };
static void scan_inputs(int *v, mx_dtype dt) {
    v[MX_SCAN_U] = in(make_type(dt, DIMS(2, 8, 16)));
    v[MX_SCAN_DELTA] = in(make_type(dt, DIMS(2, 8, 16)));
    v[MX_SCAN_A] = in(F32(8, 4));
    v[MX_SCAN_B] = in(make_type(dt, DIMS(2, 2, 4, 16)));
    v[MX_SCAN_C] = in(make_type(dt, DIMS(2, 2, 4, 16)));
    v[MX_SCAN_D] = in(F32(8));
    v[MX_SCAN_Z] = in(make_type(dt, DIMS(2, 8, 16)));
    v[MX_SCAN_DELTA_BIAS] = in(F32(8));
    v[MX_SCAN_H0] = in(F32(2, 8, 4));
}

/* A scan over v with input slot replaced by value (MX_NONE: absent). */
static int scan_with(const int *v, int n_in, int n_out, int slot, int value) {
    int args[MX_SCAN_SLOTS];
    memcpy(args, v, sizeof args);
    if (slot >= 0)
        args[slot] = value;
    return mx_graph_add_node(g, MX_OP_SELECTIVE_SCAN, args, n_in, n_out);
}

static void test_selective_scan(void) {
    fresh();
    int v[MX_SCAN_SLOTS];
    scan_inputs(v, MX_BF16);
    int full = scan_with(v, SCAN_FULL, 2, -1, 0);
    EXPECT_TYPE_AT(full, 0, BF16(2, 8, 16));
    EXPECT_TYPE_AT(full, 1, F32(2, 8, 4));
    EXPECT_TYPE(scan_with(v, 5, 1, -1, 0), BF16(2, 8, 16));
    EXPECT_TYPE(scan_with(v, 7, 1, MX_SCAN_D, MX_NONE), BF16(2, 8, 16));
    EXPECT_FAIL(scan_with(v, 5, 1, MX_SCAN_C, MX_NONE), "input 5 (C) is required but absent");
    EXPECT_FAIL(scan_with(v, 4, 1, -1, 0), "expected 5 to 9 inputs, got 4");
    EXPECT_FAIL(scan_with(v, 5, 3, -1, 0), "expected 1 to 2 results, got 3");
    EXPECT_FAIL(scan_with(v, 5, 1, MX_SCAN_A, in(F32(4, 8))),
                "input 3 (A) has shape f32[4,8]: expected [Ch, N] with Ch = 8 (dim 1 of u)");
    EXPECT_FAIL(scan_with(v, 5, 1, MX_SCAN_B, in(BF16(2, 3, 4, 16))),
                "input 4 (B) has shape bf16[2,3,4,16]: expected [Bt, G, N, L] with G dividing Ch = 8");
    EXPECT_FAIL(scan_with(v, 5, 1, MX_SCAN_B, in(BF16(2, 2, 5, 16))),
                "input 4 (B) has shape bf16[2,2,5,16]: expected [Bt, G, N, L] with Bt = 2, N = 4 (dim 1 of A), L = 16");
    EXPECT_FAIL(scan_with(v, 5, 1, MX_SCAN_C, in(BF16(2, 1, 4, 16))),
                "input 5 (C) has shape bf16[2,1,4,16]: expected [Bt, G, N, L] = [2,2,4,16] (the shape of B)");
    EXPECT_FAIL(scan_with(v, 5, 1, MX_SCAN_DELTA, in(BF16(2, 8, 15))),
                "input 2 (delta) has shape bf16[2,8,15]: expected [Bt, Ch, L] = [2,8,16] (the shape of u)");
    EXPECT_FAIL(scan_with(v, SCAN_FULL, 1, MX_SCAN_Z, in(F32(2, 8, 16))),
                "input 7 (z) has dtype f32: expected bf16 (the dtype of u)");
    EXPECT_FAIL(scan_with(v, SCAN_FULL, 1, MX_SCAN_DELTA_BIAS, in(F32(4))),
                "input 8 (delta_bias) has shape f32[4]: expected [Ch] with Ch = 8");
    EXPECT_FAIL(scan_with(v, SCAN_FULL, 2, MX_SCAN_H0, in(F32(2, 8, 5))),
                "input 9 (h0) has shape f32[2,8,5]: expected [Bt, Ch, N] = [2,8,4]");
    EXPECT_FAIL(scan_with(v, 5, 1, MX_SCAN_U, in(BF16(16, 8))), "input 1 (u) has shape bf16[16,8]: expected [Bt, Ch, L]");
}

static void test_weighted_sum(void) {
    fresh();
    int x = in(BF16(2, 4));
    EXPECT_TYPE(OP(WEIGHTED_SUM, in(F32(3)), x, in(BF16(2, 4)), in(BF16(2, 4))), BF16(2, 4));
    EXPECT_FAIL(OP(WEIGHTED_SUM, in(F32(2)), x, x, x),
                "input 1 (w) has shape f32[2]: expected [n] with n = 3, the number of x inputs");
    EXPECT_FAIL(OP(WEIGHTED_SUM, in(F32(2)), x, in(BF16(4, 2))),
                "input 3 (x_2) has shape bf16[4,2]: expected [2,4] (the shape of x_1)");
    EXPECT_FAIL(OP(WEIGHTED_SUM, in(F32(2)), x, in(F16(2, 4))),
                "input 3 (x_2) has dtype f16: expected bf16 (the dtype of x_1)");
    EXPECT_FAIL(OP(WEIGHTED_SUM, in(F32(1)), _), "input 2 (x_1) is required but absent");
}

/* An untyped input is reported, not read. */
static void test_untyped_input(void) {
    fresh();
    int n = OP(EXP, in(F32(3)));
    EXPECT_FAIL(OP(NEG, out0(n)), "input 1 (x) has no type yet");
}

/* ---- the verifier --------------------------------------------------------- */

/* %x f32[2,8] -> %h = linear(%x, %W) -> %y = silu(%h), output %y. */
static int build_valid(void) {
    fresh();
    int x = out0(mx_graph_add_source(g, MX_OP_INPUT, "x", F32(2, 8)));
    int w = out0(mx_graph_add_source(g, MX_OP_PARAM, "W", F32(4, 8)));
    int h = OP(LINEAR, x, w);
    mx_value_set_name(g, out0(h), "h");
    int y = OP(SILU, out0(h));
    mx_value_set_name(g, out0(y), "y");
    for (int node = 0; node < g->n_nodes; node++)
        CHECK(mx_graph_infer_node(g, node, NULL) == MX_OK);
    mx_graph_add_output(g, out0(y));
    return y;
}

static void test_verify(void) {
    int y = build_valid();
    EXPECT_VALID();

    build_valid();
    g->n_outputs = 0;
    EXPECT_INVALID("graph: no outputs");

    build_valid();
    g->outputs[0] = 99;
    EXPECT_INVALID("graph: output 1 is value id 99, not a value of the graph (it has 4)");

    y = build_valid(); /* silu reads the linear's result, linear reads %y */
    g->args[g->nodes[2].first_in] = out0(y);
    EXPECT_INVALID("node %h (linear): input 1 uses %y before its definition (by node %y (silu))");

    build_valid();
    g->args[g->nodes[2].first_in + 1] = 17;
    EXPECT_INVALID("node %h (linear): input 2 is value id 17, not a value of the graph");

    build_valid();
    g->args[g->nodes[2].first_in + 1] = MX_NONE;
    EXPECT_INVALID("node %h (linear): input 2 (W) is required but absent");

    build_valid();
    g->values[0].type.dim[1] = 9; /* %x changed after inference */
    EXPECT_INVALID("node %h (linear): input 2 (W) has shape f32[4,8]: expected [N, K] with K = 9");

    build_valid();
    g->values[out0(2)].type.dim[1] = 5; /* a stale result type */
    EXPECT_INVALID("node %h (linear): result 1 (%h) has type f32[2,5] but its inputs give f32[2,4]");

    build_valid();
    g->values[out0(3)].type.rank = -1;
    EXPECT_INVALID("node %y (silu): result 1 (%y) has no type");

    build_valid();
    g->values[0].type.dim[0] = 0;
    EXPECT_INVALID("node %x (input): result 1 (%x) has dim 0 = 0: expected >= 1");

    build_valid();
    g->values[1].type.rank = 6;
    EXPECT_INVALID("node %W (param): result 1 (%W) has rank 6: expected 0 to 5");

    build_valid();
    mx_value_set_name(g, 3, "x");
    EXPECT_INVALID("graph: values 0 and 3 are both named %x");

    build_valid();
    g->nodes[3].op = MX_OP_COUNT;
    char bad_op[64];
    snprintf(bad_op, sizeof bad_op, "node #3 (op %d): op %d is not an op", MX_OP_COUNT, MX_OP_COUNT);
    EXPECT_INVALID(bad_op);

    build_valid();
    g->nodes[3].n_in = 2;
    g->nodes[3].first_in = 0;
    EXPECT_INVALID("node %y (silu): has 2 inputs, outside the op's range [1, 1]");

    build_valid();
    g->nodes[3].first_in = 5;
    EXPECT_INVALID("node %y (silu): arguments 5 .. 5 lie outside the argument array (length 3)");

    build_valid();
    g->nodes[3].first_out = 4;
    EXPECT_INVALID("node #3 (silu): results 4 .. 4 are not values of the graph (it has 4)");

    build_valid();
    g->values[3].index = 1;
    EXPECT_INVALID("node %y (silu): result 1 (value 3) links back to node 3, result 2");

    build_valid();
    g->nodes[2].n_out = 2; /* claims %y, which silu also claims */
    EXPECT_INVALID("node %h (linear): has 2 results, outside the op's range [1, 1]");

    fresh();
    int x = out0(mx_graph_add_source(g, MX_OP_INPUT, "x", F32(2, 8)));
    int sl = OP(SLICE, x);
    SET(sl, END, 4);
    CHECK(mx_graph_infer_node(g, sl, NULL) == MX_OK);
    mx_graph_add_output(g, out0(sl));
    EXPECT_VALID();
    SET(sl, STEP, 0);
    EXPECT_INVALID("node %1 (slice): attribute step = 0 is out of range [1, 1000000000000000000]");
    SET(sl, STEP, 1);
    g->values[out0(sl)].node = 0;
    EXPECT_INVALID("node %1 (slice): result 1 (value 1) links back to node 0, result 1");
}

/* A value no node owns. */
static void test_verify_orphan_value(void) {
    build_valid();
    g->values[3].node = 7;
    EXPECT_INVALID("node %y (silu): result 1 (value 3) links back to node 7");
    build_valid();
    g->n_values++; /* grows into the spare capacity: an unowned value */
    CHECK(g->n_values <= g->cap_values);
    g->values[4] = (mx_value){{MX_F32, 1, {1}}, 2, 1, NULL};
    EXPECT_INVALID("graph: value 4 claims to be result 2 of node 2, which does not produce it");
}

/* ---- costs ---------------------------------------------------------------- */

static void expect_cost(int node, double flops, double bytes, double exps, int line) {
    mx_cost c = mx_node_cost(g, node);
    CHECK_MSG(c.flops == flops && c.bytes == bytes && c.exps == exps,
              "line %d: cost %g flops %g bytes %g exps, want %g %g %g", line, c.flops, c.bytes,
              c.exps, flops, bytes, exps);
}
#define EXPECT_COST(node, flops, bytes, exps) expect_cost(node, flops, bytes, exps, __LINE__)

static void test_cost(void) {
    fresh();
    int lin = OP(LINEAR, in(F32(2, 5, 48)), in(F32(64, 48)), in(F32(64)));
    CHECK(mx_graph_infer_node(g, lin, NULL) == MX_OK);
    /* 2*M*N*K + M*N, M = 10; bytes (480 + 3072 + 64 + 640) * 4 */
    EXPECT_COST(lin, 2.0 * 10 * 64 * 48 + 10 * 64, 4256 * 4, 0);

    int silu = OP(SILU, in(F16(4, 8)));
    CHECK(mx_graph_infer_node(g, silu, NULL) == MX_OK);
    EXPECT_COST(silu, 3 * 32, 32 * 2 * 2, 32); /* 3 flops, 1 exp per element */

    /* Called directly, cost_zero also links cost.o from the static library
     * ahead of the temporary weak stubs (see ir/zz_weak_stubs_tmp.c). */
    int src = mx_graph_add_source(g, MX_OP_PARAM, NULL, F32(3));
    mx_cost zero = cost_zero(g, src);
    CHECK(zero.flops == 0 && zero.bytes == 0 && zero.exps == 0);
    EXPECT_COST(src, 0, 0, 0);

    int v[MX_SCAN_SLOTS];
    scan_inputs(v, MX_F32);
    int scan = scan_with(v, 7, 1, -1, 0); /* u, delta, A, B, C, D, z */
    SET(scan, SOFTPLUS, 1);
    CHECK(mx_graph_infer_node(g, scan, NULL) == MX_OK);
    /* 256 steps of 4 states: 6 flops and 1 exp per state; per step d*u 1,
     * softplus 2 (+2 exps), D 2, silu 3 (+1 exp) and the gate 1. Bytes: u,
     * delta, z, y 256 each, A 32, B and C 256 each, D 8, all f32. */
    EXPECT_COST(scan, 6 * 1024 + 9 * 256, (4 * 256 + 32 + 2 * 256 + 8) * 4, 1024 + 3 * 256);

    int ws = OP(WEIGHTED_SUM, in(F32(3)), in(F32(10)), in(F32(10)), in(F32(10)));
    CHECK(mx_graph_infer_node(g, ws, NULL) == MX_OK);
    EXPECT_COST(ws, 2 * 3 * 10, (3 + 40) * 4, 0);
}

int main(void) {
    test_source();
    test_linear();
    test_matmul();
    test_conv2d();
    test_dwconv();
    test_elementwise();
    test_reduce_and_norms();
    test_flip_shift();
    test_reshape_permute();
    test_slice_concat_split();
    test_space_to_depth_unfold();
    test_scan_orders();
    test_selective_scan();
    test_weighted_sum();
    test_untyped_input();
    test_verify();
    test_verify_orphan_value();
    test_cost();
    mx_graph_free(g);
    return check_summary();
}
