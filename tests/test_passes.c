/* test_passes.c: the passes, by golden files, and the pass manager.
 *
 * Golden files: every .mxir file of tests/passes/ is a graph in the text IR whose
 * comment lines carry directives, in the manner of LLVM's FileCheck:
 *
 *   # RUN: passes=canonicalize,dce    the passes to run, by name or letter
 *                                     ("all"; empty: none); they run in
 *                                     table order, every other one disabled;
 *                                     " device=cpu" after them: compiled for
 *                                     the cpu (the program's target)
 *   # CHECK: text         a later line of the output contains text
 *   # CHECK-NEXT: text    the line right after the previous match contains it
 *   # CHECK-NOT: text     no line between the previous match and the next one
 *                         (or the end of the output) contains it
 *
 * The output is mx_program_print of the program after the passes: the graph,
 * then the init graph, views, groups and plan as comment lines. Every golden
 * graph is also an equivalence test: it runs on the reference before and
 * after the passes, on the same random inputs and params (derived params
 * bound by mx_program_bind_init), and the outputs, matched by position, must
 * agree within 1e-5 relative. */
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define GOLDEN_DIR MIXC_SOURCE_DIR "/tests/passes"
#define MIN_GOLDEN_FILES 30
#define SEED 20240611u
#define TOL 1e-5

/* ---- text helpers --------------------------------------------------------------- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (text && fread(text, 1, (size_t)size, f) != (size_t)size) {
        free(text);
        text = NULL;
    }
    if (text)
        text[size] = 0;
    fclose(f);
    return text;
}

/* Splits text in place into lines; returns the count (lines[] is malloc'd). */
static int split_lines(char *text, char ***lines) {
    int n = 0, cap = 64;
    *lines = malloc((size_t)cap * sizeof **lines);
    for (char *s = text; *s;) {
        if (n == cap)
            *lines = realloc(*lines, (size_t)(cap *= 2) * sizeof **lines);
        (*lines)[n++] = s;
        char *end = strchr(s, '\n');
        if (!end)
            break;
        *end = 0;
        s = end + 1;
    }
    return n;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

/* The program as mx_program_print writes it; malloc'd. */
static char *program_text(const mx_program *p) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    mx_program_print(p, f);
    fclose(f);
    return text;
}

/* ---- the matcher ------------------------------------------------------------------ */

typedef enum { DIR_CHECK, DIR_NEXT, DIR_NOT } dir_kind;
static const char *const dir_names[] = {"CHECK", "CHECK-NEXT", "CHECK-NOT"};

typedef struct {
    dir_kind kind;
    const char *text;
    int line; /* in the golden file */
} directive;

/* The first line of [from, to) that contains text, or -1. */
static int find_line(char *const *lines, int from, int to, const char *text) {
    for (int i = from; i < to; i++)
        if (strstr(lines[i], text))
            return i;
    return -1;
}

/* Matches the directives in order; returns the index of the first that
 * fails, or -1 when all hold. */
static int match(const directive *dirs, int n_dirs, char *const *lines, int n_lines) {
    int pos = 0;     /* the first line after the previous match */
    int pending = 0; /* the first CHECK-NOT not yet checked */
    for (int i = 0; i <= n_dirs; i++) {
        if (i < n_dirs && dirs[i].kind == DIR_NOT)
            continue;
        int at = n_lines; /* past the last directive: the NOTs run to the end */
        if (i < n_dirs) {
            if (dirs[i].kind == DIR_CHECK)
                at = find_line(lines, pos, n_lines, dirs[i].text);
            else
                at = pos < n_lines && strstr(lines[pos], dirs[i].text) ? pos : -1;
            if (at < 0)
                return i;
        }
        for (; pending < i; pending++)
            if (dirs[pending].kind == DIR_NOT && find_line(lines, pos, at, dirs[pending].text) >= 0)
                return pending;
        pending = i + 1;
        pos = at + 1;
    }
    return -1;
}

/* ---- equivalence ------------------------------------------------------------------ */

/* The i-th input node's value, or -1. Inputs keep their order through every
 * pass (dce keeps them all), so position matches them. */
