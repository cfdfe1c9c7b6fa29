/* rtc.c: one NVRTC compile, and ptxas's resource report read from its log
 * (see rtc.h). */
#include "embed.h"
#include "rtc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cudalibs.h"
#include "ir.h"

/* Lines of a failed compile's log that go into the message. */
#define LOG_LINES 40

/* Why these, and why not others (-default-device, --use_fast_math, -lineinfo):
 * docs/runtime.md. */
const char *const mx_nvrtc_fixed_opts[MX_NVRTC_N_FIXED_OPTS] = {
    "--std=c++17",
    ("-I" MIXC_CUDA_INCLUDE), /* cuda_fp16.h and cuda_bf16.h: NVRTC has no include path */
    "--ptxas-options=-v",   /* the resource report parsed below */
};

void mx_cubin_free(mx_cubin *c) {
    for (int i = 0; i < c->n_kernels; i++)
        free(c->kernels[i].name);
    free(c->kernels);
    free(c->cubin);
    free(c->ptx);
    memset(c, 0, sizeof *c);
}

const mx_kernel_usage *mx_cubin_kernel(const mx_cubin *c, const char *name) {
    for (int i = 0; i < c->n_kernels; i++)
        if (strcmp(c->kernels[i].name, name) == 0)
            return &c->kernels[i];
    return NULL;
}

void mx_nvrtc_version(int *major, int *minor) {
    const mx_nvrtc_api *nv = mx_nvrtc_api_get(NULL);
    if (!nv || nv->Version(major, minor) != NVRTC_SUCCESS)
        *major = *minor = -1;
}

/* ---- the resource report --------------------------------------------------- */

/* ptxas -v writes, per entry function:
 *   ptxas info    : Compiling entry function 'NAME' for 'sm_90'
 *   ptxas info    : Function properties for NAME
 *   ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
 *   ptxas info    : Used 12 registers, used 1 barriers, 128 bytes smem, 376 bytes cmem[0]
 * "Function properties" also comes for device functions that were not inlined;
 * their stack line belongs to no kernel. Items are matched by their label, not
 * their position, because the set of items differs between targets. */

/* Reads the items of a comma-separated list ("Used 12 registers, used 1
 * barriers, 128 bytes smem") on the line [s, end) into k: each item's number
 * is its first digits, its label the rest. */
static void read_items(const char *s, const char *end, mx_kernel_usage *k) {
    static const struct {
        const char *label;
        size_t offset;
    } labels[] = {
        {"registers", offsetof(mx_kernel_usage, registers)},
        {"barriers", offsetof(mx_kernel_usage, barriers)},
        {"bytes smem", offsetof(mx_kernel_usage, smem)},
        {"bytes stack frame", offsetof(mx_kernel_usage, stack_frame)},
        {"bytes spill stores", offsetof(mx_kernel_usage, spill_stores)},
        {"bytes spill loads", offsetof(mx_kernel_usage, spill_loads)},
    };
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        while (s < item_end && (*s < '0' || *s > '9'))
            s++;
        char *label;
        long v = s < item_end ? strtol(s, &label, 10) : 0;
        if (s < item_end && label < item_end && *label == ' ') {
            label++;
            size_t len = (size_t)(item_end - label);
            while (len > 0 && (label[len - 1] == ' ' || label[len - 1] == '\r'))
                len--;
            for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
                if (strlen(labels[i].label) == len && memcmp(label, labels[i].label, len) == 0)
                    *(int *)((char *)k + labels[i].offset) = (int)v;
        }
        s = comma ? comma + 1 : end;
    }
}

/* Where needle starts on the line [s, end); NULL if it does not. */
static const char *find_in(const char *s, const char *end, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = s; p + n <= end; p++)
        if (memcmp(p, needle, n) == 0)
            return p;
    return NULL;
}

/* The name after marker on the line [s, end), up to a quote (or the line's
 * end, trailing blanks dropped); NULL when the line has no marker. */
static const char *name_after(const char *s, const char *end, const char *marker, size_t *len) {
    const char *name = find_in(s, end, marker);
    if (!name)
        return NULL;
    name += strlen(marker);
    const char *e = memchr(name, '\'', (size_t)(end - name));
    if (!e)
        for (e = end; e > name && (e[-1] == ' ' || e[-1] == '\r'); e--)
            ;
    *len = (size_t)(e - name);
    return name;
}

static int find_kernel(const mx_kernel_usage *k, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(k[i].name) == len && memcmp(k[i].name, name, len) == 0)
            return i;
    return -1;
}

