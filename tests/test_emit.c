/* test_emit.c: the standalone projects of mixc emit (runtime/emit_project.h).
 * The CUDA project of ViM2-T and TSM2-ETTh1 at reduced sizes: its files are
 * there, its weights.safetensors reads back through mixc's own strict
 * reader, and its kernels.cuh, run under the host emulation over the
 * emitted weights, matches the reference; main.c, linked with a host
 * stand-in for the model that prints what it is given, draws the inputs
 * `mixc run` draws. The C project of the language model: its files, its
 * kernels.Q.o byte for byte the objects the cpu device links, the same
 * inputs; a tuning database's winner changes the emitted kernels and
 * MIXC_NO_TUNE restores the defaults. tests/emit_build.sh builds both kinds
 * and runs them. Also: an existing non-empty folder is refused unless forced,
 * and a failed emit leaves nothing behind. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "emit_project.h"
#include "exec.h"
#include "support.h"
#include "tune.h"

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
    snprintf(path, sizeof path, "%s/model.cu", dir);
    char *model_cu = read_text(path); /* the tests' database is empty */
    CHECK(model_cu && strstr(model_cu, "sm_90's default tiles (the tuning database has no winner"));
    free(model_cu);
    check_emulated(model, dir);
    check_example_inputs(mx_model_graph(model), dir);
    mx_model_free(model);
}

#ifdef MIXC_HAVE_LLVM
static unsigned char *read_bytes(const char *dir, const char *name, size_t *len) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    unsigned char *bytes = NULL;
    long n = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && (bytes = malloc((size_t)n + 1)) != NULL) {
        rewind(f);
        *len = fread(bytes, 1, (size_t)n, f);
    }
    if (f)
        fclose(f);
    CHECK_MSG(bytes != NULL, "cannot read %s", path);
    return bytes;
}

/* kernels.Q.o of dir are, byte for byte, the objects mx_cpu_objects makes
 * of module m (compiled afresh: the tests run with MIXC_NO_CACHE). */
static bool same_object(const char *dir, const mx_target *t, const mx_module *m, const char *name) {
    mx_bytes *want = calloc((size_t)m->n_programs + 1, sizeof *want);
    mx_diag d = {{0}};
    CHECK_MSG(mx_cpu_objects(t, m, name, want, &d) == MX_OK, "%s: %s", name, d.msg);
    bool same = true;
    for (int q = 0; q < m->n_programs; q++) {
        char file[32];
        snprintf(file, sizeof file, "kernels.%d.o", q);
        size_t len = 0;
        unsigned char *got = read_bytes(dir, file, &len);
        same = same && got && want[q].bytes && len == want[q].len && memcmp(got, want[q].bytes, len) == 0;
        free(got), free(want[q].bytes);
    }
    free(want);
    return same;
}

/* The model compiled for the cpu device (nothing loaded): its program,
 * target and module, as the device generates them. */
static mx_compiled *compile_cpu(const mx_model *model, mx_module *m) {
    mx_target t;
    mx_diag d = {{0}};
    mx_compile_options co = {.no_load = 1};
    CHECK_MSG(mx_target_detect(MX_DEVICE_CPU, &t, &d) == MX_OK, "%s", d.msg);
    mx_compiled *c = mx_compile_model(model, &t, &co, &d);
    CHECK_MSG(c && mx_compiled_module(c, m, &d) == MX_OK, "%s", d.msg);
    return c;
}

/* The C project: its files; kernels.Q.o are the objects the cpu device links
 * for the same model (same passes, tiles, lowering and vector width), and
 * model.c declares each of its kernels; main.c draws mixc's inputs.
 * tests/emit_build.sh builds and runs it. */
static void test_model_c(const char *spec, const char *dir) {
    mx_model *model = support_load_reduced(spec, NULL);
    if (!model)
        return;
    mx_emit_options o = {.target = "cpu", .seed = 2};
    mx_diag d = {{0}};
    CHECK_MSG(mx_emit_c(mx_model_graph(model), model, dir, &o, &d) == MX_OK, "%s: %s", spec, d.msg);
    static const char *const files[] = {"kernels.0.o", "standalone_cpu.h", "standalone_pool.h", "standalone_split.h", "standalone_tables.h",
                                        "standalone_host.h", "half.h", "model.c", "model.h", "main.c", "weights.safetensors", "Makefile",
                                        "CMakeLists.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        CHECK_MSG(exists(dir, files[i]), "%s: no %s", dir, files[i]);
    CHECK(!exists(dir, "kernels.h"));
    mx_module m = {0};
    mx_compiled *c = compile_cpu(model, &m);
    if (c && m.source.s) {
        const char *name = mx_model_graph(model)->name;
        CHECK_MSG(same_object(dir, mx_compiled_target(c), &m, name),
                  "%s: the kernels are not the cpu device's objects", name);
        char path[600];
        snprintf(path, sizeof path, "%s/model.c", dir);
        char *model_c = read_text(path);
        for (int k = 0; model_c && k < m.n_kernels; k++) {
            char decl[200];
            snprintf(decl, sizeof decl, "void %s(void **params, int64_t lo, int64_t hi, int32_t grid);",
                     m.kernels[k].name);
            CHECK_MSG(strstr(model_c, decl), "%s: model.c does not declare %s", name, m.kernels[k].name);
        }
        CHECK(model_c && strstr(model_c, "default tiles (the tuning database has no winner"));
        free(model_c);
    }
    mx_module_free(&m);
    mx_compiled_free(c);
    check_example_inputs(mx_model_graph(model), dir);
    mx_model_free(model);
}

/* model.c's first lines name where the tiles came from. */
static bool says(const char *dir, const char *what) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.c", dir);
    char *text = read_text(path);
    bool found = text && strstr(text, what);
    free(text);
    return found;
}

