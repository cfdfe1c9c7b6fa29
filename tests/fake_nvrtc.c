/* fake_nvrtc.c: an NVRTC whose every compile fails, for the fault test
 * (tests/nvrtc_fault.sh). Built as a library with NVRTC's soname in a
 * folder of its own; mixc loads it by soname when that folder is on
 * LD_LIBRARY_PATH. Its log says what NVRTC says about an error in the body
 * of the program's second kernel (the first when there is one):
 * "NAME(LINE): error: ...". It writes the kernel it picked, found its own
 * way, to the file $FAKE_NVRTC_REPORT, for the test to compare with what
 * mixc says. */
#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _nvrtcProgram {
    char log[1024];
};

nvrtcResult nvrtcVersion(int *major, int *minor) {
    *major = 13, *minor = 0;
    return NVRTC_SUCCESS;
}

const char *nvrtcGetErrorString(nvrtcResult r) {
    return r == NVRTC_SUCCESS ? "NVRTC_SUCCESS" : r == NVRTC_ERROR_COMPILATION ? "NVRTC_ERROR_COMPILATION"
                                                                               : "NVRTC_ERROR_INVALID_INPUT";
}

/* The line of the k-th "__global__" (1-based) and the kernel's name: the
 * identifier before the first '(' after its "__launch_bounds__(...)". */
static int kernel_line(const char *src, int k, char *name, size_t size) {
    int line = 1, seen = 0;
    for (const char *at = src; *at; at++) {
        if (strncmp(at, "__global__", 10) == 0 && ++seen == k) {
            const char *n = strchr(strstr(at, "__launch_bounds__("), ')') + 1;
            while (*n == ' ' || *n == '\n')
                n++;
            snprintf(name, size, "%.*s", (int)strcspn(n, "("), n);
            return line;
        }
        line += *at == '\n';
    }
    return 0;
}

nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int n_headers,
                               const char *const *headers, const char *const *include_names) {
    (void)n_headers, (void)headers, (void)include_names;
    struct _nvrtcProgram *p = calloc(1, sizeof *p);
    if (!p)
        return NVRTC_ERROR_OUT_OF_MEMORY;
    char kernel[128] = "";
    int line = kernel_line(src, 2, kernel, sizeof kernel);
    if (!line)
        line = kernel_line(src, 1, kernel, sizeof kernel);
    snprintf(p->log, sizeof p->log,
             "%s(%d): error: identifier \"mx_injected_fault\" is undefined\n\n"
             "1 error detected in the compilation of \"%s\".\n",
             name, line + 3, name);
    const char *report = getenv("FAKE_NVRTC_REPORT");
    FILE *f = report ? fopen(report, "a") : NULL;
    if (f) {
        fprintf(f, "%s\n", kernel);
        fclose(f);
    }
    *prog = p;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int n, const char *const *opts) {
    (void)prog, (void)n, (void)opts;
    return NVRTC_ERROR_COMPILATION;
}

nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog) {
    free(*prog);
    *prog = NULL;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *size) {
    *size = strlen(prog->log) + 1;
    return NVRTC_SUCCESS;
}

nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log) {
    strcpy(log, prog->log);
    return NVRTC_SUCCESS;
}

/* A failed compile has no outputs. */
nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *size) {
    (void)prog, *size = 0;
    return NVRTC_ERROR_INVALID_PROGRAM;
}
nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *out) {
    (void)prog, (void)out;
    return NVRTC_ERROR_INVALID_PROGRAM;
}
nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *size) {
    (void)prog, *size = 0;
    return NVRTC_ERROR_INVALID_PROGRAM;
}
nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *out) {
    (void)prog, (void)out;
    return NVRTC_ERROR_INVALID_PROGRAM;
}
