/* bench_scan.c: the fused selective scan alone on the GPU.
 *
 * For each (B, Ch, L, N) of the paper's workloads and each storage type, a
 * one-scan graph (dt bias + softplus, exp(dt A), D skip and silu(z) gate
 * fused; one group of G = 1) is compiled for GPU 0 (mx_compile) and timed
 * (mx_time with flush_l2: CUDA events around each pass after warm-up, the L2
 * flushed before each, the median of many runs). Reported: time, GB/s and
 * exps/s of the kernel's floor counts, and % of the roofline floor
 * max(bytes / bandwidth, exps / SFU rate) with the target's rates
 * (runtime/target.c). The smallest shape is also checked against the
 * reference interpreter on the same numbers. Results: bench/results/bench_scan-<device>.json.
 * --tune SECONDS: the f32 shapes' kernels tuned first, then default against
 * tuned (bench.h, bench_tuned_run): bench/results/bench_scan_tune-<device>.json.
 * Without a GPU it says so and exits 1 without writing anything. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "gpu.h"
#include "ir.h"

#define WARMUP 10
#define RUNS 100

typedef struct {
    int64_t B, Ch, L, N;
} shape;

#define N_SHAPES 4
static const shape shapes[N_SHAPES] = {
    {64, 768, 196, 16}, /* ViM2-T, stage 3 token mixer at batch 64 */
    {8, 1536, 4096, 16}, /* long sequence, few sequences */
    {32, 512, 720, 16}, /* TSM2 long horizon */
    {32, 512, 96, 16},  /* TSM2 short horizon: checked against the reference */
};
/* --smoke: the same kinds of scan, small enough to emulate; all checked. */
static const shape smoke_shapes[N_SHAPES] = {{2, 16, 49, 16}, {1, 8, 300, 16}, {2, 8, 72, 16}, {2, 8, 12, 16}};

static mx_graph *scan_graph(const shape *s, mx_dtype t, mx_diag *d) {
    const char *T = mx_dtype_names[t];
    long long B = s->B, Ch = s->Ch, L = s->L, N = s->N;
    char text[2048];
    snprintf(text, sizeof text,
             "graph scan_%lld_%lld_%lld_%lld_%s {\n"
             "  %%u = input() : %s[%lld,%lld,%lld]\n"
             "  %%dt = input() : %s[%lld,%lld,%lld]\n"
             "  %%A = param() : f32[%lld,%lld]\n"
             "  %%B = input() : %s[%lld,1,%lld,%lld]\n"
             "  %%C = input() : %s[%lld,1,%lld,%lld]\n"
             "  %%D = param() : f32[%lld]\n"
             "  %%z = input() : %s[%lld,%lld,%lld]\n"
             "  %%dt_bias = param() : f32[%lld]\n"
             "  %%y = selective_scan(%%u, %%dt, %%A, %%B, %%C, %%D, %%z, %%dt_bias) {softplus=1} : %s[%lld,%lld,%lld]\n"
             "  output %%y\n"
             "}\n",
             B, Ch, L, N, T, T, B, Ch, L, T, B, Ch, L, Ch, N, T, B, N, L, T, B, N, L, Ch, T, B, Ch, L, Ch, T, B, Ch,
             L);
    return mx_graph_parse(text, "bench_scan", d);
}

/* Realistic numbers: A = -(1..N) per channel (S4D-real), dt = softplus(x - 4)
 * around 0.02, the rest uniform in [-1, 1). */
static void fill(const mx_graph *g, mx_buffers *b, uint64_t seed) {
    mx_buffers_fill_random(b, g, seed);
    int A = mx_graph_value_find(g, "A"), db = mx_graph_value_find(g, "dt_bias");
    int64_t N = mx_value_type(g, A)->dim[1];
    for (int64_t i = 0; i < b->numel[A]; i++)
        b->data[A][i] = -(float)(i % N + 1);
    for (int64_t i = 0; i < b->numel[db]; i++)
        b->data[db][i] = -4.0f;
}