static int nth_input(const mx_graph *g, int i) {
    for (int n = 0; n < g->n_nodes; n++)
        if (g->nodes[n].op == MX_OP_INPUT && i-- == 0)
            return mx_node_output(g, n, 0);
    return -1;
}

/* Runs src (buffers sb, inputs and params filled) and the program on the same
 * data; their outputs must agree. */
static void check_equivalent(const char *what, const mx_graph *src, mx_buffers *sb, const mx_program *p) {
    mx_diag d = {{0}};
    mx_buffers *b = mx_buffers_new(p->g);
    for (int i = 0, sv, v; (sv = nth_input(src, i)) >= 0 && (v = nth_input(p->g, i)) >= 0; i++) {
        b->data[v] = malloc((size_t)b->numel[v] * sizeof(float));
        memcpy(b->data[v], sb->data[sv], (size_t)b->numel[v] * sizeof(float));
    }
    mx_status st = mx_program_bind_init(p, src, sb, b, &d);
    CHECK_MSG(st == MX_OK, "%s: bind: %s", what, d.msg);
    if (st == MX_OK)
        CHECK_MSG((st = mx_ref_run(src, sb, &d)) == MX_OK, "%s: reference before the passes: %s", what, d.msg);
    if (st == MX_OK)
        CHECK_MSG((st = mx_ref_run(p->g, b, &d)) == MX_OK, "%s: reference after the passes: %s", what, d.msg);
    CHECK_MSG(src->n_outputs == p->g->n_outputs, "%s: %d outputs before the passes, %d after", what,
              src->n_outputs, p->g->n_outputs);
    for (int i = 0; st == MX_OK && i < src->n_outputs && i < p->g->n_outputs; i++) {
        int want = src->outputs[i], got = p->g->outputs[i];
        CHECK_MSG(sb->numel[want] == b->numel[got], "%s: output %d changed size", what, i);
        if (sb->numel[want] != b->numel[got])
            continue;
        double worst = 0;
        int64_t at = 0;
        for (int64_t k = 0; k < b->numel[got]; k++) {
            double x = b->data[got][k], y = sb->data[want][k];
            double err = isnan(x) && isnan(y) ? 0 : fabs(x - y) / (fabs(y) > 1 ? fabs(y) : 1);
            if (!(err <= worst)) {
                worst = isnan(err) ? INFINITY : err;
                at = k;
            }
        }
        CHECK_MSG(worst <= TOL, "%s: output %d differs after the passes: error %.3g at [%lld]: %.9g, want %.9g",
                  what, i, worst, (long long)at, (double)b->data[got][at], (double)sb->data[want][at]);
    }
    mx_buffers_free(b);
}

static void check_equivalent_random(const char *what, const mx_graph *src, const mx_program *p) {
    mx_buffers *sb = mx_buffers_new(src);
    mx_buffers_fill_random(sb, src, SEED);
    check_equivalent(what, src, sb, p);
    mx_buffers_free(sb);
}

/* ---- golden files ----------------------------------------------------------------- */

/* Runs the passes of list (only those) on p. */
static mx_status run_only(mx_program *p, const char *list, mx_diag *d) {
    bool enabled[MX_PASS_COUNT] = {false};
    mx_status st = mx_pass_options_set(enabled, list, d);
    if (st != MX_OK)
        return st;
    mx_pass_options o = {.verify = true};
    for (int i = 0; i < MX_PASS_COUNT; i++)
        o.disabled[i] = !enabled[i];
    return mx_program_run_passes(p, &o, d);
}

