/* test_emu.c: the host emulation of CUDA kernels (runtime/emu.h). The kernels
 * in tests/emu/ run through mx_emu_load / mx_emu_launch and are compared with
 * host computations over random non-zero inputs, outputs poisoned first; the
 * same sources must compile with NVRTC for sm_90. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "emu.h"
#include "half.h"
#include "ir.h"
#include "rtc.h"

#define POISON 0xFF /* bytes: a NaN in every float */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *read_source(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/emu/%s", MIXC_SOURCE_DIR, name);
    mx_diag d;
    size_t len;
    char *text = mx_read_file(path, &len, &d);
    CHECK_MSG(text != NULL, "%s", d.msg);
    return text;
}

static void *poisoned(size_t bytes) {
    void *p = malloc(bytes);
    memset(p, POISON, bytes);
    return p;
}

static float *random_floats(int64_t n, float lo, float hi) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        do
            x[i] = check_uniform(lo, hi);
        while (x[i] == 0.0f);
    }
    return x;
}

static mx_status launch(mx_emu_module *m, const char *kernel, unsigned gx, unsigned gy, unsigned bx,
                        unsigned by, size_t smem, void **args, mx_diag *d) {
    unsigned grid[3] = {gx, gy, 1}, block[3] = {bx, by, 1};
    return mx_emu_launch(m, kernel, grid, block, smem, args, d);
}

#define LAUNCH_OK(m, kernel, gx, gy, bx, by, smem, args)                       \
    do {                                                                       \
        mx_diag d_;                                                            \
        mx_status st_ = launch((m), (kernel), (gx), (gy), (bx), (by), (smem), (args), &d_); \
        CHECK_MSG(st_ == MX_OK, "%s", d_.msg);                                 \
    } while (0)

/* ---- kernels.cu ---- */

static void test_block_reduce(mx_emu_module *m) {
    static const unsigned sizes[] = {1, 7, 32, 33, 100, 256, 1000, 1024};
    int rows = 3, n = 777;
    float *x = random_floats((int64_t)rows * n, -1, 1);
    double want[3] = {0};
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++)
            want[r] += x[r * n + i];
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        float *out = poisoned(rows * sizeof *out);
        void *args[] = {&x, &out, &n};
        LAUNCH_OK(m, "block_reduce", rows, 1, sizes[s], 1, 0, args);
        char what[64];
        snprintf(what, sizeof what, "block_reduce, %u threads", sizes[s]);
        CHECK_CLOSE(out, want, rows, 1e-5, what);
        free(out);
    }
    free(x);
}

static void test_warp_ops(mx_emu_module *m) {
    enum { BLOCKS = 2, THREADS = 64, N = BLOCKS * THREADS, WARPS = N / 32 };
    float *x = random_floats(N, -1, 1);
    float *scan = poisoned(N * sizeof(float)), *sum = poisoned(N * sizeof(float));
    float *seg = poisoned(N * sizeof(float)), *next = poisoned(N * sizeof(float));
    unsigned *votes = poisoned(4 * WARPS * sizeof(unsigned));
    void *args[] = {&x, &scan, &next, &sum, &seg, &votes};
    LAUNCH_OK(m, "warp_ops", BLOCKS, 1, THREADS, 1, 0, args);
    double want_scan[N], want_next[N], want_sum[N], want_seg[N];
    for (int w = 0; w < WARPS; w++) {
        const float *xw = x + 32 * w;
        double run = 0, total = 0;
        unsigned ballot = 0, all = 1, any = 0;
        for (int l = 0; l < 32; l++)
            total += xw[l];
        for (int l = 0; l < 32; l++) {
            run += xw[l];
            want_scan[32 * w + l] = run;
            want_sum[32 * w + l] = total;
            want_seg[32 * w + l] = xw[(l & ~7) + 3];
            ballot |= (unsigned)(xw[l] > 0) << l;
            all &= xw[l] > -0.9f;
            any |= xw[l] > 0.9f;
        }
        CHECK(votes[4 * w] == ballot);
        CHECK(votes[4 * w + 1] == all);
        CHECK(votes[4 * w + 2] == any);
        CHECK(votes[4 * w + 3] == 0xFFFFFFFFu);
    }
    for (int i = 0; i < N; i++)
        want_next[i] = want_scan[i ^ 1];
    CHECK_CLOSE(scan, want_scan, N, 1e-5, "warp inclusive scan (shfl_up)");
    CHECK_CLOSE(next, want_next, N, 1e-5, "the neighbour's scan after __syncwarp");
    CHECK_CLOSE(sum, want_sum, N, 1e-5, "warp butterfly sum (shfl_xor)");
    CHECK_CLOSE(seg, want_seg, N, 0, "segment broadcast (shfl, width 8)");
    free(x), free(scan), free(next), free(sum), free(seg), free(votes);
}

