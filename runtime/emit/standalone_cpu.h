/* standalone_cpu.h: the host side of a model that `mixc emit --target cpu`
 * wrote out, in C11 with pthreads.
 *
 * model.c describes the model in tables (standalone_tables.h; its steps in
 * schedule order: a kernel's blocks or a product) and includes this file,
 * which runs them: one activation arena with every intermediate at its
 * planned offset, a buffer per input and weight, each kernel's blocks split
 * into contiguous shares over a pool of MXS_THREADS threads (default: the
 * online CPUs; the caller is one of them): standalone_pool.h, the pool
 * mixc's cpu device runs them on. The kernels are kernels.*.o, the object
 * files LLVM emitted for this CPU; each runs blocks lo .. hi-1 of a grid
 * and takes a pointer to each of its buffers' pointers. Products are
 * row-major y = act(op(A) op(B) + bias + C) in f32 whatever the storage, in
 * plain C, or through CBLAS's sgemm when built with -DMXS_CBLAS. */
#ifndef MXS_STANDALONE_CPU_H
#define MXS_STANDALONE_CPU_H

#include <math.h>
#include <stdint.h>
#include <unistd.h>
#ifdef MXS_CBLAS
#include <cblas.h>
#endif

#include "standalone_pool.h"
#include "standalone_split.h"
#include "standalone_tables.h"

/* A kernel of kernels.*.o: blocks lo .. hi-1 of a grid of `grid` blocks. */
typedef void (*mxs_kernel)(void **params, int64_t lo, int64_t hi, int32_t grid);

struct mxs_step {
    mxs_kernel fn;     /* NULL for a product */
    const char *name;
    long long blocks;  /* the blocks one launch runs */
    long long grain;   /* the fewest blocks worth a thread */
    int first_arg, n_args; /* in the model's args table: buffer per kernel argument */
    int gemm;          /* the product, -1 for a kernel */
};

typedef struct {
    const mxs_desc *d;
    char error[512];
    char *arena;
    void **ptr;        /* per buffer */
    void **argv;       /* per kernel argument: the buffer's address */
    void **params;     /* per kernel argument: the address of its argv entry */
    int weights_loaded;
    mxs_pool pool;
} mxs_model;

#include "standalone_host.h"

static int mxs_to_device(mxs_model *m, void *dst, const void *src, size_t bytes, const char *what) {
    (void)m, (void)what;
    memcpy(dst, src, bytes);
    return 0;
}

static int mxs_from_device(mxs_model *m, void *dst, const void *src, size_t bytes, const char *what) {
    (void)m, (void)what;
    memcpy(dst, src, bytes);
    return 0;
}

/* ---- kernels ----------------------------------------------------------------------- */

/* A launch's task for the pool: blocks lo .. hi-1 of the step. */
typedef struct {
    const mxs_step *step;
    void **params;
} mxs_launch_task;

static void mxs_run_blocks(void *ctx, int64_t lo, int64_t hi) {
    const mxs_launch_task *t = (const mxs_launch_task *)ctx;
    t->step->fn(t->params, lo, hi, (int32_t)t->step->blocks);
}

/* The step's blocks in min(threads, blocks / grain) contiguous shares. */
static int mxs_launch(mxs_model *m, const mxs_step *s) {
    if (s->blocks > INT32_MAX)
        return mxs_fail(m, "%s: %lld blocks, more than a grid holds", s->name, s->blocks);
    mxs_launch_task t = {s, m->params + s->first_arg};
    mxs_pool_run(&m->pool, s->blocks, s->grain, mxs_run_blocks, &t);
    return 0;
}

/* ---- products ---------------------------------------------------------------------- */

/* Buffer b as f32: its own memory, or an f32 copy (f16 / bf16 storage). */
typedef struct {
    int buffer;
    float *data;
    int copy;
} mxs_view;

