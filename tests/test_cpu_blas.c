/* test_cpu_blas.c: the CPU backend's matrix products outside OpenBLAS
 * (cpu_blas.h).
 *   - mx_cpu_small_products against a plain f64 loop written here, over
 *     products with k = 1 .. MX_SMALL_K: A, B and the residual transposed or
 *     not, a weight broadcast over the batches (stride 0), two batch levels,
 *     bias, relu and gelu, and the residual read from y itself; fresh
 *     uniform numbers, y poisoned with NaN before each run, 1 and 2 threads.
 *   - the kernels asked of OpenBLAS follow the host's features, and once
 *     loaded it reports the kernels asked for.
 * Skipped (exit 77) when mixc was built without the CPU backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"

#ifdef MIXC_HAVE_LLVM
#include "cpu_blas.h"

/* One product and its buffers; operand (i, j) of batch (o, t) at gemm.h's
 * formula. */
typedef struct {
    mx_gemm gm;
    float *a, *b, *c, *y, *bias;
    size_t a_n, b_n, y_n;
} case_t;

static mx_gemm_operand operand(int64_t rows, int64_t cols, bool trans, bool broadcast, int64_t batch,
                               int64_t *elements) {
    int64_t one = rows * cols;
    mx_gemm_operand o = {.value = 0, .offset = 3, .ld = trans ? rows : cols, .trans = trans};
    o.batch_stride = broadcast ? 0 : one;
    o.outer_stride = broadcast ? 0 : one * batch;
    *elements = 3 + (broadcast ? one : one * batch * 2);
    return o;
}

static double at(const float *base, const mx_gemm_operand *o, int64_t outer, int64_t batch, int64_t i, int64_t j) {
    return base[o->offset + outer * o->outer_stride + batch * o->batch_stride + (o->trans ? j * o->ld + i : i * o->ld + j)];
}

