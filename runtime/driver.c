/* driver.c: finds and opens the CUDA driver at run time (see driver.h). */
#include "driver.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#define DRIVER_LIB "libcuda.so.1"

/* The errors a missing or broken installation gives, for when the driver's own
 * cuGetErrorName cannot be reached (the toolkit's stub answers every call,
 * cuGetProcAddress included, with error 34). */
static const struct {
    CUresult code;
    const char *name, *text;
} known_errors[] = {
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "the driver is not initialized"},
    {CUDA_ERROR_STUB_LIBRARY, "CUDA_ERROR_STUB_LIBRARY",
     "libcuda.so.1 is the toolkit's stub library, not a real driver"},
    {CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA_ERROR_DEVICE_UNAVAILABLE",
     "the device is unavailable (busy or exclusive to another process)"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_OPERATING_SYSTEM, "CUDA_ERROR_OPERATING_SYSTEM", "an OS call failed"},
    {CUDA_ERROR_SYSTEM_NOT_READY, "CUDA_ERROR_SYSTEM_NOT_READY",
     "the system is not ready (is the fabric manager running?)"},
    {CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
     "the driver library and the kernel module versions differ"},
    {CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
     "the forward-compatibility driver does not support this device"},
};

mx_status mx_cuda_check(const mx_cuda *cu, CUresult r, const char *what, mx_diag *d) {
    if (r == CUDA_SUCCESS)
        return MX_OK;
    const char *name = NULL, *text = NULL;
    if (cu && cu->api.GetErrorName && cu->api.GetErrorName(r, &name) != CUDA_SUCCESS)
        name = NULL;
    if (cu && cu->api.GetErrorString && cu->api.GetErrorString(r, &text) != CUDA_SUCCESS)
        text = NULL;
    for (size_t i = 0; i < sizeof known_errors / sizeof known_errors[0] && (!name || !text); i++)
        if (known_errors[i].code == r) {
            name = name ? name : known_errors[i].name;
            text = text ? text : known_errors[i].text;
        }
    return mx_fail(d, MX_ERR_IO, "%s: %s (error %d): %s", what, name ? name : "CUDA error",
                   (int)r, text ? text : "no description");
}

/* "80.00 GiB", "32.0 MiB", "11009 bytes": a size as it reads best. */
static const char *size_text(size_t bytes, char *out, size_t size) {
    if (bytes >= (size_t)1 << 30)
        snprintf(out, size, "%.2f GiB", (double)bytes / (1 << 30));
    else if (bytes >= (size_t)1 << 20)
        snprintf(out, size, "%.1f MiB", (double)bytes / (1 << 20));
    else
        snprintf(out, size, "%zu bytes", bytes);
    return out;
}

mx_status mx_cuda_alloc(const mx_cuda *cu, size_t bytes, const char *purpose, CUdeviceptr *out, mx_diag *d) {
    CUresult r = cu->api.MemAlloc(out, bytes);
    if (r == CUDA_SUCCESS)
        return MX_OK;
    *out = 0;
    char what[400], asked[32], total_text[32], free_text[32];
    if (bytes >= (size_t)1 << 20)
        snprintf(what, sizeof what, "cuMemAlloc of %zu bytes (%s)", bytes, size_text(bytes, asked, sizeof asked));
    else
        snprintf(what, sizeof what, "cuMemAlloc of %zu bytes", bytes);
    if (purpose)
        snprintf(what + strlen(what), sizeof what - strlen(what), " for %s", purpose);
    mx_diag why;
    mx_status st = mx_cuda_check(cu, r, what, &why);
    size_t free_bytes = 0, total = 0;
    if (r != CUDA_ERROR_OUT_OF_MEMORY)
        return mx_fail(d, st, "%s", why.msg);
    if (cu->api.MemGetInfo(&free_bytes, &total) != CUDA_SUCCESS)
        return mx_fail(d, MX_ERR_NOMEM, "out of GPU memory: %s (and cuMemGetInfo failed)", why.msg);
    return mx_fail(d, MX_ERR_NOMEM, "out of GPU memory: %s; GPU 0 (%s) has %s, %s of it free", why.msg, cu->name,
                   size_text(total, total_text, sizeof total_text), size_text(free_bytes, free_text, sizeof free_text));
}

/* Fills cu->api. The symbol status is read before the return code: a symbol
 * the driver lacks, or has only for a newer CUDA than asked, means a driver
 * older than MX_CUDA_API_VERSION, which CUDA_ERROR_NOT_FOUND alone would not
 * tell the user. */