/* A tuning database whose record makes the scan's winner 4 items per
 * thread in one task: the emitted kernels are the tuned module's objects
 * (not the default one), model.c says the tiles came from the database and
 * the scan's step runs its blocks as one share (grain = blocks);
 * MIXC_NO_TUNE=1 gives the defaults back. */
static void test_tuned_tiles(const char *db, const char *dir) {
    mx_model *model = support_load_reduced(MIXC_SOURCE_DIR "/models/mamba-block.json", NULL);
    if (!model)
        return;
    mx_module base = {0}, tuned = {0};
    mx_compiled *c = compile_cpu(model, &base);
    if (!c || !base.source.s) {
        mx_compiled_free(c);
        mx_model_free(model);
        return;
    }
    const mx_program *p = mx_compiled_program(c);
    const mx_target *t = mx_compiled_target(c);
    int scan = -1;
    for (int k = 0; k < p->n_groups; k++)
        scan = p->groups[k].kind == MX_FUSE_SCAN ? k : scan;
    CHECK(scan >= 0);
    mx_tiles *tiles = calloc((size_t)p->n_groups + 1, sizeof *tiles);
    for (int k = 0; tiles && k < p->n_groups; k++)
        tiles[k] = mx_tune_default_tiles(p, t, k);
    mx_diag d = {{0}};
    mx_tune_record r = {.winner = 1, .n_candidates = 2, .measured = true};
    if (tiles && scan >= 0) {
        r.candidates[0] = (mx_tune_candidate){.tiles = tiles[scan], .ms = 2.0, .ratio = 1};
        tiles[scan].items = 4, tiles[scan].tasks = 1;
        r.candidates[1] = (mx_tune_candidate){.tiles = tiles[scan], .ms = 1.0, .ratio = 0.5};
        mx_compiled_set_tiles(c, tiles); /* the module as the device generates it with these tiles */
        CHECK_MSG(mx_compiled_module(c, &tuned, &d) == MX_OK, "%s", d.msg);
        mx_compiled_set_tiles(c, NULL);
        r.kernel = mx_module_kernel(&base, scan)->identity;
        r.winner_source = mx_module_kernel(&tuned, scan)->identity;
        mx_tune_signature(t, r.target, sizeof r.target);
        snprintf(r.label, sizeof r.label, "%s", mx_module_kernel(&base, scan)->name);
        snprintf(r.when, sizeof r.when, "2026-01-01T00:00:00Z");
        CHECK_MSG(mx_tune_db_append(db, &r, &d) == MX_OK, "%s", d.msg);
    }
    const mx_graph *g = mx_model_graph(model);
    mx_emit_options o = {.target = "cpu", .seed = 2, .force = true};
    CHECK_MSG(mx_emit_c(g, model, dir, &o, &d) == MX_OK, "%s", d.msg);
    CHECK_MSG(tuned.source.s && same_object(dir, t, &tuned, g->name), "the kernels are not the tuned objects");
    CHECK(!same_object(dir, t, &base, g->name));
    CHECK(says(dir, "tiles of the tuning database") && says(dir, db) && says(dir, "for 1 of"));
    int64_t blocks = 0, grain = 0;
    if (tuned.source.s && scan >= 0) {
        char step[200];
        const mx_kernel *k = mx_module_kernel(&tuned, scan);
        mx_cpu_kernel_blocks(t, p, scan, k, &blocks, &grain);
        snprintf(step, sizeof step, "{%s, \"%s\", %lld, %lld,", k->name, k->name, (long long)blocks,
                 (long long)blocks);
        CHECK_MSG(grain == blocks && says(dir, step), "the tuned scan's step is not %s", step);
    }
    setenv("MIXC_NO_TUNE", "1", 1);
    CHECK_MSG(mx_emit_c(g, model, dir, &o, &d) == MX_OK, "%s", d.msg);
    CHECK(same_object(dir, t, &base, g->name) && says(dir, "default tiles (MIXC_NO_TUNE set)"));
    unsetenv("MIXC_NO_TUNE");
    free(tiles);
    mx_module_free(&base);
    mx_module_free(&tuned);
    mx_compiled_free(c);
    mx_model_free(model);
}
#endif

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
    /* no database but the tests' own; every object compiled afresh */
    char db[600], dir[600];
    snprintf(db, sizeof db, "%s/none.jsonl", base);
    setenv("MIXC_TUNE_DB", db, 1);
    setenv("MIXC_NO_CACHE", "1", 1);
    snprintf(dir, sizeof dir, "%s/vim2", base);
    test_model(MIXC_SOURCE_DIR "/models/vim2-tiny.json", dir);
    snprintf(dir, sizeof dir, "%s/tsm2", base);
    test_model(MIXC_SOURCE_DIR "/models/tsm2-etth1.json", dir);
#ifdef MIXC_HAVE_LLVM
    snprintf(dir, sizeof dir, "%s/c", base);
    test_model_c(MIXC_SOURCE_DIR "/models/lm/mamba-130m.json", dir);
    snprintf(dir, sizeof dir, "%s/tuned.jsonl", base);
    setenv("MIXC_TUNE_DB", dir, 1);
    char tuned[600];
    snprintf(tuned, sizeof tuned, "%s/tuned", base);
    test_tuned_tiles(dir, tuned);
    setenv("MIXC_TUNE_DB", db, 1);
#endif
    snprintf(dir, sizeof dir, "%s/out", base);
    test_folder(dir);
    remove_dir(base);
    return check_summary();
}
