/* c10_shim.h: the few c10 names mamba_ssm's forward scan kernel uses
 * (csrc/selective_scan/selective_scan_fwd_kernel.cuh and its common header),
 * so that the peer harness (peer_scan.cu) builds with nvcc alone, without
 * PyTorch's headers or libraries. Only what the forward kernel needs:
 * the 16-bit storage types, a complex<float> with the members the kernel
 * reads (real_, imag_) and the two error-check macros. */
#ifndef MX_PEER_C10_SHIM_H
#define MX_PEER_C10_SHIM_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace c10 {
using BFloat16 = __nv_bfloat16;
using Half = __half;

template <typename T> struct complex {
    T real_, imag_;
    __host__ __device__ constexpr complex(T re = T(), T im = T()) : real_(re), imag_(im) {}
    __host__ __device__ constexpr T real() const { return real_; }
    __host__ __device__ constexpr T imag() const { return imag_; }
};
template <typename T> __host__ __device__ constexpr complex<T> operator+(complex<T> a, complex<T> b) {
    return complex<T>(a.real_ + b.real_, a.imag_ + b.imag_);
}
template <typename T> __host__ __device__ constexpr complex<T> operator*(complex<T> a, complex<T> b) {
    return complex<T>(a.real_ * b.real_ - a.imag_ * b.imag_, a.real_ * b.imag_ + a.imag_ * b.real_);
}
} // namespace c10

namespace at {
using c10::BFloat16;
using c10::Half;
} // namespace at

/* The package's launcher checks its CUDA calls with these. A failure is
 * kept, the first of a launch, for mx_peer_scan_fwd to return (peer.cu):
 * the launcher returns nothing, and a library loaded into PyTorch must not
 * end the process. */
extern "C" cudaError_t mx_peer_cuda_error;
#define C10_CUDA_CHECK(call)                                                                                     \
    do {                                                                                                         \
        cudaError_t e_ = (call);                                                                                 \
        if (e_ != cudaSuccess && mx_peer_cuda_error == cudaSuccess)                                              \
            mx_peer_cuda_error = e_;                                                                             \
    } while (0)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() C10_CUDA_CHECK(cudaGetLastError())

#endif