static mx_status fetch_entry_points(mx_cuda *cu, PFN_cuGetProcAddress_v12000 get_proc,
                                    mx_diag *d) {
    CUresult r;
    CUdriverProcAddressQueryResult found;
#define MX_CUDA_FETCH(field, symbol, type)                                                 \
    found = (CUdriverProcAddressQueryResult)-1;                                            \
    r = get_proc(symbol, (void **)&cu->api.field, MX_CUDA_API_VERSION,                     \
                 CU_GET_PROC_ADDRESS_DEFAULT, &found);                                     \
    if (found == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND ||                                   \
        found == CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT)                               \
        return mx_fail(d, MX_ERR_IO,                                                       \
                       "the CUDA driver is too old: it has no %s for CUDA %d.%d "          \
                       "(driver version %d.%d)",                                           \
                       symbol, MX_CUDA_API_VERSION / 1000, MX_CUDA_API_VERSION % 1000 / 10, \
                       cu->driver_version / 1000, cu->driver_version % 1000 / 10);         \
    if (r != CUDA_SUCCESS || !cu->api.field)                                               \
        return mx_cuda_check(cu, r != CUDA_SUCCESS ? r : CUDA_ERROR_NOT_FOUND,             \
                             "cuGetProcAddress(\"" symbol "\")", d);
    MX_CUDA_ENTRY_POINTS(MX_CUDA_FETCH)
#undef MX_CUDA_FETCH
    return MX_OK;
}

/* The error-reporting entry points alone, so that a failing cuInit can still
 * be named by the driver itself; failures leave them NULL. */
static void fetch_error_functions(mx_cuda *cu, PFN_cuGetProcAddress_v12000 get_proc) {
    if (get_proc("cuGetErrorName", (void **)&cu->api.GetErrorName, MX_CUDA_API_VERSION,
                 CU_GET_PROC_ADDRESS_DEFAULT, NULL) != CUDA_SUCCESS)
        cu->api.GetErrorName = NULL;
    if (get_proc("cuGetErrorString", (void **)&cu->api.GetErrorString, MX_CUDA_API_VERSION,
                 CU_GET_PROC_ADDRESS_DEFAULT, NULL) != CUDA_SUCCESS)
        cu->api.GetErrorString = NULL;
}

/* An attribute the driver may not report (0 then). */
static int attribute(const mx_cuda *cu, CUdevice_attribute a) {
    int v = 0;
    return cu->api.DeviceGetAttribute(&v, a, cu->device) == CUDA_SUCCESS ? v : 0;
}

/* Device 0 with its primary context current, and what the planner needs to
 * know about it. */
