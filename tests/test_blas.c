/* test_blas.c: runtime/blas.c's mapping of a row-major mx_gemm onto
 * column-major cuBLASLt, without a GPU.
 *
 * blas.c is compiled here (its functions renamed) against a cuBLASLt made of
 * host loops (tests/host_cublaslt.h) that follow the library's documented
 * semantics: D = act(op(A) op(B) + beta C + bias per row of D), column-major,
 * a leading dimension per layout (0 allowed for C: one column repeated),
 * strided batches. Random
 * products -- transposes, offsets, padded rows, broadcast batches, outer
 * batches, bias, residual, activations -- must give what mx_gemm_run_host
 * gives. The stand-in can refuse what the real library is known to refuse
 * (a bias epilogue on a product of one row; strided batches over a limit,
 * lowered here to 3), and the plans must still come out right. */
#define MX_BLAS_MAX_BATCH 3
#define mx_cublaslt_api_get host_cublaslt_api
#define mx_blas_status_text host_blas_status_text
#define mx_blas_open host_blas_open
#define mx_blas_close host_blas_close
#define mx_blas_tf32 host_blas_tf32
#define mx_blas_plan_free host_blas_plan_free
#define mx_blas_plan_new host_blas_plan_new
#define mx_blas_plan_run host_blas_plan_run
#define mx_blas_gemm host_blas_gemm
#include "blas.c"

#include <stdlib.h>

#include "check.h"

/* ---- a cuBLASLt on the host ------------------------------------------------------------------- */

#include "host_cublaslt.h"

#define HOST_LT_ENTRY(field, symbol) .field = symbol,
static const mx_cublaslt_api host_lt = {MX_CUBLASLT_ENTRY_POINTS(HOST_LT_ENTRY)};

const mx_cublaslt_api *host_cublaslt_api(mx_diag *d) {
    (void)d;
    return &host_lt;
}

/* ---- random products -------------------------------------------------------------------------- */

static int64_t pick(int64_t lo, int64_t hi) { return lo + (int64_t)(check_rng_u64() % (uint64_t)(hi - lo + 1)); }

/* An operand of rows x cols per product: maybe transposed, offset, its rows
 * padded, its batches (and outer batches) broadcast when allowed. */
static void operand(mx_gemm_operand *o, int value, int64_t rows, int64_t cols, const mx_gemm *g, bool can_trans,
                    bool can_broadcast) {
    o->value = value;
    o->trans = can_trans && pick(0, 1);
    int64_t inner = o->trans ? rows : cols, stored_rows = o->trans ? cols : rows;
    o->ld = inner + (pick(0, 2) == 0 ? pick(1, 3) : 0);
    o->offset = pick(0, 1) ? pick(0, 5) : 0;
    int64_t matrix = stored_rows * o->ld;
    o->batch_stride = can_broadcast && pick(0, 3) == 0 ? 0 : matrix + pick(0, 2);
    o->outer_stride = can_broadcast && pick(0, 3) == 0 ? 0 : g->batch * (o->batch_stride ? o->batch_stride : matrix) + pick(0, 2);
}

/* One past the largest element index an operand touches. */
static int64_t extent(const mx_gemm_operand *o, const mx_gemm *g, int64_t rows, int64_t cols) {
    int64_t end = 0;
    for (int64_t q = 0; q < g->outer; q++)
        for (int64_t t = 0; t < g->batch; t++) {
            int64_t e = mx_gemm_index(o, q, t, rows - 1, cols - 1) + 1;
            end = e > end ? e : end;
        }
    return end;
}

/* g through blas.c on the host cuBLASLt against mx_gemm_run_host on the same
 * numbers; returns whether they agree (1e-5 relative: f64 sums both). */