int mx_nvrtc_parse_usage(const char *log, mx_kernel_usage **out) {
    mx_kernel_usage *k = NULL;
    int n = 0, cap = 0;
    int current = -1; /* the last entry function compiled: "Used" lines */
    int props = -1;   /* the kernel of the last "Function properties": stack lines */
    for (const char *s = log; *s;) {
        const char *end = strchr(s, '\n');
        if (!end)
            end = s + strlen(s);
        size_t len;
        const char *name;
        if ((name = name_after(s, end, "Compiling entry function '", &len))) {
            current = find_kernel(k, n, name, len);
            if (current < 0) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 8;
                    mx_kernel_usage *grown = realloc(k, (size_t)cap * sizeof *k);
                    if (!grown)
                        goto nomem;
                    k = grown;
                }
                memset(&k[n], 0, sizeof k[n]);
                if (!(k[n].name = malloc(len + 1)))
                    goto nomem;
                memcpy(k[n].name, name, len);
                k[n].name[len] = 0;
                current = n++;
            }
        } else if ((name = name_after(s, end, "Function properties for ", &len))) {
            props = find_kernel(k, n, name, len);
        } else if (find_in(s, end, "bytes stack frame")) {
            if (props >= 0)
                read_items(s, end, &k[props]);
            props = -1;
        } else if (find_in(s, end, " registers") && current >= 0) {
            read_items(s, end, &k[current]);
        }
        s = *end ? end + 1 : end;
    }
    *out = k;
    return n;
nomem:
    for (int i = 0; i < n; i++)
        free(k[i].name);
    free(k);
    *out = NULL;
    return -1;
}

/* ---- compiling -------------------------------------------------------------- */

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The program log, NUL-terminated (NULL when out of memory). */
static char *program_log(const mx_nvrtc_api *nv, nvrtcProgram prog) {
    size_t n = 0;
    if (nv->GetProgramLogSize(prog, &n) != NVRTC_SUCCESS)
        n = 0;
    char *log = malloc(n + 1);
    if (log && (n == 0 || nv->GetProgramLog(prog, log) != NVRTC_SUCCESS))
        n = 0;
    if (log)
        log[n] = 0;
    return log;
}

/* "name: NVRTC_ERROR_COMPILATION for sm_80:" and the log's first lines. */
static mx_status fail_with_log(mx_diag *d, const char *name, int sm, const char *error,
                               const char *log) {
    const char *cut = log;
    int lines = 0;
    while (*cut && lines < LOG_LINES)
        if (*cut++ == '\n')
            lines++;
    int more = 0;
    for (const char *p = cut; *p; more++)
        p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p);
    while (cut > log && cut[-1] == '\n')
        cut--;
    if (more)
        return mx_fail(d, MX_ERR_INVALID, "%s: %s for sm_%d:\n%.*s\n(%d more lines of log)", name,
                       error, sm, (int)(cut - log), log, more);
    return mx_fail(d, MX_ERR_INVALID, "%s: %s for sm_%d:\n%.*s", name, error, sm, (int)(cut - log),
                   log);
}

/* The compiled program's cubin, PTX and resource report into out. */
static mx_status read_outputs(const mx_nvrtc_api *nv, nvrtcProgram prog, const char *name,
                              const char *log, mx_cubin *out, mx_diag *d) {
    size_t ptx_len = 0;
    if (nv->GetCUBINSize(prog, &out->cubin_len) != NVRTC_SUCCESS || out->cubin_len == 0)
        return mx_fail(d, MX_ERR_INVALID, "%s: NVRTC gave no cubin (is the architecture sm_XX?)",
                       name);
    if (nv->GetPTXSize(prog, &ptx_len) != NVRTC_SUCCESS)
        ptx_len = 0;
    out->cubin = malloc(out->cubin_len);
    out->ptx = malloc(ptx_len + 1);
    if (!out->cubin || !out->ptx)
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory for the cubin", name);
    out->ptx[0] = 0;
    if (nv->GetCUBIN(prog, (char *)out->cubin) != NVRTC_SUCCESS ||
        (ptx_len && nv->GetPTX(prog, out->ptx) != NVRTC_SUCCESS))
        return mx_fail(d, MX_ERR_INVALID, "%s: NVRTC could not return the cubin", name);
    out->n_kernels = mx_nvrtc_parse_usage(log, &out->kernels);
    if (out->n_kernels < 0) {
        out->n_kernels = 0;
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory reading the resource report", name);
    }
    return MX_OK;
}

