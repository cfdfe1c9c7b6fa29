/* test_profile_targets.c: the TARGETS for the generated scan kernels, held
 * by the counting emulation (docs/profile.md) for every zoo model at the
 * reduced size of zoo_reduced.h, code generated for h100:
 *
 *   exps against the minimum of the scan's ops (one per state update, plus
 *   softplus and SiLU per step) <= 1.05: no exp recomputed;
 *   load sector efficiency >= 75%: warps read whole sectors;
 *   store sector efficiency >= 75% where the results are stored along the
 *   rows; where a scan order's map scatters the sum over the row, or a
 *   permute stores it channels-last (a transpose), it is reported, not held
 *   (docs/profile.md);
 *   distinct bytes moved <= 1.3 x the minimum (u, dt, z, B, C read once, y
 *   written once).
 *
 * These are goals for the scan emitter, kept apart from the suites that check
 * correctness: a failure here names the kernel and its numbers. With
 * MIXC_PROFILE_RECORD=FILE every scan kernel's figures are appended to FILE,
 * one JSON object a line (bench/results/scan_sector_efficiency.json). */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "profile.h"
#include "scan_plan.h"
#include "support.h"

#define MAX_EXP_RATIO 1.05
#define MIN_LOAD_EFFICIENCY 0.75
#define MIN_STORE_EFFICIENCY 0.75
#define MAX_BYTES_RATIO 1.3

/* Whether the group's stores are permuted against its rows: some scan lands
 * through a scan order's map, or a result is stored through a permute (a
 * gate over [B, L, C]: a transpose of the [B, C, L] rows). */
static bool merge_permuted(const mx_graph *g, const mx_scan_plan *sp) {
    for (int i = 0; i < sp->n_scans; i++)
        if (sp->scan[i].by_order)
            return true;
    for (int i = 0; i < sp->n_extra; i++)
        if (sp->extra[i].by_order)
            return true;
    for (int o = 0; o < sp->n_out; o++)
        for (int v = 0; v < sp->out[o].n_views; v++)
            if (g->nodes[sp->out[o].views[v]].op == MX_OP_PERMUTE)
                return true;
    return false;
}

static void record(FILE *f, const char *name, const mx_kernel_profile *k, const mx_scan_plan *sp,
                   const mx_tiles *t, bool permuted) {
    fprintf(f,
            "{\"model\": \"%s\", \"kernel\": \"%s\", \"rows\": %lld, \"L\": %lld, \"N\": %lld, \"scans\": %d, "
            "\"tiles\": \"%s %d threads x %d items, %d channels\", \"merge_permuted\": %s, "
            "\"load_efficiency\": %.4f, \"store_efficiency\": %.4f, \"exps_per_update\": %.4f, "
            "\"exp_ratio\": %.4f, \"bytes_ratio\": %.4f}\n",
            name, k->kernel, (long long)(sp->Bt * sp->Ch), (long long)sp->L, (long long)sp->N, sp->n_scans,
            !t->chunked ? "lanes" : t->channels > 1 ? "packed" : "chunked", t->threads, t->items, t->channels,
            permuted ? "true" : "false", k->load_efficiency, k->store_efficiency, k->exps_per_update,
            k->exp_ratio, k->bytes_ratio);
}

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
        st = mx_profile_run(p, &mod, co.target, NULL, NULL, &pr, &d);
        CHECK_MSG(st == MX_OK, "%s: %s", name, d.msg);
    }
    const char *path_out = getenv("MIXC_PROFILE_RECORD");
    FILE *rec = path_out && st == MX_OK ? fopen(path_out, "a") : NULL;
    for (int i = 0; st == MX_OK && i < pr.n_kernels; i++) {
        const mx_kernel_profile *k = &pr.kernels[i];
        mx_scan_plan sp;
        if (k->kind != MX_FUSE_SCAN || mx_scan_plan_fill(p, k->group, &sp, &d) != MX_OK)
            continue;
        const mx_kernel *kern = mx_module_kernel(&mod, k->group);
        bool permuted = merge_permuted(p->g, &sp);
        printf("%-20s %-14s L %4lld  exps/update %.3f  exps/minimum %.3f  load eff %5.1f%%  store eff %5.1f%%%s  "
               "bytes/minimum %.2f\n",
               name, k->kernel, (long long)sp.L, k->exps_per_update, k->exp_ratio, 100 * k->load_efficiency,
               100 * k->store_efficiency, permuted ? " (permuted)" : "", k->bytes_ratio);
        if (rec)
            record(rec, name, k, &sp, &kern->tiles, permuted);
        CHECK_MSG(k->exp_ratio <= MAX_EXP_RATIO, "target: %s %s: %.3f exps per needed exp (at most %.2f)", name,
                  k->kernel, k->exp_ratio, MAX_EXP_RATIO);
        CHECK_MSG(k->load_efficiency >= MIN_LOAD_EFFICIENCY,
                  "target: %s %s: load sector efficiency %.1f%% (at least %.0f%%)", name, k->kernel,
                  100 * k->load_efficiency, 100 * MIN_LOAD_EFFICIENCY);
        CHECK_MSG(permuted || k->store_efficiency >= MIN_STORE_EFFICIENCY,
                  "target: %s %s: store sector efficiency %.1f%% (at least %.0f%%)", name, k->kernel,
                  100 * k->store_efficiency, 100 * MIN_STORE_EFFICIENCY);
        CHECK_MSG(k->bytes_ratio <= MAX_BYTES_RATIO, "target: %s %s: %.2f x the minimum bytes (at most %.1f)", name,
                  k->kernel, k->bytes_ratio, MAX_BYTES_RATIO);
    }
    if (rec)
        fclose(rec);
    mx_profile_free(&pr);
    mx_module_free(&mod);
    mx_program_free(p);
    mx_model_free(model);
}

int main(void) {
    support_each_file(MIXC_SOURCE_DIR "/models", ".json", check_model);
    return check_summary();
}
