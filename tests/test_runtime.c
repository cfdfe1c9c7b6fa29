/* test_runtime.c: the driver loader without a driver (none, and the toolkit's
 * stub, which needs a fresh process: the loader reads LD_LIBRARY_PATH at
 * startup, so the test re-runs itself as `test_runtime --probe-driver`), the
 * fake driver of tests/fake_cuda.c presenting a driver too old for the
 * toolkit, and running a model on that fake from a thread that never made a
 * context current (`test_runtime --probe-thread`), NVRTC compiles and their
 * resource reports, the kernel cache (hits, misses, damaged entries,
 * concurrent writers) and batch compiles. Where a GPU is present the same
 * file also runs a kernel on it. */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "check.h"
#include "driver.h"
#include "ir.h"
#include "rtc.h"

#define STUB_LIB "/usr/local/cuda/lib64/stubs/libcuda.so"

static const char kernels_src[] =
    "extern \"C\" __global__ void saxpy(int n, float a, const float *x, float *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n)\n"
    "        y[i] = a * x[i] + y[i];\n"
    "}\n"
    "extern \"C\" __global__ void block_sum(int n, const float *x, float *out) {\n"
    "    __shared__ float part[32];\n"
    "    float s = 0;\n"
    "    for (int i = threadIdx.x; i < n; i += blockDim.x)\n"
    "        s += x[i];\n"
    "    for (int o = 16; o > 0; o >>= 1)\n"
    "        s += __shfl_down_sync(0xffffffffu, s, o);\n"
    "    if ((threadIdx.x & 31) == 0)\n"
    "        part[threadIdx.x >> 5] = s;\n"
    "    __syncthreads();\n"
    "    if (threadIdx.x < 32) {\n"
    "        s = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.f;\n"
    "        for (int o = 16; o > 0; o >>= 1)\n"
    "            s += __shfl_down_sync(0xffffffffu, s, o);\n"
    "        if (threadIdx.x == 0)\n"
    "            *out = s;\n"
    "    }\n"
    "}\n"
    /* 1024 threads, 2 blocks per SM: at most 32 registers for 64 live floats. */
    "extern \"C\" __global__ void __launch_bounds__(1024, 2)\n"
    "spilly(const float *x, float *y, int k) {\n"
    "    float a[64];\n"
    "    for (int i = 0; i < 64; i++)\n"
    "        a[i] = x[i * k + threadIdx.x];\n"
    "    for (int j = 0; j < 64; j++)\n"
    "        for (int i = 0; i < 64; i++)\n"
    "            a[i] = a[i] * a[(i + j) & 63] + 1.f;\n"
    "    float s = 0;\n"
    "    for (int i = 0; i < 64; i++)\n"
    "        s += a[i] * x[i];\n"
    "    y[threadIdx.x] = s;\n"
    "}\n";

static const char half_src[] =
    "#include <cuda_bf16.h>\n"
    "extern \"C\" __global__ void twice(__nv_bfloat16 *x) {\n"
    "    x[threadIdx.x] = __float2bfloat16(2.f * __bfloat162float(x[threadIdx.x]));\n"
    "}\n";

static const char bad_src[] = "extern \"C\" __global__ void k(float *x) {\n"
                              "    x[0] = 1.0f\n"
                              "}\n";

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---- temporary directories ------------------------------------------------------ */

static char tmp_root[] = "/tmp/mixc_test_rt_XXXXXX";

/* Deletes dir and everything under it (the tests make only files and dirs). */
static void remove_tree(const char *dir) {
    DIR *dp = opendir(dir);
    struct dirent *e;
    while (dp && (e = readdir(dp))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    if (dp)
        closedir(dp);
    rmdir(dir);
}

/* Files in dir: how many, and how many of them are temporaries. */
static int count_files(const char *dir, int *tmp) {
    DIR *dp = opendir(dir);
    struct dirent *e;
    int n = 0;
    *tmp = 0;
    while (dp && (e = readdir(dp)))
        if (e->d_name[0] != '.') {
            n++;
            *tmp += strstr(e->d_name, ".tmp.") != NULL;
        }
    if (dp)
        closedir(dp);
    return n;
}

static char *entry_file(mx_hash128 key, char *path, size_t size) {
    char dir[4096];
    CHECK(mx_cache_dir(dir, sizeof dir));
    snprintf(path, size, "%s/%016llx%016llx.cubin", dir, (unsigned long long)key.hi,
             (unsigned long long)key.lo);
    return path;
}

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
}

/* ---- the driver ---------------------------------------------------------------- */

/* The child's side of test_driver_stub: open, print the message. */
static int probe_driver(void) {
    mx_cuda *cu;
    mx_diag d = {{0}};
    mx_status st = mx_cuda_open(&cu, &d);
    printf("%s\n", st == MX_OK ? "opened" : d.msg);
    mx_cuda_close(cu);
    return st == MX_OK ? 1 : 0;
}

/* The child's side of test_driver_profile: GPU 0 as detected, its profile. */
static int probe_profile(void) {
    mx_target t;
    mx_diag d = {{0}};
    mx_status st = mx_target_detect(MX_DEVICE_CUDA, &t, &d);
    printf("%s\n", st == MX_OK ? t.profile : d.msg);
    return st == MX_OK ? 0 : 1;
}

