// Test kernels for the host emulation (tests/test_emu.c), written as real
// CUDA: the same file must compile with NVRTC for sm_90.
#include "mixc_prelude.h"

// The lanes of this thread's warp that exist: the last warp may be partial.
static __device__ __forceinline__ unsigned warp_lanes() {
    unsigned first = threadIdx.x - threadIdx.x % 32;
    return min(32u, blockDim.x - first);
}

static __device__ __forceinline__ unsigned lane_mask(unsigned lanes) {
    return lanes == 32 ? 0xFFFFFFFFu : (1u << lanes) - 1;
}

// Sum over the existing lanes of the warp; lane 0 has it.
static __device__ float warp_sum_down(float v) {
    unsigned lanes = warp_lanes(), mask = lane_mask(lanes), lane = threadIdx.x % 32;
    for (unsigned off = 16; off > 0; off >>= 1) {
        float other = __shfl_down_sync(mask, v, off);
        if (lane + off < lanes)
            v += other;
    }
    return v;
}

// out[b] = sum of row b of x (n columns), any block size up to 1024.
extern "C" __global__ void block_reduce(const float *__restrict__ x, float *__restrict__ out,
                                        int n) {
    __shared__ float partial[32];
    const float *row = x + (size_t)blockIdx.x * n;
    float v = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        v += row[i];
    v = warp_sum_down(v);
    unsigned warp = threadIdx.x / 32, n_warps = (blockDim.x + 31) / 32;
    if (threadIdx.x % 32 == 0)
        partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = threadIdx.x < n_warps ? partial[threadIdx.x] : 0.0f;
        v = warp_sum_down(v);
        if (threadIdx.x == 0)
            out[blockIdx.x] = v;
    }
}
MX_EMU_ENTRY(block_reduce)

// Per warp of 32 values: inclusive scan (shfl_up), the neighbour's scan
// through memory after __syncwarp, butterfly sum into every lane (shfl_xor),
// the value of lane 3 of each 8-lane segment (shfl, width 8), votes on x > 0
// (ballot, all, any) and the active mask.
extern "C" __global__ void warp_ops(const float *x, float *scan, float *next, float *sum,
                                    float *seg, unsigned *votes) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;
    unsigned warp = i / 32, active = __activemask(); // converged at entry
    float v = x[i], s = v;
    for (unsigned off = 1; off < 32; off <<= 1) {
        float up = __shfl_up_sync(0xFFFFFFFFu, s, off);
        if (lane >= off)
            s += up;
    }
    scan[i] = s;
    __syncwarp();
    next[i] = scan[i ^ 1];
    float t = v;
    for (int mask = 16; mask > 0; mask >>= 1)
        t += __shfl_xor_sync(0xFFFFFFFFu, t, mask);
    sum[i] = t;
    seg[i] = __shfl_sync(0xFFFFFFFFu, v, 3, 8);
    unsigned ballot = __ballot_sync(0xFFFFFFFFu, v > 0.0f);
    int all = __all_sync(0xFFFFFFFFu, v > -0.9f);
    int any = __any_sync(0xFFFFFFFFu, v > 0.9f);
    if (lane == 0) {
        votes[4 * warp] = ballot;
        votes[4 * warp + 1] = (unsigned)all;
        votes[4 * warp + 2] = (unsigned)any;
        votes[4 * warp + 3] = active;
    }
}
MX_EMU_ENTRY(warp_ops)

