/* test_explore.c: sweeps of spec variants (runtime/explore.h): a small grid
 * with one broken value, measured on the host and estimated for h100; its
 * table, CSV and JSON agree; the SVG parses as XML with one point per
 * variant; two shards merge to the whole; --vary parsing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "explore.h"

#define SPEC MIXC_SOURCE_DIR "/models/mamba-block.json"

static char tmp_dir[] = "/tmp/mixc-test-explore-XXXXXX";

static const char *const reduced[] = {"input.length=12", "stages[0].width=8", "batch=1"};

/* A parsed --vary, under a check. */
static mx_vary vary(const char *arg) {
    mx_vary v;
    mx_diag d = {{0}};
    CHECK_MSG(mx_vary_parse(arg, &v, &d) == MX_OK, "%s: %s", arg, d.msg);
    return v;
}

static mx_explore *sweep(const mx_vary *vy, int n_vary, bool measure, int shard, int n_shards) {
    mx_explore_options o = {.spec = SPEC, .overrides = reduced, .n_overrides = 3, .vary = vy, .n_vary = n_vary,
                            .seed = 1, .shard = shard, .n_shards = n_shards, .estimate_target = "h100",
                            .host_device = measure ? "cpu" : NULL, .warmup = 0, .runs = 1};
    mx_explore *e = NULL;
    mx_diag d = {{0}};
    CHECK_MSG(mx_explore_run(&o, &e, &d) == MX_OK, "%s", d.msg);
    return e;
}

static void test_vary_parse(void) {
    mx_vary v = vary("stages[0].depths=[2,2],[4,{\"a\":1,\"b\":2}],3");
    CHECK(v.n_values == 3 && strcmp(v.path, "stages[0].depths") == 0);
    CHECK(v.n_values == 3 && strcmp(v.values[1], "[4,{\"a\":1,\"b\":2}]") == 0);
    mx_vary_free(&v);
    const char *bad[] = {"d_state", "=1,2", "d_state=", "d_state=1,,2", "d_state=1,"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mx_diag d = {{0}};
        CHECK_MSG(mx_vary_parse(bad[i], &v, &d) != MX_OK && strstr(d.msg, "--vary"), "'%s' parsed: %s", bad[i],
                  d.msg);
    }
}

/* Whether got is x to the 4 significant digits of the table. */
static bool table_close(double got, double x) {
    return isnan(x) ? isnan(got) : fabs(got - x) <= 5e-4 * fabs(x) + 1e-12;
}

/* The numbers of the table's data rows, against the variants. */
static void check_table(const mx_explore *e, const char *text, int n_paths) {
    static const double scale[] = {1e-6, 1e-9, 1e-6, 1e-6, 1, 1, 1, 1, 1};
    int row = -1; /* -1: the header */
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (*line == '#' || row++ < 0)
            continue;
        if (row > e->n_variants)
            break;
        const mx_variant *v = &e->variants[row - 1];
        char copy[1024];
        size_t n = strcspn(line, "\n");
        snprintf(copy, sizeof copy, "%.*s", (int)n, line);
        if (v->error) {
            CHECK_MSG(strstr(copy, "failed: ") && strstr(copy, v->error), "row %d: %s", row, copy);
            continue;
        }
        char *save, *tok = strtok_r(copy, " ", &save);
        for (int k = 0; k < n_paths && tok; k++, tok = strtok_r(NULL, " ", &save))
            CHECK_MSG(strcmp(tok, v->values[k]) == 0, "row %d: %s", row, tok);
        const double want[] = {v->params, v->flops, v->bytes, v->peak_bytes, v->kernels, v->matmuls,
                               v->host_ms, v->estimate_ms, v->gpu_ms};
        for (int c = 0; c < 9; c++, tok = strtok_r(NULL, " ", &save)) {
            double got = tok && strcmp(tok, "-") != 0 ? strtod(tok, NULL) : NAN;
            CHECK_MSG(tok && table_close(got, want[c] * scale[c]), "row %d column %d: %s, want %.6g", row, c,
                      tok ? tok : "(none)", want[c] * scale[c]);
        }
    }
    CHECK_MSG(row == e->n_variants, "%d table rows for %d variants", row, e->n_variants);
}

