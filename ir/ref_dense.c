/* ref_dense.c: reference semantics of the dense products and convolutions
 * (docs/ops.md, "Dense products"). Every dot product is summed in f64. */
#include "ops_impl.h"
#include "ref.h"

static const mx_type *output_type(const mx_graph *g, int node) {
    return mx_value_type(g, mx_node_output(g, node, 0));
}

/* y = x W^T + b over the rows of x. */
void ref_linear(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const float *x = in[0], *W = in[1], *bias = in[2];
    const mx_type *wt = mx_node_input_type(g, node, 1);
    int64_t N = wt->dim[0], K = wt->dim[1];
    int64_t rows = mx_type_numel(mx_node_input_type(g, node, 0)) / K;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t n = 0; n < N; n++) {
            double acc = bias ? bias[n] : 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)x[r * K + k] * W[n * K + k];
            out[0][r * N + n] = (float)acc;
        }
}

/* One [M, K] x [K, N] product per broadcast batch index: the walk runs over
 * the output's batch dims and finds each operand's matrix. */
void ref_matmul(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *a = mx_node_input_type(g, node, 0), *b = mx_node_input_type(g, node, 1);
    const mx_type *y = output_type(g, node);
    int64_t M = a->dim[a->rank - 2], K = a->dim[a->rank - 1], N = b->dim[b->rank - 1];
    ref_walk w;
    ref_walk_init(&w, y->rank - 2, y->dim);
    ref_walk_broadcast(&w, 0, y->rank - 2, y->dim, M * N);
    ref_walk_broadcast(&w, 1, a->rank - 2, a->dim, M * K);
    ref_walk_broadcast(&w, 2, b->rank - 2, b->dim, K * N);
    for (int64_t e = 0; e < w.count; e++, ref_walk_next(&w)) {
        const float *A = in[0] + w.off[1], *B = in[1] + w.off[2];
        float *Y = out[0] + w.off[0];
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)A[m * K + k] * B[k * N + n];
                Y[m * N + n] = (float)acc;
            }
    }
}

void ref_conv2d(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const float *x = in[0], *w = in[1], *bias = in[2];
    const mx_type *xt = mx_node_input_type(g, node, 0), *wt = mx_node_input_type(g, node, 1);
    const mx_type *yt = output_type(g, node);
    int64_t B = xt->dim[0], C = xt->dim[1], H = xt->dim[2], W = xt->dim[3];
    int64_t O = wt->dim[0], KH = wt->dim[2], KW = wt->dim[3];
    int64_t OH = yt->dim[2], OW = yt->dim[3];
    int64_t stride = mx_node_int(g, node, MX_A_STRIDE), pad = mx_node_int(g, node, MX_A_PAD);
    float *y = out[0];
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < OH; i++)
                for (int64_t j = 0; j < OW; j++) {
                    double acc = bias ? bias[o] : 0;
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t u = 0; u < KH; u++)
                            for (int64_t v = 0; v < KW; v++) {
                                int64_t r = i * stride - pad + u, s = j * stride - pad + v;
                                if (r >= 0 && r < H && s >= 0 && s < W)
                                    acc += (double)x[((b * C + c) * H + r) * W + s] *
                                           w[((o * C + c) * KH + u) * KW + v];
                            }
                    *y++ = (float)acc;
                }
}

/* A depthwise KH x KW convolution of [B, C, H, W] that keeps H and W, padded
 * with zeros by pad_h rows on top and pad_w columns on the left (the rest on
 * the other sides): both depthwise ops are this. */
typedef struct {
    int64_t B, C, H, W, KH, KW, pad_h, pad_w;
} depthwise_shape;

static void depthwise(const depthwise_shape *s, const float *x, const float *w, const float *bias,
                      float *y) {
    for (int64_t bc = 0; bc < s->B * s->C; bc++) {
        int64_t c = bc % s->C;
        const float *plane = x + bc * s->H * s->W, *kernel = w + c * s->KH * s->KW;
        for (int64_t i = 0; i < s->H; i++)
            for (int64_t j = 0; j < s->W; j++) {
                double acc = bias ? bias[c] : 0;
                for (int64_t u = 0; u < s->KH; u++)
                    for (int64_t v = 0; v < s->KW; v++) {
                        int64_t r = i - s->pad_h + u, q = j - s->pad_w + v;
                        if (r >= 0 && r < s->H && q >= 0 && q < s->W)
                            acc += (double)kernel[u * s->KW + v] * plane[r * s->W + q];
                    }
                *y++ = (float)acc;
            }
    }
}

/* x [B, d1, d2] along axis 2 ([B, C, L]) or 1 ([B, L, C]); weights [C, K]
 * or [K, d1, d2] (one set per position), bias [C] or [d1, d2]. Sums in f64
 * in tap order, as depthwise() does. */
void ref_dwconv1d(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *x = mx_node_input_type(g, node, 0), *wt = mx_node_input_type(g, node, 1);
    int axis = ref_node_axis(g, node);
    bool by_position = wt->rank == 3;
    int64_t B = x->dim[0], d1 = x->dim[1], d2 = x->dim[2], K = by_position ? wt->dim[0] : wt->dim[1];
    int64_t L = x->dim[axis], step = axis == 2 ? 1 : d2; /* along the walk */
    int64_t pad = mx_node_int(g, node, MX_A_MODE) == MX_CONV_CAUSAL ? K - 1 : (K - 1) / 2;
    const float *w = in[1], *bias = in[2];
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < d1 * d2; i++) {
            int64_t c = axis == 2 ? i / d2 : i % d2, l = axis == 2 ? i % d2 : i / d2;
            double acc = bias ? bias[by_position ? i : c] : 0;
            for (int64_t k = 0; k < K; k++) {
                int64_t q = l - pad + k;
                if (q >= 0 && q < L)
                    acc += (double)(by_position ? w[k * d1 * d2 + i] : w[c * K + k]) *
                           in[0][b * d1 * d2 + i + (q - l) * step];
            }
            out[0][b * d1 * d2 + i] = (float)acc;
        }
}

void ref_dwconv2d(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *x = mx_node_input_type(g, node, 0);
    int64_t K = mx_node_input_type(g, node, 1)->dim[1];
    int64_t pad = (K - 1) / 2;
    depthwise_shape s = {x->dim[0], x->dim[1], x->dim[2], x->dim[3], K, K, pad, pad};
    depthwise(&s, in[0], in[1], in[2], out[0]);
}
