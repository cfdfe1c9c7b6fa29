/* test_roundtrip.c: the printer and the parser are inverses on canonical text.
 *
 * Every file of tests/ir/ is parsed and printed; the print must parse and print
 * to itself, and so must a clone of the graph. A graph made with the builder (unnamed values, names that collide
 * with generated ones, absent inputs, floats that need 17 digits) must print to
 * the expected text and round-trip too. */
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define MIN_IR_FILES 20

/* print(parse(text)) == text, for a text that is already canonical. */
static void check_fixed_point(const char *text, const char *what) {
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(text, what, &d);
    CHECK_MSG(g != NULL, "%s: the print does not parse: %s\n%s", what, d.msg, text);
    if (!g)
        return;
    char *again = mx_graph_print(g);
    CHECK_MSG(again && strcmp(again, text) == 0, "%s: print(parse(print(g))) differs:\n%s\n---\n%s",
              what, text, again ? again : "(null)");
    free(again);
    mx_graph_free(g);
}

static void check_ir_file(const char *path) {
    mx_graph *g = support_load_graph(path);
    if (!g)
        return;
    const char *name = support_base(path);
    char *text = mx_graph_print(g);
    CHECK_MSG(text != NULL, "%s: print failed", name);
    if (text)
        check_fixed_point(text, name);
    /* A clone is the same graph, and owns everything it points to. */
    mx_graph *clone = mx_graph_clone(g);
    mx_graph_free(g);
    char *cloned = mx_graph_print(clone);
    CHECK_MSG(text && cloned && strcmp(text, cloned) == 0, "%s: the clone prints differently", name);
    CHECK_MSG(mx_graph_verify(clone, NULL) == MX_OK, "%s: the clone does not verify", name);
    free(cloned);
    free(text);
    mx_graph_free(clone);
}

static void check_ir_files(void) {
    int n = support_each_file(MIXC_SOURCE_DIR "/tests/ir", ".mxir", check_ir_file);
    CHECK_MSG(n >= MIN_IR_FILES, "tests/ir holds %d .mxir files, expected at least %d", n,
              MIN_IR_FILES);
}

static int output0(const mx_graph *g, int node) { return mx_node_output(g, node, 0); }

static int add_source(mx_graph *g, mx_op op, const char *name, int rank, const int64_t *dims) {
    mx_type t = {.dtype = MX_F32, .rank = rank};
    memcpy(t.dim, dims, (size_t)rank * sizeof *dims);
    return output0(g, mx_graph_add_source(g, op, name, t));
}

static void infer_all(mx_graph *g) {
    for (int node = 0; node < g->n_nodes; node++) {
        mx_diag d = {{0}};
        CHECK_MSG(mx_graph_infer_node(g, node, &d) == MX_OK, "%s", d.msg);
    }
}

static void check_built_graph(void) {
    mx_graph *g = mx_graph_new("built");
    /* v0 is unnamed and v1 is named "0", so v0 must print as %0_1. */
    int x = add_source(g, MX_OP_INPUT, NULL, 3, (int64_t[]){2, 4, 8});
    int w = add_source(g, MX_OP_PARAM, "0", 2, (int64_t[]){4, 8});
    int third = output0(g, mx_graph_add_source(g, MX_OP_CONST, NULL, (mx_type){MX_F32, 1, {4}}));
    mx_node_set_float(g, g->values[third].node, MX_A_VALUE, 1.0 / 3.0);
    int zero = output0(g, mx_graph_add_source(g, MX_OP_CONST, NULL, (mx_type){MX_BF16, 0, {0}}));
    mx_node_set_float(g, g->values[zero].node, MX_A_VALUE, -0.0);
    int A = add_source(g, MX_OP_PARAM, NULL, 2, (int64_t[]){4, 2});
    int BC = add_source(g, MX_OP_INPUT, NULL, 4, (int64_t[]){2, 1, 2, 4});

    int h = output0(g, mx_graph_add_node(g, MX_OP_LINEAR, (int[]){x, w, MX_NONE}, 3, 1));
    int scan_in[] = {h, h, A, BC, BC, MX_NONE, h, MX_NONE, MX_NONE};
    int scan = mx_graph_add_node(g, MX_OP_SELECTIVE_SCAN, scan_in, 9, 2);
    mx_node_set_int(g, scan, MX_A_SOFTPLUS, 1);
    int y = mx_node_output(g, scan, 0), state = mx_node_output(g, scan, 1);
    /* Unnamed v9 meets "9" (below) and "9_1", so it prints as %9_2. */
    mx_value_set_name(g, state, "8");
    mx_value_set_name(g, y, "9_1");
    int red = mx_graph_add_node(g, MX_OP_REDUCE, (int[]){h}, 1, 1);
    mx_node_set_int(g, red, MX_A_KIND, MX_REDUCE_MAX);
    mx_node_set_int(g, red, MX_A_AXIS, -2);
    int reduced = output0(g, red);
    int plain = output0(g, mx_graph_add_node(g, MX_OP_SCALE, (int[]){reduced}, 1, 1));
    int sp = mx_graph_add_node(g, MX_OP_SOFTPLUS, (int[]){reduced}, 1, 1);
    mx_node_set_float(g, sp, MX_A_THRESHOLD, 1e-300);
    mx_value_set_name(g, output0(g, sp), "9");
    infer_all(g);
    mx_graph_add_output(g, y);
    mx_graph_add_output(g, state);
    mx_graph_add_output(g, plain);
    mx_graph_add_output(g, third);
    mx_graph_add_output(g, zero);

    const char *want =
        "graph built {\n"
        "  %0_1 = input() : f32[2,4,8]\n"
        "  %0 = param() : f32[4,8]\n"
        "  %2 = const() {value=0.33333333333333331} : f32[4]\n"
        "  %3 = const() {value=-0} : bf16[]\n"
        "  %4 = param() : f32[4,2]\n"
        "  %5 = input() : f32[2,1,2,4]\n"
        "  %6 = linear(%0_1, %0) : f32[2,4,4]\n"
        "  %9_1, %8 = selective_scan(%6, %6, %4, %5, %5, _, %6) {softplus=1} : f32[2,4,4], "
        "f32[2,4,2]\n"
        "  %9_2 = reduce(%6) {kind=max, axis=-2} : f32[2,4]\n"
        "  %10 = scale(%9_2) : f32[2,4]\n"
        "  %9 = softplus(%9_2) {threshold=1e-300} : f32[2,4]\n"
        "  output %9_1, %8, %10, %2, %3\n"
        "}\n";
    char *text = mx_graph_print(g);
    CHECK_MSG(text && strcmp(text, want) == 0, "built graph prints as\n%s\nwant\n%s",
              text ? text : "(null)", want);
    if (text)
        check_fixed_point(text, "built");
    free(text);
    mx_graph_free(g);
}

int main(void) {
    check_built_graph();
    check_ir_files();
    return check_summary();
}