/* Max relative error (floor 1) of c's y against the reference on b. */
static mx_status check(const mx_graph *g, const mx_compiled *c, mx_buffers *b, double *err, mx_diag *d) {
    int y = g->outputs[0];
    MX_TRY(mx_ref_run(g, b, d));
    const float *got = mx_output(c, "y");
    *err = 0;
    for (int64_t i = 0; i < b->numel[y]; i++) {
        double w = b->data[y][i], e = fabs(got[i] - w) / (fabs(w) > 1 ? fabs(w) : 1);
        if (!(e <= *err))
            *err = isnan(e) ? INFINITY : e;
    }
    return MX_OK;
}

static void print_result(bench_json *j, const shape *s, mx_dtype t, const mx_timing *tm, const bench_module *bm,
                         const mx_target *tg, double err) {
    const mx_module *m = &bm->m;
    mx_cost floor = {0};
    for (int i = 0; i < m->n_kernels; i++) {
        floor.bytes += m->kernels[i].floor.bytes;
        floor.exps += m->kernels[i].floor.exps;
    }
    double sec = tm->median_ms * 1e-3, floor_s = mx_gpu_floor_s(tg, floor);
    double tol = t == MX_F32 ? 1e-4 : 2e-2;
    printf("%-5s B=%-3lld Ch=%-5lld L=%-5lld N=%-3lld %9.3f ms  %7.1f GB/s  %6.2f Texp/s  %5.1f%% of floor "
           "(%.3f ms)%s\n",
           mx_dtype_names[t], (long long)s->B, (long long)s->Ch, (long long)s->L, (long long)s->N, tm->median_ms,
           floor.bytes / sec * 1e-9, floor.exps / sec * 1e-12, 100 * floor_s / sec, floor_s * 1e3,
           err >= 0 ? (err <= tol ? "  (checked)" : "  (WRONG)") : "");
    bench_json_next(j);
    fprintf(j->f,
            "{\"B\": %lld, \"Ch\": %lld, \"L\": %lld, \"N\": %lld, \"dtype\": \"%s\", \"kernels\": %d, "
            "\"runs\": %d, \"median_ms\": %.6g, \"min_ms\": %.6g, \"max_ms\": %.6g, \"floor_bytes\": %.6g, "
            "\"floor_exps\": %.6g, \"gb_per_s\": %.6g, \"exps_per_s\": %.6g, \"floor_ms\": %.6g, "
            "\"pct_of_floor\": %.4g, \"max_rel_err\": %.3g",
            (long long)s->B, (long long)s->Ch, (long long)s->L, (long long)s->N, mx_dtype_names[t], m->n_kernels,
            tm->runs, tm->median_ms, tm->min_ms, tm->max_ms, floor.bytes, floor.exps, floor.bytes / sec * 1e-9,
            floor.exps / sec, floor_s * 1e3, 100 * floor_s / sec, err);
    if (m->n_kernels) {
        const mx_kernel *k = &m->kernels[0];
        const mx_kernel_usage *u = bench_kernel_usage(bm, 0);
        fprintf(j->f,
                ", \"kernel\": {\"name\": \"%s\", \"grid\": [%u, %u, %u], \"block\": [%u, %u, %u], "
                "\"smem\": %zu, \"tiles\": {\"threads\": %d, \"items\": %d, \"channels\": %d, "
                "\"lanes_per_state\": %d, \"vector\": %d, \"chunked\": %d}, \"registers\": %d, "
                "\"spill_stores\": %d}",
                k->name, k->grid[0], k->grid[1], k->grid[2], k->block[0], k->block[1], k->block[2], k->smem,
                k->tiles.threads, k->tiles.items, k->tiles.channels, k->tiles.lanes_per_state, k->tiles.vector,
                k->tiles.chunked, u ? u->registers : -1, u ? u->spill_stores : -1);
    }
    fprintf(j->f, "}");
}

