/* gemm_cases.h: random products as mixc's decoder describes them
 * (standalone_tables.h's mxs_gemm: transposes, offsets, padded rows,
 * broadcast batches, outer batches, bias, residual, activations) and an f64
 * loop over the same description, for the tests of the emitted projects'
 * products: test_emit_blas.cc (CUDA, C++) and test_emit_cpu_products.c
 * (CPU, C). Include after standalone_tables.h and check.h. */
#ifndef MX_TESTS_GEMM_CASES_H
#define MX_TESTS_GEMM_CASES_H

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static long long pick(long long lo, long long hi) { return lo + (long long)(check_rng_u64() % (uint64_t)(hi - lo + 1)); }

enum { A, B, C, Y, BIAS, N_BUFFERS };

/* An operand of rows x cols per product: maybe transposed, offset, its rows
 * padded, its batches (and outer batches) broadcast when allowed. */
static void operand(mxs_operand *o, int buffer, long long rows, long long cols, const mxs_gemm *g, int can_trans,
                    int can_broadcast) {
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

/* A product as mixc's decoder makes one (the residual laid out as y). */
static mxs_gemm random_gemm(long long max_batch, long long m) {
    mxs_gemm g;
    memset(&g, 0, sizeof g);
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

/* Buffers for g (numel[i] elements: what g touches and 4 more), filled
 * with numbers in [-2, 2); returns y's copy with the reference's results
 * where g writes (what the product leaves alone stays). */
static double *case_buffers(const mxs_gemm *g, float *data[N_BUFFERS], long long numel[N_BUFFERS]) {
    numel[A] = extent(&g->a, g, g->m, g->k), numel[B] = extent(&g->b, g, g->k, g->n);
    numel[C] = g->c.buffer >= 0 ? extent(&g->c, g, g->m, g->n) : 1, numel[Y] = extent(&g->y, g, g->m, g->n);
    numel[BIAS] = g->n;
    for (int i = 0; i < N_BUFFERS; i++) {
        numel[i] += 4;
        data[i] = (float *)malloc((size_t)numel[i] * sizeof(float));
        check_fill(data[i], numel[i], -2, 2);
    }
    double *want = (double *)malloc((size_t)numel[Y] * sizeof(double));
    for (long long j = 0; j < numel[Y]; j++)
        want[j] = data[Y][j];
    reference(g, data, want);
    return want;
}

static void case_free(float *data[N_BUFFERS], double *want) {
    for (int i = 0; i < N_BUFFERS; i++)
        free(data[i]);
    free(want);
}

#endif
