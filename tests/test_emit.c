/* test_emit.c: the standalone projects of mixc emit (runtime/emit_project.h).
 * The CUDA project of ViM2-T and TSM2-ETTh1 at reduced sizes: its files are
 * there, its weights.safetensors reads back through mixc's own strict
 * reader, and its kernels.cuh, run under the host emulation over the
 * emitted weights, matches the reference; main.c, linked with a host
 * stand-in for the model that prints what it is given, draws the inputs
 * `mixc run` draws. The C project of the language model: its files, its
 * kernels as C, the same inputs. tests/emit_build.sh builds both kinds and
 * runs them. Also: an existing non-empty folder is refused unless forced,
 * and a failed emit leaves nothing behind. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emit_project.h"
#include "exec.h"
#include "support.h"

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        rewind(f);
        text = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (text)
            text[fread(text, 1, (size_t)n, f)] = 0;
    }
    if (f)
        fclose(f);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    return text;
}

static bool exists(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

/* The program emit compiled: the passes and code for the same target. */
static mx_program *compile_like_emit(const mx_graph *g, const mx_target *t, mx_module *m) {
    mx_pass_options po;
    mx_diag d = {{0}};
    CHECK(mx_pass_options_from_env(&po, &d) == MX_OK);
    mx_program *p = support_compile(g, g->name, &po);
    mx_codegen_options co = {.target = t};
    if (p && mx_codegen(p, &co, m, &d) != MX_OK) {
        CHECK_MSG(false, "%s: codegen: %s", g->name, d.msg);
        mx_program_free(p);
        return NULL;
    }
    return p;
}

/* kernels.cuh in place of the module's source, the emitted weights as the
 * params, seeded inputs: the outputs against the reference's. */
static void check_emulated(const mx_model *model, const char *dir) {
    const mx_graph *g = mx_model_graph(model);
    mx_target t;
    mx_diag d = {{0}};
    CHECK(mx_target_named("sm_90", MX_DEVICE_EMU, &t, &d) == MX_OK);
    mx_module m;
    mx_program *p = compile_like_emit(g, &t, &m);
    if (!p)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/kernels.cuh", dir);
    char *kernels = read_text(path);
    mx_buffers *pb = mx_buffers_new(p->g), *want = mx_buffers_new(g);
    mx_buffers_fill_random(pb, p->g, 1);
    mx_buffers_fill_random(want, g, 1);
    mx_model_init_params(model, want, 1);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    mx_status st = mx_weights_load(p->g, pb, path, &d);
    CHECK_MSG(st == MX_OK, "%s: %s", g->name, d.msg);
    if (st == MX_OK && kernels) {
        mx_text_free(&m.source);
        m.source = (mx_text){.s = kernels, .len = strlen(kernels), .cap = strlen(kernels) + 1};
        kernels = NULL;
        st = mx_exec_emu(p, &m, pb, &d);
        CHECK_MSG(st == MX_OK, "%s: emulation of kernels.cuh: %s", g->name, d.msg);
        CHECK_MSG(mx_ref_run(g, want, &d) == MX_OK, "%s: %s", g->name, d.msg);
        for (int i = 0; st == MX_OK && i < g->n_outputs; i++) {
            int v = g->outputs[i], w = p->g->outputs[i];
            int64_t n = want->numel[v];
            double *ref = malloc((size_t)n * sizeof *ref + 1);
            for (int64_t k = 0; ref && k < n; k++)
                ref[k] = want->data[v][k];
            CHECK(ref && pb->numel[w] == n);
            if (ref)
                CHECK_CLOSE(pb->data[w], ref, n, 1e-4, g->name);
            free(ref);
        }
    }
    free(kernels);
    mx_buffers_free(pb);
    mx_buffers_free(want);
    mx_module_free(&m);
    mx_program_free(p);
}

/* A host stand-in for the model's C API (prefix P): prints a checksum of
 * each input it is given, outputs zeros. */
