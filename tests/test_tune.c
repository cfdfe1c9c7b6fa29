/* test_tune.c: the tuning database and the search (runtime/tune.h,
 * docs/tune.md): records written and read back, corrupt lines skipped with
 * file:line, merging, records of another target or version ignored, a
 * compile taking the winner (and not a stale or a disabled one), the search
 * with an injected time (deterministic) where a deliberately wrong
 * candidate is the fastest and still cannot win, a real tune of a small
 * graph on the CPU whose winner's outputs match the reference, and the
 * modelled GPU ranking. */
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "driver.h"
#include "support.h"
#include "tune.h"

static char dir[64];

static void path_of(const char *name, char *buf, size_t size) { snprintf(buf, size, "%s/%s", dir, name); }

static mx_tune_record sample_record(uint64_t kernel, const char *target, bool measured, int items) {
    mx_tune_record r = {.kernel = kernel, .winner_source = 0x1234, .measured = measured, .winner = 1,
                        .n_candidates = 2};
    snprintf(r.label, sizeof r.label, "scan f32[1,8,16] (mx_g3_scan, 1 group)");
    snprintf(r.target, sizeof r.target, "%s", target);
    snprintf(r.when, sizeof r.when, "2026-01-01T00:00:00Z");
    r.candidates[0] = (mx_tune_candidate){.tiles = {.threads = 1, .items = 64, .channels = 1}, .ms = 2.0, .ratio = 1};
    r.candidates[1] = (mx_tune_candidate){.tiles = {.threads = 1, .items = items, .channels = 1, .tasks = 1},
                                          .ms = 1.5, .spread = 0.1, .ratio = 0.75};
    return r;
}

static void test_round_trip(void) {
    char path[128];
    path_of("rt.jsonl", path, sizeof path);
    mx_diag d;
    mx_tune_record r = sample_record(0xfeedface01234567ull, "cpu|x|avx2|2 threads|llvm 19.1.7|mixc 0.1.0", true, 16);
    CHECK_MSG(mx_tune_db_append(path, &r, &d) == MX_OK, "%s", d.msg);
    r.candidates[1].tiles.items = 8;
    r.candidates[1].pass_ms = 1.25, r.candidates[1].pass_ratio = 0.8; /* judged in the pass: kept */
    CHECK(mx_tune_db_append(path, &r, &d) == MX_OK);
    mx_tune_db db;
    CHECK_MSG(mx_tune_db_read(path, &db, stderr, &d) == MX_OK, "%s", d.msg);
    CHECK(db.n == 2);
    const mx_tune_record *got = mx_tune_db_find(&db, r.kernel, r.target, false);
    CHECK(got && got->line == 2 && got->candidates[got->winner].tiles.items == 8); /* the latest */
    CHECK(got && got->measured && got->n_candidates == 2 && got->winner_source == 0x1234 &&
          got->candidates[1].tiles.tasks == 1 && fabs(got->candidates[1].spread - 0.1) < 1e-12 &&
          got->candidates[1].pass_ms == 1.25 && got->candidates[1].pass_ratio == 0.8 &&
          got->candidates[0].pass_ratio == 0 &&
          strcmp(got->label, r.label) == 0);
    mx_tune_db_free(&db);
    mx_tune_db missing;
    path_of("none.jsonl", path, sizeof path);
    CHECK(mx_tune_db_read(path, &missing, NULL, &d) == MX_OK && missing.n == 0); /* no file: empty */
}

/* Lines 2 and 3 are damaged: both said with file:line, both skipped. */
static void test_corrupt_lines(void) {
    char path[128], warn_path[128];
    path_of("corrupt.jsonl", path, sizeof path);
    path_of("warn.txt", warn_path, sizeof warn_path);
    mx_tune_record r = sample_record(7, "cpu|x", true, 16);
    char *line = mx_tune_record_json(&r);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n%.40s\n{\"kernel\": \"zz\"}\n%s\n", line, line, line);
    fclose(f);
    free(line);
    FILE *warn = fopen(warn_path, "w+");
    mx_tune_db db;
    mx_diag d;
    CHECK(mx_tune_db_read(path, &db, warn, &d) == MX_OK && db.n == 2 && db.records[1].line == 4);
    mx_tune_db_free(&db);
    rewind(warn);
    char text[2048] = "";
    size_t n = fread(text, 1, sizeof text - 1, warn);
    text[n] = 0;
    fclose(warn);
    char want2[200], want3[200];
    snprintf(want2, sizeof want2, "%s:2: skipped: not a JSON object", path);
    snprintf(want3, sizeof want3, "%s:3: skipped: field \"kernel\"", path);
    CHECK_MSG(strstr(text, want2) && strstr(text, want3), "warnings: %s", text);
}