static void check_csv(const mx_explore *e, const char *text, int n_paths) {
    const char *line = strchr(text, '\n');
    CHECK(strncmp(text, e->paths[0], strlen(e->paths[0])) == 0 && strstr(text, "_ms(estimated)"));
    for (int i = 0; i < e->n_variants && line; i++, line = strchr(line, '\n')) {
        const mx_variant *v = &e->variants[i];
        const double want[] = {v->params, v->flops, v->bytes, v->peak_bytes, v->kernels, v->matmuls,
                               v->host_ms, v->estimate_ms, v->gpu_ms};
        line++;
        for (int k = 0; k < n_paths; k++) {
            CHECK(strncmp(line, v->values[k], strlen(v->values[k])) == 0);
            line = strchr(line, ',') + 1;
        }
        for (int c = 0; c < 9; c++) {
            bool empty = *line == ',';
            double got = empty ? NAN : strtod(line, NULL);
            bool same = v->error ? empty : isnan(want[c]) ? empty : got == want[c];
            CHECK_MSG(same, "csv row %d column %d: %.17g, want %.17g", i, c, got, want[c]);
            line = strchr(line, ',') + 1;
        }
        CHECK(v->error ? strstr(line, "d_state") != NULL : *line == '\n');
    }
}

/* The JSON, read back, is the sweep itself. */
static void check_json(const mx_explore *e, const char *path) {
    mx_explore *back = NULL;
    mx_diag d = {{0}};
    CHECK_MSG(mx_explore_read_json(path, &back, &d) == MX_OK, "%s", d.msg);
    if (!back)
        return;
    CHECK(back->n_variants == e->n_variants && back->n_paths == e->n_paths && back->grid_size == e->grid_size);
    CHECK(strcmp(back->host_name, e->host_name) == 0 && strcmp(back->estimate_target, e->estimate_target) == 0);
    for (int i = 0; i < e->n_variants && i < back->n_variants; i++) {
        const mx_variant *a = &e->variants[i], *b = &back->variants[i];
        bool same = a->point == b->point && (a->error ? b->error && strcmp(a->error, b->error) == 0 : !b->error) &&
                    a->kernels == b->kernels && a->matmuls == b->matmuls;
        const double x[] = {a->params, a->flops, a->bytes, a->peak_bytes, a->host_ms, a->estimate_ms, a->gpu_ms};
        const double y[] = {b->params, b->flops, b->bytes, b->peak_bytes, b->host_ms, b->estimate_ms, b->gpu_ms};
        for (int c = 0; c < 7; c++)
            same &= isnan(x[c]) ? isnan(y[c]) : fabs(x[c] - y[c]) <= 1e-12 * fabs(x[c]); /* cJSON prints 15 digits */
        for (int k = 0; k < e->n_paths; k++)
            same &= strcmp(a->values[k], b->values[k]) == 0;
        CHECK_MSG(same, "variant %d differs after a JSON round trip", i);
    }
    mx_explore_free(back);
}

static char *printed(const mx_explore *e, void (*print)(const mx_explore *, FILE *)) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    print(e, f);
    fclose(f);
    return text;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f && fputs(text, f) >= 0);
    if (f)
        fclose(f);
}

