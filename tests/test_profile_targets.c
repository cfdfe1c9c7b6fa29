/* test_profile_targets.c: the TARGETS for the generated scan kernels, held
 * by the counting emulation (docs/profile.md) for every zoo model at the
 * reduced size of zoo_reduced.h, code generated for h100:
 *
 *   exps against the minimum of the scan's ops (one per state update, plus
 *   softplus and SiLU per step) <= 1.05: no exp recomputed;
 *   load sector efficiency >= 75%: warps read whole sectors;
 *   distinct bytes moved <= 1.3 x the minimum (u, dt, z, B, C read once, y
 *   written once).
 *
 * These are goals for the scan emitter, kept apart from the suites that check
 * correctness: a failure here names the kernel and its numbers. */
#include <stdio.h>

#include "check.h"
#include "profile.h"
#include "support.h"

#define MAX_EXP_RATIO 1.05
#define MIN_LOAD_EFFICIENCY 0.75
#define MAX_BYTES_RATIO 1.3

static void check_model(const char *path) {
    const char *name = support_base(path);
    mx_model *model = support_load_reduced(path, NULL);
    mx_pass_options po = {0};
    mx_program *p = model ? support_compile(mx_model_graph(model), name, &po) : NULL;
    mx_module mod = {0};
    mx_diag d;
    mx_codegen_options co = {.target = support_gpu_target("h100")};
    mx_status st = p ? mx_codegen(p, &co, &mod, &d) : MX_ERR_INVALID;
    CHECK_MSG(st == MX_OK || !p, "%s: codegen: %s", name, d.msg);
    mx_profile pr = {0};
    if (st == MX_OK) {
        st = mx_profile_run(p, &mod, co.target, NULL, &pr, &d);
        CHECK_MSG(st == MX_OK, "%s: %s", name, d.msg);
    }
    for (int i = 0; st == MX_OK && i < pr.n_kernels; i++) {
        const mx_kernel_profile *k = &pr.kernels[i];
        if (k->kind != MX_FUSE_SCAN)
            continue;
        printf("%-24s %-16s exps/update %.3f  exps/minimum %.3f  load efficiency %5.1f%%  bytes/minimum %.2f\n",
               name, k->kernel, k->exps_per_update, k->exp_ratio, 100 * k->load_efficiency, k->bytes_ratio);
        CHECK_MSG(k->exp_ratio <= MAX_EXP_RATIO, "target: %s %s: %.3f exps per needed exp (at most %.2f)", name,
                  k->kernel, k->exp_ratio, MAX_EXP_RATIO);
        CHECK_MSG(k->load_efficiency >= MIN_LOAD_EFFICIENCY, "target: %s %s: load sector efficiency %.1f%% (at least %.0f%%)",
                  name, k->kernel, 100 * k->load_efficiency, 100 * MIN_LOAD_EFFICIENCY);
        CHECK_MSG(k->bytes_ratio <= MAX_BYTES_RATIO, "target: %s %s: %.2f x the minimum bytes (at most %.1f)", name,
                  k->kernel, k->bytes_ratio, MAX_BYTES_RATIO);
    }
    mx_profile_free(&pr);
    mx_module_free(&mod);
    mx_program_free(p);
    mx_model_free(model);
}

int main(void) {
    support_each_file(MIXC_SOURCE_DIR "/models", ".json", check_model);
    return check_summary();
}
