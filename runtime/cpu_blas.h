/* cpu_blas.h: the CPU backend's matrix products: OpenBLAS, loaded on first
 * use, and the products too small for it.
 *
 * OpenBLAS picks its kernels once, as it is loaded, from the CPU's model
 * number, and a model it does not know gets its oldest x86-64 kernels: the
 * 0.3.21 of Debian 12 runs SSE3 ("Prescott") kernels on a Xeon of model 207
 * that has AVX-512, 27 GFLOP/s where its AVX-512 ones reach 250 (2048^3,
 * 2 threads). Its OPENBLAS_CORETYPE overrides the choice but is read only at
 * load, before main when the library is linked. So mixc loads it with
 * dlopen (dynlib.h), after naming the kernels that the host's features
 * (target.c) can run when the user has not named any: SkylakeX with
 * AVX-512, Haswell with AVX2 and FMA (docs/cpu.md). And the products that
 * are too small for a library call. */
#ifndef MX_CPU_BLAS_H
#define MX_CPU_BLAS_H

#include <cblas.h>

#include "cpu_pool.h"
#include "gemm.h"
#include "mixc.h"

#define MX_OPENBLAS_ENTRY_POINTS(X)                                                      \
    X(sgemm, cblas_sgemm)                                                                \
    X(set_num_threads, openblas_set_num_threads)                                         \
    X(get_corename, openblas_get_corename)

#define MX_OPENBLAS_FIELD(field, symbol) __typeof__(symbol) *field;
typedef struct {
    MX_OPENBLAS_ENTRY_POINTS(MX_OPENBLAS_FIELD)
} mx_openblas_api;
#undef MX_OPENBLAS_FIELD

/* OpenBLAS's entry points, loading it on the first call with the kernels
 * for t's features; NULL and MX_ERR_IO in d when it cannot be loaded. */
const mx_openblas_api *mx_openblas_get(const mx_target *t, mx_diag *d);

/* The kernels mixc asks OpenBLAS for on t ("SkylakeX"), NULL to leave the
 * choice to OpenBLAS (OPENBLAS_CORETYPE set by the user, or no AVX2). */
const char *mx_openblas_coretype(const mx_target *t);

/* MambaMixer's channel mixer projects each token's channels with k = 1: in
 * ViM2-T's first stage 3136 products of [33 x 1] [1 x 192], where one sgemm
 * call each spends microseconds on 13 kflop (1.3 GFLOP/s). f32 products
 * with k up to MX_SMALL_K run as plain loops instead, the batches split
 * over the pool. */
enum { MX_SMALL_K = 4 };

typedef struct {
    float *a, *b, *c, *y; /* the operands' buffers; c NULL without a residual */
    const float *bias;    /* NULL without one */
} mx_small_operands;

/* The epilogue that follows the library's product, on n elements of a row
 * of y: + bias[j] (bias may be NULL), then gm's activation. */
void mx_cpu_epilogue(const mx_gemm *gm, float *y, const float *bias, int64_t n);

/* gm over f32 buffers (gm->y not transposed), on the pool's threads: its
 * products in `tasks` shares (0: shares of 16384 outputs or more). */
void mx_cpu_small_products(mx_cpu_pool *pool, const mx_gemm *gm, int tasks, mx_small_operands ops);

#endif
