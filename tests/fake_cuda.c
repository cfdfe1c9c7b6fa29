/* fake_cuda.c: a CUDA driver with one H100 and no GPU behind it, for the
 * fault tests (tests/cuda_fault.sh). Built as a library with the driver's
 * soname (libcuda.so.1) in a folder of its own; mixc loads it by soname
 * when that folder comes first on LD_LIBRARY_PATH.
 *
 * Device memory is host memory, every allocation tracked, so that a copy or
 * a free outside one fails as the driver's would. Modules are the cubins
 * NVRTC really built: loading one checks it is an ELF image, fetching a
 * function checks its name is in the image's symbols. Kernels do not run:
 * a launch is checked (block size; the function's static shared memory
 * plus the launch's dynamic bytes against 48 KiB, or against what
 * cuFuncSetAttribute opted it into) and recorded; a stream capture records
 * launches into a graph that a graph launch replays. The current context is
 * per thread, as the driver's: it starts NULL on every thread, and a call
 * that needs one (memory, modules, launches, streams, events, captures)
 * fails with CUDA_ERROR_INVALID_CONTEXT on a thread that has not made the
 * primary context current. The entry points are exactly those mixc asks
 * for (runtime/driver.h's table), each checked against its PFN type.
 *
 * The environment:
 *   FAKE_CUDA_FAULT     oom     the n-th cuMemAlloc fails, CUDA_ERROR_OUT_OF_MEMORY
 *                       launch  the n-th cuLaunchKernel fails,
 *                               CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
 *                       async   the n-th kernel to run faults: the next
 *                               synchronising call reports
 *                               CUDA_ERROR_ILLEGAL_ADDRESS, and every call
 *                               after it too (the error is sticky)
 *                       capture-begin  the n-th cuStreamBeginCapture fails,
 *                               CUDA_ERROR_NOT_SUPPORTED (graphs unsupported)
 *                       capture-end    the n-th cuStreamEndCapture fails,
 *                               CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (the
 *                               capture ends, no graph), as when something
 *                               not capturable ran while capturing
 *   FAKE_CUDA_FAULT_AT  n (default 1)
 *   FAKE_CUDA_MEMORY    the bytes the device has (default 80 GiB); an
 *                       allocation beyond what is free fails as well
 *   FAKE_CUDA_DRIVER_VERSION  what cuDriverGetVersion reports (default
 *                       13000: CUDA 13.0), to present an older driver
 *   FAKE_CUDA_STATIC_SMEM  the static shared memory every function has
 *                       (CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES; default 0)
 *   FAKE_CUDA_REPORT    a file the fake appends what happened to, a line
 *                       each: "alloc BYTES", "oom BYTES", "launch NAME grid
 *                       X,Y,Z block X,Y,Z smem S", "launch-fault NAME ...",
 *                       "launch-invalid NAME ...", "run NAME", "async-fault
 *                       NAME", "capture" (a capture begun), "capture-fault
 *                       begin|end", "graph-launch", "smem-optin NAME
 *                       DYNAMIC" (a function's dynamic shared memory raised
 *                       by cuFuncSetAttribute), "no-context SYMBOL" (a call
 *                       refused: no current context on its thread). */
#define _GNU_SOURCE
#include <elf.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

/* ---- the device ------------------------------------------------------------------ */

#define DEVICE_NAME "NVIDIA H100 80GB HBM3"
#define SMEM_PER_BLOCK 49152
#define SMEM_PER_BLOCK_OPTIN 232448
#define MAX_THREADS_PER_BLOCK 1024

static const struct {
    CUdevice_attribute a;
    int value;
} attributes[] = {
    {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 132},
    {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 9},
    {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0},
    {CU_DEVICE_ATTRIBUTE_CLOCK_RATE, 1980000},
    {CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, 2619000},
    {CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, 5120},
    {CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, 52428800},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, SMEM_PER_BLOCK_OPTIN},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, SMEM_PER_BLOCK},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, 233472},
    {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, 2048},
    {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, MAX_THREADS_PER_BLOCK},
    {CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, 65536},
    {CU_DEVICE_ATTRIBUTE_WARP_SIZE, 32},
};

