/* blas.h: matmul groups on the GPU through cuBLASLt.
 *
 * One mx_gemm (gemm.h: y = act(op(A) op(B) + bias + C), strided and batched)
 * becomes one cublasLtMatmul per outer batch index: the bias and the
 * activation are cuBLASLt epilogues (BIAS, RELU(_BIAS), GELU(_BIAS): the tanh
 * form), the residual is C with beta = 1, a transposed operand is op = T with
 * its leading dimension, a broadcast batch is a stride of 0. Where cuBLASLt
 * has no algorithm with the bias epilogue, the bias is C instead (its one row
 * repeated: leading dimension 0), when there is no residual. Storage is f32,
 * f16 or bf16; arithmetic is f32 (CUBLAS_COMPUTE_32F) so that results compare
 * with the reference within 1e-4 (f32 storage) and 2e-2 (bf16). MIXC_TF32=1
 * lets f32 products use TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32):
 * faster, about 1e-3 relative error, so the f32 checks no longer hold.
 *
 * cuBLASLt is loaded by the first mx_blas_open (cudalibs.h); its handle is
 * created on the primary context, which mx_cuda_open makes current, and every
 * call runs on the caller's stream (a driver CUstream is a cudaStream_t).
 * Plans hold the descriptors and the algorithm chosen for fixed device
 * pointers, so a forward pass pays no heuristic query and CUDA graph capture
 * sees only kernel launches. */
#ifndef MX_BLAS_H
#define MX_BLAS_H

#include "driver.h"
#include "gemm.h"

/* The workspace cuBLASLt's products may use (what it suggests for Hopper),
 * allocated once per GPU device; the memory check counts it. */
#define MX_BLAS_WORKSPACE_BYTES (32u << 20)
/* The most products one cublasLtMatmul takes in a strided batch (a limit
 * other users of cuBLASLt report: batch counts from 2^16 on are refused);
 * a larger batch is run in chunks. */
#ifndef MX_BLAS_MAX_BATCH
#define MX_BLAS_MAX_BATCH 65535
#endif

typedef struct mx_blas mx_blas;
typedef struct mx_blas_plan mx_blas_plan;

/* Device addresses of the buffers of the gemm's values (a, b, c, y, bias);
 * the operands' element offsets are added by the plan. Unused ones are 0. */
typedef struct {
    CUdeviceptr a, b, c, y, bias;
} mx_gemm_ptrs;

/* A cuBLASLt handle and a workspace on cu's device. MX_ERR_IO, "cuBLASLt
 * (libcublasLt.so.13) not found: ...", when the library is missing. */
mx_status mx_blas_open(mx_blas **out, mx_cuda *cu, mx_diag *d);
void mx_blas_close(mx_blas *bl);
/* Whether f32 products use TF32 (MIXC_TF32=1 when opened). */
bool mx_blas_tf32(const mx_blas *bl);

/* Descriptors and algorithm for gm at ptr. MX_ERR_INVALID with the shape,
 * leading dimensions and alignments when cuBLASLt has no algorithm for it. */
mx_status mx_blas_plan_new(mx_blas *bl, const mx_gemm *gm, const mx_gemm_ptrs *ptr,
                           mx_blas_plan **out, mx_diag *d);
/* Enqueues the product on stream s (capturable into a CUDA graph). */
mx_status mx_blas_plan_run(mx_blas *bl, const mx_blas_plan *pl, CUstream s, mx_diag *d);
void mx_blas_plan_free(mx_blas_plan *pl);

/* Plan, run and free: one product, for tests and one-off calls. */
mx_status mx_blas_gemm(mx_blas *bl, const mx_gemm *gm, const mx_gemm_ptrs *ptr, CUstream s,
                       mx_diag *d);

/* "CUBLAS_STATUS_NOT_SUPPORTED: ..." for a cublasStatus_t. */
const char *mx_blas_status_text(int status);

#endif