static void run_golden(const char *path) {
    const char *name = support_base(path);
    char *text = read_text(path);
    CHECK_MSG(text != NULL, "%s: cannot read", path);
    if (!text)
        return;
    char **lines;
    int n_lines = split_lines(text, &lines);
    directive *dirs = malloc((size_t)(n_lines + 1) * sizeof *dirs);
    int n_dirs = 0, n_run = 0;
    const char *passes = NULL, *device = NULL;
    for (int i = 0; i < n_lines; i++) {
        char *s = trim(lines[i]);
        if (*s != '#')
            continue;
        s = trim(s + 1);
        if (strncmp(s, "RUN:", 4) == 0) {
            char *arg = trim(s + 4);
            n_run++;
            passes = strncmp(arg, "passes=", 7) == 0 ? arg + 7 : NULL;
            char *dev = strstr(arg, " device=");
            if (dev) {
                *dev = 0;
                device = trim(dev + 8);
            }
            CHECK_MSG(passes != NULL, "%s:%d: expected 'RUN: passes=a,b', found '%s'", path, i + 1, arg);
            continue;
        }
        for (int k = DIR_NOT; k >= DIR_CHECK; k--) { /* longest keyword first */
            size_t len = strlen(dir_names[k]);
            if (strncmp(s, dir_names[k], len) == 0 && s[len] == ':') {
                dirs[n_dirs++] = (directive){(dir_kind)k, trim(s + len + 1), i + 1};
                break;
            }
        }
    }
    CHECK_MSG(n_run == 1, "%s: expected one RUN line, found %d", path, n_run);
    CHECK_MSG(n_dirs > 0, "%s: no CHECK lines", path);

    mx_diag d = {{0}};
    mx_graph *src = mx_graph_load(path, &d);
    CHECK_MSG(src != NULL, "%s", d.msg);
    mx_program *p = src && passes ? mx_program_new(mx_graph_load(path, &d)) : NULL;
    static const mx_target cpu = {.device = MX_DEVICE_CPU, .name = "cpu"};
    CHECK_MSG(!device || strcmp(device, "cpu") == 0, "%s: RUN: device=%s: only cpu is known", path, device);
    if (p && device)
        p->target = &cpu;
    mx_status st = p ? run_only(p, passes, &d) : MX_ERR_INVALID;
    CHECK_MSG(!p || st == MX_OK, "%s: passes %s: %s", path, passes, d.msg);
    if (st == MX_OK && p->init)
        CHECK_MSG(mx_graph_verify(p->init, &d) == MX_OK, "%s: the init graph: %s", path, d.msg);
    if (st == MX_OK) {
        char *out = program_text(p), *copy = strdup(out);
        char **out_lines;
        int n_out = split_lines(copy, &out_lines);
        int bad = match(dirs, n_dirs, out_lines, n_out);
        CHECK_MSG(bad < 0, "%s:%d: %s: %s\n---- output after passes=%s:\n%s----", path,
                  bad < 0 ? 0 : dirs[bad].line, bad < 0 ? "" : dir_names[dirs[bad].kind],
                  bad < 0 ? "" : dirs[bad].text, passes, out);
        check_equivalent_random(name, src, p);
        free(out_lines);
        free(copy);
        free(out);
    }
    mx_program_free(p);
    mx_graph_free(src);
    free(dirs);
    free(lines);
    free(text);
}

static void check_golden_files(void) {
    int n = support_each_file(GOLDEN_DIR, ".mxir", run_golden);
    CHECK_MSG(n >= MIN_GOLDEN_FILES, "%s holds %d golden files, expected at least %d", GOLDEN_DIR, n,
              MIN_GOLDEN_FILES);
}

