/* test_matmul_split.c: the CPU's matmul groups as tuning units (the split
 * of their products over the pool: mxs_split_plan in
 * runtime/emit/standalone_split.h, runtime/tune_space.c, docs/tune.md). A
 * product is a unit of its own and the same product in two groups one
 * unit; its space is the backend's rule, one call, and 2 .. the pool's
 * threads; every split computes what the reference does (f32 and bf16,
 * more shares than products, so rows split too); a database record's split
 * reaches the compile and MIXC_NO_TUNE's defaults do not take it; a search
 * with injected times records the fastest split; a GPU's products are no
 * unit. */
#include <stdlib.h>

#include "exec.h"
#include "half.h"
#include "support.h"
#include "tune.h"

enum { POOL = 4 }; /* more shares than the block's 2 products, on any machine */

static char dir[64];

/* Two Mamba blocks of width 24 (products of 34, 40 and 48 rows), one
 * product per batch element. */
static mx_model *small_block(const char *dtype, int batch) {
    char dt[32], b[32];
    snprintf(dt, sizeof dt, "dtype=%s", dtype);
    snprintf(b, sizeof b, "batch=%d", batch);
    const char *set[] = {b, "input.length=40", "stages[0].width=24", "stages[0].depth=2", dt};
    return support_load_model(MIXC_SOURCE_DIR "/models/mamba-block.json", set, 5);
}

/* small_block on the CPU with a pool of POOL threads (*t); NULL (a failed
 * check when the model did not load) otherwise. */
static mx_model *block_on_cpu(const char *dtype, int batch, mx_target *t) {
    mx_model *m = small_block(dtype, batch);
    mx_diag d;
    CHECK(m != NULL);
    if (m && mx_target_detect(MX_DEVICE_CPU, t, &d) != MX_OK) {
        mx_model_free(m);
        return NULL;
    }
    t->threads = POOL;
    return m;
}

/* The units of p's groups on t (generated with the defaults): n matmul
 * units into mm[] (their groups into at[]), the others counted apart. */
static int matmul_units(const mx_program *p, const mx_target *t, mx_tune_unit *mm, int *at, int cap, int *others) {
    mx_tiles *tiles = calloc((size_t)p->n_groups + 1, sizeof *tiles);
    for (int g = 0; tiles && g < p->n_groups; g++)
        tiles[g] = mx_tune_default_tiles(p, t, g);
    mx_codegen_options co = {.target = t, .tiles = tiles};
    mx_module m;
    mx_diag d;
    int n = 0;
    *others = 0;
    if (tiles && mx_codegen(p, &co, &m, &d) == MX_OK) {
        for (int g = 0; g < p->n_groups; g++) {
            mx_tune_unit u;
            if (!mx_tune_unit_of(p, t, &m, g, &u))
                continue;
            if (u.kind == MX_FUSE_MATMUL && n < cap)
                mm[n] = u, at[n++] = g;
            else if (u.kind != MX_FUSE_MATMUL)
                ++*others;
        }
        mx_module_free(&m);
    }
    free(tiles);
    return n;
}

/* Units, names, identities, the space; none on a GPU target. */
static void test_units(void) {
    mx_target t, h100;
    mx_diag d;
    mx_model *m = block_on_cpu("f32", 2, &t);
    if (!m || mx_target_named("h100", MX_DEVICE_EMU, &h100, &d) != MX_OK) {
        mx_model_free(m);
        return;
    }
    mx_compile_options co = {.no_load = 1};
    mx_compiled *c = mx_compile_model(m, &t, &co, &d);
    CHECK_MSG(c, "%s", d.msg);
    if (!c) {
        mx_model_free(m);
        return;
    }
    const mx_program *p = mx_compiled_program(c);
    mx_tune_unit mm[16];
    int at[16], others, n = matmul_units(p, &t, mm, at, 16, &others), n_matmul = 0;
    for (int g = 0; g < p->n_groups; g++)
        n_matmul += p->groups[g].kind == MX_FUSE_MATMUL;
    CHECK_MSG(n == n_matmul && n >= 6 && others >= 2, "%d matmul units of %d matmul groups, %d others", n, n_matmul,
              others);
    int same = 0;
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "mx_g%d_matmul", at[i]);
        CHECK_MSG(strcmp(mm[i].name, name) == 0, "%s", mm[i].name);
        for (int j = 0; j < i; j++) /* the second block's products are the first's, of other weights */
            same += mm[i].identity == mm[j].identity;
        mx_tune_space s;
        mx_tiles base = {0};
        mx_tune_space_fill(p, at[i], &t, &base, &s);
        CHECK_MSG(s.n == 4 && s.tiles[0].tasks == 0 && s.tiles[1].tasks == 1 && s.tiles[2].tasks == 2 &&
                      s.tiles[3].tasks == POOL && s.tiles[3].threads == 0 && s.tiles[3].items == 0,
                  "group %d: %d candidates", at[i], s.n);
        CHECK(!mx_tune_has_knobs(p, &h100, at[i]) && mx_tune_has_knobs(p, &t, at[i]));
    }
    CHECK_MSG(2 * same == n, "%d pairs of the %d groups share a product", same, n);
    mx_tune_unit gpu[16];
    int gpu_at[16], gpu_others;
    CHECK(matmul_units(p, &h100, gpu, gpu_at, 16, &gpu_others) == 0 && gpu_others == others);
    mx_compiled_free(c);
    mx_model_free(m);
}

