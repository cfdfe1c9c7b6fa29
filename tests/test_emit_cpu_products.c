/* test_emit_cpu_products.c: the products of an emitted CPU project
 * (runtime/emit/standalone_cpu.h, compiled as the project compiles it:
 * plain C here, CBLAS through OpenBLAS in test_emit_cpu_products_cblas).
 * Random products as model.c's tables describe them (tests/gemm_cases.h)
 * run split over a pool of 1, 3 and 4 threads as mxs_split_plan says for
 * every split a tune can choose (tasks 0, 1, 2, 3, 4, 7: the rule, one
 * call, shares of the products or of their rows, evenly or not), and must
 * give what a plain f64 loop over the same description gives. */
#pragma GCC diagnostic ignored "-Wunused-function" /* the header's model API, not called here */
#include "standalone_cpu.h"

#include "check.h"
#include "gemm_cases.h"

/* g on a pool of m's threads against the reference on the same numbers
 * (1e-5 relative: f32 products, f64 reference); whether they agree. */
static bool run_case(mxs_model *m, const mxs_gemm *g, int it) {
    long long numel[N_BUFFERS];
    float *data[N_BUFFERS];
    double *want = case_buffers(g, data, numel);
    mxs_buffer buffers[N_BUFFERS];
    for (int i = 0; i < N_BUFFERS; i++)
        buffers[i] = (mxs_buffer){"operand", MXS_WEIGHT, MXS_F32, numel[i], 0};
    mxs_desc desc = {.name = "case", .buffers = buffers, .n_buffers = N_BUFFERS};
    m->d = &desc, m->ptr = (void **)data;
    bool ok = mxs_run_gemm(m, g) == 0;
    CHECK_MSG(ok, "case %d: %s", it, m->error);
    if (ok) {
        char what[200];
        snprintf(what, sizeof what,
                 "case %d: m %lld n %lld k %lld batch %lld outer %lld, a%s b%s%s%s act %d, tasks %d on %d threads", it,
                 g->m, g->n, g->k, g->batch, g->outer, g->a.trans ? " T" : "", g->b.trans ? " T" : "",
                 g->c.buffer >= 0 ? ", residual" : "", g->bias >= 0 ? ", bias" : "", g->act, g->tasks, m->pool.threads);
        ok = CHECK_CLOSE(data[Y], want, numel[Y], 1e-5, what);
    }
    case_free(data, want);
    return ok;
}

int main(void) {
    static const int tasks[] = {0, 1, 2, 3, 4, 7}, pools[] = {1, 3, 4};
    int failed = 0, by_rows = 0, by_products = 0;
    for (size_t q = 0; q < sizeof pools / sizeof *pools; q++) {
        mxs_model m;
        memset(&m, 0, sizeof m);
        CHECK(mxs_pool_start(&m.pool, pools[q]) == 0 && m.pool.threads == pools[q]);
        for (int it = 0; it < 400 && failed < 5; it++) {
            mxs_gemm g = random_gemm(it % 2 ? 5 : 1, it % 3 ? 0 : pick(8, 40)); /* a single product, taller */
            g.tasks = tasks[it % 6];
            mxs_split plan = mxs_split_plan(g.m, g.n, g.k, g.outer * g.batch, 1, pools[q], g.tasks);
            by_rows += plan.split && plan.parts > 1, by_products += plan.split && plan.parts == 1;
            failed += !run_case(&m, &g, it);
        }
        mxs_pool_stop(&m.pool);
    }
    CHECK_MSG(by_rows > 50 && by_products > 50, "%d cases split by rows, %d by products", by_rows, by_products);
    return check_summary();
}