/* Runs this program with `probe` (--probe-driver, --probe-thread),
 * LD_LIBRARY_PATH=lib_dir and the NAME=VALUE settings of env (NULL-ended, or
 * NULL); its output (stdout and stderr) into out. Returns the exit status
 * (-1: did not run). */
static int run_probe(const char *probe, const char *lib_dir, const char *const *env, char *out, size_t size) {
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        setenv("LD_LIBRARY_PATH", lib_dir, 1);
        for (int i = 0; env && env[i]; i++) {
            char name[256];
            const char *eq = strchr(env[i], '=');
            snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - env[i]) : 0, env[i]);
            if (eq)
                setenv(name, eq + 1, 1);
        }
        char self[] = "/proc/self/exe";
        char *argv[] = {self, (char *)probe, NULL};
        execv(self, argv);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < size && (got = read(fd[0], out + n, size - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = 0;
    close(fd[0]);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* The toolkit's stub as libcuda.so.1: present, but cuInit fails with 34. */
static void test_driver_stub(void) {
    struct stat st;
    if (stat(STUB_LIB, &st) != 0) {
        printf("skipped: no %s\n", STUB_LIB);
        return;
    }
    char lib_dir[4096], link[4200], out[2048];
    snprintf(lib_dir, sizeof lib_dir, "%s/stub", tmp_root);
    snprintf(link, sizeof link, "%s/libcuda.so.1", lib_dir);
    CHECK(mkdir(lib_dir, 0755) == 0 && symlink(STUB_LIB, link) == 0);
    int rc = run_probe("--probe-driver", lib_dir, NULL, out, sizeof out);
    CHECK_MSG(rc == 0, "probe exit %d: %s", rc, out);
    CHECK_MSG(strstr(out, "cuInit failed: CUDA_ERROR_STUB_LIBRARY (error 34): ") == out, "%s",
              out);
}

/* The fake driver's folder (tests/fake_cuda.c, built with the soname
 * libcuda.so.1 into <build>/fake-cuda), found from this program's own path,
 * <build>/tests/test_runtime; 0 when it is not there. */
static int fake_cuda_dir(char *out, size_t size) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 0;
    self[n] = 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(self, '/');
        if (!slash)
            return 0;
        *slash = 0;
    }
    snprintf(out, size, "%s/fake-cuda", self);
    char lib[4200];
    struct stat st;
    snprintf(lib, sizeof lib, "%s/libcuda.so.1", out);
    return stat(lib, &st) == 0;
}

/* A driver older than the toolkit's major version (the fake reporting CUDA
 * 12.8 where mixc is built with CUDA 13) is refused at open with both
 * versions and what to do; one of the toolkit's own major version opens. */
static void test_driver_too_old(void) {
    char fake[4096], out[4096], want[256], version[64];
    if (!fake_cuda_dir(fake, sizeof fake)) {
        printf("skipped: no fake CUDA driver next to this test\n");
        return;
    }
    int old_version = MX_CUDA_DRIVER_MIN - 1000 + 80; /* the last major's .8: 12080 for a CUDA 13 build */
    snprintf(version, sizeof version, "FAKE_CUDA_DRIVER_VERSION=%d", old_version);
    const char *old[] = {version, NULL};
    int rc = run_probe("--probe-driver", fake, old, out, sizeof out);
    CHECK_MSG(rc == 0, "probe exit %d: %s", rc, out);
    snprintf(want, sizeof want, "the CUDA driver is too old: it supports CUDA %d.%d (driver version %d)",
             old_version / 1000, old_version % 1000 / 10, old_version);
    CHECK_MSG(strstr(out, want) == out, "not '%s' but: %s", want, out);
    snprintf(want, sizeof want, "mixc is built with CUDA %d.%d", CUDA_VERSION / 1000, CUDA_VERSION % 1000 / 10);
    CHECK_MSG(strstr(out, want), "no '%s' in: %s", want, out);
    snprintf(want, sizeof want, "update the NVIDIA driver to one for CUDA %d", MX_CUDA_DRIVER_MIN / 1000);
    CHECK_MSG(strstr(out, want), "no '%s' in: %s", want, out);
#if CUDA_VERSION / 1000 == 13
    CHECK_MSG(strstr(out, "CUDA 13 (r580 or later)"), "%s", out);
#endif
    char current[64];
    snprintf(current, sizeof current, "FAKE_CUDA_DRIVER_VERSION=%d", MX_CUDA_DRIVER_MIN);
    const char *same[] = {current, NULL};
    rc = run_probe("--probe-driver", fake, same, out, sizeof out);
    CHECK_MSG(rc == 1 && strcmp(out, "opened\n") == 0, "a driver for CUDA %d.0: exit %d: %s",
              MX_CUDA_DRIVER_MIN / 1000, rc, out);
}

/* An H100 SXM read off the driver (the fake's name) is the h100 profile,
 * which its tuning records are keyed by (test_tune: test_gpu_names_share). */
static void test_driver_profile(void) {
    char fake[4096], out[4096];
    if (!fake_cuda_dir(fake, sizeof fake)) {
        printf("skipped: no fake CUDA driver next to this test\n");
        return;
    }
    int rc = run_probe("--probe-profile", fake, NULL, out, sizeof out);
    CHECK_MSG(rc == 0 && strcmp(out, "h100\n") == 0, "probe exit %d: %s", rc, out);
}