/* Two paths, one of them with a value the spec refuses: 6 points, 2 broken. */
static void test_sweep(void) {
    mx_vary vy[2] = {vary("stages[0].token_mixer.d_state=4,0,8"), vary("stages[0].token_mixer.expand=1,2")};
    mx_explore *e = sweep(vy, 2, true, 0, 0);
    if (!e)
        return;
    CHECK(e->n_variants == 6 && e->grid_size == 6 && mx_explore_failures(e) == 2);
    CHECK(*e->host_name && strstr(e->estimate_target, "h100"));
    for (int i = 0; i < e->n_variants; i++) {
        const mx_variant *v = &e->variants[i];
        bool broken = strcmp(v->values[0], "0") == 0;
        CHECK_MSG(broken == (v->error != NULL), "variant %d: %s", i, v->error ? v->error : "ok");
        if (broken) {
            CHECK_MSG(strstr(v->error, "d_state: expected an integer >= 1"), "%s", v->error);
            continue;
        }
        CHECK(v->params > 0 && v->flops > 0 && v->bytes > 0 && v->peak_bytes > 0 && v->kernels > 0);
        CHECK(v->estimate_ms > 0 && v->host_ms >= 0 && isnan(v->gpu_ms) == !*e->gpu_name);
    }
    /* more state, more parameters: d_state 8 against 4 at the same expand */
    CHECK(e->variants[4].params > e->variants[0].params && e->variants[5].params > e->variants[1].params);
    char *table = printed(e, mx_explore_print_table), *csv = printed(e, mx_explore_print_csv),
         *json = printed(e, mx_explore_print_json);
    check_table(e, table, 2);
    check_csv(e, csv, 2);
    char json_path[64], svg_path[64], cmd[512];
    snprintf(json_path, sizeof json_path, "%s/sweep.json", tmp_dir);
    snprintf(svg_path, sizeof svg_path, "%s/sweep.svg", tmp_dir);
    write_file(json_path, json);
    check_json(e, json_path);
    mx_diag d = {{0}};
    CHECK_MSG(mx_explore_write_svg(e, MX_PLOT_LATENCY, svg_path, &d) == MX_OK, "%s", d.msg);
    /* python3: parses as XML, one circle per working variant, the front labelled */
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sys, xml.etree.ElementTree as ET\n"
             "r = ET.parse('%s').getroot()\n"
             "ns = '{http://www.w3.org/2000/svg}'\n"
             "pts = [c for c in r.iter(ns + 'circle') if 'variant' in c.get('class', '')]\n"
             "front = [c for c in pts if 'front' in c.get('class')]\n"
             "labels = [t for t in r.iter(ns + 'text') if t.get('class') == 'label']\n"
             "sys.exit(0 if len(pts) == 4 and len(front) >= 1 and len(labels) == len(front) and "
             "all('d_state=' in t.text for t in labels) else 1)\"", svg_path);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "the SVG does not parse, or has not 4 points with a labelled front");
    CHECK(mx_explore_write_svg(e, MX_PLOT_MEMORY, svg_path, &d) == MX_OK);
    remove(json_path);
    remove(svg_path);
    free(table), free(csv), free(json);
    mx_explore_free(e);
    mx_vary_free(&vy[0]);
    mx_vary_free(&vy[1]);
}

/* Shards 1/2 and 2/2, through JSON files, merge to the whole sweep. */
static void test_shards(void) {
    mx_vary vy[1] = {vary("stages[0].token_mixer.d_state=2,4,8")};
    mx_explore *whole = sweep(vy, 1, false, 0, 0), *parts[2] = {sweep(vy, 1, false, 1, 2), sweep(vy, 1, false, 2, 2)};
    mx_explore *read[2] = {NULL, NULL}, *merged = NULL;
    mx_diag d = {{0}};
    for (int i = 0; i < 2 && parts[i]; i++) {
        char path[64], *json = printed(parts[i], mx_explore_print_json);
        snprintf(path, sizeof path, "%s/shard%d.json", tmp_dir, i + 1);
        write_file(path, json);
        CHECK_MSG(mx_explore_read_json(path, &read[i], &d) == MX_OK, "%s", d.msg);
        remove(path);
        free(json);
    }
    CHECK(parts[0] && parts[1] && parts[0]->n_variants == 2 && parts[1]->n_variants == 1);
    if (whole && read[0] && read[1]) {
        CHECK_MSG(mx_explore_merge(read, 2, &merged, &d) == MX_OK, "%s", d.msg);
        CHECK(merged && merged->n_variants == whole->n_variants);
        for (int i = 0; merged && i < whole->n_variants; i++)
            CHECK(merged->variants[i].point == whole->variants[i].point &&
                  merged->variants[i].params == whole->variants[i].params &&
                  merged->variants[i].kernels == whole->variants[i].kernels &&
                  strcmp(merged->variants[i].values[0], whole->variants[i].values[0]) == 0);
        mx_explore *twice[2] = {read[0], read[0]}, *bad = NULL;
        CHECK(mx_explore_merge(twice, 2, &bad, &d) != MX_OK && strstr(d.msg, "two results"));
    }
    mx_explore_free(merged);
    for (int i = 0; i < 2; i++)
        mx_explore_free(parts[i]), mx_explore_free(read[i]);
    mx_explore_free(whole);
    mx_vary_free(&vy[0]);
}

