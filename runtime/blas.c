/* blas.c: mx_gemm through cuBLASLt (blas.h).
 *
 * cuBLASLt is column-major; a row-major [r, c] matrix with leading dimension
 * ld is the column-major [c, r] one. So y = op(A) op(B), row-major, is
 * y^T = op(B)^T op(A)^T column-major: cuBLASLt's A is our B, its B our A,
 * its m our n, and its bias (one value per row of D) runs along our columns,
 * as a linear's bias does. */
#include "blas.h"

#include <stdio.h>
#include <stdlib.h>

#include "cudalibs.h"
#include "ir.h"


struct mx_blas {
    mx_cuda *cu;
    const mx_cublaslt_api *api;
    cublasLtHandle_t lt;
    CUdeviceptr workspace;
    bool tf32;
};

struct mx_blas_plan {
    const mx_cublaslt_api *api;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatmulAlgo_t algo;
    int64_t outer;
    /* cuBLASLt's A, B, C, D at outer index 0, and their outer strides in bytes */
    CUdeviceptr p[4];
    int64_t outer_bytes[4];
    bool has_c;
    /* Batches of more than MX_BLAS_MAX_BATCH: `chunks` calls of `chunk`
     * products per outer index, chunk_bytes[i] apart, then `rest`, a plan of
     * its own for what is left (NULL when nothing is). */
    int64_t chunk, chunks;
    int64_t chunk_bytes[4];
    mx_blas_plan *rest;
};

