/* test_cpu_zoo.c: every zoo model, at the reduced size of zoo_reduced.h, on
 * the CPU backend (JIT-compiled kernels, OpenBLAS matmuls, the planned
 * arena) against the reference interpreter, through the public API:
 * fresh seeded params and inputs, every output within 1e-4 in f32 and 2e-2
 * with bf16 and f16 storage. Memory, at a model's full size (the reduced
 * sizes are all 256-byte slot padding): the activation memory the backend
 * held (the planned arena and its f32 copies for f16 / bf16 matmuls) within
 * 10% of the planned arena, the arena against `mixc stats`' peak printed.
 * Skipped (exit 77) when mixc was built without LLVM. */
#include <stdlib.h>

#include "backend.h"
#include "support.h"

static const mx_target *target_of(mx_device device) {
    static mx_target t[MX_DEVICE_COUNT];
    mx_diag d = {{0}};
    CHECK_MSG(mx_target_detect(device, &t[device], &d) == MX_OK, "%s", d.msg);
    return &t[device];
}

/* Compiled for t, params and inputs from the seeds, run once. */
static mx_compiled *run_on(const mx_model *m, const mx_target *t, const char *path, uint64_t seed) {
    mx_diag d = {{0}};
    mx_compiled *c = mx_compile_model(m, t, NULL, &d);
    CHECK_MSG(c != NULL, "%s on %s: %s", path, mx_device_name(t->device), d.msg);
    if (!c)
        return NULL;
    mx_status st = mx_init_weights(c, seed, &d);
    if (st == MX_OK)
        st = mx_set_random_inputs(c, seed + 1, &d);
    if (st == MX_OK)
        st = mx_run(c, &d);
    CHECK_MSG(st == MX_OK, "%s on %s: %s", path, mx_device_name(t->device), d.msg);
    if (st != MX_OK) {
        mx_compiled_free(c);
        return NULL;
    }
    return c;
}

static void compare(const char *path, const char *extra, double tol, uint64_t seed) {
    mx_model *m = support_load_reduced(path, extra);
    if (!m)
        return;
    mx_compiled *ref = run_on(m, target_of(MX_DEVICE_REF), path, seed);
    mx_compiled *cpu = run_on(m, target_of(MX_DEVICE_CPU), path, seed);
    for (int i = 0; ref && cpu && i < mx_tensor_count(ref, MX_ROLE_OUTPUT); i++) {
        mx_tensor_info info;
        mx_diag d = {{0}};
        if (mx_tensor_info_of(ref, MX_ROLE_OUTPUT, i, &info, &d) != MX_OK)
            continue;
        const float *want = mx_output(ref, info.name), *got = mx_output(cpu, info.name);
        CHECK_MSG(want && got, "%s: output %s missing", path, info.name);
        if (!want || !got)
            continue;
        double *w = malloc((size_t)info.numel * sizeof *w);
        CHECK(w != NULL);
        if (!w)
            continue;
        for (int64_t k = 0; k < info.numel; k++)
            w[k] = want[k];
        char what[512];
        snprintf(what, sizeof what, "%s%s%s: %s", support_base(path), extra ? " " : "", extra ? extra : "",
                 info.name);
        CHECK_CLOSE(got, w, info.numel, tol, what);
        free(w);
    }
    mx_compiled_free(cpu);
    mx_compiled_free(ref);
    mx_model_free(m);
}

/* path at its full size with the override extra, run once on the cpu: the
 * activations the backend held (the arena and the f32 copies of f16 / bf16
 * matmul operands) within 10% of `mixc stats`' peak. (Against the arena
 * alone the copies, a fixed 0.16 MB at bf16, outgrew 10% once the scans
 * computed dt themselves and the arena fell from 2.14 to 1.62 MB.) */
static void check_memory(const char *path, const char *extra) {
    mx_model *m = support_load_model(path, &extra, 1);
    mx_compiled *cpu = m ? run_on(m, target_of(MX_DEVICE_CPU), path, 3) : NULL;
    mx_stats *stats = m ? mx_model_stats(m) : NULL;
    if (cpu && stats) {
        double held = (double)mx_cpu_activation_peak(mx_compiled_backend_state(cpu));
        double arena = (double)mx_compiled_program(cpu)->arena_bytes;
        printf("%s %s: cpu held %.2f MB of activations, arena %.2f MB, mixc stats' peak %.2f MB\n",
               support_base(path), extra, held / 1e6, arena / 1e6, stats->total.peak_bytes / 1e6);
        CHECK_MSG(held >= arena && held <= 1.1 * stats->total.peak_bytes,
                  "%s %s: the cpu backend held %.0f bytes of activations, arena %.0f, stats' peak %.0f",
                  support_base(path), extra, held, arena, stats->total.peak_bytes);
    }
    mx_stats_free(stats);
    mx_compiled_free(cpu);
    mx_model_free(m);
}

static uint64_t seed = 7;

static void each_model(const char *path) {
    compare(path, NULL, 1e-4, seed++);
    compare(path, "dtype=bf16", 2e-2, seed++);
    compare(path, "dtype=f16", 2e-2, seed++);
}

int main(void) {
    if (!mx_have_cpu_backend()) {
        printf("skipped: built without the CPU backend (LLVM)\n");
        return 77;
    }
    support_each_file(MIXC_SOURCE_DIR "/models", ".json", each_model);
    check_memory(MIXC_SOURCE_DIR "/models/mamba-block.json", "dtype=f32");
    check_memory(MIXC_SOURCE_DIR "/models/mamba-block.json", "dtype=bf16");
    return check_summary();
}