static mx_status open_device(mx_cuda *cu, mx_diag *d) {
    const mx_cuda_api *api = &cu->api;
    int count = 0;
    MX_TRY(mx_cuda_check(cu, api->DeviceGetCount(&count), "cuDeviceGetCount", d));
    if (count < 1)
        return mx_fail(d, MX_ERR_IO, "no CUDA device (the driver reports none)");
    MX_TRY(mx_cuda_check(cu, api->DeviceGet(&cu->device, 0), "cuDeviceGet(0)", d));
    MX_TRY(mx_cuda_check(cu, api->DeviceGetName(cu->name, (int)sizeof cu->name, cu->device),
                         "cuDeviceGetName", d));
    MX_TRY(mx_cuda_check(cu, api->DeviceTotalMem(&cu->total_mem, cu->device), "cuDeviceTotalMem",
                         d));
    MX_TRY(mx_cuda_check(cu, api->DevicePrimaryCtxRetain(&cu->ctx, cu->device),
                         "cuDevicePrimaryCtxRetain", d));
    MX_TRY(mx_cuda_check(cu, api->CtxSetCurrent(cu->ctx), "cuCtxSetCurrent", d));
    cu->sm_count = attribute(cu, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    cu->cc_major = attribute(cu, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    cu->cc_minor = attribute(cu, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    cu->clock_khz = attribute(cu, CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
    cu->mem_clock_khz = attribute(cu, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
    cu->mem_bus_width = attribute(cu, CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
    cu->l2_bytes = attribute(cu, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
    cu->smem_per_block_optin = attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    cu->smem_per_block = attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
    cu->smem_per_sm = attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
    cu->max_threads_per_sm = attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR);
    cu->max_threads_per_block = attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    cu->regs_per_sm = attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR);
    if (cu->sm_count < 1 || cu->cc_major < 1)
        return mx_fail(d, MX_ERR_IO, "CUDA device 0 (%s) reports %d SMs, compute capability %d.%d",
                       cu->name, cu->sm_count, cu->cc_major, cu->cc_minor);
    return MX_OK;
}

static mx_status open_driver(mx_cuda *cu, mx_diag *d) {
    cu->lib = dlopen(DRIVER_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!cu->lib) {
        const char *why = dlerror();
        if (!why || strstr(why, "No such file"))
            return mx_fail(d, MX_ERR_IO, "no CUDA driver (" DRIVER_LIB " not found)");
        return mx_fail(d, MX_ERR_IO, "cannot load the CUDA driver: %s", why);
    }
    /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
    PFN_cuInit_v2000 init;
    PFN_cuGetProcAddress_v12000 get_proc;
    *(void **)&init = dlsym(cu->lib, "cuInit");
    *(void **)&get_proc = dlsym(cu->lib, "cuGetProcAddress_v2");
    if (!init || !get_proc)
        return mx_fail(d, MX_ERR_IO,
                       "the CUDA driver is too old: " DRIVER_LIB " has no %s (a driver for CUDA %d.0 or "
                       "newer is needed: update the NVIDIA driver to one for CUDA %d%s)",
                       init ? "cuGetProcAddress_v2" : "cuInit", MX_CUDA_DRIVER_MIN / 1000,
                       MX_CUDA_DRIVER_MIN / 1000, MX_CUDA_DRIVER_BRANCH);
    CUresult r = init(0);
    if (r != CUDA_SUCCESS) {
        fetch_error_functions(cu, get_proc);
        /* The library stays loaded (cu->lib is kept, as ask_version keeps
         * its handle): a driver whose cuInit failed part-way (for one,
         * CUDA_ERROR_SYSTEM_NOT_READY on an HGX system whose fabric manager
         * is not running) may already have started threads or registered
         * exit handlers, and unloading their code would crash the process
         * at exit. */
        return mx_cuda_check(cu, r, "cuInit failed", d);
    }
    /* cuDriverGetVersion first, so that an old driver is named as such and
     * a missing entry point can say which driver lacks it. */
    PFN_cuDriverGetVersion_v2020 get_version;
    if (get_proc("cuDriverGetVersion", (void **)&get_version, MX_CUDA_API_VERSION,
                 CU_GET_PROC_ADDRESS_DEFAULT, NULL) == CUDA_SUCCESS && get_version)
        get_version(&cu->driver_version);
    /* 0 (the version unknown) goes on: fetch_entry_points then fails on
     * cuDriverGetVersion itself, with the driver's own error. */
    if (cu->driver_version > 0 && cu->driver_version < MX_CUDA_DRIVER_MIN)
        return mx_fail(d, MX_ERR_IO,
                       "the CUDA driver is too old: it supports CUDA %d.%d (driver version %d), but mixc is "
                       "built with CUDA %d.%d (NVRTC and cuBLASLt %d), which needs a driver for CUDA %d.0 or "
                       "newer: update the NVIDIA driver to one for CUDA %d%s",
                       cu->driver_version / 1000, cu->driver_version % 1000 / 10, cu->driver_version,
                       CUDA_VERSION / 1000, CUDA_VERSION % 1000 / 10, CUDA_VERSION / 1000,
                       MX_CUDA_DRIVER_MIN / 1000, MX_CUDA_DRIVER_MIN / 1000, MX_CUDA_DRIVER_BRANCH);
    MX_TRY(fetch_entry_points(cu, get_proc, d));
    return open_device(cu, d);
}

static int installed_version;

static void ask_version(void) {
    void *lib = dlopen(DRIVER_LIB, RTLD_NOW | RTLD_LOCAL); /* stays loaded, as mx_cuda_close leaves it */
    PFN_cuDriverGetVersion_v2020 get_version = NULL;
    if (lib)
        *(void **)&get_version = dlsym(lib, "cuDriverGetVersion"); /* one ABI since CUDA 2.2 */
    if (!get_version || get_version(&installed_version) != CUDA_SUCCESS)
        installed_version = 0;
}

int mx_cuda_driver_version(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ask_version);
    return installed_version;
}

mx_status mx_cuda_open(mx_cuda **out, mx_diag *d) {
    *out = NULL;
    mx_cuda *cu = calloc(1, sizeof *cu);
    if (!cu)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory opening the CUDA driver");
    mx_status st = open_driver(cu, d);
    if (st != MX_OK) {
        mx_cuda_close(cu);
        return st;
    }
    *out = cu;
    return MX_OK;
}

void mx_cuda_close(mx_cuda *cu) {
    if (!cu)
        return;
    if (cu->ctx)
        cu->api.DevicePrimaryCtxRelease(cu->device);
    free(cu);
}