static const struct {
    cublasStatus_t status;
    const char *text;
} status_texts[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS"},
    {CUBLAS_STATUS_NOT_INITIALIZED,
     "CUBLAS_STATUS_NOT_INITIALIZED: no usable CUDA context (is there a driver and a device?)"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED: out of host or device memory"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE: a size, stride or attribute is out of range"},
    {CUBLAS_STATUS_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH: the device lacks a feature the call needs"},
    {CUBLAS_STATUS_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR: GPU memory could not be accessed"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED: the kernel failed to launch or run"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR: an internal operation failed"},
    {CUBLAS_STATUS_NOT_SUPPORTED,
     "CUBLAS_STATUS_NOT_SUPPORTED: no algorithm for these types, layouts or alignments"},
    {CUBLAS_STATUS_LICENSE_ERROR, "CUBLAS_STATUS_LICENSE_ERROR: a licensed feature is unavailable"},
};

const char *mx_blas_status_text(int status) {
    for (size_t i = 0; i < sizeof status_texts / sizeof *status_texts; i++)
        if ((int)status_texts[i].status == status)
            return status_texts[i].text;
    return "an unknown cuBLAS status";
}

static mx_status check(cublasStatus_t s, const char *what, mx_diag *d) {
    if (s == CUBLAS_STATUS_SUCCESS)
        return MX_OK;
    return mx_fail(d, MX_ERR_IO, "%s: %s (status %d)", what, mx_blas_status_text((int)s), (int)s);
}

mx_status mx_blas_open(mx_blas **out, mx_cuda *cu, mx_diag *d) {
    *out = NULL;
    const mx_cublaslt_api *api = mx_cublaslt_api_get(d);
    if (!api)
        return MX_ERR_IO;
    mx_blas *bl = calloc(1, sizeof *bl);
    if (!bl)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory opening cuBLASLt");
    bl->cu = cu;
    bl->api = api;
    const char *tf32 = getenv("MIXC_TF32");
    bl->tf32 = tf32 && *tf32 && tf32[0] != '0';
    /* cuBLASLt takes the thread's current context: make it the primary one. */
    mx_status st = mx_cuda_check(cu, cu->api.CtxSetCurrent(cu->ctx), "cuCtxSetCurrent", d);
    if (st == MX_OK)
        st = check(api->Create(&bl->lt), "cublasLtCreate", d);
    if (st == MX_OK)
        st = mx_cuda_alloc(cu, MX_BLAS_WORKSPACE_BYTES, "cuBLASLt's workspace", &bl->workspace, d);
    if (st != MX_OK) {
        mx_blas_close(bl);
        return st;
    }
    *out = bl;
    return MX_OK;
}

void mx_blas_close(mx_blas *bl) {
    if (!bl)
        return;
    if (bl->workspace)
        bl->cu->api.MemFree(bl->workspace);
    if (bl->lt)
        bl->api->Destroy(bl->lt);
    free(bl);
}

bool mx_blas_tf32(const mx_blas *bl) { return bl->tf32; }

/* The descriptors, not the plan: a plan's description is redone when its
 * bias moves from the epilogue into C. */
static void free_description(mx_blas_plan *pl) {
    if (pl->op)
        pl->api->MatmulDescDestroy(pl->op);
    cublasLtMatrixLayout_t layouts[4] = {pl->la, pl->lb, pl->lc, pl->ld};
    for (int i = 0; i < 4; i++)
        if (layouts[i])
            pl->api->MatrixLayoutDestroy(layouts[i]);
    pl->op = NULL, pl->la = pl->lb = pl->lc = pl->ld = NULL;
}

void mx_blas_plan_free(mx_blas_plan *pl) {
    if (!pl)
        return;
    free_description(pl);
    mx_blas_plan_free(pl->rest);
    free(pl);
}

static cudaDataType data_type(mx_dtype t) {
    return t == MX_F16 ? CUDA_R_16F : t == MX_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* A column-major layout of rows x cols with leading dimension ld, batched. */
static mx_status layout(const mx_cublaslt_api *api, cublasLtMatrixLayout_t *l, mx_dtype t,
                        int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                        int64_t batch_stride, mx_diag *d) {
    MX_TRY(check(api->MatrixLayoutCreate(l, data_type(t), (uint64_t)rows, (uint64_t)cols, ld),
                 "cublasLtMatrixLayoutCreate", d));
    int32_t count = (int32_t)batch;
    MX_TRY(check(api->MatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                               sizeof count),
                 "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)", d));
    return check(api->MatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                               &batch_stride, sizeof batch_stride),
                 "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)", d);
}

static mx_status set_desc(const mx_cublaslt_api *api, cublasLtMatmulDesc_t op,
                          cublasLtMatmulDescAttributes_t attr, const void *value, size_t size,
                          const char *name, mx_diag *d) {
    char what[96];
    snprintf(what, sizeof what, "cublasLtMatmulDescSetAttribute(%s)", name);
    return check(api->MatmulDescSetAttribute(op, attr, value, size), what, d);
}

/* The largest power of two, up to 256, that divides address. */
static uint32_t alignment(CUdeviceptr address) {
    uint32_t a = 256;
    while (a > 1 && address % a)
        a /= 2;
    return a;
}

static cublasLtEpilogue_t epilogue(mx_gemm_act act, bool bias) {
    switch (act) {
    case MX_GEMM_ACT_RELU:
        return bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case MX_GEMM_ACT_GELU_TANH:
        return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    default:
        return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    }
}

static mx_status choose_algo(mx_blas *bl, mx_blas_plan *pl, const mx_gemm *gm, mx_diag *d) {
    const mx_cublaslt_api *api = bl->api;
    cublasLtMatmulPreference_t pref;
    MX_TRY(check(api->MatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate", d));
    uint64_t ws = MX_BLAS_WORKSPACE_BYTES;
    cublasStatus_t s = api->MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                         &ws, sizeof ws);
    /* The defaults assume 256-byte aligned operands; a sliced operand (dt out
     * of an x_proj result) may start anywhere, and an algorithm that assumes
     * otherwise reads out of line. */
    uint32_t align[4] = {0};
    static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++) {
        align[i] = alignment(pl->p[i]);
        for (int64_t o = 1; o < pl->outer && pl->outer_bytes[i]; o++) /* every outer start */
            if (alignment(pl->p[i] + (CUdeviceptr)(o * pl->outer_bytes[i])) < align[i])
                align[i] = alignment(pl->p[i] + (CUdeviceptr)(o * pl->outer_bytes[i]));
        s = api->MatmulPreferenceSetAttribute(pref, align_attr[i], &align[i], sizeof align[i]);
    }
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = api->MatmulAlgoGetHeuristic(bl->lt, pl->op, pl->la, pl->lb, pl->lc, pl->ld, pref, 1,
                                        &result, &found);
    api->MatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && found > 0) {
        pl->algo = result.algo;
        return MX_OK;
    }
    return mx_fail(d, MX_ERR_INVALID,
                   "group %d: cuBLASLt has no algorithm for %s [%lld x %lld] x [%lld x %lld] "
                   "(batch %lld, lda %lld%s, ldb %lld%s, alignments %u/%u/%u/%u bytes): %s",
                   gm->group, mx_dtype_names[gm->dtype], (long long)gm->m, (long long)gm->k,
                   (long long)gm->k, (long long)gm->n, (long long)gm->batch, (long long)gm->a.ld,
                   gm->a.trans ? " T" : "", (long long)gm->b.ld, gm->b.trans ? " T" : "", align[0],
                   align[1], align[2], align[3],
                   s == CUBLAS_STATUS_SUCCESS ? "no result" : mx_blas_status_text((int)s));
}

