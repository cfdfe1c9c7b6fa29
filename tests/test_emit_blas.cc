/* test_emit_blas.cc: the products of an emitted CUDA project, without a GPU.
 *
 * runtime/emit/standalone.cuh is compiled as the project compiles it (C++
 * against the toolkit's headers; the CUDA runtime is linked, never called)
 * and its plans run on test_blas's host cuBLASLt (tests/host_cublaslt.h),
 * here under the library's own names. Random products as model.cu's tables
 * describe them -- transposes, offsets, padded rows, broadcast batches, outer
 * batches, bias, residual, activations -- must give what a plain f64 loop
 * over the same description gives. The stand-in refuses what the real
 * library is known to refuse, and the plans must still come out right: a
 * bias epilogue on a product of one row (the bias becomes C) and strided
 * batches over a limit, lowered here to 3 (chunks and a plan for the rest),
 * as runtime/blas.c does them. */
#define MXS_MAX_BATCH 3
#include "standalone.cuh"

#include "check.h"
#include "gemm_cases.h"
#include "host_cublaslt.h"

/* A model whose buffers are host memory, cuBLASLt the stand-in. */
static mxs_model host_model(void **ptr) {
    mxs_model m = {};
    m.ptr = ptr;
    m.workspace = ptr; /* the stand-in needs none */
    cublasLtCreate(&m.lt);
    return m;
}

/* g planned and run by standalone.cuh against the reference on the same
 * numbers; returns whether they agree (1e-5 relative: f64 sums both). */
static bool run_case(const mxs_gemm *g, int it) {
    long long numel[N_BUFFERS];
    float *data[N_BUFFERS];
    double *want = case_buffers(g, data, numel);
    mxs_model m = host_model((void **)data);
    mxs_plan pl = {};
    bool ok = !mxs_plan_gemm(&m, g, &pl) && !mxs_run_gemm(&m, &pl);
    CHECK_MSG(ok, "case %d: %s", it, m.error);
    mxs_plan_destroy(&pl);
    if (ok) {
        char what[160];
        snprintf(what, sizeof what, "case %d: m %lld n %lld k %lld batch %lld outer %lld, a%s b%s%s%s act %d", it,
                 g->m, g->n, g->k, g->batch, g->outer, g->a.trans ? " T" : "", g->b.trans ? " T" : "",
                 g->c.buffer >= 0 ? ", residual" : "", g->bias >= 0 ? ", bias" : "", g->act);
        ok = CHECK_CLOSE(data[Y], want, numel[Y], 1e-5, what);
    }
    case_free(data, want);
    return ok;
}

/* Batches within the limit: one call per outer index. */
static void test_random_products(void) {
    lt = host_state{};
    int failed = 0;
    for (int it = 0; it < 1500 && failed < 5; it++) {
        mxs_gemm g = random_gemm(MXS_MAX_BATCH, 0);
        failed += !run_case(&g, it);
    }
    CHECK(lt.matmuls > 0 && !lt.saw_c_ld0);
}

/* Over the batch limit: chunks of MXS_MAX_BATCH and a plan for the rest,
 * none refused by a library that takes no more. */
static void test_batch_chunks(void) {
    lt = host_state{};
    lt.max_batch = MXS_MAX_BATCH;
    int failed = 0;
    for (int it = 0; it < 600 && failed < 5; it++) {
        mxs_gemm g = random_gemm(11, 0);
        failed += !run_case(&g, it);
    }
    mxs_gemm g = random_gemm(1, 0);
    g.batch = 7, g.outer = 2; /* 2 chunks of 3 and a rest of 1, per outer index */
    operand(&g.a, A, g.m, g.k, &g, true, false);
    operand(&g.b, B, g.k, g.n, &g, true, false);
    operand(&g.y, Y, g.m, g.n, &g, false, false);
    if (g.c.buffer >= 0) {
        operand(&g.c, C, g.m, g.n, &g, false, false);
        g.c.ld = g.y.ld;
    }
    lt.matmuls = 0;
    run_case(&g, -1);
    CHECK_MSG(lt.matmuls == 2 * 3, "%d calls for 2 outer x (2 chunks + 1 rest)", lt.matmuls);
}

/* A library with no bias epilogue for a product of one row: the bias as C
 * (leading dimension 0), same numbers, activations kept, in chunks too.
 * With a residual there is no C to spare, and the plan fails saying so. */
static void test_bias_as_c(void) {
    lt = host_state{};
    lt.refuse_bias_on_one_column = true, lt.max_batch = MXS_MAX_BATCH;
    int failed = 0, refused = 0;
    for (int it = 0; it < 600 && failed < 5; it++) {
        mxs_gemm g = random_gemm(11, 1); /* cuBLASLt's D: n x 1 */
        g.bias = BIAS;
        if (g.c.buffer < 0) {
            failed += !run_case(&g, it);
            continue;
        }
        static float buffer[1];
        void *ptr[N_BUFFERS] = {buffer, buffer, buffer, buffer, buffer};
        mxs_model m = host_model(ptr);
        mxs_plan pl = {};
        CHECK(mxs_plan_gemm(&m, &g, &pl) == 1 && strstr(m.error, "no algorithm"));
        mxs_plan_destroy(&pl);
        refused++;
    }
    CHECK(lt.saw_c_ld0 && refused > 0);
}

int main(void) {
    test_random_products();
    test_batch_chunks();
    test_bias_as_c();
    return check_summary();
}
