// Kernels with synchronisation bugs, for the emulator's error reports
// (tests/test_emu.c). Valid CUDA as written; wrong when launched.
#include "mixc_prelude.h"

// Threads 40.. return while the others wait at the barrier.
extern "C" __global__ void early_exit(float *y) {
    if (threadIdx.x >= 40)
        return;
    __syncthreads();
    y[threadIdx.x] = 1.0f;
}
MX_EMU_ENTRY(early_exit)

// Half the block waits at one __syncthreads, half at another.
extern "C" __global__ void split_barrier(float *y) {
    if (threadIdx.x < 32)
        __syncthreads();
    else
        __syncthreads();
    y[threadIdx.x] = 1.0f;
}
MX_EMU_ENTRY(split_barrier)

// Lanes 16.. of each warp exit; the others shuffle over the full mask.
extern "C" __global__ void shfl_exited(float *y) {
    if (threadIdx.x % 32 >= 16)
        return;
    y[threadIdx.x] = __shfl_xor_sync(0xFFFFFFFFu, (float)threadIdx.x, 1);
}
MX_EMU_ENTRY(shfl_exited)

// A full-warp mask in a block of 48 threads: the second warp has 16 lanes.
extern "C" __global__ void shfl_partial_warp(float *y) {
    y[threadIdx.x] = __shfl_down_sync(0xFFFFFFFFu, (float)threadIdx.x, 1);
}
MX_EMU_ENTRY(shfl_partial_warp)

// Correct: the module still runs after the failed launches.
extern "C" __global__ void fill(float *y, float v) {
    y[blockIdx.x * blockDim.x + threadIdx.x] = v;
}
MX_EMU_ENTRY(fill)