mx_status mx_nvrtc_compile(const char *source, const char *name, int sm,
                           const char *const *extra_opts, int n_extra, mx_cubin *out,
                           mx_diag *d) {
    memset(out, 0, sizeof *out);
    const mx_nvrtc_api *nv = mx_nvrtc_api_get(d);
    if (!nv)
        return MX_ERR_IO;
    double t0 = now_ms();
    char arch[48];
    snprintf(arch, sizeof arch, "--gpu-architecture=sm_%d", sm);
    int n_opts = 1 + MX_NVRTC_N_FIXED_OPTS + n_extra;
    const char **opts = malloc((size_t)n_opts * sizeof *opts);
    if (!opts)
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", name);
    opts[0] = arch;
    memcpy(opts + 1, mx_nvrtc_fixed_opts, sizeof mx_nvrtc_fixed_opts);
    if (n_extra > 0)
        memcpy(opts + 1 + MX_NVRTC_N_FIXED_OPTS, extra_opts, (size_t)n_extra * sizeof *opts);

    if (mx_debug_level() >= 4) {
        fprintf(stderr, "mixc: NVRTC %s:", name);
        for (int i = 0; i < n_opts; i++)
            fprintf(stderr, " %s", opts[i]);
        fprintf(stderr, "\n%s\n", source);
    }
    /* The prelude as an in-memory header: no include path, no source tree. */
    const char *prelude = mx_embedded_text("runtime/emu/mixc_prelude.h");
    const char *header_name = "mixc_prelude.h";
    nvrtcProgram prog;
    nvrtcResult r = nv->CreateProgram(&prog, source, name, 1, &prelude, &header_name);
    if (r != NVRTC_SUCCESS) {
        free(opts);
        return mx_fail(d, r == NVRTC_ERROR_OUT_OF_MEMORY ? MX_ERR_NOMEM : MX_ERR_INVALID,
                       "%s: nvrtcCreateProgram: %s", name, nv->GetErrorString(r));
    }
    r = nv->CompileProgram(prog, n_opts, opts);
    char *log = program_log(nv, prog);
    mx_status st;
    if (!log)
        st = mx_fail(d, MX_ERR_NOMEM, "%s: out of memory for the NVRTC log", name);
    else if (r != NVRTC_SUCCESS)
        st = fail_with_log(d, name, sm, nv->GetErrorString(r), log);
    else
        st = read_outputs(nv, prog, name, log, out, d);
    free(log);
    nv->DestroyProgram(&prog);
    free(opts);
    if (st != MX_OK)
        mx_cubin_free(out);
    else
        out->compile_ms = now_ms() - t0;
    return st;
}

/* ---- linking ---------------------------------------------------------------- */

static char *link_log(const mx_nvjitlink_api *jl, nvJitLinkHandle h) {
    size_t n = 0;
    if (jl->GetErrorLogSize(h, &n) != NVJITLINK_SUCCESS)
        n = 0;
    char *log = malloc(n + 1);
    if (log && (n == 0 || jl->GetErrorLog(h, log) != NVJITLINK_SUCCESS))
        n = 0;
    if (log)
        log[n] = 0;
    return log;
}

/* Every kernel report of the parts, names copied. */
static mx_status gather_usage(const mx_cubin *parts, int n, mx_cubin *out) {
    int total = 0;
    for (int i = 0; i < n; i++)
        total += parts[i].n_kernels;
    out->kernels = calloc(total ? (size_t)total : 1, sizeof *out->kernels);
    if (!out->kernels)
        return MX_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < parts[i].n_kernels; k++) {
            mx_kernel_usage u = parts[i].kernels[k];
            if (!(u.name = strdup(u.name)))
                return MX_ERR_NOMEM;
            out->kernels[out->n_kernels++] = u;
        }
    return MX_OK;
}

mx_status mx_nvrtc_link(const mx_cubin *parts, int n, const char *name, int sm, mx_cubin *out, mx_diag *d) {
    memset(out, 0, sizeof *out);
    const mx_nvjitlink_api *jl = mx_nvjitlink_api_get(d);
    if (!jl)
        return MX_ERR_IO;
    char arch[32];
    snprintf(arch, sizeof arch, "-arch=sm_%d", sm);
    const char *opts[] = {arch};
    nvJitLinkHandle h;
    nvJitLinkResult r = jl->Create(&h, 1, opts);
    if (r != NVJITLINK_SUCCESS)
        return mx_fail(d, MX_ERR_INVALID, "%s: nvJitLinkCreate for sm_%d: error %d", name, sm, (int)r);
    for (int i = 0; i < n && r == NVJITLINK_SUCCESS; i++)
        r = jl->AddData(h, NVJITLINK_INPUT_CUBIN, parts[i].cubin, parts[i].cubin_len, name);
    if (r == NVJITLINK_SUCCESS)
        r = jl->Complete(h);
    mx_status st = MX_OK;
    if (r != NVJITLINK_SUCCESS) {
        char *log = link_log(jl, h);
        st = log ? fail_with_log(d, name, sm, "nvJitLink could not link the programs", log)
                 : mx_fail(d, MX_ERR_NOMEM, "%s: out of memory for the nvJitLink log", name);
        free(log);
    } else if (jl->GetLinkedCubinSize(h, &out->cubin_len) != NVJITLINK_SUCCESS || !out->cubin_len) {
        st = mx_fail(d, MX_ERR_INVALID, "%s: nvJitLink gave no cubin", name);
    } else if (!(out->cubin = malloc(out->cubin_len)) || gather_usage(parts, n, out) != MX_OK) {
        st = mx_fail(d, MX_ERR_NOMEM, "%s: out of memory for the linked cubin", name);
    } else if (jl->GetLinkedCubin(h, out->cubin) != NVJITLINK_SUCCESS) {
        st = mx_fail(d, MX_ERR_INVALID, "%s: nvJitLink could not return the cubin", name);
    }
    jl->Destroy(&h);
    if (st != MX_OK)
        mx_cubin_free(out);
    return st;
}