static const struct {
    CUresult code;
    const char *name, *text;
} errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
     "too many resources requested for launch"},
    {CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
     "operation not permitted when stream is capturing"},
    {CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
     "operation failed due to a previous error during capture"},
};

/* ---- what the fake does ---------------------------------------------------------- */

typedef enum { FAULT_NONE, FAULT_OOM, FAULT_LAUNCH, FAULT_ASYNC, FAULT_CAPTURE_BEGIN, FAULT_CAPTURE_END } fault_kind;

static struct {
    bool initialized;
    fault_kind fault;
    long fault_at;
    size_t total, used;
    int static_smem;
    long allocs, launches, runs, begins, ends;
    CUresult pending; /* a kernel's fault, not yet seen by a synchronising call */
    CUresult sticky;  /* seen: every call returns it from then on */
    bool capturing;
    struct CUgraph_st *captured;
} fake;

static void report(const char *fmt, ...) {
    const char *path = getenv("FAKE_CUDA_REPORT");
    FILE *f = path && *path ? fopen(path, "a") : NULL;
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

/* The device's memory: live allocations, so that a pointer outside them is
 * refused as the driver refuses it. */
typedef struct allocation {
    char *base;
    size_t bytes;
    struct allocation *next;
} allocation;
static allocation *allocations;

/* The allocation holding [p, p + bytes), or NULL. */
static allocation *find(CUdeviceptr p, size_t bytes) {
    for (allocation *a = allocations; a; a = a->next)
        if ((uintptr_t)p >= (uintptr_t)a->base && (uintptr_t)p + bytes <= (uintptr_t)a->base + a->bytes)
            return a;
    return NULL;
}

/* Calls that wait for the device surface a kernel's fault; from then on the
 * context is broken, as a real one is after an illegal address. */
static CUresult synchronise(void) {
    if (fake.pending) {
        fake.sticky = fake.pending;
        fake.pending = CUDA_SUCCESS;
    }
    return fake.sticky;
}

#define STICKY()                                                                         \
    do {                                                                                 \
        if (fake.sticky)                                                                 \
            return fake.sticky;                                                          \
    } while (0)

/* The primary context, and the one current on each thread (NULL until the
 * thread sets it, as with the driver). */
static struct CUctx_st {
    int retained;
} context;
static _Thread_local CUcontext current;

/* A call that works in the current context: refused, and reported (mixc
 * ignores what frees return), on a thread without it. */
#define NEED_CONTEXT(symbol)                                                             \
    do {                                                                                 \
        if (current != &context || context.retained < 1) {                               \
            report("no-context %s", symbol);                                             \
            return CUDA_ERROR_INVALID_CONTEXT;                                           \
        }                                                                                \
    } while (0)

/* ---- modules and kernels --------------------------------------------------------- */

struct CUfunc_st {
    char name[256];
    int static_smem; /* its __shared__ arrays */
    int smem_limit;  /* what a block may use in all: 48 KiB, or what it opted into */
    struct CUfunc_st *next;
};

struct CUmod_st {
    char *image;
    size_t bytes;
    struct CUfunc_st *functions;
};

typedef struct {
    struct CUfunc_st *f;
    unsigned grid[3], block[3], smem;
} launch;

struct CUgraph_st {
    launch *launches;
    int n, cap;
};

struct CUgraphExec_st {
    struct CUgraph_st copy;
};

/* A kernel running: recorded, and the one that faults in async mode. */
static void run(const launch *l) {
    report("run %s", l->f->name);
    if (fake.fault == FAULT_ASYNC && ++fake.runs == fake.fault_at) {
        fake.pending = CUDA_ERROR_ILLEGAL_ADDRESS;
        report("async-fault %s", l->f->name);
    }
}

static CUresult append(struct CUgraph_st *g, const launch *l) {
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 16;
        launch *grown = realloc(g->launches, (size_t)cap * sizeof *grown);
        if (!grown)
            return CUDA_ERROR_OUT_OF_MEMORY;
        g->launches = grown, g->cap = cap;
    }
    g->launches[g->n++] = *l;
    return CUDA_SUCCESS;
}

