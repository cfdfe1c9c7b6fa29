/* cpu_blas.c: OpenBLAS loaded with the kernels the host can run, and the
 * products too small for it (cpu_blas.h). Built at -O3 (CMakeLists.txt) so
 * that the small products' row loops are vectorised. */
#include "cpu_blas.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "dynlib.h"

static mx_openblas_api openblas_api;

#define OPENBLAS_ENTRY(field, symbol) {#symbol, offsetof(mx_openblas_api, field)},
static const mx_dynlib_entry openblas_entries[] = {MX_OPENBLAS_ENTRY_POINTS(OPENBLAS_ENTRY)};
#undef OPENBLAS_ENTRY

static mx_dynlib openblas = {.name = "OpenBLAS",
                             .soname = MIXC_OPENBLAS_SONAME,
                             .path = MIXC_OPENBLAS_PATH,
                             .if_missing = "install libopenblas0 (Debian), or use --device ref",
                             .if_older = "mixc needs OpenBLAS 0.3 or newer",
                             .entries = openblas_entries,
                             .n_entries = sizeof openblas_entries / sizeof *openblas_entries,
                             .api = &openblas_api};

const char *mx_openblas_coretype(const mx_target *t) {
    if (getenv("OPENBLAS_CORETYPE"))
        return NULL;
    if (mx_target_has_feature(t, "avx512f") && mx_target_has_feature(t, "avx512bw"))
        return "SkylakeX";
    if (mx_target_has_feature(t, "avx2") && mx_target_has_feature(t, "fma"))
        return "Haswell";
    return NULL;
}

static pthread_mutex_t steer_lock = PTHREAD_MUTEX_INITIALIZER;

const mx_openblas_api *mx_openblas_get(const mx_target *t, mx_diag *d) {
    /* The environment is set once, before the one dlopen that reads it. */
    pthread_mutex_lock(&steer_lock);
    bool first = !mx_dynlib_loaded(&openblas);
    const char *core = first ? mx_openblas_coretype(t) : NULL;
    if (core)
        setenv("OPENBLAS_CORETYPE", core, 0);
    if (first) {
        /* OpenBLAS's threads spin for 2^28 cycles (about 0.1 s) after each
         * call before they sleep: on the cores the backend's pool runs the
         * next kernels on. With 2 cores that made every kernel after a
         * matmul run at 1.2x instead of 2x from 1 to 2 threads (ViM2-T:
         * 218 ms against 156 ms per forward pass, Intel Xeon VM); 2^4
         * cycles is the least it takes. Its thread count is the pool's. */
        char threads[16];
        snprintf(threads, sizeof threads, "%d", t->threads > 0 ? t->threads : 1);
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
        setenv("OPENBLAS_NUM_THREADS", threads, 0);
    }
    const mx_openblas_api *api = mx_dynlib_get(&openblas, d);
    pthread_mutex_unlock(&steer_lock);
    return api;
}

/* ---- small products ---------------------------------------------------------------------------- */

typedef struct {
    const mx_gemm *gm;
    mx_small_operands ops;
} small_task;

static inline float *element(float *base, const mx_gemm_operand *o, int64_t outer, int64_t batch, int64_t i,
                             int64_t j) {
    return base + mx_gemm_index(o, outer, batch, i, j);
}

/* y[j] (+)= a x[j * stride], the loops the compiler vectorises. */
static void scaled(float *restrict y, const float *restrict x, int64_t stride, float a, int64_t n, bool add) {
    if (stride == 1 && add)
        for (int64_t j = 0; j < n; j++)
            y[j] += a * x[j];
    else if (stride == 1)
        for (int64_t j = 0; j < n; j++)
            y[j] = a * x[j];
    else
        for (int64_t j = 0; j < n; j++)
            y[j] = (add ? y[j] : 0.0f) + a * x[j * stride];
}

static float gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(0.797884561f * (x + 0.044715f * x * x * x))); }

void mx_cpu_epilogue(const mx_gemm *gm, float *y, const float *bias, int64_t n) {
    if (bias)
        for (int64_t j = 0; j < n; j++)
            y[j] += bias[j];
    if (gm->act == MX_GEMM_ACT_RELU)
        for (int64_t j = 0; j < n; j++)
            y[j] = y[j] > 0.0f ? y[j] : 0.0f;
    else if (gm->act == MX_GEMM_ACT_GELU_TANH)
        for (int64_t j = 0; j < n; j++)
            y[j] = gelu_tanh(y[j]);
}

/* Row i of product (o, b): y = sum_k a[i, k] b[k, :] (+ c) (+ bias), then the activation. */
static void small_row(const mx_gemm *gm, const mx_small_operands *ops, int64_t o, int64_t b, int64_t i) {
    float *y = element(ops->y, &gm->y, o, b, i, 0);
    bool add = ops->c != NULL;
    if (add) { /* the residual first: in place when it is y itself */
        float *c = element(ops->c, &gm->c, o, b, i, 0);
        int64_t stride = gm->c.trans ? gm->c.ld : 1;
        if (c != y || stride != 1)
            for (int64_t j = 0; j < gm->n; j++)
                y[j] = c[j * stride];
    }
    for (int64_t kk = 0; kk < gm->k; kk++, add = true)
        scaled(y, element(ops->b, &gm->b, o, b, kk, 0), gm->b.trans ? gm->b.ld : 1,
               *element(ops->a, &gm->a, o, b, i, kk), gm->n, add);
    mx_cpu_epilogue(gm, y, ops->bias, gm->n);
}

static void small_products(void *ctx, int64_t lo, int64_t hi) {
    const small_task *t = ctx;
    for (int64_t q = lo; q < hi; q++)
        for (int64_t i = 0; i < t->gm->m; i++)
            small_row(t->gm, &t->ops, q / t->gm->batch, q % t->gm->batch, i);
}

void mx_cpu_small_products(mx_cpu_pool *pool, const mx_gemm *gm, int tasks, mx_small_operands ops) {
    enum { GRAIN_ELEMENTS = 16384 }; /* the fewest outputs worth a thread */
    small_task t = {gm, ops};
    int64_t n = gm->outer * gm->batch, per_product = gm->m * gm->n > 0 ? gm->m * gm->n : 1;
    int64_t grain = tasks > 0 ? (n + tasks - 1) / tasks : per_product >= GRAIN_ELEMENTS ? 1 : GRAIN_ELEMENTS / per_product;
    mx_cpu_pool_run(pool, n, grain, small_products, &t);
}
