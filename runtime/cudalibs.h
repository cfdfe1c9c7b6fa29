/* cudalibs.h: NVRTC, nvJitLink and cuBLASLt, loaded when first needed.
 *
 * Linked, these libraries would be mapped by every command, `mixc
 * --version` included (about 240 MB and a third of a second). So mixc uses
 * their headers for types only and dlopens each library on its first use:
 * by soname (MIXC_NVRTC_SONAME, MIXC_CUBLASLT_SONAME: those of the toolkit
 * found at build time), then in that toolkit's library folder
 * (MIXC_CUDA_LIB_DIR). A missing library is an error of the call that needs
 * it, never a failure to start. See docs/runtime.md. */
#ifndef MX_CUDALIBS_H
#define MX_CUDALIBS_H

#include <cublasLt.h>
#include <nvJitLink.h>
#include <nvrtc.h>
#include <stdbool.h>

#include "mixc.h"

/* The entry points each library is asked for: X(field, symbol). A field is
 * the symbol without the library's prefix (nv->CompileProgram), and has the
 * type of the header's declaration. */
#define MX_NVRTC_ENTRY_POINTS(X)                                                         \
    X(Version, nvrtcVersion)                                                             \
    X(GetErrorString, nvrtcGetErrorString)                                               \
    X(CreateProgram, nvrtcCreateProgram)                                                 \
    X(CompileProgram, nvrtcCompileProgram)                                               \
    X(DestroyProgram, nvrtcDestroyProgram)                                               \
    X(GetProgramLogSize, nvrtcGetProgramLogSize)                                         \
    X(GetProgramLog, nvrtcGetProgramLog)                                                 \
    X(GetCUBINSize, nvrtcGetCUBINSize)                                                   \
    X(GetCUBIN, nvrtcGetCUBIN)                                                           \
    X(GetPTXSize, nvrtcGetPTXSize)                                                       \
    X(GetPTX, nvrtcGetPTX)

/* nvJitLink joins the cubins of a module's programs (compiled apart, in
 * parallel) into one. */
#define MX_NVJITLINK_ENTRY_POINTS(X)                                                     \
    X(Create, nvJitLinkCreate)                                                           \
    X(Destroy, nvJitLinkDestroy)                                                         \
    X(AddData, nvJitLinkAddData)                                                         \
    X(Complete, nvJitLinkComplete)                                                       \
    X(GetLinkedCubinSize, nvJitLinkGetLinkedCubinSize)                                   \
    X(GetLinkedCubin, nvJitLinkGetLinkedCubin)                                           \
    X(GetErrorLogSize, nvJitLinkGetErrorLogSize)                                         \
    X(GetErrorLog, nvJitLinkGetErrorLog)

#define MX_CUBLASLT_ENTRY_POINTS(X)                                                      \
    X(Create, cublasLtCreate)                                                            \
    X(Destroy, cublasLtDestroy)                                                          \
    X(MatmulDescCreate, cublasLtMatmulDescCreate)                                        \
    X(MatmulDescDestroy, cublasLtMatmulDescDestroy)                                      \
    X(MatmulDescSetAttribute, cublasLtMatmulDescSetAttribute)                            \
    X(MatrixLayoutCreate, cublasLtMatrixLayoutCreate)                                    \
    X(MatrixLayoutDestroy, cublasLtMatrixLayoutDestroy)                                  \
    X(MatrixLayoutSetAttribute, cublasLtMatrixLayoutSetAttribute)                        \
    X(MatmulPreferenceCreate, cublasLtMatmulPreferenceCreate)                            \
    X(MatmulPreferenceSetAttribute, cublasLtMatmulPreferenceSetAttribute)                \
    X(MatmulPreferenceDestroy, cublasLtMatmulPreferenceDestroy)                          \
    X(MatmulAlgoGetHeuristic, cublasLtMatmulAlgoGetHeuristic)                            \
    X(Matmul, cublasLtMatmul)

#define MX_CUDALIBS_FIELD(field, symbol) __typeof__(symbol) *field;
typedef struct {
    MX_NVRTC_ENTRY_POINTS(MX_CUDALIBS_FIELD)
} mx_nvrtc_api;
typedef struct {
    MX_NVJITLINK_ENTRY_POINTS(MX_CUDALIBS_FIELD)
} mx_nvjitlink_api;
typedef struct {
    MX_CUBLASLT_ENTRY_POINTS(MX_CUDALIBS_FIELD)
} mx_cublaslt_api;
#undef MX_CUDALIBS_FIELD

/* The library's entry points, loading it on the first call (from any
 * thread). NULL and MX_ERR_IO in d when it cannot be loaded: "NVRTC
 * (libnvrtc.so.13) not found: install the CUDA toolkit's NVRTC, or use
 * --device cpu / ref"; a failed load is not retried. */
const mx_nvrtc_api *mx_nvrtc_api_get(mx_diag *d);
const mx_nvjitlink_api *mx_nvjitlink_api_get(mx_diag *d);
const mx_cublaslt_api *mx_cublaslt_api_get(mx_diag *d);

/* Whether any of the libraries is loaded: for tests that check that a command did
 * without them. */
bool mx_cuda_libs_loaded(void);

#endif