static void test_merge_and_targets(void) {
    char a[128], b[128], out[128];
    path_of("a.jsonl", a, sizeof a);
    path_of("b.jsonl", b, sizeof b);
    path_of("merged.jsonl", out, sizeof out);
    mx_diag d;
    mx_tune_record here = sample_record(11, "cpu|here", true, 16), there = sample_record(11, "cpu|there", true, 4);
    mx_tune_record modelled = sample_record(12, "gpu|h100", false, 32), measured = sample_record(12, "gpu|h100", true, 8);
    CHECK(mx_tune_db_append(a, &here, &d) == MX_OK && mx_tune_db_append(a, &measured, &d) == MX_OK);
    CHECK(mx_tune_db_append(b, &here, &d) == MX_OK && mx_tune_db_append(b, &there, &d) == MX_OK &&
          mx_tune_db_append(b, &modelled, &d) == MX_OK);
    FILE *f = fopen(b, "a");
    fprintf(f, "{\"truncated\n");
    fclose(f);
    const char *in[] = {a, b};
    CHECK_MSG(mx_tune_merge(in, 2, out, &d) == MX_OK, "%s", d.msg);
    mx_tune_db db;
    CHECK(mx_tune_db_read(out, &db, NULL, &d) == MX_OK);
    CHECK_MSG(db.n == 4, "%d records: the duplicate is kept once, the corrupt line dropped", db.n);
    const mx_tune_record *r = mx_tune_db_find(&db, 11, "cpu|here", false);
    CHECK(r && r->candidates[r->winner].tiles.items == 16);
    r = mx_tune_db_find(&db, 11, "cpu|elsewhere", false); /* another target's records are never used */
    CHECK(r == NULL);
    r = mx_tune_db_find(&db, 12, "gpu|h100", false); /* measured before modelled, whatever the order */
    CHECK(r && r->measured && r->candidates[r->winner].tiles.items == 8);
    modelled.kernel = 13;
    CHECK(mx_tune_db_append(out, &modelled, &d) == MX_OK);
    mx_tune_db_free(&db);
    CHECK(mx_tune_db_read(out, &db, NULL, &d) == MX_OK);
    r = mx_tune_db_find(&db, 13, "gpu|h100", false);
    CHECK(r && !r->measured);
    CHECK(mx_tune_db_find(&db, 13, "gpu|h100", true) == NULL); /* an estimate, where only a measurement will do */
    mx_tune_db_free(&db);
    const char *missing[] = {a, "/nonexistent/x.jsonl"};
    CHECK(mx_tune_merge(missing, 2, out, &d) != MX_OK && strstr(d.msg, "/nonexistent/x.jsonl"));
    CHECK(mx_tune_db_writable("/proc/mixc-tune.jsonl", &d) != MX_OK && strstr(d.msg, "cannot write"));
}

static mx_compiled *compile_cpu(mx_graph *g, mx_diag *d) {
    mx_target t;
    if (mx_target_detect(MX_DEVICE_CPU, &t, d) != MX_OK)
        return NULL;
    mx_compiled *c = mx_compile(g, &t, NULL, d);
    if (c && mx_init_weights(c, 5, d) != MX_OK) {
        mx_compiled_free(c);
        return NULL;
    }
    return c;
}

/* What a test of the picked tiles holds at its end. */
static void end_pick(mx_tiles *tiles, mx_module *base, mx_module *tuned, mx_compiled *c) {
    free(tiles);
    mx_module_free(base);
    mx_module_free(tuned);
    mx_compiled_free(c);
    unsetenv("MIXC_TUNE_DB");
}

/* The winner's tiles reach the compile; a stale record and MIXC_NO_TUNE do not. */
static void test_compile_picks(mx_graph *g) {
    char path[128];
    path_of("pick.jsonl", path, sizeof path);
    setenv("MIXC_TUNE_DB", path, 1);
    mx_diag d;
    mx_compiled *c = compile_cpu(g, &d);
    CHECK_MSG(c, "%s", d.msg);
    if (!c)
        return;
    const mx_program *p = mx_compiled_program(c);
    const mx_target *t = mx_compiled_target(c);
    int scan = -1;
    for (int k = 0; k < p->n_groups; k++)
        if (p->groups[k].kind == MX_FUSE_SCAN)
            scan = k;
    mx_tiles *tiles = calloc((size_t)p->n_groups, sizeof *tiles), want = mx_tune_default_tiles(p, t, scan);
    mx_codegen_options co = {.target = t, .tiles = tiles};
    for (int k = 0; k < p->n_groups; k++)
        tiles[k] = mx_tune_default_tiles(p, t, k);
    mx_module base, tuned;
    CHECK(mx_codegen(p, &co, &base, &d) == MX_OK);
    want.items = 4, want.tasks = 1;
    tiles[scan] = want;
    CHECK(mx_codegen(p, &co, &tuned, &d) == MX_OK);
    char sig[256];
    mx_tune_signature(t, sig, sizeof sig);
    mx_tune_record r = sample_record(mx_module_kernel(&base, scan)->identity, sig, true, 4);
    r.candidates[0].tiles = mx_tune_default_tiles(p, t, scan);
    r.candidates[1].tiles = want;
    r.winner_source = mx_module_kernel(&tuned, scan)->identity;
    CHECK(mx_tune_db_append(path, &r, &d) == MX_OK);
    mx_tiles *picked = NULL;
    CHECK(mx_tune_tiles(p, t, &picked, &d) == MX_OK && picked && picked[scan].items == 4 && picked[scan].tasks == 1);
    free(picked);
    setenv("MIXC_NO_TUNE", "1", 1);
    CHECK(mx_tune_tiles(p, t, &picked, &d) == MX_OK && picked && picked[scan].items == 64);
    free(picked);
    unsetenv("MIXC_NO_TUNE");
    r.winner_source ^= 1; /* a record whose winner generates other code now: stale */
    CHECK(mx_tune_db_append(path, &r, &d) == MX_OK);
    CHECK(mx_tune_tiles(p, t, &picked, &d) == MX_OK && picked && picked[scan].items == 64);
    free(picked);
    /* a winner whose tiles the code generator refuses now: the defaults,
     * not a failed compile (a database never stops one) */
    r.candidates[1].tiles.threads = r.candidates[1].tiles.channels = 3000;
    tiles[scan] = r.candidates[1].tiles;
    mx_module refused;
    CHECK(mx_codegen(p, &co, &refused, &d) != MX_OK); /* the premise */
    CHECK(mx_tune_db_append(path, &r, &d) == MX_OK);
    picked = NULL;
    CHECK_MSG(mx_tune_tiles(p, t, &picked, &d) == MX_OK && picked && picked[scan].items == 64, "%s", d.msg);
    free(picked);
    end_pick(tiles, &base, &tuned, c);
}