/* ---- the entry points ------------------------------------------------------------ */

static CUresult fake_GetErrorName(CUresult e, const char **s) {
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++)
        if (errors[i].code == e)
            return *s = errors[i].name, CUDA_SUCCESS;
    return *s = NULL, CUDA_ERROR_INVALID_VALUE;
}

static CUresult fake_GetErrorString(CUresult e, const char **s) {
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++)
        if (errors[i].code == e)
            return *s = errors[i].text, CUDA_SUCCESS;
    return *s = NULL, CUDA_ERROR_INVALID_VALUE;
}

/* CUDA 13.0, or FAKE_CUDA_DRIVER_VERSION's (read at each call: mixc asks
 * before cuInit too). */
static CUresult fake_DriverGetVersion(int *v) {
    const char *version = getenv("FAKE_CUDA_DRIVER_VERSION");
    *v = version && *version ? atoi(version) : 13000;
    return CUDA_SUCCESS;
}

static CUresult fake_DeviceGetCount(int *n) { return *n = 1, CUDA_SUCCESS; }

static CUresult fake_DeviceGet(CUdevice *dev, int ordinal) {
    if (ordinal != 0)
        return CUDA_ERROR_INVALID_VALUE;
    return *dev = 0, CUDA_SUCCESS;
}

static CUresult fake_DeviceGetName(char *name, int len, CUdevice dev) {
    if (dev != 0 || len < 1)
        return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "%s", DEVICE_NAME);
    return CUDA_SUCCESS;
}

static CUresult fake_DeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice dev) {
    if (dev != 0)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof attributes / sizeof *attributes; i++)
        if (attributes[i].a == a)
            return *v = attributes[i].value, CUDA_SUCCESS;
    report("unknown-attribute %d", (int)a);
    return CUDA_ERROR_NOT_SUPPORTED;
}

static CUresult fake_DeviceTotalMem(size_t *bytes, CUdevice dev) {
    if (dev != 0)
        return CUDA_ERROR_INVALID_VALUE;
    return *bytes = fake.total, CUDA_SUCCESS;
}

static CUresult fake_DevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev) {
    if (dev != 0)
        return CUDA_ERROR_INVALID_VALUE;
    context.retained++;
    return *ctx = &context, CUDA_SUCCESS;
}

static CUresult fake_DevicePrimaryCtxRelease(CUdevice dev) {
    if (dev != 0 || context.retained < 1)
        return CUDA_ERROR_INVALID_VALUE;
    context.retained--;
    return CUDA_SUCCESS;
}

/* NULL unbinds, as the driver's does. */
static CUresult fake_CtxSetCurrent(CUcontext ctx) {
    STICKY();
    if (ctx && (ctx != &context || context.retained < 1))
        return CUDA_ERROR_INVALID_CONTEXT;
    current = ctx;
    return CUDA_SUCCESS;
}