/* The matcher itself, on a made-up output. */
static void check_matcher(void) {
    char text[] = "graph g {\n  %a = exp(%x)\n  %b = neg(%a)\n  output %b\n}";
    char **lines;
    int n = split_lines(text, &lines);
    struct {
        directive dirs[3];
        int n, want;
    } cases[] = {
        {{{DIR_CHECK, "exp", 0}, {DIR_NEXT, "neg", 0}}, 2, -1},
        {{{DIR_CHECK, "exp", 0}, {DIR_NEXT, "output", 0}}, 2, 1},
        {{{DIR_CHECK, "neg", 0}, {DIR_CHECK, "exp", 0}}, 2, 1}, /* in order */
        {{{DIR_CHECK, "graph", 0}, {DIR_NOT, "neg", 0}, {DIR_CHECK, "output", 0}}, 3, 1},
        {{{DIR_CHECK, "graph", 0}, {DIR_NOT, "neg", 0}, {DIR_CHECK, "exp", 0}}, 3, -1},
        {{{DIR_CHECK, "neg", 0}, {DIR_NOT, "exp", 0}}, 2, -1}, /* NOT after the last: to the end */
        {{{DIR_CHECK, "exp", 0}, {DIR_NOT, "}", 0}}, 2, 1},
        {{{DIR_NOT, "sqrt", 0}, {DIR_NEXT, "graph g", 0}}, 2, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int got = match(cases[i].dirs, cases[i].n, lines, n);
        CHECK_MSG(got == cases[i].want, "matcher case %zu: %d, want %d", i, got, cases[i].want);
    }
    free(lines);
}

/* ---- the pass manager ------------------------------------------------------------- */

static const char *const flip_text = "graph g {\n"
                                     "  %x = input() : f32[2,3]\n"
                                     "  %a = flip(%x) : f32[2,3]\n"
                                     "  %b = flip(%a) : f32[2,3]\n"
                                     "  %y = exp(%b) : f32[2,3]\n"
                                     "  output %y\n"
                                     "}\n";

static mx_program *parse_program(const char *text) {
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(text, "test", &d);
    CHECK_MSG(g != NULL, "%s", d.msg);
    return g ? mx_program_new(g) : NULL;
}

static void check_options(void) {
    mx_diag d = {{0}};
    bool f[MX_PASS_COUNT] = {false};
    CHECK(mx_pass_options_set(f, "cse,dce", &d) == MX_OK);
    for (int i = 0; i < MX_PASS_COUNT; i++)
        CHECK_MSG(f[i] == (i == MX_PASS_cse || i == MX_PASS_dce), "names: pass %s", mx_passes[i].name);
    memset(f, 0, sizeof f);
    CHECK(mx_pass_options_set(f, "c,f", &d) == MX_OK);
    for (int i = 0; i < MX_PASS_COUNT; i++)
        CHECK_MSG(f[i] == (i == MX_PASS_canonicalize || i == MX_PASS_fold), "letters: pass %s",
                  mx_passes[i].name);
    memset(f, 0, sizeof f);
    CHECK(mx_pass_options_set(f, "all", &d) == MX_OK);
    for (int i = 0; i < MX_PASS_COUNT; i++)
        CHECK_MSG(f[i], "all: pass %s", mx_passes[i].name);
    memset(f, 0, sizeof f);
    CHECK(mx_pass_options_set(f, "dce,bogus", &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "'bogus'") != NULL, "%s", d.msg);
    for (int i = 0; i < MX_PASS_COUNT; i++)
        CHECK_MSG(strstr(d.msg, mx_passes[i].name) != NULL, "the error lists %s: %s", mx_passes[i].name, d.msg);
}

/* A disabled pass leaves the graph alone; the same pass enabled changes it. */
static void check_disable(void) {
    mx_program *p = parse_program(flip_text);
    if (!p)
        return;
    char *before = mx_graph_print(p->g);
    mx_diag d = {{0}};
    CHECK_MSG(run_only(p, "dce,cse,fold", &d) == MX_OK, "%s", d.msg);
    char *after = mx_graph_print(p->g);
    CHECK_MSG(strcmp(before, after) == 0, "canonicalize disabled, yet the graph changed:\n%s", after);
    free(after);
    CHECK_MSG(run_only(p, "canonicalize,dce", &d) == MX_OK, "%s", d.msg);
    after = mx_graph_print(p->g);
    CHECK_MSG(!strstr(after, "flip"), "canonicalize enabled, yet the flips remain:\n%s", after);
    free(after);
    free(before);
    mx_program_free(p);
}

/* Print-after and timing output of the manager. */
static void check_manager_output(void) {
    mx_program *p = parse_program(flip_text);
    if (!p)
        return;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    mx_pass_options o = {.time = true, .verify = true, .out = f};
    mx_diag d = {{0}};
    CHECK(mx_pass_options_set(o.disabled, "layout,fuse,plan", &d) == MX_OK);
    CHECK(mx_pass_options_set(o.print_after, "cse", &d) == MX_OK);
    CHECK_MSG(mx_program_run_passes(p, &o, &d) == MX_OK, "%s", d.msg);
    fclose(f);
    CHECK_MSG(strstr(text, "# ---- after cse\ngraph g {") != NULL, "%s", text);
    CHECK_MSG(!strstr(text, "# ---- after dce"), "%s", text);
    for (int i = 0; i <= MX_PASS_fold; i++) {
        char line[64];
        snprintf(line, sizeof line, "pass %-13s ", mx_passes[i].name);
        const char *at = strstr(text, line);
        CHECK_MSG(at && strstr(at, " ms  ("), "no timing line for %s:\n%s", mx_passes[i].name, text);
    }
    CHECK_MSG(strstr(text, "pass plan          disabled") != NULL, "%s", text);
    free(text);
    mx_program_free(p);
}

/* ---- fold on real blocks ---------------------------------------------------------- */

static int count_op(const mx_graph *g, mx_op op) {
    int count = 0;
    for (int n = 0; n < g->n_nodes; n++)
        count += g->nodes[n].op == op;
    return count;
}

/* No node of the main graph computes from weights alone any more. */
/* A param read through a transposing permute: a scan's A as fold stores it. */
static bool transposed_param(const mx_graph *g, int v) {
    int n = g->values[v].node;
    if (g->nodes[n].op != MX_OP_PERMUTE)
        return false;
    const mx_attr *perm = mx_node_attr(g, n, MX_A_PERM);
    int src = g->values[mx_node_input(g, n, 0)].node;
    return perm->n == 2 && perm->v[0] == 1 && g->nodes[src].op == MX_OP_PARAM;
}

/* Whether value v is read, and only as scans' A. */
static bool read_as_a_only(const mx_graph *g, int v) {
    int reads = 0;
    for (int n = 0; n < g->n_nodes; n++)
        for (int i = 0; i < g->nodes[n].n_in; i++)
            if (mx_node_input(g, n, i) == v) {
                if (g->nodes[n].op != MX_OP_SELECTIVE_SCAN || i != MX_SCAN_A)
                    return false;
                reads++;
            }
    return reads > 0;
}

/* No node of the main graph computes on weights alone, but the permutes
 * that read a transposed A back (each read only as a scan's A). */
static bool nothing_left_to_fold(const mx_graph *g) {
    for (int n = 0; n < g->n_nodes; n++) {
        if (mx_ops[g->nodes[n].op].fusion == MX_FUSE_SOURCE)
            continue;
        int out = mx_node_output(g, n, 0);
        if (transposed_param(g, out) && read_as_a_only(g, out))
            continue;
        bool weights_only = true;
        for (int i = 0; i < g->nodes[n].n_in; i++) {
            int v = mx_node_input(g, n, i);
            mx_op op = v == MX_NONE ? MX_OP_PARAM : g->nodes[g->values[v].node].op;
            weights_only &= op == MX_OP_PARAM || op == MX_OP_CONST;
        }
        if (weights_only)
            return false;
    }
    return true;
}

/* The scan's A input, a param of the main graph stored transposed. */
static bool scans_read_params(const mx_graph *g) {
    int scans = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        if (g->nodes[n].op != MX_OP_SELECTIVE_SCAN)
            continue;
        if (!transposed_param(g, mx_node_input(g, n, MX_SCAN_A)))
            return false;
        scans++;
    }
    return scans > 0;
}

