/* test_zoo.c: every spec of the zoo (each .json file in models/) builds at
 * full size, verifies and round-trips through the text IR; at a reduced size
 * it runs on the reference interpreter, deterministically, to finite non-zero
 * outputs of the expected shape. Then the model-level promises of MODELS.md:
 *   - a MambaMixer block without its channel mixer, whose weighted average
 *     has its default init, computes exactly the plain Mamba block;
 *   - params survive a safetensors round trip bit for bit;
 *   - the seeded init follows the stated rules. */
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model.h"

#define MODELS_DIR MIXC_SOURCE_DIR "/models"
#define MAX_MODELS 64

/* ---- helpers -------------------------------------------------------------- */

/* A list of "path=value" overrides with their own storage. */
typedef struct {
    char text[48][64];
    const char *items[48];
    int n;
} override_list;

static void ov_add(override_list *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ov_add(override_list *o, const char *fmt, ...) {
    if (o->n == (int)(sizeof o->items / sizeof *o->items)) {
        CHECK_MSG(0, "too many overrides");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->text[o->n], sizeof o->text[o->n], fmt, ap);
    va_end(ap);
    o->items[o->n] = o->text[o->n];
    o->n++;
}

static mx_model *load(const char *path, const override_list *o) {
    mx_diag diag = {{0}};
    mx_model *m = mx_model_load(path, o ? o->items : NULL, o ? o->n : 0, &diag);
    CHECK_MSG(m != NULL, "%s", diag.msg);
    return m;
}

static int param_of(const mx_graph *g, int v) {
    return g->nodes[g->values[v].node].op == MX_OP_PARAM;
}

/* The output of one run: inputs from fill_random(input_seed), params from
 * init_params(param_seed). Returns a malloc'd copy of output 0 (NULL on failure). */
static float *run_once(const mx_model *m, uint64_t input_seed, uint64_t param_seed) {
    const mx_graph *g = mx_model_graph(m);
    mx_buffers *b = mx_buffers_new(g);
    mx_buffers_fill_random(b, g, input_seed);
    mx_model_init_params(m, b, param_seed);
    mx_diag diag = {{0}};
    float *out = NULL;
    mx_status st = mx_ref_run(g, b, &diag);
    CHECK_MSG(st == MX_OK, "%s: %s", g->name, diag.msg);
    if (st == MX_OK) {
        int v = mx_graph_output(g, 0);
        out = malloc((size_t)b->numel[v] * sizeof *out);
        memcpy(out, b->data[v], (size_t)b->numel[v] * sizeof *out);
    }
    mx_buffers_free(b);
    return out;
}

static int64_t output_numel(const mx_model *m) {
    const mx_graph *g = mx_model_graph(m);
    return mx_graph_value_numel(g, mx_graph_output(g, 0));
}

static bool same_bits(const float *a, const float *b, int64_t n) {
    return a && b && memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* ---- every spec of the zoo ------------------------------------------------ */

/* The output shape a spec promises (docs/spec.md): [batch, length, width or vocab],
 * [batch, classes] or [batch, variates, horizon]. */
static int expected_shape(const mx_spec *s, int64_t *dims) {
    switch (s->task) {
    case MX_TASK_SEQUENCE:
        dims[0] = s->batch, dims[1] = s->length, dims[2] = s->stages[s->n_stages - 1].width;
        return 3;
    case MX_TASK_VISION:
        dims[0] = s->batch, dims[1] = s->classes;
        return 2;
    case MX_TASK_SERIES:
        dims[0] = s->batch, dims[1] = s->variates, dims[2] = s->horizon;
        return 3;
    case MX_TASK_LANGUAGE:
        dims[0] = s->batch, dims[1] = s->length;
        dims[2] = s->lm_head == MX_LM_HEAD_NONE ? s->stages[s->n_stages - 1].width : s->vocab;
        return 3;
    }
    return 0;
}

static void check_output_shape(const mx_model *m, const char *what) {
    const mx_graph *g = mx_model_graph(m);
    int64_t want[MX_MAX_RANK];
    int rank = expected_shape(&m->spec, want);
    int v = mx_graph_output(g, 0);
    bool same = mx_graph_output_count(g) == 1 && mx_graph_value_rank(g, v) == rank &&
                memcmp(mx_graph_value_dims(g, v), want, (size_t)rank * sizeof *want) == 0;
    CHECK_MSG(same, "%s: the output is not the spec's [batch, ...] shape", what);
}

/* Verified, printable, and print -> parse -> print is the identity. */
static void check_text_round_trip(const mx_model *m, const char *what) {
    const mx_graph *g = mx_model_graph(m);
    mx_diag diag = {{0}};
    CHECK_MSG(mx_graph_verify(g, &diag) == MX_OK, "%s: %s", what, diag.msg);
    char *text = mx_graph_print(g);
    mx_graph *back = mx_graph_parse(text, what, &diag);
    CHECK_MSG(back != NULL, "%s: the printed IR does not parse: %s", what, diag.msg);
    char *again = back ? mx_graph_print(back) : NULL;
    CHECK_MSG(again && strcmp(text, again) == 0, "%s: the IR does not round-trip", what);
    free(again);
    free(text);
    mx_graph_free(back);
}

/* Sizes at which the interpreter runs a model in well under a second under
 * ASan, keeping every structural feature: all stages, a merge before each
 * (vision: 32 / 4 = an 8x8 grid that halves to 4, 2, 1), channel mixers
 * (depth 2 keeps channel_every = 2 valid). Vision widths are multiples of 16
 * so that expand 1.5625 (the ViM2 reading) stays a whole number of channels. */
static void reduced_sizes(const mx_spec *s, override_list *o) {
    ov_add(o, "batch=1");
    switch (s->task) {
    case MX_TASK_SEQUENCE:
        ov_add(o, "input.length=12");
        break;
    case MX_TASK_VISION:
        ov_add(o, "input.image_size=32");
        ov_add(o, "stem.patch=4");
        ov_add(o, "head.classes=10");
        break;
    case MX_TASK_SERIES:
        ov_add(o, "input.variates=3");
        ov_add(o, "input.lookback=64");
        ov_add(o, "head.horizon=8");
        break;
    case MX_TASK_LANGUAGE:
        ov_add(o, "input.length=12");
        ov_add(o, "input.vocab=64");
        break;
    }
    for (int i = 0; i < s->n_stages; i++) {
        ov_add(o, "stages[%d].width=%d", i, s->task == MX_TASK_VISION ? 16 << i : 16);
        if (s->stages[i].depth > 2)
            ov_add(o, "stages[%d].depth=2", i);
    }
}

/* Runs with seed 1 twice and seed 2 once: finite, not all zero, the same
 * bits for the same seed, different for another. */
static void check_runs(const mx_model *m, const char *what) {
    int64_t n = output_numel(m);
    float *a = run_once(m, 1, 1), *again = run_once(m, 1, 1), *other = run_once(m, 2, 2);
    if (a) {
        int64_t finite = 0, nonzero = 0;
        for (int64_t i = 0; i < n; i++) {
            finite += isfinite(a[i]) != 0;
            nonzero += a[i] != 0;
        }
        CHECK_MSG(finite == n, "%s: %lld of %lld outputs are not finite", what,
                  (long long)(n - finite), (long long)n);
        CHECK_MSG(nonzero > 0, "%s: every output is 0", what);
    }
    CHECK_MSG(same_bits(a, again, n), "%s: the same seed gave different outputs", what);
    CHECK_MSG(a && other && !same_bits(a, other, n), "%s: another seed gave the same outputs", what);
    free(a);
    free(again);
    free(other);
}

static void test_model(const char *path, const char *file) {
    mx_model *full = load(path, NULL);
    if (!full)
        return;
    check_text_round_trip(full, file);
    check_output_shape(full, file);

    override_list o = {0};
    reduced_sizes(&full->spec, &o);
    mx_model *small = load(path, &o);
    if (small) {
        char what[320];
        snprintf(what, sizeof what, "%s (reduced)", file);
        check_text_round_trip(small, what);
        check_output_shape(small, what);
        check_runs(small, what);
    }
    mx_model_free(small);
    mx_model_free(full);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_zoo(void) {
    DIR *dir = opendir(MODELS_DIR);
    CHECK_MSG(dir != NULL, "cannot open %s", MODELS_DIR);
    if (!dir)
        return;
    char *names[MAX_MODELS];
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0 && n < MAX_MODELS)
            names[n++] = strdup(e->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)n, sizeof *names, by_name); /* a stable order for the log */
    /* The zoo of MODELS.md: the paper's models and the plain baselines. */
    CHECK_MSG(n >= 11, "only %d specs in %s", n, MODELS_DIR);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", MODELS_DIR, names[i]);
        int failed = check_failed;
        test_model(path, names[i]);
        printf("%-28s %s\n", names[i], check_failed == failed ? "ok" : "FAILED");
        free(names[i]);
    }
}

