/* dynlib.h: a shared library loaded on its first use, its entry points
 * resolved into an api struct.
 *
 * Used for the libraries a command may never need (NVRTC, cuBLASLt:
 * cudalibs.h) and for the one whose start-up must be steered first
 * (OpenBLAS: cpu_blas.h). Looked for by soname (LD_LIBRARY_PATH, the
 * loader's cache), then at a fallback path; a library that is there but does
 * not load is reported as it is, not passed over. */
#ifndef MX_DYNLIB_H
#define MX_DYNLIB_H

#include <stdbool.h>
#include <stddef.h>

#include "ir.h"

typedef struct {
    const char *symbol;
    size_t offset; /* of its field in the library's api struct */
} mx_dynlib_entry;

/* One library: where to look, what to take, what to say, and how the one
 * load went. */
typedef struct {
    const char *name;      /* in messages: "NVRTC" */
    const char *soname;    /* "libnvrtc.so.13" */
    const char *path;      /* tried when the soname is not found; NULL: none */
    const char *if_missing; /* "install the CUDA toolkit's NVRTC, or use --device cpu / ref" */
    const char *if_older;   /* a symbol missing: "it is older than the CUDA toolkit mixc was built with" */
    const mx_dynlib_entry *entries;
    size_t n_entries;
    void *api;
    bool tried, loaded;
    char error[512];
} mx_dynlib;

/* l's entry points, loading it on the first call (from any thread). NULL and
 * MX_ERR_IO in d when it cannot be loaded ("NVRTC (libnvrtc.so.13) not
 * found: install ..."); a failed load is not retried, so every later call
 * says the same. */
const void *mx_dynlib_get(mx_dynlib *l, mx_diag *d);

/* Whether l has been loaded. */
bool mx_dynlib_loaded(mx_dynlib *l);

#endif