/* The descriptors of `chunk` products of gm: the bias in the epilogue, or
 * (bias_in_c) as C, one row of D's values repeated (leading dimension 0) and
 * added with beta = 1. */
static mx_status describe(mx_blas *bl, const mx_gemm *gm, const mx_gemm_ptrs *ptr, bool bias_in_c,
                          mx_blas_plan *pl, mx_diag *d) {
    const mx_cublaslt_api *api = bl->api;
    size_t es = mx_dtype_size(gm->dtype);
    bool f32_tf32 = bl->tf32 && gm->dtype == MX_F32;
    MX_TRY(check(api->MatmulDescCreate(&pl->op, f32_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                       CUDA_R_32F),
                 "cublasLtMatmulDescCreate", d));
    /* Lt's A is our B: [n, k] column-major when B is stored transposed ([n, k]
     * row-major), else its transpose. Lt's B is our A likewise. */
    cublasOperation_t ta = gm->b.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = gm->a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    MX_TRY(set_desc(api, pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta, "TRANSA", d));
    MX_TRY(set_desc(api, pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb, "TRANSB", d));
    bool bias_in_epilogue = gm->bias != MX_NONE && !bias_in_c;
    cublasLtEpilogue_t ep = epilogue(gm->act, bias_in_epilogue);
    MX_TRY(set_desc(api, pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep, "EPILOGUE", d));
    if (bias_in_epilogue) {
        const void *bias = (const void *)(uintptr_t)ptr->bias;
        int64_t stride = 0; /* one bias for every batch */
        MX_TRY(set_desc(api, pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias,
                        "BIAS_POINTER", d));
        MX_TRY(set_desc(api, pl->op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &stride, sizeof stride,
                        "BIAS_BATCH_STRIDE", d));
    }
    if (gm->b.trans)
        MX_TRY(layout(api, &pl->la, gm->dtype, gm->k, gm->n, gm->b.ld, pl->chunk, gm->b.batch_stride, d));
    else
        MX_TRY(layout(api, &pl->la, gm->dtype, gm->n, gm->k, gm->b.ld, pl->chunk, gm->b.batch_stride, d));
    if (gm->a.trans)
        MX_TRY(layout(api, &pl->lb, gm->dtype, gm->m, gm->k, gm->a.ld, pl->chunk, gm->a.batch_stride, d));
    else
        MX_TRY(layout(api, &pl->lb, gm->dtype, gm->k, gm->m, gm->a.ld, pl->chunk, gm->a.batch_stride, d));
    pl->has_c = gm->c.value != MX_NONE || bias_in_c;
    const mx_gemm_operand *c = gm->c.value != MX_NONE ? &gm->c : &gm->y;
    if (bias_in_c)
        MX_TRY(layout(api, &pl->lc, gm->dtype, gm->n, gm->m, 0, pl->chunk, 0, d));
    else
        MX_TRY(layout(api, &pl->lc, gm->dtype, gm->n, gm->m, c->ld, pl->chunk, c->batch_stride, d));
    MX_TRY(layout(api, &pl->ld, gm->dtype, gm->n, gm->m, gm->y.ld, pl->chunk, gm->y.batch_stride, d));
    const mx_gemm_operand *ops[4] = {&gm->b, &gm->a, c, &gm->y};
    CUdeviceptr base[4] = {ptr->b, ptr->a, gm->c.value != MX_NONE ? ptr->c : ptr->y, ptr->y};
    for (int i = 0; i < 4; i++) {
        pl->p[i] = base[i] + (CUdeviceptr)(ops[i]->offset * (int64_t)es);
        pl->outer_bytes[i] = ops[i]->outer_stride * (int64_t)es;
        pl->chunk_bytes[i] = pl->chunk * ops[i]->batch_stride * (int64_t)es;
    }
    if (bias_in_c)
        pl->p[2] = ptr->bias, pl->outer_bytes[2] = pl->chunk_bytes[2] = 0;
    return MX_OK;
}