/* A cubin is an ELF64 image; its size is where its section headers end. */
static CUresult fake_ModuleLoadData(CUmodule *out, const void *image) {
    STICKY();
    NEED_CONTEXT("cuModuleLoadData");
    const Elf64_Ehdr *h = image;
    if (!h || memcmp(h->e_ident, ELFMAG, SELFMAG) != 0 || h->e_ident[EI_CLASS] != ELFCLASS64)
        return CUDA_ERROR_INVALID_IMAGE;
    struct CUmod_st *m = calloc(1, sizeof *m);
    if (!m)
        return CUDA_ERROR_OUT_OF_MEMORY;
    m->bytes = h->e_shoff + (size_t)h->e_shnum * h->e_shentsize;
    if (!(m->image = malloc(m->bytes))) {
        free(m);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    memcpy(m->image, image, m->bytes);
    return *out = m, CUDA_SUCCESS;
}

static CUresult fake_ModuleUnload(CUmodule m) {
    NEED_CONTEXT("cuModuleUnload");
    if (!m)
        return CUDA_ERROR_INVALID_HANDLE;
    for (struct CUfunc_st *f = m->functions, *next; f; f = next)
        next = f->next, free(f);
    free(m->image);
    free(m);
    return fake.sticky;
}

/* The name must be a symbol of the image: a NUL-delimited string in it. */
static CUresult fake_ModuleGetFunction(CUfunction *out, CUmodule m, const char *name) {
    STICKY();
    NEED_CONTEXT("cuModuleGetFunction");
    size_t n = strlen(name);
    if (!m || n == 0 || n >= sizeof m->functions->name)
        return CUDA_ERROR_INVALID_VALUE;
    bool found = false;
    for (const char *at = m->image; !found && (at = memmem(at, m->bytes - (size_t)(at - m->image), name, n));
         at++)
        found = at > m->image && at[-1] == '\0' && at + n < m->image + m->bytes && at[n] == '\0';
    if (!found)
        return CUDA_ERROR_NOT_FOUND;
    struct CUfunc_st *f = calloc(1, sizeof *f);
    if (!f)
        return CUDA_ERROR_OUT_OF_MEMORY;
    snprintf(f->name, sizeof f->name, "%s", name);
    f->static_smem = fake.static_smem;
    f->smem_limit = SMEM_PER_BLOCK;
    f->next = m->functions, m->functions = f;
    return *out = f, CUDA_SUCCESS;
}

static CUresult fake_FuncGetAttribute(int *v, CUfunction_attribute a, CUfunction f) {
    STICKY();
    if (!f)
        return CUDA_ERROR_INVALID_HANDLE;
    if (a == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
        return *v = f->smem_limit > f->static_smem ? f->smem_limit - f->static_smem : 0, CUDA_SUCCESS;
    if (a == CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
        return *v = f->static_smem, CUDA_SUCCESS;
    if (a == CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
        return *v = MAX_THREADS_PER_BLOCK, CUDA_SUCCESS;
    return CUDA_ERROR_NOT_SUPPORTED;
}

static CUresult fake_FuncSetAttribute(CUfunction f, CUfunction_attribute a, int v) {
    STICKY();
    if (!f)
        return CUDA_ERROR_INVALID_HANDLE;
    if (a != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
        return CUDA_ERROR_NOT_SUPPORTED;
    /* The driver's rule: this plus the static part within the opt-in. */
    if (v < 0 || (long)v + f->static_smem > SMEM_PER_BLOCK_OPTIN)
        return CUDA_ERROR_INVALID_VALUE;
    f->smem_limit = f->static_smem + v > SMEM_PER_BLOCK ? f->static_smem + v : SMEM_PER_BLOCK;
    report("smem-optin %s %d", f->name, v);
    return CUDA_SUCCESS;
}

/* Launches l: checked, counted (the launch fault), then captured or run. */
static CUresult enqueue(const launch *l, bool has_params) {
    STICKY();
    const char *what = "launch";
    CUresult r = CUDA_SUCCESS;
    if (!l->grid[0] || !l->grid[1] || !l->grid[2] || !l->block[0] || !l->block[1] || !l->block[2] ||
        (unsigned long)l->block[0] * l->block[1] * l->block[2] > MAX_THREADS_PER_BLOCK ||
        (unsigned long)l->smem + (unsigned long)l->f->static_smem > (unsigned long)l->f->smem_limit || !has_params)
        what = "launch-invalid", r = CUDA_ERROR_INVALID_VALUE;
    else if (fake.fault == FAULT_LAUNCH && ++fake.launches == fake.fault_at)
        what = "launch-fault", r = CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
    report("%s %s grid %u,%u,%u block %u,%u,%u smem %u", what, l->f->name, l->grid[0], l->grid[1], l->grid[2],
           l->block[0], l->block[1], l->block[2], l->smem);
    if (r != CUDA_SUCCESS)
        return r;
    if (fake.capturing)
        return append(fake.captured, l);
    run(l);
    return CUDA_SUCCESS;
}

static CUresult fake_LaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                  unsigned bz, unsigned smem, CUstream s, void **params, void **extra) {
    (void)s, (void)extra;
    NEED_CONTEXT("cuLaunchKernel");
    if (!f)
        return CUDA_ERROR_INVALID_HANDLE;
    return enqueue(&(launch){f, {gx, gy, gz}, {bx, by, bz}, smem}, params != NULL);
}

/* The fake cuBLASLt's products (tests/fake_cublaslt.c, which links this
 * library): a kernel of cuBLASLt's own, launched like any other. */
CUresult fake_cuda_launch_library_kernel(const char *name);
CUresult fake_cuda_launch_library_kernel(const char *name) {
    static struct CUfunc_st library_kernels[8];
    NEED_CONTEXT(name); /* cuBLASLt works in the thread's current context */
    struct CUfunc_st *f = NULL;
    for (size_t i = 0; !f && i < sizeof library_kernels / sizeof *library_kernels; i++)
        if (!library_kernels[i].name[0] || strcmp(library_kernels[i].name, name) == 0)
            f = &library_kernels[i];
    if (!f)
        return CUDA_ERROR_OUT_OF_MEMORY;
    snprintf(f->name, sizeof f->name, "%s", name);
    f->smem_limit = SMEM_PER_BLOCK;
    return enqueue(&(launch){f, {1, 1, 1}, {128, 1, 1}, 0}, true);
}

static CUresult fake_MemGetInfo(size_t *free_bytes, size_t *total) {
    STICKY();
    NEED_CONTEXT("cuMemGetInfo");
    *free_bytes = fake.total - fake.used, *total = fake.total;
    return CUDA_SUCCESS;
}

static CUresult fake_MemAlloc(CUdeviceptr *p, size_t bytes) {
    STICKY();
    NEED_CONTEXT("cuMemAlloc");
    if (bytes == 0)
        return CUDA_ERROR_INVALID_VALUE;
    bool faulted = fake.fault == FAULT_OOM && ++fake.allocs == fake.fault_at;
    allocation *a = NULL;
    if (faulted || bytes > fake.total - fake.used || !(a = calloc(1, sizeof *a)) || !(a->base = malloc(bytes))) {
        free(a);
        report("oom %zu", bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    a->bytes = bytes;
    a->next = allocations, allocations = a;
    fake.used += bytes;
    report("alloc %zu", bytes);
    *p = (CUdeviceptr)(uintptr_t)a->base;
    return CUDA_SUCCESS;
}

static CUresult fake_MemFree(CUdeviceptr p) {
    NEED_CONTEXT("cuMemFree");
    for (allocation **at = &allocations; *at; at = &(*at)->next)
        if ((uintptr_t)(*at)->base == p) {
            allocation *a = *at;
            *at = a->next;
            fake.used -= a->bytes;
            free(a->base), free(a);
            return fake.sticky;
        }
    return CUDA_ERROR_INVALID_VALUE;
}

static CUresult fake_MemcpyHtoD(CUdeviceptr dst, const void *src, size_t bytes) {
    NEED_CONTEXT("cuMemcpyHtoD");
    if (fake.capturing)
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    CUresult r = synchronise();
    if (r != CUDA_SUCCESS)
        return r;
    if (!find(dst, bytes))
        return CUDA_ERROR_INVALID_VALUE;
    memcpy((void *)(uintptr_t)dst, src, bytes);
    return CUDA_SUCCESS;
}

static CUresult fake_MemcpyDtoH(void *dst, CUdeviceptr src, size_t bytes) {
    NEED_CONTEXT("cuMemcpyDtoH");
    if (fake.capturing)
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    CUresult r = synchronise();
    if (r != CUDA_SUCCESS)
        return r;
    if (!find(src, bytes))
        return CUDA_ERROR_INVALID_VALUE;
    memcpy(dst, (const void *)(uintptr_t)src, bytes);
    return CUDA_SUCCESS;
}

static CUresult fake_MemsetD8(CUdeviceptr dst, unsigned char v, size_t n) {
    NEED_CONTEXT("cuMemsetD8");
    if (fake.capturing)
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    STICKY();
    if (!find(dst, n))
        return CUDA_ERROR_INVALID_VALUE;
    memset((void *)(uintptr_t)dst, v, n);
    return CUDA_SUCCESS;
}

/* One stream is all mixc makes; its handle is its own allocation. */
struct CUstream_st {
    int unused;
};

static CUresult fake_StreamCreate(CUstream *s, unsigned flags) {
    (void)flags;
    STICKY();
    NEED_CONTEXT("cuStreamCreate");
    return (*s = calloc(1, sizeof **s)) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult fake_StreamSynchronize(CUstream s) {
    (void)s;
    NEED_CONTEXT("cuStreamSynchronize");
    if (fake.capturing)
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    return synchronise();
}

static CUresult fake_StreamDestroy(CUstream s) {
    NEED_CONTEXT("cuStreamDestroy");
    free(s);
    return fake.sticky;
}

struct CUevent_st {
    bool recorded;
};

static CUresult fake_EventCreate(CUevent *e, unsigned flags) {
    (void)flags;
    STICKY();
    NEED_CONTEXT("cuEventCreate");
    return (*e = calloc(1, sizeof **e)) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult fake_EventRecord(CUevent e, CUstream s) {
    (void)s;
    STICKY();
    NEED_CONTEXT("cuEventRecord");
    if (!e)
        return CUDA_ERROR_INVALID_HANDLE;
    e->recorded = true;
    return CUDA_SUCCESS;
}

static CUresult fake_EventSynchronize(CUevent e) {
    NEED_CONTEXT("cuEventSynchronize");
    if (!e)
        return CUDA_ERROR_INVALID_HANDLE;
    return synchronise();
}

/* Nothing ran, so nothing took time; but both events must have happened. */
static CUresult fake_EventElapsedTime(float *ms, CUevent start, CUevent end) {
    STICKY();
    NEED_CONTEXT("cuEventElapsedTime");
    if (!start || !end || !start->recorded || !end->recorded)
        return CUDA_ERROR_INVALID_HANDLE;
    return *ms = 0, CUDA_SUCCESS;
}

static CUresult fake_EventDestroy(CUevent e) {
    NEED_CONTEXT("cuEventDestroy");
    free(e);
    return fake.sticky;
}

static CUresult fake_GraphDestroy(CUgraph g);

static CUresult fake_StreamBeginCapture(CUstream s, CUstreamCaptureMode mode) {
    (void)s, (void)mode;
    STICKY();
    NEED_CONTEXT("cuStreamBeginCapture");
    if (fake.capturing)
        return CUDA_ERROR_INVALID_VALUE;
    if (fake.fault == FAULT_CAPTURE_BEGIN && ++fake.begins == fake.fault_at) {
        report("capture-fault begin");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if (!(fake.captured = calloc(1, sizeof *fake.captured)))
        return CUDA_ERROR_OUT_OF_MEMORY;
    fake.capturing = true;
    report("capture");
    return CUDA_SUCCESS;
}

/* A failing end ends the capture all the same and gives no graph, as the
 * driver's does for an invalidated capture. */
static CUresult fake_StreamEndCapture(CUstream s, CUgraph *g) {
    (void)s;
    NEED_CONTEXT("cuStreamEndCapture");
    if (!fake.capturing)
        return CUDA_ERROR_INVALID_VALUE;
    fake.capturing = false;
    *g = fake.captured, fake.captured = NULL;
    if (fake.fault == FAULT_CAPTURE_END && ++fake.ends == fake.fault_at) {
        report("capture-fault end");
        fake_GraphDestroy(*g);
        *g = NULL;
        return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    }
    return CUDA_SUCCESS;
}

static CUresult fake_GraphInstantiate(CUgraphExec *out, CUgraph g, unsigned long long flags) {
    (void)flags;
    STICKY();
    NEED_CONTEXT("cuGraphInstantiateWithFlags");
    if (!g)
        return CUDA_ERROR_INVALID_VALUE;
    struct CUgraphExec_st *x = calloc(1, sizeof *x);
    if (!x)
        return CUDA_ERROR_OUT_OF_MEMORY;
    for (int i = 0; i < g->n; i++)
        if (append(&x->copy, &g->launches[i]) != CUDA_SUCCESS) {
            free(x->copy.launches), free(x);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    return *out = x, CUDA_SUCCESS;
}

static CUresult fake_GraphLaunch(CUgraphExec x, CUstream s) {
    (void)s;
    STICKY();
    NEED_CONTEXT("cuGraphLaunch");
    if (!x)
        return CUDA_ERROR_INVALID_HANDLE;
    report("graph-launch");
    for (int i = 0; i < x->copy.n; i++)
        run(&x->copy.launches[i]);
    return CUDA_SUCCESS;
}

static CUresult fake_GraphExecDestroy(CUgraphExec x) {
    if (x)
        free(x->copy.launches);
    free(x);
    return fake.sticky;
}

static CUresult fake_GraphDestroy(CUgraph g) {
    if (g)
        free(g->launches);
    free(g);
    return fake.sticky;
}

/* ---- finding them ---------------------------------------------------------------- */

/* Every entry point of mixc's table, each fake stored in the field of the
 * PFN type mixc keeps it as: a fake with another signature does not
 * compile. */
#define FAKE_FIELD(field, symbol, type) .field = fake_##field,
static const mx_cuda_api fakes = {MX_CUDA_ENTRY_POINTS(FAKE_FIELD)};
#undef FAKE_FIELD
#define FAKE_ENTRY(field, symbol, type) {symbol, offsetof(mx_cuda_api, field)},
static const struct {
    const char *symbol;
    size_t offset;
} entry_points[] = {MX_CUDA_ENTRY_POINTS(FAKE_ENTRY)};
#undef FAKE_ENTRY

CUresult cuInit(unsigned flags) {
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (fake.initialized)
        return CUDA_SUCCESS;
    const char *fault = getenv("FAKE_CUDA_FAULT"), *at = getenv("FAKE_CUDA_FAULT_AT"),
               *memory = getenv("FAKE_CUDA_MEMORY");
    if (!fault || !*fault)
        fake.fault = FAULT_NONE;
    else if (strcmp(fault, "oom") == 0)
        fake.fault = FAULT_OOM;
    else if (strcmp(fault, "launch") == 0)
        fake.fault = FAULT_LAUNCH;
    else if (strcmp(fault, "async") == 0)
        fake.fault = FAULT_ASYNC;
    else if (strcmp(fault, "capture-begin") == 0)
        fake.fault = FAULT_CAPTURE_BEGIN;
    else if (strcmp(fault, "capture-end") == 0)
        fake.fault = FAULT_CAPTURE_END;
    else
        return CUDA_ERROR_INVALID_VALUE; /* a test that asks for a fault the fake has not */
    fake.fault_at = at && *at ? atol(at) : 1;
    fake.total = memory && *memory ? strtoull(memory, NULL, 10) : (size_t)80 << 30;
    const char *smem = getenv("FAKE_CUDA_STATIC_SMEM");
    fake.static_smem = smem && *smem ? atoi(smem) : 0;
    fake.initialized = true;
    report("device %s total %zu", DEVICE_NAME, fake.total);
    return CUDA_SUCCESS;
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *status) {
    (void)flags;
    CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    *pfn = NULL;
    for (size_t i = 0; i < sizeof entry_points / sizeof *entry_points; i++)
        if (strcmp(entry_points[i].symbol, symbol) == 0) {
            found = version >= MX_CUDA_API_VERSION ? CU_GET_PROC_ADDRESS_SUCCESS
                                                   : CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
            if (found == CU_GET_PROC_ADDRESS_SUCCESS)
                memcpy(pfn, (const char *)&fakes + entry_points[i].offset, sizeof *pfn);
        }
    if (status)
        *status = found;
    return *pfn ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

/* NVRTC opens the driver too, and asks it for private tables of the
 * toolkit's own (to check the GPU it compiles for, when there is one): this
 * driver has none, as a driver without the feature would answer. */
CUresult cuGetExportTable(const void **table, const CUuuid *id) {
    (void)id;
    *table = NULL;
    return CUDA_ERROR_NOT_SUPPORTED;
}
