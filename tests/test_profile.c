/* test_profile.c: the counting emulation (mx_emu_load_profiling) on kernels
 * whose counts are known by hand, and the profile of a program
 * (runtime/profile.h) against the roofline arithmetic. The zoo's scan kernels
 * against their targets are in test_profile_targets.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "emu.h"
#include "profile.h"
#include "support.h"

static const char source[] =
    "#include \"mixc_prelude.h\"\n"
    "extern \"C\" __global__ void copy(const float *x, float *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    y[i] = x[i];\n"
    "}\n"
    "MX_EMU_ENTRY(copy)\n"
    "extern \"C\" __global__ void gather8(const float *x, float *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    y[i] = x[8 * i];\n"
    "}\n"
    "MX_EMU_ENTRY(gather8)\n"
    "extern \"C\" __global__ void shifted(const float *x, float *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    y[i] = x[i + 1];\n"
    "}\n"
    "MX_EMU_ENTRY(shifted)\n"
    "extern \"C\" __global__ void odd_lanes(const float *x, float *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i % 2)\n"
    "        y[i] = x[i];\n"
    "}\n"
    "MX_EMU_ENTRY(odd_lanes)\n"
    "extern \"C\" __global__ void broadcast(const float *x, float *y) {\n"
    "    y[blockIdx.x * blockDim.x + threadIdx.x] = x[blockIdx.x];\n"
    "}\n"
    "MX_EMU_ENTRY(broadcast)\n"
    "extern \"C\" __global__ void accumulate(const float *x, float *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    y[i] = x[i];\n"
    "    __syncthreads();\n"
    "    y[i ^ 1] += 2.0f * x[i];\n"
    "}\n"
    "MX_EMU_ENTRY(accumulate)\n"
    "extern \"C\" __global__ void vec4(const float4 *x, float4 *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    y[i] = x[i];\n"
    "}\n"
    "MX_EMU_ENTRY(vec4)\n"
    "extern \"C\" __global__ void sfu(const float *x, float *y) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    float a = expf(x[i]) + log1pf(1.0f + __shfl_xor_sync(0xFFFFFFFFu, x[i], 1));\n"
    "    __syncthreads();\n"
    "    __syncthreads();\n"
    "    y[i] = a;\n"
    "}\n"
    "MX_EMU_ENTRY(sfu)\n";

enum { BLOCKS = 4, THREADS = 64, N = BLOCKS * THREADS, WARPS = N / 32 };

/* The counters of one launch over x (x_bytes; a weight when x_weight) and y
 * (N elements of y_elem bytes). */
static mx_emu_counters run_over(mx_emu_module *m, const char *kernel, const void *x, size_t x_bytes, bool x_weight,
                                void *y, size_t y_elem) {
    mx_emu_counters c;
    memset(&c, 0, sizeof c);
    mx_emu_buffer bufs[] = {{x, x_bytes, x_weight}, {y, N * y_elem, false}};
    void *args[] = {&x, &y};
    unsigned grid[3] = {BLOCKS, 1, 1}, block[3] = {THREADS, 1, 1};
    mx_diag d;
    mx_status st = mx_emu_launch_profiled(m, kernel, grid, block, 0, args, bufs, 2, &c, &d);
    CHECK_MSG(st == MX_OK, "%s: %s", kernel, d.msg);
    return c;
}

static mx_emu_counters run(mx_emu_module *m, const char *kernel, const void *x, size_t x_bytes, void *y,
                           size_t y_elem) {
    return run_over(m, kernel, x, x_bytes, false, y, y_elem);
}

#define CHECK_COUNT(kernel, got, want)                                                                       \
    CHECK_MSG((got) == (want), "%s: %s is %llu, want %llu", kernel, #got, (unsigned long long)(got),           \
              (unsigned long long)(want))