static float *mxs_as_f32(mxs_model *m, mxs_view *views, int *n, int buffer) {
    for (int i = 0; i < *n; i++)
        if (views[i].buffer == buffer)
            return views[i].data;
    const mxs_buffer *b = &m->d->buffers[buffer];
    mxs_view *v = &views[(*n)++];
    v->buffer = buffer;
    v->copy = b->dtype != MXS_F32;
    v->data = v->copy ? (float *)malloc((size_t)b->numel * sizeof(float) + 1) : (float *)m->ptr[buffer];
    if (v->copy && v->data)
        mxs_unpack(b->dtype, m->ptr[buffer], b->numel, v->data);
    return v->data;
}

static float mxs_gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(0.797884561f * (x + 0.044715f * x * x * x))); }

/* y (rows x n, leading dimension ldy) = op(a) op(b) + beta * y, a and y
 * at the first of the rows. In plain C: B as k rows of n (a transposed B
 * is packed so, into packed), then four rows of y at a time, each row of
 * B loaded once for the four, the inner loop over j contiguous (vectorised
 * without reassociating sums). */
static void mxs_product(const mxs_gemm *g, long long rows, const float *a, const float *b, float *y, float beta,
                        float *packed) {
#ifdef MXS_CBLAS
    (void)packed;
    cblas_sgemm(CblasRowMajor, g->a.trans ? CblasTrans : CblasNoTrans, g->b.trans ? CblasTrans : CblasNoTrans,
                (int)rows, (int)g->n, (int)g->k, 1.0f, a, (int)g->a.ld, b, (int)g->b.ld, beta, y, (int)g->y.ld);
#else
    long long ldb = g->b.ld;
    if (g->b.trans) {
        for (long long p = 0; p < g->k; p++)
            for (long long j = 0; j < g->n; j++)
                packed[p * g->n + j] = b[j * g->b.ld + p];
        b = packed, ldb = g->n;
    }
    for (long long i0 = 0; i0 < rows; i0 += 4) {
        int four = rows - i0 < 4 ? (int)(rows - i0) : 4;
        float *yr[4];
        for (int r = 0; r < 4; r++) /* rows past the last alias it: computed twice, stored alike */
            yr[r] = y + (i0 + (r < four ? r : four - 1)) * g->y.ld;
        for (int r = 0; r < four && beta == 0.0f; r++)
            for (long long j = 0; j < g->n; j++)
                yr[r][j] = 0.0f;
        for (long long p = 0; p < g->k; p++) {
            float ar[4];
            for (int r = 0; r < 4; r++) {
                long long i = i0 + (r < four ? r : four - 1);
                ar[r] = g->a.trans ? a[p * g->a.ld + i] : a[i * g->a.ld + p];
            }
            const float *bp = b + p * ldb;
            if (four == 4) {
                float *y0 = yr[0], *y1 = yr[1], *y2 = yr[2], *y3 = yr[3];
                for (long long j = 0; j < g->n; j++) {
                    const float bj = bp[j];
                    y0[j] += ar[0] * bj, y1[j] += ar[1] * bj, y2[j] += ar[2] * bj, y3[j] += ar[3] * bj;
                }
            } else {
                for (int r = 0; r < four; r++)
                    for (long long j = 0; j < g->n; j++)
                        yr[r][j] += ar[r] * bp[j];
            }
        }
    }
#endif
}

/* A product group over f32 views of its buffers, cut as mxs_split_plan
 * says: `parts` shares of each product's rows. */
typedef struct {
    const mxs_gemm *g;
    const float *A, *B, *C, *bias;
    float *Y;
    long long parts, part_rows;
    atomic_int failed; /* out of memory for a packed B */
} mxs_products;