/* Every name of one GPU shares its records: what was tuned on an H100 read
 * off the driver reaches --target sm_90 and h100 compiles (mixc emit,
 * compile --cubin, the emulation); an H200 (the same SM and SM count) does
 * not; the H100 itself takes only measured records, the named profiles a
 * modelled one too. */
static void test_gpu_names_share(mx_graph *g) {
    char path[128];
    path_of("names.jsonl", path, sizeof path);
    setenv("MIXC_TUNE_DB", path, 1);
    mx_diag d;
    mx_target sm90, h100, h200, gpu;
    CHECK(mx_target_named("sm_90", MX_DEVICE_EMU, &sm90, &d) == MX_OK &&
          mx_target_named("h100", MX_DEVICE_CUDA, &h100, &d) == MX_OK &&
          mx_target_named("h200", MX_DEVICE_EMU, &h200, &d) == MX_OK);
    gpu = h100; /* as detect_cuda reads an H100 SXM (test_runtime checks it sets the profile) */
    gpu.detected = 1;
    snprintf(gpu.name, sizeof gpu.name, "NVIDIA H100 80GB HBM3");
    char sig[4][256];
    const mx_target *ts[4] = {&gpu, &sm90, &h100, &h200};
    for (int i = 0; i < 4; i++)
        mx_tune_signature(ts[i], sig[i], sizeof sig[i]);
    CHECK_MSG(strcmp(sig[0], sig[1]) == 0 && strcmp(sig[0], sig[2]) == 0, "%s | %s | %s", sig[0], sig[1], sig[2]);
    CHECK_MSG(strcmp(sig[0], sig[3]) != 0 && strstr(sig[0], "gpu|h100|sm_90|132 SMs|"), "%s", sig[0]);
    mx_compile_options co = {.no_load = 1};
    mx_compiled *c = mx_compile(g, &sm90, &co, &d);
    CHECK_MSG(c, "%s", d.msg);
    const mx_program *p = c ? mx_compiled_program(c) : NULL;
    int scan = -1;
    for (int k = 0; p && k < p->n_groups; k++)
        if (p->groups[k].kind == MX_FUSE_SCAN)
            scan = k;
    mx_tiles *tiles = scan >= 0 ? calloc((size_t)p->n_groups, sizeof *tiles) : NULL;
    mx_module base = {0}, tuned = {0};
    CHECK(tiles);
    if (!tiles) {
        end_pick(tiles, &base, &tuned, c);
        return;
    }
    for (int k = 0; k < p->n_groups; k++)
        tiles[k] = mx_tune_default_tiles(p, &sm90, k);
    mx_tiles want = tiles[scan];
    mx_codegen_options cg = {.target = &sm90, .tiles = tiles};
    bool generated = mx_codegen(p, &cg, &base, &d) == MX_OK;
    want.min_blocks = want.min_blocks == 2 ? 4 : 2;
    tiles[scan] = want;
    generated = generated && mx_codegen(p, &cg, &tuned, &d) == MX_OK;
    CHECK_MSG(generated, "%s", d.msg);
    if (!generated) {
        end_pick(tiles, &base, &tuned, c);
        return;
    }
    mx_tune_record r = sample_record(mx_module_kernel(&base, scan)->identity, sig[1], false, 0);
    r.candidates[0].tiles = mx_tune_default_tiles(p, &sm90, scan);
    r.candidates[1].tiles = want;
    r.winner_source = mx_module_kernel(&tuned, scan)->identity;
    CHECK(mx_tune_db_append(path, &r, &d) == MX_OK); /* modelled, --target sm_90 */
    const mx_target *modelled_reaches[] = {&sm90, &h100}, *defaults[] = {&gpu, &h200};
    for (int i = 0; i < 2; i++) {
        mx_tiles *picked = NULL;
        CHECK_MSG(mx_tune_tiles(p, modelled_reaches[i], &picked, &d) == MX_OK && picked &&
                      picked[scan].min_blocks == want.min_blocks, "%s", modelled_reaches[i]->name);
        free(picked);
        CHECK_MSG(mx_tune_tiles(p, defaults[i], &picked, &d) == MX_OK && picked &&
                      picked[scan].min_blocks == r.candidates[0].tiles.min_blocks, "%s", defaults[i]->name);
        free(picked);
    }
    r.measured = true; /* measured on the H100: the H100 takes it, and so does --target sm_90 */
    mx_tune_signature(&gpu, r.target, sizeof r.target);
    CHECK(mx_tune_db_append(path, &r, &d) == MX_OK);
    const mx_target *measured_reaches[] = {&gpu, &sm90, &h100};
    for (int i = 0; i < 3; i++) {
        mx_tiles *picked = NULL;
        CHECK_MSG(mx_tune_tiles(p, measured_reaches[i], &picked, &d) == MX_OK && picked &&
                      picked[scan].min_blocks == want.min_blocks, "%s", measured_reaches[i]->name);
        free(picked);
    }
    end_pick(tiles, &base, &tuned, c);
}

