/* scan_loop.h: the plain C scan bench_cpu_scan times mixc against
 * (scan_loop.c, built -O3 -march=native, with and without -ffast-math). */
#ifndef MX_SCAN_LOOP_H
#define MX_SCAN_LOOP_H

#include <stdint.h>

typedef struct {
    int64_t B, Ch, L, N; /* N <= 256 */
    const float *u, *dt, *A, *Bm, *Cm, *D, *z, *dt_bias;
    float *y;
} scan_args;

void scan_loop_plain(const scan_args *a, int64_t c0, int64_t c1);
void scan_loop_fast(const scan_args *a, int64_t c0, int64_t c1);
void scan_exp_plain(const float *x, float *y, int64_t n);
void scan_exp_fast(const float *x, float *y, int64_t n);

#endif