static const char stub_fmt[] =
    "#include <stdio.h>\n#include <stdlib.h>\n#include \"model.h\"\n"
    "struct %1$s_model { int unused; };\n"
    "static %1$s_model one;\n"
    "int %1$s_create(%1$s_model **out, char *e, size_t n) { *out = &one; return 0; }\n"
    "int %1$s_load_weights(%1$s_model *m, const char *path) { return 0; }\n"
    "int %1$s_set_input(%1$s_model *m, const char *name, const float *x, size_t n) {\n"
    "    double c = 0;\n    for (size_t i = 0; i < n; i++) c += (double)x[i] * (double)(1 + i %% 7);\n"
    "    printf(\"input %%s %%zu %%.17g\\n\", name, n, c);\n    return 0;\n}\n"
    "int %1$s_forward(%1$s_model *m) { return 0; }\n"
    "int %1$s_get_output(%1$s_model *m, const char *name, float *y, size_t n) {\n"
    "    for (size_t i = 0; i < n; i++) y[i] = 0;\n    return 0;\n}\n"
    "const char *%1$s_error(const %1$s_model *m) { return \"\"; }\n"
    "void %1$s_destroy(%1$s_model *m) {}\n";

/* main.c's inputs for seed 5, through the stand-in, against mixc's draws. */
static void check_example_inputs(const mx_graph *g, const char *dir) {
    char path[600], cmd[1600];
    snprintf(path, sizeof path, "%s/stub.c", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, stub_fmt, g->name);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd '%s' && cc -std=c11 -Wall -Werror -o stub main.c stub.c -lm && ./stub 5", dir);
    FILE *out = popen(cmd, "r");
    mx_buffers *b = mx_buffers_new(g);
    int seen = 0;
    char line[512], name[256];
    size_t n;
    double checksum;
    while (out && b && fgets(line, sizeof line, out))
        if (sscanf(line, "input %255s %zu %lg", name, &n, &checksum) == 3) {
            int v = mx_graph_value_find(g, name);
            CHECK_MSG(v >= 0 && mx_fill_random_value(b, g, v, 5), "%s: input %s", g->name, name);
            double want = 0;
            for (int64_t i = 0; v >= 0 && i < b->numel[v]; i++)
                want += (double)b->data[v][i] * (double)(1 + i % 7);
            CHECK_MSG(v >= 0 && (size_t)b->numel[v] == n && want == checksum, "%s: input %s: %.17g, want %.17g",
                      g->name, name, checksum, want);
            seen++;
        }
    int inputs = 0;
    for (int i = 0; i < mx_graph_input_count(g); i++)
        inputs += !mx_graph_value_is_param(g, mx_graph_input(g, i));
    CHECK_MSG(out && pclose(out) == 0 && seen == inputs && seen > 0,
              "%s: the example with the stand-in model gave %d of %d inputs", g->name, seen, inputs);
    mx_buffers_free(b);
}

