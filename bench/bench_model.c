/* bench_model.c: whole-model forward passes on the GPU.
 *
 * ViM2-T (batch 64, 224x224) and TSM2-ETTh1 (batch 32) from the zoo, with
 * seeded weights: compiled for GPU 0 (mx_compile_model) and timed (mx_time
 * with flush_l2: CUDA events around each pass after warm-up, L2 flushed
 * before each, median), once as a CUDA graph replay and once as direct
 * launches (MIXC_NO_GRAPHS=1; its compile is the warm one, from the kernel
 * cache). Each group's time and % of floor: MIXC_DEBUG=2 (bench/run.sh sets
 * it), printed by the cuda device at the first run. For bench/torch_ref.py, which
 * builds the same model in PyTorch, it writes next to its JSON result
 *     bench/results/<model>.safetensors      the weights (mx_weights_save)
 *     bench/results/<model>-io.safetensors   the inputs and mixc's outputs
 * Results: bench/results/bench_model-<device>.json. --tune SECONDS: each
 * model's kernels tuned first, then default against tuned (bench.h,
 * bench_tuned_run): bench/results/bench_model_tune-<device>.json. Without a
 * GPU it says so and exits 1 without writing anything. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "ir.h"

#define WARMUP 5
#define RUNS 30
#define SEED 1234u

typedef struct {
    const char *name; /* the spec in models/, and the stem of the files written */
    const char *set[12];
    int n_set;
} model_case;