/* The child's side of test_other_thread: c's uploads, its first pass
 * (direct, then MIXC_DEBUG=2's profile at the download), its second pass
 * (captured and replayed), an output read, a timing with the L2 flush
 * (events, the flush buffer) and the frees, all on a thread that never made
 * a context current. */
typedef struct {
    mx_compiled *c;
    char msg[1200];
} elsewhere;

static void *run_elsewhere(void *arg) {
    elsewhere *e = arg;
    mx_diag d = {{0}};
    mx_tensor_info info = {0};
    mx_timing tm;
    mx_status st = mx_tensor_info_of(e->c, MX_ROLE_OUTPUT, 0, &info, &d);
    float *y = malloc((size_t)info.numel * sizeof *y + 1);
    if (st == MX_OK)
        st = y ? mx_run(e->c, &d) : MX_ERR_NOMEM;
    if (st == MX_OK)
        st = mx_run(e->c, &d);
    if (st == MX_OK)
        st = mx_get_output(e->c, NULL, y, MX_F32, (size_t)info.numel * sizeof *y, &d);
    if (st == MX_OK)
        st = mx_time(e->c, 0, 2, &tm, &d);
    mx_compiled_free(e->c);
    free(y);
    snprintf(e->msg, sizeof e->msg, "%s", st == MX_OK ? "ran on another thread" : d.msg);
    return NULL;
}

/* The child's side of test_other_thread: compiled and loaded on this
 * thread, run on another. Exit 0 when the other thread's calls succeeded. */
static int probe_thread(void) {
    const char *set[] = {"input.length=12", "stages[0].width=8"};
    mx_diag d = {{0}};
    mx_target t;
    mx_compile_options o = {.flush_l2 = 1};
    elsewhere e = {0};
    mx_model *m = mx_model_load(MIXC_SOURCE_DIR "/models/mamba-block.json", set, 2, &d);
    mx_status st = m ? mx_target_detect(MX_DEVICE_CUDA, &t, &d) : MX_ERR_INVALID;
    if (st == MX_OK)
        st = (e.c = mx_compile_model(m, &t, &o, &d)) ? MX_OK : MX_ERR_INVALID;
    if (st == MX_OK)
        st = mx_init_weights(e.c, 1, &d);
    if (st == MX_OK)
        st = mx_set_random_inputs(e.c, 1, &d);
    pthread_t other;
    if (st == MX_OK && pthread_create(&other, NULL, run_elsewhere, &e) == 0) {
        pthread_join(other, NULL);
        printf("%s\n", e.msg);
        st = strcmp(e.msg, "ran on another thread") == 0 ? MX_OK : MX_ERR_IO;
    } else {
        printf("%s\n", st == MX_OK ? "pthread_create failed" : d.msg);
        mx_compiled_free(e.c);
        st = MX_ERR_IO;
    }
    mx_model_free(m);
    return st == MX_OK ? 0 : 1;
}

/* The fake driver's current context is per thread, as the driver's: a
 * model loaded on one thread is run, read, timed and freed on another, and
 * the fake refused no call for want of a current context (it reports each
 * refusal, frees included, whose results mixc ignores). */
static void test_other_thread(void) {
    char fake[4096], out[16384], report[4200], cache[4200];
    if (!fake_cuda_dir(fake, sizeof fake)) {
        printf("skipped: no fake CUDA driver next to this test\n");
        return;
    }
    snprintf(report, sizeof report, "FAKE_CUDA_REPORT=%s/thread-report", tmp_root);
    snprintf(cache, sizeof cache, "MIXC_CACHE_DIR=%s/thread-cache", tmp_root);
    const char *env[] = {report, cache, "MIXC_DEBUG=2", NULL};
    int rc = run_probe("--probe-thread", fake, env, out, sizeof out);
    CHECK_MSG(rc == 0 && strstr(out, "ran on another thread\n"), "probe exit %d: %s", rc, out);
    CHECK_MSG(strstr(out, " groups (floor: "), "MIXC_DEBUG=2 printed no profile: %s", out);
    FILE *f = fopen(report + strlen("FAKE_CUDA_REPORT="), "r");
    CHECK(f != NULL);
    char line[512];
    int refused = 0, replays = 0, allocs = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "no-context ", 11) == 0 && refused++ < 5)
            fprintf(stderr, "the fake refused, without a current context: %s", line + 11);
        replays += strcmp(line, "graph-launch\n") == 0;
        allocs += strncmp(line, "alloc ", 6) == 0;
    }
    if (f)
        fclose(f);
    CHECK_MSG(refused == 0, "%d calls without a current context", refused);
    CHECK_MSG(replays >= 1, "the other thread replayed no graph");
    CHECK_MSG(allocs > 0, "the fake reported no allocation: was it used?");
    printf("another thread: ran, read, timed and freed a model loaded elsewhere (%d graph replays)\n", replays);
}

/* Every entry point's name is one the driver exports (the stub exports them
 * all), so a typo cannot wait for a machine with a GPU to show. */
