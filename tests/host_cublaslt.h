/* host_cublaslt.h: a cuBLASLt on the host, for tests without a GPU.
 *
 * The entry points mixc uses, under the library's own names, as host loops
 * that follow its documented semantics: D = act(alpha op(A) op(B) + beta C
 * + bias per row of D), column-major f32, a leading dimension per layout (0
 * allowed for C: one column repeated), strided batches; a layout rule broken
 * is INVALID_VALUE, as there. It can refuse what the real library is known
 * to refuse: a bias epilogue on a product of one row (D of one column), and
 * batch counts over a limit (lt.max_batch, 0: none). test_blas.c runs
 * runtime/blas.c on it through a table of these functions;
 * test_emit_blas.cc calls them from runtime/emit/standalone.cuh by name (so
 * no real cuBLASLt may be linked beside it). Include after <cublasLt.h>;
 * C and C++. */
#ifndef MX_HOST_CUBLASLT_H
#define MX_HOST_CUBLASLT_H

#include <cublasLt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
    int64_t stride;
} host_layout;

typedef struct {
    int32_t ta, tb;
    uint32_t epilogue;
    const float *bias;
} host_desc;

typedef struct {
    bool refuse_bias_on_one_column; /* no algorithm for a bias epilogue when D has one column */
    int max_batch;                  /* heuristics refuse larger batch counts */
    int heuristics, matmuls;
    bool saw_c_ld0;                 /* a product read C with leading dimension 0 */
} host_state;
static host_state lt;

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = (cublasLtHandle_t)&lt;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    (void)h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t s) {
    (void)c, (void)s;
    *d = (cublasLtMatmulDesc_t)calloc(1, sizeof(host_desc));
    return *d ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *v,
                                              size_t n) {
    host_desc *x = (host_desc *)d;
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
        return n == 4 ? (memcpy(&x->ta, v, 4), CUBLAS_STATUS_SUCCESS) : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_DESC_TRANSB:
        return n == 4 ? (memcpy(&x->tb, v, 4), CUBLAS_STATUS_SUCCESS) : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        return n == 4 ? (memcpy(&x->epilogue, v, 4), CUBLAS_STATUS_SUCCESS) : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        return n == sizeof x->bias ? (memcpy(&x->bias, v, n), CUBLAS_STATUS_SUCCESS) : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: {
        int64_t stride;
        memcpy(&stride, v, sizeof stride);
        return n == 8 && stride == 0 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
    }
    default:
        return CUBLAS_STATUS_INVALID_VALUE;
    }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType t, uint64_t r, uint64_t c,
                                          int64_t ld) {
    (void)t;
    host_layout *x = (host_layout *)calloc(1, sizeof *x);
    if (!x)
        return CUBLAS_STATUS_ALLOC_FAILED;
    x->rows = r, x->cols = c, x->ld = ld, x->batch = 1, x->stride = 0;
    *l = (cublasLtMatrixLayout_t)x;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a,
                                                const void *v, size_t n) {
    host_layout *x = (host_layout *)l;
    if (a == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && n == 4)
        memcpy(&x->batch, v, 4);
    else if (a == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET && n == 8)
        memcpy(&x->stride, v, 8);
    else
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = (cublasLtMatmulPreference_t)calloc(1, 8);
    return *p ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t a, const void *v, size_t n) {
    (void)p, (void)a, (void)v, (void)n;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

static uint64_t host_op_rows(const host_layout *l, int32_t t) { return t ? l->cols : l->rows; }
static uint64_t host_op_cols(const host_layout *l, int32_t t) { return t ? l->rows : l->cols; }

/* The rules the library documents for a product's layouts. */
static bool host_valid(const host_desc *x, const host_layout *a, const host_layout *b, const host_layout *c,
                       const host_layout *d) {
    bool ok = host_op_rows(a, x->ta) == d->rows && host_op_cols(b, x->tb) == d->cols &&
              host_op_cols(a, x->ta) == host_op_rows(b, x->tb) && c->rows == d->rows && c->cols == d->cols &&
              a->batch == d->batch && b->batch == d->batch && c->batch == d->batch;
    ok = ok && a->ld >= (int64_t)a->rows && b->ld >= (int64_t)b->rows && d->ld >= (int64_t)d->rows;
    return ok && (c->ld == 0 || c->ld >= (int64_t)c->rows);
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t A,
                                              cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C,
                                              cublasLtMatrixLayout_t D, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t result[], int *found) {
    (void)h, (void)p, (void)requested;
    const host_desc *x = (const host_desc *)op;
    const host_layout *d = (const host_layout *)D;
    lt.heuristics++;
    *found = 0;
    if (!host_valid(x, (const host_layout *)A, (const host_layout *)B, (const host_layout *)C, d))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lt.max_batch && d->batch > lt.max_batch)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (lt.refuse_bias_on_one_column && (x->epilogue & CUBLASLT_EPILOGUE_BIAS) && d->cols == 1)
        return CUBLAS_STATUS_SUCCESS; /* no result */
    memset(result, 0, sizeof *result);
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

static const float *host_at(const void *base, const host_layout *l, int32_t t, uint64_t i, uint64_t j) {
    return (const float *)base + t * l->stride + (int64_t)i + (int64_t)j * l->ld;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Al, const void *B, cublasLtMatrixLayout_t Bl, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cl, void *D, cublasLtMatrixLayout_t Dl,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t s) {
    (void)h, (void)algo, (void)ws, (void)ws_bytes, (void)s;
    const host_desc *x = (const host_desc *)op;
    const host_layout *a = (const host_layout *)Al, *b = (const host_layout *)Bl, *c = (const host_layout *)Cl,
                      *d = (const host_layout *)Dl;
    if (!host_valid(x, a, b, c, d) || (lt.max_batch && d->batch > lt.max_batch))
        return CUBLAS_STATUS_INVALID_VALUE;
    lt.matmuls++;
    lt.saw_c_ld0 |= c->ld == 0;
    float al = *(const float *)alpha, be = *(const float *)beta;
    uint64_t K = host_op_cols(a, x->ta);
    uint32_t act = x->epilogue & ~(uint32_t)CUBLASLT_EPILOGUE_BIAS;
    for (int32_t t = 0; t < d->batch; t++)
        for (uint64_t i = 0; i < d->rows; i++)
            for (uint64_t j = 0; j < d->cols; j++) {
                double sum = 0;
                for (uint64_t p = 0; p < K; p++)
                    sum += (double)(x->ta ? *host_at(A, a, t, p, i) : *host_at(A, a, t, i, p)) *
                           (x->tb ? *host_at(B, b, t, j, p) : *host_at(B, b, t, p, j));
                double v = al * sum + (be != 0 ? be * *host_at(C, c, t, i, j) : 0);
                if (x->epilogue & CUBLASLT_EPILOGUE_BIAS)
                    v += x->bias[i];
                if (act == CUBLASLT_EPILOGUE_RELU)
                    v = v > 0 ? v : 0;
                if (act == CUBLASLT_EPILOGUE_GELU)
                    v = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
                *(float *)host_at(D, d, t, i, j) = (float)v;
            }
    return CUBLAS_STATUS_SUCCESS;
}

#endif