static void test_chunked_scan(mx_emu_module *m) {
    static const int lengths[] = {1, 7, 197, 1000};
    int seqs = 3;
    for (size_t s = 0; s < sizeof lengths / sizeof *lengths; s++) {
        int L = lengths[s];
        int64_t n = (int64_t)seqs * L;
        float *a = random_floats(n, 0.5f, 1.0f), *b = random_floats(n, -1, 1);
        float *h = poisoned((size_t)n * sizeof *h);
        double *want = malloc((size_t)n * sizeof *want);
        for (int q = 0; q < seqs; q++) {
            double prev = 0;
            for (int t = 0; t < L; t++)
                want[q * L + t] = prev = (double)a[q * L + t] * prev + b[q * L + t];
        }
        void *args[] = {&a, &b, &h, &L};
        LAUNCH_OK(m, "chunked_scan", seqs, 1, 64, 1, 0, args);
        char what[64];
        snprintf(what, sizeof what, "chunked block scan, L = %d", L);
        CHECK_CLOSE(h, want, n, 1e-4, what);
        free(a), free(b), free(h), free(want);
    }
}

static void test_grid_atomics(mx_emu_module *m) {
    int width = 70, height = 13; /* 3 x 4 blocks of 32 x 4, ragged at both edges */
    int64_t n = (int64_t)width * height;
    float *x = random_floats(n, -1, 1), *y = poisoned((size_t)n * sizeof *y);
    double sum = 0, want_sum = 0;
    unsigned long long count = 0;
    int max_col = -1;
    float fsum = 0;
    double *want = malloc((size_t)n * sizeof *want);
    for (int64_t i = 0; i < n; i++) {
        want[i] = (double)(i / width * 1000 + i % width);
        want_sum += x[i];
    }
    double *psum = &sum;
    unsigned long long *pcount = &count;
    int *pmax = &max_col;
    float *pfsum = &fsum;
    void *args[] = {&x, &y, &width, &height, &psum, &pcount, &pmax, &pfsum};
    LAUNCH_OK(m, "grid_atomics", 3, 4, 32, 4, 0, args);
    CHECK_CLOSE(y, want, n, 0, "2-D grid indices");
    CHECK(fabs(sum - want_sum) < 1e-9);
    CHECK(count == (unsigned long long)n);
    CHECK(fsum == (float)n);
    CHECK(max_col == width - 1);
    free(x), free(y), free(want);
}

static void test_dynamic_smem(mx_emu_module *m) {
    enum { BLOCKS = 3, THREADS = 50, N = BLOCKS * THREADS };
    float *x = random_floats(N, -1, 1), *y = poisoned(N * sizeof(float));
    float *fresh = calloc(N, sizeof(float));
    double want[N];
    for (int i = 0; i < N; i++)
        want[i] = x[i / THREADS * THREADS + (THREADS - 1 - i % THREADS)];
    void *args[] = {&x, &y, &fresh};
    LAUNCH_OK(m, "dyn_reverse", BLOCKS, 1, THREADS, 1, THREADS * sizeof(float), args);
    CHECK_CLOSE(y, want, N, 0, "reverse through dynamic shared memory");
    int all_nan = 1;
    for (int i = 0; i < N; i++)
        all_nan &= isnan(fresh[i]);
    CHECK_MSG(all_nan, "dynamic shared memory is poisoned at every block start");
    free(x), free(y), free(fresh);
}

