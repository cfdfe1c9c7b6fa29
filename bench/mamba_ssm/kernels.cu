/* kernels.cu: mamba_ssm's forward scan launcher instantiated for one
 * storage type, PEER_INPUT_T (float or __nv_bfloat16, given with -D), as
 * its own selective_scan_fwd_fp32.cu / _bf16.cu do for the real-valued
 * case. One translation unit per type, so that the two compile at once
 * (build.sh). */
#include "selective_scan_fwd_kernel.cuh"

template void selective_scan_fwd_cuda<PEER_INPUT_T, float>(SSMParamsBase &params, cudaStream_t stream);