// The linear recurrence h[t] = a[t] * h[t-1] + b[t] (h[-1] = 0) of one
// sequence per block, as a chunked block scan: each thread scans ITEMS
// consecutive elements serially, warps scan the thread totals with shuffles,
// warp totals are combined through shared memory, and the carry goes from
// chunk to chunk. Ragged tails are padded with the identity (1, 0).
// blockDim.x is a multiple of 32.
#define ITEMS 4
extern "C" __global__ void chunked_scan(const float *a, const float *b, float *h, int L) {
    __shared__ float warp_a[32], warp_b[32];
    const float *as = a + (size_t)blockIdx.x * L, *bs = b + (size_t)blockIdx.x * L;
    float *hs = h + (size_t)blockIdx.x * L;
    unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    float carry = 0.0f;
    for (int base = 0; base < L; base += blockDim.x * ITEMS) {
        int first = base + threadIdx.x * ITEMS;
        float pa[ITEMS], pb[ITEMS]; // prefix of this thread's items: h = pa * h0 + pb
        for (int k = 0; k < ITEMS; k++) {
            int t = first + k;
            float ak = t < L ? as[t] : 1.0f, bk = t < L ? bs[t] : 0.0f;
            pa[k] = k ? pa[k - 1] * ak : ak;
            pb[k] = k ? pb[k - 1] * ak + bk : bk;
        }
        float A = pa[ITEMS - 1], B = pb[ITEMS - 1];
        for (unsigned off = 1; off < 32; off <<= 1) {
            float ua = __shfl_up_sync(0xFFFFFFFFu, A, off);
            float ub = __shfl_up_sync(0xFFFFFFFFu, B, off);
            if (lane >= off) {
                B = A * ub + B;
                A = A * ua;
            }
        }
        float ea = __shfl_up_sync(0xFFFFFFFFu, A, 1), eb = __shfl_up_sync(0xFFFFFFFFu, B, 1);
        if (lane == 0) {
            ea = 1.0f;
            eb = 0.0f;
        }
        if (lane == 31) {
            warp_a[warp] = A;
            warp_b[warp] = B;
        }
        __syncthreads();
        float hw = carry, total = carry; // h before this warp; h after the chunk
        for (unsigned w = 0; w < n_warps; w++) {
            if (w < warp)
                hw = warp_a[w] * hw + warp_b[w];
            total = warp_a[w] * total + warp_b[w];
        }
        float h0 = ea * hw + eb; // h before this thread's first item
        for (int k = 0; k < ITEMS; k++)
            if (first + k < L)
                hs[first + k] = pa[k] * h0 + pb[k];
        carry = total;
        __syncthreads(); // warp_a and warp_b are rewritten by the next chunk
    }
}
MX_EMU_ENTRY(chunked_scan)

// A 2-D grid of 2-D blocks: y[row * width + col] = row * 1000 + col, with a
// sum, a count and a maximum gathered by atomics from every block.
extern "C" __global__ void grid_atomics(const float *x, float *y, int width, int height,
                                        double *sum, unsigned long long *count, int *max_col,
                                        float *fsum) {
    int col = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y * blockDim.y + threadIdx.y;
    if (col >= width || row >= height)
        return;
    int i = row * width + col;
    y[i] = (float)(row * 1000 + col);
    atomicAdd(sum, (double)x[i]);
    atomicAdd(fsum, 1.0f);
    atomicAdd(count, 1ull);
    atomicMax(max_col, col);
}
MX_EMU_ENTRY(grid_atomics)

// Reverses each block's slice of x through dynamic shared memory; `fresh`
// gets what the shared memory held before any write.
extern "C" __global__ void dyn_reverse(const float *x, float *y, float *fresh) {
    MX_DYNAMIC_SMEM(float, buf);
    unsigned n = blockDim.x, i = blockIdx.x * n + threadIdx.x;
    fresh[i] = buf[threadIdx.x];
    __syncthreads();
    buf[threadIdx.x] = x[i];
    __syncthreads();
    y[i] = buf[n - 1 - threadIdx.x];
}
MX_EMU_ENTRY(dyn_reverse)

// A race: each thread reads its neighbour's slot with no barrier after the
// writes, so what it gets depends on which thread ran first.
extern "C" __global__ void racy_neighbour(const float *x, float *y) {
    MX_DYNAMIC_SMEM(float, buf);
    unsigned n = blockDim.x, i = blockIdx.x * n + threadIdx.x;
    buf[threadIdx.x] = x[i];
    y[i] = buf[(threadIdx.x + 1) % n];
}
MX_EMU_ENTRY(racy_neighbour)

// f32 -> f16 / bf16 bits, and back.
extern "C" __global__ void convert(const float *x, unsigned short *f16, unsigned short *bf16,
                                   float *back16, float *backbf16, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    __half h = __float2half_rn(x[i]);
    __nv_bfloat16 b = __float2bfloat16_rn(x[i]);
    f16[i] = __half_as_ushort(h);
    bf16[i] = __bfloat16_as_ushort(b);
    back16[i] = __half2float(__ushort_as_half(f16[i]));
    backbf16[i] = __bfloat162float(__ushort_as_bfloat16(bf16[i]));
}
MX_EMU_ENTRY(convert)
