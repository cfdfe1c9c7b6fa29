/* standalone.cuh: the host side of a model that `mixc emit` wrote out.
 *
 * model.cu describes the model in tables (its buffers, its steps in schedule
 * order: a kernel launch or a cuBLASLt product, the products decoded as mixc
 * decodes them) and includes this file, which runs them with the CUDA
 * runtime and cuBLASLt alone: one activation arena with every intermediate
 * at its planned offset, a buffer per input and weight, one stream, the
 * forward pass captured once into a CUDA graph and replayed (define
 * MXS_NO_GRAPHS to launch step by step). Every copy and launch goes on the
 * model's stream and is waited for there: the stream does not wait for the
 * legacy default stream, so a plain cudaMemcpy (which may return before a
 * copy from pageable memory has landed) could race the next forward pass.
 * Each call makes the model's device current first, as the caller's thread
 * may have switched to another (or be another thread). Products follow
 * mixc's own cuBLASLt path: row-major y = act(op(A) op(B) + bias + C) is
 * the column-major y^T = op(B)^T op(A)^T, so cuBLASLt's A is our B and its
 * bias runs along our columns; arithmetic is f32 whatever the storage.
 * As there (runtime/blas.c), a product with no algorithm for its bias
 * epilogue takes the bias as C instead, and a batch over MXS_MAX_BATCH runs
 * in chunks. */
#ifndef MXS_STANDALONE_CUH
#define MXS_STANDALONE_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "standalone_tables.h"

struct mxs_step {
    const void *fn;    /* the kernel; NULL for a product */
    const char *name;
    unsigned grid[3], block[3];
    unsigned smem;
    int first_arg, n_args; /* in the model's args table: buffer per kernel argument */
    int gemm;          /* the product, -1 for a kernel */
};

/* The most products one cublasLtMatmul takes in a strided batch (a limit
 * other users of cuBLASLt report: batch counts from 2^16 on are refused);
 * a larger batch runs in chunks. */
#ifndef MXS_MAX_BATCH
#define MXS_MAX_BATCH 65535
#endif

typedef struct mxs_plan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t layout[4]; /* cuBLASLt's A, B, C, D */
    cublasLtMatmulAlgo_t algo;
    char *p[4];                       /* their first matrices */
    long long outer, outer_bytes[4];
    int has_c;
    /* Batches over MXS_MAX_BATCH: `chunks` calls of `chunk` products per
     * outer index, chunk_bytes[i] apart, then `rest`, a plan of its own for
     * what is left (NULL when nothing is). */
    long long chunk, chunks, chunk_bytes[4];
    struct mxs_plan *rest;
} mxs_plan;

typedef struct {
    const mxs_desc *d;
    char error[512];
    char *arena;
    void **ptr;        /* per buffer */
    void **argv;       /* per kernel argument: the buffer's address ... */
    void **argp;       /* ... and a pointer to it, cudaLaunchKernel's args */
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;
    mxs_plan *plans;
    cudaGraphExec_t graph;
    int device;
    int weights_loaded;
} mxs_model;

#include "standalone_host.h"

static const size_t mxs_workspace_bytes = 32u << 20;