/* ---- weighted averaging at its default init is the plain chain ------------ */

/* The params of both graphs are the same names and shapes, so the name-seeded
 * init gives them the same numbers; the mixer adds only averaging scalars. */
static void check_same_params(const mx_graph *plain, const mx_graph *mixer, const char *what) {
    int shared = 0, extra = 0;
    for (int v = 0; v < mixer->n_values; v++) {
        if (!param_of(mixer, v))
            continue;
        const char *name = mixer->values[v].name;
        int w = mx_graph_value_find(plain, name);
        if (w < 0) {
            extra++;
            size_t len = strlen(name);
            CHECK_MSG(len > 4 && strcmp(name + len - 4, ".avg") == 0,
                      "%s: param '%s' is not the plain model's", what, name);
            continue;
        }
        shared++;
        CHECK_MSG(mx_type_equal(&plain->values[w].type, &mixer->values[v].type),
                  "%s: param '%s' differs in type", what, name);
    }
    int plain_params = 0;
    for (int v = 0; v < plain->n_values; v++)
        plain_params += param_of(plain, v);
    CHECK_MSG(shared == plain_params && shared > 0 && extra > 0, "%s: %d shared params of %d, %d extra",
              what, shared, plain_params, extra);
}

/* The same input tensor (copied, not trusted to the seeding) and the same
 * param seed give bit-identical outputs. */