/* A sample is that many distinct grid points, the same for the same seed. */
static void test_sample(void) {
    mx_vary vy[2] = {vary("stages[0].token_mixer.d_state=2,4,8"), vary("stages[0].token_mixer.expand=1,2")};
    mx_explore_options o = {.spec = SPEC, .overrides = reduced, .n_overrides = 3, .vary = vy, .n_vary = 2,
                            .sample = 3, .seed = 7, .estimate_target = "sm_90", .warmup = 0, .runs = 1};
    mx_explore *a = NULL, *b = NULL;
    mx_diag d = {{0}};
    CHECK(mx_explore_run(&o, &a, &d) == MX_OK && mx_explore_run(&o, &b, &d) == MX_OK);
    CHECK(a && b && a->n_variants == 3 && b->n_variants == 3);
    for (int i = 0; a && b && i < 3; i++) {
        CHECK(a->variants[i].point == b->variants[i].point);
        CHECK(i == 0 || a->variants[i].point > a->variants[i - 1].point);
    }
    mx_explore_free(a), mx_explore_free(b);
    o.estimate_target = "no-such-gpu";
    CHECK(mx_explore_run(&o, &a, &d) != MX_OK && strstr(d.msg, "no-such-gpu"));
    o.estimate_target = "h100", o.shard = 3, o.n_shards = 2;
    CHECK(mx_explore_run(&o, &a, &d) != MX_OK && strstr(d.msg, "shard"));
    mx_vary_free(&vy[0]);
    mx_vary_free(&vy[1]);
}

/* --profile: the kernels' estimate from what the emulation counts them
 * moving, never below their buffers' floor by much (it counts each byte
 * the kernel touches at least once; the floor counts each buffer once). */
static void test_profile(void) {
    mx_vary vy[1] = {vary("stages[0].token_mixer.d_state=4")};
    mx_explore_options o = {.spec = SPEC, .overrides = reduced, .n_overrides = 3, .vary = vy, .n_vary = 1,
                            .seed = 1, .estimate_target = "h100", .warmup = 0, .runs = 1};
    mx_explore *floor = NULL, *counted = NULL;
    mx_diag d = {{0}};
    CHECK_MSG(mx_explore_run(&o, &floor, &d) == MX_OK, "%s", d.msg);
    o.profile = true;
    CHECK_MSG(mx_explore_run(&o, &counted, &d) == MX_OK, "%s", d.msg);
    if (floor && counted) {
        const mx_variant *f = &floor->variants[0], *c = &counted->variants[0];
        CHECK_MSG(!c->error, "%s", c->error);
        CHECK(strcmp(counted->estimate_method, "emulation counters") == 0 &&
              strcmp(floor->estimate_method, "buffer floor") == 0);
        CHECK_MSG(c->estimate_ms > 0 && c->estimate_ms >= 0.5 * f->estimate_ms, "counted %.4g ms, floor %.4g ms",
                  c->estimate_ms, f->estimate_ms);
        CHECK(c->params == f->params && c->kernels == f->kernels);
    }
    mx_explore_free(floor), mx_explore_free(counted);
    mx_vary_free(&vy[0]);
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        CHECK_MSG(false, "cannot make a temp folder");
        return check_summary();
    }
    test_vary_parse();
    test_sweep();
    test_shards();
    test_sample();
    test_profile();
    rmdir(tmp_dir);
    return check_summary();
}
