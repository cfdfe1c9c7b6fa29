/* peer.cu: mx_peer_scan_fwd (peer.h), mamba_ssm's parameters set as its
 * Python binding sets them (csrc/selective_scan/selective_scan.cpp,
 * set_ssm_params_fwd) for contiguous tensors. */
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "c10_shim.h"
#include "peer.h"
#include "selective_scan.h"

/* the package's launcher, instantiated in kernels.cu (one object per type) */
template <typename input_t, typename weight_t> void selective_scan_fwd_cuda(SSMParamsBase &params, cudaStream_t stream);

enum {
    MAX_DSTATE = 256, /* the largest N the package's binding accepts */
    CHUNK = 2048,     /* its chunk of steps: one state saved per chunk */
};

cudaError_t mx_peer_cuda_error = cudaSuccess;

long long mx_peer_scan_states(int B, int Ch, int L, int N) {
    return 2LL * B * Ch * ((L + CHUNK - 1) / CHUNK) * N;
}

int mx_peer_scan_fwd(int bf16, int B, int Ch, int L, int N, const void *u, const void *dt, const float *A,
                     const void *Bm, const void *Cm, const float *D, const void *z, const float *dt_bias, void *out,
                     void *out_z, void *x, void *stream, char *err, int err_size) {
    if (B < 1 || Ch < 1 || L < 1 || N < 1 || N > MAX_DSTATE) {
        snprintf(err, err_size, "mamba_ssm's scan takes B, Ch, L >= 1 and 1 <= N <= %d, not %d, %d, %d, %d",
                 MAX_DSTATE, B, Ch, L, N);
        return -1;
    }
    SSMParamsBase p;
    memset(&p, 0, sizeof p);
    p.batch = B, p.dim = Ch, p.seqlen = L, p.dstate = N, p.n_groups = 1, p.n_chunks = (L + CHUNK - 1) / CHUNK;
    p.dim_ngroups_ratio = Ch;
    p.is_variable_B = p.is_variable_C = true;
    p.delta_softplus = true;
    p.A_ptr = (void *)A, p.B_ptr = (void *)Bm, p.C_ptr = (void *)Cm, p.D_ptr = (void *)D, p.u_ptr = (void *)u;
    p.delta_ptr = (void *)dt, p.delta_bias_ptr = (void *)dt_bias, p.out_ptr = out, p.x_ptr = x;
    p.z_ptr = (void *)z, p.out_z_ptr = z ? out_z : nullptr;
    /* strides in elements */
    p.A_d_stride = N, p.A_dstate_stride = 1;
    p.B_batch_stride = p.C_batch_stride = p.B_group_stride = p.C_group_stride = (uint64_t)N * L;
    p.B_dstate_stride = p.C_dstate_stride = L;
    p.u_batch_stride = p.delta_batch_stride = p.z_batch_stride = p.out_batch_stride = p.out_z_batch_stride =
        (uint64_t)Ch * L;
    p.u_d_stride = p.delta_d_stride = p.z_d_stride = p.out_d_stride = p.out_z_d_stride = L;
    cudaGetLastError(); /* an earlier call's error is not this launch's */
    mx_peer_cuda_error = cudaSuccess;
    if (bf16)
        selective_scan_fwd_cuda<__nv_bfloat16, float>(p, (cudaStream_t)stream);
    else
        selective_scan_fwd_cuda<float, float>(p, (cudaStream_t)stream);
    cudaError_t e = mx_peer_cuda_error;
    if (e != cudaSuccess) {
        snprintf(err, err_size, "mamba_ssm's scan launch: %s", cudaGetErrorString(e));
        return -1;
    }
    return 0;
}