static void check_same_function(const mx_model *plain, const mx_model *mixer, const char *what) {
    const mx_graph *gp = mx_model_graph(plain), *gm = mx_model_graph(mixer);
    check_same_params(gp, gm, what);
    mx_buffers *bp = mx_buffers_new(gp), *bm = mx_buffers_new(gm);
    mx_buffers_fill_random(bp, gp, 7);
    mx_model_init_params(plain, bp, 11);
    mx_model_init_params(mixer, bm, 11);
    int in_p = mx_graph_input(gp, 0), in_m = mx_graph_input(gm, 0);
    CHECK(bp->numel[in_p] == bm->numel[in_m] && strcmp(gp->values[in_p].name, gm->values[in_m].name) == 0);
    bm->data[in_m] = malloc((size_t)bm->numel[in_m] * sizeof(float));
    memcpy(bm->data[in_m], bp->data[in_p], (size_t)bp->numel[in_p] * sizeof(float));

    mx_diag diag = {{0}};
    CHECK_MSG(mx_ref_run(gp, bp, &diag) == MX_OK, "%s", diag.msg);
    CHECK_MSG(mx_ref_run(gm, bm, &diag) == MX_OK, "%s", diag.msg);
    int op = mx_graph_output(gp, 0), om = mx_graph_output(gm, 0);
    CHECK_MSG(bp->numel[op] == bm->numel[om] && same_bits(bp->data[op], bm->data[om], bp->numel[op]),
              "%s: the outputs differ", what);
    mx_buffers_free(bp);
    mx_buffers_free(bm);
}

static mx_model *load_zoo(const char *file, const char *const *overrides, int n) {
    override_list o = {0};
    for (int i = 0; i < n; i++)
        ov_add(&o, "%s", overrides[i]);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", MODELS_DIR, file);
    return load(path, &o);
}

/* The promise: a MambaMixer block with the channel mixer switched
 * off and the identity-chain init computes exactly the plain Mamba block. */
static void test_mixer_reduces_to_mamba(void) {
    static const char *const sizes[] = {"input.length=24", "stages[0].width=16",
                                        "stages[0].channel_mixer.kind=none"}; /* not JSON: a string */
    mx_model *plain = load_zoo("mamba-block.json", sizes, 2);
    mx_model *mixer = load_zoo("mambamixer-block.json", sizes, 3);
    if (plain && mixer) {
        /* y_T(0) = y_C(0) = the block input: the average sees it twice, and
         * its default init is one-hot on the most recent, i.e. [0, 1] */
        const mx_graph *gm = mx_model_graph(mixer);
        mx_buffers *b = mx_buffers_new(gm);
        mx_model_init_params(mixer, b, 11);
        int avg = mx_graph_value_find(gm, "stages.0.blocks.0.token_mixer.avg");
        CHECK(avg >= 0 && b->numel[avg] == 2);
        if (avg >= 0 && b->numel[avg] == 2)
            CHECK(b->data[avg][0] == 0.0f && b->data[avg][1] == 1.0f);
        mx_buffers_free(b);
        CHECK(output_numel(mixer) == 2 * 24 * 16);
        check_same_function(plain, mixer, "MambaMixer block without channel mixer vs Mamba block");
    }
    mx_model_free(plain);
    mx_model_free(mixer);
}