/* The injected times: 10 for the default, 1 for a wrong candidate (the
 * default's tiles split over 7 tasks, whose outputs wrong_outputs spoils),
 * else 12 - items / 16 (items 128 best). */
enum { WRONG_TASKS = 7 };

static double fake_time(void *ctx, const mx_tiles *t) {
    if (t->tasks == WRONG_TASKS)
        return 1;
    if (t->items == 64 && t->tasks == 0)
        return 10;
    return 12 - t->items / 16.0;
}

/* The space's first 20 (searched whole; items from 2 to 128 among them)
 * and the wrong one. */
static void add_wrong(void *ctx, const mx_program *p, int group, mx_tune_space *s) {
    s->n = s->n < 20 ? s->n : 20;
    if (p->groups[group].kind == MX_FUSE_SCAN && s->n > 0) {
        s->tiles[s->n] = s->tiles[0];
        s->tiles[s->n++].tasks = WRONG_TASKS;
    }
}

/* The wrong candidate's forward pass: one output number off by 1% and 0.01. */
static void wrong_outputs(void *ctx, const mx_program *p, const mx_tiles *tiles, mx_buffers *out) {
    for (int g = 0; g < p->n_groups; g++)
        if (p->groups[g].kind == MX_FUSE_SCAN && tiles[g].tasks == WRONG_TASKS) {
            int v = mx_graph_output(p->g, 0);
            out->data[v][out->numel[v] / 2] = out->data[v][out->numel[v] / 2] * 1.01f + 0.01f;
            return;
        }
}

/* c's kernels matching `kernels` tuned with hooks h (seed 9, 3 repeats)
 * into a fresh database `name`, read back into *db: one record expected. */
static void tune_hooked_into(mx_compiled *c, const char *name, const char *kernels, const mx_tune_hooks *h,
                             mx_tune_summary *s, mx_tune_db *db) {
    char path[128];
    path_of(name, path, sizeof path);
    mx_diag d;
    mx_tune_options o = {.db = path, .seed = 9, .repeats = 3, .kernels = kernels};
    CHECK_MSG(mx_tune_hooked(c, &o, h, s, &d) == MX_OK, "%s", d.msg);
    *db = (mx_tune_db){0};
    CHECK(mx_tune_db_read(path, db, stderr, &d) == MX_OK && db->n == 1);
}

static void test_search_injected(mx_graph *g) {
    mx_diag d;
    mx_compiled *c = compile_cpu(g, &d);
    CHECK_MSG(c, "%s", d.msg);
    if (!c)
        return;
    mx_tune_hooks h = {.extend = add_wrong, .time = fake_time, .outputs = wrong_outputs};
    mx_tune_summary s;
    mx_tune_db db;
    tune_hooked_into(c, "search.jsonl", "*scan*", &h, &s, &db);
    CHECK(s.kernels == 1 && s.improved == 1);
    if (db.n == 1) {
        const mx_tune_record *r = &db.records[0];
        int wrong = -1;
        for (int i = 0; i < r->n_candidates; i++)
            if (r->candidates[i].tiles.tasks == WRONG_TASKS)
                wrong = i;
        CHECK_MSG(wrong > 0 && r->candidates[wrong].status == MX_CAND_MISMATCH, "the wrong candidate is %s",
                  wrong > 0 ? mx_cand_status_names[r->candidates[wrong].status] : "missing");
        CHECK_MSG(r->candidates[r->winner].tiles.items == 128, "winner items %d",
                  r->candidates[r->winner].tiles.items);
        CHECK(fabs(r->candidates[r->winner].ratio - (12 - 16.0) / 10) < 1e-9 || r->candidates[r->winner].ratio < 1);
    }
    mx_tune_db_free(&db);
    mx_compiled_free(c);
}

/* Parallel rounds, halving, with the injected time: every space made the
 * default, then it split over 1 and 2 tasks; the first scan kernel's second
 * made the wrong one (its outputs spoiled) and the first norm kernel's
 * second one the emitter refuses (8 threads a row), so the round of second
 * candidates holds every kernel and fails to compile, then to match. */
typedef struct {
    int wrong_group;   /* the scan kernel given the wrong candidate, -1: none yet */
    int refused_group; /* the norm kernel given the refused one */
    int wrong_runs;    /* forward passes whose tiles held the wrong one */
} run_count;