/* MIXC_EMU_ORDER=reverse schedules each block's threads from the last: a
 * kernel with barriers where it needs them gives the same numbers, a racy
 * one does not. */
static void test_reverse_order(mx_emu_module *m) {
    enum { BLOCKS = 2, THREADS = 40, N = BLOCKS * THREADS };
    float *x = random_floats(N, -1, 1), *fresh = calloc(N, sizeof(float));
    float *y[2] = {poisoned(N * sizeof(float)), poisoned(N * sizeof(float))};
    float *race[2] = {poisoned(N * sizeof(float)), poisoned(N * sizeof(float))};
    for (int order = 0; order < 2; order++) {
        if (order)
            setenv("MIXC_EMU_ORDER", "reverse", 1);
        void *args[] = {&x, &y[order], &fresh}, *racy[] = {&x, &race[order]};
        LAUNCH_OK(m, "dyn_reverse", BLOCKS, 1, THREADS, 1, THREADS * sizeof(float), args);
        LAUNCH_OK(m, "racy_neighbour", BLOCKS, 1, THREADS, 1, THREADS * sizeof(float), racy);
    }
    unsetenv("MIXC_EMU_ORDER");
    CHECK_MSG(memcmp(y[0], y[1], N * sizeof(float)) == 0, "a kernel with its barriers: the same in either order");
    /* forward, a thread reads its neighbour's slot before the neighbour ran:
     * the poison; in reverse, after: x */
    int forward_poison = 0, reverse_read = 0;
    for (int i = 0; i < N; i++) {
        bool last = i % THREADS == THREADS - 1;
        forward_poison += !last && isnan(race[0][i]);
        reverse_read += !last && race[1][i] == x[i + 1];
    }
    CHECK_MSG(forward_poison == N - BLOCKS && reverse_read == N - BLOCKS,
              "the race shows: %d of %d poisoned in order, %d of %d read in reverse", forward_poison, N - BLOCKS,
              reverse_read, N - BLOCKS);
    free(x), free(fresh), free(y[0]), free(y[1]), free(race[0]), free(race[1]);
}

static void test_half_conversions(mx_emu_module *m) {
    /* Random values of every magnitude, then the edges: ties, overflow to
     * infinity, f16 subnormals, signed zeros, NaN. */
    static const float edges[] = {65504.0f, 65519.0f, 65520.0f, -65520.0f, 1e-8f, -3e-7f,
                                  5.9604645e-8f, 2.9802322e-8f, 1.0009765625f, 1.00048828125f,
                                  1.00146484375f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN,
                                  3.3895314e38f, 1.00390625f, 1.01171875f};
    int n_edges = (int)(sizeof edges / sizeof *edges), n = 4096 + n_edges;
    float *x = malloc((size_t)n * sizeof *x);
    for (int i = 0; i < 4096; i++) {
        x[i] = check_uniform(-1, 1) * ldexpf(1.0f, (int)(check_rng_u64() % 60) - 30);
        if (x[i] == 0)
            x[i] = 1;
    }
    memcpy(x + 4096, edges, sizeof edges);
    uint16_t *f16 = poisoned((size_t)n * 2), *bf16 = poisoned((size_t)n * 2);
    float *back16 = poisoned((size_t)n * 4), *backbf16 = poisoned((size_t)n * 4);
    void *args[] = {&x, &f16, &bf16, &back16, &backbf16, &n};
    LAUNCH_OK(m, "convert", (unsigned)(n + 127) / 128, 1, 128, 1, 0, args);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        uint16_t h = mx_f32_to_f16(x[i]), b = mx_f32_to_bf16(x[i]);
        float h32 = mx_f16_to_f32(h), b32 = mx_bf16_to_f32(b);
        int ok = f16[i] == h && bf16[i] == b && memcmp(&back16[i], &h32, 4) == 0 &&
                 memcmp(&backbf16[i], &b32, 4) == 0;
        if (!ok && bad++ < 5)
            fprintf(stderr, "convert(%a): f16 %04x want %04x, bf16 %04x want %04x\n", x[i],
                    f16[i], h, bf16[i], b);
    }
    CHECK_MSG(bad == 0, "%d f16/bf16 conversions differ from ir/half.h", bad);
    free(x), free(f16), free(bf16), free(back16), free(backbf16);
}