#define N_MODELS 2
static const model_case models[N_MODELS] = {
    {"vim2-tiny", {"batch=64", "input.image_size=224"}, 2},
    {"tsm2-etth1", {"batch=32"}, 1},
};
/* --smoke: the same models, small enough to emulate. */
static const model_case smoke_models[N_MODELS] = {
    {"vim2-tiny",
     {"batch=1", "input.image_size=32", "head.classes=10", "stages[0].width=16", "stages[1].width=16",
      "stages[2].width=16", "stages[3].width=16", "stages[0].depth=2", "stages[1].depth=2", "stages[2].depth=2",
      "stages[3].depth=2"},
     11},
    {"tsm2-etth1", {"batch=1", "input.variates=3", "input.lookback=64", "head.horizon=8", "stages[0].width=8"}, 5},
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* The graph's inputs (by name) and c's outputs, for torch_ref.py. */
static mx_status save_io(const char *path, const model_case *mc, const mx_graph *g, const mx_buffers *src,
                         const mx_compiled *c, mx_diag *d) {
    int n_in = mx_graph_input_count(g), n = 0;
    bench_tensor *t = calloc((size_t)(n_in + g->n_outputs) + 1, sizeof *t);
    char (*names)[80] = calloc((size_t)g->n_outputs + 1, sizeof *names);
    if (!t || !names) {
        free(t), free(names);
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < n_in; i++) {
        int v = mx_graph_input(g, i);
        if (!mx_graph_value_is_param(g, v))
            t[n++] = (bench_tensor){g->values[v].name, mx_value_type(g, v)->rank, mx_value_type(g, v)->dim, src->data[v]};
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        snprintf(names[i], sizeof names[i], "output.%d", i);
        t[n++] = (bench_tensor){names[i], mx_value_type(g, v)->rank, mx_value_type(g, v)->dim,
                                mx_output(c, g->values[v].name)};
    }
    mx_status st = bench_save_tensors(path, t, n, mc->set, mc->n_set, d);
    free(t), free(names);
    return st;
}

/* model compiled for GPU 0 (graphs: CUDA graph replay, else direct
 * launches), its weights and inputs set from sb, run once; the wall time
 * of the compile into *compile_ms. */
static mx_compiled *compile_model(bench *bn, const mx_model *model, const mx_buffers *sb, bool graphs,
                                  double *compile_ms, mx_diag *d) {
    mx_compile_options o = {.flush_l2 = 1};
    if (!graphs)
        setenv("MIXC_NO_GRAPHS", "1", 1);
    double t0 = now_ms();
    mx_compiled *c = mx_compile_model(model, &bn->t, &o, d);
    *compile_ms = now_ms() - t0;
    unsetenv("MIXC_NO_GRAPHS");
    if (c && (mx_compiled_set_buffers(c, sb, d) != MX_OK || mx_run(c, d) != MX_OK)) {
        mx_compiled_free(c);
        return NULL;
    }
    return c;
}

/* --tune: the model's kernels tuned, then default against tuned
 * (bench_tuned_run), CUDA graph replay both. */
typedef struct {
    bench *bn;
    const mx_model *model;
    const mx_buffers *sb;
} model_ctx;

static mx_compiled *compile_for_tune(void *ctx, bool no_load, mx_diag *d) {
    model_ctx *x = ctx;
    if (!no_load) {
        double ms;
        return compile_model(x->bn, x->model, x->sb, true, &ms, d);
    }
    mx_compile_options o = {.flush_l2 = 1, .no_load = true};
    mx_compiled *c = mx_compile_model(x->model, &x->bn->t, &o, d);
    if (c && mx_compiled_set_buffers(c, x->sb, d) != MX_OK) {
        mx_compiled_free(c);
        return NULL;
    }
    return c;
}

static mx_status tune_model(bench *bn, bench_json *j, const model_case *mc, const mx_model *model,
                            const mx_buffers *sb, mx_diag *d) {
    model_ctx x = {bn, model, sb};
    bench_tuned r;
    MX_TRY(bench_tuned_run(bn, compile_for_tune, &x, bn->smoke ? 5 : RUNS, &r, d));
    bench_json_next(j);
    fprintf(j->f, "{\"model\": \"%s\", \"overrides\": [", mc->name);
    for (int i = 0; i < mc->n_set; i++)
        fprintf(j->f, "%s\"%s\"", i ? ", " : "", mc->set[i]);
    fprintf(j->f, "]");
    bench_tuned_print(j, mc->name, &r);
    fprintf(j->f, "}");
    return MX_OK;
}

static void print_times(FILE *f, const char *name, const mx_timing *t) {
    fprintf(f, "\"%s\": {\"runs\": %d, \"median_ms\": %.6g, \"min_ms\": %.6g, \"max_ms\": %.6g}", name, t->runs,
            t->median_ms, t->min_ms, t->max_ms);
}

static mx_status run_model(bench *bn, bench_json *j, const model_case *mc, mx_diag *d) {
    char path[1024], weights[1100], io[1100];
    snprintf(path, sizeof path, "%s/models/%s.json", MIXC_SOURCE_DIR, mc->name);
    snprintf(weights, sizeof weights, "%s/%s.safetensors", bn->results, mc->name);
    snprintf(io, sizeof io, "%s/%s-io.safetensors", bn->results, mc->name);
    mx_model *model = mx_model_load(path, mc->set, mc->n_set, d);
    if (!model)
        return MX_ERR_INVALID;
    const mx_graph *g = mx_model_graph(model);
    mx_buffers *sb = mx_buffers_new(g);
    mx_buffers_fill_random(sb, g, SEED);
    mx_model_init_params(model, sb, SEED);
    if (bn->tune_s > 0) {
        mx_status st = tune_model(bn, j, mc, model, sb, d);
        mx_buffers_free(sb);
        mx_model_free(model);
        return st;
    }
    mx_timing graph_t = {0}, direct_t = {0};
    double cold_ms = 0, warm_ms = 0;
    bench_module bm = {0};
    /* The first run prints each group's time and % of floor under MIXC_DEBUG=2. */
    mx_compiled *graphs = compile_model(bn, model, sb, true, &cold_ms, d);
    mx_compiled *direct = graphs ? compile_model(bn, model, sb, false, &warm_ms, d) : NULL;
    mx_status st = graphs && direct ? MX_OK : MX_ERR_INVALID;
    int warmup = bn->smoke ? 1 : WARMUP, runs = bn->smoke ? 2 : RUNS;
    if (st == MX_OK)
        st = mx_time(graphs, warmup, runs, &graph_t, d);
    if (st == MX_OK)
        st = mx_time(direct, warmup, runs, &direct_t, d);
    if (st == MX_OK)
        st = mx_save_weights(graphs, weights, d);
    if (st == MX_OK)
        st = save_io(io, mc, g, sb, graphs, d);
    if (st == MX_OK)
        st = bench_module_of(graphs, &bm, d);
    if (st == MX_OK) {
        const mx_program *p = mx_compiled_program(graphs);
        int batch = (int)mx_value_type(g, mx_graph_input(g, 0))->dim[0], matmuls = 0;
        for (int k = 0; k < p->n_groups; k++)
            matmuls += p->groups[k].kind == MX_FUSE_MATMUL;
        mx_stats *stats = mx_model_stats(model);
        printf("%-11s batch %-3d graph %9.3f ms (%8.1f samples/s)  direct %9.3f ms  %d kernels in %d programs + %d "
               "cuBLASLt, compile %.0f ms cold, %.0f ms warm\n",
               mc->name, batch, graph_t.median_ms, batch / (graph_t.median_ms * 1e-3), direct_t.median_ms,
               bm.m.n_kernels, bm.m.n_programs, matmuls, cold_ms, warm_ms);
        bench_json_next(j);
        fprintf(j->f, "{\"model\": \"%s\", \"overrides\": [", mc->name);
        for (int i = 0; i < mc->n_set; i++)
            fprintf(j->f, "%s\"%s\"", i ? ", " : "", mc->set[i]);
        fprintf(j->f,
                "], \"batch\": %d, \"params\": %.0f, \"flops\": %.6g, \"kernels\": %d, \"programs\": %d, "
                "\"matmuls\": %d, \"arena_bytes\": %lld, \"compile_ms\": %.1f, \"compile_warm_ms\": %.1f, ",
                batch, stats ? stats->total.params : 0, stats ? stats->total.flops : 0, bm.m.n_kernels,
                bm.m.n_programs, matmuls, (long long)p->arena_bytes, cold_ms, warm_ms);
        print_times(j->f, "graph", &graph_t);
        fprintf(j->f, ", ");
        print_times(j->f, "direct", &direct_t);
        fprintf(j->f,
                ", \"samples_per_s\": %.6g, \"weights\": \"bench/results/%s.safetensors\", "
                "\"io\": \"bench/results/%s-io.safetensors\"}",
                batch / (graph_t.median_ms * 1e-3), mc->name, mc->name);
        mx_stats_free(stats);
        bench_module_free(&bm);
    }
    mx_compiled_free(graphs), mx_compiled_free(direct);
    mx_buffers_free(sb);
    mx_model_free(model);
    return st;
}

int main(int argc, char **argv) {
    bench bn;
    bench_json j;
    int rc = bench_start(&bn, &j, "bench_model", argc, argv);
    if (rc >= 0)
        return rc;
    rc = 0;
    for (int i = 0; i < N_MODELS; i++) { /* a failed model costs its own numbers, not the other's */
        mx_diag d = {{0}};
        int written = j.n_results;
        if (run_model(&bn, &j, bn.smoke ? &smoke_models[i] : &models[i], &d) != MX_OK) {
            fprintf(stderr, "bench_model: %s: %s\n", models[i].name, d.msg);
            char fields[96];
            snprintf(fields, sizeof fields, "\"model\": \"%s\"", models[i].name);
            if (j.n_results == written)
                bench_json_failure(&j, fields, d.msg);
            rc = 1;
        }
    }
    return bench_finish(&j, rc);
}