/* A database in which every matmul unit of p on t won with `tasks`. */
static void write_split_db(const mx_program *p, const mx_target *t, int tasks, const char *path) {
    mx_tune_unit mm[16];
    int at[16], others, n = matmul_units(p, t, mm, at, 16, &others);
    remove(path);
    mx_diag d;
    for (int i = 0; i < n; i++) {
        mx_tune_record r = {.kernel = mm[i].identity, .winner_source = mm[i].identity, .measured = true,
                            .winner = 1, .n_candidates = 2};
        mx_tune_signature(t, r.target, sizeof r.target);
        snprintf(r.label, sizeof r.label, "matmul (%s)", mm[i].name);
        snprintf(r.when, sizeof r.when, "2026-01-01T00:00:00Z");
        r.candidates[0] = (mx_tune_candidate){.ms = 2, .ratio = 1};
        r.candidates[1] = (mx_tune_candidate){.tiles = {.tasks = tasks}, .ms = 1, .ratio = 0.5};
        CHECK_MSG(mx_tune_db_append(path, &r, &d) == MX_OK, "%s", d.msg);
    }
}

/* The model's output on c against the reference interpreter, the same
 * params (seed 5) and fresh random inputs in [-1, 1). */
static void check_against_ref(const mx_model *m, mx_compiled *c, double tol, const char *what) {
    const mx_graph *g = mx_model_graph(m);
    mx_buffers *b = mx_buffers_new(g);
    mx_diag d;
    mx_buffers_fill_random(b, g, 1); /* allocates the inputs, which are then set */
    mx_model_init_params(m, b, 5);
    for (int i = 0; i < mx_tensor_count(c, MX_ROLE_INPUT); i++) {
        mx_tensor_info ti;
        mx_tensor_info_of(c, MX_ROLE_INPUT, i, &ti, &d);
        float *v = b->data[mx_graph_value_find(g, ti.name)];
        for (int64_t e = 0; e < ti.numel; e++)
            v[e] = mx_round_to(ti.dtype, check_uniform(-1, 1));
        void *stored = malloc((size_t)ti.numel * mx_dtype_size(ti.dtype));
        mx_storage_pack(ti.dtype, v, ti.numel, stored);
        CHECK_MSG(mx_set_input(c, ti.name, stored, ti.dtype, ti.rank, ti.dims, &d) == MX_OK, "%s", d.msg);
        free(stored);
    }
    float *got = NULL;
    int y = mx_graph_output(g, 0);
    if (mx_run(c, &d) == MX_OK && mx_ref_run(g, b, &d) == MX_OK) {
        got = malloc((size_t)b->numel[y] * sizeof *got);
        CHECK(mx_get_output(c, NULL, got, MX_F32, (size_t)b->numel[y] * sizeof *got, &d) == MX_OK);
    }
    CHECK_MSG(got, "%s: %s", what, d.msg);
    if (got) {
        double *want = malloc((size_t)b->numel[y] * sizeof *want);
        for (int64_t i = 0; i < b->numel[y]; i++)
            want[i] = b->data[y][i];
        CHECK(CHECK_CLOSE(got, want, b->numel[y], tol, what));
        free(want);
    }
    free(got);
    mx_buffers_free(b);
}

/* Every split through the user's path: a record, the compile taking it,
 * the run against the reference. Batch 1: rows split 2, 3 and 4 ways
 * (unevenly too); 3: products split, and rows once shares outnumber them. */
