/* driver.h: the CUDA driver, loaded at run time.
 *
 * mixc never links libcuda: one direct cu* call would make the binary fail to
 * start on a machine without a driver. mx_cuda_open dlopens libcuda.so.1,
 * looks up only cuInit and cuGetProcAddress_v2 by name and fetches every other
 * entry point through cuGetProcAddress at MX_CUDA_API_VERSION, so each pointer
 * has the ABI of the cudaTypedefs.h PFN type it is stored as (plain dlsym would
 * give the oldest ABI of functions that cuda.h renames to _v2 variants).
 * See docs/runtime.md. */
#ifndef MX_DRIVER_H
#define MX_DRIVER_H

#include <cudaTypedefs.h>

#include "mixc.h"

/* The CUDA version whose entry-point ABIs are requested from cuGetProcAddress
 * (each pointer gets the ABI of the PFN type below). It is not the oldest
 * driver mixc accepts: that is MX_CUDA_DRIVER_MIN. */
#define MX_CUDA_API_VERSION 12000

/* The oldest driver mx_cuda_open accepts: the toolkit's major version
 * (CUDA_VERSION of the cuda.h mixc is built with, 13000 for CUDA 13.x).
 * NVRTC and cuBLASLt come from that toolkit, and NVIDIA's compatibility
 * rules let a CUDA 13.x library run on any driver for CUDA 13.0 or newer,
 * not on a 12.x one: on such a driver the device would open and the first
 * cuBLASLt call fail with an opaque error, so the driver is refused at open,
 * naming both versions. MX_CUDA_DRIVER_BRANCH is the driver branch to name
 * in the advice ("" for a toolkit this file does not know). */
#define MX_CUDA_DRIVER_MIN (CUDA_VERSION / 1000 * 1000)
#if CUDA_VERSION / 1000 == 13
#define MX_CUDA_DRIVER_BRANCH " (r580 or later)"
#elif CUDA_VERSION / 1000 == 12
#define MX_CUDA_DRIVER_BRANCH " (r525 or later)"
#else
#define MX_CUDA_DRIVER_BRANCH ""
#endif
_Static_assert(MX_CUDA_DRIVER_MIN >= MX_CUDA_API_VERSION,
               "every accepted driver must have the entry-point ABIs asked for");

/* Every entry point the runtime calls: X(field, symbol, PFN type). The type is
 * the variant cuGetProcAddress returns for MX_CUDA_API_VERSION. Fields drop the
 * "cu" prefix because cuda.h #defines many cu* names to versioned ones. */
#define MX_CUDA_ENTRY_POINTS(X)                                                          \
    X(GetErrorName, "cuGetErrorName", PFN_cuGetErrorName_v6000)                          \
    X(GetErrorString, "cuGetErrorString", PFN_cuGetErrorString_v6000)                    \
    X(DriverGetVersion, "cuDriverGetVersion", PFN_cuDriverGetVersion_v2020)              \
    X(DeviceGet, "cuDeviceGet", PFN_cuDeviceGet_v2000)                                   \
    X(DeviceGetCount, "cuDeviceGetCount", PFN_cuDeviceGetCount_v2000)                    \
    X(DeviceGetName, "cuDeviceGetName", PFN_cuDeviceGetName_v2000)                       \
    X(DeviceGetAttribute, "cuDeviceGetAttribute", PFN_cuDeviceGetAttribute_v2000)        \
    X(DeviceTotalMem, "cuDeviceTotalMem", PFN_cuDeviceTotalMem_v3020)                    \
    X(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", PFN_cuDevicePrimaryCtxRetain_v7000) \
    X(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease",                              \
      PFN_cuDevicePrimaryCtxRelease_v11000)                                              \
    X(CtxSetCurrent, "cuCtxSetCurrent", PFN_cuCtxSetCurrent_v4000)                       \
    X(ModuleLoadData, "cuModuleLoadData", PFN_cuModuleLoadData_v2000)                    \
    X(ModuleUnload, "cuModuleUnload", PFN_cuModuleUnload_v2000)                          \
    X(ModuleGetFunction, "cuModuleGetFunction", PFN_cuModuleGetFunction_v2000)           \
    X(FuncGetAttribute, "cuFuncGetAttribute", PFN_cuFuncGetAttribute_v2020)              \
    X(FuncSetAttribute, "cuFuncSetAttribute", PFN_cuFuncSetAttribute_v9000)              \
    X(LaunchKernel, "cuLaunchKernel", PFN_cuLaunchKernel_v4000)                          \
    X(MemAlloc, "cuMemAlloc", PFN_cuMemAlloc_v3020)                                      \
    X(MemFree, "cuMemFree", PFN_cuMemFree_v3020)                                         \
    X(MemGetInfo, "cuMemGetInfo", PFN_cuMemGetInfo_v3020)                                \
    X(MemcpyHtoD, "cuMemcpyHtoD", PFN_cuMemcpyHtoD_v3020)                                \
    X(MemcpyDtoH, "cuMemcpyDtoH", PFN_cuMemcpyDtoH_v3020)                                \
    X(MemsetD8, "cuMemsetD8", PFN_cuMemsetD8_v3020)                                      \
    X(StreamCreate, "cuStreamCreate", PFN_cuStreamCreate_v2000)                          \
    X(StreamSynchronize, "cuStreamSynchronize", PFN_cuStreamSynchronize_v2000)           \
    X(StreamDestroy, "cuStreamDestroy", PFN_cuStreamDestroy_v4000)                       \
    X(EventCreate, "cuEventCreate", PFN_cuEventCreate_v2000)                             \
    X(EventRecord, "cuEventRecord", PFN_cuEventRecord_v2000)                             \
    X(EventSynchronize, "cuEventSynchronize", PFN_cuEventSynchronize_v2000)              \
    X(EventElapsedTime, "cuEventElapsedTime", PFN_cuEventElapsedTime_v2000)              \
    X(EventDestroy, "cuEventDestroy", PFN_cuEventDestroy_v4000)                          \
    X(StreamBeginCapture, "cuStreamBeginCapture", PFN_cuStreamBeginCapture_v10010)       \
    X(StreamEndCapture, "cuStreamEndCapture", PFN_cuStreamEndCapture_v10000)             \
    X(GraphInstantiate, "cuGraphInstantiateWithFlags", PFN_cuGraphInstantiateWithFlags_v11040) \
    X(GraphLaunch, "cuGraphLaunch", PFN_cuGraphLaunch_v10000)                            \
    X(GraphExecDestroy, "cuGraphExecDestroy", PFN_cuGraphExecDestroy_v10000)             \
    X(GraphDestroy, "cuGraphDestroy", PFN_cuGraphDestroy_v10000)