/* ---- errors.cu ---- */

/* A launch that must fail with a message holding every one of the needles. */
static void expect_failure(mx_emu_module *m, const char *kernel, unsigned threads,
                           const char *const *needles) {
    float *y = poisoned(threads * sizeof(float));
    void *args[] = {&y};
    mx_diag d = {{0}};
    mx_status st = launch(m, kernel, 2, 1, threads, 1, 0, args, &d);
    CHECK_MSG(st == MX_ERR_INVALID, "%s: launch should fail", kernel);
    for (const char *const *s = needles; *s; s++)
        CHECK_MSG(strstr(d.msg, *s) != NULL, "'%s' not in: %s", *s, d.msg);
    free(y);
}

static void test_errors(mx_emu_module *m) {
    expect_failure(m, "early_exit", 64,
                   (const char *const[]){"kernel 'early_exit'", "block (0,0,0)",
                                         "barrier divergence", "thread (0,0,0)",
                                         "thread (40,0,0) has exited", "24 of 64", NULL});
    expect_failure(m, "split_barrier", 64,
                   (const char *const[]){"kernel 'split_barrier'", "barrier divergence",
                                         "(line 17), thread (32,0,0) at __syncthreads in "
                                         "split_barrier (line 19)",
                                         NULL});
    expect_failure(m, "shfl_exited", 64,
                   (const char *const[]){"kernel 'shfl_exited'", "__shfl_xor_sync",
                                         "mask 0xffffffff", "lane 16 has exited", NULL});
    expect_failure(m, "shfl_partial_warp", 48,
                   (const char *const[]){"kernel 'shfl_partial_warp'", "thread (32,0,0)",
                                         "__shfl_down_sync", "do not exist", "0x0000ffff", NULL});
    /* The module is still usable. */
    float *y = poisoned(64 * sizeof(float)), v = 2.5f;
    void *args[] = {&y, &v};
    LAUNCH_OK(m, "fill", 2, 1, 32, 1, 0, args);
    int ok = 1;
    for (int i = 0; i < 64; i++)
        ok &= y[i] == 2.5f;
    CHECK(ok);
    free(y);

    mx_diag d;
    unsigned grid[3] = {1, 1, 1}, big[3] = {64, 32, 1};
    CHECK(mx_emu_launch(m, "fill", grid, big, 0, args, &d) == MX_ERR_INVALID);
    CHECK(strstr(d.msg, "2048 threads per block") != NULL);
    CHECK(mx_emu_launch(m, "nope", grid, grid, 0, args, &d) == MX_ERR_INVALID);
    CHECK(strstr(d.msg, "no kernel 'nope'") != NULL);
}

static void test_compile_error(void) {
    const char *src = "#include \"mixc_prelude.h\"\n"
                      "extern \"C\" __global__ void broken(float *y) {\n"
                      "    y[threadIdx.x] = 1.0f\n"
                      "}\n";
    mx_emu_module *m = NULL;
    mx_diag d;
    mx_status st = mx_emu_load(src, "broken", &m, &d);
    CHECK(st == MX_ERR_INVALID && m == NULL);
    CHECK_MSG(strstr(d.msg, "the host compile failed") && strstr(d.msg, "broken.cu:3") &&
                  strstr(d.msg, "error:"),
              "%s", d.msg);

    setenv("MIXC_EMU_CXX", "/nonexistent/c++ -O2", 1);
    st = mx_emu_load(src, "broken", &m, &d);
    unsetenv("MIXC_EMU_CXX");
    CHECK(st == MX_ERR_IO && m == NULL);
    CHECK_MSG(strstr(d.msg, "cannot run the compiler '/nonexistent/c++'"), "%s", d.msg);
}