static void test_entry_point_names(void) {
    void *stub = dlopen(STUB_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!stub) {
        printf("skipped: %s\n", dlerror());
        return;
    }
#define CHECK_SYMBOL(field, symbol, type) CHECK_MSG(dlsym(stub, symbol) != NULL, "%s", symbol);
    MX_CUDA_ENTRY_POINTS(CHECK_SYMBOL)
#undef CHECK_SYMBOL
    dlclose(stub);
}

/* Runs saxpy on the device: the entry points fetched work. */
static void test_gpu_saxpy(mx_cuda *cu) {
    const mx_cuda_api *a = &cu->api;
    mx_diag d = {{0}};
    mx_cubin bin;
    int sm = 10 * cu->cc_major + cu->cc_minor;
    CHECK_MSG(mx_nvrtc_compile(kernels_src, "kernels.cu", sm, NULL, 0, &bin, &d) == MX_OK, "%s",
              d.msg);
    enum { N = 1000 };
    float x[N], y[N], want[N];
    check_fill(x, N, -1, 1);
    check_fill(y, N, -1, 1);
    for (int i = 0; i < N; i++)
        want[i] = 3.0f * x[i] + y[i];
    CUmodule mod = NULL;
    CUfunction fn;
    CUdeviceptr dx = 0, dy = 0;
    CUstream s = NULL;
    int n = N;
    float alpha = 3.0f;
    void *args[] = {&n, &alpha, &dx, &dy};
    mx_status st = mx_cuda_check(cu, a->ModuleLoadData(&mod, bin.cubin), "cuModuleLoadData", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->ModuleGetFunction(&fn, mod, "saxpy"), "saxpy", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->StreamCreate(&s, CU_STREAM_NON_BLOCKING), "stream", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->MemAlloc(&dx, sizeof x), "cuMemAlloc", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->MemAlloc(&dy, sizeof y), "cuMemAlloc", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->MemcpyHtoD(dx, x, sizeof x), "copy x", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->MemcpyHtoD(dy, y, sizeof y), "copy y", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->LaunchKernel(fn, (N + 127) / 128, 1, 1, 128, 1, 1, 0, s, args,
                                               NULL),
                           "launch", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->StreamSynchronize(s), "sync", &d);
    if (st == MX_OK)
        st = mx_cuda_check(cu, a->MemcpyDtoH(y, dy, sizeof y), "copy back", &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    double w[N];
    for (int i = 0; i < N; i++)
        w[i] = want[i];
    if (st == MX_OK)
        CHECK_CLOSE(y, w, N, 1e-6, "saxpy on the GPU");
    if (dx)
        a->MemFree(dx);
    if (dy)
        a->MemFree(dy);
    if (s)
        a->StreamDestroy(s);
    if (mod)
        a->ModuleUnload(mod);
    mx_cubin_free(&bin);
}

/* Without libcuda.so.1 the message says so; with a GPU, the device works. */
static void test_driver_open(void) {
    void *probe = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (probe)
        dlclose(probe);
    mx_cuda *cu;
    mx_diag d = {{0}};
    mx_status st = mx_cuda_open(&cu, &d);
    if (!probe) {
        CHECK(st == MX_ERR_IO && cu == NULL);
        CHECK_MSG(strcmp(d.msg, "no CUDA driver (libcuda.so.1 not found)") == 0, "%s", d.msg);
        return;
    }
    if (st != MX_OK) {
        printf("driver present, not usable: %s\n", d.msg);
        CHECK(cu == NULL && d.msg[0]);
        return;
    }
    printf("device: %s, %d SMs, sm_%d%d, %.1f GiB, driver %d\n", cu->name, cu->sm_count,
           cu->cc_major, cu->cc_minor, (double)cu->total_mem / (1 << 30), cu->driver_version);
    CHECK(cu->name[0] && cu->sm_count > 0 && cu->cc_major >= 5 && cu->total_mem > 0);
    CHECK(mx_cuda_check(cu, CUDA_ERROR_INVALID_VALUE, "probe", &d) == MX_ERR_IO);
    CHECK_MSG(strstr(d.msg, "probe: CUDA_ERROR_INVALID_VALUE (error 1): ") == d.msg, "%s", d.msg);
    test_gpu_saxpy(cu);
    mx_cuda_close(cu);
}

static void test_check_without_driver(void) {
    mx_diag d = {{0}};
    CHECK(mx_cuda_check(NULL, CUDA_SUCCESS, "x", &d) == MX_OK && d.msg[0] == 0);
    CHECK(mx_cuda_check(NULL, CUDA_ERROR_NO_DEVICE, "cuInit failed", &d) == MX_ERR_IO);
    CHECK_MSG(strcmp(d.msg, "cuInit failed: CUDA_ERROR_NO_DEVICE (error 100): no CUDA-capable "
                            "device is detected") == 0,
              "%s", d.msg);
    CHECK(mx_cuda_check(NULL, (CUresult)12345, "x", &d) == MX_ERR_IO);
    CHECK_MSG(strcmp(d.msg, "x: CUDA error (error 12345): no description") == 0, "%s", d.msg);
}

/* ---- NVRTC ---------------------------------------------------------------------- */

static void check_kernels(const mx_cubin *bin, int sm) {
    CHECK_MSG(bin->cubin_len > 4 && memcmp(bin->cubin, "\177ELF", 4) == 0, "sm_%d", sm);
    CHECK(bin->n_kernels == 3);
    const mx_kernel_usage *k;
    const char *clean[] = {"saxpy", "block_sum"};
    for (int i = 0; i < 2; i++) {
        CHECK_MSG((k = mx_cubin_kernel(bin, clean[i])) != NULL, "sm_%d: %s", sm, clean[i]);
        if (k)
            CHECK_MSG(k->registers > 0 && k->registers <= 64 && k->spill_stores == 0 &&
                          k->spill_loads == 0 && k->stack_frame == 0,
                      "sm_%d %s: %d registers, %d/%d spill bytes, %d stack", sm, clean[i],
                      k->registers, k->spill_stores, k->spill_loads, k->stack_frame);
    }
    if ((k = mx_cubin_kernel(bin, "block_sum")))
        CHECK_MSG(k->smem == 128 && k->barriers == 1, "sm_%d block_sum: %d smem, %d barriers",
                  sm, k->smem, k->barriers);
    if ((k = mx_cubin_kernel(bin, "saxpy")))
        CHECK(k->smem == 0);
    CHECK((k = mx_cubin_kernel(bin, "spilly")) != NULL);
    if (k)
        CHECK_MSG(k->registers > 0 && k->registers <= 32 && k->spill_stores > 0 &&
                      k->spill_loads > 0 && k->stack_frame >= k->spill_stores / 2,
                  "sm_%d spilly: %d registers, %d/%d spill bytes, %d stack", sm, k->registers,
                  k->spill_stores, k->spill_loads, k->stack_frame);
    CHECK(mx_cubin_kernel(bin, "nope") == NULL);
}

static void test_nvrtc_compile(void) {
    int major, minor;
    mx_nvrtc_version(&major, &minor);
    CHECK(major >= 12 && minor >= 0);
    for (int sm = 80; sm <= 90; sm += 10) {
        mx_cubin bin;
        mx_diag d = {{0}};
        CHECK_MSG(mx_nvrtc_compile(kernels_src, "kernels.cu", sm, NULL, 0, &bin, &d) == MX_OK,
                  "%s", d.msg);
        check_kernels(&bin, sm);
        CHECK(bin.ptx && strstr(bin.ptx, ".entry saxpy") && !bin.from_cache);
        printf("nvrtc: kernels.cu (3 kernels) for sm_%d in %.0f ms\n", sm, bin.compile_ms);
        mx_cubin_free(&bin);
        CHECK(bin.cubin == NULL && bin.n_kernels == 0);
    }
    mx_cubin bin;
    mx_diag d = {{0}};
    const char *lineinfo[] = {"-lineinfo"};
    CHECK_MSG(mx_nvrtc_compile(half_src, "half.cu", 90, lineinfo, 1, &bin, &d) == MX_OK, "%s",
              d.msg);
    CHECK(bin.n_kernels == 1 && mx_cubin_kernel(&bin, "twice"));
    printf("nvrtc: half.cu (cuda_bf16.h) for sm_90 in %.0f ms\n", bin.compile_ms);
    mx_cubin_free(&bin);
}

static void test_nvrtc_errors(void) {
    mx_cubin bin;
    mx_diag d = {{0}};
    CHECK(mx_nvrtc_compile(bad_src, "bad.cu", 80, NULL, 0, &bin, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "bad.cu: NVRTC_ERROR_COMPILATION for sm_80 in kernel k (line 3):\nbad.cu(3): error: "
                            "expected a \";\"") == d.msg,
              "%s", d.msg);
    CHECK(bin.cubin == NULL && bin.ptx == NULL && bin.n_kernels == 0);
    CHECK(mx_nvrtc_compile(kernels_src, "kernels.cu", 12, NULL, 0, &bin, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "kernels.cu: NVRTC_ERROR_INVALID_OPTION for sm_12:") == d.msg &&
                  strstr(d.msg, "gpu-architecture"),
              "%s", d.msg);
    const char *bogus[] = {"--no-such-option"};
    CHECK(mx_nvrtc_compile(kernels_src, "kernels.cu", 80, bogus, 1, &bin, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "no-such-option"), "%s", d.msg);

    /* A long log is cut to its first 40 lines. */
    char many[4096] = "";
    for (int i = 0; i < 60; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "int v%d = undefined%d;\n", i,
                 i);
    CHECK(mx_nvrtc_compile(many, "many.cu", 80, NULL, 0, &bin, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "many.cu(1): error: identifier \"undefined0\" is undefined") &&
                  !strstr(d.msg, "undefined59") &&
                  (strstr(d.msg, "more lines of log)") || strlen(d.msg) == sizeof d.msg - 1),
              "%s", d.msg);
}

/* Logs of other shapes: a device function's properties, an unknown line,
 * CRLF ends, items in another order, no trailing newline. */
static void test_parse_usage(void) {
    const char *log =
        "ptxas info    : 0 bytes gmem\n"
        "ptxas info    : Compiling entry function 'first' for 'sm_90'\n"
        "ptxas info    : Function properties for first\r\n"
        "ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\r\n"
        "ptxas info    : Used 2 barriers, 40 registers, 256 bytes smem, 372 bytes cmem[0]\r\n"
        "ptxas info    : Function properties for helper\n"
        "ptxas         .     64 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
        "ptxas info    : Something new, 5 bytes smem\n"
        "ptxas info    : Compiling entry function '_Z6secondPf' for 'sm_90'\n"
        "ptxas info    : Used 7 registers";
    mx_kernel_usage *k;
    int n = mx_nvrtc_parse_usage(log, &k);
    CHECK(n == 2);
    if (n != 2)
        return;
    CHECK(strcmp(k[0].name, "first") == 0 && k[0].registers == 40 && k[0].barriers == 2 &&
          k[0].smem == 256 && k[0].stack_frame == 16 && k[0].spill_stores == 8 &&
          k[0].spill_loads == 4);
    CHECK(strcmp(k[1].name, "_Z6secondPf") == 0 && k[1].registers == 7 && k[1].stack_frame == 0 &&
          k[1].smem == 0);
    for (int i = 0; i < n; i++)
        free(k[i].name);
    free(k);
    CHECK(mx_nvrtc_parse_usage("", &k) == 0);
    free(k);
}

/* ---- the cache ------------------------------------------------------------------ */

static void test_hash(void) {
    /* Reference values from the mmh3 package (hash128, x64, seed 42). */
    static const struct {
        const char *s;
        size_t len;
        uint64_t lo, hi;
    } v[] = {
        {"The quick brown fox jumps over the lazy dog", 43, 0x740dcf93fe0bd5d7ull,
         0xc4546cf4ec705c8full},
        {"", 0, 0xf02aa77dfa1b8523ull, 0xd1016610da11cbb9ull},
        {"aaaaaaaaaaaaaaaaa", 17, 0x45cdf34e3ffebd8dull, 0x7711f2910e3c5fd9ull},
        {"abcdefghi", 9, 0xbebe8e2071f97bf6ull, 0x7dc61cdd7bb69597ull},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        mx_hash128 h = mx_hash128_bytes(v[i].s, v[i].len, 42);
        CHECK_MSG(h.lo == v[i].lo && h.hi == v[i].hi, "\"%s\": %016llx %016llx", v[i].s,
                  (unsigned long long)h.lo, (unsigned long long)h.hi);
    }
    mx_hash128 a = mx_cache_key("src", "a.cu", 80, NULL, 0);
    mx_hash128 b = mx_cache_key("src", "a.cu", 90, NULL, 0);
    const char *o[] = {"-lineinfo"}, *o2[] = {"-lineinfo", "src"};
    mx_hash128 c = mx_cache_key("src", "a.cu", 80, o, 1);
    mx_hash128 e = mx_cache_key("", "a.cu", 80, o2, 2); /* same strings, other fields */
    mx_hash128 a2 = mx_cache_key("src", "a.cu", 80, NULL, 0);
    CHECK(a.lo == a2.lo && a.hi == a2.hi);
    CHECK(a.lo != b.lo && a.lo != c.lo && c.lo != e.lo && a.hi != b.hi);
}

/* The environment variables that name the directory, and their order. */
static void test_cache_dir(void) {
    char dir[4096], home[4096] = "", xdg[4096] = "";
    snprintf(home, sizeof home, "%s", getenv("HOME") ? getenv("HOME") : "");
    snprintf(xdg, sizeof xdg, "%s", getenv("XDG_CACHE_HOME") ? getenv("XDG_CACHE_HOME") : "");
    setenv("MIXC_CACHE_DIR", "/x/y", 1);
    CHECK(mx_cache_dir(dir, sizeof dir) && strcmp(dir, "/x/y") == 0);
    unsetenv("MIXC_CACHE_DIR");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    CHECK(mx_cache_dir(dir, sizeof dir) && strcmp(dir, "/xdg/mixc") == 0);
    setenv("XDG_CACHE_HOME", "relative", 1);
    setenv("HOME", "/home/u", 1);
    CHECK(mx_cache_dir(dir, sizeof dir) && strcmp(dir, "/home/u/.cache/mixc") == 0);
    setenv("MIXC_NO_CACHE", "1", 1);
    CHECK(!mx_cache_dir(dir, sizeof dir));
    setenv("MIXC_NO_CACHE", "0", 1);
    CHECK(mx_cache_dir(dir, sizeof dir));
    unsetenv("MIXC_NO_CACHE");
    setenv("HOME", home, 1);
    if (xdg[0])
        setenv("XDG_CACHE_HOME", xdg, 1);
    else
        unsetenv("XDG_CACHE_HOME");
}

static void test_cache_get_put(const char *dir) {
    mx_hash128 key = {1, 2};
    unsigned char *bytes;
    size_t len;
    mx_diag d = {{0}};
    char path[4200];
    CHECK(mx_cache_get(key, &bytes, &len) == MX_CACHE_MISS && bytes == NULL);
    CHECK_MSG(mx_cache_put(key, "hello", 5, &d) == MX_OK, "%s", d.msg);
    CHECK(mx_cache_get(key, &bytes, &len) == MX_CACHE_HIT && len == 5 &&
          memcmp(bytes, "hello", 5) == 0);
    free(bytes);
    CHECK(mx_cache_put(key, "", 0, &d) == MX_OK); /* replaces */
    CHECK(mx_cache_get(key, &bytes, &len) == MX_CACHE_HIT && len == 0);
    free(bytes);

    /* An entry renamed to another key's name is not that key's. */
    mx_hash128 other = {3, 4};
    char other_path[4200];
    CHECK(rename(entry_file(key, path, sizeof path),
                 entry_file(other, other_path, sizeof other_path)) == 0);
    CHECK(mx_cache_get(other, &bytes, &len) == MX_CACHE_CORRUPT && bytes == NULL);
    unlink(other_path);

    /* An entry of another format version reads as a miss. */
    CHECK(mx_cache_put(key, "hello", 5, &d) == MX_OK);
    flip_byte(entry_file(key, path, sizeof path), 8);
    CHECK(mx_cache_get(key, &bytes, &len) == MX_CACHE_MISS);
    unlink(path);

    /* A directory that cannot be made is an error naming it. */
    char blocked[4200];
    snprintf(blocked, sizeof blocked, "%s/afile", dir);
    FILE *f = fopen(blocked, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    snprintf(blocked + strlen(blocked), sizeof blocked - strlen(blocked), "/sub");
    setenv("MIXC_CACHE_DIR", blocked, 1);
    CHECK(mx_cache_put(key, "hello", 5, &d) == MX_ERR_IO);
    CHECK_MSG(strstr(d.msg, "afile/sub: error: cannot create the kernel cache directory: Not a "
                            "directory"),
              "%s", d.msg);
    CHECK(mx_cache_get(key, &bytes, &len) == MX_CACHE_MISS);
    /* Compiling still works; only the store fails. */
    mx_cubin bin;
    CHECK(mx_nvrtc_compile_cached(half_src, "half.cu", 80, NULL, 0, &bin, &d) == MX_OK &&
          !bin.from_cache);
    mx_cubin_free(&bin);
}

static void compile_cached(const char *src, int sm, const char *const *opts, int n_opts,
                           mx_cubin *bin) {
    mx_diag d = {{0}};
    CHECK_MSG(mx_nvrtc_compile_cached(src, "kernels.cu", sm, opts, n_opts, bin, &d) == MX_OK,
              "%s", d.msg);
}

static bool same_cubin(const mx_cubin *a, const mx_cubin *b) {
    if (a->cubin_len != b->cubin_len || memcmp(a->cubin, b->cubin, a->cubin_len) != 0 ||
        a->n_kernels != b->n_kernels)
        return false;
    for (int i = 0; i < a->n_kernels; i++) {
        const mx_kernel_usage *x = &a->kernels[i], *y = &b->kernels[i];
        if (strcmp(x->name, y->name) != 0 || x->registers != y->registers ||
            x->spill_stores != y->spill_stores || x->spill_loads != y->spill_loads ||
            x->stack_frame != y->stack_frame || x->smem != y->smem || x->barriers != y->barriers)
            return false;
    }
    return true;
}

static void test_cache_compile(const char *dir) {
    int n_tmp;
    mx_cubin cold, warm, other;
    compile_cached(kernels_src, 80, NULL, 0, &cold);
    CHECK(!cold.from_cache && cold.ptx && count_files(dir, &n_tmp) == 1 && n_tmp == 0);
    double t0 = now_ms();
    compile_cached(kernels_src, 80, NULL, 0, &warm);
    printf("cache: hit in %.2f ms (compile %.0f ms)\n", now_ms() - t0, cold.compile_ms);
    CHECK(warm.from_cache && warm.ptx == NULL && warm.compile_ms == 0);
    CHECK(same_cubin(&cold, &warm));
    check_kernels(&warm, 80);
    mx_cubin_free(&warm);

    /* Another option or architecture is another entry. */
    const char *lineinfo[] = {"-lineinfo"};
    compile_cached(kernels_src, 80, lineinfo, 1, &other);
    CHECK(!other.from_cache);
    mx_cubin_free(&other);
    compile_cached(kernels_src, 90, NULL, 0, &other);
    CHECK(!other.from_cache && count_files(dir, &n_tmp) == 3);
    mx_cubin_free(&other);

    /* Damaged entries are noticed and rebuilt. */
    char path[4200];
    mx_hash128 key = mx_cache_key(kernels_src, "kernels.cu", 80, NULL, 0);
    entry_file(key, path, sizeof path);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    unsigned char *bytes;
    size_t len;
    const long damage[] = {st.st_size / 2, 0, 40, st.st_size - 1};
    for (int i = 0; i < 5; i++) {
        if (i < 4)
            flip_byte(path, damage[i]);
        else
            CHECK(truncate(path, st.st_size - 1) == 0);
        CHECK_MSG(mx_cache_get(key, &bytes, &len) == MX_CACHE_CORRUPT, "damage %d", i);
        compile_cached(kernels_src, 80, NULL, 0, &warm);
        CHECK(!warm.from_cache && same_cubin(&cold, &warm));
        mx_cubin_free(&warm);
        compile_cached(kernels_src, 80, NULL, 0, &warm);
        CHECK(warm.from_cache && same_cubin(&cold, &warm));
        mx_cubin_free(&warm);
    }

    /* MIXC_NO_CACHE=1: no lookups, no writes. */
    setenv("MIXC_NO_CACHE", "1", 1);
    CHECK(mx_cache_get(key, &bytes, &len) == MX_CACHE_OFF);
    compile_cached(kernels_src, 80, NULL, 0, &warm);
    CHECK(!warm.from_cache && same_cubin(&cold, &warm));
    mx_cubin_free(&warm);
    compile_cached(half_src, 80, NULL, 0, &warm);
    mx_cubin_free(&warm);
    unsetenv("MIXC_NO_CACHE");
    CHECK(count_files(dir, &n_tmp) == 3 && n_tmp == 0);
    mx_cubin_free(&cold);
}

/* Two threads storing the same key over and over leave one valid entry. */
typedef struct {
    mx_hash128 key;
    const unsigned char *bytes;
    size_t len;
    int failures;
} put_job;

static void *put_many(void *arg) {
    put_job *j = arg;
    for (int i = 0; i < 50; i++) {
        mx_diag d = {{0}};
        j->failures += mx_cache_put(j->key, j->bytes, j->len, &d) != MX_OK;
    }
    return NULL;
}

static void test_cache_concurrent(const char *dir) {
    static unsigned char blob[100000];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (unsigned char)check_rng_u64();
    put_job jobs[2] = {{{7, 7}, blob, sizeof blob, 0}, {{7, 7}, blob, sizeof blob, 0}};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, put_many, &jobs[0]) == 0);
    put_many(&jobs[1]);
    pthread_join(t, NULL);
    CHECK(jobs[0].failures == 0 && jobs[1].failures == 0);
    unsigned char *bytes;
    size_t len;
    CHECK(mx_cache_get(jobs[0].key, &bytes, &len) == MX_CACHE_HIT && len == sizeof blob &&
          memcmp(bytes, blob, len) == 0);
    free(bytes);
    int n_tmp;
    CHECK(count_files(dir, &n_tmp) == 1 && n_tmp == 0);
}