static void trim_and_wrong(void *ctx, const mx_program *p, int group, mx_tune_space *s) {
    run_count *rc = ctx;
    s->n = 3;
    for (int i = 1; i < 3; i++)
        s->tiles[i] = s->tiles[0], s->tiles[i].tasks = i;
    if (p->groups[group].kind == MX_FUSE_SCAN && rc->wrong_group < 0) {
        rc->wrong_group = group;
        s->tiles[1] = s->tiles[0];
        s->tiles[1].tasks = WRONG_TASKS;
    }
    if (p->groups[group].kind == MX_FUSE_NORM && rc->refused_group < 0) {
        rc->refused_group = group;
        s->tiles[1].threads = 8;
    }
}

static void count_wrong(void *ctx, const mx_program *p, const mx_tiles *tiles, mx_buffers *out) {
    for (int g = 0; g < p->n_groups; g++)
        if (p->groups[g].kind == MX_FUSE_SCAN && tiles[g].tasks == WRONG_TASKS) {
            ((run_count *)ctx)->wrong_runs++;
            break;
        }
    wrong_outputs(ctx, p, tiles, out);
}

static mx_status tune_trimmed(mx_graph *g, const char *db, int jobs, run_count *runs, mx_tune_summary *s,
                              mx_diag *d) {
    mx_compiled *c = compile_cpu(g, d);
    if (!c)
        return MX_ERR_INVALID;
    mx_tune_options o = {.db = db, .seed = 3, .repeats = 3, .jobs = jobs};
    mx_tune_hooks h = {.extend = trim_and_wrong, .time = fake_time, .outputs = count_wrong, .ctx = runs};
    mx_status st = mx_tune_hooked(c, &o, &h, s, d);
    mx_compiled_free(c);
    return st;
}

static void test_parallel_rounds(mx_graph *g) {
    char serial[128], parallel[128];
    path_of("serial.jsonl", serial, sizeof serial);
    path_of("parallel.jsonl", parallel, sizeof parallel);
    run_count one = {.wrong_group = -1, .refused_group = -1}, three = {.wrong_group = -1, .refused_group = -1};
    mx_tune_summary s1, s3;
    mx_diag d;
    CHECK_MSG(tune_trimmed(g, serial, 1, &one, &s1, &d) == MX_OK, "%s", d.msg);
    CHECK_MSG(tune_trimmed(g, parallel, 3, &three, &s3, &d) == MX_OK, "%s", d.msg);
    CHECK_MSG(s1.kernels >= 3 && s1.kernels == s3.kernels, "%d and %d kernels", s1.kernels, s3.kernels);
    /* the refused one named by the compiler's message, then the wrong one found by halving the rest: the
     * failing round, then one half per level holds the culprit */
    int levels = 0;
    while ((1 << levels) < s1.kernels - 1)
        levels++;
    CHECK_MSG(one.wrong_runs == 1 + levels && three.wrong_runs == 1 + levels,
              "the wrong candidate ran %d and %d times; halving %d kernels: %d", one.wrong_runs, three.wrong_runs,
              s1.kernels, 1 + levels);
    mx_tune_db a, b;
    CHECK(mx_tune_db_read(serial, &a, stderr, &d) == MX_OK && mx_tune_db_read(parallel, &b, stderr, &d) == MX_OK);
    CHECK_MSG(a.n == s1.kernels && b.n == a.n, "%d and %d records", a.n, b.n);
    int mismatches = 0, refused = 0;
    for (int i = 0; i < a.n && i < b.n; i++) {
        const mx_tune_record *x = &a.records[i], *y = mx_tune_db_find(&b, a.records[i].kernel, a.records[i].target, false);
        CHECK(y && x->n_candidates == y->n_candidates && x->winner == y->winner);
        for (int k = 0; y && k < x->n_candidates && k < y->n_candidates; k++) {
            CHECK(memcmp(&x->candidates[k].tiles, &y->candidates[k].tiles, sizeof x->candidates[k].tiles) == 0 &&
                  x->candidates[k].status == y->candidates[k].status && x->candidates[k].ms == y->candidates[k].ms);
            /* only the culprit is blamed, not the kernels of its round */
            /* (a norm's: 8 threads is an element kernel's default where vectors are 8 lanes, AVX2) */
            bool wrong = x->candidates[k].tiles.tasks == WRONG_TASKS,
                 refuse = strncmp(x->label, "norm", 4) == 0 && x->candidates[k].tiles.threads == 8;
            CHECK_MSG((x->candidates[k].status == MX_CAND_MISMATCH) == wrong &&
                          (x->candidates[k].status == MX_CAND_INVALID) == refuse,
                      "%s candidate %d: %s", x->label, k, mx_cand_status_names[x->candidates[k].status]);
            mismatches += wrong;
            refused += refuse;
        }
    }
    CHECK(mismatches == 1 && refused == 1);
    mx_tune_db_free(&a);
    mx_tune_db_free(&b);
}

/* The whole forward pass decides: the injected forward time of the tuned
 * set (any scan tiles but the default's) is `tuned`, the defaults' 10;
 * the first `slow` timed tuned passes (after the warm-up) take 11. */
typedef struct {
    double tuned;
    int slow, calls;
} forward_time;

