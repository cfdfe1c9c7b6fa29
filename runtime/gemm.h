/* gemm.h: a matmul group as one strided, batched matrix product.
 *
 * Matmul groups are not generated: cuBLASLt runs them on the GPU (blas.h) and
 * a host loop under emulation. Both take the same description, decoded here
 * from the group's nodes: the anchor (linear or matmul), the folded views on
 * its operands (docs/passes.md: contiguous reshapes, at most one "gemm map" --
 * a transpose of the last two dims or a step-1 slice/split of the last axis --
 * then reshapes that keep the last two dims), and the epilogue chain that
 * fuse let join (add of a bias or a residual, relu, gelu). The decoder only
 * accepts what cuBLASLt computes in one call,
 *     y = act(op(A) op(B) + bias + C),
 * and says why when a group is outside that (gelu with erf, an add after the
 * activation, a residual read through a transpose, ...).
 *
 * All matrices are row-major in elements of the group's one storage dtype;
 * offsets, leading dimensions and strides count elements. Element (i, j) of
 * batch (o, t) of an operand X lives at
 *     X.offset + o * X.outer_stride + t * X.batch_stride
 *       + (X.trans ? j * X.ld + i : i * X.ld + j)
 * where a stride of 0 broadcasts. Two batch levels (outer x batch) cover
 * matmul's broadcasting of leading dims; cuBLASLt runs one strided-batched
 * call per outer index. */
#ifndef MX_GEMM_H
#define MX_GEMM_H

#include "program.h"

typedef enum { MX_GEMM_ACT_NONE, MX_GEMM_ACT_RELU, MX_GEMM_ACT_GELU_TANH } mx_gemm_act;

typedef struct {
    int value;      /* the graph value whose buffer holds it; MX_NONE: absent */
    int64_t offset; /* elements from the buffer's start */
    int64_t ld;     /* elements between consecutive stored rows */
    bool trans;     /* stored transposed: element (i, j) at j * ld + i */
    int64_t batch_stride, outer_stride; /* elements; 0 broadcasts */
} mx_gemm_operand;

typedef struct {
    int group;
    mx_dtype dtype;             /* storage of every operand; arithmetic is f32 */
    int64_t m, n, k;            /* y[m, n] = A[m, k] B[k, n] per batch */
    int64_t batch, outer;       /* batch counts, >= 1 */
    mx_gemm_operand a, b, c, y; /* c: the residual added (beta = 1), value MX_NONE if none */
    int bias;                   /* a [n] value added to every row, MX_NONE if none */
    mx_gemm_act act;            /* applied last, after bias and residual */
} mx_gemm;

/* The element index of (i, j) of batch (outer, batch) of x: the formula above. */
static inline int64_t mx_gemm_index(const mx_gemm_operand *x, int64_t outer, int64_t batch, int64_t i, int64_t j) {
    return x->offset + outer * x->outer_stride + batch * x->batch_stride + (x->trans ? j * x->ld + i : i * x->ld + j);
}

/* Decodes matmul group k of a fused program. An error names the group and
 * what cuBLASLt cannot do ("group 3 (matmul, anchor %15): ..."). */
mx_status mx_gemm_decode(const mx_program *p, int group, mx_gemm *out, mx_diag *d);

/* What makes two matmul groups the same call: shapes, layouts, storage,
 * epilogue and which operands are weights, hashed; the CPU's tuned split of
 * a product (tune.h) applies wherever the same product runs. */
uint64_t mx_gemm_identity(const mx_program *p, const mx_gemm *gm);

/* Runs the description on the host over f32 buffers (b->data[value], which
 * must all be allocated), with f64 sums: what the emulation executor uses for
 * matmul groups, and how tests check a decoding against the reference. */
void mx_gemm_run_host(const mx_gemm *gm, mx_buffers *b);

#endif