static int mxs_cuda(mxs_model *m, cudaError_t e, const char *what) {
    return e == cudaSuccess ? 0 : mxs_fail(m, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

static int mxs_lt(mxs_model *m, cublasStatus_t s, const char *what) {
    return s == CUBLAS_STATUS_SUCCESS ? 0 : mxs_fail(m, "%s: cuBLAS status %d", what, (int)s);
}

/* Makes the model's device the calling thread's current one. */
static int mxs_use_device(mxs_model *m) { return mxs_cuda(m, cudaSetDevice(m->device), "cudaSetDevice"); }

static cudaDataType mxs_cuda_type(int t) { return t == MXS_F16 ? CUDA_R_16F : t == MXS_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

/* ---- products ---------------------------------------------------------------------- */

static int mxs_layout(mxs_model *m, cublasLtMatrixLayout_t *l, int dtype, long long rows, long long cols,
                      long long ld, long long batch, long long stride) {
    int count = (int)batch;
    return mxs_lt(m, cublasLtMatrixLayoutCreate(l, mxs_cuda_type(dtype), (uint64_t)rows, (uint64_t)cols, ld),
                  "cublasLtMatrixLayoutCreate") ||
           mxs_lt(m, cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
                  "BATCH_COUNT") ||
           mxs_lt(m,
                  cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                   sizeof stride),
                  "STRIDED_BATCH_OFFSET");
}

static unsigned mxs_alignment(const char *p) {
    unsigned a = 256;
    while (a > 1 && (uintptr_t)p % a)
        a /= 2;
    return a;
}

/* The descriptors, not the plan: redone when the bias moves into C. */
static void mxs_plan_clear(mxs_plan *pl) {
    if (pl->op)
        cublasLtMatmulDescDestroy(pl->op);
    for (int k = 0; k < 4; k++)
        if (pl->layout[k])
            cublasLtMatrixLayoutDestroy(pl->layout[k]);
    pl->op = NULL;
    memset(pl->layout, 0, sizeof pl->layout);
}

/* What pl holds (pl itself is the caller's). */
static void mxs_plan_destroy(mxs_plan *pl) {
    mxs_plan_clear(pl);
    if (pl->rest)
        mxs_plan_destroy(pl->rest);
    free(pl->rest);
    pl->rest = NULL;
}

/* The descriptors of pl->chunk products of g: the bias in the epilogue, or
 * (bias_in_c) as C, its one row repeated (leading dimension 0) and added
 * with beta = 1, the activation still the epilogue's. C and D are read as
 * stored: mixc's decoder never makes a transposed residual or result. */
static int mxs_describe(mxs_model *m, const mxs_gemm *g, int bias_in_c, mxs_plan *pl) {
    size_t es = mxs_dtype_size(g->dtype);
    cublasOperation_t ta = g->b.trans ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g->a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    int bias = g->bias >= 0 && !bias_in_c;
    cublasLtEpilogue_t ep = g->act == MXS_ACT_RELU        ? (bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU)
                            : g->act == MXS_ACT_GELU_TANH ? (bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU)
                                                          : (bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
    if (mxs_lt(m, cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate") ||
        mxs_lt(m, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "TRANSA") ||
        mxs_lt(m, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "TRANSB") ||
        mxs_lt(m, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep), "EPILOGUE"))
        return 1;
    if (bias) {
        const void *ptr = m->ptr[g->bias];
        long long stride = 0;
        if (mxs_lt(m, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ptr, sizeof ptr),
                   "BIAS_POINTER") ||
            mxs_lt(m,
                   cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &stride,
                                                  sizeof stride),
                   "BIAS_BATCH_STRIDE"))
            return 1;
    }
    pl->has_c = g->c.buffer >= 0 || bias_in_c;
    const mxs_operand *c = g->c.buffer >= 0 ? &g->c : &g->y;
    if (mxs_layout(m, &pl->layout[0], g->dtype, g->b.trans ? g->k : g->n, g->b.trans ? g->n : g->k, g->b.ld,
                   pl->chunk, g->b.batch_stride) ||
        mxs_layout(m, &pl->layout[1], g->dtype, g->a.trans ? g->m : g->k, g->a.trans ? g->k : g->m, g->a.ld,
                   pl->chunk, g->a.batch_stride) ||
        mxs_layout(m, &pl->layout[2], g->dtype, g->n, g->m, bias_in_c ? 0 : c->ld, pl->chunk,
                   bias_in_c ? 0 : c->batch_stride) ||
        mxs_layout(m, &pl->layout[3], g->dtype, g->n, g->m, g->y.ld, pl->chunk, g->y.batch_stride))
        return 1;
    const mxs_operand *ops[4] = {&g->b, &g->a, c, &g->y};
    for (int i = 0; i < 4; i++) {
        pl->p[i] = (char *)m->ptr[ops[i]->buffer] + ops[i]->offset * (long long)es;
        pl->outer_bytes[i] = ops[i]->outer_stride * (long long)es;
        pl->chunk_bytes[i] = pl->chunk * ops[i]->batch_stride * (long long)es;
    }
    if (bias_in_c)
        pl->p[2] = (char *)m->ptr[g->bias], pl->outer_bytes[2] = pl->chunk_bytes[2] = 0;
    return 0;
}

/* The algorithm cuBLASLt's heuristic puts first for pl's descriptors. */
static int mxs_choose_algo(mxs_model *m, const mxs_gemm *g, mxs_plan *pl) {
    cublasLtMatmulPreference_t pref;
    if (mxs_lt(m, cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate"))
        return 1;
    uint64_t ws = mxs_workspace_bytes;
    cublasStatus_t s =
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    static const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++) { /* a slice may start anywhere */
        unsigned a = mxs_alignment(pl->p[i]);
        for (long long o = 1; o < pl->outer && pl->outer_bytes[i]; o++)
            if (mxs_alignment(pl->p[i] + o * pl->outer_bytes[i]) < a)
                a = mxs_alignment(pl->p[i] + o * pl->outer_bytes[i]);
        s = cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &a, sizeof a);
    }
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(m->lt, pl->op, pl->layout[0], pl->layout[1], pl->layout[2],
                                           pl->layout[3], pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || found < 1)
        return mxs_fail(m, "cuBLASLt has no algorithm for a [%lld x %lld] x [%lld x %lld] product (status %d)", g->m,
                        g->k, g->k, g->n, (int)s);
    pl->algo = result.algo;
    return 0;
}

static int mxs_plan_gemm(mxs_model *m, const mxs_gemm *g, mxs_plan *pl) {
    pl->outer = g->outer;
    pl->chunk = g->batch < MXS_MAX_BATCH ? g->batch : MXS_MAX_BATCH;
    pl->chunks = g->batch / pl->chunk;
    if (mxs_describe(m, g, 0, pl))
        return 1;
    int failed = mxs_choose_algo(m, g, pl);
    if (failed && g->bias >= 0 && g->c.buffer < 0) {
        /* Some shapes have no algorithm with a bias epilogue (a product of
         * one row, as a classifier's head): the same sum with the bias as C,
         * which is free when there is no residual. Failing that, the error
         * is the first try's. */
        char first[sizeof m->error];
        memcpy(first, m->error, sizeof first);
        mxs_plan_clear(pl);
        if (mxs_describe(m, g, 1, pl))
            return 1;
        failed = mxs_choose_algo(m, g, pl);
        if (failed)
            memcpy(m->error, first, sizeof first);
    }
    long long rest = g->batch - pl->chunks * pl->chunk;
    if (!failed && rest > 0) { /* the products the chunks leave, its operands that many batches on */
        mxs_gemm tail = *g;
        tail.batch = rest;
        mxs_operand *ops[4] = {&tail.a, &tail.b, &tail.c, &tail.y};
        for (int i = 0; i < 4; i++)
            ops[i]->offset += pl->chunks * pl->chunk * ops[i]->batch_stride;
        pl->rest = (mxs_plan *)calloc(1, sizeof *pl->rest);
        failed = pl->rest ? mxs_plan_gemm(m, &tail, pl->rest) : mxs_fail(m, "out of memory");
    }
    return failed;
}

static int mxs_run_gemm(mxs_model *m, const mxs_plan *pl) {
    const float one = 1.0f, zero = 0.0f;
    for (long long o = 0; o < pl->outer; o++)
        for (long long q = 0; q < pl->chunks; q++) {
            char *p[4];
            for (int i = 0; i < 4; i++)
                p[i] = pl->p[i] + o * pl->outer_bytes[i] + q * pl->chunk_bytes[i];
            if (mxs_lt(m,
                       cublasLtMatmul(m->lt, pl->op, &one, p[0], pl->layout[0], p[1], pl->layout[1],
                                      pl->has_c ? &one : &zero, p[2], pl->layout[2], p[3], pl->layout[3], &pl->algo,
                                      m->workspace, mxs_workspace_bytes, m->stream),
                       "cublasLtMatmul"))
                return 1;
        }
    return pl->rest ? mxs_run_gemm(m, pl->rest) : 0;
}

/* ---- the model --------------------------------------------------------------------- */

static void mxs_destroy(mxs_model *m) {
    if (!m)
        return;
    if (m->stream) /* what follows was made on the model's device */
        cudaSetDevice(m->device);
    if (m->graph)
        cudaGraphExecDestroy(m->graph);
    for (int i = 0; m->plans && i < m->d->n_gemms; i++)
        mxs_plan_destroy(&m->plans[i]);
    for (int i = 0; m->ptr && i < m->d->n_buffers; i++)
        if (m->d->buffers[i].kind != MXS_ARENA && m->ptr[i])
            cudaFree(m->ptr[i]);
    if (m->arena)
        cudaFree(m->arena);
    if (m->workspace)
        cudaFree(m->workspace);
    if (m->lt)
        cublasLtDestroy(m->lt);
    if (m->stream)
        cudaStreamDestroy(m->stream);
    free(m->ptr), free(m->argv), free(m->argp), free(m->plans);
    free(m);
}

/* The model on GPU 0; on failure *out is NULL and err (when not NULL) says why. */
static int mxs_create(const mxs_desc *d, mxs_model **out, char *err, size_t err_size) {
    *out = NULL;
    mxs_model *m = mxs_new(d, err, err_size);
    if (!m)
        return 1;
    int n_args = mxs_n_args(d), devices = 0;
    m->ptr = (void **)calloc((size_t)d->n_buffers + 1, sizeof *m->ptr);
    m->argv = (void **)calloc((size_t)n_args + 1, sizeof *m->argv);
    m->argp = (void **)calloc((size_t)n_args + 1, sizeof *m->argp);
    m->plans = (mxs_plan *)calloc((size_t)d->n_gemms + 1, sizeof *m->plans);
    int failed = !m->ptr || !m->argv || !m->argp || !m->plans ? mxs_fail(m, "out of memory") : 0;
    failed = failed || mxs_cuda(m, cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
    failed = failed || (devices < 1 && mxs_fail(m, "no CUDA device"));
    failed = failed || mxs_use_device(m); /* m->device: 0 */
    failed = failed || mxs_cuda(m, cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    failed = failed || mxs_lt(m, cublasLtCreate(&m->lt), "cublasLtCreate");
    failed = failed || mxs_cuda(m, cudaMalloc(&m->workspace, mxs_workspace_bytes), "cudaMalloc (workspace)");
    failed = failed || mxs_cuda(m, cudaMalloc((void **)&m->arena, (size_t)d->arena_bytes + 1), "cudaMalloc (arena)");
    for (int i = 0; !failed && i < d->n_buffers; i++) {
        const mxs_buffer *b = &d->buffers[i];
        if (b->kind == MXS_ARENA)
            m->ptr[i] = m->arena + b->offset;
        else
            failed = mxs_cuda(m, cudaMalloc(&m->ptr[i], mxs_bytes(b) + 1), b->name);
    }
    for (int i = 0; !failed && i < n_args; i++) {
        m->argv[i] = m->ptr[d->args[i]];
        m->argp[i] = &m->argv[i];
    }
    for (int i = 0; !failed && i < d->n_steps; i++) { /* shared memory beyond the 48 KiB default */
        const mxs_step *s = &d->steps[i];
        if (s->fn && s->smem > 48 * 1024)
            failed = mxs_cuda(m, cudaFuncSetAttribute(s->fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s->smem),
                              s->name);
    }
    for (int i = 0; !failed && i < d->n_gemms; i++)
        failed = mxs_plan_gemm(m, &d->gemms[i], &m->plans[i]);
    if (failed) {
        if (err)
            snprintf(err, err_size, "%s: %s", d->name, m->error);
        mxs_destroy(m);
        return 1;
    }
    *out = m;
    return 0;
}

/* Copies on the model's stream, waited for: ordered with the forward passes
 * whatever the default stream is, and src (staged host memory) is free to go
 * when this returns. */
static int mxs_to_device(mxs_model *m, void *dst, const void *src, size_t bytes, const char *what) {
    return mxs_use_device(m) ||
           mxs_cuda(m, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, m->stream), what) ||
           mxs_cuda(m, cudaStreamSynchronize(m->stream), what);
}

static int mxs_from_device(mxs_model *m, void *dst, const void *src, size_t bytes, const char *what) {
    return mxs_use_device(m) ||
           mxs_cuda(m, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, m->stream), what) ||
           mxs_cuda(m, cudaStreamSynchronize(m->stream), what);
}

/* ---- the forward pass -------------------------------------------------------------- */

static int mxs_enqueue(mxs_model *m) {
    for (int i = 0; i < m->d->n_steps; i++) {
        const mxs_step *s = &m->d->steps[i];
        if (s->gemm >= 0) {
            if (mxs_run_gemm(m, &m->plans[s->gemm]))
                return 1;
            continue;
        }
        dim3 grid(s->grid[0], s->grid[1], s->grid[2]), block(s->block[0], s->block[1], s->block[2]);
        if (mxs_cuda(m, cudaLaunchKernel(s->fn, grid, block, m->argp + s->first_arg, s->smem, m->stream), s->name))
            return 1;
    }
    return 0;
}

/* One forward pass; waits for it. */
static int mxs_forward(mxs_model *m) {
    if (!m->weights_loaded)
        return mxs_fail(m, "no weights: load them first");
    if (mxs_use_device(m))
        return 1;
#ifdef MXS_NO_GRAPHS
    if (mxs_enqueue(m))
        return 1;
#else
    if (!m->graph) {
        cudaGraph_t g = NULL;
        if (mxs_cuda(m, cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture"))
            return 1;
        int failed = mxs_enqueue(m);
        cudaError_t e = cudaStreamEndCapture(m->stream, &g);
        failed = failed || mxs_cuda(m, e, "cudaStreamEndCapture");
        failed = failed || mxs_cuda(m, cudaGraphInstantiate(&m->graph, g, 0), "cudaGraphInstantiate");
        if (g)
            cudaGraphDestroy(g);
        if (failed)
            return 1;
    }
    if (mxs_cuda(m, cudaGraphLaunch(m->graph, m->stream), "cudaGraphLaunch"))
        return 1;
#endif
    return mxs_cuda(m, cudaStreamSynchronize(m->stream), "the forward pass");
}

#endif
