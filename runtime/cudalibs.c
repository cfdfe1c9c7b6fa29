/* cudalibs.c: loads NVRTC and cuBLASLt on first use (see cudalibs.h). */
#include "cudalibs.h"

#include <stddef.h>

#include "dynlib.h"

static mx_nvrtc_api nvrtc_api;
static mx_cublaslt_api cublaslt_api;

#define NVRTC_ENTRY(field, symbol) {#symbol, offsetof(mx_nvrtc_api, field)},
static const mx_dynlib_entry nvrtc_entries[] = {MX_NVRTC_ENTRY_POINTS(NVRTC_ENTRY)};
#undef NVRTC_ENTRY
#define CUBLASLT_ENTRY(field, symbol) {#symbol, offsetof(mx_cublaslt_api, field)},
static const mx_dynlib_entry cublaslt_entries[] = {MX_CUBLASLT_ENTRY_POINTS(CUBLASLT_ENTRY)};
#undef CUBLASLT_ENTRY

/* A library of the toolkit: its name in messages, the part of the toolkit
 * that ships it, its soname, and its api struct with the entry points. */
#define CUDA_LIB(LABEL, PACKAGE, SONAME, ENTRIES, API)                                                      \
    {.name = LABEL, .soname = SONAME, .path = MIXC_CUDA_LIB_DIR "/" SONAME,                                  \
     .if_missing = "install the CUDA toolkit's " PACKAGE ", or use --device cpu / ref",                       \
     .if_older = "it is older than the CUDA toolkit mixc was built with", .entries = ENTRIES,                \
     .n_entries = sizeof ENTRIES / sizeof *ENTRIES, .api = &API}
static mx_dynlib nvrtc = CUDA_LIB("NVRTC", "NVRTC", MIXC_NVRTC_SONAME, nvrtc_entries, nvrtc_api);
static mx_dynlib cublaslt = CUDA_LIB("cuBLASLt", "cuBLAS", MIXC_CUBLASLT_SONAME, cublaslt_entries, cublaslt_api);
#undef CUDA_LIB

const mx_nvrtc_api *mx_nvrtc_api_get(mx_diag *d) { return mx_dynlib_get(&nvrtc, d); }

const mx_cublaslt_api *mx_cublaslt_api_get(mx_diag *d) { return mx_dynlib_get(&cublaslt, d); }

bool mx_cuda_libs_loaded(void) { return mx_dynlib_loaded(&nvrtc) || mx_dynlib_loaded(&cublaslt); }