/* A deep stage: block 33's channel mixer averages 2 + 2 * 32 + 1 = 67 earlier
 * outputs, more than one weighted_sum node takes (64), so the builder sums in
 * chunks; at the default init it is still exactly the plain chain. The
 * deepest stage a spec allows (256 blocks, 514 inputs) builds and verifies. */
static void test_deep_average(void) {
    static const char *const sizes[] = {"batch=1", "input.length=4", "stages[0].width=8",
                                        "stages[0].depth=33", "stages[0].weighted_average=false"};
    mx_model *plain = load_zoo("mambamixer-block.json", sizes, 5);
    mx_model *mixer = load_zoo("mambamixer-block.json", sizes, 4);
    if (plain && mixer) {
        const mx_graph *gm = mx_model_graph(mixer);
        int avg = mx_graph_value_find(gm, "stages.0.blocks.32.channel_mixer.avg");
        CHECK(avg >= 0 && mx_graph_value_numel(gm, avg) == 67);
        check_text_round_trip(mixer, "deep weighted average");
        check_same_function(plain, mixer, "33 blocks with and without weighted averaging");
    }
    mx_model_free(plain);
    mx_model_free(mixer);

    static const char *const deepest[] = {"batch=1", "input.length=4", "stages[0].width=8",
                                          "stages[0].depth=256"};
    mx_model *m = load_zoo("mambamixer-block.json", deepest, 4);
    if (m) {
        const mx_graph *g = mx_model_graph(m);
        int avg = mx_graph_value_find(g, "stages.0.blocks.255.channel_mixer.avg");
        CHECK(avg >= 0 && mx_graph_value_numel(g, avg) == 2 + 2 * 255 + 1);
        mx_diag diag = {{0}};
        CHECK_MSG(mx_graph_verify(g, &diag) == MX_OK, "%s", diag.msg);
    }
    mx_model_free(m);
}

/* ---- safetensors round trip ----------------------------------------------- */

static void test_weights_round_trip(void) {
    override_list o = {0};
    mx_model *probe = load(MODELS_DIR "/vim2-tiny.json", NULL);
    if (!probe)
        return;
    reduced_sizes(&probe->spec, &o);
    mx_model_free(probe);
    mx_model *m = load(MODELS_DIR "/vim2-tiny.json", &o);
    if (!m)
        return;
    const mx_graph *g = mx_model_graph(m);
    char path[] = "/tmp/mixc_test_zoo_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);

    mx_buffers *src = mx_buffers_new(g), *dst = mx_buffers_new(g);
    mx_buffers_fill_random(src, g, 3);
    mx_model_init_params(m, src, 5);
    mx_diag diag = {{0}};
    CHECK_MSG(mx_weights_save(g, src, path, &diag) == MX_OK, "%s", diag.msg);
    /* fresh buffers: the same inputs, params from random numbers to the file */
    mx_buffers_fill_random(dst, g, 3);
    CHECK_MSG(mx_weights_load(g, dst, path, &diag) == MX_OK, "%s", diag.msg);
    for (int v = 0; v < g->n_values; v++)
        if (param_of(g, v))
            CHECK_MSG(same_bits(src->data[v], dst->data[v], src->numel[v]),
                      "param '%s' did not round-trip", g->values[v].name);
    CHECK_MSG(mx_ref_run(g, src, &diag) == MX_OK, "%s", diag.msg);
    CHECK_MSG(mx_ref_run(g, dst, &diag) == MX_OK, "%s", diag.msg);
    int out = mx_graph_output(g, 0);
    CHECK_MSG(same_bits(src->data[out], dst->data[out], src->numel[out]),
              "outputs differ after a safetensors round trip");
    mx_buffers_free(src);
    mx_buffers_free(dst);
    unlink(path);
    mx_model_free(m);
}

/* ---- the init rules of MODELS.md ------------------------------------------ */

typedef struct {
    const float *x;
    int64_t n;
    int rank;
    const int64_t *dims;
} param_view;

static param_view find_param(const mx_graph *g, const mx_buffers *b, const char *name) {
    int v = mx_graph_value_find(g, name);
    CHECK_MSG(v >= 0 && param_of(g, v), "no param '%s'", name);
    if (v < 0 || !param_of(g, v))
        return (param_view){0};
    return (param_view){b->data[v], b->numel[v], mx_graph_value_rank(g, v), mx_graph_value_dims(g, v)};
}

static void check_const(const mx_graph *g, const mx_buffers *b, const char *name, float value) {
    param_view p = find_param(g, b, name);
    int64_t bad = 0;
    for (int64_t i = 0; i < p.n; i++)
        bad += p.x[i] != value;
    CHECK_MSG(p.n > 0 && bad == 0, "%s: %lld elements are not %g", name, (long long)bad, value);
}