static mx_status run_shape(bench *bn, bench_json *j, const shape *s, bool checked, mx_dtype t, mx_diag *d) {
    mx_graph *g = scan_graph(s, t, d);
    if (!g)
        return MX_ERR_INVALID;
    mx_buffers *b = mx_buffers_new(g);
    mx_compile_options o = {.flush_l2 = 1};
    mx_compiled *c = b ? mx_compile(g, &bn->t, &o, d) : NULL;
    mx_status st = c ? MX_OK : b ? MX_ERR_INVALID : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    mx_timing tm = {0};
    bench_module bm = {0};
    double err = -1;
    if (st == MX_OK) {
        fill(g, b, 42);
        st = mx_compiled_set_buffers(c, b, d);
    }
    if (st == MX_OK)
        st = mx_time(c, bn->smoke ? 1 : WARMUP, bn->smoke ? 3 : RUNS, &tm, d);
    if (st == MX_OK && checked)
        st = check(g, c, b, &err, d);
    if (st == MX_OK)
        st = bench_module_of(c, &bm, d);
    if (st == MX_OK) {
        print_result(j, s, t, &tm, &bm, &bn->t, err);
        bench_module_free(&bm);
        if (err > (t == MX_F32 ? 1e-4 : 2e-2))
            st = mx_fail(d, MX_ERR_INVALID, "the scan's result is wrong: max relative error %.3g", err);
    }
    mx_compiled_free(c);
    mx_buffers_free(b);
    mx_graph_free(g);
    return st;
}

/* --tune: the scan's kernels tuned at the shape, then default against tuned
 * (bench_tuned_run). */
typedef struct {
    const bench *bn;
    const mx_graph *g;
    mx_buffers *b;
} scan_ctx;

static mx_compiled *compile_scan(void *ctx, bool no_load, mx_diag *d) {
    scan_ctx *x = ctx;
    mx_compile_options o = {.flush_l2 = 1, .no_load = no_load};
    mx_compiled *c = mx_compile(x->g, &x->bn->t, &o, d);
    fill(x->g, x->b, 42);
    if (c && mx_compiled_set_buffers(c, x->b, d) != MX_OK) {
        mx_compiled_free(c);
        return NULL;
    }
    return c;
}

static mx_status tune_shape(const bench *bn, bench_json *j, const shape *s, mx_dtype t, mx_diag *d) {
    mx_graph *g = scan_graph(s, t, d);
    if (!g)
        return MX_ERR_INVALID;
    mx_buffers *b = mx_buffers_new(g);
    scan_ctx x = {bn, g, b};
    bench_tuned r;
    mx_status st = b ? bench_tuned_run(bn, compile_scan, &x, bn->smoke ? 5 : RUNS, &r, d)
                     : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    if (st == MX_OK) {
        char what[128];
        snprintf(what, sizeof what, "%s B=%lld Ch=%lld L=%lld N=%lld", mx_dtype_names[t], (long long)s->B,
                 (long long)s->Ch, (long long)s->L, (long long)s->N);
        bench_json_next(j);
        fprintf(j->f, "{\"B\": %lld, \"Ch\": %lld, \"L\": %lld, \"N\": %lld, \"dtype\": \"%s\"", (long long)s->B,
                (long long)s->Ch, (long long)s->L, (long long)s->N, mx_dtype_names[t]);
        bench_tuned_print(j, what, &r);
        fprintf(j->f, "}");
    }
    mx_buffers_free(b);
    mx_graph_free(g);
    return st;
}

int main(int argc, char **argv) {
    bench bn;
    bench_json j;
    int rc = bench_start(&bn, &j, "bench_scan", argc, argv);
    if (rc >= 0)
        return rc;
    rc = 0;
    static const mx_dtype types[] = {MX_F32, MX_BF16};
    size_t n_types = bn.tune_s > 0 ? 1 : 2; /* tuning: f32, within a GPU session's minutes */
    for (int s = 0; s < N_SHAPES; s++) /* a failed case costs its own numbers, not the others' */
        for (size_t t = 0; t < n_types; t++) {
            mx_diag d = {{0}};
            const shape *sh = bn.smoke ? &smoke_shapes[s] : &shapes[s];
            int written = j.n_results;
            mx_status st = bn.tune_s > 0 ? tune_shape(&bn, &j, sh, types[t], &d)
                                         : run_shape(&bn, &j, sh, bn.smoke || s == N_SHAPES - 1, types[t], &d);
            if (st != MX_OK) {
                fprintf(stderr, "bench_scan: %s\n", d.msg);
                char fields[160];
                snprintf(fields, sizeof fields, "\"B\": %lld, \"Ch\": %lld, \"L\": %lld, \"N\": %lld, \"dtype\": \"%s\"",
                         (long long)sh->B, (long long)sh->Ch, (long long)sh->L, (long long)sh->N,
                         mx_dtype_names[types[t]]);
                if (j.n_results == written)
                    bench_json_failure(&j, fields, d.msg);
                rc = 1;
            }
        }
    return bench_finish(&j, rc);
}
