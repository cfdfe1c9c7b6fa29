/* target.c: the target, chosen first (mixc.h, "targets").
 *
 * The only place that knows GPU and CPU numbers: named GPU profiles for
 * compiling, emulating and estimating without a GPU, the real GPU read off
 * the driver, and the host CPU read off /proc/cpuinfo. Passes, code
 * generators and the runtime ask the mx_target they are given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "driver.h"
#include "ir.h"
#include "mixc.h"

static const char *const device_names[MX_DEVICE_COUNT] = {"ref", "emu", "cuda", "cpu"};

const char *mx_device_name(mx_device d) { return d >= 0 && d < MX_DEVICE_COUNT ? device_names[d] : "?"; }

mx_status mx_device_parse(const char *name, mx_device *out, mx_diag *d) {
    for (int i = 0; i < MX_DEVICE_COUNT; i++)
        if (strcmp(name, device_names[i]) == 0) {
            *out = (mx_device)i;
            return MX_OK;
        }
    return mx_fail(d, MX_ERR_INVALID, "unknown device '%s': use auto, ref, cpu, emu or cuda", name);
}

/* ---- GPU profiles ------------------------------------------------------------- */

/* The datasheet figures of each GPU (NVIDIA's A100, H100 and H200 SXM
 * datasheets and the CUDA programming guide's per-architecture limits),
 * except bandwidth where a device-to-device copy was measured (bytes read
 * plus bytes written): that is what a streaming kernel can reach, about 90%
 * of the datasheet's figure. SFU rate: SMs x 16 ex2 results per clock x the
 * boost clock. The only GPU numbers of mixc: everything else asks the
 * target. */
typedef struct {
    const char *name, *aliases; /* aliases: " sm_90 " style, space-delimited */
    int sm, sm_count, smem_optin_kib, smem_per_sm_kib, l2_mib, memory_gb;
    double clock_ghz, bytes_per_s, flops_per_s;
    const char *rates_source;
} gpu_profile;

static const gpu_profile profiles[] = {
    {"a100", " sm_80 a100-sxm ", 80, 108, 163, 164, 40, 80, 1.41, 2.039e12, 19.5e12,
     "the A100 SXM 80GB datasheet"},
    {"h100", " sm_90 h100-sxm ", 90, 132, 227, 228, 50, 80, 1.98, 3.0e12, 67e12,
     "a device-to-device copy measured on an H100 SXM (datasheet: 3.35 TB/s)"},
    {"h200", " h200-sxm ", 90, 132, 227, 228, 50, 141, 1.98, 4.3e12, 67e12,
     "a device-to-device copy measured on an H200 SXM (datasheet: 4.8 TB/s)"},
};

/* What every GPU of compute capability 8.0 and 9.0 shares. */
static void gpu_common(mx_target *t) {
    t->max_threads_per_sm = 2048;
    t->max_threads_per_block = 1024;
    t->regs_per_sm = 65536;
    t->max_regs_per_thread = 255;
    t->smem_per_block = 48 * 1024;
    /* cuBLASLt: bias, ReLU and tanh-GELU epilogues, and beta * C. */
    t->matmul_epilogues = MX_EPILOGUE_BIAS | MX_EPILOGUE_RELU | MX_EPILOGUE_GELU | MX_EPILOGUE_RESIDUAL;
}

const char *mx_target_names(void) { return "sm_80, sm_90, a100, h100, h200"; }