typedef struct {
#define MX_CUDA_FIELD(field, symbol, type) type field;
    MX_CUDA_ENTRY_POINTS(MX_CUDA_FIELD)
#undef MX_CUDA_FIELD
} mx_cuda_api;

/* An open driver: device 0 with its primary context current on the thread
 * that opened it. Attributes the driver does not report are 0. */
typedef struct {
    void *lib; /* the dlopen handle */
    mx_cuda_api api;
    int driver_version; /* 12040 = CUDA 12.4 */
    CUdevice device;
    CUcontext ctx;
    char name[256];
    int sm_count;
    int cc_major, cc_minor; /* compute capability: sm = 10 * major + minor */
    size_t total_mem;       /* bytes */
    int clock_khz;          /* SM clock */
    int mem_clock_khz;
    int mem_bus_width;      /* bits */
    int l2_bytes;
    int smem_per_block_optin; /* bytes a kernel may opt into */
    int smem_per_block, smem_per_sm;
    int max_threads_per_sm, max_threads_per_block;
    int regs_per_sm;
} mx_cuda;

/* Opens the driver and device 0. Fails with MX_ERR_IO and a message when there
 * is no driver ("no CUDA driver (libcuda.so.1 not found)"), when cuInit fails
 * ("cuInit failed: CUDA_ERROR_STUB_LIBRARY (error 34): ..."), when the driver
 * is older than MX_CUDA_DRIVER_MIN ("the CUDA driver is too old: it supports
 * CUDA 12.8 (driver version 12080), ..."), when it lacks an entry point, or
 * when there is no device; the caller decides whether that means running on
 * the CPU. The primary context is then current on the calling thread only:
 * the driver's current context is per thread, so code that may run on
 * another thread calls api.CtxSetCurrent(cu->ctx) first (runtime/gpu.c does
 * at each of its entry points). */
mx_status mx_cuda_open(mx_cuda **out, mx_diag *d);
/* Releases the primary context; NULL is fine. The library stays loaded, also
 * after a failed open: the driver keeps threads of its own, and a later open
 * reuses it. */
void mx_cuda_close(mx_cuda *cu);

/* The installed driver's version (12040 = CUDA 12.4) without opening a
 * device or initialising the driver; 0 when there is none (or only the
 * toolkit's stub). Asked once per process. The tuning database keys GPU
 * records by it: a driver update can change a kernel's time. */
int mx_cuda_driver_version(void);

/* MX_OK for CUDA_SUCCESS; otherwise MX_ERR_IO with
 * "what: CUDA_ERROR_NAME (error N): description". cu may be NULL (or not yet
 * have its error functions): a built-in table then names the errors a broken
 * installation gives. */
mx_status mx_cuda_check(const mx_cuda *cu, CUresult r, const char *what, mx_diag *d);

/* Device memory for `purpose` (what it holds, as the user knows it:
 * "cuBLASLt's workspace"; NULL when the caller names it). Out of memory
 * is MX_ERR_NOMEM with the bytes asked, the purpose and what the GPU has in
 * all and free (cuMemGetInfo); any other failure MX_ERR_IO with the same
 * bytes and purpose. */
mx_status mx_cuda_alloc(const mx_cuda *cu, size_t bytes, const char *purpose, CUdeviceptr *out, mx_diag *d);

#endif