static void test_compile_many(const char *dir) {
    const char *lineinfo[] = {"-lineinfo"};
    mx_nvrtc_job jobs[] = {
        {kernels_src, "kernels.cu", 80, NULL, 0},
        {kernels_src, "kernels.cu", 90, NULL, 0},
        {half_src, "half.cu", 80, NULL, 0},
        {half_src, "half.cu", 90, lineinfo, 1},
    };
    enum { N = sizeof jobs / sizeof jobs[0] };
    mx_cubin cold[N], warm[N];
    mx_diag d = {{0}};
    double t0 = now_ms();
    CHECK_MSG(mx_nvrtc_compile_many(jobs, N, cold, &d) == MX_OK, "%s", d.msg);
    double t1 = now_ms();
    CHECK_MSG(mx_nvrtc_compile_many(jobs, N, warm, &d) == MX_OK, "%s", d.msg);
    printf("compile_many: %d programs cold in %.0f ms, warm in %.2f ms\n", N, t1 - t0,
           now_ms() - t1);
    for (int i = 0; i < N; i++) {
        CHECK(!cold[i].from_cache && warm[i].from_cache && same_cubin(&cold[i], &warm[i]));
        CHECK(cold[i].n_kernels == (i < 2 ? 3 : 1));
    }
    check_kernels(&cold[1], 90);
    for (int i = 0; i < N; i++) {
        mx_cubin_free(&cold[i]);
        mx_cubin_free(&warm[i]);
    }

    /* One bad program fails the batch, names itself, and nothing is kept. */
    jobs[2] = (mx_nvrtc_job){bad_src, "bad.cu", 80, NULL, 0};
    CHECK(mx_nvrtc_compile_many(jobs, N, cold, &d) == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "bad.cu: NVRTC_ERROR_COMPILATION") == d.msg, "%s", d.msg);
    for (int i = 0; i < N; i++)
        CHECK(cold[i].cubin == NULL && cold[i].n_kernels == 0);
    CHECK(mx_nvrtc_compile_many(jobs, 0, cold, &d) == MX_OK);
}