static void check_fold_mamba_block(void) {
    mx_diag d = {{0}};
    const char *path = MIXC_SOURCE_DIR "/tests/ir/mamba_block.mxir";
    mx_graph *src = mx_graph_load(path, &d);
    CHECK_MSG(src != NULL, "%s", d.msg);
    if (!src)
        return;
    mx_program *p = mx_program_new(mx_graph_load(path, &d));
    CHECK_MSG(run_only(p, "c,d,e,f", &d) == MX_OK, "%s", d.msg);
    CHECK(p->init != NULL);
    if (p->init) {
        CHECK(count_op(p->g, MX_OP_EXP) == 0 && count_op(p->init, MX_OP_EXP) == 1);
        CHECK(mx_graph_value_find(p->g, "A_log") < 0);
        CHECK(mx_graph_value_find(p->init, "A_log") >= 0);
        int a = mx_graph_value_find(p->init, "A.transposed");
        /* A, and the two row slices of in_proj.weight that canonicalize made */
        CHECK(p->init->n_outputs == 3 && p->init->outputs[2] == a);
        CHECK(nothing_left_to_fold(p->g) && scans_read_params(p->g));
        check_equivalent_random("mamba_block.mxir", src, p);
    }
    mx_program_free(p);
    mx_graph_free(src);
}

