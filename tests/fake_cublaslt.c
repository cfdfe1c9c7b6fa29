/* fake_cublaslt.c: a cuBLASLt for the fake CUDA driver (tests/fake_cuda.c),
 * with the real library's soname, in the same folder. The real one starts
 * the CUDA runtime, which asks a driver for far more than mixc does; this
 * one takes what mixc gives it, checks the descriptors it is handed were
 * made and not yet destroyed, finds one algorithm for any product, and
 * launches each product as a kernel of the fake driver (named
 * "cublasLtMatmul"), so that a launch fault or an asynchronous fault can
 * fall on a product as on a generated kernel. Nothing is computed. */
#include <cublasLt.h>
#include <cuda.h>
#include <stdlib.h>
#include <string.h>

/* tests/fake_cuda.c */
CUresult fake_cuda_launch_library_kernel(const char *name);

struct cublasLtContext {
    int live;
};

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    if (!h)
        return CUBLAS_STATUS_INVALID_VALUE;
    *h = calloc(1, sizeof **h);
    if (!*h)
        return CUBLAS_STATUS_ALLOC_FAILED;
    (*h)->live = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    if (!h || !h->live)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

/* The opaque descriptors have public sizes: allocated as such. */
#define MADE(desc) ((desc) && (desc)->data[0] == 0x6d697863) /* "mixc" */

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    (void)compute, (void)scale;
    if (!(*desc = calloc(1, sizeof **desc)))
        return CUBLAS_STATUS_ALLOC_FAILED;
    (*desc)->data[0] = 0x6d697863;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    if (!MADE(desc))
        return CUBLAS_STATUS_INVALID_VALUE;
    free(desc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
    (void)attr;
    return MADE(desc) && buf && size ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    (void)type;
    if (rows == 0 || cols == 0 || ld < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!(*layout = calloc(1, sizeof **layout)))
        return CUBLAS_STATUS_ALLOC_FAILED;
    (*layout)->data[0] = 0x6d697863;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    if (!MADE(layout))
        return CUBLAS_STATUS_INVALID_VALUE;
    free(layout);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t size) {
    (void)attr;
    return MADE(layout) && buf && size ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!(*pref = calloc(1, sizeof **pref)))
        return CUBLAS_STATUS_ALLOC_FAILED;
    (*pref)->data[0] = 0x6d697863;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size) {
    (void)attr;
    return MADE(pref) && buf && size ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    if (!MADE(pref))
        return CUBLAS_STATUS_INVALID_VALUE;
    free(pref);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref,
                                              int requested, cublasLtMatmulHeuristicResult_t results[],
                                              int *returned) {
    if (!h || !MADE(op) || !MADE(a) || !MADE(b) || !MADE(c) || !MADE(d) || !MADE(pref) || requested < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    memset(&results[0], 0, sizeof results[0]);
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b, const void *beta,
                              const void *C, cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    (void)algo, (void)workspace, (void)workspace_bytes, (void)stream;
    if (!h || !MADE(op) || !MADE(a) || !MADE(b) || !MADE(c) || !MADE(d) || !alpha || !beta || !A || !B || !C ||
        !D)
        return CUBLAS_STATUS_INVALID_VALUE;
    return fake_cuda_launch_library_kernel("cublasLtMatmul") == CUDA_SUCCESS ? CUBLAS_STATUS_SUCCESS
                                                                             : CUBLAS_STATUS_EXECUTION_FAILED;
}
