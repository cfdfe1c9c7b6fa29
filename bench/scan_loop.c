/* scan_loop.c: the peer of bench_cpu_scan, a plain C selective scan the way
 * a hand-written CPU kernel does it (ggml's ssm_scan: per channel, per step,
 * softplus, then the N states with expf), compiled twice by the build: -O3
 * -march=native (SCAN_LOOP = scan_loop_plain) and the same with -ffast-math
 * (scan_loop_fast). Same layouts and formulas as bench_cpu_scan's graph:
 * u, dt, z, y [B, Ch, L]; A [Ch, N]; B, C [B, 1, N, L]; D, dt_bias [Ch].
 * Channels c0 .. c1-1 of every batch (a thread's share). */
#include <math.h>
#include <stdint.h>

#include "scan_loop.h"

void SCAN_LOOP(const scan_args *a, int64_t c0, int64_t c1) {
    const int64_t Ch = a->Ch, L = a->L, N = a->N;
    float h[256];
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t c = c0; c < c1; c++) {
            const int64_t row = (b * Ch + c) * L;
            const float *Bm = a->Bm + b * N * L, *Cm = a->Cm + b * N * L, *A = a->A + c * N;
            for (int64_t n = 0; n < N; n++)
                h[n] = 0.0f;
            for (int64_t l = 0; l < L; l++) {
                float d = a->dt[row + l] + a->dt_bias[c];
                d = d > 20.0f ? d : log1pf(expf(d));
                const float u = a->u[row + l], du = d * u;
                float y = 0.0f;
                for (int64_t n = 0; n < N; n++) {
                    h[n] = expf(d * A[n]) * h[n] + du * Bm[n * L + l];
                    y += h[n] * Cm[n * L + l];
                }
                y += a->D[c] * u;
                const float z = a->z[row + l];
                a->y[row + l] = y * z / (1.0f + expf(-z));
            }
        }
}

/* y[i] = expf(x[i]): the host's exp throughput, for the floor. */
void SCAN_EXP(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = expf(x[i]);
}