/* A block built by the frontend from a spec, with its unnamed intermediate
 * values and its real parameter initialisation (A_log = log(1..N)). */
static void check_fold_model(void) {
    mx_diag d = {{0}};
    const char *const overrides[] = {"input.length=32"};
    mx_model *m = mx_model_load(MIXC_SOURCE_DIR "/models/mamba-block.json", overrides, 1, &d);
    CHECK_MSG(m != NULL, "%s", d.msg);
    if (!m)
        return;
    const mx_graph *src = mx_model_graph(m);
    char *text = mx_graph_print(src);
    mx_program *p = mx_program_new(mx_graph_parse(text, "mamba-block", &d));
    CHECK_MSG(p && p->g, "the model's graph does not parse: %s", d.msg);
    if (p && p->g) {
        CHECK_MSG(run_only(p, "c,d,e,f", &d) == MX_OK, "%s", d.msg);
        CHECK(p->init != NULL && p->init->n_outputs >= 1 && count_op(p->init, MX_OP_EXP) >= 1);
        CHECK(nothing_left_to_fold(p->g) && scans_read_params(p->g));
        /* The derived params print as names that parse back. */
        char *printed = mx_graph_print(p->g);
        mx_graph *again = mx_graph_parse(printed, "after fold", &d);
        CHECK_MSG(again != NULL, "%s\n%s", d.msg, printed);
        mx_graph_free(again);
        free(printed);
        mx_buffers *sb = mx_buffers_new(src);
        mx_buffers_fill_random(sb, src, SEED);
        mx_model_init_params(m, sb, SEED);
        check_equivalent("models/mamba-block.json", src, sb, p);
        mx_buffers_free(sb);
    }
    mx_program_free(p);
    free(text);
    mx_model_free(m);
}

/* fold run again on a program that has an init graph appends to it, taking
 * the params it reads from the init graph by name. */
static void check_fold_again(void) {
    mx_program *p = parse_program("graph g {\n"
                                  "  %x = input() : f32[4]\n"
                                  "  %w = param() : f32[4]\n"
                                  "  %w.exp = exp(%w) : f32[4]\n"
                                  "  %y = mul(%x, %w.exp) : f32[4]\n"
                                  "  output %y\n"
                                  "}\n");
    if (!p)
        return;
    mx_diag d = {{0}};
    char *text = mx_graph_print(p->g);
    mx_graph *src = mx_graph_parse(text, "src", &d);
    free(text);
    CHECK_MSG(mx_pass_fold(p, &d) == MX_OK, "%s", d.msg);
    /* A weights-only node over the derived param, as a later edit might add. */
    int derived = mx_graph_value_find(p->g, "w.exp");
    int neg = mx_graph_add_node(p->g, MX_OP_NEG, &derived, 1, 1);
    CHECK(mx_graph_infer_node(p->g, neg, &d) == MX_OK);
    mx_graph_add_output(p->g, mx_node_output(p->g, neg, 0));
    CHECK_MSG(mx_pass_fold(p, &d) == MX_OK, "%s", d.msg);
    CHECK(p->init && p->init->n_outputs == 2 && count_op(p->init, MX_OP_PARAM) == 1);
    CHECK(count_op(p->g, MX_OP_NEG) == 0 && count_op(p->g, MX_OP_PARAM) == 2);
    CHECK_MSG(mx_graph_verify(p->g, &d) == MX_OK && mx_graph_verify(p->init, &d) == MX_OK, "%s", d.msg);
    /* The second output is -exp(w) now computed by the init graph. */
    mx_buffers *sb = mx_buffers_new(src), *b = mx_buffers_new(p->g);
    mx_buffers_fill_random(sb, src, SEED);
    mx_buffers_fill_random(b, p->g, SEED);
    CHECK_MSG(mx_program_bind_init(p, src, sb, b, &d) == MX_OK, "%s", d.msg);
    CHECK(mx_ref_run(p->g, b, &d) == MX_OK);
    int w = mx_graph_value_find(src, "w"), y2 = p->g->outputs[1];
    for (int i = 0; i < 4; i++)
        CHECK(fabsf(b->data[y2][i] + expf(sb->data[w][i])) <= 1e-6f);
    mx_buffers_free(sb);
    mx_buffers_free(b);
    mx_graph_free(src);
    mx_program_free(p);
}