static double gelu(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

static void expect(const case_t *c, const float *c_before, double *want) {
    const mx_gemm *gm = &c->gm;
    for (int64_t o = 0; o < gm->outer; o++)
        for (int64_t t = 0; t < gm->batch; t++)
            for (int64_t i = 0; i < gm->m; i++)
                for (int64_t j = 0; j < gm->n; j++) {
                    double v = c_before ? at(c_before, &gm->c, o, t, i, j) : 0.0;
                    for (int64_t kk = 0; kk < gm->k; kk++)
                        v += at(c->a, &gm->a, o, t, i, kk) * at(c->b, &gm->b, o, t, kk, j);
                    v += c->bias ? c->bias[j] : 0.0;
                    v = gm->act == MX_GEMM_ACT_RELU ? (v > 0 ? v : 0) : gm->act == MX_GEMM_ACT_GELU_TANH ? gelu(v) : v;
                    want[gm->y.offset + o * gm->y.outer_stride + t * gm->y.batch_stride + i * gm->y.ld + j] = v;
                }
}

static void check_case(mx_cpu_pool *pool, int64_t m, int64_t n, int64_t k, int variant) {
    case_t c = {.gm = {.m = m, .n = n, .k = k, .batch = 1 + variant % 5, .outer = 1 + variant % 2,
                       .act = (mx_gemm_act)(variant % 3)}};
    mx_gemm *gm = &c.gm;
    int64_t a_n, b_n, y_n, c_n = 0;
    gm->a = operand(m, k, variant & 1, variant & 2, gm->batch, &a_n);
    gm->b = operand(k, n, variant & 4, false, gm->batch, &b_n);
    gm->y = operand(m, n, false, false, gm->batch, &y_n);
    bool residual = variant & 8, in_place = residual && (variant & 16);
    gm->c = residual ? (in_place ? gm->y : operand(m, n, variant & 32, false, gm->batch, &c_n)) : (mx_gemm_operand){.value = MX_NONE};
    gm->bias = variant & 64 ? 1 : MX_NONE;
    c.a = malloc(sizeof(float) * (size_t)a_n), c.b = malloc(sizeof(float) * (size_t)b_n);
    c.y = malloc(sizeof(float) * (size_t)y_n);
    c.c = residual && !in_place ? malloc(sizeof(float) * (size_t)c_n) : NULL;
    c.bias = gm->bias != MX_NONE ? malloc(sizeof(float) * (size_t)n) : NULL;
    check_fill(c.a, a_n, -1, 1), check_fill(c.b, b_n, -1, 1);
    if (c.c)
        check_fill(c.c, c_n, -1, 1);
    if (c.bias)
        check_fill(c.bias, n, -1, 1);
    /* y poisoned, except where it is the residual read in place */
    if (in_place)
        check_fill(c.y, y_n, -1, 1);
    else
        for (int64_t i = 0; i < y_n; i++)
            c.y[i] = NAN;
    float *before = malloc(sizeof(float) * (size_t)y_n);
    memcpy(before, c.y, sizeof(float) * (size_t)y_n);
    double *want = malloc(sizeof(double) * (size_t)y_n);
    for (int64_t i = 0; i < y_n; i++)
        want[i] = before[i]; /* elements outside the products stay as they were */
    expect(&c, in_place ? before : c.c, want);
    mx_cpu_small_products(pool, gm, 0, (mx_small_operands){c.a, c.b, in_place ? c.y : c.c, c.y, c.bias});
    /* NaN outside the products compares equal to itself in what follows */
    bool same = true;
    int64_t worst = 0;
    double err = 0;
    for (int64_t i = 0; i < y_n; i++) {
        if (isnan(want[i]) != isnan(c.y[i]))
            same = false, worst = i;
        else if (!isnan(want[i]) && fabs(c.y[i] - want[i]) > err)
            err = fabs(c.y[i] - want[i]), worst = i;
    }
    CHECK_MSG(same && err <= 1e-5, "m %lld n %lld k %lld variant %d: y[%lld] = %g, want %g", (long long)m, (long long)n,
              (long long)k, variant, (long long)worst, c.y[worst], want[worst]);
    free(c.a), free(c.b), free(c.c), free(c.y), free(c.bias), free(before), free(want);
}

static void check_small_products(int threads) {
    mx_cpu_pool *pool;
    mx_diag d;
    CHECK(mx_cpu_pool_new(threads, &pool, &d) == MX_OK);
    static const int64_t shapes[][3] = {{33, 192, 1}, {1, 1, 1}, {5, 17, 2}, {3, 40, 4}, {16, 3, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int variant = 0; variant < 128; variant += 1 + (int)s)
            check_case(pool, shapes[s][0], shapes[s][1], shapes[s][2], variant);
    mx_cpu_pool_free(pool);
}

static void check_coretype(void) {
    mx_target t = {.device = MX_DEVICE_CPU, .threads = 1};
    const char *user = getenv("OPENBLAS_CORETYPE");
    snprintf(t.cpu_features, sizeof t.cpu_features, "avx512f avx512bw avx2 fma");
    CHECK(user || strcmp(mx_openblas_coretype(&t), "SkylakeX") == 0);
    snprintf(t.cpu_features, sizeof t.cpu_features, "avx512f avx2 fma");
    CHECK(user || strcmp(mx_openblas_coretype(&t), "Haswell") == 0);
    snprintf(t.cpu_features, sizeof t.cpu_features, "avx2 f16c");
    CHECK(mx_openblas_coretype(&t) == NULL); /* no FMA: OpenBLAS chooses */
    mx_diag d;
    mx_target host;
    CHECK(mx_target_detect(MX_DEVICE_CPU, &host, &d) == MX_OK);
    const char *asked = mx_openblas_coretype(&host);
    const mx_openblas_api *blas = mx_openblas_get(&host, &d);
    CHECK_MSG(blas != NULL, "%s", d.msg);
    if (blas && asked)
        CHECK_MSG(strcasecmp(blas->get_corename(), asked) == 0, "asked OpenBLAS for %s kernels, it runs %s", asked,
                  blas->get_corename());
}
#endif

int main(void) {
#ifdef MIXC_HAVE_LLVM
    check_small_products(1);
    check_small_products(2);
    check_coretype();
    return check_summary();
#else
    printf("skipped: built without the CPU backend (LLVM)\n");
    return 77;
#endif
}