/* Runs f with MIXC_CACHE_DIR set to a fresh directory under tmp_root. */
static void in_cache_dir(const char *name, void (*f)(const char *dir)) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s/cache", tmp_root, name); /* the cache makes the parents */
    setenv("MIXC_CACHE_DIR", dir, 1);
    f(dir);
    unsetenv("MIXC_CACHE_DIR");
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--probe-driver") == 0)
        return probe_driver();
    if (argc == 2 && strcmp(argv[1], "--probe-thread") == 0)
        return probe_thread();
    if (argc == 2 && strcmp(argv[1], "--probe-profile") == 0)
        return probe_profile();
    if (!mkdtemp(tmp_root)) {
        perror(tmp_root);
        return 1;
    }
    unsetenv("MIXC_NO_CACHE");
    test_check_without_driver();
    test_driver_open();
    test_driver_stub();
    test_driver_too_old();
    test_driver_profile();
    test_other_thread();
    test_entry_point_names();
    test_parse_usage();
    test_nvrtc_compile();
    test_nvrtc_errors();
    test_hash();
    test_cache_dir();
    in_cache_dir("getput", test_cache_get_put);
    in_cache_dir("compile", test_cache_compile);
    in_cache_dir("concurrent", test_cache_concurrent);
    in_cache_dir("many", test_compile_many);
    remove_tree(tmp_root);
    return check_summary();
}