static void test_splits_compute(const char *dtype, int batch, double tol) {
    mx_target t;
    mx_diag d;
    mx_model *m = block_on_cpu(dtype, batch, &t);
    if (!m)
        return;
    char path[128];
    snprintf(path, sizeof path, "%s/split-%s-%d.jsonl", dir, dtype, batch);
    setenv("MIXC_TUNE_DB", path, 1);
    static const int splits[] = {0, 1, 2, 3, POOL, 7};
    for (size_t i = 0; i < sizeof splits / sizeof *splits; i++) {
        mx_compiled *c = mx_compile_model(m, &t, NULL, &d);
        CHECK_MSG(c && mx_init_weights(c, 5, &d) == MX_OK, "%s", d.msg);
        if (!c)
            break;
        const mx_program *p = mx_compiled_program(c);
        write_split_db(p, &t, splits[i], path);
        mx_compiled_free(c);
        c = mx_compile_model(m, &t, NULL, &d); /* now with the records */
        CHECK_MSG(c && mx_init_weights(c, 5, &d) == MX_OK, "%s", d.msg);
        if (!c)
            break;
        p = mx_compiled_program(c);
        mx_tiles *picked = NULL;
        CHECK(mx_tune_tiles(p, &t, &picked, &d) == MX_OK);
        for (int g = 0; picked && g < p->n_groups; g++)
            if (p->groups[g].kind == MX_FUSE_MATMUL)
                CHECK_MSG(picked[g].tasks == splits[i], "group %d: tasks %d, not %d", g, picked[g].tasks, splits[i]);
        free(picked);
        char what[64];
        snprintf(what, sizeof what, "%s batch %d, every product in %d shares", dtype, batch, splits[i]);
        check_against_ref(m, c, tol, what);
        setenv("MIXC_NO_TUNE", "1", 1); /* the defaults, whatever the database says */
        CHECK(mx_tune_tiles(p, &t, &picked, &d) == MX_OK);
        for (int g = 0; picked && g < p->n_groups; g++)
            CHECK(p->groups[g].kind != MX_FUSE_MATMUL || picked[g].tasks == 0);
        free(picked);
        unsetenv("MIXC_NO_TUNE");
        mx_compiled_free(c);
    }
    unsetenv("MIXC_TUNE_DB");
    mx_model_free(m);
}

/* Injected times: split in 2 is the fastest of every product. */
static double two_is_fastest(void *ctx, const mx_tiles *t) {
    (void)ctx;
    return t->tasks == 2 ? 4 : t->tasks == 0 ? 10 : 8;
}

static void test_search(void) {
    mx_target t;
    mx_diag d;
    mx_model *m = block_on_cpu("f32", 2, &t);
    if (!m)
        return;
    mx_compiled *c = mx_compile_model(m, &t, NULL, &d);
    CHECK_MSG(c && mx_init_weights(c, 5, &d) == MX_OK, "%s", d.msg);
    char path[128];
    snprintf(path, sizeof path, "%s/search.jsonl", dir);
    mx_tune_options o = {.db = path, .seed = 3, .repeats = 3, .kernels = "matmul"};
    mx_tune_hooks h = {.time = two_is_fastest};
    mx_tune_summary s;
    CHECK_MSG(c && mx_tune_hooked(c, &o, &h, &s, &d) == MX_OK, "%s", d.msg);
    mx_tune_db db;
    CHECK(mx_tune_db_read(path, &db, stderr, &d) == MX_OK);
    CHECK_MSG(db.n >= 3 && db.n == s.kernels && s.products == s.kernels && s.improved == s.kernels,
              "%d records, %d kernels, %d products, %d improved", db.n, s.kernels, s.products, s.improved);
    for (int i = 0; i < db.n; i++) {
        const mx_tune_record *r = &db.records[i];
        CHECK_MSG(strncmp(r->label, "matmul f32[", 11) == 0 && r->n_candidates == 4 &&
                      r->candidates[r->winner].tiles.tasks == 2 && r->winner_source == r->kernel,
                  "%s: winner tasks %d of %d candidates", r->label, r->candidates[r->winner].tiles.tasks,
                  r->n_candidates);
    }
    mx_tune_db_free(&db);
    mx_compiled_free(c);
    mx_model_free(m);
}

int main(void) {
    if (!mx_have_cpu_backend()) {
        printf("skipped: no CPU backend in this build\n");
        return 0;
    }
    snprintf(dir, sizeof dir, "/tmp/mixc-split-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    setenv("MIXC_CACHE_DIR", dir, 1);
    test_units();
    test_splits_compute("f32", 1, 1e-5);
    test_splits_compute("f32", 3, 1e-5);
    test_splits_compute("bf16", 2, 1.6e-2); /* 2 ulps */
    test_search();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