mx_status mx_target_named(const char *name, mx_device device, mx_target *out, mx_diag *d) {
    if (device != MX_DEVICE_EMU && device != MX_DEVICE_CUDA)
        return mx_fail(d, MX_ERR_INVALID, "target '%s' is a GPU profile: it applies to --device emu or cuda, not %s",
                       name, mx_device_name(device));
    char key[64];
    snprintf(key, sizeof key, " %s ", name);
    for (size_t i = 0; i < sizeof profiles / sizeof *profiles; i++) {
        const gpu_profile *p = &profiles[i];
        if (strcmp(name, p->name) != 0 && !strstr(p->aliases, key))
            continue;
        *out = (mx_target){.device = device, .sm = p->sm, .sm_count = p->sm_count};
        snprintf(out->name, sizeof out->name, "%s", name);
        snprintf(out->profile, sizeof out->profile, "%s", p->name);
        gpu_common(out);
        out->smem_per_block_optin = p->smem_optin_kib * 1024;
        out->smem_per_sm = p->smem_per_sm_kib * 1024;
        out->l2_bytes = (int64_t)p->l2_mib << 20;
        out->memory_bytes = (int64_t)p->memory_gb * 1000000000;
        out->bytes_per_s = p->bytes_per_s;
        out->exps_per_s = p->sm_count * 16 * p->clock_ghz * 1e9;
        out->flops_per_s = p->flops_per_s;
        snprintf(out->rates_source, sizeof out->rates_source, "%s", p->rates_source);
        return MX_OK;
    }
    return mx_fail(d, MX_ERR_INVALID, "unknown target '%s': use one of %s", name, mx_target_names());
}

/* GPU 0 as the driver reports it; a profile of the same name (H100, H200)
 * lends its measured bandwidth, others get memory clock x bus width x 2. */
static mx_status detect_cuda(mx_target *t, mx_diag *d) {
    mx_cuda *cu;
    MX_TRY(mx_cuda_open(&cu, d));
    *t = (mx_target){.device = MX_DEVICE_CUDA, .detected = 1, .sm = 10 * cu->cc_major + cu->cc_minor,
                     .sm_count = cu->sm_count};
    gpu_common(t);
    snprintf(t->name, sizeof t->name, "%s", cu->name);
    if (cu->max_threads_per_sm > 0)
        t->max_threads_per_sm = cu->max_threads_per_sm;
    if (cu->max_threads_per_block > 0)
        t->max_threads_per_block = cu->max_threads_per_block;
    if (cu->regs_per_sm > 0)
        t->regs_per_sm = cu->regs_per_sm;
    if (cu->smem_per_block > 0)
        t->smem_per_block = cu->smem_per_block;
    t->smem_per_block_optin = cu->smem_per_block_optin;
    t->smem_per_sm = cu->smem_per_sm;
    t->l2_bytes = cu->l2_bytes;
    t->memory_bytes = (int64_t)cu->total_mem;
    t->bytes_per_s = (double)cu->mem_clock_khz * 1e3 * (cu->mem_bus_width / 8.0) * 2;
    t->exps_per_s = (double)cu->sm_count * 16 * cu->clock_khz * 1e3;
    t->flops_per_s = (double)cu->sm_count * 128 * 2 * cu->clock_khz * 1e3;
    snprintf(t->rates_source, sizeof t->rates_source, "memory clock x bus width x 2");
    static const struct {
        const char *in_name, *profile;
    } measured[] = {{"H100 80GB HBM3", "h100"}, {"H200", "h200"}};
    for (size_t i = 0; i < sizeof measured / sizeof *measured; i++) {
        mx_target p;
        if (strstr(cu->name, measured[i].in_name) && mx_target_named(measured[i].profile, MX_DEVICE_CUDA, &p, d) == MX_OK) {
            t->bytes_per_s = p.bytes_per_s;
            snprintf(t->profile, sizeof t->profile, "%s", p.profile);
            snprintf(t->rates_source, sizeof t->rates_source, "%s", p.rates_source);
        }
    }
    mx_cuda_close(cu);
    return MX_OK;
}

/* ---- the host --------------------------------------------------------------------- */

/* The value of /proc/cpuinfo's first line starting with key, into buf. */
static bool cpuinfo(const char *key, char *buf, size_t size) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return false;
    char line[8192];
    bool found = false;
    size_t n = strlen(key);
    while (!found && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, key, n) != 0 || !colon)
            continue;
        snprintf(buf, size, "%s", colon + 2);
        buf[strcspn(buf, "\n")] = 0;
        found = true;
    }
    fclose(f);
    return found;
}

