/* fuzz_codegen.c: spec -> passes -> memory check -> CUDA C, for an H100.
 *
 * Input: as fuzz_spec.c (a spec's JSON, then NUL-separated overrides). Graphs
 * over MAX_NODES nodes are skipped: the time of a run must stay within what
 * libFuzzer allows whatever the depth. Tensor sizes are not capped: nothing
 * here allocates them, and the memory check must refuse what would not fit.
 * Promises: every stage succeeds or fails with a message; no crash, no
 * sanitizer report. */
#include "codegen.h"
#include "fuzz.h"
#include "memcheck.h"
#include "model.h"

enum { MAX_NODES = 600 };

static mx_target target;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mx_diag d = {{0}};
    if (!target.name[0])
        FUZZ_REQUIRE(mx_target_named("h100", MX_DEVICE_CUDA, &target, &d) == MX_OK, "%s", d.msg);
    char *text = fuzz_text(data, size);
    const char *overrides[FUZZ_MAX_OVERRIDES];
    int n = fuzz_overrides(text, size, overrides, FUZZ_MAX_OVERRIDES);
    mx_model *m = mx_model_parse(text, "fuzz.json", overrides, n, &d);
    FUZZ_REQUIRE(m || d.msg[0], "no model and no message");
    if (!m || m->g->n_nodes > MAX_NODES) {
        mx_model_free(m);
        free(text);
        return 0;
    }
    mx_program *p = mx_program_new(mx_graph_clone(m->g));
    mx_pass_options o = {.verify = true};
    mx_status st = mx_program_run_passes(p, &o, &d);
    FUZZ_FAILED_WITH_MESSAGE(st, d);
    if (st == MX_OK) {
        st = mx_memory_check(p, &target, m, &d);
        FUZZ_FAILED_WITH_MESSAGE(st, d);
    }
    if (st == MX_OK) {
        mx_module mod = {0};
        mx_codegen_options co = {.target = &target};
        st = mx_codegen(p, &co, &mod, &d);
        FUZZ_FAILED_WITH_MESSAGE(st, d);
        mx_module_free(&mod);
    }
    mx_program_free(p);
    mx_model_free(m);
    free(text);
    return 0;
}
