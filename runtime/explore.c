/* explore.c: the sweep (explore.h): points of the grid, and what each costs.
 * Printing, reading and merging results: explore_io.c; the plot: svg.c. */
#include "explore.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen.h"
#include "gemm.h"
#include "profile.h"
#include "progress.h"

/* ---- the varied fields ------------------------------------------------------------ */

void mx_vary_free(mx_vary *v) {
    for (int i = 0; i < v->n_values; i++)
        free(v->values[i]);
    free(v->values);
    free(v->path);
    memset(v, 0, sizeof *v);
}

static char *copy_span(const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

mx_status mx_vary_parse(const char *arg, mx_vary *out, mx_diag *d) {
    memset(out, 0, sizeof *out);
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        return mx_fail(d, MX_ERR_INVALID, "--vary '%s': expected PATH=V1,V2,...", arg);
    out->path = copy_span(arg, (size_t)(eq - arg));
    out->values = calloc(MX_EXPLORE_MAX_VALUES, sizeof *out->values);
    if (!out->path || !out->values) {
        mx_vary_free(out);
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    }
    int depth = 0;
    for (const char *start = eq + 1, *c = start;; c++) {
        if (*c == '[' || *c == '{')
            depth++;
        else if ((*c == ']' || *c == '}') && depth > 0)
            depth--;
        if (*c && (*c != ',' || depth > 0))
            continue;
        mx_status st = MX_OK;
        if (c == start)
            st = mx_fail(d, MX_ERR_INVALID, "--vary %s: an empty value in '%s'", out->path, eq + 1);
        else if (out->n_values == MX_EXPLORE_MAX_VALUES)
            st = mx_fail(d, MX_ERR_INVALID, "--vary %s: more than %d values", out->path, MX_EXPLORE_MAX_VALUES);
        else if (!(out->values[out->n_values++] = copy_span(start, (size_t)(c - start))))
            st = mx_fail(d, MX_ERR_NOMEM, "out of memory");
        if (st != MX_OK) {
            mx_vary_free(out);
            return st;
        }
        if (!*c)
            break;
        start = c + 1;
    }
    return MX_OK;
}

/* ---- the points ------------------------------------------------------------------- */

/* splitmix64: the sample's generator */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int by_point(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The grid points this run measures, ascending: all of them or a sample,
 * then the shard's share (every n_shards-th, starting at shard - 1). */
static mx_status choose_points(const mx_explore_options *o, int64_t grid, int64_t **out, int *n_out,
                               mx_diag *d) {
    int64_t n = o->sample > 0 && o->sample < grid ? o->sample : grid;
    if (n > 1000000)
        return mx_fail(d, MX_ERR_INVALID, "the grid has %lld points: sweep fewer values, or --sample N",
                       (long long)grid);
    int64_t *points = malloc((size_t)n * sizeof *points);
    if (!points)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    if (n == grid) {
        for (int64_t i = 0; i < n; i++)
            points[i] = i;
    } else { /* distinct points by rejection: n is well below grid here */
        uint64_t state = o->seed;
        for (int64_t i = 0; i < n;) {
            int64_t p = (int64_t)(next_random(&state) % (uint64_t)grid);
            bool seen = false;
            for (int64_t j = 0; j < i && !seen; j++)
                seen = points[j] == p;
            if (!seen)
                points[i++] = p;
        }
        qsort(points, (size_t)n, sizeof *points, by_point);
    }
    int kept = 0;
    for (int64_t i = 0; i < n; i++)
        if (o->n_shards == 0 || i % o->n_shards == o->shard - 1)
            points[kept++] = points[i];
    *out = points;
    *n_out = kept;
    return MX_OK;
}

/* ---- one variant --------------------------------------------------------------------- */

/* The measuring targets, chosen once for the sweep. */
typedef struct {
    bool host, gpu;
    mx_target host_target, estimate_target, gpu_target;
} targets;

/* The roofline floor of one kernel or product: it cannot beat its bytes at
 * the bandwidth, its exps at the SFU rate, or its flops at the f32 rate. */
static double floor_s(const mx_target *t, mx_cost c) {
    return fmax(c.bytes / t->bytes_per_s, fmax(c.exps / t->exps_per_s, c.flops / t->flops_per_s));
}

/* One operand's elements, once per distinct matrix (a stride of 0 broadcasts). */
static double operand_elems(const mx_gemm *gm, const mx_gemm_operand *x, int64_t rows, int64_t cols) {
    if (x->value == MX_NONE)
        return 0;
    double count = (double)rows * (double)cols;
    if (x->batch_stride)
        count *= (double)gm->batch;
    if (x->outer_stride)
        count *= (double)gm->outer;
    return count;
}

static mx_cost matmul_cost(const mx_gemm *gm) {
    double elems = operand_elems(gm, &gm->a, gm->m, gm->k) + operand_elems(gm, &gm->b, gm->k, gm->n) +
                   operand_elems(gm, &gm->c, gm->m, gm->n) + operand_elems(gm, &gm->y, gm->m, gm->n) +
                   (gm->bias != MX_NONE ? (double)gm->n : 0);
    double products = (double)gm->batch * (double)gm->outer;
    return (mx_cost){.flops = 2.0 * (double)gm->m * (double)gm->n * (double)gm->k * products,
                     .bytes = elems * (double)mx_dtype_size(gm->dtype)};
}

/* Kernels, products and the estimate on t, from the generated module (and
 * what the emulation counts it doing, with profile). */
static mx_status estimate(const mx_program *p, const mx_target *t, bool profile, mx_variant *v, mx_diag *d) {
    mx_module m;
    mx_codegen_options co = {.target = t};
    MX_TRY(mx_codegen(p, &co, &m, d));
    mx_profile prof = {0};
    mx_status st = profile ? mx_profile_run(p, &m, t, NULL, NULL, &prof, d) : MX_OK;
    bool profiled = profile && st == MX_OK;
    double seconds = 0;
    for (int k = 0; k < p->n_groups && st == MX_OK; k++) {
        const mx_kernel *kern = mx_module_kernel(&m, k);
        mx_gemm gm;
        if (kern && profile) {
            const mx_kernel_profile *kp = mx_profile_kernel(&prof, k);
            seconds += kp ? kp->roofline_s : floor_s(t, kern->floor);
        } else if (kern) {
            seconds += floor_s(t, kern->floor);
        } else if ((st = mx_gemm_decode(p, k, &gm, d)) == MX_OK) {
            seconds += floor_s(t, matmul_cost(&gm));
            v->matmuls++;
        }
    }
    v->kernels = m.n_kernels;
    v->estimate_ms = seconds * 1e3;
    if (profiled)
        mx_profile_free(&prof);
    mx_module_free(&m);
    return st;
}

/* The median forward time on t: compiled, seeded weights and inputs. */
static mx_status measure(const mx_model *model, const mx_target *t, const mx_explore_options *o, double *ms,
                         mx_diag *d) {
    mx_compiled *c = mx_compile_model(model, t, NULL, d);
    if (!c)
        return MX_ERR_INVALID;
    mx_timing timing;
    mx_status st = mx_init_weights(c, o->seed, d);
    if (st == MX_OK)
        st = mx_set_random_inputs(c, o->seed, d);
    if (st == MX_OK)
        st = mx_time(c, o->warmup, o->runs, &timing, d);
    if (st == MX_OK)
        *ms = timing.median_ms;
    mx_compiled_free(c);
    return st;
}

/* The overrides of a point: the sweep's --set, then one per varied path. */
static mx_status point_overrides(const mx_explore_options *o, int64_t point, mx_variant *v, char ***set,
                                 mx_diag *d) {
    int n = o->n_overrides + o->n_vary;
    *set = calloc((size_t)n + 1, sizeof **set);
    v->values = calloc((size_t)o->n_vary + 1, sizeof *v->values);
    if (!*set || !v->values)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (int i = 0; i < o->n_overrides; i++)
        (*set)[i] = (char *)o->overrides[i];
    for (int i = o->n_vary - 1; i >= 0; i--) { /* the last path varies fastest */
        const mx_vary *vy = &o->vary[i];
        const char *value = vy->values[point % vy->n_values];
        point /= vy->n_values;
        size_t len = strlen(vy->path) + strlen(value) + 2;
        char *s = malloc(len);
        v->values[i] = malloc(strlen(value) + 1);
        if (!s || !v->values[i]) {
            free(s);
            return mx_fail(d, MX_ERR_NOMEM, "out of memory");
        }
        snprintf(s, len, "%s=%s", vy->path, value);
        strcpy(v->values[i], value);
        (*set)[o->n_overrides + i] = s;
    }
    return MX_OK;
}

/* Everything a variant costs; on error the variant keeps the message. */
static mx_status measure_variant(const mx_explore_options *o, const targets *tg, mx_variant *v,
                                 char *const *set, mx_diag *d) {
    mx_model *model = mx_model_load(o->spec, (const char *const *)set, o->n_overrides + o->n_vary, d);
    if (!model)
        return MX_ERR_INVALID;
    mx_stats *s = mx_model_stats(model);
    mx_program *p = s ? mx_program_new(mx_graph_clone(mx_model_graph(model))) : NULL;
    mx_status st = p ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    if (st == MX_OK) {
        v->params = s->total.params;
        v->flops = s->total.flops;
        v->bytes = s->total.bytes;
        mx_pass_options po;
        st = mx_pass_options_from_env(&po, d);
        if (st == MX_OK)
            st = mx_program_run_passes(p, &po, d);
    }
    if (st == MX_OK) {
        v->peak_bytes = (double)p->arena_bytes;
        st = estimate(p, &tg->estimate_target, o->profile, v, d);
    }
    if (st == MX_OK && tg->host)
        st = measure(model, &tg->host_target, o, &v->host_ms, d);
    if (st == MX_OK && tg->gpu)
        st = measure(model, &tg->gpu_target, o, &v->gpu_ms, d);
    mx_program_free(p);
    mx_stats_free(s);
    mx_model_free(model);
    return st;
}

/* "d_state=16 expand=2": the progress bar's label. */
static void point_label(const mx_explore_options *o, const mx_variant *v, char *buf, size_t size) {
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < o->n_vary && at < size; i++) {
        const char *leaf = strrchr(o->vary[i].path, '.');
        at += (size_t)snprintf(buf + at, size - at, "%s%s=%s", i ? " " : "", leaf ? leaf + 1 : o->vary[i].path,
                               v->values[i]);
    }
}

/* ---- the sweep ------------------------------------------------------------------------- */

static char *copy_string(const char *s) { return copy_span(s, strlen(s)); }

void mx_explore_free(mx_explore *e) {
    if (!e)
        return;
    for (int i = 0; i < e->n_variants; i++) {
        mx_variant *v = &e->variants[i];
        for (int k = 0; v->values && k < e->n_paths; k++)
            free(v->values[k]);
        free(v->values);
        free(v->error);
    }
    for (int k = 0; e->paths && k < e->n_paths; k++)
        free(e->paths[k]);
    free(e->paths);
    free(e->variants);
    free(e->spec);
    free(e);
}

int mx_explore_failures(const mx_explore *e) {
    int n = 0;
    for (int i = 0; i < e->n_variants; i++)
        n += e->variants[i].error != NULL;
    return n;
}

static mx_status check_options(const mx_explore_options *o, int64_t *grid, mx_diag *d) {
    if (o->n_vary < 1 || o->n_vary > MX_EXPLORE_MAX_VARY)
        return mx_fail(d, MX_ERR_INVALID, "explore: give 1 to %d --vary PATH=V1,V2,... options (got %d)",
                       MX_EXPLORE_MAX_VARY, o->n_vary);
    if (o->n_shards < 0 || (o->n_shards > 0 && (o->shard < 1 || o->shard > o->n_shards)))
        return mx_fail(d, MX_ERR_INVALID, "explore: shard %d/%d: expected I/N with 1 <= I <= N", o->shard,
                       o->n_shards);
    if (o->runs < 1 || o->warmup < 0)
        return mx_fail(d, MX_ERR_INVALID, "explore: %d runs after %d warm-up runs: need at least one run", o->runs,
                       o->warmup);
    *grid = 1;
    for (int i = 0; i < o->n_vary; i++) {
        for (int j = 0; j < i; j++)
            if (strcmp(o->vary[i].path, o->vary[j].path) == 0)
                return mx_fail(d, MX_ERR_INVALID, "explore: --vary %s is given twice", o->vary[i].path);
        if (*grid > INT64_MAX / MX_EXPLORE_MAX_VALUES)
            return mx_fail(d, MX_ERR_INVALID, "explore: the grid is too large");
        *grid *= o->vary[i].n_values;
    }
    return MX_OK;
}

/* The targets: the estimate's profile, the host device (cpu, else the
 * reference where mixc has no CPU backend) and the GPU when there is one. */
static mx_status choose_targets(const mx_explore_options *o, targets *tg, mx_explore *e, mx_diag *d) {
    MX_TRY(mx_target_named(o->estimate_target, MX_DEVICE_EMU, &tg->estimate_target, d));
    snprintf(e->estimate_name, sizeof e->estimate_name, "%s", o->estimate_target);
    snprintf(e->estimate_method, sizeof e->estimate_method, "%s", o->profile ? "emulation counters" : "buffer floor");
    mx_target_describe(&tg->estimate_target, e->estimate_target, sizeof e->estimate_target);
    if (o->host_device) {
        mx_diag ignored;
        bool cpu_fallback = strcmp(o->host_device, "cpu") == 0 &&
                            mx_target_choose("cpu", NULL, &tg->host_target, NULL, 0, &ignored) != MX_OK;
        MX_TRY(mx_target_choose(cpu_fallback ? "ref" : o->host_device, NULL, &tg->host_target, NULL, 0, d));
        tg->host = true;
        snprintf(e->host_name, sizeof e->host_name, "%s", mx_device_name(tg->host_target.device));
        mx_target_describe(&tg->host_target, e->host_device, sizeof e->host_device);
    }
    mx_diag no_gpu;
    if (o->gpu && mx_target_detect(MX_DEVICE_CUDA, &tg->gpu_target, &no_gpu) == MX_OK) {
        tg->gpu = true;
        snprintf(e->gpu_name, sizeof e->gpu_name, "gpu");
        mx_target_describe(&tg->gpu_target, e->gpu_device, sizeof e->gpu_device);
    }
    return MX_OK;
}

static mx_status start(const mx_explore_options *o, int64_t grid, int n_points, mx_explore *e, mx_diag *d) {
    e->grid_size = grid;
    e->spec = copy_string(o->spec);
    e->paths = calloc((size_t)o->n_vary, sizeof *e->paths);
    e->variants = calloc((size_t)n_points + 1, sizeof *e->variants);
    if (!e->spec || !e->paths || !e->variants)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (e->n_paths = 0; e->n_paths < o->n_vary; e->n_paths++)
        if (!(e->paths[e->n_paths] = copy_string(o->vary[e->n_paths].path)))
            return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    return MX_OK;
}

mx_status mx_explore_run(const mx_explore_options *o, mx_explore **out, mx_diag *d) {
    *out = NULL;
    int64_t grid = 0, *points = NULL;
    int n_points = 0;
    MX_TRY(check_options(o, &grid, d));
    MX_TRY(choose_points(o, grid, &points, &n_points, d));
    targets tg = {0};
    mx_explore *e = calloc(1, sizeof *e);
    mx_status st = e ? start(o, grid, n_points, e, d) : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    if (st == MX_OK)
        st = choose_targets(o, &tg, e, d);
    mx_progress bar;
    mx_progress_start(&bar, st == MX_OK ? o->progress : NULL, "variant", n_points);
    for (int i = 0; st == MX_OK && i < n_points; i++) {
        mx_variant *v = &e->variants[e->n_variants++];
        *v = (mx_variant){.point = points[i], .host_ms = NAN, .estimate_ms = NAN, .gpu_ms = NAN};
        char **set = NULL;
        mx_diag why;
        st = point_overrides(o, points[i], v, &set, d);
        if (st == MX_OK) {
            char label[256];
            point_label(o, v, label, sizeof label);
            mx_progress_step(&bar, i, label);
            if (measure_variant(o, &tg, v, set, &why) != MX_OK) {
                *v = (mx_variant){.point = v->point, .values = v->values, .error = copy_string(why.msg),
                                  .params = NAN, .flops = NAN, .bytes = NAN, .peak_bytes = NAN,
                                  .host_ms = NAN, .estimate_ms = NAN, .gpu_ms = NAN};
                if (!v->error)
                    st = mx_fail(d, MX_ERR_NOMEM, "out of memory");
            }
            mx_progress_item_done(&bar);
        }
        for (int k = o->n_overrides; set && k < o->n_overrides + o->n_vary; k++)
            free(set[k]);
        free(set);
    }
    if (st == MX_OK)
        mx_progress_finish(&bar);
    free(points);
    if (st != MX_OK) {
        mx_explore_free(e);
        return st;
    }
    *out = e;
    return MX_OK;
}