/* Rows [r0, r1) of product (o, bt): the residual, the product, the epilogue. */
static int mxs_product_rows(const mxs_products *t, long long o, long long bt, long long r0, long long r1) {
    const mxs_gemm *g = t->g;
    const float *a = t->A + g->a.offset + o * g->a.outer_stride + bt * g->a.batch_stride + (g->a.trans ? r0 : r0 * g->a.ld);
    const float *b = t->B + g->b.offset + o * g->b.outer_stride + bt * g->b.batch_stride;
    float *y = t->Y + g->y.offset + o * g->y.outer_stride + bt * g->y.batch_stride;
    float beta = 0.0f;
    if (t->C) { /* beta * C: the residual first copied into y unless it is y */
        const float *c = t->C + g->c.offset + o * g->c.outer_stride + bt * g->c.batch_stride;
        if (c != y || g->c.trans || g->c.ld != g->y.ld)
            for (long long i = r0; i < r1; i++)
                for (long long j = 0; j < g->n; j++)
                    y[i * g->y.ld + j] = g->c.trans ? c[j * g->c.ld + i] : c[i * g->c.ld + j];
        beta = 1.0f;
    }
#ifdef MXS_CBLAS
    float *packed = NULL;
#else
    float *packed = g->b.trans ? (float *)malloc((size_t)(g->k * g->n) * sizeof(float) + 1) : NULL;
    if (g->b.trans && !packed)
        return 1;
#endif
    mxs_product(g, r1 - r0, a, b, y + r0 * g->y.ld, beta, packed);
    free(packed);
    if (!t->bias && g->act == MXS_ACT_NONE)
        return 0;
    for (long long i = r0; i < r1; i++)
        for (long long j = 0; j < g->n; j++) {
            float v = y[i * g->y.ld + j] + (t->bias ? t->bias[j] : 0.0f);
            v = g->act == MXS_ACT_RELU ? (v > 0.0f ? v : 0.0f) : g->act == MXS_ACT_GELU_TANH ? mxs_gelu_tanh(v) : v;
            y[i * g->y.ld + j] = v;
        }
    return 0;
}

static void mxs_products_run(void *ctx, int64_t lo, int64_t hi) {
    mxs_products *t = (mxs_products *)ctx;
    for (int64_t q = lo; q < hi; q++) {
        long long p = q / t->parts, r0 = q % t->parts * t->part_rows;
        long long r1 = r0 + t->part_rows < t->g->m ? r0 + t->part_rows : t->g->m;
        if (r0 < r1 && mxs_product_rows(t, p / t->g->batch, p % t->g->batch, r0, r1))
            atomic_store(&t->failed, 1);
    }
}

#ifdef MXS_CBLAS
/* OpenBLAS's (where the CBLAS is OpenBLAS): a split product's shares each
 * call it single-threaded, as mixc's cpu device does. */
extern void openblas_set_num_threads(int threads) __attribute__((weak));
#endif

static int mxs_run_gemm(mxs_model *m, const mxs_gemm *g) {
    if (g->y.trans)
        return mxs_fail(m, "a product with a transposed result is not supported");
    mxs_view views[5];
    int n = 0;
    float *A = mxs_as_f32(m, views, &n, g->a.buffer), *B = mxs_as_f32(m, views, &n, g->b.buffer);
    float *Y = mxs_as_f32(m, views, &n, g->y.buffer);
    float *C = g->c.buffer >= 0 ? mxs_as_f32(m, views, &n, g->c.buffer) : NULL;
    float *bias = g->bias >= 0 ? mxs_as_f32(m, views, &n, g->bias) : NULL;
    int failed = !A || !B || !Y || (g->c.buffer >= 0 && !C) || (g->bias >= 0 && !bias), all_f32 = 1;
    for (int i = 0; i < n; i++)
        all_f32 &= !views[i].copy;
    long long products = g->outer * g->batch;
    mxs_split plan = mxs_split_plan(g->m, g->n, g->k, products, all_f32, m->pool.threads, g->tasks);
    mxs_products t = {g, A, B, C, bias, Y, plan.parts, plan.part_rows, 0};
    if (!failed && plan.split) {
#ifdef MXS_CBLAS
        if (openblas_set_num_threads)
            openblas_set_num_threads(1);
#endif
        mxs_pool_run(&m->pool, products * plan.parts, plan.grain, mxs_products_run, &t);
#ifdef MXS_CBLAS
        if (openblas_set_num_threads)
            openblas_set_num_threads(m->pool.threads);
#endif
    } else if (!failed) {
        mxs_pool_rest(&m->pool); /* the library's threads take the cores */
        mxs_products_run(&t, 0, products);
    }
    failed |= atomic_load(&t.failed);
    for (int i = 0; i < n; i++) {
        if (!views[i].copy)
            continue;
        const mxs_buffer *b = &m->d->buffers[views[i].buffer];
        if (!failed && views[i].buffer == g->y.buffer)
            mxs_pack(b->dtype, views[i].data, b->numel, m->ptr[views[i].buffer]);
        free(views[i].data);
    }
    return failed ? mxs_fail(m, "out of memory for a product") : 0;
}