static mx_status build(mx_blas *bl, const mx_gemm *gm, const mx_gemm_ptrs *ptr, mx_blas_plan *pl,
                       mx_diag *d) {
    if (gm->c.trans || gm->y.trans) /* cuBLASLt takes C and D as they are stored */
        return mx_fail(d, MX_ERR_INVALID, "group %d: cuBLASLt cannot read a transposed %s", gm->group,
                       gm->y.trans ? "result" : "residual");
    pl->outer = gm->outer;
    pl->chunk = gm->batch < MX_BLAS_MAX_BATCH ? gm->batch : MX_BLAS_MAX_BATCH;
    pl->chunks = gm->batch / pl->chunk;
    MX_TRY(describe(bl, gm, ptr, false, pl, d));
    mx_status st = choose_algo(bl, pl, gm, d);
    if (st != MX_OK && gm->bias != MX_NONE && gm->c.value == MX_NONE) {
        /* Some shapes have no algorithm with a bias epilogue (a product of
         * one row, as a classifier's head); the same sum with the bias as C. */
        mx_diag first = *d;
        free_description(pl);
        MX_TRY(describe(bl, gm, ptr, true, pl, d));
        st = choose_algo(bl, pl, gm, d);
        if (st != MX_OK)
            *d = first;
    }
    int64_t rest = gm->batch - pl->chunks * pl->chunk;
    if (st == MX_OK && rest > 0) {
        mx_gemm tail = *gm;
        tail.batch = rest;
        mx_gemm_operand *ops[4] = {&tail.a, &tail.b, &tail.c, &tail.y};
        for (int i = 0; i < 4; i++)
            ops[i]->offset += pl->chunks * pl->chunk * ops[i]->batch_stride;
        st = mx_blas_plan_new(bl, &tail, ptr, &pl->rest, d);
    }
    return st;
}

mx_status mx_blas_plan_new(mx_blas *bl, const mx_gemm *gm, const mx_gemm_ptrs *ptr,
                           mx_blas_plan **out, mx_diag *d) {
    *out = NULL;
    mx_blas_plan *pl = calloc(1, sizeof *pl);
    if (!pl)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory planning a cuBLASLt product");
    pl->api = bl->api;
    mx_status st = build(bl, gm, ptr, pl, d);
    if (st != MX_OK) {
        mx_blas_plan_free(pl);
        return st;
    }
    *out = pl;
    return MX_OK;
}

mx_status mx_blas_plan_run(mx_blas *bl, const mx_blas_plan *pl, CUstream s, mx_diag *d) {
    const float one = 1.0f, zero = 0.0f;
    for (int64_t o = 0; o < pl->outer; o++)
        for (int64_t q = 0; q < pl->chunks; q++) {
            void *p[4];
            for (int i = 0; i < 4; i++)
                p[i] = (void *)(uintptr_t)(pl->p[i] + (CUdeviceptr)(o * pl->outer_bytes[i] + q * pl->chunk_bytes[i]));
            MX_TRY(check(bl->api->Matmul(bl->lt, pl->op, &one, p[0], pl->la, p[1], pl->lb,
                                         pl->has_c ? &one : &zero, p[2], pl->lc, p[3], pl->ld, &pl->algo,
                                         (void *)(uintptr_t)bl->workspace, MX_BLAS_WORKSPACE_BYTES,
                                         (cudaStream_t)s),
                         "cublasLtMatmul", d));
        }
    return pl->rest ? mx_blas_plan_run(bl, pl->rest, s, d) : MX_OK;
}

mx_status mx_blas_gemm(mx_blas *bl, const mx_gemm *gm, const mx_gemm_ptrs *ptr, CUstream s,
                       mx_diag *d) {
    mx_blas_plan *pl;
    MX_TRY(mx_blas_plan_new(bl, gm, ptr, &pl, d));
    mx_status st = mx_blas_plan_run(bl, pl, s, d);
    mx_blas_plan_free(pl);
    return st;
}