static double injected_forward(void *ctx, const mx_tiles *tiles) {
    /* readme_example: its one generated kernel is the scan, group 0 */
    forward_time *ft = ctx;
    if (tiles[0].items == 64 && tiles[0].tasks == 0)
        return 10;
    ft->calls++;
    return ft->calls >= 2 && ft->calls <= 1 + ft->slow ? 11 : ft->tuned;
}

/* Slower (11), kept (9), and faster by the medians (9) but the slower in 2
 * of the 7 pairs: not kept. */
static void test_forward_decides(mx_graph *g) {
    static const double tuned[3] = {11, 9, 9};
    static const int slow[3] = {0, 0, 2}, wins[3] = {0, 7, 5};
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/forward%d.jsonl", dir, i);
        mx_diag d;
        mx_compiled *c = compile_cpu(g, &d);
        CHECK_MSG(c, "%s", d.msg);
        if (!c)
            return;
        CHECK(mx_compiled_program(c)->groups[0].kind == MX_FUSE_SCAN);
        forward_time ft = {tuned[i], slow[i], 0};
        mx_tune_options o = {.db = path, .seed = 9, .repeats = 3};
        mx_tune_hooks h = {.time = fake_time, .forward = injected_forward, .ctx = &ft};
        mx_tune_summary s;
        CHECK_MSG(mx_tune_hooked(c, &o, &h, &s, &d) == MX_OK, "%s", d.msg);
        bool kept = tuned[i] < 10 && slow[i] == 0;
        CHECK_MSG(s.forward_default_ms == 10 && s.forward_tuned_ms == tuned[i] && s.forward_kept == kept &&
                      s.improved == kept && s.forward_wins == wins[i] && s.forward_pairs == 7,
                  "forward %g against %g ms, kept %d, improved %d, the faster in %d of %d", s.forward_tuned_ms,
                  s.forward_default_ms, s.forward_kept, s.improved, s.forward_wins, s.forward_pairs);
        mx_tune_db db;
        CHECK(mx_tune_db_read(path, &db, stderr, &d) == MX_OK && db.n == 1);
        if (db.n == 1) {
            const mx_tune_record *r = &db.records[0];
            /* the kernel alone was faster (items 128), together slower: the default is recorded */
            CHECK_MSG((r->winner > 0) == kept && fabs(r->forward - tuned[i] / 10) < 1e-12, "winner %d, forward %g",
                      r->winner, r->forward);
            CHECK(r->candidates[0].tiles.items == 64 && r->n_candidates > 2);
        }
        mx_tune_db_free(&db);
        mx_compiled_free(c);
    }
}

/* The pass decides among the best few alone: items 128 is best alone (2
 * against the default's 10) but slow in the forward pass (12), items 32
 * second alone (3) and best in the pass (4); items 8, fastest in the pass
 * (1), is fourth alone and never judged there. */
static double alone_by_items(void *ctx, const mx_tiles *t) {
    return t->items == 128 ? 2 : t->items == 32 ? 3 : t->items == 16 ? 5 : t->items == 8 ? 8 : 10;
}

static double pass_by_items(void *ctx, const mx_tiles *tiles, int group) {
    int items = tiles[group].items;
    return group != 0 ? 0 : items == 128 ? 12 : items == 32 ? 4 : items == 16 ? 6 : items == 8 ? 1 : 10;
}

static void four_items(void *ctx, const mx_program *p, int group, mx_tune_space *s) {
    static const int items[] = {128, 32, 16, 8};
    s->n = 5;
    for (int i = 0; i < 4; i++)
        s->tiles[i + 1] = s->tiles[0], s->tiles[i + 1].items = items[i];
}

static void test_pass_decides(mx_graph *g) {
    mx_diag d;
    mx_compiled *c = compile_cpu(g, &d);
    CHECK_MSG(c, "%s", d.msg);
    if (!c)
        return;
    mx_tune_hooks h = {.extend = four_items, .time = alone_by_items, .in_pass = pass_by_items};
    mx_tune_summary s;
    mx_tune_db db;
    tune_hooked_into(c, "pass.jsonl", "*scan*", &h, &s, &db);
    CHECK(s.kernels == 1 && s.improved == 1 && s.default_ms == 10 && s.tuned_ms == 4);
    for (int i = 0; db.n == 1 && i < db.records[0].n_candidates; i++) {
        const mx_tune_candidate *k = &db.records[0].candidates[i];
        double want = k->tiles.items == 128 ? 1.2 : k->tiles.items == 32 ? 0.4 : k->tiles.items == 16 ? 0.6 : 0;
        CHECK_MSG(fabs(k->pass_ratio - (i == 0 ? 1 : want)) < 1e-12, "items %d: pass ratio %g", k->tiles.items,
                  k->pass_ratio);
    }
    CHECK_MSG(db.n == 1 && db.records[0].candidates[db.records[0].winner].tiles.items == 32, "winner items %d",
              db.n == 1 ? db.records[0].candidates[db.records[0].winner].tiles.items : -1);
    mx_tune_db_free(&db);
    mx_compiled_free(c);
}

/* What a kernel leaves the group after it is its cost: on the first scan
 * group (ctx), items 128, fastest alone and on its own group in the pass
 * (1 against 10), makes the next group take 20 instead of 2; items 32 (2
 * alone, 5 on its group in the pass) wins. */