/* ---- the model --------------------------------------------------------------------- */

static void mxs_destroy(mxs_model *m) {
    if (!m)
        return;
    mxs_pool_stop(&m->pool);
    for (int i = 0; m->ptr && i < m->d->n_buffers; i++)
        if (m->d->buffers[i].kind != MXS_ARENA)
            free(m->ptr[i]);
    free(m->arena);
    free(m->ptr), free(m->argv), free(m->params);
    free(m);
}

static void *mxs_alloc(size_t bytes) {
    void *p = NULL; /* 64-byte aligned, as a vector load likes it */
    return posix_memalign(&p, 64, bytes + 1) == 0 ? p : NULL;
}

/* The model in host memory; on failure *out is NULL and err says why. */
static int mxs_create(const mxs_desc *d, mxs_model **out, char *err, size_t err_size) {
    *out = NULL;
    mxs_model *m = mxs_new(d, err, err_size);
    if (!m)
        return 1;
    const char *env = getenv("MXS_THREADS");
    long threads = env && *env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    threads = threads < 1 ? 1 : threads > 256 ? 256 : threads;
    int n_args = mxs_n_args(d);
    m->ptr = (void **)calloc((size_t)d->n_buffers + 1, sizeof *m->ptr);
    m->argv = (void **)calloc((size_t)n_args + 1, sizeof *m->argv);
    m->params = (void **)calloc((size_t)n_args + 1, sizeof *m->params);
    m->arena = (char *)mxs_alloc((size_t)d->arena_bytes);
    int failed = !m->ptr || !m->argv || !m->params || !m->arena ? mxs_fail(m, "out of memory") : 0;
    for (int i = 0; !failed && i < d->n_buffers; i++) {
        const mxs_buffer *b = &d->buffers[i];
        m->ptr[i] = b->kind == MXS_ARENA ? m->arena + b->offset : mxs_alloc(mxs_bytes(b));
        if (!m->ptr[i])
            failed = mxs_fail(m, "out of memory for %s (%zu bytes)", b->name, mxs_bytes(b));
    }
    for (int i = 0; !failed && i < n_args; i++)
        m->argv[i] = m->ptr[d->args[i]], m->params[i] = &m->argv[i];
    if (!failed && mxs_pool_start(&m->pool, (int)threads)) /* a thread the system refuses leaves it smaller */
        failed = mxs_fail(m, "out of memory for %ld threads", threads);
    if (failed) {
        if (err)
            snprintf(err, err_size, "%s: %s", d->name, m->error);
        mxs_destroy(m);
        return 1;
    }
    *out = m;
    return 0;
}

/* One forward pass. */
static int mxs_forward(mxs_model *m) {
    if (!m->weights_loaded)
        return mxs_fail(m, "no weights: load them first");
    for (int i = 0; i < m->d->n_steps; i++) {
        const mxs_step *s = &m->d->steps[i];
        if (s->gemm >= 0 ? mxs_run_gemm(m, &m->d->gemms[s->gemm]) : mxs_launch(m, s))
            return 1;
    }
    return 0;
}

#endif