static bool run_case(const mx_gemm *g, int it) {
    enum { A, B, C, Y, BIAS, N_VALUES };
    int64_t end[N_VALUES] = {extent(&g->a, g, g->m, g->k), extent(&g->b, g, g->k, g->n),
                             g->c.value != MX_NONE ? extent(&g->c, g, g->m, g->n) : 1, extent(&g->y, g, g->m, g->n),
                             g->n};
    float *data[N_VALUES];
    int64_t numel[N_VALUES];
    for (int i = 0; i < N_VALUES; i++) {
        numel[i] = end[i] + 4;
        data[i] = malloc((size_t)numel[i] * sizeof(float));
        check_fill(data[i], numel[i], -2, 2);
    }
    /* the reference on a copy of y (which may be the residual too) */
    float *want = malloc((size_t)numel[Y] * sizeof(float)), *got = data[Y];
    memcpy(want, got, (size_t)numel[Y] * sizeof(float));
    data[Y] = want;
    mx_buffers bufs = {N_VALUES, data, numel};
    mx_gemm_run_host(g, &bufs);
    data[Y] = got;
    mx_gemm_ptrs p = {(CUdeviceptr)(uintptr_t)data[A], (CUdeviceptr)(uintptr_t)data[B],
                      g->c.value != MX_NONE ? (CUdeviceptr)(uintptr_t)data[C] : 0, (CUdeviceptr)(uintptr_t)data[Y],
                      g->bias != MX_NONE ? (CUdeviceptr)(uintptr_t)data[BIAS] : 0};
    mx_blas bl = {.api = &host_lt, .lt = (cublasLtHandle_t)&lt, .workspace = 0x1000};
    mx_diag d = {{0}};
    bool ok = host_blas_gemm(&bl, g, &p, NULL, &d) == MX_OK;
    CHECK_MSG(ok, "case %d: %s", it, d.msg);
    double *wanted = malloc((size_t)numel[Y] * sizeof(double));
    for (int64_t j = 0; j < numel[Y]; j++)
        wanted[j] = want[j];
    if (ok) {
        char what[160];
        snprintf(what, sizeof what, "case %d: m %lld n %lld k %lld batch %lld outer %lld, a%s b%s%s%s act %d", it,
                 (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch, (long long)g->outer,
                 g->a.trans ? " T" : "", g->b.trans ? " T" : "", g->c.value != MX_NONE ? ", residual" : "",
                 g->bias != MX_NONE ? ", bias" : "", g->act);
        ok = CHECK_CLOSE(got, wanted, numel[Y], 1e-5, what);
    }
    for (int i = 0; i < N_VALUES; i++)
        free(data[i]);
    free(want), free(wanted);
    return ok;
}

static mx_gemm random_gemm(int64_t max_batch) {
    mx_gemm g = {.dtype = MX_F32, .m = pick(1, 7), .n = pick(1, 7), .k = pick(1, 7), .batch = pick(1, max_batch),
                 .outer = pick(1, 3)};
    operand(&g.a, 0, g.m, g.k, &g, true, true);
    operand(&g.b, 1, g.k, g.n, &g, true, true);
    operand(&g.y, 3, g.m, g.n, &g, false, false);
    g.c = (mx_gemm_operand){.value = MX_NONE};
    if (pick(0, 1)) { /* the residual: laid out as y, as the decoder makes it */
        operand(&g.c, 2, g.m, g.n, &g, false, true);
        g.c.ld = g.y.ld;
    }
    g.bias = pick(0, 1) ? 4 : MX_NONE;
    g.act = (mx_gemm_act)pick(0, 2);
    return g;
}

/* Batches within the limit: one call per outer index. */
static void test_random_products(void) {
    lt = (host_state){0};
    int failed = 0;
    for (int it = 0; it < 1500 && failed < 5; it++) {
        mx_gemm g = random_gemm(MX_BLAS_MAX_BATCH);
        failed += !run_case(&g, it);
    }
    CHECK(lt.matmuls > 0 && !lt.saw_c_ld0);
}

/* Over the batch limit: chunks of MX_BLAS_MAX_BATCH and a plan for the rest,
 * none refused by a library that takes no more. */
static void test_batch_chunks(void) {
    lt = (host_state){.max_batch = MX_BLAS_MAX_BATCH};
    int failed = 0;
    for (int it = 0; it < 600 && failed < 5; it++) {
        mx_gemm g = random_gemm(11);
        failed += !run_case(&g, it);
    }
    mx_gemm g = random_gemm(1);
    g.batch = 7, g.outer = 2; /* 2 chunks of 3 and a rest of 1, per outer index */
    operand(&g.a, 0, g.m, g.k, &g, true, false);
    operand(&g.b, 1, g.k, g.n, &g, true, false);
    operand(&g.y, 3, g.m, g.n, &g, false, false);
    lt.matmuls = 0;
    run_case(&g, -1);
    CHECK_MSG(lt.matmuls == 2 * 3, "%d calls for 2 outer x (2 chunks + 1 rest)", lt.matmuls);
}

/* A library with no bias epilogue for a product of one row: the bias as C
 * (leading dimension 0), same numbers. With a residual there is no C to
 * spare, and the error is the library's. */
static void test_bias_as_c(void) {
    lt = (host_state){.refuse_bias_on_one_column = true};
    int failed = 0;
    for (int it = 0; it < 400 && failed < 5; it++) {
        mx_gemm g = random_gemm(MX_BLAS_MAX_BATCH);
        g.m = 1; /* cuBLASLt's D: n x 1 */
        operand(&g.a, 0, g.m, g.k, &g, true, true);
        operand(&g.y, 3, g.m, g.n, &g, false, false);
        if (g.c.value != MX_NONE) {
            operand(&g.c, 2, g.m, g.n, &g, false, true);
            g.c.ld = g.y.ld;
        }
        g.bias = 4;
        if (g.c.value == MX_NONE) {
            failed += !run_case(&g, it);
            continue;
        }
        mx_blas bl = {.api = &host_lt, .lt = (cublasLtHandle_t)&lt, .workspace = 0x1000};
        mx_gemm_ptrs p = {1 << 12, 1 << 12, 1 << 12, 1 << 12, 1 << 12};
        mx_blas_plan *pl = NULL;
        mx_diag d = {{0}};
        CHECK(host_blas_plan_new(&bl, &g, &p, &pl, &d) == MX_ERR_INVALID && !pl &&
              strstr(d.msg, "no algorithm") && strstr(d.msg, "no result"));
    }
    CHECK(lt.saw_c_ld0);
}

/* cuBLASLt reads C and D as stored: a transposed one is refused by name. */
static void test_transposed_c(void) {
    lt = (host_state){0};
    mx_gemm g = random_gemm(1);
    operand(&g.c, 2, g.m, g.n, &g, false, true);
    g.c.trans = true;
    mx_blas bl = {.api = &host_lt, .lt = (cublasLtHandle_t)&lt, .workspace = 0x1000};
    mx_gemm_ptrs p = {1 << 12, 1 << 12, 1 << 12, 1 << 12, 1 << 12};
    mx_blas_plan *pl = NULL;
    mx_diag d = {{0}};
    CHECK(host_blas_plan_new(&bl, &g, &p, &pl, &d) == MX_ERR_INVALID && !pl && strstr(d.msg, "transposed residual"));
    CHECK(lt.heuristics == 0);
}

int main(void) {
    test_random_products();
    test_batch_chunks();
    test_bias_as_c();
    test_transposed_c();
    return check_summary();
}