/* The entries of dir, . and .. aside. */
static int count_entries(const char *dir) {
    DIR *dp = opendir(dir);
    int n = 0;
    for (struct dirent *e; dp && (e = readdir(dp));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (dp)
        closedir(dp);
    return n;
}

/* A module's temp dir goes once it is loaded (in sanitizer builds, at
 * unload); a load sweeps away the dirs of dead processes and leaves those of
 * live ones. The module runs with its files gone. */
static void test_temp_dirs(void) {
    char tmp[] = "/tmp/mixc-test-emu-XXXXXX", stale[128], live[128], path[256];
    CHECK(mkdtemp(tmp) != NULL);
    const char *old = getenv("TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("TMPDIR", tmp, 1);
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    snprintf(stale, sizeof stale, "%s/mixc-emu-%ld-AbCdEf", tmp, (long)dead);
    snprintf(live, sizeof live, "%s/mixc-emu-%ld-live00", tmp, (long)getpid());
    snprintf(path, sizeof path, "%s/runtime", stale);
    CHECK(mkdir(stale, 0700) == 0 && mkdir(path, 0700) == 0 && mkdir(live, 0700) == 0);
    snprintf(path, sizeof path, "%s/runtime/half.h", stale);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);

    const char *src = "#include \"mixc_prelude.h\"\n"
                      "extern \"C\" __global__ void one(float *y) { y[threadIdx.x] = 1.0f; }\n"
                      "MX_EMU_ENTRY(one)\n";
    mx_emu_module *m = NULL;
    mx_diag d;
    mx_status st = mx_emu_load(src, "temp", &m, &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    CHECK_MSG(access(stale, F_OK) != 0, "%s: a dead process's dir is still there", stale);
    CHECK_MSG(access(live, F_OK) == 0, "%s: a live process's dir was removed", live);
    float y[32] = {0}, *yp = y;
    void *args[] = {&yp};
    if (m)
        LAUNCH_OK(m, "one", 1, 1, 32, 1, 0, args);
    CHECK(!m || y[31] == 1.0f);
    mx_emu_unload(m);
    CHECK_MSG(count_entries(tmp) == 1, "%d entries left in %s", count_entries(tmp), tmp);
    rmdir(live);
    rmdir(tmp);
    if (saved)
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");
    free(saved);
}

/* The prelude is valid CUDA: the same sources compile with NVRTC. */
static void test_nvrtc(const char *name, const char *source, const char *kernel) {
    const char *opts[] = {"-I" MIXC_SOURCE_DIR "/runtime/emu"};
    mx_cubin c;
    mx_diag d;
    mx_status st = mx_nvrtc_compile(source, name, 90, opts, 1, &c, &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    if (st == MX_OK)
        CHECK_MSG(mx_cubin_kernel(&c, kernel) != NULL, "%s: no kernel %s", name, kernel);
    mx_cubin_free(&c);
}

static mx_emu_module *load(const char *name, const char *source) {
    mx_emu_module *m = NULL;
    mx_diag d;
    double t = now_s();
    mx_status st = mx_emu_load(source, name, &m, &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    printf("emu: %s compiled in %.2f s\n", name, now_s() - t);
    return m;
}

int main(void) {
    char *kernels = read_source("kernels.cu"), *errors = read_source("errors.cu");
    if (!kernels || !errors)
        return check_summary();
    mx_emu_module *m = load("kernels", kernels);
    if (m) {
        double t = now_s();
        test_block_reduce(m);
        test_warp_ops(m);
        test_chunked_scan(m);
        test_grid_atomics(m);
        test_dynamic_smem(m);
        test_reverse_order(m);
        test_half_conversions(m);
        printf("emu: kernels ran in %.2f s\n", now_s() - t);
        mx_emu_unload(m);
    }
    m = load("errors", errors);
    if (m) {
        test_errors(m);
        mx_emu_unload(m);
    }
    test_compile_error();
    test_temp_dirs();
    double t = now_s();
    test_nvrtc("kernels.cu", kernels, "chunked_scan");
    test_nvrtc("errors.cu", errors, "early_exit");
    printf("emu: NVRTC sm_90 compiles in %.2f s\n", now_s() - t);
    free(kernels);
    free(errors);
    return check_summary();
}