static void test_model(const char *spec, const char *dir) {
    mx_model *model = support_load_reduced(spec, NULL);
    if (!model)
        return;
    mx_emit_options o = {.target = "sm_90", .seed = 1};
    mx_diag d = {{0}};
    CHECK_MSG(mx_emit_cuda(mx_model_graph(model), model, dir, &o, &d) == MX_OK, "%s: %s", spec, d.msg);
    static const char *const files[] = {"kernels.cuh", "standalone.cuh", "model.cu", "model.h", "main.c",
                                        "weights.safetensors", "Makefile", "CMakeLists.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        CHECK_MSG(exists(dir, files[i]), "%s: no %s", dir, files[i]);
    char path[512];
    snprintf(path, sizeof path, "%s/kernels.cuh", dir);
    char *kernels = read_text(path);
    CHECK(kernels && !strstr(kernels, "#include \"mixc_prelude.h\"") && strstr(kernels, "MX_DYNAMIC_SMEM"));
    free(kernels);
    check_emulated(model, dir);
    check_example_inputs(mx_model_graph(model), dir);
    mx_model_free(model);
}

/* The C project: its files, kernels.h as C (no C++ linkage, the prelude
 * inlined); tests/emit_build.sh builds and runs it. */
static void test_model_c(const char *spec, const char *dir) {
    mx_model *model = support_load_reduced(spec, NULL);
    if (!model)
        return;
    mx_emit_options o = {.target = "cpu", .seed = 2};
    mx_diag d = {{0}};
    CHECK_MSG(mx_emit_c(mx_model_graph(model), model, dir, &o, &d) == MX_OK, "%s: %s", spec, d.msg);
    static const char *const files[] = {"kernels.h", "standalone_cpu.h", "standalone_tables.h", "standalone_host.h",
                                        "half.h", "model.c", "model.h", "main.c", "weights.safetensors", "Makefile",
                                        "CMakeLists.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        CHECK_MSG(exists(dir, files[i]), "%s: no %s", dir, files[i]);
    char path[512];
    snprintf(path, sizeof path, "%s/kernels.h", dir);
    char *kernels = read_text(path);
    CHECK(kernels && !strstr(kernels, "extern \"C\"") && !strstr(kernels, "#include \"mixc_prelude.h\"") &&
          strstr(kernels, "MX_ONE_THREAD_BLOCKS") && strstr(kernels, "__global__"));
    free(kernels);
    check_example_inputs(mx_model_graph(model), dir);
    mx_model_free(model);
}

static void remove_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* A folder in use is refused (and kept); --force replaces it; a failing
 * emit (an unknown tensor in --weights... here: a missing weights file)
 * leaves no temp folder. */
static void test_folder(const char *dir) {
    mx_model *model = support_load_reduced(MIXC_SOURCE_DIR "/models/mamba-block.json", NULL);
    if (!model)
        return;
    mkdir(dir, 0755);
    char keep[600];
    snprintf(keep, sizeof keep, "%s/mine.txt", dir);
    FILE *f = fopen(keep, "w");
    if (f)
        fclose(f);
    mx_emit_options o = {.target = "sm_80", .seed = 3};
    mx_diag d = {{0}};
    const mx_graph *g = mx_model_graph(model);
    CHECK(mx_emit_cuda(g, model, dir, &o, &d) != MX_OK && strstr(d.msg, "not empty") && strstr(d.msg, "--force"));
    CHECK(exists(dir, "mine.txt") && !exists(dir, "model.cu"));
    o.weights = "no-such-file.safetensors";
    o.force = true;
    CHECK(mx_emit_cuda(g, model, dir, &o, &d) != MX_OK && strstr(d.msg, "no-such-file"));
    CHECK(exists(dir, "mine.txt") && !exists(dir, "model.cu"));
    o.weights = NULL;
    CHECK_MSG(mx_emit_cuda(g, model, dir, &o, &d) == MX_OK, "%s", d.msg);
    CHECK(!exists(dir, "mine.txt") && exists(dir, "model.cu"));
    o.target = "sm_99";
    CHECK(mx_emit_cuda(g, model, dir, &o, &d) != MX_OK && strstr(d.msg, "sm_99"));
    char cmd[700]; /* nothing left beside it: no temp or old folders */
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -d '%s'.tmp-* '%s'.old-* 2>/dev/null)\"", dir, dir);
    CHECK(system(cmd) == 0);
    mx_model_free(model);
}

int main(void) {
    char base[] = "/tmp/mixc-test-emit-XXXXXX";
    if (!mkdtemp(base)) {
        CHECK_MSG(false, "cannot make a temp folder");
        return check_summary();
    }
    char dir[600];
    snprintf(dir, sizeof dir, "%s/vim2", base);
    test_model(MIXC_SOURCE_DIR "/models/vim2-tiny.json", dir);
    snprintf(dir, sizeof dir, "%s/tsm2", base);
    test_model(MIXC_SOURCE_DIR "/models/tsm2-etth1.json", dir);
    snprintf(dir, sizeof dir, "%s/c", base);
    test_model_c(MIXC_SOURCE_DIR "/models/lm/mamba-130m.json", dir);
    snprintf(dir, sizeof dir, "%s/out", base);
    test_folder(dir);
    remove_dir(base);
    return check_summary();
}
