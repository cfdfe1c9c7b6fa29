/* cudalibs.c: loads NVRTC and cuBLASLt on first use (see cudalibs.h). */
#include "cudalibs.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"

typedef struct {
    const char *symbol;
    size_t offset; /* of its field in the library's api struct */
} entry_point;

/* One library: where to look, what to take, and how the one load went. */
typedef struct {
    const char *name;    /* in messages: "NVRTC" */
    const char *package; /* the part of the toolkit that ships it */
    const char *soname, *path;
    const entry_point *entries;
    size_t n_entries;
    void *api;
    bool tried, loaded;
    char error[512];
} cuda_lib;

static mx_nvrtc_api nvrtc_api;
static mx_nvjitlink_api nvjitlink_api;
static mx_cublaslt_api cublaslt_api;

#define NVRTC_ENTRY(field, symbol) {#symbol, offsetof(mx_nvrtc_api, field)},
static const entry_point nvrtc_entries[] = {MX_NVRTC_ENTRY_POINTS(NVRTC_ENTRY)};
#undef NVRTC_ENTRY
#define NVJITLINK_ENTRY(field, symbol) {#symbol, offsetof(mx_nvjitlink_api, field)},
static const entry_point nvjitlink_entries[] = {MX_NVJITLINK_ENTRY_POINTS(NVJITLINK_ENTRY)};
#undef NVJITLINK_ENTRY
#define CUBLASLT_ENTRY(field, symbol) {#symbol, offsetof(mx_cublaslt_api, field)},
static const entry_point cublaslt_entries[] = {MX_CUBLASLT_ENTRY_POINTS(CUBLASLT_ENTRY)};
#undef CUBLASLT_ENTRY

static cuda_lib nvrtc = {
    .name = "NVRTC",
    .package = "NVRTC",
    .soname = MIXC_NVRTC_SONAME,
    .path = MIXC_CUDA_LIB_DIR "/" MIXC_NVRTC_SONAME,
    .entries = nvrtc_entries,
    .n_entries = sizeof nvrtc_entries / sizeof *nvrtc_entries,
    .api = &nvrtc_api,
};
static cuda_lib nvjitlink = {
    .name = "nvJitLink",
    .package = "nvJitLink",
    .soname = MIXC_NVJITLINK_SONAME,
    .path = MIXC_CUDA_LIB_DIR "/" MIXC_NVJITLINK_SONAME,
    .entries = nvjitlink_entries,
    .n_entries = sizeof nvjitlink_entries / sizeof *nvjitlink_entries,
    .api = &nvjitlink_api,
};
static cuda_lib cublaslt = {
    .name = "cuBLASLt",
    .package = "cuBLAS",
    .soname = MIXC_CUBLASLT_SONAME,
    .path = MIXC_CUDA_LIB_DIR "/" MIXC_CUBLASLT_SONAME,
    .entries = cublaslt_entries,
    .n_entries = sizeof cublaslt_entries / sizeof *cublaslt_entries,
    .api = &cublaslt_api,
};

/* Guards the libraries' state: compiles run on several threads at once. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* dlopen(file), or NULL with the reason in l->error and *missing set when
 * there was simply no such file. */
static void *open_file(cuda_lib *l, const char *file, bool *missing) {
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        *missing = !why || strstr(why, "No such file");
        snprintf(l->error, sizeof l->error, "cannot load %s (%s): %s", l->name, file,
                 why ? why : "dlopen failed");
    }
    return h;
}

/* The library by soname (LD_LIBRARY_PATH, the loader cache), else from the
 * build's toolkit; then every entry point. A library that is there but does
 * not load is reported as it is, not passed over. */
static bool load(cuda_lib *l) {
    bool missing;
    void *h = open_file(l, l->soname, &missing);
    if (!h && missing)
        h = open_file(l, l->path, &missing);
    if (!h) {
        if (missing)
            snprintf(l->error, sizeof l->error,
                     "%s (%s) not found: install the CUDA toolkit's %s, or use --device cpu / ref",
                     l->name, l->soname, l->package);
        return false;
    }
    for (size_t i = 0; i < l->n_entries; i++) {
        void *fn = dlsym(h, l->entries[i].symbol);
        if (!fn) {
            snprintf(l->error, sizeof l->error,
                     "%s (%s) has no %s: it is older than the CUDA toolkit mixc was built with",
                     l->name, l->soname, l->entries[i].symbol);
            dlclose(h);
            return false;
        }
        /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
        *(void **)((char *)l->api + l->entries[i].offset) = fn;
    }
    return true;
}

/* l's entry points, loading it on the first call; a failed load is not
 * retried, so every later call gives the same message. */
static const void *get(cuda_lib *l, mx_diag *d) {
    pthread_mutex_lock(&lock);
    if (!l->tried) {
        l->tried = true;
        l->loaded = load(l);
    }
    bool loaded = l->loaded;
    pthread_mutex_unlock(&lock);
    if (loaded)
        return l->api;
    mx_fail(d, MX_ERR_IO, "%s", l->error);
    return NULL;
}

const mx_nvrtc_api *mx_nvrtc_api_get(mx_diag *d) { return get(&nvrtc, d); }

const mx_nvjitlink_api *mx_nvjitlink_api_get(mx_diag *d) { return get(&nvjitlink, d); }

const mx_cublaslt_api *mx_cublaslt_api_get(mx_diag *d) { return get(&cublaslt, d); }

bool mx_cuda_libs_loaded(void) {
    pthread_mutex_lock(&lock);
    bool any = nvrtc.loaded || nvjitlink.loaded || cublaslt.loaded;
    pthread_mutex_unlock(&lock);
    return any;
}