static double spilling(void *ctx, const mx_tiles *tiles, int group) {
    int scan = *(const int *)ctx;
    if (group == scan + 1)
        return tiles[scan].items == 128 ? 20 : 2;
    return group != scan ? 0 : tiles[scan].items == 128 ? 1 : tiles[scan].items == 32 ? 5 : 10;
}

static double alone_spilling(void *ctx, const mx_tiles *t) { return t->items == 128 ? 1 : t->items == 32 ? 2 : 10; }

static void test_pass_charges_the_next_group(mx_graph *g) {
    char only[32];
    mx_diag d;
    mx_compiled *c = compile_cpu(g, &d);
    CHECK_MSG(c, "%s", d.msg);
    if (!c)
        return;
    const mx_program *p = mx_compiled_program(c);
    int scan = 0;
    while (scan < p->n_groups && p->groups[scan].kind != MX_FUSE_SCAN)
        scan++;
    CHECK(scan + 1 < p->n_groups);
    snprintf(only, sizeof only, "mx_g%d_scan", scan); /* its function's name: the first group's */
    mx_tune_hooks h = {.extend = four_items, .time = alone_spilling, .in_pass = spilling, .ctx = &scan};
    mx_tune_summary s;
    mx_tune_db db;
    tune_hooked_into(c, "spill.jsonl", only, &h, &s, &db);
    for (int i = 0; db.n == 1 && i < db.records[0].n_candidates; i++) {
        const mx_tune_candidate *k = &db.records[0].candidates[i];
        double want = i == 0 ? 1 : k->tiles.items == 128 ? 21.0 / 12 : k->tiles.items == 32 ? 7.0 / 12 : 0;
        CHECK_MSG(fabs(k->pass_ratio - want) < 1e-12, "items %d: pass ratio %g, not %g", k->tiles.items,
                  k->pass_ratio, want);
    }
    CHECK_MSG(db.n == 1 && db.records[0].candidates[db.records[0].winner].tiles.items == 32, "winner items %d",
              db.n == 1 ? db.records[0].candidates[db.records[0].winner].tiles.items : -1);
    mx_tune_db_free(&db);
    mx_compiled_free(c);
}

/* A real tune on the CPU, then a compile with the database: its outputs
 * against the reference interpreter on the same inputs. */
static void test_real_tune(mx_graph *g) {
    char path[128];
    path_of("real.jsonl", path, sizeof path);
    mx_diag d;
    mx_compiled *c = compile_cpu(g, &d);
    CHECK_MSG(c, "%s", d.msg);
    if (!c)
        return;
    mx_tune_options o = {.db = path, .seed = 21, .repeats = 3, .budget_s = 20};
    mx_tune_summary s;
    CHECK_MSG(mx_tune(c, &o, &s, &d) == MX_OK, "%s", d.msg);
    CHECK(s.kernels >= 1 && s.candidates > s.kernels && s.default_ms > 0 && s.tuned_ms > 0);
    mx_compiled_free(c);
    setenv("MIXC_TUNE_DB", path, 1);
    c = compile_cpu(g, &d);
    unsetenv("MIXC_TUNE_DB");
    mx_buffers *b = mx_buffers_new(g);
    mx_buffers_fill_random(b, g, 5); /* the params mx_init_weights gives a graph */
    for (int i = 0; c && i < mx_tensor_count(c, MX_ROLE_INPUT); i++) { /* fresh inputs: a sine of the index */
        mx_tensor_info ti;
        mx_tensor_info_of(c, MX_ROLE_INPUT, i, &ti, &d);
        float *v = b->data[mx_graph_value_find(g, ti.name)];
        for (int64_t e = 0; e < ti.numel; e++)
            v[e] = (float)sin(0.37 * (double)e + i);
        CHECK(mx_set_input(c, ti.name, v, MX_F32, ti.rank, ti.dims, &d) == MX_OK);
    }
    CHECK_MSG(c && mx_run(c, &d) == MX_OK, "%s", d.msg);
    if (c) {
        CHECK(mx_ref_run(g, b, &d) == MX_OK);
        int y = mx_graph_output(g, 0);
        double *want = malloc((size_t)b->numel[y] * sizeof *want);
        for (int64_t i = 0; i < b->numel[y]; i++)
            want[i] = b->data[y][i];
        const float *got = mx_output(c, NULL);
        CHECK(got && CHECK_CLOSE(got, want, b->numel[y], 1e-4, "tuned cpu vs reference"));
        free(want);
    }
    mx_buffers_free(b);
    mx_compiled_free(c);
}

/* A language model's inputs are token ids: the tune's fresh inputs must be
 * whole numbers in [0, V) (as mx_set_random_inputs draws them), or every
 * embedding reads NaN, a NaN default "matches" every candidate and a wrong
 * one wins. So the wrong candidate of test_search_injected is refused here
 * too, and the inputs the tune leaves in the program run to finite logits. */