/* Every graph of the IR corpus (tests/ir, but the parser's syntax_ files)
 * through the four graph-changing passes: it verifies, nothing is left to
 * fold, and it computes what it computed. */
static void run_corpus_file(const char *path) {
    const char *name = support_base(path);
    if (strncmp(name, "syntax_", 7) == 0)
        return;
    mx_graph *src = support_load_graph(path);
    if (!src)
        return;
    mx_diag d = {{0}};
    mx_program *p = mx_program_new(mx_graph_load(path, &d));
    mx_status st = run_only(p, "canonicalize,dce,cse,fold", &d);
    CHECK_MSG(st == MX_OK, "%s: %s", name, d.msg);
    if (st == MX_OK) {
        CHECK_MSG(!p->init || mx_graph_verify(p->init, &d) == MX_OK, "%s: init graph: %s", name, d.msg);
        CHECK_MSG(nothing_left_to_fold(p->g), "%s: a weights-only node is left", name);
        check_equivalent_random(name, src, p);
    }
    mx_program_free(p);
    mx_graph_free(src);
}

static void check_ir_corpus(void) { support_each_file(MIXC_SOURCE_DIR "/tests/ir", ".mxir", run_corpus_file); }

static void check_bind_errors(void) {
    mx_program *p = parse_program("graph g {\n"
                                  "  %x = input() : f32[4]\n"
                                  "  %w = param() : f32[4]\n"
                                  "  %y = mul(%x, %w) : f32[4]\n"
                                  "  output %y\n"
                                  "}\n");
    mx_diag d = {{0}};
    mx_graph *other = mx_graph_parse("graph other {\n"
                                     "  %w = param() : f32[5]\n"
                                     "  output %w\n"
                                     "}\n",
                                     "other", &d);
    mx_graph *none = mx_graph_parse("graph none {\n"
                                    "  %v = param() : f32[4]\n"
                                    "  output %v\n"
                                    "}\n",
                                    "none", &d);
    if (!p || !other || !none)
        return;
    mx_buffers *b = mx_buffers_new(p->g), *ob = mx_buffers_new(other), *nb = mx_buffers_new(none);
    mx_buffers_fill_random(ob, other, SEED);
    mx_buffers_fill_random(nb, none, SEED);
    CHECK(mx_program_bind_init(p, other, ob, b, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "%w is f32[4] in graph g but f32[5] in graph other"), "%s", d.msg);
    CHECK(mx_program_bind_init(p, none, nb, b, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "param %w of graph g: graph none has no param of that name"), "%s", d.msg);
    mx_buffers_free(b);
    mx_buffers_free(ob);
    mx_buffers_free(nb);
    mx_graph_free(other);
    mx_graph_free(none);
    mx_program_free(p);
}

int main(void) {
    check_matcher();
    check_golden_files();
    check_options();
    check_disable();
    check_manager_output();
    check_fold_mamba_block();
    check_fold_model();
    check_ir_corpus();
    check_fold_again();
    check_bind_errors();
    return check_summary();
}
