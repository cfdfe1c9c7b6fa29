/* bench_model.c: whole-model forward passes on the GPU.
 *
 * ViM2-T (batch 64, 224x224) and TSM2-ETTh1 (batch 32) from the zoo, with
 * seeded weights: compiled, loaded and timed (CUDA events around the forward
 * pass after warm-up, L2 flushed before each run, median), once as a CUDA
 * graph replay and once as direct launches. For bench/torch_ref.py, which
 * builds the same model in PyTorch, it writes next to its JSON result
 *     bench/results/<model>.safetensors      the weights (mx_weights_save)
 *     bench/results/<model>-io.safetensors   the inputs and mixc's outputs
 * Results: bench/results/bench_model-<device>.json. Without a GPU it says so
 * and exits 1 without writing anything. */
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
    const char *set[4];
    int n_set;
} model_case;

static const model_case models[] = {
    {"vim2-tiny", {"batch=64", "input.image_size=224"}, 2},
    {"tsm2-etth1", {"batch=32"}, 1},
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* The graph's inputs (by name) and outputs, for torch_ref.py. */
static mx_status save_io(const char *path, const mx_graph *g, const mx_buffers *src, const mx_program *p,
                         const mx_buffers *out, mx_diag *d) {
    int n_in = mx_graph_input_count(g), n = 0;
    bench_tensor *t = calloc((size_t)(n_in + p->g->n_outputs) + 1, sizeof *t);
    char (*names)[80] = calloc((size_t)p->g->n_outputs + 1, sizeof *names);
    if (!t || !names) {
        free(t), free(names);
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < n_in; i++) {
        int v = mx_graph_input(g, i);
        if (g->nodes[g->values[v].node].op == MX_OP_INPUT)
            t[n++] = (bench_tensor){g->values[v].name, mx_value_type(g, v)->rank, mx_value_type(g, v)->dim, src->data[v]};
    }
    for (int i = 0; i < p->g->n_outputs; i++) {
        int v = p->g->outputs[i];
        snprintf(names[i], sizeof names[i], "output.%d", i);
        t[n++] = (bench_tensor){names[i], mx_value_type(p->g, v)->rank, mx_value_type(p->g, v)->dim, out->data[v]};
    }
    mx_status st = bench_save_tensors(path, t, n, d);
    free(t), free(names);
    return st;
}

/* Inputs of the program from the model's buffers, by name. */
static mx_status copy_inputs(const mx_graph *g, const mx_buffers *sb, const mx_program *p, mx_buffers *b, mx_diag *d) {
    for (int v = 0; v < g->n_values; v++) {
        if (g->nodes[g->values[v].node].op != MX_OP_INPUT)
            continue;
        int w = mx_graph_value_find(p->g, g->values[v].name);
        if (w < 0 || b->numel[w] != sb->numel[v])
            return mx_fail(d, MX_ERR_INVALID, "input %%%s is missing from the compiled program", g->values[v].name);
        if (!b->data[w] && !(b->data[w] = malloc((size_t)b->numel[w] * sizeof(float))))
            return mx_fail(d, MX_ERR_NOMEM, "out of memory");
        memcpy(b->data[w], sb->data[v], (size_t)b->numel[w] * sizeof(float));
    }
    return MX_OK;
}

static mx_status run_model(bench *bn, bench_json *j, const model_case *mc, mx_diag *d) {
    char path[1024], weights[1024], io[1024];
    snprintf(path, sizeof path, "%s/models/%s.json", MIXC_SOURCE_DIR, mc->name);
    snprintf(weights, sizeof weights, "%s/bench/results/%s.safetensors", MIXC_SOURCE_DIR, mc->name);
    snprintf(io, sizeof io, "%s/bench/results/%s-io.safetensors", MIXC_SOURCE_DIR, mc->name);
    mx_model *model = mx_model_load(path, mc->set, mc->n_set, d);
    if (!model)
        return MX_ERR_INVALID;
    const mx_graph *g = mx_model_graph(model);
    mx_buffers *sb = mx_buffers_new(g), *b = NULL, *out = NULL;
    mx_buffers_fill_random(sb, g, SEED);
    mx_model_init_params(model, sb, SEED);
    mx_program *p = NULL;
    mx_module m = {0};
    mx_gpu_program *gp = NULL;
    bench_times graph_t = {0}, direct_t = {0};
    mx_status st = mx_weights_save(g, sb, weights, d);
    mx_graph *copy = st == MX_OK ? mx_graph_clone(g) : NULL;
    double t0 = now_ms();
    if (st == MX_OK)
        st = bench_compile(bn, copy, &p, &m, d);
    double load_ms = now_ms() - t0;
    if (st == MX_OK) {
        b = mx_buffers_new(p->g);
        out = mx_buffers_new(p->g);
        st = mx_program_bind_init(p, g, sb, b, d);
    }
    if (st == MX_OK)
        st = copy_inputs(g, sb, p, b, d);
    t0 = now_ms(); /* load time: compiling and loading, not binding the weights */
    if (st == MX_OK)
        st = mx_gpu_load(bn->gpu, p, &m, b, &gp, d);
    load_ms += now_ms() - t0;
    if (st == MX_OK)
        st = bench_time(bn, gp, true, WARMUP, RUNS, &graph_t, d);
    if (st == MX_OK)
        st = bench_time(bn, gp, false, WARMUP, RUNS, &direct_t, d);
    mx_gpu_options env;
    mx_gpu_options_from_env(&env);
    if (st == MX_OK && env.debug >= 2) /* MIXC_DEBUG=2: every group's time and % of floor */
        st = mx_gpu_profile(gp, stdout, d);
    if (st == MX_OK)
        st = mx_exec_download(mx_gpu_program_exec(gp), out, d);
    if (st == MX_OK)
        st = save_io(io, g, sb, p, out, d);
    if (st == MX_OK) {
        int batch = (int)mx_value_type(g, mx_graph_input(g, 0))->dim[0], matmuls = 0;
        for (int k = 0; k < p->n_groups; k++)
            matmuls += p->groups[k].kind == MX_FUSE_MATMUL;
        mx_stats *stats = mx_model_stats(model);
        printf("%-11s batch %-3d graph %9.3f ms (%8.1f samples/s)  direct %9.3f ms  %d kernels + %d cuBLASLt, "
               "load %.0f ms%s\n",
               mc->name, batch, graph_t.median_ms, batch / (graph_t.median_ms * 1e-3), direct_t.median_ms,
               m.n_kernels, matmuls, load_ms, mx_gpu_program_cubin(gp)->from_cache ? " (cached)" : "");
        bench_json_next(j);
        fprintf(j->f,
                "{\"model\": \"%s\", \"overrides\": [\"%s\"%s%s%s], \"batch\": %d, \"params\": %.0f, \"flops\": %.6g, "
                "\"kernels\": %d, \"matmuls\": %d, \"arena_bytes\": %lld, \"load_ms\": %.1f, \"cubin_cached\": %s, "
                "\"graph\": {\"runs\": %d, \"median_ms\": %.6g, \"min_ms\": %.6g, \"p10_ms\": %.6g, \"p90_ms\": %.6g, "
                "\"max_ms\": %.6g}, \"direct\": {\"runs\": %d, \"median_ms\": %.6g, \"min_ms\": %.6g, "
                "\"p10_ms\": %.6g, \"p90_ms\": %.6g, \"max_ms\": %.6g}, \"samples_per_s\": %.6g, "
                "\"weights\": \"bench/results/%s.safetensors\", \"io\": \"bench/results/%s-io.safetensors\"}",
                mc->name, mc->set[0], mc->n_set > 1 ? "\", \"" : "", mc->n_set > 1 ? mc->set[1] : "", "", batch,
                stats ? stats->total.params : 0, stats ? stats->total.flops : 0, m.n_kernels, matmuls,
                (long long)p->arena_bytes, load_ms, mx_gpu_program_cubin(gp)->from_cache ? "true" : "false",
                graph_t.runs, graph_t.median_ms, graph_t.min_ms, graph_t.p10_ms, graph_t.p90_ms, graph_t.max_ms,
                direct_t.runs, direct_t.median_ms, direct_t.min_ms, direct_t.p10_ms, direct_t.p90_ms,
                direct_t.max_ms, batch / (graph_t.median_ms * 1e-3), mc->name, mc->name);
        mx_stats_free(stats);
    }
    mx_buffers_free(b), mx_buffers_free(out), mx_buffers_free(sb);
    mx_gpu_program_free(gp);
    mx_module_free(&m);
    mx_program_free(p);
    mx_model_free(model);
    return st;
}

int main(void) {
    bench bn;
    bench_json j;
    if (!bench_start(&bn, &j, "bench_model"))
        return 1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof models / sizeof *models; i++) {
        mx_diag d = {{0}};
        if (run_model(&bn, &j, &models[i], &d) != MX_OK) {
            fprintf(stderr, "bench_model: %s: %s\n", models[i].name, d.msg);
            rc = 1;
        }
    }
    return bench_finish(&bn, &j, rc);
}