static void test_counters(mx_emu_module *m) {
    /* 32-byte aligned, so that a warp's 128 contiguous bytes are 4 sectors. */
    float *x = aligned_alloc(64, 8 * N * sizeof(float) + 64), *y = aligned_alloc(64, 4 * N * sizeof(float));
    check_fill(x, 8 * N, 0.5f, 1.0f);

    mx_emu_counters c = run(m, "copy", x, N * sizeof(float), y, sizeof(float));
    for (int k = 0; k < 2; k++) {
        CHECK_COUNT("copy", c.requests[k], WARPS);
        CHECK_COUNT("copy", c.sectors[k], 4 * WARPS);
        CHECK_COUNT("copy", c.bytes[k], 4 * N);
        CHECK_COUNT("copy", c.unique_bytes[k], 4 * N);
    }
    CHECK_COUNT("copy", c.exps + c.shuffles + c.barriers, 0);

    /* Every lane its own sector: 32 per request, 1/8 of each used. */
    c = run(m, "gather8", x, 8 * N * sizeof(float), y, sizeof(float));
    CHECK_COUNT("gather8", c.requests[MX_EMU_LOAD], WARPS);
    CHECK_COUNT("gather8", c.sectors[MX_EMU_LOAD], 32 * WARPS);
    CHECK_COUNT("gather8", c.bytes[MX_EMU_LOAD], 4 * N);
    CHECK_COUNT("gather8", c.unique_bytes[MX_EMU_LOAD], 32 * N);
    CHECK_COUNT("gather8", c.sectors[MX_EMU_STORE], 4 * WARPS);

    /* Off by one float: each warp's 128 bytes straddle 5 sectors; the
     * launch reads N distinct floats from x[1], 4N + 32 bytes of sectors. */
    c = run(m, "shifted", x, (N + 1) * sizeof(float), y, sizeof(float));
    CHECK_COUNT("shifted", c.sectors[MX_EMU_LOAD], 5 * WARPS);
    CHECK_COUNT("shifted", c.unique_bytes[MX_EMU_LOAD], 4 * N + 32);

    /* Half the lanes, the same sectors: half efficiency. */
    c = run(m, "odd_lanes", x, N * sizeof(float), y, sizeof(float));
    CHECK_COUNT("odd_lanes", c.requests[MX_EMU_LOAD], WARPS);
    CHECK_COUNT("odd_lanes", c.sectors[MX_EMU_LOAD], 4 * WARPS);
    CHECK_COUNT("odd_lanes", c.bytes[MX_EMU_LOAD], 2 * N);

    /* One float for every lane of a block: 4 bytes asked for per request. */
    c = run(m, "broadcast", x, BLOCKS * sizeof(float), y, sizeof(float));
    CHECK_COUNT("broadcast", c.requests[MX_EMU_LOAD], WARPS);
    CHECK_COUNT("broadcast", c.sectors[MX_EMU_LOAD], WARPS);
    CHECK_COUNT("broadcast", c.bytes[MX_EMU_LOAD], 4 * WARPS);
    CHECK_COUNT("broadcast", c.unique_bytes[MX_EMU_LOAD], 32);
    /* The same from a weight: its sector counts as used whole. */
    c = run_over(m, "broadcast", x, BLOCKS * sizeof(float), true, y, sizeof(float));
    CHECK_COUNT("broadcast (weight)", c.sectors[MX_EMU_LOAD], WARPS);
    CHECK_COUNT("broadcast (weight)", c.bytes[MX_EMU_LOAD], 32 * WARPS);
    CHECK_COUNT("broadcast (weight)", c.unique_bytes[MX_EMU_LOAD], 32);

    /* y stored, then a neighbour's element loaded back and stored again: the
     * load is a request like any other, but the sectors it reads were stored
     * by the launch and are not DRAM traffic again. */
    c = run(m, "accumulate", x, N * sizeof(float), y, sizeof(float));
    CHECK_MSG(c.requests[MX_EMU_LOAD] >= 2 * WARPS, "accumulate: %llu load requests",
              (unsigned long long)c.requests[MX_EMU_LOAD]);
    CHECK_COUNT("accumulate", c.unique_bytes[MX_EMU_LOAD], 4 * N);
    CHECK_COUNT("accumulate", c.unique_bytes[MX_EMU_STORE], 4 * N);

    /* A float4 load is one 16-byte access: one request of 16 sectors per warp. */
    c = run(m, "vec4", x, 4 * N * sizeof(float), y, 4 * sizeof(float));
    CHECK_COUNT("vec4", c.requests[MX_EMU_LOAD], WARPS);
    CHECK_COUNT("vec4", c.sectors[MX_EMU_LOAD], 16 * WARPS);
    CHECK_COUNT("vec4", c.bytes[MX_EMU_LOAD], 16 * N);

    /* expf and log1pf per lane, a shuffle per warp, two barriers per block. */
    c = run(m, "sfu", x, N * sizeof(float), y, sizeof(float));
    CHECK_COUNT("sfu", c.exps, 2 * N);
    CHECK_COUNT("sfu", c.shuffles, WARPS);
    CHECK_COUNT("sfu", c.barriers, 2 * BLOCKS);
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok &= fabsf(y[i] - (expf(x[i]) + log1pf(1.0f + x[i ^ 1]))) <= 1e-5f * fabsf(y[i]);
    CHECK_MSG(ok, "sfu: the counting module computes what the kernel says");
    free(x);
    free(y);
}

