/* ref_scan.c: reference semantics of selective_scan (docs/ops.md, "The
 * selective scan"; MODELS.md, "S6"). The state h and the sum over n are f64,
 * so that every backend's f32 scan is compared with something better. */
#include <stdlib.h>

#include "ops_impl.h"
#include "ref.h"

typedef struct {
    int64_t batch, channels, groups, N, L;
    bool reverse, softplus;
} scan_shape;

/* One (batch, channel) sequence: u, delta, z point at its L steps, B and C
 * at its group's [N, L] block, h at its N states (holding h0, or zeros). */
static void scan_sequence(const scan_shape *s, const float *u, const float *delta,
                          const float *A, const float *B, const float *C, double D,
                          const float *z, double delta_bias, double *h, float *y) {
    for (int64_t step = 0; step < s->L; step++) {
        int64_t l = s->reverse ? s->L - 1 - step : step;
        double d = delta[l] + delta_bias;
        if (s->softplus)
            d = ref_softplus(d, 20);
        double sum = 0;
        for (int64_t n = 0; n < s->N; n++) {
            h[n] = exp(d * A[n]) * h[n] + d * B[n * s->L + l] * u[l];
            sum += h[n] * C[n * s->L + l];
        }
        double out = sum + D * u[l];
        if (z)
            out *= z[l] * ref_sigmoid(z[l]);
        y[l] = (float)out;
    }
}

void ref_selective_scan(const mx_graph *g, int node, const float *const *in, float *const *out) {
    const mx_type *ut = mx_node_input_type(g, node, MX_SCAN_U);
    const mx_type *bt = mx_node_input_type(g, node, MX_SCAN_B);
    scan_shape s = {
        .batch = ut->dim[0], .channels = ut->dim[1], .groups = bt->dim[1],
        .N = bt->dim[2], .L = ut->dim[2],
        .reverse = mx_node_int(g, node, MX_A_REVERSE) != 0,
        .softplus = mx_node_int(g, node, MX_A_SOFTPLUS) != 0,
    };
    const float *D = in[MX_SCAN_D], *z = in[MX_SCAN_Z], *bias = in[MX_SCAN_DELTA_BIAS];
    const float *h0 = in[MX_SCAN_H0];
    float *hN = g->nodes[node].n_out > 1 ? out[1] : NULL;
    int64_t per_group = s.channels / s.groups;
    double *h = malloc((size_t)s.N * sizeof *h);
    assert(h);
    for (int64_t b = 0; b < s.batch; b++)
        for (int64_t c = 0; c < s.channels; c++) {
            int64_t seq = (b * s.channels + c) * s.L;
            int64_t block = (b * s.groups + c / per_group) * s.N * s.L;
            int64_t state = (b * s.channels + c) * s.N;
            for (int64_t n = 0; n < s.N; n++)
                h[n] = h0 ? h0[state + n] : 0;
            scan_sequence(&s, in[MX_SCAN_U] + seq, in[MX_SCAN_DELTA] + seq, in[MX_SCAN_A] + c * s.N,
                          in[MX_SCAN_B] + block, in[MX_SCAN_C] + block, D ? D[c] : 0,
                          z ? z + seq : NULL, bias ? bias[c] : 0, h, out[0] + seq);
            for (int64_t n = 0; hN && n < s.N; n++)
                hN[state + n] = (float)h[n];
        }
    free(h);
}