/* uniform(+-1/sqrt(fan_in)): inside the bound, using most of it, not constant. */
static void check_linear_init(const mx_graph *g, const mx_buffers *b, const char *name, int64_t fan_in) {
    param_view p = find_param(g, b, name);
    double bound = 1 / sqrt((double)fan_in), most = 0;
    bool inside = true, varied = false;
    for (int64_t i = 0; i < p.n; i++) {
        inside &= fabs(p.x[i]) <= bound;
        varied |= p.x[i] != p.x[0];
        most = fmax(most, fabs(p.x[i]));
    }
    CHECK_MSG(p.n > 1 && inside && varied && most > 0.5 * bound,
              "%s: not uniform(+-1/sqrt(%lld)) (largest |w| %g)", name, (long long)fan_in, most);
}

static void test_init_rules(void) {
    /* one block with every kind of param: norms, linears, convs, S6, average */
    override_list o = {0};
    ov_add(&o, "input.length=8");
    ov_add(&o, "stages[0].width=32");
    mx_model *m = load(MODELS_DIR "/mambamixer-block.json", &o);
    if (!m)
        return;
    const mx_graph *g = mx_model_graph(m);
    mx_buffers *b = mx_buffers_new(g);
    mx_model_init_params(m, b, 42);
    const int64_t d = 32, e = 64, n = 16, r = 2, k = 4; /* r = ceil(32 / 16) */
#define TM "stages.0.blocks.0.token_mixer."
    /* A_log[c, n] = log(n + 1), for every channel */
    param_view a = find_param(g, b, TM "scans.0.A_log");
    CHECK(a.rank == 2 && a.dims[0] == e && a.dims[1] == n);
    int64_t bad = 0;
    for (int64_t i = 0; i < a.n; i++)
        bad += a.x[i] != (float)log((double)(i % n + 1));
    CHECK_MSG(a.n == e * n && bad == 0, "A_log: %lld elements are not log(n + 1)", (long long)bad);
    check_const(g, b, TM "scans.0.D", 1);
    check_const(g, b, TM "norm.weight", 1);
    check_const(g, b, TM "norm.bias", 0);
    /* softplus(dt_bias) = dt ~ logUniform[1e-3, 1e-1]: inside, and spread over it */
    param_view dt = find_param(g, b, TM "scans.0.dt_bias");
    double lo = INFINITY, hi = 0;
    for (int64_t i = 0; i < dt.n; i++) {
        double sp = log1p(exp((double)dt.x[i]));
        lo = fmin(lo, sp);
        hi = fmax(hi, sp);
    }
    /* float storage of the bias moves softplus by a relative 1e-7 or so */
    CHECK_MSG(dt.n == e && lo >= 1e-3 * (1 - 1e-5) && hi <= 1e-1 * (1 + 1e-5) && lo < 1e-2 && hi > 1e-2,
              "softplus(dt_bias) spans [%g, %g]", lo, hi);
    check_linear_init(g, b, TM "in_proj.weight", d);
    check_linear_init(g, b, TM "conv.weight", k); /* depthwise: fan_in = k */
    check_linear_init(g, b, TM "scans.0.x_proj.weight", e);
    check_linear_init(g, b, TM "scans.0.dt_proj.weight", r);
    check_linear_init(g, b, TM "out_proj.weight", e);
#undef TM
    /* the channel mixer's average sees x, x, y_T: one-hot on y_T */
    param_view avg = find_param(g, b, "stages.0.blocks.0.channel_mixer.avg");
    CHECK(avg.n == 3 && avg.x[0] == 0 && avg.x[1] == 0 && avg.x[2] == 1);

    /* a param's numbers depend only on the seed and its name */
    mx_buffers *again = mx_buffers_new(g), *other = mx_buffers_new(g);
    mx_model_init_params(m, again, 42);
    mx_model_init_params(m, other, 43);
    int w = mx_graph_value_find(g, "stages.0.blocks.0.token_mixer.in_proj.weight");
    CHECK(w >= 0 && same_bits(b->data[w], again->data[w], b->numel[w]));
    CHECK(w >= 0 && !same_bits(b->data[w], other->data[w], b->numel[w]));
    mx_buffers_free(again);
    mx_buffers_free(other);
    mx_buffers_free(b);
    mx_model_free(m);
}

int main(void) {
    test_zoo();
    test_mixer_reduces_to_mamba();
    test_deep_average();
    test_weights_round_trip();
    test_init_rules();
    return check_summary();
}