static void test_plain_module(const char *name) {
    mx_emu_module *m;
    mx_diag d;
    mx_status st = mx_emu_load(source, name, &m, &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    if (st != MX_OK)
        return;
    float x[N], y[N];
    void *args[] = {&x, &y};
    mx_emu_buffer bufs[] = {{x, sizeof x, false}, {y, sizeof y, false}};
    mx_emu_counters c;
    unsigned grid[3] = {BLOCKS, 1, 1}, block[3] = {THREADS, 1, 1};
    st = mx_emu_launch_profiled(m, "copy", grid, block, 0, args, bufs, 2, &c, &d);
    CHECK(st == MX_ERR_INVALID);
    CHECK_MSG(strstr(d.msg, "mx_emu_load_profiling") != NULL, "%s", d.msg);
    mx_emu_unload(m);
}

/* A gated scan (tests/ir/readme_example.mxir: x [2,16,8], A [16,4]) through
 * the program profile: its state updates, and the roofline from the counts. */
static void test_program(void) {
    mx_graph *g = support_load_graph(MIXC_SOURCE_DIR "/tests/ir/readme_example.mxir");
    mx_pass_options po = {0};
    mx_program *p = g ? support_compile(g, "readme_example", &po) : NULL;
    const mx_target *t = support_gpu_target("h100");
    mx_module mod = {0};
    mx_diag d;
    mx_codegen_options co = {.target = t};
    if (!p || mx_codegen(p, &co, &mod, &d) != MX_OK) {
        CHECK_MSG(p == NULL, "codegen: %s", d.msg);
        mx_program_free(p);
        mx_graph_free(g);
        return;
    }
    mx_profile pr;
    mx_status st = mx_profile_run(p, &mod, t, NULL, NULL, &pr, &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    int scans = 0;
    for (int i = 0; st == MX_OK && i < pr.n_kernels; i++) {
        const mx_kernel_profile *k = &pr.kernels[i];
        CHECK(mx_profile_kernel(&pr, k->group) == k);
        double mem = k->bytes / t->bytes_per_s, sfu = (double)k->c.exps / t->exps_per_s;
        CHECK_MSG(k->roofline_s == (mem > sfu ? mem : sfu), "%s: roofline", k->kernel);
        CHECK_MSG(k->c.unique_bytes[MX_EMU_LOAD] > 0 && k->c.unique_bytes[MX_EMU_STORE] > 0, "%s moves nothing",
                  k->kernel);
        if (k->kind != MX_FUSE_SCAN)
            continue;
        scans++;
        CHECK_MSG(k->state_updates == 2 * 16 * 8 * 4, "state updates %.0f", k->state_updates);
        CHECK_MSG(k->c.exps >= 2 * 16 * 8 * 4, "%llu exps for 1024 state updates", (unsigned long long)k->c.exps);
    }
    CHECK(scans == 1);
    if (st == MX_OK) {
        FILE *f = tmpfile();
        mx_profile_print_json(&pr, f);
        long len = ftell(f);
        CHECK(len > 100);
        fclose(f);
        mx_profile_print(&pr, stdout);
    }
    mx_profile_free(&pr);
    mx_diag bad;
    mx_target host;
    mx_target_detect(MX_DEVICE_REF, &host, &bad);
    CHECK(mx_profile_run(p, &mod, &host, NULL, NULL, &pr, &bad) == MX_ERR_INVALID);
    CHECK_MSG(strstr(bad.msg, "not a GPU") != NULL, "%s", bad.msg);
    mx_profile_free(&pr);
    mx_module_free(&mod);
    mx_program_free(p);
    mx_graph_free(g);
}

int main(void) {
    mx_emu_module *m;
    mx_diag d;
    mx_status st = mx_emu_load_profiling(source, "profile", &m, &d);
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    if (st == MX_OK) {
        test_counters(m);
        mx_emu_unload(m);
    }
    test_plain_module("plain");
    test_program();
    return check_summary();
}
