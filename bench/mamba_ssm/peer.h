/* peer.h: mamba_ssm's forward selective scan behind a C call, for the
 * harness (peer_scan.cu) and for torch_ref.py (ctypes, libpeer_scan.so). */
#ifndef MX_PEER_H
#define MX_PEER_H

#ifdef __cplusplus
extern "C" {
#endif

/* One launch of the package's selective_scan_fwd_cuda on stream (a
 * cudaStream_t; NULL: the default stream), softplus on, one group of B and
 * C. Device pointers, every tensor contiguous: u, dt, z, out, out_z
 * [B, Ch, L]; Bm, Cm [B, 1, N, L]; A [Ch, N]; D, dt_bias [Ch] (f32; D and
 * dt_bias may be NULL); x, the chunk states the kernel writes,
 * B * Ch * ceil(L / 2048) * N float2. z NULL: no gate, out_z unused.
 * bf16: u, dt, z, Bm, Cm, out and out_z are bfloat16, else f32. Returns 0,
 * or -1 with why in err: a shape the kernel does not take, a CUDA error. */
int mx_peer_scan_fwd(int bf16, int B, int Ch, int L, int N, const void *u, const void *dt, const float *A,
                     const void *Bm, const void *Cm, const float *D, const void *z, const float *dt_bias, void *out,
                     void *out_z, void *x, void *stream, char *err, int err_size);

/* The floats mx_peer_scan_fwd's x needs. */
long long mx_peer_scan_states(int B, int Ch, int L, int N);

#ifdef __cplusplus
}
#endif
#endif
