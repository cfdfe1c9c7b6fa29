/* test_gemm.c: matmul groups decoded into strided, batched products
 * (runtime/gemm.h), checked on the host without a GPU.
 *
 * For every matmul group of every zoo model (reduced) and of the text-IR
 * graphs in tests/ir, the decoding is run by mx_gemm_run_host over the
 * reference's values, its output poisoned first, and compared with what the
 * reference computed for the group's result. The zoo must decode entirely; a
 * text-IR group outside cuBLASLt's epilogues may be refused, with a message
 * that names the group. So the description that cuBLASLt receives on a GPU
 * (operands, transposes, leading dims, batch strides, bias, residual) is
 * known right before any GPU runs it. */
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "support.h"

#define SEED 11u
#define TOL 1e-5

static mx_program *compile(const mx_graph *g) {
    mx_pass_options o = {.verify = true};
    return support_compile(g, "copy", &o);
}

/* Decodes and runs every matmul group of p over b (every value computed by
 * the reference); a refusal is a failure if must_decode. */
static void check_groups(const char *what, const mx_program *p, mx_buffers *b, bool must_decode) {
    for (int k = 0; k < p->n_groups; k++) {
        if (p->groups[k].kind != MX_FUSE_MATMUL)
            continue;
        mx_gemm gm;
        mx_diag d = {{0}};
        if (mx_gemm_decode(p, k, &gm, &d) != MX_OK) {
            CHECK_MSG(!must_decode, "%s: %s", what, d.msg);
            CHECK_MSG(strncmp(d.msg, "group ", 6) == 0, "%s: message without its group: %s", what, d.msg);
            printf("  %s: refused: %s\n", what, d.msg);
            continue;
        }
        int64_t n = b->numel[gm.y.value];
        CHECK_MSG(gm.outer * gm.batch * gm.m * gm.n == n, "%s: group %d covers %lld of %lld", what, k,
                  (long long)(gm.outer * gm.batch * gm.m * gm.n), (long long)n);
        double *want = malloc((size_t)n * sizeof *want);
        for (int64_t i = 0; i < n; i++) {
            want[i] = b->data[gm.y.value][i];
            b->data[gm.y.value][i] = NAN;
        }
        mx_gemm_run_host(&gm, b);
        char label[300];
        snprintf(label, sizeof label, "%s: group %d (%lldx%lldx%lld, batch %lldx%lld%s%s%s%s)", what, k,
                 (long long)gm.m, (long long)gm.n, (long long)gm.k, (long long)gm.outer,
                 (long long)gm.batch, gm.a.trans ? ", A^T" : "", gm.bias != MX_NONE ? ", bias" : "",
                 gm.c.value != MX_NONE ? ", residual" : "", gm.act ? ", act" : "");
        CHECK_CLOSE(b->data[gm.y.value], want, n, TOL, label);
        free(want);
    }
}

/* Compiles g, runs it on the reference with sb's inputs and params (bound
 * through the init graph) and checks every matmul group against it. */
static void check_compiled(const char *path, const mx_graph *g, const mx_buffers *sb, bool model) {
    mx_program *p = compile(g);
    if (!p)
        return;
    mx_diag d = {{0}};
    mx_buffers *b = mx_buffers_new(p->g);
    mx_buffers_fill_random(b, p->g, SEED);
    CHECK_MSG(mx_program_bind_init(p, g, sb, b, &d) == MX_OK, "%s: bind: %s", path, d.msg);
    CHECK_MSG(mx_ref_run(p->g, b, &d) == MX_OK, "%s: %s", path, d.msg);
    check_groups(path, p, b, model);
    mx_buffers_free(b);
    mx_program_free(p);
}

static void check_model(const char *path) {
    mx_model *m = support_load_reduced(path, NULL);
    if (!m)
        return;
    const mx_graph *g = mx_model_graph(m);
    mx_buffers *sb = mx_buffers_new(g);
    mx_buffers_fill_random(sb, g, SEED);
    mx_model_init_params(m, sb, SEED);
    check_compiled(path, g, sb, true);
    mx_buffers_free(sb);
    mx_model_free(m);
}

static void check_ir(const char *path) {
    mx_graph *g = support_load_graph(path);
    if (!g)
        return;
    mx_buffers *sb = mx_buffers_new(g);
    mx_buffers_fill_random(sb, g, SEED);
    check_compiled(path, g, sb, false);
    mx_buffers_free(sb);
    mx_graph_free(g);
}

/* cuBLASLt's GELU is the tanh form: fuse keeps an erf GELU out of the
 * matmul group, which then decodes as a plain product. */
static void check_erf_gelu(void) {
    static const char text[] = "graph erf {\n"
                               "  %x = input() : f32[4,8]\n"
                               "  %w = param() : f32[6,8]\n"
                               "  %h = linear(%x, %w) : f32[4,6]\n"
                               "  %a = gelu(%h) : f32[4,6]\n"
                               "  output %a\n"
                               "}\n";
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(text, "erf.mxir", &d);
    CHECK_MSG(g != NULL, "%s", d.msg);
    mx_program *p = g ? compile(g) : NULL;
    int matmuls = 0;
    for (int k = 0; p && k < p->n_groups; k++) {
        if (p->groups[k].kind != MX_FUSE_MATMUL)
            continue;
        matmuls++;
        CHECK_MSG(p->groups[k].n_nodes == 1, "the erf gelu joined matmul group %d", k);
        mx_gemm gm;
        CHECK_MSG(mx_gemm_decode(p, k, &gm, &d) == MX_OK, "%s", d.msg);
        CHECK(gm.act == MX_GEMM_ACT_NONE);
    }
    CHECK(p == NULL || matmuls == 1);
    mx_program_free(p);
    mx_graph_free(g);
}

int main(void) {
    int n_models = support_each_file(MIXC_SOURCE_DIR "/models", ".json", check_model);
    CHECK_MSG(n_models >= 11, "only %d zoo models", n_models);
    int n_ir = support_each_file(MIXC_SOURCE_DIR "/tests/ir", ".mxir", check_ir);
    CHECK_MSG(n_ir >= 20, "only %d text-IR graphs", n_ir);
    check_erf_gelu();
    return check_summary();
}