static bool has_flag(const char *flags, const char *flag) {
    size_t n = strlen(flag);
    for (const char *p = flags; (p = strstr(p, flag)); p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return true;
    return false;
}

int mx_target_has_feature(const mx_target *t, const char *feature) { return has_flag(t->cpu_features, feature); }

/* MIXC_THREADS when set (1 .. 1024), else the online cores. */
static int host_threads(void) {
    const char *env = getenv("MIXC_THREADS");
    int n = env ? atoi(env) : 0;
    if (n >= 1 && n <= 1024)
        return n;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

/* The host features mixc asks about (the same names in /proc/cpuinfo and
 * LLVM), each with those it needs (LLVM's implications): leaving one out
 * leaves out those that need it. */
static const struct {
    const char *name, *needs;
} host_features[] = {
    {"avx512f", " avx2 fma f16c "}, {"avx512bw", " avx512f "}, {"avx2", ""}, {"fma", ""}, {"f16c", ""},
};
enum { N_HOST_FEATURES = sizeof host_features / sizeof *host_features };

/* Whether MIXC_CPU_DISABLE (a comma-separated list of host_features) leaves
 * feature i out, itself or through one it needs. */
static bool left_out(const char *list, int i) {
    size_t n = strlen(host_features[i].name);
    for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',')
        if (strcspn(p, ",") == n && strncmp(p, host_features[i].name, n) == 0)
            return true;
    char key[32];
    for (int j = 0; j < N_HOST_FEATURES; j++) {
        snprintf(key, sizeof key, " %s ", host_features[j].name);
        if (strstr(host_features[i].needs, key) && left_out(list, j))
            return true;
    }
    return false;
}

mx_status mx_cpu_disabled_features(char *llvm, size_t size, mx_diag *d) {
    const char *list = getenv("MIXC_CPU_DISABLE");
    size_t len = 0;
    if (size)
        llvm[0] = 0;
    if (!list || !*list)
        return MX_OK;
    for (const char *p = list; *p;) { /* every name known: a typo must not pass as "nothing left out" */
        size_t n = strcspn(p, ",");
        bool known = false;
        for (int i = 0; i < N_HOST_FEATURES; i++)
            known |= n == strlen(host_features[i].name) && strncmp(p, host_features[i].name, n) == 0;
        if (!known)
            return mx_fail(d, MX_ERR_INVALID, "MIXC_CPU_DISABLE=%.200s: '%.*s' is not one of avx512f, avx512bw, avx2, "
                           "fma, f16c (comma-separated)", list, (int)(n < 40 ? n : 40), p);
        p += n + (p[n] == ',');
    }
    for (int i = 0; i < N_HOST_FEATURES; i++)
        if (left_out(list, i) && len < size)
            len += (size_t)snprintf(llvm + len, size - len, ",-%s", host_features[i].name);
    return MX_OK;
}

static mx_status detect_host(mx_device device, mx_target *t, mx_diag *d) {
    *t = (mx_target){.device = device, .detected = 1, .vector_bits = 128, .threads = host_threads()};
    char off[256];
    MX_TRY(mx_cpu_disabled_features(off, sizeof off, d)); /* an unknown name in the list is an error */
    const char *list = getenv("MIXC_CPU_DISABLE");
    if (!cpuinfo("model name", t->name, sizeof t->name))
        snprintf(t->name, sizeof t->name, "host CPU");
    char flags[8192]; /* not static: targets are detected on several threads */
    if (!cpuinfo("flags", flags, sizeof flags))
        flags[0] = 0;
    size_t len = 0;
    for (int i = 0; i < N_HOST_FEATURES; i++)
        if (has_flag(flags, host_features[i].name) && !(list && left_out(list, i)))
            len += (size_t)snprintf(t->cpu_features + len, sizeof t->cpu_features - len, "%s%s", len ? " " : "",
                                    host_features[i].name);
    t->vector_bits = has_flag(t->cpu_features, "avx512f") ? 512 : has_flag(t->cpu_features, "avx2") ? 256 : 128;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    t->memory_bytes = pages > 0 && page > 0 ? (int64_t)pages * page : 0;
    /* OpenBLAS's sgemm takes beta * C; a bias or activation is a pass of its own. */
    t->matmul_epilogues = MX_EPILOGUE_RESIDUAL;
    /* The CPU backend runs a kernel's blocks as one thread each; a block's
     * shared memory is a stack array of this size (docs/cpu.md), room for a
     * lanes scan's sum of its orders over rows of up to 3,700 steps. */
    t->smem_per_block = 256 * 1024;
    return MX_OK;
}

mx_status mx_target_detect(mx_device device, mx_target *out, mx_diag *d) {
    switch (device) {
    case MX_DEVICE_CUDA:
        return detect_cuda(out, d);
    case MX_DEVICE_EMU:
        return mx_target_named("h100", MX_DEVICE_EMU, out, d);
    case MX_DEVICE_REF:
    case MX_DEVICE_CPU:
        return detect_host(device, out, d);
    default:
        return mx_fail(d, MX_ERR_INVALID, "unknown device %d", (int)device);
    }
}

mx_status mx_target_choose(const char *device, const char *name, mx_target *out, char *why, size_t why_size,
                           mx_diag *d) {
    mx_device dev;
    if (why && why_size)
        why[0] = 0;
    if (strcmp(device, "auto") == 0) {
        mx_diag probe;
        if (!name && mx_target_detect(MX_DEVICE_CUDA, out, &probe) == MX_OK)
            return MX_OK;
        if (name)
            snprintf(probe.msg, sizeof probe.msg, "--target %s names a GPU profile, which only emu or cuda run", name);
        dev = mx_have_cpu_backend() ? MX_DEVICE_CPU : MX_DEVICE_REF;
        if (why && why_size)
            snprintf(why, why_size, "%s: using the CPU (%s)", probe.msg,
                     dev == MX_DEVICE_CPU ? "JIT-compiled kernels" : "reference interpreter; built without LLVM");
        name = NULL;
    } else {
        MX_TRY(mx_device_parse(device, &dev, d));
    }
    if (dev == MX_DEVICE_CPU && !mx_have_cpu_backend())
        return mx_fail(d, MX_ERR_INVALID, "device cpu: this mixc was built without LLVM (llvm-19-dev); use ref");
    if (!name)
        return mx_target_detect(dev, out, d);
    if (dev == MX_DEVICE_CUDA) { /* a named target on the GPU must be that GPU */
        MX_TRY(mx_target_detect(MX_DEVICE_CUDA, out, d));
        mx_target want;
        MX_TRY(mx_target_named(name, MX_DEVICE_CUDA, &want, d));
        if (want.sm != out->sm)
            return mx_fail(d, MX_ERR_INVALID, "--target %s is sm_%d, but GPU 0 (%s) is sm_%d", name, want.sm,
                           out->name, out->sm);
        return MX_OK;
    }
    return mx_target_named(name, dev, out, d);
}

void mx_target_describe(const mx_target *t, char *buf, size_t size) {
    switch (t->device) {
    case MX_DEVICE_EMU:
    case MX_DEVICE_CUDA:
        snprintf(buf, size, "%s: %s (sm_%d, %d SMs, %.2f TB/s from %s)", mx_device_name(t->device), t->name, t->sm,
                 t->sm_count, t->bytes_per_s * 1e-12, t->rates_source);
        break;
    case MX_DEVICE_CPU:
        snprintf(buf, size, "cpu: %s (%d-bit vectors, %d threads; %s)", t->name, t->vector_bits, t->threads,
                 t->cpu_features[0] ? t->cpu_features : "no vector extensions");
        break;
    default:
        snprintf(buf, size, "ref: reference interpreter (f32 storage, f64 sums) on %s", t->name);
        break;
    }
}