static void test_token_ids(void) {
    const char *set[] = {"batch=2", "input.length=12", "input.vocab=64", "stages[0].width=8", "stages[0].depth=1"};
    mx_model *m = support_load_model(MIXC_SOURCE_DIR "/models/lm/mamba-130m.json", set, 5);
    mx_target t;
    mx_diag d;
    if (!m || mx_target_detect(MX_DEVICE_CPU, &t, &d) != MX_OK) {
        mx_model_free(m);
        return;
    }
    mx_compiled *c = mx_compile_model(m, &t, NULL, &d);
    CHECK_MSG(c && mx_init_weights(c, 3, &d) == MX_OK, "%s", d.msg);
    if (!c) {
        mx_model_free(m);
        return;
    }
    mx_tune_hooks h = {.extend = add_wrong, .time = fake_time, .outputs = wrong_outputs};
    mx_tune_summary s;
    mx_tune_db db;
    tune_hooked_into(c, "ids.jsonl", "*scan*", &h, &s, &db);
    int wrong = -1;
    for (int i = 0; db.n == 1 && i < db.records[0].n_candidates; i++)
        if (db.records[0].candidates[i].tiles.tasks == WRONG_TASKS)
            wrong = i;
    CHECK_MSG(wrong > 0 && db.records[0].candidates[wrong].status == MX_CAND_MISMATCH, "the wrong candidate is %s",
              wrong > 0 ? mx_cand_status_names[db.records[0].candidates[wrong].status] : "missing");
    mx_tune_db_free(&db);
    CHECK_MSG(mx_run(c, &d) == MX_OK, "%s", d.msg);
    const float *y = mx_output(c, NULL);
    int64_t n = mx_graph_value_numel(mx_model_graph(m), mx_graph_output(mx_model_graph(m), 0)), finite = 0;
    for (int64_t i = 0; y && i < n; i++)
        finite += isfinite(y[i]);
    CHECK_MSG(y && finite == n, "%lld of %lld logits finite after the tune's inputs", (long long)finite, (long long)n);
    mx_compiled_free(c);
    mx_model_free(m);
}

/* --device cuda --model-only: GPU candidates ranked by the estimate, stored as modelled. */
static void test_model_only(mx_graph *g) {
    char path[128];
    path_of("model.jsonl", path, sizeof path);
    mx_target t;
    mx_diag d;
    CHECK(mx_target_named("h100", MX_DEVICE_CUDA, &t, &d) == MX_OK);
    mx_compile_options co = {.no_load = 1};
    mx_compiled *c = mx_compile(g, &t, &co, &d);
    CHECK_MSG(c && mx_init_weights(c, 5, &d) == MX_OK, "%s", d.msg);
    mx_tune_options o = {.db = path, .seed = 4, .model_only = 1, .kernels = "*scan*", .budget_s = 5};
    mx_tune_summary s;
    CHECK_MSG(c && mx_tune(c, &o, &s, &d) == MX_OK, "%s", d.msg);
    mx_tune_db db;
    CHECK(mx_tune_db_read(path, &db, stderr, &d) == MX_OK && db.n == 1);
    char driver[32] = "|driver none|"; /* a driver update can change a kernel's time: records keep its version */
    if (mx_cuda_driver_version() > 0)
        snprintf(driver, sizeof driver, "|driver %d.%d|", mx_cuda_driver_version() / 1000,
                 mx_cuda_driver_version() % 1000 / 10);
    CHECK_MSG(db.n == 1 && strstr(db.records[0].target, driver), "target %s", db.n ? db.records[0].target : "-");
    CHECK(db.n == 1 && !db.records[0].measured && strncmp(db.records[0].target, "gpu|h100|sm_90", 14) == 0 &&
          db.records[0].n_candidates >= 2 && db.records[0].candidates[0].ms > 0);
    mx_tune_db_free(&db);
    mx_compiled_free(c);
    /* the emulation's times mean nothing: measuring on it is refused, saying what to do */
    CHECK(mx_target_named("h100", MX_DEVICE_EMU, &t, &d) == MX_OK);
    c = mx_compile(g, &t, &co, &d);
    o.model_only = 0;
    CHECK(c && mx_init_weights(c, 5, &d) == MX_OK && mx_tune(c, &o, &s, &d) != MX_OK &&
          strstr(d.msg, "cannot time kernels") && strstr(d.msg, "--model-only"));
    mx_compiled_free(c);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/mixc-tune-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    setenv("MIXC_CACHE_DIR", dir, 1);
    test_round_trip();
    test_corrupt_lines();
    test_merge_and_targets();
    mx_diag d;
    mx_graph *g = mx_graph_load(MIXC_SOURCE_DIR "/tests/ir/readme_example.mxir", &d);
    CHECK_MSG(g, "%s", d.msg);
    if (g && mx_have_cpu_backend()) {
        test_compile_picks(g);
        test_search_injected(g);
        test_forward_decides(g);
        test_pass_decides(g);
        test_real_tune(g);
        test_token_ids();
    }
    if (g)
        test_model_only(g);
    if (g)
        test_gpu_names_share(g);
    mx_graph_free(g);
    g = mx_graph_load(MIXC_SOURCE_DIR "/tests/ir/mambamixer_block.mxir", &d);
    CHECK_MSG(g, "%s", d.msg);
    if (g && mx_have_cpu_backend()) {
        test_parallel_rounds(g);
        test_pass_charges_the_next_group(g);
    }
    mx_graph_free(g);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
