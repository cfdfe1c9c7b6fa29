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
#include "host_cublaslt.h"

static long long pick(long long lo, long long hi) { return lo + (long long)(check_rng_u64() % (uint64_t)(hi - lo + 1)); }

enum { A, B, C, Y, BIAS, N_BUFFERS };

/* An operand of rows x cols per product: maybe transposed, offset, its rows
 * padded, its batches (and outer batches) broadcast when allowed. */
static void operand(mxs_operand *o, int buffer, long long rows, long long cols, const mxs_gemm *g, bool can_trans,
                    bool can_broadcast) {
    o->buffer = buffer;
    o->trans = can_trans && pick(0, 1);
    long long inner = o->trans ? rows : cols, stored_rows = o->trans ? cols : rows;
    o->ld = inner + (pick(0, 2) == 0 ? pick(1, 3) : 0);
    o->offset = pick(0, 1) ? pick(0, 5) : 0;
    long long matrix = stored_rows * o->ld;
    o->batch_stride = can_broadcast && pick(0, 3) == 0 ? 0 : matrix + pick(0, 2);
    o->outer_stride =
        can_broadcast && pick(0, 3) == 0 ? 0 : g->batch * (o->batch_stride ? o->batch_stride : matrix) + pick(0, 2);
}

/* Element (i, j) of batch (outer, batch): standalone_tables.h's layout. */
static long long index_of(const mxs_operand *x, long long outer, long long batch, long long i, long long j) {
    return x->offset + outer * x->outer_stride + batch * x->batch_stride + (x->trans ? j * x->ld + i : i * x->ld + j);
}

/* One past the largest element an operand touches. */
static long long extent(const mxs_operand *o, const mxs_gemm *g, long long rows, long long cols) {
    long long end = 0;
    for (long long q = 0; q < g->outer; q++)
        for (long long t = 0; t < g->batch; t++) {
            long long e = index_of(o, q, t, rows - 1, cols - 1) + 1;
            end = e > end ? e : end;
        }
    return end;
}

/* y = act(op(A) op(B) + bias + C), row-major, in f64, over y's copy want. */
static void reference(const mxs_gemm *g, float *const data[N_BUFFERS], double *want) {
    for (long long q = 0; q < g->outer; q++)
        for (long long t = 0; t < g->batch; t++)
            for (long long i = 0; i < g->m; i++)
                for (long long j = 0; j < g->n; j++) {
                    double v = 0;
                    for (long long p = 0; p < g->k; p++)
                        v += (double)data[A][index_of(&g->a, q, t, i, p)] * data[B][index_of(&g->b, q, t, p, j)];
                    if (g->bias >= 0)
                        v += data[BIAS][j];
                    if (g->c.buffer >= 0)
                        v += data[C][index_of(&g->c, q, t, i, j)];
                    if (g->act == MXS_ACT_RELU)
                        v = v > 0 ? v : 0;
                    if (g->act == MXS_ACT_GELU_TANH)
                        v = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
                    want[index_of(&g->y, q, t, i, j)] = v;
                }
}

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
    long long numel[N_BUFFERS] = {extent(&g->a, g, g->m, g->k), extent(&g->b, g, g->k, g->n),
                                  g->c.buffer >= 0 ? extent(&g->c, g, g->m, g->n) : 1, extent(&g->y, g, g->m, g->n),
                                  g->n};
    float *data[N_BUFFERS];
    for (int i = 0; i < N_BUFFERS; i++) {
        numel[i] += 4;
        data[i] = (float *)malloc((size_t)numel[i] * sizeof(float));
        check_fill(data[i], numel[i], -2, 2);
    }
    double *want = (double *)malloc((size_t)numel[Y] * sizeof(double));
    for (long long j = 0; j < numel[Y]; j++) /* what the product leaves alone stays */
        want[j] = data[Y][j];
    reference(g, data, want);
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
    for (int i = 0; i < N_BUFFERS; i++)
        free(data[i]);
    free(want);
    return ok;
}

/* A product as mixc's decoder makes one (the residual laid out as y). */
static mxs_gemm random_gemm(long long max_batch, long long m) {
    mxs_gemm g = {};
    g.dtype = MXS_F32;
    g.m = m ? m : pick(1, 7), g.n = pick(1, 7), g.k = pick(1, 7), g.batch = pick(1, max_batch), g.outer = pick(1, 3);
    operand(&g.a, A, g.m, g.k, &g, true, true);
    operand(&g.b, B, g.k, g.n, &g, true, true);
    operand(&g.y, Y, g.m, g.n, &g, false, false);
    g.c.buffer = -1;
    if (pick(0, 1)) {
        operand(&g.c, C, g.m, g.n, &g, false, true);
        g.c.ld = g.y.ld;
    }
    g.bias = pick(0, 1) ? BIAS : -1;
    g.act = (int)pick(0, 2);
    return g;
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
